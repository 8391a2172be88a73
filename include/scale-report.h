/* scale-report.h — what one scaling cycle saw, decided and did, typed: the
 * leader stores it as <prefix>/scale/metrics (scale_report_to_json) and
 * exports it on /metrics (metrics_write_scale, metrics.h) from these
 * structs, never from the JSON text. Pure. docs/metrics.md has the
 * document's fields. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "scale-observe.h"
#include "scale.h"

typedef struct scale_report {
	time_t time;                    /* the decision's now */
	int64_t revision;               /* the etcd revision it read */
	const scale_records *records;   /* inputs: maintenance, stop, prices, reservations, ... */
	const scale_observed *observed; /* inputs: hosts, queues; consistency counts */
	const scale_output *out;        /* per pool metrics, actions */
	const char *const *launched;    /* instance ids launched or adopted */
	size_t n_launched;
	const char *const *errors;      /* what went wrong, as text */
	size_t n_errors;
	int records_by_state[_SCALE_STATE_MAX]; /* host records after the cycle's changes */
} scale_report;

/* The scale/metrics document: {"time", "revision", "pools", "actions",
 * "launched", "errors", "inputs", "consistency"}. New reference or NULL. */
json_t *scale_report_to_json(const scale_report *r);
