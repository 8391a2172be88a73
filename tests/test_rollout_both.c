/* test_rollout_both.c — a plan with an image and a machine image (strategy
 * auto) in the rollout's pure decision: hosts not on the machine image are
 * replaced, the others (already on it, or not on EC2) get the image in
 * place through prepare and their steps; both kinds share one budget and
 * the canary; the replacements are newcomers that get the image in place
 * (a canary's as part of the canary); a failing in-place node fails the
 * plan and the rollback takes each node back its own way; `upgrade plan`
 * says which kind each node is. */
#include "rollout-fixture.h"

static fleet F;
static char ltv[MAXN][8], inst[MAXN][32];

/* n1, n2 on EC2 at launch template version 1 (replaced), n3 on EC2 at 2
 * (in place), n4 not on EC2 (in place); every node on image v1. The
 * plan: image v2 and version 2, pool web, no canary unless a test sets
 * one, two nodes at a time. */
static void setup(void) {
	fleet_init(&F, 4);
	fleet_machine_image(&F, "2");
	F.plan.max_unavailable = 2;
	F.plan.min_healthy_percent = 0;
	F.stable = (rollout_target) { .image = (char *) "v1", .launch_template_version = (char *) "1" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(ltv[i], sizeof ltv[i], "%s", i < 2 ? "1" : "2");
		snprintf(inst[i], sizeof inst[i], "i-%d", (int) i + 1);
		F.nodes[i].instance = inst[i];
		F.nodes[i].launch_template_version = ltv[i];
	}
}

static void teardown(void) {
	F.plan.pools = NULL;
	fleet_done(&F);
}

TestSuite(rollout_both, .init = setup, .fini = teardown);

/* The scaler's part for node i: its replacement registers as a new node
 * (booted now, on version 2, still on image v1), healthy, ready since now,
 * and the old host drains. Returns the new node's index. */
static int replace_host(int i) {
	int k = (int) F.n++;
	snprintf(F.ids[k], sizeof F.ids[k], "r%d", i + 1);
	snprintf(F.images[k], sizeof F.images[k], "v1");
	snprintf(ltv[k], sizeof ltv[k], "2");
	snprintf(inst[k], sizeof inst[k], "i-r%d", i + 1);
	F.nodes[k] = (rollout_node) { .id = F.ids[k], .pool = "web", .image = F.images[k], .registered = true,
		                      .status_ok = true, .booted = F.now, .instance = inst[k],
		                      .launch_template_version = ltv[k] };
	F.nodes[i].replacement = inst[k];
	F.nodes[i].replacement_ready = F.now;
	F.nodes[i].replacement_healthy = true;
	F.nodes[i].draining = true;
	return k;
}

/* Node i reported on its order (the progress is on the same verb). */
static bool reported(int i) {
	return F.nodes[i].progress && F.nodes[i].order && F.progress[i].verb == F.orders[i].verb;
}

/* Every PREPARE the last decision issued reports done. */
static void prepares_done(void) {
	for (size_t i = 0; i < F.n; i++)
		if (F.nodes[i].order && F.orders[i].verb == ROLLOUT_PREPARE && !reported((int) i))
			fleet_progress(&F, (int) i, ROLLOUT_STEP_DONE, F.now);
}

static bool order_is(int i, rollout_verb verb, bool replaces) {
	return F.nodes[i].order && F.orders[i].verb == verb && rollout_order_replaces(&F.orders[i]) == replaces;
}

/* Start, prepare the in-place nodes, enter rolling. */
static void start_rolling(void) {
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING, "%s", F.state.reason);
	F.now += 5;
	prepares_done();
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING, "%s", F.state.reason);
}

