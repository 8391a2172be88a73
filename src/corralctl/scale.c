/* scale.c — the two scale commands that run the decision itself:
 * `autoscale` (ask the leader to decide now; with -n the plan computed
 * here from what etcd holds) and `scale simulate`, which replays a load
 * trace through scale_decide() against a simulated cloud (no etcd). The
 * scale commands that edit the policy are in policy.c.
 *
 * Both call what the leader calls: the plan reads etcd with the scaler's
 * snapshot and runs scale_observe() and scale_decide(); the simulator is
 * src/scale/sim.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ec2xml.h"
#include "esc.h"
#include "log.h"
#include "keys.h"
#include "scale-observe.h"
#include "scale.h"
#include "scale-sim.h"
#include "scaler.h"

/* ---- autoscale ------------------------------------------------------------------ */

/* The leader's decision from what etcd holds now: the same read (one txn,
 * one revision) and the same observe and decide as the leader (scaler.h,
 * scale-observe.h); EC2 is not asked, so records are taken as they are. */
static int autoscale_plan(ctl_t *c) {
	_cleanup_(scaler_snapshot_done) scaler_snapshot snap = {};
	_cleanup_(scale_observed_done) scale_observed obs = {};
	scale_error err = {};
	scale_output out = {};
	int r;

	r = scaler_snapshot_read(c->etcd, c->prefix, &snap, &err);
	if (r == -EINVAL && snap.response) {
		fprintf(stderr, "corralctl: the stored policy is invalid: %s\n", err.message);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "corralctl: etcd: %s\n", err.message[0] ? err.message : strerror(-r));
		return 1;
	}
	if (!snap.have_policy) {
		fprintf(stderr, "corralctl: no scaling policy at %s/scale/policy: nothing to decide\n", c->prefix);
		return 1;
	}
	/* The leader uses its configured cluster name (client tokens carry it). */
	snap.records.cluster = c->cluster ? c->cluster : strrchr(c->prefix, '/') + 1;
	snap.records.now = time(NULL);
	r = scale_observe(&snap.records, &obs);
	for (size_t i = 0; r >= 0 && i < obs.n_errors; i++)
		fprintf(stderr, "corralctl: warning: %s\n", obs.errors[i]);
	if (r >= 0)
		r = scale_decide(&obs.input, &out);
	if (r < 0) {
		fprintf(stderr, "corralctl: the decision failed: %s\n", strerror(-r));
		return 1;
	}
	static const char note[] = "EC2 spot prices and reservations are not in etcd: this plan assumes none "
				   "(no spot placement, no reservation coverage); the leader's may differ there";
	if (c->format == FORMAT_JSON) {
		json_auto_t *o = scale_output_to_json(&out);
		scale_output_done(&out);
		if (!o)
			return 1;
		json_object_set_new(o, "dry_run", json_true());
		json_object_set_new(o, "revision", json_integer(snap.revision));
		json_object_set_new(o, "note", json_string(note));
		return ctl_print_json(o);
	}
	_cleanup_free_ char *plan = scale_plan_format(&out);
	scale_output_done(&out);
	if (!plan)
		return 1;
	printf("dry run: the leader's decision as etcd holds it at revision %" PRId64 "; nothing written.\n"
	       "note: %s.\n%s",
	       snap.revision, note, plan);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_autoscale(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *value = NULL, *key = NULL;

	if (o->n_pos == 1 && !streq(o->pos[0], "plan"))
		return ctl_usage_error("unknown autoscale subcommand '%s'", o->pos[0]);
	if (c->dry_run || o->n_pos == 1)
		return autoscale_plan(c);
	value = ctl_marker_json(o->reason);
	key = keys_one_of(c->prefix, KEYS_SCALE_TRIGGER);
	if (!value || !key)
		return 1;
	ctl_log_summary(c, "before");
	if (ctl_put(c, key, value, -1) < 0)
		return 1;
	int r = ctl_report(c, "put", key, value, "asked the leader to decide now");
	ctl_log_summary(c, "after");
	return r;
}

static int run_simulate(ctl_t *c, ctl_opts *o) {
	return ctl_scale_simulate(c->format, o->argc, o->argv);
}

