/* scaler.c — the leader's autoscaling loop: etcd + EC2 in, scale_decide(),
 * EC2 + fenced etcd writes out. One cycle at a time, as a chain of
 * callbacks on the shared sd-event loop; everything a cycle gathers lives
 * in a `cycle` freed when it ends, so stopping is: cancel the one call in
 * flight, free the cycle. docs/scale.md ("The leader loop") has the order
 * of writes and why it is safe to die anywhere in it.
 *
 * jansson: json_object_get borrows, *_set_new steals; every json_t this
 * file keeps is its own reference. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "leader.h"
#include "scale.h"
#include "scaler.h"

#define WRITE_BATCH 64          /* puts per txn (etcd's default limit is 128 ops) */
#define TAG_CLUSTER "corral:cluster"
#define TAG_POOL "corral:pool"
#define TAG_STATE "corral:state"

typedef struct inst {
	char *id, *type, *az, *pool, *client_token;
	bool spot, hold, autoscale_off;
	bool gone;              /* shutting-down or terminated */
	bool recorded;          /* a host record names it */
	time_t launch_time;
} inst;

typedef struct tag_change {
	char *id;
	scale_state to;
} tag_change;

typedef struct cycle cycle;
typedef void (*step_fn)(scaler *s);

struct cycle {
	time_t now;
	int64_t revision;
	etcd_response *snap;
	json_t *metrics_extra;          /* inputs, consistency, errors */
	json_t *errors;

	scale_policy policy;
	bool have_policy;
	scale_host *hosts;
	size_t n_hosts;
	bool *dirty;
	inst *insts;
	size_t n_insts;
	scale_price *prices;
	size_t n_prices;
	scale_reservation *res;
	size_t n_res;
	scale_queue *queues;
	size_t n_queues;
	scale_pool_state *state;
	size_t n_state;
	scale_spot_error *spot_errors;  /* the ones this decision uses (owned) */
	size_t n_spot_errors;
	bool maintenance, stop;

	scale_output out;
	bool decided;

	char **terminate;               /* ids (strv) */
	size_t n_terminate;
	tag_change *tags;
	size_t n_tags, tag_at;
	size_t launch_at;               /* next action to look at for launches */
	unsigned launch_index;
	json_t *launched;               /* ids */
	int orphans, gone, in_grace;

	/* pending fenced puts */
	char **wkeys, **wvals;
	size_t n_w, w_at;
	step_fn after_write;
};

struct scaler {
	etcd_client *etcd;
	ec2_client *ec2;
	sd_event *event;
	char *prefix, *cluster, *leader_key;
	int64_t token;
	uint64_t interval_usec;
	int64_t grace;
	bool dry_run;
	scaler_crash crash;
	scaler_callbacks cb;
	void *userdata;

	sd_event_source *timer;
	etcd_watch *watches[5];
	etcd_watch *dead_watches[5];    /* stopped by etcd, freed outside their callback */
	sd_event_source *rewatch;
	etcd_call *call;
	ec2_op *op;
	cycle *cyc;
	bool running, pending, stopped;
	unsigned cycles;
	unsigned cycles_failed;
	json_t *last_metrics;           /* the last scale/metrics document written */
	/* spot capacity errors seen since the last decision (owned) */
	scale_spot_error *spot_errors;
	size_t n_spot_errors;
	/* dry run */
	char *plan;
	bool plan_done;
	int plan_error;
};

/* ---- small helpers ---- */

static void spot_errors_free(scale_spot_error *e, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(e[i].pool);
		free(e[i].instance_type);
	}
	free(e);
}

static void insts_free(inst *v, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].type);
		free(v[i].az);
		free(v[i].pool);
		free(v[i].client_token);
	}
	free(v);
}

static cycle *cycle_free(cycle *c) {
	if (!c)
		return NULL;
	scale_output_done(&c->out);
	etcd_response_free(c->snap);
	json_decref(c->metrics_extra);
	json_decref(c->errors);
	json_decref(c->launched);
	if (c->have_policy)
		scale_policy_done(&c->policy);
	for (size_t i = 0; i < c->n_hosts; i++)
		scale_host_done(&c->hosts[i]);
	free(c->hosts);
	free(c->dirty);
	insts_free(c->insts, c->n_insts);
	for (size_t i = 0; i < c->n_prices; i++) {
		free(c->prices[i].instance_type);
		free(c->prices[i].availability_zone);
	}
	free(c->prices);
	for (size_t i = 0; i < c->n_res; i++) {
		free(c->res[i].instance_type);
		free(c->res[i].availability_zone);
	}
	free(c->res);
	for (size_t i = 0; i < c->n_queues; i++)
		free(c->queues[i].pool);
	free(c->queues);
	for (size_t i = 0; i < c->n_state; i++)
		free(c->state[i].pool);
	free(c->state);
	spot_errors_free(c->spot_errors, c->n_spot_errors);
	strv_free(c->terminate);
	for (size_t i = 0; i < c->n_tags; i++)
		free(c->tags[i].id);
	free(c->tags);
	strv_free(c->wkeys);
	strv_free(c->wvals);
	free(c);
	return NULL;
}

static void note_error(scaler *s, const char *fmt, ...) _printf_(2, 3);
static void note_error(scaler *s, const char *fmt, ...) {
	char buf[768];
	va_list ap;

	if (!s->cyc)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	json_array_append_new(s->cyc->errors, json_string(buf));
}

static int strv_push(char ***v, size_t *n, char *take) {
	char **nv;

	if (!take)
		return -ENOMEM;
	nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv) {
		free(take);
		return -ENOMEM;
	}
	nv[(*n)++] = take;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

static char *strdup_or_null(const char *s) {
	return s ? strdup(s) : NULL;
}

static bool truthy(const char *v) {
	return v && (streq(v, "true") || streq(v, "1") || streq(v, "yes"));
}

/* The key's tail after <prefix>/<sub> (NULL when it does not start so). */
static const char *key_tail(scaler *s, const etcd_kv *kv, const char *sub) {
	size_t lp = strlen(s->prefix), ls = strlen(sub);

	if (kv->key_len < lp + 1 + ls || strncmp(kv->key, s->prefix, lp) != 0 || kv->key[lp] != '/' ||
	    strncmp(kv->key + lp + 1, sub, ls) != 0)
		return NULL;
	return kv->key + lp + 1 + ls;
}

