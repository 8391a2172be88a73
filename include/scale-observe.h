/* scale-observe.h — observe, the first step of the scaling loop: the
 * records read at one etcd revision plus what EC2 answered, turned into
 * scale_decide()'s input. Pure: no I/O, no clock, no logging.
 *
 * The leader (src/scaler/) and `corralctl autoscale plan` both read the same
 * keys and call scale_observe(), so a plan shown by the CLI is the one the
 * leader would take from the same records; `corralctl scale simulate`
 * (src/scale/sim.c) writes its simulated cloud as these records and calls
 * it too. The CLI's plan does not ask EC2
 * (have_instances false): records are taken as they are, no consistency
 * rule applies, no spot price or reservation is known.
 *
 * What observe does with the records (docs/scale.md, "The leader loop"):
 *   - scale/hosts/<id> records parsed (a bad one is skipped with a note);
 *   - consistency, when EC2 was asked: a record whose instance is gone, or
 *     that never showed up within launch_grace (or was terminating),
 *     becomes terminated; a tagged instance without a record, older than
 *     launch_grace and not held, is recorded terminating and listed in
 *     terminate;
 *   - per live record: the cluster tag, hold and autoscale=off tags from
 *     EC2, holds/<id>, the node whose nodes/<node> names the instance
 *     (present = alive), its load/<node> (jobs, capacity, memory, an
 *     interruption notice), whether a draining node still winds down, and
 *     whether a rollout has its node in flight (upgrade/state, nodes/,
 *     progress/);
 *   - scale/queue/<pool> as counts, scale/state as the hysteresis state;
 *   - deployments/ (tenant deployments): each occupying deployment is a
 *     job of its host, their reserved memory the host's memory_used when
 *     higher, pending ones no host has room for add to the deployment
 *     pool's queue (src/scale/tenants.c).
 * Each folder is sorted once for the lookups (O(n log n) in all); a
 * lookup finds the record a scan in etcd's key order would find first.
 *
 * Ownership: scale_records borrows everything; scale_observed owns its
 * hosts, queues, state and notes, and its input points into it and into
 * the records (policy, prices, reservations, spot errors), so both must
 * outlive a decision made from it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "scale.h"

/* One record of a folder: the id (the key's last segment, NUL-terminated)
 * and the value as etcd holds it (len bytes; value may be NULL if empty). */
typedef struct scale_kv {
	const char *id;
	const char *value;
	size_t len;
} scale_kv;

/* One instance DescribeInstances listed under the cluster's tag. */
typedef struct scale_instance {
	const char *id;
	const char *instance_type, *availability_zone;  /* may be NULL */
	const char *pool;               /* tag corral:pool, may be NULL */
	const char *client_token;       /* NULL when none */
	const char *image_id;           /* NULL when unknown */
	const char *launch_template_version;    /* tag aws:ec2launchtemplate:version */
	bool spot;                      /* lifecycle spot */
	bool hold;                      /* tag hold or corral:hold true/1/yes */
	bool autoscale_off;             /* tag autoscale=off */
	bool gone;                      /* shutting-down or terminated */
	bool stopped;                   /* stopping or stopped (the warm pool) */
	time_t launch_time;
} scale_instance;

