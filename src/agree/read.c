/* read.c — snapshot reads for the agreement protocol: `current`, the
 * config folder it names (and, for a delta, its base folder) and (when
 * asked) nodes/, all at the one etcd revision `current` was read at, so a
 * proposal starts from a state that really existed. */
#include "agree-internal.h"
#include "esc.h"

enum { STAGE_CURRENT, STAGE_CONFIG, STAGE_BASE, STAGE_NODES };

/* Config folders are immutable once `current` names them, but nodes/ is
 * not: every page must come from the same revision. */
#define AGREE_PAGE_SIZE 1000

/* ---- snapshots ------------------------------------------------------------------- */

static void fail_etcd(agree_read_op *op, const etcd_response *resp, const char *what) {
	agree_error e = {};

	agree_error_etcd(&e, &resp->error, what);
	agree_read_deliver(op, &e);
}

static void fail_code(agree_read_op *op, int code, const char *what) {
	agree_error e = {};

	agree_error_set(&e, code, "%s: %s", what, strerror(-code));
	agree_read_deliver(op, &e);
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata);

static int start_range(agree_read_op *op, const char *key, bool prefix, int64_t revision) {
	etcd_range_req req = { .key = key, .prefix = prefix, .revision = revision };

	/* A config folder in one request: it is immutable, and etcd 3.4
	 * serves a page (a limit and the key order etcd_range_all asks for)
	 * by reading and sorting the whole range each time, so N pages cost
	 * N whole reads (docs/snapshots.md). Its keys come in key order. */
	if (prefix && op->stage != STAGE_NODES)
		return etcd_range(op->client, &req, on_reply, op, &op->call);
	if (prefix)
		return etcd_range_all(op->client, &req, AGREE_PAGE_SIZE, on_reply, op, &op->call);
	return etcd_range(op->client, &req, on_reply, op, &op->call);
}

static int start_config(agree_read_op *op) {
	_cleanup_free_ char *key = keys_entry(op->prefix, KEYS_CONFIGS, op->snap.config_id);

	if (!key)
		return -ENOMEM;
	op->stage = STAGE_CONFIG;
	return start_range(op, key, true, op->snap.revision);
}

static int start_nodes(agree_read_op *op) {
	_cleanup_free_ char *key = keys_dir_of(op->prefix, KEYS_NODES);

	if (!key)
		return -ENOMEM;
	op->stage = STAGE_NODES;
	return start_range(op, key, true, op->snap.revision);
}

/* The next stage after the config (or after finding no `current`). */
static void after_config(agree_read_op *op) {
	int r;

	if (op->kind == AGREE_READ_SNAPSHOT && op->read_nodes) {
		r = start_nodes(op);
		if (r < 0)
			fail_code(op, r, "cannot read nodes/");
		return;
	}
	agree_read_deliver(op, op->broken.code < 0 ? &op->broken : NULL);
}

static void got_current(agree_read_op *op, const etcd_response *resp) {
	int r;

	op->snap.revision = resp->header.revision;
	if (resp->n_kvs == 0) {
		op->snap.files = json_object();
		if (!op->snap.files)
			return fail_code(op, -ENOMEM, "reading current");
		return after_config(op);
	}

	const etcd_kv *kv = &resp->kvs[0];
	op->snap.current_mod_revision = kv->mod_revision;
	if (op->current_only) {
		/* Only whether it exists matters (and, to report it, its id). */
		op->snap.files = json_object();
		if (keys_id_valid(kv->value, kv->value ? kv->value_len : 0) && !memchr(kv->value, 0, kv->value_len))
			op->snap.config_id = strndup(kv->value, kv->value_len);
		if (!op->snap.files)
			return fail_code(op, -ENOMEM, "reading current");
		return agree_read_deliver(op, NULL);
	}
	if (!keys_id_valid(kv->value, kv->value ? kv->value_len : 0) || memchr(kv->value, 0, kv->value_len)) {
		agree_error_set(&op->broken, -EBADMSG, "%s: not a config id: '%s'", ESC(kv->key),
				ESCN(kv->value ? kv->value : "", kv->value ? (kv->value_len < 200 ? kv->value_len : 200) : 0));
		op->snap.state = AGREE_SNAPSHOT_UNREADABLE;
		op->snap.files = json_object();
		if (!op->snap.files)
			return fail_code(op, -ENOMEM, "reading current");
		return after_config(op);
	}
	op->snap.config_id = strndup(kv->value, kv->value_len);
	if (!op->snap.config_id)
		return fail_code(op, -ENOMEM, "reading current");
	r = start_config(op);
	if (r < 0)
		fail_code(op, r, "cannot read the config folder");
}

