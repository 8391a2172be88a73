/* test_rollout.c — the rollout engine's pure pieces other than the
 * decision: enum names, the JSON codecs (round trips, malformed input
 * naming the key), windows and time zones, cron, the batch budget and
 * node eligibility. The decision: test_rollout_decide.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "macro.h"
#include "rollout.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday */
#define NOW ((time_t) 1700000000)

static time_t utc(int y, int mo, int d, int h, int mi) {
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
	return timegm(&tm);
}

/* ---- names ----------------------------------------------------------------------------- */

Test(rollout_names, round_trip_and_unknown) {
	for (int p = 0; p < _ROLLOUT_PHASE_MAX; p++) {
		rollout_phase back;
		cr_assert(rollout_phase_to_string(p));
		cr_assert_eq(rollout_phase_from_string(rollout_phase_to_string(p), &back), 0);
		cr_assert_eq(back, p);
	}
	for (int v = 0; v < _ROLLOUT_VERB_MAX; v++) {
		rollout_verb back;
		cr_assert_eq(rollout_verb_from_string(rollout_verb_to_string(v), &back), 0);
		cr_assert_eq(back, v);
	}
	rollout_phase ph;
	rollout_gate g;
	cr_assert_str_eq(rollout_phase_to_string(ROLLOUT_CANARY_BAKE), "canary_bake");
	cr_assert_str_eq(rollout_verb_to_string(ROLLOUT_ROLLBACK), "rollback");
	cr_assert_str_eq(rollout_role_to_string(ROLLOUT_ROLE_CANARY), "canary");
	cr_assert_str_eq(rollout_step_state_to_string(ROLLOUT_STEP_RUNNING), "running");
	cr_assert_str_eq(rollout_gate_to_string(ROLLOUT_GATE_PASS), "pass");
	cr_assert_str_eq(rollout_pause_to_string(ROLLOUT_PAUSE_PROMOTION), "promotion");
	cr_assert_null(rollout_phase_to_string(_ROLLOUT_PHASE_MAX));
	cr_assert_eq(rollout_phase_from_string("baking", &ph), -EINVAL);
	cr_assert_eq(rollout_gate_from_string(NULL, &g), -EINVAL);
	cr_assert(rollout_phase_terminal(ROLLOUT_ROLLED_BACK));
	cr_assert(rollout_phase_terminal(ROLLOUT_CANCELLED));
	cr_assert_not(rollout_phase_terminal(ROLLOUT_ROLLING_BACK));
	cr_assert_not(rollout_phase_terminal(ROLLOUT_PAUSED));
}

/* ---- plan ---------------------------------------------------------------------------------- */

static int plan_from(const char *text, rollout_plan *p, rollout_error *err) {
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	cr_assert(j, "fixture not JSON: %s", je.text);
	int r = rollout_plan_from_json(j, p, err);
	json_decref(j);
	return r;
}

Test(rollout_plan, defaults_when_minimal) {
	rollout_plan p;
	rollout_error err = {};
	cr_assert_eq(plan_from("{\"id\": \"p1\", \"target\": {\"image\": \"v2\"}}", &p, &err), 0, "%s", err.message);
	cr_assert_str_eq(p.id, "p1");
	cr_assert_str_eq(p.target.image, "v2");
	cr_assert_null(p.pools);
	cr_assert_eq(p.canary_nodes, 1);
	cr_assert_eq(p.canary_bake, 600);
	cr_assert_not(p.auto_promote);
	cr_assert_eq(p.max_unavailable, 1);
	cr_assert_eq(p.min_healthy_percent, 90);
	cr_assert_eq(p.min_healthy_time, 30);
	cr_assert_eq(p.healthy_deadline, 300);
	cr_assert_eq(p.progress_deadline, 900);
	cr_assert_eq(p.gate_timeout, 60);
	cr_assert_eq(p.final_bake, -1);
	cr_assert(p.auto_rollback);
	cr_assert_not(p.prepare_blocks);
	cr_assert_null(p.schedule);
	cr_assert_eq(p.n_windows, 0);
	cr_assert(rollout_plan_covers(&p, "anything"));
	cr_assert(rollout_plan_covers(&p, NULL));
	rollout_plan_done(&p);
}

