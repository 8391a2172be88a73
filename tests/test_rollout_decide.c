/* test_rollout_decide.c — rollout_decide(), the rollout's pure decision:
 * every phase transition of the rules (../wt COMMON13 "Decision rules",
 * docs/upgrades.md), deadlines, gates, rollback of only what the plan
 * changed, generation fencing, supersede/abort/retry/pause/promote, the
 * FINISH orders, and whole rollouts played through with the fleet
 * fixture standing in for the nodes. */
#include "rollout-fixture.h"

static fleet F;

static void setup(void) {
	fleet_init(&F, 3);
}

static void teardown(void) {
	fleet_done(&F);
}

TestSuite(rollout_decide, .init = setup, .fini = teardown);

/* Every node with an order of the current plan+generation and no report
 * on it reports: done, or failed for `bad` on an upgrade. */
static void play_nodes(fleet *f, const char *bad) {
	for (size_t i = 0; i < f->n; i++) {
		const rollout_order *o = f->nodes[i].order;
		const rollout_progress *p = f->nodes[i].progress;
		if (!o || !f->nodes[i].registered)
			continue;
		if (p && strcmp(p->plan, o->plan) == 0 && p->generation == o->generation && p->verb == o->verb)
			continue;
		bool fail = bad && strcmp(f->ids[i], bad) == 0 && o->verb == ROLLOUT_UPGRADE;
		fleet_progress(f, (int) i, fail ? ROLLOUT_STEP_FAILED : ROLLOUT_STEP_DONE, f->now);
	}
}

/* Decide, act, let the nodes report, a minute passes; until terminal and quiet. */
static int play(fleet *f, const char *bad, int max) {
	for (int i = 0; i < max; i++) {
		fleet_step(f);
		if (rollout_phase_terminal(f->state.phase) && f->out.n_actions == 0)
			return i;
		play_nodes(f, bad);
		f->now += 60;
	}
	return max;
}

/* ---- no plan, new plan, pending ------------------------------------------------------------ */

Test(rollout_decide, no_plan_does_nothing) {
	rollout_input in = { .plan = NULL, .state = &F.state, .nodes = F.nodes, .n_nodes = F.n, .now = NOW };
	rollout_output out;
	cr_assert_eq(rollout_decide(&in, &out), 0);
	cr_assert_eq(out.n_actions, 0);
	cr_assert_not(out.state_changed);
	cr_assert_str_eq(out.line, "");
	cr_assert_eq(out.n_nodes, 3);
	rollout_output_done(&out);
}

Test(rollout_decide, new_plan_prepares_every_eligible_node) {
	F.nodes[1].held = true;
	snprintf(F.images[2], sizeof F.images[2], "v2");        /* already on target */
	fleet_decide(&F);
	cr_assert(F.out.state_changed);
	cr_assert_str_eq(F.out.state.plan, "p1");
	cr_assert_eq(F.out.state.generation, 1);
	cr_assert_eq(F.out.state.phase, ROLLOUT_PREPARING);
	cr_assert_str_eq(F.out.state.previous.image, "v1", "previous = stable");
	cr_assert_eq(F.out.state.started, NOW);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 1);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert(o);
	cr_assert_eq(o->role, ROLLOUT_ROLE_NONE);
	cr_assert_str_eq(o->target.image, "v2");
	cr_assert_str_eq(o->from.image, "v1");
	cr_assert_eq(o->issued, NOW);
	cr_assert_null(order_for(&F.out, "n2"), "held: never ordered");
	cr_assert_null(order_for(&F.out, "n3"), "already on target");
	cr_assert_str_eq(view_step(&F.out, "n2"), "skipped: held");
	cr_assert_str_eq(view_step(&F.out, "n3"), "skipped: already on target");
	cr_assert(strstr(F.out.line, "pending -> preparing"), "%s", F.out.line);
}

Test(rollout_decide, nothing_to_do_succeeds) {
	for (int i = 0; i < 3; i++)
		snprintf(F.images[i], sizeof F.images[i], "v2");
	fleet_decide(&F);
	cr_assert_eq(F.out.state.phase, ROLLOUT_SUCCEEDED);
	cr_assert(strstr(F.out.state.reason, "nothing to do"));
	cr_assert_eq(count_actions(&F.out, ROLLOUT_SET_STABLE, -1), 1);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_HISTORY, -1), 1);
	cr_assert(F.out.history);
}

