/* scale-sim.h — the autoscaler's decision replayed over a load trace
 * against a simulated cloud (`corralctl scale simulate`, docs/scale.md).
 *
 * A trace is CSV "seconds,running,queued". Time moves in steps; at each:
 *   1. launching hosts whose launch delay has passed register (a node id);
 *   2. the trace's running jobs, then its queued ones, are placed anew on
 *      ready hosts, evenly, up to their capacity (jobs are taken as shorter
 *      than a step, so draining hosts empty at once); running jobs without
 *      a slot are unmet, counted in job-minutes;
 *   3. the cloud is written as the records the leader reads (scale-observe.h:
 *      scale/hosts/<id>, nodes/<node> of each registered host, which is its
 *      heartbeat, load/<node> with its jobs, scale/queue/<pool> = the jobs
 *      not placed, scale/state; EC2 lists every live host's instance as
 *      running), and scale_observe() then scale_decide() run on them, as
 *      the leader runs them;
 *   4. its actions are carried out: launches add launching hosts, drains
 *      and transitions change states, terminations end billing at once.
 * Billing per host: per-second with a 60 s minimum, or hourly rounded up
 * (a started hour is paid). reserved N: the N oldest live on-demand hosts
 * are covered at each step (their covered seconds cost nothing on top), and
 * the reservation itself costs N x duration x the reserved price for every
 * policy alike. No randomness and no clock: the same input gives the same
 * output. Nothing here does I/O but reading the trace file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "scale-observe.h"
#include "scale.h"

typedef struct scale_sim_row {
	long t;                 /* seconds, increasing */
	int running, queued;
} scale_sim_row;

typedef struct scale_sim_trace {
	scale_sim_row *rows;    /* n >= 1 once read */
	size_t n;
} scale_sim_trace;

/* Reads a trace: one "seconds,running,queued" row a line (non-negative
 * integers, seconds increasing); empty lines, '#' comments and a first line
 * starting "seconds" are skipped. name is the file's name in messages.
 * 0, or -EINVAL with msg saying why ("NAME:3: seconds must increase"),
 * -errno of fopen (load; msg "cannot read trace NAME: ..."), or -ENOMEM
 * with msg empty. */
int scale_sim_trace_read(FILE *f, const char *name, scale_sim_trace *out, char *msg, size_t msg_size);
int scale_sim_trace_load(const char *path, scale_sim_trace *out, char *msg, size_t msg_size);
void scale_sim_trace_done(scale_sim_trace *t);

/* One step of one run, for plotting (`scale simulate --steps FILE`). */
typedef struct scale_sim_step {
	const char *policy;             /* the run's name ("jobs x1.3") */
	long t;                         /* the trace's seconds at this step */
	int running, queued;            /* the trace's load in force at t */
	int desired;                    /* the decision's desired hosts */
	int hosts[_SCALE_STATE_MAX];    /* live hosts by state after the step's actions
	                                   (terminated ones are gone: always 0) */
	double cost;                    /* USD billed through the end of this step (t +
	                                   step): ended hosts' bills, each live host's bill
	                                   were it ended then, the reservation's fee so
	                                   far; the last step's is the run's cost */
} scale_sim_step;

typedef struct scale_sim_settings {
	long launch_delay;              /* s from launch to a registered node (120) */
	long step;                      /* s per step, one decision each (60) */
	bool billing_set;               /* billing replaces the pool's */
	scale_billing billing;
	double price_on_demand, price_spot, price_reserved;     /* USD/hour (0.096, 0.035, 0.060) */
	int reserved;                   /* reserved instances of the pool's first type (0) */
	int host_capacity;              /* job slots per simulated host (4) */
	/* Called at each step with the records about to be observed, NULL:
	 * none. Lets a test add what the cloud does not model (a hold). */
	void (*edit_records)(scale_records *r, void *data);
	void *edit_data;
	/* Called after each step, NULL: none; a negative errno stops the run
	 * with it. */
	int (*on_step)(const scale_sim_step *st, void *data);
	void *step_data;
} scale_sim_settings;

void scale_sim_settings_defaults(scale_sim_settings *s);

typedef struct scale_sim_result {
	char name[48];                  /* the policy run, "jobs x1.3" */
	double instance_hours, cost, unmet_job_minutes;
	long launches, terminations;
	int peak_hosts;
} scale_sim_result;

/* One replay of the trace (n >= 1 rows) with pool (its billing) as the
 * whole policy; adds to res (its name goes to on_step). 0, -ENOMEM, or
 * on_step's error. */
int scale_sim_run(const scale_sim_trace *tr, const scale_pool *pool, const scale_sim_settings *s,
		  scale_sim_result *res);

#define SCALE_SIM_RUNS_MAX 6

/* The comparison `scale simulate` prints. */
typedef struct scale_sim_report {
	scale_sim_settings settings;    /* as used: host_capacity is the pool's jobs_per_host when set */
	scale_billing billing;          /* of every run */
	long duration;                  /* last row's seconds - first's */
	long peak_jobs;                 /* running, at the steps simulated */
	int peak_hosts, mean_hosts;     /* the fixed runs' sizes */
	scale_sim_result results[SCALE_SIM_RUNS_MAX];
	size_t n_results;
	const char *failed;             /* on error: the run that failed */
} scale_sim_report;

/* Replays the trace with the base pool under each policy kind: "as given"
 * (when as_given), "jobs n+2sqrt(n)", "jobs x1.3", "queue", "fixed at peak",
 * "fixed at mean" (the running jobs' peak and mean over the steps, in
 * hosts). The manual override is dropped and the pool enabled (either
 * would make every run the same). 0 or -ENOMEM (out->failed names the run). */
int scale_sim_compare(const scale_sim_trace *tr, const scale_pool *base, bool as_given, const scale_sim_settings *s,
		      scale_sim_report *out);

/* The policy when none is given: pool "sim", m5.large in one subnet of
 * us-east-1a, reserved and on-demand, 4 jobs per host, min 0, max 500. */
extern const char scale_sim_default_policy[];
