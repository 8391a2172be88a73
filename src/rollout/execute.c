/* execute.c — act, the last step of a rollout round: the decision's
 * writes carried out. Orders, deletes, upgrade/stable and the history
 * first, upgrade/state last, so a leader dying between two txns leaves
 * the old state over orders already written: the next leader decides from
 * that state and finds the orders in place (the decision keeps an order it
 * would write again). Each txn holds at most ROLLOUT_TXN_OPS ops and is
 * fenced with the leader's token; a refused fence ends the round with
 * -EPERM. One line per action once its txn committed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keys.h"
#include "leader.h"
#include "round.h"

#define ROLLOUT_TXN_OPS 100     /* etcd's default --max-txn-ops is 128 */

rollout_round *rollout_round_free(rollout_round *r) {
	if (!r)
		return NULL;
	if (r->call)
		etcd_call_cancel(r->call);
	for (size_t i = 0; i < r->n_ops; i++) {
		free(r->keys[i]);
		free(r->vals[i]);
	}
	free(r->ops);
	free(r->keys);
	free(r->vals);
	free(r->action_of);
	if (r->decided)
		rollout_output_done(&r->out);
	if (r->observed)
		rollout_view_done(&r->view);
	if (r->have_snap)
		rollout_snapshot_done(&r->snap);
	free(r);
	return NULL;
}

/* ---- the queue of writes ---- */

/* Takes key and text (NULL: a delete). */
static int queue_text(rollout_round *r, char *key, char *text, bool del, size_t action) {
	size_t n = r->n_ops + 1;
	void *p;

	if (!key || (!del && !text))
		goto nomem;
	if (!(p = realloc(r->ops, n * sizeof *r->ops)))
		goto nomem;
	r->ops = p;
	if (!(p = realloc(r->keys, n * sizeof *r->keys)))
		goto nomem;
	r->keys = p;
	if (!(p = realloc(r->vals, n * sizeof *r->vals)))
		goto nomem;
	r->vals = p;
	if (!(p = realloc(r->action_of, n * sizeof *r->action_of)))
		goto nomem;
	r->action_of = p;
	r->keys[r->n_ops] = key;
	r->vals[r->n_ops] = text;
	r->action_of[r->n_ops] = action;
	if (del)
		r->ops[r->n_ops] = (etcd_op) { .type = ETCD_OP_DELETE, .del = { .key = key } };
	else
		r->ops[r->n_ops] = (etcd_op) { .type = ETCD_OP_PUT,
					       .put = { .key = key, .value = text, .value_len = strlen(text) } };
	r->n_ops = n;
	return 0;
nomem:
	free(key);
	free(text);
	return -ENOMEM;
}

/* Takes key and value (NULL value: a delete). */
static int queue(rollout_round *r, char *key, json_t *value, bool del, size_t action) {
	char *text = NULL;

	if (!del && (!value || !(text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS)))) {
		json_decref(value);
		free(key);
		return -ENOMEM;
	}
	json_decref(value);
	return queue_text(r, key, text, del, action);
}

static int queue_action(rollout_round *r, size_t i) {
	const rollout_action *a = &r->out.actions[i];
	const rollout_plan *plan = r->view.input.plan;

	switch (a->kind) {
	case ROLLOUT_WRITE_ORDER:
		return queue(r, keys_entry(r->prefix, KEYS_UPGRADE_NODES, a->node), rollout_order_to_json(&a->order),
			     false, i);
	case ROLLOUT_DELETE_ORDER:
		return queue(r, keys_entry(r->prefix, KEYS_UPGRADE_NODES, a->node), NULL, true, i);
	case ROLLOUT_SET_STABLE: {
		if (!plan)
			return 0;
		/* a staged config: the candidate promoted (a rebase of the plan's) */
		rollout_target t = plan->target;
		if (rollout_plan_staged(plan) && r->out.state.candidate)
			t.config = r->out.state.candidate;
		/* a machine image: the version an AMI became */
		if (!t.launch_template_version && t.ami)
			t.launch_template_version = r->out.state.launch_template_version;
		return queue(r, keys_one_of(r->prefix, KEYS_UPGRADE_STABLE), rollout_target_to_json(&t), false, i);
	}
	case ROLLOUT_PROMOTE:
		return 0;       /* with the state, last (rollout_execute_start) */
	case ROLLOUT_WRITE_HISTORY:
		if (!r->out.history || !r->out.state.plan)
			return 0;
		return queue(r, keys_entry(r->prefix, KEYS_UPGRADE_HISTORY, r->out.state.plan),
			     json_incref(r->out.history), false, i);
	default:
		return 0; /* RUN_GATE is the loop's */
	}
}

