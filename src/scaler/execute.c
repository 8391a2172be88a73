/* execute.c — act, the last step of a scaling cycle: the decision's
 * actions carried out. In this order, so that dying anywhere is safe
 * (docs/scale.md, "The leader loop"): record changes (fenced txns: a
 * stop is recorded stopped, a start launching, before EC2 is asked),
 * TerminateInstances, StopInstances, StartInstances (the warm pool),
 * tags mirrored (best effort), launches one after
 * another (an instance already carrying the launch's ClientToken is
 * adopted instead), a record per launched instance (fenced); only then
 * scale/state, scale/metrics, a decision history record and the pools'
 * load histories (fenced, scale_history_record()). One
 * key=value line per action (cycle_say). Every etcd write is a txn fenced with the leader's token. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cycle.h"
#include "keys.h"
#include "leader.h"
#include "scale-forecast.h"

#define WRITE_BATCH 64          /* puts per txn (etcd's default limit is 128 ops) */
#define TAG_CLUSTER "corral:cluster"
#define TAG_POOL "corral:pool"
#define TAG_STATE "corral:state"

static void fail(cycle *c, int error, const char *why) {
	c->next(c, error, why);
}

/* ids joined with ',' into buf (cut at size). */
static const char *join_ids(char *const *ids, size_t n, char *buf, size_t size) {
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && at < size; i++)
		at += (size_t) snprintf(buf + at, size - at, "%s%s", i ? "," : "", ids[i]);
	return buf;
}

/* ---- fenced writes ---- */

static void write_next(cycle *c);

static void on_written(etcd_client *e, etcd_response *r, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *resp = r;
	cycle *c = userdata;
	char buf[512];

	c->call = NULL;
	if (resp->error.code < 0)
		return fail(c, resp->error.code, etcd_error_format(&resp->error, buf, sizeof buf));
	if (!resp->succeeded)
		return fail(c, -EPERM, "fence refused: no longer the leader");
	if (c->del_done) {
		free(c->del_from);
		free(c->del_to);
		c->del_from = c->del_to = NULL;
		c->del_done = false;
	}
	write_next(c);
}

/* Sends the queued puts in fenced txns, then runs after_write. */
static void write_next(cycle *c) {
	etcd_op ops[WRITE_BATCH];
	etcd_compare fence = leader_fence(c->leader_key, c->token);
	size_t n = 0;
	int r;

	if (c->w_at >= c->n_w) {
		strv_free(c->wkeys);
		strv_free(c->wvals);
		c->wkeys = c->wvals = NULL;
		c->n_w = c->w_at = 0;
		return c->after_write(c);
	}
	/* The history's cap: the records it drops go with the batch. */
	if (c->del_from) {
		ops[n++] = (etcd_op) { .type = ETCD_OP_DELETE, .del = { .key = c->del_from, .range_end = c->del_to } };
		c->del_done = true;
	}
	while (n < WRITE_BATCH && c->w_at < c->n_w) {
		ops[n] = (etcd_op) { .type = ETCD_OP_PUT,
				     .put = { .key = c->wkeys[c->w_at], .value = c->wvals[c->w_at],
					      .value_len = strlen(c->wvals[c->w_at]) } };
		n++;
		c->w_at++;
	}
	etcd_txn_req req = { .compare = &fence, .n_compare = 1, .success = ops, .n_success = n };
	r = etcd_txn(c->etcd, &req, on_written, c, &c->call);
	if (r < 0)
		fail(c, r, "cannot send a write");
}

/* Takes key and text. */
static int queue_text(cycle *c, char *key, char *text) {
	size_t nk = c->n_w, nv = c->n_w;
	int r;

	if (!key || !text) {
		free(key);
		free(text);
		return -ENOMEM;
	}
	r = strv_take(&c->wkeys, &nk, key);
	if (r < 0) {
		free(text);
		return r;
	}
	r = strv_take(&c->wvals, &nv, text);
	if (r < 0)
		return r;
	c->n_w = nv;
	return 0;
}

static int queue_put(cycle *c, char *key, json_t *value) {
	char *text = value ? json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(value);
	return queue_text(c, key, text);
}

static int put_load_history(void *userdata, const char *pool, char *text) {
	cycle *c = userdata;

	return queue_text(c, keys_entry(c->prefix, KEYS_SCALE_LOAD_HISTORY, pool), text);
}

static int queue_host(cycle *c, const scale_host *h) {
	return queue_put(c, keys_entry(c->prefix, KEYS_SCALE_HOSTS, h->id), scale_host_to_json(h));
}

