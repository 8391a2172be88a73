/* rollout.c — the leader's rollout metrics (corral_rollout_*,
 * docs/metrics.md) from the last decision its rollout loop carried out:
 * the phase, the nodes per state and the time in the phase. Pure: no I/O
 * (now is the caller's). */
#include <time.h>

#include "metrics.h"
#include "rollout.h"

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

int metrics_write_rollout(metrics_buf *b, const rollout_output *out, time_t decided, time_t now, unsigned rounds,
			  unsigned rounds_failed) {
	const rollout_state *s;

	(void) metrics_counter(b, "corral_rollout_rounds_total", "Rollout rounds completed by this leader's loop.",
			       NULL, rounds);
	(void) metrics_counter(b, "corral_rollout_rounds_failed_total", "Of those, the rounds that ended with an error.",
			       NULL, rounds_failed);
	if (!out)
		return b->error;
	s = &out->state;
	(void) metrics_gauge(b, "corral_rollout_last_decision_timestamp_seconds",
			     "When the last rollout decision was carried out (Unix time).", NULL, (double) decided);
	if (!s->plan)
		return b->error;
	for (int p = 0; p < _ROLLOUT_PHASE_MAX; p++)
		(void) metrics_gauge(b, "corral_rollout_phase", "1 for the rollout's phase (upgrade/state), 0 for the others.",
				     L("plan", s->plan, "phase", rollout_phase_to_string(p)), s->phase == (rollout_phase) p);
	(void) metrics_gauge(b, "corral_rollout_generation", "The plan's generation (1, +1 per retry).", L("plan", s->plan),
			     (double) s->generation);
	(void) metrics_gauge(b, "corral_rollout_batch", "The batch under way (0: canary).", L("plan", s->plan), s->batch);
	(void) metrics_gauge(b, "corral_rollout_phase_seconds", "Seconds since the phase began.", L("plan", s->plan),
			     s->phase_since > 0 && now > s->phase_since ? (double) (now - s->phase_since) : 0);
	const struct {
		const char *state;
		unsigned n;
	} counts[] = {
		{ "done", out->n_done }, { "running", out->n_running }, { "failed", out->n_failed },
		{ "pending", out->n_pending }, { "skipped", out->n_skipped },
	};
	for (size_t i = 0; i < ELEMENTSOF(counts); i++)
		(void) metrics_gauge(b, "corral_rollout_nodes", "Nodes in the plan's scope per state.",
				     L("plan", s->plan, "state", counts[i].state), counts[i].n);
	return b->error;
}

#undef L
