/* node.h — this host's registration: `<prefix>/nodes/<node-id>`, a JSON
 * record attached to a lease that is kept alive, so the key vanishes on its
 * own when the host dies.
 *
 * The registration repairs itself: when etcd cannot be reached it retries
 * with capped, jittered back-off; when etcd says the lease is lost (expired
 * while the process was paused or cut off, revoked, etcd restored) it takes
 * a new one at once, one grant (one lease ID until a grant succeeds, so a
 * retried grant never takes a second lease), and writes the key again; when
 * someone deletes the key it writes it again. Keepalives unanswered for a
 * whole TTL are an outage (RETRYING), not a loss: the keeper keeps renewing
 * the same lease, and when etcd answers, REGISTERED comes again with that
 * lease and no write (an overloaded etcd renews and answers late). The owner hears of each change of state once, through the
 * callback, and does the logging.
 *
 * The lease is the node's: everything else that must vanish with the node
 * (status, load) rides on it, and the owner hands it on. So NODE_REGISTERED
 * is also reported each time the key is written on a NEW lease, even when
 * the state never left REGISTERED (the loss was found by a failed put), with
 * the old lease's fate as the error: the owner then re-attaches everything
 * on node_reg_lease(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"

typedef struct node_reg node_reg;

typedef enum node_state {
	NODE_REGISTERING,       /* first attempt under way */
	NODE_REGISTERED,        /* the key is in etcd on a live lease; again on
	                           each new lease (error: why the old one went) */
	NODE_RETRYING,          /* etcd failed us; trying again (error says why) */
	NODE_STOPPED,           /* node_reg_stop() finished; error set if the
	                           lease could not be revoked (it expires) */
} node_state;

typedef struct node_info {
	const char *node_id;
	const char *address;
	char *const *services;  /* NULL-terminated; may be NULL */
	const char *version;
	uint64_t boot_time;     /* CLOCK_REALTIME seconds */
	uint64_t started;       /* when corrald started, same clock */
	const char *instance_id;        /* EC2 instance (conf ec2.instance_id); NULL: not written */
	const char *pool;               /* scale pool (conf pool); NULL: not written */
	const char *image;              /* what upgrade.image_command printed; NULL: not written */
	bool wind_down;                 /* runs a wind-down hook: the leader waits for
	                                   its ready_to_stop before terminating */
	int64_t deployments_memory;     /* bytes this host offers tenant deployments
	                                   (conf deployments.memory); 0: takes none,
	                                   not written */
} node_info;

typedef void (*node_state_cb)(node_reg *n, node_state state, const etcd_error *error, void *userdata);

/* The record as stored: {"node_id", "address", "services", "version",
 * "boot_time", "started"} with times in RFC 3339 UTC, plus "instance_id" and
 * "pool" when set (the autoscaler maps hosts to nodes by instance_id),
 * "image" when set (the rollout compares it with a plan's target), and
 * "wind_down": true when the node has a wind-down hook, and "deployments":
 * {"memory": N} when it takes tenant deployments. New string. */
char *node_record_json(const node_info *info);

/* Starts registering `key` with a lease of ttl_sec. info is copied. */
int node_reg_new(node_reg **out, etcd_client *c, const char *key, const node_info *info, int64_t ttl_sec,
		 node_state_cb cb, void *userdata);
/* Writes a new record under the same lease (e.g. after a reload). */
int node_reg_update(node_reg *n, const node_info *info);
/* Revokes the lease, which deletes the key; reports NODE_STOPPED. */
int node_reg_stop(node_reg *n);
node_state node_reg_state(const node_reg *n);
int64_t node_reg_lease(const node_reg *n);
node_reg *node_reg_free(node_reg *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(node_reg *, node_reg_free);

/* Seconds since the epoch at which this machine booted. */
uint64_t node_boot_time(void);
