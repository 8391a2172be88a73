/* test_sim.c — the simulator's engine (src/scale/sim.c) driven directly:
 * trace reading and its errors, a replay whose every figure can be worked
 * out by hand (a fixed pool, the launch delay, per-second and hourly
 * billing, a reservation, the warm pool's stop and start), the policy
 * comparison `scale simulate` prints and its churn, the clock (--start),
 * the forecast seeing only the past, and the new flags' errors.
 * test_ctl_scale runs the command on the shipped traces. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-test.h"
#include "macro.h"
#include "scale-observe.h"
#include "scale-sim.h"

static int read_text(const char *text, scale_sim_trace *tr, char *msg, size_t size) {
	_cleanup_fclose_ FILE *f = fmemopen((void *) text, strlen(text), "r");
	cr_assert_not_null(f);
	return scale_sim_trace_read(f, "t.csv", tr, msg, size);
}

/* The simulator's default pool, with the given policy kind and fixed size. */
static void default_pool(scale_policy *pol) {
	json_error_t jerr;
	json_auto_t *doc = json_loads(scale_sim_default_policy, 0, &jerr);
	scale_error err;
	cr_assert_not_null(doc);
	cr_assert_eq(scale_policy_from_json(doc, pol, &err), 0, "%s", err.message);
	cr_assert_eq(pol->n_pools, 1);
}

static scale_pool fixed(const scale_pool *base, int hosts, scale_billing billing) {
	scale_pool p = *base;
	p.kind = SCALE_POLICY_FIXED;
	p.hosts = hosts;
	p.billing = billing;
	return p;
}

Test(sim, trace_rows) {
	scale_sim_trace tr = {};
	char msg[256];
	cr_assert_eq(read_text("seconds,running,queued\n# a comment\n\n0,4,0\n60, 8 ,2\r\n600,0,0\n", &tr, msg, sizeof msg), 0,
		     "%s", msg);
	cr_assert_eq(tr.n, 3);
	cr_assert_eq(tr.rows[1].t, 60);
	cr_assert_eq(tr.rows[1].running, 8);
	cr_assert_eq(tr.rows[1].queued, 2);
	cr_assert_eq(tr.rows[2].t, 600);
	scale_sim_trace_done(&tr);
	cr_assert_null(tr.rows);
}

Test(sim, trace_errors) {
	scale_sim_trace tr = {};
	char msg[256];
	cr_assert_eq(read_text("0,1,0\n0,2,0\n", &tr, msg, sizeof msg), -EINVAL);
	cr_assert_str_eq(msg, "t.csv:2: seconds must increase");
	cr_assert_eq(read_text("seconds,running,queued\n0,1,x\n", &tr, msg, sizeof msg), -EINVAL);
	cr_assert_str_eq(msg, "t.csv:2: want \"seconds,running,queued\" (non-negative integers)");
	cr_assert_eq(read_text("0,-1,0\n", &tr, msg, sizeof msg), -EINVAL);
	cr_assert_eq(read_text("0,1,0,5\n", &tr, msg, sizeof msg), -EINVAL);
	cr_assert_eq(read_text("# nothing\n", &tr, msg, sizeof msg), -EINVAL);
	cr_assert_str_eq(msg, "t.csv: no rows");
	cr_assert_null(tr.rows);
	cr_assert_eq(scale_sim_trace_load("/nonexistent/trace.csv", &tr, msg, sizeof msg), -ENOENT);
	cr_assert_str_eq(msg, "cannot read trace /nonexistent/trace.csv: No such file or directory");
}

/* Five hosts launched by the first step's decision register at the first
 * step after it once the launch delay has passed (the decision marks them
 * ready), and from the step after that hold the 8 running jobs: every step
 * before, all 8 are unmet. */
