/* plan.c — upgrade/plan as JSON (written by the operator through
 * corralctl, or by hand with --plan FILE): every knob with its default,
 * strict (an unknown key is an error naming it, so a typo never silently
 * leaves a default in force), and the operator's controls under
 * "control". Durations are seconds or "500ms"/"30s"/"10m"/"1h"
 * (conf_parse_duration, rounded up to whole seconds). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "rollout-internal.h"

void rollout_plan_defaults(rollout_plan *p) {
	*p = (rollout_plan) {
		.canary_nodes = 1,
		.canary_bake = 600,
		.max_unavailable = 1,
		.min_healthy_percent = 90,
		.max_surge = 1,
		.min_healthy_time = 30,
		.healthy_deadline = 300,
		.progress_deadline = 900,
		.gate_timeout = 60,
		.final_bake = -1,
		.auto_rollback = true,
	};
}

void rollout_plan_done(rollout_plan *p) {
	if (!p)
		return;
	free(p->id);
	strv_free(p->pools);
	rollout_target_done(&p->target);
	free(p->config_base);
	free(p->gate_command);
	for (size_t i = 0; i < p->n_windows; i++)
		rollout_window_done(&p->windows[i]);
	free(p->windows);
	if (p->schedule) {
		rollout_cron_done(p->schedule);
		free(p->schedule);
	}
	*p = (rollout_plan) {};
}

bool rollout_plan_staged(const rollout_plan *p) {
	return p && p->target.config && !p->target.image && !p->target.launch_template_version && !p->target.ami;
}

bool rollout_plan_covers(const rollout_plan *p, const char *pool) {
	if (!p->pools || !p->pools[0])
		return true;
	for (char **s = p->pools; pool && *s; s++)
		if (strcmp(*s, pool) == 0)
			return true;
	return false;
}

/* ---- from JSON ----------------------------------------------------------------- */

static int parse_pools(json_t *doc, rollout_plan *p, rollout_error *err) {
	json_t *a = json_object_get(doc, "pools"), *v;
	size_t i;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return rollout_fail(err, "pools", "must be an array of pool names");
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    !keys_id_valid(json_string_value(v), json_string_length(v)))
			return rollout_fail(err, "pools", "element %zu must be a pool name", i);
		if (strv_take(&p->pools, &p->n_pools, strdup(json_string_value(v))) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int parse_canary(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "nodes", "bake", "auto_promote", NULL };
	json_t *o;
	int64_t nodes = p->canary_nodes;
	int r;

	if ((r = rollout_get_object(doc, "", "canary", &o, err)) < 0 || !o)
		return r;
	if ((r = rollout_check_keys(o, "canary", keys, err)) < 0 ||
	    (r = rollout_get_int(o, "canary", "nodes", 0, 100000, &nodes, err)) < 0 ||
	    (r = rollout_get_duration(o, "canary", "bake", &p->canary_bake, err)) < 0 ||
	    (r = rollout_get_bool(o, "canary", "auto_promote", &p->auto_promote, err)) < 0)
		return r;
	p->canary_nodes = (int) nodes;
	return 0;
}

static int parse_batch(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "max_unavailable", "min_healthy_percent", "max_surge",
		                            "keep_old_until_bake", NULL };
	json_t *o;
	int64_t maxu = p->max_unavailable, pct = p->min_healthy_percent, surge = p->max_surge;
	int r;

	if ((r = rollout_get_object(doc, "", "batch", &o, err)) < 0 || !o)
		return r;
	if ((r = rollout_check_keys(o, "batch", keys, err)) < 0 ||
	    (r = rollout_get_int(o, "batch", "max_unavailable", 1, 100000, &maxu, err)) < 0 ||
	    (r = rollout_get_int(o, "batch", "min_healthy_percent", 0, 100, &pct, err)) < 0 ||
	    (r = rollout_get_int(o, "batch", "max_surge", 0, 100000, &surge, err)) < 0 ||
	    (r = rollout_get_bool(o, "batch", "keep_old_until_bake", &p->keep_old_until_bake, err)) < 0)
		return r;
	p->max_surge = (int) surge;
	p->max_unavailable = (int) maxu;
	p->min_healthy_percent = (int) pct;
	return 0;
}

