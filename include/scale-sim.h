/* scale-sim.h — the autoscaler's decision replayed over a load trace
 * against a simulated cloud (`corralctl scale simulate`, docs/scale.md).
 *
 * A trace is CSV "seconds,running,queued"; its second 0 is the clock's
 * `start` (settings), so schedules and seasons meet the trace at known
 * wall-clock times. Time moves in steps; at each:
 *   1. launching hosts whose delay has passed register (a node id): the
 *      launch delay after a launch, the warm start delay after a start;
 *   2. the trace's running jobs, then its queued ones, are placed anew on
 *      ready hosts, evenly, up to their capacity (jobs are taken as shorter
 *      than a step, so draining hosts empty at once); running jobs without
 *      a slot are unmet, counted in job-minutes;
 *   3. the cloud is written as the records the leader reads (scale-observe.h:
 *      scale/hosts/<id>, nodes/<node> of each registered host, which is its
 *      heartbeat, load/<node> with its jobs, scale/queue/<pool> = the jobs
 *      not placed, scale/state, scale/load_history/<pool> when the pool has
 *      a forecast; EC2 lists every live host's instance, stopped ones as
 *      stopped), and scale_observe() then scale_decide() run on them, as
 *      the leader runs them;
 *   4. its actions are carried out: launches add launching hosts (warm
 *      ones recorded warm), drains and transitions change states, stops
 *      end a host's running bill and stop it (its node goes), starts make
 *      a stopped host launching again, terminations end billing at once;
 *   5. a pool with a forecast adds the step's demand (jobs running +
 *      queued, as the decision counted them) to its load history, as the
 *      leader does, for the next step: the forecast sees only the past.
 * Every run starts from the same empty fleet and empty warm pool: filling
 * the pool costs launches, counted as launches.
 * Billing per host and running period (from a launch or a start to a stop
 * or the end): per-second with a 60 s minimum, or hourly rounded up (a
 * started hour is paid); a stopped host costs price_stopped per hour, per
 * second (its volume). reserved N: the N oldest live running on-demand
 * hosts are covered at each step (their covered seconds cost nothing on
 * top), and the reservation itself costs N x duration x the reserved price
 * for every policy alike. No randomness and no clock: the same input gives
 * the same output. Nothing here does I/O but reading the trace file. */
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
	                                   (terminated ones are gone: always 0; stopped
	                                   ones are the warm pool) */
	double cost;                    /* USD billed through the end of this step (t +
	                                   step): ended hosts' bills, each live host's bill
	                                   were it ended then, the reservation's fee so
	                                   far; the last step's is the run's cost */
} scale_sim_step;

typedef struct scale_sim_settings {
	long launch_delay;              /* s from launch to a registered node (120) */
	long warm_start_delay;          /* s from a start (warm pool) to a registered node (30) */
	time_t start;                   /* the clock at the trace's second 0
	                                   (2026-01-05T00:00:00Z, a Monday: SCALE_SIM_START) */
	long step;                      /* s per step, one decision each (60) */
	bool billing_set;               /* billing replaces the pool's */
	scale_billing billing;
	double price_on_demand, price_spot, price_reserved;     /* USD/hour (0.096, 0.035, 0.060) */
	double price_stopped;           /* USD per stopped instance-hour (0.0033: a 30 GB gp3 volume) */
	int reserved;                   /* reserved instances of the pool's first type (0) */
	int host_capacity;              /* job slots per simulated host (4) */
	/* Called at each step with the records about to be observed, NULL:
	 * none. Lets a test add what the cloud does not model (a hold). */
	void (*edit_records)(scale_records *r, void *data);
	void *edit_data;
	/* Called with each decision before its actions are carried out, NULL:
	 * none. Lets a test act as an engine would (a stop, a start); added
	 * actions' strings must outlive the call's step. 0 or a negative
	 * errno that stops the run. */
	int (*edit_output)(scale_output *out, time_t now, void *data);
	/* Called after each step, NULL: none; a negative errno stops the run
	 * with it. */
	int (*on_step)(const scale_sim_step *st, void *data);
	void *step_data;
} scale_sim_settings;

#define SCALE_SIM_START ((time_t) 1767571200)      /* 2026-01-05T00:00:00Z */

void scale_sim_settings_defaults(scale_sim_settings *s);

typedef struct scale_sim_result {
	char name[48];                  /* the policy run, "jobs x1.3" */
	double instance_hours;          /* running (billed) time, not stopped time */
	double cost, unmet_job_minutes; /* cost: running, stopped and reserved */
	long launches, terminations;    /* launches include the warm pool's fill */
	long starts, stops;             /* warm pool: StartInstances, StopInstances */
	long churn;                     /* launches + terminations + starts + stops */
	int peak_hosts;                 /* live hosts at once, running and stopped */
} scale_sim_result;

/* One replay of the trace (n >= 1 rows) with pool (its billing) as the
 * whole policy; adds to res (its name goes to on_step). 0, -ENOMEM, or
 * on_step's error. */
int scale_sim_run(const scale_sim_trace *tr, const scale_pool *pool, const scale_sim_settings *s,
		  scale_sim_result *res);

#define SCALE_SIM_RUNS_MAX 8

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
 * (when as_given: the pool as written, its schedule, forecast and warm
 * pool included), "jobs n+2sqrt(n)", "jobs x1.3", "queue", "fixed at peak",
 * "fixed at mean" (the running jobs' peak and mean over the steps, in
 * hosts) and "demand+forecast+warm" (policy demand, forecast enabled, a
 * warm pool of 10, reused on scale-in; no schedule). The anchors (every
 * row but as given and demand+forecast+warm) run without forecast, warm
 * pool or schedule, as they always have. The manual override is dropped
 * and the pool enabled (either would make every run the same). 0 or
 * -ENOMEM (out->failed names the run). */
int scale_sim_compare(const scale_sim_trace *tr, const scale_pool *base, bool as_given, const scale_sim_settings *s,
		      scale_sim_report *out);

/* The policy when none is given: pool "sim", m5.large in one subnet of
 * us-east-1a, reserved and on-demand, 4 jobs per host, min 0, max 500. */
extern const char scale_sim_default_policy[];
