/* bench_scale.c — how long scale_decide() takes for a big fleet (issue 5:
 * goal under 10 ms for 10,000 hosts). Builds BENCH_HOSTS hosts (default
 * 10,000) across four pools, one per policy kind, with mixed states,
 * markets, reservations and spot prices, and a surplus old enough that
 * victims are chosen and sorted (the slowest path), then times BENCH_RUNS
 * decisions (default 200) and prints the median, p99 and max RSS. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "scale.h"

#define NOW ((time_t) 1700000000)

static int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
	return x < y ? -1 : x > y;
}

static int env_int(const char *name, int def) {
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : def;
}

int main(void) {
	int n_hosts = env_int("BENCH_HOSTS", 10000), runs = env_int("BENCH_RUNS", 200);
	static char *types[] = { "m5.large", "m5a.large", "c5.xlarge" };
	static scale_subnet subnets[] = {
		{ "subnet-a", "us-east-1a" }, { "subnet-b", "us-east-1b" }, { "subnet-c", "us-east-1c" } };
	static const char *names[] = { "batch", "fixed", "mem", "web" };
	static const scale_kind kinds[] = { SCALE_POLICY_QUEUE, SCALE_POLICY_FIXED, SCALE_POLICY_THRESHOLD,
					     SCALE_POLICY_JOBS };
	scale_pool pools[4];
	scale_pool_state state[4];
	for (int i = 0; i < 4; i++) {
		scale_pool_defaults(&pools[i]);
		pools[i].name = (char *) names[i];
		pools[i].launch_template = "lt-bench";
		pools[i].instance_types = types;
		pools[i].n_instance_types = 3;
		pools[i].subnets = subnets;
		pools[i].n_subnets = 3;
		pools[i].market_spot = true;
		pools[i].spot_max_price = 0.05;
		pools[i].kind = kinds[i];
		pools[i].max = n_hosts;
		pools[i].jobs_per_host = 4;
		pools[i].hosts = n_hosts / 8;
		pools[i].billing = i % 2 ? SCALE_BILLING_HOURLY : SCALE_BILLING_PER_SECOND;
		state[i] = (scale_pool_state) { .pool = pools[i].name, .surplus_since = NOW - 3600, .launch_seq = 7 };
	}
	scale_policy policy = { pools, 4 };

	scale_host *hosts = calloc(n_hosts, sizeof *hosts);
	char (*ids)[24] = calloc(n_hosts, sizeof *ids);
	if (!hosts || !ids)
		return 1;
	uint64_t seed = 42;
	for (int i = 0; i < n_hosts; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned r = (unsigned) (seed >> 33);
		/* real ids: "i-0" and 16 random hex digits */
		uint64_t x = seed ^ (seed >> 29) ^ (uint64_t) i * 0x9e3779b97f4a7c15ULL;
		snprintf(ids[i], sizeof ids[i], "i-0%016" PRIx64, x);
		unsigned s = r % 100;
		scale_state st = s < 80 ? SCALE_READY : s < 85 ? SCALE_LAUNCHING : s < 93 ? SCALE_DRAINING
			       : s < 97 ? SCALE_UNHEALTHY : s < 99 ? SCALE_TERMINATING : SCALE_TERMINATED;
		hosts[i] = (scale_host) {
			.id = ids[i], .pool = (char *) names[i % 4], .state = st,
			.market = (r >> 8) % 2 ? SCALE_SPOT : SCALE_ON_DEMAND,
			.instance_type = types[(r >> 9) % 3], .availability_zone = subnets[(r >> 11) % 3].availability_zone,
			.launch_time = NOW - 60 - (r % 20000), .state_since = NOW - (r % 4000),
			.node_id = st == SCALE_LAUNCHING && (r >> 13) % 2 ? NULL : ids[i],
			.last_seen = (r >> 14) % 50 ? NOW - 5 : NOW - 500, .jobs = (r >> 15) % 5,
			.job_capacity = 4, .memory_used = ((r >> 17) % 100) / 100.0, .cluster_tagged = true,
			.hold = (r >> 20) % 200 == 0, .interruption = (r >> 21) % 500 == 0,
		};
	}
	scale_reservation res[] = { { "m5.large", "us-east-1a", 300 }, { "c5.xlarge", NULL, 500 } };
	scale_price prices[9];
	for (int t = 0; t < 3; t++)
		for (int z = 0; z < 3; z++)
			prices[t * 3 + z] = (scale_price) { types[t], subnets[z].availability_zone, 0.02 + 0.01 * z };
	scale_queue queues[] = { { "batch", 12 } };

	scale_input in = {
		.cluster = "bench", .policy = &policy, .hosts = hosts, .n_hosts = n_hosts,
		.queues = queues, .n_queues = 1, .prices = prices, .n_prices = 9,
		.reservations = res, .n_reservations = 2, .state = state, .n_state = 4, .now = NOW,
	};

	int64_t *t = calloc(runs, sizeof *t);
	if (!t)
		return 1;
	size_t n_actions = 0;
	for (int k = 0; k < runs; k++) {
		scale_output out = { 0 };
		int64_t a = mono_ns();
		int r = scale_decide(&in, &out);
		t[k] = mono_ns() - a;
		if (r < 0) {
			fprintf(stderr, "scale_decide: %d\n", r);
			return 1;
		}
		n_actions = out.n_actions;
		if (k == 0)
			for (size_t m = 0; m < out.n_metrics; m++)
				printf("pool %-6s desired %5d ready %5d launching %4d drained %4d undrained %4d "
				       "launched %4d terminated %4d\n",
				       out.metrics[m].pool, out.metrics[m].desired_hosts, out.metrics[m].ready,
				       out.metrics[m].launching, out.metrics[m].drained, out.metrics[m].undrained,
				       out.metrics[m].launched, out.metrics[m].terminated);
		scale_output_done(&out);
	}
	qsort(t, runs, sizeof *t, cmp64);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("scale_decide: %d hosts, 4 pools, %zu actions; %d runs: median %.3f ms, p99 %.3f ms, max %.3f ms; "
	       "max RSS %ld KiB\n",
	       n_hosts, n_actions, runs, t[runs / 2] / 1e6, t[(runs * 99) / 100 - (runs >= 100)] / 1e6,
	       t[runs - 1] / 1e6, ru.ru_maxrss);
	free(t);
	free(hosts);
	free(ids);
	return 0;
}
