/* opts.c — corralctl's one option parser. Options may come before or
 * after the command's words (`corralctl -o json nodes` is `corralctl
 * nodes -o json`); the words are matched against the verb tables as they
 * come, so a verb can ask for its operands raw: config set (options end
 * at PATH, VALUE may start with '-') and scale simulate (its own
 * options). -h/--help anywhere (before "--") asks for usage: nothing is
 * validated or acted on then. */
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

#include "conf.h"
#include "ctl.h"
#include "log.h"

enum {
	ARG_VERSION = 0x100, ARG_CLUSTER, ARG_CA, ARG_CERT, ARG_KEY, ARG_USER, ARG_PWFILE, ARG_TIMEOUT, ARG_REGION,
	ARG_EC2_ENDPOINT, ARG_WAIT, ARG_POOL, ARG_REASON, ARG_REVISION, ARG_NODE, ARG_JOBS, ARG_CAPACITY,
	ARG_MEMORY, ARG_STRING, ARG_STRICT, ARG_IMAGE, ARG_CANARY, ARG_BAKE, ARG_AUTO_PROMOTE, ARG_MAX_UNAVAILABLE,
	ARG_MIN_HEALTHY_PERCENT, ARG_MIN_HEALTHY_TIME, ARG_HEALTHY_DEADLINE, ARG_PROGRESS_DEADLINE, ARG_GATE,
	ARG_GATE_TIMEOUT, ARG_WINDOW, ARG_TZ, ARG_SCHEDULE, ARG_FINAL_BAKE, ARG_NO_AUTO_ROLLBACK, ARG_PREPARE_BLOCKS,
	ARG_ID, ARG_PLAN_FILE, ARG_SUPERSEDE, ARG_STAGED, ARG_CONFIG_ID, ARG_CONFIG_BASE,
	ARG_AMI, ARG_LT_VERSION, ARG_MAX_SURGE, ARG_KEEP_OLD, ARG_STRATEGY,
	ARG_SINCE,
	ARG_CRON, ARG_AT, ARG_MIN, ARG_DURATION, ARG_LEAD,
	ARG_OWNER, ARG_LICENSE_EXPIRES, ARG_NO_BACKUP,
};

