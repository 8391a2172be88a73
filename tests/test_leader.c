/* test_leader.c — leader election: the pure helpers; the campaign module
 * against a real etcd (one member and three); and corrald as processes on a
 * 3-member etcd: one leader at all times, fail-over after SIGKILL within the
 * TTL + 1 s, hand-over on SIGTERM, and a leader cut off from etcd stepping
 * down before anyone else takes over. Timings are printed to the log. */
#include <jansson.h>
#include <signal.h>

#include "agree.h"
#include "etcd-test.h"
#include "leader.h"

#define PREFIX "/corral/t"
#define KEY    PREFIX "/leader"
#define TTL    2

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "leader", 1);
}

static void up3(void) {
	et_fixture_up(&etcd, &dir, "leader", 3);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(leader_pure, .timeout = 10);
TestSuite(leader, .init = up, .fini = down, .timeout = 60);
TestSuite(leader_cluster, .init = up3, .fini = down, .timeout = 90);
TestSuite(corrald_leader, .init = up3, .fini = down, .timeout = 120);

static double secs(uint64_t usec) {
	return (double) usec / (double) USEC_PER_SEC;
}

/* ---- pure ---------------------------------------------------------------------- */

Test(leader_pure, fence_compare) {
	etcd_compare f = leader_fence(KEY, 42);

	cr_assert_str_eq(f.key, KEY);
	cr_assert_eq(f.target, ETCD_CMP_CREATE);
	cr_assert_eq(f.result, ETCD_CMP_EQUAL);
	cr_assert_eq(f.number, 42);
}

Test(leader_pure, margin_and_deadline) {
	cr_assert_eq(leader_default_margin(2), 400 * USEC_PER_MSEC);
	cr_assert_eq(leader_default_margin(10), 2 * USEC_PER_SEC);
	cr_assert_eq(leader_default_margin(1), 250 * USEC_PER_MSEC, "the floor");
	cr_assert_eq(leader_default_margin(0), 0, "never more than half the TTL");
	cr_assert_eq(leader_deadline(5 * USEC_PER_SEC, 2, 400 * USEC_PER_MSEC), 6600 * USEC_PER_MSEC);
	cr_assert_eq(leader_deadline(0, 0, 1), 0);
}

Test(leader_pure, value_round_trip) {
	_cleanup_free_ char *v = leader_value_json("n1", 1700000000);
	_cleanup_free_ char *id = NULL, *id2 = NULL;
	uint64_t since = 1;

	cr_assert_str_eq(v, "{\"node_id\":\"n1\",\"since\":\"2023-11-14T22:13:20Z\"}");
	cr_assert_eq(leader_value_parse(v, strlen(v), &id, &since), 0);
	cr_assert_str_eq(id, "n1");
	cr_assert_eq(since, 1700000000);
	/* A hand-written value shows as it is. */
	cr_assert_eq(leader_value_parse("bob", 3, &id2, &since), 0);
	cr_assert_str_eq(id2, "bob");
	cr_assert_eq(since, 0);
}

/* ---- campaigns in this process ------------------------------------------------ */

typedef struct cand {
	const char *name;
	etcd_client *client;
	leader *l;
	unsigned elected, deposed;
	int64_t token;
	leader_reason why;
	uint64_t elected_at, deposed_at;
	bool resigned;
	int resign_error;
} cand;

static sd_event *ev;
static cand cands[3];
static size_t n_cands;
static unsigned max_leading;    /* most candidates leading at one instant */

static void on_elected(leader *l, int64_t token, void *userdata) {
	cand *c = userdata;
	c->elected++;
	c->token = token;
	c->elected_at = hx_now_usec();
}

static void on_deposed(leader *l, leader_reason why, void *userdata) {
	cand *c = userdata;
	c->deposed++;
	c->why = why;
	c->deposed_at = hx_now_usec();
}

static const leader_callbacks callbacks = { .elected = on_elected, .deposed = on_deposed };

static void open_cand(cand *c, const char *name, const char *endpoints) {
	_cleanup_strv_free_ char **eps = et_split(endpoints);
	etcd_options o = { .endpoints = eps, .request_timeout_usec = 3 * USEC_PER_SEC,
			   .connect_timeout_usec = 500 * USEC_PER_MSEC };

	if (!ev)
		cr_assert_eq(sd_event_new(&ev), 0);
	*c = (cand){ .name = name };
	cr_assert_eq(etcd_client_new(&c->client, ev, &o), 0);
}

static void start_cand(cand *c) {
	leader_options o = { .key = KEY, .node_id = c->name, .ttl_sec = TTL };
	cr_assert_eq(leader_new(&c->l, c->client, &o, &callbacks, c), 0);
}

static void close_all(void) {
	for (size_t i = 0; i < n_cands; i++) {
		cands[i].l = leader_free(cands[i].l);
		cands[i].client = etcd_client_free(cands[i].client);
	}
	n_cands = 0;
	ev = sd_event_unref(ev);
}

static unsigned n_leading(void) {
	unsigned n = 0;
	for (size_t i = 0; i < n_cands; i++)
		n += leader_is_leader(cands[i].l);
	return n;
}

/* Runs the loop until pred or the deadline, checking after every turn that
 * no two candidates lead at once. */
static bool run_until(bool (*pred)(void *), void *ud, uint64_t timeout) {
	uint64_t end = hx_now_usec() + timeout;

	for (;;) {
		unsigned n = n_leading();
		if (n > max_leading)
			max_leading = n;
		if (pred(ud))
			return true;
		if (hx_now_usec() >= end)
			return false;
		(void) sd_event_run(ev, 5 * USEC_PER_MSEC);
	}
}

static void run_for(uint64_t usec) {
	uint64_t end = hx_now_usec() + usec;
	while (hx_now_usec() < end) {
		(void) sd_event_run(ev, 5 * USEC_PER_MSEC);
		if (n_leading() > max_leading)
			max_leading = n_leading();
	}
}

static bool one_leading(void *ud) {
	return n_leading() == 1;
}

static bool other_than_leading(void *ud) {
	cand *old = ud;
	return n_leading() == 1 && !leader_is_leader(old->l);
}

static bool was_deposed(void *ud) {
	return ((cand *) ud)->deposed > 0;
}

static cand *current_leader(void) {
	for (size_t i = 0; i < n_cands; i++)
		if (leader_is_leader(cands[i].l))
			return &cands[i];
	return NULL;
}

static void start_three(const char *endpoints) {
	static const char *names[] = { "a", "b", "c" };
	max_leading = 0;
	n_cands = 3;
	for (size_t i = 0; i < 3; i++)
		open_cand(&cands[i], names[i], endpoints);
	for (size_t i = 0; i < 3; i++)
		start_cand(&cands[i]);
}

/* The key in etcd: create_revision and value. */
static int64_t key_create_revision(etcd_client *c, char **value, int64_t *lease) {
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *r = NULL;

	if (etcd_range(c, &(etcd_range_req){ .key = KEY }, etcd_sync_cb, &s, NULL) < 0 || etcd_wait(c, &s, &r) < 0 ||
	    r->n_kvs == 0)
		return 0;
	if (value)
		*value = strdup(r->kvs[0].value);
	if (lease)
		*lease = r->kvs[0].lease;
	return r->kvs[0].create_revision;
}

Test(leader, one_of_three_wins_and_token_is_create_revision) {
	start_three(hx_etcd_endpoints(etcd));
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC), "nobody won");
	run_for(3 * TTL * USEC_PER_SEC);       /* through several keepalives */
	cr_assert_eq(max_leading, 1, "two leaders at once");
	cand *w = current_leader();
	cr_assert_not_null(w);
	cr_assert_eq(w->elected, 1, "elected once, kept it");
	cr_assert_eq(w->deposed, 0);

	_cleanup_free_ char *value = NULL;
	int64_t lease = 0;
	int64_t rev = key_create_revision(cands[0].client, &value, &lease);
	cr_assert_eq(leader_token(w->l), rev, "the token is the key's create_revision");
	cr_assert_eq(w->token, rev);
	cr_assert_eq(lease, leader_lease(w->l), "the key is on the winner's own lease");
	json_auto_t *o = json_loads(value, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(o, "node_id")), w->name, "value: %s", value);
	cr_assert_not_null(json_string_value(json_object_get(o, "since")));
	for (size_t i = 0; i < 3; i++)
		if (&cands[i] != w)
			cr_assert_eq(leader_token(cands[i].l), 0);
	close_all();
}

