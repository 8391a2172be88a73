/* conf-internal.h — what the files of src/conf/ share.
 *
 * walk.c walks a YAML document against tables with one row per key; a row
 * names the key, the handler that understands its type and where the value
 * goes. The parts of the file (conf.c: the node, files.c: what it renders,
 * ec2.c: EC2 and scaling, initial.c: the values it brings to the cluster
 * config) each own their rows, defaults and checks, and conf.c lists the
 * parts in one table. walk.c calls none of them by name: it gets tables
 * and, for the checks, a function pointer. */
#pragma once

#include <yaml.h>

#include "conf.h"

/* libcurl counts timeouts in whole milliseconds and takes 0 as "never", so
 * anything shorter would silently disable the timeout. */
#define CONF_MIN_TIMEOUT_USEC USEC_PER_MSEC

typedef struct conf_walk {
	yaml_document_t *doc;
	conf_error *err;
	conf *conf;                     /* for warnings */
} conf_walk;

typedef struct conf_key conf_key;

/* A handler stores the value of `name` (the dotted path, "etcd.endpoints")
 * found in `value` under mapping key `key` into `field`. Values are never
 * null here: the walker rejects "key:" with nothing after it first. */
typedef int (*conf_parse_fn)(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			     yaml_node_t *value, void *field);

struct conf_key {
	const char *name;
	conf_parse_fn parse;
	size_t offset;              /* of the field in the section's struct */
	/* conf_parse_section: the nested table. Keys whose parser walks a
	 * table of its own (a list or a mapping of entries) name it here too,
	 * so that conf_key_names() lists every key. */
	const conf_key *section;
	uint64_t min_usec;          /* conf_parse_duration_key: smallest value allowed */
};

/* One part of corrald.yaml. Every hook may be NULL. */
typedef struct conf_part {
	const conf_key *keys;       /* its top-level rows (offsets into conf) */
	void (*init)(conf *c);      /* defaults, before the walk */
	/* Cross-key checks that still have the document, so they point at a
	 * place. */
	int (*check)(conf_walk *w, yaml_node_t *root, conf *c);
	/* After the walk: required keys, defaults that depend on others. */
	int (*finish)(conf *c, conf_error *err);
	void (*done)(conf *c);      /* frees what it parsed */
} conf_part;

extern const conf_part conf_part_files;     /* files.c */
extern const conf_part conf_part_ec2;       /* ec2.c */
extern const conf_part conf_part_initial;   /* initial.c */
extern const conf_part conf_part_upgrade;   /* upgrade.c */
extern const conf_part conf_part_deployments; /* deployments.c */

/* ---- walk.c: errors ---- */

/* The message, with the node's place (NULL: none); returns -EINVAL. */
_printf_(3, 4) int conf_fail(conf_walk *w, const yaml_node_t *node, const char *fmt, ...);
/* Not about one place in the file, with any errno (I/O keeps its own). */
_printf_(3, 4) int conf_fail_errno(conf_error *err, int r, const char *fmt, ...);
/* A user-supplied scalar for a message: at most 64 bytes, control
 * characters as '?'. */
const char *conf_quote(const yaml_node_t *node, char *buf, size_t size);
/* A warning for corrald to log once the file is loaded. */
_printf_(2, 3) int conf_warn(conf_walk *w, const char *fmt, ...);

/* ---- walk.c: nodes ---- */

bool conf_node_is_null(const yaml_node_t *n);
/* The scalar's text as a new C string; refuses null, "" and NUL bytes. */
int conf_scalar_dup(conf_walk *w, const char *name, const char *what, yaml_node_t *n, char **ret);
/* A sequence of scalars as a new NULL-terminated list. */
int conf_strv(conf_walk *w, const char *name, yaml_node_t *value, char ***ret);
/* The key node named `name` in mapping `node` (its value in *ret_value),
 * or NULL. */
yaml_node_t *conf_mapping_key(conf_walk *w, yaml_node_t *node, const char *name, yaml_node_t **ret_value);

/* Walks one mapping against tables (NULL-terminated: a key may be in any);
 * `section` is its dotted path, "" for the top level. */
int conf_walk_mapping(conf_walk *w, const conf_key *const *tables, const char *section, yaml_node_t *node,
		      void *base);

/* Parses text (one YAML document) into base by tables, then runs check
 * (may be NULL) with the document. An empty document walks nothing. */
int conf_walk_text(const char *text, size_t len, const conf_key *const *tables, conf *c,
		   int (*check)(conf_walk *w, yaml_node_t *root, conf *c), conf_error *err);

/* ---- walk.c: handlers for the common types ---- */

int conf_parse_string(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field);
/* Like conf_parse_string, but "" is a value. */
int conf_parse_string_or_empty(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			       yaml_node_t *value, void *field);
/* One component of an etcd key: no '/'. */
int conf_parse_name(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		    void *field);
int conf_parse_strv(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		    void *field);
int conf_parse_duration_key(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			    yaml_node_t *value, void *field);
int conf_parse_bool(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		    void *field);
/* A list of unit names as systemd takes them (name.service, ...); files.c. */
int conf_parse_units(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		     void *field);
/* A nested mapping walked against k->section. */
int conf_parse_section(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field);
