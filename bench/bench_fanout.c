/* bench_fanout.c — the fan-out benchmark (issue 14): one private etcd and
 * BENCH_NODES (100) real corrald on this machine, each rendering one file
 * f.json into its own directory (with BENCH_TOPOLOGY=1, the default, a
 * topology rule puts every node's id into the list f/nodes), then
 * BENCH_COMMITS (10) commits of f/round, with corrald's debounce
 * BENCH_DEBOUNCE (10ms; max_wait BENCH_MAX_WAIT, 1s). Not a test: it prints
 * figures.
 *
 *   start-up   from the first spawn until all N registered (nodes/) and
 *              every file lists all N (without topology: every file is
 *              rendered);
 *   commits    from the commit (an in-process agree proposal: what
 *              `corralctl config set` does, without its process start)
 *              until the value is in each node's file: p50, p99, max over
 *              nodes; etcd requests per node by kind (etcd's /metrics,
 *              before the commit and once the counters stand still again;
 *              the benchmark's own commit, about 2 Range and 1 Txn, is in
 *              them); CPU seconds summed over the nodes (/proc/PID/stat);
 *   idle       CPU and requests over BENCH_IDLE (10) seconds of nothing;
 *   memory     VmRSS and RssAnon per node: median and max.
 *
 * A run that collapses ends at BENCH_DEADLINE seconds (480) with the
 * figures it has; a commit waits BENCH_COMMIT_TIMEOUT (60) s at most;
 * Ctrl-C ends it too. Every process it starts it stops. Exit 0 when every
 * phase completed, 1 when one did not, 2 on bad knobs. */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agree.h"
#include "bench.h"
#include "fanout.h"
#include "keys.h"

static bf_node *nodes;
static unsigned n_nodes;

/* $name as 0 or 1, else def. */
static bool env_flag(const char *name, bool def) {
	const char *v = getenv(name);
	return v && *v ? atoi(v) != 0 : def;
}

/* Node records in etcd, or -1 when etcd did not answer. Serializable: a
 * local read does not wait behind a backlog of applies the way a
 * linearizable one does (one member: the same data). */
static long registered(void) {
	_cleanup_free_ char *key = keys_dir_of(B.prefix, KEYS_NODES);
	etcd_range_req req = { .key = key, .prefix = true, .count_only = true, .serializable = true };
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;

	if (!key || etcd_range(B.client, &req, etcd_sync_cb, &s, NULL) < 0 || etcd_wait(B.client, &s, &resp) < 0)
		return -1;
	return (long) resp->count;
}

static unsigned alive(void) {
	unsigned k = 0;
	for (unsigned i = 0; i < n_nodes; i++)
		k += hx_proc_running(nodes[i].proc);
	return k;
}

static const char *over_why(void) {
	return B.stop ? "interrupted" : "deadline passed";
}

