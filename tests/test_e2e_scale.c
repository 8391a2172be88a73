/* test_e2e_scale.c — the autoscaler end to end (issue 5): a real etcd,
 * moto behind tests/ec2proxy.py, three corrald processes as the core nodes,
 * and the harness playing the cloud (hx_cloud): every instance moto runs for
 * the cluster boots a corrald of its own from the user data scripts/user-data
 * generates (no instance id, node id, address or pool in it), which learns
 * who it is from its instance's metadata, registers as that instance,
 * reports the load the test writes for it and runs its wind-down hook.
 *
 * One scenario, in the order an operator would live it: the fleet starts at
 * min; load rises and hosts launch and register; the leader is SIGKILLed
 * while a RunInstances is in flight and the next leader finishes the
 * scale-up without a second launch; load falls and hosts drain, wind down
 * and are terminated no earlier than the hourly billing threshold; a held
 * host survives `cluster stop`; an orphan tagged instance is terminated.
 * Every wait has a deadline; every process is stopped at the end. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "ec2xml.h"
#include "scale-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define CORE    3
#define HOURLY_THRESHOLD 20     /* s into the billed hour before an idle host goes */
#define WAIT    (60 * USEC_PER_SEC)

static hx_etcd *etcd;
static hx_moto *moto;
static hx_cloud *cloud;
static hx_proc *core[CORE];
static char *dir;
static et t;

/* ---- etcd ---- */

static void put(const char *sub, const char *value) {
	st_put(&t, PREFIX, sub, value);
}

static json_t *get_json(const char *sub) {
	return st_get_json(&t, PREFIX, sub);
}

static json_t *records(void) {
	return st_records(&t, PREFIX);
}

/* Its pool is the corral:pool tag. */
static bool registered(const char *id) {
	return st_registered(&t, PREFIX, id, "web");
}

static char *leader_node(void) {
	return st_leader(&t, PREFIX);
}

/* ---- the cloud ---- */

/* The cluster's instances, pending or running: [{"id", "token", ...}]. */
static json_t *live(void) {
	return st_live(moto, CLUSTER);
}

static time_t launch_time_of(const char *id) {
	json_auto_t *all = NULL;
	json_t *x;
	size_t i;
	time_t t0 = 0;
	cr_assert_eq(hx_moto_instances(moto, &all), 0);
	json_array_foreach(all, i, x)
		if (streq_ptr(json_string_value(json_object_get(x, "id")), id))
			cr_assert_eq(ec2xml_parse_time(json_string_value(json_object_get(x, "launch_time")), &t0), 0);
	return t0;
}

static double terminated_at(const char *id) {
	return st_terminated_at(moto, id);
}

/* No TerminateInstances so far named an instance that is still live: the
 * consistency loop took every booted node for its host, none for an orphan. */
static void expect_live_not_terminated(const char *when) {
	json_auto_t *l = live();
	json_t *x;
	size_t i;
	json_array_foreach(l, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		cr_assert_eq(terminated_at(id), 0, "%s: live instance %s was terminated", when, id);
	}
}

/* ---- conditions (each looks at the cloud first) ---- */

typedef struct want {
	size_t ready;           /* ready records, each with its corrald registered */
	size_t live;            /* instances pending or running, = corralds running */
} want;

static bool fleet_is(void *ud) {
	want *w = ud;
	hx_cloud_poll(cloud);
	json_auto_t *recs = records();
	json_auto_t *l = live();
	const char *k;
	json_t *v;
	if (st_count_state(recs, "ready") != w->ready || json_array_size(l) != w->live || hx_cloud_hosts(cloud) != w->live)
		return false;
	json_object_foreach(recs, k, v)
		if (streq_ptr(json_string_value(json_object_get(v, "state")), "ready") && !registered(k))
			return false;
	return true;
}

static void wait_fleet(size_t ready, size_t nlive, const char *what) {
	want w = { ready, nlive };
	if (!hx_wait_until(fleet_is, &w, WAIT)) {
		json_auto_t *recs = records();
		_cleanup_free_ char *text = json_dumps(recs, JSON_INDENT(1));
		cr_assert_fail("%s: wanted %zu ready / %zu live, have %zu ready / %zu corralds; records:\n%s", what, ready,
			       nlive, st_count_state(recs, "ready"), hx_cloud_hosts(cloud), text);
	}
}

static bool run_instances_in_flight(void *ud) {
	json_auto_t *f = NULL;
	cr_assert_eq(hx_moto_inflight(moto, &f), 0);
	return json_integer_value(json_object_get(f, "RunInstances")) > 0;
}

static bool gone_from_cloud(void *ud) {
	const char *id = ud;
	hx_cloud_poll(cloud);
	return hx_cloud_host_state(cloud, id) == 0;
}

static bool stop_decided(void *ud) {
	json_auto_t *m = get_json("scale/metrics");
	return json_is_true(json_object_get(json_object_get(m, "inputs"), "stop"));
}

static size_t logs_say(const char *needle) {
	return st_logs_say(dir, needle);
}

