/* observe.c — the records the leader (or corralctl) read at one revision
 * -> the decision's input (rollout_view). Pure: parses upgrade/ (plan,
 * state, stable, nodes/<id>, progress/<id>; history/ is not read), nodes/
 * (pool, image, started, instance_id), status/ ("ok", "applied"),
 * `current`, holds/ (an id is a node id or an instance id) and
 * scale/hosts/ (a host still launching marks its node). Every node id seen in nodes/, upgrade/nodes/ or
 * upgrade/progress/ becomes one rollout_node, sorted by id; the view owns
 * their strings. A record that does not parse is left out with a note. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "rollout-internal.h"

#define note(v, ...) strv_takef(&(v)->notes, &(v)->n_notes, __VA_ARGS__)

static json_t *kv_json(const rollout_kv *kv) {
	return kv->value ? json_loadb(kv->value, kv->len, 0, NULL) : NULL;
}

static bool key_is(const char *want, const char *key) {
	return want && key && strcmp(want, key) == 0;
}

/* ---- ids ------------------------------------------------------------------------ */

typedef struct idx {
	char *id;
	size_t pos;             /* the record's index in its folder */
} idx;

static int idx_cmp(const void *a, const void *b) {
	return strcmp(((const idx *) a)->id, ((const idx *) b)->id);
}

static void idx_free(idx *x, size_t n) {
	for (size_t i = 0; x && i < n; i++)
		free(x[i].id);
	free(x);
}

/* The ids of a folder's records, sorted. */
static int index_folder(const char *prefix, keys_dir d, const rollout_kv *kv, size_t n, idx **out, size_t *n_out) {
	idx *x = calloc(n + 1, sizeof *x);
	size_t m = 0;

	if (!x)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *id = kv[i].key ? keys_id_in(prefix, d, kv[i].key, strlen(kv[i].key), &len) : NULL;
		if (!id)
			continue;
		if (!(x[m].id = strndup(id, len))) {
			idx_free(x, m);
			return -ENOMEM;
		}
		x[m++].pos = i;
	}
	qsort(x, m, sizeof *x, idx_cmp);
	*out = x;
	*n_out = m;
	return 0;
}

static const idx *idx_find(const idx *x, size_t n, const char *id) {
	idx key = { .id = (char *) id };
	return id ? bsearch(&key, x, n, sizeof *x, idx_cmp) : NULL;
}

/* ---- upgrade/ singles ------------------------------------------------------------- */

