/* test_warm_e2e.c — the warm pool end to end (issue 17): a real etcd, moto
 * behind tests/ec2proxy.py, two core corralds (either may lead) and the
 * harness playing the cloud (hx_cloud: each instance boots a corrald from
 * its user data, stops it when the instance stops, runs it again when it is
 * started). A pool of policy demand with a warm pool of 2:
 *   1. the leader fills the pool: two warm launches, their nodes register,
 *      they are stopped (moto stopped, records stopped);
 *   2. demand rises: the stopped hosts are started first (StartInstances),
 *      register again, and only the rest is launched;
 *   3. demand falls: drained hosts return to the pool (stopped) up to its
 *      size, the surplus is terminated (launches fail meanwhile, at the
 *      proxy, so the pool has room: else it would have been refilled);
 *   4. the pool grows by one and the leader is SIGKILLed while that warm
 *      launch is in flight: its successor adopts the instance, no second
 *      launch. Every wait has a deadline; every process is stopped. */
#include <jansson.h>
#include <signal.h>

#include "scale-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define CORE    2
#define WAIT    (60 * USEC_PER_SEC)

static hx_etcd *etcd;
static hx_moto *moto;
static hx_cloud *cloud;
static hx_proc *core[CORE];
static char *dir;
static et t;

static void put(const char *sub, const char *value) {
	st_put(&t, PREFIX, sub, value);
}

static json_t *records(void) {
	return st_records(&t, PREFIX);
}

static void step(const char *what) {
	static uint64_t t0;
	if (!t0)
		t0 = hx_now_usec();
	fprintf(stderr, "warm e2e: %6.1f s: %s\n", (double) (hx_now_usec() - t0) / USEC_PER_SEC, what);
}

/* The cluster's instances in moto by state: {"running": [ids], ...}. */
static json_t *by_state(void) {
	json_auto_t *all = NULL;
	json_t *out = json_object(), *x;
	size_t i;
	cr_assert_eq(hx_moto_instances(moto, &all), 0);
	json_array_foreach(all, i, x) {
		const char *st = json_string_value(json_object_get(x, "state"));
		if (!streq_ptr(json_string_value(json_object_get(json_object_get(x, "tags"), "corral:cluster")), CLUSTER))
			continue;
		if (!json_object_get(out, st))
			json_object_set_new(out, st, json_array());
		json_array_append(json_object_get(out, st), json_object_get(x, "id"));
	}
	return out;
}

static size_t n_in(json_t *states, const char *state) {
	return json_array_size(json_object_get(states, state));
}

static bool has(json_t *ids, const char *id) {
	json_t *v;
	size_t i;
	json_array_foreach(ids, i, v)
		if (streq_ptr(json_string_value(v), id))
			return true;
	return false;
}

/* Ids of the records in state (new reference). */
static json_t *ids_in(json_t *recs, const char *state) {
	json_t *out = json_array(), *v;
	const char *k;
	json_object_foreach(recs, k, v)
		if (streq_ptr(st_rec_state(recs, k), state))
			json_array_append_new(out, json_string(k));
	return out;
}

typedef struct want {
	size_t ready, stopped;  /* records; ready ones registered, stopped ones stopped in moto */
	size_t running;         /* instances pending or running in moto = corralds running */
} want;

static bool fleet_is(void *ud) {
	want *w = ud;
	hx_cloud_poll(cloud);
	json_auto_t *recs = records(), *st = by_state();
	json_auto_t *ready = ids_in(recs, "ready"), *stopped = ids_in(recs, "stopped");
	json_t *v;
	size_t i;
	if (json_array_size(ready) != w->ready || json_array_size(stopped) != w->stopped ||
	    n_in(st, "running") + n_in(st, "pending") != w->running || hx_cloud_hosts(cloud) != w->running)
		return false;
	json_array_foreach(ready, i, v)
		if (!st_registered(&t, PREFIX, json_string_value(v), "web"))
			return false;
	json_array_foreach(stopped, i, v)
		if (!has(json_object_get(st, "stopped"), json_string_value(v)))
			return false;
	return true;
}

