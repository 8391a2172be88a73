/* test_repair.c — what corrald repairs on its own, against real etcd and
 * corrald processes:
 *
 *   lease_loss       a node whose lease is gone (revoked with etcdctl, or
 *                    expired while corrald was stopped past its TTL) puts
 *                    its node record, status and load back on a new lease
 *                    (the leader's watch lists it again) and campaigns
 *                    again, and says so in one log line;
 *   topology_repair  after an import drops a managed list's entries, the
 *                    leader's upkeep puts every live node back, in one
 *                    fenced commit. */
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include "etcd-test.h"
#include "fleet-test.h"

#define PREFIX "/corral/t"
#define N 3
/* "A second or two" (docs/reconcile.md), with room for a loaded machine. */
#define REPAIR_USEC (4 * USEC_PER_SEC)

typedef fleet_node node;

static hx_etcd *etcd;
static char *dir;
static node nodes[N];
static char *loads[N];          /* each node's load_command reads its file */
static et obs;                  /* the test's own etcd client */

/* Node i renders file "w" (with its "workers" list kept by a topology rule)
 * and reports load from a file. */
static void node_init(unsigned i) {
	loads[i] = hx_fmt("%s/n%u.load", dir, i + 1);
	cr_assert_eq(hx_write_file(loads[i], "{\"jobs\": 1, \"capacity\": 4}\n"), 0);
	_cleanup_free_ char *tuning = hx_fmt("load_command: cat %s\n"
					     "load_interval: 1s\n"
					     "debounce: 50ms\n"
					     "max_wait: 500ms\n",
					     loads[i]);
	fleet_node_init(&nodes[i], dir, hx_etcd_endpoints(etcd), hx_fmt("n%u", i + 1), hx_fmt("127.0.0.%u", 21 + i),
			tuning);
}

static void node_start(node *n) {
	fleet_node_start(n);
}

static void up(void) {
	et_fixture_up(&etcd, &dir, "repair", 1);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoints(etcd), NULL), 0);
	for (unsigned i = 0; i < N; i++)
		node_init(i);
}

static void down(void) {
	for (unsigned i = 0; i < N; i++) {
		fleet_node_done(&nodes[i], "CORRAL_REPAIR_LOGS");
		free(loads[i]);
		loads[i] = NULL;
	}
	et_close(&obs);
	et_fixture_down(&etcd, &dir);
}

TestSuite(lease_loss, .init = up, .fini = down, .timeout = 90);
TestSuite(topology_repair, .init = up, .fini = down, .timeout = 90);

static size_t count_in_logs(const char *needle) {
	size_t n = 0;
	for (unsigned i = 0; i < N; i++)
		n += hx_count_in_file(nodes[i].log, needle);
	return n;
}

/* The key's kv (lease, revisions), or a zeroed one when absent. */
static etcd_kv kv_of(const char *key, char **value) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&obs, &(etcd_range_req){ .key = key });
	etcd_kv kv = {};

	if (value)
		*value = NULL;
	if (!r || r->error.code < 0 || r->n_kvs == 0)
		return kv;
	kv = r->kvs[0];
	if (value)
		*value = strdup(kv.value ? kv.value : "");
	kv.key = kv.value = NULL;
	return kv;
}

static bool lease_alive(int64_t lease) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *r = NULL;

	if (lease == 0 || etcd_lease_ttl(obs.client, lease, false, etcd_sync_cb, &s, NULL) < 0 ||
	    etcd_wait(obs.client, &s, &r) < 0)
		return false;
	return r->ttl > 0;
}

static int64_t key_lease(const char *what, const node *n) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/%s/%s", what, n->id);
	return kv_of(key, NULL).lease;
}

/* Does the rendered file of n list the worker entry of every node in
 * want[0..n_want)? */
static bool file_lists(const node *n, const node *const *want, size_t n_want) {
	_cleanup_free_ char *text = hx_read_file(n->file, NULL);
	json_auto_t *doc = text ? json_loads(text, 0, NULL) : NULL;
	json_t *workers = json_object_get(doc, "workers");

	if (json_array_size(workers) != n_want)
		return false;
	for (size_t i = 0; i < n_want; i++) {
		bool found = false;
		size_t k;
		json_t *e;
		json_array_foreach (workers, k, e)
			if (streq_ptr(json_string_value(json_array_get(e, 0)), want[i]->address) &&
			    json_integer_value(json_array_get(e, 1)) == 26000)
				found = true;
		if (!found)
			return false;
	}
	return true;
}

