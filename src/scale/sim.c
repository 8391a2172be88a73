/* sim.c — `scale simulate`'s engine: a load trace replayed against a
 * simulated cloud that registers launched (or started) hosts after a
 * delay, places the trace's jobs on ready hosts, stops and starts warm
 * pool hosts and bills every host until it is terminated; each step the
 * cloud is written as the records the leader reads and goes through
 * scale_observe() and scale_decide(), as in the leader, and a pool with a
 * forecast keeps its load history as the leader does (include/scale-sim.h
 * has the rules). Pure; the trace reader and the comparison of policies
 * are in sim-compare.c, the CLI parses the arguments and prints the report. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-forecast.h"
#include "scale-observe.h"
#include "scale-sim.h"

/* ---- the simulated cloud ------------------------------------------------------------ */

static double sim_bill(scale_billing billing, long uptime, double covered, double price) {
	double billed;

	if (billing == SCALE_BILLING_HOURLY)
		billed = (double) (uptime <= 0 ? 1 : (uptime + 3599) / 3600) * 3600;
	else
		billed = uptime < 60 ? 60 : uptime;
	billed -= covered;
	return billed > 0 ? billed / 3600 * price : 0;
}

/* What the sim keeps beside each host. */
typedef struct sim_side {
	double covered;         /* seconds a reservation covered, this running period */
	time_t stopped_since;   /* stopped: since when, else 0 */
	time_t ready_at;        /* its node registers from here (not stopped, no node) */
	char *record;           /* scale/hosts/<id> as last written, NULL: to write */
	size_t record_len;
} sim_side;

typedef struct sim_fleet {
	scale_host *hosts;
	sim_side *side;
	size_t n, cap;
	unsigned next_id;
} sim_fleet;

static void sim_fleet_done(sim_fleet *f) {
	for (size_t i = 0; i < f->n; i++)
		scale_host_done(&f->hosts[i]);
	for (size_t i = 0; i < f->n; i++)
		free(f->side[i].record);
	free(f->hosts);
	free(f->side);
}

/* The leader writes a host's record when something in it changes: so does
 * the sim (jobs and memory go in load/<node>, the node in nodes/<node>). */
static void sim_changed(sim_fleet *f, const scale_host *h) {
	sim_side *side = &f->side[h - f->hosts];
	free(side->record);
	side->record = NULL;
}

static scale_host *sim_find(sim_fleet *f, const char *id) {
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->hosts[i].id, id))
			return &f->hosts[i];
	return NULL;
}

/* The bill of host i's current period were it ended at `end`: running
 * (its running hours in *hours) or stopped. */
static double sim_period_bill(const sim_fleet *f, size_t i, time_t end, const scale_sim_settings *s,
			      scale_billing billing, double *hours) {
	const scale_host *h = &f->hosts[i];
	const sim_side *side = &f->side[i];

	if (h->state == SCALE_STOPPED) {
		*hours = 0;
		return (double) (end - side->stopped_since) / 3600 * s->price_stopped;
	}
	long uptime = (long) (end - h->launch_time);  /* the last launch or start */
	*hours = (double) uptime / 3600;
	return sim_bill(billing, uptime, side->covered, h->market == SCALE_SPOT ? s->price_spot : s->price_on_demand);
}

/* Closes host i's current period at `end` into res: a stop or a start
 * begins the next one. */
static void sim_close_period(sim_fleet *f, size_t i, time_t end, const scale_sim_settings *s, scale_billing billing,
			     scale_sim_result *res) {
	double hours;

	res->cost += sim_period_bill(f, i, end, s, billing, &hours);
	res->instance_hours += hours;
	f->side[i].covered = 0;
}

/* Bills host i up to `end` into res and forgets it. */
static void sim_end_host(sim_fleet *f, size_t i, time_t end, const scale_sim_settings *s, scale_billing billing,
			 scale_sim_result *res) {
	scale_host *h = &f->hosts[i];

	sim_close_period(f, i, end, s, billing, res);
	scale_host_done(h);
	free(f->side[i].record);
	memmove(h, h + 1, (f->n - i - 1) * sizeof *h);
	memmove(&f->side[i], &f->side[i + 1], (f->n - i - 1) * sizeof *f->side);
	f->n--;
}