Test(leader, resign_hands_over_at_once) {
	start_three(hx_etcd_endpoints(etcd));
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	cand *old = current_leader();
	int64_t t1 = leader_token(old->l);

	uint64_t t0 = hx_now_usec();
	cr_assert_eq(leader_resign(old->l, NULL, NULL), 0);
	cr_assert_not(leader_is_leader(old->l), "steps down at once");
	cr_assert_eq(old->why, LEADER_RESIGNED);
	cr_assert(run_until(other_than_leading, old, 2 * USEC_PER_SEC), "no hand-over");
	uint64_t took = hx_now_usec() - t0;
	cand *n = current_leader();
	cr_log_info("hand-over after resign: %.3f s", secs(took));
	fprintf(stderr, "leader module: hand-over after resign took %.3f s\n", secs(took));
	cr_assert_lt(took, USEC_PER_SEC, "well under the TTL");
	cr_assert_gt(leader_token(n->l), t1, "a new token, larger");
	cr_assert_eq(max_leading, 1);
	close_all();
}

static bool key_held_by_new_lease(void *ud) {
	return n_leading() == 1 && current_leader()->token > *(int64_t *) ud;
}

Test(leader, lease_revoked_by_hand) {
	start_three(hx_etcd_endpoints(etcd));
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	cand *old = current_leader();
	int64_t t1 = old->token;

	etcd_sync s = {};
	cr_assert_eq(etcd_lease_revoke(cands[0].client, leader_lease(old->l), etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(cands[0].client, &s, NULL), 0);
	cr_assert(run_until(was_deposed, old, 2 * USEC_PER_SEC), "the leader did not notice");
	/* A change by hand is not a hand-over: another candidate's watch may
	 * see the delete, campaign and win before the old leader's watch
	 * tells it (the fence is what stops its writes then, see
	 * stale_fence_is_refused). Count overlaps from here on. */
	max_leading = 0;
	/* The watch (key deleted) or the keepalive (lease gone) tells first. */
	cr_assert(old->why == LEADER_KEY_DELETED || old->why == LEADER_LEASE_LOST, "why: %s",
		  leader_reason_to_string(old->why));
	cr_assert(run_until(key_held_by_new_lease, &t1, 3 * USEC_PER_SEC), "no new leader");
	/* The old one campaigns again on a new lease and may win; either way
	 * there is one leader and its key is on a live lease. */
	run_for(TTL * USEC_PER_SEC);
	cr_assert_eq(n_leading(), 1);
	cr_assert_eq(key_create_revision(cands[0].client, NULL, NULL), current_leader()->token);
	cr_assert_eq(max_leading, 1);
	close_all();
}

Test(leader, key_deleted_by_hand) {
	start_three(hx_etcd_endpoints(etcd));
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	cand *old = current_leader();
	int64_t t1 = old->token;

	etcd_sync s = {};
	cr_assert_eq(etcd_delete(cands[1].client, &(etcd_delete_req){ .key = KEY }, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(cands[1].client, &s, NULL), 0);
	cr_assert(run_until(was_deposed, old, 2 * USEC_PER_SEC), "the leader did not notice");
	max_leading = 0;        /* as above: a deletion by hand races the watches */
	cr_assert_eq(old->why, LEADER_KEY_DELETED);
	cr_assert(run_until(key_held_by_new_lease, &t1, 2 * USEC_PER_SEC), "no new leader");
	cr_assert_eq(key_create_revision(cands[0].client, NULL, NULL), current_leader()->token);
	cr_assert_eq(max_leading, 1);
	close_all();
}

/* For agree proposals: sets "f/k" to the userdata string. */
static int set_k(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t size) {
	json_t *f = json_object_get(files, "f");
	if (!f) {
		f = json_object();
		json_object_set_new(files, "f", f);
	}
	return json_object_set_new(f, "k", json_string(userdata));
}

Test(leader, stale_fence_is_refused) {
	start_three(hx_etcd_endpoints(etcd));
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	cand *old = current_leader();
	int64_t t1 = old->token;
	etcd_compare f1 = leader_fence(KEY, t1);

	/* With the current token a fenced proposal commits. */
	agree_options o = { .prefix = PREFIX, .proposer = "a", .fence = &f1, .n_fence = 1 };
	_cleanup_(agree_owned_result_done) agree_owned_result r1 = {};
	cr_assert_eq(agree_propose_sync(old->client, &o, set_k, "one", &r1), 0, "%s", r1.error.message);
	cr_assert(r1.committed);
	_cleanup_(agree_owned_result_done) agree_owned_result r1b = {};
	cr_assert_eq(agree_propose_sync(old->client, &o, set_k, "one-b", &r1b), 0, "%s", r1b.error.message);
	cr_assert(r1b.committed, "two snapshots: the first is collectable");

	/* A new leader (the old key deleted by hand) ... */
	etcd_sync s = {};
	cr_assert_eq(etcd_delete(cands[1].client, &(etcd_delete_req){ .key = KEY }, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(cands[1].client, &s, NULL), 0);
	cr_assert(run_until(key_held_by_new_lease, &t1, 3 * USEC_PER_SEC), "no new leader");
	int64_t t2 = current_leader()->token;

	/* ... and the old token's writes fail: at the agree level ... */
	agree_options o2 = { .prefix = PREFIX, .proposer = "a", .fence = &f1, .n_fence = 1 };
	_cleanup_(agree_owned_result_done) agree_owned_result r2 = {};
	cr_assert_eq(agree_propose_sync(old->client, &o2, set_k, "two", &r2), -EPERM, "%s", r2.error.message);
	cr_assert_not(r2.committed);
	agree_error ge = {};
	cr_assert_eq(agree_collect_sync(old->client, PREFIX, 0, &f1, 1, &ge), -EPERM, "%s", ge.message);
	/* ... and as a plain txn. */
	etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = PREFIX "/scale/x", .value = "late" } };
	etcd_sync ts = {};
	_cleanup_(etcd_response_freep) etcd_response *tr = NULL;
	cr_assert_eq(etcd_txn(old->client, &(etcd_txn_req){ &f1, 1, &put, 1, NULL, 0 }, etcd_sync_cb, &ts, NULL), 0);
	cr_assert_eq(etcd_wait(old->client, &ts, &tr), 0);
	cr_assert_not(tr->succeeded, "a deposed leader's late write went through");

	/* The current token still writes. */
	etcd_compare f2 = leader_fence(KEY, t2);
	agree_options o3 = { .prefix = PREFIX, .proposer = "b", .fence = &f2, .n_fence = 1 };
	_cleanup_(agree_owned_result_done) agree_owned_result r3 = {};
	cr_assert_eq(agree_propose_sync(old->client, &o3, set_k, "three", &r3), 0, "%s", r3.error.message);

	/* Told of a refused fenced write, a leader steps down and looks
	 * again: still its key, so it leads again with the same token. */
	cand *cur = current_leader();
	unsigned e = cur->elected;
	leader_fence_failed(cur->l);
	cr_assert_not(leader_is_leader(cur->l));
	cr_assert_eq(cur->why, LEADER_FENCE_FAILED);
	cr_assert(run_until(one_leading, NULL, 2 * USEC_PER_SEC));
	cr_assert_eq(current_leader(), cur);
	cr_assert_eq(cur->elected, e + 1);
	cr_assert_eq(leader_token(cur->l), t2);
	close_all();
}

static void on_resigned(leader *l, const etcd_error *error, void *userdata) {
	cand *c = userdata;
	c->resigned = true;
	c->resign_error = error ? error->code : 0;
}

static bool resigned(void *ud) {
	return ((cand *) ud)->resigned;
}

Test(leader, resign_without_etcd_is_bounded) {
	/* A single candidate whose etcd goes away: it steps down on its own
	 * before the TTL, and a resignation then reports an error instead of
	 * hanging. */
	max_leading = 0;
	n_cands = 1;
	open_cand(&cands[0], "a", hx_etcd_endpoints(etcd));
	start_cand(&cands[0]);
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_etcd_stop_member(etcd, 0, SIGKILL), 0);
	cr_assert(run_until(was_deposed, &cands[0], 3 * USEC_PER_SEC));
	cr_assert_eq(cands[0].why, LEADER_LEASE_UNCONFIRMED);
	cr_log_info("stepped down %.3f s after etcd died", secs(cands[0].deposed_at - t0));
	cr_assert_lt(cands[0].deposed_at - t0, TTL * USEC_PER_SEC);
	cr_assert_eq(leader_resign(cands[0].l, on_resigned, &cands[0]), 0);
	cr_assert(run_until(resigned, &cands[0], 10 * USEC_PER_SEC));
	cr_assert_lt(cands[0].resign_error, 0);
	close_all();
}

