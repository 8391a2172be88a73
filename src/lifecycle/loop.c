/* loop.c — the leader's lifecycle loop: observe -> decide -> act, one
 * round at a time on the shared sd-event loop (lifecycle.h). A round reads
 * every record at one revision (snapshot.c), turns them into the input
 * (deployment_observe()) and the decision (deployment_decide(), pure,
 * src/deployment/), and has execute.c carry it out. Rounds start on a
 * change under the watched keys (coalesced by a short defer, so a burst is
 * one round), at the decision's wake time, and after a slow safety
 * re-read; never by a polling interval. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "keys.h"
#include "lifecycle-internal.h"

#define DEFER_USEC (30 * USEC_PER_MSEC)
#define REREAD_USEC (60 * USEC_PER_SEC)
#define RETRY_USEC     (1 * USEC_PER_SEC)   /* after a failed round (etcd away), */
#define RETRY_CAP_USEC (30 * USEC_PER_SEC)  /* doubling, jittered */

/* What starts a round: these folders, then these keys. */
static const keys_dir watched_dirs[] = { KEYS_DEPLOYMENTS, KEYS_DEPLOYMENT_REPORTS, KEYS_NODES, KEYS_SCALE_HOSTS };
static const keys_one watched_ones[] = { KEYS_DEPLOYMENT_POLICY, KEYS_SCALE_POLICY, KEYS_MAINTENANCE };
#define N_WATCHES (ELEMENTSOF(watched_dirs) + ELEMENTSOF(watched_ones))

struct lifecycle_loop {
	etcd_client *etcd;
	sd_event *event;
	char *prefix, *leader_key, *cluster;
	int64_t token;
	uint64_t defer_usec, reread_usec;
	lifecycle_callbacks cb;
	void *userdata;

	etcd_watch *watches[N_WATCHES];
	etcd_watch *dead_watches[N_WATCHES];    /* stopped by etcd, freed outside their callback */
	sd_event_source *rewatch;
	sd_event_source *soon;          /* the coalescing defer (or a retry) */
	backoff retry;
	sd_event_source *wake_timer;    /* at the decision's wake (CLOCK_REALTIME) */
	sd_event_source *reread;
	lc_round *round;                /* in flight */
	lc_round *last;                 /* the last round decided and carried out */
	char *notes;                    /* observe's notes (or policy error) last said */
	bool running, pending, stopped;
	unsigned rounds, rounds_failed, notices_failed;
	time_t wake;
};

static void arm_soon(lifecycle_loop *l, uint64_t usec);

static void stop_all(lifecycle_loop *l) {
	l->stopped = true;
	l->soon = sd_event_source_disable_unref(l->soon);
	l->wake_timer = sd_event_source_disable_unref(l->wake_timer);
	l->reread = sd_event_source_disable_unref(l->reread);
	l->rewatch = sd_event_source_disable_unref(l->rewatch);
	for (size_t i = 0; i < N_WATCHES; i++)
		l->watches[i] = etcd_watch_free(l->watches[i]);
	l->round = lc_round_free(l->round);
}

static void say(lifecycle_loop *l, bool warning, const char *line) {
	if (l->cb.line && line && line[0])
		l->cb.line(l, warning, line, l->userdata);
}

/* Notes (bad records, a bad policy) said once each time they change. */
static void say_notes(lifecycle_loop *l, char **notes, size_t n, const char *policy_error) {
	size_t len = policy_error ? strlen(policy_error) + 1 : 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(notes[i]) + 1;
	_cleanup_free_ char *all = calloc(len + 1, 1);
	if (!all)
		return;
	if (policy_error)
		strcat(strcat(all, policy_error), "\n");
	for (size_t i = 0; i < n; i++)
		strcat(strcat(all, notes[i]), "\n");
	if (streq(all, l->notes ?: ""))
		return;
	if (policy_error)
		say(l, true, policy_error);
	for (size_t i = 0; i < n; i++)
		say(l, true, notes[i]);
	free(l->notes);
	l->notes = TAKE_PTR(all);
}

/* ---- the end of a round ---- */

static int on_wake(sd_event_source *src, uint64_t usec, void *userdata) {
	lifecycle_loop *l = userdata;

	l->wake_timer = sd_event_source_disable_unref(l->wake_timer);
	l->wake = 0;
	lifecycle_loop_trigger(l);
	return 0;
}

static int on_reread(sd_event_source *src, uint64_t usec, void *userdata) {
	lifecycle_loop *l = userdata;

	l->reread = sd_event_source_disable_unref(l->reread);
	lifecycle_loop_trigger(l);
	return 0;
}

/* The decision's wake, on the real clock (a whole second; one already
 * past: the next second, so no spin). */