/* Start-up: spawn all, then wait for registrations and complete files. */
static int startup(void) {
	_cleanup_free_ char *more = hx_fmt("%s%s", bf_debounce_yaml("10ms"),
					  B.topology ? "topology:\n  - service: Worker\n    path: " BF_FILE "/nodes\n"
						       "    value: \"{node_id}\"\n"
						     : "");
	for (unsigned i = 0; i < n_nodes; i++)
		if (bf_node_init(&nodes[i], i, more) < 0) {
			fprintf(stderr, "bench: cannot set up node %u\n", i + 1);
			return -1;
		}
	B.round = 0;
	B.reached = 0;
	int64_t t0 = mono_ns(), t_reg = 0, t_all = 0, next_print = t0 + 10 * (int64_t) 1000000000;
	for (unsigned i = 0; i < n_nodes && !bf_over(); i++)
		if (bf_node_start(&nodes[i]) < 0)
			return -1;
	double spawn_s = (double) (mono_ns() - t0) / 1e9;
	long reg = 0, got;
	unsigned unanswered = 0;
	while (!bf_over()) {
		bf_run_for(n_nodes > 300 ? 250 * USEC_PER_MSEC : 100 * USEC_PER_MSEC);
		bf_check_dirty();
		got = registered();
		unanswered += got < 0;
		reg = got < 0 ? reg : got;
		int64_t now = mono_ns();
		if (!t_reg && reg >= n_nodes)
			t_reg = now;
		if (!t_all && B.reached == n_nodes)
			t_all = now;
		if (t_reg && t_all)
			break;
		if (now >= next_print) {
			printf("  %6.1f s: %ld/%u registered%s, %u/%u files complete, %u running\n", (now - t0) / 1e9,
			       reg, n_nodes, got < 0 ? " (last known: etcd did not answer)" : "", B.reached, n_nodes,
			       alive());
			next_print += 10 * (int64_t) 1000000000;
		}
	}
	const char *what = B.topology ? "files list all N" : "files rendered";
	if (t_reg && t_all) {
		printf("start-up (%u nodes, spawned in %.1f s): all registered %.2f s; all %s %.2f s\n", n_nodes,
		       spawn_s, (t_reg - t0) / 1e9, what, (t_all - t0) / 1e9);
		/* The commits measure a cluster at rest: start-up's tail (status
		 * puts, the leader's upkeep) first. */
		bf_counts c;
		int64_t t1 = mono_ns();
		bf_metrics_settle(&c, 60 * USEC_PER_SEC);
		printf("  etcd's Range/Txn/Put counters stood still %.2f s later (%.2f s after the first spawn)\n",
		       (mono_ns() - t1) / 1e9, (mono_ns() - t0) / 1e9);
		return 0;
	}
	char all_at[32] = "";
	if (t_reg)
		snprintf(all_at, sizeof all_at, " (all at %.1f s)", (t_reg - t0) / 1e9);
	printf("start-up (%u nodes): NOT complete after %.1f s (%s): %ld/%u registered%s, %u/%u %s, %u running; "
	       "%u count queries unanswered\n",
	       n_nodes, (mono_ns() - t0) / 1e9, over_why(), reg, n_nodes,
	       all_at, B.reached, n_nodes, what, alive(),
	       unanswered);
	return -1;
}

static uint64_t cpu_sum(bool since) {
	uint64_t sum = 0;
	for (unsigned i = 0; i < n_nodes; i++) {
		uint64_t t = bf_cpu_ns(hx_proc_pid(nodes[i].proc));
		if (since)
			sum += t > nodes[i].cpu_ns ? t - nodes[i].cpu_ns : 0;
		else
			nodes[i].cpu_ns = t;
	}
	return sum;
}

static void print_requests(const bf_counts *a, const bf_counts *b, double per) {
	printf("  etcd requests per node:");
	for (unsigned k = 0; k < BF_KINDS; k++)
		printf(" %s %.2f", bf_kinds[k], (b->v[k] - a->v[k]) / per);
	printf(" (watch responses sent %.2f)\n", (b->watch_sent - a->watch_sent) / per);
	printf("  etcd's time a call:");
	for (unsigned k = BF_RANGE; k <= BF_PUT; k++) {
		double n = b->handled[k] - a->handled[k];
		printf(" %s %.2f ms", bf_kinds[k], n > 0 ? 1e3 * (b->handling_s[k] - a->handling_s[k]) / n : 0.0);
	}
	double f = b->fsyncs - a->fsyncs;
	printf("; WAL fsync %.2f ms (%.0f of them)\n", f > 0 ? 1e3 * (b->fsync_s - a->fsync_s) / f : 0.0, f);
}

typedef struct worst {
	int64_t p50, p99, max;
	int64_t rest[3];                /* p50, p99, max over commits 2..K */
	unsigned done, missed;
	bf_counts sum;
	double cpu_s, etcd_s;
} worst;