const ctl_verb ctl_scale_verbs[] = {
	{ .group = "scale", .name = "simulate", .args = "--trace FILE [...]",
	  .help = "replay a load trace against a simulated cloud, per policy; no etcd\n"
		  "(corralctl scale simulate --help)",
	  .flags = CTL_VERB_OWN_OPTIONS | CTL_VERB_CSV, .run = run_simulate },
	{ .name = "autoscale", .args = "[plan] [--reason TEXT]",
	  .help = "ask the leader to decide now; `autoscale plan` (or -n): compute and print\n"
		  "the leader's plan here, with its observe and decide, from what etcd holds;\n"
		  "write nothing",
	  .options = CTL_OPT_REASON, .flags = CTL_VERB_ETCD, .max_args = 1, .run = cmd_autoscale },
	{},
};

/* ---- scale simulate ---------------------------------------------------------------- */

/* The engine is src/scale/sim.c (include/scale-sim.h): a load trace
 * replayed through scale_decide() against a simulated cloud, once per
 * policy. Here: its arguments, and the report as a table or JSON. */

typedef struct sim_args {
	scale_sim_settings s;
	const char *trace, *policy_file, *pool_name;
	const char *steps;              /* --steps FILE, or NULL */
	format_t format;
	bool help;
} sim_args;

static void sim_help(void) {
	printf("Usage: corralctl scale simulate --trace FILE [OPTIONS]\n"
	       "\n"
	       "Replays a load trace (CSV \"seconds,running,queued\") through the autoscaler's decision\n"
	       "against a simulated cloud, once per policy, and compares them.\n"
	       "\n"
	       "  --trace FILE            the trace (tests/traces/ has examples)\n"
	       "  --policy FILE           a scale policy document; its pool (--pool P when several)\n"
	       "                          is the base of every run, and runs as given too\n"
	       "                          (default: 4 jobs per host, min 0, max 500, on-demand)\n"
	       "  --pool P                the pool of --policy to use\n"
	       "  --launch-delay S        seconds from launch to a registered node (default 120)\n"
	       "  --warm-start-delay S    seconds from starting a stopped (warm pool) host to a\n"
	       "                          registered node (default 30)\n"
	       "  --start TIME            the clock at the trace's second 0, RFC 3339 (default\n"
	       "                          2026-01-05T00:00:00Z, a Monday): schedules and seasons\n"
	       "  --billing MODE          per-second (60 s minimum) or hourly (default: the pool's)\n"
	       "  --price-on-demand X     USD/hour (default 0.096)\n"
	       "  --price-spot Y          USD/hour (default 0.035)\n"
	       "  --price-reserved Z      USD/hour per reserved instance (default 0.060)\n"
	       "  --price-stopped W       USD/hour per stopped instance, its volume (default 0.0033)\n"
	       "  --reserved N            reserved instances of the pool's first type (default 0)\n"
	       "  --step S                seconds per step, one decision each (default 60)\n"
	       "  --host-capacity N       jobs per host when the pool's jobs_per_host is 0 (default 4)\n"
	       "  -o, --format FORMAT     table (default), json or csv\n"
	       "  --steps FILE            also write every step of every run to FILE as CSV:\n"
	       "                          policy,time,running,queued,desired,launching,ready,draining,\n"
	       "                          unhealthy,terminating,stopped,cost (cost: USD billed so far)\n"
	       "\n"
	       "Policies compared, each from an empty fleet and an empty warm pool: as given (with\n"
	       "--policy: the pool as written, schedule, forecast and warm pool included), jobs\n"
	       "n+2*sqrt(n), jobs x1.3, queue, fixed at the trace's peak, fixed at its mean (these\n"
	       "without forecast, warm pool or schedule), and demand+forecast+warm (policy demand,\n"
	       "forecast on, a warm pool of 10). Columns: instance-hours (running time), cost (billed,\n"
	       "stopped hosts included), unmet job-minutes (running jobs without a slot), launches,\n"
	       "terminations, starts and stops (warm pool), churn (the four summed), peak hosts\n"
	       "(running and stopped).\n");
}

