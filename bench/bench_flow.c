/* bench_flow.c — prints figures for the config flow against real parts
 * (not a test: nothing is asserted but that the runs complete).
 *
 *   1. `corralctl config set` -> the new value in all 3 nodes' files, and
 *      -> all 3 units restarted (p50/p99 over BENCH_ROUNDS rounds), and
 *      from systemd's own timestamps: when the last restart began (corral's
 *      share) and how long the units' own stop+start took;
 *   2. contention: 5 concurrent writers x BENCH_SETS `config set` on
 *      different paths: changes present at the end, commits per second;
 *   3. one corrald's RSS and CPU while idle for BENCH_IDLE seconds.
 *
 * Three corrald on one machine (node ids n1..n3, addresses 127.0.0.11-13,
 * own output dirs), one etcd, one `systemd --user` with a unit per node. */
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

#define N 3

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static struct {
	char *cfg, *log, *cms, *unit;
	hx_proc *proc;
} nodes[N];

static unsigned env_uint(const char *name, unsigned dflt) {
	const char *v = getenv(name);
	return v && *v ? (unsigned) strtoul(v, NULL, 10) : dflt;
}

static char *ctl_bin(void) {
	char *p;
	if (asprintf(&p, "%s/corralctl", hx_builddir()) < 0)
		abort();
	return p;
}

static int ctl(char *const args[]) {
	_cleanup_free_ char *bin = ctl_bin(), *ep = NULL;
	char *argv[16] = { bin };
	size_t i = 1;
	if (asprintf(&ep, "--endpoints=%s", hx_etcd_endpoints(etcd)) < 0)
		abort();
	argv[i++] = ep;
	argv[i++] = "--cluster=b";
	for (size_t k = 0; args[k]; k++)
		argv[i++] = args[k];
	argv[i] = NULL;
	return hx_run(NULL, 30 * USEC_PER_SEC, argv, NULL);
}

static json_int_t file_value(unsigned i, const char *key) {
	_cleanup_free_ char *text = hx_read_file(nodes[i].cms, NULL);
	json_auto_t *v = text ? json_loads(text, 0, NULL) : NULL;
	return json_integer_value(json_object_get(v, key));
}

static long main_pid(unsigned i) {
	_cleanup_free_ char *v = hx_systemd_unit_property(sd, nodes[i].unit, "MainPID");
	return v ? atol(v) : -1;
}

/* A CLOCK_MONOTONIC timestamp systemd keeps for the unit (us; 0: none). */
static uint64_t unit_stamp(unsigned i, const char *prop) {
	_cleanup_free_ char *v = hx_systemd_unit_property(sd, nodes[i].unit, prop);
	return v ? strtoull(v, NULL, 10) : 0;
}

/* Every node reports the current config applied and ok. */
static bool all_settled(void) {
	_cleanup_free_ char *cur = hx_etcd_get(etcd, "/corral/b/current");
	for (unsigned i = 0; cur && i < N; i++) {
		char key[64];
		snprintf(key, sizeof key, "/corral/b/status/n%u", i + 1);
		_cleanup_free_ char *v = hx_etcd_get(etcd, key);
		json_auto_t *st = v ? json_loads(v, 0, NULL) : NULL;
		if (!json_is_true(json_object_get(st, "ok")) ||
		    !streq_ptr(json_string_value(json_object_get(st, "applied")), cur))
			return false;
	}
	return cur != NULL;
}

