/* reconcile-internal.h — what the two halves of the reconciler share.
 * reconcile.c applies one snapshot (files, units, status record);
 * follow.c decides when to apply and what to read (the watch on
 * `current`, debounce, retries) and owns the object's life. follow.c calls
 * into reconcile.c, never the other way round: an apply that is over hands
 * its next step back through r->schedule_next. Not installed. */
#pragma once

#include "agree.h"
#include "backoff.h"
#include "child.h"
#include "reconcile.h"
#include "record.h"

typedef struct file_job {
	const conf_file *cf;
	bool present;                   /* the snapshot has this file */
	bool changed;                   /* new bytes differ from the disk's */
	bool committed;                 /* new bytes are in place */
	bool failed;                    /* render or check failed */
	char *bytes;                    /* rendered */
	size_t len;
	char *old;                      /* the disk's bytes before (for undo) */
	size_t old_len;
	bool old_exists;
	char *tmp;                      /* staged */
	char error[512];
} file_job;

typedef enum phase {
	PHASE_IDLE,
	PHASE_READ,
	PHASE_FILES,
	PHASE_UNITS,
} phase;

struct reconcile {
	sd_event *event;
	etcd_client *etcd;
	units_bus *bus;
	conf *conf;                     /* our reference: the one the next apply uses */
	bool once;
	reconcile_cb cb;
	void *userdata;

	char *current_key, *status_key;
	etcd_watch *watch;
	sd_event_source *timer;
	sd_event_source *trim;          /* malloc_trim() after an apply */
	agree_read_op *read;
	child_run *child;
	units_job *ujob;
	etcd_call *put;
	/* follow.c: set the timer for what reconcile_next_step() decided
	 * (a pointer, so that reconcile.c does not call into follow.c). */
	void (*schedule_next)(reconcile *r, reconcile_next next);
	backoff retry;                  /* etcd failures */
	backoff write_retry;            /* faults writing files */

	phase phase;
	bool dirty;                     /* a change arrived: apply again */
	uint64_t dirty_since;           /* CLOCK_MONOTONIC, for max_wait */
	bool started, stopped;
	bool retry_soon;                /* etcd failed us: back off, read again */
	bool fault;                     /* this apply could not write a file: try again */
	bool retry_now;                 /* reconcile_retry_now() during an apply */
	uint64_t retry_usec;            /* the write retry scheduled, 0: none */
	int64_t lease;
	/* What the watch last said `current` is, not yet applied: the next
	 * apply reads that snapshot alone, at that revision (agree_read_at). */
	bool watch_fed;
	char *watched_id;               /* NULL: `current` was deleted */
	size_t watched_len;
	int64_t watched_rev;
	int64_t read_rev;               /* the revision the last snapshot was read at */

	/* reconcile_pin(): the snapshot to render instead of `current`,
	 * and its document once read (a pinned id never changes) */
	char *pinned;
	char *pin_files_id;
	json_t *pin_files;
	uint64_t pin_serial;            /* reconcile_pin() calls */

	/* the apply under way */
	bool apply_pinned;              /* it renders r->pinned, not `current` */
	uint64_t apply_pin_serial;      /* pin_serial when it began */
	char *target;
	int64_t revision;
	json_t *files;                  /* the snapshot's document */
	conf *jobs_conf;                /* our reference to the conf whose files the
	                                   jobs (and plan) point into: a reload may
	                                   swap r->conf meanwhile */
	file_job *jobs;
	size_t n_jobs, next;
	reconcile_unit_plan plan;       /* reconcile_plan_units() */
	size_t next_unit;
	bool undoing;                   /* restarting a unit on its old files */
	bool changed;
	char error[512];

	/* what is known across applies */
	char *applied;
	reconcile_records rec;          /* files, units, verdicts (record.h) */
	json_t *status;                 /* last record */
	/* The record (without its "updated" time) and lease of the last
	 * status write etcd accepted, and of the one in flight: a record
	 * that says nothing new is not written again. */
	char *status_written, *status_sending;
	int64_t status_written_lease, status_sending_lease;
};

/* reconcile.c */
/* Keeps the first error of this apply in full, counts the rest. */
void reconcile_set_error(reconcile *r, const char *fmt, ...) _printf_(2, 3);
/* The apply is over: status, the next step (r->schedule_next), the callback
 * (which may free r when once). */
void reconcile_apply_finish(reconcile *r);
/* Renders, checks, writes the files of r->files for r->target, then acts on
 * the units; ends in reconcile_apply_finish(). */
void reconcile_apply_files(reconcile *r);
/* Writes the status record unless etcd holds the same on the same lease. */
void reconcile_status_publish(reconcile *r);
void reconcile_jobs_free(reconcile *r);
