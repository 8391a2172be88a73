/* staged.c — the rules of a staged config rollout (docs/upgrades.md,
 * "Staged config rollout: the leader"): a plan whose target is a config
 * snapshot alone. Nothing is prepared and there are no batches: pending ->
 * canary (the canaries are pinned to the candidate) -> canary_bake ->
 * promotion (the fenced CAS of `current` to the candidate, ROLLOUT_PROMOTE)
 * -> final_bake (the pins go: every node follows `current`) -> succeeded.
 * Until promotion, a `current` that moved off the candidate's base asks for
 * a rebase (ROLLOUT_REBASE); the caller makes it and decides again with
 * the result in the input. Called from phases.c; pure like the rest. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

static int set_str(char **dst, const char *src) {
	char *s = rollout_strdup_or_null(src);

	if (src && !s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* pending -> canary: the candidate is the plan's snapshot, made on its
 * config_base (or on `current` when the plan names none). No canary
 * asked for: straight to the promotion point (bake over, gate, promotion). */
static int staged_start(dctx *d) {
	rollout_state *s = d->s;
	const rollout_plan *p = d->plan;
	char why[192];

	if (set_str(&s->candidate, p->target.config) < 0 ||
	    set_str(&s->candidate_base, p->config_base ? p->config_base : d->in->current) < 0)
		return -ENOMEM;
	s->started = d->now;
	s->rebases = 0;
	s->promoted = 0;
	snprintf(why, sizeof why, "started: config %s (made on %s)", s->candidate,
		 s->candidate_base ? s->candidate_base : "nothing");
	if (p->canary_nodes > 0)
		return decide_set_phase(d, ROLLOUT_CANARY, why);
	s->bake_until = d->now;
	return decide_set_phase(d, ROLLOUT_CANARY_BAKE, why);
}

static bool before_promotion(const rollout_state *s) {
	rollout_phase ph = s->phase == ROLLOUT_PAUSED ? s->paused_from : s->phase;

	return s->candidate && !s->promoted && !rollout_phase_terminal(s->phase) && ph != ROLLOUT_PENDING &&
	       ph != ROLLOUT_ROLLING_BACK;
}

/* The rebase, before the phase's rules: 2 when one is asked for (the
 * output is that request alone), 1 when the plan failed (a conflict), 0
 * when the candidate stands on `current` (a result in the input adopted). */
static int staged_rebase(dctx *d) {
	const rollout_input *in = d->in;
	rollout_state *s = d->s;
	char why[400];

	if (!before_promotion(s))
		return 0;
	if (in->rebase_error) {
		snprintf(why, sizeof why, "rebase: %s", in->rebase_error);
		return fail_plan(d, why);
	}
	if (in->rebased && in->rebased_base && !streq_ptr(in->rebased_base, s->candidate_base)) {
		if (set_str(&s->candidate, in->rebased) < 0 || set_str(&s->candidate_base, in->rebased_base) < 0)
			return -ENOMEM;
		s->rebases++;
	}
	if (!in->current || streq_ptr(in->current, s->candidate_base))
		return 0;
	for (size_t i = 0; i < d->out->n_actions; i++)
		rollout_order_done(&d->out->actions[i].order);
	d->out->n_actions = 0;
	d->gate_requested = true;
	decide_waiting(d, "rebase of %s on %s", s->candidate, in->current);
	if (decide_plan_action(d, ROLLOUT_REBASE, "rebase %s (made on %s) on %s", s->candidate,
			       s->candidate_base ? s->candidate_base : "nothing", in->current) < 0)
		return -ENOMEM;
	return 2;
}

/* The canaries: counted, and an order on an older candidate (a rebase)
 * re-issued on the latest one, in the same generation: a config order has
 * no once steps to repeat, and the bake's stored end stands. A canary
 * counts as done only on the latest candidate (eval_order compares the
 * progress's config with its order's). */
static int tend_canaries(dctx *d, int *n_can, int *n_done, const nctx **wait) {
	const char *cand = d->s->candidate;
	int r;

	*n_can = *n_done = 0;
	*wait = NULL;
	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		if (!nc->o || nc->o->verb != ROLLOUT_UPGRADE || nc->o->role != ROLLOUT_ROLE_CANARY)
			continue;
		(*n_can)++;
		if (!streq_ptr(nc->o->target.config, cand)) {
			rollout_order o = *nc->o;
			o.target = (rollout_target) { .config = (char *) cand };
			o.issued = d->now;
			if (!nc->ordered && (r = decide_issue(d, nc, &o)) < 0)
				return r;
		} else if (nc->st == NS_DONE) {
			(*n_done)++;
			continue;
		}
		if (!*wait)
			*wait = nc;
	}
	return 0;
}

