/* test_hooks.c — the node's deployment hooks (hooks.h) against a real etcd
 * and a real `systemd --user`: the test writes deployments/<id> records
 * with orders as the leader would, and reads deployment_reports/<id>. The
 * hooks are shell commands that append to a log in a temp dir (so what
 * ran, with which environment, and how many times, is what the log says).
 *
 * A hook that must be caught in the middle waits for a file the test
 * creates (hold, release). Waits are the event loop run until a condition
 * holds, up to a deadline. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "deployment.h"
#include "etcd-test.h"
#include "harness.h"
#include "hooks.h"
#include "keys.h"

#define WAIT_USEC (30 * USEC_PER_SEC)
#define PREFIX "/corral/t"

TestSuite(hooks, .timeout = 180);

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static et t;
static units_bus *bus;
static conf *cf;

typedef struct seen {
	unsigned starts, done, failed, trouble;
	char last_trouble[512];
} seen;

static void on_event(hooks_runner *h, const hooks_event *e, void *userdata) {
	seen *s = userdata;

	cr_log_info("hooks event %d: %s", e->kind, e->line);
	switch (e->kind) {
	case HOOKS_EVENT_START:
		s->starts++;
		break;
	case HOOKS_EVENT_DONE:
		s->done++;
		if (e->error)
			s->failed++;
		break;
	case HOOKS_EVENT_TROUBLE:
		s->trouble++;
		snprintf(s->last_trouble, sizeof s->last_trouble, "%s", e->line);
		break;
	}
}

static char *in_dir(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

/* deploy logs its environment (and keeps the record's JSON), holds while
 * "hold" exists until "release" does; backup prints two lines; the
 * maintenance_on hook fails with status 3; maintenance_off is left out. */
