/* json-test.h — JSON literals in tests: J("{\"a\": 1}") is the parsed value
 * (a new reference; NUL allowed in strings, any type at the top), or the
 * test fails naming the bad literal. Header-only, like etcd-test.h. */
#pragma once

#include <criterion/criterion.h>
#include <jansson.h>

static inline json_t *J(const char *text) {
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	cr_assert_not_null(v, "bad test JSON %s: %s", text, e.text);
	return v;
}
