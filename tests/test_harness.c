/* test_harness.c — the harness itself against the real parts: etcd (single,
 * cluster, TLS, auth), systemd --user, and child processes. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

static bool path_exists(const char *p) {
	struct stat st;

	return stat(p, &st) == 0;
}

/* Gone, or a zombie nobody reaped yet (which is dead all the same). */
static bool pid_dead(pid_t pid) {
	char path[64], state = '?';
	_cleanup_free_ char *stat_text = NULL;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	stat_text = hx_read_file(path, NULL);
	if (!stat_text)
		return true;
	const char *p = strrchr(stat_text, ')');
	if (p && p[1] == ' ')
		state = p[2];
	return state == 'Z' || state == 'X';
}

static bool pred_pid_dead(void *userdata) {
	pid_t pid = *(pid_t *) userdata;

	/* If it became our child (we are a subreaper), reap it. */
	(void) waitpid(pid, NULL, WNOHANG);
	return pid_dead(pid);
}

/* ---- etcd: one member ---- */

Test(harness, etcd_single_member, .timeout = 60) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	_cleanup_free_ char *dir = NULL, *v = NULL, *out = NULL, *health = NULL;
	long code = 0;

	cr_assert_eq(hx_etcd_start(&e, NULL), 0);
	cr_assert_eq(hx_etcd_members(e), 1);
	cr_assert(strncmp(hx_etcd_endpoint(e, 0), "http://127.0.0.1:", 17) == 0);
	cr_assert_str_eq(hx_etcd_endpoints(e), hx_etcd_endpoint(e, 0));
	cr_assert_null(hx_etcd_ca_file(e));
	cr_assert(hx_etcd_member_running(e, 0));

	/* It answers over HTTP ... */
	cr_assert_eq(hx_etcd_request(e, 0, "/health", NULL, &health, &code), 0);
	cr_assert_eq(code, 200);
	cr_assert(strstr(health, "\"health\":\"true\""), "health: %s", health);

	/* ... and to etcdctl. */
	cr_assert_null(hx_etcd_get(e, "/hx/none"));
	cr_assert_eq(hx_etcd_put(e, "/hx/a", "hello world"), 0);
	v = hx_etcd_get(e, "/hx/a");
	cr_assert_str_eq(v, "hello world");
	cr_assert_eq(hx_etcd_put(e, "-dash", "-v"), 0);
	free(v);
	v = hx_etcd_get(e, "-dash");
	cr_assert_str_eq(v, "-v");
	char *const args[] = { "get", "--prefix", "/hx/", NULL };
	cr_assert_eq(hx_etcdctl(e, &out, args), 0);
	cr_assert_str_eq(out, "/hx/a\nhello world\n");

	unsigned leader = 99;
	cr_assert_eq(hx_etcd_leader(e, &leader), 0);
	cr_assert_eq(leader, 0);

	/* Free stops it and removes its dir. */
	pid_t pid = hx_etcd_member_pid(e, 0);
	cr_assert_gt(pid, 0);
	dir = strdup(hx_etcd_dir(e));
	cr_assert(path_exists(dir));
	cr_assert(path_exists(hx_etcd_log(e, 0)));
	e = hx_etcd_free(e);
	cr_assert(pid_dead(pid), "etcd pid %d still there after free", (int) pid);
	cr_assert_not(path_exists(dir));
}

static bool pgrep_finds(const char *pattern) {
	char *const argv[] = { "pgrep", "-f", "--", (char *) pattern, NULL };

	return hx_run(NULL, 5 * USEC_PER_SEC, argv, NULL) == 0;
}

Test(harness, etcd_start_failures_are_reported, .timeout = 60) {
	hx_etcd *e = NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char url[64];

	/* A port we hold: every attempt fails to bind it, so the start retries
	 * with new ports, gives up and cleans up. */
	cr_assert_geq(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &salen), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	char *const taken[] = { "--listen-metrics-urls", url, NULL };
	hx_etcd_options opts = { .extra_args = taken };
	cr_assert_eq(hx_etcd_start(&e, &opts), -EADDRINUSE);
	cr_assert_null(e);
	cr_assert_not(pgrep_finds(url), "an etcd with %s is still running", url);

	/* A member that exits at once (bad flag) is reported, not waited for. */
	char *const bad[] = { "--hx-no-such-flag", NULL };
	hx_etcd_options opts2 = { .extra_args = bad };
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_etcd_start(&e, &opts2), -ESRCH);
	cr_assert_lt(hx_now_usec() - t0, 5 * USEC_PER_SEC);
	cr_assert_null(e);
}

