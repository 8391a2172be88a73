/* schedule.c — `corralctl scale schedule add|list|remove`: the scheduled
 * minimums of a pool (pools.POOL.schedule in <prefix>/scale/policy,
 * docs/scale.md "Scheduled capacity"). Writes go through
 * ctl_policy_edit (policy.c): read, edit the JSON document, check the
 * whole policy, compare-and-set on the revision read. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "ctl.h"
#include "esc.h"

#define DEFAULT_DURATION 3600
#define DEFAULT_LEAD 900

/* ---- pure helpers --------------------------------------------------------------------- */

/* "5h", "15m", "90s", "2d": the largest unit that divides s. */
static void format_secs(char buf[32], int64_t s) {
	static const struct {
		int64_t n;
		char unit;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };

	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (s > 0 && s % units[i].n == 0) {
			snprintf(buf, 32, "%lld%c", (long long) (s / units[i].n), units[i].unit);
			return;
		}
	snprintf(buf, 32, "%llds", (long long) s);
}

/* A duration option in whole seconds within [min, 30 days]. Exit code. */
static int parse_secs(const char *option, const char *arg, int64_t min, int64_t *out) {
	uint64_t usec;

	if (conf_parse_duration(arg, &usec) < 0 || usec % USEC_PER_SEC != 0 ||
	    usec / USEC_PER_SEC < (uint64_t) min || usec / USEC_PER_SEC > 30 * 86400)
		return ctl_usage_error("bad %s '%s': whole seconds %s30d, such as 90s, 15m, 1h, 2d", option, arg,
				       min > 0 ? "from 1s to " : "up to ");
	*out = (int64_t) (usec / USEC_PER_SEC);
	return 0;
}

/* The entry add's options describe, as the engine's codec reads it:
 * {"cron"|"at", "min", "duration", "lead"}, the time in the canonical
 * UTC form. Exit code. */
static int entry_build(const ctl_schedule_args *a, json_t **out) {
	int64_t duration = DEFAULT_DURATION, lead = DEFAULT_LEAD;
	long min;
	int r;

	if (!!a->cron == !!a->at)
		return ctl_usage_error("scale schedule add: give --cron 'M H DOM MON DOW' or --at TIME (one of them)");
	if (!a->min)
		return ctl_usage_error("scale schedule add: --min N is required");
	if (ctl_parse_int(a->min, 1, 100000, &min) < 0)
		return ctl_usage_error("bad --min '%s': hosts, 1..100000", a->min);
	if ((a->duration && (r = parse_secs("--duration", a->duration, 1, &duration)) != 0) ||
	    (a->lead && (r = parse_secs("--lead", a->lead, 0, &lead)) != 0))
		return r;

	json_auto_t *e = json_object();
	if (!e)
		return 1;
	if (a->cron) {
		_cleanup_(rollout_cron_done) rollout_cron cron = {};
		rollout_error err = {};
		if (rollout_cron_parse(a->cron, "UTC", &cron, &err) < 0)
			return ctl_usage_error("bad --cron '%s': %s", a->cron, err.message);
		if (json_object_set_new(e, "cron", json_string(a->cron)) < 0)
			return 1;
	} else {
		time_t at;
		char buf[32];
		if (rollout_parse_time(a->at, &at) < 0)
			return ctl_usage_error("bad --at '%s': an RFC 3339 time in UTC, such as 2026-01-05T10:00:00Z",
					       a->at);
		ctl_format_time(buf, at);
		if (json_object_set_new(e, "at", json_string(buf)) < 0)
			return 1;
	}
	if (json_object_set_new(e, "min", json_integer(min)) < 0 ||
	    json_object_set_new(e, "duration", json_integer(duration)) < 0 ||
	    json_object_set_new(e, "lead", json_integer(lead)) < 0)
		return 1;
	*out = TAKE_PTR(e);
	return 0;
}

