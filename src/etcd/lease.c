/* lease.c — the Lease service, and keepers that hold one lease alive. */
#include "backoff.h"
#include "etcd-internal.h"

static int lease_call(etcd_client *c, etcd_op_type type, const char *path, json_t *body, const etcd_call_opts *o,
		      etcd_callback cb, void *userdata, etcd_call **ret) {
	json_auto_t *b = body;
	if (!b)
		return -ENOMEM;
	return etcd_call_start(c, type, path, b, o, NULL, NULL, NULL, cb, userdata, ret);
}

static const etcd_call_opts once = { .idempotent = false }, again = { .idempotent = true };

static json_t *id_body(int64_t id) {
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", (long long) id);
	return json_pack("{ss}", "ID", buf);
}

int etcd_lease_grant(etcd_client *c, int64_t ttl_sec, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret) {
	char ttl[32], idb[32];

	if (ttl_sec <= 0)
		return -EINVAL;
	snprintf(ttl, sizeof ttl, "%lld", (long long) ttl_sec);
	snprintf(idb, sizeof idb, "%lld", (long long) id);
	/* "TTL", not "ttl": the gateway ignores unknown fields and would grant
	 * its 2 s minimum. */
	json_t *body = id ? json_pack("{ssss}", "TTL", ttl, "ID", idb) : json_pack("{ss}", "TTL", ttl);
	/* With our own ID a grant is safe to send twice: the second finds the
	 * lease there ("already exists") and is answered as granted. */
	etcd_call_opts own = { .idempotent = true, .own_lease = id, .own_ttl = ttl_sec };
	return lease_call(c, ETCD_OP_LEASE_GRANT, "/v3/lease/grant", body, id ? &own : &once, cb, userdata, ret);
}

int64_t etcd_lease_new_id(void) {
	int64_t id;

	do
		id = (int64_t) (backoff_random() & INT64_MAX);
	while (id == 0);
	return id;
}

int etcd_lease_revoke(etcd_client *c, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret) {
	return lease_call(c, ETCD_OP_LEASE_REVOKE, "/v3/lease/revoke", id_body(id), &again, cb, userdata, ret);
}

static int keepalive(etcd_client *c, int64_t id, const etcd_call_opts *o, etcd_callback cb, void *userdata,
		     etcd_call **ret) {
	/* The gateway streams keepalives, but one request per renewal is as
	 * cheap (~0.5 ms) and ends by itself: the reply is {"result":{...}}. */
	return lease_call(c, ETCD_OP_LEASE_KEEPALIVE, "/v3/lease/keepalive", id_body(id), o, cb, userdata, ret);
}

int etcd_lease_keepalive(etcd_client *c, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret) {
	static const etcd_call_opts o = { .idempotent = true, .urgent = true };
	return keepalive(c, id, &o, cb, userdata, ret);
}

int etcd_lease_ttl(etcd_client *c, int64_t id, bool keys, etcd_callback cb, void *userdata, etcd_call **ret) {
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", (long long) id);
	return lease_call(c, ETCD_OP_LEASE_TTL, "/v3/lease/timetolive", json_pack("{sssb}", "ID", buf, "keys", keys),
			  &again, cb, userdata, ret);
}

int etcd_status(etcd_client *c, etcd_callback cb, void *userdata, etcd_call **ret) {
	return lease_call(c, ETCD_OP_STATUS, "/v3/maintenance/status", json_object(), &again, cb, userdata, ret);
}

int etcd_status_at(etcd_client *c, size_t endpoint, etcd_callback cb, void *userdata, etcd_call **ret) {
	etcd_call_opts o = { .idempotent = true, .pinned = true, .endpoint = endpoint };
	return lease_call(c, ETCD_OP_STATUS, "/v3/maintenance/status", json_object(), &o, cb, userdata, ret);
}

/* ---- keeper ---------------------------------------------------------------- */

struct etcd_keeper {
	etcd_client *client;
	int64_t lease_id;
	uint64_t ttl_usec;
	uint64_t last_ok;               /* CLOCK_MONOTONIC of the last renewal */
	bool unconfirmed;               /* reported: no renewal for a whole TTL */
	sd_event_source *timer;
	etcd_call *call;
	backoff retry;
	etcd_keeper_cb lost;
	void *userdata;
};

static void keeper_arm(etcd_keeper *k, uint64_t delay) {
	uint64_t now;
	if (sd_event_now(etcd_client_event(k->client), CLOCK_MONOTONIC, &now) < 0)
		return;
	/* A tenth of the delay as slack: sd-event wakes once for the keepers,
	 * leader keepalives and watch deadlines that fall close together. */
	(void) sd_event_source_set_time_accuracy(k->timer, delay / 10 > 0 ? delay / 10 : 1);
	(void) sd_event_source_set_time(k->timer, now + delay);
	(void) sd_event_source_set_enabled(k->timer, SD_EVENT_ONESHOT);
}

