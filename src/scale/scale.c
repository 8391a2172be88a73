/* scale.c — the autoscaler's decision (see include/scale.h, docs/scale.md).
 *
 * One pass sorts the hosts by (pool, instance id) and works out which
 * on-demand hosts reservations cover; then each pool, in name order, goes
 * through the steps that decide_pool() lists, one function each:
 *   1. health and lifecycle: launching -> ready on registration, ready or
 *      draining -> unhealthy without heartbeat, unhealthy -> ready when it
 *      is back; spot interruptions -> draining; broken hosts -> terminate;
 *   2. size: the policy's wanted count against ready + launching, giving
 *      undrains then launches (market.c places them), or, after hysteresis,
 *      drains; fast start replaces on-demand hosts with spot;
 *   3. draining hosts that were not put back and have no jobs -> terminate,
 *      at the moment billing makes cheapest.
 * Everything is O(hosts log hosts) with a few arrays, no allocation per
 * host: 10,000 hosts decide in about 3 ms (docs/benchmarks.md), mostly
 * the three sorts. Names and JSON of the output: json.c. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scale-internal.h"

void scale_output_done(scale_output *out) {
	if (!out)
		return;
	free(out->actions);
	free(out->metrics);
	free(out->state);
	*out = (scale_output) { 0 };
}

/* ---- per-host working data ---------------------------------------------------------- */

static int hv_cmp(const void *a, const void *b) {
	const hv *x = a, *y = b;
	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return strcmp(x->h->id, y->h->id);
}

static int poolp_cmp(const void *a, const void *b) {
	const scale_pool *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int pool_index(const scale_pool *const *pools, size_t n, const char *name) {
	if (!name)
		return -1;
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(pools[mid]->name, name);
		if (c == 0)
			return (int) mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}


static int64_t uptime(const scale_host *h, time_t now) {
	return now > h->launch_time ? (int64_t) (now - h->launch_time) : 0;
}

static int64_t into_hour(const scale_host *h, time_t now) {
	return uptime(h, now) % 3600;
}

/* ---- victims and undrain order ------------------------------------------------------ */

static int victim_cmp(const void *a, const void *b) {
	const cand *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->jobs != y->jobs)
		return x->jobs < y->jobs ? -1 : 1;
	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	/* then the oldest, as PrairieLearn does: the newest stay fresh */
	if (x->launch != y->launch)
		return x->launch < y->launch ? -1 : 1;
	return strcmp(x->x->h->id, y->x->h->id);
}

static int undrain_cmp(const void *a, const void *b) {
	const cand *x = a, *y = b;
	if (x->paid != y->paid)
		return x->paid ? -1 : 1;
	if (x->launch != y->launch)
		return x->launch > y->launch ? -1 : 1;
	return strcmp(x->x->h->id, y->x->h->id);
}

/* ---- one pool ----------------------------------------------------------------------- */

/* Inputs as given: the stored state carried over, hosts by state, jobs,
 * the queue. */
static void pool_begin(pool_run *run, const scale_pool_state *old) {
	const scale_pool *p = run->p;
	scale_metrics *m = run->m;

	*run->st = (scale_pool_state) { .pool = p->name };
	if (old) {
		run->st->last_scale_in = old->last_scale_in;
		run->st->surplus_since = old->surplus_since;
		run->st->launch_seq = old->launch_seq;
		run->st->last_warm_start = old->last_warm_start;
		run->st->surplus_want = old->surplus_want;
	}
	*m = (scale_metrics) { .pool = p->name, .enabled = p->enabled, .forecast = -1 };

	for (size_t i = 0; i < run->n; i++) {
		const scale_host *h = run->hs[i].h;
		run->hs[i].eff = h->state;
		if (h->state >= 0 && h->state < _SCALE_STATE_MAX)
			m->hosts[h->state]++;
		if (!scale_live(h->state))
			continue;
		m->jobs += h->jobs;
		if (h->state == SCALE_UNHEALTHY)
			m->jobs_unhealthy += h->jobs;
		m->hosts_held += h->hold;
		m->hosts_in_rollout += h->in_rollout;
		m->hosts_covered += run->hs[i].covered;
		if (h->autoscale_off)
			m->enabled = false;
	}
	for (size_t i = 0; i < run->in->n_queues; i++)
		if (streq_ptr(run->in->queues[i].pool, p->name))
			m->queue += run->in->queues[i].length;
}

