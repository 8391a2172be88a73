/* test_rollout_config.c — the staged config rollout's rules in
 * rollout_decide() (src/rollout/staged.c), pure: no preparing, canaries
 * pinned to the candidate, done only on it, a failing canary rolling the
 * pins back with `current` never moved, the rebase asked for exactly in the
 * phases before promotion (exhaustive over phases), adopted with the
 * canaries re-pinned and the bake's end kept, a conflict failing the plan
 * naming the key, the promotion (auto, by operator, behind the gate) and
 * the unpinning after it, and the schedule `corralctl upgrade plan` shows. */
#include "rollout-fixture.h"

static fleet F;
/* `current` and a rebase's result, as the loop gives them */
static const char *cur, *rebased, *rebased_base, *rebase_error;

static void setup(void) {
	fleet_init(&F, 3);
	F.plan.target = (rollout_target) { .config = (char *) "c_2" };
	F.plan.config_base = (char *) "c_1";
	F.plan.auto_promote = true;
	F.plan.canary_bake = 600;
	F.plan.final_bake = 300;
	F.stable = (rollout_target) { .config = (char *) "c_0" };
	for (int i = 0; i < 3; i++)
		F.nodes[i].image = NULL;        /* no upgrade section: a config needs none */
	cur = "c_1";
	rebased = rebased_base = rebase_error = NULL;
}

static void teardown(void) {
	F.plan.config_base = NULL;
	fleet_done(&F);
}

TestSuite(rollout_config, .init = setup, .fini = teardown);

static void decide(void) {
	rollout_output_done(&F.out);
	rollout_input in = { .plan = &F.plan, .state = &F.state, .stable = &F.stable, .nodes = F.nodes,
		             .n_nodes = F.n, .gate = F.gate, .now = F.now, .current = cur,
		             .current_mod_revision = cur ? 40 : 0, .rebased = rebased, .rebased_base = rebased_base,
		             .rebase_error = rebase_error };
	cr_assert_eq(rollout_decide(&in, &F.out), 0);
}

static void step(void) {
	decide();
	fleet_apply(&F);
	F.gate = ROLLOUT_GATE_NONE;
	rebased = rebased_base = rebase_error = NULL;
}

/* Node i reports on its order: st, and the config it applied. */
static void report(int i, rollout_step_state st, const char *config) {
	fleet_progress(&F, i, st, F.now);
	free(F.progress[i].config);
	F.progress[i].config = config ? strdup(config) : NULL;
}

static void assert_no(rollout_action_kind kind) {
	cr_assert_eq(count_actions(&F.out, kind, -1), 0, "unexpected %d in \"%s\"", kind, F.out.line);
}

/* pending -> canary: the candidate pinned on n1. */
static void started(void) {
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "%s", F.out.line);
}

/* ... -> canary_bake: n1 applied c and was healthy for min_healthy_time. */
static void baking(const char *c) {
	started();
	report(0, ROLLOUT_STEP_DONE, c);
	F.now += F.plan.min_healthy_time;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE, "%s", F.out.line);
}

Test(rollout_config, start_pins_a_canary_without_preparing) {
	F.nodes[2].held = true;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "%s", F.out.line);
	cr_assert_str_eq(F.state.candidate, "c_2");
	cr_assert_str_eq(F.state.candidate_base, "c_1");
	cr_assert_eq(F.state.rebases, 0);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 0, "nothing to prepare");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_UPGRADE), 1);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert(o);
	cr_assert_eq(o->role, ROLLOUT_ROLE_CANARY);
	cr_assert_str_eq(o->target.config, "c_2");
	cr_assert_str_eq(o->from.config, "c_1");
	cr_assert_null(o->target.image);
	cr_assert_str_eq(view_step(&F.out, "n3"), "skipped: held");
	cr_assert_str_eq(view_step(&F.out, "n2"), "pending", "no image, still in scope");
	assert_no(ROLLOUT_PROMOTE);
}

/* No config_base: the candidate was made on `current`. */
Test(rollout_config, base_defaults_to_current) {
	F.plan.config_base = NULL;
	cur = "c_7";
	step();
	cr_assert_str_eq(F.state.candidate_base, "c_7");
	assert_no(ROLLOUT_REBASE);
}