static void wait_fleet(size_t ready, size_t stopped, size_t running, const char *what) {
	want w = { ready, stopped, running };
	if (!hx_wait_until(fleet_is, &w, WAIT)) {
		json_auto_t *recs = records(), *st = by_state();
		_cleanup_free_ char *a = json_dumps(recs, JSON_INDENT(1)), *b = json_dumps(st, 0);
		cr_assert_fail("%s: wanted %zu ready / %zu stopped / %zu running; records:\n%s\nmoto: %s", what, ready,
			       stopped, running, a, b);
	}
}

/* Ids named by the proxy's calls of action from index `from` on. */
static json_t *named(const char *action, size_t from) {
	json_auto_t *calls = st_calls(moto, action);
	json_t *out = json_array(), *v;
	const char *k;
	for (size_t i = from; i < json_array_size(calls); i++) {
		json_t *c = json_array_get(calls, i);
		if (json_integer_value(json_object_get(c, "status")) != 200)
			continue;
		json_object_foreach(json_object_get(c, "params"), k, v)
			if (startswith(k, "InstanceId."))
				json_array_append(out, v);
	}
	return out;
}

static size_t n_calls(const char *action) {
	json_auto_t *c = st_calls(moto, action);
	return json_array_size(c);
}

static size_t logs_say(const char *needle) {
	return st_logs_say(dir, needle);
}

static bool run_in_flight(void *ud) {
	json_auto_t *f = NULL;
	cr_assert_eq(hx_moto_inflight(moto, &f), 0);
	return json_integer_value(json_object_get(f, "RunInstances")) > 0;
}

