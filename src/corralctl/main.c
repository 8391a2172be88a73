/* corralctl — the operator's CLI. It reads and writes desired state in etcd;
 * corrald acts on it. Exit codes: 0 ok, 1 the operation failed, 2 usage or
 * input error. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>

#include <systemd/sd-event.h>

#include "agree.h"
#include "conf.h"
#include "esc.h"
#include "ec2.h"
#include "etcd.h"
#include "leader.h"
#include "log.h"
#include "tree.h"
#include "ctl.h"


static void ctl_done(ctl_t *c) {
	c->etcd = etcd_client_free(c->etcd);
	c->event = sd_event_unref(c->event);
	strv_free(c->endpoints);
	free(c->prefix);
	free(c->proposer);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->user);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
}

static int set_str(char **dst, const char *src) {
	char *s = strdup(src);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int split_endpoints(const char *list, char ***out) {
	_cleanup_free_ char *copy = strdup(list);
	_cleanup_strv_free_ char **v = NULL;
	size_t n = 0;
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **nv = realloc(v, (n + 2) * sizeof *v);
		if (!nv)
			return -ENOMEM;
		v = nv;
		v[n] = strdup(t);
		v[n + 1] = NULL;
		if (!v[n])
			return -ENOMEM;
		if (strncmp(t, "http://", 7) != 0 && strncmp(t, "https://", 8) != 0)
			return -EINVAL;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	strv_free(*out);
	*out = TAKE_PTR(v);
	return 0;
}

/* Takes endpoints, prefix and credentials from a corrald config; options
 * given on the command line win. */
static int use_config(ctl_t *c, const char *path) {
	_cleanup_(conf_freep) conf *cf = NULL;
	conf_error err = {};
	char buf[600];
	int r;

	r = conf_load_file(path, &cf, &err);
	if (r < 0) {
		fprintf(stderr, "corralctl: %s\n", conf_error_format(&err, buf, sizeof buf));
		return r;
	}
	strv_free(c->endpoints);
	c->endpoints = TAKE_PTR(cf->etcd.endpoints);
	if ((!c->prefix && set_str(&c->prefix, cf->prefix) < 0) ||
	    (cf->etcd.ca_file && set_str(&c->ca_file, cf->etcd.ca_file) < 0) ||
	    (cf->etcd.cert_file && set_str(&c->cert_file, cf->etcd.cert_file) < 0) ||
	    (cf->etcd.key_file && set_str(&c->key_file, cf->etcd.key_file) < 0) ||
	    (cf->etcd.username && set_str(&c->user, cf->etcd.username) < 0) ||
	    (cf->etcd.password && set_str(&c->password, cf->etcd.password) < 0))
		return -ENOMEM;
	c->timeout_usec = cf->etcd.request_timeout_usec;
	c->attempt_usec = cf->etcd.attempt_timeout_usec;
	return 0;
}

static int read_password_file(ctl_t *c, const char *path) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char buf[1024];

	if (!f) {
		fprintf(stderr, "corralctl: cannot read %s: %m\n", path);
		return -errno;
	}
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	int r = set_str(&c->password, buf);
	explicit_bzero(buf, sizeof buf);
	return r;
}

static int connect_etcd(ctl_t *c) {
	etcd_options o = {
		.endpoints = c->endpoints,
		.ca_file = c->ca_file,
		.cert_file = c->cert_file,
		.key_file = c->key_file,
		.username = c->user,
		.password = c->password,
		.request_timeout_usec = c->timeout_usec,
		.attempt_timeout_usec = c->attempt_usec,
	};
	int r = sd_event_new(&c->event);
	if (r < 0)
		return r;
	return etcd_client_new(&c->etcd, c->event, &o);
}

int ctl_fail(const etcd_response *r) {
	char buf[512];
	fprintf(stderr, "corralctl: etcd: %s\n", etcd_error_format(&r->error, buf, sizeof buf));
	return 1;
}

/* ---- tables ---------------------------------------------------------------- */

#define TABLE_COLUMNS 5

/* rows: n rows of ncols cells each, row-major. */
void ctl_print_table(const char *const *header, char *const *rows, size_t n, size_t ncols) {
	_cleanup_free_ size_t *width = calloc(ncols, sizeof *width);

	if (!width)
		return;
	for (size_t j = 0; j < ncols; j++) {
		width[j] = strlen(header[j]);
		for (size_t i = 0; i < n; i++)
			if (strlen(rows[i * ncols + j]) > width[j])
				width[j] = strlen(rows[i * ncols + j]);
	}
	for (size_t i = 0; i <= n; i++) {
		const char *const *cells = i == 0 ? header : (const char *const *) rows + (i - 1) * ncols;
		for (size_t j = 0; j + 1 < ncols; j++)
			printf("%-*s  ", (int) width[j], cells[j]);
		printf("%s\n", cells[ncols - 1]);
	}
}

static void print_table(const char *const header[TABLE_COLUMNS], char *(*rows)[TABLE_COLUMNS], size_t n) {
	ctl_print_table(header, (char *const *) rows, n, TABLE_COLUMNS);
}

/* ---- nodes ---------------------------------------------------------------- */

static char *join_services(json_t *services) {
	size_t i, len = 0;
	json_t *s;
	char *out;

	json_array_foreach(services, i, s)
		len += json_string_length(s) + 1;
	out = calloc(1, len + 2);
	if (!out)
		return NULL;
	json_array_foreach(services, i, s) {
		if (!json_is_string(s))
			continue;
		if (out[0])
			strcat(out, ",");
		strcat(out, json_string_value(s));
	}
	if (!out[0])
		strcpy(out, "-");
	return out;
}

static char *field(json_t *o, const char *name) {
	json_t *v = json_object_get(o, name);
	return strdup(json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : "-");
}

static int cmd_nodes(ctl_t *c, int argc, char **argv) {
	_cleanup_free_ char *key = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};
	int r, bad = 0;

	if (argc > 1) {
		fprintf(stderr, "corralctl: nodes takes no arguments\n");
		return 2;
	}
	if (asprintf(&key, "%s/nodes/", c->prefix) < 0)
		return 1;
	etcd_range_req req = { .key = key, .prefix = true };
	r = etcd_range_all(c->etcd, &req, 500, etcd_sync_cb, &s, NULL);
	if (r < 0)
		return 1;
	if (etcd_wait(c->etcd, &s, &resp) < 0)
		return ctl_fail(resp);

	json_auto_t *all = json_array();
	char *(*rows)[TABLE_COLUMNS] = calloc(resp->n_kvs ? resp->n_kvs : 1, sizeof *rows);
	if (!all || !rows) {
		free(rows);
		return 1;
	}
	size_t klen = strlen(key);
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *id = kv->key + klen;
		json_error_t jerr;
		json_t *rec = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, &jerr);

		if (!json_is_object(rec)) {
			fprintf(stderr, "corralctl: warning: %s holds no valid node record: %s\n", ESC(kv->key),
				rec ? "not a JSON object" : ESC_JERR(&jerr));
			json_decref(rec);
			rec = json_pack("{ss}", "error", "malformed node record");
			bad++;
		}
		json_object_set_new(rec, "node_id", json_string(id));
		json_object_set_new(rec, "lease", json_sprintf("%llx", (unsigned long long) kv->lease));
		rows[i][0] = strdup(id);
		rows[i][1] = field(rec, "address");
		rows[i][2] = join_services(json_object_get(rec, "services"));
		rows[i][3] = field(rec, "version");
		rows[i][4] = field(rec, "started");
		json_array_append_new(all, rec);
	}

	if (c->format == FORMAT_JSON) {
		json_dumpf(all, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		static const char *const header[TABLE_COLUMNS] = { "NODE", "ADDRESS", "SERVICES", "VERSION", "STARTED" };
		bool ok = true;
		for (size_t i = 0; i < resp->n_kvs; i++)
			for (size_t j = 0; j < TABLE_COLUMNS; j++)
				ok = ok && rows[i][j];
		if (ok)
			print_table(header, rows, resp->n_kvs);
		if (resp->n_kvs == 0)
			printf("(no nodes registered under %s)\n", key);
	}
	for (size_t i = 0; i < resp->n_kvs; i++)
		for (size_t j = 0; j < TABLE_COLUMNS; j++)
			free(rows[i][j]);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- small helpers ------------------------------------------------------------ */


/* asprintf that leaves *out NULL on failure. */
_printf_(2, 3) static void r_asprintf(char **out, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(out, fmt, ap) < 0)
		*out = NULL;
	va_end(ap);
}

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

