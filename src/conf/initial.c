/* initial.c — what this node brings to the cluster config: `topology`
 * rules (its entries in lists of the config, docs/operating.md) and
 * `initial` / `initial_file`, the values its cloud-init user data proposes
 * while the cluster has no config yet. Both are free-form YAML, so the
 * YAML -> JSON conversion they share lives here too. */
#include <math.h>
#include <regex.h>
#include <stddef.h>

#include "conf-internal.h"
#include "esc.h"
#include "tree.h"

/* ---- YAML -> JSON ----------------------------------------------------------
 *
 * `initial` and topology `value` are free-form: any YAML, converted to JSON
 * by the YAML 1.2 core schema. Plain scalars are typed by the schema's own
 * regular expressions (null, bool, int, float, else string); quoted and
 * block scalars are always strings. libyaml's loader gives every untagged
 * scalar the str tag, so a tag cannot be told from no tag: tags are not
 * interpreted, quoting is how a string is forced. "<<" is an ordinary key
 * (merge keys are YAML 1.1, not core schema).
 *
 * Aliases resolve to a copy of the anchored value, as for every other key in
 * this file. An alias inside its own anchor is a cycle and refused; so is a
 * value nested deeper than CONF_JSON_MAX_DEPTH or expanding to more than
 * CONF_JSON_MAX_NODES values ("billion laughs": a few lines of nested
 * aliases can name more values than memory holds). */

#define CONF_JSON_MAX_DEPTH 64
#define CONF_JSON_MAX_NODES 100000

typedef struct conf_json {
	conf_walk *w;
	const char *name;
	regex_t re_null, re_bool, re_int, re_oct, re_hex, re_float, re_inf, re_nan;
	bool compiled;
	size_t nodes;
	int stack[CONF_JSON_MAX_DEPTH];     /* node ids on the way down */
	size_t depth;
} conf_json;

static void conf_json_done(conf_json *j) {
	if (!j->compiled)
		return;
	regfree(&j->re_null);
	regfree(&j->re_bool);
	regfree(&j->re_int);
	regfree(&j->re_oct);
	regfree(&j->re_hex);
	regfree(&j->re_float);
	regfree(&j->re_inf);
	regfree(&j->re_nan);
	j->compiled = false;
}

/* The core schema's tag resolution table (YAML 1.2.2, 10.3.2), verbatim. */
static int conf_json_init(conf_json *j, conf_walk *w, const char *name) {
	static const struct {
		size_t offset;
		const char *re;
	} table[] = {
		{ offsetof(conf_json, re_null), "^(null|Null|NULL|~)?$" },
		{ offsetof(conf_json, re_bool), "^(true|True|TRUE|false|False|FALSE)$" },
		{ offsetof(conf_json, re_int), "^[-+]?[0-9]+$" },
		{ offsetof(conf_json, re_oct), "^0o[0-7]+$" },
		{ offsetof(conf_json, re_hex), "^0x[0-9a-fA-F]+$" },
		{ offsetof(conf_json, re_float), "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$" },
		{ offsetof(conf_json, re_inf), "^[-+]?(\\.inf|\\.Inf|\\.INF)$" },
		{ offsetof(conf_json, re_nan), "^(\\.nan|\\.NaN|\\.NAN)$" },
	};
	size_t i;

	*j = (conf_json) { .w = w, .name = name };
	for (i = 0; i < ELEMENTSOF(table); i++)
		if (regcomp((regex_t *) ((char *) j + table[i].offset), table[i].re, REG_EXTENDED | REG_NOSUB) != 0)
			break;
	if (i < ELEMENTSOF(table)) {
		while (i-- > 0)
			regfree((regex_t *) ((char *) j + table[i].offset));
		return -ENOMEM;
	}
	j->compiled = true;
	return 0;
}

static bool conf_json_match(const regex_t *re, const char *s) {
	return regexec(re, s, 0, NULL, 0) == 0;
}

