/* upgrade-plan.c — what the upgrade commands share: the plan an operator's
 * options describe (`upgrade start|plan`: --plan FILE, then each knob over
 * it, checked by the codec's own round trip, every message naming the
 * option), and the stored plan and state read together (start, the
 * control verbs). The rules themselves are the rollout engine's
 * (include/rollout.h); nothing here decides. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "ctl.h"
#include "esc.h"

/* ---- options -> plan ----------------------------------------------------------- */

/* "bad --bake '5x': ..." on stderr; 2. */
static int bad(const char *option, const char *value, const char *what) {
	return ctl_usage_error("bad %s '%s': %s", option, value, what);
}

static int parse_count(const char *option, const char *arg, long min, long max, int *out) {
	char what[64];
	long v;

	if (ctl_parse_int(arg, min, max, &v) < 0) {
		snprintf(what, sizeof what, "a whole number, %ld..%ld", min, max);
		return bad(option, arg, what);
	}
	*out = (int) v;
	return 0;
}

/* Whole seconds: "90", "30s", "10m", "1h". */
static int parse_seconds(const char *option, const char *arg, int64_t *out) {
	uint64_t usec;

	if (conf_parse_duration(arg, &usec) < 0 || usec % USEC_PER_SEC != 0 || usec / USEC_PER_SEC > INT32_MAX)
		return bad(option, arg, "a duration in whole seconds (90, 30s, 10m, 1h)");
	*out = (int64_t) (usec / USEC_PER_SEC);
	return 0;
}

static int set_string(char **dst, const char *src) {
	if (!src)
		return 0;
	if (ctl_set_str(dst, src) < 0)
		return -ENOMEM;
	return 0;
}

static int set_pools(rollout_plan *p, const char *const *pools, size_t n) {
	char **v = calloc(n + 1, sizeof *v);

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] = strdup(pools[i]))) {
			strv_free(v);
			return -ENOMEM;
		}
	strv_free(p->pools);
	p->pools = v;
	p->n_pools = n;
	return 0;
}

/* Every --window replaces the plan's windows. Exit code. */
static int set_windows(rollout_plan *p, const ctl_plan_args *a) {
	rollout_window *w = calloc(a->n_windows, sizeof *w);
	rollout_error err = {};
	size_t n = 0;
	int r = 0;

	if (!w)
		return 1;
	for (; n < a->n_windows; n++)
		if (rollout_window_parse(a->windows[n], a->tz, &w[n], &err) < 0) {
			r = bad("--window", a->windows[n], err.message);
			break;
		}
	if (r != 0) {
		for (size_t i = 0; i < n; i++)
			rollout_window_done(&w[i]);
		free(w);
		return r;
	}
	for (size_t i = 0; i < p->n_windows; i++)
		rollout_window_done(&p->windows[i]);
	free(p->windows);
	p->windows = w;
	p->n_windows = n;
	return 0;
}

static int set_schedule(rollout_plan *p, const ctl_plan_args *a) {
	_cleanup_free_ rollout_cron *cron = calloc(1, sizeof *cron);
	rollout_error err = {};

	if (!cron)
		return 1;
	if (rollout_cron_parse(a->schedule, a->tz, cron, &err) < 0)
		return bad("--schedule", a->schedule, err.message);
	if (p->schedule) {
		rollout_cron_done(p->schedule);
		free(p->schedule);
	}
	p->schedule = TAKE_PTR(cron);
	return 0;
}

