/* topology.h — merging the cluster's live nodes into the config (pure).
 *
 * A node config's topology rules say, for a service, which list in the
 * cluster config holds one entry per live node running it (for CMS: each
 * Worker node is ["<address>", 26000] in cms/core_services/Worker). The
 * lists named by rules are owned by corral: topology_apply() makes each hold
 * exactly the entries of the live nodes, keeping the order of entries that
 * stay, dropping the entries of nodes that are gone (or that match no live
 * node) and appending new ones in node-id order. It is idempotent, so any
 * node may run it on any snapshot and racing proposals converge.
 *
 * Templates: every string in a rule's value has "{address}" and "{node_id}"
 * replaced by the node's record's address and its id (object keys are not
 * templates; other braces stay as written).
 *
 * Details (src/topology/topology.c says how):
 *   - Each node owns its entries: two nodes advertising the same address
 *     make equal entries and the list holds one per node. Within a node,
 *     rules of one path that make equal entries make it once; different
 *     entries (two services under two rules) are each contributed.
 *   - An entry already in the list stays where it is as long as some live
 *     node makes it; surplus copies are dropped.
 *   - A list that does not exist is created with its missing parents, also
 *     when empty: corral owns it.
 *   - -EINVAL (files untouched) also when a list's place holds a value that
 *     is not an array, or when one rule's path lies inside another's list. */
#pragma once

#include <jansson.h>

#include "conf.h"
#include "tree.h"

/* The entry a node contributes under one rule. New reference. */
json_t *topology_entry(const conf_topology *rule, const char *node_id, const char *address);

/* nodes: {node-id: record}, records with "address" (string) and "services"
 * (array of strings); records lacking them contribute nothing. Rules with
 * the same path share one list. Returns 1 when files changed, 0 when not,
 * -EINVAL with err filled when a rule's path is bad or runs through a
 * value that is not an object (nothing is changed then). */
int topology_apply(json_t *files, const conf_topology *rules, size_t n_rules, json_t *nodes, tree_error *err);
