/* scale.c — the two scale commands that run the decision itself:
 * `autoscale` (ask the leader to decide now; with -n the plan computed
 * here from what etcd holds) and `scale simulate`, which replays a load
 * trace through scale_decide() against a simulated cloud (no etcd). The
 * scale commands that edit the policy are in policy.c.
 *
 * Issue 12 moves the bodies below out (the plan onto the shared observe
 * function, the simulator to src/scale/sim.c); until then they keep the
 * names they were written with, mapped here onto corralctl's helpers. */
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
#include "esc.h"
#include "log.h"
#include "scale.h"

typedef ctl_view view;
typedef ctl_opts opts;

static int view_read(ctl_t *c, view *v) {
	return ctl_view_read(c, v);
}

static void view_done(view *v) {
	ctl_view_done(v);
}

static void log_summary(ctl_t *c, const char *when) {
	ctl_log_summary(c, when);
}

static char *marker_json(const char *reason) {
	return ctl_marker_json(reason);
}

static int parse_int(const char *s, long min, long max, long *out) {
	return ctl_parse_int(s, min, max, out);
}

static int parse_double(const char *s, double min, double max, double *out) {
	return ctl_parse_double(s, min, max, out);
}

static int policy_invalid(const scale_error *err) {
	return ctl_policy_invalid(err);
}

/* The one key the code below writes, by the name it uses. */
static char *suffix_key(ctl_t *c, const char *suffix) {
	return streq(suffix, "scale/trigger") ? keys_one_of(c->prefix, KEYS_SCALE_TRIGGER) : NULL;
}

static int put_key(ctl_t *c, const char *suffix, const char *value, int64_t expect_mod) {
	_cleanup_free_ char *key = suffix_key(c, suffix);
	return ctl_put(c, key, value, expect_mod);
}

static int report(ctl_t *c, const char *op, const char *suffix, const char *value, const char *text) {
	_cleanup_free_ char *key = suffix_key(c, suffix);
	return ctl_report(c, op, key, value, text);
}
/* ---- autoscale ------------------------------------------------------------------ */

/* The inputs the leader would build, from etcd alone. */
typedef struct plan_input {
	scale_host *hosts;
	size_t n_hosts;
	scale_queue *queues;
	size_t n_queues;
	scale_pool_state *state;
	size_t n_state;
	char *cluster;
} plan_input;

static void plan_input_done(plan_input *p) {
	for (size_t i = 0; i < p->n_hosts; i++)
		scale_host_done(&p->hosts[i]);
	free(p->hosts);
	for (size_t i = 0; i < p->n_queues; i++)
		free(p->queues[i].pool);
	free(p->queues);
	for (size_t i = 0; i < p->n_state; i++)
		free(p->state[i].pool);
	free(p->state);
	free(p->cluster);
}

