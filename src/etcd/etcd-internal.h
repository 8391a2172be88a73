/* etcd-internal.h — what the etcd module's files share and nobody else sees:
 * the JSON codec (pure: request structs -> JSON, JSON -> responses), and the
 * transport's hooks for streams and multi-step calls. */
#pragma once

#include <curl/curl.h>
#include <jansson.h>

#include "etcd.h"

/* ---- codec: no I/O, unit-tested against captured replies ---- */

/* Request bodies (encode.c). */
json_t *etcd_codec_range(const etcd_range_req *req);
json_t *etcd_codec_put(const etcd_put_req *req);
json_t *etcd_codec_delete(const etcd_delete_req *req);
json_t *etcd_codec_txn(const etcd_txn_req *req);
json_t *etcd_codec_watch(const etcd_watch_req *req, int64_t start_revision);

/* Replies (codec.c). Fills r from a 200 reply's body; on a malformed body
 * sets r->error (ETCD_ERROR_MALFORMED, -EBADMSG) and returns -EBADMSG. */
int etcd_codec_parse_reply(etcd_op_type type, const char *body, size_t len, etcd_response *r);
int etcd_codec_parse_reply_json(etcd_op_type type, json_t *root, etcd_response *r);

/* Fills e from a reply that is not 200: the gateway's error body when there
 * is one, else the HTTP status. */
void etcd_codec_parse_error_reply(long status, const char *body, size_t len, etcd_error *e);

/* One line of a watch stream. */
typedef struct etcd_watch_line {
	bool created, canceled;
	etcd_header header;
	int64_t watch_id;
	int64_t compact_revision;
	char *cancel_reason;
	etcd_event *events;
	size_t n_events;
	etcd_error error;               /* an in-stream {"error":{...}} */
} etcd_watch_line;

/* 0 and *out filled; -EBADMSG (err filled) when the line is not a watch
 * message. An in-stream error is a success with out->error.code < 0. */
int etcd_codec_parse_watch_line(const char *line, size_t len, etcd_watch_line *out, etcd_error *err);
void etcd_watch_line_done(etcd_watch_line *l);

void etcd_kv_done(etcd_kv *kv);
void etcd_response_done(etcd_response *r);
int etcd_error_code_from_grpc(int grpc_code);

/* Puts prefix in front of e's message (cut to fit). */
void etcd_error_prefix(etcd_error *e, const char *prefix);
_printf_(4, 5) void etcd_error_set(etcd_error *e, etcd_error_kind kind, int code, const char *fmt, ...);

/* ---- members and fail-over (members.c): pure, the caller's clock ---- */

typedef struct etcd_member {
	char *url;
	uint64_t demoted_until;  /* CLOCK_MONOTONIC; tried last before */
	uint64_t last_heard;     /* CLOCK_MONOTONIC of its last reply bytes */
} etcd_member;

typedef struct etcd_members {
	etcd_member *v;
	size_t n;
	size_t current;
} etcd_members;

/* From the endpoint URLs (http:// or https://, trailing slashes dropped).
 * -EINVAL, -E2BIG (over 64), -ENOMEM; etcd_members_done() frees either way. */
int etcd_members_init(etcd_members *m, char *const *urls);
void etcd_members_done(etcd_members *m);
/* The endpoint to send to, from the current one on: the first in good
 * standing not in `tried`; else the untried one whose demotion ends first;
 * -1 when every endpoint has been tried. */
ssize_t etcd_members_pick(const etcd_members *m, uint64_t tried, uint64_t now);
/* How many endpoints are not in `tried`. */
size_t etcd_members_untried(const etcd_members *m, uint64_t tried);
/* Demotes the member at index after e; moves on if it was the current one. */
void etcd_members_failed(etcd_members *m, size_t index, const etcd_error *e, uint64_t now);
/* Could the request have done anything on the server? */
bool etcd_error_never_reached(const etcd_error *e);
/* Is e the member's fault (try another)? */
bool etcd_error_endpoint_trouble(const etcd_error *e);

