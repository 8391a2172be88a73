/* test_rollout_loop_config.c — the leader's loop (rollout-loop.h) carrying
 * out a staged config rollout in-process against a real etcd, the test
 * playing the nodes (for every order, progress done with the config the
 * node applied: the pinned candidate for an upgrade, `current` for a
 * rollback or a finish; an upgrade to a config holding a bad value fails
 * as a check command would). It proves: a good candidate promotes (the
 * CAS of `current`) and becomes upgrade/stable; a `config set` during the
 * bake is rebased on and is in the promoted config (the rebase: without
 * it the edit is lost); an edit of the plan's own key fails the plan
 * naming it and `current` is never moved by the leader; a stale token's
 * promotion writes nothing; a successor leader promotes at the stored
 * bake end, not later; and execute.c's promotion txn, driven directly:
 * refused without a write when `current` moved after the read (-EAGAIN)
 * or the token is stale (-EPERM). Every wait is bounded and on a
 * condition. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agree.h"
#define ROLLOUT_LOOP_TAG "rollout-loop-config"
#include "rollout-loop-test.h"
#include "keys.h"
#include "rollout-loop.h"
#include "rollout.h"

#include "../src/rollout/round.h"

#define NODES 3

TestSuite(rollout_loop_config, .init = up, .fini = down, .timeout = 120);

static const char *node_ids[NODES] = { "n1", "n2", "n3" };

/* ---- configs ---- */

typedef struct set_change {
	const char *key;        /* under file "cms" */
	const char *value;      /* JSON text */
} set_change;

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	const set_change *c = userdata;
	json_t *f = json_object_get(files, "cms");

	if (!f) {
		f = json_object();
		json_object_set_new(files, "cms", f);
	}
	json_object_set_new(f, c->key, json_loads(c->value, JSON_DECODE_ANY, NULL));
	return 0;
}

/* A `config set cms/<key> <value>` (stage: --staged): the new id. */
static char *config_set(const char *prefix, const char *key, const char *value, bool stage) {
	set_change c = { key, value };
	agree_options o = { .prefix = prefix, .proposer = "ctl", .stage_only = stage };
	agree_owned_result r = {};

	cr_assert_eq(agree_propose_sync(t.client, &o, set_fn, &c, &r), 0, "%s", r.error.message);
	cr_assert(stage ? r.staged : r.committed);
	char *id = strdup(r.config_id);
	agree_owned_result_done(&r);
	return id;
}

static json_t *config_files(const char *prefix, const char *id) {
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_config_sync(t.client, prefix, id, &s, &err), 0, "%s: %s", id, err.message);
	json_t *f = json_incref(s.files);
	agree_snapshot_done(&s);
	return f;
}

static json_t *cms_value(const char *prefix, const char *id, const char *key) {
	json_auto_t *f = config_files(prefix, id);
	return json_incref(json_object_get(json_object_get(f, "cms"), key));
}

/* ---- the plan and the nodes ---- */

static void write_plan(const char *prefix, const char *id, const char *candidate, const char *base, int64_t bake,
		       bool auto_promote) {
	rollout_plan p;

	rollout_plan_defaults(&p);
	p.id = (char *) id;
	p.target.config = (char *) candidate;
	p.config_base = (char *) base;
	p.canary_nodes = 1;
	p.canary_bake = bake;
	p.auto_promote = auto_promote;
	p.min_healthy_time = 1;
	p.healthy_deadline = 300;
	p.final_bake = 1;
	p.created = time(NULL) - 10;
	json_auto_t *j = rollout_plan_to_json(&p);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	put(prefix, "upgrade/plan", text);
}

static void seed_nodes(const char *prefix) {
	for (size_t i = 0; i < NODES; i++) {
		_cleanup_free_ char *sub = NULL, *text = NULL;
		json_auto_t *j = json_pack("{s:s, s:s, s:s}", "node_id", node_ids[i], "address", "10.0.0.1", "pool",
					   "web");
		cr_assert_geq(asprintf(&sub, "nodes/%s", node_ids[i]), 0);
		text = json_dumps(j, JSON_COMPACT);
		put(prefix, sub, text);
	}
}

