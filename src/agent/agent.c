/* agent.c — the node agent: load record, wind-down hook, spot interruption
 * watch (agent.h). One record writer: puts go out one at a time (a second
 * request while one is in flight is folded into one more put), so an older
 * record can never overwrite a newer one on another connection. */
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "backoff.h"
#include "child.h"
#include "esc.h"
#include "imds.h"
#include "keys.h"
#include "scale.h"

#define AGENT_DEFAULT_INTERVAL_USEC      (10 * USEC_PER_SEC)
#define AGENT_DEFAULT_IMDS_INTERVAL_USEC (5 * USEC_PER_SEC)
#define AGENT_DEFAULT_TIMEOUT_USEC       (30 * USEC_PER_SEC)
#define AGENT_RETRY_USEC                 (1 * USEC_PER_SEC)      /* doubling, jittered, */
#define AGENT_RETRY_CAP_USEC             (30 * USEC_PER_SEC)     /* up to this */
#define AGENT_LOAD_MAX_OUTPUT            ((size_t) 64 * 1024)

struct agent {
	sd_event *event;
	etcd_client *etcd;
	agent_report_cb cb;
	void *userdata;

	char *load_key, *host_key;
	char *load_command, *wind_down_command;
	uint64_t interval, timeout, imds_interval;
	int64_t lease;

	/* load */
	sd_event_source *load_timer;
	child_run *load_run;
	etcd_call *read_call;           /* no load_command: reading the app's record */
	json_t *base;                   /* last good {"jobs","capacity","memory","updated"} */
	bool wrote_extras;              /* the stored record carries our fields */

	/* the record writer */
	etcd_call *put_call;
	bool put_again;

	/* wind-down */
	etcd_call *host_call;
	etcd_watch *host_watch;
	sd_event_source *host_restart;
	backoff host_bo;                /* failed reads or watches in a row */
	bool draining, hook_ran;
	bool load_read;                 /* no load_command: the record was read at least once */
	child_run *hook_run;

	/* interruption */
	json_t *interruption;           /* {"action","time"} or NULL */
	imds *imds;
	bool imds_busy;                 /* a GET in flight */
	sd_event_source *imds_timer;
};

static void agent_report(agent *a, agent_report_kind kind, const char *fmt, ...) _printf_(3, 4);
static void agent_report(agent *a, agent_report_kind kind, const char *fmt, ...) {
	char msg[768];
	va_list ap;

	if (!a->cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	a->cb(a, kind, msg, a->userdata);
}

static void format_now(char buf[static 32]) {
	time_t t = time(NULL);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "1970-01-01T00:00:00Z");
}

static int arm_timer(agent *a, sd_event_source **s, uint64_t usec, sd_event_time_handler_t fn) {
	if (*s)
		return sd_event_source_set_time_relative(*s, usec) < 0 ||
				       sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT) < 0
			       ? -EIO
			       : 0;
	return sd_event_add_time_relative(a->event, s, CLOCK_MONOTONIC, usec, 0, fn, a);
}

/* ---- the record ------------------------------------------------------------ */

/* Not while the wind-down hook runs: the leader terminates on this, and the
 * hook may be what stops new jobs from arriving. */
bool agent_ready_to_stop(const agent *a) {
	if (!a)
		return false;
	json_t *jobs = a->base ? json_object_get(a->base, "jobs") : NULL;

	if (!a->draining || a->hook_run)
		return false;
	if (a->base)
		return jobs && json_integer_value(jobs) == 0;
	/* No load at all: no load_command, and the application never wrote
	 * a record. The leader counts 0 jobs then; so do we, once we have
	 * looked (else a drained host would wait for us forever). */
	return !a->load_command && a->load_read;
}

const json_t *agent_load(const agent *a) {
	return a ? a->base : NULL;
}

bool agent_draining(const agent *a) {
	return a && a->draining;
}

static bool agent_has_extras(const agent *a) {
	return agent_ready_to_stop(a) || a->interruption;
}

static void agent_put(agent *a);

