/* units.c — asking the service manager to restart/reload/start/stop a unit
 * over sd-bus on the caller's sd-event loop, and finding out how it went:
 * the job's result (JobRemoved), then the unit's ActiveState, watched until
 * it settles.
 *
 * One connection per units_bus, with one JobRemoved match and one
 * Subscribe, set up right after connecting and so before any job is queued
 * on that connection: the manager handles a connection's messages in order,
 * so no JobRemoved can be missed. A JobRemoved whose job path we do not know
 * yet (its queueing call's reply not read yet) is kept while calls are in
 * flight and claimed when the reply names that path.
 *
 * A job's handler never calls more than one user callback, and touches
 * nothing after it: callbacks may cancel other jobs or free the bus. Where
 * one event concerns many jobs (a lost connection, a failure while handling
 * a JobRemoved shared by merged jobs), each job's own timer is set to fire
 * at once and reports for it. */
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include <systemd/sd-bus.h>

#include "units-internal.h"


#define UNITS_DEFAULT_TIMEOUT_USEC (90 * USEC_PER_SEC)
#define UNITS_DEFAULT_SETTLE_USEC (500 * USEC_PER_MSEC)
#define UNITS_POLL_MIN_USEC (20 * USEC_PER_MSEC)
#define UNITS_POLL_MAX_USEC (250 * USEC_PER_MSEC)

static const char *const action_names[] = {
	[UNITS_RESTART] = "restart",
	[UNITS_RELOAD] = "reload",
	[UNITS_TRY_RESTART] = "try-restart",
	[UNITS_RELOAD_OR_RESTART] = "reload-or-restart",
	[UNITS_START] = "start",
	[UNITS_STOP] = "stop",
	[UNITS_RUN] = "run",
	[UNITS_WAIT] = "wait",
};

static const char *const action_methods[] = {
	[UNITS_RESTART] = "RestartUnit",
	[UNITS_RELOAD] = "ReloadUnit",
	[UNITS_TRY_RESTART] = "TryRestartUnit",
	[UNITS_RELOAD_OR_RESTART] = "ReloadOrRestartUnit",
	[UNITS_START] = "StartUnit",
	[UNITS_STOP] = "StopUnit",
};

const char *units_action_to_string(units_action a) {
	if ((unsigned) a >= ELEMENTSOF(action_names))
		return NULL;
	return action_names[a];
}

uint64_t units_now(units_bus *b) {
	uint64_t t;

	if (sd_event_now(b->event, CLOCK_MONOTONIC, &t) < 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
	}
	return t;
}

void units_copy_str(char *dst, size_t size, const char *src) {
	(void) snprintf(dst, size, "%s", src ? src : "");
}

/* ---- the early JobRemoved list ---- */

static void early_clear(units_bus *b) {
	for (size_t i = 0; i < b->n_early; i++)
		free(b->early[i].path);
	b->n_early = 0;
}

static void early_add(units_bus *b, const char *path, const char *result) {
	char *p = strdup(path);

	if (!p)
		return;         /* the job then times out: no worse than losing it */
	if (b->n_early == UNITS_EARLY_MAX) {
		free(b->early[0].path);
		memmove(b->early, b->early + 1, (UNITS_EARLY_MAX - 1) * sizeof b->early[0]);
		b->n_early--;
	}
	b->early[b->n_early].path = p;
	units_copy_str(b->early[b->n_early].result, sizeof b->early[0].result, result);
	b->n_early++;
}

const char *units_early_find(units_bus *b, const char *path) {
	for (size_t i = 0; i < b->n_early; i++)
		if (streq(b->early[i].path, path))
			return b->early[i].result;
	return NULL;
}

/* Kept only while some call is in flight: later ones can never be claimed.
 * (Not removed when claimed: merged jobs share a path.) */
void units_early_prune(units_bus *b) {
	for (units_job *j = b->jobs; j; j = j->next)
		if (j->state == JOB_CALLING)
			return;
	early_clear(b);
}