enum { ARG_TRACE = 0x100, ARG_POLICY, ARG_POOL, ARG_DELAY, ARG_BILLING, ARG_POD, ARG_PSPOT, ARG_PRES,
       ARG_RESERVED, ARG_STEP, ARG_CAPACITY, ARG_STEPS, ARG_WARM_DELAY, ARG_PSTOPPED, ARG_START };

/* One option into a. 0, or the exit code of a usage error. */
static int sim_option(sim_args *a, int opt, const char *arg) {
	scale_sim_settings *s = &a->s;
	long v;

	switch (opt) {
	case ARG_TRACE:
		a->trace = arg;
		return 0;
	case ARG_POLICY:
		a->policy_file = arg;
		return 0;
	case ARG_POOL:
		a->pool_name = arg;
		return 0;
	case ARG_DELAY:
		if (ctl_parse_int(arg, 0, 86400, &s->launch_delay) < 0)
			return ctl_usage_error("bad --launch-delay '%s': seconds, 0..86400", arg);
		return 0;
	case ARG_WARM_DELAY:
		if (ctl_parse_int(arg, 0, 86400, &s->warm_start_delay) < 0)
			return ctl_usage_error("bad --warm-start-delay '%s': seconds, 0..86400", arg);
		return 0;
	case ARG_START:
		if (ec2xml_parse_time(arg, &s->start) < 0 || s->start <= 0)
			return ctl_usage_error("bad --start '%s': an RFC 3339 time after 1970, "
					       "e.g. 2026-01-05T00:00:00Z", arg);
		return 0;
	case ARG_PSTOPPED:
		if (ctl_parse_double(arg, 0, 1000, &s->price_stopped) < 0)
			return ctl_usage_error("bad --price-stopped '%s'", arg);
		return 0;
	case ARG_BILLING:
		if (scale_billing_from_string(arg, &s->billing) < 0)
			return ctl_usage_error("bad --billing '%s': per-second or hourly", arg);
		s->billing_set = true;
		return 0;
	case ARG_POD:
		if (ctl_parse_double(arg, 0, 1000, &s->price_on_demand) < 0)
			return ctl_usage_error("bad --price-on-demand '%s'", arg);
		return 0;
	case ARG_PSPOT:
		if (ctl_parse_double(arg, 0, 1000, &s->price_spot) < 0)
			return ctl_usage_error("bad --price-spot '%s'", arg);
		return 0;
	case ARG_PRES:
		if (ctl_parse_double(arg, 0, 1000, &s->price_reserved) < 0)
			return ctl_usage_error("bad --price-reserved '%s'", arg);
		return 0;
	case ARG_RESERVED:
		if (ctl_parse_int(arg, 0, 100000, &v) < 0)
			return ctl_usage_error("bad --reserved '%s': 0..100000", arg);
		s->reserved = (int) v;
		return 0;
	case ARG_STEP:
		if (ctl_parse_int(arg, 1, 86400, &s->step) < 0)
			return ctl_usage_error("bad --step '%s': seconds, 1..86400", arg);
		return 0;
	case ARG_CAPACITY:
		if (ctl_parse_int(arg, 1, 100000, &v) < 0)
			return ctl_usage_error("bad --host-capacity '%s': 1..100000", arg);
		s->host_capacity = (int) v;
		return 0;
	case ARG_STEPS:
		a->steps = arg;
		return 0;
	case 'o':
		if (streq(arg, "json"))
			a->format = FORMAT_JSON;
		else if (streq(arg, "table"))
			a->format = FORMAT_TABLE;
		else if (streq(arg, "csv"))
			a->format = FORMAT_CSV;
		else
			return ctl_usage_error("unknown format '%s' (table, json or csv)", arg);
		return 0;
	default:
		return -1;
	}
}