static int staged_canary(dctx *d) {
	const nctx *wait;
	rollout_target from = { .config = (char *) d->in->current };
	rollout_target to = { .config = d->s->candidate };
	char why[192];
	int n_can, n_done, taken = 0, r;

	if ((r = check_upgrades(d)) != 0 || (r = tend_canaries(d, &n_can, &n_done, &wait)) < 0)
		return r;
	if (n_can > 0 && n_done == n_can) {
		d->s->bake_until = d->now + d->plan->canary_bake;
		snprintf(why, sizeof why, "%d canar%s healthy on %s", n_can, n_can == 1 ? "y" : "ies", d->s->candidate);
		return decide_set_phase(d, ROLLOUT_CANARY_BAKE, why);
	}
	if (wait) {
		if (!d->out->n_actions)
			wait_for_node(d, wait);
		else
			decide_waiting(d, "canaries: the rebased candidate %s", d->s->candidate);
		return 0;
	}
	if (!window_open(d))
		return 0;
	for (size_t i = 0; i < d->n && taken < d->plan->canary_nodes; i++) {
		nctx *nc = &d->nodes[i];
		if (nc->o || !nc->eligible || !nc->healthy || nc->busy || nc->ordered)
			continue;
		if ((r = decide_order(d, nc, ROLLOUT_UPGRADE, ROLLOUT_ROLE_CANARY, 0, &to, &from, false)) < 0)
			return r;
		taken++;
	}
	if (!taken) {
		/* nobody to pin (all held, none registered): the promotion
		 * point at once, still behind the gate and promotion */
		d->s->bake_until = d->now;
		return decide_set_phase(d, ROLLOUT_CANARY_BAKE, "no canary candidate");
	}
	d->s->progress_at = d->now;
	decide_waiting(d, "canary: %d node%s started on %s", taken, taken == 1 ? "" : "s", d->s->candidate);
	return 0;
}

/* The CAS of `current` to the candidate (carried out with the state, in
 * one fenced txn that compares current's mod_revision), then the final
 * bake. */
static int promote(dctx *d, const char *why) {
	const rollout_plan *p = d->plan;
	rollout_state *s = d->s;
	int r;

	s->promoted = d->now;
	s->bake_until = d->now + (p->final_bake < 0 ? p->canary_bake : p->final_bake);
	if ((r = decide_plan_action(d, ROLLOUT_PROMOTE, "promote: current %s -> %s",
				    d->in->current ? d->in->current : "-", s->candidate)) < 0)
		return r;
	return decide_set_phase(d, ROLLOUT_FINAL_BAKE, why);
}

/* After the promotion was stored (the state says so: it was written in
 * the promotion's txn), the canaries' pins go: FINISH orders. */
static int unpin(dctx *d) {
	int r;

	if (!d->in->state->promoted)
		return 0;
	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		if (!nc->o || nc->o->verb != ROLLOUT_UPGRADE || nc->ordered)
			continue;
		if ((r = finish_order(d, nc, nc->o, nc->p != NULL, false)) < 0)
			return r;
	}
	return 0;
}

static int staged_bake(dctx *d, bool final) {
	const nctx *wait = NULL;
	int n_can = 0, n_done = 0, r;

	if ((r = check_upgrades(d)) != 0)
		return r;
	r = final ? unpin(d) : tend_canaries(d, &n_can, &n_done, &wait);
	if (r < 0)
		return r;
	if (wait && d->now >= d->s->bake_until) {
		/* a rebase does not restart the bake, but promotion waits for
		 * the canaries on the latest candidate */
		wait_for_node(d, wait);
		return 0;
	}
	return bake_over(d, final, promote);
}

/* Paused at the promotion point: a promotion promotes, once the canaries
 * are done on the latest candidate (a rebase while paused re-pins them).
 * Other pauses are the common rules'. */
static int staged_paused(dctx *d) {
	const nctx *wait;
	rollout_state *s = d->s;
	int n_can, n_done, r;

	if (s->paused_from != ROLLOUT_CANARY_BAKE || (s->pause != ROLLOUT_PAUSE_PROMOTION && s->pause != ROLLOUT_PAUSE_GATE))
		return step_paused(d);
	if ((r = check_upgrades(d)) != 0 || (r = tend_canaries(d, &n_can, &n_done, &wait)) < 0)
		return r;
	if (wait) {
		wait_for_node(d, wait);
		return 0;
	}
	if (take_promotion(d))
		return promote(d, "promoted by operator");
	decide_waiting(d, s->pause == ROLLOUT_PAUSE_GATE ? "promote or abort (gate inconclusive)" : "promotion");
	return 0;
}

static int staged_pending(dctx *d) {
	return pending_due(d) ? staged_start(d) : 0;
}

static int staged_canary_bake(dctx *d) {
	return staged_bake(d, false);
}

static int staged_final_bake(dctx *d) {
	return staged_bake(d, true);
}

/* The rebase first, then the phase's rule; no preparing, no batches. */
const decide_rules decide_rules_staged = {
	.pre = staged_rebase,
	.phase = {
		[ROLLOUT_PENDING] = staged_pending,
		[ROLLOUT_CANARY] = staged_canary,
		[ROLLOUT_CANARY_BAKE] = staged_canary_bake,
		[ROLLOUT_FINAL_BAKE] = staged_final_bake,
		[ROLLOUT_PAUSED] = staged_paused,
		[ROLLOUT_ROLLING_BACK] = step_rolling_back,
	},
};