/* ---- the end of a cycle ---- */

static void schedule(scaler *s, uint64_t usec);

static void stop_all(scaler *s) {
	s->stopped = true;
	s->timer = sd_event_source_disable_unref(s->timer);
	s->rewatch = sd_event_source_disable_unref(s->rewatch);
	for (size_t i = 0; i < ELEMENTSOF(s->watches); i++)
		s->watches[i] = etcd_watch_free(s->watches[i]);
	if (s->call) {
		etcd_call_cancel(s->call);
		s->call = NULL;
	}
	if (s->op) {
		ec2_op_cancel(s->op);
		s->op = NULL;
	}
}

static void finish(scaler *s, int error, const char *why) {
	_cleanup_free_ char *text = NULL;

	if (s->cyc && s->cyc->decided) {
		text = scale_plan_format(&s->cyc->out);
		if (text && json_array_size(s->cyc->errors) > 0) {
			_cleanup_free_ char *errs = json_dumps(s->cyc->errors, JSON_COMPACT);
			char *t = NULL;
			if (errs && asprintf(&t, "%s\nerrors: %s\n", text, errs) >= 0) {
				free(text);
				text = t;
			}
		}
	}
	if (!text && why)
		text = strdup(why);
	s->cyc = cycle_free(s->cyc);
	s->running = false;
	s->cycles++;
	if (error < 0)
		s->cycles_failed++;
	if (s->dry_run) {
		s->plan_done = true;
		s->plan_error = error;
		free(s->plan);
		s->plan = TAKE_PTR(text);
		stop_all(s);
		if (s->cb.cycle)
			s->cb.cycle(s, error, s->plan, s->userdata);
		return;
	}
	if (error == -EPERM || error == -ECANCELED)
		stop_all(s);
	else
		schedule(s, s->pending ? 0 : s->interval_usec);
	if (error == -EPERM && s->cb.fenced)
		s->cb.fenced(s, s->userdata);
	if (s->cb.cycle)
		s->cb.cycle(s, error, text, s->userdata);
}

/* ---- fenced writes ---- */

static void write_next(scaler *s);

static void on_written(etcd_client *c, etcd_response *r, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *resp = r;
	scaler *s = userdata;
	char buf[512];

	s->call = NULL;
	if (resp->error.code < 0)
		return finish(s, resp->error.code, etcd_error_format(&resp->error, buf, sizeof buf));
	if (!resp->succeeded)
		return finish(s, -EPERM, "fence refused: no longer the leader");
	write_next(s);
}

/* Sends the queued puts in fenced txns, then runs after_write. */
static void write_next(scaler *s) {
	cycle *c = s->cyc;
	etcd_op ops[WRITE_BATCH];
	etcd_compare fence = leader_fence(s->leader_key, s->token);
	size_t n = 0;
	int r;

	if (c->w_at >= c->n_w) {
		strv_free(c->wkeys);
		strv_free(c->wvals);
		c->wkeys = c->wvals = NULL;
		c->n_w = c->w_at = 0;
		return c->after_write(s);
	}
	while (n < WRITE_BATCH && c->w_at < c->n_w) {
		ops[n] = (etcd_op) { .type = ETCD_OP_PUT,
				     .put = { .key = c->wkeys[c->w_at], .value = c->wvals[c->w_at],
					      .value_len = strlen(c->wvals[c->w_at]) } };
		n++;
		c->w_at++;
	}
	etcd_txn_req req = { .compare = &fence, .n_compare = 1, .success = ops, .n_success = n };
	r = etcd_txn(s->etcd, &req, on_written, s, &s->call);
	if (r < 0)
		finish(s, r, "cannot send a write");
}

static int queue_put(scaler *s, char *key, json_t *value) {
	cycle *c = s->cyc;
	size_t nk = c->n_w, nv = c->n_w;
	char *text;
	int r;

	if (!key || !value) {
		free(key);
		json_decref(value);
		return -ENOMEM;
	}
	text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(value);
	r = strv_push(&c->wkeys, &nk, key);
	if (r < 0) {
		free(text);
		return r;
	}
	r = strv_push(&c->wvals, &nv, text);
	if (r < 0)
		return r;
	c->n_w = nv;
	return 0;
}

static int queue_host(scaler *s, const scale_host *h) {
	char *key = NULL;

	if (asprintf(&key, "%s/scale/hosts/%s", s->prefix, h->id) < 0)
		return -ENOMEM;
	return queue_put(s, key, scale_host_to_json(h));
}

static void flush_then(scaler *s, step_fn next) {
	s->cyc->after_write = next;
	write_next(s);
}

/* ---- state and metrics ---- */

static json_t *state_to_json(const scale_output *o) {
	json_t *j = json_object();

	for (size_t i = 0; j && i < o->n_state; i++) {
		const scale_pool_state *p = &o->state[i];
		json_object_set_new(j, p->pool,
				    json_pack("{s:I, s:I, s:I}", "last_scale_in", (json_int_t) p->last_scale_in,
					      "surplus_since", (json_int_t) p->surplus_since, "launch_seq",
					      (json_int_t) p->launch_seq));
	}
	return j;
}

static int state_from_json(const char *text, size_t len, cycle *c) {
	json_auto_t *j = json_loadb(text, len, 0, NULL);
	const char *name;
	json_t *v;

	if (!json_is_object(j))
		return -EINVAL;
	c->state = calloc(json_object_size(j) + 1, sizeof *c->state);
	if (!c->state)
		return -ENOMEM;
	json_object_foreach(j, name, v) {
		scale_pool_state *p = &c->state[c->n_state];
		if (!json_is_object(v))
			continue;
		p->pool = strdup(name);
		if (!p->pool)
			return -ENOMEM;
		p->last_scale_in = (time_t) json_integer_value(json_object_get(v, "last_scale_in"));
		p->surplus_since = (time_t) json_integer_value(json_object_get(v, "surplus_since"));
		p->launch_seq = (uint64_t) json_integer_value(json_object_get(v, "launch_seq"));
		c->n_state++;
	}
	return 0;
}

