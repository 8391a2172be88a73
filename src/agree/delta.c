/* delta.c — delta snapshots (agree.h, docs/snapshots.md), pure: a
 * folder's keys to what it holds (complete, or a delta on a base: the
 * leaves it sets and the base's leaves it deletes), a delta resolved
 * against its base, and the delta a new config needs against the base of
 * the snapshot it was made on. No I/O: read.c reads, propose.c writes. */
#include "agree-internal.h"
#include "esc.h"

#define BASE_DIR AGREE_BASE_MARKER "/"
#define DELETED_DIR AGREE_DELETED_DIR "/"

static bool has_dir(const char *rel, size_t len, const char *dir) {
	size_t n = strlen(dir);
	return len > n && memcmp(rel, dir, n) == 0;
}

/* The base a folder names (its %base/<id> key), or none. -EBADMSG for two
 * bases or a base that is no id. */
static int find_base(const etcd_kv *kvs, size_t n, size_t strip, char **out, agree_error *err) {
	for (size_t i = 0; i < n; i++) {
		const char *rel = kvs[i].key + strip;
		size_t len = kvs[i].key_len - strip;

		if (!has_dir(rel, len, BASE_DIR))
			continue;
		const char *id = rel + strlen(BASE_DIR);
		size_t id_len = len - strlen(BASE_DIR);
		if (!keys_id_valid(id, id_len)) {
			agree_error_set(err, -EBADMSG, "%s: not a base config id", ESCN(kvs[i].key, kvs[i].key_len));
			return -EBADMSG;
		}
		if (*out) {
			agree_error_set(err, -EBADMSG, "%s: a second base (the folder names %s already)",
					ESCN(kvs[i].key, kvs[i].key_len), *out);
			return -EBADMSG;
		}
		*out = bytes_dup(id, id_len);
		if (!*out) {
			agree_error_set(err, -ENOMEM, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static int add_leaf(tree_leaves *l, const etcd_kv *kv, size_t strip, agree_error *err) {
	const char *v = kv->value ? kv->value : "";
	size_t vlen = kv->value ? kv->value_len : 0;

	if (memchr(v, 0, vlen)) {
		agree_error_set(err, -EBADMSG, "%s: the value holds a NUL byte", ESCN(kv->key, kv->key_len));
		return -EBADMSG;
	}
	l->v[l->n].path = bytes_dup(kv->key + strip, kv->key_len - strip);
	l->v[l->n].value = bytes_dup(v, vlen);
	l->n++;
	if (!l->v[l->n - 1].path || !l->v[l->n - 1].value) {
		agree_error_set(err, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int classify(const etcd_kv *kvs, size_t n, size_t strip, agree_delta *d, agree_error *err) {
	for (size_t i = 0; i < n; i++) {
		const etcd_kv *kv = &kvs[i];
		const char *rel = kv->key + strip;
		size_t len = kv->key_len - strip;

		if (len == strlen(AGREE_EMPTY_MARKER) && memcmp(rel, AGREE_EMPTY_MARKER, len) == 0)
			continue;
		if (d->base_id && has_dir(rel, len, BASE_DIR))
			continue;
		if (d->base_id && has_dir(rel, len, DELETED_DIR)) {
			d->deleted[d->n_deleted] = bytes_dup(rel + strlen(DELETED_DIR), len - strlen(DELETED_DIR));
			if (!d->deleted[d->n_deleted++]) {
				agree_error_set(err, -ENOMEM, "out of memory");
				return -ENOMEM;
			}
			continue;
		}
		int r = add_leaf(&d->set, kv, strip, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int agree_folder_parse(const etcd_kv *kvs, size_t n, size_t strip, agree_delta *out, agree_error *err) {
	agree_delta d = {};
	int r;

	*out = (agree_delta){};
	for (size_t i = 0; i < n; i++)
		if (kvs[i].key_len <= strip || memchr(kvs[i].key, 0, kvs[i].key_len)) {
			agree_error_set(err, -EBADMSG, "%s: not a config leaf key", ESCN(kvs[i].key, kvs[i].key_len));
			return -EBADMSG;
		}
	r = find_base(kvs, n, strip, &d.base_id, err);
	if (r < 0) {
		agree_delta_done(&d);
		return r;
	}
	d.set.v = calloc(n ? n : 1, sizeof *d.set.v);
	d.deleted = calloc(n ? n : 1, sizeof *d.deleted);
	if (!d.set.v || !d.deleted) {
		agree_delta_done(&d);
		agree_error_set(err, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	r = classify(kvs, n, strip, &d, err);
	if (r < 0) {
		agree_delta_done(&d);
		return r;
	}
	*out = d;
	return 0;
}

/* ---- resolving ------------------------------------------------------------------------ */

int agree_delta_resolve(tree_leaves *base, const agree_delta *d, tree_leaves *out) {
	tree_leaves l = {};
	size_t i = 0, j = 0, k = 0;

	*out = (tree_leaves){};
	l.v = calloc(base->n + d->set.n + 1, sizeof *l.v);
	if (!l.v)
		return -ENOMEM;
	/* Three sorted lists: the base's leaves, the delta's deletions and
	 * its leaves. The delta's leaf wins over the base's. */
	while (i < base->n || j < d->set.n) {
		int c = i >= base->n ? 1 : j >= d->set.n ? -1 : strcmp(base->v[i].path, d->set.v[j].path);
		if (c < 0) {
			while (k < d->n_deleted && strcmp(d->deleted[k], base->v[i].path) < 0)
				k++;
			if (k < d->n_deleted && streq(d->deleted[k], base->v[i].path)) {
				i++;
				continue;
			}
			l.v[l.n++] = base->v[i];
			base->v[i++] = (tree_leaf){};
			continue;
		}
		if (c == 0)
			i++;
		l.v[l.n].path = strdup(d->set.v[j].path);
		l.v[l.n].value = strdup(d->set.v[j].value);
		j++;
		if (!l.v[l.n++].path || !l.v[l.n - 1].value) {
			tree_leaves_done(&l);
			return -ENOMEM;
		}
	}
	*out = l;
	return 0;
}

/* ---- making ---------------------------------------------------------------------------- */

const tree_leaf *agree_leaves_find(const tree_leaves *l, const char *path) {
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].path, path);
		if (c == 0)
			return &l->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool agree_sorted_has(char *const *v, size_t n, const char *s) {
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid], s);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Whether new leaf nl must be in the delta: the base may not hold it as
 * it is. Of an old delta's own leaves and deletions the base's value is
 * not known here: they stay in (writing the base's own value is harmless). */
static bool must_set(const tree_leaf *nl, const tree_leaves *old, const agree_delta *od) {
	const tree_leaf *ol = agree_leaves_find(old, nl->path);

	if (!ol || !streq(ol->value, nl->value))
		return true;
	return od && (agree_leaves_find(&od->set, nl->path) ||
		      agree_sorted_has(od->deleted, od->n_deleted, nl->path));
}

static int make_set(const tree_leaves *old, const agree_delta *od, const tree_leaves *new, agree_delta *d) {
	d->set.v = calloc(new->n + 1, sizeof *d->set.v);
	if (!d->set.v)
		return -ENOMEM;
	for (size_t i = 0; i < new->n; i++) {
		if (!must_set(&new->v[i], old, od))
			continue;
		d->set.v[d->set.n].path = strdup(new->v[i].path);
		d->set.v[d->set.n].value = strdup(new->v[i].value);
		if (!d->set.v[d->set.n++].path || !d->set.v[d->set.n - 1].value)
			return -ENOMEM;
	}
	return 0;
}

/* Deleted: what the base may hold and the new config does not: the old
 * config's leaves and the old delta's deletions (disjoint, both sorted). */
static int make_deleted(const tree_leaves *old, const agree_delta *od, const tree_leaves *new, agree_delta *d) {
	size_t nd = od ? od->n_deleted : 0, i = 0, j = 0;

	d->deleted = calloc(old->n + nd + 1, sizeof *d->deleted);
	if (!d->deleted)
		return -ENOMEM;
	while (i < old->n || j < nd) {
		const char *p;
		if (j >= nd || (i < old->n && strcmp(old->v[i].path, od->deleted[j]) < 0))
			p = old->v[i++].path;
		else
			p = od->deleted[j++];
		if (agree_leaves_find(new, p))
			continue;
		d->deleted[d->n_deleted] = strdup(p);
		if (!d->deleted[d->n_deleted++])
			return -ENOMEM;
	}
	return 0;
}

int agree_delta_make(const tree_leaves *old, const char *old_id, const agree_delta *old_delta,
		     const tree_leaves *new, agree_delta *out) {
	const agree_delta *od = old_delta && old_delta->base_id ? old_delta : NULL;
	agree_delta d = {};
	int r;

	*out = (agree_delta){};
	if (!old_id || !keys_id_valid(old_id, strlen(old_id)))
		return -EINVAL;
	d.base_id = strdup(od ? od->base_id : old_id);
	if (!d.base_id)
		return -ENOMEM;
	r = make_set(old, od, new, &d);
	if (r >= 0)
		r = make_deleted(old, od, new, &d);
	if (r < 0) {
		agree_delta_done(&d);
		return r;
	}
	*out = d;
	return 0;
}

size_t agree_delta_cap(size_t n) {
	size_t c = 0;

	while ((c + 1) * (c + 1) <= 2 * n)
		c++;
	return c;
}

bool agree_delta_worth(const agree_delta *d, const tree_leaves *full) {
	size_t bytes = 0, total = 0;

	for (size_t i = 0; i < d->set.n; i++)
		bytes += strlen(d->set.v[i].path) + strlen(d->set.v[i].value);
	for (size_t i = 0; i < d->n_deleted; i++)
		bytes += strlen(d->deleted[i]);
	for (size_t i = 0; i < full->n; i++)
		total += strlen(full->v[i].path) + strlen(full->v[i].value);
	return d->set.n + d->n_deleted <= agree_delta_cap(full->n) && bytes * AGREE_DELTA_RATIO <= total;
}

/* ---- regions ---------------------------------------------------------------------------- */

static bool in_region(const char *path, const char *scope) {
	return tree_path_within(path, scope) || tree_path_within(scope, path);
}

static int leaf_push(tree_leaves *l, const tree_leaf *x) {
	l->v[l->n].path = strdup(x->path);
	l->v[l->n].value = strdup(x->value);
	return !l->v[l->n++].path || !l->v[l->n - 1].value ? -ENOMEM : 0;
}

static int del_push(agree_delta *d, const char *p) {
	d->deleted[d->n_deleted] = strdup(p);
	return d->deleted[d->n_deleted++] ? 0 : -ENOMEM;
}

static int delta_alloc(agree_delta *d, const char *base, size_t n_set, size_t n_del) {
	d->base_id = base ? strdup(base) : NULL;
	d->set.v = calloc(n_set + 1, sizeof *d->set.v);
	d->deleted = calloc(n_del + 1, sizeof *d->deleted);
	return (base && !d->base_id) || !d->set.v || !d->deleted ? -ENOMEM : 0;
}

int agree_delta_within(const agree_delta *d, const char *scope, agree_delta *out) {
	agree_delta w = {};
	int r = delta_alloc(&w, d->base_id, d->set.n, d->n_deleted);

	for (size_t i = 0; r >= 0 && i < d->set.n; i++)
		if (in_region(d->set.v[i].path, scope))
			r = leaf_push(&w.set, &d->set.v[i]);
	for (size_t i = 0; r >= 0 && i < d->n_deleted; i++)
		if (in_region(d->deleted[i], scope))
			r = del_push(&w, d->deleted[i]);
	if (r < 0) {
		agree_delta_done(&w);
		return r;
	}
	*out = w;
	return 0;
}

int agree_delta_splice(const agree_delta *old, const agree_delta *region, const char *scope, agree_delta *out) {
	agree_delta w = {};
	size_t i = 0, j = 0;
	int r = delta_alloc(&w, region->base_id, old->set.n + region->set.n, old->n_deleted + region->n_deleted);

	/* two sorted lists each: old's outside the region, region's inside */
	while (r >= 0 && (i < old->set.n || j < region->set.n)) {
		if (i < old->set.n && in_region(old->set.v[i].path, scope)) {
			i++;
			continue;
		}
		if (j >= region->set.n || (i < old->set.n && strcmp(old->set.v[i].path, region->set.v[j].path) < 0))
			r = leaf_push(&w.set, &old->set.v[i++]);
		else
			r = leaf_push(&w.set, &region->set.v[j++]);
	}
	for (i = 0, j = 0; r >= 0 && (i < old->n_deleted || j < region->n_deleted);) {
		if (i < old->n_deleted && in_region(old->deleted[i], scope)) {
			i++;
			continue;
		}
		if (j >= region->n_deleted || (i < old->n_deleted && strcmp(old->deleted[i], region->deleted[j]) < 0))
			r = del_push(&w, old->deleted[i++]);
		else
			r = del_push(&w, region->deleted[j++]);
	}
	if (r < 0) {
		agree_delta_done(&w);
		return r;
	}
	*out = w;
	return 0;
}

int agree_region_outside(const tree_leaves *l, const char *scope, char *msg, size_t size) {
	for (size_t i = 0; i < l->n; i++)
		if (!in_region(l->v[i].path, scope)) {
			snprintf(msg, size, "the change wrote %s, outside its scope %s", l->v[i].path, scope);
			return -EINVAL;
		}
	return 0;
}

static bool above_scope(const char *path, const char *scope) {
	return !streq(path, scope) && tree_path_within(scope, path);
}

bool agree_region_above_same(const tree_leaves *old, const tree_leaves *new, const char *scope) {
	size_t i = 0, j = 0;

	for (;;) {
		while (i < old->n && !above_scope(old->v[i].path, scope))
			i++;
		while (j < new->n && !above_scope(new->v[j].path, scope))
			j++;
		if (i >= old->n || j >= new->n)
			return i >= old->n && j >= new->n;
		if (!streq(old->v[i].path, new->v[j].path) || !streq(old->v[i].value, new->v[j].value))
			return false;
		i++, j++;
	}
}
