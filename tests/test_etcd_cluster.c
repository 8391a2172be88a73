/* test_etcd_cluster.c — the etcd client against a real 3-member cluster:
 * fail-over of requests, watches and leases when the member in use dies. */
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