static void step(const char *what) {
	static uint64_t t0;
	if (!t0)
		t0 = hx_now_usec();
	fprintf(stderr, "e2e: %6.1f s: %s\n", (double) (hx_now_usec() - t0) / USEC_PER_SEC, what);
}

/* ---- set-up ---- */

static void start_core(int i) {
	char name[16];
	snprintf(name, sizeof name, "n%d", i + 1);
	cr_assert_eq(hx_cloud_start_node(cloud, name, &core[i]), 0);
}

static void up(void) {
	dir = hx_mkdtemp("e2e-scale");
	cr_assert_not_null(dir);
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	hx_cloud_options o = { .moto = moto, .cluster = CLUSTER, .endpoints = hx_etcd_endpoints(etcd), .dir = dir,
			       .capacity = 4, .more = "scale_interval: 1s\nlaunch_grace: 5s\n" };
	cr_assert_eq(hx_cloud_new(&cloud, &o), 0);
}

static void down(void) {
	for (int i = 0; i < CORE; i++)
		core[i] = hx_proc_free(core[i]);
	cloud = hx_cloud_free(cloud);
	et_close(&t);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

TestSuite(e2e_scale, .init = up, .fini = down, .timeout = 400);

/* ---- the scenario ---- */

Test(e2e_scale, fleet_follows_load_through_failover_hold_and_stop) {
	json_auto_t *setup = NULL;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	_cleanup_free_ char *policy = NULL;
	cr_assert_geq(asprintf(&policy,
			       "{\"pools\": {\"web\": {\"launch_template\": \"%s\", \"instance_types\": [\"t3.micro\"],"
			       " \"subnets\": [{\"id\": \"%s\", \"availability_zone\": \"%s\"}],"
			       " \"markets\": [\"on-demand\"], \"min\": 1, \"max\": 4, \"jobs_per_host\": 4,"
			       " \"scale_in_after\": 0, \"scale_in_cooldown\": 0, \"billing\": \"hourly\","
			       " \"hourly_threshold\": %d}}}",
			       json_string_value(json_object_get(setup, "launch_template")),
			       json_string_value(json_object_get(setup, "subnet")),
			       json_string_value(json_object_get(setup, "az")), HOURLY_THRESHOLD),
		      0);
	put("scale/policy", policy);
	for (int i = 0; i < CORE; i++)
		start_core(i);

	step("start");
	/* 1. No load: the fleet is at min, one host, and it registered. */
	wait_fleet(1, 1, "the fleet at min");
	json_auto_t *l1 = live();
	_cleanup_free_ char *a = strdup(json_string_value(json_object_get(json_array_get(l1, 0), "id")));
	cr_assert(registered(a));
	/* It advertises the private address its metadata gave. */
	_cleanup_free_ char *ka = NULL;
	cr_assert_geq(asprintf(&ka, "nodes/%s", a), 0);
	json_auto_t *na = get_json(ka);
	cr_assert_str_eq(json_string_value(json_object_get(na, "address")),
			 json_string_value(json_object_get(json_array_get(l1, 0), "private_ip")));
	expect_live_not_terminated("at min");

	step("at min");
	/* 2. Load rises on it: 4 jobs -> 4 + 2*sqrt(4) = 8 slots -> 2 hosts. */
	cr_assert_eq(hx_cloud_set_jobs(cloud, a, 4), 0);
	wait_fleet(2, 2, "one host more for 4 jobs");
	expect_live_not_terminated("2 hosts");

	step("2 hosts");
	/* 3. Both busy: 8 jobs -> 8 + 2*sqrt(8) = 13.7 slots -> 4 hosts (max).
	 * The launch is slowed down at the proxy and the leader is killed
	 * while it is in flight; moto still starts the instances. */
	_cleanup_free_ char *first_leader = leader_node();
	cr_assert_not_null(first_leader);
	cr_assert(startswith(first_leader, "n"), "a core node leads first, not %s", first_leader);
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "slow", 1, 700), 0);
	json_auto_t *runs0 = st_calls(moto, "RunInstances");
	size_t runs_before = json_array_size(runs0);
	cr_assert_eq(hx_cloud_set_all_jobs(cloud, 4), 0);
	cr_assert(hx_wait_until(run_instances_in_flight, NULL, WAIT), "the leader did not launch for 8 jobs");
	int killed = first_leader[1] - '1';
	cr_assert(killed >= 0 && killed < CORE);
	cr_assert_eq(hx_proc_signal(core[killed], SIGKILL), 0);
	step("leader killed mid-launch");
	wait_fleet(4, 4, "4 hosts after the leader was killed mid-launch");

	step("4 hosts");
	expect_live_not_terminated("4 hosts");
	_cleanup_free_ char *second_leader = leader_node();
	cr_assert(second_leader && !streq(second_leader, first_leader), "no new leader");
	json_auto_t *runs = st_calls(moto, "RunInstances");
	json_auto_t *l3 = live();
	cr_assert_eq(json_array_size(l3), 4, "a duplicate launch");
	/* Every instance's token was sent once: the new leader adopted the
	 * instances of the launch that was cut off instead of launching again. */
	json_t *x;
	size_t i;
	json_array_foreach(l3, i, x) {
		const char *tok = json_string_value(json_object_get(x, "token"));
		size_t sent = 0, j;
		json_t *c;
		cr_assert_not_null(tok);
		json_array_foreach(runs, j, c)
			sent += streq_ptr(json_string_value(json_object_get(json_object_get(c, "params"), "ClientToken")), tok);
		cr_assert_eq(sent, 1, "token %s sent %zu times", tok, sent);
	}
	cr_assert_eq(json_array_size(runs), runs_before + 1, "RunInstances again after the fail-over");

	/* 4. Hold one of the new hosts; the load falls everywhere. */
	const char *held = NULL;
	json_array_foreach(l3, i, x)
		if (!streq(json_string_value(json_object_get(x, "id")), a))
			held = json_string_value(json_object_get(x, "id"));
	_cleanup_free_ char *held_id = strdup(held);
	_cleanup_free_ char *hold_key = NULL;
	cr_assert_geq(asprintf(&hold_key, "holds/%s", held_id), 0);
	put(hold_key, "{\"reason\": \"e2e\"}");
	cr_assert_eq(hx_cloud_set_all_jobs(cloud, 0), 0);
	step("load falls");
	/* min 1 is met by the held host: the other three drain and go. */
	wait_fleet(1, 1, "scale-in to the held host");
	cr_assert_eq(hx_cloud_host_state(cloud, held_id), 1, "the held host was stopped");
	size_t drains = 0;
	json_array_foreach(l3, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		if (streq(id, held_id))
			continue;
		cr_assert_geq(hx_cloud_wound_down(cloud, id), 1, "%s terminated without its wind-down hook", id);
		double at = terminated_at(id);
		time_t launched = launch_time_of(id);
		cr_assert_gt(at, 0, "%s: no TerminateInstances", id);
		cr_assert_geq((long) ((long) at - launched) % 3600, HOURLY_THRESHOLD,
			      "%s terminated %ld s into its billed hour", id, (long) at - launched);
		/* the leader said so, a line each, naming the host and why */
		_cleanup_free_ char *terminated = hx_fmt("scale: terminate instance=%s ", id);
		_cleanup_free_ char *drained = hx_fmt("scale: drain instance=%s ", id);
		cr_assert_geq(logs_say(terminated), 1, "no \"%s\" line", terminated);
		drains += logs_say(drained) > 0;
	}
	cr_assert_eq(hx_cloud_wound_down(cloud, held_id), 0, "the held host was drained");
	cr_assert_eq(drains, json_array_size(l3) - 1, "a host went without a \"scale: drain instance=...\" line");
	cr_assert_geq(logs_say(" pool=web from=ready to=draining reason="), 1);

	step("scaled in");
	/* 5. An instance tagged for the cluster that corral did not launch:
	 * terminated once the launch grace has passed. */
	json_auto_t *orphan = NULL;
	cr_assert_eq(hx_moto_run(moto, "{\"tags\": {\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}}", &orphan), 0);
	const char *orphan_id = json_string_value(json_object_get(orphan, "id"));
	cr_assert_not_null(orphan_id);
	cr_assert(hx_wait_until(gone_from_cloud, (void *) orphan_id, WAIT), "the orphan was not terminated");
	cr_assert_gt(terminated_at(orphan_id), 0);
	_cleanup_free_ char *orphan_line = hx_fmt("scale: terminate instance=%s cluster=t reason=orphan", orphan_id);
	cr_assert_geq(logs_say(orphan_line), 1, "no \"%s\" line", orphan_line);

	step("orphan gone");
	/* 6. Work on the held host brings a second one; then cluster stop:
	 * everything drains but the held host. */
	cr_assert_eq(hx_cloud_set_jobs(cloud, held_id, 4), 0);
	wait_fleet(2, 2, "a second host for 4 jobs");
	json_auto_t *l5 = live();
	_cleanup_free_ char *other = NULL;
	json_array_foreach(l5, i, x)
		if (!streq(json_string_value(json_object_get(x, "id")), held_id))
			other = strdup(json_string_value(json_object_get(x, "id")));
	cr_assert_not_null(other);
	step("2 hosts again");
	put("scale/stop", "{\"reason\": \"e2e\"}");
	cr_assert(hx_wait_until(stop_decided, NULL, WAIT), "no decision saw the cluster stop");
	wait_fleet(1, 1, "cluster stop");
	expect_live_not_terminated("cluster stop");
	cr_assert_eq(hx_cloud_host_state(cloud, other), 0, "the unheld host still runs");
	cr_assert_geq(hx_cloud_wound_down(cloud, other), 1);
	json_auto_t *l6 = live();
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(l6, 0), "id")), held_id);
	json_auto_t *recs = records();
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(recs, held_id), "state")), "ready");
	cr_assert(registered(held_id));

	step("cluster stopped");
	/* The scaling metrics say the same. */
	json_auto_t *m = get_json("scale/metrics");
	json_t *web = json_object_get(json_object_get(m, "pools"), "web");
	cr_assert_not_null(web);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(web, "hosts"), "ready")), 1);
	cr_assert_eq(json_integer_value(json_object_get(web, "desired_hosts")), 0);
}