static int sim_launch(sim_fleet *f, const scale_action *a, time_t now, const scale_sim_settings *s) {
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		scale_host *nh = realloc(f->hosts, cap * sizeof *nh);
		if (!nh)
			return -ENOMEM;
		f->hosts = nh;
		sim_side *ns = realloc(f->side, cap * sizeof *ns);
		if (!ns)
			return -ENOMEM;
		f->side = ns;
		f->cap = cap;
	}
	scale_host *h = &f->hosts[f->n];
	*h = (scale_host) { .state = SCALE_LAUNCHING, .market = a->market, .launch_time = now, .state_since = now,
			    .job_capacity = s->host_capacity, .cluster_tagged = true, .warm = a->warm };
	if (asprintf(&h->id, "i-%06u", f->next_id++) < 0)
		return -ENOMEM;
	h->pool = strdup(a->pool);
	h->instance_type = strdup(a->instance_type ? a->instance_type : "?");
	h->availability_zone = a->availability_zone ? strdup(a->availability_zone) : NULL;
	if (!h->pool || !h->instance_type || (a->availability_zone && !h->availability_zone)) {
		scale_host_done(h);
		return -ENOMEM;
	}
	f->side[f->n++] = (sim_side) { .ready_at = now + s->launch_delay };
	return 0;
}

/* Spot prices: the simulated spot price for every type in every zone of
 * the pool. *out allocated, *n set; 0 or -ENOMEM. */
static int sim_prices(const scale_pool *pool, const scale_sim_settings *s, scale_price **out, size_t *n) {
	scale_price *prices = calloc(pool->n_instance_types * pool->n_subnets + 1, sizeof *prices);
	if (!prices)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < pool->n_instance_types; i++)
		for (size_t j = 0; j < pool->n_subnets; j++)
			if (pool->subnets[j].availability_zone)
				prices[(*n)++] = (scale_price) { pool->instance_types[i],
								 pool->subnets[j].availability_zone, s->price_spot };
	*out = prices;
	return 0;
}

/* Step 1: launching hosts whose delay has passed register a node (the
 * heartbeat is the node record itself, see sim_records_build). How many
 * hosts are ready, or -ENOMEM. */
static long sim_register(sim_fleet *f, time_t now) {
	long ready = 0;
	for (size_t i = 0; i < f->n; i++) {
		scale_host *h = &f->hosts[i];
		if (!h->node_id && h->state != SCALE_STOPPED && now >= f->side[i].ready_at) {
			if (asprintf(&h->node_id, "n-%s", h->id) < 0) {
				h->node_id = NULL;
				return -ENOMEM;
			}
			sim_changed(f, h);
		}
		ready += h->state == SCALE_READY;
	}
	return ready;
}

/* Step 2: jobs on ready hosts, evenly: the running ones first, then queued
 * ones while slots are free; running jobs without a slot are unmet, and
 * whatever is not placed is the queue (returned). The reservation covers
 * the oldest live on-demand hosts. */
static long sim_place_jobs(sim_fleet *f, const scale_sim_row *row, long ready, const scale_sim_settings *s,
			   scale_sim_result *res) {
	long running = row->running, want = running + row->queued;
	long slots = ready * s->host_capacity;
	long placed = want < slots ? want : slots;
	long unmet = running > slots ? running - slots : 0;
	size_t k = 0;

	for (size_t i = 0; i < f->n; i++) {
		scale_host *h = &f->hosts[i];
		h->jobs = 0;
		if (h->state == SCALE_READY) {
			h->jobs = (int) (placed / ready + ((long) k < placed % ready));
			k++;
		}
		h->memory_used = (double) h->jobs / s->host_capacity;
	}
	res->unmet_job_minutes += (double) unmet * s->step / 60;
	int left = s->reserved;
	for (size_t i = 0; i < f->n && left > 0; i++)
		if (f->hosts[i].market == SCALE_ON_DEMAND && f->hosts[i].state != SCALE_STOPPED) {
			f->side[i].covered += s->step;
			left--;
		}
	return want - placed;
}

/* ---- the cloud as the leader reads it ----------------------------------------------- */

/* Step 3's input: the simulated cloud as the records the leader would
 * read at one revision (scale/hosts/<id> through the host codec, nodes/<node>
 * naming the instance of each registered host, load/<node>, the queue,
 * scale/state) and EC2's answer (every live host's instance running).
 * Rebuilt each step into arrays and one text buffer kept for the run. */
typedef struct sim_records {
	scale_kv *hosts, *nodes, *load;
	scale_instance *instances;
	size_t cap;                     /* entries of each array */
	char *text;                     /* every value, back to back */
	size_t len, size;
	scale_kv queue;
	scale_records r;
} sim_records;