Test(rollout_decide, schedule_waits_for_cron) {
	rollout_cron c;
	rollout_error err;
	cr_assert_eq(rollout_cron_parse("0 2 * * 2", NULL, &c, &err), 0);
	F.plan.schedule = &c;
	F.plan.created = NOW;                           /* Tuesday 22:13 */
	fleet_state(&F, ROLLOUT_PENDING, 1);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING);
	cr_assert_eq(F.out.n_actions, 0);
	time_t next_tue = NOW + 7 * 86400 - (22 * 3600 + 13 * 60 + 20) + 2 * 3600;
	cr_assert_eq(F.out.wake, next_tue);
	cr_assert(strstr(F.state.waiting, "schedule"), "%s", F.state.waiting);
	F.now = next_tue;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 3);
	F.plan.schedule = NULL;
	rollout_cron_done(&c);
}

/* ---- preparing ---------------------------------------------------------------------------------- */

static void preparing(void) {
	fleet_state(&F, ROLLOUT_PREPARING, 1);
	for (int i = 0; i < 3; i++)
		fleet_order(&F, i, "p1", 1, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0, NOW);
}

Test(rollout_decide, preparing_waits_for_every_prepare) {
	preparing();
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW);
	fleet_progress(&F, 1, ROLLOUT_STEP_RUNNING, NOW);
	F.now = NOW + 10;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING);
	cr_assert_eq(F.out.n_actions, 0);
	cr_assert_str_eq(view_step(&F.out, "n1"), "prepared");
	cr_assert_str_eq(view_step(&F.out, "n2"), "preparing");
	for (int i = 1; i < 3; i++)
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, F.now);
	fleet_step(&F);
	/* preparing -> canary, and the canary starts in the same decision */
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_eq(o->role, ROLLOUT_ROLE_CANARY);
	cr_assert_eq(o->batch, 0);
	cr_assert_str_eq(o->from.image, "v1");
}

Test(rollout_decide, failed_prepare_skips_the_node) {
	preparing();
	fleet_progress(&F, 0, ROLLOUT_STEP_FAILED, NOW);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, NOW);
	fleet_progress(&F, 2, ROLLOUT_STEP_DONE, NOW);
	F.now = NOW + 10;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert_null(order_for(&F.out, "n1"), "its prepare order stays: the skip is remembered");
	cr_assert(order_for(&F.out, "n2"), "the canary is the first prepared node");
	cr_assert_str_eq(view_step(&F.out, "n1"), "skipped: prepare failed");
}

Test(rollout_decide, failed_prepare_blocks_when_the_plan_says) {
	F.plan.prepare_blocks = true;
	preparing();
	fleet_progress(&F, 1, ROLLOUT_STEP_FAILED, NOW);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED, "nothing changed: no rollback");
	cr_assert(strstr(F.state.reason, "prepare failed on n2"), "%s", F.state.reason);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_HISTORY, -1), 1);
}

Test(rollout_decide, silent_prepare_is_a_failed_prepare) {
	preparing();
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, NOW);
	F.now = NOW + F.plan.healthy_deadline;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING, "silent exactly healthy_deadline: not yet");
	cr_assert_eq(F.out.wake, NOW + F.plan.healthy_deadline + 1);
	F.now++;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert_str_eq(view_step(&F.out, "n3"), "skipped: prepare failed");
}

Test(rollout_decide, every_prepare_failed_fails) {
	preparing();
	for (int i = 0; i < 3; i++)
		fleet_progress(&F, i, ROLLOUT_STEP_FAILED, NOW);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "every node"), "%s", F.state.reason);
}

/* ---- canary --------------------------------------------------------------------------------------- */

/* Canary n1 running (issued at NOW); n2, n3 prepared. */
static void canary(void) {
	fleet_state(&F, ROLLOUT_CANARY, 1);
	fleet_order(&F, 0, "p1", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_CANARY, 0, NOW);
	for (int i = 1; i < 3; i++) {
		fleet_order(&F, i, "p1", 1, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0, NOW - 100);
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, NOW - 50);
	}
}

