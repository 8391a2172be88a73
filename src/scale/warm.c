/* warm.c — the warm pool (issue 17, docs/scale.md "Warm pool"): stopped
 * instances, launched once from the launch template and registered, kept
 * ready to start in seconds. Its steps in one pool's decision (scale.c
 * calls them in this order):
 *   fill:   a warm launch that registered -> stop ("warm pool fill");
 *   start:  scale-out starts stopped hosts before launching new ones;
 *   takes:  scale-in stops a drained on-demand host instead of
 *           terminating it while the pool has room;
 *   settle: launch warm hosts up to the size, terminate stopped hosts
 *           beyond it (and every one on a cluster stop).
 * Stopped hosts are owned and live but are not capacity: never counted,
 * drained, or found unhealthy (they send no heartbeat). A held stopped
 * host is never started nor terminated, but fills its place in the pool.
 * Pure, like the rest of the decision. */
#include <errno.h>
#include <string.h>

#include "scale-internal.h"

bool scale_warm_member(const hv *x) {
	if (x->eff == SCALE_STOPPED)
		return true;
	/* a warm launch not yet registered (and not timed out) */
	return x->h->warm && x->h->state == SCALE_LAUNCHING && x->eff == SCALE_LAUNCHING && !x->dead;
}

int scale_warm_room(const pool_run *run) {
	int have = 0;
	for (size_t i = 0; i < run->n; i++)
		have += scale_warm_member(&run->hs[i]);
	return run->p->warm_pool_size - have;
}

int scale_warm_fill(pool_run *run) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		/* held: hands off, even for the stop that completes the fill */
		if (!x->h->warm || x->eff != SCALE_READY || x->h->hold || x->h->interruption)
			continue;
		int r = scale_host_action(run->c, SCALE_ACTION_STOP, x, SCALE_STOPPED, "warm pool fill");
		if (r < 0)
			return r;
		run->m->stopped++;
	}
	return 0;
}

/* Oldest launch first: the pool keeps its newest instances. */
static int oldest_cmp(const void *a, const void *b) {
	const cand *x = a, *y = b;
	if (x->launch != y->launch)
		return x->launch < y->launch ? -1 : 1;
	return strcmp(x->x->h->id, y->x->h->id);
}

/* Stopped hosts that may be started or terminated, oldest first, up to
 * max, marked picked. How many. */
static size_t pick_stopped(pool_run *run, int max) {
	size_t k = 0;
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		x->picked = false;      /* left over from the drain or undrain step */
		/* one stopped by this decision waits a turn: its stop is under way */
		if (x->eff == SCALE_STOPPED && !x->h->hold && !x->changed)
			run->cs[k++] = (cand) { .x = x, .launch = x->h->launch_time };
	}
	qsort(run->cs, k, sizeof *run->cs, oldest_cmp);
	if (max < 0)
		max = 0;
	if (k > (size_t) max)
		k = max;
	for (size_t j = 0; j < k; j++)
		run->cs[j].x->picked = true;
	return k;
}

/* The picked hosts' actions, in instance-id order. */
static int emit(pool_run *run, scale_action_kind kind, scale_state to, const char *why) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		if (!x->picked)
			continue;
		int r = scale_host_action(run->c, kind, x, to, why);
		if (r < 0)
			return r;
		x->acted = true;
	}
	return 0;
}

int scale_warm_start(pool_run *run, int need) {
	size_t k = pick_stopped(run, need);
	int r = emit(run, SCALE_ACTION_START, SCALE_LAUNCHING, "capacity needed, warm start");
	return r < 0 ? r : (int) k;
}

bool scale_warm_takes(const pool_run *run, const hv *x, int *room) {
	const scale_pool *p = run->p;
	/* spot cannot be stopped here; an interrupted host is going anyway */
	if (!p->warm_reuse_on_scale_in || *room <= 0 || run->in->stop || x->interrupted ||
	    x->h->market != SCALE_ON_DEMAND)
		return false;
	(*room)--;
	return true;
}

/* Warm launches: on-demand (a stopped spot instance is not a thing here)
 * and not on a reservation (a stopped instance would waste it), in the
 * same token sequence as the pool's other launches. */
static int refill(pool_run *run, int n) {
	scale_pool q = *run->p;
	size_t first = run->c->acts.n;

	q.market_reserved = false;
	q.market_spot = false;
	int r = scale_launch(run->c, &q, run->load, n, false, true, "warm pool refill", run->seq, &run->index);
	if (r < 0)
		return r;
	for (size_t i = first; i < run->c->acts.n; i++)
		run->c->acts.v[i].warm = true;
	run->m->launched += r;
	run->m->warm_launching += r;
	run->m->unplaced += n - r;
	return 0;
}

int scale_warm_settle(pool_run *run) {
	const scale_input *in = run->in;
	int room = scale_warm_room(run), r;
	size_t k;

	if (in->stop) {
		k = pick_stopped(run, (int) run->n);
		r = emit(run, SCALE_ACTION_TERMINATE, SCALE_TERMINATING, "cluster stop");
	} else if (!run->m->enabled)
		return 0;
	else if (room > 0)
		return refill(run, room);
	else if (room < 0) {
		k = pick_stopped(run, -room);
		r = emit(run, SCALE_ACTION_TERMINATE, SCALE_TERMINATING, "warm pool shrunk");
	} else
		return 0;
	if (r < 0)
		return r;
	run->m->terminated += (int) k;
	return 0;
}