static void sim_records_done(sim_records *b) {
	free(b->hosts);
	free(b->nodes);
	free(b->load);
	free(b->instances);
	free(b->text);
}

static int sim_records_reserve(sim_records *b, size_t n) {
	size_t cap = b->cap ? b->cap : 64;
	void *p;

	if (n <= b->cap)
		return 0;
	while (cap < n)
		cap *= 2;
#define GROW(field)                                                  \
	do {                                                         \
		if (!(p = realloc(b->field, cap * sizeof *b->field))) \
			return -ENOMEM;                              \
		b->field = p;                                        \
	} while (0)
	GROW(hosts);
	GROW(nodes);
	GROW(load);
	GROW(instances);
#undef GROW
	b->cap = cap;
	return 0;
}

static int sim_text_grow(sim_records *b, size_t want) {
	size_t size = b->size ? b->size : 4096;
	char *p;

	if (b->len + want <= b->size)
		return 0;
	while (size < b->len + want)
		size *= 2;
	if (!(p = realloc(b->text, size)))
		return -ENOMEM;
	b->text = p;
	b->size = size;
	return 0;
}

/* Appends one value (printf) or a JSON document to the text buffer; its
 * length in *len. The pointers are set once the buffer stops moving. */
_printf_(3, 4) static int sim_text_printf(sim_records *b, size_t *len, const char *fmt, ...) {
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->text ? b->text + b->len : NULL, b->size - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
		if ((size_t) n < b->size - b->len) {
			*len = (size_t) n;
			b->len += (size_t) n;
			return 0;
		}
		if (sim_text_grow(b, (size_t) n + 1) < 0)
			return -ENOMEM;
	}
}

static int sim_text_json(sim_records *b, size_t *len, json_t *j) {
	size_t n;

	if (!j)
		return -ENOMEM;
	for (;;) {
		n = json_dumpb(j, b->text ? b->text + b->len : NULL, b->size - b->len, JSON_COMPACT);
		if (n == 0)
			return -ENOMEM;
		if (n <= b->size - b->len)
			break;
		if (sim_text_grow(b, n) < 0)
			return -ENOMEM;
	}
	*len = n;
	b->len += n;
	return 0;
}

/* scale/hosts/<id> (written anew if it changed) and its instance. */
static int sim_record_host(sim_records *b, sim_fleet *f, size_t i) {
	const scale_host *h = &f->hosts[i];
	sim_side *side = &f->side[i];

	if (!side->record) {
		json_auto_t *j = scale_host_to_json(h);
		side->record = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (!side->record)
			return -ENOMEM;
		side->record_len = strlen(side->record);
	}
	b->hosts[i] = (scale_kv) { .id = h->id, .value = side->record, .len = side->record_len };
	b->instances[i] = (scale_instance) { .id = h->id, .instance_type = h->instance_type,
					     .availability_zone = h->availability_zone, .pool = h->pool,
					     .spot = h->market == SCALE_SPOT, .stopped = h->state == SCALE_STOPPED,
					     .launch_time = h->launch_time };
	return 0;
}

/* Points every value into the text buffer, in the order written. */
static void sim_records_fix(sim_records *b, const sim_fleet *f) {
	const char *p = b->text;
	size_t k = 0;

	for (size_t i = 0; i < f->n; i++) {
		if (!f->hosts[i].node_id)
			continue;
		b->nodes[k].value = p;
		p += b->nodes[k].len;
		b->load[k].value = p;
		p += b->load[k].len;
		k++;
	}
	b->queue.value = p;
	p += b->queue.len;
	b->r.state = p;
}

