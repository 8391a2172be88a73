/* units-internal.h — what units.c (jobs on existing units) and transient.c
 * (commands run as transient units, waiting on a unit by name) share: the
 * bus, the job and its life cycle. A job is made by units_job_new(), sent
 * by units_job_call(), reports exactly once through units_job_finish() (or
 * units_job_fail_soon() where one event concerns many jobs). */
#pragma once

#include <systemd/sd-bus.h>

#include "units.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"
#define SD_UNIT "org.freedesktop.systemd1.Unit"
#define SD_SERVICE "org.freedesktop.systemd1.Service"
#define SD_UNIT_PREFIX "/org/freedesktop/systemd1/unit"
#define UNITS_EARLY_MAX 64

typedef enum job_state {
	JOB_CALLING,            /* the queueing call is in flight */
	JOB_WAITING,            /* queued; waiting for JobRemoved */
	JOB_READING,            /* reading the unit's state */
	JOB_POLLING,            /* waiting to read it again */
	JOB_FAILING,            /* outcome known; the timer reports it */
} job_state;

struct units_job {
	units_bus *bus;
	units_job *prev, *next;
	units_action action;
	job_state state;
	char *unit;
	char *unit_path;
	char *job_path;
	sd_bus_slot *slot;              /* pending call */
	sd_event_source *timer;         /* the deadline (or "report now") */
	sd_event_source *poll;          /* next state read */
	uint64_t deadline;
	uint64_t timeout_usec;
	uint64_t poll_usec;
	bool settling;                  /* saw it active; watching it stay so */
	uint64_t settle_until;
	uint8_t invocation[16];         /* InvocationID when first seen active */
	size_t invocation_len;
	bool finishing;                 /* in its callback: cancel is a no-op */
	units_result res;
	units_done_cb cb;
	void *userdata;
	/* transient.c: what follows JobRemoved (NULL: read the unit's state
	 * and settle, as units_run does); and whether we hold a reference on
	 * the unit (AddRef / Ref) to drop when done. */
	void (*removed)(units_job *j);
	bool ref_held;
};

/* A JobRemoved that came before the reply naming its job. */
typedef struct early_removal {
	char *path;
	char result[32];
} early_removal;

struct units_bus {
	sd_event *event;
	bool user;
	sd_bus *bus;
	sd_bus_slot *match_slot, *filter_slot;
	units_job *jobs;
	early_removal early[UNITS_EARLY_MAX];
	size_t n_early;
	uint64_t settle_usec;
};

uint64_t units_now(units_bus *b);
void units_copy_str(char *dst, size_t size, const char *src);
/* The JobRemoved result seen before the reply naming path, or NULL. */
const char *units_early_find(units_bus *b, const char *path);
void units_early_prune(units_bus *b);
/* (Re)connects when the connection is gone. */
int units_bus_connect(units_bus *b);
int units_bus_errno(const sd_bus_error *e);
bool units_bus_lost(sd_bus_message *m);

/* A job with its deadline timer, not yet on the bus. */
int units_job_new(units_bus *b, const char *unit, units_action a, uint64_t timeout_usec, units_done_cb cb,
		  void *userdata, units_job **ret);
/* Sends m for j (reply NULL: a reply naming a job, then JobRemoved) and
 * puts j on the bus's list in JOB_CALLING: JobRemoved signals seen from
 * now on are kept until j learns its job's path. */
int units_job_call(units_bus *b, units_job *j, sd_bus_message *m, sd_bus_message_handler_t reply);
/* j's job is path: wait for its JobRemoved (at once if already seen). */
void units_job_queued(units_job *j, const char *path);
/* An error reply: reports it for j and returns true. */
bool units_job_reply_error(units_job *j, sd_bus_message *m);
void units_job_free(units_job *j);
/* Drops the reference j holds on its unit (AddRef, RefUnit); a no-op without. */
void units_job_drop_ref(units_job *j);
_printf_(3, 4) void units_job_finish(units_job *j, int error, const char *fmt, ...);
_printf_(3, 4) void units_job_fail_soon(units_job *j, int error, const char *fmt, ...);
