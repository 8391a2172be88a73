/* topology.c — the lists in the cluster config that hold one entry per live
 * node (see topology.h).
 *
 * The live entries are computed afresh from the node records each time and
 * then matched against what the list already holds, so that nothing but the
 * node records decides the content and only the list decides the order:
 *
 *   want:  (node, entry) pairs — nodes in id order (bytewise), and for each
 *          node the rules of this path in rule order. A node contributes an
 *          entry once per distinct entry: two rules (or a service listed
 *          twice) that make the same entry for the same node make it once,
 *          while two rules making different entries contribute both.
 *   match: each entry in the list, front to back, takes the first pair in
 *          `want` not taken yet that is equal to it (tree_equal). Entries
 *          that find none are dropped: nodes that are gone, entries no rule
 *          makes any more, and surplus copies.
 *   then:  the pairs nobody took are appended in `want` order.
 *
 * Two nodes that advertise the same address make equal entries; each node
 * owns one, so the list holds the entry twice while both live and once when
 * one leaves. (Entries carry no owner, so which copy "belongs" to which
 * node cannot be told and does not matter.)
 *
 * Running it on its own output matches every entry and appends nothing:
 * idempotent, which is what lets any node run it on any snapshot.
 *
 * Pure: no I/O, no clock, no logging. */
#include <stdarg.h>
#include <stdbool.h>

#include "topology.h"

/* ---- templates ------------------------------------------------------------- */

typedef struct topology_buf {
	char *s;
	size_t len, cap;
} topology_buf;

