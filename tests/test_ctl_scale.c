/* test_ctl_scale.c — corralctl's scaling commands, the built binary
 * against a real etcd: what each command writes under the key contract
 * (docs/scale.md, section corralctl), that dry runs write nothing, invalid
 * policies and lost compare-and-sets, the dry-run plan of a seeded state,
 * the status summary; and `scale simulate` on the shipped traces: the
 * invariants its numbers must keep, that it is deterministic, and its CSV
 * (-o csv and the per-step --steps FILE) read back. */
#include <jansson.h>
#include <math.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csv-test.h"
#include "ctl-test.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "ctl-scale", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_scale, .init = up, .fini = down, .timeout = 120);
TestSuite(ctl_scale_sim, .timeout = 60);

static const char policy_web[] =
	"{\"pools\": {\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"min\": 1, \"max\": 5, \"jobs_per_host\": 4}}}";

static int ctl_full(const char *endpoint, char **out, char **err, char *const args[]) {
	return ctlt_run(endpoint, PREFIX, out, err, args);
}

#define CTL(out, err, ...) ctl_full(hx_etcd_endpoints(etcd), (out), (err), (char *const[]){ __VA_ARGS__, NULL })
#define SIM(out, err, ...) ctl_full(NULL, (out), (err), (char *const[]){ "scale", "simulate", __VA_ARGS__, NULL })

static int64_t revision(void) {
	return et_revision(etcd);
}

static json_t *parse(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, text);
	return j;
}

/* The key's value as JSON; NULL when absent. */
static json_t *get_json(const char *key) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	return v && *v ? parse(v) : NULL;
}

static char *write_tmp(const char *name, const char *text) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	cr_assert_eq(hx_write_file(p, text), 0);
	return p;
}

static void set_policy(const char *text) {
	_cleanup_free_ char *file = write_tmp("policy.json", text), *err = NULL;
	cr_assert_eq(CTL(NULL, &err, "scale", "policy", "set", file), 0, "%s", err);
}

static json_t *pool_of(const char *name) {
	json_t *doc = get_json(PREFIX "/scale/policy");
	cr_assert_not_null(doc);
	json_t *p = json_incref(json_object_get(json_object_get(doc, "pools"), name));
	json_decref(doc);
	cr_assert_not_null(p);
	return p;
}

/* A host record as the leader writes it (the codec's JSON). */
static void put_host(const char *id, const char *pool, const char *state, const char *node, int jobs, bool hold) {
	char key[128], rec[1024];
	long now = (long) time(NULL);
	snprintf(key, sizeof key, PREFIX "/scale/hosts/%s", id);
	snprintf(rec, sizeof rec,
		 "{\"id\": \"%s\", \"pool\": \"%s\", \"state\": \"%s\", \"market\": \"on-demand\","
		 " \"instance_type\": \"m5.large\", \"availability_zone\": \"us-east-1a\","
		 " \"launch_time\": %ld, \"state_since\": %ld, \"node_id\": %s%s%s, \"last_seen\": %ld,"
		 " \"jobs\": %d, \"job_capacity\": 4, \"memory_used\": 0.2, \"cluster_tagged\": true, \"hold\": %s}",
		 id, pool, state, now - 7200, now - 3600, node ? "\"" : "", node ? node : "null", node ? "\"" : "", now,
		 jobs, hold ? "true" : "false");
	cr_assert_eq(hx_etcd_put(etcd, key, rec), 0);
	if (node) {
		/* the node's registration, which is how the leader pairs them */
		snprintf(key, sizeof key, PREFIX "/nodes/%s", node);
		snprintf(rec, sizeof rec, "{\"instance_id\": \"%s\", \"address\": \"10.0.0.1\"}", id);
		cr_assert_eq(hx_etcd_put(etcd, key, rec), 0);
	}
}

Test(ctl_scale, policy_set_get_and_invalid) {
	_cleanup_free_ char *out = NULL, *err = NULL, *e2 = NULL, *e3 = NULL;

	set_policy(policy_web);
	json_auto_t *stored = get_json(PREFIX "/scale/policy"), *want = parse(policy_web);
	cr_assert(json_equal(stored, want), "stored policy differs");
	cr_assert_eq(CTL(&out, &err, "scale", "policy", "get"), 0, "%s", err);
	json_auto_t *got = parse(out);
	cr_assert(json_equal(got, want), "%s", out);
	cr_assert(strstr(err, "at revision "), "the revision to compare with: %s", err);

	/* invalid: exit 2, the key named, nothing written */
	int64_t rev = revision();
	_cleanup_free_ char *bad = write_tmp("bad.json",
					     "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"],"
					     " \"subnets\": [\"s\"], \"min\": 3, \"max\": 2}}}");
	cr_assert_eq(CTL(NULL, &e2, "scale", "policy", "set", bad), 2);
	cr_assert(strstr(e2, "pools.web.max"), "%s", e2);
	_cleanup_free_ char *typo = write_tmp("typo.json",
					      "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"],"
					      " \"subnets\": [\"s\"], \"maxx\": 3}}}");
	cr_assert_eq(CTL(NULL, &e3, "scale", "policy", "set", typo), 2);
	cr_assert(strstr(e3, "pools.web.maxx"), "%s", e3);
	_cleanup_free_ char *notjson = write_tmp("nj.json", "{\"pools\": ");
	cr_assert_eq(CTL(NULL, NULL, "scale", "policy", "set", notjson), 2);
	cr_assert_eq(revision(), rev, "an invalid policy wrote something");
}

