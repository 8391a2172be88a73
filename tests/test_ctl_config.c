/* test_ctl_config.c — `corralctl config ...` and `corralctl status`, the
 * built binary against a real etcd: import/export round trips, set, get,
 * delete, history, diff, rollback, dry runs, and what bad input and an
 * unreachable etcd give. */
#include <jansson.h>

#include "ctl-test.h"

#include <criterion/parameterized.h>
#include "tree.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "ctl-config", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_config, .init = up, .fini = down, .timeout = 90);
TestSuite(ctl_config_input, .timeout = 30);

/* A realistic CMS config: nested objects, arrays of arrays, numbers,
 * booleans, null, "_help" comment keys, a key holding '/'. */
static const char cms_conf[] =
	"{\n"
	"  \"_help\": \"There is no way to put comments in a JSON file; keys starting with _ are comments.\",\n"
	"  \"temp_dir\": \"/tmp\",\n"
	"  \"backdoor\": false,\n"
	"  \"file_log_debug\": false,\n"
	"  \"stream_log_detailed\": false,\n"
	"  \"core_services\": {\n"
	"    \"LogService\": [[\"10.0.0.1\", 29000]],\n"
	"    \"ResourceService\": [[\"10.0.0.1\", 28000], [\"10.0.0.2\", 28000]],\n"
	"    \"ScoringService\": [[\"10.0.0.1\", 28500]],\n"
	"    \"Checker\": [[\"10.0.0.1\", 22000]],\n"
	"    \"EvaluationService\": [[\"10.0.0.1\", 25000]],\n"
	"    \"Worker\": [[\"10.0.0.2\", 26000], [\"10.0.0.2\", 26001], [\"10.0.0.3\", 26000]],\n"
	"    \"ContestWebServer\": [[\"10.0.0.4\", 21000]],\n"
	"    \"AdminWebServer\": [[\"10.0.0.4\", 21100]],\n"
	"    \"ProxyService\": [[\"10.0.0.1\", 28600]],\n"
	"    \"PrintingService\": [[\"10.0.0.1\", 25123]]\n"
	"  },\n"
	"  \"other_services\": {},\n"
	"  \"database\": \"postgresql+psycopg2://cmsuser@10.0.0.5:5432/cmsdb\",\n"
	"  \"database_debug\": false,\n"
	"  \"twophase_commit\": false,\n"
	"  \"keep_sandbox\": false,\n"
	"  \"use_cgroups\": true,\n"
	"  \"sandbox_implementation\": \"isolate\",\n"
	"  \"max_file_size\": 1048576,\n"
	"  \"secret_key\": \"8e045a51e4b102ea803c06f92841a1fb\",\n"
	"  \"tornado_debug\": false,\n"
	"  \"contest_listen_address\": [\"\"],\n"
	"  \"contest_listen_port\": [8888],\n"
	"  \"cookie_duration\": 10800,\n"
	"  \"submit_local_copy\": true,\n"
	"  \"submit_local_copy_path\": \"%s/submissions/\",\n"
	"  \"tests_local_copy\": true,\n"
	"  \"is_proxy_used\": null,\n"
	"  \"num_proxies_used\": null,\n"
	"  \"max_submission_length\": 100000,\n"
	"  \"max_input_length\": 5000000,\n"
	"  \"stl_path\": \"/usr/share/cppreference/doc/html/\",\n"
	"  \"shared_mime_info_prefix\": \"/usr\",\n"
	"  \"admin_listen_address\": \"\",\n"
	"  \"admin_listen_port\": 8889,\n"
	"  \"admin_cookie_duration\": 36000,\n"
	"  \"rankings\": [\"http://usern4me:passw0rd@localhost:8890/\"],\n"
	"  \"https_certfile\": null,\n"
	"  \"limits\": {\"memory_mb\": 512.5, \"ratio\": 0.1, \"retries\": -3, \"a/b\": {\"%\": 1}},\n"
	"  \"pdf_printing_allowed\": false\n"
	"}\n";

static char *path_in(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static int ctl_full(const char *endpoint, char **out, char **err, char *const args[]) {
	return ctlt_run(endpoint, PREFIX, out, err, args);
}

#define CTL(out, err, ...) ctl_full(hx_etcd_endpoints(etcd), (out), (err), (char *const[]){ __VA_ARGS__, NULL })

static int64_t revision(void) {
	return et_revision(etcd);
}

static char *current_id(void) {
	return hx_etcd_get(etcd, PREFIX "/current");
}

static json_t *parse(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, text);
	return j;
}

static void import_cms(void) {
	_cleanup_free_ char *file = path_in("cms.conf"), *out = NULL, *err = NULL;
	cr_assert_eq(hx_write_file(file, cms_conf), 0);
	cr_assert_eq(CTL(&out, &err, "config", "import", "cms", file), 0, "%s", err);
	cr_assert(strstr(out, "committed config ctl-"), "%s", out);
}