static void on_put(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	agent *a = userdata;
	char buf[512];

	a->put_call = NULL;
	if (r->error.code == -ENOENT && r->error.kind == ETCD_ERROR_GATEWAY)
		/* "lease not found": the registration takes a new one and hands
		 * it over (agent_set_lease), which writes the record again; the
		 * daemon logs that, once. */
		;
	else if (r->error.code < 0)
		agent_report(a, AGENT_WRITE_FAILED, "%s: %s", a->load_key, etcd_error_format(&r->error, buf, sizeof buf));
	else
		agent_report(a, AGENT_LOAD_WRITTEN, "%s written", a->load_key);
	if (a->put_again) {
		a->put_again = false;
		agent_put(a);
	}
}

/* Writes the record as it stands now. Without a load command and nothing of
 * ours to add, the application's record is left alone. */
static void agent_put(agent *a) {
	_cleanup_free_ char *text = NULL;
	char now[32];

	if (a->put_call) {
		a->put_again = true;
		return;
	}
	bool extras = agent_has_extras(a);
	if (!a->load_command && !extras && !a->wrote_extras)
		return;
	json_auto_t *rec = a->base ? json_deep_copy(a->base) : json_object();
	if (!rec)
		return;
	if (!json_object_get(rec, "updated")) {
		format_now(now);
		json_object_set_new(rec, "updated", json_string(now));
	}
	if (agent_ready_to_stop(a))
		json_object_set_new(rec, "ready_to_stop", json_true());
	if (a->interruption)
		json_object_set(rec, "interruption", a->interruption);
	text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return;
	etcd_put_req req = { .key = a->load_key, .value = text, .lease = a->lease };
	int r = etcd_put(a->etcd, &req, on_put, a, &a->put_call);
	if (r < 0) {
		agent_report(a, AGENT_WRITE_FAILED, "%s: cannot send the put: %s", a->load_key, strerror(-r));
		return;
	}
	a->wrote_extras = extras;
}

/* {"jobs": N >= 0, "capacity": M >= 0 (default 0), "memory": 0..1 (default
 * 0)}; anything else is refused with a message. New reference or NULL. */
static json_t *agent_parse_load(const char *text, size_t len, char *err, size_t size) {
	json_error_t jerr;
	json_auto_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *v;

	if (!doc) {
		snprintf(err, size, "not JSON: %s", ESC_JERR(&jerr));
		return NULL;
	}
	if (!json_is_object(doc)) {
		snprintf(err, size, "not a JSON object");
		return NULL;
	}
	v = json_object_get(doc, "jobs");
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
		snprintf(err, size, "\"jobs\" must be a whole number >= 0");
		return NULL;
	}
	json_int_t jobs = json_integer_value(v), capacity = 0;
	double memory = 0;
	if ((v = json_object_get(doc, "capacity"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
			snprintf(err, size, "\"capacity\" must be a whole number >= 0");
			return NULL;
		}
		capacity = json_integer_value(v);
	}
	if ((v = json_object_get(doc, "memory"))) {
		if (!json_is_number(v) || !(json_number_value(v) >= 0.0 && json_number_value(v) <= 1.0)) {
			snprintf(err, size, "\"memory\" must be a fraction 0..1");
			return NULL;
		}
		memory = json_number_value(v);
	}
	return json_pack("{s:I, s:I, s:f}", "jobs", jobs, "capacity", capacity, "memory", memory);
}

static int on_load_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void agent_load_next(agent *a) {
	if (arm_timer(a, &a->load_timer, a->interval, on_load_timer) < 0)
		agent_report(a, AGENT_LOAD_FAILED, "cannot arm the load timer");
}

static void agent_load_got(agent *a, json_t *base) {
	bool was_ready = agent_ready_to_stop(a);

	json_decref(a->base);
	a->base = base;
	if (!was_ready && agent_ready_to_stop(a))
		agent_report(a, AGENT_READY_TO_STOP, "draining and no jobs left: ready to stop");
	agent_put(a);
}

static void on_load_done(child_run *run, const child_result *res, void *userdata) {
	agent *a = userdata;
	char err[256], now[32];

	if (res->error < 0)
		agent_report(a, AGENT_LOAD_FAILED, "load_command: %s", res->message);
	else {
		json_t *base = agent_parse_load(res->out, res->out_len, err, sizeof err);
		if (!base)
			agent_report(a, AGENT_LOAD_FAILED, "load_command printed bad load (%s); keeping the last one", err);
		else {
			format_now(now);
			json_object_set_new(base, "updated", json_string(now));
			agent_load_got(a, base);
		}
	}
	/* Last: res points into the run. */
	a->load_run = child_run_free(run);
	agent_load_next(a);
}

