/* test_cloudinit.c — every user-data file corral ships (the .yaml files in cloud-init/)
 * and every one scripts/user-data prints is valid cloud-config by Debian's
 * own `cloud-init schema`, and the corrald.yaml each one writes loads with
 * corral's config loader. Negative cases prove both checks can fail.
 *
 * cloud-init must be installed (Debian package `cloud-init`): without it
 * these tests fail, never skip, so a machine that cannot check does not
 * look like one where everything passed. */
#include <criterion/criterion.h>
#include <glob.h>
#include <sys/stat.h>

#include "conf.h"
#include "harness.h"
#include "tree.h"

#define CORRALD_YAML "/etc/corral/corrald.yaml"
#define RUN_TIMEOUT  (120 * USEC_PER_SEC)

static char *tmp;

static void setup(void) {
	tmp = hx_mkdtemp("cloudinit");
	cr_assert_not_null(tmp);
}

static void teardown(void) {
	if (tmp)
		hx_rm_tmp(tmp);
	free(tmp);
	tmp = NULL;
}

TestSuite(cloudinit, .init = setup, .fini = teardown, .timeout = 300);

/* cloud-init on PATH, as an absolute path; fails the test when missing. */
static char *cloud_init(void) {
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;

	cr_assert_not_null(copy);
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *p = NULL;
		cr_assert_geq(asprintf(&p, "%s/cloud-init", *dir ? dir : "."), 0);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	cr_assert_fail("cloud-init is not on PATH (%s): install Debian's cloud-init package (apt-get install cloud-init); these tests need `cloud-init schema`",
		       path ? path : "");
	return NULL;
}

typedef struct schema_result {
	int status;
	char *out, *err;
} schema_result;

static void schema_result_done(schema_result *r) {
	free(r->out);
	free(r->err);
}

static schema_result schema(const char *file) {
	_cleanup_free_ char *ci = cloud_init();
	char *argv[] = { ci, "schema", "--config-file", (char *) file, NULL };
	schema_result r = {};

	r.status = hx_run_capture(&r.out, &r.err, RUN_TIMEOUT, argv, NULL);
	cr_assert_geq(r.status, 0, "running %s: %s", ci, strerror(-r.status));
	return r;
}

static void expect_schema_valid(const char *file) {
	_cleanup_(schema_result_done) schema_result r = schema(file);

	/* 22.4.2 says "Valid cloud-config: FILE" on stdout and exits 0; errors
	 * go to stderr with exit 1. Both are checked: an exit status alone
	 * would also be 0 for a cloud-init that checked nothing. */
	cr_expect_eq(r.status, 0, "%s: cloud-init schema exited %d:\n%s%s", file, r.status, r.out ?: "", r.err ?: "");
	cr_expect_not_null(r.out && strstr(r.out, "Valid cloud-config") ? r.out : NULL,
			   "%s: no \"Valid cloud-config\" in:\n%s", file, r.out ?: "");
}

/* ---- the corrald.yaml inside user data (libyaml, not string search) -------- */

/* The content written to `path` by write_files, as a new string. */
static char *write_files_content(const char *file, const char *path) {
	_cleanup_free_ char *text = NULL;
	char *content = NULL;
	size_t len;

	text = hx_read_file(file, &len);
	cr_assert_not_null(text, "cannot read %s", file);
	int r = hx_user_data_file(text, len, path, &content);
	cr_assert_eq(r, 0, "%s: no single plain write_files entry for %s (%s)", file, path, strerror(-r));
	return content;
}

/* Loads the embedded config. A config without node_id takes the machine
 * id; where this machine has none, that one error is the machine's, so the
 * config is loaded again with a node_id added. */