static int plan_build(ctl_t *c, view *v, time_t now, plan_input *in) {
	const char *id;
	json_t *rec;

	in->hosts = calloc(json_object_size(v->hosts) + 1, sizeof *in->hosts);
	in->queues = calloc(json_object_size(v->queues) + 1, sizeof *in->queues);
	json_t *st = json_object_get(v->state, "state") ?: v->state;
	in->state = calloc(json_object_size(st) + 1, sizeof *in->state);
	in->cluster = strdup(strrchr(c->prefix, '/') + 1);
	if (!in->hosts || !in->queues || !in->state || !in->cluster)
		return -ENOMEM;
	json_object_foreach(v->hosts, id, rec) {
		scale_host *h = &in->hosts[in->n_hosts];
		scale_error err = {};
		if (scale_host_from_json(rec, h, &err) < 0) {
			fprintf(stderr, "corralctl: warning: skipping scale/hosts/%s: %s\n", id,
				err.message[0] ? err.message : "malformed");
			continue;
		}
		in->n_hosts++;
		if (json_object_get(v->holds, h->id))
			h->hold = true;
		/* As src/scaler does: the node is the nodes/<node> record naming
		 * this instance (it lives on the node's lease: present = alive, so
		 * heard from now), its jobs are what load/<node> says (none
		 * without one). */
		const char *node;
		json_t *nrec, *ld = NULL;
		free(h->node_id);
		h->node_id = NULL;
		h->jobs = 0;
		json_object_foreach(v->nodes, node, nrec)
			if (streq_ptr(json_string_value(json_object_get(nrec, "instance_id")), h->id)) {
				h->node_id = strdup(node);
				if (!h->node_id)
					return -ENOMEM;
				h->last_seen = now;
				ld = json_object_get(v->load, node);
				break;
			}
		if (json_is_object(ld) && !json_object_get(ld, "malformed")) {
			h->jobs = (int) json_integer_value(json_object_get(ld, "jobs"));
			h->job_capacity = (int) json_integer_value(json_object_get(ld, "capacity"));
			h->memory_used = json_number_value(json_object_get(ld, "memory"));
		}
	}
	json_object_foreach(v->queues, id, rec) {
		long n;
		if (parse_int(json_string_value(rec), 0, INT32_MAX, &n) < 0) {
			fprintf(stderr, "corralctl: warning: scale/queue/%s holds no count\n", id);
			continue;
		}
		in->queues[in->n_queues].pool = strdup(id);
		if (!in->queues[in->n_queues].pool)
			return -ENOMEM;
		in->queues[in->n_queues++].length = (int) n;
	}
	json_object_foreach(st, id, rec) {
		scale_pool_state *s = &in->state[in->n_state];
		if (!json_is_object(rec))
			continue;
		s->pool = strdup(id);
		if (!s->pool)
			return -ENOMEM;
		s->last_scale_in = (time_t) json_integer_value(json_object_get(rec, "last_scale_in"));
		s->surplus_since = (time_t) json_integer_value(json_object_get(rec, "surplus_since"));
		s->launch_seq = (uint64_t) json_integer_value(json_object_get(rec, "launch_seq"));
		in->n_state++;
	}
	return 0;
}

static int autoscale_plan(ctl_t *c) {
	_cleanup_(view_done) view v = {};
	_cleanup_(plan_input_done) plan_input pi = {};
	scale_output out = {};
	int r;

	if (view_read(c, &v) < 0)
		return 1;
	if (!v.policy_text) {
		fprintf(stderr, "corralctl: no scaling policy at %s/scale/policy: nothing to decide\n", c->prefix);
		return 1;
	}
	if (!v.policy_ok) {
		fprintf(stderr, "corralctl: the stored policy is invalid: %s\n", v.policy_err.message);
		return 1;
	}
	time_t now = time(NULL);
	if (plan_build(c, &v, now, &pi) < 0)
		return 1;
	scale_input in = {
		.cluster = pi.cluster, .policy = &v.policy,
		.hosts = pi.hosts, .n_hosts = pi.n_hosts,
		.queues = pi.queues, .n_queues = pi.n_queues,
		.state = pi.state, .n_state = pi.n_state,
		.maintenance = v.maintenance != NULL, .stop = v.stop != NULL,
		.now = now,
	};
	r = scale_decide(&in, &out);
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
		json_object_set_new(o, "revision", json_integer(v.revision));
		json_object_set_new(o, "note", json_string(note));
		return ctl_print_json(o);
	}
	_cleanup_free_ char *plan = scale_plan_format(&out);
	scale_output_done(&out);
	if (!plan)
		return 1;
	printf("dry run: the leader's decision as etcd holds it at revision %" PRId64 "; nothing written.\n"
	       "note: %s.\n%s",
	       v.revision, note, plan);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_autoscale(ctl_t *c, opts *o) {
	_cleanup_free_ char *value = NULL;

	if (o->n_pos != 0)
		return ctl_usage_error("%s", "autoscale takes no arguments");
	if (c->dry_run)
		return autoscale_plan(c);
	value = marker_json(o->reason);
	if (!value)
		return 1;
	log_summary(c, "before");
	if (put_key(c, "scale/trigger", value, -1) < 0)
		return 1;
	int r = report(c, "put", "scale/trigger", value, "asked the leader to decide now");
	log_summary(c, "after");
	return r;
}

