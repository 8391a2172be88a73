/* steps.c — one step of an upgrade list, as systemd does it: a command
 * (run, health, an undo) as a transient unit named after the plan,
 * generation, verb and index, so that a restarted corrald finds it and
 * waits for it; stop/start/restart as unit jobs one unit after another
 * (units_run: job result and settled state); reboot as a transient
 * `systemctl reboot`, done once the boot id has changed. */
#include <inttypes.h>

#include "upgrade-internal.h"

/* A command found running after a restart started up to its timeout ago:
 * wait that long and a little more (its own timeout kills it first). */
#define UPGRADE_WAIT_MARGIN_USEC (30 * USEC_PER_SEC)

const char *upgrade_item_name(const upgrade_item *it, char *buf, size_t size) {
	const conf_step *s = it->step;
	const char *kind = conf_step_kind_to_string(s->kind);

	if (it->undo)
		snprintf(buf, size, "undo %.120s", s->undo);
	else if (s->command)
		snprintf(buf, size, "%s %.120s", kind, s->command);
	else if (s->units) {
		size_t n = (size_t) snprintf(buf, size, "%s", kind);
		for (char **unit = s->units; *unit && n < size; unit++)
			n += (size_t) snprintf(buf + n, size - n, " %s", *unit);
	} else
		snprintf(buf, size, "%s", kind);
	return buf;
}

static uint64_t step_timeout(const upgrade_runner *u, const conf_step *s) {
	return s->timeout_usec ? s->timeout_usec : u->conf->upgrade.step_timeout_usec;
}

/* CORRAL_IMAGE, CORRAL_FROM_IMAGE, CORRAL_PLAN, CORRAL_NODE, CORRAL_ACTION,
 * then what env_fn adds (upgrade_runner_set_env). */
static char **step_env(const upgrade_runner *u) {
	const rollout_order *o = &u->cur;
	const char *const kv[][2] = {
		{ "CORRAL_IMAGE", o->target.image ? o->target.image : "" },
		{ "CORRAL_FROM_IMAGE", o->from.image ? o->from.image : "" },
		{ "CORRAL_PLAN", o->plan },
		{ "CORRAL_NODE", u->conf->node_id },
		{ "CORRAL_ACTION", rollout_verb_to_string(o->verb) },
	};
	_cleanup_strv_free_ char **more = u->env_fn ? u->env_fn(u->env_userdata) : NULL;
	size_t n_more = 0;
	while (more && more[n_more])
		n_more++;
	_cleanup_strv_free_ char **env = calloc(ELEMENTSOF(kv) + n_more + 1, sizeof *env);

	if (!env)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(kv); i++) {
		char *e;
		if (asprintf(&e, "%s=%s", kv[i][0], kv[i][1] ? kv[i][1] : "") < 0)
			return NULL;
		env[i] = e;
	}
	for (size_t i = 0; i < n_more; i++)
		env[ELEMENTSOF(kv) + i] = TAKE_PTR(more[i]);
	return TAKE_PTR(env);
}

static void on_unit_done(units_job *j, const units_result *r, void *userdata);

static int start_command(upgrade_runner *u, const char *command, uint64_t timeout) {
	_cleanup_strv_free_ char **env = step_env(u);

	if (!env)
		return -ENOMEM;
	return units_run_transient(u->bus, u->step_unit, command, env, timeout, on_unit_done, u, &u->job);
}

static const upgrade_item *current(const upgrade_runner *u) {
	return u->undoing ? &u->undo_item : &u->items[u->pos];
}

static void on_unit_done(units_job *j, const units_result *r, void *userdata) {
	upgrade_runner *u = userdata;
	const upgrade_item *it = current(u);
	int error = r->error;

	u->job = NULL;
	if (r->action == UNITS_WAIT && error == -ENOENT) {
		/* It ended while no corrald watched: its outcome is lost. A
		 * once step must not run twice; any other runs again. */
		if (it->step->once && !it->undo) {
			u->step_done(u, 0, "started before the restart; not run again (once)");
			return;
		}
		int k = start_command(u, it->undo ? it->step->undo : it->step->command, step_timeout(u, it->step));
		if (k < 0)
			u->step_done(u, k, "cannot start its unit");
		return;
	}
	if (r->action == UNITS_RUN || r->action == UNITS_WAIT || error < 0) {
		u->step_done(u, error, r->message);
		return;
	}
	/* The next unit of a stop/start/restart step. */
	if (it->step->units[++u->unit_i]) {
		units_action a = it->step->kind == CONF_STEP_STOP    ? UNITS_STOP
				 : it->step->kind == CONF_STEP_START ? UNITS_START
								     : UNITS_RESTART;
		error = units_run(u->bus, it->step->units[u->unit_i], a, step_timeout(u, it->step), on_unit_done, u,
				  &u->job);
		if (error < 0)
			u->step_done(u, error, "cannot reach the service manager");
		return;
	}
	u->step_done(u, 0, r->message);
}

void upgrade_step_start(upgrade_runner *u, const upgrade_item *it) {
	const conf_step *s = it->step;
	bool resume = u->resuming && !u->undoing;
	int r;

	free(u->step_unit);
	u->step_unit = upgrade_unit_name(u->conf->node_id, u->cur.plan, u->cur.generation, u->cur.verb, it->undo,
					 it->index);
	if (!u->step_unit) {
		u->step_done(u, -ENOMEM, "out of memory");
		return;
	}
	u->unit_i = 0;

	if (it->undo || s->kind == CONF_STEP_RUN || s->kind == CONF_STEP_HEALTH) {
		const char *cmd = it->undo ? s->undo : s->command;
		if (resume)
			r = units_wait_unit(u->bus, u->step_unit, step_timeout(u, s) + UPGRADE_WAIT_MARGIN_USEC,
					    on_unit_done, u, &u->job);
		else
			r = start_command(u, cmd, step_timeout(u, s));
	} else if (s->kind == CONF_STEP_REBOOT) {
		if (resume && u->prev_boot_id && !streq(u->prev_boot_id, u->boot_id)) {
			u->step_done(u, 0, "rebooted");
			return;
		}
		r = start_command(u, "systemctl reboot", step_timeout(u, s));
	} else {
		units_action a = s->kind == CONF_STEP_STOP ? UNITS_STOP : s->kind == CONF_STEP_START ? UNITS_START : UNITS_RESTART;
		r = units_run(u->bus, s->units[0], a, step_timeout(u, s), on_unit_done, u, &u->job);
	}
	if (r < 0)
		u->step_done(u, r, "cannot reach the service manager");
}