Test(sim, fixed_pool_reaches_size_after_launch_delay) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	char msg[256];
	default_pool(&pol);
	cr_assert_eq(read_text("0,8,0\n600,8,0\n", &tr, msg, sizeof msg), 0);
	scale_pool p = fixed(&pol.pools[0], 5, SCALE_BILLING_PER_SECOND);

	for (long delay = 0; delay <= 300; delay += 60) {
		scale_sim_settings s;
		scale_sim_result res = {};
		scale_sim_settings_defaults(&s);
		s.launch_delay = delay;
		cr_assert_eq(scale_sim_run(&tr, &p, &s, &res), 0);
		cr_assert_eq(res.launches, 5);
		cr_assert_eq(res.peak_hosts, 5);
		cr_assert_eq(res.terminations, 0);
		long registered = delay > 60 ? delay : 60;
		double unmet_steps = (registered + 60) / 60;
		cr_assert_float_eq(res.unmet_job_minutes, 8 * unmet_steps, 1e-9, "delay %ld: %f", delay,
				   res.unmet_job_minutes);
		/* steps 0..600, the clock ends one step after the last: 660 s each */
		cr_assert_float_eq(res.instance_hours, 5 * 660 / 3600.0, 1e-9);
		cr_assert_float_eq(res.cost, 5 * 660 / 3600.0 * s.price_on_demand, 1e-9);
	}
	scale_sim_trace_done(&tr);
}

Test(sim, billing_per_second_hourly_and_minimum) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {}, one = {};
	scale_sim_settings s;
	char msg[256];
	default_pool(&pol);
	scale_sim_settings_defaults(&s);
	cr_assert_eq(read_text("0,0,0\n3000,0,0\n", &tr, msg, sizeof msg), 0);

	/* 2 hosts for 3060 s: per-second bills the seconds, hourly a whole hour each */
	scale_sim_result ps = {}, hr = {};
	scale_pool p = fixed(&pol.pools[0], 2, SCALE_BILLING_PER_SECOND);
	cr_assert_eq(scale_sim_run(&tr, &p, &s, &ps), 0);
	cr_assert_float_eq(ps.instance_hours, 2 * 3060 / 3600.0, 1e-9);
	cr_assert_float_eq(ps.cost, 2 * 3060 / 3600.0 * 0.096, 1e-9);
	p = fixed(&pol.pools[0], 2, SCALE_BILLING_HOURLY);
	cr_assert_eq(scale_sim_run(&tr, &p, &s, &hr), 0);
	cr_assert_float_eq(hr.instance_hours, ps.instance_hours, 1e-9);
	cr_assert_float_eq(hr.cost, 2 * 0.096, 1e-9);

	/* one step of 30 s: per-second still bills its 60 s minimum */
	scale_sim_result min = {};
	s.step = 30;
	cr_assert_eq(read_text("0,0,0\n", &one, msg, sizeof msg), 0);
	p = fixed(&pol.pools[0], 2, SCALE_BILLING_PER_SECOND);
	cr_assert_eq(scale_sim_run(&one, &p, &s, &min), 0);
	cr_assert_float_eq(min.instance_hours, 2 * 30 / 3600.0, 1e-9);
	cr_assert_float_eq(min.cost, 2 * 60 / 3600.0 * 0.096, 1e-9);
	scale_sim_trace_done(&tr);
	scale_sim_trace_done(&one);
}

/* One reservation covers the oldest on-demand host from the first step it
 * is alive (60 s .. 3000 s: 50 steps): it pays only the 60 s before, and
 * the reservation costs its price for the whole duration. */
Test(sim, reservation_covers_the_oldest_host) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_sim_settings s;
	scale_sim_result res = {};
	char msg[256];
	default_pool(&pol);
	scale_sim_settings_defaults(&s);
	s.reserved = 1;
	cr_assert_eq(read_text("0,0,0\n3000,0,0\n", &tr, msg, sizeof msg), 0);
	scale_pool p = fixed(&pol.pools[0], 2, SCALE_BILLING_PER_SECOND);
	cr_assert_eq(scale_sim_run(&tr, &p, &s, &res), 0);
	double want = (3060 - 3000) / 3600.0 * 0.096 + 3060 / 3600.0 * 0.096 + 3060 / 3600.0 * 0.060;
	cr_assert_float_eq(res.cost, want, 1e-9, "%f vs %f", res.cost, want);
	scale_sim_trace_done(&tr);
}

