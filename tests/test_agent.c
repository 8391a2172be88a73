/* test_agent.c — the node agent (agent.h) in-process against real etcd on
 * the test's own sd-event loop: the load record from a command, on the
 * lease; bad output, failures and timeouts keeping the last good value; the
 * wind-down hook on drain, ready_to_stop, undrain and drain again; spot
 * interruption notices from the moto proxy's IMDS. And corrald as a process
 * with a load_command. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "agent.h"
#include "etcd-test.h"
#include "scale.h"

#define LOAD_KEY "/corral/t/load/n1"
#define HOST_KEY "/corral/t/scale/hosts/i-0abc"
#define WAIT_USEC (10 * USEC_PER_SEC)

static hx_etcd *etcd;
static char *dir;
static et t;

typedef struct seen {
	unsigned n[AGENT_IMDS_FAILED + 1];
	char last[AGENT_IMDS_FAILED + 1][768];
} seen;

static void up(void) {
	et_fixture_up(&etcd, &dir, "agent", 1);
	etcd_options o = { .request_timeout_usec = 3 * USEC_PER_SEC };
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), &o), 0);
}

static void down(void) {
	et_close(&t);
	et_fixture_down(&etcd, &dir);
}

TestSuite(agent, .init = up, .fini = down, .timeout = 90);

/* ---- helpers ---- */

static void on_report(agent *a, agent_report_kind kind, const char *message, void *userdata) {
	seen *s = userdata;
	s->n[kind]++;
	snprintf(s->last[kind], sizeof s->last[kind], "%s", message);
}

static char *path_in(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static int64_t grant(int64_t ttl) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *r = NULL;
	cr_assert_eq(etcd_lease_grant(t.client, ttl, 0, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &r), 0);
	return r->lease_id;
}

static void lease_revoke(int64_t id) {
	etcd_sync s = {};
	cr_assert_eq(etcd_lease_revoke(t.client, id, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, NULL), 0);
}

/* The load record (new reference) or NULL; *lease its lease. */
static json_t *load_record(int64_t *lease) {
	etcd_range_req req = { .key = LOAD_KEY };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	if (!r || r->error.code < 0 || r->n_kvs != 1)
		return NULL;
	if (lease)
		*lease = r->kvs[0].lease;
	return json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
}

static json_int_t want_jobs;
static bool jobs_are(void *ud) {
	json_auto_t *rec = load_record(NULL);
	return rec && json_integer_value(json_object_get(rec, "jobs")) == want_jobs;
}

static bool ready_to_stop(void *ud) {
	json_auto_t *rec = load_record(NULL);
	return rec && json_is_true(json_object_get(rec, "ready_to_stop"));
}

static bool not_ready_to_stop(void *ud) {
	json_auto_t *rec = load_record(NULL);
	return rec && !json_object_get(rec, "ready_to_stop");
}

static bool load_absent(void *ud) {
	json_auto_t *rec = load_record(NULL);
	return !rec;
}

/* Runs the loop until s->n[kind] >= n. */
static bool wait_reports(seen *s, agent_report_kind kind, unsigned n) {
	uint64_t end = hx_now_usec() + WAIT_USEC;
	while (s->n[kind] < n) {
		if (hx_now_usec() >= end)
			return false;
		(void) sd_event_run(t.event, 20 * USEC_PER_MSEC);
	}
	return true;
}

/* Atomically: the agent's command may read it at any moment. */
static void set_load(const char *file, const char *text) {
	_cleanup_free_ char *tmp = NULL;
	cr_assert_geq(asprintf(&tmp, "%s.tmp", file), 0);
	cr_assert_eq(hx_write_file(tmp, text), 0);
	cr_assert_eq(rename(tmp, file), 0);
}

