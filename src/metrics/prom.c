/* prom.c — the Prometheus text exposition writer (metrics.h): names
 * checked, escapes applied, HELP/TYPE once per family, values spelled the
 * way Prometheus parses them; and the leader's scale/metrics document
 * turned into corral_scale_* families. Pure: no I/O. */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>

#include "metrics.h"
#include "scale-report.h"

static const char *const type_names[_METRICS_TYPE_MAX] = {
	[METRICS_COUNTER] = "counter",
	[METRICS_GAUGE] = "gauge",
	[METRICS_UNTYPED] = "untyped",
};

const char *metrics_type_to_string(metrics_type t) {
	return t >= 0 && t < _METRICS_TYPE_MAX ? type_names[t] : NULL;
}

static bool is_alpha_(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
	return c >= '0' && c <= '9';
}

bool metrics_name_valid(const char *name) {
	if (!name || !*name || !(is_alpha_(name[0]) || name[0] == ':'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
			return false;
	return true;
}

bool metrics_label_name_valid(const char *name) {
	if (!name || !*name || !is_alpha_(name[0]) || strncmp(name, "__", 2) == 0)
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return false;
	return true;
}

static int fail(metrics_buf *b, int error) {
	if (!b->error)
		b->error = error;
	return b->error;
}

static int reserve(metrics_buf *b, size_t more) {
	if (b->error)
		return b->error;
	/* +1: the NUL that keeps data a string at every step. */
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return fail(b, -ENOMEM);
	b->data = p;
	b->cap = cap;
	return 0;
}

static int append(metrics_buf *b, const char *s, size_t n) {
	int r = reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int append_str(metrics_buf *b, const char *s) {
	return append(b, s, strlen(s));
}

int metrics_append_escaped(metrics_buf *b, const char *s, bool help) {
	const char *run = s;

	if (b->error)
		return b->error;
	for (const char *p = s; *p; p++) {
		const char *esc = NULL;
		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p == '"' && !help)
			esc = "\\\"";
		if (!esc)
			continue;
		append(b, run, (size_t) (p - run));
		append_str(b, esc);
		run = p + 1;
	}
	return append_str(b, run);
}

const char *metrics_format_value(double v, char *buf, size_t size) {
	if (isnan(v))
		snprintf(buf, size, "NaN");
	else if (isinf(v))
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == 0)
		snprintf(buf, size, "0");      /* -0 too: a scrape gains nothing from the sign */
	else if (v == trunc(v) && fabs(v) < 9007199254740992.0)
		/* Exactly an integer that a double holds without loss (< 2^53):
		 * counters and counts read as integers. */
		snprintf(buf, size, "%.0f", v);
	else {
		/* The shortest of 15 or 17 significant digits that reads back
		 * the same: 0.1 stays "0.1", not "0.10000000000000001". */
		snprintf(buf, size, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, size, "%.17g", v);
	}
	return buf;
}

static bool declared(const metrics_buf *b, const char *name) {
	for (size_t i = 0; i < b->n_families; i++)
		if (streq(b->families[i], name))
			return true;
	return false;
}

int metrics_family(metrics_buf *b, const char *name, metrics_type type, const char *help) {
	const char *tn = metrics_type_to_string(type);

	if (b->error)
		return b->error;
	if (!metrics_name_valid(name) || !tn)
		return fail(b, -EINVAL);
	if (b->current && streq(b->current, name))
		return 0;
	if (declared(b, name))
		return fail(b, -EINVAL);

	char **v = realloc(b->families, (b->n_families + 1) * sizeof *v);
	if (!v)
		return fail(b, -ENOMEM);
	b->families = v;
	v[b->n_families] = strdup(name);
	if (!v[b->n_families])
		return fail(b, -ENOMEM);
	b->current = v[b->n_families++];

	append_str(b, "# HELP ");
	append_str(b, name);
	append_str(b, " ");
	metrics_append_escaped(b, help ?: "", true);
	append_str(b, "\n# TYPE ");
	append_str(b, name);
	append_str(b, " ");
	append_str(b, tn);
	return append_str(b, "\n");
}

int metrics_sample(metrics_buf *b, const char *name, const char *const *labels, double value) {
	char num[64];

	if (b->error)
		return b->error;
	if (!name || !b->current || !streq(b->current, name))
		return fail(b, -EINVAL);
	for (size_t i = 0; labels && labels[i]; i += 2)
		if (!metrics_label_name_valid(labels[i]) || !labels[i + 1])
			return fail(b, -EINVAL);

	append_str(b, name);
	if (labels && labels[0]) {
		append_str(b, "{");
		for (size_t i = 0; labels[i]; i += 2) {
			if (i > 0)
				append_str(b, ",");
			append_str(b, labels[i]);
			append_str(b, "=\"");
			metrics_append_escaped(b, labels[i + 1], false);
			append_str(b, "\"");
		}
		append_str(b, "}");
	}
	append_str(b, " ");
	append_str(b, metrics_format_value(value, num, sizeof num));
	return append_str(b, "\n");
}

static int family_sample(metrics_buf *b, const char *name, metrics_type type, const char *help,
			 const char *const *labels, double value) {
	int r = metrics_family(b, name, type, help);
	if (r < 0)
		return r;
	return metrics_sample(b, name, labels, value);
}

int metrics_gauge(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value) {
	return family_sample(b, name, METRICS_GAUGE, help, labels, value);
}

int metrics_counter(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value) {
	return family_sample(b, name, METRICS_COUNTER, help, labels, value);
}

void metrics_buf_done(metrics_buf *b) {
	free(b->data);
	for (size_t i = 0; i < b->n_families; i++)
		free(b->families[i]);
	free(b->families);
	*b = (metrics_buf){};
}

int metrics_buf_take(metrics_buf *b, char **out, size_t *len) {
	int r = b->error;

	if (r >= 0 && !b->data)
		r = reserve(b, 0) < 0 ? b->error : 0;
	if (r >= 0 && b->data)
		b->data[b->len] = '\0';
	if (r < 0) {
		metrics_buf_done(b);
		return r;
	}
	if (len)
		*len = b->len;
	*out = TAKE_PTR(b->data);
	metrics_buf_done(b);
	return 0;
}

/* ---- the leader's scaling metrics ------------------------------------------ */

/* Per pool: metric name, HELP, and where the decision keeps the value. */
#define F(f) offsetof(scale_metrics, f)
static const struct {
	const char *name, *help;
	size_t offset;
	char type;              /* 'i' int, 'd' double, 'b' bool */
} pool_fields[] = {
	{ "corral_scale_jobs", "Jobs running on the pool's hosts (load records), last decision.", F(jobs), 'i' },
	{ "corral_scale_jobs_unhealthy", "Of those, jobs on unhealthy hosts.", F(jobs_unhealthy), 'i' },
	{ "corral_scale_job_capacity", "Job slots the pool's hosts report.", F(job_capacity), 'i' },
	{ "corral_scale_jobs_per_host", "The policy's jobs per host.", F(jobs_per_host), 'i' },
	{ "corral_scale_queue", "Queue length the decision saw (queue policy).", F(queue), 'i' },
	{ "corral_scale_policy_hosts", "Hosts the policy alone asks for, before min/max.", F(policy_hosts), 'i' },
	{ "corral_scale_desired_hosts", "Hosts the decision wants.", F(desired_hosts), 'i' },
	{ "corral_scale_desired_capacity", "Job slots the decision wants.", F(desired_capacity), 'd' },
	{ "corral_scale_ready", "Hosts counted ready by the decision.", F(ready), 'i' },
	{ "corral_scale_launching", "Hosts counted launching by the decision.", F(launching), 'i' },
	{ "corral_scale_surplus", "Hosts more than desired.", F(surplus), 'i' },
	{ "corral_scale_deficit", "Hosts fewer than desired.", F(deficit), 'i' },
	{ "corral_scale_hosts_held", "Hosts held (holds/) and so never drained or terminated.", F(hosts_held), 'i' },
	{ "corral_scale_hosts_in_rollout", "Hosts whose node a rollout has in flight: not drained, not surplus.",
	  F(hosts_in_rollout), 'i' },
	{ "corral_scale_hosts_replacing", "Old hosts a machine image rollout is replacing now.", F(replacing), 'i' },
	{ "corral_scale_decision_replaced", "Replacements the last decision launched (replace by relaunch).",
	  F(replaced), 'i' },
	{ "corral_scale_hosts_covered", "Hosts covered by reserved instances.", F(hosts_covered), 'i' },
	{ "corral_scale_decision_launched", "Instances the last decision launched.", F(launched), 'i' },
	{ "corral_scale_decision_terminated", "Hosts the last decision terminated.", F(terminated), 'i' },
	{ "corral_scale_decision_drained", "Hosts the last decision started draining.", F(drained), 'i' },
	{ "corral_scale_decision_undrained", "Draining hosts the last decision took back.", F(undrained), 'i' },
	{ "corral_scale_decision_transitions", "Record state changes in the last decision.", F(transitions), 'i' },
	{ "corral_scale_decision_unplaced", "Launches the last decision wanted but found no place for.", F(unplaced),
	  'i' },
	{ "corral_scale_pool_enabled", "1 when the pool's policy lets it scale.", F(enabled), 'b' },
};
#undef F

static double pool_field(const scale_metrics *m, size_t f) {
	const char *p = (const char *) m + pool_fields[f].offset;

	switch (pool_fields[f].type) {
	case 'd':
		return *(const double *) p;
	case 'b':
		return *(const bool *) p ? 1 : 0;
	default:
		return *(const int *) p;
	}
}

static const scale_action_kind action_kinds[] = { SCALE_ACTION_LAUNCH, SCALE_ACTION_TERMINATE, SCALE_ACTION_DRAIN,
						  SCALE_ACTION_UNDRAIN, SCALE_ACTION_TRANSITION, SCALE_ACTION_STOP,
						  SCALE_ACTION_START };

static void write_pools(metrics_buf *b, const scale_output *out) {
	for (size_t i = 0; i < out->n_metrics; i++)
		for (int st = 0; st < _SCALE_STATE_MAX; st++)
			(void) metrics_gauge(b, "corral_scale_hosts", "Host records per pool and state, last decision.",
					     (const char *const[]){ "pool", out->metrics[i].pool, "state",
								     scale_state_to_string(st), NULL },
					     out->metrics[i].hosts[st]);
	for (size_t f = 0; f < ELEMENTSOF(pool_fields); f++)
		for (size_t i = 0; i < out->n_metrics; i++)
			(void) metrics_gauge(b, pool_fields[f].name, pool_fields[f].help,
					     (const char *const[]){ "pool", out->metrics[i].pool, NULL },
					     pool_field(&out->metrics[i], f));
	for (size_t i = 0; i < out->n_metrics; i++)
		if (out->metrics[i].note)
			(void) metrics_gauge(b, "corral_scale_pool_note_info",
					     "1 for the note the last decision left on a pool (why it did not act).",
					     (const char *const[]){ "pool", out->metrics[i].pool, "note",
								     out->metrics[i].note, NULL },
					     1);

	/* Actions of the last decision by pool and kind; every kind for every
	 * pool, so a series drops to 0 instead of vanishing. */
	for (size_t i = 0; i < out->n_metrics; i++)
		for (size_t k = 0; k < ELEMENTSOF(action_kinds); k++) {
			double n = 0;
			for (size_t j = 0; j < out->n_actions; j++) {
				const scale_action *a = &out->actions[j];
				if (streq_ptr(a->pool, out->metrics[i].pool) && a->kind == action_kinds[k])
					n += a->kind == SCALE_ACTION_LAUNCH ? a->count : 1;
			}
			(void) metrics_gauge(b, "corral_scale_actions", "Actions of the last decision by pool and kind "
					     "(launch counts instances).",
					     (const char *const[]){ "pool", out->metrics[i].pool, "kind",
								     scale_action_kind_to_string(action_kinds[k]), NULL },
					     n);
		}
}

/* What the decision was given. */
static void write_inputs(metrics_buf *b, const scale_records *rec, const scale_observed *o) {
	(void) metrics_gauge(b, "corral_scale_maintenance", "1 while maintenance mode holds every action back.", NULL,
			     rec->maintenance);
	(void) metrics_gauge(b, "corral_scale_stopped", "1 while scale/stop holds scaling back.", NULL, rec->stop);
	(void) metrics_gauge(b, "corral_scale_input_hosts", "Host records the last decision read.", NULL,
			     (double) o->n_hosts);
	(void) metrics_gauge(b, "corral_scale_input_instances", "Cluster instances DescribeInstances returned.", NULL,
			     (double) rec->n_instances);
	(void) metrics_gauge(b, "corral_scale_reservations_error",
			     "1 when reserved instances could not be read (decided without).", NULL,
			     rec->reservations_error ? 1 : 0);
	(void) metrics_gauge(b, "corral_scale_spot_capacity_errors",
			     "Spot capacity errors the last decision took into account.", NULL,
			     (double) rec->n_spot_errors);
	for (size_t i = 0; i < rec->n_prices; i++)
		if (rec->prices[i].instance_type)
			(void) metrics_gauge(b, "corral_scale_spot_price", "Spot price per hour the decision saw.",
					     (const char *const[]){ "instance_type", rec->prices[i].instance_type,
								     "availability_zone",
								     rec->prices[i].availability_zone ?: "", NULL },
					     rec->prices[i].price);
	for (size_t i = 0; i < rec->n_reservations; i++)
		if (rec->reservations[i].instance_type)
			(void) metrics_gauge(b, "corral_scale_reserved_instances",
					     "Active reserved instances the decision saw.",
					     (const char *const[]){ "instance_type", rec->reservations[i].instance_type,
								     "availability_zone",
								     rec->reservations[i].availability_zone ?: "", NULL },
					     rec->reservations[i].count);
}

int metrics_write_scale(metrics_buf *b, const scale_report *r, unsigned cycles, unsigned cycles_failed) {
	(void) metrics_counter(b, "corral_scale_cycles_total", "Scaler cycles completed by this leader's scaler.", NULL,
			       cycles);
	(void) metrics_counter(b, "corral_scale_cycles_failed_total", "Of those, the cycles that ended with an error.",
			       NULL, cycles_failed);
	if (!r)
		return b->error;

	(void) metrics_gauge(b, "corral_scale_last_decision_timestamp_seconds",
			     "When the last decision was taken (Unix time).", NULL, (double) r->time);
	(void) metrics_gauge(b, "corral_scale_last_decision_revision", "The etcd revision the last decision read.",
			     NULL, (double) r->revision);
	(void) metrics_gauge(b, "corral_scale_last_launched_instances",
			     "Instances the last cycle launched (ids in scale/metrics).", NULL, (double) r->n_launched);
	(void) metrics_gauge(b, "corral_scale_last_errors", "Errors the last cycle met (text in scale/metrics).", NULL,
			     (double) r->n_errors);
	write_pools(b, r->out);
	write_inputs(b, r->records, r->observed);

	/* What the consistency pass found and fixed. */
	(void) metrics_gauge(b, "corral_scale_orphans_terminated",
			     "Tagged instances without a record terminated by the last cycle.", NULL,
			     r->observed->orphans);
	(void) metrics_gauge(b, "corral_scale_records_gone",
			     "Records whose instance was gone, marked terminated by the last cycle.", NULL,
			     r->observed->gone);
	(void) metrics_gauge(b, "corral_scale_unrecorded_in_grace",
			     "Unrecorded instances younger than launch_grace (launches in flight).", NULL,
			     r->observed->in_grace);
	for (int st = 0; st < _SCALE_STATE_MAX; st++)
		(void) metrics_gauge(b, "corral_scale_records",
				     "Host records per state after the consistency pass (all pools).",
				     (const char *const[]){ "state", scale_state_to_string(st), NULL },
				     r->records_by_state[st]);
	return b->error;
}
