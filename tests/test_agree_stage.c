/* test_agree_stage.c — what a staged config rollout needs from the
 * agreement protocol: agree_rebase() (pure, exhaustive over one leaf's
 * three sides, then objects, arrays, shapes and messages) and
 * agree_options.stage_only against a real etcd (the folder is written,
 * complete or delta, chunked or not, fenced and raced as a commit is, and
 * `current` never moves). */
#include <inttypes.h>
#include <jansson.h>

#include "agree.h"
#include "etcd-test.h"

#define PREFIX "/corral/t"

/* ---- pure: the rebase ----------------------------------------------------------- */

TestSuite(rebase, .timeout = 10);

static tree_leaves leaves_of(const char *doc) {
	json_error_t jerr;
	json_auto_t *j = json_loads(doc, 0, &jerr);
	tree_leaves l = {};

	cr_assert_not_null(j, "%s: %s", doc, jerr.text);
	cr_assert_eq(tree_flatten(j, &l), 0);
	return l;
}

static json_t *doc_of(const tree_leaves *l) {
	json_t *out = NULL;
	tree_error terr = {};

	cr_assert_eq(tree_unflatten(l->v, l->n, &out, &terr), 0, "%s: %s", terr.path, terr.message);
	return out;
}

/* rebase(b, c, n): 0 and the result equal to want (a JSON document), or
 * -EEXIST naming conflict. */
static void check(const char *b, const char *c, const char *n, const char *want, const char *conflict) {
	tree_leaves lb = leaves_of(b), lc = leaves_of(c), ln = leaves_of(n), out = {};
	agree_error err = {};
	int r = agree_rebase(&lb, &lc, &ln, "n_9", &out, &err);

	if (conflict) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s was changed by both the plan and n_9", conflict);
		cr_assert_eq(r, -EEXIST, "B %s C %s N %s: %d, want a conflict on %s", b, c, n, r, conflict);
		cr_assert_str_eq(err.message, msg);
		cr_assert_eq(out.n, 0);
	} else {
		cr_assert_eq(r, 0, "B %s C %s N %s: %s", b, c, n, err.message);
		json_auto_t *got = doc_of(&out);
		json_auto_t *w = json_loads(want, 0, NULL);
		_cleanup_free_ char *gs = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
		cr_assert(tree_equal(got, w), "B %s C %s N %s: got %s, want %s", b, c, n, gs, want);
		for (size_t i = 1; i < out.n; i++)
			cr_assert_lt(strcmp(out.v[i - 1].path, out.v[i].path), 0, "result not sorted");
	}
	tree_leaves_done(&lb);
	tree_leaves_done(&lc);
	tree_leaves_done(&ln);
	tree_leaves_done(&out);
}

/* One leaf "x" on each of the three sides, absent or one of three values
 * (64 cases), beside a leaf "k" that only N changed: the rule is
 * B == C: N's; N == C or N == B: C's; otherwise a conflict on x. */
Test(rebase, one_leaf_every_combination) {
	const char *vals[] = { NULL, "1", "2", "3" };

	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 4; j++)
			for (size_t k = 0; k < 4; k++) {
				const char *bv = vals[i], *cv = vals[j], *nv = vals[k];
				char b[64], c[64], n[64], want[64];
#define DOC(buf, v, kv) \
	((v) ? snprintf(buf, sizeof buf, "{\"k\":%s,\"x\":%s}", kv, v) : snprintf(buf, sizeof buf, "{\"k\":%s}", kv))
				DOC(b, bv, "0");
				DOC(c, cv, "0");
				DOC(n, nv, "7");
				const char *res = i == j ? nv : (k == j || k == i) ? cv : (const char *) -1;
				if (res == (const char *) -1) {
					check(b, c, n, NULL, "x");
					continue;
				}
				DOC(want, res, "7");
#undef DOC
				check(b, c, n, want, NULL);
			}
}

