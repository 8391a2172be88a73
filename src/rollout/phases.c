/* phases.c — the rules of each phase of a rollout (decide_step), on the
 * nodes decide.c classified: one function per phase, each either waiting
 * (0: it says what for, and when to look again) or changing the phase (1:
 * the caller classifies again and runs the next phase's step). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

/* ---- shared pieces (staged.c uses them too: decide.h) ------------------------------- */

/* Nodes to take back: none once a staged config is promoted (`current`
 * is the candidate; going back is `corralctl config rollback`). */
static bool can_roll_back(const dctx *d) {
	return decide_changed_count(d) > 0 && !d->s->promoted;
}

int fail_plan(dctx *d, const char *reason) {
	rollout_phase at = d->s->phase == ROLLOUT_PAUSED ? d->s->paused_from : d->s->phase;

	if (at != ROLLOUT_ROLLING_BACK && d->plan->auto_rollback && can_roll_back(d))
		return decide_set_phase(d, ROLLOUT_ROLLING_BACK, reason);
	/* in failed, paused_from says where it failed: a plan whose
	 * rollback failed is not rolled back again by control.rollback */
	d->s->paused_from = at;
	return decide_set_phase(d, ROLLOUT_FAILED, reason);
}

int succeed(dctx *d, const char *reason) {
	const rollout_target *t = &d->plan->target;
	const char *what = d->s->candidate && t->config ? d->s->candidate
	                                                : t->image ?: t->config ?: t->ami ?: t->launch_template_version ?: "-";
	int r = decide_plan_action(d, ROLLOUT_SET_STABLE, "set stable: %s", what);
	return r < 0 ? r : decide_set_phase(d, ROLLOUT_SUCCEEDED, reason);
}

int pause_plan(dctx *d, rollout_pause why, const char *reason) {
	rollout_phase from = d->s->phase;
	int r = decide_set_phase(d, ROLLOUT_PAUSED, reason);
	d->s->pause = why;
	d->s->paused_from = from;
	return r;
}

void wait_for_node(dctx *d, const nctx *nc) {
	char who[96], t[32];
	const rollout_progress *p = nc->p;

	if (rollout_order_replaces(nc->o))
		return replace_wait(d, nc);
	decide_describe(d, nc, who, sizeof who);
	if (nc->o->verb == ROLLOUT_PREPARE)
		snprintf(who, sizeof who, "node %s (prepare)", nc->n->id);
	if (!p)
		decide_waiting(d, "%s: no progress yet", who);
	else if (p->state == ROLLOUT_STEP_DONE)
		decide_waiting(d, "%s: healthy until %s", who,
			       rollout_format_time(t, sizeof t, p->finished + d->plan->min_healthy_time));
	else
		decide_waiting(d, "%s: step %d (%s)", who, p->step + 1, p->step_name ? p->step_name : "?");
}

/* The first failed upgrade fails the plan: "canary n1 failed at step 4
 * (health): exit 1". */
int check_upgrades(dctx *d) {
	char who[96], reason[300];

	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (!nc->o || nc->o->verb != ROLLOUT_UPGRADE || nc->st != NS_FAILED)
			continue;
		decide_describe(d, nc, who, sizeof who);
		snprintf(reason, sizeof reason, "%s failed%s%s", who, strncmp(nc->fail, "at ", 3) == 0 ? " " : ": ",
			 nc->fail);
		return fail_plan(d, reason);
	}
	return 0;
}

/* An in-place order (prepare or upgrade) to the plan's image; a plan that
 * also replaces hosts gives the nodes it keeps the image alone. */
static int in_place(dctx *d, nctx *nc, rollout_verb verb, rollout_role role, int batch) {
	rollout_target from = { .image = (char *) nc->n->image };
	rollout_target image = { .image = d->plan->target.image };

	return decide_order(d, nc, verb, role, batch, d->both ? &image : &d->plan->target, &from, false);
}

