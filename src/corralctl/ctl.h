/* ctl.h — what corralctl's files share: the run's settings and etcd
 * client, the verb table's shape, the parsed command line, and the helpers
 * of common.c (settings, errors), output.c (json/table/plain), store.c
 * (etcd keys) and view.c (the scaling records). Internal to corralctl.
 *
 * Each command group's file (status.c, config.c, policy.c, scale.c,
 * cluster.c, maintenance.c, hold.c, load.c, ec2.c, upgrade.c, deployment.c) exports one
 * ctl_*_verbs table; main.c lists the tables. Files call down (group ->
 * view -> store -> output -> common), never back up. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "ec2.h"
#include "etcd.h"
#include "keys.h"
#include "macro.h"
#include "rollout.h"
#include "scale.h"

typedef enum { FORMAT_TABLE, FORMAT_JSON, FORMAT_CSV } format_t;      /* csv: CTL_VERB_CSV only */

/* -q, default, -v, -d */
enum { CTL_QUIET = -1, CTL_NORMAL = 0, CTL_VERBOSE = 1, CTL_DEBUG = 2 };

/* Exit codes, the same for every command. */
enum { CTL_EXIT_OK = 0, CTL_EXIT_FAILED = 1, CTL_EXIT_USAGE = 2 };

typedef struct ctl {
	char **endpoints;
	char *prefix;
	char *cluster;                  /* the cluster's name (ec2's tag) */
	char *ca_file, *cert_file, *key_file;
	char *user, *password;
	uint64_t timeout_usec;
	uint64_t attempt_usec;          /* etcd.attempt_timeout of --config; 0: default */
	format_t format;
	bool dry_run;
	bool force;                     /* -f: scale ignores min/max; cluster stop goes on after time-outs */
	int verbosity;                  /* CTL_QUIET .. CTL_DEBUG */
	char *proposer;                 /* "ctl-<host>-<pid>" */
	const char *region, *ec2_endpoint;      /* ec2: as given, or NULL */
	sd_event *event;
	etcd_client *etcd;
	bool etcd_down;                 /* a call found etcd unreachable (store.c) */
	struct conf *conf;              /* --config's node config, or NULL */
} ctl_t;

/* The command options (the global ones land in ctl_t): bits for
 * ctl_verb.options and ctl_opts.given. */