Test(rebase, additions_removals_and_untouched_leaves) {
	/* both sides add, different keys */
	check("{\"a\":1}", "{\"a\":1,\"p\":2}", "{\"a\":1,\"q\":3}", "{\"a\":1,\"p\":2,\"q\":3}", NULL);
	/* both add the same key: same value is no conflict, another is */
	check("{}", "{\"p\":2}", "{\"p\":2}", "{\"p\":2}", NULL);
	check("{}", "{\"p\":2}", "{\"p\":3}", NULL, "p");
	/* the plan removes, N left it: removed; N removed it too: fine */
	check("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"a\":5,\"b\":2}", "{\"a\":5}", NULL);
	check("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"a\":1}", "{\"a\":1}", NULL);
	/* removed on one side, changed on the other, both ways */
	check("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"a\":1,\"b\":4}", NULL, "b");
	check("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":3}", "{\"a\":1}", NULL, "b");
	/* no change in the plan: N as it is */
	check("{\"a\":1}", "{\"a\":1}", "{\"z\":{\"y\":[1]}}", "{\"z\":{\"y\":[1]}}", NULL);
	/* an empty N and an empty plan */
	check("{}", "{}", "{}", "{}", NULL);
	check("{\"a\":1}", "{}", "{}", "{}", NULL);
}

Test(rebase, nested_objects_name_the_leaf_path) {
	const char *b = "{\"cms\":{\"core\":{\"Worker\":[[\"10.0.0.1\",26000]],\"port\":1}}}";
	const char *c = "{\"cms\":{\"core\":{\"Worker\":[[\"10.0.0.1\",26000]],\"port\":2}}}";

	/* a join (Worker grew) and the plan's port: both in */
	check(b, c, "{\"cms\":{\"core\":{\"Worker\":[[\"10.0.0.1\",26000],[\"10.0.0.2\",26000]],\"port\":1}}}",
	      "{\"cms\":{\"core\":{\"Worker\":[[\"10.0.0.1\",26000],[\"10.0.0.2\",26000]],\"port\":2}}}", NULL);
	/* the same port edited elsewhere */
	check(b, c, "{\"cms\":{\"core\":{\"Worker\":[[\"10.0.0.1\",26000]],\"port\":3}}}", NULL, "cms/core/port");
	/* a key with a '/' is named in tree.h spelling */
	check("{\"f\":{\"a/b\":1}}", "{\"f\":{\"a/b\":2}}", "{\"f\":{\"a/b\":3}}", NULL, "f/a%2Fb");
	/* the first conflict in path order */
	check("{\"a\":1,\"z\":1}", "{\"a\":2,\"z\":2}", "{\"a\":3,\"z\":3}", NULL, "a");
}

/* tree.h keeps an array as one leaf: any two different edits of it clash,
 * the same edit does not. */
Test(rebase, arrays_are_leaves) {
	check("{\"w\":[1,2]}", "{\"w\":[1,2,3]}", "{\"w\":[1,2,4]}", NULL, "w");
	check("{\"w\":[1,2]}", "{\"w\":[1,2,3]}", "{\"w\":[1,2,3]}", "{\"w\":[1,2,3]}", NULL);
	check("{\"w\":[1,2],\"v\":0}", "{\"w\":[1,2],\"v\":1}", "{\"w\":[2,1],\"v\":0}", "{\"w\":[2,1],\"v\":1}",
	      NULL);
}

/* The plan made a leaf where N made an object, or the other way round. */
Test(rebase, shape_clashes) {
	check("{}", "{\"a\":{\"b\":1}}", "{\"a\":5}", NULL, "a/b");
	check("{\"a\":{\"x\":1}}", "{\"a\":5}", "{\"a\":{\"x\":1,\"y\":2}}", NULL, "a");
	/* the plan turns an object into a leaf and N left it: fine */
	check("{\"a\":{\"x\":1}}", "{\"a\":5}", "{\"a\":{\"x\":1},\"q\":1}", "{\"a\":5,\"q\":1}", NULL);
	/* an empty object filled on one side */
	check("{\"a\":{}}", "{\"a\":{\"b\":1}}", "{\"a\":{},\"q\":1}", "{\"a\":{\"b\":1},\"q\":1}", NULL);
}

/* Leaf text is compared as JSON: a hand-written "[1, 2]" is "[1,2]". */
Test(rebase, values_compare_as_json) {
	tree_leaf b[] = { { "w", "[1,2]" } }, c[] = { { "w", "[1,2,3]" } }, n[] = { { "w", "[1, 2]" } };
	tree_leaves lb = { b, 1 }, lc = { c, 1 }, ln = { n, 1 }, out = {};
	agree_error err = {};

	cr_assert_eq(agree_rebase(&lb, &lc, &ln, NULL, &out, &err), 0, "%s", err.message);
	cr_assert_eq(out.n, 1);
	cr_assert_str_eq(out.v[0].value, "[1,2,3]");
	tree_leaves_done(&out);

	n[0].value = "[1,2,4]";
	cr_assert_eq(agree_rebase(&lb, &lc, &ln, NULL, &out, &err), -EEXIST);
	cr_assert_str_eq(err.message, "w was changed by both the plan and the current config");
}

