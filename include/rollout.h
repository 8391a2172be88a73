/* rollout.h — the rollout engine's pure half (docs/upgrades.md): the plan,
 * the leader's state, the orders it gives nodes and the progress they
 * report, as structs with JSON codecs; the windows and the cron schedule;
 * and the decision
 *
 *     rollout_decide(plan, state, nodes, gate, now) -> new state + actions
 *
 * which does no I/O, reads no clock and keeps nothing between calls: all it
 * remembers is in rollout_state (stored by the leader in upgrade/state) and
 * in the orders (upgrade/nodes/<id>), so a new leader decides exactly as
 * the old one would have, and continues a bake from its stored end.
 *
 * Keys (under <prefix>/, keys.h):
 *   upgrade/plan            operator, by CAS (corralctl upgrade start ...);
 *                           the operator's controls (pause, promote, abort,
 *                           rollback, retry) are fields of the plan, so the
 *                           leader reads one document and stays level-
 *                           triggered
 *   upgrade/state           leader, fenced: rollout_state
 *   upgrade/nodes/<node>    leader, fenced: rollout_order
 *   upgrade/progress/<node> that node: rollout_progress (no lease: it
 *                           survives a reboot)
 *   upgrade/stable          leader: the last target whose plan succeeded
 *   upgrade/history/<plan>  leader: a terminal summary
 *
 * Ownership: the codecs' structs own their strings (rollout_*_done frees
 * them). rollout_decide() borrows its input; its output owns what it holds
 * (rollout_output_done). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"

/* ---- enums ---------------------------------------------------------------- */

typedef enum rollout_phase {
	ROLLOUT_PENDING,        /* waiting for its schedule or window */
	ROLLOUT_PREPARING,      /* every eligible node runs its prepare steps */
	ROLLOUT_CANARY,         /* the canary nodes run their steps */
	ROLLOUT_CANARY_BAKE,    /* canaries done; baking until bake_until */
	ROLLOUT_PAUSED,         /* by the operator, an inconclusive gate, or
	                           waiting for promotion (reason says which) */
	ROLLOUT_ROLLING,        /* batch n */
	ROLLOUT_FINAL_BAKE,
	ROLLOUT_SUCCEEDED,      /* terminal */
	ROLLOUT_FAILED,         /* terminal */
	ROLLOUT_ROLLING_BACK,
	ROLLOUT_ROLLED_BACK,    /* terminal */
	ROLLOUT_CANCELLED,      /* terminal: aborted or superseded */
	_ROLLOUT_PHASE_MAX,
} rollout_phase;

/* What an order asks of a node. */
typedef enum rollout_verb {
	ROLLOUT_PREPARE,        /* run upgrade.prepare */
	ROLLOUT_UPGRADE,        /* run upgrade.steps towards target */
	ROLLOUT_ROLLBACK,       /* run upgrade.steps back to from (target and
	                           from swapped; CORRAL_ACTION=rollback) */
	ROLLOUT_FINISH,         /* the plan ended: run pending undos, then
	                           upgrade.cleanup when the order says so */
	_ROLLOUT_VERB_MAX,
} rollout_verb;

typedef enum rollout_role {
	ROLLOUT_ROLE_NONE,      /* prepare and finish orders */
	ROLLOUT_ROLE_CANARY,
	ROLLOUT_ROLE_BATCH,
	_ROLLOUT_ROLE_MAX,
} rollout_role;

/* A node's progress on its order. */
typedef enum rollout_step_state {
	ROLLOUT_STEP_RUNNING,
	ROLLOUT_STEP_DONE,      /* every step of the order ran and passed */
	ROLLOUT_STEP_FAILED,
	_ROLLOUT_STEP_STATE_MAX,
} rollout_step_state;

/* The fleet gate (plan.health.gate_command), run by the leader when the
 * decision asks (ROLLOUT_RUN_GATE): exit 0 pass, exit 1 fail, anything
 * else (another code, a signal, the timeout) inconclusive. */
