/* policy.c — JSON codecs for the autoscaler's stored documents:
 * <prefix>/scale/policy (the pools, written by operators, so every key is
 * checked and an error names it: "pools.web.max: must be >= min") and
 * <prefix>/scale/hosts/<instance-id> (host records, written by the leader).
 * Schemas and defaults: docs/scale.md.
 *
 * jansson ownership: json_object_get() borrows; json_object_set_new()
 * steals the value (NULL from an allocation is then an error return);
 * everything returned to callers is a new reference. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-forecast.h"
#include "scale-internal.h"

void scale_pool_defaults(scale_pool *p) {
	*p = (scale_pool) {
		.market_reserved = true,
		.market_on_demand = true,
		.min = 0,
		.max = 10,
		.min_idle = 0,
		.jobs_per_host = 0,
		.kind = SCALE_POLICY_JOBS,
		.capacity_factor = 0,
		.max_queued_jobs = 0,
		.memory_threshold = 0.8,
		.hosts = -1,
		.enabled = true,
		.desired = -1,
		.billing = SCALE_BILLING_PER_SECOND,
		.hourly_threshold = 50 * 60,
		.min_lifetime = 60,
		.scale_in_cooldown = 600,
		.scale_in_after = 600,
		.launch_timeout = 600,
		.unhealthy_timeout = 12 * 3600,
		.health_timeout = 60,
		.terminate_retry = 300,
		.forecast = { .enabled = false, .lookback = 7 * 24 * 3600, .season = 24 * 3600, .horizon = 300 },
		.warm_reuse_on_scale_in = true,
		.warm_refill_after = 3600,
	};
}

static void pool_done(scale_pool *p) {
	free(p->name);
	free(p->launch_template);
	for (size_t i = 0; i < p->n_instance_types; i++)
		free(p->instance_types[i]);
	free(p->instance_types);
	for (size_t i = 0; i < p->n_subnets; i++) {
		free(p->subnets[i].id);
		free(p->subnets[i].availability_zone);
	}
	free(p->subnets);
	for (size_t i = 0; i < p->n_schedule; i++)
		scale_schedule_done(&p->schedule[i]);
	free(p->schedule);
	*p = (scale_pool) { 0 };
}

void scale_policy_done(scale_policy *p) {
	if (!p)
		return;
	for (size_t i = 0; i < p->n_pools; i++)
		pool_done(&p->pools[i]);
	free(p->pools);
	*p = (scale_policy) { 0 };
}

const scale_pool *scale_policy_find(const scale_policy *p, const char *name) {
	for (size_t i = 0; p && name && i < p->n_pools; i++)
		if (streq(p->pools[i].name, name))
			return &p->pools[i];
	return NULL;
}

/* ---- pools -------------------------------------------------------------------------- */

static const char *const pool_keys[] = {
	"launch_template", "instance_types", "subnets", "markets", "spot_max_price", "fast_start",
	"min", "max", "min_idle", "jobs_per_host", "policy", "capacity_factor", "max_queued_jobs",
	"memory_threshold", "hosts", "enabled", "desired", "billing", "hourly_threshold",
	"min_lifetime", "scale_in_cooldown", "scale_in_after", "launch_timeout",
	"unhealthy_timeout", "drain_timeout", "health_timeout", "terminate_retry",
	"forecast", "warm_pool", "schedule",
};

#define DAY (24LL * 3600)

/* instance_types: a non-empty array of distinct non-empty strings. */
static int pool_types_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, "instance_types"), *e;
	size_t i;

	if (!json_is_array(x) || json_array_size(x) == 0)
		return scale_fail(err, scale_fkey(&f, base, "instance_types"), "must be a non-empty array of strings");
	p->instance_types = calloc(json_array_size(x), sizeof *p->instance_types);
	if (!p->instance_types)
		return -ENOMEM;
	json_array_foreach(x, i, e) {
		char k[160];
		scale_fmtbuf(k, sizeof k, "%s.instance_types[%zu]", base, i);
		if (!json_is_string(e) || json_string_length(e) == 0)
			return scale_fail(err, k, "must be a non-empty string");
		for (size_t j = 0; j < i; j++)
			if (streq(p->instance_types[j], json_string_value(e)))
				return scale_fail(err, k, "repeats \"%s\"", json_string_value(e));
		if (!(p->instance_types[i] = strdup(json_string_value(e))))
			return -ENOMEM;
		p->n_instance_types++;
	}
	return 0;
}