Test(ctl_config, import_export_round_trip) {
	import_cms();
	_cleanup_free_ char *out = NULL, *err = NULL;
	cr_assert_eq(CTL(&out, &err, "config", "export", "cms"), 0, "%s", err);
	json_auto_t *want = parse(cms_conf), *got = parse(out);
	cr_assert(tree_equal(want, got), "export differs from import:\n%s", out);
	/* as nodes render it: pretty, sorted, newline-terminated */
	_cleanup_free_ char *pretty = tree_format_json(want);
	cr_assert_str_eq(out, pretty);

	/* the comment key is an ordinary key: kept */
	_cleanup_free_ char *help = NULL;
	cr_assert_eq(CTL(&help, NULL, "config", "get", "cms/_help"), 0);
	cr_assert(strstr(help, "no way to put comments"), "%s", help);

	/* importing the same again changes nothing, writes nothing */
	int64_t rev = revision();
	_cleanup_free_ char *file = path_in("cms.conf"), *again = NULL;
	cr_assert_eq(CTL(&again, NULL, "config", "import", "cms", file), 0);
	cr_assert(strstr(again, "no change"), "%s", again);
	cr_assert_eq(revision(), rev);

	/* from stdin, as a second file */
	_cleanup_free_ char *bin = NULL, *cmd = NULL, *sout = NULL;
	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	cr_assert_geq(asprintf(&cmd, "echo '{\"x\": [1, 2.5, null]}' | %s -e %s -p %s config import ranking -", bin,
			       hx_etcd_endpoints(etcd), PREFIX), 0);
	char *const sh[] = { "sh", "-c", cmd, NULL };
	cr_assert_eq(hx_run(&sout, 20 * USEC_PER_SEC, sh, NULL), 0);
	_cleanup_free_ char *rk = NULL;
	cr_assert_eq(CTL(&rk, NULL, "config", "get", "ranking/x"), 0);
	json_auto_t *x = parse(rk), *xwant = parse("[1, 2.5, null]");
	cr_assert(json_equal(x, xwant), "%s", rk);
	/* and the whole document holds both files */
	_cleanup_free_ char *all = NULL;
	cr_assert_eq(CTL(&all, NULL, "config", "get"), 0);
	json_auto_t *doc = parse(all);
	cr_assert_eq(json_object_size(doc), 2);
}

Test(ctl_config, set_get_delete) {
	_cleanup_free_ char *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *o5 = NULL, *o6 = NULL, *o7 = NULL,
			    *o8 = NULL, *e = NULL;

	import_cms();
	/* a bare word is a string; JSON text is JSON */
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/temp_dir", "/var/tmp"), 0);
	cr_assert_eq(CTL(&o1, NULL, "config", "get", "cms/temp_dir"), 0);
	cr_assert_str_eq(o1, "\"/var/tmp\"\n");
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/admin_listen_port", "9000"), 0);
	cr_assert_eq(CTL(&o2, NULL, "config", "get", "cms/admin_listen_port"), 0);
	cr_assert_str_eq(o2, "9000\n");
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/admin_listen_port", "\"9000\""), 0);
	cr_assert_eq(CTL(&o3, NULL, "config", "get", "cms/admin_listen_port"), 0);
	cr_assert_str_eq(o3, "\"9000\"\n", "quoted: a string");
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/core_services/Worker", "[[\"10.0.0.9\",26000]]"), 0);
	cr_assert_eq(CTL(&o4, NULL, "config", "get", "cms/core_services/Worker"), 0);
	json_auto_t *w = parse(o4), *wwant = parse("[[\"10.0.0.9\",26000]]");
	cr_assert(json_equal(w, wwant), "%s", o4);

	/* missing parents are created; keys with '/' and '%' escaped */
	cr_assert_eq(CTL(NULL, &e, "config", "set", "cms/new/deep/flag", "true"), 0, "%s", e);
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/limits/a%2Fb/%25", "2"), 0);
	cr_assert_eq(CTL(&o5, NULL, "config", "get", "cms"), 0);
	json_auto_t *cms = parse(o5);
	cr_assert(json_is_true(json_object_get(json_object_get(json_object_get(cms, "new"), "deep"), "flag")));
	cr_assert_eq(json_integer_value(json_object_get(
			     json_object_get(json_object_get(cms, "limits"), "a/b"), "%")), 2, "%s", o5);
	_cleanup_free_ char *key = NULL, *id = current_id();
	cr_assert_geq(asprintf(&key, PREFIX "/configs/%s/cms/limits/a%%2Fb/%%25", id), 0);
	_cleanup_free_ char *leaf = hx_etcd_get(etcd, key);
	cr_assert_str_eq(leaf, "2", "the escaped key in etcd: %s", key);

	/* delete */
	cr_assert_eq(CTL(&o6, NULL, "config", "delete", "cms/temp_dir"), 0);
	cr_assert(strstr(o6, "- cms/temp_dir = \"/var/tmp\""), "%s", o6);
	free(e);
	e = NULL;
	cr_assert_eq(CTL(NULL, &e, "config", "get", "cms/temp_dir"), 2);
	cr_assert(strstr(e, "no value at cms/temp_dir"), "%s", e);
	free(e);
	e = NULL;
	cr_assert_eq(CTL(NULL, &e, "config", "delete", "cms/temp_dir"), 2, "deleting nothing is an input error");
	cr_assert(strstr(e, "no value at cms/temp_dir"), "%s", e);

	/* JSON output of a change */
	free(id);
	id = current_id();
	cr_assert_eq(CTL(&o7, NULL, "-o", "json", "config", "set", "cms/keep_sandbox", "true"), 0);
	json_auto_t *res = parse(o7);
	cr_assert(json_is_true(json_object_get(res, "committed")), "%s", o7);
	cr_assert_str_eq(json_string_value(json_object_get(res, "previous_id")), id);
	cr_assert_eq(json_array_size(json_object_get(res, "diff")), 1);
	/* and the comment key still there after all that */
	cr_assert_eq(CTL(&o8, NULL, "config", "get", "cms/_help"), 0);
}

/* A file "big" of n leaves, imported first, so that every later change
 * beside it is a delta snapshot (agree.h). */
static void import_big(unsigned n) {
	_cleanup_free_ char *file = path_in("big.json"), *out = NULL, *err = NULL;
	json_auto_t *big = json_object();
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%04u", i);
		json_object_set_new(big, k, json_integer(i));
	}
	cr_assert_eq(json_dump_file(big, file, 0), 0);
	cr_assert_eq(CTL(&out, &err, "config", "import", "big", file), 0, "%s", err);
}

