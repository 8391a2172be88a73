/* test_relaunch_e2e.c — replace by relaunch end to end (issue 15): a real
 * etcd, moto behind tests/ec2proxy.py, and the leader's two loops (the
 * scaler and the rollout loop, as corrald runs them) in a process of their
 * own that the test can SIGKILL. The test plays the hosts: every instance
 * moto runs for the cluster "boots" (nodes/<id> naming the instance, its
 * load and status), one that is terminated goes away; a replacement can be
 * made to boot unhealthy.
 *
 * Proved here (docs/upgrades.md, "Replace by relaunch"):
 *   - an AMI target makes one launch template version, launches each
 *     replacement on it (never $Latest) with its own ClientToken, drains
 *     and terminates the old hosts, and the plan succeeds;
 *   - a replacement that never becomes healthy (with max_surge 0 its old
 *     host drained first) halts the plan and the rollback undrains the old
 *     host and drains the new one, launching nothing;
 *   - the leader SIGKILLed while a replacement's RunInstances is in
 *     flight: the next leader launches nothing twice and the plan ends;
 *   - a held host is skipped, never touched, and reported.
 * moto makes a new launch template version per call: the proxy answers a
 * repeated ClientToken as EC2 does; RunInstances is not idempotent in moto
 * either, which the scaler's adoption by ClientToken covers. Every wait
 * has a deadline; the leader process is stopped by each test. */
#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "rollout-loop.h"
#include "scale-test.h"
#include "scaler.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define WAIT    (60 * USEC_PER_SEC)

static hx_etcd *etcd;
static hx_moto *moto;
static et t;
static json_t *setup_info;              /* the proxy's launch template, subnet, AMIs */
static json_t *booted;                  /* instance id -> true while its "host" runs */
static pid_t leader = -1;
static bool (*boots_healthy)(const char *token);
static uint64_t last_tick;

/* ---- etcd ---- */

static void put(const char *sub, const char *value) {
	st_put(&t, PREFIX, sub, value);
}

static void del(const char *sub) {
	st_del(&t, PREFIX, sub);
}

static json_t *get_json(const char *sub) {
	return st_get_json(&t, PREFIX, sub);
}

static const char *str(json_t *o, const char *k) {
	return json_string_value(json_object_get(o, k));
}

/* A new leader key, so a new fencing token (create_revision). */
static int64_t take_leadership(void) {
	del("leader");
	put("leader", "{\"node_id\":\"test\"}");
	etcd_range_req req = { .key = PREFIX "/leader" };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	cr_assert(r && r->n_kvs == 1);
	return r->kvs[0].create_revision;
}

/* ---- the leader, in a process of its own ---- */

static void on_line(const char *what, const char *line) {
	fprintf(stderr, "leader %d: %s: %s\n", (int) getpid(), what, line);
}
static void on_scaler_action(scaler *s, int priority, const char *line, void *ud) {
	on_line("scale", line);
}
static void on_rollout_line(rollout_loop *l, const char *line, void *ud) {
	on_line("rollout", line);
}
static void on_fenced_scaler(scaler *s, void *ud) {
	_exit(0);
}
static void on_fenced_rollout(rollout_loop *l, void *ud) {
	_exit(0);
}

