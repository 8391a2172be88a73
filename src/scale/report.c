/* report.c — a scaling cycle's report (scale-report.h) as the
 * scale/metrics document, the scaler's key=value log lines, the scaling
 * status record and its `corralctl status` line, and the decision
 * history record. Pure. jansson: *_set_new and "o" in json_pack
 * steal the reference. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "macro.h"
#include "scale-report.h"

static json_t *strv_json(const char *const *v, size_t n) {
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0)
			return json_decref(a), NULL;
	return a;
}

static json_t *inputs_json(const scale_report *r) {
	const scale_records *rec = r->records;
	const scale_observed *o = r->observed;
	json_t *q = json_object(), *p = json_array(), *rv = json_array(), *se = json_array();

	for (size_t i = 0; i < o->n_queues; i++)
		json_object_set_new(q, o->queues[i].pool, json_integer(o->queues[i].length));
	for (size_t i = 0; i < rec->n_prices; i++)
		json_array_append_new(p, json_pack("{s:s, s:s?, s:f}", "instance_type", rec->prices[i].instance_type,
						   "availability_zone", rec->prices[i].availability_zone, "price",
						   rec->prices[i].price));
	for (size_t i = 0; i < rec->n_reservations; i++)
		json_array_append_new(rv, json_pack("{s:s, s:s?, s:i}", "instance_type",
						    rec->reservations[i].instance_type, "availability_zone",
						    rec->reservations[i].availability_zone, "count",
						    rec->reservations[i].count));
	for (size_t i = 0; i < rec->n_spot_errors; i++)
		json_array_append_new(se, json_pack("{s:s, s:s}", "pool", rec->spot_errors[i].pool, "instance_type",
						    rec->spot_errors[i].instance_type));
	return json_pack("{s:b, s:b, s:i, s:i, s:o, s:o, s:o, s:s?, s:o}", "maintenance", rec->maintenance, "stop",
			 rec->stop, "hosts", (int) o->n_hosts, "instances", (int) rec->n_instances, "queues", q,
			 "prices", p, "reservations", rv, "reservations_error", rec->reservations_error,
			 "spot_errors", se);
}

static json_t *consistency_json(const scale_report *r) {
	json_t *hosts = json_object();

	for (int i = 0; hosts && i < _SCALE_STATE_MAX; i++)
		json_object_set_new(hosts, scale_state_to_string(i), json_integer(r->records_by_state[i]));
	return json_pack("{s:i, s:i, s:i, s:o}", "orphans_terminated", r->observed->orphans, "records_gone",
			 r->observed->gone, "unrecorded_in_grace", r->observed->in_grace, "hosts", hosts);
}

json_t *scale_report_to_json(const scale_report *r) {
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "time", (json_int_t) r->time, "revision",
			 (json_int_t) r->revision, "pools", scale_metrics_to_json(r->out), "actions",
			 scale_actions_to_json(r->out), "launched", strv_json(r->launched, r->n_launched), "errors",
			 strv_json(r->errors, r->n_errors), "inputs", inputs_json(r), "consistency",
			 consistency_json(r));
}

/* ---- log lines ---- */

static bool needs_quotes(const char *v) {
	if (!*v)
		return true;
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char) *p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* Appends s at *at, never past size - 1. */
static void put(char *buf, size_t size, size_t *at, const char *s, size_t n) {
	for (size_t i = 0; i < n && *at + 1 < size; i++) {
		unsigned char ch = (unsigned char) s[i];
		buf[(*at)++] = ch < 0x20 || ch == 0x7f ? ' ' : (char) ch;
	}
	buf[*at] = '\0';
}

char *scale_log_line(char *buf, size_t size, const char *verb, const char *const *kv) {
	size_t at = 0;

	if (!buf || size == 0)
		return buf;
	buf[0] = '\0';
	put(buf, size, &at, "scale: ", 7);
	put(buf, size, &at, verb, strlen(verb));
	for (size_t i = 0; kv && kv[i]; i += 2) {
		const char *v = kv[i + 1];
		if (!v)
			continue;
		put(buf, size, &at, " ", 1);
		put(buf, size, &at, kv[i], strlen(kv[i]));
		put(buf, size, &at, "=", 1);
		if (!needs_quotes(v)) {
			put(buf, size, &at, v, strlen(v));
			continue;
		}
		put(buf, size, &at, "\"", 1);
		for (const char *p = v; *p; p++) {
			if (*p == '"' || *p == '\\')
				put(buf, size, &at, "\\", 1);
			put(buf, size, &at, p, 1);
		}
		put(buf, size, &at, "\"", 1);
	}
	return buf;
}

