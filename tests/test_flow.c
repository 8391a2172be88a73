/* test_flow.c — the CMS flow end to end: three corrald against a real etcd
 * and a real `systemd --user`, driven by corralctl.
 *
 * Each node renders cms.conf and cms.ranking.conf into its own directory
 * and restarts its own unit (cms-nI.service) when cms.conf changes; the
 * nodes' Worker/LogService entries are merged into cms/core_services by
 * topology rules. The unit refuses to start on a cms.conf that mentions
 * "fail_start" (a service that validates its config at start), and the
 * check command rejects one that mentions "reject_me". */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include "harness.h"

#define N 3
#define CONVERGE_USEC (30 * USEC_PER_SEC)

typedef struct node {
	char *id, *dir, *cfg, *log, *cms, *ranking, *unit;
	hx_proc *proc;
} node;

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static node nodes[N];
/* Debounce and history settings for every node of a test. */
static const char *tuning = "debounce: 50ms\nmax_wait: 500ms\n";

static const char CMS_CONF[] =
	"{\n"
	"  \"_help\": \"There is no way to put comments in a JSON file; the fields starting with '_' are comments.\",\n"
	"  \"temp_dir\": \"/tmp\",\n"
	"  \"backdoor\": false,\n"
	"  \"file_log_debug\": false,\n"
	"  \"core_services\": {\n"
	"    \"LogService\": [],\n"
	"    \"ResourceService\": [[\"localhost\", 28000]],\n"
	"    \"ScoringService\": [[\"localhost\", 28500]],\n"
	"    \"Checker\": [[\"localhost\", 22000]],\n"
	"    \"EvaluationService\": [[\"localhost\", 25000]],\n"
	"    \"Worker\": [],\n"
	"    \"ContestWebServer\": [[\"localhost\", 21000]],\n"
	"    \"AdminWebServer\": [[\"localhost\", 21100]],\n"
	"    \"ProxyService\": [[\"localhost\", 28600]],\n"
	"    \"PrintingService\": [[\"localhost\", 25123]]\n"
	"  },\n"
	"  \"other_services\": {\"TestFileCacher\": [[\"localhost\", 27501]]},\n"
	"  \"database\": \"postgresql+psycopg2://cmsuser:your_password_here@localhost:5432/cmsdb\",\n"
	"  \"database_debug\": false,\n"
	"  \"twophase_commit\": false,\n"
	"  \"keep_sandbox\": false,\n"
	"  \"sandbox_implementation\": \"isolate\",\n"
	"  \"max_file_size\": 1048576,\n"
	"  \"contest_listen_address\": [\"\"],\n"
	"  \"contest_listen_port\": [8888],\n"
	"  \"cookie_duration\": 10800,\n"
	"  \"submit_local_copy\": true,\n"
	"  \"submit_local_copy_path\": \"%s/submissions/\",\n"
	"  \"is_proxy_used\": null,\n"
	"  \"max_submission_length\": 100000,\n"
	"  \"max_input_length\": 5000000,\n"
	"  \"stl_path\": \"/usr/share/cppreference/doc/html/\",\n"
	"  \"admin_listen_address\": \"\",\n"
	"  \"admin_listen_port\": 8889,\n"
	"  \"rankings\": [\"http://usern4me:passw0rd@localhost:8890/\"],\n"
	"  \"https_certfile\": null,\n"
	"  \"paper_size\": \"A4\",\n"
	"  \"max_pages_per_job\": 10,\n"
	"  \"pdf_printing_allowed\": false\n"
	"}\n";

static const char RANKING_CONF[] =
	"{\"bind_address\": \"\", \"http_port\": 8890, \"https_port\": null, \"timeout\": 600,\n"
	" \"realm_name\": \"Scoreboard\", \"buffer_size\": 100, \"score_precision\": 0.5}\n";

/* ---- helpers ------------------------------------------------------------------ */

static int corralctl(char **out, char *const args[]) {
	return hx_corralctl(hx_etcd_endpoints(etcd), out, args);
}

#define CTL(...) corralctl(NULL, (char *const[]){ __VA_ARGS__, NULL })

static void write_node_config(node *n, unsigned i, const char *check) {
	const char *services = i == 0 ? "Worker, LogService" : "Worker";
	_cleanup_free_ char *address = hx_fmt("127.0.0.%u", 11 + i);
	_cleanup_free_ char *render = hx_fmt(
		"files:\n"
		"  cms:\n"
		"    path: %s\n"
		"    mode: \"0640\"\n"
		"    check: '%s'\n"
		"    restart: [%s]\n"
		"  ranking:\n"
		"    path: %s\n"
		"topology:\n"
		"  - service: Worker\n"
		"    path: cms/core_services/Worker\n"
		"    value: [\"{address}\", 26000]\n"
		"  - service: LogService\n"
		"    path: cms/core_services/LogService\n"
		"    value: [\"{address}\", 29000]\n"
		"units_bus: user\n"
		"unit_timeout: 20s\n"
		"%s",
		n->cms, check, n->unit, n->ranking, tuning);
	cr_assert_eq(hx_write_corrald_config_full(n->cfg, n->id, address, services, hx_etcd_endpoints(etcd), render), 0);
}

static void start_node(node *n) {
	cr_assert_eq(hx_corrald_spawn(&n->proc, n->cfg, hx_systemd_env(sd), n->log), 0);
}

