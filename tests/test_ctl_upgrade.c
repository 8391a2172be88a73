/* test_ctl_upgrade.c — `corralctl upgrade`, the built binary against a
 * real etcd: start writes upgrade/plan with every knob as given (read back
 * and parsed with the leader's codec), bad input exits 2 naming the option
 * and writes nothing, a running plan is replaced only with --supersede and
 * an ended one always, status reflects seeded state, orders, progress and
 * node records, every control verb changes exactly its field (and refuses
 * where it makes no sense), and plan prints the schedule for seeded nodes
 * without writing. No leader runs: the state is seeded as it would write
 * it (with the codecs of include/rollout.h). */
#include <jansson.h>
#include <time.h>

#include "ctl-test.h"
#include "rollout.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "ctl-upgrade", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_upgrade, .init = up, .fini = down, .timeout = 120);

static int ctl_full(const char *endpoint, char **out, char **err, char *const args[]) {
	return ctlt_run(endpoint, PREFIX, out, err, args);
}

#define CTL(out, err, ...) ctl_full(hx_etcd_endpoints(etcd), (out), (err), (char *const[]){ __VA_ARGS__, NULL })

static json_t *parse(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, text);
	return j;
}

static json_t *get_json(const char *key) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	return v && *v ? parse(v) : NULL;
}

static void put_json(const char *key, json_t *v) {
	_cleanup_free_ char *text = json_dumps(v, JSON_COMPACT);
	cr_assert_not_null(text);
	cr_assert_eq(hx_etcd_put(etcd, key, text), 0, "put %s", key);
}

/* upgrade/plan parsed by the leader's codec. */
static void stored_plan(rollout_plan *p) {
	json_auto_t *doc = get_json(PREFIX "/upgrade/plan");
	rollout_error err = {};
	cr_assert_not_null(doc, "no plan stored");
	cr_assert_eq(rollout_plan_from_json(doc, p, &err), 0, "%s", err.message);
}

/* upgrade/state as the leader writes it. */
static void put_state(const char *plan, int64_t gen, rollout_phase phase, rollout_pause pause) {
	rollout_state s = { .plan = (char *) plan, .generation = gen, .phase = phase, .pause = pause,
			    .paused_from = ROLLOUT_CANARY_BAKE, .batch = phase == ROLLOUT_ROLLING ? 1 : 0,
			    .phase_since = time(NULL) - 60, .started = time(NULL) - 600, .progress_at = time(NULL) - 5,
			    .reason = (char *) "seeded by the test", .waiting = (char *) "node n2: step 2" };
	json_auto_t *j = rollout_state_to_json(&s);
	cr_assert_not_null(j);
	put_json(PREFIX "/upgrade/state", j);
}

/* nodes/<id> (registered, with image; NULL: no upgrade config), and an ok status. */
static void put_node(const char *id, const char *pool, const char *image) {
	char key[128];
	json_auto_t *rec = json_pack("{s:s, s:s, s:[], s:s, s:s, s:s, s:s?, s:s?}", "node_id", id, "address",
				     "10.0.0.1", "services", "version", "test", "boot_time", "2026-01-01T00:00:00Z",
				     "started", "2026-01-01T00:00:00Z", "pool", pool, "image", image);
	json_auto_t *st = json_pack("{s:s, s:b}", "node_id", id, "ok", true);
	snprintf(key, sizeof key, PREFIX "/nodes/%s", id);
	put_json(key, rec);
	snprintf(key, sizeof key, PREFIX "/status/%s", id);
	put_json(key, st);
}

static void put_order(const char *node, const char *plan, rollout_verb verb, rollout_role role, int batch,
		      const char *target, const char *from) {
	char key[128];
	rollout_order o = { .plan = (char *) plan, .generation = 1, .verb = verb, .role = role, .batch = batch,
			    .target = { (char *) target }, .from = { (char *) from }, .issued = time(NULL) - 30 };
	json_auto_t *j = rollout_order_to_json(&o);
	cr_assert_not_null(j);
	snprintf(key, sizeof key, PREFIX "/upgrade/nodes/%s", node);
	put_json(key, j);
}