/* ---- step 1: health and lifecycle ---------------------------------------------------- */

/* Registration and heartbeats: launching -> ready once its node registered,
 * ready or draining -> unhealthy without a fresh heartbeat, unhealthy ->
 * ready when the heartbeat is back (unless an interruption notice came). */
static int step_health(pool_run *run) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		const scale_host *h = x->h;
		bool fresh = h->node_id && h->last_seen > 0 && run->now - h->last_seen <= run->p->health_timeout;
		int r = 0;

		switch (h->state) {
		case SCALE_LAUNCHING:
			if (h->node_id)
				r = scale_host_action(run->c, SCALE_ACTION_TRANSITION, x, SCALE_READY, "registered");
			break;
		case SCALE_READY:
		case SCALE_DRAINING:
			if (!fresh)
				r = scale_host_action(run->c, SCALE_ACTION_TRANSITION, x, SCALE_UNHEALTHY, "no heartbeat");
			break;
		case SCALE_UNHEALTHY:
			if (fresh && !h->interruption)
				r = scale_host_action(run->c, SCALE_ACTION_TRANSITION, x, SCALE_READY, "heartbeat back");
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Hosts that are not capacity whatever their state: a spot notice (never
 * put back) or a launch that never registered in time. */
static void mark_lost(pool_run *run) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		const scale_host *h = x->h;
		if (h->interruption && (x->eff == SCALE_READY || x->eff == SCALE_LAUNCHING || x->eff == SCALE_DRAINING))
			x->interrupted = true;
		if (x->eff == SCALE_LAUNCHING && !h->node_id && run->now - h->state_since > run->p->launch_timeout)
			x->dead = true;
	}
}

/* Spot interruptions: stop giving the host work at once (a held host keeps
 * its state but is not counted: AWS takes it either way). */
static int step_interruptions(pool_run *run) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		if (x->interrupted && !x->h->hold && x->eff != SCALE_DRAINING) {
			int r = scale_host_action(run->c, SCALE_ACTION_DRAIN, x, SCALE_DRAINING, "spot interruption");
			if (r < 0)
				return r;
			run->m->drained++;
		}
	}
	return 0;
}

/* Why a host is broken enough to terminate now, or NULL. */
static const char *broken_why(const pool_run *run, const hv *x) {
	const scale_pool *p = run->p;
	const scale_host *h = x->h;
	const time_t now = run->now;

	if (h->state == SCALE_TERMINATING && now - h->state_since >= p->terminate_retry)
		return "terminate again";
	if (x->dead)
		return "launch timeout";
	if (h->state == SCALE_UNHEALTHY && now - h->state_since > p->unhealthy_timeout)
		return "unhealthy too long";
	if (h->state == SCALE_DRAINING && p->drain_timeout > 0 && now - h->state_since > p->drain_timeout)
		return "drain timeout";
	if (h->state == SCALE_UNHEALTHY && h->jobs == 0 &&
	    (p->billing == SCALE_BILLING_HOURLY || uptime(h, now) >= p->min_lifetime))
		return "unhealthy, no jobs";
	return NULL;
}

/* Broken hosts -> terminate (never a held one, nor one this decision
 * already changed: that waits a turn). */
static int step_broken(pool_run *run) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		const char *why;
		/* (a rollout's reboot is no breakage: the rollout's deadline judges it) */
		if (x->h->hold || x->changed || (x->h->in_rollout && x->h->state != SCALE_TERMINATING) ||
		    !(why = broken_why(run, x)))
			continue;
		int r = scale_host_action(run->c, SCALE_ACTION_TERMINATE, x, SCALE_TERMINATING, why);
		if (r < 0)
			return r;
		x->acted = true;
		run->m->terminated++;
	}
	return 0;
}

/* ---- step 2: size --------------------------------------------------------------------- */

/* Ready and launching hosts that count, after step 1. */
static void count_capacity(pool_run *run) {
	scale_metrics *m = run->m;
	for (size_t i = 0; i < run->n; i++) {
		const hv *x = &run->hs[i];
		if (x->interrupted || x->dead)
			continue;
		if (x->h->warm && x->h->state == SCALE_LAUNCHING && x->eff == SCALE_LAUNCHING)
			m->warm_launching++;    /* fills the warm pool: not capacity */
		else if (x->eff == SCALE_READY) {
			m->ready++;
			m->job_capacity += x->h->job_capacity;
		} else if (x->eff == SCALE_LAUNCHING)
			m->launching++;
	}
	run->active = m->ready + m->launching;
}