/* Eligible nodes with no order of this generation get a PREPARE (nodes
 * that joined late too); a failed prepare fails the plan when
 * prepare_blocks, else the node is skipped (it keeps its order). */
static int tend_prepares(dctx *d, bool issue, int *running) {
	char reason[300];
	int r;

	*running = 0;
	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		if (nc->o && nc->o->verb == ROLLOUT_PREPARE) {
			if (nc->st == NS_FAILED && d->plan->prepare_blocks) {
				snprintf(reason, sizeof reason, "prepare failed on %s: %s", nc->n->id, nc->fail);
				return fail_plan(d, reason);
			}
			*running += nc->st == NS_RUNNING;
		} else if (!nc->o && issue && nc->eligible && !nc->busy && !nc->ordered && !nc->replace) {
			if ((r = in_place(d, nc, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0)) < 0)
				return r;
			(*running)++;
		}
	}
	return 0;
}

/* Canary and batch starts happen inside the plan's windows only. */
bool window_open(dctx *d) {
	char t[32];

	if (rollout_in_windows(d->plan->windows, d->plan->n_windows, d->now))
		return true;
	time_t next = rollout_next_window(d->plan->windows, d->plan->n_windows, d->now);
	decide_waiting(d, "window %s", next ? rollout_format_time(t, sizeof t, next) : "never (no day set)");
	decide_wake(d, next);
	d->window_wait = true;
	return false;
}

/* The gate's verdict at a bake's end: no gate_command is a pass; without
 * a verdict yet the output is RUN_GATE alone. */
rollout_gate gate_result(dctx *d) {
	rollout_state *s = d->s;

	if (!d->plan->gate_command)
		return ROLLOUT_GATE_PASS;
	if (d->in->gate != ROLLOUT_GATE_NONE) {
		s->gate = d->in->gate;
		s->gate_at = d->now;
		return s->gate;
	}
	if (s->gate != ROLLOUT_GATE_NONE)
		return s->gate;
	for (size_t i = 0; i < d->out->n_actions; i++)
		rollout_order_done(&d->out->actions[i].order);
	d->out->n_actions = 0;
	d->gate_requested = true;
	decide_waiting(d, "gate");
	if (decide_plan_action(d, ROLLOUT_RUN_GATE, "run gate: %s", d->plan->gate_command) < 0)
		return _ROLLOUT_GATE_MAX;
	return ROLLOUT_GATE_NONE;
}

static bool candidate(const nctx *nc) {
	if (nc->replace)        /* nothing to prepare: a host is replaced, not changed */
		return !nc->o && nc->eligible && !nc->busy && !nc->ordered;
	return nc->o && nc->o->verb == ROLLOUT_PREPARE && nc->st == NS_DONE && nc->eligible && !nc->ordered;
}

static int upgrade(dctx *d, nctx *nc, rollout_role role, int batch) {
	if (nc->replace)
		return replace_order(d, nc, role, batch);
	return in_place(d, nc, ROLLOUT_UPGRADE, role, batch);
}

/* A node that registered after the plan started (a host the scaler
 * launched, a node that was away) is new capacity, not serving yet: once
 * the canary is promoted it is prepared and upgraded at once, outside the
 * budget, so it starts on the target instead of waiting for a batch (or
 * staying behind after the last one). Also after success, as long as the
 * plan stands. */
static bool newcomer(const dctx *d, const nctx *nc) {
	/* a staged config has no orders for newcomers: they follow `current` */
	return !rollout_plan_staged(d->plan) && d->s->started > 0 && nc->n->booted > d->s->started && nc->eligible && !nc->busy &&
	       !nc->ordered;
}