typedef enum rollout_gate {
	ROLLOUT_GATE_NONE,      /* not run for this point */
	ROLLOUT_GATE_PASS,
	ROLLOUT_GATE_FAIL,
	ROLLOUT_GATE_INCONCLUSIVE,
	_ROLLOUT_GATE_MAX,
} rollout_gate;

/* JSON names: "canary_bake", "rollback", "canary", "running", "pass".
 * to_string: NULL out of range; from_string: -EINVAL unknown. */
const char *rollout_phase_to_string(rollout_phase p);
int rollout_phase_from_string(const char *s, rollout_phase *out);
const char *rollout_verb_to_string(rollout_verb v);
int rollout_verb_from_string(const char *s, rollout_verb *out);
const char *rollout_role_to_string(rollout_role r);
int rollout_role_from_string(const char *s, rollout_role *out);
const char *rollout_step_state_to_string(rollout_step_state s);
int rollout_step_state_from_string(const char *s, rollout_step_state *out);
const char *rollout_gate_to_string(rollout_gate g);
int rollout_gate_from_string(const char *s, rollout_gate *out);
bool rollout_phase_terminal(rollout_phase p);

/* Why a plan is paused. */
typedef enum rollout_pause {
	ROLLOUT_PAUSE_NONE,
	ROLLOUT_PAUSE_OPERATOR,         /* plan.paused; resume clears it */
	ROLLOUT_PAUSE_PROMOTION,        /* canary baked, auto_promote off: promote */
	ROLLOUT_PAUSE_GATE,             /* the gate was inconclusive: promote
	                                   (the operator's verdict) or abort */
	_ROLLOUT_PAUSE_MAX,
} rollout_pause;
const char *rollout_pause_to_string(rollout_pause p);   /* "operator", ... */
int rollout_pause_from_string(const char *s, rollout_pause *out);

typedef struct rollout_error {
	char key[128];          /* "batch.max_unavailable"; "" for the document */
	char message[256];      /* "batch.max_unavailable: must be >= 1" */
} rollout_error;

/* ---- target ---------------------------------------------------------------- */

/* What a node runs; every field NULL = not part of the target.
 *   image                    an opaque version string, changed in place by
 *                            the node's upgrade steps;
 *   config                   a snapshot id (configs/<id>/): a node with an
 *                            order naming it renders that snapshot instead
 *                            of `current` (it is pinned), in place;
 *   launch_template_version  a numbered version of the pool's launch
 *                            template ("7"; never "$Latest"/"$Default"):
 *                            the host is replaced;
 *   ami                      an image id ("ami-0abc..."): the leader makes
 *                            a launch template version of it (state
 *                            launch_template_version), the host is replaced. */
typedef struct rollout_target {
	char *image;
	char *config;
	char *launch_template_version;
	char *ami;
} rollout_target;

/* {"image": "...", "config": "...", "launch_template_version": "7", "ami":
 * "ami-..."}; a missing or null field is NULL. -EINVAL with err for an
 * empty string, a config that is no snapshot id, a version that is not a
 * positive number (a JSON number is taken too), an ami not "ami-...". */
int rollout_target_from_json(json_t *j, rollout_target *out, rollout_error *err);
json_t *rollout_target_to_json(const rollout_target *t);      /* every key */
void rollout_target_done(rollout_target *t);
int rollout_target_copy(const rollout_target *src, rollout_target *dst);       /* deep; -ENOMEM */
/* No field set. */
bool rollout_target_empty(const rollout_target *t);
/* Every field t names equals the node's (NULL in t: any). */
bool rollout_target_matches(const rollout_target *t, const char *image);
/* The target has a machine image part (launch_template_version or ami):
 * nodes cannot reach it in place. */
bool rollout_target_replaces(const rollout_target *t);

/* ---- windows and schedule -------------------------------------------------- */

/* "Mon-Fri 02:00-05:00": days (ranges and lists: "Mon-Fri", "Sat,Sun",
 * "Tue", "*" or "daily"), a start and an end (end before start: across
 * midnight; end == start: all day), in tz. */
typedef struct rollout_window {
	uint8_t days;           /* bit 0 = Sunday ... bit 6 = Saturday */
	int start;              /* minutes after midnight */
	int end;
	char *tz;               /* "UTC" (default), a fixed offset "+02:00", or
	                           an IANA name ("Europe/Rome") */
} rollout_window;