/* The knobs given with a number or a duration. Exit code. */
static int apply_numbers(rollout_plan *p, const ctl_plan_args *a) {
	int r = 0;

	if (a->canary)
		r = r ?: parse_count("--canary", a->canary, 0, 100000, &p->canary_nodes);
	if (a->max_unavailable)
		r = r ?: parse_count("--max-unavailable", a->max_unavailable, 1, 100000, &p->max_unavailable);
	if (a->min_healthy_percent)
		r = r ?: parse_count("--min-healthy-percent", a->min_healthy_percent, 0, 100, &p->min_healthy_percent);
	if (a->bake)
		r = r ?: parse_seconds("--bake", a->bake, &p->canary_bake);
	if (a->min_healthy_time)
		r = r ?: parse_seconds("--min-healthy-time", a->min_healthy_time, &p->min_healthy_time);
	if (a->healthy_deadline)
		r = r ?: parse_seconds("--healthy-deadline", a->healthy_deadline, &p->healthy_deadline);
	if (a->progress_deadline)
		r = r ?: parse_seconds("--progress-deadline", a->progress_deadline, &p->progress_deadline);
	if (a->gate_timeout)
		r = r ?: parse_seconds("--gate-timeout", a->gate_timeout, &p->gate_timeout);
	if (a->final_bake)
		r = r ?: parse_seconds("--final-bake", a->final_bake, &p->final_bake);
	if (a->max_surge)
		r = r ?: parse_count("--max-surge", a->max_surge, 0, 100000, &p->max_surge);
	return r;
}

/* The options over p. Exit code. */
static int apply_options(rollout_plan *p, const ctl_opts *o) {
	const ctl_plan_args *a = &o->plan;
	int r;

	if (a->tz && a->n_windows == 0 && !a->schedule)
		return ctl_usage_error("--tz '%s' applies to --window and --schedule: give one", a->tz);
	if (a->id && !ctl_id_valid(a->id))
		return bad("--id", a->id, "one key segment: not empty, no '/', not . or ..");
	if ((r = apply_numbers(p, a)) != 0)
		return r;
	if (a->n_windows > 0 && (r = set_windows(p, a)) != 0)
		return r;
	if (a->schedule && (r = set_schedule(p, a)) != 0)
		return r;
	if (a->config_id && !ctl_id_valid(a->config_id))
		return bad("--config-id", a->config_id, "not a config id");
	if (a->config_base && !ctl_id_valid(a->config_base))
		return bad("--config-base", a->config_base, "not a config id");
	if (a->strategy && rollout_strategy_from_string(a->strategy, &p->strategy) < 0)
		return bad("--strategy", a->strategy, "auto, in_place or replace");
	if (set_string(&p->id, a->id) < 0 || set_string(&p->target.image, a->image) < 0 ||
	    set_string(&p->target.config, a->config_id) < 0 || set_string(&p->config_base, a->config_base) < 0 ||
	    set_string(&p->target.ami, a->ami) < 0 ||
	    set_string(&p->target.launch_template_version, a->launch_template_version) < 0 ||
	    set_string(&p->gate_command, a->gate) < 0 ||
	    (o->n_pools > 0 && set_pools(p, (const char *const *) o->pools, o->n_pools) < 0))
		return 1;
	if (a->auto_promote)
		p->auto_promote = true;
	if (a->no_auto_rollback)
		p->auto_rollback = false;
	if (a->prepare_blocks)
		p->prepare_blocks = true;
	if (a->keep_old)
		p->keep_old_until_bake = true;
	return 0;
}