/* ---- lease loss ------------------------------------------------------------------ */

typedef struct attach_check {
	const node *n;
	int64_t old_lease, old_leader_lease;
	int64_t lease;                  /* out: the new lease */
} attach_check;

/* Everything that hangs on n1's lease is back on one live lease other than
 * the old one: node record, status, load; its entry is in the rendered
 * list; it holds the leader key on a live lease of its own (not the one
 * lost, when that one was lost too). */
static bool reattached(void *ud) {
	attach_check *c = ud;
	const node *n = c->n;
	int64_t lease = key_lease("nodes", n);

	if (lease == 0 || lease == c->old_lease || !lease_alive(lease))
		return false;
	if (key_lease("status", n) != lease || key_lease("load", n) != lease)
		return false;
	if (!file_lists(n, &n, 1))
		return false;
	_cleanup_free_ char *leader = NULL;
	etcd_kv lk = kv_of(PREFIX "/leader", &leader);
	if (!leader || !strstr(leader, n->id) || lk.lease == c->old_leader_lease || !lease_alive(lk.lease))
		return false;
	c->lease = lease;
	return true;
}

/* n1 alone, fully attached: record, status, load, list entry, leader. */
static void one_node_attached(attach_check *c) {
	node *n = &nodes[0];

	node_start(n);
	*c = (attach_check){ .n = n, .old_lease = -1, .old_leader_lease = -1 };
	cr_assert(hx_wait_until(reattached, c, 20 * USEC_PER_SEC), "n1 never registered with status, load and list");
	c->old_lease = c->lease;
	c->old_leader_lease = kv_of(PREFIX "/leader", NULL).lease;
	cr_assert_neq(c->old_leader_lease, c->old_lease, "the campaign has a lease of its own");
	cr_assert_eq(hx_count_in_file(n->log, "again on lease"), 0);
}

static bool reattach_logged(void *ud) {
	return hx_count_in_file(ud, "again on lease") >= 1;
}

/* The one log line, once: give a second log line the time to come. */
static void assert_one_line(const node *n) {
	cr_assert(hx_wait_until(reattach_logged, n->log, 2 * USEC_PER_SEC), "no log line about the lease loss");
	et_run_for(&obs, 1500 * USEC_PER_MSEC);
	cr_assert_eq(hx_count_in_file(n->log, "again on lease"), 1, "lease loss logged more than once");
}

static void revoke_lease(int64_t lease) {
	char id[32];
	snprintf(id, sizeof id, "%llx", (unsigned long long) lease);
	char *const args[] = { "lease", "revoke", id, NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0, "etcdctl lease revoke %s", id);
}

static void assert_reattached(attach_check *c) {
	uint64_t t0 = hx_now_usec();
	cr_assert(hx_wait_until(reattached, c, 5 * USEC_PER_SEC),
		  "not everything came back on a new lease (nodes %llx status %llx load %llx)",
		  (unsigned long long) key_lease("nodes", c->n), (unsigned long long) key_lease("status", c->n),
		  (unsigned long long) key_lease("load", c->n));
	cr_log_info("everything back on the new lease after %.2f s", (hx_now_usec() - t0) / 1e6);
	assert_one_line(c->n);
	/* And it stays: nothing is left on a lease kept by no one. */
	cr_assert(reattached(c), "the new lease did not hold");
}

Test(lease_loss, revoked_node_lease_reattaches_everything) {
	attach_check c;
	one_node_attached(&c);

	revoke_lease(c.old_lease);
	/* The leader key rides on the campaign's own lease, which stays. */
	c.old_leader_lease = 0;
	assert_reattached(&c);
}

Test(lease_loss, every_lease_revoked_reattaches_everything) {
	attach_check c;
	one_node_attached(&c);

	/* As after an etcd restore from an old backup: no lease of ours left. */
	revoke_lease(c.old_lease);
	revoke_lease(c.old_leader_lease);
	assert_reattached(&c);
}

static bool node_key_gone(void *ud) {
	return key_lease("nodes", ud) == 0 && kv_of(PREFIX "/leader", NULL).lease == 0;
}