static void wait_settled(void) {
	uint64_t end = hx_now_usec() + 30 * USEC_PER_SEC;
	while (!all_settled() && hx_now_usec() < end)
		usleep(10000);
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static void percentiles(const char *what, uint64_t *v, size_t n) {
	qsort(v, n, sizeof *v, cmp_u64);
	printf("%-40s p50 %7.1f ms  p99 %7.1f ms  (n=%zu)\n", what, v[n / 2] / 1000.0,
	       v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0, n);
}

static int setup(void) {
	if (hx_etcd_start(&etcd, NULL) < 0 || hx_systemd_start(&sd) < 0)
		return -1;
	dir = hx_mkdtemp("bench-flow");
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *text = NULL, *unit = NULL;
		if (asprintf(&nodes[i].cfg, "%s/n%u.yaml", dir, i + 1) < 0 ||
		    asprintf(&nodes[i].log, "%s/n%u.log", dir, i + 1) < 0 ||
		    asprintf(&nodes[i].cms, "%s/n%u-cms.conf", dir, i + 1) < 0 ||
		    asprintf(&nodes[i].unit, "bench-n%u.service", i + 1) < 0 ||
		    asprintf(&text,
			     "cluster: b\nnode_id: n%u\naddress: 127.0.0.%u\nservices: [Worker]\nlease_ttl: 5s\n"
			     "log_level: warning\netcd:\n  endpoints: [%s]\n"
			     "files:\n  cms:\n    path: %s\n    restart: [%s]\n"
			     "topology:\n  - service: Worker\n    path: cms/core_services/Worker\n"
			     "    value: [\"{address}\", 26000]\n"
			     "units_bus: user\ndebounce: 10ms\nmax_wait: 200ms\n",
			     i + 1, 11 + i, hx_etcd_endpoints(etcd), nodes[i].cms, nodes[i].unit) < 0 ||
		    /* No start rate limit: the rounds restart faster than
		     * systemd's default 5 starts in 10 s allow. */
		    asprintf(&unit, "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep infinity\n") < 0)
			return -1;
		if (hx_write_file(nodes[i].cfg, text) < 0 || hx_systemd_install_unit(sd, nodes[i].unit, unit) < 0)
			return -1;
	}
	if (ctl((char *const[]){ "config", "set", "cms/round", "0", NULL }) != 0)
		return -1;
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *bin = NULL;
		if (asprintf(&bin, "%s/corrald", hx_builddir()) < 0)
			return -1;
		char *const argv[] = { bin, "--config", nodes[i].cfg, NULL };
		if (hx_proc_spawn(&nodes[i].proc, argv, hx_systemd_env(sd), nodes[i].log) < 0)
			return -1;
	}
	return 0;
}

static void teardown(void) {
	for (unsigned i = 0; i < N; i++) {
		nodes[i].proc = hx_proc_free(nodes[i].proc);
		free(nodes[i].cfg);
		free(nodes[i].log);
		free(nodes[i].cms);
		free(nodes[i].unit);
	}
	sd = hx_systemd_free(sd);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
}

/* 1: set -> files, set -> units */
static int bench_propagation(unsigned rounds) {
	uint64_t *files = calloc(rounds, sizeof *files), *units = calloc(rounds, sizeof *units);
	uint64_t *begun = calloc(rounds, sizeof *begun), *own = calloc(rounds, sizeof *own);
	size_t nf = 0, nu = 0, nb = 0;

	/* Let the nodes join and settle first. */
	uint64_t deadline = hx_now_usec() + 60 * USEC_PER_SEC;
	while (hx_now_usec() < deadline) {
		bool ok = true;
		for (unsigned i = 0; i < N; i++)
			ok = ok && main_pid(i) > 0;
		if (ok)
			break;
		usleep(20000);
	}
	for (unsigned r = 1; r <= rounds; r++) {
		long pids[N];
		/* Each round starts from quiet: the last round's applies over. */
		wait_settled();
		char val[32];
		for (unsigned i = 0; i < N; i++)
			pids[i] = main_pid(i);
		snprintf(val, sizeof val, "%u", r);
		uint64_t t0 = hx_now_usec(), t_files = 0, t_units = 0;
		if (ctl((char *const[]){ "config", "set", "cms/round", val, NULL }) != 0)
			return -1;
		uint64_t end = t0 + 30 * USEC_PER_SEC;
		while ((!t_files || !t_units) && hx_now_usec() < end) {
			if (!t_files) {
				bool all = true;
				for (unsigned i = 0; i < N; i++)
					all = all && file_value(i, "round") == (json_int_t) r;
				if (all)
					t_files = hx_now_usec();
			}
			if (t_files && !t_units) {
				bool all = true;
				for (unsigned i = 0; i < N; i++) {
					long p = main_pid(i);
					all = all && p > 0 && p != pids[i];
				}
				if (all)
					t_units = hx_now_usec();
			}
			if (!t_files)
				usleep(500);
		}
		if (t_files)
			files[nf++] = t_files - t0;
		if (t_units)
			units[nu++] = t_units - t0;
		if (t_units) {
			/* systemd's own clock (CLOCK_MONOTONIC, as ours): when each
			 * unit began to stop and when it was active again. The
			 * first is corral's share; the difference is the unit's. */
			uint64_t last_exit = 0, longest = 0;
			bool sound = true;
			for (unsigned i = 0; i < N; i++) {
				uint64_t exit = unit_stamp(i, "ActiveExitTimestampMonotonic");
				uint64_t enter = unit_stamp(i, "ActiveEnterTimestampMonotonic");
				sound = sound && exit > t0 && enter >= exit;
				if (exit > last_exit)
					last_exit = exit;
				if (enter - exit > longest)
					longest = enter - exit;
			}
			if (sound) {
				begun[nb] = last_exit - t0;
				own[nb++] = longest;
			}
		}
	}
	if (nf)
		percentiles("config set -> 3 files rendered", files, nf);
	if (nu)
		percentiles("config set -> 3 units restarted", units, nu);
	if (nb) {
		percentiles("config set -> 3 restarts begun (systemd)", begun, nb);
		percentiles("  the units' own stop+start (systemd)", own, nb);
	}
	printf("  (includes corralctl's start-up: one process per set; debounce 10 ms;\n"
	       "   \"units restarted\" polls systemctl, ~10 ms a poll; \"begun\" is systemd's own stamp)\n");
	free(files);
	free(units);
	free(begun);
	free(own);
	return nf == rounds ? 0 : -1;
}

