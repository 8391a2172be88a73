/* observe.c — records read at one etcd revision + EC2's answers ->
 * scale_decide()'s input (scale-observe.h). One translation for the
 * leader and for `corralctl autoscale -n`; pure, tested from JSON
 * fixtures (tests/test_observe.c, tests/data/observe/).
 *
 * jansson: json_object_get borrows; every json_t parsed here is freed
 * here. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rollout.h"
#include "scale-forecast.h"
#include "scale-internal.h"
#include "scale-observe.h"

#define note(o, ...) strv_takef(&(o)->errors, &(o)->n_errors, __VA_ARGS__)

static char *strdup_or_null(const char *s) {
	return s ? strdup(s) : NULL;
}

static json_t *kv_json(const scale_kv *kv) {
	return kv && kv->value ? json_loadb(kv->value, kv->len, 0, NULL) : NULL;
}

/* ---- lookups ------------------------------------------------------------------
 * Every host looks up its instance, its hold, the node naming it and that
 * node's load. Each folder is sorted once by the key looked up (ties by
 * position, so a lookup finds the first record, as a scan would), and each
 * node record is parsed once: O(n log n) for the observation, not a scan
 * and a JSON parse of every node record per host. */

typedef struct lookup {
	const char *key;
	size_t pos;
} lookup;

typedef struct lookups {
	lookup *instances, *holds, *nodes, *load, *hosts, *orders, *progress, *status;
	size_t n_instances, n_holds, n_nodes, n_load, n_hosts, n_orders, n_progress, n_status;
	rollout_state rollout;          /* upgrade/state; plan NULL: none */
	size_t n_recorded;              /* o->hosts read from records */
	json_t **node_json;             /* r->nodes[i] parsed, or NULL */
	size_t n_node_json;
} lookups;

