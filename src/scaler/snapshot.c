/* snapshot.c — the etcd half of observe's I/O, shared by the leader
 * (gather.c, asynchronously) and `corralctl autoscale -n` (blocking): one
 * txn of ranges over scale/ (scale/load_history/ included), load/,
 * nodes/, holds/, maintenance, the rollout's upgrade/state,
 * upgrade/nodes/ and upgrade/progress/, deployments/ and deployment_policy, so
 * every record is read at one revision, then sorted into the folders of
 * scale_records (scale-observe.h). Nothing is interpreted here beyond the
 * policy's parse, which decides what EC2 is asked. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "scale-report.h"
#include "scaler.h"

/* The parts of the one txn, in its order. */
enum {
	PART_SCALE, PART_LOAD, PART_NODES, PART_HOLDS, PART_MAINTENANCE,
	PART_UPGRADE_STATE, PART_UPGRADE_NODES, PART_UPGRADE_PROGRESS, PART_UPGRADE_PLAN, PART_UPGRADE_STABLE,
	PART_STATUS, PART_HISTORY, PART_DEPLOYMENTS, PART_DEPLOYMENT_POLICY, _PART_MAX
};

int scaler_snapshot_request(scaler_snapshot_req *req, const char *prefix) {
	static const keys_dir dirs[] = { [PART_SCALE] = KEYS_SCALE, [PART_LOAD] = KEYS_LOAD,
					 [PART_NODES] = KEYS_NODES, [PART_HOLDS] = KEYS_HOLDS,
					 [PART_UPGRADE_NODES] = KEYS_UPGRADE_NODES,
					 [PART_UPGRADE_PROGRESS] = KEYS_UPGRADE_PROGRESS,
					 [PART_STATUS] = KEYS_STATUS, [PART_HISTORY] = KEYS_SCALE_HISTORY,
					 [PART_DEPLOYMENTS] = KEYS_DEPLOYMENTS };

	_Static_assert(_PART_MAX <= ELEMENTSOF(req->keys), "room for every part");
	*req = (scaler_snapshot_req) {};
	for (size_t i = 0; i < _PART_MAX; i++) {
		static const keys_one ones[] = { [PART_MAINTENANCE] = KEYS_MAINTENANCE,
						 [PART_UPGRADE_STATE] = KEYS_UPGRADE_STATE,
						 [PART_UPGRADE_PLAN] = KEYS_UPGRADE_PLAN,
						 [PART_UPGRADE_STABLE] = KEYS_UPGRADE_STABLE,
						 [PART_DEPLOYMENT_POLICY] = KEYS_DEPLOYMENT_POLICY };
		bool dir = i != PART_MAINTENANCE && i != PART_UPGRADE_STATE && i != PART_UPGRADE_PLAN &&
		           i != PART_UPGRADE_STABLE && i != PART_DEPLOYMENT_POLICY;
		req->keys[i] = dir ? keys_dir_of(prefix, dirs[i]) : keys_one_of(prefix, ones[i]);
		if (!req->keys[i])
			return -ENOMEM;
		req->ops[i] = (etcd_op) { .type = ETCD_OP_RANGE, .range = { .key = req->keys[i], .prefix = dir } };
	}
	/* scale/ without the decision history (up to SCALE_HISTORY_MAX
	 * records no decision needs): from just past scale/history/ to the
	 * end of scale/, nothing sorts before it. Of the history, the newest
	 * key only: the next record's seq. */
	free(req->keys[PART_SCALE]);
	req->keys[PART_SCALE] = keys_dir_end(prefix, KEYS_SCALE_HISTORY);
	req->scale_end = keys_dir_end(prefix, KEYS_SCALE);
	if (!req->keys[PART_SCALE] || !req->scale_end)
		return -ENOMEM;
	req->ops[PART_SCALE].range = (etcd_range_req) { .key = req->keys[PART_SCALE], .range_end = req->scale_end };
	req->ops[PART_HISTORY].range.limit = 1;
	req->ops[PART_HISTORY].range.keys_only = true;
	req->ops[PART_HISTORY].range.sort_order = ETCD_SORT_DESCEND;
	req->ops[PART_HISTORY].range.sort_target = ETCD_SORT_KEY;
	req->txn = (etcd_txn_req) { .success = req->ops, .n_success = _PART_MAX };
	return 0;
}

void scaler_snapshot_request_done(scaler_snapshot_req *req) {
	for (size_t i = 0; i < ELEMENTSOF(req->keys); i++)
		free(req->keys[i]);
	free(req->scale_end);
	*req = (scaler_snapshot_req) {};
}

static const etcd_response *part(const etcd_response *resp, size_t i) {
	return i < resp->n_responses ? &resp->responses[i] : NULL;
}

/* The kvs of one folder, appended to s->kvs. */
static void sort_in(scaler_snapshot *s, const char *prefix, size_t p, keys_dir d, const scale_kv **out, size_t *n) {
	const etcd_response *r = part(s->response, p);

	*out = s->kvs + s->n_kvs;
	*n = 0;
	for (size_t i = 0; r && i < r->n_kvs; i++) {
		const etcd_kv *kv = &r->kvs[i];
		size_t len;
		const char *id = keys_id_in(prefix, d, kv->key, kv->key_len, &len);
		if (!id)
			continue;
		s->kvs[s->n_kvs++] = (scale_kv) { id, kv->value, kv->value_len };
		(*n)++;
	}
}

