/* client.c — the etcd client's transport: libcurl's multi interface driven
 * by sd-event, authentication and call bookkeeping (members.c picks the
 * member each attempt goes to).
 *
 * curl tells us which sockets to watch (socket callback -> sd_event io
 * sources) and when to wake it (timer callback -> one sd_event timer); we
 * hand events back with curl_multi_socket_action(). Nothing user-visible runs
 * inside a curl callback: the write callback only buffers, and complete
 * replies and stream lines are dispatched after curl returns, so callbacks
 * may start, cancel or free calls freely. */
#include <inttypes.h>
#include <stdarg.h>

#include "curlev.h"
#include "etcd-internal.h"

#define MAX_REPLY_BYTES (256u << 20) /* a unary reply; etcd's own cap is far lower */
#define MAX_LINE_BYTES  (64u << 20)  /* one watch message */

struct etcd_call {
	etcd_client *client;
	etcd_call *prev, *next;          /* client->calls */
	etcd_call *pending_next;         /* client->pending (has work to dispatch) */
	bool pending;

	etcd_op_type type;
	char *path;
	char *body;
	bool idempotent;
	bool stream;
	bool is_auth;
	bool waiting_auth;               /* queued until a token arrives */
	bool auth_retried;
	bool done;                       /* curl finished; result in `result` */

	CURL *easy;
	struct curl_slist *headers;
	size_t endpoint;                 /* index used by the running attempt */
	bool pinned;                     /* only `endpoint`, no fail-over */
	bool urgent;                     /* on the lease multi (etcd_call_opts) */
	int64_t own_lease, own_ttl;
	CURLM *multi;                    /* the one `easy` is on */
	uint64_t tried;                  /* endpoints tried, one bit each */
	uint64_t deadline;               /* unary: CLOCK_MONOTONIC end of the call */
	uint64_t total_usec;             /* request_timeout, or less */
	uint64_t attempt_usec;           /* attempt_timeout, or less */
	uint64_t attempt_start;          /* CLOCK_MONOTONIC of the running attempt */
	char trail[256];                 /* the endpoints that failed it (report.c) */
	char errbuf[CURL_ERROR_SIZE];
	CURLcode result;

	char *buf;                       /* reply bytes (stream: unread part) */
	size_t len, cap;
	bool overflow;

	etcd_callback cb;
	void *userdata;
	etcd_step_fn step;
	void *step_data;
	void (*step_free)(void *);

	etcd_line_fn on_line;
	etcd_end_fn on_end;
};

struct etcd_client {
	sd_event *event;
	curlev *curl;
	CURLM *multi;                   /* curlev_multi(curl) */
	sd_event_source *more;          /* dispatch the rest, next iteration */
	curlev *lease_curl;             /* keepalives only, made on first use */
	CURLM *lease_multi;

	etcd_members members;

	char *ca_file, *cert_file, *key_file;
	char *username, *password;
	char *token;
	bool authenticating;
	uint64_t request_timeout_usec;
	uint64_t attempt_timeout_usec;
	uint64_t connect_timeout_usec;
	uint64_t watch_progress_usec;
	uint64_t keepalive_usec;        /* shortest keeper interval (0: none) */
	unsigned n_keepers;

	etcd_call *calls;
	etcd_call *pending, *pending_tail;
	bool dispatching;
};

static void call_free(etcd_call *call);
static int call_send(etcd_call *call);
static void dispatch(etcd_client *c);
static int on_more(sd_event_source *s, void *userdata);