/* subnets: a non-empty array of distinct ids, each a string or
 * {"id": ..., "availability_zone": ...}. */
static int pool_subnets_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, "subnets"), *e;
	size_t i;
	int r;

	if (!json_is_array(x) || json_array_size(x) == 0)
		return scale_fail(err, scale_fkey(&f, base, "subnets"), "must be a non-empty array");
	p->subnets = calloc(json_array_size(x), sizeof *p->subnets);
	if (!p->subnets)
		return -ENOMEM;
	json_array_foreach(x, i, e) {
		char k[160];
		scale_subnet *s = &p->subnets[i];
		scale_fmtbuf(k, sizeof k, "%s.subnets[%zu]", base, i);
		p->n_subnets++;
		if (json_is_string(e) && json_string_length(e) > 0) {
			if (!(s->id = strdup(json_string_value(e))))
				return -ENOMEM;
		} else if (json_is_object(e)) {
			static const char *const sk[] = { "id", "availability_zone" };
			if ((r = scale_check_keys(e, k, sk, ELEMENTSOF(sk), err)) < 0 ||
			    (r = scale_get_str(e, k, "id", true, false, &s->id, err)) < 0 ||
			    (r = scale_get_str(e, k, "availability_zone", false, true, &s->availability_zone, err)) < 0)
				return r;
		} else
			return scale_fail(err, k, "must be a subnet id or {\"id\": ..., \"availability_zone\": ...}");
		for (size_t j = 0; j < i; j++)
			if (streq(p->subnets[j].id, s->id))
				return scale_fail(err, k, "repeats \"%s\"", s->id);
	}
	return 0;
}

/* markets, spot_max_price, fast_start. */
static int pool_markets_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, "markets"), *e;
	size_t i;
	int r;

	if (x) {
		if (!json_is_array(x) || json_array_size(x) == 0)
			return scale_fail(err, scale_fkey(&f, base, "markets"),
				    "must be a non-empty array of \"reserved\", \"spot\", \"on-demand\"");
		p->market_reserved = p->market_spot = p->market_on_demand = false;
		json_array_foreach(x, i, e) {
			char k[160];
			const char *s = json_string_value(e);
			scale_fmtbuf(k, sizeof k, "%s.markets[%zu]", base, i);
			if (streq_ptr(s, "reserved"))
				p->market_reserved = true;
			else if (streq_ptr(s, "spot"))
				p->market_spot = true;
			else if (streq_ptr(s, "on-demand"))
				p->market_on_demand = true;
			else
				return scale_fail(err, k, "must be \"reserved\", \"spot\" or \"on-demand\"");
		}
	}
	if ((r = scale_get_num(o, base, "spot_max_price", &p->spot_max_price, err)) < 0)
		return r;
	if (p->spot_max_price < 0 || !isfinite(p->spot_max_price))
		return scale_fail(err, scale_fkey(&f, base, "spot_max_price"), "must be >= 0");
	if (p->market_spot && p->spot_max_price <= 0)
		return scale_fail(err, scale_fkey(&f, base, "spot_max_price"), "must be > 0 when markets has \"spot\"");
	if ((r = scale_get_bool(o, base, "fast_start", &p->fast_start, err)) < 0)
		return r;
	if (p->fast_start && (!p->market_spot || !p->market_on_demand))
		return scale_fail(err, scale_fkey(&f, base, "fast_start"), "needs both \"spot\" and \"on-demand\" in markets");
	return 0;
}

