/* names.c — the rollout enums as their JSON names and back. */
#include <errno.h>
#include <string.h>

#include "names.h"
#include "rollout.h"

static const char *const phase_names[_ROLLOUT_PHASE_MAX] = {
	[ROLLOUT_PENDING] = "pending",         [ROLLOUT_PREPARING] = "preparing",
	[ROLLOUT_CANARY] = "canary",           [ROLLOUT_CANARY_BAKE] = "canary_bake",
	[ROLLOUT_PAUSED] = "paused",           [ROLLOUT_ROLLING] = "rolling",
	[ROLLOUT_FINAL_BAKE] = "final_bake",   [ROLLOUT_SUCCEEDED] = "succeeded",
	[ROLLOUT_FAILED] = "failed",           [ROLLOUT_ROLLING_BACK] = "rolling_back",
	[ROLLOUT_ROLLED_BACK] = "rolled_back", [ROLLOUT_CANCELLED] = "cancelled",
};

static const char *const verb_names[_ROLLOUT_VERB_MAX] = {
	[ROLLOUT_PREPARE] = "prepare", [ROLLOUT_UPGRADE] = "upgrade",
	[ROLLOUT_ROLLBACK] = "rollback", [ROLLOUT_FINISH] = "finish",
};

static const char *const role_names[_ROLLOUT_ROLE_MAX] = {
	[ROLLOUT_ROLE_NONE] = "none", [ROLLOUT_ROLE_CANARY] = "canary", [ROLLOUT_ROLE_BATCH] = "batch",
};

static const char *const step_state_names[_ROLLOUT_STEP_STATE_MAX] = {
	[ROLLOUT_STEP_RUNNING] = "running", [ROLLOUT_STEP_DONE] = "done", [ROLLOUT_STEP_FAILED] = "failed",
};

static const char *const gate_names[_ROLLOUT_GATE_MAX] = {
	[ROLLOUT_GATE_NONE] = "none", [ROLLOUT_GATE_PASS] = "pass",
	[ROLLOUT_GATE_FAIL] = "fail", [ROLLOUT_GATE_INCONCLUSIVE] = "inconclusive",
};

static const char *const pause_names[_ROLLOUT_PAUSE_MAX] = {
	[ROLLOUT_PAUSE_NONE] = "none", [ROLLOUT_PAUSE_OPERATOR] = "operator",
	[ROLLOUT_PAUSE_PROMOTION] = "promotion", [ROLLOUT_PAUSE_GATE] = "gate",
};

static const char *const strategy_names[_ROLLOUT_STRATEGY_MAX] = {
	[ROLLOUT_STRATEGY_AUTO] = "auto", [ROLLOUT_STRATEGY_IN_PLACE] = "in_place",
	[ROLLOUT_STRATEGY_REPLACE] = "replace",
};

NAMES_FUNCS(rollout_phase, rollout_phase, phase_names)
NAMES_FUNCS(rollout_verb, rollout_verb, verb_names)
NAMES_FUNCS(rollout_role, rollout_role, role_names)
NAMES_FUNCS(rollout_step_state, rollout_step_state, step_state_names)
NAMES_FUNCS(rollout_gate, rollout_gate, gate_names)
NAMES_FUNCS(rollout_pause, rollout_pause, pause_names)
NAMES_FUNCS(rollout_strategy, rollout_strategy, strategy_names)

bool rollout_phase_terminal(rollout_phase p) {
	return p == ROLLOUT_SUCCEEDED || p == ROLLOUT_FAILED || p == ROLLOUT_ROLLED_BACK || p == ROLLOUT_CANCELLED;
}
