/* policy.c — the scale commands that write the scaling policy
 * (<prefix>/scale/policy) and the queue lengths: `scale policy get|set`,
 * `scale to|up|down|auto` (a pool's manual override, read-edit-compare-
 * and-set, then optionally --wait for the fleet) and `scale queue set`.
 * `scale simulate` and `autoscale` are in scale.c. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

#include "ctl.h"
#include "esc.h"

/* ---- scale policy ----------------------------------------------------------------- */

static int policy_get(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *text = NULL, *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	int64_t mod = 0;
	json_error_t jerr;

	if (!key || ctl_get(c, key, &text, &mod, NULL) < 0)
		return 1;
	if (!text) {
		fprintf(stderr, "corralctl: no scaling policy at %s (set one: corralctl scale policy set FILE)\n", key);
		return 1;
	}
	json_auto_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s holds no JSON: %s\n", key, ESC_JERR(&jerr));
		return 1;
	}
	/* the revision is what `policy set --revision` compares with */
	if (c->verbosity > CTL_QUIET)
		fprintf(stderr, "corralctl: %s at revision %" PRId64 "\n", key, mod);
	return ctl_print_json(doc);
}

static int stale(ctl_t *c, const char *key, int64_t expected) {
	_cleanup_free_ char *text = NULL;
	int64_t now = 0;

	(void) ctl_get(c, key, &text, &now, NULL);
	fprintf(stderr,
		"corralctl: %s was changed by someone else: it is at revision %" PRId64 ", expected %" PRId64
		"; nothing written. Read it again (corralctl scale policy get) and retry.\n",
		key, now, expected);
	return 1;
}

static int policy_set(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *cur = NULL, *text = NULL, *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	scale_policy p = {};
	scale_error err = {};
	json_error_t jerr;
	int64_t mod = 0;
	int r;

	if (!key)
		return 1;
	const char *file = o->pos[0];
	json_auto_t *doc = streq(file, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
					    : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s:%d:%d: %s\n", streq(file, "-") ? "<stdin>" : file, jerr.line, jerr.column,
			ESC_JERR(&jerr));
		return 2;
	}
	if (scale_policy_from_json(doc, &p, &err) < 0)
		return ctl_policy_invalid(&err);
	scale_policy_done(&p);
	text = json_dumps(doc, JSON_INDENT(2));
	if (!text)
		return 1;

	ctl_log_summary(c, "before");
	if (ctl_get(c, key, &cur, &mod, NULL) < 0)
		return 1;
	int64_t expect = o->revision >= 0 ? o->revision : mod;
	if (expect != mod)
		return stale(c, key, expect);
	if (cur && streq(cur, text)) {
		if (c->format != FORMAT_JSON)
			printf("no change\n");
		return ctl_report(c, "none", key, NULL, NULL);
	}
	r = ctl_put(c, key, text, expect);
	if (r == -ESTALE)
		return stale(c, key, expect);
	if (r < 0)
		return 1;
	r = ctl_report(c, "put", key, text, "policy written");
	ctl_log_summary(c, "after");
	return r;
}

/* ---- scale to / up / down / auto ----------------------------------------------------- */

typedef enum { EDIT_TO, EDIT_UP, EDIT_DOWN, EDIT_AUTO } edit_kind;

/* One edit of a pool's override: what it asks for and what it did. */
typedef struct edit {
	edit_kind kind;
	long count;                     /* to: the size; up/down: the step */
	const char *pool;               /* --pool, or NULL: the only pool */
	char name[256];                 /* the pool edited */
	int goal;                       /* the size set, -1: none (auto) */
	char msg[512];
} edit;

static const scale_pool *pick_pool(ctl_view *v, const char *name) {
	if (name) {
		const scale_pool *p = scale_policy_find(&v->policy, name);
		if (!p)
			ctl_usage_error("no pool '%s' in the scaling policy", name);
		return p;
	}
	if (v->policy.n_pools == 1)
		return &v->policy.pools[0];
	ctl_usage_error("the policy has %zu pools: name one with --pool", v->policy.n_pools);
	return NULL;
}

/* The new size n of pool p into its JSON pj; outside min/max only with
 * -f, which widens them. Exit code. */
static int edit_size(ctl_t *c, const scale_pool *p, json_t *pj, long n, edit *e) {
	if (n > p->max || n < p->min) {
		bool above = n > p->max;
		if (!c->force) {
			fprintf(stderr, "corralctl: %ld is %s pool %s's %s (%d); -f sets %s to %ld as well\n", n,
				above ? "above" : "below", p->name, above ? "max" : "min", above ? p->max : p->min,
				above ? "max" : "min", n);
			return 2;
		}
		json_object_set_new(pj, above ? "max" : "min", json_integer(n));
	}
	json_object_set_new(pj, "desired", json_integer(n));
	char was[32] = "automatic";
	if (p->desired >= 0)
		snprintf(was, sizeof was, "%d", p->desired);
	snprintf(e->msg, sizeof e->msg, "pool %s: desired %ld (was %s)%s", p->name, n, was,
		 n > p->max || n < p->min ? ", bounds widened" : "");
	e->goal = (int) n;
	return 0;
}