/* On a small config (complete folders) and beside a big one (deltas). */
ParameterizedTestParameters(ctl_config, history_diff_rollback) {
	static unsigned big[] = { 0, 1000 };
	return cr_make_param_array(unsigned, big, ELEMENTSOF(big));
}

ParameterizedTest(unsigned *big, ctl_config, history_diff_rollback) {
	_cleanup_free_ char *h1 = NULL, *h2 = NULL, *d = NULL, *dj = NULL, *r = NULL, *after = NULL, *h3 = NULL;

	if (*big)
		import_big(*big);
	import_cms();
	_cleanup_free_ char *first = current_id();
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/max_file_size", "2097152"), 0);
	_cleanup_free_ char *second = current_id();
	cr_assert_eq(CTL(&h1, NULL, "config", "history"), 0);
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/backdoor", "true"), 0);
	_cleanup_free_ char *third = current_id();
	cr_assert_eq(CTL(&h2, NULL, "config", "history"), 0);
	size_t l1 = 0, l2 = 0;
	for (const char *p = h1; *p; p++)
		l1 += *p == '\n';
	for (const char *p = h2; *p; p++)
		l2 += *p == '\n';
	cr_assert_eq(l2, l1 + 1, "history grows:\n%s\n%s", h1, h2);
	/* newest first, current marked (an id's row: two spaces before it; a
	 * NOTE "delta on ID" has one) */
	char r1[128], r2[128], r3[128];
	snprintf(r1, sizeof r1, "  %s ", first);
	snprintf(r2, sizeof r2, "  %s ", second);
	snprintf(r3, sizeof r3, "  %s ", third);
	cr_assert(strstr(h2, r1) && strstr(h2, r3) < strstr(h2, r2) && strstr(h2, r2) < strstr(h2, r1), "%s", h2);
	char mark[128];
	snprintf(mark, sizeof mark, "*  %s", third);
	cr_assert(strstr(h2, mark), "current not marked:\n%s", h2);

	/* diff: previous vs current by default */
	cr_assert_eq(CTL(&d, NULL, "config", "diff"), 0);
	cr_assert(strstr(d, "~ cms/backdoor = false -> true"), "%s", d);
	cr_assert_null(strstr(d, "max_file_size"), "%s", d);
	/* one id: that vs current; two: A vs B; JSON */
	cr_assert_eq(CTL(&dj, NULL, "-o", "json", "config", "diff", first), 0);
	json_auto_t *dd = parse(dj);
	cr_assert_eq(json_array_size(json_object_get(dd, "diff")), 2, "%s", dj);
	_cleanup_free_ char *d2 = NULL;
	cr_assert_eq(CTL(&d2, NULL, "config", "diff", first, second), 0);
	cr_assert(strstr(d2, "~ cms/max_file_size = 1048576 -> 2097152"), "%s", d2);

	/* rollback: a new id holding the old content */
	cr_assert_eq(CTL(&r, NULL, "config", "rollback", first), 0);
	_cleanup_free_ char *fourth = current_id();
	cr_assert_str_neq(fourth, first, "rollback re-pointed current at an old id");
	cr_assert_str_neq(fourth, third);
	_cleanup_free_ char *vs = NULL;
	cr_assert_eq(CTL(&vs, NULL, "config", "diff", first), 0);
	cr_assert(strstr(vs, "(no difference)"), "%s", vs);
	/* default: back to the one before current (third) */
	cr_assert_eq(CTL(&after, NULL, "config", "rollback"), 0);
	_cleanup_free_ char *bd = NULL;
	cr_assert_eq(CTL(&bd, NULL, "config", "get", "cms/backdoor"), 0);
	cr_assert_str_eq(bd, "true\n");
	cr_assert_eq(CTL(&h3, NULL, "config", "history"), 0);
	cr_assert(strstr(h3, fourth), "%s", h3);
	/* beside the big file every one of them was a delta, named so */
	cr_assert_eq(strstr(h3, "delta on") != NULL, *big > 0, "%s", h3);
	if (*big) {
		_cleanup_free_ char *n = NULL;
		cr_assert_eq(CTL(&n, NULL, "config", "export", "big"), 0);
		json_auto_t *bj = parse(n);
		cr_assert_eq(json_object_size(bj), *big, "the big file lost leaves");
	}
}

Test(ctl_config, dry_run_writes_nothing) {
	import_cms();
	_cleanup_free_ char *id = current_id(), *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL;
	int64_t rev = revision();

	cr_assert_eq(CTL(&o1, NULL, "-n", "config", "set", "cms/backdoor", "true"), 0);
	cr_assert(strstr(o1, "~ cms/backdoor = false -> true"), "%s", o1);
	cr_assert(strstr(o1, "dry run"), "%s", o1);
	cr_assert_eq(CTL(&o2, NULL, "--dry-run", "config", "delete", "cms/core_services"), 0);
	cr_assert(strstr(o2, "- cms/core_services/Worker"), "%s", o2);
	cr_assert_eq(CTL(&o3, NULL, "-n", "config", "rollback"), 2, "nothing before the first config");
	_cleanup_free_ char *file = path_in("other.json");
	cr_assert_eq(hx_write_file(file, "{\"a\": 1}"), 0);
	cr_assert_eq(CTL(&o4, NULL, "-n", "config", "import", "other", file), 0);
	cr_assert(strstr(o4, "+ other/a = 1"), "%s", o4);
	cr_assert_eq(revision(), rev, "a dry run wrote to etcd");
	_cleanup_free_ char *still = current_id();
	cr_assert_str_eq(still, id);
}