/* Done only when the progress names the order's config, then healthy. */
Test(rollout_config, canary_done_only_on_the_candidate) {
	started();
	report(0, ROLLOUT_STEP_DONE, "c_1");
	F.now += 60;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "done on the old config is not done");
	report(0, ROLLOUT_STEP_DONE, "c_2");
	F.now += 10;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY, "healthy only after min_healthy_time");
	F.now += F.plan.min_healthy_time;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE);
	cr_assert_eq(F.state.bake_until, F.now + 600);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0, "the others wait for the promotion");
}

/* A check command rejecting the candidate: the plan fails at once, the
 * pin is rolled back, `current` is never promoted. */
Test(rollout_config, failing_canary_rolls_the_pins_back) {
	started();
	report(0, ROLLOUT_STEP_FAILED, NULL);
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK, "%s", F.out.line);
	cr_assert(strstr(F.state.reason, "canary n1 failed"), "%s", F.state.reason);
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert(o && o->verb == ROLLOUT_ROLLBACK);
	cr_assert_str_eq(o->target.config, "c_1");
	cr_assert_str_eq(o->from.config, "c_2");
	/* the node unpins and reports the current it applied */
	report(0, ROLLOUT_STEP_DONE, "c_1");
	F.now += 60;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK, "%s", F.out.line);
	assert_no(ROLLOUT_PROMOTE);
	assert_no(ROLLOUT_SET_STABLE);
	cr_assert_eq(F.state.promoted, 0);
	/* the rolled back plan unpins with FINISH */
	cr_assert_eq(F.orders[0].verb, ROLLOUT_FINISH);
}

/* `current` moved: asked for exactly in the phases before promotion. */
Test(rollout_config, rebase_asked_only_before_promotion) {
	static const struct {
		rollout_phase phase, from;
		bool want;
	} cases[] = {
		{ ROLLOUT_PENDING, 0, true },           /* the plan's base is stale at once */
		{ ROLLOUT_CANARY, 0, true },
		{ ROLLOUT_CANARY_BAKE, 0, true },
		{ ROLLOUT_PAUSED, ROLLOUT_CANARY_BAKE, true },
		{ ROLLOUT_PAUSED, ROLLOUT_CANARY, true },
		{ ROLLOUT_FINAL_BAKE, 0, false },       /* promoted */
		{ ROLLOUT_ROLLING_BACK, 0, false },
		{ ROLLOUT_PAUSED, ROLLOUT_ROLLING_BACK, false },
		{ ROLLOUT_SUCCEEDED, 0, false },
		{ ROLLOUT_FAILED, 0, false },
		{ ROLLOUT_ROLLED_BACK, 0, false },
		{ ROLLOUT_CANCELLED, 0, false },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		fleet_state(&F, cases[i].phase, 1);
		F.state.paused_from = cases[i].from;
		F.state.pause = cases[i].phase == ROLLOUT_PAUSED ? ROLLOUT_PAUSE_OPERATOR : ROLLOUT_PAUSE_NONE;
		F.plan.paused = cases[i].phase == ROLLOUT_PAUSED;
		F.state.bake_until = F.now + 100;
		F.state.candidate = strdup("c_2");
		F.state.candidate_base = strdup("c_1");
		F.state.promoted = cases[i].phase == ROLLOUT_FINAL_BAKE || cases[i].phase == ROLLOUT_SUCCEEDED ? F.now : 0;
		cur = "c_3";
		decide();
		bool asked = count_actions(&F.out, ROLLOUT_REBASE, -1) == 1;
		cr_assert_eq(asked, cases[i].want, "case %zu (%s): rebase %s", i, rollout_phase_to_string(cases[i].phase),
			     asked ? "asked" : "not asked");
		if (asked) {
			cr_assert_eq(F.out.n_actions, 1, "the request alone");
			cr_assert(cases[i].phase == ROLLOUT_PENDING || !F.out.state_changed,
				  "case %zu: nothing stored while the rebase runs", i);
			cr_assert(strstr(F.out.actions[0].line, "on c_3"), "%s", F.out.actions[0].line);
		}
		/* unmoved: never */
		cur = "c_1";
		decide();
		cr_assert_eq(count_actions(&F.out, ROLLOUT_REBASE, -1), 0, "case %zu: current unmoved", i);
	}
}