static void up_with(const char *check2) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	dir = hx_mkdtemp("flow");
	cr_assert_not_null(dir);
	for (unsigned i = 0; i < N; i++) {
		node *n = &nodes[i];
		n->id = hx_fmt("n%u", i + 1);
		n->dir = hx_fmt("%s/%s", dir, n->id);
		cr_assert_eq(mkdir(n->dir, 0755), 0);
		n->cfg = hx_fmt("%s/corrald.yaml", n->dir);
		n->log = hx_fmt("%s/corrald.log", n->dir);
		n->cms = hx_fmt("%s/cms.conf", n->dir);
		n->ranking = hx_fmt("%s/cms.ranking.conf", n->dir);
		n->unit = hx_fmt("cms-%s.service", n->id);
		write_node_config(n, i, i == 1 && check2 ? check2 : "! grep -q reject_me \"$1\"");
		/* Each start leaves a line in starts.log, to count restarts. */
		_cleanup_free_ char *unit = hx_fmt("[Unit]\nDescription=CMS stand-in on %s\n[Service]\n"
						"ExecStartPre=/bin/sh -c '! grep -q fail_start %s'\n"
						"ExecStartPre=/bin/sh -c 'echo start >> %s/starts.log'\n"
						"ExecStart=/bin/sleep infinity\n",
						n->id, n->cms, n->dir);
		cr_assert_eq(hx_systemd_install_unit(sd, n->unit, unit), 0);
	}
	/* The operator imports the config, then the nodes boot. */
	_cleanup_free_ char *cms = hx_fmt("%s/cms.json", dir), *ranking = hx_fmt("%s/ranking.json", dir);
	cr_assert_eq(hx_write_file(cms, CMS_CONF), 0);
	cr_assert_eq(hx_write_file(ranking, RANKING_CONF), 0);
	cr_assert_eq(CTL("config", "import", "cms", cms), 0);
	cr_assert_eq(CTL("config", "import", "ranking", ranking), 0);
	for (unsigned i = 0; i < N; i++)
		start_node(&nodes[i]);
}

static void up(void) {
	up_with(NULL);
}

/* Node 2 checks slowly, so a kill can land mid-change. */
static void up_slow(void) {
	up_with("sleep 2; ! grep -q reject_me \"$1\"");
}

static void down(void) {
	bool failed = false;
	for (unsigned i = 0; i < N; i++) {
		node *n = &nodes[i];
		n->proc = hx_proc_free(n->proc);
		if (getenv("CORRAL_FLOW_LOGS") && n->log)
			hx_log_tail(n->log, 60);
		free(n->id);
		free(n->dir);
		free(n->cfg);
		free(n->log);
		free(n->cms);
		free(n->ranking);
		free(n->unit);
		*n = (node){};
	}
	(void) failed;
	sd = hx_systemd_free(sd);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

/* A long quiet period, so an edit storm can fall inside one; a short
 * history, so collection shows. */
static void up_storm(void) {
	tuning = "debounce: 1500ms\nmax_wait: 20s\nhistory: 3\ncollect_interval: 2s\n";
	up_with(NULL);
}

TestSuite(flow, .init = up, .fini = down, .timeout = 180);
TestSuite(flow_slow, .init = up_slow, .fini = down, .timeout = 180);
TestSuite(flow_storm, .init = up_storm, .fini = down, .timeout = 180);

static json_t *file_json(const char *path) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	return text ? json_loads(text, 0, NULL) : NULL;
}

static json_t *at(json_t *v, const char *a, const char *b) {
	v = json_object_get(v, a);
	return b ? json_object_get(v, b) : v;
}

/* Every file of `which` nodes satisfies pred(file json, ud). */
typedef struct expect {
	unsigned mask;                  /* bit i: node i */
	bool (*pred)(json_t *cms, const void *arg);
	const void *arg;
} expect;

static bool all_nodes(void *ud) {
	const expect *e = ud;
	for (unsigned i = 0; i < N; i++) {
		if (!(e->mask & (1u << i)))
			continue;
		json_auto_t *cms = file_json(nodes[i].cms);
		if (!cms || !e->pred(cms, e->arg))
			return false;
	}
	return true;
}

static void wait_nodes(unsigned mask, bool (*pred)(json_t *, const void *), const void *arg, const char *what) {
	expect e = { mask, pred, arg };
	if (!hx_wait_until(all_nodes, &e, CONVERGE_USEC)) {
		for (unsigned i = 0; i < N; i++)
			if (mask & (1u << i)) {
				_cleanup_free_ char *text = hx_read_file(nodes[i].cms, NULL);
				fprintf(stderr, "%s cms.conf: %s\n", nodes[i].id, text ? text : "(none)");
				hx_log_tail(nodes[i].log, 40);
			}
		cr_assert_fail("nodes did not converge: %s", what);
	}
}

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The Worker entries, as a set of last octets ("11,12,13"): their order is
 * the order the nodes joined in, which races. */
static bool workers_are(json_t *cms, const void *arg) {
	json_t *w = at(at(cms, "core_services", NULL), "Worker", NULL);
	const char *want = arg;
	const char *octets[16];
	size_t i, n = 0;
	json_t *e;
	char got[64] = "";

	if (!json_is_array(w) || json_array_size(w) > ELEMENTSOF(octets))
		return false;
	json_array_foreach(w, i, e) {
		const char *addr = json_string_value(json_array_get(e, 0));
		if (!addr || json_integer_value(json_array_get(e, 1)) != 26000 || strncmp(addr, "127.0.0.", 8))
			return false;
		octets[n++] = addr + 8;
	}
	qsort(octets, n, sizeof *octets, cmp_str);
	for (i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "", octets[i]);
	return streq(got, want);
}