static void arm_wake(lifecycle_loop *l, time_t wake, time_t now) {
	l->wake_timer = sd_event_source_disable_unref(l->wake_timer);
	l->wake = 0;
	if (wake <= 0 || l->stopped)
		return;
	if (wake <= now)
		wake = now + 1;
	if (sd_event_add_time(l->event, &l->wake_timer, CLOCK_REALTIME, (uint64_t) wake * USEC_PER_SEC, USEC_PER_MSEC,
			      on_wake, l) >= 0)
		l->wake = wake;
}

static void round_end(lc_round *r, int error, const char *why) {
	lifecycle_loop *l = r->loop;

	l->round = NULL;
	l->running = false;
	l->rounds++;
	l->notices_failed += r->notices_failed;
	if (error < 0)
		l->rounds_failed++;
	if (error == 0 && r->decided) {
		/* out.wake is on the decision's clock (clock_offset added) */
		time_t wake = r->out.wake ? r->out.wake - r->obs.policy.clock_offset : 0;
		arm_wake(l, wake, r->now);
		lc_round_free(l->last);
		l->last = r;
	} else
		lc_round_free(r);
	if (error == -EPERM) {
		stop_all(l);
		if (l->cb.fenced)
			l->cb.fenced(l, l->userdata);
	} else if (!l->stopped) {
		if (error < 0)
			arm_soon(l, backoff_next(&l->retry, backoff_random()));
		else
			backoff_reset(&l->retry);
		if (error >= 0 && (l->pending || (l->last == r && r->changed)))
			arm_soon(l, l->defer_usec);
		l->reread = sd_event_source_disable_unref(l->reread);
		(void) sd_event_add_time_relative(l->event, &l->reread, CLOCK_MONOTONIC, l->reread_usec,
						  USEC_PER_SEC, on_reread, l);
	}
	if (l->cb.round)
		l->cb.round(l, error, why, l->userdata);
}

static void on_line(lc_round *r, bool warning, const char *line) {
	say(r->loop, warning, line);
}

/* ---- observe + decide (pure), then act ---- */

static void on_read(etcd_client *e, etcd_response *resp, void *userdata) {
	lc_round *r = userdata;
	lifecycle_loop *l = r->loop;
	deployment_error derr = {};
	char buf[512];
	int k;

	r->call = NULL;
	if (resp->error.code < 0) {
		etcd_error_format(&resp->error, buf, sizeof buf);
		k = resp->error.code;
		etcd_response_free(resp);
		return round_end(r, k, buf);
	}
	r->now = time(NULL);
	r->have_snap = true;
	if ((k = lifecycle_snapshot_take(&r->snap, l->prefix, resp, r->now)) < 0)
		return round_end(r, k, "out of memory");
	if (r->snap.leader_create_revision != l->token)
		return round_end(r, -EPERM, "the leader key is not ours");
	k = deployment_observe(&r->snap.records, &r->obs, &derr);
	if (k == -EINVAL) {
		/* nothing is decided on a policy nobody meant */
		snprintf(buf, sizeof buf, "%s: nothing decided until it is fixed", derr.message);
		say_notes(l, NULL, 0, buf);
		return round_end(r, 0, "deployment_policy refused");
	}
	if (k < 0)
		return round_end(r, k, "observe failed");
	r->observed = true;
	say_notes(l, r->obs.errors, r->obs.n_errors, NULL);
	if ((k = deployment_decide(&r->obs.input, &r->out)) < 0)
		return round_end(r, k, "decision failed");
	r->decided = true;
	lifecycle_execute_start(r);
}

static void round_start(lifecycle_loop *l) {
	_cleanup_(lifecycle_snapshot_request_done) lifecycle_snapshot_req req = {};
	lc_round *r;
	int k;

	l->pending = false;
	l->running = true;
	r = l->round = calloc(1, sizeof *r);
	if (!r) {
		l->running = false;
		return arm_soon(l, backoff_next(&l->retry, backoff_random()));
	}
	*r = (lc_round) {
		.loop = l,
		.etcd = l->etcd,
		.event = l->event,
		.prefix = l->prefix,
		.leader_key = l->leader_key,
		.cluster = l->cluster,
		.token = l->token,
		.now = time(NULL),
		.line = on_line,
		.done = round_end,
	};
	k = lifecycle_snapshot_request(&req, l->prefix);
	if (k >= 0)
		k = etcd_txn(l->etcd, &req.txn, on_read, r, &r->call);
	if (k < 0)
		round_end(r, k, "cannot read");
}

/* ---- triggers ---- */

static int on_soon(sd_event_source *src, uint64_t usec, void *userdata) {
	lifecycle_loop *l = userdata;

	l->soon = sd_event_source_disable_unref(l->soon);
	if (l->stopped)
		return 0;
	if (l->running) {
		l->pending = true;
		return 0;
	}
	round_start(l);
	return 0;
}

static void arm_soon(lifecycle_loop *l, uint64_t usec) {
	if (l->soon || l->stopped)
		return;
	(void) sd_event_add_time_relative(l->event, &l->soon, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, on_soon, l);
}

