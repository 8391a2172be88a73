/* test_fanout_requests.c — what one commit costs etcd per node, counted by
 * etcd itself (its /metrics), with real corrald processes:
 *
 *   per_commit   3 corrald render one file whose list a topology rule
 *                keeps; the test makes K commits of `current` (one txn
 *                each, its own cost subtracted) and counts the Range,
 *                Txn and Put requests etcd received per commit per node
 *                (lease keepalives aside). Bounds: issue 14's, at most
 *                1.2 Range and 1 Put;
 *   missed       a node that misses the watch events of several commits
 *                (frozen while they are made and etcd compacts them away)
 *                still converges to the latest config, and a node that
 *                saw them all writes its status once per change and not
 *                again when nothing in it changed. */
#include <jansson.h>
#include <signal.h>

#include "agree.h"
#include "etcd-test.h"
#include "etcd-metrics.h"
#include "fleet-test.h"
#include "keys.h"

#define PREFIX "/corral/t"
#define N      3
#define K      5

typedef fleet_node node;

static hx_etcd *etcd;
static char *dir;
static node nodes[N];
static et obs;                  /* the test's own etcd client */

static void node_start(node *n) {
	fleet_node_start(n);
}

static void up(void) {
	et_fixture_up(&etcd, &dir, "fanout", 1);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoints(etcd), NULL), 0);
	for (unsigned i = 0; i < N; i++)
		fleet_node_init(&nodes[i], dir, hx_etcd_endpoints(etcd), hx_fmt("n%u", i + 1), hx_fmt("127.0.0.%u", 31 + i),
				"debounce: 20ms\nmax_wait: 200ms\n");
}

static void down(void) {
	for (unsigned i = 0; i < N; i++)
		fleet_node_done(&nodes[i], "CORRAL_FANOUT_LOGS");
	et_close(&obs);
	et_fixture_down(&etcd, &dir);
}

TestSuite(fanout, .init = up, .fini = down, .timeout = 120);

/* ---- etcd's counters (etcd-metrics.h) ----------------------------------------- */

typedef em_counts counts;

static counts settled(uint64_t quiet) {
	return em_settled(etcd, &obs, quiet, 30 * USEC_PER_SEC);
}

/* ---- the cluster's state ----------------------------------------------------------- */

/* Every node's file lists all N nodes and (when title) has that title. */
static bool all_rendered(void *ud) {
	const char *title = ud;

	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *text = hx_read_file(nodes[i].file, NULL);
		json_auto_t *doc = text ? json_loads(text, 0, NULL) : NULL;
		if (json_array_size(json_object_get(doc, "workers")) != N)
			return false;
		if (title && !streq_ptr(json_string_value(json_object_get(doc, "title")), title))
			return false;
	}
	return true;
}

/* The status record of n as etcd holds it: value and version. */
static json_t *status_of(const node *n, int64_t *version) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/status/%s", n->id);
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&obs, &(etcd_range_req){ .key = key });

	*version = 0;
	if (!r || r->error.code < 0 || r->n_kvs == 0)
		return NULL;
	*version = r->kvs[0].version;
	return json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
}

typedef struct applied_check {
	const char *id;
	unsigned first, last;           /* nodes [first, last) */
} applied_check;

static bool all_applied(void *ud) {
	applied_check *c = ud;

	for (unsigned i = c->first; i < c->last; i++) {
		int64_t v;
		json_auto_t *st = status_of(&nodes[i], &v);
		if (!streq_ptr(json_string_value(json_object_get(st, "applied")), c->id))
			return false;
	}
	return true;
}

/* ---- commits ------------------------------------------------------------------------ */

/* The snapshot `current` names, read by the test before it counts. */
static void read_snapshot(agree_snapshot *s) {
	agree_error err = {};
	cr_assert_eq(agree_read_sync(obs.client, PREFIX, false, s, &err), 0, "%s", err.message);
	cr_assert_not_null(s->config_id);
}

/* One commit in one txn, as corralctl's would be when the config fits:
 * the snapshot's leaves with w/title set to `title` in a new folder, and
 * `current` naming it, compared on the mod_revision last seen. Updates s's
 * config id and current_mod_revision. */
