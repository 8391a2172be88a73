/* test_tree.c — the config tree <-> etcd leaves module (src/tree/tree.c):
 * round trips of a real CMS config and of 500 random documents with nasty
 * keys, the leaf invariants, every unflatten fault, segment escaping over
 * every byte and every three-byte escape, paths, get/set/delete, CLI
 * values, diffs and the file format. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "esc.h"
#include "json-test.h"
#include "macro.h"
#include "tree.h"

/* ---- helpers ----------------------------------------------------------------- */

static void tree_leaves_donep(tree_leaves *l) {
	tree_leaves_done(l);
}
#define _cleanup_leaves_ _cleanup_(tree_leaves_donep)

static char *dump(json_t *v) {
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

static const tree_leaf *leaf_find(const tree_leaves *l, const char *path) {
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].path, path))
			return &l->v[i];
	return NULL;
}

static void expect_leaf(const tree_leaves *l, const char *path, const char *value) {
	const tree_leaf *f = leaf_find(l, path);
	cr_assert_not_null(f, "no leaf \"%s\"", path);
	cr_assert_str_eq(f->value, value, "leaf \"%s\"", path);
}

/* text is exactly what jansson writes compactly, keys sorted, with each
 * real at a precision of its own: the value with every real replaced by a
 * marker string, dumped by jansson, must match text piece by piece, and
 * each real's text in between must be jansson's at some precision. */
#define REAL_MARK "\001corral-real-\001"

static void reals_to_marks(json_t *v, json_t *reals) {
	const char *key;
	size_t key_len, i;
	json_t *c;

	if (json_is_object(v)) {
		json_object_keylen_foreach(v, key, key_len, c) {
			if (json_is_real(c)) {
				json_array_append(reals, c);
				json_object_setn_new_nocheck(v, key, key_len, json_string(REAL_MARK));
			} else
				reals_to_marks(c, reals);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c) {
			if (json_is_real(c)) {
				json_array_append(reals, c);
				json_array_set_new(v, i, json_string(REAL_MARK));
			} else
				reals_to_marks(c, reals);
		}
	}
}

static bool is_compact_text(const char *text) {
	json_auto_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	json_auto_t *reals = json_array();
	if (!v)
		return false;
	if (json_is_real(v))
		return true;    /* checked by the format tests */
	reals_to_marks(v, reals);       /* in jansson's order, not sorted: */
	_cleanup_free_ char *tmpl = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!tmpl)
		return false;
	/* ... so the reals are matched by value, each mark against any */
	const char *mark = "\"\\u0001corral-real-\\u0001\"";
	const char *t = text, *m = tmpl;
	for (;;) {
		const char *next = strstr(m, mark);
		size_t piece = next ? (size_t) (next - m) : strlen(m);
		if (strncmp(t, m, piece) != 0)
			return false;
		t += piece;
		if (!next)
			return *t == '\0';
		m = next + strlen(mark);
		bool found = false;
		size_t i;
		json_t *r;
		json_array_foreach(reals, i, r) {
			for (int p = 0; p <= 17 && !found; p++) {
				_cleanup_free_ char *d = json_dumps(r, JSON_ENCODE_ANY | JSON_REAL_PRECISION(p));
				const char *rest = t + strlen(d);
				/* "0.1" is a prefix of "0.10000000000000001": the
				 * next byte must be the template's */
				if (strncmp(t, d, strlen(d)) == 0 && *rest == *m) {
					t = rest;
					found = true;
				}
			}
			if (found)
				break;
		}
		if (!found)
			return false;
	}
}

/* Everything tree.h promises about a flatten, then back. */
static void expect_round_trip(json_t *files) {
	_cleanup_leaves_ tree_leaves l = { 0 };
	int r = tree_flatten(files, &l);
	cr_assert_eq(r, 0, "flatten: %d", r);

	for (size_t i = 0; i < l.n; i++) {
		const tree_leaf *f = &l.v[i];
		cr_assert_not_null(f->path);
		cr_assert_not_null(f->value);
		if (i > 0)
			cr_assert_lt(strcmp(l.v[i - 1].path, f->path), 0, "sorted and unique: \"%s\" then \"%s\"",
				     l.v[i - 1].path, f->path);
		cr_assert(is_compact_text(f->value), "leaf \"%s\" is not compact JSON: %s", f->path, f->value);

		json_auto_t *v = J(f->value);
		cr_assert(!json_is_object(v) || json_object_size(v) == 0, "leaf \"%s\" holds an object", f->path);

		/* the leaf is the document's value at its path */
		json_auto_t *segs = NULL;
		tree_error err;
		cr_assert_eq(tree_path_parse(f->path, &segs, &err), 0, "\"%s\": %s", f->path, err.message);
		cr_assert(tree_equal(tree_get(files, segs), v), "leaf \"%s\"", f->path);
	}

	json_auto_t *back = NULL;
	tree_error err;
	r = tree_unflatten(l.v, l.n, &back, &err);
	cr_assert_eq(r, 0, "unflatten: %d %s: %s", r, err.path, err.message);
	cr_assert(tree_equal(files, back), "round trip differs");
	cr_assert_str_eq(err.path, "");

	/* order does not matter: reversed */
	tree_leaf *rev = calloc(l.n ? l.n : 1, sizeof *rev);
	cr_assert_not_null(rev);
	for (size_t i = 0; i < l.n; i++)
		rev[i] = l.v[l.n - 1 - i];
	json_auto_t *back2 = NULL;
	r = tree_unflatten(rev, l.n, &back2, &err);
	free(rev);
	cr_assert_eq(r, 0);
	cr_assert(tree_equal(files, back2));

	/* and flattening again gives the same leaves, byte for byte */
	_cleanup_leaves_ tree_leaves l2 = { 0 };
	cr_assert_eq(tree_flatten(back, &l2), 0);
	cr_assert_eq(l2.n, l.n);
	for (size_t i = 0; i < l.n; i++) {
		cr_assert_str_eq(l2.v[i].path, l.v[i].path);
		cr_assert_str_eq(l2.v[i].value, l.v[i].value);
	}
}

static void expect_unflatten_error(const tree_leaf *leaves, size_t n, const char *path, const char *msg_part) {
	json_t *out = (json_t *) 0x1;
	tree_error err;
	int r = tree_unflatten(leaves, n, &out, &err);
	cr_assert_eq(r, -EINVAL, "want -EINVAL for \"%s\", got %d", path, r);
	cr_assert_null(out);
	cr_assert_str_eq(err.path, ESC(path));
	cr_assert_not_null(strstr(err.message, msg_part), "message \"%s\" lacks \"%s\"", err.message, msg_part);
}

/* ---- a real CMS config -------------------------------------------------------- */

static const char CMS_CONFIG[] =
	"{\"cms\": {"
	"  \"_help\": \"There is no way to put comments in a JSON file; the fields starting with '_' are comments.\","
	"  \"temp_dir\": \"/tmp\", \"backdoor\": false, \"file_log_debug\": false,"
	"  \"core_services\": {"
	"    \"LogService\": [[\"10.0.0.1\", 29000]],"
	"    \"ResourceService\": [[\"10.0.0.1\", 28000], [\"10.0.0.2\", 28000]],"
	"    \"ScoringService\": [[\"10.0.0.1\", 28500]],"
	"    \"Checker\": [[\"10.0.0.1\", 22000]],"
	"    \"EvaluationService\": [[\"10.0.0.1\", 25000]],"
	"    \"Worker\": [[\"10.0.0.1\", 26000], [\"10.0.0.1\", 26001], [\"10.0.0.2\", 26000]],"
	"    \"ContestWebServer\": [[\"10.0.0.1\", 21000], [\"10.0.0.2\", 21000]],"
	"    \"AdminWebServer\": [[\"10.0.0.1\", 21100]],"
	"    \"ProxyService\": [[\"10.0.0.1\", 28600]],"
	"    \"PrintingService\": [[\"10.0.0.1\", 25123]]"
	"  },"
	"  \"other_services\": {},"
	"  \"database\": \"postgresql+psycopg2://cmsuser:your_password_here@localhost:5432/cmsdb\","
	"  \"database_debug\": false, \"twophase_commit\": false, \"keep_sandbox\": false,"
	"  \"use_cgroups\": true, \"sandbox_implementation\": \"isolate\","
	"  \"max_file_size\": 1048576, \"compilation_sandbox_max_processes\": 1000,"
	"  \"compilation_sandbox_max_time_s\": 10.0, \"trusted_sandbox_max_time_s\": 10.5,"
	"  \"compilation_sandbox_max_memory_kib\": 524288,"
	"  \"contest_listen_address\": [\"\"], \"contest_listen_port\": [8888],"
	"  \"cookie_duration\": 10800, \"submit_local_copy\": true,"
	"  \"submit_local_copy_path\": \"%s/submissions/\", \"tests_local_copy\": true,"
	"  \"is_proxy_used\": null, \"num_proxies_used\": null,"
	"  \"max_submission_length\": 100000, \"max_input_length\": 5000000,"
	"  \"stl_path\": \"/usr/share/cppreference/doc/html/\","
	"  \"admin_listen_address\": \"\", \"admin_listen_port\": 8889,"
	"  \"rankings\": [\"http://usern4me:passw0rd@localhost:8890/\"],"
	"  \"https_certfile\": null, \"printer\": null, \"paper_size\": \"A4\","
	"  \"max_pages_per_job\": 10, \"pdf_printing_allowed\": false,"
	"  \"secret_key\": \"8e045a51e4b102ea803c06f92841a1fb\","
	"  \"tx_pages\": [],"
	"  \"motd\": \"Bienvenue \\u00e0 l'\\u00e9preuve \\u2014 \\u65e5\\u672c\\u8a9e \\\"q\\\" \\\\ back\\tslash\\n"
	"\\u0001 \\ud83d\\ude00 nul:\\u0000.\","
	"  \"weird\": {\"a/b\": 1, \"%\": 2, \"%2F\": 3, \"\": 4, \"%25\": {\"/\": [true, {\"x/y\": {}}]},"
	"             \"0.1\": 0.1, \"neg\": -12345678901234, \"tiny\": 1e-7, \"big\": 1.7976931348623157e308,"
	"             \"max\": 9223372036854775807, \"min\": -9223372036854775808, \"sum\": 0.30000000000000004,"
	"             \"\\u00e9t\\u00e9\": \"\\u00e9\", \"a b\": \" \", \"x.y\": {\"z\": []}}"
	"},"
	"\"ranking\": {"
	"  \"bind_address\": \"\", \"http_port\": 8890, \"https_port\": null,"
	"  \"username\": \"usern4me\", \"password\": \"passw0rd\", \"realm_name\": \"Scoreboard\","
	"  \"buffer_size\": 4096, \"log_dir\": \"/var/local/log/cms/ranking\", \"conf\": {}"
	"},"
	"\"motd.txt\": \"Good luck!\", \"replicas\": 3, \"flags\": [], \"nothing\": null, \"empty\": {}}";

