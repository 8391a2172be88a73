/* test_corrald.c — corrald and corralctl as programs, against real etcd:
 * registration, deregistration, lease expiry, re-registration, fail-over,
 * reloads, and bad input. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "etcd-test.h"

#define KEY "/corral/t/nodes/n1"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "corrald", 1);
}

static void up3(void) {
	et_fixture_up(&etcd, &dir, "corrald", 3);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(corrald, .init = up, .fini = down, .timeout = 90);
TestSuite(corrald_cluster, .init = up3, .fini = down, .timeout = 90);
TestSuite(corrald_input, .timeout = 30);

static char *path_in(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static char *prog(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", hx_builddir(), name), 0);
	return p;
}

/* Writes a config for node `id` with the given services and endpoints. */
static char *write_config(const char *id, const char *services, const char *endpoints) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s.yaml", dir, id), 0);
	cr_assert_eq(hx_write_corrald_config(p, id, services, endpoints), 0);
	return p;
}

static hx_proc *start_corrald(const char *config, const char *log) {
	_cleanup_free_ char *bin = prog("corrald");
	char *const argv[] = { bin, "--config", (char *) config, NULL };
	hx_proc *p = NULL;
	cr_assert_eq(hx_proc_spawn(&p, argv, NULL, log), 0);
	return p;
}

static bool key_present(void *ud) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, ud ? ud : KEY);
	return v != NULL;
}

static bool key_absent(void *ud) {
	return !key_present(ud);
}

static size_t count_lines(const char *path, const char *needle) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	size_t n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Runs corralctl with args; stdout in *out; returns the exit status. */
static int corralctl(char **out, char *const args[]) {
	_cleanup_free_ char *bin = prog("corralctl");
	char *argv[16] = { bin };
	size_t i = 1;
	for (; args[i - 1]; i++)
		argv[i] = args[i - 1];
	argv[i] = NULL;
	return hx_run(out, 20 * USEC_PER_SEC, argv, NULL);
}

Test(corrald, registers_and_deregisters_on_sigterm) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker, ContestWebServer", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC), "node key never appeared");
	_cleanup_free_ char *v = hx_etcd_get(etcd, KEY);
	json_auto_t *rec = json_loads(v, 0, NULL);
	cr_assert(json_is_object(rec), "record: %s", v);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "address")), "127.0.0.9");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "node_id")), "n1");
	cr_assert_eq(json_array_size(json_object_get(rec, "services")), 2);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(rec, "services"), 1)), "ContestWebServer");
	cr_assert_not_null(json_string_value(json_object_get(rec, "version")));
	cr_assert_not_null(json_string_value(json_object_get(rec, "boot_time")));
	cr_assert_null(json_object_get(rec, "deployments"), "no deployments section: no memory offered");

	/* corralctl shows it, as a table and as JSON. */
	_cleanup_free_ char *table = NULL, *js = NULL;
	char *const targs[] = { "--endpoints", (char *) hx_etcd_endpoints(etcd), "--cluster", "t", "nodes", NULL };
	cr_assert_eq(corralctl(&table, targs), 0);
	cr_assert(strstr(table, "NODE") && strstr(table, "n1") && strstr(table, "127.0.0.9") &&
		  strstr(table, "Worker,ContestWebServer"), "table: %s", table);
	char *const jargs[] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", "/corral/t", "-o", "json", "nodes", NULL };
	cr_assert_eq(corralctl(&js, jargs), 0);
	json_auto_t *arr = json_loads(js, 0, NULL);
	cr_assert_eq(json_array_size(arr), 1, "json: %s", js);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "node_id")), "n1");

	/* --config gives endpoints and prefix, and beats the environment. */
	_cleanup_free_ char *viaconf = NULL, *bin = prog("corralctl");
	char *const cargv[] = { bin, "--config", cfg, "nodes", NULL };
	char *const wrong_env[] = { "CORRAL_PREFIX=/corral/elsewhere", "CORRAL_ENDPOINTS=http://127.0.0.1:1", NULL };
	cr_assert_eq(hx_run(&viaconf, 20 * USEC_PER_SEC, cargv, wrong_env), 0);
	cr_assert(strstr(viaconf, "n1"), "corralctl --config: %s", viaconf);

	/* SIGTERM: the key goes at once (lease revoked), exit status 0. */
	int status;
	cr_assert_eq(hx_proc_signal(d, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(d, 10 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	cr_assert(key_absent(NULL), "the key must be gone when corrald has exited");
	cr_assert_eq(count_lines(log, "deregistered"), 1);
}

/* deployments.memory is offered in the node record (the leader places by it). */
Test(corrald, record_offers_deployments_memory) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_fclose_ FILE *f = fopen(cfg, "ae");
	cr_assert_not_null(f);
	cr_assert_geq(fputs("deployments:\n  memory: 2G\n", f), 0);
	cr_assert_eq(fclose(TAKE_PTR(f)), 0);
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC), "node key never appeared");
	_cleanup_free_ char *v = hx_etcd_get(etcd, KEY);
	json_auto_t *rec = json_loads(v, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "deployments"), "memory")), 2LL << 30,
		     "record: %s", v);
	int status;
	cr_assert_eq(hx_proc_signal(d, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(d, 10 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

Test(corrald, sigkill_key_expires_with_lease_then_reregisters) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC));
	cr_assert_eq(hx_proc_signal(d, SIGKILL), 0);
	d = hx_proc_free(d);
	/* Still there right after the kill: only the lease's end removes it. */
	cr_assert(key_present(NULL));
	uint64_t t0 = hx_now_usec();
	cr_assert(hx_wait_until(key_absent, NULL, 6 * USEC_PER_SEC), "the key outlived its 2 s lease");
	cr_assert_gt(hx_now_usec() - t0, 500 * USEC_PER_MSEC, "the key vanished before its lease could expire");

	_cleanup_(hx_proc_freep) hx_proc *again = start_corrald(cfg, log);
	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC), "restarted corrald did not register");
}