static void put_progress(const char *node, const char *plan, rollout_verb verb, rollout_step_state state, int step,
			 const char *step_name, const char *image) {
	char key[128];
	time_t now = time(NULL);
	rollout_progress p = { .plan = (char *) plan, .generation = 1, .verb = verb, .state = state, .step = step,
			       .n_steps = 5, .step_name = (char *) step_name, .started = now - 20,
			       .finished = state == ROLLOUT_STEP_RUNNING ? 0 : now - 10, .updated = now - 1,
			       .image = (char *) image };
	json_auto_t *j = rollout_progress_to_json(&p);
	cr_assert_not_null(j);
	snprintf(key, sizeof key, PREFIX "/upgrade/progress/%s", node);
	put_json(key, j);
}

/* ---- start ------------------------------------------------------------------ */

Test(ctl_upgrade, start_writes_every_knob) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {};

	cr_assert_eq(CTL(&out, &err, "upgrade", "start", "--image", "reg/cms:2", "--pool", "web", "--pool", "db",
			 "--canary", "2", "--bake", "5m", "--auto-promote", "--max-unavailable", "3",
			 "--min-healthy-percent", "60", "--min-healthy-time", "45s", "--healthy-deadline", "7m",
			 "--progress-deadline", "20m", "--gate", "/usr/bin/true", "--gate-timeout", "30s", "--window",
			 "Mon-Fri 02:00-05:00", "--window", "Sat,Sun 00:00-06:00", "--tz", "+02:00", "--schedule",
			 "0 2 * * 2", "--final-bake", "1h", "--no-auto-rollback", "--prepare-blocks", "--id", "p-knobs"),
		     0, "%s", err);
	cr_assert_str_eq(out, "p-knobs\n");
	stored_plan(&p);
	cr_assert_str_eq(p.id, "p-knobs");
	cr_assert_str_eq(p.target.image, "reg/cms:2");
	cr_assert_eq(p.n_pools, 2);
	cr_assert_str_eq(p.pools[0], "web");
	cr_assert_str_eq(p.pools[1], "db");
	cr_assert_eq(p.canary_nodes, 2);
	cr_assert_eq(p.canary_bake, 300);
	cr_assert(p.auto_promote);
	cr_assert_eq(p.max_unavailable, 3);
	cr_assert_eq(p.min_healthy_percent, 60);
	cr_assert_eq(p.min_healthy_time, 45);
	cr_assert_eq(p.healthy_deadline, 420);
	cr_assert_eq(p.progress_deadline, 1200);
	cr_assert_str_eq(p.gate_command, "/usr/bin/true");
	cr_assert_eq(p.gate_timeout, 30);
	cr_assert_eq(p.n_windows, 2);
	cr_assert_eq(p.windows[0].days, 0x3e, "Mon-Fri: %#x", p.windows[0].days);
	cr_assert_eq(p.windows[0].start, 120);
	cr_assert_eq(p.windows[0].end, 300);
	cr_assert_str_eq(p.windows[0].tz, "+02:00");
	cr_assert_eq(p.windows[1].days, 0x41, "Sat,Sun: %#x", p.windows[1].days);
	cr_assert_eq(p.windows[1].end, 360);
	cr_assert_not_null(p.schedule);
	cr_assert_str_eq(p.schedule->text, "0 2 * * 2");
	cr_assert_str_eq(p.schedule->tz, "+02:00");
	cr_assert_eq(p.final_bake, 3600);
	cr_assert_not(p.auto_rollback);
	cr_assert(p.prepare_blocks);
	cr_assert_leq(llabs((long long) (p.created - time(NULL))), 60);
	cr_assert_not(p.paused || p.abort || p.rollback || p.promote || p.retry);
}

