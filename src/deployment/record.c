/* record.c — deployments/<id> and deployment_reports/<id> as JSON
 * (deployment.h). Keys this codec does not know are kept in `extra` and
 * written back as they were: an application may keep its own fields in
 * the record, and a newer leader's fields survive an older one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deployment-internal.h"
#include "rfc3339.h"

static const char *const known[] = {
	"id", "owner", "memory", "host", "state", "created", "state_since", "license_expires", "last_active",
	"removal", "backup", "backup_at", "notices", "last_seq", "order", "error", "attempts", "retry_at",
	"last_host", NULL,
};

static bool is_known(const char *k) {
	for (size_t i = 0; known[i]; i++)
		if (strcmp(known[i], k) == 0)
			return true;
	return false;
}

static int get_memory(json_t *rec, int64_t *out, deployment_error *err) {
	json_t *v = json_object_get(rec, "memory");

	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < (INT64_C(1) << 53)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && deployment_parse_size(json_string_value(v), out) == 0)
		return 0;
	return dep_fail(err, "deployment", "memory", v ? "must be a size in bytes (or like \"2G\"), > 0" : "missing");
}

static int get_removal(json_t *rec, deployment *d, deployment_error *err) {
	json_t *r = json_object_get(rec, "removal");
	json_t *reason;

	if (!r || json_is_null(r))
		return 0;
	if (!json_is_object(r))
		return dep_fail(err, "deployment", "removal", "must be an object or null");
	reason = json_object_get(r, "reason");
	if (!json_is_string(reason) || deployment_removal_from_string(json_string_value(reason), &d->removal) < 0 ||
	    d->removal == DEPLOYMENT_REMOVAL_NONE)
		return dep_fail(err, "deployment.removal", "reason", "must be \"expired\", \"inactive\" or \"operator\"");
	int r2;
	if ((r2 = dep_get_time(r, "deployment.removal", "since", &d->removal_since, err)) < 0 ||
	    (r2 = dep_get_bool(r, "deployment.removal", "skip_backup", &d->removal_skip_backup, err)) < 0)
		return r2;
	return 0;
}

static int get_notices(json_t *rec, deployment *d, deployment_error *err) {
	json_t *n = json_object_get(rec, "notices"), *v;
	const char *k;

	if (!n || json_is_null(n))
		return 0;
	if (!json_is_object(n))
		return dep_fail(err, "deployment", "notices", "must be an object of kind: time");
	d->notices = calloc(json_object_size(n) + 1, sizeof *d->notices);
	if (!d->notices)
		return -ENOMEM;
	json_object_foreach(n, k, v) {
		time_t at;
		if (!json_is_string(v) || rfc3339_parse(json_string_value(v), &at) < 0)
			return dep_fail(err, "deployment.notices", k, "must be an RFC 3339 time");
		d->notices[d->n_notices].kind = strdup(k);
		if (!d->notices[d->n_notices].kind)
			return -ENOMEM;
		d->notices[d->n_notices++].at = at;
	}
	return 0;
}

static int get_order(json_t *rec, deployment_order *o, deployment_error *err) {
	json_t *j = json_object_get(rec, "order"), *hook;
	int r;

	if (!j || json_is_null(j))
		return 0;
	if (!json_is_object(j))
		return dep_fail(err, "deployment", "order", "must be an object or null");
	hook = json_object_get(j, "hook");
	if (!json_is_string(hook) || deployment_hook_from_string(json_string_value(hook), &o->hook) < 0)
		return dep_fail(err, "deployment.order", "hook", "unknown hook");
	if ((r = dep_get_int(j, "deployment.order", "seq", 1, INT64_MAX, &o->seq, err)) < 0 ||
	    (r = dep_get_str(j, "deployment.order", "host", &o->host, err)) < 0 ||
	    (r = dep_get_time(j, "deployment.order", "since", &o->since, err)) < 0)
		return r;
	if (o->seq <= 0 || !o->host)
		return dep_fail(err, "deployment", "order", "needs seq and host");
	return 0;
}

int deployment_from_json(json_t *rec, const char *id, deployment *out, deployment_error *err) {
	_cleanup_(deployment_done) deployment d = {};
	json_t *state, *v;
	const char *k;
	int64_t attempts = 0;
	int r;

	*out = (deployment) {};
	if (!json_is_object(rec))
		return dep_fail(err, "deployment", NULL, "must be a JSON object");
	d.id = strdup(id ? id : "");
	if (!d.id)
		return -ENOMEM;
	if ((r = get_memory(rec, &d.memory, err)) < 0)
		return r;
	state = json_object_get(rec, "state");
	if (!state)
		return dep_fail(err, "deployment", "state", "missing");
	if (!json_is_string(state) || deployment_state_from_string(json_string_value(state), &d.state) < 0)
		return dep_fail(err, "deployment", "state", "unknown state \"%s\"", json_string_value(state) ?: "?");
	if ((r = dep_get_str(rec, "deployment", "owner", &d.owner, err)) < 0 ||
	    (r = dep_get_str(rec, "deployment", "host", &d.host, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "created", &d.created, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "state_since", &d.state_since, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "license_expires", &d.license_expires, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "last_active", &d.last_active, err)) < 0 ||
	    (r = get_removal(rec, &d, err)) < 0 ||
	    (r = dep_get_str(rec, "deployment", "backup", &d.backup, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "backup_at", &d.backup_at, err)) < 0 ||
	    (r = get_notices(rec, &d, err)) < 0 ||
	    (r = dep_get_int(rec, "deployment", "last_seq", 0, INT64_MAX, &d.last_seq, err)) < 0 ||
	    (r = get_order(rec, &d.order, err)) < 0 ||
	    (r = dep_get_str(rec, "deployment", "error", &d.error, err)) < 0 ||
	    (r = dep_get_int(rec, "deployment", "attempts", 0, 1000000, &attempts, err)) < 0 ||
	    (r = dep_get_time(rec, "deployment", "retry_at", &d.retry_at, err)) < 0 ||
	    (r = dep_get_str(rec, "deployment", "last_host", &d.last_host, err)) < 0)
		return r;
	d.attempts = (int) attempts;
	if (d.order.seq > d.last_seq)
		d.last_seq = d.order.seq;
	json_object_foreach(rec, k, v) {
		if (is_known(k))
			continue;
		if (!d.extra && !(d.extra = json_object()))
			return -ENOMEM;
		if (json_object_set(d.extra, k, v) < 0)
			return -ENOMEM;
	}
	*out = d;
	d = (deployment) {};
	return 0;
}

static json_t *removal_json(const deployment *d) {
	if (d->removal == DEPLOYMENT_REMOVAL_NONE)
		return json_null();
	return json_pack("{s:s, s:o, s:b}", "reason", deployment_removal_to_string(d->removal) ?: "operator", "since",
			 rfc3339_json(d->removal_since), "skip_backup", d->removal_skip_backup);
}

static json_t *order_json(const deployment_order *o) {
	if (o->seq <= 0)
		return json_null();
	return json_pack("{s:I, s:s, s:o, s:o}", "seq", (json_int_t) o->seq, "hook",
			 deployment_hook_to_string(o->hook) ?: "deploy", "host", dep_str_or_null(o->host), "since",
			 rfc3339_json(o->since));
}

static json_t *notices_json(const deployment *d) {
	json_auto_t *n = json_object();

	for (size_t i = 0; n && i < d->n_notices; i++)
		if (json_object_set_new(n, d->notices[i].kind, rfc3339_json(d->notices[i].at)) < 0)
			return NULL;
	return TAKE_PTR(n);
}

json_t *deployment_to_json(const deployment *d) {
	json_auto_t *o = json_object();
	const char *k;
	json_t *v;
	int bad = !o;

#define S(key, val) bad = bad || json_object_set_new(o, key, val) < 0
	S("owner", dep_str_or_null(d->owner));
	S("memory", json_integer(d->memory));
	S("host", dep_str_or_null(d->host));
	S("state", json_string(deployment_state_to_string(d->state) ?: "pending"));
	S("created", rfc3339_json(d->created));
	S("state_since", rfc3339_json(d->state_since));
	S("license_expires", rfc3339_json(d->license_expires));
	S("last_active", rfc3339_json(d->last_active));
	S("removal", removal_json(d));
	S("backup", dep_str_or_null(d->backup));
	S("backup_at", rfc3339_json(d->backup_at));
	S("notices", notices_json(d));
	S("last_seq", json_integer(d->last_seq));
	S("order", order_json(&d->order));
	S("error", dep_str_or_null(d->error));
	S("attempts", json_integer(d->attempts));
	S("retry_at", rfc3339_json(d->retry_at));
	S("last_host", dep_str_or_null(d->last_host));
#undef S
	json_object_foreach(d->extra, k, v)
		if (!bad && !json_object_get(o, k))
			bad = json_object_set(o, k, v) < 0;
	return bad ? NULL : TAKE_PTR(o);
}

static int dup_str(const char *s, char **out) {
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -ENOMEM : 0;
}

/* Field by field (not through JSON): a struct decide() is building need not
 * be a record from_json would take yet. */