/* The size: min, max, min_idle, jobs_per_host, the policy and its
 * parameters, enabled, the manual desired count. */
static int pool_size_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	scale_field f;
	json_t *x;
	int r;

	if ((r = GET_INT(o, base, "min", 0, 100000, p->min)) < 0 ||
	    (r = GET_INT(o, base, "max", 0, 100000, p->max)) < 0)
		return r;
	if (p->max < p->min)
		return scale_fail(err, scale_fkey(&f, base, "max"), "must be >= min");
	if ((r = GET_INT(o, base, "min_idle", 0, 100000, p->min_idle)) < 0 ||
	    (r = GET_INT(o, base, "jobs_per_host", 0, 1000000, p->jobs_per_host)) < 0)
		return r;

	x = json_object_get(o, "policy");
	if (x && scale_kind_from_string(json_string_value(x), &p->kind) < 0)
		return scale_fail(err, scale_fkey(&f, base, "policy"), "must be \"jobs\", \"queue\", \"threshold\", \"fixed\" or \"demand\"");
	if ((r = scale_get_num(o, base, "capacity_factor", &p->capacity_factor, err)) < 0)
		return r;
	if (p->capacity_factor != 0 && !(p->capacity_factor >= 1 && p->capacity_factor <= 100))
		return scale_fail(err, scale_fkey(&f, base, "capacity_factor"), "must be 0 (n + 2*sqrt(n)) or between 1 and 100");
	if ((r = GET_INT(o, base, "max_queued_jobs", 0, 100000000, p->max_queued_jobs)) < 0)
		return r;
	if ((r = scale_get_num(o, base, "memory_threshold", &p->memory_threshold, err)) < 0)
		return r;
	if (!(p->memory_threshold > 0 && p->memory_threshold <= 1))
		return scale_fail(err, scale_fkey(&f, base, "memory_threshold"), "must be > 0 and <= 1");

	x = json_object_get(o, "hosts");
	if (x && !json_is_null(x) && (r = GET_INT(o, base, "hosts", 0, 100000, p->hosts)) < 0)
		return r;
	if (p->kind == SCALE_POLICY_FIXED && p->hosts >= 0 && (p->hosts < p->min || p->hosts > p->max))
		return scale_fail(err, scale_fkey(&f, base, "hosts"), "must be between min and max");
	if ((r = scale_get_bool(o, base, "enabled", &p->enabled, err)) < 0)
		return r;
	x = json_object_get(o, "desired");
	if (x && !json_is_null(x) && (r = GET_INT(o, base, "desired", 0, 100000, p->desired)) < 0)
		return r;
	if (p->desired >= 0 && (p->desired < p->min || p->desired > p->max))
		return scale_fail(err, scale_fkey(&f, base, "desired"), "must be between min and max");
	return 0;
}

/* billing and the timers. */
static int pool_timers_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	scale_field f;
	json_t *x = json_object_get(o, "billing");
	int r;

	if (x && scale_billing_from_string(json_string_value(x), &p->billing) < 0)
		return scale_fail(err, scale_fkey(&f, base, "billing"), "must be \"per-second\" or \"hourly\"");
	if ((r = GET_INT(o, base, "hourly_threshold", 0, 3599, p->hourly_threshold)) < 0 ||
	    (r = GET_INT(o, base, "min_lifetime", 0, DAY, p->min_lifetime)) < 0 ||
	    (r = GET_INT(o, base, "scale_in_cooldown", 0, DAY, p->scale_in_cooldown)) < 0 ||
	    (r = GET_INT(o, base, "scale_in_after", 0, DAY, p->scale_in_after)) < 0 ||
	    (r = GET_INT(o, base, "launch_timeout", 1, DAY, p->launch_timeout)) < 0 ||
	    (r = GET_INT(o, base, "unhealthy_timeout", 1, 30 * DAY, p->unhealthy_timeout)) < 0 ||
	    (r = GET_INT(o, base, "drain_timeout", 0, 30 * DAY, p->drain_timeout)) < 0 ||
	    (r = GET_INT(o, base, "health_timeout", 1, DAY, p->health_timeout)) < 0 ||
	    (r = GET_INT(o, base, "terminate_retry", 1, DAY, p->terminate_retry)) < 0)
		return r;
	return 0;
}