Test(ctl_upgrade, start_defaults_and_generated_id) {
	_cleanup_free_ char *out = NULL, *err = NULL, *o2 = NULL, *e2 = NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {}, d = {};
	time_t before = time(NULL);

	cr_assert_eq(CTL(&out, &err, "upgrade", "start", "--image", "img-2"), 0, "%s", err);
	stored_plan(&p);
	cr_assert(strncmp(p.id, "p-", 2) == 0 && strlen(p.id) == strlen("p-20260101-020000"), "id %s", p.id);
	cr_assert(strncmp(out, p.id, strlen(p.id)) == 0, "%s", out);
	/* every knob not given is the default */
	rollout_plan_defaults(&d);
	cr_assert_eq(p.canary_nodes, d.canary_nodes);
	cr_assert_eq(p.canary_bake, d.canary_bake);
	cr_assert_eq(p.auto_promote, d.auto_promote);
	cr_assert_eq(p.max_unavailable, d.max_unavailable);
	cr_assert_eq(p.min_healthy_percent, d.min_healthy_percent);
	cr_assert_eq(p.final_bake, d.final_bake);
	cr_assert_eq(p.auto_rollback, d.auto_rollback);
	cr_assert_null(p.pools);
	cr_assert_eq(p.n_windows, 0);
	cr_assert_null(p.schedule);
	cr_assert_geq(p.created, before);

	/* --supersede in the same second: a new id all the same */
	cr_assert_eq(CTL(&o2, &e2, "upgrade", "start", "--image", "img-3", "--supersede"), 0, "%s", e2);
	cr_assert_str_neq(o2, out);
	_cleanup_(rollout_plan_done) rollout_plan q = {};
	stored_plan(&q);
	cr_assert_str_eq(q.target.image, "img-3");
}

Test(ctl_upgrade, start_from_plan_file_with_options_over_it) {
	_cleanup_free_ char *file = NULL, *err = NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {};

	cr_assert_geq(asprintf(&file, "%s/plan.json", dir), 0);
	cr_assert_eq(hx_write_file(file, "{\"id\": \"p-file\", \"target\": {\"image\": \"img-f\"},"
					 " \"canary\": {\"nodes\": 0}, \"batch\": {\"max_unavailable\": 4}}"),
		     0);
	cr_assert_eq(CTL(NULL, &err, "upgrade", "start", "--plan", file, "--max-unavailable", "2"), 0, "%s", err);
	stored_plan(&p);
	cr_assert_str_eq(p.id, "p-file");
	cr_assert_str_eq(p.target.image, "img-f");
	cr_assert_eq(p.canary_nodes, 0);
	cr_assert_eq(p.max_unavailable, 2, "the option wins over the file");
}

/* A machine image plan (replace by relaunch), from a file ... */
Test(ctl_upgrade, start_from_a_machine_image_plan_file) {
	_cleanup_free_ char *file = NULL, *err = NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {};

	cr_assert_geq(asprintf(&file, "%s/relaunch.json", dir), 0);
	cr_assert_eq(hx_write_file(file, "{\"id\": \"p-ami\", \"pools\": [\"web\"], \"target\": {\"ami\": \"ami-0abc\"},"
					 " \"batch\": {\"max_surge\": 2, \"keep_old_until_bake\": true}}"),
		     0);
	cr_assert_eq(CTL(NULL, &err, "upgrade", "start", "--plan", file), 0, "%s", err);
	stored_plan(&p);
	cr_assert_str_eq(p.target.ami, "ami-0abc");
	cr_assert_null(p.target.image);
	cr_assert_eq(p.max_surge, 2);
	cr_assert(p.keep_old_until_bake);
}

/* ... and from flags alone. */
Test(ctl_upgrade, start_a_machine_image_plan_from_flags) {
	_cleanup_free_ char *err = NULL, *e2 = NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {}, q = {};

	cr_assert_eq(CTL(NULL, &err, "upgrade", "start", "--ami", "ami-0abc", "--pool", "web", "--max-surge", "3",
			 "--keep-old-until-bake", "--strategy", "replace", "--id", "p-flags"),
		     0, "%s", err);
	stored_plan(&p);
	cr_assert_str_eq(p.target.ami, "ami-0abc");
	cr_assert_null(p.target.image);
	cr_assert_eq(p.max_surge, 3);
	cr_assert(p.keep_old_until_bake);
	cr_assert_eq(p.strategy, ROLLOUT_STRATEGY_REPLACE);
	cr_assert_eq(CTL(NULL, &e2, "upgrade", "start", "--launch-template-version", "7", "--pool", "web", "--id",
			 "p-lt", "--supersede"),
		     0, "%s", e2);
	stored_plan(&q);
	cr_assert_str_eq(q.target.launch_template_version, "7");
	cr_assert_eq(q.max_surge, 1, "the default");
	cr_assert_not(q.keep_old_until_bake);
}