static void put_host(const char *state) {
	scale_host h = { .id = "i-0abc", .pool = "web", .market = SCALE_ON_DEMAND, .instance_type = "t3.micro",
			 .availability_zone = "us-east-1a", .launch_time = 1700000000, .state_since = 1700000100,
			 .node_id = "n1", .cluster_tagged = true };
	cr_assert_eq(scale_state_from_string(state, &h.state), 0);
	json_auto_t *j = scale_host_to_json(&h);
	cr_assert_not_null(j);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	cr_assert_eq(et_put(&t, HOST_KEY, text, 0), 0);
}

static unsigned lines_in(const char *path) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	unsigned n = 0;
	for (const char *p = text; p && *p; p++)
		n += *p == '\n';
	return n;
}

static char *load_command_for(const char *file) {
	char *c;
	cr_assert_geq(asprintf(&c, "cat '%s'", file), 0);
	return c;
}

/* ---- load ---- */

Test(agent, load_on_lease_and_gone_with_it) {
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	seen s = {};
	set_load(file, "{\"jobs\": 3, \"capacity\": 8, \"memory\": 0.25}\n");
	int64_t lease = grant(30);
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 200 * USEC_PER_MSEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, lease, on_report, &s), 0);

	want_jobs = 3;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "the load never appeared");
	int64_t on = 0;
	json_auto_t *rec = load_record(&on);
	cr_assert_eq(on, lease, "the record is not on the node's lease");
	cr_assert_eq(json_integer_value(json_object_get(rec, "capacity")), 8);
	cr_assert_float_eq(json_number_value(json_object_get(rec, "memory")), 0.25, 1e-9);
	cr_assert(json_is_string(json_object_get(rec, "updated")));
	cr_assert_null(json_object_get(rec, "ready_to_stop"));

	/* New output is picked up. */
	set_load(file, "{\"jobs\": 5, \"capacity\": 8, \"memory\": 0.5}");
	want_jobs = 5;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "the new load never appeared");

	/* A new lease: written again on it; the old one's revocation leaves it. */
	int64_t lease2 = grant(30);
	agent_set_lease(a, lease2);
	cr_assert(wait_reports(&s, AGENT_LOAD_WRITTEN, s.n[AGENT_LOAD_WRITTEN] + 2));
	lease_revoke(lease);
	json_auto_t *rec2 = load_record(&on);
	cr_assert_not_null(rec2);
	cr_assert_eq(on, lease2);

	/* The node's lease goes: so does its load (the agent stops first, as
	 * corrald's would with its registration). */
	a = agent_free(a);
	lease_revoke(lease2);
	cr_assert(et_run_until(&t, load_absent, NULL, WAIT_USEC), "the load outlived its lease");
}

Test(agent, malformed_output_keeps_the_last_good_value) {
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	seen s = {};
	set_load(file, "{\"jobs\": 2, \"capacity\": 4, \"memory\": 0.1}");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 100 * USEC_PER_MSEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	want_jobs = 2;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));

	static const char *const bad[] = {
		"not json", "[1, 2]", "{\"jobs\": -1}", "{\"jobs\": 1.5}", "{\"capacity\": 3}",
		"{\"jobs\": 1, \"memory\": 1.5}", "{\"jobs\": 1, \"capacity\": \"x\"}", "",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		unsigned before = s.n[AGENT_LOAD_FAILED];
		set_load(file, bad[i]);
		cr_assert(wait_reports(&s, AGENT_LOAD_FAILED, before + 1), "no error for \"%s\"", bad[i]);
		cr_assert(strstr(s.last[AGENT_LOAD_FAILED], "keeping the last one"), "%s", s.last[AGENT_LOAD_FAILED]);
		json_auto_t *rec = load_record(NULL);
		cr_assert_eq(json_integer_value(json_object_get(rec, "jobs")), 2, "bad output \"%s\" replaced the load",
			     bad[i]);
	}
	/* Good again: taken. */
	set_load(file, "{\"jobs\": 7}");
	want_jobs = 7;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));
}