/* The text form; tz NULL = "UTC". -EINVAL with err. */
int rollout_window_parse(const char *text, const char *tz, rollout_window *out, rollout_error *err);
/* The JSON form {"days": "Mon-Fri", "start": "02:00", "end": "05:00",
 * "tz": "UTC"}. */
int rollout_window_from_json(json_t *j, rollout_window *out, rollout_error *err);
json_t *rollout_window_to_json(const rollout_window *w);
void rollout_window_done(rollout_window *w);
/* t inside any of the windows (no windows: always). */
bool rollout_in_windows(const rollout_window *w, size_t n, time_t t);
/* The first time >= t inside a window (t itself when inside); 0 when none
 * within 8 days (no day bit set). */
time_t rollout_next_window(const rollout_window *w, size_t n, time_t t);

/* Five-field cron ("0 2 * * 2"): minute hour day-of-month month
 * day-of-week, with *, lists, ranges and steps; day-of-week 0-7 (0 and 7
 * Sunday) or Sun..Sat. Both day fields restricted: either matches (as
 * cron does). */
typedef struct rollout_cron {
	uint64_t minutes;       /* bit per minute 0-59 */
	uint32_t hours;
	uint32_t mdays;         /* bits 1-31 */
	uint16_t months;        /* bits 1-12 */
	uint8_t wdays;          /* bits 0-6 */
	bool mday_star, wday_star;
	char *tz;               /* as a window's */
	char *text;             /* as given */
} rollout_cron;

int rollout_cron_parse(const char *text, const char *tz, rollout_cron *out, rollout_error *err);
void rollout_cron_done(rollout_cron *c);
/* The first whole minute > after that matches; 0 when none within 5 years. */
time_t rollout_cron_next(const rollout_cron *c, time_t after);
/* A UTC time as the plan's JSON writes it, "2026-01-02T03:04:05Z" (also
 * read by corralctl scale schedule --at). 0 or -EINVAL. */
int rollout_parse_time(const char *s, time_t *out);

/* ---- plan (upgrade/plan) --------------------------------------------------- */

/* How nodes reach the target (plan "strategy"). auto: in place for config
 * and image, replace for a machine image (both in one plan: image in place
 * on the survivors, the machine image by relaunch). */
typedef enum rollout_strategy {
	ROLLOUT_STRATEGY_AUTO,
	ROLLOUT_STRATEGY_IN_PLACE,
	ROLLOUT_STRATEGY_REPLACE,
	_ROLLOUT_STRATEGY_MAX,
} rollout_strategy;
const char *rollout_strategy_to_string(rollout_strategy s);     /* "auto", "in_place", "replace" */
int rollout_strategy_from_string(const char *s, rollout_strategy *out);

typedef struct rollout_plan {
	char *id;                       /* a key segment (keys_id_valid) */
	char **pools;                   /* NULL-terminated; NULL = every node */
	size_t n_pools;
	rollout_target target;          /* at least one field set */
	char *config_base;              /* target.config: the `current` id the
	                                   candidate was made from (the plan's
	                                   change is base -> target.config; the
	                                   leader rebases it when current moves);
	                                   NULL = none given (no rebase: a
	                                   conflict-free rebase needs the base) */
	rollout_strategy strategy;      /* auto */

	int canary_nodes;               /* 1; 0 = no canary phase */
	int64_t canary_bake;            /* s, 600 */
	bool auto_promote;              /* false: paused "needs promotion" */

	int max_unavailable;            /* 1 (>= 1) */
	int min_healthy_percent;        /* 90 (0..100) */
	int max_surge;                  /* replace: 1 (>= 0): replacements launched
	                                   beyond the pool's size per batch */
	bool keep_old_until_bake;       /* replace: old hosts stay (draining, not
	                                   terminated) until the final bake passes */

	int64_t min_healthy_time;       /* s, 30 */
	int64_t healthy_deadline;       /* s, 300: a node's silence */
	int64_t progress_deadline;      /* s, 900: no progress fleet-wide */
	char *gate_command;             /* NULL = no fleet gate */
	int64_t gate_timeout;           /* s, 60 */

	rollout_window *windows;
	size_t n_windows;
	rollout_cron *schedule;         /* NULL = start at once */
	int64_t final_bake;             /* s; -1 in JSON absent = canary_bake */
	bool auto_rollback;             /* true */
	bool prepare_blocks;            /* false: a node whose prepare fails is
	                                   left out (reported); true: the plan fails */
	time_t created;

	/* The operator's controls (corralctl upgrade pause|resume|promote|
	 * abort|rollback|retry edit them by CAS). */
	bool paused;
	int64_t promote;                /* a counter: above state.promote_seen = one
	                                   promotion (corralctl upgrade promote adds 1),
	                                   consumed by the pause it answers, so it
	                                   cannot answer a later one */
	bool abort;
	bool rollback;
	int64_t retry;                  /* a counter: above state.retry_seen = retry */
} rollout_plan;

