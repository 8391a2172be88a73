/* names.c — the names the node's hook runner gives what it makes: the
 * transient unit of one hook of one order (a restarted corrald finds it by
 * this name), and the directory its stdout files go to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"

char *hooks_unit_name(const char *id, deployment_hook hook, int64_t seq) {
	_cleanup_free_ char *text = NULL;
	const char *h = deployment_hook_to_string(hook);

	if (!id || !h || asprintf(&text, "%s-%s-%lld", id, h, (long long) seq) < 0)
		return NULL;
	return units_transient_name("corral-deployment-", text);
}

char *hooks_stdout_dir(bool user_bus) {
	const char *rt = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
	char *d;

	/* systemd's RuntimeDirectory= may list several: the first is ours. */
	if (rt && *rt == '/') {
		size_t n = strcspn(rt, ":");
		return strndup(rt, n);
	}
	if (user_bus && xdg && *xdg == '/')
		return asprintf(&d, "%s/corral", xdg) < 0 ? NULL : d;
	return strdup("/run/corral");
}
