/* test_agree.c — the agreement protocol: the pure folder listing and GC
 * plan exhaustively, then proposals, reads and collection against a real
 * etcd, including lost races, the chunked path, fences and five writers
 * contending for `current`. */
#include <inttypes.h>
#include <jansson.h>

#include "agree.h"
#include "etcd-test.h"

#include <criterion/parameterized.h>

#define PREFIX "/corral/t"

/* ---- pure: folders and the GC plan ------------------------------------------- */

TestSuite(agree_pure, .timeout = 10);

static etcd_kv kv(const char *key, int64_t create) {
	return (etcd_kv){ .key = (char *) key, .key_len = strlen(key), .create_revision = create };
}

Test(agree_pure, folders_from_keys_groups_and_sorts) {
	etcd_kv kvs[] = {
		kv("/p/configs/a_10/cms/x", 10), kv("/p/configs/a_10/cms/y", 9), kv("/p/configs/a_3/cms/x", 3),
		kv("/p/configs/b_7/f", 7),       kv("/p/configs/stray", 8),        kv("/p/configs//x", 8),
	};
	agree_folders f = {};

	cr_assert_eq(agree_folders_from_keys(kvs, ELEMENTSOF(kvs), strlen("/p/configs/"), &f), 0);
	cr_assert_eq(f.n, 3);
	cr_assert_str_eq(f.v[0].id, "a_10");
	cr_assert_eq(f.v[0].create_revision, 9, "smallest create_revision of its keys");
	cr_assert_eq(f.v[0].n_keys, 2);
	cr_assert_str_eq(f.v[1].id, "b_7");
	cr_assert_str_eq(f.v[2].id, "a_3");
	cr_assert_null(f.current);
	agree_folders_done(&f);

	cr_assert_eq(agree_folders_from_keys(NULL, 0, 3, &f), 0);
	cr_assert_eq(f.n, 0);
	agree_folders_done(&f);
}

/* Every reader of nodes/ (a snapshot's nodes, the leader's live map)
 * takes a record the same way: a JSON object under the folder, or nothing. */
Test(agree_pure, node_parse) {
	const char *folder = "/p/nodes/";
	struct {
		const char *key, *value;
		int want;
	} cases[] = {
		{ "/p/nodes/n1", "{\"address\":\"10.0.0.1\"}", 0 },
		{ "/p/nodes/n2", "[1,2]", -EINVAL },
		{ "/p/nodes/n3", "not json", -EINVAL },
		{ "/p/nodes/n4", "{\"a\":1,\"a\":2}", -EINVAL },      /* duplicate keys */
		{ "/p/nodes/", "{}", -EINVAL },                          /* the folder itself */
		{ "/p/nodes/n5", NULL, -EINVAL },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		etcd_kv k = kv(cases[i].key, 1);
		k.value = (char *) cases[i].value;
		k.value_len = cases[i].value ? strlen(cases[i].value) : 0;
		char *id = (char *) 1;
		json_t *rec = (json_t *) 1;
		cr_assert_eq(agree_node_parse(&k, strlen(folder), &id, &rec), cases[i].want, "%s", cases[i].key);
		if (cases[i].want == 0) {
			cr_assert_str_eq(id, "n1");
			cr_assert_str_eq(json_string_value(json_object_get(rec, "address")), "10.0.0.1");
		} else
			cr_assert(id == NULL && rec == NULL, "%s: outputs not cleared", cases[i].key);
		free(id);
		json_decref(rec);
	}
}

/* Folders f1 (oldest) .. fN (newest), create_revision i*10. */
static void make_folders(agree_folders *f, size_t n, const char *current, int64_t current_mod, char **in_use) {
	*f = (agree_folders){ .v = calloc(n + 1, sizeof *f->v), .n = n };
	for (size_t i = 0; i < n; i++) {
		cr_assert_geq(asprintf(&f->v[i].id, "f%zu", n - i), 0);
		f->v[i].create_revision = (int64_t) (n - i) * 10;
		f->v[i].n_keys = 1;
	}
	f->current = current ? strdup(current) : NULL;
	f->current_mod_revision = current_mod;
	size_t k = strv_length(in_use);
	f->in_use = calloc(k + 1, sizeof *f->in_use);
	for (size_t i = 0; i < k; i++)
		f->in_use[i] = strdup(in_use[i]);
}

/* The plan, as one string "fA fB ..." for easy comparison. */
static char *plan(const agree_folders *f, unsigned keep) {
	_cleanup_strv_free_ char **del = NULL;
	char *out = calloc(1, 1024);

	cr_assert_eq(agree_gc_plan(f, keep, &del), 0);
	cr_assert_not_null(del);
	for (size_t i = 0; del[i]; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, del[i]);
	}
	return out;
}