static conf *load_embedded(const char *file) {
	_cleanup_free_ char *text = write_files_content(file, CORRALD_YAML);
	conf *c = NULL;
	conf_error err;
	char buf[600];

	int r = conf_load_string(text, strlen(text), file, &c, &err);
	if (r == -EINVAL && strstr(err.message, "node_id not set and /etc/machine-id")) {
		_cleanup_free_ char *more = NULL;
		cr_assert_geq(asprintf(&more, "%snode_id: test-node\n", text), 0);
		r = conf_load_string(more, strlen(more), file, &c, &err);
	}
	cr_assert_eq(r, 0, "%s: its %s does not load: %s", file, CORRALD_YAML, conf_error_format(&err, buf, sizeof buf));
	return c;
}

/* Rules for one list must be the same on every node, or the nodes would
 * keep rewriting it: all shipped and generated CMS user data agree. */
static void expect_same_rules(const conf *a, const conf *b, const char *what) {
	cr_assert_eq(a->n_topology, b->n_topology, "%s: %zu rules vs %zu", what, a->n_topology, b->n_topology);
	for (size_t i = 0; i < a->n_topology; i++) {
		cr_expect_str_eq(a->topology[i].service, b->topology[i].service, "%s: rule %zu", what, i);
		cr_expect_str_eq(a->topology[i].path, b->topology[i].path, "%s: rule %zu", what, i);
		cr_expect(tree_equal(a->topology[i].value, b->topology[i].value), "%s: rule %zu value", what, i);
	}
}

/* ---- the shipped files --------------------------------------------------------- */

static glob_t shipped(void) {
	_cleanup_free_ char *pattern = NULL;
	glob_t g;

	cr_assert_geq(asprintf(&pattern, "%s/cloud-init/*.yaml", hx_srcdir()), 0);
	cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no user data matches %s (CORRAL_SRCDIR?)", pattern);
	cr_assert_geq(g.gl_pathc, 2, "expected the node and the worker example");
	return g;
}

Test(cloudinit, shipped_files_pass_the_schema) {
	glob_t g = shipped();
	for (size_t i = 0; i < g.gl_pathc; i++)
		expect_schema_valid(g.gl_pathv[i]);
	globfree(&g);
}

Test(cloudinit, shipped_files_carry_a_loadable_corrald_yaml) {
	glob_t g = shipped();
	conf *first = NULL;

	for (size_t i = 0; i < g.gl_pathc; i++) {
		conf *c = load_embedded(g.gl_pathv[i]);
		cr_expect_str_eq(c->cluster, "contest", "%s", g.gl_pathv[i]);
		cr_expect_geq(c->n_files, 1, "%s: renders nothing", g.gl_pathv[i]);
		cr_expect_gt(c->n_topology, 0, "%s: no topology rules", g.gl_pathv[i]);
		cr_expect_str_eq(c->files[0].path, "/etc/cms/cms.conf", "%s", g.gl_pathv[i]);
		cr_expect_neq(c->files[0].restart[0], NULL, "%s: cms.conf restarts nothing", g.gl_pathv[i]);
		if (!first)
			first = c;
		else {
			expect_same_rules(first, c, g.gl_pathv[i]);
			conf_free(c);
		}
	}
	conf_free(first);
	globfree(&g);
}

Test(cloudinit, shipped_node_example_has_initial_values) {
	_cleanup_free_ char *file = NULL;
	cr_assert_geq(asprintf(&file, "%s/cloud-init/corral-node.yaml", hx_srcdir()), 0);
	_cleanup_(conf_freep) conf *c = load_embedded(file);

	cr_assert(json_is_object(c->initial));
	json_t *cms = json_object_get(c->initial, "cms");
	cr_expect(json_is_string(json_object_get(cms, "database")));
	cr_expect(json_is_integer(json_object_get(cms, "cookie_duration")));
	cr_expect(json_is_false(json_object_get(cms, "keep_alive")));
	cr_expect_str_eq(c->address, "10.0.0.5");
}

/* ---- generated user data ---------------------------------------------------------- */