static void up(void) {
	_cleanup_free_ char *text = NULL;
	conf_error err;

	et_fixture_up(&etcd, &dir, "hooks", 1);
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	for (char *const *e = hx_systemd_env(sd); *e; e++) {
		_cleanup_free_ char *kv = strdup(*e);
		char *eq = strchr(kv, '=');
		*eq = '\0';
		cr_assert_eq(setenv(kv, eq + 1, 1), 0);
	}
	cr_assert_eq(unsetenv("RUNTIME_DIRECTORY"), 0);
	cr_assert_geq(asprintf(&text,
			       "cluster: t\nprefix: " PREFIX "\nnode_id: n1\naddress: 127.0.0.1\n"
			       "etcd:\n  endpoints: [%s]\nunits_bus: user\n"
			       "deployments:\n"
			       "  memory: 8G\n"
			       "  timeout: 60s\n"
			       "  deploy: echo \"$CORRAL_HOOK $CORRAL_DEPLOYMENT $CORRAL_NODE\" >> %s/log;"
			       " printf '%%s' \"$CORRAL_DEPLOYMENT_JSON\" > %s/json-$CORRAL_DEPLOYMENT;"
			       " if [ -e %s/hold ]; then while [ ! -e %s/release ]; do sleep 0.05; done; fi\n"
			       "  backup: echo \"backup $CORRAL_DEPLOYMENT\" >> %s/log; echo copying;"
			       " echo \"s3://bucket/$CORRAL_DEPLOYMENT\"; echo\n"
			       "  maintenance_on: echo \"maintenance_on $CORRAL_DEPLOYMENT\" >> %s/log; exit 3\n"
			       "  remove: echo \"remove $CORRAL_DEPLOYMENT\" >> %s/log\n",
			       hx_etcd_endpoints(etcd), dir, dir, dir, dir, dir, dir, dir), 0);
	cr_assert_eq(conf_load_string(text, strlen(text), "test.yaml", &cf, &err), 0, "%s", err.message);
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(units_bus_open(&bus, t.event, true), 0);
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

/* The record as the leader writes it: an order of hook #seq for host. */
static char *put_record(const char *id, int64_t seq, deployment_hook hook, const char *host) {
	deployment d = { .id = (char *) id, .owner = "ops@acme.example", .memory = 1LL << 30, .host = (char *) host,
			 .state = DEPLOYMENT_PENDING, .created = time(NULL), .state_since = time(NULL),
			 .last_seq = seq,
			 .order = { .seq = seq, .hook = hook, .host = (char *) host, .since = time(NULL) } };
	json_auto_t *j = deployment_to_json(&d);
	char *text = json_dumps(j, JSON_COMPACT);
	_cleanup_free_ char *key = keys_entry(PREFIX, KEYS_DEPLOYMENTS, id);
	cr_assert_not_null(text);
	cr_assert_eq(et_put(&t, key, text, 0), 0);
	return text;
}

static void put_raw(const char *id, const char *text) {
	_cleanup_free_ char *key = keys_entry(PREFIX, KEYS_DEPLOYMENTS, id);
	cr_assert_eq(et_put(&t, key, text, 0), 0);
}

/* The report of id, or false when there is none. */
static bool get_report(const char *id, deployment_report *out) {
	_cleanup_free_ char *key = keys_entry(PREFIX, KEYS_DEPLOYMENT_REPORTS, id);
	_cleanup_free_ char *text = et_get(&t, key);
	deployment_error err;

	*out = (deployment_report) {};
	if (!text)
		return false;
	json_auto_t *j = json_loads(text, 0, NULL);
	cr_assert_eq(deployment_report_from_json(j, out, &err), 0, "%s: %s", text, err.message);
	return true;
}

typedef struct until {
	const seen *s;
	unsigned n;
	const char *id, *line;
	int64_t seq;
	deployment_report_state state;
} until;

static bool done_reached(void *ud) {
	const until *u = ud;
	return u->s->done >= u->n;
}

static void wait_done(const seen *s, unsigned n) {
	until u = { .s = s, .n = n };
	cr_assert(et_run_until(&t, done_reached, &u, WAIT_USEC), "%u hooks did not end (done %u)", n, s->done);
}

static bool report_reached(void *ud) {
	const until *u = ud;
	_cleanup_(deployment_report_done) deployment_report r = {};
	return get_report(u->id, &r) && r.seq == u->seq && r.state == u->state;
}

static void wait_report(const char *id, int64_t seq, deployment_report_state state) {
	until u = { .id = id, .seq = seq, .state = state };
	cr_assert(et_run_until(&t, report_reached, &u, WAIT_USEC), "no report %s #%lld %s", id, (long long) seq,
		  deployment_report_state_to_string(state));
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

static bool trouble_seen(void *ud) {
	const until *u = ud;
	return u->s->trouble >= u->n;
}

static hooks_runner *runner(seen *s) {
	hooks_runner *h = NULL;
	cr_assert_eq(hooks_runner_new(&h, t.event, t.client, bus, cf, on_event, s), 0);
	return h;
}

Test(hooks, unit_names_are_escaped) {
	_cleanup_free_ char *a = hooks_unit_name("acme", DEPLOYMENT_HOOK_MAINTENANCE_ON, 7);
	_cleanup_free_ char *b = hooks_unit_name("a b/c", DEPLOYMENT_HOOK_DEPLOY, 1);
	cr_assert_str_eq(a, "corral-deployment-acme-maintenance_on-7.service");
	cr_assert_str_eq(b, "corral-deployment-a\\x20b\\x2fc-deploy-1.service");
	cr_assert_null(hooks_unit_name("x", _DEPLOYMENT_HOOK_MAX, 1));
}

Test(hooks, new_needs_a_deployments_section, .init = up, .fini = down) {
	_cleanup_(conf_unrefp) conf *plain = NULL;
	conf_error err;
	hooks_runner *h = NULL;
	_cleanup_free_ char *text = NULL;
	cr_assert_geq(asprintf(&text, "cluster: t\nprefix: " PREFIX "\nnode_id: n1\naddress: 127.0.0.1\n"
			       "etcd:\n  endpoints: [%s]\nunits_bus: user\n", hx_etcd_endpoints(etcd)), 0);
	cr_assert_eq(conf_load_string(text, strlen(text), "plain.yaml", &plain, &err), 0, "%s", err.message);
	cr_assert_eq(hooks_runner_new(&h, t.event, t.client, bus, plain, on_event, NULL), -EINVAL);
	cr_assert_null(h);
}

/* An order for this node runs its hook with the deployment in the
 * environment, and the report says done. */
Test(hooks, an_order_runs_its_hook_and_reports_done, .init = up, .fini = down) {
	seen s = {};
	_cleanup_free_ char *rec = put_record("acme", 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);

	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "deploy acme n1\n");
	_cleanup_free_ char *jpath = in_dir("json-acme");
	_cleanup_free_ char *json = hx_read_file(jpath, NULL);
	cr_assert_str_eq(json, rec, "CORRAL_DEPLOYMENT_JSON is the record as read");
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(get_report("acme", &r));
	cr_assert_eq(r.hook, DEPLOYMENT_HOOK_DEPLOY);
	cr_assert_str_eq(r.host, "n1");
	cr_assert_gt(r.started, 0);
	cr_assert_geq(r.ended, r.started);
	cr_assert_null(r.error);
	wait_done(&s, 1);
	cr_assert_eq(s.failed, 0);
	cr_assert_eq(hooks_runner_running(h), 0);

	/* The next order (seq 2), watched: the backup's last line is where. */
	_cleanup_free_ char *rec2 = put_record("acme", 2, DEPLOYMENT_HOOK_BACKUP, "n1");
	wait_report("acme", 2, DEPLOYMENT_REPORT_DONE);
	deployment_report_done(&r);
	cr_assert(get_report("acme", &r));
	cr_assert_eq(r.hook, DEPLOYMENT_HOOK_BACKUP);
	cr_assert_str_eq(r.output, "s3://bucket/acme", "the last non-empty stdout line");
	_cleanup_free_ char *outdir = NULL;
	cr_assert_geq(asprintf(&outdir, "%s/corral", hx_systemd_runtime_dir(sd)), 0);
	_cleanup_free_ char *unit = hooks_unit_name("acme", DEPLOYMENT_HOOK_BACKUP, 2);
	_cleanup_free_ char *outfile = NULL;
	cr_assert_geq(asprintf(&outfile, "%s/%s.out", outdir, unit), 0);
	cr_assert_neq(access(outdir, F_OK), -1, "the stdout files live in $XDG_RUNTIME_DIR/corral");
	cr_assert_eq(access(outfile, F_OK), -1, "the stdout file is removed after the report");
}

Test(hooks, a_failing_hook_reports_its_exit_status, .init = up, .fini = down) {
	seen s = {};
	_cleanup_free_ char *rec = put_record("acme", 3, DEPLOYMENT_HOOK_MAINTENANCE_ON, "n1");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	wait_report("acme", 3, DEPLOYMENT_REPORT_FAILED);
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(get_report("acme", &r));
	cr_assert_not_null(r.error);
	cr_assert(strstr(r.error, "exit status 3"), "error: %s", r.error);
	cr_assert_null(r.output);
	wait_done(&s, 1);
	cr_assert_eq(s.failed, 1);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "maintenance_on acme\n");
}

