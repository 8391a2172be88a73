/* loop.c — the leader's rollout loop: observe -> decide -> act, one round
 * at a time on the shared sd-event loop (rollout-loop.h). A round reads
 * every record at one revision (snapshot.c), turns them into the input
 * (rollout_observe()) and the decision (rollout_decide(), pure, src/rollout/),
 * and has execute.c carry it out. Rounds start on a change under the
 * watched folders that can change the decision (listening_after(); coalesced
 * by a short defer, so a burst is one round), at
 * the decision's wake time, and after a slow safety re-read; never by a
 * polling interval. The fleet gate runs here (child.h) when the decision
 * asks: its result goes into the next round's decision. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "child.h"
#include "keys.h"
#include "restage.h"
#include "rollout-version.h"
#include "round.h"

#define DEFER_USEC (30 * USEC_PER_MSEC)
#define REREAD_USEC (60 * USEC_PER_SEC)
#define RETRY_USEC     (1 * USEC_PER_SEC)   /* after a failed round (etcd away), */
#define RETRY_CAP_USEC (30 * USEC_PER_SEC)  /* doubling, jittered */

/* The folders whose changes start a round, in the slots of l->watches
 * (upgrade/ first, nodes/ second: listening_after() relies on it), then
 * `current` (a staged config rebases on it). */
static const keys_dir watched[] = { KEYS_UPGRADE, KEYS_NODES, KEYS_STATUS, KEYS_HOLDS, KEYS_SCALE_HOSTS };
#define N_WATCHES (ELEMENTSOF(watched) + 1)
#define SLOT_CURRENT ELEMENTSOF(watched)

struct rollout_loop {
	etcd_client *etcd;
	sd_event *event;
	char *prefix, *leader_key;
	int64_t token;
	uint64_t defer_usec, reread_usec;
	rollout_loop_callbacks cb;
	void *userdata;

	etcd_watch *watches[N_WATCHES];
	etcd_watch *dead_watches[N_WATCHES];    /* stopped by etcd, freed outside their callback */
	sd_event_source *rewatch;
	sd_event_source *soon;          /* the coalescing defer (or a retry) */
	backoff retry;                  /* failed rounds in a row */
	sd_event_source *wake_timer;    /* at the decision's wake (CLOCK_REALTIME) */
	sd_event_source *reread;        /* the safety re-read */
	rollout_round *round;           /* in flight */
	rollout_round *last;            /* the last round carried out */
	child_run *gate;                /* the fleet gate, while it runs */
	ec2_client *ec2;                /* borrowed; NULL: none */
	rollout_version_op *version;    /* CREATE_VERSION, while it runs */
	char *created_version;          /* its result, for the next decision */
	rollout_gate gate_result;       /* for the next decision */
	char gate_what[160];            /* "p42 gen 1", for the gate's line */
	char *proposer;                 /* a rebased candidate's id: "<proposer>_<n>" */
	rollout_restage *restage;       /* the rebase, while it runs */
	char *rebased, *rebased_base;   /* its result, for the next decision */
	char *rebase_error;
	char *notes;                    /* observe's notes last said */
	bool running, pending, stopped;
	unsigned listening;             /* slots whose events start a round (bits) */
	unsigned rounds, rounds_failed;
	time_t last_time, wake;
};

static void arm_soon(rollout_loop *l, uint64_t usec);
static void round_start(rollout_loop *l);

static void rebase_forget(rollout_loop *l) {
	free(l->rebased);
	free(l->rebased_base);
	free(l->rebase_error);
	l->rebased = l->rebased_base = l->rebase_error = NULL;
}

#define LISTEN_ALL ((1u << N_WATCHES) - 1)
#define LISTEN(slot) (1u << (slot))

/* Which folders can change what the next decision does, given the last
 * one. With no plan only upgrade/ can (a new plan): the status puts of a
 * config change at 1,000 nodes then start no round at all. A finished
 * plan with no order left still takes new hosts (nodes/). Else all. */
static unsigned listening_after(const rollout_round *r) {
	if (!r->view.have_plan)
		return LISTEN(0);
	if (rollout_phase_terminal(r->out.state.phase) && r->view.n_orders == 0 && r->out.n_actions == 0)
		return LISTEN(0) | LISTEN(1);
	return LISTEN_ALL;
}