Test(agree_pure, gc_plan) {
	agree_folders f;

	/* f1..f6, current f4 (committed at 45): f5, f6 are in flight. */
	make_folders(&f, 6, "f4", 45, NULL);
	{
		_cleanup_free_ char *p0 = plan(&f, 0), *p1 = plan(&f, 1), *p2 = plan(&f, 2), *p9 = plan(&f, 9);
		cr_assert_str_eq(p0, "f3 f2 f1", "current and in-flight kept, the rest goes");
		cr_assert_str_eq(p1, "f2 f1", "the newest one kept");
		cr_assert_str_eq(p2, "f1");
		cr_assert_str_eq(p9, "");
	}
	agree_folders_done(&f);

	/* In use by status records: kept, and not counted in `keep`. */
	char *use[] = { "f1", "f3", "gone", NULL };
	make_folders(&f, 6, "f6", 60, use);
	{
		_cleanup_free_ char *p0 = plan(&f, 0), *p1 = plan(&f, 1);
		cr_assert_str_eq(p0, "f5 f4 f2");
		cr_assert_str_eq(p1, "f4 f2");
	}
	agree_folders_done(&f);

	/* No current: everything could be a proposal in flight. */
	make_folders(&f, 3, NULL, 0, NULL);
	{
		_cleanup_free_ char *p = plan(&f, 0);
		cr_assert_str_eq(p, "");
	}
	agree_folders_done(&f);

	/* A current whose folder is not listed (missing). */
	make_folders(&f, 3, "empty_1", 100, NULL);
	{
		_cleanup_free_ char *p = plan(&f, 1);
		cr_assert_str_eq(p, "f2 f1");
	}
	agree_folders_done(&f);

	/* Nothing at all. */
	make_folders(&f, 0, NULL, 0, NULL);
	{
		_cleanup_free_ char *p = plan(&f, 3);
		cr_assert_str_eq(p, "");
	}
	agree_folders_done(&f);

	/* Exhaustive over small cases: the plan never names current, an
	 * in-use id or an in-flight folder, and keeps exactly
	 * min(keep, others) of the rest, the newest. */
	for (size_t n = 0; n <= 6; n++)
		for (size_t cur = 0; cur <= n; cur++)
			for (unsigned mask = 0; mask < (1u << n); mask++)
				for (unsigned keep = 0; keep <= 3; keep++) {
					char *ids[8] = {};
					size_t k = 0;
					for (size_t i = 0; i < n; i++)
						if (mask & (1u << i))
							cr_assert_geq(asprintf(&ids[k++], "f%zu", i + 1), 0);
					char curid[32] = "";
					if (cur)
						snprintf(curid, sizeof curid, "f%zu", cur);
					/* current committed 5 revisions after its folder */
					make_folders(&f, n, cur ? curid : NULL, cur ? (int64_t) cur * 10 + 5 : 0, ids);
					_cleanup_strv_free_ char **del = NULL;
					cr_assert_eq(agree_gc_plan(&f, keep, &del), 0);
					size_t others = 0, deleted = strv_length(del);
					for (size_t i = 0; i < f.n; i++) {
						const agree_folder *d = &f.v[i];
						bool protected = (cur && streq(d->id, curid)) ||
							(mask & (1u << (atoi(d->id + 1) - 1))) ||
							d->create_revision > f.current_mod_revision;
						bool in_plan = false;
						for (size_t j = 0; del[j]; j++)
							in_plan = in_plan || streq(del[j], d->id);
						if (protected)
							cr_assert_not(in_plan, "%s protected but planned", d->id);
						else {
							/* the others, newest first: the first `keep` stay */
							cr_assert_eq(in_plan, others >= keep, "%s keep=%u", d->id, keep);
							others++;
						}
					}
					cr_assert_eq(deleted, others > keep ? others - keep : 0);
					agree_folders_done(&f);
					for (size_t i = 0; i < k; i++)
						free(ids[i]);
				}
}

static etcd_kv status_kv(const char *key, const char *value) {
	return (etcd_kv){ .key = (char *) key, .key_len = strlen(key), .value = (char *) value,
			  .value_len = value ? strlen(value) : 0 };
}

Test(agree_pure, folders_in_use_from_status_records) {
	etcd_kv kvs[] = {
		status_kv("/p/status/n1", "{\"target\":\"a_2\",\"applied\":\"a_1\"}"),
		status_kv("/p/status/n2", "{\"target\":\"a_2\",\"applied\":null}"),
		status_kv("/p/status/n3", "garbage"),
		status_kv("/p/status/n4", NULL),
		status_kv("/p/status/n5", "{\"target\":7,\"applied\":\"b_9\"}"),
		status_kv("/p/status/n6", "[\"c_1\"]"),
	};
	agree_folders f = {};
	char *was[] = { "old_1", NULL };

	make_folders(&f, 0, NULL, 0, was);
	cr_assert_eq(agree_folders_in_use(&f, kvs, ELEMENTSOF(kvs)), 0);
	cr_assert_eq(strv_length(f.in_use), 3, "each id once, non-strings and non-objects name nothing");
	cr_assert_str_eq(f.in_use[0], "a_2");
	cr_assert_str_eq(f.in_use[1], "a_1");
	cr_assert_str_eq(f.in_use[2], "b_9");

	/* No record: an empty list, not NULL, and the old one replaced. */
	cr_assert_eq(agree_folders_in_use(&f, NULL, 0), 0);
	cr_assert_not_null(f.in_use);
	cr_assert_null(f.in_use[0]);
	agree_folders_done(&f);
}

/* ---- against etcd ------------------------------------------------------------------ */

ET_PAIR_FIXTURE

TestSuite(agree, .init = up, .fini = down, .timeout = 120);

/* A change that sets one path; optionally, on its first run, makes
 * another proposal commit first (on t2's own loop) so this one loses. */
typedef struct set_change {
	const char *path;
	const char *value;
	unsigned runs;
	struct set_change *interfere;   /* committed through t2 on the first run */
} set_change;

static int do_set(json_t *files, const char *path, const char *value, char *err, size_t err_size) {
	json_auto_t *segs = NULL, *v = NULL;
	tree_dups dups = {};
	tree_error terr = {};
	int r = tree_value_parse(value, false, &v, &dups, &terr);

	tree_dups_done(&dups);
	if (r < 0) {
		snprintf(err, err_size, "bad value %s: %s", value, terr.message);
		return r;
	}
	r = tree_path_parse(path, &segs, &terr);
	if (r < 0) {
		snprintf(err, err_size, "bad path %s: %s", path, terr.message);
		return r;
	}
	r = tree_set(files, segs, v, &terr);
	if (r < 0)
		snprintf(err, err_size, "%s: %s", terr.path, terr.message);
	return r < 0 ? r : 0;
}

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size);

static agree_options opts(const char *proposer) {
	return (agree_options){ .prefix = PREFIX, .proposer = proposer };
}

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	set_change *c = userdata;

	if (c->runs++ == 0 && c->interfere) {
		agree_owned_result r2 = {};
		agree_options o = opts("other");
		cr_assert_eq(agree_propose_sync(t2.client, &o, set_fn, c->interfere, &r2), 0, "%s", r2.error.message);
		cr_assert(r2.committed);
		agree_owned_result_done(&r2);
	}
	return do_set(files, c->path, c->value, err, err_size);
}

static int64_t etcd_revision(void) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &(etcd_range_req){ .key = "/nothing" });
	cr_assert_not_null(r);
	return r->header.revision;
}