/* The child: both loops on one event loop until killed. */
static __attribute__((noreturn)) void leader_main(int64_t token) {
	et lt = {};
	ec2_client *ec2 = NULL;
	scaler *s = NULL;
	rollout_loop *l = NULL;

	(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (et_open(&lt, hx_etcd_endpoints(etcd), NULL) < 0)
		_exit(3);
	unsetenv("AWS_SESSION_TOKEN");
	setenv("AWS_ACCESS_KEY_ID", hx_moto_access_key_id(moto), 1);
	setenv("AWS_SECRET_ACCESS_KEY", hx_moto_secret_access_key(moto), 1);
	ec2_options eo = { .region = hx_moto_region(moto), .endpoint = hx_moto_endpoint(moto), .imds_endpoint = "",
			   .backoff_base_usec = 20 * USEC_PER_MSEC, .backoff_cap_usec = 200 * USEC_PER_MSEC };
	if (ec2_client_new(&ec2, lt.event, &eo) < 0)
		_exit(4);
	scaler_options so = { .prefix = PREFIX, .cluster = CLUSTER, .token = token,
			      .interval_usec = 300 * USEC_PER_MSEC, .launch_grace_sec = 60 };
	scaler_callbacks sc = { .action = on_scaler_action, .fenced = on_fenced_scaler };
	rollout_loop_options ro = { .prefix = PREFIX, .token = token, .ec2 = ec2, .defer_usec = 20 * USEC_PER_MSEC,
				    .reread_usec = USEC_PER_SEC };
	rollout_loop_callbacks rc = { .line = on_rollout_line, .fenced = on_fenced_rollout };
	if (scaler_new(&s, lt.client, ec2, &so, &sc, NULL) < 0 || rollout_loop_new(&l, lt.client, &ro, &rc, NULL) < 0)
		_exit(5);
	(void) sd_event_loop(lt.event);
	_exit(0);
}

static void leader_start(int64_t token) {
	fflush(NULL);
	leader = fork();
	cr_assert_geq(leader, 0);
	if (leader == 0)
		leader_main(token);
}

static void leader_stop(int sig) {
	if (leader <= 0)
		return;
	(void) kill(leader, sig);
	(void) waitpid(leader, NULL, 0);
	leader = -1;
}

/* ---- the cloud: hosts boot and go away as moto says ---- */

static bool healthy_always(const char *token) {
	return true;
}

static bool replacements_unhealthy(const char *token) {
	return !token || strncmp(token, "corral-r-", 9) != 0;
}

/* The cluster's instances, every state: [{"id", "state", "token", ...}]. */
static json_t *instances(void) {
	json_auto_t *all = NULL;
	json_t *out = json_array(), *x;
	size_t i;
	cr_assert_eq(hx_moto_instances(moto, &all), 0);
	json_array_foreach(all, i, x)
		if (streq_ptr(str(json_object_get(x, "tags"), "corral:cluster"), CLUSTER))
			json_array_append(out, x);
	return out;
}

static bool running(json_t *x) {
	return streq_ptr(str(x, "state"), "pending") || streq_ptr(str(x, "state"), "running");
}

static void host_boot(const char *id, bool ok) {
	char k[96], v[256];
	snprintf(k, sizeof k, "nodes/%s", id);
	snprintf(v, sizeof v, "{\"node_id\":\"%s\",\"instance_id\":\"%s\",\"pool\":\"web\",\"address\":\"10.0.0.9\"}",
		 id, id);
	put(k, v);
	snprintf(k, sizeof k, "load/%s", id);
	put(k, "{\"jobs\":0,\"capacity\":1,\"memory\":0.1}");
	snprintf(k, sizeof k, "status/%s", id);
	put(k, ok ? "{\"ok\":true}" : "{\"ok\":false}");
}

static void host_gone(const char *id) {
	char k[96];
	static const char *const dirs[] = { "nodes", "load", "status" };
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(k, sizeof k, "%s/%s", dirs[i], id);
		del(k);
	}
}

/* At most every 200 ms: boot what runs, stop what was terminated. */
static void cloud_tick(void) {
	if (hx_now_usec() - last_tick < 200 * USEC_PER_MSEC)
		return;
	last_tick = hx_now_usec();
	json_auto_t *all = instances();
	json_t *x;
	size_t i;
	json_array_foreach(all, i, x) {
		const char *id = str(x, "id");
		bool up = json_is_true(json_object_get(booted, id));
		if (running(x) && !json_object_get(booted, id)) {
			host_boot(id, boots_healthy(str(x, "token")));
			json_object_set_new(booted, id, json_true());
		} else if (!running(x) && up) {
			host_gone(id);
			json_object_set_new(booted, id, json_false());
		}
	}
}

/* ---- conditions ---- */

