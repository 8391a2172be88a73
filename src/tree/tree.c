/* tree.c — a cluster config as etcd leaf paths, and back (see tree.h):
 * segment escaping, user paths, flatten, unflatten and leaf diffs. The
 * JSON values themselves (equality, copy, the writer) are json.c's; edits
 * at a path are edit.c's; reading JSON text is load.c's.
 *
 * jansson ownership, as used here: json_object_setn_new() and
 * json_array_append_new() steal the value (even when they fail);
 * json_object_getn() and json_array_get() borrow; every json_t we create and
 * do not hand over lives in a json_auto_t, so error paths free nothing by
 * hand. Object keys are (pointer, length) pairs throughout: a key may hold a
 * NUL byte, and jansson 2.14's own json_equal()/json_deep_copy() lose such
 * keys (they look keys up with strlen), hence tree_equal()/tree_copy() (json.c). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "esc.h"
#include "macro.h"
#include "tree-internal.h"
#include "tree.h"

/* Leaf values: exact text, and the same text for equal values (so a
 * snapshot that did not change writes the same leaves): tree_dump() (json.c). NUL
 * is allowed in strings (jansson escapes it as \u0000 and reads it back with
 * JSON_ALLOW_NUL); a repeated object key inside a value would lose data, so
 * it is refused when reading leaves. */
#define LEAF_LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

static void tree_leaves_donep(tree_leaves *l) {
	tree_leaves_done(l);
}

void tree_error_clear(tree_error *err) {
	if (err) {
		err->path[0] = '\0';
		err->message[0] = '\0';
	}
}

int tree_error_set(tree_error *err, const char *path, const char *fmt, ...) {
	if (err) {
		va_list ap;
		esc_msg(err->path, sizeof err->path, path ? path : "", path ? strlen(path) : 0);
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- segments ---------------------------------------------------------------- */

char *tree_segment_escape(const char *key, size_t len) {
	if (len == 0)
		return strdup("%");
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	char *out = malloc(3 * len + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		const char *e = key[i] == '%' ? "%25" : key[i] == '/' ? "%2F" : key[i] == '\0' ? "%00" : NULL;
		if (e) {
			memcpy(o, e, 3);
			o += 3;
		} else
			*o++ = key[i];
	}
	*o = '\0';
	return out;
}

/* The one decoder. *bad is where the offending byte or escape starts. Only
 * the escapes tree_segment_escape() writes are accepted ("%25", "%2F",
 * "%00"; upper case), so escaping is a bijection: one key, one spelling,
 * and two etcd paths never name the same key. */
static int segment_unescape(const char *seg, size_t len, char **out, size_t *out_len, size_t *bad) {
	*bad = 0;
	if (len == 0)
		return -EINVAL;
	if (len == 1 && seg[0] == '%') {
		char *e = strdup("");
		if (!e)
			return -ENOMEM;
		*out = e;
		*out_len = 0;
		return 0;
	}

	_cleanup_free_ char *buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (seg[i] == '/' || seg[i] == '\0') {
			*bad = i;
			return -EINVAL;
		}
		if (seg[i] != '%') {
			buf[n++] = seg[i];
			continue;
		}
		if (len - i < 3) {
			*bad = i;
			return -EINVAL;
		}
		if (seg[i + 1] == '2' && seg[i + 2] == '5')
			buf[n++] = '%';
		else if (seg[i + 1] == '2' && seg[i + 2] == 'F')
			buf[n++] = '/';
		else if (seg[i + 1] == '0' && seg[i + 2] == '0')
			buf[n++] = '\0';
		else {
			*bad = i;
			return -EINVAL;
		}
		i += 2;
	}
	buf[n] = '\0';
	*out = TAKE_PTR(buf);
	*out_len = n;
	return 0;
}

int tree_segment_unescape(const char *seg, size_t len, char **out, size_t *out_len) {
	size_t bad;
	return segment_unescape(seg, len, out, out_len, &bad);
}

int tree_string_new(const char *s, size_t len, json_t **out) {
	json_t *j = json_stringn(s, len);
	if (!j) {
		/* jansson says NULL for both bad UTF-8 and no memory; tell them apart */
		json_t *raw = json_stringn_nocheck(s, len);
		if (!raw)
			return -ENOMEM;
		json_decref(raw);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

static int path_parse(const char *path, json_t **out, tree_error *err) {
	if (!path || !*path)
		return tree_error_set(err, "", "empty path");

	json_auto_t *segs = json_array();
	if (!segs)
		return -ENOMEM;
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t) (slash - p) : strlen(p), bad;
		_cleanup_free_ char *key = NULL;
		size_t key_len;
		json_t *s;
		int r;

		if (len == 0)
			return tree_error_set(err, path, "empty segment at byte %zu (a key that is empty is written %%)",
					 (size_t) (p - path));
		r = segment_unescape(p, len, &key, &key_len, &bad);
		if (r == -EINVAL)
			return tree_error_set(err, path,
					 "bad escape \"%s\" in segment \"%s\" (only %%25 for %%, %%2F for /, "
					 "%%00 for NUL, and %% alone for the empty key)",
					 ESCN(p + bad, len - bad < 3 ? len - bad : 3), ESCN(p, len));
		if (r < 0)
			return r;
		r = tree_string_new(key, key_len, &s);
		if (r == -EINVAL)
			return tree_error_set(err, path, "segment \"%s\" is not valid UTF-8", ESCN(p, len));
		if (r < 0)
			return r;
		if (json_array_append_new(segs, s) < 0)
			return -ENOMEM;
		if (!slash)
			break;
		p = slash + 1;
	}
	*out = TAKE_PTR(segs);
	return 0;
}

int tree_path_parse(const char *path, json_t **out_segments, tree_error *err) {
	tree_error_clear(err);
	return path_parse(path, out_segments, err);
}

/* ---- flatten -------------------------------------------------------------- */

typedef struct path_buf {
	char *s;
	size_t len, cap;
} path_buf;

static int path_push(path_buf *p, const char *key, size_t key_len) {
	_cleanup_free_ char *e = tree_segment_escape(key, key_len);
	if (!e)
		return -ENOMEM;
	size_t elen = strlen(e), need = p->len + (p->len > 0) + elen + 1;
	if (need > p->cap) {
		size_t cap = p->cap ? p->cap : 64;
		while (cap < need)
			cap *= 2;
		char *s = realloc(p->s, cap);
		if (!s)
			return -ENOMEM;
		p->s = s;
		p->cap = cap;
	}
	if (p->len > 0)
		p->s[p->len++] = '/';
	memcpy(p->s + p->len, e, elen + 1);
	p->len += elen;
	return 0;
}

static void path_buf_done(path_buf *p) {
	free(p->s);
}

static void path_pop(path_buf *p, size_t len) {
	p->len = len;
	p->s[len] = '\0';
}

/* jansson cannot read a key holding NUL ("\u0000") back, so such a key may
 * only be a path segment, never inside a leaf's JSON text. */
static bool has_nul_key(json_t *v) {
	const char *key;
	size_t key_len, i;
	json_t *c;

	if (json_is_object(v)) {
		json_object_keylen_foreach(v, key, key_len, c)
			if (memchr(key, '\0', key_len) || has_nul_key(c))
				return true;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c)
			if (has_nul_key(c))
				return true;
	}
	return false;
}

