/* restage.c — the I/O of a staged config rollout's rebase (ROLLOUT_REBASE),
 * for the leader's loop: read the candidate's base B and the candidate C
 * (asynchronously, one after the other), then a stage_only proposal whose
 * change is agree_rebase(B, C, N) on whatever `current` N it reads, so an
 * edit that lands meanwhile is rebased on too, never lost. The new folder
 * is written fenced on the leader's token and guarded by current's
 * mod_revision, like a commit; `current` does not move. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "keys.h"
#include "leader.h"
#include "restage.h"

struct rollout_restage {
	etcd_client *etcd;
	char *prefix, *proposer, *leader_key;
	int64_t token;
	char *base_id, *candidate_id;
	tree_leaves base, candidate;
	agree_read_op *read;
	agree_proposal *proposal;
	bool reading_candidate;
	rollout_restage_cb cb;
	void *userdata;
};

rollout_restage *rollout_restage_free(rollout_restage *op) {
	if (!op)
		return NULL;
	agree_read_op_free(op->read);
	agree_proposal_free(op->proposal);
	free(op->prefix);
	free(op->proposer);
	free(op->leader_key);
	free(op->base_id);
	free(op->candidate_id);
	tree_leaves_done(&op->base);
	tree_leaves_done(&op->candidate);
	free(op);
	return NULL;
}

static void report(rollout_restage *op, const char *id, const char *made_on, int code, const char *error) {
	rollout_restage_result res = { .id = id, .made_on = made_on, .code = code, .error = error };
	op->cb(op, &res, op->userdata);
}

static int leaves_copy(const tree_leaves *src, tree_leaves *dst) {
	dst->v = calloc(src->n + 1, sizeof *dst->v);
	if (!dst->v)
		return -ENOMEM;
	for (dst->n = 0; dst->n < src->n; dst->n++) {
		dst->v[dst->n].path = strdup(src->v[dst->n].path);
		dst->v[dst->n].value = strdup(src->v[dst->n].value);
		if (!dst->v[dst->n].path || !dst->v[dst->n].value) {
			dst->n++;
			return -ENOMEM;
		}
	}
	return 0;
}

/* The change: the plan's B -> C on the snapshot read (N). */
static int change(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	rollout_restage *op = userdata;
	_cleanup_(tree_leaves_done) tree_leaves out = {};
	json_auto_t *doc = NULL;
	agree_error aerr = {};
	tree_error terr = {};
	int r = agree_rebase(&op->base, &op->candidate, &s->leaves, s->config_id, &out, &aerr);

	if (r < 0) {
		snprintf(err, err_size, "%s", aerr.message);
		return r;
	}
	r = tree_unflatten(out.v, out.n, &doc, &terr);
	if (r < 0) {
		snprintf(err, err_size, "the rebased config is not a tree: %s: %s", terr.path, terr.message);
		return r;
	}
	json_object_clear(files);
	return json_object_update(files, doc) < 0 ? -ENOMEM : 0;
}

static void on_proposed(agree_proposal *p, const agree_result *res, void *userdata) {
	rollout_restage *op = userdata;

	op->proposal = NULL;
	if (res->error.code < 0)
		return report(op, NULL, NULL, res->error.code, res->error.message);
	/* no difference: the plan's change is in N already; N is the candidate */
	report(op, res->config_id, res->previous_id, 0, NULL);
}

static void propose(rollout_restage *op) {
	etcd_compare fence = leader_fence(op->leader_key, op->token);
	agree_options o = {
		.prefix = op->prefix,
		.proposer = op->proposer,
		.stage_only = true,
		.fence = &fence,
		.n_fence = 1,
	};
	int r = agree_propose(&op->proposal, op->etcd, &o, change, op, on_proposed, op);

	if (r < 0)
		report(op, NULL, NULL, r, "cannot start the rebase's proposal");
}

static int read_next(rollout_restage *op);

static void on_read(const agree_snapshot *s, const agree_error *err, void *userdata) {
	rollout_restage *op = userdata;
	char msg[700];

	op->read = NULL;
	if (err) {
		snprintf(msg, sizeof msg, "cannot read %s config %s: %s", op->reading_candidate ? "the candidate" : "the base",
			 op->reading_candidate ? op->candidate_id : op->base_id, err->message);
		return report(op, NULL, NULL, err->code, msg);
	}
	if (leaves_copy(&s->leaves, op->reading_candidate ? &op->candidate : &op->base) < 0)
		return report(op, NULL, NULL, -ENOMEM, "out of memory");
	if (op->reading_candidate)
		return propose(op);
	op->reading_candidate = true;
	if (read_next(op) < 0)
		report(op, NULL, NULL, -ENOMEM, "cannot read the candidate");
}

static int read_next(rollout_restage *op) {
	const char *id = op->reading_candidate ? op->candidate_id : op->base_id;
	return agree_read_config(op->etcd, op->prefix, id, on_read, op, &op->read);
}

int rollout_restage_start(rollout_restage **out, etcd_client *etcd, const rollout_restage_options *o,
			  rollout_restage_cb cb, void *userdata) {
	rollout_restage *op;
	int r;

	if (!out || !etcd || !o || !o->prefix || !o->proposer || !o->candidate || !cb)
		return -EINVAL;
	op = calloc(1, sizeof *op);
	if (!op)
		return -ENOMEM;
	*op = (rollout_restage) { .etcd = etcd, .token = o->token, .cb = cb, .userdata = userdata };
	op->prefix = strdup(o->prefix);
	op->proposer = strdup(o->proposer);
	op->leader_key = keys_one_of(o->prefix, KEYS_LEADER);
	op->candidate_id = strdup(o->candidate);
	op->base_id = o->base ? strdup(o->base) : NULL;
	if (!op->prefix || !op->proposer || !op->leader_key || !op->candidate_id || (o->base && !op->base_id)) {
		rollout_restage_free(op);
		return -ENOMEM;
	}
	/* no base: the candidate was made on nothing (an empty config) */
	op->reading_candidate = !op->base_id;
	r = read_next(op);
	if (r < 0) {
		rollout_restage_free(op);
		return r;
	}
	*out = op;
	return 0;
}
