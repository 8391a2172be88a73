/* json.c — the decision's names and its output as text: the enums' names
 * as JSON and plans spell them ("launching", "on-demand", "jobs",
 * "per-second", "drain"), the output as JSON (actions, metrics, state) and
 * the dry-run plan a person reads. The decision itself (scale.c) needs
 * none of this: it works on the enums. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "scale.h"

/* ---- names -------------------------------------------------------------------------- */

static const char *const state_names[_SCALE_STATE_MAX] = {
	[SCALE_LAUNCHING] = "launching", [SCALE_READY] = "ready",
	[SCALE_DRAINING] = "draining",   [SCALE_UNHEALTHY] = "unhealthy",
	[SCALE_TERMINATING] = "terminating", [SCALE_TERMINATED] = "terminated",
	[SCALE_STOPPED] = "stopped",
};
static const char *const market_names[_SCALE_MARKET_MAX] = {
	[SCALE_ON_DEMAND] = "on-demand", [SCALE_SPOT] = "spot",
};
static const char *const kind_names[_SCALE_POLICY_MAX] = {
	[SCALE_POLICY_JOBS] = "jobs", [SCALE_POLICY_QUEUE] = "queue",
	[SCALE_POLICY_THRESHOLD] = "threshold", [SCALE_POLICY_FIXED] = "fixed",
	[SCALE_POLICY_DEMAND] = "demand",
};
static const char *const billing_names[_SCALE_BILLING_MAX] = {
	[SCALE_BILLING_PER_SECOND] = "per-second", [SCALE_BILLING_HOURLY] = "hourly",
};
static const char *const action_names[_SCALE_ACTION_MAX] = {
	[SCALE_ACTION_TRANSITION] = "transition", [SCALE_ACTION_TERMINATE] = "terminate",
	[SCALE_ACTION_DRAIN] = "drain", [SCALE_ACTION_UNDRAIN] = "undrain",
	[SCALE_ACTION_LAUNCH] = "launch", [SCALE_ACTION_STOP] = "stop", [SCALE_ACTION_START] = "start",
};

NAMES_FUNCS(scale_state, scale_state, state_names)
NAMES_FUNCS(scale_market, scale_market, market_names)
NAMES_FUNCS(scale_kind, scale_kind, kind_names)
NAMES_FUNCS(scale_billing, scale_billing, billing_names)

const char *scale_action_kind_to_string(scale_action_kind k) {
	return names_to_string(action_names, ELEMENTSOF(action_names), (int) k);
}

/* ---- JSON and the plan -------------------------------------------------------------- */

static int set_new(json_t *o, const char *k, json_t *v) {
	return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *str_or_null(const char *s) {
	return s ? json_string(s) : json_null();
}

json_t *scale_actions_to_json(const scale_output *out) {
	json_auto_t *arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < out->n_actions; i++) {
		const scale_action *a = &out->actions[i];
		json_auto_t *o = json_object();
		int bad = !o;
		bad = bad || set_new(o, "action", json_string(scale_action_kind_to_string(a->kind)));
		bad = bad || set_new(o, "pool", str_or_null(a->pool));
		if (a->kind == SCALE_ACTION_LAUNCH) {
			bad = bad || set_new(o, "launch_template", str_or_null(a->launch_template));
			bad = bad || set_new(o, "instance_type", str_or_null(a->instance_type));
			bad = bad || set_new(o, "market", json_string(scale_market_to_string(a->market)));
			bad = bad || set_new(o, "reserved", json_boolean(a->reserved));
			bad = bad || set_new(o, "subnet", str_or_null(a->subnet));
			bad = bad || set_new(o, "availability_zone", str_or_null(a->availability_zone));
			bad = bad || set_new(o, "count", json_integer(a->count));
			bad = bad || set_new(o, "client_token", json_string(a->client_token));
			if (a->warm)
				bad = bad || set_new(o, "warm", json_true());
		} else {
			bad = bad || set_new(o, "id", str_or_null(a->id));
			bad = bad || set_new(o, "from", json_string(scale_state_to_string(a->from)));
			bad = bad || set_new(o, "to", json_string(scale_state_to_string(a->to)));
		}
		bad = bad || set_new(o, "why", str_or_null(a->why));
		if (bad || json_array_append(arr, o) < 0)
			return NULL;
	}
	return TAKE_PTR(arr);
}