/* Every knob's default; id and target empty. */
void rollout_plan_defaults(rollout_plan *p);
/* The JSON of ../shared/ROLLOUT.md ("canary": {"nodes", "bake",
 * "auto_promote"}, "batch": {"max_unavailable", "min_healthy_percent"},
 * "health": {...}, "windows": [...], "schedule", "final_bake",
 * "auto_rollback", "prepare_blocks", "created", "control": {"paused",
 * "promote", "abort", "rollback", "retry"}); durations as numbers of
 * seconds or "10m". Unknown keys are errors. -EINVAL with err, -ENOMEM. */
int rollout_plan_from_json(json_t *doc, rollout_plan *out, rollout_error *err);
json_t *rollout_plan_to_json(const rollout_plan *p);     /* every key */
void rollout_plan_done(rollout_plan *p);
/* The node's pool is in the plan's (or the plan names none). */
bool rollout_plan_covers(const rollout_plan *p, const char *pool);
/* A staged config rollout: the target is a config snapshot alone (a plan
 * with config and anything else is refused). */
bool rollout_plan_staged(const rollout_plan *p);

/* ---- state (upgrade/state) ------------------------------------------------- */

typedef struct rollout_state {
	char *plan;                     /* plan id; NULL = no state yet */
	int64_t generation;             /* >= 1 once started; +1 per retry */
	rollout_phase phase;
	rollout_phase paused_from;      /* the phase a pause returns to */
	rollout_pause pause;            /* why paused (phase paused) */
	int batch;                      /* 0 canary, 1.. batches */
	time_t phase_since;
	time_t started;                 /* the plan left pending */
	time_t bake_until;              /* canary_bake / final_bake end */
	time_t progress_at;             /* last time a node advanced: the
	                                   progress deadline counts from here */
	time_t finished;                /* terminal since */
	char *reason;                   /* why the last phase change */
	char *waiting;                  /* what the plan waits for now
	                                   ("node n3: step 4 (stop cms-app)",
	                                   "blocked: budget", "window Mon 02:00") */
	rollout_target previous;        /* the stable target before this plan */
	int64_t retry_seen;
	int64_t promote_seen;           /* plan.promote consumed by the last promotion */
	rollout_gate gate;              /* the last gate result ... */
	time_t gate_at;                 /* ... and when it was run (0 none) */
	/* config targets (staged config rollout) */
	char *candidate;                /* the snapshot nodes are pinned to now:
	                                   plan.target.config, or its rebase on a
	                                   newer `current`; NULL before the plan
	                                   started */
	char *candidate_base;           /* the `current` id candidate was made on */
	int64_t rebases;                /* how many times the candidate was rebased */
	time_t promoted;                /* `current` was CAS'd to candidate (0: not yet) */
	/* machine image targets (replace by relaunch) */
	char *launch_template_version;  /* the numbered version replacements launch
	                                   with: plan.target's, or the one the
	                                   leader made of target.ami */
} rollout_state;

int rollout_state_from_json(json_t *doc, rollout_state *out, rollout_error *err);
json_t *rollout_state_to_json(const rollout_state *s);
void rollout_state_done(rollout_state *s);

