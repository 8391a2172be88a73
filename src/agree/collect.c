/* collect.c — deleting old config snapshots (agree_collect: list with
 * agree_history, choose with agree_gc_plan, delete with agree_gc_delete),
 * without ever undoing a racing commit: every delete txn holds only while
 * `current` is as it was listed, and while the caller's fence holds. */
#include "agree-internal.h"

/* Deletes per collection txn; well under etcd's default --max-txn-ops. */
#define GC_BATCH 64

struct agree_gc_op {
	etcd_client *client;
	char *prefix;
	char *current_key;
	unsigned keep;
	agree_fence fence;

	agree_gc_cb cb;
	void *userdata;
	bool in_callback;

	agree_read_op *list;            /* agree_collect: listing */
	sd_event_source *defer;         /* agree_gc_delete: the first txn */
	etcd_call *call;
	int64_t current_mod;
	char **plan;
	size_t next;
	int deleted;
};

static void gc_destroy(agree_gc_op *op) {
	if (op->call)
		etcd_call_cancel(op->call);
	agree_read_op_free(op->list);
	sd_event_source_disable_unref(op->defer);
	free(op->prefix);
	free(op->current_key);
	agree_fence_done(&op->fence);
	strv_free(op->plan);
	free(op);
}

agree_gc_op *agree_gc_op_free(agree_gc_op *op) {
	if (op && !op->in_callback)
		gc_destroy(op);
	return NULL;
}

static void gc_finish(agree_gc_op *op, const agree_error *err) {
	op->in_callback = true;
	op->cb(op->deleted, err, op->userdata);
	gc_destroy(op);
}

static void gc_fail(agree_gc_op *op, int code, const char *what) {
	agree_error e = {};

	agree_error_set(&e, code, "%s: %s", what, strerror(-code));
	gc_finish(op, &e);
}

static void gc_next(agree_gc_op *op);

static void on_gc_txn(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_gc_op *op = userdata;
	agree_error e = {};

	op->call = NULL;
	if (resp->error.code < 0) {
		agree_error_etcd(&e, &resp->error, "deleting old configs");
		return gc_finish(op, &e);
	}
	if (!resp->succeeded) {
		const etcd_response *cur = resp->n_responses > 0 ? &resp->responses[0] : NULL;
		int64_t mod = cur && cur->n_kvs > 0 ? cur->kvs[0].mod_revision : 0;
		if (cur && mod == op->current_mod) {
			agree_error_set(&e, -EPERM, "a fence compare failed: nothing more deleted (no longer the leader?)");
			return gc_finish(op, &e);
		}
		/* A commit came in: the plan is stale. Stop; the next run
		 * plans again. */
		return gc_finish(op, NULL);
	}
	for (size_t i = 0; i < resp->n_responses; i++)
		if (resp->responses[i].deleted > 0)
			op->deleted++;
	gc_next(op);
}

static void gc_next(agree_gc_op *op) {
	size_t n = 0;
	char *keys[GC_BATCH] = {};
	etcd_op ops[GC_BATCH];
	_cleanup_free_ etcd_compare *cmp = calloc(1 + op->fence.n, sizeof *cmp);
	etcd_op fail_ops[] = { { .type = ETCD_OP_RANGE, .range = { .key = op->current_key } } };
	int r;

	if (!cmp)
		return gc_fail(op, -ENOMEM, "collecting");
	if (!op->plan || !op->plan[op->next])
		return gc_finish(op, NULL);
	for (; n < GC_BATCH && op->plan[op->next]; n++, op->next++) {
		keys[n] = keys_entry(op->prefix, KEYS_CONFIGS, op->plan[op->next]);
		if (!keys[n])
			break;
		ops[n] = (etcd_op){ .type = ETCD_OP_DELETE, .del = { .key = keys[n], .prefix = true } };
	}
	/* current unchanged (absent: still absent), so a commit that raced
	 * this plan is never undone; and the fence, if any. */
	cmp[0] = op->current_mod ? (etcd_compare){ .key = op->current_key, .target = ETCD_CMP_MOD,
						   .number = op->current_mod }
				 : (etcd_compare){ .key = op->current_key, .target = ETCD_CMP_CREATE };
	for (size_t i = 0; i < op->fence.n; i++)
		cmp[1 + i] = op->fence.v[i];
	etcd_txn_req txn = { cmp, 1 + op->fence.n, ops, n, fail_ops, 1 };
	r = n == 0 ? -ENOMEM : etcd_txn(op->client, &txn, on_gc_txn, op, &op->call);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	if (r < 0) {
		op->call = NULL;
		gc_fail(op, r, "collecting");
	}
}