/* The nodes' part: every order gets one answer per (generation, verb,
 * target config), a re-pinned canary a new one. */
typedef struct sim {
	const char *prefix;
	const char *bad;                /* cms/port value a check command rejects */
	char answered[NODES][160];
	unsigned upgrades[NODES];       /* upgrade orders answered per node */
	char last_pin[NODES][64];       /* the config of the last upgrade answered */
} sim;

static void answer(sim *s, size_t n, const rollout_order *o) {
	_cleanup_free_ char *current = get(s->prefix, "current"), *sub = NULL;
	bool upgrade = o->verb == ROLLOUT_UPGRADE && o->target.config;
	const char *applied = upgrade ? o->target.config : current;
	bool fail = false;
	time_t now = time(NULL);

	if (upgrade && s->bad) {
		json_auto_t *port = cms_value(s->prefix, o->target.config, "port");
		_cleanup_free_ char *text = port ? json_dumps(port, JSON_ENCODE_ANY) : NULL;
		fail = text && streq(text, s->bad);
	}
	rollout_progress p = {
		.plan = o->plan, .generation = o->generation, .verb = o->verb,
		.state = fail ? ROLLOUT_STEP_FAILED : ROLLOUT_STEP_DONE, .step = 0, .n_steps = 1,
		.step_name = (char *) "check", .error = fail ? (char *) "check command: exit 1" : NULL,
		.started = now, .finished = now, .updated = now, .config = fail ? NULL : (char *) applied,
	};
	json_auto_t *pj = rollout_progress_to_json(&p);
	_cleanup_free_ char *text = json_dumps(pj, JSON_COMPACT);
	cr_assert_geq(asprintf(&sub, "upgrade/progress/%s", node_ids[n]), 0);
	put(s->prefix, sub, text);
	if (upgrade) {
		s->upgrades[n]++;
		snprintf(s->last_pin[n], sizeof s->last_pin[n], "%s", o->target.config);
	}
}

static void play(sim *s) {
	_cleanup_free_ char *k = keys_dir_of(s->prefix, KEYS_UPGRADE_NODES);
	etcd_range_req req = { .key = k, .prefix = true };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);

	for (size_t i = 0; r && i < r->n_kvs; i++) {
		const char *id = strrchr(r->kvs[i].key, '/') + 1;
		rollout_order o = {};
		rollout_error err;
		char tag[160];
		size_t n;

		for (n = 0; n < NODES && !streq(node_ids[n], id); n++)
			;
		json_auto_t *j = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
		if (n == NODES || !j || rollout_order_from_json(j, &o, &err) < 0)
			continue;
		snprintf(tag, sizeof tag, "%s/%lld/%d/%s", o.plan, (long long) o.generation, (int) o.verb,
			 o.target.config ?: "-");
		if (!streq(s->answered[n], tag)) {
			answer(s, n, &o);
			snprintf(s->answered[n], sizeof s->answered[n], "%s", tag);
		}
		rollout_order_done(&o);
	}
}

/* ---- the loop ---- */

typedef struct run {
	bool fenced;
	char rebase[512];       /* the loop's line about a rebase */
} run;

static void on_fenced(rollout_loop *l, void *ud) {
	((run *) ud)->fenced = true;
}

static void on_line(rollout_loop *l, const char *line, void *ud) {
	run *r = ud;
	if (strstr(line, ": rebase"))
		snprintf(r->rebase, sizeof r->rebase, "%s", line);
	cr_log_info("rollout: %s", line);
}

static const rollout_loop_callbacks callbacks = { .fenced = on_fenced, .line = on_line };

static rollout_loop *start(const char *prefix, int64_t token, run *r) {
	rollout_loop_options o = { .prefix = prefix, .token = token, .proposer = "leader" };
	rollout_loop *l = NULL;
	cr_assert_eq(rollout_loop_new(&l, t.client, &o, &callbacks, r), 0);
	return l;
}

