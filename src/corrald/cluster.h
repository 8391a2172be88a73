/* cluster.h — corrald's share of keeping the cluster config right:
 *
 *   initial  a node whose config has `initial` values proposes them once,
 *            once registered, only while the cluster has no config
 *            (only_if_absent: it reads `current` and nothing else); a node
 *            without them proposes nothing. Joining is the node's own
 *            record under nodes/, nothing more;
 *   upkeep   only while this node is the elected leader (leader.h): it
 *            reads nodes/ once and keeps the live node map by its watch
 *            (livenodes.h), and re-derives every topology list when nodes
 *            come or go (debounced: a burst of joins is one commit) and
 *            when a new `current` (an import, set or rollback) replaced a
 *            managed list. It decides on the snapshot this node last
 *            applied (cluster_config_applied) or committed, so a change
 *            that needs nothing costs etcd nothing. It collects old
 *            snapshots a little after a change of `current`, at most once
 *            per collect_interval. Both are txns fenced with the leader's
 *            token, and both stop (proposals in flight cancelled) the
 *            moment leadership is lost. Each is observe -> decide -> act
 *            (cluster.c says how).
 *
 * Part of the daemon: it logs. */
#pragma once

#include "conf.h"
#include "etcd.h"
#include "leader.h"

typedef struct cluster cluster;

/* The cluster takes its own reference to cf (conf_ref), as
 * cluster_set_conf() does: the caller may drop its own at any time. */
int cluster_new(cluster **out, etcd_client *etcd, conf *cf);
/* Registration succeeded: propose the initial values (the first time
 * only: a new lease after a lost one needs nothing from here). */
void cluster_joined(cluster *c);
/* The campaign whose leadership gates upkeep (borrowed; NULL: none). */
void cluster_set_campaign(cluster *c, leader *l);
/* Elected or deposed: start, or stop at once, the leader's work. */
void cluster_leader_changed(cluster *c);
/* This node's reconciler read `current` (id, NULL: no config; its
 * mod_revision) and, when files is not NULL, applied that document (the
 * cluster keeps a reference: it must never change). The leader decides
 * its upkeep on it, and collects old snapshots after a new id. Any
 * report may be passed: older and repeated ones change nothing. */
void cluster_config_applied(cluster *c, const char *id, int64_t revision, json_t *files);
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
/* Whether the leader can scale (what it wrote to scale/status last), NULL
 * when not leading or not known yet (borrowed). */
struct scale_status;
const struct scale_status *cluster_scaling(const cluster *c);
struct rollout_loop;
const struct rollout_loop *cluster_rollout(const cluster *c);
/* The lifecycle loop while leading, else NULL (metrics). */
struct lifecycle_loop;
const struct lifecycle_loop *cluster_lifecycle(const cluster *c);
cluster *cluster_free(cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(cluster *, cluster_free);
