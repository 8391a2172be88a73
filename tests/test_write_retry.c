/* test_write_retry.c — a rendered file that cannot be written is tried again
 * until it is, with no change of the config: one corrald against a real
 * etcd and a real `systemd --user`.
 *
 * The render directory is made unwritable for root in two ways, each in a
 * mount namespace of the test worker's own (unshare(CLONE_NEWNS), mounts
 * private), which corrald and the systemd manager inherit: a read-only bind
 * mount of the directory on itself (EROFS), and a small tmpfs filled up
 * (ENOSPC). The mounts end with the namespace, so a crashed test leaves
 * none behind; fini unmounts them anyway. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define DEADLINE_USEC (30 * USEC_PER_SEC)
#define UNIT "cms-r.service"

static const char DOC[] = "{\"a\": 1, \"b\": \"x\", \"list\": [1, 2.5, \"three\"]}";

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir, *out, *cfg, *log_path, *cms, *seen, *filler;
static hx_proc *corrald;

#define CTL(...) hx_corralctl(hx_etcd_endpoints(etcd), NULL, (char *const[]){ __VA_ARGS__, NULL })

/* ---- mounts ---------------------------------------------------------------- */

static void unmount_all(const char *path) {
	/* A bind mount on a tmpfs, or either alone: take off every layer. */
	for (int i = 0; i < 8 && umount2(path, MNT_DETACH) == 0; i++)
		;
}

static void make_readonly(const char *path) {
	cr_assert_eq(mount(path, path, NULL, MS_BIND, NULL), 0, "bind %s: %s", path, strerror(errno));
	cr_assert_eq(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0, "remount ro: %s",
		     strerror(errno));
	_cleanup_free_ char *probe = hx_fmt("%s/probe", path);
	cr_assert_lt(open(probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0, "root can still write in %s", path);
	cr_assert_eq(errno, EROFS);
}

static void make_writable(const char *path) {
	cr_assert_eq(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL), 0, "remount rw: %s", strerror(errno));
}

/* A 64 KiB tmpfs on path, filled up by one file. */
static void make_full(const char *path) {
	char block[4096];
	ssize_t n;

	cr_assert_eq(mount("corral-test", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755"), 0,
		     "tmpfs on %s: %s", path, strerror(errno));
	_cleanup_close_ int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	memset(block, 'f', sizeof block);
	do
		n = write(fd, block, sizeof block);
	while (n > 0);
	cr_assert_eq(errno, ENOSPC, "filling the tmpfs: %s", strerror(errno));
	/* Whatever partial block fits is taken too: not even one byte is left. */
	while (write(fd, block, 1) == 1)
		;
}

/* ---- fixture --------------------------------------------------------------- */

static void up(void) {
	/* Mounts of this worker's own; corrald and systemd start after. */
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "make / private: %s", strerror(errno));
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	dir = hx_mkdtemp("write-retry");
	cr_assert_not_null(dir);
	out = hx_fmt("%s/out", dir);
	cr_assert_eq(mkdir(out, 0755), 0);
	cfg = hx_fmt("%s/corrald.yaml", dir);
	log_path = hx_fmt("%s/corrald.log", dir);
	cms = hx_fmt("%s/cms.conf", out);
	seen = hx_fmt("%s/seen.json", dir);
	filler = hx_fmt("%s/filler", out);
	/* The unit records the file it starts on. */
	_cleanup_free_ char *unit = hx_fmt("[Unit]\nDescription=CMS stand-in\n[Service]\n"
					"ExecStartPre=/bin/cp %s %s\nExecStart=/bin/sleep infinity\n",
					cms, seen);
	cr_assert_eq(hx_systemd_install_unit(sd, UNIT, unit), 0);
	_cleanup_free_ char *doc = hx_fmt("%s/cms.json", dir);
	cr_assert_eq(hx_write_file(doc, DOC), 0);
	cr_assert_eq(CTL("config", "import", "cms", doc), 0);
}

