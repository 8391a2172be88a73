/* conf.c — loads and validates the node's YAML configuration (see conf.h).
 *
 * libyaml's document API builds the whole tree first, so every node keeps
 * the place it came from and each error can point at it. The tree is then
 * walked against a table with one row per key; a row names the key, the
 * handler that understands its type and where the value goes. Adding a key
 * is adding a row; adding a section is a row with parse_section and a
 * nested table.
 *
 * A core module: nothing here logs. Every failure is a negative errno and,
 * for the caller to show, a conf_error saying what and where. */
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <yaml.h>

#include "conf.h"
#include "esc.h"
#include "log.h"
#include "metrics.h"
#include "tree.h"

#define CONF_DEFAULT_LEASE_TTL_USEC       (10 * USEC_PER_SEC)
#define CONF_MIN_LEASE_TTL_USEC           (2 * USEC_PER_SEC)
#define CONF_DEFAULT_REQUEST_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define CONF_DEFAULT_CONNECT_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define CONF_DEFAULT_ATTEMPT_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define CONF_DEFAULT_WATCH_PROGRESS_USEC  (3 * USEC_PER_SEC)
/* libcurl counts timeouts in whole milliseconds and takes 0 as "never", so
 * anything shorter would silently disable the timeout. */
#define CONF_MIN_TIMEOUT_USEC             USEC_PER_MSEC
#define CONF_DEFAULT_DEBOUNCE_USEC        (1 * USEC_PER_SEC)
#define CONF_DEFAULT_MAX_WAIT_USEC        (10 * USEC_PER_SEC)
#define CONF_DEFAULT_COMMAND_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CONF_DEFAULT_UNIT_TIMEOUT_USEC    (90 * USEC_PER_SEC)
#define CONF_DEFAULT_WRITE_RETRY_USEC     (1 * USEC_PER_SEC)
#define CONF_DEFAULT_WRITE_RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define CONF_MIN_WRITE_RETRY_USEC         (10 * USEC_PER_MSEC)
#define CONF_DEFAULT_HISTORY              20u
#define CONF_MAX_HISTORY                  100000u
#define CONF_MACHINE_ID_PATH              "/etc/machine-id"
#define CONF_DMI_DIR                      "/sys/devices/virtual/dmi/id"
/* The config comes from cloud-init user data (16 KiB on EC2) and the
 * password file is one line: anything this large is a mistake, not data.
 * Files of CONF_FILE_MAX bytes or more are refused with -EFBIG. */
#define CONF_FILE_MAX                     ((size_t) 4 * 1024 * 1024)

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
	const conf_key *section;    /* parse_section: the nested table */
	uint64_t min_usec;          /* parse_duration_key: smallest value allowed */
};