Test(ctl_config, bad_input_exits_2) {
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL, *e6 = NULL, *e7 = NULL,
			    *e8 = NULL, *e9 = NULL;

	import_cms();
	int64_t rev = revision();
	cr_assert_eq(CTL(NULL, &e1, "config", "set", "cms/%zz", "1"), 2);
	cr_assert(strstr(e1, "bad path 'cms/%zz'"), "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "config", "get", "cms//x"), 2);
	cr_assert(strstr(e2, "bad path"), "%s", e2);
	/* a parent that is not an object */
	cr_assert_eq(CTL(NULL, &e3, "config", "set", "cms/temp_dir/x", "1"), 2);
	cr_assert(strstr(e3, "cms/temp_dir"), "%s", e3);

	/* malformed JSON: line and column */
	_cleanup_free_ char *bad = path_in("bad.json");
	cr_assert_eq(hx_write_file(bad, "{\n  \"a\": 1,\n  \"b\": [1, 2,,]\n}\n"), 0);
	cr_assert_eq(CTL(NULL, &e4, "config", "import", "cms", bad), 2);
	char want[600];
	snprintf(want, sizeof want, "%s:3:", bad);
	cr_assert(strstr(e4, want), "no line:column: %s", e4);
	_cleanup_free_ char *dup = path_in("dup.json");
	cr_assert_eq(hx_write_file(dup, "{\"a\": 1, \"a\": 2}"), 0);
	cr_assert_eq(CTL(NULL, &e5, "config", "import", "--strict", "cms", dup), 2);
	cr_assert(strstr(e5, "duplicate key \"a\""), "%s", e5);
	cr_assert_eq(CTL(NULL, &e6, "config", "import", "cms", "/nonexistent/file.json"), 2);
	cr_assert(strstr(e6, "/nonexistent/file.json"), "%s", e6);
	cr_assert_eq(CTL(NULL, NULL, "config", "import", "a/b", bad), 2, "a file name is one segment");

	/* unknown ids, files, subcommands */
	cr_assert_eq(CTL(NULL, &e7, "config", "diff", "nope_1"), 2);
	cr_assert(strstr(e7, "nope_1"), "%s", e7);
	cr_assert_eq(CTL(NULL, &e8, "config", "rollback", "nope_1"), 2);
	cr_assert_eq(CTL(NULL, NULL, "config", "rollback", "a/b"), 2);
	cr_assert_eq(CTL(NULL, &e9, "config", "export", "nofile"), 2);
	cr_assert(strstr(e9, "nofile"), "%s", e9);
	cr_assert_eq(CTL(NULL, NULL, "config"), 2);
	cr_assert_eq(CTL(NULL, NULL, "config", "frob"), 2);
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/x"), 2);
	cr_assert_eq(CTL(NULL, NULL, "config", "get", "a", "b"), 2);
	cr_assert_eq(revision(), rev, "bad input wrote to etcd");
}

Test(ctl_config, malformed_store_is_a_failed_operation) {
	import_cms();
	_cleanup_free_ char *id = current_id(), *key = NULL, *e = NULL;
	cr_assert_geq(asprintf(&key, PREFIX "/configs/%s/cms/broken", id), 0);
	cr_assert_eq(hx_etcd_put(etcd, key, "{oops"), 0);
	cr_assert_eq(CTL(NULL, &e, "config", "get"), 1);
	cr_assert(strstr(e, key), "the message names the key: %s", e);
}

static size_t n_folders(void) {
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(CTL(&out, NULL, "-o", "json", "config", "history"), 0);
	json_auto_t *h = parse(out);
	return json_array_size(h);
}

/* A refused change: exit 1, the message names what and the way out, and
 * nothing at all is written. */
static void refused(const char *want1, const char *want2, char *const args[]) {
	_cleanup_free_ char *e = NULL;
	int64_t rev = revision();
	cr_assert_eq(ctl_full(hx_etcd_endpoints(etcd), NULL, &e, args), 1, "%s %s: %s", args[1], args[2], e);
	cr_assert(strstr(e, want1) && strstr(e, want2), "%s %s: want '%s' and '%s' in: %s", args[1], args[2], want1,
		  want2, e);
	cr_assert(strstr(e, "corralctl config rollback ID"), "no way out in: %s", e);
	cr_assert_eq(revision(), rev, "%s %s wrote to etcd", args[1], args[2]);
}

#define REFUSED(want1, want2, ...) refused((want1), (want2), (char *const[]){ __VA_ARGS__, NULL })

Test(ctl_config, broken_current_refuses_edits_and_is_repaired) {
	_cleanup_free_ char *cms = path_in("cms.conf"), *other = path_in("other.json");
	cr_assert_eq(hx_write_file(other, "{\"a\": 1}"), 0);
	import_cms();
	cr_assert_eq(CTL(NULL, NULL, "config", "import", "other", other), 0);
	_cleanup_free_ char *good = current_id();
	size_t folders = n_folders();

	/* current names a folder that is gone */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "gone_7"), 0);
	REFUSED("config gone_7", "is missing", "config", "set", "cms/backdoor", "true");
	REFUSED("config gone_7", "is missing", "config", "delete", "cms/backdoor");
	REFUSED("config gone_7", "is missing", "config", "get");
	_cleanup_free_ char *still = current_id();
	cr_assert_str_eq(still, "gone_7");
	cr_assert_eq(n_folders(), folders, "a refused change left a folder");
	/* the rollback needs nothing of it */
	_cleanup_free_ char *ro = NULL, *re = NULL;
	cr_assert_eq(CTL(&ro, &re, "config", "rollback", good), 0, "%s", re);
	cr_assert(strstr(re, "repaired: config gone_7"), "%s", re);
	_cleanup_free_ char *back = current_id(), *exp = NULL;
	cr_assert_str_neq(back, "gone_7");
	cr_assert_eq(CTL(&exp, NULL, "config", "export", "cms"), 0);
	json_auto_t *want = parse(cms_conf), *got = parse(exp);
	cr_assert(tree_equal(got, want), "the rollback did not bring the config back");

	/* a malformed leaf in current's folder */
	_cleanup_free_ char *bad = NULL;
	cr_assert_geq(asprintf(&bad, PREFIX "/configs/%s/cms/core_services/bad", back), 0);
	cr_assert_eq(hx_etcd_put(etcd, bad, "{oops"), 0);
	REFUSED(bad, "lies on the path this change edits", "config", "set", "cms/core_services/bad/x", "1");
	REFUSED(bad, "would carry it into the new config", "config", "set", "cms/backdoor", "true");
	REFUSED(bad, "would carry it into the new config", "config", "delete", "other/a");
	REFUSED(bad, "would carry it into the new config", "config", "import", "other", other);
	REFUSED(bad, "malformed", "config", "export", "other");
	/* importing the file that holds it replaces it (a dry run first) */
	_cleanup_free_ char *dry = NULL, *fo = NULL, *fe = NULL;
	int64_t rev = revision();
	cr_assert_eq(CTL(&dry, NULL, "-n", "config", "import", "cms", cms), 0);
	cr_assert(strstr(dry, "- cms/core_services/bad = \"{oops\""), "%s", dry);
	cr_assert_eq(revision(), rev);
	cr_assert_eq(CTL(&fo, &fe, "config", "import", "cms", cms), 0, "%s", fe);
	cr_assert(strstr(fe, "repaired: config") && strstr(fe, bad), "%s", fe);
	_cleanup_free_ char *fixed = current_id(), *gone_key = NULL, *gone = NULL;
	cr_assert_geq(asprintf(&gone_key, PREFIX "/configs/%s/cms/core_services/bad", fixed), 0);
	gone = hx_etcd_get(etcd, gone_key);
	cr_assert_null(gone, "the malformed leaf was carried forward");
	_cleanup_free_ char *oa = NULL;
	cr_assert_eq(CTL(&oa, NULL, "config", "get", "other/a"), 0, "the other file was not kept");
	cr_assert_str_eq(oa, "1\n");

	/* deleting the path that holds only a malformed leaf is a repair too */
	_cleanup_free_ char *bad2 = NULL, *de = NULL;
	cr_assert_geq(asprintf(&bad2, PREFIX "/configs/%s/cms/zzz", fixed), 0);
	cr_assert_eq(hx_etcd_put(etcd, bad2, "nope"), 0);
	cr_assert_eq(CTL(NULL, &de, "config", "delete", "cms/zzz"), 0, "%s", de);
	cr_assert_eq(CTL(NULL, NULL, "config", "get", "cms/backdoor"), 0);

	/* a missing folder and an import: the new config holds that file */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/current", "gone_8"), 0);
	_cleanup_free_ char *ie = NULL, *all = NULL;
	cr_assert_eq(CTL(NULL, &ie, "config", "import", "other", other), 0, "%s", ie);
	cr_assert(strstr(ie, "repaired: config gone_8"), "%s", ie);
	cr_assert_eq(CTL(&all, NULL, "config", "get"), 0);
	json_auto_t *doc = parse(all), *only = parse("{\"other\": {\"a\": 1}}");
	cr_assert(tree_equal(doc, only), "%s", all);
}