/* The rebase adopted: candidate and base move, the canary is re-pinned in
 * the same generation, the bake's end stands, promotion waits for the
 * canary on the new candidate. */
Test(rollout_config, rebase_repins_and_keeps_the_bake) {
	F.plan.healthy_deadline = 3600;         /* re-pinned n1 stays silent past the bake */
	baking("c_2");
	time_t bake_until = F.state.bake_until;
	int64_t gen = F.state.generation;

	F.now += 100;
	cur = "c_3";
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_REBASE, -1), 1);
	rebased = "leader_9";
	rebased_base = "c_3";
	step();
	cr_assert_str_eq(F.state.candidate, "leader_9");
	cr_assert_str_eq(F.state.candidate_base, "c_3");
	cr_assert_eq(F.state.rebases, 1);
	cr_assert_eq(F.state.generation, gen, "a rebase keeps the generation");
	cr_assert_eq(F.state.bake_until, bake_until, "a rebase does not restart the bake");
	const rollout_order *o = order_for(&F.out, "n1");
	cr_assert(o && o->verb == ROLLOUT_UPGRADE && o->role == ROLLOUT_ROLE_CANARY);
	cr_assert_str_eq(o->target.config, "leader_9");
	cr_assert_str_eq(o->from.config, "c_1", "the way back is what it ran");
	cr_assert_eq(o->generation, gen);

	/* bake over, canary not yet on the new candidate: no promotion */
	F.now = bake_until + 1;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANARY_BAKE);
	assert_no(ROLLOUT_PROMOTE);
	cr_assert(strstr(F.state.waiting, "canary n1"), "%s", F.state.waiting);
	report(0, ROLLOUT_STEP_DONE, "leader_9");
	F.now += F.plan.min_healthy_time;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_PROMOTE, -1), 1, "%s", F.out.line);
	cr_assert(strstr(F.out.actions[0].line, "c_3 -> leader_9"), "%s", F.out.actions[0].line);
}

/* A conflict fails the plan naming the key; the pin is rolled back. */
Test(rollout_config, rebase_conflict_fails_naming_the_key) {
	baking("c_2");
	cur = "c_3";
	rebase_error = "cms/port was changed by both the plan and c_3";
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLING_BACK, "%s", F.out.line);
	cr_assert_str_eq(F.state.reason, "rebase: cms/port was changed by both the plan and c_3");
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_ROLLBACK), 1);
	assert_no(ROLLOUT_REBASE);
	report(0, ROLLOUT_STEP_DONE, "c_3");
	F.now += 60;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_ROLLED_BACK);
	cr_assert(strstr(F.state.reason, "cms/port"), "the cause stays: %s", F.state.reason);
	assert_no(ROLLOUT_PROMOTE);
}

/* The promotion, then the unpinning once it is stored, then success with
 * the promoted candidate as stable; newcomers get no order. */
Test(rollout_config, promotion_unpins_then_succeeds) {
	baking("c_2");
	F.now = F.state.bake_until;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_FINAL_BAKE, "%s", F.out.line);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_PROMOTE, -1), 1);
	cr_assert_eq(F.state.promoted, F.now);
	cr_assert_eq(F.state.bake_until, F.now + 300);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, -1), 0, "no unpinning before the CAS is stored");

	cur = "c_2";
	F.nodes[1].booted = F.now + 1;          /* a newcomer */
	F.now += 10;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_FINISH), 1, "%s", F.out.line);
	cr_assert_null(order_for(&F.out, "n2"), "a newcomer follows current");
	assert_no(ROLLOUT_PROMOTE);
	report(0, ROLLOUT_STEP_DONE, "c_2");
	F.now = F.state.bake_until;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_SUCCEEDED, "%s", F.out.line);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_SET_STABLE, -1), 1);
	/* current moving after the promotion asks for nothing */
	cur = "c_5";
	F.now += 10;
	step();
	assert_no(ROLLOUT_REBASE);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_PREPARE), 0);
}