/* ---- jobs ---- */

static void job_unlink(units_job *j) {
	units_bus *b = j->bus;

	if (!b)
		return;
	if (j->prev)
		j->prev->next = j->next;
	else
		b->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
	j->bus = NULL;
}

static void job_stop_io(units_job *j) {
	j->slot = sd_bus_slot_unref(j->slot);
	j->timer = sd_event_source_disable_unref(j->timer);
	j->poll = sd_event_source_disable_unref(j->poll);
}

void units_job_drop_ref(units_job *j) {
	units_bus *b = j->bus;

	if (!j->ref_held || !b || !b->bus)
		return;
	j->ref_held = false;
	/* Fire and forget: a failure leaves the reference to our connection,
	 * which drops it when it closes. */
	(void) sd_bus_call_method_async(b->bus, NULL, SD_DEST, SD_PATH, SD_MANAGER, "UnrefUnit", NULL, NULL, "s",
					j->unit);
}

void units_job_free(units_job *j) {
	if (!j)
		return;
	units_job_drop_ref(j);
	job_unlink(j);
	job_stop_io(j);
	free(j->unit);
	free(j->unit_path);
	free(j->job_path);
	free(j);
}

_printf_(2, 0) static void set_message(units_job *j, const char *fmt, va_list ap) {
	int n = snprintf(j->res.message, sizeof j->res.message, "%s of %s: ", units_action_to_string(j->action),
			 j->unit);
	if (n < 0 || (size_t) n >= sizeof j->res.message)
		return;
	(void) vsnprintf(j->res.message + n, sizeof j->res.message - (size_t) n, fmt, ap);
}

/* Reports j's outcome (as recorded in j->res) and frees j. The last thing
 * any handler does. */
static void job_report(units_job *j) {
	units_result res;

	units_job_drop_ref(j);
	job_unlink(j);
	job_stop_io(j);
	res = j->res;
	res.unit = j->unit;
	res.action = j->action;
	j->finishing = true;
	j->cb(j, &res, j->userdata);
	units_job_free(j);
}

void units_job_finish(units_job *j, int error, const char *fmt, ...) {
	va_list ap;

	j->res.error = error;
	va_start(ap, fmt);
	set_message(j, fmt, ap);
	va_end(ap);
	job_report(j);
}

/* Records the outcome and lets j's timer report it on the next loop
 * iteration: for handlers that deal with more than one job. */
void units_job_fail_soon(units_job *j, int error, const char *fmt, ...) {
	va_list ap;

	if (j->state == JOB_FAILING)
		return;
	j->state = JOB_FAILING;
	j->res.error = error;
	va_start(ap, fmt);
	set_message(j, fmt, ap);
	va_end(ap);
	j->slot = sd_bus_slot_unref(j->slot);
	j->poll = sd_event_source_disable_unref(j->poll);
	/* 1 µs of CLOCK_MONOTONIC is long past: due at once. (Cannot fail
	 * for a live timer; if it did, the deadline would still report.) */
	(void) sd_event_source_set_time(j->timer, 1);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
	units_job *j = userdata;

	if (j->state == JOB_FAILING) {
		job_report(j);
		return 0;
	}
	switch (j->state) {
	case JOB_CALLING:
		units_job_finish(j, -ETIMEDOUT, "no answer from the service manager within %llu ms",
			   (unsigned long long) (j->timeout_usec / USEC_PER_MSEC));
		break;
	case JOB_WAITING:
		units_job_finish(j, -ETIMEDOUT, "job %s not finished within %llu ms", j->job_path,
			   (unsigned long long) (j->timeout_usec / USEC_PER_MSEC));
		break;
	default:
		units_job_finish(j, -ETIMEDOUT, "job %s, but unit still %s after %llu ms",
			   j->res.job_result[0] ? j->res.job_result : "finished",
			   j->res.active_state[0] ? j->res.active_state : "unknown",
			   (unsigned long long) (j->timeout_usec / USEC_PER_MSEC));
		break;
	}
	return 0;
}