/* One commit: returns 0 if every node showed it. */
static int one_commit(long k, int64_t *lat, worst *w) {
	bf_counts before, after;
	int64_t took = 0, commit_timeout = (int64_t) env_int("BENCH_COMMIT_TIMEOUT", 60) * 1000000000;

	bf_run_for(200 * USEC_PER_MSEC);        /* a quiet gap between commits */
	(void) bf_metrics(&before);
	(void) cpu_sum(false);
	uint64_t etcd0 = bf_cpu_ns(hx_etcd_member_pid(B.etcd, 0)), self0 = bf_cpu_ns(getpid());
	for (unsigned i = 0; i < n_nodes; i++)
		nodes[i].seen_ns = 0;
	B.round = k;
	B.reached = 0;
	int64_t t0 = mono_ns();
	if (bf_commit(k, &took) < 0)
		return -1;
	int64_t end = t0 + commit_timeout;
	while (B.reached < n_nodes && !bf_over() && mono_ns() < end) {
		(void) sd_event_run(B.event, 50 * USEC_PER_MSEC);
		bf_check_dirty();                /* after an inotify overflow */
	}
	bf_metrics_settle(&after, 5 * USEC_PER_SEC);
	double cpu_s = (double) cpu_sum(true) / 1e9,
	       etcd_s = (double) (bf_cpu_ns(hx_etcd_member_pid(B.etcd, 0)) - etcd0) / 1e9,
	       self_s = (double) (bf_cpu_ns(getpid()) - self0) / 1e9;
	size_t n = 0;
	for (unsigned i = 0; i < n_nodes; i++)
		if (nodes[i].seen_ns)
			lat[n++] = nodes[i].seen_ns - t0;
	qsort(lat, n, sizeof *lat, cmp64);
	int64_t p50 = bf_pct(lat, n, 50), p99 = bf_pct(lat, n, 99), max = n ? lat[n - 1] : 0;
	printf("commit %2ld: %zu/%u files in p50 %.1f ms, p99 %.1f ms, max %.1f ms (the commit itself %.1f ms); "
	       "CPU %.3f s over the nodes (%.2f ms a node), etcd %.3f s, this benchmark %.3f s\n",
	       k, n, n_nodes, bf_ms(p50), bf_ms(p99), bf_ms(max), bf_ms(took), cpu_s, 1e3 * cpu_s / n_nodes, etcd_s,
	       self_s);
	print_requests(&before, &after, n_nodes);
	int64_t *rest = w->rest, f[3] = { p50, p99, max };
	for (unsigned q = 0; q < 3 && k > 1; q++)
		rest[q] = f[q] > rest[q] ? f[q] : rest[q];
	w->done++;
	w->missed += n_nodes - (unsigned) n;
	w->p50 = p50 > w->p50 ? p50 : w->p50;
	w->p99 = p99 > w->p99 ? p99 : w->p99;
	w->max = max > w->max ? max : w->max;
	for (unsigned q = 0; q < BF_KINDS; q++)
		w->sum.v[q] += after.v[q] - before.v[q];
	w->sum.watch_sent += after.watch_sent - before.watch_sent;
	for (unsigned q = 0; q < BF_KINDS; q++) {
		w->sum.handling_s[q] += after.handling_s[q] - before.handling_s[q];
		w->sum.handled[q] += after.handled[q] - before.handled[q];
	}
	w->sum.fsync_s += after.fsync_s - before.fsync_s;
	w->sum.fsyncs += after.fsyncs - before.fsyncs;
	w->cpu_s += cpu_s;
	w->etcd_s += etcd_s;
	return n == n_nodes ? 0 : -1;
}

static int commits(unsigned count) {
	_cleanup_free_ int64_t *lat = calloc(n_nodes, sizeof *lat);
	worst w = {};
	int r = 0;

	if (!lat)
		return -1;
	for (unsigned k = 1; k <= count && !bf_over(); k++)
		if (one_commit(k, lat, &w) < 0) {
			r = -1;
			if (B.reached == 0) {
				printf("commit %u reached no node within the timeout: no more commits\n", k);
				break;
			}
		}
	if (w.done < count)
		printf("commits: %u of %u made (%s)\n", w.done, count, bf_over() ? over_why() : "see above");
	if (!w.done)
		return -1;
	bf_counts zero = {};
	printf("commits: worst of %u: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %u node-commits missed; "
	       "CPU a commit %.3f s over the nodes (%.2f ms a node), etcd %.3f s\n",
	       w.done, bf_ms(w.p50), bf_ms(w.p99), bf_ms(w.max), w.missed, w.cpu_s / w.done,
	       1e3 * w.cpu_s / w.done / n_nodes, w.etcd_s / w.done);
	if (w.done > 1 && w.rest[2] > 0)
		printf("  without the first commit: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", bf_ms(w.rest[0]),
		       bf_ms(w.rest[1]), bf_ms(w.rest[2]));
	print_requests(&zero, &w.sum, (double) n_nodes * w.done);
	return r;
}

