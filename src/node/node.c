/* node.c — keeping this host's node key in etcd. */
#include <jansson.h>
#include <time.h>

#include "backoff.h"
#include "node.h"

struct node_reg {
	etcd_client *client;
	char *key;
	char *record;
	int64_t ttl;

	node_state state;
	bool stopping;
	int64_t lease;
	int64_t grant_id;               /* the ID every grant asks for until one
	                                   succeeds: retries land on one lease */
	int64_t put_lease;              /* the lease the put in flight carries */
	int64_t announced;              /* the lease NODE_REGISTERED last named */
	etcd_error lost;                /* why the announced lease went (code 0: it did not) */
	etcd_call *call;                /* at most one grant/put/revoke at a time */
	etcd_keeper *keeper;
	etcd_watch *watch;              /* on our own key, to notice deletions */
	sd_event_source *retry;
	backoff bo;

	node_state_cb cb;
	void *userdata;
};

static void step(node_reg *n);

static void set_state(node_reg *n, node_state s, const etcd_error *e) {
	n->state = s;
	n->cb(n, s, e, n->userdata);
}

static void format_time(char *buf, size_t size, uint64_t t) {
	time_t tt = (time_t) t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *node_record_json(const node_info *info) {
	char boot[32], started[32];
	json_auto_t *services = json_array();

	if (!services)
		return NULL;
	for (char *const *s = info->services; s && *s; s++)
		if (json_array_append_new(services, json_string(*s)) < 0)
			return NULL;
	format_time(boot, sizeof boot, info->boot_time);
	format_time(started, sizeof started, info->started);
	json_auto_t *o = json_pack("{s:s, s:s, s:O, s:s, s:s, s:s}", "node_id", info->node_id, "address",
				   info->address ? info->address : "", "services", services, "version",
				   info->version ? info->version : "", "boot_time", boot, "started", started);
	if (!o)
		return NULL;
	if (info->instance_id && json_object_set_new(o, "instance_id", json_string(info->instance_id)) < 0)
		return NULL;
	if (info->pool && json_object_set_new(o, "pool", json_string(info->pool)) < 0)
		return NULL;
	if (info->image && json_object_set_new(o, "image", json_string(info->image)) < 0)
		return NULL;
	if (info->wind_down && json_object_set_new(o, "wind_down", json_true()) < 0)
		return NULL;
	if (info->deployments_memory > 0 &&
	    json_object_set_new(o, "deployments", json_pack("{s:I}", "memory", (json_int_t) info->deployments_memory)) < 0)
		return NULL;
	return json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
}

uint64_t node_boot_time(void) {
	struct timespec real, boot;
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (uint64_t) (real.tv_sec - boot.tv_sec);
}

/* ---- the registration loop ------------------------------------------------------ */

static void retry_later(node_reg *n, const etcd_error *why) {
	uint64_t now;

	if (n->state != NODE_RETRYING || n->bo.attempt == 0)
		set_state(n, NODE_RETRYING, why);
	if (sd_event_now(etcd_client_event(n->client), CLOCK_MONOTONIC, &now) < 0)
		return;
	(void) sd_event_source_set_time(n->retry, now + backoff_next(&n->bo, backoff_random()));
	(void) sd_event_source_set_enabled(n->retry, SD_EVENT_ONESHOT);
}

/* The lease is gone (or cannot be kept): drop it; the next step takes a
 * new one, and the owner hears of the new one with why the old one went. */
static void lease_gone(node_reg *n, const etcd_error *why) {
	n->keeper = etcd_keeper_free(n->keeper);
	n->lease = 0;
	if (n->announced != 0 && n->lost.code == 0)
		n->lost = *why;
}

/* The keeper's news (etcd.h). Only etcd's word that the lease is gone
 * costs it: a new lease at once, one grant. Unanswered keepalives are an
 * outage to report (RETRYING), not a loss: the keeper keeps renewing, and
 * a busy etcd that answers late has renewed the lease all along. */
static void on_lease_news(etcd_keeper *k, const etcd_error *why, void *userdata) {
	node_reg *n = userdata;

	if (!why) {
		/* Answered again: the lease lived through the outage, and the
		 * key with it (a deletion meanwhile reaches on_watch). No write:
		 * after an overload every node would write at once. */
		if (n->state != NODE_RETRYING)
			return;
		if (n->announced == n->lease && !n->call)
			set_state(n, NODE_REGISTERED, NULL);
		else
			step(n);
		return;
	}
	if (why->code == -ETIMEDOUT) {
		set_state(n, NODE_RETRYING, why);
		return;
	}
	lease_gone(n, why);
	step(n);
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	node_reg *n = userdata;

	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* Only a safety net; the keeper still guards the lease. */
		n->watch = etcd_watch_free(n->watch);
		return;
	}
	if (m->type != ETCD_WATCH_EVENTS || n->stopping)
		return;
	for (size_t i = 0; i < m->n_events; i++)
		if (m->events[i].type == ETCD_EVENT_DELETE && !n->call) {
			/* Deleted by hand, or our lease expired: write it again
			 * (a dead lease makes the put fail and we re-grant). */
			step(n);
			return;
		}
}

