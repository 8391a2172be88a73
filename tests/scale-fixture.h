/* scale-fixture.h — what the decision's unit tests share (test_scale.c,
 * test_scale_warm.c): a policy of one pool "web" (two types, two subnets,
 * max 1000, 10 jobs per host), hosts made by H(), the other inputs, one
 * decision at a time and look-ups in its output. Header-only. */
#pragma once

#include <criterion/criterion.h>
#include <string.h>

#include "macro.h"
#include "scale.h"

/* ---- fixture ------------------------------------------------------------------------ */

#define NOW ((time_t) 1700000000)
#define MAXH 64

typedef struct fx {
	char *types[3];
	scale_subnet subnets[2];
	scale_pool pools[3];
	scale_policy policy;
	scale_host hosts[MAXH];
	size_t n;
	scale_queue queues[2];
	size_t n_queues;
	scale_price prices[8];
	size_t n_prices;
	scale_reservation res[4];
	size_t n_res;
	scale_spot_error errs[2];
	size_t n_errs;
	scale_pool_state state[3];
	size_t n_state;
	scale_forecast forecasts[2];
	size_t n_forecasts;
	scale_input in;
	scale_output out;
} fx;

static fx F;

static inline void fx_init(void) {
	scale_output_done(&F.out); /* tables re-initialise mid-test */
	memset(&F, 0, sizeof F);
	F.types[0] = "m5.large";
	F.types[1] = "c5.large";
	F.subnets[0] = (scale_subnet) { "subnet-a", "us-east-1a" };
	F.subnets[1] = (scale_subnet) { "subnet-b", "us-east-1b" };
	scale_pool *p = &F.pools[0];
	scale_pool_defaults(p);
	p->name = "web";
	p->launch_template = "lt-web";
	p->instance_types = F.types;
	p->n_instance_types = 2;
	p->subnets = F.subnets;
	p->n_subnets = 2;
	p->max = 1000;
	p->jobs_per_host = 10;
	F.policy = (scale_policy) { F.pools, 1 };
}

static inline scale_pool *P(void) {
	return &F.pools[0];
}

/* A healthy host of pool web, launched 2 h ago, in its state since then. */
static inline scale_host *H(const char *id, scale_state s, int jobs) {
	cr_assert_lt(F.n, MAXH);
	scale_host *h = &F.hosts[F.n++];
	*h = (scale_host) {
		.id = (char *) id, .pool = "web", .state = s, .market = SCALE_ON_DEMAND,
		.instance_type = "m5.large", .availability_zone = "us-east-1a",
		.launch_time = NOW - 7200, .state_since = NOW - 7200,
		.node_id = s == SCALE_LAUNCHING ? NULL : (char *) id, .last_seen = NOW - 5,
		.jobs = jobs, .job_capacity = 10, .memory_used = 0.5, .cluster_tagged = true,
	};
	return h;
}

static inline void decide_at(time_t now) {
	scale_output_done(&F.out);
	F.in = (scale_input) {
		.cluster = "test", .policy = &F.policy, .hosts = F.hosts, .n_hosts = F.n,
		.queues = F.queues, .n_queues = F.n_queues, .prices = F.prices, .n_prices = F.n_prices,
		.reservations = F.res, .n_reservations = F.n_res, .spot_errors = F.errs,
		.n_spot_errors = F.n_errs, .state = F.state, .n_state = F.n_state,
		.forecasts = F.forecasts, .n_forecasts = F.n_forecasts,
		.maintenance = F.in.maintenance, .stop = F.in.stop, .now = now,
	};
	int r = scale_decide(&F.in, &F.out);
	cr_assert_eq(r, 0, "scale_decide: %d", r);
}

static inline void decide(void) {
	decide_at(NOW);
}

/* Hysteresis out of the way, for rules that are not about it. */
static inline void no_hysteresis(void) {
	P()->scale_in_after = 0;
	P()->scale_in_cooldown = 0;
}

static inline const scale_metrics *M(const char *pool) {
	for (size_t i = 0; i < F.out.n_metrics; i++)
		if (streq(F.out.metrics[i].pool, pool))
			return &F.out.metrics[i];
	cr_assert_fail("no metrics for %s", pool);
	return NULL;
}

static inline int count(scale_action_kind k) {
	int n = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		n += F.out.actions[i].kind == k;
	return n;
}

static inline int launched(scale_market m, bool reserved) {
	int n = 0;
	for (size_t i = 0; i < F.out.n_actions; i++) {
		const scale_action *a = &F.out.actions[i];
		if (a->kind == SCALE_ACTION_LAUNCH && a->market == m && a->reserved == reserved)
			n += a->count;
	}
	return n;
}

static inline int launched_all(void) {
	return launched(SCALE_ON_DEMAND, false) + launched(SCALE_ON_DEMAND, true) + launched(SCALE_SPOT, false);
}

static inline const scale_action *act(scale_action_kind k, const char *id) {
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == k && streq_ptr(F.out.actions[i].id, id))
			return &F.out.actions[i];
	return NULL;
}

static inline bool touched(const char *id) {
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (streq_ptr(F.out.actions[i].id, id) && F.out.actions[i].kind != SCALE_ACTION_TRANSITION)
			return true;
	return false;
}

static inline char *plan(void) {
	return scale_plan_format(&F.out);
}

static inline void fini(void) {
	scale_output_done(&F.out);
}