Test(ctl_config, status_joins_nodes_and_records) {
	_cleanup_free_ char *t = NULL, *j = NULL, *err = NULL;

	import_cms();
	_cleanup_free_ char *id = current_id();
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n1", "{\"address\":\"10.0.0.1\",\"services\":[\"Worker\"]}"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n2", "{\"address\":\"10.0.0.2\"}"), 0);
	_cleanup_free_ char *ok = NULL, *failed = NULL;
	cr_assert_geq(asprintf(&ok,
			       "{\"node_id\":\"n1\",\"target\":\"%s\",\"applied\":\"%s\",\"revision\":7,\"ok\":true,"
			       "\"error\":null,\"files\":{\"cms\":{\"path\":\"/etc/cms.conf\",\"digest\":\"ab\","
			       "\"config_id\":\"%s\"}},\"units\":{\"cms-worker@0.service\":{\"action\":\"restart\","
			       "\"result\":\"done\",\"active_state\":\"active\",\"ok\":true,\"message\":\"\"},"
			       "\"cms-log.service\":{\"action\":\"none\",\"result\":\"done\",\"active_state\":"
			       "\"active\",\"ok\":true,\"message\":\"\"}},\"updated\":\"2026-11-26T10:00:00Z\"}",
			       id, id, id), 0);
	cr_assert_geq(asprintf(&failed,
			       "{\"node_id\":\"n2\",\"target\":\"%s\",\"applied\":\"old_1\",\"revision\":7,\"ok\":false,"
			       "\"error\":\"cms-worker@0.service: start failed\\nexit status 1\",\"files\":{},"
			       "\"units\":{\"cms-worker@0.service\":{\"action\":\"restart\",\"result\":\"failed\","
			       "\"active_state\":\"failed\",\"ok\":false,\"message\":\"exit status 1\"}},"
			       "\"updated\":\"2026-11-26T10:00:00Z\"}",
			       id), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n1", ok), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n2", failed), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n3", "{truncated"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/status/n4", "[1,2]"), 0);

	cr_assert_eq(CTL(&t, &err, "status"), 0, "%s", err);
	char cur[256];
	snprintf(cur, sizeof cur, "current: %s\n", id);
	cr_assert(strstr(t, cur), "%s", t);
	cr_assert(strstr(t, "NODE") && strstr(t, "LIVE") && strstr(t, "APPLIED") && strstr(t, "TARGET") &&
		  strstr(t, "UNITS") && strstr(t, "ERROR"), "%s", t);
	const char *l1 = strstr(t, "\nn1 "), *l2 = strstr(t, "\nn2 "), *l3 = strstr(t, "\nn3 "),
		   *l4 = strstr(t, "\nn4 ");
	cr_assert(l1 && l2 && l3 && l4, "%s", t);
	cr_assert(strstr(l1, "yes") < l2 && strstr(l1, "2 ok") < l2, "%s", t);
	cr_assert(strstr(l2, "old_1") < l3 && strstr(l2, "1 failed") < l3, "%s", t);
	cr_assert(strstr(l2, "start failed exit status 1") < l3, "the error on one line: %s", t);
	cr_assert(strstr(l3, "no") < l4 && strstr(l3, "malformed status record") < l4, "%s", t);
	cr_assert(strstr(l4, "malformed status record"), "%s", t);

	cr_assert_eq(CTL(&j, NULL, "--format", "json", "status"), 0);
	json_auto_t *js = parse(j);
	cr_assert_str_eq(json_string_value(json_object_get(js, "current")), id);
	json_t *nodes = json_object_get(js, "nodes");
	cr_assert_eq(json_array_size(nodes), 4);
	cr_assert(json_is_true(json_object_get(json_array_get(nodes, 0), "live")));
	cr_assert(json_is_false(json_object_get(json_array_get(nodes, 2), "live")));
	cr_assert_not_null(json_object_get(json_object_get(json_array_get(nodes, 2), "status"), "malformed"));
}