int deployment_copy(const deployment *d, deployment *out) {
	_cleanup_(deployment_done) deployment c = *d;

	*out = (deployment) {};
	c.id = c.owner = c.host = c.backup = c.order.host = c.error = c.last_host = NULL;
	c.notices = NULL;
	c.n_notices = 0;
	c.extra = NULL;
	if (dup_str(d->id, &c.id) < 0 || dup_str(d->owner, &c.owner) < 0 || dup_str(d->host, &c.host) < 0 ||
	    dup_str(d->backup, &c.backup) < 0 || dup_str(d->order.host, &c.order.host) < 0 ||
	    dup_str(d->error, &c.error) < 0 || dup_str(d->last_host, &c.last_host) < 0)
		return -ENOMEM;
	if (d->n_notices > 0) {
		c.notices = calloc(d->n_notices, sizeof *c.notices);
		if (!c.notices)
			return -ENOMEM;
		for (; c.n_notices < d->n_notices; c.n_notices++) {
			c.notices[c.n_notices].at = d->notices[c.n_notices].at;
			if (dup_str(d->notices[c.n_notices].kind, &c.notices[c.n_notices].kind) < 0)
				return -ENOMEM;
		}
	}
	if (d->extra && !(c.extra = json_deep_copy(d->extra)))
		return -ENOMEM;
	*out = c;
	c = (deployment) {};
	return 0;
}