enum {
	CTL_OPT_WAIT = 1 << 0,          /* --wait SECONDS */
	CTL_OPT_WORKERS = 1 << 1,       /* -w, --workers N */
	CTL_OPT_POOL = 1 << 2,
	CTL_OPT_REASON = 1 << 3,
	CTL_OPT_REVISION = 1 << 4,
	CTL_OPT_NODE = 1 << 5,
	CTL_OPT_JOBS = 1 << 6,
	CTL_OPT_CAPACITY = 1 << 7,
	CTL_OPT_MEMORY = 1 << 8,
	CTL_OPT_STRING = 1 << 9,
	CTL_OPT_STRICT = 1 << 10,
	/* upgrade start|plan: the plan's knobs */
	CTL_OPT_IMAGE = 1 << 11,
	CTL_OPT_CANARY = 1 << 12,
	CTL_OPT_BAKE = 1 << 13,
	CTL_OPT_AUTO_PROMOTE = 1 << 14,
	CTL_OPT_MAX_UNAVAILABLE = 1 << 15,
	CTL_OPT_MIN_HEALTHY_PERCENT = 1 << 16,
	CTL_OPT_MIN_HEALTHY_TIME = 1 << 17,
	CTL_OPT_HEALTHY_DEADLINE = 1 << 18,
	CTL_OPT_PROGRESS_DEADLINE = 1 << 19,
	CTL_OPT_GATE = 1 << 20,
	CTL_OPT_GATE_TIMEOUT = 1 << 21,
	CTL_OPT_WINDOW = 1 << 22,
	CTL_OPT_TZ = 1 << 23,
	CTL_OPT_SCHEDULE = 1 << 24,
	CTL_OPT_FINAL_BAKE = 1 << 25,
	CTL_OPT_NO_AUTO_ROLLBACK = 1 << 26,
	CTL_OPT_PREPARE_BLOCKS = 1 << 27,
	CTL_OPT_ID = 1 << 28,
	CTL_OPT_PLAN_FILE = 1 << 29,
	CTL_OPT_SUPERSEDE = 1 << 30,
	/* staged config rollouts: config set|import|rollback --staged, and
	 * upgrade start --config-id ID [--config-base ID] (64 bits: GCC gives
	 * the enum a 64-bit type) */
	CTL_OPT_STAGED = 1ULL << 31,
	CTL_OPT_CONFIG_ID = 1ULL << 32,
	CTL_OPT_CONFIG_BASE = 1ULL << 33,
	/* replace by relaunch: a machine image target and its knobs */
	CTL_OPT_AMI = 1ULL << 34,
	CTL_OPT_LAUNCH_TEMPLATE_VERSION = 1ULL << 35,
	CTL_OPT_MAX_SURGE = 1ULL << 36,
	CTL_OPT_KEEP_OLD = 1ULL << 37,
	CTL_OPT_STRATEGY = 1ULL << 38,
	CTL_OPT_SINCE = 1ULL << 39,     /* scale history --since DURATION */
	/* scale schedule add: one entry of pools.POOL.schedule */
	CTL_OPT_CRON = 1ULL << 40,
	CTL_OPT_AT = 1ULL << 41,
	CTL_OPT_MIN = 1ULL << 42,
	CTL_OPT_DURATION = 1ULL << 43,
	CTL_OPT_LEAD = 1ULL << 44,
	/* deployment add|reclaim|remove (--memory SIZE: CTL_OPT_SIZE) */
	CTL_OPT_OWNER = 1ULL << 45,
	CTL_OPT_LICENSE_EXPIRES = 1ULL << 46,
	CTL_OPT_NO_BACKUP = 1ULL << 47,
	CTL_OPT_SIZE = 1ULL << 48,
	CTL_OPT_SCHEDULE_ENTRY = CTL_OPT_CRON | CTL_OPT_AT | CTL_OPT_MIN | CTL_OPT_DURATION | CTL_OPT_LEAD,
	/* what `upgrade plan` takes: every knob; start takes --supersede too */
	CTL_OPT_PLAN_KNOBS = CTL_OPT_POOL | CTL_OPT_IMAGE | CTL_OPT_CANARY | CTL_OPT_BAKE | CTL_OPT_AUTO_PROMOTE |
			     CTL_OPT_MAX_UNAVAILABLE | CTL_OPT_MIN_HEALTHY_PERCENT | CTL_OPT_MIN_HEALTHY_TIME |
			     CTL_OPT_HEALTHY_DEADLINE | CTL_OPT_PROGRESS_DEADLINE | CTL_OPT_GATE | CTL_OPT_GATE_TIMEOUT |
			     CTL_OPT_WINDOW | CTL_OPT_TZ | CTL_OPT_SCHEDULE | CTL_OPT_FINAL_BAKE |
			     CTL_OPT_NO_AUTO_ROLLBACK | CTL_OPT_PREPARE_BLOCKS | CTL_OPT_ID | CTL_OPT_PLAN_FILE |
			     CTL_OPT_CONFIG_ID | CTL_OPT_CONFIG_BASE | CTL_OPT_AMI | CTL_OPT_LAUNCH_TEMPLATE_VERSION |
			     CTL_OPT_MAX_SURGE | CTL_OPT_KEEP_OLD | CTL_OPT_STRATEGY,
	/* what config set|import|rollback take with --staged: the knobs a
	 * config-only plan has (no image, no batches after the canary) */
	CTL_OPT_STAGED_KNOBS = CTL_OPT_STAGED | CTL_OPT_POOL | CTL_OPT_CANARY | CTL_OPT_BAKE | CTL_OPT_AUTO_PROMOTE |
			       CTL_OPT_MIN_HEALTHY_TIME | CTL_OPT_HEALTHY_DEADLINE | CTL_OPT_PROGRESS_DEADLINE |
			       CTL_OPT_GATE | CTL_OPT_GATE_TIMEOUT | CTL_OPT_NO_AUTO_ROLLBACK | CTL_OPT_ID |
			       CTL_OPT_SUPERSEDE,
};