static int tend_newcomers(dctx *d) {
	int r;

	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		if (!newcomer(d, nc))
			continue;
		if (!nc->o && nc->replace)
			continue;       /* a newcomer is launched on the target */
		if (!nc->o)
			r = in_place(d, nc, ROLLOUT_PREPARE, ROLLOUT_ROLE_NONE, 0);
		else if (candidate(nc))
			r = upgrade(d, nc, ROLLOUT_ROLE_BATCH, d->s->batch);
		else
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- phases ---------------------------------------------------------------------------- */

/* The plan's schedule has fired (none: at once); else it says what it
 * waits for. */
bool pending_due(dctx *d) {
	const rollout_plan *p = d->plan;
	char t[32];

	if (!p->schedule)
		return true;
	time_t base = p->created ? p->created : d->s->phase_since;
	time_t start = rollout_cron_next(p->schedule, base - 1);
	if (!start) {
		decide_waiting(d, "schedule \"%s\": never fires", p->schedule->text);
		return false;
	}
	if (d->now < start) {
		decide_waiting(d, "schedule %s", rollout_format_time(t, sizeof t, start));
		decide_wake(d, start);
		return false;
	}
	return true;
}

static int step_pending(dctx *d) {
	const rollout_plan *p = d->plan;
	char why[96];
	int eligible = 0, busy = 0, launching = 0, r;

	if (!pending_due(d))
		return 0;
	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (nc->eligible)
			nc->busy ? busy++ : eligible++;
		else if (nc->n->launching && nc->n->registered && !nc->n->held && rollout_plan_covers(p, nc->n->pool))
			launching++;
	}
	/* A host of the plan's pools whose corrald registered before the
	 * scaler's next cycle marked it ready: wait that cycle rather than
	 * start without it, or succeed with "nothing to do" while it runs the
	 * old version (a plan started right after a scale-up). */
	if (launching) {
		decide_waiting(d, "%d host%s launching", launching, launching == 1 ? "" : "s");
		return 0;
	}
	if (!eligible && !busy)
		return succeed(d, "nothing to do: no eligible node");
	if (!eligible) {
		decide_waiting(d, "nodes finishing another plan");
		return 0;
	}
	if (d->replace && replace_refusal(p))
		return fail_plan(d, replace_refusal(p));
	if ((r = replace_version(d)) != 0)
		return r < 0 ? r : 0;
	d->s->started = d->now;
	snprintf(why, sizeof why, "started: %d eligible node%s", eligible, eligible == 1 ? "" : "s");
	return decide_set_phase(d, ROLLOUT_PREPARING, why);
}

static int step_preparing(dctx *d) {
	char why[96];
	int running, prepared = 0, failed = 0, replaced = 0, r;

	if ((r = tend_prepares(d, true, &running)) != 0)
		return r;
	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		replaced += nc->replace && candidate(nc);
		if (nc->o && nc->o->verb == ROLLOUT_PREPARE) {
			prepared += nc->st == NS_DONE;
			failed += nc->st == NS_FAILED;
			if (nc->st == NS_RUNNING && !d->waiting[0])
				wait_for_node(d, nc);
		}
	}
	if (running > 0) {
		if (!d->waiting[0])
			decide_waiting(d, "prepare on %d node%s", running, running == 1 ? "" : "s");
		return 0;
	}
	if (!prepared && !replaced)
		return failed ? fail_plan(d, "prepare failed on every node") : succeed(d, "nothing to do");
	if (!prepared && !failed)
		snprintf(why, sizeof why, "hosts are replaced: nothing to prepare");
	else if (replaced)
		snprintf(why, sizeof why, "%d node%s prepared, %d skipped, %d to replace", prepared,
			 prepared == 1 ? "" : "s", failed, replaced);
	else
		snprintf(why, sizeof why, "%d node%s prepared, %d skipped", prepared, prepared == 1 ? "" : "s", failed);
	return decide_set_phase(d, d->plan->canary_nodes > 0 ? ROLLOUT_CANARY : ROLLOUT_ROLLING, why);
}

/* The node that replaced nc's host, or NULL (none registered yet). */
static nctx *replacement_of(dctx *d, const nctx *nc) {
	for (size_t i = 0; nc->n->replacement && i < d->n; i++)
		if (streq_ptr(d->nodes[i].n->instance, nc->n->replacement))
			return &d->nodes[i];
	return NULL;
}

