/* history.c — the config folders as history, and their collection: which
 * snapshots exist (keys only, one revision), which of them must stay (the
 * pure plan), and deleting the rest without ever undoing a racing commit. */
#include "agree-internal.h"

enum { STAGE_CURRENT, STAGE_CONFIGS, STAGE_STATUS };

#define HISTORY_PAGE_SIZE 2000
/* Deletes per collection txn; well under etcd's default --max-txn-ops. */
#define GC_BATCH 64

void agree_folders_done(agree_folders *f) {
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].id);
	free(f->v);
	free(f->current);
	strv_free(f->in_use);
	*f = (agree_folders){};
}

static int folder_cmp(const void *a, const void *b) {
	const agree_folder *x = a, *y = b;

	if (x->create_revision != y->create_revision)
		return x->create_revision > y->create_revision ? -1 : 1;
	return -strcmp(x->id, y->id);
}

static int folders_add(agree_folders *f, const char *id, size_t len, int64_t create_revision, size_t n_keys) {
	/* Keys come sorted, so a folder's keys are next to each other: look
	 * at the last folder first. */
	for (size_t i = f->n; i > 0; i--) {
		agree_folder *d = &f->v[i - 1];
		if (strlen(d->id) == len && memcmp(d->id, id, len) == 0) {
			if (create_revision < d->create_revision)
				d->create_revision = create_revision;
			d->n_keys += n_keys;
			return 0;
		}
		if (i == f->n && f->n > 64)
			break;          /* sorted input: not seen before */
	}
	agree_folder *v = realloc(f->v, (f->n + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	f->v = v;
	f->v[f->n] = (agree_folder){ .id = strndup(id, len), .create_revision = create_revision, .n_keys = n_keys };
	if (!f->v[f->n].id)
		return -ENOMEM;
	f->n++;
	return 0;
}

int agree_folders_from_keys(const etcd_kv *kvs, size_t n, size_t strip, agree_folders *out) {
	agree_folders f = {};
	int r;

	for (size_t i = 0; i < n; i++) {
		const etcd_kv *kv = &kvs[i];
		if (kv->key_len <= strip)
			continue;
		const char *id = kv->key + strip;
		size_t rest = kv->key_len - strip;
		const char *slash = memchr(id, '/', rest);
		/* A key straight under configs/ is no folder: not ours. */
		if (!slash || slash == id || !agree_id_valid(id, slash - id))
			continue;
		/* The empty config's marker keeps the folder, but is no leaf. */
		bool marker = (size_t) (kv->key + kv->key_len - slash - 1) == strlen(AGREE_EMPTY_MARKER) &&
			      memcmp(slash + 1, AGREE_EMPTY_MARKER, strlen(AGREE_EMPTY_MARKER)) == 0;
		r = folders_add(&f, id, slash - id, kv->create_revision, marker ? 0 : 1);
		if (r < 0) {
			agree_folders_done(&f);
			return r;
		}
	}
	if (f.n > 1)
		qsort(f.v, f.n, sizeof *f.v, folder_cmp);
	*out = f;
	return 0;
}

static bool strv_contains(char *const *v, const char *s) {
	for (size_t i = 0; v && v[i]; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

int agree_gc_plan(const agree_folders *f, unsigned keep, char ***out_delete) {
	_cleanup_strv_free_ char **del = calloc(f->n + 1, sizeof *del);
	size_t n = 0;
	unsigned kept = 0;

	if (!del)
		return -ENOMEM;
	for (size_t i = 0; i < f->n; i++) {
		const agree_folder *d = &f->v[i];

		if (streq_ptr(d->id, f->current) || strv_contains(f->in_use, d->id))
			continue;
		/* Newer than the last commit: a proposal may be writing it
		 * in chunks right now. Without a current, every folder is. */
		if (d->create_revision > f->current_mod_revision)
			continue;
		/* f->v is newest first, so these are the `keep` newest. */
		if (kept < keep) {
			kept++;
			continue;
		}
		del[n] = strdup(d->id);
		if (!del[n])
			return -ENOMEM;
		n++;
	}
	*out_delete = TAKE_PTR(del);
	return 0;
}

/* ---- listing ----------------------------------------------------------------- */

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata);

static int start_range(agree_read_op *op, const char *key, bool keys_only, int64_t revision) {
	etcd_range_req req = { .key = key, .prefix = true, .keys_only = keys_only, .revision = revision };

	return etcd_range_all(op->client, &req, HISTORY_PAGE_SIZE, on_reply, op, &op->call);
}

static void fail_code(agree_read_op *op, int code, const char *what) {
	agree_error e = {};

	agree_error_set(&e, code, "%s: %s", what, strerror(-code));
	agree_read_deliver(op, &e);
}

static void got_current(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *key = agree_key(op->prefix, "/configs/");
	int r;

	if (!key)
		return fail_code(op, -ENOMEM, "listing configs/");
	op->snap.revision = resp->header.revision;
	if (resp->n_kvs > 0) {
		const etcd_kv *kv = &resp->kvs[0];
		if (kv->value && agree_id_valid(kv->value, kv->value_len)) {
			op->folders.current = strndup(kv->value, kv->value_len);
			if (!op->folders.current)
				return fail_code(op, -ENOMEM, "listing configs/");
		}
		/* A malformed current names no folder, but its revision still
		 * tells what is in flight. */
		op->folders.current_mod_revision = kv->mod_revision;
	}
	op->stage = STAGE_CONFIGS;
	r = start_range(op, key, true, op->snap.revision);
	if (r < 0)
		fail_code(op, r, "listing configs/");
}

static void got_configs(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *key = agree_key(op->prefix, "/configs/"), *status = agree_key(op->prefix, "/status/");
	int r;

	if (!key || !status)
		return fail_code(op, -ENOMEM, "listing configs/");
	char *current = TAKE_PTR(op->folders.current);
	int64_t mod = op->folders.current_mod_revision;
	r = agree_folders_from_keys(resp->kvs, resp->n_kvs, strlen(key), &op->folders);
	op->folders.current = current;
	op->folders.current_mod_revision = mod;
	if (r < 0)
		return fail_code(op, r, "listing configs/");

	/* Every folder holds a key (the empty config its marker): a current
	 * that names none is missing, and is not listed as a folder. */
	op->stage = STAGE_STATUS;
	r = start_range(op, status, false, op->snap.revision);
	if (r < 0)
		fail_code(op, r, "listing status/");
}

static int in_use_add(agree_folders *f, size_t *n, json_t *v) {
	if (!json_is_string(v) || strv_contains(f->in_use, json_string_value(v)))
		return 0;
	char **nv = realloc(f->in_use, (*n + 2) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	f->in_use = nv;
	f->in_use[*n] = strdup(json_string_value(v));
	f->in_use[*n + 1] = NULL;
	if (!f->in_use[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void got_status(agree_read_op *op, const etcd_response *resp) {
	size_t n = 0;

	op->folders.in_use = calloc(1, sizeof *op->folders.in_use);
	if (!op->folders.in_use)
		return fail_code(op, -ENOMEM, "listing status/");
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		json_auto_t *rec = kv->value ? json_loadb(kv->value, kv->value_len, 0, NULL) : NULL;

		/* A malformed record names nothing we could keep. */
		if (!json_is_object(rec))
			continue;
		if (in_use_add(&op->folders, &n, json_object_get(rec, "target")) < 0 ||
		    in_use_add(&op->folders, &n, json_object_get(rec, "applied")) < 0)
			return fail_code(op, -ENOMEM, "listing status/");
	}
	agree_read_deliver(op, NULL);
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_read_op *op = userdata;
	static const char *const what[] = { "reading current", "listing configs/", "listing status/" };
	agree_error e = {};

	op->call = NULL;
	if (resp->error.code < 0) {
		agree_error_etcd(&e, &resp->error, what[op->stage]);
		return agree_read_deliver(op, &e);
	}
	switch (op->stage) {
	case STAGE_CURRENT:
		return got_current(op, resp);
	case STAGE_CONFIGS:
		return got_configs(op, resp);
	default:
		return got_status(op, resp);
	}
}

int agree_history(etcd_client *c, const char *prefix, agree_folders_cb cb, void *userdata, agree_read_op **out) {
	_cleanup_free_ char *key = NULL;
	agree_read_op *op;
	int r;

	if (!c || !prefix || !cb)
		return -EINVAL;
	op = agree_read_op_new(c, prefix, AGREE_READ_HISTORY, userdata);
	key = agree_key(prefix, "/current");
	if (!op || !key) {
		agree_read_op_free(op);
		return -ENOMEM;
	}
	op->folders_cb = cb;
	op->stage = STAGE_CURRENT;
	etcd_range_req req = { .key = key };
	r = etcd_range(c, &req, on_reply, op, &op->call);
	if (r < 0) {
		op->call = NULL;
		agree_read_op_free(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

/* ---- collection ------------------------------------------------------------ */

struct agree_gc_op {
	etcd_client *client;
	char *prefix;
	char *current_key;
	unsigned keep;
	etcd_compare *fence;
	size_t n_fence;
	char **fence_bufs;              /* 2 per compare: key, value */

	agree_gc_cb cb;
	void *userdata;
	bool in_callback;

	agree_read_op *list;
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
	free(op->prefix);
	free(op->current_key);
	free(op->fence);
	for (size_t i = 0; op->fence_bufs && i < 2 * op->n_fence; i++)
		free(op->fence_bufs[i]);
	free(op->fence_bufs);
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
	_cleanup_free_ etcd_compare *cmp = calloc(1 + op->n_fence, sizeof *cmp);
	etcd_op fail_ops[] = { { .type = ETCD_OP_RANGE, .range = { .key = op->current_key } } };
	int r;

	if (!cmp)
		return gc_fail(op, -ENOMEM, "collecting");
	if (!op->plan || !op->plan[op->next])
		return gc_finish(op, NULL);
	for (; n < GC_BATCH && op->plan[op->next]; n++, op->next++) {
		keys[n] = agree_key(op->prefix, "/configs/%s/", op->plan[op->next]);
		if (!keys[n])
			break;
		ops[n] = (etcd_op){ .type = ETCD_OP_DELETE, .del = { .key = keys[n], .prefix = true } };
	}
	/* current unchanged (absent: still absent), so a commit that raced
	 * this plan is never undone; and the fence, if any. */
	cmp[0] = op->current_mod ? (etcd_compare){ .key = op->current_key, .target = ETCD_CMP_MOD,
						   .number = op->current_mod }
				 : (etcd_compare){ .key = op->current_key, .target = ETCD_CMP_CREATE };
	for (size_t i = 0; i < op->n_fence; i++)
		cmp[1 + i] = op->fence[i];
	etcd_txn_req txn = { cmp, 1 + op->n_fence, ops, n, fail_ops, 1 };
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

static char *bytes_dup(const char *s, size_t len) {
	char *d = malloc(len + 1);
	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

int agree_collect(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence, size_t n_fence,
		  agree_gc_cb cb, void *userdata, agree_gc_op **out) {
	agree_gc_op *op;
	int r;

	if (!c || !prefix || !cb || (n_fence > 0 && !fence))
		return -EINVAL;
	op = calloc(1, sizeof *op);
	if (!op)
		return -ENOMEM;
	op->client = c;
	op->keep = keep;
	op->cb = cb;
	op->userdata = userdata;
	op->n_fence = n_fence;
	op->prefix = strdup(prefix);
	op->current_key = agree_key(prefix, "/current");
	if (n_fence > 0) {
		op->fence = calloc(n_fence, sizeof *op->fence);
		op->fence_bufs = calloc(2 * n_fence, sizeof *op->fence_bufs);
	}
	if (!op->prefix || !op->current_key || (n_fence > 0 && (!op->fence || !op->fence_bufs))) {
		gc_destroy(op);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_fence; i++) {
		size_t klen = fence[i].key_len ? fence[i].key_len : strlen(fence[i].key);
		op->fence[i] = fence[i];
		op->fence_bufs[2 * i] = bytes_dup(fence[i].key, klen);
		if (!op->fence_bufs[2 * i]) {
			gc_destroy(op);
			return -ENOMEM;
		}
		op->fence[i].key = op->fence_bufs[2 * i];
		op->fence[i].key_len = klen;
		if (fence[i].value) {
			size_t vlen = fence[i].value_len ? fence[i].value_len : strlen(fence[i].value);
			op->fence_bufs[2 * i + 1] = bytes_dup(fence[i].value, vlen);
			if (!op->fence_bufs[2 * i + 1]) {
				gc_destroy(op);
				return -ENOMEM;
			}
			op->fence[i].value = op->fence_bufs[2 * i + 1];
			op->fence[i].value_len = vlen;
		}
	}
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

/* ---- blocking ------------------------------------------------------------------ */

typedef struct history_sync {
	bool done;
	agree_folders *out;
	agree_error *err;
	int deleted;
} history_sync;

static void on_history_sync(const agree_folders *f, const agree_error *err, void *userdata) {
	history_sync *hs = userdata;

	hs->done = true;
	if (err) {
		*hs->err = *err;
		return;
	}
	/* Our own op, freed when this returns: take the listing. */
	agree_folders *owned = (agree_folders *) f;
	*hs->out = *owned;
	*owned = (agree_folders){};
}

int agree_history_sync(etcd_client *c, const char *prefix, agree_folders *out, agree_error *err) {
	agree_error local = {};
	history_sync hs = { .out = out, .err = err ? err : &local };
	int r;

	*hs.err = (agree_error){};
	*out = (agree_folders){};
	r = agree_history(c, prefix, on_history_sync, &hs, NULL);
	if (r >= 0)
		r = agree_run_until(c, &hs.done);
	if (r < 0) {
		agree_error_set(hs.err, r, "cannot list the configs: %s", strerror(-r));
		return r;
	}
	return hs.err->code;
}

static void on_collect_sync(int deleted, const agree_error *err, void *userdata) {
	history_sync *hs = userdata;

	hs->done = true;
	hs->deleted = deleted;
	if (err)
		*hs->err = *err;
}

int agree_collect_sync(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence,
		       size_t n_fence, agree_error *err) {
	agree_error local = {};
	history_sync hs = { .err = err ? err : &local };
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