/* No load command: the application's record is the load; ours are the
 * extra fields only. */
static void on_load_read(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	agent *a = userdata;
	char buf[512];

	a->read_call = NULL;
	if (r->error.code < 0)
		agent_report(a, AGENT_WRITE_FAILED, "%s: %s", a->load_key, etcd_error_format(&r->error, buf, sizeof buf));
	else {
		a->load_read = true;
		if (r->n_kvs == 1 && r->kvs[0].value) {
			json_auto_t *doc = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
			if (json_is_object(doc)) {
				json_object_del(doc, "ready_to_stop");
				json_object_del(doc, "interruption");
				agent_load_got(a, TAKE_PTR(doc));
			}
		} else if (agent_has_extras(a))
			agent_put(a);
	}
	agent_load_next(a);
}

static int on_load_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	agent *a = userdata;
	int r;

	if (a->load_command) {
		child_options o = {
			.command = a->load_command,
			.max_output = AGENT_LOAD_MAX_OUTPUT,
			.timeout_usec = a->timeout,
		};
		r = child_run_start(&a->load_run, a->event, &o, on_load_done, a);
		if (r < 0) {
			agent_report(a, AGENT_LOAD_FAILED, "cannot run load_command: %s", strerror(-r));
			agent_load_next(a);
		}
		return 0;
	}
	etcd_range_req req = { .key = a->load_key };
	r = etcd_range(a->etcd, &req, on_load_read, a, &a->read_call);
	if (r < 0)
		agent_load_next(a);
	return 0;
}

/* ---- wind-down ----------------------------------------------------------- */

static void on_hook_done(child_run *run, const child_result *res, void *userdata) {
	agent *a = userdata;

	if (res->error < 0)
		agent_report(a, AGENT_WIND_DOWN_FAILED, "wind_down_command: %s", res->message);
	else
		agent_report(a, AGENT_WIND_DOWN_DONE, "wind_down_command done");
	/* Last: res points into the run. */
	a->hook_run = child_run_free(run);
	if (agent_ready_to_stop(a)) {
		agent_report(a, AGENT_READY_TO_STOP, "draining and no jobs left: ready to stop");
		agent_put(a);
	}
}

static void agent_host_state(agent *a, const char *value, size_t len) {
	scale_state state = SCALE_READY;

	if (value) {
		scale_error err = {};
		scale_host h = {};
		json_auto_t *doc = json_loadb(value, len, 0, NULL);
		if (!doc || scale_host_from_json(doc, &h, &err) < 0) {
			agent_report(a, AGENT_WATCH_FAILED, "%s: unreadable host record: %s", a->host_key,
				     doc ? err.message : "not JSON");
			return;
		}
		state = h.state;
		scale_host_done(&h);
	}

	if (state == SCALE_DRAINING && !a->draining) {
		a->draining = true;
		if (!a->hook_ran) {
			a->hook_ran = true;
			if (a->wind_down_command && !a->hook_run) {
				child_options o = { .command = a->wind_down_command, .timeout_usec = a->timeout };
				int r = child_run_start(&a->hook_run, a->event, &o, on_hook_done, a);
				if (r < 0)
					agent_report(a, AGENT_WIND_DOWN_FAILED, "cannot run wind_down_command: %s",
						     strerror(-r));
				else
					agent_report(a, AGENT_WIND_DOWN_STARTED, "host draining: wind_down_command started");
			} else
				agent_report(a, AGENT_WIND_DOWN_STARTED, "host draining");
		}
		if (agent_ready_to_stop(a))
			agent_report(a, AGENT_READY_TO_STOP, "draining and no jobs left: ready to stop");
		agent_put(a);
	} else if (state == SCALE_READY && (a->draining || a->hook_ran)) {
		/* Undrained (or the record went): the next drain winds down anew. */
		a->draining = false;
		a->hook_ran = false;
		agent_report(a, AGENT_UNDRAINED, "host ready again: wind-down re-armed");
		agent_put(a);
	}
}

static int agent_host_start(agent *a);

