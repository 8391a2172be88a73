/* scale.c — the autoscaler's decision (see include/scale.h, docs/scale.md).
 *
 * One pass sorts the hosts by (pool, instance id) and works out which
 * on-demand hosts reservations cover; then each pool, in name order, goes
 * through three steps:
 *   1. health and lifecycle: launching -> ready on registration, ready or
 *      draining -> unhealthy without heartbeat, unhealthy -> ready when it
 *      is back, spot interruptions -> draining, broken hosts -> terminate;
 *   2. size: the policy's wanted count against ready + launching, giving
 *      undrains then launches, or (after hysteresis) drains;
 *   3. draining hosts that were not put back and have no jobs -> terminate,
 *      at the moment billing makes cheapest.
 * Everything is O(hosts log hosts) with a few arrays, no allocation per
 * host: 10,000 hosts decide in about 3 ms (docs/benchmarks.md), mostly
 * the three sorts. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale.h"

/* ---- names -------------------------------------------------------------------------- */

static const char *const state_names[_SCALE_STATE_MAX] = {
	[SCALE_LAUNCHING] = "launching", [SCALE_READY] = "ready",
	[SCALE_DRAINING] = "draining",   [SCALE_UNHEALTHY] = "unhealthy",
	[SCALE_TERMINATING] = "terminating", [SCALE_TERMINATED] = "terminated",
};
static const char *const market_names[_SCALE_MARKET_MAX] = {
	[SCALE_ON_DEMAND] = "on-demand", [SCALE_SPOT] = "spot",
};
static const char *const kind_names[_SCALE_POLICY_MAX] = {
	[SCALE_POLICY_JOBS] = "jobs", [SCALE_POLICY_QUEUE] = "queue",
	[SCALE_POLICY_THRESHOLD] = "threshold", [SCALE_POLICY_FIXED] = "fixed",
};
static const char *const billing_names[_SCALE_BILLING_MAX] = {
	[SCALE_BILLING_PER_SECOND] = "per-second", [SCALE_BILLING_HOURLY] = "hourly",
};
static const char *const action_names[_SCALE_ACTION_MAX] = {
	[SCALE_ACTION_TRANSITION] = "transition", [SCALE_ACTION_TERMINATE] = "terminate",
	[SCALE_ACTION_DRAIN] = "drain", [SCALE_ACTION_UNDRAIN] = "undrain",
	[SCALE_ACTION_LAUNCH] = "launch",
};

static const char *name_of(const char *const *names, size_t n, int v) {
	return v >= 0 && (size_t) v < n ? names[v] : NULL;
}

static int name_from(const char *const *names, size_t n, const char *s, int *out) {
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (streq(names[i], s)) {
			*out = (int) i;
			return 0;
		}
	return -EINVAL;
}

#define NAME_FUNCS(type, prefix, names)                                                  \
	const char *prefix##_to_string(type v) {                                          \
		return name_of(names, ELEMENTSOF(names), (int) v);                        \
	}                                                                                 \
	int prefix##_from_string(const char *s, type *out) {                              \
		int v, r = name_from(names, ELEMENTSOF(names), s, &v);                    \
		if (r < 0)                                                                \
			return r;                                                         \
		*out = (type) v;                                                          \
		return 0;                                                                 \
	}

NAME_FUNCS(scale_state, scale_state, state_names)
NAME_FUNCS(scale_market, scale_market, market_names)
NAME_FUNCS(scale_kind, scale_kind, kind_names)
NAME_FUNCS(scale_billing, scale_billing, billing_names)

const char *scale_action_kind_to_string(scale_action_kind k) {
	return name_of(action_names, ELEMENTSOF(action_names), (int) k);
}

/* ---- client token ------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

void scale_client_token(const char *cluster, const char *pool, uint64_t seq, unsigned index,
			char out[SCALE_TOKEN_MAX + 1]) {
	char num[48];
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	cluster = cluster ?: "";
	pool = pool ?: "";
	h = fnv1a(h, cluster, strlen(cluster) + 1);
	h = fnv1a(h, pool, strlen(pool) + 1);
	snprintf(num, sizeof num, "%" PRIu64, seq);
	h = fnv1a(h, num, strlen(num) + 1);
	snprintf(num, sizeof num, "%u", index);
	h = fnv1a(h, num, strlen(num));
	/* 7 + 16 + 1 + 20 + 1 + 10 = 55 <= 64 */
	snprintf(out, SCALE_TOKEN_MAX + 1, "corral-%016" PRIx64 "-%" PRIu64 "-%u", h, seq, index);
}

