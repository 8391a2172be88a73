/* replace.c — the scaler's half of replace by relaunch (docs/upgrades.md,
 * "Replace by relaunch"; the rollout's half is src/rollout/replace.c): the
 * rollout names the old hosts of a batch (their nodes' upgrade orders with
 * a numbered launch template version), the scaler, the one owner of EC2
 * actions, carries it out within one pool's decision:
 *
 *   upgrade   no replacement yet: launch one (the order's version, its
 *             deterministic ClientToken, "replaces" the old host), beyond
 *             the pool's size while max_surge and the pool's max allow,
 *             else drain the old host first (it stops counting, the
 *             replacement takes its place); replacement ready (and its
 *             status not failed) for the plan's min_healthy_time: drain
 *             the old host (wind-down hook,
 *             ready_to_stop as ever); old host
 *             drained, no jobs: terminated, unless keep_old_until_bake
 *             (then when the plan ends, by the ordinary drained rule);
 *   rollback  the replacement drains (or is terminated while launching),
 *             the old host is undrained: no launch.
 *
 * Held hosts are never touched (the rollout skips and reports them). New
 * capacity of the plan's pool launches on the rollout's version. */
#include <errno.h>
#include <string.h>

#include "scale-internal.h"

static hv *replacement_of(hv *hs, size_t n, const char *id) {
	hv *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (streq_ptr(hs[i].h->replaces, id) && scale_live(hs[i].eff) &&
		    (!best || (hs[i].eff == SCALE_READY && best->eff != SCALE_READY)))
			best = &hs[i];
	return best;
}

static const scale_subnet *subnet_for(const scale_pool *p, const scale_host *old) {
	for (size_t i = 0; i < p->n_subnets; i++)
		if (old->availability_zone && streq_ptr(p->subnets[i].availability_zone, old->availability_zone))
			return &p->subnets[i];
	return p->n_subnets ? &p->subnets[0] : NULL;
}

static int launch_for(ctx *c, const scale_pool *p, const hv *old) {
	const scale_host *h = old->h;
	const scale_subnet *sn = subnet_for(p, h);
	scale_action *a = scale_actions_add(&c->acts, SCALE_ACTION_LAUNCH, p->name);

	if (!a)
		return -ENOMEM;
	a->launch_template = p->launch_template;
	a->instance_type = h->instance_type ?: (p->n_instance_types ? p->instance_types[0] : NULL);
	a->market = h->market;
	a->subnet = sn ? sn->id : NULL;
	a->availability_zone = sn ? sn->availability_zone : NULL;
	a->count = 1;
	a->why = "replace";
	a->from = a->to = SCALE_LAUNCHING;
	a->launch_template_version = h->replace_version;
	a->image_id = h->replace_image;
	a->replaces = h->id;
	memcpy(a->client_token, h->replace_token, sizeof a->client_token);
	return 0;
}

/* Replacements launched beyond the pool's size: their old host still serves. */
static int surge_in_use(hv *hs, size_t n) {
	int used = 0;

	for (size_t i = 0; i < n; i++) {
		if (!hs[i].h->replaces || !scale_live(hs[i].eff) || hs[i].eff == SCALE_DRAINING)
			continue;
		for (size_t j = 0; j < n; j++)
			if (streq_ptr(hs[j].h->id, hs[i].h->replaces) && hs[j].eff == SCALE_READY &&
			    hs[j].h->replace == SCALE_REPLACE_UPGRADE)
				used++;
	}
	return used;
}

static bool drained_out(const hv *x) {
	return x->eff == SCALE_DRAINING && !x->changed && !x->acted && x->h->jobs == 0 && !x->h->winding_down;
}

