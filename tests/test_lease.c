/* test_lease.c — leases under load: a slow etcd, a paused etcd and a busy
 * client must not cost a node its lease, and a lease that is lost is
 * replaced once (one grant, one registration), never in a loop. Real etcd;
 * "slow" is tests/holdproxy.py holding every lease request for longer than
 * the client's old per-attempt deadline, which is what an overloaded etcd
 * looks like from a node (the request is served, the answer comes late). */
#include <criterion/criterion.h>
#include <signal.h>

#include "etcd-test.h"
#include "node.h"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "lease", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(lease, .init = up, .fini = down, .timeout = 90);

/* ---- etcd's own count of leases granted ---------------------------------------- */

/* grpc_server_handled_total for LeaseGrant calls that etcd answered OK. */
static double grants_ok(void) {
	_cleanup_free_ char *url = hx_fmt("%s/metrics", hx_etcd_endpoint(etcd, 0)), *body = NULL;
	long code = 0;
	double n = 0;

	cr_assert_eq(hx_http(&(hx_http_req){ .url = url, .timeout_ms = 5000 }, &body, &code), 0, "GET %s", url);
	cr_assert_eq(code, 200);
	for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *end = strchr(line, '}'), *nl = strchr(line, '\n');
		if (strncmp(line, "grpc_server_handled_total{", 26) != 0 || !end || (nl && end > nl))
			continue;
		_cleanup_free_ char *labels = strndup(line, (size_t) (end - line));
		if (strstr(labels, "grpc_method=\"LeaseGrant\"") && strstr(labels, "grpc_code=\"OK\""))
			n += strtod(end + 1, NULL);
	}
	return n;
}

/* ---- a node registration, and what it reported ------------------------------------ */

typedef struct reg_log {
	unsigned registered, retrying;
	int64_t leases[16];             /* the lease of each REGISTERED */
} reg_log;

static void on_state(node_reg *n, node_state s, const etcd_error *e, void *userdata) {
	reg_log *l = userdata;

	if (s == NODE_REGISTERED) {
		if (l->registered < ELEMENTSOF(l->leases))
			l->leases[l->registered] = node_reg_lease(n);
		l->registered++;
	} else if (s == NODE_RETRYING)
		l->retrying++;
}

typedef struct want_reg {
	reg_log *log;
	unsigned n;
} want_reg;

static bool registered_n(void *ud) {
	want_reg *w = ud;
	return w->log->registered >= w->n;
}

static const node_info info = { .node_id = "n1", .address = "127.0.0.9", .version = "t" };

/* The lease nodes/n1 is on, read straight from etcd (0: no key). */
static int64_t key_lease(et *obs) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(obs, &(etcd_range_req){ .key = "/t/nodes/n1" });
	return r->error.code == 0 && r->n_kvs == 1 ? r->kvs[0].lease : 0;
}

/* ---- a slow etcd ----------------------------------------------------------------- */

typedef struct proxy {
	hx_proc *proc;
	char *log;
	char endpoint[64];
} proxy;

static bool proxy_listening(void *ud) {
	_cleanup_free_ char *log = hx_read_file(ud, NULL);
	return log && strstr(log, "listening");
}

/* Starts holdproxy in front of etcd, holding `count` requests (or with
 * `reply`, replies) that match pattern for hold seconds each. */
static void proxy_start_n(proxy *p, const char *pattern, const char *hold, const char *count, bool reply) {
	const char *upstream = strrchr(hx_etcd_endpoint(etcd, 0), ':') + 1;
	int port = hx_free_port();
	_cleanup_free_ char *pport = hx_fmt("%d", port), *prog = hx_fmt("%s/tests/holdproxy.py", hx_srcdir());
	const char *py = getenv("CORRAL_PYTHON3");
	char *const argv[] = { (char *) (py && *py ? py : "python3"), prog, pport, (char *) upstream,
			       (char *) pattern, (char *) hold, (char *) count, reply ? "reply" : NULL, NULL };

	p->log = hx_fmt("%s/proxy.log", dir);
	snprintf(p->endpoint, sizeof p->endpoint, "http://127.0.0.1:%d", port);
	cr_assert_eq(hx_proc_spawn(&p->proc, argv, NULL, p->log), 0);
	if (!hx_wait_until(proxy_listening, p->log, 10 * USEC_PER_SEC)) {
		hx_log_tail(p->log, 20);
		cr_assert_fail("holdproxy did not start");
	}
}

