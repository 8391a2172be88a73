/* upgrade.h — the node's side of rolling upgrades (docs/upgrades.md): on
 * corrald's sd-event loop, follow `upgrade/nodes/<self>` (the leader's
 * order), run the order's step list from corrald.yaml's `upgrade:` section
 * and report in `upgrade/progress/<self>` (rollout.h's rollout_progress).
 *
 * What runs for each verb: PREPARE the prepare steps; UPGRADE and ROLLBACK
 * the steps (CORRAL_IMAGE is the order's target either way); FINISH the
 * undos still owed (reverse order), then cleanup when the order says so.
 *
 * At start it reads image_command, then its order and progress, and
 * resumes: an order of the same plan, generation and verb whose progress
 * is running goes on at progress.step (a command step whose unit still
 * exists is waited for, one whose unit is gone is run again; a once step
 * that had started is never run again); another order starts its list from
 * 0 (once_done and undo_pending carry over within one plan generation); an
 * order of an older generation of the plan of the progress is ignored.
 *
 * Progress is written before each step (and must be stored before the step
 * starts: a once step is in once_done, a step with undo in undo_pending),
 * and at the end (done or failed, with the image image_command prints
 * then). A failing step fails the order at once: the undos owed run in
 * reverse order and the progress says which step failed and why.
 *
 * Nothing here logs: every step, order and image reading is reported once
 * through the callback, for corrald to log and to put the image into the
 * node record. */
#pragma once

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "etcd.h"
#include "macro.h"
#include "rollout.h"
#include "units.h"

typedef struct upgrade_runner upgrade_runner;

typedef enum upgrade_event_kind {
	UPGRADE_EVENT_IMAGE,            /* image_command read: image (NULL: it failed) */
	UPGRADE_EVENT_ORDER,            /* an order's step list starts (or is ignored) */
	UPGRADE_EVENT_STEP,             /* a step (or undo) ended: error 0 or why not */
	UPGRADE_EVENT_DONE,             /* the order's list ended; error 0: done */
	UPGRADE_EVENT_TROUBLE,          /* etcd or the bus failed us; retrying */
} upgrade_event_kind;

typedef struct upgrade_event {
	upgrade_event_kind kind;
	int error;
	const char *image;              /* IMAGE, DONE */
	const char *line;               /* one line for the log: "step 3/10 stop
	                                   cms-app.service: done" */
} upgrade_event;

typedef void (*upgrade_event_cb)(upgrade_runner *u, const upgrade_event *e, void *userdata);

/* Starts following this node's order: c's prefix, node_id, upgrade section,
 * command_timeout (image_command) and unit_timeout (stop/start/restart
 * steps without their own timeout: step_timeout). Takes a reference on c.
 * bus runs the steps' units. -EINVAL when c has no upgrade section. */
int upgrade_runner_new(upgrade_runner **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *c,
		       upgrade_event_cb cb, void *userdata);
