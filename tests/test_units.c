/* test_units.c — units/corrald.service (as the build makes it from
 * units/corrald.service.in, with the configured paths) as systemd sees it: `systemd-analyze
 * verify` accepts it (and the check can fail), and corrald runs as that very
 * unit under a real `systemd --user` manager: start waits for READY=1, reload
 * and stop do what they say, the watchdog is fed and armed, Restart= and
 * RestartPreventExitStatus= behave.
 *
 * The unit is installed unchanged; a drop-in only points ExecStart= at the
 * built binary and a config file, so its hardening applies too. What the
 * test environment (not the unit) needs for that is arranged here:
 *
 *  - PrivateTmp=yes hides /tmp and /var/tmp from the service, and ProtectHome=
 *    hides /home, /root and /run/user. The manager's XDG_RUNTIME_DIR (which
 *    holds NOTIFY_SOCKET), the config and the binary must be visible to
 *    corrald, wherever the checkout is, so each test points TMPDIR at a
 *    directory under /var/lib/corral-tests before the harness makes its temp
 *    dirs, and runs a copy of the built corrald from there (on a real host
 *    NOTIFY_SOCKET lives in /run; here /run would not do: under the unit's
 *    ProtectKernelTunables= a binary there fails to exec, 203/EXEC).
 *  - /run/systemd/inaccessible, which a container without systemd as PID 1
 *    lacks: see ensure_inaccessible_nodes().
 *  - a sanitizer build's leak check, which the unit's syscall filter kills:
 *    see manager_up(). */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <criterion/criterion.h>

#include "harness.h"

#define UNIT "corrald.service"
#define KEY "/corral/t/nodes/n1"

/* The deadlines: generous against a loaded machine, far below the suite's
 * timeout. corrald registers in well under a second against a local etcd. */
#define REGISTER_USEC (5 * USEC_PER_SEC)
#define WATCHDOG_USEC (2 * USEC_PER_SEC)        /* the drop-in's WatchdogSec= */
#define RESTART_SEC_USEC (2 * USEC_PER_SEC)     /* the unit's RestartSec= */

static hx_etcd *etcd;
static hx_systemd *sd;
static char *base;              /* TMPDIR of this test: visible to the service */
static char *dir;               /* this test's files (config, unit copies) */
static char *saved_tmpdir, *saved_asan_options;

TestSuite(units, .timeout = 60);

/* ---- places ---- */

static char *path_in(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

/* The built corrald, as an absolute path (ExecStart= requires one). */
static char *built_corrald(void) {
	_cleanup_free_ char *p = NULL;
	char *abs;

	cr_assert_geq(asprintf(&p, "%s/corrald", hx_builddir()), 0);
	abs = realpath(p, NULL);
	cr_assert_not_null(abs, "no built corrald at %s: %s", p, strerror(errno));
	return abs;
}

/* ---- /run/systemd/inaccessible ----
 *
 * ProtectHome=, ProtectKernelTunables= and ProtectKernelLogs= hide paths by
 * bind-mounting empty, mode-0000 nodes over them. systemd as PID 1 creates
 * those nodes in /run/systemd/inaccessible at boot, and a user manager
 * running as root uses that same directory (it makes its own copy under
 * XDG_RUNTIME_DIR but does not mount from it: strace shows
 * mount("/run/systemd/inaccessible/dir", ...) = -ENOENT, and the service
 * fails with 226/NAMESPACE). In a container without systemd as PID 1 they are
 * missing, so make them as PID 1 would, the way the harness makes
 * /run/systemd/system for the same reason. Built beside and renamed into
 * place, so a concurrent test sees all of them or none. */
static int make_node(const char *d, const char *name, mode_t type, dev_t dev) {
	_cleanup_free_ char *p = NULL;
	int r = 0;

	if (asprintf(&p, "%s/%s", d, name) < 0)
		return -ENOMEM;
	switch (type) {
	case S_IFDIR:
		r = mkdir(p, 0000);
		break;
	case S_IFREG: {
		int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0000);
		if (fd >= 0)
			close(fd);
		r = fd < 0 ? -1 : 0;
		break;
	}
	case S_IFIFO:
		r = mkfifo(p, 0000);
		break;
	case S_IFSOCK: {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || strlen(p) >= sizeof sa.sun_path)
			return fd < 0 ? -errno : -ENAMETOOLONG;
		strcpy(sa.sun_path, p);
		r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
		break;
	}
	default:
		/* Device nodes need CAP_MKNOD; systemd falls back to the
		 * socket node where they are missing, so failing is fine. */
		(void) mknod(p, type | 0000, dev);
		return 0;
	}
	if (r < 0)
		return -errno;
	return chmod(p, 0000) < 0 ? -errno : 0;
}

