/* test_agree_delta.c — delta snapshots (agree.h, docs/snapshots.md): the
 * pure codec (folder keys <-> delta, resolution, the cumulative delta a
 * change needs, when a delta is worth it) checked against random configs,
 * the collection keeping bases, then against a real etcd: a change beside
 * a big config writes only what differs and reads back whole, a delta
 * whose base is gone reads as missing naming both, a hand-written complete
 * folder still reads, and a delta grows into a complete folder again. The
 * 5-writer contention test runs on a big config in test_agree.c, the
 * rollback test in test_ctl_config.c. */
#include <inttypes.h>
#include <jansson.h>

#include "agree.h"
#include "etcd-test.h"

#define PREFIX "/corral/t"

TestSuite(agree_delta_pure, .timeout = 30);

static etcd_kv kvv(const char *key, const char *value) {
	return (etcd_kv){ .key = (char *) key, .key_len = strlen(key), .value = (char *) value,
			  .value_len = value ? strlen(value) : 0, .create_revision = 1 };
}

#define F "/p/configs/d_1/"

Test(agree_delta_pure, folder_parse_complete_and_delta) {
	agree_delta d = {};
	agree_error err = {};

	/* complete: no marker; a %del/ key there is a leaf (a malformed one) */
	etcd_kv c[] = { kvv(F "%del/x", ""), kvv(F "%empty", ""), kvv(F "a/b", "1") };
	cr_assert_eq(agree_folder_parse(c, ELEMENTSOF(c), strlen(F), &d, &err), 0, "%s", err.message);
	cr_assert_null(d.base_id);
	cr_assert_eq(d.set.n, 2);
	cr_assert_str_eq(d.set.v[0].path, "%del/x");
	cr_assert_str_eq(d.set.v[1].path, "a/b");
	cr_assert_eq(d.n_deleted, 0);
	agree_delta_done(&d);

	/* delta: the marker anywhere in the order ("!" sorts before "%") */
	etcd_kv dl[] = { kvv(F "!x", "2"), kvv(F "%base/b_7", "b_7"), kvv(F "%del/cms/gone", ""),
			 kvv(F "%del/z", ""), kvv(F "cms/y", "\"v\"") };
	cr_assert_eq(agree_folder_parse(dl, ELEMENTSOF(dl), strlen(F), &d, &err), 0, "%s", err.message);
	cr_assert_str_eq(d.base_id, "b_7");
	cr_assert_eq(d.set.n, 2);
	cr_assert_str_eq(d.set.v[0].path, "!x");
	cr_assert_str_eq(d.set.v[1].path, "cms/y");
	cr_assert_str_eq(d.set.v[1].value, "\"v\"");
	cr_assert_eq(d.n_deleted, 2);
	cr_assert_str_eq(d.deleted[0], "cms/gone");
	cr_assert_str_eq(d.deleted[1], "z");
	agree_delta_done(&d);

	/* two bases, a base that is no id, a NUL in a value: refused, named */
	etcd_kv two[] = { kvv(F "%base/a_1", ""), kvv(F "%base/b_2", "") };
	cr_assert_eq(agree_folder_parse(two, 2, strlen(F), &d, &err), -EBADMSG);
	cr_assert(strstr(err.message, "second base") && strstr(err.message, "a_1"), "%s", err.message);
	etcd_kv dot[] = { kvv(F "%base/..", "") };
	cr_assert_eq(agree_folder_parse(dot, 1, strlen(F), &d, &err), -EBADMSG);
	cr_assert(strstr(err.message, "not a base config id"), "%s", err.message);
	etcd_kv nul[] = { { .key = (char *) F "a", .key_len = strlen(F "a"), .value = (char *) "x\0y", .value_len = 3 } };
	cr_assert_eq(agree_folder_parse(nul, 1, strlen(F), &d, &err), -EBADMSG);
	cr_assert(strstr(err.message, "NUL"), "%s", err.message);
	cr_assert_null(d.base_id);
}

static tree_leaves leaves_of(const char *const *pv) {
	tree_leaves l = { .v = calloc(16, sizeof(tree_leaf)) };
	for (; pv[0]; pv += 2, l.n++) {
		l.v[l.n].path = strdup(pv[0]);
		l.v[l.n].value = strdup(pv[1]);
	}
	return l;
}

static char *leaves_str(const tree_leaves *l) {
	char *s = calloc(1, 4096);
	for (size_t i = 0; i < l->n; i++)
		snprintf(s + strlen(s), 4096 - strlen(s), "%s%s=%s", i ? " " : "", l->v[i].path, l->v[i].value);
	return s;
}