static void down(void) {
	if (corrald && getenv("CORRAL_FLOW_LOGS"))
		hx_log_tail(log_path, 80);
	corrald = hx_proc_free(corrald);
	sd = hx_systemd_free(sd);
	etcd = hx_etcd_free(etcd);
	if (out)
		unmount_all(out);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	free(out);
	free(cfg);
	free(log_path);
	free(cms);
	free(seen);
	free(filler);
	dir = out = cfg = log_path = cms = seen = filler = NULL;
}

TestSuite(write_retry, .init = up, .fini = down, .timeout = 120);

/* Starts corrald rendering cms.conf (restarting UNIT on a change) and the
 * files in `files` (YAML under files:), with YAML `more` appended. */
static void start_corrald_with(const char *files, const char *more) {
	_cleanup_free_ char *text = hx_fmt("files:\n  cms:\n    path: %s\n    restart: [%s]\n%s"
					"units_bus: user\nunit_timeout: 20s\n%s",
					cms, UNIT, files ? files : "", more ? more : "");
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.31", "Worker", hx_etcd_endpoints(etcd), text), 0);
	cr_assert_eq(hx_corrald_spawn(&corrald, cfg, hx_systemd_env(sd), log_path), 0);
}

static void start_corrald(const char *more) {
	start_corrald_with(NULL, more);
}

/* SIGTERM: it leaves cleanly (exit 0; under ASan, no leak). */
static void stop_corrald(void) {
	int status = 0;
	cr_assert_eq(hx_proc_signal(corrald, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(corrald, 15 * USEC_PER_SEC, &status), 0, "corrald did not stop");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald exited with status %d", status);
}

/* ---- status and files ------------------------------------------------------ */

static json_t *status(void) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, "/corral/t/status/n1");
	return v ? json_loads(v, 0, NULL) : NULL;
}

static char *current(void) {
	return hx_etcd_get(etcd, "/corral/t/current");
}

static const char *str(json_t *o, const char *k) {
	return json_string_value(json_object_get(o, k));
}

typedef struct want {
	const char *target;             /* the config id */
	const char *error_has;          /* NULL: ok, applied == target, no error, no retry */
	unsigned min_attempt;           /* with error_has: at least this many failed applies in a row */
	uint64_t min_delay_ms;          /* with error_has: the next retry at least this far */
	const char *file, *path;        /* with error_has: whose error (NULL: cms) */
} want;

static bool status_is(void *ud) {
	const want *w = ud;
	json_auto_t *s = status();
	json_t *retry = json_object_get(s, "retry");

	if (!s || !streq_ptr(str(s, "target"), w->target))
		return false;
	if (!w->error_has)
		return json_is_true(json_object_get(s, "ok")) && streq_ptr(str(s, "applied"), w->target) &&
		       !str(s, "error") && json_is_null(retry) &&
		       !str(json_object_get(json_object_get(s, "files"), "cms"), "error");
	const char *file = w->file ?: "cms", *path = w->path ?: cms;
	const char *err = str(s, "error"), *ferr = str(json_object_get(json_object_get(s, "files"), file), "error");
	return json_is_false(json_object_get(s, "ok")) && err && strstr(err, w->error_has) && strstr(err, path) &&
	       ferr && strstr(ferr, w->error_has) &&
	       (!w->min_attempt || json_integer_value(json_object_get(retry, "attempt")) >= (json_int_t) w->min_attempt) &&
	       (!w->min_delay_ms || json_integer_value(json_object_get(retry, "delay_ms")) >= (json_int_t) w->min_delay_ms);
}

static void wait_status(const want *w, uint64_t timeout_usec, const char *what) {
	if (!hx_wait_until(status_is, (void *) w, timeout_usec)) {
		json_auto_t *s = status();
		_cleanup_free_ char *text = s ? json_dumps(s, JSON_INDENT(1)) : NULL;
		hx_log_tail(log_path, 30);
		cr_assert_fail("%s: status is %s", what, text ? text : "(none)");
	}
}