static int conf_json_int(conf_json *j, yaml_node_t *n, const char *s, int base, json_t **ret) {
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, base);
	if (errno == ERANGE || *end)
		return conf_fail(j->w, n, "%s: integer %.40s is out of range", j->name, s);
	*ret = json_integer(v);
	return *ret ? 0 : -ENOMEM;
}

static int conf_json_scalar(conf_json *j, yaml_node_t *n, json_t **ret) {
	const char *text = (const char *) n->data.scalar.value;
	size_t len = n->data.scalar.length;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		*ret = json_stringn(text, len);
		return *ret ? 0 : -ENOMEM;
	}

	/* A plain scalar cannot hold NUL (no escapes, and the reader refuses
	 * control characters), so the text is a C string. */
	if (conf_json_match(&j->re_null, text))
		*ret = json_null();
	else if (conf_json_match(&j->re_bool, text))
		*ret = json_boolean(text[0] == 't' || text[0] == 'T');
	else if (conf_json_match(&j->re_int, text))
		return conf_json_int(j, n, text, 10, ret);
	else if (conf_json_match(&j->re_oct, text))
		return conf_json_int(j, n, text + 2, 8, ret);
	else if (conf_json_match(&j->re_hex, text))
		return conf_json_int(j, n, text + 2, 16, ret);
	else if (conf_json_match(&j->re_inf, text) || conf_json_match(&j->re_nan, text))
		return conf_fail(j->w, n, "%s: %.16s has no JSON equivalent", j->name, text);
	else if (conf_json_match(&j->re_float, text)) {
		char *end;
		errno = 0;
		double d = strtod(text, &end);
		/* Underflow to 0 or a denormal is a fine reading of the text;
		 * overflow to infinity is not representable. */
		if (*end || isinf(d))
			return conf_fail(j->w, n, "%s: number %.40s is out of range", j->name, text);
		*ret = json_real(d);
	} else
		*ret = json_stringn(text, len);
	return *ret ? 0 : -ENOMEM;
}

static int conf_json_node(conf_json *j, int id, json_t **ret);