static void flush_then(cycle *c, void (*next)(cycle *c)) {
	c->after_write = next;
	write_next(c);
}

/* ---- state and metrics ---- */


static void cycle_done(cycle *c) {
	c->next(c, 0, NULL);
}

/* A decision that changed something: scale/history/<seq>, and the
 * records SCALE_HISTORY_MAX behind it deleted in the same txn. */
static int queue_history(cycle *c) {
	int64_t seq = c->snap.history_seq + 1;
	char id[24];

	if (!c->changed)
		return 0;
	scale_history_id(seq, id);
	if (queue_put(c, keys_entry(c->prefix, KEYS_SCALE_HISTORY, id), scale_history_to_json(&c->report, seq, c->token)) <
	    0)
		return -ENOMEM;
	if (seq <= SCALE_HISTORY_MAX)
		return 0;
	scale_history_id(seq - SCALE_HISTORY_MAX + 1, id);
	c->del_from = keys_dir_of(c->prefix, KEYS_SCALE_HISTORY);
	c->del_to = keys_entry(c->prefix, KEYS_SCALE_HISTORY, id);
	return c->del_from && c->del_to ? 0 : -ENOMEM;
}

static void write_state(cycle *c) {
	if (c->crash == SCALER_CRASH_BEFORE_STATE)
		return fail(c, -ECANCELED, "crash point: before state");
	for (size_t i = 0; i < c->obs.n_hosts; i++)
		if (c->obs.hosts[i].state < _SCALE_STATE_MAX)
			c->records_by_state[c->obs.hosts[i].state]++;
	c->report = (scale_report) {
		.time = c->now,
		.revision = c->snap.revision,
		.records = &c->snap.records,
		.observed = &c->obs,
		.out = &c->out,
		.launched = (const char *const *) c->launched,
		.n_launched = c->n_launched,
		.errors = (const char *const *) c->errors,
		.n_errors = c->n_errors,
	};
	memcpy(c->report.records_by_state, c->records_by_state, sizeof c->records_by_state);
	/* From here on the report is the scaler's last, even if the write fails. */
	c->reported = true;
	if (queue_put(c, keys_one_of(c->prefix, KEYS_SCALE_STATE), scale_state_to_json(c->out.state, c->out.n_state)) < 0 ||
	    queue_put(c, keys_one_of(c->prefix, KEYS_SCALE_METRICS), scale_report_to_json(&c->report)) < 0 ||
	    queue_history(c) < 0 || scale_history_record(&c->snap.records, &c->out, c->now, put_load_history, c) < 0)
		return fail(c, -ENOMEM, "out of memory");
	flush_then(c, cycle_done);
}

/* ---- launches ---- */

static void launch_next(cycle *c);

static int record_launched(cycle *c, const scale_action *a, const char *id, const char *type, const char *az,
			   time_t launch_time) {
	scale_host h = {
		.id = (char *) id,
		.pool = (char *) a->pool,
		.state = SCALE_LAUNCHING,
		.market = a->market,
		.instance_type = (char *) (type ?: a->instance_type),
		.availability_zone = (char *) (az ?: a->availability_zone),
		.launch_time = launch_time > 0 ? launch_time : c->now,
		.state_since = c->now,
		.cluster_tagged = true,
		.launch_template_version = (char *) a->launch_template_version,
		.replaces = (char *) a->replaces,
		.image_id = (char *) a->image_id,
		.warm = a->warm,
		/* deployments go to reservation-covered hosts first (deployment.h) */
		.reserved = a->market == SCALE_ON_DEMAND && a->reserved,
	};
	int r = strv_take(&c->launched, &c->n_launched, strdup(id));

	return r < 0 ? r : queue_host(c, &h);
}

static void spot_failed(cycle *c, const scale_action *a) {
	scale_spot_error *n = realloc(c->spot_failed, (c->n_spot_failed + 1) * sizeof *n);

	if (!n)
		return;
	c->spot_failed = n;
	n[c->n_spot_failed] = (scale_spot_error) { strdup(a->pool), strdup(a->instance_type) };
	if (n[c->n_spot_failed].pool && n[c->n_spot_failed].instance_type)
		c->n_spot_failed++;
	else {
		free(n[c->n_spot_failed].pool);
		free(n[c->n_spot_failed].instance_type);
	}
}