static bool retrying_logged(void *ud) {
	return count_lines(ud, "retrying") >= 1;
}

static bool log_has_registered_twice(void *ud) {
	return count_lines(ud, "registered as") >= 2;
}

Test(corrald, etcd_down_retries_quietly_and_reregisters) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC));
	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	cr_assert(hx_wait_until(retrying_logged, log, 10 * USEC_PER_SEC), "the outage was not reported");
	/* Watch a few more failed attempts (back-off starts at 0.2 s). */
	usleep(3 * USEC_PER_SEC);
	cr_assert(hx_proc_running(d), "corrald must keep running without etcd");
	cr_assert_eq(count_lines(log, "retrying"), 1, "state changes are logged once, not every attempt");

	cr_assert_eq(hx_etcd_start_member(etcd, 0), 0);
	cr_assert(hx_wait_until(log_has_registered_twice, log, 20 * USEC_PER_SEC), "no re-registration");
	cr_assert(hx_wait_until(key_present, NULL, 5 * USEC_PER_SEC));
}

Test(corrald, key_deleted_by_hand_comes_back) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC));
	char *const args[] = { "del", KEY, NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0);
	cr_assert(hx_wait_until(key_present, NULL, 5 * USEC_PER_SEC), "the node key was not written again");
}

static bool reload_refused(void *ud) {
	return count_lines(ud, "keeping the running configuration") >= 1;
}

static bool services_updated(void *ud) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, KEY);
	return v && strstr(v, "Checker");
}