Test(rollout_decide, canary_done_only_after_min_healthy_time) {
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW + 100);
	F.now = NOW + 100 + F.plan.min_healthy_time - 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "not healthy long enough");
	cr_assert_eq(F.out.wake, NOW + 100 + F.plan.min_healthy_time);
	cr_assert(strstr(F.state.waiting, "canary n1"), "%s", F.state.waiting);
	F.now++;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE);
	cr_assert_eq(F.state.bake_until, F.now + F.plan.canary_bake);
	cr_assert_eq(F.out.wake, F.state.bake_until);
}

Test(rollout_decide, canary_done_needs_the_target_image_and_health) {
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW + 10);
	snprintf(F.images[0], sizeof F.images[0], "v1");        /* node record not updated yet */
	F.now = NOW + 100;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "image not on target yet: waits");
	snprintf(F.images[0], sizeof F.images[0], "v2");
	F.nodes[0].status_ok = false;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK, "unhealthy after its steps: fails at once");
	cr_assert(strstr(F.state.reason, "canary n1 failed: unhealthy"), "%s", F.state.reason);
}

Test(rollout_decide, failed_canary_rolls_back_only_itself) {
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_FAILED, NOW + 10);
	F.now = NOW + 20;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK);
	cr_assert_str_eq(F.state.reason, "canary n1 failed at step 4 (health): exit 1");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_ROLLBACK), 1);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_eq(o->verb, ROLLOUT_ROLLBACK);
	cr_assert_str_eq(o->target.image, "v1", "back to exactly its from");
	cr_assert_str_eq(o->from.image, "v2");
	cr_assert_null(order_for(&F.out, "n2"), "never upgraded: no rollback");
	/* the rollback finishes: rolled_back, every order gets FINISH without cleanup */
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, F.now);
	F.now += F.plan.min_healthy_time;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 3);
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == ROLLOUT_WRITE_ORDER)
			cr_assert_not(F.out.actions[i].order.cleanup, "cleanup only on success");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_SET_STABLE, -1), 0);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_HISTORY, -1), 1);
}

Test(rollout_decide, failed_canary_without_auto_rollback_fails) {
	F.plan.auto_rollback = false;
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_FAILED, NOW + 10);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "canary n1 failed at step 4 (health)"), "%s", F.state.reason);
	cr_assert(strstr(F.out.line, "canary -> failed"), "%s", F.out.line);
}

Test(rollout_decide, silent_canary_fails_after_healthy_deadline) {
	F.plan.auto_rollback = false;
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_RUNNING, NOW + 100);
	F.now = NOW + 100 + F.plan.healthy_deadline;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "silence counts from the last report");
	F.now++;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "canary n1 failed: silent for"), "%s", F.state.reason);
}

Test(rollout_decide, silent_canary_never_started_is_not_rolled_back) {
	canary();
	F.now = NOW + F.plan.healthy_deadline + 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED, "no progress: the node never started, nothing changed");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_ROLLBACK), 0);
}

Test(rollout_decide, canary_waits_for_a_window) {
	rollout_window w;
	rollout_error err;
	cr_assert_eq(rollout_window_parse("Mon-Fri 02:00-05:00", NULL, &w, &err), 0);
	F.plan.windows = &w;
	F.plan.n_windows = 1;
	fleet_state(&F, ROLLOUT_CANARY, 1);
	for (int i = 0; i < 3; i++) {
		fleet_order(&F, i, "p1", 1, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0, NOW - 100);
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, NOW - 50);
	}
	F.state.progress_at = NOW - 100000;     /* a window wait is not a lack of progress */
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	cr_assert_eq(F.out.n_actions, 0);
	time_t wed2 = NOW - (22 * 3600 + 13 * 60 + 20) + 86400 + 2 * 3600;
	cr_assert_eq(F.out.wake, wed2);
	cr_assert(strstr(F.state.waiting, "window"), "%s", F.state.waiting);
	F.now = wed2 + 60;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	F.plan.windows = NULL;
	F.plan.n_windows = 0;
	rollout_window_done(&w);
}

/* ---- bakes and gates --------------------------------------------------------------------------- */

/* Canary n1 done and baking until NOW + 600. */
static void canary_bake(void) {
	canary();
	F.state.phase = ROLLOUT_CANARY_BAKE;
	F.state.bake_until = NOW + 600;
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW - 100);
}

