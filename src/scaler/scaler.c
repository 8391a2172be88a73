/* scaler.c — the leader's autoscaling loop: observe -> decide -> act, one
 * cycle at a time on the shared sd-event loop, every interval and when a
 * watched key changes. The steps live beside this file (cycle.h):
 * gather.c reads etcd and EC2, scale_observe() and scale_decide() (pure,
 * src/scale/) turn them into actions, execute.c carries them out. A cycle
 * owns everything it gathered, so stopping is: cancel the one call in
 * flight, free the cycle. docs/scale.md ("The leader loop") has the order
 * of writes and why it is safe to die anywhere in it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <jansson.h>

#include "cycle.h"
#include "keys.h"
#include "scale-observe.h"
#include "scale.h"
#include "scaler.h"

struct scaler {
	etcd_client *etcd;
	ec2_client *ec2;
	sd_event *event;
	char *prefix, *cluster;
	scale_status_code no_ec2_code;  /* ec2 NULL: why, for scale/status */
	char *no_ec2_reason;
	int64_t token;
	uint64_t interval_usec;
	int64_t grace;
	bool dry_run;
	scaler_crash crash;
	scaler_callbacks cb;
	void *userdata;

	sd_event_source *timer;
	etcd_watch *watches[5];
	etcd_watch *dead_watches[5];    /* stopped by etcd, freed outside their callback */
	sd_event_source *rewatch;
	cycle *cyc;
	bool running, pending, stopped;
	unsigned cycles;
	unsigned cycles_failed;
	cycle *last;                    /* the cycle whose report scale/metrics holds */
	/* spot capacity errors seen since the last decision (owned) */
	scale_spot_error *spot_errors;
	size_t n_spot_errors;
	/* what each pool's last decision line said, without the load
	 * (scale_decision_line): a new line and a history record on change */
	json_t *last_keys;
	/* scale/status as last written (or read back, when known) */
	scale_status status;
	bool status_known;
	/* dry run */
	char *plan;
	bool plan_done;
	int plan_error;
};

/* ---- the end of a cycle ---- */

static void schedule(scaler *s, uint64_t usec);

static void stop_all(scaler *s) {
	s->stopped = true;
	s->timer = sd_event_source_disable_unref(s->timer);
	s->rewatch = sd_event_source_disable_unref(s->rewatch);
	for (size_t i = 0; i < ELEMENTSOF(s->watches); i++)
		s->watches[i] = etcd_watch_free(s->watches[i]);
	if (s->cyc && s->cyc->call) {
		etcd_call_cancel(s->cyc->call);
		s->cyc->call = NULL;
	}
	if (s->cyc && s->cyc->op) {
		ec2_op_cancel(s->cyc->op);
		s->cyc->op = NULL;
	}
}

/* The plan text (and the errors met), or NULL when nothing was decided. */
static char *cycle_text(const cycle *c) {
	_cleanup_free_ char *text = NULL;
	char *t = NULL;

	if (!c || !c->decided)
		return NULL;
	text = scale_plan_format(&c->out);
	if (!text || c->n_errors == 0)
		return TAKE_PTR(text);
	json_auto_t *errors = json_array();
	for (size_t i = 0; errors && i < c->n_errors; i++)
		json_array_append_new(errors, json_string(c->errors[i]));
	_cleanup_free_ char *errs = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
	if (errs && asprintf(&t, "%s\nerrors: %s\n", text, errs) >= 0)
		return t;
	return TAKE_PTR(text);
}

/* This cycle's spot capacity errors are the next decision's. */
static void keep_spot_errors(scaler *s, cycle *c) {
	scale_spot_error *n;

	if (c->n_spot_failed == 0)
		return;
	n = realloc(s->spot_errors, (s->n_spot_errors + c->n_spot_failed) * sizeof *n);
	if (!n)
		return;
	memcpy(n + s->n_spot_errors, c->spot_failed, c->n_spot_failed * sizeof *n);
	s->spot_errors = n;
	s->n_spot_errors += c->n_spot_failed;
	free(TAKE_PTR(c->spot_failed));
	c->n_spot_failed = 0;
}