/* upgrade start|plan: the plan's knobs as typed; upgrade.c parses them, so
 * that its messages name the option. NULL/false: not given. */
typedef struct ctl_plan_args {
	const char *image, *canary, *bake, *max_unavailable, *min_healthy_percent, *min_healthy_time,
		*healthy_deadline, *progress_deadline, *gate, *gate_timeout, *tz, *schedule, *final_bake, *id, *file;
	const char *config_id, *config_base;    /* target.config, config_base */
	const char *ami, *launch_template_version, *max_surge, *strategy;
	const char **windows;           /* every --window, in order */
	size_t n_windows;
	bool auto_promote, no_auto_rollback, prepare_blocks, supersede, staged, keep_old;
} ctl_plan_args;

/* scale schedule add: the entry as typed; schedule.c parses it, so that
 * its messages name the option. NULL: not given. */
typedef struct ctl_schedule_args {
	const char *cron, *at, *min, *duration, *lead;
} ctl_schedule_args;

/* A command's options and operands, parsed. */
typedef struct ctl_opts {
	uint64_t given;                 /* CTL_OPT_* bits seen */
	long wait;                      /* --wait seconds, -1: none */
	long workers;                   /* -w N, -1: none */
	const char *pool;               /* the last --pool */
	const char **pools;             /* every --pool, in order */
	size_t n_pools;
	const char *reason;
	const char *since;              /* --since, as typed */
	long long revision;             /* --revision, -1: none */
	const char *node;
	long jobs, capacity;            /* -1: not given */
	double memory;                  /* -1: not given, -2: not a fraction */
	const char *memory_text;        /* --memory as typed (deployment: a size) */
	const char *owner, *license_expires;    /* deployment, as typed */
	bool no_backup;
	bool as_string, strict;
	ctl_plan_args plan;
	ctl_schedule_args schedule;
	char **pos;                     /* the operands after the command's words */
	int n_pos;
	int argc;                       /* CTL_VERB_OWN_OPTIONS: the words after the */
	char **argv;                    /* group, as typed; argv[0] the verb */
} ctl_opts;

enum {
	CTL_VERB_ETCD = 1 << 0,         /* needs the cluster and the etcd client */
	CTL_VERB_CLUSTER = 1 << 1,      /* needs the cluster (its name), not etcd */
	CTL_VERB_OWN_OPTIONS = 1 << 2,  /* parses its own options (o->argc/argv); help: run with --help */
	CTL_VERB_VALUES = 1 << 3,       /* options end at the first operand, which may start with '-' */
	CTL_VERB_CSV = 1 << 4,          /* prints -o csv too */
};

/* One entry of the verb table: `corralctl [GROUP] NAME ARGS`. */
typedef struct ctl_verb {
	const char *group;              /* "config"; NULL: a command of its own */
	const char *name;               /* "rollback"; words may be several: "policy get" */
	const char *args;               /* the synopsis after the name: "[ID]" */
	const char *help;               /* what it does: lines, no indent */
	uint64_t options;               /* the CTL_OPT_* it takes */
	unsigned flags;                 /* CTL_VERB_* */
	unsigned char min_args, max_args;       /* how many operands (checked before run) */
	int (*run)(ctl_t *c, ctl_opts *o);      /* exit code */
} ctl_verb;

/* The groups' tables, each ended by an entry with name NULL. */
extern const ctl_verb ctl_status_verbs[], ctl_config_verbs[], ctl_policy_verbs[], ctl_scale_verbs[],
	ctl_cluster_verbs[], ctl_maintenance_verbs[], ctl_hold_verbs[], ctl_load_verbs[], ctl_ec2_verbs[],
	ctl_upgrade_verbs[], ctl_hosts_verbs[], ctl_history_verbs[], ctl_schedule_verbs[], ctl_deployment_verbs[];

