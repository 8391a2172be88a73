/* test_toml.c — the TOML emitter (src/tree/toml.c, format: toml): the exact
 * text for each shape (table order, arrays of tables nested in each other,
 * inline tables in mixed arrays, keys and strings that need escapes, reals
 * kept floats), the errors (null in an array, a file that is not an
 * object), and Python's tomllib reading every rendered TOML as json reads
 * the JSON render of the same value (tests/toml_check.py): each shape
 * here, a CMS-like config, and 500 random documents. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "json-test.h"
#include "macro.h"
#include "tree.h"

static char *toml(json_t *v) {
	char *out = NULL;
	tree_error e;
	int r = tree_format_toml("f", v, &out, &e);
	cr_assert_eq(r, 0, "tree_format_toml: %d %s: %s", r, e.path, e.message);
	cr_assert_not_null(out);
	return out;
}

/* Writes v's JSON render and TOML render as dir/NAME.json and dir/NAME.toml. */
static void write_pair(const char *dir, const char *name, json_t *v) {
	_cleanup_free_ char *t = toml(v), *j = tree_format_json(v), *pj = NULL, *pt = NULL;
	cr_assert_not_null(j);
	cr_assert_geq(asprintf(&pj, "%s/%s.json", dir, name), 0);
	cr_assert_geq(asprintf(&pt, "%s/%s.toml", dir, name), 0);
	cr_assert_eq(hx_write_file(pj, j), 0);
	cr_assert_eq(hx_write_file(pt, t), 0);
}

/* tomllib reads each of the n TOML files in dir as json reads its JSON. */
static void expect_tomllib_agrees(const char *dir, size_t n) {
	_cleanup_free_ char *script = NULL, *out = NULL, *want = NULL;
	cr_assert_geq(asprintf(&script, "%s/tests/toml_check.py", hx_srcdir()), 0);
	char *const argv[] = { (char *) hx_tool("CORRAL_PYTHON3", "python3"), script, (char *) dir, NULL };
	int st = hx_run(&out, 120 * USEC_PER_SEC, argv, NULL);
	cr_assert_geq(asprintf(&want, "checked %zu\n", n), 0);
	cr_assert_eq(st, 0, "toml_check.py: exit %d:\n%s", st, out ? out : "");
	cr_assert_str_eq(out, want);
}

/* The exact TOML of json_text, and tomllib reads it as the JSON render. */
static void expect_toml(const char *json_text, const char *want) {
	json_auto_t *v = J(json_text);
	_cleanup_free_ char *got = toml(v), *dir = hx_mkdtemp("toml");

	cr_assert_str_eq(got, want, "TOML of %s:\n%s", json_text, got);
	cr_assert_not_null(dir);
	write_pair(dir, "doc", v);
	expect_tomllib_agrees(dir, 1);
	hx_rm_tmp(dir);
}

static void expect_error(const char *json_text, const char *path, const char *message) {
	json_auto_t *v = J(json_text);
	char *out = (char *) "untouched";
	tree_error e;

	cr_assert_eq(tree_format_toml("cms", v, &out, &e), -EINVAL, "%s", json_text);
	cr_assert_str_eq(out, "untouched");
	cr_assert_str_eq(e.path, path, "%s", json_text);
	cr_assert_not_null(strstr(e.message, message), "%s: message \"%s\"", json_text, e.message);
}

/* ---- shapes ---------------------------------------------------------------------- */

Test(toml, scalars_and_null_members) {
	expect_toml("{\"s\": \"x\", \"i\": 26000, \"n\": -9223372036854775808, \"m\": 9223372036854775807,"
		    " \"r\": 1.0, \"b\": true, \"f\": false, \"z\": null}",
		    "b = true\n"
		    "f = false\n"
		    "i = 26000\n"
		    "m = 9223372036854775807\n"
		    "n = -9223372036854775808\n"
		    "r = 1.0\n"
		    "s = \"x\"\n");
}