static bool hosts_ready(void *ud) {
	cloud_tick();
	json_auto_t *recs = st_records(&t, PREFIX);
	return st_count_state(recs, "ready") == (size_t) (intptr_t) ud;
}

static bool phase_is(void *ud) {
	cloud_tick();
	json_auto_t *s = get_json("upgrade/state");
	return streq_ptr(str(s, "phase"), ud);
}

static void wait_phase(const char *phase) {
	if (!hx_wait_until(phase_is, (void *) phase, WAIT)) {
		json_auto_t *s = get_json("upgrade/state");
		json_auto_t *recs = st_records(&t, PREFIX);
		_cleanup_free_ char *a = json_dumps(s, JSON_INDENT(1)), *b = json_dumps(recs, JSON_INDENT(1));
		cr_assert_fail("no phase %s; state:\n%s\nhosts:\n%s", phase, a ?: "-", b ?: "-");
	}
}

static bool run_in_flight(void *ud) {
	json_auto_t *f = NULL;
	cloud_tick();
	cr_assert_eq(hx_moto_inflight(moto, &f), 0);
	return (json_integer_value(json_object_get(f, "RunInstances")) > 0) == (ud != NULL);
}

/* ---- the proxy's log ---- */

/* RunInstances params, oldest first (new reference). */
static json_t *runs(void) {
	json_auto_t *calls = st_calls(moto, "RunInstances");
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(calls, i, e)
		json_array_append(out, json_object_get(e, "params"));
	return out;
}

static bool terminate_named(const char *id) {
	return st_terminated_at(moto, id) > 0;
}

/* The corral:state values CreateTags gave id, in order, as "a,b,c". */
static char *states_tagged(const char *id) {
	json_auto_t *cs = st_calls(moto, "CreateTags");
	json_t *e;
	size_t i;
	char *out = strdup("");
	json_array_foreach(cs, i, e) {
		json_t *p = json_object_get(e, "params");
		if (!streq_ptr(str(p, "ResourceId.1"), id) || !streq_ptr(str(p, "Tag.1.Key"), "corral:state"))
			continue;
		char *n = NULL;
		cr_assert_geq(asprintf(&n, "%s%s%s", out, *out ? "," : "", str(p, "Tag.1.Value")), 0);
		free(out);
		out = n;
	}
	return out;
}

/* ---- set-up ---- */

static void up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(hx_moto_setup(moto, &setup_info), 0);
	cr_assert_not_null(str(setup_info, "ami2"));
	booted = json_object();
	boots_healthy = healthy_always;
	last_tick = 0;
}

static void down(void) {
	leader_stop(SIGTERM);
	json_decref(booted);
	json_decref(setup_info);
	booted = setup_info = NULL;
	et_close(&t);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
}

TestSuite(relaunch_e2e, .init = up, .fini = down, .timeout = 240);

/* Pool web, fixed at 2 hosts (max 3), started by a leader; both hosts
 * boot and are ready. Returns the two instance ids ("a,b" order by id). */
static void fleet_of_two(char **a, char **b) {
	_cleanup_free_ char *policy = st_fixed_web_policy(setup_info, 2, 3);
	put("scale/policy", policy);
	leader_start(take_leadership());
	cr_assert(hx_wait_until(hosts_ready, (void *) 2, WAIT), "the pool did not reach 2 ready hosts");
	json_auto_t *all = instances();
	cr_assert_eq(json_array_size(all), 2);
	*a = strdup(str(json_array_get(all, 0), "id"));
	*b = strdup(str(json_array_get(all, 1), "id"));
	if (strcmp(*a, *b) > 0) {
		char *x = *a;
		*a = *b;
		*b = x;
	}
}

