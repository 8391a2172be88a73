/* deployment.h — tenant deployments on hosts (issue 18, docs/deployments.md):
 * the records, the lifecycle policy, and the lifecycle decision as a pure
 * function of (deployments, hosts, policy, now).
 *
 *   deployments/<id>          the deployment (operator, application, leader)
 *   deployment_reports/<id>   its host's report on the last hook ordered (node)
 *   deployment_policy         durations, the notice command (operator)
 *
 * The leader's loop (lifecycle.h) reads these with nodes/, scale/hosts/,
 * scale/policy and maintenance at one revision, calls deployment_observe()
 * and deployment_decide(), and writes each changed record with a
 * compare-and-set on its mod_revision (fenced by the leader's token), then
 * sends the action's notices. A node (hooks.h) runs the hook a record's
 * order names when the order's host is that node, and reports.
 *
 * Life of a deployment:
 *   pending      placed on a host (or waiting for one), deploy ordered;
 *                active once the host's deploy hook succeeded
 *   active       in use
 *   maintenance  no activity for inactive_after: maintenance_on ran; a touch
 *                or reclaim (last_active after it began) orders
 *                maintenance_off and it is active again; reclaim_within
 *                without one: removal
 *   expired      license_expires passed: removal
 *   removed      the remove hook ran (after a backup unless skipped); host
 *                cleared; the record stays, with where the backup is
 * Removal (expired, inactive, or the operator's `deployment remove`) is
 * backup -> remove; a failed hook is retried after `retry` (doubling, at
 * most 8 times as long) and reported in the record's error; the deployment
 * is never removed without a backup that succeeded (for this removal),
 * unless the operator asked --no-backup.
 *
 * Notices are recorded in the record (kind -> time) in the same write that
 * decides them, and sent by the leader only after that write is stored: at
 * most once, as the rollout's `once` steps. Kinds:
 *   expiry_<d>         d before license_expires, one per policy expiry_notices
 *                      entry ("expiry_7d", "expiry_1d"); only the latest due
 *                      is sent when the leader was away for several
 *   expired            at expiry, with how to set it up again
 *   inactive_warning   inactive_warning before maintenance would begin
 *   maintenance        maintenance began; how to reclaim
 *   removed            removed; where the backup is, how to set it up again
 * Inactivity notices belong to one idle spell: activity after them drops
 * them from the record (the next spell warns again). Expiry notices belong
 * to one license: a license moved out of every notice's reach drops them.
 *
 * Ownership: the codecs fill structs that own their strings (_done frees).
 * deployment_decide() borrows its input; each action owns its new record.
 * Times are time_t seconds (0: none); in JSON, RFC 3339 strings (rfc3339.h). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "macro.h"

/* ---- enums ----------------------------------------------------------------------- */

typedef enum deployment_state {
	DEPLOYMENT_PENDING,
	DEPLOYMENT_ACTIVE,
	DEPLOYMENT_MAINTENANCE,
	DEPLOYMENT_EXPIRED,
	DEPLOYMENT_REMOVED,
	_DEPLOYMENT_STATE_MAX,
} deployment_state;

/* The node hooks (corrald.yaml `deployments:`), in the order of a life. */
typedef enum deployment_hook {
	DEPLOYMENT_HOOK_DEPLOY,
	DEPLOYMENT_HOOK_MAINTENANCE_ON,
	DEPLOYMENT_HOOK_MAINTENANCE_OFF,
	DEPLOYMENT_HOOK_BACKUP,
	DEPLOYMENT_HOOK_REMOVE,
	_DEPLOYMENT_HOOK_MAX,
} deployment_hook;

typedef enum deployment_removal_reason {
	DEPLOYMENT_REMOVAL_NONE,
	DEPLOYMENT_REMOVAL_EXPIRED,
	DEPLOYMENT_REMOVAL_INACTIVE,
	DEPLOYMENT_REMOVAL_OPERATOR,
	_DEPLOYMENT_REMOVAL_MAX,
} deployment_removal_reason;

typedef enum deployment_report_state {
	DEPLOYMENT_REPORT_RUNNING,
	DEPLOYMENT_REPORT_DONE,
	DEPLOYMENT_REPORT_FAILED,
	_DEPLOYMENT_REPORT_MAX,
} deployment_report_state;

