/* test_etcd.c — the etcd client against a real single-member etcd (and,
 * for replies etcd never sends, against tests/fakegw.py). */
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "etcd-test.h"

static hx_etcd *etcd;
static et t;

static void up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static void up_progress(void) {
	char *const extra[] = { "--experimental-watch-progress-notify-interval=300ms", NULL };
	hx_etcd_options o = { .extra_args = extra };
	cr_assert_eq(hx_etcd_start(&etcd, &o), 0, "etcd did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static void down(void) {
	et_close(&t);
	etcd = hx_etcd_free(etcd);
}

TestSuite(etcd, .init = up, .fini = down, .timeout = 60);
TestSuite(etcd_progress, .init = up_progress, .fini = down, .timeout = 60);
TestSuite(etcd_bad, .timeout = 60);

Test(etcd, put_range_delete) {
	cr_assert_eq(et_put(&t, "/t/a", "1", 0), 0);
	cr_assert_eq(et_put(&t, "/t/b", "2", 0), 0);
	cr_assert_eq(et_put(&t, "/t/c", "3", 0), 0);
	cr_assert_eq(et_put(&t, "/u", "x", 0), 0);

	_cleanup_free_ char *a = et_get(&t, "/t/a");
	cr_assert_str_eq(a, "1");
	cr_assert_null(et_get(&t, "/t/missing"));

	_cleanup_(etcd_response_freep) etcd_response *all = et_range(&t, &(etcd_range_req){ .key = "/t/", .prefix = true });
	cr_assert_eq(all->error.code, 0);
	cr_assert_eq(all->n_kvs, 3);
	cr_assert_eq(all->count, 3);
	cr_assert_str_eq(all->kvs[2].key, "/t/c");
	cr_assert_str_eq(all->kvs[2].value, "3");
	cr_assert_eq(all->kvs[0].version, 1);
	cr_assert_gt(all->header.revision, 0);

	_cleanup_(etcd_response_freep) etcd_response *keys =
		et_range(&t, &(etcd_range_req){ .key = "/t/", .prefix = true, .keys_only = true });
	cr_assert_eq(keys->n_kvs, 3);
	cr_assert_null(keys->kvs[0].value);

	_cleanup_(etcd_response_freep) etcd_response *count =
		et_range(&t, &(etcd_range_req){ .key = "/t/", .prefix = true, .count_only = true });
	cr_assert_eq(count->n_kvs, 0);
	cr_assert_eq(count->count, 3);

	_cleanup_(etcd_response_freep) etcd_response *lim = et_range(
		&t, &(etcd_range_req){ .key = "/t/", .prefix = true, .limit = 2, .sort_order = ETCD_SORT_DESCEND });
	cr_assert_eq(lim->n_kvs, 2);
	cr_assert(lim->more);
	cr_assert_str_eq(lim->kvs[0].key, "/t/c");

	/* A historical read sees the old value. */
	int64_t rev = all->kvs[0].mod_revision;
	cr_assert_eq(et_put(&t, "/t/a", "changed", 0), 0);
	_cleanup_(etcd_response_freep) etcd_response *old = et_range(&t, &(etcd_range_req){ .key = "/t/a", .revision = rev });
	cr_assert_str_eq(old->kvs[0].value, "1");

	/* put with prev_kv */
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *put = NULL;
	cr_assert_eq(etcd_put(t.client, &(etcd_put_req){ .key = "/t/a", .value = "third", .prev_kv = true },
			      etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &put), 0);
	cr_assert_eq(put->n_kvs, 1);
	cr_assert_str_eq(put->kvs[0].value, "changed");

	/* delete a prefix with prev_kv */
	s = (etcd_sync){};
	_cleanup_(etcd_response_freep) etcd_response *del = NULL;
	cr_assert_eq(etcd_delete(t.client, &(etcd_delete_req){ .key = "/t/", .prefix = true, .prev_kv = true },
				 etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &del), 0);
	cr_assert_eq(del->deleted, 3);
	cr_assert_eq(del->n_kvs, 3);
	_cleanup_free_ char *u = et_get(&t, "/u");
	cr_assert_str_eq(u, "x", "a prefix delete must not touch /u");
}

Test(etcd, binary_keys_and_values) {
	const char key[] = { '/', 'b', 0, (char) 0xff, '\n' };
	const char val[] = { 0, 1, 2, (char) 0x80, 0 };
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *r = NULL;

	cr_assert_eq(etcd_put(t.client, &(etcd_put_req){ .key = key, .key_len = sizeof key, .value = val, .value_len = sizeof val },
			      etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, NULL), 0);
	r = et_range(&t, &(etcd_range_req){ .key = key, .key_len = sizeof key });
	cr_assert_eq(r->n_kvs, 1);
	cr_assert_eq(r->kvs[0].key_len, sizeof key);
	cr_assert_eq(r->kvs[0].value_len, sizeof val);
	cr_assert_eq(memcmp(r->kvs[0].value, val, sizeof val), 0);
}

Test(etcd, txn_compare_and_swap) {
	cr_assert_eq(et_put(&t, "/cas", "v1", 0), 0);
	_cleanup_(etcd_response_freep) etcd_response *cur = et_range(&t, &(etcd_range_req){ .key = "/cas" });
	int64_t mod = cur->kvs[0].mod_revision;

	etcd_compare cmp = { .key = "/cas", .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL, .number = mod };
	etcd_op ok[] = { { .type = ETCD_OP_PUT, .put = { .key = "/cas", .value = "v2" } },
			 { .type = ETCD_OP_RANGE, .range = { .key = "/cas" } } };
	etcd_op bad[] = { { .type = ETCD_OP_RANGE, .range = { .key = "/cas" } } };
	etcd_txn_req txn = { &cmp, 1, ok, 2, bad, 1 };

	_cleanup_(etcd_response_freep) etcd_response *r1 = et_txn(&t, &txn);
	cr_assert_eq(r1->error.code, 0);
	cr_assert(r1->succeeded);
	cr_assert_eq(r1->n_responses, 2);
	cr_assert_eq(r1->responses[0].type, ETCD_OP_PUT);
	cr_assert_eq(r1->responses[1].type, ETCD_OP_RANGE);
	cr_assert_str_eq(r1->responses[1].kvs[0].value, "v2");

	/* The same CAS again is stale: failure branch, value unchanged. */
	_cleanup_(etcd_response_freep) etcd_response *r2 = et_txn(&t, &txn);
	cr_assert_eq(r2->error.code, 0);
	cr_assert_not(r2->succeeded);
	cr_assert_eq(r2->n_responses, 1);
	cr_assert_str_eq(r2->responses[0].kvs[0].value, "v2");

	/* create-if-absent, then value and version compares, and a delete op */
	etcd_compare absent = { .key = "/new", .target = ETCD_CMP_CREATE, .number = 0 };
	etcd_op create[] = { { .type = ETCD_OP_PUT, .put = { .key = "/new", .value = "n" } } };
	_cleanup_(etcd_response_freep) etcd_response *c1 = et_txn(&t, &(etcd_txn_req){ &absent, 1, create, 1, NULL, 0 });
	_cleanup_(etcd_response_freep) etcd_response *c2 = et_txn(&t, &(etcd_txn_req){ &absent, 1, create, 1, NULL, 0 });
	cr_assert(c1->succeeded);
	cr_assert_not(c2->succeeded);

	etcd_compare both[] = {
		{ .key = "/new", .target = ETCD_CMP_VALUE, .value = "n" },
		{ .key = "/new", .target = ETCD_CMP_VERSION, .result = ETCD_CMP_LESS, .number = 2 },
	};
	etcd_op del[] = { { .type = ETCD_OP_DELETE, .del = { .key = "/new" } } };
	_cleanup_(etcd_response_freep) etcd_response *d = et_txn(&t, &(etcd_txn_req){ both, 2, del, 1, NULL, 0 });
	cr_assert(d->succeeded);
	cr_assert_eq(d->responses[0].type, ETCD_OP_DELETE);
	cr_assert_eq(d->responses[0].deleted, 1);
	cr_assert_null(et_get(&t, "/new"));
}

Test(etcd, range_all_pages_one_snapshot) {
	/* 1050 keys in txns of 100 puts, then read them in pages of 100. */
	char keys[100][32];
	for (int batch = 0; batch < 11; batch++) {
		etcd_op ops[100];
		int n = batch == 10 ? 50 : 100;
		for (int i = 0; i < n; i++) {
			snprintf(keys[i], sizeof keys[i], "/p/%05d", batch * 100 + i);
			ops[i] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = keys[i], .value = "v" } };
		}
		_cleanup_(etcd_response_freep) etcd_response *r = et_txn(&t, &(etcd_txn_req){ NULL, 0, ops, n, NULL, 0 });
		cr_assert_eq(r->error.code, 0);
	}
	cr_assert_eq(et_put(&t, "/p0", "outside", 0), 0);

	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *all = NULL;
	cr_assert_eq(etcd_range_all(t.client, &(etcd_range_req){ .key = "/p/", .prefix = true }, 100, etcd_sync_cb, &s,
				    NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &all), 0);
	cr_assert_eq(all->n_kvs, 1050);
	cr_assert_not(all->more);
	for (size_t i = 0; i < all->n_kvs; i++) {
		char want[32];
		snprintf(want, sizeof want, "/p/%05zu", i);
		cr_assert_str_eq(all->kvs[i].key, want);
	}
	cr_assert_eq(etcd_range_all(t.client, &(etcd_range_req){ .key = "/p/", .limit = 5 }, 100, etcd_sync_cb, &s, NULL),
		     -EINVAL);
}