void deployment_done(deployment *d) {
	if (!d)
		return;
	free(d->id);
	free(d->owner);
	free(d->host);
	free(d->backup);
	for (size_t i = 0; i < d->n_notices; i++)
		free(d->notices[i].kind);
	free(d->notices);
	free(d->order.host);
	free(d->error);
	free(d->last_host);
	json_decref(d->extra);
	*d = (deployment) {};
}

time_t deployment_notice_sent(const deployment *d, const char *kind) {
	for (size_t i = 0; i < d->n_notices; i++)
		if (strcmp(d->notices[i].kind, kind) == 0)
			return d->notices[i].at;
	return 0;
}

bool deployment_occupies(const deployment *d) {
	return d->host && d->state != DEPLOYMENT_REMOVED;
}

/* ---- reports -------------------------------------------------------------------- */

int deployment_report_from_json(json_t *doc, deployment_report *out, deployment_error *err) {
	_cleanup_(deployment_report_done) deployment_report r = {};
	json_t *hook, *state;
	int k;

	*out = (deployment_report) {};
	if (!json_is_object(doc))
		return dep_fail(err, "report", NULL, "must be a JSON object");
	hook = json_object_get(doc, "hook");
	state = json_object_get(doc, "state");
	if (!json_is_string(hook) || deployment_hook_from_string(json_string_value(hook), &r.hook) < 0)
		return dep_fail(err, "report", "hook", "unknown hook");
	if (!json_is_string(state) || deployment_report_state_from_string(json_string_value(state), &r.state) < 0)
		return dep_fail(err, "report", "state", "must be \"running\", \"done\" or \"failed\"");
	if ((k = dep_get_int(doc, "report", "seq", 1, INT64_MAX, &r.seq, err)) < 0 ||
	    (k = dep_get_str(doc, "report", "host", &r.host, err)) < 0 ||
	    (k = dep_get_time(doc, "report", "started", &r.started, err)) < 0 ||
	    (k = dep_get_time(doc, "report", "ended", &r.ended, err)) < 0 ||
	    (k = dep_get_str(doc, "report", "output", &r.output, err)) < 0 ||
	    (k = dep_get_str(doc, "report", "error", &r.error, err)) < 0)
		return k;
	if (r.seq <= 0)
		return dep_fail(err, "report", "seq", "missing");
	*out = r;
	r = (deployment_report) {};
	return 0;
}

json_t *deployment_report_to_json(const deployment_report *r) {
	return json_pack("{s:I, s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "seq", (json_int_t) r->seq, "hook",
			 deployment_hook_to_string(r->hook) ?: "deploy", "host", dep_str_or_null(r->host), "state",
			 deployment_report_state_to_string(r->state) ?: "failed", "started", rfc3339_json(r->started),
			 "ended", rfc3339_json(r->ended), "output", dep_str_or_null(r->output), "error",
			 dep_str_or_null(r->error));
}

void deployment_report_done(deployment_report *r) {
	if (!r)
		return;
	free(r->host);
	free(r->output);
	free(r->error);
	*r = (deployment_report) {};
}
