/* macro.h — small helpers shared by every module: scoped cleanup and
 * ownership hand-over, in the manner of systemd's macro.h.
 *
 *   _cleanup_free_ char *s = strdup(x);      freed when s leaves scope
 *   return TAKE_PTR(s);                      hands s to the caller, no free
 *
 * A module that owns a type T provides `T *t_free(T *)` (accepts NULL, returns
 * NULL) and DEFINE_TRIVIAL_CLEANUP_FUNC(T *, t_free) to get `t_freep`. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p)                             \
	({                                      \
		__typeof__(p) _ptr_ = (p);      \
		(p) = NULL;                     \
		_ptr_;                          \
	})

#define TAKE_FD(fd)                             \
	({                                      \
		int _fd_ = (fd);                \
		(fd) = -1;                      \
		_fd_;                           \
	})

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)            \
	static inline void func##p(type *p) {              \
		if (*p)                                    \
			func(*p);                          \
	}

static inline void freep(void *p) {
	free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* NULL-terminated array of strings. */
static inline void strv_free(char **v) {
	if (!v)
		return;
	for (char **s = v; *s; s++)
		free(*s);
	free(v);
}
static inline void strv_freep(char ***v) {
	strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

static inline size_t strv_length(char *const *v) {
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* Appends take (a new string; NULL means it could not be made) to the
 * strv *v of *n strings, which stays NULL-terminated. 0 or -ENOMEM (take
 * freed). */
static inline int strv_take(char ***v, size_t *n, char *take) {
	char **nv;

	if (!take)
		return -ENOMEM;
	nv = (char **) realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv) {
		free(take);
		return -ENOMEM;
	}
	nv[(*n)++] = take;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

/* strv_take() of a formatted string. */
_printf_(3, 4) static inline int strv_takef(char ***v, size_t *n, const char *fmt, ...) {
	char *text = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	return strv_take(v, n, text);
}

/* len bytes as a NUL-terminated string. etcd's keys and values are byte
 * strings with no NUL after them: strndup() may look past len (and
 * ASan's strict_string_checks says so), so copy exactly len. */
static inline char *bytes_dup(const void *s, size_t len) {
	char *d = malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

static inline int streq_ptr(const char *a, const char *b) {
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

#define streq(a, b) (strcmp((a), (b)) == 0)

static inline int startswith(const char *s, const char *prefix) {
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define USEC_PER_SEC  ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)