Test(ctl_config, status_with_nothing) {
	_cleanup_free_ char *t = NULL;
	cr_assert_eq(CTL(&t, NULL, "status"), 0);
	cr_assert(strstr(t, "current: (none)"), "%s", t);
	_cleanup_free_ char *g = NULL;
	cr_assert_eq(CTL(&g, NULL, "config", "get"), 0);
	cr_assert_str_eq(g, "{}\n");
	_cleanup_free_ char *h = NULL;
	cr_assert_eq(CTL(&h, NULL, "config", "history"), 0);
	cr_assert_eq(CTL(NULL, NULL, "config", "diff"), 2, "no current: nothing to compare");
}

Test(ctl_config_input, unreachable_etcd_exits_1) {
	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", hx_free_port());
	_cleanup_free_ char *e1 = NULL;
	cr_assert_eq(ctl_full(ep, NULL, &e1, (char *const[]){ "config", "get", NULL }), 1);
	cr_assert(strstr(e1, "127.0.0.1"), "%s", e1);
	cr_assert_eq(ctl_full(ep, NULL, NULL, (char *const[]){ "config", "set", "cms/x", "1", NULL }), 1);
	cr_assert_eq(ctl_full(ep, NULL, NULL, (char *const[]){ "config", "history", NULL }), 1);
	cr_assert_eq(ctl_full(ep, NULL, NULL, (char *const[]){ "status", NULL }), 1);
	/* input errors are found before etcd is asked */
	cr_assert_eq(ctl_full(ep, NULL, NULL, (char *const[]){ "config", "set", "cms/%zz", "1", NULL }), 2);
}

/* ---- real CMS files, value edges ------------------------------------------------ */

/* python3 says whether two JSON files hold the same document, as CMS
 * (json.load) reads them: the same keys and values, 1 and 1.0 told apart. */
static bool python_same(const char *a, const char *b) {
	char *const argv[] = { "python3", "-c",
			       "import json, sys\n"
			       "a, b = (json.dumps(json.load(open(f)), sort_keys=True) for f in sys.argv[1:])\n"
			       "sys.exit(0 if a == b else 1)\n",
			       (char *) a, (char *) b, NULL };
	return hx_run(NULL, 20 * USEC_PER_SEC, argv, NULL) == 0;
}

/* How many keys repeat within one object, counted per object, by python3. */
static int python_repeated(const char *file) {
	char *const argv[] = { "python3", "-c",
			       "import json, sys, collections\n"
			       "n = 0\n"
			       "def hook(pairs):\n"
			       "    global n\n"
			       "    c = collections.Counter(k for k, v in pairs)\n"
			       "    n += sum(1 for k in c if c[k] > 1)\n"
			       "    return dict(pairs)\n"
			       "json.load(open(sys.argv[1]), object_pairs_hook=hook)\n"
			       "print(n)\n",
			       (char *) file, NULL };
	_cleanup_free_ char *out = NULL;
	cr_assert_eq(hx_run(&out, 20 * USEC_PER_SEC, argv, NULL), 0);
	return atoi(out);
}

/* Every warning line names file:line:column and a key; that line of the
 * file holds that key. Returns the number of warning lines. */
static int check_dup_warnings(const char *file, const char *err) {
	_cleanup_free_ char *text = hx_read_file(file, NULL);
	int n = 0;

	cr_assert_not_null(text);
	for (const char *l = err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strstr(l, "duplicate key") || strstr(l, "duplicate key") > strchr(l, '\n'))
			continue;
		char want[600];
		snprintf(want, sizeof want, "corralctl: warning: %s:", file);
		cr_assert(strncmp(l, want, strlen(want)) == 0, "no file in: %.200s", l);
		unsigned line = (unsigned) strtoul(l + strlen(want), NULL, 10);
		const char *q = strstr(l, "duplicate key \"");
		cr_assert_not_null(q, "no key in: %.200s", l);
		q += strlen("duplicate key ");
		const char *qe = strchr(q + 1, '"');
		cr_assert_not_null(qe);
		/* the key, quoted, is on that line of the file */
		const char *fl = text;
		for (unsigned i = 1; i < line && fl; i++)
			fl = strchr(fl, '\n') ? strchr(fl, '\n') + 1 : NULL;
		cr_assert_not_null(fl, "%s has no line %u", file, line);
		_cleanup_free_ char *key = strndup(q, (size_t) (qe - q + 1));
		const char *fle = strchr(fl, '\n');
		cr_assert(strstr(fl, key) && strstr(fl, key) < fle, "%s:%u does not hold %s", file, line, key);
		n++;
	}
	return n;
}