Test(etcd, range_all_pinned_revision_holds_for_every_page) {
	/* 250 keys, then the last page's key changes: a read pinned to the
	 * revision before the change sees the old value on every page. */
	char keys[250][32];
	etcd_op ops[125];
	for (int batch = 0; batch < 2; batch++) {
		for (int i = 0; i < 125; i++) {
			int k = batch * 125 + i;
			snprintf(keys[k], sizeof keys[k], "/q/%05d", k);
			ops[i] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = keys[k], .value = "old" } };
		}
		_cleanup_(etcd_response_freep) etcd_response *r = et_txn(&t, &(etcd_txn_req){ NULL, 0, ops, 125, NULL, 0 });
		cr_assert_eq(r->error.code, 0);
	}
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *before = NULL;
	cr_assert_eq(etcd_range(t.client, &(etcd_range_req){ .key = "/q/00000" }, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &before), 0);
	int64_t pinned = before->header.revision;
	cr_assert_eq(et_put(&t, "/q/00240", "new", 0), 0);

	s = (etcd_sync){};
	_cleanup_(etcd_response_freep) etcd_response *all = NULL;
	cr_assert_eq(etcd_range_all(t.client, &(etcd_range_req){ .key = "/q/", .prefix = true, .revision = pinned }, 100,
				    etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &all), 0);
	cr_assert_eq(all->n_kvs, 250);
	cr_assert_str_eq(all->kvs[240].value, "old", "page 3 was read at the latest revision, not the pinned one");
}