static json_t *cms_config(void) {
	json_t *files = J(CMS_CONFIG);
	json_t *cms = json_object_get(files, "cms");

	/* keys jansson cannot read from JSON text: NUL bytes */
	cr_assert_eq(json_object_setn_new(cms, "nul\0key", 7, json_integer(7)), 0);
	cr_assert_eq(json_object_setn_new(cms, "\0", 1, json_pack("{s:[i,s]}", "in", 1, "x")), 0);
	cr_assert_eq(json_object_setn_new(files, "file\0name", 9, json_string("f")), 0);

	/* 50 levels deep */
	json_t *v = json_string("bottom");
	for (int i = 49; i >= 0; i--) {
		char k[16];
		snprintf(k, sizeof k, "l%d", i);
		json_t *o = json_object();
		cr_assert_eq(json_object_set_new(o, k, v), 0);
		v = o;
	}
	cr_assert_eq(json_object_set_new(files, "deep", v), 0);
	return files;
}

Test(tree, cms_config_round_trip) {
	json_auto_t *files = cms_config();
	expect_round_trip(files);
}

Test(tree, cms_config_leaves) {
	json_auto_t *files = cms_config();
	_cleanup_leaves_ tree_leaves l = { 0 };
	cr_assert_eq(tree_flatten(files, &l), 0);

	expect_leaf(&l, "cms/core_services/Worker",
		    "[[\"10.0.0.1\",26000],[\"10.0.0.1\",26001],[\"10.0.0.2\",26000]]");
	expect_leaf(&l, "cms/other_services", "{}");
	expect_leaf(&l, "cms/tx_pages", "[]");
	expect_leaf(&l, "cms/is_proxy_used", "null");
	expect_leaf(&l, "cms/backdoor", "false");
	expect_leaf(&l, "cms/use_cgroups", "true");
	expect_leaf(&l, "cms/max_file_size", "1048576");
	expect_leaf(&l, "cms/compilation_sandbox_max_time_s", "10.0");
	expect_leaf(&l, "cms/trusted_sandbox_max_time_s", "10.5");
	expect_leaf(&l, "cms/contest_listen_address", "[\"\"]");
	expect_leaf(&l, "cms/submit_local_copy_path", "\"%s/submissions/\"");
	expect_leaf(&l, "cms/weird/a%2Fb", "1");
	expect_leaf(&l, "cms/weird/%25", "2");
	expect_leaf(&l, "cms/weird/%252F", "3");
	expect_leaf(&l, "cms/weird/%", "4");
	expect_leaf(&l, "cms/weird/%2525/%2F", "[true,{\"x/y\":{}}]");
	expect_leaf(&l, "cms/weird/0.1", "0.1");
	expect_leaf(&l, "cms/weird/sum", "0.30000000000000004");
	expect_leaf(&l, "cms/weird/tiny", "1e-7");
	expect_leaf(&l, "cms/weird/big", "1.7976931348623157e308");
	expect_leaf(&l, "cms/weird/max", "9223372036854775807");
	expect_leaf(&l, "cms/weird/min", "-9223372036854775808");
	expect_leaf(&l, "cms/weird/\xc3\xa9t\xc3\xa9", "\"\xc3\xa9\"");
	expect_leaf(&l, "cms/weird/a b", "\" \"");
	expect_leaf(&l, "cms/weird/x.y/z", "[]");
	expect_leaf(&l, "cms/nul%00key", "7");
	expect_leaf(&l, "cms/%00/in", "[1,\"x\"]");
	expect_leaf(&l, "cms/motd",
		    "\"Bienvenue \xc3\xa0 l'\xc3\xa9preuve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
		    "\\\"q\\\" \\\\ back\\tslash\\n\\u0001 \xf0\x9f\x98\x80 nul:\\u0000.\"");
	expect_leaf(&l, "ranking/conf", "{}");
	expect_leaf(&l, "ranking/http_port", "8890");
	expect_leaf(&l, "motd.txt", "\"Good luck!\"");
	expect_leaf(&l, "replicas", "3");
	expect_leaf(&l, "flags", "[]");
	expect_leaf(&l, "nothing", "null");
	expect_leaf(&l, "empty", "{}");
	expect_leaf(&l, "file%00name", "\"f\"");

	char deep[400] = "deep";
	for (int i = 0; i < 50; i++)
		snprintf(deep + strlen(deep), sizeof deep - strlen(deep), "/l%d", i);
	expect_leaf(&l, deep, "\"bottom\"");

	/* one leaf per non-object value or empty object: count them */
	cr_assert_eq(l.n, 81, "%zu leaves", l.n);
}

Test(tree, scalar_files) {
	json_auto_t *files = J("{\"a.txt\": \"hello\\n\", \"n\": 1, \"r\": 2.5, \"t\": true, \"f\": false,"
			       " \"z\": null, \"arr\": [1, [2, {}], {\"k\": \"v\"}], \"s\": \"\"}");
	expect_round_trip(files);

	_cleanup_leaves_ tree_leaves l = { 0 };
	cr_assert_eq(tree_flatten(files, &l), 0);
	cr_assert_eq(l.n, 8);
	const char *want[][2] = {
		{ "a.txt", "\"hello\\n\"" }, { "arr", "[1,[2,{}],{\"k\":\"v\"}]" },
		{ "f", "false" },            { "n", "1" },
		{ "r", "2.5" },              { "s", "\"\"" },
		{ "t", "true" },             { "z", "null" },
	};
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		cr_assert_str_eq(l.v[i].path, want[i][0]);
		cr_assert_str_eq(l.v[i].value, want[i][1]);
	}
}

Test(tree, empty_files_object) {
	json_auto_t *files = json_object();
	_cleanup_leaves_ tree_leaves l = { .v = (tree_leaf *) 0x1, .n = 99 };
	cr_assert_eq(tree_flatten(files, &l), 0);
	cr_assert_eq(l.n, 0);
	expect_round_trip(files);

	json_auto_t *back = NULL;
	cr_assert_eq(tree_unflatten(NULL, 0, &back, NULL), 0);
	cr_assert(json_is_object(back));
	cr_assert_eq(json_object_size(back), 0);
}

Test(tree, empty_objects_are_leaves) {
	json_auto_t *files = J("{\"cms\": {}, \"x\": {\"a\": {}, \"b\": {\"c\": {}}}, \"\": {}}");
	_cleanup_leaves_ tree_leaves l = { 0 };
	cr_assert_eq(tree_flatten(files, &l), 0);
	cr_assert_eq(l.n, 4);
	cr_assert_str_eq(l.v[0].path, "%");
	cr_assert_str_eq(l.v[1].path, "cms");
	cr_assert_str_eq(l.v[2].path, "x/a");
	cr_assert_str_eq(l.v[3].path, "x/b/c");
	for (size_t i = 0; i < l.n; i++)
		cr_assert_str_eq(l.v[i].value, "{}");
	expect_round_trip(files);
}

Test(tree, leaves_sorted_bytewise) {
	/* '/' (0x2F) sorts after '.' and '-', and UTF-8 after ASCII: the order
	 * is by the escaped path's bytes, not by segments */
	json_auto_t *files = J("{\"a\": {\"b\": 1, \"\\u00e9\": 2, \"B\": 3}, \"a.b\": 4, \"a-\": 5, \"a~\": 6,"
			       " \"\\u00e9\": 7, \"Z\": 8}");
	_cleanup_leaves_ tree_leaves l = { 0 };
	cr_assert_eq(tree_flatten(files, &l), 0);
	const char *want[] = { "Z", "a-", "a.b", "a/B", "a/b", "a/\xc3\xa9", "a~", "\xc3\xa9" };
	cr_assert_eq(l.n, ELEMENTSOF(want));
	for (size_t i = 0; i < l.n; i++)
		cr_assert_str_eq(l.v[i].path, want[i], "leaf %zu", i);
	expect_round_trip(files);
}

Test(tree, flatten_refuses) {
	_cleanup_leaves_ tree_leaves l = { .v = (tree_leaf *) 0x1, .n = 3 };
	json_auto_t *arr = J("[1]");
	json_auto_t *str = J("\"x\"");
	cr_assert_eq(tree_flatten(arr, &l), -EINVAL);
	cr_assert_eq(l.n, 0);
	cr_assert_null(l.v);
	cr_assert_eq(tree_flatten(str, &l), -EINVAL);
	cr_assert_eq(tree_flatten(NULL, &l), -EINVAL);

	/* a NUL byte in a key inside an array could not be read back */
	json_auto_t *files = J("{\"f\": {\"ok\": 1, \"list\": [1, {}]}}");
	json_t *o = json_object_get(json_object_get(files, "f"), "list");
	json_t *inner = json_array_get(o, 1);
	cr_assert_eq(json_object_setn_new(inner, "a\0b", 3, json_true()), 0);
	cr_assert_eq(tree_flatten(files, &l), -EINVAL);
	cr_assert_eq(l.n, 0);
	cr_assert_null(l.v);
}

/* ---- 500 random documents ---------------------------------------------------- */

