/* imds.c — IMDSv2 requests sharing one session token (imds.h).
 *
 * A GET waits in `waiting` while there is no fresh token, and one PUT
 * fetches it for all of them; then each is sent and sits in `sent` until
 * its reply comes. */
#include <curl/curl.h>
#include <stdarg.h>
#include <time.h>

#include "httpreq.h"
#include "imds.h"

#define IMDS_TOKEN_TTL  21600
#define IMDS_TIMEOUT_MS 2000L
#define IMDS_BODY_MAX   ((size_t) 64 * 1024)

typedef struct imds_req imds_req;
struct imds_req {
	imds *m;
	char *path;
	imds_done_fn done;
	void *userdata;
	http_req *h;            /* NULL while waiting for the token */
	bool retried;           /* sent again after a 401 */
	imds_req *next;
};

struct imds {
	http_client *http;
	char *base;
	char *token;
	uint64_t token_expiry;  /* CLOCK_MONOTONIC usec */
	http_req *token_req;    /* the PUT in flight */
	imds_req *waiting, *sent;
};

static uint64_t now_usec(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void drop_token(imds *m) {
	if (m->token)
		explicit_bzero(m->token, strlen(m->token));
	free(m->token);
	m->token = NULL;
}

static void req_free(imds_req *q) {
	http_req_free(q->h);    /* wipes the token header and the reply */
	free(q->path);
	free(q);
}

static void unlink_req(imds_req **list, imds_req *q) {
	for (imds_req **p = list; *p; p = &(*p)->next)
		if (*p == q) {
			*p = q->next;
			q->next = NULL;
			return;
		}
}

static void finish(imds_req *q, int error, long status, const char *fmt, ...) _printf_(4, 5);
static void finish(imds_req *q, int error, long status, const char *fmt, ...) {
	imds_reply r = { .error = error, .status = status, .body = "" };
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(r.message, sizeof r.message, fmt, ap);
		va_end(ap);
	}
	if (error == 0 && q->h)
		r.body = http_req_body(q->h, &r.len);
	q->done(&r, q->userdata);
	req_free(q);
}

static int token_start(imds *m);
static void fail_waiting(imds *m, int error, long status, const char *message);
static void on_get_done(http_req *h, CURLcode result, long status, void *userdata);

static int prepare(http_req *h) {
	CURL *e = http_req_easy(h);
	return curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
			       curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, IMDS_TIMEOUT_MS) != CURLE_OK
		       ? -EIO
		       : 0;
}

/* Sends q and puts it on the sent list; on failure q is the caller's. */
static int send_get(imds *m, imds_req *q) {
	_cleanup_free_ char *url = NULL;

	if (asprintf(&url, "%s%s", m->base, q->path) < 0 ||
	    !(q->h = http_req_new(m->http, url, IMDS_BODY_MAX, on_get_done, q)) || prepare(q->h) < 0 ||
	    http_req_header(q->h, "X-aws-ec2-metadata-token: %s", m->token) < 0 || http_req_send(q->h) < 0) {
		http_req_free(q->h);
		q->h = NULL;
		return -ENOMEM;
	}
	q->next = m->sent;
	m->sent = q;
	return 0;
}

static void on_get_done(http_req *h, CURLcode result, long status, void *userdata) {
	imds_req *q = userdata;
	imds *m = q->m;

	unlink_req(&m->sent, q);
	if (result != CURLE_OK)
		finish(q, -EHOSTUNREACH, 0, "instance metadata service did not answer (%s)", curl_easy_strerror(result));
	else if (http_req_too_big(h))
		finish(q, -EFBIG, status, "instance metadata: %s: reply too big", q->path);
	else if (status == 401 && !q->retried) {
		q->retried = true;
		http_req_free(q->h);
		q->h = NULL;
		drop_token(m);
		q->next = m->waiting;
		m->waiting = q;
		if (token_start(m) < 0)
			fail_waiting(m, -ENOMEM, 0, "instance metadata: cannot send a request");
	} else
		finish(q, 0, status, NULL);
}

/* Every waiting request gets the same end; ones added meanwhile (by a
 * callback) wait for the next token. */
static void fail_waiting(imds *m, int error, long status, const char *message) {
	imds_req *list = TAKE_PTR(m->waiting);

	while (list) {
		imds_req *q = list;
		list = q->next;
		q->next = NULL;
		finish(q, error, status, "%s", message);
	}
}