/* Each bad input: exit 2, stderr names the option (or key), nothing written. */
Test(ctl_upgrade, bad_input_exits_2_naming_the_option) {
	_cleanup_free_ char *notjson = NULL, *unknown = NULL, *badval = NULL;

	cr_assert_geq(asprintf(&notjson, "%s/nj.json", dir), 0);
	cr_assert_eq(hx_write_file(notjson, "{\"id\": "), 0);
	cr_assert_geq(asprintf(&unknown, "%s/unknown.json", dir), 0);
	cr_assert_eq(hx_write_file(unknown, "{\"id\": \"p\", \"target\": {\"image\": \"a\"}, \"bogus\": 1}"), 0);
	cr_assert_geq(asprintf(&badval, "%s/badval.json", dir), 0);
	cr_assert_eq(hx_write_file(badval, "{\"id\": \"p\", \"target\": {\"image\": \"a\"},"
					   " \"batch\": {\"max_unavailable\": 0}}"),
		     0);
	struct {
		char *args[8];
		const char *names;
	} cases[] = {
		{ { "--bake", "5x" }, "--bake" },
		{ { "--final-bake", "500ms" }, "--final-bake" },
		{ { "--min-healthy-time", "-3s" }, "--min-healthy-time" },
		{ { "--canary", "-1" }, "--canary" },
		{ { "--canary", "two" }, "--canary" },
		{ { "--max-unavailable", "0" }, "--max-unavailable" },
		{ { "--min-healthy-percent", "101" }, "--min-healthy-percent" },
		{ { "--window", "Mon-Fri 02:00" }, "--window" },
		{ { "--window", "Xyz 02:00-05:00" }, "--window" },
		{ { "--window", "Mon 25:00-26:00" }, "--window" },
		{ { "--schedule", "61 * * * *" }, "--schedule" },
		{ { "--schedule", "0 2 * *" }, "--schedule" },
		{ { "--tz", "+02:00" }, "--tz" },
		{ { "--id", "a/b" }, "--id" },
		{ { "--launch-template-version", "$Latest" }, "--launch-template-version" },
		{ { "--ami", "img-1" }, "--ami" },
		{ { "--max-surge", "-1" }, "--max-surge" },
		{ { "--strategy", "sideways" }, "--strategy" },
		{ { "--plan", notjson }, "--plan" },
		{ { "--plan", unknown }, "bogus" },
		{ { "--plan", badval }, "batch.max_unavailable" },
	};
	int64_t rev = et_revision(etcd);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *err = NULL;
		char *argv[16] = { "upgrade", "start" };
		size_t k = 2;
		if (!streq(cases[i].args[0], "--plan")) {
			argv[k++] = "--image";
			argv[k++] = "img";
		}
		for (size_t j = 0; cases[i].args[j]; j++)
			argv[k++] = cases[i].args[j];
		argv[k] = NULL;
		cr_assert_eq(ctl_full(hx_etcd_endpoints(etcd), NULL, &err, argv), 2, "%s %s: %s", cases[i].args[0],
			     cases[i].args[1], err);
		cr_assert(strstr(err, cases[i].names), "%s %s: the message names %s: %s", cases[i].args[0],
			  cases[i].args[1], cases[i].names, err);
	}
	_cleanup_free_ char *e1 = NULL, *e2 = NULL;
	cr_assert_eq(CTL(NULL, &e1, "upgrade", "start", "--canary", "1"), 2);
	cr_assert(strstr(e1, "--image"), "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "upgrade", "status", "--image", "x"), 2);
	cr_assert(strstr(e2, "--image"), "%s", e2);
	cr_assert_eq(et_revision(etcd), rev, "bad input wrote something");
}