/* JSON names: "pending", ...; "deploy", "maintenance_on", ...; "expired",
 * "inactive", "operator" ("" for NONE); "running", "done", "failed".
 * to_string: NULL out of range; from_string: -EINVAL unknown. */
const char *deployment_state_to_string(deployment_state s);
int deployment_state_from_string(const char *s, deployment_state *out);
const char *deployment_hook_to_string(deployment_hook h);
int deployment_hook_from_string(const char *s, deployment_hook *out);
const char *deployment_removal_to_string(deployment_removal_reason r);
int deployment_removal_from_string(const char *s, deployment_removal_reason *out);
const char *deployment_report_state_to_string(deployment_report_state s);
int deployment_report_state_from_string(const char *s, deployment_report_state *out);

typedef struct deployment_error {
	char key[128];          /* "deployment.memory", "deployment_policy.retry" */
	char message[256];      /* "deployment.memory: must be > 0" */
} deployment_error;

/* ---- sizes and durations as written by people ------------------------------------ */

/* "2G", "512M", "1536K", "1073741824" (powers of 1024; optional trailing
 * "B"/"iB": "2GiB"), > 0 and < 2^53. 0 or -EINVAL. */
int deployment_parse_size(const char *s, int64_t *out);
/* bytes as the shortest exact "2G", "1536M", "100" (no unit: bytes). buf >= 24. */
const char *deployment_format_size(int64_t bytes, char *buf, size_t size);
/* "7d", "24h", "90m", "30s" or a plain number of seconds; >= 0. 0 or -EINVAL. */
int deployment_parse_duration(const char *s, int64_t *out);
/* seconds as the largest exact unit: "7d", "36h", "90m", "45s". */
const char *deployment_format_duration(int64_t secs, char *buf, size_t size);

/* ---- the policy (deployment_policy) ---------------------------------------------- */

typedef struct deployment_policy {
	int64_t *expiry_notices;        /* s before license_expires, sorted descending,
	                                   unique; default {7d, 1d} */
	size_t n_expiry_notices;
	int64_t inactive_after;         /* s without activity before maintenance (7d) */
	int64_t inactive_warning;       /* s before maintenance the warning goes (24h);
	                                   maintenance waits this long after a late
	                                   warning */
	int64_t reclaim_within;         /* s in maintenance before removal (7d) */
	int64_t retry;                  /* s before a failed hook is ordered again (600),
	                                   doubling per attempt up to 8x */
	char *notice_command;           /* sh -c, run by the leader; NULL: notices are
	                                   recorded and logged only */
	int64_t notice_timeout;         /* s (30) */
	char *pool;                     /* the scale pool whose hosts take deployments:
	                                   unplaced deployments are its demand; NULL:
	                                   the only threshold pool, if just one */
	double memory_threshold;        /* hosts of no threshold pool (0.8) */
	bool consolidate;               /* move deployments off nearly empty on-demand
	                                   hosts (false; docs/deployments.md) */
	int64_t clock_offset;           /* TEST KNOB: s added to the leader's clock for
	                                   this decision (0) */
} deployment_policy;

/* Every default (expiry_notices allocated). 0 or -ENOMEM. */
int deployment_policy_defaults(deployment_policy *p);
/* JSON object -> policy; missing keys take defaults; durations as seconds or
 * "7d"-style strings; unknown keys are errors. -EINVAL with err, -ENOMEM.
 * doc NULL: the defaults. */
int deployment_policy_from_json(json_t *doc, deployment_policy *out, deployment_error *err);
json_t *deployment_policy_to_json(const deployment_policy *p); /* every key */
void deployment_policy_done(deployment_policy *p);

/* ---- the record (deployments/<id>) ----------------------------------------------- */

/* An order for the deployment's host to run a hook. seq 0: none. */
typedef struct deployment_order {
	int64_t seq;            /* unique per deployment, increasing */
	deployment_hook hook;
	char *host;             /* node id that runs it */
	time_t since;           /* when ordered */
} deployment_order;

typedef struct deployment_notice {
	char *kind;             /* "expiry_7d", "expired", ... */
	time_t at;              /* when recorded (sent right after) */
} deployment_notice;

