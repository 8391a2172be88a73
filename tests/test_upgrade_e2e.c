/* test_upgrade_e2e.c — rolling image upgrades end to end: five corrald
 * against a real etcd and a real `systemd --user`, a plan started with
 * corralctl, the leader's rollout loop and every node's upgrade steps run
 * as transient units (docs/upgrades.md).
 *
 * The fleet (tests/upgrade-fleet.h): node nI's image is a file, its app
 * the user unit app-nI.service, and every step appends what it did to a
 * file in its directory (notices, alarms, steps, switches, cleanup).
 *
 * The suites: good (a good image rolls through), bad (health fails on the
 * canary: it halts and rolls back), leader_kill (SIGKILL of the leader mid
 * batch), node_kill (SIGKILL of a node mid step), and the other terminal
 * states: abort (cancelled mid step) and failed (no auto rollback). In
 * every one the alarms undo has run by the end, and cleanup only after
 * success. */
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include "etcd-test.h"
#include "upgrade-fleet.h"

#define PREFIX "/corral/t"
#define N 5
#define SCENARIO_USEC (60 * USEC_PER_SEC)

typedef uf_node node;

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static node nodes[N];
static et obs;
static etcd_watch *orders_watch;

/* Every order written during the test, as "<node> <verb>" (from a watch on
 * upgrade/nodes/, so an order overwritten later still counts). */
static char order_log[1024][48];
static size_t n_order_log;

#define lines_of uf_lines
#define count_of uf_count
#define last_line uf_last_line

static void set_file(const node *n, const char *name, const char *text) {
	cr_assert_eq(uf_set_file(n, name, text), 0);
}

/* ---- etcd --------------------------------------------------------------------- */

static json_t *get_json(const char *key) {
	_cleanup_free_ char *v = et_get(&obs, key);
	return v ? json_loads(v, 0, NULL) : NULL;
}

static json_t *node_json(const char *what, const node *n) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/%s/%s", what, n->id);
	return get_json(key);
}

static const char *str_of(json_t *j, const char *field) {
	return json_string_value(json_object_get(j, field));
}

static json_t *state(void) {
	return get_json(PREFIX "/upgrade/state");
}

/* The node id the leader key names, or NULL. */
static node *leader_node(void) {
	_cleanup_free_ char *v = et_get(&obs, PREFIX "/leader");
	for (unsigned i = 0; v && i < N; i++) {
		_cleanup_free_ char *quoted = hx_fmt("\"%s\"", nodes[i].id);
		if (strstr(v, quoted) || streq(v, nodes[i].id))
			return &nodes[i];
	}
	return NULL;
}

static void order_seen(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	(void) w;
	(void) userdata;
	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events && n_order_log < ELEMENTSOF(order_log); i++) {
		const etcd_event *e = &m->events[i];
		if (e->type != ETCD_EVENT_PUT || !e->kv.value)
			continue;
		const char *id = strrchr(e->kv.key, '/');
		json_auto_t *o = json_loads(e->kv.value, 0, NULL);
		snprintf(order_log[n_order_log++], sizeof order_log[0], "%s %s", id ? id + 1 : "?",
			 str_of(o, "verb") ?: "?");
	}
}

static size_t orders_of(const node *n, const char *verb) {
	_cleanup_free_ char *want = hx_fmt("%s %s", n->id, verb);
	size_t k = 0;
	for (size_t i = 0; i < n_order_log; i++)
		k += streq(order_log[i], want);
	return k;
}

/* ---- the fleet ------------------------------------------------------------------ */

static void start_node(node *n) {
	cr_assert_eq(uf_node_start(n, sd), 0, "%s: corrald did not start", n->id);
}

static void kill_node(node *n) {
	cr_assert_eq(uf_node_kill(n), 0, "%s: SIGKILL", n->id);
}

static bool all_registered(void *ud) {
	(void) ud;
	for (unsigned i = 0; i < N; i++) {
		json_auto_t *rec = node_json("nodes", &nodes[i]);
		if (!streq_ptr(str_of(rec, "image"), "v1"))
			return false;
	}
	return leader_node() != NULL;
}