static const char *full_plan =
	"{\"id\": \"p42\", \"pools\": [\"web\", \"api\"], \"target\": {\"image\": \"cms@sha256:1\","
	" \"launch_template_version\": 7}, \"strategy\": \"auto\","
	" \"canary\": {\"nodes\": 2, \"bake\": \"10m\", \"auto_promote\": true},"
	" \"batch\": {\"max_unavailable\": 3, \"min_healthy_percent\": 75, \"max_surge\": 2,"
	"            \"keep_old_until_bake\": true},"
	" \"health\": {\"min_healthy_time\": \"30s\", \"healthy_deadline\": \"1h\", \"progress_deadline\": 1200,"
	"            \"gate_command\": \"/bin/check\", \"gate_timeout\": \"500ms\"},"
	" \"windows\": [{\"days\": \"Mon-Fri\", \"start\": \"02:00\", \"end\": \"05:00\", \"tz\": \"UTC\"},"
	"               \"Sat,Sun 22:00-02:00\"],"
	" \"schedule\": {\"cron\": \"0 2 * * 2\", \"tz\": \"+02:00\"}, \"final_bake\": \"15m\","
	" \"auto_rollback\": false, \"prepare_blocks\": true, \"created\": \"2023-11-14T00:00:00Z\","
	" \"control\": {\"paused\": true, \"promote\": 1, \"abort\": false, \"rollback\": true, \"retry\": 2}}";

static void check_full(const rollout_plan *p) {
	cr_assert_str_eq(p->id, "p42");
	cr_assert_eq(p->n_pools, 2);
	cr_assert_str_eq(p->pools[1], "api");
	cr_assert(rollout_plan_covers(p, "api"));
	cr_assert_not(rollout_plan_covers(p, "db"));
	cr_assert_not(rollout_plan_covers(p, NULL));
	cr_assert_eq(p->canary_nodes, 2);
	cr_assert_eq(p->canary_bake, 600);
	cr_assert(p->auto_promote);
	cr_assert_eq(p->max_unavailable, 3);
	cr_assert_eq(p->min_healthy_percent, 75);
	cr_assert_eq(p->max_surge, 2);
	cr_assert(p->keep_old_until_bake);
	cr_assert_null(p->target.config);
	cr_assert_str_eq(p->target.launch_template_version, "7", "a JSON number is taken as the version");
	cr_assert_null(p->target.ami);
	cr_assert_null(p->config_base);
	cr_assert_not(rollout_plan_staged(p));
	cr_assert_eq(p->strategy, ROLLOUT_STRATEGY_AUTO);
	cr_assert(rollout_target_replaces(&p->target));
	cr_assert_eq(p->min_healthy_time, 30);
	cr_assert_eq(p->healthy_deadline, 3600);
	cr_assert_eq(p->progress_deadline, 1200);
	cr_assert_str_eq(p->gate_command, "/bin/check");
	cr_assert_eq(p->gate_timeout, 1, "500ms rounds up to a whole second");
	cr_assert_eq(p->n_windows, 2);
	cr_assert_eq(p->windows[0].days, 0x3e);
	cr_assert_eq(p->windows[1].start, 22 * 60);
	cr_assert_eq(p->windows[1].end, 2 * 60);
	cr_assert_str_eq(p->schedule->text, "0 2 * * 2");
	cr_assert_str_eq(p->schedule->tz, "+02:00");
	cr_assert_eq(p->final_bake, 900);
	cr_assert_not(p->auto_rollback);
	cr_assert(p->prepare_blocks);
	cr_assert_eq(p->created, utc(2023, 11, 14, 0, 0));
	cr_assert(p->paused);
	cr_assert_eq(p->promote, 1);
	cr_assert(p->rollback);
	cr_assert_eq(p->retry, 2);
}

Test(rollout_plan, every_key_round_trips) {
	rollout_plan p, q;
	rollout_error err = {};
	cr_assert_eq(plan_from(full_plan, &p, &err), 0, "%s", err.message);
	check_full(&p);
	json_t *j = rollout_plan_to_json(&p);
	cr_assert(j);
	cr_assert_eq(rollout_plan_from_json(j, &q, &err), 0, "%s", err.message);
	check_full(&q);
	json_t *j2 = rollout_plan_to_json(&q);
	cr_assert(json_equal(j, j2));
	json_decref(j);
	json_decref(j2);
	rollout_plan_done(&p);
	rollout_plan_done(&q);
}

/* A staged config plan: the config and its base round-trip. */
Test(rollout_plan, config_plan_round_trips) {
	rollout_plan p, q;
	rollout_error err = {};
	cr_assert_eq(plan_from("{\"id\": \"p7\", \"target\": {\"config\": \"ctl_9\"}, \"config_base\": \"ctl_8\"}", &p,
			       &err), 0, "%s", err.message);
	cr_assert_str_eq(p.target.config, "ctl_9");
	cr_assert_str_eq(p.config_base, "ctl_8");
	cr_assert(rollout_plan_staged(&p));
	json_auto_t *j = rollout_plan_to_json(&p);
	cr_assert_eq(rollout_plan_from_json(j, &q, &err), 0, "%s", err.message);
	cr_assert_str_eq(q.target.config, "ctl_9");
	cr_assert_str_eq(q.config_base, "ctl_8");
	rollout_plan_done(&p);
	rollout_plan_done(&q);
}