Test(agree_delta_pure, resolve_and_make_small_cases) {
	tree_leaves base = leaves_of((const char *const[]){ "a", "1", "b", "2", "c", "3", "d", "4", NULL });
	tree_leaves set = leaves_of((const char *const[]){ "b", "20", "e", "5", NULL });
	char **del = calloc(2, sizeof *del);
	del[0] = strdup("c");
	del[1] = strdup("zz");
	agree_delta d = { .base_id = strdup("b_1"), .set = set, .deleted = del, .n_deleted = 2 };
	tree_leaves out = {};

	cr_assert_eq(agree_delta_resolve(&base, &d, &out), 0);
	_cleanup_free_ char *s = leaves_str(&out);
	cr_assert_str_eq(s, "a=1 b=20 d=4 e=5", "a deletion of a leaf the base lacks is harmless");

	/* from the complete base: exactly what differs */
	tree_leaves base2 = leaves_of((const char *const[]){ "a", "1", "b", "2", "c", "3", "d", "4", NULL });
	agree_delta m = {};
	cr_assert_eq(agree_delta_make(&base2, "b_1", NULL, &out, &m), 0);
	_cleanup_free_ char *ms = leaves_str(&m.set);
	cr_assert_str_eq(m.base_id, "b_1");
	cr_assert_str_eq(ms, "b=20 e=5");
	cr_assert_eq(m.n_deleted, 1);
	cr_assert_str_eq(m.deleted[0], "c");

	/* on the delta: cumulative against b_1; its own leaves and deletions
	 * stay even where the new config agrees with the old (b, c) */
	tree_leaves n2 = leaves_of((const char *const[]){ "a", "1", "b", "20", "c", "3", "e", "6", NULL });
	agree_delta m2 = {};
	cr_assert_eq(agree_delta_make(&out, "d_2", &m, &n2, &m2), 0);
	_cleanup_free_ char *m2s = leaves_str(&m2.set);
	cr_assert_str_eq(m2.base_id, "b_1", "depth one: the base stays b_1");
	cr_assert_str_eq(m2s, "b=20 c=3 e=6");
	cr_assert_eq(m2.n_deleted, 1);
	cr_assert_str_eq(m2.deleted[0], "d");
	agree_delta none = {};
	cr_assert_eq(agree_delta_make(&out, "no/id", NULL, &n2, &none), -EINVAL);
	cr_assert_null(none.base_id);

	tree_leaves_done(&base);
	tree_leaves_done(&base2);
	tree_leaves_done(&out);
	tree_leaves_done(&n2);
	agree_delta_done(&d);
	agree_delta_done(&m);
	agree_delta_done(&m2);
}

/* A random config over paths k00..k39 (and k05/x under k05 when k05 is
 * not a leaf, so a leaf turning into a folder is covered). */
static tree_leaves random_config(unsigned *seed) {
	tree_leaves l = { .v = calloc(64, sizeof(tree_leaf)) };
	for (unsigned i = 0; i < 40; i++) {
		unsigned r = (unsigned) rand_r(seed) % 4;
		char path[16], value[16];
		if (r == 0)
			continue;
		if (i == 5 && r == 1)
			snprintf(path, sizeof path, "k05/x");
		else
			snprintf(path, sizeof path, "k%02u", i);
		snprintf(value, sizeof value, "%u", r);
		l.v[l.n].path = strdup(path);
		l.v[l.n++].value = strdup(value);
	}
	return l;
}