static void up(void) {
	et_fixture_up(&etcd, &dir, "upgrade", 1);
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	cr_assert_eq(et_open(&obs, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(etcd_watch_new(&orders_watch, obs.client,
				    &(etcd_watch_req){ .key = PREFIX "/upgrade/nodes/", .prefix = true }, order_seen,
				    NULL),
		     0);
	n_order_log = 0;
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *id = hx_fmt("n%u", i + 1);
		cr_assert_eq(uf_node_init(&nodes[i], i, id, dir, "v1", etcd, sd), 0, "%s: set-up", id);
	}
	/* n1 first, so it leads (and is the canary: the first by id). */
	start_node(&nodes[0]);
	for (unsigned i = 1; i < N; i++)
		start_node(&nodes[i]);
	if (!et_run_until(&obs, all_registered, NULL, 30 * USEC_PER_SEC)) {
		for (unsigned i = 0; i < N; i++) {
			_cleanup_free_ char *key = hx_fmt(PREFIX "/nodes/%s", nodes[i].id), *v = et_get(&obs, key);
			fprintf(stderr, "%s: %s\n", key, v ?: "(none)");
		}
		cr_assert_fail("the nodes never registered with image v1 under a leader");
	}
}

static void dump(void) {
	_cleanup_free_ char *st = et_get(&obs, PREFIX "/upgrade/state");
	fprintf(stderr, "upgrade/state: %s\n", st ? st : "(none)");
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *ok = hx_fmt(PREFIX "/upgrade/nodes/%s", nodes[i].id);
		_cleanup_free_ char *pk = hx_fmt(PREFIX "/upgrade/progress/%s", nodes[i].id);
		_cleanup_free_ char *o = et_get(&obs, ok), *p = et_get(&obs, pk);
		fprintf(stderr, "%s order: %s\n%s progress: %s\n", nodes[i].id, o ?: "-", nodes[i].id, p ?: "-");
	}
}

static void down(void) {
	if (getenv("CORRAL_UPGRADE_LOGS") && obs.client)
		dump();
	orders_watch = etcd_watch_free(orders_watch);
	for (unsigned i = 0; i < N; i++) {
		if (getenv("CORRAL_UPGRADE_LOGS") && nodes[i].log)
			hx_log_tail(nodes[i].log, 60);
		uf_node_done(&nodes[i]);
	}
	et_close(&obs);
	sd = hx_systemd_free(sd);
	et_fixture_down(&etcd, &dir);
}

TestSuite(upgrade_good, .init = up, .fini = down, .timeout = 150);
TestSuite(upgrade_bad, .init = up, .fini = down, .timeout = 150);
TestSuite(upgrade_leader_kill, .init = up, .fini = down, .timeout = 150);
TestSuite(upgrade_node_kill, .init = up, .fini = down, .timeout = 150);
TestSuite(upgrade_abort, .init = up, .fini = down, .timeout = 150);
TestSuite(upgrade_failed, .init = up, .fini = down, .timeout = 150);

/* ---- the plan -------------------------------------------------------------------- */

/* corralctl upgrade start with short times: canary 1, auto promotion,
 * 1 s bakes and min_healthy_time. */
static void start_plan_with(const char *image, const char *max_unavailable, const char *extra) {
	char *const *base = uf_start_args(image, max_unavailable, true, false);
	char *args[40];
	size_t k = 0;
	_cleanup_free_ char *out = NULL;

	for (; base[k]; k++)
		args[k] = base[k];
	args[k++] = (char *) extra;
	args[k] = NULL;
	int r = hx_corralctl(hx_etcd_endpoints(etcd), &out, args);
	cr_assert_eq(r, 0, "corralctl upgrade start: %d: %s", r, out ?: "");
}

static void start_plan(const char *image, const char *max_unavailable) {
	start_plan_with(image, max_unavailable, NULL);
}

#define CTL(...) hx_corralctl(hx_etcd_endpoints(etcd), NULL, (char *const[]){ __VA_ARGS__, NULL })

typedef struct phase_wait {
	const char *phase;
	bool cleanup_early;             /* out: a cleanup ran before succeeded */
	char why_back[256];             /* out: the reason rolling_back gave */
} phase_wait;

static bool any_cleanup(void) {
	for (unsigned i = 0; i < N; i++)
		if (lines_of(&nodes[i], "cleanup") > 0)
			return true;
	return false;
}

/* The state is in w->phase. On the way, a cleanup seen BEFORE the state
 * was read that says anything but succeeded ran too early (the state
 * never leaves succeeded). */
static bool phase_is(void *ud) {
	phase_wait *w = ud;
	bool cleaned = any_cleanup();
	json_auto_t *st = state();
	const char *phase = str_of(st, "phase");
	if (cleaned && phase && !streq(phase, "succeeded"))
		w->cleanup_early = true;
	if (streq_ptr(phase, "rolling_back") && str_of(st, "reason"))
		snprintf(w->why_back, sizeof w->why_back, "%s", str_of(st, "reason"));
	return streq_ptr(phase, w->phase);
}

