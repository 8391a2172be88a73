/* resume.c — the runner's pure choices (upgrade.h): what an order asks of
 * this node given the progress it last wrote, and the names of the
 * transient units its steps run as. No I/O. */
#include <inttypes.h>

#include "upgrade.h"

bool upgrade_order_config_only(const rollout_order *o) {
	return o && !o->target.image && !o->from.image && (o->target.config || o->from.config);
}

void upgrade_decide_start(const rollout_order *o, const rollout_progress *p, upgrade_start *out) {
	*out = (upgrade_start) { .kind = UPGRADE_START_NONE };

	if (!o || !o->plan) {
		out->why = "no order";
		return;
	}
	if (upgrade_order_config_only(o)) {
		/* the progress is the pin follower's (corrald), not ours */
		out->why = "config only: no steps to run";
		return;
	}
	if (rollout_order_replaces(o)) {
		out->why = "the host is replaced: nothing runs in place";
		return;
	}
	bool same_plan = p && p->plan && streq(p->plan, o->plan);
	if (same_plan && p->generation > o->generation) {
		out->why = "stale: an older generation than the progress";
		return;
	}
	bool same_gen = same_plan && p->generation == o->generation;
	if (same_gen && p->verb == o->verb) {
		if (p->state != ROLLOUT_STEP_RUNNING) {
			out->why = p->state == ROLLOUT_STEP_DONE ? "done already" : "failed already";
			return;
		}
		out->kind = UPGRADE_START_RESUME;
		out->step = p->step < 0 ? 0 : p->step;
		out->carry = true;
		return;
	}
	out->kind = UPGRADE_START_FRESH;
	out->carry = same_gen;
}

/* The node id and plan id are cut (escaped) to 150 bytes, so the
 * generation, verb and index, which tell a plan's units apart, always fit
 * in systemd's 255. The node id is in the name because one manager may
 * serve several corrald (containers, the end-to-end test): their units
 * must not collide. */
char *upgrade_unit_name(const char *node, const char *plan, int64_t generation, rollout_verb verb, bool undo,
			int index) {
	_cleanup_free_ char *both = NULL, *esc = NULL, *text = NULL;
	const char *v = rollout_verb_to_string(verb);

	if (asprintf(&both, "%s-%s", node ? node : "", plan) < 0)
		return NULL;
	esc = units_transient_name("", both);
	if (!esc)
		return NULL;
	size_t n = strlen(esc) - strlen(".service");
	if (asprintf(&text, "corral-upgrade-%.*s-%" PRId64 "-%s-%s%d.service", (int) (n > 150 ? 150 : n), esc,
		     generation, v ? v : "unknown", undo ? "undo-" : "", index) < 0)
		return NULL;
	return TAKE_PTR(text);
}
