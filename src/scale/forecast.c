/* forecast.c — a pool's load history (one point per minute, kept by the
 * leader in scale/load_history/<pool>) and the demand forecast made from it
 * (scale-forecast.h; docs/scale.md, "Forecast"). Pure: no I/O, no clock.
 *
 * The forecast reads no point after now: every read below goes through
 * point_at(), which refuses minutes after now's. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "macro.h"
#include "scale-forecast.h"

/* The trend compares the last quarter hour with the same quarter hour in
 * an earlier season. */
#define TREND_WINDOW (15 * 60)
#define TREND_MIN 0.1
#define TREND_MAX 2.0

static time_t minute_of(time_t t, int64_t step) {
	time_t r = t % step;
	return t - (r < 0 ? r + step : r);
}

void scale_history_done(scale_history *h) {
	if (!h)
		return;
	free(h->points);
	*h = (scale_history) {};
}

int scale_history_parse(const char *text, size_t len, scale_history *out) {
	json_auto_t *j = text ? json_loadb(text, len, 0, NULL) : NULL;
	json_t *step, *start, *points, *v;
	size_t i;

	*out = (scale_history) {};
	if (!json_is_object(j))
		return -EINVAL;
	step = json_object_get(j, "step");
	start = json_object_get(j, "start");
	points = json_object_get(j, "points");
	/* One step only: a history of another step is started afresh rather
	 * than resampled (it is at most a season of forecasts lost). */
	if (!json_is_integer(step) || json_integer_value(step) != SCALE_HISTORY_STEP || !json_is_integer(start) ||
	    json_integer_value(start) < 0 || json_integer_value(start) % SCALE_HISTORY_STEP != 0 ||
	    !json_is_array(points) || json_array_size(points) > SCALE_HISTORY_MAX_POINTS)
		return -EINVAL;
	out->points = calloc(json_array_size(points) + 1, sizeof *out->points);
	if (!out->points)
		return -ENOMEM;
	json_array_foreach(points, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > INT_MAX) {
			scale_history_done(out);
			return -EINVAL;
		}
		out->points[i] = (int) json_integer_value(v);
	}
	out->n = json_array_size(points);
	out->start = (time_t) json_integer_value(start);
	out->step = SCALE_HISTORY_STEP;
	return 0;
}

json_t *scale_load_history_to_json(const scale_history *h) {
	json_auto_t *points = json_array();

	if (!points)
		return NULL;
	for (size_t i = 0; i < h->n; i++)
		if (json_array_append_new(points, json_integer(h->points[i])) < 0)
			return NULL;
	return json_pack("{sI sI sO}", "step", (json_int_t) (h->step ?: SCALE_HISTORY_STEP), "start",
			 (json_int_t) h->start, "points", points);
}

/* Points kept: the minute lookback ago through now's, capped. */
static size_t keep_points(int64_t lookback, int64_t step) {
	if (lookback <= 0 || lookback / step >= SCALE_HISTORY_MAX_POINTS)
		return SCALE_HISTORY_MAX_POINTS;
	return (size_t) (lookback / step) + 1;
}

int scale_history_add(scale_history *h, time_t now, int demand, int64_t lookback) {
	int64_t step = h->step > 0 ? h->step : SCALE_HISTORY_STEP;
	time_t m = minute_of(now, step), first;
	size_t keep = keep_points(lookback, step), n;
	int *v;

	/* -1 means "not observed"; a demand is never below 0. */
	if (demand < 0)
		demand = 0;
	if (h->n > 0 && m >= h->start && m < h->start + (time_t) h->n * step) {
		/* A minute already recorded (the last, or an earlier one when the
		 * clock stepped back): the larger value, no new minute. */
		int *p = &h->points[(m - h->start) / step];
		if (demand > *p)
			*p = demand;
		return 0;
	}
	if (h->n > 0 && m < h->start)
		return 0;       /* before the history: the clock went back, keep it */
	/* A new minute: the points from first through m, the gap in between
	 * not observed; a history older than the lookback is dropped whole. */
	first = m - (time_t) (keep - 1) * step;
	if (h->n == 0 || h->start + (time_t) h->n * step <= first)
		first = m;      /* nothing kept: no run of -1 before the point */
	else if (h->start > first)
		first = h->start;
	n = (size_t) ((m - first) / step) + 1;
	v = malloc(n * sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		time_t t = first + (time_t) i * step;
		size_t j = h->n > 0 && t >= h->start ? (size_t) ((t - h->start) / step) : SIZE_MAX;
		v[i] = j < h->n ? h->points[j] : -1;
	}
	v[n - 1] = demand;
	free(h->points);
	h->points = v;
	h->n = n;
	h->start = first;
	h->step = step;
	return 1;
}