/* 2: five writers at once */
static int bench_contention(unsigned sets) {
	pid_t pids[5];
	uint64_t t0 = hx_now_usec();

	for (unsigned w = 0; w < 5; w++) {
		pids[w] = fork();
		if (pids[w] < 0)
			return -1;
		if (pids[w] == 0) {
			int bad = 0;
			for (unsigned k = 0; k < sets; k++) {
				char path[64], val[32];
				snprintf(path, sizeof path, "load/w%u/k%u", w, k);
				snprintf(val, sizeof val, "%u", k);
				bad += ctl((char *const[]){ "config", "set", path, val, NULL }) != 0;
			}
			_exit(bad ? 1 : 0);
		}
	}
	int failed = 0;
	for (unsigned w = 0; w < 5; w++) {
		int st;
		waitpid(pids[w], &st, 0);
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	double secs = (double) (hx_now_usec() - t0) / USEC_PER_SEC;

	/* Count what is there now. */
	_cleanup_free_ char *bin = ctl_bin(), *ep = NULL, *out = NULL;
	if (asprintf(&ep, "--endpoints=%s", hx_etcd_endpoints(etcd)) < 0)
		return -1;
	char *const argv[] = { bin, ep, "--cluster=b", "config", "get", "load", NULL };
	if (hx_run(&out, 30 * USEC_PER_SEC, argv, NULL) != 0)
		return -1;
	json_auto_t *load = json_loads(out, 0, NULL);
	size_t present = 0;
	for (unsigned w = 0; w < 5; w++)
		for (unsigned k = 0; k < sets; k++) {
			char wk[16], kk[16];
			snprintf(wk, sizeof wk, "w%u", w);
			snprintf(kk, sizeof kk, "k%u", k);
			present += json_integer_value(json_object_get(json_object_get(load, wk), kk)) == (json_int_t) k &&
				   json_object_get(json_object_get(load, wk), kk);
		}
	printf("contention: 5 writers x %u sets: %zu/%u present, %d writer(s) failed, %.1f commits/s (%.1f s)\n",
	       sets, present, 5 * sets, failed, 5 * sets / secs, secs);
	return present == 5u * sets ? 0 : -1;
}

static int proc_figures(pid_t pid, long *rss_kib, unsigned long long *ticks) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
	_cleanup_free_ char *st = hx_read_file(path, NULL);
	snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
	_cleanup_free_ char *stat = hx_read_file(path, NULL);
	if (!st || !stat)
		return -1;
	const char *r = strstr(st, "VmRSS:");
	*rss_kib = r ? atol(r + 6) : -1;
	const char *p = strrchr(stat, ')');
	unsigned long long ut = 0, stt = 0;
	/* fields after ")": state ppid ... utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
		return -1;
	*ticks = ut + stt;
	return 0;
}

/* 3: idle cost */
static int bench_idle(unsigned seconds) {
	pid_t pid = hx_proc_pid(nodes[0].proc);
	long rss0, rss1;
	unsigned long long t0, t1;

	if (proc_figures(pid, &rss0, &t0) < 0)
		return -1;
	uint64_t start = hx_now_usec();
	while (hx_now_usec() < start + (uint64_t) seconds * USEC_PER_SEC)
		usleep(100000);
	if (proc_figures(pid, &rss1, &t1) < 0)
		return -1;
	double cpu_s = (double) (t1 - t0) / (double) sysconf(_SC_CLK_TCK);
	printf("corrald idle %u s: RSS %ld KiB (was %ld), CPU %.2f s (%.3f%%)\n", seconds, rss1, rss0, cpu_s,
	       100.0 * cpu_s / seconds);
	return 0;
}

int main(void) {
	int r = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setup() < 0) {
		fprintf(stderr, "bench_flow: set-up failed\n");
		goto out;
	}
	if (bench_propagation(env_uint("BENCH_ROUNDS", 30)) < 0)
		fprintf(stderr, "bench_flow: some rounds did not converge\n");
	if (bench_contention(env_uint("BENCH_SETS", 100)) < 0)
		fprintf(stderr, "bench_flow: contention lost changes\n");
	if (bench_idle(env_uint("BENCH_IDLE", 30)) < 0)
		fprintf(stderr, "bench_flow: cannot read corrald's figures\n");
	r = 0;
out:
	teardown();
	return r;
}