static void wait_phase(phase_wait *w) {
	if (!et_run_until(&obs, phase_is, w, SCENARIO_USEC)) {
		dump();
		for (unsigned i = 0; i < N; i++)
			hx_log_tail(nodes[i].log, 30);
		cr_assert_fail("the plan never reached %s", w->phase);
	}
	cr_assert_not(w->cleanup_early, "cleanup ran before the plan succeeded");
}

/* Every node's progress reports its finish order done. */
static bool all_finished(void *ud) {
	(void) ud;
	for (unsigned i = 0; i < N; i++) {
		json_auto_t *p = node_json("upgrade/progress", &nodes[i]);
		if (!streq_ptr(str_of(p, "verb"), "finish") || !streq_ptr(str_of(p, "state"), "done"))
			return false;
	}
	return true;
}

static void wait_finished(void) {
	if (!et_run_until(&obs, all_finished, NULL, 30 * USEC_PER_SEC)) {
		dump();
		cr_assert_fail("not every node ran its finish order");
	}
}

/* The end of a good rollout: every node on v2 (record and file), stable
 * v2, the once step, the step list and the switch run exactly once per
 * node, the alarms back on, cleanup once per node. */
static void assert_succeeded_everywhere(void) {
	json_auto_t *stable = get_json(PREFIX "/upgrade/stable");
	cr_assert_str_eq(str_of(stable, "image") ?: "(none)", "v2", "upgrade/stable");
	for (unsigned i = 0; i < N; i++) {
		node *n = &nodes[i];
		json_auto_t *rec = node_json("nodes", n);
		_cleanup_free_ char *image = last_line(n, "image"), *alarms = last_line(n, "alarms");
		cr_assert_str_eq(str_of(rec, "image") ?: "(none)", "v2", "%s: nodes/%s image", n->id, n->id);
		cr_assert_str_eq(image, "v2", "%s: image file", n->id);
		cr_assert_eq(count_of(n, "notices", "upgrade v2"), 1, "%s: the once step ran %zu times", n->id,
			     lines_of(n, "notices"));
		cr_assert_eq(count_of(n, "steps", "upgrade v2"), 1, "%s: upgraded %zu times", n->id,
			     lines_of(n, "steps"));
		cr_assert_eq(lines_of(n, "steps"), 1, "%s: other step lists ran", n->id);
		cr_assert_eq(count_of(n, "alarms", "off"), count_of(n, "alarms", "on"), "%s: alarms off/on", n->id);
		cr_assert_str_eq(alarms, "on", "%s: the undo did not turn the alarms back on", n->id);
		cr_assert_eq(lines_of(n, "cleanup"), 1, "%s: cleanup ran %zu times", n->id, lines_of(n, "cleanup"));
		cr_assert_eq(orders_of(n, "rollback"), 0, "%s got a rollback order", n->id);
	}
}

/* ---- a. a good image --------------------------------------------------------------- */

Test(upgrade_good, rolls_through_canary_and_batches_to_succeeded) {
	uint64_t t0 = hx_now_usec();
	start_plan("v2", "2");

	/* The phases in order: canary first, then batches. */
	phase_wait canary = { "canary" };
	wait_phase(&canary);
	phase_wait done = { "succeeded" };
	wait_phase(&done);
	cr_log_info("good image: succeeded after %.1f s", (hx_now_usec() - t0) / 1e6);
	wait_finished();
	/* The one more look: nothing runs a second time. */
	et_run_for(&obs, USEC_PER_SEC);
	assert_succeeded_everywhere();
	for (unsigned i = 0; i < N; i++) {
		cr_assert_eq(orders_of(&nodes[i], "prepare"), 1, "%s: prepare orders", nodes[i].id);
		cr_assert_eq(orders_of(&nodes[i], "upgrade"), 1, "%s: upgrade orders", nodes[i].id);
		cr_assert_eq(lines_of(&nodes[i], "starts.log"), 2, "%s: the app started once more", nodes[i].id);
	}
}

/* ---- b. a bad image ------------------------------------------------------------------ */

