/* cluster.h — corrald's share of keeping the cluster config right:
 *
 *   join     once registered, propose this node's topology entries (and,
 *            when the cluster has no config at all, the node config's
 *            initial values with them, in the same proposal);
 *   upkeep   only while this node is the elected leader (leader.h): re-derive
 *            every topology list when a node comes or goes and after each
 *            change of `current` (an import, set or rollback may have
 *            replaced a managed list: one fenced commit puts the live nodes
 *            back), and collect old snapshots after each change of
 *            `current` (one more run when a change comes during a run);
 *            both are txns fenced with the leader's token, and both stop
 *            (proposals in flight cancelled) the moment leadership is lost.
 *            Each is observe -> decide -> act (cluster.c says how).
 *
 * Topology proposals are idempotent, so a race between nodes only costs a
 * retry. Part of the daemon: it logs. */
#pragma once

#include "conf.h"
#include "etcd.h"
#include "leader.h"

typedef struct cluster cluster;

/* The cluster takes its own reference to cf (conf_ref), as
 * cluster_set_conf() does: the caller may drop its own at any time. */
int cluster_new(cluster **out, etcd_client *etcd, conf *cf);
/* Registration succeeded (again): propose the join. */
void cluster_joined(cluster *c);
/* The campaign whose leadership gates upkeep (borrowed; NULL: none). */
void cluster_set_campaign(cluster *c, leader *l);
/* Elected or deposed: start, or stop at once, the leader's work. */
void cluster_leader_changed(cluster *c);
/* This node applied a new `current`: the leader collects old snapshots. */
void cluster_config_changed(cluster *c);
/* Reloaded conf (same etcd and prefix): the cluster drops its reference
 * to the old one, of which nothing is kept (what a proposal, collection or
 * the scaler under way needs of it they copied when they started). */
void cluster_set_conf(cluster *c, conf *cf);
/* The leader's scaler while it runs (borrowed, valid until the next
 * leadership or configuration change), NULL otherwise: corrald's /metrics
 * shows its last decision only while there is one to show. */
struct scaler;
const struct scaler *cluster_scaler(const cluster *c);
/* The leader's rollout loop while it leads (borrowed, valid until the
 * next leadership change), NULL otherwise: /metrics shows its last
 * decision. */
struct rollout_loop;
const struct rollout_loop *cluster_rollout(const cluster *c);
cluster *cluster_free(cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(cluster *, cluster_free);
