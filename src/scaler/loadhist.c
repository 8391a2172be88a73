/* loadhist.c — the load history the forecast reads (scale-forecast.h,
 * docs/scale.md "Forecast"): after each decision, each pool with forecast
 * enabled gets its demand (jobs running + jobs waiting, as the decision
 * saw them) added to scale/load_history/<pool>. Written with the cycle's
 * other fenced writes, only when a new minute begins (or a lost or bad
 * history starts afresh): one put per pool per minute at most. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loadhist.h"
#include "macro.h"
#include "scale-forecast.h"

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

int loadhist_update(const scale_records *rec, const scale_output *out, time_t now, loadhist_put_fn put,
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