static int sim_records_build(sim_records *b, sim_fleet *f, const scale_pool_state *st, int queue, time_t now,
			     int capacity) {
	json_auto_t *state = NULL;
	size_t k = 0;
	int r;

	if ((r = sim_records_reserve(b, f->n)) < 0)
		return r;
	b->len = 0;
	for (size_t i = 0; i < f->n; i++) {
		const scale_host *h = &f->hosts[i];
		if ((r = sim_record_host(b, f, i)) < 0)
			return r;
		if (!h->node_id)
			continue;
		b->nodes[k] = (scale_kv) { .id = h->node_id };
		b->load[k] = (scale_kv) { .id = h->node_id };
		if ((r = sim_text_printf(b, &b->nodes[k].len, "{\"instance_id\":\"%s\"}", h->id)) < 0 ||
		    (r = sim_text_printf(b, &b->load[k].len, "{\"jobs\":%d,\"capacity\":%d,\"memory\":%.17g}", h->jobs,
					 capacity, h->memory_used)) < 0)
			return r;
		k++;
	}
	b->queue = (scale_kv) { .id = st->pool };
	if ((r = sim_text_printf(b, &b->queue.len, "%d", queue)) < 0)
		return r;
	state = scale_state_to_json(st, 1);
	if ((r = sim_text_json(b, &b->r.state_len, state)) < 0)
		return r;
	sim_records_fix(b, f);
	b->r.now = now;
	b->r.hosts = b->hosts;
	b->r.n_hosts = f->n;
	b->r.nodes = b->nodes;
	b->r.load = b->load;
	b->r.n_nodes = b->r.n_load = k;
	b->r.queues = &b->queue;
	b->r.n_queues = 1;
	b->r.instances = b->instances;
	b->r.n_instances = f->n;
	return 0;
}

/* A stop: the running bill ends, the stopped one begins; the host's node
 * goes with its corrald. A start: the stopped bill ends, a new running
 * period begins (EC2's launch time is the last start, and the record says
 * so), the node registers after the warm start delay. */
static void sim_stop_start(sim_fleet *f, scale_host *h, bool stop, time_t now, const scale_sim_settings *s,
			  scale_billing billing, scale_sim_result *res) {
	size_t i = (size_t) (h - f->hosts);

	if ((h->state == SCALE_STOPPED) == stop)
		return;         /* already so: nothing happens in EC2 either */
	sim_close_period(f, i, now, s, billing, res);
	if (stop) {
		h->state = SCALE_STOPPED;
		free(h->node_id);
		h->node_id = NULL;
		h->jobs = 0;
		h->memory_used = 0;
		f->side[i].stopped_since = now;
		res->stops++;
	} else {
		h->state = SCALE_LAUNCHING;
		h->warm = false;
		h->launch_time = now;
		f->side[i].stopped_since = 0;
		f->side[i].ready_at = now + s->warm_start_delay;
		res->starts++;
	}
}

/* Step 4: the decision's actions carried out. Terminated hosts only change
 * state here: the actions point at their ids. 0 or -ENOMEM. */
static int sim_apply(sim_fleet *f, const scale_output *out, time_t now, const scale_sim_settings *s,
		     scale_billing billing, scale_sim_result *res) {
	int r = 0;
	for (size_t i = 0; i < out->n_actions && r >= 0; i++) {
		const scale_action *a = &out->actions[i];
		scale_host *h;

		if (a->kind == SCALE_ACTION_LAUNCH) {
			for (int j = 0; j < a->count && r >= 0; j++)
				r = sim_launch(f, a, now, s);
			res->launches += a->count;
			continue;
		}
		h = sim_find(f, a->id);
		if (!h)
			continue;
		if (a->kind == SCALE_ACTION_STOP || a->kind == SCALE_ACTION_START)
			sim_stop_start(f, h, a->kind == SCALE_ACTION_STOP, now, s, billing, res);
		else
			h->state = a->kind == SCALE_ACTION_TERMINATE ? SCALE_TERMINATED : a->to;
		h->state_since = now;
		sim_changed(f, h);
		res->terminations += a->kind == SCALE_ACTION_TERMINATE;
	}
	return r;
}

/* The leader's default; no record here ever lacks its instance. */
#define SIM_LAUNCH_GRACE 300

/* The pool's load history as the leader keeps it: the text of
 * scale/load_history/<pool> for the next step's records. */
typedef struct sim_history {
	char *text;
	scale_kv kv;
} sim_history;

static void sim_history_done(sim_history *x) {
	free(x->text);
}

/* Step 5: the history's new text, where the leader would put it into
 * etcd (scale_history_record(), the leader's own update). */
static int sim_history_put(void *userdata, const char *pool, char *text) {
	sim_history *x = userdata;

	free(x->text);
	x->text = text;
	x->kv = (scale_kv) { .id = pool, .value = text, .len = strlen(text) };
	return 0;
}

/* Steps 3 to 5: observe the records, decide as the leader would, carry
 * the actions out, keep the state (and the load history) the leader would
 * store; the desired host count in *desired. */
