/* records.c — the JSON codecs of what the leader and the nodes store:
 * the target (upgrade/stable, and inside plans and orders), the leader's
 * state (upgrade/state), a node's order (upgrade/nodes/<id>) and its
 * progress (upgrade/progress/<id>). Times are stored as seconds since the
 * epoch (RFC 3339 UTC strings are read too). Records written by a newer
 * corral may carry keys this one does not know: they are ignored here
 * (the plan, written by hand, is strict: plan.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "rollout-internal.h"

/* ---- target ------------------------------------------------------------------ */

/* A launch template version is a number: "$Latest" and "$Default" move
 * under a running plan. */
static int get_version(json_t *j, char **out, rollout_error *err) {
	json_t *v = json_object_get(j, "launch_template_version");

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 1)
			return rollout_fail(err, "target.launch_template_version", "must be a version number >= 1");
		return asprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0 ? -ENOMEM : 0;
	}
	int r = rollout_get_str(j, "target", "launch_template_version", false, out, err);
	if (r < 0 || !*out)
		return r;
	const char *c = *out;
	while (*c >= '0' && *c <= '9')
		c++;
	if (!**out || *c || **out == '0')
		return rollout_fail(err, "target.launch_template_version",
				    "must be a version number (\"$Latest\" and \"$Default\" move under a running plan)");
	return 0;
}

int rollout_target_from_json(json_t *j, rollout_target *out, rollout_error *err) {
	_cleanup_(rollout_target_done) rollout_target t = {};
	int r;

	if (j && !json_is_null(j)) {
		if (!json_is_object(j))
			return rollout_fail(err, "target", "must be an object");
		if ((r = rollout_get_str(j, "target", "image", false, &t.image, err)) < 0 ||
		    (r = rollout_get_str(j, "target", "config", false, &t.config, err)) < 0 ||
		    (r = rollout_get_str(j, "target", "ami", false, &t.ami, err)) < 0 ||
		    (r = get_version(j, &t.launch_template_version, err)) < 0)
			return r;
		if (t.image && !*t.image)
			return rollout_fail(err, "target.image", "must not be empty");
		if (t.config && !keys_id_valid(t.config, strlen(t.config)))
			return rollout_fail(err, "target.config", "must be a snapshot id");
		if (t.ami && (strncmp(t.ami, "ami-", 4) != 0 || !t.ami[4]))
			return rollout_fail(err, "target.ami", "must be an image id (\"ami-...\")");
	}
	*out = t;
	t = (rollout_target) {};
	return 0;
}

json_t *rollout_target_to_json(const rollout_target *t) {
	static const rollout_target none = {};
	if (!t)
		t = &none;
	return json_pack("{s:o, s:o, s:o, s:o}", "image", rollout_str_or_null(t->image), "config",
			 rollout_str_or_null(t->config), "launch_template_version",
			 rollout_str_or_null(t->launch_template_version), "ami", rollout_str_or_null(t->ami));
}

void rollout_target_done(rollout_target *t) {
	if (!t)
		return;
	free(t->image);
	free(t->config);
	free(t->launch_template_version);
	free(t->ami);
	*t = (rollout_target) {};
}

bool rollout_target_empty(const rollout_target *t) {
	return !t || (!t->image && !t->config && !t->launch_template_version && !t->ami);
}

bool rollout_target_matches(const rollout_target *t, const char *image) {
	return !t || !t->image || (image && strcmp(t->image, image) == 0);
}

bool rollout_target_replaces(const rollout_target *t) {
	return t && (t->launch_template_version || t->ami);
}

int rollout_target_copy(const rollout_target *src, rollout_target *dst) {
	*dst = (rollout_target) {
		.image = rollout_strdup_or_null(src->image),
		.config = rollout_strdup_or_null(src->config),
		.launch_template_version = rollout_strdup_or_null(src->launch_template_version),
		.ami = rollout_strdup_or_null(src->ami),
	};
	if ((src->image && !dst->image) || (src->config && !dst->config) ||
	    (src->launch_template_version && !dst->launch_template_version) || (src->ami && !dst->ami)) {
		rollout_target_done(dst);
		return -ENOMEM;
	}
	return 0;
}

