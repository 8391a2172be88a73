/* pin.c — corrald's part in staged config rollouts (docs/upgrades.md,
 * "Staged config rollout on a node"): it follows upgrade/nodes/<self>. An
 * order whose verb is upgrade and whose target names a config pins this
 * node's one reconciler to that snapshot (reconcile_pin); any other order,
 * or none, unpins it (back to `current`). For a config-only order
 * (upgrade_order_config_only: no image, so the upgrade runner has no steps
 * to run) it writes the progress, upgrade/progress/<self>: running, then
 * done once the reconciler reports an apply begun after the pin with the
 * pinned files in place, checks passed and units restarted (or, unpinned,
 * `current` in place), with "config" the id applied; failed at once when
 * a check command or a unit refused it (a verdict, not a fault of this
 * host, which the reconciler retries by itself). Its progress is not on a
 * lease: it survives a restart, and a restarted corrald that finds its
 * progress done or failed for the same order writes nothing again. */
#include <time.h>

#include "backoff.h"
#include "daemon.h"
#include "keys.h"
#include "log.h"

#define PIN_RETRY_USEC     (1 * USEC_PER_SEC)
#define PIN_RETRY_CAP_USEC (30 * USEC_PER_SEC)

struct daemon_pin {
	daemon_t *d;
	char *progress_key;
	upgrade_follow *follow;         /* upgrade/nodes/<self> (upgrade.h) */
	etcd_call *call;                /* a progress write */
	sd_event_source *retry;         /* the progress write, again */
	backoff bo;                     /* write failures: 1 s doubling to 30 s */

	rollout_order order;            /* the last order seen */
	bool have_order;
	rollout_progress prog;          /* ours: what we last wrote (or read) */
	bool have_prog;
	bool waiting;                   /* prog is running: the reconciler's word is due */
	bool write_again;               /* prog changed while a write was in flight */
	uint64_t serial;                /* reconcile_pin()'s for this order */
};

static void progress_write(daemon_pin *p);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	daemon_pin *p = userdata;

	p->retry = sd_event_source_disable_unref(p->retry);
	progress_write(p);
	return 0;
}

static void retry_later(daemon_pin *p) {
	p->retry = sd_event_source_disable_unref(p->retry);
	(void) sd_event_add_time_relative(p->d->event, &p->retry, CLOCK_MONOTONIC,
					  backoff_next(&p->bo, backoff_random()), USEC_PER_MSEC, on_retry, p);
}