static void on_gc_list(const agree_folders *f, const agree_error *err, void *userdata) {
	agree_gc_op *op = userdata;
	int r;

	op->list = NULL;
	if (err)
		return gc_finish(op, err);
	op->current_mod = f->current_mod_revision;
	r = agree_gc_plan(f, op->keep, &op->plan);
	if (r < 0)
		return gc_fail(op, r, "planning the collection");
	gc_next(op);
}

/* The op both entry points start from: prefix, `current`'s key and a
 * copy of the fence. */
static int gc_op_new(etcd_client *c, const char *prefix, const etcd_compare *fence, size_t n_fence,
		     agree_gc_cb cb, void *userdata, agree_gc_op **out) {
	agree_gc_op *op;
	int r;

	if (!c || !prefix || !cb || (n_fence > 0 && !fence))
		return -EINVAL;
	op = calloc(1, sizeof *op);
	if (!op)
		return -ENOMEM;
	op->client = c;
	op->cb = cb;
	op->userdata = userdata;
	op->prefix = strdup(prefix);
	op->current_key = keys_one_of(prefix, KEYS_CURRENT);
	if (!op->prefix || !op->current_key) {
		gc_destroy(op);
		return -ENOMEM;
	}
	r = agree_fence_copy(&op->fence, fence, n_fence);
	if (r < 0) {
		gc_destroy(op);
		return r;
	}
	*out = op;
	return 0;
}

int agree_collect(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence, size_t n_fence,
		  agree_gc_cb cb, void *userdata, agree_gc_op **out) {
	agree_gc_op *op;
	int r;

	r = gc_op_new(c, prefix, fence, n_fence, cb, userdata, &op);
	if (r < 0)
		return r;
	op->keep = keep;
	r = agree_history(c, prefix, on_gc_list, op, &op->list);
	if (r < 0) {
		op->list = NULL;
		gc_destroy(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

static int on_gc_defer(sd_event_source *s, void *userdata) {
	agree_gc_op *op = userdata;

	op->defer = sd_event_source_disable_unref(op->defer);
	gc_next(op);
	return 0;
}

int agree_gc_delete(etcd_client *c, const char *prefix, char *const *ids, int64_t current_mod_revision,
		    const etcd_compare *fence, size_t n_fence, agree_gc_cb cb, void *userdata, agree_gc_op **out) {
	agree_gc_op *op;
	size_t n = strv_length(ids);
	int r;

	for (size_t i = 0; i < n; i++)
		if (!keys_id_valid(ids[i], strlen(ids[i])))
			return -EINVAL;
	r = gc_op_new(c, prefix, fence, n_fence, cb, userdata, &op);
	if (r < 0)
		return r;
	op->current_mod = current_mod_revision;
	op->plan = calloc(n + 1, sizeof *op->plan);
	if (!op->plan) {
		gc_destroy(op);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (!(op->plan[i] = strdup(ids[i]))) {
			gc_destroy(op);
			return -ENOMEM;
		}
	/* The first txn from the loop, so the callback never runs before
	 * this returns (*out is set). */
	r = sd_event_add_defer(etcd_client_event(c), &op->defer, on_gc_defer, op);
	if (r < 0) {
		gc_destroy(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

/* ---- blocking ------------------------------------------------------------------ */

typedef struct collect_sync {
	bool done;
	agree_error *err;
	int deleted;
} collect_sync;

static void on_collect_sync(int deleted, const agree_error *err, void *userdata) {
	collect_sync *hs = userdata;

	hs->done = true;
	hs->deleted = deleted;
	if (err)
		*hs->err = *err;
}

int agree_collect_sync(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence,
		       size_t n_fence, agree_error *err) {
	agree_error local = {};
	collect_sync hs = { .err = err ? err : &local };
	int r;

	*hs.err = (agree_error){};
	r = agree_collect(c, prefix, keep, fence, n_fence, on_collect_sync, &hs, NULL);
	if (r >= 0)
		r = agree_run_until(c, &hs.done);
	if (r < 0) {
		agree_error_set(hs.err, r, "cannot collect: %s", strerror(-r));
		return r;
	}
	return hs.err->code < 0 ? hs.err->code : hs.deleted;
}
