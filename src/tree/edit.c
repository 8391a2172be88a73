/* edit.c — reading and editing one value of a config document by its
 * path's segments (tree_get, tree_set, tree_delete), as corralctl's
 * config commands and agree's scoped changes do (see tree.h). */
#include <stdbool.h>

#include "esc.h"
#include "macro.h"
#include "tree-internal.h"
#include "tree.h"

/* segments[0..n) escaped and joined, for messages. */
static char *segments_join(json_t *segments, size_t n) {
	size_t len = 0;
	_cleanup_free_ char *out = strdup("");

	for (size_t i = 0; out && i < n; i++) {
		json_t *s = json_array_get(segments, i);
		_cleanup_free_ char *e = tree_segment_escape(json_string_value(s), json_string_length(s));
		if (!e)
			return NULL;
		size_t elen = strlen(e);
		char *grown = realloc(out, len + (i > 0) + elen + 1);
		if (!grown)
			return NULL;
		out = grown;
		if (i > 0)
			out[len++] = '/';
		memcpy(out + len, e, elen + 1);
		len += elen;
	}
	return TAKE_PTR(out);
}

bool tree_path_within(const char *path, const char *top) {
	size_t n = strlen(top);

	return n == 0 || (strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/'));
}

static bool segments_valid(json_t *segments) {
	size_t i;
	json_t *s;

	if (!json_is_array(segments))
		return false;
	json_array_foreach(segments, i, s)
		if (!json_is_string(s))
			return false;
	return true;
}

json_t *tree_get(json_t *files, json_t *segments) {
	size_t i;
	json_t *s, *cur = files;

	if (!segments_valid(segments))
		return NULL;
	json_array_foreach(segments, i, s) {
		if (!json_is_object(cur))
			return NULL;
		cur = json_object_getn(cur, json_string_value(s), json_string_length(s));
		if (!cur)
			return NULL;
	}
	return cur;
}

int tree_set(json_t *files, json_t *segments, json_t *value, tree_error *err) {
	tree_error_clear(err);
	if (!json_is_object(files) || !value || !segments_valid(segments) || json_array_size(segments) == 0)
		return tree_error_set(err, "", "bad arguments");

	size_t n = json_array_size(segments), i;
	json_t *cur = files;

	/* Walk the parents that exist; change nothing until all are known to
	 * be objects, so a failure leaves files as it was. */
	for (i = 0; i + 1 < n; i++) {
		json_t *s = json_array_get(segments, i);
		json_t *child = json_object_getn(cur, json_string_value(s), json_string_length(s));
		if (!child)
			break;
		if (!json_is_object(child)) {
			_cleanup_free_ char *p = segments_join(segments, i + 1);
			if (!p)
				return -ENOMEM;
			tree_error_set(err, p, "\"%s\" is %s, not an object", ESC(p), tree_type_name(child));
			return -ENOTDIR;
		}
		cur = child;
	}

	json_t *last = json_array_get(segments, n - 1);
	if (i + 1 == n) {
		json_t *old = json_object_getn(cur, json_string_value(last), json_string_length(last));
		if (old && tree_equal(old, value))
			return 0;
	}

	/* The value, wrapped in the missing parents segments[i+1 .. n-2],
	 * then attached at segments[i] in one step. */
	json_t *node = tree_copy(value);
	if (!node)
		return -ENOMEM;
	for (size_t k = n - 1; k > i; k--) {
		json_t *s = json_array_get(segments, k);
		json_t *o = json_object();
		if (!o) {
			json_decref(node);
			return -ENOMEM;
		}
		if (json_object_setn_new(o, json_string_value(s), json_string_length(s), node) < 0) {
			json_decref(o);
			return -ENOMEM;
		}
		node = o;
	}
	json_t *s = json_array_get(segments, i);
	if (json_object_setn_new(cur, json_string_value(s), json_string_length(s), node) < 0)
		return -ENOMEM;
	return 1;
}

int tree_delete(json_t *files, json_t *segments) {
	if (!json_is_object(files) || !segments_valid(segments) || json_array_size(segments) == 0)
		return -EINVAL;

	size_t n = json_array_size(segments);
	json_t *cur = files;
	for (size_t i = 0; i + 1 < n; i++) {
		json_t *s = json_array_get(segments, i);
		cur = json_object_getn(cur, json_string_value(s), json_string_length(s));
		if (!json_is_object(cur))
			return 0;
	}
	json_t *last = json_array_get(segments, n - 1);
	if (json_object_deln(cur, json_string_value(last), json_string_length(last)) < 0)
		return 0;
	return 1;
}