static int leaves_push(tree_leaves *l, size_t *cap, const char *path, json_t *value) {
	if (has_nul_key(value))
		return -EINVAL;
	if (l->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		tree_leaf *v = reallocarray(l->v, ncap, sizeof *v);
		if (!v)
			return -ENOMEM;
		l->v = v;
		*cap = ncap;
	}
	_cleanup_free_ char *p = strdup(path);
	_cleanup_free_ char *text = tree_dump(value, 0);
	if (!p || !text)
		return -ENOMEM;
	l->v[l->n++] = (tree_leaf) { .path = TAKE_PTR(p), .value = TAKE_PTR(text) };
	return 0;
}

static int flatten_value(json_t *value, path_buf *p, tree_leaves *l, size_t *cap) {
	const char *key;
	size_t key_len;
	json_t *child;

	if (!json_is_object(value) || json_object_size(value) == 0)
		return leaves_push(l, cap, p->s, value);

	json_object_keylen_foreach(value, key, key_len, child) {
		size_t saved = p->len;
		int r = path_push(p, key, key_len);
		if (r < 0)
			return r;
		r = flatten_value(child, p, l, cap);
		if (r < 0)
			return r;
		path_pop(p, saved);
	}
	return 0;
}

static int leaf_cmp(const void *a, const void *b) {
	/* paths hold no NUL, and strcmp compares as unsigned char: bytewise */
	return strcmp(((const tree_leaf *) a)->path, ((const tree_leaf *) b)->path);
}

