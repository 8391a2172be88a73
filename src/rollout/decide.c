/* decide.c — rollout_decide(): the rollout's decision, pure (no I/O, no
 * clock: `now` comes in). This file is the frame: a new plan (supersede),
 * the loop that runs a phase's step (phases.c) after each phase change
 * until one waits, and the output (views, metrics, history, the one-line
 * summary, wake). The context (nodes classified, actions) is context.c.
 * The rules are written down in docs/upgrades.md ("Rules"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

/* ---- the output ---------------------------------------------------------------------- */

static const char *view_step(const nctx *nc, char *buf, size_t size) {
	static const char *const issued[_ROLLOUT_VERB_MAX] = { "preparing", "upgrading", "rolling back", "finishing" };

	if (nc->ordered)
		return issued[nc->ordered_verb];
	if (nc->busy)
		return "finishing another plan";
	if (!nc->o) {
		if (nc->eligible)
			return "pending";
		snprintf(buf, size, "skipped: %s", nc->why);
		return buf;
	}
	switch (nc->o->verb) {
	case ROLLOUT_PREPARE:
		if (nc->st == NS_FAILED)
			return "skipped: prepare failed";
		if (nc->st == NS_RUNNING)
			return "preparing";
		if (!nc->eligible)
			return snprintf(buf, size, "skipped: %s", nc->why), buf;
		return "prepared";
	case ROLLOUT_UPGRADE:
		if (nc->st != NS_RUNNING)
			return nc->st == NS_DONE ? "done" : "failed";
		if (nc->o->role == ROLLOUT_ROLE_CANARY)
			return "canary";
		return snprintf(buf, size, "batch %d", nc->o->batch), buf;
	case ROLLOUT_ROLLBACK:
		return nc->st == NS_RUNNING ? "rolling back" : nc->st == NS_DONE ? "rolled back" : "rollback failed";
	default:
		return nc->st == NS_DONE ? "finished" : "finishing";
	}
}

/* A FINISH (stored, or issued now) keeps the role of the order it
 * replaced: a node that ran its steps counts as done while it finishes
 * (runs its undos and cleanup), one that only prepared as skipped. */
static bool finishing(const nctx *nc, bool *upgraded) {
	const rollout_order *o = nc->o;

	if (nc->ordered && nc->ordered_verb != ROLLOUT_FINISH)
		return false;
	if (!nc->ordered && (!o || o->verb != ROLLOUT_FINISH))
		return false;
	*upgraded = o ? o->role != ROLLOUT_ROLE_NONE || o->verb == ROLLOUT_UPGRADE || o->verb == ROLLOUT_ROLLBACK
		      : false;
	return true;
}

static void count(rollout_output *out, const nctx *nc) {
	bool upgraded;

	if (!nc->in_scope && !nc->o)
		return;
	if (finishing(nc, &upgraded)) {
		if (upgraded)
			out->n_done++;
		else
			out->n_skipped++;
		return;
	}
	if (nc->ordered || (nc->o && nc->st == NS_RUNNING))
		out->n_running++;
	else if (nc->o && nc->st == NS_FAILED && nc->o->verb != ROLLOUT_PREPARE)
		out->n_failed++;
	else if (nc->o && (nc->o->verb == ROLLOUT_UPGRADE || nc->o->verb == ROLLOUT_ROLLBACK || nc->changed))
		out->n_done++;
	else if (nc->eligible)
		out->n_pending++;
	else
		out->n_skipped++;
}

/* The step strings live in the output: one buffer per node, after the
 * views. */
static int fill_views(dctx *d) {
	rollout_output *out = d->out;
	size_t n = d->in->n_nodes;
	char *bufs;

	out->nodes = calloc(n + 1, sizeof *out->nodes + 64);
	if (!out->nodes)
		return -ENOMEM;
	bufs = (char *) (out->nodes + n + 1);
	out->n_nodes = n;
	for (size_t i = 0; i < n; i++) {
		const rollout_node *node = &d->in->nodes[i];
		out->nodes[i] = (rollout_node_view) { .id = node->id, .healthy = node->registered && node->status_ok };
		if (!d->nodes) {
			out->nodes[i].step = "no plan";
			continue;
		}
		out->nodes[i].step = view_step(&d->nodes[i], bufs + 64 * i, 64);
		count(out, &d->nodes[i]);
	}
	return 0;
}

