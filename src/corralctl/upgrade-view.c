/* upgrade-view.c — `corralctl upgrade status` and `upgrade plan`, both
 * from the leader's own view: the same one-txn read (rollout_snapshot_read,
 * src/rollout/snapshot.c), rollout_observe(), and then rollout_decide()
 * for each node's step and health (status) or rollout_schedule_build()
 * for the schedule (plan). No rule is repeated here: what status says a
 * node is doing is what the leader would decide now. Writes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "rollout-loop.h"

/* The leader's input as etcd holds it now. Exit code. */
static int observe(ctl_t *c, rollout_snapshot *snap, rollout_view *view) {
	char err[512] = "";
	int r;

	r = rollout_snapshot_read(c->etcd, c->prefix, snap, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "corralctl: etcd: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	r = rollout_observe(&snap->records, view);
	if (r < 0) {
		fprintf(stderr, "corralctl: reading the upgrade records failed: %s\n", strerror(-r));
		return 1;
	}
	for (size_t i = 0; c->verbosity > CTL_QUIET && i < view->n_notes; i++)
		fprintf(stderr, "corralctl: warning: %s\n", view->notes[i]);
	if (view->plan_error)
		fprintf(stderr, "corralctl: warning: the stored plan is not used: %s\n", view->plan_error);
	return 0;
}

/* ---- status ------------------------------------------------------------------ */

/* The node's progress when it reports on the stored state's plan and
 * generation (anything else is stale), else NULL. */
static const rollout_progress *current_progress(const rollout_state *st, const rollout_node *n) {
	const rollout_progress *p = n->progress;

	if (!p || !st->plan || !p->plan || !streq(p->plan, st->plan) || p->generation != st->generation)
		return NULL;
	return p;
}

/* "4/9 stop cms-app.service" (step counted from 1), or "" */
static void progress_text(const rollout_progress *p, char *buf, size_t size) {
	buf[0] = '\0';
	if (!p)
		return;
	if (p->n_steps == 0) {          /* nothing to run (a finish with no undo or cleanup) */
		snprintf(buf, size, "%s: nothing to run", rollout_verb_to_string(p->verb) ?: "?");
		return;
	}
	snprintf(buf, size, "%s %d/%d%s%s%s%s", rollout_verb_to_string(p->verb) ?: "?", p->step + 1, p->n_steps,
		 p->step_name ? " " : "", p->step_name ? p->step_name : "", p->error ? ": " : "",
		 p->error ? p->error : "");
}

static json_t *node_json(const rollout_state *st, const rollout_node *n, const rollout_node_view *nv) {
	const rollout_progress *p = current_progress(st, n);
	char detail[512];

	progress_text(p, detail, sizeof detail);
	return json_pack("{s:s?, s:s?, s:s?, s:s?, s:b, s:s?, s:s?, s:s?}", "image", n->image, "config", n->config,
			 "step", nv->step, "state", p ? rollout_step_state_to_string(p->state) : NULL, "healthy",
			 nv->healthy, "order", n->order ? rollout_verb_to_string(n->order->verb) : NULL, "progress",
			 p ? detail : NULL, "pool", n->pool);
}

static int status_json(const rollout_view *v, const rollout_output *out, int64_t revision) {
	json_auto_t *o = v->state.plan ? rollout_state_to_json(&v->state) : json_pack("{s:n, s:n}", "plan", "phase");
	json_t *nodes = json_object();

	if (!o || !nodes || json_object_set_new(o, "nodes", nodes) < 0)
		return 1;
	for (size_t i = 0; i < v->input.n_nodes && i < out->n_nodes; i++) {
		json_t *n = node_json(&v->state, &v->input.nodes[i], &out->nodes[i]);
		if (!n || json_object_set_new(nodes, v->input.nodes[i].id, n) < 0)
			return 1;
	}
	json_object_set_new(o, "stored_plan", v->have_plan ? json_string(v->plan.id) : json_null());
	json_object_set_new(o, "target", v->have_plan && v->plan.target.image ? json_string(v->plan.target.image)
										: json_null());
	json_object_set_new(o, "target_config", v->have_plan && v->plan.target.config
							? json_string(v->plan.target.config) : json_null());
	json_object_set_new(o, "plan_target", v->have_plan ? rollout_target_to_json(&v->plan.target) : json_null());
	json_object_set_new(o, "current", v->current ? json_string(v->current) : json_null());
	json_object_set_new(o, "plan_error", v->plan_error ? json_string(v->plan_error) : json_null());
	json_object_set_new(o, "next", out->line[0] ? json_string(out->line) : json_null());
	json_object_set_new(o, "revision", json_integer(revision));
	return ctl_print_json(o);
}

/* "image X", "config Y", "ami Z", "launch template version N": what the
 * plan's target names, for the lines below. */
static const char *target_text(const rollout_target *t, char *buf, size_t size) {
	if (t->config)
		snprintf(buf, size, "config %s", t->config);
	else if (t->ami)
		snprintf(buf, size, "ami %s", t->ami);
	else if (t->launch_template_version)
		snprintf(buf, size, "launch template version %s", t->launch_template_version);
	else
		snprintf(buf, size, "image %s", t->image ? t->image : "-");
	return buf;
}

/* A staged config: the candidate, what it was made on, its rebases, the
 * promotion, and `current` now. */
static void staged_lines(const rollout_view *v) {
	const rollout_state *st = &v->state;
	char when[32];

	if (!st->candidate)
		return;
	printf("config: candidate %s (made on %s), %" PRId64 " rebase%s, ", st->candidate,
	       st->candidate_base ? st->candidate_base : "nothing", st->rebases, st->rebases == 1 ? "" : "s");
	if (st->promoted) {
		ctl_format_time(when, st->promoted);
		printf("promoted %s", when);
	} else
		printf("not promoted");
	printf("; current %s\n", v->current ? v->current : "(none)");
}

static int status_table(const rollout_view *v, const rollout_output *out) {
	bool staged = v->have_plan && rollout_plan_staged(&v->plan);
	bool replace = v->have_plan && rollout_target_replaces(&v->plan.target);
	bool both = v->have_plan && rollout_plan_both(&v->plan);
	const char *runs_h = staged ? "CONFIG" : both ? "HOST (VERSION, AMI), IMAGE" : replace ? "HOST (VERSION, AMI)" : "IMAGE";
	const char *header[] = { "NODE", runs_h, "STEP", "STATE", "HEALTHY", "PROGRESS" };
	char what[160];
	const rollout_state *st = &v->state;
	size_t n = v->input.n_nodes < out->n_nodes ? v->input.n_nodes : out->n_nodes;
	_cleanup_free_ char **rows = calloc(n * ELEMENTSOF(header) + 1, sizeof *rows);
	char when[32];

	if (!rows)
		return 1;
	if (!st->plan && !v->have_plan)
		printf("no upgrade plan (corralctl upgrade start makes one)\n");
	if (v->have_plan && (!st->plan || !streq(st->plan, v->plan.id)))
		printf("plan %s (%s): not taken up by the leader yet\n", v->plan.id,
		       target_text(&v->plan.target, what, sizeof what));
	if (st->plan) {
		ctl_format_time(when, st->phase_since);
		printf("plan %s generation %" PRId64 ": %s%s%s since %s, batch %d\n", st->plan, st->generation,
		       rollout_phase_to_string(st->phase) ?: "?", st->phase == ROLLOUT_PAUSED ? " " : "",
		       st->phase == ROLLOUT_PAUSED ? rollout_pause_to_string(st->pause) ?: "" : "", when, st->batch);
		if (st->reason && *st->reason)
			printf("reason: %s\n", st->reason);
		if (st->waiting && *st->waiting)
			printf("waiting: %s\n", st->waiting);
		staged_lines(v);
		if (replace)
			printf("%s: replacements launch on launch template version %s\n",
			       target_text(&v->plan.target, what, sizeof what),
			       st->launch_template_version ? st->launch_template_version : "(not made yet)");
	}
	if (out->line[0])
		printf("next decision: %s\n", out->line);
	for (size_t i = 0; i < n; i++) {
		const rollout_node *node = &v->input.nodes[i];
		const rollout_progress *p = current_progress(st, node);
		char **row = rows + i * ELEMENTSOF(header), detail[512];

		progress_text(p, detail, sizeof detail);
		row[0] = strdup(node->id);
		const char *runs = staged ? node->config : node->image;
		if (replace)
			snprintf(what, sizeof what, "%s, %s%s%s", node->launch_template_version ?: "-", node->image_id ?: "-",
				 both ? ", " : "", both ? node->image ?: "-" : "");
		row[1] = strdup(replace ? what : runs ? runs : "-");
		row[2] = strdup(out->nodes[i].step ? out->nodes[i].step : "-");
		row[3] = strdup(p ? rollout_step_state_to_string(p->state) ?: "?" : "-");
		row[4] = strdup(out->nodes[i].healthy ? "yes" : "no");
		row[5] = strdup(p ? detail : "-");
	}
	if (n > 0)
		putchar('\n');
	return ctl_print_rows(header, rows, n, ELEMENTSOF(header));
}

int ctl_upgrade_status(ctl_t *c, ctl_opts *o) {
	_cleanup_(rollout_snapshot_done) rollout_snapshot snap = {};
	_cleanup_(rollout_view_done) rollout_view view = {};
	_cleanup_(rollout_output_done) rollout_output out = {};
	int r;

	if ((r = observe(c, &snap, &view)) != 0)
		return r;
	/* the leader's decision now: each node's step and health */
	if (rollout_decide(&view.input, &out) < 0)
		return 1;
	return c->format == FORMAT_JSON ? status_json(&view, &out, snap.revision) : status_table(&view, &out);
}

/* ---- plan: the schedule -------------------------------------------------------- */

static json_t *names_json(const char *const *names, size_t n) {
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	return a;
}

static int schedule_json(const rollout_plan *p, const rollout_schedule *s) {
	json_auto_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:{}, s:o, s:[]}", "plan", p->id, "target",
				   p->target.image, "target_config", p->target.config, "config_base", p->config_base,
				   "skipped", "canary", names_json(s->canary, s->n_canary), "batches");

	if (!o)
		return 1;
	for (size_t i = 0; i < s->n_skipped; i++)
		json_object_set_new(json_object_get(o, "skipped"), s->skipped[i], json_string(s->skipped_why[i]));
	for (size_t i = 0; i < s->n_batches; i++)
		json_array_append_new(json_object_get(o, "batches"), names_json(s->batches[i], s->batch_sizes[i]));
	return ctl_print_json(o);
}