/* ---- output helpers ----------------------------------------------------------------- */

void scale_output_done(scale_output *out) {
	if (!out)
		return;
	free(out->actions);
	free(out->metrics);
	free(out->state);
	*out = (scale_output) { 0 };
}

typedef struct actions {
	scale_action *v;
	size_t n, cap;
} actions;

static scale_action *action_add(actions *a, scale_action_kind kind, const char *pool) {
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

/* ---- per-host working data ---------------------------------------------------------- */

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

static bool live(scale_state s) {
	return s != SCALE_TERMINATING && s != SCALE_TERMINATED;
}

static int64_t uptime(const scale_host *h, time_t now) {
	return now > h->launch_time ? (int64_t) (now - h->launch_time) : 0;
}

static int64_t into_hour(const scale_host *h, time_t now) {
	return uptime(h, now) % 3600;
}

/* Reservations cover the oldest live on-demand hosts first (their coverage
 * then does not move when hosts come and go at the young end); a zonal
 * reservation before a regional one, as EC2 applies them. rem[] ends up
 * holding what is left unused for launches. */
static int age_cmp(const void *a, const void *b) {
	const scale_host *x = (*(const hv *const *) a)->h, *y = (*(const hv *const *) b)->h;
	if (x->launch_time != y->launch_time)
		return x->launch_time < y->launch_time ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int cover(hv *hs, size_t n, const scale_input *in, int *rem) {
	_cleanup_free_ hv **order = NULL;
	size_t m = 0;

	for (size_t r = 0; r < in->n_reservations; r++)
		rem[r] = in->reservations[r].count > 0 ? in->reservations[r].count : 0;
	if (in->n_reservations == 0)
		return 0;

	order = malloc((n ? n : 1) * sizeof *order);
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (hs[i].h->cluster_tagged && hs[i].h->market == SCALE_ON_DEMAND && live(hs[i].h->state))
			order[m++] = &hs[i];
	qsort(order, m, sizeof *order, age_cmp);

	for (size_t k = 0; k < m; k++) {
		hv *x = order[k];
		const scale_host *h = x->h;
		for (int pass = 0; pass < 2 && !x->covered; pass++)
			for (size_t r = 0; r < in->n_reservations; r++) {
				const scale_reservation *res = &in->reservations[r];
				if (rem[r] <= 0 || !streq_ptr(res->instance_type, h->instance_type))
					continue;
				if (pass == 0 ? !res->availability_zone || !streq_ptr(res->availability_zone, h->availability_zone)
					      : res->availability_zone != NULL)
					continue;
				rem[r]--;
				x->covered = true;
				break;
			}
	}
	return 0;
}

/* ---- launch placement --------------------------------------------------------------- */

typedef struct ctx {
	const scale_input *in;
	actions acts;
	int *rem;               /* unused reservations */
} ctx;

static const scale_price *price_find(const scale_input *in, const char *type, const char *az) {
	if (!az)
		return NULL;
	for (size_t i = 0; i < in->n_prices; i++)
		if (streq_ptr(in->prices[i].instance_type, type) && streq_ptr(in->prices[i].availability_zone, az))
			return &in->prices[i];
	return NULL;
}

static bool spot_failed(const scale_input *in, const char *pool, const char *type) {
	for (size_t i = 0; i < in->n_spot_errors; i++)
		if (streq_ptr(in->spot_errors[i].pool, pool) && streq_ptr(in->spot_errors[i].instance_type, type))
			return true;
	return false;
}

static bool spot_ok(const scale_input *in, const scale_pool *p, const char *type, const scale_subnet *s) {
	const scale_price *pr = price_find(in, type, s->availability_zone);
	return pr && pr->price < p->spot_max_price;
}

/* Is spot possible at all for this pool right now? */
static bool spot_possible(const scale_input *in, const scale_pool *p) {
	if (!p->market_spot)
		return false;
	for (size_t t = 0; t < p->n_instance_types; t++) {
		if (spot_failed(in, p->name, p->instance_types[t]))
			continue;
		for (size_t s = 0; s < p->n_subnets; s++)
			if (spot_ok(in, p, p->instance_types[t], &p->subnets[s]))
				return true;
	}
	return false;
}

typedef struct choice {
	size_t type, subnet;
	scale_market market;
	bool reserved;
} choice;

/* Spreads launches over subnets: the one whose zone holds the fewest of the
 * pool's hosts (counting what this decision already placed) wins; ties go
 * to the earlier subnet in the policy. */
static size_t subnet_pick(const scale_pool *p, const int *load, bool (*ok)(const ctx *, const scale_pool *, size_t, size_t, int),
			  const ctx *c, size_t type, int arg, bool *found) {
	size_t best = 0;
	*found = false;
	for (size_t s = 0; s < p->n_subnets; s++) {
		if (!ok(c, p, type, s, arg))
			continue;
		if (!*found || load[s] < load[best])
			best = s;
		*found = true;
	}
	return best;
}

/* arg: reservation index */
static bool ok_reserved(const ctx *c, const scale_pool *p, size_t type, size_t s, int r) {
	const scale_reservation *res = &c->in->reservations[r];
	return !res->availability_zone || streq_ptr(res->availability_zone, p->subnets[s].availability_zone);
}

static bool ok_spot(const ctx *c, const scale_pool *p, size_t type, size_t s, int unused) {
	return spot_ok(c->in, p, p->instance_types[type], &p->subnets[s]);
}

static bool ok_any(const ctx *c, const scale_pool *p, size_t type, size_t s, int unused) {
	return true;
}

/* One host's placement: reserved-covered on-demand, then spot, then
 * on-demand. false when no allowed market can take it. */
static bool place_one(ctx *c, const scale_pool *p, const int *load, bool allow_spot, bool allow_od, choice *out) {
	const scale_input *in = c->in;
	bool found;

	if (p->market_reserved && allow_od)
		for (size_t t = 0; t < p->n_instance_types; t++)
			/* zonal reservations first: they only help in their zone */
			for (int pass = 0; pass < 2; pass++)
				for (size_t r = 0; r < in->n_reservations; r++) {
					const scale_reservation *res = &in->reservations[r];
					if (c->rem[r] <= 0 || !streq_ptr(res->instance_type, p->instance_types[t]) ||
					    (pass == 0) != (res->availability_zone != NULL))
						continue;
					size_t s = subnet_pick(p, load, ok_reserved, c, t, (int) r, &found);
					if (!found)
						continue;
					c->rem[r]--;
					*out = (choice) { t, s, SCALE_ON_DEMAND, true };
					return true;
				}

	if (allow_spot && p->market_spot)
		for (size_t t = 0; t < p->n_instance_types; t++) {
			if (spot_failed(in, p->name, p->instance_types[t]))
				continue;
			size_t s = subnet_pick(p, load, ok_spot, c, t, 0, &found);
			if (found) {
				*out = (choice) { t, s, SCALE_SPOT, false };
				return true;
			}
		}

	if (p->market_on_demand && allow_od && p->n_instance_types > 0) {
		size_t s = subnet_pick(p, load, ok_any, c, 0, 0, &found);
		if (found) {
			*out = (choice) { 0, s, SCALE_ON_DEMAND, false };
			return true;
		}
	}
	return false;
}

/* Places n hosts, appending one launch action per distinct (type, market,
 * reserved, subnet) in first-placed order. Returns how many were placed,
 * or -ENOMEM. *index counts launch actions of this pool in this decision. */
static int launch(ctx *c, const scale_pool *p, int *load, int n, bool allow_spot, bool allow_od,
		  const char *why, uint64_t seq, unsigned *index) {
	size_t first = c->acts.n;
	int placed = 0;

	for (int k = 0; k < n; k++) {
		choice ch;
		if (!place_one(c, p, load, allow_spot, allow_od, &ch))
			break;
		load[ch.subnet]++;
		placed++;

		scale_action *a = NULL;
		for (size_t i = first; i < c->acts.n; i++) {
			scale_action *x = &c->acts.v[i];
			if (x->instance_type == p->instance_types[ch.type] && x->market == ch.market &&
			    x->reserved == ch.reserved && x->subnet == p->subnets[ch.subnet].id) {
				a = x;
				break;
			}
		}
		if (!a) {
			a = action_add(&c->acts, SCALE_ACTION_LAUNCH, p->name);
			if (!a)
				return -ENOMEM;
			a->launch_template = p->launch_template;
			a->instance_type = p->instance_types[ch.type];
			a->market = ch.market;
			a->reserved = ch.reserved;
			a->subnet = p->subnets[ch.subnet].id;
			a->availability_zone = p->subnets[ch.subnet].availability_zone;
			a->why = why;
			a->from = a->to = SCALE_LAUNCHING;
			scale_client_token(c->in->cluster, p->name, seq, (*index)++, a->client_token);
		}
		a->count++;
	}
	return placed;
}

/* ---- victims and undrain order ------------------------------------------------------ */

typedef struct cand {
	hv *x;
	int rank;               /* drain: 0 uncovered on-demand, 1 spot, 2 covered on-demand */
	int jobs;
	int64_t key;            /* drain, hourly: seconds into the hour (desc) */
	time_t launch;
	bool paid;              /* undrain, hourly: a new billed hour began while draining */
} cand;

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

static int jobs_per_host(const scale_pool *p, const hv *hs, size_t n) {
	if (p->jobs_per_host > 0)
		return p->jobs_per_host;
	int best = 0;
	for (size_t i = 0; i < n; i++)
		if (hs[i].eff == SCALE_READY && hs[i].h->job_capacity > best)
			best = hs[i].h->job_capacity;
	return best > 0 ? best : 1;
}

static int add_host_action(ctx *c, scale_action_kind kind, hv *x, scale_state to, const char *why) {
	scale_action *a = action_add(&c->acts, kind, x->h->pool);
	if (!a)
		return -ENOMEM;
	a->id = x->h->id;
	a->from = x->eff;
	a->to = to;
	a->why = why;
	a->instance_type = x->h->instance_type;
	a->market = x->h->market;
	a->availability_zone = x->h->availability_zone;
	x->eff = to;
	x->changed = true;
	return 0;
}

/* Appends the kind's actions in instance-id order: the per-kind passes below
 * each walk the pool's hosts (sorted by id), so only the pass order matters. */
static int decide_pool(ctx *c, const scale_pool *p, hv *hs, size_t n, const scale_pool_state *old,
		       scale_metrics *m, scale_pool_state *st) {
	const scale_input *in = c->in;
	const time_t now = in->now;
	_cleanup_free_ cand *cs = NULL;
	_cleanup_free_ int *load = NULL;
	unsigned index = 0;
	uint64_t seq;
	int r;

	*st = (scale_pool_state) { .pool = p->name };
	if (old) {
		st->last_scale_in = old->last_scale_in;
		st->surplus_since = old->surplus_since;
		st->launch_seq = old->launch_seq;
	}
	*m = (scale_metrics) { .pool = p->name, .enabled = p->enabled };

	/* inputs, as given */
	for (size_t i = 0; i < n; i++) {
		const scale_host *h = hs[i].h;
		hs[i].eff = h->state;
		if (h->state >= 0 && h->state < _SCALE_STATE_MAX)
			m->hosts[h->state]++;
		if (!live(h->state))
			continue;
		m->jobs += h->jobs;
		if (h->state == SCALE_UNHEALTHY)
			m->jobs_unhealthy += h->jobs;
		m->hosts_held += h->hold;
		m->hosts_covered += hs[i].covered;
		if (h->autoscale_off)
			m->enabled = false;
	}
	for (size_t i = 0; i < in->n_queues; i++)
		if (streq_ptr(in->queues[i].pool, p->name))
			m->queue += in->queues[i].length;

	if (in->maintenance) {
		m->note = "maintenance";
		return 0;
	}

	/* step 1: health and lifecycle (in id order: transitions, then terminates) */
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		const scale_host *h = x->h;
		bool fresh = h->node_id && h->last_seen > 0 && now - h->last_seen <= p->health_timeout;

		switch (h->state) {
		case SCALE_LAUNCHING:
			if (h->node_id && (r = add_host_action(c, SCALE_ACTION_TRANSITION, x, SCALE_READY, "registered")) < 0)
				return r;
			break;
		case SCALE_READY:
		case SCALE_DRAINING:
			if (!fresh &&
			    (r = add_host_action(c, SCALE_ACTION_TRANSITION, x, SCALE_UNHEALTHY, "no heartbeat")) < 0)
				return r;
			break;
		case SCALE_UNHEALTHY:
			if (fresh && !h->interruption &&
			    (r = add_host_action(c, SCALE_ACTION_TRANSITION, x, SCALE_READY, "heartbeat back")) < 0)
				return r;
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		const scale_host *h = x->h;
		if (h->interruption && (x->eff == SCALE_READY || x->eff == SCALE_LAUNCHING || x->eff == SCALE_DRAINING))
			x->interrupted = true;
		if (x->eff == SCALE_LAUNCHING && !h->node_id && now - h->state_since > p->launch_timeout)
			x->dead = true;
	}
	/* interruption: stop giving it work at once (a held host keeps its state
	 * but is not counted: AWS takes it either way) */
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		if (x->interrupted && !x->h->hold && x->eff != SCALE_DRAINING) {
			if ((r = add_host_action(c, SCALE_ACTION_DRAIN, x, SCALE_DRAINING, "spot interruption")) < 0)
				return r;
			m->drained++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		const scale_host *h = x->h;
		const char *why = NULL;
		if (h->hold || x->changed)
			continue;
		if (h->state == SCALE_TERMINATING && now - h->state_since >= p->terminate_retry)
			why = "terminate again";
		else if (x->dead)
			why = "launch timeout";
		else if (h->state == SCALE_UNHEALTHY && now - h->state_since > p->unhealthy_timeout)
			why = "unhealthy too long";
		else if (h->state == SCALE_DRAINING && p->drain_timeout > 0 && now - h->state_since > p->drain_timeout)
			why = "drain timeout";
		else if (h->state == SCALE_UNHEALTHY && h->jobs == 0 &&
			 (p->billing == SCALE_BILLING_HOURLY || uptime(h, now) >= p->min_lifetime))
			why = "unhealthy, no jobs";
		if (why) {
			if ((r = add_host_action(c, SCALE_ACTION_TERMINATE, x, SCALE_TERMINATING, why)) < 0)
				return r;
			x->acted = true;
			m->terminated++;
		}
	}

	/* step 2: size */
	for (size_t i = 0; i < n; i++) {
		const hv *x = &hs[i];
		if (x->interrupted || x->dead)
			continue;
		if (x->eff == SCALE_READY) {
			m->ready++;
			m->job_capacity += x->h->job_capacity;
		} else if (x->eff == SCALE_LAUNCHING)
			m->launching++;
	}
	int active = m->ready + m->launching;

	int want;
	switch (p->kind) {
	case SCALE_POLICY_JOBS: {
		/* PrairieLearn's shape: jobs on unhealthy hosts are not served, so
		 * they are not in the base, but they do feed the headroom */
		double all = m->jobs, healthy = m->jobs - m->jobs_unhealthy;
		m->jobs_per_host = jobs_per_host(p, hs, n);
		m->desired_capacity = p->capacity_factor > 0 ? healthy + all * (p->capacity_factor - 1.0)
							     : healthy + 2.0 * sqrt(all);
		double hosts = ceil(m->desired_capacity / m->jobs_per_host - 1e-9);
		want = hosts < 1 ? 1 : hosts > 1e6 ? 1000000 : (int) hosts;
		break;
	}
	case SCALE_POLICY_QUEUE: {
		int idle = 0;
		for (size_t i = 0; i < n; i++)
			idle += hs[i].eff == SCALE_READY && !hs[i].interrupted && hs[i].h->jobs == 0;
		want = active;
		if (m->queue > p->max_queued_jobs || idle < p->min_idle)
			want = active + 1;
		else if (idle > p->min_idle && m->queue == 0)
			want = active - 1;
		break;
	}
	case SCALE_POLICY_THRESHOLD: {
		int ready = 0, past = 0, idle = 0;
		for (size_t i = 0; i < n; i++) {
			const hv *x = &hs[i];
			if (x->eff != SCALE_READY || x->interrupted)
				continue;
			ready++;
			past += x->h->memory_used >= p->memory_threshold;
			idle += x->h->jobs == 0;
		}
		want = active;
		if (ready > 0 && past == ready && idle < p->min_idle + 1)
			want = active + 1;
		else if (idle > p->min_idle)
			want = active - (idle - p->min_idle);
		else if (ready == 0 && m->launching == 0)
			want = 1;
		break;
	}
	default:
		want = p->hosts >= 0 ? p->hosts : p->min;
		break;
	}
	m->policy_hosts = want;
	if (p->desired >= 0) {
		want = p->desired;
		m->note = "manual";
	}
	if (want < p->min)
		want = p->min;
	if (want > p->max)
		want = p->max;
	if (in->stop) {
		want = 0;
		m->note = "stop";
	}
	m->desired_hosts = want;
	if (!m->enabled) {
		m->note = "disabled";
		st->surplus_since = 0;
		goto drained;
	}

	seq = st->launch_seq + 1;
	load = calloc(p->n_subnets ? p->n_subnets : 1, sizeof *load);
	if (!load)
		return -ENOMEM;
	for (size_t s = 0; s < p->n_subnets; s++)
		for (size_t i = 0; i < n; i++)
			if (live(hs[i].eff) && hs[i].h->availability_zone &&
			    streq_ptr(hs[i].h->availability_zone, p->subnets[s].availability_zone))
				load[s]++;

	cs = malloc((n ? n : 1) * sizeof *cs);
	if (!cs)
		return -ENOMEM;

	if (want > active) {
		st->surplus_since = 0;
		m->deficit = want - active;
		int need = m->deficit;

		/* undrain first: newest first; in hourly billing the ones a new
		 * billed hour has already been paid for come before */
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			hv *x = &hs[i];
			/* hold means hands off: a held draining host stays so */
			if (x->eff != SCALE_DRAINING || x->changed || x->interrupted || x->h->hold)
				continue;
			bool paid = false;
			if (p->billing == SCALE_BILLING_HOURLY) {
				time_t hour_start = now - into_hour(x->h, now);
				paid = x->h->state_since < hour_start;
			}
			cs[k++] = (cand) { .x = x, .launch = x->h->launch_time, .paid = paid };
		}
		qsort(cs, k, sizeof *cs, undrain_cmp);
		if (k > (size_t) need)
			k = need;
		/* emit in id order, like every other host action */
		for (size_t j = 0; j < k; j++) {
			cs[j].x->picked = true;
			cs[j].x->paid = cs[j].paid;
		}
		for (size_t i = 0; i < n; i++) {
			if (!hs[i].picked)
				continue;
			if ((r = add_host_action(c, SCALE_ACTION_UNDRAIN, &hs[i], SCALE_READY,
						 hs[i].paid ? "capacity needed, hour already paid" : "capacity needed")) < 0)
				return r;
			hs[i].acted = true;
		}
		m->undrained = (int) k;
		need -= (int) k;

		if (need > 0) {
			bool fast = p->fast_start && p->market_on_demand;
			r = launch(c, p, load, need, !fast, true, fast ? "capacity needed, fast start" : "capacity needed",
				   seq, &index);
			if (r < 0)
				return r;
			m->launched += r;
			m->unplaced = need - r;
		}
	} else if (m->ready > want) {
		m->surplus = m->ready - want;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			hv *x = &hs[i];
			const scale_host *h = x->h;
			if (x->eff != SCALE_READY || x->interrupted || h->hold)
				continue;
			if (p->kind == SCALE_POLICY_THRESHOLD && h->jobs > 0 && !in->stop)
				continue;
			cs[k++] = (cand) {
				.x = x,
				.rank = h->market == SCALE_SPOT ? 1 : x->covered ? 2 : 0,
				.jobs = h->jobs,
				.key = p->billing == SCALE_BILLING_HOURLY ? into_hour(h, now) : 0,
				.launch = h->launch_time,
			};
		}
		if (st->surplus_since == 0 || st->surplus_since > now)
			st->surplus_since = now;
		bool go = in->stop;     /* an operator's stop does not wait */
		if (!go && now - st->surplus_since < p->scale_in_after)
			m->note = "waiting for surplus to last";
		else if (!go && st->last_scale_in > 0 && now - st->last_scale_in < p->scale_in_cooldown)
			m->note = "cooldown";
		else
			go = true;
		if (go && k > 0) {
			qsort(cs, k, sizeof *cs, victim_cmp);
			if (k > (size_t) m->surplus)
				k = m->surplus;
			for (size_t j = 0; j < k; j++)
				cs[j].x->picked = true;
			for (size_t i = 0; i < n; i++) {
				if (!hs[i].picked)
					continue;
				if ((r = add_host_action(c, SCALE_ACTION_DRAIN, &hs[i], SCALE_DRAINING,
							 in->stop ? "cluster stop" : "surplus")) < 0)
					return r;
				hs[i].acted = true;
			}
			m->drained += (int) k;
			st->last_scale_in = now;
			st->surplus_since = 0;
		}
	} else
		st->surplus_since = 0;

	/* fast start: once on-demand hosts run, launch spot to replace them;
	 * they drain (uncovered on-demand goes first) when the spot hosts are
	 * ready and the surplus has lasted */
	if (p->fast_start && !in->stop && spot_possible(in, p)) {
		int od = 0, now_active = 0;
		for (size_t i = 0; i < n; i++) {
			const hv *x = &hs[i];
			if ((x->eff != SCALE_READY && x->eff != SCALE_LAUNCHING) || x->interrupted || x->dead)
				continue;
			now_active++;
			od += x->h->market == SCALE_ON_DEMAND && !x->covered && !x->h->hold;
		}
		now_active += m->launched;
		for (size_t i = 0; i < c->acts.n; i++) /* this decision's on-demand launches */
			if (c->acts.v[i].kind == SCALE_ACTION_LAUNCH && c->acts.v[i].pool == p->name &&
			    c->acts.v[i].market == SCALE_ON_DEMAND && !c->acts.v[i].reserved)
				od += c->acts.v[i].count;
		int extra = now_active > want ? now_active - want : 0;
		int repl = (od < want ? od : want) - extra;
		if (repl > p->max - now_active)
			repl = p->max - now_active;
		if (repl > 0) {
			r = launch(c, p, load, repl, true, false, "replace fast-start on-demand", seq, &index);
			if (r < 0)
				return r;
			m->launched += r;
		}
	}
	if (index > 0)
		st->launch_seq = seq;

drained:
	/* step 3: draining hosts that stayed draining and have no jobs left */
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		const scale_host *h = x->h;
		const char *why = NULL;
		if (h->hold || x->acted || x->changed || h->state != SCALE_DRAINING || h->jobs > 0)
			continue;
		/* An interrupted host goes anyway: EC2 takes it in two minutes. */
		if (h->winding_down && !x->interrupted)
			continue;
		if (x->interrupted)
			why = "spot interruption, no jobs";
		else if (p->billing == SCALE_BILLING_HOURLY) {
			if (into_hour(h, now) >= p->hourly_threshold)
				why = "no jobs, end of billed hour";
		} else if (uptime(h, now) >= p->min_lifetime)
			why = "no jobs";
		if (why) {
			if ((r = add_host_action(c, SCALE_ACTION_TERMINATE, x, SCALE_TERMINATING, why)) < 0)
				return r;
			m->terminated++;
		}
	}
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
	r = cover(hs, in->n_hosts, in, rem);
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