Test(upgrade_bad, health_fails_on_the_canary_and_it_rolls_back) {
	size_t starts[N];
	for (unsigned i = 0; i < N; i++)
		starts[i] = lines_of(&nodes[i], "starts.log");

	start_plan("v2-bad", "2");
	phase_wait rb = { "rolled_back" };
	wait_phase(&rb);
	wait_finished();
	et_run_for(&obs, USEC_PER_SEC);

	/* The reason names the canary and its step. */
	cr_assert(strstr(rb.why_back, "n1") && strstr(rb.why_back, "health"), "why it rolled back: '%s'", rb.why_back);
	cr_log_info("rolled back: %s", rb.why_back);
	/* The canary n1 ran the bad image, failed its health, went back. */
	node *c = &nodes[0];
	json_auto_t *rec = node_json("nodes", c);
	_cleanup_free_ char *image = last_line(c, "image");
	cr_assert_str_eq(str_of(rec, "image") ?: "(none)", "v1", "the canary's record");
	cr_assert_str_eq(image, "v1", "the canary's image file");
	cr_assert_eq(count_of(c, "switches", "upgrade v2-bad"), 1);
	cr_assert_eq(count_of(c, "switches", "rollback v1"), 1);
	cr_assert_eq(orders_of(c, "rollback"), 1);
	cr_assert_eq(count_of(c, "notices", "upgrade"), 1, "the notice went out once");
	_cleanup_free_ char *alarms = last_line(c, "alarms");
	cr_assert_str_eq(alarms, "on", "the undo turned the alarms back on");
	cr_assert_eq(count_of(c, "alarms", "off"), count_of(c, "alarms", "on"));
	/* Nobody else was touched. */
	for (unsigned i = 1; i < N; i++) {
		node *n = &nodes[i];
		cr_assert_eq(lines_of(n, "starts.log"), starts[i], "%s: its app was restarted", n->id);
		cr_assert_eq(orders_of(n, "upgrade"), 0, "%s got an upgrade order", n->id);
		cr_assert_eq(orders_of(n, "rollback"), 0, "%s got a rollback order", n->id);
		cr_assert_eq(lines_of(n, "steps"), 0, "%s ran upgrade steps", n->id);
		_cleanup_free_ char *img = last_line(n, "image");
		cr_assert_str_eq(img, "v1");
	}
	cr_assert_not(any_cleanup(), "cleanup ran after a rollback");
	json_auto_t *stable = get_json(PREFIX "/upgrade/stable");
	cr_assert(!streq_ptr(str_of(stable, "image"), "v2-bad"), "the bad image became stable");
}

/* ---- c. SIGKILL of the leader mid-batch ------------------------------------------------ */

typedef struct mid_batch {
	node *leader;
} mid_batch;

/* Rolling, batch >= 1, a node other than the leader is running its steps,
 * and the leader is not in flight itself. */
static bool leader_mid_batch(void *ud) {
	mid_batch *m = ud;
	json_auto_t *st = state();
	if (!streq_ptr(str_of(st, "phase"), "rolling") || json_integer_value(json_object_get(st, "batch")) < 1)
		return false;
	node *l = leader_node();
	bool other_running = false;
	for (unsigned i = 0; l && i < N; i++) {
		json_auto_t *p = node_json("upgrade/progress", &nodes[i]);
		bool running = streq_ptr(str_of(p, "verb"), "upgrade") && streq_ptr(str_of(p, "state"), "running");
		if (&nodes[i] == l && running)
			return false;
		other_running |= running && &nodes[i] != l;
	}
	m->leader = l;
	return other_running;
}

/* The leader key's create_revision: the fencing token (0: no leader). */
static int64_t leader_token(void) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&obs, &(etcd_range_req){ .key = PREFIX "/leader" });
	return r && r->error.code == 0 && r->n_kvs > 0 ? r->kvs[0].create_revision : 0;
}

static bool leader_changed(void *ud) {
	int64_t t = leader_token();
	return t != 0 && t != *(int64_t *) ud;
}

Test(upgrade_leader_kill, next_leader_finishes_no_node_upgraded_twice) {
	/* Each switch takes a second, one node per batch: time to land mid-batch. */
	for (unsigned i = 0; i < N; i++)
		set_file(&nodes[i], "slow", "1\n");
	start_plan("v2", "1");

	mid_batch m = {};
	if (!et_run_until(&obs, leader_mid_batch, &m, SCENARIO_USEC)) {
		dump();
		cr_assert_fail("never saw a batch in flight");
	}
	json_auto_t *before = state();
	cr_log_info("killing leader %s in batch %lld", m.leader->id,
		    (long long) json_integer_value(json_object_get(before, "batch")));
	int64_t token = leader_token();
	/* Killed and restarted at once, as its unit's Restart= does (corrald's
	 * lease outlives the gap, so its node record stays). */
	kill_node(m.leader);
	start_node(m.leader);
	cr_assert(et_run_until(&obs, leader_changed, &token, 20 * USEC_PER_SEC), "no new leader");
	node *next = leader_node();
	cr_log_info("new leader: %s (token %lld, was %lld)", next ? next->id : "?", (long long) leader_token(),
		    (long long) token);

	phase_wait done = { "succeeded" };
	wait_phase(&done);
	wait_finished();
	et_run_for(&obs, USEC_PER_SEC);
	assert_succeeded_everywhere();
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(count_of(&nodes[i], "switches", "upgrade v2"), 1, "%s switched twice", nodes[i].id);
}

