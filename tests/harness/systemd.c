/* systemd.c — a private `systemd --user` manager for tests, in its own
 * XDG_RUNTIME_DIR, driven with systemctl --user. */
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define HX_SYSTEMD_START_USEC (20 * USEC_PER_SEC)
#define HX_SYSTEMD_STOP_USEC (10 * USEC_PER_SEC)
#define HX_SYSTEMCTL_USEC (30 * USEC_PER_SEC)
#define HX_LOG_TAIL_LINES 8

struct hx_systemd {
	char *base;             /* temp dir: runtime/ and manager.log */
	char *runtime;          /* XDG_RUNTIME_DIR, 0700 */
	char *unit_dir;         /* runtime/systemd/user */
	char *bus;              /* runtime/bus */
	char *log;
	char *env[3];           /* XDG_RUNTIME_DIR=, DBUS_SESSION_BUS_ADDRESS=, NULL */
	hx_proc *proc;
	int lock;               /* the machine-wide turn, held until freed */
};

/* Two root user managers started from one cgroup put their units at the
 * same cgroup path, and one stopping a unit kills the other's (seen with
 * CRITERION_JOBS=3: Result=signal out of the blue; and a corrald losing its
 * manager's bus in the middle of a restart). So managers take turns,
 * machine-wide; the lock goes with the process if it dies. */
#define HX_SYSTEMD_LOCK "/run/lock/corral-test-systemd-user.lock"
#define HX_SYSTEMD_TURN_USEC (180 * USEC_PER_SEC)

static bool took_turn(void *ud) {
	return flock(*(int *) ud, LOCK_EX | LOCK_NB) == 0;
}

static int take_turn(int *out) {
	_cleanup_close_ int fd = open(HX_SYSTEMD_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		int r = -errno;
		fprintf(stderr, "harness: cannot open %s: %s\n", HX_SYSTEMD_LOCK, strerror(-r));
		return r;
	}
	if (!hx_wait_until(took_turn, &fd, HX_SYSTEMD_TURN_USEC)) {
		fprintf(stderr, "harness: another test held %s for %llu s\n", HX_SYSTEMD_LOCK,
			(unsigned long long) (HX_SYSTEMD_TURN_USEC / USEC_PER_SEC));
		return -EBUSY;
	}
	*out = TAKE_FD(fd);
	return 0;
}

