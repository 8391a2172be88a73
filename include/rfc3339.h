/* rfc3339.h — times as corral's records, plans and CLI write them: RFC 3339
 * in UTC ("2026-12-24T00:00:00Z"). One parser for every reader (etcd
 * records, EC2's XML, the CLI's --at/--license-expires), one formatter for
 * every writer. */
#pragma once

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#define RFC3339_MAX 32  /* a formatted time with its NUL, with room to spare */

/* "2026-12-24T00:00:00Z", with 't'/'z' accepted, fractional seconds
 * dropped, an offset ("+02:00", "-0530") applied; no zone at all means UTC
 * (EC2 writes some times so). 31 February and the like are refused.
 * 0, or -EINVAL. */
int rfc3339_parse(const char *s, time_t *out);

/* t as "2026-12-24T00:00:00Z" into buf (RFC3339_MAX bytes); "-" for t <= 0.
 * Returns buf. */
const char *rfc3339_format(time_t t, char buf[static RFC3339_MAX]);

/* t as a JSON string, or JSON null for t <= 0. New reference or NULL. */
json_t *rfc3339_json(time_t t);