Test(rollout_decide, bake_then_promotion_pause_then_promote) {
	canary_bake();
	F.now = NOW + 599;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE);
	cr_assert_eq(F.out.wake, NOW + 600);
	F.now = NOW + 600;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_PROMOTION);
	cr_assert_eq(F.out.n_actions, 0);
	F.now += 3600;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED, "no progress deadline while paused");
	F.plan.promote = 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	cr_assert_eq(F.state.batch, 1);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1, "3 nodes at 90%%: one at a time");
	cr_assert_eq(order_for(&F.out, "n2")->batch, 1);
}

Test(rollout_decide, auto_promote_rolls_on) {
	F.plan.auto_promote = true;
	canary_bake();
	F.now = NOW + 600;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
}

Test(rollout_decide, canary_turning_unhealthy_in_bake_fails) {
	F.plan.auto_rollback = false;
	canary_bake();
	F.nodes[0].status_ok = false;
	F.now = NOW + 10;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
}

Test(rollout_decide, gate_is_run_then_decides) {
	F.plan.gate_command = "/bin/check";
	F.plan.auto_promote = true;
	canary_bake();
	F.now = NOW + 600;
	fleet_decide(&F);
	cr_assert_eq(F.out.n_actions, 1);
	cr_assert_eq(F.out.actions[0].kind, ROLLOUT_RUN_GATE);
	cr_assert_eq(F.out.state.phase, ROLLOUT_CANARY_BAKE);
	F.gate = ROLLOUT_GATE_PASS;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	cr_assert_eq(F.state.gate, ROLLOUT_GATE_NONE, "gate results reset at a phase change");
}

Test(rollout_decide, inconclusive_gate_pauses) {
	F.plan.gate_command = "/bin/check";
	F.plan.auto_promote = true;
	canary_bake();
	F.now = NOW + 600;
	F.gate = ROLLOUT_GATE_INCONCLUSIVE;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED, "inconclusive never promotes, even with auto_promote");
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_GATE);
	cr_assert_eq(F.state.paused_from, ROLLOUT_CANARY_BAKE);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0);
	F.gate = ROLLOUT_GATE_NONE;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	F.plan.promote = 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING, "the operator's verdict");
}

/* One promotion answers one pause: the canary's promotion must not also
 * answer an inconclusive gate after the final bake (it did when promote
 * was a generation number). */
Test(rollout_decide, a_promotion_is_used_once) {
	canary_bake();
	F.now = NOW + 600;
	fleet_step(&F);
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_PROMOTION);
	F.plan.promote = 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	cr_assert_eq(F.state.promote_seen, 1);
	/* later: the final gate is inconclusive, the old promotion is spent */
	F.plan.gate_command = "/bin/check";
	F.state.phase = ROLLOUT_FINAL_BAKE;
	F.state.bake_until = F.now;
	F.gate = ROLLOUT_GATE_INCONCLUSIVE;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_GATE);
	F.gate = ROLLOUT_GATE_NONE;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED, "a spent promotion does not answer the gate");
	F.plan.promote = 2;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED, "a new promotion does");
}

Test(rollout_decide, gate_fail_fails) {
	F.plan.gate_command = "/bin/check";
	F.plan.auto_rollback = false;
	canary_bake();
	F.now = NOW + 600;
	F.gate = ROLLOUT_GATE_FAIL;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "gate failed"), "%s", F.state.reason);
}

Test(rollout_decide, gate_fail_with_auto_rollback_rolls_the_canary_back) {
	F.plan.gate_command = "/bin/check";
	canary_bake();
	F.now = NOW + 600;
	F.gate = ROLLOUT_GATE_FAIL;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK);
	cr_assert_eq(order_for(&F.out, "n1")->verb, ROLLOUT_ROLLBACK);
}

/* ---- rolling ------------------------------------------------------------------------------------ */

/* n nodes: n1 canary done, the rest prepared; rolling, batch 0 done. */
static void rolling(int n, int pct, int maxu) {
	fleet_done(&F);
	fleet_init(&F, n);
	F.plan.min_healthy_percent = pct;
	F.plan.max_unavailable = maxu;
	fleet_state(&F, ROLLOUT_ROLLING, 1);
	fleet_order(&F, 0, "p1", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_CANARY, 0, NOW - 1000);
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, NOW - 900);
	for (int i = 1; i < n; i++) {
		fleet_order(&F, i, "p1", 1, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0, NOW - 2000);
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, NOW - 1900);
	}
}

