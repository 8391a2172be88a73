/* test_upkeep.c — the leader's topology upkeep at more than a handful of
 * nodes, with real etcd and corrald processes, counted by etcd itself
 * (its /metrics, etcd-metrics.h):
 *
 *   joins      N corrald with a topology rule start at once: every file
 *              lists all N after a handful of commits of `current` (the
 *              leader batches the joins it sees on its watch of nodes/;
 *              no node proposes its own entry), and start-up costs etcd
 *              O(N) Range requests, a few per node, not one read of
 *              nodes/ per node;
 *   leave      a node that dies (SIGKILL) leaves every list when its
 *              lease expires: the leader's watch sees the DELETE, one
 *              commit;
 *   failover   the leader dies after an operator emptied the list: the
 *              new leader reads nodes/ once and puts the live nodes back,
 *              in one commit. */
#include <jansson.h>
#include <signal.h>

#include "etcd-test.h"
#include "etcd-metrics.h"
#include "fleet-test.h"

#define PREFIX "/corral/t"
#define N      12

typedef fleet_node node;

static hx_etcd *etcd;
static char *dir;
static node nodes[N];
static et obs;                  /* the test's own etcd client */

static void up(void) {
	et_fixture_up(&etcd, &dir, "upkeep", 1);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoints(etcd), NULL), 0);
	for (unsigned i = 0; i < N; i++)
		fleet_node_init(&nodes[i], dir, hx_etcd_endpoints(etcd), hx_fmt("n%02u", i + 1), hx_fmt("127.0.1.%u", 1 + i),
				"debounce: 100ms\nmax_wait: 1s\n");
}

static void down(void) {
	for (unsigned i = 0; i < N; i++)
		fleet_node_done(&nodes[i], "CORRAL_UPKEEP_LOGS");
	et_close(&obs);
	et_fixture_down(&etcd, &dir);
}

TestSuite(upkeep, .init = up, .fini = down, .timeout = 120);

/* ---- the cluster's state ----------------------------------------------------------- */

/* Every live node's file lists exactly the live nodes' entries. */
static bool all_listed(void *ud) {
	size_t live = 0;

	for (unsigned i = 0; i < N; i++)
		live += !nodes[i].dead;
	for (unsigned i = 0; i < N; i++) {
		if (nodes[i].dead)
			continue;
		_cleanup_free_ char *text = hx_read_file(nodes[i].file, NULL);
		json_auto_t *doc = text ? json_loads(text, 0, NULL) : NULL;
		json_t *workers = json_object_get(doc, "workers");
		if (json_array_size(workers) != live)
			return false;
		for (unsigned k = 0; k < N; k++) {
			bool found = false;
			size_t j;
			json_t *e;
			json_array_foreach (workers, j, e)
				found = found || streq_ptr(json_string_value(json_array_get(e, 0)), nodes[k].address);
			if (found == nodes[k].dead)
				return false;
		}
	}
	return true;
}

/* How often `current` was written since it was created. */
static int64_t current_version(void) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&obs, &(etcd_range_req){ .key = PREFIX "/current" });

	cr_assert(r && r->error.code == 0);
	return r->n_kvs ? r->kvs[0].version : 0;
}

/* The node holding the leader key. */
static node *leader_node(void) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, PREFIX "/leader");
	json_auto_t *j = v ? json_loads(v, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "node_id"));

	for (unsigned i = 0; i < N; i++)
		if (id && streq(id, nodes[i].id))
			return &nodes[i];
	cr_assert_fail("no leader (%s)", v ? v : "no key");
	return NULL;
}

static size_t count_in_logs(const char *needle) {
	size_t n = 0;
	for (unsigned i = 0; i < N; i++)
		n += hx_count_in_file(nodes[i].log, needle);
	return n;
}

/* Starts every node; returns once every file lists them all and etcd is
 * quiet. */
static em_counts start_all(em_counts *before) {
	*before = em_metrics(etcd);
	uint64_t t0 = hx_now_usec();
	for (unsigned i = 0; i < N; i++)
		fleet_node_start(&nodes[i]);
	cr_assert(hx_wait_until(all_listed, NULL, 60 * USEC_PER_SEC), "the nodes never all joined the list");
	cr_log_info("%u nodes listed everywhere %.2f s after the first start", N, (hx_now_usec() - t0) / 1e6);
	return em_settled(etcd, &obs, 1500 * USEC_PER_MSEC, 30 * USEC_PER_SEC);
}