Test(ctl_scale, policy_set_loses_cas_to_a_concurrent_change) {
	_cleanup_free_ char *err = NULL, *e2 = NULL;

	set_policy(policy_web);
	_cleanup_free_ char *v = NULL;
	cr_assert_eq(CTL(NULL, &v, "scale", "policy", "get"), 0);
	const char *at = strstr(v, "at revision ");
	cr_assert_not_null(at, "%s", v);
	long long seen = strtoll(at + strlen("at revision "), NULL, 10);

	/* someone else changes it meanwhile */
	const char *theirs = "{\"pools\": {\"web\": {\"launch_template\": \"lt-2\", \"instance_types\": [\"m5.large\"],"
			     " \"subnets\": [\"subnet-a\"], \"max\": 7}}}";
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/policy", theirs), 0);

	char revarg[32];
	snprintf(revarg, sizeof revarg, "%lld", seen);
	_cleanup_free_ char *mine = write_tmp("mine.json", policy_web);
	cr_assert_eq(CTL(NULL, &err, "scale", "policy", "set", "--revision", revarg, mine), 1);
	cr_assert(strstr(err, "changed by someone else") && strstr(err, "nothing written"), "%s", err);
	json_auto_t *stored = get_json(PREFIX "/scale/policy"), *want = parse(theirs);
	cr_assert(json_equal(stored, want), "their change was overwritten");

	/* --revision 0: only when absent */
	cr_assert_eq(CTL(NULL, &e2, "scale", "policy", "set", "--revision", "0", mine), 1, "%s", e2);
}

Test(ctl_scale, scale_to_up_down_auto) {
	_cleanup_free_ char *err = NULL, *e2 = NULL, *out = NULL;

	set_policy(policy_web);
	cr_assert_eq(CTL(&out, &err, "scale", "to", "3"), 0, "%s", err);
	cr_assert(strstr(out, "desired 3"), "%s", out);
	json_auto_t *p1 = pool_of("web");
	cr_assert_eq(json_integer_value(json_object_get(p1, "desired")), 3);

	/* outside max: refused with the bound named; -f widens it */
	cr_assert_eq(CTL(NULL, &e2, "scale", "to", "9"), 2);
	cr_assert(strstr(e2, "max (5)") && strstr(e2, "-f"), "%s", e2);
	cr_assert_eq(CTL(NULL, NULL, "-f", "scale", "to", "9"), 0);
	json_auto_t *p2 = pool_of("web");
	cr_assert_eq(json_integer_value(json_object_get(p2, "desired")), 9);
	cr_assert_eq(json_integer_value(json_object_get(p2, "max")), 9);

	/* up/down from the override */
	cr_assert_eq(CTL(NULL, NULL, "scale", "down"), 0);
	json_auto_t *p3 = pool_of("web");
	cr_assert_eq(json_integer_value(json_object_get(p3, "desired")), 8);
	cr_assert_eq(CTL(NULL, NULL, "scale", "up", "--pool", "web"), 0);
	json_auto_t *p4 = pool_of("web");
	cr_assert_eq(json_integer_value(json_object_get(p4, "desired")), 9);

	/* auto clears it; then up counts the fleet (2 ready + 1 launching) */
	cr_assert_eq(CTL(NULL, NULL, "scale", "auto"), 0);
	json_auto_t *p5 = pool_of("web");
	cr_assert_null(json_object_get(p5, "desired"));
	put_host("i-1", "web", "ready", "n1", 1, false);
	put_host("i-2", "web", "ready", "n2", 1, false);
	put_host("i-3", "web", "launching", NULL, 0, false);
	put_host("i-4", "web", "draining", "n4", 0, false);
	cr_assert_eq(CTL(NULL, NULL, "scale", "up"), 0);
	json_auto_t *p6 = pool_of("web");
	cr_assert_eq(json_integer_value(json_object_get(p6, "desired")), 4);

	/* unknown pool: 2 */
	cr_assert_eq(CTL(NULL, NULL, "scale", "to", "2", "--pool", "nope"), 2);
	/* --wait: the fleet does not reach it (nobody runs the leader here) */
	cr_assert_eq(CTL(NULL, NULL, "scale", "to", "2", "--wait", "1"), 1);
}