json_t *scale_metrics_to_json(const scale_output *out) {
	json_auto_t *all = json_object();
	if (!all)
		return NULL;
	for (size_t i = 0; i < out->n_metrics; i++) {
		const scale_metrics *m = &out->metrics[i];
		json_auto_t *o = json_object(), *hosts = json_object();
		int bad = !o || !hosts;
		for (int s = 0; s < _SCALE_STATE_MAX && !bad; s++)
			bad = set_new(hosts, scale_state_to_string(s), json_integer(m->hosts[s]));
		bad = bad || json_object_set(o, "hosts", hosts);
#define I(k) bad = bad || set_new(o, #k, json_integer(m->k))
		I(hosts_held);
		I(hosts_in_rollout);
		I(replacing);
		I(replaced);
		I(hosts_covered);
		I(jobs);
		I(jobs_unhealthy);
		I(job_capacity);
		I(jobs_per_host);
		I(queue);
		I(policy_hosts);
		I(desired_hosts);
		I(ready);
		I(launching);
		I(surplus);
		I(deficit);
		I(drained);
		I(undrained);
		I(launched);
		I(terminated);
		I(transitions);
		I(unplaced);
		I(started);
		I(stopped);
		I(warm_launching);
		I(forecast);
		I(schedule_min);
#undef I
		bad = bad || set_new(o, "desired_capacity", json_real(m->desired_capacity));
		bad = bad || set_new(o, "enabled", json_boolean(m->enabled));
		bad = bad || set_new(o, "note", str_or_null(m->note));
		if (bad || json_object_set(all, m->pool, o) < 0)
			return NULL;
	}
	return TAKE_PTR(all);
}

json_t *scale_state_to_json(const scale_pool_state *st, size_t n) {
	json_auto_t *j = json_object();
	if (!j)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const scale_pool_state *s = &st[i];
		if (set_new(j, s->pool,
			    json_pack("{s:I, s:I, s:I, s:I, s:i}", "last_scale_in", (json_int_t) s->last_scale_in,
				      "surplus_since", (json_int_t) s->surplus_since, "launch_seq",
				      (json_int_t) s->launch_seq, "last_warm_start", (json_int_t) s->last_warm_start,
				      "surplus_want", s->surplus_want)))
			return NULL;
	}
	return TAKE_PTR(j);
}

json_t *scale_output_to_json(const scale_output *out) {
	json_auto_t *o = json_object();
	if (!o || set_new(o, "actions", scale_actions_to_json(out)) ||
	    set_new(o, "metrics", scale_metrics_to_json(out)) ||
	    set_new(o, "state", scale_state_to_json(out->state, out->n_state)))
		return NULL;
	return TAKE_PTR(o);
}

typedef struct buf {
	char *p;
	size_t n, cap;
	bool oom;
} buf;

_printf_(2, 3) static void bprintf(buf *b, const char *fmt, ...) {
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->n + (size_t) k < b->cap) {
			b->n += k;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 1024) + k;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

char *scale_plan_format(const scale_output *out) {
	buf b = { 0 };

	for (size_t i = 0; i < out->n_metrics; i++) {
		const scale_metrics *m = &out->metrics[i];
		bprintf(&b, "pool %s: %d launching, %d ready, %d draining, %d unhealthy, %d terminating; "
			    "jobs %d (%d on unhealthy), queue %d; desired %d hosts",
			m->pool, m->hosts[SCALE_LAUNCHING], m->hosts[SCALE_READY], m->hosts[SCALE_DRAINING],
			m->hosts[SCALE_UNHEALTHY], m->hosts[SCALE_TERMINATING], m->jobs, m->jobs_unhealthy, m->queue,
			m->desired_hosts);
		if (m->desired_capacity > 0)
			bprintf(&b, " (%.2f job slots)", m->desired_capacity);
		if (m->hosts_in_rollout > 0)
			bprintf(&b, "; %d in rollout (not drained)", m->hosts_in_rollout);
		if (m->replacing > 0)
			bprintf(&b, "; %d being replaced", m->replacing);
		if (m->hosts[SCALE_STOPPED] > 0 || m->warm_launching > 0)
			bprintf(&b, "; warm pool %d stopped, %d launching", m->hosts[SCALE_STOPPED], m->warm_launching);
		if (m->forecast >= 0)
			bprintf(&b, "; forecast %d jobs", m->forecast);
		if (m->schedule_min > 0)
			bprintf(&b, "; schedule min %d", m->schedule_min);
		if (m->note)
			bprintf(&b, " [%s]", m->note);
		bprintf(&b, "\n");
		for (size_t k = 0; k < out->n_actions; k++) {
			const scale_action *a = &out->actions[k];
			if (!streq_ptr(a->pool, m->pool))
				continue;
			switch (a->kind) {
			case SCALE_ACTION_LAUNCH:
				bprintf(&b, "  launch %d x %s %s%s%s in %s (%s), token %s: %s\n", a->count,
					a->instance_type ?: "?", scale_market_to_string(a->market),
					a->reserved ? " (reserved)" : "", a->warm ? " (warm)" : "", a->subnet ?: "?", a->availability_zone ?: "-",
					a->client_token, a->why ?: "");
				break;
			case SCALE_ACTION_TRANSITION:
				bprintf(&b, "  mark %s %s -> %s: %s\n", a->id, scale_state_to_string(a->from),
					scale_state_to_string(a->to), a->why ?: "");
				break;
			default:
				bprintf(&b, "  %s %s (%s -> %s): %s\n", scale_action_kind_to_string(a->kind), a->id,
					scale_state_to_string(a->from), scale_state_to_string(a->to), a->why ?: "");
				break;
			}
		}
	}
	if (out->n_actions == 0)
		bprintf(&b, "no changes\n");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}