Test(toml, key_values_then_tables_then_arrays_of_tables) {
	/* "a" and "b" sort first, but TOML ends a table's key/values at the
	 * first header: they must come after c, d and e. */
	expect_toml("{\"a\": {\"x\": 1}, \"b\": [{\"y\": 2}, {\"y\": 3}], \"c\": 1,"
		    " \"d\": [1, \"two\", {\"k\": 3}], \"e\": []}",
		    "c = 1\n"
		    "d = [1, \"two\", { k = 3 }]\n"
		    "e = []\n"
		    "\n[a]\n"
		    "x = 1\n"
		    "\n[[b]]\n"
		    "y = 2\n"
		    "\n[[b]]\n"
		    "y = 3\n");
}

Test(toml, nested_arrays_of_tables) {
	expect_toml("{\"s\": [{\"name\": \"a\", \"ports\": [{\"p\": 1, \"t\": [{\"q\": true}]}, {\"p\": 2}],"
		    " \"opt\": {\"k\": true, \"deep\": {\"x\": []}}}, {\"name\": \"b\"}, {}]}",
		    "[[s]]\n"
		    "name = \"a\"\n"
		    "\n[s.opt]\n"
		    "k = true\n"
		    "\n[s.opt.deep]\n"
		    "x = []\n"
		    "\n[[s.ports]]\n"
		    "p = 1\n"
		    "\n[[s.ports.t]]\n"
		    "q = true\n"
		    "\n[[s.ports]]\n"
		    "p = 2\n"
		    "\n[[s]]\n"
		    "name = \"b\"\n"
		    "\n[[s]]\n");
}

Test(toml, inline_tables_in_mixed_and_nested_arrays) {
	/* Only an array of objects alone is an array of tables; objects in any
	 * other array are inline tables, and their null members are left out. */
	expect_toml("{\"m\": [[1, 2], [\"a\", {\"b\": [{\"c\": null, \"d\": {}}]}]], \"aa\": [[{\"x\": 1}]],"
		    " \"w\": [[\"localhost\", 26000], [\"10.0.0.2\", 26001]], \"o\": [{\"k\": 1}, 2]}",
		    "aa = [[{ x = 1 }]]\n"
		    "m = [[1, 2], [\"a\", { b = [{ d = {} }] }]]\n"
		    "o = [{ k = 1 }, 2]\n"
		    "w = [[\"localhost\", 26000], [\"10.0.0.2\", 26001]]\n");
}

Test(toml, empty_tables) {
	expect_toml("{}", "");
	expect_toml("{\"z\": null}", "");
	expect_toml("{\"t\": {}}", "[t]\n");
	/* all members null: still a table, so it needs its header */
	expect_toml("{\"t\": {\"x\": null}}", "[t]\n");
	/* a table of tables is opened by theirs */
	expect_toml("{\"t\": {\"u\": {}}}", "[t.u]\n");
	expect_toml("{\"t\": {\"u\": {\"v\": 1}, \"w\": [{}]}}", "[t.u]\nv = 1\n\n[[t.w]]\n");
}

Test(toml, keys) {
	expect_toml("{\"\": 1, \"a b\": 2, \"a.b\": 3, \"Worker_1-x\": 4, \"\\u00e9\": 5, \"q\\\"\\\\\": 6,"
		    " \"t\\u0001\\u007f\\u001f\\n\": 7, \"123\": 8, \"true\": 9}",
		    "\"\" = 1\n"
		    "123 = 8\n"
		    "Worker_1-x = 4\n"
		    "\"a b\" = 2\n"
		    "\"a.b\" = 3\n"
		    "\"q\\\"\\\\\" = 6\n"
		    "\"t\\u0001\\u007F\\u001F\\n\" = 7\n"
		    "true = 9\n"
		    "\"\xc3\xa9\" = 5\n");
	/* and in headers */
	expect_toml("{\"a.b\": {\"\": {\"c d\": {\"x\": 1}}}, \"l\": [{\"\\\"\": 1}]}",
		    "[\"a.b\".\"\".\"c d\"]\n"
		    "x = 1\n"
		    "\n[[l]]\n"
		    "\"\\\"\" = 1\n");
}

