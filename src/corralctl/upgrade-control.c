/* upgrade-control.c — `corralctl upgrade pause|resume|promote|abort|
 * rollback|retry`: the operator's controls are fields of the plan's
 * "control" object (include/rollout.h), so each verb is a compare-and-set
 * of upgrade/plan that changes exactly its field, guarded by the plan's
 * and the state's mod revisions (the phase it checked is the phase it
 * acted on) and tried again when either moved meanwhile. The leader reads
 * the plan level-triggered and does the rest. */
#include <errno.h>
#include <stdlib.h>

#include "ctl.h"

typedef enum control_verb {
	CONTROL_PAUSE,
	CONTROL_RESUME,
	CONTROL_PROMOTE,
	CONTROL_ABORT,
	CONTROL_ROLLBACK,
	CONTROL_RETRY,
} control_verb;

/* What a verb makes of the stored plan. */
typedef enum control_result {
	CONTROL_WRITE,          /* set the field: write */
	CONTROL_ALREADY,        /* nothing to change: said so, exit 0 */
	CONTROL_REFUSED,        /* makes no sense now: said why, exit 1 */
} control_result;

static const char *phase_name(rollout_phase p) {
	return rollout_phase_to_string(p) ?: "?";
}

/* "corralctl: plan p1 is succeeded: nothing to abort"; exit 1. */
static control_result refuse(const char *id, const char *phase, const char *why) {
	fprintf(stderr, "corralctl: plan %s is %s: %s\n", id, phase, why);
	return CONTROL_REFUSED;
}

static control_result already(char *text, size_t size, const char *id, const char *what) {
	snprintf(text, size, "plan %s: already %s", id, what);
	return CONTROL_ALREADY;
}

static bool waits_for_promotion(const ctl_upgrade_stored *s) {
	return s->phase == ROLLOUT_PAUSED &&
	       (s->state.pause == ROLLOUT_PAUSE_PROMOTION || s->state.pause == ROLLOUT_PAUSE_GATE);
}

/* Sets the verb's field in control (the plan's "control" object), or
 * says why not; text: the line to print on success. */
static control_result control_edit(const ctl_upgrade_stored *s, control_verb v, json_t *control, char *text,
				   size_t size) {
	const rollout_plan *p = &s->plan;
	const char *id = p->id, *phase = phase_name(s->phase);
	bool terminal = rollout_phase_terminal(s->phase);

	switch (v) {
	case CONTROL_PAUSE:
		if (terminal)
			return refuse(id, phase, "nothing to pause");
		if (p->paused)
			return already(text, size, id, "paused (resume: corralctl upgrade resume)");
		json_object_set_new(control, "paused", json_true());
		snprintf(text, size, "plan %s: pausing: nodes in flight finish, nothing new starts "
			 "(corralctl upgrade resume goes on)", id);
		return CONTROL_WRITE;
	case CONTROL_RESUME:
		if (!p->paused && waits_for_promotion(s))
			return refuse(id, "paused for promotion, not by an operator",
				      "corralctl upgrade promote goes on");
		if (!p->paused)
			return refuse(id, phase, "not paused");
		json_object_set_new(control, "paused", json_false());
		snprintf(text, size, "plan %s: resumed", id);
		return CONTROL_WRITE;
	case CONTROL_PROMOTE:
		if (!waits_for_promotion(s))
			return refuse(id, phase,
				      p->paused ? "paused by an operator, not waiting for promotion (corralctl "
						  "upgrade resume goes on)"
						: "not waiting for promotion");
		if (p->promote >= s->state.generation)
			return already(text, size, id, "promoted");
		json_object_set_new(control, "promote", json_integer(s->state.generation));
		snprintf(text, size, "plan %s: generation %lld promoted: the batches start", id,
			 (long long) s->state.generation);
		return CONTROL_WRITE;
	case CONTROL_ABORT:
		if (terminal)
			return refuse(id, phase, "nothing to abort");
		if (p->abort)
			return already(text, size, id, "aborting");
		json_object_set_new(control, "abort", json_true());
		snprintf(text, size, "plan %s: aborting: nodes in flight finish, then it is cancelled", id);
		return CONTROL_WRITE;
	case CONTROL_ROLLBACK:
		if (s->phase == ROLLOUT_ROLLING_BACK || s->phase == ROLLOUT_ROLLED_BACK)
			return refuse(id, phase, "already");
		if (s->phase == ROLLOUT_PENDING || s->phase == ROLLOUT_PREPARING)
			return refuse(id, phase, "no node changed yet (corralctl upgrade abort stops it)");
		if (p->rollback)
			return already(text, size, id, "rolling back");
		json_object_set_new(control, "rollback", json_true());
		snprintf(text, size, "plan %s: rolling back the nodes it changed", id);
		return CONTROL_WRITE;
	case CONTROL_RETRY:
		if (s->phase != ROLLOUT_FAILED && s->phase != ROLLOUT_CANCELLED && s->phase != ROLLOUT_ROLLED_BACK)
			return refuse(id, phase, "retry is for a failed, cancelled or rolled back plan");
		json_object_set_new(control, "retry", json_integer(p->retry + 1));
		json_object_set_new(control, "abort", json_false());
		json_object_set_new(control, "rollback", json_false());
		snprintf(text, size, "plan %s: retry %lld: a new generation starts (nodes on the target are skipped)",
			 id, (long long) p->retry + 1);
		return CONTROL_WRITE;
	}
	return CONTROL_REFUSED;
}