static void play_sim(void *s) {
	play(s);
}

static json_t *wait_phase(const char *prefix, sim *s, const char *phase, uint64_t timeout_usec) {
	return wait_state(prefix, s ? play_sim : NULL, s, phase, -1, timeout_usec);
}

/* ---- tests ---- */

/* current c1 {cms: {port: 1}}, a staged candidate setting port, the nodes,
 * and a plan p1 with that bake; ids new strings. */
static void begin(const char *P, const char *port, int64_t bake, char **c1, char **cand) {
	*c1 = config_set(P, "port", "1", false);
	*cand = config_set(P, "port", port, true);
	seed_nodes(P);
	write_plan(P, "p1", *cand, *c1, bake, true);
}

Test(rollout_loop_config, good_candidate_promotes) {
	const char *P = "/corral/cfg-good";
	sim s = { .prefix = P };
	run r = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "2", 2, &c1, &cand);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);

	json_auto_t *bake = wait_phase(P, &s, "canary_bake", 30 * USEC_PER_SEC);
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, c1, "current moved before the promotion");
	cr_assert_eq(s.upgrades[0] + s.upgrades[1] + s.upgrades[2], 1, "one canary");
	json_auto_t *done = wait_phase(P, &s, "succeeded", 30 * USEC_PER_SEC);
	_cleanup_free_ char *after = get(P, "current");
	cr_assert_str_eq(after, cand, "promotion is the CAS of current to the candidate");
	cr_assert_geq(jint(done, "promoted"), jint(bake, "bake_until"));
	json_auto_t *stable = get_json(P, "upgrade/stable");
	cr_assert_str_eq(jstr(stable, "config"), cand);
	cr_assert_not(r.fenced);
}

/* A config set during the bake: rebased on, and in the promoted config. */
Test(rollout_loop_config, rebase_keeps_a_concurrent_edit) {
	const char *P = "/corral/cfg-rebase";
	sim s = { .prefix = P };
	run r = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "2", 3, &c1, &cand);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);

	json_auto_t *bake = wait_phase(P, &s, "canary_bake", 30 * USEC_PER_SEC);
	_cleanup_free_ char *c2 = config_set(P, "workers", "[\"10.0.0.2\"]", false);
	json_auto_t *done = wait_phase(P, &s, "succeeded", 40 * USEC_PER_SEC);

	cr_assert_eq(jint(done, "rebases"), 1, "one rebase");
	cr_assert_str_eq(jstr(done, "candidate_base"), c2);
	const char *rebased = jstr(done, "candidate");
	cr_assert_str_neq(rebased, cand);
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, rebased, "the rebased candidate was promoted");
	json_auto_t *port = cms_value(P, cur, "port");
	json_auto_t *workers = cms_value(P, cur, "workers");
	cr_assert_eq(json_integer_value(port), 2, "the plan's change");
	cr_assert_eq(json_array_size(workers), 1, "the concurrent edit was lost");
	/* the canary was re-pinned on the rebase before the promotion */
	size_t canary = 0;
	while (canary < NODES && s.upgrades[canary] == 0)
		canary++;
	cr_assert_lt(canary, NODES);
	cr_assert_eq(s.upgrades[canary], 2, "pinned twice: the candidate, then its rebase");
	cr_assert_str_eq(s.last_pin[canary], rebased);
	cr_assert(strstr(r.rebase, "rebased on"), "%s", r.rebase);
	cr_assert_geq(jint(done, "promoted"), jint(bake, "bake_until"));
}

/* The plan's own key edited meanwhile: the plan fails naming it; the
 * leader never moves current. A check command failing on a candidate
 * keeps it from the other nodes. */
