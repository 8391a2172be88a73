/* client.c — the EC2 Query API transport: credentials (with IMDSv2),
 * signing, HTTP on the event loop, retries (see ec2.h).
 *
 * Two kinds of HTTP exchange share one http_client (httpreq.h): calls to
 * EC2, and the instance metadata requests that fetch credentials.
 *
 * A call waits while credentials are being fetched, then is signed and
 * sent; every attempt is signed anew (fresh X-Amz-Date, maybe fresh
 * credentials) over the same body, so a RunInstances keeps its
 * ClientToken across retries. Nothing here logs. */
#include <curl/curl.h>
#include <stdarg.h>
#include <sys/random.h>
#include <time.h>

#include "backoff.h"
#include "httpreq.h"
#include "ec2.h"
#include "imds.h"
#include "sigv4.h"

#define BODY_MAX          ((size_t) 64 * 1024 * 1024)

typedef enum call_state { CALL_WAITING, CALL_SENDING, CALL_BACKOFF } call_state;

struct ec2_call {
	ec2_client *client;
	char *action;
	char *body;                     /* the form body, the same every attempt */
	size_t body_len;
	call_state state;
	unsigned attempts;
	bool reauthed;                  /* fresh credentials tried after AUTH */
	backoff backoff;
	http_req *http;
	sd_event_source *timer;
	ec2_reply_cb cb;
	void *userdata;
	ec2_call *prev, *next;
};

typedef enum creds_state { CREDS_NONE, CREDS_FETCHING, CREDS_READY } creds_state;

struct ec2_client {
	sd_event *event;
	http_client *http;
	char *region, *endpoint, *host, *creds_file, *profile;
	unsigned max_attempts;
	uint64_t backoff_base, backoff_cap, timeout, refresh_ahead;

	ec2_credentials creds;
	creds_state creds_state;
	char creds_error[256];
	sigv4_key_cache key_cache;

	imds *imds;                     /* NULL: IMDS off */
	char *imds_role;

	ec2_call *calls;
};

static void calls_creds_ready(ec2_client *c);

/* ---- credentials -------------------------------------------------------------- */

static uint64_t now_realtime(void) {
	return (uint64_t) time(NULL);
}

static void creds_set(ec2_client *c, ec2_credentials *fresh) {
	ec2_credentials_done(&c->creds);
	c->creds = *fresh;
	*fresh = (ec2_credentials){};
	c->creds_state = CREDS_READY;
	c->creds_error[0] = '\0';
	sigv4_key_cache_clear(&c->key_cache);
}

static void creds_fail(ec2_client *c, const char *fmt, ...) _printf_(2, 3);
static void creds_fail(ec2_client *c, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->creds_error, sizeof c->creds_error, fmt, ap);
	va_end(ap);
	ec2_credentials_done(&c->creds);
	c->creds_state = CREDS_NONE;
	calls_creds_ready(c);
	/* Calls that were waiting have failed; the next call tries again. */
	c->creds_error[0] = '\0';
}

static bool creds_fresh(const ec2_client *c) {
	if (c->creds_state != CREDS_READY)
		return false;
	if (c->creds.expiration == 0)
		return true;
	return c->creds.expiration > now_realtime() + c->refresh_ahead / USEC_PER_SEC;
}

/* No answer or IMDS off: the message says credentials were looked for
 * everywhere. */
static void imds_failed(ec2_client *c, const imds_reply *r) {
	if (r->error == -EHOSTUNREACH || r->error == -ENODEV)
		creds_fail(c, "no credentials: none in the environment or the credentials file, and the %s", r->message);
	else
		creds_fail(c, "%s", r->message);
}

static void imds_creds_done(const imds_reply *r, void *userdata) {
	ec2_client *c = userdata;
	ec2_credentials fresh = {};
	char err[256] = "";

	if (r->error < 0) {
		imds_failed(c, r);
		return;
	}
	if (r->status != 200) {
		creds_fail(c, "instance metadata: role credentials: HTTP %ld", r->status);
		return;
	}
	if (ec2_credentials_from_imds_json(r->body, r->len, &fresh, err, sizeof err) < 0) {
		creds_fail(c, "%s", err);
		return;
	}
	creds_set(c, &fresh);
	calls_creds_ready(c);
}

