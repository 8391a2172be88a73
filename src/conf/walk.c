/* walk.c — the shared part of loading corrald.yaml (conf-internal.h): the
 * YAML document, the walk of a mapping against tables of keys, errors with
 * a place, the handlers for the types every part uses (strings, names,
 * lists, durations, booleans) and the file reader.
 *
 * libyaml's document API builds the whole tree first, so every node keeps
 * the place it came from and each error can point at it. Adding a key is
 * adding a row to its part's table; adding a section is a row with
 * conf_parse_section and a nested table. Nothing here knows the keys.
 *
 * A core module: nothing here logs. Every failure is a negative errno and,
 * for the caller to show, a conf_error saying what and where. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "conf-internal.h"

/* The config comes from cloud-init user data (16 KiB on EC2) and the
 * password file is one line: anything this large is a mistake, not data.
 * Files of CONF_FILE_MAX bytes or more are refused with -EFBIG. */
#define CONF_FILE_MAX                     ((size_t) 4 * 1024 * 1024)

int conf_fail(conf_walk *w, const yaml_node_t *node, const char *fmt, ...) {
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
int conf_fail_errno(conf_error *err, int r, const char *fmt, ...) {
	va_list ap;

	err->line = err->column = 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return r;
}

/* Copies a user-supplied key into an error message: at most 64 bytes and
 * control characters as '?', so a garbage key cannot mangle the log line. */
const char *conf_quote(const yaml_node_t *node, char *buf, size_t size) {
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
bool conf_node_is_null(const yaml_node_t *n) {
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
int conf_scalar_dup(conf_walk *w, const char *name, const char *what, yaml_node_t *n, char **ret) {
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

/* A warning for corrald to log once the file is loaded. */
int conf_warn(conf_walk *w, const char *fmt, ...) {
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

/* ---- handlers: one per type ------------------------------------------ */

int conf_parse_string(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
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

/* Like conf_parse_string, but "" is a value ("no IMDS"). */
int conf_parse_string_or_empty(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
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
	return conf_parse_string(w, k, name, key, value, field);
}

/* An identifier that becomes one component of an etcd key
 * ("<prefix>/nodes/<node_id>"), so it cannot contain the separator. */
static int conf_check_name(conf_walk *w, const char *name, const yaml_node_t *node, const char *s) {
	if (strchr(s, '/'))
		return conf_fail(w, node, "%s: must not contain '/'", name);
	return 0;
}

int conf_parse_name(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
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

/* A YAML sequence of scalars. A lone scalar is deliberately not taken as a
 * one-element list: "services: Worker" and "services: [Worker]" would then
 * both work until someone writes "services: Worker, Checker" and gets one
 * service named "Worker, Checker". */
int conf_strv(conf_walk *w, const char *name, yaml_node_t *value, char ***ret) {
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

int conf_parse_strv(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
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


int conf_parse_duration_key(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
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


/* The spellings the initial values read as JSON booleans. */
int conf_parse_bool(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
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

int conf_parse_section(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	return conf_walk_mapping(w, (const conf_key *const[]) { k->section, NULL }, name, value, field);
}

/* ---- the walk ------------------------------------------------------------ */

/* The key node named `name` in mapping `node`, or NULL: for errors about
 * keys that only make sense together, which point at the one that is odd. */
yaml_node_t *conf_mapping_key(conf_walk *w, yaml_node_t *node, const char *name, yaml_node_t **ret_value) {
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

static const conf_key *conf_key_lookup(const conf_key *const *tables, const yaml_node_t *key) {
	for (const conf_key *const *t = tables; *t; t++)
		for (const conf_key *k = *t; k->name; k++)
			if (strlen(k->name) == key->data.scalar.length &&
			    memcmp(k->name, key->data.scalar.value, key->data.scalar.length) == 0)
				return k;
	return NULL;
}

/* `section` prefixes every name in messages. */
int conf_walk_mapping(conf_walk *w, const conf_key *const *tables, const char *section, yaml_node_t *node,
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

		const conf_key *k = conf_key_lookup(tables, key);
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

/* A second document would otherwise be ignored without a word; load it to
 * refuse it (and to report a syntax error further down). */
static int conf_refuse_extra(yaml_parser_t *parser, const char *text, size_t len, conf_error *err) {
	yaml_document_t extra;
	int r = 0;

	if (!yaml_parser_load(parser, &extra))
		return conf_syntax_error(parser, text, len, err);
	yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
	if (extra_root) {
		conf_walk w = { .doc = &extra, .err = err };
		r = conf_fail(&w, extra_root, "only one YAML document is allowed");
	}
	yaml_document_delete(&extra);
	return r;
}

int conf_walk_text(const char *text, size_t len, const conf_key *const *tables, conf *c,
		   int (*check)(conf_walk *w, yaml_node_t *root, conf *c), conf_error *err) {
	yaml_parser_t parser;
	yaml_document_t doc;
	int r;

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
		r = conf_walk_mapping(&w, tables, "", root, c);
		if (r >= 0 && check)
			r = check(&w, root, c);
	} else
		r = 0;  /* an empty file: the parts' finish names what is missing */

	if (r >= 0)
		r = conf_refuse_extra(&parser, text, len, err);

	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return r;
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
