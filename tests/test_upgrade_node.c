/* test_upgrade_node.c — the node's upgrade runner (upgrade.h) against a
 * real etcd and a real `systemd --user`: the test writes the leader's order
 * (upgrade/nodes/n1) and reads the progress the runner writes; the steps
 * are shell commands appending to a log in a temp dir, so their order,
 * environment and count are what the log says.
 *
 * Steps that must be caught in the middle wait for a file the test
 * creates (hold-*, release-*). Waits are the event loop run until the
 * runner reports, up to a deadline. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "etcd-test.h"
#include "harness.h"
#include "keys.h"
#include "node.h"
#include "rollout.h"
#include "upgrade.h"

#define WAIT_USEC (30 * USEC_PER_SEC)

TestSuite(upgrade_node, .timeout = 180);

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static et t;
static units_bus *bus;
static conf *cf;

typedef struct seen {
	unsigned done, orders, ignored, images;
	int last_error;
	char last_image[64];
} seen;

static void on_event(upgrade_runner *u, const upgrade_event *e, void *userdata) {
	seen *s = userdata;

	cr_log_info("upgrade event %d: %s", e->kind, e->line);
	switch (e->kind) {
	case UPGRADE_EVENT_DONE:
		s->done++;
		s->last_error = e->error;
		break;
	case UPGRADE_EVENT_ORDER:
		if (strstr(e->line, "ignored"))
			s->ignored++;
		else
			s->orders++;
		break;
	case UPGRADE_EVENT_IMAGE:
		s->images++;
		snprintf(s->last_image, sizeof s->last_image, "%s", e->image ? e->image : "");
		break;
	default:
		break;
	}
}

static char *in_dir(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

/* Steps: a once notice (held by hold-once), a silence with its undo, a
 * slow step (held by hold), the switch (writes the image file), a health
 * check (fails while "sick" exists). */
static void up(void) {
	_cleanup_free_ char *text = NULL;
	conf_error err;

	et_fixture_up(&etcd, &dir, "upgrade-node", 1);
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	for (char *const *e = hx_systemd_env(sd); *e; e++) {
		_cleanup_free_ char *kv = strdup(*e);
		char *eq = strchr(kv, '=');
		*eq = '\0';
		cr_assert_eq(setenv(kv, eq + 1, 1), 0);
	}
	cr_assert_geq(asprintf(&text,
			       "cluster: t\nprefix: /corral/t\nnode_id: n1\naddress: 127.0.0.1\n"
			       "etcd:\n  endpoints: [%s]\nunits_bus: user\n"
			       "upgrade:\n"
			       "  image_command: cat %s/image\n"
			       "  step_timeout: 60s\n"
			       "  prepare:\n"
			       "    - run: echo \"prepare $CORRAL_ACTION $CORRAL_IMAGE${CORRAL_OWNERS:+ owners=$CORRAL_OWNERS}\" >> %s/log\n"
			       "  steps:\n"
			       "    - run: echo \"once $CORRAL_ACTION $CORRAL_IMAGE $CORRAL_FROM_IMAGE $CORRAL_PLAN $CORRAL_NODE\" >> %s/log;"
			       " if [ -e %s/hold-once ]; then while [ ! -e %s/release-once ]; do sleep 0.05; done; fi\n"
			       "      once: true\n"
			       "    - run: echo silence >> %s/log\n"
			       "      undo: echo unsilence >> %s/log\n"
			       "    - run: echo slow-start >> %s/log;"
			       " if [ -e %s/hold ]; then while [ ! -e %s/release ]; do sleep 0.05; done; fi; echo slow >> %s/log\n"
			       "    - run: echo \"$CORRAL_IMAGE\" > %s/image; echo switch >> %s/log\n"
			       "    - health: test ! -e %s/sick\n"
			       "  cleanup: echo cleanup >> %s/log\n",
			       hx_etcd_endpoints(etcd), dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir,
			       dir), 0);
	cr_assert_eq(conf_load_string(text, strlen(text), "test.yaml", &cf, &err), 0, "%s", err.message);
	_cleanup_free_ char *yaml = in_dir("corrald.yaml");
	cr_assert_eq(hx_write_file(yaml, text), 0);
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(units_bus_open(&bus, t.event, true), 0);
	_cleanup_free_ char *image = in_dir("image");
	cr_assert_eq(hx_write_file(image, "img:1\n"), 0);
}