static void imds_role_done(const imds_reply *r, void *userdata) {
	ec2_client *c = userdata;
	_cleanup_free_ char *path = NULL;

	if (r->error < 0) {
		imds_failed(c, r);
		return;
	}
	if (r->status == 404) {
		creds_fail(c, "instance metadata: this instance has no IAM role");
		return;
	}
	if (r->status != 200 || r->len == 0) {
		creds_fail(c, "instance metadata: role name: HTTP %ld", r->status);
		return;
	}
	/* The first line names the role. */
	free(c->imds_role);
	c->imds_role = strndup(r->body, strcspn(r->body, "\r\n"));
	if (!c->imds_role || !*c->imds_role || strchr(c->imds_role, '/')) {
		creds_fail(c, "instance metadata: no usable role name");
		return;
	}
	if (asprintf(&path, "/latest/meta-data/iam/security-credentials/%s", c->imds_role) < 0 ||
	    imds_get(c->imds, path, imds_creds_done, c) < 0)
		creds_fail(c, "out of memory");
}

/* Resolves credentials: environment, credentials file, then IMDS. */
static void creds_fetch(ec2_client *c) {
	ec2_credentials fresh = {};
	char err[256] = "";
	int r;

	if (c->creds_state == CREDS_FETCHING)
		return;
	c->creds_state = CREDS_FETCHING;

	r = ec2_credentials_from_env(&fresh);
	if (r == -EINVAL) {
		creds_fail(c, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
		return;
	}
	if (r == 0) {
		creds_set(c, &fresh);
		calls_creds_ready(c);
		return;
	}
	if (c->creds_file) {
		r = ec2_credentials_from_file(c->creds_file, c->profile, &fresh, err, sizeof err);
		if (r == 0) {
			creds_set(c, &fresh);
			calls_creds_ready(c);
			return;
		}
		if (r != -ENOENT) {
			creds_fail(c, "%s", err[0] ? err : "cannot read the credentials file");
			return;
		}
	}
	if (!c->imds) {
		creds_fail(c, "no credentials: none in the environment or the credentials file (%s, profile %s), "
			      "and the instance metadata service is off",
			   c->creds_file ? c->creds_file : "none", c->profile);
		return;
	}
	if (imds_get(c->imds, "/latest/meta-data/iam/security-credentials/", imds_role_done, c) < 0)
		creds_fail(c, "out of memory");
}

/* ---- calls ------------------------------------------------------------------------ */

static void call_unlink(ec2_call *call) {
	ec2_client *c = call->client;

	if (call->prev)
		call->prev->next = call->next;
	else if (c->calls == call)
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
}

static void call_free(ec2_call *call) {
	if (!call)
		return;
	call_unlink(call);
	http_req_free(call->http);
	sd_event_source_disable_unref(call->timer);
	free(call->action);
	free(call->body);
	free(call);
}

void ec2_call_cancel(ec2_call *call) {
	call_free(call);
}

/* Reports once and frees the call. */
static void call_finish(ec2_call *call, ec2_reply *r) {
	ec2_client *c = call->client;
	ec2_reply_cb cb = call->cb;
	void *ud = call->userdata;

	r->attempts = call->attempts;
	call_free(call);
	if (cb)
		cb(c, r, ud);
}

static void call_fail(ec2_call *call, int error, ec2_error_class cls, const char *fmt, ...) _printf_(4, 5);
static void call_fail(ec2_call *call, int error, ec2_error_class cls, const char *fmt, ...) {
	ec2_reply r = { .error = error, .error_class = cls };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.message, sizeof r.message, fmt, ap);
	va_end(ap);
	call_finish(call, &r);
}

static int call_send(ec2_call *call);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	ec2_call *call = userdata;

	call->timer = sd_event_source_disable_unref(call->timer);
	call->state = CALL_WAITING;
	if (!creds_fresh(call->client)) {
		creds_fetch(call->client);
		return 0;
	}
	int r = call_send(call);
	if (r < 0)
		call_fail(call, r, EC2_ERROR_OTHER, "EC2 %s: cannot send the request: %s", call->action, strerror(-r));
	return 0;
}

static bool call_retry_later(ec2_call *call) {
	if (call->attempts >= call->client->max_attempts)
		return false;
	uint64_t delay = backoff_next(&call->backoff, backoff_random());
	if (sd_event_add_time_relative(call->client->event, &call->timer, CLOCK_MONOTONIC, delay, USEC_PER_MSEC,
				       on_retry, call) < 0)
		return false;
	call->state = CALL_BACKOFF;
	return true;
}

