/* scale-internal.h — the working data of one decision, shared by the
 * decision's steps (scale.c) and the market rules they call (market.c:
 * reservation coverage, where a launch goes). Not installed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

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