Test(ctl_upgrade, running_plan_needs_supersede_ended_one_is_replaced) {
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL, *e6 = NULL;

	cr_assert_eq(CTL(NULL, &e1, "upgrade", "start", "--image", "img-1", "--id", "p1"), 0, "%s", e1);
	/* not yet taken up (pending): running */
	cr_assert_eq(CTL(NULL, &e2, "upgrade", "start", "--image", "img-2", "--id", "p2"), 1);
	cr_assert(strstr(e2, "p1") && strstr(e2, "--supersede"), "%s", e2);
	/* in the canary: running */
	put_state("p1", 1, ROLLOUT_CANARY, ROLLOUT_PAUSE_NONE);
	cr_assert_eq(CTL(NULL, &e3, "upgrade", "start", "--image", "img-2", "--id", "p2"), 1);
	cr_assert(strstr(e3, "p1") && strstr(e3, "canary"), "%s", e3);
	_cleanup_(rollout_plan_done) rollout_plan a = {};
	stored_plan(&a);
	cr_assert_str_eq(a.id, "p1", "a running plan was replaced without --supersede");

	cr_assert_eq(CTL(NULL, &e4, "upgrade", "start", "--image", "img-2", "--id", "p2", "--supersede"), 0, "%s", e4);
	_cleanup_(rollout_plan_done) rollout_plan b = {};
	stored_plan(&b);
	cr_assert_str_eq(b.id, "p2");

	/* p2 ended: replaced without --supersede */
	put_state("p2", 1, ROLLOUT_SUCCEEDED, ROLLOUT_PAUSE_NONE);
	cr_assert_eq(CTL(NULL, &e5, "upgrade", "start", "--image", "img-3", "--id", "p3"), 0, "%s", e5);
	_cleanup_(rollout_plan_done) rollout_plan c = {};
	stored_plan(&c);
	cr_assert_str_eq(c.id, "p3");
	/* the stored plan's own id again: refused, it would be taken for the same plan */
	cr_assert_eq(CTL(NULL, &e6, "upgrade", "start", "--image", "img-4", "--id", "p3", "--supersede"), 2);
	cr_assert(strstr(e6, "p3"), "%s", e6);

	/* dry run: says it, writes nothing */
	put_state("p3", 1, ROLLOUT_FAILED, ROLLOUT_PAUSE_NONE);
	int64_t rev = et_revision(etcd);
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(CTL(&out, NULL, "-n", "upgrade", "start", "--image", "img-5", "--id", "p5"), 0);
	cr_assert(strstr(out, "dry run"), "%s", out);
	cr_assert_eq(et_revision(etcd), rev);
}

/* ---- status ------------------------------------------------------------------ */