Test(rollout_loop_config, conflict_fails_naming_the_key) {
	const char *P = "/corral/cfg-conflict";
	sim s = { .prefix = P };
	run r = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "2", 5, &c1, &cand);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);

	json_auto_t *bake = wait_phase(P, &s, "canary_bake", 30 * USEC_PER_SEC);
	_cleanup_free_ char *c2 = config_set(P, "port", "3", false);
	json_auto_t *end = wait_phase(P, &s, "rolled_back", 30 * USEC_PER_SEC);
	char want[256];
	snprintf(want, sizeof want, "rebase: cms/port was changed by both the plan and %s", c2);
	cr_assert(strstr(jstr(end, "reason"), want), "%s", jstr(end, "reason"));
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, c2, "current was moved by the leader");
	cr_assert_eq(jint(end, "promoted"), 0);
	(void) bake;
}

Test(rollout_loop_config, failing_check_never_reaches_the_others) {
	const char *P = "/corral/cfg-bad";
	sim s = { .prefix = P, .bad = "99" };
	run r = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "99", 2, &c1, &cand);
	_cleanup_(rollout_loop_freep) rollout_loop *l = start(P, take_leadership(P), &r);

	json_auto_t *end = wait_phase(P, &s, "rolled_back", 30 * USEC_PER_SEC);
	cr_assert(strstr(jstr(end, "reason"), "failed"), "%s", jstr(end, "reason"));
	cr_assert_eq(s.upgrades[0] + s.upgrades[1] + s.upgrades[2], 1, "only the canary was pinned");
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, c1, "current moved");
	json_auto_t *stable = get_json(P, "upgrade/stable");
	cr_assert_null(stable);
}

static bool is_fenced(void *ud) {
	return ((run *) ud)->fenced;
}

typedef struct past {
	time_t t;
} past;

static bool time_past(void *ud) {
	return time(NULL) > ((past *) ud)->t;
}

/* A leader whose token is stale reaches the promotion and writes nothing:
 * current stays, the state stays. */
Test(rollout_loop_config, stale_promotion_writes_nothing) {
	const char *P = "/corral/cfg-stale";
	sim s = { .prefix = P };
	run r1 = {}, r2 = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "2", 1, &c1, &cand);
	int64_t old = take_leadership(P);
	rollout_loop *l1 = start(P, old, &r1);
	json_auto_t *bake = wait_phase(P, &s, "canary_bake", 30 * USEC_PER_SEC);
	l1 = rollout_loop_free(l1);
	(void) new_leader(P, old);
	past p = { jint(bake, "bake_until") + 1 };
	cr_assert(et_run_until(&t, time_past, &p, 5 * USEC_PER_SEC));

	_cleanup_(rollout_loop_freep) rollout_loop *l2 = start(P, old, &r2);
	cr_assert(et_run_until(&t, is_fenced, &r2, 10 * USEC_PER_SEC), "the stale leader was not fenced");
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, c1, "a stale token promoted");
	json_auto_t *st = get_json(P, "upgrade/state");
	cr_assert_str_eq(jstr(st, "phase"), "canary_bake");
	cr_assert_eq(jint(st, "promoted"), 0);
}

/* Leader 1 freed mid-bake: leader 2 promotes at the stored bake end (its
 * wake timer), not later. */
Test(rollout_loop_config, successor_promotes_at_the_stored_time) {
	const char *P = "/corral/cfg-handover";
	sim s = { .prefix = P };
	run r1 = {}, r2 = {};

	_cleanup_free_ char *c1 = NULL, *cand = NULL;
	begin(P, "2", 4, &c1, &cand);
	int64_t token = take_leadership(P);
	rollout_loop *l1 = start(P, token, &r1);
	json_auto_t *bake = wait_phase(P, &s, "canary_bake", 30 * USEC_PER_SEC);
	json_int_t bake_until = jint(bake, "bake_until");
	l1 = rollout_loop_free(l1);

	token = new_leader(P, token);
	_cleanup_(rollout_loop_freep) rollout_loop *l2 = start(P, token, &r2);
	json_auto_t *fin = wait_phase(P, &s, "final_bake", 30 * USEC_PER_SEC);
	cr_assert_geq(jint(fin, "promoted"), bake_until);
	cr_assert_leq(jint(fin, "promoted"), bake_until + 2, "promoted at %lld, stored bake end %lld",
		      (long long) jint(fin, "promoted"), (long long) bake_until);
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, cand);
	cr_assert_not(r2.fenced);
}

