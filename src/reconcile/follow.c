/* follow.c — when the reconciler applies and what it reads: the watch on
 * `current`, the debounce of a burst of changes, the timer for retries,
 * the read of a snapshot (one range at the revision the watch gave, or
 * `current` and its snapshot, or the pinned snapshot, once), and the
 * object's life. One apply is
 * reconcile.c's (reconcile-internal.h). */
#include "keys.h"
#include "reconcile-internal.h"
#include "tree.h"

#define RETRY_BASE_USEC (500 * USEC_PER_MSEC)
#define RETRY_CAP_USEC  (30 * USEC_PER_SEC)

static void schedule(reconcile *r, uint64_t delay_usec);

/* ---- reading and watching --------------------------------------------------- */

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata);

static int watch_from(reconcile *r, int64_t revision) {
	etcd_watch_req req = { .key = r->current_key, .start_revision = revision };

	r->watch = etcd_watch_free(r->watch);
	return etcd_watch_new(&r->watch, r->etcd, &req, on_watch, r);
}

static void schedule_dirty(reconcile *r) {
	uint64_t now = 0;

	(void) sd_event_now(r->event, CLOCK_MONOTONIC, &now);
	schedule(r, reconcile_debounce_wait(now, r->dirty_since, r->conf->debounce_usec, r->conf->max_wait_usec));
}

static void mark_dirty(reconcile *r) {
	uint64_t now = 0;

	(void) sd_event_now(r->event, CLOCK_MONOTONIC, &now);
	if (!r->dirty) {
		r->dirty = true;
		r->dirty_since = now;
	}
	if (r->phase == PHASE_IDLE)
		schedule_dirty(r);              /* else reconcile_apply_finish() picks it up */
}

/* The last event says what `current` is now and at which revision. */
static void watch_learned(reconcile *r, const etcd_event *e) {
	bool put = e->type == ETCD_EVENT_PUT && e->kv.value;

	free(r->watched_id);
	r->watched_id = put ? bytes_dup(e->kv.value, e->kv.value_len) : NULL;
	r->watched_len = put ? e->kv.value_len : 0;
	r->watched_rev = e->kv.mod_revision;
	r->watch_fed = (!put || r->watched_id) && r->watched_rev > 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	reconcile *r = userdata;

	switch (m->type) {
	case ETCD_WATCH_EVENTS:
		if (m->n_events > 0)
			watch_learned(r, &m->events[m->n_events - 1]);
		/* Pinned: noted, applied once unpinned (reconcile_pin). */
		if (!r->pinned)
			mark_dirty(r);
		break;
	case ETCD_WATCH_COMPACTED:
	case ETCD_WATCH_CANCELED:
		/* Re-read (which starts a new watch from the snapshot); a
		 * pinned node does so once unpinned. */
		r->watch = etcd_watch_free(r->watch);
		r->watch_fed = false;
		if (!r->pinned)
			mark_dirty(r);
		break;
	case ETCD_WATCH_CREATED:
	case ETCD_WATCH_PROGRESS:
	case ETCD_WATCH_DISCONNECTED:
		break;
	}
}

static void on_read(const agree_snapshot *s, const agree_error *err, void *userdata) {
	reconcile *r = userdata;

	r->read = NULL;
	if (err && !s) {
		/* etcd trouble: read again later, whatever else happens. */
		reconcile_set_error(r, "%s", err->message);
		r->retry_soon = true;
		reconcile_apply_finish(r);
		return;
	}
	backoff_reset(&r->retry);
	r->read_rev = s->revision;
	if (!r->once && !r->watch && watch_from(r, s->revision + 1) < 0)
		reconcile_set_error(r, "cannot watch %s", r->current_key);
	free(r->target);
	r->target = s->config_id ? strdup(s->config_id) : NULL;
	r->revision = s->current_mod_revision;
	if (err) {
		/* A broken snapshot (missing, malformed) stays broken: keep the
		 * last good files, say which snapshot and why, and wait for the
		 * next `current` (the watch above brings it). */
		reconcile_set_error(r, "%s", err->message);
		return reconcile_apply_finish(r);
	}
	/* Shared, not copied: nothing changes a snapshot's document, and
	 * the reference keeps it past the read (one tree, not two). */
	json_decref(r->files);
	r->files = json_incref(s->files);
	if (r->apply_pinned && r->target) {
		/* A pinned id never changes: the next applies need no read. */
		json_decref(r->pin_files);
		r->pin_files = json_incref(s->files);
		free(r->pin_files_id);
		r->pin_files_id = strdup(r->target);
	}
	if (!r->target)
		return reconcile_apply_finish(r); /* no config yet: nothing to render */
	reconcile_apply_files(r);
}