static const struct option options[] = {
	{ "endpoints", required_argument, NULL, 'e' },
	{ "prefix", required_argument, NULL, 'p' },
	{ "cluster", required_argument, NULL, ARG_CLUSTER },
	{ "config", required_argument, NULL, 'c' },
	{ "format", required_argument, NULL, 'o' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "force", no_argument, NULL, 'f' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "debug", no_argument, NULL, 'd' },
	{ "ca-file", required_argument, NULL, ARG_CA },
	{ "cert-file", required_argument, NULL, ARG_CERT },
	{ "key-file", required_argument, NULL, ARG_KEY },
	{ "user", required_argument, NULL, ARG_USER },
	{ "password-file", required_argument, NULL, ARG_PWFILE },
	{ "timeout", required_argument, NULL, ARG_TIMEOUT },
	{ "region", required_argument, NULL, ARG_REGION },
	{ "ec2-endpoint", required_argument, NULL, ARG_EC2_ENDPOINT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, ARG_VERSION },
	{ "wait", required_argument, NULL, ARG_WAIT },
	{ "workers", required_argument, NULL, 'w' },
	{ "pool", required_argument, NULL, ARG_POOL },
	{ "reason", required_argument, NULL, ARG_REASON },
	{ "revision", required_argument, NULL, ARG_REVISION },
	{ "node", required_argument, NULL, ARG_NODE },
	{ "jobs", required_argument, NULL, ARG_JOBS },
	{ "capacity", required_argument, NULL, ARG_CAPACITY },
	{ "memory", required_argument, NULL, ARG_MEMORY },
	{ "string", no_argument, NULL, ARG_STRING },
	{ "strict", no_argument, NULL, ARG_STRICT },
	{ "image", required_argument, NULL, ARG_IMAGE },
	{ "canary", required_argument, NULL, ARG_CANARY },
	{ "bake", required_argument, NULL, ARG_BAKE },
	{ "auto-promote", no_argument, NULL, ARG_AUTO_PROMOTE },
	{ "max-unavailable", required_argument, NULL, ARG_MAX_UNAVAILABLE },
	{ "min-healthy-percent", required_argument, NULL, ARG_MIN_HEALTHY_PERCENT },
	{ "min-healthy-time", required_argument, NULL, ARG_MIN_HEALTHY_TIME },
	{ "healthy-deadline", required_argument, NULL, ARG_HEALTHY_DEADLINE },
	{ "progress-deadline", required_argument, NULL, ARG_PROGRESS_DEADLINE },
	{ "gate", required_argument, NULL, ARG_GATE },
	{ "gate-timeout", required_argument, NULL, ARG_GATE_TIMEOUT },
	{ "window", required_argument, NULL, ARG_WINDOW },
	{ "tz", required_argument, NULL, ARG_TZ },
	{ "schedule", required_argument, NULL, ARG_SCHEDULE },
	{ "final-bake", required_argument, NULL, ARG_FINAL_BAKE },
	{ "no-auto-rollback", no_argument, NULL, ARG_NO_AUTO_ROLLBACK },
	{ "prepare-blocks", no_argument, NULL, ARG_PREPARE_BLOCKS },
	{ "id", required_argument, NULL, ARG_ID },
	{ "plan", required_argument, NULL, ARG_PLAN_FILE },
	{ "supersede", no_argument, NULL, ARG_SUPERSEDE },
	{ "staged", no_argument, NULL, ARG_STAGED },
	{ "config-id", required_argument, NULL, ARG_CONFIG_ID },
	{ "config-base", required_argument, NULL, ARG_CONFIG_BASE },
	{ "ami", required_argument, NULL, ARG_AMI },
	{ "launch-template-version", required_argument, NULL, ARG_LT_VERSION },
	{ "max-surge", required_argument, NULL, ARG_MAX_SURGE },
	{ "keep-old-until-bake", no_argument, NULL, ARG_KEEP_OLD },
	{ "strategy", required_argument, NULL, ARG_STRATEGY },
	{ "since", required_argument, NULL, ARG_SINCE },
	{ "cron", required_argument, NULL, ARG_CRON },
	{ "at", required_argument, NULL, ARG_AT },
	{ "min", required_argument, NULL, ARG_MIN },
	{ "duration", required_argument, NULL, ARG_DURATION },
	{ "lead", required_argument, NULL, ARG_LEAD },
	{ "owner", required_argument, NULL, ARG_OWNER },
	{ "license-expires", required_argument, NULL, ARG_LICENSE_EXPIRES },
	{ "no-backup", no_argument, NULL, ARG_NO_BACKUP },
	{},
};

/* '-': operands come back in order as option 1; ':': a missing value is ':'. */
#define SHORT_OPTIONS "-:e:p:c:o:nfvqdhw:"