/* A plan with both: a replaced canary's replacement (a newcomer, prepared
 * by tend_prepares) is part of the canary, so it gets the image in place
 * at once, as a canary; the canary is not baked before it is done.
 * *pending: replacements whose image part had no canary order yet;
 * *wait: one of them still preparing. */
static int tend_canary_replacements(dctx *d, int *pending, const nctx **wait) {
	char reason[300];
	int r;

	*pending = 0;
	*wait = NULL;
	for (size_t i = 0; d->both && i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (!nc->o || nc->o->verb != ROLLOUT_UPGRADE || nc->o->role != ROLLOUT_ROLE_CANARY || !nc->replace)
			continue;
		nctx *rc = replacement_of(d, nc);
		if (!rc || (rc->o && rc->o->verb == ROLLOUT_UPGRADE) || (!rc->eligible && !rc->n->launching))
			continue;
		if (rc->o && rc->o->verb == ROLLOUT_PREPARE && rc->st == NS_FAILED) {
			snprintf(reason, sizeof reason, "canary %s: replacement %s failed its prepare: %s", nc->n->id,
				 rc->n->id, rc->fail);
			return fail_plan(d, reason);
		}
		if (candidate(rc) && (r = upgrade(d, rc, ROLLOUT_ROLE_CANARY, 0)) < 0)
			return r;
		(*pending)++;
		if (!*wait && rc->o && !rc->ordered)
			*wait = rc;
	}
	return 0;
}

static int step_canary(dctx *d) {
	const nctx *wait = NULL, *rc_wait;
	char why[96];
	int running, pending, n_can = 0, n_done = 0, taken = 0, r;

	if ((r = check_upgrades(d)) != 0 || (r = tend_prepares(d, true, &running)) != 0 ||
	    (r = tend_canary_replacements(d, &pending, &rc_wait)) != 0)
		return r;
	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (nc->o && nc->o->verb == ROLLOUT_UPGRADE && nc->o->role == ROLLOUT_ROLE_CANARY) {
			n_can++;
			n_done += nc->st == NS_DONE;
			if (nc->st != NS_DONE && !wait)
				wait = nc;
		}
	}
	if (n_can > 0 && n_done == n_can && !pending) {
		d->s->bake_until = d->now + d->plan->canary_bake;
		snprintf(why, sizeof why, "%d canar%s healthy", n_can, n_can == 1 ? "y" : "ies");
		return decide_set_phase(d, ROLLOUT_CANARY_BAKE, why);
	}
	if (wait) {
		wait_for_node(d, wait);
		return 0;
	}
	if (rc_wait)
		wait_for_node(d, rc_wait);
	else if (pending)
		decide_waiting(d, "canary: %d replacement%s to get %s in place", pending, pending == 1 ? "" : "s",
			       d->plan->target.image);
	if (pending)
		return 0;
	if (!window_open(d))
		return 0;
	for (size_t i = 0; i < d->n && taken < d->plan->canary_nodes; i++) {
		nctx *nc = &d->nodes[i];
		if (candidate(nc) && nc->healthy) {
			if ((r = upgrade(d, nc, ROLLOUT_ROLE_CANARY, 0)) < 0)
				return r;
			taken++;
		}
	}
	if (!taken) {
		if (running > 0) {
			decide_waiting(d, "prepare on %d node%s", running, running == 1 ? "" : "s");
			return 0;
		}
		return decide_set_phase(d, ROLLOUT_ROLLING, "no canary candidate");
	}
	d->s->progress_at = d->now;
	decide_waiting(d, "canary: %d node%s started", taken, taken == 1 ? "" : "s");
	return 0;
}

/* An operator's promotion not yet used: plan.promote counts them, the
 * state remembers the last one used, so one promotion answers one pause
 * (the canary's) and not a later one (an inconclusive final gate). */
bool take_promotion(dctx *d) {
	if (d->plan->promote <= d->s->promote_seen)
		return false;
	d->s->promote_seen = d->plan->promote;
	return true;
}