static json_t *current_files(void) {
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), 0, "%s", err.message);
	json_t *f = json_incref(s.files);
	agree_snapshot_done(&s);
	return f;
}

static size_t count_folders(void) {
	agree_folders f = {};
	agree_error err = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	size_t n = f.n;
	agree_folders_done(&f);
	return n;
}

static agree_owned_result propose_set(const char *path, const char *value, const agree_options *o) {
	set_change c = { .path = path, .value = value };
	agree_owned_result r = {};
	agree_options def = opts("t1");
	(void) agree_propose_sync(t.client, o ? o : &def, set_fn, &c, &r);
	return r;
}

Test(agree, first_proposal_creates_current_then_no_change_writes_nothing) {
	agree_snapshot s = {};
	agree_error err = {};

	cr_assert_eq(agree_read_sync(t.client, PREFIX, true, &s, &err), 0, "%s", err.message);
	cr_assert_null(s.config_id);
	cr_assert_eq(json_object_size(s.files), 0);
	cr_assert_eq(json_object_size(s.nodes), 0);
	int64_t read_rev = s.revision;
	agree_snapshot_done(&s);

	agree_owned_result r = propose_set("cms/core_services/Worker", "[[\"10.0.0.1\",26000]]", NULL);
	cr_assert_eq(r.error.code, 0, "%s", r.error.message);
	cr_assert(r.changed && r.committed);
	cr_assert_null(r.previous_id);
	cr_assert_eq(r.attempts, 1);
	cr_assert_eq(strncmp(r.config_id, "t1_", 3), 0, "%s", r.config_id);
	cr_assert_geq(strtoll(r.config_id + 3, NULL, 10), read_rev, "the id counter starts at the snapshot revision");
	cr_assert_eq(json_array_size(r.diff), 1);
	_cleanup_free_ char *cur = hx_etcd_get(etcd, PREFIX "/current");
	cr_assert_str_eq(cur, r.config_id);
	_cleanup_free_ char *key = NULL;
	cr_assert_geq(asprintf(&key, PREFIX "/configs/%s/cms/core_services/Worker", r.config_id), 0);
	_cleanup_free_ char *leaf = hx_etcd_get(etcd, key);
	cr_assert_str_eq(leaf, "[[\"10.0.0.1\",26000]]");
	int64_t rev = r.revision;
	cr_assert_eq(etcd_revision(), rev, "one txn, one revision");

	/* the same value again: nothing written */
	agree_owned_result again = propose_set("cms/core_services/Worker", "[[\"10.0.0.1\", 26000]]", NULL);
	cr_assert_eq(again.error.code, 0, "%s", again.error.message);
	cr_assert_not(again.changed);
	cr_assert_not(again.committed);
	cr_assert_str_eq(again.config_id, r.config_id);
	cr_assert_eq(json_array_size(again.diff), 0);
	cr_assert_eq(etcd_revision(), rev, "a no-op proposal wrote something");

	/* a second change: new id, previous is the first */
	agree_owned_result r3 = propose_set("cms/x", "hello", NULL);
	cr_assert(r3.committed);
	cr_assert_str_eq(r3.previous_id, r.config_id);
	cr_assert_str_neq(r3.config_id, r.config_id);
	json_auto_t *files = current_files();
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(files, "cms"), "x")), "hello");

	agree_owned_result_done(&r);
	agree_owned_result_done(&again);
	agree_owned_result_done(&r3);
}

Test(agree, lost_race_retries_and_both_changes_survive) {
	set_change b = { .path = "cms/b", .value = "\"B\"" };
	set_change a = { .path = "cms/a", .value = "\"A\"", .interfere = &b };
	agree_owned_result r = {};
	agree_options o = opts("t1");

	agree_owned_result base = propose_set("cms/base", "1", NULL);
	cr_assert(base.committed);
	cr_assert_eq(agree_propose_sync(t.client, &o, set_fn, &a, &r), 0, "%s", r.error.message);
	cr_assert(r.committed);
	cr_assert_eq(r.attempts, 2, "lost the first round, won the second");
	cr_assert_eq(a.runs, 2);
	json_auto_t *files = current_files();
	json_t *cms = json_object_get(files, "cms");
	cr_assert_str_eq(json_string_value(json_object_get(cms, "a")), "A");
	cr_assert_str_eq(json_string_value(json_object_get(cms, "b")), "B");
	cr_assert_eq(json_integer_value(json_object_get(cms, "base")), 1);
	/* base, B's, A's: the lost single-txn attempt left no folder */
	cr_assert_eq(count_folders(), 3);
	agree_owned_result_done(&r);
	agree_owned_result_done(&base);
}

Test(agree, only_if_absent) {
	agree_options o = opts("t1");
	o.only_if_absent = true;

	agree_owned_result r1 = propose_set("cms/initial", "1", &o);
	cr_assert_eq(r1.error.code, 0, "%s", r1.error.message);
	cr_assert(r1.committed);
	agree_owned_result r2 = propose_set("cms/initial", "2", &o);
	cr_assert_eq(r2.error.code, -EEXIST);
	cr_assert_not(r2.committed);
	cr_assert(strstr(r2.error.message, PREFIX "/current"), "%s", r2.error.message);
	json_auto_t *files = current_files();
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(files, "cms"), "initial")), 1);

	/* Two initial proposals racing: one wins, the other sees -EEXIST. */
	agree_owned_result_done(&r1);
	agree_owned_result_done(&r2);
}

Test(agree, only_if_absent_race) {
	set_change b = { .path = "cms/b", .value = "1" };
	set_change a = { .path = "cms/a", .value = "1", .interfere = &b };
	agree_owned_result r = {};
	agree_options o = opts("t1");
	o.only_if_absent = true;

	cr_assert_eq(agree_propose_sync(t.client, &o, set_fn, &a, &r), -EEXIST, "%s", r.error.message);
	cr_assert_eq(r.attempts, 2);
	json_auto_t *files = current_files();
	cr_assert_null(json_object_get(json_object_get(files, "cms"), "a"));
	agree_owned_result_done(&r);
}