static int transport_errno(CURLcode cc) {
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

static void on_call_done(http_req *h, CURLcode result, long status, void *userdata) {
	ec2_call *call = userdata;
	_cleanup_(ec2_error_done) ec2_error e = {};
	ec2_reply r = { .http_status = status };

	call->http = NULL;
	if (result != CURLE_OK) {
		char what[CURL_ERROR_SIZE];
		snprintf(what, sizeof what, "%s", curl_easy_strerror(result));
		http_req_free(h);
		if (call_retry_later(call))
			return;
		call_fail(call, transport_errno(result), EC2_ERROR_RETRYABLE, "EC2 %s: no answer from %s: %s",
			  call->action, call->client->endpoint, what);
		return;
	}
	if (http_req_too_big(h)) {
		http_req_free(h);
		call_fail(call, -EFBIG, EC2_ERROR_OTHER, "EC2 %s: the reply is too large", call->action);
		return;
	}
	if (status >= 200 && status < 300) {
		/* The body lives in h: free the call, report, then free h. */
		ec2_client *c = call->client;
		ec2_reply_cb cb = call->cb;
		void *ud = call->userdata;

		r.body = http_req_body(h, &r.body_len);
		r.attempts = call->attempts;
		call_free(call);
		if (cb)
			cb(c, &r, ud);
		http_req_free(h);
		return;
	}

	/* An error: what EC2 says, and whether trying again helps. */
	size_t len;
	const char *body = http_req_body(h, &len);
	int k = ec2xml_parse_error((int) status, body, len, &e);
	if (k == -ENOMEM) {
		http_req_free(h);
		call_fail(call, -ENOMEM, EC2_ERROR_OTHER, "out of memory");
		return;
	}
	ec2_error_class cls = ec2_error_classify((int) status, e.code);
	snprintf(r.code, sizeof r.code, "%s", e.code ? e.code : "");
	snprintf(r.request_id, sizeof r.request_id, "%s", e.request_id ? e.request_id : "");
	if (e.code)
		snprintf(r.message, sizeof r.message, "EC2 %s: %s: %s (HTTP %ld%s%s)", call->action, e.code,
			 e.message ? e.message : "", status, e.request_id ? ", request " : "",
			 e.request_id ? e.request_id : "");
	else
		snprintf(r.message, sizeof r.message, "EC2 %s: HTTP %ld with no EC2 error in the body", call->action,
			 status);
	http_req_free(h);

	if (cls == EC2_ERROR_RETRYABLE && call_retry_later(call))
		return;
	if (cls == EC2_ERROR_AUTH && !call->reauthed && streq(call->client->creds.source, "imds")) {
		/* Rotated or expired role credentials: fetch them again once. */
		call->reauthed = true;
		call->client->creds_state = CREDS_NONE;
		call->state = CALL_WAITING;
		creds_fetch(call->client);
		return;
	}
	r.error = -EREMOTEIO;
	r.error_class = cls;
	call_finish(call, &r);
}

static int call_send(ec2_call *call) {
	ec2_client *c = call->client;
	char date[SIGV4_AMZ_DATE_MAX];
	sigv4_header hd[SIGV4_EC2_HEADERS_MAX];
	_cleanup_(sigv4_result_done) sigv4_result sig = {};
	http_req *h;
	size_t n;
	int r;

	r = sigv4_amz_date(time(NULL), date);
	if (r < 0)
		return r;
	n = sigv4_ec2_headers(hd, "POST", c->host, date, c->creds.session_token);
	sigv4_request rq = {
		.method = "POST",
		.path = "/",
		.headers = hd,
		.n_headers = n,
		.body = call->body,
		.body_len = call->body_len,
	};
	sigv4_credentials sc = {
		.access_key_id = c->creds.access_key_id,
		.secret_access_key = c->creds.secret_access_key,
		.session_token = c->creds.session_token,
	};
	r = sigv4_sign(&rq, &sc, c->region, "ec2", date, &c->key_cache, &sig);
	if (r < 0)
		return r;

	h = http_req_new(c->http, c->endpoint, BODY_MAX, on_call_done, call);
	if (!h)
		return -ENOMEM;
	/* Exactly the headers signed, plus Authorization; no Expect. */
	for (size_t i = 0; i < n; i++)
		if (http_req_header(h, "%s: %s", hd[i].name, hd[i].value) < 0) {
			http_req_free(h);
			return -ENOMEM;
		}
	if (http_req_header(h, "Authorization: %s", sig.authorization) < 0 || http_req_header(h, "Expect:") < 0 ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_POSTFIELDS, call->body) != CURLE_OK ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) call->body_len) != CURLE_OK ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_TIMEOUT_MS, (long) (c->timeout / USEC_PER_MSEC)) != CURLE_OK ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_CONNECTTIMEOUT_MS, 5000L) != CURLE_OK) {
		http_req_free(h);
		return -EIO;
	}
	r = http_req_send(h);
	if (r < 0) {
		http_req_free(h);
		return r;
	}
	call->http = h;
	call->state = CALL_SENDING;
	call->attempts++;
	return 0;
}

