/* version.c — the I/O behind ROLLOUT_CREATE_VERSION (replace by relaunch
 * with an AMI target): read scale/policy for the plan's pool's launch
 * template, then CreateLaunchTemplateVersion from the version the pool
 * runs now (SourceVersion: upgrade/stable's number, else "$Default") with
 * ImageId = the AMI and a ClientToken from plan id + generation, so a
 * successor leader that asks again gets the same version back. The loop
 * (loop.c) hands the number to the next decision, which stores it in
 * upgrade/state (fenced). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "rollout-version.h"
#include "scale-observe.h"

struct rollout_version_op {
	etcd_client *etcd;
	ec2_client *ec2;
	char *policy_key, *pool, *ami, *source, *plan;
	int64_t generation;
	etcd_call *call;
	ec2_op *op;
	rollout_version_cb cb;
	void *userdata;
};

rollout_version_op *rollout_version_free(rollout_version_op *v) {
	if (!v)
		return NULL;
	etcd_call_cancel(v->call);
	ec2_op_cancel(v->op);
	free(v->policy_key);
	free(v->pool);
	free(v->ami);
	free(v->source);
	free(v->plan);
	free(v);
	return NULL;
}

/* Reports once; the callback owns v from then on (frees it). */
static void report(rollout_version_op *v, int error, const char *version, const char *why) {
	v->call = NULL;
	v->op = NULL;
	v->cb(v, error, version, why, v->userdata);
}

static void on_created(ec2_client *c, const ec2_reply *r, const ec2xml_launch_template_version *res,
		       void *userdata) {
	rollout_version_op *v = userdata;
	char why[1024];

	v->op = NULL;
	if (r->error < 0) {
		snprintf(why, sizeof why, "CreateLaunchTemplateVersion: %s %s", r->code, r->message);
		return report(v, r->error, NULL, why);
	}
	snprintf(why, sizeof why, "launch template %s version %s of %s", res->launch_template_id ?: "?",
		 res->version_number, v->ami);
	report(v, 0, res->version_number, why);
}

static void on_policy(etcd_client *e, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *rp = resp;
	_cleanup_(scale_policy_done) scale_policy policy = {};
	rollout_version_op *v = userdata;
	scale_error err;
	char why[1024], token[65];
	int k;

	v->call = NULL;
	if (rp->error.code < 0)
		return report(v, rp->error.code, NULL, "cannot read scale/policy");
	if (rp->n_kvs == 0)
		return report(v, -ENOENT, NULL, "no scale/policy: no launch template to make a version of");
	k = scale_observe_policy(rp->kvs[0].value, rp->kvs[0].value_len, &policy, &err);
	if (k < 0)
		return report(v, k, NULL, err.message);
	const scale_pool *p = scale_policy_find(&policy, v->pool);
	if (!p || !p->launch_template) {
		snprintf(why, sizeof why, "pool %s has no launch template in scale/policy", v->pool);
		return report(v, -ENOENT, NULL, why);
	}
	bool by_id = strncmp(p->launch_template, "lt-", 3) == 0;
	rollout_version_token(v->plan, v->generation, token);
	ec2_template_version tv = {
		.launch_template_id = by_id ? p->launch_template : NULL,
		.launch_template_name = by_id ? NULL : p->launch_template,
		.source_version = v->source,
		.image_id = v->ami,
		.client_token = token,
	};
	k = ec2_create_launch_template_version(v->ec2, &tv, on_created, v, &v->op);
	if (k < 0)
		report(v, k, NULL, "cannot send CreateLaunchTemplateVersion");
}

int rollout_version_start(rollout_version_op **out, etcd_client *etcd, ec2_client *ec2, const char *prefix,
			  const rollout_plan *plan, const rollout_state *state, rollout_version_cb cb,
			  void *userdata) {
	_cleanup_(rollout_version_freep) rollout_version_op *v = NULL;
	const char *src = state->previous.launch_template_version;

	if (!etcd || !ec2 || !plan || !plan->target.ami || plan->n_pools != 1 || !cb)
		return -EINVAL;
	v = calloc(1, sizeof *v);
	if (!v)
		return -ENOMEM;
	*v = (rollout_version_op) { .etcd = etcd, .ec2 = ec2, .generation = state->generation, .cb = cb,
		                    .userdata = userdata };
	v->policy_key = keys_one_of(prefix, KEYS_SCALE_POLICY);
	v->pool = strdup(plan->pools[0]);
	v->ami = strdup(plan->target.ami);
	v->source = strdup(src ?: "$Default");
	v->plan = strdup(plan->id);
	if (!v->policy_key || !v->pool || !v->ami || !v->source || !v->plan)
		return -ENOMEM;
	etcd_range_req req = { .key = v->policy_key };
	int k = etcd_range(etcd, &req, on_policy, v, &v->call);
	if (k < 0)
		return k;
	*out = TAKE_PTR(v);
	return 0;
}
