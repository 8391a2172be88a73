/* bench_snapshots — what one `config set` costs beside a big config, with
 * complete snapshot folders (before delta snapshots: every change copies
 * the whole config) and with delta snapshots (agree.h), side by side in one
 * run on one private etcd. Two configs: BENCH_LEAVES (5,000) short leaves,
 * and BENCH_MB (5) MB in BENCH_MB_LEAVES (20,000) leaves. For each, it
 * times BENCH_ROUNDS (10) proposals that change one leaf, in process (what
 * `corralctl config set` does: read, change, write, CAS), first as before
 * (agree_options.no_delta: the whole config read and copied), then as
 * `config set` now does it (a partial read and a delta); then through the
 * built `corralctl config set` (a process: start, connect, propose); then
 * the steps of a whole read. Prints p50 and max. Passes or fails nothing.
 *
 *   cd build && make bench-snapshots */
#include <inttypes.h>
#include <jansson.h>

#include "agree.h"
#include "bench.h"
#include "harness.h"

#define PREFIX "/corral/b"

static hx_etcd *etcd;
static sd_event *event;
static etcd_client *client;

typedef struct fill {
	unsigned leaves;
	size_t value_len;
} fill;

/* The config: file "big", leaves k00000.. of value_len bytes each. */
static int fill_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	const fill *f = userdata;
	_cleanup_free_ char *v = malloc(f->value_len + 1);
	json_t *big = json_object();

	if (!v || !big)
		return -ENOMEM;
	memset(v, 'x', f->value_len);
	v[f->value_len] = '\0';
	for (unsigned i = 0; i < f->leaves; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%05u", i);
		json_object_set_new(big, k, json_string(v));
	}
	return json_object_set_new(files, "big", big);
}

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	return json_object_set_new(json_object_get(files, "big"), "k00001", json_string(userdata));
}

/* big/k<n> set to value: a run of changes to different leaves */
typedef struct set_n {
	char path[32];
	const char *value;
} set_n;

static int set_n_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	const set_n *sn = userdata;
	return json_object_set_new(json_object_get(files, "big"), sn->path + strlen("big/"), json_string(sn->value));
}

static int propose(agree_change_fn fn, void *ud, bool no_delta, bool *delta) {
	/* what `corralctl config set big/k00001` asks for */
	agree_options o = { .prefix = PREFIX, .proposer = "bench", .no_delta = no_delta,
			    .scope = fn == set_n_fn ? ((set_n *) ud)->path : "big/k00001",
			    .partial = fn != fill_fn };
	_cleanup_(agree_owned_result_done) agree_owned_result r = {};

	if (agree_propose_sync(client, &o, fn, ud, &r) < 0 || !r.committed) {
		fprintf(stderr, "bench: proposal failed: %s\n", r.error.message);
		return -1;
	}
	if (delta)
		*delta = r.base_id != NULL;
	return 0;
}

static int ctl_set(const char *value) {
	_cleanup_free_ char *bin = NULL, *ep = NULL;

	if (asprintf(&bin, "%s/corralctl", hx_builddir()) < 0 ||
	    asprintf(&ep, "--endpoints=%s", hx_etcd_endpoints(etcd)) < 0)
		return -1;
	char *argv[] = { bin, ep, "--cluster=b", "config", "set", "big/k00001", (char *) value, NULL };
	_cleanup_free_ char *out = NULL;
	return hx_run(&out, 60 * USEC_PER_SEC, argv, NULL);
}

typedef struct figures {
	double p50, max;
	unsigned deltas;
} figures;

static figures summarize(int64_t *ns, unsigned n, unsigned deltas) {
	qsort(ns, n, sizeof *ns, cmp64);
	return (figures){ .p50 = (double) ns[n / 2] / 1e6, .max = (double) ns[n - 1] / 1e6, .deltas = deltas };
}

/* rounds one-leaf changes: in process (no_delta or not) or by corralctl. */
static int time_sets(unsigned rounds, int mode, figures *out) {
	_cleanup_free_ int64_t *ns = calloc(rounds, sizeof *ns);
	unsigned deltas = 0;
	static unsigned serial;

	if (!ns)
		return -1;
	for (unsigned i = 0; i < rounds; i++) {
		char value[32];
		bool delta = false;
		snprintf(value, sizeof value, "round-%u", ++serial);
		int64_t a = mono_ns();
		int r = mode == 2 ? ctl_set(value) : propose(set_fn, value, mode == 0, &delta);
		ns[i] = mono_ns() - a;
		if (r != 0)
			return -1;
		deltas += delta;
	}
	*out = summarize(ns, rounds, deltas);
	return 0;
}

static double ms_since(int64_t *a) {
	int64_t now = mono_ns();
	double ms = (double) (now - *a) / 1e6;
	*a = now;
	return ms;
}

/* What a proposal that reads the whole config spends (a change without a
 * scope, or one that falls back): its steps one by one, as agree_propose()
 * runs them. A scoped change (corralctl config set) skips all of it. */