/* maintenance_off is not in the section: done at once, nothing run. */
Test(hooks, a_missing_hook_succeeds_at_once, .init = up, .fini = down) {
	seen s = {};
	_cleanup_free_ char *rec = put_record("acme", 4, DEPLOYMENT_HOOK_MAINTENANCE_OFF, "n1");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	wait_report("acme", 4, DEPLOYMENT_REPORT_DONE);
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(get_report("acme", &r));
	cr_assert_eq(r.hook, DEPLOYMENT_HOOK_MAINTENANCE_OFF);
	cr_assert_null(r.error);
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "");
}

/* An order for another node is not ours; ours next to it runs. */
Test(hooks, an_order_for_another_node_is_ignored, .init = up, .fini = down) {
	seen s = {};
	_cleanup_free_ char *other = put_record("beta", 1, DEPLOYMENT_HOOK_DEPLOY, "n2");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	_cleanup_free_ char *mine = put_record("acme", 1, DEPLOYMENT_HOOK_REMOVE, "n1");
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(!get_report("beta", &r), "no report for another node's order");
	_cleanup_free_ char *text = log_text();
	cr_assert_str_eq(text, "remove acme\n");
	cr_assert_eq(s.starts, 1);
}

/* A runner stopped while a hook runs: the next one waits for the unit by
 * name instead of running the hook twice. */