static int topology_buf_add(topology_buf *b, const char *p, size_t n) {
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/* "{address}" and "{node_id}" replaced; any other brace stays as written.
 * Strings may hold NUL (jansson allows it), hence lengths throughout. */
static json_t *topology_subst_string(json_t *str, const char *node_id, const char *address) {
	static const char *const names[] = { "{address}", "{node_id}" };
	const char *values[] = { address, node_id };
	const char *s = json_string_value(str);
	size_t n = json_string_length(str), i = 0, plain = 0;
	topology_buf b = {};
	json_t *out = NULL;

	while (i < n) {
		size_t which = ELEMENTSOF(names);
		if (s[i] == '{')
			for (size_t k = 0; k < ELEMENTSOF(names); k++) {
				size_t l = strlen(names[k]);
				if (n - i >= l && memcmp(s + i, names[k], l) == 0) {
					which = k;
					break;
				}
			}
		if (which == ELEMENTSOF(names)) {
			i++;
			continue;
		}
		if (topology_buf_add(&b, s + plain, i - plain) < 0 ||
		    topology_buf_add(&b, values[which], strlen(values[which])) < 0)
			goto out;
		i += strlen(names[which]);
		plain = i;
	}
	if (plain == 0) {
		/* No placeholder: the string as it is. */
		out = json_stringn(s, n);
		goto out;
	}
	if (topology_buf_add(&b, s + plain, n - plain) < 0)
		goto out;
	out = json_stringn(b.s, b.len);
out:
	free(b.s);
	return out;
}

/* Object keys are not templates: a key is where a value lives, and making
 * it depend on the node would scatter the list's shape. */
static json_t *topology_subst(json_t *v, const char *node_id, const char *address) {
	switch (json_typeof(v)) {
	case JSON_STRING:
		return topology_subst_string(v, node_id, address);
	case JSON_ARRAY: {
		json_auto_t *a = json_array();
		size_t i;
		json_t *item;
		if (!a)
			return NULL;
		json_array_foreach(v, i, item) {
			json_t *c = topology_subst(item, node_id, address);
			if (!c || json_array_append_new(a, c) < 0)
				return NULL;
		}
		return TAKE_PTR(a);
	}
	case JSON_OBJECT: {
		json_auto_t *o = json_object();
		const char *key;
		size_t key_len;
		json_t *item;
		void *tmp;
		if (!o)
			return NULL;
		/* The length-aware iteration: a key may hold NUL. */
		json_object_keylen_foreach_safe(v, tmp, key, key_len, item) {
			json_t *c = topology_subst(item, node_id, address);
			if (!c || json_object_setn_new(o, key, key_len, c) < 0)
				return NULL;
		}
		return TAKE_PTR(o);
	}
	default:
		return tree_copy(v);
	}
}

json_t *topology_entry(const conf_topology *rule, const char *node_id, const char *address) {
	if (!rule || !rule->value || !node_id || !address)
		return NULL;
	return topology_subst(rule->value, node_id, address);
}

/* ---- node records ------------------------------------------------------------ */

/* A record contributes only when it is an object with a non-empty string
 * "address" and an array "services" of strings; anything else (a half-written
 * or foreign record) contributes nothing rather than a partial guess. */
static bool topology_record_valid(json_t *rec) {
	json_t *addr = json_object_get(rec, "address"), *services = json_object_get(rec, "services"), *s;
	size_t i;

	if (!json_is_object(rec) || !json_is_string(addr) || json_string_length(addr) == 0 ||
	    strlen(json_string_value(addr)) != json_string_length(addr) || !json_is_array(services))
		return false;
	json_array_foreach(services, i, s)
		if (!json_is_string(s))
			return false;
	return true;
}

static bool topology_record_runs(json_t *rec, const char *service) {
	json_t *services = json_object_get(rec, "services"), *s;
	size_t i;

	json_array_foreach(services, i, s)
		if (streq_ptr(json_string_value(s), service) && json_string_length(s) == strlen(service))
			return true;
	return false;
}

typedef struct topology_node {
	const char *id;
	size_t id_len;
	json_t *record;
} topology_node;

static int topology_node_cmp(const void *a, const void *b) {
	const topology_node *x = a, *y = b;
	size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
	int c = memcmp(x->id, y->id, n);
	if (c != 0)
		return c;
	return (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

/* The valid records, sorted by node id (bytewise, as etcd orders keys).
 * Node ids with NUL cannot be etcd key components and are skipped. */
static int topology_nodes_sorted(json_t *nodes, topology_node **ret, size_t *ret_n) {
	_cleanup_free_ topology_node *v = NULL;
	const char *key;
	size_t key_len, n = 0;
	json_t *rec;
	void *tmp;

	v = calloc(json_object_size(nodes) + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	json_object_keylen_foreach_safe(nodes, tmp, key, key_len, rec) {
		if (strlen(key) != key_len || !topology_record_valid(rec))
			continue;
		v[n++] = (topology_node) { .id = key, .id_len = key_len, .record = rec };
	}
	qsort(v, n, sizeof *v, topology_node_cmp);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

/* ---- applying ------------------------------------------------------------------ */

_printf_(3, 4) static int topology_fail(tree_error *err, const char *path, const char *fmt, ...) {
	va_list ap;

	if (err) {
		snprintf(err->path, sizeof err->path, "%s", path ?: "");
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* One list: the rules naming the same path. */
typedef struct topology_group {
	const char *path;           /* the first rule's spelling, for messages */
	json_t *segments;           /* owned */
	const conf_topology **rules;
	size_t n_rules;
	json_t *list;               /* the new list, owned; NULL: unchanged */
} topology_group;

static void topology_groups_free(topology_group *g, size_t n) {
	for (size_t i = 0; i < n; i++) {
		json_decref(g[i].segments);
		free(g[i].rules);
		json_decref(g[i].list);
	}
	free(g);
}

static bool topology_segments_prefix(json_t *a, json_t *b) {
	/* true when a is a strict prefix of b */
	if (json_array_size(a) >= json_array_size(b))
		return false;
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!tree_equal(json_array_get(a, i), json_array_get(b, i)))
			return false;
	return true;
}

/* Nothing on the way to the list may be a non-object, and the list itself,
 * if there, must be a list: corral replaces the entries of a list, never a
 * value someone put there by hand. */
static int topology_check_place(json_t *files, const topology_group *g, tree_error *err) {
	json_t *cur = files;
	size_t n = json_array_size(g->segments);

	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(g->segments, i);
		json_t *child = json_object_getn(cur, json_string_value(s), json_string_length(s));
		if (!child)
			return 0;
		if (i + 1 < n && !json_is_object(child))
			return topology_fail(err, g->path, "topology path \"%s\" runs through a value that is not an object",
					     g->path);
		if (i + 1 == n && !json_is_array(child))
			return topology_fail(err, g->path, "topology path \"%s\" holds a value that is not a list", g->path);
		cur = child;
	}
	return 0;
}

/* The new content of one list, in g->list when it differs from the old. */
static int topology_group_compute(json_t *files, topology_group *g, const topology_node *nodes, size_t n_nodes) {
	_cleanup_free_ bool *taken = NULL;
	json_auto_t *want = json_array(), *list = json_array();
	json_t *old = tree_get(files, g->segments), *e;
	size_t i;

	if (!want || !list)
		return -ENOMEM;

	for (size_t k = 0; k < n_nodes; k++) {
		_cleanup_free_ char *id = strndup(nodes[k].id, nodes[k].id_len);
		const char *addr = json_string_value(json_object_get(nodes[k].record, "address"));
		size_t first = json_array_size(want);
		if (!id)
			return -ENOMEM;
		for (size_t r = 0; r < g->n_rules; r++) {
			if (!topology_record_runs(nodes[k].record, g->rules[r]->service))
				continue;
			json_auto_t *entry = topology_entry(g->rules[r], id, addr);
			if (!entry)
				return -ENOMEM;
			bool dup = false;
			for (size_t j = first; j < json_array_size(want) && !dup; j++)
				dup = tree_equal(json_array_get(want, j), entry);
			if (!dup && json_array_append(want, entry) < 0)
				return -ENOMEM;
		}
	}

	taken = calloc(json_array_size(want) + 1, sizeof *taken);
	if (!taken)
		return -ENOMEM;

	json_array_foreach(old, i, e) {
		for (size_t j = 0; j < json_array_size(want); j++)
			if (!taken[j] && tree_equal(json_array_get(want, j), e)) {
				taken[j] = true;
				if (json_array_append(list, e) < 0)
					return -ENOMEM;
				break;
			}
	}
	for (size_t j = 0; j < json_array_size(want); j++)
		if (!taken[j] && json_array_append(list, json_array_get(want, j)) < 0)
			return -ENOMEM;

	if (old && tree_equal(old, list))
		return 0;
	g->list = TAKE_PTR(list);
	return 0;
}

int topology_apply(json_t *files, const conf_topology *rules, size_t n_rules, json_t *nodes, tree_error *err) {
	_cleanup_free_ topology_node *sorted = NULL;
	topology_group *groups = NULL;
	size_t n_groups = 0, n_sorted = 0;
	int r;

	if (err)
		*err = (tree_error) {};
	if (!json_is_object(files))
		return topology_fail(err, NULL, "the config is not an object");
	if (!json_is_object(nodes))
		return topology_fail(err, NULL, "the node records are not an object");
	if (n_rules > 0 && !rules)
		return topology_fail(err, NULL, "no rules given");

	groups = calloc(n_rules + 1, sizeof *groups);
	if (!groups)
		return -ENOMEM;

	/* Every rule parsed and grouped before anything is looked at. */
	for (size_t i = 0; i < n_rules; i++) {
		json_auto_t *segs = NULL;
		tree_error perr;

		if (!rules[i].service || !rules[i].path || !rules[i].value) {
			r = topology_fail(err, rules[i].path, "topology rule %zu is incomplete", i);
			goto out;
		}
		r = tree_path_parse(rules[i].path, &segs, &perr);
		if (r < 0) {
			if (r != -ENOMEM)
				r = topology_fail(err, rules[i].path, "%s", perr.message);
			goto out;
		}

		topology_group *g = NULL;
		for (size_t k = 0; k < n_groups && !g; k++)
			if (tree_equal(groups[k].segments, segs))
				g = &groups[k];
		if (!g) {
			g = &groups[n_groups++];
			g->path = rules[i].path;
			g->segments = TAKE_PTR(segs);
		}
		const conf_topology **more = reallocarray(g->rules, g->n_rules + 1, sizeof *more);
		if (!more) {
			r = -ENOMEM;
			goto out;
		}
		g->rules = more;
		g->rules[g->n_rules++] = &rules[i];
	}

	/* A list inside another list's place could never be both. */
	for (size_t a = 0; a < n_groups; a++)
		for (size_t b = 0; b < n_groups; b++)
			if (topology_segments_prefix(groups[a].segments, groups[b].segments)) {
				r = topology_fail(err, groups[b].path, "topology path \"%s\" lies inside the list \"%s\"",
						  groups[b].path, groups[a].path);
				goto out;
			}

	for (size_t k = 0; k < n_groups; k++) {
		r = topology_check_place(files, &groups[k], err);
		if (r < 0)
			goto out;
	}

	r = topology_nodes_sorted(nodes, &sorted, &n_sorted);
	if (r < 0)
		goto out;
	for (size_t k = 0; k < n_groups; k++) {
		r = topology_group_compute(files, &groups[k], sorted, n_sorted);
		if (r < 0)
			goto out;
	}

	/* Only now is files changed; the checks above make tree_set's
	 * -ENOTDIR impossible, leaving out-of-memory as the one failure. */
	r = 0;
	for (size_t k = 0; k < n_groups; k++) {
		if (!groups[k].list)
			continue;
		int q = tree_set(files, groups[k].segments, groups[k].list, err);
		if (q < 0) {
			r = q;
			goto out;
		}
		if (q > 0)
			r = 1;
	}

out:
	topology_groups_free(groups, n_groups);
	return r;
}