const ctl_option_doc ctl_option_docs[] = {
	{ CTL_OPT_WORKERS, "-w, --workers N", "scale to/up/down: the number of workers (the same as N)" },
	{ CTL_OPT_WAIT, "--wait S", "after the change, wait up to S seconds until it is done" },
	{ CTL_OPT_POOL, "--pool P", "the pool (scaling: needed when the policy has several; upgrade: a pool the "
				    "plan covers, repeatable, default every node)" },
	{ CTL_OPT_REASON, "--reason TEXT", "why, kept in the record" },
	{ CTL_OPT_REVISION, "--revision R", "only if still at mod revision R (0: absent)" },
	{ CTL_OPT_NODE, "--node ID", "the node (default: this host's name)" },
	{ CTL_OPT_JOBS, "--jobs N", "running jobs" },
	{ CTL_OPT_CAPACITY, "--capacity M", "job slots" },
	{ CTL_OPT_MEMORY, "--memory F", "memory in use, a fraction 0..1" },
	{ CTL_OPT_SIZE, "--memory SIZE", "deployment: the memory it reserves on its host (2G, 512M; powers of 1024)" },
	{ CTL_OPT_OWNER, "--owner CONTACT", "deployment: who hears its notices (an address the notice command takes)" },
	{ CTL_OPT_LICENSE_EXPIRES, "--license-expires TIME",
	  "deployment: when its license ends, RFC 3339 (2026-12-24T00:00:00Z)" },
	{ CTL_OPT_NO_BACKUP, "--no-backup", "deployment remove: skip the backup, on purpose" },
	{ CTL_OPT_STRING, "--string", "VALUE is a string, whatever it looks like" },
	{ CTL_OPT_STRICT, "--strict", "a repeated key is an error" },
	{ CTL_OPT_IMAGE, "--image REF", "upgrade: the target image (what image_command prints once upgraded)" },
	{ CTL_OPT_CANARY, "--canary N", "upgrade: canary nodes, 0 for none (default 1)" },
	{ CTL_OPT_BAKE, "--bake DURATION", "upgrade: the canary's bake (default 10m)" },
	{ CTL_OPT_AUTO_PROMOTE, "--auto-promote", "upgrade: go on after the bake without `upgrade promote`" },
	{ CTL_OPT_MAX_UNAVAILABLE, "--max-unavailable N", "upgrade: nodes upgraded at once (default 1)" },
	{ CTL_OPT_MIN_HEALTHY_PERCENT, "--min-healthy-percent P",
	  "upgrade: nodes that must stay healthy, % of the pool (default 90; one at a time is always allowed "
	  "when all are healthy)" },
	{ CTL_OPT_MIN_HEALTHY_TIME, "--min-healthy-time DURATION",
	  "upgrade: a node is done once healthy this long (default 30s)" },
	{ CTL_OPT_HEALTHY_DEADLINE, "--healthy-deadline DURATION",
	  "upgrade: a node silent this long fails (default 5m)" },
	{ CTL_OPT_PROGRESS_DEADLINE, "--progress-deadline DURATION",
	  "upgrade: no node advancing this long fails the plan (default 15m)" },
	{ CTL_OPT_GATE, "--gate CMD", "upgrade: the fleet gate after each bake: exit 0 pass, 1 fail, else pause" },
	{ CTL_OPT_GATE_TIMEOUT, "--gate-timeout DURATION", "upgrade: the gate's time limit (default 1m)" },
	{ CTL_OPT_WINDOW, "--window 'DAYS HH:MM-HH:MM'",
	  "upgrade: batches start only inside (repeatable; e.g. 'Mon-Fri 02:00-05:00', 'Sat,Sun 00:00-06:00')" },
	{ CTL_OPT_TZ, "--tz TZ", "upgrade: the time zone of --window and --schedule (UTC, +02:00, Europe/Rome)" },
	{ CTL_OPT_SCHEDULE, "--schedule 'CRON'", "upgrade: start at the next match of a five-field cron ('0 2 * * 2')" },
	{ CTL_OPT_FINAL_BAKE, "--final-bake DURATION", "upgrade: the bake after the last batch (default: --bake)" },
	{ CTL_OPT_NO_AUTO_ROLLBACK, "--no-auto-rollback", "upgrade: a failure stops the plan; nothing is rolled back" },
	{ CTL_OPT_PREPARE_BLOCKS, "--prepare-blocks",
	  "upgrade: a node whose prepare fails fails the plan (default: it is left out)" },
	{ CTL_OPT_ID, "--id ID", "upgrade: the plan's id (default p-YYYYMMDD-HHMMSS, UTC)" },
	{ CTL_OPT_PLAN_FILE, "--plan FILE", "upgrade: the whole plan as JSON (- for stdin); options given override it" },
	{ CTL_OPT_SUPERSEDE, "--supersede", "upgrade start: replace a running plan (the leader cancels it)" },
	{ CTL_OPT_STAGED, "--staged",
	  "config: write the change as a candidate and a plan that rolls it out (canary, bake, promotion); "
	  "current does not move until promotion" },
	{ CTL_OPT_CONFIG_ID, "--config-id ID", "upgrade: the target config snapshot (a staged config rollout)" },
	{ CTL_OPT_CONFIG_BASE, "--config-base ID",
	  "upgrade: the current the candidate was made from (default: current now); the leader rebases on it" },
	{ CTL_OPT_AMI, "--ami AMI",
	  "upgrade: replace hosts by relaunch on this image (the leader makes a launch template version of it)" },
	{ CTL_OPT_LAUNCH_TEMPLATE_VERSION, "--launch-template-version N",
	  "upgrade: replace hosts by relaunch on this numbered version of the pool's launch template" },
	{ CTL_OPT_MAX_SURGE, "--max-surge N", "upgrade: replacements launched beyond the pool's size per batch (1)" },
	{ CTL_OPT_KEEP_OLD, "--keep-old-until-bake",
	  "upgrade: replaced hosts stay drained but running until the final bake passes (rollback without a launch)" },
	{ CTL_OPT_STRATEGY, "--strategy S", "upgrade: auto (default), in_place or replace" },
	{ CTL_OPT_SINCE, "--since DURATION", "scale history: only decisions this recent (1h, 30m, 2d)" },
	{ CTL_OPT_CRON, "--cron 'M H DOM MON DOW'", "scale schedule: the events, a five-field cron in UTC ('0 10 * * 1-5')" },
	{ CTL_OPT_AT, "--at TIME",
	  "scale schedule: the event; deployment touch: the activity's time (RFC 3339, 2026-01-05T10:00:00Z)" },
	{ CTL_OPT_MIN, "--min N", "scale schedule: hosts at least while the entry holds" },
	{ CTL_OPT_DURATION, "--duration DURATION", "scale schedule: how long after each event it holds (default 1h)" },
	{ CTL_OPT_LEAD, "--lead DURATION", "scale schedule: how long before each event it starts (default 15m)" },
	{},
};