static int lookup_cmp(const void *a, const void *b) {
	const lookup *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* keys[i] (NULL: not indexed) for i < n, sorted. */
static int lookup_build(lookup **out, size_t *n_out, const char *const *keys, size_t n) {
	lookup *v = calloc(n + 1, sizeof *v);
	size_t m = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (keys[i])
			v[m++] = (lookup) { keys[i], i };
	qsort(v, m, sizeof *v, lookup_cmp);
	*out = v;
	*n_out = m;
	return 0;
}

/* The position of the first entry with key, or -1. */
static ssize_t lookup_find(const lookup *v, size_t n, const char *key) {
	size_t lo = 0, hi = n;

	if (!key)
		return -1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && streq(v[lo].key, key) ? (ssize_t) v[lo].pos : -1;
}

static void lookups_done(lookups *lk) {
	free(lk->instances);
	free(lk->holds);
	free(lk->nodes);
	free(lk->load);
	free(lk->status);
	free(lk->hosts);
	free(lk->orders);
	free(lk->progress);
	rollout_state_done(&lk->rollout);
	for (size_t i = 0; i < lk->n_node_json; i++)
		json_decref(lk->node_json[i]);
	free(lk->node_json);
	*lk = (lookups) {};
}

static int kv_lookup(lookup **out, size_t *n_out, const scale_kv *v, size_t n) {
	_cleanup_free_ const char **keys = calloc(n + 1, sizeof *keys);

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		keys[i] = v[i].id;
	return lookup_build(out, n_out, keys, n);
}

/* The records' lookups; the hosts' once read_records() has run. */
static int lookups_build(const scale_records *r, const scale_observed *o, lookups *lk) {
	size_t n = r->n_instances > r->n_nodes ? r->n_instances : r->n_nodes;
	_cleanup_free_ const char **keys = calloc((n > o->n_hosts ? n : o->n_hosts) + 1, sizeof *keys);
	int k;

	lk->node_json = calloc(r->n_nodes + 1, sizeof *lk->node_json);
	if (!keys || !lk->node_json)
		return -ENOMEM;
	lk->n_node_json = r->n_nodes;
	for (size_t i = 0; i < r->n_nodes; i++) {
		lk->node_json[i] = kv_json(&r->nodes[i]);
		keys[i] = json_string_value(json_object_get(lk->node_json[i], "instance_id"));
	}
	if ((k = lookup_build(&lk->nodes, &lk->n_nodes, keys, r->n_nodes)) < 0)
		return k;
	for (size_t i = 0; i < r->n_instances; i++)
		keys[i] = r->instances[i].id;
	if ((k = lookup_build(&lk->instances, &lk->n_instances, keys, r->n_instances)) < 0)
		return k;
	for (size_t i = 0; i < o->n_hosts; i++)
		keys[i] = o->hosts[i].id;
	lk->n_recorded = o->n_hosts;
	if ((k = lookup_build(&lk->hosts, &lk->n_hosts, keys, o->n_hosts)) < 0)
		return k;
	if ((k = kv_lookup(&lk->holds, &lk->n_holds, r->holds, r->n_holds)) < 0)
		return k;
	if ((k = kv_lookup(&lk->orders, &lk->n_orders, r->upgrade_orders, r->n_upgrade_orders)) < 0)
		return k;
	if ((k = kv_lookup(&lk->progress, &lk->n_progress, r->upgrade_progress, r->n_upgrade_progress)) < 0)
		return k;
	if (r->upgrade_state) {
		json_auto_t *st = json_loadb(r->upgrade_state, r->upgrade_state_len, 0, NULL);
		rollout_error err;
		if (st && rollout_state_from_json(st, &lk->rollout, &err) < 0)
			lk->rollout = (rollout_state) {};
	}
	if ((k = kv_lookup(&lk->status, &lk->n_status, r->status, r->n_status)) < 0)
		return k;
	return kv_lookup(&lk->load, &lk->n_load, r->load, r->n_load);
}

/* The node holds an upgrade or rollback order of the rollout under way
 * (upgrade/state's plan and generation) that its progress does not yet
 * report finished (done or failed): a batch has it, or will take it down
 * any moment. An unreadable record counts as none. */
static bool in_rollout(const scale_records *r, const lookups *lk, const char *node_id, scale_host *h) {
	ssize_t i = lookup_find(lk->orders, lk->n_orders, node_id);
	rollout_order o = {};
	rollout_progress p = {};
	rollout_error err;
	bool in = false;

	if (i < 0 || !lk->rollout.plan)
		return false;
	json_auto_t *oj = kv_json(&r->upgrade_orders[i]);
	if (!oj || rollout_order_from_json(oj, &o, &err) < 0)
		return false;
	in = (o.verb == ROLLOUT_UPGRADE || o.verb == ROLLOUT_ROLLBACK) && streq_ptr(o.plan, lk->rollout.plan) &&
	     o.generation == lk->rollout.generation;
	i = in ? lookup_find(lk->progress, lk->n_progress, node_id) : -1;
	json_auto_t *pj = i >= 0 ? kv_json(&r->upgrade_progress[i]) : NULL;
	if (pj && rollout_progress_from_json(pj, &p, &err) >= 0) {
		if (streq_ptr(p.plan, o.plan) && p.generation == o.generation && p.verb == o.verb &&
		    p.state != ROLLOUT_STEP_RUNNING)
			in = false;
		rollout_progress_done(&p);
	}
	/* replace by relaunch: the scaler carries the order out (replace.c) */
	if (in && rollout_order_replaces(&o)) {
		h->replace = o.verb == ROLLOUT_UPGRADE ? SCALE_REPLACE_UPGRADE : SCALE_REPLACE_ROLLBACK;
		rollout_replace_token(o.plan, o.generation, o.batch, h->id, false, h->replace_token);
		if (o.verb == ROLLOUT_UPGRADE) {
			h->replace_version = TAKE_PTR(o.target.launch_template_version);
			h->replace_image = TAKE_PTR(o.target.ami);
		}
	}
	rollout_order_done(&o);
	return in;
}

/* What the instance says of its machine image; the record follows it. */
static int image_of(const scale_instance *in, scale_host *h, bool *dirty) {
	const char *v[2] = { in->launch_template_version, in->image_id };
	char **f[2] = { &h->launch_template_version, &h->image_id };

	for (size_t i = 0; i < 2; i++) {
		if (!v[i] || streq_ptr(*f[i], v[i]))
			continue;
		free(*f[i]);
		if (!(*f[i] = strdup(v[i])))
			return -ENOMEM;
		*dirty = true;
	}
	return 0;
}

static bool held(const lookups *lk, const char *id) {
	return lookup_find(lk->holds, lk->n_holds, id) >= 0;
}

static const scale_instance *instance_find(const scale_records *r, const lookups *lk, const char *id) {
	ssize_t i = lookup_find(lk->instances, lk->n_instances, id);
	return i >= 0 ? &r->instances[i] : NULL;
}

struct scale_host_index {
	lookup *v;
	size_t n;
};

/* o's hosts by id; their ids stay put, o->hosts no longer grows. */
static int index_hosts(scale_observed *o) {
	_cleanup_free_ const char **keys = calloc(o->n_hosts + 1, sizeof *keys);
	struct scale_host_index *ix = calloc(1, sizeof *ix);
	int k;

	if (!keys || !ix) {
		free(ix);
		return -ENOMEM;
	}
	for (size_t i = 0; i < o->n_hosts; i++)
		keys[i] = o->hosts[i].id;
	k = lookup_build(&ix->v, &ix->n, keys, o->n_hosts);
	if (k < 0) {
		free(ix);
		return k;
	}
	o->index = ix;
	return 0;
}

scale_host *scale_observed_host(scale_observed *o, const char *id) {
	if (!o)
		return NULL;
	if (o->index) {
		ssize_t i = lookup_find(o->index->v, o->index->n, id);
		return i >= 0 ? &o->hosts[i] : NULL;
	}
	for (size_t i = 0; i < o->n_hosts; i++)
		if (streq(o->hosts[i].id, id))
			return &o->hosts[i];
	return NULL;
}

int scale_observe_policy(const char *text, size_t len, scale_policy *out, scale_error *err) {
	json_auto_t *j = text ? json_loadb(text, len, 0, NULL) : NULL;

	*err = (scale_error) {};
	if (!j) {
		snprintf(err->message, sizeof err->message, "scale/policy: not JSON");
		return -EINVAL;
	}
	return scale_policy_from_json(j, out, err);
}

static int add_host(scale_observed *o, scale_host *take, bool dirty) {
	scale_host *n = realloc(o->hosts, (o->n_hosts + 1) * sizeof *n);
	bool *d;

	if (!n)
		return -ENOMEM;
	o->hosts = n;
	d = realloc(o->dirty, (o->n_hosts + 1) * sizeof *d);
	if (!d)
		return -ENOMEM;
	o->dirty = d;
	o->hosts[o->n_hosts] = *take;
	o->dirty[o->n_hosts] = dirty;
	o->n_hosts++;
	*take = (scale_host) {};
	return 0;
}

/* scale/hosts/<id> -> hosts; a record that does not parse is a note. */
static int read_records(const scale_records *r, scale_observed *o) {
	int k;

	for (size_t i = 0; i < r->n_hosts; i++) {
		const scale_kv *kv = &r->hosts[i];
		json_auto_t *j = NULL;
		scale_host h = {};
		scale_error err = {};

		if (!kv->value)
			continue;
		j = kv_json(kv);
		if (!j || scale_host_from_json(j, &h, &err) < 0) {
			k = note(o, "record %s: %s", kv->id, j ? err.message : "not JSON");
			if (k < 0)
				return k;
			continue;
		}
		k = add_host(o, &h, false);
		if (k < 0) {
			scale_host_done(&h);
			return k;
		}
	}
	return 0;
}

/* nodes/<node> whose record names this instance: its parsed record
 * (borrowed from lk), the node id in *node_id (borrowed from the records). */
static json_t *node_for(const scale_records *r, const lookups *lk, const char *instance_id, const char **node_id) {
	ssize_t i = lookup_find(lk->nodes, lk->n_nodes, instance_id);

	if (i < 0)
		return NULL;
	*node_id = r->nodes[i].id;
	return lk->node_json[i];
}

/* What the node and its load record say of a live host. */
static int apply_node(const scale_records *r, const lookups *lk, scale_host *h) {
	const char *node_id = NULL;
	json_t *node;
	json_auto_t *load = NULL;
	ssize_t l;

	free(h->node_id);
	h->node_id = NULL;
	h->jobs = 0;
	h->winding_down = false;
	node = node_for(r, lk, h->id, &node_id);
	if (!node)
		return 0;
	h->node_id = strdup(node_id);
	if (!h->node_id)
		return -ENOMEM;
	/* The node record lives on the node's lease: present = alive. */
	h->last_seen = r->now;
	l = lookup_find(lk->status, lk->n_status, node_id);
	json_auto_t *status = l >= 0 ? kv_json(&r->status[l]) : NULL;
	h->status_failed = json_is_false(json_object_get(status, "ok"));
	l = lookup_find(lk->load, lk->n_load, node_id);
	load = l >= 0 ? kv_json(&r->load[l]) : NULL;
	if (load) {
		h->jobs = (int) json_integer_value(json_object_get(load, "jobs"));
		h->job_capacity = (int) json_integer_value(json_object_get(load, "capacity"));
		h->memory_used = json_number_value(json_object_get(load, "memory"));
		/* The agent's notice (docs/scale.md): kept once seen. */
		if (json_is_object(json_object_get(load, "interruption")))
			h->interruption = true;
	}
	/* A node with a wind-down hook says when it is done. */
	h->winding_down = h->state == SCALE_DRAINING && json_is_true(json_object_get(node, "wind_down")) &&
			  !json_is_true(json_object_get(load, "ready_to_stop"));
	return 0;
}

/* The warm pool's consistency (docs/scale.md, "The leader loop"), when EC2
 * was asked: a record stopped whose instance runs (started by hand, or our
 * StopInstances failed) is taken as a start we did not make: launching,
 * counted as capacity arriving, ready once its node registers, returned to
 * the pool by the engine if it is surplus. A record launching (our start)
 * whose instance is still stopping or stopped terminate_retry after the
 * start lost its StartInstances: back to stopped, for the engine to start
 * again if it is still wanted. */
static void observe_warm(const scale_records *r, const scale_instance *in, scale_observed *o, size_t i) {
	scale_host *h = &o->hosts[i];
	const scale_pool *p = scale_policy_find(r->policy, h->pool);
	scale_state to;

	if (h->state == SCALE_STOPPED && !in->stopped)
		to = SCALE_LAUNCHING;
	else if (h->state == SCALE_LAUNCHING && in->stopped && p && r->now - h->state_since >= p->terminate_retry)
		to = SCALE_STOPPED;
	else
		return;
	h->state = to;
	h->state_since = r->now;
	h->warm = false;
	o->dirty[i] = true;
}

/* Consistency and enrichment of one recorded host. */
static int observe_host(const scale_records *r, const lookups *lk, scale_observed *o, size_t i) {
	scale_host *h = &o->hosts[i];
	const scale_instance *in = instance_find(r, lk, h->id);
	bool was_winding_down = h->winding_down;
	int k;

	if (h->state == SCALE_TERMINATED)
		return 0;
	/* Consistency: the instance is gone (or never showed up within the
	 * grace) -> terminated. Only when EC2 was asked. */
	if (r->have_instances &&
	    ((in && in->gone) || (!in && (h->state == SCALE_TERMINATING || r->now - h->launch_time >= r->launch_grace)))) {
		o->dirty[i] = true;
		h->state = SCALE_TERMINATED;
		h->state_since = r->now;
		o->gone++;
		return 0;
	}
	if (in && r->have_instances)
		observe_warm(r, in, o, i);
	if (in) {
		h->cluster_tagged = true;
		h->hold = h->hold || in->hold;
		h->autoscale_off = in->autoscale_off;
		if ((k = image_of(in, h, &o->dirty[i])) < 0)
			return k;
	}
	h->hold = h->hold || held(lk, h->id);
	k = apply_node(r, lk, h);
	if (k < 0)
		return k;
	/* By the node naming the instance; or by the instance id itself, a
	 * node id too where node_id is set to it. */
	h->in_rollout = in_rollout(r, lk, h->node_id ?: h->id, h);
	/* Shown in the record (corralctl status) as it changes. */
	if (h->winding_down != was_winding_down)
		o->dirty[i] = true;
	return 0;
}

/* A tagged instance nobody recorded: left in its grace, left alone when
 * held, else recorded terminating and terminated. */
static int observe_orphan(const scale_records *r, const lookups *lk, scale_observed *o, const scale_instance *in) {
	scale_host h = {};
	int k;

	if (in->gone || lookup_find(lk->hosts, lk->n_hosts, in->id) >= 0)
		return 0;
	/* Orphans recorded in this pass (DescribeInstances names each once). */
	for (size_t i = lk->n_recorded; i < o->n_hosts; i++)
		if (streq(o->hosts[i].id, in->id))
			return 0;
	if (r->now - in->launch_time < r->launch_grace) {
		o->in_grace++;
		return 0;
	}
	if (in->hold || held(lk, in->id))
		return note(o, "instance %s: tagged for the cluster, no record, held: left alone", in->id);
	h = (scale_host) {
		.id = strdup(in->id),
		.pool = strdup(in->pool ?: "unknown"),
		.state = SCALE_TERMINATING,
		.market = in->spot ? SCALE_SPOT : SCALE_ON_DEMAND,
		.instance_type = strdup_or_null(in->instance_type),
		.availability_zone = strdup_or_null(in->availability_zone),
		.launch_time = in->launch_time,
		.state_since = r->now,
		.cluster_tagged = true,
	};
	if (!h.id || !h.pool) {
		scale_host_done(&h);
		return -ENOMEM;
	}
	k = add_host(o, &h, true);
	if (k < 0) {
		scale_host_done(&h);
		return k;
	}
	o->orphans++;
	return strv_take(&o->terminate, &o->n_terminate, strdup(in->id));
}

/* scale/state: scale_state_to_json()'s document as the
 * leader stores it; anything else starts afresh (with a note). */
static int read_state(const scale_records *r, scale_observed *o) {
	json_auto_t *j = NULL;
	const char *name;
	json_t *v;

	if (!r->state)
		return 0;
	j = json_loadb(r->state, r->state_len, 0, NULL);
	if (!json_is_object(j))
		return note(o, "scale/state: not a JSON object, starting afresh");
	o->state = calloc(json_object_size(j) + 1, sizeof *o->state);
	if (!o->state)
		return -ENOMEM;
	json_object_foreach(j, name, v) {
		scale_pool_state *p = &o->state[o->n_state];
		if (!json_is_object(v))
			continue;
		p->pool = strdup(name);
		if (!p->pool)
			return -ENOMEM;
		p->last_scale_in = (time_t) json_integer_value(json_object_get(v, "last_scale_in"));
		p->surplus_since = (time_t) json_integer_value(json_object_get(v, "surplus_since"));
		p->launch_seq = (uint64_t) json_integer_value(json_object_get(v, "launch_seq"));
		p->last_warm_start = (time_t) json_integer_value(json_object_get(v, "last_warm_start"));
		p->surplus_want = (int) json_integer_value(json_object_get(v, "surplus_want"));
		o->n_state++;
	}
	return 0;
}

/* scale/queue/<pool>: the count as atoi reads it (what the leader always
 * did: "12\n" is 12, text without digits 0). */
static int read_queues(const scale_records *r, scale_observed *o) {
	o->queues = calloc(r->n_queues + 1, sizeof *o->queues);
	if (!o->queues)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_queues; i++) {
		const scale_kv *kv = &r->queues[i];
		_cleanup_free_ char *text = NULL;
		if (!kv->value)
			continue;
		/* len bytes, no NUL promised (the simulator's records share one
		 * buffer). */
		text = bytes_dup(kv->value, kv->len);
		o->queues[o->n_queues].pool = strdup(r->queues[i].id);
		if (!text || !o->queues[o->n_queues].pool)
			return -ENOMEM;
		o->queues[o->n_queues++].length = atoi(text);
	}
	return 0;
}

