/* etcd.h — a client for etcd's v3 JSON gateway (etcd 3.4 and later).
 *
 * Every RPC is non-blocking: it becomes an HTTP/1.1 POST on the client's curl
 * multi handle, which the sd-event loop given at creation drives, and its
 * outcome reaches the caller once, through a callback. etcd_wait() runs the
 * loop until one call is done, for the CLI and for tests.
 *
 * Ownership: request structs and the strings they point to are borrowed
 * for the duration of the call that takes them (they are encoded at once).
 * An etcd_response handed to a callback belongs to the callback, which frees
 * it with etcd_response_free(). Keys and values are byte strings with a
 * length; the client NUL-terminates its copies so text can be used as is.
 *
 * Errors are values: a response whose error.code is negative says what went
 * wrong (transport, HTTP status, gateway error body, malformed reply), and
 * the client never aborts on what a server sends.
 *
 * Endpoints: requests go to the current endpoint; when it cannot be reached,
 * does not answer within the attempt timeout or reports no leader, it is
 * tried last for a while (demoted) and the client moves to the next one.
 * A request that never reached a server (connect failure) or that etcd
 * refused before doing anything (no leader) is re-sent on the next endpoint;
 * a read, a keepalive and a plain put (applying it twice changes nothing)
 * are also re-sent after a timeout or a dropped connection, within the
 * request timeout. A txn, delete or lease grant whose fate is unknown is
 * not: the caller gets the error and decides (CAS makes that safe).
 * Streams (watch) carry "Grpc-Metadata-hasleader: true" so a member cut off
 * from its quorum ends them instead of going silent, and a watch stream
 * silent past the progress deadline checks its member and leaves a hung
 * one. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

typedef struct etcd_client etcd_client;
typedef struct etcd_call etcd_call;
typedef struct etcd_watch etcd_watch;
typedef struct etcd_keeper etcd_keeper;

/* ---- errors ---------------------------------------------------------------- */

typedef enum etcd_error_kind {
	ETCD_ERROR_NONE = 0,
	ETCD_ERROR_TRANSPORT,   /* curl: connect, TLS, timeout, dropped stream */
	ETCD_ERROR_HTTP,        /* a status other than 200 with no gateway body */
	ETCD_ERROR_GATEWAY,     /* the gateway's {"error","code"} body */
	ETCD_ERROR_MALFORMED,   /* 200, but the body is not what etcd sends */
	ETCD_ERROR_LOCAL,       /* refused before sending: bad request, no memory */
} etcd_error_kind;

/* gRPC status codes the gateway reports in "code". */
enum {
	ETCD_GRPC_UNKNOWN = 2,
	ETCD_GRPC_INVALID_ARGUMENT = 3,
	ETCD_GRPC_NOT_FOUND = 5,
	ETCD_GRPC_PERMISSION_DENIED = 7,
	ETCD_GRPC_FAILED_PRECONDITION = 9,
	ETCD_GRPC_OUT_OF_RANGE = 11,
	ETCD_GRPC_UNAVAILABLE = 14,
	ETCD_GRPC_UNAUTHENTICATED = 16,
};

typedef struct etcd_error {
	/* 0, or -errno summing up the failure, for callers that branch:
	 *   -ECONNREFUSED, -EHOSTUNREACH  no endpoint could be reached
	 *   -ETIMEDOUT                    the request timed out
	 *   -ECONNRESET                   the connection dropped mid-reply
	 *   -EAGAIN                       etcd unavailable (no leader, timeout)
	 *   -ENOENT                       not found (e.g. lease)
	 *   -EACCES                       permission denied / auth failed
	 *   -EEXIST                       failed precondition (lease exists)
	 *   -ERANGE                       revision compacted or in the future
	 *   -EINVAL                       etcd rejected the request as invalid
	 *   -EBADMSG                      malformed reply
	 *   -EPROTO                       unexpected HTTP status
	 *   -ECANCELED                    the client was freed first
	 *   -EIO                          anything else */
	int code;
	etcd_error_kind kind;
	int curl_code;          /* CURLcode, for TRANSPORT */
	long http_status;       /* 0 when no reply */
	int grpc_code;          /* gateway code, -1 when none */
	char endpoint[128];     /* where it happened */
	char message[256];      /* for humans: what happened */
} etcd_error;

