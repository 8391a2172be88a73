/* test_scale_status.c — what an operator sees of the leader's scaling,
 * end to end: a real corrald leads a real etcd and scales against moto
 * behind tests/ec2proxy.py (which can drop every EC2 call). Asserted on
 * the text the operator reads: corrald's log lines (key=value, one line
 * each, failures at warning), `corralctl status`'s `scaling:` line, the
 * corral_scaling_* metrics, and `corralctl scale history`. */
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-test.h"
#include "scale-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"

static hx_etcd *etcd;
static hx_moto *moto;
static et t;
static json_t *setup;

static void up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	cr_assert_eq(hx_moto_reset(moto), 0);
}

static void down(void) {
	et_close(&t);
	json_decref(setup);
	setup = NULL;
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
}

TestSuite(scale_status, .init = up, .fini = down, .timeout = 240);

/* ---- corrald ---- */

typedef struct node {
	const char *grace;      /* launch_grace; NULL: 300s */
	char *dir, *cfg, *log;
	hx_proc *p;
} node;

/* corrald's config: pool web, metrics on a port of its own, EC2 on moto
 * when region. */
static void write_config(node *n, bool region) {
	_cleanup_free_ char *more =
		region ? hx_fmt("pool: web\nscale_interval: 1s\nlaunch_grace: %s\nmetrics_listen: 127.0.0.1:0\nec2:\n  region: %s\n"
			     "  endpoint: %s\n  imds_endpoint: \"\"\n  instance_id: i-self\n",
			     n->grace ?: "300s", hx_moto_region(moto), hx_moto_endpoint(moto))
		       : hx_fmt("pool: web\nscale_interval: 1s\nmetrics_listen: 127.0.0.1:0\n");
	cr_assert_eq(hx_write_corrald_config_full(n->cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), more), 0);
}

static void start_corrald(node *n, bool region) {
	n->dir = hx_mkdtemp("scalestatus");
	n->cfg = hx_fmt("%s/n1.yaml", n->dir);
	n->log = hx_fmt("%s/n1.log", n->dir);
	write_config(n, region);
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	_cleanup_free_ char *key = hx_fmt("AWS_ACCESS_KEY_ID=%s", hx_moto_access_key_id(moto));
	_cleanup_free_ char *secret = hx_fmt("AWS_SECRET_ACCESS_KEY=%s", hx_moto_secret_access_key(moto));
	/* corrald writes journald's "<N>" level prefixes when its stderr is
	 * the stream JOURNAL_STREAM names: the log file, so the levels can be
	 * asserted ("<4>" warning, "<6>" info). */
	int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	struct stat sb;
	cr_assert(fd >= 0 && fstat(fd, &sb) == 0);
	close(fd);
	_cleanup_free_ char *journal = hx_fmt("JOURNAL_STREAM=%llu:%llu", (unsigned long long) sb.st_dev,
					   (unsigned long long) sb.st_ino);
	char *const argv[] = { bin, "--config", n->cfg, NULL };
	char *const env[] = { key, secret, journal, NULL };
	cr_assert_eq(hx_proc_spawn(&n->p, argv, env, n->log), 0);
}

