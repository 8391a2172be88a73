/* rollout-fixture.h — a small fleet for the rollout decision's tests: a
 * plan (p1, target v2), nodes n1..nN on v1 in pool "web", their orders
 * and progress, and helpers that run a decision and carry its output
 * (state, orders) back into the fleet, and play the nodes' part. */
#pragma once

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "rollout.h"

#define NOW ((time_t) 1700000000)
#define MAXN 32

typedef struct fleet {
	rollout_plan plan;
	rollout_state state;            /* owned */
	rollout_node nodes[MAXN];
	rollout_order orders[MAXN];     /* owned; nodes[i].order points here */
	rollout_progress progress[MAXN];        /* owned */
	char ids[MAXN][16];
	char images[MAXN][16];
	size_t n;
	rollout_target stable;
	rollout_gate gate;
	time_t now;
	rollout_output out;
	int upgrades[MAXN];             /* UPGRADE orders seen per node */
} fleet;

static inline void fleet_init(fleet *f, int n) {
	memset(f, 0, sizeof *f);
	rollout_plan_defaults(&f->plan);
	f->plan.id = (char *) "p1";
	f->plan.target.image = (char *) "v2";
	f->plan.created = NOW - 10;
	f->now = NOW;
	f->n = n;
	f->stable.image = (char *) "v1";
	for (int i = 0; i < n; i++) {
		snprintf(f->ids[i], sizeof f->ids[i], "n%d", i + 1);
		snprintf(f->images[i], sizeof f->images[i], "v1");
		f->nodes[i] = (rollout_node) { .id = f->ids[i], .pool = "web", .image = f->images[i],
			                       .registered = true, .status_ok = true };
	}
}

/* A machine image plan (replace by relaunch): launch template version
 * `version`, the one pool "web", no canary unless a test sets one. */
static inline void fleet_machine_image(fleet *f, const char *version) {
	static char *pools[] = { (char *) "web", NULL };
	f->plan.target.launch_template_version = (char *) version;
	f->plan.pools = pools;
	f->plan.n_pools = 1;
	f->plan.canary_nodes = 0;
}

static inline void fleet_done(fleet *f) {
	rollout_output_done(&f->out);
	rollout_state_done(&f->state);
	for (size_t i = 0; i < f->n; i++) {
		rollout_order_done(&f->orders[i]);
		rollout_progress_done(&f->progress[i]);
	}
}

/* The stored state: plan p1, generation gen, phase. */
static inline void fleet_state(fleet *f, rollout_phase phase, int64_t gen) {
	rollout_state_done(&f->state);
	f->state = (rollout_state) { .plan = strdup("p1"), .generation = gen, .phase = phase, .phase_since = f->now,
		                     .started = f->now, .progress_at = f->now, .previous = { strdup("v1") } };
}

static inline void fleet_order(fleet *f, int i, const char *plan, int64_t gen, rollout_verb verb, rollout_role role,
			       int batch, time_t issued) {
	rollout_order_done(&f->orders[i]);
	f->orders[i] = (rollout_order) { .plan = strdup(plan), .generation = gen, .verb = verb, .role = role,
		                         .batch = batch, .target = { strdup(verb == ROLLOUT_ROLLBACK ? "v1" : "v2") },
		                         .from = { strdup(verb == ROLLOUT_ROLLBACK ? "v2" : "v1") }, .issued = issued };
	f->nodes[i].order = &f->orders[i];
}

