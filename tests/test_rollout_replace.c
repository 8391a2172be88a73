/* test_rollout_replace.c — replace by relaunch in the rollout's pure
 * decision (src/rollout/replace.c, relaunch.c): which nodes a machine
 * image plan takes and which it skips (and why), the orders (upgrade, a
 * numbered version, no prepare), an AMI target's launch template version
 * asked for first, a replaced node done only when its replacement is
 * healthy for min_healthy_time and the old host drains, a replacement
 * never healthy failing the batch and the rollback (undrain old, drain
 * new) ending rolled back; the ClientTokens; observe reading scale/hosts/;
 * and the node runner ignoring a replace-only order. */
#include "rollout-fixture.h"
#include "upgrade.h"

static fleet F;
static char ltv[MAXN][8], inst[MAXN][32], repl[MAXN][32];

/* n1..n4 on EC2, launch template version 1; the plan: version 2, pool web,
 * no canary unless a test sets one. */
static void setup(void) {
	fleet_init(&F, 4);
	F.plan.target.image = NULL;
	fleet_machine_image(&F, "2");
	F.plan.min_healthy_time = 30;
	F.plan.healthy_deadline = 300;
	F.stable = (rollout_target) { .launch_template_version = (char *) "1" };
	for (size_t i = 0; i < F.n; i++) {
		snprintf(ltv[i], sizeof ltv[i], "1");
		snprintf(inst[i], sizeof inst[i], "i-%d", (int) i + 1);
		F.nodes[i].instance = inst[i];
		F.nodes[i].launch_template_version = ltv[i];
		F.nodes[i].image = NULL;        /* no upgrade config needed */
	}
}

static void teardown(void) {
	F.plan.pools = NULL;
	fleet_done(&F);
}

TestSuite(rollout_replace, .init = setup, .fini = teardown);

/* The scaler's part for node i: a replacement registered (ready since
 * `since`, healthy or not) and the old host draining. */
static void replaced(int i, time_t since, bool healthy, bool old_draining) {
	snprintf(repl[i], sizeof repl[i], "i-r%d", i + 1);
	F.nodes[i].replacement = repl[i];
	F.nodes[i].replacement_ready = since;
	F.nodes[i].replacement_healthy = healthy;
	F.nodes[i].draining = old_draining;
}

Test(rollout_replace, skips_and_orders_a_batch_without_prepare) {
	F.nodes[1].held = true;
	F.nodes[2].instance = NULL;
	snprintf(ltv[3], sizeof ltv[3], "2");
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING, "%s", F.state.reason);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 0, "nothing to prepare");
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_not_null(o);
	cr_assert_eq(o->verb, ROLLOUT_UPGRADE);
	cr_assert_str_eq(o->target.launch_template_version, "2");
	cr_assert_str_eq(o->from.launch_template_version, "1");
	cr_assert(rollout_order_replaces(o));
	cr_assert_str_eq(view_step(&F.out, "n2"), "skipped: held");
	cr_assert_str_eq(view_step(&F.out, "n3"), "skipped: not an EC2 host");
	cr_assert_str_eq(view_step(&F.out, "n4"), "skipped: already on target");
	cr_assert_str_eq(F.state.launch_template_version, "2");
	cr_assert_not_null(strstr(F.state.waiting, "batch 1"));
}

Test(rollout_replace, done_only_when_the_replacement_is_healthy_and_the_old_host_drains) {
	F.plan.max_unavailable = 1;
	F.plan.min_healthy_percent = 0;
	fleet_step(&F);
	cr_assert_not_null(order_for(&F.out, "n1"));
	F.now += 10;
	fleet_step(&F);
	cr_assert_not_null(strstr(F.state.waiting, "replacement to launch"), "%s", F.state.waiting);
	replaced(0, F.now, true, false);
	F.now += 40;
	fleet_step(&F);
	cr_assert_not_null(strstr(F.state.waiting, "old host to drain"), "%s", F.state.waiting);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0, "batch 2 waits for batch 1");
	F.nodes[0].draining = true;
	F.now += 1;
	fleet_step(&F);
	cr_assert_str_eq(view_step(&F.out, "n1"), "done");
	cr_assert_not_null(order_for(&F.out, "n2"), "batch 2 starts");
}