static int run_simulate(ctl_t *c, ctl_opts *o) {
	return ctl_scale_simulate(c->format, o->argc, o->argv);
}

const ctl_verb ctl_scale_verbs[] = {
	{ .group = "scale", .name = "simulate", .args = "--trace FILE [...]",
	  .help = "replay a load trace against a simulated cloud, per policy; no etcd\n"
		  "(corralctl scale simulate --help)",
	  .flags = CTL_VERB_OWN_OPTIONS, .run = run_simulate },
	{ .name = "autoscale", .args = "[--reason TEXT]",
	  .help = "ask the leader to decide now; with -n: compute and print the plan here\n"
		  "from what etcd holds, write nothing",
	  .options = CTL_OPT_REASON, .flags = CTL_VERB_ETCD, .run = cmd_autoscale },
	{},
};

/* ---- scale simulate ---------------------------------------------------------------- */

/* A load trace replayed through scale_decide() against a simulated cloud.
 * Time moves in steps; at each step:
 *   1. launching hosts whose launch delay has passed register (a node id);
 *      registered hosts heartbeat (last_seen = now), so none goes unhealthy;
 *   2. the trace's running jobs, then its queued ones, are placed anew on
 *      ready hosts, evenly, up to their capacity (jobs are taken as shorter
 *      than a step, so draining hosts empty at once); running jobs without
 *      a slot are unmet, counted in job-minutes;
 *   3. the decision runs with those hosts and queue = the jobs not placed;
 *   4. its actions are carried out: launches add launching hosts, drains
 *      and transitions change states, terminations end billing at once.
 * Billing per host: per-second with a 60 s minimum, or hourly rounded up
 * (a started hour is paid). --reserved N: the N oldest live on-demand hosts
 * are covered at each step (their covered seconds cost nothing on top), and
 * the reservation itself costs N x duration x the reserved price for every
 * policy alike. No randomness and no clock: the same input gives the same
 * output. */

typedef struct trace_row {
	long t;
	int running, queued;
} trace_row;

typedef struct sim_settings {
	long launch_delay, step;
	bool billing_set;
	scale_billing billing;
	double price_on_demand, price_spot, price_reserved;
	int reserved;
	int host_capacity;              /* job slots per simulated host */
} sim_settings;

typedef struct sim_result {
	char name[48];
	double instance_hours, cost, unmet_job_minutes;
	long launches, terminations;
	int peak_hosts;
} sim_result;

static int trace_load(const char *path, trace_row **out, size_t *n_out) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ trace_row *rows = NULL;
	size_t n = 0, cap = 0;
	char line[256];
	unsigned lineno = 0;

	if (!f) {
		fprintf(stderr, "corralctl: cannot read trace %s: %m\n", path);
		return 2;
	}
	while (fgets(line, sizeof line, f)) {
		long t;
		int running, queued;
		char extra;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#' || (lineno == 1 && strncmp(line, "seconds", 7) == 0))
			continue;
		if (sscanf(line, "%ld , %d , %d %c", &t, &running, &queued, &extra) != 3 || t < 0 || running < 0 ||
		    queued < 0) {
			fprintf(stderr, "corralctl: %s:%u: want \"seconds,running,queued\" (non-negative integers)\n",
				path, lineno);
			return 2;
		}
		if (n > 0 && t <= rows[n - 1].t) {
			fprintf(stderr, "corralctl: %s:%u: seconds must increase\n", path, lineno);
			return 2;
		}
		if (n == cap) {
			trace_row *nr = realloc(rows, (cap = cap ? cap * 2 : 256) * sizeof *rows);
			if (!nr)
				return 1;
			rows = nr;
		}
		rows[n++] = (trace_row){ t, running, queued };
	}
	if (n == 0) {
		fprintf(stderr, "corralctl: %s: no rows\n", path);
		return 2;
	}
	*out = TAKE_PTR(rows);
	*n_out = n;
	return 0;
}