/* Each malformed plan is refused with the key named. */
Test(rollout_plan, malformed_names_the_key) {
	static const struct {
		const char *doc, *key;
	} cases[] = {
		{ "{\"target\": {\"image\": \"v\"}}", "id" },
		{ "{\"id\": \"a/b\", \"target\": {\"image\": \"v\"}}", "id" },
		{ "{\"id\": \"p\"}", "target" },
		{ "{\"id\": \"p\", \"target\": {}}", "target" },
		{ "{\"id\": \"p\", \"target\": {\"launch_template_version\": \"$Latest\"}}",
		  "target.launch_template_version" },
		{ "{\"id\": \"p\", \"target\": {\"launch_template_version\": 0}}", "target.launch_template_version" },
		{ "{\"id\": \"p\", \"target\": {\"config\": \"a/b\"}}", "target.config" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"config_base\": \"c_1\"}", "config_base" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\", \"config\": \"c_1\"}}", "target" },
		{ "{\"id\": \"p\", \"target\": {\"ami\": \"ami-1\", \"config\": \"c_1\"}}", "target" },
		{ "{\"id\": \"p\", \"target\": {\"ami\": \"ami-1\"}, \"strategy\": \"in_place\"}", "strategy" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\", \"ami\": \"ami-1\"}, \"strategy\": \"replace\"}",
		  "strategy" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"strategy\": \"sideways\"}", "strategy" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\", \"ami\": \"x\"}}", "target.ami" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"colour\": 1}", "colour" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"batch\": {\"max_unavailabel\": 2}}",
		  "batch.max_unavailabel" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"batch\": {\"max_unavailable\": 0}}",
		  "batch.max_unavailable" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"batch\": {\"min_healthy_percent\": 101}}",
		  "batch.min_healthy_percent" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"batch\": 3}", "batch" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"canary\": {\"bake\": \"10 parsecs\"}}", "canary.bake" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"canary\": {\"nodes\": \"one\"}}", "canary.nodes" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"health\": {\"healthy_deadline\": -5}}",
		  "health.healthy_deadline" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"health\": {\"gate_command\": \"\"}}",
		  "health.gate_command" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"windows\": [\"Mon-Fry 02:00-05:00\"]}", "windows[0]" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"windows\": [{\"start\": \"25:00\", \"end\": \"01:00\"}]}",
		  "windows[0]" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"schedule\": \"0 2 * *\"}", "schedule" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"schedule\": {\"cron\": \"0 2 * * 2\", \"tz\": \"Mars/Olympus\"}}",
		  "schedule" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"created\": \"yesterday\"}", "created" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"control\": {\"promote\": true}}", "control.promote" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"control\": {\"pause\": true}}", "control.pause" },
		{ "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"pools\": [\"\"]}", "pools" },
		{ "[1]", "" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		rollout_plan p;
		rollout_error err = {};
		cr_assert_eq(plan_from(cases[i].doc, &p, &err), -EINVAL, "case %zu accepted", i);
		cr_assert_str_eq(err.key, cases[i].key, "case %zu: key \"%s\" (%s)", i, err.key, err.message);
		if (*cases[i].key)
			cr_assert(strncmp(err.message, cases[i].key, strlen(cases[i].key)) == 0, "case %zu: %s", i,
				  err.message);
	}
}

Test(rollout_plan, durations) {
	static const struct {
		const char *v;
		int64_t secs;
	} cases[] = { { "\"10m\"", 600 }, { "\"30s\"", 30 }, { "\"1h\"", 3600 }, { "\"500ms\"", 1 },
		      { "45", 45 },       { "\"90\"", 90 }, { "0", 0 } };
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char doc[200];
		rollout_plan p;
		rollout_error err = {};
		snprintf(doc, sizeof doc, "{\"id\": \"p\", \"target\": {\"image\": \"v\"}, \"canary\": {\"bake\": %s}}",
			 cases[i].v);
		cr_assert_eq(plan_from(doc, &p, &err), 0, "%s: %s", cases[i].v, err.message);
		cr_assert_eq(p.canary_bake, cases[i].secs, "%s", cases[i].v);
		rollout_plan_done(&p);
	}
}

/* ---- records ------------------------------------------------------------------------------ */