/* ---- three members ------------------------------------------------------------- */

static bool etcd_has_leader(void *ud) {
	return hx_etcd_leader(etcd, ud) == 0;
}

/* A raft follower: cutting it off leaves the cluster as it was. */
static unsigned a_follower(void) {
	unsigned l;
	cr_assert(hx_wait_until(etcd_has_leader, &l, 10 * USEC_PER_SEC));
	return (l + 1) % 3;
}

static bool anyone_else_leading(void *ud) {
	for (size_t i = 0; i < n_cands; i++)
		if (&cands[i] != ud && leader_is_leader(cands[i].l))
			return true;
	return false;
}

Test(leader_cluster, cut_off_leader_steps_down_before_anyone_wins) {
	unsigned m = a_follower();
	_cleanup_free_ char *others = NULL;
	cr_assert_geq(asprintf(&others, "%s,%s", hx_etcd_endpoint(etcd, (m + 1) % 3), hx_etcd_endpoint(etcd, (m + 2) % 3)),
		      0);

	/* a talks to member m only, and wins first. */
	max_leading = 0;
	n_cands = 3;
	open_cand(&cands[0], "a", hx_etcd_endpoint(etcd, m));
	open_cand(&cands[1], "b", others);
	open_cand(&cands[2], "c", others);
	start_cand(&cands[0]);
	cr_assert(run_until(one_leading, NULL, 5 * USEC_PER_SEC));
	start_cand(&cands[1]);
	start_cand(&cands[2]);
	run_for(TTL * USEC_PER_SEC);
	cr_assert(leader_is_leader(cands[0].l));
	int64_t t1 = cands[0].token;

	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_etcd_stop_member(etcd, m, SIGKILL), 0);
	cr_assert(run_until(anyone_else_leading, &cands[0], (TTL + 3) * USEC_PER_SEC), "nobody took over");
	cand *n = current_leader();
	cr_assert_eq(cands[0].deposed, 1, "the cut-off leader stepped down");
	cr_assert_eq(cands[0].why, LEADER_LEASE_UNCONFIRMED);
	uint64_t down_after = cands[0].deposed_at - t0, won_after = n->elected_at - t0;
	fprintf(stderr, "leader module: cut off at 0; stepped down at %.3f s; %s won at %.3f s\n", secs(down_after),
		n->name, secs(won_after));
	cr_assert_lt(down_after, TTL * USEC_PER_SEC, "stopped acting before the TTL");
	cr_assert_lt(cands[0].deposed_at, n->elected_at, "stepped down before another won");
	cr_assert_lt(won_after, (TTL + 1) * USEC_PER_SEC);
	cr_assert_eq(max_leading, 1);

	/* Back in touch: its old token writes nothing. */
	cr_assert_eq(hx_etcd_start_member(etcd, m), 0);
	etcd_compare f1 = leader_fence(KEY, t1);
	etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = PREFIX "/scale/x", .value = "late" } };
	etcd_sync ts = {};
	_cleanup_(etcd_response_freep) etcd_response *tr = NULL;
	cr_assert_eq(etcd_txn(cands[0].client, &(etcd_txn_req){ &f1, 1, &put, 1, NULL, 0 }, etcd_sync_cb, &ts, NULL),
		     0);
	cr_assert_eq(etcd_wait(cands[0].client, &ts, &tr), 0);
	cr_assert_not(tr->succeeded);
	/* And it follows the new leader rather than lead again. */
	run_for(TTL * USEC_PER_SEC);
	cr_assert_not(leader_is_leader(cands[0].l));
	cr_assert_eq(n_leading(), 1);
	cr_assert_eq(max_leading, 1);
	close_all();
}