char *scale_decision_line(const scale_output *out, size_t i, bool with_load, char *buf, size_t size) {
	const scale_metrics *m = &out->metrics[i];
	int n[_SCALE_ACTION_MAX] = { 0 };
	char v[20][16];
	size_t k = 0;

	for (size_t j = 0; j < out->n_actions; j++)
		if (streq_ptr(out->actions[j].pool, m->pool) && out->actions[j].kind < _SCALE_ACTION_MAX)
			n[out->actions[j].kind] += out->actions[j].kind == SCALE_ACTION_LAUNCH ? out->actions[j].count : 1;
#define V(x) (snprintf(v[k], sizeof v[k], "%d", (x)), v[k++])
	const char *const kv[] = {
		"pool", m->pool,
		"desired", V(m->desired_hosts),
		"ready", V(m->hosts[SCALE_READY]),
		"launching", V(m->hosts[SCALE_LAUNCHING]),
		"draining", V(m->hosts[SCALE_DRAINING]),
		"unhealthy", V(m->hosts[SCALE_UNHEALTHY]),
		"terminating", V(m->hosts[SCALE_TERMINATING]),
		"held", V(m->hosts_held),
		/* the warm pool's, only when it has any (issue 17) */
		"stopped", m->hosts[SCALE_STOPPED] ? V(m->hosts[SCALE_STOPPED]) : NULL,
		"jobs", with_load ? V(m->jobs) : NULL,
		"queue", with_load ? V(m->queue) : NULL,
		"launch", V(n[SCALE_ACTION_LAUNCH]),
		"drain", V(n[SCALE_ACTION_DRAIN]),
		"undrain", V(n[SCALE_ACTION_UNDRAIN]),
		"terminate", V(n[SCALE_ACTION_TERMINATE]),
		"mark", V(n[SCALE_ACTION_TRANSITION]),
		"stop", n[SCALE_ACTION_STOP] ? V(n[SCALE_ACTION_STOP]) : NULL,
		"start", n[SCALE_ACTION_START] ? V(n[SCALE_ACTION_START]) : NULL,
		"note", m->note,
		NULL,
	};
#undef V
	return scale_log_line(buf, size, "decision", kv);
}

/* ---- scaling status ---- */

static const char *const status_names[_SCALE_STATUS_MAX] = {
	[SCALE_STATUS_OK] = "ok",
	[SCALE_STATUS_NO_POLICY] = "no_policy",
	[SCALE_STATUS_NO_REGION] = "no_region",
	[SCALE_STATUS_NO_CREDENTIALS] = "no_credentials",
	[SCALE_STATUS_EC2_DENIED] = "ec2_denied",
	[SCALE_STATUS_EC2_UNREACHABLE] = "ec2_unreachable",
	[SCALE_STATUS_POLICY_INVALID] = "policy_invalid",
	[SCALE_STATUS_ETCD] = "etcd",
	[SCALE_STATUS_FAILED] = "failed",
};

const char *scale_status_code_to_string(scale_status_code c) {
	return (unsigned) c < _SCALE_STATUS_MAX ? status_names[c] : "failed";
}

int scale_status_code_from_string(const char *s, scale_status_code *out) {
	for (int i = 0; s && i < _SCALE_STATUS_MAX; i++)
		if (streq(s, status_names[i])) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

bool scale_status_working(scale_status_code c) {
	return c == SCALE_STATUS_OK || c == SCALE_STATUS_NO_POLICY;
}

static const char *status_state(scale_status_code c) {
	return c == SCALE_STATUS_OK ? "ok" : c == SCALE_STATUS_NO_POLICY ? "off" : "stopped";
}

json_t *scale_status_to_json(const scale_status *s) {
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "state", status_state(s->code), "code",
			 scale_status_code_to_string(s->code), "reason", s->reason, "since", (json_int_t) s->since,
			 "interval", (json_int_t) s->interval, "token", (json_int_t) s->token);
}

int scale_status_from_json(const json_t *j, scale_status *out) {
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *reason = json_string_value(json_object_get(j, "reason"));

	*out = (scale_status) {};
	if (!json_is_object(j) || scale_status_code_from_string(code, &out->code) < 0)
		return -EINVAL;
	snprintf(out->reason, sizeof out->reason, "%s", reason ?: "");
	out->since = (time_t) json_integer_value(json_object_get(j, "since"));
	out->interval = json_integer_value(json_object_get(j, "interval"));
	out->token = json_integer_value(json_object_get(j, "token"));
	return 0;
}

