/* imds.h — the EC2 instance metadata service (IMDSv2) on the sd-event loop.
 *
 * One session token (PUT /latest/api/token, 6 h TTL, kept until a minute
 * before it ends) is shared by every GET; a GET answered 401 (the token went
 * stale: a restarted IMDS) is sent once more with a fresh token. Requests
 * bypass any proxy and time out after 2 s each. Users: the EC2 client's role
 * credentials (ec2.h), the node agent's spot notices (agent.h) and a node
 * learning who it is (imds_identity_fetch below).
 *
 * Tokens and replies may be secrets (role credentials): they are never in a
 * message and are wiped when freed (httpreq.h). Nothing here logs.
 *
 * imds_free() may not be called from inside one of its callbacks;
 * imds_identity_fetch_free() may (the result comes from a timer). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"

typedef struct imds imds;

typedef struct imds_reply {
	int error;              /* 0: the GET was answered, status says how;
	                           -EHOSTUNREACH: no answer (refused, timed out);
	                           -ENODEV: IMDS is off (token PUT got 403/404/405);
	                           -EPROTO: the token PUT got another status;
	                           -EFBIG: reply too big; -ENOMEM */
	long status;            /* HTTP status of the GET when error is 0 */
	const char *body;       /* the reply, NUL-terminated; valid in the callback */
	size_t len;
	char message[200];      /* for humans when error < 0 (no secrets) */
} imds_reply;

typedef void (*imds_done_fn)(const imds_reply *r, void *userdata);

/* endpoint: base URL, NULL for IMDS_DEFAULT_ENDPOINT; a trailing '/' is
 * ignored. */
int imds_new(imds **out, sd_event *event, const char *endpoint);
/* Drops what is in flight, without callbacks. NULL-safe. */
imds *imds_free(imds *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(imds *, imds_free);
/* GET path ("/latest/meta-data/..."). done runs exactly once, from the
 * loop (never inside this call), unless imds_free() comes first. 0 or
 * -ENOMEM (then done never runs). */
int imds_get(imds *m, const char *path, imds_done_fn done, void *userdata);

/* ---- who this instance is (identity.c) ---- */

#define IMDS_POOL_TAG "corral:pool"

typedef struct imds_identity {
	char *instance_id;      /* i-... */
	char *instance_type;
	char *availability_zone;
	char *local_ipv4;
	char *pool;             /* the instance's corral:pool tag; NULL: not in the
	                           metadata (no such tag, or tags in instance
	                           metadata are off: InstanceMetadataTags) */
} imds_identity;

void imds_identity_done(imds_identity *id);
/* dst (done first) becomes a copy of src, every field its own. 0 or -ENOMEM
 * (dst untouched). */
int imds_identity_copy(imds_identity *dst, const imds_identity *src);

typedef struct imds_identity_fetch imds_identity_fetch;
/* error 0: id filled (borrowed; copy what you keep). Otherwise message says
 * what failed: IMDS off or an instance id missing fail at once (-ENODEV,
 * -ENOENT), a value that cannot be one (-EBADMSG); no answer within the
 * time-out: -ETIMEDOUT with the last failure. */
typedef void (*imds_identity_fn)(int error, const imds_identity *id, const char *message, void *userdata);

/* GETs instance-id, instance-type, placement/availability-zone, local-ipv4
 * and tags/instance/corral:pool under /latest/meta-data/ from endpoint
 * (NULL: the default). A round that fails in a way that may pass (no
 * answer, 5xx, 401) is retried whole after a back-off (200 ms doubling up to
 * 5 s, jittered) until timeout_usec has passed since the start. cb runs once
 * from the loop. */
int imds_identity_fetch_start(imds_identity_fetch **out, sd_event *event, const char *endpoint,
			      uint64_t timeout_usec, imds_identity_fn cb, void *userdata);
imds_identity_fetch *imds_identity_fetch_free(imds_identity_fetch *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(imds_identity_fetch *, imds_identity_fetch_free);
