/* test_relaunch_cloud.c — replace by relaunch with real corrald processes
 * end to end (issue 15): a real etcd, moto behind tests/ec2proxy.py, three
 * corrald core nodes (the leader among them runs the scaler and the rollout
 * loop, corrald handing the loop its EC2 client) and the harness playing
 * the cloud (hx_cloud): every instance moto runs for the cluster boots a
 * corrald of its own from the user data, registers as that instance (IMDS),
 * reports load and runs its wind-down hook. The plan is started the way an
 * operator does, with `corralctl upgrade start --ami ... --pool web`.
 *
 * Proved here (docs/upgrades.md, "Replace by relaunch"):
 *   - an AMI target makes exactly one launch template version; each old
 *     host gets one replacement launched on that numbered version (never
 *     $Latest) with a corral-r- ClientToken, which boots as a real corrald
 *     and registers; the old hosts drain (their wind-down hook ran) and are
 *     terminated; the plan succeeds and upgrade/stable names the version;
 *   - the leader corrald SIGKILLed while a replacement's RunInstances is in
 *     flight: the next leader launches nothing twice (one RunInstances and
 *     one instance per token) and the plan finishes.
 * test_relaunch_e2e.c keeps the cases that need test-controlled hosts (a
 * replacement that never becomes healthy, a held host). Every wait has a
 * deadline; every process is stopped at the end. */
#include <jansson.h>
#include <signal.h>

#include "scale-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define CORE    3
#define WAIT    (60 * USEC_PER_SEC)

static hx_etcd *etcd;
static hx_moto *moto;
static hx_cloud *cloud;
static hx_proc *core[CORE];
static json_t *setup_info;              /* the proxy's launch template, subnet, AMIs */
static char *dir;
static et t;

static const char *str(json_t *o, const char *k) {
	return json_string_value(json_object_get(o, k));
}

static json_t *get_json(const char *sub) {
	return st_get_json(&t, PREFIX, sub);
}

static void step(const char *what) {
	static uint64_t t0;
	if (!t0)
		t0 = hx_now_usec();
	fprintf(stderr, "relaunch-cloud: %6.1f s: %s\n", (double) (hx_now_usec() - t0) / USEC_PER_SEC, what);
}

/* ---- the cloud ---- */

static json_t *live(void) {
	return st_live(moto, CLUSTER);
}

static bool registered(const char *id) {
	return st_registered(&t, PREFIX, id, "web");
}

static bool is_replacement(json_t *x) {
	const char *tok = str(x, "token");
	return tok && startswith(tok, "corral-r-");
}

/* n hosts live, each with a corrald running and registered; replaced:
 * every one of them a replacement, the plan succeeded. */
typedef struct want {
	size_t n;
	bool replaced;
} want;

static bool fleet_is(void *ud) {
	want *w = ud;
	hx_cloud_poll(cloud);
	json_auto_t *l = live();
	json_t *x;
	size_t i;
	if (json_array_size(l) != w->n || hx_cloud_hosts(cloud) != w->n)
		return false;
	json_array_foreach(l, i, x)
		if (!registered(str(x, "id")) || (w->replaced && !is_replacement(x)))
			return false;
	if (!w->replaced)
		return true;
	json_auto_t *s = get_json("upgrade/state");
	return streq_ptr(str(s, "phase"), "succeeded");
}

static void wait_fleet(size_t n, bool replaced, const char *what) {
	want w = { n, replaced };
	if (!hx_wait_until(fleet_is, &w, WAIT)) {
		json_auto_t *s = get_json("upgrade/state");
		json_auto_t *recs = st_records(&t, PREFIX);
		_cleanup_free_ char *a = json_dumps(s, JSON_INDENT(1)), *b = json_dumps(recs, JSON_INDENT(1)), *c = NULL;
		(void) hx_corralctl(hx_etcd_endpoints(etcd), &c, (char *const[]){ "upgrade", "status", NULL });
		cr_assert_fail("%s: not reached (%zu corralds); state:\n%s\nhosts:\n%s\nupgrade status:\n%s", what,
			       hx_cloud_hosts(cloud), a ?: "-", b ?: "-", c ?: "-");
	}
}

