/* leader.c — the leader campaign: a lease of our own, a create-if-absent
 * txn on the leader key, a watch on it, and a step-down deadline that runs
 * ahead of the lease's expiry (see leader.h and docs/leader.md). */
#include <jansson.h>
#include <time.h>

#include "backoff.h"
#include "leader.h"

#define MARGIN_FLOOR_USEC (250 * USEC_PER_MSEC)

struct leader {
	etcd_client *client;
	sd_event *event;
	char *key, *node_id;
	int64_t ttl;                    /* asked for */
	int64_t granted;                /* what etcd granted (it may round up) */
	uint64_t margin;
	leader_callbacks cb;
	void *userdata;

	int64_t lease;                  /* 0: none yet, or lost */
	int64_t grant_id;               /* asked for until a grant succeeds */
	uint64_t confirmed;             /* send time of the last grant/keepalive
	                                   that etcd answered with the lease alive */
	etcd_call *grant_call, *ka_call, *txn_call, *revoke_call;
	uint64_t grant_sent, ka_sent;
	int64_t txn_lease;              /* the lease the txn in flight carries */
	sd_event_source *ka_timer, *retry_timer, *deadline_timer;
	backoff ka_bo, bo;
	etcd_watch *watch;
	int64_t known_rev;              /* the key's state is known up to here */

	bool owned;                     /* the key is ours (as far as we know) */
	int64_t token;                  /* its create_revision, when owned */
	bool leading;                   /* elected reported, deposed not yet */
	bool campaign_again;            /* a campaign was asked for mid-txn */
	bool troubled;
	bool stopped;                   /* resigned */
	leader_resign_cb resign_cb;
	void *resign_userdata;
};

static void campaign(leader *l);
static void start_grant(leader *l);

/* ---- pure helpers -------------------------------------------------------------- */

etcd_compare leader_fence(const char *key, int64_t token) {
	return (etcd_compare){ .key = key, .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_CREATE, .number = token };
}

uint64_t leader_default_margin(int64_t ttl_sec) {
	uint64_t ttl = (uint64_t) (ttl_sec > 0 ? ttl_sec : 0) * USEC_PER_SEC;
	uint64_t m = ttl / 5;

	if (m < MARGIN_FLOOR_USEC)
		m = MARGIN_FLOOR_USEC;
	if (m > ttl / 2)
		m = ttl / 2;
	return m;
}

uint64_t leader_deadline(uint64_t confirmed_usec, int64_t ttl_sec, uint64_t margin_usec) {
	uint64_t end = confirmed_usec + (uint64_t) (ttl_sec > 0 ? ttl_sec : 0) * USEC_PER_SEC;

	return end > margin_usec ? end - margin_usec : 0;
}

const char *leader_reason_to_string(leader_reason r) {
	switch (r) {
	case LEADER_RESIGNED:
		return "resigned";
	case LEADER_LEASE_LOST:
		return "lease lost";
	case LEADER_LEASE_UNCONFIRMED:
		return "lease not confirmed in time (etcd unreachable?)";
	case LEADER_KEY_DELETED:
		return "leader key deleted";
	case LEADER_KEY_TAKEN:
		return "another node holds the leader key";
	case LEADER_FENCE_FAILED:
		return "a fenced write was refused";
	}
	return "unknown";
}

char *leader_value_json(const char *node_id, uint64_t since) {
	time_t t = (time_t) since;
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&t, &tm))
		return NULL;
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_auto_t *o = json_pack("{s:s, s:s}", "node_id", node_id, "since", buf);
	return o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

int leader_value_parse(const char *value, size_t len, char **node_id, uint64_t *since) {
	json_auto_t *o = value ? json_loadb(value, len, 0, NULL) : NULL;
	json_t *id = json_object_get(o, "node_id");
	const char *s = json_string_value(json_object_get(o, "since"));
	struct tm tm = {};

	*since = 0;
	if (!json_is_string(id)) {
		/* Not ours: show it as it is. */
		*node_id = strndup(value ? value : "", value ? len : 0);
		return *node_id ? 0 : -ENOMEM;
	}
	*node_id = strdup(json_string_value(id));
	if (!*node_id)
		return -ENOMEM;
	if (s) {
		const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (end && *end == '\0') {
			time_t t = timegm(&tm);
			if (t > 0)
				*since = (uint64_t) t;
		}
	}
	return 0;
}

