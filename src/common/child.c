/* child.c — a shell command as a child process driven by sd-event: stdin
 * fed from a copy of the caller's buffer, stdout collected, the tail of
 * stderr kept, a deadline that SIGKILLs the whole process group.
 *
 * All three pipes are non-blocking on our side and served by io sources, so
 * a command that writes megabytes before reading all of its input (or the
 * reverse) cannot deadlock against us. The run is over when the shell has
 * been reaped and both stdout and stderr reached EOF; after a kill (timeout,
 * too much output) reaping alone ends it, since an escaped grandchild could
 * hold the pipes open forever. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

#include "child.h"

#define CHILD_DEFAULT_MAX_OUTPUT ((size_t) 16 * 1024 * 1024)
#define CHILD_DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CHILD_ERR_TAIL 400              /* bytes of stderr kept for the message */
#define CHILD_READ_CHUNK 65536
/* Bytes moved per io dispatch, so one chatty child cannot starve the loop. */
#define CHILD_DISPATCH_BUDGET ((size_t) 1024 * 1024)

extern char **environ;

struct child_run {
	sd_event *event;
	pid_t pid;                      /* also the process group's id */
	bool exited;                    /* the shell is (being) reaped by sd-event */
	bool killed;                    /* we sent the group SIGKILL */
	bool done;                      /* the callback ran */
	siginfo_t status;

	sd_event_source *child_source, *in_source, *out_source, *err_source, *timer;
	int in_fd, out_fd, err_fd;

	char *input;
	size_t input_len, input_off;

	char *out;
	size_t out_len, out_alloc, max_output;

	char err_tail[CHILD_ERR_TAIL];
	size_t err_len;

	int error;                      /* first local failure: -ETIMEDOUT, -EFBIG, ... */
	uint64_t timeout_usec;
	child_done_cb cb;
	void *userdata;
};

static void close_source(sd_event_source **s, int *fd) {
	*s = sd_event_source_disable_unref(*s);
	if (*fd >= 0)
		(void) close(*fd);
	*fd = -1;
}

static void kill_group(child_run *r) {
	/* The group may be empty already; that is fine. A reaped shell's
	 * id stays a live group id while any of its group is alive. */
	(void) kill(-r->pid, SIGKILL);
	if (!r->exited)
		(void) kill(r->pid, SIGKILL);   /* in case it left the group */
	r->killed = true;
}

child_run *child_run_free(child_run *r) {
	if (!r)
		return NULL;
	if (r->pid > 0 && !r->done) {
		kill_group(r);
		if (!r->exited) {
			siginfo_t si = {};
			/* SIGKILLed: this returns as soon as the kernel is
			 * done with it. */
			while (waitid(P_PID, (id_t) r->pid, &si, WEXITED) < 0 && errno == EINTR)
				;
		}
	}
	r->child_source = sd_event_source_disable_unref(r->child_source);
	r->timer = sd_event_source_disable_unref(r->timer);
	close_source(&r->in_source, &r->in_fd);
	close_source(&r->out_source, &r->out_fd);
	close_source(&r->err_source, &r->err_fd);
	sd_event_unref(r->event);
	free(r->input);
	free(r->out);
	free(r);
	return NULL;
}

/* The stderr tail, one line, trailing blanks dropped: for the message. */
static void format_tail(const child_run *r, char *buf, size_t size) {
	size_t n = r->err_len, k = 0;
	const char *p = r->err_tail;

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\r' || p[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n && k + 1 < size; i++)
		buf[k++] = (p[i] == '\n' || p[i] == '\r' || p[i] == '\t') ? ' ' : p[i];
	buf[k] = '\0';
}