static int on_host_restart(sd_event_source *s, uint64_t usec, void *userdata) {
	agent *a = userdata;

	a->host_watch = etcd_watch_free(a->host_watch);
	if (agent_host_start(a) < 0)
		(void) arm_timer(a, &a->host_restart, backoff_next(&a->host_bo, backoff_random()), on_host_restart);
	return 0;
}

static void agent_host_again(agent *a) {
	/* Not from inside the watch's callback: from the loop, a bit later. */
	if (arm_timer(a, &a->host_restart, backoff_next(&a->host_bo, backoff_random()), on_host_restart) < 0)
		agent_report(a, AGENT_WATCH_FAILED, "cannot arm the host watch timer");
}

static void on_host_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	agent *a = userdata;
	char buf[512];

	switch (m->type) {
	case ETCD_WATCH_EVENTS:
		for (size_t i = 0; i < m->n_events; i++) {
			const etcd_event *e = &m->events[i];
			if (e->type == ETCD_EVENT_PUT)
				agent_host_state(a, e->kv.value ? e->kv.value : "", e->kv.value_len);
			else
				agent_host_state(a, NULL, 0);
		}
		break;
	case ETCD_WATCH_COMPACTED:
	case ETCD_WATCH_CANCELED:
		agent_report(a, AGENT_WATCH_FAILED, "%s: watch stopped (%s); reading again", a->host_key,
			     m->error ? etcd_error_format(m->error, buf, sizeof buf) : "compacted");
		agent_host_again(a);
		break;
	default:
		break;
	}
}

static void on_host_read(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	agent *a = userdata;
	char buf[512];

	a->host_call = NULL;
	if (r->error.code < 0) {
		agent_report(a, AGENT_WATCH_FAILED, "%s: %s", a->host_key, etcd_error_format(&r->error, buf, sizeof buf));
		agent_host_again(a);
		return;
	}
	if (r->n_kvs == 1 && r->kvs[0].value)
		agent_host_state(a, r->kvs[0].value, r->kvs[0].value_len);
	etcd_watch_req req = { .key = a->host_key, .start_revision = r->header.revision + 1 };
	int k = etcd_watch_new(&a->host_watch, a->etcd, &req, on_host_watch, a);
	if (k < 0) {
		agent_report(a, AGENT_WATCH_FAILED, "%s: cannot watch: %s", a->host_key, strerror(-k));
		agent_host_again(a);
	} else
		backoff_reset(&a->host_bo);
}

static int agent_host_start(agent *a) {
	etcd_range_req req = { .key = a->host_key };
	return etcd_range(a->etcd, &req, on_host_read, a, &a->host_call);
}

/* ---- interruption (IMDSv2) --------------------------------------------------- */

static int on_imds_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void imds_next(agent *a) {
	a->imds_busy = false;
	if (arm_timer(a, &a->imds_timer, a->imds_interval, on_imds_timer) < 0)
		agent_report(a, AGENT_IMDS_FAILED, "cannot arm the interruption timer");
}

static void imds_notice(agent *a, const char *body, size_t len) {
	json_auto_t *doc = json_loadb(body ? body : "", len, 0, NULL);
	const char *action = json_string_value(json_object_get(doc, "action"));
	const char *when = json_string_value(json_object_get(doc, "time"));

	if (!action || !when) {
		agent_report(a, AGENT_IMDS_FAILED, "spot/instance-action: not the {\"action\",\"time\"} expected");
		return;
	}
	json_t *notice = json_pack("{s:s, s:s}", "action", action, "time", when);
	if (!notice)
		return;
	if (a->interruption && json_equal(a->interruption, notice)) {
		json_decref(notice);
		return;
	}
	json_decref(a->interruption);
	a->interruption = notice;
	agent_report(a, AGENT_INTERRUPTION, "spot interruption notice: %s at %s", action, when);
	agent_put(a);
}

static void on_imds_done(const imds_reply *r, void *userdata) {
	agent *a = userdata;

	if (r->error < 0)
		agent_report(a, AGENT_IMDS_FAILED, "%s", r->message);
	else if (r->status == 200)
		imds_notice(a, r->body, r->len);
	else if (r->status != 404)      /* 404: no notice */
		agent_report(a, AGENT_IMDS_FAILED, "instance metadata: spot/instance-action answered %ld", r->status);
	imds_next(a);
}