Test(ctl_upgrade, status_reflects_state_orders_progress_and_nodes) {
	_cleanup_free_ char *out = NULL, *err = NULL, *tout = NULL, *terr = NULL;

	cr_assert_eq(CTL(NULL, &err, "upgrade", "start", "--image", "img-2", "--id", "p1", "--max-unavailable", "2",
			 "--min-healthy-time", "1s"),
		     0, "%s", err);
	put_node("n1", "web", "img-2");
	put_node("n2", "web", "img-1");
	put_node("n3", "web", "img-1");
	put_state("p1", 1, ROLLOUT_ROLLING, ROLLOUT_PAUSE_NONE);
	put_order("n1", "p1", ROLLOUT_UPGRADE, ROLLOUT_ROLE_CANARY, 0, "img-2", "img-1");
	put_progress("n1", "p1", ROLLOUT_UPGRADE, ROLLOUT_STEP_DONE, 4, "health", "img-2");
	put_order("n2", "p1", ROLLOUT_UPGRADE, ROLLOUT_ROLE_BATCH, 1, "img-2", "img-1");
	put_progress("n2", "p1", ROLLOUT_UPGRADE, ROLLOUT_STEP_RUNNING, 2, "stop cms-app.service", NULL);

	free(err);
	err = NULL;
	cr_assert_eq(CTL(&out, &err, "upgrade", "status", "-o", "json"), 0, "%s", err);
	json_auto_t *j = parse(out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "phase")), "rolling", "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "plan")), "p1");
	cr_assert_eq(json_integer_value(json_object_get(j, "generation")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "batch")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), "seeded by the test");
	cr_assert_str_eq(json_string_value(json_object_get(j, "waiting")), "node n2: step 2");
	json_t *nodes = json_object_get(j, "nodes");
	cr_assert_eq(json_object_size(nodes), 3, "%s", out);
	json_t *n1 = json_object_get(nodes, "n1"), *n2 = json_object_get(nodes, "n2"), *n3 = json_object_get(nodes, "n3");
	cr_assert_str_eq(json_string_value(json_object_get(n1, "image")), "img-2");
	cr_assert_str_eq(json_string_value(json_object_get(n1, "state")), "done");
	cr_assert(json_is_true(json_object_get(n1, "healthy")), "%s", out);
	cr_assert(json_is_string(json_object_get(n1, "step")), "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(n2, "image")), "img-1");
	cr_assert_str_eq(json_string_value(json_object_get(n2, "state")), "running");
	cr_assert(json_is_boolean(json_object_get(n2, "healthy")), "%s", out);
	cr_assert(strstr(json_string_value(json_object_get(n2, "progress")), "stop cms-app.service"), "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(n3, "image")), "img-1");
	cr_assert(json_is_null(json_object_get(n3, "state")), "no progress: %s", out);
	cr_assert(json_is_string(json_object_get(n3, "step")), "%s", out);

	/* the table says the same */
	cr_assert_eq(CTL(&tout, &terr, "upgrade", "status"), 0, "%s", terr);
	cr_assert(strstr(tout, "plan p1 generation 1: rolling") && strstr(tout, "batch 1"), "%s", tout);
	cr_assert(strstr(tout, "waiting: node n2: step 2") && strstr(tout, "stop cms-app.service"), "%s", tout);
	cr_assert(strstr(tout, "n3"), "%s", tout);
}

Test(ctl_upgrade, status_without_a_plan) {
	_cleanup_free_ char *out = NULL, *err = NULL, *jout = NULL;

	cr_assert_eq(CTL(&out, &err, "upgrade", "status"), 0, "%s", err);
	cr_assert(strstr(out, "no upgrade plan"), "%s", out);
	cr_assert_eq(CTL(&jout, NULL, "upgrade", "status", "-o", "json"), 0);
	json_auto_t *j = parse(jout);
	cr_assert(json_is_null(json_object_get(j, "phase")), "%s", jout);
	cr_assert_eq(json_object_size(json_object_get(j, "nodes")), 0, "%s", jout);
}

/* ---- the controls -------------------------------------------------------------- */

/* Runs the verb, expecting exit code want; with 0 and a change, the plan
 * afterwards differs from before exactly in control.<field> = value. */
static void control(const char *verb, int want, const char *field, json_t *value) {
	_cleanup_free_ char *err = NULL;
	json_auto_t *before = get_json(PREFIX "/upgrade/plan");
	int64_t rev = et_revision(etcd);

	cr_assert_eq(CTL(NULL, &err, "upgrade", (char *) verb), want, "%s: %s", verb, err);
	json_auto_t *after = get_json(PREFIX "/upgrade/plan");
	if (!field) {
		cr_assert_eq(et_revision(etcd), rev, "%s wrote something", verb);
		return;
	}
	json_t *want_doc = json_deep_copy(before);
	json_t *ctl = json_object_get(want_doc, "control");
	cr_assert_not_null(ctl);
	json_object_set(ctl, field, value);
	if (streq(verb, "retry")) {
		json_object_set_new(ctl, "abort", json_false());
		json_object_set_new(ctl, "rollback", json_false());
	}
	cr_assert(json_equal(after, want_doc), "%s changed more than control.%s:\n%s", verb, field,
		  json_dumps(after, JSON_INDENT(2)));
	json_decref(want_doc);
}

Test(ctl_upgrade, control_verbs_change_exactly_their_field) {
	_cleanup_free_ char *e0 = NULL, *err = NULL;
	json_auto_t *t = json_true(), *f = json_false(), *one = json_integer(1), *two = json_integer(2);

	/* no plan: every verb fails, saying so */
	cr_assert_eq(CTL(NULL, &e0, "upgrade", "pause"), 1);
	cr_assert(strstr(e0, "no upgrade plan"), "%s", e0);
	control("retry", 1, NULL, NULL);

	cr_assert_eq(CTL(NULL, &err, "upgrade", "start", "--image", "img-2", "--id", "p1"), 0, "%s", err);
	control("pause", 0, "paused", t);
	control("pause", 0, NULL, NULL);         /* already: nothing written */
	control("resume", 0, "paused", f);
	control("resume", 1, NULL, NULL);        /* not paused */

	/* promote: only when paused for promotion (or by the gate) */
	put_state("p1", 1, ROLLOUT_CANARY, ROLLOUT_PAUSE_NONE);
	control("promote", 1, NULL, NULL);
	control("rollback", 0, "rollback", t);   /* the canary changed nodes */
	put_state("p1", 2, ROLLOUT_PAUSED, ROLLOUT_PAUSE_PROMOTION);
	control("promote", 0, "promote", one);   /* a counter: promote_seen (0) + 1 */
	put_state("p1", 2, ROLLOUT_PAUSED, ROLLOUT_PAUSE_GATE);
	control("promote", 0, NULL, NULL);       /* already promoted: not yet taken */

	control("retry", 1, NULL, NULL);         /* not ended */
	control("abort", 0, "abort", t);
	put_state("p1", 2, ROLLOUT_CANCELLED, ROLLOUT_PAUSE_NONE);
	control("abort", 1, NULL, NULL);         /* ended */
	control("pause", 1, NULL, NULL);
	control("retry", 0, "retry", one);       /* and abort, rollback cleared */
	_cleanup_(rollout_plan_done) rollout_plan p = {};
	stored_plan(&p);
	cr_assert(p.retry == 1 && !p.abort && !p.rollback && p.promote == 1);

	/* rollback: not before any node changed, not twice */
	put_state("p1", 3, ROLLOUT_PREPARING, ROLLOUT_PAUSE_NONE);
	control("rollback", 1, NULL, NULL);
	put_state("p1", 3, ROLLOUT_ROLLED_BACK, ROLLOUT_PAUSE_NONE);
	control("rollback", 1, NULL, NULL);
	control("retry", 0, "retry", two);
}

/* ---- plan: the schedule ----------------------------------------------------------- */

Test(ctl_upgrade, plan_prints_canary_and_batches_writing_nothing) {
	_cleanup_free_ char *out = NULL, *err = NULL, *tout = NULL, *terr = NULL, *e2 = NULL;
	const char *ids[] = { "n1", "n2", "n3", "n4", "n5" };

	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		put_node(ids[i], "web", "img-1");
	put_node("n6", "web", NULL);            /* no upgrade config */
	put_node("n7", "db", "img-1");          /* another pool */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/holds/n8", "{\"reason\": \"test\"}"), 0);
	put_node("n8", "web", "img-1");         /* held */
	int64_t rev = et_revision(etcd);

	cr_assert_eq(CTL(&out, &err, "upgrade", "plan", "--image", "img-2", "--pool", "web", "--canary", "1",
			 "--max-unavailable", "2", "--min-healthy-percent", "0", "-o", "json"),
		     0, "%s", err);
	json_auto_t *j = parse(out);
	json_auto_t *want_canary = json_pack("[s]", "n1");
	json_auto_t *want_batches = json_pack("[[s,s],[s,s]]", "n2", "n3", "n4", "n5");
	cr_assert(json_equal(json_object_get(j, "canary"), want_canary), "%s", out);
	cr_assert(json_equal(json_object_get(j, "batches"), want_batches), "%s", out);
	json_t *skipped = json_object_get(j, "skipped");
	cr_assert(strstr(json_string_value(json_object_get(skipped, "n8")) ?: "", "held"), "%s", out);
	cr_assert(strstr(json_string_value(json_object_get(skipped, "n6")) ?: "", "no upgrade config"), "%s", out);
	cr_assert_null(json_object_get(skipped, "n7"), "n7 is not in the plan's pools: %s", out);

	cr_assert_eq(CTL(&tout, &terr, "upgrade", "plan", "--image", "img-2", "--pool", "web", "--max-unavailable",
			 "2", "--min-healthy-percent", "0"),
		     0, "%s", terr);
	cr_assert(strstr(tout, "n1") && strstr(tout, "n5"), "%s", tout);
	cr_assert_eq(et_revision(etcd), rev, "upgrade plan wrote something");

	/* without options: the stored plan's; none stored: says so */
	cr_assert_eq(CTL(NULL, &e2, "upgrade", "plan"), 1);
	cr_assert(strstr(e2, "no stored plan"), "%s", e2);
}