static void cycle_done(scaler *s) {
	finish(s, 0, "done");
}

static json_t *host_counts(const cycle *c) {
	int n[_SCALE_STATE_MAX] = {};
	json_t *j = json_object();

	for (size_t i = 0; i < c->n_hosts; i++)
		if (c->hosts[i].state < _SCALE_STATE_MAX)
			n[c->hosts[i].state]++;
	for (int i = 0; j && i < _SCALE_STATE_MAX; i++)
		json_object_set_new(j, scale_state_to_string(i), json_integer(n[i]));
	return j;
}

static void write_state(scaler *s) {
	cycle *c = s->cyc;
	char *k1 = NULL, *k2 = NULL;
	json_t *m;

	if (s->crash == SCALER_CRASH_BEFORE_STATE)
		return finish(s, -ECANCELED, "crash point: before state");
	m = json_pack("{s:I, s:I, s:o, s:o, s:o, s:O}", "time", (json_int_t) c->now, "revision",
		      (json_int_t) c->revision, "pools", scale_metrics_to_json(&c->out), "actions",
		      scale_actions_to_json(&c->out), "launched", json_incref(c->launched), "errors", c->errors);
	if (m) {
		json_object_update(m, c->metrics_extra);
		json_object_set_new(json_object_get(m, "consistency"), "hosts", host_counts(c));
	}
	if (asprintf(&k1, "%s/scale/state", s->prefix) < 0)
		k1 = NULL;
	if (asprintf(&k2, "%s/scale/metrics", s->prefix) < 0)
		k2 = NULL;
	json_decref(s->last_metrics);
	s->last_metrics = json_incref(m);
	if (queue_put(s, k1, state_to_json(&c->out)) < 0 || queue_put(s, k2, m) < 0)
		return finish(s, -ENOMEM, "out of memory");
	flush_then(s, cycle_done);
}

/* ---- launches ---- */

static void launch_next(scaler *s);

static int record_launched(scaler *s, const scale_action *a, const char *id, const char *type, const char *az,
			   time_t launch_time) {
	scale_host h = {
		.id = (char *) id,
		.pool = (char *) a->pool,
		.state = SCALE_LAUNCHING,
		.market = a->market,
		.instance_type = (char *) (type ?: a->instance_type),
		.availability_zone = (char *) (az ?: a->availability_zone),
		.launch_time = launch_time > 0 ? launch_time : s->cyc->now,
		.state_since = s->cyc->now,
		.cluster_tagged = true,
	};
	json_array_append_new(s->cyc->launched, json_string(id));
	return queue_host(s, &h);
}

static void on_run(ec2_client *e, const ec2_reply *r, const ec2xml_run_instances *res, void *userdata) {
	scaler *s = userdata;
	cycle *c = s->cyc;
	const scale_action *a = &c->out.actions[c->launch_at];

	s->op = NULL;
	c->launch_at++;
	if (r->error < 0) {
		note_error(s, "launch %d x %s %s in %s (token %s): %s %s", a->count, a->instance_type,
			   scale_market_to_string(a->market), a->subnet, a->client_token, r->code, r->message);
		if (r->error_class == EC2_ERROR_CAPACITY && a->market == SCALE_SPOT) {
			scale_spot_error *n = realloc(s->spot_errors, (s->n_spot_errors + 1) * sizeof *n);
			if (n) {
				s->spot_errors = n;
				n[s->n_spot_errors] = (scale_spot_error) { strdup(a->pool), strdup(a->instance_type) };
				if (n[s->n_spot_errors].pool && n[s->n_spot_errors].instance_type)
					s->n_spot_errors++;
				else {
					free(n[s->n_spot_errors].pool);
					free(n[s->n_spot_errors].instance_type);
				}
			}
		}
		return launch_next(s);
	}
	if (s->crash == SCALER_CRASH_AFTER_RUN)
		return finish(s, -ECANCELED, "crash point: after RunInstances");
	for (size_t i = 0; i < res->n_instances; i++) {
		const ec2_instance *in = &res->instances[i];
		if (record_launched(s, a, in->instance_id, in->instance_type, in->availability_zone, in->launch_time) < 0)
			return finish(s, -ENOMEM, "out of memory");
	}
	flush_then(s, launch_next);
}

static void launch_next(scaler *s) {
	cycle *c = s->cyc;
	const scale_action *a;
	const scale_pool *pool;
	size_t adopted = 0;
	int r;

	while (c->launch_at < c->out.n_actions && c->out.actions[c->launch_at].kind != SCALE_ACTION_LAUNCH)
		c->launch_at++;
	if (c->launch_at >= c->out.n_actions)
		return write_state(s);
	a = &c->out.actions[c->launch_at];

	/* An earlier leader died between RunInstances and the records: the
	 * instances carry this very token. Adopt them rather than launch
	 * (EC2 would return them anyway; moto would launch again). */
	for (size_t i = 0; i < c->n_insts; i++) {
		inst *in = &c->insts[i];
		if (in->recorded || in->gone || !streq_ptr(in->client_token, a->client_token))
			continue;
		if (record_launched(s, a, in->id, in->type, in->az, in->launch_time) < 0)
			return finish(s, -ENOMEM, "out of memory");
		in->recorded = true;
		adopted++;
	}
	if (adopted > 0) {
		c->launch_at++;
		return flush_then(s, launch_next);
	}

	pool = scale_policy_find(&c->policy, a->pool);
	_cleanup_free_ char *name = NULL;
	if (asprintf(&name, "%s-%s", s->cluster, a->pool) < 0)
		return finish(s, -ENOMEM, "out of memory");
	const ec2_kv tags[] = {
		{ TAG_CLUSTER, s->cluster },
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
	};
	r = ec2_run_instances(s->ec2, &l, on_run, s, &s->op);
	if (r < 0) {
		note_error(s, "launch %s: cannot send: %s", a->client_token, strerror(-r));
		c->launch_at++;
		return launch_next(s);
	}
}