/* ---- JSON and the plan -------------------------------------------------------------- */

static int set_new(json_t *o, const char *k, json_t *v) {
	return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}

json_t *scale_actions_to_json(const scale_output *out) {
	json_auto_t *arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < out->n_actions; i++) {
		const scale_action *a = &out->actions[i];
		json_auto_t *o = json_object();
		int bad = !o;
		bad = bad || set_new(o, "action", json_string(scale_action_kind_to_string(a->kind)));
		bad = bad || set_new(o, "pool", str_or_null(a->pool));
		if (a->kind == SCALE_ACTION_LAUNCH) {
			bad = bad || set_new(o, "launch_template", str_or_null(a->launch_template));
			bad = bad || set_new(o, "instance_type", str_or_null(a->instance_type));
			bad = bad || set_new(o, "market", json_string(scale_market_to_string(a->market)));
			bad = bad || set_new(o, "reserved", json_boolean(a->reserved));
			bad = bad || set_new(o, "subnet", str_or_null(a->subnet));
			bad = bad || set_new(o, "availability_zone", str_or_null(a->availability_zone));
			bad = bad || set_new(o, "count", json_integer(a->count));
			bad = bad || set_new(o, "client_token", json_string(a->client_token));
		} else {
			bad = bad || set_new(o, "id", str_or_null(a->id));
			bad = bad || set_new(o, "from", json_string(scale_state_to_string(a->from)));
			bad = bad || set_new(o, "to", json_string(scale_state_to_string(a->to)));
		}
		bad = bad || set_new(o, "why", str_or_null(a->why));
		if (bad || json_array_append(arr, o) < 0)
			return NULL;
	}
	return TAKE_PTR(arr);
}

