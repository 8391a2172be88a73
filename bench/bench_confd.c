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
 * is printed beside. Then VmRSS, RssAnon and CPU of both.
 *
 * Then memory (BENCH_MEM, 1; 0 skips it): each is given the CMS sample
 * config (tests/data/cms, one leaf for confd: the JSON text) and, after
 * that, a config of BENCH_BIG_MB (5) MB in leaves of 250 bytes (for confd,
 * one key each under /confd-bench/big/); once both files show it and
 * BENCH_MEM_IDLE (3) s passed, VmRSS and RssAnon of both, beside the size
 * of the files they rendered. corrald twice: the one timed above (the
 * leader) and a second started now, that only renders (what every other
 * node of a fleet does). Not a test. */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bench.h"
#include "fanout.h"

#define CONFD_DIR "/confd-bench"
#define CONFD_KEY CONFD_DIR "/round"
#define LEAF_BYTES 250

/* nodes[0] is timed (alone: the leader); nodes[1] joins for the memory
 * phase, a node that is not the leader. */
static bf_node nodes[2], cf;
static bf_node *const node = &nodes[0], *const follower = &nodes[1];

static bool shown(void *ud) {
	bf_node *n = ud;
	bf_check_dirty();
	return n->seen_ns != 0;
}

/* Runs the loop until n shows B.round or secs pass. */
static bool wait_seen_for(bf_node *n, int secs) {
	int64_t end = mono_ns() + secs * (int64_t) 1000000000;
	while (!B.stop && mono_ns() < end) {
		if (shown(n))
			return true;
		(void) sd_event_run(B.event, 20 * USEC_PER_MSEC);
	}
	return shown(n);
}