static int profile(void) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	_cleanup_(tree_leaves_done) tree_leaves leaves = {};
	_cleanup_(agree_delta_done) agree_delta d = {};
	agree_error err = {};
	int64_t a = mono_ns();

	if (agree_read_sync(client, PREFIX, false, &s, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		return -1;
	}
	double read = ms_since(&a);
	/* of which: the base's range alone (etcd, the gateway's JSON, base64) */
	char key[256];
	snprintf(key, sizeof key, PREFIX "/configs/%s/", s.delta.base_id ? s.delta.base_id : s.config_id);
	etcd_range_req req = { .key = key, .prefix = true, .revision = s.revision };
	etcd_sync sy = {};
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	a = mono_ns();
	if (etcd_range(client, &req, etcd_sync_cb, &sy, NULL) < 0 || etcd_wait(client, &sy, &resp) < 0)
		return -1;
	double range = ms_since(&a);
	json_auto_t *files = tree_copy(s.files);
	double copy = ms_since(&a);
	if (!files || tree_flatten(files, &leaves) < 0)
		return -1;
	double flatten = ms_since(&a);
	json_auto_t *diff = tree_diff(&s.leaves, &leaves);
	double dt = ms_since(&a);
	if (agree_delta_make(&s.leaves, s.config_id, &s.delta, &leaves, &d) < 0)
		return -1;
	bool worth = agree_delta_worth(&d, &leaves);
	double make = ms_since(&a);
	printf("%-28s   a whole read's steps: read %.1f ms (of which the base's range %.1f: %zu keys), "
	       "copy %.1f, flatten %.1f, diff %.1f, delta %.1f (%s)\n",
	       "", read, range, resp->n_kvs, copy, flatten, dt, make, worth ? "worth it" : "too big");
	return 0;
}

/* Changes to leaves 0..n-1 in a row: the cumulative delta grows with
 * each until it passes its cap (agree_delta_cap()), then a complete
 * folder, and again. */
static int sustained(unsigned n) {
	_cleanup_free_ int64_t *ns = calloc(n, sizeof *ns);
	unsigned deltas = 0;
	int64_t total = 0;

	if (!ns)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		set_n sn = { .value = "sustained" };
		bool delta = false;
		snprintf(sn.path, sizeof sn.path, "big/k%05u", i);
		int64_t a = mono_ns();
		if (propose(set_n_fn, &sn, false, &delta) < 0)
			return -1;
		ns[i] = mono_ns() - a;
		total += ns[i];
		deltas += delta;
	}
	int64_t last = ns[n - 1];
	qsort(ns, n, sizeof *ns, cmp64);
	printf("%-28s   %u changes to different leaves in a row (in process): mean %.1f ms, p50 %.1f, p99 %.1f, "
	       "max %.1f ms; %u deltas and %u complete folders (the last: %.1f ms)\n",
	       "", n, (double) total / n / 1e6, (double) ns[n / 2] / 1e6, (double) ns[(size_t) (n * 0.99)] / 1e6,
	       (double) ns[n - 1] / 1e6, deltas, n - deltas, (double) last / 1e6);
	return 0;
}

static int run_config(const char *name, fill f, unsigned rounds) {
	figures before, after, ctl;
	int64_t a = mono_ns();

	/* a fresh complete folder of this config, then its changes */
	if (propose(fill_fn, &f, true, NULL) < 0)
		return -1;
	double load = (double) (mono_ns() - a) / 1e6;
	if (time_sets(rounds, 0, &before) < 0 || time_sets(rounds, 1, &after) < 0 || time_sets(rounds, 2, &ctl) < 0)
		return -1;
	printf("%-28s | %9.1f ms | %7.1f / %7.1f ms | %7.1f / %7.1f ms (%u/%u deltas) | %7.1f / %7.1f ms\n", name, load,
	       before.p50, before.max, after.p50, after.max, after.deltas, rounds, ctl.p50, ctl.max);
	fflush(stdout);
	return profile();
}

int main(void) {
	unsigned leaves = (unsigned) env_int("BENCH_LEAVES", 5000), mb = (unsigned) env_int("BENCH_MB", 5);
	unsigned mb_leaves = (unsigned) env_int("BENCH_MB_LEAVES", 20000), rounds = (unsigned) env_int("BENCH_ROUNDS", 10);
	hx_etcd_options eo = { .extra_args = (char *const[]){ "--quota-backend-bytes=8589934592", NULL } };
	int rc = 1;

	if (hx_etcd_start(&etcd, &eo) < 0)
		return 1;
	char *eps[] = { (char *) hx_etcd_endpoint(etcd, 0), NULL };
	if (sd_event_new(&event) < 0 || etcd_client_new(&client, event, &(etcd_options){ .endpoints = eps }) < 0)
		goto out;

	char name1[64], name2[64];
	snprintf(name1, sizeof name1, "%u leaves of 10 B", leaves);
	size_t vlen = (size_t) mb * 1000000 / mb_leaves;
	vlen = vlen > 24 ? vlen - 18 : 8;       /* less the key: "big/k00000" and quotes */
	snprintf(name2, sizeof name2, "%.1f MB: %u leaves of %zu B", (double) mb_leaves * (vlen + 12) / 1e6, mb_leaves,
		 vlen + 2);
	printf("one `config set` (one leaf changed), %u rounds each; p50 / max\n", rounds);
	printf("%-28s | %12s | %-19s | %-35s | %s\n", "config", "first write", "complete (before)", "delta (after)",
	       "corralctl config set (delta)");
	/* three times the cap, plus one each: three complete folders */
	if (run_config(name1, (fill){ leaves, 8 }, rounds) < 0 || sustained(3 * ((unsigned) agree_delta_cap(leaves) + 1)) < 0 ||
	    run_config(name2, (fill){ mb_leaves, vlen }, rounds) < 0)
		goto out;
	rc = 0;
out:
	client = etcd_client_free(client);
	event = sd_event_unref(event);
	etcd = hx_etcd_free(etcd);
	return rc;
}