static void ensure_inaccessible_nodes(void) {
	const char *target = "/run/systemd/inaccessible";
	char tmp[] = "/run/systemd/.inaccessible-XXXXXX";
	struct stat st;

	if (geteuid() != 0 || stat(target, &st) == 0)
		return;
	cr_assert_not_null(mkdtemp(tmp), "cannot create %s: %s", tmp, strerror(errno));
	cr_assert_eq(make_node(tmp, "dir", S_IFDIR, 0), 0);
	cr_assert_eq(make_node(tmp, "reg", S_IFREG, 0), 0);
	cr_assert_eq(make_node(tmp, "fifo", S_IFIFO, 0), 0);
	cr_assert_eq(make_node(tmp, "sock", S_IFSOCK, 0), 0);
	cr_assert_eq(make_node(tmp, "chr", S_IFCHR, makedev(0, 0)), 0);
	cr_assert_eq(make_node(tmp, "blk", S_IFBLK, makedev(0, 0)), 0);
	cr_assert_eq(chmod(tmp, 0755), 0);
	if (rename(tmp, target) < 0) {
		/* Someone else was quicker: theirs is as good as ours. */
		cr_assert(errno == EEXIST || errno == ENOTEMPTY, "cannot rename %s to %s: %s", tmp, target,
			  strerror(errno));
		(void) hx_rm_rf(tmp);
	}
}

/* ---- set-up and tear-down ---- */

static void files_up(void) {
	dir = hx_mkdtemp("units");
	cr_assert_not_null(dir);
}