Test(ctl_config, cms_samples_import_as_cms_reads_them) {
	static const char *const samples[][2] = {
		{ "cms", "cms.conf.sample-v1.0.0" },          { "ranking", "cms.ranking.conf.sample-v1.0.0" },
		{ "cms", "cms.conf.sample-v1.5.1" },          { "ranking", "cms.ranking.conf.sample-v1.5.1" },
		{ "cms", "cms.conf.sample-2025-06-09" },      { "ranking", "cms.ranking.conf.sample-2025-06-09" },
	};

	for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
		_cleanup_free_ char *file = NULL, *out = NULL, *err = NULL, *exp = NULL, *expfile = path_in("export.json");
		_cleanup_free_ char *sout = NULL, *serr = NULL;
		cr_assert_geq(asprintf(&file, "%s/tests/data/cms/%s", hx_srcdir(), samples[i][1]), 0);

		/* accepted: one warning per repeated key, naming file, line, key */
		cr_assert_eq(CTL(&out, &err, "config", "import", (char *) samples[i][0], file), 0, "%s: %s", file, err);
		cr_assert(strstr(out, "committed config") || strstr(out, "no change"), "%s", out);
		int repeated = python_repeated(file);
		cr_assert_gt(repeated, 0, "%s repeats no key", file);
		cr_assert_eq(check_dup_warnings(file, err), repeated, "%s:\n%s", file, err);
		cr_assert(strstr(err, "duplicate key \"_help\""), "%s", err);

		/* the export is what CMS reads from the sample */
		cr_assert_eq(CTL(&exp, NULL, "config", "export", (char *) samples[i][0]), 0);
		cr_assert_eq(hx_write_file(expfile, exp), 0);
		cr_assert(python_same(file, expfile), "%s: export differs from json.load:\n%s", file, exp);

		/* --strict: refused, nothing written */
		int64_t rev = revision();
		cr_assert_eq(CTL(&sout, &serr, "config", "import", "--strict", (char *) samples[i][0], file), 2, "%s", serr);
		cr_assert(strstr(serr, "duplicate key \"_help\""), "%s", serr);
		cr_assert_eq(revision(), rev, "--strict wrote to etcd");
	}
}

Test(ctl_config, nul_in_strings_round_trips) {
	_cleanup_free_ char *e1 = NULL, *g = NULL, *exp = NULL, *e2 = NULL, *exp2 = NULL, *e3 = NULL;

	import_cms();
	cr_assert_eq(CTL(NULL, &e1, "config", "set", "cms/nul", "\"a\\u0000b\""), 0, "%s", e1);
	cr_assert_eq(CTL(&g, NULL, "config", "get", "cms/nul"), 0);
	cr_assert_str_eq(g, "\"a\\u0000b\"\n");
	/* export, import as another file, export again: the same text */
	cr_assert_eq(CTL(&exp, NULL, "config", "export", "cms"), 0);
	cr_assert(strstr(exp, "\"nul\": \"a\\u0000b\""), "%s", exp);
	_cleanup_free_ char *file = path_in("nul.json");
	cr_assert_eq(hx_write_file(file, exp), 0);
	cr_assert_eq(CTL(NULL, &e2, "config", "import", "copy", file), 0, "%s", e2);
	cr_assert_null(strstr(e2, "JSON_"), "a library flag in: %s", e2);
	cr_assert_eq(CTL(&exp2, NULL, "config", "export", "copy"), 0);
	cr_assert_str_eq(exp2, exp);
	cr_assert(python_same(file, file));
	/* a NUL inside a key cannot be JSON text for jansson: a plain error */
	_cleanup_free_ char *nk = path_in("nulkey.json");
	cr_assert_eq(hx_write_file(nk, "{\"a\\u0000\": 1}"), 0);
	cr_assert_eq(CTL(NULL, &e3, "config", "import", "k", nk), 2);
	cr_assert_null(strstr(e3, "JSON_"), "a library flag in: %s", e3);
}

Test(ctl_config, reals_in_shortest_form) {
	_cleanup_free_ char *g = NULL, *exp = NULL, *e = NULL;

	cr_assert_eq(CTL(NULL, &e, "config", "set", "cms/r", "[0.1, 0.30000000000000004, {\"x\": 2.5, \"y\": 1e22}]"), 0,
		     "%s", e);
	cr_assert_eq(CTL(&g, NULL, "config", "get", "cms/r"), 0);
	cr_assert_str_eq(g, "[\n  0.1,\n  0.30000000000000004,\n  {\n    \"x\": 2.5,\n    \"y\": 1e22\n  }\n]\n");
	_cleanup_free_ char *id = current_id(), *key = NULL;
	cr_assert_geq(asprintf(&key, PREFIX "/configs/%s/cms/r", id), 0);
	_cleanup_free_ char *leaf = hx_etcd_get(etcd, key);
	cr_assert_str_eq(leaf, "[0.1,0.30000000000000004,{\"x\":2.5,\"y\":1e22}]");
	cr_assert_eq(CTL(&exp, NULL, "config", "export", "cms"), 0);
	cr_assert_str_eq(exp, "{\n  \"r\": [\n    0.1,\n    0.30000000000000004,\n    {\n      \"x\": 2.5,\n"
			      "      \"y\": 1e22\n    }\n  ]\n}\n");
}