static int set_str(char **dst, const char *src) {
	char *copy = NULL;

	if (src && !(copy = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

/* ---- progress ---- */

static void on_written(etcd_client *c, etcd_response *resp, void *userdata) {
	daemon_pin *p = userdata;
	char buf[512];

	p->call = NULL;
	if (resp->error.code < 0) {
		log_warning("config rollout: cannot write %s: %s; again after a back-off", p->progress_key,
			    etcd_error_format(&resp->error, buf, sizeof buf));
		etcd_response_free(resp);
		retry_later(p);
		return;
	}
	etcd_response_free(resp);
	backoff_reset(&p->bo);
	if (p->write_again)
		progress_write(p);
}

static void progress_write(daemon_pin *p) {
	_cleanup_free_ char *text = NULL;
	json_t *j;
	int r;

	if (p->call || p->retry) {
		p->write_again = true;  /* the latest is written after */
		return;
	}
	p->write_again = false;
	p->prog.updated = time(NULL);
	j = rollout_progress_to_json(&p->prog);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	etcd_put_req req = { .key = p->progress_key, .value = text };
	r = text ? etcd_put(p->d->etcd, &req, on_written, p, &p->call) : -ENOMEM;
	if (r < 0) {
		log_warning_errno(r, "config rollout: cannot write %s: %m; again after a back-off", p->progress_key);
		retry_later(p);
	}
}

/* ---- orders ---- */

/* The progress reports on this order: same plan, generation and verb,
 * and the same snapshot (step_name "render <id>"; a rebase may re-pin
 * within one generation). */
static bool prog_is_on(const daemon_pin *p, const rollout_order *o, const char *name) {
	return p->have_prog && streq_ptr(p->prog.plan, o->plan) && p->prog.generation == o->generation &&
	       p->prog.verb == o->verb && streq_ptr(p->prog.step_name, name);
}

/* The order as it is now: pin or unpin, then, for a config-only order not
 * settled yet, progress running until the reconciler's report. */
static void pin_follow(daemon_pin *p) {
	const rollout_order *o = p->have_order ? &p->order : NULL;
	const char *want = o && o->verb == ROLLOUT_UPGRADE ? o->target.config : NULL;
	const char *had = reconcile_pinned(p->d->rec);
	char name[300];

	if (!streq_ptr(had, want)) {
		if (want)
			log_info("config rollout: pinned to config %s (plan %s gen %lld)", want, o->plan,
				 (long long) o->generation);
		else
			log_info("config rollout: unpinned from config %s; following current again", had);
	}
	p->waiting = false;
	if (!o || !upgrade_order_config_only(o)) {
		/* none, or the upgrade runner's order (and progress): an
		 * apply only when the pin changes */
		if (!streq_ptr(had, want))
			p->serial = reconcile_pin(p->d->rec, want);
		return;
	}
	/* always a fresh apply: its report settles this order */
	p->serial = reconcile_pin(p->d->rec, want);
	snprintf(name, sizeof name, "render %s", want ? want : "current");
	if (prog_is_on(p, o, name) && p->prog.state != ROLLOUT_STEP_RUNNING)
		return;         /* settled before (a restart, a repeated order) */
	/* resumed after a restart: it started then */
	time_t started = prog_is_on(p, o, name) && p->prog.started ? p->prog.started : time(NULL);
	rollout_progress_done(&p->prog);
	p->prog = (rollout_progress) {
		.generation = o->generation,
		.verb = o->verb,
		.state = ROLLOUT_STEP_RUNNING,
		.n_steps = 1,
		.started = started,
	};
	if (set_str(&p->prog.plan, o->plan) < 0 || set_str(&p->prog.step_name, name) < 0) {
		log_oom();
		return;
	}
	p->have_prog = true;
	p->waiting = true;
	progress_write(p);
}

void daemon_pin_report(daemon_t *d, const reconcile_report *rep) {
	daemon_pin *p = d->pin;

	if (!p || !p->waiting || !p->have_order || rep->pin_serial < p->serial)
		return;
	const rollout_order *o = &p->order;
	const char *want = o->verb == ROLLOUT_UPGRADE ? o->target.config : NULL;
	if (!streq_ptr(rep->pinned, want))
		return;
	if (!rep->ok && rep->transient)
		return;         /* etcd, or a fault of this host: the reconciler tries again */
	p->waiting = false;
	p->prog.state = rep->ok ? ROLLOUT_STEP_DONE : ROLLOUT_STEP_FAILED;
	p->prog.step = rep->ok ? 1 : 0;
	p->prog.finished = time(NULL);
	if (set_str(&p->prog.config, rep->ok ? rep->target : NULL) < 0 ||
	    set_str(&p->prog.error, rep->ok ? NULL : rep->error) < 0) {
		log_oom();
		return;
	}
	if (rep->ok)
		log_info("config rollout: %s of %s gen %lld: done, config %s in place",
			 rollout_verb_to_string(o->verb), o->plan, (long long) o->generation, rep->target ?: "(none)");
	else
		log_warning("config rollout: %s of %s gen %lld: failed: %s", rollout_verb_to_string(o->verb), o->plan,
			    (long long) o->generation, rep->error);
	progress_write(p);
}

static void on_follow(upgrade_follow *f, const upgrade_follow_event *e, void *userdata) {
	daemon_pin *p = userdata;
	const char *order_key = upgrade_follow_order_key(f);

	if (e->kind == UPGRADE_FOLLOW_TROUBLE) {
		switch (e->trouble) {
		case UPGRADE_FOLLOW_READ:
			log_warning("config rollout: cannot read this node's order: %s; again after a back-off",
				    e->message);
			break;
		case UPGRADE_FOLLOW_WATCH:
			log_warning("config rollout: cannot watch %s: %s; again after a back-off", order_key,
				    e->message);
			break;
		case UPGRADE_FOLLOW_CANCELED:
			log_warning("config rollout: the watch of %s was cancelled; reading again after a back-off",
				    order_key);
			break;
		case UPGRADE_FOLLOW_BAD_ORDER:
			log_warning("config rollout: %s: unreadable order: %s", order_key, e->message);
			break;
		case UPGRADE_FOLLOW_BAD_PROGRESS:
			break;  /* the upgrade runner's word, or ours to write afresh */
		case UPGRADE_FOLLOW_STOPPED:
			log_error("config rollout: cannot schedule a retry; this node's order is no longer followed");
			break;
		}
		return;
	}
	rollout_order o = {};
	if (e->order && rollout_order_copy(e->order, &o) < 0) {
		rollout_order_done(&o);
		log_oom();      /* the last order stands until the next change */
		return;
	}
	rollout_order_done(&p->order);
	p->order = o;
	p->have_order = e->order != NULL;
	/* Our progress is read once: from then on we write it. */
	if (e->read && !p->have_prog && e->progress) {
		rollout_progress_done(&p->prog);
		p->prog = *e->progress;
		*e->progress = (rollout_progress) {};
		p->have_prog = true;
	}
	pin_follow(p);
}

void daemon_pin_start(daemon_t *d) {
	daemon_pin *p;
	int r;

	if (d->pin || d->once || !d->rec || !d->etcd)
		return;
	p = calloc(1, sizeof *p);
	if (!p) {
		log_oom();
		return;
	}
	p->d = d;
	p->bo = BACKOFF_INIT(PIN_RETRY_USEC, PIN_RETRY_CAP_USEC);
	p->progress_key = keys_entry(d->conf->prefix, KEYS_UPGRADE_PROGRESS, d->conf->node_id);
	d->pin = p;
	r = p->progress_key ? upgrade_follow_new(&p->follow, d->event, d->etcd, d->conf->prefix, d->conf->node_id,
						 on_follow, p)
			    : -ENOMEM;
	if (r < 0) {
		log_error_errno(r, "config rollout: cannot follow this node's order: %m");
		daemon_pin_stop(d);
	}
}

void daemon_pin_stop(daemon_t *d) {
	daemon_pin *p = d->pin;

	if (!p)
		return;
	upgrade_follow_free(p->follow);
	etcd_call_cancel(p->call);
	sd_event_source_disable_unref(p->retry);
	rollout_order_done(&p->order);
	rollout_progress_done(&p->prog);
	free(p->progress_key);
	free(p);
	d->pin = NULL;
}