static int on_imds_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	agent *a = userdata;

	if (a->imds_busy)
		return 0;
	int r = imds_get(a->imds, "/latest/meta-data/spot/instance-action", on_imds_done, a);
	if (r < 0) {
		agent_report(a, AGENT_IMDS_FAILED, "instance metadata: cannot send: %s", strerror(-r));
		imds_next(a);
	} else
		a->imds_busy = true;
	return 0;
}

/* ---- life cycle ------------------------------------------------------------ */

void agent_set_lease(agent *a, int64_t lease) {
	if (!a || a->lease == lease)
		return;
	a->lease = lease;
	if (a->base || agent_has_extras(a) || a->wrote_extras)
		agent_put(a);
}

static int strdup_opt(const char *s, char **out) {
	if (!s) {
		*out = NULL;
		return 0;
	}
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int agent_new(agent **out, sd_event *event, etcd_client *etcd, const agent_options *o, int64_t lease,
	      agent_report_cb cb, void *userdata) {
	_cleanup_(agent_freep) agent *a = NULL;
	int r;

	if (!out || !event || !etcd || !o || !o->prefix || !o->node_id)
		return -EINVAL;
	a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->host_bo = BACKOFF_INIT(AGENT_RETRY_USEC, AGENT_RETRY_CAP_USEC);
	a->event = sd_event_ref(event);
	a->etcd = etcd;
	a->cb = cb;
	a->userdata = userdata;
	a->lease = lease;
	a->interval = o->load_interval_usec ? o->load_interval_usec : AGENT_DEFAULT_INTERVAL_USEC;
	a->timeout = o->command_timeout_usec ? o->command_timeout_usec : AGENT_DEFAULT_TIMEOUT_USEC;
	a->imds_interval = o->interruption_interval_usec ? o->interruption_interval_usec
							 : AGENT_DEFAULT_IMDS_INTERVAL_USEC;
	a->load_key = keys_entry(o->prefix, KEYS_LOAD, o->node_id);
	if (!a->load_key)
		return -errno;
	if ((r = strdup_opt(o->load_command, &a->load_command)) < 0 ||
	    (r = strdup_opt(o->wind_down_command, &a->wind_down_command)) < 0)
		return r;

	if (o->load_command || o->wind_down_command || o->instance_id || o->interruption_watch) {
		/* The first run at once, then every interval. */
		r = sd_event_add_time_relative(a->event, &a->load_timer, CLOCK_MONOTONIC, 0, 0, on_load_timer, a);
		if (r < 0)
			return r;
	}
	if (o->instance_id) {
		a->host_key = keys_entry(o->prefix, KEYS_SCALE_HOSTS, o->instance_id);
		if (!a->host_key)
			return -errno;
		r = agent_host_start(a);
		if (r < 0)
			return r;
	}
	if (o->interruption_watch) {
		r = imds_new(&a->imds, a->event, o->imds_endpoint && *o->imds_endpoint ? o->imds_endpoint : NULL);
		if (r < 0)
			return r;
		r = sd_event_add_time_relative(a->event, &a->imds_timer, CLOCK_MONOTONIC, 0, 0, on_imds_timer, a);
		if (r < 0)
			return r;
	}
	*out = TAKE_PTR(a);
	return 0;
}

agent *agent_free(agent *a) {
	if (!a)
		return NULL;
	a->load_timer = sd_event_source_disable_unref(a->load_timer);
	a->load_run = child_run_free(a->load_run);
	a->hook_run = child_run_free(a->hook_run);
	if (a->read_call)
		etcd_call_cancel(a->read_call);
	if (a->put_call)
		etcd_call_cancel(a->put_call);
	if (a->host_call)
		etcd_call_cancel(a->host_call);
	a->host_watch = etcd_watch_free(a->host_watch);
	a->host_restart = sd_event_source_disable_unref(a->host_restart);
	a->imds_timer = sd_event_source_disable_unref(a->imds_timer);
	a->imds = imds_free(a->imds);
	json_decref(a->base);
	json_decref(a->interruption);
	free(a->load_key);
	free(a->host_key);
	free(a->load_command);
	free(a->wind_down_command);
	sd_event_unref(a->event);
	free(a);
	return NULL;
}