static int conf_json_sequence(conf_json *j, yaml_node_t *n, json_t **ret) {
	json_auto_t *a = json_array();
	if (!a)
		return -ENOMEM;

	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		json_t *v = NULL;
		int r = conf_json_node(j, *i, &v);
		if (r < 0)
			return r;
		if (json_array_append_new(a, v) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

static int conf_json_mapping(conf_json *j, yaml_node_t *n, json_t **ret) {
	json_auto_t *o = json_object();
	char quoted[80];

	if (!o)
		return -ENOMEM;

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(j->w->doc, p->key);
		json_t *v = NULL;

		if (!key)
			return conf_fail(j->w, n, "%s: invalid mapping", j->name);
		/* JSON keys are strings: a scalar key is taken as its text
		 * ("1: x" is {"1": "x"}); a sequence or mapping has none. */
		if (key->type != YAML_SCALAR_NODE)
			return conf_fail(j->w, key, "%s: keys must be strings", j->name);
		if (memchr(key->data.scalar.value, 0, key->data.scalar.length))
			return conf_fail(j->w, key, "%s: keys must not contain a NUL byte", j->name);
		/* jansson keeps the last of two equal keys; YAML forbids them
		 * and the first one would be lost without a word. */
		if (json_object_getn(o, (const char *) key->data.scalar.value, key->data.scalar.length))
			return conf_fail(j->w, key, "%s: duplicate key \"%s\"", j->name,
					 conf_quote(key, quoted, sizeof quoted));

		int r = conf_json_node(j, p->value, &v);
		if (r < 0)
			return r;
		if (json_object_setn_new(o, (const char *) key->data.scalar.value, key->data.scalar.length, v) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int conf_json_node(conf_json *j, int id, json_t **ret) {
	yaml_node_t *n = yaml_document_get_node(j->w->doc, id);
	int r;

	if (!n)
		return conf_fail(j->w, NULL, "%s: invalid YAML node", j->name);
	if (++j->nodes > CONF_JSON_MAX_NODES)
		return conf_fail(j->w, n, "%s: more than %d values (aliases expanding too far?)", j->name,
				 CONF_JSON_MAX_NODES);
	if (n->type == YAML_SCALAR_NODE)
		return conf_json_scalar(j, n, ret);

	for (size_t i = 0; i < j->depth; i++)
		if (j->stack[i] == id)
			return conf_fail(j->w, n, "%s: an alias refers to a value containing it", j->name);
	if (j->depth >= CONF_JSON_MAX_DEPTH)
		return conf_fail(j->w, n, "%s: nested deeper than %d levels", j->name, CONF_JSON_MAX_DEPTH);

	j->stack[j->depth++] = id;
	if (n->type == YAML_SEQUENCE_NODE)
		r = conf_json_sequence(j, n, ret);
	else if (n->type == YAML_MAPPING_NODE)
		r = conf_json_mapping(j, n, ret);
	else
		r = conf_fail(j->w, n, "%s: invalid YAML node", j->name);
	j->depth--;
	return r;
}

/* The value of `node` as JSON. New reference in *ret. */
static int conf_yaml_to_json(conf_walk *w, const char *name, yaml_node_t *node, json_t **ret) {
	conf_json j;
	json_t *v = NULL;

	int r = conf_json_init(&j, w, name);
	if (r < 0)
		return r;
	r = conf_json_node(&j, (int) (node - w->doc->nodes.start) + 1, &v);
	conf_json_done(&j);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

/* Escaped leaf path ("cms/core_services/Worker"). Its first segment names a
 * file, which need not be among this node's files: a node contributes to
 * lists in files it does not render itself. */
static int parse_tree_path(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			   void *field) {
	_cleanup_free_ char *s = NULL;
	json_auto_t *segments = NULL;
	char **p = field;
	tree_error terr;

	int r = conf_scalar_dup(w, name, "a path", value, &s);
	if (r < 0)
		return r;
	r = tree_path_parse(s, &segments, &terr);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: %s", name, terr.message);
	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

static int parse_json(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	json_t **p = field, *v = NULL;

	int r = conf_yaml_to_json(w, name, value, &v);
	if (r < 0)
		return r;
	json_decref(*p);
	*p = v;
	return 0;
}

static const conf_key conf_topology_keys[] = {
	{ "service", conf_parse_string,    offsetof(conf_topology, service) },
	{ "path",    parse_tree_path, offsetof(conf_topology, path) },
	{ "value",   parse_json,      offsetof(conf_topology, value) },
	{}
};

static void conf_topology_done(conf_topology *t) {
	free(t->service);
	free(t->path);
	json_decref(t->value);
}

static int parse_topology(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			  void *field) {
	conf *c = field;

	if (value->type != YAML_SEQUENCE_NODE)
		return conf_fail(w, value, "%s: expected a sequence of rules", name);

	for (yaml_node_item_t *i = value->data.sequence.items.start; i < value->data.sequence.items.top; i++) {
		_cleanup_(conf_topology_done) conf_topology t = {};
		yaml_node_t *item = yaml_document_get_node(w->doc, *i);
		char section[48];

		snprintf(section, sizeof section, "%s[%td]", name, i - value->data.sequence.items.start);
		if (!item || conf_node_is_null(item) || item->type != YAML_MAPPING_NODE)
			return conf_fail(w, item ?: value, "%s: expected a mapping with service, path and value",
					 section);
		int r = conf_walk_mapping(w, (const conf_key *const[]) { conf_topology_keys, NULL }, section, item, &t);
		if (r < 0)
			return r;
		if (!t.service || !t.path || !t.value)
			return conf_fail(w, item, "%s: %s is required", section,
					 !t.service ? "service" : !t.path ? "path" : "value");

		conf_topology *grown = reallocarray(c->topology, c->n_topology + 1, sizeof *c->topology);
		if (!grown)
			return -ENOMEM;
		c->topology = grown;
		c->topology[c->n_topology++] = t;
		t = (conf_topology) {};
	}
	return 0;
}

/* `initial` and `initial_file` fill the same field; whichever comes second
 * finds it set. */
static int conf_check_initial_unset(conf_walk *w, const yaml_node_t *key, json_t *const *p) {
	if (*p)
		return conf_fail(w, key, "initial and initial_file are mutually exclusive");
	return 0;
}

static int parse_initial(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	json_t **p = field, *v = NULL;

	int r = conf_check_initial_unset(w, key, p);
	if (r < 0)
		return r;
	if (value->type != YAML_MAPPING_NODE)
		return conf_fail(w, value, "%s: expected a mapping of file names to values", name);
	r = conf_yaml_to_json(w, name, value, &v);
	if (r < 0)
		return r;
	*p = v;
	return 0;
}

/* The JSON file's own place goes into the error (file, line, column are the
 * JSON's), and the message says which key named it. The file is read as
 * CMS reads its config (tree_load()): a repeated key keeps its last value,
 * with a warning. */
static int parse_initial_file(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key,
			      yaml_node_t *value, void *field) {
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_t **p = field;
	json_error_t jerr;
	tree_dups dups = {};
	size_t size;

	int r = conf_check_initial_unset(w, key, p);
	if (r < 0)
		return r;
	r = conf_scalar_dup(w, name, "a path", value, &path);
	if (r < 0)
		return r;
	r = conf_read_file(path, false, &text, &size);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return conf_fail(w, value, "%s: cannot read \"%.128s\": %s", name, ESC(path), strerror(-r));

	json_auto_t *v = NULL;
	r = tree_load(text, size, &v, &dups, &jerr);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		unsigned yl = (unsigned) value->start_mark.line + 1, yc = (unsigned) value->start_mark.column + 1;
		snprintf(w->err->message, sizeof w->err->message, "%s (%s at %.64s:%u:%u)", ESC_JERR(&jerr), name,
			 w->err->file, yl, yc);
		snprintf(w->err->file, sizeof w->err->file, "%s", path);
		w->err->line = jerr.line > 0 ? (unsigned) jerr.line : 0;
		w->err->column = jerr.line > 0 ? (unsigned) (jerr.column > 0 ? jerr.column : 1) : 0;
		return -EINVAL;
	}
	for (size_t i = 0; r == 0 && i < dups.n; i++)
		r = conf_warn(w, "%s:%u:%u: duplicate key \"%s\" (%s: the value kept is the last one, as in CMS)",
			      ESC(path), dups.v[i].line, dups.v[i].column,
			      dups.v[i].key ? ESCN(dups.v[i].key, dups.v[i].key_len) : "?", name);
	tree_dups_done(&dups);
	if (r < 0)
		return r;
	if (!json_is_object(v))
		return conf_fail(w, value, "%s: \"%.128s\" does not hold a JSON object of file names to values", name,
				 ESC(path));
	*p = TAKE_PTR(v);
	return 0;
}

static const conf_key conf_initial_keys[] = {
	{ "topology",     parse_topology,     0, .section = conf_topology_keys },
	{ "initial",      parse_initial,      offsetof(conf, initial) },
	{ "initial_file", parse_initial_file, offsetof(conf, initial) },
	{}
};

static void conf_initial_done(conf *c) {
	for (size_t i = 0; i < c->n_topology; i++)
		conf_topology_done(&c->topology[i]);
	free(c->topology);
	json_decref(c->initial);
}

const conf_part conf_part_initial = {
	.keys = conf_initial_keys,
	.done = conf_initial_done,
};