/* With a `current` in place, an initial proposal reads `current` and
 * nothing more: a `current` naming a missing folder (whose read would
 * fail with -ENOENT) or no id at all still answers -EEXIST. */
Test(agree, only_if_absent_reads_current_alone) {
	agree_options o = opts("t1");
	o.only_if_absent = true;

	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "gone_1"), 0);
	agree_owned_result r = propose_set("cms/initial", "1", &o);
	cr_assert_eq(r.error.code, -EEXIST, "%s", r.error.message);
	cr_assert(strstr(r.error.message, "gone_1"), "%s", r.error.message);
	cr_assert_eq(r.attempts, 1);
	agree_owned_result_done(&r);

	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "a/b"), 0);
	r = propose_set("cms/initial", "1", &o);
	cr_assert_eq(r.error.code, -EEXIST, "%s", r.error.message);
	agree_owned_result_done(&r);
}

Test(agree, dry_run_writes_nothing) {
	agree_owned_result base = propose_set("cms/a", "1", NULL);
	int64_t rev = etcd_revision();
	agree_options o = opts("t1");
	o.dry_run = true;

	agree_owned_result r = propose_set("cms/a", "2", &o);
	cr_assert_eq(r.error.code, 0, "%s", r.error.message);
	cr_assert(r.changed);
	cr_assert_not(r.committed);
	cr_assert_str_eq(r.config_id, base.config_id);
	cr_assert_eq(json_array_size(r.diff), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.diff, 0), "op")), "change");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.files, "cms"), "a")), 2);
	cr_assert_eq(etcd_revision(), rev);
	agree_owned_result_done(&r);
	agree_owned_result_done(&base);
}

/* Sets `n` leaves big/k000.. to `value` (and, on the first run, nothing
 * else). */
typedef struct big_change {
	unsigned n;
	const char *value;
	unsigned runs;
} big_change;

static int big_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	big_change *b = userdata;
	json_t *big = json_object();

	b->runs++;
	for (unsigned i = 0; i < b->n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%03u", i);
		json_object_set_new(big, k, json_string(b->value));
	}
	json_object_set_new(files, "big", big);
	return 0;
}

Test(agree, big_config_goes_in_chunks) {
	big_change b = { .n = 300, .value = "v1" };
	agree_owned_result r = {};
	agree_options o = opts("t1");
	int64_t before = etcd_revision();

	cr_assert_eq(agree_propose_sync(t.client, &o, big_fn, &b, &r), 0, "%s", r.error.message);
	cr_assert(r.committed);
	/* 3 chunks of at most 128, then the CAS: 4 revisions */
	cr_assert_eq(r.revision, before + 4, "%" PRId64 " -> %" PRId64, before, r.revision);
	json_auto_t *files = current_files();
	cr_assert_eq(json_object_size(json_object_get(files, "big")), 300);
	agree_owned_result_done(&r);

	/* exactly 127 leaves + current: one txn */
	big_change b2 = { .n = 127, .value = "v2" };
	before = etcd_revision();
	cr_assert_eq(agree_propose_sync(t.client, &o, big_fn, &b2, &r), 0, "%s", r.error.message);
	cr_assert_eq(r.revision, before + 1);
	agree_owned_result_done(&r);
}

static int huge_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	size_t len = 400 * 1024;
	char *text = malloc(len + 1);

	cr_assert_not_null(text);
	memset(text, 'x', len);
	text[len] = '\0';
	for (int i = 0; i < 3; i++) {
		char k[16];
		snprintf(k, sizeof k, "v%d", i);
		text[0] = (char) ('a' + i);
		json_object_set_new(files, k, json_string(text));
	}
	free(text);
	return 0;
}

Test(agree, big_values_are_chunked_by_bytes) {
	/* 3 leaves of 400 KiB: few ops, but one txn would pass etcd's
	 * 1.5 MiB request limit once base64-encoded */
	agree_owned_result r = {};
	agree_options o = opts("t1");
	int64_t before = etcd_revision();

	cr_assert_eq(agree_propose_sync(t.client, &o, huge_fn, NULL, &r), 0, "%s", r.error.message);
	cr_assert(r.committed);
	cr_assert_geq(r.revision, before + 3, "expected chunks, got %" PRId64 " -> %" PRId64, before, r.revision);
	json_auto_t *files = current_files();
	cr_assert_eq(json_string_length(json_object_get(files, "v2")), 400 * 1024);
	agree_owned_result_done(&r);
}

/* Interferes once, from a watch on the chunked folder: when the first
 * chunk of t1's folder shows up, t2 commits (blocking, on its own loop),
 * so t1's later chunks or its CAS lose. */
typedef struct interferer {
	bool fired;
	const char *folder_prefix;
} interferer;

static void on_folder_event(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	interferer *in = userdata;

	if (m->type != ETCD_WATCH_EVENTS || in->fired)
		return;
	for (size_t i = 0; i < m->n_events; i++)
		if (strncmp(m->events[i].kv.key, in->folder_prefix, strlen(in->folder_prefix)) == 0) {
			set_change c = { .path = "cms/other", .value = "1" };
			agree_owned_result r2 = {};
			agree_options o = opts("other");
			in->fired = true;
			cr_assert_eq(agree_propose_sync(t2.client, &o, set_fn, &c, &r2), 0, "%s", r2.error.message);
			agree_owned_result_done(&r2);
			return;
		}
}