static int bad_value(const char *option, const char *value, const char *what) {
	return ctl_usage_error("bad %s '%s'%s%s", option, value, what ? ": " : "", what ? what : "");
}

static int set_long(const char *arg, const char *name, long min, long max, long *out, const char *what) {
	return ctl_parse_int(arg, min, max, out) < 0 ? bad_value(name, arg, what) : 0;
}

/* An upgrade plan knob into o->plan, as typed (upgrade.c parses it).
 * 0, or -1: not one. */
static int apply_plan(ctl_opts *o, int opt, const char *arg) {
	ctl_plan_args *a = &o->plan;
	static const struct {
		int opt;
		uint64_t bit;
		size_t offset;          /* of the const char * in ctl_plan_args */
	} values[] = {
		{ ARG_IMAGE, CTL_OPT_IMAGE, offsetof(ctl_plan_args, image) },
		{ ARG_CANARY, CTL_OPT_CANARY, offsetof(ctl_plan_args, canary) },
		{ ARG_BAKE, CTL_OPT_BAKE, offsetof(ctl_plan_args, bake) },
		{ ARG_MAX_UNAVAILABLE, CTL_OPT_MAX_UNAVAILABLE, offsetof(ctl_plan_args, max_unavailable) },
		{ ARG_MIN_HEALTHY_PERCENT, CTL_OPT_MIN_HEALTHY_PERCENT, offsetof(ctl_plan_args, min_healthy_percent) },
		{ ARG_MIN_HEALTHY_TIME, CTL_OPT_MIN_HEALTHY_TIME, offsetof(ctl_plan_args, min_healthy_time) },
		{ ARG_HEALTHY_DEADLINE, CTL_OPT_HEALTHY_DEADLINE, offsetof(ctl_plan_args, healthy_deadline) },
		{ ARG_PROGRESS_DEADLINE, CTL_OPT_PROGRESS_DEADLINE, offsetof(ctl_plan_args, progress_deadline) },
		{ ARG_GATE, CTL_OPT_GATE, offsetof(ctl_plan_args, gate) },
		{ ARG_GATE_TIMEOUT, CTL_OPT_GATE_TIMEOUT, offsetof(ctl_plan_args, gate_timeout) },
		{ ARG_TZ, CTL_OPT_TZ, offsetof(ctl_plan_args, tz) },
		{ ARG_SCHEDULE, CTL_OPT_SCHEDULE, offsetof(ctl_plan_args, schedule) },
		{ ARG_FINAL_BAKE, CTL_OPT_FINAL_BAKE, offsetof(ctl_plan_args, final_bake) },
		{ ARG_ID, CTL_OPT_ID, offsetof(ctl_plan_args, id) },
		{ ARG_PLAN_FILE, CTL_OPT_PLAN_FILE, offsetof(ctl_plan_args, file) },
		{ ARG_CONFIG_ID, CTL_OPT_CONFIG_ID, offsetof(ctl_plan_args, config_id) },
		{ ARG_CONFIG_BASE, CTL_OPT_CONFIG_BASE, offsetof(ctl_plan_args, config_base) },
		{ ARG_AMI, CTL_OPT_AMI, offsetof(ctl_plan_args, ami) },
		{ ARG_LT_VERSION, CTL_OPT_LAUNCH_TEMPLATE_VERSION, offsetof(ctl_plan_args, launch_template_version) },
		{ ARG_MAX_SURGE, CTL_OPT_MAX_SURGE, offsetof(ctl_plan_args, max_surge) },
		{ ARG_STRATEGY, CTL_OPT_STRATEGY, offsetof(ctl_plan_args, strategy) },
	};
	static const struct {
		int opt;
		uint64_t bit;
		size_t offset;          /* of the bool */
	} flags[] = {
		{ ARG_AUTO_PROMOTE, CTL_OPT_AUTO_PROMOTE, offsetof(ctl_plan_args, auto_promote) },
		{ ARG_NO_AUTO_ROLLBACK, CTL_OPT_NO_AUTO_ROLLBACK, offsetof(ctl_plan_args, no_auto_rollback) },
		{ ARG_PREPARE_BLOCKS, CTL_OPT_PREPARE_BLOCKS, offsetof(ctl_plan_args, prepare_blocks) },
		{ ARG_SUPERSEDE, CTL_OPT_SUPERSEDE, offsetof(ctl_plan_args, supersede) },
		{ ARG_STAGED, CTL_OPT_STAGED, offsetof(ctl_plan_args, staged) },
		{ ARG_KEEP_OLD, CTL_OPT_KEEP_OLD, offsetof(ctl_plan_args, keep_old) },
	};

	if (opt == ARG_WINDOW) {
		o->given |= CTL_OPT_WINDOW;
		a->windows[a->n_windows++] = arg;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(values); i++)
		if (values[i].opt == opt) {
			o->given |= values[i].bit;
			*(const char **) ((char *) a + values[i].offset) = arg;
			return 0;
		}
	for (size_t i = 0; i < ELEMENTSOF(flags); i++)
		if (flags[i].opt == opt) {
			o->given |= flags[i].bit;
			*(bool *) ((char *) a + flags[i].offset) = true;
			return 0;
		}
	return -1;
}