static uint64_t now_usec(void) {
	struct timespec ts;
	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t umin(uint64_t a, uint64_t b) {
	return a < b ? a : b;
}

/* The smaller, where 0 means "not set". */
static uint64_t min_nonzero(uint64_t a, uint64_t b) {
	return a == 0 ? b : b == 0 ? a : umin(a, b);
}

/* curl made progress (curlev.h). */
static void on_progress(curlev *cv, void *userdata) {
	dispatch(userdata);
}

/* ---- the client -------------------------------------------------------------- */

static int dup_opt(char **dst, const char *src) {
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static char *wipe_free(char *s) {
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
	return NULL;
}

etcd_client *etcd_client_free(etcd_client *c) {
	if (!c)
		return NULL;
	while (c->calls)
		call_free(c->calls);
	curlev_free(c->curl);
	curlev_free(c->lease_curl);
	sd_event_source_disable_unref(c->more);
	sd_event_unref(c->event);
	etcd_members_done(&c->members);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->username);
	wipe_free(c->password);
	wipe_free(c->token);
	free(c);
	return NULL;
}

int etcd_client_new(etcd_client **out, sd_event *event, const etcd_options *opts) {
	_cleanup_(etcd_client_freep) etcd_client *c = NULL;
	int r;

	if (!opts || !opts->endpoints || !opts->endpoints[0])
		return -EINVAL;

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(event);
	c->request_timeout_usec = opts->request_timeout_usec ? opts->request_timeout_usec : 10 * USEC_PER_SEC;
	c->attempt_timeout_usec = opts->attempt_timeout_usec ? opts->attempt_timeout_usec : 2 * USEC_PER_SEC;
	c->attempt_timeout_usec = umin(c->attempt_timeout_usec, c->request_timeout_usec);
	c->connect_timeout_usec = opts->connect_timeout_usec ? opts->connect_timeout_usec : 2 * USEC_PER_SEC;
	c->watch_progress_usec = opts->watch_progress_usec ? opts->watch_progress_usec : 3 * USEC_PER_SEC;

	r = etcd_members_init(&c->members, opts->endpoints);
	if (r < 0)
		return r;
	if (dup_opt(&c->ca_file, opts->ca_file) < 0 || dup_opt(&c->cert_file, opts->cert_file) < 0 ||
	    dup_opt(&c->key_file, opts->key_file) < 0 || dup_opt(&c->username, opts->username) < 0 ||
	    dup_opt(&c->password, opts->password) < 0)
		return -ENOMEM;
	if (c->username && !c->password)
		return -EINVAL;

	r = curlev_new(&c->curl, event, "etcd", on_progress, c);
	if (r < 0)
		return r;
	c->multi = curlev_multi(c->curl);
	r = sd_event_add_defer(event, &c->more, on_more, c);
	if (r < 0)
		return r;
	(void) sd_event_source_set_enabled(c->more, SD_EVENT_OFF);
	(void) sd_event_source_set_description(c->more, "etcd-dispatch");

	*out = TAKE_PTR(c);
	return 0;
}

sd_event *etcd_client_event(etcd_client *c) {
	return c->event;
}

const char *etcd_client_endpoint(etcd_client *c) {
	return c->members.v[c->members.current].url;
}

/* A watch's member counts as alive while keepalives to it are answered
 * (watch.c); with keepalives a little further apart than the deadline,
 * every quiet watch would also ask for the member's status now and then.
 * So the deadline stretches to the keepalive interval, plus an eighth for
 * the round trip: an idle node sends keepalives and nothing else. */
uint64_t etcd_client_watch_progress(const etcd_client *c) {
	uint64_t k = c->keepalive_usec + c->keepalive_usec / 8;
	return c->watch_progress_usec > k ? c->watch_progress_usec : k;
}

void etcd_client_keeper_added(etcd_client *c, uint64_t interval_usec) {
	if (c->n_keepers++ == 0 || interval_usec < c->keepalive_usec)
		c->keepalive_usec = interval_usec;
}

void etcd_client_keeper_removed(etcd_client *c) {
	if (c->n_keepers > 0 && --c->n_keepers == 0)
		c->keepalive_usec = 0;
}

void etcd_client_endpoint_failed(etcd_client *c, size_t index, const etcd_error *e) {
	etcd_members_failed(&c->members, index, e, now_usec());
}

uint64_t etcd_client_endpoint_last_heard(const etcd_client *c, size_t index) {
	return c->members.v[index].last_heard;
}

size_t etcd_call_endpoint_index(const etcd_call *call) {
	return call->endpoint;
}

void etcd_client_drop_token(etcd_client *c) {
	c->token = wipe_free(c->token);
}

/* ---- calls ---------------------------------------------------------------- */

static void pending_remove(etcd_call *call) {
	etcd_client *c = call->client;
	etcd_call **p = &c->pending;
	etcd_call *prev = NULL;

	if (!call->pending)
		return;
	while (*p && *p != call) {
		prev = *p;
		p = &(*p)->pending_next;
	}
	if (*p) {
		*p = call->pending_next;
		if (c->pending_tail == call)
			c->pending_tail = prev;
	}
	call->pending = false;
	call->pending_next = NULL;
}

static void pending_add(etcd_call *call) {
	etcd_client *c = call->client;

	if (call->pending)
		return;
	call->pending = true;
	call->pending_next = NULL;
	if (c->pending_tail)
		c->pending_tail->pending_next = call;
	else
		c->pending = call;
	c->pending_tail = call;
}

static void attempt_reset(etcd_call *call) {
	if (call->easy) {
		curl_multi_remove_handle(call->multi, call->easy);
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
	}
	curl_slist_free_all(call->headers);
	call->headers = NULL;
	call->len = 0;
	call->overflow = false;
	call->done = false;
	call->errbuf[0] = '\0';
}

static void call_free(etcd_call *call) {
	etcd_client *c = call->client;

	pending_remove(call);
	attempt_reset(call);
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	if (call->step_free)
		call->step_free(call->step_data);
	if (call->is_auth && call->body)
		explicit_bzero(call->body, strlen(call->body));
	free(call->body);
	free(call->path);
	free(call->buf);
	free(call);
}

void etcd_call_cancel(etcd_call *call) {
	if (call)
		call_free(call);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
	etcd_call *call = userdata;
	size_t n = size * nmemb;
	size_t limit = call->stream ? MAX_LINE_BYTES : MAX_REPLY_BYTES;

	if (call->len + n > limit) {
		call->overflow = true;
		return 0; /* makes curl end the transfer with CURLE_WRITE_ERROR */
	}
	if (call->len + n + 1 > call->cap) {
		size_t cap = call->cap ? call->cap : 4096;
		while (cap < call->len + n + 1)
			cap *= 2;
		char *b = realloc(call->buf, cap);
		if (!b)
			return 0;
		call->buf = b;
		call->cap = cap;
	}
	memcpy(call->buf + call->len, data, n);
	call->len += n;
	/* Bytes from a member: it is not hung (a timestamp, nothing user-visible). */
	call->client->members.v[call->endpoint].last_heard = now_usec();
	call->buf[call->len] = '\0';
	if (call->stream && memchr(data, '\n', n))
		pending_add(call);
	return n;
}

/* Keepalives get a curl multi of their own: their own connection, never
 * one that a watch or a large range holds, and sd-event sources that run
 * ahead of everything else the loop has ready. */
static int lease_multi(etcd_client *c, CURLM **out) {
	if (!c->lease_curl) {
		_cleanup_(curlev_freep) curlev *cv = NULL;
		int r = curlev_new(&cv, c->event, "etcd-lease", on_progress, c);
		if (r < 0)
			return r;
		r = curlev_set_priority(cv, SD_EVENT_PRIORITY_IMPORTANT);
		if (r < 0)
			return r;
		c->lease_multi = curlev_multi(cv);
		c->lease_curl = TAKE_PTR(cv);
	}
	*out = c->lease_multi;
	return 0;
}

static int setopt_failed(etcd_call *call) {
	attempt_reset(call);
	return -EIO;
}

/* Sends one attempt to an endpoint the call has not tried yet. -EHOSTUNREACH
 * when it has tried them all, -ETIMEDOUT when the call's time is up. */
static int call_send(etcd_call *call) {
	etcd_client *c = call->client;
	char url[512], auth[1100];
	uint64_t now = now_usec(), timeout = 0;

	attempt_reset(call);
	if (call->pinned) {
		if (call->tried & (UINT64_C(1) << call->endpoint))
			return -EHOSTUNREACH;
	} else {
		ssize_t i = etcd_members_pick(&c->members, call->tried, now);
		if (i < 0)
			return -EHOSTUNREACH;
		call->endpoint = (size_t) i;
	}
	call->tried |= UINT64_C(1) << call->endpoint;
	call->attempt_start = now;
	if (!call->stream) {
		/* One attempt may use its own deadline, never past the call's. */
		if (call->deadline <= now + USEC_PER_MSEC)
			return -ETIMEDOUT;
		timeout = call->deadline - now;
		/* The attempt timeout is there to move on to another member. On
		 * the last one left, cutting the wait short only fails the call
		 * early and sends a busy etcd the same work again (an abandoned
		 * grant may still be applied). A pinned call is a probe: short. */
		if (call->pinned || etcd_members_untried(&c->members, call->tried) > 0)
			timeout = umin(call->attempt_usec, timeout);
	}

	if (snprintf(url, sizeof url, "%s%s", c->members.v[call->endpoint].url, call->path) >= (int) sizeof url)
		return -ENAMETOOLONG;

	call->easy = curl_easy_init();
	if (!call->easy)
		return -ENOMEM;

	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/json");
	h = h ? curl_slist_append(h, "Expect:") : NULL;
	/* Without it a member cut off from its quorum lets a watch go silent
	 * and keeps unary requests waiting for its 7 s internal timeout. */
	h = h ? curl_slist_append(h, "Grpc-Metadata-hasleader: true") : NULL;
	if (h && c->token && !call->is_auth) {
		/* The raw token, no "Bearer": etcd rejects the scheme. */
		snprintf(auth, sizeof auth, "Authorization: %s", c->token);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, sizeof auth);
	}
	if (!h)
		return -ENOMEM;
	call->headers = h;

	CURL *e = call->easy;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK || curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(call->body)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) (c->connect_timeout_usec / USEC_PER_MSEC)) !=
		    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
		return setopt_failed(call);
	/* Streams live as long as they are wanted; the hasleader header, TCP
	 * keepalive and the watch's progress deadline end the dead ones. */
	if (!call->stream && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) (timeout / USEC_PER_MSEC)) != CURLE_OK)
		return setopt_failed(call);
	if ((c->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) != CURLE_OK) ||
	    (c->cert_file && curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file) != CURLE_OK) ||
	    (c->key_file && curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file) != CURLE_OK))
		return setopt_failed(call);

	call->multi = c->multi;
	if (call->urgent) {
		int r = lease_multi(c, &call->multi);
		if (r < 0) {
			attempt_reset(call);
			return r;
		}
	}
	if (curl_multi_add_handle(call->multi, e) != CURLM_OK)
		return setopt_failed(call);
	return 0;
}

