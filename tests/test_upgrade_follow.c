/* test_upgrade_follow.c — the follower of this node's order (upgrade.h,
 * upgrade_follow; the upgrade runner and corrald's pin follower both use
 * it) against a real etcd: the test writes upgrade/nodes/n1 and
 * upgrade/progress/n1 and records what the follower hands on. The
 * compaction case puts tests/holdproxy.py in front of etcd, holding the
 * answer to the follower's first read while the order moves on twice and
 * etcd compacts: the watch from the read's revision is compacted, and the
 * follower must read again. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "etcd-test.h"
#include "harness.h"
#include "keys.h"
#include "rollout.h"
#include "upgrade.h"

#define WAIT_USEC (15 * USEC_PER_SEC)

static hx_etcd *etcd;
static char *dir;
static et t;

static void up(void) {
	et_fixture_up(&etcd, &dir, "upgrade-follow", 1);
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static void down(void) {
	et_close(&t);
	et_fixture_down(&etcd, &dir);
}

TestSuite(upgrade_follow, .init = up, .fini = down, .timeout = 90);

/* What the follower handed on. */
typedef struct seen {
	unsigned changes, reads, bad_orders, troubles;
	bool have;                      /* the last change: an order */
	char plan[32];
	long long gen;
	bool read_progress;             /* the last read: a progress */
	char progress_plan[32];
} seen;

static void on_follow(upgrade_follow *f, const upgrade_follow_event *e, void *userdata) {
	seen *s = userdata;

	if (e->kind == UPGRADE_FOLLOW_TROUBLE) {
		cr_log_info("trouble %d: %s: %s", e->trouble, e->key ? e->key : "-", e->message);
		s->troubles++;
		if (e->trouble == UPGRADE_FOLLOW_BAD_ORDER)
			s->bad_orders++;
		return;
	}
	s->changes++;
	s->have = e->order != NULL;
	snprintf(s->plan, sizeof s->plan, "%s", e->order ? e->order->plan : "");
	s->gen = e->order ? (long long) e->order->generation : 0;
	if (e->read) {
		s->reads++;
		s->read_progress = e->progress != NULL;
		snprintf(s->progress_plan, sizeof s->progress_plan, "%s",
			 e->progress && e->progress->plan ? e->progress->plan : "");
	}
	cr_log_info("change %u (read %d): %s gen %lld", s->changes, e->read, s->have ? s->plan : "(none)", s->gen);
}

static char *order_text(const char *plan, int64_t gen) {
	rollout_order o = { .plan = (char *) plan, .generation = gen, .verb = ROLLOUT_UPGRADE,
			    .target.image = "img:2", .from.image = "img:1", .issued = time(NULL) };
	json_auto_t *j = rollout_order_to_json(&o);
	return json_dumps(j, JSON_COMPACT);
}

static void put_order(const char *plan, int64_t gen) {
	_cleanup_free_ char *text = order_text(plan, gen), *key = keys_entry("/corral/t", KEYS_UPGRADE_NODES, "n1");
	cr_assert_eq(et_put(&t, key, text, 0), 0);
}

static void put_raw(const char *value) {
	_cleanup_free_ char *key = keys_entry("/corral/t", KEYS_UPGRADE_NODES, "n1");
	cr_assert_eq(et_put(&t, key, value, 0), 0);
}

typedef struct want {
	seen *s;
	unsigned changes;
} want;

static bool changed(void *ud) {
	want *w = ud;
	return w->s->changes >= w->changes;
}

static bool bad_order_seen(void *ud) {
	return ((seen *) ud)->bad_orders > 0;
}

/* A malformed order is reported once and changes nothing: the last good
 * order stands; the next good one is handed on; a delete hands on none. */