typedef struct deployment {
	char *id;               /* the key's last segment (not stored in JSON) */
	char *owner;            /* contact, NULL: none */
	int64_t memory;         /* bytes reserved on its host, > 0 */
	char *host;             /* node id; NULL: not placed (pending) or removed */
	deployment_state state;
	time_t created;
	time_t state_since;     /* when it entered state */
	time_t license_expires; /* 0: never */
	time_t last_active;     /* application or `corralctl deployment touch|reclaim` */
	/* removal under way (reason NONE: none) */
	deployment_removal_reason removal;
	time_t removal_since;
	bool removal_skip_backup;       /* the operator's --no-backup */
	char *backup;           /* where the last good backup is (backup hook's last
	                           stdout line); NULL: none */
	time_t backup_at;
	deployment_notice *notices;     /* sent, in the order sent */
	size_t n_notices;
	int64_t last_seq;       /* the last order's seq (0: none yet) */
	deployment_order order; /* outstanding (seq 0: none) */
	char *error;            /* the last hook failure, kept until that hook
	                           succeeds; NULL: none */
	int attempts;           /* failures of the hook in error, in a row */
	time_t retry_at;        /* no order before this (0: none) */
	char *last_host;        /* removed: where it ran (the host is cleared) */
	json_t *extra;          /* keys this codec does not know, kept as they are
	                           (an application's own fields); NULL: none */
} deployment;

/* Record JSON -> struct. id is the key's segment (copied). -EINVAL with err
 * naming the key ("deployment.state: unknown state \"x\""), -ENOMEM.
 * Required: memory, state. Times: RFC 3339 strings or null. */
int deployment_from_json(json_t *rec, const char *id, deployment *out, deployment_error *err);
/* Every known key (null when unset), then extra's keys. New ref or NULL. */
json_t *deployment_to_json(const deployment *d);
/* A deep copy. 0 or -ENOMEM. */
int deployment_copy(const deployment *d, deployment *out);
void deployment_done(deployment *d);

/* The time the notice kind was sent, 0: not sent. */
time_t deployment_notice_sent(const deployment *d, const char *kind);

/* Whether d holds memory on its host: it has a host and is not removed
 * (pending, active, maintenance and expired all do: a host with any of
 * them is not idle, its data is there). */
bool deployment_occupies(const deployment *d);

/* ---- the report (deployment_reports/<id>), written by the host ------------------ */

typedef struct deployment_report {
	int64_t seq;            /* the order's */
	deployment_hook hook;
	char *host;
	deployment_report_state state;
	time_t started, ended;  /* ended 0 while running */
	char *output;           /* done: the hook's last stdout line (backup: where) */
	char *error;            /* failed: why ("exit status 1: ...") */
} deployment_report;

int deployment_report_from_json(json_t *doc, deployment_report *out, deployment_error *err);
json_t *deployment_report_to_json(const deployment_report *r);
void deployment_report_done(deployment_report *r);

/* ---- observe: records -> input ---------------------------------------------------- */

/* One record of a folder: the id (the key's last segment, NUL-terminated),
 * the value's bytes, and its mod_revision. */
typedef struct deployment_kv {
	const char *id;
	const char *value;
	size_t len;
	int64_t mod_revision;
} deployment_kv;

/* What the leader's one txn read (and corralctl's, for plan/list). */
typedef struct deployment_records {
	time_t now;                     /* the real clock; observe adds clock_offset */
	const char *policy;             /* deployment_policy text, NULL: defaults */
	size_t policy_len;
	const char *scale_policy;       /* scale/policy text (pools' memory_threshold
	                                   and kind), NULL: none */
	size_t scale_policy_len;
	bool maintenance;               /* cluster maintenance: no action */
	const deployment_kv *deployments;       /* deployments/<id> */
	size_t n_deployments;
	const deployment_kv *reports;   /* deployment_reports/<id> */
	size_t n_reports;
	const deployment_kv *nodes;     /* nodes/<node-id> (live) */
	size_t n_nodes;
	const deployment_kv *hosts;     /* scale/hosts/<instance-id> */
	size_t n_hosts;
} deployment_records;

/* A node that takes deployments: its record has "deployments":
 * {"memory": N}. */
