/* lifecycle-internal.h — one round of the lifecycle loop, shared by
 * loop.c (read, observe, decide, the round's end) and execute.c (the
 * writes and the notices). */
#pragma once

#include "child.h"
#include "lifecycle.h"

typedef struct lc_round lc_round;

struct lc_round {
	lifecycle_loop *loop;
	etcd_client *etcd;
	sd_event *event;
	const char *prefix, *leader_key, *cluster;
	int64_t token;
	time_t now;                     /* the real clock when the round began */

	lifecycle_snapshot snap;
	bool have_snap;
	deployment_observed obs;
	bool observed;
	deployment_output out;
	bool decided;

	size_t at;                      /* the action being written */
	size_t notice_at;               /* its next notice */
	bool changed;                   /* a record moved under us: decide again */
	unsigned notices_failed;
	etcd_call *call;
	child_run *child;

	void (*line)(lc_round *r, bool warning, const char *line);
	void (*done)(lc_round *r, int error, const char *why);
};

/* Carries out r->out: per action a fenced compare-and-set, then its
 * notices; calls r->done once. */
void lifecycle_execute_start(lc_round *r);
lc_round *lc_round_free(lc_round *r);