static bool has_int(json_t *cms, const void *arg) {
	const struct { const char *key; json_int_t v; } *kv = arg;
	return json_integer_value(json_object_get(cms, kv->key)) == kv->v && json_object_get(cms, kv->key);
}

static bool lacks(json_t *cms, const void *arg) {
	return json_object_get(cms, arg) == NULL;
}

static long main_pid(node *n) {
	_cleanup_free_ char *v = hx_systemd_unit_property(sd, n->unit, "MainPID");
	return v ? atol(v) : -1;
}

static bool active(node *n) {
	_cleanup_free_ char *v = hx_systemd_unit_property(sd, n->unit, "ActiveState");
	return v && streq(v, "active");
}

typedef struct pid_wait {
	node *n;
	long old;
} pid_wait;

static bool restarted(void *ud) {
	pid_wait *w = ud;
	long pid = main_pid(w->n);
	return pid > 0 && pid != w->old && active(w->n);
}

static ino_t inode_of(const char *path) {
	struct stat st;
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static json_t *status_of(const char *id) {
	_cleanup_free_ char *key = hx_fmt("/corral/t/status/%s", id);
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	return v ? json_loads(v, 0, NULL) : NULL;
}

static char *current(void) {
	return hx_etcd_get(etcd, "/corral/t/current");
}

typedef struct status_wait {
	const char *id;
	const char *target;             /* NULL: any */
	bool ok;
	const char *error_has;          /* NULL: any */
} status_wait;

static bool status_is(void *ud) {
	status_wait *w = ud;
	json_auto_t *s = status_of(w->id);
	const char *err = json_string_value(json_object_get(s, "error"));
	return s && json_is_true(json_object_get(s, "ok")) == w->ok &&
	       (!w->target || streq_ptr(json_string_value(json_object_get(s, "target")), w->target)) &&
	       (!w->error_has || (err && strstr(err, w->error_has)));
}

static void wait_status(const char *id, const char *target, bool ok, const char *error_has) {
	status_wait w = { id, target, ok, error_has };
	if (!hx_wait_until(status_is, &w, CONVERGE_USEC)) {
		json_auto_t *s = status_of(id);
		_cleanup_free_ char *text = s ? json_dumps(s, JSON_INDENT(1)) : NULL;
		cr_assert_fail("status of %s never became ok=%d target=%s error~%s; it is %s", id, ok,
			       target ? target : "*", error_has ? error_has : "*", text ? text : "(none)");
	}
}

static void converge_on_join(void) {
	wait_nodes(7, workers_are, "11,12,13", "all three Workers in every cms.conf");
	for (unsigned i = 0; i < N; i++) {
		json_auto_t *cms = file_json(nodes[i].cms);
		json_t *log = at(at(cms, "core_services", NULL), "LogService", NULL);
		cr_assert_eq(json_array_size(log), 1, "one LogService entry on %s", nodes[i].id);
		cr_assert_str_eq(json_string_value(json_array_get(json_array_get(log, 0), 0)), "127.0.0.11");
		json_auto_t *ranking = file_json(nodes[i].ranking);
		json_auto_t *want = json_loads(RANKING_CONF, 0, NULL);
		cr_assert(json_equal(ranking, want), "ranking file on %s is not the imported one", nodes[i].id);
		cr_assert_str_eq(json_string_value(at(cms, "database", NULL)),
				 "postgresql+psycopg2://cmsuser:your_password_here@localhost:5432/cmsdb");
		struct stat st;
		cr_assert_eq(stat(nodes[i].cms, &st), 0);
		cr_assert_eq(st.st_mode & 07777, 0640, "mode from the node config");
	}
	_cleanup_free_ char *cur = current();
	cr_assert_not_null(cur);
	for (unsigned i = 0; i < N; i++) {
		wait_status(nodes[i].id, cur, true, NULL);
		cr_assert(active(&nodes[i]), "%s runs", nodes[i].unit);
	}
}

/* ---- tests ---------------------------------------------------------------------- */

Test(flow, join_set_leave) {
	converge_on_join();

	/* A config edit reaches every file and restarts every unit, once the
	 * file changed; the ranking file, unchanged, is not rewritten. */
	long pids[N];
	ino_t ranking_ino[N];
	for (unsigned i = 0; i < N; i++) {
		pids[i] = main_pid(&nodes[i]);
		ranking_ino[i] = inode_of(nodes[i].ranking);
		cr_assert_gt(pids[i], 0);
	}
	cr_assert_eq(CTL("config", "set", "cms/max_submission_length", "200000"), 0);
	struct { const char *key; json_int_t v; } kv = { "max_submission_length", 200000 };
	wait_nodes(7, has_int, &kv, "max_submission_length 200000 everywhere");
	for (unsigned i = 0; i < N; i++) {
		pid_wait w = { &nodes[i], pids[i] };
		cr_assert(hx_wait_until(restarted, &w, CONVERGE_USEC), "%s was not restarted", nodes[i].unit);
		cr_assert_eq(inode_of(nodes[i].ranking), ranking_ino[i], "unchanged ranking file rewritten on %s",
			     nodes[i].id);
	}
	/* Topology survives the edit. */
	wait_nodes(7, workers_are, "11,12,13", "Workers kept across an edit");

	/* A node that dies leaves the others' core_services once its lease
	 * expires. */
	cr_assert_eq(hx_proc_signal(nodes[2].proc, SIGKILL), 0);
	cr_assert_eq(hx_proc_wait(nodes[2].proc, 5 * USEC_PER_SEC, NULL), 0);
	wait_nodes(3, workers_are, "11,12", "the dead node's Worker removed");

	/* corralctl status: both live nodes run current, healthy. */
	_cleanup_free_ char *cur = current(), *out = NULL;
	wait_status("n1", cur, true, NULL);
	wait_status("n2", cur, true, NULL);
	cr_assert_eq(corralctl(&out, (char *const[]){ "--format", "json", "status", NULL }), 0);
	json_auto_t *st = json_loads(out, 0, NULL);
	cr_assert_not_null(st, "status --format json is not JSON: %s", out);
	_cleanup_free_ char *table = NULL;
	cr_assert_eq(corralctl(&table, (char *const[]){ "status", NULL }), 0);
	cr_assert(strstr(table, "n1") && strstr(table, "n2") && strstr(table, cur), "%s", table);
}

Test(flow_slow, kill9_mid_change_leaves_old_or_new_and_converges) {
	converge_on_join();
	node *n = &nodes[1];
	json_auto_t *before = file_json(n->cms);
	cr_assert_not_null(before);

	cr_assert_eq(CTL("config", "set", "cms/cookie_duration", "7200"), 0);
	/* Node 2's check takes 2 s: wait until its staged file is there. */
	bool staged = false;
	uint64_t deadline = hx_now_usec() + CONVERGE_USEC;
	while (!staged && hx_now_usec() < deadline) {
		DIR *dh = opendir(n->dir);
		struct dirent *de;
		while (dh && (de = readdir(dh)))
			staged = staged || strncmp(de->d_name, ".cms.conf.corral-", 17) == 0;
		if (dh)
			closedir(dh);
		if (!staged)
			usleep(5000);
	}
	cr_assert(staged, "node 2 never staged the new file");
	cr_assert_eq(hx_proc_signal(n->proc, SIGKILL), 0);
	cr_assert_eq(hx_proc_wait(n->proc, 5 * USEC_PER_SEC, NULL), 0);
	n->proc = hx_proc_free(n->proc);

	/* Whole: the old file (the rename never happened), parseable, equal. */
	json_auto_t *after = file_json(n->cms);
	cr_assert_not_null(after, "cms.conf is not whole JSON after kill -9");
	cr_assert(json_equal(after, before), "the file changed although the check never passed");

	/* Restarted, it converges and leaves no temp file behind. */
	start_node(n);
	struct { const char *key; json_int_t v; } kv = { "cookie_duration", 7200 };
	wait_nodes(7, has_int, &kv, "cookie_duration 7200 everywhere, node 2 after its restart");
	DIR *dh = opendir(n->dir);
	struct dirent *de;
	while ((de = readdir(dh)))
		cr_assert(strncmp(de->d_name, ".cms.conf.corral-", 17) != 0, "stale temp file %s", de->d_name);
	closedir(dh);
}

Test(flow, failures_keep_last_good_and_later_changes_apply) {
	converge_on_join();
	_cleanup_free_ char *good = current();
	json_auto_t *good_cms = file_json(nodes[0].cms);

	/* A config the check command rejects: files stay, status says so. */
	cr_assert_eq(CTL("config", "set", "cms/reject_me", "true"), 0);
	_cleanup_free_ char *rejected = current();
	cr_assert_str_neq(rejected, good);
	for (unsigned i = 0; i < N; i++) {
		wait_status(nodes[i].id, rejected, false, "check");
		json_auto_t *cms = file_json(nodes[i].cms);
		cr_assert(lacks(cms, "reject_me"), "a rejected file was written on %s", nodes[i].id);
		json_auto_t *st = status_of(nodes[i].id);
		cr_assert_str_eq(json_string_value(json_object_get(st, "applied")), good);
	}
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(corralctl(&out, (char *const[]){ "status", NULL }), 0);
	cr_assert(strstr(out, "check"), "corralctl status does not show the failed check:\n%s", out);

	/* A later change is applied on its own merits. */
	cr_assert_eq(CTL("config", "delete", "cms/reject_me"), 0);
	cr_assert_eq(CTL("config", "set", "cms/max_pages_per_job", "12"), 0);
	struct { const char *key; json_int_t v; } kv = { "max_pages_per_job", 12 };
	wait_nodes(7, has_int, &kv, "the change after a rejected one");
	_cleanup_free_ char *fixed = current();
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, fixed, true, NULL);

	/* A config the unit cannot start on: the previous file goes back and
	 * the unit runs on it; status names the unit. */
	json_auto_t *last_good = file_json(nodes[0].cms);
	cr_assert_eq(CTL("config", "set", "cms/fail_start", "true"), 0);
	_cleanup_free_ char *bad = current();
	for (unsigned i = 0; i < N; i++) {
		wait_status(nodes[i].id, bad, false, nodes[i].unit);
		json_auto_t *cms = file_json(nodes[i].cms);
		cr_assert(lacks(cms, "fail_start"), "the failing file stayed on %s", nodes[i].id);
		cr_assert(hx_wait_until((bool (*)(void *)) active, &nodes[i], CONVERGE_USEC),
			  "%s is not running on the previous file", nodes[i].unit);
		json_auto_t *st = status_of(nodes[i].id);
		json_t *u = json_object_get(json_object_get(st, "units"), nodes[i].unit);
		cr_assert(json_is_false(json_object_get(u, "ok")), "unit result not recorded on %s", nodes[i].id);
	}
	json_auto_t *now0 = file_json(nodes[0].cms);
	cr_assert(json_equal(now0, last_good), "node 1's file is not the last good one");
	free(out);
	out = NULL;
	cr_assert_eq(corralctl(&out, (char *const[]){ "status", NULL }), 0);
	cr_assert(strstr(out, "failed"), "corralctl status does not show the failed unit:\n%s", out);

	/* A malformed leaf, put by hand: reported with its key, nothing written. */
	_cleanup_free_ char *inode_before = hx_fmt("%lu", (unsigned long) inode_of(nodes[0].cms));
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/configs/hand_1/cms/x", "{not json"), 0);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/current", "hand_1"), 0);
	wait_status("n1", NULL, false, "hand_1/cms/x");
	cr_assert_eq(inode_of(nodes[0].cms), (ino_t) strtoul(inode_before, NULL, 10), "a file was written");
	(void) good_cms;
}