/* forecast, warm_pool, schedule (issue 17). */
static int pool_ahead_from_json(json_t *o, const char *base, scale_pool *p, scale_error *err) {
	static const char *const fk[] = { "enabled", "lookback", "season", "horizon" };
	static const char *const wk[] = { "size", "reuse_on_scale_in", "refill_after" };
	scale_field f;
	char k[160];
	json_t *x;
	int r;

	if ((x = json_object_get(o, "forecast"))) {
		scale_forecast_conf *fc = &p->forecast;
		scale_fmtbuf(k, sizeof k, "%s.forecast", base);
		if (!json_is_object(x))
			return scale_fail(err, k, "must be {\"enabled\", \"lookback\", \"season\", \"horizon\"}");
		if ((r = scale_get_bool(x, k, "enabled", &fc->enabled, err)) < 0 ||
		    (r = GET_INT(x, k, "lookback", 3600, SCALE_HISTORY_MAX_POINTS * SCALE_HISTORY_STEP, fc->lookback)) < 0 ||
		    (r = GET_INT(x, k, "season", 3600, 30 * DAY, fc->season)) < 0 ||
		    (r = GET_INT(x, k, "horizon", 0, DAY, fc->horizon)) < 0)
			return r;
		if (fc->season > fc->lookback)
			return scale_fail(err, scale_fkey(&f, k, "season"), "must be <= lookback");
		if ((r = scale_check_keys(x, k, fk, ELEMENTSOF(fk), err)) < 0)
			return r;
	}
	if ((x = json_object_get(o, "warm_pool"))) {
		scale_fmtbuf(k, sizeof k, "%s.warm_pool", base);
		if (!json_is_object(x))
			return scale_fail(err, k, "must be {\"size\", \"reuse_on_scale_in\", \"refill_after\"}");
		if ((r = GET_INT(x, k, "size", 0, p->max, p->warm_pool_size)) < 0 ||
		    (r = scale_get_bool(x, k, "reuse_on_scale_in", &p->warm_reuse_on_scale_in, err)) < 0 ||
		    (r = GET_INT(x, k, "refill_after", 0, 30 * DAY, p->warm_refill_after)) < 0 ||
		    (r = scale_check_keys(x, k, wk, ELEMENTSOF(wk), err)) < 0)
			return r;
	}
	if ((x = json_object_get(o, "schedule"))) {
		json_t *e;
		size_t i;
		if (!json_is_array(x))
			return scale_fail(err, scale_fkey(&f, base, "schedule"), "must be an array of entries");
		p->schedule = calloc(json_array_size(x) ? json_array_size(x) : 1, sizeof *p->schedule);
		if (!p->schedule)
			return -ENOMEM;
		json_array_foreach(x, i, e) {
			scale_fmtbuf(k, sizeof k, "%s.schedule[%zu]", base, i);
			if ((r = scale_schedule_from_json(e, k, &p->schedule[i], err)) < 0)
				return r;
			p->n_schedule++;
			if (p->schedule[i].min > p->max)
				return scale_fail(err, scale_fkey(&f, k, "min"), "must be <= the pool's max (%d)", p->max);
		}
	}
	return 0;
}