/* A bus error as -errno: the codes callers branch on first. */
int units_bus_errno(const sd_bus_error *e) {
	int r;

	if (sd_bus_error_has_names(e, "org.freedesktop.systemd1.NoSuchUnit",
				   "org.freedesktop.DBus.Error.UnknownObject"))
		return -ENOENT;
	r = sd_bus_error_get_errno(e);
	return r > 0 ? -r : -EIO;
}

bool units_bus_lost(sd_bus_message *m) {
	return sd_bus_is_open(sd_bus_message_get_bus(m)) <= 0;
}

static int on_state(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

static int read_state(units_job *j) {
	uint64_t now = units_now(j->bus), left = j->deadline > now ? j->deadline - now : 1;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	j->state = JOB_READING;
	r = sd_bus_message_new_method_call(j->bus->bus, &m, SD_DEST, j->unit_path, "org.freedesktop.DBus.Properties",
					   "GetAll");
	if (r >= 0)
		r = sd_bus_message_append(m, "s", SD_UNIT);
	/* Our deadline decides; the call's own timeout only backs it up. */
	if (r >= 0)
		r = sd_bus_call_async(j->bus->bus, &j->slot, m, on_state, j, left + USEC_PER_SEC);
	return r;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
	units_job *j = userdata;
	int r;

	j->poll = sd_event_source_disable_unref(j->poll);
	r = read_state(j);
	if (r < 0)
		units_job_finish(j, r, "cannot read the unit's state: %s", strerror(-r));
	return 0;
}

/* Reads the state again at `at` (clamped to the deadline, where the timer
 * reports instead). */
static int poll_at(units_job *j, uint64_t at) {
	j->state = JOB_POLLING;
	if (at >= j->deadline)
		return 0;       /* nothing to do but let the deadline report */
	return sd_event_add_time(j->bus->event, &j->poll, CLOCK_MONOTONIC, at, 1, on_poll, j);
}

static int poll_later(units_job *j) {
	j->poll_usec = j->poll_usec ? j->poll_usec * 2 : UNITS_POLL_MIN_USEC;
	if (j->poll_usec > UNITS_POLL_MAX_USEC)
		j->poll_usec = UNITS_POLL_MAX_USEC;
	return poll_at(j, units_now(j->bus) + j->poll_usec);
}

typedef struct unit_state {
	const char *active, *sub;
	const uint8_t *invocation;
	size_t invocation_len;
} unit_state;

static int parse_state(sd_bus_message *m, unit_state *st) {
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *name;

		r = sd_bus_message_read(m, "s", &name);
		if (r < 0)
			return r;
		if (streq(name, "ActiveState"))
			r = sd_bus_message_read(m, "v", "s", &st->active);
		else if (streq(name, "SubState"))
			r = sd_bus_message_read(m, "v", "s", &st->sub);
		else if (streq(name, "InvocationID")) {
			const void *p;
			r = sd_bus_message_enter_container(m, 'v', "ay");
			if (r >= 0)
				r = sd_bus_message_read_array(m, 'y', &p, &st->invocation_len);
			if (r >= 0) {
				st->invocation = p;
				r = sd_bus_message_exit_container(m);
			}
		} else
			r = sd_bus_message_skip(m, "v");
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	r = sd_bus_message_exit_container(m);
	if (r < 0)
		return r;
	return st->active && st->sub ? 0 : -EBADMSG;
}

/* What the job's result and the unit's state add up to: a report, or
 * another look later. */
static void decide(units_job *j, const unit_state *st) {
	const char *jr = j->res.job_result, *as = st->active;
	bool done = streq(jr, "done");
	int r;

	if (j->action == UNITS_TRY_RESTART && (done || streq(jr, "skipped")) && streq(as, "inactive")) {
		units_job_finish(j, 0, "job %s; unit inactive, left so", jr);
		return;
	}
	if (!done) {
		units_job_finish(j, -EIO, "job %s; unit %s (%s)", jr, as, st->sub);
		return;
	}

	if (j->action == UNITS_STOP) {
		if (streq(as, "inactive") || streq(as, "failed")) {
			units_job_finish(j, 0, "job done; unit %s (%s)", as, st->sub);
			return;
		}
		if (!streq(as, "deactivating")) {
			units_job_finish(j, -EIO, "job done, but unit %s (%s)", as, st->sub);
			return;
		}
		r = poll_later(j);
	} else if (streq(as, "active")) {
		bool same = st->invocation_len == j->invocation_len &&
			    memcmp(st->invocation, j->invocation, j->invocation_len) == 0;

		if (j->action == UNITS_RELOAD || j->bus->settle_usec == 0) {
			units_job_finish(j, 0, "job done; unit active (%s)", st->sub);
			return;
		}
		if (j->settling && !same) {
			units_job_finish(j, -EIO, "job done, but the unit failed and was restarted within %llu ms",
				   (unsigned long long) (j->bus->settle_usec / USEC_PER_MSEC));
			return;
		}
		if (j->settling && units_now(j->bus) >= j->settle_until) {
			units_job_finish(j, 0, "job done; unit active (%s)", st->sub);
			return;
		}
		if (!j->settling) {
			/* A Type=simple service is "active" as soon as it is
			 * forked, before it can fail: watch that it stays so
			 * (same invocation, still active) for a while, within
			 * half the time left so the last look fits. */
			uint64_t now = units_now(j->bus), left = j->deadline > now ? j->deadline - now : 0;
			uint64_t settle = j->bus->settle_usec < left / 2 ? j->bus->settle_usec : left / 2;

			j->settling = true;
			j->settle_until = now + settle;
			j->invocation_len = st->invocation_len <= sizeof j->invocation ? st->invocation_len : 0;
			memcpy(j->invocation, st->invocation, j->invocation_len);
		}
		r = poll_at(j, j->settle_until);
	} else if (streq(as, "activating") && streq(st->sub, "auto-restart")) {
		units_job_finish(j, -EIO, "job done, but the unit failed and waits to be restarted (%s/%s)", as, st->sub);
		return;
	} else if (streq(as, "activating") || streq(as, "reloading") || streq(as, "deactivating")) {
		r = poll_later(j);
	} else {
		units_job_finish(j, -EIO, "job done, but unit %s (%s)", as, st->sub);
		return;
	}
	if (r < 0)
		units_job_finish(j, r, "cannot schedule reading the unit's state: %s", strerror(-r));
}

static int on_state(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	unit_state st = {};
	int r;

	j->slot = sd_bus_slot_unref(j->slot);
	if (sd_bus_message_is_method_error(m, NULL)) {
		const sd_bus_error *e = sd_bus_message_get_error(m);
		if (units_bus_lost(m))
			units_job_finish(j, -ECONNRESET, "lost the connection to the service manager");
		else
			units_job_finish(j, units_bus_errno(e), "job %s; cannot read the unit's state: %s",
				   j->res.job_result, e->message ? e->message : e->name);
		return 0;
	}
	r = parse_state(m, &st);
	if (r < 0) {
		units_job_finish(j, r, "job %s; unreadable unit state: %s", j->res.job_result, strerror(-r));
		return 0;
	}
	units_copy_str(j->res.active_state, sizeof j->res.active_state, st.active);
	decide(j, &st);
	return 0;
}

/* The job is gone with `result`; now the unit's state. No callback here:
 * this runs for every job sharing the path. */
static void job_removed(units_job *j, const char *result) {
	int r;

	units_copy_str(j->res.job_result, sizeof j->res.job_result, result);
	if (j->removed) {
		j->removed(j);
		return;
	}
	r = read_state(j);
	if (r < 0)
		units_job_fail_soon(j, r, "job %s; cannot read the unit's state: %s", result, strerror(-r));
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_bus *b = userdata;
	const char *path, *unit, *result;
	bool claimed = false, calling = false;
	uint32_t id;

	if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
		return 0;       /* not what systemd sends; nothing to learn */
	for (units_job *j = b->jobs; j; j = j->next) {
		if (j->state == JOB_CALLING)
			calling = true;
		else if (j->state == JOB_WAITING && streq_ptr(j->job_path, path)) {
			claimed = true;
			job_removed(j, result);
		}
	}
	if (!claimed && calling)
		early_add(b, path, result);
	return 0;
}

bool units_job_reply_error(units_job *j, sd_bus_message *m) {
	const sd_bus_error *e;

	if (!sd_bus_message_is_method_error(m, NULL))
		return false;
	e = sd_bus_message_get_error(m);
	j->state = JOB_FAILING;
	units_early_prune(j->bus);
	if (units_bus_lost(m))
		units_job_finish(j, -ECONNRESET, "lost the connection to the service manager");
	else
		units_job_finish(j, units_bus_errno(e), "%s", e->message ? e->message : e->name);
	return true;
}

void units_job_queued(units_job *j, const char *path) {
	units_bus *b = j->bus;
	const char *early;

	j->job_path = strdup(path);
	if (!j->job_path) {
		j->state = JOB_FAILING;
		units_early_prune(b);
		units_job_finish(j, -ENOMEM, "out of memory");
		return;
	}
	j->state = JOB_WAITING;
	early = units_early_find(b, path);
	if (early)
		job_removed(j, early);
	units_early_prune(b);
}

static int on_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	const char *path;
	int r;

	j->slot = sd_bus_slot_unref(j->slot);
	if (units_job_reply_error(j, m))
		return 0;
	r = sd_bus_message_read(m, "o", &path);
	if (r < 0) {
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_finish(j, r, "unexpected answer from the service manager: %s", strerror(-r));
		return 0;
	}
	units_job_queued(j, path);
	return 0;
}

