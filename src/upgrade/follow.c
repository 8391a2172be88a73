/* follow.c — following this node's order (upgrade.h, upgrade_follow): one
 * txn reads upgrade/nodes/<self> and upgrade/progress/<self>, a watch of
 * the order from the next revision follows it, and every change is handed
 * on: the order (or none) and, after a (re)read, the progress as read.
 *
 * The upgrade runner and corrald's pin follower both use it; what an order
 * means (stale, ignored, pinned) stays with them. A malformed order keeps
 * the last good one (the leader rewrites it; a half-understood order is
 * never acted on). A compacted watch is read again at once (we missed
 * something, etcd is fine); a failed read or a cancelled watch is read
 * again after a jittered back-off, so a fleet whose etcd was away does not
 * come back to it all at once. Nothing here logs: each trouble is handed
 * to the callback once. */
#include <jansson.h>

#include "backoff.h"
#include "keys.h"
#include "upgrade.h"

#define FOLLOW_RETRY_USEC     (1 * USEC_PER_SEC)
#define FOLLOW_RETRY_CAP_USEC (30 * USEC_PER_SEC)

struct upgrade_follow {
	sd_event *event;
	etcd_client *etcd;
	upgrade_follow_cb cb;
	void *userdata;
	char *order_key, *progress_key;

	etcd_call *call;                /* the read */
	etcd_watch *watch;
	sd_event_source *retry;
	backoff bo;                     /* 1 s doubling to 30 s, reset by a good read */

	rollout_order order;            /* the last good order seen */
	bool have_order;
};

static void follow_read(upgrade_follow *f);

static void trouble(upgrade_follow *f, upgrade_follow_trouble what, int error, const char *key,
		    const char *message) {
	upgrade_follow_event ev = {
		.kind = UPGRADE_FOLLOW_TROUBLE,
		.trouble = what,
		.error = error,
		.key = key,
		.message = message ? message : "",
	};

	if (f->cb)
		f->cb(f, &ev, f->userdata);
}

static void deliver(upgrade_follow *f, bool read, rollout_progress *progress) {
	upgrade_follow_event ev = {
		.kind = UPGRADE_FOLLOW_ORDER,
		.order = f->have_order ? &f->order : NULL,
		.read = read,
		.progress = progress,
	};

	if (f->cb)
		f->cb(f, &ev, f->userdata);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	upgrade_follow *f = userdata;

	f->retry = sd_event_source_disable_unref(f->retry);
	follow_read(f);
	return 0;
}

static void retry_later(upgrade_follow *f) {
	int r;

	f->retry = sd_event_source_disable_unref(f->retry);
	r = sd_event_add_time_relative(f->event, &f->retry, CLOCK_MONOTONIC, backoff_next(&f->bo, backoff_random()),
				       USEC_PER_MSEC, on_retry, f);
	if (r < 0)
		trouble(f, UPGRADE_FOLLOW_STOPPED, r, NULL, "cannot schedule a retry");
}

/* Parses value into the latest order; false (and a trouble) when it is
 * not an order, the last good one kept. */
static bool take_order(upgrade_follow *f, const char *value, size_t len) {
	json_error_t jerr;
	rollout_error err = {};
	rollout_order o = {};
	json_t *j = json_loadb(value ? value : "", len, 0, &jerr);
	char why[256];

	if (!j || rollout_order_from_json(j, &o, &err) < 0) {
		snprintf(why, sizeof why, "%s", j ? err.message : jerr.text);
		json_decref(j);
		rollout_order_done(&o);
		trouble(f, UPGRADE_FOLLOW_BAD_ORDER, -EINVAL, f->order_key, why);
		return false;
	}
	json_decref(j);
	rollout_order_done(&f->order);
	f->order = o;
	f->have_order = true;
	return true;
}

static void drop_order(upgrade_follow *f) {
	rollout_order_done(&f->order);
	f->order = (rollout_order) {};
	f->have_order = false;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	upgrade_follow *f = userdata;

	if (m->type == ETCD_WATCH_COMPACTED) {
		/* Missed something: read again, then watch from there. */
		f->watch = etcd_watch_free(f->watch);
		follow_read(f);
		return;
	}
	if (m->type == ETCD_WATCH_CANCELED) {
		f->watch = etcd_watch_free(f->watch);
		trouble(f, UPGRADE_FOLLOW_CANCELED, m->error && m->error->code < 0 ? m->error->code : -EIO, f->order_key,
			"the watch was cancelled");
		retry_later(f);
		return;
	}
	if (m->type != ETCD_WATCH_EVENTS || m->n_events == 0)
		return;
	const etcd_event *e = &m->events[m->n_events - 1];
	if (e->type == ETCD_EVENT_DELETE)
		drop_order(f);
	else if (!take_order(f, e->kv.value, e->kv.value_len))
		return;         /* nothing changed */
	deliver(f, false, NULL);
}

