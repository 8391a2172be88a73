/* decide.c — rollout_decide(): the rollout's decision, pure (no I/O, no
 * clock: `now` comes in). This file holds the frame: each node classified
 * against the plan and generation (its order, the progress on that order,
 * done / running / failed, in flight, healthy, changed), the actions and
 * the output (views, metrics, history, the one-line summary, wake); the
 * rules of each phase are in phases.c. The rules themselves are written
 * down in docs/upgrades.md ("Rules") and in ../shared/ROLLOUT.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

/* ---- the two rules other code reuses --------------------------------------------- */

int rollout_budget(int n, int healthy, int in_flight, int max_unavailable, int min_healthy_percent) {
	/* nodes that must stay healthy: floor(pct * N / 100) */
	int must_stay = (int) ((int64_t) min_healthy_percent * n / 100);
	int k = max_unavailable - in_flight;

	if (healthy - must_stay < k)
		k = healthy - must_stay;
	/* every node healthy and none in flight: at least one may go, so a
	 * 3-node pool at 90% upgrades one at a time instead of never */
	if (n > 0 && healthy == n && in_flight == 0 && k < 1)
		k = 1;
	return k < 0 ? 0 : k;
}

bool rollout_node_eligible(const rollout_plan *p, const rollout_node *n, const char **why) {
	const char *w = NULL;

	if (!rollout_plan_covers(p, n->pool))
		w = "not in pools";
	else if (!n->registered)
		w = "not registered";
	else if (n->held)
		w = "held";
	else if (n->launching)
		w = "launching";
	else if (!n->image)
		w = "no upgrade config";
	else if (rollout_target_matches(&p->target, n->image))
		w = "already on target";
	if (why)
		*why = w;
	return !w;
}

/* ---- small helpers ----------------------------------------------------------------- */

void decide_wake(dctx *d, time_t t) {
	if (t > d->now && (d->wake == 0 || t < d->wake))
		d->wake = t;
}

void decide_waiting(dctx *d, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->waiting, sizeof d->waiting, fmt, ap);
	va_end(ap);
}

static bool mine(const dctx *d, const rollout_order *o) {
	return o && o->plan && d->s->plan && strcmp(o->plan, d->s->plan) == 0 && o->generation == d->s->generation;
}

static bool progress_on(const rollout_progress *p, const rollout_order *o) {
	return p && o && p->plan && o->plan && strcmp(p->plan, o->plan) == 0 && p->generation == o->generation &&
	       p->verb == o->verb;
}

/* "step 4 (health): exit 1" */
static void step_text(const rollout_progress *p, char *buf, size_t size) {
	snprintf(buf, size, "step %d (%s)%s%s", p->step + 1, p->step_name ? p->step_name : "?", p->error ? ": " : "",
		 p->error ? p->error : "");
}

/* ---- classification -------------------------------------------------------------- */

/* An order's status: the rules of a node being done (healthy for
 * min_healthy_time on the target) or failed (a failed step, unhealthy
 * after its steps, or silent past healthy_deadline). */
static void eval_order(dctx *d, nctx *nc) {
	const rollout_plan *pl = d->plan;
	const rollout_order *o = nc->o;
	const rollout_progress *p = nc->p;
	const rollout_node *n = nc->n;
	char st[160];

	if (o->verb == ROLLOUT_FINISH) {
		nc->st = p && p->state != ROLLOUT_STEP_RUNNING ? NS_DONE : NS_RUNNING;
		return;
	}
	if (p && p->state == ROLLOUT_STEP_FAILED) {
		step_text(p, st, sizeof st);
		snprintf(nc->fail, sizeof nc->fail, "at %s", st);
		nc->st = NS_FAILED;
		return;
	}
	if (p && p->state == ROLLOUT_STEP_DONE) {
		if (o->verb == ROLLOUT_PREPARE) {
			nc->st = NS_DONE;
			return;
		}
		if (!n->registered || !n->status_ok) {
			snprintf(nc->fail, sizeof nc->fail, "%s after its steps",
				 n->registered ? "unhealthy" : "unregistered");
			nc->st = NS_FAILED;
			return;
		}
		if (rollout_target_matches(&o->target, n->image)) {
			time_t healthy_at = p->finished + pl->min_healthy_time;
			nc->st = d->now >= healthy_at ? NS_DONE : NS_RUNNING;
			decide_wake(d, healthy_at);
			return;
		}
		/* steps done, node record not yet on the image: wait, within
		 * the silence deadline */
	}
	time_t last = o->issued;
	if (p && p->updated > last)
		last = p->updated;
	if (d->now - last > pl->healthy_deadline) {
		char dur[32];
		snprintf(nc->fail, sizeof nc->fail, "silent for %s",
			 rollout_format_duration(dur, sizeof dur, d->now - last));
		nc->st = NS_FAILED;
		return;
	}
	nc->st = NS_RUNNING;
	decide_wake(d, last + pl->healthy_deadline + 1);
}