static void idle(unsigned seconds) {
	bf_counts before, after;

	(void) bf_metrics(&before);
	(void) cpu_sum(false);
	bf_run_for((uint64_t) seconds * USEC_PER_SEC);
	(void) bf_metrics(&after);
	double cpu_s = (double) cpu_sum(true) / 1e9;
	printf("idle %u s: CPU %.2f s over the nodes (%.3f ms a node a second)\n", seconds, cpu_s,
	       1e3 * cpu_s / n_nodes / seconds);
	printf("  per node per second:");
	for (unsigned k = 0; k < BF_KINDS; k++)
		printf(" %s %.3f", bf_kinds[k], (after.v[k] - before.v[k]) / n_nodes / seconds);
	printf("\n");
}

static int cmp_long(const void *a, const void *b) {
	long x = *(const long *) a, y = *(const long *) b;
	return x < y ? -1 : x > y;
}

static void memory(void) {
	_cleanup_free_ long *rss = calloc(n_nodes, sizeof *rss), *anon = calloc(n_nodes, sizeof *anon);
	size_t n = 0;

	for (unsigned i = 0; rss && anon && i < n_nodes; i++)
		if (hx_proc_running(nodes[i].proc)) {
			bf_rss(hx_proc_pid(nodes[i].proc), &rss[n], &anon[n]);
			n += rss[n] >= 0 && anon[n] >= 0;
		}
	if (!n)
		return;
	qsort(rss, n, sizeof *rss, cmp_long);
	qsort(anon, n, sizeof *anon, cmp_long);
	printf("memory of %zu nodes: VmRSS median %.1f MiB, max %.1f MiB; RssAnon median %.2f MiB, max %.2f MiB\n", n,
	       rss[n / 2] / 1024.0, rss[n - 1] / 1024.0, anon[n / 2] / 1024.0, anon[n - 1] / 1024.0);
}

/* What the logs say: corrald logs at warning, so every line is news. */
static void logs(void) {
	size_t lines = 0, lease = 0, timed_out = 0, noisy = 0;

	for (unsigned i = 0; i < n_nodes; i++) {
		size_t l = hx_file_lines(nodes[i].log);
		lines += l;
		noisy += l > 0;
		lease += hx_count_in_file(nodes[i].log, "lease");
		timed_out += hx_count_in_file(nodes[i].log, "timed out");
	}
	printf("logs: %zu warning+ lines from %zu nodes (%zu mention the lease, %zu 'timed out'); etcd: %zu 'took too "
	       "long'; inotify overflows %u\n",
	       lines, noisy, lease, timed_out, hx_count_in_file(hx_etcd_log(B.etcd, 0), "took too long"), B.overflows);
}

int main(void) {
	int r = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	B.ino = -1;
	n_nodes = (unsigned) env_int("BENCH_NODES", 100);
	B.n = n_nodes;
	B.topology = env_flag("BENCH_TOPOLOGY", true);
	if (n_nodes > 9999) {
		fprintf(stderr, "bench: BENCH_NODES 1..9999\n");
		return 2;
	}
	nodes = calloc(n_nodes, sizeof *nodes);
	printf("fan-out: %u corrald, %s topology rule, %d commits, debounce %s, deadline %d s (nproc %ld)\n",
	       n_nodes, B.topology ? "with a" : "no", env_int("BENCH_COMMITS", 10), getenv("BENCH_DEBOUNCE") ?: "10ms",
	       env_int("BENCH_DEADLINE", 480), sysconf(_SC_NPROCESSORS_ONLN));
	_cleanup_free_ char *load = hx_read_file("/proc/loadavg", NULL);
	printf("load average before: %s", load ?: "?\n");
	if (!nodes || bf_setup_common() < 0) {
		fprintf(stderr, "bench: set-up failed\n");
		goto out;
	}
	int s = startup();
	int c = s == 0 || B.reached > 0 ? commits((unsigned) env_int("BENCH_COMMITS", 10)) : -1;
	if (!bf_over())
		idle((unsigned) env_int("BENCH_IDLE", 10));
	memory();
	logs();
	printf("%u of %u nodes still running%s\n", alive(), n_nodes, bf_over() ? " (the run was cut short)" : "");
	r = s == 0 && c == 0 && !bf_over() ? 0 : 1;
out:
	bf_teardown(nodes, n_nodes);
	free(nodes);
	return r;
}
