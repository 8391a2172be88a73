/* scale.h — the autoscaler's decision, as a pure function (issue 5).
 *
 *   (policy, hosts, load, prices, reservations, hysteresis state, now)
 *        -> actions + metrics + new hysteresis state
 *
 * scale_decide() does no I/O, reads no clock and keeps nothing between
 * calls: everything it remembers (when a pool last scaled in, since when it
 * has had a surplus, how many launch decisions it has made) is in
 * scale_pool_state, an input AND an output. The leader stores the output
 * state in etcd beside the host records and passes it back next time, so a
 * successor leader decides exactly as the old one would have.
 *
 * The engine knows nothing about EC2 or etcd: the leader turns EC2 answers
 * and etcd records into these structs, and the actions into RunInstances /
 * TerminateInstances calls and record updates. docs/scale.md has the rules
 * as implemented, every default and the JSON schemas; the short version:
 *
 *   - Per pool a policy gives a wanted host count (jobs: n + 2*sqrt(n) job
 *     slots or n * factor; queue; threshold; fixed), then the manual desired
 *     count replaces it, then it is clamped to [min, max]. A cluster stop
 *     makes it 0 (below min).
 *   - Too few hosts (ready + launching < wanted): undrain draining hosts,
 *     newest first, then launch: reserved-covered on-demand, spot under the
 *     maximum price, on-demand. Too many (ready > wanted, for long enough and
 *     not within the cooldown): drain victims. Never terminate a working
 *     host; terminate draining/unhealthy hosts once they have no jobs.
 *   - Hosts tagged hold are never drained or terminated; hosts without the
 *     cluster's tag are never touched; maintenance produces no action.
 *
 * Ownership: scale_decide() borrows every string of its input; the actions,
 * metrics and state it writes point at those same strings (instance ids,
 * pool names, types, subnets), so the input must outlive the output. Only
 * the arrays are allocated; scale_output_done() frees them. Structs filled
 * by the JSON codecs (scale_policy_from_json, scale_host_from_json) own
 * their strings and are released with scale_policy_done / scale_host_done. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"

/* ---- enums -------------------------------------------------------------------------- */

typedef enum scale_state {
	SCALE_LAUNCHING,
	SCALE_READY,
	SCALE_DRAINING,
	SCALE_UNHEALTHY,
	SCALE_TERMINATING,
	SCALE_TERMINATED,
	SCALE_STOPPED,          /* in the warm pool: stopped by StopInstances, owned,
	                           not capacity; started (-> launching) on scale-out */
	_SCALE_STATE_MAX,
} scale_state;

typedef enum scale_market {
	SCALE_ON_DEMAND,
	SCALE_SPOT,
	_SCALE_MARKET_MAX,
} scale_market;

typedef enum scale_kind {
	SCALE_POLICY_JOBS,
	SCALE_POLICY_QUEUE,
	SCALE_POLICY_THRESHOLD,
	SCALE_POLICY_FIXED,
	SCALE_POLICY_DEMAND,    /* jobs running + waiting, with sqrt headroom (issue 17) */
	_SCALE_POLICY_MAX,
} scale_kind;

typedef enum scale_billing {
	SCALE_BILLING_PER_SECOND,       /* Linux today: per second, 60 s minimum */
	SCALE_BILLING_HOURLY,           /* SUSE, AMIs with an hourly charge */
	_SCALE_BILLING_MAX,
} scale_billing;

/* Names as used in JSON and plans ("launching", "on-demand", "jobs",
 * "per-second"); NULL when out of range. from_string: -EINVAL if unknown. */
const char *scale_state_to_string(scale_state s);
int scale_state_from_string(const char *s, scale_state *out);
const char *scale_market_to_string(scale_market m);
int scale_market_from_string(const char *s, scale_market *out);
const char *scale_kind_to_string(scale_kind k);
int scale_kind_from_string(const char *s, scale_kind *out);
const char *scale_billing_to_string(scale_billing b);
int scale_billing_from_string(const char *s, scale_billing *out);

/* ---- policy (<prefix>/scale/policy) ------------------------------------------------- */

