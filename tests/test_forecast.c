/* test_forecast.c — the load history's codec and bookkeeping and the demand
 * forecast made from it (src/scale/forecast.c): synthetic seasons, a test
 * that the forecast never reads a point after now, and what it cannot say. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "scale-forecast.h"

#define DAY 86400
#define MIN 60
/* a Monday 00:00 UTC, a multiple of a day */
#define T0 ((time_t) 1764547200)

static const scale_forecast_conf DAILY = { .enabled = true, .lookback = 7 * DAY, .season = DAY, .horizon = 300 };

/* A history of n minutes from T0, point i = f(i). */
static void history(scale_history *h, size_t n, int (*f)(size_t i)) {
	*h = (scale_history) { .start = T0, .step = SCALE_HISTORY_STEP, .points = calloc(n + 1, sizeof(int)), .n = n };
	cr_assert_not_null(h->points);
	for (size_t i = 0; i < n; i++)
		h->points[i] = f(i);
}

static int forecast(const scale_history *h, const scale_forecast_conf *c, time_t now) {
	int d = -7;
	int k = scale_forecast_demand(h, c, now, &d);
	cr_assert(k == 0 || k == -ENODATA, "forecast: %d", k);
	return k == 0 ? d : -1;
}

/* 4 jobs, 40 from 10:00 to 10:30 every day */
static int exam_daily(size_t i) {
	size_t m = i % (DAY / MIN);
	return m >= 600 && m < 630 ? 40 : 4;
}

/* ---- codec ---- */

Test(forecast, history_round_trip) {
	static const char text[] = "{\"step\": 60, \"start\": 1764547200, \"points\": [4, -1, 0, 12]}";
	_cleanup_(scale_history_done) scale_history h = {};

	cr_assert_eq(scale_history_parse(text, strlen(text), &h), 0);
	cr_assert_eq(h.start, T0);
	cr_assert_eq(h.step, 60);
	cr_assert_eq(h.n, 4);
	cr_assert_eq(h.points[1], -1);
	cr_assert_eq(h.points[3], 12);
	json_auto_t *j = scale_load_history_to_json(&h);
	json_auto_t *want = json_loads(text, 0, NULL);
	cr_assert(json_equal(j, want));
}

Test(forecast, history_bad_documents) {
	static const char *const bad[] = {
		"", "[]", "{\"points\": [1]}", "not json",
		"{\"step\": 30, \"start\": 1764547200, \"points\": []}",
		"{\"step\": 60, \"start\": 1764547201, \"points\": []}",
		"{\"step\": 60, \"start\": -60, \"points\": []}",
		"{\"step\": 60, \"start\": 1764547200, \"points\": [1, -2]}",
		"{\"step\": 60, \"start\": 1764547200, \"points\": [1, \"2\"]}",
		"{\"step\": 60, \"start\": 1764547200, \"points\": [1.5]}",
		"{\"step\": 60, \"start\": 1764547200, \"points\": {}}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		scale_history h = { .n = 99 };
		cr_assert_eq(scale_history_parse(bad[i], strlen(bad[i]), &h), -EINVAL, "%s", bad[i]);
		cr_assert_eq(h.n, 0);
		cr_assert_null(h.points);
	}
	scale_history h = { .n = 99 };
	cr_assert_eq(scale_history_parse(NULL, 0, &h), -EINVAL);
}

Test(forecast, history_more_than_the_cap_is_bad) {
	json_auto_t *pts = json_array();
	for (size_t i = 0; i <= SCALE_HISTORY_MAX_POINTS; i++)
		json_array_append_new(pts, json_integer(1));
	json_auto_t *j = json_pack("{sisIsO}", "step", 60, "start", (json_int_t) T0, "points", pts);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	scale_history h;
	cr_assert_eq(scale_history_parse(text, strlen(text), &h), -EINVAL);
}

/* ---- bookkeeping ---- */

