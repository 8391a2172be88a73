/* test_units_bus.c — units.c against a real `systemd --user` manager on its
 * real user bus (dbus-daemon, socket-activated by the manager): restart,
 * reload, start, stop and try-restart of small units, and what failure
 * looks like (ExecStartPre= fails, no such unit, too slow, a service that
 * exits at once), cancel, freeing with jobs pending, and a lost bus.
 *
 * The manager is started per test; units get names with this worker's pid,
 * and tests take the machine-wide turn that test_units.c takes, since two
 * root user managers started from one cgroup share cgroup paths. Waits are
 * the sd-event loop run until a callback has run, up to a deadline. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "harness.h"
#include "units.h"

#define WAIT_USEC (20 * USEC_PER_SEC)

TestSuite(units_bus, .timeout = 120);

static hx_systemd *sd;
static sd_event *event;
static units_bus *bus;
static char *dir;

typedef struct outcome {
	bool done;
	unsigned calls;
	int error;
	char job_result[32];
	char active_state[32];
	char message[256];
} outcome;

/* ---- set-up ---- */

static void up(void) {
	dir = hx_mkdtemp("units-bus");
	cr_assert_not_null(dir);
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	/* units_bus_open(user) finds the bus the way a user session would. */
	for (char *const *e = hx_systemd_env(sd); *e; e++) {
		_cleanup_free_ char *kv = strdup(*e);
		char *eq = strchr(kv, '=');
		cr_assert_not_null(eq);
		*eq = '\0';
		cr_assert_eq(setenv(kv, eq + 1, 1), 0);
	}
	cr_assert_geq(sd_event_default(&event), 0);
	cr_assert_eq(units_bus_open(&bus, event, true), 0);
}