static void keeper_lost(etcd_keeper *k, const etcd_error *why) {
	(void) sd_event_source_set_enabled(k->timer, SD_EVENT_OFF);
	k->lost(k, why, k->userdata);
}

/* Unconfirmed is not lost: an overloaded etcd renews the lease and answers
 * late, and a new lease would only add to its load. Lost is etcd's word. */
static void keeper_unconfirmed(etcd_keeper *k, bool unconfirmed, const etcd_error *why) {
	if (k->unconfirmed == unconfirmed)
		return;
	k->unconfirmed = unconfirmed;
	k->lost(k, why, k->userdata);   /* the last thing done: it may free k */
}

static void on_keepalive(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	etcd_keeper *k = userdata;
	uint64_t now;

	k->call = NULL;
	(void) sd_event_now(etcd_client_event(c), CLOCK_MONOTONIC, &now);

	if (r->error.code == 0 && r->ttl > 0) {
		k->last_ok = now;
		backoff_reset(&k->retry);
		keeper_arm(k, k->ttl_usec / 3);
		keeper_unconfirmed(k, false, NULL);
		return;
	}
	if (r->error.code == 0 || r->error.code == -ENOENT) {
		etcd_error e = { .grpc_code = -1 };
		etcd_error_set(&e, ETCD_ERROR_GATEWAY, -ENOENT, "lease %llx expired or was revoked",
			       (unsigned long long) k->lease_id);
		snprintf(e.endpoint, sizeof e.endpoint, "%s", r->error.endpoint);
		keeper_lost(k, &e);
		return;
	}
	/* Try again soon (the next member first), then less and less often. */
	keeper_arm(k, backoff_next(&k->retry, backoff_random()));
	if (now - k->last_ok >= k->ttl_usec) {
		etcd_error e = r->error;
		etcd_error_prefix(&e, "no keepalive answered for a whole TTL: ");
		e.code = -ETIMEDOUT;
		keeper_unconfirmed(k, true, &e);
	}
}

static int on_keeper_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	etcd_keeper *k = userdata;
	uint64_t age = usec > k->last_ok ? usec - k->last_ok : 0;

	if (k->call)
		return 0;
	/* A hung member may hold one try for ttl/4 at most, leaving time for the
	 * next member before the lease ends; the last member left gets what is
	 * left of the lease (client.c), a slow answer is still an answer. Past
	 * the lease's end (unconfirmed), each call gets ttl/3. */
	etcd_call_opts o = {
		.idempotent = true,
		.urgent = true,
		.attempt_usec = k->ttl_usec / 4,
		.total_usec = age + k->ttl_usec / 3 < k->ttl_usec ? k->ttl_usec - age : k->ttl_usec / 3,
	};
	if (keepalive(k->client, k->lease_id, &o, on_keepalive, k, &k->call) < 0)
		keeper_arm(k, backoff_next(&k->retry, backoff_random()));
	return 0;
}

int etcd_keeper_new(etcd_keeper **out, etcd_client *c, int64_t lease_id, int64_t ttl_sec, etcd_keeper_cb lost,
		    void *userdata) {
	sd_event *e = etcd_client_event(c);
	int r;

	if (ttl_sec <= 0 || !lost)
		return -EINVAL;
	etcd_keeper *k = calloc(1, sizeof *k);
	if (!k)
		return -ENOMEM;
	k->client = c;
	k->lease_id = lease_id;
	k->ttl_usec = (uint64_t) ttl_sec * USEC_PER_SEC;
	k->lost = lost;
	k->userdata = userdata;
	k->retry = BACKOFF_INIT(100 * USEC_PER_MSEC, k->ttl_usec / 6);
	(void) sd_event_now(e, CLOCK_MONOTONIC, &k->last_ok);
	r = sd_event_add_time(e, &k->timer, CLOCK_MONOTONIC, k->last_ok + k->ttl_usec / 3, USEC_PER_MSEC,
			      on_keeper_timer, k);
	if (r < 0) {
		free(k);
		return r;
	}
	(void) sd_event_source_set_description(k->timer, "etcd-keeper");
	etcd_client_keeper_added(c, k->ttl_usec / 3);
	/* Ahead of renders and watch events that are ready at the same time. */
	(void) sd_event_source_set_priority(k->timer, SD_EVENT_PRIORITY_IMPORTANT);
	*out = k;
	return 0;
}

int64_t etcd_keeper_lease(const etcd_keeper *k) {
	return k->lease_id;
}

etcd_keeper *etcd_keeper_free(etcd_keeper *k) {
	if (!k)
		return NULL;
	etcd_call_cancel(k->call);
	sd_event_source_disable_unref(k->timer);
	etcd_client_keeper_removed(k->client);
	free(k);
	return NULL;
}
