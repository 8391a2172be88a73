/* toml.c — a file's value as TOML 1.0 text, for `format: toml` (the rules
 * are in tree.h). An emitter only: corral never reads TOML (no C TOML
 * library is packaged in Debian 12, and nothing here needs one).
 *
 * TOML ends a table's key/values at the next header, so each table is
 * written in three passes over its members: plain key/values (scalars, and
 * arrays and objects written inline), then its sub-tables ([a.b]), then its
 * arrays of tables ([[a.c]]). Within a pass, keys come in the byte order
 * tree_format_json() sorts them in, so the two renders read alike. */
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"
#include "tree-internal.h"
#include "tree.h"

typedef struct member {
	const char *key;
	size_t len;
	json_t *value;
} member;

/* Where the emitter is: the chain of keys and array indexes from the top,
 * for table headers (keys only) and error paths (with indexes). */
typedef struct frame {
	const struct frame *up;
	const char *key;        /* NULL: element `index` of an array */
	size_t len;
	size_t index;
} frame;

typedef struct emitter {
	FILE *f;
	const char *name;       /* the file's name, first in error paths */
	tree_error *err;
	bool any;               /* something written: headers get a blank line */
} emitter;

enum { PLAIN, TABLE, TABLE_ARRAY };

/* jansson's JSON_SORT_KEYS order: bytes, then length. */
static int member_cmp(const void *a, const void *b) {
	const member *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* obj's members, sorted; a null member is left out (CMS reads a missing key
 * as unset, and TOML has no null). */
static int members_get(json_t *obj, member **out, size_t *n) {
	size_t k = 0, len;
	const char *key;
	json_t *v;
	member *m = calloc(json_object_size(obj) + 1, sizeof *m);

	if (!m)
		return -ENOMEM;
	json_object_keylen_foreach(obj, key, len, v)
		if (!json_is_null(v))
			m[k++] = (member) { .key = key, .len = len, .value = v };
	qsort(m, k, sizeof *m, member_cmp);
	*out = m;
	*n = k;
	return 0;
}

/* An array of tables holds objects only, and at least one. */
static int member_kind(json_t *v) {
	size_t i;
	json_t *c;

	if (json_is_object(v))
		return TABLE;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return PLAIN;
	json_array_foreach(v, i, c)
		if (!json_is_object(c))
			return PLAIN;
	return TABLE_ARRAY;
}

/* A basic string: the escapes TOML has by name, \uXXXX for the other
 * control characters (U+0000 and U+007F included); UTF-8 passes as is. */