/* 0 to go on (a->help: print the usage), or the exit code of a usage error. */
static int sim_parse_args(sim_args *a, int argc, char **argv) {
	static const struct option options[] = {
		{ "trace", required_argument, NULL, ARG_TRACE },
		{ "policy", required_argument, NULL, ARG_POLICY },
		{ "pool", required_argument, NULL, ARG_POOL },
		{ "launch-delay", required_argument, NULL, ARG_DELAY },
		{ "warm-start-delay", required_argument, NULL, ARG_WARM_DELAY },
		{ "start", required_argument, NULL, ARG_START },
		{ "price-stopped", required_argument, NULL, ARG_PSTOPPED },
		{ "billing", required_argument, NULL, ARG_BILLING },
		{ "price-on-demand", required_argument, NULL, ARG_POD },
		{ "price-spot", required_argument, NULL, ARG_PSPOT },
		{ "price-reserved", required_argument, NULL, ARG_PRES },
		{ "reserved", required_argument, NULL, ARG_RESERVED },
		{ "step", required_argument, NULL, ARG_STEP },
		{ "host-capacity", required_argument, NULL, ARG_CAPACITY },
		{ "steps", required_argument, NULL, ARG_STEPS },
		{ "format", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
		if (opt == 'h') {
			a->help = true;
			return 0;
		}
		if ((r = sim_option(a, opt, optarg)) < 0)
			return ctl_usage_error("scale simulate: unknown option or missing value '%s'", argv[optind - 1]);
		if (r > 0)
			return r;
	}
	if (optind < argc)
		return ctl_usage_error("scale simulate: unexpected argument '%s'", argv[optind]);
	if (!a->trace)
		return ctl_usage_error("%s", "scale simulate needs --trace FILE");
	return 0;
}

/* The policy (--policy, or the simulator's default) and its base pool.
 * 0, or an exit code. */
static int sim_load_policy(const sim_args *a, scale_policy *pol, const scale_pool **base) {
	json_error_t jerr;
	json_auto_t *doc = a->policy_file ? json_load_file(a->policy_file, JSON_REJECT_DUPLICATES, &jerr)
					  : json_loads(scale_sim_default_policy, 0, &jerr);
	scale_error err = {};

	if (!doc) {
		fprintf(stderr, "corralctl: %s:%d:%d: %s\n", a->policy_file, jerr.line, jerr.column, ESC_JERR(&jerr));
		return 2;
	}
	if (scale_policy_from_json(doc, pol, &err) < 0)
		return ctl_policy_invalid(&err);
	if (pol->n_pools == 0)
		return ctl_usage_error("%s: no pools", a->policy_file);
	*base = a->pool_name ? scale_policy_find(pol, a->pool_name) : &pol->pools[0];
	if (!*base)
		return ctl_usage_error("no pool '%s' in %s", a->pool_name, a->policy_file);
	return 0;
}

/* The sim's start as RFC 3339 UTC. */
static void sim_time_text(time_t t, char buf[static 32]) {
	struct tm tm;
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

static int sim_print_json(const sim_args *a, const scale_pool *base, const scale_sim_report *rep) {
	const scale_sim_settings *s = &rep->settings;
	char start[32];
	sim_time_text(s->start, start);
	json_auto_t *o = json_pack("{s:s, s:{s:s, s:I, s:I, s:i, s:i, s:I, s:s, s:f, s:f, s:f, s:i, s:i, s:i}, s:[]}",
				   "trace", a->trace, "settings", "pool", base->name, "duration",
				   (json_int_t) rep->duration, "step", (json_int_t) s->step, "jobs_per_host",
				   s->host_capacity, "peak_jobs", (int) rep->peak_jobs, "launch_delay",
				   (json_int_t) s->launch_delay, "billing", scale_billing_to_string(rep->billing),
				   "price_on_demand", s->price_on_demand, "price_spot", s->price_spot, "price_reserved",
				   s->price_reserved, "reserved", s->reserved, "fixed_peak_hosts", rep->peak_hosts,
				   "fixed_mean_hosts", rep->mean_hosts, "results");
	if (!o)
		return 1;
	json_t *set = json_object_get(o, "settings");
	json_object_set_new(set, "warm_start_delay", json_integer(s->warm_start_delay));
	json_object_set_new(set, "price_stopped", json_real(s->price_stopped));
	json_object_set_new(set, "start", json_string(start));
	for (size_t i = 0; i < rep->n_results; i++) {
		const scale_sim_result *res = &rep->results[i];
		json_array_append_new(json_object_get(o, "results"),
				      json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:i}", "policy", res->name,
						"instance_hours", round(res->instance_hours * 1000) / 1000, "cost",
						round(res->cost * 10000) / 10000, "unmet_job_minutes",
						round(res->unmet_job_minutes * 100) / 100, "launches",
						(json_int_t) res->launches, "terminations", (json_int_t) res->terminations,
						"starts", (json_int_t) res->starts, "stops", (json_int_t) res->stops,
						"churn", (json_int_t) res->churn, "peak_hosts", res->peak_hosts));
	}
	return ctl_print_json(o);
}