/* ---- state changes ----------------------------------------------------------- */

static uint64_t mono_now(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static uint64_t deadline(const leader *l) {
	return leader_deadline(l->confirmed, l->granted, l->margin);
}

/* Reports a change only: the first failure, and the recovery. */
static void trouble(leader *l, const etcd_error *e) {
	if ((e != NULL) == l->troubled)
		return;
	l->troubled = e != NULL;
	if (l->cb.trouble)
		l->cb.trouble(l, e, l->userdata);
}

static void depose(leader *l, leader_reason why) {
	if (!l->leading)
		return;
	l->leading = false;
	(void) sd_event_source_set_enabled(l->deadline_timer, SD_EVENT_OFF);
	l->cb.deposed(l, why, l->userdata);
}

static void arm_deadline(leader *l) {
	(void) sd_event_source_set_time(l->deadline_timer, deadline(l));
	(void) sd_event_source_set_enabled(l->deadline_timer, SD_EVENT_ONESHOT);
}

/* Leads when the key is ours and the lease is confirmed for a while yet;
 * otherwise the next successful keepalive tries again. */
static void elect(leader *l) {
	if (l->leading || !l->owned || l->stopped || mono_now() >= deadline(l))
		return;
	l->leading = true;
	arm_deadline(l);
	l->cb.elected(l, l->token, l->userdata);
}

static void set_owner(leader *l, bool ours, int64_t token) {
	if (l->leading && (!ours || token != l->token))
		depose(l, ours ? LEADER_KEY_DELETED : LEADER_KEY_TAKEN);
	l->owned = ours;
	l->token = ours ? token : 0;
	if (ours)
		elect(l);
}

static void retry_later(leader *l, const etcd_error *why) {
	trouble(l, why);
	(void) sd_event_source_set_time(l->retry_timer, mono_now() + backoff_next(&l->bo, backoff_random()));
	(void) sd_event_source_set_enabled(l->retry_timer, SD_EVENT_ONESHOT);
}

static void local_error(leader *l, int r, const char *what) {
	etcd_error e = { .code = r };

	snprintf(e.message, sizeof e.message, "cannot send %s: %s", what, strerror(-r));
	retry_later(l, &e);
}

/* etcd says the lease is gone, and the key with it: start over. */
static void lease_lost(leader *l) {
	depose(l, LEADER_LEASE_LOST);
	l->owned = false;
	l->token = 0;
	l->lease = 0;
	etcd_call_cancel(l->ka_call);
	l->ka_call = NULL;
	etcd_call_cancel(l->txn_call);
	l->txn_call = NULL;
	(void) sd_event_source_set_enabled(l->ka_timer, SD_EVENT_OFF);
	start_grant(l);
}

/* ---- keepalive ------------------------------------------------------------------- */

static void schedule_keepalive(leader *l, uint64_t at) {
	uint64_t now = mono_now(), slack = at > now ? (at - now) / 10 : 0;

	/* A tenth of the wait as slack, to share wake-ups (lease.c). */
	(void) sd_event_source_set_time_accuracy(l->ka_timer, slack > 0 ? slack : 1);
	(void) sd_event_source_set_time(l->ka_timer, at);
	(void) sd_event_source_set_enabled(l->ka_timer, SD_EVENT_ONESHOT);
}

static uint64_t ka_interval(const leader *l) {
	return (uint64_t) l->granted * USEC_PER_SEC / 3;
}

static void on_keepalive(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	leader *l = userdata;

	l->ka_call = NULL;
	if (r->error.code == -ENOENT || (r->error.code == 0 && r->ttl <= 0)) {
		lease_lost(l);
		return;
	}
	if (r->error.code < 0) {
		uint64_t delay = backoff_next(&l->ka_bo, backoff_random());
		trouble(l, &r->error);
		schedule_keepalive(l, mono_now() + (delay < ka_interval(l) ? delay : ka_interval(l)));
		return;
	}
	backoff_reset(&l->ka_bo);
	trouble(l, NULL);
	if (l->ka_sent > l->confirmed)
		l->confirmed = l->ka_sent;
	schedule_keepalive(l, l->ka_sent + ka_interval(l));
	if (l->leading)
		arm_deadline(l);
	else if (l->owned)
		/* Stepped down for want of proof, and the lease lived: look
		 * whether the key is still ours before leading again. */
		campaign(l);
}

static int on_ka_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	leader *l = userdata;
	int r;

	if (l->stopped || l->lease == 0)
		return 0;
	/* One that has hung this long is no use: send a fresh one. */
	etcd_call_cancel(l->ka_call);
	l->ka_call = NULL;
	l->ka_sent = mono_now();
	r = etcd_lease_keepalive(l->client, l->lease, on_keepalive, l, &l->ka_call);
	/* Whatever happens, the next one goes out in a while. */
	schedule_keepalive(l, l->ka_sent + (r < 0 ? backoff_next(&l->ka_bo, backoff_random()) : ka_interval(l)));
	return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
	leader *l = userdata;

	if (mono_now() < deadline(l)) {
		arm_deadline(l);
		return 0;
	}
	depose(l, LEADER_LEASE_UNCONFIRMED);
	/* Keep trying: if the lease lived, we lead again. */
	if (!l->ka_call)
		schedule_keepalive(l, mono_now());
	return 0;
}

