/* test_child.c — child_run against real /bin/sh commands on a real sd-event
 * loop: output, exit codes and stderr in the message, megabytes both ways,
 * the output limit, the timeout killing a whole process group, $1, and
 * child_run_free() killing what is still running.
 *
 * Each test's worker is a child subreaper, so a grandchild orphaned by a
 * killed shell comes back to us and the test can reap it and see its
 * process group gone: every process a test starts, the test stops. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "child.h"
#include "harness.h"

#define WAIT_USEC (20 * USEC_PER_SEC)

TestSuite(child, .timeout = 60);

typedef struct outcome {
	bool done;
	unsigned calls;
	int error;
	int exit_status;
	char *out;
	size_t out_len;
	char message[512];
} outcome;

static sd_event *event;

static void up(void) {
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	cr_assert_geq(sd_event_default(&event), 0);
}

static void down(void) {
	event = sd_event_unref(event);
}

static void on_done(child_run *r, const child_result *res, void *userdata) {
	outcome *o = userdata;

	o->calls++;
	o->done = true;
	o->error = res->error;
	o->exit_status = res->exit_status;
	o->out_len = res->out_len;
	o->out = malloc(res->out_len + 1);
	cr_assert_not_null(o->out);
	memcpy(o->out, res->out, res->out_len + 1);
	snprintf(o->message, sizeof o->message, "%s", res->message);
}

static bool run_until(const bool *flag, uint64_t timeout_usec) {
	return hx_event_run_until(event, flag, timeout_usec);
}

static outcome run(const child_options *opts) {
	_cleanup_(child_run_freep) child_run *r = NULL;
	outcome o = {};

	cr_assert_eq(child_run_start(&r, event, opts, on_done, &o), 0);
	cr_assert(run_until(&o.done, WAIT_USEC), "'%s' did not finish in time", opts->command);
	cr_assert_eq(o.calls, 1);
	return o;
}

/* Reaps any member of group pgid handed to us (we are a subreaper) and says
 * whether the group is gone. */
static bool group_gone(void *userdata) {
	pid_t pgid = *(pid_t *) userdata;

	while (waitpid(-pgid, NULL, WNOHANG) > 0)
		;
	return kill(-pgid, 0) < 0 && errno == ESRCH;
}

static void assert_group_gone(pid_t pgid) {
	cr_assert(hx_wait_until(group_gone, &pgid, WAIT_USEC), "process group %d is still there", (int) pgid);
}

Test(child, exit_zero_with_stdout, .init = up, .fini = down) {
	child_options opts = { .command = "printf 'hello\\n'; echo oops >&2" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(o.exit_status, 0);
	cr_assert_str_eq(o.out, "hello\n");
	cr_assert_eq(o.out_len, 6);
	free(o.out);
}

Test(child, nonzero_exit_is_eio_with_stderr_tail, .init = up, .fini = down) {
	child_options opts = { .command = "echo partial; echo 'first line' >&2; echo 'bad thing happened' >&2; exit 3" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -EIO);
	cr_assert_eq(o.exit_status, 3);
	cr_assert(strstr(o.message, "status 3"), "%s", o.message);
	cr_assert(strstr(o.message, "bad thing happened"), "%s", o.message);
	cr_assert_str_eq(o.out, "partial\n");
	free(o.out);
}

Test(child, stderr_keeps_the_tail, .init = up, .fini = down) {
	/* 100 KiB of noise, then the line that matters. */
	child_options opts = { .command = "head -c 102400 /dev/zero | tr '\\0' x >&2; echo >&2; echo the-end >&2; exit 1" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -EIO);
	cr_assert(strstr(o.message, "the-end"), "%s", o.message);
	cr_assert_lt(strlen(o.message), sizeof o.message - 1);
	free(o.out);
}

Test(child, big_stdin_and_stdout, .init = up, .fini = down) {
	size_t len = 4 * 1024 * 1024;
	_cleanup_free_ char *in = malloc(len);

	cr_assert_not_null(in);
	for (size_t i = 0; i < len; i++)
		in[i] = (char) ('a' + (i * 7919) % 26);
	/* cat writes as it reads: neither side may wait for the other. */
	child_options opts = { .command = "cat", .input = in, .input_len = len };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(o.out_len, len);
	cr_assert(memcmp(o.out, in, len) == 0, "output differs from input");
	free(o.out);
}

Test(child, empty_input_is_eof, .init = up, .fini = down) {
	child_options opts = { .command = "wc -c", .input = "", .input_len = 0 };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(atoi(o.out), 0);
	free(o.out);
}

Test(child, no_input_is_dev_null, .init = up, .fini = down) {
	child_options opts = { .command = "cat; echo done" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.out, "done\n");
	free(o.out);
}

Test(child, input_not_read_is_fine, .init = up, .fini = down) {
	size_t len = 1024 * 1024;
	_cleanup_free_ char *in = calloc(1, len);

	cr_assert_not_null(in);
	/* The command ignores its input and exits: our writes hit EPIPE,
	 * which must neither kill us (SIGPIPE) nor fail the run. */
	child_options opts = { .command = "echo ignored", .input = in, .input_len = len };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.out, "ignored\n");
	free(o.out);
}