Test(hooks, a_restarted_runner_waits_for_the_running_unit, .init = up, .fini = down) {
	seen s = {};
	touch("hold");
	_cleanup_free_ char *rec = put_record("acme", 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	hooks_runner *h = runner(&s);
	wait_log("deploy acme n1");
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(get_report("acme", &r));
	cr_assert_eq(r.state, DEPLOYMENT_REPORT_RUNNING, "running is written before the unit starts");
	cr_assert_eq(hooks_runner_running(h), 1);
	h = hooks_runner_free(h);

	seen s2 = {};
	_cleanup_(hooks_runner_freep) hooks_runner *h2 = runner(&s2);
	until u = { .s = &s2, .n = 1 };
	cr_assert(et_run_until(&t, done_reached, &u, 300 * USEC_PER_MSEC) == false, "ended while held");
	cr_assert_eq(s2.starts, 1, "waited for, once");
	touch("release");
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);
	_cleanup_free_ char *text = log_text();
	cr_assert_eq(count_lines(text, "deploy acme n1"), 1, "ran once: %s", text);
}

/* A running report whose unit is gone (it ended while no corrald
 * watched): the hook runs again. */
Test(hooks, a_running_report_without_its_unit_runs_again, .init = up, .fini = down) {
	seen s = {};
	deployment_report rep = { .seq = 1, .hook = DEPLOYMENT_HOOK_DEPLOY, .host = "n1",
				  .state = DEPLOYMENT_REPORT_RUNNING, .started = time(NULL) };
	json_auto_t *j = deployment_report_to_json(&rep);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT),
			    *key = keys_entry(PREFIX, KEYS_DEPLOYMENT_REPORTS, "acme");
	cr_assert_eq(et_put(&t, key, text, 0), 0);
	_cleanup_free_ char *rec = put_record("acme", 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);
	_cleanup_free_ char *log = log_text();
	cr_assert_str_eq(log, "deploy acme n1\n");
}

/* A report that says the order ended: not run again (a restart after the
 * end, before the leader cleared the order). */
Test(hooks, an_ended_order_is_not_run_again, .init = up, .fini = down) {
	seen s = {};
	_cleanup_free_ char *rec = put_record("acme", 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	hooks_runner *h = runner(&s);
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);
	h = hooks_runner_free(h);
	seen s2 = {};
	_cleanup_(hooks_runner_freep) hooks_runner *h2 = runner(&s2);
	/* A later order on another deployment proves the runner read and
	 * went past acme's. */
	_cleanup_free_ char *other = put_record("beta", 1, DEPLOYMENT_HOOK_REMOVE, "n1");
	wait_report("beta", 1, DEPLOYMENT_REPORT_DONE);
	_cleanup_free_ char *text = log_text();
	cr_assert_eq(count_lines(text, "deploy acme n1"), 1, "%s", text);
	cr_assert_eq(s2.starts, 1);
}

/* A record that is not a deployment is skipped and said; nothing else
 * stops. */