/* -o csv: the results, one row per policy, the JSON's field names. */
static int sim_print_csv(const scale_sim_report *rep) {
	static const char *const header[] = { "policy", "instance_hours", "cost", "unmet_job_minutes", "launches",
					      "terminations", "starts", "stops", "churn", "peak_hosts" };
	char *cells[SCALE_SIM_RUNS_MAX * ELEMENTSOF(header)] = {};

	for (size_t i = 0; i < rep->n_results; i++) {
		const scale_sim_result *res = &rep->results[i];
		char **row = cells + i * ELEMENTSOF(header);
		row[0] = strdup(res->name);
		if (asprintf(&row[1], "%.3f", res->instance_hours) < 0 || asprintf(&row[2], "%.4f", res->cost) < 0 ||
		    asprintf(&row[3], "%.2f", res->unmet_job_minutes) < 0 || asprintf(&row[4], "%ld", res->launches) < 0 ||
		    asprintf(&row[5], "%ld", res->terminations) < 0 || asprintf(&row[6], "%ld", res->starts) < 0 ||
		    asprintf(&row[7], "%ld", res->stops) < 0 || asprintf(&row[8], "%ld", res->churn) < 0 ||
		    asprintf(&row[9], "%d", res->peak_hosts) < 0)
			break;  /* a NULL cell: ctl_print_csv fails */
	}
	return ctl_print_csv(header, cells, rep->n_results, ELEMENTSOF(header));
}

/* --steps FILE: one CSV row per step per run (scale_sim_step). */
static const char *const steps_header[] = { "policy",	 "time",      "running",     "queued",
					    "desired",	 "launching", "ready",	     "draining",
					    "unhealthy", "terminating", "stopped", "cost" };

static int sim_write_step(const scale_sim_step *st, void *data) {
	FILE *f = data;
	char v[ELEMENTSOF(steps_header)][32];
	const char *cells[ELEMENTSOF(steps_header)] = { st->policy };

	snprintf(v[1], sizeof v[1], "%ld", st->t);
	snprintf(v[2], sizeof v[2], "%d", st->running);
	snprintf(v[3], sizeof v[3], "%d", st->queued);
	snprintf(v[4], sizeof v[4], "%d", st->desired);
	for (scale_state k = SCALE_LAUNCHING; k < SCALE_TERMINATED; k++)
		snprintf(v[5 + k], sizeof v[5 + k], "%d", st->hosts[k]);
	snprintf(v[10], sizeof v[10], "%d", st->hosts[SCALE_STOPPED]);
	snprintf(v[11], sizeof v[11], "%.6f", st->cost);
	for (size_t j = 1; j < ELEMENTSOF(steps_header); j++)
		cells[j] = v[j];
	ctl_csv_row(f, cells, ELEMENTSOF(steps_header));
	return ferror(f) ? -EIO : 0;
}