static void kill_node(node *n) {
	cr_assert_eq(hx_proc_signal(n->proc, SIGKILL), 0);
	n->proc = hx_proc_free(n->proc);
	n->dead = true;
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(upkeep, joins_are_a_handful_of_commits_and_o_n_reads) {
	em_counts before, after = start_all(&before);
	int64_t commits = current_version();
	double range = after.v[M_RANGE] - before.v[M_RANGE], txn = after.v[M_TXN] - before.v[M_TXN];

	fprintf(stderr, "upkeep: %u nodes joined with %lld commits of current; start-up cost Range %.0f (%.2f per node) "
			"Txn %.0f (%.2f per node)\n",
		N, (long long) commits, range, range / N, txn, txn / N);
	cr_assert_leq(commits, 4, "%lld commits of current for %u joins", (long long) commits, N);
	cr_assert_leq(range / N, 4.0, "Range per node during start-up: %.2f", range / N);
	/* Only the leader read nodes/, once. */
	cr_assert_eq(count_in_logs("live nodes read from"), 1, "nodes/ was read more than once");
}

Test(upkeep, a_dead_node_leaves_every_list_in_one_commit) {
	em_counts before;
	(void) start_all(&before);
	int64_t v0 = current_version();
	node *victim = leader_node() == &nodes[N - 1] ? &nodes[0] : &nodes[N - 1];

	kill_node(victim);
	/* Its lease (2 s) expires, the leader's watch sees the DELETE. */
	cr_assert(hx_wait_until(all_listed, NULL, 15 * USEC_PER_SEC), "%s never left the lists", victim->id);
	(void) em_settled(etcd, &obs, 1500 * USEC_PER_MSEC, 30 * USEC_PER_SEC);
	cr_assert_eq(current_version(), v0 + 1, "commits of current for one leave: %lld",
		     (long long) (current_version() - v0));
}

Test(upkeep, a_new_leader_reads_nodes_once_and_repairs_the_lists) {
	em_counts before;
	(void) start_all(&before);
	node *old = leader_node();
	size_t reads = count_in_logs("live nodes read from");

	/* The leader is frozen, so nothing repairs the list the operator
	 * empties; then it dies. */
	cr_assert_eq(hx_proc_signal(old->proc, SIGSTOP), 0);
	char *const args[] = { "config", "set", "w/workers", "[]", NULL };
	cr_assert_eq(hx_corralctl(hx_etcd_endpoints(etcd), NULL, args), 0);
	int64_t v0 = current_version();
	em_counts mid = em_metrics(etcd);
	kill_node(old);

	uint64_t t0 = hx_now_usec();
	cr_assert(hx_wait_until(all_listed, NULL, 20 * USEC_PER_SEC), "the new leader did not repair the lists");
	cr_log_info("repaired %.2f s after the old leader died", (hx_now_usec() - t0) / 1e6);
	em_counts after = em_settled(etcd, &obs, 1500 * USEC_PER_MSEC, 30 * USEC_PER_SEC);
	node *now = leader_node();
	cr_assert_neq(now, old);
	cr_assert_eq(count_in_logs("live nodes read from"), reads + 1, "the new leader read nodes/ more than once");
	cr_assert_eq(hx_count_in_file(now->log, "live nodes read from"), 1);
	/* One repair commit; perhaps one more if the old leader's record
	 * expired after the first. */
	int64_t commits = current_version() - v0;
	cr_assert(commits >= 1 && commits <= 2, "commits of current for the repair: %lld", (long long) commits);
	double range = after.v[M_RANGE] - mid.v[M_RANGE];
	fprintf(stderr, "upkeep: fail-over: %lld commits, Range %.0f for %u live nodes\n", (long long) commits, range,
		N - 1);
	/* Each node reads each new snapshot once (at most two), the new
	 * leader nodes/ once, the snapshot for its proposal, and a listing
	 * for the collection: O(N), not a read of nodes/ per node. */
	cr_assert_leq(range, 2.0 * (N - 1) + 8, "Range during fail-over: %.0f", range);
}
