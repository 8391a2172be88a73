/* scale-internal.h — the working data of one decision, shared by the
 * decision's steps (scale.c) and the market rules they call (market.c:
 * reservation coverage, where a launch goes). Not installed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "scale-observe.h"
#include "scale.h"

/* The decision's actions so far, all pools. */
typedef struct scale_actions {
	scale_action *v;
	size_t n, cap;
} scale_actions;

static inline scale_action *scale_actions_add(scale_actions *a, scale_action_kind kind, const char *pool) {
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		scale_action *v = realloc(a->v, cap * sizeof *v);
		if (!v)
			return NULL;
		a->v = v;
		a->cap = cap;
	}
	scale_action *x = &a->v[a->n++];
	*x = (scale_action) { .kind = kind, .pool = pool };
	return x;
}

/* One host while deciding. */
typedef struct hv {
	const scale_host *h;
	uint64_t key;           /* the id's first 8 bytes, big-endian: most compares end here */
	int pool;               /* index into the sorted pool list, -1 unknown */
	bool covered;           /* on-demand covered by a reservation */
	/* set while deciding */
	scale_state eff;        /* state after this decision's transitions */
	bool interrupted;       /* spot notice: not capacity, never put back */
	bool dead;              /* timed out launching: not capacity */
	bool changed;           /* eff was set by this decision (terminate waits a turn) */
	bool acted;             /* undrained or terminated already */
	bool picked;            /* chosen to undrain / drain: emitted in id order */
	bool paid;              /* undrain, hourly: its new hour is already paid */
} hv;

typedef struct ctx {
	const scale_input *in;
	scale_actions acts;
	int *rem;               /* unused reservations */
} ctx;

static inline bool scale_live(scale_state s) {
	return s != SCALE_TERMINATING && s != SCALE_TERMINATED;
}

/* A candidate to undrain, drain, start or terminate, with its sort keys. */
typedef struct cand {
	hv *x;
	int rank;               /* drain: 0 uncovered on-demand, 1 spot, 2 covered on-demand */
	int jobs;
	int64_t key;            /* drain, hourly: seconds into the hour (desc) */
	time_t launch;
	bool paid;              /* undrain, hourly: a new billed hour began while draining */
} cand;

/* One pool's decision in the making: what its steps share (scale.c runs
 * them; warm.c and demand.c hold some). Each step walks the pool's hosts
 * (sorted by id) and appends its actions in that order, so only the order
 * of the steps matters. */
typedef struct pool_run {
	ctx *c;
	const scale_input *in;
	const scale_pool *p;
	hv *hs;                 /* the pool's hosts, by instance id */
	size_t n;
	scale_metrics *m;
	scale_pool_state *st;
	time_t now;
	int active;             /* ready + launching that count as capacity */
	int want;               /* hosts wanted: policy, override, clamp, stop */
	int *load;              /* hosts per subnet (by its zone), launches included */
	cand *cs;               /* candidates to undrain, drain, start, terminate (room for n) */
	uint64_t seq;           /* the launch_seq this decision's launches use */
	unsigned index;         /* launch actions of the pool so far */
} pool_run;

/* demand.c */

/* Job slots per host: the pool's jobs_per_host, else the largest capacity
 * a ready host reports (1 when none). */
int scale_jobs_per_host(const pool_run *run);
/* demand policy: hosts for the healthy jobs running plus the queue, with
 * the sqrt (or capacity_factor) headroom; 0 with no demand. */
int scale_want_demand(pool_run *run);
/* The forecast and the schedule raise the policy's answer (want): the
 * forecast's demand with headroom, the schedule's minimum; metrics
 * forecast / schedule_min say what was used. */
int scale_want_ahead(pool_run *run, int want);

/* warm.c */

/* Warm launches that registered -> stopped ("warm pool fill"). 0 or -ENOMEM. */
int scale_warm_fill(pool_run *run);
/* A host that counts as warm pool: stopped (after this decision's
 * actions), or launching to fill the pool. */
bool scale_warm_member(const hv *x);
/* Scale-out: starts up to need stopped hosts (not held), oldest first.
 * How many, or -ENOMEM. */
int scale_warm_start(pool_run *run, int need);
/* Scale-in: whether the drained host x goes back to the pool (stopped)
 * instead of being terminated; *room is what the pool has left, updated. */
