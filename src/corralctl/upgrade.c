/* upgrade.c — the `corralctl upgrade` command group (docs/upgrades.md):
 * its verb table and `upgrade start`, which writes upgrade/plan by
 * compare-and-set (upgrade-plan.c's ctl_upgrade_start: created when
 * absent; a plan whose state says it ended is replaced; a running one
 * only with --supersede, the leader then cancels it). The plan is built in
 * upgrade-plan.c, the controls are in upgrade-control.c, status and the
 * schedule in upgrade-view.c. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "agree.h"
#include "ctl.h"

/* --config-id: the snapshot must exist and read whole; --config-base
 * defaults to `current` now (the leader rebases the candidate from it).
 * Exit code. */
static int config_target(ctl_t *c, ctl_opts *o, char **base) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	_cleanup_free_ char *cur = keys_one_of(c->prefix, KEYS_CURRENT);
	agree_error err = {};
	int r;

	if (!ctl_id_valid(o->plan.config_id))
		return ctl_usage_error("bad --config-id '%s': not a config id", o->plan.config_id);
	if (!cur)
		return 1;
	r = agree_read_config_sync(c->etcd, c->prefix, o->plan.config_id, &s, &err);
	if (r < 0) {
		fprintf(stderr, "corralctl: --config-id %s: %s\n", o->plan.config_id, err.message);
		return r == -ENOENT || r == -EBADMSG ? 2 : 1;
	}
	if (o->plan.config_base)
		return 0;
	if (ctl_get(c, cur, base, NULL, NULL) < 0)
		return 1;
	o->plan.config_base = *base;
	return 0;
}

static int cmd_start(ctl_t *c, ctl_opts *o) {
	_cleanup_(rollout_plan_done) rollout_plan plan = {};
	_cleanup_free_ char *base = NULL;
	bool generated;
	int r;

	if (o->plan.config_id && (r = config_target(c, o, &base)) != 0)
		return r;
	if ((r = ctl_upgrade_plan_build(o, time(NULL), &plan, &generated)) != 0)
		return r;
	return ctl_upgrade_start(c, o, &plan, generated, NULL);
}

const ctl_verb ctl_upgrade_verbs[] = {
	{ .group = "upgrade", .name = "start",
	  .args = "--image REF [OPTIONS] | --config-id ID [--config-base ID] [OPTIONS] | --plan FILE [OPTIONS]",
	  .help = "write a rolling image upgrade plan (upgrade/plan, by compare-and-set) and print its id: "
		  "prepare on every eligible node, the canary, its bake, promotion, batches within the budget and "
		  "the windows, a final bake; a failure rolls back the nodes it changed. A running plan is "
		  "replaced only with --supersede; one that ended is replaced. --config-id ID stages config "
		  "snapshot ID instead (canaries pinned to it, then promotion moves current; --config-base: the "
		  "current it was made from, default current now). Durations: 90, 30s, 10m, 1h",
	  .options = CTL_OPT_PLAN_KNOBS | CTL_OPT_SUPERSEDE, .flags = CTL_VERB_ETCD, .run = cmd_start },
	{ .group = "upgrade", .name = "status", .args = "",
	  .help = "the plan's phase, generation, batch, reason and what it waits for, and per node its image, "
		  "step, state and health (-o json: the state plus \"nodes\")",
	  .flags = CTL_VERB_ETCD, .run = ctl_upgrade_status },
	{ .group = "upgrade", .name = "plan", .args = "[--image REF | --plan FILE] [OPTIONS]",
	  .help = "print the schedule a plan would follow on the nodes as they are now (skipped nodes and why, "
		  "the canaries, the batches); without options the stored plan's; writes nothing",
	  .options = CTL_OPT_PLAN_KNOBS, .flags = CTL_VERB_ETCD, .run = ctl_upgrade_schedule },
	{ .group = "upgrade", .name = "pause", .args = "",
	  .help = "pause the plan: nodes in flight finish, nothing new starts", .flags = CTL_VERB_ETCD,
	  .run = ctl_upgrade_pause },
	{ .group = "upgrade", .name = "resume", .args = "", .help = "end an operator's pause",
	  .flags = CTL_VERB_ETCD, .run = ctl_upgrade_resume },
	{ .group = "upgrade", .name = "promote", .args = "",
	  .help = "the canary baked (or the gate could not tell): go on with the batches", .flags = CTL_VERB_ETCD,
	  .run = ctl_upgrade_promote },
	{ .group = "upgrade", .name = "abort", .args = "",
	  .help = "stop the plan: cancelled once the nodes in flight finish; nothing is rolled back",
	  .flags = CTL_VERB_ETCD, .run = ctl_upgrade_abort },
	{ .group = "upgrade", .name = "rollback", .args = "",
	  .help = "roll back the nodes the plan changed, in batches (also after it succeeded)",
	  .flags = CTL_VERB_ETCD, .run = ctl_upgrade_rollback },
	{ .group = "upgrade", .name = "retry", .args = "",
	  .help = "start a failed, cancelled or rolled back plan again as a new generation",
	  .flags = CTL_VERB_ETCD, .run = ctl_upgrade_retry },
	{},
};