Test(etcd, leases) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *g = NULL, *ttl = NULL, *ka = NULL, *rv = NULL, *ka2 = NULL,
						     *none = NULL;

	cr_assert_eq(etcd_lease_grant(t.client, 30, 0, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &g), 0);
	cr_assert_neq(g->lease_id, 0);
	cr_assert_eq(g->ttl, 30);
	cr_assert_eq(et_put(&t, "/leased", "x", g->lease_id), 0);

	s = (etcd_sync){};
	cr_assert_eq(etcd_lease_ttl(t.client, g->lease_id, true, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &ttl), 0);
	cr_assert_eq(ttl->granted_ttl, 30);
	cr_assert_eq(ttl->n_kvs, 1);
	cr_assert_str_eq(ttl->kvs[0].key, "/leased");

	s = (etcd_sync){};
	cr_assert_eq(etcd_lease_keepalive(t.client, g->lease_id, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &ka), 0);
	cr_assert_eq(ka->ttl, 30);

	s = (etcd_sync){};
	cr_assert_eq(etcd_lease_revoke(t.client, g->lease_id, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &rv), 0);
	cr_assert_null(et_get(&t, "/leased"), "revoking the lease deletes its keys");

	s = (etcd_sync){};
	cr_assert_eq(etcd_lease_keepalive(t.client, g->lease_id, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &ka2), 0);
	cr_assert_eq(ka2->ttl, 0, "a keepalive for a dead lease has no TTL");

	s = (etcd_sync){};
	cr_assert_eq(etcd_lease_ttl(t.client, g->lease_id, false, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &none), 0);
	cr_assert_eq(none->ttl, -1);

	/* A put on the dead lease is a gateway error: not found. */
	cr_assert_eq(et_put(&t, "/leased", "x", g->lease_id), -ENOENT);
}

