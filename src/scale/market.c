/* market.c — the decision's market rules: which running on-demand hosts
 * reservations cover, and where a launch goes (a reservation's unused
 * capacity, spot under the pool's maximum price unless the last spot
 * launch of that type failed, on-demand), spread over the pool's subnets,
 * with the client token that makes a re-decided launch idempotent. Pure,
 * like the rest of the decision (scale.c calls these; see
 * scale-internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-internal.h"

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

int scale_cover(hv *hs, size_t n, const scale_input *in, int *rem) {
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
		/* a stopped host is not billed as running: a reservation would be wasted on it */
		if (hs[i].h->cluster_tagged && hs[i].h->market == SCALE_ON_DEMAND && scale_live(hs[i].h->state) &&
		    hs[i].h->state != SCALE_STOPPED)
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

bool scale_spot_possible(const scale_input *in, const scale_pool *p) {
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
int scale_launch(ctx *c, const scale_pool *p, int *load, int n, bool allow_spot, bool allow_od, const char *why,
		 uint64_t seq, unsigned *index) {
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
			a = scale_actions_add(&c->acts, SCALE_ACTION_LAUNCH, p->name);
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

/* One host's action, its effective state moved on. */
int scale_host_action(ctx *c, scale_action_kind kind, hv *x, scale_state to, const char *why) {
	scale_action *a = scale_actions_add(&c->acts, kind, x->h->pool);
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
