/* metrics.c — what corrald serves on /metrics (docs/metrics.md): this
 * node's registration, config, agent and load on every node, the scaler's
 * last decision on the leader; and the server's start, restart and stop
 * when metrics_listen changes. */
#include "daemon.h"
#include "log.h"
#include "lifecycle.h"
#include "rollout-loop.h"
#include "scaler.h"

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static int collect_metrics(metrics_buf *b, void *userdata) {
	daemon_t *d = userdata;
	const conf *cf = d->conf;
	bool registered = d->reg && node_reg_state(d->reg) == NODE_REGISTERED;
	bool leading = d->campaign && leader_is_leader(d->campaign);

	metrics_gauge(b, "corral_up", "1 while corrald runs and answers.", NULL, 1);
	metrics_gauge(b, "corral_build_info", "corrald's version.", L("version", CORRAL_VERSION), 1);
	metrics_gauge(b, "corral_node_info", "This node's identity.",
		      L("cluster", cf->cluster, "node", cf->node_id, "pool", cf->pool ?: ""), 1);
	metrics_gauge(b, "corral_start_time_seconds", "When corrald started (Unix time).", NULL, (double) d->started);
	metrics_gauge(b, "corral_node_registered", "1 while the node key is registered in etcd.", NULL, registered);
	metrics_gauge(b, "corral_leader", "1 while this node is the elected leader.", NULL, leading);
	metrics_counter(b, "corral_leader_elections_total", "Times this node became the leader.", NULL,
			(double) d->elections);

	if (d->last_target)
		metrics_gauge(b, "corral_config_target_info", "The cluster config named by <prefix>/current.",
			      L("config", d->last_target), 1);
	if (d->applied_config)
		metrics_gauge(b, "corral_config_applied_info", "The cluster config in place on this node.",
			      L("config", d->applied_config), 1);
	metrics_gauge(b, "corral_config_in_place", "1 when the last apply put everything of the target in place.",
		      NULL, d->applies_ok + d->applies_failed > 0 && !d->last_apply_failed);
	metrics_counter(b, "corral_config_applies_total", "Apply attempts by result.", L("result", "ok"),
			(double) d->applies_ok);
	metrics_sample(b, "corral_config_applies_total", L("result", "failed"), (double) d->applies_failed);
	if (d->last_apply_sec)
		metrics_gauge(b, "corral_config_last_apply_timestamp_seconds", "When the last apply ended (Unix time).",
			      NULL, (double) d->last_apply_sec);
	if (d->last_apply_ok_sec)
		metrics_gauge(b, "corral_config_last_success_timestamp_seconds",
			      "When an apply last succeeded (Unix time).", NULL, (double) d->last_apply_ok_sec);

	metrics_gauge(b, "corral_agent_running", "1 while the node agent runs (load, wind-down, interruptions).", NULL,
		      d->agent != NULL);
	metrics_counter(b, "corral_agent_load_writes_total", "Load records the node agent wrote.", NULL,
			(double) d->agent_load_writes);
	metrics_counter(b, "corral_agent_failures_total",
			"Node agent failures (load command, etcd writes, watches, IMDS, wind-down hook).", NULL,
			(double) d->agent_failures);
	metrics_counter(b, "corral_agent_interruption_notices_total", "Spot interruption notices seen.", NULL,
			(double) d->agent_interruptions);
	const json_t *load = agent_load(d->agent);
	if (load) {
		metrics_gauge(b, "corral_load_jobs", "Jobs running on this node, as last reported.", NULL,
			      json_number_value(json_object_get(load, "jobs")));
		metrics_gauge(b, "corral_load_capacity", "Jobs this node can run, as last reported.", NULL,
			      json_number_value(json_object_get(load, "capacity")));
		metrics_gauge(b, "corral_load_memory_ratio", "Memory used on this node (0..1), as last reported.", NULL,
			      json_number_value(json_object_get(load, "memory")));
	}
	if (d->agent) {
		metrics_gauge(b, "corral_host_draining", "1 while the leader has this host draining.", NULL,
			      agent_draining(d->agent));
		metrics_gauge(b, "corral_host_ready_to_stop", "1 once draining, wound down and without jobs.", NULL,
			      agent_ready_to_stop(d->agent));
	}

	/* Whether the leader can scale (scale/status): on the leader, with or
	 * without a scaler running. */
	const scale_status *st = cluster_scaling(d->cluster);
	if (st) {
		metrics_gauge(b, "corral_scaling_ok",
			      "1 while the leader can scale (or has no policy to follow), 0 while scaling is stopped.",
			      NULL, scale_status_working(st->code));
		metrics_gauge(b, "corral_scaling_status",
			      "The leader's scaling status: 1 for its code (ok, no_policy, no_region, ...).",
			      L("code", scale_status_code_to_string(st->code)), 1);
		metrics_gauge(b, "corral_scaling_status_since_timestamp_seconds",
			      "Since when the scaling status has been what it is (Unix time).", NULL, (double) st->since);
	}
	/* The scaling metrics: only where a scaler runs, i.e. on the leader. */
	const scaler *s = cluster_scaler(d->cluster);
	if (s)
		metrics_write_scale(b, scaler_last_metrics(s), scaler_cycles(s), scaler_cycles_failed(s));
	/* The rollout metrics: on the leader, whose rollout loop runs. */
	const rollout_loop *rl = cluster_rollout(d->cluster);
	if (rl)
		metrics_write_rollout(b, rollout_loop_last(rl), rollout_loop_last_time(rl), time(NULL),
				      rollout_loop_rounds(rl), rollout_loop_rounds_failed(rl));
	/* The deployment lifecycle's: on the leader too. */
	const lifecycle_loop *ll = cluster_lifecycle(d->cluster);
	if (ll)
		metrics_write_deployments(b, lifecycle_loop_last(ll), lifecycle_loop_rounds(ll),
					  lifecycle_loop_rounds_failed(ll), lifecycle_loop_notices_failed(ll));
	return b->error;
}

#undef L

/* A bind failure leaves corrald running without metrics: they are worth
 * less than the node's config and registration. A reload with the same
 * address keeps the running server (and its port). */
void daemon_update_metrics(daemon_t *d, const char *listen) {
	char err[300];
	int r;

	if (d->metrics && listen && streq(metrics_server_listen(d->metrics), listen))
		return;
	if (d->metrics)
		log_info("metrics: stopped serving on %s", metrics_server_listen(d->metrics));
	d->metrics = metrics_server_free(d->metrics);
	if (!listen || d->once)
		return;
	r = metrics_server_new(&d->metrics, d->event, listen, collect_metrics, d, err, sizeof err);
	if (r < 0) {
		log_error("%s; running without metrics", err);
		return;
	}
	log_info("metrics: serving http://%s/metrics (port %u)", listen, (unsigned) metrics_server_port(d->metrics));
}