Test(forecast, add_one_point_per_minute) {
	_cleanup_(scale_history_done) scale_history h = { .step = SCALE_HISTORY_STEP };

	cr_assert_eq(scale_history_add(&h, T0 + 10, 5, DAY), 1, "the first minute");
	cr_assert_eq(h.start, T0, "aligned to the minute");
	cr_assert_eq(scale_history_add(&h, T0 + 40, 3, DAY), 0, "the same minute, smaller");
	cr_assert_eq(h.points[0], 5, "keeps the larger");
	cr_assert_eq(scale_history_add(&h, T0 + 59, 8, DAY), 0, "the same minute, larger");
	cr_assert_eq(h.points[0], 8);
	cr_assert_eq(scale_history_add(&h, T0 + 60, 2, DAY), 1, "a new minute");
	cr_assert_eq(h.n, 2);
	cr_assert_eq(scale_history_add(&h, T0 + 5 * MIN + 1, -3, DAY), 1, "a gap");
	cr_assert_eq(h.n, 6);
	int want[] = { 8, 2, -1, -1, -1, 0 };
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(h.points[i], want[i], "point %zu: %d", i, h.points[i]);
	cr_assert_eq(scale_history_add(&h, T0 - 1, 9, DAY), 0, "before the history: left as it is");
	cr_assert_eq(h.start, T0);
	cr_assert_eq(h.n, 6);
}

Test(forecast, add_drops_what_is_older_than_lookback) {
	_cleanup_(scale_history_done) scale_history h = { .step = SCALE_HISTORY_STEP };

	for (int i = 0; i < 20; i++)
		cr_assert_eq(scale_history_add(&h, T0 + i * MIN, i, 10 * MIN), 1);
	cr_assert_eq(h.n, 11, "the minute lookback ago through now's");
	cr_assert_eq(h.start, T0 + 9 * MIN);
	cr_assert_eq(h.points[0], 9);
	cr_assert_eq(h.points[10], 19);
	/* a history older than the lookback: dropped whole */
	cr_assert_eq(scale_history_add(&h, T0 + DAY, 7, 10 * MIN), 1);
	cr_assert_eq(h.n, 1);
	cr_assert_eq(h.start, T0 + DAY);
	cr_assert_eq(h.points[0], 7);
}

Test(forecast, add_caps_the_points) {
	_cleanup_(scale_history_done) scale_history h = { .step = SCALE_HISTORY_STEP };

	cr_assert_eq(scale_history_add(&h, T0, 1, 0), 1);
	cr_assert_eq(scale_history_add(&h, T0 + (SCALE_HISTORY_MAX_POINTS - 1) * MIN, 2, 0), 1, "lookback 0: the cap");
	cr_assert_eq(h.n, SCALE_HISTORY_MAX_POINTS);
	cr_assert_eq(h.points[0], 1);
	cr_assert_eq(h.points[1], -1);
	cr_assert_eq(h.points[h.n - 1], 2);
	cr_assert_eq(scale_history_add(&h, T0 + SCALE_HISTORY_MAX_POINTS * MIN, 3, 60 * DAY), 1,
		     "a lookback beyond the cap");
	cr_assert_eq(h.n, SCALE_HISTORY_MAX_POINTS);
	cr_assert_eq(h.start, T0 + MIN);
	cr_assert_eq(h.points[0], -1);
	cr_assert_eq(h.points[h.n - 2], 2);
}

Test(forecast, update_writes_on_a_new_minute) {
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	cr_assert_eq(scale_history_update(NULL, 0, T0 + 5, 4, DAY, &a), 1, "no history: a new one");
	cr_assert_str_eq(a, "{\"step\":60,\"start\":1764547200,\"points\":[4]}");
	cr_assert_eq(scale_history_update(a, strlen(a), T0 + 50, 9, DAY, &b), 0, "the same minute");
	cr_assert_null(b);
	cr_assert_eq(scale_history_update(a, strlen(a), T0 + 130, 6, DAY, &b), 1);
	cr_assert_str_eq(b, "{\"step\":60,\"start\":1764547200,\"points\":[4,-1,6]}");
	cr_assert_eq(scale_history_update("garbage", 7, T0 + 130, 6, DAY, &c), 1, "a bad one: afresh, written");
	cr_assert_str_eq(c, "{\"step\":60,\"start\":1764547320,\"points\":[6]}");
	/* len bytes, no NUL needed */
	cr_assert_eq(scale_history_update(b, strlen(b) - 1, T0 + 130, 6, DAY, &d), 1, "cut short: afresh");
	cr_assert_str_eq(d, c);
}