static void down(void) {
	bus = units_bus_free(bus);
	et_close(&t);
	cf = conf_unref(cf);
	sd = hx_systemd_free(sd);
	et_fixture_down(&etcd, &dir);
}

static void touch(const char *name) {
	_cleanup_free_ char *p = in_dir(name);
	cr_assert_eq(hx_write_file(p, ""), 0);
}

static char *log_text(void) {
	_cleanup_free_ char *p = in_dir("log");
	char *s = hx_read_file(p, NULL);
	return s ? s : strdup("");
}

static unsigned count_lines(const char *text, const char *line) {
	unsigned n = 0;
	size_t len = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p += len)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			n++;
	return n;
}

static void put_order(const char *plan, int64_t gen, rollout_verb verb, const char *target, const char *from,
		      bool cleanup) {
	rollout_order o = { .plan = (char *) plan, .generation = gen, .verb = verb, .target.image = (char *) target,
			    .from.image = (char *) from, .cleanup = cleanup, .issued = time(NULL) };
	json_auto_t *j = rollout_order_to_json(&o);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT), *key = keys_entry("/corral/t", KEYS_UPGRADE_NODES, "n1");
	cr_assert_eq(et_put(&t, key, text, 0), 0);
}

static rollout_progress get_progress(void) {
	_cleanup_free_ char *key = keys_entry("/corral/t", KEYS_UPGRADE_PROGRESS, "n1");
	_cleanup_free_ char *text = et_get(&t, key);
	rollout_progress p = {};
	rollout_error err;
	cr_assert_not_null(text, "no progress");
	json_auto_t *j = json_loads(text, 0, NULL);
	cr_assert_eq(rollout_progress_from_json(j, &p, &err), 0, "%s: %s", text, err.message);
	return p;
}

typedef struct until {
	const seen *s;
	unsigned done;
	const char *file, *line;
} until;

static bool done_reached(void *ud) {
	const until *u = ud;
	return u->s->done >= u->done;
}

static void wait_done(const seen *s, unsigned n) {
	until u = { .s = s, .done = n };
	cr_assert(et_run_until(&t, done_reached, &u, WAIT_USEC), "the order did not end (done %u)", s->done);
}

static bool log_has(void *ud) {
	const until *u = ud;
	_cleanup_free_ char *text = log_text();
	return count_lines(text, u->line) > 0;
}

static void wait_log(const char *line) {
	until u = { .line = line };
	cr_assert(et_run_until(&t, log_has, &u, WAIT_USEC), "no \"%s\" in the log", line);
}

static bool stale_seen(void *ud) {
	return ((const until *) ud)->s->ignored > 0;
}

static upgrade_runner *runner(seen *s) {
	upgrade_runner *u = NULL;
	cr_assert_eq(upgrade_runner_new(&u, t.event, t.client, bus, cf, on_event, s), 0);
	return u;
}

Test(upgrade_node, upgrade_runs_the_steps_in_order, .init = up, .fini = down) {
	seen s = {};
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	wait_done(&s, 1);
	cr_assert_eq(s.last_error, 0);

	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "once upgrade img:2 img:1 p1 n1\nsilence\nslow-start\nslow\nswitch\n");
	cr_assert_str_eq(upgrade_runner_image(u), "img:2", "image_command read again after the list");
	cr_assert_str_eq(s.last_image, "img:2");

	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.state, ROLLOUT_STEP_DONE);
	cr_assert_str_eq(p.plan, "p1");
	cr_assert_eq(p.verb, ROLLOUT_UPGRADE);
	cr_assert_str_eq(p.image, "img:2");
	cr_assert_eq(p.n_steps, 5);
	cr_assert_eq(p.n_once_done, 1);
	cr_assert_eq(p.once_done[0], 0);
	cr_assert_eq(p.n_undo_pending, 1, "the silence's undo is owed until the plan ends");
	cr_assert_eq(p.undo_pending[0], 1);
	cr_assert_gt(p.finished, 0);
}