static void stop_corrald(node *n) {
	int status = -1;
	cr_assert_eq(hx_proc_signal(n->p, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(n->p, 15 * USEC_PER_SEC, &status), 0, "corrald did not stop");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		hx_log_tail(n->log, 40);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald exited with %d", status);
	n->p = hx_proc_free(n->p);
	hx_rm_tmp(n->dir);
	free(n->dir);
	free(n->cfg);
	free(n->log);
}

/* ---- what the operator reads ---- */

typedef struct want {
	node *n;
	const char *needle;
	int count;              /* at least; 0: 1 */
} want;

static bool log_has(void *ud) {
	want *w = ud;
	return hx_count_in_file(w->n->log, w->needle) >= (size_t) (w->count ?: 1);
}

static void wait_log(node *n, const char *needle, int count) {
	want w = { n, needle, count };
	if (!hx_wait_until(log_has, &w, 60 * USEC_PER_SEC)) {
		hx_log_tail(n->log, 60);
		cr_assert_fail("corrald never logged \"%s\"", needle);
	}
}

/* The whole log line holding needle (free it). */
static char *log_line(node *n, const char *needle) {
	_cleanup_free_ char *text = hx_read_file(n->log, NULL);
	const char *p = text ? strstr(text, needle) : NULL;
	cr_assert_not_null(p, "no line with \"%s\"", needle);
	const char *b = p, *e = strchr(p, '\n');
	while (b > text && b[-1] != '\n')
		b--;
	return strndup(b, e ? (size_t) (e - b) : strlen(b));
}

static char *ctl(int want_rc, char *const args[]) {
	char *out = NULL;
	_cleanup_free_ char *err = NULL;
	int rc = ctlt_run(hx_etcd_endpoints(etcd), PREFIX, &out, &err, args);
	cr_assert_eq(rc, want_rc, "corralctl %s: exit %d\n%s%s", args[0], rc, out ?: "", err ?: "");
	return out;
}

static bool status_says(void *ud) {
	char *const args[] = { "status", NULL };
	_cleanup_free_ char *out = NULL;
	if (ctlt_run(hx_etcd_endpoints(etcd), PREFIX, &out, NULL, args) != 0)
		return false;
	return out && strstr(out, ud);
}

static void wait_status(const char *needle) {
	if (!hx_wait_until(status_says, (void *) needle, 60 * USEC_PER_SEC)) {
		char *const args[] = { "status", NULL };
		_cleanup_free_ char *out = ctl(0, args);
		cr_assert_fail("status never said \"%s\":\n%s", needle, out);
	}
}

static int metrics_port(node *n) {
	wait_log(n, "metrics: serving http://", 1);
	_cleanup_free_ char *text = hx_read_file(n->log, NULL);
	const char *p = strstr(strstr(text, "metrics: serving http://"), "(port ");
	cr_assert_not_null(p);
	return atoi(p + 6);
}

typedef struct scrape_want {
	int port;
	const char *line;
} scrape_want;

static bool scrape_has(void *ud) {
	scrape_want *w = ud;
	_cleanup_free_ char *url = hx_fmt("http://127.0.0.1:%d/metrics", w->port);
	hx_http_req rq = { .url = url, .timeout_ms = 2000 };
	_cleanup_free_ char *body = NULL;
	long code = 0;
	return hx_http(&rq, &body, &code) == 0 && code == 200 && body && strstr(body, w->line);
}

static void wait_scrape(int port, const char *line) {
	scrape_want w = { port, line };
	cr_assert(hx_wait_until(scrape_has, &w, 60 * USEC_PER_SEC), "/metrics never showed \"%s\"", line);
}

static void policy(int hosts) {
	_cleanup_free_ char *p = st_fixed_web_policy(setup, hosts, hosts);
	st_put(&t, PREFIX, "scale/policy", p);
}

static bool launching_record(void *ud) {
	json_auto_t *recs = st_records(&t, PREFIX);
	return st_count_state(recs, "launching") >= *(size_t *) ud;
}

/* ---- the tests ---- */

/* A scale-up: the decision and the launch are one line each, with their
 * fields; status says scaling is ok; the history lists the launch with
 * its inputs; the metrics say ok. */
Test(scale_status, scale_up_is_logged_recorded_and_shown) {
	node n = {};
	policy(1);
	start_corrald(&n, true);
	int port = metrics_port(&n);
	size_t one = 1;
	cr_assert(hx_wait_until(launching_record, &one, 60 * USEC_PER_SEC), "nothing launched");

	/* the log: one line per decision and action, key=value */
	wait_log(&n, "<6>scale: launch pool=web type=t3.micro market=on-demand count=1", 1);
	_cleanup_free_ char *launch = log_line(&n, "scale: launch pool=web");
	cr_assert(strstr(launch, " token=corral-") && strstr(launch, " instances=i-") && strstr(launch, " result=ok"),
		  "%s", launch);
	cr_assert(strstr(launch, " reason="), "%s", launch);
	_cleanup_free_ char *decision = log_line(&n, "scale: decision pool=web");
	cr_assert(strstr(decision, " desired=1 ready=0 launching=0 ") && strstr(decision, " launch=1 "), "%s", decision);
	wait_log(&n, "<6>scale: status state=ok code=ok", 1);
	wait_log(&n, "became leader (token ", 1);
	_cleanup_free_ char *text = hx_read_file(n.log, NULL);
	cr_assert_null(strstr(text, "autoscaler: pool "), "the old free-text lines are gone");
	/* a second decision line only when something changes: the launched
	 * host shows as launching once, then nothing changes */
	wait_log(&n, "scale: decision pool=web desired=1 ready=0 launching=1 ", 1);

	wait_status("scaling: ok, last decision ");
	char *const st_args[] = { "status", NULL };
	_cleanup_free_ char *st = ctl(0, st_args);
	cr_assert(strstr(st, ", next evaluation "), "%s", st);
	cr_assert(strstr(st, "pool web: desired 1 (fixed)"), "%s", st);
	cr_assert_null(strstr(st, "stale"), "%s", st);

	/* the history: the launch, with its inputs */
	char *const h_args[] = { "scale", "history", NULL };
	_cleanup_free_ char *h = ctl(0, h_args);
	cr_assert(strstr(h, "TIME") && strstr(h, "DESIRED") && strstr(h, "ACTIONS"), "%s", h);
	cr_assert(strstr(h, "launch 1 x t3.micro on-demand"), "%s", h);
	char *const hj_args[] = { "-o", "json", "scale", "history", "--since", "1h", "--pool", "web", NULL };
	_cleanup_free_ char *hj = ctl(0, hj_args);
	json_auto_t *recs = json_loads(hj, 0, NULL);
	cr_assert(json_is_array(recs) && json_array_size(recs) >= 1, "%s", hj);
	json_t *first = json_array_get(recs, 0);
	json_t *web = json_object_get(json_object_get(first, "pools"), "web");
	cr_assert_eq(json_integer_value(json_object_get(web, "desired_hosts")), 1, "%s", hj);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(web, "hosts"), "ready")), 0, "%s", hj);
	json_t *act = json_array_get(json_object_get(first, "actions"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(act, "action")), "launch", "%s", hj);
	cr_assert_str_eq(json_string_value(json_object_get(first, "outcome")), "ok", "%s", hj);
	cr_assert_eq(json_array_size(json_object_get(first, "launched")), 1, "%s", hj);
	char *const other_args[] = { "scale", "history", "--pool", "batch", NULL };
	_cleanup_free_ char *other = ctl(0, other_args);
	cr_assert(strstr(other, "no decisions recorded for pool batch"), "%s", other);
	char *const bad_args[] = { "scale", "history", "--since", "soon", NULL };
	_cleanup_free_ char *bad = ctl(2, bad_args);

	wait_scrape(port, "corral_scaling_ok 1");
	wait_scrape(port, "corral_scaling_status{code=\"ok\"} 1");
	stop_corrald(&n);
}

