/* partial.c — the read of a scoped proposal beside a big config
 * (agree_options.partial): instead of the whole config, only what the
 * change may touch, at one revision: `current` C, whether C is a delta
 * (its %base/ key), C's own keys when it is (a delta is small), and of the
 * complete folder X under it (C itself, or C's base) its key count, the
 * leaves within the scope and those on the path to it. Everything else
 * stays as it is, in the base and in the cumulative delta, which the
 * proposal carries forward (agree_delta_splice). When anything is not as
 * this path needs (no current, a small config, a broken or missing
 * folder), it reports "fall back" and the proposal reads the whole config. */
#include "agree-internal.h"

enum { P_CURRENT, P_MARKER, P_DELTA, P_BASE_MARKER, P_COUNT, P_REGION, P_ANCESTOR };

struct agree_partial_op {
	etcd_client *client;
	char *prefix, *scope;
	size_t min_leaves;
	agree_partial_cb cb;
	void *userdata;
	int stage;
	size_t next_ancestor;           /* P_ANCESTOR: the next one's length in scope */
	etcd_call *call;
	char *x;                        /* the complete folder's id */
	agree_partial res;
	tree_leaves region;             /* X's leaves on the path and within scope */
};

agree_partial_op *agree_partial_op_free(agree_partial_op *op) {
	if (!op)
		return NULL;
	if (op->call)
		etcd_call_cancel(op->call);
	free(op->prefix);
	free(op->scope);
	free(op->x);
	agree_snapshot_done(&op->res.snap);
	tree_leaves_done(&op->region);
	free(op);
	return NULL;
}

static void deliver(agree_partial_op *op, agree_partial *res, const agree_error *err) {
	op->call = NULL;
	op->cb(res, err, op->userdata);
	agree_partial_op_free(op);
}

static void fall_back(agree_partial_op *op) {
	deliver(op, NULL, NULL);
}

static void fail(agree_partial_op *op, int code) {
	agree_error e = {};

	agree_error_set(&e, code, "reading the config: %s", strerror(-code));
	deliver(op, NULL, &e);
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata);

static int range(agree_partial_op *op, int stage, const char *key, const char *end, bool prefix, bool count) {
	etcd_range_req req = { .key = key, .range_end = end, .prefix = prefix, .count_only = count,
			       .revision = op->res.snap.revision };

	op->stage = stage;
	return etcd_range(op->client, &req, on_reply, op, &op->call);
}

static int folder_range(agree_partial_op *op, int stage, const char *id, const char *leaf, bool count) {
	_cleanup_free_ char *key = leaf ? keys_config_leaf(op->prefix, id, leaf) : keys_entry(op->prefix, KEYS_CONFIGS, id);

	return key ? range(op, stage, key, NULL, true, count) : -ENOMEM;
}

/* X's leaves within scope: [X/scope, X/scope + "0"): '0' follows '/'. */
static int start_region(agree_partial_op *op) {
	_cleanup_free_ char *key = keys_config_leaf(op->prefix, op->x, op->scope), *end = NULL;

	if (!key || asprintf(&end, "%s0", key) < 0)
		return -ENOMEM;
	return range(op, P_REGION, key, end, false, false);
}

/* The next leaf path above scope ("a", then "a/b" for "a/b/c"), or none. */
static int start_ancestor(agree_partial_op *op) {
	const char *slash = strchr(op->scope + op->next_ancestor, '/');
	_cleanup_free_ char *anc = NULL;

	if (!slash)
		return 0;
	op->next_ancestor = (size_t) (slash - op->scope) + 1;
	anc = strndup(op->scope, (size_t) (slash - op->scope));
	_cleanup_free_ char *key = anc ? keys_config_leaf(op->prefix, op->x, anc) : NULL;
	if (!key)
		return -ENOMEM;
	int r = range(op, P_ANCESTOR, key, NULL, false, false);
	return r < 0 ? r : 1;
}