static void manager_up(void) {
	const char *visible = "/var/lib/corral-tests";
	const char *t = getenv("TMPDIR");

	/* See the top of the file: the unit's PrivateTmp= and ProtectHome=
	 * would hide /tmp, /home and /root from corrald. */
	cr_assert(mkdir(visible, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", visible, strerror(errno));
	saved_tmpdir = t ? strdup(t) : NULL;
	cr_assert_eq(setenv("TMPDIR", visible, 1), 0);
	base = hx_mkdtemp("units");
	cr_assert_not_null(base);
	/* .../hx-systemd-XXXXXX/runtime/systemd/notify must fit sun_path. */
	cr_assert_lt(strlen(base) + 48, sizeof(((struct sockaddr_un *) NULL)->sun_path),
		     "%s is too long a place for the manager's sockets", base);
	cr_assert_eq(setenv("TMPDIR", base, 1), 0);
	dir = hx_mkdtemp("corrald");
	cr_assert_not_null(dir);

	/* In a sanitizer build, LeakSanitizer stops the world at exit with
	 * ptrace(2), which the unit's SystemCallFilter=@system-service answers
	 * with SIGSYS: corrald then dies on every exit, or spins at 100% CPU
	 * beside its dead tracer until the manager gives up. The filter is
	 * right for production and leaks are test_corrald's business, so
	 * services of this manager (which inherit its environment) run with
	 * leak detection off. Inert for a plain build. */
	const char *a = getenv("ASAN_OPTIONS");
	_cleanup_free_ char *asan = NULL;
	saved_asan_options = a ? strdup(a) : NULL;
	cr_assert_geq(asprintf(&asan, "%s%sdetect_leaks=0", a ? a : "", a && *a ? ":" : ""), 0);
	cr_assert_eq(setenv("ASAN_OPTIONS", asan, 1), 0);

	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	ensure_inaccessible_nodes();
}

static void down(void) {
	/* corrald first, through its unit, while etcd is there to hear it
	 * deregister. Should it hang, systemd SIGKILLs and reaps it after
	 * TimeoutStopSec= (15 s, inside systemctl's 30 s); the harness
	 * instead SIGKILLs a manager that takes over 10 s to exit, which
	 * would leave a hung corrald behind. */
	if (sd) {
		char *const args[] = { "stop", UNIT, NULL };
		(void) hx_systemctl(sd, NULL, args);
	}
	sd = hx_systemd_free(sd);
	etcd = hx_etcd_free(etcd);
	if (dir)
		(void) hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
	if (base)
		(void) hx_rm_tmp(base);
	free(base);
	base = NULL;
	if (saved_tmpdir)
		(void) setenv("TMPDIR", saved_tmpdir, 1);
	else
		(void) unsetenv("TMPDIR");
	free(saved_tmpdir);
	saved_tmpdir = NULL;
	if (saved_asan_options)
		(void) setenv("ASAN_OPTIONS", saved_asan_options, 1);
	else
		(void) unsetenv("ASAN_OPTIONS");
	free(saved_asan_options);
	saved_asan_options = NULL;
}

/* ---- text ---- */

/* text with the one occurrence of `from` replaced by `to`; fails the test
 * unless there is exactly one (a changed unit file must be noticed here). */
static char *replace_once(const char *text, const char *from, const char *to) {
	const char *at = strstr(text, from);
	char *out;

	cr_assert_not_null(at, "'%s' not found in the unit file", from);
	cr_assert_null(strstr(at + 1, from), "'%s' occurs more than once in the unit file", from);
	cr_assert_geq(asprintf(&out, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from)), 0);
	return out;
}

static char *unit_text(void) {
	_cleanup_free_ char *p = NULL;
	char *text;

	cr_assert_geq(asprintf(&p, "%s/units/" UNIT, hx_builddir()), 0);
	text = hx_read_file(p, NULL);
	cr_assert_not_null(text, "cannot read %s", p);
	return text;
}

/* "ExecStart=BINDIR/corrald ": the installed binary the unit names. */
static char *installed_exec(const char *text) {
	const char *at = strstr(text, "\nExecStart=");
	char *s;

	cr_assert_not_null(at, "no ExecStart= in the unit");
	at++;
	size_t n = strcspn(at, " \n");
	cr_assert(n > 22 && strncmp(at + n - 12, "/bin/corrald", 12) == 0,
		  "ExecStart= does not name BINDIR/corrald: %.*s", (int) n, at);
	cr_assert_geq(asprintf(&s, "%.*s ", (int) n, at), 0);
	return s;
}

/* ---- systemd-analyze verify ---- */

typedef struct verdict {
	int status;             /* the tool's exit status */
	char *output;           /* stdout and stderr */
	char *about_unit;       /* the lines naming the unit file */
} verdict;

static void verdict_done(verdict *v) {
	free(v->output);
	free(v->about_unit);
}

/* Writes text as sub/corrald.service under this test's dir and verifies it. */
static verdict verify(const char *sub, const char *text) {
	_cleanup_free_ char *d = path_in(sub), *file = NULL, *out = NULL, *err = NULL;
	char *tool = (char *) hx_tool("CORRAL_SYSTEMD_ANALYZE", "systemd-analyze");
	verdict v = {};
	size_t n = 0;

	cr_assert_eq(mkdir(d, 0755), 0, "mkdir %s: %s", d, strerror(errno));
	cr_assert_geq(asprintf(&file, "%s/" UNIT, d), 0);
	cr_assert_eq(hx_write_file(file, text), 0);

	/* --man=no: Documentation=man:corrald(8) is there once installed
	 * (test_man checks the pages), not in a build dir. */
	char *const argv[] = { tool, "verify", "--man=no", file, NULL };
	v.status = hx_run_capture(&out, &err, 30 * USEC_PER_SEC, argv, NULL);
	cr_assert_geq(v.status, 0, "%s did not run (%d)", tool, v.status);
	cr_assert_geq(asprintf(&v.output, "%s%s", out ? out : "", err ? err : ""), 0);

	v.about_unit = calloc(1, strlen(v.output) + 1);
	cr_assert_not_null(v.about_unit);
	for (const char *l = v.output; *l;) {
		size_t len = strcspn(l, "\n");
		if (memmem(l, len, UNIT, strlen(UNIT))) {
			memcpy(v.about_unit + n, l, len);
			n += len;
			v.about_unit[n++] = '\n';
		}
		l += len + (l[len] == '\n');
	}
	return v;
}

/* The check the unit file must pass: exit 0 and no complaint about it. */
static bool verdict_clean(const verdict *v) {
	return v->status == 0 && v->about_unit[0] == '\0';
}

Test(units, verify_passes, .init = files_up, .fini = down) {
	_cleanup_free_ char *text = unit_text(), *bin = built_corrald(), *exec = NULL, *installed = installed_exec(text);

	/* verify checks that ExecStart= names an executable: the built one. */
	cr_assert_geq(asprintf(&exec, "ExecStart=%s ", bin), 0);
	_cleanup_free_ char *fixed = replace_once(text, installed, exec);
	_cleanup_(verdict_done) verdict v = verify("good", fixed);
	cr_assert(verdict_clean(&v), "systemd-analyze verify: exit %d, output:\n%s", v.status, v.output);
}

Test(units, verify_catches_mistakes, .init = files_up, .fini = down) {
	_cleanup_free_ char *text = unit_text(), *bin = built_corrald(), *exec = NULL, *missing = NULL;
	_cleanup_free_ char *installed = installed_exec(text);

	cr_assert_geq(asprintf(&exec, "ExecStart=%s ", bin), 0);
	cr_assert_geq(asprintf(&missing, "ExecStart=%s/no-such-corrald ", dir), 0);
	_cleanup_free_ char *good = replace_once(text, installed, exec);
	_cleanup_free_ char *typo = replace_once(good, "\nType=notify\n", "\nTypo=notify\n");
	_cleanup_free_ char *bogus = replace_once(good, "\nType=notify\n", "\nType=bogus\n");
	_cleanup_free_ char *nobin = replace_once(text, installed, missing);

	/* An unknown key and a bad value are only warnings to verify (exit
	 * 0): the lines naming the unit are what catch them. */
	_cleanup_(verdict_done) verdict a = verify("typo", typo);
	cr_assert_not(verdict_clean(&a), "a typo'd directive passed: exit %d\n%s", a.status, a.output);
	cr_assert(strstr(a.about_unit, "Typo"), "%s", a.output);

	_cleanup_(verdict_done) verdict b = verify("bogus", bogus);
	cr_assert_not(verdict_clean(&b), "Type=bogus passed: exit %d\n%s", b.status, b.output);
	cr_assert(strstr(b.about_unit, "bogus"), "%s", b.output);

	/* A missing binary is an error: the exit status catches it. */
	_cleanup_(verdict_done) verdict c = verify("nobin", nobin);
	cr_assert_neq(c.status, 0, "a missing ExecStart binary passed:\n%s", c.output);
	cr_assert_not(verdict_clean(&c));
}

/* ---- corrald under systemd --user ---- */

static char *write_config(const char *services) {
	char *p = path_in("corrald.yaml");
	cr_assert_eq(hx_write_corrald_config(p, "n1", services, hx_etcd_endpoints(etcd)), 0);
	return p;
}

/* Installs units/corrald.service unchanged plus a drop-in test.conf that
 * only points ExecStart= at the built binary and this test's config, and,
 * when `extra` is given, a second drop-in extra.conf with those [Service]
 * lines. Then daemon-reload. */
static void install_corrald(const char *extra) {
	_cleanup_free_ char *text = unit_text(), *built = built_corrald(), *cfg = path_in("corrald.yaml");
	_cleanup_free_ char *bin = path_in("corrald");
	char *const cp[] = { "cp", "-p", built, bin, NULL };
	cr_assert_eq(hx_run(NULL, 10 * USEC_PER_SEC, cp, NULL), 0, "cannot copy %s to %s", built, bin);
	_cleanup_free_ char *d = NULL, *conf = NULL, *more = NULL, *drop = NULL, *extra_text = NULL;

	cr_assert_geq(asprintf(&d, "%s/" UNIT ".d", hx_systemd_unit_dir(sd)), 0);
	cr_assert_eq(mkdir(d, 0755), 0, "mkdir %s: %s", d, strerror(errno));
	cr_assert_geq(asprintf(&conf, "%s/test.conf", d), 0);
	cr_assert_geq(asprintf(&drop,
			       "# The built binary and the test's config; nothing else changes.\n"
			       "[Service]\n"
			       "ExecStart=\n"
			       "ExecStart=%s --config %s\n",
			       bin, cfg), 0);
	cr_assert_eq(hx_write_file(conf, drop), 0);
	if (extra) {
		cr_assert_geq(asprintf(&more, "%s/extra.conf", d), 0);
		cr_assert_geq(asprintf(&extra_text, "[Service]\n%s\n", extra), 0);
		cr_assert_eq(hx_write_file(more, extra_text), 0);
	}
	cr_assert_eq(hx_systemd_install_unit(sd, UNIT, text), 0);
}

static int systemctl(const char *verb) {
	char *const args[] = { (char *) verb, UNIT, NULL };
	return hx_systemctl(sd, NULL, args);
}

/* What `systemctl --user show` says about the unit, in one call. */
typedef struct snap {
	char active[32], sub[32], result[32], status_text[128];
	unsigned long n_restarts;
	long main_pid;
	int exec_status;
	uint64_t watchdog_ts;   /* WatchdogTimestampMonotonic */
} snap;

static void snap_field(snap *s, const char *line) {
	const char *v = strchr(line, '=');

	if (!v)
		return;
	v++;
#define FIELD(name) (strncmp(line, name "=", strlen(name "=")) == 0)
	if (FIELD("ActiveState"))
		snprintf(s->active, sizeof s->active, "%s", v);
	else if (FIELD("SubState"))
		snprintf(s->sub, sizeof s->sub, "%s", v);
	else if (FIELD("Result"))
		snprintf(s->result, sizeof s->result, "%s", v);
	else if (FIELD("StatusText"))
		snprintf(s->status_text, sizeof s->status_text, "%s", v);
	else if (FIELD("NRestarts"))
		s->n_restarts = strtoul(v, NULL, 10);
	else if (FIELD("MainPID"))
		s->main_pid = strtol(v, NULL, 10);
	else if (FIELD("ExecMainStatus"))
		s->exec_status = (int) strtol(v, NULL, 10);
	else if (FIELD("WatchdogTimestampMonotonic"))
		s->watchdog_ts = strtoull(v, NULL, 10);
#undef FIELD
}

static bool snap_take(snap *s) {
	_cleanup_free_ char *out = NULL;
	char *const args[] = { "show", "--no-pager",
			       "-p", "ActiveState,SubState,Result,StatusText,NRestarts,MainPID,ExecMainStatus",
			       "-p", "WatchdogTimestampMonotonic", UNIT, NULL };
	char *save = NULL;

	*s = (snap){};
	if (hx_systemctl(sd, &out, args) != 0 || !out)
		return false;
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		snap_field(s, l);
	return true;
}

static snap snap_now(void) {
	snap s;
	cr_assert(snap_take(&s), "systemctl --user show " UNIT " failed");
	return s;
}

static char *record(void) {
	return hx_etcd_get(etcd, KEY);
}

static bool key_present(void *ud) {
	_cleanup_free_ char *v = record();
	return v != NULL;
}

static bool key_absent(void *ud) {
	return !key_present(ud);
}

/* True when the node record lists service `ud`. */
static bool record_has_service(void *ud) {
	_cleanup_free_ char *v = record();
	json_auto_t *rec = v ? json_loads(v, 0, NULL) : NULL;
	json_t *svc;
	size_t i;

	json_array_foreach(json_object_get(rec, "services"), i, svc)
		if (streq_ptr(json_string_value(svc), ud))
			return true;
	return false;
}

/* True when the record is no longer `ud` (after a restart: a new "started" time). */
static bool record_differs(void *ud) {
	_cleanup_free_ char *v = record();
	return v && !streq(v, ud);
}

static bool running(void *ud) {
	snap s;
	return snap_take(&s) && streq(s.active, "active") && streq(s.sub, "running");
}

Test(units, start_reload_stop, .init = manager_up, .fini = down) {
	free(write_config("Worker"));
	install_corrald(NULL);

	/* Type=notify: start returns once READY=1 came, which corrald sends
	 * once registered. So the key is there now, not eventually. */
	cr_assert_eq(systemctl("start"), 0, "systemctl --user start " UNIT " failed");
	cr_assert(key_present(NULL), "start returned before the node was registered");
	snap s = snap_now();
	cr_assert_str_eq(s.active, "active");
	cr_assert_str_eq(s.sub, "running");
	cr_assert_str_eq(s.status_text, "config in place");
	cr_assert_gt(s.main_pid, 0);
	long pid = s.main_pid;

	/* The hardening is in force, not silently dropped by a user manager:
	 * no new privileges, a seccomp filter, the four capabilities the unit
	 * keeps (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5 -> 0x2b). */
	_cleanup_free_ char *status_path = NULL;
	cr_assert_geq(asprintf(&status_path, "/proc/%ld/status", pid), 0);
	_cleanup_free_ char *status = hx_read_file(status_path, NULL);
	cr_assert_not_null(status);
	cr_assert(strstr(status, "\nNoNewPrivs:\t1\n"), "%s", status);
	cr_assert(strstr(status, "\nSeccomp:\t2\n"), "%s", status);
	cr_assert(strstr(status, "\nCapBnd:\t000000000000002b\n"), "%s", status);

	/* Reload: ExecReload= sends SIGHUP; with systemd 252 the job ends when
	 * that kill(1) exits, so the record follows shortly after. */
	cr_assert_not(record_has_service("Checker"));
	free(write_config("Worker, Checker"));
	cr_assert_eq(systemctl("reload"), 0, "systemctl --user reload " UNIT " failed");
	cr_assert(hx_wait_until(record_has_service, "Checker", REGISTER_USEC),
		  "the node record did not pick up the reloaded services");
	cr_assert(hx_wait_until(running, NULL, REGISTER_USEC), "not back to running after the reload");
	s = snap_now();
	cr_assert_eq(s.main_pid, pid, "a reload must not restart corrald");
	cr_assert_eq(s.n_restarts, 0);

	/* Stop: SIGTERM, corrald revokes its lease, exits 0; the stop job
	 * ends when it has exited, so the key is gone by then. */
	cr_assert_eq(systemctl("stop"), 0, "systemctl --user stop " UNIT " failed");
	s = snap_now();
	cr_assert_str_eq(s.active, "inactive");
	cr_assert_str_eq(s.result, "success");
	cr_assert(key_absent(NULL), "the node key outlived the stop");
}

/* READY=1 comes after the first render: `systemctl start` returns with the
 * current config already on disk, so units ordered after corrald start on
 * it. */
Test(units, ready_after_the_first_render, .init = manager_up, .fini = down) {
	_cleanup_free_ char *cfg = write_config("Worker"), *out = path_in("rendered.conf");
	_cleanup_free_ char *text = hx_read_file(cfg, NULL), *more = NULL;
	cr_assert_not_null(text);
	cr_assert_geq(asprintf(&more, "%sfiles:\n  app:\n    path: %s\n    format: command\n"
				      "    command: 'sleep 1; cat'\n",
			       text, out), 0);
	cr_assert_eq(hx_write_file(cfg, more), 0);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/configs/c_1/app/greeting", "\"hello\""), 0);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/current", "c_1"), 0);
	install_corrald(NULL);

	/* The render command takes a second: start must wait for it. */
	cr_assert_eq(systemctl("start"), 0, "systemctl --user start " UNIT " failed");
	_cleanup_free_ char *rendered = hx_read_file(out, NULL);
	cr_assert_not_null(rendered, "READY=1 came before the first render");
	cr_assert_str_eq(rendered, "{\n  \"greeting\": \"hello\"\n}\n");
	snap s = snap_now();
	cr_assert_str_eq(s.status_text, "config in place");
}