/* ---- d. SIGKILL of a node mid-step ------------------------------------------------------ */

static bool in_switch(void *ud) {
	json_auto_t *p = node_json("upgrade/progress", ud);
	return streq_ptr(str_of(p, "verb"), "upgrade") && streq_ptr(str_of(p, "state"), "running") &&
	       json_integer_value(json_object_get(p, "step")) == UF_SWITCH_STEP;
}

Test(upgrade_node_kill, killed_mid_step_resumes_and_the_plan_succeeds) {
	node *victim = &nodes[2];
	set_file(victim, "slow", "3\n");
	start_plan("v2", "2");

	if (!et_run_until(&obs, in_switch, victim, SCENARIO_USEC)) {
		dump();
		cr_assert_fail("%s never reached its switch step", victim->id);
	}
	kill_node(victim);
	start_node(victim);

	phase_wait done = { "succeeded" };
	wait_phase(&done);
	wait_finished();
	et_run_for(&obs, USEC_PER_SEC);
	assert_succeeded_everywhere();
	/* The switch's unit outlived corrald, which waited for it again: one run. */
	cr_assert_eq(lines_of(victim, "switches"), 1, "the switch ran %zu times on %s", lines_of(victim, "switches"),
		     victim->id);
	cr_assert_eq(count_of(victim, "notices", "upgrade v2"), 1);
}

/* ---- e. the other terminal states: cancelled and failed ------------------------------ */

/* Only n1 was touched: the alarms back on, no cleanup, nobody else got an
 * upgrade order or restarted its app. */
static void assert_only_canary_touched(const size_t *starts) {
	node *c = &nodes[0];
	_cleanup_free_ char *alarms = last_line(c, "alarms");
	cr_assert_eq(count_of(c, "alarms", "off"), 1);
	cr_assert_str_eq(alarms, "on", "the undo did not turn the alarms back on");
	cr_assert_eq(count_of(c, "alarms", "on"), 1, "the undo ran %zu times", count_of(c, "alarms", "on"));
	cr_assert_not(any_cleanup(), "cleanup ran without success");
	for (unsigned i = 1; i < N; i++) {
		cr_assert_eq(orders_of(&nodes[i], "upgrade"), 0, "%s got an upgrade order", nodes[i].id);
		cr_assert_eq(lines_of(&nodes[i], "starts.log"), starts[i], "%s: its app was restarted", nodes[i].id);
	}
}

Test(upgrade_abort, abort_mid_step_cancels_and_the_undo_runs) {
	size_t starts[N];
	for (unsigned i = 0; i < N; i++)
		starts[i] = lines_of(&nodes[i], "starts.log");
	set_file(&nodes[0], "slow", "2\n");
	start_plan("v2", "2");
	if (!et_run_until(&obs, in_switch, &nodes[0], SCENARIO_USEC)) {
		dump();
		cr_assert_fail("the canary never reached its switch step");
	}
	cr_assert_eq(CTL("upgrade", "abort"), 0, "corralctl upgrade abort");
	phase_wait cancelled = { "cancelled" };
	wait_phase(&cancelled);
	/* The canary's step list ends (nothing kills a step), then it runs
	 * its finish order: the undo. */
	wait_finished();
	et_run_for(&obs, USEC_PER_SEC);
	assert_only_canary_touched(starts);
	cr_assert_eq(orders_of(&nodes[0], "rollback"), 0, "an abort rolls nothing back");
}

Test(upgrade_failed, no_auto_rollback_fails_and_the_undo_runs) {
	size_t starts[N];
	for (unsigned i = 0; i < N; i++)
		starts[i] = lines_of(&nodes[i], "starts.log");
	start_plan_with("v2-bad", "2", "--no-auto-rollback");
	phase_wait failed = { "failed" };
	wait_phase(&failed);
	wait_finished();
	et_run_for(&obs, USEC_PER_SEC);

	json_auto_t *st = state();
	const char *reason = str_of(st, "reason");
	cr_assert(reason && strstr(reason, "n1") && strstr(reason, "health"), "reason: %s", reason ?: "(none)");
	/* Left as it failed: on the bad image, nothing rolled back. */
	_cleanup_free_ char *image = last_line(&nodes[0], "image");
	cr_assert_str_eq(image, "v2-bad");
	cr_assert_eq(orders_of(&nodes[0], "rollback"), 0);
	assert_only_canary_touched(starts);
}