/* ---- common.c ---------------------------------------------------------------- */

/* What the command line gave, before settings are resolved. */
typedef struct ctl_cmdline {
	const char *endpoints, *prefix, *cluster, *config, *pwfile;
	bool help, version;
} ctl_cmdline;

void ctl_done(ctl_t *c);
int ctl_set_str(char **dst, const char *src);
/* Resolves the cluster, endpoints and credentials (options, then --config,
 * then the environment). Exit code: 0, or 1/2 after printing why. */
int ctl_setup(ctl_t *c, const ctl_cmdline *cl);
/* The etcd client (and proposer id). Exit code. */
int ctl_connect(ctl_t *c);
/* Prints etcd's error; returns 1 (the exit code). */
int ctl_fail(const etcd_response *r);
/* "corralctl: <message>" plus a hint; returns 2. */
_printf_(1, 2) int ctl_usage_error(const char *fmt, ...);
/* An id an operator names (pool, instance, node, config): one key segment. */
static inline bool ctl_id_valid(const char *s) {
	return keys_id_valid(s, strlen(s));
}
int ctl_parse_int(const char *s, long min, long max, long *out);
int ctl_parse_double(const char *s, double min, double max, double *out);
/* UTC, ISO 8601. */
void ctl_format_time(char buf[32], time_t t);
/* {"since": now, "by": "user@host", "reason": text|null} as compact JSON. */
char *ctl_marker_json(const char *reason);

/* ---- opts.c ---------------------------------------------------------------------- */

typedef struct ctl_parsed {
	ctl_cmdline cl;
	ctl_opts opts;
	const ctl_verb *verb;           /* NULL: none (help or a usage error) */
	const char *words[4];           /* the command's words as found */
	size_t n_words;
	bool help_cmd;                  /* `corralctl help ...` */
} ctl_parsed;

/* A command option, for messages and usage. */
typedef struct ctl_option_doc {
	uint64_t bit;                   /* CTL_OPT_* */
	const char *spelling, *help;
} ctl_option_doc;

extern const ctl_option_doc ctl_option_docs[];  /* ended by bit 0 */

/* Parses argv into c (global options), p (the rest), finding the verb in
 * tables (NULL-terminated). Returns -1 when main goes on (p->verb set, or
 * p->cl.help/version), else the exit code after a usage error. */
int ctl_parse(ctl_t *c, const ctl_verb *const *tables, int argc, char **argv, ctl_parsed *p);
void ctl_parsed_done(ctl_parsed *p);
/* The verb whose words (group, then name) are words; *partial: some verb's
 * words start with them (a group, or "scale policy"). */
const ctl_verb *ctl_find_verb(const ctl_verb *const *tables, const char *const *words, size_t n, bool *partial);

/* ---- help.c ------------------------------------------------------------------------ */

/* Usage on stdout: the whole CLI (n_words 0), a group's or a verb's. 0, or
 * 2 when words name nothing. */
int ctl_help(const ctl_verb *const *tables, const char *const *words, size_t n_words);

/* ---- output.c ---------------------------------------------------------------------- */

/* 0 if stdout took everything, else 1. */
int ctl_flush(void);
/* rows: n rows of ncols cells each, row-major. */
void ctl_print_table(const char *const *header, char *const *rows, size_t n, size_t ncols);
/* The same, when every cell is set (a NULL cell: out of memory, 1); frees
 * the cells either way. Exit code. */
int ctl_print_rows(const char *const *header, char **rows, size_t n, size_t ncols);
/* Pretty JSON (tree_format_json) on stdout; 0 or 1. */
int ctl_print_json(json_t *v);
/* jansson's indent-2, sorted keys (nodes, ec2 describe); 0 or 1. */
int ctl_print_json_sorted(json_t *v);
/* A change's result: with -o json {"op", "key", "value", "dry_run"}, else
 * text (when not a dry run). Exit code. */