Test(rollout_decide, batch_size_follows_the_budget) {
	rolling(10, 50, 3);
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 3);
	cr_assert_not_null(order_for(&F.out, "n2"), "in the input's (id) order");
	cr_assert_not_null(order_for(&F.out, "n3"));
	cr_assert_not_null(order_for(&F.out, "n4"));
	cr_assert_eq(F.state.batch, 1);
	/* two nodes already unhealthy: 10 - 2 = 8 healthy, 5 must stay, 3 in the batch still */
	rolling(10, 50, 3);
	F.nodes[5].status_ok = false;
	F.nodes[6].registered = false;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 3);
	/* four unhealthy: 6 healthy, 5 must stay: one */
	rolling(10, 50, 3);
	for (int i = 6; i < 10; i++)
		F.nodes[i].status_ok = false;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	/* 5 at 70%: floor(3.5) = 3 must stay; one already unhealthy: 4 - 3 = 1 */
	rolling(5, 70, 5);
	F.nodes[4].status_ok = false;
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1, "the floor, not the ceiling");
}

Test(rollout_decide, blocked_budget_waits_then_fails_at_the_deadline) {
	rolling(3, 90, 1);
	F.nodes[2].status_ok = false;           /* 2 healthy, floor(2.7) = 2 must stay */
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0);
	cr_assert(strstr(F.state.waiting, "blocked: budget"), "%s", F.state.waiting);
	cr_assert_eq(F.out.wake, F.state.progress_at + F.plan.progress_deadline + 1);
	F.now = F.state.progress_at + F.plan.progress_deadline + 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK, "the canary changed: it goes back");
	cr_assert(strstr(F.state.reason, "no progress for 15m: waiting for blocked: budget"), "%s", F.state.reason);
}

Test(rollout_decide, held_nodes_are_skipped_and_never_ordered) {
	rolling(3, 0, 5);
	F.nodes[1].held = true;
	fleet_step(&F);
	cr_assert_null(order_for(&F.out, "n2"));
	cr_assert_not_null(order_for(&F.out, "n3"));
	cr_assert_str_eq(view_step(&F.out, "n2"), "skipped: held");
}

Test(rollout_decide, next_batch_waits_for_the_current_one) {
	rolling(4, 0, 2);
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 2);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, F.now);
	F.now += 100;
	fleet_step(&F);
	cr_assert_eq(F.out.n_actions, 0, "n3 not done: batch 2 waits");
	cr_assert(strstr(F.state.waiting, "n3"), "%s", F.state.waiting);
	fleet_progress(&F, 2, ROLLOUT_STEP_DONE, F.now);
	F.now += F.plan.min_healthy_time;
	fleet_step(&F);
	cr_assert_eq(F.state.batch, 2);
	cr_assert_not_null(order_for(&F.out, "n4"));
}

/* A node done long ago that goes away (its corrald restarted past the
 * lease, its host rebooted) is unhealthy, which the budget counts; it is
 * not a failure of the target, so the plan goes on (it failed the whole
 * plan and rolled it back before). While proving itself, it would be. */
Test(rollout_decide, a_node_done_long_ago_going_away_fails_nothing) {
	rolling(5, 0, 1);
	F.nodes[0].registered = false;          /* the canary, done at NOW - 900 */
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING, "%s", F.state.reason);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1, "batch 1 starts");
	/* n2 goes away while proving itself: that fails */
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, F.now);
	F.nodes[1].registered = false;
	F.now += 1;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK);
	cr_assert(strstr(F.state.reason, "n2") && strstr(F.state.reason, "unregistered after its steps"), "%s",
		  F.state.reason);
}

/* rolled_back keeps the cause, so status and history still say why. */
Test(rollout_decide, rolled_back_says_why) {
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_FAILED, NOW + 10);
	F.now = NOW + 20;
	fleet_step(&F);
	fleet_progress(&F, 0, ROLLOUT_STEP_DONE, F.now);
	F.now += F.plan.min_healthy_time;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK);
	cr_assert_str_eq(F.state.reason, "rolled back 1 node after: canary n1 failed at step 4 (health): exit 1");
	cr_assert_str_eq(json_string_value(json_object_get(F.out.history, "reason")), F.state.reason);
}

