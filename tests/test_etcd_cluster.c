/* test_etcd_cluster.c — the etcd client against a real 3-member cluster:
 * fail-over of requests, watches and leases when the member in use dies. */
#include <inttypes.h>
#include <signal.h>

#include "etcd-test.h"

static hx_etcd *etcd;
static et t;

static void up(void) {
	hx_etcd_options o = { .members = 3 };
	cr_assert_eq(hx_etcd_start(&etcd, &o), 0, "etcd cluster did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static void down(void) {
	et_close(&t);
	etcd = hx_etcd_free(etcd);
}

TestSuite(cluster, .init = up, .fini = down, .timeout = 90);

Test(cluster, requests_fail_over) {
	cr_assert_eq(et_put(&t, "/f", "1", 0), 0);
	cr_assert_str_eq(etcd_client_endpoint(t.client), hx_etcd_endpoint(etcd, 0));

	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	/* A read right after the member died goes to the next one. */
	_cleanup_free_ char *v = et_get(&t, "/f");
	cr_assert_str_eq(v, "1");
	cr_assert_str_neq(etcd_client_endpoint(t.client), hx_etcd_endpoint(etcd, 0));
	/* Writes too (the connect failure means it never reached member 0). */
	cr_assert_eq(et_put(&t, "/f", "2", 0), 0);

	/* The dead member comes back and catches up. */
	cr_assert_eq(hx_etcd_start_member(etcd, 0), 0);
	et only0 = {};
	cr_assert_eq(et_open(&only0, hx_etcd_endpoint(etcd, 0), NULL), 0);
	_cleanup_free_ char *v0 = et_get(&only0, "/f");
	cr_assert_str_eq(v0, "2");
	et_close(&only0);
}

/* Creates key once, retrying through a leader election: a write that
 * timed out may or may not have happened, and create-if-absent makes the
 * retry harmless. */
static int create_once(et *c, const char *key) {
	uint64_t end = hx_now_usec() + 20 * USEC_PER_SEC;
	etcd_compare absent = { .key = key, .target = ETCD_CMP_CREATE, .number = 0 };
	etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = key, .value = "v" } };

	while (hx_now_usec() < end) {
		_cleanup_(etcd_response_freep) etcd_response *r = et_txn(c, &(etcd_txn_req){ &absent, 1, &put, 1, NULL, 0 });
		if (r && r->error.code == 0)
			return 0;
	}
	return -ETIMEDOUT;
}

static bool has_created(void *ud) {
	return ((et_watch_log *) ud)->created >= 1;
}

static bool has_three(void *ud) {
	return ((et_watch_log *) ud)->n_events >= 3;
}

static bool has_ten(void *ud) {
	return ((et_watch_log *) ud)->n_events >= 10;
}

Test(cluster, watch_survives_member_loss) {
	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	cr_assert_eq(etcd_watch_new(&w, t.client, &(etcd_watch_req){ .key = "/w/", .prefix = true }, et_watch_record,
				    &log), 0);
	cr_assert(et_run_until(&t, has_created, &log, 5 * USEC_PER_SEC));

	/* Writes go through another member's client, so they do not depend
	 * on the fail-over under test. */
	et other = {};
	cr_assert_eq(et_open(&other, hx_etcd_endpoint(etcd, 1), NULL), 0);
	for (int i = 0; i < 5; i++) {
		char k[16];
		snprintf(k, sizeof k, "/w/%d", i);
		cr_assert_eq(et_put(&other, k, "v", 0), 0);
	}
	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	for (int i = 5; i < 10; i++) {
		char k[16];
		snprintf(k, sizeof k, "/w/%d", i);
		cr_assert_eq(create_once(&other, k), 0);
	}
	cr_assert(et_run_until(&t, has_ten, &log, 15 * USEC_PER_SEC), "got %zu events", log.n_events);
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(log.n_events, 10, "no event lost or repeated");
	for (size_t i = 0; i < 10; i++) {
		char want[32];
		snprintf(want, sizeof want, "P /w/%zu=v", i);
		cr_assert_str_eq(log.keys[i], want);
	}
	cr_assert_geq(log.disconnected, 1);
	cr_assert_geq(log.created, 2);
	et_close(&other);
}

typedef struct lost_flag {
	bool lost;
} lost_flag;

static void on_lost(etcd_keeper *k, const etcd_error *why, void *userdata) {
	((lost_flag *) userdata)->lost = true;
}

Test(cluster, lease_kept_through_member_loss) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *g = NULL;
	_cleanup_(etcd_keeper_freep) etcd_keeper *k = NULL;
	lost_flag lf = {};

	cr_assert_eq(etcd_lease_grant(t.client, 3, 0, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &g), 0);
	cr_assert_eq(et_put(&t, "/kept", "x", g->lease_id), 0);
	cr_assert_eq(etcd_keeper_new(&k, t.client, g->lease_id, 3, on_lost, &lf), 0);

	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	et_run_for(&t, 7 * USEC_PER_SEC);
	cr_assert_not(lf.lost);
	_cleanup_free_ char *v = et_get(&t, "/kept");
	cr_assert_str_eq(v, "x", "the lease outlived two TTLs on the remaining members");
}