Test(corrald, sighup_reloads_and_keeps_old_config_on_error) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC));

	/* A broken file: reload refused, still registered, still running. */
	cr_assert_eq(hx_write_file(cfg, "cluster: t\nnode_id: [oops\n"), 0);
	cr_assert_eq(hx_proc_signal(d, SIGHUP), 0);
	cr_assert(hx_wait_until(reload_refused, log, 5 * USEC_PER_SEC), "no word about the refused reload");
	cr_assert(hx_proc_running(d));
	cr_assert_eq(count_lines(log, "keeping the running configuration"), 1);
	cr_assert(key_present(NULL));

	/* A good file with another service: the record follows. */
	free(write_config("n1", "Worker, Checker", hx_etcd_endpoints(etcd)));
	cr_assert_eq(hx_proc_signal(d, SIGHUP), 0);
	cr_assert(hx_wait_until(services_updated, NULL, 5 * USEC_PER_SEC), "record not updated after reload");

	/* A new node id: the old key goes, the new one comes. */
	_cleanup_free_ char *renamed = write_config("n2", "Worker", hx_etcd_endpoints(etcd));
	cr_assert_eq(rename(renamed, cfg), 0);
	cr_assert_eq(hx_proc_signal(d, SIGHUP), 0);
	cr_assert(hx_wait_until(key_present, "/corral/t/nodes/n2", 5 * USEC_PER_SEC));
	cr_assert(hx_wait_until(key_absent, KEY, 5 * USEC_PER_SEC));
}

/* ---- reloads while an apply is under way --------------------------------------- */

static bool file_exists(void *ud) {
	return access(ud, F_OK) == 0;
}

typedef struct log_count {
	const char *log, *needle;
	size_t n;
} log_count;

static bool log_has(void *ud) {
	const log_count *lc = ud;
	return count_lines(lc->log, lc->needle) >= lc->n;
}

/* An apply under way reads the conf it started with, so every reload that
 * swaps it out must keep it until that apply ends; corrald once kept them
 * in eight slots and, with all eight taken, treated the ninth reload as a
 * change of registration: it resigned, deregistered, threw the apply away
 * and registered again. Here the apply is held up by its check command
 * (until the test opens the gate) while the same file is reloaded twelve
 * times: every reload must be a plain one, the node stays registered on
 * its first lease, and the apply finishes when the gate opens. */