Test(rollout_decide, last_batch_done_goes_to_final_bake_then_succeeds) {
	rolling(2, 0, 1);
	fleet_step(&F);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, F.now);
	F.now += F.plan.min_healthy_time;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FINAL_BAKE);
	cr_assert_eq(F.state.bake_until, F.now + F.plan.canary_bake, "final_bake absent: the canary's bake");
	F.now = F.state.bake_until;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_SET_STABLE, -1), 1);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_HISTORY, -1), 1);
	cr_assert_str_eq(json_string_value(json_object_get(F.out.history, "phase")), "succeeded");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 2);
	cr_assert(order_for(&F.out, "n1")->cleanup, "cleanup after success");
	/* the next decision has nothing new: FINISH is written once */
	fleet_step(&F);
	cr_assert_eq(F.out.n_actions, 0);
}

Test(rollout_decide, final_bake_fails_on_an_unhealthy_node) {
	rolling(2, 0, 1);
	F.plan.auto_rollback = false;
	fleet_order(&F, 1, "p1", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_BATCH, 1, NOW - 800);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, NOW - 700);
	F.state.phase = ROLLOUT_FINAL_BAKE;
	F.state.bake_until = NOW + 100;
	F.nodes[1].registered = false;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "node n2 (batch 1) failed: unregistered"), "%s", F.state.reason);
}

Test(rollout_decide, finish_skips_nodes_in_flight) {
	rolling(3, 0, 2);
	fleet_order(&F, 1, "p1", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_BATCH, 1, NOW - 10);
	fleet_progress(&F, 1, ROLLOUT_STEP_RUNNING, NOW - 5);
	fleet_order(&F, 2, "p1", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_BATCH, 1, NOW - 10);
	F.plan.abort = true;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANCELLED);
	cr_assert(strstr(F.state.reason, "aborted"));
	cr_assert_not_null(order_for(&F.out, "n1"));
	cr_assert_null(order_for(&F.out, "n2"), "in flight: its FINISH waits");
	const rollout_order *f3 = order_for(&F.out, "n3");
	cr_assert_eq(f3->verb, ROLLOUT_FINISH, "never started: finish at once, it will not start later");
	cr_assert_eq(f3->role, ROLLOUT_ROLE_NONE);
	cr_assert_not(f3->cleanup);
	/* n2 ends its steps: it gets its FINISH then (level-triggered) */
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, F.now);
	F.now += 5;
	fleet_step(&F);
	cr_assert_eq(F.out.n_actions, 1);
	cr_assert_eq(order_for(&F.out, "n2")->verb, ROLLOUT_FINISH);
	cr_assert_eq(order_for(&F.out, "n2")->role, ROLLOUT_ROLE_BATCH);
}

/* ---- pause, abort, retry, supersede, rollback by the operator ------------------------------------- */

Test(rollout_decide, operator_pause_stops_new_work_not_failures) {
	rolling(4, 0, 1);
	F.plan.paused = true;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_OPERATOR);
	cr_assert_eq(F.state.paused_from, ROLLOUT_ROLLING);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0, "nothing new starts");
	F.now += 100000;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED, "the progress deadline does not run while paused");
	F.plan.paused = false;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	/* paused with a node in flight: its failure still fails the plan */
	F.plan.paused = true;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	fleet_progress(&F, 1, ROLLOUT_STEP_FAILED, F.now);
	F.plan.auto_rollback = false;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
}

Test(rollout_decide, retry_starts_a_new_generation) {
	F.plan.auto_rollback = false;
	canary();
	fleet_progress(&F, 0, ROLLOUT_STEP_FAILED, NOW + 10);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 3);
	F.plan.retry = 1;
	F.now += 60;
	fleet_step(&F);
	cr_assert_eq(F.state.generation, 2);
	cr_assert_eq(F.state.retry_seen, 1);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING, "the nodes run generation 1's FINISH (its undos) first");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0);
	for (int i = 0; i < 3; i++)
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, F.now);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING);
	/* the generation-1 orders are stale: every eligible node prepares for gen 2 */
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 3);
	cr_assert_eq(order_for(&F.out, "n1")->generation, 2);
	fleet_step(&F);
	cr_assert_eq(F.state.generation, 2, "the retry is consumed once");
}