static void on_read(etcd_client *c, etcd_response *resp, void *userdata) {
	upgrade_follow *f = userdata;
	rollout_progress prog = {};
	bool have_prog = false;
	char buf[512];
	int r;

	f->call = NULL;
	if (resp->error.code < 0 || resp->n_responses != 2) {
		trouble(f, UPGRADE_FOLLOW_READ, resp->error.code ?: -EBADMSG, NULL,
			etcd_error_format(&resp->error, buf, sizeof buf));
		etcd_response_free(resp);
		retry_later(f);
		return;
	}
	const etcd_response *order = &resp->responses[0], *progress = &resp->responses[1];
	if (order->n_kvs > 0)
		(void) take_order(f, order->kvs[0].value, order->kvs[0].value_len);
	else
		drop_order(f);
	if (progress->n_kvs > 0) {
		rollout_error err = {};
		json_t *j = json_loadb(progress->kvs[0].value ? progress->kvs[0].value : "", progress->kvs[0].value_len,
				       0, NULL);
		if (j && rollout_progress_from_json(j, &prog, &err) >= 0)
			have_prog = true;
		else {
			rollout_progress_done(&prog);
			prog = (rollout_progress) {};
			trouble(f, UPGRADE_FOLLOW_BAD_PROGRESS, -EINVAL, f->progress_key, j ? err.message : "not JSON");
		}
		json_decref(j);
	}
	etcd_watch_req wr = { .key = f->order_key, .start_revision = resp->header.revision + 1 };
	etcd_response_free(resp);
	r = etcd_watch_new(&f->watch, f->etcd, &wr, on_watch, f);
	if (r < 0) {
		rollout_progress_done(&prog);
		trouble(f, UPGRADE_FOLLOW_WATCH, r, f->order_key, strerror(-r));
		retry_later(f);
		return;
	}
	backoff_reset(&f->bo);
	deliver(f, true, have_prog ? &prog : NULL);
	rollout_progress_done(&prog);
}

static void follow_read(upgrade_follow *f) {
	etcd_op ops[2] = {
		{ .type = ETCD_OP_RANGE, .range = { .key = f->order_key } },
		{ .type = ETCD_OP_RANGE, .range = { .key = f->progress_key } },
	};
	etcd_txn_req req = { .success = ops, .n_success = 2 };

	int r = etcd_txn(f->etcd, &req, on_read, f, &f->call);
	if (r < 0) {
		trouble(f, UPGRADE_FOLLOW_READ, r, NULL, strerror(-r));
		retry_later(f);
	}
}

int upgrade_follow_new(upgrade_follow **out, sd_event *event, etcd_client *etcd, const char *prefix,
		       const char *node_id, upgrade_follow_cb cb, void *userdata) {
	_cleanup_(upgrade_follow_freep) upgrade_follow *f = NULL;

	if (!out || !event || !etcd || !prefix || !node_id)
		return -EINVAL;
	f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->event = sd_event_ref(event);
	f->etcd = etcd;
	f->cb = cb;
	f->userdata = userdata;
	f->bo = BACKOFF_INIT(FOLLOW_RETRY_USEC, FOLLOW_RETRY_CAP_USEC);
	f->order_key = keys_entry(prefix, KEYS_UPGRADE_NODES, node_id);
	f->progress_key = keys_entry(prefix, KEYS_UPGRADE_PROGRESS, node_id);
	if (!f->order_key || !f->progress_key)
		return errno == EINVAL ? -EINVAL : -ENOMEM;
	follow_read(f);
	*out = TAKE_PTR(f);
	return 0;
}

upgrade_follow *upgrade_follow_free(upgrade_follow *f) {
	if (!f)
		return NULL;
	etcd_call_cancel(f->call);
	etcd_watch_free(f->watch);
	sd_event_source_disable_unref(f->retry);
	rollout_order_done(&f->order);
	free(f->order_key);
	free(f->progress_key);
	sd_event_unref(f->event);
	free(f);
	return NULL;
}

const char *upgrade_follow_order_key(const upgrade_follow *f) {
	return f ? f->order_key : NULL;
}

const char *upgrade_follow_progress_key(const upgrade_follow *f) {
	return f ? f->progress_key : NULL;
}