Test(child, too_much_output_is_efbig, .init = up, .fini = down) {
	/* yes never stops by itself: the limit must stop it. */
	child_options opts = { .command = "echo $$; exec yes", .max_output = 100000 };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -EFBIG, "%d %s", o.error, o.message);
	cr_assert_eq(o.out_len, 100000);
	cr_assert(strstr(o.message, "100000"), "%s", o.message);
	pid_t pgid = atoi(o.out);
	cr_assert_gt(pgid, 1);
	assert_group_gone(pgid);
	free(o.out);
}

Test(child, output_at_the_limit_is_fine, .init = up, .fini = down) {
	child_options opts = { .command = "head -c 1000 /dev/zero", .max_output = 1000 };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_eq(o.out_len, 1000);
	free(o.out);
}

Test(child, timeout_kills_the_group, .init = up, .fini = down) {
	child_options opts = { .command = "echo $$; sleep 100 & sleep 100; wait",
			       .timeout_usec = 300 * USEC_PER_MSEC };
	uint64_t start = hx_now_usec();
	outcome o = run(&opts);

	cr_assert_eq(o.error, -ETIMEDOUT, "%d %s", o.error, o.message);
	cr_assert_eq(o.exit_status, 128 + SIGKILL);
	cr_assert(strstr(o.message, "timed out"), "%s", o.message);
	cr_assert_lt(hx_now_usec() - start, 10 * USEC_PER_SEC);
	pid_t pgid = atoi(o.out);
	cr_assert_gt(pgid, 1);
	/* Both sleeps were in the shell's group: all of it is gone. */
	assert_group_gone(pgid);
	free(o.out);
}

Test(child, timeout_with_pipe_held_by_grandchild, .init = up, .fini = down) {
	/* The shell exits at once but its background child keeps stdout
	 * open: not finished until the timeout, which kills the group. */
	child_options opts = { .command = "echo $$; sleep 100 &", .timeout_usec = 300 * USEC_PER_MSEC };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -ETIMEDOUT, "%d %s", o.error, o.message);
	cr_assert_eq(o.exit_status, 0);
	pid_t pgid = atoi(o.out);
	cr_assert_gt(pgid, 1);
	assert_group_gone(pgid);
	free(o.out);
}

Test(child, argument_is_dollar_one, .init = up, .fini = down) {
	child_options opts = { .command = "printf '%s|%s' \"$1\" \"$#\"", .arg = "/tmp/a file; with $stuff" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.out, "/tmp/a file; with $stuff|1");
	free(o.out);

	child_options none = { .command = "printf '%s' \"$#\"" };
	o = run(&none);
	cr_assert_str_eq(o.out, "0");
	free(o.out);
}

/* env: set on top of the daemon's environment, replacing a name it has */
Test(child, env_is_added_to_the_environment, .init = up, .fini = down) {
	cr_assert_eq(setenv("CORRAL_TEST_KEEP", "kept", 1), 0);
	cr_assert_eq(setenv("CORRAL_TEST_OVER", "old", 1), 0);
	char *const env[] = { "CORRAL_TEST_OVER=new value", "CORRAL_TEST_ADD=$not expanded", NULL };
	child_options opts = { .command = "printf '%s|%s|%s' \"$CORRAL_TEST_KEEP\" \"$CORRAL_TEST_OVER\" \"$CORRAL_TEST_ADD\"",
			       .env = env };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	cr_assert_str_eq(o.out, "kept|new value|$not expanded");
	free(o.out);
	cr_assert_str_eq(getenv("CORRAL_TEST_OVER"), "old", "the daemon's own is untouched");
}

Test(child, nonexistent_command_is_127, .init = up, .fini = down) {
	child_options opts = { .command = "/nonexistent/corral-no-such-tool --flag" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -EIO);
	cr_assert_eq(o.exit_status, 127);
	cr_assert(strstr(o.message, "status 127"), "%s", o.message);
	cr_assert(strstr(o.message, "corral-no-such-tool"), "%s", o.message);
	free(o.out);
}