static bool leaves_eq(const tree_leaves *a, const tree_leaves *b) {
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!streq(a->v[i].path, b->v[i].path) || !streq(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

static tree_leaves leaves_copy(const tree_leaves *a) {
	tree_leaves l = { .v = calloc(a->n + 1, sizeof(tree_leaf)), .n = a->n };
	for (size_t i = 0; i < a->n; i++)
		l.v[i] = (tree_leaf){ strdup(a->v[i].path), strdup(a->v[i].value) };
	return l;
}

/* Any chain of changes on one base: each cumulative delta resolves against
 * the base to exactly the config it was made for. */
Test(agree_delta_pure, chains_of_deltas_resolve_to_their_configs) {
	unsigned seed = 14;

	for (unsigned round = 0; round < 300; round++) {
		tree_leaves base = random_config(&seed), cur = leaves_copy(&base);
		agree_delta held = {};
		char id[32] = "base_1";

		for (unsigned step = 0; step < 6; step++) {
			tree_leaves next = random_config(&seed), b = leaves_copy(&base), got = {};
			agree_delta d = {};
			cr_assert_eq(agree_delta_make(&cur, id, &held, &next, &d), 0);
			cr_assert_str_eq(d.base_id, "base_1");
			cr_assert_eq(agree_delta_resolve(&b, &d, &got), 0);
			_cleanup_free_ char *gs = leaves_str(&got), *ns = leaves_str(&next);
			cr_assert(leaves_eq(&got, &next), "round %u step %u:\n got %s\nwant %s", round, step, gs, ns);
			for (size_t i = 1; i < d.set.n; i++)
				cr_assert_lt(strcmp(d.set.v[i - 1].path, d.set.v[i].path), 0, "set unsorted");
			for (size_t i = 1; i < d.n_deleted; i++)
				cr_assert_lt(strcmp(d.deleted[i - 1], d.deleted[i]), 0, "deletions unsorted");
			tree_leaves_done(&b);
			tree_leaves_done(&got);
			tree_leaves_done(&cur);
			agree_delta_done(&held);
			cur = next;
			held = d;
			snprintf(id, sizeof id, "s_%u", step + 2);
		}
		tree_leaves_done(&base);
		tree_leaves_done(&cur);
		agree_delta_done(&held);
	}
}

static bool region_of(const char *path, const char *scope) {
	return tree_path_within(path, scope) || tree_path_within(scope, path);
}

/* A partial change (agree_options.partial): it sees only the region of
 * its scope and splices its delta into the old cumulative one; resolved
 * against the base that is exactly the new config. */
Test(agree_delta_pure, a_spliced_region_delta_resolves_to_the_config) {
	unsigned seed = 7;

	for (unsigned round = 0; round < 500; round++) {
		tree_leaves base = random_config(&seed), s1 = random_config(&seed), other = random_config(&seed);
		agree_delta d1 = {}, old_region = {}, region = {}, spliced = {};
		char scope[16];
		unsigned k = (unsigned) rand_r(&seed) % 40;
		snprintf(scope, sizeof scope, k == 5 && rand_r(&seed) % 2 ? "k05/x" : "k%02u", k);
		cr_assert_eq(agree_delta_make(&base, "base_1", NULL, &s1, &d1), 0);

		/* s1's region and the new config: s1 outside it, other's inside */
		tree_leaves s1r = { .v = calloc(s1.n + 1, sizeof(tree_leaf)) };
		tree_leaves nr = { .v = calloc(other.n + 1, sizeof(tree_leaf)) };
		tree_leaves n = { .v = calloc(s1.n + other.n + 1, sizeof(tree_leaf)) };
		for (size_t i = 0; i < s1.n; i++)
			if (region_of(s1.v[i].path, scope))
				s1r.v[s1r.n++] = (tree_leaf){ strdup(s1.v[i].path), strdup(s1.v[i].value) };
		for (size_t i = 0; i < other.n; i++)
			if (region_of(other.v[i].path, scope))
				nr.v[nr.n++] = (tree_leaf){ strdup(other.v[i].path), strdup(other.v[i].value) };
		for (size_t i = 0, j = 0; i < s1.n || j < nr.n;) {
			if (i < s1.n && region_of(s1.v[i].path, scope)) {
				i++;
				continue;
			}
			if (j >= nr.n || (i < s1.n && strcmp(s1.v[i].path, nr.v[j].path) < 0))
				n.v[n.n++] = (tree_leaf){ strdup(s1.v[i].path), strdup(s1.v[i].value) }, i++;
			else
				n.v[n.n++] = (tree_leaf){ strdup(nr.v[j].path), strdup(nr.v[j].value) }, j++;
		}

		cr_assert_eq(agree_delta_within(&d1, scope, &old_region), 0);
		cr_assert_eq(agree_delta_make(&s1r, "s_2", &old_region, &nr, &region), 0);
		cr_assert_eq(agree_delta_splice(&d1, &region, scope, &spliced), 0);
		cr_assert_str_eq(spliced.base_id, "base_1");
		tree_leaves b = leaves_copy(&base), got = {};
		cr_assert_eq(agree_delta_resolve(&b, &spliced, &got), 0);
		_cleanup_free_ char *gs = leaves_str(&got), *ns = leaves_str(&n);
		cr_assert(leaves_eq(&got, &n), "round %u scope %s:\n got %s\nwant %s", round, scope, gs, ns);

		tree_leaves *all[] = { &base, &s1, &other, &s1r, &nr, &n, &b, &got };
		for (size_t i = 0; i < ELEMENTSOF(all); i++)
			tree_leaves_done(all[i]);
		agree_delta *ds[] = { &d1, &old_region, &region, &spliced };
		for (size_t i = 0; i < ELEMENTSOF(ds); i++)
			agree_delta_done(ds[i]);
	}
}

/* n leaves "a0000".. of value "1" */
static tree_leaves n_leaves(unsigned n, unsigned from) {
	tree_leaves l = { .v = calloc(n + 1, sizeof(tree_leaf)) };
	for (unsigned i = 0; i < n; i++) {
		char p[16];
		snprintf(p, sizeof p, "a%04u", from + i);
		l.v[l.n++] = (tree_leaf){ strdup(p), strdup("1") };
	}
	return l;
}

Test(agree_delta_pure, worth_up_to_the_cap_and_a_quarter_of_the_bytes) {
	cr_assert_eq(agree_delta_cap(0), 0);
	cr_assert_eq(agree_delta_cap(2), 2);
	cr_assert_eq(agree_delta_cap(200), 20);
	cr_assert_eq(agree_delta_cap(5000), 100);
	cr_assert_eq(agree_delta_cap(20000), 200);

	tree_leaves full = n_leaves(50, 0);             /* cap 10 */
	tree_leaves ten = n_leaves(10, 0), eleven = n_leaves(11, 0), nine = n_leaves(9, 0);
	tree_leaves big = leaves_of((const char *const[]){ "a", "0123456789012345678901234567890123456789012345678901234567890123456789"
							   "0123456789012345678901234567890123456789012345678901234567890123456789"
							   "0123456789012345678901234567890123456789012345678901234567890123456789", NULL });
	agree_delta d = { .set = ten };

	cr_assert(agree_delta_worth(&d, &full), "10 of 50 leaves");
	d.set = eleven;
	cr_assert_not(agree_delta_worth(&d, &full), "11 of 50 leaves");
	char *del[] = { (char *) "x", (char *) "y" };
	d.set = nine;
	d.deleted = del;
	d.n_deleted = 2;
	cr_assert_not(agree_delta_worth(&d, &full), "deletions count");
	d.set = big;
	d.n_deleted = 0;
	cr_assert_not(agree_delta_worth(&d, &full), "1 leaf, but more than a quarter of the bytes");
	tree_leaves_done(&full);
	tree_leaves_done(&ten);
	tree_leaves_done(&eleven);
	tree_leaves_done(&nine);
	tree_leaves_done(&big);
}

/* ---- collection keeps bases ---------------------------------------------------------- */

static etcd_kv kc(const char *key, int64_t create) {
	return (etcd_kv){ .key = (char *) key, .key_len = strlen(key), .create_revision = create };
}

static char *plan_str(const agree_folders *f, unsigned keep) {
	_cleanup_strv_free_ char **del = NULL;
	char *out = calloc(1, 256);

	cr_assert_eq(agree_gc_plan(f, keep, &del), 0);
	for (size_t i = 0; del[i]; i++)
		snprintf(out + strlen(out), 256 - strlen(out), "%s%s", i ? " " : "", del[i]);
	return out;
}

Test(agree_delta_pure, folders_list_bases_and_the_plan_keeps_them) {
	/* f1..f6 (create 10..60); f3 and f6 are deltas on f1 and f2, f5 on f4 */
	etcd_kv kvs[] = {
		kc("/p/configs/f1/a", 10),        kc("/p/configs/f1/b", 10),
		kc("/p/configs/f2/a", 20),        kc("/p/configs/f3/%base/f1", 30),
		kc("/p/configs/f3/%del/b", 30),   kc("/p/configs/f3/c", 30),
		kc("/p/configs/f4/a", 40),        kc("/p/configs/f5/%base/f4", 50),
		kc("/p/configs/f6/%base/f2", 60), kc("/p/configs/f6/%del/a", 60),
		kc("/p/configs/f6/%del/b", 60),
	};
	agree_folders f = {};

	cr_assert_eq(agree_folders_from_keys(kvs, ELEMENTSOF(kvs), strlen("/p/configs/"), &f), 0);
	cr_assert_eq(f.n, 6);
	cr_assert_str_eq(f.v[0].id, "f6");
	cr_assert_str_eq(f.v[0].base, "f2");
	cr_assert_eq(f.v[0].n_keys, 0, "the marker and deletions are no leaves");
	cr_assert_eq(f.v[0].n_deleted, 2);
	cr_assert_str_eq(f.v[3].id, "f3");
	cr_assert_str_eq(f.v[3].base, "f1");
	cr_assert_eq(f.v[3].n_keys, 1);
	cr_assert_eq(f.v[3].n_deleted, 1);
	cr_assert_null(f.v[2].base, "f4 is complete");
	cr_assert_eq(f.v[2].n_keys, 1);

	/* current f6 (delta on f2): f2 stays, not counted in keep */
	f.current = strdup("f6");
	f.current_mod_revision = 65;
	f.in_use = calloc(1, sizeof *f.in_use);
	_cleanup_free_ char *p0 = plan_str(&f, 0), *p1 = plan_str(&f, 1), *p2 = plan_str(&f, 2);
	cr_assert_str_eq(p0, "f5 f4 f3 f1");
	cr_assert_str_eq(p1, "f3 f1", "f5 kept as history keeps its base f4");
	cr_assert_str_eq(p2, "f3 f1", "f4 counts as the second, no more");

	/* in use by a node (f3): its base f1 too */
	strv_free(f.in_use);
	f.in_use = calloc(2, sizeof *f.in_use);
	f.in_use[0] = strdup("f3");
	_cleanup_free_ char *pu = plan_str(&f, 0);
	cr_assert_str_eq(pu, "f5 f4");

	/* in flight (created after current's commit): its base too */
	strv_free(f.in_use);
	f.in_use = calloc(1, sizeof *f.in_use);
	f.current_mod_revision = 45;
	free(f.current);
	f.current = strdup("f4");
	_cleanup_free_ char *pf = plan_str(&f, 0);
	cr_assert_str_eq(pf, "f3 f1", "f5, f6 in flight keep f4 and f2");
	agree_folders_done(&f);
}

/* ---- against etcd ---------------------------------------------------------------- */

static hx_etcd *etcd;
static et t;

static void up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static void down(void) {
	et_close(&t);
	etcd = hx_etcd_free(etcd);
}

TestSuite(agree_delta, .init = up, .fini = down, .timeout = 120);

/* Sets big/k0000..k<n-1> to value, or one leaf `path` to `value`
 * (path NULL: the big file), or removes `path` (value NULL). */
typedef struct change {
	unsigned n;
	const char *path, *value;
} change;

static int change_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	change *c = userdata;

	if (!c->path) {
		json_t *big = json_object();
		for (unsigned i = 0; i < c->n; i++) {
			char k[16];
			snprintf(k, sizeof k, "k%04u", i);
			json_object_set_new(big, k, json_string(c->value));
		}
		return json_object_set_new(files, "big", big);
	}
	json_t *file = json_object_get(files, "big");
	if (!c->value)
		return json_object_del(file, c->path) < 0 ? 0 : 0;
	return json_object_set_new(file, c->path, json_string(c->value));
}

static agree_owned_result propose(change c) {
	agree_options o = { .prefix = PREFIX, .proposer = "t1" };
	agree_owned_result r = {};

	cr_assert_eq(agree_propose_sync(t.client, &o, change_fn, &c, &r), 0, "%s", r.error.message);
	cr_assert(r.committed);
	return r;
}

static size_t folder_keys(const char *id, const char *under) {
	char key[256];
	snprintf(key, sizeof key, PREFIX "/configs/%s/%s", id, under);
	etcd_range_req req = { .key = key, .prefix = true, .count_only = true };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	cr_assert_not_null(r);
	return (size_t) r->count;
}

static void delete_folder(const char *id) {
	char key[256];
	snprintf(key, sizeof key, PREFIX "/configs/%s/", id);
	etcd_delete_req req = { .key = key, .prefix = true };
	etcd_sync s = {};
	cr_assert_eq(etcd_delete(t.client, &req, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, NULL), 0);
}

static void read_ok(agree_snapshot *s) {
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, s, &err), 0, "%s", err.message);
	cr_assert_eq(s->state, AGREE_SNAPSHOT_SOUND);
}