Test(rollout_replace, min_healthy_time_counts_from_ready) {
	fleet_step(&F);
	replaced(0, F.now, true, true);
	F.now += 20;
	fleet_step(&F);
	cr_assert_not_null(strstr(F.state.waiting, "healthy until"), "%s", F.state.waiting);
	cr_assert_eq(F.out.wake, F.now + 10);
}

/* The done-when case: a replacement never healthy halts the plan, the
 * rollback takes back only the replaced node (no launch: its order says
 * rollback, the scaler undrains the old host and drains the new one). */
Test(rollout_replace, never_healthy_fails_and_rolls_back_with_undrain) {
	F.plan.max_unavailable = 1;
	F.plan.min_healthy_percent = 0;
	fleet_step(&F);
	replaced(0, F.now + 5, false, true);
	F.now += 200;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	cr_assert_not_null(strstr(F.state.waiting, "unhealthy"), "%s", F.state.waiting);
	F.now += 101;
	fleet_step(&F);
	expect_phase(&F, ROLLOUT_ROLLING_BACK, "replacement i-r1 not healthy");
	const rollout_order *o = expect_order(&F.out, "n1", ROLLOUT_ROLLBACK);
	cr_assert_str_eq(o->target.launch_template_version, "1");
	cr_assert(rollout_order_replaces(o));
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 1, "only the node the plan changed");
	F.now += 10;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK);
	cr_assert_not_null(strstr(F.state.waiting, "draining its replacement"), "%s", F.state.waiting);
	F.nodes[0].replacement_draining = true;
	F.nodes[0].draining = false;
	F.now += 10;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK, "%s", F.state.reason);
}

Test(rollout_replace, no_replacement_at_all_fails_at_the_deadline) {
	F.plan.auto_rollback = false;
	fleet_step(&F);
	F.now += 301;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert_not_null(strstr(F.state.reason, "no replacement launched"), "%s", F.state.reason);
}

Test(rollout_replace, ami_target_asks_for_a_version_first) {
	F.plan.target.launch_template_version = NULL;
	F.plan.target.ami = (char *) "ami-new";
	F.nodes[0].image_id = "ami-old";
	F.nodes[1].image_id = "ami-new";
	fleet_step(&F);
	cr_assert_eq(F.out.n_actions, 1);
	cr_assert_eq(F.out.actions[0].kind, ROLLOUT_CREATE_VERSION);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING, "nothing starts before the version exists");
	cr_assert_null(F.state.launch_template_version);
	rollout_output_done(&F.out);
	rollout_input in = { .plan = &F.plan, .state = &F.state, .stable = &F.stable, .nodes = F.nodes,
		             .n_nodes = F.n, .created_version = "7", .now = F.now };
	cr_assert_eq(rollout_decide(&in, &F.out), 0);
	fleet_apply(&F);
	cr_assert_str_eq(F.state.launch_template_version, "7");
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_not_null(o);
	cr_assert_str_eq(o->target.launch_template_version, "7");
	cr_assert_str_eq(o->target.ami, "ami-new");
	cr_assert_str_eq(o->from.ami, "ami-old");
	cr_assert_str_eq(view_step(&F.out, "n2"), "skipped: already on target");
	/* stored: the next decision does not ask again */
	F.now += 5;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_CREATE_VERSION, -1), 0);
}

/* Real corrald hosts register before the scaler's next cycle marks their
 * records ready: a plan started then waits for them instead of finishing
 * with "nothing to do" (found by test_relaunch_cloud). */
Test(rollout_replace, pending_waits_for_registered_hosts_still_launching) {
	for (size_t i = 0; i < F.n; i++)
		F.nodes[i].launching = true;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING, "%s", F.state.reason ?: "-");
	cr_assert_str_eq(F.state.waiting, "4 hosts launching");
	cr_assert_eq(F.out.n_actions, 0, "no order, no version, before they are ready");
	F.nodes[0].launching = false;
	F.now += 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING, "not without the other three");
	for (size_t i = 1; i < F.n; i++)
		F.nodes[i].launching = false;
	F.now += 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING, "%s", F.state.reason ?: "-");
	cr_assert_not_null(order_for(&F.out, "n1"));
}

