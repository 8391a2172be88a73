/* proc.c — child processes for tests: spawn with PR_SET_PDEATHSIG, wait with
 * deadlines, stop politely, run commands to completion. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "harness.h"

extern char **environ;

#define HX_PROC_POLL_USEC (5 * USEC_PER_MSEC)
#define HX_PROC_STOP_USEC (10 * USEC_PER_SEC)

struct hx_proc {
	pid_t pid;
	bool exited;
	int status;             /* as waitpid, once exited */
	char *name;             /* argv[0], for messages */
};

/* environ with env_extra's "K=V" entries replacing or adding to it. Only the
 * array is allocated; the strings are borrowed. */
static char **env_merge(char *const env_extra[]) {
	size_t n_env = strv_length(environ), n_extra = strv_length(env_extra), k = 0;
	char **v = calloc(n_env + n_extra + 1, sizeof(char *));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n_env; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t) (eq - environ[i]) : strlen(environ[i]);
		bool overridden = false;

		for (size_t j = 0; j < n_extra && !overridden; j++)
			overridden = strncmp(env_extra[j], environ[i], klen) == 0 &&
			             env_extra[j][klen] == '=';
		if (!overridden)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < n_extra; j++)
		v[k++] = env_extra[j];
	v[k] = NULL;
	return v;
}

static void close_from(int lowest, int except) {
	/* close_range() where the kernel has it; else a bounded loop. Only
	 * async-signal-safe calls: this runs between fork and exec. */
	if (except > lowest) {
		if (close_range((unsigned) lowest, (unsigned) except - 1, 0) < 0)
			for (int fd = lowest; fd < except; fd++)
				close(fd);
	}
	if (close_range((unsigned) except + 1, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		if (max < 0 || max > 65536)
			max = 65536;
		for (int fd = except + 1; fd < max; fd++)
			close(fd);
	}
}

/* Forks and execs argv with fds 0, 1, 2 from fd_in/fd_out/fd_err. Reports an
 * exec failure as -errno through a close-on-exec pipe, so a missing binary
 * is an error here rather than exit status 127 later. */
static int spawn(pid_t *out, char *const argv[], char *const env_extra[],
                 int fd_in, int fd_out, int fd_err, int pdeathsig) {
	_cleanup_free_ char **envp = NULL;
	_cleanup_close_ int rd = -1, wr = -1;
	int pfd[2];

	if (!argv || !argv[0])
		return -EINVAL;
	envp = env_merge(env_extra);
	if (!envp)
		return -ENOMEM;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	rd = pfd[0];
	wr = pfd[1];

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Die with the parent, even if it died before prctl(). */
		if (prctl(PR_SET_PDEATHSIG, pdeathsig) < 0 || getppid() != parent)
			_exit(127);

		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		struct sigaction sa = { .sa_handler = SIG_DFL };
		for (int sig = 1; sig < NSIG; sig++)
			(void) sigaction(sig, &sa, NULL);

		if (dup2(fd_in, 0) < 0 || dup2(fd_out, 1) < 0 || dup2(fd_err, 2) < 0)
			goto fail;
		close_from(3, wr);
		execvpe(argv[0], argv, envp);
	fail:;
		int e = errno;
		(void) !write(wr, &e, sizeof(e));
		_exit(127);
	}

	close(TAKE_FD(wr));
	int e = 0;
	ssize_t k;
	do
		k = read(rd, &e, sizeof(e));
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t) sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -(e ?: EIO);
	}
	*out = pid;
	return 0;
}

int hx_proc_spawn_full(hx_proc **out, char *const argv[], char *const env_extra[],
                       const char *log_path, int pdeathsig) {
	_cleanup_close_ int null_fd = -1, log_fd = -1;
	_cleanup_free_ hx_proc *p = NULL;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) {
		r = -errno;
		fprintf(stderr, "harness: cannot open /dev/null: %m\n");
		return r;
	}
	if (log_path) {
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			r = -errno;
			fprintf(stderr, "harness: cannot open log %s: %m\n", log_path);
			return r;
		}
	}
	p->name = strdup(argv && argv[0] ? argv[0] : "?");
	if (!p->name)
		return -ENOMEM;

	r = spawn(&p->pid, argv, env_extra, null_fd,
	          log_fd >= 0 ? log_fd : STDOUT_FILENO, log_fd >= 0 ? log_fd : STDERR_FILENO,
	          pdeathsig);
	if (r < 0) {
		fprintf(stderr, "harness: cannot start %s: %s\n", p->name, strerror(-r));
		free(p->name);
		return r;
	}
	*out = TAKE_PTR(p);
	return 0;
}

int hx_proc_spawn(hx_proc **out, char *const argv[], char *const env_extra[], const char *log_path) {
	return hx_proc_spawn_full(out, argv, env_extra, log_path, SIGKILL);
}

int hx_corrald_spawn(hx_proc **out, const char *cfg, char *const env_extra[], const char *log_path) {
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	char *const argv[] = { bin, "--config", (char *) cfg, NULL };

	if (!bin)
		return -ENOMEM;
	return hx_proc_spawn(out, argv, env_extra, log_path);
}

pid_t hx_proc_pid(const hx_proc *p) {
	return p ? p->pid : -1;
}

int hx_proc_signal(hx_proc *p, int sig) {
	if (!p || p->pid <= 0)
		return -EINVAL;
	if (p->exited)
		return -ESRCH;
	if (kill(p->pid, sig) < 0)
		return -errno;
	return 0;
}