static double sim_bill(const sim_settings *s, scale_billing billing, long uptime, double covered, double price) {
	double billed;

	if (billing == SCALE_BILLING_HOURLY)
		billed = (double) (uptime <= 0 ? 1 : (uptime + 3599) / 3600) * 3600;
	else
		billed = uptime < 60 ? 60 : uptime;
	billed -= covered;
	return billed > 0 ? billed / 3600 * price : 0;
}

typedef struct sim_fleet {
	scale_host *hosts;
	double *covered;
	size_t n, cap;
	unsigned next_id;
} sim_fleet;

static void sim_fleet_done(sim_fleet *f) {
	for (size_t i = 0; i < f->n; i++)
		scale_host_done(&f->hosts[i]);
	free(f->hosts);
	free(f->covered);
}

static scale_host *sim_find(sim_fleet *f, const char *id) {
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->hosts[i].id, id))
			return &f->hosts[i];
	return NULL;
}

/* Bills host i up to `end` into res and forgets it. */
static void sim_end_host(sim_fleet *f, size_t i, time_t end, const sim_settings *s, scale_billing billing,
			 sim_result *res) {
	scale_host *h = &f->hosts[i];
	long uptime = (long) (end - h->launch_time);
	double price = h->market == SCALE_SPOT ? s->price_spot : s->price_on_demand;

	res->instance_hours += (double) uptime / 3600;
	res->cost += sim_bill(s, billing, uptime, f->covered[i], price);
	scale_host_done(h);
	memmove(h, h + 1, (f->n - i - 1) * sizeof *h);
	memmove(&f->covered[i], &f->covered[i + 1], (f->n - i - 1) * sizeof *f->covered);
	f->n--;
}

static int sim_launch(sim_fleet *f, const scale_action *a, time_t now, int capacity) {
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		scale_host *nh = realloc(f->hosts, cap * sizeof *nh);
		if (!nh)
			return -ENOMEM;
		f->hosts = nh;
		double *nc = realloc(f->covered, cap * sizeof *nc);
		if (!nc)
			return -ENOMEM;
		f->covered = nc;
		f->cap = cap;
	}
	scale_host *h = &f->hosts[f->n];
	*h = (scale_host){ .state = SCALE_LAUNCHING, .market = a->market, .launch_time = now, .state_since = now,
			   .job_capacity = capacity, .cluster_tagged = true };
	if (asprintf(&h->id, "i-%06u", f->next_id++) < 0)
		return -ENOMEM;
	h->pool = strdup(a->pool);
	h->instance_type = strdup(a->instance_type ? a->instance_type : "?");
	h->availability_zone = a->availability_zone ? strdup(a->availability_zone) : NULL;
	if (!h->pool || !h->instance_type || (a->availability_zone && !h->availability_zone)) {
		scale_host_done(h);
		return -ENOMEM;
	}
	f->covered[f->n++] = 0;
	return 0;
}

/* Epoch of the simulated clock: fixed (determinism) and > 0 (the engine
 * takes now <= 0 as an error). */
#define SIM_EPOCH ((time_t) 1700000000)

