/* test_rollout_loop.c — the leader's rollout loop (rollout-loop.h)
 * in-process against a real etcd, driven directly (no corrald). The test
 * plays the nodes' part: nodes/<id> records with an image, and for every
 * order the loop writes, the node's progress (done, with the order's
 * target as its image) — the way src/upgrade/ would report. A watch on
 * upgrade/nodes/ logs every order the loop wrote, so the tests assert on
 * the sequence: prepare to all, then the canary, then batches within the
 * budget; FINISH orders and upgrade/stable at the end; a new leader
 * continuing a bake and a batch without rewriting them; a stale token
 * refused; the fleet gate's three outcomes. Every wait is bounded and on a
 * condition. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROLLOUT_LOOP_TAG "rollout-loop"
#include "rollout-loop-test.h"
#include "keys.h"
#include "rollout-loop.h"
#include "rollout.h"

#define NODES 5

TestSuite(rollout_loop, .init = up, .fini = down, .timeout = 120);

/* ---- the plan and the nodes ---- */

static const char *node_ids[NODES] = { "n1", "n2", "n3", "n4", "n5" };

static void plan_defaults(rollout_plan *p, const char *id) {
	rollout_plan_defaults(p);
	p->id = (char *) id;
	p->target.image = (char *) "v2";
	p->canary_nodes = 1;
	p->canary_bake = 1;
	p->auto_promote = true;
	p->max_unavailable = 2;
	p->min_healthy_percent = 0;
	p->min_healthy_time = 1;
	p->healthy_deadline = 300;
	p->progress_deadline = 900;
	p->final_bake = 1;
	p->created = time(NULL) - 10;
}

static void write_plan(const char *prefix, const rollout_plan *p) {
	json_auto_t *j = rollout_plan_to_json(p);
	cr_assert_not_null(j);
	put_json(prefix, "upgrade/plan", j);
}

static void write_node(const char *prefix, const char *id, const char *image) {
	_cleanup_free_ char *sub = NULL;
	json_auto_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "node_id", id, "address", "10.0.0.1", "pool", "web",
				   "image", image, "started", (json_int_t) time(NULL) - 100);
	cr_assert_geq(asprintf(&sub, "nodes/%s", id), 0);
	put_json(prefix, sub, j);
}

static void seed_nodes(const char *prefix) {
	for (size_t i = 0; i < NODES; i++)
		write_node(prefix, node_ids[i], "v1");
}

/* ---- the order log (a watch on upgrade/nodes/) ---- */

typedef struct order_seen {
	char node[16];
	rollout_verb verb;
	rollout_role role;
	int batch;
	int64_t generation;
	bool cleanup;
	time_t issued;
	uint64_t at;            /* when the watch saw it (monotonic) */
} order_seen;

typedef struct order_log {
	order_seen v[256];
	size_t n;
} order_log;

static void on_orders(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	order_log *log = userdata;

	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events && log->n < ELEMENTSOF(log->v); i++) {
		const etcd_event *e = &m->events[i];
		const char *slash;
		rollout_order o = {};
		rollout_error err;
		if (e->type != ETCD_EVENT_PUT)
			continue;
		json_auto_t *j = json_loadb(e->kv.value, e->kv.value_len, 0, NULL);
		if (!j || rollout_order_from_json(j, &o, &err) < 0)
			continue;
		order_seen *s = &log->v[log->n++];
		slash = strrchr(e->kv.key, '/');
		snprintf(s->node, sizeof s->node, "%s", slash ? slash + 1 : "?");
		s->verb = o.verb;
		s->role = o.role;
		s->batch = o.batch;
		s->generation = o.generation;
		s->cleanup = o.cleanup;
		s->issued = o.issued;
		s->at = hx_now_usec();
		rollout_order_done(&o);
	}
}

static etcd_watch *watch_orders(const char *prefix, order_log *log) {
	_cleanup_free_ char *k = keys_dir_of(prefix, KEYS_UPGRADE_NODES);
	etcd_watch *w = NULL;
	etcd_watch_req req = { .key = k, .prefix = true };
	cr_assert_eq(etcd_watch_new(&w, t.client, &req, on_orders, log), 0);
	return w;
}