Test(ctl_scale, dry_run_writes_nothing) {
	_cleanup_free_ char *out = NULL, *err = NULL;

	set_policy(policy_web);
	_cleanup_free_ char *file = write_tmp("p2.json", "{\"pools\": {\"web\": {\"launch_template\": \"lt-9\","
							 " \"instance_types\": [\"m5.large\"], \"subnets\": [\"subnet-a\"]}}}");
	cr_assert_eq(CTL(NULL, NULL, "-q", "scale", "to", "3"), 0);
	int64_t rev = revision();
	char *const cmds[][8] = {
		{ "scale", "to", "4", NULL },
		{ "scale", "up", NULL },
		{ "scale", "down", NULL },
		{ "scale", "auto", NULL },
		{ "scale", "policy", "set", file, NULL },
		{ "scale", "queue", "set", "web", "5", NULL },
		{ "autoscale", NULL },
		{ "cluster", "stop", NULL },
		{ "cluster", "start", NULL },
		{ "maintenance", "on", "--reason", "x", NULL },
		{ "maintenance", "off", NULL },
		{ "hold", "i-1", NULL },
		{ "unhold", "i-1", NULL },
		{ "load", "set", "--node", "n1", "--jobs", "3", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
		char *argv[16] = { "-n" };
		size_t k = 1;
		for (size_t j = 0; cmds[i][j]; j++)
			argv[k++] = cmds[i][j];
		argv[k] = NULL;
		free(out);
		free(err);
		out = err = NULL;
		cr_assert_eq(ctl_full(hx_etcd_endpoints(etcd), &out, &err, argv), 0, "-n %s %s: %s", cmds[i][0],
			     cmds[i][1] ? cmds[i][1] : "", err);
		if (!streq(cmds[i][0], "autoscale") && !streq(cmds[i][0], "unhold") &&
		    !(streq(cmds[i][0], "maintenance") && streq(cmds[i][1], "off")) &&
		    !(streq(cmds[i][0], "cluster") && streq(cmds[i][1], "start")))
			cr_assert(strstr(out, "dry run: would put " PREFIX "/"), "-n %s: %s", cmds[i][0], out);
		cr_assert_eq(revision(), rev, "-n %s %s wrote something", cmds[i][0], cmds[i][1] ? cmds[i][1] : "");
	}
}

Test(ctl_scale, markers_holds_load_queue_trigger) {
	_cleanup_free_ char *err = NULL, *e2 = NULL, *out = NULL;

	cr_assert_eq(CTL(NULL, &err, "maintenance", "on", "--reason", "kernel update"), 0, "%s", err);
	json_auto_t *m = get_json(PREFIX "/maintenance");
	cr_assert_not_null(m);
	cr_assert_str_eq(json_string_value(json_object_get(m, "reason")), "kernel update");
	cr_assert(json_is_string(json_object_get(m, "since")) && json_is_string(json_object_get(m, "by")));
	cr_assert(strstr(err, "before: scaling: maintenance off") && strstr(err, "after: scaling: maintenance ON"),
		  "the summary before and after: %s", err);
	cr_assert_eq(CTL(NULL, NULL, "maintenance", "off"), 0);
	cr_assert_null(get_json(PREFIX "/maintenance"));

	cr_assert_eq(CTL(NULL, NULL, "hold", "i-0abc", "--reason", "debugging"), 0);
	json_auto_t *h = get_json(PREFIX "/holds/i-0abc");
	cr_assert_not_null(h);
	cr_assert_str_eq(json_string_value(json_object_get(h, "reason")), "debugging");
	cr_assert_eq(CTL(NULL, NULL, "unhold", "i-0abc"), 0);
	cr_assert_null(get_json(PREFIX "/holds/i-0abc"));
	cr_assert_eq(CTL(NULL, NULL, "hold", "a/b"), 2, "an id is one key segment");

	cr_assert_eq(CTL(NULL, NULL, "cluster", "stop", "--reason", "end of contest"), 0);
	json_auto_t *st = get_json(PREFIX "/scale/stop");
	cr_assert_str_eq(json_string_value(json_object_get(st, "reason")), "end of contest");
	cr_assert_eq(CTL(NULL, NULL, "cluster", "start"), 0);
	cr_assert_null(get_json(PREFIX "/scale/stop"));

	cr_assert_eq(CTL(NULL, NULL, "-q", "load", "set", "--node", "n7", "--jobs", "3", "--capacity", "8", "--memory",
			 "0.25"),
		     0);
	json_auto_t *l = get_json(PREFIX "/load/n7");
	cr_assert_not_null(l);
	cr_assert_eq(json_object_size(l), 4, "jobs, capacity, memory, updated");
	cr_assert_eq(json_integer_value(json_object_get(l, "jobs")), 3);
	cr_assert_eq(json_integer_value(json_object_get(l, "capacity")), 8);
	cr_assert_float_eq(json_real_value(json_object_get(l, "memory")), 0.25, 1e-9);
	const char *upd = json_string_value(json_object_get(l, "updated"));
	cr_assert(upd && strlen(upd) == 20 && upd[10] == 'T' && upd[19] == 'Z', "RFC 3339: %s", upd);
	cr_assert_eq(CTL(NULL, &e2, "load", "set", "--node", "n7"), 2);
	cr_assert(strstr(e2, "--jobs"), "%s", e2);
	cr_assert_eq(CTL(NULL, NULL, "load", "set", "--jobs", "1", "--memory", "2"), 2);

	cr_assert_eq(CTL(NULL, NULL, "scale", "queue", "set", "web", "17"), 0);
	_cleanup_free_ char *q = hx_etcd_get(etcd, PREFIX "/scale/queue/web");
	cr_assert_str_eq(q, "17");

	cr_assert_eq(CTL(&out, NULL, "autoscale"), 0);
	_cleanup_free_ char *trig = hx_etcd_get(etcd, PREFIX "/scale/trigger");
	cr_assert(trig && *trig, "autoscale puts scale/trigger");
}

Test(ctl_scale, cluster_stop_waits_for_non_held_hosts) {
	_cleanup_free_ char *err = NULL;

	put_host("i-held", "web", "ready", "n1", 2, false);
	cr_assert_eq(CTL(NULL, NULL, "hold", "i-held"), 0);
	put_host("i-flag", "web", "ready", "n2", 2, true);
	put_host("i-gone", "web", "terminating", NULL, 0, false);
	/* only held and terminating hosts: done at once */
	cr_assert_eq(CTL(NULL, &err, "cluster", "stop", "--wait", "5"), 0, "%s", err);
	/* a working host that nobody drains: time-out, 1; --force: 0 */
	put_host("i-busy", "web", "ready", "n3", 1, false);
	cr_assert_eq(CTL(NULL, NULL, "cluster", "stop", "--wait", "1"), 1);
	cr_assert_eq(CTL(NULL, NULL, "cluster", "stop", "--wait", "1", "--force"), 0);
}

/* Starts corralctl with args in the background, its output in dir/name.log. */
static hx_proc *ctl_spawn(const char *name, char *const args[]) {
	_cleanup_free_ char *bin = NULL, *log = NULL;
	char *argv[24];
	size_t i = 0;
	hx_proc *p = NULL;

	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	cr_assert_geq(asprintf(&log, "%s/%s.log", dir, name), 0);
	argv[i++] = bin;
	argv[i++] = "-e";
	argv[i++] = (char *) hx_etcd_endpoints(etcd);
	argv[i++] = "-p";
	argv[i++] = PREFIX;
	for (size_t j = 0; args[j]; j++)
		argv[i++] = args[j];
	argv[i] = NULL;
	cr_assert_eq(hx_proc_spawn(&p, argv, NULL, log), 0);
	return p;
}

static int proc_exit(hx_proc *p, uint64_t timeout_usec) {
	int status = 0;
	cr_assert_eq(hx_proc_wait(p, timeout_usec, &status), 0, "still waiting");
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The -d log of ctl_spawn(name) shows a wait woken by a watch event. */
static void assert_woken_by_change(const char *name) {
	_cleanup_free_ char *log = NULL, *text = NULL;

	cr_assert_geq(asprintf(&log, "%s/%s.log", dir, name), 0);
	text = hx_read_file(log, NULL);
	cr_assert(text && strstr(text, "wait: woken by a change"), "%s: not woken by the watch: %s", name, text);
}

Test(ctl_scale, waits_end_when_the_fleet_gets_there) {
	set_policy(policy_web);
	put_host("i-1", "web", "ready", "n1", 1, false);
	put_host("i-2", "web", "launching", NULL, 0, false);

	/* scale to 2 --wait: done once both are ready, long before the time-out,
	 * woken by the change (a watch: -d says so), not by the 5 s re-read.
	 * No clock in the assertion: a loaded machine may be slow. */
	_cleanup_(hx_proc_freep) hx_proc *p = ctl_spawn("to", (char *const[]){ "-d", "-q", "scale", "to", "2", "--wait", "60", NULL });
	usleep(700 * 1000);
	cr_assert(hx_proc_running(p), "returned before the fleet got there");
	put_host("i-2", "web", "ready", "n2", 0, false);
	cr_assert_eq(proc_exit(p, 50 * USEC_PER_SEC), 0);
	assert_woken_by_change("to");

	/* cluster stop --wait: done once the working hosts are terminating */
	_cleanup_(hx_proc_freep) hx_proc *q = ctl_spawn("stop", (char *const[]){ "-d", "-q", "cluster", "stop", "--wait", "60", NULL });
	usleep(700 * 1000);
	cr_assert(hx_proc_running(q), "returned with working hosts");
	put_host("i-1", "web", "terminating", NULL, 0, false);
	put_host("i-2", "web", "terminated", NULL, 0, false);
	cr_assert_eq(proc_exit(q, 50 * USEC_PER_SEC), 0);
	assert_woken_by_change("stop");
}

Test(ctl_scale, autoscale_dry_run_prints_the_plan) {
	_cleanup_free_ char *out = NULL, *err = NULL, *js = NULL;

	/* web: one full host (4 of 4 jobs): n + 2 sqrt(n) = 8 slots -> 2 hosts: a launch.
	 * batch: fixed at 1 with 3 idle ready hosts, no waiting: two drains. */
	set_policy("{\"pools\": {"
		   "\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
		   " \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
		   " \"min\": 1, \"max\": 10, \"jobs_per_host\": 4},"
		   "\"batch\": {\"launch_template\": \"lt-2\", \"instance_types\": [\"c5.large\"],"
		   " \"subnets\": [\"subnet-b\"], \"policy\": \"fixed\", \"hosts\": 1, \"max\": 5,"
		   " \"scale_in_after\": 0, \"scale_in_cooldown\": 0}}}");
	put_host("i-w1", "web", "ready", "nw1", 0, false);
	cr_assert_eq(CTL(NULL, NULL, "-q", "load", "set", "--node", "nw1", "--jobs", "4", "--capacity", "4"), 0);
	put_host("i-b1", "batch", "ready", "nb1", 0, false);
	put_host("i-b2", "batch", "ready", "nb2", 0, false);
	put_host("i-b3", "batch", "ready", "nb3", 0, false);
	cr_assert_eq(CTL(NULL, NULL, "hold", "i-b2"), 0);
	/* the leader's stored state: the token counts on from it */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/state",
				 "{\"web\": {\"last_scale_in\": 0, \"surplus_since\": 0, \"launch_seq\": 4}}"), 0);

	int64_t rev = revision();
	cr_assert_eq(CTL(&out, &err, "-n", "autoscale"), 0, "%s", err);
	cr_assert_eq(revision(), rev, "autoscale -n wrote something");
	cr_assert(strstr(out, "spot prices and reservations are not in etcd"), "says what it lacks: %s", out);
	const char *web = strstr(out, "pool web:"), *batch = strstr(out, "pool batch:");
	cr_assert(web && batch, "%s", out);
	cr_assert(strstr(web, "launch 1 x m5.large on-demand in subnet-a") && strstr(web, "-5-0: capacity needed"),
		  "%s", out);
	/* the held one stays: i-b1 and i-b3 would leave 0, so the one not held
	 * beyond the fixed 1 is drained */
	cr_assert(strstr(batch, "drain i-b") && !strstr(batch, "drain i-b2"), "%s", out);
	cr_assert_null(hx_etcd_get(etcd, PREFIX "/scale/trigger"));

	cr_assert_eq(CTL(&js, NULL, "-n", "-o", "json", "autoscale"), 0);
	json_auto_t *j = parse(js);
	cr_assert(json_is_true(json_object_get(j, "dry_run")));
	cr_assert_gt(json_array_size(json_object_get(j, "actions")), 1);
	cr_assert_eq(revision(), rev);

	/* maintenance: the plan has no action */
	cr_assert_eq(CTL(NULL, NULL, "-q", "maintenance", "on"), 0);
	_cleanup_free_ char *m = NULL;
	cr_assert_eq(CTL(&m, NULL, "-n", "autoscale"), 0);
	cr_assert(strstr(m, "[maintenance]") && strstr(m, "no changes"), "%s", m);
}

