/* view.c — observe without deciding (scaler.h, scaler_view_once): the
 * fleet as the leader sees it, for `corralctl hosts`. With an EC2 client
 * it is a cycle's gather (gather.c) stopped before the decision, so the
 * CLI and the leader read the same keys and ask EC2 the same
 * DescribeInstances (not the spot prices and reservations, which only the
 * decision needs); without one, the etcd half alone (snapshot.c). Either way the records go
 * through the same scale_observe(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cycle.h"

typedef struct view {
	scaler_view_fn fn;
	void *userdata;
	bool done;
	int error;
	char *why;                      /* the caller's buffer, 512 bytes */
} view;

/* observe with an empty policy standing in when none is stored */
static int observe_and_call(view *v, scaler_snapshot *snap, scale_observed *obs) {
	int r;

	if (!snap->have_policy)
		snap->records.policy = &snap->policy;
	r = scale_observe(&snap->records, obs);
	if (r < 0)
		return r;
	v->fn(&snap->records, obs, v->userdata);
	return 0;
}

static void gathered(cycle *c, int error, const char *why) {
	view *v = c->owner;

	v->done = true;
	if (error >= 0)
		error = observe_and_call(v, &c->snap, &c->obs);
	v->error = error < 0 ? error : 0;
	if (error < 0)
		snprintf(v->why, 512, "%s", why ?: "");
}

static int view_with_ec2(view *v, etcd_client *etcd, ec2_client *ec2, const char *prefix, const char *cluster,
			 time_t now, int64_t grace) {
	_cleanup_(cycle_freep) cycle *c = calloc(1, sizeof *c);
	sd_event *event = etcd_client_event(etcd);
	int r;

	if (!c)
		return -ENOMEM;
	*c = (cycle) { .etcd = etcd, .ec2 = ec2, .prefix = prefix, .cluster = cluster, .grace = grace,
		       .observe_only = true, .now = now, .next = gathered, .owner = v };
	c->snap.records = (scale_records) { .cluster = cluster, .now = now, .launch_grace = grace };
	gather_start(c);
	while (!v->done) {
		r = sd_event_run(event, UINT64_MAX);
		if (r < 0) {
			if (c->call)
				etcd_call_cancel(c->call);
			if (c->op)
				ec2_op_cancel(c->op);
			return r;
		}
	}
	return v->error;
}

int scaler_view_once(etcd_client *etcd, ec2_client *ec2, const char *prefix, const char *cluster, time_t now,
		     int64_t launch_grace_sec, scaler_view_fn fn, void *userdata, char why[static 512]) {
	view v = { .fn = fn, .userdata = userdata, .why = why };
	int64_t grace = launch_grace_sec > 0 ? launch_grace_sec : 300;
	scale_error err = {};
	int r;

	why[0] = '\0';
	if (!etcd || !prefix || !cluster || !fn || now <= 0)
		return -EINVAL;
	if (ec2)
		return view_with_ec2(&v, etcd, ec2, prefix, cluster, now, grace);

	_cleanup_(scaler_snapshot_done) scaler_snapshot snap = {};
	_cleanup_(scale_observed_done) scale_observed obs = {};
	r = scaler_snapshot_read(etcd, prefix, &snap, &err);
	if (r < 0) {
		snprintf(why, 512, "%s", err.message);
		return r;
	}
	snap.records.cluster = cluster;
	snap.records.now = now;
	snap.records.launch_grace = grace;
	return observe_and_call(&v, &snap, &obs);
}
