/* decide.c — rollout_decide(): placeholder, completed next commit. */
#include <errno.h>
#include <string.h>

#include "rollout-internal.h"

int rollout_budget(int n, int healthy, int in_flight, int max_unavailable, int min_healthy_percent) {
	int must_stay = (int) ((int64_t) min_healthy_percent * n / 100);
	int k = max_unavailable - in_flight;
	if (healthy - must_stay < k)
		k = healthy - must_stay;
	if (healthy == n && in_flight == 0 && n > 0 && k < 1)
		k = 1;
	return k < 0 ? 0 : k;
}

bool rollout_node_eligible(const rollout_plan *p, const rollout_node *n, const char **why) {
	const char *w = NULL;

	if (!rollout_plan_covers(p, n->pool))
		w = "not in pools";
	else if (!n->registered)
		w = "not registered";
	else if (n->held)
		w = "held";
	else if (n->launching)
		w = "launching";
	else if (!n->image)
		w = "no upgrade config";
	else if (rollout_target_matches(&p->target, n->image))
		w = "already on target";
	if (why)
		*why = w;
	return !w;
}

int rollout_decide(const rollout_input *in, rollout_output *out) {
	(void) in;
	memset(out, 0, sizeof *out);
	return 0;
}

void rollout_output_done(rollout_output *out) {
	rollout_state_done(&out->state);
	for (size_t i = 0; i < out->n_actions; i++)
		rollout_order_done(&out->actions[i].order);
	free(out->actions);
	json_decref(out->history);
	free(out->nodes);
	memset(out, 0, sizeof *out);
}
