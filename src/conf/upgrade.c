/* upgrade.c — the `upgrade:` section (docs/upgrades.md): how this node
 * learns its image (image_command) and the step lists an upgrade order
 * runs: prepare, steps (upgrade and rollback), cleanup, with the default
 * step timeout.
 *
 * A step is a mapping with exactly one kind (run, stop, start, restart,
 * health, reboot) and the options that kind takes (run: once, undo,
 * timeout; health, stop, start, restart: timeout). cleanup may also be a
 * plain command string: one run step. */
#include <stddef.h>

#include "conf-internal.h"

#define CONF_DEFAULT_STEP_TIMEOUT_USEC (300 * USEC_PER_SEC)

static const char *const step_kind_names[_CONF_STEP_KIND_MAX] = {
	[CONF_STEP_RUN] = "run",
	[CONF_STEP_STOP] = "stop",
	[CONF_STEP_START] = "start",
	[CONF_STEP_RESTART] = "restart",
	[CONF_STEP_HEALTH] = "health",
	[CONF_STEP_REBOOT] = "reboot",
};

const char *conf_step_kind_to_string(conf_step_kind k) {
	if ((unsigned) k >= _CONF_STEP_KIND_MAX)
		return NULL;
	return step_kind_names[k];
}

/* A step as written, before the kind is known. */
typedef struct step_raw {
	char *run, *health, *undo;
	char **stop, **start, **restart;
	bool reboot, once;
	uint64_t timeout_usec;
} step_raw;

static const conf_key step_keys[] = {
	{ "run",     conf_parse_string,       offsetof(step_raw, run) },
	{ "health",  conf_parse_string,       offsetof(step_raw, health) },
	{ "stop",    conf_parse_units,        offsetof(step_raw, stop) },
	{ "start",   conf_parse_units,        offsetof(step_raw, start) },
	{ "restart", conf_parse_units,        offsetof(step_raw, restart) },
	{ "reboot",  conf_parse_bool,         offsetof(step_raw, reboot) },
	{ "once",    conf_parse_bool,         offsetof(step_raw, once) },
	{ "undo",    conf_parse_string,       offsetof(step_raw, undo) },
	{ "timeout", conf_parse_duration_key, offsetof(step_raw, timeout_usec), .min_usec = CONF_MIN_TIMEOUT_USEC },
	{}
};

static void step_raw_done(step_raw *s) {
	free(s->run);
	free(s->health);
	free(s->undo);
	strv_free(s->stop);
	strv_free(s->start);
	strv_free(s->restart);
}

static void conf_step_done(conf_step *s) {
	free(s->command);
	strv_free(s->units);
	free(s->undo);
}

static void conf_steps_done(conf_steps *l) {
	for (size_t i = 0; i < l->n; i++)
		conf_step_done(&l->steps[i]);
	free(l->steps);
	*l = (conf_steps) {};
}

static int steps_append(conf_steps *l, conf_step *s) {
	conf_step *grown = reallocarray(l->steps, l->n + 1, sizeof *grown);

	if (!grown)
		return -ENOMEM;
	l->steps = grown;
	l->steps[l->n++] = *s;
	*s = (conf_step) {};
	return 0;
}

/* An option (once, undo, timeout) the step's kind does not take. */
static int step_refuse(conf_walk *w, yaml_node_t *node, const char *section, const char *opt, const char *kind) {
	yaml_node_t *k = conf_mapping_key(w, node, opt, NULL);
	return conf_fail(w, k ? k : node, "%s: %s is not an option of a %s step", section, opt, kind);
}