/* ---- etcd: three members ---- */

static bool pred_leader(void *userdata) {
	hx_etcd *e = userdata;

	return hx_etcd_leader(e, NULL) == 0;
}

Test(harness, etcd_cluster_of_three, .timeout = 60) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	_cleanup_free_ char *v = NULL, *v2 = NULL;
	hx_etcd_options opts = { .members = 3 };
	unsigned leader, new_leader;

	cr_assert_eq(hx_etcd_start(&e, &opts), 0);
	cr_assert_eq(hx_etcd_members(e), 3);
	cr_assert(strchr(hx_etcd_endpoints(e), ','));

	/* All three agree on a leader. */
	cr_assert(hx_wait_until(pred_leader, e, 10 * USEC_PER_SEC));
	cr_assert_eq(hx_etcd_leader(e, &leader), 0);
	cr_assert_lt(leader, 3);
	cr_assert_eq(hx_etcd_put(e, "/hx/before", "1"), 0);

	/* Kill the leader: the other two elect a new one and still take writes. */
	cr_assert_eq(hx_etcd_stop_member(e, leader, SIGKILL), 0);
	cr_assert_not(hx_etcd_member_running(e, leader));
	cr_assert(hx_wait_until(pred_leader, e, 10 * USEC_PER_SEC), "no new leader");
	cr_assert_eq(hx_etcd_leader(e, &new_leader), 0);
	cr_assert_neq(new_leader, leader);
	cr_assert_eq(hx_etcd_put(e, "/hx/after", "2"), 0);
	v = hx_etcd_get(e, "/hx/before");
	cr_assert_str_eq(v, "1");

	/* It comes back with its data and catches up. */
	cr_assert_eq(hx_etcd_start_member(e, leader), 0);
	cr_assert(hx_etcd_member_running(e, leader));
	cr_assert(hx_wait_until(pred_leader, e, 10 * USEC_PER_SEC));
	_cleanup_free_ char *out = NULL;
	long code = 0;
	/* A serializable read from the restarted member alone. */
	cr_assert_eq(hx_etcd_request(e, leader, "/v3/kv/range",
	                             "{\"key\":\"L2h4L2FmdGVy\",\"serializable\":true}", &out, &code), 0);
	cr_assert_eq(code, 200);
	cr_assert(strstr(out, "\"value\":\"Mg==\""), "range: %s", out);   /* "2" */
	v2 = hx_etcd_get(e, "/hx/after");
	cr_assert_str_eq(v2, "2");

	/* A stopped member can be told apart, and stopping twice is refused. */
	cr_assert_eq(hx_etcd_stop_member(e, (leader + 1) % 3, SIGTERM), 0);
	cr_assert_eq(hx_etcd_stop_member(e, (leader + 1) % 3, SIGTERM), -ESRCH);
}

/* ---- etcd: TLS ---- */

Test(harness, etcd_tls_client_certs, .timeout = 60) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	_cleanup_free_ char *out = NULL, *url = NULL, *v = NULL;
	hx_etcd_options opts = { .tls = true, .client_cert_auth = true };

	cr_assert_eq(hx_etcd_start(&e, &opts), 0);
	cr_assert(strncmp(hx_etcd_endpoint(e, 0), "https://127.0.0.1:", 18) == 0);
	cr_assert(path_exists(hx_etcd_ca_file(e)));
	cr_assert(path_exists(hx_etcd_client_cert(e)));
	cr_assert(path_exists(hx_etcd_client_key(e)));
	cr_assert(asprintf(&url, "%s/health", hx_etcd_endpoint(e, 0)) > 0);

	char *const with_cert[] = { "curl", "-sS", "--max-time", "5",
		"--cacert", (char *) hx_etcd_ca_file(e), "--cert", (char *) hx_etcd_client_cert(e),
		"--key", (char *) hx_etcd_client_key(e), url, NULL };
	cr_assert_eq(hx_run(&out, 10 * USEC_PER_SEC, with_cert, NULL), 0);
	cr_assert(strstr(out, "\"health\":\"true\""), "health: %s", out);

	/* No client certificate: the handshake is refused. */
	free(out);
	out = NULL;
	char *const without_cert[] = { "curl", "-s", "--max-time", "5",
		"--cacert", (char *) hx_etcd_ca_file(e), url, NULL };
	cr_assert_neq(hx_run(&out, 10 * USEC_PER_SEC, without_cert, NULL), 0);

	/* etcdctl gets the TLS flags. */
	cr_assert_eq(hx_etcd_put(e, "/hx/tls", "yes"), 0);
	v = hx_etcd_get(e, "/hx/tls");
	cr_assert_str_eq(v, "yes");
}