/* jobs policy: PrairieLearn's shape: jobs on unhealthy hosts are not
 * served, so they are not in the base, but they do feed the headroom. */
static int want_jobs(pool_run *run) {
	const scale_pool *p = run->p;
	scale_metrics *m = run->m;
	double all = m->jobs, healthy = m->jobs - m->jobs_unhealthy;

	m->jobs_per_host = scale_jobs_per_host(run);
	m->desired_capacity = p->capacity_factor > 0 ? healthy + all * (p->capacity_factor - 1.0)
						     : healthy + 2.0 * sqrt(all);
	double hosts = ceil(m->desired_capacity / m->jobs_per_host - 1e-9);
	return hosts < 1 ? 1 : hosts > 1e6 ? 1000000 : (int) hosts;
}

/* queue policy: one more while the queue is long or too few hosts idle,
 * one less when more than enough idle and nothing waits. */
static int want_queue(const pool_run *run) {
	const scale_pool *p = run->p;
	int idle = 0;
	for (size_t i = 0; i < run->n; i++)
		idle += run->hs[i].eff == SCALE_READY && !run->hs[i].interrupted && run->hs[i].h->jobs == 0;
	if (run->m->queue > p->max_queued_jobs || idle < p->min_idle)
		return run->active + 1;
	if (idle > p->min_idle && run->m->queue == 0)
		return run->active - 1;
	return run->active;
}

/* threshold policy: one more when every ready host is past the memory
 * threshold, or when work waits that no host has room for (the queue:
 * tenant deployments, src/scale/tenants.c) and no host is idle, one at a
 * time; fewer by the idle hosts beyond min_idle. While every busy host is
 * past the threshold, one idle host more is kept: it is the room the first rule
 * would launch again at once (no launch-drain-launch cycle). */
static int want_threshold(const pool_run *run) {
	const scale_pool *p = run->p;
	int ready = 0, past = 0, idle = 0, busy_past = 0;
	for (size_t i = 0; i < run->n; i++) {
		const hv *x = &run->hs[i];
		if (x->eff != SCALE_READY || x->interrupted)
			continue;
		ready++;
		past += x->h->memory_used >= p->memory_threshold;
		idle += x->h->jobs == 0;
		busy_past += x->h->jobs > 0 && x->h->memory_used >= p->memory_threshold;
	}
	/* an idle host takes waiting work first: the lifecycle places it there */
	if (run->m->queue > 0 && run->m->launching == 0 && idle == 0)
		return run->active + 1;
	if (ready > 0 && past == ready && idle < p->min_idle + 1)
		return run->active + 1;
	int keep = p->min_idle + (ready > idle && busy_past == ready - idle);
	if (idle > keep)
		return run->active - (idle - keep);
	if (ready == 0 && run->m->launching == 0)
		return 1;
	return run->active;
}

/* The policy's answer, then the manual override, the clamp to [min, max],
 * and a cluster stop. */
static void wanted_hosts(pool_run *run) {
	const scale_pool *p = run->p;
	scale_metrics *m = run->m;
	int want;

	switch (p->kind) {
	case SCALE_POLICY_JOBS:
		want = want_jobs(run);
		break;
	case SCALE_POLICY_QUEUE:
		want = want_queue(run);
		break;
	case SCALE_POLICY_THRESHOLD:
		want = want_threshold(run);
		break;
	case SCALE_POLICY_DEMAND:
		want = scale_want_demand(run);
		break;
	default:
		want = p->hosts >= 0 ? p->hosts : p->min;
		break;
	}
	m->policy_hosts = want;
	want = scale_want_ahead(run, want);     /* forecast, schedule (demand.c) */
	if (p->desired >= 0) {
		want = p->desired;
		m->note = "manual";
	}
	if (want < p->min)
		want = p->min;
	if (want > p->max)
		want = p->max;
	if (run->in->stop) {
		want = 0;
		m->note = "stop";
	}
	m->desired_hosts = run->want = want;
}

