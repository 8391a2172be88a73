/* replace.c — the rules of replace by relaunch (docs/upgrades.md, "Replace
 * by relaunch"), pure like the rest of the decision: which nodes a plan
 * with a machine image target takes (their host's launch template version
 * or AMI differs from the target), when such a node's order is done or
 * failed (its replacement healthy for min_healthy_time and the old host
 * draining; nothing within healthy_deadline), the ClientTokens, and what
 * observe reads for them out of scale/hosts/. A leaf: the context
 * (context.c) calls it; the orders and what the plan waits for are in
 * relaunch.c, the scaler's half in src/scale/replace.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "keys.h"

/* ---- tokens -------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char) s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
	s = s ?: "";
	return fnv(h, s, strlen(s) + 1);
}

void rollout_replace_token(const char *plan, int64_t generation, int batch, const char *old_instance, bool back,
			   char out[65]) {
	char num[48];
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	h = fnv_str(h, plan);
	snprintf(num, sizeof num, "%" PRId64 "/%d", generation, batch);
	h = fnv_str(h, num);
	h = fnv_str(h, old_instance);
	/* "corral-r-" + 16 + "-" + up to 38 */
	snprintf(out, 65, "corral-%c-%016" PRIx64 "-%" PRId64 "-%d", back ? 'b' : 'r', h, generation, batch);
}

void rollout_version_token(const char *plan, int64_t generation, char out[65]) {
	char num[24];
	uint64_t h = fnv_str(UINT64_C(0xcbf29ce484222325), plan);

	snprintf(num, sizeof num, "%" PRId64, generation);
	h = fnv_str(h, num);
	snprintf(out, 65, "corral-v-%016" PRIx64 "-%" PRId64, h, generation);
}

/* ---- which nodes ----------------------------------------------------------------------- */

bool rollout_order_replaces(const rollout_order *o) {
	return o && !o->target.image && !o->target.config &&
	       (rollout_target_replaces(&o->target) || rollout_target_replaces(&o->from));
}

bool decide_replacing(const rollout_plan *p) {
	return p && rollout_target_replaces(&p->target) && p->strategy != ROLLOUT_STRATEGY_IN_PLACE;
}

/* A replacing plan that also carries an image: hosts not on the machine
 * image are replaced, the others get the image in place (docs/upgrades.md,
 * "An image and a machine image in one plan"). */
bool rollout_plan_both(const rollout_plan *p) {
	return decide_replacing(p) && p->target.image;
}

/* What a replacing plan cannot do (yet), or NULL. A config part would
 * reach only the hosts kept, and launch template versions are numbered
 * per template: one pool's. */
const char *replace_refusal(const rollout_plan *p) {
	if (p->target.config)
		return "target: a machine image (launch_template_version, ami) cannot be combined with a config in "
		       "one plan: run two plans";
	if (p->target.image && p->strategy == ROLLOUT_STRATEGY_REPLACE)
		return "strategy: replace cannot carry an image (replacements would not get it): use strategy auto, "
		       "which replaces the hosts and upgrades the image in place";
	if (p->n_pools != 1)
		return "pools: a machine image target needs exactly one pool";
	return NULL;
}

/* For a replacing plan, once the common checks (pools, registered, held,
 * launching) passed: NULL when the host is to be replaced. */
const char *replace_ineligible(const rollout_plan *p, const rollout_node *n) {
	if (!n->instance)
		return "not an EC2 host";
	if (n->draining)
		return "draining";
	if (p->target.launch_template_version && streq_ptr(n->launch_template_version, p->target.launch_template_version))
		return "already on target";
	if (p->target.ami && streq_ptr(n->image_id, p->target.ami))
		return "already on target";
	return NULL;
}

/* For a plan with both: NULL when the node is replaced or gets the image
 * in place (*replace says which); else why neither. A host not on EC2
 * still gets the image; a draining one nothing. */
const char *replace_both_ineligible(const rollout_plan *p, const rollout_node *n, bool *replace) {
	const char *w = replace_ineligible(p, n);

	*replace = !w;
	if (!w)
		return NULL;
	if (n->draining)
		return w;
	if (!n->image)
		return n->instance ? "no upgrade config" : w;
	if (rollout_target_matches(&p->target, n->image))
		return n->instance ? "already on target" : w;
	return NULL;
}

/* ---- an order's status ------------------------------------------------------------------ */

static void wake_at(time_t *wake, time_t t) {
	if (*wake == 0 || t < *wake)
		*wake = t;
}