typedef struct keeper_state {
	bool lost;
	etcd_error why;
} keeper_state;

static void on_lost(etcd_keeper *k, const etcd_error *why, void *userdata) {
	keeper_state *ks = userdata;
	ks->lost = true;
	ks->why = *why;
}

static bool is_lost(void *ud) {
	return ((keeper_state *) ud)->lost;
}

Test(etcd, keeper_holds_and_reports_loss) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *g = NULL;
	keeper_state ks = {};

	cr_assert_eq(etcd_lease_grant(t.client, 2, 0, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &g), 0);
	cr_assert_eq(et_put(&t, "/kept", "x", g->lease_id), 0);
	_cleanup_(etcd_keeper_freep) etcd_keeper *k = NULL;
	cr_assert_eq(etcd_keeper_new(&k, t.client, g->lease_id, 2, on_lost, &ks), 0);

	/* Three TTLs later the key is still there. */
	et_run_for(&t, 6 * USEC_PER_SEC);
	cr_assert_not(ks.lost);
	_cleanup_free_ char *v = et_get(&t, "/kept");
	cr_assert_str_eq(v, "x");

	/* Revoked behind its back: reported as lost within a TTL. */
	char idbuf[32];
	snprintf(idbuf, sizeof idbuf, "%llx", (unsigned long long) g->lease_id);
	char *const args[] = { "lease", "revoke", idbuf, NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0);
	cr_assert(et_run_until(&t, is_lost, &ks, 3 * USEC_PER_SEC));
	cr_assert_eq(ks.why.code, -ENOENT);
}

static bool has_events(void *ud) {
	return ((et_watch_log *) ud)->n_events >= 4;
}

static bool has_created(void *ud) {
	return ((et_watch_log *) ud)->created >= 1;
}

Test(etcd, watch_events_prev_kv_and_filters) {
	et_watch_log log = {}, puts_only = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL, *w2 = NULL;

	cr_assert_eq(etcd_watch_new(&w, t.client, &(etcd_watch_req){ .key = "/w/", .prefix = true, .prev_kv = true },
				    et_watch_record, &log), 0);
	cr_assert_eq(etcd_watch_new(&w2, t.client, &(etcd_watch_req){ .key = "/w/", .prefix = true, .no_delete = true },
				    et_watch_record, &puts_only), 0);
	cr_assert(et_run_until(&t, has_created, &log, 5 * USEC_PER_SEC));
	cr_assert(et_run_until(&t, has_created, &puts_only, 5 * USEC_PER_SEC));

	cr_assert_eq(et_put(&t, "/w/a", "1", 0), 0);
	cr_assert_eq(et_put(&t, "/w/a", "2", 0), 0);
	cr_assert_eq(et_put(&t, "/other", "x", 0), 0);
	etcd_op two[] = { { .type = ETCD_OP_PUT, .put = { .key = "/w/b", .value = "3" } },
			  { .type = ETCD_OP_DELETE, .del = { .key = "/w/a" } } };
	_cleanup_(etcd_response_freep) etcd_response *r = et_txn(&t, &(etcd_txn_req){ NULL, 0, two, 2, NULL, 0 });
	cr_assert(et_run_until(&t, has_events, &log, 5 * USEC_PER_SEC));
	et_run_for(&t, 200 * USEC_PER_MSEC);

	cr_assert_eq(log.n_events, 4);
	cr_assert_str_eq(log.keys[0], "P /w/a=1");
	cr_assert_str_eq(log.keys[1], "P /w/a=2");
	cr_assert_str_eq(log.keys[2], "P /w/b=3");
	cr_assert_str_eq(log.keys[3], "D /w/a");
	cr_assert_eq(log.revs[2], log.revs[3], "one txn, one revision");
	cr_assert_eq(etcd_watch_next_revision(w), log.revs[3] + 1);
	cr_assert_eq(puts_only.n_events, 3, "NODELETE filters the delete");
}