/* Edits v's policy document as e asks (an edit of ctl_policy_edit). Exit
 * code. */
static int edit_policy(ctl_t *c, ctl_view *v, void *userdata, char *msg, size_t msg_size) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);
	edit *e = userdata;
	scale_policy check = {};
	scale_error err = {};
	int r;

	if (!v->policy_text) {
		fprintf(stderr, "corralctl: no scaling policy at %s (set one: corralctl scale policy set FILE)\n",
			key ?: "scale/policy");
		return 1;
	}
	if (!v->policy_ok) {
		fprintf(stderr, "corralctl: the stored policy is invalid (%s): fix it with scale policy set\n",
			v->policy_err.message);
		return 1;
	}
	const scale_pool *p = pick_pool(v, e->pool);
	if (!p)
		return 2;
	snprintf(e->name, sizeof e->name, "%s", p->name);
	json_t *pj = json_object_get(json_object_get(v->policy_doc, "pools"), p->name);
	if (!json_is_object(pj))
		return 1;
	if (e->kind == EDIT_AUTO) {
		json_object_del(pj, "desired");
		snprintf(e->msg, sizeof e->msg, "pool %s: override cleared, the %s policy decides", p->name,
			 scale_kind_to_string(p->kind));
	} else {
		long n = e->count;
		if (e->kind == EDIT_UP || e->kind == EDIT_DOWN) {
			/* From the override when one is set (what the leader aims at),
			 * else from the fleet as it is. */
			long base = p->desired >= 0 ? p->desired : ctl_fleet_size(v, p->name, NULL, NULL);
			n = base + (e->kind == EDIT_UP ? e->count : -e->count);
			if (n < 0) {
				fprintf(stderr, "corralctl: pool %s is already at %ld hosts\n", p->name, base);
				return 2;
			}
		}
		if ((r = edit_size(c, p, pj, n, e)) != 0)
			return r;
	}
	if (scale_policy_from_json(v->policy_doc, &check, &err) < 0)
		return ctl_policy_invalid(&err);
	scale_policy_done(&check);
	snprintf(msg, msg_size, "%s", e->msg);
	return 0;
}

int ctl_policy_edit(ctl_t *c, ctl_policy_edit_fn edit_fn, void *userdata) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_SCALE_POLICY);

	for (int attempt = 0;; attempt++) {
		_cleanup_(ctl_view_done) ctl_view v = {};
		_cleanup_free_ char *text = NULL;
		char msg[512] = "";
		int r;

		if (!key || ctl_view_read(c, &v) < 0)
			return 1;
		if ((r = edit_fn(c, &v, userdata, msg, sizeof msg)) != 0)
			return r;
		text = json_dumps(v.policy_doc, JSON_INDENT(2));
		if (!text)
			return 1;
		r = ctl_put(c, key, text, v.policy_mod);
		if (r == -ESTALE && attempt < 5) {
			if (c->verbosity >= CTL_VERBOSE)
				fprintf(stderr, "corralctl: %s changed meanwhile; again\n", key);
			continue;
		}
		if (r == -ESTALE)
			return stale(c, key, v.policy_mod);
		if (r < 0)
			return 1;
		return ctl_report(c, "put", key, text, msg);
	}
}

static bool reached_size(ctl_view *v, const void *userdata) {
	const edit *e = userdata;
	int ready, launching;

	ctl_fleet_size(v, e->name, &ready, &launching);
	return ready == e->goal && launching == 0;
}

/* The count of to/up/down: the operand N or -w N (the same), else
 * dflt (-1: required). */
static int edit_count(ctl_opts *o, const char *verb, long dflt, long min, long *out) {
	long n = o->workers;

	if (o->n_pos == 1) {
		long m;
		if (ctl_parse_int(o->pos[0], min, 100000, &m) < 0)
			return ctl_usage_error("bad count '%s' for scale %s: %ld..100000", o->pos[0], verb, min);
		if (n >= 0 && n != m)
			return ctl_usage_error("scale %s: N %ld and -w %ld disagree (-w N is the same as N)", verb, m, n);
		n = m;
	}
	if (n < 0)
		n = dflt;
	if (n < min)
		return ctl_usage_error("usage: scale %s N (or -w N; N: %ld..100000)", verb, min);
	*out = n;
	return 0;
}