/* ---- orders (upgrade/nodes/<node>) ----------------------------------------- */

typedef struct rollout_order {
	char *plan;
	int64_t generation;
	rollout_verb verb;
	rollout_role role;
	int batch;
	rollout_target target;          /* what to run after the steps */
	rollout_target from;            /* what it ran before (the way back) */
	bool cleanup;                   /* finish: run upgrade.cleanup */
	time_t issued;
} rollout_order;

int rollout_order_from_json(json_t *doc, rollout_order *out, rollout_error *err);
json_t *rollout_order_to_json(const rollout_order *o);
void rollout_order_done(rollout_order *o);
/* A deep copy (the decision's output owns its orders). */
int rollout_order_copy(const rollout_order *src, rollout_order *dst);
/* A replace-only order (target or from a machine image, neither an image
 * nor a config): the host is replaced by the leader's scaler, the node
 * itself runs nothing for it. */
bool rollout_order_replaces(const rollout_order *o);
/* A plan with an image and a machine image (strategy auto): hosts not on
 * the machine image are replaced, the others get the image in place. */
bool rollout_plan_both(const rollout_plan *p);
/* The ClientToken of the replacement for old_instance in this plan,
 * generation and batch: "corral-r-" + 16 hex digits of FNV-1a 64 over
 * plan, generation, batch and the instance id (deterministic: a successor
 * leader resends the same one), <= 64 chars; a rollback's relaunch passes
 * back = true ("corral-b-..."). */
void rollout_replace_token(const char *plan, int64_t generation, int batch, const char *old_instance, bool back,
			   char out[65]);
/* The ClientToken of the launch template version made of plan.target.ami:
 * "corral-v-" + 16 hex of FNV-1a 64 over plan id and generation. */
void rollout_version_token(const char *plan, int64_t generation, char out[65]);

/* ---- progress (upgrade/progress/<node>) ------------------------------------ */

typedef struct rollout_progress {
	char *plan;
	int64_t generation;
	rollout_verb verb;              /* of the order this reports on */
	rollout_step_state state;
	int step;                       /* index into the order's step list */
	int n_steps;
	char *step_name;                /* "stop cms-app.service", for humans */
	char *boot_id;
	time_t started, finished;       /* of the order's step list */
	time_t updated;                 /* last write: silence counts from here */
	char *error;                    /* failed: what ("exit status 1"); step and
	                                   step_name say where */
	char *image;                    /* image_command's output after the steps */
	char *config;                   /* config orders: the snapshot id whose files
	                                   the node has in place for this order */
	int *once_done;                 /* indexes of once steps already started */
	size_t n_once_done;
	int *undo_pending;              /* indexes of steps whose undo is owed */
	size_t n_undo_pending;
} rollout_progress;

int rollout_progress_from_json(json_t *doc, rollout_progress *out, rollout_error *err);
json_t *rollout_progress_to_json(const rollout_progress *p);
void rollout_progress_done(rollout_progress *p);

/* ---- the decision ---------------------------------------------------------- */

/* One node as the leader sees it at one revision. */
typedef struct rollout_node {
	const char *id;
	const char *pool;               /* NULL: none */
	const char *image;              /* nodes/<id>.image; NULL unknown */
	const char *config;             /* status/<id>.applied: the snapshot whose
	                                   files are in place; NULL unknown */
	const char *instance;           /* nodes/<id>.instance_id; NULL: not EC2 */
	const char *launch_template_version;    /* its host record's; NULL unknown */
	const char *image_id;           /* its host record's AMI; NULL unknown */
	/* replace by relaunch, from scale/hosts/ (observe): */
	const char *replacement;        /* the live host launched to replace this
	                                   node's (a record whose "replaces" names
	                                   its instance); NULL none yet */
	bool replacement_healthy;       /* the replacement's node registered, status ok */
	bool replacement_draining;      /* the replacement is draining or terminating */
	time_t replacement_ready;       /* its record ready since; 0 not ready */
	bool draining;                  /* this node's own host is draining or
	                                   terminating (or its record terminated) */
	bool registered;                /* nodes/<id> exists (its lease lives) */
	bool status_ok;                 /* status/<id> says ok (or no status yet) */
	bool held;                      /* holds/<node-id> or holds/<instance-id> */
	bool launching;                 /* its host is still launching */
	time_t booted;                  /* nodes/<id>.boot_time: a host that booted
	                                   after the plan started is new capacity
	                                   (a corrald restart does not make one) */
	const rollout_order *order;     /* upgrade/nodes/<id>; NULL none */
	const rollout_progress *progress;       /* upgrade/progress/<id>; NULL none */
} rollout_node;

