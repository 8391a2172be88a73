/* tenants.c — what tenant deployments (deployment.h) mean to the scaler,
 * as part of observe (docs/deployments.md, "Placement and scale-in"):
 *
 *   - a deployment that occupies a host (placed, not removed) is work on
 *     it: it counts as a job of that host, so the host is never idle,
 *     never a drain candidate of a threshold pool and never terminated
 *     while it has one; the scaler's victim order applies among the rest.
 *     The host is found by its node id, or by its instance id when its
 *     node is not registered now (a node that lost its lease still holds
 *     the deployment's data: its host must not look empty);
 *   - the memory the host's deployments reserve, over the capacity its
 *     node offers, is the host's memory_used when higher than the agent's
 *     (the threshold policy's signal);
 *   - a pending deployment not placed yet is placed here as the lifecycle
 *     leader will place it (deployment_place(), in id order, as
 *     deployment_decide() does): a host about to take one is not idle, so
 *     it is not drained under the deployment on its way; one no host has
 *     room for, that an empty host could take, is waiting work for the
 *     deployment pool (deployment_policy's pool, else the only threshold
 *     pool): it adds to that pool's queue, and a threshold pool with a
 *     queue grows by one at a time.
 *
 * The translation of the records is deployment_observe()'s, the one the
 * lifecycle leader uses; nothing here parses a deployment itself. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "scale-internal.h"

#define note(o, ...) strv_takef(&(o)->errors, &(o)->n_errors, __VA_ARGS__)

static deployment_kv *kvs_of(const scale_kv *v, size_t n) {
	deployment_kv *d = calloc(n + 1, sizeof *d);

	for (size_t i = 0; d && i < n; i++)
		d[i] = (deployment_kv) { v[i].id, v[i].value, v[i].len, 0 };
	return d;
}

static int host_cmp(const void *key, const void *elem) {
	return strcmp(key, ((const deployment_host *) elem)->node_id);
}

/* How many deployments occupy each host name, sorted by name. */
typedef struct occupied {
	const char *host;
	int n;
} occupied;

static int occupied_cmp(const void *a, const void *b) {
	return strcmp(((const occupied *) a)->host, ((const occupied *) b)->host);
}

static int occupied_find(const void *key, const void *elem) {
	return strcmp(key, ((const occupied *) elem)->host);
}

/* Each deployment's host: its own, or where it will be placed (whose
 * used grows by it); NULL: none (*unplaced counts those a host could
 * take). */
static size_t occupied_build(deployment_observed *d, occupied *v, int *unplaced) {
	size_t n = 0, k = 0;

	for (size_t i = 0; i < d->n_deployments; i++) {
		const deployment *x = &d->deployments[i];
		if (deployment_occupies(x))
			v[n++] = (occupied) { x->host, 1 };
		else if (x->state == DEPLOYMENT_PENDING && !x->host && x->removal == DEPLOYMENT_REMOVAL_NONE) {
			ssize_t h = deployment_place(d->hosts, d->n_hosts, x->memory);
			if (h >= 0) {
				d->hosts[h].used += x->memory;
				v[n++] = (occupied) { d->hosts[h].node_id, 1 };
			} else if (deployment_fits_some_host(d->hosts, d->n_hosts, x->memory))
				(*unplaced)++;
		}
	}
	qsort(v, n, sizeof *v, occupied_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && strcmp(v[k - 1].host, v[i].host) == 0)
			v[k - 1].n++;
		else
			v[k++] = v[i];
	}
	return k;
}

static int occupying(const occupied *v, size_t n, const scale_host *h) {
	const occupied *o = h->node_id ? bsearch(h->node_id, v, n, sizeof *v, occupied_find) : NULL;

	if (!o)
		o = bsearch(h->id, v, n, sizeof *v, occupied_find);
	return o ? o->n : 0;
}

/* The pool whose queue unplaced deployments join: the policy's, else the
 * only threshold pool; NULL when neither says. */
static const char *deployment_pool(const scale_policy *sp, const deployment_policy *dp) {
	const char *found = NULL;

	if (dp->pool)
		return scale_policy_find(sp, dp->pool) ? dp->pool : NULL;
	for (size_t i = 0; i < sp->n_pools; i++)
		if (sp->pools[i].kind == SCALE_POLICY_THRESHOLD) {
			if (found)
				return NULL;
			found = sp->pools[i].name;
		}
	return found;
}

static int add_queue(scale_observed *o, const char *pool, int n) {
	for (size_t i = 0; i < o->n_queues; i++)
		if (strcmp(o->queues[i].pool, pool) == 0) {
			o->queues[i].length += n;
			return 0;
		}
	/* read_queues() left room for one more */
	o->queues[o->n_queues].pool = strdup(pool);
	if (!o->queues[o->n_queues].pool)
		return -ENOMEM;
	o->queues[o->n_queues++].length = n;
	return 0;
}

int scale_observe_tenants(const scale_records *r, scale_observed *o) {
	_cleanup_free_ deployment_kv *deps = NULL, *nodes = NULL, *hosts = NULL;
	_cleanup_free_ occupied *occ = NULL;
	deployment_observed dobs = {};
	deployment_error err = {};
	int k = 0, unplaced = 0;

	if (r->n_deployments == 0)
		return 0;
	deps = kvs_of(r->deployments, r->n_deployments);
	nodes = kvs_of(r->nodes, r->n_nodes);
	hosts = kvs_of(r->hosts, r->n_hosts);
	if (!deps || !nodes || !hosts)
		return -ENOMEM;
	deployment_records dr = {
		.now = r->now,
		.policy = r->deployment_policy,
		.policy_len = r->deployment_policy_len,
		.deployments = deps,
		.n_deployments = r->n_deployments,
		.nodes = nodes,
		.n_nodes = r->n_nodes,
		.hosts = hosts,
		.n_hosts = r->n_hosts,
	};
	k = deployment_observe(&dr, &dobs, &err);
	if (k == -EINVAL)
		return note(o, "deployments: %s (not counted this time)", err.message);
	if (k < 0)
		return k;
	occ = calloc(dobs.n_deployments + 1, sizeof *occ);
	if (!occ) {
		k = -ENOMEM;
		goto out;
	}
	size_t n_occ = occupied_build(&dobs, occ, &unplaced);
	for (size_t i = 0; i < o->n_hosts; i++) {
		scale_host *sh = &o->hosts[i];
		if (!scale_live(sh->state))
			continue;
		sh->jobs += occupying(occ, n_occ, sh);
		const deployment_host *h = sh->node_id
			? bsearch(sh->node_id, dobs.hosts, dobs.n_hosts, sizeof *dobs.hosts, host_cmp) : NULL;
		if (!h || h->memory <= 0)
			continue;
		double used = (double) h->used / (double) h->memory;
		if (used > 1)
			used = 1;
		if (used > sh->memory_used)
			sh->memory_used = used;
	}
	const char *pool = unplaced > 0 ? deployment_pool(r->policy, &dobs.policy) : NULL;
	if (unplaced > 0 && !pool)
		k = note(o, "deployments: %d waiting for a host, and no pool to grow (set deployment_policy.pool)",
			 unplaced);
	else if (pool)
		k = add_queue(o, pool, unplaced);
out:
	deployment_observed_done(&dobs);
	return k;
}