static void deadline(const dctx *d, nctx *nc, const char *what, time_t *wake) {
	const rollout_order *o = nc->o;
	char dur[32];

	if (d->now - o->issued > d->plan->healthy_deadline) {
		snprintf(nc->fail, sizeof nc->fail, "%s after %s", what,
			 rollout_format_duration(dur, sizeof dur, d->now - o->issued));
		nc->st = NS_FAILED;
		return;
	}
	nc->st = NS_RUNNING;
	wake_at(wake, o->issued + d->plan->healthy_deadline + 1);
}

/* upgrade: done once the replacement is healthy for min_healthy_time and
 * the old host drains (or is gone); rollback: done once the replacement
 * drains (or none was made) and the old host serves again, or is gone
 * (then there is nothing to undrain). Anything else within
 * healthy_deadline of the order is waited for; past it the order fails.
 * *wake: when to look again (0 none). */
void replace_eval(const dctx *d, nctx *nc, time_t *wake) {
	const rollout_node *n = nc->n;
	char what[128];

	if (nc->o->verb == ROLLOUT_ROLLBACK) {
		bool old_back = (n->registered && n->status_ok && !n->draining) || (!n->registered && n->draining);
		if ((!n->replacement || n->replacement_draining) && old_back) {
			nc->st = NS_DONE;
			return;
		}
		snprintf(what, sizeof what, "%s", n->replacement && !n->replacement_draining
		                                          ? "replacement still serving" : "old host not back");
		return deadline(d, nc, what, wake);
	}
	if (n->replacement && n->replacement_healthy && n->replacement_ready > 0) {
		time_t at = n->replacement_ready + d->plan->min_healthy_time;
		if (d->now >= at && (n->draining || !n->registered)) {
			nc->st = NS_DONE;
			return;
		}
		wake_at(wake, at);
	}
	if (!n->replacement)
		snprintf(what, sizeof what, "no replacement launched");
	else if (!n->replacement_ready)
		snprintf(what, sizeof what, "replacement %s not registered", n->replacement);
	else if (!n->replacement_healthy)
		snprintf(what, sizeof what, "replacement %s not healthy", n->replacement);
	else
		snprintf(what, sizeof what, "old host not drained");
	deadline(d, nc, what, wake);
}

/* ---- observe: scale/hosts/ -> the nodes' host fields ------------------------------------- */

typedef struct hostrec {
	const char *id;                 /* borrowed from the json */
	const char *node, *state, *ltv, *image, *replaces;
	time_t since;
	json_t *j;
} hostrec;

static bool live(const char *state) {
	return state && strcmp(state, "terminating") != 0 && strcmp(state, "terminated") != 0;
}

static bool away(const char *state) {
	return state && (strcmp(state, "draining") == 0 || !live(state));
}

/* The host records sorted three ways (by id, by the instance replaced, by
 * node), so each node's lookups are binary searches: O(n log n) in all. */
typedef struct hostidx {
	const hostrec **v;
	size_t n;
} hostidx;

typedef enum { BY_ID, BY_REPLACES, BY_NODE } hostkey;

static const char *key_of(const hostrec *h, hostkey k) {
	return k == BY_ID ? h->id : k == BY_REPLACES ? h->replaces : h->node;
}

static int cmp_id(const void *a, const void *b) {
	return strcmp((*(const hostrec *const *) a)->id, (*(const hostrec *const *) b)->id);
}
static int cmp_replaces(const void *a, const void *b) {
	return strcmp((*(const hostrec *const *) a)->replaces, (*(const hostrec *const *) b)->replaces);
}
static int cmp_node(const void *a, const void *b) {
	return strcmp((*(const hostrec *const *) a)->node, (*(const hostrec *const *) b)->node);
}

static int index_by(hostidx *x, const hostrec *h, size_t nh, hostkey k) {
	static int (*const cmp[])(const void *, const void *) = { cmp_id, cmp_replaces, cmp_node };

	x->v = calloc(nh + 1, sizeof *x->v);
	if (!x->v)
		return -ENOMEM;
	x->n = 0;
	for (size_t i = 0; i < nh; i++)
		if (key_of(&h[i], k))
			x->v[x->n++] = &h[i];
	qsort(x->v, x->n, sizeof *x->v, cmp[k]);
	return 0;
}