Test(rollout_both, each_node_gets_its_kind) {
	cr_assert(rollout_plan_both(&F.plan));
	cr_assert(rollout_node_replaced(&F.plan, &F.nodes[0]));
	cr_assert_not(rollout_node_replaced(&F.plan, &F.nodes[2]), "already on the machine image");
	cr_assert_not(rollout_node_replaced(&F.plan, &F.nodes[3]), "not on EC2");
	for (int i = 0; i < 4; i++)
		cr_assert(rollout_node_eligible(&F.plan, &F.nodes[i], NULL), "n%d", i + 1);
	/* on both targets, or not on EC2 and on the image: nothing to do */
	const char *why;
	snprintf(F.images[2], sizeof F.images[2], "v2");
	cr_assert_not(rollout_node_eligible(&F.plan, &F.nodes[2], &why));
	cr_assert_str_eq(why, "already on target");
	snprintf(F.images[3], sizeof F.images[3], "v2");
	cr_assert_not(rollout_node_eligible(&F.plan, &F.nodes[3], &why));
	cr_assert_str_eq(why, "not an EC2 host");
	/* a host on the old machine image but the new image: replaced still */
	snprintf(F.images[0], sizeof F.images[0], "v2");
	cr_assert(rollout_node_eligible(&F.plan, &F.nodes[0], NULL));
	cr_assert(rollout_node_replaced(&F.plan, &F.nodes[0]));
	/* a draining host is taken neither way; no upgrade config: not in place */
	F.nodes[1].draining = true;
	cr_assert_not(rollout_node_eligible(&F.plan, &F.nodes[1], &why));
	cr_assert_str_eq(why, "draining");
	F.nodes[2].image = NULL;
	cr_assert_not(rollout_node_eligible(&F.plan, &F.nodes[2], &why));
	cr_assert_str_eq(why, "no upgrade config");
	/* in_place or replace alone: no mix */
	F.plan.strategy = ROLLOUT_STRATEGY_IN_PLACE;
	cr_assert_not(rollout_plan_both(&F.plan));
	F.plan.strategy = ROLLOUT_STRATEGY_AUTO;
	F.plan.target.launch_template_version = NULL;
	cr_assert_not(rollout_plan_both(&F.plan), "an image alone");
}

Test(rollout_both, prepares_only_the_nodes_kept_with_the_image_alone) {
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING, "%s", F.state.reason);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 2);
	cr_assert_null(order_for(&F.out, "n1"), "a replaced host prepares nothing");
	cr_assert_null(order_for(&F.out, "n2"));
	for (int i = 2; i < 4; i++) {
		const rollout_order *o = order_for(&F.out, F.ids[i]);
		cr_assert_not_null(o);
		cr_assert_eq(o->verb, ROLLOUT_PREPARE);
		cr_assert_str_eq(o->target.image, "v2");
		cr_assert_null(o->target.launch_template_version, "the node's steps see the image alone");
		cr_assert_str_eq(o->from.image, "v1");
	}
	cr_assert_str_eq(view_step(&F.out, "n1"), "pending");
	cr_assert_str_eq(view_step(&F.out, "n3"), "preparing");
	F.now += 5;
	prepares_done();
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_ROLLING, "2 nodes prepared, 0 skipped, 2 to replace");
}

/* One budget: max_unavailable 3 takes the first three nodes, whatever
 * their kind, each with its own order; the fourth waits for the batch. */
Test(rollout_both, one_budget_across_both_kinds) {
	F.plan.max_unavailable = 3;
	start_rolling();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 3);
	cr_assert(order_is(0, ROLLOUT_UPGRADE, true));
	cr_assert(order_is(1, ROLLOUT_UPGRADE, true));
	cr_assert(order_is(2, ROLLOUT_UPGRADE, false));
	cr_assert_str_eq(F.orders[0].target.launch_template_version, "2");
	cr_assert_null(F.orders[0].target.image);
	cr_assert_str_eq(F.orders[2].target.image, "v2");
	cr_assert_null(F.orders[2].target.launch_template_version);
	cr_assert_null(F.nodes[3].order->verb == ROLLOUT_UPGRADE ? "batch 2 started early" : NULL);
	/* the in-place node is done, the replacements are not: batch 2 waits */
	F.now += 5;
	fleet_progress(&F, 2, ROLLOUT_STEP_DONE, F.now);
	F.now += 31;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 0);
	cr_assert_not_null(strstr(F.state.waiting, "replacement to launch"), "%s", F.state.waiting);
	cr_assert_str_eq(view_step(&F.out, "n3"), "done");
}

/* A budget of one: the nodes go one at a time, in node order, a replaced
 * host counting as unavailable as much as a node running its steps. */
