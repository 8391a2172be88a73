/* livenodes.h — the leader's map of the live nodes: one range of
 * `<prefix>/nodes/` (at revision R), then a watch from R+1 whose PUT and
 * DELETE events keep the map current. Records that are not JSON objects
 * are left out (agree_node_parse). A compacted or cancelled watch, or a
 * failed read, reads the folder again (once; a failed read again after a
 * capped, jittered back-off). Only the leader keeps one: no other node
 * reads or watches nodes/ (docs/leader.md). Part of the daemon: it logs. */
#pragma once

#include <jansson.h>

#include "etcd.h"

typedef struct live_nodes live_nodes;

/* The map changed (or was read for the first time). */
typedef void (*live_nodes_cb)(live_nodes *l, void *userdata);

int live_nodes_new(live_nodes **out, etcd_client *etcd, const char *prefix, live_nodes_cb cb, void *userdata);
/* {node-id: record}, borrowed (valid until the next callback or free);
 * NULL until the first read has come back. */
json_t *live_nodes_map(const live_nodes *l);
/* Full reads of nodes/ so far (the first one included). */
unsigned live_nodes_reads(const live_nodes *l);
live_nodes *live_nodes_free(live_nodes *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(live_nodes *, live_nodes_free);