/* ---- etcd: auth ---- */

Test(harness, etcd_auth, .timeout = 60) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	_cleanup_free_ char *out = NULL, *v = NULL;

	cr_assert_eq(hx_etcd_start(&e, NULL), 0);
	cr_assert_eq(hx_etcd_put(e, "/app/x", "0"), 0);
	cr_assert_eq(hx_etcd_enable_auth(e, "app", "apppw", "/app/"), 0);

	char *const get[] = { "get", "/app/x", NULL };
	cr_assert_gt(hx_etcdctl_as(e, NULL, &out, get), 0, "no user must fail");
	free(out);
	out = NULL;
	cr_assert_gt(hx_etcdctl_as(e, "app:wrong", &out, get), 0, "bad password must fail");
	free(out);
	out = NULL;
	cr_assert_eq(hx_etcdctl_as(e, "app:apppw", &out, get), 0);
	cr_assert_str_eq(out, "/app/x\n0\n");

	char *const put_in[] = { "put", "/app/y", "1", NULL };
	char *const put_out[] = { "put", "/other", "1", NULL };
	cr_assert_eq(hx_etcdctl_as(e, "app:apppw", NULL, put_in), 0);
	cr_assert_gt(hx_etcdctl_as(e, "app:apppw", NULL, put_out), 0, "outside prefix must fail");

	/* The harness's own calls run as root. */
	cr_assert_eq(hx_etcd_put(e, "/other", "root"), 0);
	v = hx_etcd_get(e, "/app/y");
	cr_assert_str_eq(v, "1");
}

/* ---- systemd --user ---- */

static bool pred_unit_active(void *userdata) {
	hx_systemd *s = userdata;
	_cleanup_free_ char *state = hx_systemd_unit_property(s, "hx-notify.service", "ActiveState");

	return state && streq(state, "active");
}