static uint64_t rng_state = UINT64_C(0x243F6A8885A308D3);
static uint64_t rng(void) {
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(0x2545F4914F6CDD1D);
}
static unsigned rnd(unsigned n) {
	return (unsigned) (rng() >> 33) % n;
}

static const struct {
	const char *s;
	size_t len;
} PIECES[] = {
	{ "a", 1 },  { "b", 1 },    { "Z", 1 },          { "/", 1 },   { "%", 1 },
	{ "%2F", 3 }, { "%25", 3 }, { "%00", 3 },        { "\0", 1 },  { "\xc3\xa9", 2 },
	{ "\xf0\x9f\x98\x80", 4 }, { "\xe6\x97\xa5", 3 }, { "\xc2\x80", 2 }, { " ", 1 }, { "\"", 1 },
	{ "\\", 1 }, { "\n", 1 },   { ".", 1 },          { "~", 1 },   { "\x7f", 1 },
};

/* 0..4 pieces; NUL only when allowed. */
static size_t rand_text(char *buf, bool allow_nul) {
	size_t len = 0;
	for (unsigned n = rnd(5), i = 0; i < n; i++) {
		unsigned k;
		do
			k = rnd(ELEMENTSOF(PIECES));
		while (!allow_nul && PIECES[k].s[0] == '\0');
		memcpy(buf + len, PIECES[k].s, PIECES[k].len);
		len += PIECES[k].len;
	}
	return len;
}

static double rand_real(void) {
	static const double special[] = {
		0.1, 0.30000000000000004, 1e300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
		-0.0, 1.0, 100.0, 1e22, 0.5, 1.0 / 3, 9007199254740993.0, 4503599627370496.0,
	};
	if (rnd(2))
		return special[rnd(ELEMENTSOF(special))] * (rnd(2) ? 1 : -1);
	if (rnd(2))
		return ldexp(1.0, (int) rnd(2000) - 1000);  /* powers of two */
	for (;;) {
		uint64_t bits = rng();
		double d;
		memcpy(&d, &bits, sizeof d);
		if (isfinite(d))
			return d;
	}
}

static json_t *rand_value(int depth, bool in_array);

static json_t *rand_object(int depth, bool in_array) {
	char buf[64];
	json_t *o = json_object();
	for (unsigned n = rnd(6), i = 0; i < n; i++) {
		size_t len = rand_text(buf, !in_array);
		cr_assert_eq(json_object_setn_new(o, buf, len, rand_value(depth - 1, in_array)), 0);
	}
	return o;
}

static json_t *rand_value(int depth, bool in_array) {
	char buf[64];
	size_t len;
	unsigned kind = rnd(depth > 0 ? 10 : 7);

	switch (kind) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(rnd(2));
	case 2: {
		static const json_int_t special[] = { INT64_MIN, INT64_MAX, 0, -1, 1, 26000 };
		return json_integer(rnd(2) ? special[rnd(ELEMENTSOF(special))] : (json_int_t) rng());
	}
	case 3:
		return json_real(rand_real());
	case 4:
	case 5:
	case 6:
		/* strings may hold NUL anywhere */
		len = rand_text(buf, true);
		return json_stringn(buf, len);
	case 7:
	case 8:
		return rand_object(depth, in_array);
	default: {
		json_t *a = json_array();
		for (unsigned n = rnd(5), i = 0; i < n; i++)
			cr_assert_eq(json_array_append_new(a, rand_value(depth - 1, true)), 0);
		return a;
	}
	}
}

Test(tree, random_documents_round_trip) {
	size_t leaves = 0, nul_keys = 0;
	for (int doc = 0; doc < 500; doc++) {
		json_auto_t *files = json_object();
		for (unsigned n = rnd(6), i = 0; i < n; i++) {
			char buf[64];
			size_t len = rand_text(buf, true);
			nul_keys += memchr(buf, '\0', len) != NULL;
			/* files are mostly objects, as configs are */
			json_t *v = rnd(3) ? rand_object(1 + (int) rnd(6), false) : rand_value((int) rnd(4), false);
			cr_assert_eq(json_object_setn_new(files, buf, len, v), 0);
		}
		expect_round_trip(files);

		_cleanup_leaves_ tree_leaves l = { 0 };
		cr_assert_eq(tree_flatten(files, &l), 0);
		leaves += l.n;
	}
	/* the generator did produce something worth testing */
	cr_assert_gt(leaves, 2000, "%zu leaves", leaves);
	cr_assert_gt(nul_keys, 20, "%zu file names with NUL", nul_keys);
}

/* ---- unflatten faults ---------------------------------------------------------- */

Test(tree, unflatten_value_not_json) {
	tree_leaf a[] = { { "cms/x", "1" }, { "cms/y", "{bad" } };
	expect_unflatten_error(a, 2, "cms/y", "value is not JSON");
	tree_leaf b[] = { { "cms/x", "" } };
	expect_unflatten_error(b, 1, "cms/x", "value is not JSON");
	tree_leaf c[] = { { "cms/x", "hello" } };
	expect_unflatten_error(c, 1, "cms/x", "value is not JSON");
	tree_leaf d[] = { { "cms/x", "[1,2] 3" } };
	expect_unflatten_error(d, 1, "cms/x", "value is not JSON");
	tree_leaf e[] = { { "x", "{\"a\":1,\"a\":2}" } };
	expect_unflatten_error(e, 1, "x", "duplicate");
	tree_leaf f[] = { { "x", NULL } };
	expect_unflatten_error(f, 1, "x", "without a value");
	tree_leaf g[] = { { NULL, "1" } };
	expect_unflatten_error(g, 1, "", "without a path");
}

Test(tree, unflatten_bad_escapes) {
	static const char *bad[] = { "%2", "%zz", "%2f", "%41", "%0", "a%", "%%", "%%25", "x%20y", "%2F%", "%3F" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char path[32];
		snprintf(path, sizeof path, "cms/%s/z", bad[i]);
		tree_leaf l[] = { { path, "1" } };
		expect_unflatten_error(l, 1, path, "bad escape");
	}
	/* the message names the escape */
	tree_leaf l[] = { { "cms/a%zzb", "1" } };
	json_t *out = NULL;
	tree_error err;
	cr_assert_eq(tree_unflatten(l, 1, &out, &err), -EINVAL);
	cr_assert_not_null(strstr(err.message, "\"%zz\""), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "\"a%zzb\""), "%s", err.message);
}

Test(tree, unflatten_empty_segments) {
	static const char *bad[] = { "a//b", "a/", "/a", "/", "//", "a/b/" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		tree_leaf l[] = { { (char *) bad[i], "1" } };
		expect_unflatten_error(l, 1, bad[i], "empty segment");
	}
	tree_leaf e[] = { { "", "1" } };
	expect_unflatten_error(e, 1, "", "empty path");
	tree_leaf u[] = { { "a/\xff", "1" } };
	expect_unflatten_error(u, 1, "a/\xff", "UTF-8");
}

Test(tree, unflatten_leaf_is_also_parent) {
	tree_leaf a[] = { { "a", "1" }, { "a/b", "2" } };
	expect_unflatten_error(a, 2, "a/b", "\"a\" is a leaf and also the parent of \"a/b\"");
	tree_leaf b[] = { { "a/b", "2" }, { "a", "1" } };      /* any order */
	expect_unflatten_error(b, 2, "a/b", "\"a\" is a leaf");
	tree_leaf c[] = { { "x/a", "{}" }, { "x/a/b/c", "1" } };
	expect_unflatten_error(c, 2, "x/a/b/c", "\"x/a\" is a leaf");
	tree_leaf d[] = { { "a.b", "1" }, { "a", "[1]" }, { "a-c", "1" }, { "a/b", "2" } };
	expect_unflatten_error(d, 4, "a/b", "\"a\" is a leaf");
	/* a non-empty object leaf (hand-written) is still a leaf */
	tree_leaf e[] = { { "a", "{\"b\":1}" }, { "a/c", "2" } };
	expect_unflatten_error(e, 2, "a/c", "\"a\" is a leaf");

	/* near misses are fine: "a" and "ab/c", "a%2Fb" is not under "a" */
	tree_leaf ok[] = { { "a", "1" }, { "ab/c", "2" }, { "a%2Fb", "3" }, { "a.b/c", "4" } };
	json_auto_t *out = NULL;
	tree_error err;
	cr_assert_eq(tree_unflatten(ok, ELEMENTSOF(ok), &out, &err), 0, "%s", err.message);
	json_auto_t *want = J("{\"a\": 1, \"ab\": {\"c\": 2}, \"a/b\": 3, \"a.b\": {\"c\": 4}}");
	cr_assert(tree_equal(out, want));
}

Test(tree, unflatten_duplicate_path) {
	tree_leaf a[] = { { "cms/x", "1" }, { "cms/y", "2" }, { "cms/x", "1" } };
	expect_unflatten_error(a, 3, "cms/x", "twice");
	tree_leaf b[] = { { "%", "1" }, { "%", "2" } };
	expect_unflatten_error(b, 2, "%", "twice");
}

Test(tree, unflatten_first_fault_in_path_order) {
	/* several faults: the one at the smallest path is named, in any order */
	tree_leaf a[] = { { "z", "{bad" }, { "b//c", "1" }, { "m/%zz", "1" } };
	expect_unflatten_error(a, 3, "b//c", "empty segment");
	tree_leaf b[] = { { "m/%zz", "1" }, { "z", "{bad" }, { "b//c", "1" } };
	expect_unflatten_error(b, 3, "b//c", "empty segment");
}

/* The faults of a partial unflatten, as "path: message" lines, in order. */
static char *faults_text(const tree_leaf *l, size_t n, json_t **out) {
	tree_fault *f = NULL;
	size_t nf = 0;
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	cr_assert_eq(tree_unflatten_partial(l, n, out, &f, &nf), 0);
	cr_assert_not_null(*out);
	for (size_t i = 0; i < nf; i++)
		fprintf(m, "%s: %s\n", l[f[i].leaf].path, f[i].message);
	fclose(m);
	free(f);
	return text;
}