bool ctl_segment_valid(const char *s) {
	size_t n = strlen(s);

	if (n == 0 || n > 200 || streq(s, ".") || streq(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || (unsigned char) s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- config ----------------------------------------------------------------- */

/* Exit codes for an agree error: what the operator typed or named (a bad
 * path, an unknown id) is 2; etcd trouble, a malformed store, a lost race
 * is 1. */
static int agree_fail(const agree_error *err, bool input) {
	fprintf(stderr, "corralctl: %s\n", err->message[0] ? err->message : strerror(-err->code));
	return input ? 2 : 1;
}

/* A read or change refused because `current` names a broken snapshot
 * (missing folder, malformed leaf): the cluster's state, not the
 * operator's input (1), and the way out. */
static int broken_fail(const agree_error *err) {
	agree_fail(err, false);
	if (err->code == -ENOENT)
		fprintf(stderr, "corralctl: repair it with `corralctl config rollback ID` (a good ID from "
				"`corralctl config history`), or start again with `corralctl config import NAME FILE`\n");
	else if (err->code == -EBADMSG)
		fprintf(stderr, "corralctl: repair it with `corralctl config rollback ID` (a good ID from "
				"`corralctl config history`) or `corralctl config import NAME FILE` for the file "
				"holding the malformed leaf\n");
	return 1;
}

/* A leaf value as one line: the same text a leaf holds in etcd. */
static char *value_text(json_t *v) {
	json_auto_t *wrap = json_object();
	tree_leaves l = {};
	char *out = NULL;

	if (wrap && json_object_set(wrap, "v", v) == 0 && tree_flatten(wrap, &l) == 0 && l.n == 1 &&
	    streq(l.v[0].path, "v"))
		out = strdup(l.v[0].value);
	tree_leaves_done(&l);
	if (!out)
		out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	return out;
}

static void print_diff(json_t *diff) {
	size_t i;
	json_t *d;

	json_array_foreach(diff, i, d) {
		const char *op = json_string_value(json_object_get(d, "op"));
		const char *path = json_string_value(json_object_get(d, "path"));
		_cleanup_free_ char *o = NULL, *n = NULL;

		if (!op || !path)
			continue;
		if (json_object_get(d, "old"))
			o = value_text(json_object_get(d, "old"));
		if (json_object_get(d, "new"))
			n = value_text(json_object_get(d, "new"));
		if (streq(op, "add"))
			printf("+ %s = %s\n", ESC(path), n ? n : "?");
		else if (streq(op, "remove"))
			printf("- %s = %s\n", ESC(path), o ? o : "?");
		else
			printf("~ %s = %s -> %s\n", ESC(path), o ? o : "?", n ? n : "?");
	}
}

int ctl_print_json(json_t *v) {
	_cleanup_free_ char *text = tree_format_json(v);

	if (!text)
		return 1;
	fputs(text, stdout);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The change functions corralctl proposes with. input_error tells main
 * that an error was the operator's (exit 2), not etcd's. */
typedef struct ctl_change {
	const char *verb;
	json_t *segments;               /* set, delete, import */
	const char *path;               /* as typed, for messages */
	json_t *value;                  /* set, import */
	json_t *files;                  /* rollback: the whole document */
	const char *scope;              /* what it replaces (agree_options.scope) */
	bool scope_whole;               /* import: a whole file */
	bool input_error;
} ctl_change;

static int change_set(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t size) {
	ctl_change *ch = userdata;
	tree_error terr = {};
	int r = tree_set(files, ch->segments, ch->value, &terr);

	if (r < 0) {
		ch->input_error = r != -ENOMEM;
		snprintf(err, size, "cannot set %s: %s%s%s", ESC(ch->path), terr.path, terr.path[0] ? ": " : "",
			 terr.message[0] ? terr.message : strerror(-r));
		return r;
	}
	return 0;
}

static int change_delete(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t size) {
	ctl_change *ch = userdata;

	if (tree_delete(files, ch->segments) == 0) {
		/* Only malformed leaves there: deleting them is the change. */
		for (size_t i = 0; i < s->n_faults; i++)
			if (tree_path_within(s->leaves.v[s->faults[i].leaf].path, ch->path))
				return 0;
		ch->input_error = true;
		snprintf(err, size, "no value at %s (config %s)", ESC(ch->path), s->config_id ? s->config_id : "none");
		return -ENOENT;
	}
	return 0;
}

static int change_replace(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t size) {
	ctl_change *ch = userdata;
	const char *k;
	json_t *v;

	json_object_clear(files);
	json_object_foreach(ch->files, k, v)
		if (json_object_set(files, k, v) < 0) {
			snprintf(err, size, "out of memory");
			return -ENOMEM;
		}
	return 0;
}

static int propose(ctl_t *c, agree_change_fn fn, ctl_change *ch) {
	agree_options o = { .prefix = c->prefix, .proposer = c->proposer, .dry_run = c->dry_run,
			    .scope = ch->scope, .scope_whole = ch->scope_whole };
	_cleanup_(agree_owned_result_done) agree_owned_result r = {};

	/* a leaf too big for etcd is the operator's input, too */
	if (agree_propose_sync(c->etcd, &o, fn, ch, &r) < 0)
		return ch->input_error || r.error.code == -E2BIG ? agree_fail(&r.error, true) : broken_fail(&r.error);
	if (r.repaired)
		fprintf(stderr, "corralctl: repaired: %s; %s%s leaves that behind\n", r.repaired,
			r.committed ? "the new config " : "a commit", r.committed ? r.config_id : "");

	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_pack("{sbsbsbsOso}", "changed", r.changed, "committed", r.committed, "dry_run",
					     c->dry_run, "diff", r.diff ? r.diff : json_null(), "config_id",
					     r.config_id ? json_string(r.config_id) : json_null());
		if (!out)
			return 1;
		json_object_set_new(out, "previous_id", r.previous_id ? json_string(r.previous_id) : json_null());
		json_object_set_new(out, "repaired", r.repaired ? json_string(r.repaired) : json_null());
		if (r.committed)
			json_object_set_new(out, "revision", json_integer(r.revision));
		return ctl_print_json(out);
	}
	print_diff(r.diff);
	if (!r.changed)
		printf("no change (config %s)\n", r.config_id ? r.config_id : "none");
	else if (c->dry_run)
		printf("dry run: nothing written (config %s)\n", r.previous_id ? r.previous_id : "none");
	else
		printf("committed config %s (previous %s)\n", r.config_id, r.previous_id ? r.previous_id : "none");
	return fflush(stdout) == 0 ? 0 : 1;
}

static int parse_path(const char *path, json_t **out) {
	tree_error terr = {};

	if (tree_path_parse(path, out, &terr) < 0) {
		fprintf(stderr, "corralctl: bad path '%s': %s\n", ESC(path), terr.message);
		return 2;
	}
	return 0;
}

static int config_get(ctl_t *c, int argc, char **argv) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	json_auto_t *segs = NULL;
	agree_error err = {};
	int r;

	if (argc > 2)
		return ctl_usage_error("%s", "config get takes at most one PATH");
	if (argc == 2 && (r = parse_path(argv[1], &segs)) != 0)
		return r;
	if (agree_read_sync(c->etcd, c->prefix, false, &s, &err) < 0)
		return broken_fail(&err);
	json_t *v = segs ? tree_get(s.files, segs) : s.files;
	if (!v) {
		fprintf(stderr, "corralctl: no value at %s (config %s)\n", ESC(argv[1]), s.config_id ? s.config_id : "none");
		return 2;
	}
	return ctl_print_json(v);
}

/* Warns about the keys a document repeats, the last value winning as in
 * CMS (Python's json.load); with strict, refuses them. name: where the
 * text came from, for the messages. 0, or 2 when strict refused. */
static int report_dups(const char *name, const tree_dups *d, bool strict) {
	const char *what = strict ? "error" : "warning";

	for (size_t i = 0; i < d->n; i++) {
		const tree_dup *k = &d->v[i];
		if (k->key)
			fprintf(stderr, "corralctl: %s: %s:%u:%u: duplicate key \"%s\" (%u times in one object; %s line %u)\n",
				what, ESC(name), k->line, k->column, ESCN(k->key, k->key_len), k->count,
				strict ? "--strict refuses it; without it the value kept is on" : "the value kept is on",
				k->last_line);
		else
			fprintf(stderr, "corralctl: %s: %s:%u:%u: duplicate key (perhaps more after it; %s)\n", what,
				ESC(name), k->line, k->column,
				strict ? "--strict refuses it" : "each such key keeps its last value");
	}
	return strict && d->n > 0 ? 2 : 0;
}

static void tree_dups_donep(tree_dups *d) {
	tree_dups_done(d);
}

/* The options of a config subcommand (argv[0] is its name): only those in
 * allowed ("string", "strict"). Returns the index of the first operand, or
 * -1 after printing a usage error. */
static int config_options(int argc, char **argv, const char *allowed, bool *as_string, bool *strict) {
	enum { OPT_STRING = 0x100, OPT_STRICT };
	static const struct option options[] = {
		{ "string", no_argument, NULL, OPT_STRING },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{},
	};
	int opt;

	optind = 0;     /* GNU getopt: start over on this argv */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) >= 0) {
		if (opt == OPT_STRING && strstr(allowed, "string"))
			*as_string = true;
		else if (opt == OPT_STRICT && strstr(allowed, "strict"))
			*strict = true;
		else {
			ctl_usage_error("config %s: unknown option '%s'", argv[0], ESC(argv[optind - 1]));
			return -1;
		}
	}
	return optind;
}