bool scale_warm_takes(const pool_run *run, const hv *x, int *room);
/* The pool's room left: size - (stopped + warm launching), may be < 0. */
int scale_warm_room(const pool_run *run);
/* Refill (launch warm) or shrink (terminate stopped hosts) towards the
 * pool's size; a cluster stop terminates every stopped host. 0 or -ENOMEM. */
int scale_warm_settle(pool_run *run);

/* fields.c: the typed getters of the JSON codecs (policy.c, schedule.c).
 * Each reads key base + "." + name, names it in err on a wrong type or
 * range, leaves *v alone when absent; -EINVAL, -ENOMEM. */
typedef struct scale_field {
	char key[128];
	scale_error *err;
} scale_field;

/* snprintf that truncates quietly: keys are bounded, a pool name longer
 * than the buffers is cut in messages only */
_printf_(3, 4) void scale_fmtbuf(char *buf, size_t n, const char *fmt, ...);
_printf_(3, 4) int scale_fail(scale_error *err, const char *key, const char *fmt, ...);
const char *scale_fkey(scale_field *f, const char *base, const char *name);
int scale_get_int(json_t *o, const char *base, const char *name, long long lo, long long hi, long long *v,
		  scale_error *err);
int scale_get_num(json_t *o, const char *base, const char *name, double *v, scale_error *err);
int scale_get_bool(json_t *o, const char *base, const char *name, bool *v, scale_error *err);
int scale_get_str(json_t *o, const char *base, const char *name, bool required, bool null_ok, char **v,
		  scale_error *err);
/* Unknown keys of o (not in known) -> the first by name named in err. */
int scale_check_keys(json_t *o, const char *base, const char *const *known, size_t n, scale_error *err);

/* An integer key into dst of any integer type (needs err in scope). */
#define GET_INT(o, base, name, lo, hi, dst)                                        \
	({                                                                         \
		long long _v = (dst);                                              \
		int _r = scale_get_int((o), (base), (name), (lo), (hi), &_v, err); \
		if (_r >= 0)                                                       \
			(dst) = _v;                                                \
		_r;                                                                \
	})

/* market.c */

/* A transition, drain, undrain or terminate of x (x->eff becomes to,
 * x->changed). 0 or -ENOMEM. */
int scale_host_action(ctx *c, scale_action_kind kind, hv *x, scale_state to, const char *why);

/* Marks the on-demand hosts reservations cover (x->covered): the oldest
 * first, zonal before regional. rem[] (n_reservations) is left holding what
 * is unused, for launches. 0 or -ENOMEM. */
int scale_cover(hv *hs, size_t n, const scale_input *in, int *rem);

/* Is spot possible at all for this pool right now? */
bool scale_spot_possible(const scale_input *in, const scale_pool *p);

/* Places n hosts of pool p: reserved-covered on-demand, then spot (if
 * allow_spot) under the maximum price, then on-demand (if allow_od), spread
 * over subnets by load[] (hosts per subnet, updated). Appends one launch
 * action per distinct (type, market, reserved, subnet), tokens from seq and
 * *index (the pool's launch actions in this decision, advanced). Returns
 * how many were placed, or -ENOMEM. */
int scale_launch(ctx *c, const scale_pool *p, int *load, int n, bool allow_spot, bool allow_od, const char *why,
		 uint64_t seq, unsigned *index);

/* replace.c */

/* Replace by relaunch in one pool (hs: its hosts by id, after the health
 * steps): replacements launched, old hosts drained or terminated, and on
 * rollback replacements drained, old hosts undrained. Returns how many
 * replacements this decision launches (capacity the size step counts as
 * launching), or -ENOMEM. */
int scale_replace_step(ctx *c, const scale_pool *p, hv *hs, size_t n, scale_metrics *m);
/* Ready replacements whose old host still serves: capacity beyond the
 * pool's size for a while, never a surplus to drain (principle 9). */
int scale_replace_extra(const hv *hs, size_t n);
/* The pool's launches from `first` on that name no version get the
 * rollout's (new capacity never brings back the old image). */
void scale_replace_versions(ctx *c, const scale_pool *p, size_t first);

/* ---- observe's part for tenant deployments (tenants.c) --------------------------- */

/* Deployments as work on hosts and waiting work (top of tenants.c).
 * Called by scale_observe() once hosts and queues are read. 0 or -ENOMEM;
 * an unreadable deployment_policy is a note, nothing counted. */
int scale_observe_tenants(const scale_records *r, scale_observed *o);
