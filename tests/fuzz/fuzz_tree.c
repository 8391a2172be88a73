/* fuzz_tree.c — what operators type and import: a tree path (as in
 * `corralctl config set PATH`) and a config document (as in `config
 * import`). Beyond not crashing, the promises of tree.h are checked: a
 * parsed path's segments escape and unescape to themselves, and a document
 * flattened to leaves and read back is the same document, and renders as
 * JSON and as TOML (or as a TOML error with a message). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "tree.h"

static void check_path(const char *text) {
	json_t *segs = NULL;
	tree_error err;

	memset(&err, 0, sizeof err);
	if (tree_path_parse(text, &segs, &err) < 0) {
		FUZZ_ASSERT(!segs);
		return;
	}
	for (size_t i = 0; i < json_array_size(segs); i++) {
		json_t *s = json_array_get(segs, i);
		char *esc = tree_segment_escape(json_string_value(s), json_string_length(s));
		char *back = NULL;
		size_t back_len = 0;

		FUZZ_ASSERT(esc);
		FUZZ_ASSERT(tree_segment_unescape(esc, strlen(esc), &back, &back_len) == 0);
		FUZZ_ASSERT(back_len == json_string_length(s) && memcmp(back, json_string_value(s), back_len) == 0);
		free(back);
		free(esc);
	}
	json_decref(segs);
}

/* As `config import` reads a file (tree_load: what jansson parses, and
 * the repeated keys libyaml finds), then as `config set` reads a value. */
static void check_document(const uint8_t *data, size_t size) {
	json_t *doc = NULL, *files = NULL, *back = NULL, *value = NULL;
	tree_dups dups = { 0 };
	tree_leaves leaves = { 0 };
	tree_error err;
	json_error_t jerr;

	int rc = tree_load((const char *) data, size, &doc, &dups, &jerr);
	FUZZ_ASSERT(rc == 0 ? doc != NULL : (rc == -EINVAL && !doc));
	for (size_t i = 0; i < dups.n; i++)
		FUZZ_ASSERT(dups.v[i].line > 0);
	tree_dups_done(&dups);

	/* config set takes the text as a C string */
	if (!memchr(data, '\0', size)) {
		/* not strndup: data has no NUL after it */
		char *text = malloc(size + 1);
		FUZZ_ASSERT(text);
		memcpy(text, data, size);
		text[size] = '\0';
		memset(&err, 0, sizeof err);
		rc = tree_value_parse(text, false, &value, &dups, &err);
		FUZZ_ASSERT(rc == 0 ? value != NULL : (rc < 0 && err.message[0]));
		json_decref(value);
		tree_dups_done(&dups);
		free(text);
	}
	if (!doc)
		return;
	/* An import puts the document at one file name. */
	files = json_object();
	FUZZ_ASSERT(files && json_object_set(files, "f", doc) == 0);
	if (tree_flatten(files, &leaves) == 0) {
		memset(&err, 0, sizeof err);
		FUZZ_ASSERT(tree_unflatten(leaves.v, leaves.n, &back, &err) == 0);
		FUZZ_ASSERT(tree_equal(files, back));
		char *text = tree_format_json(doc);
		FUZZ_ASSERT(text);
		free(text);
		/* TOML takes objects without null in arrays; anything else is
		 * an error with a message, never a crash. */
		text = NULL;
		rc = tree_format_toml("f", doc, &text, &err);
		FUZZ_ASSERT(rc == 0 ? text != NULL : (rc == -EINVAL && !text && err.message[0]));
		free(text);
	}
	tree_leaves_done(&leaves);
	json_decref(back);
	json_decref(files);
	json_decref(doc);
}

int fuzz_tree(const uint8_t *data, size_t size) {
	char *text = malloc(size + 1);

	FUZZ_ASSERT(text);
	memcpy(text, data, size);
	text[size] = '\0';
	check_path(text);
	free(text);
	check_document(data, size);
	return 0;
}

FUZZ_ENTRY(tree)
