/* snapshot.c — the etcd half of the lifecycle's observe, shared by the
 * leader's loop (loop.c, asynchronously) and corralctl deployment
 * (blocking): one txn of ranges over deployments/, deployment_reports/,
 * nodes/ and scale/hosts/, and the keys deployment_policy, scale/policy,
 * maintenance and leader, so every record is read at one revision, sorted
 * into deployment_records (deployment.h). Nothing is interpreted here:
 * deployment_observe() does that. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "lifecycle.h"

enum {
	PART_DEPLOYMENTS, PART_REPORTS, PART_NODES, PART_HOSTS, /* folders */
	PART_POLICY, PART_SCALE_POLICY, PART_MAINTENANCE, PART_LEADER, _PART_MAX
};

static const keys_dir part_dirs[] = {
	[PART_DEPLOYMENTS] = KEYS_DEPLOYMENTS, [PART_REPORTS] = KEYS_DEPLOYMENT_REPORTS,
	[PART_NODES] = KEYS_NODES,             [PART_HOSTS] = KEYS_SCALE_HOSTS,
};

static const keys_one part_ones[] = {
	[PART_POLICY] = KEYS_DEPLOYMENT_POLICY, [PART_SCALE_POLICY] = KEYS_SCALE_POLICY,
	[PART_MAINTENANCE] = KEYS_MAINTENANCE,  [PART_LEADER] = KEYS_LEADER,
};

int lifecycle_snapshot_request(lifecycle_snapshot_req *req, const char *prefix) {
	_Static_assert(_PART_MAX <= ELEMENTSOF(req->keys), "room for every part");
	*req = (lifecycle_snapshot_req) {};
	for (size_t i = 0; i < _PART_MAX; i++) {
		bool dir = i < PART_POLICY;
		req->keys[i] = dir ? keys_dir_of(prefix, part_dirs[i]) : keys_one_of(prefix, part_ones[i]);
		if (!req->keys[i])
			return -ENOMEM;
		req->ops[i] = (etcd_op) { .type = ETCD_OP_RANGE, .range = { .key = req->keys[i], .prefix = dir } };
	}
	req->txn = (etcd_txn_req) { .success = req->ops, .n_success = _PART_MAX };
	return 0;
}

void lifecycle_snapshot_request_done(lifecycle_snapshot_req *req) {
	for (size_t i = 0; i < ELEMENTSOF(req->keys); i++)
		free(req->keys[i]);
	*req = (lifecycle_snapshot_req) {};
}

static const etcd_response *part(const etcd_response *resp, size_t i) {
	return i < resp->n_responses ? &resp->responses[i] : NULL;
}

/* One folder's records (id = the key's last segment), appended to s->kvs. */
static void sort_in(lifecycle_snapshot *s, const char *prefix, size_t p, const deployment_kv **out, size_t *n) {
	const etcd_response *r = part(s->response, p);

	*out = s->kvs + s->n_kvs;
	*n = 0;
	for (size_t i = 0; r && i < r->n_kvs; i++) {
		const etcd_kv *kv = &r->kvs[i];
		size_t len;
		const char *id = kv->key ? keys_id_in(prefix, part_dirs[p], kv->key, kv->key_len, &len) : NULL;
		if (!id)
			continue;       /* a record one level deeper: not ours */
		/* the id ends the key: NUL-terminated in the response */
		s->kvs[s->n_kvs++] = (deployment_kv) { id, kv->value, kv->value ? kv->value_len : 0, kv->mod_revision };
		(*n)++;
	}
}

static void single(const etcd_response *r, const char **text, size_t *len) {
	if (r && r->n_kvs > 0 && r->kvs[0].value) {
		*text = r->kvs[0].value;
		*len = r->kvs[0].value_len;
	}
}

int lifecycle_snapshot_take(lifecycle_snapshot *s, const char *prefix, etcd_response *resp, time_t now) {
	deployment_records *rec = &s->records;
	size_t total = 0;

	*s = (lifecycle_snapshot) { .response = resp, .revision = resp->header.revision };
	for (size_t i = 0; i < resp->n_responses; i++)
		total += resp->responses[i].n_kvs;
	s->kvs = calloc(total + 1, sizeof *s->kvs);
	if (!s->kvs)
		return -ENOMEM;
	*rec = (deployment_records) { .now = now };
	sort_in(s, prefix, PART_DEPLOYMENTS, &rec->deployments, &rec->n_deployments);
	sort_in(s, prefix, PART_REPORTS, &rec->reports, &rec->n_reports);
	sort_in(s, prefix, PART_NODES, &rec->nodes, &rec->n_nodes);
	sort_in(s, prefix, PART_HOSTS, &rec->hosts, &rec->n_hosts);
	single(part(resp, PART_POLICY), &rec->policy, &rec->policy_len);
	single(part(resp, PART_SCALE_POLICY), &rec->scale_policy, &rec->scale_policy_len);
	rec->maintenance = part(resp, PART_MAINTENANCE) && part(resp, PART_MAINTENANCE)->n_kvs > 0;
	const etcd_response *l = part(resp, PART_LEADER);
	s->leader_create_revision = l && l->n_kvs > 0 ? l->kvs[0].create_revision : 0;
	return 0;
}

void lifecycle_snapshot_done(lifecycle_snapshot *s) {
	etcd_response_free(s->response);
	free(s->kvs);
	*s = (lifecycle_snapshot) {};
}

int lifecycle_snapshot_read(etcd_client *etcd, const char *prefix, lifecycle_snapshot *out, char *err,
			    size_t err_size) {
	_cleanup_(lifecycle_snapshot_request_done) lifecycle_snapshot_req req = {};
	etcd_response *resp = NULL;
	int r;

	*out = (lifecycle_snapshot) {};
	r = lifecycle_snapshot_request(&req, prefix);
	if (r < 0) {
		snprintf(err, err_size, "%s", strerror(-r));
		return r;
	}
	r = etcd_txn_wait(etcd, &req.txn, &resp, err, err_size);
	if (r < 0)
		return r;
	return lifecycle_snapshot_take(out, prefix, resp, time(NULL));
}
