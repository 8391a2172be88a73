/* names.h — enum <-> JSON name pairs from one table of names indexed by
 * the enum's value, for every codec (scale, rollout, deployment):
 *
 *   static const char *const state_names[_X_STATE_MAX] = { [X_A] = "a", ... };
 *   NAMES_FUNCS(x_state, x_state, state_names)
 *
 * defines x_state_to_string() (NULL out of range or unnamed) and
 * x_state_from_string() (-EINVAL for NULL or an unknown name). */
#pragma once

#include <errno.h>
#include <string.h>

#include "macro.h"

static inline const char *names_to_string(const char *const *names, size_t n, int v) {
	return v >= 0 && (size_t) v < n ? names[v] : NULL;
}

static inline int names_from_string(const char *const *names, size_t n, const char *s, int *out) {
	for (size_t i = 0; s && i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0) {
			*out = (int) i;
			return 0;
		}
	return -EINVAL;
}

/* The casts are safe: every value of these enums fits an int. */
#define NAMES_FUNCS(type, prefix, table)                                        \
	const char *prefix##_to_string(type v) {                                \
		return names_to_string(table, ELEMENTSOF(table), (int) v);      \
	}                                                                       \
	int prefix##_from_string(const char *s, type *out) {                    \
		int v, r = names_from_string(table, ELEMENTSOF(table), s, &v);  \
		if (r == 0)                                                     \
			*out = (type) v;                                        \
		return r;                                                       \
	}