/* ---- pure: what upgrade/ keeps from collection ----------------------------------- */

static bool has(char *const *v, const char *s) {
	for (; v && *v; v++)
		if (streq(*v, s))
			return true;
	return false;
}

static etcd_kv ukv(const char *key, const char *value) {
	return (etcd_kv){ .key = (char *) key, .key_len = strlen(key), .value = (char *) value,
			  .value_len = value ? strlen(value) : 0 };
}

Test(rebase, upgrade_records_keep_their_snapshots) {
	etcd_kv kvs[] = {
		ukv("/p/upgrade/plan", "{\"id\":\"p1\",\"target\":{\"config\":\"c_5\",\"image\":null},"
				       "\"config_base\":\"c_4\"}"),
		ukv("/p/upgrade/state", "{\"candidate\":\"l_9\",\"candidate_base\":\"c_7\","
					"\"previous\":{\"config\":\"c_1\"},\"reason\":\"x_2\"}"),
		ukv("/p/upgrade/nodes/n1", "{\"target\":{\"config\":\"l_9\"},\"from\":{\"config\":\"c_7\"}}"),
		ukv("/p/upgrade/progress/n1", "{\"config\":\"l_8\"}"),
		ukv("/p/upgrade/stable", "{\"config\":\"c_3\",\"image\":\"img_1\"}"),
		ukv("/p/upgrade/history/p0", "{\"target\":{\"config\":\"old_1\"}}"),
		ukv("/p/upgrade/nodes/n2", "{\"target\":{\"config\":\"not an id/\"}}"),
		ukv("/p/upgrade/nodes/n3", "garbage"),
	};
	agree_folders f = {};
	const char *want[] = { "a_1", "c_5", "c_4", "l_9", "c_7", "c_1", "l_8", "c_3" };

	f.in_use = calloc(2, sizeof *f.in_use);
	f.in_use[0] = strdup("a_1");
	cr_assert_eq(agree_folders_in_use_upgrade(&f, kvs, ELEMENTSOF(kvs), "/p/upgrade/history/"), 0);
	cr_assert_eq(strv_length(f.in_use), ELEMENTSOF(want), "%zu ids", strv_length(f.in_use));
	for (size_t i = 0; i < ELEMENTSOF(want); i++)
		cr_assert(has(f.in_use, want[i]), "%s not kept", want[i]);
	cr_assert(!has(f.in_use, "old_1"), "history keeps folders");
	cr_assert(!has(f.in_use, "x_2"), "a reason is no snapshot");
	agree_folders_done(&f);
}

/* ---- against etcd: stage_only ---------------------------------------------------- */

ET_PAIR_FIXTURE

TestSuite(stage, .init = up, .fini = down, .timeout = 120);

/* Sets files[name][key] = value (a JSON text); n > 0: also n filler
 * leaves in "big" (a config too big for one txn). On its first run, with
 * interfere set, commits interfere's change through t2 first. */
typedef struct set_change {
	const char *name, *key, *value;
	unsigned n;
	unsigned runs;
	struct set_change *interfere;
} set_change;

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size);

static void propose(et *e, set_change *c, bool stage, const etcd_compare *fence, size_t n_fence,
		    agree_owned_result *r) {
	agree_options o = { .prefix = PREFIX, .proposer = e == &t ? "t1" : "t2", .stage_only = stage,
			    .fence = fence, .n_fence = n_fence };
	(void) agree_propose_sync(e->client, &o, set_fn, c, r);
}

