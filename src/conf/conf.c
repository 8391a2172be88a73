/* conf.c — the node's YAML configuration (see conf.h): the node itself
 * (cluster, prefix, node_id, address, services, lease, log level, metrics)
 * and its `etcd:` section; loading, which walks the whole file against the
 * rows of every part (walk.c, conf-internal.h) and then lets each part
 * finish; and the reference count that frees a conf.
 *
 * A core module: nothing here logs. */
#include <assert.h>
#include <limits.h>
#include <stddef.h>

#include "conf-internal.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"

#define CONF_DEFAULT_LEASE_TTL_USEC       (10 * USEC_PER_SEC)
#define CONF_MIN_LEASE_TTL_USEC           (2 * USEC_PER_SEC)
#define CONF_DEFAULT_REQUEST_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define CONF_DEFAULT_CONNECT_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define CONF_DEFAULT_ATTEMPT_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define CONF_DEFAULT_WATCH_PROGRESS_USEC  (3 * USEC_PER_SEC)
#define CONF_MACHINE_ID_PATH              "/etc/machine-id"

static void conf_free_secret(char *s) {
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* metrics_listen: "host:port" with a numeric host (metrics.h says which
 * forms); "" is the same as leaving the key out: no metrics server. */
static int parse_listen(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	_cleanup_free_ char *s = NULL;
	struct sockaddr_storage sa;
	socklen_t len;
	char why[200];
	char **p = field;

	if (value->type == YAML_SCALAR_NODE && value->data.scalar.length == 0) {
		free(*p);
		*p = NULL;
		return 0;
	}
	int r = conf_scalar_dup(w, name, "a string", value, &s);
	if (r < 0)
		return r;
	r = metrics_listen_parse(s, &sa, &len, why, sizeof why);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: %s", name, why);
	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

/* cluster and node_id: each is one segment of the keys built from it
 * ("/corral/<cluster>", "<prefix>/nodes/<node_id>"), so what keys.h would
 * refuse is refused here, with a place. */
static int parse_key_segment(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			     yaml_node_t *value, void *field) {
	char **p = field, quoted[80];

	int r = conf_parse_name(w, k, name, key, value, field);
	if (r < 0)
		return r;
	if (!keys_id_valid(*p, strlen(*p)))
		return conf_fail(w, value,
				 "%s: \"%s\" cannot be one segment of an etcd key (not \".\" or \"..\", no control "
				 "characters, at most %d bytes)",
				 name, conf_quote(value, quoted, sizeof quoted), KEYS_ID_MAX);
	return 0;
}

/* Keys are built as "<prefix>/<rest>", hence no trailing '/'. The root
 * itself is refused: the cluster's keys would mix with everything else in
 * the etcd it shares. */
static int parse_prefix(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	_cleanup_free_ char *s = NULL;
	char **p = field;

	int r = conf_scalar_dup(w, name, "a string", value, &s);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return conf_fail(w, value, "%s: must start with '/'", name);

	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	if (n == 0)
		return conf_fail(w, value, "%s: must not be the root \"/\"", name);

	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

/* etcd endpoints: a non-empty list of http(s) URLs. The scheme is required
 * because it alone decides whether the client speaks TLS. */
static int parse_urls(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	_cleanup_strv_free_ char **v = NULL;
	char ***p = field;

	int r = conf_strv(w, name, value, &v);
	if (r < 0)
		return r;
	if (!v[0])
		return conf_fail(w, value, "%s: at least one endpoint is required", name);

	for (size_t i = 0; v[i]; i++) {
		const char *rest = NULL;
		if (strncmp(v[i], "http://", 7) == 0)
			rest = v[i] + 7;
		else if (strncmp(v[i], "https://", 8) == 0)
			rest = v[i] + 8;
		if (!rest || !*rest)
			return conf_fail(w, yaml_document_get_node(w->doc, value->data.sequence.items.start[i]),
					 "%s: \"%.64s\" is not an http:// or https:// URL", name, v[i]);
	}

	strv_free(*p);
	*p = TAKE_PTR(v);
	return 0;
}


static int parse_log_level(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			   void *field) {
	_cleanup_free_ char *s = NULL;
	int *p = field;

	int r = conf_scalar_dup(w, name, "a log level", value, &s);
	if (r < 0)
		return r;
	int level = log_level_from_string(s);
	if (level < 0)
		return conf_fail(w, value,
				 "%s: unknown level \"%.32s\" (expected debug, info, notice, warning or error)", name, s);
	*p = level;
	return 0;
}

/* `password` and `password_file` fill the same field; whichever comes second
 * finds it set. (A repeated key is caught as a duplicate before this.) */
static int conf_check_secret_unset(conf_walk *w, const yaml_node_t *key, char *const *p) {
	if (*p)
		return conf_fail(w, key, "etcd.password and etcd.password_file are mutually exclusive");
	return 0;
}

static int parse_secret(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	char **p = field;

	int r = conf_check_secret_unset(w, key, p);
	if (r < 0)
		return r;
	return conf_scalar_dup(w, name, "a string", value, p);
}

/* The file holds the secret alone; the newline an editor or `echo` leaves
 * at the end is not part of it (nor a "\r" before it). */
static int parse_secret_file(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			     yaml_node_t *value, void *field) {
	_cleanup_free_ char *path = NULL;
	char **p = field, *secret = NULL;
	size_t size;

	int r = conf_check_secret_unset(w, key, p);
	if (r < 0)
		return r;
	r = conf_scalar_dup(w, name, "a string", value, &path);
	if (r < 0)
		return r;

	r = conf_read_file(path, true, &secret, &size);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: cannot read \"%.128s\": %s", name, path, strerror(-r));

	if (size > 0 && secret[size - 1] == '\n')
		secret[--size] = '\0';
	if (size > 0 && secret[size - 1] == '\r')
		secret[--size] = '\0';
	if (memchr(secret, 0, size))
		r = conf_fail(w, value, "%s: \"%.128s\" contains a NUL byte", name, path);
	else if (size == 0)
		r = conf_fail(w, value, "%s: \"%.128s\" is empty", name, path);
	if (r < 0) {
		conf_free_secret(secret);
		return r;
	}

	*p = secret;
	return 0;
}

static const conf_key conf_etcd_keys[] = {
	{ "endpoints",       parse_urls,         offsetof(conf_etcd, endpoints) },
	{ "ca_file",         conf_parse_string,       offsetof(conf_etcd, ca_file) },
	{ "cert_file",       conf_parse_string,       offsetof(conf_etcd, cert_file) },
	{ "key_file",        conf_parse_string,       offsetof(conf_etcd, key_file) },
	{ "username",        conf_parse_string,       offsetof(conf_etcd, username) },
	{ "password",        parse_secret,       offsetof(conf_etcd, password) },
	{ "password_file",   parse_secret_file,  offsetof(conf_etcd, password) },
	{ "request_timeout", conf_parse_duration_key, offsetof(conf_etcd, request_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "connect_timeout", conf_parse_duration_key, offsetof(conf_etcd, connect_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "attempt_timeout", conf_parse_duration_key, offsetof(conf_etcd, attempt_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "watch_progress_timeout", conf_parse_duration_key, offsetof(conf_etcd, watch_progress_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{}
};

static const conf_key conf_node_keys[] = {
	{ "cluster",        parse_key_segment,       offsetof(conf, cluster) },
	{ "prefix",         parse_prefix,            offsetof(conf, prefix) },
	{ "node_id",        parse_key_segment,       offsetof(conf, node_id) },
	{ "address",        conf_parse_string,       offsetof(conf, address) },
	{ "services",       conf_parse_strv,         offsetof(conf, services) },
	{ "lease_ttl",      conf_parse_duration_key, offsetof(conf, lease_ttl_usec), .min_usec = CONF_MIN_LEASE_TTL_USEC },
	{ "log_level",      parse_log_level,         offsetof(conf, log_level) },
	{ "etcd",           conf_parse_section,      offsetof(conf, etcd), .section = conf_etcd_keys },
	{ "metrics_listen", parse_listen,            offsetof(conf, metrics_listen) },
	{}
};

/* ---- defaults and cross-key checks -------------------------------------- */

static int conf_default_node_id(conf *c, conf_error *err) {
	_cleanup_free_ char *buf = NULL;

	int r = conf_read_file(CONF_MACHINE_ID_PATH, false, &buf, NULL);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail_errno(err, -EINVAL, "node_id not set and " CONF_MACHINE_ID_PATH " unreadable: %s",
				       strerror(-r));

	const char *ws = " \t\r\n";
	char *s = buf + strspn(buf, ws);
	size_t n = strlen(s);
	while (n > 0 && strchr(ws, s[n - 1]))
		n--;
	if (n == 0)
		return conf_fail_errno(err, -EINVAL, "node_id not set and " CONF_MACHINE_ID_PATH " is empty");
	s[n] = '\0';
	if (strchr(s, '/'))
		return conf_fail_errno(err, -EINVAL,
				       "node_id not set and " CONF_MACHINE_ID_PATH " does not hold a valid id");

	c->node_id = strdup(s);
	if (!c->node_id)
		return -ENOMEM;
	return 0;
}

static int conf_default_address(conf *c, conf_error *err) {
	char host[HOST_NAME_MAX + 1] = {};

	/* The kernel limits the name to HOST_NAME_MAX, so this cannot cut it
	 * short; the last byte stays NUL either way. */
	if (gethostname(host, sizeof host - 1) < 0) {
		int r = -errno;
		return conf_fail_errno(err, r, "address not set and gethostname() failed: %s", strerror(-r));
	}
	if (!host[0])
		return conf_fail_errno(err, -EINVAL, "address not set and the hostname is empty");

	c->address = strdup(host);
	if (!c->address)
		return -ENOMEM;
	return 0;
}

/* The node's required keys (etcd's too) and its defaults. */
static int conf_node_finish(conf *c, conf_error *err) {
	int r;

	if (!c->cluster)
		return conf_fail_errno(err, -EINVAL, "cluster is required");
	if (!c->etcd.endpoints)
		return conf_fail_errno(err, -EINVAL, "etcd.endpoints is required");
	if (c->etcd.password && !c->etcd.username)
		return conf_fail_errno(err, -EINVAL, "etcd.username is required with a password");

	/* The cluster name was checked with keys_cluster_valid() on the way
	 * in: only memory can fail here. */
	if (!c->prefix && !(c->prefix = keys_prefix_for_cluster(c->cluster)))
		return -ENOMEM;
	if (!c->node_id) {
		r = conf_default_node_id(c, err);
		if (r < 0)
			return r;
		c->node_id_default = true;
	}
	if (!c->address) {
		r = conf_default_address(c, err);
		if (r < 0)
			return r;
		c->address_default = true;
	}
	if (!c->services) {
		c->services = calloc(1, sizeof(char *));
		if (!c->services)
			return -ENOMEM;
	}
	return 0;
}

/* ---- loading ---------------------------------------------------------------- */

static void conf_error_init(conf_error *err, const char *name) {
	memset(err, 0, sizeof *err);
	snprintf(err->file, sizeof err->file, "%s", name);
}

static void conf_node_init(conf *c) {
	c->lease_ttl_usec = CONF_DEFAULT_LEASE_TTL_USEC;
	c->log_level = LOG_INFO;
	c->etcd.request_timeout_usec = CONF_DEFAULT_REQUEST_TIMEOUT_USEC;
	c->etcd.connect_timeout_usec = CONF_DEFAULT_CONNECT_TIMEOUT_USEC;
	c->etcd.attempt_timeout_usec = CONF_DEFAULT_ATTEMPT_TIMEOUT_USEC;
	c->etcd.watch_progress_usec = CONF_DEFAULT_WATCH_PROGRESS_USEC;
}

static void conf_node_done(conf *c) {
	free(c->cluster);
	free(c->prefix);
	free(c->node_id);
	free(c->address);
	strv_free(c->services);
	strv_free(c->etcd.endpoints);
	free(c->etcd.ca_file);
	free(c->etcd.cert_file);
	free(c->etcd.key_file);
	free(c->etcd.username);
	conf_free_secret(c->etcd.password);
	free(c->metrics_listen);
}

static const conf_part conf_part_node = {
	.keys = conf_node_keys,
	.init = conf_node_init,
	.finish = conf_node_finish,
	.done = conf_node_done,
};

/* ---- loading ---------------------------------------------------------------- */

/* The parts of the file, in the order their checks and finishes run (the
 * node first: its required keys are named before anything else). */
static const conf_part *const conf_parts[] = {
	&conf_part_node,
	&conf_part_files,
	&conf_part_ec2,
	&conf_part_initial,
	&conf_part_upgrade,
	&conf_part_deployments,
};

#define CONF_MAX_TABLES 32

/* t's rows, and those of the tables they name, appended to *v (n
 * used); seen: the tables listed so far, so a shared one is listed once. */
static int conf_key_names_in(const conf_key *t, const char *prefix, char ***v, size_t *n, const conf_key **seen,
			     size_t *n_seen) {
	for (size_t i = 0; i < *n_seen; i++)
		if (seen[i] == t)
			return 0;
	if (*n_seen == CONF_MAX_TABLES)
		return -E2BIG;
	seen[(*n_seen)++] = t;
	for (const conf_key *k = t; k->name; k++) {
		int r = strv_takef(v, n, "%s%s%s", prefix, *prefix ? "." : "", k->name);
		if (r < 0)
			return r;
		const char *name = (*v)[*n - 1];
		if (k->section && (r = conf_key_names_in(k->section, name, v, n, seen, n_seen)) < 0)
			return r;
	}
	return 0;
}

int conf_key_names(char ***ret) {
	_cleanup_strv_free_ char **v = calloc(1, sizeof *v);
	const conf_key *seen[CONF_MAX_TABLES];
	size_t n = 0, n_seen = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(conf_parts); i++) {
		int r = conf_key_names_in(conf_parts[i]->keys, "", &v, &n, seen, &n_seen);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(v);
	return 0;
}

static int conf_check_parts(conf_walk *w, yaml_node_t *root, conf *c) {
	for (size_t i = 0; i < ELEMENTSOF(conf_parts); i++)
		if (conf_parts[i]->check) {
			int r = conf_parts[i]->check(w, root, c);
			if (r < 0)
				return r;
		}
	return 0;
}

static int conf_load(const char *text, size_t len, const char *name, conf **out, conf_error *err) {
	const conf_key *tables[ELEMENTSOF(conf_parts) + 1] = {};
	_cleanup_(conf_freep) conf *c = NULL;
	int r;

	if (!text && len > 0)
		return conf_fail_errno(err, -EINVAL, "no text given");

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->n_ref = 1;
	c->path = strdup(name);
	if (!c->path)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(conf_parts); i++) {
		tables[i] = conf_parts[i]->keys;
		if (conf_parts[i]->init)
			conf_parts[i]->init(c);
	}

	r = conf_walk_text(text, len, tables, c, conf_check_parts, err);
	if (r < 0)
		return r;

	/* Everything that needs the whole file: required keys, defaults that
	 * depend on other keys, and keys that only make sense together.
	 * Required keys have no place to point at, so these errors carry
	 * none. */
	for (size_t i = 0; i < ELEMENTSOF(conf_parts); i++)
		if (conf_parts[i]->finish) {
			r = conf_parts[i]->finish(c, err);
			if (r < 0)
				return r;
		}

	*out = TAKE_PTR(c);
	return 0;
}

int conf_load_string(const char *text, size_t len, const char *name, conf **out, conf_error *err) {
	conf_error dummy;

	if (!err)
		err = &dummy;
	if (!name)
		name = "(string)";
	conf_error_init(err, name);

	int r = conf_load(text, len, name, out, err);
	/* Allocation failures deep in a handler return without a message;
	 * the contract promises one with every error. */
	if (r < 0 && !err->message[0])
		conf_fail_errno(err, r, "%s", strerror(-r));
	return r;
}

int conf_load_file(const char *path, conf **out, conf_error *err) {
	char *text = NULL;
	conf_error dummy;
	size_t len;

	if (!err)
		err = &dummy;
	conf_error_init(err, path);

	/* Read as a secret: the file may hold etcd.password inline. */
	int r = conf_read_file(path, true, &text, &len);
	if (r < 0)
		return conf_fail_errno(err, r, "cannot read the configuration: %s", strerror(-r));

	r = conf_load_string(text, len, path, out, err);
	explicit_bzero(text, len);
	free(text);
	return r;
}

conf *conf_ref(conf *c) {
	if (c) {
		assert(c->n_ref > 0);
		c->n_ref++;
	}
	return c;
}

conf *conf_free(conf *c) {
	return conf_unref(c);
}

conf *conf_unref(conf *c) {
	if (!c)
		return NULL;
	assert(c->n_ref > 0);
	if (--c->n_ref > 0)
		return NULL;

	free(c->path);
	strv_free(c->warnings);
	for (size_t i = 0; i < ELEMENTSOF(conf_parts); i++)
		if (conf_parts[i]->done)
			conf_parts[i]->done(c);
	free(c);
	return NULL;
}

static bool conf_strv_equal(char *const *a, char *const *b) {
	size_t n = strv_length(a);

	if (n != strv_length(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!streq(a[i], b[i]))
			return false;
	return true;
}

/* Endpoint order counts: the client tries them in order, so a reordered list
 * is a different client. */
bool conf_etcd_equal(const conf_etcd *a, const conf_etcd *b) {
	if (!a || !b)
		return a == b;
	return conf_strv_equal(a->endpoints, b->endpoints) && streq_ptr(a->ca_file, b->ca_file) &&
	       streq_ptr(a->cert_file, b->cert_file) && streq_ptr(a->key_file, b->key_file) &&
	       streq_ptr(a->username, b->username) && streq_ptr(a->password, b->password) &&
	       a->request_timeout_usec == b->request_timeout_usec &&
	       a->attempt_timeout_usec == b->attempt_timeout_usec &&
	       a->connect_timeout_usec == b->connect_timeout_usec && a->watch_progress_usec == b->watch_progress_usec;
}