Test(upgrade_node, prepare_runs_the_prepare_steps, .init = up, .fini = down) {
	seen s = {};
	put_order("p1", 1, ROLLOUT_PREPARE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	wait_done(&s, 1);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "prepare prepare img:2\n");
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.state, ROLLOUT_STEP_DONE);
	cr_assert_eq(p.verb, ROLLOUT_PREPARE);
	cr_assert_str_eq(p.image, "img:1");
}

static char **owners_env(void *userdata) {
	unsigned *calls = userdata;
	char **v = calloc(3, sizeof *v);
	cr_assert_not_null(v);
	v[0] = strdup("CORRAL_DEPLOYMENTS=acme beta");
	v[1] = strdup("CORRAL_OWNERS=ops@acme.example,it@beta.example");
	(*calls)++;
	return v;
}

/* corrald hands the tenant deployments of the host to every step, so an
 * in-place upgrade's notices reach their owners. */
Test(upgrade_node, steps_get_the_environment_corrald_adds, .init = up, .fini = down) {
	seen s = {};
	unsigned calls = 0;
	put_order("p1", 1, ROLLOUT_PREPARE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	upgrade_runner_set_env(u, owners_env, &calls);
	wait_done(&s, 1);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "prepare prepare img:2 owners=ops@acme.example,it@beta.example\n");
	cr_assert_eq(calls, 1, "asked once per command step");
}

Test(upgrade_node, a_failing_step_fails_the_order_and_runs_the_undo, .init = up, .fini = down) {
	seen s = {};
	touch("sick");
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	wait_done(&s, 1);
	cr_assert_neq(s.last_error, 0);

	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "once upgrade img:2 img:1 p1 n1\nsilence\nslow-start\nslow\nswitch\nunsilence\n");
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.state, ROLLOUT_STEP_FAILED);
	cr_assert_eq(p.step, 4, "the health step");
	cr_assert_not_null(p.error);
	cr_assert(p.step_name && strstr(p.step_name, "health"), "%s", p.step_name);
	cr_assert_null(strstr(p.error, "step 5"), "the step is in step/step_name, not repeated: %s", p.error);
	cr_assert(strstr(p.error, "exit status 1"), "%s", p.error);
	cr_assert_eq(p.n_undo_pending, 0, "the undo ran");
}

Test(upgrade_node, a_once_step_is_not_run_again_after_a_restart, .init = up, .fini = down) {
	seen s1 = {}, s2 = {};
	touch("hold-once");
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	upgrade_runner *u1 = runner(&s1);
	wait_log("once upgrade img:2 img:1 p1 n1");
	u1 = upgrade_runner_free(u1);           /* corrald died mid-step */
	touch("release-once");
	/* Let the command end and its unit go while nobody watches. */
	et_run_for(&t, 500 * USEC_PER_MSEC);

	_cleanup_(upgrade_runner_freep) upgrade_runner *u2 = runner(&s2);
	wait_done(&s2, 1);
	cr_assert_eq(s2.last_error, 0);
	_cleanup_free_ char *text = log_text();
	cr_assert_eq(count_lines(text, "once upgrade img:2 img:1 p1 n1"), 1, "%s", text);
	cr_assert_eq(count_lines(text, "switch"), 1, "%s", text);
}

Test(upgrade_node, a_restarted_runner_waits_for_the_running_step, .init = up, .fini = down) {
	seen s1 = {}, s2 = {};
	touch("hold");
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	upgrade_runner *u1 = runner(&s1);
	wait_log("slow-start");
	u1 = upgrade_runner_free(u1);

	_cleanup_(upgrade_runner_freep) upgrade_runner *u2 = runner(&s2);
	et_run_for(&t, 700 * USEC_PER_MSEC);
	cr_assert_eq(s2.done, 0, "done before the step it waits for ended");
	touch("release");
	wait_done(&s2, 1);
	cr_assert_eq(s2.last_error, 0);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "once upgrade img:2 img:1 p1 n1\nsilence\nslow-start\nslow\nswitch\n", "run once each");
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.state, ROLLOUT_STEP_DONE);
	cr_assert_str_eq(p.image, "img:2");
}