bool scale_status_changed(const scale_status *prev, const scale_status *next) {
	return !prev || prev->code != next->code || !streq(prev->reason, next->reason) ||
	       prev->interval != next->interval || prev->token != next->token;
}

/* "12s", "4m3s", "2h5m", "3d4h" */
static void span(long s, char *buf, size_t size) {
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, size, "%lds", s);
	else if (s < 3600)
		snprintf(buf, size, "%ldm%lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%ldh%ldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%ldd%ldh", s / 86400, s % 86400 / 3600);
}

static void iso(time_t t, char buf[static 32]) {
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "?");
}

bool scale_status_line(const scale_status *st, time_t last_cycle, time_t last_decision, time_t now, char *buf,
		       size_t size) {
	char since[32], ago[32], next[32];
	long interval;

	if (!st) {
		snprintf(buf, size, "scaling: unknown: no leader has reported");
		return false;
	}
	iso(st->since, since);
	if (!scale_status_working(st->code)) {
		snprintf(buf, size, "scaling: stopped since %s: %s", since, st->reason[0] ? st->reason :
			 scale_status_code_to_string(st->code));
		return false;
	}
	if (st->code == SCALE_STATUS_NO_POLICY) {
		snprintf(buf, size, "scaling: off since %s: %s", since, st->reason[0] ? st->reason : "no scale/policy");
		return true;
	}
	interval = st->interval > 0 ? (long) st->interval : 30;
	/* Three intervals (and half a minute for a slow cycle) without a
	 * cycle: the leader that wrote "ok" is not evaluating any more. */
	if (last_cycle > 0 && now - last_cycle > 3 * interval + 30) {
		span(now - last_cycle, ago, sizeof ago);
		snprintf(buf, size, "scaling: stale: no evaluation for %s (is a leader running its scaler?)", ago);
		return false;
	}
	if (last_decision > 0)
		span(now - last_decision, ago, sizeof ago);
	if (last_cycle > 0 && last_cycle + interval >= now)
		span(last_cycle + interval - now, next, sizeof next);
	snprintf(buf, size, "scaling: ok, last decision %s%s, next evaluation %s%s", last_decision > 0 ? ago : "none",
		 last_decision > 0 ? " ago" : " yet", last_cycle > 0 && last_cycle + interval >= now ? "in " : "",
		 last_cycle > 0 && last_cycle + interval >= now ? next : "due now");
	return true;
}

/* ---- decision history ---- */

void scale_history_id(int64_t seq, char buf[static 24]) {
	snprintf(buf, 24, "%020lld", (long long) seq);
}

int scale_history_seq(const char *id, size_t len, int64_t *out) {
	int64_t v = 0;

	if (!id || len != 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (id[i] < '0' || id[i] > '9')
			return -EINVAL;
		v = v * 10 + (id[i] - '0');
	}
	*out = v;
	return 0;
}

/* Records observe found without their instance, terminated now. */
static json_t *gone_json(const scale_report *r) {
	const scale_observed *o = r->observed;
	json_t *a = json_array();

	for (size_t i = 0; a && i < o->n_hosts; i++)
		if (o->dirty && o->dirty[i] && o->hosts[i].state == SCALE_TERMINATED && o->hosts[i].state_since == r->time)
			json_array_append_new(a, json_string(o->hosts[i].id));
	return a;
}

json_t *scale_history_to_json(const scale_report *r, int64_t seq, int64_t token) {
	return json_pack("{s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:s, s:o}", "seq", (json_int_t) seq,
			 "time",
			 (json_int_t) r->time, "token", (json_int_t) token, "revision", (json_int_t) r->revision,
			 "maintenance", r->records->maintenance, "stop", r->records->stop, "pools",
			 scale_metrics_to_json(r->out), "actions", scale_actions_to_json(r->out), "launched",
			 strv_json(r->launched, r->n_launched), "orphans_terminated",
			 strv_json((const char *const *) r->observed->terminate, r->observed->n_terminate), "gone",
			 gone_json(r), "outcome", r->n_errors ? "errors" : "ok", "errors",
			 strv_json(r->errors, r->n_errors));
}

char *scale_status_log_line(const scale_status *st, char *buf, size_t size) {
	char since[32];

	iso(st->since, since);
	const char *const kv[] = { "state", status_state(st->code), "code", scale_status_code_to_string(st->code),
				   "since", since, "reason", st->reason[0] ? st->reason : NULL, NULL };
	return scale_log_line(buf, size, "status", kv);
}