static void down(void) {
	bus = units_bus_free(bus);
	event = sd_event_unref(event);
	sd = hx_systemd_free(sd);       /* stops its units too */
	if (dir)
		(void) hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

/* ---- helpers ---- */

/* "ub-PID-name.service" */
static char *unit_name(const char *name) {
	char *u;
	cr_assert_geq(asprintf(&u, "ub-%d-%s.service", (int) getpid(), name), 0);
	return u;
}

static char *install(const char *name, const char *service_lines) {
	char *u = unit_name(name);
	_cleanup_free_ char *text = NULL;

	cr_assert_geq(asprintf(&text, "[Unit]\nDescription=units_bus test %s\n\n[Service]\n%s\n", name,
			       service_lines), 0);
	cr_assert_eq(hx_systemd_install_unit(sd, u, text), 0);
	return u;
}

static char *path_in(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static void on_done(units_job *j, const units_result *r, void *userdata) {
	outcome *o = userdata;

	o->calls++;
	o->done = true;
	o->error = r->error;
	snprintf(o->job_result, sizeof o->job_result, "%s", r->job_result);
	snprintf(o->active_state, sizeof o->active_state, "%s", r->active_state);
	snprintf(o->message, sizeof o->message, "%s", r->message);
	cr_log_info("%s %s: error %d (%s), job %s, state %s: %s", units_action_to_string(r->action), r->unit,
		    r->error, r->error ? strerror(-r->error) : "ok", r->job_result, r->active_state, r->message);
}

static bool run_until(const bool *flag, uint64_t timeout_usec) {
	return hx_event_run_until(event, flag, timeout_usec);
}

static outcome run(const char *unit, units_action a, uint64_t timeout_usec) {
	outcome o = {};

	cr_assert_eq(units_run(bus, unit, a, timeout_usec, on_done, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC + timeout_usec), "%s %s: no outcome",
		  units_action_to_string(a), unit);
	cr_assert_eq(o.calls, 1);
	return o;
}

static char *prop(const char *unit, const char *name) {
	char *v = hx_systemd_unit_property(sd, unit, name);
	cr_assert_not_null(v, "no %s for %s", name, unit);
	return v;
}

/* ---- tests ---- */

Test(units_bus, action_names) {
	cr_assert_str_eq(units_action_to_string(UNITS_RESTART), "restart");
	cr_assert_str_eq(units_action_to_string(UNITS_RELOAD_OR_RESTART), "reload-or-restart");
	cr_assert_str_eq(units_action_to_string(UNITS_STOP), "stop");
	cr_assert_null(units_action_to_string((units_action) 99));
}

Test(units_bus, start_restart_stop, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("simple", "ExecStart=/bin/sleep 1000");

	outcome o = run(u, UNITS_START, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.job_result, "done");
	cr_assert_str_eq(o.active_state, "active");
	_cleanup_free_ char *pid1 = prop(u, "MainPID");
	cr_assert_neq(atoi(pid1), 0);

	o = run(u, UNITS_RESTART, 10 * USEC_PER_SEC);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.job_result, "done");
	cr_assert_str_eq(o.active_state, "active");
	_cleanup_free_ char *pid2 = prop(u, "MainPID");
	cr_assert_neq(atoi(pid2), 0);
	cr_assert_str_neq(pid1, pid2, "MainPID did not change: %s", pid1);

	o = run(u, UNITS_STOP, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.active_state, "inactive");
	_cleanup_free_ char *state = prop(u, "ActiveState");
	cr_assert_str_eq(state, "inactive");

	/* Not running: try-restart leaves it so, and says that is fine. */
	o = run(u, UNITS_TRY_RESTART, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.active_state, "inactive");
}

Test(units_bus, concurrent_calls, .init = up, .fini = down) {
	enum { N = 4 };
	_cleanup_free_ char *same = install("same", "ExecStart=/bin/sleep 1000");
	char *names[N] = {};
	outcome o[N] = {}, s[N] = {};

	/* Restarts of one unit queued back to back may be merged into one
	 * manager job (one path, one JobRemoved): each call still reports. */
	for (int i = 0; i < N; i++)
		cr_assert_eq(units_run(bus, same, UNITS_RESTART, 0, on_done, &s[i], NULL), 0);
	/* And different units at once. */
	for (int i = 0; i < N; i++) {
		char n[16];
		snprintf(n, sizeof n, "par%d", i);
		names[i] = install(n, "ExecStart=/bin/sleep 1000");
		cr_assert_eq(units_run(bus, names[i], UNITS_START, 0, on_done, &o[i], NULL), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert(run_until(&s[i].done, WAIT_USEC));
		cr_assert(run_until(&o[i].done, WAIT_USEC));
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(s[i].calls, 1);
		cr_assert_eq(s[i].error, 0, "%s", s[i].message);
		cr_assert_eq(o[i].calls, 1);
		cr_assert_eq(o[i].error, 0, "%s", o[i].message);
		cr_assert_str_eq(o[i].active_state, "active");
		free(names[i]);
	}
}

Test(units_bus, reload_runs_exec_reload, .init = up, .fini = down) {
	_cleanup_free_ char *flag = path_in("reloaded"), *lines = NULL;
	cr_assert_geq(asprintf(&lines, "ExecStart=/bin/sleep 1000\nExecReload=/bin/touch %s", flag), 0);
	_cleanup_free_ char *u = install("reload", lines);

	outcome o = run(u, UNITS_START, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	_cleanup_free_ char *pid1 = prop(u, "MainPID");
	cr_assert_neq(access(flag, F_OK), 0);

	o = run(u, UNITS_RELOAD, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.job_result, "done");
	cr_assert_str_eq(o.active_state, "active");
	cr_assert_eq(access(flag, F_OK), 0, "ExecReload= did not run");
	_cleanup_free_ char *pid2 = prop(u, "MainPID");
	cr_assert_str_eq(pid1, pid2, "a reload restarted the service");

	/* reload-or-restart reloads a unit that can. */
	cr_assert_eq(unlink(flag), 0);
	o = run(u, UNITS_RELOAD_OR_RESTART, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(access(flag, F_OK), 0);
}

Test(units_bus, reload_without_exec_reload_fails, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("noreload", "ExecStart=/bin/sleep 1000");

	outcome o = run(u, UNITS_START, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	/* The manager refuses the job outright (JobTypeNotApplicable). */
	o = run(u, UNITS_RELOAD, 0);
	cr_assert_lt(o.error, 0);
	cr_assert_str_eq(o.job_result, "");
	cr_assert(strstr(o.message, u), "%s", o.message);
}

Test(units_bus, start_pre_fails, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("prefail", "ExecStartPre=/bin/false\nExecStart=/bin/sleep 1000");

	outcome o = run(u, UNITS_RESTART, 0);
	cr_assert_eq(o.error, -EIO, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.job_result, "failed");
	cr_assert_str_eq(o.active_state, "failed");
	cr_assert(strstr(o.message, "failed"), "%s", o.message);
}

Test(units_bus, no_such_unit, .init = up, .fini = down) {
	_cleanup_free_ char *u = unit_name("nonexistent");

	outcome o = run(u, UNITS_RESTART, 0);
	cr_assert_eq(o.error, -ENOENT, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.job_result, "");
	cr_assert(strstr(o.message, u), "%s", o.message);
}

Test(units_bus, slow_unit_times_out, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("slow", "ExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000");
	uint64_t start = hx_now_usec();

	outcome o = run(u, UNITS_RESTART, 1 * USEC_PER_SEC);
	uint64_t took = hx_now_usec() - start;
	cr_assert_eq(o.error, -ETIMEDOUT, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.job_result, "");
	cr_assert_geq(took, 1 * USEC_PER_SEC);
	cr_assert_lt(took, 5 * USEC_PER_SEC, "took %llu us", (unsigned long long) took);
	/* The manager's job is left alone: the unit is still starting. */
	_cleanup_free_ char *state = prop(u, "ActiveState");
	cr_assert_str_eq(state, "activating");
}

Test(units_bus, exits_at_once_is_a_failure, .init = up, .fini = down) {
	/* Type=simple: the start job is "done" once the process is forked,
	 * before it can exit; the settle time catches it. */
	_cleanup_free_ char *u = install("exits", "Type=simple\nExecStart=/bin/sh -c 'exit 1'");

	outcome o = run(u, UNITS_RESTART, 0);
	cr_assert_eq(o.error, -EIO, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.job_result, "done");
	cr_assert_str_neq(o.active_state, "active");
	cr_log_info("exits at once: job %s, state %s", o.job_result, o.active_state);

	/* Exit 0 at once is no better for a service. */
	_cleanup_free_ char *t = install("true", "Type=simple\nExecStart=/bin/true");
	o = run(t, UNITS_START, 0);
	cr_assert_eq(o.error, -EIO, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.active_state, "inactive");
}

Test(units_bus, exits_at_once_with_restart_always, .init = up, .fini = down) {
	/* Restart=always brings it back within the settle time: a new
	 * invocation, which is a failure too. */
	_cleanup_free_ char *u = install("flap", "Type=simple\nExecStart=/bin/sh -c 'exit 1'\n"
					 "Restart=always\nRestartSec=50ms\n[Unit]\nStartLimitIntervalSec=0");

	outcome o = run(u, UNITS_RESTART, 0);
	cr_assert_eq(o.error, -EIO, "%d %s", o.error, o.message);
	cr_assert_str_eq(o.job_result, "done");
}

Test(units_bus, settle_zero_reports_at_once, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("quick", "ExecStart=/bin/sleep 1000");

	units_bus_set_settle(bus, 0);
	uint64_t start = hx_now_usec();
	outcome o = run(u, UNITS_START, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.active_state, "active");
	cr_assert_lt(hx_now_usec() - start, 400 * USEC_PER_MSEC);
}

Test(units_bus, cancel_before_completion, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("cancel", "ExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000");
	outcome first = {}, second = {};
	units_job *j = NULL;

	cr_assert_eq(units_run(bus, u, UNITS_START, 0, on_done, &first, &j), 0);
	cr_assert_not_null(j);
	/* Let the job be queued and its path known, then cancel ours. */
	_cleanup_free_ char *state = NULL;
	uint64_t end = hx_now_usec() + WAIT_USEC;
	for (;;) {
		cr_assert_geq(sd_event_run(event, 10 * USEC_PER_MSEC), 0);
		free(state);
		state = prop(u, "ActiveState");
		if (streq(state, "activating"))
			break;
		cr_assert_lt(hx_now_usec(), end, "the start job never began");
	}
	units_job_cancel(j);

	/* A stop replaces the start job: its JobRemoved ("canceled") now
	 * arrives with no one to tell. The stop's own outcome is the sign
	 * that the loop has seen it. */
	cr_assert_eq(units_run(bus, u, UNITS_STOP, 0, on_done, &second, NULL), 0);
	cr_assert(run_until(&second.done, WAIT_USEC));
	cr_assert_eq(second.error, 0, "%s", second.message);
	cr_assert_eq(first.calls, 0, "a canceled job's callback ran");
	units_job_cancel(NULL);
}

Test(units_bus, cancel_while_calling, .init = up, .fini = down) {
	_cleanup_free_ char *u = install("cancel2", "ExecStart=/bin/sleep 1000");
	outcome first = {}, second = {};
	units_job *j = NULL;

	/* Canceled before the reply is read; a second call on the same unit
	 * completes, and the first never reports. */
	cr_assert_eq(units_run(bus, u, UNITS_START, 0, on_done, &first, &j), 0);
	units_job_cancel(j);
	cr_assert_eq(units_run(bus, u, UNITS_START, 0, on_done, &second, NULL), 0);
	cr_assert(run_until(&second.done, WAIT_USEC));
	cr_assert_eq(second.error, 0, "%s", second.message);
	cr_assert_eq(first.calls, 0);
}

Test(units_bus, free_with_jobs_pending, .init = up, .fini = down) {
	_cleanup_free_ char *slow = install("pending", "ExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000");
	_cleanup_free_ char *fast = install("pending2", "ExecStart=/bin/sleep 1000");
	outcome a = {}, b = {}, c = {};

	cr_assert_eq(units_run(bus, slow, UNITS_START, 0, on_done, &a, NULL), 0);
	cr_assert_eq(units_run(bus, fast, UNITS_START, 0, on_done, &b, NULL), 0);
	/* One round trip in: jobs queued, replies maybe read. */
	(void) sd_event_run(event, 50 * USEC_PER_MSEC);
	bus = units_bus_free(bus);

	/* A new bus on the same loop works, and the old jobs stay quiet
	 * while the loop runs on (their JobRemoved signals included). */
	cr_assert_eq(units_bus_open(&bus, event, true), 0);
	cr_assert_eq(units_run(bus, slow, UNITS_STOP, 0, on_done, &c, NULL), 0);
	cr_assert(run_until(&c.done, WAIT_USEC));
	cr_assert_eq(c.error, 0, "%s", c.message);
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(b.calls, 0);
}

static void free_bus_in_callback(units_job *j, const units_result *r, void *userdata) {
	outcome *o = userdata;

	on_done(j, r, userdata);
	if (o->calls == 1)
		bus = units_bus_free(bus);
}

Test(units_bus, free_from_a_callback, .init = up, .fini = down) {
	_cleanup_free_ char *u = unit_name("nonexistent");
	_cleanup_free_ char *slow = install("pending3", "ExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000");
	outcome o = {}, other = {};

	cr_assert_eq(units_run(bus, slow, UNITS_START, 0, on_done, &other, NULL), 0);
	cr_assert_eq(units_run(bus, u, UNITS_RESTART, 0, free_bus_in_callback, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC));
	cr_assert_null(bus);
	(void) sd_event_run(event, 0);
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(other.calls, 0);
}

static bool bus_daemon_back(void *userdata) {
	_cleanup_free_ char *state = hx_systemd_unit_property(sd, "dbus.service", "ActiveState");
	return state && streq(state, "active");
}

Test(units_bus, lost_bus_fails_pending_and_reconnects, .init = up, .fini = down) {
	_cleanup_free_ char *slow = install("lost", "ExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000");
	_cleanup_free_ char *fast = install("after", "ExecStart=/bin/sleep 1000");
	char *const restart_dbus[] = { "restart", "dbus.service", NULL };
	outcome a = {};

	cr_assert_eq(units_run(bus, slow, UNITS_START, 30 * USEC_PER_SEC, on_done, &a, NULL), 0);
	/* The job must be queued before the bus goes. */
	_cleanup_free_ char *state = NULL;
	uint64_t end = hx_now_usec() + WAIT_USEC;
	for (;;) {
		cr_assert_geq(sd_event_run(event, 10 * USEC_PER_MSEC), 0);
		free(state);
		state = prop(slow, "ActiveState");
		if (streq(state, "activating"))
			break;
		cr_assert_lt(hx_now_usec(), end, "the start job never began");
	}

	/* systemctl talks to the manager's private socket, not the bus. */
	cr_assert_eq(hx_systemctl(sd, NULL, restart_dbus), 0);
	cr_assert(run_until(&a.done, WAIT_USEC));
	cr_assert_eq(a.error, -ECONNRESET, "%d %s", a.error, a.message);
	cr_assert(hx_wait_until(bus_daemon_back, NULL, WAIT_USEC));

	/* The next call opens a new connection. The manager rejoins the new
	 * bus on its own schedule, so retry (bounded) until it answers. */
	outcome b = {};
	end = hx_now_usec() + WAIT_USEC;
	for (;;) {
		b = run(fast, UNITS_START, 0);
		if (b.error == 0)
			break;
		cr_assert_lt(hx_now_usec(), end, "no answer on the new bus: %s", b.message);
		(void) sd_event_run(event, 50 * USEC_PER_MSEC);
	}
	cr_assert_str_eq(b.active_state, "active");
}

Test(units_bus, bad_arguments, .init = up, .fini = down) {
	outcome o = {};

	cr_assert_eq(units_run(bus, NULL, UNITS_START, 0, on_done, &o, NULL), -EINVAL);
	cr_assert_eq(units_run(bus, "", UNITS_START, 0, on_done, &o, NULL), -EINVAL);
	cr_assert_eq(units_run(bus, "x.service", (units_action) 42, 0, on_done, &o, NULL), -EINVAL);
	cr_assert_eq(units_run(bus, "x.service", UNITS_START, 0, NULL, &o, NULL), -EINVAL);
	cr_assert_null(units_bus_free(NULL));
}

/* ---- transient units ---- */

static char *tname(const char *name) {
	char *u;
	cr_assert_geq(asprintf(&u, "ub-%d-t-%s.service", (int) getpid(), name), 0);
	return u;
}

static bool file_has(const char *path, const char *text) {
	_cleanup_free_ char *got = hx_read_file(path, NULL);
	return got && strstr(got, text);
}

static int exit_status_of;

static void on_done_status(units_job *j, const units_result *r, void *userdata) {
	exit_status_of = r->exit_status;
	on_done(j, r, userdata);
}

static outcome run_transient(const char *unit, const char *command, char *const *env, uint64_t timeout_usec) {
	outcome o = {};

	exit_status_of = -2;
	cr_assert_eq(units_run_transient(bus, unit, command, env, timeout_usec, on_done_status, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC + timeout_usec), "%s: no outcome", unit);
	cr_assert_eq(o.calls, 1);
	return o;
}

Test(units_bus, transient_name_escapes) {
	_cleanup_free_ char *a = units_transient_name("corral-upgrade-", "p 1/x-2");
	cr_assert_str_eq(a, "corral-upgrade-p\\x201\\x2fx-2.service");
	char long_text[400];
	memset(long_text, 'a', sizeof long_text - 1);
	long_text[sizeof long_text - 1] = '\0';
	_cleanup_free_ char *b = units_transient_name("c-", long_text);
	cr_assert_eq(strlen(b), 255);
	cr_assert_str_eq(b + 255 - 8, ".service");
}

Test(units_bus, transient_success_and_environment, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("ok"), *out = path_in("env.out"), *cmd = NULL;
	char *env[] = { "CORRAL_IMAGE=img:2", "CORRAL_PLAN=p 1", NULL };

	cr_assert_geq(asprintf(&cmd, "echo \"$CORRAL_IMAGE|$CORRAL_PLAN\" > %s", out), 0);
	outcome o = run_transient(u, cmd, env, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(exit_status_of, 0);
	cr_assert(file_has(out, "img:2|p 1\n"), "the command saw the environment");
	/* Collected once it ended (CollectMode=inactive-or-failed, our
	 * reference dropped): the same name can run again. */
	o = run_transient(u, cmd, env, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
}

Test(units_bus, transient_exit_1_fails, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("exit1");
	outcome o = run_transient(u, "echo doomed; exit 3", NULL, 0);
	cr_assert_eq(o.error, -EIO, "%s", o.message);
	cr_assert_eq(exit_status_of, 3);
	cr_assert(strstr(o.message, "exit status 3"), "%s", o.message);
	/* A failed one is collected too. */
	o = run_transient(u, "exit 0", NULL, 0);
	cr_assert_eq(o.error, 0, "%s", o.message);
}

/* The hook runner reads a command's stdout from a file (a backup prints
 * where it went); a second run starts the file from empty. */
Test(units_bus, transient_stdout_to_a_file, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("stdout"), *out = path_in("stdout.out");
	outcome o = {};

	cr_assert_eq(units_run_transient_opts(bus, u, "echo first; echo s3://b/1", NULL, 0, out, on_done, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC), "no outcome");
	cr_assert_eq(o.error, 0, "%s", o.message);
	_cleanup_free_ char *got = hx_read_file(out, NULL);
	cr_assert_str_eq(got, "first\ns3://b/1\n");

	/* systemd does not truncate: the caller removes the old file. */
	cr_assert_eq(unlink(out), 0);
	o = (outcome) {};
	cr_assert_eq(units_run_transient_opts(bus, u, "echo again", NULL, 0, out, on_done, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC), "no outcome");
	_cleanup_free_ char *again = hx_read_file(out, NULL);
	cr_assert_str_eq(again, "again\n");
	cr_assert_eq(units_run_transient_opts(bus, u, "true", NULL, 0, "relative", on_done, &o, NULL), -EINVAL);
}

Test(units_bus, transient_timeout, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("slow");
	uint64_t start = hx_now_usec();
	outcome o = run_transient(u, "sleep 30", NULL, 500 * USEC_PER_MSEC);
	cr_assert_eq(o.error, -ETIMEDOUT, "%s", o.message);
	cr_assert_lt(hx_now_usec() - start, 8 * USEC_PER_SEC, "killed near its timeout");
}

Test(units_bus, transient_name_taken, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("taken");
	outcome first = {};
	cr_assert_eq(units_run_transient(bus, u, "sleep 2", NULL, 0, on_done, &first, NULL), 0);
	outcome o = run_transient(u, "true", NULL, 0);
	cr_assert_eq(o.error, -EEXIST, "%s", o.message);
	cr_assert(run_until(&first.done, WAIT_USEC));
	cr_assert_eq(first.error, 0, "%s", first.message);
}

/* A command started by someone else (here: a call on another connection,
 * which then goes away as a dead corrald's would) is waited for by name:
 * its outcome is reported once it ends, and it ran once. */
static void wait_for_earlier(const char *tag, const char *tail, int want_error, int want_status) {
	_cleanup_free_ char *u = tname(tag), *count = path_in("count"), *gate = path_in("gate"), *cmd = NULL;
	units_bus *other = NULL;
	outcome first = {}, o = {};

	cr_assert_geq(asprintf(&cmd, "echo run >> %s; while [ ! -e %s ]; do sleep 0.05; done; %s", count, gate, tail), 0);
	cr_assert_eq(units_bus_open(&other, event, true), 0);
	cr_assert_eq(units_run_transient(other, u, cmd, NULL, 0, on_done, &first, NULL), 0);
	uint64_t end = hx_now_usec() + WAIT_USEC;
	while (!file_has(count, "run")) {
		cr_assert_lt(hx_now_usec(), end, "the command never started");
		(void) sd_event_run(event, 20 * USEC_PER_MSEC);
	}
	other = units_bus_free(other);         /* its callback never runs */

	cr_assert_eq(units_wait_unit(bus, u, 0, on_done_status, &o, NULL), 0);
	hx_event_run_until(event, &o.done, 300 * USEC_PER_MSEC);
	cr_assert(!o.done, "reported before the command ended: %s", o.message);
	cr_assert_eq(hx_write_file(gate, ""), 0);
	cr_assert(run_until(&o.done, WAIT_USEC));
	cr_assert_eq(o.error, want_error, "%s", o.message);
	cr_assert_eq(exit_status_of, want_status, "%s", o.message);
	cr_assert(!first.done);
	_cleanup_free_ char *runs = hx_read_file(count, NULL);
	cr_assert_str_eq(runs, "run\n", "ran once");
}

Test(units_bus, wait_for_a_unit_started_earlier, .init = up, .fini = down) {
	wait_for_earlier("w-ok", "exit 0", 0, 0);
}

Test(units_bus, wait_for_a_unit_that_fails, .init = up, .fini = down) {
	wait_for_earlier("w-fail", "exit 4", -EIO, 4);
}

Test(units_bus, wait_for_a_unit_gone, .init = up, .fini = down) {
	_cleanup_free_ char *u = tname("gone");
	outcome o = run_transient(u, "true", NULL, 0);
	cr_assert_eq(o.error, 0);
	o = (outcome) {};
	cr_assert_eq(units_wait_unit(bus, u, 0, on_done, &o, NULL), 0);
	cr_assert(run_until(&o.done, WAIT_USEC));
	cr_assert_eq(o.error, -ENOENT, "%s", o.message);
}