Test(harness, systemd_user_manager, .timeout = 60) {
	_cleanup_(hx_systemd_freep) hx_systemd *s = NULL;
	_cleanup_free_ char *runtime = NULL, *state = NULL, *sub = NULL, *out = NULL, *mainpid = NULL;
	struct stat st;

	cr_assert_eq(hx_systemd_start(&s), 0);
	runtime = strdup(hx_systemd_runtime_dir(s));
	cr_assert_eq(stat(runtime, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert(path_exists(hx_systemd_unit_dir(s)));
	char *const *env = hx_systemd_env(s);
	cr_assert_eq(strv_length(env), 2);
	cr_assert(strncmp(env[0], "XDG_RUNTIME_DIR=", 16) == 0);
	cr_assert(strncmp(env[1], "DBUS_SESSION_BUS_ADDRESS=unix:path=", 35) == 0);

	pid_t manager = hx_systemd_pid(s);
	cr_assert_gt(manager, 0);

	cr_assert_eq(hx_systemd_install_unit(s, "hx-notify.service",
		"[Unit]\n"
		"Description=harness notify test\n"
		"[Service]\n"
		"Type=notify\n"
		"NotifyAccess=all\n"
		"ExecStart=/bin/sh -c 'systemd-notify --ready; exec sleep 600'\n"), 0);
	char *const start[] = { "start", "hx-notify.service", NULL };
	cr_assert_eq(hx_systemctl(s, NULL, start), 0);
	cr_assert(hx_wait_until(pred_unit_active, s, 10 * USEC_PER_SEC));
	sub = hx_systemd_unit_property(s, "hx-notify.service", "SubState");
	cr_assert_str_eq(sub, "running");
	mainpid = hx_systemd_unit_property(s, "hx-notify.service", "MainPID");
	pid_t unit_pid = (pid_t) atoi(mainpid);
	cr_assert_gt(unit_pid, 0);

	char *const stop[] = { "stop", "hx-notify.service", NULL };
	cr_assert_eq(hx_systemctl(s, NULL, stop), 0);
	state = hx_systemd_unit_property(s, "hx-notify.service", "ActiveState");
	cr_assert_str_eq(state, "inactive");
	cr_assert(hx_wait_until(pred_pid_dead, &unit_pid, 5 * USEC_PER_SEC));

	/* Start it again so free has a running unit to stop with the manager. */
	cr_assert_eq(hx_systemctl(s, NULL, start), 0);
	cr_assert(hx_wait_until(pred_unit_active, s, 10 * USEC_PER_SEC));
	free(mainpid);
	mainpid = hx_systemd_unit_property(s, "hx-notify.service", "MainPID");
	unit_pid = (pid_t) atoi(mainpid);

	char *const running[] = { "is-system-running", NULL };
	cr_assert_geq(hx_systemctl(s, &out, running), 0);
	cr_assert(streq(out, "running\n") || streq(out, "degraded\n"), "state: %s", out);

	s = hx_systemd_free(s);
	cr_assert(pid_dead(manager), "manager %d outlived free", (int) manager);
	cr_assert_not(path_exists(runtime));
	cr_assert(hx_wait_until(pred_pid_dead, &unit_pid, 5 * USEC_PER_SEC),
	          "unit process %d outlived the manager", (int) unit_pid);
}

/* ---- processes ---- */

Test(harness, proc_wait_timeout) {
	_cleanup_(hx_proc_freep) hx_proc *p = NULL, *q = NULL;
	char *const sleeper[] = { "sleep", "30", NULL };
	int status = 0;

	cr_assert_eq(hx_proc_spawn(&p, sleeper, NULL, NULL), 0);
	cr_assert(hx_proc_running(p));
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_proc_wait(p, 200 * USEC_PER_MSEC, &status), -ETIMEDOUT);
	uint64_t took = hx_now_usec() - t0;
	cr_assert_geq(took, 200 * USEC_PER_MSEC);
	cr_assert_lt(took, 2 * USEC_PER_SEC);
	cr_assert(hx_proc_running(p));

	cr_assert_eq(hx_proc_signal(p, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(p, 5 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	cr_assert_not(hx_proc_running(p));
	/* Again after exit: same answer at once. */
	cr_assert_eq(hx_proc_wait(p, 0, &status), 0);
	cr_assert(WIFSIGNALED(status));
	cr_assert_eq(hx_proc_signal(p, SIGTERM), -ESRCH);

	/* Exit status, extra environment, and a log file. */
	_cleanup_free_ char *dir = hx_mkdtemp("proc"), *log = NULL, *text = NULL;
	cr_assert_not_null(dir);
	cr_assert(asprintf(&log, "%s/out.log", dir) > 0);
	char *const sh[] = { "sh", "-c", "echo \"v=$HX_TEST_VAR\"; echo err >&2; exit 3", NULL };
	char *const env[] = { "HX_TEST_VAR=42", NULL };
	cr_assert_eq(hx_proc_spawn(&q, sh, env, log), 0);
	cr_assert_eq(hx_proc_wait(q, 5 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	text = hx_read_file(log, NULL);
	cr_assert_str_eq(text, "v=42\nerr\n");
	cr_assert_eq(hx_rm_rf(dir), 0);
	cr_assert_not(path_exists(dir));

	/* A missing program is an error from spawn, not a late exit 127. */
	hx_proc *none = NULL;
	char *const missing[] = { "/nonexistent/hx-no-such-program", NULL };
	cr_assert_eq(hx_proc_spawn(&none, missing, NULL, NULL), -ENOENT);
	cr_assert_null(none);
}

Test(harness, proc_free_stops_child) {
	hx_proc *p = NULL;
	/* Ignores SIGTERM: free must fall back to SIGKILL (after 10 s; too slow
	 * here), so use a plain sleeper and check SIGTERM suffices. */
	char *const sleeper[] = { "sleep", "30", NULL };

	cr_assert_eq(hx_proc_spawn(&p, sleeper, NULL, NULL), 0);
	pid_t pid = hx_proc_pid(p);
	cr_assert_gt(pid, 0);
	uint64_t t0 = hx_now_usec();
	p = hx_proc_free(p);
	cr_assert_lt(hx_now_usec() - t0, 2 * USEC_PER_SEC);
	cr_assert(pid_dead(pid));
}

Test(harness, run_captures_and_times_out) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	char *const echo[] = { "sh", "-c", "printf 'a\\nb'; printf oops >&2; exit 5", NULL };

	cr_assert_eq(hx_run_capture(&out, &err, 5 * USEC_PER_SEC, echo, NULL), 5);
	cr_assert_str_eq(out, "a\nb");
	cr_assert_str_eq(err, "oops");

	free(out);
	out = NULL;
	char *const slow[] = { "sleep", "30", NULL };
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_run(&out, 300 * USEC_PER_MSEC, slow, NULL), -ETIMEDOUT);
	cr_assert_lt(hx_now_usec() - t0, 2 * USEC_PER_SEC);
	cr_assert_null(out);

	char *const killed[] = { "sh", "-c", "kill -9 $$", NULL };
	cr_assert_eq(hx_run(NULL, 5 * USEC_PER_SEC, killed, NULL), 128 + SIGKILL);
}

Test(harness, free_port_and_files) {
	int p = hx_free_port();
	cr_assert(p > 0 && p < 65536);

	_cleanup_free_ char *dir = hx_mkdtemp("files"), *f = NULL, *text = NULL;
	cr_assert_not_null(dir);
	cr_assert(asprintf(&f, "%s/a/b", dir) > 0);
	cr_assert_lt(hx_write_file(f, "x"), 0);          /* no such dir */
	free(f);
	cr_assert(asprintf(&f, "%s/a", dir) > 0);
	cr_assert_eq(hx_write_file(f, "hello\n"), 0);
	size_t len = 0;
	text = hx_read_file(f, &len);
	cr_assert_str_eq(text, "hello\n");
	cr_assert_eq(len, 6);
	cr_assert_eq(hx_rm_rf(dir), 0);
	cr_assert_not(path_exists(dir));
	cr_assert_eq(hx_rm_rf(dir), 0);                  /* already gone: fine */
}

/* ---- a crashed worker leaves no etcd behind ---- */

Test(harness, crashed_worker_leaves_no_etcd, .timeout = 60) {
	int fds[2];
	struct { pid_t etcd; char dir[256]; } msg = {};

	/* Orphans re-parent to us, so we can reap the killed etcd. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe(fds), 0);
	pid_t worker = fork();
	cr_assert_geq(worker, 0);
	if (worker == 0) {
		/* The "test worker": start etcd, report its pid, crash. */
		hx_etcd *e = NULL;

		close(fds[0]);
		if (hx_etcd_start(&e, NULL) == 0) {
			msg.etcd = hx_etcd_member_pid(e, 0);
			snprintf(msg.dir, sizeof(msg.dir), "%s", hx_etcd_dir(e));
		}
		(void) !write(fds[1], &msg, sizeof(msg));
		_exit(1);       /* no hx_etcd_free: the harness must not need it */
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &msg, sizeof(msg)), (ssize_t) sizeof(msg));
	close(fds[0]);
	cr_assert_gt(msg.etcd, 0, "the worker did not start etcd");
	(void) waitpid(worker, NULL, 0);

	pid_t pid = msg.etcd;
	cr_assert(hx_wait_until(pred_pid_dead, &pid, 5 * USEC_PER_SEC),
	          "etcd %d outlived its crashed worker", (int) pid);
	cr_assert_eq(hx_rm_rf(msg.dir), 0);
}

Test(harness, crashed_worker_leaves_no_systemd, .timeout = 60) {
	int fds[2];
	struct { pid_t manager, unit; char runtime[256]; } msg = {};

	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe(fds), 0);
	pid_t worker = fork();
	cr_assert_geq(worker, 0);
	if (worker == 0) {
		hx_systemd *s = NULL;
		char *const start[] = { "start", "hx-sleep.service", NULL };

		close(fds[0]);
		if (hx_systemd_start(&s) == 0 &&
		    hx_systemd_install_unit(s, "hx-sleep.service",
		                            "[Service]\nExecStart=/bin/sleep 600\n") == 0 &&
		    hx_systemctl(s, NULL, start) == 0) {
			_cleanup_free_ char *pid = hx_systemd_unit_property(s, "hx-sleep.service", "MainPID");
			msg.manager = hx_systemd_pid(s);
			msg.unit = pid ? (pid_t) atoi(pid) : 0;
			snprintf(msg.runtime, sizeof(msg.runtime), "%s", hx_systemd_runtime_dir(s));
		}
		(void) !write(fds[1], &msg, sizeof(msg));
		_exit(1);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &msg, sizeof(msg)), (ssize_t) sizeof(msg));
	close(fds[0]);
	(void) waitpid(worker, NULL, 0);
	cr_assert_gt(msg.manager, 0, "the worker did not start systemd");
	cr_assert_gt(msg.unit, 0, "the worker did not start the unit");

	/* The manager got SIGTERM, stopped its unit and exited. */
	pid_t pid = msg.manager;
	cr_assert(hx_wait_until(pred_pid_dead, &pid, 15 * USEC_PER_SEC),
	          "systemd --user %d outlived its crashed worker", (int) pid);
	pid = msg.unit;
	cr_assert(hx_wait_until(pred_pid_dead, &pid, 5 * USEC_PER_SEC),
	          "unit process %d outlived its crashed worker's manager", (int) pid);
	/* The leftover dir is the parent of the runtime dir. */
	char *slash = strrchr(msg.runtime, '/');
	cr_assert_not_null(slash);
	*slash = '\0';
	cr_assert_eq(hx_rm_rf(msg.runtime), 0);
}
