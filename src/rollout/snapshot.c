/* snapshot.c — the etcd half of the rollout's observe, shared by the
 * leader's loop (loop.c, asynchronously) and corralctl upgrade plan|status
 * (blocking): one txn of ranges over upgrade/, nodes/, status/, holds/,
 * scale/hosts/ and `current`, so every record is read at one revision,
 * sorted into the folders of rollout_records (rollout.h). Nothing is interpreted here:
 * rollout_observe() does that. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "rollout-loop.h"

/* The parts of the one txn, in its order. */
enum { PART_UPGRADE, PART_NODES, PART_STATUS, PART_HOLDS, PART_HOSTS, _PART_MAX, PART_CURRENT = _PART_MAX };

static const keys_dir part_dirs[_PART_MAX] = {
	[PART_UPGRADE] = KEYS_UPGRADE, [PART_NODES] = KEYS_NODES, [PART_STATUS] = KEYS_STATUS,
	[PART_HOLDS] = KEYS_HOLDS,     [PART_HOSTS] = KEYS_SCALE_HOSTS,
};

int rollout_snapshot_request(rollout_snapshot_req *req, const char *prefix) {
	*req = (rollout_snapshot_req) {};
	for (size_t i = 0; i < _PART_MAX; i++) {
		req->keys[i] = keys_dir_of(prefix, part_dirs[i]);
		if (!req->keys[i])
			return -ENOMEM;
		req->ops[i] = (etcd_op) { .type = ETCD_OP_RANGE, .range = { .key = req->keys[i], .prefix = true } };
	}
	/* `current` last: a staged config rollout's rebase and promotion
	 * compare it, read at the same revision as everything else */
	req->keys[PART_CURRENT] = keys_one_of(prefix, KEYS_CURRENT);
	if (!req->keys[PART_CURRENT])
		return -ENOMEM;
	req->ops[PART_CURRENT] = (etcd_op) { .type = ETCD_OP_RANGE, .range = { .key = req->keys[PART_CURRENT] } };
	req->txn = (etcd_txn_req) { .success = req->ops, .n_success = _PART_MAX + 1 };
	return 0;
}

void rollout_snapshot_request_done(rollout_snapshot_req *req) {
	for (size_t i = 0; i < ELEMENTSOF(req->keys); i++)
		free(req->keys[i]);
	*req = (rollout_snapshot_req) {};
}

/* One folder's kvs, appended to s->kvs. */
static void sort_in(rollout_snapshot *s, size_t p, const rollout_kv **out, size_t *n) {
	const etcd_response *r = p < s->response->n_responses ? &s->response->responses[p] : NULL;

	*out = s->kvs + s->n_kvs;
	*n = 0;
	for (size_t i = 0; r && i < r->n_kvs; i++) {
		const etcd_kv *kv = &r->kvs[i];
		if (!kv->key)
			continue;
		s->kvs[s->n_kvs++] = (rollout_kv) { kv->key, kv->value, kv->value ? kv->value_len : 0 };
		(*n)++;
	}
}

int rollout_snapshot_take(rollout_snapshot *s, const char *prefix, etcd_response *resp, time_t now) {
	rollout_records *rec = &s->records;
	size_t total = 0, n_current = 0;

	*s = (rollout_snapshot) { .response = resp, .revision = resp->header.revision };
	for (size_t i = 0; i < resp->n_responses; i++)
		total += resp->responses[i].n_kvs;
	s->kvs = calloc(total + 1, sizeof *s->kvs);
	if (!s->kvs)
		return -ENOMEM;
	*rec = (rollout_records) { .prefix = prefix, .now = now };
	sort_in(s, PART_UPGRADE, &rec->upgrade, &rec->n_upgrade);
	sort_in(s, PART_NODES, &rec->nodes, &rec->n_nodes);
	sort_in(s, PART_STATUS, &rec->status, &rec->n_status);
	sort_in(s, PART_HOLDS, &rec->holds, &rec->n_holds);
	sort_in(s, PART_HOSTS, &rec->hosts, &rec->n_hosts);
	sort_in(s, PART_CURRENT, &rec->current, &n_current);
	if (n_current == 0)
		rec->current = NULL;
	else
		rec->current_mod_revision = resp->responses[PART_CURRENT].kvs[0].mod_revision;
	return 0;
}

void rollout_snapshot_done(rollout_snapshot *s) {
	etcd_response_free(s->response);
	free(s->kvs);
	*s = (rollout_snapshot) {};
}

int rollout_snapshot_read(etcd_client *etcd, const char *prefix, rollout_snapshot *out, char *err,
			  size_t err_size) {
	_cleanup_(rollout_snapshot_request_done) rollout_snapshot_req req = {};
	etcd_response *resp = NULL;
	int r;

	*out = (rollout_snapshot) {};
	r = rollout_snapshot_request(&req, prefix);
	if (r < 0) {
		snprintf(err, err_size, "%s", strerror(-r));
		return r;
	}
	r = etcd_txn_wait(etcd, &req.txn, &resp, err, err_size);
	if (r < 0)
		return r;
	return rollout_snapshot_take(out, prefix, resp, time(NULL));
}