Test(ctl_config, leaf_too_big_is_refused_before_writing) {
	_cleanup_free_ char *big = path_in("big.json"), *ok = path_in("ok.json"), *e = NULL, *o = NULL;
	size_t n = 1600 * 1024;
	char *text = malloc(n + 64);

	import_cms();
	int64_t rev = revision();
	cr_assert_not_null(text);
	/* "a" sorts first: the old code wrote it in a chunk, then failed */
	int k = snprintf(text, 64, "{\"a\": 1, \"b\": [1, 2], \"big\": \"");
	memset(text + k, 'x', n);
	strcpy(text + k + n, "\"}");
	cr_assert_eq(hx_write_file(big, text), 0);
	cr_assert_eq(CTL(&o, &e, "config", "import", "huge", big), 2, "%s", e);
	cr_assert(strstr(e, "leaf huge/big is too big"), "%s", e);
	cr_assert(strstr(e, "bytes with its etcd key") && strstr(e, "at most 1568768"), "%s", e);
	cr_assert_null(strstr(e, "request is too large"), "etcd's error, not ours: %s", e);
	cr_assert_eq(revision(), rev, "something was written");

	/* a big leaf under the limit goes in, alone in its txn, and back */
	n = 1200 * 1024;
	memset(text + k, 'y', n);
	strcpy(text + k + n, "\"}");
	cr_assert_eq(hx_write_file(ok, text), 0);
	free(text);
	_cleanup_free_ char *e2 = NULL, *exp = NULL, *expfile = path_in("ok-export.json");
	cr_assert_eq(CTL(NULL, &e2, "config", "import", "huge", ok), 0, "%s", e2);
	cr_assert_eq(CTL(&exp, NULL, "config", "export", "huge"), 0);
	cr_assert_eq(hx_write_file(expfile, exp), 0);
	cr_assert(python_same(ok, expfile));
}

Test(ctl_config, values_that_look_like_json_must_be_json) {
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *g1 = NULL, *g2 = NULL;

	import_cms();
	int64_t rev = revision();
	cr_assert_eq(CTL(NULL, &e1, "config", "set", "cms/x", "[[\"h\",1]"), 2);
	cr_assert(strstr(e1, "not JSON") && strstr(e1, "--string"), "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "config", "set", "cms/x", "{bad"), 2);
	cr_assert_eq(revision(), rev, "a refused value was written");
	/* --string: the text as a string, on purpose */
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "--string", "cms/x", "[[\"h\",1]"), 0);
	cr_assert_eq(CTL(&g1, NULL, "config", "get", "cms/x"), 0);
	cr_assert_str_eq(g1, "\"[[\\\"h\\\",1]\"\n");
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "--string", "cms/n", "42"), 0);
	cr_assert_eq(CTL(&g2, NULL, "config", "get", "cms/n"), 0);
	cr_assert_str_eq(g2, "\"42\"\n");
	/* other text that is not JSON stays a string */
	static const char *const words[] = { "0123", "10.0.0.1", "/tmp" };
	for (size_t i = 0; i < ELEMENTSOF(words); i++) {
		_cleanup_free_ char *g = NULL;
		char want[64];
		cr_assert_eq(CTL(NULL, NULL, "config", "set", "cms/w", (char *) words[i]), 0);
		cr_assert_eq(CTL(&g, NULL, "config", "get", "cms/w"), 0);
		snprintf(want, sizeof want, "\"%s\"\n", words[i]);
		cr_assert_str_eq(g, want);
	}
	cr_assert_eq(CTL(NULL, NULL, "config", "set", "--frob", "cms/w", "1"), 2);
	cr_assert_eq(CTL(NULL, NULL, "config", "import", "--string", "cms", "x"), 2, "--string is for set");
}

Test(ctl_config, directory_import_is_a_plain_error) {
	_cleanup_free_ char *e1 = NULL;

	cr_assert_eq(CTL(NULL, &e1, "config", "import", "cms", dir), 2);
	cr_assert(strstr(e1, "cannot read") && strstr(e1, "Is a directory"), "%s", e1);
}

Test(ctl_config, control_bytes_in_messages_are_escaped) {
	_cleanup_free_ char *e2 = NULL, *e3 = NULL, *e4 = NULL;

	import_cms();
	/* a path or key holding control bytes is shown escaped */
	cr_assert_eq(CTL(NULL, &e2, "config", "set", "cms/\x1b[2J/%zz", "1"), 2);
	cr_assert_null(strchr(e2, '\x1b'), "a raw ESC in: %s", e2);
	cr_assert(strstr(e2, "\\x1b[2J"), "%s", e2);
	cr_assert_eq(CTL(NULL, &e3, "config", "get", "cms/\x07" "bell"), 2);
	cr_assert_null(strchr(e3, '\x07'), "a raw BEL in: %s", e3);
	cr_assert(strstr(e3, "\\x07bell"), "%s", e3);
	_cleanup_free_ char *dup = path_in("dup\x1b.json");
	cr_assert_eq(hx_write_file(dup, "{\"k\\u001b\": 1, \"k\\u001b\": 2}"), 0);
	cr_assert_eq(CTL(NULL, &e4, "config", "import", "d", dup), 0, "%s", e4);
	cr_assert_null(strchr(e4, '\x1b'), "a raw ESC in: %s", e4);
	cr_assert(strstr(e4, "duplicate key \"k\\x1b\""), "%s", e4);
}
