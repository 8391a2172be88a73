/* scale-forecast.h — what the autoscaler expects (issue 17): the per-pool
 * load history the leader keeps, the demand forecast made from it, and the
 * minimums of scheduled capacity. Pure: no I/O, no clock.
 *
 * The history is one point per step (60 s): the pool's demand (jobs
 * running + jobs waiting) as the leader observed it at that minute. It is
 * kept for the forecast's lookback in scale/load_history/<pool>, as JSON
 *   {"step": 60, "start": 1764835200, "points": [4, 4, 5, ...]}
 * where point i is the minute start + i * step (-1: not observed), capped
 * at SCALE_HISTORY_MAX_POINTS. A lost or bad history is started afresh: the
 * forecast then has nothing to say until a season has passed, and the
 * reactive policy decides alone (docs/scale.md, "Forecast").
 *
 * The forecast never reads a point after now: a test replays a trace and a
 * copy that differs only after some time, and the decisions up to that
 * time are the same. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "scale-observe.h"
#include "scale.h"

#define SCALE_HISTORY_STEP 60
#define SCALE_HISTORY_MAX_POINTS (15 * 24 * 60)        /* 15 days of minutes */

typedef struct scale_history {
	time_t start;           /* the first point's minute (a multiple of step) */
	int64_t step;           /* s per point (SCALE_HISTORY_STEP) */
	int *points;            /* n points, -1 where nothing was observed */
	size_t n;
} scale_history;

/* JSON text -> history. -EINVAL (not the format above), -ENOMEM. */
int scale_history_parse(const char *text, size_t len, scale_history *out);
/* New reference or NULL (ENOMEM). Not scale_history_to_json: that name is
 * the decision log's record (scale-report.h). */
json_t *scale_load_history_to_json(const scale_history *h);
void scale_history_done(scale_history *h);

/* Records demand for the minute of now; drops points older than lookback
 * (and beyond SCALE_HISTORY_MAX_POINTS); a point already recorded for the
 * minute keeps the larger value. 1 when a new minute was added (the leader
 * writes the history then), 0 when only the current minute changed or
 * nothing did, -ENOMEM. */
int scale_history_add(scale_history *h, time_t now, int demand, int64_t lookback);

/* The leader's and the simulator's step after each decision (demand: the
 * pool's jobs + queue): old_text (NULL or not a history: started afresh)
 * with demand added. 1 with *new_text (malloc'd compact JSON) when the
 * caller must write it (a new minute, or a history started afresh), 0 when
 * not (*new_text NULL), -ENOMEM. */
int scale_history_update(const char *old_text, size_t old_len, time_t now, int demand, int64_t lookback,
			 char **new_text);

/* The peak demand expected within (now, now + horizon], from the same
 * window in earlier seasons (now - k * season) and the recent trend
 * (docs/scale.md, "Forecast", says the method and its failure modes).
 * Reads no point after now. 0 with *demand set, -ENODATA when the history
 * holds too little to say (less than a season). */
/* Takes text (malloc'd) whatever it returns. 0 or -errno. */
typedef int (*scale_history_put_fn)(void *userdata, const char *pool, char *text);

/* After a decision, for each pool of rec's policy with forecast enabled:
 * its demand as the decision saw it (jobs running + queue, out's metrics)
 * added to its history (rec->load_history; absent or bad: started afresh),
 * and put() called with the new text when it is to be written (a new
 * minute). The leader puts it into etcd, the simulator into its next
 * step's records. 0, -ENOMEM, or put's error. */
int scale_history_record(const scale_records *rec, const scale_output *out, time_t now, scale_history_put_fn put,
			 void *userdata);

int scale_forecast_demand(const scale_history *h, const scale_forecast_conf *conf, time_t now, int *demand);

/* The minimum the pool's schedule puts in force at now (the largest of the
 * entries holding: now within [event - lead, event + duration)), 0 when
 * none. */
int scale_schedule_min(const scale_pool *p, time_t now);

/* One entry from/to JSON: {"cron": "0 10 * * 1-5" | "at": "2026-12-24T10:00:00Z",
 * "min": N, "duration": s, "lead": s}. -EINVAL with err naming the key
 * (prefix: "pools.web.schedule[0]"), -ENOMEM. */
int scale_schedule_from_json(json_t *j, const char *prefix, scale_schedule *out, scale_error *err);
json_t *scale_schedule_to_json(const scale_schedule *s);
void scale_schedule_done(scale_schedule *s);
