/* deployment-internal.h — what the files of src/deployment/ share: the
 * error helper and the JSON field readers of the codecs. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "deployment.h"

/* Fills err ("<ctx>.<key>: message") and returns -EINVAL. */
int dep_fail(deployment_error *err, const char *ctx, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Optional fields: absent or null leave *out as it is. -EINVAL (err) for
 * a wrong type. */
int dep_get_str(json_t *o, const char *ctx, const char *key, char **out, deployment_error *err);
int dep_get_time(json_t *o, const char *ctx, const char *key, time_t *out, deployment_error *err);
int dep_get_int(json_t *o, const char *ctx, const char *key, int64_t min, int64_t max, int64_t *out,
		deployment_error *err);
int dep_get_bool(json_t *o, const char *ctx, const char *key, bool *out, deployment_error *err);
/* A duration: seconds (integer >= 0) or a "7d"-style string. */
int dep_get_duration(json_t *o, const char *ctx, const char *key, int64_t *out, deployment_error *err);

/* A new JSON string, or null for NULL. */
json_t *dep_str_or_null(const char *s);