typedef struct scale_subnet {
	char *id;               /* "subnet-0abc" */
	char *availability_zone;        /* NULL when not given: only regional reservations match */
} scale_subnet;

/* Forecast (issue 17, docs/scale.md "Forecast"): the leader keeps a per-pool
 * load history (scale/load_history/<pool>, scale-forecast.h) and wants at
 * least the capacity for the demand forecast over the next horizon. */
typedef struct scale_forecast_conf {
	bool enabled;           /* false by default */
	int64_t lookback;       /* s of history kept and read (604800: 7 days) */
	int64_t season;         /* s: the period compared (86400: a day) */
	int64_t horizon;        /* s ahead: the time a new host takes to serve (300) */
} scale_forecast_conf;

/* Scheduled capacity: a minimum from lead before each event until
 * duration after it. An event is a five-field cron in UTC or one time. */
typedef struct scale_schedule {
	char *cron;             /* "0 10 * * 1-5", or NULL when at is set */
	time_t at;              /* RFC 3339 time given, 0 with cron */
	int min;                /* hosts at least while it holds */
	int64_t duration;       /* s from the event (3600) */
	int64_t lead;           /* s before the event (900) */
} scale_schedule;

typedef struct scale_pool {
	char *name;
	char *launch_template;          /* id or name, passed through to the launch */
	char **instance_types;          /* preference order, n >= 1 */
	size_t n_instance_types;
	scale_subnet *subnets;          /* n >= 1 */
	size_t n_subnets;

	/* markets allowed */
	bool market_reserved;           /* on-demand covered by an unused reservation */
	bool market_spot;
	bool market_on_demand;
	double spot_max_price;          /* USD/hour; spot only when price < this */
	bool fast_start;                /* launch on-demand now, replace with spot */

	int min, max;
	int min_idle;                   /* queue / threshold policies */
	int jobs_per_host;              /* 0: the largest job_capacity a healthy host reports */
	scale_kind kind;
	double capacity_factor;         /* jobs policy: 0 = n + 2*sqrt(n), else n * factor */
	int max_queued_jobs;            /* queue policy: one host up while queue > this */
	double memory_threshold;        /* threshold policy: fraction 0..1 */
	int hosts;                      /* fixed policy: N (-1 = min) */
	bool enabled;
	int desired;                    /* manual override, -1 = none */

	/* demand-aware scaling (issue 17) */
	scale_forecast_conf forecast;
	int warm_pool_size;             /* stopped hosts kept ready to start (0: none) */
	bool warm_reuse_on_scale_in;    /* scale-in stops hosts into the pool before
	                                   terminating (true) */
	int64_t warm_refill_after;      /* s after the last start before the pool is
	                                   refilled (3600): the hosts it lent come back
	                                   on scale-in first */
	scale_schedule *schedule;       /* n_schedule entries, in the order given */
	size_t n_schedule;

	scale_billing billing;
	int64_t hourly_threshold;       /* s into the billed hour before idle hosts go (3000) */
	int64_t min_lifetime;           /* per-second: no termination before this uptime (60) */
	int64_t scale_in_cooldown;      /* s after a scale-in before the next (600) */
	int64_t scale_in_after;         /* s a surplus must last before a scale-in (600) */
	int64_t launch_timeout;         /* s launching without registering (600) */
	int64_t unhealthy_timeout;      /* s unhealthy before terminating regardless (43200) */
	int64_t drain_timeout;          /* s draining before terminating regardless (0: never) */
	int64_t health_timeout;         /* s without a heartbeat before unhealthy (60) */
	int64_t terminate_retry;        /* s before resending a terminate (300) */
} scale_pool;

typedef struct scale_policy {
	scale_pool *pools;      /* sorted by name, unique */
	size_t n_pools;
} scale_policy;

/* A pool with every default filled in (name, launch template, types and
 * subnets left empty). */
void scale_pool_defaults(scale_pool *p);

typedef struct scale_error {
	char key[128];          /* "pools.web.max"; "" when the document itself */
	char message[256];      /* "pools.web.max: must be >= min" */
} scale_error;