/* ---- corrald as processes ------------------------------------------------------ */

typedef struct proc_node {
	char id[8];
	char *cfg, *log;
	hx_proc *p;
	bool dead;
} proc_node;

static proc_node pn[3];

static void start_node(proc_node *n, const char *id, const char *endpoints) {
	_cleanup_free_ char *bin = NULL;

	snprintf(n->id, sizeof n->id, "%s", id);
	cr_assert_geq(asprintf(&n->cfg, "%s/%s.yaml", dir, id), 0);
	cr_assert_geq(asprintf(&n->log, "%s/%s.log", dir, id), 0);
	cr_assert_eq(hx_write_corrald_config(n->cfg, id, "Worker", endpoints), 0);
	cr_assert_geq(asprintf(&bin, "%s/corrald", hx_builddir()), 0);
	char *const argv[] = { bin, "--config", n->cfg, NULL };
	cr_assert_eq(hx_proc_spawn(&n->p, argv, NULL, n->log), 0);
	n->dead = false;
}

static void stop_nodes(void) {
	for (size_t i = 0; i < 3; i++) {
		pn[i].p = hx_proc_free(pn[i].p);
		free(pn[i].cfg);
		free(pn[i].log);
		pn[i] = (proc_node){};
	}
}

static size_t count(const char *text, const char *needle) {
	size_t n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* What the node's log says now: leading or not. */
static bool claims(const proc_node *n) {
	_cleanup_free_ char *text = hx_read_file(n->log, NULL);
	return count(text, "became leader (token") > count(text, "lost leadership");
}

static bool lost_logged(const proc_node *n) {
	_cleanup_free_ char *text = hx_read_file(n->log, NULL);
	return count(text, "lost leadership") > 0;
}

/* Polls the logs; live nodes only (a SIGKILLed one cannot say it stopped). */
typedef struct poll_state {
	unsigned max_claims;
	int leader;                     /* index of the one claimant, or -1 */
	int not;                        /* with wait_other: the one to replace */
} poll_state;

static unsigned poll_claims(poll_state *ps) {
	unsigned n = 0;
	ps->leader = -1;
	for (int i = 0; i < 3; i++)
		if (pn[i].p && !pn[i].dead && claims(&pn[i])) {
			n++;
			ps->leader = i;
		}
	if (n > ps->max_claims)
		ps->max_claims = n;
	return n;
}

static bool one_claims(void *ud) {
	poll_state *ps = ud;
	return poll_claims(ps) == 1 && (ps->not < 0 || ps->leader != ps->not);
}

static bool key_names(void *ud) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, KEY);
	return v && strstr(v, ud);
}