/* ---- staged config rollouts ------------------------------------------------------ */

static unsigned count_substr(const char *text, const char *what) {
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static char *current_id(void) {
	return hx_etcd_get(etcd, PREFIX "/current");
}

/* config set --staged (options before or after PATH VALUE) writes a
 * candidate and its plan, current stays; a running plan refuses the next
 * one before anything is staged; config diff shows what the candidate
 * changes; upgrade start --config-id stages an existing snapshot. */
Test(ctl_upgrade, config_set_staged_writes_a_candidate_and_its_plan) {
	_cleanup_free_ char *e0 = NULL, *out = NULL, *err = NULL, *c1 = NULL, *c1b = NULL;

	cr_assert_eq(CTL(NULL, &e0, "config", "set", "app/port", "8080"), 0, "%s", e0);
	c1 = current_id();
	cr_assert_not_null(c1);
	cr_assert_eq(CTL(&out, &err, "-o", "json", "config", "set", "app/port", "9090", "--staged", "--canary", "1",
			 "--bake", "3s", "--auto-promote", "--id", "s1", "--min-healthy-time", "2s"),
		     0, "%s", err);
	json_auto_t *res = parse(out);
	char *cand = (char *) json_string_value(json_object_get(res, "candidate"));
	cr_assert_not_null(cand, "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(res, "plan")), "s1");
	cr_assert_str_eq(json_string_value(json_object_get(res, "base")), c1);
	c1b = current_id();
	cr_assert_str_eq(c1b, c1, "current moved before promotion");

	_cleanup_(rollout_plan_done) rollout_plan p = {};
	stored_plan(&p);
	cr_assert_str_eq(p.id, "s1");
	cr_assert_str_eq(p.target.config, cand);
	cr_assert_null(p.target.image);
	cr_assert_str_eq(p.config_base, c1);
	cr_assert_eq(p.canary_nodes, 1);
	cr_assert_eq(p.canary_bake, 3);
	cr_assert_eq(p.min_healthy_time, 2);
	cr_assert(p.auto_promote);

	_cleanup_free_ char *get = NULL, *diff = NULL, *keyed = NULL;
	cr_assert_eq(CTL(&get, NULL, "config", "get", "app/port"), 0);
	cr_assert_str_eq(get, "8080\n", "nodes following current still see 8080");
	cr_assert_eq(CTL(&diff, NULL, "config", "diff"), 0);
	cr_assert(strstr(diff, "plan s1's candidate") && strstr(diff, "~ app/port = 8080 -> 9090"), "%s", diff);
	cr_assert_eq(CTL(&keyed, NULL, "config", "diff", "--staged", cand), 0);
	cr_assert(strstr(keyed, "~ app/port = 8080 -> 9090"), "%s", keyed);

	/* a running plan: refused before anything is staged */
	int64_t rev = et_revision(etcd);
	_cleanup_free_ char *e2 = NULL;
	cr_assert_eq(CTL(NULL, &e2, "config", "set", "--staged", "app/host", "x"), 1);
	cr_assert(strstr(e2, "s1") && strstr(e2, "--supersede"), "%s", e2);
	cr_assert_eq(et_revision(etcd), rev, "a refused --staged wrote something");

	/* knobs without --staged, and unknown snapshots: usage, nothing written */
	_cleanup_free_ char *e3 = NULL, *e4 = NULL, *e5 = NULL;
	cr_assert_eq(CTL(NULL, &e3, "config", "set", "app/port", "1", "--canary", "2"), 2);
	cr_assert(strstr(e3, "--canary") && strstr(e3, "--staged"), "%s", e3);
	cr_assert_eq(CTL(NULL, &e4, "upgrade", "start", "--config-id", "nope_1", "--supersede"), 2);
	cr_assert(strstr(e4, "nope_1"), "%s", e4);
	cr_assert_eq(CTL(NULL, &e5, "config", "diff", "--staged", "a", "b"), 2);
	cr_assert_eq(et_revision(etcd), rev);

	/* upgrade start --config-id: config_base defaults to current now */
	_cleanup_free_ char *e6 = NULL, *id = NULL;
	cr_assert_eq(CTL(&id, &e6, "upgrade", "start", "--config-id", cand, "--id", "s2", "--supersede", "--bake", "1s"),
		     0, "%s", e6);
	cr_assert_str_eq(id, "s2\n");
	_cleanup_(rollout_plan_done) rollout_plan q = {};
	stored_plan(&q);
	cr_assert_str_eq(q.target.config, cand);
	cr_assert_str_eq(q.config_base, c1);

	/* status: the PINNED column, from the node's status record */
	json_auto_t *st = json_pack("{s:s, s:s, s:s, s:s, s:b}", "node_id", "n1", "target", cand, "applied", cand,
				    "pinned", cand, "ok", true);
	put_json(PREFIX "/status/n1", st);
	_cleanup_free_ char *status = NULL;
	cr_assert_eq(CTL(&status, NULL, "status"), 0);
	cr_assert(strstr(status, "PINNED"), "%s", status);
	cr_assert_geq(count_substr(status, cand), 3, "applied, target and pinned: %s", status);
}