/* A machine image plan (one pool): what that pool's new capacity launches
 * on, the plan's version while it goes forward, the one before it once
 * it failed or rolls back, upgrade/stable's before the plan has one. */
static int read_rollout(const scale_records *r, const lookups *lk, scale_observed *o) {
	json_auto_t *pj = r->upgrade_plan ? json_loadb(r->upgrade_plan, r->upgrade_plan_len, 0, NULL) : NULL;
	json_auto_t *sj = r->upgrade_stable ? json_loadb(r->upgrade_stable, r->upgrade_stable_len, 0, NULL) : NULL;
	_cleanup_(rollout_plan_done) rollout_plan p = {};
	_cleanup_(rollout_target_done) rollout_target stable = {};
	rollout_error err;
	const rollout_state *s = &lk->rollout;

	if (!pj || rollout_plan_from_json(pj, &p, &err) < 0 || !rollout_target_replaces(&p.target) || p.n_pools != 1)
		return 0;
	if (sj && rollout_target_from_json(sj, &stable, &err) < 0)
		stable = (rollout_target) {};
	const char *v = stable.launch_template_version, *image = stable.ami;
	if (s->plan && streq(s->plan, p.id)) {
		bool back = s->phase == ROLLOUT_ROLLING_BACK || s->phase == ROLLOUT_ROLLED_BACK ||
		            s->phase == ROLLOUT_FAILED || s->phase == ROLLOUT_CANCELLED;
		if (back && s->previous.launch_template_version) {
			v = s->previous.launch_template_version;
			image = s->previous.ami;
		} else if (!back && s->launch_template_version) {
			v = s->launch_template_version;
			image = p.target.ami;
		}
	}
	if (!(o->rollout_pool = strdup(p.pools[0])) || (v && !(o->rollout_version = strdup(v))) ||
	    (image && !(o->rollout_image = strdup(image))))
		return -ENOMEM;
	o->rollout = (scale_rollout) { .pool = o->rollout_pool, .launch_template_version = o->rollout_version,
		                       .image_id = o->rollout_image, .max_surge = p.max_surge,
		                       .min_healthy_time = p.min_healthy_time,
		                       .keep_old = p.keep_old_until_bake };
	return 0;
}