/* The status a cycle's end implies, written and reported on change. A
 * stopped or fenced scaler says nothing: the next leader will. */
static void update_status(scaler *s, cycle *c, int error, const char *why) {
	scale_status next = { .code = SCALE_STATUS_OK, .interval = (int64_t) (s->interval_usec / USEC_PER_SEC),
			      .token = s->token, .since = c->now };
	scale_status stored;
	json_auto_t *j = NULL;

	if (s->dry_run || error == -EPERM || error == -ECANCELED)
		return;
	if (error < 0) {
		next.code = c->fail_code;
		snprintf(next.reason, sizeof next.reason, "%s", why ?: "failed");
	}
	/* A new leader takes over its predecessor's record: the same trouble
	 * keeps its since. */
	if (!s->status_known && c->snap.status &&
	    (j = json_loadb(c->snap.status, c->snap.status_len, 0, NULL)) && scale_status_from_json(j, &stored) == 0) {
		s->status = stored;
		s->status_known = true;
	}
	if (s->status_known && s->status.code == next.code && streq(s->status.reason, next.reason))
		next.since = s->status.since;
	if (s->status_known && !scale_status_changed(&s->status, &next))
		return;
	if (scaler_status_write(s->etcd, s->prefix, &next) < 0)
		return;
	s->status = next;
	s->status_known = true;
	if (s->cb.status)
		s->cb.status(s, &s->status, s->userdata);
}

static void finish(cycle *c, int error, const char *why) {
	scaler *s = c->owner;
	_cleanup_free_ char *text = error < 0 && why ? strdup(why) : cycle_text(c);

	if (!text && why)
		text = strdup(why);
	update_status(s, c, error, why);
	keep_spot_errors(s, c);
	if (c->reported) {
		cycle_free(s->last);
		s->last = c;
	} else
		cycle_free(c);
	s->cyc = NULL;
	s->running = false;
	s->cycles++;
	if (error < 0)
		s->cycles_failed++;
	if (s->dry_run) {
		s->plan_done = true;
		s->plan_error = error;
		free(s->plan);
		s->plan = TAKE_PTR(text);
		stop_all(s);
		if (s->cb.cycle)
			s->cb.cycle(s, error, s->plan, s->userdata);
		return;
	}
	if (error == -EPERM || error == -ECANCELED)
		stop_all(s);
	else
		schedule(s, s->pending ? 0 : s->interval_usec);
	if (error == -EPERM && s->cb.fenced)
		s->cb.fenced(s, s->userdata);
	if (s->cb.cycle)
		s->cb.cycle(s, error, text, s->userdata);
}

static void executed(cycle *c, int error, const char *why) {
	finish(c, error, why ?: "done");
}

static void on_action(cycle *c, int priority, const char *line) {
	scaler *s = c->owner;

	if (s->cb.action)
		s->cb.action(s, priority, line, s->userdata);
}

/* A line per pool whose decision differs from its last one (desired,
 * hosts by state, actions); c->changed when any does: a history record. */
static void say_decisions(scaler *s, cycle *c) {
	char key[768], line[1024];

	if (!s->last_keys)
		s->last_keys = json_object();
	c->changed = c->out.n_actions > 0 || c->obs.n_terminate > 0 || c->obs.gone > 0;
	for (size_t i = 0; s->last_keys && i < c->out.n_metrics; i++) {
		const char *pool = c->out.metrics[i].pool;
		scale_decision_line(&c->out, i, false, key, sizeof key);
		if (streq_ptr(json_string_value(json_object_get(s->last_keys, pool)), key))
			continue;
		c->changed = true;
		json_object_set_new(s->last_keys, pool, json_string(key));
		on_action(c, LOG_INFO, scale_decision_line(&c->out, i, true, line, sizeof line));
	}
}

/* ---- observe + decide (pure), then act ---- */

