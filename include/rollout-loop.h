/* rollout-loop.h — the leader's rollout loop around the pure decision
 * (rollout.h), in the scaler's shape: observe (one etcd txn at one
 * revision, then rollout_observe()), decide (rollout_decide()), act
 * (fenced txns). docs/upgrades.md, "The leader loop".
 *
 *   snapshot.c  the one txn reading upgrade/, nodes/, status/, holds/,
 *               scale/hosts/ and `current` -> rollout_records; shared with corralctl
 *               (rollout_snapshot_read(), blocking)
 *   execute.c   a rollout_output carried out: orders, deletes, stable and
 *               history first, upgrade/state last, in fenced txns of at
 *               most 100 ops; one line per action
 *   loop.c      watches, the coalescing defer, the wake timer, the fleet
 *               gate (child.h), the metrics getters
 *
 * The loop decides again (coalesced) when anything under upgrade/, nodes/,
 * status/, holds/ or scale/hosts/ changes, at out.wake, and after a slow
 * safety re-read (60 s); there is no polling interval. Every write is a
 * txn that also compares create_revision(<prefix>/leader) == token: a
 * refused fence stops the loop and reports fenced().
 *
 * Part of the core: never logs, reports through callbacks. All on the
 * etcd client's sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ec2.h"
#include "etcd.h"
#include "macro.h"
#include "rollout.h"

/* ---- the etcd half of observe, shared with corralctl ---------------------- */

/* What the one txn answered. records' kvs carry the whole etcd key
 * ("<prefix>/upgrade/nodes/n1"), NUL-terminated, and the value's bytes. */
typedef struct rollout_snapshot {
	etcd_response *response;        /* owned; the records point into it */
	int64_t revision;
	rollout_kv *kvs;                /* owned array; records' folders point into it */
	size_t n_kvs;
	rollout_records records;        /* prefix borrowed from the caller */
} rollout_snapshot;

/* The txn's parts (for the loop's asynchronous read). */
typedef struct rollout_snapshot_req {
	char *keys[6];                  /* the five folders, then `current` */
	etcd_op ops[6];
	etcd_txn_req txn;
} rollout_snapshot_req;

int rollout_snapshot_request(rollout_snapshot_req *req, const char *prefix);
void rollout_snapshot_request_done(rollout_snapshot_req *req);
/* Takes resp (owned by s from then on, even on failure); prefix is
 * borrowed and must outlive s. records.now = now. 0 or -ENOMEM. */
int rollout_snapshot_take(rollout_snapshot *s, const char *prefix, etcd_response *resp, time_t now);
void rollout_snapshot_done(rollout_snapshot *s);

/* Blocking (corralctl upgrade plan|status): runs the etcd client's loop
 * until the txn answered, then fills out (records.now = time(NULL)).
 * 0, etcd's error (err says it), -ENOMEM. Not from inside the loop.
 *
 *     rollout_snapshot snap; rollout_view view;
 *     r = rollout_snapshot_read(etcd, prefix, &snap, err, sizeof err);
 *     r = rollout_observe(&snap.records, &view);   view.input is ready
 *     ... rollout_view_done(&view); rollout_snapshot_done(&snap);  */
int rollout_snapshot_read(etcd_client *etcd, const char *prefix, rollout_snapshot *out, char *err,
			  size_t err_size);

/* ---- the loop -------------------------------------------------------------- */

typedef struct rollout_loop rollout_loop;

typedef struct rollout_loop_options {
	const char *prefix;             /* "/corral/prod" (no trailing '/') */
	int64_t token;                  /* leader fence: create_revision of <prefix>/leader */
	uint64_t defer_usec;            /* coalescing after a change; 0: 30 ms */
	uint64_t reread_usec;           /* safety re-read; 0: 60 s */
	const char *proposer;           /* a rebased candidate's id is
	                                   "<proposer>_<n>" (agree.h); NULL:
	                                   "rollout". corrald: its node id */
	ec2_client *ec2;                /* replace by relaunch with an AMI target:
	                                   makes its launch template version; NULL:
	                                   such a plan waits, and says why */
} rollout_loop_options;

typedef struct rollout_loop_callbacks {
	/* A fenced write was refused: the loop has stopped. Optional; the
	 * loop must not be freed from inside (defer it). */
	void (*fenced)(rollout_loop *l, void *userdata);
	/* One line per action carried out, and one per decision that changed
	 * anything ("p42 gen 1: canary -> canary_bake ..."); valid during the
	 * call. Optional. */
	void (*line)(rollout_loop *l, const char *line, void *userdata);
	/* A round (observe, decide, act) ended: error 0, or why it failed
	 * (-EPERM fence refused; etcd's error; -ENOMEM). why: a line for
	 * humans or NULL. Optional. */
	void (*round)(rollout_loop *l, int error, const char *why, void *userdata);
} rollout_loop_callbacks;

/* Starts at once (first round right away). Options copied; etcd borrowed
 * and must outlive the loop. */
int rollout_loop_new(rollout_loop **out, etcd_client *etcd, const rollout_loop_options *o,
		     const rollout_loop_callbacks *cb, void *userdata);
/* Decide again now (coalesced with the round in flight, if any). */
void rollout_loop_trigger(rollout_loop *l);
/* Stops everything at once: calls cancelled, the gate killed, timers and
 * watches gone, no callbacks. NULL-safe. Not from inside its callbacks. */
rollout_loop *rollout_loop_free(rollout_loop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(rollout_loop *, rollout_loop_free);

bool rollout_loop_stopped(const rollout_loop *l);
unsigned rollout_loop_rounds(const rollout_loop *l);            /* ended, with or without error */
unsigned rollout_loop_rounds_failed(const rollout_loop *l);
/* The last decision carried out (borrowed, valid until the next round
 * ends or the loop is freed), NULL before the first. Its state is the
 * stored one; its counts (n_done, ...) are the metrics. */
const rollout_output *rollout_loop_last(const rollout_loop *l);
/* When the last decision was taken (0 before the first). */
time_t rollout_loop_last_time(const rollout_loop *l);
/* The wake time the loop's timer is armed for (0: none). */
time_t rollout_loop_wake(const rollout_loop *l);
/* (/metrics: metrics_write_rollout(), metrics.h, from these getters.) */