static bool run_in_flight(void *ud) {
	json_auto_t *f = NULL;
	hx_cloud_poll(cloud);
	cr_assert_eq(hx_moto_inflight(moto, &f), 0);
	return json_integer_value(json_object_get(f, "RunInstances")) > 0;
}

/* ---- set-up ---- */

static void up(void) {
	dir = hx_mkdtemp("relaunch-cloud");
	cr_assert_not_null(dir);
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(hx_moto_setup(moto, &setup_info), 0);
	cr_assert_not_null(str(setup_info, "ami2"));
	hx_cloud_options o = { .moto = moto, .cluster = CLUSTER, .endpoints = hx_etcd_endpoints(etcd), .dir = dir,
			       .capacity = 4, .more = "scale_interval: 1s\nlaunch_grace: 5s\n" };
	cr_assert_eq(hx_cloud_new(&cloud, &o), 0);
}

static void down(void) {
	for (int i = 0; i < CORE; i++)
		core[i] = hx_proc_free(core[i]);
	cloud = hx_cloud_free(cloud);
	json_decref(setup_info);
	setup_info = NULL;
	et_close(&t);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

TestSuite(relaunch_cloud, .init = up, .fini = down, .timeout = 180);

/* Pool web fixed at 2 hosts (max 3), the core nodes up; both hosts boot
 * from user data and register. Their ids in a and b. */
static void fleet_of_two(char **a, char **b) {
	_cleanup_free_ char *policy = st_fixed_web_policy(setup_info, 2, 3);
	st_put(&t, PREFIX, "scale/policy", policy);
	step("start");
	for (int i = 0; i < CORE; i++) {
		char name[16];
		snprintf(name, sizeof name, "n%d", i + 1);
		cr_assert_eq(hx_cloud_start_node(cloud, name, &core[i]), 0);
	}
	wait_fleet(2, false, "2 hosts registered");
	json_auto_t *l = live();
	step("2 hosts");
	*a = strdup(str(json_array_get(l, 0), "id"));
	*b = strdup(str(json_array_get(l, 1), "id"));
	cr_assert(*a && *b);
}

/* corralctl upgrade start for the proxy's second AMI on pool web: no
 * canary, one host at a time with one surge, 1 s health and bake. */
static void start_plan(void) {
	_cleanup_free_ char *out = NULL;
	char *const args[] = { "upgrade", "start", "--id", "p1", "--ami", (char *) str(setup_info, "ami2"), "--pool",
			       "web", "--canary", "0", "--max-unavailable", "1", "--min-healthy-percent", "50",
			       "--max-surge", "1", "--min-healthy-time", "1s", "--healthy-deadline", "30s",
			       "--progress-deadline", "90s", "--final-bake", "1s", NULL };
	int r = hx_corralctl(hx_etcd_endpoints(etcd), &out, args);
	cr_assert_eq(r, 0, "corralctl upgrade start: %d: %s", r, out ?: "");
	step("plan started");
}

/* After the plan: the old hosts drained (hook ran), terminated, their
 * corrald stopped; upgrade/stable names the version and the AMI; the
 * version made once, from $Default with the AMI; returns the version. */
static char *expect_replaced(const char *a, const char *b) {
	json_auto_t *st = get_json("upgrade/state");
	const char *v = str(st, "launch_template_version");
	cr_assert_not_null(v, "no launch template version recorded");
	cr_assert_neq(strcmp(v, "$Latest"), 0);
	json_auto_t *made = st_calls(moto, "CreateLaunchTemplateVersion");
	cr_assert_eq(json_array_size(made), 1, "one version for the plan, not %zu", json_array_size(made));
	json_t *mp = json_object_get(json_array_get(made, 0), "params");
	cr_assert_str_eq(str(mp, "LaunchTemplateData.ImageId"), str(setup_info, "ami2"));
	cr_assert_str_eq(str(mp, "SourceVersion"), "$Default");
	cr_assert(startswith(str(mp, "ClientToken"), "corral-v-"));
	const char *old[] = { a, b };
	for (size_t i = 0; i < ELEMENTSOF(old); i++) {
		cr_assert(st_terminated_at(moto, old[i]) > 0, "old host %s not terminated", old[i]);
		cr_assert_geq(hx_cloud_wound_down(cloud, old[i]), 1, "%s terminated without its wind-down hook", old[i]);
		cr_assert_eq(hx_cloud_host_state(cloud, old[i]), 0, "%s: its corrald still runs", old[i]);
	}
	json_auto_t *stable = get_json("upgrade/stable");
	cr_assert_str_eq(str(stable, "launch_template_version"), v);
	cr_assert_str_eq(str(stable, "ami"), str(setup_info, "ami2"));
	return strdup(v);
}

/* Each replacement is one instance with its own token (among every
 * instance moto ever ran), booted by the cloud as a corrald that
 * registered; none of them wound down. */
static void expect_replacements_serve(void) {
	json_auto_t *all = NULL;
	json_auto_t *ever = json_object();
	json_t *x;
	size_t i;
	cr_assert_eq(hx_moto_instances(moto, &all), 0);
	json_array_foreach(all, i, x) {
		if (!is_replacement(x))
			continue;
		cr_assert_null(json_object_get(ever, str(x, "token")), "two instances with token %s", str(x, "token"));
		json_object_set_new(ever, str(x, "token"), json_true());
	}
	cr_assert_eq(json_object_size(ever), 2, "one instance per replacement, not %zu", json_object_size(ever));

	json_auto_t *l = live();
	cr_assert_eq(json_array_size(l), 2);
	json_array_foreach(l, i, x) {
		const char *id = str(x, "id"), *tok = str(x, "token");
		cr_assert(is_replacement(x), "%s is no replacement (token %s)", id, tok ?: "-");
		cr_assert_eq(hx_cloud_host_state(cloud, id), 1);
		cr_assert(registered(id));
		cr_assert_eq(hx_cloud_wound_down(cloud, id), 0, "replacement %s drained", id);
	}
}

/* ---- the scenarios ---- */

Test(relaunch_cloud, ami_target_replaces_every_host_with_real_corralds) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	fleet_of_two(&a, &b);
	json_auto_t *r0 = st_calls(moto, "RunInstances");
	size_t before = json_array_size(r0);

	start_plan();
	wait_fleet(2, true, "every host replaced");
	step("replaced");

	_cleanup_free_ char *v = expect_replaced(a, b);
	cr_assert_eq(st_replacement_runs(moto, before, v), 2, "one launch per old host");
	expect_replacements_serve();
}