int ctl_report(ctl_t *c, const char *op, const char *key, const char *value, const char *text);
/* One CSV record (RFC 4180: a cell with a comma, quote, CR or LF is
 * quoted, quotes doubled; lines end in CRLF) on f; NULL cells are empty. */
void ctl_csv_row(FILE *f, const char *const *cells, size_t ncols);
/* A header and n rows of ncols cells as CSV on stdout; frees the cells.
 * Exit code (1: a NULL cell, out of memory). */
int ctl_print_csv(const char *const *header, char **rows, size_t n, size_t ncols);
/* One row of ncols cells per element of array, made by fill (a cell left
 * NULL: out of memory, 1), printed as a table or, csv true, as CSV. Exit
 * code. */
int ctl_print_array(json_t *array, const char *const *header, size_t ncols, void (*fill)(json_t *o, char **cells),
		    bool csv);
/* "-" for a missing or empty string field. */
char *ctl_field(json_t *o, const char *name);

/* ---- store.c -------------------------------------------------------------------------- */

/* Waits for the call s is for: 0 and *out, or -EIO after printing etcd's
 * error. An etcd found down (unreachable, unavailable, credentials refused)
 * fails the run's later store.c calls at once, unprinted: one message. */
int ctl_wait(ctl_t *c, etcd_sync *s, etcd_response **out);

/* The response to a read of key (one key). 0, -ENOMEM, -EIO (printed). */
int ctl_get_kv(ctl_t *c, const char *key, etcd_response **out);
/* The value of key (*value NULL when absent), its mod revision (0 when
 * absent), the store's revision; the last two may be NULL. 0, -ENOMEM,
 * -EIO (printed). */
int ctl_get(ctl_t *c, const char *key, char **value, int64_t *mod_rev, int64_t *revision);
/* key = value; with expect_mod >= 0 only if still at that mod revision
 * (0: absent), else -ESTALE. Dry run: says so, writes nothing. */
int ctl_put(ctl_t *c, const char *key, const char *value, int64_t expect_mod);
/* A key's mod revision a write depends on (0: absent). */
typedef struct ctl_guard {
	const char *key;
	int64_t mod;
} ctl_guard;
#define CTL_GUARDS_MAX 4
/* key = value only if each of the n guards' keys is still at its mod
 * revision (n 0: unconditionally), else -ESTALE; dry run as ctl_put. */
int ctl_put_guarded(ctl_t *c, const char *key, const char *value, const ctl_guard *g, size_t n);
/* 1 if it existed, 0 if not (dry run: 0), or -errno. */
int ctl_delete(ctl_t *c, const char *key);
/* The folder dir as {id: record}; records that are not JSON objects
 * become {"malformed": reason}; parse false: {id: value text}. 0,
 * -ENOMEM, -EIO (printed). */
int ctl_read_dir(ctl_t *c, keys_dir dir, bool parse, json_t **out);
int ctl_read_records(ctl_t *c, keys_dir dir, json_t **out);
/* A marker key's JSON (text that is not JSON as {"value": text}), NULL
 * when absent. */
int ctl_read_marker(ctl_t *c, const char *key, json_t **out);

/* ---- view.c ---------------------------------------------------------------------------- */

/* What etcd holds about scaling, read at one go. */
typedef struct ctl_view {
	int64_t revision;               /* the store's, at the policy read */
	char *policy_text;              /* NULL: absent */
	int64_t policy_mod;
	json_t *policy_doc;             /* parsed, or NULL */
	scale_policy policy;
	bool policy_ok;
	scale_error policy_err;
	json_t *hosts;                  /* {id: record} */
	json_t *holds;                  /* {id: record} */
	json_t *load;                   /* {node: record} */
	json_t *nodes;                  /* {node: record}: registered corrald nodes */
	json_t *queues;                 /* {pool: "text"} */
	json_t *maintenance;            /* record or NULL */
	json_t *stop;                   /* record or NULL */
	json_t *state, *metrics;        /* as the leader wrote them, or NULL */
} ctl_view;