static const char *big_value(const agree_snapshot *s, const char *k) {
	return json_string_value(json_object_get(json_object_get(s->files, "big"), k));
}

Test(agree_delta, a_change_beside_a_big_config_writes_only_the_difference) {
	agree_owned_result base = propose((change){ .n = 1000, .value = "v" });
	cr_assert_null(base.base_id, "the first folder is complete");
	cr_assert_eq(folder_keys(base.config_id, ""), 1000);

	int64_t before = et_revision(etcd);
	agree_owned_result one = propose((change){ .path = "k0007", .value = "changed" });
	cr_assert_str_eq(one.base_id, base.config_id);
	cr_assert_eq(one.revision, before + 1, "one txn");
	cr_assert_eq(folder_keys(one.config_id, ""), 2, "the marker and one leaf");
	char mk[256];
	snprintf(mk, sizeof mk, PREFIX "/configs/%s/%%base/%s", one.config_id, base.config_id);
	_cleanup_free_ char *mv = hx_etcd_get(etcd, mk);
	cr_assert_str_eq(mv, base.config_id, "the marker's value names the base too");

	agree_owned_result two = propose((change){ .path = "k0009" });
	cr_assert_str_eq(two.base_id, base.config_id, "cumulative on the same base");
	cr_assert_eq(folder_keys(two.config_id, "%del/"), 1);
	cr_assert_eq(folder_keys(two.config_id, ""), 3);

	/* every read resolves: agree_read, agree_read_at, agree_read_config */
	agree_snapshot s = {};
	read_ok(&s);
	cr_assert_str_eq(s.config_id, two.config_id);
	cr_assert_str_eq(s.delta.base_id, base.config_id);
	cr_assert_eq(json_object_size(json_object_get(s.files, "big")), 999);
	cr_assert_str_eq(big_value(&s, "k0007"), "changed");
	cr_assert_null(big_value(&s, "k0009"));
	cr_assert_str_eq(big_value(&s, "k0999"), "v");
	json_auto_t *want = json_incref(s.files);
	agree_snapshot_done(&s);

	agree_error err = {};
	cr_assert_eq(agree_read_config_sync(t.client, PREFIX, one.config_id, &s, &err), 0, "%s", err.message);
	cr_assert_str_eq(big_value(&s, "k0007"), "changed");
	cr_assert_str_eq(big_value(&s, "k0009"), "v");
	agree_snapshot_done(&s);

	/* history names the bases */
	agree_folders f = {};
	cr_assert_eq(agree_history_sync(t.client, PREFIX, &f, &err), 0, "%s", err.message);
	cr_assert_str_eq(f.v[0].id, two.config_id);
	cr_assert_str_eq(f.v[0].base, base.config_id);
	cr_assert_eq(f.v[0].n_deleted, 1);
	cr_assert_null(f.v[2].base);
	agree_folders_done(&f);

	/* the collection keeps the base however little history is kept */
	cr_assert_geq(agree_collect_sync(t.client, PREFIX, 0, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(folder_keys(base.config_id, ""), 1000, "the base was collected");
	cr_assert_eq(folder_keys(one.config_id, ""), 0, "the old delta stayed");
	read_ok(&s);
	cr_assert(tree_equal(s.files, want));
	agree_snapshot_done(&s);

	agree_owned_result *all[] = { &base, &one, &two };
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		agree_owned_result_done(all[i]);
}

typedef struct at_read {
	bool done;
	agree_snapshot s;
	agree_error err;
} at_read;

static void on_at(const agree_snapshot *s, const agree_error *err, void *userdata) {
	at_read *a = userdata;
	a->done = true;
	if (err)
		a->err = *err;
	if (s) {
		a->s = *(agree_snapshot *) s;
		*(agree_snapshot *) s = (agree_snapshot){};
	}
}

static bool at_done(void *ud) {
	return ((at_read *) ud)->done;
}

Test(agree_delta, read_at_a_revision_resolves_at_that_revision) {
	agree_owned_result base = propose((change){ .n = 600, .value = "v" });
	agree_owned_result one = propose((change){ .path = "k0001", .value = "one" });
	agree_owned_result two = propose((change){ .path = "k0001", .value = "two" });
	cr_assert_str_eq(two.base_id, base.config_id);

	at_read a = {};
	cr_assert_eq(agree_read_at(t.client, PREFIX, one.config_id, strlen(one.config_id), one.revision, on_at, &a,
				   NULL), 0);
	cr_assert(et_run_until(&t, at_done, &a, 10 * USEC_PER_SEC));
	cr_assert_eq(a.err.code, 0, "%s", a.err.message);
	cr_assert_eq(a.s.revision, one.revision);
	cr_assert_str_eq(big_value(&a.s, "k0001"), "one");
	cr_assert_eq(json_object_size(json_object_get(a.s.files, "big")), 600);
	agree_snapshot_done(&a.s);
	agree_owned_result_done(&base);
	agree_owned_result_done(&one);
	agree_owned_result_done(&two);
}

Test(agree_delta, a_delta_without_its_base_is_missing_and_names_both) {
	agree_owned_result base = propose((change){ .n = 600, .value = "v" });
	agree_owned_result one = propose((change){ .path = "k0001", .value = "x" });
	cr_assert_str_eq(one.base_id, base.config_id);

	delete_folder(base.config_id);
	agree_snapshot s = {};
	agree_error err = {};
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -ENOENT);
	cr_assert(strstr(err.message, one.config_id) && strstr(err.message, base.config_id) &&
			  strstr(err.message, "missing"),
		  "%s", err.message);
	agree_snapshot_done(&s);
	cr_assert_eq(agree_read_config_sync(t.client, PREFIX, one.config_id, &s, &err), -ENOENT);
	cr_assert(strstr(err.message, base.config_id), "%s", err.message);
	agree_snapshot_done(&s);

	/* a change that needs the config is refused, writing nothing */
	int64_t rev = et_revision(etcd);
	agree_options o = { .prefix = PREFIX, .proposer = "t1" };
	change c = { .path = "k0002", .value = "y" };
	agree_owned_result r = {};
	cr_assert_eq(agree_propose_sync(t.client, &o, change_fn, &c, &r), -ENOENT);
	cr_assert(strstr(r.error.message, base.config_id), "%s", r.error.message);
	cr_assert_eq(et_revision(etcd), rev);
	agree_owned_result_done(&r);

	/* a base that is itself a delta: unreadable, named */
	char mk[256];
	snprintf(mk, sizeof mk, PREFIX "/configs/%s/%%base/other_1", base.config_id);
	cr_assert_eq(hx_etcd_put(etcd, mk, "other_1"), 0);
	cr_assert_eq(agree_read_sync(t.client, PREFIX, false, &s, &err), -EBADMSG);
	cr_assert(strstr(err.message, "itself a delta"), "%s", err.message);
	agree_snapshot_done(&s);
	agree_owned_result_done(&base);
	agree_owned_result_done(&one);
}

Test(agree_delta, a_hand_written_complete_folder_reads_and_bases_a_delta) {
	/* written as DESIGN.md allows: keys by hand, then current */
	for (unsigned i = 0; i < 300; i++) {
		char k[128], v[32];
		snprintf(k, sizeof k, PREFIX "/configs/hand_1/big/k%04u", i);
		snprintf(v, sizeof v, "%u", i);
		cr_assert_eq(hx_etcd_put(etcd, k, v), 0);
	}
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "hand_1"), 0);
	agree_snapshot s = {};
	read_ok(&s);
	cr_assert_null(s.delta.base_id);
	cr_assert_eq(json_object_size(json_object_get(s.files, "big")), 300);
	agree_snapshot_done(&s);

	agree_owned_result one = propose((change){ .path = "k0001", .value = "x" });
	cr_assert_str_eq(one.base_id, "hand_1");
	read_ok(&s);
	cr_assert_str_eq(big_value(&s, "k0001"), "x");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(s.files, "big"), "k0299")), 299);
	agree_snapshot_done(&s);
	agree_owned_result_done(&one);
}