Test(sim, compare_runs_and_sizes) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_sim_settings s;
	scale_sim_report rep, again;
	char msg[256];
	default_pool(&pol);
	scale_sim_settings_defaults(&s);
	s.host_capacity = 7;    /* the pool's jobs_per_host (4) wins */
	s.billing_set = true;
	s.billing = SCALE_BILLING_HOURLY;
	/* running 0 for 10 min, 10 for 10 min, 0 for 10 min: peak 10, mean 10/3 */
	cr_assert_eq(read_text("0,0,0\n600,10,5\n1200,0,0\n1800,0,0\n", &tr, msg, sizeof msg), 0);
	cr_assert_eq(scale_sim_compare(&tr, &pol.pools[0], false, &s, &rep), 0);
	cr_assert_eq(rep.settings.host_capacity, 4);
	cr_assert_eq(rep.billing, SCALE_BILLING_HOURLY);
	cr_assert_eq(rep.duration, 1800);
	cr_assert_eq(rep.peak_jobs, 10);
	cr_assert_eq(rep.peak_hosts, 3);
	/* 31 steps, 10 of them at 10 jobs: ceil(100 / 31 / 4) */
	cr_assert_eq(rep.mean_hosts, 1);
	cr_assert_eq(rep.n_results, 6);
	static const char *const names[] = { "jobs n+2sqrt(n)", "jobs x1.3",	 "queue",
					     "fixed at peak",	"fixed at mean", "demand+forecast+warm" };
	for (size_t i = 0; i < 6; i++) {
		const scale_sim_result *r = &rep.results[i];
		cr_assert_str_eq(r->name, names[i]);
		cr_assert(r->terminations <= r->launches);
		cr_assert(r->cost > 0);
		cr_assert_eq(r->churn, r->launches + r->terminations + r->starts + r->stops, "%s", r->name);
		/* the anchors have no warm pool */
		if (i < 5)
			cr_assert_eq(r->starts + r->stops, 0, "%s", r->name);
	}
	cr_assert_eq(rep.results[3].peak_hosts, 3);
	cr_assert_eq(rep.results[4].peak_hosts, 1);
	/* fixed at peak has room for every running job once its hosts are up */
	cr_assert(rep.results[3].unmet_job_minutes < rep.results[4].unmet_job_minutes);

	/* as given comes first; the same input gives the same figures */
	cr_assert_eq(scale_sim_compare(&tr, &pol.pools[0], true, &s, &again), 0);
	cr_assert_eq(again.n_results, 7);
	cr_assert_str_eq(again.results[0].name, "as given");
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(memcmp(&again.results[i + 1], &rep.results[i], sizeof rep.results[i]), 0, "run %zu", i);
	scale_sim_trace_done(&tr);
}

/* Each step goes through scale_observe(): what the sim writes are records
 * the leader could read (no note), and a rule only observe applies takes
 * effect: holds/<instance-id> marks a host held, and a held host is never
 * drained or terminated. A sim that built the decision's input by hand
 * would not see the hold and would scale in after the load is gone. */
typedef struct held {
	bool hold;
	size_t steps, nodes, notes;
} held;

static void hold_every_host(scale_records *r, void *data) {
	held *h = data;
	_cleanup_(scale_observed_done) scale_observed o = {};

	cr_assert_eq(scale_observe(r, &o), 0);
	h->notes += o.n_errors;
	h->nodes += r->n_nodes;
	h->steps++;
	if (h->hold) {
		r->holds = r->hosts;
		r->n_holds = r->n_hosts;
	}
}

Test(sim, goes_through_observe) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_sim_settings s;
	char msg[256];
	default_pool(&pol);
	cr_assert_eq(read_text("0,40,0\n1800,0,0\n7200,0,0\n", &tr, msg, sizeof msg), 0);

	for (int hold = 0; hold <= 1; hold++) {
		held h = { .hold = hold };
		scale_sim_result res = {};
		scale_sim_settings_defaults(&s);
		s.edit_records = hold_every_host;
		s.edit_data = &h;
		cr_assert_eq(scale_sim_run(&tr, &pol.pools[0], &s, &res), 0);
		cr_assert_eq(h.steps, 7200 / 60 + 1);
		cr_assert_gt(h.nodes, 0, "registered hosts have node records");
		cr_assert_eq(h.notes, 0, "every record parses");
		cr_assert_gt(res.launches, 0);
		if (hold)
			cr_assert_eq(res.terminations, 0, "held hosts stay: %ld terminated", res.terminations);
		else
			cr_assert_gt(res.terminations, 0, "the load is gone: hosts go");
	}
	scale_sim_trace_done(&tr);
}

/* Every step's desired count and hosts by state, in step order (with the
 * default step of 60 s and a trace from 0, step i is the minute i). */
typedef struct steps_seen {
	int desired[2048];
	int hosts[2048][_SCALE_STATE_MAX];
	size_t n;
} steps_seen;

static int keep_step(const scale_sim_step *st, void *data) {
	steps_seen *c = data;
	cr_assert_lt(c->n, ELEMENTSOF(c->desired));
	c->desired[c->n] = st->desired;
	memcpy(c->hosts[c->n++], st->hosts, sizeof st->hosts);
	return 0;
}

