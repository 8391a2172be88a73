/* scale-report.h — what one scaling cycle saw, decided and did, typed: the
 * leader stores it as <prefix>/scale/metrics (scale_report_to_json) and
 * exports it on /metrics (metrics_write_scale, metrics.h) from these
 * structs, never from the JSON text. Pure. docs/metrics.md has the
 * document's fields. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "scale-observe.h"
#include "scale.h"

typedef struct scale_report {
	time_t time;                    /* the decision's now */
	int64_t revision;               /* the etcd revision it read */
	const scale_records *records;   /* inputs: maintenance, stop, prices, reservations, ... */
	const scale_observed *observed; /* inputs: hosts, queues; consistency counts */
	const scale_output *out;        /* per pool metrics, actions */
	const char *const *launched;    /* instance ids launched or adopted */
	size_t n_launched;
	const char *const *errors;      /* what went wrong, as text */
	size_t n_errors;
	int records_by_state[_SCALE_STATE_MAX]; /* host records after the cycle's changes */
} scale_report;

/* The scale/metrics document: {"time", "revision", "pools", "actions",
 * "launched", "errors", "inputs", "consistency"}. New reference or NULL. */
json_t *scale_report_to_json(const scale_report *r);

/* ---- log lines -------------------------------------------------------------------- */

/* "scale: VERB key=value key=value ..." into buf (always NUL-terminated,
 * cut at size). kv holds key, value pairs ending with a NULL key; a NULL
 * value leaves its pair out. A value that is empty or holds a space, '"',
 * '=' or '\\' is quoted ("..." with \" and \\); control bytes become
 * spaces, so a line never breaks. Returns buf. */
char *scale_log_line(char *buf, size_t size, const char *verb, const char *const *kv);

/* One pool's decision line: "scale: decision pool=web desired=3 ready=2
 * launching=0 draining=0 unhealthy=0 terminating=0 held=0 jobs=5 queue=2
 * launch=1 drain=0 undrain=0 terminate=0 mark=0 note=..." (out->metrics[i]
 * and the pool's actions). With with_load false the jobs and queue are
 * left out: that text is the pool's "change key" (a new decision line and
 * a history record only when it differs from the last one). */
char *scale_decision_line(const scale_output *out, size_t i, bool with_load, char *buf, size_t size);

/* ---- scaling status (<prefix>/scale/status) ---------------------------------------- */

typedef enum scale_status_code {
	SCALE_STATUS_OK,                /* the last cycle decided and acted */
	SCALE_STATUS_NO_POLICY,         /* no scale/policy: nothing to scale (not an error) */
	SCALE_STATUS_NO_REGION,         /* the leader has no ec2.region */
	SCALE_STATUS_NO_CREDENTIALS,    /* no AWS credentials found */
	SCALE_STATUS_EC2_DENIED,        /* EC2 refused the credentials or the call */
	SCALE_STATUS_EC2_UNREACHABLE,   /* no answer from EC2 after the retries */
	SCALE_STATUS_POLICY_INVALID,    /* scale/policy does not parse */
	SCALE_STATUS_ETCD,              /* the leader cannot read etcd */
	SCALE_STATUS_FAILED,            /* anything else: the reason says */
	_SCALE_STATUS_MAX,
} scale_status_code;

/* "ok", "no_policy", "no_region", "no_credentials", "ec2_denied",
 * "ec2_unreachable", "policy_invalid", "etcd", "failed". */
const char *scale_status_code_to_string(scale_status_code c);
int scale_status_code_from_string(const char *s, scale_status_code *out);

#define SCALE_STATUS_REASON_MAX 400

typedef struct scale_status {
	scale_status_code code;
	char reason[SCALE_STATUS_REASON_MAX];   /* one line; "" when ok */
	time_t since;                   /* when this code (and reason) began */
	int64_t interval;               /* the leader's evaluation interval, seconds */
	int64_t token;                  /* the leader's fencing token */
} scale_status;

/* true: scaling works (ok, or no policy to follow). */
bool scale_status_working(scale_status_code c);
/* {"state": "ok"|"off"|"stopped", "code", "reason", "since", "interval", "token"}. */
json_t *scale_status_to_json(const scale_status *s);
/* -EINVAL when j is not such a record. */
int scale_status_from_json(const json_t *j, scale_status *out);
/* Whether next differs from prev (NULL: none) in code or reason: then it
 * is written (with since = now), else kept (status is written on change,
 * not on every cycle). */
bool scale_status_changed(const scale_status *prev, const scale_status *next);

/* What `corralctl status` prints about scaling, one line (no newline):
 *   scaling: ok, last decision 12s ago, next evaluation in 18s
 *   scaling: stopped since 2026-12-04T01:02:03Z: no EC2 region (set ec2.region)
 *   scaling: off since ...: no scale/policy
 *   scaling: stale: no evaluation for 5m (is a leader running its scaler?)
 *   scaling: unknown: no leader has reported
 * st NULL: no record. last_cycle: scale/metrics' time (0: none);
 * last_decision: the newest history record's time (0: none). Returns
 * whether what the leader last decided is current (false: a desired count
 * shown beside it is stale). */
bool scale_status_line(const scale_status *st, time_t last_cycle, time_t last_decision, time_t now, char *buf,
		       size_t size);

/* ---- decision history (<prefix>/scale/history/<seq>) ------------------------------- */

/* The records kept: the leader deletes older ones in the txn that writes
 * a new one (docs/scale.md, "Decision history"). */
#define SCALE_HISTORY_MAX 500

/* The id of history record seq: 20 digits, so keys sort by seq. */
void scale_history_id(int64_t seq, char buf[static 24]);
/* seq from an id (len bytes); -EINVAL when not one. */
int scale_history_seq(const char *id, size_t len, int64_t *out);
/* One decision that changed something: {"seq", "time", "token",
 * "revision", "maintenance", "stop", "pools" (per pool inputs and
 * outputs: hosts by state, jobs, capacity, queue, policy_hosts,
 * desired_hosts, note, ...), "actions", "launched", "orphans_terminated"
 * (tagged instances without a record), "gone" (records whose instance
 * is gone, now terminated), "outcome" ("ok", or
 * "errors" when something went wrong: "errors" says what)}. */
json_t *scale_history_to_json(const scale_report *r, int64_t seq, int64_t token);

/* "scale: status state=stopped code=no_region since=... reason=\"...\""
 * (scale_log_line); a change of status is logged at warning when it stops
 * scaling, info otherwise. */
char *scale_status_log_line(const scale_status *st, char *buf, size_t size);
