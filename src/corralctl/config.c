/* config.c — `corralctl config ...`: reading and changing the cluster's
 * config documents. Every change is a proposal through agree (a new
 * snapshot and a compare-and-set of <prefix>/current, docs/config.md);
 * get, export, history and diff only read. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "agree.h"
#include "conf.h"
#include "ctl.h"
#include "esc.h"
#include "tree.h"


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

/* --staged: the candidate is written (current stays), then the plan
 * that rolls it out, target.config = the candidate, config_base = the
 * current it was made on. Exit code. */
static int stage_plan(ctl_t *c, ctl_opts *o, const agree_owned_result *r) {
	_cleanup_(rollout_plan_done) rollout_plan plan = {};
	bool generated, quiet = true;
	int k;

	o->plan.config_id = r->config_id;
	o->plan.config_base = r->previous_id;
	if ((k = ctl_upgrade_plan_build(o, time(NULL), &plan, &generated)) != 0)
		return k;
	if ((k = ctl_upgrade_start(c, o, &plan, generated, &quiet)) != 0) {
		fprintf(stderr, "corralctl: candidate %s stays staged (unused; collected later); current is still %s\n",
			r->config_id, r->previous_id ? r->previous_id : "none");
		return k;
	}
	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_pack("{sssssOss?}", "plan", plan.id, "candidate", r->config_id, "diff",
					     r->diff ? r->diff : json_null(), "base", r->previous_id);
		return out ? ctl_print_json(out) : 1;
	}
	print_diff(r->diff);
	printf("staged config %s (on current %s); plan %s rolls it out: canary %d, bake %llds%s\n", r->config_id,
	       r->previous_id ? r->previous_id : "none", plan.id, plan.canary_nodes, (long long) plan.canary_bake,
	       plan.auto_promote ? ", then promotes by itself" : ", then waits for `corralctl upgrade promote`");
	return ctl_flush();
}

/* The plan knobs mean something only with --staged. Exit code. */
static int staged_options(const ctl_opts *o) {
	if (o->plan.staged || !(o->given & (CTL_OPT_STAGED_KNOBS & ~CTL_OPT_STAGED)))
		return 0;
	for (const ctl_option_doc *d = ctl_option_docs; d->bit; d++)
		if ((o->given & d->bit) && (d->bit & CTL_OPT_STAGED_KNOBS))
			return ctl_usage_error("%s needs --staged (a staged rollout's plan)", d->spelling);
	return 0;
}

static int propose(ctl_t *c, ctl_opts *opts, agree_change_fn fn, ctl_change *ch) {
	/* A scoped change reads only its scope beside a big config (agree.h) */
	agree_options o = { .prefix = c->prefix, .proposer = c->proposer, .dry_run = c->dry_run,
			    .scope = ch->scope, .scope_whole = ch->scope_whole, .partial = ch->scope && *ch->scope,
			    .stage_only = opts->plan.staged };
	_cleanup_(agree_owned_result_done) agree_owned_result r = {};
	int k;

	if ((k = staged_options(opts)) != 0)
		return k;
	/* refused before anything is staged: a running plan needs --supersede */
	if (opts->plan.staged && !c->dry_run && (k = ctl_upgrade_may_start(c, opts)) != 0)
		return k;
	/* a leaf too big for etcd is the operator's input, too */
	if (agree_propose_sync(c->etcd, &o, fn, ch, &r) < 0)
		return ch->input_error || r.error.code == -E2BIG ? agree_fail(&r.error, true) : broken_fail(&r.error);
	if (r.repaired)
		fprintf(stderr, "corralctl: repaired: %s; %s%s leaves that behind\n", r.repaired,
			r.committed ? "the new config " : "a commit", r.committed ? r.config_id : "");
	if (r.staged)
		return stage_plan(c, opts, &r);

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
		printf("dry run: nothing written (config %s)%s\n", r.previous_id ? r.previous_id : "none",
		       opts->plan.staged ? "; --staged would stage it and write a plan" : "");
	else
		printf("committed config %s (previous %s)\n", r.config_id, r.previous_id ? r.previous_id : "none");
	return ctl_flush();
}

static int parse_path(const char *path, json_t **out) {
	tree_error terr = {};

	if (tree_path_parse(path, out, &terr) < 0) {
		fprintf(stderr, "corralctl: bad path '%s': %s\n", ESC(path), terr.message);
		return 2;
	}
	return 0;
}