/* Polls for a while, whatever happens, recording claims. */
static void poll_for(poll_state *ps, uint64_t usec) {
	uint64_t end = hx_now_usec() + usec;
	while (hx_now_usec() < end) {
		poll_claims(ps);
		usleep(5000);
	}
}

static int ctl(char **out, const char *cmd, const char *format) {
	_cleanup_free_ char *bin = NULL;
	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	char *const argv[] = { bin, "-e", (char *) hx_etcd_endpoints(etcd), "--cluster", "t", "-o", (char *) format,
			       (char *) cmd, NULL };
	return hx_run(out, 20 * USEC_PER_SEC, argv, NULL);
}

Test(corrald_leader, one_leader_failover_and_handover) {
	static const char *ids[] = { "n1", "n2", "n3" };
	poll_state ps = { .not = -1 };

	for (int i = 0; i < 3; i++)
		start_node(&pn[i], ids[i], hx_etcd_endpoints(etcd));
	cr_assert(hx_wait_until(one_claims, &ps, 10 * USEC_PER_SEC), "no leader");
	poll_for(&ps, 3 * TTL * USEC_PER_SEC);
	cr_assert_eq(ps.max_claims, 1, "two corrald claimed leadership at once");
	cr_assert(one_claims(&ps));
	int first = ps.leader;
	cr_assert(key_names((void *) pn[first].id), "the key names the node that claims");

	/* corralctl shows it: leader (table, json) and status. */
	_cleanup_free_ char *table = NULL, *js = NULL, *st = NULL;
	cr_assert_eq(ctl(&table, "leader", "table"), 0);
	cr_assert(strstr(table, "LEADER") && strstr(table, pn[first].id) && strstr(table, "TOKEN"), "%s", table);
	cr_assert_eq(ctl(&js, "leader", "json"), 0);
	json_auto_t *o = json_loads(js, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(o, "node_id")), pn[first].id, "%s", js);
	cr_assert_gt(json_integer_value(json_object_get(o, "token")), 0, "%s", js);
	cr_assert_not_null(json_string_value(json_object_get(o, "since")), "%s", js);
	json_int_t ttl = json_integer_value(json_object_get(o, "ttl"));
	cr_assert(ttl >= 0 && ttl <= TTL, "ttl %lld", (long long) ttl);
	cr_assert_eq(ctl(&st, "status", "table"), 0);
	_cleanup_free_ char *want = NULL;
	cr_assert_geq(asprintf(&want, "leader: %s since ", pn[first].id), 0);
	cr_assert(strstr(st, want), "status: %s", st);

	/* SIGTERM: it resigns, and another takes over well under the TTL. */
	ps.not = first;
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_proc_signal(pn[first].p, SIGTERM), 0);
	cr_assert(hx_wait_until(one_claims, &ps, 5 * USEC_PER_SEC), "no hand-over");
	uint64_t handover = hx_now_usec() - t0;
	int second = ps.leader;
	int status;
	cr_assert_eq(hx_proc_wait(pn[first].p, 10 * USEC_PER_SEC, &status), 0);
	pn[first].dead = true;
	_cleanup_free_ char *flog = hx_read_file(pn[first].log, NULL);
	cr_assert(strstr(flog, "lost leadership: resigned"), "%s", flog);
	fprintf(stderr, "corrald: hand-over after SIGTERM of the leader: %.3f s\n", secs(handover));
	cr_log_info("hand-over after SIGTERM: %.3f s", secs(handover));
	cr_assert_lt(handover, USEC_PER_SEC, "hand-over took %.3f s", secs(handover));
	cr_assert(hx_wait_until(key_names, pn[second].id, 2 * USEC_PER_SEC));

	/* SIGKILL: the last one takes over within the TTL + 1 s. */
	ps.not = second;
	t0 = hx_now_usec();
	cr_assert_eq(hx_proc_signal(pn[second].p, SIGKILL), 0);
	cr_assert_eq(hx_proc_wait(pn[second].p, 5 * USEC_PER_SEC, &status), 0);
	pn[second].dead = true;
	cr_assert(hx_wait_until(one_claims, &ps, (TTL + 5) * USEC_PER_SEC), "no fail-over");
	uint64_t failover = hx_now_usec() - t0;
	fprintf(stderr, "corrald: fail-over after SIGKILL of the leader: %.3f s (TTL %d s)\n", secs(failover), TTL);
	cr_log_info("fail-over after SIGKILL: %.3f s", secs(failover));
	cr_assert_lt(failover, (TTL + 1) * USEC_PER_SEC, "fail-over took %.3f s", secs(failover));
	cr_assert_eq(ps.max_claims, 1, "two corrald claimed leadership at once");
	stop_nodes();
}