/* Stops at once: a step's unit keeps running (a new runner waits for it). */
upgrade_runner *upgrade_runner_free(upgrade_runner *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(upgrade_runner *, upgrade_runner_free);
/* More environment for every command step: fn is called as each step
 * starts and returns a new NULL-terminated strv of "K=V" (strv_free), or
 * NULL for none. corrald passes the tenant deployments on this host
 * (CORRAL_DEPLOYMENTS, CORRAL_OWNERS: hooks_runner_env()), so an in-place
 * upgrade's notices reach their owners. fn NULL: none. */
typedef char **(*upgrade_env_fn)(void *userdata);
void upgrade_runner_set_env(upgrade_runner *u, upgrade_env_fn fn, void *userdata);

/* The image image_command printed last (NULL: not yet, or it failed). */
const char *upgrade_runner_image(const upgrade_runner *u);
/* True while a step list runs. */
bool upgrade_runner_busy(const upgrade_runner *u);

/* ---- following this node's order (follow.c) ------------------------------ */

/* Reads upgrade/nodes/<self> and upgrade/progress/<self> in one txn, then
 * watches the order from the next revision and hands every change on. A
 * malformed order keeps the last good one; a compacted watch is read again
 * at once, a failed read or a cancelled watch after a jittered back-off
 * (1 s doubling to 30 s). The upgrade runner and corrald's pin follower
 * both use it; what an order means stays with them. Nothing here logs. */
typedef struct upgrade_follow upgrade_follow;

typedef enum upgrade_follow_kind {
	UPGRADE_FOLLOW_ORDER,           /* the order changed, or was read */
	UPGRADE_FOLLOW_TROUBLE,         /* something failed: once per trouble */
} upgrade_follow_kind;

typedef enum upgrade_follow_trouble {
	UPGRADE_FOLLOW_READ,            /* the read failed: again after a back-off */
	UPGRADE_FOLLOW_WATCH,           /* the watch could not start: read again after a back-off */
	UPGRADE_FOLLOW_CANCELED,        /* etcd cancelled the watch: read again after a back-off */
	UPGRADE_FOLLOW_BAD_ORDER,       /* the order is unreadable: the last good one stands */
	UPGRADE_FOLLOW_BAD_PROGRESS,    /* the progress is unreadable: handed on as none */
	UPGRADE_FOLLOW_STOPPED,         /* no retry could be scheduled: following stops */
} upgrade_follow_trouble;

typedef struct upgrade_follow_event {
	upgrade_follow_kind kind;
	/* ORDER */
	const rollout_order *order;     /* the latest good order; NULL: none */
	bool read;                      /* from a (re)read: progress is as read */
	rollout_progress *progress;     /* read: NULL when none (or unreadable); the
	                                   callback may move it out (zero it) */
	/* TROUBLE */
	upgrade_follow_trouble trouble;
	int error;                      /* negative errno */
	const char *key;                /* the key concerned (NULL: the read txn) */
	const char *message;            /* etcd's error, or why a value is unreadable */
} upgrade_follow_event;

/* The callback must not free the follower. */
typedef void (*upgrade_follow_cb)(upgrade_follow *f, const upgrade_follow_event *e, void *userdata);

/* Starts reading at once (a trouble may be reported before it returns). */
int upgrade_follow_new(upgrade_follow **out, sd_event *event, etcd_client *etcd, const char *prefix,
		       const char *node_id, upgrade_follow_cb cb, void *userdata);
upgrade_follow *upgrade_follow_free(upgrade_follow *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(upgrade_follow *, upgrade_follow_free);
const char *upgrade_follow_order_key(const upgrade_follow *f);
const char *upgrade_follow_progress_key(const upgrade_follow *f);

/* ---- pure: what a runner does with an order (resume.c) ------------------- */

typedef enum upgrade_start_kind {
	UPGRADE_START_NONE,             /* nothing to do: no order, already done
	                                   or failed, or stale */
	UPGRADE_START_FRESH,            /* run the list from step 0 */
	UPGRADE_START_RESUME,           /* go on at progress.step */
} upgrade_start_kind;

typedef struct upgrade_start {
	upgrade_start_kind kind;
	int step;                       /* RESUME */
	bool carry;                     /* keep once_done and undo_pending */
	const char *why;                /* for NONE: "stale: generation 1 < 2", ... */
} upgrade_start;

/* A config-only order: its target or from names a config snapshot and
 * neither names an image (a staged config rollout). corrald's pin follower
 * carries it out (the reconciler renders the pinned snapshot) and writes
 * its progress; the runner has no steps to run and leaves it alone. */
bool upgrade_order_config_only(const rollout_order *o);

/* order NULL: none; progress NULL: none. A config-only order: NONE. */
void upgrade_decide_start(const rollout_order *order, const rollout_progress *progress, upgrade_start *out);

/* "corral-upgrade-<node>-<plan>-<gen>-<verb>-<index>.service" (undo:
 * "-undo-"), escaped: the name a step's transient unit has, so a restarted
 * corrald finds it. New string or NULL. */
char *upgrade_unit_name(const char *node, const char *plan, int64_t generation, rollout_verb verb, bool undo,
			int index);