/* When entry e next puts its minimum in force, seen at now: 1 and *start
 * <= now while it holds (*until: when it ends), 0 and *start > now when it
 * is to come, -1 when never again (an "at" past, a cron that never
 * fires, an entry that is not one). */
static int entry_next(json_t *e, time_t now, time_t *start, time_t *until) {
	json_int_t duration = json_integer_value(json_object_get(e, "duration"));
	json_int_t lead = json_integer_value(json_object_get(e, "lead"));
	const char *cron = json_string_value(json_object_get(e, "cron"));
	const char *at = json_string_value(json_object_get(e, "at"));
	time_t event = 0;

	if (!json_object_get(e, "duration"))
		duration = DEFAULT_DURATION;
	if (!json_object_get(e, "lead"))
		lead = DEFAULT_LEAD;
	if (cron) {
		_cleanup_(rollout_cron_done) rollout_cron c = {};
		rollout_error err = {};
		if (rollout_cron_parse(cron, "UTC", &c, &err) < 0)
			return -1;
		/* the first event whose window has not ended yet */
		event = rollout_cron_next(&c, now - duration);
	} else if (!at || rollout_parse_time(at, &event) < 0)
		return -1;
	if (event <= 0 || event + duration <= now)
		return -1;
	*start = event - lead;
	*until = event + duration;
	return *start <= now;
}

/* ---- the policy document ------------------------------------------------------------- */

static int no_policy(ctl_t *c) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	return ctl_usage_error("no scaling policy at %s (set one: corralctl scale policy set FILE)",
			       key ?: "scale/policy");
}

static json_t *pool_json(json_t *doc, const char *pool) {
	return json_object_get(json_object_get(doc, "pools"), pool);
}

/* The whole policy as the leader will read it. Exit code. */
static int check_policy(json_t *doc) {
	scale_policy p = {};
	scale_error err = {};

	if (scale_policy_from_json(doc, &p, &err) >= 0) {
		scale_policy_done(&p);
		return 0;
	}
	size_t n = strlen(err.key), m = strlen(err.message);
	if (n < 9 || m < 11 || !streq(err.key + n - 9, ".schedule") || !streq(err.message + m - 11, "unknown key"))
		return ctl_policy_invalid(&err);
	/* TRANSITION: until the engine's codec (i17-engine) reads "schedule",
	 * check the rest of the policy without it; the entries were checked
	 * here. Remove this branch when scale_policy_from_json knows it. */
	json_auto_t *copy = json_deep_copy(doc);
	const char *name;
	json_t *pj;
	if (!copy)
		return 1;
	json_object_foreach(json_object_get(copy, "pools"), name, pj)
		json_object_del(pj, "schedule");
	if (scale_policy_from_json(copy, &p, &err) < 0)
		return ctl_policy_invalid(&err);
	scale_policy_done(&p);
	return 0;
}

typedef struct sched_edit {
	const char *pool;
	json_t *entry;          /* add: the entry; NULL: remove index */
	long index;
} sched_edit;