static int auth_start(etcd_client *c);

/* Sends now, or parks the call until the client holds a token. */
static int call_submit(etcd_call *call) {
	etcd_client *c = call->client;

	if (c->username && !c->token && !call->is_auth) {
		call->waiting_auth = true;
		return c->authenticating ? 0 : auth_start(c);
	}
	call->waiting_auth = false;
	return call_send(call);
}

static etcd_call *call_new(etcd_client *c, etcd_op_type type, const char *path, json_t *body) {
	_cleanup_free_ etcd_call *call = calloc(1, sizeof *call);

	if (!call || !body)
		return NULL;
	call->client = c;
	call->type = type;
	call->path = strdup(path);
	call->body = json_dumps(body, JSON_COMPACT);
	if (!call->path || !call->body) {
		free(call->path);
		free(call->body);
		return NULL;
	}
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	return TAKE_PTR(call);
}

/* The call's whole time starts now. */
static void call_start_clock(etcd_call *call) {
	call->tried = 0;
	call->trail[0] = '\0';
	call->deadline = now_usec() + call->total_usec;
}

int etcd_call_start(etcd_client *c, etcd_op_type type, const char *path, json_t *body, const etcd_call_opts *o,
		    etcd_step_fn step, void *step_data, void (*step_free)(void *), etcd_callback cb, void *userdata,
		    etcd_call **ret) {
	etcd_call *call = call_new(c, type, path, body);
	int r;

	if (!call || (o->pinned && o->endpoint >= c->members.n)) {
		if (call)
			call_free(call);
		if (step_free)
			step_free(step_data);
		return call ? -EINVAL : -ENOMEM;
	}
	call->idempotent = o->idempotent;
	call->pinned = o->pinned;
	call->urgent = o->urgent;
	call->own_lease = o->own_lease;
	call->own_ttl = o->own_ttl;
	call->endpoint = o->endpoint;
	call->total_usec = min_nonzero(o->total_usec, c->request_timeout_usec);
	call->attempt_usec = min_nonzero(o->attempt_usec, c->attempt_timeout_usec);
	call_start_clock(call);
	call->step = step;
	call->step_data = step_data;
	call->step_free = step_free;
	call->cb = cb;
	call->userdata = userdata;
	r = call_submit(call);
	if (r < 0) {
		call_free(call);
		return r;
	}
	if (ret)
		*ret = call;
	return 0;
}