static int sim_decide(sim_records *b, sim_fleet *f, scale_pool_state *st, sim_history *hist, const scale_pool *pool,
		      time_t now, const scale_sim_settings *s, scale_sim_result *res, int *desired) {
	_cleanup_(scale_observed_done) scale_observed obs = {};
	_cleanup_(scale_output_done) scale_output out = {};
	int r;

	if (s->edit_records)
		s->edit_records(&b->r, s->edit_data);
	if ((r = scale_observe(&b->r, &obs)) < 0 || (r = scale_decide(&obs.input, &out)) < 0)
		return r;
	if (s->edit_output && (r = s->edit_output(&out, now, s->edit_data)) < 0)
		return r;
	if ((r = sim_apply(f, &out, now, s, pool->billing, res)) < 0)
		return r;
	*desired = out.n_metrics == 1 ? out.metrics[0].desired_hosts : 0;
	if (out.n_state == 1) {
		char *name = st->pool;  /* the pool's own name, not the output's */
		*st = out.state[0];
		st->pool = name;
	}
	return scale_history_record(&b->r, &out, now, sim_history_put, hist);
}

/* The step's row for on_step. The cost is summed in the order the end of
 * the run bills (last host first, then the reservation), so the last
 * step's equals the run's cost to the bit. */
static int sim_step_report(const sim_fleet *f, const scale_sim_row *row, long t, long t0, int desired,
			   const scale_sim_settings *s, scale_billing billing, const scale_sim_result *res) {
	scale_sim_step st = { .policy = res->name, .t = t, .running = row->running, .queued = row->queued,
			      .desired = desired, .cost = res->cost };
	time_t until = s->start + t + s->step;
	double hours;

	for (size_t i = f->n; i-- > 0;) {
		st.hosts[f->hosts[i].state]++;
		st.cost += sim_period_bill(f, i, until, s, billing, &hours);
	}
	st.cost += s->reserved * ((double) (t + s->step - t0) / 3600) * s->price_reserved;
	return s->on_step(&st, s->step_data);
}

int scale_sim_run(const scale_sim_trace *tr, const scale_pool *pool, const scale_sim_settings *s,
		  scale_sim_result *res) {
	_cleanup_(sim_fleet_done) sim_fleet f = {};
	_cleanup_(sim_records_done) sim_records b = {};
	_cleanup_(sim_history_done) sim_history hist = {};
	_cleanup_free_ scale_price *prices = NULL;
	const scale_sim_row *rows = tr->rows;
	scale_policy pol = { .pools = (scale_pool *) pool, .n_pools = 1 };
	scale_pool_state st = { .pool = pool->name };
	scale_reservation resv = { .instance_type = pool->instance_types[0], .count = s->reserved };
	size_t n_prices = 0, row = 0;
	long t;
	int r, desired = 0;

	if ((r = sim_prices(pool, s, &prices, &n_prices)) < 0)
		return r;
	b.r = (scale_records) {
		.cluster = "sim", .launch_grace = SIM_LAUNCH_GRACE, .policy = &pol, .have_instances = true,
		.prices = prices, .n_prices = n_prices, .reservations = &resv, .n_reservations = s->reserved > 0,
	};
	for (t = rows[0].t; t <= rows[tr->n - 1].t; t += s->step) {
		time_t now = s->start + t;

		while (row + 1 < tr->n && rows[row + 1].t <= t)
			row++;
		long ready = sim_register(&f, now);
		if (ready < 0)
			return (int) ready;
		int queue = (int) sim_place_jobs(&f, &rows[row], ready, s, res);
		if ((r = sim_records_build(&b, &f, &st, queue, now, s->host_capacity)) < 0)
			return r;
		b.r.load_history = hist.text ? &hist.kv : NULL;
		b.r.n_load_history = hist.text != NULL;
		if ((r = sim_decide(&b, &f, &st, &hist, pool, now, s, res, &desired)) < 0)
			return r;
		for (size_t i = f.n; i-- > 0;)
			if (f.hosts[i].state == SCALE_TERMINATED)
				sim_end_host(&f, i, now, s, pool->billing, res);
		if ((int) f.n > res->peak_hosts)
			res->peak_hosts = (int) f.n;
		if (s->on_step &&
		    (r = sim_step_report(&f, &rows[row], t, rows[0].t, desired, s, pool->billing, res)) < 0)
			return r;
	}
	time_t end = s->start + t;
	while (f.n > 0)
		sim_end_host(&f, f.n - 1, end, s, pool->billing, res);
	double hours = (double) (t - rows[0].t) / 3600;
	res->cost += s->reserved * hours * s->price_reserved;
	res->churn = res->launches + res->terminations + res->starts + res->stops;
	return 0;
}
