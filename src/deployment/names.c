/* names.c — the deployment enums as their JSON names (deployment.h). */
#include "deployment.h"
#include "names.h"

static const char *const states[_DEPLOYMENT_STATE_MAX] = {
	[DEPLOYMENT_PENDING] = "pending",         [DEPLOYMENT_ACTIVE] = "active",
	[DEPLOYMENT_MAINTENANCE] = "maintenance", [DEPLOYMENT_EXPIRED] = "expired",
	[DEPLOYMENT_REMOVED] = "removed",
};

static const char *const hooks[_DEPLOYMENT_HOOK_MAX] = {
	[DEPLOYMENT_HOOK_DEPLOY] = "deploy",
	[DEPLOYMENT_HOOK_MAINTENANCE_ON] = "maintenance_on",
	[DEPLOYMENT_HOOK_MAINTENANCE_OFF] = "maintenance_off",
	[DEPLOYMENT_HOOK_BACKUP] = "backup",
	[DEPLOYMENT_HOOK_REMOVE] = "remove",
};

static const char *const removals[_DEPLOYMENT_REMOVAL_MAX] = {
	[DEPLOYMENT_REMOVAL_NONE] = "",
	[DEPLOYMENT_REMOVAL_EXPIRED] = "expired",
	[DEPLOYMENT_REMOVAL_INACTIVE] = "inactive",
	[DEPLOYMENT_REMOVAL_OPERATOR] = "operator",
};

static const char *const reports[_DEPLOYMENT_REPORT_MAX] = {
	[DEPLOYMENT_REPORT_RUNNING] = "running",
	[DEPLOYMENT_REPORT_DONE] = "done",
	[DEPLOYMENT_REPORT_FAILED] = "failed",
};

NAMES_FUNCS(deployment_state, deployment_state, states)
NAMES_FUNCS(deployment_hook, deployment_hook, hooks)
NAMES_FUNCS(deployment_removal_reason, deployment_removal, removals)
NAMES_FUNCS(deployment_report_state, deployment_report_state, reports)