/* ---- grant ---------------------------------------------------------------------- */

static void on_grant(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	leader *l = userdata;

	l->grant_call = NULL;
	if (r->error.code < 0 || r->ttl <= 0) {
		if (r->error.code < 0)
			retry_later(l, &r->error);
		else
			local_error(l, -EBADMSG, "lease grant (no TTL in the reply)");
		return;
	}
	l->lease = r->lease_id;
	l->grant_id = 0;
	l->granted = r->ttl;
	l->confirmed = l->grant_sent;
	backoff_reset(&l->ka_bo);
	schedule_keepalive(l, l->grant_sent + ka_interval(l));
	campaign(l);
}

static void start_grant(leader *l) {
	int r;

	if (l->stopped || l->grant_call)
		return;
	/* One ID until a grant succeeds: a retry after a timeout finds the
	 * lease an earlier try took instead of taking another. The lease may
	 * date from the first try, so the proof of life counts from there. */
	if (l->grant_id == 0) {
		l->grant_id = etcd_lease_new_id();
		l->grant_sent = mono_now();
	}
	r = etcd_lease_grant(l->client, l->ttl, l->grant_id, on_grant, l, &l->grant_call);
	if (r < 0)
		local_error(l, r, "lease grant");
}

/* ---- the campaign txn and the watch -------------------------------------------- */

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata);

static void ensure_watch(leader *l, int64_t from) {
	etcd_watch_req req = { .key = l->key, .start_revision = from };
	int r;

	if (l->watch)
		return;
	/* Without a watch a follower would never hear of the leader's end:
	 * campaign again (which watches again) until it works. */
	r = etcd_watch_new(&l->watch, l->client, &req, on_watch, l);
	if (r < 0)
		local_error(l, r, "watch");
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	leader *l = userdata;

	switch (m->type) {
	case ETCD_WATCH_COMPACTED:
		/* Events are lost: read the key afresh (the campaign txn does),
		 * which also watches again from there. */
		l->watch = etcd_watch_free(l->watch);
		campaign(l);
		return;
	case ETCD_WATCH_CANCELED:
		/* The same, after a pause: etcd may refuse again (permissions). */
		l->watch = etcd_watch_free(l->watch);
		if (m->error)
			retry_later(l, m->error);
		else
			local_error(l, -ECANCELED, "watch (cancelled by etcd)");
		return;
	case ETCD_WATCH_EVENTS:
		break;
	default:
		return;
	}
	for (size_t i = 0; i < m->n_events; i++) {
		const etcd_event *e = &m->events[i];

		if (e->kv.mod_revision <= l->known_rev)
			continue;       /* the campaign reply already told us */
		l->known_rev = e->kv.mod_revision;
		if (e->type == ETCD_EVENT_DELETE) {
			if (l->owned) {
				depose(l, LEADER_KEY_DELETED);
				l->owned = false;
				l->token = 0;
			}
			campaign(l);
		} else if (l->owned && e->kv.create_revision != l->token)
			set_owner(l, false, 0);
	}
}