/* auto_promote off: paused; an operator's promotion promotes, and a
 * rebase while paused waits for the canary again. */
Test(rollout_config, operator_promotes_after_the_rebased_canary) {
	F.plan.auto_promote = false;
	baking("c_2");
	F.now = F.state.bake_until;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED);
	cr_assert_eq(F.state.pause, ROLLOUT_PAUSE_PROMOTION);
	cur = "c_3";
	step();
	rebased = "leader_9";
	rebased_base = "c_3";
	step();
	cr_assert_str_eq(F.state.candidate, "leader_9");
	F.plan.promote = 1;
	F.now += 5;
	step();
	assert_no(ROLLOUT_PROMOTE);
	cr_assert_eq(F.state.phase, ROLLOUT_PAUSED, "promotion waits for the canary on the rebase");
	cr_assert_eq(F.state.promote_seen, 0, "the promotion is not used up while waiting");
	report(0, ROLLOUT_STEP_DONE, "leader_9");
	F.now += F.plan.min_healthy_time;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_PROMOTE, -1), 1);
	cr_assert_eq(F.state.phase, ROLLOUT_FINAL_BAKE);
}

/* The gate at the canary bake's end: asked for, then its pass promotes;
 * after promotion a failing gate fails the plan without a rollback. */
Test(rollout_config, gate_then_promotion_then_no_rollback) {
	F.plan.gate_command = (char *) "/bin/check";
	baking("c_2");
	F.now = F.state.bake_until;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_RUN_GATE, -1), 1);
	assert_no(ROLLOUT_PROMOTE);
	F.gate = ROLLOUT_GATE_PASS;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_PROMOTE, -1), 1);
	cur = "c_2";
	F.now = F.state.bake_until;
	step();
	cr_assert_eq(count_actions(&F.out, ROLLOUT_RUN_GATE, -1), 1);
	F.gate = ROLLOUT_GATE_FAIL;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_FAILED, "%s", F.out.line);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_WRITE_ORDER, ROLLOUT_ROLLBACK), 0,
		     "promoted: going back is corralctl config rollback");
	F.plan.gate_command = NULL;
}

/* No canary: straight to the promotion point. Abort before promotion
 * unpins. */
Test(rollout_config, no_canary_promotes_and_abort_unpins) {
	F.plan.canary_nodes = 0;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_FINAL_BAKE, "%s", F.out.line);
	cr_assert_eq(count_actions(&F.out, ROLLOUT_PROMOTE, -1), 1);
	fleet_done(&F);
	setup();
	started();
	F.plan.abort = true;
	step();
	cr_assert_eq(F.state.phase, ROLLOUT_CANCELLED);
	cr_assert_eq(F.orders[0].verb, ROLLOUT_FINISH, "the pin goes");
	assert_no(ROLLOUT_PROMOTE);
	F.plan.abort = false;
}

/* What `corralctl upgrade plan` prints for a config plan. */
Test(rollout_config, schedule_names_canary_and_the_rest) {
	rollout_schedule s;
	rollout_input in = { .plan = &F.plan, .state = &F.state, .nodes = F.nodes, .n_nodes = F.n, .now = F.now,
		             .current = cur };
	F.nodes[2].held = true;
	cr_assert_eq(rollout_schedule_build(&in, &s), 0);
	cr_assert_eq(s.n_canary, 1);
	cr_assert_eq(s.n_batches, 1, "one group: every node at promotion");
	_cleanup_free_ char *text = rollout_schedule_format(&F.plan, &s);
	cr_assert(strstr(text, "config c_2"), "%s", text);
	cr_assert(strstr(text, "canary: n1"), "%s", text);
	cr_assert(strstr(text, "at promotion: n2"), "%s", text);
	cr_assert(strstr(text, "skipped: n3 (held)"), "%s", text);
	rollout_schedule_done(&s);
}