Test(agree, chunked_lost_race_leaves_no_orphan) {
	agree_owned_result base = propose_set("cms/base", "1", NULL);
	cr_assert(base.committed);

	interferer in = { .folder_prefix = PREFIX "/configs/big_" };
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	etcd_watch_req wr = { .key = PREFIX "/configs/", .prefix = true };
	cr_assert_eq(etcd_watch_new(&w, t.client, &wr, on_folder_event, &in), 0);

	big_change b = { .n = 400, .value = "x" };
	agree_owned_result r = {};
	agree_options o = opts("big");
	o.max_txn_ops = 40;             /* 10 chunks: a wide window */
	cr_assert_eq(agree_propose_sync(t.client, &o, big_fn, &b, &r), 0, "%s", r.error.message);
	cr_assert(in.fired, "the interfering commit never ran");
	cr_assert(r.committed);
	cr_assert_geq(r.attempts, 2, "the first attempt should have lost");
	w = etcd_watch_free(w);

	json_auto_t *files = current_files();
	cr_assert_eq(json_object_size(json_object_get(files, "big")), 400);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(files, "cms"), "other")), 1);
	/* base, other's, big's winner: the lost chunks were deleted */
	agree_folders f = {};
	agree_error err = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_eq(f.n, 3, "orphan folder left behind (%zu folders)", f.n);
	cr_assert_str_eq(f.v[0].id, r.config_id);
	cr_assert_eq(f.v[0].n_keys, 402, "400 big + base + other");
	agree_folders_done(&f);
	agree_owned_result_done(&r);
	agree_owned_result_done(&base);
}

Test(agree, malformed_leaf_is_reported_with_its_key) {
	agree_owned_result base = propose_set("cms/good", "1", NULL);
	cr_assert(base.committed);
	_cleanup_free_ char *key = NULL;
	cr_assert_geq(asprintf(&key, PREFIX "/configs/%s/cms/bad", base.config_id), 0);
	char *const args[] = { "put", key, "{not json", NULL };
	cr_assert_eq(hx_etcdctl(etcd, NULL, args), 0);

	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -EBADMSG);
	cr_assert(strstr(err.message, key), "the message must name the key: %s", err.message);
	agree_snapshot_done(&s);

	/* a proposal on it fails the same way, writing nothing */
	int64_t rev = etcd_revision();
	agree_owned_result r = propose_set("cms/x", "1", NULL);
	cr_assert_eq(r.error.code, -EBADMSG);
	cr_assert(strstr(r.error.message, key), "%s", r.error.message);
	cr_assert_eq(etcd_revision(), rev);

	/* a current that is no id */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "a/b"), 0);
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -EBADMSG);
	cr_assert(strstr(err.message, PREFIX "/current"), "%s", err.message);
	agree_snapshot_done(&s);
	agree_owned_result_done(&r);
	agree_owned_result_done(&base);
}

/* A change that replaces the whole document with doc (JSON text). */
static int replace_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	json_auto_t *doc = json_loads(userdata, 0, NULL);
	const char *k;
	json_t *v;

	cr_assert_not_null(doc);
	json_object_clear(files);
	json_object_foreach(doc, k, v)
		json_object_set(files, k, v);
	return 0;
}

static agree_owned_result propose_scoped(const char *scope, bool whole, agree_change_fn fn, void *ud) {
	agree_options o = opts("t1");
	agree_owned_result r = {};

	o.scope = scope;
	o.scope_whole = whole;
	(void) agree_propose_sync(t.client, &o, fn, ud, &r);
	return r;
}

static agree_owned_result propose_set_scoped(const char *path, const char *value, const char *scope, bool whole) {
	set_change c = { .path = path, .value = value };
	return propose_scoped(scope, whole, set_fn, &c);
}

static char *folder_key(const char *id, const char *rest) {
	char *k;
	cr_assert_geq(asprintf(&k, PREFIX "/configs/%s/%s", id, rest), 0);
	return k;
}

Test(agree, empty_config_is_a_marker_and_a_missing_folder_is_no_config) {
	/* the empty config: one marker key, read back as {} */
	agree_owned_result a = propose_set("cms/x", "1", NULL);
	cr_assert(a.committed);
	agree_owned_result e = propose_scoped("", false, replace_fn, "{}");
	cr_assert(e.committed, "%s", e.error.message);
	cr_assert_null(e.repaired);
	_cleanup_free_ char *marker = folder_key(e.config_id, "%empty"), *m = hx_etcd_get(etcd, marker);
	cr_assert_not_null(m, "the empty config wrote no key");
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), 0, "%s", err.message);
	cr_assert_eq(s.state, AGREE_SNAPSHOT_SOUND);
	cr_assert_eq(json_object_size(s.files), 0);
	cr_assert_eq(s.leaves.n, 0, "the marker is no leaf");
	agree_snapshot_done(&s);
	agree_folders f = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_str_eq(f.v[0].id, e.config_id, "the empty config is a folder in the history");
	cr_assert_eq(f.v[0].n_keys, 0);
	agree_folders_done(&f);

	/* current naming a folder that holds nothing: no config at all */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "gone_1"), 0);
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -ENOENT);
	cr_assert(strstr(err.message, "gone_1") && strstr(err.message, "missing"), "%s", err.message);
	agree_snapshot_done(&s);

	/* changes that need the old tree are refused, writing nothing */
	int64_t rev = etcd_revision();
	agree_owned_result r1 = propose_set("cms/x", "2", NULL);
	cr_assert_eq(r1.error.code, -ENOENT, "%s", r1.error.message);
	cr_assert(strstr(r1.error.message, "gone_1"), "%s", r1.error.message);
	agree_owned_result r2 = propose_set_scoped("cms/x", "2", "cms/x", false);
	cr_assert_eq(r2.error.code, -ENOENT, "%s", r2.error.message);
	cr_assert(strstr(r2.error.message, "empty config"), "%s", r2.error.message);
	cr_assert_eq(etcd_revision(), rev, "a refused change wrote");

	/* a whole file may start the config again: it holds that file only */
	agree_owned_result r3 = propose_set_scoped("cms", "{\"y\":3}", "cms", true);
	cr_assert(r3.committed, "%s", r3.error.message);
	cr_assert_str_eq(r3.previous_id, "gone_1");
	cr_assert(r3.repaired && strstr(r3.repaired, "gone_1"), "%s", r3.repaired);
	json_auto_t *files = current_files();
	json_auto_t *want = json_loads("{\"cms\":{\"y\":3}}", 0, NULL);
	cr_assert(tree_equal(files, want));

	/* and a whole document (rollback), even an empty one */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "gone_2"), 0);
	agree_owned_result r4 = propose_scoped("", false, replace_fn, "{}");
	cr_assert(r4.committed, "%s", r4.error.message);
	cr_assert(r4.repaired);
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), 0, "%s", err.message);
	cr_assert_str_eq(s.config_id, r4.config_id);
	agree_snapshot_done(&s);

	/* a current that is no id: only a whole document replaces it */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "a/b"), 0);
	agree_owned_result r5 = propose_set_scoped("cms", "{}", "cms", true);
	cr_assert_eq(r5.error.code, -EBADMSG, "%s", r5.error.message);
	agree_owned_result r6 = propose_scoped("", false, replace_fn, "{\"cms\":{\"z\":1}}");
	cr_assert(r6.committed, "%s", r6.error.message);
	cr_assert_null(r6.previous_id);

	agree_owned_result *all[] = { &a, &e, &r1, &r2, &r3, &r4, &r5, &r6 };
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		agree_owned_result_done(all[i]);
}