Test(upgrade_node, an_order_of_an_older_generation_is_ignored, .init = up, .fini = down) {
	seen s = {};
	put_order("p1", 2, ROLLOUT_PREPARE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	wait_done(&s, 1);
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	until w = { .s = &s };
	cr_assert(et_run_until(&t, stale_seen, &w, WAIT_USEC), "no word of the stale order");
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(s.done, 1);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "prepare prepare img:2\n");
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.generation, 2);
}

/* A staged config rollout's orders are the pin follower's (corrald):
 * the runner runs no step and writes no progress for them, and still
 * runs the image order that follows. */
Test(upgrade_node, config_only_orders_are_left_alone, .init = up, .fini = down) {
	seen s = {};
	rollout_order o = { .plan = "c1", .generation = 1, .verb = ROLLOUT_UPGRADE, .target.config = "ctl_42",
			    .issued = time(NULL) };
	json_auto_t *j = rollout_order_to_json(&o);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT), *key = keys_entry("/corral/t", KEYS_UPGRADE_NODES, "n1");
	_cleanup_free_ char *pkey = keys_entry("/corral/t", KEYS_UPGRADE_PROGRESS, "n1");
	cr_assert_eq(et_put(&t, key, text, 0), 0);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	until w = { .s = &s };
	cr_assert(et_run_until(&t, stale_seen, &w, WAIT_USEC), "no word of the config-only order");
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(s.done, 0);
	cr_assert(!upgrade_runner_busy(u));
	_cleanup_free_ char *prog = et_get(&t, pkey), *log = log_text();
	cr_assert_null(prog, "no progress written: %s", prog);
	cr_assert_str_eq(log, "");

	rollout_order fin = { .plan = "c1", .generation = 1, .verb = ROLLOUT_FINISH, .target.config = "ctl_42",
			      .from.config = "ctl_41", .cleanup = true };
	cr_assert(upgrade_order_config_only(&fin), "a config plan's finish");
	fin.target.image = "img:2";
	cr_assert(!upgrade_order_config_only(&fin), "an image with it: the runner's");
	cr_assert(!upgrade_order_config_only(&(rollout_order) { .plan = "p" }), "no target at all: the runner's");

	put_order("p1", 1, ROLLOUT_PREPARE, "img:2", "img:1", false);
	wait_done(&s, 1);
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_str_eq(p.plan, "p1");
	cr_assert_eq(p.state, ROLLOUT_STEP_DONE);
}

Test(upgrade_node, finish_runs_the_undos_and_cleanup_only_when_told, .init = up, .fini = down) {
	seen s = {};
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = runner(&s);
	wait_done(&s, 1);
	put_order("p1", 1, ROLLOUT_FINISH, "img:2", "img:1", false);
	wait_done(&s, 2);
	_cleanup_free_ char *text = log_text();
	cr_assert_eq(count_lines(text, "unsilence"), 1, "%s", text);
	cr_assert_eq(count_lines(text, "cleanup"), 0, "%s", text);
	_cleanup_(rollout_progress_done) rollout_progress p = get_progress();
	cr_assert_eq(p.verb, ROLLOUT_FINISH);
	cr_assert_eq(p.state, ROLLOUT_STEP_DONE);
	cr_assert_eq(p.n_undo_pending, 0);

	/* The next plan succeeds: its finish cleans up. */
	put_order("p2", 1, ROLLOUT_UPGRADE, "img:3", "img:2", false);
	wait_done(&s, 3);
	put_order("p2", 1, ROLLOUT_FINISH, "img:3", "img:2", true);
	wait_done(&s, 4);
	free(text);
	text = log_text();
	cr_assert_eq(count_lines(text, "unsilence"), 2, "%s", text);
	cr_assert_eq(count_lines(text, "cleanup"), 1, "%s", text);
	cr_assert(strstr(text, "unsilence\ncleanup\n"), "undos first, then cleanup: %s", text);
}

typedef struct record_wait {
	const char *image;
	bool done;
} record_wait;