/* Every node's file is the one it had (bytes and inode: never rewritten). */
static void files_untouched(char **texts, const ino_t *inos, const char *when) {
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *now = hx_read_file(nodes[i].cms, NULL);
		cr_assert_str_eq(now, texts[i], "%s: %s's cms.conf changed", when, nodes[i].id);
		cr_assert_eq(inode_of(nodes[i].cms), inos[i], "%s: %s's cms.conf rewritten", when, nodes[i].id);
	}
}

Test(flow, broken_current_keeps_last_good_until_repaired) {
	converge_on_join();
	_cleanup_free_ char *good = current();
	char *texts[N];
	ino_t inos[N];
	for (unsigned i = 0; i < N; i++) {
		wait_status(nodes[i].id, good, true, NULL);
		texts[i] = hx_read_file(nodes[i].cms, NULL);
		inos[i] = inode_of(nodes[i].cms);
	}

	/* `current` naming a folder that is gone: every node keeps its last
	 * good file and says which snapshot is missing. Node 3 is restarted
	 * meanwhile: it must find out the same, and wait for the repair. */
	cr_assert_eq(hx_proc_signal(nodes[2].proc, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(nodes[2].proc, 10 * USEC_PER_SEC, NULL), 0);
	nodes[2].proc = hx_proc_free(nodes[2].proc);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/current", "gone_1"), 0);
	start_node(&nodes[2]);
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, "gone_1", false, "gone_1, named by /corral/t/current, is missing");
	files_untouched(texts, inos, "current missing");
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(corralctl(&out, (char *const[]){ "status", NULL }), 0);
	cr_assert(strstr(out, "missing"), "corralctl status does not show the missing snapshot:\n%s", out);

	/* an edit is refused (the cluster's state: 1), nothing written */
	cr_assert_eq(CTL("config", "set", "cms/max_pages_per_job", "12"), 1);
	_cleanup_free_ char *still = current();
	cr_assert_str_eq(still, "gone_1");

	/* the rollback repairs it: every node on the good content again */
	cr_assert_eq(CTL("config", "rollback", good), 0);
	_cleanup_free_ char *repaired = current();
	cr_assert_str_neq(repaired, "gone_1");
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, repaired, true, NULL);
	wait_nodes(7, workers_are, "11,12,13", "all three Workers after the rollback");

	/* a malformed leaf put by hand into current's folder (current
	 * rewritten so the nodes look again): kept files, error names it */
	for (unsigned i = 0; i < N; i++) {
		free(texts[i]);
		texts[i] = hx_read_file(nodes[i].cms, NULL);
		inos[i] = inode_of(nodes[i].cms);
	}
	_cleanup_free_ char *bad = hx_fmt("/corral/t/configs/%s/ranking/bad", repaired);
	cr_assert_eq(hx_etcd_put(etcd, bad, "{oops"), 0);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/current", repaired), 0);
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, repaired, false, bad);
	files_untouched(texts, inos, "malformed leaf");
	/* an edit elsewhere would carry it forward: refused */
	cr_assert_eq(CTL("config", "set", "cms/max_pages_per_job", "12"), 1);
	_cleanup_free_ char *still2 = current();
	cr_assert_str_eq(still2, repaired);

	/* importing the file that holds it repairs it */
	_cleanup_free_ char *ranking = hx_fmt("%s/ranking.json", dir);
	cr_assert_eq(CTL("config", "import", "ranking", ranking), 0);
	_cleanup_free_ char *fixed = current();
	cr_assert_str_neq(fixed, repaired);
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, fixed, true, NULL);
	cr_assert_eq(CTL("config", "set", "cms/max_pages_per_job", "12"), 0);
	struct { const char *key; json_int_t v; } kv = { "max_pages_per_job", 12 };
	wait_nodes(7, has_int, &kv, "an edit after the repair");
	for (unsigned i = 0; i < N; i++)
		free(texts[i]);
}