static void start_plan(bool keep_old, int surge, const char *healthy_deadline) {
	_cleanup_free_ char *plan = NULL;
	cr_assert_geq(asprintf(&plan,
			       "{\"id\":\"p1\",\"pools\":[\"web\"],\"target\":{\"ami\":\"%s\"},\"canary\":{\"nodes\":0},"
			       "\"batch\":{\"max_unavailable\":1,\"min_healthy_percent\":50,\"max_surge\":%d,"
			       "\"keep_old_until_bake\":%s},\"health\":{\"min_healthy_time\":\"1s\","
			       "\"healthy_deadline\":\"%s\",\"progress_deadline\":\"90s\"},\"final_bake\":\"1s\"}",
			       str(setup_info, "ami2"), surge, keep_old ? "true" : "false", healthy_deadline),
		      0);
	put("upgrade/plan", plan);
}

static size_t replacement_runs(size_t from, const char *v) {
	return st_replacement_runs(moto, from, v);
}

/* ---- the scenarios ---- */

Test(relaunch_e2e, ami_target_makes_a_version_surges_drains_and_terminates) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	fleet_of_two(&a, &b);
	json_auto_t *r0 = runs();
	size_t before = json_array_size(r0);

	start_plan(false, 1, "20s");
	wait_phase("succeeded");

	json_auto_t *st = get_json("upgrade/state");
	const char *v = str(st, "launch_template_version");
	cr_assert_not_null(v, "no launch template version recorded");
	json_auto_t *made = st_calls(moto, "CreateLaunchTemplateVersion");
	cr_assert_eq(json_array_size(made), 1, "one version for the plan");
	json_t *mp = json_object_get(json_array_get(made, 0), "params");
	cr_assert_str_eq(str(mp, "LaunchTemplateData.ImageId"), str(setup_info, "ami2"));
	cr_assert_str_eq(str(mp, "SourceVersion"), "$Default");
	cr_assert(startswith(str(mp, "ClientToken"), "corral-v-"));
	cr_assert_eq(replacement_runs(before, v), 2, "one replacement per old host");
	/* the old hosts drained, then terminated */
	cr_assert(terminate_named(a) && terminate_named(b), "an old host was not terminated");
	_cleanup_free_ char *ta = states_tagged(a);
	cr_assert_not_null(strstr(ta, "draining"), "%s: %s", a, ta);
	json_auto_t *all = instances();
	json_t *x;
	size_t i, live = 0;
	json_array_foreach(all, i, x)
		if (running(x)) {
			live++;
			cr_assert(startswith(str(x, "token"), "corral-r-"), "an old host still runs: %s", str(x, "id"));
		}
	cr_assert_eq(live, 2);
	/* new capacity after the plan launches on the version it made */
	json_auto_t *stable = get_json("upgrade/stable");
	cr_assert_str_eq(str(stable, "launch_template_version"), v);
	cr_assert_str_eq(str(stable, "ami"), str(setup_info, "ami2"));
	leader_stop(SIGTERM);
}

Test(relaunch_e2e, never_healthy_replacement_halts_and_rollback_undrains_without_launch) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	boots_healthy = replacements_unhealthy;
	fleet_of_two(&a, &b);
	json_auto_t *r0 = runs();
	size_t before = json_array_size(r0);

	start_plan(true, 0, "4s");
	wait_phase("rolled_back");

	json_auto_t *st = get_json("upgrade/state");
	cr_assert_not_null(strstr(str(st, "reason"), "not healthy"), "%s", str(st, "reason"));
	cr_assert_eq(replacement_runs(before, str(st, "launch_template_version")), 1, "only batch 1's replacement");
	/* no surge: the old host of batch 1 drained first, for its replacement,
	 * and came back (its record is ready again; the tag follows best
	 * effort); never terminated */
	json_auto_t *rl = runs();
	const char *old = NULL;
	json_auto_t *recs = st_records(&t, PREFIX);
	const char *k;
	json_t *rec;
	json_object_foreach(recs, k, rec)
		if (str(rec, "replaces"))
			old = str(rec, "replaces");
	cr_assert_not_null(old, "no replacement recorded");
	_cleanup_free_ char *tags = states_tagged(old);
	cr_assert_not_null(strstr(tags, "draining"), "%s was never drained: %s", old, tags);
	cr_assert_str_eq(st_rec_state(recs, a), "ready");
	cr_assert_str_eq(st_rec_state(recs, b), "ready");
	cr_assert_not(terminate_named(a) || terminate_named(b), "an old host was terminated");
	/* the replacement drains and goes; still nothing launched */
	json_object_foreach(recs, k, rec)
		if (str(rec, "replaces"))
			cr_assert(!streq_ptr(str(rec, "state"), "ready"), "the replacement still serves");
	usleep(1200 * 1000);    /* a few more scaler cycles */
	json_auto_t *r2 = runs();
	cr_assert_eq(json_array_size(r2), json_array_size(rl), "a launch after the rollback");
	leader_stop(SIGTERM);
}