Test(tree, unflatten_partial_keeps_the_good_leaves) {
	/* nothing wrong: the same as tree_unflatten, no faults */
	tree_leaf ok[] = { { "cms/a", "1" }, { "r", "[2]" } };
	json_auto_t *o1 = NULL;
	_cleanup_free_ char *t1 = faults_text(ok, 2, &o1);
	cr_assert_str_eq(t1, "");
	json_auto_t *w1 = J("{\"cms\": {\"a\": 1}, \"r\": [2]}");
	cr_assert(tree_equal(o1, w1));

	/* every kind of fault, in any order: each leaf named once, in path
	 * order; the parent of others is the bad one, its children stay */
	tree_leaf bad[] = {
		{ "z/y", "{bad" }, { "cms/good", "true" }, { "m/%zz", "1" }, { "p", "1" }, { "p/c", "2" },
		{ "p/d/e", "3" },  { "b//c", "1" },          { "d", "{\"k\":1,\"k\":2}" }, { "z/ok", "4" },
		{ "cms/good", "true" },
	};
	json_auto_t *o2 = NULL;
	_cleanup_free_ char *t2 = faults_text(bad, ELEMENTSOF(bad), &o2);
	static const char *want[] = {
		"b//c: empty segment", "cms/good: the same path appears twice", "d: value is not JSON: duplicate",
		"m/%zz: bad escape \"%zz\"", "p: a leaf and also the parent of \"p/c\"", "z/y: value is not JSON",
	};
	const char *line = t2;
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		cr_assert(strncmp(line, want[i], strlen(want[i])) == 0, "fault %zu: want %s in\n%s", i, want[i], t2);
		line = strchr(line, '\n') + 1;
	}
	cr_assert_str_eq(line, "", "%s", t2);
	json_auto_t *w2 = J("{\"cms\": {\"good\": true}, \"p\": {\"c\": 2, \"d\": {\"e\": 3}}, \"z\": {\"ok\": 4}}");
	cr_assert(tree_equal(o2, w2));

	/* a leaf without a path is the caller's bug */
	tree_leaf np[] = { { NULL, "1" } };
	json_t *o3 = NULL;
	tree_fault *f3 = NULL;
	size_t n3 = 0;
	cr_assert_eq(tree_unflatten_partial(np, 1, &o3, &f3, &n3), -EINVAL);
	cr_assert_null(o3);
}

Test(tree, path_within) {
	cr_assert(tree_path_within("cms/a", ""));
	cr_assert(tree_path_within("cms", "cms"));
	cr_assert(tree_path_within("cms/a/b", "cms"));
	cr_assert(tree_path_within("cms/a/b", "cms/a"));
	cr_assert_not(tree_path_within("cmsx/a", "cms"));
	cr_assert_not(tree_path_within("cms", "cms/a"));
	cr_assert_not(tree_path_within("cms%2Fa", "cms"));
	cr_assert_not(tree_path_within("", "cms"));
}

Test(tree, unflatten_object_leaf_is_accepted) {
	tree_leaf a[] = { { "cms", "{\"a\":{\"b\":[1]},\"c\":{}}" }, { "r", " [ 1 , 2 ] " } };
	json_auto_t *out = NULL;
	tree_error err;
	cr_assert_eq(tree_unflatten(a, 2, &out, &err), 0, "%s", err.message);
	json_auto_t *want = J("{\"cms\": {\"a\": {\"b\": [1]}, \"c\": {}}, \"r\": [1, 2]}");
	cr_assert(tree_equal(out, want));

	_cleanup_leaves_ tree_leaves l = { 0 };
	cr_assert_eq(tree_flatten(out, &l), 0);
	cr_assert_eq(l.n, 3);
	expect_leaf(&l, "cms/a/b", "[1]");
	expect_leaf(&l, "cms/c", "{}");
	expect_leaf(&l, "r", "[1,2]");
}

/* ---- segments --------------------------------------------------------------- */

static void expect_unescape(const char *seg, size_t len, const char *key, size_t key_len) {
	/* an exact-size copy, so ASan catches reading past len */
	char *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, seg, len);
	char *out = NULL;
	size_t out_len = 9999;
	int r = tree_segment_unescape(copy, len, &out, &out_len);
	free(copy);
	cr_assert_eq(r, 0, "unescape \"%.*s\": %d", (int) len, seg, r);
	cr_assert_eq(out_len, key_len, "unescape \"%.*s\"", (int) len, seg);
	cr_assert_eq(memcmp(out, key, key_len), 0, "unescape \"%.*s\"", (int) len, seg);
	cr_assert_eq(out[out_len], '\0');
	free(out);
}

static void expect_unescape_fails(const char *seg, size_t len) {
	char *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, seg, len);
	char *out = NULL;
	size_t out_len = 0;
	int r = tree_segment_unescape(copy, len, &out, &out_len);
	free(copy);
	if (r == 0)
		free(out);
	cr_assert_eq(r, -EINVAL, "unescape \"%.*s\" (%zu bytes): want -EINVAL, got %d", (int) len, seg, len, r);
}

Test(tree, segment_every_single_byte) {
	for (int b = 0; b < 256; b++) {
		char key = (char) b;
		_cleanup_free_ char *e = tree_segment_escape(&key, 1);
		cr_assert_not_null(e);
		const char *want = b == '%' ? "%25" : b == '/' ? "%2F" : b == 0 ? "%00" : NULL;
		if (want)
			cr_assert_str_eq(e, want, "byte %d", b);
		else {
			cr_assert_eq(strlen(e), 1, "byte %d", b);
			cr_assert_eq((unsigned char) e[0], b, "byte %d", b);
		}
		expect_unescape(e, strlen(e), &key, 1);
	}
}

Test(tree, segment_every_two_bytes_round_trip) {
	for (int b0 = 0; b0 < 256; b0++)
		for (int b1 = 0; b1 < 256; b1++) {
			char key[2] = { (char) b0, (char) b1 };
			_cleanup_free_ char *e = tree_segment_escape(key, 2);
			cr_assert_not_null(e);
			size_t elen = strlen(e);
			size_t want = 2 + 2 * (size_t) ((b0 == '%' || b0 == '/' || b0 == 0) +
							(b1 == '%' || b1 == '/' || b1 == 0));
			cr_assert_eq(elen, want, "%02x%02x -> \"%s\"", b0, b1, e);
			cr_assert_null(strchr(e, '/'));
			char *out = NULL;
			size_t out_len = 0;
			cr_assert_eq(tree_segment_unescape(e, elen, &out, &out_len), 0);
			cr_assert_eq(out_len, 2);
			cr_assert_eq(memcmp(out, key, 2), 0, "%02x%02x", b0, b1);
			free(out);
		}
}

Test(tree, segment_every_three_byte_escape) {
	/* "%XY" for all X, Y: only the three escapes the encoder writes */
	size_t accepted = 0;
	for (int x = 0; x < 256; x++)
		for (int y = 0; y < 256; y++) {
			char seg[3] = { '%', (char) x, (char) y };
			char *out = NULL;
			size_t out_len = 0;
			int r = tree_segment_unescape(seg, 3, &out, &out_len);
			bool ok = (x == '2' && (y == '5' || y == 'F')) || (x == '0' && y == '0');
			cr_assert_eq(r, ok ? 0 : -EINVAL, "\"%%%c%c\" (%02x %02x): %d", x, y, x, y, r);
			if (r == 0) {
				accepted++;
				cr_assert_eq(out_len, 1);
				cr_assert_eq(out[0], x == '0' ? '\0' : y == '5' ? '%' : '/');
				free(out);
			}
		}
	cr_assert_eq(accepted, 3);
}

Test(tree, segment_tricky_strings) {
	static const struct {
		const char *key;
		size_t len;
		const char *esc;
	} v[] = {
		{ "", 0, "%" },
		{ "%", 1, "%25" },
		{ "%%", 2, "%25%25" },
		{ "%25", 3, "%2525" },
		{ "%2F", 3, "%252F" },
		{ "/", 1, "%2F" },
		{ "//", 2, "%2F%2F" },
		{ "a/b/c", 5, "a%2Fb%2Fc" },
		{ "\0\0", 2, "%00%00" },
		{ "a\0", 2, "a%00" },
		{ "\xe6\x97\xa5/\xe8\xaa\x9e", 7, "\xe6\x97\xa5%2F\xe8\xaa\x9e" },
		{ "10.0.0.1:26000", 14, "10.0.0.1:26000" },
		{ " sp ace ", 8, " sp ace " },
		{ "\\\"\n\t", 4, "\\\"\n\t" },
		{ "~!@#$^&*()+=?", 13, "~!@#$^&*()+=?" },
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		_cleanup_free_ char *e = tree_segment_escape(v[i].key, v[i].len);
		cr_assert_not_null(e);
		cr_assert_str_eq(e, v[i].esc, "case %zu", i);
		expect_unescape(v[i].esc, strlen(v[i].esc), v[i].key, v[i].len);
	}
	expect_unescape("%2525", 5, "%25", 3);
	expect_unescape("%253", 4, "%3", 2);

	expect_unescape_fails("", 0);
	expect_unescape_fails("a/b", 3);
	expect_unescape_fails("/", 1);
	expect_unescape_fails("a\0b", 3);
	expect_unescape_fails("\0", 1);
	expect_unescape_fails("%%", 2);
	expect_unescape_fails("a%", 2);
	expect_unescape_fails("%2", 2);
	expect_unescape_fails("%25%", 4);
	expect_unescape_fails("%zz", 3);
	expect_unescape_fails("%2f", 3);
	expect_unescape_fails("%41", 3);
	expect_unescape_fails("%%25", 4);
	/* "%" only means the empty key when it is the whole segment */
	expect_unescape_fails("%x", 2);
	/* len counts, not the NUL: "%25" cut to 2 bytes is "%2" */
	expect_unescape_fails("%25", 2);
	expect_unescape("%25", 1, "", 0);
}

/* ---- paths --------------------------------------------------------------------- */