/* A nested target field ("previous", "target", "from"). */
static int get_target(json_t *o, const char *ctx, const char *name, rollout_target *out, rollout_error *err) {
	json_t *v = json_object_get(o, name);
	rollout_error sub = {};
	char k[128];

	int r = rollout_target_from_json(v, out, &sub);
	if (r == -EINVAL)
		/* "target.image: ..." -> "<ctx>.<name>.image: ..." */
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "%s",
				    strchr(sub.message, ':') ? strchr(sub.message, ':') + 2 : sub.message);
	return r;
}

typedef enum enum_kind { E_PHASE, E_PAUSE, E_VERB, E_ROLE, E_STEP_STATE, E_GATE } enum_kind;

/* out points at a field of the kind's enum type. */
static int parse_enum(enum_kind kind, const char *s, void *out) {
	switch (kind) {
	case E_PHASE:
		return rollout_phase_from_string(s, out);
	case E_PAUSE:
		return rollout_pause_from_string(s, out);
	case E_VERB:
		return rollout_verb_from_string(s, out);
	case E_ROLE:
		return rollout_role_from_string(s, out);
	case E_STEP_STATE:
		return rollout_step_state_from_string(s, out);
	case E_GATE:
		return rollout_gate_from_string(s, out);
	}
	return -EINVAL;
}

static int get_enum(json_t *o, const char *ctx, const char *name, enum_kind kind, void *out, bool required,
		    rollout_error *err) {
	_cleanup_free_ char *s = NULL;
	char k[128];

	int r = rollout_get_str(o, ctx, name, required, &s, err);
	if (r < 0 || !s)
		return r;
	if (parse_enum(kind, s, out) < 0)
		return rollout_fail(err, rollout_key(k, sizeof k, ctx, name), "unknown value \"%.40s\"", s);
	return 0;
}

/* ---- state ------------------------------------------------------------------- */

int rollout_state_from_json(json_t *doc, rollout_state *out, rollout_error *err) {
	rollout_state s = { .paused_from = ROLLOUT_PENDING };
	int64_t batch = 0;
	int r;

	if (!json_is_object(doc))
		return rollout_fail(err, "", "state must be a JSON object");
	if ((r = rollout_get_str(doc, "", "plan", true, &s.plan, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "generation", 1, INT64_MAX, &s.generation, err)) < 0 ||
	    (r = get_enum(doc, "", "phase", E_PHASE, &s.phase, true, err)) < 0 ||
	    (r = get_enum(doc, "", "paused_from", E_PHASE, &s.paused_from, false,
			  err)) < 0 ||
	    (r = get_enum(doc, "", "pause", E_PAUSE, &s.pause, false, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "batch", 0, 1000000, &batch, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "phase_since", &s.phase_since, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "started", &s.started, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "bake_until", &s.bake_until, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "progress_at", &s.progress_at, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "finished", &s.finished, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "reason", false, &s.reason, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "waiting", false, &s.waiting, err)) < 0 ||
	    (r = get_target(doc, "", "previous", &s.previous, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "retry_seen", 0, INT64_MAX, &s.retry_seen, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "promote_seen", 0, INT64_MAX, &s.promote_seen, err)) < 0 ||
	    (r = get_enum(doc, "", "gate", E_GATE, &s.gate, false, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "gate_at", &s.gate_at, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "candidate", false, &s.candidate, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "candidate_base", false, &s.candidate_base, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "rebases", 0, INT64_MAX, &s.rebases, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "promoted", &s.promoted, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "launch_template_version", false, &s.launch_template_version, err)) < 0) {
		rollout_state_done(&s);
		return r;
	}
	if (s.generation == 0) {
		rollout_state_done(&s);
		return rollout_fail(err, "generation", "is required");
	}
	s.batch = (int) batch;
	*out = s;
	return 0;
}