Test(etcd, watch_from_revision_replays) {
	cr_assert_eq(et_put(&t, "/h/a", "1", 0), 0);
	_cleanup_(etcd_response_freep) etcd_response *first = et_range(&t, &(etcd_range_req){ .key = "/h/a" });
	cr_assert_eq(et_put(&t, "/h/b", "2", 0), 0);
	cr_assert_eq(et_put(&t, "/h/c", "3", 0), 0);

	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	cr_assert_eq(etcd_watch_new(&w, t.client,
				    &(etcd_watch_req){ .key = "/h/", .prefix = true,
						       .start_revision = first->kvs[0].mod_revision + 1 },
				    et_watch_record, &log), 0);
	cr_assert_eq(et_put(&t, "/h/d", "4", 0), 0);
	cr_assert(et_run_until(&t, has_events, &log, 5 * USEC_PER_SEC) || log.n_events == 3);
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(log.n_events, 3);
	cr_assert_str_eq(log.keys[0], "P /h/b=2");
	cr_assert_str_eq(log.keys[2], "P /h/d=4");
}

static bool is_compacted(void *ud) {
	return ((et_watch_log *) ud)->compacted > 0;
}

Test(etcd, watch_compacted_is_reported) {
	cr_assert_eq(et_put(&t, "/c/a", "1", 0), 0);
	cr_assert_eq(et_put(&t, "/c/a", "2", 0), 0);
	_cleanup_(etcd_response_freep) etcd_response *cur = et_range(&t, &(etcd_range_req){ .key = "/c/a" });
	char rev[32];
	snprintf(rev, sizeof rev, "%lld", (long long) cur->header.revision);
	char *const args[] = { "compact", rev, NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0);

	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	cr_assert_eq(etcd_watch_new(&w, t.client, &(etcd_watch_req){ .key = "/c/", .prefix = true, .start_revision = 2 },
				    et_watch_record, &log), 0);
	cr_assert(et_run_until(&t, is_compacted, &log, 5 * USEC_PER_SEC));
	cr_assert_eq(log.compact_revision, cur->header.revision);
	cr_assert_eq(log.disconnected, 0);

	/* A read at the compacted revision is an error of its own kind. */
	_cleanup_(etcd_response_freep) etcd_response *old = et_range(&t, &(etcd_range_req){ .key = "/c/a", .revision = 2 });
	cr_assert_eq(old->error.code, -ERANGE);
	cr_assert(etcd_error_is_compacted(&old->error));
	cr_assert_eq(old->error.grpc_code, 11);
	cr_assert_eq(old->error.http_status, 400);
}

static bool has_progress(void *ud) {
	return ((et_watch_log *) ud)->progress > 0;
}

Test(etcd_progress, watch_progress_notify) {
	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	cr_assert_eq(etcd_watch_new(&w, t.client, &(etcd_watch_req){ .key = "/q", .progress_notify = true },
				    et_watch_record, &log), 0);
	cr_assert(et_run_until(&t, has_progress, &log, 5 * USEC_PER_SEC));
	cr_assert_eq(log.n_events, 0);
}

static bool all_six(void *ud) {
	return ((et_watch_log *) ud)->n_events >= 6;
}

static bool disconnected(void *ud) {
	return ((et_watch_log *) ud)->disconnected > 0;
}

Test(etcd, watch_resumes_after_etcd_restart) {
	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;

	cr_assert_eq(etcd_watch_new(&w, t.client, &(etcd_watch_req){ .key = "/r/", .prefix = true }, et_watch_record,
				    &log), 0);
	cr_assert(et_run_until(&t, has_created, &log, 5 * USEC_PER_SEC));
	for (int i = 0; i < 3; i++) {
		char k[16];
		snprintf(k, sizeof k, "/r/%d", i);
		cr_assert_eq(et_put(&t, k, "before", 0), 0);
	}

	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	cr_assert(et_run_until(&t, disconnected, &log, 5 * USEC_PER_SEC));
	cr_assert_eq(hx_etcd_start_member(etcd, 0), 0);

	/* Written while the watch is still away: resumed, not lost. */
	for (int i = 3; i < 6; i++) {
		char k[16];
		snprintf(k, sizeof k, "/r/%d", i);
		cr_assert_eq(et_put(&t, k, "after", 0), 0);
	}
	cr_assert(et_run_until(&t, all_six, &log, 15 * USEC_PER_SEC), "only %zu events", log.n_events);
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(log.n_events, 6, "no event lost or repeated");
	for (size_t i = 1; i < 6; i++)
		cr_assert_gt(log.revs[i], log.revs[i - 1]);
	cr_assert_str_eq(log.keys[5], "P /r/5=after");
	cr_assert_geq(log.created, 2);
}