typedef struct scale_records {
	const char *cluster;            /* part of every client token */
	time_t now;
	int64_t launch_grace;           /* s (the leader's launch_grace_sec) */
	const scale_policy *policy;     /* scale/policy, parsed by scale_observe_policy() */
	/* etcd, one revision */
	const char *state;              /* scale/state text, NULL: absent */
	size_t state_len;
	bool stop;                      /* scale/stop present */
	bool maintenance;               /* maintenance present */
	const scale_kv *hosts;          /* scale/hosts/<instance-id> */
	size_t n_hosts;
	const scale_kv *queues;         /* scale/queue/<pool> */
	size_t n_queues;
	const scale_kv *nodes;          /* nodes/<node-id> */
	size_t n_nodes;
	const scale_kv *load;           /* load/<node-id> */
	size_t n_load;
	const scale_kv *load_history;   /* scale/load_history/<pool> (scale-forecast.h) */
	size_t n_load_history;
	const scale_kv *holds;          /* holds/<instance-id> */
	size_t n_holds;
	const scale_kv *deployments;    /* deployments/<id> (deployment.h): work on
	                                   hosts, and waiting work (src/scale/tenants.c) */
	size_t n_deployments;
	const char *deployment_policy;  /* deployment_policy text, NULL: absent */
	size_t deployment_policy_len;
	const scale_kv *status;         /* status/<node-id>: a replacement whose node
	                                   says "ok": false is not healthy */
	size_t n_status;
	/* the rollout (rollout.h): a host whose node holds an upgrade or
	 * rollback order of upgrade/state's plan and generation, with no
	 * progress saying that order finished, is in_rollout */
	const char *upgrade_state;      /* upgrade/state text, NULL: absent */
	size_t upgrade_state_len;
	const char *upgrade_plan;       /* upgrade/plan text (a machine image plan:
	                                   its pool, max_surge, keep_old_until_bake) */
	size_t upgrade_plan_len;
	const char *upgrade_stable;     /* upgrade/stable text */
	size_t upgrade_stable_len;
	const scale_kv *upgrade_orders; /* upgrade/nodes/<node-id> */
	size_t n_upgrade_orders;
	const scale_kv *upgrade_progress;       /* upgrade/progress/<node-id> */
	size_t n_upgrade_progress;
	/* EC2 */
	bool have_instances;            /* false: not asked (corralctl) */
	const scale_instance *instances;
	size_t n_instances;
	const scale_price *prices;
	size_t n_prices;
	const char *prices_error;       /* why the prices are missing, or NULL */
	const scale_reservation *reservations;
	size_t n_reservations;
	const char *reservations_error; /* why the reservations are missing, or NULL */
	const scale_spot_error *spot_errors;    /* since the last decision */
	size_t n_spot_errors;
} scale_records;

typedef struct scale_observed {
	scale_host *hosts;              /* records, then orphans recorded now */
	size_t n_hosts;
	bool *dirty;                    /* per host: its record must be written */
	scale_queue *queues;
	size_t n_queues;
	scale_pool_state *state;
	size_t n_state;
	scale_forecast *forecasts;      /* pools with forecast enabled whose history
	                                   says something */
	size_t n_forecasts;
	char **terminate;               /* orphans to terminate (strv) */
	size_t n_terminate;
	char **errors;                  /* notes for scale/metrics "errors" (strv) */
	size_t n_errors;
	int orphans;                    /* tagged instances without record, terminated */
	int gone;                       /* records whose instance is gone: terminated */
	int in_grace;                   /* unrecorded instances younger than launch_grace */
	scale_rollout rollout;          /* input.rollout points here when a machine
	                                   image plan stands (pool set) */
	char *rollout_pool, *rollout_version, *rollout_image;   /* its strings */
	scale_input input;              /* for scale_decide() */
	struct scale_host_index *index; /* hosts by id, for scale_observed_host() */
} scale_observed;

/* scale/policy's text -> policy (owned, scale_policy_done). -EINVAL with
 * err's message ("scale/policy: not JSON" or the codec's), -ENOMEM. */
int scale_observe_policy(const char *text, size_t len, scale_policy *out, scale_error *err);

/* Records -> the decision's input. 0, -EINVAL (no policy, now <= 0),
 * -ENOMEM; on failure out is left empty. */
int scale_observe(const scale_records *r, scale_observed *out);
void scale_observed_done(scale_observed *o);

/* The host with this instance id, or NULL: a binary search once
 * scale_observe() has filled o (the leader looks up every action's host),
 * a scan in one built by hand. */
scale_host *scale_observed_host(scale_observed *o, const char *id);