/* ---- the promotion's txn, driven directly (execute.c) ---- */

typedef struct exec_wait {
	bool done;
	int error;
} exec_wait;

static void on_exec_done(rollout_round *r, int error, const char *why) {
	exec_wait *w = r->owner;
	w->done = true;
	w->error = error;
}

static bool exec_done(void *ud) {
	return ((exec_wait *) ud)->done;
}

static int64_t current_mod(const char *prefix) {
	_cleanup_free_ char *k = keys_one_of(prefix, KEYS_CURRENT);
	etcd_range_req req = { .key = k };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	cr_assert(r && r->n_kvs == 1);
	return r->kvs[0].mod_revision;
}

/* A decision that promotes cand, read when current's mod_revision was
 * mod, carried out with token: the round's error. */
static int promote_with(const char *prefix, const char *cand, int64_t mod, int64_t token) {
	_cleanup_free_ char *leader_key = keys_one_of(prefix, KEYS_LEADER);
	exec_wait w = {};
	rollout_round *r = calloc(1, sizeof *r);

	cr_assert_not_null(r);
	*r = (rollout_round) { .etcd = t.client, .prefix = prefix, .leader_key = leader_key, .token = token,
			       .now = time(NULL), .done = on_exec_done, .owner = &w, .decided = true };
	r->view.input.current_mod_revision = mod;
	r->out.state = (rollout_state) { .plan = strdup("p1"), .generation = 1, .phase = ROLLOUT_FINAL_BAKE,
					 .candidate = strdup(cand), .promoted = r->now };
	r->out.state_changed = true;
	r->out.actions = calloc(1, sizeof *r->out.actions);
	r->out.actions[0] = (rollout_action) { .kind = ROLLOUT_PROMOTE, .line = "promote" };
	r->out.n_actions = 1;
	rollout_execute_start(r);
	cr_assert(et_run_until(&t, exec_done, &w, 10 * USEC_PER_SEC));
	rollout_round_free(r);
	return w.error;
}

Test(rollout_loop_config, promotion_txn_compares_current_and_fence) {
	const char *P = "/corral/cfg-cas";
	_cleanup_free_ char *c1 = config_set(P, "port", "1", false);
	_cleanup_free_ char *cand = config_set(P, "port", "2", true);
	int64_t token = take_leadership(P), read_at = current_mod(P);

	/* current moved after the read: nothing written, decide again */
	_cleanup_free_ char *c2 = config_set(P, "workers", "[1]", false);
	cr_assert_eq(promote_with(P, cand, read_at, token), -EAGAIN);
	_cleanup_free_ char *cur = get(P, "current");
	cr_assert_str_eq(cur, c2);
	json_auto_t *none = get_json(P, "upgrade/state");
	cr_assert_null(none, "the state went in without the promotion");

	/* a stale token: refused as a fence */
	int64_t now_at = current_mod(P);
	cr_assert_eq(promote_with(P, cand, now_at, token + 1000), -EPERM);
	_cleanup_free_ char *cur2 = get(P, "current");
	cr_assert_str_eq(cur2, c2);

	/* the read still holds: current and the state in one txn */
	cr_assert_eq(promote_with(P, cand, now_at, token), 0);
	_cleanup_free_ char *cur3 = get(P, "current");
	cr_assert_str_eq(cur3, cand);
	json_auto_t *st = get_json(P, "upgrade/state");
	cr_assert_str_eq(jstr(st, "phase"), "final_bake");
	cr_assert_eq(current_mod(P), et_revision(etcd), "current and the state in one revision");
	(void) c1;
}
