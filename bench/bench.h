/* bench.h — what the in-process benchmarks share: a monotonic clock in
 * nanoseconds, a comparison for sorting samples, and a knob from the
 * environment. */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
	return x < y ? -1 : x > y;
}

/* $name as a positive integer, else def. */
static inline int env_int(const char *name, int def) {
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : def;
}