/* Watches a live corrald with WatchdogSec=2s: anything wrong ends the wait. */
typedef struct watch {
	long pid;
	uint64_t last_ts;
	unsigned pings;         /* WatchdogTimestamp changes seen */
	char why[256];
} watch;

static bool watchdog_trouble(void *ud) {
	watch *w = ud;
	snap s;

	if (!snap_take(&s))
		return snprintf(w->why, sizeof w->why, "systemctl show failed"), true;
	if (!streq(s.active, "active") || !streq(s.sub, "running") || s.n_restarts != 0 || s.main_pid != w->pid)
		return snprintf(w->why, sizeof w->why, "%s/%s, NRestarts=%lu, MainPID=%ld (was %ld), Result=%s",
				s.active, s.sub, s.n_restarts, s.main_pid, w->pid, s.result), true;
	if (s.watchdog_ts != w->last_ts) {
		w->last_ts = s.watchdog_ts;
		w->pings++;
	}
	/* The manager's clock is CLOCK_MONOTONIC too: the last ping is never
	 * as old as the timeout. */
	uint64_t now = hx_now_usec();
	if (now > w->last_ts && now - w->last_ts >= WATCHDOG_USEC)
		return snprintf(w->why, sizeof w->why, "no ping for %llu ms",
				(unsigned long long) ((now - w->last_ts) / USEC_PER_MSEC)), true;
	return false;
}