/* scale/policy, scale/state and scale/stop out of the scale/ range. */
static int read_scale_keys(scaler_snapshot *s, const char *prefix, scale_error *err) {
	const etcd_response *scale = part(s->response, PART_SCALE);

	for (size_t i = 0; scale && i < scale->n_kvs; i++) {
		const etcd_kv *kv = &scale->kvs[i];
		size_t len;
		const char *id = keys_id_in(prefix, KEYS_SCALE, kv->key, kv->key_len, &len);
		if (!id)
			continue;
		if (streq(id, "stop"))
			s->records.stop = true; /* present = stopped, whatever it holds */
		else if (!kv->value)
			continue;
		else if (streq(id, "policy")) {
			int r = scale_observe_policy(kv->value, kv->value_len, &s->policy, err);
			if (r < 0)
				return r;
			s->have_policy = true;
			s->records.policy = &s->policy;
		} else if (streq(id, "state")) {
			s->records.state = kv->value;
			s->records.state_len = kv->value_len;
		} else if (streq(id, "status")) {
			s->status = kv->value;
			s->status_len = kv->value_len;
		}
	}
	return 0;
}

int scaler_snapshot_take(scaler_snapshot *s, const char *prefix, etcd_response *resp, scale_error *err) {
	scale_records *rec = &s->records;
	size_t total = 0;
	int r;

	*err = (scale_error) {};
	s->response = resp;
	s->revision = resp->header.revision;
	r = read_scale_keys(s, prefix, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < resp->n_responses; i++)
		total += resp->responses[i].n_kvs;
	s->kvs = calloc(total + 1, sizeof *s->kvs);
	if (!s->kvs)
		return -ENOMEM;
	sort_in(s, prefix, PART_SCALE, KEYS_SCALE_HOSTS, &rec->hosts, &rec->n_hosts);
	sort_in(s, prefix, PART_SCALE, KEYS_SCALE_QUEUE, &rec->queues, &rec->n_queues);
	sort_in(s, prefix, PART_SCALE, KEYS_SCALE_LOAD_HISTORY, &rec->load_history, &rec->n_load_history);
	sort_in(s, prefix, PART_LOAD, KEYS_LOAD, &rec->load, &rec->n_load);
	sort_in(s, prefix, PART_NODES, KEYS_NODES, &rec->nodes, &rec->n_nodes);
	sort_in(s, prefix, PART_HOLDS, KEYS_HOLDS, &rec->holds, &rec->n_holds);
	sort_in(s, prefix, PART_STATUS, KEYS_STATUS, &rec->status, &rec->n_status);
	sort_in(s, prefix, PART_UPGRADE_NODES, KEYS_UPGRADE_NODES, &rec->upgrade_orders, &rec->n_upgrade_orders);
	sort_in(s, prefix, PART_UPGRADE_PROGRESS, KEYS_UPGRADE_PROGRESS, &rec->upgrade_progress,
		&rec->n_upgrade_progress);
	sort_in(s, prefix, PART_DEPLOYMENTS, KEYS_DEPLOYMENTS, &rec->deployments, &rec->n_deployments);
	const etcd_response *h = part(resp, PART_HISTORY);
	size_t hl;
	const char *hid = h && h->n_kvs > 0 ? keys_id_in(prefix, KEYS_SCALE_HISTORY, h->kvs[0].key, h->kvs[0].key_len, &hl)
					    : NULL;
	if (!hid || scale_history_seq(hid, hl, &s->history_seq) < 0)
		s->history_seq = 0;
	rec->maintenance = part(resp, PART_MAINTENANCE) && part(resp, PART_MAINTENANCE)->n_kvs > 0;
	const size_t singles[] = { PART_UPGRADE_STATE, PART_UPGRADE_PLAN, PART_UPGRADE_STABLE, PART_DEPLOYMENT_POLICY };
	const char **text[] = { &rec->upgrade_state, &rec->upgrade_plan, &rec->upgrade_stable,
				&rec->deployment_policy };
	size_t *len[] = { &rec->upgrade_state_len, &rec->upgrade_plan_len, &rec->upgrade_stable_len,
			  &rec->deployment_policy_len };
	for (size_t i = 0; i < ELEMENTSOF(singles); i++) {
		const etcd_response *st = part(resp, singles[i]);
		if (st && st->n_kvs > 0 && st->kvs[0].value) {
			*text[i] = st->kvs[0].value;
			*len[i] = st->kvs[0].value_len;
		}
	}
	return 0;
}

void scaler_snapshot_done(scaler_snapshot *s) {
	etcd_response_free(s->response);
	free(s->kvs);
	if (s->have_policy)
		scale_policy_done(&s->policy);
	*s = (scaler_snapshot) {};
}

int scaler_snapshot_read(etcd_client *etcd, const char *prefix, scaler_snapshot *out, scale_error *err) {
	_cleanup_(scaler_snapshot_request_done) scaler_snapshot_req req = {};
	etcd_response *resp = NULL;
	etcd_sync sync = {};
	int r;

	*out = (scaler_snapshot) {};
	*err = (scale_error) {};
	r = scaler_snapshot_request(&req, prefix);
	if (r >= 0)
		r = etcd_txn(etcd, &req.txn, etcd_sync_cb, &sync, NULL);
	if (r < 0)
		return r;
	r = etcd_wait(etcd, &sync, &resp);
	if (r < 0) {
		etcd_error_format(&resp->error, err->message, sizeof err->message);
		etcd_response_free(resp);
		return r;
	}
	return scaler_snapshot_take(out, prefix, resp, err);
}