/* Hosts per subnet, by the subnet's zone: launches go where the fewest are. */
static int *subnet_load(const pool_run *run) {
	const scale_pool *p = run->p;
	int *load = calloc(p->n_subnets ? p->n_subnets : 1, sizeof *load);
	if (!load)
		return NULL;
	for (size_t s = 0; s < p->n_subnets; s++)
		for (size_t i = 0; i < run->n; i++)
			if (scale_live(run->hs[i].eff) && run->hs[i].h->availability_zone &&
			    streq_ptr(run->hs[i].h->availability_zone, p->subnets[s].availability_zone))
				load[s]++;
	return load;
}

/* The picked hosts' actions, in instance-id order like every other host
 * action; why_paid for an undrain whose new billed hour is already paid. */
static int emit_picked(pool_run *run, scale_action_kind kind, scale_state to, const char *why, const char *why_paid) {
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		if (!x->picked)
			continue;
		int r = scale_host_action(run->c, kind, x, to, x->paid ? why_paid : why);
		if (r < 0)
			return r;
		x->acted = true;
	}
	return 0;
}

/* Undrain up to need draining hosts, newest first; in hourly billing the
 * ones a new billed hour has already been paid for come before. Held
 * draining hosts stay so (hold means hands off). How many, or -ENOMEM. */
static int step_undrain(pool_run *run, int need) {
	size_t k = 0;
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		if (x->eff != SCALE_DRAINING || x->changed || x->interrupted || x->h->hold)
			continue;
		bool paid = false;
		if (run->p->billing == SCALE_BILLING_HOURLY) {
			time_t hour_start = run->now - into_hour(x->h, run->now);
			paid = x->h->state_since < hour_start;
		}
		run->cs[k++] = (cand) { .x = x, .launch = x->h->launch_time, .paid = paid };
	}
	qsort(run->cs, k, sizeof *run->cs, undrain_cmp);
	if (k > (size_t) need)
		k = need;
	for (size_t j = 0; j < k; j++) {
		run->cs[j].x->picked = true;
		run->cs[j].x->paid = run->cs[j].paid;
	}
	int r = emit_picked(run, SCALE_ACTION_UNDRAIN, SCALE_READY, "capacity needed",
			    "capacity needed, hour already paid");
	return r < 0 ? r : (int) k;
}

/* Too few hosts: undrain, then launch the rest (on-demand only for a fast
 * start: spot replaces it later). */
static int step_grow(pool_run *run) {
	scale_metrics *m = run->m;
	const scale_pool *p = run->p;

	run->st->surplus_since = 0;
	run->st->surplus_want = 0;
	m->deficit = run->want - run->active;
	int need = m->deficit;
	int r = step_undrain(run, need);
	if (r < 0)
		return r;
	m->undrained = r;
	need -= r;
	if (need > 0 && (r = scale_warm_start(run, need)) != 0) {
		if (r < 0)
			return r;
		m->started = r;
		need -= r;
	}
	if (need > 0) {
		bool fast = p->fast_start && p->market_on_demand;
		r = scale_launch(run->c, p, run->load, need, !fast, true,
				 fast ? "capacity needed, fast start" : "capacity needed", run->seq, &run->index);
		if (r < 0)
			return r;
		m->launched += r;
		m->unplaced = need - r;
	}
	return 0;
}

/* Ready hosts that may drain, ranked: uncovered on-demand, spot, covered
 * on-demand. A threshold pool keeps busy hosts unless the cluster stops. */
static size_t drain_candidates(pool_run *run) {
	const scale_pool *p = run->p;
	size_t k = 0;
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		const scale_host *h = x->h;
		if (x->eff != SCALE_READY || x->interrupted || h->hold || h->in_rollout)
			continue;
		if (p->kind == SCALE_POLICY_THRESHOLD && h->jobs > 0 && !run->in->stop)
			continue;
		run->cs[k++] = (cand) {
			.x = x,
			.rank = h->market == SCALE_SPOT ? 1 : x->covered ? 2 : 0,
			.jobs = h->jobs,
			.key = p->billing == SCALE_BILLING_HOURLY ? into_hour(h, run->now) : 0,
			.launch = h->launch_time,
		};
	}
	return k;
}

/* Hysteresis: a surplus drains once it has lasted scale_in_after and the
 * last scale-in is scale_in_cooldown ago; an operator's stop does not wait. */