static void finish(child_run *r) {
	child_result res = { .exit_status = -1 };
	char tail[CHILD_ERR_TAIL + 1];
	const char *how;
	char what[64];

	if (r->done)
		return;
	r->done = true;

	/* Nothing more will be read or written; the timer is moot. */
	r->timer = sd_event_source_disable_unref(r->timer);
	close_source(&r->in_source, &r->in_fd);
	close_source(&r->out_source, &r->out_fd);
	close_source(&r->err_source, &r->err_fd);

	if (r->exited) {
		if (r->status.si_code == CLD_EXITED)
			res.exit_status = r->status.si_status;
		else
			res.exit_status = 128 + r->status.si_status;
	}

	if (r->error < 0)
		res.error = r->error;
	else if (res.exit_status != 0)
		res.error = -EIO;

	if (r->error == -ETIMEDOUT) {
		(void) snprintf(what, sizeof what, "timed out after %llu ms",
				(unsigned long long) (r->timeout_usec / USEC_PER_MSEC));
		how = what;
	} else if (r->error == -EFBIG) {
		(void) snprintf(what, sizeof what, "wrote more than %zu bytes to stdout", r->max_output);
		how = what;
	} else if (r->error < 0) {
		(void) snprintf(what, sizeof what, "failed: %s", strerror(-r->error));
		how = what;
	} else if (r->status.si_code == CLD_EXITED) {
		(void) snprintf(what, sizeof what, "exited with status %d", r->status.si_status);
		how = what;
	} else {
		(void) snprintf(what, sizeof what, "killed by signal %d (%s)", r->status.si_status,
				strsignal(r->status.si_status));
		how = what;
	}
	format_tail(r, tail, sizeof tail);
	(void) snprintf(res.message, sizeof res.message, "command %s%s%s", how, tail[0] ? ": " : "", tail);

	res.out = r->out ? r->out : "";
	res.out_len = r->out_len;

	/* The callback may free r: nothing touches r after it. */
	r->cb(r, &res, r->userdata);
}

static void maybe_finish(child_run *r) {
	if (!r->exited)
		return;
	/* After a kill, reaping is enough (see the top of the file). */
	if (r->killed || (r->out_fd < 0 && r->err_fd < 0))
		finish(r);
}

static void fail(child_run *r, int error) {
	if (r->error == 0)
		r->error = error;
	kill_group(r);
	maybe_finish(r);
}

/* write(2) that reports EPIPE instead of raising SIGPIPE, without touching
 * the process's disposition: block SIGPIPE in this thread for the call and
 * consume the one our write raised. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n) {
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t k;
	int saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	(void) sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;
	(void) pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	k = write(fd, p, n);
	saved = errno;
	if (k < 0 && saved == EPIPE && !was_pending) {
		struct timespec zero = {};
		(void) sigtimedwait(&pipe_set, NULL, &zero);
	}
	(void) pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return k;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	child_run *r = userdata;
	size_t budget = CHILD_DISPATCH_BUDGET;

	while (r->input_off < r->input_len && budget > 0) {
		size_t want = r->input_len - r->input_off;
		if (want > budget)
			want = budget;
		ssize_t k = write_nosigpipe(fd, r->input + r->input_off, want);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			/* EPIPE: the command stopped reading, which is its
			 * business; its exit status tells how it went. */
			break;
		}
		r->input_off += (size_t) k;
		budget -= (size_t) k;
	}
	if (r->input_off < r->input_len && budget == 0)
		return 0;
	/* All written (or no reader): EOF for the command. */
	close_source(&r->in_source, &r->in_fd);
	free(r->input);
	r->input = NULL;
	return 0;
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	child_run *r = userdata;
	size_t moved = 0;

	while (moved < CHILD_DISPATCH_BUDGET) {
		/* Room for one byte past the limit, so "too much" is seen
		 * without reading (or allocating) much more. */
		size_t want = r->max_output + 1 - r->out_len;
		if (want > CHILD_READ_CHUNK)
			want = CHILD_READ_CHUNK;
		if (r->out_len + want + 1 > r->out_alloc) {
			size_t n = r->out_alloc ? r->out_alloc * 2 : CHILD_READ_CHUNK;
			while (n < r->out_len + want + 1)
				n *= 2;
			char *p = realloc(r->out, n);
			if (!p) {
				fail(r, -ENOMEM);
				return 0;
			}
			r->out = p;
			r->out_alloc = n;
		}
		ssize_t k = read(fd, r->out + r->out_len, want);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			fail(r, -errno);
			return 0;
		}
		if (k == 0) {
			close_source(&r->out_source, &r->out_fd);
			maybe_finish(r);
			return 0;
		}
		r->out_len += (size_t) k;
		r->out[r->out_len] = '\0';
		moved += (size_t) k;
		if (r->out_len > r->max_output) {
			r->out_len = r->max_output;
			r->out[r->out_len] = '\0';
			close_source(&r->out_source, &r->out_fd);
			fail(r, -EFBIG);
			return 0;
		}
	}
	return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	child_run *r = userdata;
	size_t moved = 0;
	char buf[4096];

	while (moved < CHILD_DISPATCH_BUDGET) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			break;          /* stderr is only for the message */
		}
		if (k == 0)
			break;
		moved += (size_t) k;
		/* Keep the last CHILD_ERR_TAIL bytes. */
		size_t n = (size_t) k;
		const char *p = buf;
		if (n >= CHILD_ERR_TAIL) {
			p += n - CHILD_ERR_TAIL;
			n = CHILD_ERR_TAIL;
			r->err_len = 0;
		} else if (r->err_len + n > CHILD_ERR_TAIL) {
			size_t drop = r->err_len + n - CHILD_ERR_TAIL;
			memmove(r->err_tail, r->err_tail + drop, r->err_len - drop);
			r->err_len -= drop;
		}
		memcpy(r->err_tail + r->err_len, p, n);
		r->err_len += n;
	}
	if (moved >= CHILD_DISPATCH_BUDGET)
		return 0;       /* more next time round */
	close_source(&r->err_source, &r->err_fd);
	maybe_finish(r);
	return 0;
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
	child_run *r = userdata;

	/* sd-event reaps the zombie once we return. */
	r->status = *si;
	r->exited = true;
	r->child_source = sd_event_source_disable_unref(r->child_source);
	maybe_finish(r);
	return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
	child_run *r = userdata;

	r->timer = sd_event_source_disable_unref(r->timer);
	fail(r, -ETIMEDOUT);
	return 0;
}