json_t *scale_metrics_to_json(const scale_output *out) {
	json_auto_t *all = json_object();
	if (!all)
		return NULL;
	for (size_t i = 0; i < out->n_metrics; i++) {
		const scale_metrics *m = &out->metrics[i];
		json_auto_t *o = json_object(), *hosts = json_object();
		int bad = !o || !hosts;
		for (int s = 0; s < _SCALE_STATE_MAX && !bad; s++)
			bad = set_new(hosts, scale_state_to_string(s), json_integer(m->hosts[s]));
		bad = bad || json_object_set(o, "hosts", hosts);
#define I(k) bad = bad || set_new(o, #k, json_integer(m->k))
		I(hosts_held);
		I(hosts_covered);
		I(jobs);
		I(jobs_unhealthy);
		I(job_capacity);
		I(jobs_per_host);
		I(queue);
		I(policy_hosts);
		I(desired_hosts);
		I(ready);
		I(launching);
		I(surplus);
		I(deficit);
		I(drained);
		I(undrained);
		I(launched);
		I(terminated);
		I(transitions);
		I(unplaced);
#undef I
		bad = bad || set_new(o, "desired_capacity", json_real(m->desired_capacity));
		bad = bad || set_new(o, "enabled", json_boolean(m->enabled));
		bad = bad || set_new(o, "note", str_or_null(m->note));
		if (bad || json_object_set(all, m->pool, o) < 0)
			return NULL;
	}
	return TAKE_PTR(all);
}