/* What is wrong with a broken snapshot, for op->broken. */
static void describe_faults(agree_read_op *op, const char *folder) {
	const tree_fault *f = &op->snap.faults[0];

	agree_error_set(&op->broken, -EBADMSG, "config %s has %zu malformed lea%s: %s%s: %s%s", op->snap.config_id,
			op->snap.n_faults, op->snap.n_faults == 1 ? "f" : "ves", folder,
			op->snap.leaves.v[f->leaf].path, f->message, op->snap.n_faults > 1 ? " (and more)" : "");
}

/* The folder's leaves are in op->snap.leaves: the config, or what is
 * wrong with it. */
static void got_leaves(agree_read_op *op) {
	_cleanup_free_ char *folder = keys_entry(op->prefix, KEYS_CONFIGS, op->snap.config_id);
	int r;

	if (!folder)
		return fail_code(op, -ENOMEM, "reading the config");
	json_decref(op->snap.files);
	op->snap.files = NULL;
	r = tree_unflatten_partial(op->snap.leaves.v, op->snap.leaves.n, &op->snap.files, &op->snap.faults,
				   &op->snap.n_faults);
	if (r < 0)
		return fail_code(op, r, "reading the config");
	if (op->snap.n_faults > 0) {
		op->snap.state = AGREE_SNAPSHOT_MALFORMED;
		describe_faults(op, folder);
	}
	after_config(op);
}

static int start_base(agree_read_op *op) {
	_cleanup_free_ char *key = keys_entry(op->prefix, KEYS_CONFIGS, op->snap.delta.base_id);

	if (!key)
		return -ENOMEM;
	op->stage = STAGE_BASE;
	return start_range(op, key, true, op->snap.revision);
}

static void got_config(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *folder = keys_entry(op->prefix, KEYS_CONFIGS, op->snap.config_id);
	int r;

	if (!folder)
		return fail_code(op, -ENOMEM, "reading the config");
	if (op->snap.revision == 0)
		op->snap.revision = resp->header.revision;
	op->snap.files = json_object();
	if (!op->snap.files)
		return fail_code(op, -ENOMEM, "reading the config");
	/* Every folder holds a key (an empty config: the marker), so none
	 * means the folder is gone. */
	if (resp->n_kvs == 0) {
		op->snap.state = AGREE_SNAPSHOT_MISSING;
		if (op->kind == AGREE_READ_CONFIG)
			agree_error_set(&op->broken, -ENOENT, "no config '%s': %s holds no key", op->snap.config_id,
					folder);
		else
			agree_error_set(&op->broken, -ENOENT, "config %s, named by %s/current, is missing: %s holds no key",
					op->snap.config_id, op->prefix, folder);
		return after_config(op);
	}
	r = agree_folder_parse(resp->kvs, resp->n_kvs, strlen(folder), &op->snap.delta, &op->broken);
	if (r == -EBADMSG) {
		op->snap.state = AGREE_SNAPSHOT_UNREADABLE;
		return after_config(op);
	}
	if (r < 0)
		return agree_read_deliver(op, &op->broken);
	if (!op->snap.delta.base_id) {
		/* complete: what it holds is the config */
		op->snap.leaves = op->snap.delta.set;
		op->snap.delta.set = (tree_leaves){};
		agree_delta_done(&op->snap.delta);
		return got_leaves(op);
	}
	r = start_base(op);
	if (r < 0)
		fail_code(op, r, "cannot read the base config folder");
}

/* A delta's base, read at the delta's revision. */
static void got_base(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *folder = keys_entry(op->prefix, KEYS_CONFIGS, op->snap.delta.base_id);
	_cleanup_(agree_delta_done) agree_delta base = {};
	int r;

	if (!folder)
		return fail_code(op, -ENOMEM, "reading the base config");
	if (resp->n_kvs == 0) {
		op->snap.state = AGREE_SNAPSHOT_MISSING;
		agree_error_set(&op->broken, -ENOENT,
				"config %s is a delta on config %s, which is missing: %s holds no key "
				"(collected or deleted; roll back to a complete config)",
				op->snap.config_id, op->snap.delta.base_id, folder);
		return after_config(op);
	}
	r = agree_folder_parse(resp->kvs, resp->n_kvs, strlen(folder), &base, &op->broken);
	if (r == -EBADMSG) {
		op->snap.state = AGREE_SNAPSHOT_UNREADABLE;
		return after_config(op);
	}
	if (r < 0)
		return agree_read_deliver(op, &op->broken);
	if (base.base_id) {
		op->snap.state = AGREE_SNAPSHOT_UNREADABLE;
		agree_error_set(&op->broken, -EBADMSG,
				"config %s is a delta on config %s, which is itself a delta (on %s): a base must be "
				"complete",
				op->snap.config_id, op->snap.delta.base_id, base.base_id);
		return after_config(op);
	}
	r = agree_delta_resolve(&base.set, &op->snap.delta, &op->snap.leaves);
	if (r < 0)
		return fail_code(op, r, "reading the config");
	got_leaves(op);
}