static size_t count_orders(const order_log *log, const char *node, rollout_verb verb) {
	size_t n = 0;
	for (size_t i = 0; i < log->n; i++)
		n += (!node || streq(log->v[i].node, node)) && log->v[i].verb == verb;
	return n;
}

/* ---- the nodes' part ---- */

typedef struct sim {
	const char *prefix;
	bool hold_verb[_ROLLOUT_VERB_MAX];      /* orders of these verbs get no answer yet */
	char answered[NODES][64];               /* per node: "plan/gen/verb" last answered */
	unsigned answers;
} sim;

/* Every order without progress of its own gets its progress: done, and
 * for an upgrade or a rollback the node's image becomes the target. */
static void play(sim *s) {
	_cleanup_free_ char *k = keys_dir_of(s->prefix, KEYS_UPGRADE_NODES);
	etcd_range_req req = { .key = k, .prefix = true };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);

	if (!r)
		return;
	for (size_t i = 0; i < r->n_kvs; i++) {
		const char *id = strrchr(r->kvs[i].key, '/') + 1;
		size_t n;
		rollout_order o = {};
		rollout_error err;
		char tag[64];
		for (n = 0; n < NODES && !streq(node_ids[n], id); n++)
			;
		json_auto_t *j = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
		if (n == NODES || !j || rollout_order_from_json(j, &o, &err) < 0)
			continue;
		snprintf(tag, sizeof tag, "%s/%lld/%d", o.plan, (long long) o.generation, (int) o.verb);
		if (!s->hold_verb[o.verb] && !streq(s->answered[n], tag)) {
			time_t now = time(NULL);
			const char *image = (o.verb == ROLLOUT_UPGRADE || o.verb == ROLLOUT_ROLLBACK) ? o.target.image : NULL;
			rollout_progress p = {
				.plan = o.plan, .generation = o.generation, .verb = o.verb, .state = ROLLOUT_STEP_DONE,
				.step = 1, .n_steps = 1, .started = now, .finished = now, .updated = now,
				.image = (char *) image,
			};
			json_auto_t *pj = rollout_progress_to_json(&p);
			_cleanup_free_ char *sub = NULL;
			cr_assert_geq(asprintf(&sub, "upgrade/progress/%s", id), 0);
			put_json(s->prefix, sub, pj);
			if (image)
				write_node(s->prefix, id, image);
			snprintf(s->answered[n], sizeof s->answered[n], "%s", tag);
			s->answers++;
		}
		rollout_order_done(&o);
	}
}

/* ---- the loop ---- */

typedef struct run {
	bool fenced;
	int last_error;
	unsigned lines;
	char gate[256];         /* the loop's line about the gate, if any */
} run;

static void on_fenced(rollout_loop *l, void *ud) {
	((run *) ud)->fenced = true;
}

static void on_line(rollout_loop *l, const char *line, void *ud) {
	run *r = ud;
	r->lines++;
	if (strstr(line, ": gate "))
		snprintf(r->gate, sizeof r->gate, "%s", line);
	cr_log_info("rollout: %s", line);
}

static void on_round(rollout_loop *l, int error, const char *why, void *ud) {
	((run *) ud)->last_error = error;
	if (error < 0)
		cr_log_info("round failed: %d %s", error, why ?: "");
}

static const rollout_loop_callbacks callbacks = { .fenced = on_fenced, .line = on_line, .round = on_round };

static rollout_loop *start(const char *prefix, int64_t token, run *r) {
	rollout_loop_options o = { .prefix = prefix, .token = token };
	rollout_loop *l = NULL;
	cr_assert_eq(rollout_loop_new(&l, t.client, &o, &callbacks, r), 0);
	return l;
}

/* Runs the loop (and the nodes, with s) until the state's phase (and
 * batch, >= 0); the state (new reference). */
static void play_sim(void *s) {
	play(s);
}