static int mkdir_p(const char *path, mode_t mode) {
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int systemctl(hx_systemd *s, char **out, char **err, char *const args[]) {
	size_t n = strv_length(args), k = 0;
	_cleanup_free_ char **argv = calloc(n + 3, sizeof(char *));

	if (!argv)
		return -ENOMEM;
	argv[k++] = (char *) hx_tool("CORRAL_SYSTEMCTL", "systemctl");
	argv[k++] = "--user";
	for (size_t i = 0; i < n; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	return hx_run_capture(out, err, HX_SYSTEMCTL_USEC, argv, s->env);
}

int hx_systemctl(hx_systemd *s, char **out, char *const args[]) {
	if (!s)
		return -EINVAL;
	return systemctl(s, out, NULL, args);
}

static bool manager_ready(void *userdata) {
	hx_systemd *s = userdata;
	_cleanup_free_ char *out = NULL, *err = NULL;
	char *const args[] = { "is-system-running", NULL };

	if (!hx_proc_running(s->proc))
		return true;    /* stop waiting; the caller sees it died */
	if (access(s->bus, F_OK) < 0)
		return false;
	/* Exit status is non-zero until "running"; read the word. */
	if (systemctl(s, &out, &err, args) < 0)
		return false;
	return streq(out, "running\n") || streq(out, "degraded\n");
}

int hx_systemd_start(hx_systemd **out) {
	_cleanup_(hx_systemd_freep) hx_systemd *s = NULL;
	_cleanup_free_ char *log_target = strdup("SYSTEMD_LOG_TARGET=console");
	struct stat st;
	int r;

	if (!out)
		return -EINVAL;
	if (!log_target)
		return -ENOMEM;
	/* The manager only runs if it believes systemd is the init system;
	 * in a container without it, make the marker directory (as root). */
	if (geteuid() == 0 && stat("/run/systemd/system", &st) < 0) {
		r = mkdir_p("/run/systemd/system", 0755);
		if (r < 0) {
			fprintf(stderr, "harness: cannot create /run/systemd/system: %s\n", strerror(-r));
			return r;
		}
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lock = -1;
	r = take_turn(&s->lock);
	if (r < 0)
		return r;
	s->base = hx_mkdtemp("systemd");
	if (!s->base)
		return -EIO;
	if (asprintf(&s->runtime, "%s/runtime", s->base) < 0 ||
	    asprintf(&s->unit_dir, "%s/systemd/user", s->runtime) < 0 ||
	    asprintf(&s->bus, "%s/bus", s->runtime) < 0 ||
	    asprintf(&s->log, "%s/manager.log", s->base) < 0 ||
	    asprintf(&s->env[0], "XDG_RUNTIME_DIR=%s", s->runtime) < 0 ||
	    asprintf(&s->env[1], "DBUS_SESSION_BUS_ADDRESS=unix:path=%s", s->bus) < 0)
		return -ENOMEM;
	if (mkdir(s->runtime, 0700) < 0 || chmod(s->runtime, 0700) < 0) {
		r = -errno;
		fprintf(stderr, "harness: cannot create %s: %m\n", s->runtime);
		return r;
	}
	/* A directory the user manager searches for units (its "runtime
	 * config" path); it must exist before the manager starts. */
	r = mkdir_p(s->unit_dir, 0755);
	if (r < 0) {
		fprintf(stderr, "harness: cannot create %s: %s\n", s->unit_dir, strerror(-r));
		return r;
	}

	char *const argv[] = { (char *) hx_tool("CORRAL_SYSTEMD_USER", "/usr/lib/systemd/systemd"),
	                       "--user", NULL };
	char *const env[] = { s->env[0], s->env[1], log_target, NULL };
	/* If we die, SIGTERM: the manager stops its units and exits. */
	r = hx_proc_spawn_full(&s->proc, argv, env, s->log, SIGTERM);
	if (r < 0)
		return r;

	bool ok = hx_wait_until(manager_ready, s, HX_SYSTEMD_START_USEC);
	if (!hx_proc_running(s->proc)) {
		fprintf(stderr, "harness: systemd --user exited while starting; log: %s\n", s->log);
		hx_log_tail(s->log, HX_LOG_TAIL_LINES);
		return -ESRCH;
	}
	if (!ok) {
		fprintf(stderr, "harness: systemd --user not running within %u s "
		        "(is-system-running or %s missing); log: %s\n",
		        (unsigned) (HX_SYSTEMD_START_USEC / USEC_PER_SEC), s->bus, s->log);
		hx_log_tail(s->log, HX_LOG_TAIL_LINES);
		return -ETIMEDOUT;
	}
	*out = TAKE_PTR(s);
	return 0;
}

const char *hx_systemd_runtime_dir(const hx_systemd *s) {
	return s ? s->runtime : NULL;
}

const char *hx_systemd_unit_dir(const hx_systemd *s) {
	return s ? s->unit_dir : NULL;
}

pid_t hx_systemd_pid(const hx_systemd *s) {
	return s ? hx_proc_pid(s->proc) : -1;
}

const char *hx_systemd_log(const hx_systemd *s) {
	return s ? s->log : NULL;
}

char *const *hx_systemd_env(const hx_systemd *s) {
	return s ? s->env : NULL;
}

int hx_systemd_install_unit(hx_systemd *s, const char *name, const char *text) {
	_cleanup_free_ char *path = NULL;
	char *const reload[] = { "daemon-reload", NULL };
	int r;

	if (!s || !name || !text || strchr(name, '/'))
		return -EINVAL;
	if (asprintf(&path, "%s/%s", s->unit_dir, name) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	r = hx_write_file(path, text);
	if (r < 0)
		return r;
	r = hx_systemctl(s, NULL, reload);
	if (r != 0) {
		fprintf(stderr, "harness: systemctl --user daemon-reload failed (%d) after writing %s\n",
		        r, path);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

char *hx_systemd_unit_property(hx_systemd *s, const char *unit, const char *prop) {
	_cleanup_free_ char *out = NULL;
	char *const args[] = { "show", "-P", (char *) prop, "--", (char *) unit, NULL };

	if (!s || !unit || !prop)
		return NULL;
	int r = hx_systemctl(s, &out, args);
	if (r != 0) {
		fprintf(stderr, "harness: systemctl --user show -P %s %s failed (%d)\n", prop, unit, r);
		return NULL;
	}
	size_t len = strlen(out);
	if (len > 0 && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return TAKE_PTR(out);
}

hx_systemd *hx_systemd_free(hx_systemd *s) {
	if (!s)
		return NULL;
	if (hx_proc_running(s->proc)) {
		_cleanup_free_ char *err = NULL;
		char *const args[] = { "exit", NULL };

		/* "exit" stops the units, then the manager; SIGTERM means the
		 * same to a user manager and covers a bus that does not answer. */
		if (systemctl(s, NULL, &err, args) != 0)
			(void) hx_proc_signal(s->proc, SIGTERM);
		if (hx_proc_wait(s->proc, HX_SYSTEMD_STOP_USEC, NULL) == -ETIMEDOUT) {
			fprintf(stderr, "harness: systemd --user (pid %d) still running 10 s after "
			        "exit; killing it; log: %s\n", (int) hx_proc_pid(s->proc), s->log);
			(void) hx_proc_signal(s->proc, SIGKILL);
			(void) hx_proc_wait(s->proc, HX_SYSTEMD_STOP_USEC, NULL);
		}
	}
	s->proc = hx_proc_free(s->proc);
	(void) hx_rm_tmp(s->base);
	free(s->base);
	free(s->runtime);
	free(s->unit_dir);
	free(s->bus);
	free(s->log);
	free(s->env[0]);
	free(s->env[1]);
	if (s->lock >= 0)
		close(s->lock);         /* the next manager's turn */
	free(s);
	return NULL;
}
