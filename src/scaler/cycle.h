/* cycle.h — one scaling cycle, shared by the scaler's files (internal to
 * src/scaler/):
 *
 *   scaler.c   the loop: timer, watches, start a cycle, observe + decide
 *              (pure, src/scale/), finish; the public API (scaler.h)
 *   gather.c   observe's I/O: the etcd snapshot (snapshot.c, one
 *              revision), then DescribeInstances, spot prices,
 *              reservations -> records
 *   execute.c  act: the actions carried out with fenced writes, one
 *              report line per action; then scale/state and scale/metrics
 *   cycle.c    the cycle's memory, its notes and action lines
 *   status.c   scale/status (fenced, on change)
 *   view.c     observe only (corralctl hosts): gather, scale_observe(),
 *              nothing decided or written
 *
 * Arrows go from scaler.c to the others and from them to cycle.c; the
 * steps hand control back through c->next / c->done, never by name. */
#pragma once

#include <jansson.h>

#include "ec2.h"
#include "etcd.h"
#include "scale-observe.h"
#include "scale-report.h"
#include "scale.h"
#include "scaler.h"

typedef struct cycle cycle;
/* A step ended: error 0 and why NULL to go on; else the cycle ends. */
typedef void (*cycle_step_fn)(cycle *c, int error, const char *why);

typedef struct tag_change {
	char *id;
	scale_state to;
} tag_change;

struct cycle {
	/* given by the loop */
	etcd_client *etcd;
	ec2_client *ec2;                /* NULL: no EC2, for the reason below */
	scale_status_code no_ec2_code;
	const char *no_ec2_reason;
	const char *prefix, *cluster;
	char *leader_key;
	int64_t token;
	int64_t grace;
	scaler_crash crash;
	bool observe_only;              /* view.c: no scale/policy needed, no market inputs asked */
	time_t now;
	cycle_step_fn next;             /* after gather; after execute */
	void (*action)(cycle *c, int priority, const char *line);       /* one line per action */
	void *owner;                    /* the scaler */
	etcd_call *call;                /* the one call in flight, if any */
	ec2_op *op;

	/* observe's I/O (gather.c): the records point into these */
	scaler_snapshot snap;           /* etcd at one revision; snap.records gets EC2's answers too */
	scale_instance *insts;          /* owned strings */
	size_t n_insts;
	bool *adopted;                  /* per instance: recorded by this cycle's launches */
	scale_price *prices;
	scale_reservation *res;
	char *prices_error, *reservations_error;
	scale_spot_error *spot_errors;  /* the ones this decision uses (owned) */
	size_t n_spot_errors;

	scale_status_code fail_code;    /* why the cycle failed, for scale/status (FAILED: see why) */
	bool changed;                   /* the decision changed something: a history record */

	/* observe + decide (scaler.c) */
	scale_observed obs;
	scale_output out;
	bool decided;

	/* act (execute.c) */
	char **terminate;               /* ids (strv) */
	size_t n_terminate;
	char **stop, **start;           /* the warm pool's ids (strv) */
	size_t n_stop, n_start;
	unsigned batch_at;              /* terminate, stop, start: the call in turn */
	tag_change *tags;
	size_t n_tags, tag_at;
	size_t launch_at;               /* next action to look at for launches */
	char **launched;                /* ids (strv) */
	size_t n_launched;
	char **errors;                  /* observe's notes, then the cycle's (strv) */
	size_t n_errors;
	scale_spot_error *spot_failed;  /* capacity errors met by this cycle's spot launches */
	size_t n_spot_failed;
	int records_by_state[_SCALE_STATE_MAX];
	scale_report report;            /* what scale/metrics says, once written */
	bool reported;

	/* pending fenced puts */
	char **wkeys, **wvals;
	size_t n_w, w_at;
	void (*after_write)(cycle *c);
	char *del_from, *del_to;        /* a range to delete with the next batch (history cap) */
	bool del_done;                  /* in the batch in flight */
};

cycle *cycle_free(cycle *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(cycle *, cycle_free);
/* Appends a note to the cycle's errors (scale/metrics "errors"). */
_printf_(2, 3) void cycle_note(cycle *c, const char *fmt, ...);
/* One action line: "scale: VERB k=v ..." (kv as scale_log_line). */
void cycle_say(cycle *c, int priority, const char *verb, const char *const *kv);
void cycle_spot_errors_free(scale_spot_error *e, size_t n);

/* gather.c: reads etcd at one revision and asks EC2, then c->next(c, 0,
 * NULL) with c->records filled; or c->next(c, error, why). */
void gather_start(cycle *c);

/* execute.c: carries out c->out's actions (records written, instances
 * terminated, stopped and started, tags mirrored, launches recorded), then
 * scale/state, scale/metrics and the load histories; then c->next(c,
 * error, why). */
void execute_start(cycle *c);
