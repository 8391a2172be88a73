/* relaunch.c — the orders of replace by relaunch, for the phases
 * (phases.c): a replaced node's order (verb upgrade, the numbered version
 * to launch; nothing runs on the node, the leader's scaler carries it
 * out), the launch template version an AMI target needs first, and what
 * the plan says it waits for. The rules themselves are in replace.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

/* ---- orders ---------------------------------------------------------------------------- */

static bool version_ok(const char *v) {
	if (!v || !*v || strlen(v) > 18)
		return false;
	for (const char *c = v; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return v[0] != '0';
}

/* The order for the batch: the state's numbered version (the plan's, or
 * the one made of its AMI); from: what the host runs, for the way back. */
int replace_order(dctx *d, nctx *nc, rollout_role role, int batch) {
	rollout_target to = { .launch_template_version = d->s->launch_template_version, .ami = d->plan->target.ami };
	rollout_target from = {
		.launch_template_version = version_ok(nc->n->launch_template_version)
		                                   ? (char *) nc->n->launch_template_version : NULL,
		.ami = nc->n->image_id && strncmp(nc->n->image_id, "ami-", 4) == 0 ? (char *) nc->n->image_id : NULL,
	};
	return decide_order(d, nc, ROLLOUT_UPGRADE, role, batch, &to, &from, false);
}

/* An AMI target needs its launch template version before any order: asks
 * the caller to make it (1: asked, the caller returns without a step), or
 * takes the one the caller made (0). */
int replace_version(dctx *d) {
	rollout_state *s = d->s;

	if (s->launch_template_version || !d->plan->target.ami)
		return 0;
	if (d->in->created_version) {
		if (!(s->launch_template_version = strdup(d->in->created_version)))
			return -ENOMEM;
		return 0;
	}
	for (size_t i = 0; i < d->out->n_actions; i++)
		rollout_order_done(&d->out->actions[i].order);
	d->out->n_actions = 0;
	d->gate_requested = true;       /* like the gate: nothing else is carried out */
	decide_waiting(d, "launch template version of %s", d->plan->target.ami);
	int r = decide_plan_action(d, ROLLOUT_CREATE_VERSION, "create launch template version of %s",
				   d->plan->target.ami);
	return r < 0 ? r : 1;
}

/* What the plan waits for on a replaced node. */
void replace_wait(dctx *d, const nctx *nc) {
	const rollout_node *n = nc->n;
	char who[96], t[32];

	decide_describe(d, nc, who, sizeof who);
	if (nc->o->verb == ROLLOUT_ROLLBACK)
		decide_waiting(d, "%s: %s", who,
			       n->replacement && !n->replacement_draining ? "draining its replacement" : "undrain");
	else if (!n->replacement)
		decide_waiting(d, "%s: replacement to launch", who);
	else if (!n->replacement_ready)
		decide_waiting(d, "%s: replacement %s launching", who, n->replacement);
	else if (!n->replacement_healthy)
		decide_waiting(d, "%s: replacement %s unhealthy", who, n->replacement);
	else if (d->now < n->replacement_ready + d->plan->min_healthy_time)
		decide_waiting(d, "%s: replacement %s healthy until %s", who, n->replacement,
			       rollout_format_time(t, sizeof t, n->replacement_ready + d->plan->min_healthy_time));
	else
		decide_waiting(d, "%s: old host to drain", who);
}