static int parse_health(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "min_healthy_time", "healthy_deadline", "progress_deadline",
		                            "gate_command",     "gate_timeout",     NULL };
	json_t *o;
	int r;

	if ((r = rollout_get_object(doc, "", "health", &o, err)) < 0 || !o)
		return r;
	if ((r = rollout_check_keys(o, "health", keys, err)) < 0 ||
	    (r = rollout_get_duration(o, "health", "min_healthy_time", &p->min_healthy_time, err)) < 0 ||
	    (r = rollout_get_duration(o, "health", "healthy_deadline", &p->healthy_deadline, err)) < 0 ||
	    (r = rollout_get_duration(o, "health", "progress_deadline", &p->progress_deadline, err)) < 0 ||
	    (r = rollout_get_str(o, "health", "gate_command", false, &p->gate_command, err)) < 0 ||
	    (r = rollout_get_duration(o, "health", "gate_timeout", &p->gate_timeout, err)) < 0)
		return r;
	if (p->gate_command && !*p->gate_command)
		return rollout_fail(err, "health.gate_command", "must not be empty (null: no gate)");
	if (p->healthy_deadline < 1)
		return rollout_fail(err, "health.healthy_deadline", "must be at least 1s");
	if (p->progress_deadline < 1)
		return rollout_fail(err, "health.progress_deadline", "must be at least 1s");
	if (p->gate_timeout < 1)
		return rollout_fail(err, "health.gate_timeout", "must be at least 1s");
	return 0;
}

/* A window as an object, or as its text form ("Mon-Fri 02:00-05:00", UTC). */
static int parse_windows(json_t *doc, rollout_plan *p, rollout_error *err) {
	json_t *a = json_object_get(doc, "windows"), *v;
	size_t i;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return rollout_fail(err, "windows", "must be an array");
	p->windows = calloc(json_array_size(a) + 1, sizeof *p->windows);
	if (!p->windows)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		rollout_error sub = {};
		int r = json_is_string(v) ? rollout_window_parse(json_string_value(v), NULL, &p->windows[i], &sub)
		                          : rollout_window_from_json(v, &p->windows[i], &sub);
		if (r == -EINVAL) {
			char k[64];
			snprintf(k, sizeof k, "windows[%zu]", i);
			return rollout_fail(err, k, "%s", sub.message);
		}
		if (r < 0)
			return r;
		p->n_windows++;
	}
	return 0;
}

/* "schedule": "0 2 * * 2" (UTC) or {"cron": "0 2 * * 2", "tz": "Europe/Rome"}. */
static int parse_schedule(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "cron", "tz", NULL };
	json_t *v = json_object_get(doc, "schedule");
	_cleanup_free_ char *text = NULL, *tz = NULL;
	rollout_error sub = {};
	int r;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v))
		text = strdup(json_string_value(v));
	else if (json_is_object(v)) {
		if ((r = rollout_check_keys(v, "schedule", keys, err)) < 0 ||
		    (r = rollout_get_str(v, "schedule", "cron", true, &text, err)) < 0 ||
		    (r = rollout_get_str(v, "schedule", "tz", false, &tz, err)) < 0)
			return r;
	} else
		return rollout_fail(err, "schedule", "must be a cron string or {\"cron\": ..., \"tz\": ...}");
	if (!text)
		return -ENOMEM;
	p->schedule = calloc(1, sizeof *p->schedule);
	if (!p->schedule)
		return -ENOMEM;
	r = rollout_cron_parse(text, tz, p->schedule, &sub);
	if (r < 0) {
		free(p->schedule);
		p->schedule = NULL;
	}
	if (r == -EINVAL)
		return rollout_fail(err, "schedule", "%s", sub.message);
	return r;
}