/* One pool, its keys checked in the order of docs/scale.md. */
static int pool_from_json(const char *name, json_t *o, scale_pool *p, scale_error *err) {
	char base[128];
	int r;

	scale_fmtbuf(base, sizeof base, "pools.%s", name);
	if (!json_is_object(o))
		return scale_fail(err, base, "must be an object");
	if (!*name)
		return scale_fail(err, base, "pool name must not be empty");
	p->name = strdup(name);
	if (!p->name)
		return -ENOMEM;

	if ((r = scale_get_str(o, base, "launch_template", true, false, &p->launch_template, err)) < 0 ||
	    (r = pool_types_from_json(o, base, p, err)) < 0 || (r = pool_subnets_from_json(o, base, p, err)) < 0 ||
	    (r = pool_markets_from_json(o, base, p, err)) < 0 || (r = pool_size_from_json(o, base, p, err)) < 0 ||
	    (r = pool_timers_from_json(o, base, p, err)) < 0 || (r = pool_ahead_from_json(o, base, p, err)) < 0)
		return r;

	/* last, so a wrong value of a known key is reported as such */
	return scale_check_keys(o, base, pool_keys, ELEMENTSOF(pool_keys), err);
}

static int pool_cmp(const void *a, const void *b) {
	return strcmp(((const scale_pool *) a)->name, ((const scale_pool *) b)->name);
}

int scale_policy_from_json(json_t *doc, scale_policy *out, scale_error *err) {
	_cleanup_(scale_policy_done) scale_policy p = { 0 };
	static const char *const top[] = { "pools" };
	json_t *pools;
	int r;

	if (err)
		*err = (scale_error) { 0 };
	if (!json_is_object(doc))
		return scale_fail(err, "", "the policy must be a JSON object");
	if ((r = scale_check_keys(doc, "", top, ELEMENTSOF(top), err)) < 0)
		return r;
	pools = json_object_get(doc, "pools");
	if (pools && !json_is_object(pools))
		return scale_fail(err, "pools", "must be an object");

	size_t n = json_object_size(pools);
	/* names sorted first, so errors come in a fixed order */
	_cleanup_free_ const char **names = calloc(n ? n : 1, sizeof *names);
	if (!names)
		return -ENOMEM;
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach(pools, k, v)
		names[i++] = k;
	for (size_t a = 1; a < n; a++)
		for (size_t b = a; b > 0 && strcmp(names[b - 1], names[b]) > 0; b--) {
			const char *t = names[b];
			names[b] = names[b - 1];
			names[b - 1] = t;
		}

	p.pools = calloc(n ? n : 1, sizeof *p.pools);
	if (!p.pools)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		scale_pool_defaults(&p.pools[i]);
		p.n_pools++;
		r = pool_from_json(names[i], json_object_get(pools, names[i]), &p.pools[i], err);
		if (r < 0)
			return r;
	}
	qsort(p.pools, p.n_pools, sizeof *p.pools, pool_cmp);
	*out = p;
	p = (scale_policy) { 0 };
	return 0;
}

static json_t *str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}