/* One waitpid(WNOHANG): 1 if it has exited (recorded), 0 if running. */
static int reap(hx_proc *p) {
	int st;
	pid_t r;

	if (p->exited)
		return 1;
	do
		r = waitpid(p->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	p->exited = true;
	p->status = st;
	return 1;
}

int hx_proc_wait(hx_proc *p, uint64_t timeout_usec, int *status) {
	uint64_t deadline = hx_now_usec() + timeout_usec;

	if (!p)
		return -EINVAL;
	for (;;) {
		int r = reap(p);
		if (r < 0)
			return r;
		if (r > 0) {
			if (status)
				*status = p->status;
			return 0;
		}
		uint64_t now = hx_now_usec();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t left = deadline - now;
		usleep(left < HX_PROC_POLL_USEC ? left : HX_PROC_POLL_USEC);
	}
}

bool hx_proc_running(hx_proc *p) {
	return p && reap(p) == 0;
}

hx_proc *hx_proc_free(hx_proc *p) {
	if (!p)
		return NULL;
	if (p->pid > 0 && reap(p) == 0) {
		(void) kill(p->pid, SIGTERM);
		if (hx_proc_wait(p, HX_PROC_STOP_USEC, NULL) == -ETIMEDOUT) {
			fprintf(stderr, "harness: %s (pid %d) ignored SIGTERM for 10 s; killing it\n",
			        p->name, (int) p->pid);
			(void) kill(p->pid, SIGKILL);
			while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	free(p->name);
	free(p);
	return NULL;
}

/* ---- hx_run ---- */

typedef struct buf {
	char *data;
	size_t len, size;
} buf;

static int buf_read(buf *b, int fd) {
	if (b->size - b->len < 4096) {
		size_t nsize = b->size ? b->size * 2 : 8192;
		char *n = realloc(b->data, nsize);
		if (!n)
			return -ENOMEM;
		b->data = n;
		b->size = nsize;
	}
	ssize_t k = read(fd, b->data + b->len, b->size - b->len - 1);
	if (k < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	b->len += (size_t) k;
	b->data[b->len] = '\0';
	return k > 0;   /* 0: EOF */
}

static char *buf_steal(buf *b) {
	if (!b->data)
		return strdup("");
	b->size = b->len = 0;
	return TAKE_PTR(b->data);
}

static char *argv_join(char *const argv[]) {
	size_t len = 1;
	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	for (size_t i = 0; argv[i]; i++)
		p = stpcpy(stpcpy(p, i ? " " : ""), argv[i]);
	*p = '\0';
	return s;
}

int hx_run_capture(char **out, char **err, uint64_t timeout_usec,
                   char *const argv[], char *const env_extra[]) {
	_cleanup_close_ int null_in = -1, null_out = -1, out_rd = -1, out_wr = -1,
	                    err_rd = -1, err_wr = -1;
	_cleanup_free_ char *cmd = NULL;
	buf bo = {}, be = {};
	uint64_t deadline = hx_now_usec() + timeout_usec;
	hx_proc p = {};
	int fds[2], r;

	if (!argv || !argv[0])
		return -EINVAL;
	cmd = argv_join(argv);
	if (!cmd)
		return -ENOMEM;
	null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	null_out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_in < 0 || null_out < 0)
		return -errno;
	if (out) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		out_rd = fds[0];
		out_wr = fds[1];
	}
	if (err) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		err_rd = fds[0];
		err_wr = fds[1];
	}

	r = spawn(&p.pid, argv, env_extra, null_in,
	          out ? out_wr : null_out, err ? err_wr : STDERR_FILENO, SIGKILL);
	if (r < 0) {
		fprintf(stderr, "harness: cannot run %s: %s\n", cmd, strerror(-r));
		return r;
	}
	if (out_wr >= 0)
		close(TAKE_FD(out_wr));
	if (err_wr >= 0)
		close(TAKE_FD(err_wr));

	/* Read both pipes until EOF on both or the deadline. */
	r = 0;
	while (out_rd >= 0 || err_rd >= 0) {
		struct pollfd pf[2] = { { .fd = out_rd, .events = POLLIN },
		                        { .fd = err_rd, .events = POLLIN } };
		uint64_t now = hx_now_usec();
		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		int ms = (int) ((deadline - now + 999) / 1000);
		if (poll(pf, 2, ms) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &out_rd : &err_rd;
			if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int k = buf_read(i == 0 ? &bo : &be, *fd);
			if (k < 0) {
				r = k;
				break;
			}
			if (k == 0)
				close(TAKE_FD(*fd));
		}
		if (r < 0)
			break;
	}

	if (r == 0) {
		uint64_t now = hx_now_usec();
		r = hx_proc_wait(&p, now < deadline ? deadline - now : 0, NULL);
	}
	if (r < 0) {
		if (r == -ETIMEDOUT)
			fprintf(stderr, "harness: %s did not finish within %.1f s; killed it\n",
			        cmd, (double) timeout_usec / USEC_PER_SEC);
		else
			fprintf(stderr, "harness: running %s failed: %s\n", cmd, strerror(-r));
		if (!p.exited) {
			(void) kill(p.pid, SIGKILL);
			while (waitpid(p.pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		free(bo.data);
		free(be.data);
		return r;
	}

	if (out && !(*out = buf_steal(&bo)))
		r = -ENOMEM;
	if (err && !(*err = buf_steal(&be)))
		r = -ENOMEM;
	free(bo.data);
	free(be.data);
	if (r < 0) {
		if (out) {
			free(*out);
			*out = NULL;
		}
		return r;
	}
	if (WIFEXITED(p.status))
		return WEXITSTATUS(p.status);
	return 128 + WTERMSIG(p.status);
}

int hx_run(char **out, uint64_t timeout_usec, char *const argv[], char *const env_extra[]) {
	return hx_run_capture(out, NULL, timeout_usec, argv, env_extra);
}
