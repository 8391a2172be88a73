/* json.c — config documents as JSON values: their type's name for
 * messages, equality and deep copy that keep NUL bytes in keys, and the
 * one JSON writer (leaf values and rendered files; see tree.h). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"
#include "tree-internal.h"
#include "tree.h"

const char *tree_type_name(const json_t *v) {
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
	default:
		return "null";
	}
}

/* ---- equality and copy that keep NUL bytes in keys ------------------------ */

bool tree_equal(json_t *a, json_t *b) {
	const char *key;
	size_t key_len, i;
	json_t *va, *vb;

	if (a == b)
		return true;
	if (!a || !b || json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_keylen_foreach(a, key, key_len, va) {
			vb = json_object_getn(b, key, key_len);
			if (!vb || !tree_equal(va, vb))
				return false;
		}
		return true;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach(a, i, va)
			if (!tree_equal(va, json_array_get(b, i)))
				return false;
		return true;
	default:
		/* scalars: jansson compares strings by length and bytes, numbers
		 * by value (an integer never equals a real) */
		return json_equal(a, b);
	}
}

json_t *tree_copy(json_t *value) {
	const char *key;
	size_t key_len, i;
	json_t *v;

	if (!value)
		return NULL;
	if (json_is_object(value)) {
		json_auto_t *o = json_object();
		if (!o)
			return NULL;
		json_object_keylen_foreach(value, key, key_len, v) {
			json_t *c = tree_copy(v);
			if (!c || json_object_setn_new_nocheck(o, key, key_len, c) < 0)
				return NULL;
		}
		return TAKE_PTR(o);
	}
	if (json_is_array(value)) {
		json_auto_t *a = json_array();
		if (!a)
			return NULL;
		json_array_foreach(value, i, v) {
			json_t *c = tree_copy(v);
			if (!c || json_array_append_new(a, c) < 0)
				return NULL;
		}
		return TAKE_PTR(a);
	}
	return json_deep_copy(value);   /* scalars have no keys */
}

/* ---- writing JSON ---------------------------------------------------------- */

/* jansson 2.14 (Debian, built without dtoa) prints reals with "%.17g" by
 * default: exact, but 0.1 comes out as 0.10000000000000001, and
 * JSON_REAL_PRECISION sets one precision for a whole dump. So each real is
 * printed on its own, at the smallest precision that reads back as the
 * same double (0.1 is "0.1", 0.30000000000000004 keeps its 17 digits, in
 * one array too). %g switches to an exponent once a number has as many
 * integer digits as the precision, so for |d| >= 1 the precision is raised
 * (up to 16, where Python's repr switches too) to keep 10.0 as "10.0", not
 * "1e1"; %g drops trailing zeros, so that costs nothing. */
int tree_real_precision(double d) {
	char buf[40];
	int p;

	for (p = 1; p < 17; p++) {
		snprintf(buf, sizeof buf, "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (fabs(d) >= 1)
		for (; p < 16 && strchr(buf, 'e'); p++)
			snprintf(buf, sizeof buf, "%.*g", p + 1, d);
	/* more digits are not always exact too (7.1362384635297994e44 is at
	 * 14 and 17 digits, not at 16) */
	for (; p < 17 && strtod(buf, NULL) != d; p++)
		snprintf(buf, sizeof buf, "%.*g", p + 1, d);
	return p;
}

typedef struct key_ref {
	const char *key;
	size_t len;
	json_t *value;
} key_ref;

/* Bytewise, a prefix first: the order of JSON_SORT_KEYS. */
static int key_ref_cmp(const void *a, const void *b) {
	const key_ref *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int dump_scalar(json_t *v, FILE *f) {
	size_t flags = JSON_ENCODE_ANY;

	if (json_is_real(v))
		flags |= JSON_REAL_PRECISION(tree_real_precision(json_real_value(v)));
	return json_dumpf(v, f, flags) < 0 ? -ENOMEM : 0;
}

int tree_real_format(double d, char *buf, size_t size) {
	return snprintf(buf, size, "%.*g", tree_real_precision(d), d);
}

static void dump_newline(FILE *f, int indent, int depth) {
	if (indent > 0)
		fprintf(f, "\n%*s", indent * depth, "");
}

/* The layout of jansson's JSON_COMPACT (indent 0) and JSON_INDENT(n) with
 * JSON_SORT_KEYS: only the containers are laid out here; every string (keys
 * included) and number is jansson's own text. */
static int dump_value(json_t *v, FILE *f, int indent, int depth) {
	const char *sep = indent > 0 ? ": " : ":";
	size_t i, n;
	json_t *c;
	int r;

	if (json_is_array(v)) {
		n = json_array_size(v);
		fputc('[', f);
		json_array_foreach(v, i, c) {
			if (i > 0)
				fputc(',', f);
			dump_newline(f, indent, depth + 1);
			if ((r = dump_value(c, f, indent, depth + 1)) < 0)
				return r;
		}
		if (n > 0)
			dump_newline(f, indent, depth);
		fputc(']', f);
		return 0;
	}
	if (!json_is_object(v))
		return dump_scalar(v, f);

	const char *key;
	size_t key_len;
	n = json_object_size(v);
	_cleanup_free_ key_ref *keys = calloc(n ? n : 1, sizeof *keys);
	if (!keys)
		return -ENOMEM;
	i = 0;
	json_object_keylen_foreach(v, key, key_len, c)
		keys[i++] = (key_ref) { key, key_len, c };
	qsort(keys, n, sizeof *keys, key_ref_cmp);
	fputc('{', f);
	for (i = 0; i < n; i++) {
		json_auto_t *k = json_stringn_nocheck(keys[i].key, keys[i].len);
		if (!k)
			return -ENOMEM;
		if (i > 0)
			fputc(',', f);
		dump_newline(f, indent, depth + 1);
		if ((r = dump_scalar(k, f)) < 0)
			return r;
		fputs(sep, f);
		if ((r = dump_value(keys[i].value, f, indent, depth + 1)) < 0)
			return r;
	}
	if (n > 0)
		dump_newline(f, indent, depth);
	fputc('}', f);
	return 0;
}

/* value as JSON text: compact (indent 0) or pretty; a new string. */
char *tree_dump(json_t *value, int indent) {
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	int r = dump_value(value, f, indent, 0);
	if (fclose(f) != 0 || r < 0) {
		free(text);
		return NULL;
	}
	return text;
}

char *tree_format_json(json_t *value) {
	if (!value)
		return NULL;
	_cleanup_free_ char *text = tree_dump(value, 2);
	if (!text)
		return NULL;
	size_t len = strlen(text);
	char *out = realloc(text, len + 2);
	if (!out)
		return NULL;
	text = NULL;
	out[len] = '\n';
	out[len + 1] = '\0';
	return out;
}