static void up(void) {
	dir = hx_mkdtemp("warm-e2e");
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

TestSuite(warm_e2e, .init = up, .fini = down, .timeout = 300);

static char *policy(json_t *setup, int warm) {
	char *p = NULL;
	cr_assert_geq(asprintf(&p,
			       "{\"pools\": {\"web\": {\"launch_template\": \"%s\", \"instance_types\": [\"t3.micro\"],"
			       " \"subnets\": [{\"id\": \"%s\", \"availability_zone\": \"%s\"}],"
			       " \"markets\": [\"on-demand\"], \"policy\": \"demand\", \"min\": 0, \"max\": 4,"
			       " \"jobs_per_host\": 4, \"warm_pool\": {\"size\": %d, \"refill_after\": 0},"
			       " \"scale_in_after\": 0,"
			       " \"scale_in_cooldown\": 0, \"min_lifetime\": 0}}}",
			       json_string_value(json_object_get(setup, "launch_template")),
			       json_string_value(json_object_get(setup, "subnet")),
			       json_string_value(json_object_get(setup, "az")), warm),
		      0);
	return p;
}

Test(warm_e2e, fill_start_return_and_failover) {
	json_auto_t *setup = NULL;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	_cleanup_free_ char *p2 = policy(setup, 2), *p3 = policy(setup, 3);
	put("scale/policy", p2);
	for (int i = 0; i < CORE; i++) {
		char name[16];
		snprintf(name, sizeof name, "n%d", i + 1);
		cr_assert_eq(hx_cloud_start_node(cloud, name, &core[i]), 0);
	}

	step("start");
	/* 1. Fill: two warm launches register, then are stopped. */
	wait_fleet(0, 2, 0, "the warm pool filled");
	json_auto_t *recs1 = records();
	json_auto_t *pool1 = ids_in(recs1, "stopped");
	json_t *v;
	size_t i;
	json_array_foreach(pool1, i, v) {
		const char *id = json_string_value(v);
		cr_assert_eq(hx_cloud_host_state(cloud, id), 0, "%s: its corrald never ran or still runs", id);
		cr_assert_null(json_object_get(json_object_get(recs1, id), "warm"), "%s: still warm once stopped", id);
	}
	json_auto_t *stops1 = named("StopInstances", 0);
	cr_assert_eq(json_array_size(stops1), 2);
	size_t runs1 = n_calls("RunInstances");

	step("pool full");
	/* 2. Demand rises: 6 jobs waiting -> 6 + 2*sqrt(6) = 10.9 slots -> 3
	 * hosts: the two stopped ones are started, one is launched. The
	 * launch is slowed at the proxy; while it is in flight, launches
	 * start failing (capacity), so the refill of the pool fails and the
	 * pool has room when demand falls. */
	size_t starts0 = n_calls("StartInstances");
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "slow", 1, 700), 0);
	put("scale/queue/web", "6");
	cr_assert(hx_wait_until(run_in_flight, NULL, WAIT), "no launch for the rest of the demand");
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "capacity", -1, 0), 0);
	wait_fleet(3, 0, 3, "3 hosts for 6 jobs waiting");
	json_auto_t *started = named("StartInstances", starts0);
	cr_assert_eq(json_array_size(started), 2, "StartInstances named %zu ids", json_array_size(started));
	json_array_foreach(pool1, i, v)
		cr_assert(has(started, json_string_value(v)), "%s was not started", json_string_value(v));
	json_auto_t *recs2 = records();
	json_auto_t *ready2 = ids_in(recs2, "ready");
	json_array_foreach(pool1, i, v)
		cr_assert(has(ready2, json_string_value(v)), "started host %s not ready", json_string_value(v));
	json_auto_t *runs2 = st_calls(moto, "RunInstances");
	size_t launched = 0;
	for (size_t k = runs1; k < json_array_size(runs2); k++)
		launched += json_integer_value(json_object_get(json_array_get(runs2, k), "status")) == 200;
	cr_assert_eq(launched, 1, "only the rest launched: %zu launches", launched);
	cr_assert_eq(hx_cloud_host_state(cloud, json_string_value(json_array_get(pool1, 0))), 1);

	step("3 hosts");
	/* 3. Demand falls: all three drain; two return to the pool (stopped),
	 * the third is terminated. */
	size_t stops_before = n_calls("StopInstances");
	put("scale/queue/web", "0");
	wait_fleet(0, 2, 0, "scaled in to the warm pool");
	json_auto_t *returned = named("StopInstances", stops_before);
	cr_assert_eq(json_array_size(returned), 2, "%zu hosts returned to the pool", json_array_size(returned));
	json_auto_t *recs3 = records(), *st3 = by_state();
	size_t surplus = 0;
	json_array_foreach(ready2, i, v) {
		const char *id = json_string_value(v);
		if (has(returned, id))
			cr_assert_str_eq(st_rec_state(recs3, id), "stopped");
		else {
			surplus++;
			cr_assert_gt(st_terminated_at(moto, id), 0, "surplus host %s not terminated", id);
		}
	}
	cr_assert_eq(surplus, 1);
	cr_assert_eq(n_in(st3, "running") + n_in(st3, "pending"), 0);

	step("scaled in");
	/* 4. The pool grows to 3: one warm launch, slowed; its leader is
	 * killed while it is in flight. The successor adopts it. */
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "slow", 1, 700), 0);
	size_t runs4 = n_calls("RunInstances");
	_cleanup_free_ char *leader = st_leader(&t, PREFIX);
	cr_assert(leader && startswith(leader, "n"), "a core node leads, not %s", leader ?: "none");
	put("scale/policy", p3);
	cr_assert(hx_wait_until(run_in_flight, NULL, WAIT), "no warm launch for the bigger pool");
	cr_assert_eq(hx_proc_signal(core[leader[1] - '1'], SIGKILL), 0);
	step("leader killed mid-fill");
	wait_fleet(0, 3, 0, "the pool of 3 filled after the fail-over");
	_cleanup_free_ char *next = st_leader(&t, PREFIX);
	cr_assert(next && !streq(next, leader), "no new leader");
	cr_assert_eq(n_calls("RunInstances"), runs4 + 1, "a second launch after the fail-over");
	json_auto_t *st4 = by_state();
	cr_assert_eq(n_in(st4, "stopped"), 3, "a duplicate instance");
	cr_assert_eq(logs_say("scale: adopt pool=web "), 1, "the successor did not adopt the launch");
	cr_assert_geq(logs_say("scale: start instance="), 2);
	cr_assert_geq(logs_say("reason=\"returned to the warm pool\""), 2);
	step("done");
}