void lifecycle_loop_trigger(lifecycle_loop *l) {
	if (!l || l->stopped)
		return;
	if (l->running) {
		l->pending = true;
		return;
	}
	arm_soon(l, l->defer_usec);
}

static int watch(lifecycle_loop *l, size_t slot);

static int on_rewatch(sd_event_source *src, void *userdata) {
	lifecycle_loop *l = userdata;

	l->rewatch = sd_event_source_disable_unref(l->rewatch);
	for (size_t i = 0; i < N_WATCHES; i++)
		l->dead_watches[i] = etcd_watch_free(l->dead_watches[i]);
	for (size_t i = 0; i < N_WATCHES; i++)
		if (!l->watches[i] && !l->stopped)
			(void) watch(l, i);
	return 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	lifecycle_loop *l = userdata;

	/* CREATED too: a watch starts "from now" when etcd gets it, which may
	 * be after the first round's read; a change in between is seen by the
	 * round this starts (a burst of them coalesces into one). */
	if (m->type == ETCD_WATCH_CREATED || m->type == ETCD_WATCH_EVENTS || m->type == ETCD_WATCH_COMPACTED ||
	    m->type == ETCD_WATCH_CANCELED)
		lifecycle_loop_trigger(l);
	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* watch again from now, outside this callback: the round just
		 * triggered reads everything afresh */
		for (size_t i = 0; i < N_WATCHES; i++)
			if (l->watches[i] == w) {
				l->dead_watches[i] = w;
				l->watches[i] = NULL;
			}
		if (!l->rewatch && !l->stopped)
			(void) sd_event_add_defer(l->event, &l->rewatch, on_rewatch, l);
	}
}

static int watch(lifecycle_loop *l, size_t slot) {
	bool dir = slot < ELEMENTSOF(watched_dirs);
	_cleanup_free_ char *key = dir ? keys_dir_of(l->prefix, watched_dirs[slot])
				       : keys_one_of(l->prefix, watched_ones[slot - ELEMENTSOF(watched_dirs)]);

	if (!key)
		return -ENOMEM;
	etcd_watch_req req = { .key = key, .prefix = dir };
	return etcd_watch_new(&l->watches[slot], l->etcd, &req, on_watch, l);
}

/* ---- life ---- */

lifecycle_loop *lifecycle_loop_free(lifecycle_loop *l) {
	if (!l)
		return NULL;
	stop_all(l);
	for (size_t i = 0; i < N_WATCHES; i++)
		l->dead_watches[i] = etcd_watch_free(l->dead_watches[i]);
	l->last = lc_round_free(l->last);
	sd_event_unref(l->event);
	free(l->prefix);
	free(l->leader_key);
	free(l->cluster);
	free(l->notes);
	free(l);
	return NULL;
}

int lifecycle_loop_new(lifecycle_loop **out, etcd_client *etcd, const lifecycle_options *o,
		       const lifecycle_callbacks *cb, void *userdata) {
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = NULL;
	int r;

	if (!out || !etcd || !o || !o->prefix || o->token <= 0)
		return -EINVAL;
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->retry = BACKOFF_INIT(RETRY_USEC, RETRY_CAP_USEC);
	l->etcd = etcd;
	l->event = sd_event_ref(etcd_client_event(etcd));
	l->prefix = strdup(o->prefix);
	l->leader_key = keys_one_of(o->prefix, KEYS_LEADER);
	l->cluster = strdup(o->cluster ?: "");
	if (!l->prefix || !l->leader_key || !l->cluster)
		return -ENOMEM;
	l->token = o->token;
	l->defer_usec = o->defer_usec ?: DEFER_USEC;
	l->reread_usec = o->reread_usec ?: REREAD_USEC;
	if (cb)
		l->cb = *cb;
	l->userdata = userdata;
	for (size_t i = 0; i < N_WATCHES; i++)
		if ((r = watch(l, i)) < 0)
			return r;
	arm_soon(l, 0);
	if (!l->soon)
		return -ENOMEM;
	*out = TAKE_PTR(l);
	return 0;
}

bool lifecycle_loop_stopped(const lifecycle_loop *l) {
	return !l || l->stopped;
}

unsigned lifecycle_loop_rounds(const lifecycle_loop *l) {
	return l ? l->rounds : 0;
}

unsigned lifecycle_loop_rounds_failed(const lifecycle_loop *l) {
	return l ? l->rounds_failed : 0;
}

unsigned lifecycle_loop_notices_failed(const lifecycle_loop *l) {
	return l ? l->notices_failed : 0;
}

const deployment_output *lifecycle_loop_last(const lifecycle_loop *l) {
	return l && l->last ? &l->last->out : NULL;
}

time_t lifecycle_loop_wake(const lifecycle_loop *l) {
	return l ? l->wake : 0;
}
