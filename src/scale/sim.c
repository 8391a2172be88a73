/* sim.c — `scale simulate`'s engine: a load trace replayed against a
 * simulated cloud that registers launched hosts after a delay, places the
 * trace's jobs on ready hosts and bills every host until it is terminated;
 * each step the cloud is written as the records the leader reads and goes
 * through scale_observe() and scale_decide(), as in the leader
 * (include/scale-sim.h has the rules). Pure apart from reading the trace
 * file; the CLI parses the arguments and prints the report. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale-observe.h"
#include "scale-sim.h"

const char scale_sim_default_policy[] =
	"{\"pools\": {\"sim\": {\"launch_template\": \"lt-sim\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"markets\": [\"reserved\", \"on-demand\"], \"min\": 0, \"max\": 500, \"jobs_per_host\": 4}}}";

void scale_sim_settings_defaults(scale_sim_settings *s) {
	*s = (scale_sim_settings) { .launch_delay = 120, .step = 60, .price_on_demand = 0.096, .price_spot = 0.035,
				    .price_reserved = 0.060, .host_capacity = 4 };
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
	double covered;         /* seconds a reservation covered */
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

/* Bills host i up to `end` into res and forgets it. */
static void sim_end_host(sim_fleet *f, size_t i, time_t end, const scale_sim_settings *s, scale_billing billing,
			 scale_sim_result *res) {
	scale_host *h = &f->hosts[i];
	long uptime = (long) (end - h->launch_time);
	double price = h->market == SCALE_SPOT ? s->price_spot : s->price_on_demand;

	res->instance_hours += (double) uptime / 3600;
	res->cost += sim_bill(billing, uptime, f->side[i].covered, price);
	scale_host_done(h);
	free(f->side[i].record);
	memmove(h, h + 1, (f->n - i - 1) * sizeof *h);
	memmove(&f->side[i], &f->side[i + 1], (f->n - i - 1) * sizeof *f->side);
	f->n--;
}

static int sim_launch(sim_fleet *f, const scale_action *a, time_t now, int capacity) {
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
	f->side[f->n++] = (sim_side) {};
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
static long sim_register(sim_fleet *f, time_t now, const scale_sim_settings *s) {
	long ready = 0;
	for (size_t i = 0; i < f->n; i++) {
		scale_host *h = &f->hosts[i];
		if (!h->node_id && now >= h->launch_time + s->launch_delay) {
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
		if (f->hosts[i].market == SCALE_ON_DEMAND) {
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
					     .spot = h->market == SCALE_SPOT, .launch_time = h->launch_time };
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
	state = json_pack("{s:{s:I,s:I,s:I}}", st->pool, "last_scale_in", (json_int_t) st->last_scale_in,
			  "surplus_since", (json_int_t) st->surplus_since, "launch_seq", (json_int_t) st->launch_seq);
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

/* Step 4: the decision's actions carried out. Terminated hosts only change
 * state here: the actions point at their ids. 0 or -ENOMEM. */
static int sim_apply(sim_fleet *f, const scale_output *out, time_t now, const scale_sim_settings *s,
		     scale_sim_result *res) {
	int r = 0;
	for (size_t i = 0; i < out->n_actions && r >= 0; i++) {
		const scale_action *a = &out->actions[i];
		scale_host *h;

		if (a->kind == SCALE_ACTION_LAUNCH) {
			for (int j = 0; j < a->count && r >= 0; j++)
				r = sim_launch(f, a, now, s->host_capacity);
			res->launches += a->count;
			continue;
		}
		h = sim_find(f, a->id);
		if (!h)
			continue;
		h->state = a->kind == SCALE_ACTION_TERMINATE ? SCALE_TERMINATED : a->to;
		h->state_since = now;
		sim_changed(f, h);
		res->terminations += a->kind == SCALE_ACTION_TERMINATE;
	}
	return r;
}

/* Epoch of the simulated clock: fixed (determinism) and > 0 (the engine
 * takes now <= 0 as an error). */
#define SIM_EPOCH ((time_t) 1700000000)
/* The leader's default; no record here ever lacks its instance. */
#define SIM_LAUNCH_GRACE 300

/* Steps 3 and 4: observe the records, decide as the leader would, carry
 * the actions out and keep the state the leader would store; the desired
 * host count in *desired. */
static int sim_decide(sim_records *b, sim_fleet *f, scale_pool_state *st, time_t now, const scale_sim_settings *s,
		      scale_sim_result *res, int *desired) {
	_cleanup_(scale_observed_done) scale_observed obs = {};
	_cleanup_(scale_output_done) scale_output out = {};
	int r;

	if (s->edit_records)
		s->edit_records(&b->r, s->edit_data);
	if ((r = scale_observe(&b->r, &obs)) < 0 || (r = scale_decide(&obs.input, &out)) < 0)
		return r;
	r = sim_apply(f, &out, now, s, res);
	*desired = out.n_metrics == 1 ? out.metrics[0].desired_hosts : 0;
	if (out.n_state == 1) {
		st->last_scale_in = out.state[0].last_scale_in;
		st->surplus_since = out.state[0].surplus_since;
		st->launch_seq = out.state[0].launch_seq;
	}
	return r;
}

/* The step's row for on_step. The cost is summed in the order the end of
 * the run bills (last host first, then the reservation), so the last
 * step's equals the run's cost to the bit. */
static int sim_step_report(const sim_fleet *f, const scale_sim_row *row, long t, long t0, int desired,
			   const scale_sim_settings *s, scale_billing billing, const scale_sim_result *res) {
	scale_sim_step st = { .policy = res->name, .t = t, .running = row->running, .queued = row->queued,
			      .desired = desired, .cost = res->cost };
	time_t until = SIM_EPOCH + t + s->step;

	for (size_t i = f->n; i-- > 0;) {
		const scale_host *h = &f->hosts[i];
		st.hosts[h->state]++;
		st.cost += sim_bill(billing, (long) (until - h->launch_time), f->side[i].covered,
				    h->market == SCALE_SPOT ? s->price_spot : s->price_on_demand);
	}
	st.cost += s->reserved * ((double) (t + s->step - t0) / 3600) * s->price_reserved;
	return s->on_step(&st, s->step_data);
}

int scale_sim_run(const scale_sim_trace *tr, const scale_pool *pool, const scale_sim_settings *s,
		  scale_sim_result *res) {
	_cleanup_(sim_fleet_done) sim_fleet f = {};
	_cleanup_(sim_records_done) sim_records b = {};
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
		time_t now = SIM_EPOCH + t;

		while (row + 1 < tr->n && rows[row + 1].t <= t)
			row++;
		long ready = sim_register(&f, now, s);
		if (ready < 0)
			return (int) ready;
		int queue = (int) sim_place_jobs(&f, &rows[row], ready, s, res);
		if ((r = sim_records_build(&b, &f, &st, queue, now, s->host_capacity)) < 0 ||
		    (r = sim_decide(&b, &f, &st, now, s, res, &desired)) < 0)
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
	time_t end = SIM_EPOCH + t;
	while (f.n > 0)
		sim_end_host(&f, f.n - 1, end, s, pool->billing, res);
	double hours = (double) (t - rows[0].t) / 3600;
	res->cost += s->reserved * hours * s->price_reserved;
	return 0;
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