Test(toml, key_holding_nul) {
	/* Only a segment can hold NUL (jansson reads no such key from JSON
	 * text), so build it. */
	json_auto_t *v = json_object();
	json_t *t = json_object();
	cr_assert_eq(json_object_setn_new(t, "a\0b", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_setn_new(v, "\0", 1, t), 0);
	_cleanup_free_ char *got = toml(v), *dir = hx_mkdtemp("toml");
	cr_assert_str_eq(got, "[\"\\u0000\"]\n\"a\\u0000b\" = 1\n");
	write_pair(dir, "nul", v);
	expect_tomllib_agrees(dir, 1);
	hx_rm_tmp(dir);
}

Test(toml, string_escapes) {
	expect_toml("{\"s\": \"\\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u0001\\u001f\\u007f \\u00e9 \\ud83d\\ude00 /\"}",
		    "s = \"\\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u0001\\u001F\\u007F \xc3\xa9 \xf0\x9f\x98\x80 /\"\n");
}

Test(toml, reals_stay_floats_in_shortest_form) {
	expect_toml("{\"a\": 0.1, \"b\": 1e300, \"c\": -0.0, \"d\": 1.0, \"e\": 1e16, \"f\": 123456.789,"
		    " \"g\": 0.30000000000000004, \"h\": 5e-324, \"i\": 100.0, \"j\": -2.5, \"k\": [0.1, 2.0, 3]}",
		    "a = 0.1\n"
		    "b = 1e+300\n"
		    "c = -0.0\n"
		    "d = 1.0\n"
		    "e = 1e+16\n"
		    "f = 123456.789\n"
		    "g = 0.30000000000000004\n"
		    "h = 5e-324\n"
		    "i = 100.0\n"
		    "j = -2.5\n"
		    "k = [0.1, 2.0, 3]\n");
}

/* ---- errors ------------------------------------------------------------------------ */

Test(toml, null_in_an_array_names_its_path) {
	expect_error("{\"core\": {\"Worker\": [[\"h\", 1], null]}}", "cms/core/Worker[1]", "TOML has no null");
	expect_error("{\"a/b\": [null]}", "cms/a%2Fb[0]", "null inside an array");
	expect_error("{\"s\": [{\"x\": 1}, {\"t\": [[1, null]]}]}", "cms/s[1]/t[0][1]", "null");
	expect_error("{\"m\": [1, {\"k\": [null]}]}", "cms/m[1]/k[0]", "null");
	/* a control character in a key is shown escaped */
	expect_error("{\"a\\nb\": [null]}", "cms/a\\x0Ab[0]", "null");
}

Test(toml, top_level_must_be_an_object) {
	expect_error("[1]", "cms", "an array, not an object");
	expect_error("\"x\"", "cms", "a string, not an object");
	expect_error("null", "cms", "null, not an object");
	expect_error("3.5", "cms", "a number, not an object");

	char *out = NULL;
	cr_assert_eq(tree_format_toml("cms", NULL, &out, NULL), -EINVAL);
	cr_assert_null(out);
}

/* ---- tomllib reads what json reads ----------------------------------------------- */

/* Shaped like CMS master's cms.toml and cms_ranking.toml, with what a real
 * one holds: nested sections, host/port pairs, arrays of objects, empty
 * tables and arrays, big numbers, reals, unicode, control characters and
 * keys that need quotes. */
static const char CMS_LIKE[] =
	"{\"global\": {\"backdoor\": false, \"file_log_debug\": false, \"temp_dir\": \"/tmp\","
	"  \"_help\": \"Global settings.\\nLine two\\twith a tab.\"},"
	" \"database\": {\"url\": \"postgresql+psycopg2://cmsuser:p\\\"w@localhost:5432/cmsdb\","
	"  \"debug\": false, \"twophase_commit\": false, \"pool\": null},"
	" \"services\": {\"LogService\": [[\"localhost\", 29000]], \"ResourceService\": [[\"localhost\", 28000]],"
	"  \"Worker\": [[\"localhost\", 26000], [\"10.0.0.2\", 26000], [\"10.0.0.3\", 26001]],"
	"  \"ContestWebServer\": [[\"localhost\", 21000], [\"localhost\", 21001]], \"Checker\": []},"
	" \"other_services\": {\"TestFileCacher\": [[\"localhost\", 27501]]},"
	" \"contest_web_server\": {\"listen_address\": [\"\"], \"listen_port\": [8888],"
	"  \"cookie_duration\": 10800, \"submit_local_copy\": true,"
	"  \"submit_local_copy_path\": \"%s/submissions/\", \"tornado_debug\": false,"
	"  \"max_submission_length\": 100000, \"max_input_length\": 5000000,"
	"  \"stl_path\": \"/usr/share/cppreference/doc/html/\", \"num_proxies_used\": 0,"
	"  \"secret_key\": \"8e045a51e4b102ea803c06f92841a1fb\"},"
	" \"admin_web_server\": {\"listen_address\": \"\", \"listen_port\": 8889, \"cookie_duration\": 36000},"
	" \"proxy_service\": {\"rankings\": [\"http://usern4me:passw0rd@localhost:8890/\"],"
	"  \"https_certfile\": null},"
	" \"printing\": {\"max_print_length\": 10000000, \"printer\": null, \"paper_size\": \"A4\","
	"  \"max_pages_per_job\": 10, \"max_jobs_per_user\": 10, \"pdf_printing_allowed\": false},"
	" \"sandbox\": {\"max_file_size\": 1048576, \"compilation_sandbox_max_time_s\": 10.0,"
	"  \"compilation_sandbox_max_memory_kib\": 524288, \"trusted_sandbox_max_time_s\": 0.5,"
	"  \"fraction\": 0.1, \"huge\": 1e300, \"tiny\": 2.5e-308, \"neg\": -1.0, \"int_max\": 9223372036854775807},"
	" \"ranking\": {\"bind_address\": \"\", \"http_port\": 8890, \"https_port\": null,"
	"  \"username\": \"usern4me\", \"password\": \"passw0rd\", \"buffer_size\": 100,"
	"  \"realm_name\": \"Scoreboard \\u00e9t\\u00e9 \\u65e5\\u672c \\ud83c\\udfc6\","
	"  \"scoreboards\": [{\"name\": \"main\", \"public\": true, \"columns\": [\"rank\", \"score\"],"
	"    \"limits\": {\"top\": 10}}, {\"name\": \"x y\", \"public\": false, \"columns\": [],"
	"    \"nested\": [{\"a\": 1}, {\"b\": [1, \"two\", 3.5, {\"c\": true}]}]}]},"
	" \"weird keys\": {\"\": \"empty key\", \"a.b\": 1, \"k=v\": 2, \"tab\\tkey\": 3, \"ctl\\u0001\": \"\\u0000\\u007f\","
	"  \"\\u00fcber\": {}, \"[x]\": {\"#\": [[]]}},"
	" \"empty\": {}}";

Test(toml, cms_like_config) {
	json_auto_t *v = J(CMS_LIKE);
	_cleanup_free_ char *dir = hx_mkdtemp("toml"), *t = toml(v);

	cr_assert_not_null(dir);
	/* a few lines as an operator would see them */
	cr_assert_not_null(strstr(t, "\n[services]\nChecker = []\nContestWebServer = [[\"localhost\", 21000], "
				     "[\"localhost\", 21001]]\n"), "%s", t);
	cr_assert_not_null(strstr(t, "\n[[ranking.scoreboards]]\ncolumns = [\"rank\", \"score\"]\n"), "%s", t);
	cr_assert_not_null(strstr(t, "\ncompilation_sandbox_max_time_s = 10.0\n"), "%s", t);
	cr_assert_null(strstr(t, "pool"), "a null member is left out");
	write_pair(dir, "cms", v);
	expect_tomllib_agrees(dir, 1);
	hx_rm_tmp(dir);
}

/* Random documents: libc's random() with a fixed seed, so a failure repeats. */
static unsigned rnd(unsigned n) {
	return (unsigned) random() % n;
}

static const char *const KEYS[] = {
	"a", "B", "Worker", "_x-1", "", " ", "a.b", "a b", "\"", "\\", "\n", "\t", "\x7f", "\x01",
	"\xc3\xa9", "\xf0\x9f\x98\x80", "=", "#", "[", "]", "1", "true", "-", "%2F", "/",
};

/* A key or string: up to three pieces, a NUL byte sometimes. */
static json_t *rand_text(bool key, char *buf, size_t *len) {
	*len = 0;
	for (unsigned n = rnd(4), i = 0; i < n; i++) {
		if (rnd(12) == 0)
			buf[(*len)++] = '\0';
		else {
			const char *k = KEYS[rnd(ELEMENTSOF(KEYS))];
			memcpy(buf + *len, k, strlen(k));
			*len += strlen(k);
		}
	}
	return key ? NULL : json_stringn(buf, *len);
}

static double rand_real(void) {
	static const double special[] = {
		0.1, 0.2, 0.30000000000000004, 1.0, 10.0, 100.0, 1e15, 1e16, 1e22, 1e300, 5e-324,
		2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.5, 1.0 / 3, 123456.789, 9007199254740993.0,
	};
	if (rnd(2))
		return special[rnd(ELEMENTSOF(special))] * (rnd(2) ? 1 : -1);
	for (;;) {
		uint64_t bits = ((uint64_t) random() << 33) ^ ((uint64_t) random() << 11) ^ (uint64_t) random();
		double d;
		memcpy(&d, &bits, sizeof d);
		if (isfinite(d))
			return d;
	}
}

static json_t *rand_value(int depth, bool member);

static json_t *rand_object(int depth) {
	json_t *o = json_object();
	char buf[64];
	size_t len;

	for (unsigned n = rnd(6), i = 0; i < n; i++) {
		rand_text(true, buf, &len);
		cr_assert_eq(json_object_setn_new(o, buf, len, rand_value(depth - 1, true)), 0);
	}
	return o;
}

/* member: an object member, which may be null (never an array element). */
static json_t *rand_value(int depth, bool member) {
	static const json_int_t ints[] = { INT64_MIN, INT64_MAX, 0, -1, 26000, 1000000 };
	char buf[64];
	size_t len;
	json_t *a;

	switch (rnd(depth > 0 ? 11 : 6)) {
	case 0:
		return member ? json_null() : json_true();
	case 1:
		return json_boolean(rnd(2));
	case 2:
		return json_integer(rnd(2) ? ints[rnd(ELEMENTSOF(ints))] : (json_int_t) random() - RAND_MAX / 2);
	case 3:
		return json_real(rand_real());
	case 4:
	case 5:
		return rand_text(false, buf, &len);
	case 6:
	case 7:
		return rand_object(depth);
	case 8:
		/* an array of tables */
		a = json_array();
		for (unsigned n = 1 + rnd(3), i = 0; i < n; i++)
			cr_assert_eq(json_array_append_new(a, rand_object(depth - 1)), 0);
		return a;
	default:
		a = json_array();
		for (unsigned n = rnd(5), i = 0; i < n; i++)
			cr_assert_eq(json_array_append_new(a, rand_value(depth - 1, false)), 0);
		return a;
	}
}

Test(toml, random_documents_read_back_by_tomllib) {
	_cleanup_free_ char *dir = hx_mkdtemp("toml");
	size_t bytes = 0, tables = 0, inline_tables = 0;

	cr_assert_not_null(dir);
	srandom(11);
	for (int i = 0; i < 500; i++) {
		json_auto_t *v = rand_object(1 + (int) rnd(5));
		_cleanup_free_ char *name = NULL, *t = toml(v);
		cr_assert_geq(asprintf(&name, "doc%03d", i), 0);
		write_pair(dir, name, v);
		bytes += strlen(t);
		tables += strstr(t, "[[") != NULL;
		inline_tables += strstr(t, "= {") != NULL || strstr(t, ", {") != NULL || strstr(t, "[{") != NULL;
	}
	/* the generator did produce what is worth testing */
	cr_assert_gt(tables, 100, "%zu documents with arrays of tables", tables);
	cr_assert_gt(inline_tables, 40, "%zu documents with inline tables", inline_tables);
	cr_assert_gt(bytes, 40000, "%zu bytes of TOML", bytes);
	expect_tomllib_agrees(dir, 500);
	hx_rm_tmp(dir);
}
