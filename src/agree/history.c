/* history.c — the config folders as history: which snapshots exist
 * (keys only), `current`, and the ids the nodes' status records and the
 * rollout's upgrade/ records name, all at one revision (agree_history). folders.c makes the records of them;
 * collect.c deletes what its plan says. */
#include "agree-internal.h"

enum { STAGE_CURRENT, STAGE_CONFIGS, STAGE_STATUS, STAGE_UPGRADE };

#define HISTORY_PAGE_SIZE 2000

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
	_cleanup_free_ char *key = keys_dir_of(op->prefix, KEYS_CONFIGS);
	int r;

	if (!key)
		return fail_code(op, -ENOMEM, "listing configs/");
	op->snap.revision = resp->header.revision;
	if (resp->n_kvs > 0) {
		const etcd_kv *kv = &resp->kvs[0];
		if (kv->value && keys_id_valid(kv->value, kv->value_len)) {
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
	_cleanup_free_ char *key = keys_dir_of(op->prefix, KEYS_CONFIGS), *status = keys_dir_of(op->prefix, KEYS_STATUS);
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

static void got_status(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *key = keys_dir_of(op->prefix, KEYS_UPGRADE);
	int r;

	if (!key || agree_folders_in_use(&op->folders, resp->kvs, resp->n_kvs) < 0)
		return fail_code(op, -ENOMEM, "listing status/");
	op->stage = STAGE_UPGRADE;
	r = start_range(op, key, false, op->snap.revision);
	if (r < 0)
		fail_code(op, r, "listing upgrade/");
}

/* A staged rollout's snapshots (candidate, its base, orders' targets) are
 * in use too; a finished plan's history keeps none. */
static void got_upgrade(agree_read_op *op, const etcd_response *resp) {
	_cleanup_free_ char *history = keys_dir_of(op->prefix, KEYS_UPGRADE_HISTORY);

	if (!history || agree_folders_in_use_upgrade(&op->folders, resp->kvs, resp->n_kvs, history) < 0)
		return fail_code(op, -ENOMEM, "listing upgrade/");
	agree_read_deliver(op, NULL);
}

static void on_reply(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_read_op *op = userdata;
	static const char *const what[] = { "reading current", "listing configs/", "listing status/",
					    "listing upgrade/" };
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
	case STAGE_STATUS:
		return got_status(op, resp);
	default:
		return got_upgrade(op, resp);
	}
}

int agree_history(etcd_client *c, const char *prefix, agree_folders_cb cb, void *userdata, agree_read_op **out) {
	_cleanup_free_ char *key = NULL;
	agree_read_op *op;
	int r;

	if (!c || !prefix || !cb)
		return -EINVAL;
	op = agree_read_op_new(c, prefix, AGREE_READ_HISTORY, userdata);
	key = keys_one_of(prefix, KEYS_CURRENT);
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

/* ---- blocking ------------------------------------------------------------------ */

typedef struct history_sync {
	bool done;
	agree_folders *out;
	agree_error *err;
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