int scale_history_update(const char *old_text, size_t old_len, time_t now, int demand, int64_t lookback,
			 char **new_text) {
	_cleanup_(scale_history_done) scale_history h = {};
	bool fresh = false;
	int k;

	*new_text = NULL;
	k = scale_history_parse(old_text, old_len, &h);
	if (k == -ENOMEM)
		return k;
	if (k < 0) {
		/* absent or not a history: started afresh, and written */
		h = (scale_history) { .step = SCALE_HISTORY_STEP };
		fresh = true;
	}
	k = scale_history_add(&h, now, demand, lookback);
	if (k < 0)
		return k;
	if (k == 0 && !fresh)
		return 0;
	json_auto_t *j = scale_load_history_to_json(&h);
	*new_text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	return *new_text ? 1 : -ENOMEM;
}

/* ---- the forecast ---------------------------------------------------------------- */

/* The point of minute t, -1 when not observed or not yet: never one of a
 * minute after now's. */
static int point_at(const scale_history *h, time_t now, time_t t) {
	int64_t step = h->step > 0 ? h->step : SCALE_HISTORY_STEP;

	if (t > minute_of(now, step) || t < h->start)
		return -1;
	size_t i = (size_t) ((t - h->start) / step);
	return i < h->n ? h->points[i] : -1;
}

/* The peak (*mean: the mean) of the observed points of the minutes in
 * [from, to] (clipped at now); false when none is observed. */
static bool window(const scale_history *h, time_t now, time_t from, time_t to, int *peak, double *mean) {
	int64_t step = h->step > 0 ? h->step : SCALE_HISTORY_STEP;
	long sum = 0, count = 0;
	int max = -1;

	for (time_t t = minute_of(from, step); t <= to && t <= now; t += step) {
		int p = point_at(h, now, t);
		if (p < 0)
			continue;
		if (p > max)
			max = p;
		sum += p;
		count++;
	}
	if (peak)
		*peak = max;
	if (mean)
		*mean = count ? (double) sum / (double) count : 0;
	return count > 0;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *) a, y = *(const double *) b;
	return (x > y) - (x < y);
}

int scale_forecast_demand(const scale_history *h, const scale_forecast_conf *conf, time_t now, int *demand) {
	int64_t seasons, horizon = conf->horizon > 0 ? conf->horizon : 0;
	double recent = 0;
	bool have_recent;
	size_t n = 0;

	if (conf->season <= 0 || conf->lookback < conf->season)
		return -ENODATA;
	seasons = conf->lookback / conf->season;
	if (!h || h->n == 0 || seasons <= 0)
		return -ENODATA;
	_cleanup_free_ double *est = calloc((size_t) seasons, sizeof *est);
	if (!est)
		return -ENOMEM;
	have_recent = window(h, now, now - TREND_WINDOW, now, NULL, &recent);
	for (int64_t k = 1; k <= seasons; k++) {
		time_t then = now - (time_t) (k * conf->season), base_from = then - TREND_WINDOW;
		double base, f = 1;
		int peak;

		/* the same window k seasons ago; with horizon >= season its end
		 * would pass now: window() clips it there */
		if (!window(h, now, then, then + (time_t) horizon, &peak, NULL))
			continue;
		/* that season scaled to today's level: the last quarter hour
		 * against the same quarter hour then */
		if (have_recent && window(h, now, base_from, then, NULL, &base) && base > 0) {
			f = recent / base;
			f = f < TREND_MIN ? TREND_MIN : f > TREND_MAX ? TREND_MAX : f;
		}
		est[n++] = peak * f;
	}
	if (n == 0)
		return -ENODATA;
	/* The median across seasons (the upper one of an even count: the
	 * forecast only ever adds capacity, and with two seasons it is the
	 * larger one): one day unlike the others does not move it. */
	qsort(est, n, sizeof *est, cmp_double);
	*demand = est[n / 2] >= INT_MAX ? INT_MAX : (int) lround(est[n / 2]);
	return 0;
}

/* ---- after a decision: the leader's and the simulator's update ---- */

static const scale_metrics *metrics_of(const scale_output *out, const char *pool) {
	for (size_t i = 0; i < out->n_metrics; i++)
		if (streq_ptr(out->metrics[i].pool, pool))
			return &out->metrics[i];
	return NULL;
}

static const scale_kv *history_of(const scale_records *rec, const char *pool) {
	for (size_t i = 0; i < rec->n_load_history; i++)
		if (streq(rec->load_history[i].id, pool))
			return &rec->load_history[i];
	return NULL;
}

int scale_history_record(const scale_records *rec, const scale_output *out, time_t now, scale_history_put_fn put,
			 void *userdata) {
	for (size_t i = 0; rec->policy && i < rec->policy->n_pools; i++) {
		const scale_pool *p = &rec->policy->pools[i];
		const scale_metrics *m = metrics_of(out, p->name);
		const scale_kv *old;
		char *text = NULL;
		int r;

		if (!p->forecast.enabled || !m)
			continue;
		old = history_of(rec, p->name);
		r = scale_history_update(old ? old->value : NULL, old ? old->len : 0, now, m->jobs + m->queue,
					 p->forecast.lookback, &text);
		if (r < 0)
			return r;
		if (r > 0 && (r = put(userdata, p->name, text)) < 0)
			return r;
	}
	return 0;
}