Test(relaunch_cloud, leader_killed_mid_launch_launches_nothing_twice) {
	_cleanup_free_ char *a = NULL, *b = NULL;
	fleet_of_two(&a, &b);
	json_auto_t *r0 = st_calls(moto, "RunInstances");
	size_t before = json_array_size(r0);
	_cleanup_free_ char *first = st_leader(&t, PREFIX);
	cr_assert(first && startswith(first, "n"), "a core node leads first, not %s", first ?: "-");

	/* The first replacement's launch is held at the proxy; moto still
	 * starts the instance after the leader is gone. */
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "slow", 1, 1500), 0);
	start_plan();
	cr_assert(hx_wait_until(run_in_flight, NULL, WAIT), "no replacement launch");
	int killed = first[1] - '1';
	cr_assert(killed >= 0 && killed < CORE);
	cr_assert_eq(hx_proc_signal(core[killed], SIGKILL), 0);
	step("leader killed mid-launch");

	wait_fleet(2, true, "every host replaced after the fail-over");
	step("replaced");
	_cleanup_free_ char *second = st_leader(&t, PREFIX);
	cr_assert(second && !streq(second, first), "no new leader");

	_cleanup_free_ char *v = expect_replaced(a, b);
	cr_assert_eq(st_replacement_runs(moto, before, v), 2, "a replacement launched twice");
	expect_replacements_serve();
}