Test(rollout_both, budget_of_one_alternates_kinds) {
	F.plan.max_unavailable = 1;
	start_rolling();
	cr_assert(order_is(0, ROLLOUT_UPGRADE, true));
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	F.now += 5;
	replace_host(0);
	fleet_step(&F);         /* r1: a newcomer, prepared at once */
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 0, "n1 is still proving itself");
	cr_assert(order_is(4, ROLLOUT_PREPARE, false));
	F.now += 31;
	prepares_done();
	fleet_step(&F);
	cr_assert_str_eq(view_step(&F.out, "n1"), "done");
	cr_assert(order_is(4, ROLLOUT_UPGRADE, false), "r1 gets the image outside the budget, as any newcomer");
	cr_assert(order_is(1, ROLLOUT_UPGRADE, true), "batch 2: n2");
	/* the next batch waits for both */
	F.now += 31;
	replace_host(1);
	fleet_progress(&F, 4, ROLLOUT_STEP_RUNNING, F.now);
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 0);
	cr_assert_str_eq(view_step(&F.out, "r1"), "batch 1", "with the batch it joined in");
	cr_assert(!order_is(2, ROLLOUT_UPGRADE, false), "n3 waits");
}

/* The whole plan: every node ends on both targets, the replacements
 * through their own in-place upgrade. */
Test(rollout_both, every_node_ends_on_both) {
	F.plan.final_bake = 60;
	start_rolling();
	for (int round = 0; round < 40 && F.state.phase != ROLLOUT_SUCCEEDED; round++) {
		F.now += 31;
		for (size_t i = 0; i < 4; i++)
			if (order_is((int) i, ROLLOUT_UPGRADE, true) && !F.nodes[i].replacement)
				replace_host((int) i);
		for (size_t i = 0; i < F.n; i++)
			if (order_is((int) i, ROLLOUT_UPGRADE, false) && !reported((int) i))
				fleet_progress(&F, (int) i, ROLLOUT_STEP_DONE, F.now);
		prepares_done();
		fleet_step(&F);
	}
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED, "%s (%s)", F.state.reason, F.state.waiting);
	cr_assert_eq(F.n, 6);
	for (size_t i = 0; i < F.n; i++) {
		if (F.nodes[i].draining)
			continue;       /* the old hosts, replaced */
		cr_assert_str_eq(F.images[i], "v2", "%s", F.ids[i]);
		if (F.nodes[i].instance)
			cr_assert_str_eq(F.nodes[i].launch_template_version, "2", "%s", F.ids[i]);
	}
	cr_assert_eq(F.upgrades[4] + F.upgrades[5], 2, "each replacement upgraded once, in place");
	cr_assert(order_is(4, ROLLOUT_FINISH, false) || order_is(4, ROLLOUT_UPGRADE, false));
}

/* A failing in-place node fails the plan; the rollback takes the
 * replaced host back by undrain (replace order) and the in-place nodes
 * back by their steps (image order), each from what it ran. */