/* EC2 unreachable (the proxy drops every call): a warning line, status
 * says stopped with the reason and since when, the desired count shown
 * as stale, the metrics say 0; once EC2 answers again: ok. */
Test(scale_status, ec2_unreachable_then_recovered) {
	node n = {};
	policy(1);
	start_corrald(&n, true);
	int port = metrics_port(&n);
	wait_status("scaling: ok, ");

	cr_assert_eq(hx_moto_fault(moto, "*", "drop", -1, 0), 0);
	wait_log(&n, "scale: status state=stopped code=ec2_unreachable", 1);
	_cleanup_free_ char *line = log_line(&n, "scale: status state=stopped code=ec2_unreachable");
	cr_assert(startswith(line, "<4>scale: status"), "not a warning: %s", line);
	cr_assert(strstr(line, "reason=\"EC2 unreachable: DescribeInstances"), "%s", line);
	wait_status("scaling: stopped since ");
	char *const st_args[] = { "status", NULL };
	_cleanup_free_ char *st = ctl(0, st_args);
	cr_assert(strstr(st, ": EC2 unreachable: DescribeInstances"), "%s", st);
	cr_assert(strstr(st, "stale: the leader is not scaling"), "the desired count is not marked stale:\n%s", st);
	wait_scrape(port, "corral_scaling_ok 0");
	wait_scrape(port, "corral_scaling_status{code=\"ec2_unreachable\"} 1");
	/* the failure is said once, not every cycle */
	_cleanup_free_ char *text = hx_read_file(n.log, NULL);
	const char *p = strstr(text, "code=ec2_unreachable");
	cr_assert_null(strstr(p + 1, "code=ec2_unreachable"), "said twice:\n%s", text);

	cr_assert_eq(hx_moto_set_faults(moto, "[]"), 0);
	wait_log(&n, "scale: status state=ok code=ok", 2);
	wait_status("scaling: ok, ");
	wait_scrape(port, "corral_scaling_ok 1");
	stop_corrald(&n);
}