int ctl_view_read(ctl_t *c, ctl_view *v);
void ctl_view_done(ctl_view *v);
bool ctl_view_held(ctl_view *v, const char *id, json_t *rec);
const char *ctl_host_state(json_t *rec);
/* ready + launching hosts of pool (each out may be NULL). */
int ctl_fleet_size(ctl_view *v, const char *pool, int *ready, int *launching);
/* "invalid policy: ..." on stderr; 2. */
int ctl_policy_invalid(const scale_error *err);
/* The scaling summary for status: pools (desired/min/max, hosts by state),
 * maintenance, stop, holds. New reference in *out; 0 or -errno (printed). */
int ctl_scale_summary(ctl_t *c, json_t **out);
/* Prints a summary made by ctl_scale_summary() as text on f. */
void ctl_scale_summary_print(json_t *summary, FILE *f);

/* ---- history.c ---------------------------------------------------------------- */

/* What status says about scaling: {"line": "scaling: ok, ...", "current":
 * false when the leader's last decision is stale (scaling stopped, or no
 * evaluation for long), "status": scale/status, "last_decision",
 * "last_evaluation"}. */
int ctl_scaling_status(ctl_t *c, json_t **out);
/* The summary on stderr as one line "corralctl: <when>: ..." (not with -q). */
void ctl_log_summary(ctl_t *c, const char *when);
/* Re-reads the view whenever something under the prefix changes until
 * pred holds or seconds pass. 0, -ETIMEDOUT, or -errno (-EIO printed). */
int ctl_wait_for(ctl_t *c, long seconds, bool (*pred)(ctl_view *v, const void *userdata), const void *userdata);

/* ---- marker.c ------------------------------------------------------------------------------ */

/* What a switch says: switched on, off, off when it was not on, and what
 * a marker in place is ("maintenance already on"). */
typedef struct ctl_marker_texts {
	const char *on, *off, *absent, *taken;
} ctl_marker_texts;

/* on: key = a marker with reason, created only if absent (else the one in
 * place is printed and the exit code is 1; c->force replaces it and prints
 * the replaced one), reported with t->on; off: deleted, reported with
 * t->off, or t->absent when it was not there. Logs the summary around it.
 * Exit code. */
int ctl_switch_marker(ctl_t *c, const char *key, bool on, const char *reason, const ctl_marker_texts *t);

/* ---- ec2.c ------------------------------------------------------------------------------------- */

/* The EC2 client corralctl uses, on event: the region from --region, then
 * $AWS_REGION, $AWS_DEFAULT_REGION; the endpoint from --ec2-endpoint, then
 * $CORRAL_EC2_ENDPOINT. Exit code: 0 with *out set, 0 with *out NULL when
 * no region is known (EC2 not configured), else 1/2 after saying why. */
int ctl_ec2_client(ctl_t *c, sd_event *event, ec2_client **out);

/* ---- policy.c -------------------------------------------------------------------------------- */

/* Edits v's policy document in place (and checks the result), writing a
 * line for the operator into msg. 0: write it; else the exit code. */
typedef int (*ctl_policy_edit_fn)(ctl_t *c, ctl_view *v, void *userdata, char *msg, size_t msg_size);
/* Reads the scaling view, lets edit_fn change the policy and writes it back
 * with compare-and-set on the revision read; a concurrent writer makes it
 * start over from what that one wrote (a few times), so both changes land.
 * Reports the write (ctl_report; -n: prints it, writes nothing). Exit
 * code. */
int ctl_policy_edit(ctl_t *c, ctl_policy_edit_fn edit_fn, void *userdata);

/* ---- scale.c -------------------------------------------------------------------------------- */

/* scale simulate: no etcd needed. argv[0] is "simulate". Exit code. */
int ctl_scale_simulate(format_t format, int argc, char **argv);

/* ---- upgrade-plan.c ---------------------------------------------------------------------------- */

/* The plan o describes (upgrade start|plan): --plan FILE or the defaults,
 * each option over them, checked as the leader will read it; *id_generated:
 * neither --id nor the file named it. Exit code: 0 (*out owned by the
 * caller), or 2 after naming the bad option or key. */