Test(rollout_replace, refused_plans_fail_with_the_key) {
	/* an image comes with strategy auto only (test_rollout_both) */
	F.plan.target.image = (char *) "v2";
	F.plan.strategy = ROLLOUT_STRATEGY_REPLACE;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert_not_null(strstr(F.state.reason, "strategy: replace cannot carry an image"), "%s", F.state.reason);
	fleet_done(&F);
	setup();
	F.plan.target.config = (char *) "s1";
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert_not_null(strstr(F.state.reason, "cannot be combined with a config"), "%s", F.state.reason);
	fleet_done(&F);
	setup();
	F.plan.n_pools = 0;
	F.plan.pools = NULL;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert_not_null(strstr(F.state.reason, "exactly one pool"), "%s", F.state.reason);
}

Test(rollout_replace, canary_is_a_replacement_too) {
	F.plan.canary_nodes = 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_not_null(o);
	cr_assert_eq(o->role, ROLLOUT_ROLE_CANARY);
	replaced(0, F.now, true, true);
	F.now += 31;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE, "%s", F.state.reason);
}

Test(rollout_replace, in_place_strategy_does_not_replace) {
	cr_assert(rollout_node_eligible(&F.plan, &F.nodes[0], NULL));
	F.nodes[0].draining = true;
	const char *why;
	cr_assert_not(rollout_node_eligible(&F.plan, &F.nodes[0], &why));
	cr_assert_str_eq(why, "draining");
}

Test(rollout_replace, tokens_are_deterministic_and_short) {
	char a[65], b[65], c[65], v[65];
	rollout_replace_token("p1", 1, 2, "i-0123456789abcdef0", false, a);
	rollout_replace_token("p1", 1, 2, "i-0123456789abcdef0", false, b);
	cr_assert_str_eq(a, b);
	cr_assert_leq(strlen(a), 64);
	cr_assert_eq(strncmp(a, "corral-r-", 9), 0, "%s", a);
	rollout_replace_token("p1", 2, 2, "i-0123456789abcdef0", false, c);
	cr_assert_str_neq(a, c, "a new generation launches anew");
	rollout_replace_token("p1", 1, 2, "i-0123456789abcdef1", false, c);
	cr_assert_str_neq(a, c);
	rollout_replace_token("p1", 1, 2, "i-0123456789abcdef0", true, c);
	cr_assert_eq(strncmp(c, "corral-b-", 9), 0);
	/* the longest plan id and numbers still fit */
	char plan[200];
	memset(plan, 'x', sizeof plan - 1);
	plan[sizeof plan - 1] = '\0';
	rollout_replace_token(plan, INT64_MAX, 1000000, plan, false, c);
	cr_assert_leq(strlen(c), 64);
	rollout_version_token("p1", 1, v);
	cr_assert_leq(strlen(v), 64);
	cr_assert_eq(strncmp(v, "corral-v-", 9), 0);
}

Test(rollout_replace, the_node_runs_nothing_for_a_replace_order) {
	rollout_order o = { .plan = (char *) "p1", .generation = 1, .verb = ROLLOUT_UPGRADE,
		            .target = { .launch_template_version = (char *) "2" },
		            .from = { .launch_template_version = (char *) "1" } };
	upgrade_start st;
	upgrade_decide_start(&o, NULL, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE);
	cr_assert_not_null(strstr(st.why, "replaced"));
	o.verb = ROLLOUT_ROLLBACK;
	upgrade_decide_start(&o, NULL, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE);
	/* an image order still runs */
	o.target = (rollout_target) { .image = (char *) "v2" };
	o.from = (rollout_target) { .image = (char *) "v1" };
	upgrade_decide_start(&o, NULL, &st);
	cr_assert_eq(st.kind, UPGRADE_START_FRESH);
}