static int parse_control(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "paused", "promote", "abort", "rollback", "retry", NULL };
	json_t *o;
	int r;

	if ((r = rollout_get_object(doc, "", "control", &o, err)) < 0 || !o)
		return r;
	if ((r = rollout_check_keys(o, "control", keys, err)) < 0 ||
	    (r = rollout_get_bool(o, "control", "paused", &p->paused, err)) < 0 ||
	    (r = rollout_get_int(o, "control", "promote", 0, INT64_MAX, &p->promote, err)) < 0 ||
	    (r = rollout_get_bool(o, "control", "abort", &p->abort, err)) < 0 ||
	    (r = rollout_get_bool(o, "control", "rollback", &p->rollback, err)) < 0 ||
	    (r = rollout_get_int(o, "control", "retry", 0, INT64_MAX, &p->retry, err)) < 0)
		return r;
	return 0;
}

static int parse_top(json_t *doc, rollout_plan *p, rollout_error *err) {
	static const char *const keys[] = { "id",      "pools",         "target",         "canary",
		                            "batch",   "health",        "windows",        "schedule",
		                            "final_bake", "auto_rollback", "prepare_blocks", "created",
		                            "control", "config_base", "strategy", NULL };
	json_t *t = json_object_get(doc, "target");
	int r;

	if ((r = rollout_check_keys(doc, "", keys, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "id", true, &p->id, err)) < 0)
		return r;
	if (!keys_id_valid(p->id, strlen(p->id)))
		return rollout_fail(err, "id", "must be a key segment (no '/', not empty, at most %d bytes)",
				    KEYS_ID_MAX);
	if (!t || json_is_null(t))
		return rollout_fail(err, "target", "is required");
	if (json_is_object(t)) {
		static const char *const tkeys[] = { "image", "config", "launch_template_version", "ami", NULL };
		if ((r = rollout_check_keys(t, "target", tkeys, err)) < 0)
			return r;
	}
	if ((r = rollout_target_from_json(t, &p->target, err)) < 0)
		return r;
	if (rollout_target_empty(&p->target))
		return rollout_fail(err, "target",
				    "names nothing to reach: give image, config, launch_template_version or ami");
	if (p->target.launch_template_version && p->target.ami)
		return rollout_fail(err, "target", "give launch_template_version or ami, not both");
	/* a staged config rollout has its own phases (no prepare, no batches) */
	if (p->target.config && (p->target.image || rollout_target_replaces(&p->target)))
		return rollout_fail(err, "target",
				    "a config cannot yet be rolled out with an image or a machine image in one plan: "
				    "start a config plan and an image plan one after the other");
	_cleanup_free_ char *strategy = NULL;
	if ((r = rollout_get_str(doc, "", "strategy", false, &strategy, err)) < 0 ||
	    (r = rollout_get_str(doc, "", "config_base", false, &p->config_base, err)) < 0)
		return r;
	if (strategy && rollout_strategy_from_string(strategy, &p->strategy) < 0)
		return rollout_fail(err, "strategy", "must be auto, in_place or replace, not \"%.40s\"", strategy);
	if (p->config_base && (!p->target.config || !keys_id_valid(p->config_base, strlen(p->config_base))))
		return rollout_fail(err, "config_base", p->target.config ? "must be a snapshot id" : "needs target.config");
	if (p->strategy == ROLLOUT_STRATEGY_IN_PLACE && rollout_target_replaces(&p->target))
		return rollout_fail(err, "strategy", "in_place cannot reach a machine image (launch_template_version, ami)");
	/* replacements boot the machine image, not the image: auto mixes */
	if (p->strategy == ROLLOUT_STRATEGY_REPLACE && p->target.image && rollout_target_replaces(&p->target))
		return rollout_fail(err, "strategy", "replace cannot carry an image: use auto (hosts replaced, the "
				    "image in place)");
	p->final_bake = -1;
	json_t *fb = json_object_get(doc, "final_bake");
	if (fb && !json_is_null(fb) && (r = rollout_get_duration(doc, "", "final_bake", &p->final_bake, err)) < 0)
		return r;
	if ((r = rollout_get_bool(doc, "", "auto_rollback", &p->auto_rollback, err)) < 0 ||
	    (r = rollout_get_bool(doc, "", "prepare_blocks", &p->prepare_blocks, err)) < 0 ||
	    (r = rollout_get_time(doc, "", "created", &p->created, err)) < 0)
		return r;
	return 0;
}