static void expect_path(const char *path, const char *want_json) {
	json_auto_t *segs = NULL;
	tree_error err;
	int r = tree_path_parse(path, &segs, &err);
	cr_assert_eq(r, 0, "\"%s\": %d %s", path, r, err.message);
	json_auto_t *want = J(want_json);
	cr_assert(tree_equal(segs, want), "\"%s\"", path);
}

static void expect_path_error(const char *path, const char *msg_part) {
	json_t *segs = (json_t *) 0x1;
	tree_error err;
	int r = tree_path_parse(path, &segs, &err);
	cr_assert_eq(r, -EINVAL, "\"%s\": %d", path ? path : "(null)", r);
	cr_assert_eq(segs, (json_t *) 0x1, "output untouched on failure");
	/* the path as messages show it: control bytes and bad UTF-8 escaped */
	cr_assert_str_eq(err.path, path ? ESC(path) : "");
	cr_assert_not_null(strstr(err.message, msg_part), "\"%s\": %s", path ? path : "(null)", err.message);
}

Test(tree, path_parse) {
	expect_path("cms", "[\"cms\"]");
	expect_path("cms/core_services/Worker", "[\"cms\", \"core_services\", \"Worker\"]");
	expect_path("cms/a%2Fb/%25/%/x", "[\"cms\", \"a/b\", \"%\", \"\", \"x\"]");
	expect_path("%/%", "[\"\", \"\"]");
	expect_path("a%00b", "[\"a\\u0000b\"]");
	expect_path("\xc3\xa9t\xc3\xa9/ /.", "[\"\\u00e9t\\u00e9\", \" \", \".\"]");
	expect_path("10.0.0.1:80", "[\"10.0.0.1:80\"]");

	expect_path_error("", "empty path");
	expect_path_error(NULL, "empty path");
	expect_path_error("/cms", "empty segment");
	expect_path_error("cms/", "empty segment");
	expect_path_error("cms//x", "empty segment");
	expect_path_error("cms/%2f", "bad escape \"%2f\"");
	expect_path_error("cms/%zz", "bad escape \"%zz\"");
	expect_path_error("cms/x%", "bad escape \"%\"");
	expect_path_error("cms/x%2", "bad escape \"%2\"");
	expect_path_error("cms/\xc3", "not valid UTF-8");
	expect_path_error("cms/%00%FF", "bad escape \"%FF\"");
	expect_path_error("\xed\xa0\x80", "not valid UTF-8");     /* a surrogate */

	/* the error buffer takes a long path, cut */
	char longp[600];
	memset(longp, 'a', sizeof longp);
	longp[sizeof longp - 2] = '/';
	longp[sizeof longp - 1] = '\0';
	json_auto_t *segs = NULL;
	tree_error err;
	cr_assert_eq(tree_path_parse(longp, &segs, &err), -EINVAL);
	cr_assert_eq(strlen(err.path), sizeof err.path - 1);
	cr_assert_eq(tree_path_parse("", &segs, NULL), -EINVAL);   /* err may be NULL */
}

/* ---- get / set / delete ---------------------------------------------------------- */

static json_t *P(const char *path) {
	json_t *segs = NULL;
	tree_error err;
	cr_assert_eq(tree_path_parse(path, &segs, &err), 0, "%s: %s", path, err.message);
	return segs;
}

Test(tree, get) {
	json_auto_t *files = J("{\"cms\": {\"a/b\": {\"c\": [1, 2]}, \"n\": 5, \"\": \"empty\"}, \"r\": \"x\"}");
	json_auto_t *p1 = P("cms/a%2Fb/c"), *p2 = P("cms/n"), *p3 = P("cms/%"), *p4 = P("cms/missing"),
		    *p5 = P("cms/n/x"), *p6 = P("cms/a%2Fb/c/0"), *p7 = P("r"), *p8 = P("nope/x");
	json_auto_t *w1 = J("[1, 2]");
	cr_assert(tree_equal(tree_get(files, p1), w1));
	cr_assert_eq(json_integer_value(tree_get(files, p2)), 5);
	cr_assert_str_eq(json_string_value(tree_get(files, p3)), "empty");
	cr_assert_null(tree_get(files, p4));
	cr_assert_null(tree_get(files, p5), "through a number");
	cr_assert_null(tree_get(files, p6), "arrays are not walked");
	cr_assert_str_eq(json_string_value(tree_get(files, p7)), "x");
	cr_assert_null(tree_get(files, p8));

	json_auto_t *none = json_array();
	cr_assert_eq(tree_get(files, none), files);
	json_auto_t *bad = J("[\"cms\", 1]");
	cr_assert_null(tree_get(files, bad));
	cr_assert_null(tree_get(files, NULL));
}

Test(tree, set_creates_parents) {
	json_auto_t *files = json_object();
	json_auto_t *p = P("cms/core_services/Worker");
	json_auto_t *v = J("[[\"10.0.0.1\", 26000]]");
	tree_error err;
	cr_assert_eq(tree_set(files, p, v, &err), 1);
	json_auto_t *want = J("{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000]]}}}");
	cr_assert(tree_equal(files, want));

	/* the value was copied: changing ours does not change files */
	cr_assert_eq(json_array_append_new(v, json_true()), 0);
	cr_assert(tree_equal(files, want));

	/* again, the same value: unchanged */
	json_auto_t *v2 = J("[[\"10.0.0.1\", 26000]]");
	cr_assert_eq(tree_set(files, p, v2, &err), 0);
	cr_assert(tree_equal(files, want));

	/* a sibling, below an existing parent */
	json_auto_t *p2 = P("cms/core_services/Checker");
	cr_assert_eq(tree_set(files, p2, v2, &err), 1);
	cr_assert_eq(json_object_size(json_object_get(json_object_get(files, "cms"), "core_services")), 2);

	/* escaped segments become the real keys */
	json_auto_t *p3 = P("cms/a%2Fb/%/%25/x%00y");
	json_auto_t *one = json_integer(1);
	cr_assert_eq(tree_set(files, p3, one, &err), 1);
	json_t *x = json_object_get(json_object_get(json_object_get(json_object_get(files, "cms"), "a/b"), ""), "%");
	cr_assert_not_null(x);
	cr_assert_not_null(json_object_getn(x, "x\0y", 3));
	cr_assert_null(json_object_get(x, "x"));
}

Test(tree, set_changes_and_replaces) {
	json_auto_t *files = J("{\"cms\": {\"port\": 1, \"sub\": {\"a\": 1, \"b\": 2}, \"r\": 1.0}}");
	tree_error err;
	json_auto_t *port = P("cms/port"), *sub = P("cms/sub"), *r = P("cms/r"), *file = P("cms");
	json_auto_t *two = J("2"), *s = J("\"1\""), *obj = J("{\"z\": null}"), *int1 = J("1"),
		    *empty = J("{}");

	cr_assert_eq(tree_set(files, port, two, &err), 1);
	cr_assert_eq(tree_set(files, port, s, &err), 1, "string \"1\" is not 2");
	cr_assert_eq(tree_set(files, port, s, &err), 0);
	cr_assert_eq(tree_set(files, r, int1, &err), 1, "integer 1 is not real 1.0");
	cr_assert_eq(tree_set(files, sub, obj, &err), 1, "a subtree replaced whole");
	json_auto_t *want = J("{\"cms\": {\"port\": \"1\", \"sub\": {\"z\": null}, \"r\": 1}}");
	cr_assert(tree_equal(files, want));

	/* a whole file */
	cr_assert_eq(tree_set(files, file, empty, &err), 1);
	cr_assert_eq(tree_set(files, file, empty, &err), 0);
	json_auto_t *want2 = J("{\"cms\": {}}");
	cr_assert(tree_equal(files, want2));
}

Test(tree, set_through_non_object) {
	json_auto_t *files = J("{\"cms\": {\"port\": 1, \"list\": [{\"a\": 1}], \"s\": \"x\"}, \"top\": null}");
	json_auto_t *before = tree_copy(files);
	json_auto_t *v = J("5");
	tree_error err;

	static const struct {
		const char *path, *at, *type;
	} c[] = {
		{ "cms/port/x", "cms/port", "a number" },
		{ "cms/port/x/y/z", "cms/port", "a number" },
		{ "cms/list/0/a", "cms/list", "an array" },
		{ "cms/s/x", "cms/s", "a string" },
		{ "top/x", "top", "null" },
	};
	for (size_t i = 0; i < ELEMENTSOF(c); i++) {
		json_auto_t *p = P(c[i].path);
		cr_assert_eq(tree_set(files, p, v, &err), -ENOTDIR, "%s", c[i].path);
		cr_assert_str_eq(err.path, c[i].at);
		cr_assert_not_null(strstr(err.message, c[i].type), "%s", err.message);
		cr_assert_not_null(strstr(err.message, "not an object"), "%s", err.message);
		cr_assert(tree_equal(files, before), "files unchanged after %s", c[i].path);
	}

	/* the path in the message is escaped */
	json_auto_t *files2 = json_object();
	cr_assert_eq(json_object_setn_new(files2, "a/b\0", 4, json_integer(1)), 0);
	json_auto_t *p = P("a%2Fb%00/x");
	cr_assert_eq(tree_set(files2, p, v, &err), -ENOTDIR);
	cr_assert_str_eq(err.path, "a%2Fb%00");

	/* bad arguments */
	json_auto_t *none = json_array();
	json_auto_t *arr = json_array();
	cr_assert_eq(tree_set(files, none, v, &err), -EINVAL);
	cr_assert_eq(tree_set(arr, p, v, &err), -EINVAL);
	cr_assert_eq(tree_set(files, p, NULL, &err), -EINVAL);
	cr_assert_eq(tree_set(files, NULL, v, NULL), -EINVAL);
}