Test(agent, command_failure_and_timeout) {
	_cleanup_free_ char *file = path_in("load.json"), *mode = path_in("mode");
	_cleanup_free_ char *cmd = NULL;
	cr_assert_geq(asprintf(&cmd,
			       "case $(cat '%s') in fail) echo oops >&2; exit 3;; slow) sleep 5;; esac; cat '%s'",
			       mode, file), 0);
	seen s = {};
	set_load(file, "{\"jobs\": 4}");
	set_load(mode, "ok");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 100 * USEC_PER_MSEC, .command_timeout_usec = 300 * USEC_PER_MSEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	want_jobs = 4;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));

	set_load(mode, "fail");
	set_load(file, "{\"jobs\": 9}");
	cr_assert(wait_reports(&s, AGENT_LOAD_FAILED, 1));
	cr_assert(strstr(s.last[AGENT_LOAD_FAILED], "oops"), "%s", s.last[AGENT_LOAD_FAILED]);
	want_jobs = 4;
	cr_assert(jobs_are(NULL), "a failed command changed the load");

	set_load(mode, "slow");
	unsigned before = s.n[AGENT_LOAD_FAILED];
	cr_assert(wait_reports(&s, AGENT_LOAD_FAILED, before + 2));
	cr_assert(jobs_are(NULL), "a timed-out command changed the load");

	set_load(mode, "ok");
	want_jobs = 9;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "the agent did not recover");
}

/* ---- wind-down ---- */

Test(agent, wind_down_once_per_drain) {
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	_cleanup_free_ char *hook_file = path_in("hook"), *hook = NULL;
	cr_assert_geq(asprintf(&hook, "echo x >> '%s'", hook_file), 0);
	seen s = {};
	set_load(file, "{\"jobs\": 2, \"capacity\": 4}");
	put_host("ready");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 100 * USEC_PER_MSEC, .wind_down_command = hook,
			    .instance_id = "i-0abc" };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	want_jobs = 2;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(s.n[AGENT_WIND_DOWN_STARTED], 0, "a ready host wound down");

	put_host("draining");
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_DONE, 1), "the hook did not run");
	/* Another write of the same state (the leader rewrites records) does
	 * not run it again. */
	put_host("draining");
	et_run_for(&t, 500 * USEC_PER_MSEC);
	cr_assert_eq(lines_in(hook_file), 1, "the hook ran %u times", lines_in(hook_file));

	/* Load still reported while draining; not ready while jobs run. */
	set_load(file, "{\"jobs\": 1, \"capacity\": 4}");
	want_jobs = 1;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "load stopped while draining");
	cr_assert(not_ready_to_stop(NULL));
	set_load(file, "{\"jobs\": 0, \"capacity\": 4}");
	cr_assert(et_run_until(&t, ready_to_stop, NULL, WAIT_USEC), "no ready_to_stop with 0 jobs");
	cr_assert_geq(s.n[AGENT_READY_TO_STOP], 1);

	/* Undrained: cleared, and the hook re-armed. */
	put_host("ready");
	cr_assert(et_run_until(&t, not_ready_to_stop, NULL, WAIT_USEC), "ready_to_stop not cleared");
	cr_assert(wait_reports(&s, AGENT_UNDRAINED, 1));
	put_host("draining");
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_DONE, 2), "the hook did not run on the second drain");
	cr_assert_eq(lines_in(hook_file), 2);
	cr_assert(et_run_until(&t, ready_to_stop, NULL, WAIT_USEC));
}

Test(agent, drain_seen_at_start) {
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	_cleanup_free_ char *hook_file = path_in("hook"), *hook = NULL;
	cr_assert_geq(asprintf(&hook, "echo x >> '%s'", hook_file), 0);
	seen s = {};
	set_load(file, "{\"jobs\": 0}");
	put_host("draining");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 100 * USEC_PER_MSEC, .wind_down_command = hook,
			    .instance_id = "i-0abc" };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_DONE, 1), "a host draining already did not wind down");
	cr_assert(et_run_until(&t, ready_to_stop, NULL, WAIT_USEC));
	cr_assert_eq(lines_in(hook_file), 1);
}