static bool scale_in_due(pool_run *run) {
	scale_pool_state *st = run->st;
	const time_t now = run->now;

	if (st->surplus_since == 0 || st->surplus_since > now)
		st->surplus_since = now;
	if (run->in->stop)
		return true;
	if (now - st->surplus_since < run->p->scale_in_after) {
		run->m->note = "waiting for surplus to last";
		return false;
	}
	if (st->last_scale_in > 0 && now - st->last_scale_in < run->p->scale_in_cooldown) {
		run->m->note = "cooldown";
		return false;
	}
	return true;
}

/* Too many ready hosts: drain the best victims once the surplus is due. */
static int step_shrink(pool_run *run) {
	scale_metrics *m = run->m;

	m->surplus = m->ready - run->want;
	/* demand: a scale-in keeps the most hosts wanted while the surplus
	 * lasted, so a noisy load is not drained at its dips */
	if (run->p->kind == SCALE_POLICY_DEMAND && !run->in->stop) {
		if (run->st->surplus_since == 0 || run->want > run->st->surplus_want)
			run->st->surplus_want = run->want;
		m->surplus = m->ready - run->st->surplus_want;
	}
	size_t k = drain_candidates(run);
	/* Hosts in rollout are no candidates (they come back): say so when
	 * only they make the surplus. */
	if (!scale_in_due(run) || k == 0) {
		for (size_t i = 0; k == 0 && m->note == NULL && i < run->n; i++)
			if (run->hs[i].eff == SCALE_READY && run->hs[i].h->in_rollout)
				m->note = "surplus in rollout";
		return 0;
	}
	if (m->surplus <= 0) {
		/* the peak of this window kept them all: the next window starts
		 * now, from what is wanted now */
		run->st->surplus_since = run->now;
		run->st->surplus_want = run->want;
		return 0;
	}
	qsort(run->cs, k, sizeof *run->cs, victim_cmp);
	if (k > (size_t) m->surplus)
		k = m->surplus;
	for (size_t j = 0; j < k; j++)
		run->cs[j].x->picked = true;
	const char *why = run->in->stop ? "cluster stop" : "surplus";
	int r = emit_picked(run, SCALE_ACTION_DRAIN, SCALE_DRAINING, why, why);
	if (r < 0)
		return r;
	m->drained += (int) k;
	run->st->last_scale_in = run->now;
	run->st->surplus_since = 0;
	run->st->surplus_want = 0;
	return 0;
}

/* Fast start: once on-demand hosts run, launch spot to replace them; they
 * drain (uncovered on-demand goes first) when the spot hosts are ready and
 * the surplus has lasted. */
static int step_fast_start(pool_run *run) {
	const scale_pool *p = run->p;
	const ctx *c = run->c;

	if (!p->fast_start || run->in->stop || !scale_spot_possible(run->in, p))
		return 0;
	int od = 0, now_active = 0;
	for (size_t i = 0; i < run->n; i++) {
		const hv *x = &run->hs[i];
		if ((x->eff != SCALE_READY && x->eff != SCALE_LAUNCHING) || x->interrupted || x->dead ||
		    scale_warm_member(x))
			continue;
		now_active++;
		od += x->h->market == SCALE_ON_DEMAND && !x->covered && !x->h->hold;
	}
	now_active += run->m->launched;
	for (size_t i = 0; i < c->acts.n; i++) /* this decision's on-demand launches */
		if (c->acts.v[i].kind == SCALE_ACTION_LAUNCH && c->acts.v[i].pool == p->name &&
		    c->acts.v[i].market == SCALE_ON_DEMAND && !c->acts.v[i].reserved)
			od += c->acts.v[i].count;
	int extra = now_active > run->want ? now_active - run->want : 0;
	int repl = (od < run->want ? od : run->want) - extra;
	if (repl > p->max - now_active)
		repl = p->max - now_active;
	if (repl <= 0)
		return 0;
	int r = scale_launch(run->c, p, run->load, repl, true, false, "replace fast-start on-demand", run->seq,
			     &run->index);
	if (r < 0)
		return r;
	run->m->launched += r;
	return 0;
}

/* Size: grow or shrink towards the wanted count, then fast start. */
static int step_size(pool_run *run) {
	int r;

	if (run->want > run->active)
		r = step_grow(run);
	else if (run->m->ready > run->want)
		r = step_shrink(run);
	else {
		run->st->surplus_since = 0;
		run->st->surplus_want = 0;
		r = 0;
	}
	if (r >= 0)
		r = step_fast_start(run);
	return r;
}