static bool lost_or_other_claims(void *ud) {
	poll_state *ps = ud;
	/* Others first, then the cut-off one (see below). */
	bool other = false;
	for (int i = 0; i < 3; i++)
		if (i != ps->not && claims(&pn[i]))
			other = true;
	bool lost = lost_logged(&pn[ps->not]);
	poll_claims(ps);
	return lost || other;
}

static bool other_claims(void *ud) {
	poll_state *ps = ud;
	return poll_claims(ps) == 1 && ps->leader != ps->not;
}

Test(corrald_leader, cut_off_leader_stops_first) {
	unsigned m = a_follower();
	_cleanup_free_ char *others = NULL;
	cr_assert_geq(asprintf(&others, "%s,%s", hx_etcd_endpoint(etcd, (m + 1) % 3), hx_etcd_endpoint(etcd, (m + 2) % 3)),
		      0);
	poll_state ps = { .not = -1 };

	/* n1 talks to member m only and leads; the others to the rest. */
	start_node(&pn[0], "n1", hx_etcd_endpoint(etcd, m));
	cr_assert(hx_wait_until(one_claims, &ps, 10 * USEC_PER_SEC), "n1 did not lead");
	start_node(&pn[1], "n2", others);
	start_node(&pn[2], "n3", others);
	poll_for(&ps, TTL * USEC_PER_SEC);
	cr_assert_eq(ps.leader, 0);

	ps.not = 0;
	uint64_t t0 = hx_now_usec();
	cr_assert_eq(hx_etcd_stop_member(etcd, m, SIGKILL), 0);
	/* Whichever shows first: n1's step-down must. The others' logs are
	 * read before n1's, so an n2/n3 claim seen here happened before the
	 * n1 read. */
	cr_assert(hx_wait_until(lost_or_other_claims, &ps, (TTL + 5) * USEC_PER_SEC), "nothing happened");
	bool other_first = false;
	for (int i = 1; i < 3; i++)
		other_first = other_first || claims(&pn[i]);
	uint64_t lost_at = hx_now_usec() - t0;
	cr_assert(lost_logged(&pn[0]), "n1 never said it stopped leading");
	cr_assert_not(other_first && ps.max_claims > 1, "another node led while n1 still did");
	cr_assert(hx_wait_until(other_claims, &ps, (TTL + 5) * USEC_PER_SEC), "nobody took over");
	uint64_t won_at = hx_now_usec() - t0;
	fprintf(stderr, "corrald: leader cut off at 0; it stepped down by %.3f s; %s led by %.3f s\n", secs(lost_at),
		pn[ps.leader].id, secs(won_at));
	cr_assert_lt(lost_at, TTL * USEC_PER_SEC, "stopped acting before the TTL");
	cr_assert_lt(lost_at, won_at);
	cr_assert_eq(ps.max_claims, 1, "two corrald claimed leadership at once");
	_cleanup_free_ char *l1 = hx_read_file(pn[0].log, NULL);
	cr_assert(strstr(l1, "lost leadership: lease not confirmed"), "%s", l1);
	stop_nodes();
}