static size_t starts(node *n) {
	_cleanup_free_ char *p = hx_fmt("%s/starts.log", n->dir);
	return hx_file_lines(p);
}

static size_t folders(void) {
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(corralctl(&out, (char *const[]){ "--format", "json", "config", "history", NULL }), 0);
	json_auto_t *h = json_loads(out, 0, NULL);
	cr_assert_not_null(h, "config history --format json: %s", out);
	json_t *list = json_is_array(h) ? h : json_object_get(h, "history");
	cr_assert(json_is_array(list), "config history --format json: %s", out);
	return json_array_size(list);
}

static bool few_folders(void *ud) {
	return folders() <= *(size_t *) ud;
}

Test(flow_storm, a_storm_of_edits_gives_one_restart_and_history_is_collected) {
	converge_on_join();
	/* Every node reported current applied, so its restarts are done. */
	size_t before[N];
	for (unsigned i = 0; i < N; i++)
		before[i] = starts(&nodes[i]);

	/* Ten edits, each its own snapshot, well inside the quiet period. */
	for (unsigned k = 1; k <= 10; k++) {
		_cleanup_free_ char *v = hx_fmt("%u", 1000 + k);
		cr_assert_eq(CTL("config", "set", "cms/cookie_duration", v), 0);
	}
	struct { const char *key; json_int_t v; } kv = { "cookie_duration", 1010 };
	wait_nodes(7, has_int, &kv, "the last edit of the storm everywhere");
	_cleanup_free_ char *cur = current();
	for (unsigned i = 0; i < N; i++)
		wait_status(nodes[i].id, cur, true, NULL);
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(starts(&nodes[i]), before[i] + 1, "%s started %zu times for one storm", nodes[i].unit,
			     starts(&nodes[i]) - before[i]);

	/* The oldest node collects: history 3, plus current (in use). */
	size_t bound = 4;
	cr_assert(hx_wait_until(few_folders, &bound, CONVERGE_USEC), "old snapshots were not collected: %zu left",
		  folders());
	_cleanup_free_ char *key = hx_fmt("/corral/t/configs/%s/cms/cookie_duration", cur);
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	cr_assert_not_null(v, "the current snapshot was collected");
}

