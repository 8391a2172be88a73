/* deployments.c — the lifecycle loop's metrics (docs/metrics.md): its
 * rounds, the deployments per state after the last decision, and what
 * needs an operator's eye (failing hooks, unplaced, too big, failed
 * notices). */
#include "deployment.h"
#include "metrics.h"

#define L(...) ((const char *const[]) { __VA_ARGS__, NULL })

int metrics_write_deployments(metrics_buf *b, const deployment_output *out, unsigned rounds, unsigned rounds_failed,
			      unsigned notices_failed) {
	(void) metrics_counter(b, "corral_deployment_rounds_total", "Lifecycle rounds completed by this leader's loop.",
			       NULL, rounds);
	(void) metrics_counter(b, "corral_deployment_rounds_failed_total", "Of those, the rounds that ended with an error.",
			       NULL, rounds_failed);
	(void) metrics_counter(b, "corral_deployment_notices_failed_total",
			       "Notices whose command failed (recorded, not sent again).", NULL, notices_failed);
	if (!out)
		return b->error;
	for (int s = 0; s < _DEPLOYMENT_STATE_MAX; s++)
		(void) metrics_gauge(b, "corral_deployments", "Tenant deployments per state after the last decision.",
				     L("state", deployment_state_to_string(s)), out->by_state[s]);
	(void) metrics_gauge(b, "corral_deployments_failing", "Deployments whose last hook failed (retrying).", NULL,
			     out->failing);
	(void) metrics_gauge(b, "corral_deployments_unplaced", "Pending deployments no host has room for (a new host could).",
			     NULL, out->unplaced);
	(void) metrics_gauge(b, "corral_deployments_too_big", "Pending deployments no empty host could take.", NULL,
			     out->too_big);
	(void) metrics_gauge(b, "corral_deployment_orders", "Hook orders outstanding.", NULL, out->orders);
	return b->error;
}

#undef L