static bool record_and_progress(void *ud) {
	record_wait *w = ud;
	_cleanup_free_ char *rec = hx_etcd_get(etcd, "/corral/t/nodes/n1");
	json_auto_t *j = rec ? json_loads(rec, 0, NULL) : NULL;
	if (!streq_ptr(json_string_value(json_object_get(j, "image")), w->image))
		return false;
	if (!w->done)
		return true;
	_cleanup_free_ char *prog = hx_etcd_get(etcd, "/corral/t/upgrade/progress/n1");
	return prog && strstr(prog, "\"state\":\"done\"");
}

/* corrald itself: its record carries the image, it runs the order and
 * logs one line per step; the record follows the new image. */
Test(upgrade_node, corrald_runs_the_order_and_reports_the_image, .init = up, .fini = down) {
	_cleanup_free_ char *yaml = in_dir("corrald.yaml"), *log = in_dir("corrald.log"), *bin = NULL;
	cr_assert_geq(asprintf(&bin, "%s/corrald", hx_builddir()), 0);
	char *const argv[] = { bin, "--config", yaml, NULL };
	_cleanup_(hx_proc_freep) hx_proc *d = NULL;
	cr_assert_eq(hx_proc_spawn(&d, argv, NULL, log), 0);

	record_wait w = { .image = "img:1" };
	cr_assert(hx_wait_until(record_and_progress, &w, WAIT_USEC), "no image in the node record");
	put_order("p1", 1, ROLLOUT_UPGRADE, "img:2", "img:1", false);
	w = (record_wait) { .image = "img:2", .done = true };
	cr_assert(hx_wait_until(record_and_progress, &w, WAIT_USEC), "the record never showed img:2");
	_cleanup_free_ char *text = log_text(), *logged = hx_read_file(log, NULL);
	cr_assert_str_eq(text, "once upgrade img:2 img:1 p1 n1\nsilence\nslow-start\nslow\nswitch\n");
	cr_assert(strstr(logged, "upgrade: step 3/5 run echo slow-start"), "%s", logged);
	cr_assert(strstr(logged, "upgrade: upgrade of p1 gen 1: done"), "%s", logged);
	cr_assert_eq(hx_proc_signal(d, SIGTERM), 0);
	int status;
	cr_assert_eq(hx_proc_wait(d, 10 * USEC_PER_SEC, &status), 0);
}

Test(upgrade_node, the_node_record_carries_the_image) {
	char *services[] = { NULL };
	node_info info = { .node_id = "n1", .address = "a", .services = services, .image = "img:7" };
	_cleanup_free_ char *with = node_record_json(&info);
	json_auto_t *j = json_loads(with, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "image")), "img:7");
	info.image = NULL;
	_cleanup_free_ char *without = node_record_json(&info);
	json_auto_t *k = json_loads(without, 0, NULL);
	cr_assert_null(json_object_get(k, "image"));
}

Test(upgrade_node, decide_start) {
	rollout_order o = { .plan = "p", .generation = 2, .verb = ROLLOUT_UPGRADE };
	rollout_progress p = { .plan = "p", .generation = 2, .verb = ROLLOUT_UPGRADE, .state = ROLLOUT_STEP_RUNNING, .step = 3 };
	upgrade_start st;

	upgrade_decide_start(NULL, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE);
	upgrade_decide_start(&o, NULL, &st);
	cr_assert_eq(st.kind, UPGRADE_START_FRESH);
	cr_assert(!st.carry);
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_RESUME);
	cr_assert_eq(st.step, 3);
	p.state = ROLLOUT_STEP_DONE;
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE, "done already");
	p.verb = ROLLOUT_PREPARE;
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_FRESH);
	cr_assert(st.carry, "once_done and undo_pending carry within a generation");
	p.generation = 3;
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE, "stale");
	p.plan = "q";
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_FRESH);
	cr_assert(!st.carry);
	o.target.config = "ctl_9";
	upgrade_decide_start(&o, &p, &st);
	cr_assert_eq(st.kind, UPGRADE_START_NONE, "a config-only order has no steps");

	_cleanup_free_ char *name = upgrade_unit_name("n1", "p/1", 2, ROLLOUT_ROLLBACK, true, 4);
	cr_assert_str_eq(name, "corral-upgrade-n1-p\\x2f1-2-rollback-undo-4.service");
}