Test(agree_delta, a_delta_past_its_cap_becomes_a_complete_folder) {
	agree_owned_result base = propose((change){ .n = 400, .value = "v" });
	agree_owned_result last = {};
	unsigned deltas = 0;

	/* 400 leaves: the cap is 28; the 29th changed leaf goes complete */
	for (unsigned i = 0; i < 29; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%04u", i);
		agree_owned_result_done(&last);
		last = propose((change){ .path = k, .value = "w" });
		if (last.base_id) {
			cr_assert_str_eq(last.base_id, base.config_id);
			deltas++;
		}
	}
	cr_assert_eq(deltas, 28);
	cr_assert_null(last.base_id, "the 29th change did not write a complete folder");
	cr_assert_eq(folder_keys(last.config_id, ""), 400);
	_cleanup_free_ char *complete = strdup(last.config_id);
	agree_owned_result_done(&last);
	last = propose((change){ .path = "k0399", .value = "w" });
	cr_assert_str_eq(last.base_id, complete, "the next delta is on the new complete folder");
	agree_snapshot s = {};
	read_ok(&s);
	cr_assert_str_eq(big_value(&s, "k0000"), "w");
	cr_assert_str_eq(big_value(&s, "k0200"), "v");
	cr_assert_str_eq(big_value(&s, "k0399"), "w");
	agree_snapshot_done(&s);
	agree_owned_result_done(&last);
	agree_owned_result_done(&base);
}