Test(ctl_scale, status_shows_the_scaling_summary) {
	_cleanup_free_ char *t = NULL, *j = NULL, *t0 = NULL;

	cr_assert_eq(CTL(&t0, NULL, "status"), 0);
	cr_assert(strstr(t0, "scaling: maintenance off; cluster stop off; held: none"), "%s", t0);
	cr_assert(strstr(t0, "scaling policy: (none)"), "%s", t0);

	set_policy(policy_web);
	put_host("i-1", "web", "ready", "n1", 1, false);
	put_host("i-2", "web", "launching", NULL, 0, false);
	cr_assert_eq(CTL(NULL, NULL, "-q", "scale", "to", "2"), 0);
	cr_assert_eq(CTL(NULL, NULL, "-q", "hold", "i-1"), 0);
	cr_assert_eq(CTL(NULL, NULL, "-q", "maintenance", "on", "--reason", "upgrade"), 0);
	cr_assert_eq(CTL(&t, NULL, "status"), 0);
	cr_assert(strstr(t, "current: (none)"), "the old fields stay: %s", t);
	cr_assert(strstr(t, "maintenance ON since") && strstr(t, "upgrade") && strstr(t, "held: i-1"), "%s", t);
	cr_assert(strstr(t, "pool web: desired 2 (manual), min 1, max 5; hosts: 1 launching, 1 ready"), "%s", t);

	cr_assert_eq(CTL(&j, NULL, "status", "--format", "json"), 0, "the issue's spelling");
	json_auto_t *doc = parse(j);
	cr_assert(json_is_array(json_object_get(doc, "nodes")), "the old fields stay");
	json_t *sc = json_object_get(doc, "scaling");
	json_t *web = json_object_get(json_object_get(sc, "pools"), "web");
	cr_assert_eq(json_integer_value(json_object_get(web, "desired")), 2);
	cr_assert_eq(json_integer_value(json_object_get(web, "min")), 1);
	cr_assert_eq(json_integer_value(json_object_get(web, "max")), 5);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(web, "hosts"), "ready")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sc, "maintenance"), "reason")), "upgrade");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(sc, "holds"), 0)), "i-1");
	cr_assert(json_is_null(json_object_get(sc, "stop")));

	/* without an override: the leader's last decision, from scale/metrics */
	cr_assert_eq(CTL(NULL, NULL, "-q", "scale", "auto"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/metrics",
				 "{\"time\": 1, \"revision\": 1, \"pools\": {\"web\": {\"desired_hosts\": 4}}}"), 0);
	_cleanup_free_ char *t2 = NULL;
	cr_assert_eq(CTL(&t2, NULL, "status"), 0);
	/* no leader has said it scales (no scale/status), and the decision
	 * is ancient: shown, but not as current */
	cr_assert(strstr(t2, "scaling: unknown: no leader has reported"), "%s", t2);
	cr_assert(strstr(t2, "pool web: desired 4 (jobs, stale: the leader is not scaling), min 1, max 5"), "%s", t2);
	/* a leader that scales, and decided just now: current */
	_cleanup_free_ char *fresh = hx_fmt("{\"time\": %lld, \"revision\": 1, \"pools\": {\"web\": {\"desired_hosts\": 4}}}",
					    (long long) time(NULL));
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/metrics", fresh), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/status",
				 "{\"state\": \"ok\", \"code\": \"ok\", \"reason\": \"\", \"since\": 1, \"interval\": 30,"
				 " \"token\": 1}"),
		     0);
	_cleanup_free_ char *t2b = NULL;
	cr_assert_eq(CTL(&t2b, NULL, "status"), 0);
	cr_assert(strstr(t2b, "scaling: ok, last decision none yet, next evaluation in "), "%s", t2b);
	cr_assert(strstr(t2b, "pool web: desired 4 (jobs), min 1, max 5"), "%s", t2b);

	/* a draining host whose node still runs its wind-down hook */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/scale/hosts/i-3",
				 "{\"id\": \"i-3\", \"pool\": \"web\", \"state\": \"draining\", \"launch_time\": 1,"
				 " \"state_since\": 2, \"winding_down\": true}"),
		     0);
	_cleanup_free_ char *t3 = NULL, *j3 = NULL;
	cr_assert_eq(CTL(&t3, NULL, "status"), 0);
	cr_assert(strstr(t3, "hosts: 1 launching, 1 ready, 1 draining (1 winding down)"), "%s", t3);
	cr_assert_eq(CTL(&j3, NULL, "status", "--format", "json"), 0);
	json_auto_t *doc3 = parse(j3);
	json_t *h3 = json_object_get(
		json_object_get(json_object_get(json_object_get(doc3, "scaling"), "pools"), "web"), "hosts");
	cr_assert_eq(json_integer_value(json_object_get(h3, "winding_down")), 1);
	cr_assert_eq(json_integer_value(json_object_get(h3, "draining")), 1);
}