Test(rollout_both, in_place_failure_rolls_back_each_its_own_way) {
	F.plan.max_unavailable = 3;
	start_rolling();
	F.now += 5;
	int r1 = replace_host(0);
	fleet_step(&F);
	cr_assert(order_is(r1, ROLLOUT_PREPARE, false));
	F.now += 31;
	prepares_done();
	fleet_progress(&F, 2, ROLLOUT_STEP_DONE, F.now - 20);
	fleet_step(&F);
	cr_assert(order_is(r1, ROLLOUT_UPGRADE, false));
	/* r1's steps fail: the plan fails and rolls back */
	F.now += 5;
	fleet_progress(&F, r1, ROLLOUT_STEP_FAILED, F.now);
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_ROLLING_BACK, "node r1");
	cr_assert_not_null(strstr(F.state.reason, "failed at step 4 (health)"), "%s", F.state.reason);
	/* n1, n2 and n3 were changed; r1 too, but it goes with n1's rollback
	 * (drained), so it is not taken back in place */
	cr_assert_null(order_for(&F.out, "r1"));
	const rollout_order *o = expect_order(&F.out, "n1", ROLLOUT_ROLLBACK);
	cr_assert(rollout_order_replaces(o));
	int back[MAXN] = {};    /* 1: taken back by the scaler, 2: by its steps */
	for (int round = 0; round < 10 && F.state.phase == ROLLOUT_ROLLING_BACK; round++) {
		for (size_t i = 0; i < F.n; i++) {
			if (!order_is((int) i, ROLLOUT_ROLLBACK, rollout_order_replaces(&F.orders[i])) || back[i])
				continue;
			back[i] = rollout_order_replaces(&F.orders[i]) ? 1 : 2;
			if (back[i] == 1)
				cr_assert_str_eq(F.orders[i].target.launch_template_version, "1", "%s", F.ids[i]);
			else {
				cr_assert_str_eq(F.orders[i].target.image, "v1", "%s", F.ids[i]);
				cr_assert_null(F.orders[i].target.launch_template_version);
			}
		}
		for (size_t i = 0; i < F.n; i++) {
			if (!F.nodes[i].order || F.orders[i].verb != ROLLOUT_ROLLBACK || reported((int) i) ||
			    rollout_order_replaces(&F.orders[i]))
				continue;
			fleet_progress(&F, (int) i, ROLLOUT_STEP_DONE, F.now);
		}
		F.nodes[0].replacement_draining = true;
		F.nodes[0].draining = false;
		F.nodes[1].draining = false;
		F.now += 31;
		fleet_step(&F);
	}
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK, "%s (%s)", F.state.reason, F.state.waiting);
	cr_assert_eq(back[0], 1, "n1: undrain, drain r1");
	cr_assert_eq(back[1], 1, "n2: undrain");
	cr_assert_eq(back[2], 2, "n3: its steps back");
	cr_assert_eq(back[r1], 0, "r1: drained with n1's rollback, not rolled back in place");
	cr_assert_eq(back[3], 0, "n4 never changed");
}

/* A replaced node that never gets a replacement fails the plan too, and
 * the in-place node already done is rolled back in place. */
Test(rollout_both, replace_failure_rolls_back_in_place_nodes) {
	F.plan.max_unavailable = 3;
	start_rolling();
	F.now += 5;
	fleet_progress(&F, 2, ROLLOUT_STEP_DONE, F.now);
	F.now += 301;
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_ROLLING_BACK, "no replacement launched");
	const rollout_order *o = expect_order(&F.out, "n3", ROLLOUT_ROLLBACK);
	cr_assert_str_eq(o->target.image, "v1");
	o = order_for(&F.out, "n1");
	cr_assert_not_null(o, "the failed replace is taken first");
	cr_assert(rollout_order_replaces(o));
}

/* A replaced canary's replacement is part of the canary: it gets the
 * image in place as a canary, and the bake waits for it. */
Test(rollout_both, canary_replacement_gets_the_image_before_the_bake) {
	F.plan.canary_nodes = 1;
	fleet_step(&F);
	F.now += 5;
	prepares_done();
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "%s", F.state.reason);
	cr_assert(order_is(0, ROLLOUT_UPGRADE, true), "n1 first, replaced");
	cr_assert_eq(F.orders[0].role, ROLLOUT_ROLE_CANARY);
	F.now += 5;
	int r1 = replace_host(0);
	fleet_step(&F);
	cr_assert(order_is(r1, ROLLOUT_PREPARE, false), "the replacement is prepared at once");
	/* n1's order is done, r1 still prepares: no bake yet */
	F.now += 31;
	fleet_step(&F);
	cr_assert_str_eq(view_step(&F.out, "n1"), "done");
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "%s", F.state.reason);
	cr_assert_not_null(strstr(F.state.waiting, "r1 (prepare)"), "%s", F.state.waiting);
	prepares_done();
	F.now += 1;
	fleet_step(&F);
	cr_assert(order_is(r1, ROLLOUT_UPGRADE, false));
	cr_assert_eq(F.orders[r1].role, ROLLOUT_ROLE_CANARY);
	cr_assert_str_eq(F.orders[r1].target.image, "v2");
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1, "no other canary");
	F.now += 5;
	fleet_progress(&F, r1, ROLLOUT_STEP_DONE, F.now);
	F.now += 31;
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_CANARY_BAKE, "2 canaries healthy");
}

/* The canary's replacement failing its prepare fails the plan (the canary
 * cannot prove the image), even without prepare_blocks. */