static int promote_rolling(dctx *d, const char *why) {
	return decide_set_phase(d, ROLLOUT_ROLLING, why);
}

static int step_bake(dctx *d, bool final) {
	int r;

	if ((r = check_upgrades(d)) != 0 || (final && (r = tend_newcomers(d)) < 0))
		return r;
	return bake_over(d, final, promote_rolling);
}

int bake_over(dctx *d, bool final, int (*promote)(dctx *d, const char *why)) {
	char t[32];

	if (d->now < d->s->bake_until) {
		decide_waiting(d, "%s bake until %s", final ? "final" : "canary",
			       rollout_format_time(t, sizeof t, d->s->bake_until));
		decide_wake(d, d->s->bake_until);
		return 0;
	}
	switch (gate_result(d)) {
	case ROLLOUT_GATE_NONE:
		return 0;
	case ROLLOUT_GATE_PASS:
		if (final)
			return succeed(d, d->plan->gate_command ? "final bake over, gate passed" : "final bake over");
		if (d->plan->auto_promote)
			return promote(d, "canary baked, promoted");
		if (take_promotion(d))
			return promote(d, "canary baked, promoted by operator");
		return pause_plan(d, ROLLOUT_PAUSE_PROMOTION, "canary baked: needs promotion");
	case ROLLOUT_GATE_FAIL:
		return fail_plan(d, final ? "gate failed after the final bake" : "gate failed after the canary bake");
	case ROLLOUT_GATE_INCONCLUSIVE:
		return pause_plan(d, ROLLOUT_PAUSE_GATE,
				  final ? "gate inconclusive after the final bake" : "gate inconclusive after the canary bake");
	default:
		return -ENOMEM;
	}
}

/* Paused: nothing new starts; in-flight nodes go on, and a failure still
 * fails the plan. A promotion answers a PROMOTION or a GATE pause. */
int step_paused(dctx *d) {
	rollout_state *s = d->s;
	int r;

	if ((r = check_upgrades(d)) != 0)
		return r;
	for (size_t i = 0; i < d->n; i++)
		if (d->nodes[i].o && d->nodes[i].o->verb == ROLLOUT_ROLLBACK && d->nodes[i].st == NS_FAILED) {
			char reason[300];
			snprintf(reason, sizeof reason, "rollback failed on %s: %s", d->nodes[i].n->id, d->nodes[i].fail);
			return fail_plan(d, reason);
		}
	if (s->pause == ROLLOUT_PAUSE_PROMOTION || s->pause == ROLLOUT_PAUSE_GATE) {
		if (take_promotion(d))
			return s->paused_from == ROLLOUT_FINAL_BAKE ? succeed(d, "promoted by operator")
			                                            : decide_set_phase(d, ROLLOUT_ROLLING, "promoted by operator");
		decide_waiting(d, s->pause == ROLLOUT_PAUSE_GATE ? "promote or abort (gate inconclusive)" : "promotion");
		return 0;
	}
	if (!d->plan->paused)
		return decide_set_phase(d, s->paused_from, "resumed by operator");
	decide_waiting(d, "resume (paused by operator)");
	return 0;
}