static void stop_all(rollout_loop *l) {
	l->stopped = true;
	l->soon = sd_event_source_disable_unref(l->soon);
	l->wake_timer = sd_event_source_disable_unref(l->wake_timer);
	l->reread = sd_event_source_disable_unref(l->reread);
	l->rewatch = sd_event_source_disable_unref(l->rewatch);
	l->gate = child_run_free(l->gate);
	l->restage = rollout_restage_free(l->restage);
	l->version = rollout_version_free(l->version);
	for (size_t i = 0; i < ELEMENTSOF(l->watches); i++)
		l->watches[i] = etcd_watch_free(l->watches[i]);
	if (l->round && l->round->call) {
		etcd_call_cancel(l->round->call);
		l->round->call = NULL;
	}
}

static void say(rollout_loop *l, const char *line) {
	if (l->cb.line && line && line[0])
		l->cb.line(l, line, l->userdata);
}

/* ---- the end of a round ---- */

static int on_wake(sd_event_source *src, uint64_t usec, void *userdata) {
	rollout_loop *l = userdata;

	l->wake_timer = sd_event_source_disable_unref(l->wake_timer);
	l->wake = 0;
	rollout_loop_trigger(l);
	return 0;
}

static int on_reread(sd_event_source *src, uint64_t usec, void *userdata) {
	rollout_loop *l = userdata;

	l->reread = sd_event_source_disable_unref(l->reread);
	rollout_loop_trigger(l);
	return 0;
}

/* The decision's wake time (a whole second; one already past: the next
 * second, so a decision that keeps asking for "now" cannot spin). */