/* {"pools": {"name": {...}}} -> policy (owns its strings, pools sorted by
 * name). -EINVAL with err filled naming the first bad key (checked in a
 * fixed order: pools by name, then keys in the order of docs/scale.md);
 * unknown keys are errors too, so a typo does not silently fall back to a
 * default. -ENOMEM. */
int scale_policy_from_json(json_t *doc, scale_policy *out, scale_error *err);
/* Every key written, defaults included. New reference or NULL (ENOMEM). */
json_t *scale_policy_to_json(const scale_policy *p);
void scale_policy_done(scale_policy *p);
const scale_pool *scale_policy_find(const scale_policy *p, const char *name);

/* ---- hosts (<prefix>/scale/hosts/<instance-id>) ------------------------------------- */

#define SCALE_TOKEN_MAX 64      /* EC2's ClientToken limit */

/* What the rollout asks of a host (its node's order, replace by relaunch). */
typedef enum scale_replace {
	SCALE_REPLACE_NONE,
	SCALE_REPLACE_UPGRADE,  /* launch its replacement, then drain it */
	SCALE_REPLACE_ROLLBACK, /* drain its replacement, undrain it */
} scale_replace;

typedef struct scale_host {
	char *id;               /* instance id */
	char *pool;
	scale_state state;
	scale_market market;
	char *instance_type;
	char *availability_zone;
	time_t launch_time;
	time_t state_since;     /* when it entered state */
	char *node_id;          /* registered corrald node, NULL = none */
	time_t last_seen;       /* the node's last heartbeat (0 = never) */
	int jobs;               /* running */
	int job_capacity;       /* as reported, 0 = unknown */
	double memory_used;     /* fraction 0..1 */
	bool cluster_tagged;    /* carries the cluster's tag; false: never touched */
	bool hold;              /* tag hold: never drained or terminated */
	bool autoscale_off;     /* tag autoscale=off: its pool is not scaled */
	bool interruption;      /* spot interruption notice received */
	bool winding_down;      /* draining, and its node runs a wind-down hook that
	                           has not reported ready_to_stop: not terminated yet */
	bool warm;              /* launched to fill the warm pool: stopped once
	                           registered, never counted as capacity */
	bool reserved;          /* launched on-demand expected to be covered by a
	                           reservation (the launch's market decision);
	                           deployments are placed on such hosts first */
	bool in_rollout;        /* its node has an upgrade or rollback order of the
	                           rollout under way that is not finished (observe,
	                           not stored): never drained, terminated as broken
	                           or counted as surplus while it lasts; so is the
	                           replacement of such a host */
	/* replace by relaunch (docs/upgrades.md, src/scale/replace.c) */
	char *launch_template_version;  /* what it was launched with ("7"); NULL unknown */
	char *image_id;                 /* its AMI, from DescribeInstances; NULL unknown */
	char *replaces;                 /* launched to replace this instance; NULL none */
	scale_replace replace;          /* observe, not stored: its node's replace order */
	char *replace_version;          /* REPLACE_UPGRADE: the numbered version to launch */
	char *replace_image;            /* ... the AMI it was made of (NULL: not known) */
	bool status_failed;             /* observe: status/<node> says "ok": false */
	char replace_token[SCALE_TOKEN_MAX + 1];        /* ... and its ClientToken */
} scale_host;

/* Host record JSON <-> struct. from_json: -EINVAL with err naming the key
 * ("host.state: unknown state \"x\""); owns its strings. */
int scale_host_from_json(json_t *rec, scale_host *out, scale_error *err);
json_t *scale_host_to_json(const scale_host *h);
void scale_host_done(scale_host *h);

/* ---- the other inputs --------------------------------------------------------------- */

typedef struct scale_queue {
	char *pool;
	int length;             /* jobs waiting cluster-wide for the pool */
} scale_queue;

typedef struct scale_price {
	char *instance_type;
	char *availability_zone;
	double price;           /* current spot price, USD/hour */
} scale_price;

typedef struct scale_reservation {
	char *instance_type;
	char *availability_zone;        /* NULL = regional (any AZ) */
	int count;
} scale_reservation;

/* The last spot launch of this pool and type hit a capacity error
 * (InsufficientInstanceCapacity and the like): fall back to on-demand. */