Test(lease_loss, stopped_past_ttl_reattaches_everything) {
	attach_check c;
	one_node_attached(&c);

	/* Frozen past the 2 s TTL: etcd expires both leases, keys with them. */
	cr_assert_eq(hx_proc_signal(c.n->proc, SIGSTOP), 0);
	cr_assert(hx_wait_until(node_key_gone, (void *) c.n, 10 * USEC_PER_SEC), "the leases did not expire");
	cr_assert_eq(key_lease("status", c.n), 0);
	cr_assert_eq(hx_proc_signal(c.n->proc, SIGCONT), 0);
	assert_reattached(&c);
}

/* ---- topology repair ---------------------------------------------------------------- */

/* Every node's file lists all N nodes. */
static bool all_listed(void *ud) {
	const node *all[N];
	for (unsigned i = 0; i < N; i++)
		all[i] = &nodes[i];
	for (unsigned i = 0; i < N; i++)
		if (!file_lists(&nodes[i], all, N))
			return false;
	return true;
}

/* current is at version *ud (or later), every node applied it, and every
 * node's file lists all N nodes. */
static bool repaired(void *ud) {
	_cleanup_free_ char *current = NULL;
	etcd_kv kv = kv_of(PREFIX "/current", &current);

	if (!current || kv.version < *(int64_t *) ud)
		return false;
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *key = hx_fmt(PREFIX "/status/%s", nodes[i].id), *status = NULL;
		(void) kv_of(key, &status);
		json_auto_t *st = status ? json_loads(status, 0, NULL) : NULL;
		if (!streq_ptr(json_string_value(json_object_get(st, "applied")), current))
			return false;
	}
	return all_listed(NULL);
}

/* current's version (one per commit) once no commit came for a second. */
static int64_t settled_version(void) {
	int64_t v = kv_of(PREFIX "/current", NULL).version;
	for (unsigned tries = 0; tries < 20; tries++) {
		et_run_for(&obs, USEC_PER_SEC);
		int64_t now = kv_of(PREFIX "/current", NULL).version;
		if (now == v)
			return v;
		v = now;
	}
	cr_assert_fail("current never settled");
	return 0;
}

/* Runs a change of current that empties the managed list, then: every node's file lists all nodes
 * again in time, through exactly one more commit of current, which the
 * leader's upkeep made. Returns the id corralctl committed. */
static char *change_and_repair(const char *what, char *const args[]) {
	int64_t before = settled_version();
	size_t upkeeps = count_in_logs("topology upkeep: committed");
	_cleanup_free_ char *out = NULL;
	char id[128] = "";

	cr_assert_eq(hx_corralctl(hx_etcd_endpoints(etcd), &out, args), 0, "%s: %s", what, out);
	uint64_t t0 = hx_now_usec();
	const char *line = out ? strstr(out, "committed config ") : NULL;
	cr_assert(line && sscanf(line, "committed config %127s", id) == 1, "%s: %s", what, out);
	int64_t want = before + 2;
	cr_assert(hx_wait_until(repaired, &want, REPAIR_USEC), "%s: the list was not repaired within %.1f s", what,
		  REPAIR_USEC / 1e6);
	cr_log_info("%s: repaired on every node %.2f s after the commit", what, (hx_now_usec() - t0) / 1e6);

	/* One commit for the change, one for the repair: no storm. */
	cr_assert_eq(settled_version(), before + 2, "%s: commits of current", what);
	cr_assert_eq(count_in_logs("topology upkeep: committed"), upkeeps + 1, "%s: the leader's upkeep commits", what);
	return strdup(id);
}

Test(topology_repair, import_set_and_rollback_are_repaired_by_one_leader_commit) {
	for (unsigned i = 0; i < N; i++)
		node_start(&nodes[i]);
	cr_assert(hx_wait_until(all_listed, NULL, 30 * USEC_PER_SEC), "the nodes never joined the list");

	/* The operator imports a file whose managed list is empty. */
	_cleanup_free_ char *doc = hx_fmt("%s/import.json", dir);
	cr_assert_eq(hx_write_file(doc, "{\"title\": \"imported\", \"workers\": []}\n"), 0);
	_cleanup_free_ char *imported = change_and_repair("import", (char *const[]){ "config", "import", "w", doc, NULL });
	/* A set that empties it, then a rollback to the import's empty list. */
	free(change_and_repair("set", (char *const[]){ "config", "set", "w/workers", "[]", NULL }));
	free(change_and_repair("rollback", (char *const[]){ "config", "rollback", imported, NULL }));
}
