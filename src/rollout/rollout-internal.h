/* rollout-internal.h — what the pure rollout files share: the JSON field
 * readers that name the offending key in a rollout_error, time and
 * duration text, and the time-zone conversions of windows and cron. */
#pragma once

#include <stdarg.h>
#include <time.h>

#include <jansson.h>

#include "rollout.h"

/* Fills err ("<key>: <message>") and returns -EINVAL. key may be "". */
_printf_(3, 4) int rollout_fail(rollout_error *err, const char *key, const char *fmt, ...);

/* "<ctx>.<name>" into buf (just name when ctx is ""). */
const char *rollout_key(char *buf, size_t size, const char *ctx, const char *name);

/* Field readers: an absent or null field leaves *out alone unless
 * required (then an error). Each error names ctx.name. */
int rollout_get_str(json_t *o, const char *ctx, const char *name, bool required, char **out, rollout_error *err);
int rollout_get_int(json_t *o, const char *ctx, const char *name, int64_t min, int64_t max, int64_t *out,
		    rollout_error *err);
int rollout_get_bool(json_t *o, const char *ctx, const char *name, bool *out, rollout_error *err);
/* Seconds since the epoch, or an RFC 3339 UTC string ("2026-01-02T03:04:05Z"). */
int rollout_get_time(json_t *o, const char *ctx, const char *name, time_t *out, rollout_error *err);
/* A number of seconds or a duration string ("10m", "30s", "1h", "500ms":
 * conf_parse_duration), rounded up to whole seconds. */
int rollout_get_duration(json_t *o, const char *ctx, const char *name, int64_t *out, rollout_error *err);
/* Refuses any key of o not in allowed (NULL-terminated). */
int rollout_check_keys(json_t *o, const char *ctx, const char *const *allowed, rollout_error *err);
/* o must be an object (or absent: 0 with *out NULL). */
int rollout_get_object(json_t *o, const char *ctx, const char *name, json_t **out, rollout_error *err);

/* json_object_set_new that reports failure (and takes v even then). */
int rollout_set(json_t *o, const char *name, json_t *v);
json_t *rollout_str_or_null(const char *s);

char *rollout_strdup_or_null(const char *s);
/* "2026-01-02T03:04:05Z" (UTC); 0 gives "-". */
const char *rollout_format_time(char *buf, size_t size, time_t t);
/* "15m", "1h30m", "45s". */
const char *rollout_format_duration(char *buf, size_t size, int64_t secs);

/* ---- time zones (window.c) ---------------------------------------------- */

/* tz: NULL or "UTC", "+02:00"/"-0530", or an IANA name found under
 * /usr/share/zoneinfo. -EINVAL with err (key). */
int rollout_tz_check(const char *tz, const char *key, rollout_error *err);
/* t as wall-clock time in tz. */
void rollout_tz_local(const char *tz, time_t t, struct tm *out);
/* The instant of wall-clock time tm in tz (tm normalised first). */
time_t rollout_tz_instant(const char *tz, const struct tm *tm);

/* ---- plan.c / records.c shared ------------------------------------------ */

/* ---- replace.c: observe's part for replaced hosts ------------------------ */
/* Each node's host fields (launch_template_version, image_id, draining,
 * its replacement) from scale/hosts/; the view owns the strings. */
int rollout_observe_hosts(const rollout_records *r, rollout_view *v);
void rollout_node_hosts_done(rollout_node *n);