/* The first record whose key is key (its equals follow), or n. */
static size_t lower_bound(const hostidx *x, hostkey k, const char *key) {
	size_t lo = 0, hi = x->n;

	while (key && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(key_of(x->v[mid], k), key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return key && lo < x->n && streq(key_of(x->v[lo], k), key) ? lo : x->n;
}

static int node_cmp(const void *a, const void *b) {
	return strcmp(((const rollout_node *) a)->id, ((const rollout_node *) b)->id);
}

static const rollout_node *node_find(const rollout_view *v, const char *id) {
	rollout_node key = { .id = id };
	return id ? bsearch(&key, v->nodes, v->n_nodes, sizeof *v->nodes, node_cmp) : NULL;
}

static int fill_node(rollout_node *n, const hostidx ix[3], const rollout_view *v) {
	const hostrec *mine = NULL, *repl = NULL;
	size_t i = lower_bound(&ix[BY_ID], BY_ID, n->instance);

	if (i < ix[BY_ID].n)
		mine = ix[BY_ID].v[i];
	/* the replacement: a live one first, a ready one before that */
	for (i = lower_bound(&ix[BY_REPLACES], BY_REPLACES, n->instance);
	     i < ix[BY_REPLACES].n && streq(ix[BY_REPLACES].v[i]->replaces, n->instance); i++) {
		const hostrec *h = ix[BY_REPLACES].v[i];
		if (!repl || (live(h->state) && !live(repl->state)) ||
		    (streq_ptr(h->state, "ready") && !streq_ptr(repl->state, "ready")))
			repl = h;
	}
	if (mine) {
		n->draining = away(mine->state);
		if ((mine->ltv && !n->launch_template_version && !(n->launch_template_version = strdup(mine->ltv))) ||
		    (mine->image && !n->image_id && !(n->image_id = strdup(mine->image))))
			return -ENOMEM;
	}
	if (repl && live(repl->state)) {
		const rollout_node *rn = node_find(v, repl->node);
		if (!(n->replacement = strdup(repl->id)))
			return -ENOMEM;
		n->replacement_draining = away(repl->state);
		n->replacement_ready = streq_ptr(repl->state, "ready") || n->replacement_draining ? repl->since : 0;
		n->replacement_healthy = rn && rn->registered && rn->status_ok;
	}
	return 0;
}

static int fill_nodes(const hostrec *h, size_t nh, rollout_view *v) {
	hostidx ix[3] = {};
	int rc = 0;

	for (hostkey k = BY_ID; k <= BY_NODE && rc >= 0; k++)
		rc = index_by(&ix[k], h, nh, k);
	for (size_t i = 0; i < v->n_nodes && rc >= 0; i++) {
		rollout_node *n = &v->nodes[i];
		/* a node gone (its host terminated) is still known by its record */
		size_t k = n->instance ? ix[BY_NODE].n : lower_bound(&ix[BY_NODE], BY_NODE, n->id);
		if (k < ix[BY_NODE].n && !(n->instance = strdup(ix[BY_NODE].v[k]->id)))
			rc = -ENOMEM;
		if (n->instance && rc >= 0)
			rc = fill_node(n, ix, v);
	}
	for (hostkey k = BY_ID; k <= BY_NODE; k++)
		free(ix[k].v);
	return rc;
}

int rollout_observe_hosts(const rollout_records *r, rollout_view *v) {
	_cleanup_free_ hostrec *h = calloc(r->n_hosts + 1, sizeof *h);
	size_t nh = 0;
	int rc;

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_hosts; i++) {
		json_t *j = r->hosts[i].value ? json_loadb(r->hosts[i].value, r->hosts[i].len, 0, NULL) : NULL;
		const char *id = json_string_value(json_object_get(j, "id"));
		if (!id) {
			json_decref(j);
			continue;
		}
		json_int_t since = json_integer_value(json_object_get(j, "state_since"));
		h[nh++] = (hostrec) {
			.id = id,
			.node = json_string_value(json_object_get(j, "node_id")),
			.state = json_string_value(json_object_get(j, "state")),
			.ltv = json_string_value(json_object_get(j, "launch_template_version")),
			.image = json_string_value(json_object_get(j, "image_id")),
			.replaces = json_string_value(json_object_get(j, "replaces")),
			.since = (time_t) since,
			.j = j,
		};
	}
	rc = fill_nodes(h, nh, v);
	for (size_t i = 0; i < nh; i++)
		json_decref(h[i].j);
	return rc;
}

void rollout_node_hosts_done(rollout_node *n) {
	free((char *) n->instance);
	free((char *) n->launch_template_version);
	free((char *) n->image_id);
	free((char *) n->replacement);
}