Test(hooks, a_malformed_record_is_skipped_as_trouble, .init = up, .fini = down) {
	seen s = {};
	put_raw("bad", "{\"state\": \"pending\"");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	until u = { .s = &s, .n = 1 };
	cr_assert(et_run_until(&t, trouble_seen, &u, WAIT_USEC), "no trouble for deployments/bad");
	cr_assert(strstr(s.last_trouble, "deployments/bad"), "%s", s.last_trouble);
	put_raw("worse", "{\"state\": \"sleeping\", \"memory\": 1}");
	u.n = 2;
	cr_assert(et_run_until(&t, trouble_seen, &u, WAIT_USEC), "no trouble for deployments/worse");
	cr_assert(strstr(s.last_trouble, "deployments/worse") && strstr(s.last_trouble, "state"), "%s",
		  s.last_trouble);
	_cleanup_free_ char *rec = put_record("acme", 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	wait_report("acme", 1, DEPLOYMENT_REPORT_DONE);
	_cleanup_(deployment_report_done) deployment_report r = {};
	cr_assert(!get_report("bad", &r));
}

/* Several deployments' orders run side by side (up to 4). */
Test(hooks, orders_of_several_deployments_run_in_parallel, .init = up, .fini = down) {
	seen s = {};
	touch("hold");
	char *recs[5];
	for (int i = 0; i < 5; i++) {
		char id[8];
		snprintf(id, sizeof id, "d%d", i);
		recs[i] = put_record(id, 1, DEPLOYMENT_HOOK_DEPLOY, "n1");
	}
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	for (int i = 0; i < 4; i++) {
		char line[32];
		snprintf(line, sizeof line, "deploy d%d n1", i);
		wait_log(line);
	}
	cr_assert_eq(hooks_runner_running(h), 4);
	_cleanup_free_ char *held = log_text();
	cr_assert_eq(count_lines(held, "deploy d4 n1"), 0, "the fifth waits: %s", held);
	touch("release");
	wait_done(&s, 5);
	cr_assert_eq(s.failed, 0);
	for (int i = 0; i < 5; i++)
		free(recs[i]);
}

typedef struct env_want {
	hooks_runner *h;
	const char *deployments, *owners;
	char last[256];
} env_want;

static bool env_is(void *ud) {
	env_want *w = ud;
	char **env = hooks_runner_env(w->h);
	bool ok = env && streq(env[0] + strlen("CORRAL_DEPLOYMENTS="), w->deployments) &&
		  streq(env[1] + strlen("CORRAL_OWNERS="), w->owners);
	snprintf(w->last, sizeof w->last, "%s | %s", env ? env[0] : "-", env ? env[1] : "-");
	strv_free(env);
	return ok;
}

/* What an in-place upgrade's steps get: the deployments on this host and
 * their owners, each once; not another host's, not a removed one. */
Test(hooks, env_names_the_deployments_on_this_host, .init = up, .fini = down) {
	seen s = {};
	put_raw("acme", "{\"memory\": 1024, \"state\": \"active\", \"host\": \"n1\", \"owner\": \"ops@acme.example\"}");
	put_raw("beta", "{\"memory\": 1024, \"state\": \"active\", \"host\": \"n2\", \"owner\": \"it@beta.example\"}");
	put_raw("gamma", "{\"memory\": 1024, \"state\": \"maintenance\", \"host\": \"n1\", \"owner\": \"ops@acme.example\"}");
	put_raw("old", "{\"memory\": 1024, \"state\": \"removed\", \"last_host\": \"n1\", \"owner\": \"x@old.example\"}");
	_cleanup_(hooks_runner_freep) hooks_runner *h = runner(&s);
	env_want w = { h, "acme gamma", "ops@acme.example" };
	cr_assert(et_run_until(&t, env_is, &w, WAIT_USEC), "env: %s", w.last);
	/* a change is followed: delta arrives, gamma leaves */
	put_raw("delta", "{\"memory\": 1024, \"state\": \"pending\", \"host\": \"n1\", \"owner\": \"it@delta.example\"}");
	put_raw("gamma", "{\"memory\": 1024, \"state\": \"removed\", \"last_host\": \"n1\"}");
	env_want w2 = { h, "acme delta", "ops@acme.example,it@delta.example" };
	cr_assert(et_run_until(&t, env_is, &w2, WAIT_USEC), "env: %s", w2.last);
	cr_assert_null(hooks_runner_env(NULL));
}

/* ---- names ---- */

Test(hooks_names, unit_name_is_per_order_and_escaped) {
	_cleanup_free_ char *a = hooks_unit_name("t-1", DEPLOYMENT_HOOK_BACKUP, 7);
	_cleanup_free_ char *b = hooks_unit_name("t-1", DEPLOYMENT_HOOK_BACKUP, 8);
	_cleanup_free_ char *c = hooks_unit_name("a b", DEPLOYMENT_HOOK_MAINTENANCE_ON, 1);

	cr_assert_str_eq(a, "corral-deployment-t-1-backup-7.service");
	cr_assert_str_neq(a, b);
	cr_assert_str_eq(c, "corral-deployment-a\\x20b-maintenance_on-1.service");
	cr_assert_null(hooks_unit_name("x", _DEPLOYMENT_HOOK_MAX, 1));
	cr_assert_null(hooks_unit_name(NULL, DEPLOYMENT_HOOK_DEPLOY, 1));
}

Test(hooks_names, stdout_dir) {
	cr_assert_eq(setenv("RUNTIME_DIRECTORY", "/run/corral-x:/run/other", 1), 0);
	_cleanup_free_ char *a = hooks_stdout_dir(false);
	cr_assert_str_eq(a, "/run/corral-x");
	cr_assert_eq(unsetenv("RUNTIME_DIRECTORY"), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/7", 1), 0);
	_cleanup_free_ char *u = hooks_stdout_dir(true), *s = hooks_stdout_dir(false);
	cr_assert_str_eq(u, "/run/user/7/corral");
	cr_assert_str_eq(s, "/run/corral");
}