/* No region: the leader cannot scale and says why, in the log, in status
 * and in the metrics; without a policy scaling is off, which is fine;
 * with the region back (a reload) it scales. */
Test(scale_status, missing_region) {
	node n = {};
	policy(1);
	start_corrald(&n, false);
	int port = metrics_port(&n);
	wait_log(&n, "<4>scale: status state=stopped code=no_region", 1);
	wait_status("scaling: stopped since ");
	char *const st_args[] = { "status", NULL };
	_cleanup_free_ char *st = ctl(0, st_args);
	cr_assert(strstr(st, ": no EC2 region (set ec2.region)"), "%s", st);
	wait_scrape(port, "corral_scaling_ok 0");
	wait_scrape(port, "corral_scaling_status{code=\"no_region\"} 1");
	char *const j_args[] = { "-o", "json", "status", NULL };
	_cleanup_free_ char *js = ctl(0, j_args);
	json_auto_t *j = json_loads(js, 0, NULL);
	json_t *status = json_object_get(json_object_get(json_object_get(j, "scaling"), "status"), "status");
	cr_assert_str_eq(json_string_value(json_object_get(status, "code")), "no_region", "%s", js);
	cr_assert_str_eq(json_string_value(json_object_get(status, "state")), "stopped", "%s", js);

	/* a cluster that does not autoscale: off, and nothing to alert on */
	st_del(&t, PREFIX, "scale/policy");
	wait_status("scaling: off since ");
	wait_scrape(port, "corral_scaling_ok 1");
	wait_scrape(port, "corral_scaling_status{code=\"no_policy\"} 1");
	_cleanup_free_ char *text = hx_read_file(n.log, NULL);
	cr_assert_null(strstr(text, "autoscaler: started"), "no scaler on EC2 without a region:\n%s", text);
	_cleanup_free_ char *url = hx_fmt("http://127.0.0.1:%d/metrics", port), *body = NULL;
	hx_http_req rq = { .url = url, .timeout_ms = 2000 };
	cr_assert_eq(hx_http(&rq, &body, NULL), 0);
	cr_assert(body && !strstr(body, "corral_scale_"), "the EC2 scaler's metrics without EC2:\n%s", body ?: "");

	policy(1);
	write_config(&n, true);
	cr_assert_eq(hx_proc_signal(n.p, SIGHUP), 0);
	wait_log(&n, "scale: status state=ok code=ok", 1);
	wait_status("scaling: ok, ");
	stop_corrald(&n);
}

/* An instance tagged for the cluster that no record names: terminated
 * once the launch grace is over, with a line naming it and why; the next
 * cycle finds it gone and says so too. Then an invalid policy: stopped. */
Test(scale_status, orphan_terminated_with_a_line) {
	node n = { .grace = "1s" };
	policy(0);
	start_corrald(&n, true);
	wait_status("scaling: ok, ");
	json_auto_t *orphan = NULL;
	cr_assert_eq(hx_moto_run(moto, "{\"tags\": {\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}}", &orphan), 0);
	const char *id = json_string_value(json_object_get(orphan, "id"));
	cr_assert_not_null(id);
	_cleanup_free_ char *term = hx_fmt("<6>scale: terminate instance=%s cluster=t reason=orphan", id);
	wait_log(&n, term, 1);
	_cleanup_free_ char *gone = hx_fmt("<6>scale: mark instance=%s pool=web to=terminated reason=\"terminated in EC2\"", id);
	wait_log(&n, gone, 1);
	/* both decisions are in the history */
	char *const hj_args[] = { "-o", "json", "scale", "history", NULL };
	_cleanup_free_ char *hj = ctl(0, hj_args);
	cr_assert(strstr(hj, id), "%s", hj);

	/* a policy that does not parse stops scaling, and status says why */
	st_put(&t, PREFIX, "scale/policy", "{\"pools\": {\"web\": {\"min\": 5, \"max\": 1}}}");
	wait_status("scaling: stopped since ");
	char *const st_args[] = { "status", NULL };
	_cleanup_free_ char *st = ctl(0, st_args);
	cr_assert(strstr(st, ": invalid scale/policy: pools.web"), "%s", st);
	wait_log(&n, "<4>scale: status state=stopped code=policy_invalid", 1);
	stop_corrald(&n);
}
