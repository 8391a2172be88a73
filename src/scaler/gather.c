/* gather.c — observe's I/O for the scaling loop: the etcd snapshot (one
 * txn, one revision: snapshot.c), then DescribeInstances under the
 * cluster's tag, spot prices for the types of the pools that allow spot,
 * reserved instances when a pool may use them. Everything lands in
 * c->snap.records (scale-observe.h) for the pure scale_observe(); nothing
 * is interpreted here beyond EC2's answers turned into plain structs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cycle.h"

#define TAG_CLUSTER "corral:cluster"
#define TAG_POOL "corral:pool"

static void fail(cycle *c, int error, const char *why) {
	c->next(c, error, why);
}

static char *strdup_or_null(const char *s) {
	return s ? strdup(s) : NULL;
}

static bool truthy(const char *v) {
	return v && (streq(v, "true") || streq(v, "1") || streq(v, "yes"));
}

/* ---- reserved instances, spot prices, instances ---- */

static void on_reserved(ec2_client *e, const ec2_reply *r, const ec2xml_describe_reserved_instances *res,
			void *userdata) {
	cycle *c = userdata;
	char msg[600];

	c->op = NULL;
	if (r->error < 0) {
		snprintf(msg, sizeof msg, "unavailable: %s %s", r->code, r->message);
		c->snap.records.reservations_error = c->reservations_error = strdup(msg);
		return c->reservations_error ? c->next(c, 0, NULL) : fail(c, -ENOMEM, "out of memory");
	}
	c->res = calloc(res->n_items + 1, sizeof *c->res);
	if (!c->res)
		return fail(c, -ENOMEM, "out of memory");
	c->snap.records.reservations = c->res;
	for (size_t i = 0; i < res->n_items; i++) {
		const ec2_reserved_instances *ri = &res->items[i];
		bool regional = !ri->availability_zone || (ri->scope && streq(ri->scope, "Region"));
		if (!ri->instance_type || ri->instance_count <= 0 || !streq_ptr(ri->state, "active"))
			continue;
		c->res[c->snap.records.n_reservations] = (scale_reservation) {
			.instance_type = strdup(ri->instance_type),
			.availability_zone = regional ? NULL : strdup(ri->availability_zone),
			.count = ri->instance_count,
		};
		if (!c->res[c->snap.records.n_reservations++].instance_type)
			return fail(c, -ENOMEM, "out of memory");
	}
	c->next(c, 0, NULL);
}

static void get_reserved(cycle *c) {
	static const char *const active[] = { "active" };
	const ec2_filter f[] = { { "state", active, 1 } };
	bool wanted = false;

	/* Not asked when no pool may use a reservation: one call less per
	 * cycle, and no retries against an account that cannot answer. */
	for (size_t i = 0; i < c->snap.policy.n_pools; i++)
		wanted = wanted || c->snap.policy.pools[i].market_reserved;
	if (!wanted)
		return c->next(c, 0, NULL);
	if (ec2_describe_reserved_instances(c->ec2, f, 1, on_reserved, c, &c->op) < 0) {
		c->snap.records.reservations_error = c->reservations_error = strdup("unavailable: cannot send the request");
		return c->reservations_error ? c->next(c, 0, NULL) : fail(c, -ENOMEM, "out of memory");
	}
}

static void on_prices(ec2_client *e, const ec2_reply *r, const ec2xml_spot_price_history *res, void *userdata) {
	cycle *c = userdata;
	scale_price *p = NULL;
	size_t n = 0;

	c->op = NULL;
	if (r->error < 0) {
		if (asprintf(&c->prices_error, "%s %s", r->code, r->message) < 0)
			return fail(c, -ENOMEM, "out of memory");
		c->snap.records.prices_error = c->prices_error;
		return get_reserved(c);
	}
	p = c->prices = calloc(res->n_items + 1, sizeof *c->prices);
	if (!p)
		return fail(c, -ENOMEM, "out of memory");
	c->snap.records.prices = p;
	/* The first price per (type, AZ): EC2 lists the newest first. */
	for (size_t i = 0; i < res->n_items; i++) {
		const ec2_spot_price *sp = &res->items[i];
		size_t j;
		if (!sp->instance_type || !sp->availability_zone)
			continue;
		for (j = 0; j < n; j++)
			if (streq(p[j].instance_type, sp->instance_type) &&
			    streq(p[j].availability_zone, sp->availability_zone))
				break;
		if (j < n)
			continue;
		p[n] = (scale_price) { strdup(sp->instance_type), strdup(sp->availability_zone), sp->price };
		c->snap.records.n_prices = ++n;
		if (!p[j].instance_type || !p[j].availability_zone)
			return fail(c, -ENOMEM, "out of memory");
	}
	get_reserved(c);
}

static void get_prices(cycle *c) {
	_cleanup_free_ const char **types = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < c->snap.policy.n_pools; i++) {
		const scale_pool *p = &c->snap.policy.pools[i];
		if (!p->market_spot)
			continue;
		cap += p->n_instance_types;
		const char **nt = realloc(types, (cap + 1) * sizeof *nt);
		if (!nt)
			return fail(c, -ENOMEM, "out of memory");
		types = nt;
		for (size_t k = 0; k < p->n_instance_types; k++) {
			bool dup = false;
			for (size_t m = 0; m < n; m++)
				dup = dup || streq(types[m], p->instance_types[k]);
			if (!dup)
				types[n++] = p->instance_types[k];
		}
	}
	if (n == 0 || ec2_describe_spot_price_history(c->ec2, types, n, "Linux/UNIX", 0, on_prices, c, &c->op) < 0)
		get_reserved(c);
}