json_t *scale_policy_to_json(const scale_policy *pol) {
	json_auto_t *doc = json_object(), *pools = json_object();
	if (!doc || !pools || json_object_set(doc, "pools", pools) < 0)
		return NULL;
	for (size_t i = 0; i < pol->n_pools; i++) {
		const scale_pool *p = &pol->pools[i];
		json_auto_t *o = json_object(), *types = json_array(), *subnets = json_array(), *markets = json_array();
		int bad = !o || !types || !subnets || !markets;
		for (size_t t = 0; t < p->n_instance_types && !bad; t++)
			bad = json_array_append_new(types, json_string(p->instance_types[t]));
		for (size_t s = 0; s < p->n_subnets && !bad; s++)
			bad = json_array_append_new(subnets, json_pack("{s:s?, s:o}", "id", p->subnets[s].id,
									      "availability_zone",
									      str_or_null(p->subnets[s].availability_zone)));
		if (p->market_reserved)
			bad = bad || json_array_append_new(markets, json_string("reserved"));
		if (p->market_spot)
			bad = bad || json_array_append_new(markets, json_string("spot"));
		if (p->market_on_demand)
			bad = bad || json_array_append_new(markets, json_string("on-demand"));
#define S(k, v) bad = bad || json_object_set_new(o, k, v)
		S("launch_template", str_or_null(p->launch_template));
		S("instance_types", json_incref(types));
		S("subnets", json_incref(subnets));
		S("markets", json_incref(markets));
		S("spot_max_price", json_real(p->spot_max_price));
		S("fast_start", json_boolean(p->fast_start));
		S("min", json_integer(p->min));
		S("max", json_integer(p->max));
		S("min_idle", json_integer(p->min_idle));
		S("jobs_per_host", json_integer(p->jobs_per_host));
		S("policy", json_string(scale_kind_to_string(p->kind)));
		S("capacity_factor", json_real(p->capacity_factor));
		S("max_queued_jobs", json_integer(p->max_queued_jobs));
		S("memory_threshold", json_real(p->memory_threshold));
		S("hosts", p->hosts >= 0 ? json_integer(p->hosts) : json_null());
		S("enabled", json_boolean(p->enabled));
		S("desired", p->desired >= 0 ? json_integer(p->desired) : json_null());
		S("billing", json_string(scale_billing_to_string(p->billing)));
		S("hourly_threshold", json_integer(p->hourly_threshold));
		S("min_lifetime", json_integer(p->min_lifetime));
		S("scale_in_cooldown", json_integer(p->scale_in_cooldown));
		S("scale_in_after", json_integer(p->scale_in_after));
		S("launch_timeout", json_integer(p->launch_timeout));
		S("unhealthy_timeout", json_integer(p->unhealthy_timeout));
		S("drain_timeout", json_integer(p->drain_timeout));
		S("health_timeout", json_integer(p->health_timeout));
		S("terminate_retry", json_integer(p->terminate_retry));
		S("forecast", json_pack("{s:b, s:I, s:I, s:I}", "enabled", p->forecast.enabled, "lookback",
					(json_int_t) p->forecast.lookback, "season", (json_int_t) p->forecast.season,
					"horizon", (json_int_t) p->forecast.horizon));
		S("warm_pool", json_pack("{s:i, s:b, s:I}", "size", p->warm_pool_size, "reuse_on_scale_in",
					 p->warm_reuse_on_scale_in, "refill_after", (json_int_t) p->warm_refill_after));
		json_t *sched = json_array();
		for (size_t e = 0; e < p->n_schedule && sched && !bad; e++)
			bad = json_array_append_new(sched, scale_schedule_to_json(&p->schedule[e]));
		S("schedule", sched);
#undef S
		if (bad || json_object_set(pools, p->name, o) < 0)
			return NULL;
	}
	return TAKE_PTR(doc);
}

/* ---- host records ------------------------------------------------------------------- */

void scale_host_done(scale_host *h) {
	if (!h)
		return;
	free(h->id);
	free(h->pool);
	free(h->instance_type);
	free(h->availability_zone);
	free(h->node_id);
	free(h->launch_template_version);
	free(h->image_id);
	free(h->replaces);
	free(h->replace_version);
	free(h->replace_image);
	*h = (scale_host) { 0 };
}

static int get_time(json_t *o, const char *name, time_t *v, scale_error *err) {
	long long t = *v;
	int r = scale_get_int(o, "host", name, 0, 253402300799LL /* 9999-12-31 */, &t, err);
	if (r >= 0)
		*v = (time_t) t;
	return r;
}