/* ---- step 3: drained hosts ------------------------------------------------------------ */

/* Why a draining host with no jobs left goes now, or NULL: billing decides
 * when (the end of the billed hour, or past the minimum lifetime). An
 * interrupted host goes anyway, wind-down hook or not: EC2 takes it in two
 * minutes. */
static const char *drained_why(const pool_run *run, const hv *x) {
	const scale_host *h = x->h;
	if (h->winding_down && !x->interrupted)
		return NULL;
	if (x->interrupted)
		return "spot interruption, no jobs";
	if (run->p->billing == SCALE_BILLING_HOURLY)
		return into_hour(h, run->now) >= run->p->hourly_threshold ? "no jobs, end of billed hour" : NULL;
	return uptime(h, run->now) >= run->p->min_lifetime ? "no jobs" : NULL;
}

/* Draining hosts that stayed draining and have no jobs left -> terminate,
 * or back into the warm pool while it has room (warm.c). */
static int step_drained(pool_run *run) {
	int room = scale_warm_room(run);
	for (size_t i = 0; i < run->n; i++) {
		hv *x = &run->hs[i];
		const scale_host *h = x->h;
		const char *why;
		if (h->hold || h->in_rollout || x->acted || x->changed || h->state != SCALE_DRAINING || h->jobs > 0)
			continue;
		if (!(why = drained_why(run, x)))
			continue;
		bool warm = scale_warm_takes(run, x, &room);
		int r = warm ? scale_host_action(run->c, SCALE_ACTION_STOP, x, SCALE_STOPPED, "returned to the warm pool")
			     : scale_host_action(run->c, SCALE_ACTION_TERMINATE, x, SCALE_TERMINATING, why);
		if (r < 0)
			return r;
		if (warm)
			run->m->stopped++;
		else
			run->m->terminated++;
	}
	return 0;
}

/* One pool: the steps, in order. */
static int decide_pool(ctx *c, const scale_pool *p, hv *hs, size_t n, const scale_pool_state *old,
		       scale_metrics *m, scale_pool_state *st) {
	pool_run run = { .c = c, .in = c->in, .p = p, .hs = hs, .n = n, .m = m, .st = st, .now = c->in->now };
	_cleanup_free_ int *load = NULL;
	_cleanup_free_ cand *cs = NULL;
	int r;

	pool_begin(&run, old);
	if (c->in->maintenance) {
		m->note = "maintenance";
		return 0;
	}
	/* 1. health and lifecycle */
	if ((r = step_health(&run)) < 0 || (r = scale_warm_fill(&run)) < 0)
		return r;
	mark_lost(&run);
	if ((r = step_interruptions(&run)) < 0 || (r = step_broken(&run)) < 0)
		return r;
	/* 2. replace by relaunch (replace.c), then size: a replacement
	 * launched now counts as launching capacity */
	if ((r = scale_replace_step(c, p, hs, n, m)) < 0)
		return r;
	count_capacity(&run);
	run.active += r;
	m->launching += r;
	r = scale_replace_extra(hs, n);
	run.active -= r;
	m->ready -= r;
	wanted_hosts(&run);
	load = subnet_load(&run);
	cs = malloc((n ? n : 1) * sizeof *cs);
	if (!load || !cs)
		return -ENOMEM;
	run.load = load;
	run.cs = cs;
	run.seq = st->launch_seq + 1;
	if (!m->enabled) {
		m->note = "disabled";
		st->surplus_since = 0;
		st->surplus_want = 0;
	} else if ((r = step_size(&run)) < 0)
		return r;
	/* 3. drained hosts, when billing says; 4. the warm pool's size */
	if ((r = step_drained(&run)) < 0 || (r = scale_warm_settle(&run)) < 0)
		return r;
	if (run.index > 0)
		st->launch_seq = run.seq;
	return 0;
}

static int action_rank(scale_action_kind k) {
	return (int) k;
}

/* Per pool the passes above emit kinds in a mixed order (a drain for an
 * interruption comes before a terminate); a stable sort on (kind, id)
 * inside each pool makes the order the header promises. */