static int config_get(ctl_t *c, ctl_opts *o) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	json_auto_t *segs = NULL;
	agree_error err = {};
	int r;

	if (o->n_pos == 1 && (r = parse_path(o->pos[0], &segs)) != 0)
		return r;
	if (agree_read_sync(c->etcd, c->prefix, false, &s, &err) < 0)
		return broken_fail(&err);
	json_t *v = segs ? tree_get(s.files, segs) : s.files;
	if (!v) {
		fprintf(stderr, "corralctl: no value at %s (config %s)\n", ESC(o->pos[0]), s.config_id ? s.config_id : "none");
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

static int config_set(ctl_t *c, ctl_opts *o) {
	_cleanup_(tree_dups_donep) tree_dups dups = {};
	json_auto_t *segs = NULL, *value = NULL;
	tree_error terr = {};
	char **argv = o->pos;
	int r, i = 0;

	if ((r = parse_path(argv[i], &segs)) != 0)
		return r;
	r = tree_value_parse(argv[i + 1], o->as_string, &value, &dups, &terr);
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
	return propose(c, o, change_set, &ch);
}

static int config_delete(ctl_t *c, ctl_opts *o) {
	json_auto_t *segs = NULL;
	int r;

	if ((r = parse_path(o->pos[0], &segs)) != 0)
		return r;
	ctl_change ch = { .verb = "delete", .segments = segs, .path = o->pos[0], .scope = o->pos[0] };
	return propose(c, o, change_delete, &ch);
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

static int config_import(ctl_t *c, ctl_opts *o) {
	_cleanup_(tree_dups_donep) tree_dups dups = {};
	_cleanup_free_ char *text = NULL;
	json_auto_t *segs = NULL, *value = NULL;
	json_error_t jerr;
	char **argv = o->pos;
	size_t size;
	int r, i = 0;

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
	if (report_dups(name, &dups, o->strict) != 0)
		return 2;
	/* A whole file: made even when current's folder is missing (the new
	 * config then holds this file only) or holds malformed leaves in this
	 * file (they are replaced); a malformed leaf in another file refuses. */
	ctl_change ch = { .verb = "import", .segments = segs, .path = argv[i], .value = value, .scope = argv[i],
			  .scope_whole = true };
	return propose(c, o, change_set, &ch);
}

static int config_export(ctl_t *c, ctl_opts *o) {
	_cleanup_(agree_snapshot_done) agree_snapshot s = {};
	json_auto_t *segs = NULL;
	agree_error err = {};
	int r;

	if ((r = parse_file_name(o->pos[0], &segs)) != 0)
		return r;
	if (agree_read_sync(c->etcd, c->prefix, false, &s, &err) < 0)
		return broken_fail(&err);
	json_t *v = tree_get(s.files, segs);
	if (!v) {
		fprintf(stderr, "corralctl: no file '%s' in config %s\n", ESC(o->pos[0]), s.config_id ? s.config_id : "none");
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

static int config_history(ctl_t *c, ctl_opts *o) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	agree_error err = {};

	if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
		return agree_fail(&err, false);

	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_array();
		for (size_t i = 0; out && i < f.n; i++)
			json_array_append_new(out, json_pack("{sssIsIsbsbs?s}", "id", f.v[i].id, "create_revision",
							     (json_int_t) f.v[i].create_revision, "keys",
							     (json_int_t) f.v[i].n_keys, "current",
							     streq_ptr(f.v[i].id, f.current), "in_use",
							     in_strv(f.in_use, f.v[i].id), "base", f.v[i].base));
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
		const char *note = cur ? "current" : used ? "in use by a node" : inflight ? "newer than current" : "";
		/* a delta's LEAVES are the leaves it sets (docs/snapshots.md) */
		if (!f.v[i].base)
			rows[i * 5 + 4] = strdup(note);
		else if (asprintf(&rows[i * 5 + 4], "%s%sdelta on %s", note, *note ? "; " : "", f.v[i].base) < 0)
			rows[i * 5 + 4] = NULL;
	}
	return ctl_print_rows(header, rows, f.n, 5);
}

/* Reads config id's document; unknown id -> 2. */
static int read_config(ctl_t *c, const char *id, agree_snapshot *out) {
	agree_error err = {};
	int r;

	if (!ctl_id_valid(id)) {
		fprintf(stderr, "corralctl: '%s' is not a config id\n", ESC(id));
		return 2;
	}
	r = agree_read_config_sync(c->etcd, c->prefix, id, out, &err);
	if (r < 0)
		return agree_fail(&err, r == -ENOENT);
	return 0;
}

/* The staged candidate: the running plan's (state.candidate, its rebase
 * on a newer current, else target.config). *out borrowed from s; NULL:
 * none. Exit code. */
static int staged_candidate(ctl_t *c, ctl_upgrade_stored *s, const char **out) {
	*out = NULL;
	if (ctl_upgrade_read(c, s) < 0)
		return 1;
	if (!s->have_plan || !s->plan.target.config || (s->state_is_plans && rollout_phase_terminal(s->phase)))
		return 0;
	*out = s->state_is_plans && s->state.candidate ? s->state.candidate : s->plan.target.config;
	return 0;
}

static int config_diff(ctl_t *c, ctl_opts *o) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	_cleanup_(agree_snapshot_done) agree_snapshot a = {}, b = {};
	_cleanup_(ctl_upgrade_stored_done) ctl_upgrade_stored st = {};
	agree_error err = {};
	const char *ida, *idb, *cand = NULL;
	int r;

	/* --staged [ID], or no operand while a config plan runs: what the
	 * candidate changes, current -> candidate */
	bool named = o->plan.staged && o->n_pos == 1;
	if (o->plan.staged && o->n_pos > 1)
		return ctl_usage_error("%s", "usage: corralctl config diff --staged [ID]");
	if (named)
		cand = o->pos[0];
	else if (o->n_pos == 0) {
		if ((r = staged_candidate(c, &st, &cand)) != 0)
			return r;
		if (!cand && o->plan.staged) {
			fprintf(stderr, "corralctl: no staged config rollout runs (upgrade/plan has no running config "
				"target); name the candidate: config diff --staged ID\n");
			return 2;
		}
	}
	if (cand && !named && c->format != FORMAT_JSON)
		printf("(plan %s's candidate%s%s)\n", st.plan.id, streq(cand, st.plan.target.config) ? "" : ", rebased from ",
		       streq(cand, st.plan.target.config) ? "" : st.plan.target.config);

	if (cand || o->n_pos < 2) {
		if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
			return agree_fail(&err, false);
		if (!f.current) {
			fprintf(stderr, "corralctl: no current config under %s\n", c->prefix);
			return 2;
		}
	}
	idb = cand ? cand : o->n_pos == 2 ? o->pos[1] : f.current;
	ida = cand ? f.current : o->n_pos >= 1 ? o->pos[0] : previous_of(&f);
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
	return ctl_flush();
}

static int config_rollback(ctl_t *c, ctl_opts *o) {
	_cleanup_(agree_folders_done) agree_folders f = {};
	_cleanup_(agree_snapshot_done) agree_snapshot old = {};
	agree_error err = {};
	const char *id;
	int r;

	if (o->n_pos == 0) {
		if (agree_history_sync(c->etcd, c->prefix, &f, &err) < 0)
			return agree_fail(&err, false);
		id = previous_of(&f);
		if (!id) {
			fprintf(stderr, "corralctl: no config before %s to roll back to\n",
				f.current ? f.current : "(none)");
			return 2;
		}
	} else
		id = o->pos[0];
	if ((r = read_config(c, id, &old)) != 0)
		return r;
	/* A new proposal with the old content: `current` only ever moves
	 * forward to a new id, so nodes and history see an ordinary change. */
	ctl_change ch = { .verb = "rollback", .files = old.files, .scope = "" };
	if (c->format != FORMAT_JSON)
		printf("rolling back to the content of %s\n", id);
	return propose(c, o, change_replace, &ch);
}

const ctl_verb ctl_config_verbs[] = {
	{ .group = "config", .name = "get", .args = "[PATH]", .help = "the whole config, or the value at PATH, as JSON",
	  .flags = CTL_VERB_ETCD, .max_args = 1, .run = config_get },
	{ .group = "config", .name = "set", .args = "[--string] [--staged [OPTIONS]] PATH VALUE [--staged [OPTIONS]]",
	  .help = "set a value (JSON; text starting with {, [ or \" must be JSON; other text,\n"
		  "or any with --string, is a string); parents are created. Options come\n"
		  "before PATH or after VALUE: VALUE may start with '-'. --staged: write a\n"
		  "candidate and a plan that rolls it out (canary, bake, promotion); current\n"
		  "moves only at promotion (corralctl upgrade status|promote|abort)",
	  .options = CTL_OPT_STRING | CTL_OPT_STAGED_KNOBS, .flags = CTL_VERB_ETCD | CTL_VERB_VALUES, .min_args = 2, .max_args = 2,
	  .run = config_set },
	{ .group = "config", .name = "delete", .args = "[--staged [OPTIONS]] PATH",
	  .help = "remove a value; --staged as for set", .options = CTL_OPT_STAGED_KNOBS, .flags = CTL_VERB_ETCD,
	  .min_args = 1, .max_args = 1, .run = config_delete },
	{ .group = "config", .name = "import", .args = "[--strict] [--staged [OPTIONS]] NAME FILE",
	  .help = "make the JSON in FILE ('-': stdin) config file NAME; a repeated key keeps\n"
		  "its last value, with a warning (--strict: an error); --staged as for set",
	  .options = CTL_OPT_STRICT | CTL_OPT_STAGED_KNOBS, .flags = CTL_VERB_ETCD, .min_args = 2, .max_args = 2, .run = config_import },
	{ .group = "config", .name = "export", .args = "NAME", .help = "config file NAME as JSON, as nodes render it",
	  .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1, .run = config_export },
	{ .group = "config", .name = "history", .help = "config snapshots, newest first; * marks current",
	  .flags = CTL_VERB_ETCD, .run = config_history },
	{ .group = "config", .name = "diff", .args = "[A [B]] | --staged [ID]",
	  .help = "changes from A to B (default: the previous config to current; while a staged\n"
		  "config rollout runs, current to its candidate); --staged: current to the\n"
		  "running plan's candidate, or to ID", .options = CTL_OPT_STAGED, .flags = CTL_VERB_ETCD,
	  .max_args = 2, .run = config_diff },
	{ .group = "config", .name = "rollback", .args = "[--staged [OPTIONS]] [ID]",
	  .help = "a new config with ID's content (default: the one before current); --staged\n"
		  "as for set", .options = CTL_OPT_STAGED_KNOBS, .flags = CTL_VERB_ETCD,
	  .max_args = 1, .run = config_rollback },
	{},
};