/* The launch's line: instances (ok) or error (failed). */
static void say_launch(cycle *c, const scale_action *a, int priority, const char *instances, const char *error) {
	char count[16];

	snprintf(count, sizeof count, "%d", a->count);
	const char *const kv[] = { "pool", a->pool, "type", a->instance_type, "market", scale_market_to_string(a->market),
				   "count", count, "zone", a->availability_zone, "subnet", a->subnet, "reason", a->why,
				   "warm", a->warm ? "true" : NULL,
				   "token", a->client_token, "version", a->launch_template_version, "replaces",
				   a->replaces, "instances", instances, "result", error ? "failed" : "ok", "error",
				   error, NULL };
	cycle_say(c, priority, "launch", kv);
}

static void on_run(ec2_client *e, const ec2_reply *r, const ec2xml_run_instances *res, void *userdata) {
	cycle *c = userdata;
	const scale_action *a = &c->out.actions[c->launch_at];

	c->op = NULL;
	c->launch_at++;
	if (r->error < 0) {
		char err[600];
		snprintf(err, sizeof err, "%s%s%s", r->code, r->code[0] ? ": " : "", r->message);
		cycle_note(c, "launch %d x %s %s in %s (token %s): %s", a->count, a->instance_type,
			   scale_market_to_string(a->market), a->subnet, a->client_token, err);
		say_launch(c, a, LOG_WARNING, NULL, err);
		if (r->error_class == EC2_ERROR_CAPACITY && a->market == SCALE_SPOT)
			spot_failed(c, a);
		return launch_next(c);
	}
	if (c->crash == SCALER_CRASH_AFTER_RUN)
		return fail(c, -ECANCELED, "crash point: after RunInstances");
	size_t first = c->n_launched;
	for (size_t i = 0; i < res->n_instances; i++) {
		const ec2_instance *in = &res->instances[i];
		if (record_launched(c, a, in->instance_id, in->instance_type, in->availability_zone, in->launch_time) < 0)
			return fail(c, -ENOMEM, "out of memory");
	}
	char ids[600];
	say_launch(c, a, LOG_INFO, join_ids(c->launched + first, c->n_launched - first, ids, sizeof ids), NULL);
	flush_then(c, launch_next);
}

/* An earlier leader died between RunInstances and the records: the
 * instances carry this very token. Adopt them rather than launch (EC2
 * would return them anyway; moto would launch again). */
static int adopt(cycle *c, const scale_action *a, size_t *adopted) {
	for (size_t i = 0; i < c->n_insts; i++) {
		const scale_instance *in = &c->insts[i];
		if (c->adopted[i] || in->gone || !streq_ptr(in->client_token, a->client_token) ||
		    scale_observed_host(&c->obs, in->id))
			continue;
		if (record_launched(c, a, in->id, in->instance_type, in->availability_zone, in->launch_time) < 0)
			return -ENOMEM;
		const char *const kv[] = { "pool", a->pool, "instance", in->id, "token", a->client_token, "reason",
					   "launched by an earlier leader", NULL };
		cycle_say(c, LOG_INFO, "adopt", kv);
		c->adopted[i] = true;
		(*adopted)++;
	}
	return 0;
}

static void launch_next(cycle *c) {
	const scale_action *a;
	const scale_pool *pool;
	size_t adopted = 0;
	int r;

	while (c->launch_at < c->out.n_actions && c->out.actions[c->launch_at].kind != SCALE_ACTION_LAUNCH)
		c->launch_at++;
	if (c->launch_at >= c->out.n_actions)
		return write_state(c);
	a = &c->out.actions[c->launch_at];
	if (adopt(c, a, &adopted) < 0)
		return fail(c, -ENOMEM, "out of memory");
	if (adopted > 0) {
		c->launch_at++;
		return flush_then(c, launch_next);
	}

	pool = scale_policy_find(&c->snap.policy, a->pool);
	_cleanup_free_ char *name = NULL;
	if (asprintf(&name, "%s-%s", c->cluster, a->pool) < 0)
		return fail(c, -ENOMEM, "out of memory");
	const ec2_kv tags[] = {
		{ TAG_CLUSTER, c->cluster },
		{ TAG_POOL, a->pool },
		{ TAG_STATE, "launching" },
		{ "Name", name },
	};
	const char *lt = a->launch_template ?: (pool ? pool->launch_template : NULL);
	bool by_id = lt && strncmp(lt, "lt-", 3) == 0;
	ec2_launch l = {
		.launch_template_id = by_id ? lt : NULL,
		.launch_template_name = by_id ? NULL : lt,
		.instance_type = a->instance_type,
		.subnet_id = a->subnet,
		.count = (unsigned) a->count,
		.tags = tags,
		.n_tags = ELEMENTSOF(tags),
		.spot = a->market == SCALE_SPOT,
		.client_token = a->client_token,
		.launch_template_version = a->launch_template_version,
	};
	r = ec2_run_instances(c->ec2, &l, on_run, c, &c->op);
	if (r < 0) {
		cycle_note(c, "launch %s: cannot send: %s", a->client_token, strerror(-r));
		say_launch(c, a, LOG_WARNING, NULL, strerror(-r));
		c->launch_at++;
		return launch_next(c);
	}
}