/* ---- partial reads (agree_options.partial: what `corralctl config set` asks) ---------- */

static agree_owned_result propose_partial(const char *scope, change c) {
	agree_options o = { .prefix = PREFIX, .proposer = "t1", .scope = scope, .partial = true };
	agree_owned_result r = {};

	(void) agree_propose_sync(t.client, &o, change_fn, &c, &r);
	return r;
}

static int nested_fn(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	tree_error terr = {};
	json_auto_t *segs = json_pack("[sss]", "big", "k0001", "x"), *v = json_integer(1);
	int r = tree_set(files, segs, v, &terr);
	if (r < 0)
		snprintf(err, err_size, "%s: %s", terr.path, terr.message);
	return r < 0 ? r : 0;
}

Test(agree_delta, partial_changes_read_their_scope_and_splice_the_delta) {
	agree_owned_result base = propose((change){ .n = 1000, .value = "v" });

	/* a set: one leaf read, one written; the change saw only its region */
	agree_owned_result one = propose_partial("big/k0001", (change){ .path = "k0001", .value = "one" });
	cr_assert(one.committed, "%s", one.error.message);
	cr_assert_str_eq(one.base_id, base.config_id);
	cr_assert_eq(json_object_size(json_object_get(one.files, "big")), 1, "the change saw more than its scope");
	cr_assert_eq(json_array_size(one.diff), 1);
	cr_assert_eq(folder_keys(one.config_id, ""), 2);

	/* on that delta: the old delta's leaf carried, a deletion added (a
	 * delete empties the parent it can see: read whole, still a delta,
	 * and never a "big" = {} leaf beside big's other leaves) */
	agree_owned_result two = propose_partial("big/k0002", (change){ .path = "k0002" });
	cr_assert(two.committed, "%s", two.error.message);
	cr_assert_str_eq(two.base_id, base.config_id);
	cr_assert_eq(folder_keys(two.config_id, ""), 3, "marker, k0001 carried, the deletion of k0002");
	cr_assert_eq(folder_keys(two.config_id, "%del/"), 1);
	agree_snapshot s = {};
	read_ok(&s);
	cr_assert_str_eq(big_value(&s, "k0001"), "one");
	cr_assert_null(big_value(&s, "k0002"));
	cr_assert_eq(json_object_size(json_object_get(s.files, "big")), 999);
	agree_snapshot_done(&s);

	/* a leaf on the path is seen: the same refusal as a whole read */
	int64_t rev = et_revision(etcd);
	agree_options o = { .prefix = PREFIX, .proposer = "t1", .scope = "big/k0001/x", .partial = true };
	agree_owned_result bad = {};
	cr_assert_eq(agree_propose_sync(t.client, &o, nested_fn, NULL, &bad), -ENOTDIR, "%s", bad.error.message);
	agree_owned_result_done(&bad);
	/* a change outside its scope is refused */
	agree_owned_result out = propose_partial("big/k0003", (change){ .path = "k0004", .value = "x" });
	cr_assert_eq(out.error.code, -EINVAL, "%s", out.error.message);
	cr_assert(strstr(out.error.message, "outside its scope"), "%s", out.error.message);
	cr_assert_eq(et_revision(etcd), rev, "a refused change wrote");

	/* a small config: the whole read, a complete folder, as without */
	agree_owned_result small = propose((change){ .n = 10, .value = "s" });
	agree_owned_result three = propose_partial("big/k0001", (change){ .path = "k0001", .value = "3" });
	cr_assert(three.committed, "%s", three.error.message);
	cr_assert_null(three.base_id);
	cr_assert_eq(json_object_size(json_object_get(three.files, "big")), 10);

	agree_owned_result *all[] = { &base, &one, &two, &out, &small, &three };
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		agree_owned_result_done(all[i]);
}

