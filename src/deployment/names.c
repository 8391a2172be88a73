/* names.c — the deployment enums as their JSON names (deployment.h). */
#include <errno.h>
#include <string.h>

#include "deployment.h"
#include "macro.h"

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

static const char *name_of(const char *const *names, size_t n, int v) {
	return v >= 0 && (size_t) v < n ? names[v] : NULL;
}

static int value_of(const char *const *names, size_t n, const char *s, int *out) {
	for (size_t i = 0; s && i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0) {
			*out = (int) i;
			return 0;
		}
	return -EINVAL;
}

#define NAMES(type, prefix, table)                                                                      \
	const char *prefix##_to_string(type v) {                                                       \
		return name_of(table, ELEMENTSOF(table), (int) v);                                    \
	}                                                                                                 \
	int prefix##_from_string(const char *s, type *out) {                                            \
		int v, r = value_of(table, ELEMENTSOF(table), s, &v);                                 \
		if (r == 0)                                                                               \
			*out = (type) v;                                                                  \
		return r;                                                                                 \
	}

NAMES(deployment_state, deployment_state, states)
NAMES(deployment_hook, deployment_hook, hooks)
NAMES(deployment_removal_reason, deployment_removal, removals)
NAMES(deployment_report_state, deployment_report_state, reports)