static void gathered(cycle *c, int error, const char *why) {
	scaler *s = c->owner;
	int r;

	if (error < 0)
		return finish(c, error, why);
	/* The spot errors since the last decision are this decision's. */
	c->spot_errors = TAKE_PTR(s->spot_errors);
	c->n_spot_errors = s->n_spot_errors;
	s->n_spot_errors = 0;
	c->snap.records.spot_errors = c->spot_errors;
	c->snap.records.n_spot_errors = c->n_spot_errors;

	r = scale_observe(&c->snap.records, &c->obs);
	for (size_t i = 0; r >= 0 && i < c->obs.n_errors; i++)
		cycle_note(c, "%s", c->obs.errors[i]);
	if (r < 0)
		return finish(c, r, "out of memory");
	r = scale_decide(&c->obs.input, &c->out);
	if (r < 0)
		return finish(c, r, "decision failed");
	c->decided = true;
	if (s->dry_run)
		return finish(c, 0, NULL);
	say_decisions(s, c);
	c->next = executed;
	execute_start(c);
}

static void cycle_start(scaler *s) {
	cycle *c;

	s->pending = false;
	s->running = true;
	c = s->cyc = calloc(1, sizeof *s->cyc);
	if (!c) {
		s->running = false;
		return schedule(s, s->interval_usec);
	}
	*c = (cycle) {
		.etcd = s->etcd,
		.ec2 = s->ec2,
		.no_ec2_code = s->no_ec2_code,
		.no_ec2_reason = s->no_ec2_reason,
		.prefix = s->prefix,
		.cluster = s->cluster,
		.leader_key = keys_one_of(s->prefix, KEYS_LEADER),
		.token = s->token,
		.grace = s->grace,
		.crash = s->crash,
		.now = time(NULL),
		.fail_code = SCALE_STATUS_FAILED,
		.next = gathered,
		.action = on_action,
		.owner = s,
	};
	c->snap.records = (scale_records) { .cluster = s->cluster, .now = c->now, .launch_grace = s->grace };
	if (!c->leader_key)
		return finish(c, -ENOMEM, "out of memory");
	gather_start(c);
}

/* ---- timer and watches ---- */

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
	scaler *s = userdata;

	s->timer = sd_event_source_disable_unref(s->timer);
	if (!s->stopped && !s->running)
		cycle_start(s);
	return 0;
}

static void schedule(scaler *s, uint64_t usec) {
	s->timer = sd_event_source_disable_unref(s->timer);
	if (s->stopped)
		return;
	(void) sd_event_add_time_relative(s->event, &s->timer, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, on_timer, s);
}

void scaler_trigger(scaler *s) {
	if (!s || s->stopped)
		return;
	if (s->running) {
		s->pending = true;
		return;
	}
	schedule(s, 0);
}

/* What starts a cycle at once; the order is the slots of s->watches. */
static const struct {
	bool dir;
	int which;              /* keys_one, or keys_dir when dir */
} watched[] = { { false, KEYS_SCALE_TRIGGER }, { false, KEYS_SCALE_POLICY }, { false, KEYS_SCALE_STOP },
		{ true, KEYS_HOLDS }, { false, KEYS_MAINTENANCE } };

static int watch(scaler *s, size_t slot);

static int on_rewatch(sd_event_source *src, void *userdata) {
	scaler *s = userdata;

	s->rewatch = sd_event_source_disable_unref(s->rewatch);
	for (size_t i = 0; i < ELEMENTSOF(s->dead_watches); i++)
		s->dead_watches[i] = etcd_watch_free(s->dead_watches[i]);
	for (size_t i = 0; i < ELEMENTSOF(watched); i++)
		if (!s->watches[i] && !s->stopped)
			(void) watch(s, i);
	return 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	scaler *s = userdata;

	if (m->type == ETCD_WATCH_EVENTS || m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED)
		scaler_trigger(s);
	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* That watch has stopped: start it again from now (the cycle just
		 * triggered reads everything afresh), outside its callback. */
		for (size_t i = 0; i < ELEMENTSOF(s->watches); i++)
			if (s->watches[i] == w) {
				s->dead_watches[i] = w;
				s->watches[i] = NULL;
			}
		if (!s->rewatch && !s->stopped)
			(void) sd_event_add_defer(s->event, &s->rewatch, on_rewatch, s);
	}
}