Test(agent, not_ready_to_stop_while_the_hook_runs) {
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	_cleanup_free_ char *go = path_in("go"), *hook = NULL;
	/* The hook (stop taking jobs) takes until the test lets it finish. */
	cr_assert_geq(asprintf(&hook, "while [ ! -e '%s' ]; do sleep 0.05; done", go), 0);
	seen s = {};
	set_load(file, "{\"jobs\": 0, \"capacity\": 4}");
	put_host("ready");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 100 * USEC_PER_MSEC, .wind_down_command = hook,
			    .instance_id = "i-0abc", .command_timeout_usec = 30 * USEC_PER_SEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	want_jobs = 0;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));

	put_host("draining");
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_STARTED, 1));
	/* several load rounds with 0 jobs while the hook runs */
	et_run_for(&t, 600 * USEC_PER_MSEC);
	cr_assert(not_ready_to_stop(NULL), "ready_to_stop while the wind-down hook still runs");
	cr_assert_eq(s.n[AGENT_READY_TO_STOP], 0);

	FILE *f = fopen(go, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_DONE, 1), "the hook did not finish");
	cr_assert(et_run_until(&t, ready_to_stop, NULL, WAIT_USEC), "no ready_to_stop once the hook is done");
}

Test(agent, no_load_at_all_is_no_jobs_after_the_hook) {
	_cleanup_free_ char *hook_file = path_in("hook"), *hook = NULL;
	cr_assert_geq(asprintf(&hook, "echo x >> '%s'", hook_file), 0);
	seen s = {};
	/* No load_command and no record from the application: the leader
	 * counts 0 jobs, and must not wait for a ready_to_stop forever. */
	put_host("ready");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_interval_usec = 100 * USEC_PER_MSEC,
			    .wind_down_command = hook, .instance_id = "i-0abc" };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	et_run_for(&t, 300 * USEC_PER_MSEC);
	json_auto_t *none = load_record(NULL);
	cr_assert_null(none, "a record written for a ready host with nothing to say");

	put_host("draining");
	cr_assert(wait_reports(&s, AGENT_WIND_DOWN_DONE, 1), "the hook did not run");
	cr_assert(et_run_until(&t, ready_to_stop, NULL, WAIT_USEC), "no ready_to_stop without any load");
	cr_assert_eq(lines_in(hook_file), 1);
}

/* ---- interruption ---- */

static bool has_interruption(void *ud) {
	json_auto_t *rec = load_record(NULL);
	json_t *i = rec ? json_object_get(rec, "interruption") : NULL;
	return i && json_is_string(json_object_get(i, "action"));
}

Test(agent, interruption_notice, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *moto = NULL;
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	_cleanup_free_ char *file = path_in("load.json"), *cmd = load_command_for(file);
	seen s = {};
	set_load(file, "{\"jobs\": 3}");
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .load_command = cmd,
			    .load_interval_usec = 5 * USEC_PER_SEC, .interruption_watch = true,
			    .imds_endpoint = hx_moto_imds_url(moto),
			    .interruption_interval_usec = 200 * USEC_PER_MSEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	want_jobs = 3;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC));
	et_run_for(&t, 1 * USEC_PER_SEC);
	cr_assert_eq(s.n[AGENT_INTERRUPTION], 0);
	cr_assert_eq(s.n[AGENT_IMDS_FAILED], 0, "%s", s.last[AGENT_IMDS_FAILED]);
	cr_assert(!has_interruption(NULL));

	cr_assert_eq(hx_moto_imds_control(moto,
					  "{\"spot_action\": {\"action\": \"terminate\", \"time\": \"2026-11-26T14:02:00Z\"}}",
					  NULL),
		     0);
	/* Well before the next load run (5 s): the notice is written at once. */
	cr_assert(et_run_until(&t, has_interruption, NULL, 3 * USEC_PER_SEC), "the notice never reached the record");
	json_auto_t *rec = load_record(NULL);
	json_t *i = json_object_get(rec, "interruption");
	cr_assert_str_eq(json_string_value(json_object_get(i, "action")), "terminate");
	cr_assert_str_eq(json_string_value(json_object_get(i, "time")), "2026-11-26T14:02:00Z");
	cr_assert_eq(json_integer_value(json_object_get(rec, "jobs")), 3, "the load went from the record");
	cr_assert_eq(s.n[AGENT_INTERRUPTION], 1);
	/* The same notice again is no news. */
	et_run_for(&t, 600 * USEC_PER_MSEC);
	cr_assert_eq(s.n[AGENT_INTERRUPTION], 1);
}