/* One try: read, check, edit, compare-and-set. Exit code, or -ESTALE to
 * try again. */
static int control_try(ctl_t *c, control_verb v) {
	_cleanup_(ctl_upgrade_stored_done) ctl_upgrade_stored s = {};
	_cleanup_free_ char *value = NULL;
	char text[512];
	int r;

	if (ctl_upgrade_read(c, &s) < 0)
		return 1;
	if (!s.plan_text) {
		fprintf(stderr, "corralctl: no upgrade plan at %s (corralctl upgrade start makes one)\n", s.plan_key);
		return 1;
	}
	if (!s.have_plan) {
		fprintf(stderr, "corralctl: the stored plan %s is invalid: %s (corralctl upgrade start --supersede "
			"replaces it)\n", s.plan_key, s.plan_error);
		return 1;
	}
	json_t *control = json_object_get(s.plan_doc, "control");
	if (!json_is_object(control)) {
		control = json_object();
		if (!control || json_object_set_new(s.plan_doc, "control", control) < 0)
			return 1;
	}
	switch (control_edit(&s, v, control, text, sizeof text)) {
	case CONTROL_REFUSED:
		return 1;
	case CONTROL_ALREADY:
		return ctl_report(c, "none", s.plan_key, s.plan_text, text);
	case CONTROL_WRITE:
		break;
	}
	value = json_dumps(s.plan_doc, JSON_INDENT(2));
	if (!value)
		return 1;
	if ((r = ctl_upgrade_put(c, &s, value)) != 0)
		return r;
	return ctl_report(c, "put", s.plan_key, value, text);
}

static int control_run(ctl_t *c, void *userdata) {
	return control_try(c, *(const control_verb *) userdata);
}

static int control(ctl_t *c, control_verb v) {
	return ctl_upgrade_cas(c, control_run, &v);
}

int ctl_upgrade_pause(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_PAUSE);
}

int ctl_upgrade_resume(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_RESUME);
}

int ctl_upgrade_promote(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_PROMOTE);
}

int ctl_upgrade_abort(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_ABORT);
}

int ctl_upgrade_rollback(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_ROLLBACK);
}

int ctl_upgrade_retry(ctl_t *c, ctl_opts *o) {
	return control(c, CONTROL_RETRY);
}