/* ---- tags (best effort) and terminations ---- */

static void tag_next(cycle *c);

static void on_tagged(ec2_client *e, const ec2_reply *r, const ec2xml_ack *res, void *userdata) {
	cycle *c = userdata;

	c->op = NULL;
	if (r->error < 0) {
		char err[600];
		snprintf(err, sizeof err, "%s%s%s", r->code, r->code[0] ? ": " : "", r->message);
		cycle_note(c, "tag %s: %s", c->tags[c->tag_at - 1].id, err);
		const char *const kv[] = { "instance", c->tags[c->tag_at - 1].id, "state",
					   scale_state_to_string(c->tags[c->tag_at - 1].to), "result", "failed", "error",
					   err, NULL };
		cycle_say(c, LOG_WARNING, "tag", kv);
	}
	tag_next(c);
}

static void tag_next(cycle *c) {
	while (c->tag_at < c->n_tags) {
		tag_change *t = &c->tags[c->tag_at++];
		const char *ids[] = { t->id };
		const ec2_kv kv[] = { { TAG_STATE, scale_state_to_string(t->to) } };
		if (ec2_create_tags(c->ec2, ids, 1, kv, 1, on_tagged, c, &c->op) >= 0)
			return;
	}
	c->launch_at = 0;
	launch_next(c);
}

/* TerminateInstances, StopInstances, StartInstances in turn: each
 * success was said with its action; a failure is said here, at warning. */
typedef int (*batch_fn)(ec2_client *e, const char *const *ids, size_t n, ec2_terminate_cb cb, void *userdata,
			ec2_op **out);
static const struct {
	const char *verb;
	batch_fn call;
} batches[] = {
	{ "terminate", ec2_terminate_instances },
	{ "stop", ec2_stop_instances },
	{ "start", ec2_start_instances },
};

static char **batch_ids(cycle *c, unsigned k, size_t *n) {
	char **const ids[] = { c->terminate, c->stop, c->start };
	const size_t ns[] = { c->n_terminate, c->n_stop, c->n_start };

	*n = ns[k];
	return ids[k];
}

static void batch_failed(cycle *c, const char *err) {
	char ids[600];
	size_t n;
	char **v = batch_ids(c, c->batch_at, &n);

	cycle_note(c, "%s: %s", batches[c->batch_at].verb, err);
	const char *const kv[] = { "instances", join_ids(v, n, ids, sizeof ids), "result", "failed", "error", err, NULL };
	cycle_say(c, LOG_WARNING, batches[c->batch_at].verb, kv);
}

static void batch_next(cycle *c);

static void on_batch(ec2_client *e, const ec2_reply *r, const ec2_terminate_result *res, void *userdata) {
	cycle *c = userdata;

	c->op = NULL;
	if (r->error < 0) {
		char err[600];
		snprintf(err, sizeof err, "%s%s%s", r->code, r->code[0] ? ": " : "", r->message);
		batch_failed(c, err);
	}
	c->batch_at++;
	batch_next(c);
}

static void batch_next(cycle *c) {
	for (; c->batch_at < ELEMENTSOF(batches); c->batch_at++) {
		size_t n;
		char **ids = batch_ids(c, c->batch_at, &n);
		if (n == 0)
			continue;
		int r = batches[c->batch_at].call(c->ec2, (const char *const *) ids, n, on_batch, c, &c->op);
		if (r >= 0)
			return;
		char err[128];
		snprintf(err, sizeof err, "cannot send: %s", strerror(-r));
		batch_failed(c, err);
	}
	tag_next(c);
}

/* ---- the host actions applied to the records ---- */

static int add_tag(cycle *c, const char *id, scale_state to) {
	tag_change *n = realloc(c->tags, (c->n_tags + 1) * sizeof *n);

	if (!n)
		return -ENOMEM;
	c->tags = n;
	n[c->n_tags].id = strdup(id);
	if (!n[c->n_tags].id)
		return -ENOMEM;
	n[c->n_tags++].to = to;
	return 0;
}

static int set_state(cycle *c, scale_host *h, scale_state to) {
	h->state = to;
	h->state_since = c->now;
	c->obs.dirty[h - c->obs.hosts] = true;
	return add_tag(c, h->id, to);
}