Test(rollout_both, canary_replacement_prepare_failure_fails) {
	F.plan.canary_nodes = 1;
	F.plan.auto_rollback = false;
	fleet_step(&F);
	F.now += 5;
	prepares_done();
	fleet_step(&F);
	F.now += 5;
	int r1 = replace_host(0);
	fleet_step(&F);
	F.now += 5;
	fleet_progress(&F, r1, ROLLOUT_STEP_FAILED, F.now);
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_FAILED, "replacement r1 failed its prepare");
}

/* A canary kept in place (the first node already on the machine image)
 * runs its steps as in an image plan. */
Test(rollout_both, in_place_canary) {
	F.plan.canary_nodes = 1;
	snprintf(ltv[0], sizeof ltv[0], "2");
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 3);
	F.now += 5;
	prepares_done();
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert(order_is(0, ROLLOUT_UPGRADE, false));
	cr_assert_eq(F.orders[0].role, ROLLOUT_ROLE_CANARY);
	F.now += 5;
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, F.now);
	F.now += 31;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE, "%s", F.state.reason);
}

/* Non-EC2 nodes: the image in place; skipped for the machine image only
 * when they have nothing else to do. */
Test(rollout_both, non_ec2_nodes_get_the_image) {
	snprintf(F.images[2], sizeof F.images[2], "v2");
	F.nodes[1].instance = NULL;
	snprintf(F.images[1], sizeof F.images[1], "v2");
	fleet_step(&F);
	cr_assert_str_eq(view_step(&F.out, "n2"), "skipped: not an EC2 host");
	cr_assert_str_eq(view_step(&F.out, "n3"), "skipped: already on target");
	cr_assert_str_eq(view_step(&F.out, "n4"), "preparing");
	cr_assert_str_eq(order_for(&F.out, "n4")->target.image, "v2");
}

/* A plan with both and an AMI asks for its launch template version first,
 * as a machine image plan does; nothing is prepared before. */
Test(rollout_both, ami_version_first) {
	F.plan.target.launch_template_version = NULL;
	F.plan.target.ami = (char *) "ami-new";
	fleet_step(&F);
	cr_assert_eq(F.out.n_actions, 1);
	cr_assert_eq(F.out.actions[0].kind, ROLLOUT_CREATE_VERSION);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING);
}

/* The plan file: image and machine image with strategy auto (the
 * default) parse; strategy replace with an image is refused by key. */
Test(rollout_both, plan_parses_with_auto_only) {
	rollout_plan p = {};
	rollout_error err = {};
	json_auto_t *ok = json_loads("{\"id\": \"p\", \"pools\": [\"web\"], \"target\": {\"image\": \"v\", \"ami\": "
	                             "\"ami-1\"}}", 0, NULL);
	cr_assert_eq(rollout_plan_from_json(ok, &p, &err), 0, "%s", err.message);
	cr_assert(rollout_plan_both(&p));
	rollout_plan_done(&p);
	json_auto_t *bad = json_loads("{\"id\": \"p\", \"target\": {\"image\": \"v\", \"launch_template_version\": 2},"
	                              " \"strategy\": \"replace\"}", 0, NULL);
	cr_assert_lt(rollout_plan_from_json(bad, &p, &err), 0);
	cr_assert_str_eq(err.key, "strategy");
	cr_assert_not_null(strstr(err.message, "use auto"), "%s", err.message);
	rollout_plan_done(&p);
}

Test(rollout_both, schedule_says_each_nodes_kind) {
	rollout_input in = { .plan = &F.plan, .state = &F.state, .stable = &F.stable, .nodes = F.nodes, .n_nodes = F.n,
		             .now = F.now };
	rollout_schedule s;
	cr_assert_eq(rollout_schedule_build(&in, &s), 0);
	_cleanup_free_ char *text = rollout_schedule_format(&F.plan, &s);
	rollout_schedule_done(&s);
	cr_assert_not_null(text);
	cr_assert_not_null(strstr(text, "image v2 and launch template version 2"), "%s", text);
	cr_assert_not_null(strstr(text, "batch 1: n1 (replace), n2 (replace)\n"), "%s", text);
	cr_assert_not_null(strstr(text, "batch 2: n3 (in place), n4 (in place)\n"), "%s", text);
}
