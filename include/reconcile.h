/* reconcile.h — a node making its files and units match `current`.
 *
 * The reconciler reads `<prefix>/current` and the snapshot it names, renders
 * every file this node's config lists (JSON, or a user's command fed the
 * JSON), writes the files that changed atomically (render.h), after their
 * check command passes, then restarts or reloads the units mapped to them
 * (units.h) and publishes `<prefix>/status/<node-id>`. It then watches
 * `current` from the next revision; bursts of changes are debounced (quiet
 * period, maximum wait). A compacted watch re-reads and re-watches.
 *
 * Failures never stop it: a file whose render or check fails keeps its last
 * good bytes; a unit that fails on new files gets its previous files back
 * and is restarted on them; the failure is reported in the status and in
 * the callback. A broken snapshot (missing folder, malformed leaf) is not
 * applied at all: every file keeps its last good bytes, the status names
 * the snapshot and what is wrong. Each new `current` is applied on its own
 * merits, whatever happened to the one before.
 *
 * Faults and verdicts. A file that cannot be read, staged or renamed into
 * place (read-only or full file system, permissions, I/O error), or whose
 * command cannot be started, is a fault of this host: the whole apply is
 * tried again with capped, jittered back-off (conf write_retry ..
 * write_retry_max) until it goes through, or at once on
 * reconcile_retry_now(); a change of `current` replaces the pending retry.
 * A check command that rejects a file or a unit that fails on it is a
 * verdict on those bytes: it is not asked again for the same config id and
 * bytes (a retry keeps the previous file and reports the verdict again)
 * until `current` changes or reconcile_retry_now() is called.
 *
 * Status record (JSON, on the node's lease when one is given):
 *   {"node_id", "target": id being applied, "applied": id whose files and
 *    units are all in place (null until one is), "revision": current's
 *    mod_revision (0 while pinned), "pinned": the snapshot id a rollout
 *    pinned this node to (reconcile_pin) or null, "ok": bool, "error":
 *    text or null,
 *    "files": {name: {"path", "digest" (sha256 hex of the bytes on disk),
 *                     "config_id" (whose bytes they are), "error"}},
 *    "units": {unit: {"action", "result", "active_state", "ok", "message"}},
 *    "retry": null, or {"attempt": failed applies in a row, "delay_ms":
 *             until the next} while a fault is being retried,
 *    "updated": RFC 3339 UTC} */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "etcd.h"
#include "units.h"

typedef struct reconcile reconcile;

typedef struct reconcile_report {
	bool ok;                        /* everything of target is in place */
	bool changed;                   /* some file was written */
	const char *target;             /* NULL: the cluster has no config yet */
	const char *applied;
	const char *error;              /* NULL when ok */
	uint64_t retry_usec;            /* a fault: tried again in this long; 0: not retried */
	json_t *status;                 /* the status record (borrowed) */
	int64_t revision;               /* `current`'s mod_revision for target (0: none) */
	const char *pinned;             /* this apply rendered a pinned snapshot
	                                   (reconcile_pin): its id (== target);
	                                   NULL: it followed `current` */
	uint64_t pin_serial;            /* the reconcile_pin() call this apply
	                                   began after (0: none yet) */
	bool transient;                 /* not ok because of etcd or a fault of
	                                   this host: tried again by itself; else
	                                   a failure is a verdict on the config */
	json_t *files;                  /* ok: target's document as read ({} when no
	                                   config), never changed afterwards: a
	                                   holder may keep a reference; NULL when
	                                   not ok (the read or apply failed, or the
	                                   snapshot was broken) */
} reconcile_report;

/* After every apply attempt (also a failed read of etcd). */
typedef void (*reconcile_cb)(reconcile *r, const reconcile_report *rep, void *userdata);

/* The reconciler takes its own reference to cf (conf_ref), and an apply
 * under way another to the conf whose files it renders, dropped when the
 * apply is over: the caller may drop its own at any time. bus may be NULL
 * when no file names a unit. once: apply a single time, no watch, no
 * status record. */
int reconcile_new(reconcile **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *cf, bool once,
		  reconcile_cb cb, void *userdata);
/* Begins: the first apply runs at once. */
int reconcile_start(reconcile *r);
/* Status records ride on this lease (0: none) and are written again. */
void reconcile_set_lease(reconcile *r, int64_t lease);
/* A reloaded conf (referenced as in reconcile_new); the next apply uses
 * it (one is scheduled now). An apply under way finishes on the files
 * section it started with: it holds that conf until it is over. */
void reconcile_set_conf(reconcile *r, conf *cf);
/* Staged config rollout (docs/upgrades.md): renders snapshot id
 * (configs/<id>/, deltas included; immutable, so read once) through the
 * same render/check/restart path instead of `current`, until unpinned (id
 * NULL: back to `current`). While pinned, changes of `current` are noted
 * but not applied. Either way an apply follows at once (after the one
 * under way): its report, and every later one, carries a pin_serial >=
 * the one returned, so a caller can tell the outcome of its pin from an
 * older apply's. */
uint64_t reconcile_pin(reconcile *r, const char *id);
/* The id pinned now, NULL: none. */
const char *reconcile_pinned(const reconcile *r);
/* Apply again at once (after the one under way, if any), forgetting the
 * verdicts of check commands and units and restarting the back-off: what
 * SIGHUP does, once an operator has repaired a disk or a unit. */
void reconcile_retry_now(reconcile *r);
reconcile *reconcile_free(reconcile *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(reconcile *, reconcile_free);

/* The unit actions for a set of changed files: one step per unit, in
 * first-mention order (every restart before every reload). */
typedef struct reconcile_unit_step {
	const char *unit;               /* borrowed from the conf_file lists */
	units_action action;            /* UNITS_RESTART or UNITS_RELOAD */
	size_t *files;                  /* indexes of the changed files naming */
	size_t n_files;                 /*   the unit, in the order they came */
} reconcile_unit_step;

typedef struct reconcile_unit_plan {
	reconcile_unit_step *steps;
	size_t n_steps;
} reconcile_unit_plan;

/* Pure: changed[i] says whether files[i] was written. A unit named by
 * several files is acted on once; restart wins over reload. The plan
 * borrows the unit names from files (keep files while the plan lives).
 * 0, or -ENOMEM (*out left empty). */
int reconcile_plan_units(const conf_file *files, size_t n, const bool *changed, reconcile_unit_plan *out);
void reconcile_unit_plan_done(reconcile_unit_plan *p);

/* Pure: what follows an apply. In this order: an explicit retry
 * (reconcile_retry_now) at once; etcd failed: read again after the etcd
 * back-off; `current` changed meanwhile: the debounced apply of the newer
 * config (it replaces any retry); a fault: the same config again after the
 * write back-off; else wait for the next change. */
typedef enum reconcile_next {
	RECONCILE_NEXT_WAIT,
	RECONCILE_NEXT_NOW,
	RECONCILE_NEXT_ETCD_RETRY,
	RECONCILE_NEXT_DEBOUNCED,
	RECONCILE_NEXT_WRITE_RETRY,
} reconcile_next;

reconcile_next reconcile_next_step(bool retry_now, bool etcd_failed, bool dirty, bool fault);

/* Pure: how long after now the apply of a burst of changes (the first
 * seen at dirty_since) waits: the quiet period, but never past max_wait
 * after the first change. */
uint64_t reconcile_debounce_wait(uint64_t now, uint64_t dirty_since, uint64_t debounce_usec, uint64_t max_wait_usec);