static void proxy_start(proxy *p, const char *pattern, const char *hold) {
	proxy_start_n(p, pattern, hold, "100000", false);
}

static void proxy_stop(proxy *p) {
	p->proc = hx_proc_free(p->proc);
	free(p->log);
}

/* A node registers through a proxy that holds the lease requests matching
 * pattern 2.5 s: longer than the 2 s a client gave one attempt (and the
 * keeper's TTL/4 = 1.5 s), well inside the 6 s TTL. etcd serves each one,
 * late. The node registers once, keeps its first lease for `run`, and etcd
 * granted one lease. */
static void slow_etcd(const char *pattern, uint64_t run) {
	proxy p = {};
	et slow = {}, obs = {};
	reg_log log = {};
	_cleanup_(node_reg_freep) node_reg *n = NULL;

	proxy_start(&p, pattern, "2.5");
	cr_assert_eq(et_open(&slow, p.endpoint, NULL), 0);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoint(etcd, 0), NULL), 0);
	double g0 = grants_ok();

	cr_assert_eq(node_reg_new(&n, slow.client, "/t/nodes/n1", &info, 6, on_state, &log), 0);
	cr_assert(et_run_until(&slow, registered_n, &(want_reg){ &log, 1 }, 20 * USEC_PER_SEC),
		  "never registered in 20 s (%u retries; etcd granted %.0f leases)", log.retrying, grants_ok() - g0);
	int64_t lease = log.leases[0];
	cr_assert_eq(key_lease(&obs), lease);

	et_run_for(&slow, run);
	cr_assert_eq(log.registered, 1, "registered %u times (etcd granted %.0f leases)", log.registered,
		     grants_ok() - g0);
	cr_assert_eq(log.retrying, 0, "the node went RETRYING %u times", log.retrying);
	cr_assert_eq(node_reg_lease(n), lease);
	cr_assert_eq(key_lease(&obs), lease, "nodes/n1 is still on its first lease");
	cr_assert_eq(grants_ok() - g0, 1, "etcd granted %.0f leases for one registration", grants_ok() - g0);

	n = node_reg_free(n);
	et_close(&slow);
	et_close(&obs);
	proxy_stop(&p);
}

/* Grants and keepalives slow: the old client never registered in 20 s
 * (every grant abandoned at 2 s and sent again). */
Test(lease, slow_etcd_costs_no_lease, .timeout = 120) {
	slow_etcd("/v3/lease/(grant|keepalive)", 18 * USEC_PER_SEC);
}

/* Only keepalives slow: each still renews the lease, so four TTLs pass
 * with no re-registration (the old client took 4 leases in 24 s). */
Test(lease, slow_keepalives_keep_the_lease, .timeout = 120) {
	slow_etcd("/v3/lease/keepalive", 24 * USEC_PER_SEC);
}

/* etcd renews at once but its answers to three keepalives in a row come
 * 7 s late, past the 6 s TTL: the node reports the outage (RETRYING) but
 * takes no new lease, and once answered is REGISTERED again on the same
 * lease, which etcd kept alive all along (the old client took a new one). */