int etcd_call_resend(etcd_call *call, json_t *body) {
	char *b = json_dumps(body, JSON_COMPACT);
	if (!b)
		return -ENOMEM;
	free(call->body);
	call->body = b;
	call_start_clock(call);
	return call_submit(call);
}

int etcd_stream_start(etcd_client *c, const char *path, json_t *body, etcd_line_fn on_line, etcd_end_fn on_end,
		      void *userdata, etcd_call **ret) {
	etcd_call *call = call_new(c, ETCD_OP_RANGE, path, body);
	int r;

	if (!call)
		return -ENOMEM;
	call->stream = true;
	call->on_line = on_line;
	call->on_end = on_end;
	call->userdata = userdata;
	r = call_submit(call);
	if (r < 0) {
		call_free(call);
		return r;
	}
	*ret = call;
	return 0;
}

/* ---- authentication --------------------------------------------------------- */

static void fail_call(etcd_call *call, const etcd_error *err);

static void on_auth(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *r = resp;
	int r2;

	c->authenticating = false;
	if (r->error.code == 0) {
		wipe_free(c->token);
		c->token = TAKE_PTR(r->token);
	}

	/* Release the parked calls; each one that fails to go out, or every
	 * one when authentication failed, is answered with the error. */
	for (;;) {
		etcd_call *call = c->calls;
		while (call && !call->waiting_auth)
			call = call->next;
		if (!call)
			break;
		call->waiting_auth = false;
		if (r->error.code < 0) {
			etcd_error e = r->error;
			/* Only etcd's own answer says the credentials are wrong;
			 * a member that could not be asked says nothing of them. */
			if ((e.kind == ETCD_ERROR_GATEWAY || e.kind == ETCD_ERROR_HTTP) &&
			    !etcd_error_endpoint_trouble(&e)) {
				etcd_error_prefix(&e, "authentication failed: ");
				if (e.code == -EINVAL)
					e.code = -EACCES;
			}
			fail_call(call, &e);
		} else if ((r2 = call_send(call)) < 0) {
			etcd_error e = { .grpc_code = -1 };
			etcd_error_set(&e, ETCD_ERROR_LOCAL, r2, "could not send request: %s", strerror(-r2));
			fail_call(call, &e);
		}
	}
}