Test(upgrade_follow, a_malformed_order_keeps_the_last_good_one_and_a_delete_gives_none) {
	seen s = {};
	_cleanup_(upgrade_follow_freep) upgrade_follow *f = NULL;

	put_order("p1", 1);
	{
		rollout_progress p = { .plan = "p1", .generation = 1, .verb = ROLLOUT_UPGRADE,
				       .state = ROLLOUT_STEP_DONE, .n_steps = 1, .step = 1 };
		json_auto_t *j = rollout_progress_to_json(&p);
		_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
		_cleanup_free_ char *key = keys_entry("/corral/t", KEYS_UPGRADE_PROGRESS, "n1");
		cr_assert_eq(et_put(&t, key, text, 0), 0);
	}
	cr_assert_eq(upgrade_follow_new(&f, t.event, t.client, "/corral/t", "n1", on_follow, &s), 0);
	cr_assert(et_run_until(&t, changed, &(want) { &s, 1 }, WAIT_USEC));
	cr_assert_eq(s.reads, 1);
	cr_assert(s.have);
	cr_assert_str_eq(s.plan, "p1");
	cr_assert(s.read_progress, "the progress is handed on with the read");
	cr_assert_str_eq(s.progress_plan, "p1");

	put_raw("{\"plan\": ");
	cr_assert(et_run_until(&t, bad_order_seen, &s, WAIT_USEC));
	put_raw("{\"plan\": \"p1\", \"generation\": \"two\"}");
	cr_assert(et_run_until(&t, changed, &(want) { &s, 2 }, 500 * USEC_PER_MSEC) == false,
		  "a malformed order is no change");
	cr_assert_eq(s.bad_orders, 2, "each malformed order is reported once");
	cr_assert(s.have);
	cr_assert_str_eq(s.plan, "p1");

	put_order("p1", 2);
	cr_assert(et_run_until(&t, changed, &(want) { &s, 2 }, WAIT_USEC));
	cr_assert(s.have);
	cr_assert_eq(s.gen, 2);

	_cleanup_free_ char *key = keys_entry("/corral/t", KEYS_UPGRADE_NODES, "n1");
	_cleanup_(etcd_response_freep) etcd_response *del = NULL;
	{
		etcd_sync sy = {};
		cr_assert_eq(etcd_delete(t.client, &(etcd_delete_req) { .key = key }, etcd_sync_cb, &sy, NULL), 0);
		cr_assert_eq(etcd_wait(t.client, &sy, &del), 0);
	}
	cr_assert_eq(del->error.code, 0);
	cr_assert(et_run_until(&t, changed, &(want) { &s, 3 }, WAIT_USEC));
	cr_assert_not(s.have, "a deleted order is none");
	cr_assert_eq(s.reads, 1, "no read again: the watch carried every change");
	cr_assert_eq(s.troubles, 2);
}

typedef struct proxy_wait {
	const char *log, *what;
} proxy_wait;

static bool proxy_says(void *ud) {
	proxy_wait *w = ud;
	_cleanup_free_ char *text = hx_read_file(w->log, NULL);
	return text && strstr(text, w->what);
}

static bool read_twice(void *ud) {
	return ((seen *) ud)->reads >= 2;
}

/* The answer to the first read (order p1 gen 1) comes late; meanwhile gen
 * 2 and gen 3 land and etcd compacts past gen 2. The watch from the read's
 * revision is compacted: the follower reads again and hands on gen 3, with
 * the read (gen 2 was never seen: it is gone). */
Test(upgrade_follow, a_compaction_reads_again_and_hands_on_what_landed_meanwhile) {
	const char *upstream = strrchr(hx_etcd_endpoint(etcd, 0), ':') + 1;
	int port = hx_free_port();
	_cleanup_free_ char *pport = hx_fmt("%d", port), *plog = hx_fmt("%s/proxy.log", dir);
	_cleanup_free_ char *prog = hx_fmt("%s/tests/holdproxy.py", hx_srcdir());
	_cleanup_free_ char *endpoint = hx_fmt("http://127.0.0.1:%d", port);
	const char *py = getenv("CORRAL_PYTHON3");
	char *const argv[] = { (char *) (py && *py ? py : "python3"), prog, pport, (char *) upstream,
			       "response_range", "3", "1", "reply", NULL };
	_cleanup_(hx_proc_freep) hx_proc *proxy = NULL;
	seen s = {};
	et t2 = {};
	_cleanup_(upgrade_follow_freep) upgrade_follow *f = NULL;

	put_order("p1", 1);
	cr_assert_eq(hx_proc_spawn(&proxy, argv, NULL, plog), 0);
	cr_assert(hx_wait_until(proxy_says, &(proxy_wait) { plog, "listening" }, 10 * USEC_PER_SEC),
		  "holdproxy did not start");
	/* The held answer must not look like a lost one. */
	etcd_options o = { .request_timeout_usec = 20 * USEC_PER_SEC, .attempt_timeout_usec = 10 * USEC_PER_SEC };
	cr_assert_eq(et_open(&t2, endpoint, &o), 0);
	cr_assert_eq(upgrade_follow_new(&f, t2.event, t2.client, "/corral/t", "n1", on_follow, &s), 0);
	cr_assert(et_run_until(&t2, proxy_says, &(proxy_wait) { plog, "held 1" }, WAIT_USEC),
		  "the first read's answer was not held");

	put_order("p1", 2);
	put_order("p1", 3);
	_cleanup_(etcd_response_freep) etcd_response *cur = et_range(&t, &(etcd_range_req) { .key = "/corral/t/" });
	_cleanup_free_ char *rev = hx_fmt("%lld", (long long) cur->header.revision);
	char *const args[] = { "compact", rev, NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0);

	cr_assert(et_run_until(&t2, read_twice, &s, WAIT_USEC), "no read after the compaction");
	cr_assert_eq(s.reads, 2);
	cr_assert_eq(s.changes, 2, "the held read (gen 1), then the read again (gen 3)");
	cr_assert(s.have);
	cr_assert_str_eq(s.plan, "p1");
	cr_assert_eq(s.gen, 3);
	cr_assert_eq(s.troubles, 0, "a compaction is no trouble");

	f = upgrade_follow_free(f);
	et_close(&t2);
}