Test(corrald, many_reloads_while_an_apply_runs) {
	_cleanup_free_ char *checking = path_in("checking"), *gate = path_in("gate"), *out = path_in("cms.json");
	_cleanup_free_ char *more = hx_fmt("files:\n"
					   "  cms:\n"
					   "    path: %s\n"
					   "    check: 'touch %s; while [ ! -e %s ]; do sleep 0.05; done'\n"
					   "initial:\n"
					   "  cms: {a: 1}\n",
					   out, checking, gate);
	_cleanup_free_ char *cfg = path_in("n1.yaml"), *log = path_in("n1.log");
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), more), 0);
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC), "node key never appeared");
	cr_assert(hx_wait_until(file_exists, checking, 20 * USEC_PER_SEC), "the apply never reached its check");

	for (size_t i = 1; i <= 12; i++) {
		/* One at a time: signals sent together may merge into one. */
		log_count lc = { log, "configuration reloaded", i };
		cr_assert_eq(hx_proc_signal(d, SIGHUP), 0);
		cr_assert(hx_wait_until(log_has, &lc, 5 * USEC_PER_SEC), "reload %zu was not done", i);
		cr_assert_eq(count_lines(log, "re-registering"), 0,
			     "reload %zu of an unchanged file was taken for a change of registration", i);
	}
	cr_assert(hx_proc_running(d));
	cr_assert_eq(count_lines(log, "deregistered"), 0);
	cr_assert_eq(count_lines(log, "registered as"), 1, "the node registered again");
	cr_assert(key_present(NULL));

	/* The apply that ran through all of it ends and puts the file in place. */
	cr_assert_eq(hx_write_file(gate, ""), 0);
	log_count applied = { log, "applied config", 1 };
	cr_assert(hx_wait_until(log_has, &applied, 20 * USEC_PER_SEC), "the apply never finished");
	cr_assert(file_exists(out));

	int status;
	cr_assert_eq(hx_proc_signal(d, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(d, 10 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

Test(corrald, corralctl_survives_a_malformed_record) {
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/nodes/bad", "{not json"), 0);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/nodes/good", "{\"address\":\"10.0.0.1\",\"services\":[\"W\"]}"), 0);
	_cleanup_free_ char *out = NULL;
	char *const args[] = { "-e", (char *) hx_etcd_endpoints(etcd), "--cluster", "t", "nodes", NULL };
	cr_assert_eq(corralctl(&out, args), 0);
	cr_assert(strstr(out, "good") && strstr(out, "10.0.0.1") && strstr(out, "bad"), "%s", out);
}

/* Commits a config with a = value straight to etcd; its id. */
static char *commit_config(const char *value) {
	char *const args[] = { "config", "set", "a", (char *) value, NULL };
	cr_assert_eq(hx_corralctl(hx_etcd_endpoints(etcd), NULL, args), 0);
	char *id = hx_etcd_get(etcd, "/corral/t/current");
	cr_assert_not_null(id);
	return id;
}

static bool log_says(const char *path, const char *what) {
	return count_lines(path, what) > 0;
}

static bool proxy_listening(void *ud) {
	return log_says(ud, "listening");
}

static bool proxy_held(void *ud) {
	return log_says(ud, "held 1");
}

/* The leader's collection: a trigger that comes while a collection is under
 * way is not lost. The first collection's listing of configs/ (the only
 * keys-only range corrald sends) is held by tests/holdproxy.py for longer
 * than the collection's delay. Meanwhile a new config comes in: the running
 * collection plans from before it and stops on it, and the new config's
 * trigger fires while that collection runs. What the new config freed must
 * still be collected. */
Test(corrald, collection_triggered_during_a_collection_is_not_lost) {
	_cleanup_free_ char *c1 = commit_config("1"), *c2 = commit_config("2"), *c3 = commit_config("3");
	_cleanup_free_ char *k1 = hx_fmt("/corral/t/configs/%s/a", c1), *k2 = hx_fmt("/corral/t/configs/%s/a", c2);
	_cleanup_free_ char *k3 = hx_fmt("/corral/t/configs/%s/a", c3);
	const char *upstream = strrchr(hx_etcd_endpoint(etcd, 0), ':') + 1;
	int port = hx_free_port();
	_cleanup_free_ char *pport = hx_fmt("%d", port), *plog = path_in("proxy.log");
	_cleanup_free_ char *pprog = hx_fmt("%s/tests/holdproxy.py", hx_srcdir());
	const char *py = getenv("CORRAL_PYTHON3");
	char *const pargv[] = { (char *) (py && *py ? py : "python3"), pprog, pport, (char *) upstream,
				"\"keys_only\":\\s*true", "5", NULL };
	_cleanup_(hx_proc_freep) hx_proc *proxy = NULL;
	cr_assert_eq(hx_proc_spawn(&proxy, pargv, NULL, plog), 0);
	cr_assert(hx_wait_until(proxy_listening, plog, 10 * USEC_PER_SEC), "holdproxy did not start");

	_cleanup_free_ char *cfg = path_in("n1.yaml"), *log = path_in("n1.log");
	_cleanup_free_ char *text = hx_fmt("cluster: t\nnode_id: n1\naddress: 127.0.0.9\nservices: [Worker]\n"
					"lease_ttl: 2s\nlog_level: debug\nhistory: 1\ncollect_interval: 2s\n"
					"debounce: 50ms\nmax_wait: 500ms\n"
					"etcd:\n  endpoints: [http://127.0.0.1:%d]\n  request_timeout: 20s\n"
					"  attempt_timeout: 10s\n  connect_timeout: 500ms\n",
					port);
	cr_assert_eq(hx_write_file(cfg, text), 0);
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);
	if (!hx_wait_until(proxy_held, plog, 20 * USEC_PER_SEC)) {
		hx_log_tail(log, 30);
		cr_assert_fail("the leader did not start collecting");
	}
	_cleanup_free_ char *c4 = commit_config("4");
	_cleanup_free_ char *k4 = hx_fmt("/corral/t/configs/%s/a", c4);

	/* History 1: the new config frees c1 and c2; c3 stays as history. */
	if (!hx_wait_until(key_absent, k1, 20 * USEC_PER_SEC) || !hx_wait_until(key_absent, k2, 5 * USEC_PER_SEC)) {
		hx_log_tail(log, 30);
		cr_assert_fail("the snapshots the new config freed were not collected");
	}
	cr_assert(key_present(k3), "the history snapshot was collected");
	cr_assert(key_present(k4), "the current snapshot was collected");
	cr_assert(log_says(log, "collected 2 old config snapshots"));
}

/* Opens obs on `survivors` and waits for n1's record: its lease. */
static int64_t registered_lease(et *obs, const char *survivors) {
	cr_assert_eq(et_open(obs, survivors, NULL), 0);
	cr_assert(hx_wait_until(key_present, NULL, 10 * USEC_PER_SEC));
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(obs, &(etcd_range_req){ .key = KEY });
	cr_assert_eq(r->n_kvs, 1);
	cr_assert_neq(r->kvs[0].lease, 0);
	return r->kvs[0].lease;
}

Test(corrald_cluster, fails_over_without_losing_registration) {
	_cleanup_free_ char *cfg = write_config("n1", "Worker", hx_etcd_endpoints(etcd));
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);

	/* The observer reads through the members that stay up. (etcdctl's
	 * JSON has uint64 member ids that jansson refuses, so use our client.) */
	char survivors[200];
	snprintf(survivors, sizeof survivors, "%s,%s", hx_etcd_endpoint(etcd, 1), hx_etcd_endpoint(etcd, 2));
	et obs = {};
	int64_t lease = registered_lease(&obs, survivors);

	/* corrald talks to member 0 first; take it away. */
	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	/* For three lease TTLs the key must stay, on the same lease. */
	uint64_t end = hx_now_usec() + 6 * USEC_PER_SEC;
	while (hx_now_usec() < end) {
		_cleanup_(etcd_response_freep) etcd_response *now = et_range(&obs, &(etcd_range_req){ .key = KEY });
		if (now->error.code < 0)
			continue; /* a leader election on the survivors; read again */
		cr_assert_eq(now->n_kvs, 1, "registration lost during fail-over");
		cr_assert_eq(now->kvs[0].lease, lease, "lease changed: it re-registered");
		et_run_for(&obs, 200 * USEC_PER_MSEC);
	}
	cr_assert(hx_proc_running(d));
	cr_assert_eq(count_lines(log, "retrying"), 0, "fail-over is not an outage");
	et_close(&obs);
}