static json_t *wait_phase(const char *prefix, sim *s, const char *phase, int batch, uint64_t timeout_usec) {
	return wait_state(prefix, s ? play_sim : NULL, s, phase, batch, timeout_usec);
}

/* ---- tests ---- */

typedef struct finish_wait {
	const order_log *log;
	size_t n;
} finish_wait;

static bool finished_all(void *ud) {
	finish_wait *f = ud;
	return count_orders(f->log, NULL, ROLLOUT_FINISH) >= f->n;
}

typedef struct done_wait {
	rollout_loop *l;
	sim *s;
} done_wait;

static bool all_done(void *ud) {
	done_wait *d = ud;
	play(d->s);     /* runs the loop: the last output may change */
	const rollout_output *out = rollout_loop_last(d->l);
	return out && out->n_done == NODES;
}

Test(rollout_loop, good_image_rolls_through) {
	const char *P = "/corral/good";
	rollout_plan plan;
	order_log log = {};
	sim s = { .prefix = P };
	run r = {};

	plan_defaults(&plan, "p1");
	seed_nodes(P);
	write_plan(P, &plan);
	_cleanup_(etcd_watch_freep) etcd_watch *w = watch_orders(P, &log);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);

	json_auto_t *st = wait_phase(P, &s, "succeeded", -1, 60 * USEC_PER_SEC);
	cr_expect_eq(jint(st, "generation"), 1);
	finish_wait fw = { &log, NODES };
	cr_assert(et_run_until(&t, finished_all, &fw, 10 * USEC_PER_SEC), "FINISH orders not seen");
	json_auto_t *stable = get_json(P, "upgrade/stable");
	cr_assert_not_null(stable, "upgrade/stable set");
	cr_expect_str_eq(jstr(stable, "image"), "v2");
	json_auto_t *hist = get_json(P, "upgrade/history/p1");
	cr_expect_not_null(hist, "history written");

	/* prepare to all first, before any upgrade */
	size_t first_upgrade = log.n;
	for (size_t i = 0; i < log.n; i++)
		if (log.v[i].verb == ROLLOUT_UPGRADE) {
			first_upgrade = i;
			break;
		}
	cr_assert_lt(first_upgrade, log.n, "upgrade orders written");
	cr_expect_eq(count_orders(&log, NULL, ROLLOUT_PREPARE), NODES);
	for (size_t i = first_upgrade; i < log.n; i++)
		cr_expect_neq(log.v[i].verb, ROLLOUT_PREPARE, "a prepare order after the first upgrade");
	/* then the canary, alone */
	cr_expect_eq(log.v[first_upgrade].role, ROLLOUT_ROLE_CANARY);
	cr_expect_eq(log.v[first_upgrade].batch, 0);
	/* then batches of at most max_unavailable, each after the one before was done */
	int per_batch[NODES + 1] = {};
	time_t batch_issued[NODES + 1] = {};
	size_t canaries = 0;
	for (size_t i = 0; i < log.n; i++) {
		if (log.v[i].verb != ROLLOUT_UPGRADE)
			continue;
		if (log.v[i].role == ROLLOUT_ROLE_CANARY) {
			canaries++;
			continue;
		}
		cr_assert(log.v[i].batch >= 1 && log.v[i].batch <= NODES);
		per_batch[log.v[i].batch]++;
		batch_issued[log.v[i].batch] = log.v[i].issued;
	}
	cr_expect_eq(canaries, 1);
	int upgraded = 1;
	for (int b = 1; b <= NODES; b++) {
		cr_expect_leq(per_batch[b], plan.max_unavailable, "batch %d has %d nodes", b, per_batch[b]);
		if (b > 1 && per_batch[b] > 0)
			cr_expect_geq(batch_issued[b], batch_issued[b - 1] + plan.min_healthy_time,
				      "batch %d started before batch %d was healthy for min_healthy_time", b, b - 1);
		upgraded += per_batch[b];
	}
	cr_expect_eq(upgraded, NODES);
	/* every node once, and a FINISH with cleanup to each at the end */
	for (size_t i = 0; i < NODES; i++) {
		cr_expect_eq(count_orders(&log, node_ids[i], ROLLOUT_UPGRADE), 1, "%s upgraded once", node_ids[i]);
		cr_expect_geq(count_orders(&log, node_ids[i], ROLLOUT_FINISH), 1, "%s got FINISH", node_ids[i]);
		json_auto_t *n = NULL;
		_cleanup_free_ char *sub = NULL;
		cr_assert_geq(asprintf(&sub, "nodes/%s", node_ids[i]), 0);
		n = get_json(P, sub);
		cr_expect_str_eq(jstr(n, "image"), "v2");
	}
	for (size_t i = 0; i < log.n; i++)
		if (log.v[i].verb == ROLLOUT_FINISH)
			cr_expect(log.v[i].cleanup, "a FINISH after success cleans up");

	/* the loop's getter and its counts, once the nodes ran their FINISH */
	done_wait dw = { l, &s };
	et_run_until(&t, all_done, &dw, 10 * USEC_PER_SEC);
	const rollout_output *out = rollout_loop_last(l);
	cr_assert_not_null(out);
	cr_expect_eq(out->state.phase, ROLLOUT_SUCCEEDED);
	cr_expect_eq(out->n_done, NODES, "done %u running %u failed %u pending %u skipped %u", out->n_done,
		     out->n_running, out->n_failed, out->n_pending, out->n_skipped);
	cr_expect_not(r.fenced);
	cr_expect_gt(r.lines, 0);
}