static void on_txn(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	leader *l = userdata;
	const etcd_kv *kv = NULL;

	l->txn_call = NULL;
	if (r->error.code == -ENOENT) {
		/* "requested lease not found": it expired while we were away. */
		lease_lost(l);
		return;
	}
	if (r->error.code < 0) {
		retry_later(l, &r->error);
		return;
	}
	if (l->txn_lease != l->lease) {
		/* Sent on a lease we have since lost: look again. */
		campaign(l);
		return;
	}
	trouble(l, NULL);
	backoff_reset(&l->bo);
	if (r->header.revision > l->known_rev)
		l->known_rev = r->header.revision;
	/* Both branches end with a range of the key. */
	if (r->n_responses > 0 && r->responses[r->n_responses - 1].n_kvs > 0)
		kv = &r->responses[r->n_responses - 1].kvs[0];
	if (!kv)
		/* Gone between compare and range cannot happen in one txn;
		 * be safe anyway. */
		l->campaign_again = true;
	else if (kv->lease == l->lease)
		set_owner(l, true, kv->create_revision);
	else
		set_owner(l, false, 0);
	ensure_watch(l, r->header.revision + 1);
	if (l->campaign_again) {
		l->campaign_again = false;
		campaign(l);
	}
}

/* Tries to take the key, or learns who holds it. Idempotent: when the key
 * is ours already (same lease) it just confirms the token. */
static void campaign(leader *l) {
	_cleanup_free_ char *value = NULL;
	int r;

	if (l->stopped)
		return;
	if (l->txn_call) {
		l->campaign_again = true;
		return;
	}
	if (l->lease == 0) {
		start_grant(l);         /* campaigns once granted */
		return;
	}
	value = leader_value_json(l->node_id, (uint64_t) time(NULL));
	if (!value) {
		local_error(l, -ENOMEM, "campaign");
		return;
	}
	etcd_compare absent = { .key = l->key, .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_CREATE, .number = 0 };
	etcd_op success[] = {
		{ .type = ETCD_OP_PUT, .put = { .key = l->key, .value = value, .lease = l->lease } },
		{ .type = ETCD_OP_RANGE, .range = { .key = l->key } },
	};
	etcd_op failure[] = { { .type = ETCD_OP_RANGE, .range = { .key = l->key } } };
	etcd_txn_req req = { &absent, 1, success, ELEMENTSOF(success), failure, ELEMENTSOF(failure) };

	l->txn_lease = l->lease;
	r = etcd_txn(l->client, &req, on_txn, l, &l->txn_call);
	if (r < 0)
		local_error(l, r, "campaign");
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	campaign(userdata);     /* grants first when there is no lease */
	return 0;
}

/* ---- the object ------------------------------------------------------------------- */