/* An order of another plan or generation: a node still running it, or
 * still finishing it, gets nothing new yet. */
static bool foreign_busy(const rollout_node *n) {
	const rollout_progress *p = n->progress;
	if (!progress_on(p, n->order))
		return n->order->verb == ROLLOUT_FINISH && n->registered;
	return p->state == ROLLOUT_STEP_RUNNING;
}

static void classify_one(dctx *d, nctx *nc) {
	const rollout_node *n = nc->n;
	const rollout_order *o = n->order;

	*nc = (nctx) { .n = n, .ordered = nc->ordered, .ordered_verb = nc->ordered_verb };
	nc->eligible = rollout_node_eligible(d->plan, n, &nc->why);
	if (mine(d, o)) {
		nc->o = o;
		nc->p = progress_on(n->progress, o) ? n->progress : NULL;
		eval_order(d, nc);
		nc->in_scope = true;
		nc->in_flight = (o->verb == ROLLOUT_UPGRADE || o->verb == ROLLOUT_ROLLBACK) && nc->st != NS_DONE;
		nc->prepared = (o->verb == ROLLOUT_PREPARE && nc->st == NS_DONE) || o->verb != ROLLOUT_PREPARE;
		nc->changed = (o->verb == ROLLOUT_UPGRADE && nc->p) || o->verb == ROLLOUT_ROLLBACK ||
		              (o->verb == ROLLOUT_FINISH && o->role != ROLLOUT_ROLE_NONE);
	} else {
		nc->in_scope = n->registered && rollout_plan_covers(d->plan, n->pool);
		nc->busy = o && foreign_busy(n);
	}
	nc->healthy = n->registered && n->status_ok && !nc->in_flight;
}

/* The progress deadline counts from the last time a node became done,
 * failed or skipped: those times are in the progress records. */
static void advance_progress_at(dctx *d, const nctx *nc) {
	time_t t = 0;

	if (!nc->o || !nc->p || nc->o->verb == ROLLOUT_FINISH)
		return;
	if (nc->st == NS_DONE)
		t = nc->p->finished + (nc->o->verb == ROLLOUT_PREPARE ? 0 : d->plan->min_healthy_time);
	else if (nc->st == NS_FAILED)
		t = nc->p->finished ? nc->p->finished : nc->p->updated;
	if (t > d->now)
		t = d->now;
	if (t > d->s->progress_at)
		d->s->progress_at = t;
}

void decide_classify(dctx *d) {
	for (size_t i = 0; i < d->n; i++) {
		classify_one(d, &d->nodes[i]);
		advance_progress_at(d, &d->nodes[i]);
	}
}

int decide_changed_count(const dctx *d) {
	int c = 0;
	for (size_t i = 0; i < d->n; i++)
		c += d->nodes[i].changed;
	return c;
}

/* "canary n1", "node n3 (batch 2)", "node n2". */
void decide_describe(dctx *d, const nctx *nc, char *buf, size_t size) {
	(void) d;
	if (nc->o && nc->o->role == ROLLOUT_ROLE_CANARY)
		snprintf(buf, size, "canary %s", nc->n->id);
	else if (nc->o && nc->o->role == ROLLOUT_ROLE_BATCH)
		snprintf(buf, size, "node %s (batch %d)", nc->n->id, nc->o->batch);
	else
		snprintf(buf, size, "node %s", nc->n->id);
}

/* ---- actions ------------------------------------------------------------------------ */

static rollout_action *new_action(dctx *d) {
	rollout_output *out = d->out;
	if (out->n_actions == d->cap_actions) {
		size_t cap = d->cap_actions ? d->cap_actions * 2 : 16;
		rollout_action *a = realloc(out->actions, cap * sizeof *a);
		if (!a)
			return NULL;
		out->actions = a;
		d->cap_actions = cap;
	}
	rollout_action *a = &out->actions[out->n_actions++];
	*a = (rollout_action) {};
	return a;
}

int decide_plan_action(dctx *d, rollout_action_kind kind, const char *fmt, ...) {
	rollout_action *a = new_action(d);
	va_list ap;

	if (!a)
		return -ENOMEM;
	a->kind = kind;
	va_start(ap, fmt);
	vsnprintf(a->line, sizeof a->line, fmt, ap);
	va_end(ap);
	return 0;
}