static bool put_ok(void *ud) {
	return et_put(&t, "/q", "back", 0) == 0;
}

Test(cluster, quorum_loss_fails_fast_and_recovers) {
	cr_assert_eq(et_put(&t, "/q", "1", 0), 0);
	cr_assert_eq(hx_etcd_stop_member(etcd, 1, SIGKILL), 0);
	cr_assert_eq(hx_etcd_stop_member(etcd, 2, SIGKILL), 0);

	/* No quorum: an error, not a hang (hasleader makes it quick once the
	 * member notices; the request timeout bounds it anyway). */
	uint64_t t0 = hx_now_usec();
	int r = et_put(&t, "/q", "2", 0);
	cr_assert_lt(r, 0);
	cr_assert_lt(hx_now_usec() - t0, 12 * USEC_PER_SEC);

	cr_assert_eq(hx_etcd_start_member(etcd, 1), 0);
	cr_assert(hx_wait_until(put_ok, NULL, 20 * USEC_PER_SEC), "writes resume with quorum back");
}

/* ---- a frozen member (SIGSTOP): up, connectable, answering nothing ---- */

static unsigned member_of(const char *endpoint) {
	for (unsigned i = 0; i < hx_etcd_members(etcd); i++)
		if (streq(endpoint, hx_etcd_endpoint(etcd, i)))
			return i;
	cr_assert_fail("%s is no member's endpoint", endpoint);
	return 0;
}

static bool has_leader(void *ud) {
	return hx_etcd_leader(etcd, NULL) == 0;
}

/* Opens c on every member, a follower first: freezing it costs no
 * election, so what is measured is the client alone. */
static unsigned open_follower_first(et *c) {
	unsigned leader = 0, f;
	char eps[512];

	cr_assert(hx_wait_until(has_leader, NULL, 10 * USEC_PER_SEC));
	cr_assert_eq(hx_etcd_leader(etcd, &leader), 0);
	f = (leader + 1) % 3;
	snprintf(eps, sizeof eps, "%s,%s,%s", hx_etcd_endpoint(etcd, f), hx_etcd_endpoint(etcd, (f + 1) % 3),
		 hx_etcd_endpoint(etcd, (f + 2) % 3));
	cr_assert_eq(et_open(c, eps, NULL), 0);
	return f;
}

typedef struct keeper_trial {
	bool lost;
	char why[300];
} keeper_trial;

static void on_trial_lost(etcd_keeper *k, const etcd_error *why, void *userdata) {
	keeper_trial *kt = userdata;
	kt->lost = true;
	etcd_error_format(why, kt->why, sizeof kt->why);
}

/* The keeper's member hangs for longer than the TTL: its keepalive is
 * abandoned after a short per-attempt deadline and sent to another member,
 * so the lease lives. Several trials, each freezing the member in use at a
 * different phase of the keepalive cycle. That member is a follower, as in
 * the fault this guards against: a frozen raft leader adds an election, and
 * what etcd 3.4 does with leases across it is etcd's (docs/etcd-client.md);
 * a node that loses its lease anyway re-attaches (test_repair). */
Test(cluster, lease_kept_through_frozen_member, .timeout = 150) {
	for (int trial = 0; trial < 4; trial++) {
		etcd_sync s = {};
		_cleanup_(etcd_response_freep) etcd_response *g = NULL, *ttl = NULL, *kv = NULL;
		_cleanup_(etcd_keeper_freep) etcd_keeper *k = NULL;
		keeper_trial kt = {};
		unsigned leader = 0;
		char key[32];
		et c = {};

		unsigned f = open_follower_first(&c);
		cr_assert_eq(etcd_lease_grant(c.client, 3, 0, etcd_sync_cb, &s, NULL), 0);
		cr_assert_eq(etcd_wait(c.client, &s, &g), 0, "trial %d: grant", trial);
		snprintf(key, sizeof key, "/frozen/%d", trial);
		cr_assert_eq(et_put(&c, key, "x", g->lease_id), 0);
		cr_assert_eq(etcd_keeper_new(&k, c.client, g->lease_id, 3, on_trial_lost, &kt), 0);

		et_run_for(&c, (1000 + 250 * (uint64_t) trial) * USEC_PER_MSEC);
		unsigned m = member_of(etcd_client_endpoint(c.client));
		cr_assert_eq(m, f, "trial %d: the client moved off its follower before the freeze", trial);
		cr_assert_eq(hx_etcd_leader(etcd, &leader), 0);
		cr_assert_neq(m, leader, "trial %d: a leader election happened before the freeze", trial);
		cr_assert_eq(hx_etcd_member_stop(etcd, m), 0);
		et_run_for(&c, 3500 * USEC_PER_MSEC);
		cr_assert_eq(hx_etcd_member_cont(etcd, m), 0);
		et_run_for(&c, 1000 * USEC_PER_MSEC);

		cr_assert_not(kt.lost, "trial %d (m%u frozen 3.5 s, TTL 3 s): lease lost: %s", trial, m, kt.why);
		cr_assert_eq(etcd_keeper_lease(k), g->lease_id);
		s = (etcd_sync){};
		cr_assert_eq(etcd_lease_ttl(c.client, g->lease_id, false, etcd_sync_cb, &s, NULL), 0);
		cr_assert_eq(etcd_wait(c.client, &s, &ttl), 0);
		cr_assert_gt(ttl->ttl, 0, "trial %d: the lease is alive on the cluster", trial);
		kv = et_range(&c, &(etcd_range_req){ .key = key });
		cr_assert_eq(kv->n_kvs, 1, "trial %d: the leased key is still there", trial);
		cr_assert_eq(kv->kvs[0].lease, g->lease_id);
		k = etcd_keeper_free(k);
		et_close(&c);
	}
}