typedef struct deployment_host {
	char *node_id;
	char *pool;             /* NULL: none */
	char *instance_id;      /* NULL: none */
	int64_t memory;         /* capacity, bytes */
	double threshold;       /* its pool's threshold policy's memory_threshold,
	                           else the deployment policy's */
	bool placeable;         /* live, and its scale host record (if any) ready:
	                           not launching, draining, stopped or going */
	bool reserved;          /* its scale host record says reserved-covered */
	int64_t used;           /* memory of the deployments that occupy it */
} deployment_host;

typedef struct deployment_input {
	const deployment_policy *policy;
	deployment *deployments;        /* parsed, sorted by id (good records only) */
	const int64_t *mod_revisions;   /* per deployment: the CAS the write makes */
	const deployment_report **reports;      /* per deployment: its report or NULL */
	size_t n_deployments;
	const deployment_host *hosts;   /* sorted by node id */
	size_t n_hosts;
	bool maintenance;
	time_t now;                     /* with clock_offset */
} deployment_input;

typedef struct deployment_observed {
	deployment_policy policy;
	deployment *deployments;
	int64_t *mod_revisions;
	deployment_report *reports;     /* n_reports parsed */
	size_t n_reports;
	const deployment_report **report_of;    /* per deployment */
	size_t n_deployments;
	deployment_host *hosts;
	size_t n_hosts;
	char **errors;                  /* bad records, skipped ("deployments/x: ...");
	                                   strv, NULL when none */
	size_t n_errors;
	deployment_input input;
} deployment_observed;

/* Records -> input. A malformed deployment or report is skipped with a
 * note in errors (never decided on, never overwritten); a malformed
 * deployment_policy is an error (-EINVAL, err): nothing is decided on a
 * policy nobody meant. -ENOMEM. On failure out is empty. */
int deployment_observe(const deployment_records *r, deployment_observed *out, deployment_error *err);
void deployment_observed_done(deployment_observed *o);

/* ---- placement (pure) ------------------------------------------------------------- */

/* The host for a deployment of `memory` bytes: among placeable hosts where
 * used + memory <= threshold * capacity, reserved-covered hosts first, then
 * the fullest (highest used / capacity before placing), then by node id.
 * Returns the index into hosts, -1 when none fits. */
ssize_t deployment_place(const deployment_host *hosts, size_t n, int64_t memory);

/* Whether a deployment of `memory` could fit an empty host of any of hosts
 * (placeable or not); with no host at all, true (a new host may take it). */
bool deployment_fits_some_host(const deployment_host *hosts, size_t n, int64_t memory);

/* ---- decide ------------------------------------------------------------------------ */

/* One deployment's record to write (compare-and-set on mod_revision), and
 * the notices to send once it is stored. */
typedef struct deployment_action {
	deployment record;      /* owned: the whole new record */
	int64_t mod_revision;   /* the record's as observed */
	const char **notices;   /* kinds (static or pointing into record.notices) */
	size_t n_notices;
	char line[256];         /* for the log: "acme: active -> expired (license
	                           expired 2026-12-24T00:00:00Z); order backup #4 on n1" */
} deployment_action;

typedef struct deployment_output {
	deployment_action *actions;     /* by deployment id */
	size_t n_actions;
	time_t wake;            /* the next time a rule fires (clock_offset
	                           included), 0: none */
	/* counts after this decision, for metrics and `deployment list` */
	int by_state[_DEPLOYMENT_STATE_MAX];
	int unplaced;           /* pending without host, that some host could take */
	int too_big;            /* pending that no empty host could take */
	int failing;            /* with an error (a hook failed, retrying) */
	int orders;             /* outstanding orders */
} deployment_output;

/* Decide. 0, -EINVAL (no policy, now <= 0), -ENOMEM (out left empty).
 * Cluster maintenance: no action (counts still filled). */
int deployment_decide(const deployment_input *in, deployment_output *out);
void deployment_output_done(deployment_output *out);

/* The sentence a notice carries (CORRAL_NOTICE_MESSAGE), for the owner:
 * what happened or will, when, and what to do (reclaim, set up again from
 * the backup). New string or NULL. */
char *deployment_notice_message(const deployment *d, const char *kind, const char *cluster);