Test(tree, set_compares_nul_keys) {
	/* jansson's json_equal would call these equal (it looks up "a") */
	json_auto_t *files = J("{\"f\": {\"a\": 1, \"b\": 2}}");
	json_auto_t *v = json_object();
	cr_assert_eq(json_object_setn_new(v, "a\0x", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_set_new(v, "b", json_integer(2)), 0);
	json_auto_t *p = P("f");
	tree_error err;
	cr_assert_eq(tree_set(files, p, v, &err), 1);
	json_t *f = json_object_get(files, "f");
	cr_assert_not_null(json_object_getn(f, "a\0x", 3), "the NUL key survived the copy");
	cr_assert_null(json_object_get(f, "a"));
	cr_assert_eq(tree_set(files, p, v, &err), 0);
}

Test(tree, delete) {
	json_auto_t *files = J("{\"cms\": {\"a\": {\"b\": 1}, \"n\": 2, \"%\": 3}, \"r\": {\"x\": 1}}");
	json_auto_t *ab = P("cms/a/b"), *n = P("cms/n"), *pct = P("cms/%25"), *missing = P("cms/zz"),
		    *through = P("cms/n/x"), *deep = P("nope/a/b"), *r = P("r");

	cr_assert_eq(tree_delete(files, ab), 1);
	cr_assert_eq(tree_delete(files, ab), 0, "already gone");
	json_auto_t *w1 = J("{\"cms\": {\"a\": {}, \"n\": 2, \"%\": 3}, \"r\": {\"x\": 1}}");
	cr_assert(tree_equal(files, w1), "the emptied parent stays, as {}");

	cr_assert_eq(tree_delete(files, missing), 0);
	cr_assert_eq(tree_delete(files, deep), 0);
	cr_assert_eq(tree_delete(files, pct), 1);
	cr_assert_eq(tree_delete(files, through), 0, "through a number: absent");
	cr_assert_eq(tree_delete(files, n), 1);
	cr_assert_eq(tree_delete(files, r), 1, "a whole file");
	json_auto_t *w2 = J("{\"cms\": {\"a\": {}}}");
	cr_assert(tree_equal(files, w2));

	json_auto_t *none = json_array();
	cr_assert_eq(tree_delete(files, none), -EINVAL);
	cr_assert_eq(tree_delete(files, NULL), -EINVAL);
	cr_assert_eq(tree_delete(NULL, n), -EINVAL);
}

Test(tree, delete_nul_key) {
	json_auto_t *files = json_object();
	json_t *f = json_object();
	cr_assert_eq(json_object_set_new(files, "f", f), 0);
	cr_assert_eq(json_object_setn_new(f, "a\0b", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_set_new(f, "a", json_integer(2)), 0);
	json_auto_t *p = P("f/a%00b");
	cr_assert_eq(tree_delete(files, p), 1);
	cr_assert_eq(json_object_size(f), 1);
	cr_assert_eq(json_integer_value(json_object_get(f, "a")), 2);
}

/* ---- tree_equal / tree_copy ----------------------------------------------------- */

Test(tree, equal_and_copy) {
	json_auto_t *a = J("{\"x\": [1, 2.5, \"s\", null, true, false, {}, []], \"y\": {\"z\": {}}}");
	json_auto_t *b = J("{\"y\": {\"z\": {}}, \"x\": [1, 2.5, \"s\", null, true, false, {}, []]}");
	cr_assert(tree_equal(a, b));
	cr_assert(tree_equal(a, a));
	cr_assert(tree_equal(NULL, NULL));
	cr_assert(!tree_equal(a, NULL));

	static const char *diff[][2] = {
		{ "1", "1.0" }, { "true", "false" }, { "null", "false" }, { "[1,2]", "[2,1]" }, { "[1]", "[1,1]" },
		{ "{\"a\":1}", "{\"a\":1,\"b\":1}" }, { "{\"a\":1}", "{\"b\":1}" }, { "\"a\"", "\"a\\u0000\"" },
		{ "{}", "[]" }, { "\"1\"", "1" },
	};
	for (size_t i = 0; i < ELEMENTSOF(diff); i++) {
		json_auto_t *x = J(diff[i][0]), *y = J(diff[i][1]);
		cr_assert(!tree_equal(x, y), "%s vs %s", diff[i][0], diff[i][1]);
		cr_assert(!tree_equal(y, x), "%s vs %s", diff[i][1], diff[i][0]);
	}

	/* NUL keys: jansson 2.14's json_equal gets this wrong (documented in
	 * tree.h); tree_equal must not */
	json_auto_t *n1 = J("{\"a\": 1, \"b\": 2}");
	json_auto_t *n2 = json_object();
	cr_assert_eq(json_object_setn_new(n2, "a\0x", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_set_new(n2, "b", json_integer(2)), 0);
	cr_assert(!tree_equal(n1, n2));
	cr_assert(!tree_equal(n2, n1));

	json_auto_t *c = tree_copy(n2);
	cr_assert(tree_equal(c, n2));
	cr_assert_neq(c, n2);
	cr_assert_not_null(json_object_getn(c, "a\0x", 3));
	json_auto_t *c2 = tree_copy(a);
	cr_assert(tree_equal(c2, a));
	cr_assert_neq(json_object_get(c2, "x"), json_object_get(a, "x"), "deep");
	cr_assert_null(tree_copy(NULL));
}

/* ---- CLI values -------------------------------------------------------------------- */

static json_t *value_parse(const char *text, bool as_string, int want) {
	tree_dups dups = { 0 };
	tree_error err;
	json_t *v = (json_t *) 0x1;
	int r = tree_value_parse(text, as_string, &v, &dups, &err);
	cr_assert_eq(r, want, "\"%s\": %d, want %d (%s)", text ? text : "(null)", r, want, err.message);
	if (r < 0)
		cr_assert_null(v);
	tree_dups_done(&dups);
	return v;
}

static void expect_value(const char *text, const char *want_json) {
	json_auto_t *v = value_parse(text, false, 0);
	json_auto_t *want = J(want_json);
	cr_assert(tree_equal(v, want), "\"%s\"", text);
}

static void expect_string(const char *text) {
	json_auto_t *v = value_parse(text, false, 0);
	cr_assert(json_is_string(v), "\"%s\" is a string", text);
	cr_assert_str_eq(json_string_value(v), text);
	/* and --string stores any text as itself */
	json_auto_t *s = value_parse(text, true, 0);
	cr_assert_str_eq(json_string_value(s), text);
}

/* Text that looks like JSON must be JSON: refused with jansson's reason;
 * --string takes it as it is. */
static void expect_refused(const char *text, const char *msg_part) {
	tree_dups dups = { 0 };
	tree_error err;
	json_t *v = NULL;
	cr_assert_eq(tree_value_parse(text, false, &v, &dups, &err), -EINVAL, "\"%s\" was taken", text);
	cr_assert_null(v);
	cr_assert_eq(dups.n, 0);
	cr_assert(strstr(err.message, "not JSON") && strstr(err.message, msg_part), "\"%s\": %s", text, err.message);
	json_auto_t *s = value_parse(text, true, 0);
	cr_assert_str_eq(json_string_value(s), text);
}

Test(tree, value_parse) {
	expect_value("1", "1");
	expect_value("-0", "0");
	expect_value("true", "true");
	expect_value("false", "false");
	expect_value("null", "null");
	expect_value("[1,2]", "[1,2]");
	expect_value("{\"a\":1}", "{\"a\":1}");
	expect_value("\"quoted\"", "\"quoted\"");
	expect_value("\"\"", "\"\"");
	expect_value("1.5", "1.5");
	expect_value("1e2", "100.0");
	expect_value(" [ 1 ] ", "[1]");
	expect_value("\"a\\u0000b\"", "\"a\\u0000b\"");
	expect_value("9223372036854775807", "9223372036854775807");

	/* the last of a repeated key wins, as in CMS, and it is reported */
	tree_dups dups = { 0 };
	tree_error err;
	json_auto_t *d = NULL;
	cr_assert_eq(tree_value_parse("{\"a\":1,\"a\":2}", false, &d, &dups, &err), 0);
	json_auto_t *dwant = J("{\"a\":2}");
	cr_assert(tree_equal(d, dwant));
	cr_assert_eq(dups.n, 1);
	cr_assert_str_eq(dups.v[0].key, "a");
	tree_dups_done(&dups);

	expect_string("hello");
	expect_string("hello world");
	expect_string("10.0.0.1");
	expect_string("");
	expect_string(" ");
	expect_string("01");                    /* not JSON: a leading zero */
	expect_string("0123");
	expect_string("1e999");                 /* not JSON to jansson: overflow */
	expect_string("9223372036854775808");   /* beyond 64 bits */
	expect_string("True");
	expect_string("nan");
	expect_string("1 2");
	expect_string("\xc3\xa9t\xc3\xa9");
	expect_string("'single'");
	expect_string("/path/to/file");
	expect_string("/tmp");
	expect_string("a{b");

	/* a typo in what looks like JSON is an error, not a string */
	expect_refused("{bad", "column");
	expect_refused("[1,2", "']' expected");
	expect_refused("[[\"h\",1]", "']' expected");
	expect_refused("\"unterminated", "column");
	expect_refused("  {\"a\" 1}", "':' expected");
	expect_refused("\"a\" \"b\"", "end of file expected");

	json_auto_t *n = value_parse(NULL, false, -EINVAL);
	json_auto_t *u = value_parse("\xff", false, -EILSEQ);
	json_auto_t *u2 = value_parse("\xff", true, -EILSEQ);
	json_auto_t *u3 = value_parse("\"\xff\"", false, -EINVAL);
}

/* ---- documents as CMS reads them ------------------------------------------------- */

static json_t *load(const char *text, tree_dups *dups) {
	json_error_t jerr;
	json_t *v = NULL;
	cr_assert_eq(tree_load(text, strlen(text), &v, dups, &jerr), 0, "%s: %s", text, jerr.text);
	return v;
}

Test(tree, load_repeated_keys) {
	/* shaped like CMS's cms.conf.sample: _help and _section again and
	 * again in one object, and nested objects repeating keys too */
	static const char text[] =
		"{\n"
		"    \"_help\": \"There is no way to put comments in a JSON file; the\",\n"
		"    \"_help\": \"fields starting with '_' are meant to be comments.\",\n"
		"\n"
		"    \"_section\": \"System\",\n"
		"    \"temp_dir\": \"/tmp\",\n"
		"    \"core_services\": {\n"
		"        \"LogService\": [[\"localhost\", 29000]],\n"
		"        \"Worker\": [[\"localhost\", 26000]],\n"
		"        \"Worker\": [[\"localhost\", 26001]],\n"
		"        \"list\": [{\"x\": 1, \"x\": 2}]\n"
		"    },\n"
		"    \"_help\": \"Third.\",\n"
		"    \"_section\": \"Database\",\n"
		"    \"ratio\": 0.1\n"
		"}\n";
	tree_dups dups = { 0 };
	json_auto_t *v = load(text, &dups);
	json_auto_t *want = J("{\"_help\": \"Third.\", \"_section\": \"Database\", \"temp_dir\": \"/tmp\","
			      " \"core_services\": {\"LogService\": [[\"localhost\", 29000]],"
			      " \"Worker\": [[\"localhost\", 26001]], \"list\": [{\"x\": 2}]}, \"ratio\": 0.1}");
	cr_assert(tree_equal(v, want));
	/* one entry per repeated key and object, in the order of their first
	 * repetition, with where it was and which one won */
	cr_assert_eq(dups.n, 4);
	cr_assert_str_eq(dups.v[0].key, "_help");
	cr_assert_eq(dups.v[0].line, 3);
	cr_assert_eq(dups.v[0].column, 5);
	cr_assert_eq(dups.v[0].count, 3);
	cr_assert_eq(dups.v[0].last_line, 13);
	cr_assert_str_eq(dups.v[1].key, "Worker");
	cr_assert_eq(dups.v[1].line, 10);
	cr_assert_eq(dups.v[1].count, 2);
	cr_assert_str_eq(dups.v[2].key, "x");
	cr_assert_eq(dups.v[2].line, 11);
	cr_assert_str_eq(dups.v[3].key, "_section");
	cr_assert_eq(dups.v[3].line, 14);
	cr_assert_eq(dups.v[3].last_line, 14);
	tree_dups_done(&dups);

	/* no repetition: nothing listed; the same key in two objects is none */
	json_auto_t *v2 = load("{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}, \"k\": [\"k\", \"k\"]}", &dups);
	cr_assert_eq(dups.n, 0);
	/* a key holding \u0000 and one without are two keys; the same key
	 * spelt with escapes is one */
	json_auto_t *v3 = load("{\"a\\u0041\": 1, \"aA\": 2, \"s\": \"x\\u0000y\"}", &dups);
	cr_assert_eq(dups.n, 1);
	cr_assert_str_eq(dups.v[0].key, "aA");
	cr_assert_eq(json_string_length(json_object_get(v3, "s")), 3);
	tree_dups_done(&dups);
	/* CRLF line ends count as one line each */
	json_auto_t *v4 = load("{\r\n\"a\": 1,\r\n\"a\": 2\r\n}", &dups);
	cr_assert_eq(dups.n, 1);
	cr_assert_eq(dups.v[0].line, 3);
	tree_dups_done(&dups);
}

Test(tree, load_repeated_keys_libyaml_cannot_read) {
	/* valid JSON libyaml refuses or reads otherwise: an escaped surrogate
	 * pair, a key and its ':' on two lines, a key over 1024 characters.
	 * The document is still jansson's, and the first repetition is
	 * reported where jansson found it, without a name. */
	static const char *texts[] = {
		"{\"e\": \"\\ud83d\\ude00\",\n \"a\": 1,\n \"a\": 2, \"b\": 1, \"b\": 2}",
		"{\"k\"\n: 1,\n \"a\": 1, \"a\": 2}",
		"\t{\"x\": 0,\n\"a\": 1, \"a\": 2}",
	};
	for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
		tree_dups dups = { 0 };
		json_auto_t *v = load(texts[i], &dups);
		cr_assert_eq(json_integer_value(json_object_get(v, "a")), 2, "%s", texts[i]);
		cr_assert_eq(dups.n, 1, "%s", texts[i]);
		cr_assert_null(dups.v[0].key);
		cr_assert_eq(dups.v[0].line, i == 2 ? 2 : 3, "%s: line %u", texts[i], dups.v[0].line);
		tree_dups_done(&dups);
	}
	char *big = malloc(3000);
	cr_assert_not_null(big);
	strcpy(big, "{\"");
	memset(big + 2, 'k', 1100);
	strcpy(big + 1102, "\": 1, \"a\": 1, \"a\": 2}");
	tree_dups dups = { 0 };
	json_auto_t *v = load(big, &dups);
	free(big);
	cr_assert_eq(json_object_size(v), 2);
	cr_assert_eq(dups.n, 1);
	tree_dups_done(&dups);
}

Test(tree, load_errors) {
	json_error_t jerr;
	tree_dups dups = { 0 };
	json_t *v = (json_t *) 0x1;
	cr_assert_eq(tree_load("{\"a\": 1,\n \"a\": [1,,]}", 21, &v, &dups, &jerr), -EINVAL);
	cr_assert_null(v);
	cr_assert_eq(dups.n, 0);
	cr_assert_eq(jerr.line, 2);
	cr_assert_eq(tree_load("", 0, &v, &dups, &jerr), -EINVAL);
	/* a NUL in a string is JSON ("\u0000"), a NUL byte in the text is not */
	cr_assert_eq(tree_load("\"a\\u0000\"", 9, &v, &dups, &jerr), 0);
	json_decref(v);
	cr_assert_eq(tree_load("\"a\0\"", 4, &v, &dups, &jerr), -EINVAL);
}

/* ---- diff ------------------------------------------------------------------------ */

Test(tree, diff_entries_in_order) {
	tree_leaf av[] = { { "cms/a", "1" }, { "cms/b", "\"x\"" }, { "cms/c", "[1,2]" }, { "cms/e", "{}" },
			   { "r", "null" } };
	tree_leaf bv[] = { { "cms/a", "1" }, { "cms/b", "\"y\"" }, { "cms/c", "[1, 2]" }, { "cms/d", "true" },
			   { "s", "{}" } };
	tree_leaves a = { av, ELEMENTSOF(av) }, b = { bv, ELEMENTSOF(bv) };

	json_auto_t *d = tree_diff(&a, &b);
	json_auto_t *want = J("["
			      "{\"path\": \"cms/b\", \"op\": \"change\", \"old\": \"x\", \"new\": \"y\"},"
			      "{\"path\": \"cms/d\", \"op\": \"add\", \"new\": true},"
			      "{\"path\": \"cms/e\", \"op\": \"remove\", \"old\": {}},"
			      "{\"path\": \"r\", \"op\": \"remove\", \"old\": null},"
			      "{\"path\": \"s\", \"op\": \"add\", \"new\": {}}"
			      "]");
	_cleanup_free_ char *got = dump(d);
	cr_assert(tree_equal(d, want), "%s", got);

	json_auto_t *back = tree_diff(&b, &a);
	json_auto_t *want_back = J("["
				   "{\"path\": \"cms/b\", \"op\": \"change\", \"old\": \"y\", \"new\": \"x\"},"
				   "{\"path\": \"cms/d\", \"op\": \"remove\", \"old\": true},"
				   "{\"path\": \"cms/e\", \"op\": \"add\", \"new\": {}},"
				   "{\"path\": \"r\", \"op\": \"add\", \"new\": null},"
				   "{\"path\": \"s\", \"op\": \"remove\", \"old\": {}}"
				   "]");
	cr_assert(tree_equal(back, want_back));
}

Test(tree, diff_equal_and_empty) {
	json_auto_t *files = cms_config();
	_cleanup_leaves_ tree_leaves l = { 0 }, l2 = { 0 };
	cr_assert_eq(tree_flatten(files, &l), 0);
	cr_assert_eq(tree_flatten(files, &l2), 0);
	json_auto_t *d = tree_diff(&l, &l2);
	cr_assert(json_is_array(d));
	cr_assert_eq(json_array_size(d), 0);

	tree_leaves none = { 0 };
	json_auto_t *d0 = tree_diff(&none, &none);
	cr_assert_eq(json_array_size(d0), 0);

	json_auto_t *all = tree_diff(&none, &l);
	cr_assert_eq(json_array_size(all), l.n);
	for (size_t i = 0; i < l.n; i++) {
		json_t *e = json_array_get(all, i);
		cr_assert_str_eq(json_string_value(json_object_get(e, "op")), "add");
		cr_assert_str_eq(json_string_value(json_object_get(e, "path")), l.v[i].path);
		cr_assert_null(json_object_get(e, "old"));
	}
}

Test(tree, diff_of_documents) {
	json_auto_t *a = J("{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000]]}, \"x\": 1}}");
	json_auto_t *b = tree_copy(a);
	json_auto_t *p = P("cms/core_services/Worker"), *p2 = P("cms/core_services/Checker");
	json_auto_t *v = J("[[\"10.0.0.1\", 26000], [\"10.0.0.2\", 26000]]"), *v2 = J("[]");
	cr_assert_eq(tree_set(b, p, v, NULL), 1);
	cr_assert_eq(tree_set(b, p2, v2, NULL), 1);

	_cleanup_leaves_ tree_leaves la = { 0 }, lb = { 0 };
	cr_assert_eq(tree_flatten(a, &la), 0);
	cr_assert_eq(tree_flatten(b, &lb), 0);
	json_auto_t *d = tree_diff(&la, &lb);
	json_auto_t *want = J("["
			      "{\"path\": \"cms/core_services/Checker\", \"op\": \"add\", \"new\": []},"
			      "{\"path\": \"cms/core_services/Worker\", \"op\": \"change\","
			      " \"old\": [[\"10.0.0.1\", 26000]], \"new\": [[\"10.0.0.1\", 26000], [\"10.0.0.2\", 26000]]}"
			      "]");
	cr_assert(tree_equal(d, want));
}

Test(tree, diff_non_json_leaf) {
	/* written by hand with etcdctl: shown as its text */
	tree_leaf av[] = { { "x", "oops" } };
	tree_leaf bv[] = { { "x", "\"oops\"" } };
	tree_leaves a = { av, 1 }, b = { bv, 1 };
	json_auto_t *d = tree_diff(&a, &b);
	cr_assert_eq(json_array_size(d), 0, "same value, spelt differently");
	tree_leaf cv[] = { { "x", "{bad" } };
	tree_leaves c = { cv, 1 };
	json_auto_t *d2 = tree_diff(&a, &c);
	json_auto_t *want = J("[{\"path\": \"x\", \"op\": \"change\", \"old\": \"oops\", \"new\": \"{bad\"}]");
	cr_assert(tree_equal(d2, want));
}

/* ---- file format ---------------------------------------------------------------- */

static void expect_format(json_t *v, const char *want) {
	_cleanup_free_ char *text = tree_format_json(v);
	cr_assert_not_null(text);
	cr_assert_str_eq(text, want);
}

static void expect_format_text(const char *json, const char *want) {
	json_auto_t *v = J(json);
	expect_format(v, want);
	/* and it reads back as the same value */
	json_auto_t *back = J(want);
	cr_assert(tree_equal(v, back), "%s", json);
}

Test(tree, format_json) {
	expect_format_text("{\"b\": [1, 2], \"a\": {\"c\": null, \"B\": \"\\u00e9\"}, \"e\": {}, \"d\": [],"
			   " \"\\u00e9\": 0.1, \"Z\": true}",
			   "{\n"
			   "  \"Z\": true,\n"
			   "  \"a\": {\n"
			   "    \"B\": \"\xc3\xa9\",\n"
			   "    \"c\": null\n"
			   "  },\n"
			   "  \"b\": [\n"
			   "    1,\n"
			   "    2\n"
			   "  ],\n"
			   "  \"d\": [],\n"
			   "  \"e\": {},\n"
			   "  \"\xc3\xa9\": 0.1\n"
			   "}\n");
	expect_format_text("{}", "{}\n");
	expect_format_text("[]", "[]\n");
	expect_format_text("\"hello\"", "\"hello\"\n");
	expect_format_text("\"a/b \\\"q\\\" \\n \\u0000\"", "\"a/b \\\"q\\\" \\n \\u0000\"\n");
	expect_format_text("1", "1\n");
	expect_format_text("-9223372036854775808", "-9223372036854775808\n");
	expect_format_text("true", "true\n");
	expect_format_text("null", "null\n");
	expect_format_text("[[\"10.0.0.1\", 26000]]", "[\n  [\n    \"10.0.0.1\",\n    26000\n  ]\n]\n");
	cr_assert_null(tree_format_json(NULL));
}

Test(tree, format_json_reals) {
	/* fewest digits that read back exactly */
	expect_format_text("0.1", "0.1\n");
	expect_format_text("1.0", "1.0\n");
	expect_format_text("10.5", "10.5\n");
	expect_format_text("-0.0", "-0.0\n");
	expect_format_text("1e300", "1e300\n");
	expect_format_text("1e-7", "1e-7\n");
	expect_format_text("100000000000000000000.0", "1e20\n");
	/* no exponent for a whole number below 1e16, as Python's repr */
	expect_format_text("10.0", "10.0\n");
	expect_format_text("100.0", "100.0\n");
	expect_format_text("26000.0", "26000.0\n");
	expect_format_text("-123456789.0", "-123456789.0\n");
	expect_format_text("1e15", "1000000000000000.0\n");
	expect_format_text("1e16", "1e16\n");
	expect_format_text("[100.0, 0.1, 1e-5, 0.0001]", "[\n  100.0,\n  0.1,\n  1e-5,\n  0.0001\n]\n");
	expect_format_text("123456.789", "123456.789\n");
	expect_format_text("0.30000000000000004", "0.30000000000000004\n");
	expect_format_text("5e-324", "5e-324\n");
	expect_format_text("1.7976931348623157e308", "1.7976931348623157e308\n");
	expect_format_text("[0.1, 0.25, 2.5]", "[\n  0.1,\n  0.25,\n  2.5\n]\n");
	/* each real at its own precision: 0.30000000000000004 needs 17
	 * digits, 0.1 beside it still one */
	expect_format_text("[0.1, 0.30000000000000004]", "[\n  0.1,\n  0.30000000000000004\n]\n");
	expect_format_text("{\"b\": [0.1, {\"x\": 0.30000000000000004, \"a\": 0.2}], \"a\": 1e22}",
			   "{\n  \"a\": 1e22,\n  \"b\": [\n    0.1,\n    {\n      \"a\": 0.2,\n"
			   "      \"x\": 0.30000000000000004\n    }\n  ]\n}\n");

	/* 2^-499 reads back at 15 digits but not at 16; 0.7999999999999999
	 * needs 16: together they need 17 */
	json_auto_t *pair = J("[6.1098727269992094e-151, 0.7999999999999999]");
	_cleanup_free_ char *ptext = tree_format_json(pair);
	json_auto_t *pback = J(ptext);
	cr_assert(tree_equal(pair, pback), "%s", ptext);
	cr_assert_eq(json_real_value(json_array_get(pair, 0)), ldexp(1.0, -499));

	/* every real the generator makes reads back as itself, in a file and
	 * in a leaf */
	for (int i = 0; i < 5000; i++) {
		json_auto_t *r = json_real(rand_real());
		_cleanup_free_ char *text = tree_format_json(r);
		json_auto_t *back = J(text);
		cr_assert(tree_equal(r, back), "%.17g -> %s", json_real_value(r), text);

		json_auto_t *files = json_pack("{s:[O,f]}", "f", r, 0.1);
		_cleanup_leaves_ tree_leaves l = { 0 };
		cr_assert_eq(tree_flatten(files, &l), 0);
		json_auto_t *lv = J(l.v[0].value);
		cr_assert(tree_equal(json_object_get(files, "f"), lv), "%s", l.v[0].value);
		const char *end = l.v[0].value + strlen(l.v[0].value) - strlen(",0.1]");
		cr_assert_str_eq(end, ",0.1]", "0.1 beside %.17g: %s", json_real_value(r), l.v[0].value);
	}
}

Test(tree, format_json_nul_key) {
	/* jansson cannot read this back, but it is what the file holds */
	json_auto_t *v = json_object();
	cr_assert_eq(json_object_setn_new(v, "a\0b", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_set_new(v, "a", json_integer(0)), 0);
	expect_format(v, "{\n  \"a\": 0,\n  \"a\\u0000b\": 1\n}\n");
}

/* ---- names in messages ------------------------------------------------------------ */

static bool has_control(const char *s) {
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

Test(tree, messages_escape_control_bytes) {
	char buf[ESC_MAX];
	cr_assert_str_eq(esc_msg(buf, sizeof buf, "a\nb\tc\rd\x1b[31m\\", 13), "a\\nb\\tc\\rd\\x1b[31m\\\\");
	cr_assert_str_eq(esc_msg(buf, sizeof buf, "n\0l", 3), "n\\x00l");
	cr_assert_str_eq(esc_msg(buf, sizeof buf, "\xc3\xa9t\xc3\xa9 \x7f", 7), "\xc3\xa9t\xc3\xa9 \\x7f");
	/* bad UTF-8 and C1 controls (U+009B is a terminal's CSI) */
	cr_assert_str_eq(esc_msg(buf, sizeof buf, "\xff\xc2\x9b\xed\xa0\x80", 6), "\\xff\\xc2\\x9b\\xed\\xa0\\x80");
	char small[12];
	cr_assert_str_eq(esc_msg(small, sizeof small, "abcdefghijklmnop", 16), "abcdefgh...");
	cr_assert_str_eq(esc_msg(small, sizeof small, "\n\n\n\n\n", 5), "\\n\\n\\n\\n...");
	cr_assert_str_eq(ESC(NULL), "(null)");

	/* every message naming a key or path */
	tree_error err;
	json_auto_t *segs = NULL;
	cr_assert_eq(tree_path_parse("cms/\x1b[2J%zz", &segs, &err), -EINVAL);
	cr_assert(!has_control(err.path) && !has_control(err.message), "%s: %s", err.path, err.message);
	cr_assert(strstr(err.message, "\\x1b[2J"), "%s", err.message);
	tree_leaf l[] = { { "a\n", "1" }, { "a\n/b", "2" } };
	json_t *out = NULL;
	cr_assert_eq(tree_unflatten(l, 2, &out, &err), -EINVAL);
	cr_assert(!has_control(err.path) && !has_control(err.message), "%s: %s", err.path, err.message);
	cr_assert(strstr(err.message, "a\\n"), "%s", err.message);
	tree_leaf bad[] = { { "k\x07", "\"\x01\"" } };
	cr_assert_eq(tree_unflatten(bad, 1, &out, &err), -EINVAL);
	cr_assert(!has_control(err.path) && !has_control(err.message), "%s: %s", err.path, err.message);
	json_auto_t *files = J("{\"a\\u0001\": 1}");
	json_auto_t *p = NULL;
	cr_assert_eq(tree_path_parse("a\x01/b", &p, &err), 0);
	json_auto_t *one = json_integer(1);
	cr_assert_eq(tree_set(files, p, one, &err), -ENOTDIR);
	cr_assert(!has_control(err.path) && !has_control(err.message), "%s: %s", err.path, err.message);
	/* and jansson's own text: no control byte, no flag name */
	json_error_t jerr;
	json_t *nul = json_loads("\"a\\u0000\"", JSON_DECODE_ANY, &jerr);
	cr_assert_null(nul);
	cr_assert_null(strstr(ESC_JERR(&jerr), "JSON_"), "%s", ESC_JERR(&jerr));
	cr_assert(strstr(ESC_JERR(&jerr), "NUL"), "%s", ESC_JERR(&jerr));
	json_t *ctl = json_loads("[\x01]", 0, &jerr);
	cr_assert_null(ctl);
	cr_assert(!has_control(ESC_JERR(&jerr)), "%s", ESC_JERR(&jerr));
}