json_t *rollout_state_to_json(const rollout_state *s) {
	json_auto_t *o = json_object();

	if (!o || rollout_set(o, "plan", rollout_str_or_null(s->plan)) < 0 ||
	    rollout_set(o, "generation", json_integer(s->generation)) < 0 ||
	    rollout_set(o, "phase", json_string(rollout_phase_to_string(s->phase))) < 0 ||
	    rollout_set(o, "paused_from", json_string(rollout_phase_to_string(s->paused_from))) < 0 ||
	    rollout_set(o, "pause", json_string(rollout_pause_to_string(s->pause))) < 0 ||
	    rollout_set(o, "batch", json_integer(s->batch)) < 0 ||
	    rollout_set(o, "phase_since", json_integer(s->phase_since)) < 0 ||
	    rollout_set(o, "started", json_integer(s->started)) < 0 ||
	    rollout_set(o, "bake_until", json_integer(s->bake_until)) < 0 ||
	    rollout_set(o, "progress_at", json_integer(s->progress_at)) < 0 ||
	    rollout_set(o, "finished", json_integer(s->finished)) < 0 ||
	    rollout_set(o, "reason", rollout_str_or_null(s->reason)) < 0 ||
	    rollout_set(o, "waiting", rollout_str_or_null(s->waiting)) < 0 ||
	    rollout_set(o, "previous", rollout_target_to_json(&s->previous)) < 0 ||
	    rollout_set(o, "retry_seen", json_integer(s->retry_seen)) < 0 ||
	    rollout_set(o, "promote_seen", json_integer(s->promote_seen)) < 0 ||
	    rollout_set(o, "gate", json_string(rollout_gate_to_string(s->gate))) < 0 ||
	    rollout_set(o, "gate_at", json_integer(s->gate_at)) < 0 ||
	    rollout_set(o, "candidate", rollout_str_or_null(s->candidate)) < 0 ||
	    rollout_set(o, "candidate_base", rollout_str_or_null(s->candidate_base)) < 0 ||
	    rollout_set(o, "rebases", json_integer(s->rebases)) < 0 ||
	    rollout_set(o, "promoted", json_integer(s->promoted)) < 0 ||
	    rollout_set(o, "launch_template_version", rollout_str_or_null(s->launch_template_version)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

void rollout_state_done(rollout_state *s) {
	if (!s)
		return;
	free(s->plan);
	free(s->reason);
	free(s->waiting);
	rollout_target_done(&s->previous);
	free(s->candidate);
	free(s->candidate_base);
	free(s->launch_template_version);
	*s = (rollout_state) {};
}

/* ---- order ------------------------------------------------------------------- */

int rollout_order_from_json(json_t *doc, rollout_order *out, rollout_error *err) {
	rollout_order o = {};
	int64_t batch = 0;
	int r;

	if (!json_is_object(doc))
		return rollout_fail(err, "", "order must be a JSON object");
	if ((r = rollout_get_str(doc, "", "plan", true, &o.plan, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "generation", 1, INT64_MAX, &o.generation, err)) < 0 ||
	    (r = get_enum(doc, "", "verb", E_VERB, &o.verb, true, err)) < 0 ||
	    (r = get_enum(doc, "", "role", E_ROLE, &o.role, false, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "batch", 0, 1000000, &batch, err)) < 0 ||
	    (r = get_target(doc, "", "target", &o.target, err)) < 0 ||
	    (r = get_target(doc, "", "from", &o.from, err)) < 0 ||
	    (r = rollout_get_bool(doc, "", "cleanup", &o.cleanup, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "issued", &o.issued, err)) < 0) {
		rollout_order_done(&o);
		return r;
	}
	if (o.generation == 0) {
		rollout_order_done(&o);
		return rollout_fail(err, "generation", "is required");
	}
	o.batch = (int) batch;
	*out = o;
	return 0;
}

json_t *rollout_order_to_json(const rollout_order *o) {
	json_auto_t *j = json_object();

	if (!j || rollout_set(j, "plan", rollout_str_or_null(o->plan)) < 0 ||
	    rollout_set(j, "generation", json_integer(o->generation)) < 0 ||
	    rollout_set(j, "verb", json_string(rollout_verb_to_string(o->verb))) < 0 ||
	    rollout_set(j, "role", json_string(rollout_role_to_string(o->role))) < 0 ||
	    rollout_set(j, "batch", json_integer(o->batch)) < 0 ||
	    rollout_set(j, "target", rollout_target_to_json(&o->target)) < 0 ||
	    rollout_set(j, "from", rollout_target_to_json(&o->from)) < 0 ||
	    rollout_set(j, "cleanup", json_boolean(o->cleanup)) < 0 ||
	    rollout_set(j, "issued", json_integer(o->issued)) < 0)
		return NULL;
	return TAKE_PTR(j);
}

void rollout_order_done(rollout_order *o) {
	if (!o)
		return;
	free(o->plan);
	rollout_target_done(&o->target);
	rollout_target_done(&o->from);
	*o = (rollout_order) {};
}

int rollout_order_copy(const rollout_order *src, rollout_order *dst) {
	rollout_order o = *src;

	o.plan = rollout_strdup_or_null(src->plan);
	o.target = (rollout_target) {};
	o.from = (rollout_target) {};
	if ((src->plan && !o.plan) || rollout_target_copy(&src->target, &o.target) < 0 ||
	    rollout_target_copy(&src->from, &o.from) < 0) {
		rollout_order_done(&o);
		return -ENOMEM;
	}
	*dst = o;
	return 0;
}

/* ---- progress ---------------------------------------------------------------- */

static int get_indexes(json_t *doc, const char *name, int **out, size_t *n_out, rollout_error *err) {
	json_t *a = json_object_get(doc, name), *v;
	size_t i;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return rollout_fail(err, name, "must be an array of step indexes");
	int *x = calloc(json_array_size(a) + 1, sizeof *x);
	if (!x)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000) {
			free(x);
			return rollout_fail(err, name, "must be an array of step indexes");
		}
		x[i] = (int) json_integer_value(v);
	}
	*out = x;
	*n_out = json_array_size(a);
	return 0;
}

static json_t *indexes_to_json(const int *x, size_t n) {
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(x[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

int rollout_progress_from_json(json_t *doc, rollout_progress *out, rollout_error *err) {
	rollout_progress p = {};
	int64_t step = 0, n_steps = 0;
	int r;

	if (!json_is_object(doc))
		return rollout_fail(err, "", "progress must be a JSON object");
	if ((r = rollout_get_str(doc, "", "plan", true, &p.plan, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "generation", 1, INT64_MAX, &p.generation, err)) < 0 ||
	    (r = get_enum(doc, "", "verb", E_VERB, &p.verb, true, err)) < 0 ||
	    (r = get_enum(doc, "", "state", E_STEP_STATE, &p.state, true, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "step", 0, 100000, &step, err)) < 0 ||
	    (r = rollout_get_int(doc, "", "n_steps", 0, 100000, &n_steps, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "step_name", false, &p.step_name, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "boot_id", false, &p.boot_id, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "started", &p.started, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "finished", &p.finished, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "updated", &p.updated, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "error", false, &p.error, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "image", false, &p.image, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "config", false, &p.config, err)) < 0 ||
	    (r = get_indexes(doc, "once_done", &p.once_done, &p.n_once_done, err)) < 0 ||
	    (r = get_indexes(doc, "undo_pending", &p.undo_pending, &p.n_undo_pending, err)) < 0) {
		rollout_progress_done(&p);
		return r;
	}
	if (p.generation == 0) {
		rollout_progress_done(&p);
		return rollout_fail(err, "generation", "is required");
	}
	p.step = (int) step;
	p.n_steps = (int) n_steps;
	*out = p;
	return 0;
}

json_t *rollout_progress_to_json(const rollout_progress *p) {
	json_auto_t *j = json_object();

	if (!j || rollout_set(j, "plan", rollout_str_or_null(p->plan)) < 0 ||
	    rollout_set(j, "generation", json_integer(p->generation)) < 0 ||
	    rollout_set(j, "verb", json_string(rollout_verb_to_string(p->verb))) < 0 ||
	    rollout_set(j, "state", json_string(rollout_step_state_to_string(p->state))) < 0 ||
	    rollout_set(j, "step", json_integer(p->step)) < 0 ||
	    rollout_set(j, "n_steps", json_integer(p->n_steps)) < 0 ||
	    rollout_set(j, "step_name", rollout_str_or_null(p->step_name)) < 0 ||
	    rollout_set(j, "boot_id", rollout_str_or_null(p->boot_id)) < 0 ||
	    rollout_set(j, "started", json_integer(p->started)) < 0 ||
	    rollout_set(j, "finished", json_integer(p->finished)) < 0 ||
	    rollout_set(j, "updated", json_integer(p->updated)) < 0 ||
	    rollout_set(j, "error", rollout_str_or_null(p->error)) < 0 ||
	    rollout_set(j, "image", rollout_str_or_null(p->image)) < 0 ||
	    rollout_set(j, "config", rollout_str_or_null(p->config)) < 0 ||
	    rollout_set(j, "once_done", indexes_to_json(p->once_done, p->n_once_done)) < 0 ||
	    rollout_set(j, "undo_pending", indexes_to_json(p->undo_pending, p->n_undo_pending)) < 0)
		return NULL;
	return TAKE_PTR(j);
}

void rollout_progress_done(rollout_progress *p) {
	if (!p)
		return;
	free(p->plan);
	free(p->step_name);
	free(p->boot_id);
	free(p->error);
	free(p->image);
	free(p->config);
	free(p->once_done);
	free(p->undo_pending);
	*p = (rollout_progress) {};
}