static int config_set(ctl_t *c, int argc, char **argv) {
	_cleanup_(tree_dups_donep) tree_dups dups = {};
	json_auto_t *segs = NULL, *value = NULL;
	tree_error terr = {};
	bool as_string = false, strict = false;
	int r, i = config_options(argc, argv, "string", &as_string, &strict);

	if (i < 0)
		return 2;
	if (argc - i != 2)
		return ctl_usage_error("%s", "usage: config set [--string] PATH VALUE");
	if ((r = parse_path(argv[i], &segs)) != 0)
		return r;
	r = tree_value_parse(argv[i + 1], as_string, &value, &dups, &terr);
	if (r == -EILSEQ) {
		fprintf(stderr, "corralctl: %s\n", terr.message);
		return 2;
	}
	if (r == -EINVAL) {
		fprintf(stderr, "corralctl: the value for %s is %s (--string stores the text as a string)\n",
			ESC(argv[i]), terr.message);
		return 2;
	}
	if (r < 0)
		return 1;
	report_dups("VALUE", &dups, false);
	ctl_change ch = { .verb = "set", .segments = segs, .path = argv[i], .value = value, .scope = argv[i] };
	return propose(c, change_set, &ch);
}

static int config_delete(ctl_t *c, int argc, char **argv) {
	json_auto_t *segs = NULL;
	int r;

	if (argc != 2)
		return ctl_usage_error("%s", "usage: config delete PATH");
	if ((r = parse_path(argv[1], &segs)) != 0)
		return r;
	ctl_change ch = { .verb = "delete", .segments = segs, .path = argv[1], .scope = argv[1] };
	return propose(c, change_delete, &ch);
}

/* A file name is one path segment (escapes allowed: "a%2Fb"). */
static int parse_file_name(const char *name, json_t **out) {
	int r = parse_path(name, out);

	if (r != 0)
		return r;
	if (json_array_size(*out) != 1) {
		fprintf(stderr, "corralctl: bad file name '%s': one segment, no '/' (escape it as %%2F)\n", ESC(name));
		return 2;
	}
	return 0;
}

static int config_import(ctl_t *c, int argc, char **argv) {
	_cleanup_(tree_dups_donep) tree_dups dups = {};
	_cleanup_free_ char *text = NULL;
	json_auto_t *segs = NULL, *value = NULL;
	json_error_t jerr;
	bool as_string = false, strict = false;
	size_t size;
	int r, i = config_options(argc, argv, "strict", &as_string, &strict);

	if (i < 0)
		return 2;
	if (argc - i != 2)
		return ctl_usage_error("%s", "usage: config import [--strict] NAME FILE");
	if ((r = parse_file_name(argv[i], &segs)) != 0)
		return r;
	const char *file = argv[i + 1], *name = streq(file, "-") ? "<stdin>" : file;
	r = conf_read_file(streq(file, "-") ? "/dev/stdin" : file, false, &text, &size);
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot read %s: %s\n", ESC(name),
			r == -EFBIG ? "it holds 4 MiB or more" : strerror(-r));
		return r == -ENOMEM ? 1 : 2;
	}
	r = tree_load(text, size, &value, &dups, &jerr);
	if (r == -ENOMEM)
		return 1;
	if (r < 0) {
		/* jansson says line 0 / column 0 when it could not read at all */
		if (jerr.line > 0)
			fprintf(stderr, "corralctl: %s:%d:%d: %s\n", ESC(name), jerr.line, jerr.column, ESC_JERR(&jerr));
		else
			fprintf(stderr, "corralctl: %s: %s\n", ESC(name), ESC_JERR(&jerr));
		return 2;
	}
	if (report_dups(name, &dups, strict) != 0)
		return 2;
	/* A whole file: made even when current's folder is missing (the new
	 * config then holds this file only) or holds malformed leaves in this
	 * file (they are replaced); a malformed leaf in another file refuses. */
	ctl_change ch = { .verb = "import", .segments = segs, .path = argv[i], .value = value, .scope = argv[i],
			  .scope_whole = true };
	return propose(c, change_set, &ch);
}