Test(agree, malformed_leaf_blocks_only_the_changes_that_need_it) {
	agree_owned_result base = propose_set("cms/good", "1", NULL);
	agree_owned_result base2 = propose_set("ranking/x", "2", NULL);
	cr_assert(base2.committed);
	_cleanup_free_ char *bad = folder_key(base2.config_id, "cms/bad");
	cr_assert_eq(hx_etcd_put(etcd, bad, "{not json"), 0);

	/* the read reports the snapshot with what is wrong */
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -EBADMSG);
	cr_assert(strstr(err.message, base2.config_id) && strstr(err.message, bad), "%s", err.message);

	int64_t rev = etcd_revision();
	/* through it: refused */
	agree_owned_result r1 = propose_set_scoped("cms/bad/x", "1", "cms/bad/x", false);
	cr_assert_eq(r1.error.code, -EBADMSG, "%s", r1.error.message);
	cr_assert(strstr(r1.error.message, "lies on the path") && strstr(r1.error.message, bad), "%s",
		  r1.error.message);
	/* elsewhere: it would be carried forward: refused */
	agree_owned_result r2 = propose_set_scoped("ranking/x", "3", "ranking/x", false);
	cr_assert_eq(r2.error.code, -EBADMSG, "%s", r2.error.message);
	cr_assert(strstr(r2.error.message, "carry it"), "%s", r2.error.message);
	agree_owned_result r3 = propose_set_scoped("ranking", "{}", "ranking", true);
	cr_assert_eq(r3.error.code, -EBADMSG, "%s", r3.error.message);
	cr_assert_eq(etcd_revision(), rev, "a refused change wrote");

	/* replacing it is a repair: the leaf is left behind, the rest kept */
	agree_owned_result r4 = propose_set_scoped("cms/bad", "5", "cms/bad", false);
	cr_assert(r4.committed, "%s", r4.error.message);
	cr_assert(r4.repaired && strstr(r4.repaired, bad), "%s", r4.repaired);
	json_auto_t *f1 = current_files();
	json_auto_t *w1 = json_loads("{\"cms\":{\"good\":1,\"bad\":5},\"ranking\":{\"x\":2}}", 0, NULL);
	cr_assert(tree_equal(f1, w1));

	/* a whole file holding it, even with the same good content */
	_cleanup_free_ char *bad2 = folder_key(r4.config_id, "cms/worse");
	cr_assert_eq(hx_etcd_put(etcd, bad2, "nope"), 0);
	agree_owned_result r5 = propose_set_scoped("cms", "{\"good\":1,\"bad\":5}", "cms", true);
	cr_assert(r5.committed, "%s", r5.error.message);
	cr_assert_eq(json_array_size(r5.diff), 1, "the diff shows the leaf left behind");
	json_auto_t *f2 = current_files();
	cr_assert(tree_equal(f2, w1));
	cr_assert_eq(count_folders(), 4, "no folder for a refused change");

	agree_snapshot_done(&s);
	agree_owned_result *all[] = { &base, &base2, &r1, &r2, &r3, &r4, &r5 };
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		agree_owned_result_done(all[i]);
}

Test(agree, read_config_and_nodes) {
	agree_owned_result a = propose_set("cms/a", "1", NULL);
	agree_owned_result b = propose_set("cms/a", "2", NULL);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n1", "{\"address\":\"10.0.0.1\"}"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n2", "not json"), 0);

	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_config_sync(t.client, PREFIX, a.config_id, &s, &err), 0, "%s", err.message);
	cr_assert_str_eq(s.config_id, a.config_id);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(s.files, "cms"), "a")), 1);
	agree_snapshot_done(&s);
	cr_assert_eq(agree_read_config_sync(t.client, PREFIX, "nope_1", &s, &err), -ENOENT);
	cr_assert(strstr(err.message, "nope_1"), "%s", err.message);

	cr_assert_eq(agree_read_sync(t.client, PREFIX, true, &s, &err), 0, "%s", err.message);
	cr_assert_str_eq(s.config_id, b.config_id);
	cr_assert_eq(json_object_size(s.nodes), 1, "the malformed record is left out");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(s.nodes, "n1"), "address")), "10.0.0.1");
	cr_assert_gt(json_integer_value(json_object_get(s.node_create_revisions, "n1")), 0);
	agree_snapshot_done(&s);
	agree_owned_result_done(&a);
	agree_owned_result_done(&b);
}