/* ---- tags (best effort) and terminations ---- */

static void tag_next(scaler *s);

static void on_tagged(ec2_client *e, const ec2_reply *r, const ec2xml_ack *res, void *userdata) {
	scaler *s = userdata;

	s->op = NULL;
	if (r->error < 0)
		note_error(s, "tag %s: %s %s", s->cyc->tags[s->cyc->tag_at - 1].id, r->code, r->message);
	tag_next(s);
}

static void tag_next(scaler *s) {
	cycle *c = s->cyc;

	while (c->tag_at < c->n_tags) {
		tag_change *t = &c->tags[c->tag_at++];
		const char *ids[] = { t->id };
		const ec2_kv kv[] = { { TAG_STATE, scale_state_to_string(t->to) } };
		if (ec2_create_tags(s->ec2, ids, 1, kv, 1, on_tagged, s, &s->op) >= 0)
			return;
	}
	c->launch_at = 0;
	launch_next(s);
}

static void on_terminated(ec2_client *e, const ec2_reply *r, const ec2_terminate_result *res, void *userdata) {
	scaler *s = userdata;

	s->op = NULL;
	if (r->error < 0)
		note_error(s, "terminate: %s %s", r->code, r->message);
	tag_next(s);
}

static void terminate_then_tag(scaler *s) {
	cycle *c = s->cyc;
	int r;

	if (c->n_terminate > 0) {
		r = ec2_terminate_instances(s->ec2, (const char *const *) c->terminate, c->n_terminate, on_terminated, s,
					    &s->op);
		if (r >= 0)
			return;
		note_error(s, "terminate: cannot send: %s", strerror(-r));
	}
	tag_next(s);
}

/* ---- decide ---- */

static inst *find_inst(cycle *c, const char *id) {
	for (size_t i = 0; i < c->n_insts; i++)
		if (streq(c->insts[i].id, id))
			return &c->insts[i];
	return NULL;
}

static scale_host *find_host(cycle *c, const char *id) {
	for (size_t i = 0; i < c->n_hosts; i++)
		if (streq(c->hosts[i].id, id))
			return &c->hosts[i];
	return NULL;
}

static const etcd_response *snap_part(cycle *c, size_t i) {
	return i < c->snap->n_responses ? &c->snap->responses[i] : NULL;
}

/* nodes/<id> whose record names this instance: the node id (borrowed
 * from the parsed record, copied by the caller). */
static json_t *node_for(scaler *s, cycle *c, const char *instance_id, const char **node_id) {
	const etcd_response *nodes = snap_part(c, 2);

	for (size_t i = 0; nodes && i < nodes->n_kvs; i++) {
		const char *tail = key_tail(s, &nodes->kvs[i], "nodes/");
		json_t *j;
		if (!tail || !nodes->kvs[i].value)
			continue;
		j = json_loadb(nodes->kvs[i].value, nodes->kvs[i].value_len, 0, NULL);
		if (j && streq_ptr(json_string_value(json_object_get(j, "instance_id")), instance_id)) {
			*node_id = tail;
			return j;
		}
		json_decref(j);
	}
	return NULL;
}

static json_t *load_for(scaler *s, cycle *c, const char *node_id) {
	const etcd_response *load = snap_part(c, 1);

	for (size_t i = 0; load && i < load->n_kvs; i++) {
		const char *tail = key_tail(s, &load->kvs[i], "load/");
		if (tail && streq(tail, node_id) && load->kvs[i].value)
			return json_loadb(load->kvs[i].value, load->kvs[i].value_len, 0, NULL);
	}
	return NULL;
}

static bool held_in_etcd(scaler *s, cycle *c, const char *id) {
	const etcd_response *holds = snap_part(c, 3);

	for (size_t i = 0; holds && i < holds->n_kvs; i++) {
		const char *tail = key_tail(s, &holds->kvs[i], "holds/");
		if (tail && streq(tail, id))
			return true;
	}
	return false;
}

static int add_host(cycle *c, scale_host *take) {
	scale_host *n = realloc(c->hosts, (c->n_hosts + 1) * sizeof *n);
	bool *d;

	if (!n)
		return -ENOMEM;
	c->hosts = n;
	d = realloc(c->dirty, (c->n_hosts + 1) * sizeof *d);
	if (!d)
		return -ENOMEM;
	c->dirty = d;
	c->hosts[c->n_hosts] = *take;
	c->dirty[c->n_hosts] = false;
	c->n_hosts++;
	*take = (scale_host) {};
	return 0;
}

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
	c->dirty[h - c->hosts] = true;
	return add_tag(c, h->id, to);
}

/* Host records + what EC2 and the nodes say -> engine hosts; the
 * consistency rules on the way. */