/* A command option into o. Exit code. */
static int apply_command(ctl_opts *o, int opt, const char *arg) {
	long v;

	switch (opt) {
	case ARG_WAIT:
		o->given |= CTL_OPT_WAIT;
		return set_long(arg, "--wait", 0, 86400 * 7, &o->wait, "seconds, 0..604800");
	case 'w':
		o->given |= CTL_OPT_WORKERS;
		return set_long(arg, "-w", 0, 100000, &o->workers, "a number of workers, 0..100000");
	case ARG_POOL:
		o->given |= CTL_OPT_POOL;
		o->pool = arg;
		o->pools[o->n_pools++] = arg;
		return ctl_id_valid(arg) ? 0 : bad_value("--pool", arg, NULL);
	case ARG_SINCE:
		o->given |= CTL_OPT_SINCE;
		o->since = arg;
		return 0;
	case ARG_CRON: o->given |= CTL_OPT_CRON; o->schedule.cron = arg; return 0;
	case ARG_AT: o->given |= CTL_OPT_AT; o->schedule.at = arg; return 0;
	case ARG_MIN: o->given |= CTL_OPT_MIN; o->schedule.min = arg; return 0;
	case ARG_DURATION: o->given |= CTL_OPT_DURATION; o->schedule.duration = arg; return 0;
	case ARG_LEAD: o->given |= CTL_OPT_LEAD; o->schedule.lead = arg; return 0;
	case ARG_REASON:
		o->given |= CTL_OPT_REASON;
		o->reason = arg;
		return 0;
	case ARG_REVISION:
		o->given |= CTL_OPT_REVISION;
		if (ctl_parse_int(arg, 0, LONG_MAX, &v) < 0)
			return bad_value("--revision", arg, NULL);
		o->revision = v;
		return 0;
	case ARG_NODE:
		o->given |= CTL_OPT_NODE;
		o->node = arg;
		return ctl_id_valid(arg) ? 0 : bad_value("--node", arg, NULL);
	case ARG_JOBS:
		o->given |= CTL_OPT_JOBS;
		return set_long(arg, "--jobs", 0, 1000000, &o->jobs, "0..1000000");
	case ARG_CAPACITY:
		o->given |= CTL_OPT_CAPACITY;
		return set_long(arg, "--capacity", 0, 1000000, &o->capacity, "0..1000000");
	case ARG_MEMORY:
		/* a fraction (load) or a size (deployment): check_verb decides */
		o->given |= CTL_OPT_MEMORY;
		o->memory_text = arg;
		if (ctl_parse_double(arg, 0, 1, &o->memory) < 0)
			o->memory = -2;
		return 0;
	case ARG_OWNER: o->given |= CTL_OPT_OWNER; o->owner = arg; return 0;
	case ARG_LICENSE_EXPIRES: o->given |= CTL_OPT_LICENSE_EXPIRES; o->license_expires = arg; return 0;
	case ARG_NO_BACKUP: o->given |= CTL_OPT_NO_BACKUP; o->no_backup = true; return 0;
	case ARG_STRING:
		o->given |= CTL_OPT_STRING;
		o->as_string = true;
		return 0;
	case ARG_STRICT:
		o->given |= CTL_OPT_STRICT;
		o->strict = true;
		return 0;
	}
	return apply_plan(o, opt, arg);
}