/* The member corrald talks to hangs (SIGSTOP) for longer than the lease TTL:
 * keepalives leave it after a short per-attempt deadline, so the record
 * stays on the same lease. A follower, so no election extends the lease. */
static bool has_leader(void *ud) {
	return hx_etcd_leader(etcd, ud) == 0;
}

Test(corrald_cluster, frozen_member_keeps_registration) {
	unsigned leader = 0;
	cr_assert(hx_wait_until(has_leader, &leader, 10 * USEC_PER_SEC));
	unsigned f = (leader + 1) % 3, o1 = (f + 1) % 3, o2 = (f + 2) % 3;
	char eps[400], survivors[200];
	snprintf(eps, sizeof eps, "%s,%s,%s", hx_etcd_endpoint(etcd, f), hx_etcd_endpoint(etcd, o1),
		 hx_etcd_endpoint(etcd, o2));
	snprintf(survivors, sizeof survivors, "%s,%s", hx_etcd_endpoint(etcd, o1), hx_etcd_endpoint(etcd, o2));
	_cleanup_free_ char *cfg = write_config("n1", "Worker", eps);
	_cleanup_free_ char *log = path_in("n1.log");
	_cleanup_(hx_proc_freep) hx_proc *d = start_corrald(cfg, log);
	et obs = {};
	int64_t lease = registered_lease(&obs, survivors);

	/* lease_ttl is 2 s, request_timeout 3 s: frozen for 3 s. */
	cr_assert_eq(hx_etcd_member_stop(etcd, f), 0);
	uint64_t end = hx_now_usec() + 3 * USEC_PER_SEC;
	bool kept = true;
	while (kept && hx_now_usec() < end) {
		_cleanup_(etcd_response_freep) etcd_response *now = et_range(&obs, &(etcd_range_req){ .key = KEY });
		kept = now->error.code < 0 || (now->n_kvs == 1 && now->kvs[0].lease == lease);
		et_run_for(&obs, 200 * USEC_PER_MSEC);
	}
	cr_assert_eq(hx_etcd_member_cont(etcd, f), 0);
	cr_assert(kept, "nodes/n1 lost its lease while a member was frozen for longer than the TTL");
	cr_assert(hx_proc_running(d));
	et_close(&obs);
}

