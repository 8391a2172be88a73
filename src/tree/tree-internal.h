/* tree-internal.h — what the files of the tree module lend each other:
 * json.c's type names, real formatting and writer; tree.c's error and
 * string helpers (for edit.c and load.c). Not installed. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "macro.h"
#include "tree.h"

/* "an object", "an array", "a string", "a number", "a boolean", "null". */
const char *tree_type_name(const json_t *v);

/* d alone in the fewest "%g" digits that read back as d ("0.1", "10",
 * "1e+300"), as tree_format_json() prints a real; snprintf's result. */
int tree_real_format(double d, char *buf, size_t size);

/* value as JSON text, keys sorted: compact (indent 0, a leaf's value) or
 * pretty (indent spaces); a new string, NULL when out of memory. */
char *tree_dump(json_t *value, int indent);

/* err cleared (NULL-safe). */
void tree_error_clear(tree_error *err);
/* err filled (NULL-safe; path escaped for messages); returns -EINVAL. */
_printf_(3, 4) int tree_error_set(tree_error *err, const char *path, const char *fmt, ...);

/* A JSON string from bytes: -EINVAL when they are not UTF-8, -ENOMEM. */
int tree_string_new(const char *s, size_t len, json_t **out);