/* Credentials arrived (or failed): start or fail every waiting call. */
static void calls_creds_ready(ec2_client *c) {
	ec2_call *next;

	for (ec2_call *call = c->calls; call; call = next) {
		next = call->next;
		if (call->state != CALL_WAITING)
			continue;
		if (c->creds_state != CREDS_READY) {
			call_fail(call, -EACCES, EC2_ERROR_AUTH, "EC2 %s: %s", call->action,
				  c->creds_error[0] ? c->creds_error : "no credentials");
			continue;
		}
		int r = call_send(call);
		if (r < 0)
			call_fail(call, r, EC2_ERROR_OTHER, "EC2 %s: cannot send the request: %s", call->action,
				  strerror(-r));
	}
}

static int body_append(char **body, size_t *len, const char *name, const char *value) {
	_cleanup_free_ char *n = sigv4_form_encode(name), *v = sigv4_form_encode(value);
	char *b;

	if (!n || !v)
		return -ENOMEM;
	size_t add = strlen(n) + strlen(v) + 2;
	b = realloc(*body, *len + add + 1);
	if (!b)
		return -ENOMEM;
	*body = b;
	*len += (size_t) sprintf(b + *len, "%s%s=%s", *len ? "&" : "", n, v);
	return 0;
}

int ec2_form_body(const char *action, const ec2_param *params, size_t n_params, char **out, size_t *len) {
	_cleanup_free_ char *body = NULL;
	size_t n = 0;
	int r;

	if (!action || !*action || (n_params && !params))
		return -EINVAL;
	if (body_append(&body, &n, "Action", action) < 0 ||
	    body_append(&body, &n, "Version", SIGV4_EC2_API_VERSION) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n_params; i++) {
		if (!params[i].name || !params[i].value)
			return -EINVAL;
		r = body_append(&body, &n, params[i].name, params[i].value);
		if (r < 0)
			return r;
	}
	*out = TAKE_PTR(body);
	*len = n;
	return 0;
}

int ec2_call_start(ec2_client *c, const char *action, const ec2_param *params, size_t n_params, ec2_reply_cb cb,
		   void *userdata, ec2_call **out) {
	ec2_call *call;
	int r;

	if (!action || !*action)
		return -EINVAL;
	call = calloc(1, sizeof *call);
	if (!call)
		return -ENOMEM;
	call->client = c;
	call->cb = cb;
	call->userdata = userdata;
	call->backoff = BACKOFF_INIT(c->backoff_base, c->backoff_cap);
	call->action = strdup(action);
	if (!call->action) {
		call_free(call);
		return -ENOMEM;
	}
	r = ec2_form_body(action, params, n_params, &call->body, &call->body_len);
	if (r < 0) {
		call_free(call);
		return r;
	}
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	call->state = CALL_WAITING;
	if (out)
		*out = call;

	if (creds_fresh(c)) {
		r = call_send(call);
		if (r < 0) {
			if (out)
				*out = NULL;
			call_free(call);
			return r;
		}
	} else
		creds_fetch(c);         /* may finish (and report) at once */
	return 0;
}

int ec2_client_token(char out[33]) {
	uint8_t raw[16];

	if (getrandom(raw, sizeof raw, 0) != (ssize_t) sizeof raw)
		return -EIO;
	for (size_t i = 0; i < sizeof raw; i++)
		sprintf(out + 2 * i, "%02x", raw[i]);
	return 0;
}

/* ---- the client ---------------------------------------------------------------- */

ec2_client *ec2_client_free(ec2_client *c) {
	if (!c)
		return NULL;
	while (c->calls)
		call_free(c->calls);
	c->http = http_client_free(c->http);
	ec2_credentials_done(&c->creds);
	sigv4_key_cache_clear(&c->key_cache);
	c->imds = imds_free(c->imds);
	free(c->imds_role);
	free(c->region);
	free(c->endpoint);
	free(c->host);
	free(c->creds_file);
	free(c->profile);
	sd_event_unref(c->event);
	free(c);
	return NULL;
}