json_t *scale_output_to_json(const scale_output *out) {
	json_auto_t *o = json_object(), *st = json_object();
	if (!o || !st)
		return NULL;
	for (size_t i = 0; i < out->n_state; i++) {
		const scale_pool_state *s = &out->state[i];
		json_auto_t *x = json_object();
		if (!x || set_new(x, "last_scale_in", json_integer(s->last_scale_in)) ||
		    set_new(x, "surplus_since", json_integer(s->surplus_since)) ||
		    set_new(x, "launch_seq", json_integer((json_int_t) s->launch_seq)) ||
		    json_object_set(st, s->pool, x) < 0)
			return NULL;
	}
	if (set_new(o, "actions", scale_actions_to_json(out)) || set_new(o, "metrics", scale_metrics_to_json(out)) ||
	    json_object_set(o, "state", st) < 0)
		return NULL;
	return TAKE_PTR(o);
}

typedef struct buf {
	char *p;
	size_t n, cap;
	bool oom;
} buf;

_printf_(2, 3) static void bprintf(buf *b, const char *fmt, ...) {
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->n + (size_t) k < b->cap) {
			b->n += k;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 1024) + k;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

char *scale_plan_format(const scale_output *out) {
	buf b = { 0 };

	for (size_t i = 0; i < out->n_metrics; i++) {
		const scale_metrics *m = &out->metrics[i];
		bprintf(&b, "pool %s: %d launching, %d ready, %d draining, %d unhealthy, %d terminating; "
			    "jobs %d (%d on unhealthy), queue %d; desired %d hosts",
			m->pool, m->hosts[SCALE_LAUNCHING], m->hosts[SCALE_READY], m->hosts[SCALE_DRAINING],
			m->hosts[SCALE_UNHEALTHY], m->hosts[SCALE_TERMINATING], m->jobs, m->jobs_unhealthy, m->queue,
			m->desired_hosts);
		if (m->desired_capacity > 0)
			bprintf(&b, " (%.2f job slots)", m->desired_capacity);
		if (m->note)
			bprintf(&b, " [%s]", m->note);
		bprintf(&b, "\n");
		for (size_t k = 0; k < out->n_actions; k++) {
			const scale_action *a = &out->actions[k];
			if (!streq_ptr(a->pool, m->pool))
				continue;
			switch (a->kind) {
			case SCALE_ACTION_LAUNCH:
				bprintf(&b, "  launch %d x %s %s%s in %s (%s), token %s: %s\n", a->count,
					a->instance_type ?: "?", scale_market_to_string(a->market),
					a->reserved ? " (reserved)" : "", a->subnet ?: "?", a->availability_zone ?: "-",
					a->client_token, a->why ?: "");
				break;
			case SCALE_ACTION_TRANSITION:
				bprintf(&b, "  mark %s %s -> %s: %s\n", a->id, scale_state_to_string(a->from),
					scale_state_to_string(a->to), a->why ?: "");
				break;
			default:
				bprintf(&b, "  %s %s (%s -> %s): %s\n", scale_action_kind_to_string(a->kind), a->id,
					scale_state_to_string(a->from), scale_state_to_string(a->to), a->why ?: "");
				break;
			}
		}
	}
	if (out->n_actions == 0)
		bprintf(&b, "no changes\n");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}