Test(relaunch_e2e, leader_killed_mid_batch_launches_nothing_twice) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	fleet_of_two(&a, &b);
	json_auto_t *r0 = runs();
	size_t before = json_array_size(r0);

	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "slow", 1, 1500), 0);
	start_plan(false, 1, "30s");
	cr_assert(hx_wait_until(run_in_flight, (void *) 1, WAIT), "no replacement launch");
	leader_stop(SIGKILL);
	/* the request the dead leader sent still reaches EC2 */
	cr_assert(hx_wait_until(run_in_flight, NULL, WAIT));
	leader_start(take_leadership());
	wait_phase("succeeded");

	json_auto_t *st = get_json("upgrade/state");
	cr_assert_eq(replacement_runs(before, str(st, "launch_template_version")), 2, "a replacement launched twice");
	json_auto_t *all = instances();
	json_auto_t *tokens = json_object();
	json_t *x;
	size_t i, live = 0;
	json_array_foreach(all, i, x) {
		const char *tok = str(x, "token");
		live += running(x);
		if (!tok || !startswith(tok, "corral-r-"))
			continue;       /* the first two came from one launch of 2 */
		cr_assert_null(json_object_get(tokens, tok), "two instances with token %s", tok);
		json_object_set_new(tokens, tok, json_true());
	}
	cr_assert_eq(live, 2);
	cr_assert_eq(json_object_size(tokens), 2, "one instance per replacement");
	json_auto_t *made = st_calls(moto, "CreateLaunchTemplateVersion");
	cr_assert_geq(json_array_size(made), 1);
	leader_stop(SIGTERM);
}

Test(relaunch_e2e, held_host_is_skipped_and_reported) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	fleet_of_two(&a, &b);
	_cleanup_free_ char *hold = NULL;
	cr_assert_geq(asprintf(&hold, "holds/%s", a), 0);
	put(hold, "{\"reason\":\"e2e\"}");
	json_auto_t *r0 = runs();
	size_t before = json_array_size(r0);

	start_plan(false, 1, "20s");
	wait_phase("succeeded");

	json_auto_t *st = get_json("upgrade/state");
	cr_assert_eq(replacement_runs(before, str(st, "launch_template_version")), 1, "only the unheld host");
	cr_assert_not(terminate_named(a), "the held host was terminated");
	cr_assert(terminate_named(b));
	_cleanup_free_ char *ta = states_tagged(a);
	cr_assert_null(strstr(ta, "draining"), "the held host was drained: %s", ta);
	/* reported as `corralctl upgrade status` shows it: the same observe
	 * and decision on the records */
	rollout_snapshot snap;
	rollout_view view;
	rollout_output out;
	char err[256];
	cr_assert_eq(rollout_snapshot_read(t.client, PREFIX, &snap, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rollout_observe(&snap.records, &view), 0);
	cr_assert_eq(rollout_decide(&view.input, &out), 0);
	const char *step = NULL;
	for (size_t i = 0; i < out.n_nodes; i++)
		if (streq(out.nodes[i].id, a))
			step = out.nodes[i].step;
	cr_assert_str_eq(step, "skipped: held");
	rollout_output_done(&out);
	rollout_view_done(&view);
	rollout_snapshot_done(&snap);
	leader_stop(SIGTERM);
}