/* ---- scale simulate ---- */

static char *trace(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/tests/traces/%s", hx_srcdir(), name), 0);
	return p;
}

static json_t *simulate(const char *name, const char *billing) {
	_cleanup_free_ char *path = trace(name), *out = NULL, *err = NULL;
	int r = billing ? SIM(&out, &err, "--trace", path, "--billing", (char *) billing, "-o", "json")
			: SIM(&out, &err, "--trace", path, "-o", "json");
	cr_assert_eq(r, 0, "%s: %s", name, err);
	return parse(out);
}

static json_t *result(json_t *sim, const char *policy) {
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(sim, "results"), i, r)
		if (streq(json_string_value(json_object_get(r, "policy")), policy))
			return r;
	cr_assert_fail("no result for %s", policy);
	return NULL;
}

static double num(json_t *r, const char *key) {
	json_t *v = json_object_get(r, key);
	cr_assert(json_is_number(v), "%s missing", key);
	return json_number_value(v);
}

Test(ctl_scale_sim, invariants_on_the_shipped_traces) {
	static const char *const traces[] = { "daily.csv", "spike.csv", "ramp.csv" };

	for (size_t t = 0; t < ELEMENTSOF(traces); t++) {
		json_auto_t *ps = simulate(traces[t], "per-second"), *hr = simulate(traces[t], "hourly");
		size_t i;
		json_t *r;

		cr_assert_eq(json_array_size(json_object_get(ps, "results")), 6, "%s", traces[t]);
		json_array_foreach(json_object_get(ps, "results"), i, r) {
			const char *name = json_string_value(json_object_get(r, "policy"));
			cr_assert_geq(num(r, "cost"), 0);
			cr_assert_geq(num(r, "instance_hours"), 0);
			cr_assert_geq(num(r, "unmet_job_minutes"), 0);
			cr_assert_leq(num(r, "terminations"), num(r, "launches"));
			cr_assert_eq(num(r, "churn"),
				     num(r, "launches") + num(r, "terminations") + num(r, "starts") + num(r, "stops"));
			/* a started hour is paid: per-second never costs more */
			cr_assert_leq(num(r, "cost"), num(result(hr, name), "cost") + 1e-9, "%s %s", traces[t], name);
		}
		/* following the load beats a fleet sized for the average */
		cr_assert_lt(num(result(ps, "jobs n+2sqrt(n)"), "unmet_job_minutes"),
			     num(result(ps, "fixed at mean"), "unmet_job_minutes"), "%s", traces[t]);
		/* and costs less than one sized for the peak */
		cr_assert_lt(num(result(ps, "jobs n+2sqrt(n)"), "cost"), num(result(ps, "fixed at peak"), "cost"), "%s",
			     traces[t]);
	}
	json_auto_t *spike = simulate("spike.csv", NULL);
	cr_assert_gt(num(result(spike, "jobs n+2sqrt(n)"), "launches"), 1);
	cr_assert_gt(num(result(spike, "jobs n+2sqrt(n)"), "terminations"), 0, "the spike passes: hosts go");
	cr_assert_gt(num(result(spike, "queue"), "launches"), 1);
}