/* "<endpoint>: <message>" into buf; just the message when it names the
 * endpoint already (a call that failed on each endpoint it tried). */
const char *etcd_error_format(const etcd_error *e, char *buf, size_t size);
bool etcd_error_is_compacted(const etcd_error *e);

/* ---- data ---------------------------------------------------------------- */

typedef struct etcd_header {
	uint64_t cluster_id, member_id;
	int64_t revision, raft_term;
} etcd_header;

typedef struct etcd_kv {
	char *key;
	size_t key_len;
	char *value;            /* NULL in keys-only replies and delete events */
	size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
} etcd_kv;

typedef enum etcd_op_type {
	ETCD_OP_RANGE,
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
	ETCD_OP_TXN,
	ETCD_OP_LEASE_GRANT,
	ETCD_OP_LEASE_REVOKE,
	ETCD_OP_LEASE_KEEPALIVE,
	ETCD_OP_LEASE_TTL,
	ETCD_OP_AUTH,
	ETCD_OP_STATUS,
} etcd_op_type;

/* One struct for every RPC's reply; fields an RPC does not use stay zero. */
typedef struct etcd_response etcd_response;
struct etcd_response {
	etcd_op_type type;
	etcd_error error;               /* error.code < 0: nothing else is set */
	etcd_header header;

	/* range: kvs; put with prev_kv: the previous kv (0 or 1);
	 * delete with prev_kv: the deleted kvs; lease ttl with keys: keys only */
	etcd_kv *kvs;
	size_t n_kvs;
	int64_t count;                  /* range */
	bool more;                      /* range: limit cut the reply short */
	int64_t deleted;                /* delete */

	bool succeeded;                 /* txn: compares held */
	etcd_response *responses;       /* txn: one per op of the branch taken */
	size_t n_responses;

	int64_t lease_id;               /* lease grant/keepalive/ttl */
	int64_t ttl;                    /* remaining; keepalive: 0 = lease lost;
	                                   ttl: -1 = no such lease */
	int64_t granted_ttl;

	char *token;                    /* auth */
	char *version;                  /* status: server version */
	uint64_t leader;                /* status: leader member id (0: none) */
};

