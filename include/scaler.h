/* scaler.h — the leader's autoscaling loop around the pure decision
 * (scale.h): observe (etcd at one revision and EC2, then the pure
 * scale_observe(), scale-observe.h), decide, act (carry out the actions,
 * store the new hysteresis state and the report). docs/scale.md, "The
 * leader loop", has which file does what.
 *
 * One cycle:
 *   1. read <prefix>/scale/, load/, nodes/, holds/ and maintenance in one
 *      txn (one revision);
 *   2. DescribeInstances (tag corral:cluster=<cluster>), spot prices for
 *      the pools' types (when a pool allows spot), reserved instances
 *      (failure: decide without, and say so in the metrics);
 *   3. consistency: a record whose instance is gone becomes terminated; a
 *      tagged instance without a record, older than launch_grace, is
 *      recorded terminating and terminated;
 *   4. scale_decide();
 *   5. record changes (fenced txns), TerminateInstances, tags mirrored
 *      (best effort), launches one after another (an instance already
 *      carrying the launch's ClientToken is adopted instead of launched
 *      again), a record per launched instance (fenced);
 *   6. only then scale/state and scale/metrics (fenced).
 * Every etcd write is a txn fenced with the leader's token; a refused
 * fence stops the scaler and reports through fenced() (the caller then
 * calls leader_fence_failed()). A cycle runs every interval and when
 * scale/trigger, scale/policy, scale/stop, holds/ or maintenance change.
 *
 * Part of the core: never logs, reports through callbacks. All on the
 * etcd client's sd-event loop (the EC2 client must use the same one). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ec2.h"
#include "etcd.h"
#include "macro.h"
#include "scale-observe.h"
#include "scale-report.h"

typedef struct scaler scaler;

/* For tests: where a cycle stops as if the leader died there. */
typedef enum scaler_crash {
	SCALER_CRASH_NONE,
	SCALER_CRASH_AFTER_RUN,         /* RunInstances answered, no record written */
	SCALER_CRASH_BEFORE_STATE,      /* records written, scale/state not */
} scaler_crash;

typedef struct scaler_options {
	const char *prefix;             /* "/corral/prod" (no trailing '/') */
	const char *cluster;            /* tag corral:cluster and client tokens */
	int64_t token;                  /* leader fence: create_revision of <prefix>/leader */
	uint64_t interval_usec;         /* 0: 30 s */
	int64_t launch_grace_sec;       /* 0: 300 */
	bool dry_run;                   /* one cycle, decide, report the plan, change nothing */
	scaler_crash crash;             /* tests only */
	/* No EC2 client (ec2 NULL, not for a dry run): the scaler still reads
	 * etcd every cycle and when its keys change, and with a scale/policy
	 * to follow says in scale/status that it cannot scale, with this code
	 * (SCALE_STATUS_OK, the default, means SCALE_STATUS_NO_REGION) and
	 * reason (NULL: "no EC2 region (set ec2.region)"); without a policy,
	 * scaling is off and nothing is wrong. */
	scale_status_code no_ec2_code;
	const char *no_ec2_reason;
} scaler_options;

typedef struct scaler_callbacks {
	/* A cycle ended: error 0, or why it failed (-EPERM: fence refused;
	 * -ECANCELED: stopped at the crash point). summary: the plan text
	 * (dry run) or a one-line account; valid during the call. Optional. */
	void (*cycle)(scaler *s, int error, const char *summary, void *userdata);
	/* A fenced write was refused: the scaler has stopped. Optional. */
	void (*fenced)(scaler *s, void *userdata);
	/* One line per action or decision, key=value ("scale: launch
	 * pool=web ...", "scale: drain instance=i-0abc ...", "scale: decision
	 * pool=web desired=3 ...", docs/scale.md "Log lines"); priority is
	 * syslog's: LOG_INFO, LOG_WARNING for a failure. Valid during the
	 * call. Optional. */
	void (*action)(scaler *s, int priority, const char *line, void *userdata);
	/* Whether the scaler can scale changed (written to scale/status, fenced,
	 * on change only); valid during the call. Optional. */
	void (*status)(scaler *s, const scale_status *st, void *userdata);
} scaler_callbacks;

/* Starts at once (first cycle right away). Options copied; both clients
 * borrowed and must outlive the scaler. ec2 may be NULL (not for a dry
 * run): see no_ec2_code. */
int scaler_new(scaler **out, etcd_client *etcd, ec2_client *ec2, const scaler_options *o,
	       const scaler_callbacks *cb, void *userdata);