/* The orders of upgrade/nodes/ with their mod_revisions: {node: rev}. */
static json_t *order_revisions(const char *prefix) {
	_cleanup_free_ char *k = keys_dir_of(prefix, KEYS_UPGRADE_NODES);
	etcd_range_req req = { .key = k, .prefix = true };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	json_t *out = json_object();
	cr_assert_not_null(r);
	for (size_t i = 0; i < r->n_kvs; i++)
		json_object_set_new(out, strrchr(r->kvs[i].key, '/') + 1, json_integer(r->kvs[i].mod_revision));
	return out;
}

typedef struct rounds_wait {
	rollout_loop *l;
	unsigned target;
} rounds_wait;

static bool rounds_done(void *ud) {
	rounds_wait *w = ud;
	return rollout_loop_rounds(w->l) >= w->target;
}

Test(rollout_loop, new_leader_continues_bake_and_batch) {
	const char *P = "/corral/handover";
	rollout_plan plan;
	order_log log = {};
	sim s = { .prefix = P };
	run r1 = {}, r2 = {}, r3 = {};

	plan_defaults(&plan, "p2");
	plan.canary_bake = 4;
	plan.max_unavailable = 2;
	seed_nodes(P);
	write_plan(P, &plan);
	_cleanup_(etcd_watch_freep) etcd_watch *w = watch_orders(P, &log);

	/* leader 1 takes the plan into the canary's bake */
	int64_t token = take_leadership(P);
	rollout_loop *l1 = start(P, token, &r1);
	json_auto_t *baking = wait_phase(P, &s, "canary_bake", -1, 30 * USEC_PER_SEC);
	json_int_t bake_until = jint(baking, "bake_until");
	cr_assert_gt(bake_until, 0);
	l1 = rollout_loop_free(l1);

	/* leader 2 continues the bake from its stored end */
	token = new_leader(P, token);
	rollout_loop *l2 = start(P, token, &r2);
	rounds_wait rw = { l2, 1 };
	cr_assert(et_run_until(&t, rounds_done, &rw, 10 * USEC_PER_SEC));
	json_auto_t *still = get_json(P, "upgrade/state");
	if (streq_ptr(jstr(still, "phase"), "canary_bake"))
		cr_expect_eq(jint(still, "bake_until"), bake_until, "the bake was restarted");
	/* the batch's nodes get their orders but do not answer yet */
	s.hold_verb[ROLLOUT_UPGRADE] = true;
	json_auto_t *rolling = wait_phase(P, &s, "rolling", 1, 30 * USEC_PER_SEC);
	/* A bake restarted by leader 2 would have ended canary_bake seconds
	 * after it started, past the stored end. */
	cr_expect_geq(jint(rolling, "phase_since"), bake_until);
	cr_expect_leq(jint(rolling, "phase_since"), bake_until + 2, "the bake ended at %lld, stored end %lld",
		      (long long) jint(rolling, "phase_since"), (long long) bake_until);
	json_auto_t *revs = order_revisions(P);
	size_t upgrades_before = count_orders(&log, NULL, ROLLOUT_UPGRADE);
	l2 = rollout_loop_free(l2);

	/* leader 3: the batch in flight stays as it is */
	token = new_leader(P, token);
	rollout_loop *l3 = start(P, token, &r3);
	rw = (rounds_wait) { l3, 1 };
	cr_assert(et_run_until(&t, rounds_done, &rw, 10 * USEC_PER_SEC));
	rw.target = 2;
	rollout_loop_trigger(l3);
	cr_assert(et_run_until(&t, rounds_done, &rw, 10 * USEC_PER_SEC));
	json_auto_t *revs2 = order_revisions(P);
	const char *node;
	json_t *rev;
	json_object_foreach(revs, node, rev) {
		cr_expect_eq(json_integer_value(json_object_get(revs2, node)), json_integer_value(rev),
			     "order of %s rewritten by the new leader", node);
	}
	cr_expect_eq(count_orders(&log, NULL, ROLLOUT_UPGRADE), upgrades_before, "no new upgrade order");
	json_auto_t *st3 = get_json(P, "upgrade/state");
	cr_expect_str_eq(jstr(st3, "phase"), "rolling");
	cr_expect_eq(jint(st3, "batch"), 1);

	/* the nodes answer: leader 3 finishes the plan, every node upgraded once */
	s.hold_verb[ROLLOUT_UPGRADE] = false;
	json_auto_t *done = wait_phase(P, &s, "succeeded", -1, 60 * USEC_PER_SEC);
	for (size_t i = 0; i < NODES; i++)
		cr_expect_eq(count_orders(&log, node_ids[i], ROLLOUT_UPGRADE), 1, "%s upgraded %zu times", node_ids[i],
			     count_orders(&log, node_ids[i], ROLLOUT_UPGRADE));
	cr_expect_not(r1.fenced || r2.fenced || r3.fenced);
	(void) done;
	rollout_loop_free(l3);
}