/* Everything pending on a lost connection fails now, each job through its
 * own timer (calls in flight already got sd-bus's error replies). */
static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_bus *b = userdata;

	if (!sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected"))
		return 0;
	if (sd_bus_message_get_bus(m) != b->bus)
		return 0;
	for (units_job *j = b->jobs; j; j = j->next)
		units_job_fail_soon(j, -ECONNRESET, "lost the connection to the service manager");
	return 0;
}

/* ---- the connection ---- */

/* Lets go of the connection; jobs still on it fail (through their timers:
 * no callback runs here). */
static void bus_drop(units_bus *b) {
	for (units_job *j = b->jobs; j; j = j->next)
		units_job_fail_soon(j, -ECONNRESET, "lost the connection to the service manager");
	b->match_slot = sd_bus_slot_unref(b->match_slot);
	b->filter_slot = sd_bus_slot_unref(b->filter_slot);
	/* Not flushed (that would block the loop) nor closed: our reference
	 * is the last once the slots are gone, except inside one of the
	 * connection's own callbacks, where sd-bus holds one and frees the
	 * connection when the callback returns. */
	b->bus = sd_bus_unref(b->bus);
	early_clear(b);
}

int units_bus_connect(units_bus *b) {
	_cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
	int r;

	if (b->bus && sd_bus_is_open(b->bus) > 0)
		return 0;
	bus_drop(b);

	if (b->user)
		r = sd_bus_open_user_with_description(&bus, "corral-units");
	else
		r = sd_bus_open_system_with_description(&bus, "corral-units");
	if (r < 0)
		return r;
	r = sd_bus_attach_event(bus, b->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return r;
	r = sd_bus_add_filter(bus, &b->filter_slot, on_message, b);
	if (r < 0)
		return r;
	/* Asynchronous AddMatch, then Subscribe: both reach the bus before
	 * any job call that follows them on this connection. */
	r = sd_bus_match_signal_async(bus, &b->match_slot, SD_DEST, SD_PATH, SD_MANAGER, "JobRemoved",
				      on_job_removed, NULL, b);
	if (r < 0)
		goto fail;
	r = sd_bus_call_method_async(bus, NULL, SD_DEST, SD_PATH, SD_MANAGER, "Subscribe", NULL, NULL, NULL);
	if (r < 0)
		goto fail;
	b->bus = TAKE_PTR(bus);
	return 0;
fail:
	b->match_slot = sd_bus_slot_unref(b->match_slot);
	b->filter_slot = sd_bus_slot_unref(b->filter_slot);
	return r;
}

int units_bus_open(units_bus **out, sd_event *event, bool user) {
	_cleanup_(units_bus_freep) units_bus *b = NULL;
	int r;

	if (!out || !event)
		return -EINVAL;
	b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->event = sd_event_ref(event);
	b->user = user;
	b->settle_usec = UNITS_DEFAULT_SETTLE_USEC;
	r = units_bus_connect(b);
	if (r < 0)
		return r;
	*out = TAKE_PTR(b);
	return 0;
}

void units_bus_set_settle(units_bus *b, uint64_t usec) {
	if (b)
		b->settle_usec = usec;
}

units_bus *units_bus_free(units_bus *b) {
	if (!b)
		return NULL;
	while (b->jobs)
		units_job_free(b->jobs);
	bus_drop(b);
	sd_event_unref(b->event);
	free(b);
	return NULL;
}

void units_job_cancel(units_job *j) {
	if (!j || j->finishing)
		return;
	units_bus *b = j->bus;
	units_job_free(j);
	if (b)
		units_early_prune(b);
}

int units_job_new(units_bus *b, const char *unit, units_action a, uint64_t timeout_usec, units_done_cb cb,
		  void *userdata, units_job **ret) {
	units_job *j;
	int r;

	r = units_bus_connect(b);
	if (r < 0)
		return r;
	j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->action = a;
	j->cb = cb;
	j->userdata = userdata;
	j->res.exit_status = -1;
	j->timeout_usec = timeout_usec ? timeout_usec : UNITS_DEFAULT_TIMEOUT_USEC;
	j->deadline = units_now(b) + j->timeout_usec;
	j->unit = strdup(unit);
	if (!j->unit) {
		units_job_free(j);
		return -ENOMEM;
	}
	r = sd_bus_path_encode(SD_UNIT_PREFIX, unit, &j->unit_path);
	if (r >= 0)
		r = sd_event_add_time(b->event, &j->timer, CLOCK_MONOTONIC, j->deadline, USEC_PER_MSEC, on_deadline, j);
	if (r < 0) {
		units_job_free(j);
		return r;
	}
	*ret = j;
	return 0;
}

int units_job_call(units_bus *b, units_job *j, sd_bus_message *m, sd_bus_message_handler_t reply) {
	int r = sd_bus_call_async(b->bus, &j->slot, m, reply ? reply : on_call_reply, j, j->timeout_usec + USEC_PER_SEC);
	if (r < 0)
		return r;
	j->state = JOB_CALLING;
	j->bus = b;
	j->next = b->jobs;
	if (b->jobs)
		b->jobs->prev = j;
	b->jobs = j;
	return 0;
}

int units_run(units_bus *b, const char *unit, units_action a, uint64_t timeout_usec, units_done_cb cb,
	      void *userdata, units_job **out) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	units_job *j;
	int r;

	if (!b || !unit || !*unit || !cb || (unsigned) a > UNITS_STOP)
		return -EINVAL;
	r = units_job_new(b, unit, a, timeout_usec, cb, userdata, &j);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_call(b->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, action_methods[a]);
	if (r >= 0)
		r = sd_bus_message_append(m, "ss", unit, "replace");
	if (r >= 0)
		r = units_job_call(b, j, m, NULL);
	if (r < 0) {
		units_job_free(j);
		return r;
	}
	if (out)
		*out = j;
	return 0;
}