static int edit_schedule(ctl_t *c, ctl_view *v, void *userdata, char *msg, size_t msg_size) {
	sched_edit *e = userdata;
	int r;

	if (!v->policy_text)
		return no_policy(c);
	if (!v->policy_doc) {
		fprintf(stderr, "corralctl: the stored policy is not JSON: fix it with scale policy set\n");
		return 1;
	}
	json_t *pj = pool_json(v->policy_doc, e->pool);
	if (!json_is_object(pj))
		return ctl_usage_error("no pool '%s' in the scaling policy", e->pool);
	json_t *list = json_object_get(pj, "schedule");
	if (!list) {
		if (!e->entry)
			return ctl_usage_error("pool %s has no schedule", e->pool);
		if (json_object_set_new(pj, "schedule", list = json_array()) < 0)
			return 1;
	}
	if (!json_is_array(list)) {
		fprintf(stderr, "corralctl: pools.%s.schedule is not a list: fix it with scale policy set\n", e->pool);
		return 1;
	}
	if (e->entry) {
		json_int_t min = json_integer_value(json_object_get(e->entry, "min"));
		json_t *max = json_object_get(pj, "max");
		if (json_is_integer(max) && min > json_integer_value(max))
			return ctl_usage_error("--min %lld is above pool %s's max (%lld): it could never hold",
					       (long long) min, e->pool, (long long) json_integer_value(max));
		if (json_array_append(list, e->entry) < 0)
			return 1;
		snprintf(msg, msg_size, "pool %s: schedule entry %zu added", e->pool, json_array_size(list) - 1);
	} else {
		if (e->index >= (long) json_array_size(list))
			return ctl_usage_error("pool %s has no schedule entry %ld (it has %zu: see scale schedule list)",
					       e->pool, e->index, json_array_size(list));
		json_array_remove(list, e->index);
		if (json_array_size(list) == 0)
			json_object_del(pj, "schedule");
		snprintf(msg, msg_size, "pool %s: schedule entry %ld removed", e->pool, e->index);
	}
	if ((r = check_policy(v->policy_doc)) != 0)
		return r;
	return 0;
}

/* ---- the verbs ------------------------------------------------------------------------ */

/* e through ctl_policy_edit, the summary logged around it. Exit code. */
static int write_edit(ctl_t *c, sched_edit *e) {
	int r;

	ctl_log_summary(c, "before");
	if ((r = ctl_policy_edit(c, edit_schedule, e)) != 0)
		return r;
	ctl_log_summary(c, "after");
	return 0;
}

static int schedule_add(ctl_t *c, ctl_opts *o) {
	json_auto_t *entry = NULL;
	int r;

	if (!ctl_id_valid(o->pos[0]))
		return ctl_usage_error("bad pool name '%s'", o->pos[0]);
	if ((r = entry_build(&o->schedule, &entry)) != 0)
		return r;
	sched_edit e = { .pool = o->pos[0], .entry = entry };
	return write_edit(c, &e);
}

static int schedule_remove(ctl_t *c, ctl_opts *o) {
	long index;

	if (!ctl_id_valid(o->pos[0]))
		return ctl_usage_error("bad pool name '%s'", o->pos[0]);
	if (ctl_parse_int(o->pos[1], 0, 100000, &index) < 0)
		return ctl_usage_error("bad INDEX '%s': the entry's number in scale schedule list", o->pos[1]);
	sched_edit e = { .pool = o->pos[0], .index = index };
	return write_edit(c, &e);
}