static int auth_start(etcd_client *c) {
	json_auto_t *body = json_pack("{ssss}", "name", c->username, "password", c->password);
	etcd_call *call = call_new(c, ETCD_OP_AUTH, "/v3/auth/authenticate", body);

	if (body) {
		/* jansson keeps its own copy of the password; wipe it too. */
		json_t *pw = json_object_get(body, "password");
		explicit_bzero((char *) json_string_value(pw), json_string_length(pw));
	}
	if (!call)
		return -ENOMEM;
	call->is_auth = true;
	call->idempotent = true;
	call->total_usec = c->request_timeout_usec;
	call->attempt_usec = c->attempt_timeout_usec;
	call_start_clock(call);
	call->cb = on_auth;
	c->authenticating = true;
	int r = call_send(call);
	if (r < 0) {
		c->authenticating = false;
		call_free(call);
	}
	return r;
}

/* ---- completion ---------------------------------------------------------------- */

static void transport_error(etcd_call *call, etcd_error *e) {
	CURLcode rc = call->result;
	int code;

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		code = -ECONNREFUSED;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		code = -ETIMEDOUT;
		break;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		code = -ECONNRESET;
		break;
	case CURLE_WRITE_ERROR:
		code = call->overflow ? -EFBIG : -ENOMEM;
		break;
	default:
		code = -EHOSTUNREACH;
	}
	if (call->overflow)
		etcd_error_set(e, ETCD_ERROR_TRANSPORT, code, "reply larger than %u MiB",
			       (call->stream ? MAX_LINE_BYTES : MAX_REPLY_BYTES) >> 20);
	else
		etcd_error_set(e, ETCD_ERROR_TRANSPORT, code, "%s", call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
	e->curl_code = rc;
}