static int set_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	set_change *c = userdata;
	json_t *f = json_object_get(files, c->name);

	if (c->runs++ == 0 && c->interfere) {
		agree_owned_result r2 = {};
		propose(&t2, c->interfere, false, NULL, 0, &r2);
		cr_assert(r2.committed, "%s", r2.error.message);
		agree_owned_result_done(&r2);
	}
	if (!f) {
		f = json_object();
		json_object_set_new(files, c->name, f);
	}
	json_object_set_new(f, c->key, json_loads(c->value, JSON_DECODE_ANY, NULL));
	if (c->n) {
		json_t *big = json_object();
		for (unsigned i = 0; i < c->n; i++) {
			char k[16];
			snprintf(k, sizeof k, "k%03u", i);
			json_object_set_new(big, k, json_string("v"));
		}
		json_object_set_new(files, "big", big);
	}
	return 0;
}

static int64_t revision(void) {
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &(etcd_range_req){ .key = "/nothing" });
	cr_assert_not_null(r);
	return r->header.revision;
}

/* The config folder id holds, read back by the node's reader. */
static json_t *config_files(const char *id) {
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_config_sync(t.client, PREFIX, id, &s, &err), 0, "%s: %s", id, err.message);
	json_t *f = json_incref(s.files);
	agree_snapshot_done(&s);
	return f;
}

static void assert_current(const char *id) {
	_cleanup_free_ char *cur = et_get(&t, PREFIX "/current");
	cr_assert_not_null(cur);
	cr_assert_str_eq(cur, id, "current moved");
}

Test(stage, folder_written_current_unmoved) {
	set_change base = { "cms", "port", "1" }, cand = { "cms", "port", "2" };
	agree_owned_result rb = {}, r = {};

	propose(&t, &base, false, NULL, 0, &rb);
	cr_assert(rb.committed, "%s", rb.error.message);
	propose(&t, &cand, true, NULL, 0, &r);
	cr_assert_eq(r.error.code, 0, "%s", r.error.message);
	cr_assert(r.staged && r.changed && !r.committed);
	cr_assert_str_eq(r.previous_id, rb.config_id);
	cr_assert_str_neq(r.config_id, rb.config_id);
	cr_assert_null(r.base_id, "a small config: a complete folder");
	assert_current(rb.config_id);

	json_auto_t *staged = config_files(r.config_id);
	json_auto_t *cur = config_files(rb.config_id);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(staged, "cms"), "port")), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(cur, "cms"), "port")), 1);
	agree_owned_result_done(&r);

	/* the same value again: nothing to stage, nothing written */
	int64_t rev = revision();
	propose(&t, &base, true, NULL, 0, &r);
	cr_assert_eq(r.error.code, 0, "%s", r.error.message);
	cr_assert(!r.staged && !r.changed && !r.committed);
	cr_assert_eq(revision(), rev);
	agree_owned_result_done(&r);
	agree_owned_result_done(&rb);
}

/* Too big for one txn: chunks (each guarded by current's revision) and a
 * last txn of compares only; a one-leaf change on it is a delta. */
Test(stage, big_config_chunked_and_delta) {
	set_change big = { "cms", "port", "1", .n = 300 }, cand = { "cms", "port", "2", .n = 300 };
	agree_owned_result rb = {}, r = {};

	propose(&t, &big, true, NULL, 0, &rb);
	cr_assert(rb.staged && !rb.committed, "%s", rb.error.message);
	cr_assert_null(rb.previous_id);
	_cleanup_free_ char *none = et_get(&t, PREFIX "/current");
	cr_assert_null(none, "a staged first config created current");
	json_auto_t *f = config_files(rb.config_id);
	cr_assert_eq(json_object_size(json_object_get(f, "big")), 300);
	agree_owned_result_done(&rb);

	propose(&t, &big, false, NULL, 0, &rb);
	cr_assert(rb.committed, "%s", rb.error.message);
	propose(&t, &cand, true, NULL, 0, &r);
	cr_assert(r.staged, "%s", r.error.message);
	cr_assert_str_eq(r.base_id, rb.config_id, "a one-leaf change on a big config: a delta");
	assert_current(rb.config_id);
	json_auto_t *g = config_files(r.config_id);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(g, "cms"), "port")), 2);
	cr_assert_eq(json_object_size(json_object_get(g, "big")), 300);
	agree_owned_result_done(&r);
	agree_owned_result_done(&rb);
}