Test(etcd, gateway_error_bodies) {
	_cleanup_(etcd_response_freep) etcd_response *future =
		et_range(&t, &(etcd_range_req){ .key = "/x", .revision = 1000000 });
	cr_assert_eq(future->error.code, -ERANGE);
	cr_assert_eq(future->error.kind, ETCD_ERROR_GATEWAY);
	cr_assert_not(etcd_error_is_compacted(&future->error));
	cr_assert(strstr(future->error.message, "future revision"), "%s", future->error.message);

	/* A put on a lease that never existed: 404, code 5. */
	cr_assert_eq(et_put(&t, "/x", "y", 12345), -ENOENT);

	/* An empty key is rejected before it is sent. */
	cr_assert_eq(etcd_put(t.client, &(etcd_put_req){ .key = NULL }, etcd_sync_cb, NULL, NULL), -EINVAL);
}

Test(etcd, cancelled_call_never_calls_back) {
	etcd_sync s = {};
	etcd_call *call = NULL;
	cr_assert_eq(etcd_range(t.client, &(etcd_range_req){ .key = "/x" }, etcd_sync_cb, &s, &call), 0);
	etcd_call_cancel(call);
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_not(s.done);
}

Test(etcd, client_free_with_calls_in_flight) {
	etcd_sync s = {};
	for (int i = 0; i < 20; i++)
		cr_assert_eq(etcd_range(t.client, &(etcd_range_req){ .key = "/x" }, etcd_sync_cb, &s, NULL), 0);
	(void) sd_event_run(t.event, 0);
	t.client = etcd_client_free(t.client);
	cr_assert_not(s.done);
}

/* ---- unreachable and misbehaving servers ---------------------------------- */

Test(etcd_bad, unreachable_endpoint) {
	int port = hx_free_port();
	char ep[64];
	et u = {};
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
	cr_assert_eq(et_open(&u, ep, NULL), 0);
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&u, &(etcd_range_req){ .key = "/x" });
	cr_assert_eq(r->error.code, -ECONNREFUSED);
	cr_assert_eq(r->error.kind, ETCD_ERROR_TRANSPORT);
	cr_assert_str_eq(r->error.endpoint, ep);
	et_close(&u);
}

