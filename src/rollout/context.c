/* context.c — the rollout decision's context (decide.h): each node
 * classified against the plan and generation (its order, the progress on
 * that order, done / running / failed, in flight, healthy, changed), the
 * actions, phase changes; and the two rules other code reuses, the batch
 * budget and node eligibility. The rules per phase are in phases.c, the
 * decision's frame and output in decide.c. */
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
	else if (rollout_plan_staged(p))
		;       /* a config needs no upgrade section, and follows `current` */
	else if (rollout_plan_both(p)) {
		bool replace;
		w = replace_both_ineligible(p, n, &replace);
	} else if (decide_replacing(p))
		w = replace_ineligible(p, n);
	else if (!n->image)
		w = "no upgrade config";
	else if (rollout_target_matches(&p->target, n->image))
		w = "already on target";
	if (why)
		*why = w;
	return !w;
}

bool rollout_node_replaced(const rollout_plan *p, const rollout_node *n) {
	bool replace = decide_replacing(p);

	if (rollout_plan_both(p))
		(void) replace_both_ineligible(p, n, &replace);
	return replace;
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

static bool baking(const dctx *d) {
	rollout_phase ph = d->s->phase;
	return ph == ROLLOUT_CANARY_BAKE || ph == ROLLOUT_FINAL_BAKE;
}

/* The node is on its order's target: its image, and for an upgrade to a
 * config the snapshot its progress says it applied (a re-issued order on
 * a rebased candidate is not done on the old one). A config rollback
 * unpins: it is done on whatever `current` the node then applied. */
static bool reached(const rollout_order *o, const rollout_progress *p, const rollout_node *n) {
	if (o->verb == ROLLOUT_UPGRADE && o->target.config && !streq_ptr(p->config, o->target.config))
		return false;
	return rollout_target_matches(&o->target, n->image);
}

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
	if (rollout_order_replaces(o)) {
		time_t wake = 0;
		replace_eval(d, nc, &wake);
		return decide_wake(d, wake);
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
		time_t healthy_at = p->finished + pl->min_healthy_time;
		if (!n->registered || !n->status_ok) {
			/* Unhealthy while proving itself, or during a bake, is the
			 * target's fault. A node done before that goes away later
			 * (a corrald restart past its lease, a host reboot) counts
			 * against the budget as unhealthy, and fails nothing. */
			if (d->now >= healthy_at && !baking(d)) {
				nc->st = NS_DONE;
				return;
			}
			snprintf(nc->fail, sizeof nc->fail, "%s after its steps",
				 n->registered ? "unhealthy" : "unregistered");
			nc->st = NS_FAILED;
			return;
		}
		if (reached(o, p, n)) {
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
		nc->changed = (o->verb == ROLLOUT_UPGRADE && (nc->p || rollout_order_replaces(o))) ||
		              o->verb == ROLLOUT_ROLLBACK ||
		              (o->verb == ROLLOUT_FINISH && o->role != ROLLOUT_ROLE_NONE);
	} else {
		nc->in_scope = n->registered && rollout_plan_covers(d->plan, n->pool);
		nc->busy = o && foreign_busy(n);
	}
	nc->healthy = n->registered && n->status_ok && !nc->in_flight;
	/* a node's kind: its order's once it has one (a replaced host then
	 * drains), else the plan's rule for its host */
	nc->replace = d->both ? (nc->o ? rollout_order_replaces(nc->o) : rollout_node_replaced(d->plan, n)) : d->replace;
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

static int cmp_instance(const void *a, const void *b) {
	return strcmp((*(nctx *const *) a)->n->instance, (*(nctx *const *) b)->n->instance);
}

/* A plan with both: the nodes whose host replaced one of the plan's. Their
 * image needs no rollback in place: the replaced node's rollback drains
 * them (and a host terminated mid-rollback would fail it). */
static void mark_replacements(dctx *d) {
	size_t m = 0;

	for (size_t i = 0; i < d->n; i++)
		if (d->nodes[i].n->instance)
			d->by_instance[m++] = &d->nodes[i];
	qsort(d->by_instance, m, sizeof *d->by_instance, cmp_instance);
	for (size_t i = 0; i < d->n; i++) {
		const nctx *nc = &d->nodes[i];
		if (!nc->o || !nc->replace || !nc->n->replacement)
			continue;
		rollout_node key = { .instance = nc->n->replacement };
		nctx kc = { .n = &key }, *kp = &kc, **hit = bsearch(&kp, d->by_instance, m, sizeof *d->by_instance,
								    cmp_instance);
		if (hit)
			(*hit)->replacement = true;
	}
}

void decide_classify(dctx *d) {
	for (size_t i = 0; i < d->n; i++) {
		classify_one(d, &d->nodes[i]);
		advance_progress_at(d, &d->nodes[i]);
	}
	if (d->both)
		mark_replacements(d);
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
	const char *to = o->target.image ? o->target.image : o->target.config ? o->target.config : "-";
	if (o->role == ROLLOUT_ROLE_CANARY)
		snprintf(a->line, sizeof a->line, "node %s: %s (canary) to %s", nc->n->id, what, to);
	else if (o->role == ROLLOUT_ROLE_BATCH && o->verb != ROLLOUT_FINISH)
		snprintf(a->line, sizeof a->line, "node %s: %s (batch %d) to %s", nc->n->id, what, o->batch, to);
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
