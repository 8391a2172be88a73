/* daemon.h — corrald's state, one per process: what main.c's callbacks
 * share, and what metrics.c reports on /metrics. Internal to corrald. */
#pragma once

#include <systemd/sd-event.h>

#include "agent.h"
#include "cluster.h"
#include "conf.h"
#include "etcd.h"
#include "hooks.h"
#include "imds.h"
#include "leader.h"
#include "metrics.h"
#include "node.h"
#include "reconcile.h"
#include "units.h"
#include "upgrade.h"

typedef struct daemon {
	sd_event *event;
	conf *conf;
	etcd_client *etcd;
	node_reg *reg;
	int64_t lease;                  /* the registration's, as last handed on */
	leader *campaign;               /* after the first registration */
	uint64_t started;
	bool ready_sent;
	bool stopping;
	conf *reload_pending;           /* a new conf waiting for the old registration to end */
	sd_event_source *restart;       /* deferred re-registration after such a reload */
	node_state last_state;
	char last_error[512];

	bool once;                      /* --once: render, restart, exit */
	units_bus *bus;
	reconcile *rec;
	cluster *cluster;
	char *last_target;
	char last_apply_error[512];
	bool applied_once;
	char apply_status[64];
	agent *agent;                   /* node agent, once registered (load, wind-down) */
	imds_identity_fetch *identity_fetch;    /* instance_id: auto, before anything starts */
	imds_identity identity;         /* what IMDS said; instance_id NULL: not asked */
	char last_agent_error[512];
	upgrade_runner *upgrade;        /* in-place upgrades, once registered (upgrade.c) */
	hooks_runner *hooks;            /* tenant deployments' hooks, once registered (hooks.c) */
	struct daemon_pin *pin;         /* staged config rollouts (pin.c) */
	char *image;                    /* what upgrade.image_command printed last */

	/* What /metrics reports (docs/metrics.md); counted here, where the
	 * reports arrive, so no module is asked for more than it says. */
	metrics_server *metrics;        /* NULL: metrics_listen unset, or its bind failed */
	uint64_t applies_ok, applies_failed;
	uint64_t last_apply_sec, last_apply_ok_sec;     /* Unix time, 0: none yet */
	bool last_apply_failed;
	char *applied_config;           /* the config id in place, NULL: none */
	uint64_t elections;
	uint64_t agent_load_writes, agent_failures, agent_interruptions;
} daemon_t;

/* The node record as this daemon writes it; record.c. */
node_info daemon_node_info(const daemon_t *d);
/* Starts the upgrade runner when the node is registered and the config
 * has an upgrade section (a no-op otherwise, or when it runs); stops it. */
void daemon_upgrade_start(daemon_t *d);
void daemon_upgrade_stop(daemon_t *d);
/* The same for the deployment hook runner and a deployments section. */
void daemon_hooks_start(daemon_t *d);
void daemon_hooks_stop(daemon_t *d);

/* Staged config rollouts (pin.c): follows this node's order, pins the
 * reconciler to a config order's snapshot and reports its progress. Start
 * once the reconciler exists (no registration, upgrade section or bus
 * needed); report: every reconcile report, from on_report. */
typedef struct daemon_pin daemon_pin;
void daemon_pin_start(daemon_t *d);
void daemon_pin_stop(daemon_t *d);
void daemon_pin_report(daemon_t *d, const reconcile_report *rep);

/* Starts, restarts or stops the /metrics server so it matches listen
 * (NULL: off); metrics.c. */
void daemon_update_metrics(daemon_t *d, const char *listen);
