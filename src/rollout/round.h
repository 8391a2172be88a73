/* round.h — one round of the leader's rollout loop, shared by loop.c and
 * execute.c (internal to src/rollout/):
 *
 *   loop.c     read (snapshot.c), rollout_observe() + rollout_decide()
 *              (pure), the gate, then execute; watches and timers
 *   execute.c  act: the output's writes in fenced txns, one line each
 *
 * A round owns what it read (the snapshot), what observe parsed (the view,
 * which the output borrows node ids from) and the output, so stopping is:
 * cancel the one call in flight, free the round. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "etcd.h"
#include "rollout-loop.h"
#include "rollout.h"

typedef struct rollout_round rollout_round;

struct rollout_round {
	/* given by the loop */
	etcd_client *etcd;
	const char *prefix;
	const char *leader_key;
	int64_t token;
	time_t now;
	void (*line)(rollout_round *r, const char *line);      /* one per action carried out */
	void (*done)(rollout_round *r, int error, const char *why);
	void *owner;
	etcd_call *call;                /* the one call in flight, if any */

	/* observe + decide */
	rollout_snapshot snap;
	bool have_snap;
	rollout_view view;
	bool observed;
	rollout_output out;
	bool decided;
	rollout_gate gate;              /* the gate's result, when it ran */

	/* act (execute.c): the writes, in order, and how far they got */
	etcd_op *ops;
	char **keys, **vals;            /* owned, per op (vals NULL for a delete) */
	size_t *action_of;              /* per op: its action's index, or SIZE_MAX (state) */
	size_t n_ops, at;               /* ops queued; sent */
	size_t said;                    /* ops whose action's line was said */
	size_t promote_at;              /* the put of `current` (ROLLOUT_PROMOTE):
	                                   it and the state go in one txn that
	                                   also compares current's mod_revision;
	                                   SIZE_MAX: none */
	bool promoting;                 /* that txn is in flight */
};

rollout_round *rollout_round_free(rollout_round *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(rollout_round *, rollout_round_free);

/* Carries out r->out (every action but RUN_GATE and REBASE; state last)
 * in fenced txns, then r->done(r, 0, NULL); or r->done(r, error, why):
 * -EPERM when the fence was refused, -EAGAIN when `current` moved before
 * a promotion (nothing of that txn written: decide again). */
void rollout_execute_start(rollout_round *r);
