/* deployment.c — the leader's tenant deployment metrics
 * (corral_deployment*, docs/metrics.md) from the last decision its
 * lifecycle loop carried out: deployments per state, the unplaced, the
 * failing, the outstanding orders, and the loop's round and notice
 * counters. Pure: no I/O. */
#include "deployment.h"
#include "metrics.h"

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

int metrics_write_deployments(metrics_buf *b, const deployment_output *out, unsigned rounds, unsigned rounds_failed,
			      unsigned notices_failed) {
	(void) metrics_counter(b, "corral_deployment_rounds_total", "Lifecycle rounds completed by this leader's loop.",
			       NULL, rounds);
	(void) metrics_counter(b, "corral_deployment_rounds_failed_total",
			       "Of those, the rounds that ended with an error.", NULL, rounds_failed);
	(void) metrics_counter(b, "corral_deployment_notices_failed_total",
			       "Notices whose command failed (logged, never sent again).", NULL, notices_failed);
	if (!out)
		return b->error;
	for (int s = 0; s < _DEPLOYMENT_STATE_MAX; s++)
		(void) metrics_gauge(b, "corral_deployments", "Deployments per state after the last decision.",
				     L("state", deployment_state_to_string(s)), out->by_state[s]);
	(void) metrics_gauge(b, "corral_deployments_unplaced",
			     "Pending deployments without a host that a new host could take.", NULL, out->unplaced);
	(void) metrics_gauge(b, "corral_deployments_too_big", "Pending deployments no empty host could take.", NULL,
			     out->too_big);
	(void) metrics_gauge(b, "corral_deployments_failing", "Deployments whose last hook failed (retrying).", NULL,
			     out->failing);
	(void) metrics_gauge(b, "corral_deployment_orders", "Hook orders outstanding on the hosts.", NULL, out->orders);
	return b->error;
}

#undef L