static const scale_instance *find_instance(cycle *c, const char *id) {
	for (size_t i = 0; i < c->n_insts; i++)
		if (streq(c->insts[i].id, id))
			return &c->insts[i];
	return NULL;
}

static int apply_one(cycle *c, const scale_action *a, scale_host *h) {
	const scale_instance *in;
	int r;

	switch (a->kind) {
	case SCALE_ACTION_TRANSITION:
		return set_state(c, h, a->to);
	case SCALE_ACTION_DRAIN:
		return set_state(c, h, SCALE_DRAINING);
	case SCALE_ACTION_UNDRAIN:
		return set_state(c, h, SCALE_READY);
	case SCALE_ACTION_TERMINATE:
		/* Belt and braces: the engine never picks these, and only
		 * instances EC2 lists under the cluster's tag are sent (a
		 * missing one is gone already). */
		if (h->hold || !h->cluster_tagged)
			return 0;
		r = set_state(c, h, SCALE_TERMINATING);
		in = find_instance(c, h->id);
		if (r >= 0 && in && !in->gone)
			r = strv_take(&c->terminate, &c->n_terminate, strdup(h->id));
		return r;
	case SCALE_ACTION_STOP:
	case SCALE_ACTION_START:
		/* Recorded first (stopped: not capacity; launching: capacity
		 * arriving), then asked of EC2: a leader dying in between
		 * leaves a record the consistency rules put right. */
		if (!h->cluster_tagged)
			return 0;
		h->warm = false;
		r = set_state(c, h, a->kind == SCALE_ACTION_STOP ? SCALE_STOPPED : SCALE_LAUNCHING);
		in = find_instance(c, h->id);
		if (r >= 0 && in && !in->gone) {
			if (a->kind == SCALE_ACTION_STOP)
				r = strv_take(&c->stop, &c->n_stop, strdup(h->id));
			else
				r = strv_take(&c->start, &c->n_start, strdup(h->id));
		}
		return r;
	default:
		return 0;
	}
}

/* Orphans first (observe recorded them terminating), then the actions. */
static int apply_actions(cycle *c) {
	int r;

	for (size_t i = 0; i < c->obs.n_terminate; i++) {
		r = strv_take(&c->terminate, &c->n_terminate, strdup(c->obs.terminate[i]));
		if (r >= 0)
			r = add_tag(c, c->obs.terminate[i], SCALE_TERMINATING);
		if (r < 0)
			return r;
		const char *const kv[] = { "instance", c->obs.terminate[i], "cluster", c->cluster, "reason", "orphan",
					   "detail", "tagged for the cluster, no record", NULL };
		cycle_say(c, LOG_INFO, "terminate", kv);
	}
	for (size_t i = 0; i < c->out.n_actions; i++) {
		const scale_action *a = &c->out.actions[i];
		scale_host *h;

		if (a->kind == SCALE_ACTION_LAUNCH || !a->id)
			continue;
		h = scale_observed_host(&c->obs, a->id);
		if (!h)
			continue;
		r = apply_one(c, a, h);
		if (r < 0)
			return r;
		const char *const kv[] = { "instance", a->id, "node", h->node_id, "pool", a->pool, "from",
					   scale_state_to_string(a->from), "to", scale_state_to_string(h->state), "reason",
					   a->why, NULL };
		cycle_say(c, LOG_INFO,
			  a->kind == SCALE_ACTION_TRANSITION ? "mark" : scale_action_kind_to_string(a->kind), kv);
	}
	return 0;
}

/* The records observe found without their instance (now terminated):
 * a line each, before the decision's own actions. */
static void say_gone(cycle *c) {
	for (size_t i = 0; i < c->obs.n_hosts; i++) {
		const scale_host *h = &c->obs.hosts[i];
		if (!c->obs.dirty[i] || h->state != SCALE_TERMINATED || h->state_since != c->now)
			continue;
		const scale_instance *in = find_instance(c, h->id);
		const char *const kv[] = { "instance", h->id, "node", h->node_id, "pool", h->pool, "to", "terminated",
					   "reason", in ? "terminated in EC2" : "not in EC2", NULL };
		cycle_say(c, LOG_INFO, "mark", kv);
	}
}

void execute_start(cycle *c) {
	say_gone(c);
	if (apply_actions(c) < 0)
		return fail(c, -ENOMEM, "out of memory");
	for (size_t i = 0; i < c->obs.n_hosts; i++)
		if (c->obs.dirty[i] && queue_host(c, &c->obs.hosts[i]) < 0)
			return fail(c, -ENOMEM, "out of memory");
	c->batch_at = 0;
	flush_then(c, batch_next);
}