/* Follows the unit from a kill of old_pid to its restart. */
typedef struct restart_watch {
	snap s;
	long old_pid;
	const char *result;     /* the Result= the kill should produce */
	bool saw_result;        /* ... seen while waiting (RestartSec= shows it) */
} restart_watch;

static bool restart_done(restart_watch *r) {
	if (!snap_take(&r->s))
		return false;
	if (streq(r->s.result, r->result))
		r->saw_result = true;
	return r->s.n_restarts == 1 && streq(r->s.active, "active") && streq(r->s.sub, "running") &&
	       r->s.main_pid > 0 && r->s.main_pid != r->old_pid;
}

static bool result_seen(void *ud) {
	restart_watch *r = ud;
	(void) restart_done(r);
	return r->saw_result;
}

static bool restarted(void *ud) {
	return restart_done(ud);
}

Test(units, watchdog_is_fed, .init = manager_up, .fini = down) {
	free(write_config("Worker"));
	install_corrald("WatchdogSec=2s");
	cr_assert_eq(systemctl("start"), 0);

	char *const args[] = { "show", "-P", "WatchdogUSec", UNIT, NULL };
	_cleanup_free_ char *wd = NULL;
	cr_assert_eq(hx_systemctl(sd, &wd, args), 0);
	cr_assert_str_eq(wd, "2s\n", "the drop-in's WatchdogSec= did not apply");

	/* Three watchdog periods: active throughout, no restart, and pings
	 * (corrald's sd-event sends them at half the period or sooner). */
	snap s = snap_now();
	watch w = { .pid = s.main_pid, .last_ts = s.watchdog_ts };
	cr_assert_gt(w.last_ts, 0, "no WATCHDOG=1 so far");
	cr_assert_not(hx_wait_until(watchdog_trouble, &w, 3 * WATCHDOG_USEC), "%s", w.why);
	cr_assert_geq(w.pings, 3, "only %u watchdog pings in 6 s", w.pings);
}

