/* fields.c — the typed getters of the autoscaler's JSON codecs (policy.c,
 * schedule.c): each reads one key of an object, checks its type and range,
 * and names the key in its error ("pools.web.max: must be >= min"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-internal.h"

/* snprintf that truncates quietly: keys are bounded, a pool name longer than
 * the buffers is cut in messages only */
_printf_(3, 4) void scale_fmtbuf(char *buf, size_t n, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

_printf_(3, 4) int scale_fail(scale_error *err, const char *key, const char *fmt, ...) {
	if (err) {
		char msg[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		scale_fmtbuf(err->key, sizeof err->key, "%s", key);
		if (*key)
			scale_fmtbuf(err->message, sizeof err->message, "%s: %s", key, msg);
		else
			scale_fmtbuf(err->message, sizeof err->message, "%s", msg);
	}
	return -EINVAL;
}

/* ---- typed getters: each names its key on error ------------------------------------- */

const char *scale_fkey(scale_field *f, const char *base, const char *name) {
	scale_fmtbuf(f->key, sizeof f->key, "%s%s%s", base, *base ? "." : "", name);
	return f->key;
}

int scale_get_int(json_t *o, const char *base, const char *name, long long lo, long long hi, long long *v,
		   scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, name);
	if (!x)
		return 0;
	if (!json_is_integer(x))
		return scale_fail(err, scale_fkey(&f, base, name), "must be an integer");
	long long n = json_integer_value(x);
	if (n < lo)
		return scale_fail(err, scale_fkey(&f, base, name), "must be >= %lld", lo);
	if (n > hi)
		return scale_fail(err, scale_fkey(&f, base, name), "must be <= %lld", hi);
	*v = n;
	return 0;
}

int scale_get_num(json_t *o, const char *base, const char *name, double *v, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, name);
	if (!x)
		return 0;
	if (!json_is_number(x))
		return scale_fail(err, scale_fkey(&f, base, name), "must be a number");
	*v = json_number_value(x);
	return 0;
}

int scale_get_bool(json_t *o, const char *base, const char *name, bool *v, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, name);
	if (!x)
		return 0;
	if (!json_is_boolean(x))
		return scale_fail(err, scale_fkey(&f, base, name), "must be true or false");
	*v = json_is_true(x);
	return 0;
}

/* A non-empty string, copied; absent leaves *v alone unless required. */
int scale_get_str(json_t *o, const char *base, const char *name, bool required, bool null_ok, char **v,
		   scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, name);
	if (!x || (null_ok && json_is_null(x))) {
		if (required)
			return scale_fail(err, scale_fkey(&f, base, name), "is required");
		return 0;
	}
	if (!json_is_string(x) || json_string_length(x) == 0 || strlen(json_string_value(x)) != json_string_length(x))
		return scale_fail(err, scale_fkey(&f, base, name), "must be a non-empty string");
	char *s = strdup(json_string_value(x));
	if (!s)
		return -ENOMEM;
	free(*v);
	*v = s;
	return 0;
}

int scale_check_keys(json_t *o, const char *base, const char *const *known, size_t n, scale_error *err) {
	/* in sorted order, so the error named is the same every time */
	json_auto_t *keys = json_array();
	const char *k;
	json_t *v;
	if (!keys)
		return -ENOMEM;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = streq(known[i], k);
		if (!ok && json_array_append_new(keys, json_string(k)) < 0)
			return -ENOMEM;
	}
	const char *first = NULL;
	size_t i;
	json_array_foreach(keys, i, v) {
		const char *s = json_string_value(v);
		if (s && (!first || strcmp(s, first) < 0))
			first = s;
	}
	if (first) {
		scale_field f;
		return scale_fail(err, scale_fkey(&f, base, first), "unknown key");
	}
	return 0;
}