/* Runs scripts/user-data with args into tmp/name; returns the file's path. */
static char *generate(const char *name, char *const args[], int want_status) {
	_cleanup_free_ char *script = NULL, *out = NULL;
	char *argv[24] = { "/bin/sh" }, *path = NULL;
	size_t n = 1;

	cr_assert_geq(asprintf(&script, "%s/scripts/user-data", hx_srcdir()), 0);
	argv[n++] = script;
	for (size_t i = 0; args[i]; i++) {
		cr_assert_lt(n + 1, ELEMENTSOF(argv));
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	int r = hx_run_capture(&out, NULL, RUN_TIMEOUT, argv, NULL);
	cr_assert_eq(r, want_status, "scripts/user-data exited %d, want %d", r, want_status);
	if (want_status != 0) {
		cr_expect(!out || !*out, "a failed run printed user data anyway:\n%s", out);
		return NULL;
	}
	cr_assert_geq(asprintf(&path, "%s/%s", tmp, name), 0);
	cr_assert_eq(hx_write_file(path, out ?: ""), 0);
	return path;
}

Test(cloudinit, generated_worker) {
	_cleanup_free_ char *f = generate("worker.yaml",
		(char *[]){ "--cluster", "contest", "--services", "Worker,ResourceService", "--endpoints",
			    "http://10.0.0.10:2379,http://10.0.0.11:2379", "--address", "10.0.0.7", "--node-id", "w-1",
			    NULL },
		0);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *c = load_embedded(f);
	cr_expect_str_eq(c->cluster, "contest");
	cr_expect_str_eq(c->node_id, "w-1");
	cr_expect_str_eq(c->address, "10.0.0.7");
	cr_expect_str_eq(c->prefix, "/corral/contest");
	cr_assert_not_null(c->services[0]);
	cr_expect_str_eq(c->services[0], "Worker");
	cr_assert_not_null(c->services[1]);
	cr_expect_str_eq(c->services[1], "ResourceService");
	cr_expect_null(c->services[2]);
	cr_expect_str_eq(c->etcd.endpoints[1], "http://10.0.0.11:2379");

	_cleanup_free_ char *shipped_worker = NULL;
	cr_assert_geq(asprintf(&shipped_worker, "%s/cloud-init/corral-worker.yaml", hx_srcdir()), 0);
	_cleanup_(conf_freep) conf *s = load_embedded(shipped_worker);
	expect_same_rules(s, c, "generated vs shipped");
}

/* A pool node for the autoscaler: no node id, address or instance id in
 * it (one user data for every instance of a launch template); on EC2 the
 * node learns those from the instance metadata (instance_id: auto by
 * default, recognised by DMI). */
Test(cloudinit, generated_pool_node_learns_who_it_is_on_ec2) {
	_cleanup_free_ char *f = generate("pool.yaml",
		(char *[]){ "--cluster", "contest", "--services", "Worker", "--endpoints", "http://10.0.0.10:2379",
			    "--pool", "web", NULL },
		0);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *c = load_embedded(f);
	cr_expect_str_eq(c->pool, "web");
	cr_expect_null(c->ec2.instance_id);
	cr_expect(c->node_id_default && c->address_default, "no node id or address written");

	/* The same config on a machine DMI says is EC2 asks IMDS who it is. */
	_cleanup_free_ char *text = write_files_content(f, CORRALD_YAML), *dmi = NULL, *vendor = NULL,
			    *more = NULL;
	cr_assert_geq(asprintf(&dmi, "%s/dmi", tmp), 0);
	cr_assert_eq(mkdir(dmi, 0755), 0);
	cr_assert_geq(asprintf(&vendor, "%s/sys_vendor", dmi), 0);
	cr_assert_eq(hx_write_file(vendor, "Amazon EC2\n"), 0);
	cr_assert_geq(asprintf(&more, "%sec2:\n  dmi_dir: %s\n", text, dmi), 0);
	_cleanup_(conf_freep) conf *on_ec2 = NULL;
	conf_error err;
	cr_assert_eq(conf_load_string(more, strlen(more), f, &on_ec2, &err), 0, "%s", err.message);
	cr_expect(on_ec2->ec2.instance_auto);

	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--pool", "a/b", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--pool", NULL }, 2);
}