static bool fenced(void *ud) {
	return ((run *) ud)->fenced;
}

Test(rollout_loop, stale_token_is_refused) {
	const char *P = "/corral/stale";
	rollout_plan plan;
	run r = {};

	plan_defaults(&plan, "p3");
	seed_nodes(P);
	write_plan(P, &plan);
	int64_t old = take_leadership(P);
	(void) new_leader(P, old);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, old, &r);
	cr_assert(et_run_until(&t, fenced, &r, 10 * USEC_PER_SEC), "a stale token's write was not refused");
	cr_expect(rollout_loop_stopped(l));
	cr_expect_eq(r.last_error, -EPERM);
	json_auto_t *st = get_json(P, "upgrade/state");
	cr_expect_null(st, "the deposed leader wrote nothing");
	_cleanup_free_ char *k = keys_dir_of(P, KEYS_UPGRADE_NODES);
	etcd_range_req req = { .key = k, .prefix = true, .count_only = true };
	_cleanup_(etcd_response_freep) etcd_response *resp = et_range(&t, &req);
	cr_expect_eq(resp->count, 0, "no order written");
}

/* The fleet gate at the canary's bake end: exit 0 -> rolling, exit 1 ->
 * failed (no auto rollback), anything else -> paused (gate). */
Test(rollout_loop, gate_pass_fail_inconclusive) {
	static const struct {
		const char *command, *phase, *pause;
	} cases[] = {
		{ "exit 0", "rolling", NULL },
		{ "exit 1", "failed", NULL },
		{ "exit 3", "paused", "gate" },
	};

	for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
		char P[64], id[16];
		rollout_plan plan;
		sim s = {};
		run r = {};

		snprintf(P, sizeof P, "/corral/gate%zu", c);
		snprintf(id, sizeof id, "g%zu", c);
		s.prefix = P;
		plan_defaults(&plan, id);
		plan.gate_command = (char *) cases[c].command;
		plan.gate_timeout = 10;
		plan.auto_rollback = false;
		seed_nodes(P);
		write_plan(P, &plan);
		rollout_loop *l = start(P, take_leadership(P), &r);
		json_auto_t *st = wait_phase(P, &s, cases[c].phase, -1, 30 * USEC_PER_SEC);
		const char *want = cases[c].command[5] == '0' ? ": gate pass" :
				   cases[c].command[5] == '1' ? ": gate fail" : ": gate inconclusive";
		cr_expect(strstr(r.gate, want), "%s: the loop said \"%s\"", cases[c].command, r.gate);
		if (cases[c].pause)
			cr_expect_str_eq(jstr(st, "pause"), cases[c].pause);
		cr_expect_not(r.fenced);
		rollout_loop_free(l);
	}
}