/* Decide now (after the cycle in flight, if any). */
void scaler_trigger(scaler *s);
/* Cycles completed (ended with or without error). */
unsigned scaler_cycles(const scaler *s);
/* Of those, the ones that ended with an error. */
unsigned scaler_cycles_failed(const scaler *s);
/* The report behind the last <prefix>/scale/metrics document this scaler
 * wrote (scale-report.h; borrowed, valid until the next cycle that writes
 * one ends or the scaler is freed), NULL before the first. */
const scale_report *scaler_last_metrics(const scaler *s);
/* Stopped for good (fence refused or crash point reached). */
bool scaler_stopped(const scaler *s);
/* Stops everything at once: EC2 and etcd calls cancelled, timer and
 * watches gone, no callbacks. NULL-safe. Not from inside its callbacks. */
scaler *scaler_free(scaler *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(scaler *, scaler_free);

/* Writes st as <prefix>/scale/status, fenced with token; nothing waits
 * for the answer (a refused fence is the next cycle's to find). For the
 * leader that has no scaler to run (no region, no EC2 client). 0 or
 * -errno (not sent). */
int scaler_status_write(etcd_client *etcd, const char *prefix, const scale_status *st);

/* Dry run, blocking: runs the loop of the etcd client until one cycle has
 * gathered and decided; *plan gets the plan text (scale_plan_format, plus
 * notes) — nothing is written or launched. token is not used. 0 or
 * -errno. Not from inside the loop. (corralctl autoscale -n, which has no
 * EC2, reads scaler_snapshot_read() and decides the same way.) */
int scaler_plan_once(etcd_client *etcd, ec2_client *ec2, const scaler_options *o, char **plan);

/* ---- the etcd half of observe, shared with corralctl ---- */

/* The one txn that reads every record the decision needs at one
 * revision: scale/, load/, nodes/, holds/, maintenance, and the rollout's
 * upgrade/state, upgrade/nodes/ and upgrade/progress/ (a host a rollout has
 * in flight is not drained), upgrade/plan and upgrade/stable (replace by
 * relaunch: which pool, which launch template version), status/ (a
 * replacement must be healthy before its old host drains). */
typedef struct scaler_snapshot_req {
	char *keys[16];
	char *scale_end;                /* scale/ is read past scale/history/ */
	etcd_op ops[16];
	etcd_txn_req txn;
} scaler_snapshot_req;

/* What that txn answered, sorted into scale_records' etcd fields (the
 * EC2 fields, cluster, now and launch_grace are the caller's to fill). */
typedef struct scaler_snapshot {
	etcd_response *response;        /* owned; the records point into it */
	int64_t revision;
	scale_kv *kvs;
	size_t n_kvs;
	scale_policy policy;
	bool have_policy;               /* false: no scale/policy */
	int64_t history_seq;            /* the newest scale/history/<seq>; 0: none */
	const char *status;             /* scale/status as stored (into response); NULL: none */
	size_t status_len;
	scale_records records;
} scaler_snapshot;

int scaler_snapshot_request(scaler_snapshot_req *req, const char *prefix);
void scaler_snapshot_request_done(scaler_snapshot_req *req);
/* Takes resp (owned by s from then on, even on failure): 0, -EINVAL
 * (scale/policy invalid: err says why), -ENOMEM. */
int scaler_snapshot_take(scaler_snapshot *s, const char *prefix, etcd_response *resp, scale_error *err);
void scaler_snapshot_done(scaler_snapshot *s);
/* Blocking: runs the etcd client's loop until the txn answered (the CLI's
 * way). 0, -EINVAL (policy: err), etcd's error (err says it), -ENOMEM. */
int scaler_snapshot_read(etcd_client *etcd, const char *prefix, scaler_snapshot *out, scale_error *err);

/* ---- observe only: the fleet as the leader sees it (corralctl hosts) ---- */

/* Called once with the records and what scale_observe() made of them
 * (both valid during the call only). */
typedef void (*scaler_view_fn)(const scale_records *r, const scale_observed *o, void *userdata);

/* Blocking, on the etcd client's loop: the leader's gather (etcd at one
 * revision; with ec2, DescribeInstances and the rest as a cycle asks) and
 * scale_observe(), then fn; nothing decided, nothing written. ec2 NULL:
 * EC2 not asked (have_instances false). No scale/policy is not an error:
 * an empty policy stands in. now and launch_grace_sec as the leader's
 * (0: 300). 0, or -errno with why (a message, may be "") filled. */
int scaler_view_once(etcd_client *etcd, ec2_client *ec2, const char *prefix, const char *cluster, time_t now,
		     int64_t launch_grace_sec, scaler_view_fn fn, void *userdata, char why[static 512]);