static int sim_print_table(const sim_args *a, const scale_sim_trace *tr, const scale_pool *base,
			   const scale_sim_report *rep) {
	static const char *const header[] = { "POLICY", "INSTANCE-HOURS", "COST",  "UNMET JOB-MIN", "LAUNCHES",
					      "TERMINATIONS", "STARTS",	 "STOPS", "CHURN",	   "PEAK HOSTS" };
	const scale_sim_settings *s = &rep->settings;
	char *cells[SCALE_SIM_RUNS_MAX * ELEMENTSOF(header)] = {};
	bool ok = true;

	char start[32];
	sim_time_text(s->start, start);
	printf("trace %s: %zu rows, %lds in steps of %lds from %s, peak %ld running jobs\n"
	       "pool %s: %d jobs per host, launch delay %lds, warm start delay %lds, billing %s; on-demand $%.3f/h, "
	       "spot $%.3f/h, %d reserved at $%.3f/h, stopped $%.4f/h\n\n",
	       a->trace, tr->n, rep->duration, s->step, start, rep->peak_jobs, base->name, s->host_capacity,
	       s->launch_delay, s->warm_start_delay, scale_billing_to_string(rep->billing), s->price_on_demand,
	       s->price_spot, s->reserved, s->price_reserved, s->price_stopped);
	for (size_t i = 0; i < rep->n_results; i++) {
		const scale_sim_result *res = &rep->results[i];
		char **row = cells + i * ELEMENTSOF(header);
		char buf[ELEMENTSOF(header)][64] = {};
		snprintf(buf[1], sizeof buf[1], "%.2f", res->instance_hours);
		snprintf(buf[2], sizeof buf[2], "%.2f", res->cost);
		snprintf(buf[3], sizeof buf[3], "%.1f", res->unmet_job_minutes);
		snprintf(buf[4], sizeof buf[4], "%ld", res->launches);
		snprintf(buf[5], sizeof buf[5], "%ld", res->terminations);
		snprintf(buf[6], sizeof buf[6], "%ld", res->starts);
		snprintf(buf[7], sizeof buf[7], "%ld", res->stops);
		snprintf(buf[8], sizeof buf[8], "%ld", res->churn);
		snprintf(buf[9], sizeof buf[9], "%d", res->peak_hosts);
		for (size_t j = 0; j < ELEMENTSOF(header); j++)
			ok = ok && (row[j] = strdup(j == 0 ? res->name : buf[j]));
	}
	if (ok)
		ctl_print_table(header, cells, rep->n_results, ELEMENTSOF(header));
	for (size_t i = 0; i < ELEMENTSOF(cells); i++)
		free(cells[i]);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}

int ctl_scale_simulate(format_t format, int argc, char **argv) {
	sim_args a = { .format = format };
	_cleanup_(scale_sim_trace_done) scale_sim_trace tr = {};
	_cleanup_(scale_policy_done) scale_policy pol = {};
	const scale_pool *base = NULL;
	scale_sim_report rep;
	char msg[512];
	int r;

	scale_sim_settings_defaults(&a.s);
	if ((r = sim_parse_args(&a, argc, argv)) != 0)
		return r;
	if (a.help) {
		sim_help();
		return 0;
	}
	if ((r = scale_sim_trace_load(a.trace, &tr, msg, sizeof msg)) < 0) {
		if (!msg[0])
			return 1;
		fprintf(stderr, "corralctl: %s\n", msg);
		return 2;
	}
	if ((r = sim_load_policy(&a, &pol, &base)) != 0)
		return r;
	_cleanup_fclose_ FILE *steps = a.steps ? fopen(a.steps, "we") : NULL;
	if (a.steps && !steps) {
		fprintf(stderr, "corralctl: cannot write --steps %s: %m\n", a.steps);
		return 1;
	}
	if (steps) {
		ctl_csv_row(steps, steps_header, ELEMENTSOF(steps_header));
		a.s.on_step = sim_write_step;
		a.s.step_data = steps;
	}
	if ((r = scale_sim_compare(&tr, base, a.policy_file != NULL, &a.s, &rep)) < 0) {
		fprintf(stderr, "corralctl: simulation '%s' failed: %s\n", rep.failed, strerror(-r));
		return 1;
	}
	if (steps && fclose(TAKE_PTR(steps)) != 0) {
		fprintf(stderr, "corralctl: cannot write --steps %s: %m\n", a.steps);
		return 1;
	}
	if (a.format == FORMAT_CSV)
		return sim_print_csv(&rep);
	return a.format == FORMAT_JSON ? sim_print_json(&a, base, &rep) : sim_print_table(&a, &tr, base, &rep);
}