static int build_hosts(scaler *s, cycle *c) {
	const etcd_response *scale = snap_part(c, 0);
	int r;

	for (size_t i = 0; scale && i < scale->n_kvs; i++) {
		const etcd_kv *kv = &scale->kvs[i];
		const char *tail = key_tail(s, kv, "scale/hosts/");
		json_auto_t *j = NULL;
		scale_host h = {};
		scale_error err = {};

		if (!tail || !kv->value)
			continue;
		j = json_loadb(kv->value, kv->value_len, 0, NULL);
		if (!j || scale_host_from_json(j, &h, &err) < 0) {
			note_error(s, "record %s: %s", tail, j ? err.message : "not JSON");
			continue;
		}
		r = add_host(c, &h);
		if (r < 0) {
			scale_host_done(&h);
			return r;
		}
	}

	for (size_t i = 0; i < c->n_hosts; i++) {
		scale_host *h = &c->hosts[i];
		inst *in = find_inst(c, h->id);
		const char *node_id = NULL;
		json_auto_t *node = NULL, *load = NULL;
		bool was_winding_down;

		if (in)
			in->recorded = true;
		if (h->state == SCALE_TERMINATED)
			continue;
		/* Consistency: the instance is gone (or never showed up within
		 * the grace) -> terminated. */
		if ((in && in->gone) || (!in && (h->state == SCALE_TERMINATING || c->now - h->launch_time >= s->grace))) {
			c->dirty[i] = true;
			h->state = SCALE_TERMINATED;
			h->state_since = c->now;
			c->gone++;
			continue;
		}
		if (in) {
			h->cluster_tagged = true;
			h->hold = h->hold || in->hold;
			h->autoscale_off = in->autoscale_off;
		}
		h->hold = h->hold || held_in_etcd(s, c, h->id);
		was_winding_down = h->winding_down;
		h->winding_down = false;
		free(h->node_id);
		h->node_id = NULL;
		h->jobs = 0;
		node = node_for(s, c, h->id, &node_id);
		if (node) {
			h->node_id = strdup(node_id);
			if (!h->node_id)
				return -ENOMEM;
			/* The node record lives on the node's lease: present = alive. */
			h->last_seen = c->now;
			load = load_for(s, c, node_id);
			if (load) {
				h->jobs = (int) json_integer_value(json_object_get(load, "jobs"));
				h->job_capacity = (int) json_integer_value(json_object_get(load, "capacity"));
				h->memory_used = json_number_value(json_object_get(load, "memory"));
				/* The agent's notice (docs/scale.md): kept once seen. */
				if (json_is_object(json_object_get(load, "interruption")))
					h->interruption = true;
			}
			/* A node with a wind-down hook says when it is done. */
			h->winding_down = h->state == SCALE_DRAINING &&
					  json_is_true(json_object_get(node, "wind_down")) &&
					  !json_is_true(json_object_get(load, "ready_to_stop"));
		}
		/* Shown in the record (corralctl status) as it changes. */
		if (h->winding_down != was_winding_down)
			c->dirty[i] = true;
	}

	/* Tagged instances nobody recorded. */
	for (size_t i = 0; i < c->n_insts; i++) {
		inst *in = &c->insts[i];
		scale_host h = {};

		if (in->recorded || in->gone)
			continue;
		if (c->now - in->launch_time < s->grace) {
			c->in_grace++;
			continue;
		}
		if (in->hold || held_in_etcd(s, c, in->id)) {
			note_error(s, "instance %s: tagged for the cluster, no record, held: left alone", in->id);
			continue;
		}
		h = (scale_host) {
			.id = strdup(in->id),
			.pool = strdup(in->pool ?: "unknown"),
			.state = SCALE_TERMINATING,
			.market = in->spot ? SCALE_SPOT : SCALE_ON_DEMAND,
			.instance_type = strdup_or_null(in->type),
			.availability_zone = strdup_or_null(in->az),
			.launch_time = in->launch_time,
			.state_since = c->now,
			.cluster_tagged = true,
		};
		if (!h.id || !h.pool) {
			scale_host_done(&h);
			return -ENOMEM;
		}
		r = add_host(c, &h);
		if (r < 0) {
			scale_host_done(&h);
			return r;
		}
		c->dirty[c->n_hosts - 1] = true;
		in->recorded = true;
		c->orphans++;
		r = strv_push(&c->terminate, &c->n_terminate, strdup(in->id));
		if (r < 0)
			return r;
		r = add_tag(c, in->id, SCALE_TERMINATING);
		if (r < 0)
			return r;
	}
	return 0;
}

static int build_queues(scaler *s, cycle *c) {
	const etcd_response *scale = snap_part(c, 0);

	c->queues = calloc((scale ? scale->n_kvs : 0) + 1, sizeof *c->queues);
	if (!c->queues)
		return -ENOMEM;
	for (size_t i = 0; scale && i < scale->n_kvs; i++) {
		const char *tail = key_tail(s, &scale->kvs[i], "scale/queue/");
		if (!tail || !scale->kvs[i].value)
			continue;
		c->queues[c->n_queues].pool = strdup(tail);
		if (!c->queues[c->n_queues].pool)
			return -ENOMEM;
		c->queues[c->n_queues++].length = atoi(scale->kvs[i].value);
	}
	return 0;
}

static json_t *inputs_json(const cycle *c, const char *res_error) {
	json_t *q = json_object(), *p = json_array(), *rv = json_array(), *se = json_array();

	for (size_t i = 0; i < c->n_queues; i++)
		json_object_set_new(q, c->queues[i].pool, json_integer(c->queues[i].length));
	for (size_t i = 0; i < c->n_prices; i++)
		json_array_append_new(p, json_pack("{s:s, s:s?, s:f}", "instance_type", c->prices[i].instance_type,
						   "availability_zone", c->prices[i].availability_zone, "price",
						   c->prices[i].price));
	for (size_t i = 0; i < c->n_res; i++)
		json_array_append_new(rv, json_pack("{s:s, s:s?, s:i}", "instance_type", c->res[i].instance_type,
						    "availability_zone", c->res[i].availability_zone, "count",
						    c->res[i].count));
	for (size_t i = 0; i < c->n_spot_errors; i++)
		json_array_append_new(se, json_pack("{s:s, s:s}", "pool", c->spot_errors[i].pool, "instance_type",
						    c->spot_errors[i].instance_type));
	return json_pack("{s:b, s:b, s:i, s:i, s:o, s:o, s:o, s:s?, s:o}", "maintenance", c->maintenance, "stop",
			 c->stop, "hosts", (int) c->n_hosts, "instances", (int) c->n_insts, "queues", q, "prices", p,
			 "reservations", rv, "reservations_error", res_error, "spot_errors", se);
}