/* "https://host[:port]/..." -> "host[:port]", as curl sends it in Host:
 * the default port is left out. */
static void curl_urlp(CURLU **u) {
	curl_url_cleanup(*u);
}

static void curl_freep(char **s) {
	curl_free(*s);
}

static char *host_of(const char *url) {
	_cleanup_(curl_urlp) CURLU *u = curl_url();
	_cleanup_(curl_freep) char *host = NULL, *port = NULL, *scheme = NULL;
	char *out = NULL;

	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		return NULL;
	(void) curl_url_get(u, CURLUPART_PORT, &port, 0);
	if (port && !(streq(scheme, "https") && streq(port, "443")) && !(streq(scheme, "http") && streq(port, "80")))
		return asprintf(&out, "%s:%s", host, port) < 0 ? NULL : out;
	return strdup(host);
}

int ec2_client_new(ec2_client **out, sd_event *event, const ec2_options *o) {
	_cleanup_(ec2_client_freep) ec2_client *c = NULL;
	const char *home = getenv("HOME"), *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *profile = getenv("AWS_PROFILE");
	int r;

	if (!o || !o->region || !*o->region || strpbrk(o->region, "/ \t"))
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(event);
	c->max_attempts = o->max_attempts ? o->max_attempts : 5;
	c->backoff_base = o->backoff_base_usec ? o->backoff_base_usec : USEC_PER_SEC;
	c->backoff_cap = o->backoff_cap_usec ? o->backoff_cap_usec : 20 * USEC_PER_SEC;
	c->timeout = o->request_timeout_usec ? o->request_timeout_usec : 30 * USEC_PER_SEC;
	c->refresh_ahead = o->refresh_ahead_usec ? o->refresh_ahead_usec : 15 * 60 * USEC_PER_SEC;

	c->region = strdup(o->region);
	if (o->endpoint && *o->endpoint)
		c->endpoint = strdup(o->endpoint);
	else if (asprintf(&c->endpoint, "https://ec2.%s.amazonaws.com/", o->region) < 0)
		c->endpoint = NULL;
	if (o->credentials_file)
		c->creds_file = strdup(o->credentials_file);
	else if (file && *file)
		c->creds_file = strdup(file);
	else if (home && *home && asprintf(&c->creds_file, "%s/.aws/credentials", home) < 0)
		c->creds_file = NULL;
	c->profile = strdup(o->profile ? o->profile : profile && *profile ? profile : "default");
	if (!c->region || !c->endpoint || !c->profile)
		return -ENOMEM;
	if (!o->imds_endpoint || *o->imds_endpoint) {
		r = imds_new(&c->imds, event, o->imds_endpoint);
		if (r < 0)
			return r;
	}
	c->host = host_of(c->endpoint);
	if (!c->host)
		return -EINVAL;

	r = http_client_new(&c->http, event, "ec2");
	if (r < 0)
		return r;
	*out = TAKE_PTR(c);
	return 0;
}

sd_event *ec2_client_event(ec2_client *c) {
	return c ? c->event : NULL;
}

/* ---- blocking use ------------------------------------------------------------------ */

typedef struct sync_state {
	bool done;
	ec2_owned_reply *out;
} sync_state;

static void on_sync(ec2_client *c, const ec2_reply *r, void *userdata) {
	sync_state *s = userdata;

	s->out->r = *r;
	s->out->body = r->body ? strndup(r->body, r->body_len) : NULL;
	s->out->r.body = s->out->body;
	s->done = true;
}

void ec2_owned_reply_done(ec2_owned_reply *r) {
	if (!r)
		return;
	free(r->body);
	*r = (ec2_owned_reply){};
}

int ec2_call_sync(ec2_client *c, const char *action, const ec2_param *params, size_t n_params,
		  ec2_owned_reply *out) {
	sync_state s = { .out = out };
	int r;

	*out = (ec2_owned_reply){};
	r = ec2_call_start(c, action, params, n_params, on_sync, &s, NULL);
	if (r < 0)
		return r;
	while (!s.done) {
		r = sd_event_run(c->event, UINT64_MAX);
		if (r < 0)
			return r;
	}
	return out->r.error;
}
