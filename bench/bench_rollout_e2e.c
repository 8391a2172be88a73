/* bench_rollout_e2e.c — the wall time of a rolling image upgrade of
 * BENCH_NODES (20) corrald on one etcd and one `systemd --user`, with
 * trivial steps (tests/upgrade-fleet.h: echoes to files, a stop and a start
 * of a sleeping user unit, a grep as health): canary 1, max_unavailable
 * BENCH_MAX_UNAVAILABLE (5), min_healthy_percent 0, min_healthy_time, bake
 * and final bake 0 s, auto promotion. Prints the time from `corralctl
 * upgrade start` to each phase and to every node's finish order done.
 * Not a test: it asserts only that the plan succeeds within BENCH_TIMEOUT
 * seconds (120). Exit 0 / 1; everything it starts it stops. */
#include <jansson.h>
#include <signal.h>

#include "etcd.h"
#include "harness.h"
#include "upgrade-fleet.h"

#define PREFIX "/corral/t/"
#define MAX_NODES 64

static uf_fleet fleet;
#define nodes fleet.nodes
static unsigned n_nodes;
static uint64_t t0;
static char phase[32];
static unsigned finished;               /* nodes whose finish order is done */
static bool finish_seen[MAX_NODES];


static unsigned env_uint(const char *name, unsigned dflt) {
	const char *v = getenv(name);
	return v && *v ? (unsigned) strtoul(v, NULL, 10) : dflt;
}

static const char *str_of(json_t *j, const char *field) {
	return json_string_value(json_object_get(j, field));
}

static void on_put(const char *key, json_t *j, void *userdata) {
	const char *p = str_of(j, "phase");

	(void) userdata;
	if (streq(key, "state") && p && !streq(p, phase)) {
		snprintf(phase, sizeof phase, "%s", p);
		printf("  %7.2f s  %s (batch %lld)\n", (hx_now_usec() - t0) / 1e6, p,
		       (long long) json_integer_value(json_object_get(j, "batch")));
	} else if (strncmp(key, "progress/", 9) == 0 && streq_ptr(str_of(j, "verb"), "finish") &&
		   streq_ptr(str_of(j, "state"), "done")) {
		for (unsigned k = 0; k < n_nodes; k++)
			if (streq(nodes[k].id, key + 9) && !finish_seen[k]) {
				finish_seen[k] = true;
				finished++;
			}
	}
}

static bool registered(void *ud) {
	(void) ud;
	return uf_fleet_registered(&fleet, PREFIX, "v1");
}

static int run(void) {
	const char *mu = getenv("BENCH_MAX_UNAVAILABLE") ?: "5", *what = NULL;
	uint64_t timeout = env_uint("BENCH_TIMEOUT", 120) * USEC_PER_SEC;

	if (uf_fleet_up(&fleet, n_nodes, 2, "v1", &what) < 0) {
		fprintf(stderr, "bench: could not start %s\n", what);
		return 1;
	}
	if (!hx_wait_until(registered, NULL, 60 * USEC_PER_SEC)) {
		fprintf(stderr, "bench: the nodes did not register their image\n");
		return 1;
	}
	if (uf_fleet_watch(&fleet, PREFIX "upgrade/", on_put, NULL) < 0)
		return 1;
	printf("rollout of %u nodes, canary 1, max_unavailable %s, min_healthy_time/bake 0 s:\n", n_nodes, mu);
	t0 = hx_now_usec();
	_cleanup_free_ char *out = NULL;
	int r = hx_corralctl(hx_etcd_endpoints(fleet.etcd), &out, uf_start_args("v2", mu, true, true));
	if (r != 0) {
		fprintf(stderr, "bench: corralctl upgrade start: %d: %s\n", r, out ?: "");
		return 1;
	}
	uint64_t succeeded = 0, end = t0 + timeout;
	while (hx_now_usec() < end && finished < n_nodes) {
		(void) sd_event_run(fleet.event, 50 * USEC_PER_MSEC);
		if (!succeeded && streq(phase, "succeeded"))
			succeeded = hx_now_usec();
	}
	if (!succeeded) {
		fprintf(stderr, "bench: the plan did not succeed within %.0f s (phase %s)\n", timeout / 1e6, phase);
		for (unsigned i = 0; i < 2 && i < n_nodes; i++)
			hx_log_tail(nodes[i].log, 30);
		return 1;
	}
	printf("%u-node rollout: start -> succeeded %.2f s; -> every node's finish (undo, cleanup) done %.2f s\n",
	       n_nodes, (succeeded - t0) / 1e6, finished == n_nodes ? (hx_now_usec() - t0) / 1e6 : -1.0);
	for (unsigned i = 0; i < n_nodes; i++)
		if (uf_count(&nodes[i], "switches", "upgrade v2") != 1) {
			fprintf(stderr, "bench: %s switched %zu times\n", nodes[i].id, uf_lines(&nodes[i], "switches"));
			return 1;
		}
	return 0;
}

int main(void) {
	int code;

	setvbuf(stdout, NULL, _IOLBF, 0);
	n_nodes = env_uint("BENCH_NODES", 20);
	if (n_nodes == 0 || n_nodes > MAX_NODES) {
		fprintf(stderr, "bench: BENCH_NODES 1..%d\n", MAX_NODES);
		return 2;
	}
	code = run();
	uf_fleet_down(&fleet);
	return code;
}