/* The default pool and a trace from text. */
static scale_pool pool_and_trace(scale_policy *pol, scale_sim_trace *tr, const char *text) {
	char msg[256];
	default_pool(pol);
	cr_assert_eq(read_text(text, tr, msg, sizeof msg), 0, "%s", msg);
	return pol->pools[0];
}

/* ---- the warm pool ---------------------------------------------------------------- */

/* Acts as an engine with a warm pool would, on a disabled pool (whose
 * decision only marks registered hosts ready): launches one host at
 * t = 0, stops it at `stop`, starts it at `start`. */
typedef struct warm_script {
	time_t t0;
	long stop, start;
} warm_script;

static int warm_edit(scale_output *out, time_t now, void *data) {
	warm_script *w = data;
	long t = (long) (now - w->t0);
	scale_action a = { .pool = "sim", .id = "i-000000" };

	if (t == 0)
		a = (scale_action) { .kind = SCALE_ACTION_LAUNCH, .pool = "sim", .instance_type = "m5.large",
				     .market = SCALE_ON_DEMAND, .count = 1, .subnet = "subnet-a" };
	else if (t == w->stop)
		a.kind = SCALE_ACTION_STOP, a.to = SCALE_STOPPED;
	else if (t == w->start)
		a.kind = SCALE_ACTION_START, a.to = SCALE_LAUNCHING;
	else
		return 0;
	scale_action *v = realloc(out->actions, (out->n_actions + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	v[out->n_actions++] = a;
	out->actions = v;
	return 0;
}

/* Launched at 0, registered at 120 (ready from the decision there), stopped
 * at 300 (its running bill ends: 300 s), stopped until the start at 900
 * (600 s at the stopped price), registered again the warm start delay
 * later and ready at the first step after; billed running again from 900
 * to the clock's end at 1260. */
Test(sim, warm_start_registers_after_the_start_delay) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_pool p = pool_and_trace(&pol, &tr, "0,4,0\n1200,4,0\n");
	p.enabled = false;

	for (long delay = 30; delay <= 120; delay += 90) {
		scale_sim_settings s;
		scale_sim_result res = {};
		warm_script w = { .stop = 300, .start = 900 };
		static steps_seen c;
		memset(&c, 0, sizeof c);
		scale_sim_settings_defaults(&s);
		w.t0 = s.start;
		s.warm_start_delay = delay;
		s.edit_output = warm_edit;
		s.edit_data = &w;
		s.on_step = keep_step;
		s.step_data = &c;
		cr_assert_eq(scale_sim_run(&tr, &p, &s, &res), 0);
		cr_assert_eq(res.launches, 1);
		cr_assert_eq(res.stops, 1);
		cr_assert_eq(res.starts, 1);
		cr_assert_eq(res.terminations, 0);
		cr_assert_eq(res.churn, 3);
		cr_assert_eq(res.peak_hosts, 1);
		for (long t = 300; t < 900; t += 60)
			cr_assert_eq(c.hosts[t / 60][SCALE_STOPPED], 1, "stopped at %ld", t);
		cr_assert_eq(c.hosts[900 / 60][SCALE_LAUNCHING], 1);
		/* registered at the first step >= 900 + delay, ready from its decision */
		long ready = (900 + delay + 59) / 60 * 60;
		cr_assert_eq(c.hosts[(ready - 60) / 60][SCALE_LAUNCHING], 1, "delay %ld", delay);
		cr_assert_eq(c.hosts[ready / 60][SCALE_READY], 1, "delay %ld: ready at %ld", delay, ready);
		/* 4 jobs unmet at 0, 60, 120 and from 360 through ready */
		double unmet = 4.0 * (3 + (ready - 360) / 60 + 1);
		cr_assert_float_eq(res.unmet_job_minutes, unmet, 1e-9, "delay %ld: %f", delay, res.unmet_job_minutes);
		cr_assert_float_eq(res.instance_hours, (300 + 360) / 3600.0, 1e-9);
		double want = (300 + 360) / 3600.0 * s.price_on_demand + 600 / 3600.0 * s.price_stopped;
		cr_assert_float_eq(res.cost, want, 1e-9, "%f vs %f", res.cost, want);
	}
	scale_sim_trace_done(&tr);
}

/* ---- the clock and the forecast --------------------------------------------------- */

typedef struct clock_seen {
	time_t first, last;
	size_t steps, with_history;
} clock_seen;

static void see_clock(scale_records *r, void *data) {
	clock_seen *c = data;
	if (c->steps++ == 0)
		c->first = r->now;
	c->last = r->now;
	c->with_history += r->n_load_history == 1 && r->load_history[0].len > 0;
}

/* The trace's second 0 is --start (2026-01-05T00:00:00Z, a Monday, by
 * default); now moves with the trace. */
Test(sim, start_maps_trace_time_zero) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_sim_settings s;
	char msg[256];
	default_pool(&pol);
	scale_sim_settings_defaults(&s);
	cr_assert_eq(s.start, 1767571200);
	cr_assert_eq(read_text("0,4,0\n600,4,0\n", &tr, msg, sizeof msg), 0);
	for (int k = 0; k < 2; k++) {
		clock_seen c = {};
		scale_sim_result res = {};
		s.start = k ? 1800000000 : SCALE_SIM_START;
		s.edit_records = see_clock;
		s.edit_data = &c;
		cr_assert_eq(scale_sim_run(&tr, &pol.pools[0], &s, &res), 0);
		cr_assert_eq(c.first, s.start);
		cr_assert_eq(c.last, s.start + 600);
		cr_assert_eq(c.with_history, 0, "no forecast: no load history");
	}
	scale_sim_trace_done(&tr);
}