static void decide(scaler *s, const char *res_error) {
	cycle *c = s->cyc;
	int r;

	r = build_hosts(s, c);
	if (r >= 0)
		r = build_queues(s, c);
	if (r < 0)
		return finish(s, r, "out of memory");

	/* The spot errors since the last decision are this decision's. */
	c->spot_errors = TAKE_PTR(s->spot_errors);
	c->n_spot_errors = s->n_spot_errors;
	s->n_spot_errors = 0;

	scale_input in = {
		.cluster = s->cluster,
		.policy = &c->policy,
		.hosts = c->hosts,
		.n_hosts = c->n_hosts,
		.queues = c->queues,
		.n_queues = c->n_queues,
		.prices = c->prices,
		.n_prices = c->n_prices,
		.reservations = c->res,
		.n_reservations = c->n_res,
		.spot_errors = c->spot_errors,
		.n_spot_errors = c->n_spot_errors,
		.state = c->state,
		.n_state = c->n_state,
		.maintenance = c->maintenance,
		.stop = c->stop,
		.now = c->now,
	};
	r = scale_decide(&in, &c->out);
	if (r < 0)
		return finish(s, r, "decision failed");
	c->decided = true;
	c->metrics_extra = json_pack("{s:o, s:{s:i, s:i, s:i}}", "inputs", inputs_json(c, res_error), "consistency",
				     "orphans_terminated", c->orphans, "records_gone", c->gone, "unrecorded_in_grace",
				     c->in_grace);
	if (!c->metrics_extra)
		return finish(s, -ENOMEM, "out of memory");
	if (s->dry_run)
		return finish(s, 0, NULL);

	/* Apply the host actions to the records (the launches come later). */
	for (size_t i = 0; i < c->out.n_actions; i++) {
		const scale_action *a = &c->out.actions[i];
		scale_host *h;
		inst *ins;

		if (a->kind == SCALE_ACTION_LAUNCH || !a->id)
			continue;
		h = find_host(c, a->id);
		if (!h)
			continue;
		switch (a->kind) {
		case SCALE_ACTION_TRANSITION:
			r = set_state(c, h, a->to);
			break;
		case SCALE_ACTION_DRAIN:
			r = set_state(c, h, SCALE_DRAINING);
			break;
		case SCALE_ACTION_UNDRAIN:
			r = set_state(c, h, SCALE_READY);
			break;
		case SCALE_ACTION_TERMINATE:
			/* Belt and braces: the engine never picks these, and
			 * only instances EC2 lists under the cluster's tag are
			 * sent (a missing one is gone already). */
			if (h->hold || !h->cluster_tagged)
				continue;
			r = set_state(c, h, SCALE_TERMINATING);
			ins = find_inst(c, h->id);
			if (r >= 0 && ins && !ins->gone)
				r = strv_push(&c->terminate, &c->n_terminate, strdup(h->id));
			break;
		default:
			break;
		}
		if (r < 0)
			return finish(s, r, "out of memory");
	}
	for (size_t i = 0; i < c->n_hosts; i++)
		if (c->dirty[i] && queue_host(s, &c->hosts[i]) < 0)
			return finish(s, -ENOMEM, "out of memory");
	flush_then(s, terminate_then_tag);
}

/* ---- gathering ---- */

static void on_reserved(ec2_client *e, const ec2_reply *r, const ec2xml_describe_reserved_instances *res,
			void *userdata) {
	scaler *s = userdata;
	cycle *c = s->cyc;
	char msg[600];

	s->op = NULL;
	if (r->error < 0) {
		snprintf(msg, sizeof msg, "unavailable: %s %s", r->code, r->message);
		return decide(s, msg);
	}
	c->res = calloc(res->n_items + 1, sizeof *c->res);
	if (!c->res)
		return finish(s, -ENOMEM, "out of memory");
	for (size_t i = 0; i < res->n_items; i++) {
		const ec2_reserved_instances *ri = &res->items[i];
		bool regional = !ri->availability_zone || (ri->scope && streq(ri->scope, "Region"));
		if (!ri->instance_type || ri->instance_count <= 0 || !streq_ptr(ri->state, "active"))
			continue;
		c->res[c->n_res] = (scale_reservation) {
			.instance_type = strdup(ri->instance_type),
			.availability_zone = regional ? NULL : strdup(ri->availability_zone),
			.count = ri->instance_count,
		};
		if (!c->res[c->n_res].instance_type)
			return finish(s, -ENOMEM, "out of memory");
		c->n_res++;
	}
	decide(s, NULL);
}

static void get_reserved(scaler *s) {
	static const char *const active[] = { "active" };
	const ec2_filter f[] = { { "state", active, 1 } };
	bool wanted = false;
	int r;

	/* Not asked when no pool may use a reservation: one call less per
	 * cycle, and no retries against an account that cannot answer. */
	for (size_t i = 0; i < s->cyc->policy.n_pools; i++)
		wanted = wanted || s->cyc->policy.pools[i].market_reserved;
	if (!wanted)
		return decide(s, NULL);
	r = ec2_describe_reserved_instances(s->ec2, f, 1, on_reserved, s, &s->op);
	if (r < 0)
		decide(s, "unavailable: cannot send the request");
}

static void on_prices(ec2_client *e, const ec2_reply *r, const ec2xml_spot_price_history *res, void *userdata) {
	scaler *s = userdata;
	cycle *c = s->cyc;

	s->op = NULL;
	if (r->error < 0) {
		note_error(s, "spot prices: %s %s (no spot this time)", r->code, r->message);
		return get_reserved(s);
	}
	c->prices = calloc(res->n_items + 1, sizeof *c->prices);
	if (!c->prices)
		return finish(s, -ENOMEM, "out of memory");
	/* The newest price per (type, AZ). */
	for (size_t i = 0; i < res->n_items; i++) {
		const ec2_spot_price *p = &res->items[i];
		size_t j;
		if (!p->instance_type || !p->availability_zone)
			continue;
		for (j = 0; j < c->n_prices; j++)
			if (streq(c->prices[j].instance_type, p->instance_type) &&
			    streq(c->prices[j].availability_zone, p->availability_zone))
				break;
		if (j < c->n_prices) {
			/* keep the newest: items come newest first from EC2, but do not rely on it */
			continue;
		}
		c->prices[j] = (scale_price) { strdup(p->instance_type), strdup(p->availability_zone), p->price };
		if (!c->prices[j].instance_type || !c->prices[j].availability_zone)
			return finish(s, -ENOMEM, "out of memory");
		c->n_prices++;
	}
	get_reserved(s);
}

