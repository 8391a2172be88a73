/* lifecycle.h — the leader's deployment lifecycle loop (issue 18,
 * docs/deployments.md) around the pure decision (deployment.h), in the
 * scaler's and the rollout's shape:
 *
 *   observe  one etcd txn at one revision: deployments/, deployment_reports/,
 *            nodes/, scale/hosts/, scale/policy, deployment_policy,
 *            maintenance and the leader key; then deployment_observe()
 *   decide   deployment_decide()
 *   act      per action, one txn: compare the leader key's create_revision
 *            (the fence) and the record's mod_revision, put the record; then
 *            the action's notices through the policy's notice_command (a
 *            child, one at a time, on the loop), one log line per action and
 *            per notice
 *
 *   snapshot.c  the txn -> deployment_records (shared with corralctl)
 *   execute.c   the writes and the notices
 *   loop.c      watches on deployments/, deployment_reports/, nodes/,
 *               scale/hosts/ and the two policies (a 30 ms defer coalesces a
 *               burst), a timer at the decision's wake (minus clock_offset),
 *               a slow safety re-read (60 s); no polling interval
 *
 * A record whose compare fails (someone touched it meanwhile) is decided
 * again in the next round, which starts at once; a fence that fails (the
 * leader key is not ours any more) stops the loop and reports fenced().
 *
 * Notices: environment CORRAL_NOTICE (kind), CORRAL_DEPLOYMENT (id),
 * CORRAL_DEPLOYMENT_JSON (the stored record), CORRAL_OWNER, CORRAL_CLUSTER,
 * CORRAL_NOTICE_MESSAGE (deployment_notice_message()); stdin: the same
 * as one JSON object {"notice", "deployment", "record", "message"}. A
 * notice that fails is logged (warning) and counted, never sent again.
 *
 * Part of the core: never logs, reports through callbacks. All on the
 * etcd client's sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "deployment.h"
#include "etcd.h"
#include "macro.h"

/* ---- the etcd half of observe, shared with corralctl ---------------------- */

typedef struct lifecycle_snapshot {
	etcd_response *response;        /* owned; records point into it */
	int64_t revision;
	int64_t leader_create_revision; /* 0: no leader key */
	deployment_kv *kvs;             /* owned; the records' folders point here */
	size_t n_kvs;
	deployment_records records;
} lifecycle_snapshot;

/* The txn's parts (for the loop's asynchronous read). */
typedef struct lifecycle_snapshot_req {
	char *keys[8];
	etcd_op ops[8];
	etcd_txn_req txn;
} lifecycle_snapshot_req;

int lifecycle_snapshot_request(lifecycle_snapshot_req *req, const char *prefix);
void lifecycle_snapshot_request_done(lifecycle_snapshot_req *req);
/* Takes resp (owned by s from then on, even on failure); prefix borrowed.
 * records.now = now. 0 or -ENOMEM. */
int lifecycle_snapshot_take(lifecycle_snapshot *s, const char *prefix, etcd_response *resp, time_t now);

/* Blocking (corralctl deployment list|show|plan): runs the client's loop
 * until the txn answered. records.now = time(NULL). 0, etcd's error (err
 * says it), -ENOMEM. Not from inside the loop. */
int lifecycle_snapshot_read(etcd_client *etcd, const char *prefix, lifecycle_snapshot *out, char *err,
			    size_t err_size);
void lifecycle_snapshot_done(lifecycle_snapshot *s);

/* ---- the loop -------------------------------------------------------------- */

typedef struct lifecycle_loop lifecycle_loop;

typedef struct lifecycle_options {
	const char *prefix;             /* "/corral/prod" */
	const char *cluster;            /* CORRAL_CLUSTER of notices */
	int64_t token;                  /* leader fence */
	uint64_t defer_usec;            /* 0: 30 ms */
	uint64_t reread_usec;           /* 0: 60 s */
} lifecycle_options;

typedef struct lifecycle_callbacks {
	void (*fenced)(lifecycle_loop *l, void *userdata);
	/* One line per action and per notice; warning: a failure (a notice that
	 * failed, a hook that failed, a bad record skipped). Optional. */
	void (*line)(lifecycle_loop *l, bool warning, const char *line, void *userdata);
	/* A round ended: error 0 or why not. Optional. */
	void (*round)(lifecycle_loop *l, int error, const char *why, void *userdata);
} lifecycle_callbacks;

int lifecycle_loop_new(lifecycle_loop **out, etcd_client *etcd, const lifecycle_options *o,
		       const lifecycle_callbacks *cb, void *userdata);
void lifecycle_loop_trigger(lifecycle_loop *l);
/* Stops everything at once (a notice child is killed). NULL-safe. */
lifecycle_loop *lifecycle_loop_free(lifecycle_loop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(lifecycle_loop *, lifecycle_loop_free);

bool lifecycle_loop_stopped(const lifecycle_loop *l);
unsigned lifecycle_loop_rounds(const lifecycle_loop *l);
unsigned lifecycle_loop_rounds_failed(const lifecycle_loop *l);
unsigned lifecycle_loop_notices_failed(const lifecycle_loop *l);
/* The last decision's counts (borrowed until the next round ends), NULL
 * before the first. */
const deployment_output *lifecycle_loop_last(const lifecycle_loop *l);
time_t lifecycle_loop_wake(const lifecycle_loop *l);    /* real clock, 0: none */