/* A trace with a daily shape over two days, and a copy that differs only
 * after T (a spike of 200 jobs): with the forecast on, the desired counts
 * at every step up to T are the same; the forecast never reads the
 * future. The records carried a load history from the second step on
 * (so the forecast had one to read), and the runs do part after T. */
Test(sim, forecast_never_reads_the_future) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	_cleanup_fclose_ FILE *fa = open_memstream(&a, &la), *fb = open_memstream(&b, &lb);
	const long T = 86400 + 10 * 3600, step = 120;
	scale_sim_trace ta = {}, tb = {};
	char msg[256];

	cr_assert_not_null(fa);
	cr_assert_not_null(fb);
	for (long t = 0; t <= 2 * 86400; t += 600) {
		long hour = t % 86400 / 3600;
		int running = hour >= 9 && hour < 12 ? 40 : 4;
		fprintf(fa, "%ld,%d,0\n", t, running);
		fprintf(fb, "%ld,%d,%d\n", t, t > T ? 200 : running, t > T ? 50 : 0);
	}
	cr_assert_eq(fclose(TAKE_PTR(fa)), 0);
	cr_assert_eq(fclose(TAKE_PTR(fb)), 0);
	cr_assert_eq(read_text(a, &ta, msg, sizeof msg), 0, "%s", msg);
	cr_assert_eq(read_text(b, &tb, msg, sizeof msg), 0, "%s", msg);

	default_pool(&pol);
	scale_pool p = pol.pools[0], d;
	scale_pool_defaults(&d);
	p.kind = SCALE_POLICY_DEMAND;
	p.forecast = d.forecast;
	p.forecast.enabled = true;
	if (p.forecast.lookback <= 0)
		p.forecast.lookback = 7 * 86400;
	p.warm_pool_size = 4;
	static steps_seen da, db;
	clock_seen ca = {}, cb = {};
	scale_sim_settings s;
	scale_sim_result ra = {}, rb = {};
	scale_sim_settings_defaults(&s);
	s.step = step;
	s.on_step = keep_step;
	s.edit_records = see_clock;
	s.step_data = &da;
	s.edit_data = &ca;
	cr_assert_eq(scale_sim_run(&ta, &p, &s, &ra), 0);
	s.step_data = &db;
	s.edit_data = &cb;
	cr_assert_eq(scale_sim_run(&tb, &p, &s, &rb), 0);
	cr_assert_eq(da.n, db.n);
	cr_assert_eq(ca.with_history, ca.steps - 1, "every step but the first reads a history");
	size_t upto = (size_t) (T / step);
	for (size_t i = 0; i <= upto; i++)
		cr_assert_eq(da.desired[i], db.desired[i], "step %zu (t %ld): %d vs %d", i, (long) i * step, da.desired[i], db.desired[i]);
	bool parted = false;
	for (size_t i = upto + 1; i < da.n; i++)
		parted = parted || da.desired[i] != db.desired[i];
	cr_assert(parted, "the spike after T changes the later decisions");
	scale_sim_trace_done(&ta);
	scale_sim_trace_done(&tb);
}

