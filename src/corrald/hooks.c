/* hooks.c — corrald's part in tenant deployments (docs/deployments.md):
 * the node's hook runner (hooks.h) started once the node is registered,
 * when the config has a `deployments:` section and a units bus; one log
 * line per hook started and ended, failures and trouble as warnings. */
#include "daemon.h"
#include "hooks.h"
#include "log.h"

static void on_hooks_event(hooks_runner *h, const hooks_event *e, void *userdata) {
	if (e->kind == HOOKS_EVENT_TROUBLE || (e->kind == HOOKS_EVENT_DONE && e->error))
		log_warning("deployments: %s", e->line);
	else
		log_info("deployments: %s", e->line);
}

void daemon_hooks_start(daemon_t *d) {
	int r;

	if (d->hooks || d->stopping || d->once || !d->conf->deployments.present || !d->reg ||
	    node_reg_state(d->reg) != NODE_REGISTERED)
		return;
	if (!d->bus) {
		log_warning("deployments: no connection to the %s bus; this node runs no deployment hooks",
			    d->conf->units_user_bus ? "user" : "system");
		return;
	}
	r = hooks_runner_new(&d->hooks, d->event, d->etcd, d->bus, d->conf, on_hooks_event, d);
	if (r < 0)
		log_error_errno(r, "deployments: cannot start the hook runner: %m");
}

void daemon_hooks_stop(daemon_t *d) {
	d->hooks = hooks_runner_free(d->hooks);
}