static int step_one(conf_walk *w, const char *section, yaml_node_t *node, conf_steps *l) {
	_cleanup_(step_raw_done) step_raw raw = {};
	_cleanup_(conf_step_done) conf_step s = {};
	yaml_node_t *reboot_key;
	unsigned kinds = 0;
	int r;

	if (node->type != YAML_MAPPING_NODE)
		return conf_fail(w, node, "%s: expected a step (a mapping like {run: COMMAND})", section);
	r = conf_walk_mapping(w, (const conf_key *const[]) { step_keys, NULL }, section, node, &raw);
	if (r < 0)
		return r;

	reboot_key = conf_mapping_key(w, node, "reboot", NULL);
	kinds = !!raw.run + !!raw.health + !!raw.stop + !!raw.start + !!raw.restart + !!reboot_key;
	if (kinds != 1)
		return conf_fail(w, node, "%s: a step needs exactly one of run, stop, start, restart, health, reboot",
				 section);
	if (reboot_key && !raw.reboot)
		return conf_fail(w, reboot_key, "%s: reboot: false is no step (leave it out)", section);

	if (raw.run) {
		s.kind = CONF_STEP_RUN;
		s.command = TAKE_PTR(raw.run);
		s.undo = TAKE_PTR(raw.undo);
		s.once = raw.once;
	} else if (raw.health) {
		s.kind = CONF_STEP_HEALTH;
		s.command = TAKE_PTR(raw.health);
	} else if (raw.stop || raw.start || raw.restart) {
		s.kind = raw.stop ? CONF_STEP_STOP : raw.start ? CONF_STEP_START : CONF_STEP_RESTART;
		s.units = raw.stop ? TAKE_PTR(raw.stop) : raw.start ? TAKE_PTR(raw.start) : TAKE_PTR(raw.restart);
		if (!s.units[0])
			return conf_fail(w, node, "%s: %s needs at least one unit", section, conf_step_kind_to_string(s.kind));
	} else
		s.kind = CONF_STEP_REBOOT;

	const char *kind = conf_step_kind_to_string(s.kind);
	if (s.kind != CONF_STEP_RUN && raw.undo)
		return step_refuse(w, node, section, "undo", kind);
	if (s.kind != CONF_STEP_RUN && conf_mapping_key(w, node, "once", NULL))
		return step_refuse(w, node, section, "once", kind);
	if (s.kind == CONF_STEP_REBOOT && raw.timeout_usec)
		return step_refuse(w, node, section, "timeout", kind);
	s.timeout_usec = raw.timeout_usec;
	return steps_append(l, &s);
}

static int parse_steps(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	_cleanup_(conf_steps_done) conf_steps l = {};
	conf_steps *p = field;
	size_t i = 0;

	if (value->type != YAML_SEQUENCE_NODE)
		return conf_fail(w, value, "%s: expected a sequence of steps", name);
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++, i++) {
		yaml_node_t *step = yaml_document_get_node(w->doc, *it);
		char section[160];

		if (!step)
			return conf_fail(w, value, "%s: expected a sequence of steps", name);
		snprintf(section, sizeof section, "%s[%zu]", name, i);
		int r = step_one(w, section, step, &l);
		if (r < 0)
			return r;
	}
	conf_steps_done(p);
	*p = l;
	l = (conf_steps) {};
	return 0;
}

/* cleanup: a command, or steps. */
static int parse_cleanup(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	_cleanup_(conf_step_done) conf_step s = { .kind = CONF_STEP_RUN };
	conf_steps *p = field;

	if (value->type != YAML_SCALAR_NODE)
		return parse_steps(w, k, name, key, value, field);
	int r = conf_scalar_dup(w, name, "a command or a sequence of steps", value, &s.command);
	if (r < 0)
		return r;
	conf_steps_done(p);
	return steps_append(p, &s);
}

static const conf_key upgrade_keys[] = {
	{ "image_command", conf_parse_string,       offsetof(conf_upgrade, image_command) },
	/* steps first: conf_key_names() lists a step's keys under it */
	{ "steps",         parse_steps,             offsetof(conf_upgrade, steps), .section = step_keys },
	{ "prepare",       parse_steps,             offsetof(conf_upgrade, prepare), .section = step_keys },
	{ "cleanup",       parse_cleanup,           offsetof(conf_upgrade, cleanup), .section = step_keys },
	{ "step_timeout",  conf_parse_duration_key, offsetof(conf_upgrade, step_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{}
};

static int parse_upgrade(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	conf_upgrade *u = field;

	int r = conf_walk_mapping(w, (const conf_key *const[]) { upgrade_keys, NULL }, name, value, u);
	if (r < 0)
		return r;
	if (!u->image_command)
		return conf_fail(w, key, "%s: image_command is required (how this node tells its image)", name);
	u->present = true;
	return 0;
}

static const conf_key conf_upgrade_part_keys[] = {
	{ "upgrade", parse_upgrade, offsetof(conf, upgrade), .section = upgrade_keys },
	{}
};

static void conf_upgrade_init(conf *c) {
	c->upgrade.step_timeout_usec = CONF_DEFAULT_STEP_TIMEOUT_USEC;
}

static void conf_upgrade_done(conf *c) {
	free(c->upgrade.image_command);
	conf_steps_done(&c->upgrade.prepare);
	conf_steps_done(&c->upgrade.steps);
	conf_steps_done(&c->upgrade.cleanup);
}

const conf_part conf_part_upgrade = {
	.keys = conf_upgrade_part_keys,
	.init = conf_upgrade_init,
	.done = conf_upgrade_done,
};
