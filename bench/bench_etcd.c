/* bench_etcd — figures for the etcd client against a real, private etcd:
 *   1. CAS txn round trips per second, one after another, over the client's
 *      kept-alive connection;
 *   2. put -> watch event latency, p50/p99.
 * Prints figures; passes or fails nothing. Run with `make bench`.
 *
 *   BENCH_TXNS=N     txns to time (default 2000)
 *   BENCH_EVENTS=N   puts to watch (default 1000) */
#include <sys/resource.h>

#include "etcd.h"
#include "harness.h"

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p) {
	qsort(v, n, sizeof *v, cmp_u64);
	size_t i = (size_t) (p * (double) (n - 1) + 0.5);
	return (double) v[i] / 1000.0;
}

static size_t env_count(const char *name, size_t def) {
	const char *s = getenv(name);
	return s && atol(s) > 0 ? (size_t) atol(s) : def;
}

typedef struct watch_state {
	size_t seen;
	uint64_t at;
} watch_state;

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	watch_state *ws = userdata;
	if (m->type == ETCD_WATCH_EVENTS) {
		ws->seen += m->n_events;
		ws->at = hx_now_usec();
	}
	if (m->type == ETCD_WATCH_CREATED && ws->at == 0)
		ws->at = 1;
}

static void on_put(etcd_client *c, etcd_response *r, void *userdata) {
	if (r->error.code < 0)
		fprintf(stderr, "bench: put failed: %s\n", r->error.message);
	etcd_response_free(r);
}

int main(void) {
	size_t n_txn = env_count("BENCH_TXNS", 2000), n_ev = env_count("BENCH_EVENTS", 1000);
	_cleanup_(hx_etcd_freep) hx_etcd *etcd = NULL;
	sd_event *event = NULL;
	etcd_client *c = NULL;
	int r;

	if (hx_etcd_start(&etcd, NULL) < 0)
		return 1;
	char *eps[] = { (char *) hx_etcd_endpoint(etcd, 0), NULL };
	if (sd_event_new(&event) < 0 || etcd_client_new(&c, event, &(etcd_options){ .endpoints = eps }) < 0)
		return 1;

	/* 1. CAS txns in a row, each on the mod_revision the last one made. */
	uint64_t *lat = calloc(n_txn > n_ev ? n_txn : n_ev, sizeof *lat);
	int64_t mod = 0;
	uint64_t t0 = hx_now_usec();
	for (size_t i = 0; i < n_txn; i++) {
		etcd_compare cmp = { .key = "/bench/cas", .target = ETCD_CMP_MOD, .number = mod };
		etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = "/bench/cas", .value = "v" } };
		etcd_sync s = {};
		_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
		uint64_t a = hx_now_usec();
		r = etcd_txn(c, &(etcd_txn_req){ &cmp, 1, &put, 1, NULL, 0 }, etcd_sync_cb, &s, NULL);
		if (r < 0 || etcd_wait(c, &s, &resp) < 0 || !resp->succeeded) {
			fprintf(stderr, "bench: txn %zu failed\n", i);
			return 1;
		}
		lat[i] = hx_now_usec() - a;
		mod = resp->header.revision;
	}
	double secs = (double) (hx_now_usec() - t0) / 1e6;
	printf("txn (CAS on mod_revision), sequential, one connection: %zu in %.2f s = %.0f txn/s; "
	       "latency p50 %.2f ms, p99 %.2f ms\n",
	       n_txn, secs, (double) n_txn / secs, pct(lat, n_txn, 0.50), pct(lat, n_txn, 0.99));

	/* 2. put -> event: time from sending a put to the watch delivering it. */
	watch_state ws = {};
	etcd_watch *w = NULL;
	if (etcd_watch_new(&w, c, &(etcd_watch_req){ .key = "/bench/w/", .prefix = true }, on_watch, &ws) < 0)
		return 1;
	while (ws.at == 0)
		sd_event_run(event, UINT64_MAX);
	for (size_t i = 0; i < n_ev; i++) {
		char key[32];
		snprintf(key, sizeof key, "/bench/w/%zu", i % 16);
		uint64_t a = hx_now_usec();
		if (etcd_put(c, &(etcd_put_req){ .key = key, .value = "x" }, on_put, NULL, NULL) < 0)
			return 1;
		while (ws.seen <= i) {
			if (hx_now_usec() - a > 10 * USEC_PER_SEC) {
				fprintf(stderr, "bench: event %zu never came\n", i);
				return 1;
			}
			sd_event_run(event, 100 * USEC_PER_MSEC);
		}
		lat[i] = ws.at - a;
	}
	printf("put -> watch event: %zu events; latency p50 %.2f ms, p99 %.2f ms\n", n_ev, pct(lat, n_ev, 0.50),
	       pct(lat, n_ev, 0.99));

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("bench process max RSS: %ld KiB\n", ru.ru_maxrss);

	etcd_watch_free(w);
	etcd_client_free(c);
	sd_event_unref(event);
	free(lat);
	return 0;
}