Test(agree, gc_keeps_what_it_must) {
	char *ids[7] = {};
	for (int i = 0; i < 7; i++) {
		char v[16];
		snprintf(v, sizeof v, "%d", i);
		agree_owned_result r = propose_set("cms/n", v, NULL);
		cr_assert(r.committed, "%s", r.error.message);
		ids[i] = TAKE_PTR(r.config_id);
		agree_owned_result_done(&r);
	}
	/* ids[0] applied by one node, ids[1] the target of another;
	 * a folder in flight after current; a malformed status record */
	_cleanup_free_ char *st1 = NULL, *st2 = NULL;
	cr_assert_geq(asprintf(&st1, "{\"node_id\":\"n1\",\"target\":\"%s\",\"applied\":\"%s\"}", ids[6], ids[0]), 0);
	cr_assert_geq(asprintf(&st2, "{\"node_id\":\"n2\",\"target\":\"%s\",\"applied\":null}", ids[1]), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n1", st1), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n2", st2), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n3", "garbage"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/configs/inflight_99999/cms/n", "9"), 0);

	agree_folders f = {};
	agree_error err = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_eq(f.n, 8);
	cr_assert_str_eq(f.current, ids[6]);
	cr_assert_str_eq(f.v[0].id, "inflight_99999");
	cr_assert_eq(strv_length(f.in_use), 3);
	agree_folders_done(&f);

	/* keep 2: ids[6] current, [0] and [1] in use, [5] [4] the newest
	 * others, the in-flight one; [2] and [3] go. */
	int deleted = agree_collect_sync(t.client, PREFIX, 2, NULL, 0, &err);
	cr_assert_eq(deleted, 2, "%d: %s", deleted, err.message);
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_eq(f.n, 6);
	const char *want[] = { "inflight_99999", ids[6], ids[5], ids[4], ids[1], ids[0] };
	for (size_t i = 0; i < 6; i++)
		cr_assert_str_eq(f.v[i].id, want[i]);
	agree_folders_done(&f);
	/* nothing more to do */
	cr_assert_eq(agree_collect_sync(t.client, PREFIX, 2, NULL, 0, &err), 0);

	/* a fence that fails: nothing deleted, -EPERM */
	etcd_compare fence = { .key = "/t/leader", .target = ETCD_CMP_CREATE, .number = 12345 };
	cr_assert_eq(agree_collect_sync(t.client, PREFIX, 0, &fence, 1, &err), -EPERM, "%s", err.message);
	cr_assert_eq(count_folders(), 6);
	for (int i = 0; i < 7; i++)
		free(ids[i]);
}

/* The collection as three steps, as a leader's loop runs it: observe
 * (agree_history), decide (agree_gc_plan), act (agree_gc_delete). */
typedef struct gc_wait {
	bool done;
	int deleted;
	agree_error err;
} gc_wait;

static void on_gc_wait(int deleted, const agree_error *err, void *userdata) {
	gc_wait *w = userdata;

	w->done = true;
	w->deleted = deleted;
	if (err)
		w->err = *err;
}

static bool gc_waited(void *userdata) {
	return ((gc_wait *) userdata)->done;
}

static int gc_delete_run(char **ids, int64_t current_mod, const etcd_compare *fence, size_t n_fence,
			 agree_error *err) {
	gc_wait w = {};
	agree_gc_op *op = NULL;
	int r = agree_gc_delete(t.client, PREFIX, ids, current_mod, fence, n_fence, on_gc_wait, &w, &op);

	if (r < 0)
		return r;
	cr_assert_not_null(op);
	cr_assert_not(w.done, "reported before agree_gc_delete returned");
	cr_assert(et_run_until(&t, gc_waited, &w, 30 * USEC_PER_SEC), "agree_gc_delete did not report");
	*err = w.err;
	return w.err.code < 0 ? w.err.code : w.deleted;
}