Test(rollout_records, state_round_trip) {
	rollout_state s = { .plan = "p1", .generation = 3, .phase = ROLLOUT_PAUSED, .paused_from = ROLLOUT_CANARY_BAKE,
		            .pause = ROLLOUT_PAUSE_GATE, .batch = 4, .phase_since = NOW - 5, .started = NOW - 100,
		            .bake_until = NOW + 60, .progress_at = NOW - 7, .finished = 0, .reason = "gate inconclusive",
		            .waiting = "promotion", .previous = { .image = "v1" }, .retry_seen = 2,
		            .gate = ROLLOUT_GATE_INCONCLUSIVE, .gate_at = NOW - 5 }, b;
	rollout_error err = {};
	json_t *j = rollout_state_to_json(&s);
	cr_assert(j);
	cr_assert_eq(rollout_state_from_json(j, &b, &err), 0, "%s", err.message);
	cr_assert_str_eq(b.plan, "p1");
	cr_assert_eq(b.generation, 3);
	cr_assert_eq(b.phase, ROLLOUT_PAUSED);
	cr_assert_eq(b.paused_from, ROLLOUT_CANARY_BAKE);
	cr_assert_eq(b.pause, ROLLOUT_PAUSE_GATE);
	cr_assert_eq(b.batch, 4);
	cr_assert_eq(b.bake_until, NOW + 60);
	cr_assert_eq(b.progress_at, NOW - 7);
	cr_assert_str_eq(b.reason, "gate inconclusive");
	cr_assert_str_eq(b.waiting, "promotion");
	cr_assert_str_eq(b.previous.image, "v1");
	cr_assert_eq(b.retry_seen, 2);
	cr_assert_eq(b.gate, ROLLOUT_GATE_INCONCLUSIVE);
	cr_assert_eq(b.gate_at, NOW - 5);
	json_t *j2 = rollout_state_to_json(&b);
	cr_assert(json_equal(j, j2));
	/* the contract's keys */
	cr_assert_str_eq(json_string_value(json_object_get(j, "phase")), "paused");
	cr_assert(json_object_get(j, "batch") && json_object_get(j, "reason") && json_object_get(j, "generation"));
	json_decref(j);
	json_decref(j2);
	rollout_state_done(&b);
}

Test(rollout_records, order_round_trip_and_copy) {
	rollout_order o = { .plan = "p1", .generation = 2, .verb = ROLLOUT_UPGRADE, .role = ROLLOUT_ROLE_BATCH,
		            .batch = 3, .target = { "v2" }, .from = { "v1" }, .cleanup = false, .issued = NOW }, b, c;
	rollout_error err = {};
	json_t *j = rollout_order_to_json(&o);
	cr_assert_eq(rollout_order_from_json(j, &b, &err), 0, "%s", err.message);
	cr_assert_str_eq(b.plan, "p1");
	cr_assert_eq(b.verb, ROLLOUT_UPGRADE);
	cr_assert_eq(b.role, ROLLOUT_ROLE_BATCH);
	cr_assert_eq(b.batch, 3);
	cr_assert_str_eq(b.target.image, "v2");
	cr_assert_str_eq(b.from.image, "v1");
	cr_assert_eq(b.issued, NOW);
	cr_assert_eq(rollout_order_copy(&b, &c), 0);
	cr_assert_neq(c.plan, b.plan);
	cr_assert_str_eq(c.target.image, "v2");
	rollout_order_done(&b);
	cr_assert_str_eq(c.from.image, "v1", "the copy is deep");
	rollout_order_done(&c);
	json_decref(j);
}

Test(rollout_records, progress_round_trip) {
	int once[] = { 0, 9 }, undo[] = { 1 };
	rollout_progress p = { .plan = "p1", .generation = 1, .verb = ROLLOUT_UPGRADE, .state = ROLLOUT_STEP_FAILED,
		               .step = 4, .n_steps = 10, .step_name = "health", .boot_id = "b1", .started = NOW - 50,
		               .finished = NOW - 2, .updated = NOW - 2, .error = "exit 1", .image = "v1",
		               .once_done = once, .n_once_done = 2, .undo_pending = undo, .n_undo_pending = 1 }, b;
	rollout_error err = {};
	json_t *j = rollout_progress_to_json(&p);
	cr_assert_eq(rollout_progress_from_json(j, &b, &err), 0, "%s", err.message);
	cr_assert_eq(b.state, ROLLOUT_STEP_FAILED);
	cr_assert_eq(b.step, 4);
	cr_assert_eq(b.n_steps, 10);
	cr_assert_str_eq(b.step_name, "health");
	cr_assert_str_eq(b.error, "exit 1");
	cr_assert_eq(b.n_once_done, 2);
	cr_assert_eq(b.once_done[1], 9);
	cr_assert_eq(b.n_undo_pending, 1);
	cr_assert_eq(b.undo_pending[0], 1);
	json_t *j2 = rollout_progress_to_json(&b);
	cr_assert(json_equal(j, j2));
	json_decref(j);
	json_decref(j2);
	rollout_progress_done(&b);
}