int agree_node_parse(const etcd_kv *kv, size_t strip, char **out_id, json_t **out_record) {
	_cleanup_free_ char *id = NULL;
	json_t *rec;

	*out_id = NULL;
	*out_record = NULL;
	if (kv->key_len <= strip || memchr(kv->key, 0, kv->key_len) || !kv->value)
		return -EINVAL;
	id = strndup(kv->key + strip, kv->key_len - strip);
	if (!id)
		return -ENOMEM;
	rec = json_loadb(kv->value, kv->value_len, JSON_REJECT_DUPLICATES, NULL);
	/* A node whose record is not a JSON object is left out: the caller
	 * gets the nodes it can reason about. */
	if (!json_is_object(rec)) {
		json_decref(rec);
		return -EINVAL;
	}
	*out_id = TAKE_PTR(id);
	*out_record = rec;
	return 0;
}

static void got_nodes(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *folder = keys_dir_of(op->prefix, KEYS_NODES);
	size_t strip;
	int r;

	op->snap.nodes = json_object();
	op->snap.node_create_revisions = json_object();
	if (!folder || !op->snap.nodes || !op->snap.node_create_revisions)
		return fail_code(op, -ENOMEM, "reading nodes/");
	strip = strlen(folder);
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		_cleanup_free_ char *id = NULL;
		json_t *rec = NULL;

		r = agree_node_parse(kv, strip, &id, &rec);
		if (r == -ENOMEM)
			return fail_code(op, r, "reading nodes/");
		if (r < 0)
			continue;
		if (json_object_set_new(op->snap.nodes, id, rec) < 0 ||
		    json_object_set_new(op->snap.node_create_revisions, id, json_integer(kv->create_revision)) < 0)
			return fail_code(op, -ENOMEM, "reading nodes/");
	}
	agree_read_deliver(op, op->broken.code < 0 ? &op->broken : NULL);
}

/* A read at the revision a watch gave that etcd compacted meanwhile:
 * read `current` and its folder afresh, at the latest revision. */
static void read_again_latest(agree_read_op *op) {
	_cleanup_free_ char *key = keys_one_of(op->prefix, KEYS_CURRENT);
	int r;

	free(op->snap.config_id);
	op->snap.config_id = NULL;
	json_decref(op->snap.files);
	op->snap.files = NULL;
	agree_delta_done(&op->snap.delta);
	op->snap.revision = op->snap.current_mod_revision = 0;
	op->at_revision = false;
	op->stage = STAGE_CURRENT;
	r = key ? start_range(op, key, false, 0) : -ENOMEM;
	if (r < 0)
		fail_code(op, r, "reading current");
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_read_op *op = userdata;
	static const char *const what[] = { "reading current", "reading the config", "reading the base config",
					    "reading nodes/" };

	op->call = NULL;
	if (resp->error.code < 0 && (op->stage == STAGE_CONFIG || op->stage == STAGE_BASE) && op->at_revision &&
	    etcd_error_is_compacted(&resp->error))
		return read_again_latest(op);
	if (resp->error.code < 0)
		return fail_etcd(op, resp, what[op->stage]);
	switch (op->stage) {
	case STAGE_CURRENT:
		return got_current(op, resp);
	case STAGE_CONFIG:
		return got_config(op, resp);
	case STAGE_BASE:
		return got_base(op, resp);
	default:
		return got_nodes(op, resp);
	}
}

int agree_read(etcd_client *c, const char *prefix, bool read_nodes, agree_read_cb cb, void *userdata,
	       agree_read_op **out) {
	return agree_read_snapshot(c, prefix, read_nodes, false, cb, userdata, out);
}