int rollout_plan_from_json(json_t *doc, rollout_plan *out, rollout_error *err) {
	rollout_plan p;
	int r;

	rollout_plan_defaults(&p);
	if (!json_is_object(doc))
		return rollout_fail(err, "", "the plan must be a JSON object");
	if ((r = parse_top(doc, &p, err)) < 0 || (r = parse_pools(doc, &p, err)) < 0 ||
	    (r = parse_canary(doc, &p, err)) < 0 || (r = parse_batch(doc, &p, err)) < 0 ||
	    (r = parse_health(doc, &p, err)) < 0 || (r = parse_windows(doc, &p, err)) < 0 ||
	    (r = parse_schedule(doc, &p, err)) < 0 || (r = parse_control(doc, &p, err)) < 0) {
		rollout_plan_done(&p);
		return r;
	}
	*out = p;
	return 0;
}

/* ---- to JSON ------------------------------------------------------------------- */

static json_t *pools_to_json(const rollout_plan *p) {
	if (!p->pools)
		return json_null();
	json_t *a = json_array();
	for (char **s = p->pools; a && *s; s++)
		if (json_array_append_new(a, json_string(*s)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *windows_to_json(const rollout_plan *p) {
	json_t *a = json_array();
	for (size_t i = 0; a && i < p->n_windows; i++)
		if (json_array_append_new(a, rollout_window_to_json(&p->windows[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *schedule_to_json(const rollout_plan *p) {
	if (!p->schedule)
		return json_null();
	return json_pack("{s:s?, s:s}", "cron", p->schedule->text, "tz", p->schedule->tz ? p->schedule->tz : "UTC");
}

json_t *rollout_plan_to_json(const rollout_plan *p) {
	json_auto_t *o = json_object();

	if (!o || rollout_set(o, "id", rollout_str_or_null(p->id)) < 0 ||
	    rollout_set(o, "pools", pools_to_json(p)) < 0 ||
	    rollout_set(o, "target", rollout_target_to_json(&p->target)) < 0 ||
	    rollout_set(o, "config_base", rollout_str_or_null(p->config_base)) < 0 ||
	    rollout_set(o, "strategy", json_string(rollout_strategy_to_string(p->strategy))) < 0 ||
	    rollout_set(o, "canary",
			json_pack("{s:i, s:I, s:b}", "nodes", p->canary_nodes, "bake", (json_int_t) p->canary_bake,
				  "auto_promote", p->auto_promote)) < 0 ||
	    rollout_set(o, "batch",
			json_pack("{s:i, s:i, s:i, s:b}", "max_unavailable", p->max_unavailable, "min_healthy_percent",
				  p->min_healthy_percent, "max_surge", p->max_surge, "keep_old_until_bake",
				  p->keep_old_until_bake)) < 0 ||
	    rollout_set(o, "health",
			json_pack("{s:I, s:I, s:I, s:s?, s:I}", "min_healthy_time", (json_int_t) p->min_healthy_time,
				  "healthy_deadline", (json_int_t) p->healthy_deadline, "progress_deadline",
				  (json_int_t) p->progress_deadline, "gate_command", p->gate_command, "gate_timeout",
				  (json_int_t) p->gate_timeout)) < 0 ||
	    rollout_set(o, "windows", windows_to_json(p)) < 0 || rollout_set(o, "schedule", schedule_to_json(p)) < 0 ||
	    rollout_set(o, "final_bake", p->final_bake < 0 ? json_null() : json_integer(p->final_bake)) < 0 ||
	    rollout_set(o, "auto_rollback", json_boolean(p->auto_rollback)) < 0 ||
	    rollout_set(o, "prepare_blocks", json_boolean(p->prepare_blocks)) < 0 ||
	    rollout_set(o, "created", json_integer(p->created)) < 0 ||
	    rollout_set(o, "control",
			json_pack("{s:b, s:I, s:b, s:b, s:I}", "paused", p->paused, "promote", (json_int_t) p->promote,
				  "abort", p->abort, "rollback", p->rollback, "retry", (json_int_t) p->retry)) < 0)
		return NULL;
	return TAKE_PTR(o);
}