static int sim_run(const trace_row *rows, size_t n_rows, const scale_pool *pool, const sim_settings *s,
		   sim_result *res) {
	_cleanup_(sim_fleet_done) sim_fleet f = {};
	_cleanup_free_ scale_price *prices = NULL;
	scale_policy pol = { .pools = (scale_pool *) pool, .n_pools = 1 };
	scale_pool_state st = { .pool = pool->name };
	scale_reservation resv = { .instance_type = pool->instance_types[0], .count = s->reserved };
	size_t n_prices = 0, row = 0;
	long t;
	int r;

	prices = calloc(pool->n_instance_types * pool->n_subnets + 1, sizeof *prices);
	if (!prices)
		return -ENOMEM;
	for (size_t i = 0; i < pool->n_instance_types; i++)
		for (size_t j = 0; j < pool->n_subnets; j++)
			if (pool->subnets[j].availability_zone)
				prices[n_prices++] = (scale_price){ pool->instance_types[i],
								    pool->subnets[j].availability_zone, s->price_spot };

	for (t = rows[0].t; t <= rows[n_rows - 1].t; t += s->step) {
		time_t now = SIM_EPOCH + t;
		scale_output out = {};

		while (row + 1 < n_rows && rows[row + 1].t <= t)
			row++;
		/* 1. registration and heartbeats */
		size_t ready = 0;
		for (size_t i = 0; i < f.n; i++) {
			scale_host *h = &f.hosts[i];
			if (!h->node_id && now >= h->launch_time + s->launch_delay && asprintf(&h->node_id, "n-%s", h->id) < 0) {
				h->node_id = NULL;
				return -ENOMEM;
			}
			if (h->node_id)
				h->last_seen = now;
			ready += h->state == SCALE_READY;
		}
		/* 2. jobs on ready hosts, evenly: the running ones first, then
		 * queued ones while slots are free; running jobs without a slot
		 * are unmet, and whatever is not placed is the queue */
		long running = rows[row].running, want = running + rows[row].queued;
		long slots = (long) ready * s->host_capacity;
		long placed = want < slots ? want : slots;
		long unmet = running > slots ? running - slots : 0;
		size_t k = 0;
		for (size_t i = 0; i < f.n; i++) {
			scale_host *h = &f.hosts[i];
			h->jobs = 0;
			if (h->state == SCALE_READY) {
				h->jobs = (int) (placed / (long) ready + ((long) k < placed % (long) ready));
				k++;
			}
			h->memory_used = (double) h->jobs / s->host_capacity;
		}
		res->unmet_job_minutes += (double) unmet * s->step / 60;
		/* the reservation covers the oldest live on-demand hosts */
		int left = s->reserved;
		for (size_t i = 0; i < f.n && left > 0; i++)
			if (f.hosts[i].market == SCALE_ON_DEMAND) {
				f.covered[i] += s->step;
				left--;
			}
		/* 3. decide */
		scale_queue q = { .pool = pool->name, .length = (int) (want - placed) };
		scale_input in = {
			.cluster = "sim", .policy = &pol, .hosts = f.hosts, .n_hosts = f.n, .queues = &q, .n_queues = 1,
			.prices = prices, .n_prices = n_prices, .reservations = &resv, .n_reservations = s->reserved > 0,
			.state = &st, .n_state = 1, .now = now,
		};
		r = scale_decide(&in, &out);
		if (r < 0)
			return r;
		/* 4. carry it out; terminated hosts leave after the loop, since the
		 * actions point at their ids */
		for (size_t i = 0; i < out.n_actions && r >= 0; i++) {
			const scale_action *a = &out.actions[i];
			scale_host *h;

			if (a->kind == SCALE_ACTION_LAUNCH) {
				for (int j = 0; j < a->count && r >= 0; j++)
					r = sim_launch(&f, a, now, s->host_capacity);
				res->launches += a->count;
				continue;
			}
			h = sim_find(&f, a->id);
			if (!h)
				continue;
			h->state = a->kind == SCALE_ACTION_TERMINATE ? SCALE_TERMINATED : a->to;
			h->state_since = now;
			res->terminations += a->kind == SCALE_ACTION_TERMINATE;
		}
		if (out.n_state == 1) {
			st.last_scale_in = out.state[0].last_scale_in;
			st.surplus_since = out.state[0].surplus_since;
			st.launch_seq = out.state[0].launch_seq;
		}
		scale_output_done(&out);
		if (r < 0)
			return r;
		for (size_t i = f.n; i-- > 0;)
			if (f.hosts[i].state == SCALE_TERMINATED)
				sim_end_host(&f, i, now, s, pool->billing, res);
		if ((int) f.n > res->peak_hosts)
			res->peak_hosts = (int) f.n;
	}
	time_t end = SIM_EPOCH + t;
	while (f.n > 0)
		sim_end_host(&f, f.n - 1, end, s, pool->billing, res);
	double hours = (double) (t - rows[0].t) / 3600;
	res->cost += s->reserved * hours * s->price_reserved;
	return 0;
}