int leader_new(leader **out, etcd_client *c, const leader_options *o, const leader_callbacks *cb, void *userdata) {
	_cleanup_(leader_freep) leader *l = NULL;
	int r;

	if (!out || !c || !o || !o->key || !o->node_id || o->ttl_sec < 2 || !cb || !cb->elected || !cb->deposed)
		return -EINVAL;
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->client = c;
	l->event = sd_event_ref(etcd_client_event(c));
	l->key = strdup(o->key);
	l->node_id = strdup(o->node_id);
	if (!l->key || !l->node_id)
		return -ENOMEM;
	l->ttl = l->granted = o->ttl_sec;
	l->margin = o->margin_usec ? o->margin_usec : leader_default_margin(o->ttl_sec);
	l->cb = *cb;
	l->userdata = userdata;
	l->bo = BACKOFF_INIT(100 * USEC_PER_MSEC, 5 * USEC_PER_SEC);
	l->ka_bo = BACKOFF_INIT(50 * USEC_PER_MSEC, USEC_PER_SEC);

	r = sd_event_add_time(l->event, &l->ka_timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_ka_timer, l);
	if (r < 0)
		return r;
	r = sd_event_add_time(l->event, &l->retry_timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_retry, l);
	if (r < 0)
		return r;
	/* Accuracy 1 us: this one must not fire late. */
	r = sd_event_add_time(l->event, &l->deadline_timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_deadline, l);
	if (r < 0)
		return r;
	(void) sd_event_source_set_enabled(l->ka_timer, SD_EVENT_OFF);
	(void) sd_event_source_set_enabled(l->retry_timer, SD_EVENT_OFF);
	(void) sd_event_source_set_enabled(l->deadline_timer, SD_EVENT_OFF);
	/* Ahead of other timers at the same time: step down first. */
	(void) sd_event_source_set_priority(l->deadline_timer, SD_EVENT_PRIORITY_IMPORTANT);
	/* Keepalives ahead of renders and watch events ready at the same time. */
	(void) sd_event_source_set_priority(l->ka_timer, SD_EVENT_PRIORITY_IMPORTANT);

	start_grant(l);
	*out = TAKE_PTR(l);
	return 0;
}

bool leader_is_leader(const leader *l) {
	return l && l->leading;
}

int64_t leader_token(const leader *l) {
	return l && l->leading ? l->token : 0;
}

int64_t leader_lease(const leader *l) {
	return l ? l->lease : 0;
}

void leader_fence_failed(leader *l) {
	if (!l || l->stopped)
		return;
	depose(l, LEADER_FENCE_FAILED);
	l->owned = false;
	l->token = 0;
	campaign(l);
}

static void on_revoke(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	leader *l = userdata;

	l->revoke_call = NULL;
	l->lease = 0;
	if (l->resign_cb)
		l->resign_cb(l, r->error.code < 0 ? &r->error : NULL, l->resign_userdata);
}

int leader_resign(leader *l, leader_resign_cb done, void *userdata) {
	int64_t lease;
	int r;

	if (l->stopped)
		return -EALREADY;
	l->stopped = true;
	depose(l, LEADER_RESIGNED);
	l->owned = false;
	l->token = 0;
	etcd_call_cancel(l->grant_call);
	etcd_call_cancel(l->ka_call);
	etcd_call_cancel(l->txn_call);
	l->grant_call = l->ka_call = l->txn_call = NULL;
	l->watch = etcd_watch_free(l->watch);
	(void) sd_event_source_set_enabled(l->ka_timer, SD_EVENT_OFF);
	(void) sd_event_source_set_enabled(l->retry_timer, SD_EVENT_OFF);
	(void) sd_event_source_set_enabled(l->deadline_timer, SD_EVENT_OFF);
	l->resign_cb = done;
	l->resign_userdata = userdata;
	lease = l->lease;
	if (lease == 0) {
		if (done)
			done(l, NULL, userdata);
		return 0;
	}
	/* Revoking deletes the key with the lease, atomically: the others
	 * see the delete and campaign at once. */
	r = etcd_lease_revoke(l->client, lease, on_revoke, l, &l->revoke_call);
	if (r < 0)
		return r;
	return 0;
}

leader *leader_free(leader *l) {
	if (!l)
		return NULL;
	etcd_call_cancel(l->grant_call);
	etcd_call_cancel(l->ka_call);
	etcd_call_cancel(l->txn_call);
	etcd_call_cancel(l->revoke_call);
	etcd_watch_free(l->watch);
	sd_event_source_disable_unref(l->ka_timer);
	sd_event_source_disable_unref(l->retry_timer);
	sd_event_source_disable_unref(l->deadline_timer);
	sd_event_unref(l->event);
	free(l->key);
	free(l->node_id);
	free(l);
	return NULL;
}
