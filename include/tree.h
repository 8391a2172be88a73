/* tree.h — a cluster config as etcd keys, and back.
 *
 * A config is a JSON object mapping file names to JSON values:
 *   {"cms": {"core_services": {"Worker": [["10.0.0.1", 26000]]}, ...},
 *    "ranking": {...}}
 * In etcd each file is a subtree under configs/<config-id>/; this module
 * deals only in the part after that folder, the "leaf path":
 *   cms/core_services/Worker  ->  [["10.0.0.1",26000]]
 *
 * Rules (a leaf's value is JSON text, so types survive):
 *   - an object becomes one path segment per member, recursively;
 *   - every other value (string, number, true/false, null, array) is a leaf
 *     holding its compact JSON text;
 *   - an empty object is a leaf holding "{}", so it survives the round trip;
 *   - a file whose value is not an object is one leaf at the file's name.
 * Segments are escaped so any object key round-trips: '%' is "%25", '/' is
 * "%2F", a NUL byte is "%00", and the empty key is "%" alone (never a valid
 * escape, so nothing clashes). Nothing else is escaped. The same escaping is
 * what users type in corralctl paths ("cms/a%2Fb/c"). Only those escapes,
 * in upper case, are accepted ("%2f", "%41", "%2", a '%' at the end are
 * malformed), so each key has exactly one spelling.
 *
 * Leaf values are compact, keys sorted, and each real printed with the
 * fewest digits (up to 17) that read back as the same double: 0.1 is "0.1",
 * also in an array beside 0.30000000000000004. Strings may hold NUL
 * ("\u0000"). jansson cannot read a key holding NUL back from JSON text, so
 * such a key can only be a segment.
 *
 * Everything here is pure: no I/O, no clock. Errors are -errno with a
 * message naming the offending leaf path. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct tree_leaf {
	char *path;             /* escaped segments joined by '/' */
	char *value;            /* compact JSON text */
} tree_leaf;

typedef struct tree_leaves {
	tree_leaf *v;
	size_t n;               /* sorted by path (bytewise), no duplicates */
} tree_leaves;

typedef struct tree_error {
	char path[256];         /* the leaf path concerned, "" when none,
	                           escaped for messages (esc.h) */
	char message[256];
} tree_error;

void tree_leaves_done(tree_leaves *l);

/* files (an object) -> leaves. -EINVAL when files is not an object, or
 * when a key holding a NUL byte sits inside an array (it would have to be
 * leaf text, which jansson cannot parse back). */
int tree_flatten(json_t *files, tree_leaves *out);

/* leaves -> files. path/value pairs need not be sorted. -EINVAL with err
 * filled for: a value that is not JSON, a malformed escape, a path that is
 * empty or has an empty segment, a leaf that is also a parent of another
 * leaf, the same path twice, a value with a repeated object key. A leaf
 * whose value is a non-empty object (written by hand) is accepted;
 * tree_flatten() splits it again. */
int tree_unflatten(const tree_leaf *leaves, size_t n, json_t **out, tree_error *err);

/* A leaf tree_unflatten() refuses, and why. */
typedef struct tree_fault {
	size_t leaf;            /* index into the leaves given */
	char message[256];
} tree_fault;

/* As tree_unflatten(), but a malformed leaf is left out instead of failing
 * the whole: *out is the document of the well-formed leaves and *faults
 * (*n_faults of them, in path order; NULL when none) lists the others. Of
 * a leaf that is also the parent of others, the parent is the malformed
 * one; of a path given twice, the second. -ENOMEM, or -EINVAL for a leaf
 * without a path or value. */
int tree_unflatten_partial(const tree_leaf *leaves, size_t n, json_t **out, tree_fault **faults, size_t *n_faults);

/* One segment (an object key of len bytes) <-> its escaped form. escape:
 * new string, NULL when out of memory. unescape: -EINVAL for an empty
 * segment, a malformed escape, or a raw '/' or NUL; *out is a new buffer
 * with a NUL after its *out_len bytes. */
char *tree_segment_escape(const char *key, size_t len);
int tree_segment_unescape(const char *seg, size_t len, char **out, size_t *out_len);

/* A user path ("cms/core_services/Worker") -> unescaped segments, as a
 * json array of strings. -EINVAL for an empty path, an empty segment, a
 * bad escape or a segment that is not UTF-8. */
int tree_path_parse(const char *path, json_t **out_segments, tree_error *err);

/* Whether leaf path `path` is `top` or lies under it ("" holds every path).
 * A plain comparison of text: each path has one spelling. */
bool tree_path_within(const char *path, const char *top);

/* The value at segments in files (borrowed), or NULL. No segments: files. */
json_t *tree_get(json_t *files, json_t *segments);

/* Sets the value at segments (stealing no reference: value is copied),
 * creating missing parent objects. -ENOTDIR when a parent on the way is
 * not an object (err names it). Returns 1 when files changed, 0 when the
 * value was already there. */