Test(flow, once_renders_and_exits) {
	converge_on_join();
	/* A fourth node, run by hand with --once: renders, exits 0, does not
	 * register; on a config its check rejects it exits 1 and keeps the
	 * file. */
	_cleanup_free_ char *d = hx_fmt("%s/once", dir), *cfg = hx_fmt("%s/corrald.yaml", d), *out = hx_fmt("%s/cms.conf", d);
	cr_assert_eq(mkdir(d, 0755), 0);
	_cleanup_free_ char *text = hx_fmt("cluster: t\nnode_id: n9\naddress: 127.0.0.19\n"
					"etcd:\n  endpoints: [%s]\n"
					"files:\n  cms:\n    path: %s\n    check: '! grep -q reject_me \"$1\"'\n",
					hx_etcd_endpoints(etcd), out);
	cr_assert_eq(hx_write_file(cfg, text), 0);
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	char *const argv[] = { bin, "--once", "--config", cfg, NULL };
	cr_assert_eq(hx_run(NULL, 30 * USEC_PER_SEC, argv, NULL), 0);
	json_auto_t *cms = file_json(out);
	json_auto_t *n1 = file_json(nodes[0].cms);
	cr_assert(cms && json_equal(cms, n1), "--once did not render the current config");
	_cleanup_free_ char *reg = hx_etcd_get(etcd, "/corral/t/nodes/n9");
	cr_assert_null(reg, "--once registered the node");

	cr_assert_eq(CTL("config", "set", "cms/reject_me", "1"), 0);
	cr_assert_eq(hx_run(NULL, 30 * USEC_PER_SEC, argv, NULL), 1, "--once must exit 1 when the check fails");
	json_auto_t *again = file_json(out);
	cr_assert(json_equal(again, n1), "--once wrote a rejected file");
}

/* ---- initial values: only for a cluster with no config ---------------------------- */

static void up_bare(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	dir = hx_mkdtemp("flow-initial");
	cr_assert_not_null(dir);
}