static void apply_start(reconcile *r) {
	int k;

	r->dirty = false;
	r->changed = false;
	r->fault = false;
	r->error[0] = '\0';
	r->undoing = false;
	r->phase = PHASE_READ;
	r->apply_pinned = r->pinned != NULL;
	r->apply_pin_serial = r->pin_serial;
	if (r->pinned && r->pin_files && streq_ptr(r->pin_files_id, r->pinned)) {
		free(r->target);
		r->target = strdup(r->pinned);
		r->revision = 0;
		json_decref(r->files);
		r->files = json_incref(r->pin_files);
		if (!r->target) {
			reconcile_set_error(r, "out of memory");
			return reconcile_apply_finish(r);
		}
		return reconcile_apply_files(r);
	}
	/* Pinned: that snapshot (one range). A change the watch reported:
	 * that snapshot, one range. Anything else (start, retry, a lost
	 * watch): `current` and its snapshot. */
	if (r->pinned)
		k = agree_read_config(r->etcd, r->conf->prefix, r->pinned, on_read, r, &r->read);
	else if (r->watch_fed && r->watch && r->watched_rev > r->read_rev)
		k = agree_read_at(r->etcd, r->conf->prefix, r->watched_id, r->watched_len, r->watched_rev, on_read, r,
				  &r->read);
	else
		k = agree_read(r->etcd, r->conf->prefix, false, on_read, r, &r->read);
	if (!r->pinned)
		r->watch_fed = false;
	if (k < 0) {
		reconcile_set_error(r, "cannot read %s: %s", r->current_key, strerror(-k));
		reconcile_apply_finish(r);
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	reconcile *r = userdata;

	r->timer = sd_event_source_disable_unref(r->timer);
	if (r->phase == PHASE_IDLE && !r->stopped)
		apply_start(r);
	return 0;
}

static void schedule(reconcile *r, uint64_t delay_usec) {
	r->timer = sd_event_source_disable_unref(r->timer);
	/* "At once" must be at once: a millisecond of accuracy lets sd-event
	 * hold a zero delay back to its next coalescing point (0.75 ms at
	 * p50 of a change's path, docs/benchmarks.md). */
	(void) sd_event_add_time_relative(r->event, &r->timer, CLOCK_MONOTONIC, delay_usec,
					  delay_usec ? USEC_PER_MSEC : 1, on_timer, r);
}

/* What reconcile_next_step() decided, once an apply is over. */
static void schedule_next(reconcile *r, reconcile_next next) {
	switch (next) {
	case RECONCILE_NEXT_NOW:
		schedule(r, 0);
		break;
	case RECONCILE_NEXT_ETCD_RETRY:
		schedule(r, backoff_next(&r->retry, backoff_random()));
		break;
	case RECONCILE_NEXT_DEBOUNCED:
		schedule_dirty(r);
		break;
	case RECONCILE_NEXT_WRITE_RETRY:
		schedule(r, r->retry_usec);
		break;
	case RECONCILE_NEXT_WAIT:
		break;
	}
}

/* ---- the object ----------------------------------------------------------------- */

int reconcile_new(reconcile **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *cf, bool once,
		  reconcile_cb cb, void *userdata) {
	reconcile *r = calloc(1, sizeof *r);
	int k;

	if (!r)
		return -ENOMEM;
	r->event = sd_event_ref(event);
	r->etcd = etcd;
	r->bus = bus;
	r->conf = conf_ref(cf);
	r->once = once;
	r->cb = cb;
	r->userdata = userdata;
	r->schedule_next = schedule_next;
	r->retry = BACKOFF_INIT(RETRY_BASE_USEC, RETRY_CAP_USEC);
	r->write_retry = BACKOFF_INIT(cf->write_retry_usec, cf->write_retry_max_usec);
	r->current_key = keys_one_of(cf->prefix, KEYS_CURRENT);
	/* --once has no status record (and may run without a node id). */
	r->status_key = once ? NULL : keys_entry(cf->prefix, KEYS_STATUS, cf->node_id);
	k = !r->current_key || (!once && !r->status_key) ? -errno : reconcile_records_init(&r->rec);
	if (k < 0) {
		reconcile_free(r);
		return k;
	}
	*out = r;
	return 0;
}

int reconcile_start(reconcile *r) {
	if (r->started)
		return -EALREADY;
	r->started = true;
	apply_start(r);
	return 0;
}

void reconcile_set_lease(reconcile *r, int64_t lease) {
	if (r->lease == lease)
		return;
	r->lease = lease;
	reconcile_status_publish(r);
}

void reconcile_set_conf(reconcile *r, conf *cf) {
	conf *old = r->conf;

	r->conf = conf_ref(cf);         /* before the unref: cf may be old */
	conf_unref(old);
	r->write_retry.base_usec = cf->write_retry_usec;
	r->write_retry.cap_usec = cf->write_retry_max_usec;
	/* Cancel nothing that runs (it points into the old files only
	 * through r->jobs, which hold r->jobs_conf); apply again after. */
	if (r->started)
		mark_dirty(r);
}

uint64_t reconcile_pin(reconcile *r, const char *id) {
	if (!streq_ptr(r->pinned, id)) {
		free(r->pinned);
		r->pinned = id ? strdup(id) : NULL;
		if (id && !r->pinned)
			return r->pin_serial;   /* out of memory: stays on `current` */
		if (!id) {
			json_decref(r->pin_files);
			r->pin_files = NULL;
			free(r->pin_files_id);
			r->pin_files_id = NULL;
		}
	}
	r->pin_serial++;
	if (!r->started || r->stopped)
		return r->pin_serial;
	if (r->phase == PHASE_IDLE)
		schedule(r, 0);         /* replaces a pending retry or debounce */
	else
		r->retry_now = true;    /* apply_finish() starts the next at once */
	return r->pin_serial;
}

const char *reconcile_pinned(const reconcile *r) {
	return r->pinned;
}

void reconcile_retry_now(reconcile *r) {
	reconcile_verdicts_forget(&r->rec);
	backoff_reset(&r->write_retry);
	if (!r->started || r->stopped)
		return;
	if (r->phase == PHASE_IDLE)
		schedule(r, 0);         /* replaces a pending retry or debounce */
	else
		r->retry_now = true;    /* apply_finish() starts the next at once */
}

reconcile *reconcile_free(reconcile *r) {
	if (!r)
		return NULL;
	r->stopped = true;
	r->timer = sd_event_source_disable_unref(r->timer);
	r->trim = sd_event_source_disable_unref(r->trim);
	r->watch = etcd_watch_free(r->watch);
	r->read = agree_read_op_free(r->read);
	r->child = child_run_free(r->child);
	if (r->ujob)
		units_job_cancel(r->ujob);
	if (r->put)
		etcd_call_cancel(r->put);
	reconcile_jobs_free(r);
	conf_unref(r->conf);
	json_decref(r->files);
	reconcile_records_done(&r->rec);
	json_decref(r->status);
	free(r->target);
	free(r->applied);
	free(r->current_key);
	free(r->status_key);
	free(r->watched_id);
	free(r->pinned);
	free(r->pin_files_id);
	json_decref(r->pin_files);
	free(r->status_written);
	free(r->status_sending);
	sd_event_unref(r->event);
	free(r);
	return NULL;
}
