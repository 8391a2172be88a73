/* leader.h — electing one corrald to do the cluster's work, and fencing
 * what it writes (docs/leader.md).
 *
 * Every campaigner holds its own lease (same TTL as the registration's, a
 * separate lease so that resigning does not deregister the node) and tries
 * one txn on the leader key:
 *
 *     if create_revision(<prefix>/leader) == 0
 *        then put <prefix>/leader = {"node_id","since"} on our lease
 *        else range <prefix>/leader
 *
 * Whoever's put succeeds is the leader; the key's create_revision is its
 * fencing token, and every write it makes for the cluster is a txn that also
 * compares create_revision(<prefix>/leader) == token (leader_fence()), so a
 * deposed leader's late writes fail. The others watch the key and campaign
 * again when it is deleted (resign, lease expiry, by hand).
 *
 * Timing. A leader acts only while it can prove its lease is alive: etcd
 * starts a lease's TTL afresh no earlier than it received the grant or
 * keepalive, which is after we sent it, so the lease lives at least until
 * send_time + TTL of the last successful grant/keepalive. The leader steps
 * down at that time minus a margin (default max(TTL/5, 250 ms)), before etcd
 * can expire the lease and let another node win. Both times are measured on
 * CLOCK_MONOTONIC here and on etcd's clock there; the margin covers clock
 * rate differences and this loop being late to run the timer. When a
 * keepalive succeeds again and the key is still ours, leadership resumes
 * with the same token (no one else can have held the key in between).
 *
 * Part of the core: never logs; reports through the callbacks, once per
 * change. Everything runs on the etcd client's sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"

typedef struct leader leader;

typedef enum leader_reason {
	LEADER_RESIGNED,                /* leader_resign() */
	LEADER_LEASE_LOST,              /* etcd says our lease is gone */
	LEADER_LEASE_UNCONFIRMED,       /* no keepalive succeeded in time: the
	                                   lease may expire any moment */
	LEADER_KEY_DELETED,             /* the key went (by hand, most likely) */
	LEADER_KEY_TAKEN,               /* another node holds the key */
	LEADER_FENCE_FAILED,            /* a fenced write was refused */
} leader_reason;

const char *leader_reason_to_string(leader_reason r);

typedef struct leader_callbacks {
	/* This node is the leader now; token is the key's create_revision. */
	void (*elected)(leader *l, int64_t token, void *userdata);
	/* It no longer is: stop leader work at once. */
	void (*deposed)(leader *l, leader_reason why, void *userdata);
	/* Optional: etcd failed us (campaign, grant, keepalive), or recovered
	 * (error NULL). For logging; the campaign retries on its own. */
	void (*trouble)(leader *l, const etcd_error *error, void *userdata);
} leader_callbacks;

typedef struct leader_options {
	const char *key;                /* "<prefix>/leader" */
	const char *node_id;
	int64_t ttl_sec;                /* >= 2 */
	uint64_t margin_usec;           /* 0: leader_default_margin(ttl) */
} leader_options;

/* Starts campaigning at once. Options are copied. */
int leader_new(leader **out, etcd_client *c, const leader_options *o, const leader_callbacks *cb, void *userdata);
bool leader_is_leader(const leader *l);
int64_t leader_token(const leader *l);          /* 0 when not the leader */
int64_t leader_lease(const leader *l);          /* 0 when none */
/* A write fenced with our token was refused: the key is not ours any more.
 * Steps down (LEADER_FENCE_FAILED) if still leading, then looks again. */
void leader_fence_failed(leader *l);

/* Stops campaigning: steps down (deposed: LEADER_RESIGNED) at once, then
 * revokes the lease, which deletes the key so the next node takes over
 * without waiting for the TTL. done (may be NULL) runs once the revocation
 * is answered: error NULL on success, else why (the key then expires with
 * the lease). The object stays usable for the getters until freed. */
typedef void (*leader_resign_cb)(leader *l, const etcd_error *error, void *userdata);
int leader_resign(leader *l, leader_resign_cb done, void *userdata);

/* No callbacks after this; a resignation in flight is dropped. NULL-safe. */
leader *leader_free(leader *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(leader *, leader_free);

/* ---- pure helpers ---------------------------------------------------------- */

/* The compare that fences a write: create_revision(key) == token. The key
 * is borrowed. */
etcd_compare leader_fence(const char *key, int64_t token);

/* max(ttl/5, 250 ms), and never more than half the TTL. */
uint64_t leader_default_margin(int64_t ttl_sec);
/* Until when a lease last confirmed (sent) at confirmed_usec may be relied
 * on: confirmed + ttl - margin (0 when that is not positive). */
uint64_t leader_deadline(uint64_t confirmed_usec, int64_t ttl_sec, uint64_t margin_usec);

/* The key's value: {"node_id":..., "since":"<RFC 3339 UTC>"}. New string. */
char *leader_value_json(const char *node_id, uint64_t since_realtime_sec);
/* Parses it: node_id (new string) and since (0 when missing). A value that
 * is not such JSON (an old or hand-written one) gives the whole value as
 * the node id. -ENOMEM only. */
int leader_value_parse(const char *value, size_t len, char **node_id, uint64_t *since);