/* One instance as observe wants it; false when it is not the cluster's. */
static int instance_from(cycle *c, const ec2_instance *x, scale_instance *in) {
	/* The filter asked for our tag; check it anyway: only the cluster's
	 * instances are ever touched. */
	if (!streq_ptr(ec2_instance_tag(x, TAG_CLUSTER), c->cluster))
		return 0;
	*in = (scale_instance) {
		.id = strdup(x->instance_id),
		.instance_type = strdup_or_null(x->instance_type),
		.availability_zone = strdup_or_null(x->availability_zone),
		.pool = strdup_or_null(ec2_instance_tag(x, TAG_POOL)),
		.client_token = strdup_or_null(x->client_token && *x->client_token ? x->client_token : NULL),
		.image_id = strdup_or_null(x->image_id),
		.launch_template_version = strdup_or_null(x->launch_template_version),
		.spot = streq_ptr(x->lifecycle, "spot"),
		.hold = truthy(ec2_instance_tag(x, "hold")) || truthy(ec2_instance_tag(x, "corral:hold")),
		.autoscale_off = streq_ptr(ec2_instance_tag(x, "autoscale"), "off"),
		.gone = x->state.code == 32 || x->state.code == 48,
		.stopped = x->state.code == 64 || x->state.code == 80,
		.launch_time = x->launch_time,
	};
	return 1;
}

static void on_described(ec2_client *e, const ec2_reply *r, const ec2xml_describe_instances *res, void *userdata) {
	cycle *c = userdata;
	size_t n = 0;

	c->op = NULL;
	if (r->error < 0) {
		char msg[700];
		/* Without the instances nothing can be decided safely. What
		 * kind of failure it was is what scale/status says. */
		if (r->error == -EACCES && !r->code[0]) {
			c->fail_code = SCALE_STATUS_NO_CREDENTIALS;
			snprintf(msg, sizeof msg, "%s", r->message);
		} else if (r->error_class == EC2_ERROR_AUTH) {
			c->fail_code = SCALE_STATUS_EC2_DENIED;
			snprintf(msg, sizeof msg, "EC2 refused DescribeInstances: %s %s", r->code, r->message);
		} else if (r->error_class == EC2_ERROR_RETRYABLE || r->error != -EREMOTEIO) {
			c->fail_code = SCALE_STATUS_EC2_UNREACHABLE;
			snprintf(msg, sizeof msg, "EC2 unreachable: DescribeInstances: %s%s%s", r->code,
				 r->code[0] ? " " : "", r->message);
		} else
			snprintf(msg, sizeof msg, "DescribeInstances: %s %s", r->code, r->message);
		return fail(c, r->error, msg);
	}
	for (size_t i = 0; i < res->n_reservations; i++)
		n += res->reservations[i].n_instances;
	c->insts = calloc(n + 1, sizeof *c->insts);
	c->adopted = calloc(n + 1, sizeof *c->adopted);
	if (!c->insts || !c->adopted)
		return fail(c, -ENOMEM, "out of memory");
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t k = 0; k < res->reservations[i].n_instances; k++) {
			if (instance_from(c, &res->reservations[i].instances[k], &c->insts[c->n_insts]) == 0)
				continue;
			if (!c->insts[c->n_insts++].id)
				return fail(c, -ENOMEM, "out of memory");
		}
	c->snap.records.have_instances = true;
	c->snap.records.instances = c->insts;
	c->snap.records.n_instances = c->n_insts;
	/* Spot prices and reservations feed decisions, not the hosts' view:
	 * corralctl hosts does not wait for them (nor for their retries). */
	if (c->observe_only)
		return c->next(c, 0, NULL);
	get_prices(c);
}

static void describe(cycle *c) {
	const char *const values[] = { c->cluster };
	const ec2_filter f[] = { { "tag:" TAG_CLUSTER, values, 1 } };
	int r;

	r = ec2_describe_instances(c->ec2, f, 1, 0, on_described, c, &c->op);
	if (r < 0)
		fail(c, r, "cannot send DescribeInstances");
}

/* ---- etcd ---- */

static void on_read(etcd_client *e, etcd_response *resp, void *userdata) {
	cycle *c = userdata;
	scale_error err = {};
	char buf[512];
	int r;

	c->call = NULL;
	if (resp->error.code < 0) {
		_cleanup_(etcd_response_freep) etcd_response *gone = resp;
		c->fail_code = SCALE_STATUS_ETCD;
		return fail(c, resp->error.code, etcd_error_format(&resp->error, buf, sizeof buf));
	}
	r = scaler_snapshot_take(&c->snap, c->prefix, resp, &err);
	if (r == -ENOMEM)
		return fail(c, r, "out of memory");
	if (r < 0) {
		c->fail_code = SCALE_STATUS_POLICY_INVALID;
		snprintf(buf, sizeof buf, "invalid scale/policy: %s", err.message);
		return fail(c, -EINVAL, buf);
	}
	if (!c->snap.have_policy && !c->observe_only) {
		c->fail_code = SCALE_STATUS_NO_POLICY;
		return fail(c, -ENOENT, "no scale/policy: nothing to do");
	}
	if (!c->ec2) {
		c->fail_code = c->no_ec2_code;
		return fail(c, -ENXIO, c->no_ec2_reason);
	}
	describe(c);
}

void gather_start(cycle *c) {
	_cleanup_(scaler_snapshot_request_done) scaler_snapshot_req req = {};
	int r;

	r = scaler_snapshot_request(&req, c->prefix);
	if (r >= 0)
		r = etcd_txn(c->etcd, &req.txn, on_read, c, &c->call);
	if (r < 0)
		fail(c, r, "cannot read etcd");
}
