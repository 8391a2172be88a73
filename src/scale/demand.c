/* demand.c — the wanted host count from demand (issue 17, docs/scale.md
 * "Demand"): the demand policy (jobs running on healthy hosts plus jobs
 * waiting, with n + 2*sqrt(n) headroom), and what raises any policy's
 * answer ahead of time: the forecast of demand over the next horizon and
 * the schedule's minimum. Part of the decision (scale.c): pure. */
#include <math.h>

#include "scale-forecast.h"
#include "scale-internal.h"

int scale_jobs_per_host(const pool_run *run) {
	if (run->p->jobs_per_host > 0)
		return run->p->jobs_per_host;
	int best = 0;
	for (size_t i = 0; i < run->n; i++)
		if (run->hs[i].eff == SCALE_READY && run->hs[i].h->job_capacity > best)
			best = run->hs[i].h->job_capacity;
	return best > 0 ? best : 1;
}

/* Job slots for a demand of d jobs, as hosts of jph slots: d + 2*sqrt(d)
 * (or d * factor), rounded up; 0 for no demand. */
static int hosts_for(double d, double factor, int jph, double *slots) {
	double cap = d <= 0 ? 0 : factor > 0 ? d * factor : d + 2.0 * sqrt(d);
	if (slots)
		*slots = cap;
	double hosts = ceil(cap / jph - 1e-9);
	return hosts < 0 ? 0 : hosts > 1e6 ? 1000000 : (int) hosts;
}

/* Unlike the jobs policy this sees the queue: a step of waiting jobs is
 * launched for at once instead of climbing by the headroom of what
 * already runs. Jobs on unhealthy hosts are not served, so not counted;
 * launching hosts are capacity arriving (the size step compares the
 * answer with ready + launching). */
int scale_want_demand(pool_run *run) {
	scale_metrics *m = run->m;
	double d = (double) (m->jobs - m->jobs_unhealthy) + m->queue;

	m->jobs_per_host = scale_jobs_per_host(run);
	return hosts_for(d, run->p->capacity_factor, m->jobs_per_host, &m->desired_capacity);
}

int scale_want_ahead(pool_run *run, int want) {
	const scale_pool *p = run->p;
	scale_metrics *m = run->m;

	m->forecast = -1;
	for (size_t i = 0; i < run->in->n_forecasts; i++) {
		const scale_forecast *f = &run->in->forecasts[i];
		if (!streq_ptr(f->pool, p->name) || f->demand < 0)
			continue;
		if (m->jobs_per_host <= 0)
			m->jobs_per_host = scale_jobs_per_host(run);
		/* always the sqrt headroom: the forecast is a peak, not a mean,
		 * but its error grows like the noise of the load it learnt */
		int hosts = hosts_for(f->demand, 0, m->jobs_per_host, NULL);
		m->forecast = f->demand;
		if (hosts > want)
			want = hosts;
		break;
	}
	m->schedule_min = scale_schedule_min(p, run->now);
	return want > m->schedule_min ? want : m->schedule_min;
}