Test(forecast, seven_days_is_tens_of_kilobytes) {
	_cleanup_(scale_history_done) scale_history h = {};
	history(&h, 7 * DAY / MIN + 1, exam_daily);
	json_auto_t *j = scale_load_history_to_json(&h);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	/* docs/scale.md says ~20 kB for 7 days of one-digit demand */
	cr_assert_lt(strlen(text), 40000, "%zu bytes", strlen(text));
	cr_assert_gt(strlen(text), 2 * (7 * DAY / MIN));
}

/* ---- the forecast ---- */

/* Three days with the exam at 10:00: on the 4th day the forecast at 09:57
 * (horizon 5 min) sees it, at 12:00 it does not. */
Test(forecast, daily_season_sees_tomorrows_peak) {
	_cleanup_(scale_history_done) scale_history h = {};
	time_t d4 = T0 + 3 * DAY;

	history(&h, 3 * DAY / MIN + 9 * 60 + 58, exam_daily);     /* through day 4's 09:57 */
	cr_assert_eq(forecast(&h, &DAILY, d4 + 9 * 3600 + 57 * MIN), 40);
	cr_assert_eq(forecast(&h, &DAILY, d4 + 9 * 3600 + 54 * MIN), 4, "the horizon does not reach 10:00");
	free(h.points);
	history(&h, 3 * DAY / MIN + 12 * 60 + 1, exam_daily);      /* through 12:00 */
	cr_assert_eq(forecast(&h, &DAILY, d4 + 12 * 3600), 4);
}

/* Every point after now poisoned: the same forecast as with none. */
Test(forecast, never_reads_a_point_after_now) {
	_cleanup_(scale_history_done) scale_history h = {}, p = {};
	size_t n = 4 * DAY / MIN;
	scale_forecast_conf long_horizon = DAILY;

	/* even a horizon past the season (one season read: no median to
	 * hide a poisoned point behind) */
	long_horizon.horizon = 2 * DAY;
	long_horizon.lookback = DAY;
	history(&h, n, exam_daily);
	history(&p, n, exam_daily);
	for (time_t now = T0 + DAY + 9 * 3600; now < T0 + 4 * DAY - MIN; now += 37 * MIN + 13) {
		size_t cut = (size_t) ((now - T0) / MIN) + 1;      /* the minutes through now's */
		h.n = cut;
		for (size_t i = cut; i < n; i++)
			p.points[i] = 1000000;
		for (size_t c = 0; c < 2; c++) {
			const scale_forecast_conf *conf = c ? &long_horizon : &DAILY;
			int a = forecast(&h, conf, now), b = forecast(&p, conf, now);
			cr_assert_eq(a, b, "at %ld: %d without the future, %d with it poisoned", (long) (now - T0), a, b);
			cr_assert_lt(b, 1000, "at %ld", (long) (now - T0));
		}
		for (size_t i = cut; i < n; i++)
			p.points[i] = exam_daily(i);
	}
	h.n = n;
}

