/* units.c — sizes ("2G") and durations ("7d") as operators write them, and
 * the field readers the codecs share (deployment-internal.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment-internal.h"
#include "rfc3339.h"

#define SIZE_MAX_BYTES (INT64_C(1) << 53)       /* exact in a JSON number */

/* digits, then a unit from units (one letter each, multipliers in mult);
 * a bare number takes mult 1. */
static int parse_scaled(const char *s, const char *units, const int64_t *mult, const char *const *tails,
			int64_t max, int64_t *out) {
	char *end;
	int64_t m = 1;

	if (!s || !isdigit((unsigned char) *s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -EINVAL;
	if (*end) {
		const char *u = strchr(units, toupper((unsigned char) *end));
		if (!u || !*u)
			return -EINVAL;
		m = mult[u - units];
		end++;
		bool ok = !*end;
		for (size_t i = 0; !ok && tails && tails[i]; i++)
			ok = strcasecmp(end, tails[i]) == 0;
		if (!ok)
			return -EINVAL;
	}
	if (v > (unsigned long long) (max / m))
		return -EINVAL;
	*out = (int64_t) v * m;
	return 0;
}

int deployment_parse_size(const char *s, int64_t *out) {
	static const int64_t mult[] = { INT64_C(1) << 10, INT64_C(1) << 20, INT64_C(1) << 30, INT64_C(1) << 40 };
	static const char *const tails[] = { "B", "iB", NULL };
	int64_t v;

	/* a bare "B" suffix: bytes */
	if (s && *s && (s[strlen(s) - 1] == 'B' || s[strlen(s) - 1] == 'b') && strlen(s) > 1 &&
	    isdigit((unsigned char) s[strlen(s) - 2])) {
		_cleanup_free_ char *c = strndup(s, strlen(s) - 1);
		if (!c)
			return -ENOMEM;
		return deployment_parse_size(c, out);
	}
	if (parse_scaled(s, "KMGT", mult, tails, SIZE_MAX_BYTES - 1, &v) < 0 || v <= 0)
		return -EINVAL;
	*out = v;
	return 0;
}

const char *deployment_format_size(int64_t bytes, char *buf, size_t size) {
	static const char units[] = "KMGT";
	int u = -1;
	int64_t v = bytes;

	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%" PRId64, bytes);
	else
		snprintf(buf, size, "%" PRId64 "%c", v, units[u]);
	return buf;
}

int deployment_parse_duration(const char *s, int64_t *out) {
	static const int64_t mult[] = { 1, 60, 3600, 86400, 604800 };

	return parse_scaled(s, "SMHDW", mult, NULL, INT64_C(1) << 40, out);
}

const char *deployment_format_duration(int64_t secs, char *buf, size_t size) {
	static const struct {
		int64_t s;
		char c;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };

	for (size_t i = 0; secs > 0 && i < ELEMENTSOF(units); i++)
		if (secs % units[i].s == 0) {
			snprintf(buf, size, "%" PRId64 "%c", secs / units[i].s, units[i].c);
			return buf;
		}
	snprintf(buf, size, "%" PRId64 "s", secs);
	return buf;
}

/* ---- the codecs' field readers ------------------------------------------------- */

int dep_fail(deployment_error *err, const char *ctx, const char *key, const char *fmt, ...) {
	char msg[120];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err) {
		if (key)
			snprintf(err->key, sizeof err->key, "%s.%s", ctx, key);
		else
			snprintf(err->key, sizeof err->key, "%s", ctx);
		snprintf(err->message, sizeof err->message, "%.127s: %.120s", err->key, msg);
	}
	return -EINVAL;
}

static json_t *field(json_t *o, const char *key) {
	json_t *v = json_object_get(o, key);
	return json_is_null(v) ? NULL : v;
}

int dep_get_str(json_t *o, const char *ctx, const char *key, char **out, deployment_error *err) {
	json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v))
		return dep_fail(err, ctx, key, "must be a string");
	char *s = strdup(json_string_value(v));
	if (!s)
		return -ENOMEM;
	free(*out);
	*out = s;
	return 0;
}

int dep_get_time(json_t *o, const char *ctx, const char *key, time_t *out, deployment_error *err) {
	json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v) || rfc3339_parse(json_string_value(v), out) < 0)
		return dep_fail(err, ctx, key, "must be an RFC 3339 time like 2026-12-24T00:00:00Z");
	return 0;
}

int dep_get_int(json_t *o, const char *ctx, const char *key, int64_t min, int64_t max, int64_t *out,
		deployment_error *err) {
	json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return dep_fail(err, ctx, key, "must be an integer from %" PRId64 " to %" PRId64, min, max);
	*out = json_integer_value(v);
	return 0;
}

int dep_get_bool(json_t *o, const char *ctx, const char *key, bool *out, deployment_error *err) {
	json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return dep_fail(err, ctx, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

int dep_get_duration(json_t *o, const char *ctx, const char *key, int64_t *out, deployment_error *err) {
	json_t *v = field(o, key);

	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && deployment_parse_duration(json_string_value(v), out) == 0)
		return 0;
	return dep_fail(err, ctx, key, "must be seconds or a duration like 30s, 90m, 24h, 7d");
}

json_t *dep_str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}