static int build_history(dctx *d) {
	const rollout_state *s = d->s;
	json_auto_t *h = rollout_state_to_json(s), *nodes = json_object();

	if (!h || !nodes || rollout_set(h, "target", rollout_target_to_json(&d->plan->target)) < 0)
		return -ENOMEM;
	json_object_del(h, "waiting");
	for (size_t i = 0; i < d->out->n_nodes; i++)
		if (d->nodes[i].o && rollout_set(nodes, d->out->nodes[i].id, json_string(d->out->nodes[i].step)) < 0)
			return -ENOMEM;
	if (json_object_set(h, "nodes", nodes) < 0)
		return -ENOMEM;
	d->out->history = TAKE_PTR(h);
	return decide_plan_action(d, ROLLOUT_WRITE_HISTORY, "history %s gen %" PRId64 ": %s", s->plan, s->generation,
				  rollout_phase_to_string(s->phase));
}

static bool target_eq(const rollout_target *a, const rollout_target *b) {
	return streq_ptr(a->image, b->image) && streq_ptr(a->config, b->config) &&
	       streq_ptr(a->launch_template_version, b->launch_template_version) && streq_ptr(a->ami, b->ami);
}

static bool state_eq(const rollout_state *a, const rollout_state *b) {
	return streq_ptr(a->plan, b->plan) && a->generation == b->generation && a->phase == b->phase &&
	       a->paused_from == b->paused_from && a->pause == b->pause && a->batch == b->batch &&
	       a->phase_since == b->phase_since && a->started == b->started && a->bake_until == b->bake_until &&
	       a->progress_at == b->progress_at && a->finished == b->finished && streq_ptr(a->reason, b->reason) &&
	       streq_ptr(a->waiting, b->waiting) && target_eq(&a->previous, &b->previous) &&
	       a->retry_seen == b->retry_seen &&
	       a->promote_seen == b->promote_seen && a->gate == b->gate && a->gate_at == b->gate_at &&
	       streq_ptr(a->candidate, b->candidate) && streq_ptr(a->candidate_base, b->candidate_base) &&
	       a->rebases == b->rebases && a->promoted == b->promoted &&
	       streq_ptr(a->launch_template_version, b->launch_template_version);
}

static int finish_output(dctx *d) {
	rollout_output *out = d->out;
	rollout_state *s = d->s;
	int r;

	if (d->nodes && !d->gate_requested && !streq_ptr(s->waiting, d->waiting[0] ? d->waiting : NULL)) {
		free(s->waiting);
		s->waiting = d->waiting[0] ? strdup(d->waiting) : NULL;
		if (d->waiting[0] && !s->waiting)
			return -ENOMEM;
	}
	if ((r = fill_views(d)) < 0)
		return r;
	if (d->entered_terminal && (r = build_history(d)) < 0)
		return r;
	out->state_changed = !state_eq(d->in->state, s);
	out->wake = d->wake;
	if (s->plan && s->phase != d->start_phase)
		snprintf(out->line, sizeof out->line, "%s gen %" PRId64 ": %s -> %s (%s)", s->plan, s->generation,
			 rollout_phase_to_string(d->start_phase), rollout_phase_to_string(s->phase), d->last_reason);
	else if (s->plan && (out->n_actions > 0 || out->state_changed)) {
		char batch[24] = "";
		if (s->phase == ROLLOUT_ROLLING || s->phase == ROLLOUT_ROLLING_BACK)
			snprintf(batch, sizeof batch, " batch %d", s->batch);
		snprintf(out->line, sizeof out->line, "%s gen %" PRId64 ": %s%s: %zu action%s%s%s", s->plan,
			 s->generation, rollout_phase_to_string(s->phase), batch, out->n_actions,
			 out->n_actions == 1 ? "" : "s", s->waiting ? ", waiting for " : "", s->waiting ? s->waiting : "");
	}
	return 0;
}

/* ---- a new plan ---------------------------------------------------------------------- */

/* A plan id the state does not know: a running old plan is cancelled
 * (superseded, its history written); the new one starts at generation 1,
 * pending, with the stable target as its way back. The old plan's nodes
 * get FINISH orders of their own plan (classify: foreign orders). */
