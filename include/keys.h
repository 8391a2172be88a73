/* keys.h — every etcd key of corral's layout, built in one place.
 *
 * The layout (docs/architecture.md) under a cluster's prefix, which has a
 * leading '/' and no trailing one ("/corral/<cluster>" by default):
 *
 *   current  leader  maintenance
 *   configs/<config-id>/<leaf path>
 *   nodes/<node-id>  status/<node-id>  load/<node-id>  holds/<hold-id>
 *   scale/policy  scale/state  scale/metrics  scale/hosts/<instance-id>
 *   scale/stop  scale/trigger  scale/queue/<pool>
 *   scale/status  scale/history/<seq>
 *   upgrade/plan  upgrade/state  upgrade/stable  upgrade/nodes/<node-id>
 *   upgrade/progress/<node-id>  upgrade/history/<plan-id>
 *   deployments/<deployment-id>  deployment_reports/<deployment-id>
 *   deployment_policy
 *
 * No other file formats a key. An id that would change the key's shape
 * (empty, holding '/', "." or "..", a control byte, over KEYS_ID_MAX bytes)
 * is refused here, so a bad node id or hold id can never address another
 * record. Every builder returns a new string, or NULL with errno EINVAL
 * (bad id) or ENOMEM. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KEYS_ID_MAX 200

/* The folders that hold one record per id. */
typedef enum keys_dir {
	KEYS_CONFIGS,           /* configs/<config-id>/ (a folder per id) */
	KEYS_NODES,
	KEYS_STATUS,
	KEYS_LOAD,
	KEYS_HOLDS,
	KEYS_SCALE,             /* scale/: policy, state, metrics, hosts/ */
	KEYS_SCALE_HOSTS,
	KEYS_UPGRADE,           /* upgrade/: plan, state, stable, nodes/, progress/, history/ */
	KEYS_UPGRADE_NODES,
	KEYS_SCALE_QUEUE,       /* scale/queue/<pool>: a pool's queue length */
	KEYS_UPGRADE_PROGRESS,  /* upgrade/progress/<node-id>: the node's report */
	KEYS_UPGRADE_HISTORY,   /* upgrade/history/<plan-id> */
	KEYS_SCALE_HISTORY,     /* scale/history/<seq>: the leader's decision log */
	KEYS_SCALE_LOAD_HISTORY,        /* scale/load_history/<pool>: demand per minute (scale-forecast.h) */
	KEYS_DEPLOYMENTS,       /* deployments/<id>: a tenant deployment (deployment.h) */
	KEYS_DEPLOYMENT_REPORTS,        /* deployment_reports/<id>: its host's report on the last hook */
	_KEYS_DIR_MAX,
} keys_dir;

/* The single keys. */
typedef enum keys_one {
	KEYS_CURRENT,
	KEYS_LEADER,
	KEYS_MAINTENANCE,
	KEYS_SCALE_POLICY,
	KEYS_SCALE_STATE,
	KEYS_SCALE_METRICS,
	KEYS_UPGRADE_PLAN,
	KEYS_SCALE_STOP,        /* scale/stop: the cluster stop marker */
	KEYS_SCALE_TRIGGER,     /* scale/trigger: "decide now" */
	KEYS_UPGRADE_STATE,     /* upgrade/state: the rollout's phase (leader) */
	KEYS_UPGRADE_STABLE,    /* upgrade/stable: the last target that succeeded */
	KEYS_SCALE_STATUS,      /* scale/status: whether the leader can scale, and why not */
	KEYS_DEPLOYMENT_POLICY, /* deployment_policy: lifecycle durations, notice command */
	_KEYS_ONE_MAX,
} keys_one;

/* An id may be one key segment: see the top of this file. */
bool keys_id_valid(const char *id, size_t len);

/* A cluster name as --cluster or corrald.yaml's cluster gives it: a valid
 * id. */
bool keys_cluster_valid(const char *name);

/* "/corral/<cluster>"; NULL (EINVAL) for an invalid cluster name. */
char *keys_prefix_for_cluster(const char *cluster);

/* "<prefix>/": everything of the cluster, to watch. */
char *keys_all_of(const char *prefix);

/* "<prefix>/current", "<prefix>/leader", ... */
char *keys_one_of(const char *prefix, keys_one k);

/* "<prefix>/nodes/" and the like, with the trailing '/': a range to read
 * or watch. */
char *keys_dir_of(const char *prefix, keys_dir d);

/* "<prefix>/scale/history0": the first key past the folder d ('0' follows
 * '/'), as the end of a range read that stops before d, or the start of
 * one that skips it. */
char *keys_dir_end(const char *prefix, keys_dir d);

/* "<prefix>/nodes/<id>"; for KEYS_CONFIGS the folder "<prefix>/configs/<id>/". */
char *keys_entry(const char *prefix, keys_dir d, const char *id);

/* "<prefix>/configs/<config-id>/<leaf>": leaf is a tree path (escaped
 * segments joined by '/', see tree.h), not an id. */
char *keys_config_leaf(const char *prefix, const char *config_id, const char *leaf);

/* The id in a key of d read back from etcd (key, len bytes, not
 * NUL-terminated): a pointer into key and its length in *id_len, or NULL
 * when key is not "<prefix>/<dir>/<valid id>" (a record one level deeper,
 * another folder's key). For KEYS_CONFIGS the id ends at the next '/':
 * "<prefix>/configs/<id>/<leaf>" gives <id>. */
const char *keys_id_in(const char *prefix, keys_dir d, const char *key, size_t len, size_t *id_len);
