/* watch.c — the Watch service: one HTTP stream per watch, resumed after a
 * break from the revision after the last one delivered.
 *
 * The gateway cannot take messages on an open stream over HTTP/1.1 (etcd
 * reads the whole request body first), so a watch is one request carrying
 * one create_request, and ending it means closing the connection.
 *
 * A hung member (stopped, swapping, wedged) keeps the connection open and
 * sends nothing, which looks the same as a quiet key range. Nor can a
 * progress_request be sent on the open stream, and one on a stream of its
 * own is not answered by etcd 3.5+ when that stream has no watcher. So a
 * stream silent for the progress deadline asks its member for its status
 * (within the attempt timeout); a member that does not answer, or has no
 * leader, is left for another, from the revision after the last event. A
 * member heard from lately (any reply to any call) needs no asking. */
#include "backoff.h"
#include "etcd-internal.h"

struct etcd_watch {
	etcd_client *client;
	char *key, *range_end;
	size_t key_len, range_end_len;
	etcd_watch_req req;             /* flags; key fields point at our copies */
	int64_t next_rev;               /* 0 until the first created message */

	etcd_call *call;
	size_t endpoint;
	uint64_t last_line;             /* CLOCK_MONOTONIC: stream start or last line */
	sd_event_source *silence;       /* the progress deadline */
	etcd_call *probe;               /* status request to a silent stream's member */
	bool up;                        /* created, and not broken since */
	bool stopped;                   /* compacted or cancelled by etcd */
	etcd_error stream_error;        /* an in-stream error, before the end */
	sd_event_source *retry;
	backoff bo;

	etcd_watch_cb cb;
	void *userdata;
	bool *freed;                    /* set while a callback runs */
};

static int watch_connect(etcd_watch *w);

static uint64_t watch_now(etcd_watch *w) {
	uint64_t now = 0;
	(void) sd_event_now(etcd_client_event(w->client), CLOCK_MONOTONIC, &now);
	return now;
}

static void silence_arm(etcd_watch *w, uint64_t at) {
	/* A quarter of the deadline as slack: every quiet watch's check, and
	 * the keepalives due about then, share one wake-up. */
	(void) sd_event_source_set_time_accuracy(w->silence, etcd_client_watch_progress(w->client) / 4);
	(void) sd_event_source_set_time(w->silence, at);
	(void) sd_event_source_set_enabled(w->silence, SD_EVENT_ONESHOT);
}

/* Runs the user's callback; false when it freed the watch. */
static bool deliver(etcd_watch *w, const etcd_watch_msg *m) {
	bool freed = false;

	w->freed = &freed;
	w->cb(w, m, w->userdata);
	if (freed)
		return false;
	w->freed = NULL;
	return true;
}

static void schedule_reconnect(etcd_watch *w) {
	uint64_t now;

	if (sd_event_now(etcd_client_event(w->client), CLOCK_MONOTONIC, &now) < 0)
		return;
	(void) sd_event_source_set_time(w->retry, now + backoff_next(&w->bo, backoff_random()));
	(void) sd_event_source_set_enabled(w->retry, SD_EVENT_ONESHOT);
}

/* The stream is gone (w->call already NULL): tell the owner once per
 * outage, then try again. */
static void broken(etcd_watch *w, const etcd_error *why) {
	/* A status request about the old stream's member has nothing to say
	 * about the next stream. */
	etcd_call_cancel(w->probe);
	w->probe = NULL;
	if (w->up || w->bo.attempt == 0) {
		etcd_watch_msg m = { .type = ETCD_WATCH_DISCONNECTED, .error = why };
		w->up = false;
		if (!deliver(w, &m))
			return;
	}
	schedule_reconnect(w);
}

