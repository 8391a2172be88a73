/* bench_scale.c — how long scale_decide() takes for a big fleet (issue 5:
 * goal under 10 ms for 10,000 hosts), and scale_observe() before it (the
 * same fleet as the records the leader reads: host records, node and load
 * records, DescribeInstances; BENCH_OBSERVE_RUNS, default 20). Builds BENCH_HOSTS hosts (default
 * 10,000) across four pools, one per policy kind, with mixed states,
 * markets, reservations and spot prices, and a surplus old enough that
 * victims are chosen and sorted (the slowest path), then times BENCH_RUNS
 * decisions (default 200) and prints the median, p99 and max RSS. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>
#include <string.h>

#include "bench.h"
#include "scale-observe.h"
#include "scale.h"

#define NOW ((time_t) 1700000000)

/* The fleet of in as the records the leader reads, then observe timed. */
static int bench_observe(const scale_input *in, int runs) {
	size_t n = in->n_hosts;
	scale_kv *hosts = calloc(n, sizeof *hosts), *nodes = calloc(n, sizeof *nodes), *load = calloc(n, sizeof *load);
	scale_instance *insts = calloc(n, sizeof *insts);
	char **texts = calloc(3 * n, sizeof *texts), (*node_ids)[32] = calloc(n, sizeof *node_ids);
	int64_t *t = calloc(runs, sizeof *t);
	size_t n_nodes = 0, n_insts = 0, n_texts = 0, n_out = 0;

	if (!hosts || !nodes || !load || !insts || !texts || !node_ids || !t)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const scale_host *h = &in->hosts[i];
		json_t *j = scale_host_to_json(h);
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!text)
			return -1;
		texts[n_texts++] = text;
		hosts[i] = (scale_kv) { h->id, text, strlen(text) };
		if (h->state != SCALE_TERMINATED)
			insts[n_insts++] = (scale_instance) { .id = h->id, .pool = h->pool, .spot = h->market == SCALE_SPOT,
							      .launch_time = h->launch_time };
		if (!h->node_id)
			continue;
		snprintf(node_ids[n_nodes], sizeof node_ids[n_nodes], "n-%s", h->id);
		char *nt = NULL, *lt = NULL;
		if (asprintf(&nt, "{\"instance_id\":\"%s\",\"address\":\"10.0.0.1\"}", h->id) < 0 ||
		    asprintf(&lt, "{\"jobs\":%d,\"capacity\":%d,\"memory\":%g}", h->jobs, h->job_capacity,
			     h->memory_used) < 0)
			return -1;
		texts[n_texts++] = nt;
		texts[n_texts++] = lt;
		nodes[n_nodes] = (scale_kv) { node_ids[n_nodes], nt, strlen(nt) };
		load[n_nodes] = (scale_kv) { node_ids[n_nodes], lt, strlen(lt) };
		n_nodes++;
	}
	scale_records r = {
		.cluster = in->cluster, .now = in->now, .launch_grace = 300, .policy = in->policy,
		.hosts = hosts, .n_hosts = n, .nodes = nodes, .n_nodes = n_nodes, .load = load, .n_load = n_nodes,
		.have_instances = true, .instances = insts, .n_instances = n_insts,
		.prices = in->prices, .n_prices = in->n_prices, .reservations = in->reservations,
		.n_reservations = in->n_reservations,
	};
	for (int k = 0; k < runs; k++) {
		scale_observed o = {};
		int64_t a = mono_ns();
		int e = scale_observe(&r, &o);
		t[k] = mono_ns() - a;
		n_out = o.n_hosts;
		scale_observed_done(&o);
		if (e < 0) {
			fprintf(stderr, "scale_observe: %d\n", e);
			return -1;
		}
	}
	qsort(t, runs, sizeof *t, cmp64);
	printf("scale_observe: %zu host records, %zu node and load records, %zu instances -> %zu hosts; "
	       "%d runs: median %.3f ms, max %.3f ms\n",
	       n, n_nodes, n_insts, n_out, runs, t[runs / 2] / 1e6, t[runs - 1] / 1e6);
	for (size_t i = 0; i < n_texts; i++)
		free(texts[i]);
	free(texts);
	free(hosts);
	free(nodes);
	free(load);
	free(insts);
	free(node_ids);
	free(t);
	return 0;
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
	if (bench_observe(&in, env_int("BENCH_OBSERVE_RUNS", 20)) < 0)
		return 1;
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
