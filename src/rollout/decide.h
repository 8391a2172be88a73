/* decide.h — what decide.c (the context: nodes classified, actions,
 * output) shares with phases.c (one step function per phase). */
#pragma once

#include "rollout-internal.h"

typedef enum nstat {
	NS_NONE,                /* no order of this plan+generation */
	NS_RUNNING,
	NS_DONE,
	NS_FAILED,
} nstat;

/* One node as this decision sees it. */
typedef struct nctx {
	const rollout_node *n;
	const rollout_order *o;         /* of this plan+generation, or NULL */
	const rollout_progress *p;      /* on o (same plan, generation, verb), or NULL */
	nstat st;                       /* of o */
	bool in_scope;                  /* counts in N */
	bool eligible;                  /* rollout_node_eligible */
	const char *why;                /* !eligible */
	bool healthy;                   /* registered, status ok, not in flight */
	bool in_flight;                 /* upgrade/rollback order not done */
	bool prepared;                  /* prepare done (or past it) */
	bool changed;                   /* this plan changed it: rollback candidate */
	bool busy;                      /* finishing another plan's order */
	bool replace;                   /* the plan replaces this node's host */
	bool replacement;               /* its host replaced one of the plan's (both) */
	bool ordered;                   /* an order was issued in this decision */
	rollout_verb ordered_verb;
	char fail[192];                 /* NS_FAILED: why */
} nctx;

typedef struct dctx {
	const rollout_input *in;
	const rollout_plan *plan;
	rollout_output *out;
	rollout_state *s;               /* &out->state */
	nctx *nodes;
	nctx **by_instance;             /* scratch: the nodes with a host, sorted */
	size_t n;
	size_t cap_actions;
	time_t now;
	time_t wake;                    /* earliest future time waited for */
	rollout_phase start_phase;
	char waiting[192];
	char last_reason[192];
	bool entered_terminal;
	bool window_wait;               /* waiting for a window: no progress deadline */
	bool gate_requested;            /* the output is an I/O request alone
	                                   (RUN_GATE, REBASE): not carried out */
	bool replace;                   /* the plan replaces hosts (replace.c) */
	bool both;                      /* ... and upgrades the others' image in place */
} dctx;

/* context.c */
void decide_wake(dctx *d, time_t t);
void decide_classify(dctx *d);
int decide_set_phase(dctx *d, rollout_phase phase, const char *reason);
int decide_issue(dctx *d, nctx *nc, const rollout_order *o);
int decide_order(dctx *d, nctx *nc, rollout_verb verb, rollout_role role, int batch, const rollout_target *target,
		 const rollout_target *from, bool cleanup);
int decide_plan_action(dctx *d, rollout_action_kind kind, const char *fmt, ...) _printf_(3, 4);
_printf_(2, 3) void decide_waiting(dctx *d, const char *fmt, ...);
void decide_describe(dctx *d, const nctx *nc, char *buf, size_t size);
int decide_changed_count(const dctx *d);

/* One step's rules: pre (NULL: none) runs before the phase's rule and
 * decides the step when it returns non-zero (< 0 error, 1 a phase change,
 * 2 waiting: nothing more this step); a phase without a rule waits. */
typedef int (*decide_rule)(dctx *d);
typedef struct decide_rules {
	decide_rule pre;
	decide_rule phase[_ROLLOUT_PHASE_MAX];
} decide_rules;

/* phases.c: one step (1: the phase changed, 0: waiting) by the rules */
int decide_step(dctx *d, const decide_rules *rules);
extern const decide_rules decide_rules_image;
/* phases.c, the common rules staged.c reuses */
int fail_plan(dctx *d, const char *reason);
int succeed(dctx *d, const char *reason);
int pause_plan(dctx *d, rollout_pause why, const char *reason);
void wait_for_node(dctx *d, const nctx *nc);
int check_upgrades(dctx *d);
bool window_open(dctx *d);
rollout_gate gate_result(dctx *d);
bool take_promotion(dctx *d);
int step_paused(dctx *d);
int step_rolling_back(dctx *d);
int finish_order(dctx *d, nctx *nc, const rollout_order *o, bool started, bool cleanup);
bool pending_due(dctx *d);
/* A bake: waiting until bake_until, then the gate, then success (final)
 * or promote(d, why) (or a pause for the operator's promotion). */
int bake_over(dctx *d, bool final, int (*promote)(dctx *d, const char *why));

/* staged.c: a staged config rollout's rules (rollout_plan_staged()) */
extern const decide_rules decide_rules_staged;

/* replace.c */
bool decide_replacing(const rollout_plan *p);
const char *replace_refusal(const rollout_plan *p);
const char *replace_ineligible(const rollout_plan *p, const rollout_node *n);
const char *replace_both_ineligible(const rollout_plan *p, const rollout_node *n, bool *replace);
int replace_order(dctx *d, nctx *nc, rollout_role role, int batch);
int replace_version(dctx *d);
void replace_eval(const dctx *d, nctx *nc, time_t *wake);
void replace_wait(dctx *d, const nctx *nc);