Test(etcd_bad, silent_server_times_out) {
	/* A listening socket nobody reads: connects, never answers. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);

	char ep[64];
	et u = {};
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(sa.sin_port));
	cr_assert_eq(et_open(&u, ep, &(etcd_options){ .request_timeout_usec = 300 * USEC_PER_MSEC }), 0);
	uint64_t t0 = hx_now_usec();
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&u, &(etcd_range_req){ .key = "/x" });
	cr_assert_eq(r->error.code, -ETIMEDOUT);
	cr_assert_lt(hx_now_usec() - t0, 3 * USEC_PER_SEC, "the request timeout bounds the wait");
	et_close(&u);
	close(fd);
}

typedef struct fake {
	hx_proc *proc;
	char dir[256];
	char endpoint[64];
} fake;

static bool fake_listening(void *ud) {
	fake *f = ud;
	char path[300];
	snprintf(path, sizeof path, "%s/log", f->dir);
	_cleanup_free_ char *log = hx_read_file(path, NULL);
	return log && strstr(log, "listening");
}

/* Starts tests/fakegw.py with a script. */
static void fake_start(fake *f, const char *script) {
	_cleanup_free_ char *dir = hx_mkdtemp("fakegw");
	char path[300], logp[300], port[16], prog[512];
	const char *py = getenv("CORRAL_PYTHON3");

	snprintf(f->dir, sizeof f->dir, "%s", dir);
	snprintf(path, sizeof path, "%s/script.json", dir);
	snprintf(logp, sizeof logp, "%s/log", dir);
	cr_assert_eq(hx_write_file(path, script), 0);
	int p = hx_free_port();
	snprintf(port, sizeof port, "%d", p);
	snprintf(f->endpoint, sizeof f->endpoint, "http://127.0.0.1:%d", p);
	snprintf(prog, sizeof prog, "%s/tests/fakegw.py", hx_srcdir());
	char *const argv[] = { (char *) (py && *py ? py : "python3"), prog, port, path, NULL };
	cr_assert_eq(hx_proc_spawn(&f->proc, argv, NULL, logp), 0);
	cr_assert(hx_wait_until(fake_listening, f, 10 * USEC_PER_SEC), "fakegw did not start");
}

static void fake_stop(fake *f) {
	f->proc = hx_proc_free(f->proc);
	hx_rm_rf(f->dir);
}

Test(etcd_bad, malformed_replies) {
	fake f = {};
	fake_start(&f, "{\"/v3/kv/range\": ["
		       "{\"status\": 200, \"body\": \"{\\\"header\\\": {\\\"revision\\\": \\\"abc\\\"}}\"},"
		       "{\"status\": 200, \"body\": \"not json at all\"},"
		       "{\"status\": 200, \"body\": \"{\\\"kvs\\\": [{\\\"key\\\": \\\"YQ\\\"}]}\"},"
		       "{\"status\": 404, \"body\": \"404 page not found\\n\"},"
		       "{\"status\": 400, \"body\": \"{\\\"error\\\":\\\"etcdserver: mvcc: required revision has been compacted\\\",\\\"message\\\":\\\"etcdserver: mvcc: required revision has been compacted\\\",\\\"code\\\":11}\"}"
		       "]}");
	et u = {};
	cr_assert_eq(et_open(&u, f.endpoint, NULL), 0);

	etcd_error_kind kinds[] = { ETCD_ERROR_MALFORMED, ETCD_ERROR_MALFORMED, ETCD_ERROR_MALFORMED, ETCD_ERROR_HTTP,
				    ETCD_ERROR_GATEWAY };
	int codes[] = { -EBADMSG, -EBADMSG, -EBADMSG, -EPROTO, -ERANGE };
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		_cleanup_(etcd_response_freep) etcd_response *r = et_range(&u, &(etcd_range_req){ .key = "/x" });
		cr_assert_eq(r->error.kind, kinds[i], "reply %zu: kind %d (%s)", i, r->error.kind, r->error.message);
		cr_assert_eq(r->error.code, codes[i], "reply %zu: %s", i, r->error.message);
		cr_assert_eq(r->n_kvs, 0);
	}
	et_close(&u);
	fake_stop(&f);
}

static bool two_created(void *ud) {
	return ((et_watch_log *) ud)->created >= 2;
}