Test(rollout_decide, stale_orders_and_progress_are_ignored) {
	rolling(3, 0, 5);
	/* n2: an order of generation 0... of another plan, reporting done on v2 */
	fleet_order(&F, 1, "p0", 1, ROLLOUT_UPGRADE, ROLLOUT_ROLE_BATCH, 4, NOW - 10);
	fleet_progress(&F, 1, ROLLOUT_STEP_DONE, NOW - 5);
	snprintf(F.images[1], sizeof F.images[1], "v1");
	/* n3: progress of an older generation on a current order */
	fleet_order(&F, 2, "p1", 1, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0, NOW - 10);
	rollout_progress_done(&F.progress[2]);
	F.progress[2] = (rollout_progress) { .plan = strdup("p1"), .generation = 0, .verb = ROLLOUT_PREPARE,
		                             .state = ROLLOUT_STEP_DONE, .finished = NOW - 5, .updated = NOW - 5 };
	F.nodes[2].progress = &F.progress[2];
	fleet_step(&F);
	const rollout_order *o2 = order_for(&F.out, "n2");
	cr_assert_not_null(o2);
	cr_assert_eq(o2->verb, ROLLOUT_FINISH, "the old plan's order gets its FINISH");
	cr_assert_str_eq(o2->plan, "p0");
	cr_assert_null(order_for(&F.out, "n3"), "a prepare of an older generation does not count as prepared");
	cr_assert_str_eq(view_step(&F.out, "n3"), "preparing");
	cr_assert_eq(F.state.batch, 0);
}

Test(rollout_decide, a_new_plan_supersedes_a_running_one) {
	rolling(3, 0, 1);
	F.plan.id = "p2";
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_HISTORY, -1), 1);
	cr_assert_str_eq(json_string_value(json_object_get(F.out.history, "plan")), "p1");
	cr_assert_str_eq(json_string_value(json_object_get(F.out.history, "phase")), "cancelled");
	cr_assert_str_eq(json_string_value(json_object_get(F.out.history, "reason")), "superseded by p2");
	cr_assert_str_eq(F.state.plan, "p2");
	cr_assert_eq(F.state.generation, 1);
	cr_assert_eq(F.state.phase, ROLLOUT_PENDING);
	cr_assert_str_eq(F.state.previous.image, "v1");
	cr_assert(F.out.wake > 0);
	/* next: the old plan's orders are finished, no node gets p2's prepare before that */
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 3);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 0);
	for (int i = 0; i < 3; i++)
		fleet_progress(&F, i, ROLLOUT_STEP_DONE, F.now);
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_PREPARING);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 2, "n1 is on v2 already");
}

Test(rollout_decide, operator_rollback_after_success) {
	F.plan.auto_promote = true;
	F.plan.canary_bake = 120;
	F.plan.min_healthy_percent = 0;
	play(&F, NULL, 100);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED);
	F.plan.rollback = true;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_ROLLBACK), 1, "max_unavailable 1");
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert_str_eq(o->target.image, "v1");
	cr_assert_str_eq(o->from.image, "v2");
	int steps = play(&F, NULL, 100);
	cr_assert_lt(steps, 100);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK);
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(F.images[i], "v1");
}

/* ---- whole rollouts ----------------------------------------------------------------------------- */

Test(rollout_decide, good_image_rolls_through_to_succeeded) {
	fleet_done(&F);
	fleet_init(&F, 7);
	F.plan.auto_promote = true;
	F.plan.canary_bake = 120;
	F.plan.min_healthy_percent = 60;
	F.plan.max_unavailable = 2;
	F.nodes[4].held = true;
	int steps = play(&F, NULL, 200);
	cr_assert_lt(steps, 200);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED, "%s", F.state.reason);
	for (int i = 0; i < 7; i++) {
		cr_assert_str_eq(F.images[i], i == 4 ? "v1" : "v2", "n%d", i + 1);
		cr_assert_eq(F.upgrades[i], i == 4 ? 0 : 1, "n%d upgraded once", i + 1);
		cr_assert_eq(F.orders[i].verb, i == 4 ? 0 : ROLLOUT_FINISH);
	}
	cr_assert(F.orders[0].cleanup);
}

/* A host that boots after the plan started (the scaler launched it) starts
 * on the target: prepared, then upgraded at once, outside the budget, also
 * after success. (A node whose corrald merely restarted booted before:
 * observe takes boot_time, not started; test_rollout_observe.) */
