/* agent.h — the node side of the autoscaler (docs/scale.md "Node agent"):
 * this node's load record, the wind-down hook and spot interruption
 * notices, all on the daemon's sd-event loop.
 *
 *   <prefix>/load/<node-id> = {"jobs": N, "capacity": M, "memory": F,
 *                              "updated": "RFC 3339",
 *                              "ready_to_stop": true,          (draining, 0 jobs)
 *                              "interruption": {"action", "time"}}   (spot notice)
 *
 * Load: every load_interval the agent runs load_command (child.h) and
 * checks what it prints; a failure or malformed output is reported and the
 * last good value kept. Without load_command the application writes the
 * record (`corralctl load set`); the agent then re-reads it every interval
 * and writes it back with its own fields only while it has some to add.
 * The record rides on the lease given (agent_set_lease), so it vanishes
 * with the node; 0 = no lease. A put refused because that lease is gone is
 * not reported: the owner of the lease hands over the new one, and the
 * record is written again on it.
 *
 * Wind-down: with an instance id, the agent follows
 * <prefix>/scale/hosts/<instance-id>. When the record's state becomes
 * "draining" it runs wind_down_command once; while draining, a record with
 * 0 jobs carries "ready_to_stop": true. Back to "ready" (undrained) clears
 * it and re-arms the hook for the next drain.
 *
 * Interruption: with interruption_watch, the agent polls IMDSv2
 * (PUT /latest/api/token, GET /latest/meta-data/spot/instance-action) every
 * interruption_interval; a notice goes into the record at once.
 *
 * The agent never logs: what happens reaches the report callback, with a
 * message for humans (no secrets: the IMDS token is never in one). Strings
 * in the options are copied. agent_free() may not be called from inside the
 * report callback. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "etcd.h"
#include "macro.h"

typedef struct agent agent;

typedef enum agent_report_kind {
	AGENT_LOAD_FAILED,              /* command failed or printed garbage: last good kept */
	AGENT_LOAD_WRITTEN,             /* the record was put (tests wait on it) */
	AGENT_WRITE_FAILED,             /* etcd put or read failed; tried again */
	AGENT_WIND_DOWN_STARTED,        /* the host turned draining: hook started */
	AGENT_WIND_DOWN_DONE,           /* the hook exited 0 */
	AGENT_WIND_DOWN_FAILED,         /* the hook failed (message says how) */
	AGENT_UNDRAINED,                /* back to ready: ready_to_stop cleared */
	AGENT_READY_TO_STOP,            /* draining with 0 jobs: reported */
	AGENT_WATCH_FAILED,             /* reading/watching the host record failed */
	AGENT_INTERRUPTION,             /* a spot interruption notice arrived */
	AGENT_IMDS_FAILED,              /* the metadata service did not answer */
} agent_report_kind;

typedef void (*agent_report_cb)(agent *a, agent_report_kind kind, const char *message, void *userdata);

typedef struct agent_options {
	const char *prefix;             /* no trailing '/' */
	const char *node_id;
	const char *load_command;       /* NULL: the application writes the record */
	uint64_t load_interval_usec;    /* 0: 10 s */
	uint64_t command_timeout_usec;  /* load and wind-down commands; 0: 30 s */
	const char *wind_down_command;  /* NULL: none (ready_to_stop still reported) */
	const char *instance_id;        /* NULL: no wind-down watch */
	bool interruption_watch;
	const char *imds_endpoint;      /* NULL: http://169.254.169.254 */
	uint64_t interruption_interval_usec;   /* 0: 5 s */
} agent_options;

/* Starts at once: the first load run, the host record read and the first
 * IMDS poll are queued. 0 or -errno (-EINVAL: no prefix or node id). */
int agent_new(agent **out, sd_event *event, etcd_client *etcd, const agent_options *o, int64_t lease,
	      agent_report_cb cb, void *userdata);
/* A new registration lease: the record is written again on it. */
void agent_set_lease(agent *a, int64_t lease);
/* The last good load (borrowed {"jobs","capacity","memory",...}; NULL
 * before the first), and whether the host is draining / ready to stop. */
const json_t *agent_load(const agent *a);
bool agent_draining(const agent *a);
bool agent_ready_to_stop(const agent *a);
/* Stops everything (kills a running command); the record stays until its
 * lease goes. NULL-safe. */
agent *agent_free(agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent *, agent_free);