static void on_put(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	node_reg *n = userdata;

	n->call = NULL;
	if (r->error.code == -ENOENT) {
		/* "requested lease not found": expired while we were away
		 * (paused, partitioned), revoked, or etcd was restored. */
		if (n->put_lease == n->lease)
			lease_gone(n, &r->error);
		step(n);
		return;
	}
	if (r->error.code < 0) {
		retry_later(n, &r->error);
		return;
	}
	if (n->put_lease != n->lease) {
		/* The lease went while the put was on its way: write again. */
		step(n);
		return;
	}
	backoff_reset(&n->bo);
	if (!n->watch) {
		etcd_watch_req req = { .key = n->key, .start_revision = r->header.revision + 1 };
		(void) etcd_watch_new(&n->watch, c, &req, on_watch, n);
	}
	/* Every new lease is announced, whatever the state: the owner puts
	 * everything else that rides on it back (node.h). */
	if (n->state != NODE_REGISTERED || n->announced != n->lease) {
		etcd_error lost = n->lost;
		bool relost = n->announced != 0 && n->announced != n->lease;

		n->announced = n->lease;
		n->lost = (etcd_error){};
		set_state(n, NODE_REGISTERED, relost ? &lost : NULL);
	}
}

static void on_grant(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	node_reg *n = userdata;
	int rr;

	n->call = NULL;
	if (r->error.code < 0) {
		retry_later(n, &r->error);
		return;
	}
	n->lease = r->lease_id;
	n->grant_id = 0;
	rr = etcd_keeper_new(&n->keeper, c, n->lease, r->ttl, on_lease_news, n);
	if (rr < 0) {
		etcd_error e = { .code = rr };
		snprintf(e.message, sizeof e.message, "cannot keep lease alive: %s", strerror(-rr));
		retry_later(n, &e);
		return;
	}
	step(n);
}

/* Does whatever comes next: take a lease, or write the key on it. */
static void step(node_reg *n) {
	int r;

	if (n->call || n->stopping)
		return;
	if (n->lease == 0) {
		if (n->grant_id == 0)
			n->grant_id = etcd_lease_new_id();
		r = etcd_lease_grant(n->client, n->ttl, n->grant_id, on_grant, n, &n->call);
	} else {
		etcd_put_req req = { .key = n->key, .value = n->record, .lease = n->lease };
		n->put_lease = n->lease;
		r = etcd_put(n->client, &req, on_put, n, &n->call);
	}
	if (r < 0) {
		etcd_error e = { .code = r };
		snprintf(e.message, sizeof e.message, "cannot send request: %s", strerror(-r));
		retry_later(n, &e);
	}
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	step(userdata);
	return 0;
}

int node_reg_new(node_reg **out, etcd_client *c, const char *key, const node_info *info, int64_t ttl_sec,
		 node_state_cb cb, void *userdata) {
	_cleanup_(node_reg_freep) node_reg *n = NULL;
	int r;

	if (ttl_sec < 2 || !cb)
		return -EINVAL;
	n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	n->client = c;
	n->ttl = ttl_sec;
	n->cb = cb;
	n->userdata = userdata;
	n->state = NODE_REGISTERING;
	n->bo = BACKOFF_INIT(200 * USEC_PER_MSEC, 10 * USEC_PER_SEC);
	n->key = strdup(key);
	n->record = node_record_json(info);
	if (!n->key || !n->record)
		return -ENOMEM;
	r = sd_event_add_time(etcd_client_event(c), &n->retry, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_retry, n);
	if (r < 0)
		return r;
	(void) sd_event_source_set_enabled(n->retry, SD_EVENT_OFF);

	step(n);
	*out = TAKE_PTR(n);
	return 0;
}

int node_reg_update(node_reg *n, const node_info *info) {
	char *record = node_record_json(info);

	if (!record)
		return -ENOMEM;
	free(n->record);
	n->record = record;
	if (n->call) {
		/* Whatever is in flight may carry the old record: redo it. */
		etcd_call_cancel(n->call);
		n->call = NULL;
	}
	step(n);
	return 0;
}

static void on_revoke(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	node_reg *n = userdata;

	n->call = NULL;
	n->lease = 0;
	set_state(n, NODE_STOPPED, r->error.code < 0 ? &r->error : NULL);
}

int node_reg_stop(node_reg *n) {
	int64_t lease = n->lease;

	n->stopping = true;
	etcd_call_cancel(n->call);
	n->call = NULL;
	n->keeper = etcd_keeper_free(n->keeper);
	n->watch = etcd_watch_free(n->watch);
	(void) sd_event_source_set_enabled(n->retry, SD_EVENT_OFF);
	if (lease == 0) {
		set_state(n, NODE_STOPPED, NULL);
		return 0;
	}
	/* Revoking the lease deletes the key with it, atomically. */
	return etcd_lease_revoke(n->client, lease, on_revoke, n, &n->call);
}

node_state node_reg_state(const node_reg *n) {
	return n->state;
}

int64_t node_reg_lease(const node_reg *n) {
	return n->lease;
}

node_reg *node_reg_free(node_reg *n) {
	if (!n)
		return NULL;
	etcd_call_cancel(n->call);
	etcd_keeper_free(n->keeper);
	etcd_watch_free(n->watch);
	sd_event_source_disable_unref(n->retry);
	free(n->key);
	free(n->record);
	free(n);
	return NULL;
}