/* A schedule of 6 hosts from 15 min before 10:00 UTC on Mondays for 30
 * min, and a light load (4 jobs: 2 hosts). Started at Monday 08:00 the
 * event is at the trace's 7200 s: the minimum holds from 6300 and the
 * hosts are ready by the event; started Tuesday 08:00 there is none. */
Test(sim, start_puts_a_schedule_before_its_event) {
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_sim_trace tr = {};
	scale_pool p = pool_and_trace(&pol, &tr, "0,4,0\n10800,4,0\n");
	scale_schedule sched = { .cron = (char *) "0 10 * * 1", .min = 6, .duration = 1800, .lead = 900 };
	p.schedule = &sched;
	p.n_schedule = 1;

	for (int day = 0; day < 2; day++) {
		static steps_seen c;
		scale_sim_settings s;
		scale_sim_result res = {};
		memset(&c, 0, sizeof c);
		scale_sim_settings_defaults(&s);
		s.start = SCALE_SIM_START + day * 86400 + 8 * 3600;
		s.on_step = keep_step;
		s.step_data = &c;
		cr_assert_eq(scale_sim_run(&tr, &p, &s, &res), 0);
		int most = 0;
		for (long t = 0; t <= 10800; t += 60)
			most = c.desired[t / 60] > most ? c.desired[t / 60] : most;
		if (day == 1) {
			cr_assert_lt(most, 6, "Tuesday: no event, desired up to %d", most);
			continue;
		}
		cr_assert_lt(c.desired[6240 / 60], 6, "before the lead");
		for (long t = 6300; t < 9000; t += 60)
			cr_assert_geq(c.desired[t / 60], 6, "t %ld: %d", t, c.desired[t / 60]);
		cr_assert_geq(c.hosts[7200 / 60][SCALE_READY], 6, "ready by the event: %d", c.hosts[7200 / 60][SCALE_READY]);
	}
	scale_sim_trace_done(&tr);
}

/* ---- the command's new flags ------------------------------------------------------- */

Test(sim, new_flags_bad_values_exit_2) {
	static const char *const bad[][2] = {
		{ "--warm-start-delay", "-1" },	  { "--warm-start-delay", "soon" }, { "--price-stopped", "-0.1" },
		{ "--price-stopped", "cheap" },	  { "--start", "monday" },	    { "--start", "2026-02-30T00:00:00Z" },
		{ "--start", "2026-01-05" },
	};
	_cleanup_free_ char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/tests/traces/spike.csv", hx_srcdir()), 0);
	ctlt_clean_env();
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *out = NULL, *err = NULL;
		int r = ctlt_run(NULL, "/corral/t", &out, &err,
				 (char *const[]){ "scale", "simulate", "--trace", path, (char *) bad[i][0],
						  (char *) bad[i][1], NULL });
		cr_assert_eq(r, 2, "%s %s: %d", bad[i][0], bad[i][1], r);
		cr_assert(strstr(err, bad[i][0]) && strstr(err, bad[i][1]), "%s", err);
		cr_assert(!out || !out[0], "nothing printed: %s", out);
	}
	/* and good ones are taken: the settings say them back */
	_cleanup_free_ char *out = NULL, *err = NULL;
	cr_assert_eq(ctlt_run(NULL, "/corral/t", &out, &err,
			      (char *const[]){ "scale", "simulate", "--trace", path, "--warm-start-delay", "45",
					       "--price-stopped", "0.01", "--start", "2026-03-02T08:00:00Z", "-o",
					       "json", NULL }),
		     0, "%s", err);
	json_error_t jerr;
	json_auto_t *o = json_loads(out, 0, &jerr);
	cr_assert_not_null(o, "%s", out);
	json_t *set = json_object_get(o, "settings");
	cr_assert_eq(json_integer_value(json_object_get(set, "warm_start_delay")), 45);
	cr_assert_float_eq(json_real_value(json_object_get(set, "price_stopped")), 0.01, 1e-12);
	cr_assert_str_eq(json_string_value(json_object_get(set, "start")), "2026-03-02T08:00:00Z");
	json_t *res = json_array_get(json_object_get(o, "results"), json_array_size(json_object_get(o, "results")) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(res, "policy")), "demand+forecast+warm");
	cr_assert(json_is_integer(json_object_get(res, "churn")) && json_is_integer(json_object_get(res, "starts")) &&
		  json_is_integer(json_object_get(res, "stops")));
}
