/* observe.c — the records one txn read, turned into deployment_decide()'s
 * input (deployment.h): the policy, the deployments and their reports,
 * and the hosts that take deployments with the memory already reserved
 * on them. Pure; shared by the lifecycle leader, corralctl and the
 * scaler's observe (src/scale/tenants.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deployment-internal.h"
#include "macro.h"
#include "scale-observe.h"

#define note(o, ...) strv_takef(&(o)->errors, &(o)->n_errors, __VA_ARGS__)

static json_t *kv_json(const deployment_kv *kv) {
	return kv->value ? json_loadb(kv->value, kv->len, 0, NULL) : NULL;
}

static int dep_cmp(const void *a, const void *b) {
	return strcmp(((const deployment *) a)->id, ((const deployment *) b)->id);
}

static int host_cmp(const void *a, const void *b) {
	return strcmp(((const deployment_host *) a)->node_id, ((const deployment_host *) b)->node_id);
}

static int read_policy(const deployment_records *r, deployment_observed *o, deployment_error *err) {
	json_auto_t *j = NULL;

	if (r->policy) {
		j = json_loadb(r->policy, r->policy_len, 0, NULL);
		if (!j)
			return dep_fail(err, "deployment_policy", NULL, "not JSON");
	}
	return deployment_policy_from_json(j, &o->policy, err);
}

typedef struct dep_rev {
	deployment d;
	int64_t mod;
} dep_rev;

static int dep_rev_cmp(const void *a, const void *b) {
	return dep_cmp(&((const dep_rev *) a)->d, &((const dep_rev *) b)->d);
}

static int read_deployments(const deployment_records *r, deployment_observed *o) {
	o->deployments = calloc(r->n_deployments + 1, sizeof *o->deployments);
	o->mod_revisions = calloc(r->n_deployments + 1, sizeof *o->mod_revisions);
	if (!o->deployments || !o->mod_revisions)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_deployments; i++) {
		const deployment_kv *kv = &r->deployments[i];
		json_auto_t *j = kv_json(kv);
		deployment_error err = {};
		int k = j ? deployment_from_json(j, kv->id, &o->deployments[o->n_deployments], &err) : -EINVAL;
		if (k == -ENOMEM)
			return k;
		if (k < 0) {
			if ((k = note(o, "deployments/%s: %s", kv->id, j ? err.message : "not JSON")) < 0)
				return k;
			continue;
		}
		o->mod_revisions[o->n_deployments++] = kv->mod_revision;
	}
	/* both arrays sorted by id together: pairs through qsort, then back */
	_cleanup_free_ dep_rev *v = calloc(o->n_deployments + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < o->n_deployments; i++)
		v[i] = (dep_rev) { o->deployments[i], o->mod_revisions[i] };
	qsort(v, o->n_deployments, sizeof *v, dep_rev_cmp);
	for (size_t i = 0; i < o->n_deployments; i++) {
		o->deployments[i] = v[i].d;
		o->mod_revisions[i] = v[i].mod;
	}
	return 0;
}

static ssize_t find_dep(const deployment_observed *o, const char *id) {
	size_t lo = 0, hi = o->n_deployments;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(o->deployments[mid].id, id);
		if (c == 0)
			return (ssize_t) mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int read_reports(const deployment_records *r, deployment_observed *o) {
	o->reports = calloc(r->n_reports + 1, sizeof *o->reports);
	o->report_of = calloc(o->n_deployments + 1, sizeof *o->report_of);
	if (!o->reports || !o->report_of)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_reports; i++) {
		const deployment_kv *kv = &r->reports[i];
		ssize_t d = find_dep(o, kv->id);
		json_auto_t *j = d >= 0 ? kv_json(kv) : NULL;
		deployment_error err = {};
		if (d < 0)
			continue;       /* a report of a deployment gone or unreadable */
		int k = j ? deployment_report_from_json(j, &o->reports[o->n_reports], &err) : -EINVAL;
		if (k == -ENOMEM)
			return k;
		if (k < 0) {
			if ((k = note(o, "deployment_reports/%s: %s", kv->id, j ? err.message : "not JSON")) < 0)
				return k;
			continue;
		}
		o->report_of[d] = &o->reports[o->n_reports++];
	}
	return 0;
}

/* The scale host record of an instance: its state and reserved flag. */
static bool host_record(const deployment_records *r, const char *instance, bool *ready, bool *reserved) {
	for (size_t i = 0; instance && i < r->n_hosts; i++) {
		if (strcmp(r->hosts[i].id, instance) != 0)
			continue;
		/* two fields only: a record the scaler's codec would refuse for
		 * another field still says whether the host serves */
		json_auto_t *j = kv_json(&r->hosts[i]);
		scale_state st;
		*ready = scale_state_from_string(json_string_value(json_object_get(j, "state")), &st) == 0 &&
			 st == SCALE_READY;
		*reserved = json_is_true(json_object_get(j, "reserved"));
		return true;
	}
	return false;
}