int ctl_upgrade_schedule(ctl_t *c, ctl_opts *o) {
	_cleanup_(rollout_snapshot_done) rollout_snapshot snap = {};
	_cleanup_(rollout_view_done) rollout_view view = {};
	_cleanup_(rollout_plan_done) rollout_plan given = {};
	_cleanup_(rollout_schedule_done) rollout_schedule s = {};
	const rollout_plan *p = NULL;
	bool generated;
	int r;

	if ((o->given & CTL_OPT_PLAN_KNOBS) && (r = ctl_upgrade_plan_build(o, time(NULL), &given, &generated)) != 0)
		return r;
	if ((r = observe(c, &snap, &view)) != 0)
		return r;
	p = given.id ? &given : view.have_plan ? &view.plan : NULL;
	if (!p) {
		fprintf(stderr, "corralctl: no stored plan: describe one (--image REF ..., or --plan FILE)\n");
		return 1;
	}
	rollout_input in = view.input;
	in.plan = p;
	if (rollout_schedule_build(&in, &s) < 0)
		return 1;
	if (c->format == FORMAT_JSON)
		return schedule_json(p, &s);
	_cleanup_free_ char *text = rollout_schedule_format(p, &s);
	if (!text)
		return 1;
	fputs(text, stdout);
	return ctl_flush();
}