typedef struct scale_spot_error {
	char *pool;
	char *instance_type;
} scale_spot_error;

/* The forecast of a pool's demand (jobs running + waiting) over the next
 * horizon, from its load history (scale-forecast.h); made by observe. */
typedef struct scale_forecast {
	char *pool;
	int demand;             /* peak demand expected within (now, now + horizon] */
} scale_forecast;

/* What the engine remembers per pool. All zero for a pool never seen. */
typedef struct scale_pool_state {
	char *pool;
	time_t last_scale_in;   /* last decision that drained for surplus, 0 never */
	time_t surplus_since;   /* the surplus started here, 0 = no surplus */
	uint64_t launch_seq;    /* launch decisions so far; tokens use launch_seq + 1 */
	time_t last_warm_start; /* last decision that started stopped hosts, 0 never */
	int surplus_want;       /* demand policy: the most hosts wanted since the
	                           surplus began; a scale-in keeps that many */
} scale_pool_state;

/* The machine image rollout as the scaler sees it (upgrade/plan, state,
 * stable): which pool, what new capacity launches on, the plan's knobs. */
typedef struct scale_rollout {
	const char *pool;       /* the one pool of a machine image plan; NULL none */
	const char *launch_template_version;    /* that pool's new capacity: the
	                                           plan's while it runs, upgrade/
	                                           stable's after; NULL: default */
	const char *image_id;   /* the AMI that version launches, when known */
	int max_surge;          /* replacements launched beyond the pool's size */
	int64_t min_healthy_time;       /* s a replacement is ready before its old host drains */
	bool keep_old;          /* old hosts drain but stay until the plan ends */
} scale_rollout;

typedef struct scale_input {
	const char *cluster;    /* cluster name, part of every client token */
	const scale_rollout *rollout;   /* NULL: none */
	const scale_policy *policy;
	const scale_host *hosts;
	size_t n_hosts;
	const scale_queue *queues;
	size_t n_queues;
	const scale_price *prices;
	size_t n_prices;
	const scale_reservation *reservations;
	size_t n_reservations;
	const scale_spot_error *spot_errors;
	size_t n_spot_errors;
	const scale_pool_state *state;
	size_t n_state;
	const scale_forecast *forecasts;        /* pools with forecast enabled and a history */
	size_t n_forecasts;
	bool maintenance;       /* cluster maintenance: no action at all */
	bool stop;              /* cluster stop: every pool wants 0 hosts */
	time_t now;
} scale_input;

/* ---- the output --------------------------------------------------------------------- */

typedef enum scale_action_kind {
	SCALE_ACTION_TRANSITION,        /* record state change only (-> ready, -> unhealthy) */
	SCALE_ACTION_TERMINATE,         /* -> terminating, then TerminateInstances */
	SCALE_ACTION_DRAIN,             /* ready -> draining */
	SCALE_ACTION_UNDRAIN,           /* draining -> ready */
	SCALE_ACTION_LAUNCH,            /* RunInstances, records as launching */
	SCALE_ACTION_STOP,              /* -> stopped (warm pool), then StopInstances */
	SCALE_ACTION_START,             /* stopped -> launching, then StartInstances */
	_SCALE_ACTION_MAX,
} scale_action_kind;

const char *scale_action_kind_to_string(scale_action_kind k);

typedef struct scale_action {
	scale_action_kind kind;
	const char *pool;
	/* transition, terminate, drain, undrain */
	const char *id;
	scale_state from, to;
	const char *why;        /* static text: "no jobs", "surplus", "spot interruption" */
	/* launch */
	const char *launch_template;
	const char *instance_type;
	scale_market market;
	bool reserved;          /* on-demand expected to be covered by a reservation */
	const char *subnet;
	const char *availability_zone;  /* the subnet's, may be NULL */
	int count;
	char client_token[SCALE_TOKEN_MAX + 1];
	const char *launch_template_version;    /* NULL: the template's default
	                                           ("$Latest", as before rollouts) */
	const char *replaces;   /* a replacement: the instance it replaces */
	const char *image_id;   /* the AMI the version launches, when known: recorded
	                           at once (the rollout tells new hosts by it) */
	bool warm;              /* a launch that fills the warm pool (recorded warm) */
} scale_action;

