/* view.c — what etcd holds about scaling, read at one go (the policy,
 * host records, holds, loads, nodes, queues, markers, the leader's state
 * and metrics), and what corralctl makes of it without deciding: host
 * counts, the status summary (logged before and after every change), and
 * waiting until the records show a goal reached. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "log.h"

void ctl_view_done(ctl_view *v) {
	free(v->policy_text);
	json_decref(v->policy_doc);
	if (v->policy_ok)
		scale_policy_done(&v->policy);
	json_decref(v->hosts);
	json_decref(v->holds);
	json_decref(v->load);
	json_decref(v->nodes);
	json_decref(v->queues);
	json_decref(v->maintenance);
	json_decref(v->stop);
	json_decref(v->state);
	json_decref(v->metrics);
}

int ctl_view_read(ctl_t *c, ctl_view *v) {
	int r;

	_cleanup_free_ char *pkey = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	_cleanup_free_ char *mkey = keys_one_of(c->prefix, KEYS_MAINTENANCE);
	_cleanup_free_ char *skey = keys_one_of(c->prefix, KEYS_SCALE_STOP);
	_cleanup_free_ char *stkey = keys_one_of(c->prefix, KEYS_SCALE_STATE);
	_cleanup_free_ char *mtkey = keys_one_of(c->prefix, KEYS_SCALE_METRICS);

	if (!pkey || !mkey || !skey || !stkey || !mtkey)
		return -ENOMEM;
	r = ctl_get(c, pkey, &v->policy_text, &v->policy_mod, &v->revision);
	if (r < 0)
		return r;
	if (v->policy_text) {
		v->policy_doc = json_loads(v->policy_text, JSON_REJECT_DUPLICATES, NULL);
		if (!v->policy_doc)
			snprintf(v->policy_err.message, sizeof v->policy_err.message, "scale/policy: not JSON");
		else
			v->policy_ok = scale_policy_from_json(v->policy_doc, &v->policy, &v->policy_err) == 0;
	}
	if ((r = ctl_read_records(c, KEYS_SCALE_HOSTS, &v->hosts)) < 0 ||
	    (r = ctl_read_records(c, KEYS_HOLDS, &v->holds)) < 0 || (r = ctl_read_records(c, KEYS_LOAD, &v->load)) < 0 ||
	    (r = ctl_read_records(c, KEYS_NODES, &v->nodes)) < 0 ||
	    (r = ctl_read_dir(c, KEYS_SCALE_QUEUE, false, &v->queues)) < 0 ||
	    (r = ctl_read_marker(c, mkey, &v->maintenance)) < 0 || (r = ctl_read_marker(c, skey, &v->stop)) < 0 ||
	    (r = ctl_read_marker(c, stkey, &v->state)) < 0 || (r = ctl_read_marker(c, mtkey, &v->metrics)) < 0)
		return r;
	return 0;
}

const char *ctl_host_state(json_t *rec) {
	return json_string_value(json_object_get(rec, "state"));
}

bool ctl_view_held(ctl_view *v, const char *id, json_t *rec) {
	return json_is_true(json_object_get(rec, "hold")) || json_object_get(v->holds, id);
}

/* Host counts of one pool by state name; *winding (may be NULL): the
 * draining ones whose node has not finished its wind-down. */
static void count_hosts(ctl_view *v, const char *pool, int counts[_SCALE_STATE_MAX], int *winding) {
	const char *id;
	json_t *rec;

	memset(counts, 0, sizeof(int) * _SCALE_STATE_MAX);
	if (winding)
		*winding = 0;
	json_object_foreach(v->hosts, id, rec) {
		scale_state s;
		if (!streq_ptr(json_string_value(json_object_get(rec, "pool")), pool) || !ctl_host_state(rec) ||
		    scale_state_from_string(ctl_host_state(rec), &s) < 0)
			continue;
		counts[s]++;
		if (winding)
			*winding += json_is_true(json_object_get(rec, "winding_down"));
	}
}

/* The metrics the leader published, for pool: {"pools": {pool: ...}} as
 * src/scaler writes them ({"metrics": ...} or bare tolerated). */
static json_t *pool_metrics(ctl_view *v, const char *pool) {
	json_t *m = json_object_get(v->metrics, "pools");

	if (!m)
		m = json_object_get(v->metrics, "metrics");
	return json_object_get(m ? m : v->metrics, pool);
}

/* ---- status summary ------------------------------------------------------------- */