/* scale/load_history/<pool> -> the forecast of each pool with forecast
 * enabled (docs/scale.md, "Forecast"). No history, or too little: no
 * forecast, the reactive policy decides alone; a bad one is a note (the
 * leader starts it afresh). */
static int read_forecasts(const scale_records *r, scale_observed *o) {
	const scale_policy *p = r->policy;
	int k;

	o->forecasts = calloc(p->n_pools + 1, sizeof *o->forecasts);
	if (!o->forecasts)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_pools; i++) {
		const scale_pool *pool = &p->pools[i];
		const scale_kv *kv = NULL;
		_cleanup_(scale_history_done) scale_history h = {};
		int demand;

		for (size_t j = 0; pool->forecast.enabled && !kv && j < r->n_load_history; j++)
			if (streq(r->load_history[j].id, pool->name))
				kv = &r->load_history[j];
		if (!kv || !kv->value)
			continue;
		k = scale_history_parse(kv->value, kv->len, &h);
		if (k == -EINVAL)
			k = note(o, "scale/load_history/%s: not a load history (ignored; the leader starts it afresh)",
				 pool->name);
		if (k < 0)
			return k;
		if (!h.points)
			continue;
		k = scale_forecast_demand(&h, &pool->forecast, r->now, &demand);
		if (k == -ENODATA)
			continue;
		if (k < 0)
			return k;
		o->forecasts[o->n_forecasts] = (scale_forecast) { .pool = strdup(pool->name), .demand = demand };
		if (!o->forecasts[o->n_forecasts++].pool)
			return -ENOMEM;
	}
	return 0;
}