Test(ctl_scale_sim, deterministic_and_table) {
	_cleanup_free_ char *path = trace("daily.csv"), *a = NULL, *b = NULL, *tab = NULL;

	cr_assert_eq(SIM(&a, NULL, "--trace", path, "--reserved", "2", "--launch-delay", "300"), 0);
	cr_assert_eq(SIM(&b, NULL, "--trace", path, "--reserved", "2", "--launch-delay", "300"), 0);
	cr_assert_str_eq(a, b, "same input, same output");
	cr_assert(strstr(a, "POLICY") && strstr(a, "INSTANCE-HOURS") && strstr(a, "COST") &&
		  strstr(a, "UNMET JOB-MIN") && strstr(a, "LAUNCHES") && strstr(a, "TERMINATIONS") && strstr(a, "CHURN") &&
		  strstr(a, "demand+forecast+warm"), "%s", a);
	cr_assert(strstr(a, "fixed at peak") && strstr(a, "jobs x1.3") && strstr(a, "queue"), "%s", a);

	/* a policy file: its pool, run as given too */
	_cleanup_free_ char *d = hx_mkdtemp("ctl-sim"), *pf = NULL;
	cr_assert_geq(asprintf(&pf, "%s/p.json", d), 0);
	cr_assert_eq(hx_write_file(pf, policy_web), 0);
	cr_assert_eq(SIM(&tab, NULL, "--trace", path, "--policy", pf), 0);
	cr_assert(strstr(tab, "as given") && strstr(tab, "pool web"), "%s", tab);
	hx_rm_tmp(d);
}