static int sort_pool_actions(scale_action *v, size_t n) {
	/* bottom-up merge sort: stable, and a pool may hold thousands */
	if (n < 2)
		return 0;
	_cleanup_free_ scale_action *tmp = malloc(n * sizeof *tmp);
	if (!tmp)
		return -ENOMEM;
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi) {
				const scale_action *x = &v[a], *y = &v[b];
				int c = action_rank(x->kind) - action_rank(y->kind);
				if (c == 0 && x->id && y->id)
					c = strcmp(x->id, y->id);
				tmp[o++] = c <= 0 ? v[a++] : v[b++];
			}
			while (a < mid)
				tmp[o++] = v[a++];
			while (b < hi)
				tmp[o++] = v[b++];
		}
		memcpy(v, tmp, n * sizeof *v);
	}
	return 0;
}

int scale_decide(const scale_input *in, scale_output *out) {
	_cleanup_free_ const scale_pool **pools = NULL;
	_cleanup_free_ hv *hs = NULL;
	_cleanup_free_ int *rem = NULL;
	_cleanup_free_ scale_metrics *metrics = NULL;
	_cleanup_free_ scale_pool_state *state = NULL;
	ctx c = { .in = in };
	int r;

	if (!in || !out || !in->policy || in->now <= 0 || (in->n_hosts && !in->hosts))
		return -EINVAL;
	*out = (scale_output) { 0 };

	size_t np = in->policy->n_pools;
	pools = malloc((np ? np : 1) * sizeof *pools);
	metrics = calloc(np ? np : 1, sizeof *metrics);
	state = calloc(np ? np : 1, sizeof *state);
	hs = malloc((in->n_hosts ? in->n_hosts : 1) * sizeof *hs);
	rem = calloc(in->n_reservations ? in->n_reservations : 1, sizeof *rem);
	if (!pools || !metrics || !state || !hs || !rem)
		return -ENOMEM;
	for (size_t i = 0; i < np; i++)
		pools[i] = &in->policy->pools[i];
	qsort(pools, np, sizeof *pools, poolp_cmp);

	for (size_t i = 0; i < in->n_hosts; i++) {
		const scale_host *h = &in->hosts[i];
		/* an instance without the cluster's tag is nobody's to touch */
		hs[i] = (hv) { .h = h, .pool = h->cluster_tagged && h->id ? pool_index(pools, np, h->pool) : -1 };
		/* same order as strcmp: bytes as unsigned, a shorter id first */
		for (size_t k = 0, stop = 0; k < 8; k++) {
			unsigned char ch = stop || !h->id ? 0 : (unsigned char) h->id[k];
			stop = stop || ch == 0;
			hs[i].key = hs[i].key << 8 | ch;
		}
	}
	qsort(hs, in->n_hosts, sizeof *hs, hv_cmp);
	c.rem = rem;
	r = scale_cover(hs, in->n_hosts, in, rem);
	if (r < 0)
		return r;

	size_t h0 = 0;
	while (h0 < in->n_hosts && hs[h0].pool < 0)
		h0++;
	for (size_t pi = 0; pi < np; pi++) {
		const scale_pool *p = pools[pi];
		size_t h1 = h0;
		while (h1 < in->n_hosts && hs[h1].pool == (int) pi)
			h1++;
		const scale_pool_state *old = NULL;
		for (size_t s = 0; s < in->n_state; s++)
			if (streq_ptr(in->state[s].pool, p->name)) {
				old = &in->state[s];
				break;
			}
		size_t first = c.acts.n;
		r = decide_pool(&c, p, hs + h0, h1 - h0, old, &metrics[pi], &state[pi]);
		scale_replace_versions(&c, p, first);
		if (r >= 0)
			r = sort_pool_actions(c.acts.v + first, c.acts.n - first);
		if (r < 0) {
			free(c.acts.v);
			return r;
		}
		for (size_t i = first; i < c.acts.n; i++)
			if (c.acts.v[i].kind != SCALE_ACTION_LAUNCH)
				metrics[pi].transitions += c.acts.v[i].kind == SCALE_ACTION_TRANSITION;
		h0 = h1;
	}

	*out = (scale_output) {
		.actions = c.acts.v,
		.n_actions = c.acts.n,
		.metrics = TAKE_PTR(metrics),
		.n_metrics = np,
		.state = TAKE_PTR(state),
		.n_state = np,
	};
	return 0;
}
