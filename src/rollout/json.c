/* json.c — the JSON field readers the rollout codecs share: each error
 * names the key ("batch.max_unavailable: must be >= 1"), so an operator's
 * plan, or a record a node wrote, is refused with the reason. Also time
 * and duration text. jansson: json_object_get borrows. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "rfc3339.h"
#include "rollout-internal.h"

int rollout_fail(rollout_error *err, const char *key, const char *fmt, ...) {
	va_list ap;
	char msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err) {
		snprintf(err->key, sizeof err->key, "%s", key ? key : "");
		if (key && *key)
			snprintf(err->message, sizeof err->message, "%s: %s", key, msg);
		else
			snprintf(err->message, sizeof err->message, "%s", msg);
	}
	return -EINVAL;
}

const char *rollout_key(char *buf, size_t size, const char *ctx, const char *name) {
	if (ctx && *ctx)
		snprintf(buf, size, "%s.%s", ctx, name);
	else
		snprintf(buf, size, "%s", name);
	return buf;
}

/* The field, or NULL when absent or null. */
static json_t *field(json_t *o, const char *name) {
	json_t *v = json_object_get(o, name);
	return json_is_null(v) ? NULL : v;
}

int rollout_get_str(json_t *o, const char *ctx, const char *name, bool required, char **out, rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);

	if (!v)
		return required ? rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "is required") : 0;
	if (!json_is_string(v))
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be a string");
	char *s = strndup(json_string_value(v), json_string_length(v));
	if (!s)
		return -ENOMEM;
	if (strlen(s) != json_string_length(v)) {
		free(s);
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must not hold a NUL byte");
	}
	free(*out);
	*out = s;
	return 0;
}

int rollout_get_int(json_t *o, const char *ctx, const char *name, int64_t min, int64_t max, int64_t *out,
		    rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be an integer");
	int64_t x = json_integer_value(v);
	if (x < min)
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be >= %" PRId64, min);
	if (x > max)
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be <= %" PRId64, max);
	*out = x;
	return 0;
}

int rollout_get_bool(json_t *o, const char *ctx, const char *name, bool *out, rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be true or false");
	*out = json_is_true(v);
	return 0;
}

int rollout_get_time(json_t *o, const char *ctx, const char *name, time_t *out, rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);

	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (time_t) json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && rollout_parse_time(json_string_value(v), out) == 0)
		return 0;
	return rollout_fail(err, rollout_key(k, sizeof k, ctx, name),
			    "must be seconds since the epoch or a UTC time like 2026-01-02T03:04:05Z");
}

int rollout_get_duration(json_t *o, const char *ctx, const char *name, int64_t *out, rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);
	uint64_t usec;

	if (!v)
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be >= 0");
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && conf_parse_duration(json_string_value(v), &usec) == 0 &&
	    usec / USEC_PER_SEC < (uint64_t) INT32_MAX) {
		*out = (int64_t) ((usec + USEC_PER_SEC - 1) / USEC_PER_SEC);
		return 0;
	}
	return rollout_fail(err, rollout_key(k, sizeof k, ctx, name),
			    "invalid duration (expected seconds or e.g. 500ms, 30s, 10m, 1h)");
}

int rollout_check_keys(json_t *o, const char *ctx, const char *const *allowed, rollout_error *err) {
	const char *key;
	json_t *v;
	char k[128];

	json_object_foreach(o, key, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(*a, key) == 0;
		if (!ok)
			return rollout_fail(err, rollout_key(k, sizeof k, ctx, key), "unknown key");
	}
	return 0;
}

int rollout_get_object(json_t *o, const char *ctx, const char *name, json_t **out, rollout_error *err) {
	char k[128];
	json_t *v = field(o, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "must be an object");
	*out = v;
	return 0;
}

int rollout_set(json_t *o, const char *name, json_t *v) {
	return v && json_object_set_new(o, name, v) == 0 ? 0 : -ENOMEM;
}

json_t *rollout_str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}

char *rollout_strdup_or_null(const char *s) {
	return s ? strdup(s) : NULL;
}

const char *rollout_format_time(char *buf, size_t size, time_t t) {
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm))
		snprintf(buf, size, "-");
	else
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int rollout_parse_time(const char *s, time_t *out) {
	return rfc3339_parse(s, out);
}

const char *rollout_format_duration(char *buf, size_t size, int64_t secs) {
	if (secs < 0)
		secs = 0;
	if (secs >= 3600 && secs % 60 == 0)
		snprintf(buf, size, secs % 3600 ? "%" PRId64 "h%" PRId64 "m" : "%" PRId64 "h", secs / 3600,
			 secs % 3600 / 60);
	else if (secs >= 60 && secs % 60 == 0)
		snprintf(buf, size, "%" PRId64 "m", secs / 60);
	else
		snprintf(buf, size, "%" PRId64 "s", secs);
	return buf;
}