static const char sim_default_policy[] =
	"{\"pools\": {\"sim\": {\"launch_template\": \"lt-sim\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"markets\": [\"reserved\", \"on-demand\"], \"min\": 0, \"max\": 500, \"jobs_per_host\": 4}}}";

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
	       "  --billing MODE          per-second (60 s minimum) or hourly (default: the pool's)\n"
	       "  --price-on-demand X     USD/hour (default 0.096)\n"
	       "  --price-spot Y          USD/hour (default 0.035)\n"
	       "  --price-reserved Z      USD/hour per reserved instance (default 0.060)\n"
	       "  --reserved N            reserved instances of the pool's first type (default 0)\n"
	       "  --step S                seconds per step, one decision each (default 60)\n"
	       "  --host-capacity N       jobs per host when the pool's jobs_per_host is 0 (default 4)\n"
	       "  -o, --format FORMAT     table (default) or json\n"
	       "\n"
	       "Policies compared: as given (with --policy), jobs n+2*sqrt(n), jobs x1.3, queue, fixed at\n"
	       "the trace's peak, fixed at its mean. Columns: instance-hours (up time), cost (billed),\n"
	       "unmet job-minutes (running jobs without a slot), launches, terminations, peak hosts.\n");
}

int ctl_scale_simulate(format_t format, int argc, char **argv) {
	enum { ARG_TRACE = 0x100, ARG_POLICY, ARG_POOL, ARG_DELAY, ARG_BILLING, ARG_POD, ARG_PSPOT, ARG_PRES,
	       ARG_RESERVED, ARG_STEP, ARG_CAPACITY };
	static const struct option options[] = {
		{ "trace", required_argument, NULL, ARG_TRACE },
		{ "policy", required_argument, NULL, ARG_POLICY },
		{ "pool", required_argument, NULL, ARG_POOL },
		{ "launch-delay", required_argument, NULL, ARG_DELAY },
		{ "billing", required_argument, NULL, ARG_BILLING },
		{ "price-on-demand", required_argument, NULL, ARG_POD },
		{ "price-spot", required_argument, NULL, ARG_PSPOT },
		{ "price-reserved", required_argument, NULL, ARG_PRES },
		{ "reserved", required_argument, NULL, ARG_RESERVED },
		{ "step", required_argument, NULL, ARG_STEP },
		{ "host-capacity", required_argument, NULL, ARG_CAPACITY },
		{ "format", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	sim_settings s = { .launch_delay = 120, .step = 60, .price_on_demand = 0.096, .price_spot = 0.035,
			   .price_reserved = 0.060, .host_capacity = 4 };
	const char *trace = NULL, *policy_file = NULL, *pool_name = NULL;
	_cleanup_free_ trace_row *rows = NULL;
	size_t n_rows = 0;
	long v;
	int opt, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
		switch (opt) {
		case ARG_TRACE:
			trace = optarg;
			break;
		case ARG_POLICY:
			policy_file = optarg;
			break;
		case ARG_POOL:
			pool_name = optarg;
			break;
		case ARG_DELAY:
			if (parse_int(optarg, 0, 86400, &s.launch_delay) < 0)
				return ctl_usage_error("bad --launch-delay '%s': seconds, 0..86400", optarg);
			break;
		case ARG_BILLING:
			if (scale_billing_from_string(optarg, &s.billing) < 0)
				return ctl_usage_error("bad --billing '%s': per-second or hourly", optarg);
			s.billing_set = true;
			break;
		case ARG_POD:
			if (parse_double(optarg, 0, 1000, &s.price_on_demand) < 0)
				return ctl_usage_error("bad --price-on-demand '%s'", optarg);
			break;
		case ARG_PSPOT:
			if (parse_double(optarg, 0, 1000, &s.price_spot) < 0)
				return ctl_usage_error("bad --price-spot '%s'", optarg);
			break;
		case ARG_PRES:
			if (parse_double(optarg, 0, 1000, &s.price_reserved) < 0)
				return ctl_usage_error("bad --price-reserved '%s'", optarg);
			break;
		case ARG_RESERVED:
			if (parse_int(optarg, 0, 100000, &v) < 0)
				return ctl_usage_error("bad --reserved '%s': 0..100000", optarg);
			s.reserved = (int) v;
			break;
		case ARG_STEP:
			if (parse_int(optarg, 1, 86400, &s.step) < 0)
				return ctl_usage_error("bad --step '%s': seconds, 1..86400", optarg);
			break;
		case ARG_CAPACITY:
			if (parse_int(optarg, 1, 100000, &v) < 0)
				return ctl_usage_error("bad --host-capacity '%s': 1..100000", optarg);
			s.host_capacity = (int) v;
			break;
		case 'o':
			if (streq(optarg, "json"))
				format = FORMAT_JSON;
			else if (streq(optarg, "table"))
				format = FORMAT_TABLE;
			else
				return ctl_usage_error("unknown format '%s' (json or table)", optarg);
			break;
		case 'h':
			sim_help();
			return 0;
		default:
			return ctl_usage_error("scale simulate: unknown option or missing value '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_usage_error("scale simulate: unexpected argument '%s'", argv[optind]);
	if (!trace)
		return ctl_usage_error("%s", "scale simulate needs --trace FILE");
	if ((r = trace_load(trace, &rows, &n_rows)) != 0)
		return r;

	json_error_t jerr;
	json_auto_t *doc = policy_file ? json_load_file(policy_file, JSON_REJECT_DUPLICATES, &jerr)
				       : json_loads(sim_default_policy, 0, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s:%d:%d: %s\n", policy_file, jerr.line, jerr.column, ESC_JERR(&jerr));
		return 2;
	}
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_error err = {};
	if (scale_policy_from_json(doc, &pol, &err) < 0)
		return policy_invalid(&err);
	if (pol.n_pools == 0)
		return ctl_usage_error("%s: no pools", policy_file);
	const scale_pool *base = pool_name ? scale_policy_find(&pol, pool_name) : &pol.pools[0];
	if (!base)
		return ctl_usage_error("no pool '%s' in %s", pool_name, policy_file);
	if (base->jobs_per_host > 0)
		s.host_capacity = base->jobs_per_host;

	/* peak and mean of the running jobs over the simulated steps */
	long peak = 0, steps = 0;
	double sum = 0;
	for (long t = rows[0].t, row = 0; t <= rows[n_rows - 1].t; t += s.step, steps++) {
		while ((size_t) row + 1 < n_rows && rows[row + 1].t <= t)
			row++;
		peak = rows[row].running > peak ? rows[row].running : peak;
		sum += rows[row].running;
	}
	int peak_hosts = (int) ((peak + s.host_capacity - 1) / s.host_capacity);
	int mean_hosts = (int) ceil(sum / steps / s.host_capacity);

	/* the runs: the base pool under each policy kind; the manual override
	 * is dropped (it would make every run the same) */
	struct {
		const char *name;
		scale_pool pool;
	} runs[6];
	size_t n = 0;
	scale_pool p = *base;
	p.desired = -1;
	p.enabled = true;
	if (s.billing_set)
		p.billing = s.billing;
	if (policy_file)
		runs[n++] = (typeof(runs[0])){ "as given", p };
	runs[n] = (typeof(runs[0])){ "jobs n+2sqrt(n)", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 0;
	runs[n] = (typeof(runs[0])){ "jobs x1.3", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 1.3;
	runs[n] = (typeof(runs[0])){ "queue", p };
	runs[n++].pool.kind = SCALE_POLICY_QUEUE;
	runs[n] = (typeof(runs[0])){ "fixed at peak", p };
	runs[n].pool.kind = SCALE_POLICY_FIXED;
	runs[n].pool.hosts = peak_hosts > p.min ? peak_hosts : p.min;
	runs[n].pool.max = runs[n].pool.hosts > p.max ? runs[n].pool.hosts : p.max;
	n++;
	runs[n] = (typeof(runs[0])){ "fixed at mean", p };
	runs[n].pool.kind = SCALE_POLICY_FIXED;
	runs[n].pool.hosts = mean_hosts > p.min ? mean_hosts : p.min;
	runs[n].pool.max = runs[n].pool.hosts > p.max ? runs[n].pool.hosts : p.max;
	n++;

	sim_result res[6] = {};
	for (size_t i = 0; i < n; i++) {
		snprintf(res[i].name, sizeof res[i].name, "%s", runs[i].name);
		r = sim_run(rows, n_rows, &runs[i].pool, &s, &res[i]);
		if (r < 0) {
			fprintf(stderr, "corralctl: simulation '%s' failed: %s\n", runs[i].name, strerror(-r));
			return 1;
		}
	}

	const char *billing = scale_billing_to_string(p.billing);
	long duration = rows[n_rows - 1].t - rows[0].t;
	if (format == FORMAT_JSON) {
		json_auto_t *o = json_pack("{s:s, s:{s:s, s:I, s:I, s:i, s:i, s:I, s:s, s:f, s:f, s:f, s:i, s:i, s:i}, s:[]}",
					   "trace", trace, "settings", "pool", p.name, "duration", (json_int_t) duration,
					   "step", (json_int_t) s.step, "jobs_per_host", s.host_capacity, "peak_jobs",
					   (int) peak, "launch_delay", (json_int_t) s.launch_delay, "billing", billing,
					   "price_on_demand", s.price_on_demand, "price_spot", s.price_spot,
					   "price_reserved", s.price_reserved, "reserved", s.reserved, "fixed_peak_hosts",
					   peak_hosts, "fixed_mean_hosts", mean_hosts, "results");
		if (!o)
			return 1;
		for (size_t i = 0; i < n; i++)
			json_array_append_new(json_object_get(o, "results"),
					      json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:i}", "policy", res[i].name,
							"instance_hours", round(res[i].instance_hours * 1000) / 1000, "cost",
							round(res[i].cost * 10000) / 10000, "unmet_job_minutes",
							round(res[i].unmet_job_minutes * 100) / 100, "launches",
							(json_int_t) res[i].launches, "terminations",
							(json_int_t) res[i].terminations, "peak_hosts", res[i].peak_hosts));
		return ctl_print_json(o);
	}
	printf("trace %s: %zu rows, %lds in steps of %lds, peak %ld running jobs\n"
	       "pool %s: %d jobs per host, launch delay %lds, billing %s; on-demand $%.3f/h, spot $%.3f/h, "
	       "%d reserved at $%.3f/h\n\n",
	       trace, n_rows, duration, s.step, peak, p.name, s.host_capacity, s.launch_delay, billing,
	       s.price_on_demand, s.price_spot, s.reserved, s.price_reserved);
	static const char *const header[] = { "POLICY", "INSTANCE-HOURS", "COST", "UNMET JOB-MIN", "LAUNCHES",
					      "TERMINATIONS", "PEAK HOSTS" };
	char *cells[6 * ELEMENTSOF(header)] = {};
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		char **row = cells + i * ELEMENTSOF(header);
		char buf[7][64] = {};
		snprintf(buf[1], sizeof buf[1], "%.2f", res[i].instance_hours);
		snprintf(buf[2], sizeof buf[2], "%.2f", res[i].cost);
		snprintf(buf[3], sizeof buf[3], "%.1f", res[i].unmet_job_minutes);
		snprintf(buf[4], sizeof buf[4], "%ld", res[i].launches);
		snprintf(buf[5], sizeof buf[5], "%ld", res[i].terminations);
		snprintf(buf[6], sizeof buf[6], "%d", res[i].peak_hosts);
		for (size_t j = 0; j < ELEMENTSOF(header); j++)
			ok = ok && (row[j] = strdup(j == 0 ? res[i].name : buf[j]));
	}
	if (ok)
		ctl_print_table(header, cells, n, ELEMENTSOF(header));
	for (size_t i = 0; i < ELEMENTSOF(cells); i++)
		free(cells[i]);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}