int decide_issue(dctx *d, nctx *nc, const rollout_order *o) {
	rollout_action *a = new_action(d);

	if (!a)
		return -ENOMEM;
	a->kind = ROLLOUT_WRITE_ORDER;
	a->node = nc->n->id;
	if (rollout_order_copy(o, &a->order) < 0) {
		d->out->n_actions--;
		return -ENOMEM;
	}
	const char *what = rollout_verb_to_string(o->verb);
	if (o->role == ROLLOUT_ROLE_CANARY)
		snprintf(a->line, sizeof a->line, "node %s: %s (canary) to %s", nc->n->id, what,
			 o->target.image ? o->target.image : "-");
	else if (o->role == ROLLOUT_ROLE_BATCH && o->verb != ROLLOUT_FINISH)
		snprintf(a->line, sizeof a->line, "node %s: %s (batch %d) to %s", nc->n->id, what, o->batch,
			 o->target.image ? o->target.image : "-");
	else
		snprintf(a->line, sizeof a->line, "node %s: %s%s (plan %s gen %" PRId64 ")", nc->n->id, what,
			 o->cleanup ? " with cleanup" : "", o->plan, o->generation);
	nc->ordered = true;
	nc->ordered_verb = o->verb;
	return 0;
}

int decide_order(dctx *d, nctx *nc, rollout_verb verb, rollout_role role, int batch, const rollout_target *target,
		 const rollout_target *from, bool cleanup) {
	rollout_order o = {
		.plan = d->s->plan,
		.generation = d->s->generation,
		.verb = verb,
		.role = role,
		.batch = batch,
		.target = target ? *target : (rollout_target) {},
		.from = from ? *from : (rollout_target) {},
		.cleanup = cleanup,
		.issued = d->now,
	};
	return decide_issue(d, nc, &o);
}

/* ---- phase changes ------------------------------------------------------------------ */

int decide_set_phase(dctx *d, rollout_phase phase, const char *reason) {
	rollout_state *s = d->s;
	char *r = strdup(reason ? reason : "");

	if (!r)
		return -ENOMEM;
	free(s->reason);
	s->reason = r;
	snprintf(d->last_reason, sizeof d->last_reason, "%s", reason ? reason : "");
	s->phase = phase;
	s->phase_since = d->now;
	s->progress_at = d->now;
	s->gate = ROLLOUT_GATE_NONE;
	s->gate_at = 0;
	if (phase != ROLLOUT_PAUSED)
		s->pause = ROLLOUT_PAUSE_NONE;
	if (rollout_phase_terminal(phase)) {
		s->finished = d->now;
		d->entered_terminal = true;
	}
	return 1;
}

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

static void count(rollout_output *out, const nctx *nc) {
	if (!nc->in_scope && !nc->o)
		return;
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
	return streq_ptr(a->image, b->image);
}

static bool state_eq(const rollout_state *a, const rollout_state *b) {
	return streq_ptr(a->plan, b->plan) && a->generation == b->generation && a->phase == b->phase &&
	       a->paused_from == b->paused_from && a->pause == b->pause && a->batch == b->batch &&
	       a->phase_since == b->phase_since && a->started == b->started && a->bake_until == b->bake_until &&
	       a->progress_at == b->progress_at && a->finished == b->finished && streq_ptr(a->reason, b->reason) &&
	       streq_ptr(a->waiting, b->waiting) && target_eq(&a->previous, &b->previous) &&
	       a->retry_seen == b->retry_seen && a->gate == b->gate && a->gate_at == b->gate_at;
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
		.reason = strdup("new plan"),
	};
	if (!s->plan || !s->reason || (d->in->stable && rollout_target_copy(d->in->stable, &s->previous) < 0))
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
	if (!d->nodes)
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
		if ((r = decide_step(d)) <= 0)
			return r;
	}
	return 0;
}

int rollout_decide(const rollout_input *in, rollout_output *out) {
	dctx d = { .in = in, .plan = in->plan, .out = out, .s = &out->state, .n = in->n_nodes, .now = in->now };
	int r;

	*out = (rollout_output) {};
	d.start_phase = in->state->phase;
	out->state = *in->state;
	out->state.plan = rollout_strdup_or_null(in->state->plan);
	out->state.reason = rollout_strdup_or_null(in->state->reason);
	out->state.waiting = rollout_strdup_or_null(in->state->waiting);
	out->state.previous = (rollout_target) {};
	if ((in->state->plan && !out->state.plan) || (in->state->reason && !out->state.reason) ||
	    (in->state->waiting && !out->state.waiting) ||
	    rollout_target_copy(&in->state->previous, &out->state.previous) < 0) {
		rollout_output_done(out);
		return -ENOMEM;
	}
	r = in->plan ? decide_run(&d) : 0;
	if (r >= 0)
		r = finish_output(&d);
	free(d.nodes);
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
