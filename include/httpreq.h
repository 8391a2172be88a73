/* httpreq.h — whole HTTP exchanges on the shared sd-event loop: a request
 * goes out, the whole reply comes back to a callback. For the clients that
 * need no more than that: EC2 calls, and the instance metadata service (the
 * EC2 client's role credentials, the node agent's spot notices). The etcd
 * client, which streams watches, drives curlev itself.
 *
 * Everything a request carries is treated as secret: its header lines
 * (session tokens, IMDS tokens) and its reply (role credentials) are wiped
 * when it is freed. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct http_client http_client;
typedef struct http_req http_req;

/* The transfer ended: result is curl's (CURLE_OK when a reply arrived),
 * status the HTTP status (0 without one). The callback owns h from here
 * and frees it with http_req_free() when done with the body. */
typedef void (*http_done_fn)(http_req *h, CURLcode result, long status, void *userdata);

/* name labels the event sources ("ec2", "imds"). */
int http_client_new(http_client **out, sd_event *event, const char *name);
/* Frees every request still in flight (no callbacks). NULL-safe. Not from
 * inside a done callback. */
http_client *http_client_free(http_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(http_client *, http_client_free);

/* A GET of url, not sent yet; no redirects followed. A reply longer than
 * max_body is dropped and the request flagged too big. NULL: no memory. */
http_req *http_req_new(http_client *c, const char *url, size_t max_body, http_done_fn done, void *userdata);
/* One "Name: value" header line. 0 or -ENOMEM. */
int http_req_header(http_req *h, const char *fmt, ...) _printf_(2, 3);
/* For further options (method, body, time-outs, proxy). */
CURL *http_req_easy(http_req *h);
/* Onto the loop. 0 or -EIO; on error h is still the caller's to free. */
int http_req_send(http_req *h);
/* The reply as received, NUL-terminated ("" when none); *len may be NULL. */
const char *http_req_body(const http_req *h, size_t *len);
bool http_req_too_big(const http_req *h);
/* Off the loop if in flight; header lines and reply wiped. NULL-safe. */
void http_req_free(http_req *h);