Test(lease, unanswered_keepalives_are_not_a_loss, .timeout = 120) {
	proxy p = {};
	et slow = {}, obs = {};
	reg_log log = {};
	_cleanup_(node_reg_freep) node_reg *n = NULL;

	proxy_start_n(&p, "\"result\":\\{\"header\":\\{[^}]*\\},\"ID\"", "7", "3", true);
	cr_assert_eq(et_open(&slow, p.endpoint, NULL), 0);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoint(etcd, 0), NULL), 0);
	double g0 = grants_ok();

	cr_assert_eq(node_reg_new(&n, slow.client, "/t/nodes/n1", &info, 6, on_state, &log), 0);
	cr_assert(et_run_until(&slow, registered_n, &(want_reg){ &log, 1 }, 10 * USEC_PER_SEC), "never registered");
	int64_t lease = log.leases[0];
	bool kept = true;
	uint64_t end = hx_now_usec() + 20 * USEC_PER_SEC;
	while (hx_now_usec() < end && log.registered < 2) {
		et_run_for(&slow, 200 * USEC_PER_MSEC);
		kept = kept && key_lease(&obs) == lease;
	}
	cr_assert_eq(log.retrying, 1, "the outage was reported once (%u)", log.retrying);
	cr_assert_eq(log.registered, 2, "not REGISTERED again after the outage");
	cr_assert_eq(log.leases[1], lease, "a new lease %llx replaced %llx", (unsigned long long) log.leases[1],
		     (unsigned long long) lease);
	cr_assert(kept, "nodes/n1 left its first lease during the outage");
	cr_assert_eq(grants_ok() - g0, 1, "etcd granted %.0f leases", grants_ok() - g0);

	n = node_reg_free(n);
	et_close(&slow);
	et_close(&obs);
	proxy_stop(&p);
}

/* A grant with our own ID, sent twice (a retry after a lost answer, or
 * after the caller cancelled the first): one lease, and both answered as
 * granted with that ID. */
Test(lease, own_id_grant_is_idempotent) {
	et t = {};
	etcd_sync s1 = {}, s2 = {};
	_cleanup_(etcd_response_freep) etcd_response *g1 = NULL, *g2 = NULL;
	int64_t id = etcd_lease_new_id();

	cr_assert_gt(id, 0);
	cr_assert_eq(et_open(&t, hx_etcd_endpoint(etcd, 0), NULL), 0);
	double g0 = grants_ok();
	cr_assert_eq(etcd_lease_grant(t.client, 30, id, etcd_sync_cb, &s1, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s1, &g1), 0);
	cr_assert_eq(etcd_lease_grant(t.client, 30, id, etcd_sync_cb, &s2, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s2, &g2), 0, "%s", g2->error.message);
	cr_assert_eq(g1->lease_id, id);
	cr_assert_eq(g2->lease_id, id);
	cr_assert_eq(g2->ttl, 30);
	cr_assert_eq(grants_ok() - g0, 1, "one lease");
	cr_assert_neq(etcd_lease_new_id(), id);
	et_close(&t);
}

/* ---- a busy client ------------------------------------------------------------ */

typedef struct ka_probe {
	bool done;
	int64_t ttl;
	int code;
} ka_probe;

static void on_ka(etcd_client *c, etcd_response *r, void *userdata) {
	ka_probe *p = userdata;
	p->done = true;
	p->ttl = r->ttl;
	p->code = r->error.code;
	etcd_response_free(r);
}

static bool ka_done(void *ud) {
	return ((ka_probe *) ud)->done;
}

typedef struct busy {
	etcd_client *client;
	unsigned in_flight, served;
	bool stop;
} busy;

static void on_big(etcd_client *c, etcd_response *r, void *userdata);

static void big_range(busy *b) {
	etcd_range_req req = { .key = "/big/", .prefix = true };
	if (etcd_range(b->client, &req, on_big, b, NULL) == 0)
		b->in_flight++;
}

static void on_big(etcd_client *c, etcd_response *r, void *userdata) {
	busy *b = userdata;
	b->in_flight--;
	if (r->error.code == 0)
		b->served++;
	etcd_response_free(r);
	if (!b->stop)
		big_range(b);   /* keep the client's other connections full */
}

static bool busy_idle(void *ud) {
	return ((busy *) ud)->in_flight == 0;
}

/* A client with 40 watches open and 8 reads of a 4 MB prefix always in
 * flight (each holds a connection for a while, and its reply keeps the loop
 * busy parsing): its keepalives still come back well inside the keeper's
 * per-try deadline (TTL/4), never queued behind the reads. */