etcd_response *etcd_response_free(etcd_response *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(etcd_response *, etcd_response_free);

/* ---- requests ------------------------------------------------------------- */

/* Key ranges: key alone is one key; with range_end, [key, range_end); with
 * prefix, every key starting with key. A key_len of 0 means strlen(key). */
typedef enum etcd_sort_order { ETCD_SORT_NONE, ETCD_SORT_ASCEND, ETCD_SORT_DESCEND } etcd_sort_order;
typedef enum etcd_sort_target {
	ETCD_SORT_KEY, ETCD_SORT_VERSION, ETCD_SORT_CREATE, ETCD_SORT_MOD, ETCD_SORT_VALUE,
} etcd_sort_target;

typedef struct etcd_range_req {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	bool prefix;
	int64_t revision;               /* 0: latest */
	int64_t limit;                  /* 0: no limit */
	bool keys_only, count_only, serializable;
	etcd_sort_order sort_order;
	etcd_sort_target sort_target;
} etcd_range_req;

typedef struct etcd_put_req {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;               /* 0: strlen(value); NULL value: empty */
	int64_t lease;
	bool prev_kv, ignore_value, ignore_lease;
} etcd_put_req;

typedef struct etcd_delete_req {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	bool prefix;
	bool prev_kv;
} etcd_delete_req;

typedef struct etcd_op {
	etcd_op_type type;              /* RANGE, PUT or DELETE */
	union {
		etcd_range_req range;
		etcd_put_req put;
		etcd_delete_req del;
	};
} etcd_op;

typedef enum etcd_compare_result {
	ETCD_CMP_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS, ETCD_CMP_NOT_EQUAL,
} etcd_compare_result;
typedef enum etcd_compare_target {
	ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE, ETCD_CMP_LEASE,
} etcd_compare_target;

/* Beware: etcd holds a VALUE compare on a missing key false, even NOT_EQUAL;
 * compare CREATE == 0 for "absent". */
typedef struct etcd_compare {
	const char *key;
	size_t key_len;
	etcd_compare_result result;
	etcd_compare_target target;
	int64_t number;                 /* VERSION, CREATE, MOD, LEASE */
	const char *value;              /* VALUE */
	size_t value_len;
} etcd_compare;

typedef struct etcd_txn_req {
	const etcd_compare *compare;
	size_t n_compare;
	const etcd_op *success;
	size_t n_success;
	const etcd_op *failure;
	size_t n_failure;
} etcd_txn_req;

/* ---- the client --------------------------------------------------------------- */

typedef struct etcd_options {
	char *const *endpoints;         /* NULL-terminated; "http(s)://host:port";
	                                   at most 64 (-E2BIG) */
	const char *ca_file, *cert_file, *key_file;
	const char *username, *password;
	uint64_t request_timeout_usec;  /* one unary request, over every member
	                                   tried; default 10 s */
	uint64_t attempt_timeout_usec;  /* one try on one member, then the next;
	                                   default 2 s, at most request_timeout */
	uint64_t connect_timeout_usec;  /* default 2 s */
	uint64_t watch_progress_usec;   /* a watch stream silent this long checks
	                                   its member (a status request within the
	                                   attempt timeout) and moves on when it
	                                   does not answer; default 3 s */
} etcd_options;

/* Called once per call with the reply, which it owns. */
typedef void (*etcd_callback)(etcd_client *c, etcd_response *r, void *userdata);

int etcd_client_new(etcd_client **out, sd_event *event, const etcd_options *opts);
/* Pending calls are dropped without their callbacks; watches and keepers
 * must be freed first. Not from inside one of this client's callbacks
 * (defer it to the event loop). NULL-safe. */
etcd_client *etcd_client_free(etcd_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(etcd_client *, etcd_client_free);

sd_event *etcd_client_event(etcd_client *c);
const char *etcd_client_endpoint(etcd_client *c);   /* the current one */

/* Each queues one RPC. On success returns 0 and, when ret is not NULL, a
 * handle that stays valid until the callback runs (for etcd_call_cancel).
 * A negative return means nothing was queued and cb will not run. */
int etcd_range(etcd_client *c, const etcd_range_req *req, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_put(etcd_client *c, const etcd_put_req *req, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_delete(etcd_client *c, const etcd_delete_req *req, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_txn(etcd_client *c, const etcd_txn_req *req, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_lease_grant(etcd_client *c, int64_t ttl_sec, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret);
/* A random lease ID (positive, never 0). A grant with one's own ID (id != 0
 * above) is idempotent: re-sent on another member after a timeout, and
 * "already exists" (an earlier try, or an earlier call with the same ID
 * that was cancelled, took it) is answered as granted with ttl_sec. Keep the
 * ID until a grant succeeds: every retry then lands on one lease. */
int64_t etcd_lease_new_id(void);
int etcd_lease_revoke(etcd_client *c, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_lease_keepalive(etcd_client *c, int64_t id, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_lease_ttl(etcd_client *c, int64_t id, bool keys, etcd_callback cb, void *userdata, etcd_call **ret);
int etcd_status(etcd_client *c, etcd_callback cb, void *userdata, etcd_call **ret);

/* Reads a whole range in pages of page_size keys, every page at the
 * revision of the first, and answers with one range response holding all
 * kvs (count and header from the first page). */
int etcd_range_all(etcd_client *c, const etcd_range_req *req, int64_t page_size,
		   etcd_callback cb, void *userdata, etcd_call **ret);

/* Drops a queued or running call; its callback will not run. */
void etcd_call_cancel(etcd_call *call);

/* ---- blocking use ------------------------------------------------------- */

/* For the CLI and tests: runs the event loop until the call is done.
 *   etcd_sync s = {};
 *   r = etcd_range(c, &req, etcd_sync_cb, &s, NULL);
 *   if (r >= 0) r = etcd_wait(c, &s, &resp);
 * etcd_wait returns resp->error.code (0 or -errno) and hands the response
 * to the caller in *out either way. */
typedef struct etcd_sync {
	bool done;
	etcd_response *response;
} etcd_sync;
void etcd_sync_cb(etcd_client *c, etcd_response *r, void *userdata);
int etcd_wait(etcd_client *c, etcd_sync *s, etcd_response **out);
/* One txn, waited for: 0 and the response in *out (the caller's), or
 * -errno with *out NULL and err saying why (etcd's message or errno's). */
int etcd_txn_wait(etcd_client *c, const etcd_txn_req *req, etcd_response **out, char *err, size_t err_size);

/* ---- leases kept alive ---------------------------------------------------- */

/* Keeps one lease alive with a keepalive every ttl/3; a failed one is
 * retried after a jittered back-off (100 ms doubling, at most ttl/6), on
 * the next endpoint. Keepalives have a connection and sd-event priority of
 * their own (never behind a watch, a large range or a render). Each tries
 * a member for at most min(attempt timeout, ttl/4) while another member is
 * left to try, so a hung member costs one such wait; the last member left
 * gets what remains of the lease, since a slow answer is still a renewal.
 * The callback runs:
 *  - with -ENOENT, once, when etcd says the lease is gone (expired, revoked,
 *    etcd restored): the keeper stops;
 *  - with -ETIMEDOUT when no keepalive has been answered for a whole TTL:
 *    the keeper goes on (only etcd's word ends a lease: an overloaded etcd
 *    renews and answers late, and a new lease would add to its load);
 *  - with NULL when a keepalive is answered again after that.
 * The callback may free the keeper. */
typedef void (*etcd_keeper_cb)(etcd_keeper *k, const etcd_error *why, void *userdata);
int etcd_keeper_new(etcd_keeper **out, etcd_client *c, int64_t lease_id, int64_t ttl_sec,
		    etcd_keeper_cb lost, void *userdata);
int64_t etcd_keeper_lease(const etcd_keeper *k);
etcd_keeper *etcd_keeper_free(etcd_keeper *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(etcd_keeper *, etcd_keeper_free);

/* ---- watch ---------------------------------------------------------------- */

typedef enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE } etcd_event_type;

typedef struct etcd_event {
	etcd_event_type type;
	etcd_kv kv;                     /* delete: key and mod_revision only */
	etcd_kv prev_kv;                /* with prev_kv; key NULL when absent */
} etcd_event;

typedef enum etcd_watch_msg_type {
	ETCD_WATCH_CREATED,             /* the stream is up (also after a resume) */
	ETCD_WATCH_EVENTS,              /* events, in revision order */
	ETCD_WATCH_PROGRESS,            /* nothing new up to header.revision */
	ETCD_WATCH_DISCONNECTED,        /* the stream broke; resuming on its own */
	ETCD_WATCH_COMPACTED,           /* start revision compacted: the watch has
	                                   stopped; re-read, then watch again */
	ETCD_WATCH_CANCELED,            /* etcd cancelled it (e.g. permission);
	                                   stopped; error says why */
} etcd_watch_msg_type;

typedef struct etcd_watch_msg {
	etcd_watch_msg_type type;
	etcd_header header;
	const etcd_event *events;
	size_t n_events;
	int64_t compact_revision;       /* COMPACTED */
	const etcd_error *error;        /* DISCONNECTED, CANCELED */
} etcd_watch_msg;

typedef struct etcd_watch_req {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	bool prefix;
	int64_t start_revision;         /* 0: from now */
	bool prev_kv;
	bool progress_notify;
	bool no_put, no_delete;
} etcd_watch_req;

/* The message and what it points to are valid during the callback only. */
typedef void (*etcd_watch_cb)(etcd_watch *w, const etcd_watch_msg *m, void *userdata);

/* Starts a watch. After a dropped stream it reconnects (with back-off, to
 * the next endpoint) and resumes from the revision after the last one it
 * delivered, so no event is lost or repeated. A stream silent for the
 * progress deadline whose member does not answer a status request is
 * dropped the same way (DISCONNECTED, then CREATED on another member). */
int etcd_watch_new(etcd_watch **out, etcd_client *c, const etcd_watch_req *req, etcd_watch_cb cb, void *userdata);
/* The revision the watch would resume from. */
int64_t etcd_watch_next_revision(const etcd_watch *w);
etcd_watch *etcd_watch_free(etcd_watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(etcd_watch *, etcd_watch_free);

/* ---- helpers --------------------------------------------------------------- */

/* The range_end that makes [key, end) cover every key with this prefix
 * ("\0" for an empty prefix: all keys). New NUL-terminated buffer. */
int etcd_prefix_end(const char *key, size_t key_len, char **out, size_t *out_len);