static int watch(scaler *s, size_t slot) {
	_cleanup_free_ char *key = watched[slot].dir ? keys_dir_of(s->prefix, watched[slot].which) :
						       keys_one_of(s->prefix, watched[slot].which);

	if (!key)
		return -ENOMEM;
	etcd_watch_req req = { .key = key, .prefix = watched[slot].dir };
	return etcd_watch_new(&s->watches[slot], s->etcd, &req, on_watch, s);
}

/* ---- life ---- */

scaler *scaler_free(scaler *s) {
	if (!s)
		return NULL;
	stop_all(s);
	for (size_t i = 0; i < ELEMENTSOF(s->dead_watches); i++)
		s->dead_watches[i] = etcd_watch_free(s->dead_watches[i]);
	s->cyc = cycle_free(s->cyc);
	s->last = cycle_free(s->last);
	cycle_spot_errors_free(s->spot_errors, s->n_spot_errors);
	json_decref(s->last_keys);
	sd_event_unref(s->event);
	free(s->prefix);
	free(s->cluster);
	free(s->no_ec2_reason);
	free(s->plan);
	free(s);
	return NULL;
}

int scaler_new(scaler **out, etcd_client *etcd, ec2_client *ec2, const scaler_options *o,
	       const scaler_callbacks *cb, void *userdata) {
	_cleanup_(scaler_freep) scaler *s = NULL;
	int r;

	if (!out || !etcd || (!ec2 && o && o->dry_run) || !o || !o->prefix || !o->cluster ||
	    (!o->dry_run && o->token <= 0))
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->etcd = etcd;
	s->ec2 = ec2;
	s->event = sd_event_ref(etcd_client_event(etcd));
	s->prefix = strdup(o->prefix);
	s->cluster = strdup(o->cluster);
	s->no_ec2_code = o->no_ec2_code != SCALE_STATUS_OK ? o->no_ec2_code : SCALE_STATUS_NO_REGION;
	s->no_ec2_reason = strdup(o->no_ec2_reason ?: "no EC2 region (set ec2.region)");
	if (!s->prefix || !s->cluster || !s->no_ec2_reason)
		return -ENOMEM;
	s->token = o->token;
	s->interval_usec = o->interval_usec ?: 30 * USEC_PER_SEC;
	s->grace = o->launch_grace_sec > 0 ? o->launch_grace_sec : 300;
	s->dry_run = o->dry_run;
	s->crash = o->crash;
	if (cb)
		s->cb = *cb;
	s->userdata = userdata;
	if (!s->dry_run) {
		for (size_t i = 0; i < ELEMENTSOF(watched); i++) {
			r = watch(s, i);
			if (r < 0)
				return r;
		}
	}
	schedule(s, 0);
	if (!s->timer)
		return -ENOMEM;
	*out = TAKE_PTR(s);
	return 0;
}

unsigned scaler_cycles(const scaler *s) {
	return s ? s->cycles : 0;
}

unsigned scaler_cycles_failed(const scaler *s) {
	return s ? s->cycles_failed : 0;
}

const scale_report *scaler_last_metrics(const scaler *s) {
	return s && s->last ? &s->last->report : NULL;
}

bool scaler_stopped(const scaler *s) {
	return !s || s->stopped;
}

int scaler_plan_once(etcd_client *etcd, ec2_client *ec2, const scaler_options *o, char **plan) {
	_cleanup_(scaler_freep) scaler *s = NULL;
	scaler_options d;
	int r;

	if (!o || !plan)
		return -EINVAL;
	d = *o;
	d.dry_run = true;
	d.crash = SCALER_CRASH_NONE;
	r = scaler_new(&s, etcd, ec2, &d, NULL, NULL);
	if (r < 0)
		return r;
	while (!s->plan_done) {
		r = sd_event_run(s->event, UINT64_MAX);
		if (r < 0)
			return r;
	}
	if (s->plan_error < 0)
		return s->plan_error;
	*plan = TAKE_PTR(s->plan);
	return 0;
}