static int name_cmp(const void *a, const void *b) {
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* One row per entry of the pools (all, or the one named), pools by name:
 * {"pool", "index", "cron"|"at", "min", "duration", "lead", "next_start",
 * "active"}. */
static int list_rows(json_t *doc, const char *only, time_t now, json_t *rows) {
	json_t *pools = json_object_get(doc, "pools");
	size_t n = 0, i = 0;
	const char *name;
	json_t *pj;

	n = json_object_size(pools);
	_cleanup_free_ const char **names = calloc(n + 1, sizeof *names);
	if (!names)
		return -ENOMEM;
	json_object_foreach(pools, name, pj)
		if (!only || streq(only, name))
			names[i++] = name;
	qsort(names, i, sizeof *names, name_cmp);
	for (size_t k = 0; k < i; k++) {
		json_t *list = json_object_get(json_object_get(pools, names[k]), "schedule"), *e;
		size_t idx;
		json_array_foreach(list, idx, e) {
			time_t start = 0, until = 0;
			char buf[32];
			int r = entry_next(e, now, &start, &until);
			json_t *row = json_deep_copy(e);
			if (!row || json_object_set_new(row, "pool", json_string(names[k])) < 0 ||
			    json_object_set_new(row, "index", json_integer((json_int_t) idx)) < 0)
				return json_decref(row), -ENOMEM;
			if (r >= 0)
				ctl_format_time(buf, start);
			if (json_object_set_new(row, "next_start", r >= 0 ? json_string(buf) : json_null()) < 0 ||
			    json_object_set_new(row, "active", json_boolean(r == 1)) < 0 ||
			    json_array_append_new(rows, row) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* NULL when out of memory (the table says so) */
static char *int_cell(json_t *o, const char *name) {
	char *s;
	return asprintf(&s, "%lld", (long long) json_integer_value(json_object_get(o, name))) < 0 ? NULL : s;
}

static void fill_row(json_t *o, char **cells) {
	char d[32], l[32];
	const char *cron = json_string_value(json_object_get(o, "cron"));
	const char *next = json_string_value(json_object_get(o, "next_start"));

	format_secs(d, json_integer_value(json_object_get(o, "duration")));
	format_secs(l, json_integer_value(json_object_get(o, "lead")));
	cells[0] = ctl_field(o, "pool");
	cells[1] = int_cell(o, "index");
	if (cron && asprintf(&cells[2], "cron '%s'", cron) < 0)
		cells[2] = NULL;
	else if (!cron)
		cells[2] = ctl_field(o, "at");
	cells[3] = int_cell(o, "min");
	cells[4] = strdup(d);
	cells[5] = strdup(l);
	if (!next)
		cells[6] = strdup("never");
	else if (json_is_true(json_object_get(o, "active")) && asprintf(&cells[6], "now (since %s)", next) < 0)
		cells[6] = NULL;
	else if (!json_is_true(json_object_get(o, "active")))
		cells[6] = strdup(next);
}

static int schedule_list(ctl_t *c, ctl_opts *o) {
	static const char *const header[] = { "POOL", "INDEX", "WHEN", "MIN", "DURATION", "LEAD", "NEXT-START" };
	_cleanup_free_ char *text = NULL, *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	const char *only = o->n_pos > 0 ? o->pos[0] : NULL;
	json_error_t jerr;

	if (only && !ctl_id_valid(only))
		return ctl_usage_error("bad pool name '%s'", only);
	if (!key || ctl_get(c, key, &text, NULL, NULL) < 0)
		return 1;
	if (!text)
		return no_policy(c);
	json_auto_t *doc = json_loads(text, 0, &jerr), *rows = json_array();
	if (!doc) {
		fprintf(stderr, "corralctl: %s holds no JSON: %s\n", key, ESC_JERR(&jerr));
		return 1;
	}
	if (only && !json_is_object(pool_json(doc, only)))
		return ctl_usage_error("no pool '%s' in the scaling policy", only);
	if (!rows || list_rows(doc, only, time(NULL), rows) < 0)
		return 1;
	if (c->format == FORMAT_JSON)
		return ctl_print_json(rows);
	if (json_array_size(rows) == 0) {
		printf("no schedule%s%s\n", only ? " for pool " : "", only ?: "");
		return ctl_flush();
	}
	return ctl_print_array(rows, header, ELEMENTSOF(header), fill_row, false);
}

const ctl_verb ctl_schedule_verbs[] = {
	{ .group = "scale", .name = "schedule add",
	  .args = "POOL (--cron 'M H DOM MON DOW' | --at TIME) --min N [--duration D] [--lead D]",
	  .help = "a scheduled minimum: N hosts at least from --lead (default 15m) before each\n"
		  "event until --duration (default 1h) after it; cron in UTC, TIME RFC 3339 UTC",
	  .options = CTL_OPT_SCHEDULE_ENTRY, .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1,
	  .run = schedule_add },
	{ .group = "scale", .name = "schedule list", .args = "[POOL]",
	  .help = "the scheduled minimums and when each next starts (-o json)", .flags = CTL_VERB_ETCD,
	  .max_args = 1, .run = schedule_list },
	{ .group = "scale", .name = "schedule remove", .args = "POOL INDEX",
	  .help = "remove the pool's entry INDEX (as scale schedule list numbers them)", .flags = CTL_VERB_ETCD,
	  .min_args = 2, .max_args = 2, .run = schedule_remove },
	{},
};