typedef struct rollout_input {
	const rollout_plan *plan;       /* NULL: no plan */
	const rollout_state *state;     /* never NULL; plan NULL = none yet */
	const rollout_target *stable;   /* upgrade/stable; NULL none */
	const char *current;            /* `current`'s snapshot id; NULL none */
	int64_t current_mod_revision;   /* 0 none */
	const rollout_node *nodes;      /* sorted by id */
	size_t n_nodes;
	rollout_gate gate;              /* the gate's result for this point, when
	                                   the caller ran it at the decision's
	                                   request (ROLLOUT_GATE_NONE otherwise) */
	/* the result of a ROLLOUT_REBASE the caller ran at the decision's
	 * request (NULL otherwise): the new snapshot and the `current` it was
	 * made on, or why it could not be made ("cms/port was changed by both
	 * the plan and c_9"): the plan fails */
	const char *rebased;
	const char *rebased_base;
	const char *rebase_error;
	const char *created_version;    /* the launch template version the caller
	                                   made at the decision's request
	                                   (ROLLOUT_CREATE_VERSION); NULL otherwise */
	time_t now;
} rollout_input;

typedef enum rollout_action_kind {
	ROLLOUT_WRITE_ORDER,            /* put upgrade/nodes/<node> = order */
	ROLLOUT_DELETE_ORDER,           /* delete upgrade/nodes/<node> */
	ROLLOUT_SET_STABLE,             /* put upgrade/stable = plan target */
	ROLLOUT_WRITE_HISTORY,          /* put upgrade/history/<plan> = summary */
	ROLLOUT_RUN_GATE,               /* run gate_command, then decide again
	                                   with its result (nothing else in the
	                                   output is to be carried out) */
	ROLLOUT_REBASE,                 /* staged config: `current` moved off
	                                   state.candidate_base: make the plan's
	                                   change (candidate_base -> candidate)
	                                   on `current` as a new staged snapshot
	                                   (agree_rebase()), then decide again
	                                   with the result in the input
	                                   (rebased / rebase_error); nothing
	                                   else in the output is carried out */
	ROLLOUT_PROMOTE,                /* staged config: CAS `current` from
	                                   input.current (its mod_revision) to
	                                   state.candidate, in the txn that
	                                   writes the state (fenced); when
	                                   `current` moved meanwhile nothing is
	                                   written and the round fails -EAGAIN */
	ROLLOUT_CREATE_VERSION,         /* make a launch template version of
	                                   plan.target.ami (ClientToken from plan
	                                   id + generation), store its number in
	                                   state.launch_template_version (fenced),
	                                   then decide again (nothing else in the
	                                   output is to be carried out) */
	_ROLLOUT_ACTION_MAX,
} rollout_action_kind;

typedef struct rollout_action {
	rollout_action_kind kind;
	const char *node;               /* borrowed from the input; NULL for plan-wide */
	rollout_order order;            /* WRITE_ORDER: owned */
	char line[256];                 /* one log line: "node n3: upgrade (batch 2)" */
} rollout_action;

typedef struct rollout_node_view {
	const char *id;                 /* borrowed */
	const char *step;               /* "preparing", "canary", "batch 2",
	                                   "done", "failed", "skipped: held", ... */
	bool healthy;
} rollout_node_view;