/* A global option into c or p->cl. Exit code; -1: not a global one. */
static int apply_global(ctl_t *c, ctl_parsed *p, int opt, const char *arg) {
	switch (opt) {
	case 'e': p->cl.endpoints = arg; return 0;
	case 'p': p->cl.prefix = arg; return 0;
	case 'c': p->cl.config = arg; return 0;
	case ARG_PWFILE: p->cl.pwfile = arg; return 0;
	case ARG_REGION: c->region = arg; return 0;
	case ARG_EC2_ENDPOINT: c->ec2_endpoint = arg; return 0;
	case 'n': c->dry_run = true; return 0;
	case 'f': c->force = true; return 0;
	case 'q': c->verbosity = CTL_QUIET; return 0;
	case 'h': p->cl.help = true; return 0;
	case ARG_VERSION: p->cl.version = true; return 0;
	case ARG_CA: return ctl_set_str(&c->ca_file, arg) < 0 ? 1 : 0;
	case ARG_CERT: return ctl_set_str(&c->cert_file, arg) < 0 ? 1 : 0;
	case ARG_KEY: return ctl_set_str(&c->key_file, arg) < 0 ? 1 : 0;
	case ARG_USER: return ctl_set_str(&c->user, arg) < 0 ? 1 : 0;
	case 'v':
		if (c->verbosity < CTL_VERBOSE)
			c->verbosity = CTL_VERBOSE;
		return 0;
	case 'd':
		c->verbosity = CTL_DEBUG;
		log_set_max_level(LOG_DEBUG);
		return 0;
	case ARG_CLUSTER:
		p->cl.cluster = arg;
		return keys_cluster_valid(arg) ? 0 : bad_value("--cluster", arg, "a cluster name is one key segment: not "
								    "empty, no '/', not . or ..");
	case 'o':
		if (streq(arg, "json"))
			c->format = FORMAT_JSON;
		else if (streq(arg, "table"))
			c->format = FORMAT_TABLE;
		else if (streq(arg, "csv"))
			c->format = FORMAT_CSV;
		else
			return ctl_usage_error("unknown format '%s' (table, json or csv)", arg);
		return 0;
	case ARG_TIMEOUT:
		if (conf_parse_duration(arg, &c->timeout_usec) < 0 || c->timeout_usec == 0)
			return ctl_usage_error("bad --timeout '%s'", arg);
		return 0;
	}
	return -1;
}