/* Quotes and backslashes survive into the config exactly. */
Test(cloudinit, generated_odd_values_round_trip) {
	_cleanup_free_ char *f = generate("odd.yaml",
		(char *[]){ "--cluster", "we \"ird\" \\ name: #1", "--endpoints", "https://e:2379", "--address",
			    "host:with'quote", "--node-id", "n-{x}", "--no-cms", NULL },
		0);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *c = load_embedded(f);
	cr_expect_str_eq(c->cluster, "we \"ird\" \\ name: #1");
	cr_expect_str_eq(c->address, "host:with'quote");
	cr_expect_str_eq(c->node_id, "n-{x}");
	cr_expect_eq(c->n_files, 0);
	cr_expect_eq(c->n_topology, 0);
	cr_expect_null(c->services[0]);
}

Test(cloudinit, generated_with_equals_and_prefix) {
	_cleanup_free_ char *f = generate("eq.yaml",
		(char *[]){ "--cluster=c", "--endpoints=http://e:2379", "--services=ContestWebServer",
			    "--prefix=/srv/corral/c/", "--address=::1", NULL },
		0);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *c = load_embedded(f);
	cr_expect_str_eq(c->prefix, "/srv/corral/c");
	cr_expect_str_eq(c->address, "::1");
	cr_expect_str_eq(c->services[0], "ContestWebServer");
	cr_expect_eq(c->n_files, 1);
}

Test(cloudinit, generator_refuses_bad_arguments) {
	generate("x", (char *[]){ "--endpoints", "http://e", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "ftp://e", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e,,http://f", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--services", "A,", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--address", "a\nb: c", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "a/b", "--endpoints", "http://e", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "--endpoints", "http://e", NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--bogus", NULL }, 2);
	free(generate("help.txt", (char *[]){ "--help", NULL }, 0));
}

/* ---- the checks are real -------------------------------------------------------------- */

Test(cloudinit, schema_rejects_invalid_user_data) {
	_cleanup_free_ char *bad = NULL, *nohdr = NULL;

	cr_assert_geq(asprintf(&bad, "%s/bad.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(bad, "#cloud-config\n"
					"write_files:\n"
					"  - path: 5\n"
					"    permissions: [0600]\n"
					"    content: x\n"
					"runcmd: {systemctl: enable}\n"),
		     0);
	_cleanup_(schema_result_done) schema_result r = schema(bad);
	cr_expect_neq(r.status, 0, "invalid user data passed the schema check:\n%s", r.out ?: "");
	cr_expect_not_null(r.err && strstr(r.err, "write_files") ? r.err : NULL, "no word on write_files in:\n%s",
			   r.err ?: "");

	cr_assert_geq(asprintf(&nohdr, "%s/nohdr.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(nohdr, "write_files: []\n"), 0);
	_cleanup_(schema_result_done) schema_result h = schema(nohdr);
	cr_expect_neq(h.status, 0, "user data without #cloud-config passed");
}

/* Valid cloud-config carrying a corrald.yaml that corral refuses: the
 * schema cannot see it, the loader must. */
Test(cloudinit, embedded_config_is_really_loaded) {
	_cleanup_free_ char *f = NULL, *text = NULL;
	conf *c = NULL;
	conf_error err;

	cr_assert_geq(asprintf(&f, "%s/badconf.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(f, "#cloud-config\n"
				      "write_files:\n"
				      "  - path: /etc/corral/corrald.yaml\n"
				      "    content: |\n"
				      "      cluster: c\n"
				      "      etcd: {endpoints: [http://e]}\n"
				      "      files: {cms: {path: etc/cms.conf}}\n"),
		     0);
	expect_schema_valid(f);
	text = write_files_content(f, CORRALD_YAML);
	cr_expect_eq(conf_load_string(text, strlen(text), f, &c, &err), -EINVAL);
	cr_expect_eq(err.line, 3);
	cr_expect_not_null(strstr(err.message, "not an absolute path"), "%s", err.message);
	cr_expect_null(c);
}
