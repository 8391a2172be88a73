/* upgrade.c — corrald's part in rolling upgrades: the node's upgrade
 * runner (upgrade.h) started once the node is registered, when the config
 * has an `upgrade:` section and a units bus; one log line per step, order
 * and image; the image it reads goes into the node record. */
#include "daemon.h"
#include "hooks.h"
#include "log.h"

static void on_upgrade_event(upgrade_runner *u, const upgrade_event *e, void *userdata) {
	daemon_t *d = userdata;
	int r;

	switch (e->kind) {
	case UPGRADE_EVENT_IMAGE:
		if (streq_ptr(e->image, d->image) && e->image)
			return;
		if (e->image)
			log_info("upgrade: %s", e->line);
		else
			log_warning("upgrade: %s", e->line);
		if (!e->image)
			return;         /* keep the last image we knew */
		free(d->image);
		d->image = strdup(e->image);
		if (d->reg) {
			node_info info = daemon_node_info(d);
			r = node_reg_update(d->reg, &info);
			if (r < 0)
				log_error_errno(r, "cannot update the node record with the image: %m");
		}
		return;
	case UPGRADE_EVENT_STEP:
	case UPGRADE_EVENT_DONE:
		if (e->error)
			log_warning("upgrade: %s", e->line);
		else
			log_info("upgrade: %s", e->line);
		return;
	case UPGRADE_EVENT_ORDER:
		log_info("upgrade: %s", e->line);
		return;
	case UPGRADE_EVENT_TROUBLE:
		log_warning("upgrade: %s", e->line);
		return;
	}
}

/* The tenant deployments on this host, for the steps' notices to reach
 * their owners (CORRAL_DEPLOYMENTS, CORRAL_OWNERS; docs/deployments.md). */
static char **deployments_env(void *userdata) {
	daemon_t *d = userdata;
	return d->hooks ? hooks_runner_env(d->hooks) : NULL;
}

void daemon_upgrade_start(daemon_t *d) {
	int r;

	if (d->upgrade || d->stopping || d->once || !d->conf->upgrade.present || !d->reg ||
	    node_reg_state(d->reg) != NODE_REGISTERED)
		return;
	if (!d->bus) {
		log_warning("upgrade: no connection to the %s bus; this node runs no upgrade steps",
			    d->conf->units_user_bus ? "user" : "system");
		return;
	}
	r = upgrade_runner_new(&d->upgrade, d->event, d->etcd, d->bus, d->conf, on_upgrade_event, d);
	if (r < 0)
		log_error_errno(r, "upgrade: cannot start the upgrade runner: %m");
	else
		upgrade_runner_set_env(d->upgrade, deployments_env, d);
}

void daemon_upgrade_stop(daemon_t *d) {
	d->upgrade = upgrade_runner_free(d->upgrade);
}