Test(agent, interruption_imds_away) {
	seen s = {};
	int port = hx_free_port();
	_cleanup_free_ char *url = NULL;
	cr_assert_geq(asprintf(&url, "http://127.0.0.1:%d", port), 0);
	agent_options o = { .prefix = "/corral/t", .node_id = "n1", .interruption_watch = true, .imds_endpoint = url,
			    .interruption_interval_usec = 100 * USEC_PER_MSEC };
	_cleanup_(agent_freep) agent *a = NULL;
	cr_assert_eq(agent_new(&a, t.event, t.client, &o, 0, on_report, &s), 0);
	cr_assert(wait_reports(&s, AGENT_IMDS_FAILED, 2), "an unreachable IMDS was not reported");
	cr_assert(load_absent(NULL), "nothing to report, yet a record was written");
}

/* ---- corrald ---- */

Test(agent, corrald_reports_load) {
	_cleanup_free_ char *file = path_in("load.json"), *cfg = path_in("n1.yaml"), *log = path_in("n1.log");
	_cleanup_free_ char *more = NULL, *bin = NULL;
	set_load(file, "{\"jobs\": 6, \"capacity\": 10, \"memory\": 0.5}");
	cr_assert_geq(asprintf(&more, "load_command: cat '%s'\nload_interval: 1s\n", file), 0);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "", hx_etcd_endpoints(etcd), more), 0);
	cr_assert_geq(asprintf(&bin, "%s/corrald", hx_builddir()), 0);
	char *const argv[] = { bin, "--config", cfg, NULL };
	hx_proc *p = NULL;
	cr_assert_eq(hx_proc_spawn(&p, argv, NULL, log), 0);

	want_jobs = 6;
	bool ok = et_run_until(&t, jobs_are, NULL, WAIT_USEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "corrald did not report the load");
	int64_t lease = 0;
	json_auto_t *rec = load_record(&lease);
	cr_assert_neq(lease, 0, "the load is not on the node's lease");

	set_load(file, "{\"jobs\": 1}");
	want_jobs = 1;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "corrald did not report the new load");

	/* A reload with another load_command: the agent starts over with it. */
	_cleanup_free_ char *file2 = path_in("load2.json"), *more2 = NULL;
	set_load(file2, "{\"jobs\": 42}");
	cr_assert_geq(asprintf(&more2, "load_command: cat '%s'\nload_interval: 1s\n", file2), 0);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "", hx_etcd_endpoints(etcd), more2), 0);
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	want_jobs = 42;
	cr_assert(et_run_until(&t, jobs_are, NULL, WAIT_USEC), "the reloaded load_command was not used");

	cr_assert_eq(hx_proc_signal(p, SIGTERM), 0);
	int status = -1;
	cr_assert_eq(hx_proc_wait(p, 10 * USEC_PER_SEC, &status), 0);
	hx_proc_free(p);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		hx_log_tail(log, 30);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald did not stop cleanly (%#x)", status);
	cr_assert(et_run_until(&t, load_absent, NULL, WAIT_USEC), "the load outlived corrald");
}