int agree_read_snapshot(etcd_client *c, const char *prefix, bool read_nodes, bool current_only, agree_read_cb cb,
			void *userdata, agree_read_op **out) {
	_cleanup_free_ char *key = NULL;
	agree_read_op *op;
	int r;

	if (!c || !prefix || !cb)
		return -EINVAL;
	op = agree_read_op_new(c, prefix, AGREE_READ_SNAPSHOT, userdata);
	key = keys_one_of(prefix, KEYS_CURRENT);
	if (!op || !key) {
		agree_read_op_free(op);
		return -ENOMEM;
	}
	op->cb = cb;
	op->read_nodes = read_nodes;
	op->current_only = current_only;
	op->stage = STAGE_CURRENT;
	r = start_range(op, key, false, 0);
	if (r < 0) {
		agree_read_op_free(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

int agree_read_at(etcd_client *c, const char *prefix, const char *id, size_t id_len, int64_t revision,
		  agree_read_cb cb, void *userdata, agree_read_op **out) {
	_cleanup_free_ char *key = NULL;
	agree_read_op *op;
	int r;

	if (!c || !prefix || !cb || revision <= 0)
		return -EINVAL;
	op = agree_read_op_new(c, prefix, AGREE_READ_SNAPSHOT, userdata);
	if (!op)
		return -ENOMEM;
	op->cb = cb;
	if (id && keys_id_valid(id, id_len) && !memchr(id, 0, id_len)) {
		op->snap.config_id = strndup(id, id_len);
		op->snap.revision = op->snap.current_mod_revision = revision;
		op->at_revision = true;
		r = op->snap.config_id ? start_config(op) : -ENOMEM;
	} else {
		/* Not an id (or deleted): the full read reports it as usual. */
		op->stage = STAGE_CURRENT;
		key = keys_one_of(prefix, KEYS_CURRENT);
		r = key ? start_range(op, key, false, 0) : -ENOMEM;
	}
	if (r < 0) {
		agree_read_op_free(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

int agree_read_config(etcd_client *c, const char *prefix, const char *id, agree_read_cb cb, void *userdata,
		      agree_read_op **out) {
	agree_read_op *op;
	int r;

	if (!c || !prefix || !cb || !id)
		return -EINVAL;
	if (!keys_id_valid(id, strlen(id)))
		return -EINVAL;
	op = agree_read_op_new(c, prefix, AGREE_READ_CONFIG, userdata);
	if (!op)
		return -ENOMEM;
	op->cb = cb;
	op->snap.config_id = strdup(id);
	if (!op->snap.config_id) {
		agree_read_op_free(op);
		return -ENOMEM;
	}
	r = start_config(op);
	if (r < 0) {
		agree_read_op_free(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

/* ---- blocking ------------------------------------------------------------------ */

typedef struct read_sync {
	bool done;
	agree_snapshot *out;
	agree_error *err;
} read_sync;

static void on_read_sync(const agree_snapshot *s, const agree_error *err, void *userdata) {
	read_sync *rs = userdata;

	rs->done = true;
	if (err) {
		*rs->err = *err;
		return;
	}
	/* The op is ours and is freed when this returns: take its snapshot
	 * rather than copy it. */
	agree_snapshot *owned = (agree_snapshot *) s;
	*rs->out = *owned;
	*owned = (agree_snapshot){};
}

static int read_sync_run(etcd_client *c, int r, read_sync *rs) {
	if (r < 0) {
		agree_error_set(rs->err, r, "cannot start the read: %s", strerror(-r));
		return r;
	}
	r = agree_run_until(c, &rs->done);
	if (r < 0) {
		agree_error_set(rs->err, r, "event loop failed: %s", strerror(-r));
		return r;
	}
	return rs->err->code;
}

int agree_read_sync(etcd_client *c, const char *prefix, bool read_nodes, agree_snapshot *out, agree_error *err) {
	agree_error local = {};
	read_sync rs = { .out = out, .err = err ? err : &local };

	*rs.err = (agree_error){};
	*out = (agree_snapshot){};
	return read_sync_run(c, agree_read(c, prefix, read_nodes, on_read_sync, &rs, NULL), &rs);
}

int agree_read_config_sync(etcd_client *c, const char *prefix, const char *id, agree_snapshot *out,
			   agree_error *err) {
	agree_error local = {};
	read_sync rs = { .out = out, .err = err ? err : &local };

	*rs.err = (agree_error){};
	*out = (agree_snapshot){};
	return read_sync_run(c, agree_read_config(c, prefix, id, on_read_sync, &rs, NULL), &rs);
}