static void arm_wake(rollout_loop *l, time_t wake, time_t now) {
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

static void round_end(rollout_round *r, int error, const char *why) {
	rollout_loop *l = r->owner;
	bool carried_out = error == 0 && r->decided;

	l->round = NULL;
	l->running = false;
	l->rounds++;
	if (error < 0)
		l->rounds_failed++;
	if (carried_out) {
		/* The gate's and the rebase's results went into this decision
		 * (and its state). */
		l->gate_result = ROLLOUT_GATE_NONE;
		rebase_forget(l);
		free(l->created_version);
		l->created_version = NULL;
		l->last_time = r->now;
		arm_wake(l, r->out.wake, r->now);
		l->listening = listening_after(r);
		rollout_round_free(l->last);
		l->last = r;
	} else
		rollout_round_free(r);
	if (error == -EPERM) {
		stop_all(l);
		if (l->cb.fenced)
			l->cb.fenced(l, l->userdata);
	} else if (!l->stopped) {
		/* -EAGAIN: `current` moved under a promotion; decide again now */
		if (error < 0 && error != -EAGAIN)
			arm_soon(l, backoff_next(&l->retry, backoff_random()));
		else
			backoff_reset(&l->retry);
		if ((error >= 0 && l->pending) || error == -EAGAIN)
			arm_soon(l, l->defer_usec);
		l->reread = sd_event_source_disable_unref(l->reread);
		(void) sd_event_add_time_relative(l->event, &l->reread, CLOCK_MONOTONIC, l->reread_usec,
						  USEC_PER_SEC, on_reread, l);
	}
	if (l->cb.round)
		l->cb.round(l, error, why, l->userdata);
}

static void on_line(rollout_round *r, const char *line) {
	say(r->owner, line);
}

/* ---- the gate ---- */

static void on_gate(child_run *run, const child_result *res, void *userdata) {
	rollout_loop *l = userdata;
	rollout_round *r = l->round;
	char line[700];

	l->gate = child_run_free(l->gate);
	if (res->error == 0)
		l->gate_result = ROLLOUT_GATE_PASS;
	else if (res->error == -EIO && res->exit_status == 1)
		l->gate_result = ROLLOUT_GATE_FAIL;
	else
		l->gate_result = ROLLOUT_GATE_INCONCLUSIVE;
	snprintf(line, sizeof line, "%s: gate %s (%s)", l->gate_what, rollout_gate_to_string(l->gate_result),
		 res->message);
	say(l, line);
	/* Decide again, from a fresh read, with the result. */
	l->pending = true;
	if (r)
		round_end(r, 0, "gate ran");
}

static bool wants(const rollout_output *out, rollout_action_kind kind) {
	for (size_t i = 0; i < out->n_actions; i++)
		if (out->actions[i].kind == kind)
			return true;
	return false;
}

static void gate_start(rollout_loop *l, rollout_round *r) {
	const rollout_plan *p = r->view.input.plan;
	int k;

	snprintf(l->gate_what, sizeof l->gate_what, "%s gen %lld", r->out.state.plan ?: "-",
		 (long long) r->out.state.generation);
	/* This decision is not carried out: the next one, with the result, is. */
	rollout_output_done(&r->out);
	r->decided = false;
	if (!p || !p->gate_command) {
		/* Nothing to run: inconclusive (the decision pauses). */
		l->gate_result = ROLLOUT_GATE_INCONCLUSIVE;
		l->pending = true;
		return round_end(r, 0, "no gate command");
	}
	child_options o = {
		.command = p->gate_command,
		.timeout_usec = (uint64_t) (p->gate_timeout > 0 ? p->gate_timeout : 60) * USEC_PER_SEC,
		.max_output = 64 * 1024,
	};
	k = child_run_start(&l->gate, l->event, &o, on_gate, l);
	if (k < 0) {
		l->gate_result = ROLLOUT_GATE_INCONCLUSIVE;
		l->pending = true;
		return round_end(r, 0, "cannot run the gate");
	}
}

/* ---- the rebase ---- */

/* A conflict, a folder gone or broken: the plan's failure. Anything else
 * (etcd away, lost races): the round's, tried again. */
static bool rebase_fails_plan(int code) {
	return code == -EEXIST || code == -ENOENT || code == -EBADMSG || code == -E2BIG || code == -ENOTDIR;
}

static void on_restaged(rollout_restage *op, const rollout_restage_result *res, void *userdata) {
	rollout_loop *l = userdata;
	rollout_round *r = l->round;
	char line[800];
	int code = res->code;

	l->restage = NULL;
	rollout_restage_free(op);
	rebase_forget(l);
	if (code == 0) {
		l->rebased = strdup(res->id);
		l->rebased_base = res->made_on ? strdup(res->made_on) : NULL;
		if (!l->rebased || (res->made_on && !l->rebased_base))
			code = -ENOMEM;
		snprintf(line, sizeof line, "%s: rebased on %s as %s", l->gate_what, res->made_on ?: "-", res->id);
	} else if (rebase_fails_plan(code)) {
		l->rebase_error = strdup(res->error ?: "failed");
		snprintf(line, sizeof line, "%s: rebase failed: %s", l->gate_what, res->error ?: "?");
		code = l->rebase_error ? 0 : -ENOMEM;
	} else
		snprintf(line, sizeof line, "%s: rebase not made: %s", l->gate_what, res->error ?: "?");
	say(l, line);
	if (code < 0)
		rebase_forget(l);
	/* Decide again, from a fresh read, with the result. */
	l->pending = code == 0;
	if (r)
		round_end(r, code, code == 0 ? "rebased" : res->error);
}

static void rebase_start(rollout_loop *l, rollout_round *r) {
	rollout_restage_options o = {
		.prefix = l->prefix,
		.proposer = l->proposer,
		.token = l->token,
		.base = r->out.state.candidate_base,
		.candidate = r->out.state.candidate,
	};
	int k;

	snprintf(l->gate_what, sizeof l->gate_what, "%s gen %lld", r->out.state.plan ?: "-",
		 (long long) r->out.state.generation);
	rebase_forget(l);
	k = rollout_restage_start(&l->restage, l->etcd, &o, on_restaged, l);
	/* This decision is not carried out: the next one, with the result, is. */
	rollout_output_done(&r->out);
	r->decided = false;
	if (k < 0)
		round_end(r, k, "cannot start the rebase");
}

/* ---- a launch template version (replace by relaunch, version.c) ---- */

static void on_version(rollout_version_op *v, int error, const char *version, const char *why, void *userdata) {
	rollout_loop *l = userdata;
	rollout_round *r = l->round;
	char line[1200];

	l->version = rollout_version_free(v);
	snprintf(line, sizeof line, "%s: %s", l->gate_what, why ?: "-");
	say(l, line);
	if (error >= 0 && version && !(l->created_version = strdup(version)))
		error = -ENOMEM;
	/* Decide again, from a fresh read, with the version (or retry later). */
	l->pending = error >= 0;
	if (r)
		round_end(r, error < 0 ? error : 0, error < 0 ? "no launch template version" : "version made");
}

static void version_start(rollout_loop *l, rollout_round *r) {
	snprintf(l->gate_what, sizeof l->gate_what, "%s gen %lld", r->out.state.plan ?: "-",
		 (long long) r->out.state.generation);
	int k = rollout_version_start(&l->version, l->etcd, l->ec2, l->prefix, r->view.input.plan, &r->out.state,
				      on_version, l);
	rollout_output_done(&r->out);
	r->decided = false;
	if (k < 0)
		round_end(r, k, l->ec2 ? "cannot make a launch template version" : "no EC2 client: cannot make a launch "
		                                                                   "template version");
}

/* ---- observe + decide (pure), then act ---- */

/* observe's notes, said when they change. */
static void say_notes(rollout_loop *l, const rollout_view *v) {
	_cleanup_free_ char *all = NULL;
	size_t len = 0;

	for (size_t i = 0; i < v->n_notes; i++)
		len += strlen(v->notes[i]) + 1;
	all = calloc(len + 1, 1);
	if (!all)
		return;
	for (size_t i = 0; i < v->n_notes; i++) {
		strcat(all, v->notes[i]);
		strcat(all, "\n");
	}
	if (streq(all, l->notes ?: ""))
		return;
	for (size_t i = 0; i < v->n_notes; i++)
		say(l, v->notes[i]);
	free(l->notes);
	l->notes = TAKE_PTR(all);
}

static void on_read(etcd_client *e, etcd_response *resp, void *userdata) {
	rollout_round *r = userdata;
	rollout_loop *l = r->owner;
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
	k = rollout_snapshot_take(&r->snap, l->prefix, resp, r->now);
	if (k < 0)
		return round_end(r, k, "out of memory");
	k = rollout_observe(&r->snap.records, &r->view);
	if (k < 0)
		return round_end(r, k, "observe failed");
	r->observed = true;
	say_notes(l, &r->view);
	r->view.input.gate = r->gate = l->gate_result;
	r->view.input.rebased = l->rebased;
	r->view.input.rebased_base = l->rebased_base;
	r->view.input.rebase_error = l->rebase_error;
	r->view.input.created_version = l->created_version;
	r->view.input.now = r->now;
	k = rollout_decide(&r->view.input, &r->out);
	if (k < 0)
		return round_end(r, k, "decision failed");
	r->decided = true;
	if (wants(&r->out, ROLLOUT_RUN_GATE) && l->gate_result == ROLLOUT_GATE_NONE)
		return gate_start(l, r);
	if (wants(&r->out, ROLLOUT_REBASE))
		return rebase_start(l, r);
	if (wants(&r->out, ROLLOUT_CREATE_VERSION))
		return version_start(l, r);
	rollout_execute_start(r);
}

static void round_start(rollout_loop *l) {
	_cleanup_(rollout_snapshot_request_done) rollout_snapshot_req req = {};
	rollout_round *r;
	int k;

	l->pending = false;
	l->running = true;
	r = l->round = calloc(1, sizeof *r);
	if (!r) {
		l->running = false;
		return arm_soon(l, backoff_next(&l->retry, backoff_random()));
	}
	*r = (rollout_round) {
		.etcd = l->etcd,
		.prefix = l->prefix,
		.leader_key = l->leader_key,
		.token = l->token,
		.now = time(NULL),
		.line = on_line,
		.done = round_end,
		.owner = l,
	};
	k = rollout_snapshot_request(&req, l->prefix);
	if (k >= 0)
		k = etcd_txn(l->etcd, &req.txn, on_read, r, &r->call);
	if (k < 0)
		round_end(r, k, "cannot read");
}

/* ---- triggers ---- */

static int on_soon(sd_event_source *src, uint64_t usec, void *userdata) {
	rollout_loop *l = userdata;

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

/* Arms the defer unless armed: triggers within it are one round. */
static void arm_soon(rollout_loop *l, uint64_t usec) {
	if (l->soon || l->stopped)
		return;
	(void) sd_event_add_time_relative(l->event, &l->soon, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, on_soon, l);
}

void rollout_loop_trigger(rollout_loop *l) {
	if (!l || l->stopped)
		return;
	if (l->running) {
		l->pending = true;
		return;
	}
	arm_soon(l, l->defer_usec);
}

static int watch(rollout_loop *l, size_t slot);

static int on_rewatch(sd_event_source *src, void *userdata) {
	rollout_loop *l = userdata;

	l->rewatch = sd_event_source_disable_unref(l->rewatch);
	for (size_t i = 0; i < ELEMENTSOF(l->dead_watches); i++)
		l->dead_watches[i] = etcd_watch_free(l->dead_watches[i]);
	for (size_t i = 0; i < N_WATCHES; i++)
		if (!l->watches[i] && !l->stopped)
			(void) watch(l, i);
	return 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	rollout_loop *l = userdata;

	unsigned slot = 0;

	while (slot < ELEMENTSOF(l->watches) && l->watches[slot] != w)
		slot++;
	if (m->type == ETCD_WATCH_EVENTS && slot < ELEMENTSOF(l->watches) && !(l->listening & LISTEN(slot)))
		return;
	if (m->type == ETCD_WATCH_EVENTS || m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED)
		rollout_loop_trigger(l);
	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* Stopped: watch again from now (the round just triggered
		 * reads everything afresh), outside its callback. */
		for (size_t i = 0; i < ELEMENTSOF(l->watches); i++)
			if (l->watches[i] == w) {
				l->dead_watches[i] = w;
				l->watches[i] = NULL;
			}
		if (!l->rewatch && !l->stopped)
			(void) sd_event_add_defer(l->event, &l->rewatch, on_rewatch, l);
	}
}

static int watch(rollout_loop *l, size_t slot) {
	bool current = slot == SLOT_CURRENT;
	_cleanup_free_ char *key = current ? keys_one_of(l->prefix, KEYS_CURRENT) : keys_dir_of(l->prefix, watched[slot]);

	if (!key)
		return -ENOMEM;
	etcd_watch_req req = { .key = key, .prefix = !current };
	return etcd_watch_new(&l->watches[slot], l->etcd, &req, on_watch, l);
}

/* ---- life ---- */

rollout_loop *rollout_loop_free(rollout_loop *l) {
	if (!l)
		return NULL;
	stop_all(l);
	for (size_t i = 0; i < ELEMENTSOF(l->dead_watches); i++)
		l->dead_watches[i] = etcd_watch_free(l->dead_watches[i]);
	l->round = rollout_round_free(l->round);
	l->last = rollout_round_free(l->last);
	l->version = rollout_version_free(l->version);
	free(l->created_version);
	sd_event_unref(l->event);
	free(l->prefix);
	free(l->leader_key);
	free(l->notes);
	free(l->proposer);
	rebase_forget(l);
	free(l);
	return NULL;
}

int rollout_loop_new(rollout_loop **out, etcd_client *etcd, const rollout_loop_options *o,
		     const rollout_loop_callbacks *cb, void *userdata) {
	_cleanup_(rollout_loop_freep) rollout_loop *l = NULL;
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
	l->proposer = strdup(o->proposer ?: "rollout");
	if (!l->prefix || !l->leader_key || !l->proposer)
		return -ENOMEM;
	l->token = o->token;
	l->ec2 = o->ec2;
	l->defer_usec = o->defer_usec ?: DEFER_USEC;
	l->listening = LISTEN_ALL;
	l->reread_usec = o->reread_usec ?: REREAD_USEC;
	if (cb)
		l->cb = *cb;
	l->userdata = userdata;
	for (size_t i = 0; i < N_WATCHES; i++) {
		r = watch(l, i);
		if (r < 0)
			return r;
	}
	arm_soon(l, 0);
	if (!l->soon)
		return -ENOMEM;
	*out = TAKE_PTR(l);
	return 0;
}

bool rollout_loop_stopped(const rollout_loop *l) {
	return !l || l->stopped;
}

unsigned rollout_loop_rounds(const rollout_loop *l) {
	return l ? l->rounds : 0;
}

unsigned rollout_loop_rounds_failed(const rollout_loop *l) {
	return l ? l->rounds_failed : 0;
}

const rollout_output *rollout_loop_last(const rollout_loop *l) {
	return l && l->last ? &l->last->out : NULL;
}

time_t rollout_loop_last_time(const rollout_loop *l) {
	return l ? l->last_time : 0;
}

time_t rollout_loop_wake(const rollout_loop *l) {
	return l ? l->wake : 0;
}