/* Reads and plain writes to a frozen first member go to another one well
 * within the request timeout (10 s by default). */
Test(cluster, requests_skip_frozen_member) {
	et c = {};
	unsigned f = open_follower_first(&c);

	cr_assert_eq(et_put(&c, "/r", "1", 0), 0);
	cr_assert_eq(hx_etcd_member_stop(etcd, f), 0);

	uint64_t t0 = hx_now_usec();
	cr_assert_eq(et_put(&c, "/r", "2", 0), 0, "a put to a frozen member is sent to another");
	uint64_t put_usec = hx_now_usec() - t0;
	t0 = hx_now_usec();
	_cleanup_free_ char *v = et_get(&c, "/r");
	uint64_t get_usec = hx_now_usec() - t0;
	cr_assert_str_eq(v, "2");
	cr_assert_lt(put_usec, 4 * USEC_PER_SEC, "put took %" PRIu64 " ms", put_usec / USEC_PER_MSEC);
	cr_assert_lt(get_usec, 1 * USEC_PER_SEC, "the frozen member is tried last now: %" PRIu64 " ms",
		     get_usec / USEC_PER_MSEC);
	cr_assert_neq(member_of(etcd_client_endpoint(c.client)), f);

	cr_assert_eq(hx_etcd_member_cont(etcd, f), 0);
	et_close(&c);
}

/* A watch on a member that hangs goes quiet; past its progress deadline it
 * checks the member, finds it unresponsive, and resumes on another from the
 * revision after the last event: events written during the freeze arrive
 * during the freeze, once each, in order. */
Test(cluster, watch_leaves_frozen_member) {
	et c = {}, other = {};
	et_watch_log *log = calloc(1, sizeof *log);
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	char eps[512];
	unsigned f = open_follower_first(&c);

	cr_assert_eq(etcd_watch_new(&w, c.client, &(etcd_watch_req){ .key = "/fw/", .prefix = true }, et_watch_record,
				    log), 0);
	cr_assert(et_run_until(&c, has_created, log, 5 * USEC_PER_SEC));
	snprintf(eps, sizeof eps, "%s,%s", hx_etcd_endpoint(etcd, (f + 1) % 3), hx_etcd_endpoint(etcd, (f + 2) % 3));
	cr_assert_eq(et_open(&other, eps, NULL), 0);
	for (int i = 0; i < 3; i++) {
		char k[16];
		snprintf(k, sizeof k, "/fw/%d", i);
		cr_assert_eq(et_put(&other, k, "v", 0), 0);
	}
	cr_assert(et_run_until(&c, has_three, log, 5 * USEC_PER_SEC));

	cr_assert_eq(hx_etcd_member_stop(etcd, f), 0);
	for (int i = 3; i < 10; i++) {
		char k[16];
		snprintf(k, sizeof k, "/fw/%d", i);
		cr_assert_eq(et_put(&other, k, "v", 0), 0);
	}
	bool moved = et_run_until(&c, has_ten, log, 15 * USEC_PER_SEC);
	cr_assert_eq(hx_etcd_member_cont(etcd, f), 0);
	cr_assert(moved, "events put while the watch's member was frozen arrived: %zu of 10", log->n_events);

	et_run_for(&c, 1000 * USEC_PER_MSEC);
	cr_assert_eq(log->n_events, 10, "no event lost or repeated");
	for (size_t i = 0; i < 10; i++) {
		char want[32];
		snprintf(want, sizeof want, "P /fw/%zu=v", i);
		cr_assert_str_eq(log->keys[i], want);
		cr_assert(i == 0 || log->revs[i] > log->revs[i - 1]);
	}
	cr_assert_geq(log->created, 2, "the watch was created again elsewhere");
	w = etcd_watch_free(w);
	free(log);
	et_close(&other);
	et_close(&c);
}