static int config_export(ctl_t *c, int argc, char **argv) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	json_auto_t *segs = NULL;
	agree_error err = {};
	int r;

	if (argc != 2)
		return ctl_usage_error("%s", "usage: config export NAME");
	if ((r = parse_file_name(argv[1], &segs)) != 0)
		return r;
	if (agree_read_sync(c->etcd, c->prefix, false, &s, &err) < 0)
		return broken_fail(&err);
	json_t *v = tree_get(s.files, segs);
	if (!v) {
		fprintf(stderr, "corralctl: no file '%s' in config %s\n", ESC(argv[1]), s.config_id ? s.config_id : "none");
		return 2;
	}
	return ctl_print_json(v);
}

static bool in_strv(char *const *v, const char *s) {
	for (size_t i = 0; v && v[i]; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

/* The folder before current: the newest one created before current's (or,
 * when current's folder is gone, at or before current was set). */
static const char *previous_of(const agree_folders *f) {
	int64_t cur_rev = f->current_mod_revision + 1;

	if (!f->current)
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->v[i].id, f->current))
			cur_rev = f->v[i].create_revision;
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].create_revision < cur_rev && !streq(f->v[i].id, f->current))
			return f->v[i].id;
	return NULL;
}

static int config_history(ctl_t *c, int argc, char **argv) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	agree_error err = {};

	if (argc != 1)
		return ctl_usage_error("%s", "config history takes no arguments");
	if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
		return agree_fail(&err, false);

	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_array();
		for (size_t i = 0; out && i < f.n; i++)
			json_array_append_new(out, json_pack("{sssIsIsbsb}", "id", f.v[i].id, "create_revision",
							     (json_int_t) f.v[i].create_revision, "keys",
							     (json_int_t) f.v[i].n_keys, "current",
							     streq_ptr(f.v[i].id, f.current), "in_use",
							     in_strv(f.in_use, f.v[i].id)));
		return out ? ctl_print_json(out) : 1;
	}
	bool listed = !f.current;
	for (size_t i = 0; i < f.n; i++)
		listed = listed || streq(f.v[i].id, f.current);
	if (!listed)
		printf("current names config %s, which is missing (no key under %s/configs/%s/)\n", f.current,
		       c->prefix, f.current);
	if (f.n == 0) {
		printf("(no configs under %s/configs/)\n", c->prefix);
		return 0;
	}
	static const char *const header[] = { "", "ID", "REVISION", "LEAVES", "NOTE" };
	_cleanup_free_ char **rows = calloc(f.n * 5, sizeof *rows);
	if (!rows)
		return 1;
	for (size_t i = 0; i < f.n; i++) {
		bool cur = streq_ptr(f.v[i].id, f.current), used = in_strv(f.in_use, f.v[i].id);
		bool inflight = f.v[i].create_revision > f.current_mod_revision;
		rows[i * 5] = strdup(cur ? "*" : "");
		rows[i * 5 + 1] = strdup(f.v[i].id);
		if (asprintf(&rows[i * 5 + 2], "%" PRId64, f.v[i].create_revision) < 0)
			rows[i * 5 + 2] = NULL;
		if (asprintf(&rows[i * 5 + 3], "%zu", f.v[i].n_keys) < 0)
			rows[i * 5 + 3] = NULL;
		rows[i * 5 + 4] = strdup(cur ? "current" : used ? "in use by a node" : inflight ? "newer than current" : "");
	}
	bool ok = true;
	for (size_t i = 0; i < f.n * 5; i++)
		ok = ok && rows[i];
	if (ok)
		ctl_print_table(header, rows, f.n, 5);
	for (size_t i = 0; i < f.n * 5; i++)
		free(rows[i]);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}

/* Reads config id's document; unknown id -> 2. */
static int read_config(ctl_t *c, const char *id, agree_snapshot *out) {
	agree_error err = {};
	int r;

	if (!ctl_segment_valid(id)) {
		fprintf(stderr, "corralctl: '%s' is not a config id\n", ESC(id));
		return 2;
	}
	r = agree_read_config_sync(c->etcd, c->prefix, id, out, &err);
	if (r < 0)
		return agree_fail(&err, r == -ENOENT);
	return 0;
}

static int config_diff(ctl_t *c, int argc, char **argv) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	_cleanup_(agree_snapshot_done) agree_snapshot a = {}, b = {};
	agree_error err = {};
	const char *ida, *idb;
	int r;

	if (argc > 3)
		return ctl_usage_error("%s", "usage: config diff [A [B]]");
	if (argc < 3) {
		if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
			return agree_fail(&err, false);
		if (!f.current) {
			fprintf(stderr, "corralctl: no current config under %s\n", c->prefix);
			return 2;
		}
	}
	idb = argc == 3 ? argv[2] : f.current;
	ida = argc >= 2 ? argv[1] : previous_of(&f);
	if (!ida) {
		fprintf(stderr, "corralctl: config %s has no predecessor to compare with\n", f.current);
		return 2;
	}
	if ((r = read_config(c, ida, &a)) != 0 || (r = read_config(c, idb, &b)) != 0)
		return r;
	json_auto_t *diff = tree_diff(&a.leaves, &b.leaves);
	if (!diff)
		return 1;
	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_pack("{sssssO}", "from", ida, "to", idb, "diff", diff);
		return out ? ctl_print_json(out) : 1;
	}
	printf("--- %s\n+++ %s\n", ida, idb);
	print_diff(diff);
	if (json_array_size(diff) == 0)
		printf("(no difference)\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

static int config_rollback(ctl_t *c, int argc, char **argv) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	_cleanup_(agree_snapshot_done) agree_snapshot old = {};
	agree_error err = {};
	const char *id;
	int r;

	if (argc > 2)
		return ctl_usage_error("%s", "usage: config rollback [ID]");
	if (argc == 1) {
		if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
			return agree_fail(&err, false);
		id = previous_of(&f);
		if (!id) {
			fprintf(stderr, "corralctl: no config before %s to roll back to\n",
				f.current ? f.current : "(none)");
			return 2;
		}
	} else
		id = argv[1];
	if ((r = read_config(c, id, &old)) != 0)
		return r;
	/* A new proposal with the old content: `current` only ever moves
	 * forward to a new id, so nodes and history see an ordinary change. */
	ctl_change ch = { .verb = "rollback", .files = old.files, .scope = "" };
	if (c->format != FORMAT_JSON)
		printf("rolling back to the content of %s\n", id);
	return propose(c, change_replace, &ch);
}

static int cmd_config(ctl_t *c, int argc, char **argv) {
	static const struct {
		const char *name;
		int (*fn)(ctl_t *c, int argc, char **argv);
	} verbs[] = {
		{ "get", config_get },         { "set", config_set },         { "delete", config_delete },
		{ "import", config_import },   { "export", config_export },   { "history", config_history },
		{ "diff", config_diff },       { "rollback", config_rollback },
	};

	if (argc < 2)
		return ctl_usage_error("%s", "config needs a subcommand: get, set, delete, import, export, history, diff, rollback");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[1], verbs[i].name))
			return verbs[i].fn(c, argc - 1, argv + 1);
	return ctl_usage_error("unknown config subcommand '%s'", argv[1]);
}

/* ---- leader ------------------------------------------------------------------ */

typedef struct leader_view {
	bool present;
	char *node_id;
	uint64_t since;                 /* 0: unknown */
	int64_t token;                  /* the key's create_revision */
	int64_t lease;
	int64_t ttl;                    /* seconds left on its lease; -1: none */
} leader_view;

static void leader_view_done(leader_view *v) {
	free(v->node_id);
}