/* A fence that fails writes nothing (one txn and chunked alike). */
Test(stage, fence_failing_writes_nothing) {
	set_change base = { "cms", "port", "1" }, cand = { "cms", "port", "2" };
	set_change big = { "cms", "port", "3", .n = 300 };
	etcd_compare fence = { .key = "/t/leader", .target = ETCD_CMP_CREATE, .number = 12345 };
	agree_owned_result rb = {}, r = {};

	propose(&t, &base, false, NULL, 0, &rb);
	cr_assert(rb.committed, "%s", rb.error.message);
	int64_t rev = revision();
	propose(&t, &cand, true, &fence, 1, &r);
	cr_assert_eq(r.error.code, -EPERM, "%s", r.error.message);
	cr_assert(!r.staged && !r.committed);
	cr_assert_eq(revision(), rev, "a fenced-off stage wrote something");
	agree_owned_result_done(&r);

	propose(&t, &big, true, &fence, 1, &r);
	cr_assert_eq(r.error.code, -EPERM, "%s", r.error.message);
	cr_assert(!r.staged);
	agree_folders fl = {};
	agree_error err = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &fl, &err), 0, "%s", err.message);
	cr_assert_eq(fl.n, 1, "the chunks of a fenced-off stage were left behind");
	agree_folders_done(&fl);
	assert_current(rb.config_id);
	agree_owned_result_done(&r);
	agree_owned_result_done(&rb);
}

/* current moved while staging: staged again on the new current, which
 * stays current. */
Test(stage, lost_race_stages_on_the_new_current) {
	set_change base = { "cms", "port", "1" }, other = { "cms", "workers", "[1,2]" };
	set_change cand = { "cms", "port", "2", .interfere = &other };
	agree_owned_result rb = {}, r = {};

	propose(&t, &base, false, NULL, 0, &rb);
	cr_assert(rb.committed, "%s", rb.error.message);
	propose(&t, &cand, true, NULL, 0, &r);
	cr_assert(r.staged, "%s", r.error.message);
	cr_assert_eq(r.attempts, 2);
	cr_assert_str_neq(r.previous_id, rb.config_id, "staged on the old current");
	assert_current(r.previous_id);
	json_auto_t *g = config_files(r.config_id);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(g, "cms"), "port")), 2);
	cr_assert_eq(json_array_size(json_object_get(json_object_get(g, "cms"), "workers")), 2);
	agree_owned_result_done(&r);
	agree_owned_result_done(&rb);
}

/* The collection keeps every folder upgrade/ names (but not history's),
 * however old. */
Test(stage, collection_keeps_what_upgrade_names) {
	agree_owned_result r[6] = {};
	char state[256], order[256];
	agree_error err = {};

	for (int i = 0; i < 6; i++) {
		char v[16];
		snprintf(v, sizeof v, "%d", i % 9 + 1);
		set_change c = { "cms", "port", v };
		propose(&t, &c, i == 2, NULL, 0, &r[i]);
		cr_assert(r[i].committed || r[i].staged, "%s", r[i].error.message);
	}
	/* r[2] is a staged candidate made on r[1]; r[0] an order's from; r[3]
	 * only in a history */
	snprintf(state, sizeof state, "{\"candidate\":\"%s\",\"candidate_base\":\"%s\"}", r[2].config_id,
		 r[1].config_id);
	snprintf(order, sizeof order, "{\"from\":{\"config\":\"%s\"}}", r[0].config_id);
	cr_assert_eq(et_put(&t, PREFIX "/upgrade/state", state, 0), 0);
	cr_assert_eq(et_put(&t, PREFIX "/upgrade/nodes/n1", order, 0), 0);
	snprintf(order, sizeof order, "{\"target\":{\"config\":\"%s\"}}", r[3].config_id);
	cr_assert_eq(et_put(&t, PREFIX "/upgrade/history/p0", order, 0), 0);

	cr_assert_eq(agree_collect_sync(t.client, PREFIX, 0, NULL, 0, &err), 2, "%s", err.message);
	agree_folders f = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_eq(f.n, 4);
	const char *kept[] = { r[0].config_id, r[1].config_id, r[2].config_id, r[5].config_id };
	for (size_t i = 0; i < ELEMENTSOF(kept); i++) {
		bool found = false;
		for (size_t j = 0; j < f.n; j++)
			found |= streq(f.v[j].id, kept[i]);
		cr_assert(found, "%s was collected", kept[i]);
	}
	agree_folders_done(&f);
	for (int i = 0; i < 6; i++)
		agree_owned_result_done(&r[i]);
}