/* ---- fenced txns ---- */

static void send_next(rollout_round *r);

static void say(rollout_round *r, const char *line) {
	if (r->line && line && line[0])
		r->line(r, line);
}

/* A refused promotion: the leader key (read by the failure branch) says
 * whether the fence or `current` failed. */
static bool fence_failed(const rollout_round *r, const etcd_response *res) {
	const etcd_response *lk = res->n_responses > 0 ? &res->responses[0] : NULL;
	return !lk || lk->n_kvs == 0 || lk->kvs[0].create_revision != r->token;
}

static void on_written(etcd_client *e, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *res = resp;
	rollout_round *r = userdata;
	char buf[512];

	r->call = NULL;
	if (res->error.code < 0)
		return r->done(r, res->error.code, etcd_error_format(&res->error, buf, sizeof buf));
	if (!res->succeeded && r->promoting && !fence_failed(r, res))
		return r->done(r, -EAGAIN, "current moved before the promotion: deciding again");
	if (!res->succeeded)
		return r->done(r, -EPERM, "fence refused: no longer the leader");
	for (; r->said < r->at; r->said++)
		if (r->action_of[r->said] != SIZE_MAX)
			say(r, r->out.actions[r->action_of[r->said]].line);
	send_next(r);
}

/* The promotion's compare: `current` as the decision saw it (absent:
 * never created). */
static etcd_compare promote_compare(const rollout_round *r) {
	const char *key = r->promote_at != SIZE_MAX ? r->keys[r->promote_at] : r->leader_key;
	int64_t mod = r->view.input.current_mod_revision;

	if (mod == 0)
		return (etcd_compare) { .key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL };
	return (etcd_compare) { .key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL, .number = mod };
}

/* The ops from r->at on, up to ROLLOUT_TXN_OPS in one txn; the last
 * line says the decision once everything committed. */
static void send_next(rollout_round *r) {
	etcd_compare fence;
	size_t n;
	int k;

	if (r->at >= r->n_ops) {
		say(r, r->out.line);
		return r->done(r, 0, NULL);
	}
	n = r->n_ops - r->at;
	if (n > ROLLOUT_TXN_OPS)
		n = ROLLOUT_TXN_OPS;
	/* the promotion's txn holds the put of current and the state alone */
	r->promoting = r->at == r->promote_at;
	if (r->promote_at != SIZE_MAX && r->at < r->promote_at && r->at + n > r->promote_at)
		n = r->promote_at - r->at;
	fence = leader_fence(r->leader_key, r->token);
	etcd_compare cmp[2] = { fence, promote_compare(r) };
	etcd_op fail = { .type = ETCD_OP_RANGE, .range = { .key = r->leader_key } };
	etcd_txn_req req = { .compare = cmp, .n_compare = r->promoting ? 2 : 1, .success = r->ops + r->at,
			     .n_success = n, .failure = r->promoting ? &fail : NULL, .n_failure = r->promoting };
	k = etcd_txn(r->etcd, &req, on_written, r, &r->call);
	if (k < 0)
		return r->done(r, k, "cannot send a write");
	r->at += n;
}

/* The put of `current` = candidate, queued just before the state. */
static int queue_promote(rollout_round *r) {
	for (size_t i = 0; i < r->out.n_actions; i++) {
		if (r->out.actions[i].kind != ROLLOUT_PROMOTE || !r->out.state.candidate)
			continue;
		r->promote_at = r->n_ops;
		return queue_text(r, keys_one_of(r->prefix, KEYS_CURRENT), strdup(r->out.state.candidate), false, i);
	}
	return 0;
}

void rollout_execute_start(rollout_round *r) {
	int k;

	r->promote_at = SIZE_MAX;
	for (size_t i = 0; i < r->out.n_actions; i++)
		if ((k = queue_action(r, i)) < 0)
			return r->done(r, k, "out of memory");
	if ((k = queue_promote(r)) < 0)
		return r->done(r, k, "out of memory");
	if (r->out.state_changed &&
	    (k = queue(r, keys_one_of(r->prefix, KEYS_UPGRADE_STATE), rollout_state_to_json(&r->out.state), false,
		       SIZE_MAX)) < 0)
		return r->done(r, k, "out of memory");
	send_next(r);
}