static void commit(agree_snapshot *s, const char *id, const char *title) {
	size_t n = s->leaves.n + 2, k = 0;
	_cleanup_free_ etcd_op *ops = calloc(n, sizeof *ops);
	char **keys = calloc(n, sizeof *keys);
	_cleanup_free_ char *current = keys_one_of(PREFIX, KEYS_CURRENT), *value = hx_fmt("\"%s\"", title);
	bool have_title = false;

	cr_assert(ops && keys && current && value);
	for (size_t i = 0; i < s->leaves.n; i++) {
		const tree_leaf *l = &s->leaves.v[i];
		bool is_title = streq(l->path, "w/title");
		have_title = have_title || is_title;
		keys[k] = keys_config_leaf(PREFIX, id, l->path);
		ops[k] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = keys[k], .value = is_title ? value : l->value } };
		k++;
	}
	if (!have_title) {
		keys[k] = keys_config_leaf(PREFIX, id, "w/title");
		ops[k] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = keys[k], .value = value } };
		k++;
	}
	ops[k++] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = current, .value = id } };
	etcd_compare cmp = { .key = current, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
			     .number = s->current_mod_revision };
	_cleanup_(etcd_response_freep) etcd_response *r = et_txn(&obs, &(etcd_txn_req){ &cmp, 1, ops, k, NULL, 0 });
	cr_assert(r && r->error.code == 0 && r->succeeded, "the commit of %s failed", id);
	s->current_mod_revision = r->header.revision;
	free(s->config_id);
	s->config_id = strdup(id);
	for (size_t i = 0; i < k; i++)
		free(keys[i]);
	free(keys);
}

static void start_all_and_settle(agree_snapshot *s) {
	for (unsigned i = 0; i < N; i++)
		node_start(&nodes[i]);
	cr_assert(hx_wait_until(all_rendered, NULL, 30 * USEC_PER_SEC), "the nodes never all joined the list");
	read_snapshot(s);
	applied_check c = { s->config_id, 0, N };
	cr_assert(hx_wait_until(all_applied, &c, 10 * USEC_PER_SEC), "not every node applied %s", s->config_id);
}

Test(fanout, requests_per_commit_per_node) {
	agree_snapshot s = {};

	start_all_and_settle(&s);
	/* The leader's collection runs 2 s after a change: wait it out. */
	counts before = settled(3 * USEC_PER_SEC);
	for (unsigned k = 1; k <= K; k++) {
		_cleanup_free_ char *id = hx_fmt("fanout_%u", k), *title = hx_fmt("c%u", k);
		commit(&s, id, title);
		cr_assert(hx_wait_until(all_rendered, title, 10 * USEC_PER_SEC), "commit %u did not reach every node", k);
	}
	counts after = settled(3 * USEC_PER_SEC);
	agree_snapshot_done(&s);

	double per[M_MAX];
	for (unsigned i = 0; i < M_MAX; i++)
		per[i] = (after.v[i] - before.v[i] - (i == M_TXN ? K : 0)) / (K * N);
	cr_log_info("per commit per node (%u commits, %u nodes): Range %.2f Txn %.2f Put %.2f DeleteRange %.2f "
		    "(LeaseKeepAlive %.2f Watch %.2f)",
		    K, N, per[M_RANGE], per[M_TXN], per[M_PUT], per[M_DELETE], per[M_KEEPALIVE], per[M_WATCH]);
	fprintf(stderr,
		"fanout: per commit per node: Range %.2f Txn %.2f Put %.2f DeleteRange %.2f (LeaseKeepAlive %.2f Watch "
		"%.2f)\n",
		per[M_RANGE], per[M_TXN], per[M_PUT], per[M_DELETE], per[M_KEEPALIVE], per[M_WATCH]);
	cr_assert_leq(per[M_RANGE], 1.2, "Range per commit per node: %.2f", per[M_RANGE]);
	cr_assert_leq(per[M_PUT], 1.0, "Put per commit per node: %.2f", per[M_PUT]);
	cr_assert_leq(per[M_TXN], 0.5, "Txn per commit per node: %.2f", per[M_TXN]);
}