void tree_leaves_done(tree_leaves *l) {
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int tree_flatten(json_t *files, tree_leaves *out) {
	_cleanup_(tree_leaves_donep) tree_leaves l = { 0 };
	_cleanup_(path_buf_done) path_buf p = { 0 };
	size_t cap = 0;
	const char *key;
	size_t key_len;
	json_t *value;
	int r = 0;

	*out = (tree_leaves) { 0 };
	if (!json_is_object(files))
		return -EINVAL;

	/* Each file is its own first segment, so an empty-object file is the
	 * leaf "<file>" = "{}" like any other empty object. */
	json_object_keylen_foreach(files, key, key_len, value) {
		r = path_push(&p, key, key_len);
		if (r < 0)
			return r;
		r = flatten_value(value, &p, &l, &cap);
		if (r < 0)
			return r;
		path_pop(&p, 0);
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof *l.v, leaf_cmp);
	*out = l;
	l = (tree_leaves) { 0 };
	return 0;
}

/* ---- unflatten ------------------------------------------------------------ */

static int leafp_cmp(const void *a, const void *b) {
	return strcmp((*(const tree_leaf *const *) a)->path, (*(const tree_leaf *const *) b)->path);
}

int tree_unflatten(const tree_leaf *leaves, size_t n, json_t **out, tree_error *err) {
	tree_error_clear(err);
	*out = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!leaves[i].path)
			return tree_error_set(err, "", "leaf without a path");
		if (!leaves[i].value)
			return tree_error_set(err, leaves[i].path, "leaf without a value");
	}

	/* Work in path order so that, of several faults, the same one is
	 * reported whatever order etcd or the caller gave. */
	_cleanup_free_ const tree_leaf **order = calloc(n ? n : 1, sizeof *order);
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &leaves[i];
	qsort(order, n, sizeof *order, leafp_cmp);

	/* Pass 1: every path and value well formed, no path twice. parsed[i]
	 * holds [segments, value] for order[i]; seen is the set of
	 * paths (raw bytes as keys: no UTF-8 check needed for a set). */
	json_auto_t *parsed = json_array();
	json_auto_t *seen = json_object();
	if (!parsed || !seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const tree_leaf *leaf = order[i];
		json_auto_t *segs = NULL;
		json_error_t jerr;
		int r;

		r = path_parse(leaf->path, &segs, err);
		if (r < 0)
			return r;
		if (i > 0 && streq(leaf->path, order[i - 1]->path))
			return tree_error_set(err, leaf->path, "the same path appears twice");
		json_t *value = json_loads(leaf->value, LEAF_LOAD_FLAGS, &jerr);
		if (!value)
			return tree_error_set(err, leaf->path, "value is not JSON: %s (column %d)", ESC_JERR(&jerr),
					 jerr.column);
		json_t *pair = json_pack("[O,o]", segs, value);
		if (!pair || json_array_append_new(parsed, pair) < 0)
			return -ENOMEM;
		if (json_object_setn_new_nocheck(seen, leaf->path, strlen(leaf->path), json_null()) < 0)
			return -ENOMEM;
	}

	/* Pass 2: no leaf is the parent of another, then build. With that
	 * checked, every object met on the way down is one made here. */
	json_auto_t *files = json_object();
	if (!files)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *path = order[i]->path;
		json_t *pair = json_array_get(parsed, i);
		json_t *segs = json_array_get(pair, 0), *value = json_array_get(pair, 1);
		size_t nsegs = json_array_size(segs);
		json_t *cur = files;

		for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/'))
			if (json_object_getn(seen, path, (size_t) (s - path)))
				return tree_error_set(err, path, "\"%s\" is a leaf and also the parent of \"%s\"",
						 ESCN(path, (size_t) (s - path)), ESC(path));

		for (size_t k = 0; k < nsegs; k++) {
			json_t *s = json_array_get(segs, k);
			const char *key = json_string_value(s);
			size_t key_len = json_string_length(s);

			if (k + 1 == nsegs) {
				if (json_object_setn_new(cur, key, key_len, json_incref(value)) < 0)
					return -ENOMEM;
				break;
			}
			json_t *child = json_object_getn(cur, key, key_len);
			if (!child) {
				child = json_object();
				if (!child || json_object_setn_new(cur, key, key_len, child) < 0)
					return -ENOMEM;
			}
			cur = child;
		}
	}
	*out = TAKE_PTR(files);
	return 0;
}

typedef struct fault_list {
	tree_fault *v;
	size_t n;
	bool *bad;                      /* per leaf */
} fault_list;

_printf_(3, 4) static int fault_add(fault_list *f, size_t leaf, const char *fmt, ...) {
	tree_fault *v = reallocarray(f->v, f->n + 1, sizeof *v);
	va_list ap;

	if (!v)
		return -ENOMEM;
	f->v = v;
	v[f->n].leaf = leaf;
	va_start(ap, fmt);
	vsnprintf(v[f->n].message, sizeof v[f->n].message, fmt, ap);
	va_end(ap);
	f->n++;
	f->bad[leaf] = true;
	return 0;
}

static void fault_list_done(fault_list *f) {
	free(f->v);
	free(f->bad);
}

static int index_cmp(const void *a, const void *b, void *leaves) {
	const tree_leaf *l = leaves;
	return strcmp(l[*(const size_t *) a].path, l[*(const size_t *) b].path);
}

static int fault_cmp(const void *a, const void *b, void *leaves) {
	return index_cmp(&((const tree_fault *) a)->leaf, &((const tree_fault *) b)->leaf, leaves);
}

