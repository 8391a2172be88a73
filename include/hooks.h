/* hooks.h — the node's side of tenant deployments (issue 18,
 * docs/deployments.md): run the hook a deployment's order names when the
 * order is for this node, and report.
 *
 * Follows deployments/ (one read, then a watch from the next revision; a
 * compaction reads again). For each record whose order.host is this node
 * and whose report (deployment_reports/<id>) does not already say that
 * order's seq ended: writes the report "running" (before the unit starts),
 * runs corrald.yaml's deployments.<hook> as the transient unit
 * hooks_unit_name() with CORRAL_DEPLOYMENT, CORRAL_DEPLOYMENT_JSON,
 * CORRAL_HOOK, CORRAL_NODE in its environment and its stdout in a file,
 * waits for it, and writes the report "done" (output: the last non-empty
 * stdout line) or "failed" (why). A hook the section leaves out succeeds
 * at once. A backup hook that printed nothing fails ("printed no backup
 * location").
 *
 * Restart: a running report whose unit is still loaded is waited for by
 * name; one whose unit is gone is run again (hooks must be idempotent:
 * docs/deployments.md). Orders run one per deployment, deployments in
 * parallel (at most 4 hooks at once on a node).
 *
 * Nothing here logs: each order started and ended, and each trouble, is
 * reported through the callback for corrald to log. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "deployment.h"
#include "etcd.h"
#include "macro.h"
#include "units.h"

typedef struct hooks_runner hooks_runner;

typedef enum hooks_event_kind {
	HOOKS_EVENT_START,              /* a hook starts (or is waited for again) */
	HOOKS_EVENT_DONE,               /* it ended: error 0 done, else failed */
	HOOKS_EVENT_TROUBLE,            /* etcd or the bus failed us; retrying */
} hooks_event_kind;

typedef struct hooks_event {
	hooks_event_kind kind;
	const char *deployment;         /* START, DONE */
	deployment_hook hook;
	int64_t seq;
	int error;
	const char *line;               /* one line for the log */
} hooks_event;

typedef void (*hooks_event_cb)(hooks_runner *h, const hooks_event *e, void *userdata);

/* Starts following at once: c's prefix, node_id and deployments section
 * (reference taken). -EINVAL when c has no deployments section. */
int hooks_runner_new(hooks_runner **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *c,
		     hooks_event_cb cb, void *userdata);
/* Stops at once: a hook's unit keeps running (a new runner waits for it). */
hooks_runner *hooks_runner_free(hooks_runner *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(hooks_runner *, hooks_runner_free);
unsigned hooks_runner_running(const hooks_runner *h);   /* hooks under way */

/* The deployments on this host as last read (host = this node, not
 * removed), for the steps of an in-place upgrade (upgrade_runner_set_env()):
 * {"CORRAL_DEPLOYMENTS=<ids, space-separated, by id>", "CORRAL_OWNERS=<their
 * owners, comma-separated, each once>", NULL}. New strv, or NULL (h NULL,
 * or no memory). */
char **hooks_runner_env(const hooks_runner *h);

/* "corral-deployment-<id>-<hook>-<seq>.service", escaped (units.h). New
 * string or NULL. */
char *hooks_unit_name(const char *deployment, deployment_hook hook, int64_t seq);

/* Where the hooks' stdout files go: $RUNTIME_DIRECTORY (its first entry),
 * else $XDG_RUNTIME_DIR/corral on the user bus, else /run/corral. New
 * string or NULL. */
char *hooks_stdout_dir(bool user_bus);
