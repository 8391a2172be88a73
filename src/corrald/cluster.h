/* cluster.h — corrald's share of keeping the cluster config right:
 *
 *   join     once registered, propose this node's topology entries (and,
 *            when the cluster has no config at all, the node config's
 *            initial values with them, in the same proposal);
 *   upkeep   the oldest live node (lowest create_revision under nodes/;
 *            the stand-in until leader election lands) re-derives every
 *            topology list when a node comes or goes, and collects old
 *            snapshots after each change of `current`.
 *
 * Topology proposals are idempotent, so a race between nodes only costs a
 * retry. Part of the daemon: it logs. */
#pragma once

#include "conf.h"
#include "etcd.h"

typedef struct cluster cluster;

int cluster_new(cluster **out, etcd_client *etcd, const conf *cf);
/* Registration succeeded (again): propose the join. */
void cluster_joined(cluster *c);
/* `current` moved: the oldest node collects old snapshots. */
void cluster_config_changed(cluster *c);
/* Reloaded conf (same etcd and prefix); the old one must stay valid until
 * cluster_idle() says so. */
void cluster_set_conf(cluster *c, const conf *cf);
bool cluster_idle(const cluster *c);
cluster *cluster_free(cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(cluster *, cluster_free);
