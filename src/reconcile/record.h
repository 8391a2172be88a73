/* record.h — what the reconciler knows across applies, and the status
 * record it publishes (internal to src/reconcile/; reconcile.h documents
 * the record's fields). Plain JSON bookkeeping: no I/O. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "conf.h"
#include "units.h"

typedef struct reconcile_records {
	json_t *files;                  /* name -> {path, digest, config_id, error} */
	json_t *units;                  /* unit -> {action, result, active_state, ok, message} */
	json_t *verdicts;               /* name -> {config_id, digest, error}: refused bytes */
} reconcile_records;

int reconcile_records_init(reconcile_records *rec);
void reconcile_records_done(reconcile_records *rec);

/* A check command that refused these bytes, or a unit that failed on them,
 * for this config id: its error (borrowed), else NULL. */
const char *reconcile_verdict_get(const reconcile_records *rec, const char *name, const char *config_id,
				  const char *bytes, size_t len);
void reconcile_verdict_set(reconcile_records *rec, const char *name, const char *config_id, const char *bytes,
			   size_t len, const char *error);
/* Every check and unit is asked again (reconcile_retry_now). */
void reconcile_verdicts_forget(reconcile_records *rec);

/* The file now holds bytes (NULL: none) of config_id; error NULL or "". */
void reconcile_record_file(reconcile_records *rec, const conf_file *cf, const char *config_id, const void *bytes,
			   size_t len, const char *error);
/* The file failed and keeps what is on disk (old, NULL: nothing). */
void reconcile_record_file_kept(reconcile_records *rec, const conf_file *cf, const void *old, size_t old_len,
				const char *error);
/* The file's previous bytes are back: they are the last good apply's. */
void reconcile_record_file_undone(reconcile_records *rec, const conf_file *cf, const void *old, size_t old_len);
void reconcile_record_unit(reconcile_records *rec, const units_result *res);

typedef struct reconcile_status_in {
	const char *node_id, *target, *applied;
	const char *pinned;             /* the snapshot this node is pinned to (target), NULL: `current` */
	int64_t revision;
	bool ok;
	const char *error;
	unsigned retry_attempt;
	uint64_t retry_usec;            /* 0: no retry pending */
} reconcile_status_in;

/* The status record (new reference; NULL when out of memory). */
json_t *reconcile_status_build(const reconcile_records *rec, const reconcile_status_in *in);