static void get_prices(scaler *s) {
	cycle *c = s->cyc;
	_cleanup_free_ const char **types = NULL;
	size_t n = 0, cap = 0;
	int r;

	for (size_t i = 0; i < c->policy.n_pools; i++) {
		const scale_pool *p = &c->policy.pools[i];
		if (!p->market_spot)
			continue;
		cap += p->n_instance_types;
		const char **nt = realloc(types, (cap + 1) * sizeof *nt);
		if (!nt)
			return finish(s, -ENOMEM, "out of memory");
		types = nt;
		for (size_t k = 0; k < p->n_instance_types; k++) {
			bool dup = false;
			for (size_t m = 0; m < n; m++)
				dup = dup || streq(types[m], p->instance_types[k]);
			if (!dup)
				types[n++] = p->instance_types[k];
		}
	}
	if (n == 0)
		return get_reserved(s);
	r = ec2_describe_spot_price_history(s->ec2, types, n, "Linux/UNIX", 0, on_prices, s, &s->op);
	if (r < 0)
		get_reserved(s);
}

static void on_described(ec2_client *e, const ec2_reply *r, const ec2xml_describe_instances *res, void *userdata) {
	scaler *s = userdata;
	cycle *c = s->cyc;
	size_t n = 0;

	s->op = NULL;
	if (r->error < 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "DescribeInstances: %s %s", r->code, r->message);
		/* Without the instances nothing can be decided safely. */
		return finish(s, r->error, msg);
	}
	for (size_t i = 0; i < res->n_reservations; i++)
		n += res->reservations[i].n_instances;
	c->insts = calloc(n + 1, sizeof *c->insts);
	if (!c->insts)
		return finish(s, -ENOMEM, "out of memory");
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t k = 0; k < res->reservations[i].n_instances; k++) {
			const ec2_instance *x = &res->reservations[i].instances[k];
			inst *in = &c->insts[c->n_insts];

			/* The filter asked for our tag; check it anyway: only
			 * the cluster's instances are ever touched. */
			if (!streq_ptr(ec2_instance_tag(x, TAG_CLUSTER), s->cluster))
				continue;
			in->id = strdup(x->instance_id);
			in->type = strdup_or_null(x->instance_type);
			in->az = strdup_or_null(x->availability_zone);
			in->pool = strdup_or_null(ec2_instance_tag(x, TAG_POOL));
			in->client_token = strdup_or_null(x->client_token && *x->client_token ? x->client_token : NULL);
			in->spot = streq_ptr(x->lifecycle, "spot");
			in->hold = truthy(ec2_instance_tag(x, "hold")) || truthy(ec2_instance_tag(x, "corral:hold"));
			in->autoscale_off = streq_ptr(ec2_instance_tag(x, "autoscale"), "off");
			in->gone = x->state.code == 32 || x->state.code == 48;
			in->launch_time = x->launch_time;
			c->n_insts++;
			if (!in->id)
				return finish(s, -ENOMEM, "out of memory");
		}
	get_prices(s);
}

static void describe(scaler *s) {
	const char *const values[] = { s->cluster };
	const ec2_filter f[] = { { "tag:" TAG_CLUSTER, values, 1 } };
	int r;

	r = ec2_describe_instances(s->ec2, f, 1, 0, on_described, s, &s->op);
	if (r < 0)
		finish(s, r, "cannot send DescribeInstances");
}

static void on_read(etcd_client *e, etcd_response *resp, void *userdata) {
	scaler *s = userdata;
	cycle *c = s->cyc;
	const etcd_response *scale;
	char buf[512];
	bool have_state = false;
	int r;

	s->call = NULL;
	c->snap = resp;
	if (resp->error.code < 0)
		return finish(s, resp->error.code, etcd_error_format(&resp->error, buf, sizeof buf));
	c->revision = resp->header.revision;
	scale = snap_part(c, 0);
	for (size_t i = 0; scale && i < scale->n_kvs; i++) {
		const etcd_kv *kv = &scale->kvs[i];
		const char *tail = key_tail(s, kv, "scale/");
		if (!tail || !kv->value)
			continue;
		if (streq(tail, "policy")) {
			json_auto_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
			scale_error err = {};
			if (!j || scale_policy_from_json(j, &c->policy, &err) < 0)
				return finish(s, -EINVAL, j ? err.message : "scale/policy: not JSON");
			c->have_policy = true;
		} else if (streq(tail, "state")) {
			r = state_from_json(kv->value, kv->value_len, c);
			if (r == -ENOMEM)
				return finish(s, r, "out of memory");
			if (r < 0)
				note_error(s, "scale/state: not a JSON object, starting afresh");
			have_state = true;
		} else if (streq(tail, "stop"))
			c->stop = true;
	}
	(void) have_state;
	c->maintenance = snap_part(c, 4) && snap_part(c, 4)->n_kvs > 0;
	if (!c->have_policy)
		return finish(s, -ENOENT, "no scale/policy: nothing to do");
	describe(s);
}

static void cycle_start(scaler *s) {
	_cleanup_free_ char *k_scale = NULL, *k_load = NULL, *k_nodes = NULL, *k_holds = NULL, *k_maint = NULL;
	int r;

	s->pending = false;
	s->running = true;
	s->cyc = calloc(1, sizeof *s->cyc);
	if (!s->cyc)
		return finish(s, -ENOMEM, "out of memory");
	s->cyc->now = time(NULL);
	s->cyc->errors = json_array();
	s->cyc->launched = json_array();
	if (!s->cyc->errors || !s->cyc->launched || asprintf(&k_scale, "%s/scale/", s->prefix) < 0 ||
	    asprintf(&k_load, "%s/load/", s->prefix) < 0 || asprintf(&k_nodes, "%s/nodes/", s->prefix) < 0 ||
	    asprintf(&k_holds, "%s/holds/", s->prefix) < 0 || asprintf(&k_maint, "%s/maintenance", s->prefix) < 0)
		return finish(s, -ENOMEM, "out of memory");
	/* One txn of ranges: every etcd input at one revision. The order is
	 * what snap_part() indexes. */
	const etcd_op ops[] = {
		{ .type = ETCD_OP_RANGE, .range = { .key = k_scale, .prefix = true } },
		{ .type = ETCD_OP_RANGE, .range = { .key = k_load, .prefix = true } },
		{ .type = ETCD_OP_RANGE, .range = { .key = k_nodes, .prefix = true } },
		{ .type = ETCD_OP_RANGE, .range = { .key = k_holds, .prefix = true } },
		{ .type = ETCD_OP_RANGE, .range = { .key = k_maint } },
	};
	etcd_txn_req req = { .success = ops, .n_success = ELEMENTSOF(ops) };
	r = etcd_txn(s->etcd, &req, on_read, s, &s->call);
	if (r < 0)
		finish(s, r, "cannot read etcd");
}