static int add_leaves(agree_partial_op *op, const etcd_response *resp, bool within_only) {
	_cleanup_free_ char *folder = keys_entry(op->prefix, KEYS_CONFIGS, op->x);
	size_t strip = folder ? strlen(folder) : 0;
	tree_leaf *v;

	if (!folder)
		return -ENOMEM;
	v = realloc(op->region.v, (op->region.n + resp->n_kvs + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	op->region.v = v;
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		if (kv->key_len <= strip || memchr(kv->key, 0, kv->key_len) ||
		    (kv->value && memchr(kv->value, 0, kv->value_len)))
			return -EBADMSG;
		_cleanup_free_ char *path = strndup(kv->key + strip, kv->key_len - strip);
		if (!path)
			return -ENOMEM;
		if (within_only && !tree_path_within(path, op->scope))
			continue;
		op->region.v[op->region.n].value = strndup(kv->value ? kv->value : "", kv->value ? kv->value_len : 0);
		op->region.v[op->region.n].path = TAKE_PTR(path);
		if (!op->region.v[op->region.n++].value)
			return -ENOMEM;
	}
	return 0;
}

/* The snapshot the change sees: the region, resolved. */
static void finish(agree_partial_op *op) {
	agree_snapshot *s = &op->res.snap;
	_cleanup_(agree_delta_done) agree_delta od = {};
	tree_leaves sorted = {};
	int r;

	/* ancestors came last but sort first: "a" < "a/b" < "a/b/c..." */
	if (op->region.n > 1) {
		size_t k = 0;
		while (k < op->region.n && tree_path_within(op->region.v[k].path, op->scope))
			k++;
		sorted.v = calloc(op->region.n, sizeof *sorted.v);
		if (!sorted.v)
			return fail(op, -ENOMEM);
		memcpy(sorted.v, op->region.v + k, (op->region.n - k) * sizeof *sorted.v);
		memcpy(sorted.v + op->region.n - k, op->region.v, k * sizeof *sorted.v);
		sorted.n = op->region.n;
		free(op->region.v);
		op->region = sorted;
	}
	r = agree_delta_within(&s->delta, op->scope, &od);
	if (r < 0)
		return fail(op, r);
	r = agree_delta_resolve(&op->region, &od, &s->leaves);
	if (r < 0)
		return fail(op, r);
	r = tree_unflatten_partial(s->leaves.v, s->leaves.n, &s->files, &s->faults, &s->n_faults);
	if (r < 0)
		return fail(op, r);
	/* A fault in the region: the full read says what it is. */
	if (s->n_faults > 0)
		return fall_back(op);
	deliver(op, &op->res, NULL);
}

static int next(agree_partial_op *op, const etcd_response *resp) {
	agree_snapshot *s = &op->res.snap;
	agree_error err = {};
	int r;

	switch (op->stage) {
	case P_CURRENT:
		if (resp->n_kvs == 0 || !resp->kvs[0].value ||
		    !keys_id_valid(resp->kvs[0].value, resp->kvs[0].value_len) ||
		    memchr(resp->kvs[0].value, 0, resp->kvs[0].value_len))
			return 1;
		s->revision = resp->header.revision;
		s->current_mod_revision = resp->kvs[0].mod_revision;
		s->config_id = strndup(resp->kvs[0].value, resp->kvs[0].value_len);
		return s->config_id ? folder_range(op, P_MARKER, s->config_id, AGREE_BASE_MARKER "/", false) : -ENOMEM;
	case P_MARKER:
		if (resp->n_kvs == 0) {
			op->x = strdup(s->config_id);
			return op->x ? folder_range(op, P_COUNT, op->x, NULL, true) : -ENOMEM;
		}
		return folder_range(op, P_DELTA, s->config_id, NULL, false);
	case P_DELTA: {
		_cleanup_free_ char *folder = keys_entry(op->prefix, KEYS_CONFIGS, s->config_id);
		if (!folder)
			return -ENOMEM;
		r = agree_folder_parse(resp->kvs, resp->n_kvs, strlen(folder), &s->delta, &err);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !s->delta.base_id)
			return 1;
		op->x = strdup(s->delta.base_id);
		return op->x ? folder_range(op, P_BASE_MARKER, op->x, AGREE_BASE_MARKER "/", true) : -ENOMEM;
	}
	case P_BASE_MARKER:
		if (resp->count > 0)
			return 1;       /* a base that is a delta: the full read says so */
		return folder_range(op, P_COUNT, op->x, NULL, true);
	case P_COUNT:
		/* missing, or small enough for a complete folder: the full path */
		if (resp->count <= 0 || (size_t) resp->count < op->min_leaves)
			return 1;
		op->res.base_leaves = (size_t) resp->count;
		return start_region(op);
	case P_REGION:
		if ((r = add_leaves(op, resp, true)) < 0)
			return r == -EBADMSG ? 1 : r;
		r = start_ancestor(op);
		return r == 0 ? 2 : r < 0 ? r : 0;
	default:
		if ((r = add_leaves(op, resp, false)) < 0)
			return r == -EBADMSG ? 1 : r;
		r = start_ancestor(op);
		return r == 0 ? 2 : r < 0 ? r : 0;
	}
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_partial_op *op = userdata;
	agree_error e = {};

	op->call = NULL;
	if (resp->error.code < 0) {
		/* compacted meanwhile and the like: the full read copes */
		if (etcd_error_is_compacted(&resp->error))
			return fall_back(op);
		agree_error_etcd(&e, &resp->error, "reading the config");
		return deliver(op, NULL, &e);
	}
	int r = next(op, resp);
	if (r < 0)
		return fail(op, r);
	if (r == 1)
		return fall_back(op);
	if (r == 2)
		return finish(op);
}

int agree_partial_read(etcd_client *c, const char *prefix, const char *scope, size_t min_leaves, agree_partial_cb cb,
		       void *userdata, agree_partial_op **out) {
	_cleanup_free_ char *key = keys_one_of(prefix, KEYS_CURRENT);
	agree_partial_op *op = calloc(1, sizeof *op);
	int r;

	if (!op || !key) {
		free(op);
		return -ENOMEM;
	}
	op->client = c;
	op->min_leaves = min_leaves;
	op->cb = cb;
	op->userdata = userdata;
	op->prefix = strdup(prefix);
	op->scope = strdup(scope);
	if (!op->prefix || !op->scope) {
		agree_partial_op_free(op);
		return -ENOMEM;
	}
	r = range(op, P_CURRENT, key, NULL, false, false);
	if (r < 0) {
		op->call = NULL;
		agree_partial_op_free(op);
		return r;
	}
	*out = op;
	return 0;
}