int tree_set(json_t *files, json_t *segments, json_t *value, tree_error *err);

/* Removes the value at segments. Returns 1 when removed, 0 when absent
 * (also when a parent on the way is not an object). The parent stays, as
 * {} if it held nothing else. */
int tree_delete(json_t *files, json_t *segments);

/* Keys an object of a document repeats (see tree_load()). */
typedef struct tree_dup {
	char *key;              /* the key, key_len bytes; NULL: not known */
	size_t key_len;
	unsigned line, column;  /* its first repetition, 1-based */
	unsigned last_line;     /* the occurrence whose value is kept */
	unsigned count;         /* occurrences in that object (0: not known) */
} tree_dup;

typedef struct tree_dups {
	tree_dup *v;            /* in the order of their first repetitions */
	size_t n;
} tree_dups;

void tree_dups_done(tree_dups *d);

/* The JSON text of a config document (or of any value) read as CMS reads
 * its config files, with Python's json.load: any JSON value, NUL allowed in
 * strings ("\u0000"), and an object key given more than once keeps its
 * last value. *out is exactly what jansson parses. Each key an object
 * repeats is one entry of *dups, with its line; when libyaml (which lists
 * them) cannot read the text as the same document, there is one entry
 * with key NULL at the first repetition jansson found. -EINVAL when the
 * text is not JSON (jerr says what and where), -ENOMEM. */
int tree_load(const char *text, size_t len, json_t **out, tree_dups *dups, json_error_t *jerr);

/* Parses VALUE as corralctl takes it. as_string: VALUE itself is the
 * string. Otherwise VALUE is JSON when it reads as JSON (tree_load(), so
 * dups as there); when it does not, text whose first byte after JSON
 * whitespace is '{', '[' or '"' is refused (-EINVAL, err->message says
 * why and where: a typo like "[1,2" or "{bad" is never stored as a
 * string), and any other text is a string: "hello", "10.0.0.1", "0123",
 * "1e999" (overflow), integers beyond 64 bits, "". -EILSEQ when a string
 * would not be UTF-8 (err->message says so). New reference in *out. */
int tree_value_parse(const char *text, bool as_string, json_t **out, tree_dups *dups, tree_error *err);

/* Leaf-level differences from a to b, in path order: each entry is
 * {"path": p, "op": "add"|"remove"|"change", "old": v, "new": v}, with
 * "old" only for remove/change and "new" only for add/change. v is the
 * leaf's JSON value (a leaf whose text is not JSON: that text as a string);
 * texts that differ only in spelling ("[1,2]", "[1, 2]") are no change.
 * New reference; NULL when out of memory or a path is not UTF-8. */
json_t *tree_diff(const tree_leaves *a, const tree_leaves *b);

/* The precision ("%.*g") at which d prints in its shortest form that
 * reads back as d (Python's repr digits; no exponent below 1e16, so 10.0
 * is "10", to which a JSON or TOML writer adds ".0"). 1..17. Every real
 * corral writes uses it. */
int tree_real_precision(double d);

/* A file's value as its config file text: JSON, pretty (2 spaces), keys
 * sorted, ending in a newline; reals as in leaves. New string. */
char *tree_format_json(json_t *value);

/* A file's value as TOML 1.0 text (files.<name>.format: toml), the same
 * data as tree_format_json() for tomllib.load() to read back:
 *   - objects are tables ([a.b]); an array holding only objects (at least
 *     one) is an array of tables ([[a.c]]); an object anywhere else (inside
 *     a mixed array, say) is an inline table; arrays are inline and may mix
 *     types (["localhost", 26000]);
 *   - a table's key/values come before its sub-tables, which come before
 *     its arrays of tables; otherwise keys are sorted as tree_format_json()
 *     sorts them;
 *   - keys are bare when they match [A-Za-z0-9_-]+, else quoted; strings are
 *     basic strings (\" \\ \b \t \n \f \r, \uXXXX for other control
 *     characters, U+0000 and U+007F included);
 *   - integers stay integers; a real is a float in its shortest round-trip
 *     digits, with ".0" added when those read as an integer (1.0 -> 1.0);
 *   - a null object member is left out (CMS reads a missing key as unset).
 * -EINVAL with err filled when value is not an object (err->path: name) or
 * holds null inside an array (err->path: "name/a/list[2]"); -ENOMEM. On
 * success *out is a new string (empty for {}). name is the file's name,
 * used only in err->path. */
int tree_format_toml(const char *name, json_t *value, char **out, tree_error *err);

/* Equality and deep copy for config documents. jansson 2.14's json_equal()
 * and json_deep_copy() look object keys up by strlen(), so a key holding
 * NUL is lost: {"a\0x": 1, "b": 2} "equals" {"a": 1, "b": 2}. Use these
 * instead. tree_copy: new reference, NULL when out of memory. */
bool tree_equal(json_t *a, json_t *b);
json_t *tree_copy(json_t *value);