/* The record says nothing new after an apply that changed nothing (a
 * SIGHUP re-reads and re-renders): it is not written again. */
Test(fanout, status_not_written_when_nothing_changed) {
	agree_snapshot s = {};
	int64_t v0, v1;

	start_all_and_settle(&s);
	agree_snapshot_done(&s);
	counts before = settled(3 * USEC_PER_SEC);
	json_auto_t *st0 = status_of(&nodes[0], &v0);
	cr_assert_gt(v0, 0);

	cr_assert_eq(hx_proc_signal(nodes[0].proc, SIGHUP), 0);
	/* The apply ran: it read `current` and the snapshot again. */
	counts after = settled(2 * USEC_PER_SEC);
	cr_assert_geq(after.v[M_RANGE] - before.v[M_RANGE], 2, "no apply after SIGHUP");
	json_auto_t *st = status_of(&nodes[0], &v1);
	_cleanup_free_ char *t0 = json_dumps(st0, JSON_SORT_KEYS), *t1 = json_dumps(st, JSON_SORT_KEYS);
	cr_assert_eq(v1, v0, "the status record was written again (version %lld -> %lld): %s -> %s", (long long) v0,
		     (long long) v1, t0, t1);
	cr_assert(json_is_true(json_object_get(st, "ok")));
}

/* etcd compacts everything before its latest revision, after one more
 * write that is not `current` (so `current`'s last event is compacted too). */
static void compact_all(void) {
	cr_assert_eq(et_put(&obs, PREFIX "/unrelated", "x", 0), 0);
	_cleanup_free_ char *body = NULL, *req = hx_fmt("{\"revision\": \"%lld\", \"physical\": true}",
							(long long) et_revision(etcd));
	long code = 0;
	cr_assert_eq(hx_etcd_request(etcd, 0, "/v3/kv/compaction", req, &body, &code), 0);
	cr_assert_eq(code, 200, "compaction: %s", body);
}

static void converge_to(const char *id, const char *title) {
	cr_assert(hx_wait_until(all_rendered, (void *) title, 20 * USEC_PER_SEC), "not every node rendered %s", id);
	applied_check c = { id, 0, N };
	cr_assert(hx_wait_until(all_applied, &c, 10 * USEC_PER_SEC), "not every node reports %s applied", id);
}

/* Node 3 frozen (its watch cut by an etcd restart too, with cut_watch)
 * while three commits "<id>_1".."<id>_3" are made and compacted away;
 * thawed, it must render the last. */
static void frozen_through_compaction(bool cut_watch, const char *id, const char *title) {
	agree_snapshot s = {};

	start_all_and_settle(&s);
	cr_assert_eq(hx_proc_signal(nodes[2].proc, SIGSTOP), 0);
	if (cut_watch) {
		cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGTERM), 0);
		cr_assert_eq(hx_etcd_start_member(etcd, 0), 0);
	}
	for (unsigned k = 1; k <= 3; k++) {
		_cleanup_free_ char *kid = hx_fmt("%s_%u", id, k), *ktitle = hx_fmt("%s%u", title, k);
		commit(&s, kid, ktitle);
	}
	compact_all();
	cr_assert_eq(hx_proc_signal(nodes[2].proc, SIGCONT), 0);
	_cleanup_free_ char *last = hx_fmt("%s_3", id), *last_title = hx_fmt("%s3", title);
	converge_to(last, last_title);
	agree_snapshot_done(&s);
}

/* Node 3 misses the watch events of three commits: frozen, its watch is
 * cut by a restart of etcd, the commits are made and compacted away;
 * thawed, its watch cannot resume (compacted), it reads afresh and renders
 * the latest. */
Test(fanout, missed_watch_events_converge) {
	frozen_through_compaction(true, "missed", "m");
}

/* The frozen node's stream already holds the events of the commits made
 * meanwhile, but etcd compacts their revisions before it reads the
 * snapshot they name: the read at the watch's revision fails, and it
 * reads `current` afresh. */
Test(fanout, read_at_compacted_revision_converges) {
	frozen_through_compaction(false, "late", "l");
}