Test(units, watchdog_restarts_a_frozen_daemon, .init = manager_up, .fini = down) {
	free(write_config("Worker"));
	install_corrald("WatchdogSec=2s");
	cr_assert_eq(systemctl("start"), 0);
	snap s = snap_now();
	long pid = s.main_pid;
	cr_assert_gt(pid, 0);
	cr_assert_eq(s.n_restarts, 0);
	_cleanup_free_ char *before = record();
	cr_assert_not_null(before);

	/* A stopped process cannot feed the watchdog; the manager notices
	 * within WatchdogSec and kills it (SIGABRT, then SIGCONT). */
	cr_assert_eq(kill((pid_t) pid, SIGSTOP), 0, "kill -STOP %ld: %s", pid, strerror(errno));
	uint64_t t0 = hx_now_usec();
	restart_watch r = { .old_pid = pid, .result = "watchdog" };
	cr_assert(hx_wait_until(result_seen, &r, 3 * WATCHDOG_USEC),
		  "the watchdog did not fire: %s/%s Result=%s NRestarts=%lu", r.s.active, r.s.sub, r.s.result,
		  r.s.n_restarts);
	/* The last ping came at most WatchdogSec/2 before the stop. */
	cr_assert_geq(hx_now_usec() - t0, WATCHDOG_USEC / 4, "fired too early to be the watchdog");

	/* Restart=on-failure covers a watchdog kill: a new corrald registers. */
	cr_assert(hx_wait_until(restarted, &r, RESTART_SEC_USEC + REGISTER_USEC),
		  "no restart after the watchdog: %s/%s NRestarts=%lu MainPID=%ld", r.s.active, r.s.sub,
		  r.s.n_restarts, r.s.main_pid);
	cr_assert(key_present(NULL));
	cr_assert(hx_wait_until(record_differs, before, REGISTER_USEC), "the record is still the old process's");
}