static void down_bare(void) {
	for (unsigned i = 0; i < N; i++)
		nodes[i].proc = hx_proc_free(nodes[i].proc);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

TestSuite(flow_initial, .init = up_bare, .fini = down_bare, .timeout = 90);

static bool has_key_value(void *ud) {
	const char *const *kv = ud;
	_cleanup_free_ char *v = hx_etcd_get(etcd, "/corral/t/current");
	if (!v)
		return false;
	_cleanup_free_ char *key = hx_fmt("/corral/t/configs/%s/%s", v, kv[0]);
	_cleanup_free_ char *got = hx_etcd_get(etcd, key);
	return got && streq(got, kv[1]);
}

Test(flow_initial, first_node_seeds_the_config_later_ones_do_not) {
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	for (unsigned i = 0; i < 2; i++) {
		_cleanup_free_ char *cfg = hx_fmt("%s/n%u.yaml", dir, i + 1), *id = hx_fmt("n%u", i + 1);
		_cleanup_free_ char *addr = hx_fmt("127.0.0.%u", 21 + i), *log = hx_fmt("%s/n%u.log", dir, i + 1);
		_cleanup_free_ char *more = hx_fmt("initial:\n  cms:\n    seeded_by: %s\n    core_services: {Worker: []}\n"
						"topology:\n  - service: Worker\n    path: cms/core_services/Worker\n"
						"    value: [\"{address}\", 26000]\n",
						id);
		cr_assert_eq(hx_write_corrald_config_full(cfg, id, addr, "Worker", hx_etcd_endpoints(etcd), more), 0);
		char *const argv[] = { bin, "--config", cfg, NULL };
		cr_assert_eq(hx_proc_spawn(&nodes[i].proc, argv, NULL, log), 0);
		if (i == 0) {
			/* The first node's initial values and its entry, one snapshot. */
			const char *seeded[] = { "cms/seeded_by", "\"n1\"" };
			cr_assert(hx_wait_until(has_key_value, seeded, CONVERGE_USEC), "n1 did not seed the config");
			const char *worker[] = { "cms/core_services/Worker", "[[\"127.0.0.21\",26000]]" };
			cr_assert(has_key_value(worker), "the seed lacks n1's Worker entry");
		}
	}
	/* The second node joins the existing config: its entry is added, its
	 * initial values are not. */
	const char *both[] = { "cms/core_services/Worker", "[[\"127.0.0.21\",26000],[\"127.0.0.22\",26000]]" };
	cr_assert(hx_wait_until(has_key_value, both, CONVERGE_USEC), "n2's Worker entry never joined");
	const char *seeded[] = { "cms/seeded_by", "\"n1\"" };
	cr_assert(has_key_value(seeded), "a later node's initial values replaced the config");
}

/* ---- format: toml ------------------------------------------------------------------ */

TestSuite(flow_toml, .init = up_bare, .fini = down_bare, .timeout = 120);

typedef struct file_has {
	const char *path, *text;
} file_has;

static bool file_contains(void *ud) {
	const file_has *f = ud;
	_cleanup_free_ char *t = hx_read_file(f->path, NULL);
	return t && strstr(t, f->text);
}

static void wait_file_has(const char *path, const char *text) {
	file_has f = { path, text };
	if (!hx_wait_until(file_contains, &f, CONVERGE_USEC)) {
		_cleanup_free_ char *t = hx_read_file(path, NULL);
		cr_assert_fail("%s never held \"%s\"; it is:\n%s", path, text, t ? t : "(none)");
	}
}

/* Python's tomllib reads the node's TOML file as json reads json_text
 * (tests/toml_check.py: null members dropped, types kept). */
static void expect_tomllib_reads(const char *toml_path, const char *json_text) {
	_cleanup_free_ char *check = hx_fmt("%s/check", dir), *out = NULL;
	_cleanup_free_ char *text = hx_read_file(toml_path, NULL), *script = hx_fmt("%s/tests/toml_check.py", hx_srcdir());
	_cleanup_free_ char *jpath = hx_fmt("%s/f.json", check), *tpath = hx_fmt("%s/f.toml", check);

	cr_assert_not_null(text);
	cr_assert(mkdir(check, 0755) == 0 || errno == EEXIST);
	cr_assert_eq(hx_write_file(jpath, json_text), 0);
	cr_assert_eq(hx_write_file(tpath, text), 0);
	char *const argv[] = { (char *) hx_tool("CORRAL_PYTHON3", "python3"), script, check, NULL };
	int st = hx_run(&out, 60 * USEC_PER_SEC, argv, NULL);
	cr_assert_eq(st, 0, "tomllib does not read %s as the export:\n%s\n%s", toml_path, out ? out : "", text);
	cr_assert_str_eq(out, "checked 1\n");
}

/* ... as json reads `config export NAME`. */
static void expect_toml_is_export(const char *toml_path, const char *name) {
	_cleanup_free_ char *json = NULL;
	cr_assert_eq(corralctl(&json, (char *const[]){ "config", "export", (char *) name, NULL }), 0);
	expect_tomllib_reads(toml_path, json);
}

/* Starts n1 rendering cms as TOML to dir/cms.toml (and ranking as JSON). */
static void start_toml_node(const char *cms_toml, const char *ranking_conf) {
	_cleanup_free_ char *cfg = hx_fmt("%s/n1.yaml", dir), *log = hx_fmt("%s/n1.log", dir);
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	_cleanup_free_ char *files = hx_fmt("files:\n  cms:\n    path: %s\n    format: toml\n"
					 "  ranking:\n    path: %s\n%s",
					 cms_toml, ranking_conf, tuning);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.31", "Worker", hx_etcd_endpoints(etcd), files),
		     0);
	char *const argv[] = { bin, "--config", cfg, NULL };
	cr_assert_eq(hx_proc_spawn(&nodes[0].proc, argv, NULL, log), 0);
}