static int step_rolling(dctx *d) {
	const rollout_plan *p = d->plan;
	rollout_state *s = d->s;
	int running, cands = 0, n = 0, healthy = 0, in_flight = 0, r;

	if ((r = check_upgrades(d)) != 0 || (r = tend_newcomers(d)) < 0 || (r = tend_prepares(d, true, &running)) != 0)
		return r;
	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (nc->o && nc->o->verb == ROLLOUT_UPGRADE && nc->st != NS_DONE) {
			wait_for_node(d, nc);
			return 0;       /* batch n+1 starts when batch n is done */
		}
		cands += candidate(nc);
		n += nc->in_scope;
		healthy += nc->in_scope && nc->healthy;
		in_flight += nc->in_flight;
	}
	if (!cands) {
		if (running > 0) {
			decide_waiting(d, "prepare on %d node%s", running, running == 1 ? "" : "s");
			return 0;
		}
		s->bake_until = d->now + (p->final_bake < 0 ? p->canary_bake : p->final_bake);
		return decide_set_phase(d, ROLLOUT_FINAL_BAKE, "every node upgraded");
	}
	if (!window_open(d))
		return 0;
	int k = rollout_budget(n, healthy, in_flight, p->max_unavailable, p->min_healthy_percent);
	if (k == 0) {
		decide_waiting(d, "blocked: budget (%d of %d healthy, %d must stay)", healthy, n,
			       (int) ((int64_t) p->min_healthy_percent * n / 100));
		return 0;
	}
	s->batch++;
	for (size_t i = 0; i < d->n && k > 0; i++)
		if (candidate(&d->nodes[i])) {
			if ((r = upgrade(d, &d->nodes[i], ROLLOUT_ROLE_BATCH, s->batch)) < 0)
				return r;
			k--;
		}
	s->progress_at = d->now;
	decide_waiting(d, "batch %d", s->batch);
	return 0;
}

/* ---- rolling back ----------------------------------------------------------------------- */

/* A changed node that still needs its ROLLBACK order. */
static bool rollback_candidate(const nctx *nc) {
	if (!nc->changed || nc->ordered || nc->replacement)
		return false;
	if (nc->o->verb == ROLLOUT_UPGRADE)
		return nc->st != NS_RUNNING;
	return nc->o->verb == ROLLOUT_FINISH && nc->st == NS_DONE;
}

static bool rollback_busy(const nctx *nc) {
	return nc->o && nc->st == NS_RUNNING &&
	       (nc->o->verb == ROLLOUT_ROLLBACK || nc->o->verb == ROLLOUT_UPGRADE || nc->o->verb == ROLLOUT_FINISH);
}

static int rollback_one(dctx *d, nctx *nc) {
	/* back to exactly what it ran: the upgrade's from, away from its target */
	return decide_order(d, nc, ROLLOUT_ROLLBACK, ROLLOUT_ROLE_BATCH, d->s->batch, &nc->o->from, &nc->o->target,
			    false);
}

/* Rollback is a rollout: batches by the same budget, no canary, no window.
 * A node the failure already took down (failed, unhealthy, gone) costs
 * the budget nothing: it is taken first, up to max_unavailable. */
int step_rolling_back(dctx *d) {
	const rollout_plan *p = d->plan;
	const nctx *wait = NULL, *rb_wait = NULL;
	int n = 0, healthy = 0, in_flight = 0, cands = 0, done = 0, taken = 0, r;

	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (nc->o && nc->o->verb == ROLLOUT_ROLLBACK && nc->st == NS_FAILED) {
			char reason[300];
			snprintf(reason, sizeof reason, "rollback failed on %s: %s", nc->n->id, nc->fail);
			return fail_plan(d, reason);
		}
		bool busy = rollback_busy(nc);
		if (busy && !wait)
			wait = nc;
		if (busy && nc->o->verb == ROLLOUT_ROLLBACK && !rb_wait)
			rb_wait = nc;
		in_flight += busy && nc->o->verb != ROLLOUT_FINISH;
		done += nc->o && nc->o->verb == ROLLOUT_ROLLBACK && nc->st == NS_DONE;
		cands += rollback_candidate(nc);
		n += nc->in_scope;
		healthy += nc->in_scope && nc->n->registered && nc->n->status_ok && !busy && nc->st != NS_FAILED;
	}
	if (rb_wait || (!cands && wait)) {
		wait_for_node(d, rb_wait ? rb_wait : wait);
		return 0;
	}
	if (!cands) {
		char why[300];
		/* keep the cause: status and history must still say why */
		snprintf(why, sizeof why, "rolled back %d node%s after: %s", done, done == 1 ? "" : "s",
			 d->s->reason ? d->s->reason : "?");
		return decide_set_phase(d, ROLLOUT_ROLLED_BACK, why);
	}
	d->s->batch++;
	int free_slots = p->max_unavailable - in_flight;
	if (free_slots < 1 && in_flight == 0)
		free_slots = 1;
	for (size_t i = 0; i < d->n && taken < free_slots; i++) {
		nctx *nc = &d->nodes[i];
		bool down = !nc->n->registered || !nc->n->status_ok || nc->st == NS_FAILED;
		if (rollback_candidate(nc) && down) {
			if ((r = rollback_one(d, nc)) < 0)
				return r;
			taken++;
		}
	}
	int k = rollout_budget(n, healthy, in_flight + taken, p->max_unavailable, p->min_healthy_percent);
	for (size_t i = 0; i < d->n && k > 0; i++) {
		nctx *nc = &d->nodes[i];
		if (rollback_candidate(nc)) {
			if ((r = rollback_one(d, nc)) < 0)
				return r;
			taken++;
			k--;
		}
	}
	if (!taken) {
		d->s->batch--;
		decide_waiting(d, "blocked: budget (%d of %d healthy)", healthy, n);
		return 0;
	}
	d->s->progress_at = d->now;
	decide_waiting(d, "rollback batch %d", d->s->batch);
	return 0;
}