int scale_host_from_json(json_t *rec, scale_host *out, scale_error *err) {
	_cleanup_(scale_host_done) scale_host h = { .cluster_tagged = true };
	scale_field f;
	json_t *x;
	int r;

	if (err)
		*err = (scale_error) { 0 };
	if (!json_is_object(rec))
		return scale_fail(err, "host", "must be an object");
	if ((r = scale_get_str(rec, "host", "id", true, false, &h.id, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "pool", true, false, &h.pool, err)) < 0)
		return r;
	x = json_object_get(rec, "state");
	if (!x)
		return scale_fail(err, "host.state", "is required");
	if (scale_state_from_string(json_string_value(x), &h.state) < 0)
		return scale_fail(err, "host.state", "unknown state");
	x = json_object_get(rec, "market");
	if (x && scale_market_from_string(json_string_value(x), &h.market) < 0)
		return scale_fail(err, "host.market", "must be \"on-demand\" or \"spot\"");
	if ((r = scale_get_str(rec, "host", "instance_type", false, true, &h.instance_type, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "availability_zone", false, true, &h.availability_zone, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "node_id", false, true, &h.node_id, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "launch_template_version", false, true, &h.launch_template_version, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "image_id", false, true, &h.image_id, err)) < 0 ||
	    (r = scale_get_str(rec, "host", "replaces", false, true, &h.replaces, err)) < 0 ||
	    (r = get_time(rec, "launch_time", &h.launch_time, err)) < 0 ||
	    (r = get_time(rec, "state_since", &h.state_since, err)) < 0 ||
	    (r = get_time(rec, "last_seen", &h.last_seen, err)) < 0)
		return r;
	long long jobs = 0, cap = 0;
	if ((r = scale_get_int(rec, "host", "jobs", 0, 100000000, &jobs, err)) < 0 ||
	    (r = scale_get_int(rec, "host", "job_capacity", 0, 100000000, &cap, err)) < 0)
		return r;
	h.jobs = (int) jobs;
	h.job_capacity = (int) cap;
	if ((r = scale_get_num(rec, "host", "memory_used", &h.memory_used, err)) < 0)
		return r;
	if (!(h.memory_used >= 0 && h.memory_used <= 1))
		return scale_fail(err, scale_fkey(&f, "host", "memory_used"), "must be between 0 and 1");
	if ((r = scale_get_bool(rec, "host", "cluster_tagged", &h.cluster_tagged, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "hold", &h.hold, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "autoscale_off", &h.autoscale_off, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "interruption", &h.interruption, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "winding_down", &h.winding_down, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "warm", &h.warm, err)) < 0 ||
	    (r = scale_get_bool(rec, "host", "reserved", &h.reserved, err)) < 0)
		return r;
	/* unknown keys are ignored: records are the leader's, and a newer
	 * leader may add fields an older one must carry on reading */
	*out = h;
	h = (scale_host) { 0 };
	return 0;
}

json_t *scale_host_to_json(const scale_host *h) {
	json_auto_t *o = json_object();
	int bad = !o;
#define S(k, v) bad = bad || json_object_set_new(o, k, v)
	S("id", str_or_null(h->id));
	S("pool", str_or_null(h->pool));
	S("state", json_string(scale_state_to_string(h->state) ?: "terminated"));
	S("market", json_string(scale_market_to_string(h->market) ?: "on-demand"));
	S("instance_type", str_or_null(h->instance_type));
	S("availability_zone", str_or_null(h->availability_zone));
	S("launch_time", json_integer(h->launch_time));
	S("state_since", json_integer(h->state_since));
	S("node_id", str_or_null(h->node_id));
	S("last_seen", json_integer(h->last_seen));
	S("jobs", json_integer(h->jobs));
	S("job_capacity", json_integer(h->job_capacity));
	S("memory_used", json_real(h->memory_used));
	S("cluster_tagged", json_boolean(h->cluster_tagged));
	S("hold", json_boolean(h->hold));
	S("autoscale_off", json_boolean(h->autoscale_off));
	S("interruption", json_boolean(h->interruption));
	S("winding_down", json_boolean(h->winding_down));
	if (h->warm)
		S("warm", json_true());
	if (h->reserved)
		S("reserved", json_true());
	if (h->launch_template_version)
		S("launch_template_version", json_string(h->launch_template_version));
	if (h->image_id)
		S("image_id", json_string(h->image_id));
	if (h->replaces)
		S("replaces", json_string(h->replaces));
#undef S
	return bad ? NULL : TAKE_PTR(o);
}
