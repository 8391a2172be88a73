/* test_sim.c — the simulator's engine (src/scale/sim.c) driven directly:
 * trace reading and its errors, a replay whose every figure can be worked
 * out by hand (a fixed pool, the launch delay, per-second and hourly
 * billing, a reservation), and the policy comparison `scale simulate`
 * prints. test_ctl_scale runs the command on the shipped traces. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
	cr_assert_eq(rep.n_results, 5);
	static const char *const names[] = { "jobs n+2sqrt(n)", "jobs x1.3", "queue", "fixed at peak", "fixed at mean" };
	for (size_t i = 0; i < 5; i++) {
		cr_assert_str_eq(rep.results[i].name, names[i]);
		cr_assert(rep.results[i].terminations <= rep.results[i].launches);
		cr_assert(rep.results[i].cost > 0);
	}
	cr_assert_eq(rep.results[3].peak_hosts, 3);
	cr_assert_eq(rep.results[4].peak_hosts, 1);
	/* fixed at peak has room for every running job once its hosts are up */
	cr_assert(rep.results[3].unmet_job_minutes < rep.results[4].unmet_job_minutes);

	/* as given comes first; the same input gives the same figures */
	cr_assert_eq(scale_sim_compare(&tr, &pol.pools[0], true, &s, &again), 0);
	cr_assert_eq(again.n_results, 6);
	cr_assert_str_eq(again.results[0].name, "as given");
	for (size_t i = 0; i < 5; i++)
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