Test(forecast, less_than_a_season_says_nothing) {
	_cleanup_(scale_history_done) scale_history h = {};
	scale_history empty = {};
	scale_forecast_conf short_lookback = DAILY;
	int d = -7;

	history(&h, DAY / MIN - 10, exam_daily);
	cr_assert_eq(scale_forecast_demand(&h, &DAILY, T0 + DAY - 11 * MIN, &d), -ENODATA);
	cr_assert_eq(d, -7, "left as it was");
	cr_assert_eq(scale_forecast_demand(&empty, &DAILY, T0 + DAY, &d), -ENODATA);
	cr_assert_eq(scale_forecast_demand(NULL, &DAILY, T0 + DAY, &d), -ENODATA);
	short_lookback.lookback = DAY - 1;
	free(h.points);
	history(&h, 2 * DAY / MIN, exam_daily);
	cr_assert_eq(scale_forecast_demand(&h, &short_lookback, T0 + DAY + 9 * 3600, &d), -ENODATA);
	/* the window a season ago not observed (-1) */
	for (size_t i = 590; i < 640; i++)
		h.points[i] = -1;
	cr_assert_eq(scale_forecast_demand(&h, &DAILY, T0 + DAY + 9 * 3600 + 57 * MIN, &d), -ENODATA);
}

/* One day unlike the others (a one-off spike) does not move the median of
 * five; four weekdays out of six seasons do. */
static int one_off(size_t i) {
	size_t day = i / (DAY / MIN), m = i % (DAY / MIN);
	return day == 2 && m >= 600 && m < 630 ? 80 : 4;
}

static int weekdays(size_t i) {
	size_t day = i / (DAY / MIN);
	return day % 7 < 5 ? exam_daily(i) : 4;
}

Test(forecast, median_across_seasons) {
	_cleanup_(scale_history_done) scale_history h = {};
	time_t at = 9 * 3600 + 57 * MIN;

	history(&h, 5 * DAY / MIN + 600, one_off);
	cr_assert_eq(forecast(&h, &DAILY, T0 + 5 * DAY + at), 4, "one spike in five days");
	free(h.points);
	/* the second Monday: a week of Mon-Fri exams, the weekend without */
	history(&h, 7 * DAY / MIN + 600, weekdays);
	cr_assert_eq(forecast(&h, &DAILY, T0 + 7 * DAY + at), 40, "five exam days out of seven");
	/* a weekly season sees last Monday only */
	scale_forecast_conf weekly = { .enabled = true, .lookback = 14 * DAY, .season = 7 * DAY, .horizon = 300 };
	cr_assert_eq(forecast(&h, &weekly, T0 + 7 * DAY + at), 40);
	free(h.points);
	history(&h, 13 * DAY / MIN + 600, weekdays);
	cr_assert_eq(forecast(&h, &weekly, T0 + 12 * DAY + at), 4, "last Saturday had none");
}

/* Today's level against the same quarter hour earlier, clamped [0.5, 2]. */
static int level;
static int trending(size_t i) {
	return i >= 2 * DAY / MIN ? level * exam_daily(i) / 4 : exam_daily(i);
}

Test(forecast, trend_scales_by_todays_level) {
	_cleanup_(scale_history_done) scale_history h = {};
	time_t now = T0 + 2 * DAY + 9 * 3600 + 57 * MIN;
	size_t n = 2 * DAY / MIN + 598;

	level = 6;      /* 1.5 times */
	history(&h, n, trending);
	cr_assert_eq(forecast(&h, &DAILY, now), 60);
	free(h.points);
	level = 40;     /* 10 times: clamped at 2 */
	history(&h, n, trending);
	cr_assert_eq(forecast(&h, &DAILY, now), 80);
	free(h.points);
	level = 1;      /* a quarter */
	history(&h, n, trending);
	cr_assert_eq(forecast(&h, &DAILY, now), 10);
	free(h.points);
	level = 0;      /* nothing running now: clamped at a tenth, not nothing */
	history(&h, n, trending);
	cr_assert_eq(forecast(&h, &DAILY, now), 4);
}

/* A peak near INT_MAX doubled by the trend saturates, it does not wrap. */
static int huge(size_t i) {
	if (i >= DAY / MIN)
		return 2;
	return i % (DAY / MIN) >= 600 && i % (DAY / MIN) < 630 ? INT_MAX : 1;
}

Test(forecast, huge_demand_saturates) {
	_cleanup_(scale_history_done) scale_history h = {};

	history(&h, DAY / MIN + 598, huge);
	cr_assert_eq(forecast(&h, &DAILY, T0 + DAY + 9 * 3600 + 57 * MIN), INT_MAX);
}