/* The node's report on its order: state, finished at `at`. */
static inline void fleet_progress(fleet *f, int i, rollout_step_state st, time_t at) {
	const rollout_order *o = &f->orders[i];
	rollout_progress_done(&f->progress[i]);
	f->progress[i] = (rollout_progress) { .plan = strdup(o->plan), .generation = o->generation, .verb = o->verb,
		                              .state = st, .step = st == ROLLOUT_STEP_FAILED ? 3 : 0, .n_steps = 5,
		                              .step_name = strdup("health"), .started = at - 5,
		                              .finished = st == ROLLOUT_STEP_RUNNING ? 0 : at, .updated = at,
		                              .error = st == ROLLOUT_STEP_FAILED ? strdup("exit 1") : NULL };
	f->nodes[i].progress = &f->progress[i];
	if (st == ROLLOUT_STEP_DONE && o->target.image && o->verb != ROLLOUT_PREPARE && o->verb != ROLLOUT_FINISH)
		snprintf(f->images[i], sizeof f->images[i], "%s", o->target.image);
}

static inline int fleet_index(const fleet *f, const char *id) {
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->ids[i], id) == 0)
			return (int) i;
	cr_assert_fail("no node %s", id);
	return -1;
}

/* One decision on the fleet as it is; the output stays in f->out. */
static inline void fleet_decide(fleet *f) {
	rollout_output_done(&f->out);
	rollout_input in = { .plan = &f->plan, .state = &f->state, .stable = &f->stable, .nodes = f->nodes,
		             .n_nodes = f->n, .gate = f->gate, .now = f->now };
	cr_assert_eq(rollout_decide(&in, &f->out), 0);
	cr_assert_eq(f->out.n_nodes, f->n);
}

/* The leader's part: store the new state and the orders. */
static inline void fleet_apply(fleet *f) {
	rollout_state_done(&f->state);
	f->state = f->out.state;
	f->out.state = (rollout_state) {};
	for (size_t a = 0; a < f->out.n_actions; a++) {
		rollout_action *act = &f->out.actions[a];
		if (act->kind != ROLLOUT_WRITE_ORDER)
			continue;
		int i = fleet_index(f, act->node);
		rollout_order_done(&f->orders[i]);
		cr_assert_eq(rollout_order_copy(&act->order, &f->orders[i]), 0);
		f->nodes[i].order = &f->orders[i];
		f->upgrades[i] += f->orders[i].verb == ROLLOUT_UPGRADE;
	}
}

static inline void fleet_step(fleet *f) {
	fleet_decide(f);
	fleet_apply(f);
}

/* How many actions of a kind (and verb, for orders; -1 any). */
static inline size_t count_actions(const rollout_output *out, rollout_action_kind kind, int verb) {
	size_t c = 0;
	for (size_t i = 0; i < out->n_actions; i++)
		c += out->actions[i].kind == kind &&
		     (verb < 0 || kind != ROLLOUT_WRITE_ORDER || (int) out->actions[i].order.verb == verb);
	return c;
}

/* The order the output gives node id, or NULL. */
static inline const rollout_order *order_for(const rollout_output *out, const char *id) {
	for (size_t i = 0; i < out->n_actions; i++)
		if (out->actions[i].kind == ROLLOUT_WRITE_ORDER && strcmp(out->actions[i].node, id) == 0)
			return &out->actions[i].order;
	return NULL;
}

/* The plan is in phase, for a reason that says `reason` (NULL: any). */
static inline void expect_phase(const fleet *f, rollout_phase phase, const char *reason) {
	cr_assert_eq(f->state.phase, phase, "%s", f->state.reason);
	if (reason)
		cr_assert_not_null(strstr(f->state.reason ? f->state.reason : "", reason), "%s", f->state.reason);
}

/* The order the output gives node id, which must be one of verb. */
static inline const rollout_order *expect_order(const rollout_output *out, const char *id, rollout_verb verb) {
	const rollout_order *o = order_for(out, id);
	cr_assert_not_null(o, "no order for %s", id);
	cr_assert_eq(o->verb, verb, "%s: %s", id, rollout_verb_to_string(o->verb));
	return o;
}

static inline const char *view_step(const rollout_output *out, const char *id) {
	for (size_t i = 0; i < out->n_nodes; i++)
		if (strcmp(out->nodes[i].id, id) == 0)
			return out->nodes[i].step;
	return NULL;
}
