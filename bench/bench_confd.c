/* bench_confd.c — side by side with confd (issue 14): one private etcd, one
 * corrald rendering f.json (fanout.c's node 1) and one confd (the binary
 * named by CONFD; bench/confd.sh builds it) watching one key with the etcdv3
 * backend and rendering it to round.conf. BENCH_ROUNDS (50) rounds, each
 * writes a new value to each in turn and times write -> file:
 *
 *   confd    a plain etcd put of its key (what confd's users do);
 *   corrald  a commit of f/round through the agreement protocol (a read of
 *            `current` and the config, then one txn: what `corralctl config
 *            set` does without its process start).
 *
 * corrald runs with debounce BENCH_DEBOUNCE (0s: confd waits for nothing).
 * Both from before the write, seen through inotify; the write's own time
 * is printed beside. Then VmRSS, RssAnon and CPU of both. Not a test. */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bench.h"
#include "fanout.h"

#define CONFD_KEY "/confd-bench/round"

static bf_node node, cf;

static bool shown(void *ud) {
	bf_node *n = ud;
	bf_check_dirty();
	return n->seen_ns != 0;
}

/* Runs the loop until n shows B.round or 10 s pass. */
static bool wait_seen(bf_node *n) {
	int64_t end = mono_ns() + 10 * (int64_t) 1000000000;
	while (!B.stop && mono_ns() < end) {
		if (shown(n))
			return true;
		(void) sd_event_run(B.event, 20 * USEC_PER_MSEC);
	}
	return shown(n);
}

static int put_round(long r, int64_t *took) {
	char v[32];
	snprintf(v, sizeof v, "%ld", r);
	etcd_put_req req = { .key = CONFD_KEY, .value = v };
	etcd_sync s = {};
	int64_t t0 = mono_ns();
	int rc = etcd_put(B.client, &req, etcd_sync_cb, &s, NULL);
	rc = rc < 0 ? rc : etcd_wait(B.client, &s, NULL);
	*took = mono_ns() - t0;
	return rc;
}

static int confd_start(const char *bin) {
	_cleanup_free_ char *confdir = hx_fmt("%s/confd", B.dir), *confd_d = hx_fmt("%s/conf.d", confdir),
			    *tmpl_d = hx_fmt("%s/templates", confdir), *toml = hx_fmt("%s/round.toml", confd_d),
			    *tmpl = hx_fmt("%s/round.tmpl", tmpl_d), *out = hx_fmt("%s/confd-out", B.dir);
	cf.id = strdup("confd");
	cf.dir = strdup(out);
	cf.base = strdup("round.conf");
	cf.file = hx_fmt("%s/round.conf", out);
	cf.log = hx_fmt("%s/logs/confd.log", B.dir);
	_cleanup_free_ char *toml_text = hx_fmt("[template]\nsrc = \"round.tmpl\"\ndest = \"%s\"\nkeys = [\"%s\"]\n",
						cf.file, CONFD_KEY);
	if (!cf.id || !cf.dir || !cf.base || mkdir(confdir, 0755) < 0 || mkdir(confd_d, 0755) < 0 ||
	    mkdir(tmpl_d, 0755) < 0 || mkdir(out, 0755) < 0 || hx_write_file(toml, toml_text) < 0 ||
	    hx_write_file(tmpl, "round={{getv \"" CONFD_KEY "\"}}\n") < 0 || bf_watch(&cf) < 0)
		return -1;
	int64_t took;
	if (put_round(0, &took) < 0)
		return -1;
	char *const argv[] = { (char *) bin, "-backend", "etcdv3", "-node", (char *) hx_etcd_endpoint(B.etcd, 0),
			       "-confdir", confdir, "-watch", "-log-level", "warning", NULL };
	return hx_proc_spawn(&cf.proc, argv, NULL, cf.log);
}

static void report(const char *who, int64_t *lat, size_t n, int64_t *writes, const char *write_is) {
	qsort(lat, n, sizeof *lat, cmp64);
	qsort(writes, n, sizeof *writes, cmp64);
	printf("%-8s write -> file p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%zu); the write itself (%s) p50 %.2f ms\n",
	       who, bf_ms(bf_pct(lat, n, 50)), bf_ms(bf_pct(lat, n, 99)), n ? bf_ms(lat[n - 1]) : 0.0, n, write_is,
	       bf_ms(bf_pct(writes, n, 50)));
}

static void footprint(const char *who, bf_node *n, uint64_t cpu0) {
	long rss, anon;
	pid_t pid = hx_proc_pid(n->proc);
	bf_rss(pid, &rss, &anon);
	printf("%-8s VmRSS %.1f MiB, RssAnon %.1f MiB, CPU over the rounds %.2f s\n", who, rss / 1024.0,
	       anon / 1024.0, (double) (bf_cpu_ns(pid) - cpu0) / 1e9);
}

static int rounds(unsigned count) {
	_cleanup_free_ int64_t *lc = calloc(count, sizeof *lc), *lf = calloc(count, sizeof *lf),
			       *wc = calloc(count, sizeof *wc), *wf = calloc(count, sizeof *wf);
	size_t nc = 0, nf = 0;

	if (!lc || !lf || !wc || !wf)
		return -1;
	uint64_t tc = bf_cpu_ns(hx_proc_pid(node.proc)), tf = bf_cpu_ns(hx_proc_pid(cf.proc));
	for (unsigned r = 1; r <= count && !bf_over(); r++) {
		B.round = r;
		cf.seen_ns = node.seen_ns = 0;
		int64_t t0 = mono_ns();
		if (put_round(r, &wf[nf]) < 0)
			return -1;
		if (wait_seen(&cf))
			lf[nf++] = cf.seen_ns - t0;
		bf_run_for(50 * USEC_PER_MSEC);
		t0 = mono_ns();
		if (bf_commit(r, &wc[nc]) < 0)
			return -1;
		if (wait_seen(&node))
			lc[nc++] = node.seen_ns - t0;
		bf_run_for(50 * USEC_PER_MSEC);
	}
	report("confd", lf, nf, wf, "etcd put");
	report("corrald", lc, nc, wc, "commit");
	footprint("confd", &cf, tf);
	footprint("corrald", &node, tc);
	return nc == count && nf == count ? 0 : -1;
}

int main(void) {
	const char *bin = getenv("CONFD");
	int r = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!bin || !*bin) {
		fprintf(stderr, "bench: CONFD names the confd binary (bench/confd.sh builds one)\n");
		return 2;
	}
	B.ino = -1;
	B.n = 1;
	if (bf_setup_common() < 0 || bf_node_init(&node, 0, bf_debounce_yaml("0s")) < 0 || bf_node_start(&node) < 0 ||
	    confd_start(bin) < 0) {
		fprintf(stderr, "bench: set-up failed\n");
		goto out;
	}
	B.round = 0;
	if (!wait_seen(&node) || !wait_seen(&cf)) {
		fprintf(stderr, "bench: %s did not render the first value\n", node.seen_ns ? "confd" : "corrald");
		hx_log_tail(node.seen_ns ? cf.log : node.log, 20);
		goto out;
	}
	bf_run_for(500 * USEC_PER_MSEC);        /* start-up's trailing writes */
	printf("side by side on one etcd: confd (%s) and one corrald, one watched value rendered to a file\n", bin);
	r = rounds((unsigned) env_int("BENCH_ROUNDS", 50)) < 0 ? 1 : 0;
out:
	bf_node_done(&cf);
	bf_teardown(&node, 1);
	return r;
}