static void format_since(char *buf, size_t size, uint64_t t) {
	time_t tt = (time_t) t;
	struct tm tm;

	if (t == 0 || !gmtime_r(&tt, &tm))
		snprintf(buf, size, "?");
	else
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads <prefix>/leader and, with ttl, its lease's remaining TTL. */
static int read_leader(ctl_t *c, bool ttl, leader_view *out) {
	_cleanup_free_ char *key = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL, *tr = NULL;
	etcd_sync s = {}, st = {};

	if (asprintf(&key, "%s/leader", c->prefix) < 0)
		return -ENOMEM;
	if (etcd_range(c->etcd, &(etcd_range_req){ .key = key }, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (etcd_wait(c->etcd, &s, &resp) < 0) {
		ctl_fail(resp);
		return -EIO;
	}
	*out = (leader_view){ .ttl = -1 };
	if (resp->n_kvs == 0)
		return 0;
	const etcd_kv *kv = &resp->kvs[0];
	out->present = true;
	out->token = kv->create_revision;
	out->lease = kv->lease;
	if (leader_value_parse(kv->value, kv->value_len, &out->node_id, &out->since) < 0)
		return -ENOMEM;
	if (ttl && kv->lease != 0) {
		if (etcd_lease_ttl(c->etcd, kv->lease, false, etcd_sync_cb, &st, NULL) < 0)
			return -ENOMEM;
		if (etcd_wait(c->etcd, &st, &tr) < 0) {
			ctl_fail(tr);
			return -EIO;
		}
		out->ttl = tr->ttl;
	}
	return 0;
}

static int cmd_leader(ctl_t *c, int argc, char **argv) {
	_cleanup_(leader_view_done) leader_view v = {};
	char since[32];

	if (argc > 1)
		return ctl_usage_error("%s", "leader takes no arguments");
	if (read_leader(c, true, &v) < 0)
		return 1;
	format_since(since, sizeof since, v.since);
	if (c->format == FORMAT_JSON) {
		json_auto_t *out = NULL;
		if (!v.present)
			out = json_pack("{s:n}", "node_id");
		else
			out = json_pack("{s:s, s:o, s:I, s:o, s:I}", "node_id", v.node_id, "since",
					v.since ? json_string(since) : json_null(), "token", (json_int_t) v.token, "lease",
					json_sprintf("%llx", (unsigned long long) v.lease), "ttl", (json_int_t) v.ttl);
		return out ? ctl_print_json(out) : 1;
	}
	if (!v.present) {
		printf("(no leader: %s/leader is absent)\n", c->prefix);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	static const char *const header[] = { "LEADER", "SINCE", "TOKEN", "LEASE", "TTL" };
	char token[32], lease[32], ttl[32];
	snprintf(token, sizeof token, "%lld", (long long) v.token);
	snprintf(lease, sizeof lease, "%llx", (unsigned long long) v.lease);
	if (v.ttl >= 0)
		snprintf(ttl, sizeof ttl, "%llds", (long long) v.ttl);
	else
		snprintf(ttl, sizeof ttl, "-");
	char *const row[] = { v.node_id, since, token, lease, ttl };
	ctl_print_table(header, row, 1, ELEMENTSOF(header));
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- status ------------------------------------------------------------------ */

#define STATUS_COLUMNS 6

/* One line, no control bytes, at most 80 characters: error texts come from
 * nodes and may be anything. */
static char *one_line(const char *s) {
	size_t n = strlen(s) > 80 ? 80 : strlen(s);
	char *out = malloc(n + 4);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	strcpy(out + n, strlen(s) > 80 ? "..." : "");
	return out;
}

static char *units_summary(json_t *units) {
	size_t ok = 0, failed = 0;
	const char *k;
	json_t *u;
	char *out = NULL;

	if (!json_is_object(units) || json_object_size(units) == 0)
		return strdup("-");
	json_object_foreach(units, k, u) {
		if (json_is_true(json_object_get(u, "ok")))
			ok++;
		else
			failed++;
	}
	if (failed && ok)
		r_asprintf(&out, "%zu failed, %zu ok", failed, ok);
	else if (failed)
		r_asprintf(&out, "%zu failed", failed);
	else
		r_asprintf(&out, "%zu ok", ok);
	return out;
}

static char *status_error(json_t *st) {
	json_t *e = json_object_get(st, "error");

	if (json_is_string(e) && json_string_length(e) > 0)
		return one_line(json_string_value(e));
	if (json_is_false(json_object_get(st, "ok")))
		return strdup("not ok");
	return strdup("-");
}

/* Reads <prefix>/<dir>/ into {rest-of-key: value}. parse: values are
 * records, and ones that are not JSON objects become {"malformed": reason};
 * else each value is its text, as a string. */
int ctl_read_dir(ctl_t *c, const char *dir, bool parse, json_t **out) {
	_cleanup_free_ char *key = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (asprintf(&key, "%s/%s/", c->prefix, dir) < 0)
		return -ENOMEM;
	etcd_range_req req = { .key = key, .prefix = true };
	if (etcd_range_all(c->etcd, &req, 500, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (etcd_wait(c->etcd, &s, &resp) < 0) {
		ctl_fail(resp);
		return -EIO;
	}
	json_auto_t *all = json_object();
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *text = kv->value ? kv->value : "";
		json_error_t jerr;
		json_t *v;

		if (kv->key_len <= strlen(key) || memchr(kv->key, 0, kv->key_len))
			continue;
		if (!parse)
			v = json_stringn_nocheck(text, kv->value_len);
		else {
			v = json_loadb(text, kv->value_len, 0, &jerr);
			if (!json_is_object(v)) {
				json_decref(v);
				v = json_pack("{ss}", "malformed", v ? "not a JSON object" : ESC_JERR(&jerr));
			}
		}
		json_object_set_new(all, kv->key + strlen(key), v);
	}
	*out = TAKE_PTR(all);
	return 0;
}

int ctl_read_records(ctl_t *c, const char *dir, json_t **out) {
	return ctl_read_dir(c, dir, true, out);
}

static int cmd_status(ctl_t *c, int argc, char **argv) {
	json_auto_t *nodes = NULL, *status = NULL, *ids = json_object();
	_cleanup_free_ char *current = NULL, *ckey = NULL;
	_cleanup_(etcd_response_freep) etcd_response *cur = NULL;
	etcd_sync s = {};
	const char *id;
	json_t *v;

	/* the spelling, status --format json|table, as well as the global -o */
	if (argc == 3 && (streq(argv[1], "--format") || streq(argv[1], "-o"))) {
		if (streq(argv[2], "json"))
			c->format = FORMAT_JSON;
		else if (streq(argv[2], "table"))
			c->format = FORMAT_TABLE;
		else
			return ctl_usage_error("unknown format '%s' (json or table)", argv[2]);
	} else if (argc > 1)
		return ctl_usage_error("%s", "status takes no arguments but --format json|table");
	if (!ids || asprintf(&ckey, "%s/current", c->prefix) < 0)
		return 1;
	if (etcd_range(c->etcd, &(etcd_range_req){ .key = ckey }, etcd_sync_cb, &s, NULL) < 0)
		return 1;
	if (etcd_wait(c->etcd, &s, &cur) < 0)
		return ctl_fail(cur);
	if (cur->n_kvs > 0 && cur->kvs[0].value)
		current = strndup(cur->kvs[0].value, cur->kvs[0].value_len);
	if (ctl_read_records(c, "nodes", &nodes) < 0 || ctl_read_records(c, "status", &status) < 0)
		return 1;
	_cleanup_(leader_view_done) leader_view lv = {};
	char since[32];
	if (read_leader(c, false, &lv) < 0)
		return 1;
	format_since(since, sizeof since, lv.since);

	/* every node known either way, sorted by id */
	json_object_foreach(nodes, id, v)
		json_object_set_new(ids, id, json_true());
	json_object_foreach(status, id, v)
		json_object_set_new(ids, id, json_true());
	size_t n = json_object_size(ids);
	_cleanup_free_ const char **order = calloc(n ? n : 1, sizeof *order);
	size_t k = 0;
	if (!order)
		return 1;
	json_object_foreach(ids, id, v)
		order[k++] = id;
	qsort(order, n, sizeof *order, cmp_str);

	json_auto_t *scaling = NULL;
	if (ctl_scale_summary(c, &scaling) < 0)
		return 1;

	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_pack("{s:o,s:[]}", "current", current ? json_string(current) : json_null(), "nodes");
		if (!out)
			return 1;
		json_object_set_new(out, "leader",
				    lv.present ? json_pack("{s:s, s:o, s:I}", "node_id", lv.node_id, "since",
							   lv.since ? json_string(since) : json_null(), "token",
							   (json_int_t) lv.token)
					       : json_null());
		json_object_set(out, "scaling", scaling);
		for (size_t i = 0; i < n; i++) {
			json_t *nd = json_object_get(nodes, order[i]), *st = json_object_get(status, order[i]);
			json_array_append_new(json_object_get(out, "nodes"),
					      json_pack("{s:s,s:b,s:O?,s:O?}", "node_id", order[i], "live", nd != NULL,
							"node", nd, "status", st));
		}
		return ctl_print_json(out);
	}

	printf("current: %s\n", current ? current : "(none)");
	if (lv.present)
		printf("leader: %s since %s\n", lv.node_id, since);
	else
		printf("leader: (none)\n");
	ctl_scale_summary_print(scaling, stdout);
	if (n == 0) {
		printf("(no nodes under %s/nodes/ or %s/status/)\n", c->prefix, c->prefix);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	static const char *const header[STATUS_COLUMNS] = { "NODE", "LIVE", "APPLIED", "TARGET", "UNITS", "ERROR" };
	_cleanup_free_ char **rows = calloc(n * STATUS_COLUMNS, sizeof *rows);
	if (!rows)
		return 1;
	for (size_t i = 0; i < n; i++) {
		json_t *st = json_object_get(status, order[i]);
		char **row = rows + i * STATUS_COLUMNS;
		row[0] = strdup(order[i]);
		row[1] = strdup(json_object_get(nodes, order[i]) ? "yes" : "no");
		if (!st) {
			row[2] = strdup("-");
			row[3] = strdup("-");
			row[4] = strdup("-");
			row[5] = strdup("(no status record)");
		} else if (json_object_get(st, "malformed")) {
			row[2] = strdup("?");
			row[3] = strdup("?");
			row[4] = strdup("?");
			row[5] = strdup("malformed status record");
		} else {
			row[2] = field(st, "applied");
			row[3] = field(st, "target");
			row[4] = units_summary(json_object_get(st, "units"));
			row[5] = status_error(st);
		}
	}
	bool ok = true;
	for (size_t i = 0; i < n * STATUS_COLUMNS; i++)
		ok = ok && rows[i];
	if (ok)
		ctl_print_table(header, rows, n, STATUS_COLUMNS);
	for (size_t i = 0; i < n * STATUS_COLUMNS; i++)
		free(rows[i]);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------- */

/* "ctl-<hostname>-<pid>": unique among live processes, so no two
 * corralctl runs pick the same snapshot id (agree.h). */
static int set_proposer(ctl_t *c) {
	char host[256] = "";

	if (gethostname(host, sizeof host - 1) < 0 || !host[0])
		strcpy(host, "localhost");
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == '_' || (unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '-';
	host[100] = '\0';
	if (asprintf(&c->proposer, "ctl-%s-%ld", host, (long) getpid()) < 0) {
		c->proposer = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- ec2 --------------------------------------------------------------------- */

#define EC2_COLUMNS 7
#define EC2_CLUSTER_TAG "corral:cluster"

typedef struct ec2_listing {
	bool done;
	int error;
	char message[512];
	json_t *instances;              /* array of objects */
} ec2_listing;

static void on_ec2_describe(ec2_client *client, const ec2_reply *r, const ec2xml_describe_instances *res,
			    void *userdata) {
	ec2_listing *l = userdata;

	l->done = true;
	l->error = r->error;
	snprintf(l->message, sizeof l->message, "%s", r->message);
	if (r->error < 0)
		return;
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t j = 0; j < res->reservations[i].n_instances; j++) {
			const ec2_instance *in = &res->reservations[i].instances[j];
			char when[32] = "";
			struct tm tm;
			json_t *tags = json_object();

			if (in->launch_time > 0 && gmtime_r(&in->launch_time, &tm))
				strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
			for (size_t k = 0; k < in->n_tags; k++)
				json_object_set_new(tags, in->tags[k].key, json_string(in->tags[k].value));
			json_t *o = json_pack("{s:s,s:s?,s:s?,s:s,s:s?,s:s?,s:s?,s:o}", "instance_id", in->instance_id,
					      "state", in->state.name, "type", in->instance_type, "market",
					      in->lifecycle && streq(in->lifecycle, "spot") ? "spot" : "on-demand",
					      "launch_time", when[0] ? when : NULL, "private_ip", in->private_ip,
					      "availability_zone", in->availability_zone, "tags", tags);
			if (!o || json_array_append_new(l->instances, o) < 0) {
				l->error = -ENOMEM;
				snprintf(l->message, sizeof l->message, "out of memory");
				return;
			}
		}
}

static const char *json_str_or_dash(json_t *o, const char *key) {
	const char *s = json_string_value(json_object_get(o, key));
	return s && *s ? s : "-";
}

static int ec2_print_table(json_t *instances) {
	static const char *const header[EC2_COLUMNS] = { "INSTANCE", "STATE",      "TYPE", "MARKET",
							 "LAUNCHED", "PRIVATE IP", "TAGS" };
	size_t n = json_array_size(instances), i;
	_cleanup_free_ char **rows = calloc(n * EC2_COLUMNS + 1, sizeof *rows);
	json_t *o;
	int r = 0;

	if (!rows)
		return 1;
	json_array_foreach(instances, i, o) {
		const char *key;
		json_t *v;
		char *tags = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&tags, &len);

		if (!f) {
			r = 1;
			break;
		}
		json_object_foreach(json_object_get(o, "tags"), key, v)
			fprintf(f, "%s%s=%s", ftell(f) > 0 ? "," : "", key, json_string_value(v));
		fclose(f);
		rows[i * EC2_COLUMNS + 0] = strdup(json_str_or_dash(o, "instance_id"));
		rows[i * EC2_COLUMNS + 1] = strdup(json_str_or_dash(o, "state"));
		rows[i * EC2_COLUMNS + 2] = strdup(json_str_or_dash(o, "type"));
		rows[i * EC2_COLUMNS + 3] = strdup(json_str_or_dash(o, "market"));
		rows[i * EC2_COLUMNS + 4] = strdup(json_str_or_dash(o, "launch_time"));
		rows[i * EC2_COLUMNS + 5] = strdup(json_str_or_dash(o, "private_ip"));
		rows[i * EC2_COLUMNS + 6] = tags && *tags ? tags : (free(tags), strdup("-"));
		for (size_t j = 0; j < EC2_COLUMNS; j++)
			if (!rows[i * EC2_COLUMNS + j])
				r = 1;
	}
	if (r == 0)
		ctl_print_table(header, rows, n, EC2_COLUMNS);
	for (size_t j = 0; j < n * EC2_COLUMNS; j++)
		free(rows[j]);
	return r ? r : fflush(stdout) == 0 ? 0 : 1;
}

/* corralctl ec2 describe: the cluster's instances, by its corral:cluster
 * tag, through the same EC2 client corrald uses. */
static int cmd_ec2(ctl_t *c, const char *cluster, const char *region, const char *endpoint, int argc,
		   char **argv) {
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_(ec2_client_freep) ec2_client *client = NULL;
	ec2_listing l = {};
	int r;

	if (argc < 2 || !streq(argv[1], "describe"))
		return ctl_usage_error("%s", "ec2 needs a subcommand: describe");
	if (argc > 2)
		return ctl_usage_error("%s", "ec2 describe takes no arguments");
	if (!region || !*region)
		region = getenv("AWS_REGION");
	if (!region || !*region)
		region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		return ctl_usage_error("%s", "no AWS region: use --region (or $AWS_REGION, $AWS_DEFAULT_REGION)");
	if (!endpoint || !*endpoint)
		endpoint = getenv("CORRAL_EC2_ENDPOINT");

	ec2_options o = { .region = region, .endpoint = endpoint && *endpoint ? endpoint : NULL };
	r = sd_event_new(&event);
	if (r >= 0)
		r = ec2_client_new(&client, event, &o);
	if (r == -EINVAL)
		return ctl_usage_error("bad --region '%s' or --ec2-endpoint '%s'", region, endpoint ? endpoint : "");
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot set up the EC2 client: %s\n", strerror(-r));
		return 1;
	}

	const char *const values[] = { cluster };
	const ec2_filter f[] = { { "tag:" EC2_CLUSTER_TAG, values, 1 } };
	json_auto_t *instances = json_array();
	l.instances = instances;
	if (!instances)
		return 1;
	r = ec2_describe_instances(client, f, 1, 0, on_ec2_describe, &l, NULL);
	if (r < 0) {
		fprintf(stderr, "corralctl: EC2 DescribeInstances: %s\n", strerror(-r));
		return 1;
	}
	while (!l.done) {
		r = sd_event_run(event, UINT64_MAX);
		if (r < 0) {
			fprintf(stderr, "corralctl: event loop: %s\n", strerror(-r));
			return 1;
		}
	}
	if (l.error < 0) {
		fprintf(stderr, "corralctl: %s\n", l.message);
		return 1;
	}
	if (c->format == FORMAT_JSON) {
		json_dumpf(instances, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		return fflush(stdout) == 0 ? 0 : 1;
	}
	return ec2_print_table(instances);
}

static void help(void) {
	printf("Usage: corralctl [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "The corral operator's CLI.\n"
	       "\n"
	       "Commands:\n"
	       "  nodes                    list the registered nodes\n"
	       "  status [--format F]      the current config id, the leader, the scaling summary (pools,\n"
	       "                           hosts by state, maintenance, stop, holds), and per node:\n"
	       "                           registered, applied and target config, unit results, last error\n"
	       "  leader                   the elected corrald: node id, since when, fencing token, lease TTL\n"
	       "  config get [PATH]        the whole config, or the value at PATH, as JSON\n"
	       "  config set [--string] PATH VALUE\n"
	       "                           set a value (JSON; text starting with {, [ or \" must be JSON;\n"
	       "                           other text, or any with --string, is a string); parents are created\n"
	       "  config delete PATH       remove a value\n"
	       "  config import [--strict] NAME FILE\n"
	       "                           make the JSON in FILE ('-': stdin) config file NAME; a repeated key\n"
	       "                           keeps its last value, with a warning (--strict: an error)\n"
	       "  config export NAME       config file NAME as JSON, as nodes render it\n"
	       "  config history           config snapshots, newest first; * marks current\n"
	       "  config diff [A [B]]      changes from A to B (default: the previous config to current)\n"
	       "  config rollback [ID]     a new config with ID's content (default: the one before current)\n"
	       "  ec2 describe             the cluster's EC2 instances (tag corral:cluster=<cluster name>):\n"
	       "                           id, state, type, market, launch time, private IP, tags\n"
	       "\n"
	       "Scaling (docs/scale.md, section corralctl):\n"
	       "  scale policy get         the scaling policy (<prefix>/scale/policy) as JSON\n"
	       "  scale policy set FILE    replace it with FILE ('-': stdin), validated; [--revision R]:\n"
	       "                           only if it is still at mod revision R (0: absent)\n"
	       "  scale to N [--pool P]    set the pool's desired override to N (-f: widen min/max to N)\n"
	       "  scale up|down [-w S] [--pool P]\n"
	       "                           desired = the override (else ready + launching hosts) +/- 1;\n"
	       "                           -w: wait up to S seconds for the fleet to reach it\n"
	       "  scale auto [--pool P]    clear the override: the policy decides again\n"
	       "  scale queue set POOL N   the pool's queue length\n"
	       "  scale simulate --trace FILE [...]\n"
	       "                           replay a load trace against a simulated cloud, per policy\n"
	       "                           (corralctl scale simulate --help)\n"
	       "  autoscale                ask the leader to decide now; with -n: compute and print the\n"
	       "                           plan here from what etcd holds, write nothing\n"
	       "  cluster stop [-w S] [--reason TEXT]\n"
	       "                           drain every host but held ones; -w: wait up to S seconds\n"
	       "                           (with -f a time-out is not a failure)\n"
	       "  cluster start [-w S]     end a cluster stop\n"
	       "  maintenance on|off [--reason TEXT]\n"
	       "                           no scaling at all while on\n"
	       "  hold ID [--reason TEXT]  never drain or terminate instance ID; unhold ID ends it\n"
	       "  load set [--node ID] --jobs N [--capacity M] [--memory F]\n"
	       "                           publish a node's load (default node: this host's name)\n"
	       "\n"
	       "PATH is FILE/KEY/...: 'cms/core_services/Worker'. In a key, write '/' as %%2F and '%%' as %%25.\n"
	       "Every change is a new snapshot and a compare-and-set of <prefix>/current (see docs/config.md).\n"
	       "\n"
	       "Options:\n"
	       "  -e, --endpoints URL,...  etcd endpoints ($CORRAL_ENDPOINTS, default http://127.0.0.1:2379)\n"
	       "  -p, --prefix PREFIX      cluster key prefix ($CORRAL_PREFIX)\n"
	       "      --cluster NAME       cluster name: prefix /corral/NAME ($CORRAL_CLUSTER)\n"
	       "  -c, --config FILE        take endpoints, prefix and credentials from a corrald config\n"
	       "  -o, --format FORMAT      table (default) or json\n"
	       "  -n, --dry-run            show what would be written, write nothing\n"
	       "  -f, --force              scale: ignore min/max; cluster stop: go on after time-outs\n"
	       "  -v, --verbose            say which keys are written\n"
	       "  -q, --quiet              no status summary before and after changes\n"
	       "  -d, --debug              debug logging\n"
	       "      --ca-file FILE       CA bundle for https endpoints\n"
	       "      --cert-file FILE     client certificate\n"
	       "      --key-file FILE      client key\n"
	       "      --user NAME          etcd user; password from --password-file or $CORRAL_ETCD_PASSWORD\n"
	       "      --password-file FILE\n"
	       "      --timeout DURATION   per request (default 10s)\n"
	       "      --region REGION      ec2: AWS region ($AWS_REGION, $AWS_DEFAULT_REGION)\n"
	       "      --ec2-endpoint URL   ec2: EC2 endpoint ($CORRAL_EC2_ENDPOINT, default\n"
	       "                           https://ec2.REGION.amazonaws.com/)\n"
	       "  -h, --help               show this help\n"
	       "      --version            show the version\n"
	       "\n"
	       "Exit codes: 0 ok, 1 the operation failed, 2 usage or input error.\n");
}

int ctl_usage_error(const char *fmt, ...) {
	va_list ap;

	fprintf(stderr, "corralctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'corralctl --help'.\n");
	return 2;
}

int main(int argc, char *argv[]) {
	enum { ARG_VERSION = 0x100, ARG_CLUSTER, ARG_CA, ARG_CERT, ARG_KEY, ARG_USER, ARG_PWFILE, ARG_TIMEOUT,
	       ARG_REGION, ARG_EC2_ENDPOINT };
	static const struct option options[] = {
		{ "endpoints", required_argument, NULL, 'e' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "cluster", required_argument, NULL, ARG_CLUSTER },
		{ "config", required_argument, NULL, 'c' },
		{ "format", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "debug", no_argument, NULL, 'd' },
		{ "ca-file", required_argument, NULL, ARG_CA },
		{ "cert-file", required_argument, NULL, ARG_CERT },
		{ "key-file", required_argument, NULL, ARG_KEY },
		{ "user", required_argument, NULL, ARG_USER },
		{ "password-file", required_argument, NULL, ARG_PWFILE },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "region", required_argument, NULL, ARG_REGION },
		{ "ec2-endpoint", required_argument, NULL, ARG_EC2_ENDPOINT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	_cleanup_(ctl_done) ctl_t c = { .format = FORMAT_TABLE };
	/* Precedence: options, then --config, then the environment. */
	const char *endpoints = NULL, *prefix = NULL, *cluster = NULL, *config = NULL, *pwfile = NULL;
	const char *region = NULL, *ec2_endpoint = NULL;
	int opt, r;

	log_set_ident("corralctl");
	while ((opt = getopt_long(argc, argv, "+e:p:c:o:nfvqdh", options, NULL)) >= 0) {
		switch (opt) {
		case 'e':
			endpoints = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case ARG_CLUSTER:
			cluster = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (streq(optarg, "json"))
				c.format = FORMAT_JSON;
			else if (streq(optarg, "table"))
				c.format = FORMAT_TABLE;
			else
				return ctl_usage_error("unknown format '%s' (json or table)", optarg);
			break;
		case 'n':
			c.dry_run = true;
			break;
		case 'f':
			c.force = true;
			break;
		case 'v':
			if (c.verbosity < CTL_VERBOSE)
				c.verbosity = CTL_VERBOSE;
			break;
		case 'q':
			c.verbosity = CTL_QUIET;
			break;
		case 'd':
			c.verbosity = CTL_DEBUG;
			log_set_max_level(LOG_DEBUG);
			break;
		case ARG_CA:
			if (set_str(&c.ca_file, optarg) < 0)
				return 1;
			break;
		case ARG_CERT:
			if (set_str(&c.cert_file, optarg) < 0)
				return 1;
			break;
		case ARG_KEY:
			if (set_str(&c.key_file, optarg) < 0)
				return 1;
			break;
		case ARG_USER:
			if (set_str(&c.user, optarg) < 0)
				return 1;
			break;
		case ARG_PWFILE:
			pwfile = optarg;
			break;
		case ARG_TIMEOUT:
			if (conf_parse_duration(optarg, &c.timeout_usec) < 0 || c.timeout_usec == 0)
				return ctl_usage_error("bad --timeout '%s'", optarg);
			break;
		case ARG_REGION:
			region = optarg;
			break;
		case ARG_EC2_ENDPOINT:
			ec2_endpoint = optarg;
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("corralctl %s\n", CORRAL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'corralctl --help'.\n");
			return 2;
		}
	}
	if (optind >= argc)
		return ctl_usage_error("%s", "no command given");
	/* The simulator needs no cluster: run it before asking for one. */
	if (streq(argv[optind], "scale") && optind + 1 < argc && streq(argv[optind + 1], "simulate"))
		return ctl_scale_simulate(c.format, argc - optind - 1, argv + optind + 1);

	if (config && use_config(&c, config) < 0)
		return 2;
	if (!prefix && !cluster && !c.prefix) {
		prefix = getenv("CORRAL_PREFIX");
		cluster = getenv("CORRAL_CLUSTER");
	}
	if (!endpoints && !c.endpoints)
		endpoints = getenv("CORRAL_ENDPOINTS");
	if (prefix && set_str(&c.prefix, prefix) < 0)
		return 1;
	if (!prefix && cluster) {
		free(c.prefix);
		c.prefix = NULL;
		if (asprintf(&c.prefix, "/corral/%s", cluster) < 0)
			return 1;
	}
	if (!c.prefix)
		return ctl_usage_error("%s", "no cluster given: use --prefix, --cluster or --config (or $CORRAL_PREFIX)");
	if (c.prefix[0] != '/')
		return ctl_usage_error("prefix '%s' must start with '/'", c.prefix);
	while (strlen(c.prefix) > 1 && c.prefix[strlen(c.prefix) - 1] == '/')
		c.prefix[strlen(c.prefix) - 1] = '\0';
	if (endpoints || !c.endpoints) {
		r = split_endpoints(endpoints ? endpoints : "http://127.0.0.1:2379", &c.endpoints);
		if (r == -EINVAL)
			return ctl_usage_error("bad endpoints '%s' (want http(s)://host:port,...)", endpoints);
		if (r < 0)
			return 1;
	}
	if (pwfile && read_password_file(&c, pwfile) < 0)
		return 2;
	if (c.user && !c.password) {
		const char *pw = getenv("CORRAL_ETCD_PASSWORD");
		if (!pw)
			return ctl_usage_error("%s", "--user needs a password: --password-file or $CORRAL_ETCD_PASSWORD");
		if (set_str(&c.password, pw) < 0)
			return 1;
	}

	const char *cmd = argv[optind];
	if (streq(cmd, "ec2")) {
		/* The cluster's name: --cluster, else the prefix's last part. */
		const char *name = cluster && !prefix ? cluster : strrchr(c.prefix, '/') + 1;
		if (!*name)
			return ctl_usage_error("%s", "ec2: no cluster name (use --cluster NAME)");
		return cmd_ec2(&c, name, region, ec2_endpoint, argc - optind, argv + optind);
	}
	if (!streq(cmd, "nodes") && !streq(cmd, "status") && !streq(cmd, "config") && !streq(cmd, "leader") &&
	    !ctl_scale_is_command(cmd))
		return ctl_usage_error("unknown command '%s'", cmd);
	if (set_proposer(&c) < 0)
		return 1;

	r = connect_etcd(&c);
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot set up the etcd client: %s\n", strerror(-r));
		return 1;
	}

	if (streq(cmd, "nodes"))
		return cmd_nodes(&c, argc - optind, argv + optind);
	if (streq(cmd, "status"))
		return cmd_status(&c, argc - optind, argv + optind);
	if (streq(cmd, "leader"))
		return cmd_leader(&c, argc - optind, argv + optind);
	if (streq(cmd, "config"))
		return cmd_config(&c, argc - optind, argv + optind);
	if (ctl_scale_is_command(cmd))
		return ctl_scale_main(&c, argc - optind, argv + optind);
	return ctl_usage_error("unknown command '%s'", cmd);
}
