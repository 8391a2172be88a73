/* ctl.h — what corralctl's main.c and scale.c share: the run's settings and
 * etcd client, and the output helpers. Internal to corralctl. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <systemd/sd-event.h>

#include "etcd.h"
#include "macro.h"

typedef enum { FORMAT_TABLE, FORMAT_JSON } format_t;

/* -q, default, -v, -d */
enum { CTL_QUIET = -1, CTL_NORMAL = 0, CTL_VERBOSE = 1, CTL_DEBUG = 2 };

typedef struct ctl {
	char **endpoints;
	char *prefix;
	char *ca_file, *cert_file, *key_file;
	char *user, *password;
	uint64_t timeout_usec;
	uint64_t attempt_usec;          /* etcd.attempt_timeout of --config; 0: default */
	format_t format;
	bool dry_run;
	bool force;                     /* -f: scale ignores min/max; cluster stop goes on after time-outs */
	int verbosity;                  /* CTL_QUIET .. CTL_DEBUG */
	char *proposer;                 /* "ctl-<host>-<pid>" */
	sd_event *event;
	etcd_client *etcd;
} ctl_t;

/* Prints etcd's error; returns 1 (the exit code). */
int ctl_fail(const etcd_response *r);
/* "corralctl: <message>" plus a hint; returns 2. */
_printf_(1, 2) int ctl_usage_error(const char *fmt, ...);
/* rows: n rows of ncols cells each, row-major. */
void ctl_print_table(const char *const *header, char *const *rows, size_t n, size_t ncols);
/* Pretty, sorted JSON on stdout; 0 or 1. */
int ctl_print_json(json_t *v);
/* One etcd key segment as an operator may name it (a config id, a pool,
 * an instance id, a node id): 1-200 bytes, no '/', no control bytes, not
 * "." or "..". */
bool ctl_segment_valid(const char *s);
/* <prefix>/<dir>/ as {id: record}; records that are not JSON objects
 * become {"malformed": reason}. 0, -ENOMEM, -EIO (printed). */
int ctl_read_records(ctl_t *c, const char *dir, json_t **out);
/* The same, or (parse false) each value as its text. */
int ctl_read_dir(ctl_t *c, const char *dir, bool parse, json_t **out);

/* scale.c: the scaling commands (scale, autoscale, cluster, maintenance,
 * hold, unhold, load); argv[0] is the command. Exit code. */
int ctl_scale_main(ctl_t *c, int argc, char **argv);
/* true for the commands ctl_scale_main() handles. */
bool ctl_scale_is_command(const char *cmd);
/* scale simulate: no etcd needed. argv[0] is "simulate". Exit code. */
int ctl_scale_simulate(format_t format, int argc, char **argv);
/* The scaling summary for status: pools (desired/min/max, hosts by state),
 * maintenance, stop, holds. New reference in *out; 0 or -errno (printed). */
int ctl_scale_summary(ctl_t *c, json_t **out);
/* Prints a summary made by ctl_scale_summary() as text on f. */
void ctl_scale_summary_print(json_t *summary, FILE *f);