Test(agree_delta, partial_change_past_its_cap_reads_whole_and_writes_complete) {
	agree_owned_result base = propose((change){ .n = 200, .value = "v" }), last = {};
	unsigned deltas = 0;

	for (unsigned i = 0; i < 21; i++) {
		char k[16], scope[32];
		snprintf(k, sizeof k, "k%04u", i);
		snprintf(scope, sizeof scope, "big/%s", k);
		agree_owned_result_done(&last);
		last = propose_partial(scope, (change){ .path = k, .value = "w" });
		cr_assert(last.committed, "%s", last.error.message);
		deltas += last.base_id != NULL;
	}
	cr_assert_eq(deltas, 20, "the cap of 200 leaves");
	cr_assert_null(last.base_id);
	cr_assert_eq(folder_keys(last.config_id, ""), 200);
	agree_snapshot s = {};
	read_ok(&s);
	cr_assert_str_eq(big_value(&s, "k0020"), "w");
	cr_assert_str_eq(big_value(&s, "k0021"), "v");
	agree_snapshot_done(&s);
	agree_owned_result_done(&last);
	agree_owned_result_done(&base);
}

Test(agree_delta, partial_change_on_a_delta_without_its_base_reports_it) {
	agree_owned_result base = propose((change){ .n = 600, .value = "v" });
	agree_owned_result one = propose_partial("big/k0001", (change){ .path = "k0001", .value = "x" });
	cr_assert_str_eq(one.base_id, base.config_id);
	delete_folder(base.config_id);
	agree_owned_result r = propose_partial("big/k0002", (change){ .path = "k0002", .value = "y" });
	cr_assert_eq(r.error.code, -ENOENT, "%s", r.error.message);
	cr_assert(strstr(r.error.message, base.config_id), "%s", r.error.message);
	agree_owned_result_done(&r);
	agree_owned_result_done(&one);
	agree_owned_result_done(&base);
}