int ctl_scale_summary(ctl_t *c, json_t **out) {
	_cleanup_(ctl_view_done) ctl_view v = {};
	int r = ctl_view_read(c, &v);

	if (r < 0)
		return r;
	json_auto_t *pools = json_object(), *holds = json_array();
	if (!pools || !holds)
		return -ENOMEM;
	for (size_t i = 0; v.policy_ok && i < v.policy.n_pools; i++) {
		const scale_pool *p = &v.policy.pools[i];
		int counts[_SCALE_STATE_MAX];
		json_t *hosts = json_object(), *m = pool_metrics(&v, p->name);

		int winding;
		count_hosts(&v, p->name, counts, &winding);
		for (int s = 0; s < _SCALE_STATE_MAX; s++)
			json_object_set_new(hosts, scale_state_to_string(s), json_integer(counts[s]));
		json_object_set_new(hosts, "winding_down", json_integer(winding));
		json_object_set_new(pools, p->name,
				    json_pack("{s:o, s:i, s:i, s:b, s:s, s:O?, s:o}", "desired",
					      p->desired >= 0 ? json_integer(p->desired) : json_null(), "min", p->min,
					      "max", p->max, "enabled", p->enabled, "policy", scale_kind_to_string(p->kind),
					      "desired_hosts", json_object_get(m, "desired_hosts"), "hosts", hosts));
	}
	const char *id;
	json_t *rec;
	json_object_foreach(v.holds, id, rec)
		json_array_append_new(holds, json_string(id));
	json_object_foreach(v.hosts, id, rec)
		if (json_is_true(json_object_get(rec, "hold")) && !json_object_get(v.holds, id))
			json_array_append_new(holds, json_string(id));
	json_t *perr = NULL;
	if (v.policy_text && !v.policy_ok)
		perr = json_string(v.policy_err.message);
	*out = json_pack("{s:b, s:o?, s:o, s:O?, s:O?, s:o}", "policy", v.policy_text != NULL, "policy_error", perr,
			 "pools", json_incref(pools), "maintenance", v.maintenance, "stop", v.stop, "holds",
			 json_incref(holds));
	return *out ? 0 : -ENOMEM;
}

static const char *marker_text(json_t *m, char *buf, size_t size) {
	const char *by = json_string_value(json_object_get(m, "by"));
	const char *since = json_string_value(json_object_get(m, "since"));
	const char *reason = json_string_value(json_object_get(m, "reason"));

	if (!json_is_object(m))
		return "off";
	snprintf(buf, size, "ON since %s by %s%s%s", since ? since : "?", by ? by : "?", reason ? ": " : "",
		 reason ? reason : "");
	return buf;
}

void ctl_scale_summary_print(json_t *sum, FILE *f) {
	char mbuf[300], sbuf[300];
	const char *name;
	json_t *p, *h;
	size_t i;

	if (!sum)
		return;
	fprintf(f, "scaling: maintenance %s; cluster stop %s; held:",
		marker_text(json_object_get(sum, "maintenance"), mbuf, sizeof mbuf),
		marker_text(json_object_get(sum, "stop"), sbuf, sizeof sbuf));
	json_array_foreach(json_object_get(sum, "holds"), i, h)
		fprintf(f, " %s", json_string_value(h));
	fprintf(f, "%s\n", json_array_size(json_object_get(sum, "holds")) ? "" : " none");
	if (json_is_false(json_object_get(sum, "policy")))
		fprintf(f, "scaling policy: (none)\n");
	if (json_is_string(json_object_get(sum, "policy_error")))
		fprintf(f, "scaling policy: INVALID: %s\n", json_string_value(json_object_get(sum, "policy_error")));
	json_object_foreach(json_object_get(sum, "pools"), name, p) {
		json_t *d = json_object_get(p, "desired"), *dh = json_object_get(p, "desired_hosts");
		json_t *hosts = json_object_get(p, "hosts");
		char desired[64];

		if (json_is_integer(d))
			snprintf(desired, sizeof desired, "%" JSON_INTEGER_FORMAT " (manual)", json_integer_value(d));
		else if (json_is_integer(dh))
			snprintf(desired, sizeof desired, "%" JSON_INTEGER_FORMAT " (%s%s)", json_integer_value(dh),
				 json_string_value(json_object_get(p, "policy")),
				 json_is_true(json_object_get(sum, "stale")) ? ", stale: the leader is not scaling" : "");
		else
			snprintf(desired, sizeof desired, "? (%s, no decision yet)",
				 json_string_value(json_object_get(p, "policy")));
		fprintf(f, "pool %s: desired %s, min %" JSON_INTEGER_FORMAT ", max %" JSON_INTEGER_FORMAT "%s; hosts:",
			name, desired, json_integer_value(json_object_get(p, "min")),
			json_integer_value(json_object_get(p, "max")),
			json_is_false(json_object_get(p, "enabled")) ? ", disabled" : "");
		bool any = false;
		for (int s = 0; s < _SCALE_STATE_MAX; s++) {
			json_int_t n = json_integer_value(json_object_get(hosts, scale_state_to_string(s)));
			if (n > 0) {
				fprintf(f, "%s %" JSON_INTEGER_FORMAT " %s", any ? "," : "", n, scale_state_to_string(s));
				any = true;
			}
			json_int_t w = json_integer_value(json_object_get(hosts, "winding_down"));
			if (s == SCALE_DRAINING && n > 0 && w > 0)
				fprintf(f, " (%" JSON_INTEGER_FORMAT " winding down)", w);
		}
		fprintf(f, "%s\n", any ? "" : " none");
	}
}

