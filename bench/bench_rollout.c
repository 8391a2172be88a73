/* bench_rollout.c — how long the leader's rollout decision takes for a big
 * fleet: rollout_observe() (parse the records of one revision) plus
 * rollout_decide(), for BENCH_NODES nodes (default: 100, 1,000 and
 * 10,000) in three phases: the start of preparing (every node gets its
 * PREPARE order), the middle of rolling (half the fleet upgraded and
 * healthy, a batch in flight), and final_bake. BENCH_RUNS decisions each
 * (default 50); prints the median, p99 and actions of the last run. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "rollout.h"

#define NOW ((time_t) 1700000000)
#define PREFIX "/corral/bench"

typedef enum phase { PREPARING_START, MID_ROLLING, FINAL_BAKE } phase;
static const char *const phase_names[] = { "preparing start", "mid-rolling", "final_bake" };

typedef struct fleet {
	rollout_kv *upgrade, *nodes, *status;
	size_t n_upgrade, n_nodes, n_status;
	char **texts;
	size_t n_texts;
} fleet;

static const char *keep(fleet *f, char *s) {
	f->texts[f->n_texts++] = s;
	return s;
}

static void add(fleet *f, rollout_kv *kv, size_t *n, char *key, char *value) {
	kv[(*n)++] = (rollout_kv) { keep(f, key), keep(f, value), strlen(value) };
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
	char *s;
	va_list ap;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static void build(fleet *f, int n, phase ph) {
	memset(f, 0, sizeof *f);
	f->upgrade = calloc(2 * n + 4, sizeof *f->upgrade);
	f->nodes = calloc(n, sizeof *f->nodes);
	f->status = calloc(n, sizeof *f->status);
	f->texts = calloc(8 * n + 8, sizeof *f->texts);   /* two per record */
	const char *phases[] = { "pending", "rolling", "final_bake" };
	int in_batch = 10, batch = n / 2 / in_batch;
	add(f, f->upgrade, &f->n_upgrade, fmt(PREFIX "/upgrade/plan"),
	    fmt("{\"id\": \"p1\", \"pools\": [\"web\"], \"target\": {\"image\": \"v2\"}, \"canary\": {\"nodes\": 1},"
		" \"batch\": {\"max_unavailable\": %d, \"min_healthy_percent\": 90}, \"auto_rollback\": true}",
		in_batch));
	add(f, f->upgrade, &f->n_upgrade, fmt(PREFIX "/upgrade/state"),
	    fmt("{\"plan\": \"p1\", \"generation\": 1, \"phase\": \"%s\", \"batch\": %d, \"progress_at\": %ld,"
		" \"bake_until\": %ld, \"previous\": {\"image\": \"v1\"}}",
		phases[ph], ph == MID_ROLLING ? batch : 0, (long) NOW - 10, (long) NOW + 600));
	for (int i = 0; i < n; i++) {
		bool upgraded = ph == FINAL_BAKE || (ph == MID_ROLLING && i < n / 2);
		bool in_flight = ph == MID_ROLLING && i >= n / 2 - in_batch && i < n / 2;
		add(f, f->nodes, &f->n_nodes, fmt(PREFIX "/nodes/n%06d", i),
		    fmt("{\"node_id\": \"n%06d\", \"pool\": \"web\", \"image\": \"%s\", \"instance_id\": \"i-%06d\","
			" \"started\": \"2023-11-14T00:00:00Z\"}",
			i, upgraded && !in_flight ? "v2" : "v1", i));
		add(f, f->status, &f->n_status, fmt(PREFIX "/status/n%06d", i), fmt("{\"ok\": true}"));
		if (ph == PREPARING_START)
			continue;
		const char *verb = upgraded ? "upgrade" : "prepare";
		add(f, f->upgrade, &f->n_upgrade, fmt(PREFIX "/upgrade/nodes/n%06d", i),
		    fmt("{\"plan\": \"p1\", \"generation\": 1, \"verb\": \"%s\", \"role\": \"%s\", \"batch\": %d,"
			" \"target\": {\"image\": \"v2\"}, \"from\": {\"image\": \"v1\"}, \"issued\": %ld}",
			verb, upgraded ? (i == 0 ? "canary" : "batch") : "none", upgraded ? i / in_batch : 0,
			(long) NOW - 100));
		add(f, f->upgrade, &f->n_upgrade, fmt(PREFIX "/upgrade/progress/n%06d", i),
		    fmt("{\"plan\": \"p1\", \"generation\": 1, \"verb\": \"%s\", \"state\": \"%s\", \"step\": 3,"
			" \"n_steps\": 10, \"step_name\": \"stop cms-app\", \"started\": %ld, \"finished\": %ld,"
			" \"updated\": %ld, \"image\": \"v2\", \"once_done\": [0], \"undo_pending\": [1]}",
			verb, in_flight ? "running" : "done", (long) NOW - 90, (long) NOW - 80, (long) NOW - 5));
	}
}

static void fleet_free(fleet *f) {
	for (size_t i = 0; i < f->n_texts; i++)
		free(f->texts[i]);
	free(f->texts);
	free(f->upgrade);
	free(f->nodes);
	free(f->status);
}

static int run(int n, phase ph, int runs) {
	fleet f;
	int64_t *t = calloc(runs, sizeof *t), *td = calloc(runs, sizeof *td);
	size_t actions = 0;
	char line[256] = "";

	build(&f, n, ph);
	for (int i = 0; i < runs; i++) {
		rollout_records r = { .prefix = PREFIX, .upgrade = f.upgrade, .n_upgrade = f.n_upgrade, .nodes = f.nodes,
			              .n_nodes = f.n_nodes, .status = f.status, .n_status = f.n_status, .now = NOW };
		rollout_view v;
		rollout_output out;
		int64_t t0 = mono_ns();
		if (rollout_observe(&r, &v) < 0) {
			fprintf(stderr, "observe failed\n");
			return 1;
		}
		int64_t t1 = mono_ns();
		if (rollout_decide(&v.input, &out) < 0) {
			fprintf(stderr, "decision failed\n");
			return 1;
		}
		t[i] = mono_ns() - t0;
		td[i] = mono_ns() - t1;
		actions = out.n_actions;
		snprintf(line, sizeof line, "%s", out.line);
		rollout_output_done(&out);
		rollout_view_done(&v);
	}
	qsort(t, runs, sizeof *t, cmp64);
	qsort(td, runs, sizeof *td, cmp64);
	printf("%6d nodes  %-16s observe+decide p50 %8.3f ms  p99 %8.3f ms  (decide alone p50 %7.3f ms; %zu actions)\n",
	       n, phase_names[ph], t[runs / 2] / 1e6, t[(runs * 99) / 100] / 1e6, td[runs / 2] / 1e6, actions);
	if (getenv("BENCH_VERBOSE"))
		printf("        %s\n", line[0] ? line : "-");
	free(t);
	free(td);
	fleet_free(&f);
	return 0;
}

int main(void) {
	int only = env_int("BENCH_NODES", 0), runs = env_int("BENCH_RUNS", 50);
	int sizes[] = { 100, 1000, 10000 };

	for (size_t s = 0; s < 3; s++) {
		int n = only ? only : sizes[s];
		for (int ph = PREPARING_START; ph <= FINAL_BAKE; ph++)
			if (run(n, ph, n >= 10000 && runs > 10 ? runs / 5 : runs) != 0)
				return 1;
		if (only)
			break;
	}
	return 0;
}