static void fail_call(etcd_call *call, const etcd_error *err) {
	etcd_client *c = call->client;

	if (call->stream) {
		etcd_end_fn on_end = call->on_end;
		void *ud = call->userdata;
		call_free(call);
		on_end(c, err, ud);
		return;
	}
	etcd_response *r = calloc(1, sizeof *r);
	etcd_callback cb = call->cb;
	void *ud = call->userdata;
	if (r) {
		r->type = call->type;
		r->error = *err;
	}
	call_free(call);
	if (r && cb)
		cb(c, r, ud);
	else
		etcd_response_free(r);
}

static void finish_unary(etcd_call *call) {
	etcd_client *c = call->client;
	_cleanup_(etcd_response_freep) etcd_response *r = calloc(1, sizeof *r);
	long status = 0;

	if (!r)
		return;
	r->type = call->type;
	r->error.grpc_code = -1;
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);

	if (call->result != CURLE_OK)
		transport_error(call, &r->error);
	else if (status != 200)
		etcd_codec_parse_error_reply(status, call->buf, call->len, &r->error);
	else
		(void) etcd_codec_parse_reply(call->type, call->buf ? call->buf : "", call->len, r);
	r->error.http_status = status;
	snprintf(r->error.endpoint, sizeof r->error.endpoint, "%s", c->members.v[call->endpoint].url);
	etcd_report_attempt(call->path, call->body, call->is_auth, r->error.endpoint, status, &r->error,
			    now_usec() - call->attempt_start);

	if (r->error.code == -EEXIST && call->type == ETCD_OP_LEASE_GRANT && call->own_lease != 0) {
		/* Our ID, so an earlier try (whose answer we never saw) took it. */
		r->error = (etcd_error){ .grpc_code = -1 };
		r->lease_id = call->own_lease;
		r->ttl = call->own_ttl;
	}
	if (r->error.code < 0) {
		const etcd_error *e = &r->error;

		if (e->grpc_code == ETCD_GRPC_UNAUTHENTICATED && c->username && !call->auth_retried && !call->is_auth) {
			/* Tokens expire when idle and die with a restart:
			 * log in again and resend, once. */
			call->auth_retried = true;
			call->tried &= ~(UINT64_C(1) << call->endpoint);
			etcd_client_drop_token(c);
			if (call_submit(call) >= 0)
				return;
		}
		if (etcd_error_endpoint_trouble(e)) {
			/* A member that timed out may only be hung: try the next
			 * one with the time left (call_send says when none is). */
			etcd_client_endpoint_failed(c, call->endpoint, e);
			etcd_report_trail_add(call->trail, sizeof call->trail, e->endpoint, e,
					      now_usec() - call->attempt_start);
			if ((etcd_error_never_reached(e) || call->idempotent) && call_send(call) >= 0)
				return;
			etcd_report_unreachable(&r->error, call->trail);
		}
	}

	if (call->step && r->error.code == 0) {
		int s = call->step(call, &r, call->step_data);
		if (s > 0)
			return; /* queued again for the next step */
	}

	etcd_callback cb = call->cb;
	void *ud = call->userdata;
	call_free(call);
	if (cb)
		cb(c, TAKE_PTR(r), ud);
}