/* The summary before and after a change, on stderr (not with -q). */
void ctl_log_summary(ctl_t *c, const char *when) {
	json_auto_t *sum = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (c->verbosity <= CTL_QUIET || ctl_scale_summary(c, &sum) < 0)
		return;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return;
	ctl_scale_summary_print(sum, f);
	fclose(f);
	/* one line: the log is for reading later, next to other commands' */
	for (char *p = text; p && *p; p++)
		if (*p == '\n')
			*p = p[1] ? ' ' : '\0';
	fprintf(stderr, "corralctl: %s: %s\n", when, text ? text : "");
}

/* Says why a policy document was refused; 2, the operator's input. */
int ctl_policy_invalid(const scale_error *err) {
	fprintf(stderr, "corralctl: invalid policy: %s\n", err->message[0] ? err->message : "not a policy");
	return 2;
}

/* ready + launching hosts of the pool, as the records say */
int ctl_fleet_size(ctl_view *v, const char *pool, int *ready, int *launching) {
	int counts[_SCALE_STATE_MAX];

	count_hosts(v, pool, counts, NULL);
	if (ready)
		*ready = counts[SCALE_READY];
	if (launching)
		*launching = counts[SCALE_LAUNCHING];
	return counts[SCALE_READY] + counts[SCALE_LAUNCHING];
}


static uint64_t now_usec(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

typedef struct waker {
	bool woke, lost;
} waker;

static void on_change(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	waker *k = userdata;

	if (m->type == ETCD_WATCH_EVENTS)
		k->woke = true;
	else if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED)
		k->woke = k->lost = true;
}

/* Re-reads the records whenever something under the prefix changes (a
 * watch from the revision read) until pred holds or seconds pass; every
 * 5 s regardless, in case the watch is stuck. 0: reached, -ETIMEDOUT, or
 * a read error (printed). */
int ctl_wait_for(ctl_t *c, long seconds, bool (*pred)(ctl_view *v, const void *userdata), const void *userdata) {
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	_cleanup_free_ char *key = keys_all_of(c->prefix);
	uint64_t deadline = now_usec() + (uint64_t) seconds * USEC_PER_SEC;
	waker k = {};
	int r;

	if (!key)
		return -ENOMEM;
	for (;;) {
		_cleanup_(ctl_view_done) ctl_view v = {};
		r = ctl_view_read(c, &v);
		if (r < 0)
			return r;
		if (pred(&v, userdata))
			return 0;
		if (k.lost)
			w = etcd_watch_free(w);
		if (!w) {
			k = (waker){};
			etcd_watch_req req = { .key = key, .prefix = true, .start_revision = v.revision + 1 };
			r = etcd_watch_new(&w, c->etcd, &req, on_change, &k);
			if (r < 0)
				return r;
		}
		k.woke = false;
		uint64_t until = now_usec() + 5 * USEC_PER_SEC;
		while (!k.woke) {
			uint64_t n = now_usec();
			if (n >= deadline)
				return -ETIMEDOUT;
			if (n >= until) {
				log_debug("wait: no change in 5 s, reading again");
				break;
			}
			uint64_t step = (deadline < until ? deadline : until) - n;
			r = sd_event_run(c->event, step);
			if (r < 0)
				return r;
		}
		if (k.woke)
			log_debug("wait: woken by a change, reading again");
	}
}