int ctl_upgrade_plan_build(const ctl_opts *o, time_t now, rollout_plan *out, bool *id_generated);
/* The default plan id: "p-YYYYMMDD-HHMMSS" (UTC). */
int ctl_upgrade_plan_id(time_t now, char buf[32]);

/* upgrade/plan and upgrade/state as stored. */
typedef struct ctl_upgrade_stored {
	char *plan_key, *state_key;
	char *plan_text;                /* NULL: no plan */
	int64_t plan_mod, state_mod;    /* 0: absent */
	json_t *plan_doc;               /* as stored (NULL: absent or not JSON) */
	rollout_plan plan;
	bool have_plan;                 /* the codec took it */
	char plan_error[300];           /* else why not (plan_text set) */
	rollout_state state;
	bool state_ok;                  /* the state parsed */
	bool state_is_plans;            /* ... and is about this plan */
	rollout_phase phase;            /* the plan's: the state's, else pending */
} ctl_upgrade_stored;

/* Reads both (two reads: a write that depends on them guards both mod
 * revisions). 0, -ENOMEM, -EIO (printed). */
int ctl_upgrade_read(ctl_t *c, ctl_upgrade_stored *s);
void ctl_upgrade_stored_done(ctl_upgrade_stored *s);
/* value into upgrade/plan if neither the plan nor the state moved since s
 * was read: 0, -ESTALE, or 1 (etcd's error printed). */
int ctl_upgrade_put(ctl_t *c, const ctl_upgrade_stored *s, const char *value);
/* Runs try (read, check, ctl_upgrade_put) until it returns anything but
 * -ESTALE, at most CTL_UPGRADE_TRIES times: each loss means the plan or
 * the state moved, so the next try sees something new. Exit code. */
#define CTL_UPGRADE_TRIES 10
int ctl_upgrade_cas(ctl_t *c, int (*try)(ctl_t *c, void *userdata), void *userdata);

/* Writes plan as upgrade/plan (ctl_upgrade_cas): refused (1) while a plan
 * runs, unless o's --supersede; a generated id (id_generated) is made
 * unique against the stored plan and history. quiet NULL or false:
 * prints the id (or -o json the write); true: prints nothing (the caller
 * reports). Exit code. */
int ctl_upgrade_start(ctl_t *c, const ctl_opts *o, rollout_plan *plan, bool id_generated, bool *quiet);
/* The same refusal, before anything is written (config --staged checks it
 * before it stages a candidate). Exit code. */
int ctl_upgrade_may_start(ctl_t *c, const ctl_opts *o);

/* ---- upgrade-control.c ------------------------------------------------------------------------- */

/* upgrade pause|resume|promote|abort|rollback|retry. Exit code. */
int ctl_upgrade_pause(ctl_t *c, ctl_opts *o);
int ctl_upgrade_resume(ctl_t *c, ctl_opts *o);
int ctl_upgrade_promote(ctl_t *c, ctl_opts *o);
int ctl_upgrade_abort(ctl_t *c, ctl_opts *o);
int ctl_upgrade_rollback(ctl_t *c, ctl_opts *o);
int ctl_upgrade_retry(ctl_t *c, ctl_opts *o);

/* ---- deployment-view.c ------------------------------------------------------------------------ */

/* deployment list, deployment show ID. Exit code. */
int ctl_deployment_list(ctl_t *c, ctl_opts *o);
int ctl_deployment_show(ctl_t *c, ctl_opts *o);
/* After deployment add: one line on stdout saying where the leader will
 * place deployment id of memory bytes ("placing on n2 (reserved, 2.0G of
 * 6.4G free)", "no host has room: waits for a new host"), or on stderr
 * why that is not known. */
void ctl_deployment_where(ctl_t *c, const char *id, int64_t memory);

/* ---- upgrade-view.c ---------------------------------------------------------------------------- */

/* upgrade status, upgrade plan. Exit code. */
int ctl_upgrade_status(ctl_t *c, ctl_opts *o);
int ctl_upgrade_schedule(ctl_t *c, ctl_opts *o);