/* ---- timer and watches ---- */

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
	scaler *s = userdata;

	s->timer = sd_event_source_disable_unref(s->timer);
	if (!s->stopped && !s->running)
		cycle_start(s);
	return 0;
}

static void schedule(scaler *s, uint64_t usec) {
	s->timer = sd_event_source_disable_unref(s->timer);
	if (s->stopped)
		return;
	(void) sd_event_add_time_relative(s->event, &s->timer, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, on_timer, s);
}

void scaler_trigger(scaler *s) {
	if (!s || s->stopped)
		return;
	if (s->running) {
		s->pending = true;
		return;
	}
	schedule(s, 0);
}

static const struct {
	const char *sub;
	bool prefix;
} watched[] = { { "scale/trigger", false }, { "scale/policy", false }, { "scale/stop", false },
		{ "holds/", true }, { "maintenance", false } };

static int watch(scaler *s, size_t slot, const char *sub, bool prefix);

static int on_rewatch(sd_event_source *src, void *userdata) {
	scaler *s = userdata;

	s->rewatch = sd_event_source_disable_unref(s->rewatch);
	for (size_t i = 0; i < ELEMENTSOF(s->dead_watches); i++)
		s->dead_watches[i] = etcd_watch_free(s->dead_watches[i]);
	for (size_t i = 0; i < ELEMENTSOF(watched); i++)
		if (!s->watches[i] && !s->stopped)
			(void) watch(s, i, watched[i].sub, watched[i].prefix);
	return 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	scaler *s = userdata;

	if (m->type == ETCD_WATCH_EVENTS || m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED)
		scaler_trigger(s);
	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* That watch has stopped: start it again from now (the cycle just
		 * triggered reads everything afresh), outside its callback. */
		for (size_t i = 0; i < ELEMENTSOF(s->watches); i++)
			if (s->watches[i] == w) {
				s->dead_watches[i] = w;
				s->watches[i] = NULL;
			}
		if (!s->rewatch && !s->stopped)
			(void) sd_event_add_defer(s->event, &s->rewatch, on_rewatch, s);
	}
}

static int watch(scaler *s, size_t slot, const char *sub, bool prefix) {
	_cleanup_free_ char *key = NULL;

	if (asprintf(&key, "%s/%s", s->prefix, sub) < 0)
		return -ENOMEM;
	etcd_watch_req req = { .key = key, .prefix = prefix };
	return etcd_watch_new(&s->watches[slot], s->etcd, &req, on_watch, s);
}

/* ---- life ---- */

scaler *scaler_free(scaler *s) {
	if (!s)
		return NULL;
	stop_all(s);
	for (size_t i = 0; i < ELEMENTSOF(s->dead_watches); i++)
		s->dead_watches[i] = etcd_watch_free(s->dead_watches[i]);
	s->cyc = cycle_free(s->cyc);
	spot_errors_free(s->spot_errors, s->n_spot_errors);
	sd_event_unref(s->event);
	free(s->prefix);
	free(s->cluster);
	free(s->leader_key);
	free(s->plan);
	json_decref(s->last_metrics);
	free(s);
	return NULL;
}

int scaler_new(scaler **out, etcd_client *etcd, ec2_client *ec2, const scaler_options *o,
	       const scaler_callbacks *cb, void *userdata) {
	_cleanup_(scaler_freep) scaler *s = NULL;
	int r;

	if (!out || !etcd || !ec2 || !o || !o->prefix || !o->cluster || (!o->dry_run && o->token <= 0))
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->etcd = etcd;
	s->ec2 = ec2;
	s->event = sd_event_ref(etcd_client_event(etcd));
	s->prefix = strdup(o->prefix);
	s->cluster = strdup(o->cluster);
	if (!s->prefix || !s->cluster || asprintf(&s->leader_key, "%s/leader", o->prefix) < 0)
		return -ENOMEM;
	s->token = o->token;
	s->interval_usec = o->interval_usec ?: 30 * USEC_PER_SEC;
	s->grace = o->launch_grace_sec > 0 ? o->launch_grace_sec : 300;
	s->dry_run = o->dry_run;
	s->crash = o->crash;
	if (cb)
		s->cb = *cb;
	s->userdata = userdata;
	if (!s->dry_run) {
		for (size_t i = 0; i < ELEMENTSOF(watched); i++) {
			r = watch(s, i, watched[i].sub, watched[i].prefix);
			if (r < 0)
				return r;
		}
	}
	schedule(s, 0);
	if (!s->timer)
		return -ENOMEM;
	*out = TAKE_PTR(s);
	return 0;
}

unsigned scaler_cycles(const scaler *s) {
	return s ? s->cycles : 0;
}

unsigned scaler_cycles_failed(const scaler *s) {
	return s ? s->cycles_failed : 0;
}

const json_t *scaler_last_metrics(const scaler *s) {
	return s ? s->last_metrics : NULL;
}

bool scaler_stopped(const scaler *s) {
	return !s || s->stopped;
}

int scaler_plan_once(etcd_client *etcd, ec2_client *ec2, const scaler_options *o, char **plan) {
	_cleanup_(scaler_freep) scaler *s = NULL;
	scaler_options d;
	int r;

	if (!o || !plan)
		return -EINVAL;
	d = *o;
	d.dry_run = true;
	d.crash = SCALER_CRASH_NONE;
	r = scaler_new(&s, etcd, ec2, &d, NULL, NULL);
	if (r < 0)
		return r;
	while (!s->plan_done) {
		r = sd_event_run(s->event, UINT64_MAX);
		if (r < 0)
			return r;
	}
	if (s->plan_error < 0)
		return s->plan_error;
	*plan = TAKE_PTR(s->plan);
	return 0;
}