static int start_plan(dctx *d) {
	rollout_state *s = d->s;
	const rollout_plan *p = d->plan;
	int r;

	if (s->plan && !rollout_phase_terminal(s->phase)) {
		char why[160];
		snprintf(why, sizeof why, "superseded by %s", p->id);
		if ((r = decide_set_phase(d, ROLLOUT_CANCELLED, why)) < 0)
			return r;
		json_auto_t *h = rollout_state_to_json(s);
		if (!h)
			return -ENOMEM;
		json_object_del(h, "waiting");
		d->out->history = TAKE_PTR(h);
		if ((r = decide_plan_action(d, ROLLOUT_WRITE_HISTORY, "history %s gen %" PRId64 ": cancelled (%s)",
					    s->plan, s->generation, why)) < 0)
			return r;
		d->entered_terminal = false;
	}
	rollout_state_done(s);
	*s = (rollout_state) {
		.plan = strdup(p->id),
		.generation = 1,
		.phase = ROLLOUT_PENDING,
		.paused_from = ROLLOUT_PENDING,
		.phase_since = d->now,
		.progress_at = d->now,
		.retry_seen = p->retry,
		.promote_seen = p->promote,
		.reason = strdup("new plan"),
	};
	if (!s->plan || !s->reason || (d->in->stable && rollout_target_copy(d->in->stable, &s->previous) < 0))
		return -ENOMEM;
	/* a numbered version target is the version replacements launch with */
	if (p->target.launch_template_version &&
	    !(s->launch_template_version = strdup(p->target.launch_template_version)))
		return -ENOMEM;
	d->start_phase = ROLLOUT_PENDING;
	snprintf(d->last_reason, sizeof d->last_reason, "new plan");
	return 0;
}

/* ---- the decision --------------------------------------------------------------------- */

static int decide_run(dctx *d) {
	int r;
	bool superseded = false;

	if (!d->s->plan || strcmp(d->s->plan, d->plan->id) != 0) {
		superseded = d->s->plan && !rollout_phase_terminal(d->s->phase);
		if ((r = start_plan(d)) < 0)
			return r;
	}
	d->nodes = calloc(d->n + 1, sizeof *d->nodes);
	d->by_instance = calloc(d->n + 1, sizeof *d->by_instance);
	if (!d->nodes || !d->by_instance)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++)
		d->nodes[i].n = &d->in->nodes[i];
	if (superseded) {
		/* the old plan's history is this decision's; the new plan
		 * starts at the next (the state write wakes the leader) */
		decide_classify(d);
		decide_wake(d, d->now + 1);
		return 0;
	}
	/* a phase change is followed at once by the next phase's step (pending
	 * -> preparing -> ...) until one waits or issues orders */
	for (int i = 0; i < 16; i++) {
		decide_classify(d);
		r = decide_step(d, rollout_plan_staged(d->plan) ? &decide_rules_staged : &decide_rules_image);
		if (r <= 0)
			return r;
	}
	return 0;
}

int rollout_decide(const rollout_input *in, rollout_output *out) {
	dctx d = { .in = in, .plan = in->plan, .out = out, .s = &out->state, .n = in->n_nodes, .now = in->now,
		   .replace = decide_replacing(in->plan), .both = rollout_plan_both(in->plan) };
	int r;

	*out = (rollout_output) {};
	d.start_phase = in->state->phase;
	out->state = *in->state;
	out->state.plan = rollout_strdup_or_null(in->state->plan);
	out->state.reason = rollout_strdup_or_null(in->state->reason);
	out->state.waiting = rollout_strdup_or_null(in->state->waiting);
	out->state.candidate = rollout_strdup_or_null(in->state->candidate);
	out->state.candidate_base = rollout_strdup_or_null(in->state->candidate_base);
	out->state.launch_template_version = rollout_strdup_or_null(in->state->launch_template_version);
	out->state.previous = (rollout_target) {};
	if ((in->state->plan && !out->state.plan) || (in->state->reason && !out->state.reason) ||
	    (in->state->waiting && !out->state.waiting) || (in->state->candidate && !out->state.candidate) ||
	    (in->state->candidate_base && !out->state.candidate_base) ||
	    (in->state->launch_template_version && !out->state.launch_template_version) ||
	    rollout_target_copy(&in->state->previous, &out->state.previous) < 0) {
		rollout_output_done(out);
		return -ENOMEM;
	}
	r = in->plan ? decide_run(&d) : 0;
	if (r >= 0)
		r = finish_output(&d);
	free(d.nodes);
	free(d.by_instance);
	if (r < 0) {
		rollout_output_done(out);
		return r;
	}
	return 0;
}

void rollout_output_done(rollout_output *out) {
	rollout_state_done(&out->state);
	for (size_t i = 0; i < out->n_actions; i++)
		rollout_order_done(&out->actions[i].order);
	free(out->actions);
	json_decref(out->history);
	free(out->nodes);
	*out = (rollout_output) {};
}