Test(rollout_records, malformed_records_name_the_key) {
	static const struct {
		int kind; /* 0 state, 1 order, 2 progress, 3 target */
		const char *doc, *key;
	} cases[] = {
		{ 0, "{\"generation\": 1, \"phase\": \"pending\"}", "plan" },
		{ 0, "{\"plan\": \"p\", \"generation\": 1, \"phase\": \"baking\"}", "phase" },
		{ 0, "{\"plan\": \"p\", \"phase\": \"pending\"}", "generation" },
		{ 0, "{\"plan\": \"p\", \"generation\": 1, \"phase\": \"pending\", \"bake_until\": \"soon\"}", "bake_until" },
		{ 0, "{\"plan\": \"p\", \"generation\": 1, \"phase\": \"pending\", \"previous\": {\"image\": 3}}", "previous" },
		{ 1, "{\"plan\": \"p\", \"generation\": 1}", "verb" },
		{ 1, "{\"plan\": \"p\", \"generation\": 1, \"verb\": \"upgrade\", \"role\": \"leader\"}", "role" },
		{ 1, "{\"plan\": \"p\", \"generation\": 0, \"verb\": \"upgrade\"}", "generation" },
		{ 1, "{\"plan\": \"p\", \"generation\": 1, \"verb\": \"upgrade\", \"cleanup\": \"yes\"}", "cleanup" },
		{ 2, "{\"plan\": \"p\", \"generation\": 1, \"verb\": \"upgrade\", \"state\": \"sleeping\"}", "state" },
		{ 2, "{\"plan\": \"p\", \"generation\": 1, \"verb\": \"upgrade\", \"state\": \"done\", \"step\": -1}", "step" },
		{ 2, "{\"plan\": \"p\", \"generation\": 1, \"verb\": \"upgrade\", \"state\": \"done\", \"once_done\": [\"a\"]}",
		  "once_done" },
		{ 3, "[]", "target" },
		{ 3, "{\"image\": \"\"}", "target.image" },
		{ 2, "\"text\"", "" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		rollout_error err = {};
		json_t *j = json_loads(cases[i].doc, JSON_DECODE_ANY, NULL);
		cr_assert(j, "case %zu not JSON", i);
		int r;
		if (cases[i].kind == 0) {
			rollout_state s;
			r = rollout_state_from_json(j, &s, &err);
		} else if (cases[i].kind == 1) {
			rollout_order o;
			r = rollout_order_from_json(j, &o, &err);
		} else if (cases[i].kind == 2) {
			rollout_progress p;
			r = rollout_progress_from_json(j, &p, &err);
		} else {
			rollout_target t;
			r = rollout_target_from_json(j, &t, &err);
		}
		json_decref(j);
		cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
		cr_assert_str_eq(err.key, cases[i].key, "case %zu: key \"%s\" (%s)", i, err.key, err.message);
	}
}

Test(rollout_records, target_matches) {
	rollout_target t = { "v2" }, any = {};
	cr_assert(rollout_target_matches(&t, "v2"));
	cr_assert_not(rollout_target_matches(&t, "v1"));
	cr_assert_not(rollout_target_matches(&t, NULL));
	cr_assert(rollout_target_matches(&any, "v1"));
	cr_assert(rollout_target_matches(NULL, NULL));
}

/* ---- windows ------------------------------------------------------------------------------ */

static rollout_window win(const char *text, const char *tz) {
	rollout_window w;
	rollout_error err = {};
	cr_assert_eq(rollout_window_parse(text, tz, &w, &err), 0, "%s: %s", text, err.message);
	return w;
}

Test(rollout_window, parse_forms) {
	rollout_window w = win("Mon-Fri 02:00-05:00", NULL);
	cr_assert_eq(w.days, 0x3e);
	cr_assert_eq(w.start, 120);
	cr_assert_eq(w.end, 300);
	cr_assert_str_eq(w.tz, "UTC");
	json_t *j = rollout_window_to_json(&w);
	cr_assert_str_eq(json_string_value(json_object_get(j, "days")), "Mon-Fri");
	cr_assert_str_eq(json_string_value(json_object_get(j, "start")), "02:00");
	rollout_window b;
	rollout_error err = {};
	cr_assert_eq(rollout_window_from_json(j, &b, &err), 0, "%s", err.message);
	cr_assert_eq(b.days, w.days);
	cr_assert_eq(b.end, w.end);
	json_decref(j);
	rollout_window_done(&b);
	rollout_window_done(&w);

	w = win("Sat,Sun 22:00-02:00", "+02:00");
	cr_assert_eq(w.days, 0x41);
	cr_assert_str_eq(w.tz, "+02:00");
	rollout_window_done(&w);
	w = win("Fri-Mon 00:00-00:00", NULL);
	cr_assert_eq(w.days, 0x63, "ranges wrap past Saturday");
	rollout_window_done(&w);
	w = win("daily 01:00-02:00", NULL);
	cr_assert_eq(w.days, 0x7f);
	rollout_window_done(&w);
	w = win("03:00-04:00", NULL);
	cr_assert_eq(w.days, 0x7f);
	rollout_window_done(&w);

	static const char *bad[] = { "Mon-Fri", "Mon-Fri 02:00", "Mon-Fri 2-5", "Fun 02:00-05:00",
		                     "Mon-Fri 02:00-05:60", "Mon, 02:00-03:00", "Mon 02:00-03:00 extra", "" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		cr_assert_eq(rollout_window_parse(bad[i], NULL, &w, &err), -EINVAL, "accepted \"%s\"", bad[i]);
	cr_assert_eq(rollout_window_parse("Mon 02:00-03:00", "Nowhere/Atlantis", &w, &err), -EINVAL);
	cr_assert_str_eq(err.key, "tz");
	cr_assert_eq(rollout_window_parse("Mon 02:00-03:00", "../../etc/passwd", &w, &err), -EINVAL);
}

Test(rollout_window, inside_outside_days_and_midnight) {
	rollout_window w[2] = { win("Mon-Fri 02:00-05:00", NULL), win("Fri 22:00-02:00", NULL) };
	/* 2023-11-13 is a Monday */
	cr_assert(rollout_in_windows(w, 1, utc(2023, 11, 13, 2, 0)));
	cr_assert(rollout_in_windows(w, 1, utc(2023, 11, 13, 4, 59)));
	cr_assert_not(rollout_in_windows(w, 1, utc(2023, 11, 13, 5, 0)), "the end is exclusive");
	cr_assert_not(rollout_in_windows(w, 1, utc(2023, 11, 13, 1, 59)));
	cr_assert_not(rollout_in_windows(w, 1, utc(2023, 11, 18, 3, 0)), "Saturday");
	/* across midnight: belongs to the Friday it starts on */
	cr_assert(rollout_in_windows(&w[1], 1, utc(2023, 11, 17, 23, 0)));
	cr_assert(rollout_in_windows(&w[1], 1, utc(2023, 11, 18, 1, 30)), "Saturday 01:30 is Friday's window");
	cr_assert_not(rollout_in_windows(&w[1], 1, utc(2023, 11, 18, 23, 0)));
	cr_assert_not(rollout_in_windows(&w[1], 1, utc(2023, 11, 17, 1, 0)), "Thursday's night is not set");
	cr_assert(rollout_in_windows(w, 2, utc(2023, 11, 18, 1, 0)), "any of the windows");
	cr_assert(rollout_in_windows(NULL, 0, NOW), "no windows: always");
	rollout_window_done(&w[0]);
	rollout_window_done(&w[1]);
}

Test(rollout_window, time_zones) {
	rollout_window plus2 = win("Mon-Fri 02:00-05:00", "+02:00"), minus = win("Mon 23:00-23:30", "-0530");
	/* 02:00 at +02:00 is 00:00 UTC */
	cr_assert(rollout_in_windows(&plus2, 1, utc(2023, 11, 13, 0, 30)));
	cr_assert_not(rollout_in_windows(&plus2, 1, utc(2023, 11, 13, 3, 30)));
	/* Monday 23:00 at -05:30 is Tuesday 04:30 UTC */
	cr_assert(rollout_in_windows(&minus, 1, utc(2023, 11, 14, 4, 45)));
	cr_assert_not(rollout_in_windows(&minus, 1, utc(2023, 11, 13, 23, 10)));
	rollout_window_done(&plus2);
	rollout_window_done(&minus);

	/* an IANA zone with DST: Rome is +01:00 in November, +02:00 in July */
	rollout_window rome = win("* 02:00-03:00", "Europe/Rome");
	cr_assert(rollout_in_windows(&rome, 1, utc(2023, 11, 13, 1, 30)));
	cr_assert_not(rollout_in_windows(&rome, 1, utc(2023, 11, 13, 0, 30)));
	cr_assert(rollout_in_windows(&rome, 1, utc(2023, 7, 13, 0, 30)));
	cr_assert_eq(rollout_next_window(&rome, 1, utc(2023, 11, 13, 12, 0)), utc(2023, 11, 14, 1, 0));
	cr_assert_null(getenv("TZ"), "TZ put back");
	rollout_window_done(&rome);
}

Test(rollout_window, next_window) {
	rollout_window w = win("Mon-Fri 02:00-05:00", NULL), sat = win("Sat 22:00-02:00", "+02:00");
	cr_assert_eq(rollout_next_window(&w, 1, utc(2023, 11, 13, 3, 0)), utc(2023, 11, 13, 3, 0), "inside: now");
	cr_assert_eq(rollout_next_window(&w, 1, utc(2023, 11, 13, 6, 0)), utc(2023, 11, 14, 2, 0));
	cr_assert_eq(rollout_next_window(&w, 1, utc(2023, 11, 17, 6, 0)), utc(2023, 11, 20, 2, 0), "Friday -> Monday");
	cr_assert_eq(rollout_next_window(&w, 1, utc(2023, 11, 13, 1, 0)), utc(2023, 11, 13, 2, 0));
	/* Saturday 22:00 at +02:00 is Saturday 20:00 UTC */
	cr_assert_eq(rollout_next_window(&sat, 1, utc(2023, 11, 13, 0, 0)), utc(2023, 11, 18, 20, 0));
	rollout_window both[2] = { w, sat };
	cr_assert_eq(rollout_next_window(both, 2, utc(2023, 11, 17, 6, 0)), utc(2023, 11, 18, 20, 0), "the earliest");
	rollout_window none = w;
	none.days = 0;
	cr_assert_eq(rollout_next_window(&none, 1, NOW), 0, "no day set: never");
	rollout_window_done(&w);
	rollout_window_done(&sat);
}

/* ---- cron -------------------------------------------------------------------------------------- */

static time_t next(const char *expr, const char *tz, time_t after) {
	rollout_cron c;
	rollout_error err = {};
	cr_assert_eq(rollout_cron_parse(expr, tz, &c, &err), 0, "%s: %s", expr, err.message);
	time_t t = rollout_cron_next(&c, after);
	rollout_cron_done(&c);
	return t;
}

Test(rollout_cron, next_fire) {
	/* NOW: Tuesday 2023-11-14 22:13:20 UTC */
	cr_assert_eq(next("0 2 * * 2", NULL, NOW), utc(2023, 11, 21, 2, 0), "next Tuesday 02:00");
	cr_assert_eq(next("0 2 * * 2", NULL, utc(2023, 11, 13, 12, 0)), utc(2023, 11, 14, 2, 0));
	cr_assert_eq(next("0 2 * * Tue", NULL, utc(2023, 11, 14, 2, 0)), utc(2023, 11, 21, 2, 0), "strictly after");
	cr_assert_eq(next("0 2 * * 2", NULL, utc(2023, 11, 14, 2, 0) - 1), utc(2023, 11, 14, 2, 0));
	cr_assert_eq(next("*/15 * * * *", NULL, NOW), utc(2023, 11, 14, 22, 15));
	cr_assert_eq(next("10-50/20 * * * *", NULL, utc(2023, 11, 14, 22, 31)), utc(2023, 11, 14, 22, 50));
	cr_assert_eq(next("0 0 1,15 * *", NULL, NOW), utc(2023, 11, 15, 0, 0));
	cr_assert_eq(next("0 0 1,15 * *", NULL, utc(2023, 11, 15, 0, 0)), utc(2023, 12, 1, 0, 0));
	cr_assert_eq(next("30 4 * * Mon-Fri", NULL, utc(2023, 11, 17, 5, 0)), utc(2023, 11, 20, 4, 30));
	cr_assert_eq(next("0 12 * Feb *", NULL, NOW), utc(2024, 2, 1, 12, 0));
	cr_assert_eq(next("0 0 29 2 *", NULL, NOW), utc(2024, 2, 29, 0, 0), "a leap day");
	/* both day fields restricted: either matches (the 13th, or a Friday) */
	cr_assert_eq(next("0 0 13 * 5", NULL, utc(2023, 11, 14, 0, 0)), utc(2023, 11, 17, 0, 0));
	cr_assert_eq(next("0 0 13 * 5", NULL, utc(2023, 12, 9, 0, 0)), utc(2023, 12, 13, 0, 0));
	cr_assert_eq(next("0 0 * * 7", NULL, NOW), utc(2023, 11, 19, 0, 0), "7 is Sunday");
	cr_assert_eq(next("0 2 * * 2", "+02:00", utc(2023, 11, 13, 12, 0)), utc(2023, 11, 14, 0, 0));
	cr_assert_eq(next("0 2 * * *", "Europe/Rome", utc(2023, 7, 1, 12, 0)), utc(2023, 7, 2, 0, 0));
	cr_assert_eq(next("0 0 31 2 *", NULL, NOW), 0, "never");
}

Test(rollout_cron, malformed) {
	static const char *bad[] = { "0 2 * *", "0 2 * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
		                     "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *",
		                     "1, * * * *", "" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		rollout_cron c;
		rollout_error err = {};
		cr_assert_eq(rollout_cron_parse(bad[i], NULL, &c, &err), -EINVAL, "accepted \"%s\"", bad[i]);
		cr_assert(err.message[0]);
	}
}

/* ---- budget and eligibility ---------------------------------------------------------------- */

Test(rollout_budget, table) {
	static const struct {
		int n, healthy, in_flight, max_unavailable, pct, want;
		const char *why;
	} cases[] = {
		{ 3, 3, 0, 1, 90, 1, "3-node pool at 90%: one at a time" },
		{ 3, 3, 0, 5, 90, 1, "floor(2.7)=2 must stay, but all healthy: 1" },
		{ 3, 2, 1, 5, 90, 0, "one in flight: 2 healthy, 2 must stay" },
		{ 10, 10, 0, 3, 90, 1, "10 at 90%: 9 must stay" },
		{ 10, 10, 0, 3, 50, 3, "max_unavailable caps" },
		{ 10, 10, 2, 3, 50, 1, "in flight count against max_unavailable" },
		{ 10, 8, 0, 3, 50, 3, "two already unhealthy: 8-5=3" },
		{ 10, 6, 0, 3, 50, 1, "four already unhealthy: 6-5=1" },
		{ 10, 5, 0, 3, 50, 0, "unhealthy nodes use the budget up" },
		{ 10, 4, 0, 3, 50, 0, "never negative" },
		{ 10, 9, 0, 3, 90, 0, "one unhealthy at 90%: blocked (the floor is not waived)" },
		{ 1, 1, 0, 1, 90, 1, "1-node pool: the one node" },
		{ 1, 1, 0, 1, 100, 1, "100% but all healthy: 1" },
		{ 1, 0, 0, 1, 0, 0, "1-node pool, unhealthy: nothing healthy to take" },
		{ 4, 4, 0, 10, 0, 4, "0%: max_unavailable only" },
		{ 4, 4, 0, 2, 100, 1, "100%: one" },
		{ 4, 3, 1, 2, 100, 0, "100% with one in flight: 0" },
		{ 0, 0, 0, 1, 90, 0, "empty pool" },
		{ 5, 5, 3, 2, 0, 0, "more in flight than max_unavailable: 0, not negative" },
		{ 100, 100, 0, 20, 90, 10, "100 at 90%: 10" },
		{ 10, 8, 0, 5, 75, 1, "floor(7.5) = 7 must stay, not 8" },
		{ 5, 4, 0, 5, 70, 1, "floor(3.5) = 3 must stay: one unhealthy, one more may go" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		cr_assert_eq(rollout_budget(cases[i].n, cases[i].healthy, cases[i].in_flight, cases[i].max_unavailable,
					    cases[i].pct),
			     cases[i].want, "case %zu (%s): got %d", i, cases[i].why,
			     rollout_budget(cases[i].n, cases[i].healthy, cases[i].in_flight, cases[i].max_unavailable,
					    cases[i].pct));
}

Test(rollout_eligible, reasons) {
	char *pools[] = { "web", NULL };
	rollout_plan p;
	rollout_plan_defaults(&p);
	p.target.image = "v2";
	p.pools = pools;
	p.n_pools = 1;
	const struct {
		rollout_node n;
		const char *why;
	} cases[] = {
		{ { .id = "a", .pool = "web", .image = "v1", .registered = true, .status_ok = true }, NULL },
		{ { .id = "b", .pool = "db", .image = "v1", .registered = true }, "not in pools" },
		{ { .id = "c", .pool = "web", .image = "v1", .registered = false }, "not registered" },
		{ { .id = "d", .pool = "web", .image = "v1", .registered = true, .held = true }, "held" },
		{ { .id = "e", .pool = "web", .image = "v1", .registered = true, .launching = true }, "launching" },
		{ { .id = "f", .pool = "web", .image = NULL, .registered = true }, "no upgrade config" },
		{ { .id = "g", .pool = "web", .image = "v2", .registered = true }, "already on target" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *why = "unset";
		cr_assert_eq(rollout_node_eligible(&p, &cases[i].n, &why), cases[i].why == NULL, "node %s", cases[i].n.id);
		if (cases[i].why)
			cr_assert_str_eq(why, cases[i].why);
		else
			cr_assert_null(why);
	}
}