_printf_(3, 4) static int conf_fail(conf_walk *w, const yaml_node_t *node, const char *fmt, ...) {
	va_list ap;

	if (node) {
		/* libyaml counts from 0; editors and humans from 1. */
		w->err->line = (unsigned) node->start_mark.line + 1;
		w->err->column = (unsigned) node->start_mark.column + 1;
	} else
		w->err->line = w->err->column = 0;

	va_start(ap, fmt);
	vsnprintf(w->err->message, sizeof w->err->message, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Error for a problem that is not about one place in the file, with any
 * errno (I/O failures keep theirs). */
_printf_(3, 4) static int conf_fail_errno(conf_error *err, int r, const char *fmt, ...) {
	va_list ap;

	err->line = err->column = 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return r;
}

/* Copies a user-supplied key into an error message: at most 64 bytes and
 * control characters as '?', so a garbage key cannot mangle the log line. */
static const char *conf_quote(const yaml_node_t *node, char *buf, size_t size) {
	const unsigned char *s = node->data.scalar.value;
	size_t n = node->data.scalar.length, j = 0;
	const size_t shown = 64;

	for (size_t i = 0; i < n && i < shown && j + 1 < size; i++)
		buf[j++] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char) s[i];
	if (n > shown && j + 4 < size) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

/* YAML's null: "key:" with nothing after it, "~" or "null", unquoted. */
static bool conf_node_is_null(const yaml_node_t *n) {
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
		if (n->data.scalar.length == strlen(nulls[i]) &&
		    memcmp(n->data.scalar.value, nulls[i], n->data.scalar.length) == 0)
			return true;
	return false;
}

static bool conf_scalar_eq(const yaml_node_t *a, const yaml_node_t *b) {
	return a->data.scalar.length == b->data.scalar.length &&
	       memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length) == 0;
}

/* The scalar's text as a new C string. A YAML string may hold "\0", which a
 * C string cannot carry without cutting the value short, so it is refused;
 * so is an empty string, which no key here can use. */
static int conf_scalar_dup(conf_walk *w, const char *name, const char *what, yaml_node_t *n, char **ret) {
	if (n->type != YAML_SCALAR_NODE || conf_node_is_null(n))
		return conf_fail(w, n, "%s: expected %s", name, what);
	if (n->data.scalar.length == 0)
		return conf_fail(w, n, "%s: must not be empty", name);
	if (memchr(n->data.scalar.value, 0, n->data.scalar.length))
		return conf_fail(w, n, "%s: must not contain a NUL byte", name);

	char *s = strndup((const char *) n->data.scalar.value, n->data.scalar.length);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* Reads a whole file into a NUL-terminated buffer. With `secret`, growing
 * the buffer wipes the old copy rather than leaving it to realloc(), so a
 * password does not linger in freed memory; the caller wipes the result. */
int conf_read_file(const char *path, bool secret, char **ret, size_t *ret_size) {
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t size = 0, allocated;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;

	/* st_size is only a hint: /proc and pipes report 0. One byte for the
	 * NUL and one so that the read seeing EOF needs no bigger buffer. */
	allocated = S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t) st.st_size < CONF_FILE_MAX
			    ? (size_t) st.st_size + 2
			    : 4096;
	buf = malloc(allocated);
	if (!buf)
		return -ENOMEM;

	for (;;) {
		if (size + 1 >= allocated) {
			/* Full at the largest size allowed: the file is bigger. */
			if (allocated > CONF_FILE_MAX) {
				if (secret)
					explicit_bzero(buf, size);
				return -EFBIG;
			}
			size_t want = allocated * 2 > CONF_FILE_MAX + 1 ? CONF_FILE_MAX + 1 : allocated * 2;
			char *bigger = malloc(want);
			if (!bigger) {
				if (secret)
					explicit_bzero(buf, size);
				return -ENOMEM;
			}
			memcpy(bigger, buf, size);
			if (secret)
				explicit_bzero(buf, size);
			free(buf);
			buf = bigger;
			allocated = want;
		}

		ssize_t n = read(fd, buf + size, allocated - size - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			if (secret)
				explicit_bzero(buf, size);
			return r;
		}
		if (n == 0)
			break;
		size += (size_t) n;
	}

	buf[size] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = size;
	return 0;
}

static void conf_free_secret(char *s) {
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- handlers: one per type ------------------------------------------ */

static int parse_string(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	char **p = field;
	char *s = NULL;

	int r = conf_scalar_dup(w, name, "a string", value, &s);
	if (r < 0)
		return r;
	free(*p);
	*p = s;
	return 0;
}

/* Like parse_string, but "" is a value ("no IMDS"). */
static int parse_string_or_empty(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
				 yaml_node_t *value, void *field) {
	char **p = field;
	char *s;

	if (value->type == YAML_SCALAR_NODE && !conf_node_is_null(value) && value->data.scalar.length == 0) {
		s = strdup("");
		if (!s)
			return -ENOMEM;
		free(*p);
		*p = s;
		return 0;
	}
	return parse_string(w, k, name, key, value, field);
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

/* An identifier that becomes one component of an etcd key
 * ("<prefix>/nodes/<node_id>"), so it cannot contain the separator. */
static int conf_check_name(conf_walk *w, const char *name, const yaml_node_t *node, const char *s) {
	if (strchr(s, '/'))
		return conf_fail(w, node, "%s: must not contain '/'", name);
	return 0;
}

static int parse_name(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	_cleanup_free_ char *s = NULL;
	char **p = field;

	int r = conf_scalar_dup(w, name, "a string", value, &s);
	if (r < 0)
		return r;
	r = conf_check_name(w, name, value, s);
	if (r < 0)
		return r;
	free(*p);
	*p = TAKE_PTR(s);
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

/* A YAML sequence of scalars. A lone scalar is deliberately not taken as a
 * one-element list: "services: Worker" and "services: [Worker]" would then
 * both work until someone writes "services: Worker, Checker" and gets one
 * service named "Worker, Checker". */
static int conf_strv(conf_walk *w, const char *name, yaml_node_t *value, char ***ret) {
	_cleanup_strv_free_ char **v = NULL;
	size_t n = 0;

	if (value->type != YAML_SEQUENCE_NODE)
		return conf_fail(w, value, "%s: expected a sequence of strings", name);

	size_t count = (size_t) (value->data.sequence.items.top - value->data.sequence.items.start);
	v = calloc(count + 1, sizeof *v);
	if (!v)
		return -ENOMEM;

	for (yaml_node_item_t *i = value->data.sequence.items.start; i < value->data.sequence.items.top; i++) {
		yaml_node_t *item = yaml_document_get_node(w->doc, *i);
		if (!item)
			return conf_fail(w, value, "%s: expected a sequence of strings", name);
		int r = conf_scalar_dup(w, name, "a sequence of strings", item, &v[n]);
		if (r < 0)
			return r;
		n++;
	}

	*ret = TAKE_PTR(v);
	return 0;
}

static int parse_strv(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	char ***p = field;
	char **v = NULL;

	int r = conf_strv(w, name, value, &v);
	if (r < 0)
		return r;
	strv_free(*p);
	*p = v;
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

static int parse_duration_key(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			      yaml_node_t *value, void *field) {
	_cleanup_free_ char *s = NULL;
	uint64_t *p = field, usec;

	int r = conf_scalar_dup(w, name, "a duration", value, &s);
	if (r < 0)
		return r;
	if (conf_parse_duration(s, &usec) < 0)
		return conf_fail(w, value, "%s: invalid duration \"%.32s\" (expected seconds or e.g. 500ms, 10s, 2m, 1h)",
				 name, s);
	if (usec < k->min_usec) {
		if (k->min_usec % USEC_PER_SEC == 0)
			return conf_fail(w, value, "%s: must be at least %" PRIu64 "s", name,
					 k->min_usec / USEC_PER_SEC);
		return conf_fail(w, value, "%s: must be at least %" PRIu64 "ms", name, k->min_usec / USEC_PER_MSEC);
	}
	*p = usec;
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

static int conf_walk_mapping(conf_walk *w, const conf_key *table, const char *section, yaml_node_t *node,
			     void *base);

static int parse_section(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	return conf_walk_mapping(w, k->section, name, value, field);
}

/* ---- YAML -> JSON ----------------------------------------------------------
 *
 * `initial` and topology `value` are free-form: any YAML, converted to JSON
 * by the YAML 1.2 core schema. Plain scalars are typed by the schema's own
 * regular expressions (null, bool, int, float, else string); quoted and
 * block scalars are always strings. libyaml's loader gives every untagged
 * scalar the str tag, so a tag cannot be told from no tag: tags are not
 * interpreted, quoting is how a string is forced. "<<" is an ordinary key
 * (merge keys are YAML 1.1, not core schema).
 *
 * Aliases resolve to a copy of the anchored value, as for every other key in
 * this file. An alias inside its own anchor is a cycle and refused; so is a
 * value nested deeper than CONF_JSON_MAX_DEPTH or expanding to more than
 * CONF_JSON_MAX_NODES values ("billion laughs": a few lines of nested
 * aliases can name more values than memory holds). */

#define CONF_JSON_MAX_DEPTH 64
#define CONF_JSON_MAX_NODES 100000

typedef struct conf_json {
	conf_walk *w;
	const char *name;
	regex_t re_null, re_bool, re_int, re_oct, re_hex, re_float, re_inf, re_nan;
	bool compiled;
	size_t nodes;
	int stack[CONF_JSON_MAX_DEPTH];     /* node ids on the way down */
	size_t depth;
} conf_json;

static void conf_json_done(conf_json *j) {
	if (!j->compiled)
		return;
	regfree(&j->re_null);
	regfree(&j->re_bool);
	regfree(&j->re_int);
	regfree(&j->re_oct);
	regfree(&j->re_hex);
	regfree(&j->re_float);
	regfree(&j->re_inf);
	regfree(&j->re_nan);
	j->compiled = false;
}

/* The core schema's tag resolution table (YAML 1.2.2, 10.3.2), verbatim. */
static int conf_json_init(conf_json *j, conf_walk *w, const char *name) {
	static const struct {
		size_t offset;
		const char *re;
	} table[] = {
		{ offsetof(conf_json, re_null), "^(null|Null|NULL|~)?$" },
		{ offsetof(conf_json, re_bool), "^(true|True|TRUE|false|False|FALSE)$" },
		{ offsetof(conf_json, re_int), "^[-+]?[0-9]+$" },
		{ offsetof(conf_json, re_oct), "^0o[0-7]+$" },
		{ offsetof(conf_json, re_hex), "^0x[0-9a-fA-F]+$" },
		{ offsetof(conf_json, re_float), "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$" },
		{ offsetof(conf_json, re_inf), "^[-+]?(\\.inf|\\.Inf|\\.INF)$" },
		{ offsetof(conf_json, re_nan), "^(\\.nan|\\.NaN|\\.NAN)$" },
	};
	size_t i;

	*j = (conf_json) { .w = w, .name = name };
	for (i = 0; i < ELEMENTSOF(table); i++)
		if (regcomp((regex_t *) ((char *) j + table[i].offset), table[i].re, REG_EXTENDED | REG_NOSUB) != 0)
			break;
	if (i < ELEMENTSOF(table)) {
		while (i-- > 0)
			regfree((regex_t *) ((char *) j + table[i].offset));
		return -ENOMEM;
	}
	j->compiled = true;
	return 0;
}

static bool conf_json_match(const regex_t *re, const char *s) {
	return regexec(re, s, 0, NULL, 0) == 0;
}

static int conf_json_int(conf_json *j, yaml_node_t *n, const char *s, int base, json_t **ret) {
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, base);
	if (errno == ERANGE || *end)
		return conf_fail(j->w, n, "%s: integer %.40s is out of range", j->name, s);
	*ret = json_integer(v);
	return *ret ? 0 : -ENOMEM;
}

static int conf_json_scalar(conf_json *j, yaml_node_t *n, json_t **ret) {
	const char *text = (const char *) n->data.scalar.value;
	size_t len = n->data.scalar.length;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		*ret = json_stringn(text, len);
		return *ret ? 0 : -ENOMEM;
	}

	/* A plain scalar cannot hold NUL (no escapes, and the reader refuses
	 * control characters), so the text is a C string. */
	if (conf_json_match(&j->re_null, text))
		*ret = json_null();
	else if (conf_json_match(&j->re_bool, text))
		*ret = json_boolean(text[0] == 't' || text[0] == 'T');
	else if (conf_json_match(&j->re_int, text))
		return conf_json_int(j, n, text, 10, ret);
	else if (conf_json_match(&j->re_oct, text))
		return conf_json_int(j, n, text + 2, 8, ret);
	else if (conf_json_match(&j->re_hex, text))
		return conf_json_int(j, n, text + 2, 16, ret);
	else if (conf_json_match(&j->re_inf, text) || conf_json_match(&j->re_nan, text))
		return conf_fail(j->w, n, "%s: %.16s has no JSON equivalent", j->name, text);
	else if (conf_json_match(&j->re_float, text)) {
		char *end;
		errno = 0;
		double d = strtod(text, &end);
		/* Underflow to 0 or a denormal is a fine reading of the text;
		 * overflow to infinity is not representable. */
		if (*end || isinf(d))
			return conf_fail(j->w, n, "%s: number %.40s is out of range", j->name, text);
		*ret = json_real(d);
	} else
		*ret = json_stringn(text, len);
	return *ret ? 0 : -ENOMEM;
}

static int conf_json_node(conf_json *j, int id, json_t **ret);

static int conf_json_sequence(conf_json *j, yaml_node_t *n, json_t **ret) {
	json_auto_t *a = json_array();
	if (!a)
		return -ENOMEM;

	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		json_t *v = NULL;
		int r = conf_json_node(j, *i, &v);
		if (r < 0)
			return r;
		if (json_array_append_new(a, v) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

static int conf_json_mapping(conf_json *j, yaml_node_t *n, json_t **ret) {
	json_auto_t *o = json_object();
	char quoted[80];

	if (!o)
		return -ENOMEM;

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(j->w->doc, p->key);
		json_t *v = NULL;

		if (!key)
			return conf_fail(j->w, n, "%s: invalid mapping", j->name);
		/* JSON keys are strings: a scalar key is taken as its text
		 * ("1: x" is {"1": "x"}); a sequence or mapping has none. */
		if (key->type != YAML_SCALAR_NODE)
			return conf_fail(j->w, key, "%s: keys must be strings", j->name);
		if (memchr(key->data.scalar.value, 0, key->data.scalar.length))
			return conf_fail(j->w, key, "%s: keys must not contain a NUL byte", j->name);
		/* jansson keeps the last of two equal keys; YAML forbids them
		 * and the first one would be lost without a word. */
		if (json_object_getn(o, (const char *) key->data.scalar.value, key->data.scalar.length))
			return conf_fail(j->w, key, "%s: duplicate key \"%s\"", j->name,
					 conf_quote(key, quoted, sizeof quoted));

		int r = conf_json_node(j, p->value, &v);
		if (r < 0)
			return r;
		if (json_object_setn_new(o, (const char *) key->data.scalar.value, key->data.scalar.length, v) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int conf_json_node(conf_json *j, int id, json_t **ret) {
	yaml_node_t *n = yaml_document_get_node(j->w->doc, id);
	int r;

	if (!n)
		return conf_fail(j->w, NULL, "%s: invalid YAML node", j->name);
	if (++j->nodes > CONF_JSON_MAX_NODES)
		return conf_fail(j->w, n, "%s: more than %d values (aliases expanding too far?)", j->name,
				 CONF_JSON_MAX_NODES);
	if (n->type == YAML_SCALAR_NODE)
		return conf_json_scalar(j, n, ret);

	for (size_t i = 0; i < j->depth; i++)
		if (j->stack[i] == id)
			return conf_fail(j->w, n, "%s: an alias refers to a value containing it", j->name);
	if (j->depth >= CONF_JSON_MAX_DEPTH)
		return conf_fail(j->w, n, "%s: nested deeper than %d levels", j->name, CONF_JSON_MAX_DEPTH);

	j->stack[j->depth++] = id;
	if (n->type == YAML_SEQUENCE_NODE)
		r = conf_json_sequence(j, n, ret);
	else if (n->type == YAML_MAPPING_NODE)
		r = conf_json_mapping(j, n, ret);
	else
		r = conf_fail(j->w, n, "%s: invalid YAML node", j->name);
	j->depth--;
	return r;
}

/* The value of `node` as JSON. New reference in *ret. */
static int conf_yaml_to_json(conf_walk *w, const char *name, yaml_node_t *node, json_t **ret) {
	conf_json j;
	json_t *v = NULL;

	int r = conf_json_init(&j, w, name);
	if (r < 0)
		return r;
	r = conf_json_node(&j, (int) (node - w->doc->nodes.start) + 1, &v);
	conf_json_done(&j);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

/* ---- the render section ----------------------------------------------------- */

/* The key node named `name` in mapping `node`, or NULL: for errors about
 * keys that only make sense together, which point at the one that is odd. */
static yaml_node_t *conf_mapping_key(conf_walk *w, yaml_node_t *node, const char *name, yaml_node_t **ret_value) {
	if (node->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(w->doc, p->key);
		if (key && key->type == YAML_SCALAR_NODE && key->data.scalar.length == strlen(name) &&
		    memcmp(key->data.scalar.value, name, key->data.scalar.length) == 0) {
			if (ret_value)
				*ret_value = yaml_document_get_node(w->doc, p->value);
			return key;
		}
	}
	return NULL;
}

/* Absolute, and stored in one spelling: repeated and trailing '/' are
 * collapsed ("/tmp//x/" is "/tmp/x", as TMPDIR=/tmp/ produces), while "."
 * and ".." components are refused rather than resolved. Then equal strings
 * are the same file, which is what the duplicate check compares (symlinks
 * aside). */
static int parse_abs_path(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			  void *field) {
	_cleanup_free_ char *s = NULL;
	char **p = field;
	size_t j = 0;

	int r = conf_scalar_dup(w, name, "a path", value, &s);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return conf_fail(w, value, "%s: \"%.128s\" is not an absolute path", name, s);
	for (const char *c = s;;) {
		c += strspn(c, "/");
		size_t n = strcspn(c, "/");
		if (n == 0)
			break;
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return conf_fail(w, value, "%s: \"%.128s\" must not contain \".\" or \"..\" components", name, s);
		/* Writing behind the reading position: j never passes c. */
		s[j++] = '/';
		memmove(s + j, c, n);
		j += n;
		c += n;
	}
	if (j == 0)
		return conf_fail(w, value, "%s: \"%.128s\" names no file", name, s);
	s[j] = '\0';
	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

static int parse_format(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	_cleanup_free_ char *s = NULL;
	conf_format *p = field;

	int r = conf_scalar_dup(w, name, "a format", value, &s);
	if (r < 0)
		return r;
	if (streq(s, "json"))
		*p = CONF_FORMAT_JSON;
	else if (streq(s, "toml"))
		*p = CONF_FORMAT_TOML;
	else if (streq(s, "command"))
		*p = CONF_FORMAT_COMMAND;
	else
		return conf_fail(w, value, "%s: unknown format \"%.32s\" (expected json, toml or command)", name, s);
	return 0;
}

/* Always octal, as chmod reads it: "0640", 0640 and 640 are all rw-r-----.
 * (YAML 1.2 would read a plain 0640 as decimal 640; nobody means that.)
 * "0o640", YAML 1.2's own octal spelling, is accepted too. */
static int parse_mode(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	_cleanup_free_ char *s = NULL;
	mode_t *p = field;
	char *end;

	int r = conf_scalar_dup(w, name, "an octal mode", value, &s);
	if (r < 0)
		return r;
	const char *digits = strncmp(s, "0o", 2) == 0 ? s + 2 : s;
	if (!*digits || strspn(digits, "01234567") != strlen(digits))
		return conf_fail(w, value, "%s: \"%.32s\" is not an octal mode like \"0640\"", name, s);
	errno = 0;
	unsigned long m = strtoul(digits, &end, 8);
	if (errno == ERANGE || m > 07777)
		return conf_fail(w, value, "%s: %.32s is more than 07777", name, s);
	*p = (mode_t) m;
	return 0;
}

/* A user or group: a name looked up now (so a typo fails at load, not at the
 * first render) or a number taken as it is. */
static int conf_parse_id(conf_walk *w, const char *name, yaml_node_t *value, bool group, uint32_t *ret) {
	_cleanup_free_ char *s = NULL;
	char buf[16384];

	int r = conf_scalar_dup(w, name, group ? "a group name or number" : "a user name or number", value, &s);
	if (r < 0)
		return r;

	if (strspn(s, "0123456789") == strlen(s)) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		/* (uid_t) -1 means "not set" to chown(), so it is no id. */
		if (errno == ERANGE || v >= UINT32_MAX)
			return conf_fail(w, value, "%s: %.32s is out of range", name, s);
		*ret = (uint32_t) v;
		return 0;
	}

	if (group) {
		struct group gr, *res = NULL;
		r = getgrnam_r(s, &gr, buf, sizeof buf, &res);
		if (r == 0 && res) {
			*ret = res->gr_gid;
			return 0;
		}
	} else {
		struct passwd pw, *res = NULL;
		r = getpwnam_r(s, &pw, buf, sizeof buf, &res);
		if (r == 0 && res) {
			*ret = res->pw_uid;
			return 0;
		}
	}
	if (r == ENOMEM)
		return -ENOMEM;
	if (r != 0)
		return conf_fail(w, value, "%s: cannot look up \"%.64s\": %s", name, s, strerror(r));
	return conf_fail(w, value, "%s: unknown %s \"%.64s\"", name, group ? "group" : "user", s);
}

static int parse_owner(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	uint32_t id;
	int r = conf_parse_id(w, name, value, false, &id);
	if (r < 0)
		return r;
	*(uid_t *) field = (uid_t) id;
	return 0;
}

static int parse_group(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	uint32_t id;
	int r = conf_parse_id(w, name, value, true, &id);
	if (r < 0)
		return r;
	*(gid_t *) field = (gid_t) id;
	return 0;
}

/* Unit names as systemd takes them over D-Bus: a non-empty name without '/'
 * and a type suffix. Device and scope units cannot be restarted, so they
 * are not offered. */
static int parse_units(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	static const char *const suffixes[] = { ".service", ".socket", ".target", ".timer", ".path",
						".mount", ".automount", ".swap", ".slice" };
	_cleanup_strv_free_ char **v = NULL;
	char ***p = field;

	int r = conf_strv(w, name, value, &v);
	if (r < 0)
		return r;
	for (size_t i = 0; v[i]; i++) {
		size_t len = strlen(v[i]);
		bool ok = false;
		for (size_t s = 0; s < ELEMENTSOF(suffixes) && !ok; s++) {
			size_t sl = strlen(suffixes[s]);
			ok = len > sl && streq(v[i] + len - sl, suffixes[s]);
		}
		if (!ok || strchr(v[i], '/'))
			return conf_fail(w, yaml_document_get_node(w->doc, value->data.sequence.items.start[i]),
					 "%s: \"%.64s\" is not a unit name (like cms-worker.service)", name, v[i]);
	}
	strv_free(*p);
	*p = TAKE_PTR(v);
	return 0;
}

static const conf_key conf_file_keys[] = {
	{ "path",    parse_abs_path, offsetof(conf_file, path) },
	{ "format",  parse_format,   offsetof(conf_file, format) },
	{ "command", parse_string,   offsetof(conf_file, command) },
	{ "check",   parse_string,   offsetof(conf_file, check) },
	{ "mode",    parse_mode,     offsetof(conf_file, mode) },
	{ "owner",   parse_owner,    offsetof(conf_file, uid) },
	{ "group",   parse_group,    offsetof(conf_file, gid) },
	{ "restart", parse_units,    offsetof(conf_file, restart) },
	{ "reload",  parse_units,    offsetof(conf_file, reload) },
	{}
};

static void conf_file_done(conf_file *f) {
	free(f->name);
	free(f->path);
	free(f->command);
	free(f->check);
	strv_free(f->restart);
	strv_free(f->reload);
}

static int conf_file_one(conf_walk *w, conf *c, yaml_node_t *key, yaml_node_t *value) {
	_cleanup_(conf_file_done) conf_file f = { .mode = 0644, .uid = (uid_t) -1, .gid = (gid_t) -1 };
	yaml_node_t *v = NULL;
	char quoted[80], section[96];

	if (key->type != YAML_SCALAR_NODE)
		return conf_fail(w, key, "files: file names must be strings");
	int r = conf_scalar_dup(w, "files", "a file name", key, &f.name);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_files; i++)
		if (streq(c->files[i].name, f.name))
			return conf_fail(w, key, "duplicate key \"files.%s\"", conf_quote(key, quoted, sizeof quoted));

	snprintf(section, sizeof section, "files.%s", conf_quote(key, quoted, sizeof quoted));
	if (conf_node_is_null(value))
		return conf_fail(w, key, "%s: missing value", section);
	r = conf_walk_mapping(w, conf_file_keys, section, value, &f);
	if (r < 0)
		return r;

	if (!f.path)
		return conf_fail(w, value, "%s: path is required", section);
	if (f.format == CONF_FORMAT_COMMAND && !f.command)
		return conf_fail(w, conf_mapping_key(w, value, "format", NULL), "%s: format command requires command",
				 section);
	if (f.format != CONF_FORMAT_COMMAND && f.command)
		return conf_fail(w, conf_mapping_key(w, value, "command", NULL),
				 "%s: command is only for format: command", section);
	for (size_t i = 0; i < c->n_files; i++)
		if (streq(c->files[i].path, f.path)) {
			conf_mapping_key(w, value, "path", &v);
			return conf_fail(w, v, "%s: \"%.128s\" is also the path of files.%.64s", section, f.path,
					 c->files[i].name);
		}

	/* Empty lists rather than NULL: callers iterate without checking. */
	if (!f.restart && !(f.restart = calloc(1, sizeof(char *))))
		return -ENOMEM;
	if (!f.reload && !(f.reload = calloc(1, sizeof(char *))))
		return -ENOMEM;

	conf_file *grown = reallocarray(c->files, c->n_files + 1, sizeof *c->files);
	if (!grown)
		return -ENOMEM;
	c->files = grown;
	c->files[c->n_files++] = f;
	f = (conf_file) {};
	return 0;
}

static int parse_files(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	conf *c = field;

	if (value->type != YAML_MAPPING_NODE)
		return conf_fail(w, value, "%s: expected a mapping of file names", name);
	for (yaml_node_pair_t *p = value->data.mapping.pairs.start; p < value->data.mapping.pairs.top; p++) {
		yaml_node_t *fk = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *fv = yaml_document_get_node(w->doc, p->value);
		if (!fk || !fv)
			return conf_fail(w, value, "%s: invalid mapping", name);
		int r = conf_file_one(w, c, fk, fv);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Escaped leaf path ("cms/core_services/Worker"). Its first segment names a
 * file, which need not be among this node's files: a node contributes to
 * lists in files it does not render itself. */
static int parse_tree_path(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			   void *field) {
	_cleanup_free_ char *s = NULL;
	json_auto_t *segments = NULL;
	char **p = field;
	tree_error terr;

	int r = conf_scalar_dup(w, name, "a path", value, &s);
	if (r < 0)
		return r;
	r = tree_path_parse(s, &segments, &terr);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: %s", name, terr.message);
	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

static int parse_json(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	json_t **p = field, *v = NULL;

	int r = conf_yaml_to_json(w, name, value, &v);
	if (r < 0)
		return r;
	json_decref(*p);
	*p = v;
	return 0;
}

static const conf_key conf_topology_keys[] = {
	{ "service", parse_string,    offsetof(conf_topology, service) },
	{ "path",    parse_tree_path, offsetof(conf_topology, path) },
	{ "value",   parse_json,      offsetof(conf_topology, value) },
	{}
};

static void conf_topology_done(conf_topology *t) {
	free(t->service);
	free(t->path);
	json_decref(t->value);
}

static int parse_topology(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			  void *field) {
	conf *c = field;

	if (value->type != YAML_SEQUENCE_NODE)
		return conf_fail(w, value, "%s: expected a sequence of rules", name);

	for (yaml_node_item_t *i = value->data.sequence.items.start; i < value->data.sequence.items.top; i++) {
		_cleanup_(conf_topology_done) conf_topology t = {};
		yaml_node_t *item = yaml_document_get_node(w->doc, *i);
		char section[48];

		snprintf(section, sizeof section, "%s[%td]", name, i - value->data.sequence.items.start);
		if (!item || conf_node_is_null(item) || item->type != YAML_MAPPING_NODE)
			return conf_fail(w, item ?: value, "%s: expected a mapping with service, path and value",
					 section);
		int r = conf_walk_mapping(w, conf_topology_keys, section, item, &t);
		if (r < 0)
			return r;
		if (!t.service || !t.path || !t.value)
			return conf_fail(w, item, "%s: %s is required", section,
					 !t.service ? "service" : !t.path ? "path" : "value");

		conf_topology *grown = reallocarray(c->topology, c->n_topology + 1, sizeof *c->topology);
		if (!grown)
			return -ENOMEM;
		c->topology = grown;
		c->topology[c->n_topology++] = t;
		t = (conf_topology) {};
	}
	return 0;
}

/* `initial` and `initial_file` fill the same field; whichever comes second
 * finds it set. */
static int conf_check_initial_unset(conf_walk *w, const yaml_node_t *key, json_t *const *p) {
	if (*p)
		return conf_fail(w, key, "initial and initial_file are mutually exclusive");
	return 0;
}

static int parse_initial(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	json_t **p = field, *v = NULL;

	int r = conf_check_initial_unset(w, key, p);
	if (r < 0)
		return r;
	if (value->type != YAML_MAPPING_NODE)
		return conf_fail(w, value, "%s: expected a mapping of file names to values", name);
	r = conf_yaml_to_json(w, name, value, &v);
	if (r < 0)
		return r;
	*p = v;
	return 0;
}

/* A warning for corrald to log once the file is loaded. */
_printf_(2, 3) static int conf_warn(conf_walk *w, const char *fmt, ...) {
	size_t n = strv_length(w->conf->warnings);
	char **v = reallocarray(w->conf->warnings, n + 2, sizeof *v);
	va_list ap;
	int r;

	if (!v)
		return -ENOMEM;
	w->conf->warnings = v;
	va_start(ap, fmt);
	r = vasprintf(&v[n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		v[n] = NULL;
		return -ENOMEM;
	}
	v[n + 1] = NULL;
	return 0;
}

/* The JSON file's own place goes into the error (file, line, column are the
 * JSON's), and the message says which key named it. The file is read as
 * CMS reads its config (tree_load()): a repeated key keeps its last value,
 * with a warning. */
static int parse_initial_file(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			      yaml_node_t *value, void *field) {
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_t **p = field;
	json_error_t jerr;
	tree_dups dups = {};
	size_t size;

	int r = conf_check_initial_unset(w, key, p);
	if (r < 0)
		return r;
	r = conf_scalar_dup(w, name, "a path", value, &path);
	if (r < 0)
		return r;
	r = conf_read_file(path, false, &text, &size);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: cannot read \"%.128s\": %s", name, ESC(path), strerror(-r));

	json_auto_t *v = NULL;
	r = tree_load(text, size, &v, &dups, &jerr);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		unsigned yl = (unsigned) value->start_mark.line + 1, yc = (unsigned) value->start_mark.column + 1;
		snprintf(w->err->message, sizeof w->err->message, "%s (%s at %.64s:%u:%u)", ESC_JERR(&jerr), name,
			 w->err->file, yl, yc);
		snprintf(w->err->file, sizeof w->err->file, "%s", path);
		w->err->line = jerr.line > 0 ? (unsigned) jerr.line : 0;
		w->err->column = jerr.line > 0 ? (unsigned) (jerr.column > 0 ? jerr.column : 1) : 0;
		return -EINVAL;
	}
	for (size_t i = 0; r == 0 && i < dups.n; i++)
		r = conf_warn(w, "%s:%u:%u: duplicate key \"%s\" (%s: the value kept is the last one, as in CMS)",
			      ESC(path), dups.v[i].line, dups.v[i].column,
			      dups.v[i].key ? ESCN(dups.v[i].key, dups.v[i].key_len) : "?", name);
	tree_dups_done(&dups);
	if (r < 0)
		return r;
	if (!json_is_object(v))
		return conf_fail(w, value, "%s: \"%.128s\" does not hold a JSON object of file names to values", name,
				 ESC(path));
	*p = TAKE_PTR(v);
	return 0;
}

static int parse_units_bus(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			   void *field) {
	_cleanup_free_ char *s = NULL;
	bool *p = field;

	int r = conf_scalar_dup(w, name, "system or user", value, &s);
	if (r < 0)
		return r;
	if (streq(s, "system"))
		*p = false;
	else if (streq(s, "user"))
		*p = true;
	else
		return conf_fail(w, value, "%s: unknown bus \"%.32s\" (expected system or user)", name, s);
	return 0;
}

/* The spellings the initial values read as JSON booleans. */
static int parse_bool(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	_cleanup_free_ char *s = NULL;
	bool *p = field;

	int r = conf_scalar_dup(w, name, "true or false", value, &s);
	if (r < 0)
		return r;
	if (streq(s, "true") || streq(s, "True") || streq(s, "TRUE"))
		*p = true;
	else if (streq(s, "false") || streq(s, "False") || streq(s, "FALSE"))
		*p = false;
	else
		return conf_fail(w, value, "%s: \"%.32s\" is not true or false", name, s);
	return 0;
}

/* Snapshots kept besides the current one; at least one, so that there is
 * always something to roll back to. */
static int parse_history(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	_cleanup_free_ char *s = NULL;
	unsigned *p = field;
	char *end;

	int r = conf_scalar_dup(w, name, "a number", value, &s);
	if (r < 0)
		return r;
	if (strspn(s, "0123456789") != strlen(s))
		return conf_fail(w, value, "%s: \"%.32s\" is not a whole number", name, s);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE || v < 1 || v > CONF_MAX_HISTORY)
		return conf_fail(w, value, "%s: must be between 1 and %u", name, CONF_MAX_HISTORY);
	*p = (unsigned) v;
	return 0;
}

/* Cross-key checks that still have the document, so they point at a place. */
static int conf_check_walked(conf_walk *w, yaml_node_t *root, conf *c) {
	if (c->max_wait_usec < c->debounce_usec) {
		yaml_node_t *v = NULL;
		if (!conf_mapping_key(w, root, "max_wait", &v))
			conf_mapping_key(w, root, "debounce", &v);
		return conf_fail(w, v, "max_wait must be at least debounce");
	}
	if (c->write_retry_max_usec < c->write_retry_usec) {
		yaml_node_t *v = NULL;
		if (!conf_mapping_key(w, root, "write_retry_max", &v))
			conf_mapping_key(w, root, "write_retry", &v);
		return conf_fail(w, v, "write_retry_max must be at least write_retry");
	}
	return 0;
}

/* ---- the schema --------------------------------------------------------- */

static const conf_key conf_etcd_keys[] = {
	{ "endpoints",       parse_urls,         offsetof(conf_etcd, endpoints) },
	{ "ca_file",         parse_string,       offsetof(conf_etcd, ca_file) },
	{ "cert_file",       parse_string,       offsetof(conf_etcd, cert_file) },
	{ "key_file",        parse_string,       offsetof(conf_etcd, key_file) },
	{ "username",        parse_string,       offsetof(conf_etcd, username) },
	{ "password",        parse_secret,       offsetof(conf_etcd, password) },
	{ "password_file",   parse_secret_file,  offsetof(conf_etcd, password) },
	{ "request_timeout", parse_duration_key, offsetof(conf_etcd, request_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "connect_timeout", parse_duration_key, offsetof(conf_etcd, connect_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "attempt_timeout", parse_duration_key, offsetof(conf_etcd, attempt_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "watch_progress_timeout", parse_duration_key, offsetof(conf_etcd, watch_progress_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{}
};

static const conf_key conf_ec2_keys[] = {
	{ "region",           parse_name,   offsetof(conf_ec2, region) },
	{ "endpoint",         parse_string, offsetof(conf_ec2, endpoint) },
	{ "imds_endpoint",    parse_string_or_empty, offsetof(conf_ec2, imds_endpoint) },
	{ "credentials_file", parse_string, offsetof(conf_ec2, credentials_file) },
	{ "profile",          parse_string, offsetof(conf_ec2, profile) },
	{ "instance_id",      parse_name,   offsetof(conf_ec2, instance_id) },
	{ "dmi_dir",          parse_string, offsetof(conf_ec2, dmi_dir) },
	{}
};

static const conf_key conf_keys[] = {
	{ "cluster",   parse_name,         offsetof(conf, cluster) },
	{ "prefix",    parse_prefix,       offsetof(conf, prefix) },
	{ "node_id",   parse_name,         offsetof(conf, node_id) },
	{ "address",   parse_string,       offsetof(conf, address) },
	{ "services",  parse_strv,         offsetof(conf, services) },
	{ "lease_ttl", parse_duration_key, offsetof(conf, lease_ttl_usec), .min_usec = CONF_MIN_LEASE_TTL_USEC },
	{ "log_level", parse_log_level,    offsetof(conf, log_level) },
	{ "etcd",      parse_section,      offsetof(conf, etcd), .section = conf_etcd_keys },
	{ "files",           parse_files,        0 },
	{ "topology",        parse_topology,     0 },
	{ "initial",         parse_initial,      offsetof(conf, initial) },
	{ "initial_file",    parse_initial_file, offsetof(conf, initial) },
	{ "units_bus",       parse_units_bus,    offsetof(conf, units_user_bus) },
	{ "debounce",        parse_duration_key, offsetof(conf, debounce_usec) },
	{ "max_wait",        parse_duration_key, offsetof(conf, max_wait_usec) },
	{ "command_timeout", parse_duration_key, offsetof(conf, command_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "unit_timeout",    parse_duration_key, offsetof(conf, unit_timeout_usec), .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "write_retry",     parse_duration_key, offsetof(conf, write_retry_usec), .min_usec = CONF_MIN_WRITE_RETRY_USEC },
	{ "write_retry_max", parse_duration_key, offsetof(conf, write_retry_max_usec),
	  .min_usec = CONF_MIN_WRITE_RETRY_USEC },
	{ "history",         parse_history,      offsetof(conf, history) },
	{ "ec2",             parse_section,      offsetof(conf, ec2), .section = conf_ec2_keys },
	{ "pool",            parse_name,         offsetof(conf, pool) },
	{ "scale_interval",  parse_duration_key, offsetof(conf, scale_interval_usec), .min_usec = USEC_PER_SEC },
	{ "launch_grace",    parse_duration_key, offsetof(conf, launch_grace_usec), .min_usec = USEC_PER_SEC },
	{ "load_command",       parse_string,       offsetof(conf, load_command) },
	{ "load_interval",      parse_duration_key, offsetof(conf, load_interval_usec), .min_usec = USEC_PER_SEC },
	{ "wind_down_command",  parse_string,       offsetof(conf, wind_down_command) },
	{ "interruption_watch", parse_bool,         offsetof(conf, interruption_watch) },
	{ "metrics_listen",     parse_listen,       offsetof(conf, metrics_listen) },
	{}
};

static const conf_key *conf_key_lookup(const conf_key *table, const yaml_node_t *key) {
	for (const conf_key *k = table; k->name; k++)
		if (strlen(k->name) == key->data.scalar.length &&
		    memcmp(k->name, key->data.scalar.value, key->data.scalar.length) == 0)
			return k;
	return NULL;
}

/* Walks one mapping against its table; `section` is its dotted path, ""
 * for the top level, and prefixes every name in messages. */
static int conf_walk_mapping(conf_walk *w, const conf_key *table, const char *section, yaml_node_t *node,
			     void *base) {
	char quoted[80];

	if (node->type != YAML_MAPPING_NODE) {
		if (!*section)
			return conf_fail(w, node, "expected a mapping of keys at the top level");
		return conf_fail(w, node, "%s: expected a mapping", section);
	}

	for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *key = yaml_document_get_node(w->doc, pair->key);
		yaml_node_t *value = yaml_document_get_node(w->doc, pair->value);
		char name[128];

		if (!key || !value)
			return conf_fail(w, node, "%s%sinvalid mapping", section, *section ? ": " : "");
		if (key->type != YAML_SCALAR_NODE)
			return conf_fail(w, key, "%s%skeys must be strings", section, *section ? ": " : "");

		/* Only earlier keys that are known can match: an unknown or
		 * non-scalar key has stopped the walk already. So this costs
		 * at most a table's length per key. */
		for (yaml_node_pair_t *prev = node->data.mapping.pairs.start; prev < pair; prev++) {
			yaml_node_t *pk = yaml_document_get_node(w->doc, prev->key);
			if (pk && pk->type == YAML_SCALAR_NODE && conf_scalar_eq(pk, key))
				return conf_fail(w, key, "duplicate key \"%s%s%s\"", section, *section ? "." : "",
						 conf_quote(key, quoted, sizeof quoted));
		}

		const conf_key *k = conf_key_lookup(table, key);
		if (!k)
			return conf_fail(w, key, "unknown key \"%s%s%s\"", section, *section ? "." : "",
					 conf_quote(key, quoted, sizeof quoted));

		/* Table names are ours and short; 128 bytes is not a limit on
		 * anything a user writes. */
		snprintf(name, sizeof name, "%s%s%s", section, *section ? "." : "", k->name);
		if (conf_node_is_null(value))
			return conf_fail(w, key, "%s: missing value", name);

		int r = k->parse(w, k, name, key, value, (char *) base + k->offset);
		if (r < 0)
			return r;
	}
	return 0;
}

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

bool conf_dmi_is_ec2(const char *dir) {
	static const struct {
		const char *file;
		bool prefix;            /* else: contains */
		const char *text;
	} marks[] = {
		{ "sys_vendor", false, "Amazon EC2" },
		{ "board_asset_tag", true, "i-" },
	};

	for (size_t i = 0; i < ELEMENTSOF(marks); i++) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		if (asprintf(&path, "%s/%s", dir ? dir : CONF_DMI_DIR, marks[i].file) < 0)
			return false;
		/* Unreadable (no DMI, another machine) is simply not EC2. */
		if (conf_read_file(path, false, &text, NULL) < 0)
			continue;
		if (marks[i].prefix ? startswith(text, marks[i].text) : strstr(text, marks[i].text) != NULL)
			return true;
	}
	return false;
}

/* ec2.instance_id: "auto" learns the identity from IMDS at start, "none"
 * says this node is no instance, an id is taken as given; left out, it is
 * "auto" on an EC2 machine (by DMI: probing the metadata address would hang
 * elsewhere) unless IMDS is turned off. */
static int conf_finish_instance(conf *c, conf_error *err) {
	conf_ec2 *e = &c->ec2;
	bool imds_off = e->imds_endpoint && !*e->imds_endpoint;

	if (e->instance_id && (streq(e->instance_id, "auto") || streq(e->instance_id, "none"))) {
		e->instance_auto = streq(e->instance_id, "auto");
		free(e->instance_id);
		e->instance_id = NULL;
		if (e->instance_auto && imds_off)
			return conf_fail_errno(err, -EINVAL,
					       "ec2.instance_id: auto needs the instance metadata service, which "
					       "ec2.imds_endpoint \"\" turns off");
	} else if (!e->instance_id) {
		/* The environment moves the default: a test suite running on an
		 * EC2 machine keeps its corralds off the real IMDS. */
		const char *env = getenv("CORRAL_DMI_DIR");
		e->instance_auto = !imds_off && conf_dmi_is_ec2(e->dmi_dir ? e->dmi_dir : env && *env ? env : NULL);
	}
	return 0;
}

int conf_apply_identity(conf *c, const char *instance_id, const char *address, const char *pool) {
	_cleanup_free_ char *id = NULL, *node = NULL, *addr = NULL, *p = NULL;

	if (!c || !instance_id)
		return -EINVAL;
	if (!(id = strdup(instance_id)) || (c->node_id_default && !(node = strdup(instance_id))) ||
	    (c->address_default && address && !(addr = strdup(address))) || (!c->pool && pool && !(p = strdup(pool))))
		return -ENOMEM;
	free(c->ec2.instance_id);
	c->ec2.instance_id = TAKE_PTR(id);
	if (node) {
		free(c->node_id);
		c->node_id = TAKE_PTR(node);
	}
	if (addr) {
		free(c->address);
		c->address = TAKE_PTR(addr);
	}
	if (p)
		c->pool = TAKE_PTR(p);
	return 0;
}

/* Everything that needs the whole file: required keys, defaults that depend
 * on other keys, and keys that only make sense together. Required keys have
 * no place to point at, so these errors carry none. */
static int conf_finish(conf *c, conf_error *err) {
	int r;

	if (!c->cluster)
		return conf_fail_errno(err, -EINVAL, "cluster is required");
	if (!c->etcd.endpoints)
		return conf_fail_errno(err, -EINVAL, "etcd.endpoints is required");
	if (c->etcd.password && !c->etcd.username)
		return conf_fail_errno(err, -EINVAL, "etcd.username is required with a password");

	if (!c->prefix && asprintf(&c->prefix, "/corral/%s", c->cluster) < 0) {
		c->prefix = NULL;
		return -ENOMEM;
	}
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
	r = conf_finish_instance(c, err);
	if (r < 0)
		return r;
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

/* Reader errors (bad UTF-8, control characters) come with a byte offset
 * instead of a mark; count lines and characters up to it ourselves so that
 * every syntax error has a place. Assumes UTF-8, which is what we get. */
static void conf_offset_to_place(const char *text, size_t len, size_t offset, unsigned *line, unsigned *column) {
	unsigned l = 1, c = 1;

	for (size_t i = 0; i < offset && i < len; i++) {
		if (text[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char) text[i] & 0xc0) != 0x80)
			c++;
	}
	*line = l;
	*column = c;
}

static int conf_syntax_error(const yaml_parser_t *p, const char *text, size_t len, conf_error *err) {
	if (p->error == YAML_MEMORY_ERROR)
		return -ENOMEM;

	if (p->error == YAML_READER_ERROR)
		conf_offset_to_place(text, len, p->problem_offset, &err->line, &err->column);
	else {
		err->line = (unsigned) p->problem_mark.line + 1;
		err->column = (unsigned) p->problem_mark.column + 1;
	}
	/* The context says where the construct that went wrong began, which
	 * for an unclosed bracket or quote is far from where it was noticed. */
	if (p->context)
		snprintf(err->message, sizeof err->message, "invalid YAML: %s (%s at line %zu)",
			 p->problem ?: "syntax error", p->context, p->context_mark.line + 1);
	else
		snprintf(err->message, sizeof err->message, "invalid YAML: %s", p->problem ?: "syntax error");
	return -EINVAL;
}

static int conf_load(const char *text, size_t len, const char *name, conf **out, conf_error *err) {
	_cleanup_(conf_freep) conf *c = NULL;
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	int r;

	if (!text && len > 0)
		return conf_fail_errno(err, -EINVAL, "no text given");

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->path = strdup(name);
	if (!c->path)
		return -ENOMEM;
	c->lease_ttl_usec = CONF_DEFAULT_LEASE_TTL_USEC;
	c->log_level = LOG_INFO;
	c->etcd.request_timeout_usec = CONF_DEFAULT_REQUEST_TIMEOUT_USEC;
	c->etcd.connect_timeout_usec = CONF_DEFAULT_CONNECT_TIMEOUT_USEC;
	c->etcd.attempt_timeout_usec = CONF_DEFAULT_ATTEMPT_TIMEOUT_USEC;
	c->etcd.watch_progress_usec = CONF_DEFAULT_WATCH_PROGRESS_USEC;
	c->debounce_usec = CONF_DEFAULT_DEBOUNCE_USEC;
	c->max_wait_usec = CONF_DEFAULT_MAX_WAIT_USEC;
	c->command_timeout_usec = CONF_DEFAULT_COMMAND_TIMEOUT_USEC;
	c->unit_timeout_usec = CONF_DEFAULT_UNIT_TIMEOUT_USEC;
	c->write_retry_usec = CONF_DEFAULT_WRITE_RETRY_USEC;
	c->write_retry_max_usec = CONF_DEFAULT_WRITE_RETRY_MAX_USEC;
	c->history = CONF_DEFAULT_HISTORY;
	c->scale_interval_usec = 30 * USEC_PER_SEC;
	c->launch_grace_usec = 300 * USEC_PER_SEC;
	c->load_interval_usec = 10 * USEC_PER_SEC;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *) (text ?: ""), len);

	/* yaml_parser_load() frees the document itself when it fails. */
	if (!yaml_parser_load(&parser, &doc)) {
		r = conf_syntax_error(&parser, text, len, err);
		yaml_parser_delete(&parser);
		return r;
	}

	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && !conf_node_is_null(root)) {
		conf_walk w = { .doc = &doc, .err = err, .conf = c };
		r = conf_walk_mapping(&w, conf_keys, "", root, c);
		if (r >= 0)
			r = conf_check_walked(&w, root, c);
	} else
		r = 0;  /* an empty file: conf_finish() names what is missing */

	/* A second document would otherwise be ignored without a word; load
	 * it to refuse it (and to report a syntax error further down). */
	if (r >= 0) {
		if (!yaml_parser_load(&parser, &extra))
			r = conf_syntax_error(&parser, text, len, err);
		else {
			yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
			if (extra_root) {
				conf_walk w = { .doc = &extra, .err = err };
				r = conf_fail(&w, extra_root, "only one YAML document is allowed");
			}
			yaml_document_delete(&extra);
		}
	}

	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r < 0)
		return r;

	r = conf_finish(c, err);
	if (r < 0)
		return r;

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

conf *conf_free(conf *c) {
	if (!c)
		return NULL;

	free(c->path);
	strv_free(c->warnings);
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
	for (size_t i = 0; i < c->n_files; i++)
		conf_file_done(&c->files[i]);
	free(c->files);
	for (size_t i = 0; i < c->n_topology; i++)
		conf_topology_done(&c->topology[i]);
	free(c->topology);
	json_decref(c->initial);
	free(c->ec2.region);
	free(c->ec2.endpoint);
	free(c->ec2.imds_endpoint);
	free(c->ec2.credentials_file);
	free(c->ec2.profile);
	free(c->ec2.instance_id);
	free(c->ec2.dmi_dir);
	free(c->pool);
	free(c->load_command);
	free(c->wind_down_command);
	free(c->metrics_listen);
	free(c);
	return NULL;
}

const char *conf_error_format(const conf_error *err, char *buf, size_t size) {
	if (!buf || size == 0)
		return buf;
	if (err->line > 0)
		snprintf(buf, size, "%s:%u:%u: %s", err->file, err->line, err->column, err->message);
	else if (err->file[0])
		snprintf(buf, size, "%s: %s", err->file, err->message);
	else
		snprintf(buf, size, "%s", err->message);
	return buf;
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

/* Strict on purpose: digits, an optional fraction, an optional unit, and
 * nothing else — no sign, exponent, spaces or bare ".5". Sub-microsecond
 * fractions are truncated. */
int conf_parse_duration(const char *s, uint64_t *out_usec) {
	static const struct {
		const char *suffix;
		uint64_t usec;
	} units[] = {
		{ "ms", USEC_PER_MSEC },
		{ "s", USEC_PER_SEC },
		{ "m", 60 * USEC_PER_SEC },
		{ "h", 3600 * USEC_PER_SEC },
		{ "", USEC_PER_SEC },
	};
	const char *p = s, *int_start, *frac_start = NULL, *frac_end = NULL;
	uint64_t whole = 0, unit = 0, usec, frac = 0;

	if (!s || !out_usec)
		return -EINVAL;

	int_start = p;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == int_start)
		return -EINVAL;
	if (*p == '.') {
		frac_start = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		frac_end = p;
		if (frac_end == frac_start)
			return -EINVAL;
	}

	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (streq(p, units[i].suffix)) {
			unit = units[i].usec;
			break;
		}
	if (unit == 0)
		return -EINVAL;

	for (const char *q = int_start; *q >= '0' && *q <= '9'; q++)
		if (__builtin_mul_overflow(whole, 10, &whole) || __builtin_add_overflow(whole, (uint64_t) (*q - '0'), &whole))
			return -EINVAL;
	if (__builtin_mul_overflow(whole, unit, &usec))
		return -EINVAL;

	/* Each fractional digit is worth a tenth of the one before; once that
	 * drops below a microsecond the rest cannot matter. */
	uint64_t place = unit;
	for (const char *q = frac_start; q && q < frac_end && place > 0; q++) {
		place /= 10;
		frac += (uint64_t) (*q - '0') * place;
	}
	if (__builtin_add_overflow(usec, frac, &usec))
		return -EINVAL;

	*out_usec = usec;
	return 0;
}