static double threshold_of(const scale_policy *sp, const char *pool, const deployment_policy *p) {
	const scale_pool *sc = sp && pool ? scale_policy_find(sp, pool) : NULL;
	return sc && sc->kind == SCALE_POLICY_THRESHOLD ? sc->memory_threshold : p->memory_threshold;
}

static int read_hosts(const deployment_records *r, deployment_observed *o) {
	_cleanup_(scale_policy_done) scale_policy sp = {};
	bool have_sp = false;

	if (r->scale_policy) {
		scale_error err;
		int k = scale_observe_policy(r->scale_policy, r->scale_policy_len, &sp, &err);
		if (k == -ENOMEM)
			return k;
		have_sp = k == 0;
		if (k < 0 && (k = note(o, "%s (thresholds from deployment_policy)", err.message)) < 0)
			return k;
	}
	o->hosts = calloc(r->n_nodes + 1, sizeof *o->hosts);
	if (!o->hosts)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_nodes; i++) {
		json_auto_t *j = kv_json(&r->nodes[i]);
		json_t *mem = json_object_get(json_object_get(j, "deployments"), "memory");
		const char *pool = json_string_value(json_object_get(j, "pool"));
		const char *inst = json_string_value(json_object_get(j, "instance_id"));
		if (!json_is_integer(mem) || json_integer_value(mem) <= 0)
			continue;
		if (o->policy.pool && (!pool || strcmp(pool, o->policy.pool) != 0))
			continue;
		deployment_host *h = &o->hosts[o->n_hosts];
		h->node_id = strdup(r->nodes[i].id);
		h->pool = pool ? strdup(pool) : NULL;
		h->instance_id = inst ? strdup(inst) : NULL;
		o->n_hosts++;
		if (!h->node_id || (pool && !h->pool) || (inst && !h->instance_id))
			return -ENOMEM;
		h->memory = json_integer_value(mem);
		h->threshold = threshold_of(have_sp ? &sp : NULL, pool, &o->policy);
		bool ready = true, reserved = false;
		host_record(r, inst, &ready, &reserved);
		h->placeable = ready;
		h->reserved = reserved;
	}
	qsort(o->hosts, o->n_hosts, sizeof *o->hosts, host_cmp);
	for (size_t i = 0; i < o->n_deployments; i++) {
		const deployment *d = &o->deployments[i];
		if (!deployment_occupies(d))
			continue;
		deployment_host key = { .node_id = d->host };
		deployment_host *h = bsearch(&key, o->hosts, o->n_hosts, sizeof *o->hosts, host_cmp);
		if (h)
			h->used += d->memory;
	}
	return 0;
}

int deployment_observe(const deployment_records *r, deployment_observed *out, deployment_error *err) {
	int k;

	*out = (deployment_observed) {};
	if (!r || r->now <= 0)
		return dep_fail(err, "deployment_records", "now", "must be a time > 0");
	if ((k = read_policy(r, out, err)) < 0 ||
	    /* said, not silently ignored: an operator who turned it on expects it */
	    (out->policy.consolidate &&
	     (k = note(out, "deployment_policy.consolidate: not available in this version, ignored")) < 0) ||
	    (k = read_deployments(r, out)) < 0 ||
	    (k = read_reports(r, out)) < 0 || (k = read_hosts(r, out)) < 0) {
		deployment_observed_done(out);
		return k;
	}
	out->input = (deployment_input) {
		.policy = &out->policy,
		.deployments = out->deployments,
		.mod_revisions = out->mod_revisions,
		.reports = out->report_of,
		.n_deployments = out->n_deployments,
		.hosts = out->hosts,
		.n_hosts = out->n_hosts,
		.maintenance = r->maintenance,
		.now = r->now + out->policy.clock_offset,
	};
	return 0;
}

void deployment_observed_done(deployment_observed *o) {
	if (!o)
		return;
	deployment_policy_done(&o->policy);
	for (size_t i = 0; i < o->n_deployments; i++)
		deployment_done(&o->deployments[i]);
	free(o->deployments);
	free(o->mod_revisions);
	for (size_t i = 0; i < o->n_reports; i++)
		deployment_report_done(&o->reports[i]);
	free(o->reports);
	free(o->report_of);
	for (size_t i = 0; i < o->n_hosts; i++) {
		free(o->hosts[i].node_id);
		free(o->hosts[i].pool);
		free(o->hosts[i].instance_id);
	}
	free(o->hosts);
	strv_free(o->errors);
	*o = (deployment_observed) {};
}
