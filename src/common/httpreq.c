/* httpreq.c — whole HTTP exchanges on curlev (httpreq.h). A request owns
 * one curl easy handle, its header list and the reply buffer; the client
 * keeps every request it made in a list, so freeing the client cancels
 * whatever is still in flight. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curlev.h"
#include "httpreq.h"

struct http_req {
	http_client *client;
	CURL *easy;
	struct curl_slist *headers;
	char *buf;
	size_t len, cap, max;
	bool overflow, sent;
	http_done_fn done;
	void *userdata;
	http_req *prev, *next;
};

struct http_client {
	curlev *curl;
	http_req *reqs;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
	http_req *h = userdata;
	size_t n = size * nmemb;

	if (h->overflow || h->len + n + 1 > h->max) {
		h->overflow = true;
		return n;               /* dropped; the reply is reported as too big */
	}
	if (h->len + n + 1 > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		while (cap < h->len + n + 1)
			cap *= 2;
		/* Not realloc: the old buffer may hold a secret and is wiped. */
		char *b = malloc(cap);
		if (!b) {
			h->overflow = true;
			return n;
		}
		if (h->buf) {
			memcpy(b, h->buf, h->len);
			explicit_bzero(h->buf, h->len);
			free(h->buf);
		}
		h->buf = b;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, data, n);
	h->len += n;
	h->buf[h->len] = '\0';
	return n;
}

void http_req_free(http_req *h) {
	if (!h)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		h->client->reqs = h->next;
	if (h->next)
		h->next->prev = h->prev;
	if (h->easy) {
		if (h->sent)
			curl_multi_remove_handle(curlev_multi(h->client->curl), h->easy);
		curl_easy_cleanup(h->easy);
	}
	for (struct curl_slist *l = h->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(h->headers);
	if (h->buf)
		explicit_bzero(h->buf, h->len);
	free(h->buf);
	free(h);
}

http_req *http_req_new(http_client *c, const char *url, size_t max_body, http_done_fn done, void *userdata) {
	http_req *h = calloc(1, sizeof *h);

	if (!h)
		return NULL;
	*h = (http_req) { .client = c, .max = max_body, .done = done, .userdata = userdata, .next = c->reqs };
	if (c->reqs)
		c->reqs->prev = h;
	c->reqs = h;
	h->easy = curl_easy_init();
	if (!h->easy || curl_easy_setopt(h->easy, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK) {
		http_req_free(h);
		return NULL;
	}
	return h;
}

int http_req_header(http_req *h, const char *fmt, ...) {
	_cleanup_free_ char *line = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (r < 0) {
		line = NULL;
		return -ENOMEM;
	}
	struct curl_slist *l = curl_slist_append(h->headers, line);
	explicit_bzero(line, strlen(line));
	if (!l)
		return -ENOMEM;
	h->headers = l;
	return 0;
}

CURL *http_req_easy(http_req *h) {
	return h->easy;
}

int http_req_send(http_req *h) {
	if (h->headers && curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK)
		return -EIO;
	if (curl_multi_add_handle(curlev_multi(h->client->curl), h->easy) != CURLM_OK)
		return -EIO;
	h->sent = true;
	return 0;
}

const char *http_req_body(const http_req *h, size_t *len) {
	if (len)
		*len = h->len;
	return h->buf ? h->buf : "";
}

bool http_req_too_big(const http_req *h) {
	return h->overflow;
}

static void on_progress(curlev *cv, void *userdata) {
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(curlev_multi(cv), &left))) {
		http_req *h = NULL;
		long status = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &h);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (!h)
			continue;
		/* m does not survive the removal: read it first. Off the loop
		 * now, so that the callback may free h at once. */
		CURLcode result = m->data.result;
		curl_multi_remove_handle(curlev_multi(cv), h->easy);
		h->sent = false;
		h->done(h, result, status, h->userdata);
	}
}

http_client *http_client_free(http_client *c) {
	if (!c)
		return NULL;
	while (c->reqs)
		http_req_free(c->reqs);
	curlev_free(c->curl);
	free(c);
	return NULL;
}

int http_client_new(http_client **out, sd_event *event, const char *name) {
	_cleanup_(http_client_freep) http_client *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	r = curlev_new(&c->curl, event, name, on_progress, c);
	if (r < 0)
		return r;
	*out = TAKE_PTR(c);
	return 0;
}