/* The plan JSON key a codec error names -> the option that sets it. */
static const struct {
	const char *key, *option;
	uint64_t bit;
} key_options[] = {
	{ "id", "--id", CTL_OPT_ID },
	{ "pools", "--pool", CTL_OPT_POOL },
	{ "target.config", "--config-id", CTL_OPT_CONFIG_ID },
	{ "config_base", "--config-base", CTL_OPT_CONFIG_BASE },
	{ "target.ami", "--ami", CTL_OPT_AMI },
	{ "target.launch_template_version", "--launch-template-version", CTL_OPT_LAUNCH_TEMPLATE_VERSION },
	{ "target", "--image", CTL_OPT_IMAGE },
	{ "strategy", "--strategy", CTL_OPT_STRATEGY },
	{ "batch.max_surge", "--max-surge", CTL_OPT_MAX_SURGE },
	{ "canary.nodes", "--canary", CTL_OPT_CANARY },
	{ "canary.bake", "--bake", CTL_OPT_BAKE },
	{ "canary.auto_promote", "--auto-promote", CTL_OPT_AUTO_PROMOTE },
	{ "batch.max_unavailable", "--max-unavailable", CTL_OPT_MAX_UNAVAILABLE },
	{ "batch.min_healthy_percent", "--min-healthy-percent", CTL_OPT_MIN_HEALTHY_PERCENT },
	{ "health.min_healthy_time", "--min-healthy-time", CTL_OPT_MIN_HEALTHY_TIME },
	{ "health.healthy_deadline", "--healthy-deadline", CTL_OPT_HEALTHY_DEADLINE },
	{ "health.progress_deadline", "--progress-deadline", CTL_OPT_PROGRESS_DEADLINE },
	{ "health.gate_command", "--gate", CTL_OPT_GATE },
	{ "health.gate_timeout", "--gate-timeout", CTL_OPT_GATE_TIMEOUT },
	{ "windows", "--window", CTL_OPT_WINDOW },
	{ "schedule", "--schedule", CTL_OPT_SCHEDULE },
	{ "final_bake", "--final-bake", CTL_OPT_FINAL_BAKE },
};

/* The codec refused the plan: name the option that set the key, else the
 * file. 2. */
static int refused(const ctl_opts *o, const rollout_error *err) {
	for (size_t i = 0; i < ELEMENTSOF(key_options); i++) {
		size_t n = strlen(key_options[i].key);
		if (strncmp(err->key, key_options[i].key, n) == 0 && (err->key[n] == '\0' || err->key[n] == '.' ||
								       err->key[n] == '[') &&
		    (o->given & key_options[i].bit))
			return ctl_usage_error("bad %s: %s", key_options[i].option, err->message);
	}
	if (o->plan.file)
		return ctl_usage_error("--plan %s: %s", o->plan.file, err->message);
	return ctl_usage_error("bad plan: %s", err->message);
}

/* --plan FILE ("-": stdin) into p. Exit code. */
static int load_file(const char *file, rollout_plan *p) {
	rollout_error err = {};
	json_error_t jerr;
	json_auto_t *doc = streq(file, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
					    : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);

	if (!doc) {
		fprintf(stderr, "corralctl: --plan %s:%d:%d: %s\n", streq(file, "-") ? "<stdin>" : file, jerr.line,
			jerr.column, ESC_JERR(&jerr));
		return 2;
	}
	rollout_plan_done(p);
	if (rollout_plan_from_json(doc, p, &err) < 0)
		return ctl_usage_error("--plan %s: %s", file, err.message);
	return 0;
}

int ctl_upgrade_plan_id(time_t now, char buf[32]) {
	struct tm tm;

	if (!gmtime_r(&now, &tm) || strftime(buf, 32, "p-%Y%m%d-%H%M%S", &tm) == 0)
		return -EINVAL;
	return 0;
}

int ctl_upgrade_plan_build(const ctl_opts *o, time_t now, rollout_plan *out, bool *id_generated) {
	_cleanup_(rollout_plan_done) rollout_plan p = {}, check = {};
	rollout_error err = {};
	char id[32];
	int r;

	rollout_plan_defaults(&p);
	if (o->plan.file && (r = load_file(o->plan.file, &p)) != 0)
		return r;
	if ((r = apply_options(&p, o)) != 0)
		return r;
	if (rollout_target_empty(&p.target))
		return ctl_usage_error("%s", "upgrade: no target: give --image REF, --config-id ID, --ami AMI, "
					     "--launch-template-version N (or --plan FILE with "
					     "\"target\")");
	*id_generated = !p.id;
	if (!p.id) {
		if (ctl_upgrade_plan_id(now, id) < 0 || set_string(&p.id, id) < 0)
			return 1;
	}
	if (p.created == 0)
		p.created = now;
	/* the leader reads it with the codec: what it refuses is never written */
	json_auto_t *doc = rollout_plan_to_json(&p);
	if (!doc)
		return 1;
	r = rollout_plan_from_json(doc, &check, &err);
	if (r == -ENOMEM)
		return 1;
	if (r < 0)
		return refused(o, &err);
	*out = p;
	p = (rollout_plan){};
	return 0;
}