Test(rollout_decide, a_host_launched_during_the_plan_gets_the_target) {
	fleet_done(&F);
	fleet_init(&F, 4);
	F.plan.auto_promote = true;
	F.nodes[3].registered = false;          /* n4 not launched yet */
	int steps = play(&F, NULL, 200);
	cr_assert_lt(steps, 200);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED, "%s", F.state.reason);
	cr_assert_str_eq(F.images[3], "v1");
	cr_assert_eq(F.upgrades[3], 0);

	F.nodes[3].registered = true;           /* it boots now */
	F.nodes[3].booted = F.now;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 1);
	cr_assert_str_eq(order_for(&F.out, "n4")->target.image, "v2");
	play_nodes(&F, NULL);
	fleet_step(&F);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	play_nodes(&F, NULL);
	F.now += 60;
	fleet_step(&F);
	cr_assert_str_eq(F.images[3], "v2", "n4 runs the target");
	cr_assert_eq(F.orders[3].verb, ROLLOUT_FINISH, "then finishes like the others");
	cr_assert(F.orders[3].cleanup);
	cr_assert_eq(F.upgrades[3], 1);
}

/* The metrics at success, while the nodes finish (run their undos and
 * cleanup): the upgraded nodes count as done, not as running (they did). */
Test(rollout_decide, finishing_nodes_count_as_done) {
	fleet_done(&F);
	fleet_init(&F, 4);
	F.plan.auto_promote = true;
	F.plan.min_healthy_percent = 0;
	F.nodes[3].held = true;
	int i;
	for (i = 0; i < 200 && F.state.phase != ROLLOUT_SUCCEEDED; i++) {
		fleet_step(&F);
		if (F.state.phase != ROLLOUT_SUCCEEDED)
			play_nodes(&F, NULL);
		F.now += 60;
	}
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 3);
	cr_assert_eq(F.out.n_done, 3, "issuing FINISH: done %u running %u", F.out.n_done, F.out.n_running);
	cr_assert_eq(F.out.n_running, 0);
	cr_assert_eq(F.out.n_skipped, 1);
	fleet_decide(&F);               /* FINISH stored, not answered yet */
	cr_assert_eq(F.out.n_done, 3, "finishing: done %u running %u", F.out.n_done, F.out.n_running);
	cr_assert_eq(F.out.n_running, 0);
}

Test(rollout_decide, bad_image_halts_at_the_canary_and_rolls_it_back) {
	fleet_done(&F);
	fleet_init(&F, 5);
	F.plan.auto_promote = true;
	play(&F, "n1", 200);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK, "%s", F.state.reason);
	cr_assert_eq(F.upgrades[0], 1);
	for (int i = 1; i < 5; i++)
		cr_assert_eq(F.upgrades[i], 0, "n%d never stopped", i + 1);
	cr_assert_str_eq(F.images[0], "v1");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(F.orders[i].verb, ROLLOUT_FINISH, "n%d finished", i + 1);
}

Test(rollout_decide, a_failed_batch_rolls_back_canary_and_batch) {
	fleet_done(&F);
	fleet_init(&F, 5);
	F.plan.auto_promote = true;
	F.plan.canary_bake = 60;
	F.plan.min_healthy_percent = 0;
	F.plan.max_unavailable = 2;
	play(&F, "n3", 200);
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK, "%s", F.state.reason);
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(F.images[i], "v1", "n%d back on v1", i + 1);
	cr_assert_eq(F.upgrades[3], 0);
	cr_assert_eq(F.upgrades[4], 0);
}

Test(rollout_decide, progress_deadline_fails_a_stuck_canary) {
	canary();
	F.plan.auto_rollback = false;
	F.plan.healthy_deadline = 100000;
	fleet_progress(&F, 0, ROLLOUT_STEP_RUNNING, NOW);
	F.now = NOW + F.plan.progress_deadline;
	F.nodes[0].progress = &F.progress[0];
	F.progress[0].updated = F.now;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY);
	F.now++;
	F.progress[0].updated = F.now;
	fleet_step(&F);
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED);
	cr_assert(strstr(F.state.reason, "no progress for 15m: waiting for canary n1: step 1 (health)"), "%s",
		  F.state.reason);
}