int tree_unflatten_partial(const tree_leaf *leaves, size_t n, json_t **out, tree_fault **faults, size_t *n_faults) {
	_cleanup_(fault_list_done) fault_list f = {};
	tree_error terr;
	int r;

	*out = NULL;
	*faults = NULL;
	*n_faults = 0;
	for (size_t i = 0; i < n; i++)
		if (!leaves[i].path || !leaves[i].value)
			return -EINVAL;
	/* The usual case, at the usual cost: nothing is malformed. */
	r = tree_unflatten(leaves, n, out, &terr);
	if (r != -EINVAL)
		return r;

	/* Each leaf on its own (path, value), then the leaves between them
	 * (a path twice, a leaf that is a parent), in path order so the same
	 * faults come out whatever order the leaves came in. */
	_cleanup_free_ size_t *order = calloc(n ? n : 1, sizeof *order);
	_cleanup_free_ tree_leaf *good = calloc(n ? n : 1, sizeof *good);
	json_auto_t *seen = json_object();
	f.bad = calloc(n ? n : 1, sizeof *f.bad);
	if (!order || !good || !seen || !f.bad)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	if (n > 1)
		qsort_r(order, n, sizeof *order, index_cmp, (void *) leaves);
	for (size_t i = 0; i < n; i++) {
		const tree_leaf *l = &leaves[order[i]];
		json_auto_t *one = NULL;

		if (i > 0 && streq(l->path, leaves[order[i - 1]].path))
			r = fault_add(&f, order[i], "the same path appears twice");
		else if ((r = tree_unflatten(l, 1, &one, &terr)) == -EINVAL)
			r = fault_add(&f, order[i], "%s", terr.message);
		else if (r == 0)
			r = json_object_setn_new_nocheck(seen, l->path, strlen(l->path),
							 json_integer((json_int_t) order[i]));
		if (r < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const char *path = leaves[order[i]].path;

		if (f.bad[order[i]])
			continue;
		for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
			json_t *parent = json_object_getn(seen, path, (size_t) (s - path));
			size_t p = parent ? (size_t) json_integer_value(parent) : 0;
			if (parent && !f.bad[p] && fault_add(&f, p, "a leaf and also the parent of \"%s\"", path) < 0)
				return -ENOMEM;
		}
	}
	size_t n_good = 0;
	for (size_t i = 0; i < n; i++)
		if (!f.bad[i])
			good[n_good++] = leaves[i];
	r = tree_unflatten(good, n_good, out, &terr);
	if (r < 0)
		return r == -ENOMEM ? r : -EIO;   /* every fault was taken out above */
	if (f.n > 1)
		qsort_r(f.v, f.n, sizeof *f.v, fault_cmp, (void *) leaves);
	*faults = TAKE_PTR(f.v);
	*n_faults = f.n;
	return 0;
}

/* ---- diffs ------------------------------------------------------------------- */

/* A leaf's value for a diff entry: the JSON it holds, or, when it holds
 * none (written by hand), its text as a string. */
static json_t *leaf_value(const char *text) {
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return v ? v : json_string(text);
}

static int diff_add(json_t *diff, const char *path, const char *op, const char *old, const char *new) {
	json_auto_t *e = json_object();
	json_auto_t *o = old ? leaf_value(old) : NULL;
	json_auto_t *nw = new ? leaf_value(new) : NULL;

	if (!e || (old && !o) || (new && !nw))
		return -ENOMEM;
	if (o && nw && tree_equal(o, nw))
		return 0;       /* same value, spelt differently */
	if (json_object_set_new(e, "path", json_string(path)) < 0 ||
	    json_object_set_new(e, "op", json_string(op)) < 0 ||
	    (o && json_object_set(e, "old", o) < 0) || (nw && json_object_set(e, "new", nw) < 0))
		return -ENOMEM;
	return json_array_append(diff, e);
}

json_t *tree_diff(const tree_leaves *a, const tree_leaves *b) {
	size_t na = a ? a->n : 0, nb = b ? b->n : 0, i = 0, j = 0;
	json_auto_t *diff = json_array();

	if (!diff)
		return NULL;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : strcmp(a->v[i].path, b->v[j].path);
		int r;

		if (c < 0) {
			r = diff_add(diff, a->v[i].path, "remove", a->v[i].value, NULL);
			i++;
		} else if (c > 0) {
			r = diff_add(diff, b->v[j].path, "add", NULL, b->v[j].value);
			j++;
		} else {
			r = streq(a->v[i].value, b->v[j].value)
				? 0
				: diff_add(diff, a->v[i].path, "change", a->v[i].value, b->v[j].value);
			i++;
			j++;
		}
		if (r < 0)
			return NULL;
	}
	return TAKE_PTR(diff);
}