Test(lease, keepalive_not_behind_other_work, .timeout = 120) {
	et t = {};
	etcd_watch *w[40] = {};
	static et_watch_log wlog[40];
	busy b = {};
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *g = NULL;
	_cleanup_free_ char *big = malloc(40001);

	memset(big, 'x', 40000);
	big[40000] = '\0';
	cr_assert_eq(et_open(&t, hx_etcd_endpoint(etcd, 0), NULL), 0);
	for (int i = 0; i < 100; i++) {
		char key[32];
		snprintf(key, sizeof key, "/big/%03d", i);
		cr_assert_eq(et_put(&t, key, big, 0), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(w); i++)
		cr_assert_eq(etcd_watch_new(&w[i], t.client, &(etcd_watch_req){ .key = "/quiet/", .prefix = true },
					    et_watch_record, &wlog[i]), 0);
	cr_assert_eq(etcd_lease_grant(t.client, 10, 0, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, &g), 0);

	b.client = t.client;
	for (int i = 0; i < 8; i++)
		big_range(&b);
	et_run_for(&t, 500 * USEC_PER_MSEC);
	uint64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		ka_probe p = {};
		uint64_t t0 = hx_now_usec();
		cr_assert_eq(etcd_lease_keepalive(t.client, g->lease_id, on_ka, &p, NULL), 0);
		cr_assert(et_run_until(&t, ka_done, &p, 5 * USEC_PER_SEC), "keepalive %d did not come back in 5 s", i);
		cr_assert_eq(p.code, 0);
		cr_assert_gt(p.ttl, 0);
		uint64_t took = hx_now_usec() - t0;
		worst = took > worst ? took : worst;
		et_run_for(&t, 100 * USEC_PER_MSEC);
	}
	b.stop = true;
	cr_assert(et_run_until(&t, busy_idle, &b, 30 * USEC_PER_SEC));
	fprintf(stderr, "20 keepalives beside %u reads of 4 MB and 40 watches: worst %.1f ms\n", b.served,
		(double) worst / 1000.0);
	cr_assert_geq(b.served, 8, "the reads ran meanwhile");
	/* Within the keeper's per-try deadline for this lease, TTL/4. */
	cr_assert_lt(worst, 2500 * USEC_PER_MSEC, "a keepalive took %.0f ms", (double) worst / 1000.0);
	for (size_t i = 0; i < ELEMENTSOF(w); i++)
		w[i] = etcd_watch_free(w[i]);
	et_close(&t);
}

/* etcd frozen for twice the TTL: on waking it expires the lease, and the
 * node takes exactly one new lease and writes its key once on it. */
Test(lease, paused_past_ttl_regrants_once) {
	et t = {}, obs = {};
	reg_log log = {};
	_cleanup_(node_reg_freep) node_reg *n = NULL;

	cr_assert_eq(et_open(&t, hx_etcd_endpoint(etcd, 0), NULL), 0);
	cr_assert_eq(node_reg_new(&n, t.client, "/t/nodes/n1", &info, 3, on_state, &log), 0);
	cr_assert(et_run_until(&t, registered_n, &(want_reg){ &log, 1 }, 10 * USEC_PER_SEC), "never registered");
	int64_t first = log.leases[0];
	double g0 = grants_ok();

	cr_assert_eq(hx_etcd_member_stop(etcd, 0), 0);
	et_run_for(&t, 6 * USEC_PER_SEC);
	cr_assert_eq(hx_etcd_member_cont(etcd, 0), 0);
	cr_assert(et_run_until(&t, registered_n, &(want_reg){ &log, 2 }, 15 * USEC_PER_SEC),
		  "not registered again after the pause");
	et_run_for(&t, 4 * USEC_PER_SEC);   /* room for a second grant, if one were coming */

	cr_assert_eq(log.registered, 2, "registered %u times after one loss", log.registered);
	cr_assert_neq(log.leases[1], first);
	cr_assert_eq(node_reg_lease(n), log.leases[1]);
	cr_assert_eq(grants_ok() - g0, 1, "etcd granted %.0f leases to replace one", grants_ok() - g0);
	cr_assert_eq(et_open(&obs, hx_etcd_endpoint(etcd, 0), NULL), 0);
	cr_assert_eq(key_lease(&obs), log.leases[1]);

	n = node_reg_free(n);
	et_close(&t);
	et_close(&obs);
}