/* ---- bad input: exit codes and messages ---------------------------------------- */

static int run_corrald(char **err_out, char *const args[]) {
	_cleanup_free_ char *bin = prog("corrald");
	_cleanup_free_ char *errf = NULL;
	char *argv[8] = { "/bin/sh", "-c", NULL };
	_cleanup_free_ char *cmd = NULL;
	_cleanup_free_ char *joined = strdup("");

	for (size_t i = 0; args[i]; i++) {
		char *n;
		cr_assert_geq(asprintf(&n, "%s '%s'", joined, args[i]), 0);
		free(joined);
		joined = n;
	}
	cr_assert_geq(asprintf(&cmd, "'%s'%s 2>&1", bin, joined), 0);
	argv[2] = cmd;
	return hx_run(err_out, 10 * USEC_PER_SEC, argv, NULL);
}

Test(corrald_input, bad_configs_exit_2_with_a_place) {
	dir = hx_mkdtemp("corrald-input");
	_cleanup_free_ char *bad = path_in("bad.yaml"), *unknown = path_in("unknown.yaml"), *missing = path_in("nope.yaml");
	cr_assert_eq(hx_write_file(bad, "cluster: t\netcd:\n  endpoints: [http://127.0.0.1:1\n"), 0);
	cr_assert_eq(hx_write_file(unknown, "cluster: t\nnode_id: a\nendpoint: x\netcd:\n  endpoints: [http://h:1]\n"), 0);

	_cleanup_free_ char *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *o5 = NULL, *o6 = NULL;
	char *const a1[] = { "--config", bad, NULL };
	cr_assert_eq(run_corrald(&o1, a1), 2, "%s", o1);
	cr_assert(strstr(o1, bad) && strstr(o1, ":4:"), "no file:line:column in: %s", o1);

	char *const a2[] = { "--config", unknown, NULL };
	cr_assert_eq(run_corrald(&o2, a2), 2, "%s", o2);
	cr_assert(strstr(o2, ":3:1:") && strstr(o2, "unknown key"), "%s", o2);

	char *const a3[] = { "--config", missing, NULL };
	cr_assert_eq(run_corrald(&o3, a3), 1, "%s", o3);
	cr_assert(strstr(o3, "No such file"), "%s", o3);

	char *const a4[] = { "--bogus", NULL };
	cr_assert_eq(run_corrald(&o4, a4), 2);
	char *const a5[] = { "--help", NULL };
	cr_assert_eq(run_corrald(&o5, a5), 0);
	cr_assert(strstr(o5, "Usage: corrald"));
	char *const a6[] = { "--version", NULL };
	cr_assert_eq(run_corrald(&o6, a6), 0);
	cr_assert(strstr(o6, "corrald "));
	hx_rm_rf(dir);
	free(dir);
	dir = NULL;
}

Test(corrald_input, corralctl_usage_and_unreachable) {
	_cleanup_free_ char *o = NULL;
	char *const none[] = { NULL };
	cr_assert_eq(corralctl(&o, none), 2);
	char *const badfmt[] = { "--cluster", "t", "-o", "xml", "nodes", NULL };
	cr_assert_eq(corralctl(NULL, badfmt), 2);
	char *const badcmd[] = { "--cluster", "t", "frobnicate", NULL };
	cr_assert_eq(corralctl(NULL, badcmd), 2);
	char *const noprefix[] = { "nodes", NULL };
	cr_assert_eq(corralctl(NULL, noprefix), 2);
	char *const badep[] = { "-e", "ftp://x", "--cluster", "t", "nodes", NULL };
	cr_assert_eq(corralctl(NULL, badep), 2);

	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", hx_free_port());
	char *const down_args[] = { "-e", ep, "--cluster", "t", "nodes", NULL };
	cr_assert_eq(corralctl(NULL, down_args), 1, "unreachable etcd is a failed operation");
}
