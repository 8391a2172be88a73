/* rebase.c — a staged candidate moved onto a new `current`, pure: the
 * plan's change (base B -> candidate C, leaf by leaf) applied to the new
 * current N, as a three-way merge of leaves (agree.h). The leader calls it
 * when topology upkeep or another writer moved `current` during a staged
 * config rollout, so no join and no concurrent edit is lost. */
#include "agree-internal.h"
#include "esc.h"

/* Two leaf texts holding the same JSON value ("[1,2]" and "[1, 2]"); text
 * that is not JSON (written by hand) only when it is the same text. */
static bool leaf_same(const char *a, const char *b) {
	if (streq(a, b))
		return true;
	json_auto_t *ja = json_loads(a, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	json_auto_t *jb = json_loads(b, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return ja && jb && tree_equal(ja, jb);
}

static const char *value_at(const tree_leaves *l, const char *path) {
	const tree_leaf *f = agree_leaves_find(l, path);
	return f ? f->value : NULL;
}

static int conflict(agree_error *err, const char *path, const char *now_id) {
	agree_error_set(err, -EEXIST, "%s was changed by both the plan and %s", ESC(path),
			now_id ? now_id : "the current config");
	return -EEXIST;
}

/* The plan's edits that N still needs: sets (path, C's value) and
 * removals, both in path order, pointing into b and c. */
typedef struct edits {
	const tree_leaf **set;
	size_t n_set;
	const char **del;
	size_t n_del;
} edits;

static void edits_done(edits *e) {
	free(e->set);
	free(e->del);
}

/* One path of the walk over B and C (bv, cv NULL when absent there): 0,
 * or -EEXIST when N changed it otherwise. */
static int edit_one(const char *path, const char *bv, const tree_leaf *cl, const tree_leaves *n, edits *e) {
	const char *cv = cl ? cl->value : NULL, *nv = value_at(n, path);

	if (bv && cv && leaf_same(bv, cv))
		return 0;                       /* the plan left it alone */
	if (cv) {
		if (nv && leaf_same(nv, cv))
			return 0;               /* both made the same change */
		if ((!bv && !nv) || (bv && nv && leaf_same(bv, nv))) {
			e->set[e->n_set++] = cl;
			return 0;
		}
		return -EEXIST;
	}
	if (!nv)
		return 0;                       /* removed on both sides */
	if (!leaf_same(nv, bv))
		return -EEXIST;                 /* removed here, changed there */
	e->del[e->n_del++] = path;
	return 0;
}

/* Walks B and C together, in path order, so the first conflict named is
 * the first in path order. */
static int edits_make(const tree_leaves *b, const tree_leaves *c, const tree_leaves *n, const char *now_id,
		      edits *e, agree_error *err) {
	size_t i = 0, j = 0;

	e->set = calloc(c->n + 1, sizeof *e->set);
	e->del = calloc(b->n + 1, sizeof *e->del);
	if (!e->set || !e->del) {
		agree_error_set(err, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	while (i < b->n || j < c->n) {
		int cmp = i >= b->n ? 1 : j >= c->n ? -1 : strcmp(b->v[i].path, c->v[j].path);
		const char *path = cmp <= 0 ? b->v[i].path : c->v[j].path;
		const char *bv = cmp <= 0 ? b->v[i].value : NULL;
		const tree_leaf *cl = cmp >= 0 ? &c->v[j] : NULL;

		if (edit_one(path, bv, cl, n, e) < 0)
			return conflict(err, path, now_id);
		i += cmp <= 0;
		j += cmp >= 0;
	}
	return 0;
}

static int push(tree_leaves *out, const tree_leaf *l) {
	out->v[out->n].path = strdup(l->path);
	out->v[out->n].value = strdup(l->value);
	if (!out->v[out->n++].path || !out->v[out->n - 1].value)
		return -ENOMEM;
	return 0;
}

/* N less the removals, with the sets over it (both sorted: a merge). */
static int compose(const tree_leaves *n, const edits *e, tree_leaves *out) {
	size_t i = 0, j = 0;
	int r = 0;

	out->v = calloc(n->n + e->n_set + 1, sizeof *out->v);
	if (!out->v)
		return -ENOMEM;
	while (r >= 0 && (i < n->n || j < e->n_set)) {
		int cmp = i >= n->n ? 1 : j >= e->n_set ? -1 : strcmp(n->v[i].path, e->set[j]->path);

		if (cmp >= 0)
			r = push(out, e->set[j++]);
		else if (!agree_sorted_has((char *const *) e->del, e->n_del, n->v[i].path))
			r = push(out, &n->v[i]);
		i += cmp <= 0;
	}
	return r;
}

/* Whether out holds a leaf above path or under it: the plan made a leaf
 * where N made an object, or the other way round. Paths under p are one
 * run in bytewise order, starting at the first one >= "p/". */
static bool shape_clash(const tree_leaves *out, const char *path) {
	_cleanup_free_ char *under = NULL;
	size_t lo = 0, hi = out->n;

	for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		_cleanup_free_ char *up = strndup(path, s - path);
		if (!up || agree_leaves_find(out, up))
			return true;
	}
	if (asprintf(&under, "%s/", path) < 0)
		return true;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(out->v[mid].path, under) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < out->n && strncmp(out->v[lo].path, under, strlen(under)) == 0;
}

int agree_rebase(const tree_leaves *base, const tree_leaves *candidate, const tree_leaves *now, const char *now_id,
		 tree_leaves *out, agree_error *err) {
	_cleanup_(edits_done) edits e = {};
	tree_leaves res = {};
	int r;

	*out = (tree_leaves){};
	*err = (agree_error){};
	r = edits_make(base, candidate, now, now_id, &e, err);
	if (r < 0)
		return r;
	r = compose(now, &e, &res);
	if (r < 0) {
		tree_leaves_done(&res);
		agree_error_set(err, r, "out of memory");
		return r;
	}
	for (size_t k = 0; k < e.n_set; k++)
		if (shape_clash(&res, e.set[k]->path)) {
			tree_leaves_done(&res);
			return conflict(err, e.set[k]->path, now_id);
		}
	*out = res;
	return 0;
}