typedef struct rollout_output {
	rollout_state state;            /* the new state (owned) */
	bool state_changed;             /* write it (fenced) */
	rollout_action *actions;
	size_t n_actions;
	json_t *history;                /* WRITE_HISTORY's summary (owned) */
	time_t wake;                    /* decide again at this time at the
	                                   latest (0: only on a change) */
	char line[256];                 /* the decision in one line, "" = nothing
	                                   new ("p42 gen 1: canary -> canary_bake
	                                   (n1 healthy 30s)") */
	rollout_node_view *nodes;       /* per input node, same order */
	size_t n_nodes;
	/* metrics */
	unsigned n_done, n_running, n_failed, n_pending, n_skipped;
} rollout_output;

/* The decision; see docs/upgrades.md "Rules". 0 or -ENOMEM. */
int rollout_decide(const rollout_input *in, rollout_output *out);
void rollout_output_done(rollout_output *out);

/* May this plan take the node at all? false with *why ("held", "launching",
 * "not in pools", "already on target", "no upgrade config" (image NULL),
 * "not registered"; a machine image plan: "not an EC2 host", "draining"). */
bool rollout_node_eligible(const rollout_plan *p, const rollout_node *n, const char **why);
/* The plan replaces this node's host (else, if eligible, it runs its
 * upgrade steps in place). */
bool rollout_node_replaced(const rollout_plan *p, const rollout_node *n);

/* The batch budget (principle 4): how many more nodes may be taken now.
 * n pool size, healthy nodes healthy now, in_flight being upgraded,
 * max_unavailable, min_healthy_percent. Never negative. */
int rollout_budget(int n, int healthy, int in_flight, int max_unavailable, int min_healthy_percent);

/* ---- schedule: what `corralctl upgrade plan` prints (pure) ------------------ */

/* The plan's schedule from the nodes as they are now: which nodes are
 * skipped and why, the canaries, then the batches the budget allows when
 * every node stays healthy. Built from rollout_node_eligible() and
 * rollout_budget(), the decision's own rules. */
typedef struct rollout_schedule {
	const char **skipped; const char **skipped_why; size_t n_skipped;   /* borrowed */
	const char **canary; size_t n_canary;
	const char ***batches; size_t *batch_sizes; size_t n_batches;
	const char **replaced; size_t n_replaced;       /* sorted: the hosts replaced (rollout_plan_both) */
} rollout_schedule;

int rollout_schedule_build(const rollout_input *in, rollout_schedule *out);
void rollout_schedule_done(rollout_schedule *s);
/* Text, one line per batch; new string. */
char *rollout_schedule_format(const rollout_plan *p, const rollout_schedule *s);

/* ---- observe: etcd records -> rollout_input (pure) -------------------------- */

typedef struct rollout_kv {
	const char *key;
	const char *value;
	size_t len;                     /* value bytes, not NUL-terminated */
} rollout_kv;

/* What one txn read at one revision: upgrade/, nodes/, status/, holds/,
 * scale/hosts/. The arrays hold the folder's kvs in any order. */
typedef struct rollout_records {
	const char *prefix;
	const rollout_kv *upgrade; size_t n_upgrade;    /* plan, state, stable,
	                                                   nodes/, progress/, history/ */
	const rollout_kv *nodes; size_t n_nodes;
	const rollout_kv *status; size_t n_status;
	const rollout_kv *holds; size_t n_holds;
	const rollout_kv *hosts; size_t n_hosts;        /* scale/hosts/ */
	const rollout_kv *current;      /* `current` (its value the id); NULL none */
	int64_t current_mod_revision;
	time_t now;
} rollout_records;

/* Everything observe parsed (owned) and the input pointing into it. A
 * record that does not parse is left out and noted ("upgrade/nodes/n3:
 * ..."); an unparsable plan makes plan NULL and a note (the decision then
 * does nothing new). */
typedef struct rollout_view {
	rollout_plan plan;
	bool have_plan;
	char *plan_error;               /* NULL, or why upgrade/plan was refused */
	rollout_state state;
	rollout_target stable;
	bool have_stable;
	char *current;                  /* `current`'s id, NULL none */
	rollout_order *orders; size_t n_orders;
	rollout_progress *progress; size_t n_progress;
	rollout_node *nodes; size_t n_nodes;
	char **notes; size_t n_notes;
	rollout_input input;
} rollout_view;

int rollout_observe(const rollout_records *r, rollout_view *out);
void rollout_view_done(rollout_view *v);