static void on_token_done(http_req *h, CURLcode result, long status, void *userdata) {
	imds *m = userdata;
	char msg[200];
	size_t len;
	const char *body = http_req_body(h, &len);
	int error = 0;

	m->token_req = NULL;
	if (result != CURLE_OK) {
		error = -EHOSTUNREACH;
		snprintf(msg, sizeof msg, "instance metadata service did not answer (%s)", curl_easy_strerror(result));
	} else if (status == 403 || status == 404 || status == 405) {
		error = -ENODEV;
		snprintf(msg, sizeof msg, "instance metadata service is off (HTTP %ld)", status);
	} else if (status != 200 || len == 0 || http_req_too_big(h)) {
		error = -EPROTO;
		snprintf(msg, sizeof msg, "instance metadata: token: HTTP %ld", status);
	} else {
		drop_token(m);
		m->token = strndup(body, strcspn(body, "\r\n"));
		if (!m->token) {
			error = -ENOMEM;
			snprintf(msg, sizeof msg, "out of memory");
		}
	}
	http_req_free(h);       /* wipes the reply */
	if (error < 0) {
		fail_waiting(m, error, result == CURLE_OK ? status : 0, msg);
		return;
	}
	/* Renew a minute early. */
	m->token_expiry = now_usec() + (IMDS_TOKEN_TTL - 60) * USEC_PER_SEC;
	imds_req *list = TAKE_PTR(m->waiting);
	while (list) {
		imds_req *q = list;
		list = q->next;
		q->next = NULL;
		if (send_get(m, q) < 0)
			finish(q, -ENOMEM, 0, "instance metadata: cannot send a request");
	}
}

/* 0, or -ENOMEM with the waiting requests still waiting. */
static int token_start(imds *m) {
	_cleanup_free_ char *url = NULL;
	http_req *h = NULL;

	if (m->token_req)
		return 0;
	if (asprintf(&url, "%s/latest/api/token", m->base) < 0 ||
	    !(h = http_req_new(m->http, url, IMDS_BODY_MAX, on_token_done, m)) || prepare(h) < 0 ||
	    curl_easy_setopt(http_req_easy(h), CURLOPT_CUSTOMREQUEST, "PUT") != CURLE_OK ||
	    http_req_header(h, "X-aws-ec2-metadata-token-ttl-seconds: %d", IMDS_TOKEN_TTL) < 0 ||
	    http_req_send(h) < 0) {
		http_req_free(h);
		return -ENOMEM;
	}
	m->token_req = h;
	return 0;
}

/* With a fresh token the GET goes out at once, which still answers from
 * the loop: curl calls back only from there. */
int imds_get(imds *m, const char *path, imds_done_fn done, void *userdata) {
	imds_req *q = calloc(1, sizeof *q);

	if (!q)
		return -ENOMEM;
	*q = (imds_req) { .m = m, .path = strdup(path), .done = done, .userdata = userdata };
	if (!q->path) {
		free(q);
		return -ENOMEM;
	}
	if (m->token && now_usec() < m->token_expiry) {
		if (send_get(m, q) < 0) {
			req_free(q);
			return -ENOMEM;
		}
		return 0;
	}
	drop_token(m);
	if (token_start(m) < 0) {
		req_free(q);
		return -ENOMEM;
	}
	q->next = m->waiting;
	m->waiting = q;
	return 0;
}

imds *imds_free(imds *m) {
	if (!m)
		return NULL;
	for (imds_req **list = &m->waiting; list; list = list == &m->waiting ? &m->sent : NULL)
		while (*list) {
			imds_req *q = *list;
			*list = q->next;
			req_free(q);
		}
	http_req_free(m->token_req);
	drop_token(m);
	http_client_free(m->http);
	free(m->base);
	free(m);
	return NULL;
}

int imds_new(imds **out, sd_event *event, const char *endpoint) {
	_cleanup_(imds_freep) imds *m = calloc(1, sizeof *m);
	const char *base = endpoint ? endpoint : IMDS_DEFAULT_ENDPOINT;
	size_t n = strlen(base);
	int r;

	if (!m)
		return -ENOMEM;
	while (n > 0 && base[n - 1] == '/')
		n--;
	m->base = strndup(base, n);
	if (!m->base)
		return -ENOMEM;
	r = http_client_new(&m->http, event, "imds");
	if (r < 0)
		return r;
	*out = TAKE_PTR(m);
	return 0;
}