/* Does verb v's path (group, then the name's words) start with words
 * (exact: equal them)? */
static bool path_match(const ctl_verb *v, const char *const *words, size_t n, bool exact) {
	char path[128];
	size_t k = 0;

	snprintf(path, sizeof path, "%s%s%s", v->group ? v->group : "", v->group ? " " : "", v->name);
	for (char *save = NULL, *w = strtok_r(path, " ", &save); w; w = strtok_r(NULL, " ", &save), k++)
		if (k < n && !streq(w, words[k]))
			return false;
	return exact ? k == n : k > n;
}

const ctl_verb *ctl_find_verb(const ctl_verb *const *tables, const char *const *words, size_t n, bool *partial) {
	*partial = false;
	for (size_t t = 0; tables[t]; t++)
		for (const ctl_verb *v = tables[t]; v->name; v++) {
			if (path_match(v, words, n, true))
				return v;
			*partial = *partial || path_match(v, words, n, false);
		}
	return NULL;
}

/* One more command word. Exit code: 0 (p->verb set when complete), 2. */
static int add_word(const ctl_verb *const *tables, ctl_parsed *p, const char *w) {
	bool partial;

	if (p->n_words == 0 && !p->help_cmd && streq(w, "help")) {
		p->help_cmd = p->cl.help = true;
		return 0;
	}
	if (p->n_words == ELEMENTSOF(p->words))
		return ctl_usage_error("unknown command '%s'", w);
	p->words[p->n_words++] = w;
	p->verb = ctl_find_verb(tables, p->words, p->n_words, &partial);
	if (p->verb || partial)
		return 0;
	if (p->n_words == 1)
		return ctl_usage_error("unknown command '%s'", w);
	return ctl_usage_error("unknown %s subcommand '%s'", p->words[0], w);
}

/* "-h"/"--help" before any "--": usage wanted, whatever else is there. */
static bool wants_help(int argc, char **argv) {
	for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
		if (streq(argv[i], "-h") || streq(argv[i], "--help"))
			return true;
	return false;
}

static int option_error(int opt, const char *word) {
	if (opt == ':')
		return ctl_usage_error("option '%s' needs a value", word);
	return ctl_usage_error("unknown option '%s'", word);
}

/* The verb's options and operand count. Exit code. */
static int check_verb(const ctl_verb *v, ctl_opts *o) {
	uint64_t extra;
	char path[128];

	/* --memory is a size for the verbs that take one, else a fraction */
	if ((o->given & CTL_OPT_MEMORY) && (v->options & CTL_OPT_SIZE) && !(v->options & CTL_OPT_MEMORY))
		o->given = (o->given & ~CTL_OPT_MEMORY) | CTL_OPT_SIZE;
	else if ((o->given & CTL_OPT_MEMORY) && o->memory < -1)
		return bad_value("--memory", o->memory_text, "a fraction 0..1");
	extra = o->given & ~v->options;

	snprintf(path, sizeof path, "%s%s%s", v->group ? v->group : "", v->group ? " " : "", v->name);
	for (const ctl_option_doc *d = ctl_option_docs; extra && d->bit; d++)
		if (extra & d->bit)
			return ctl_usage_error("%s takes no %s%s", path, d->spelling,
					       d->bit == CTL_OPT_WORKERS && (v->options & CTL_OPT_WAIT)
						       ? " (-w is workers; --wait S waits)"
						       : "");
	if (o->n_pos < v->min_args || o->n_pos > v->max_args)
		return ctl_usage_error("usage: corralctl %s%s%s", path, v->args ? " " : "", v->args ? v->args : "");
	return 0;
}

/* A CTL_VERB_VALUES verb's operands are taken as typed up to its count
 * (VALUE may start with '-'); options may follow them (`config set PATH
 * VALUE --staged`). argv[0] is the last operand, not parsed. Exit code. */