/* Hands complete lines of a stream to its owner. Returns false when the
 * owner ended the stream (the call is gone). */
static bool feed_lines(etcd_call *call) {
	size_t start = 0;
	char *nl;

	while (call->buf && (nl = memchr(call->buf + start, '\n', call->len - start))) {
		size_t n = (size_t) (nl - (call->buf + start));
		if (n > 0) {
			/* on_line may free the call: keep the line alive meanwhile. */
			_cleanup_free_ char *line = strndup(call->buf + start, n);
			if (!line)
				return true;
			start += n + 1;
			memmove(call->buf, call->buf + start, call->len - start);
			call->len -= start;
			start = 0;
			if (call->on_line(call, line, n, call->userdata) < 0)
				return false;
		} else
			start++;
	}
	if (start > 0) {
		memmove(call->buf, call->buf + start, call->len - start);
		call->len -= start;
	}
	return true;
}

static void finish_stream(etcd_call *call) {
	etcd_client *c = call->client;
	etcd_error e = { .grpc_code = -1 };
	long status = 0;

	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200 || call->result != CURLE_OK) {
		if (!feed_lines(call))
			return;
		/* The last message of a stream ended by an error has no '\n'. */
		if (call->len > 0) {
			_cleanup_free_ char *line = strndup(call->buf, call->len);
			size_t n = call->len;
			call->len = 0;
			if (line && call->on_line(call, line, n, call->userdata) < 0)
				return;
		}
	}
	if (call->result != CURLE_OK)
		transport_error(call, &e);
	else if (status != 200)
		etcd_codec_parse_error_reply(status, call->buf, call->len, &e);
	e.http_status = status;
	snprintf(e.endpoint, sizeof e.endpoint, "%s", c->members.v[call->endpoint].url);
	etcd_report_attempt(call->path, call->body, false, e.endpoint, status, &e, now_usec() - call->attempt_start);
	if (etcd_error_endpoint_trouble(&e))
		etcd_client_endpoint_failed(c, call->endpoint, &e);
	if (e.grpc_code == ETCD_GRPC_UNAUTHENTICATED)
		etcd_client_drop_token(c);
	fail_call(call, &e);
}

static void mark_done(CURLM *multi) {
	CURLMsg *m;
	int left;

	while (multi && (m = curl_multi_info_read(multi, &left))) {
		etcd_call *call = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &call);
		if (!call)
			continue;
		call->done = true;
		call->result = m->data.result;
		pending_add(call);
	}
}

static void dispatch(etcd_client *c) {
	/* Mark finished transfers first, so pending work sees them;
	 * keepalives' first. */
	mark_done(c->lease_multi);
	mark_done(c->multi);
	if (c->dispatching)
		return;
	c->dispatching = true;
	while (c->pending) {
		etcd_call *call = c->pending;
		bool urgent = call->urgent;
		pending_remove(call);
		if (call->done) {
			if (call->stream)
				finish_stream(call);
			else
				finish_unary(call);
		} else if (call->stream)
			(void) feed_lines(call);
		/* One reply at a time, then back to the loop: a keepalive that
		 * arrives meanwhile (higher priority) is not kept waiting while
		 * several large replies are parsed and handed out. */
		if (!urgent && c->pending && c->more) {
			(void) sd_event_source_set_enabled(c->more, SD_EVENT_ONESHOT);
			break;
		}
	}
	c->dispatching = false;
}

static int on_more(sd_event_source *s, void *userdata) {
	dispatch(userdata);
	return 0;
}