Test(agree, gc_observe_decide_act) {
	for (int i = 0; i < 5; i++) {
		char v[16];
		snprintf(v, sizeof v, "%d", i);
		agree_owned_result r = propose_set("cms/n", v, NULL);
		cr_assert(r.committed, "%s", r.error.message);
		agree_owned_result_done(&r);
	}
	agree_folders f = {};
	agree_error err = {};
	_cleanup_strv_free_ char **del = NULL;

	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_eq(f.n, 5);
	cr_assert_eq(agree_gc_plan(&f, 1, &del), 0);
	cr_assert_eq(strv_length(del), 3, "current and the newest other kept");
	int64_t mod = f.current_mod_revision;
	agree_folders_done(&f);

	/* A stale listing (current has moved since): nothing deleted, no
	 * error, as when a commit races agree_collect. */
	cr_assert_eq(gc_delete_run(del, mod - 1, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(count_folders(), 5);
	/* A failing fence: -EPERM, nothing deleted. */
	etcd_compare fence = { .key = "/t/leader", .target = ETCD_CMP_CREATE, .number = 12345 };
	cr_assert_eq(gc_delete_run(del, mod, &fence, 1, &err), -EPERM, "%s", err.message);
	cr_assert_eq(count_folders(), 5);
	/* The listing's revision: the planned three go, no more. */
	cr_assert_eq(gc_delete_run(del, mod, NULL, 0, &err), 3, "%s", err.message);
	cr_assert_eq(count_folders(), 2);
	/* An empty plan reports 0; an id that is no key segment is refused. */
	char *none[] = { NULL }, *bad[] = { "a/b", NULL };
	cr_assert_eq(gc_delete_run(none, mod, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(gc_delete_run(bad, mod, NULL, 0, &err), -EINVAL);
	cr_assert_eq(count_folders(), 2);
}

Test(agree, fence_failing_commits_nothing) {
	agree_owned_result base = propose_set("cms/a", "1", NULL);
	cr_assert(base.committed);
	int64_t rev = etcd_revision();
	etcd_compare fence = { .key = "/t/leader", .target = ETCD_CMP_CREATE, .number = 12345 };
	agree_options o = opts("t1");
	o.fence = &fence;
	o.n_fence = 1;

	agree_owned_result r = propose_set("cms/a", "2", &o);
	cr_assert_eq(r.error.code, -EPERM, "%s", r.error.message);
	cr_assert_not(r.committed);
	cr_assert_eq(etcd_revision(), rev, "a fenced-off single-txn commit wrote something");
	_cleanup_free_ char *cur = hx_etcd_get(etcd, PREFIX "/current");
	cr_assert_str_eq(cur, base.config_id);
	agree_owned_result_done(&r);

	/* the chunked path: its folder is removed again */
	big_change b = { .n = 200, .value = "x" };
	cr_assert_eq(agree_propose_sync(t.client, &o, big_fn, &b, &r), -EPERM, "%s", r.error.message);
	cr_assert_eq(count_folders(), 1);
	free(cur);
	cur = hx_etcd_get(etcd, PREFIX "/current");
	cr_assert_str_eq(cur, base.config_id);
	agree_owned_result_done(&r);

	/* a fence that holds */
	cr_assert_eq(hx_etcd_put(etcd, "/t/leader", "me"), 0);
	_cleanup_(etcd_response_freep) etcd_response *lr = et_range(&t, &(etcd_range_req){ .key = "/t/leader" });
	fence.number = lr->kvs[0].create_revision;
	r = propose_set("cms/a", "3", &o);
	cr_assert_eq(r.error.code, 0, "%s", r.error.message);
	cr_assert(r.committed);
	agree_owned_result_done(&r);
	agree_owned_result_done(&base);
}

/* ---- contention -------------------------------------------------------------- */

#define WRITERS 5
#define SETS 100

typedef struct writer {
	etcd_client *client;
	unsigned deltas;                /* commits written as a delta */
	char name[16];
	unsigned next;                  /* sets done */
	char path[64];
	set_change change;
	unsigned attempts, failures;
	bool busy;
	bool partial;                   /* agree_options.partial, scope its path */
	int last_error;
	char message[512];
} writer;

static void writer_start(writer *w);

static void on_writer_done(agree_proposal *p, const agree_result *r, void *userdata) {
	writer *w = userdata;

	w->busy = false;
	w->attempts += r->attempts;
	if (r->committed && r->base_id)
		w->deltas++;
	if (r->error.code < 0 || !r->committed) {
		w->failures++;
		w->last_error = r->error.code;
		snprintf(w->message, sizeof w->message, "%s", r->error.message);
	}
	w->next++;
	if (w->next < SETS)
		writer_start(w);
}

static void writer_start(writer *w) {
	agree_options o = opts(w->name);
	o.max_attempts = 200;           /* five writers on every key: be patient */
	snprintf(w->path, sizeof w->path, "load/%s/k%03u", w->name, w->next);
	o.scope = w->path;
	o.partial = w->partial;
	w->change = (set_change){ .path = w->path, .value = "1" };
	w->busy = true;
	cr_assert_eq(agree_propose(NULL, w->client, &o, set_fn, &w->change, on_writer_done, w), 0);
}

static bool writers_done(void *ud) {
	writer *ws = ud;
	for (size_t i = 0; i < WRITERS; i++)
		if (ws[i].next < SETS)
			return false;
	return true;
}

/* The same contention from an empty config (complete folders in one txn
 * until it outgrows a txn, then deltas) and beside a big one (deltas on a
 * base, and a complete folder in chunks each time the cumulative delta
 * passes its cap), read whole or, as `config set` does, partially. */
typedef struct contention {
	unsigned big;                   /* leaves beside the writers' */
	bool partial;                   /* the writers read only their scope */
} contention;

ParameterizedTestParameters(agree, contention_five_writers) {
	/* 300 with whole reads: each attempt reads it all (and ASan is slow) */
	static contention params[] = { { 0, false }, { 300, false }, { 1000, true } };
	return cr_make_param_array(contention, params, ELEMENTSOF(params));
}

/* A loose bound: ASan on a shared 2-core machine is ten times slower. */
ParameterizedTest(contention *param, agree, contention_five_writers, .timeout = 420) {
	const unsigned *big = &param->big;
	writer ws[WRITERS] = {};
	_cleanup_strv_free_ char **eps = et_split(hx_etcd_endpoints(etcd));
	etcd_options eo = { .endpoints = eps };

	for (size_t i = 0; i < WRITERS; i++) {
		cr_assert_eq(etcd_client_new(&ws[i].client, t.event, &eo), 0);
		snprintf(ws[i].name, sizeof ws[i].name, "w%zu", i);
		ws[i].partial = param->partial;
	}
	if (*big) {
		big_change b = { .n = *big, .value = "v" };
		agree_owned_result r = {};
		agree_options o = opts("t1");
		cr_assert_eq(agree_propose_sync(t.client, &o, big_fn, &b, &r), 0, "%s", r.error.message);
		agree_owned_result_done(&r);
	}
	uint64_t start = hx_now_usec();
	for (size_t i = 0; i < WRITERS; i++)
		writer_start(&ws[i]);
	bool ok = et_run_until(&t, writers_done, ws, 400 * USEC_PER_SEC);
	double secs = (double) (hx_now_usec() - start) / 1e6;

	unsigned attempts = 0, failures = 0, deltas = 0;
	for (size_t i = 0; i < WRITERS; i++) {
		attempts += ws[i].attempts;
		deltas += ws[i].deltas;
		failures += ws[i].failures;
		if (ws[i].failures)
			cr_log_error("%s: %u failures, last %d: %s", ws[i].name, ws[i].failures, ws[i].last_error,
				     ws[i].message);
	}
	cr_assert(ok, "the writers did not finish in time");
	json_auto_t *files = current_files();
	json_t *load = json_object_get(files, "load");
	size_t present = 0;
	for (size_t i = 0; i < WRITERS; i++)
		present += json_object_size(json_object_get(load, ws[i].name));
	fprintf(stderr, "agree contention beside %u leaves%s: %zu/%d sets present, %d commits in %.2f s = %.1f commits/s, "
		"%u attempts (%.2f per commit), %u failures, %u deltas\n",
		*big, param->partial ? " (partial reads)" : "", present, WRITERS * SETS, WRITERS * SETS, secs, WRITERS * SETS / secs, attempts,
		(double) attempts / (WRITERS * SETS), failures, deltas);
	cr_log_info("contention: %zu/%d present, %.1f commits/s", present, WRITERS * SETS, WRITERS * SETS / secs);
	cr_assert_eq(failures, 0);
	cr_assert_eq(present, WRITERS * SETS);
	/* Both paths taken: complete folders (the small config's first 127
	 * commits fit one txn; beside the big one, when the delta passes a
	 * cap) and deltas (the small config outgrows a txn too). */
	cr_assert_gt(deltas, 0);
	cr_assert_lt(deltas, WRITERS * SETS - (*big ? 0 : 100), "too few complete folders");
	cr_assert_eq(json_object_size(json_object_get(files, "big")), *big);
	for (size_t i = 0; i < WRITERS; i++)
		ws[i].client = etcd_client_free(ws[i].client);
}