/* ---- the stored plan and state ------------------------------------------------------ */

void ctl_upgrade_stored_done(ctl_upgrade_stored *s) {
	free(s->plan_key);
	free(s->state_key);
	free(s->plan_text);
	json_decref(s->plan_doc);
	if (s->have_plan)
		rollout_plan_done(&s->plan);
	rollout_state_done(&s->state);
	*s = (ctl_upgrade_stored){};
}

int ctl_upgrade_read(ctl_t *c, ctl_upgrade_stored *s) {
	_cleanup_free_ char *state_text = NULL;
	rollout_error err = {};
	json_error_t jerr;
	int r;

	ctl_upgrade_stored_done(s);
	s->plan_key = keys_one_of(c->prefix, KEYS_UPGRADE_PLAN);
	s->state_key = keys_one_of(c->prefix, KEYS_UPGRADE_STATE);
	if (!s->plan_key || !s->state_key)
		return -ENOMEM;
	if ((r = ctl_get(c, s->plan_key, &s->plan_text, &s->plan_mod, NULL)) < 0 ||
	    (r = ctl_get(c, s->state_key, &state_text, &s->state_mod, NULL)) < 0)
		return r;
	s->phase = ROLLOUT_PENDING;
	if (s->plan_text) {
		s->plan_doc = json_loads(s->plan_text, 0, &jerr);
		if (!s->plan_doc)
			snprintf(s->plan_error, sizeof s->plan_error, "not JSON: %s", ESC_JERR(&jerr));
		else if ((r = rollout_plan_from_json(s->plan_doc, &s->plan, &err)) == -ENOMEM)
			return r;
		else if (r < 0)
			snprintf(s->plan_error, sizeof s->plan_error, "%s", err.message);
		else
			s->have_plan = true;
	}
	if (state_text) {
		json_auto_t *doc = json_loads(state_text, 0, &jerr);
		if (doc && rollout_state_from_json(doc, &s->state, &err) == 0)
			s->state_ok = true;
	}
	/* the leader has not taken the plan up yet: it is pending */
	if (s->have_plan && s->state_ok && s->state.plan && streq(s->state.plan, s->plan.id)) {
		s->state_is_plans = true;
		s->phase = s->state.phase;
	}
	return 0;
}

int ctl_upgrade_put(ctl_t *c, const ctl_upgrade_stored *s, const char *value) {
	ctl_guard g[] = { { s->plan_key, s->plan_mod }, { s->state_key, s->state_mod } };
	int r = ctl_put_guarded(c, s->plan_key, value, g, ELEMENTSOF(g));

	return r == -ESTALE ? r : r < 0 ? 1 : 0;
}

int ctl_upgrade_cas(ctl_t *c, int (*try)(ctl_t *c, void *userdata), void *userdata) {
	for (int i = 0; i < CTL_UPGRADE_TRIES; i++) {
		int r = try(c, userdata);
		if (r != -ESTALE)
			return r;
		if (c->verbosity >= CTL_VERBOSE)
			fprintf(stderr, "corralctl: the plan or its state changed meanwhile; again\n");
	}
	fprintf(stderr, "corralctl: upgrade/plan or upgrade/state changed under every one of %d tries; nothing "
		"written\n", CTL_UPGRADE_TRIES);
	return 1;
}

/* ---- writing a plan ----------------------------------------------------------------- */

/* A generated id must not name the stored plan or an ended one's history:
 * "p-20250101-020000-2", -3, ... 0 or -errno (-EIO printed). */
