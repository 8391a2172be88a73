/* tree-internal.h — what tree.c lends the other files of the tree module
 * (toml.c). Not installed. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* "an object", "an array", "a string", "a number", "a boolean", "null". */
const char *tree_type_name(const json_t *v);

/* d alone in the fewest "%g" digits that read back as d ("0.1", "10",
 * "1e+300"), as tree_format_json() prints a real; snprintf's result. */
int tree_real_format(double d, char *buf, size_t size);