/* A pipe whose ends are CLOEXEC and numbered 3 or more: the child's end is
 * dup2()ed onto 0, 1 or 2, which must not already be one of them. */
static int make_pipe(int fds[2]) {
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 3)
			continue;
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			int r = -errno;
			(void) close(fds[0]);
			(void) close(fds[1]);
			return r;
		}
		(void) close(fds[i]);
		fds[i] = fd;
	}
	return 0;
}

static int set_nonblock(int fd) {
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* sd_event_add_child() refuses to work unless SIGCHLD is blocked (in the
 * calling thread): the loop watches children through pidfds or a signalfd,
 * and must be the one to reap them. */
static int block_sigchld(void) {
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

typedef struct spawn_ctx {
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok, attr_ok;
} spawn_ctx;

static void spawn_ctx_done(spawn_ctx *c) {
	if (c->fa_ok)
		(void) posix_spawn_file_actions_destroy(&c->fa);
	if (c->attr_ok)
		(void) posix_spawnattr_destroy(&c->attr);
}

/* The daemon's environment with the variables of more set on top (their
 * names replace the daemon's): pointers only, nothing copied. */
static char **merged_env(char *const *more) {
	size_t n = 0, m = 0, k = 0;

	while (environ[n])
		n++;
	while (more[m])
		m++;
	char **v = calloc(n + m + 1, sizeof *v);
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t) (eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;
		for (size_t j = 0; j < m && !replaced; j++)
			replaced = strncmp(more[j], environ[i], len) == 0 && more[j][len] == '=';
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		v[k++] = more[j];
	return v;
}

static int spawn_shell(child_run *r, const child_options *o, int in_fd, int out_fd, int err_fd) {
	_cleanup_(spawn_ctx_done) spawn_ctx c = {};
	sigset_t empty, all;
	int e;

	e = posix_spawn_file_actions_init(&c.fa);
	if (e)
		return -e;
	c.fa_ok = true;
	e = posix_spawnattr_init(&c.attr);
	if (e)
		return -e;
	c.attr_ok = true;

	if (in_fd >= 0)
		e = posix_spawn_file_actions_adddup2(&c.fa, in_fd, STDIN_FILENO);
	else
		e = posix_spawn_file_actions_addopen(&c.fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&c.fa, out_fd, STDOUT_FILENO);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&c.fa, err_fd, STDERR_FILENO);
	/* Nothing else: libcurl opens its sockets without CLOEXEC, and a
	 * child holding one keeps it registered in our epoll after we close
	 * it, so its events would reach an event source already freed. */
	if (!e)
		e = posix_spawn_file_actions_addclosefrom_np(&c.fa, 3);
	if (e)
		return -e;

	/* Its own process group (so the timeout can kill all of it), and
	 * none of the daemon's blocked or ignored signals. */
	sigemptyset(&empty);
	sigfillset(&all);
	e = posix_spawnattr_setpgroup(&c.attr, 0);
	if (!e)
		e = posix_spawnattr_setsigmask(&c.attr, &empty);
	if (!e)
		e = posix_spawnattr_setsigdefault(&c.attr, &all);
	if (!e)
		e = posix_spawnattr_setflags(&c.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF);
	if (e)
		return -e;

	char *argv[] = { "sh", "-c", (char *) o->command, "sh", (char *) o->arg, NULL };
	_cleanup_free_ char **envp = o->env ? merged_env(o->env) : NULL;
	if (o->env && !envp)
		return -ENOMEM;
	e = posix_spawn(&r->pid, "/bin/sh", &c.fa, &c.attr, argv, envp ? envp : environ);
	if (e) {
		r->pid = 0;
		return -e;
	}
	return 0;
}

int child_run_start(child_run **out, sd_event *event, const child_options *o, child_done_cb cb, void *userdata) {
	_cleanup_(child_run_freep) child_run *r = NULL;
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	uint64_t now;
	int ret;

	if (!out || !event || !o || !o->command || !cb)
		return -EINVAL;

	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->event = sd_event_ref(event);
	r->in_fd = r->out_fd = r->err_fd = -1;
	r->cb = cb;
	r->userdata = userdata;
	r->max_output = o->max_output ? o->max_output : CHILD_DEFAULT_MAX_OUTPUT;
	r->timeout_usec = o->timeout_usec ? o->timeout_usec : CHILD_DEFAULT_TIMEOUT_USEC;
	if (o->input) {
		/* A copy: the caller's buffer need not outlive this call. */
		r->input = malloc(o->input_len ? o->input_len : 1);
		if (!r->input)
			return -ENOMEM;
		memcpy(r->input, o->input, o->input_len);
		r->input_len = o->input_len;
	}

	ret = block_sigchld();
	if (ret < 0)
		return ret;

	if (o->input) {
		ret = make_pipe(in);
		if (ret < 0)
			return ret;
		r->in_fd = in[1];
	}
	ret = make_pipe(outp);
	if (ret >= 0) {
		r->out_fd = outp[0];
		ret = make_pipe(errp);
	}
	if (ret >= 0) {
		r->err_fd = errp[0];
		ret = spawn_shell(r, o, in[0], outp[1], errp[1]);
	}
	/* The child's ends are the child's now (or nobody's). */
	if (in[0] >= 0)
		(void) close(in[0]);
	if (outp[1] >= 0)
		(void) close(outp[1]);
	if (errp[1] >= 0)
		(void) close(errp[1]);
	if (ret < 0)
		return ret;

	/* From here on a failure kills and reaps the child (child_run_free). */
	ret = sd_event_add_child(event, &r->child_source, r->pid, WEXITED, on_child_exit, r);
	if (ret < 0)
		return ret;
	if (r->in_fd >= 0) {
		ret = set_nonblock(r->in_fd);
		if (ret >= 0)
			ret = sd_event_add_io(event, &r->in_source, r->in_fd, EPOLLOUT, on_stdin, r);
		if (ret < 0)
			return ret;
	}
	ret = set_nonblock(r->out_fd);
	if (ret >= 0)
		ret = sd_event_add_io(event, &r->out_source, r->out_fd, EPOLLIN, on_stdout, r);
	if (ret >= 0)
		ret = set_nonblock(r->err_fd);
	if (ret >= 0)
		ret = sd_event_add_io(event, &r->err_source, r->err_fd, EPOLLIN, on_stderr, r);
	if (ret < 0)
		return ret;

	ret = sd_event_now(event, CLOCK_MONOTONIC, &now);
	if (ret < 0)
		return ret;
	ret = sd_event_add_time(event, &r->timer, CLOCK_MONOTONIC, now + r->timeout_usec, USEC_PER_MSEC, on_timeout, r);
	if (ret < 0)
		return ret;

	*out = TAKE_PTR(r);
	return 0;
}
