/* units.h — restarting and reloading systemd units over D-Bus (sd-bus),
 * on the caller's sd-event loop, and learning how it went.
 *
 * A call queues a job with the manager (org.freedesktop.systemd1.Manager
 * RestartUnit / ReloadUnit / ..., mode "replace"), waits for the job's
 * JobRemoved signal, then reads the unit's ActiveState: a job whose result
 * is "done" but whose unit is not active (it crashed at once, or is
 * "activating" auto-restart) is a failure. While the unit is still
 * "activating"/"reloading"/"deactivating" after the job, the state is
 * polled until it settles or the timeout passes. Each call reports exactly
 * once through its callback (never after units_job_cancel or
 * units_bus_free).
 *
 * Success means, after a job whose result is "done":
 *   start, restart, reload-or-restart: the unit is active, and still active
 *       in the same invocation (InvocationID) after the settle time (see
 *       units_bus_set_settle): a Type=simple service counts as started once
 *       forked, so without this a service that exits at once would pass;
 *   reload: the unit is active (the reload command ran);
 *   try-restart: as restart, or the unit was inactive and stays so;
 *   stop: the unit is inactive or failed.
 * On our timeout the manager's job is left as it is (the unit's own
 * timeouts govern it); a later call with mode "replace" supersedes it.
 *
 * Timers ask sd-event for 1 ms accuracy (its default is 250 ms), so
 * deadlines and polls come near their times.
 *
 * The bus is the system bus, or the caller's user bus (the manager of
 * `systemd --user`: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus).
 * A lost connection (manager restarted) is re-opened on the next call. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

typedef struct units_bus units_bus;
typedef struct units_job units_job;

typedef enum units_action {
	UNITS_RESTART,
	UNITS_RELOAD,
	UNITS_TRY_RESTART,          /* restart if running, else nothing */
	UNITS_RELOAD_OR_RESTART,
	UNITS_START,
	UNITS_STOP,
	UNITS_RUN,                  /* units_run_transient */
	UNITS_WAIT,                 /* units_wait_unit */
} units_action;

typedef struct units_result {
	const char *unit;
	units_action action;
	int error;                  /* 0 ok; -EIO job failed or unit not active
	                               afterwards; -ETIMEDOUT; -ENOENT no such
	                               unit; -ECONNRESET bus connection lost;
	                               other -errno from the bus (-EBADR: the
	                               manager refused the job type, e.g.
	                               reload without ExecReload=) */
	char job_result[32];        /* "done", "failed", "timeout", "canceled",
	                               "dependency", "skipped"; "" when no job */
	char active_state[32];      /* after the job: "active", "failed", ... */
	char message[256];          /* for humans: what happened */
	int exit_status;            /* run, wait: the command's exit code, or
	                               128 + signal; -1 when none (not run,
	                               or not learned) */
} units_result;

/* r is valid during the call only. */
typedef void (*units_done_cb)(units_job *j, const units_result *r, void *userdata);

/* Connects at once (an error means no bus to talk to), attaches to event
 * and subscribes to the manager's job signals. */
int units_bus_open(units_bus **out, sd_event *event, bool user);
/* How long a unit must stay active, same invocation, after a start-like
 * job for the call to succeed (default 500 ms; 0: report at once). Capped
 * per call at half of the time left before its timeout. */
void units_bus_set_settle(units_bus *b, uint64_t usec);
/* Cancels every pending call (their callbacks do not run). NULL-safe; may
 * be called from a units callback. */
units_bus *units_bus_free(units_bus *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(units_bus *, units_bus_free);

/* Queues action on unit; timeout covers the job and the settling (0: 90 s).
 * On success returns 0 and, when out is not NULL, a handle valid until the
 * callback runs. A negative return means cb will not run (the bus could not
 * be (re)connected, or no memory). */
int units_run(units_bus *b, const char *unit, units_action a, uint64_t timeout_usec, units_done_cb cb,
	      void *userdata, units_job **out);
/* The callback will not run. NULL-safe; a no-op on a job whose callback is
 * running. The manager's job is not canceled. */
void units_job_cancel(units_job *j);

const char *units_action_to_string(units_action a);     /* "restart", ... */

/* ---- commands as transient units (transient.c) ---------------------------- */

/* Runs `/bin/sh -c command` as the transient service `name` (Type=oneshot,
 * Environment=env (NULL-terminated "K=V", may be NULL), TimeoutStartSec=
 * timeout (0: 90 s), CollectMode=inactive-or-failed, referenced by this
 * connection until it reports so its result can be read) and reports when
 * the command has ended: error 0 when it exited 0; -EIO for a non-zero exit
 * or a signal (exit_status and the message say which); -ETIMEDOUT when
 * the manager killed it at the timeout; -EEXIST when a unit of that name
 * is loaded already (units_wait_unit it); other errors as units_run's.
 * The unit outlives corrald: a restarted corrald waits for it by name. */
int units_run_transient(units_bus *b, const char *name, const char *command, char *const *env,
			uint64_t timeout_usec, units_done_cb cb, void *userdata, units_job **out);
/* The same, with the command's stdout written to stdout_path (absolute;
 * systemd >= 236: StandardOutputFile); NULL: the journal, as
 * units_run_transient. systemd writes an existing file from its start
 * without truncating it: the caller removes an old one before, and the
 * file when done with it. */
int units_run_transient_opts(units_bus *b, const char *name, const char *command, char *const *env,
			     uint64_t timeout_usec, const char *stdout_path, units_done_cb cb, void *userdata,
			     units_job **out);

/* Waits for the unit `name` started earlier (units_run_transient, maybe by
 * another process) to end, and reports as units_run_transient does;
 * -ENOENT (through the callback) when no such unit is loaded any more: it
 * ended and was collected, so its outcome is unknown. timeout 0: 90 s. */
int units_wait_unit(units_bus *b, const char *name, uint64_t timeout_usec, units_done_cb cb, void *userdata,
		    units_job **out);

/* A valid unit name "<prefix><text>.service" for any text: bytes outside
 * [A-Za-z0-9:_.-] become \xNN, as systemd-escape does, and the name is cut
 * to systemd's 255 bytes. New string, or NULL (ENOMEM). */
char *units_transient_name(const char *prefix, const char *text);