/* ---- terminal ---------------------------------------------------------------------------- */

/* A FINISH order in place of o: the node runs its pending undos (and
 * cleanup). It keeps o's role, target and from when the node started o,
 * so a later control.rollback knows what the plan changed. */
int finish_order(dctx *d, nctx *nc, const rollout_order *o, bool started, bool cleanup) {
	rollout_order f = *o;
	f.verb = ROLLOUT_FINISH;
	f.role = started ? o->role : ROLLOUT_ROLE_NONE;
	f.cleanup = cleanup;
	f.issued = d->now;
	return decide_issue(d, nc, &f);
}

/* Orders of another plan or an older generation that are not FINISH and
 * not running get their FINISH (no cleanup): whoever is leader then, the
 * node's undos run. */
static int finish_foreign(dctx *d) {
	int r;

	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		const rollout_order *o = nc->n->order;
		if (nc->o || !o || o->verb == ROLLOUT_FINISH || nc->busy || nc->ordered)
			continue;
		bool started = nc->n->progress && nc->n->progress->plan && strcmp(nc->n->progress->plan, o->plan) == 0 &&
		               nc->n->progress->generation == o->generation && nc->n->progress->verb == o->verb;
		if ((r = finish_order(d, nc, o, started, false)) < 0)
			return r;
		nc->busy = true;
	}
	return 0;
}

static int new_generation(dctx *d) {
	rollout_state *s = d->s;
	char why[64];

	s->generation++;
	s->retry_seen = d->plan->retry;
	s->batch = 0;
	s->started = s->bake_until = 0;
	s->paused_from = ROLLOUT_PENDING;
	snprintf(why, sizeof why, "retry %" PRId64, d->plan->retry);
	int r = decide_set_phase(d, ROLLOUT_PENDING, why);
	s->finished = 0;
	return r;
}

static int step_terminal(dctx *d) {
	rollout_state *s = d->s;
	rollout_phase ph = s->phase;
	int r;

	if (ph != ROLLOUT_SUCCEEDED && d->plan->retry > s->retry_seen)
		return new_generation(d);
	if (d->plan->rollback && can_roll_back(d) &&
	    (ph == ROLLOUT_SUCCEEDED || ph == ROLLOUT_CANCELLED ||
	     (ph == ROLLOUT_FAILED && s->paused_from != ROLLOUT_ROLLING_BACK)))
		return decide_set_phase(d, ROLLOUT_ROLLING_BACK, "rollback by operator");
	if (ph == ROLLOUT_SUCCEEDED && (r = tend_newcomers(d)) < 0)
		return r;
	for (size_t i = 0; i < d->n; i++) {
		nctx *nc = &d->nodes[i];
		if (!nc->o || nc->o->verb == ROLLOUT_FINISH || nc->ordered ||
		    (nc->p && nc->p->state == ROLLOUT_STEP_RUNNING))
			continue;
		if ((r = finish_order(d, nc, nc->o, nc->p != NULL, ph == ROLLOUT_SUCCEEDED)) < 0)
			return r;
	}
	return 0;
}