static bool json_file_is(const char *path, const char *doc) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	json_auto_t *a = text ? json_loads(text, 0, NULL) : NULL;
	json_auto_t *b = json_loads(doc, 0, NULL);
	return a && b && json_equal(a, b);
}

typedef struct file_want {
	const char *path, *doc;
} file_want;

static bool file_is(void *ud) {
	const file_want *f = ud;
	return json_file_is(f->path, f->doc);
}

static void no_temp_files(void) {
	_cleanup_free_ char *ls = NULL;
	char *const argv[] = { "ls", "-A", out, NULL };
	cr_assert_eq(hx_run(&ls, 10 * USEC_PER_SEC, argv, NULL), 0);
	cr_assert_null(strstr(ls, ".corral-"), "a temp file was left behind: %s", ls);
}

/* ---- tests ------------------------------------------------------------------ */

/* With the default back-off (1 s doubling to 60 s): the error shows while
 * the directory is read-only, corrald keeps trying on its own, and once the
 * directory is writable again (the config unchanged) the file is written,
 * its unit restarts on it and the status clears. */
Test(write_retry, read_only_dir_is_retried_until_written) {
	_cleanup_free_ char *cur = current();
	cr_assert_not_null(cur);
	make_readonly(out);
	start_corrald(NULL);

	want failing = { .target = cur, .error_has = "Read-only file system" };
	wait_status(&failing, DEADLINE_USEC, "the write error in status");
	json_auto_t *s = status();
	cr_assert_null(json_object_get(s, "applied"), "nothing was ever applied here");
	cr_assert_eq(access(cms, F_OK), -1, "a file appeared on a read-only mount");

	/* Not waiting for a change: it tries again, twice at least. */
	want retried = { .target = cur, .error_has = "Read-only file system", .min_attempt = 2 };
	wait_status(&retried, DEADLINE_USEC, "retries counted in status");

	make_writable(out);
	uint64_t t0 = hx_now_usec();
	want ok = { .target = cur };
	/* The back-off after two failures is at most 2 s, after three 4 s. */
	wait_status(&ok, 10 * USEC_PER_SEC, "the status clears once the write succeeds");
	uint64_t took = hx_now_usec() - t0;
	file_want f = { cms, DOC }, u = { seen, DOC };
	cr_assert(file_is(&f), "status says applied but %s is not the config", cms);
	cr_assert(hx_wait_until(file_is, &u, DEADLINE_USEC), "the unit did not restart on the written file");
	_cleanup_free_ char *still = current();
	cr_assert_str_eq(still, cur, "the config changed under the test");
	no_temp_files();
	cr_log_info("written %.1f s after the directory became writable", (double) took / USEC_PER_SEC);
	stop_corrald();
}

/* With a back-off of a minute and a debounce of 20 s, SIGHUP tries again at
 * once: here on a full file system that has room again. */
Test(write_retry, sighup_retries_at_once) {
	_cleanup_free_ char *cur = current();
	make_full(out);
	start_corrald("write_retry: 60s\nwrite_retry_max: 60s\ndebounce: 20s\nmax_wait: 20s\n");

	/* Equal jitter: the first retry is 30..60 s away. */
	want failing = { .target = cur, .error_has = "No space left on device", .min_attempt = 1,
			 .min_delay_ms = 30000 };
	wait_status(&failing, DEADLINE_USEC, "the write error and a long back-off in status");

	cr_assert_eq(unlink(filler), 0);
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_proc_signal(corrald, SIGHUP), 0);
	want ok = { .target = cur };
	wait_status(&ok, 5 * USEC_PER_SEC, "SIGHUP did not retry at once");
	cr_log_info("written %.2f s after SIGHUP", (double) (hx_now_usec() - t0) / USEC_PER_SEC);
	file_want f = { cms, DOC }, u = { seen, DOC };
	cr_assert(file_is(&f));
	cr_assert(hx_wait_until(file_is, &u, DEADLINE_USEC), "the unit did not restart on the written file");
	no_temp_files();
	stop_corrald();
}