static int parse_trailing(ctl_t *c, ctl_parsed *p, int argc, char **argv) {
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) >= 0) {
		if (opt == 1)
			p->opts.pos[p->opts.n_pos++] = optarg;  /* too many: check_verb says so */
		else if (p->cl.help && opt != ARG_VERSION)
			continue;
		else if ((r = apply_global(c, p, opt, optarg)) >= 0 || (r = apply_command(&p->opts, opt, optarg)) >= 0) {
			if (r != 0)
				return r;
		} else
			return option_error(opt, argv[optind - 1]);
	}
	for (int i = optind; i < argc; i++)
		p->opts.pos[p->opts.n_pos++] = argv[i];
	return 0;
}

int ctl_parse(ctl_t *c, const ctl_verb *const *tables, int argc, char **argv, ctl_parsed *p) {
	int opt, r;

	*p = (ctl_parsed){ .opts = { .wait = -1, .workers = -1, .revision = -1, .jobs = -1, .capacity = -1,
				     .memory = -1 } };
	p->cl.help = wants_help(argc, argv);
	p->opts.pos = calloc(argc + 1, sizeof(char *));
	p->opts.pools = calloc(argc + 1, sizeof(char *));
	p->opts.plan.windows = calloc(argc + 1, sizeof(char *));
	if (!p->opts.pos || !p->opts.pools || !p->opts.plan.windows)
		return 1;
	optind = 0;     /* GNU getopt: start afresh */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) >= 0) {
		if (opt == 1 && !p->verb) {
			if ((r = add_word(tables, p, optarg)) != 0)
				return r;
			if (p->verb && (p->verb->flags & CTL_VERB_OWN_OPTIONS)) {
				/* in order: argv is not permuted, optarg is argv[optind - 1] */
				p->opts.argc = argc - optind + 1;
				p->opts.argv = argv + optind - 1;
				break;
			}
		} else if (opt == 1) {
			p->opts.pos[p->opts.n_pos++] = optarg;
			if (p->verb->flags & CTL_VERB_VALUES)
				break;  /* the rest are operands, as typed */
		} else if (p->cl.help && opt != ARG_VERSION)
			continue;       /* usage only: nothing else matters */
		else if ((r = apply_global(c, p, opt, optarg)) >= 0 || (r = apply_command(&p->opts, opt, optarg)) >= 0) {
			if (r != 0)
				return r;
		} else
			return option_error(opt, argv[optind - 1]);
	}
	/* after "--", or the operands of a CTL_VERB_VALUES verb (then options
	 * may follow them, unless after "--") */
	bool dashdash = optind > 1 && optind <= argc && streq(argv[optind - 1], "--");
	for (int i = optind; !p->opts.argv && i < argc; i++) {
		if (p->verb && (p->verb->flags & CTL_VERB_VALUES) && p->opts.n_pos >= p->verb->max_args && !dashdash) {
			if ((r = parse_trailing(c, p, argc - i + 1, argv + i - 1)) != 0)
				return r;
			break;
		}
		if (p->verb) {
			p->opts.pos[p->opts.n_pos++] = argv[i];
			continue;
		}
		if ((r = add_word(tables, p, argv[i])) != 0)
			return r;
		if (p->verb && (p->verb->flags & CTL_VERB_OWN_OPTIONS)) {
			p->opts.argc = argc - i;
			p->opts.argv = argv + i;
		}
	}
	if (p->cl.help || p->cl.version)
		return -1;
	if (!p->verb && p->n_words == 0)
		return ctl_usage_error("%s", "no command given");
	if (!p->verb)
		return ctl_usage_error("%s needs a subcommand (corralctl help %s)", p->words[0], p->words[0]);
	if (c->format == FORMAT_CSV && !(p->verb->flags & CTL_VERB_CSV))
		return ctl_usage_error("%s", "-o csv: only hosts and scale simulate print CSV");
	return check_verb(p->verb, &p->opts) ?: -1;
}

void ctl_parsed_done(ctl_parsed *p) {
	free(p->opts.pos);
	free(p->opts.pools);
	free(p->opts.plan.windows);
}