static bool wait_seen(bf_node *n) {
	return wait_seen_for(n, 10);
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
	/* The whole folder: the memory phase gives it leaves under big/. */
	_cleanup_free_ char *toml_text = hx_fmt("[template]\nsrc = \"round.tmpl\"\ndest = \"%s\"\nkeys = [\"%s\"]\n",
						cf.file, CONFD_DIR);
	if (!cf.id || !cf.dir || !cf.base || mkdir(confdir, 0755) < 0 || mkdir(confd_d, 0755) < 0 ||
	    mkdir(tmpl_d, 0755) < 0 || mkdir(out, 0755) < 0 || hx_write_file(toml, toml_text) < 0 ||
	    hx_write_file(tmpl, "round={{getv \"" CONFD_KEY "\"}}\n{{range gets \"" CONFD_DIR
					  "/big/*\"}}{{.Key}}={{.Value}}\n{{end}}") < 0 || bf_watch(&cf) < 0)
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

/* ---- memory -------------------------------------------------------------------- */

typedef struct tree_change {
	json_t *tree;
	long round;
} tree_change;

/* files/f = a copy of the tree, with "round". */
static int set_tree(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	const tree_change *c = userdata;
	json_t *f = json_deep_copy(c->tree);

	(void) s, (void) err, (void) err_size;
	if (!f || json_object_set_new(f, "round", json_integer(c->round)) < 0) {
		json_decref(f);
		return -ENOMEM;
	}
	return json_object_set_new(files, BF_FILE, f) < 0 ? -ENOMEM : 0;
}

static int commit_tree(json_t *tree, long round) {
	tree_change c = { tree, round };
	return bf_propose(set_tree, &c, round, NULL);
}

/* confd's leaves: one txn per 128 puts (etcd's default op limit). */
static int confd_put_many(char **keys, char **vals, size_t n) {
	etcd_op ops[128];

	for (size_t i = 0; i < n;) {
		size_t k = 0;
		for (; k < ELEMENTSOF(ops) && i < n; k++, i++)
			ops[k] = (etcd_op) { .type = ETCD_OP_PUT, .put = { .key = keys[i], .value = vals[i] } };
		etcd_txn_req req = { .success = ops, .n_success = k };
		etcd_sync sy = {};
		int rc = etcd_txn(B.client, &req, etcd_sync_cb, &sy, NULL);
		rc = rc < 0 ? rc : etcd_wait(B.client, &sy, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static long file_size(const char *path) {
	struct stat st;
	return stat(path, &st) < 0 ? -1 : (long) st.st_size;
}

/* Gives both what they render, waits until both show round, lets them
 * idle, prints their private memory beside the rendered files' size. */
static int mem_phase(const char *what, json_t *tree, char **keys, char **vals, size_t n, long round) {
	char v[32];

	B.round = round;
	node->seen_ns = follower->seen_ns = cf.seen_ns = 0;
	snprintf(v, sizeof v, "%ld", round);
	if (commit_tree(tree, round) < 0 || confd_put_many(keys, vals, n) < 0)
		return -1;
	etcd_put_req req = { .key = CONFD_KEY, .value = v };
	etcd_sync sy = {};
	int rc = etcd_put(B.client, &req, etcd_sync_cb, &sy, NULL);
	if ((rc < 0 ? rc : etcd_wait(B.client, &sy, NULL)) < 0)
		return -1;
	bf_node *all[] = { node, follower, &cf };
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		if (!wait_seen_for(all[i], 120)) {
			fprintf(stderr, "bench: %s: %s did not render it\n", what, all[i]->id);
			return -1;
		}
	bf_run_for((uint64_t) env_int("BENCH_MEM_IDLE", 3) * USEC_PER_SEC);
	printf("memory, %s (files: corrald %.1f kB, confd %.1f kB):\n", what, file_size(node->file) / 1e3,
	       file_size(cf.file) / 1e3);
	const char *label[] = { "corrald, the leader", "corrald, not leader", "confd" };
	for (size_t i = 0; i < ELEMENTSOF(all); i++) {
		long rss, anon;
		bf_rss(hx_proc_pid(all[i]->proc), &rss, &anon);
		printf("  %-20s RssAnon %6.2f MiB, VmRSS %5.1f MiB\n", label[i], anon / 1024.0, rss / 1024.0);
	}
	return 0;
}

/* The second node, after the rounds (they time one corrald against one
 * confd): it joins a cluster the first already leads. */
static int follower_start(void) {
	if (bf_node_init(follower, 1, bf_debounce_yaml("0s")) < 0 || bf_node_start(follower) < 0 ||
	    !wait_seen(follower)) {
		fprintf(stderr, "bench: the second corrald did not render round %ld\n", B.round);
		return -1;
	}
	return 0;
}

static int memory(void) {
	_cleanup_free_ char *path = hx_fmt("%s/tests/data/cms/cms.conf.sample-2025-06-09", hx_srcdir());
	json_error_t e;
	json_auto_t *cms = json_load_file(path, 0, &e);
	_cleanup_free_ char *cms_text = cms ? json_dumps(cms, JSON_COMPACT) : NULL;
	char *ck = (char *) CONFD_DIR "/big/cms";
	long mb = env_int("BENCH_BIG_MB", 5);
	size_t n = (size_t) mb * 1000000 / LEAF_BYTES;
	json_auto_t *big = json_object();
	_cleanup_free_ char *what = hx_fmt("a %ld MB config (%zu leaves)", mb, n);
	char **keys = calloc(n, sizeof *keys), **vals = calloc(n, sizeof *vals);
	int r = -1;

	if (!cms_text || !big || !keys || !vals) {
		fprintf(stderr, "bench: %s: %s\n", path, cms ? "out of memory" : e.text);
		goto out;
	}
	if (follower_start() < 0)
		goto out;
	if (mem_phase("CMS config", cms, &ck, &cms_text, 1, 1001) < 0)
		goto out;
	/* Leaves of LEAF_BYTES in the rendered JSON ("kNNNNNN": "...", ). */
	for (size_t i = 0; i < n; i++) {
		char k[24], val[LEAF_BYTES];
		snprintf(k, sizeof k, "k%06zu", i);
		memset(val, 'a' + (int) (i % 26), sizeof val - 16);
		val[sizeof val - 16] = '\0';
		keys[i] = hx_fmt(CONFD_DIR "/big/%s", k);
		vals[i] = strdup(val);
		if (!keys[i] || !vals[i] || json_object_set_new(big, k, json_string(val)) < 0)
			goto out;
	}
	etcd_delete_req del = { .key = ck };
	etcd_sync sy = {};
	r = etcd_delete(B.client, &del, etcd_sync_cb, &sy, NULL);
	if ((r < 0 ? r : etcd_wait(B.client, &sy, NULL)) < 0)
		goto out;
	r = mem_phase(what, big, keys, vals, n, 1002);
out:
	for (size_t i = 0; keys && vals && i < n; i++) {
		free(keys[i]);
		free(vals[i]);
	}
	free(keys);
	free(vals);
	return r;
}

static int rounds(unsigned count) {
	_cleanup_free_ int64_t *lc = calloc(count, sizeof *lc), *lf = calloc(count, sizeof *lf),
			       *wc = calloc(count, sizeof *wc), *wf = calloc(count, sizeof *wf);
	size_t nc = 0, nf = 0;

	if (!lc || !lf || !wc || !wf)
		return -1;
	uint64_t tc = bf_cpu_ns(hx_proc_pid(node->proc)), tf = bf_cpu_ns(hx_proc_pid(cf.proc));
	for (unsigned r = 1; r <= count && !bf_over(); r++) {
		B.round = r;
		cf.seen_ns = node->seen_ns = 0;
		int64_t t0 = mono_ns();
		if (put_round(r, &wf[nf]) < 0)
			return -1;
		if (wait_seen(&cf))
			lf[nf++] = cf.seen_ns - t0;
		bf_run_for(50 * USEC_PER_MSEC);
		t0 = mono_ns();
		if (bf_commit(r, &wc[nc]) < 0)
			return -1;
		if (wait_seen(node))
			lc[nc++] = node->seen_ns - t0;
		bf_run_for(50 * USEC_PER_MSEC);
	}
	report("confd", lf, nf, wf, "etcd put");
	report("corrald", lc, nc, wc, "commit");
	footprint("confd", &cf, tf);
	footprint("corrald", node, tc);
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
	if (bf_setup_common() < 0 || bf_node_init(node, 0, bf_debounce_yaml("0s")) < 0 || bf_node_start(node) < 0 ||
	    confd_start(bin) < 0) {
		fprintf(stderr, "bench: set-up failed\n");
		goto out;
	}
	B.round = 0;
	if (!wait_seen(node) || !wait_seen(&cf)) {
		fprintf(stderr, "bench: %s did not render the first value\n", node->seen_ns ? "confd" : "corrald");
		hx_log_tail(node->seen_ns ? cf.log : node->log, 20);
		goto out;
	}
	bf_run_for(500 * USEC_PER_MSEC);        /* start-up's trailing writes */
	printf("side by side on one etcd: confd (%s) and one corrald, one watched value rendered to a file\n", bin);
	r = rounds((unsigned) env_int("BENCH_ROUNDS", 50)) < 0 ? 1 : 0;
	if (r == 0 && env_int("BENCH_MEM", 1) && memory() < 0)
		r = 1;
out:
	bf_node_done(&cf);
	bf_teardown(nodes, ELEMENTSOF(nodes));
	return r;
}