/* ---- transport (client.c) ---- */

/* A stream call hands each complete line to on_line and, once, the way it
 * ended to on_end (error code 0: the server closed it cleanly); the call is
 * gone by then. on_line may end the stream itself with etcd_call_cancel()
 * and must then return -1 (on_end does not run). */
typedef int (*etcd_line_fn)(etcd_call *call, const char *line, size_t len, void *userdata);
typedef void (*etcd_end_fn)(etcd_client *c, const etcd_error *error, void *userdata);

int etcd_stream_start(etcd_client *c, const char *path, json_t *body, etcd_line_fn on_line, etcd_end_fn on_end,
		      void *userdata, etcd_call **ret);

/* How one unary call is sent. Each attempt goes to one member and is
 * abandoned after the attempt timeout; the whole call, over every member
 * tried, ends at the request timeout. */
typedef struct etcd_call_opts {
	bool idempotent;                /* safe to apply twice: re-sent on the next
	                                   member after a timeout or a dropped reply */
	uint64_t attempt_usec;          /* caps the client's attempt timeout (0: no cap) */
	uint64_t total_usec;            /* caps the client's request timeout (0: no cap) */
	bool pinned;                    /* only this endpoint, no fail-over */
	size_t endpoint;
	bool urgent;                    /* keepalives: a connection and sd-event
	                                   priority of their own (client.c) */
	int64_t own_lease, own_ttl;     /* a grant of this ID: "already exists"
	                                   means an earlier try took it for us */
} etcd_call_opts;

/* Multi-step calls: a hook that sees each reply before the callback does.
 * Returning 1 means the hook queued the call again with a new body (the
 * callback does not run yet); 0 lets the reply through (the hook may have
 * replaced it in *r). */
typedef int (*etcd_step_fn)(etcd_call *call, etcd_response **r, void *step_data);
int etcd_call_start(etcd_client *c, etcd_op_type type, const char *path, json_t *body, const etcd_call_opts *o,
		    etcd_step_fn step, void *step_data, void (*step_free)(void *), etcd_callback cb, void *userdata,
		    etcd_call **ret);
/* The next step: a new body, and a new request timeout and set of members. */
int etcd_call_resend(etcd_call *call, json_t *body);

/* A transport or availability failure (e) at this endpoint index: it is
 * tried last for a while, and the client moves on if it was the current one. */
void etcd_client_endpoint_failed(etcd_client *c, size_t index, const etcd_error *e);
/* When the last reply byte came from this endpoint (CLOCK_MONOTONIC usec). */
uint64_t etcd_client_endpoint_last_heard(const etcd_client *c, size_t index);
uint64_t etcd_client_watch_progress(const etcd_client *c);
/* Keepers say how often they renew (the watches' deadline takes it in). */
void etcd_client_keeper_added(etcd_client *c, uint64_t interval_usec);
void etcd_client_keeper_removed(etcd_client *c);
size_t etcd_call_endpoint_index(const etcd_call *call);
/* etcd_status() to this endpoint only: is that member answering? */
int etcd_status_at(etcd_client *c, size_t endpoint, etcd_callback cb, void *userdata, etcd_call **ret);
void etcd_client_drop_token(etcd_client *c);

/* ---- what a call says (report.c) ---- */

/* One debug line per attempt (only at debug level): method, path, the
 * key decoded, endpoint, HTTP status, result, time; never a body. */
void etcd_report_attempt(const char *path, const char *body, bool is_auth, const char *endpoint, long status,
			 const etcd_error *e, uint64_t usec);
/* Appends "<endpoint> (<why>)" to trail: an endpoint that failed a call. */
void etcd_report_trail_add(char *trail, size_t size, const char *endpoint, const etcd_error *e, uint64_t usec);
/* e, the call's last endpoint failure, becomes one message naming every
 * endpoint in trail ("etcd unreachable: tried A (no reply in 2.0s), B
 * (connection refused)"); nothing when trail is empty. */
void etcd_report_unreachable(etcd_error *e, const char *trail);