static int on_line(etcd_call *call, const char *line, size_t len, void *userdata) {
	etcd_watch *w = userdata;
	etcd_watch_line l;
	etcd_error err = { .grpc_code = -1 };
	etcd_watch_msg m = {};
	bool alive;

	w->last_line = watch_now(w);
	if (etcd_codec_parse_watch_line(line, len, &l, &err) < 0) {
		/* Resuming from the last good revision loses nothing. */
		etcd_call_cancel(call);
		w->call = NULL;
		snprintf(err.endpoint, sizeof err.endpoint, "%s", etcd_client_endpoint(w->client));
		broken(w, &err);
		return -1;
	}

	if (l.error.code < 0) {
		/* The stream ends right after; on_end reports it. */
		w->stream_error = l.error;
		etcd_watch_line_done(&l);
		return 0;
	}

	m.header = l.header;
	if (l.canceled) {
		etcd_call_cancel(call);
		w->call = NULL;
		if (l.cancel_reason && strstr(l.cancel_reason, "invalid auth token")) {
			etcd_client_drop_token(w->client);
			etcd_error_set(&err, ETCD_ERROR_GATEWAY, -EACCES, "watch cancelled: %s", l.cancel_reason);
			etcd_watch_line_done(&l);
			broken(w, &err);
			return -1;
		}
		w->stopped = true;
		w->up = false;
		if (l.compact_revision > 0) {
			m.type = ETCD_WATCH_COMPACTED;
			m.compact_revision = l.compact_revision;
		} else {
			m.type = ETCD_WATCH_CANCELED;
			etcd_error_set(&err, ETCD_ERROR_GATEWAY, l.cancel_reason && strstr(l.cancel_reason, "ermission")
									 ? -EACCES
									 : -ECANCELED,
				       "watch cancelled by etcd: %s", l.cancel_reason ? l.cancel_reason : "no reason given");
			m.error = &err;
		}
		etcd_watch_line_done(&l);
		deliver(w, &m);
		return -1;
	}

	if (l.created) {
		if (w->next_rev == 0)
			w->next_rev = l.header.revision + 1;
		w->up = true;
		backoff_reset(&w->bo);
		m.type = ETCD_WATCH_CREATED;
	} else if (l.n_events > 0) {
		w->next_rev = l.events[l.n_events - 1].kv.mod_revision + 1;
		m.type = ETCD_WATCH_EVENTS;
		m.events = l.events;
		m.n_events = l.n_events;
	} else {
		/* Progress: everything up to header.revision has been sent. */
		if (l.header.revision >= w->next_rev)
			w->next_rev = l.header.revision + 1;
		m.type = ETCD_WATCH_PROGRESS;
	}
	alive = deliver(w, &m);
	etcd_watch_line_done(&l);
	return alive ? 0 : -1;
}

static void on_end(etcd_client *c, const etcd_error *error, void *userdata) {
	etcd_watch *w = userdata;
	etcd_error e = *error;

	w->call = NULL;
	if (w->stream_error.code < 0) {
		e = w->stream_error;
		snprintf(e.endpoint, sizeof e.endpoint, "%s", error->endpoint);
		w->stream_error = (etcd_error){};
		/* "no leader", "transport is closing": this member is no use. */
		if (e.grpc_code == ETCD_GRPC_UNAVAILABLE)
			etcd_client_endpoint_failed(c, w->endpoint, &e);
	} else if (e.code == 0)
		etcd_error_set(&e, ETCD_ERROR_TRANSPORT, -ECONNRESET, "watch stream closed by etcd");
	broken(w, &e);
}

/* Drops the stream of a member that does not answer; the reconnect goes
 * elsewhere, as the failed status request has demoted it. */
static void leave_member(etcd_watch *w, etcd_error *e) {
	char prefix[96];

	snprintf(prefix, sizeof prefix, "watch stream silent for %llu ms and its member did not answer: ",
		 (unsigned long long) ((watch_now(w) - w->last_line) / USEC_PER_MSEC));
	etcd_error_prefix(e, prefix);
	etcd_call_cancel(w->call);
	w->call = NULL;
	broken(w, e);
}

static void on_probe(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	etcd_watch *w = userdata;
	etcd_error e = r->error;

	w->probe = NULL;
	if (!w->call)
		return;
	if (e.code == 0 && r->leader == 0) {
		etcd_error_set(&e, ETCD_ERROR_GATEWAY, -EAGAIN, "etcdserver: no leader");
		e.grpc_code = ETCD_GRPC_UNAVAILABLE;
		etcd_client_endpoint_failed(c, w->endpoint, &e);
	}
	/* Only a member's own trouble moves the watch; a refused login, say,
	 * says nothing about the stream. */
	if (e.code < 0 && (e.kind == ETCD_ERROR_TRANSPORT || e.grpc_code == ETCD_GRPC_UNAVAILABLE)) {
		leave_member(w, &e);
		return;
	}
	silence_arm(w, watch_now(w) + etcd_client_watch_progress(c));
}