/* ---- the dispatcher ---------------------------------------------------------------------- */

static int check_deadline(dctx *d) {
	rollout_phase ph = d->s->phase;
	char dur[32], reason[300];

	if (ph != ROLLOUT_PREPARING && ph != ROLLOUT_CANARY && ph != ROLLOUT_ROLLING && ph != ROLLOUT_ROLLING_BACK)
		return 0;
	if (d->window_wait || d->gate_requested || d->out->n_actions > 0)
		return 0;
	time_t at = d->s->progress_at + d->plan->progress_deadline;
	if (d->now > at) {
		snprintf(reason, sizeof reason, "no progress for %s: waiting for %s",
			 rollout_format_duration(dur, sizeof dur, d->plan->progress_deadline),
			 d->waiting[0] ? d->waiting : "?");
		return fail_plan(d, reason);
	}
	decide_wake(d, at + 1);
	return 0;
}

/* What comes before any phase's rules: other plans' orders finished, the
 * terminal phases, the operator's abort, rollback and pause. *done: the
 * step is decided (return value), else go on to the phase. */
static int decide_common(dctx *d, bool *done) {
	const rollout_plan *p = d->plan;
	rollout_state *s = d->s;
	int r;

	*done = true;
	d->waiting[0] = '\0';
	d->window_wait = false;
	if ((r = finish_foreign(d)) < 0)
		return r;
	if (rollout_phase_terminal(s->phase))
		return step_terminal(d);
	if (p->abort)
		return decide_set_phase(d, ROLLOUT_CANCELLED, "aborted by operator");
	bool rolling_back = s->phase == ROLLOUT_ROLLING_BACK ||
	                    (s->phase == ROLLOUT_PAUSED && s->paused_from == ROLLOUT_ROLLING_BACK);
	if (p->rollback && !rolling_back && can_roll_back(d))
		return decide_set_phase(d, ROLLOUT_ROLLING_BACK, "rollback by operator");
	if (p->paused && s->phase != ROLLOUT_PAUSED)
		return pause_plan(d, ROLLOUT_PAUSE_OPERATOR, "paused by operator");
	*done = false;
	return 0;
}

static int step_canary_bake(dctx *d) {
	return step_bake(d, false);
}

static int step_final_bake(dctx *d) {
	return step_bake(d, true);
}

/* An image (or machine image) plan's rules. */
const decide_rules decide_rules_image = {
	.phase = {
		[ROLLOUT_PENDING] = step_pending,
		[ROLLOUT_PREPARING] = step_preparing,
		[ROLLOUT_CANARY] = step_canary,
		[ROLLOUT_CANARY_BAKE] = step_canary_bake,
		[ROLLOUT_FINAL_BAKE] = step_final_bake,
		[ROLLOUT_PAUSED] = step_paused,
		[ROLLOUT_ROLLING] = step_rolling,
		[ROLLOUT_ROLLING_BACK] = step_rolling_back,
	},
};

int decide_step(dctx *d, const decide_rules *rules) {
	bool done;
	int r = decide_common(d, &done);

	if (done)
		return r;
	if (rules->pre && (r = rules->pre(d)) != 0)
		return r < 0 || r == 1 ? r : 0;
	decide_rule rule = d->s->phase < _ROLLOUT_PHASE_MAX ? rules->phase[d->s->phase] : NULL;
	if (!rule)
		decide_waiting(d, "nothing to do in phase %s for this plan", rollout_phase_to_string(d->s->phase));
	r = rule ? rule(d) : 0;
	return r == 0 ? check_deadline(d) : r;
}
