/* load.c — a config document's JSON text, read as CMS reads it (tree.h).
 *
 * The document is always what jansson parses: Python's json.load keeps the
 * last of repeated object keys, and so does jansson without
 * JSON_REJECT_DUPLICATES. jansson cannot say which keys repeat, though (the
 * flag stops at the first, without naming it), so when it reports one,
 * libyaml's event parser, which reads such JSON as a YAML flow document,
 * walks the text once more to list them with their lines. Its view is
 * trusted only when the document it builds from the events, the last key
 * winning, equals jansson's; otherwise (JSON libyaml cannot read: an
 * escaped surrogate pair, a key longer than 1024 characters, a key and its
 * ':' on different lines, ...) the one place jansson reported stands for
 * all of them. Nothing here parses JSON by hand. */
#include <yaml.h>

#include "esc.h"
#include "macro.h"
#include "tree-internal.h"
#include "tree.h"

#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

void tree_dups_done(tree_dups *d) {
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].key);
	free(d->v);
	*d = (tree_dups) { 0 };
}

static void tree_dups_donep(tree_dups *d) {
	tree_dups_done(d);
}

static void yaml_parser_deletep(yaml_parser_t *p) {
	yaml_parser_delete(p);
}

static int dups_push(tree_dups *d, const char *key, size_t key_len, unsigned line, unsigned column) {
	tree_dup *v = reallocarray(d->v, d->n + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	d->v = v;
	char *k = NULL;
	if (key) {
		k = malloc(key_len + 1);
		if (!k)
			return -ENOMEM;
		memcpy(k, key, key_len);
		k[key_len] = '\0';
	}
	d->v[d->n++] = (tree_dup) { .key = k, .key_len = key_len, .line = line, .column = column,
				    .last_line = line, .count = 2 };
	return 0;
}

/* One open object or array while the events are walked. */
typedef struct frame {
	json_t *node;
	json_t *seen;                   /* objects: key -> its dups index, or null */
	char *key;                      /* objects: the key waiting for its value */
	size_t key_len;
} frame;

typedef struct walk {
	frame *v;
	size_t n, cap;
	json_t *root;
	tree_dups dups;
} walk;

static void walk_done(walk *w) {
	for (size_t i = 0; i < w->n; i++) {
		json_decref(w->v[i].node);
		json_decref(w->v[i].seen);
		free(w->v[i].key);
	}
	free(w->v);
	json_decref(w->root);
	tree_dups_done(&w->dups);
}

/* Hands value (stolen) to the open container, or makes it the root. */
static int walk_attach(walk *w, json_t *value) {
	if (w->n == 0) {
		if (w->root) {
			json_decref(value);
			return -EBADMSG;
		}
		w->root = value;
		return 0;
	}
	frame *top = &w->v[w->n - 1];
	if (json_is_array(top->node))
		return json_array_append_new(top->node, value) < 0 ? -ENOMEM : 0;
	if (!top->key) {
		json_decref(value);
		return -EBADMSG;
	}
	int r = json_object_setn_new_nocheck(top->node, top->key, top->key_len, value) < 0 ? -ENOMEM : 0;
	free(top->key);
	top->key = NULL;
	return r;
}

static int walk_push(walk *w, json_t *node, bool object) {
	if (!node)
		return -ENOMEM;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		frame *v = reallocarray(w->v, cap, sizeof *v);
		if (!v) {
			json_decref(node);
			return -ENOMEM;
		}
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = (frame) { .node = node, .seen = object ? json_object() : NULL };
	return object && !w->v[w->n - 1].seen ? -ENOMEM : 0;
}

static int walk_pop(walk *w) {
	if (w->n == 0)
		return -EBADMSG;
	frame f = w->v[--w->n];
	json_decref(f.seen);
	if (f.key) {
		free(f.key);
		json_decref(f.node);
		return -EBADMSG;
	}
	return walk_attach(w, f.node);
}

/* A key of the open object: counts its repetitions. */
static int walk_key(walk *w, const yaml_event_t *e) {
	frame *top = &w->v[w->n - 1];
	const char *key = (const char *) e->data.scalar.value;
	size_t len = e->data.scalar.length;
	unsigned line = (unsigned) e->start_mark.line + 1;

	if (e->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE)
		return -EBADMSG;
	json_t *seen = json_object_getn(top->seen, key, len);
	if (!seen) {
		if (json_object_setn_new_nocheck(top->seen, key, len, json_null()) < 0)
			return -ENOMEM;
	} else if (json_is_null(seen)) {
		int r = dups_push(&w->dups, key, len, line, (unsigned) e->start_mark.column + 1);
		if (r < 0)
			return r;
		if (json_object_setn_new_nocheck(top->seen, key, len, json_integer((json_int_t) w->dups.n - 1)) < 0)
			return -ENOMEM;
	} else {
		tree_dup *d = &w->dups.v[json_integer_value(seen)];
		d->count++;
		d->last_line = line;
	}
	top->key = malloc(len + 1);
	if (!top->key)
		return -ENOMEM;
	memcpy(top->key, key, len);
	top->key[len] = '\0';
	top->key_len = len;
	return 0;
}

/* A value: a quoted scalar is a string; a plain one is what jansson reads
 * it as (a number, true, false, null), and anything else is not JSON. */
static int walk_scalar(walk *w, const yaml_event_t *e) {
	const char *s = (const char *) e->data.scalar.value;
	size_t len = e->data.scalar.length;
	json_t *v;

	if (w->n > 0 && json_is_object(w->v[w->n - 1].node) && !w->v[w->n - 1].key)
		return walk_key(w, e);
	if (e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
		v = json_stringn_nocheck(s, len);
	else if (e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		v = json_loadb(s, len, JSON_DECODE_ANY, NULL);
	else
		return -EBADMSG;
	if (!v || json_is_string(v) != (e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
		json_decref(v);
		return -EBADMSG;
	}
	return walk_attach(w, v);
}

/* The repeated keys of text as libyaml sees them. -EBADMSG when libyaml
 * cannot read the text as the document jansson read (doc). */
static int find_dups(const char *text, size_t len, json_t *doc, tree_dups *out) {
	_cleanup_(yaml_parser_deletep) yaml_parser_t parser;
	walk w = { 0 };
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	for (bool end = false; !end && r == 0;) {
		yaml_event_t e;

		if (!yaml_parser_parse(&parser, &e)) {
			r = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
		switch (e.type) {
		case YAML_STREAM_END_EVENT:
			end = true;
			break;
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_MAPPING_START_EVENT:
			r = walk_push(&w, json_object(), true);
			break;
		case YAML_SEQUENCE_START_EVENT:
			r = walk_push(&w, json_array(), false);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			r = walk_pop(&w);
			break;
		case YAML_SCALAR_EVENT:
			r = walk_scalar(&w, &e);
			break;
		default:                /* aliases: not JSON */
			r = -EBADMSG;
			break;
		}
		yaml_event_delete(&e);
	}
	if (r == 0 && (w.n > 0 || !tree_equal(w.root, doc)))
		r = -EBADMSG;
	if (r == 0) {
		*out = w.dups;
		w.dups = (tree_dups) { 0 };
	}
	walk_done(&w);
	return r;
}

int tree_load(const char *text, size_t len, json_t **out, tree_dups *dups, json_error_t *jerr) {
	_cleanup_(tree_dups_donep) tree_dups d = { 0 };
	json_error_t first;

	*out = NULL;
	*dups = (tree_dups) { 0 };
	json_t *v = json_loadb(text, len, LOAD_FLAGS | JSON_REJECT_DUPLICATES, jerr);
	if (v) {
		*out = v;
		return 0;
	}
	if (json_error_code(jerr) == json_error_out_of_memory)
		return -ENOMEM;
	if (json_error_code(jerr) != json_error_duplicate_key)
		return -EINVAL;

	first = *jerr;
	json_auto_t *doc = json_loadb(text, len, LOAD_FLAGS, jerr);
	if (!doc)
		return json_error_code(jerr) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
	int r = find_dups(text, len, doc, &d);
	if (r == -ENOMEM)
		return r;
	/* jansson's first repetition must be libyaml's first, too */
	if (r < 0 || d.n == 0 || d.v[0].line != (unsigned) first.line) {
		tree_dups_done(&d);
		r = dups_push(&d, NULL, 0, first.line > 0 ? (unsigned) first.line : 0,
			      first.column > 0 ? (unsigned) first.column : 0);
		if (r < 0)
			return r;
		d.v[0].count = 0;
	}
	*jerr = first;
	*out = TAKE_PTR(doc);
	*dups = d;
	d = (tree_dups) { 0 };
	return 0;
}

/* ---- CLI values ------------------------------------------------------------- */

int tree_value_parse(const char *text, bool as_string, json_t **out, tree_dups *dups, tree_error *err) {
	json_error_t jerr;
	int r;

	tree_error_clear(err);
	*out = NULL;
	*dups = (tree_dups) { 0 };
	if (!text)
		return -EINVAL;
	if (!as_string) {
		r = tree_load(text, strlen(text), out, dups, &jerr);
		if (r != -EINVAL)
			return r;
		/* what looks like JSON must be JSON: a typo is not a string */
		char first = text[strspn(text, " \t\r\n")];
		if (first && strchr("{[\"", first))
			return tree_error_set(err, "", "not JSON: %s (column %d)", ESC_JERR(&jerr), jerr.column);
	}
	r = tree_string_new(text, strlen(text), out);
	if (r == -EINVAL) {
		tree_error_set(err, "", "%s", "the value is not UTF-8");
		return -EILSEQ;
	}
	return r;
}