Test(flow_toml, renders_toml_and_re_renders_after_set) {
	_cleanup_free_ char *cms = hx_fmt("%s/cms.json", dir), *ranking = hx_fmt("%s/ranking.json", dir);
	_cleanup_free_ char *cms_toml = hx_fmt("%s/cms.toml", dir), *ranking_conf = hx_fmt("%s/cms.ranking.conf", dir);

	cr_assert_eq(hx_write_file(cms, CMS_CONF), 0);
	cr_assert_eq(hx_write_file(ranking, RANKING_CONF), 0);
	cr_assert_eq(CTL("config", "import", "cms", cms), 0);
	cr_assert_eq(CTL("config", "import", "ranking", ranking), 0);
	start_toml_node(cms_toml, ranking_conf);

	/* The imported cms.conf, as TOML; its null members left out. The other
	 * file stays JSON. */
	wait_file_has(cms_toml, "\n[core_services]\n");
	_cleanup_free_ char *cur = current();
	wait_status("n1", cur, true, NULL);
	expect_toml_is_export(cms_toml, "cms");
	_cleanup_free_ char *text = hx_read_file(cms_toml, NULL);
	cr_assert(strstr(text, "\nWorker = []\n") && strstr(text, "\ncookie_duration = 10800\n") &&
		  !strstr(text, "is_proxy_used"), "%s", text);
	json_auto_t *rk = file_json(ranking_conf);
	cr_assert_eq(json_real_value(json_object_get(rk, "score_precision")), 0.5);

	/* An edit re-renders it: a real stays a float, a list of pairs a list. */
	cr_assert_eq(CTL("config", "set", "cms/core_services/Worker", "[[\"10.0.0.9\",26000],[\"10.0.0.10\",26001]]"),
		     0);
	cr_assert_eq(CTL("config", "set", "cms/ratio", "1.0"), 0);
	wait_file_has(cms_toml, "\nratio = 1.0\n");
	wait_file_has(cms_toml, "\nWorker = [[\"10.0.0.9\", 26000], [\"10.0.0.10\", 26001]]\n");
	expect_toml_is_export(cms_toml, "cms");

	/* A null inside an array cannot be TOML: the last good file stays and
	 * the status names the path; the next good edit renders again. */
	free(text);
	text = hx_read_file(cms_toml, NULL);
	cr_assert_eq(CTL("config", "set", "cms/core_services/Worker", "[[\"10.0.0.9\",26000],null]"), 0);
	free(cur);
	cur = current();
	wait_status("n1", cur, false, "cms/core_services/Worker[1]");
	_cleanup_free_ char *kept = hx_read_file(cms_toml, NULL);
	cr_assert_str_eq(kept, text, "a failed TOML render changed the file");
	cr_assert_eq(CTL("config", "set", "cms/core_services/Worker", "[[\"10.0.0.9\",26000]]"), 0);
	free(cur);
	cur = current();
	wait_status("n1", cur, true, NULL);
	wait_file_has(cms_toml, "\nWorker = [[\"10.0.0.9\", 26000]]\n");
	expect_toml_is_export(cms_toml, "cms");
}

/* A cms.toml as CMS master ships it (comments, multi-line arrays, 10_000
 * digit groups), turned into JSON by the one-liner docs/config.md gives,
 * imported, and rendered back by a node: the same data. */
static const char CMS_TOML[] =
	"# CMS configuration (TOML)\n"
	"[global]\n"
	"backdoor = false\n"
	"temp_dir = \"/tmp\"\n"
	"\n"
	"[database]\n"
	"url = \"postgresql+psycopg2://cmsuser:your_password_here@localhost:5432/cmsdb\"\n"
	"\n"
	"[services]\n"
	"LogService = [[\"localhost\", 29000]]\n"
	"Worker = [\n"
	"    [\"localhost\", 26000],\n"
	"    [\"localhost\", 26001],  # a second worker\n"
	"]\n"
	"\n"
	"[contest_web_server]\n"
	"listen_address = [\"\"]\n"
	"listen_port = [8888]\n"
	"cookie_duration = 10_800\n"
	"score_precision = 0.5\n"
	"realm = 'Contest \u00e9t\u00e9'\n"
	"\n"
	"[[contest_web_server.languages]]\n"
	"name = \"C++17 / g++\"\n"
	"extensions = [\".cpp\", \".cc\"]\n"
	"\n"
	"[[contest_web_server.languages]]\n"
	"name = \"Python 3\"\n"
	"extensions = [\".py\"]\n"
	"\n"
	"[printing]\n"
	"max_print_length = 10_000_000\n"
	"ratio = 1.0\n";

Test(flow_toml, a_cms_toml_converted_by_the_documented_one_liner_comes_back) {
	_cleanup_free_ char *src = hx_fmt("%s/cms-src.toml", dir), *json_path = hx_fmt("%s/cms.json", dir);
	_cleanup_free_ char *cms_toml = hx_fmt("%s/cms.toml", dir), *ranking_conf = hx_fmt("%s/cms.ranking.conf", dir);
	const char *py = hx_tool("CORRAL_PYTHON3", "python3");
	/* docs/config.md's command, word for word but for the interpreter */
	_cleanup_free_ char *line = hx_fmt("cd '%s' && '%s' -c 'import json,sys,tomllib; json.dump(tomllib.load("
					"open(sys.argv[1],\"rb\")), sys.stdout, indent=2)' cms-src.toml > cms.json",
					dir, py);

	cr_assert_eq(hx_write_file(src, CMS_TOML), 0);
	char *const sh[] = { "/bin/sh", "-c", line, NULL };
	cr_assert_eq(hx_run(NULL, 30 * USEC_PER_SEC, sh, NULL), 0, "%s", line);
	cr_assert_eq(CTL("config", "import", "cms", json_path), 0);
	start_toml_node(cms_toml, ranking_conf);
	wait_file_has(cms_toml, "\n[[contest_web_server.languages]]\n");
	_cleanup_free_ char *json = hx_read_file(json_path, NULL);
	cr_assert_not_null(json);
	expect_tomllib_reads(cms_toml, json);
	/* and the original reads the same as the rendered one */
	expect_tomllib_reads(src, json);
}