/* Every input and output of one pool's decision. */
typedef struct scale_metrics {
	const char *pool;
	int hosts[_SCALE_STATE_MAX];    /* by state, as the input had them */
	int hosts_held;
	int hosts_in_rollout;   /* ready hosts a rollout is taking through its steps */
	int replaced, replacing;        /* replacements launched now, old hosts in a batch */
	int hosts_covered;      /* on-demand hosts covered by a reservation */
	int jobs;               /* running on every live host */
	int jobs_unhealthy;     /* of those, on unhealthy hosts (not served) */
	int job_capacity;       /* sum reported by ready hosts */
	int jobs_per_host;      /* used for the jobs policy */
	int queue;
	double desired_capacity;        /* jobs policy: job slots wanted */
	int policy_hosts;       /* the policy's answer before override and clamp */
	int desired_hosts;      /* after override, clamp, stop */
	int ready, launching;   /* counted capacity after this decision's transitions */
	int surplus, deficit;
	int drained, undrained, launched, terminated, transitions;
	int started, stopped;   /* warm pool: started now, returned or filled now */
	int warm_launching;     /* launches under way to fill the warm pool */
	int forecast;           /* forecast demand used, -1: none */
	int schedule_min;       /* the schedule's minimum in force, 0: none */
	int unplaced;           /* hosts wanted but no market allowed / possible */
	bool enabled;           /* false: enabled=false or an autoscale=off host */
	const char *note;       /* "maintenance", "disabled", "manual", "stop", "cooldown",
	                           "waiting for surplus to last", "surplus in rollout",
	                           or NULL */
} scale_metrics;

typedef struct scale_output {
	scale_action *actions;  /* pools by name; per pool: transitions, terminates,
	                           drains, undrains, launches; each by instance id */
	size_t n_actions;
	scale_metrics *metrics; /* one per policy pool, by name */
	size_t n_metrics;
	scale_pool_state *state;        /* one per policy pool, by name: store it */
	size_t n_state;
} scale_output;

/* Decide. 0, or -EINVAL (missing policy / now <= 0), -ENOMEM; on failure
 * out is left empty. out is overwritten (call scale_output_done first when
 * reusing). */
int scale_decide(const scale_input *in, scale_output *out);
void scale_output_done(scale_output *out);

/* The client token of a launch: "corral-" + 16 hex digits of FNV-1a 64 over
 * cluster, '\0', pool, '\0', the decimal launch_seq, '\0', the decimal index
 * of the launch among the pool's launches in this decision (0-based), then
 * "-" seq "-" index (≤ 64 chars). Nothing else enters it: a successor that
 * re-decides from the same stored state after a crash gets the same token
 * even if the type or count changed meanwhile (EC2 then answers
 * IdempotentParameterMismatch instead of launching twice). */
void scale_client_token(const char *cluster, const char *pool, uint64_t seq, unsigned index,
			char out[SCALE_TOKEN_MAX + 1]);

/* Actions + metrics as JSON: {"actions": [...], "metrics": {pool: {...}},
 * "state": {pool: {...}}}. New reference or NULL. */
json_t *scale_output_to_json(const scale_output *out);
/* scale/state's document: {pool: {last_scale_in, surplus_since, launch_seq,
 * last_warm_start, surplus_want}}, what the leader stores and observe reads.
 * New reference or NULL. */
json_t *scale_state_to_json(const scale_pool_state *st, size_t n);
json_t *scale_actions_to_json(const scale_output *out);
json_t *scale_metrics_to_json(const scale_output *out);
/* The dry-run plan: one line per pool summary, then one per action, e.g.
 *   pool web: 3 ready, 1 launching, 0 draining ... desired 5 (jobs 12)
 *     launch 1 x m5.large spot subnet-a (token corral-...-1-0)
 *     drain i-0abc (surplus)
 * "no changes" when there is no action. New string or NULL (ENOMEM). */
char *scale_plan_format(const scale_output *out);