static int observe_all(const scale_records *r, scale_observed *o) {
	int k;

	/* Notes in the order the leader always met them: state, prices, records. */
	if ((k = read_state(r, o)) < 0)
		return k;
	if (r->prices_error && (k = note(o, "spot prices: %s (no spot this time)", r->prices_error)) < 0)
		return k;
	if ((k = read_records(r, o)) < 0)
		return k;
	_cleanup_(lookups_done) lookups lk = {};
	if ((k = lookups_build(r, o, &lk)) < 0)
		return k;
	for (size_t i = 0; i < o->n_hosts; i++)
		if ((k = observe_host(r, &lk, o, i)) < 0)
			return k;
	/* a replacement is the rollout's while its old host's order lasts:
	 * never surplus, drained only by the rollback */
	for (size_t i = 0; i < o->n_hosts; i++) {
		ssize_t j = o->hosts[i].replaces ? lookup_find(lk.hosts, lk.n_hosts, o->hosts[i].replaces) : -1;
		if (j >= 0 && o->hosts[j].replace != SCALE_REPLACE_NONE)
			o->hosts[i].in_rollout = true;
	}
	if ((k = read_rollout(r, &lk, o)) < 0)
		return k;
	for (size_t i = 0; r->have_instances && i < r->n_instances; i++)
		if ((k = observe_orphan(r, &lk, o, &r->instances[i])) < 0)
			return k;
	if ((k = read_queues(r, o)) < 0 || (k = scale_observe_tenants(r, o)) < 0)
		return k;
	return read_forecasts(r, o);
}