Test(ctl_scale_sim, bad_input_exits_2) {
	_cleanup_free_ char *d = hx_mkdtemp("ctl-sim"), *bad = NULL, *err = NULL, *e2 = NULL;
	cr_assert_geq(asprintf(&bad, "%s/bad.csv", d), 0);
	cr_assert_eq(hx_write_file(bad, "seconds,running,queued\n0,1,0\n60,x,0\n"), 0);
	cr_assert_eq(SIM(NULL, &err, "--trace", bad), 2);
	cr_assert(strstr(err, "bad.csv:3"), "names the line: %s", err);
	cr_assert_eq(SIM(NULL, NULL, "--trace", "/nonexistent.csv"), 2);
	cr_assert_eq(ctl_full(NULL, NULL, &e2, (char *const[]){ "scale", "simulate", NULL }), 2);
	cr_assert(strstr(e2, "--trace"), "%s", e2);
	cr_assert_eq(SIM(NULL, NULL, "--trace", bad, "--billing", "monthly"), 2);
	hx_rm_tmp(d);
}

/* --steps FILE read back: one row per step per policy, in run order; time
 * increases in steps, cost never falls, and each run's last cost is the
 * summary's; -o csv's results are the JSON's. */
Test(ctl_scale_sim, steps_csv_reads_back) {
	_cleanup_free_ char *path = trace("spike.csv"), *d = hx_mkdtemp("ctl-sim"), *steps = NULL, *text = NULL,
			    *out = NULL, *err = NULL, *csv_out = NULL;
	static const char *const header[] = { "policy",	 "time",      "running",     "queued",
					      "desired",	 "launching", "ready",	     "draining",
					      "unhealthy", "terminating", "stopped", "cost" };
	size_t len;

	cr_assert_geq(asprintf(&steps, "%s/steps.csv", d), 0);
	cr_assert_eq(SIM(&out, &err, "--trace", path, "--steps", steps, "-o", "json"), 0, "%s", err);
	json_auto_t *sum = parse(out);
	cr_assert_not_null(text = hx_read_file(steps, &len), "%s", steps);
	json_auto_t *csv = csv_parse(text);
	json_t *h = json_array_get(csv, 0);
	cr_assert_eq(json_array_size(h), ELEMENTSOF(header));
	for (size_t i = 0; i < ELEMENTSOF(header); i++)
		cr_assert_str_eq(json_string_value(json_array_get(h, i)), header[i]);

	json_t *settings = json_object_get(sum, "settings"), *results = json_object_get(sum, "results");
	long step = (long) json_integer_value(json_object_get(settings, "step"));
	long n_steps = (long) json_integer_value(json_object_get(settings, "duration")) / step + 1;
	size_t n_runs = json_array_size(results), at = 1;
	cr_assert_eq(json_array_size(csv), 1 + n_runs * (size_t) n_steps, "rows = steps x policies");
	size_t c_time = csv_column(csv, "time"), c_cost = csv_column(csv, "cost"), c_ready = csv_column(csv, "ready");
	for (size_t k = 0; k < n_runs; k++) {
		const char *name = json_string_value(json_object_get(json_array_get(results, k), "policy"));
		double last = -1;
		long prev = -1;
		int max_ready = 0;
		for (long s = 0; s < n_steps; s++, at++) {
			json_t *row = json_array_get(csv, at);
			cr_assert_eq(json_array_size(row), ELEMENTSOF(header), "row %zu", at);
			cr_assert_str_eq(json_string_value(json_array_get(row, 0)), name, "row %zu", at);
			long t = atol(json_string_value(json_array_get(row, c_time)));
			double cost = strtod(json_string_value(json_array_get(row, c_cost)), NULL);
			cr_assert(prev < 0 || t == prev + step, "%s: time %ld after %ld", name, t, prev);
			cr_assert_geq(cost, last, "%s: cost falls at %ld", name, t);
			prev = t;
			last = cost;
			int ready = atoi(json_string_value(json_array_get(row, c_ready)));
			max_ready = ready > max_ready ? ready : max_ready;
		}
		double want = num(json_array_get(results, k), "cost");
		cr_assert(fabs(last - want) < 1e-4, "%s: last step %.6f, summary %.4f", name, last, want);
		cr_assert_gt(max_ready, 0, "%s: hosts got ready", name);
	}

	/* -o csv: the same results as the JSON */
	cr_assert_eq(SIM(&csv_out, NULL, "--trace", path, "-o", "csv"), 0);
	json_auto_t *res = csv_parse(csv_out);
	cr_assert_eq(json_array_size(res), 1 + n_runs);
	cr_assert_str_eq(json_string_value(json_array_get(json_array_get(res, 0), 0)), "policy");
	for (size_t k = 0; k < n_runs; k++) {
		json_t *row = json_array_get(res, k + 1), *j = json_array_get(results, k);
		cr_assert_str_eq(json_string_value(json_array_get(row, 0)), json_string_value(json_object_get(j, "policy")));
		cr_assert(fabs(strtod(json_string_value(json_array_get(row, csv_column(res, "cost"))), NULL) -
			       num(j, "cost")) < 1e-4);
		cr_assert_eq(atol(json_string_value(json_array_get(row, csv_column(res, "launches")))),
			     (long) num(j, "launches"));
	}
	hx_rm_tmp(d);
}