static int on_silence(sd_event_source *s, uint64_t usec, void *userdata) {
	etcd_watch *w = userdata;
	uint64_t progress = etcd_client_watch_progress(w->client), now = watch_now(w), heard;

	if (!w->call || w->probe)
		return 0; /* watch_connect and on_probe arm it again */
	if (now < w->last_line + progress) {
		silence_arm(w, w->last_line + progress);
		return 0;
	}
	/* From when the member was last heard: every quiet watch on it then
	 * checks at the same instant, one wake-up for them all. */
	heard = etcd_client_endpoint_last_heard(w->client, w->endpoint);
	if (heard + progress > now) {
		silence_arm(w, heard + progress);
		return 0;
	}
	if (etcd_status_at(w->client, w->endpoint, on_probe, w, &w->probe) < 0)
		silence_arm(w, now + progress);
	return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	etcd_watch *w = userdata;

	if (!w->call && !w->stopped && watch_connect(w) < 0)
		schedule_reconnect(w);
	return 0;
}

static int watch_connect(etcd_watch *w) {
	json_auto_t *body = etcd_codec_watch(&w->req, w->next_rev);
	int r;

	if (!body)
		return -ENOMEM;
	r = etcd_stream_start(w->client, "/v3/watch", body, on_line, on_end, w, &w->call);
	if (r < 0)
		return r;
	w->endpoint = etcd_call_endpoint_index(w->call);
	w->last_line = watch_now(w);
	silence_arm(w, w->last_line + etcd_client_watch_progress(w->client));
	return 0;
}

int etcd_watch_new(etcd_watch **out, etcd_client *c, const etcd_watch_req *req, etcd_watch_cb cb, void *userdata) {
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	int r;

	if (!req->key || !cb)
		return -EINVAL;
	w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->client = c;
	w->cb = cb;
	w->userdata = userdata;
	w->req = *req;
	w->key_len = req->key_len ? req->key_len : strlen(req->key);
	w->key = bytes_dup(req->key, w->key_len);
	if (!w->key)
		return -ENOMEM;
	w->req.key = w->key;
	w->req.key_len = w->key_len;
	if (req->range_end) {
		w->range_end_len = req->range_end_len ? req->range_end_len : strlen(req->range_end);
		w->range_end = bytes_dup(req->range_end, w->range_end_len);
		if (!w->range_end)
			return -ENOMEM;
		w->req.range_end = w->range_end;
		w->req.range_end_len = w->range_end_len;
	}
	w->next_rev = req->start_revision > 0 ? req->start_revision : 0;
	w->bo = BACKOFF_INIT(100 * USEC_PER_MSEC, 5 * USEC_PER_SEC);

	r = sd_event_add_time(etcd_client_event(c), &w->retry, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_retry, w);
	if (r < 0)
		return r;
	(void) sd_event_source_set_enabled(w->retry, SD_EVENT_OFF);
	(void) sd_event_source_set_description(w->retry, "etcd-watch-retry");
	r = sd_event_add_time(etcd_client_event(c), &w->silence, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC,
			      on_silence, w);
	if (r < 0)
		return r;
	(void) sd_event_source_set_enabled(w->silence, SD_EVENT_OFF);
	(void) sd_event_source_set_description(w->silence, "etcd-watch-progress");

	r = watch_connect(w);
	if (r < 0)
		return r;
	*out = TAKE_PTR(w);
	return 0;
}

int64_t etcd_watch_next_revision(const etcd_watch *w) {
	return w->next_rev;
}

etcd_watch *etcd_watch_free(etcd_watch *w) {
	if (!w)
		return NULL;
	if (w->freed)
		*w->freed = true;
	etcd_call_cancel(w->call);
	etcd_call_cancel(w->probe);
	sd_event_source_disable_unref(w->retry);
	sd_event_source_disable_unref(w->silence);
	free(w->key);
	free(w->range_end);
	free(w);
	return NULL;
}