static int observe_singles(const rollout_records *r, rollout_view *v) {
	_cleanup_free_ char *plan_key = keys_one_of(r->prefix, KEYS_UPGRADE_PLAN),
			    *state_key = keys_one_of(r->prefix, KEYS_UPGRADE_STATE),
			    *stable_key = keys_one_of(r->prefix, KEYS_UPGRADE_STABLE);

	if (!plan_key || !state_key || !stable_key)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_upgrade; i++) {
		const rollout_kv *kv = &r->upgrade[i];
		rollout_error err = {};
		int rc = 0;
		bool plan = key_is(plan_key, kv->key);
		bool state = !plan && key_is(state_key, kv->key);
		bool stable = !plan && !state && key_is(stable_key, kv->key);
		if (!plan && !state && !stable)
			continue;
		json_auto_t *j = kv_json(kv);
		if (!j)
			rc = rollout_fail(&err, "", "not JSON");
		else if (plan && (rc = rollout_plan_from_json(j, &v->plan, &err)) == 0)
			v->have_plan = true;
		else if (state)
			rc = rollout_state_from_json(j, &v->state, &err);
		else if (stable && (rc = rollout_target_from_json(j, &v->stable, &err)) == 0)
			v->have_stable = true;
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0 && plan && !(v->plan_error = strdup(err.message)))
			return -ENOMEM;
		if (rc < 0 && note(v, "%s: %s", plan ? "upgrade/plan" : state ? "upgrade/state" : "upgrade/stable",
				   err.message) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- the node list ---------------------------------------------------------------- */

typedef struct folders {
	idx *nodes, *orders, *progress, *status, *holds;
	size_t n_nodes, n_orders, n_progress, n_status, n_holds;
	char **launching;       /* instance ids and node ids of launching hosts, sorted */
	size_t n_launching;
	char **ids;             /* every node id, sorted, unique */
	size_t n_ids;
} folders;

static void folders_done(folders *f) {
	idx_free(f->nodes, f->n_nodes);
	idx_free(f->orders, f->n_orders);
	idx_free(f->progress, f->n_progress);
	idx_free(f->status, f->n_status);
	idx_free(f->holds, f->n_holds);
	strv_free(f->launching);
	strv_free(f->ids);
}

static int str_cmp(const void *a, const void *b) {
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool strs_have(char **v, size_t n, const char *s) {
	return s && n && bsearch(&s, v, n, sizeof *v, str_cmp);
}

/* Hosts still launching: their instance id and their node id when the
 * record names one. */
static int index_launching(const rollout_records *r, folders *f) {
	for (size_t i = 0; i < r->n_hosts; i++) {
		size_t len;
		const char *id = keys_id_in(r->prefix, KEYS_SCALE_HOSTS, r->hosts[i].key, strlen(r->hosts[i].key), &len);
		json_auto_t *j = id ? kv_json(&r->hosts[i]) : NULL;
		const char *st = json_string_value(json_object_get(j, "state"));
		if (!st || strcmp(st, "launching") != 0)
			continue;
		if (strv_take(&f->launching, &f->n_launching, strndup(id, len)) < 0)
			return -ENOMEM;
		const char *node = json_string_value(json_object_get(j, "node_id"));
		if (node && strv_take(&f->launching, &f->n_launching, strdup(node)) < 0)
			return -ENOMEM;
	}
	if (f->launching)
		qsort(f->launching, f->n_launching, sizeof *f->launching, str_cmp);
	return 0;
}

static int collect_ids(folders *f) {
	const idx *src[3] = { f->nodes, f->orders, f->progress };
	size_t n[3] = { f->n_nodes, f->n_orders, f->n_progress }, total = n[0] + n[1] + n[2], m = 0;

	f->ids = calloc(total + 1, sizeof *f->ids);
	if (!f->ids)
		return -ENOMEM;
	for (int s = 0; s < 3; s++)
		for (size_t i = 0; i < n[s]; i++)
			if (!(f->ids[m++] = strdup(src[s][i].id)))
				return f->n_ids = m, -ENOMEM;
	qsort(f->ids, m, sizeof *f->ids, str_cmp);
	size_t u = 0;
	for (size_t i = 0; i < m; i++) {
		if (u > 0 && strcmp(f->ids[u - 1], f->ids[i]) == 0) {
			free(f->ids[i]);
			f->ids[i] = NULL;
			continue;
		}
		f->ids[u++] = f->ids[i];
		if (u - 1 != i)
			f->ids[i] = NULL;
	}
	f->n_ids = u;
	return 0;
}

static int index_all(const rollout_records *r, folders *f, idx **up_orders, size_t *n_up_orders) {
	int rc;
	/* upgrade/ holds both nodes/ and progress/: index each */
	if ((rc = index_folder(r->prefix, KEYS_UPGRADE_NODES, r->upgrade, r->n_upgrade, up_orders, n_up_orders)) < 0 ||
	    (rc = index_folder(r->prefix, KEYS_UPGRADE_PROGRESS, r->upgrade, r->n_upgrade, &f->progress,
			       &f->n_progress)) < 0 ||
	    (rc = index_folder(r->prefix, KEYS_NODES, r->nodes, r->n_nodes, &f->nodes, &f->n_nodes)) < 0 ||
	    (rc = index_folder(r->prefix, KEYS_STATUS, r->status, r->n_status, &f->status, &f->n_status)) < 0 ||
	    (rc = index_folder(r->prefix, KEYS_HOLDS, r->holds, r->n_holds, &f->holds, &f->n_holds)) < 0 ||
	    (rc = index_launching(r, f)) < 0)
		return rc;
	f->orders = *up_orders;
	f->n_orders = *n_up_orders;
	*up_orders = NULL;
	return collect_ids(f);
}

/* nodes/<id>: pool, image, started, instance_id. */
static int fill_registered(const rollout_records *r, const folders *f, rollout_node *n, char **instance_id,
			   rollout_view *v) {
	const idx *x = idx_find(f->nodes, f->n_nodes, n->id);
	if (!x)
		return 0;
	json_auto_t *j = kv_json(&r->nodes[x->pos]);
	if (!json_is_object(j))
		return note(v, "nodes/%s: not a JSON object", n->id);
	n->registered = true;
	const char *pool = json_string_value(json_object_get(j, "pool"));
	const char *image = json_string_value(json_object_get(j, "image"));
	const char *inst = json_string_value(json_object_get(j, "instance_id"));
	const char *booted = json_string_value(json_object_get(j, "boot_time"));
	if ((pool && !(n->pool = strdup(pool))) || (image && *image && !(n->image = strdup(image))) ||
	    (inst && !(*instance_id = strdup(inst))))
		return -ENOMEM;
	if (booted)
		(void) rollout_parse_time(booted, &n->booted);
	return 0;
}

/* status/<id>: "ok" false is unhealthy; no record (or no "ok") is
 * healthy. "applied": the snapshot whose files are in place. */
static int fill_status(const rollout_records *r, const folders *f, rollout_node *n) {
	const idx *x = idx_find(f->status, f->n_status, n->id);
	n->status_ok = true;
	if (!x)
		return 0;
	json_auto_t *j = kv_json(&r->status[x->pos]);
	json_t *ok = json_object_get(j, "ok");
	const char *applied = json_string_value(json_object_get(j, "applied"));
	if (json_is_boolean(ok))
		n->status_ok = json_is_true(ok);
	if (applied && !(n->config = strdup(applied)))
		return -ENOMEM;
	return 0;
}

static int parse_order(const rollout_records *r, const folders *f, rollout_view *v, rollout_node *n) {
	const idx *x = idx_find(f->orders, f->n_orders, n->id);
	rollout_error err = {};
	if (!x)
		return 0;
	json_auto_t *j = kv_json(&r->upgrade[x->pos]);
	int rc = j ? rollout_order_from_json(j, &v->orders[v->n_orders], &err) : rollout_fail(&err, "", "not JSON");
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return note(v, "upgrade/nodes/%s: %s", n->id, err.message);
	n->order = &v->orders[v->n_orders++];
	return 0;
}

static int parse_progress(const rollout_records *r, const folders *f, rollout_view *v, rollout_node *n) {
	const idx *x = idx_find(f->progress, f->n_progress, n->id);
	rollout_error err = {};
	if (!x)
		return 0;
	json_auto_t *j = kv_json(&r->upgrade[x->pos]);
	int rc = j ? rollout_progress_from_json(j, &v->progress[v->n_progress], &err)
	           : rollout_fail(&err, "", "not JSON");
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return note(v, "upgrade/progress/%s: %s", n->id, err.message);
	n->progress = &v->progress[v->n_progress++];
	return 0;
}

static int observe_node(const rollout_records *r, const folders *f, rollout_view *v, size_t i) {
	rollout_node *n = &v->nodes[i];
	_cleanup_free_ char *instance_id = NULL;
	int rc;

	n->id = f->ids[i];
	f->ids[i] = NULL;       /* the view owns it now */
	if ((rc = fill_registered(r, f, n, &instance_id, v)) < 0)
		return rc;
	if ((rc = fill_status(r, f, n)) < 0)
		return rc;
	n->held = idx_find(f->holds, f->n_holds, n->id) || idx_find(f->holds, f->n_holds, instance_id);
	n->launching = strs_have(f->launching, f->n_launching, n->id) ||
	               strs_have(f->launching, f->n_launching, instance_id);
	if ((rc = parse_order(r, f, v, n)) < 0 || (rc = parse_progress(r, f, v, n)) < 0)
		return rc;
	n->instance = TAKE_PTR(instance_id);
	return 0;
}

int rollout_observe(const rollout_records *r, rollout_view *out) {
	rollout_view v = {};
	folders f = {};
	idx *up_orders = NULL;
	size_t n_up_orders = 0;
	int rc;

	if ((rc = observe_singles(r, &v)) < 0 || (rc = index_all(r, &f, &up_orders, &n_up_orders)) < 0)
		goto fail;
	if (r->current && r->current->value && !(v.current = strndup(r->current->value, r->current->len))) {
		rc = -ENOMEM;
		goto fail;
	}
	v.nodes = calloc(f.n_ids + 1, sizeof *v.nodes);
	v.orders = calloc(f.n_orders + 1, sizeof *v.orders);
	v.progress = calloc(f.n_progress + 1, sizeof *v.progress);
	if (!v.nodes || !v.orders || !v.progress) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < f.n_ids; i++) {
		v.n_nodes = i + 1;
		if ((rc = observe_node(r, &f, &v, i)) < 0)
			goto fail;
	}
	if ((rc = rollout_observe_hosts(r, &v)) < 0)
		goto fail;
	folders_done(&f);
	v.input = (rollout_input) {
		.plan = v.have_plan ? &v.plan : NULL,
		.state = &v.state,
		.stable = v.have_stable ? &v.stable : NULL,
		.current = v.current,
		.current_mod_revision = v.current ? r->current_mod_revision : 0,
		.nodes = v.nodes,
		.n_nodes = v.n_nodes,
		.now = r->now,
	};
	*out = v;
	/* input points into the view: fix it up to the caller's copy */
	out->input.plan = out->have_plan ? &out->plan : NULL;
	out->input.state = &out->state;
	out->input.stable = out->have_stable ? &out->stable : NULL;
	return 0;
fail:
	idx_free(up_orders, n_up_orders);
	folders_done(&f);
	rollout_view_done(&v);
	return rc;
}

void rollout_view_done(rollout_view *v) {
	if (!v)
		return;
	rollout_plan_done(&v->plan);
	free(v->plan_error);
	rollout_state_done(&v->state);
	rollout_target_done(&v->stable);
	free(v->current);
	for (size_t i = 0; i < v->n_orders; i++)
		rollout_order_done(&v->orders[i]);
	free(v->orders);
	for (size_t i = 0; i < v->n_progress; i++)
		rollout_progress_done(&v->progress[i]);
	free(v->progress);
	/* the view's nodes own their strings */
	for (size_t i = 0; i < v->n_nodes; i++) {
		free((char *) v->nodes[i].id);
		free((char *) v->nodes[i].pool);
		free((char *) v->nodes[i].image);
		free((char *) v->nodes[i].config);
		rollout_node_hosts_done(&v->nodes[i]);
	}
	free(v->nodes);
	strv_free(v->notes);
	*v = (rollout_view) {};
}