int scale_observe(const scale_records *r, scale_observed *out) {
	int k;

	*out = (scale_observed) {};
	if (!r || !r->policy || r->now <= 0)
		return -EINVAL;
	k = observe_all(r, out);
	if (k >= 0)
		k = index_hosts(out);
	if (k < 0) {
		scale_observed_done(out);
		return k;
	}
	out->input = (scale_input) {
		.cluster = r->cluster,
		.rollout = out->rollout_pool ? &out->rollout : NULL,
		.policy = r->policy,
		.hosts = out->hosts,
		.n_hosts = out->n_hosts,
		.queues = out->queues,
		.n_queues = out->n_queues,
		.prices = r->prices,
		.n_prices = r->n_prices,
		.reservations = r->reservations,
		.n_reservations = r->n_reservations,
		.spot_errors = r->spot_errors,
		.n_spot_errors = r->n_spot_errors,
		.state = out->state,
		.n_state = out->n_state,
		.forecasts = out->forecasts,
		.n_forecasts = out->n_forecasts,
		.maintenance = r->maintenance,
		.stop = r->stop,
		.now = r->now,
	};
	return 0;
}

void scale_observed_done(scale_observed *o) {
	if (!o)
		return;
	for (size_t i = 0; i < o->n_hosts; i++)
		scale_host_done(&o->hosts[i]);
	free(o->hosts);
	free(o->dirty);
	for (size_t i = 0; i < o->n_queues; i++)
		free(o->queues[i].pool);
	free(o->queues);
	for (size_t i = 0; i < o->n_state; i++)
		free(o->state[i].pool);
	free(o->state);
	for (size_t i = 0; i < o->n_forecasts; i++)
		free(o->forecasts[i].pool);
	free(o->forecasts);
	strv_free(o->terminate);
	strv_free(o->errors);
	free(o->rollout_pool);
	free(o->rollout_version);
	free(o->rollout_image);
	if (o->index)
		free(o->index->v);
	free(o->index);
	*o = (scale_observed) {};
}