/* More orders than one txn may hold (100 ops): written in chunks, the
 * state in the last, so the phase says preparing only once every prepare
 * order is there. */
Test(rollout_loop, many_orders_in_chunks) {
	const char *P = "/corral/many";
	rollout_plan plan;
	run r = {};
	char id[16];

	plan_defaults(&plan, "p5");
	for (int i = 0; i < 250; i++) {
		snprintf(id, sizeof id, "m%03d", i);
		write_node(P, id, "v1");
	}
	write_plan(P, &plan);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);
	json_auto_t *st = wait_phase(P, NULL, "preparing", -1, 30 * USEC_PER_SEC);
	_cleanup_free_ char *k = keys_dir_of(P, KEYS_UPGRADE_NODES);
	etcd_range_req req = { .key = k, .prefix = true, .count_only = true };
	_cleanup_(etcd_response_freep) etcd_response *resp = et_range(&t, &req);
	cr_assert_not_null(resp);
	cr_expect_eq(resp->count, 250, "prepare orders: %lld", (long long) resp->count);
	cr_expect_not(r.fenced);
}

/* With no plan, only upgrade/ can change a decision: the status puts of a
 * config change (1,000 of them at 1,000 nodes) start no round; a plan
 * does. A finished plan with no order left listens to nodes/ again (a new
 * host takes the target) but not to status/. */
Test(rollout_loop, idle_loop_ignores_status_puts) {
	const char *P = "/corral/idle";
	run r = {};
	rollout_loop *l = NULL;

	seed_nodes(P);
	rollout_loop_options o = { .prefix = P, .token = take_leadership(P), .defer_usec = USEC_PER_MSEC };
	cr_assert_eq(rollout_loop_new(&l, t.client, &o, &callbacks, &r), 0);
	rounds_wait rw = { l, 1 };
	cr_assert(et_run_until(&t, rounds_done, &rw, 10 * USEC_PER_SEC));
	unsigned before = rollout_loop_rounds(l);

	/* Spread over well past the defer: the old loop ran a round for
	 * nearly every one of these. */
	for (int i = 0; i < 20; i++) {
		char sub[64];
		snprintf(sub, sizeof sub, "status/n%d", i % NODES + 1);
		put(P, sub, "{\"ok\":true,\"applied\":\"c_1\"}");
		put(P, "holds/x", "{}");
		et_run_for(&t, 5 * USEC_PER_MSEC);
	}
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(rollout_loop_rounds(l), before, "%u rounds on status/ and holds/ puts with no plan",
		     rollout_loop_rounds(l) - before);

	/* A plan is what starts one. */
	rollout_plan plan;
	plan_defaults(&plan, "p9");
	write_plan(P, &plan);
	rw = (rounds_wait) { l, before + 1 };
	cr_assert(et_run_until(&t, rounds_done, &rw, 10 * USEC_PER_SEC));
	l = rollout_loop_free(l);
}