static int scale_edit(ctl_t *c, ctl_opts *o, edit_kind kind) {
	static const char *const verbs[] = { [EDIT_TO] = "to", [EDIT_UP] = "up", [EDIT_DOWN] = "down",
					     [EDIT_AUTO] = "auto" };
	edit e = { .kind = kind, .pool = o->pool, .goal = -1 };
	int r;

	if (kind != EDIT_AUTO && (r = edit_count(o, verbs[kind], kind == EDIT_TO ? -1 : 1,
						 kind == EDIT_TO ? 0 : 1, &e.count)) != 0)
		return r;
	ctl_log_summary(c, "before");
	if ((r = ctl_policy_edit(c, edit_policy, &e)) != 0)
		return r;
	ctl_log_summary(c, "after");
	if (o->wait < 0 || e.goal < 0 || c->dry_run)
		return 0;
	r = ctl_wait_for(c, o->wait, reached_size, &e);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "corralctl: pool %s did not reach %d ready hosts within %lds\n", e.name, e.goal, o->wait);
		return 1;
	}
	if (r < 0) {
		if (r != -EIO)
			fprintf(stderr, "corralctl: waiting for pool %s: %s\n", e.name, strerror(-r));
		return 1;
	}
	if (c->format != FORMAT_JSON)
		printf("pool %s: %d ready hosts\n", e.name, e.goal);
	return 0;
}

static int scale_to(ctl_t *c, ctl_opts *o) {
	return scale_edit(c, o, EDIT_TO);
}

static int scale_up(ctl_t *c, ctl_opts *o) {
	return scale_edit(c, o, EDIT_UP);
}

static int scale_down(ctl_t *c, ctl_opts *o) {
	return scale_edit(c, o, EDIT_DOWN);
}

static int scale_auto(ctl_t *c, ctl_opts *o) {
	return scale_edit(c, o, EDIT_AUTO);
}

/* ---- scale queue set ------------------------------------------------------------------ */

static int queue_set(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *key = NULL;
	char value[32], msg[300];
	long n;

	if (!ctl_id_valid(o->pos[0]))
		return ctl_usage_error("bad pool name '%s'", o->pos[0]);
	if (ctl_parse_int(o->pos[1], 0, 100000000, &n) < 0)
		return ctl_usage_error("bad queue length '%s': 0..100000000", o->pos[1]);
	key = keys_entry(c->prefix, KEYS_SCALE_QUEUE, o->pos[0]);
	if (!key)
		return 1;
	snprintf(value, sizeof value, "%ld", n);
	ctl_log_summary(c, "before");
	if (ctl_put(c, key, value, -1) < 0)
		return 1;
	snprintf(msg, sizeof msg, "pool %s: queue %ld", o->pos[0], n);
	int r = ctl_report(c, "put", key, value, msg);
	ctl_log_summary(c, "after");
	return r;
}

#define SIZE_OPTIONS (CTL_OPT_WORKERS | CTL_OPT_WAIT | CTL_OPT_POOL)

const ctl_verb ctl_policy_verbs[] = {
	{ .group = "scale", .name = "policy get", .help = "the scaling policy (<prefix>/scale/policy) as JSON",
	  .flags = CTL_VERB_ETCD, .run = policy_get },
	{ .group = "scale", .name = "policy set", .args = "FILE [--revision R]",
	  .help = "replace it with FILE ('-': stdin), validated; --revision R: only if it is\n"
		  "still at mod revision R (0: absent)",
	  .options = CTL_OPT_REVISION, .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1, .run = policy_set },
	{ .group = "scale", .name = "to", .args = "N [--pool P] [--wait S]",
	  .help = "set the pool's desired override to N hosts (-w N is the same; -f: widen\n"
		  "min/max to N); --wait: wait up to S seconds for N ready hosts",
	  .options = SIZE_OPTIONS, .flags = CTL_VERB_ETCD, .max_args = 1, .run = scale_to },
	{ .group = "scale", .name = "up", .args = "[N] [--pool P] [--wait S]",
	  .help = "desired = the override (else ready + launching hosts) + N (default 1;\n"
		  "-w N is the same); --wait: wait up to S seconds for the fleet to reach it",
	  .options = SIZE_OPTIONS, .flags = CTL_VERB_ETCD, .max_args = 1, .run = scale_up },
	{ .group = "scale", .name = "down", .args = "[N] [--pool P] [--wait S]",
	  .help = "the same, - N", .options = SIZE_OPTIONS, .flags = CTL_VERB_ETCD, .max_args = 1,
	  .run = scale_down },
	{ .group = "scale", .name = "auto", .args = "[--pool P]", .help = "clear the override: the policy decides again",
	  .options = CTL_OPT_POOL, .flags = CTL_VERB_ETCD, .run = scale_auto },
	{ .group = "scale", .name = "queue set", .args = "POOL N", .help = "the pool's queue length",
	  .flags = CTL_VERB_ETCD, .min_args = 2, .max_args = 2, .run = queue_set },
	{},
};