Test(units, restarts_after_sigkill, .init = manager_up, .fini = down) {
	free(write_config("Worker"));
	install_corrald(NULL);
	cr_assert_eq(systemctl("start"), 0);
	snap s = snap_now();
	cr_assert_gt(s.main_pid, 0);
	_cleanup_free_ char *before = record();
	cr_assert_not_null(before);

	cr_assert_eq(kill((pid_t) s.main_pid, SIGKILL), 0, "kill -KILL %ld: %s", s.main_pid, strerror(errno));
	restart_watch r = { .old_pid = s.main_pid, .result = "signal" };
	cr_assert(hx_wait_until(restarted, &r, RESTART_SEC_USEC + REGISTER_USEC),
		  "not restarted: %s/%s Result=%s NRestarts=%lu MainPID=%ld", r.s.active, r.s.sub, r.s.result,
		  r.s.n_restarts, r.s.main_pid);
	cr_assert(r.saw_result, "Result=signal was never seen between the kill and the restart");

	/* Ready again means registered again: the record is the new
	 * process's (its "started" is RestartSec= later). */
	cr_assert(key_present(NULL));
	cr_assert(hx_wait_until(record_differs, before, REGISTER_USEC), "the record is still the old process's");
}

/* True when the unit is anything but failed and never restarted. */
static bool not_failed(void *ud) {
	snap *s = ud;
	return snap_take(s) && (s->n_restarts != 0 || !streq(s->active, "failed"));
}

Test(units, bad_config_is_not_restarted, .init = manager_up, .fini = down) {
	_cleanup_free_ char *cfg = path_in("corrald.yaml");
	/* An unknown key: corrald exits 2 before READY=1. */
	cr_assert_eq(hx_write_file(cfg, "cluster: t\nnode_id: n1\nno_such_key: 1\n"), 0);
	install_corrald(NULL);

	cr_assert_neq(systemctl("start"), 0, "start succeeded with a bad config");
	snap s = snap_now();
	cr_assert_str_eq(s.active, "failed", "%s/%s", s.active, s.sub);
	cr_assert_str_eq(s.result, "exit-code");
	cr_assert_eq(s.exec_status, 2);
	cr_assert_eq(s.n_restarts, 0);

	/* RestartSec= passes, and a second: still failed, never restarted
	 * (Restart=on-failure alone would have, see restarts_after_sigkill). */
	cr_assert_not(hx_wait_until(not_failed, &s, RESTART_SEC_USEC + USEC_PER_SEC),
		      "restarted despite RestartPreventExitStatus=2: %s/%s NRestarts=%lu", s.active, s.sub,
		      s.n_restarts);
	cr_assert(key_absent(NULL));
}
