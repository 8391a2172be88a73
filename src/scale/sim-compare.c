/* sim-compare.c — `scale simulate` around its engine (sim.c): the trace
 * reader, the default settings and policy, and the comparison of policy
 * kinds replayed over one trace from the same empty fleet (and empty warm
 * pool). Pure apart from reading the trace file. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-sim.h"

const char scale_sim_default_policy[] =
	"{\"pools\": {\"sim\": {\"launch_template\": \"lt-sim\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"markets\": [\"reserved\", \"on-demand\"], \"min\": 0, \"max\": 500, \"jobs_per_host\": 4}}}";

void scale_sim_settings_defaults(scale_sim_settings *s) {
	*s = (scale_sim_settings) { .launch_delay = 120, .warm_start_delay = 30, .start = SCALE_SIM_START, .step = 60,
				    .price_on_demand = 0.096, .price_spot = 0.035, .price_reserved = 0.060,
				    .price_stopped = 0.0033, .host_capacity = 4 };
}

/* ---- the trace ---------------------------------------------------------------------- */

_printf_(3, 4) static int trace_fail(char *msg, size_t size, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int scale_sim_trace_read(FILE *f, const char *name, scale_sim_trace *out, char *msg, size_t msg_size) {
	_cleanup_free_ scale_sim_row *rows = NULL;
	size_t n = 0, cap = 0;
	char line[256];
	unsigned lineno = 0;

	if (msg_size > 0)
		msg[0] = '\0';
	while (fgets(line, sizeof line, f)) {
		long t;
		int running, queued;
		char extra;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#' || (lineno == 1 && strncmp(line, "seconds", 7) == 0))
			continue;
		if (sscanf(line, "%ld , %d , %d %c", &t, &running, &queued, &extra) != 3 || t < 0 || running < 0 ||
		    queued < 0)
			return trace_fail(msg, msg_size,
					  "%s:%u: want \"seconds,running,queued\" (non-negative integers)", name, lineno);
		if (n > 0 && t <= rows[n - 1].t)
			return trace_fail(msg, msg_size, "%s:%u: seconds must increase", name, lineno);
		if (n == cap) {
			scale_sim_row *nr = realloc(rows, (cap = cap ? cap * 2 : 256) * sizeof *rows);
			if (!nr)
				return -ENOMEM;
			rows = nr;
		}
		rows[n++] = (scale_sim_row) { t, running, queued };
	}
	if (n == 0)
		return trace_fail(msg, msg_size, "%s: no rows", name);
	*out = (scale_sim_trace) { TAKE_PTR(rows), n };
	return 0;
}

int scale_sim_trace_load(const char *path, scale_sim_trace *out, char *msg, size_t msg_size) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");

	if (!f) {
		int r = -errno;
		snprintf(msg, msg_size, "cannot read trace %s: %m", path);
		return r;
	}
	return scale_sim_trace_read(f, path, out, msg, msg_size);
}

void scale_sim_trace_done(scale_sim_trace *t) {
	free(t->rows);
	*t = (scale_sim_trace) { 0 };
}

/* ---- the comparison ----------------------------------------------------------------- */

/* Peak and mean of the running jobs over the simulated steps, in hosts. */
static void sim_sizes(const scale_sim_trace *tr, scale_sim_report *out) {
	const scale_sim_row *rows = tr->rows;
	const int cap = out->settings.host_capacity;
	long peak = 0, steps = 0;
	double sum = 0;

	for (long t = rows[0].t, row = 0; t <= rows[tr->n - 1].t; t += out->settings.step, steps++) {
		while ((size_t) row + 1 < tr->n && rows[row + 1].t <= t)
			row++;
		peak = rows[row].running > peak ? rows[row].running : peak;
		sum += rows[row].running;
	}
	out->peak_jobs = peak;
	out->peak_hosts = (int) ((peak + cap - 1) / cap);
	out->mean_hosts = (int) ceil(sum / steps / cap);
}

static scale_pool sim_fixed(const scale_pool *p, int hosts) {
	scale_pool x = *p;
	x.kind = SCALE_POLICY_FIXED;
	x.hosts = hosts > p->min ? hosts : p->min;
	x.max = x.hosts > p->max ? x.hosts : p->max;
	return x;
}

/* The issue-17 row: policy demand, forecast on (the pool's knobs, else
 * the defaults), a warm pool of 10 reused on scale-in, no schedule. */
static scale_pool sim_demand(const scale_pool *given, const scale_pool *anchor) {
	scale_pool x = *anchor, d;

	scale_pool_defaults(&d);
	x.kind = SCALE_POLICY_DEMAND;
	x.forecast = given->forecast.lookback > 0 ? given->forecast : d.forecast;
	x.forecast.enabled = true;
	x.warm_pool_size = 10;
	x.warm_reuse_on_scale_in = true;
	return x;
}

int scale_sim_compare(const scale_sim_trace *tr, const scale_pool *base, bool as_given, const scale_sim_settings *s,
		      scale_sim_report *out) {
	struct {
		const char *name;
		scale_pool pool;
	} runs[SCALE_SIM_RUNS_MAX];
	size_t n = 0;

	*out = (scale_sim_report) { .settings = *s };
	if (base->jobs_per_host > 0)
		out->settings.host_capacity = base->jobs_per_host;
	out->duration = tr->rows[tr->n - 1].t - tr->rows[0].t;
	sim_sizes(tr, out);

	scale_pool p = *base;
	p.desired = -1;
	p.enabled = true;
	if (s->billing_set)
		p.billing = s->billing;
	out->billing = p.billing;
	if (as_given)
		runs[n++] = (typeof(runs[0])) { "as given", p };
	/* the anchors as they always ran: no forecast, warm pool or schedule */
	scale_pool wanted = p;
	p.forecast.enabled = false;
	p.warm_pool_size = 0;
	p.schedule = NULL;
	p.n_schedule = 0;
	runs[n] = (typeof(runs[0])) { "jobs n+2sqrt(n)", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 0;
	runs[n] = (typeof(runs[0])) { "jobs x1.3", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 1.3;
	runs[n] = (typeof(runs[0])) { "queue", p };
	runs[n++].pool.kind = SCALE_POLICY_QUEUE;
	runs[n++] = (typeof(runs[0])) { "fixed at peak", sim_fixed(&p, out->peak_hosts) };
	runs[n++] = (typeof(runs[0])) { "fixed at mean", sim_fixed(&p, out->mean_hosts) };
	runs[n++] = (typeof(runs[0])) { "demand+forecast+warm", sim_demand(&wanted, &p) };

	for (size_t i = 0; i < n; i++) {
		scale_sim_result *res = &out->results[out->n_results++];
		snprintf(res->name, sizeof res->name, "%s", runs[i].name);
		int r = scale_sim_run(tr, &runs[i].pool, &out->settings, res);
		if (r < 0) {
			out->failed = runs[i].name;
			return r;
		}
	}
	return 0;
}