Test(etcd_bad, truncated_watch_stream) {
	/* First stream: created, one event, then half a message and the
	 * connection cut. Second: created again, and the next event. */
	fake f = {};
	fake_start(&f,
		   "{\"/v3/watch\": ["
		   "{\"stream\": [\"{\\\"result\\\":{\\\"header\\\":{\\\"revision\\\":\\\"5\\\"},\\\"created\\\":true}}\\n\","
		   "\"{\\\"result\\\":{\\\"header\\\":{\\\"revision\\\":\\\"6\\\"},\\\"events\\\":[{\\\"kv\\\":{\\\"key\\\":\\\"L3cvYQ==\\\",\\\"mod_revision\\\":\\\"6\\\",\\\"value\\\":\\\"MQ==\\\"}}]}}\\n\","
		   "\"{\\\"result\\\":{\\\"header\\\":{\\\"revi\"], \"cut\": true},"
		   "{\"stream\": [\"{\\\"result\\\":{\\\"header\\\":{\\\"revision\\\":\\\"7\\\"},\\\"created\\\":true}}\\n\","
		   "\"{\\\"result\\\":{\\\"header\\\":{\\\"revision\\\":\\\"7\\\"},\\\"events\\\":[{\\\"kv\\\":{\\\"key\\\":\\\"L3cvYg==\\\",\\\"mod_revision\\\":\\\"7\\\",\\\"value\\\":\\\"Mg==\\\"}}]}}\\n\"],"
		   " \"hold\": 30}"
		   "]}");
	et u = {};
	et_watch_log log = {};
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	cr_assert_eq(et_open(&u, f.endpoint, NULL), 0);
	cr_assert_eq(etcd_watch_new(&w, u.client, &(etcd_watch_req){ .key = "/w/", .prefix = true }, et_watch_record,
				    &log), 0);
	cr_assert(et_run_until(&u, two_created, &log, 10 * USEC_PER_SEC));
	et_run_for(&u, 200 * USEC_PER_MSEC);
	cr_assert_eq(log.disconnected, 1);
	cr_assert_eq(log.n_events, 2);
	cr_assert_str_eq(log.keys[0], "P /w/a=1");
	cr_assert_str_eq(log.keys[1], "P /w/b=2");

	/* The resumed request asked for the revision after the last event. */
	char logp[300];
	snprintf(logp, sizeof logp, "%s/log", f.dir);
	_cleanup_free_ char *served = hx_read_file(logp, NULL);
	cr_assert(strstr(served, "\"start_revision\":\"7\""), "requests: %s", served);

	w = etcd_watch_free(w);
	et_close(&u);
	fake_stop(&f);
}

/* ---- auth and TLS ---------------------------------------------------------------- */

Test(etcd, auth_token_and_reauthentication) {
	cr_assert_eq(hx_etcd_enable_auth(etcd, "app", "apppw", "/app/"), 0);

	et a = {}, nope = {}, anon = {};
	cr_assert_eq(et_open(&a, hx_etcd_endpoints(etcd), &(etcd_options){ .username = "app", .password = "apppw" }), 0);
	cr_assert_eq(et_put(&a, "/app/k", "v", 0), 0);
	_cleanup_free_ char *v = et_get(&a, "/app/k");
	cr_assert_str_eq(v, "v");

	/* Outside its permissions: 403. */
	cr_assert_eq(et_put(&a, "/elsewhere", "v", 0), -EACCES);

	/* Wrong password, and no credentials at all. */
	cr_assert_eq(et_open(&nope, hx_etcd_endpoints(etcd), &(etcd_options){ .username = "app", .password = "wrong" }), 0);
	cr_assert_eq(et_put(&nope, "/app/k", "v", 0), -EACCES);
	cr_assert_eq(et_open(&anon, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_lt(et_put(&anon, "/app/k", "v", 0), 0);

	/* Tokens live in memory: after a restart the client logs in again. */
	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGTERM), 0);
	cr_assert_eq(hx_etcd_start_member(etcd, 0), 0);
	cr_assert_eq(et_put(&a, "/app/k", "after-restart", 0), 0);
	et_close(&a);
	et_close(&nope);
	et_close(&anon);
}

static void up_tls(void) {
	hx_etcd_options o = { .tls = true, .client_cert_auth = true };
	cr_assert_eq(hx_etcd_start(&etcd, &o), 0, "TLS etcd did not start");
}

TestSuite(etcd_tls, .init = up_tls, .fini = down, .timeout = 60);

Test(etcd_tls, with_client_certificates) {
	etcd_options o = { .ca_file = hx_etcd_ca_file(etcd),
			   .cert_file = hx_etcd_client_cert(etcd),
			   .key_file = hx_etcd_client_key(etcd) };
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), &o), 0);
	cr_assert_eq(et_put(&t, "/tls", "yes", 0), 0);
	_cleanup_free_ char *v = et_get(&t, "/tls");
	cr_assert_str_eq(v, "yes");

	et nocert = {};
	cr_assert_eq(et_open(&nocert, hx_etcd_endpoints(etcd), &(etcd_options){ .ca_file = hx_etcd_ca_file(etcd) }), 0);
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&nocert, &(etcd_range_req){ .key = "/tls" });
	cr_assert_lt(r->error.code, 0, "no client certificate, no access");
	cr_assert_eq(r->error.kind, ETCD_ERROR_TRANSPORT);
	et_close(&nocert);
}