static int unique_id(ctl_t *c, rollout_plan *plan, const char *stored) {
	_cleanup_free_ char *base = strdup(plan->id);

	if (!base)
		return -ENOMEM;
	for (int k = 2; k < 100; k++) {
		_cleanup_free_ char *key = keys_entry(c->prefix, KEYS_UPGRADE_HISTORY, plan->id), *old = NULL;
		int r = ctl_get(c, key, &old, NULL, NULL);
		if (r < 0)
			return r;
		if (!old && !(stored && streq(stored, plan->id)))
			return 0;
		free(plan->id);
		if (asprintf(&plan->id, "%s-%d", base, k) < 0) {
			plan->id = NULL;
			return -ENOMEM;
		}
	}
	return -EEXIST;
}

/* May plan replace what is stored? Exit code (1 and why when not). */
static int may_replace(const ctl_upgrade_stored *s, const rollout_plan *plan, bool supersede) {
	if (!s->plan_text)
		return 0;
	if (s->have_plan && streq(s->plan.id, plan->id)) {
		/* the leader would take it for the same plan */
		fprintf(stderr, "corralctl: plan %s is the stored plan already; choose another --id\n", plan->id);
		return 2;
	}
	if (s->have_plan && s->state_is_plans && rollout_phase_terminal(s->phase))
		return 0;
	if (supersede)
		return 0;
	if (!s->have_plan)
		fprintf(stderr, "corralctl: %s holds a plan the leader cannot read (%s); nothing written: "
			"--supersede replaces it\n", s->plan_key, s->plan_error);
	else
		fprintf(stderr, "corralctl: plan %s is running (phase %s); nothing written: --supersede replaces "
			"it (the leader cancels it)\n", s->plan.id, rollout_phase_to_string(s->phase) ?: "?");
	return 1;
}

typedef struct start_args {
	const ctl_opts *o;
	rollout_plan *plan;
	bool id_generated;
	bool quiet;                     /* the caller reports */
} start_args;

/* One try. Exit code, or -ESTALE to try again. */
static int start_try(ctl_t *c, void *userdata) {
	const start_args *a = userdata;
	const ctl_opts *o = a->o;
	rollout_plan *plan = a->plan;
	_cleanup_(ctl_upgrade_stored_done) ctl_upgrade_stored s = {};
	_cleanup_free_ char *value = NULL;
	int r;

	if (ctl_upgrade_read(c, &s) < 0)
		return 1;
	if (a->id_generated && (r = unique_id(c, plan, s.have_plan ? s.plan.id : NULL)) < 0)
		return r == -EIO ? 1 : (fprintf(stderr, "corralctl: no free plan id: %s\n", strerror(-r)), 1);
	if ((r = may_replace(&s, plan, o->plan.supersede)) != 0)
		return r;
	json_auto_t *doc = rollout_plan_to_json(plan);
	value = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (!value)
		return 1;
	if ((r = ctl_upgrade_put(c, &s, value)) != 0)
		return r;
	if (s.have_plan && !c->dry_run && c->verbosity > CTL_QUIET)
		fprintf(stderr, "corralctl: plan %s (%s) replaced by %s\n", s.plan.id,
			rollout_phase_to_string(s.phase) ?: "?", plan->id);
	if (a->quiet)
		return 0;
	/* the id alone on stdout, for scripts */
	return ctl_report(c, "put", s.plan_key, value, plan->id);
}

int ctl_upgrade_may_start(ctl_t *c, const ctl_opts *o) {
	_cleanup_(ctl_upgrade_stored_done) ctl_upgrade_stored s = {};
	rollout_plan none = { .id = (char *) "" };

	if (ctl_upgrade_read(c, &s) < 0)
		return 1;
	if (o->plan.id)
		none.id = (char *) o->plan.id;
	return may_replace(&s, &none, o->plan.supersede);
}

int ctl_upgrade_start(ctl_t *c, const ctl_opts *o, rollout_plan *plan, bool id_generated, bool *quiet) {
	start_args a = { .o = o, .plan = plan, .id_generated = id_generated, .quiet = quiet && *quiet };

	return ctl_upgrade_cas(c, start_try, &a);
}