Test(child, killed_by_signal_is_eio, .init = up, .fini = down) {
	child_options opts = { .command = "kill -TERM $$" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, -EIO);
	cr_assert_eq(o.exit_status, 128 + SIGTERM);
	cr_assert(strstr(o.message, "signal 15"), "%s", o.message);
	free(o.out);
}

static bool file_has_pid(void *userdata) {
	_cleanup_free_ char *text = hx_read_file(userdata, NULL);
	return text && strchr(text, '\n');
}

Test(child, free_while_running_kills_it, .init = up, .fini = down) {
	_cleanup_free_ char *dir = hx_mkdtemp("child"), *pidfile = NULL, *text = NULL;
	child_run *r = NULL;
	outcome o = {};

	cr_assert_not_null(dir);
	cr_assert_geq(asprintf(&pidfile, "%s/pid", dir), 0);
	child_options opts = { .command = "echo $$ > \"$1\"; sleep 100 & sleep 100", .arg = pidfile };
	cr_assert_eq(child_run_start(&r, event, &opts, on_done, &o), 0);
	/* The loop must run for nothing to be due; the pid file says the
	 * shell got going. */
	cr_assert(hx_wait_until(file_has_pid, pidfile, WAIT_USEC));
	text = hx_read_file(pidfile, NULL);
	pid_t pgid = atoi(text);
	cr_assert_gt(pgid, 1);
	cr_assert_eq(kill(-pgid, 0), 0);

	r = child_run_free(r);
	(void) sd_event_run(event, 0);
	cr_assert_eq(o.calls, 0, "the callback ran after free");
	assert_group_gone(pgid);
	cr_assert_eq(hx_rm_tmp(dir), 0);
}

static void free_in_callback(child_run *r, const child_result *res, void *userdata) {
	outcome *o = userdata;

	o->calls++;
	o->done = true;
	o->error = res->error;
	child_run_free(r);
}

Test(child, free_from_the_callback, .init = up, .fini = down) {
	child_run *r = NULL;
	outcome o = {};
	child_options opts = { .command = "echo hi" };

	cr_assert_eq(child_run_start(&r, event, &opts, free_in_callback, &o), 0);
	cr_assert(run_until(&o.done, WAIT_USEC));
	cr_assert_eq(o.error, 0);
	/* Whatever sd-event still had queued for it must not touch it. */
	(void) sd_event_run(event, 0);
	cr_assert_eq(o.calls, 1);
}

Test(child, many_at_once, .init = up, .fini = down) {
	enum { N = 8 };
	child_run *r[N] = {};
	outcome o[N] = {};
	char cmd[N][64];

	for (int i = 0; i < N; i++) {
		snprintf(cmd[i], sizeof cmd[i], "echo %d; exit %d", i, i % 2);
		child_options opts = { .command = cmd[i] };
		cr_assert_eq(child_run_start(&r[i], event, &opts, on_done, &o[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert(run_until(&o[i].done, WAIT_USEC));
		r[i] = child_run_free(r[i]);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(o[i].calls, 1);
		cr_assert_eq(o[i].exit_status, i % 2);
		cr_assert_eq(o[i].error, i % 2 ? -EIO : 0);
		cr_assert_eq(atoi(o[i].out), i);
		free(o[i].out);
	}
}

Test(child, bad_options, .init = up, .fini = down) {
	child_run *r = NULL;
	child_options none = {};

	cr_assert_eq(child_run_start(&r, event, &none, on_done, NULL), -EINVAL);
	cr_assert_null(r);
	cr_assert_null(child_run_free(NULL));
}

/* The child gets stdin, stdout and stderr and nothing else: libcurl's
 * sockets have no CLOEXEC, and a child holding one kept it in our epoll
 * after we closed it (corrald aborted in sd-event on the freed source). */
Test(child, inherits_no_other_fd, .init = up, .fini = down) {
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);   /* no CLOEXEC, as curl's */
	child_options opts = { .command = "cd /proc/self/fd && echo *" };
	outcome o = run(&opts);

	cr_assert_eq(o.error, 0, "%s", o.message);
	/* The shell's own fds: 0 1 2, and the one `*` reads the directory with. */
	char a[16], b[16];
	snprintf(a, sizeof a, " %d ", sv[0]);
	snprintf(b, sizeof b, " %d ", sv[1]);
	_cleanup_free_ char *padded = hx_fmt(" %.*s ", (int) strcspn(o.out, "\n"), o.out);
	cr_assert(!strstr(padded, a) && !strstr(padded, b), "the child holds our socket: fds %s", o.out);
	cr_assert(strncmp(padded, " 0 1 2 ", 7) == 0, "fds %s", o.out);
	free(o.out);
	close(sv[0]);
	close(sv[1]);
}
