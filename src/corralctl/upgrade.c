/* upgrade.c — the `corralctl upgrade` command group (docs/upgrades.md):
 * its verb table and `upgrade start`, which writes upgrade/plan by
 * compare-and-set: created when absent; a plan whose state says it ended
 * is replaced; a running one only with --supersede (the leader then
 * cancels it). The plan is built in upgrade-plan.c, the controls are in
 * upgrade-control.c, status and the schedule in upgrade-view.c. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"

/* A generated id must not name the stored plan or an ended one's history:
 * "p-20250101-020000-2", -3, ... 0 or -errno (-EIO printed). */
static int unique_id(ctl_t *c, rollout_plan *plan, const char *stored) {
	_cleanup_free_ char *base = strdup(plan->id);

	if (!base)
		return -ENOMEM;
	for (int k = 2; k < 100; k++) {
		_cleanup_free_ char *key = keys_entry(c->prefix, KEYS_UPGRADE_HISTORY, plan->id), *old = NULL;
		int r = ctl_get(c, key, &old, NULL, NULL);
		if (r < 0)
			return r;
		if (!old && !(stored && streq(stored, plan->id)))
			return 0;
		free(plan->id);
		if (asprintf(&plan->id, "%s-%d", base, k) < 0) {
			plan->id = NULL;
			return -ENOMEM;
		}
	}
	return -EEXIST;
}

/* May plan replace what is stored? Exit code (1 and why when not). */
static int may_replace(const ctl_upgrade_stored *s, const rollout_plan *plan, bool supersede) {
	if (!s->plan_text)
		return 0;
	if (s->have_plan && streq(s->plan.id, plan->id)) {
		/* the leader would take it for the same plan */
		fprintf(stderr, "corralctl: plan %s is the stored plan already; choose another --id\n", plan->id);
		return 2;
	}
	if (s->have_plan && s->state_is_plans && rollout_phase_terminal(s->phase))
		return 0;
	if (supersede)
		return 0;
	if (!s->have_plan)
		fprintf(stderr, "corralctl: %s holds a plan the leader cannot read (%s); nothing written: "
			"--supersede replaces it\n", s->plan_key, s->plan_error);
	else
		fprintf(stderr, "corralctl: plan %s is running (phase %s); nothing written: --supersede replaces "
			"it (the leader cancels it)\n", s->plan.id, rollout_phase_to_string(s->phase) ?: "?");
	return 1;
}

typedef struct start_args {
	const ctl_opts *o;
	rollout_plan *plan;
	bool id_generated;
} start_args;

/* One try. Exit code, or -ESTALE to try again. */
static int start_try(ctl_t *c, void *userdata) {
	const start_args *a = userdata;
	const ctl_opts *o = a->o;
	rollout_plan *plan = a->plan;
	_cleanup_(ctl_upgrade_stored_done) ctl_upgrade_stored s = {};
	_cleanup_free_ char *value = NULL;
	int r;

	if (ctl_upgrade_read(c, &s) < 0)
		return 1;
	if (a->id_generated && (r = unique_id(c, plan, s.have_plan ? s.plan.id : NULL)) < 0)
		return r == -EIO ? 1 : (fprintf(stderr, "corralctl: no free plan id: %s\n", strerror(-r)), 1);
	if ((r = may_replace(&s, plan, o->plan.supersede)) != 0)
		return r;
	json_auto_t *doc = rollout_plan_to_json(plan);
	value = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (!value)
		return 1;
	if ((r = ctl_upgrade_put(c, &s, value)) != 0)
		return r;
	if (s.have_plan && !c->dry_run && c->verbosity > CTL_QUIET)
		fprintf(stderr, "corralctl: plan %s (%s) replaced by %s\n", s.plan.id,
			rollout_phase_to_string(s.phase) ?: "?", plan->id);
	/* the id alone on stdout, for scripts */
	return ctl_report(c, "put", s.plan_key, value, plan->id);
}

static int cmd_start(ctl_t *c, ctl_opts *o) {
	_cleanup_(rollout_plan_done) rollout_plan plan = {};
	start_args a = { .o = o, .plan = &plan };
	int r;

	if ((r = ctl_upgrade_plan_build(o, time(NULL), &plan, &a.id_generated)) != 0)
		return r;
	return ctl_upgrade_cas(c, start_try, &a);
}

const ctl_verb ctl_upgrade_verbs[] = {
	{ .group = "upgrade", .name = "start", .args = "--image REF [OPTIONS] | --plan FILE [OPTIONS]",
	  .help = "write a rolling image upgrade plan (upgrade/plan, by compare-and-set) and print its id: "
		  "prepare on every eligible node, the canary, its bake, promotion, batches within the budget and "
		  "the windows, a final bake; a failure rolls back the nodes it changed. A running plan is "
		  "replaced only with --supersede; one that ended is replaced. Durations: 90, 30s, 10m, 1h",
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