static int upgrade_one(ctx *c, const scale_pool *p, hv *hs, size_t n, hv *old, int *surge, int *active,
		       scale_metrics *m) {
	const scale_rollout *ro = c->in->rollout;
	hv *rep = replacement_of(hs, n, old->h->id);
	int r;

	if (!rep) {
		if (!old->h->replace_version || !scale_live(old->eff))
			return 0;
		bool room = *surge < (ro ? ro->max_surge : 0) && *active < p->max;
		if (!room && old->eff == SCALE_READY) {
			/* no surge: the old host goes first, within the batch */
			if ((r = scale_host_action(c, SCALE_ACTION_DRAIN, old, SCALE_DRAINING, "replace: drain first (no surge)")) < 0)
				return r;
			m->drained++;
		} else if (room) {
			(*surge)++;
			(*active)++;
		}
		if ((r = launch_for(c, p, old)) < 0)
			return r;
		m->replaced++;
		return 1;
	}
	bool proven = rep->eff == SCALE_READY && !rep->changed && !rep->h->status_failed &&
	              c->in->now - rep->h->state_since >= (ro ? ro->min_healthy_time : 0);
	if (proven && old->eff == SCALE_READY) {
		if ((r = scale_host_action(c, SCALE_ACTION_DRAIN, old, SCALE_DRAINING, "replaced")) < 0)
			return r;
		m->drained++;
	} else if (proven && drained_out(old) && !(ro && ro->keep_old)) {
		if ((r = scale_host_action(c, SCALE_ACTION_TERMINATE, old, SCALE_TERMINATING, "replaced")) < 0)
			return r;
		old->acted = true;
		m->terminated++;
	}
	return 0;
}

static int rollback_one(ctx *c, hv *hs, size_t n, hv *old, scale_metrics *m) {
	hv *rep = replacement_of(hs, n, old->h->id);
	int r = 0;

	if (rep && !rep->h->hold && !rep->changed) {
		if (rep->eff == SCALE_READY || rep->eff == SCALE_UNHEALTHY) {
			r = scale_host_action(c, SCALE_ACTION_DRAIN, rep, SCALE_DRAINING, "rollback: replacement");
			m->drained += r >= 0;
		} else if (rep->eff == SCALE_LAUNCHING || drained_out(rep)) {
			r = scale_host_action(c, SCALE_ACTION_TERMINATE, rep, SCALE_TERMINATING, "rollback: replacement");
			rep->acted = true;
			m->terminated += r >= 0;
		}
	}
	if (r >= 0 && old->eff == SCALE_DRAINING && !old->changed && !old->interrupted) {
		r = scale_host_action(c, SCALE_ACTION_UNDRAIN, old, SCALE_READY, "rollback: old host back");
		old->acted = true;
		m->undrained += r >= 0;
	}
	return r < 0 ? r : 0;
}

int scale_replace_extra(const hv *hs, size_t n) {
	int extra = 0;

	for (size_t i = 0; i < n; i++) {
		if (!hs[i].h->replaces || hs[i].eff != SCALE_READY)
			continue;
		for (size_t j = 0; j < n; j++)
			if (streq_ptr(hs[j].h->id, hs[i].h->replaces) && hs[j].eff == SCALE_READY)
				extra++;
	}
	return extra;
}

int scale_replace_step(ctx *c, const scale_pool *p, hv *hs, size_t n, scale_metrics *m) {
	int surge = surge_in_use(hs, n), active = 0, launched = 0, r;

	if (c->in->stop)
		return 0;
	for (size_t i = 0; i < n; i++)
		active += (hs[i].eff == SCALE_READY || hs[i].eff == SCALE_LAUNCHING) && !hs[i].interrupted &&
		          !hs[i].dead;
	for (size_t i = 0; i < n; i++) {
		hv *x = &hs[i];
		if (x->h->replace == SCALE_REPLACE_NONE || x->h->hold)
			continue;
		m->replacing++;
		if (x->h->replace == SCALE_REPLACE_UPGRADE)
			r = upgrade_one(c, p, hs, n, x, &surge, &active, m);
		else
			r = rollback_one(c, hs, n, x, m);
		if (r < 0)
			return r;
		launched += r;
	}
	return launched;
}

void scale_replace_versions(ctx *c, const scale_pool *p, size_t first) {
	const scale_rollout *ro = c->in->rollout;

	if (!ro || !ro->launch_template_version || !streq_ptr(ro->pool, p->name))
		return;
	for (size_t i = first; i < c->acts.n; i++)
		if (c->acts.v[i].kind == SCALE_ACTION_LAUNCH && !c->acts.v[i].launch_template_version) {
			c->acts.v[i].launch_template_version = ro->launch_template_version;
			c->acts.v[i].image_id = ro->image_id;
		}
}