/* ---- observe ---------------------------------------------------------------------------- */

#define P "/corral/t"
#define KV(k, v) { P "/" k, v, sizeof(v) - 1 }

Test(rollout_replace, observe_reads_the_host_records) {
	static const rollout_kv nodes[] = {
		KV("nodes/a", "{\"pool\": \"web\", \"instance_id\": \"i-a\"}"),
		KV("nodes/b", "{\"pool\": \"web\", \"instance_id\": \"i-b\"}"),
		KV("nodes/r", "{\"pool\": \"web\", \"instance_id\": \"i-r\"}"),
	};
	static const rollout_kv status[] = { KV("status/r", "{\"ok\": true}") };
	static const rollout_kv hosts[] = {
		KV("scale/hosts/i-a", "{\"id\": \"i-a\", \"state\": \"draining\", \"launch_template_version\": \"1\","
		                      " \"image_id\": \"ami-1\"}"),
		KV("scale/hosts/i-b", "{\"id\": \"i-b\", \"state\": \"ready\", \"launch_template_version\": \"1\"}"),
		KV("scale/hosts/i-old", "{\"id\": \"i-old\", \"state\": \"terminated\", \"replaces\": \"i-a\"}"),
		KV("scale/hosts/i-r", "{\"id\": \"i-r\", \"state\": \"ready\", \"state_since\": 900, \"node_id\": \"r\","
		                      " \"replaces\": \"i-a\", \"launch_template_version\": \"2\"}"),
		KV("scale/hosts/i-s", "{\"id\": \"i-s\", \"state\": \"launching\", \"replaces\": \"i-b\"}"),
		KV("scale/hosts/bad", "{not json"),
		/* g's host is gone, and its node record with it: known by the host record */
		KV("scale/hosts/i-g", "{\"id\": \"i-g\", \"state\": \"terminated\", \"node_id\": \"g\"}"),
		KV("scale/hosts/i-h", "{\"id\": \"i-h\", \"state\": \"ready\", \"state_since\": 950, \"replaces\": \"i-g\"}"),
	};
	static const rollout_kv upgrade[] = {
		KV("upgrade/nodes/g", "{\"plan\": \"p1\", \"generation\": 1, \"verb\": \"upgrade\","
		                      " \"target\": {\"launch_template_version\": \"2\"}, \"issued\": 900}"),
	};
	rollout_records r = { .prefix = P, .upgrade = upgrade, .n_upgrade = ELEMENTSOF(upgrade), .nodes = nodes,
		              .n_nodes = ELEMENTSOF(nodes), .status = status,
		              .n_status = ELEMENTSOF(status), .hosts = hosts, .n_hosts = ELEMENTSOF(hosts),
		              .now = 1000 };
	rollout_view v;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert_eq(v.n_nodes, 4);
	const rollout_node *a = &v.nodes[0], *b = &v.nodes[1], *g = &v.nodes[2], *rn = &v.nodes[3];
	cr_assert_not(g->registered);
	cr_assert_str_eq(g->instance, "i-g");
	cr_assert(g->draining);
	cr_assert_str_eq(g->replacement, "i-h");
	cr_assert_eq(g->replacement_ready, 950);
	cr_assert_str_eq(a->instance, "i-a");
	cr_assert_str_eq(a->launch_template_version, "1");
	cr_assert_str_eq(a->image_id, "ami-1");
	cr_assert(a->draining);
	cr_assert_str_eq(a->replacement, "i-r", "the live one, not the terminated one");
	cr_assert(a->replacement_healthy);
	cr_assert_eq(a->replacement_ready, 900);
	cr_assert_not(a->replacement_draining);
	cr_assert_not(b->draining);
	cr_assert_str_eq(b->replacement, "i-s");
	cr_assert_eq(b->replacement_ready, 0, "still launching");
	cr_assert_not(b->replacement_healthy, "no node yet");
	cr_assert_str_eq(rn->launch_template_version, "2");
	cr_assert_null(rn->replacement);
	rollout_view_done(&v);
}
