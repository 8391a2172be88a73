/* metrics.h — Prometheus text exposition (format version 0.0.4) and a
 * small HTTP server that serves it, for corrald's /metrics (docs/metrics.md).
 *
 * Writer (prom.c, pure): a growable buffer of families, each introduced
 * once by metrics_family() (its "# HELP" and "# TYPE" lines), followed by
 * its samples. The first error (-ENOMEM, or -EINVAL for a bad name, a
 * family declared twice apart, or a sample outside its family) sticks:
 * later calls do nothing and return it, so a collector may write
 * everything and look once at metrics_buf_take()'s result.
 *
 *   metrics_buf b = {};
 *   metrics_family(&b, "corral_up", METRICS_GAUGE, "1 while corrald runs.");
 *   metrics_sample(&b, "corral_up", NULL, 1);
 *   metrics_family(&b, "corral_scale_hosts", METRICS_GAUGE, "Hosts per state.");
 *   metrics_sample(&b, "corral_scale_hosts", (const char *[]){ "pool", "web", "state", "ready", NULL }, 3);
 *   r = metrics_buf_take(&b, &text, &len);     // text: malloc'ed, the caller's
 *
 * Server (http.c): libmicrohttpd driven by the caller's sd-event loop (no
 * thread of its own): GET or HEAD /metrics runs the collect callback and
 * answers with its text; other paths get 404, other methods 405. It never
 * logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "macro.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the text writer ---- */

typedef enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_UNTYPED,
	_METRICS_TYPE_MAX,
} metrics_type;

typedef struct metrics_buf {
	char *data;                     /* NUL-terminated once anything is written */
	size_t len, cap;
	int error;                      /* the first error, sticky; 0 */
	char **families;                /* names declared so far (once each) */
	size_t n_families;
	const char *current;            /* the family samples go to (in families) */
} metrics_buf;

/* "counter", "gauge", "untyped"; NULL when out of range. */
const char *metrics_type_to_string(metrics_type t);
/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool metrics_name_valid(const char *name);
/* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved). */
bool metrics_label_name_valid(const char *name);

/* "# HELP name help" (help escaped: backslash, newline) and "# TYPE name
 * type". Declaring the current family again does nothing; one declared
 * earlier with another in between is -EINVAL (the format wants a family's
 * lines together). 0 or the sticky error. */
int metrics_family(metrics_buf *b, const char *name, metrics_type type, const char *help);
/* "name{k="v",...} value": name must be the current family's; labels a
 * NULL-terminated list of name, value, name, value... (NULL: none); values
 * escaped (backslash, double quote, newline). 0 or the sticky error. */
int metrics_sample(metrics_buf *b, const char *name, const char *const *labels, double value);
/* Declares the family (if not current) and writes one sample. */
int metrics_gauge(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value);
int metrics_counter(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value);

/* Hands the text over (*out malloc'ed and NUL-terminated, even when empty;
 * *len without the NUL, may be NULL) and resets b. On the sticky error:
 * that error, nothing handed over, b reset. */
int metrics_buf_take(metrics_buf *b, char **out, size_t *len);
/* Frees what b holds and resets it. */
void metrics_buf_done(metrics_buf *b);

/* A sample value as the format spells it into buf (>= 32 bytes): integers
 * without a fraction or exponent ("3", "-12", "1700000000"), NaN, +Inf,
 * -Inf, others with as few digits as read back to the same double. */
const char *metrics_format_value(double v, char *buf, size_t size);
/* Appends s with the escapes of a label value (help: false) or of HELP
 * text (help: true). Sticky error as above. */
int metrics_append_escaped(metrics_buf *b, const char *s, bool help);

/* The leader's scaling metrics (corral_scale_*, docs/metrics.md) from the
 * report of its last cycle, as scaler_last_metrics() returns it (NULL
 * before the first decision: the cycle counters only). Read from the
 * decision's structs, the same ones scale/metrics is written from. 0 or
 * the sticky error. */
struct scale_report;
int metrics_write_scale(metrics_buf *b, const struct scale_report *r, unsigned cycles, unsigned cycles_failed);

/* The leader's rollout metrics (corral_rollout_*, docs/metrics.md) from
 * the last decision its loop carried out (rollout_loop_last(); NULL before
 * the first: the round counters only), decided when it was taken, now for
 * the time in phase. 0 or the sticky error. */
struct rollout_output;
int metrics_write_rollout(metrics_buf *b, const struct rollout_output *out, time_t decided, time_t now,
			  unsigned rounds, unsigned rounds_failed);

/* The lifecycle loop's (corral_deployment*): round counters, failed
 * notices, and from the last decision (NULL before the first: counters
 * only) the deployments per state, failing, unplaced, too big, orders. */
struct deployment_output;
int metrics_write_deployments(metrics_buf *b, const struct deployment_output *out, unsigned rounds,
			      unsigned rounds_failed, unsigned notices_failed);

/* ---- the HTTP server ---- */

/* Writes the whole exposition into b; 0, or -errno to answer 500. */
typedef int (*metrics_collect_fn)(metrics_buf *b, void *userdata);

typedef struct metrics_server metrics_server;

/* Parses "host:port": a numeric IPv4 host ("127.0.0.1:9469",
 * "0.0.0.0:9469") or a bracketed IPv6 one ("[::1]:9469"); port 0-65535 (0:
 * the kernel picks one). 0, or -EINVAL with a reason in err. */
int metrics_listen_parse(const char *listen, struct sockaddr_storage *out, socklen_t *out_len, char *err,
			 size_t err_size);

/* Binds listen (as above) and serves on event. 0, or -errno with a
 * message for the user in err: "metrics_listen 127.0.0.1:9469: address
 * already in use" (-EADDRINUSE), a bad address (-EINVAL), ... collect and
 * userdata must outlive the server. */
int metrics_server_new(metrics_server **out, sd_event *event, const char *listen, metrics_collect_fn collect,
		       void *userdata, char *err, size_t err_size);
/* The port bound (the one picked, for port 0). */
uint16_t metrics_server_port(const metrics_server *s);
/* The address as given. */
const char *metrics_server_listen(const metrics_server *s);
/* Requests answered (any status), for tests and curiosity. */
uint64_t metrics_server_requests(const metrics_server *s);
/* Closes the socket and every connection. NULL-safe. Not from inside
 * collect. */
metrics_server *metrics_server_free(metrics_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(metrics_server *, metrics_server_free);
