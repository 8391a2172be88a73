/* livenodes.c — the leader's live node map (livenodes.h): read once, then
 * kept by the watch's events. */
#include "agree.h"
#include "backoff.h"
#include "keys.h"
#include "livenodes.h"
#include "log.h"

#define PAGE_SIZE 1000
#define RETRY_BASE_USEC (200 * USEC_PER_MSEC)
#define RETRY_CAP_USEC  (10 * USEC_PER_SEC)

struct live_nodes {
	etcd_client *etcd;
	char *folder;                   /* <prefix>/nodes/ */
	live_nodes_cb cb;
	void *userdata;

	json_t *map;                    /* NULL until read */
	etcd_call *read;
	etcd_watch *watch;
	sd_event_source *retry_timer;
	backoff retry;
	unsigned reads;
};

static int read_start(live_nodes *l);

static void changed(live_nodes *l) {
	if (l->cb)
		l->cb(l, l->userdata);
}

/* Applies one event; whether the map changed. */
static bool apply_event(live_nodes *l, const etcd_event *e) {
	size_t strip = strlen(l->folder);
	_cleanup_free_ char *id = NULL;
	json_t *rec = NULL, *old;

	if (e->type == ETCD_EVENT_PUT && agree_node_parse(&e->kv, strip, &id, &rec) == 0) {
		old = json_object_get(l->map, id);
		if (old && json_equal(old, rec)) {
			json_decref(rec);
			return false;
		}
		if (json_object_set_new(l->map, id, rec) < 0)
			log_oom();
		return true;
	}
	/* A DELETE, or a record nobody can reason about: the node is not
	 * (any more) in the map. */
	if (e->kv.key_len <= strip || memchr(e->kv.key, 0, e->kv.key_len))
		return false;
	id = strndup(e->kv.key + strip, e->kv.key_len - strip);
	if (!id) {
		log_oom();
		return false;
	}
	return json_object_del(l->map, id) == 0;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	live_nodes *l = userdata;
	bool any = false;

	switch (m->type) {
	case ETCD_WATCH_EVENTS:
		for (size_t i = 0; i < m->n_events; i++)
			any = apply_event(l, &m->events[i]) || any;
		if (any)
			changed(l);
		break;
	case ETCD_WATCH_COMPACTED:
	case ETCD_WATCH_CANCELED:
		/* The events are lost: read the folder again, watch after it. */
		log_debug("watch on %s %s: reading it again", l->folder,
			  m->type == ETCD_WATCH_COMPACTED ? "compacted" : "cancelled");
		l->watch = etcd_watch_free(l->watch);
		if (read_start(l) < 0)
			log_warning("cannot read %s", l->folder);
		break;
	default:
		break;
	}
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	live_nodes *l = userdata;

	l->retry_timer = sd_event_source_disable_unref(l->retry_timer);
	if (read_start(l) < 0)
		log_warning("cannot read %s", l->folder);
	return 0;
}

static void on_read(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	_cleanup_(json_decrefp) json_t *map = NULL;
	live_nodes *l = userdata;
	size_t strip = strlen(l->folder);
	char buf[512];

	l->read = NULL;
	if (resp->error.code < 0) {
		log_warning("reading %s: %s; again shortly", l->folder, etcd_error_format(&resp->error, buf, sizeof buf));
		(void) sd_event_add_time_relative(etcd_client_event(l->etcd), &l->retry_timer, CLOCK_MONOTONIC,
						  backoff_next(&l->retry, backoff_random()), USEC_PER_MSEC, on_retry, l);
		return;
	}
	backoff_reset(&l->retry);
	map = json_object();
	if (!map) {
		log_oom();
		return;
	}
	for (size_t i = 0; i < resp->n_kvs; i++) {
		_cleanup_free_ char *id = NULL;
		json_t *rec = NULL;

		if (agree_node_parse(&resp->kvs[i], strip, &id, &rec) == 0 && json_object_set_new(map, id, rec) < 0)
			log_oom();
	}
	json_decref(l->map);
	l->map = TAKE_PTR(map);
	l->reads++;
	log_info("%zu live nodes read from %s at revision %lld", json_object_size(l->map), l->folder,
		 (long long) resp->header.revision);

	etcd_watch_req req = { .key = l->folder, .prefix = true, .start_revision = resp->header.revision + 1 };
	if (etcd_watch_new(&l->watch, l->etcd, &req, on_watch, l) < 0)
		log_warning("cannot watch %s: nodes that come or go are seen only at the next read", l->folder);
	changed(l);
}

static int read_start(live_nodes *l) {
	etcd_range_req req = { .key = l->folder, .prefix = true };

	l->watch = etcd_watch_free(l->watch);
	if (l->read)
		etcd_call_cancel(l->read);
	l->read = NULL;
	return etcd_range_all(l->etcd, &req, PAGE_SIZE, on_read, l, &l->read);
}

int live_nodes_new(live_nodes **out, etcd_client *etcd, const char *prefix, live_nodes_cb cb, void *userdata) {
	_cleanup_(live_nodes_freep) live_nodes *l = calloc(1, sizeof *l);
	int r;

	if (!l)
		return -ENOMEM;
	l->etcd = etcd;
	l->cb = cb;
	l->userdata = userdata;
	l->retry = BACKOFF_INIT(RETRY_BASE_USEC, RETRY_CAP_USEC);
	l->folder = keys_dir_of(prefix, KEYS_NODES);
	if (!l->folder)
		return -ENOMEM;
	r = read_start(l);
	if (r < 0)
		return r;
	*out = TAKE_PTR(l);
	return 0;
}

json_t *live_nodes_map(const live_nodes *l) {
	return l ? l->map : NULL;
}

unsigned live_nodes_reads(const live_nodes *l) {
	return l ? l->reads : 0;
}

live_nodes *live_nodes_free(live_nodes *l) {
	if (!l)
		return NULL;
	if (l->read)
		etcd_call_cancel(l->read);
	l->watch = etcd_watch_free(l->watch);
	l->retry_timer = sd_event_source_disable_unref(l->retry_timer);
	json_decref(l->map);
	free(l->folder);
	free(l);
	return NULL;
}