/* A newer config does not wait for the pending retry of the older one. */
Test(write_retry, a_newer_config_replaces_the_pending_retry) {
	_cleanup_free_ char *first = current();
	make_readonly(out);
	start_corrald("write_retry: 60s\nwrite_retry_max: 60s\ndebounce: 50ms\nmax_wait: 500ms\n");
	want failing = { .target = first, .error_has = "Read-only file system", .min_delay_ms = 30000 };
	wait_status(&failing, DEADLINE_USEC, "the write error in status");

	make_writable(out);
	cr_assert_eq(CTL("config", "set", "cms/b", "y"), 0);
	_cleanup_free_ char *second = current();
	cr_assert_str_neq(second, first);
	want ok = { .target = second };
	wait_status(&ok, 10 * USEC_PER_SEC, "the newer config applied before the old retry was due");
	file_want f = { cms, "{\"a\": 1, \"b\": \"y\", \"list\": [1, 2.5, \"three\"]}" };
	cr_assert(file_is(&f));
	stop_corrald();
}

typedef struct lines_want {
	const char *path;
	size_t n;
} lines_want;

static bool has_lines(void *ud) {
	const lines_want *l = ud;
	return hx_file_lines(l->path) >= l->n;
}

/* A check that rejects a file is a verdict, not a fault: while another
 * file's write is retried, the check is not asked again for the same config;
 * SIGHUP asks it again; once the write fault is gone nothing is retried,
 * and the status keeps the check's error. */
Test(write_retry, a_rejecting_check_is_not_retried) {
	_cleanup_free_ char *doc = hx_fmt("%s/ranking.json", dir), *ranking = hx_fmt("%s/ranking.conf", dir);
	_cleanup_free_ char *checks = hx_fmt("%s/checks.log", dir);
	cr_assert_eq(hx_write_file(doc, "{\"http_port\": 8890}"), 0);
	cr_assert_eq(CTL("config", "import", "ranking", doc), 0);
	_cleanup_free_ char *cur = current();
	make_readonly(out);
	_cleanup_free_ char *files = hx_fmt("  ranking:\n    path: %s\n    check: 'echo run >> %s; exit 1'\n", ranking, checks);
	start_corrald_with(files, "write_retry: 50ms\nwrite_retry_max: 100ms\n");

	want retried = { .target = cur, .error_has = "Read-only file system", .min_attempt = 5 };
	wait_status(&retried, DEADLINE_USEC, "five applies in a row met the write fault");
	cr_assert_eq(hx_file_lines(checks), 1, "the rejecting check ran %zu times for one config", hx_file_lines(checks));
	cr_assert_eq(access(ranking, F_OK), -1, "a rejected file was written");

	/* SIGHUP: the operator may have fixed the check; it runs again. */
	cr_assert_eq(hx_proc_signal(corrald, SIGHUP), 0);
	lines_want two = { checks, 2 };
	cr_assert(hx_wait_until(has_lines, &two, DEADLINE_USEC), "SIGHUP did not run the check again");

	/* The fault goes: cms.conf is written, the retries stop, the check's
	 * verdict stays in the status. */
	make_writable(out);
	file_want f = { cms, DOC };
	cr_assert(hx_wait_until(file_is, &f, DEADLINE_USEC), "cms.conf was not written");
	want rejected = { .target = cur, .error_has = "check failed", .file = "ranking", .path = ranking };
	wait_status(&rejected, DEADLINE_USEC, "the check's verdict in status");
	size_t runs = hx_file_lines(checks);
	json_auto_t *s = status();
	cr_assert(json_is_null(json_object_get(s, "retry")), "a rejected check is retried");
	cr_assert_null(json_object_get(s, "applied"));
	cr_assert_str_eq(str(json_object_get(json_object_get(s, "files"), "cms"), "config_id"), cur);
	/* Five times the back-off cap: no further apply runs the check. */
	lines_want more = { checks, runs + 1 };
	cr_assert_not(hx_wait_until(has_lines, &more, 500 * USEC_PER_MSEC), "the check ran again without a change or SIGHUP");
	stop_corrald();
}