static void put_string(FILE *f, const char *s, size_t len) {
	static const char *const named[0x80] = {
		['"'] = "\\\"", ['\\'] = "\\\\", ['\b'] = "\\b", ['\t'] = "\\t",
		['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r",
	};

	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) s[i];
		if (c < 0x80 && named[c])
			fputs(named[c], f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04X", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Bare when TOML allows it (A-Za-z0-9_-, at least one), else quoted. */
static void put_key(FILE *f, const char *key, size_t len) {
	bool bare = len > 0;

	for (size_t i = 0; bare && i < len; i++) {
		char c = key[i];
		bare = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		       c == '-';
	}
	if (bare)
		fwrite(key, 1, len, f);
	else
		put_string(f, key, len);
}

/* A table header's dotted key. An array element adds nothing: [[a]] opens
 * an element and [a.b] then names a table inside that last element. */
static bool put_header_path(FILE *f, const frame *p) {
	if (!p)
		return false;
	bool any = put_header_path(f, p->up);
	if (!p->key)
		return any;
	if (any)
		fputc('.', f);
	put_key(f, p->key, p->len);
	return true;
}

/* An error path as corralctl paths are written ("cms/a%2Fb/list[2]"), with
 * control characters shown as \xHH so a message stays one plain line. */
static void put_error_path(FILE *f, const frame *p) {
	if (!p)
		return;
	put_error_path(f, p->up);
	if (!p->key) {
		fprintf(f, "[%zu]", p->index);
		return;
	}
	_cleanup_free_ char *seg = tree_segment_escape(p->key, p->len);
	fputc('/', f);
	for (const char *s = seg ? seg : "?"; *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			fprintf(f, "\\x%02X", (unsigned) (unsigned char) *s);
		else
			fputc(*s, f);
}

static int fail_at(emitter *e, const frame *at, const char *message) {
	_cleanup_free_ char *path = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&path, &size);

	if (!f)
		return -ENOMEM;
	fputs(e->name, f);
	put_error_path(f, at);
	if (fclose(f) != 0)
		return -ENOMEM;
	if (e->err) {
		snprintf(e->err->path, sizeof e->err->path, "%s", path);
		snprintf(e->err->message, sizeof e->err->message, "%s", message);
	}
	return -EINVAL;
}

static int put_value(emitter *e, json_t *v, const frame *at);

/* "key = value"; at is the frame of the member's table. */
static int put_key_value(emitter *e, const member *m, const frame *at) {
	frame fr = { .up = at, .key = m->key, .len = m->len };

	put_key(e->f, m->key, m->len);
	fputs(" = ", e->f);
	return put_value(e, m->value, &fr);
}

static int put_inline_table(emitter *e, json_t *obj, const frame *at) {
	_cleanup_free_ member *m = NULL;
	size_t n;
	int r = members_get(obj, &m, &n);

	if (r < 0)
		return r;
	fputc('{', e->f);
	for (size_t i = 0; i < n && r >= 0; i++) {
		fputs(i ? ", " : " ", e->f);
		r = put_key_value(e, &m[i], at);
	}
	if (r < 0)
		return r;
	fputs(n ? " }" : "}", e->f);
	return 0;
}

/* A value on one line: objects as inline tables, arrays as they are (TOML
 * 1.0 allows mixed types). Object members that are null never get here. */
static int put_value(emitter *e, json_t *v, const frame *at) {
	char buf[40];
	size_t i;
	json_t *c;
	int r;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return put_inline_table(e, v, at);
	case JSON_ARRAY:
		fputc('[', e->f);
		json_array_foreach(v, i, c) {
			frame fr = { .up = at, .index = i };
			if (i > 0)
				fputs(", ", e->f);
			r = put_value(e, c, &fr);
			if (r < 0)
				return r;
		}
		fputc(']', e->f);
		return 0;
	case JSON_STRING:
		put_string(e->f, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		fprintf(e->f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	case JSON_REAL:
		/* A real stays a float: TOML reads "1" as an integer. */
		tree_real_format(json_real_value(v), buf, sizeof buf);
		fprintf(e->f, "%s%s", buf, strpbrk(buf, ".e") ? "" : ".0");
		return 0;
	case JSON_TRUE:
		fputs("true", e->f);
		return 0;
	case JSON_FALSE:
		fputs("false", e->f);
		return 0;
	case JSON_NULL:
	default:
		return fail_at(e, at, "null inside an array: TOML has no null");
	}
}

static void put_header(emitter *e, const frame *at, bool element) {
	fputs(e->any ? "\n[" : "[", e->f);
	if (element)
		fputc('[', e->f);
	put_header_path(e->f, at);
	fputs(element ? "]]\n" : "]\n", e->f);
	e->any = true;
}

/* True when obj has members and every one is a table or an array of
 * tables: their headers create it, so it needs none of its own. */
static bool table_opened_by_children(json_t *obj) {
	const char *key;
	json_t *v;
	bool any = false;

	json_object_foreach(obj, key, v) {
		if (json_is_null(v))
			continue;
		if (member_kind(v) == PLAIN)
			return false;
		any = true;
	}
	return any;
}

/* A table's body; at is its frame (NULL for the file itself). */
static int put_table(emitter *e, json_t *obj, const frame *at) {
	_cleanup_free_ member *m = NULL;
	size_t n;
	int r = members_get(obj, &m, &n);

	if (r < 0)
		return r;
	for (int pass = PLAIN; pass <= TABLE_ARRAY; pass++)
		for (size_t i = 0; i < n; i++) {
			json_t *v = m[i].value, *c;
			frame fr = { .up = at, .key = m[i].key, .len = m[i].len };
			size_t k;

			if (member_kind(v) != pass)
				continue;
			switch (pass) {
			case PLAIN:
				r = put_key_value(e, &m[i], at);
				fputc('\n', e->f);
				e->any = true;
				break;
			case TABLE:
				/* A table holding only tables is opened by theirs;
				 * an empty one needs its own header to exist. */
				if (!table_opened_by_children(v))
					put_header(e, &fr, false);
				r = put_table(e, v, &fr);
				break;
			case TABLE_ARRAY:
				json_array_foreach(v, k, c) {
					frame el = { .up = &fr, .index = k };
					put_header(e, &fr, true);
					r = put_table(e, c, &el);
					if (r < 0)
						break;
				}
				break;
			}
			if (r < 0)
				return r;
		}
	return 0;
}

int tree_format_toml(const char *name, json_t *value, char **out, tree_error *err) {
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	emitter e = { .name = name ? name : "", .err = err };
	int r;

	if (err)
		*err = (tree_error) { .path = "" };
	if (!value || !out)
		return -EINVAL;
	if (!json_is_object(value)) {
		if (err) {
			snprintf(err->path, sizeof err->path, "%s", e.name);
			snprintf(err->message, sizeof err->message,
				 "the file's value is %s, not an object: a TOML file is a table", tree_type_name(value));
		}
		return -EINVAL;
	}
	e.f = open_memstream(&text, &size);
	if (!e.f)
		return -ENOMEM;
	r = put_table(&e, value, NULL);
	if (fclose(e.f) != 0 && r >= 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	*out = TAKE_PTR(text);
	return 0;
}
