/* test_cloudinit.c — every user-data file corral ships (the .yaml files in cloud-init/)
 * and every one scripts/user-data prints is valid cloud-config by Debian's
 * own `cloud-init schema`, and the corrald.yaml each one writes loads with
 * corral's config loader. Negative cases prove both checks can fail.
 * No sample carries a real secret; the generator makes a fresh CMS key per
 * run, keeps secrets off stdout unless asked and off the command line with
 * a warning; and a node booted from generated user data (the files
 * cloud-init would write, etcd password file included) registers in a
 * real etcd with authentication on.
 *
 * cloud-init must be installed (Debian package `cloud-init`): without it
 * these tests fail, never skip, so a machine that cannot check does not
 * look like one where everything passed. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <glob.h>
#include <jansson.h>
#include <sys/stat.h>

#include "conf.h"
#include "harness.h"
#include "tree.h"

#define CORRALD_YAML "/etc/corral/corrald.yaml"
#define ETCD_PASSWORD "/etc/corral/etcd-password"
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

/* Runs scripts/user-data with args (NULL-terminated): its exit status,
 * stdout in *out and stderr in *err (each may be NULL: not kept). */
static int run_generator(char *const args[], char **out, char **err) {
	_cleanup_free_ char *script = NULL, *o = NULL, *e = NULL;
	char *argv[24] = { "/bin/sh" };
	size_t n = 1;

	cr_assert_geq(asprintf(&script, "%s/scripts/user-data", hx_srcdir()), 0);
	argv[n++] = script;
	for (size_t i = 0; args[i]; i++) {
		cr_assert_lt(n + 1, ELEMENTSOF(argv));
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	int r = hx_run_capture(&o, &e, RUN_TIMEOUT, argv, NULL);
	cr_assert_geq(r, 0, "running scripts/user-data: %s", strerror(-r));
	if (out)
		*out = TAKE_PTR(o);
	if (err)
		*err = TAKE_PTR(e);
	return r;
}

/* Runs scripts/user-data with args into tmp/name; returns the file's path. */
static char *generate(const char *name, char *const args[], int want_status) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	char *path = NULL;

	int r = run_generator(args, &out, &err);
	cr_assert_eq(r, want_status, "scripts/user-data exited %d, want %d:\n%s", r, want_status, err ?: "");
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

/* ---- secrets ------------------------------------------------------------------------ */

/* Length of the longest run of hex digits in text: a CMS key is 32. */
static size_t longest_hex_run(const char *text) {
	size_t best = 0, run = 0;
	for (const char *p = text; *p; p++) {
		run = isxdigit((unsigned char) *p) ? run + 1 : 0;
		if (run > best)
			best = run;
	}
	return best;
}

static const char *secret_key_of(const conf *c) {
	return json_string_value(json_object_get(json_object_get(c->initial, "cms"), "secret_key"));
}

Test(cloudinit, shipped_files_carry_no_secret) {
	glob_t g = shipped();
	for (size_t i = 0; i < g.gl_pathc; i++) {
		_cleanup_free_ char *text = hx_read_file(g.gl_pathv[i], NULL);
		cr_assert_not_null(text);
		cr_expect_lt(longest_hex_run(text), 32, "%s: a key-like hex string", g.gl_pathv[i]);
		_cleanup_(conf_freep) conf *c = load_embedded(g.gl_pathv[i]);
		const char *key = secret_key_of(c);
		if (key)
			cr_expect_not_null(strstr(key, "CHANGE-ME"), "%s: secret_key %s is not a placeholder",
					   g.gl_pathv[i], key);
		json_t *cms = json_object_get(c->initial, "cms");
		const char *db = json_string_value(json_object_get(cms, "database"));
		if (db)
			cr_expect_not_null(strstr(db, "CHANGE-ME"), "%s: database password", g.gl_pathv[i]);
		cr_expect_null(c->etcd.password, "%s: an etcd password", g.gl_pathv[i]);
	}
	globfree(&g);
}

/* One core node's user data into tmp/name, the generator's stdout and
 * stderr checked: nothing on stdout, the file named on stderr, mode 0600. */
static conf *generate_core(const char *name, char **path_out) {
	_cleanup_free_ char *path = NULL, *out = NULL, *err = NULL;
	struct stat st;

	cr_assert_geq(asprintf(&path, "%s/%s", tmp, name), 0);
	int r = run_generator((char *[]){ "--cluster", "contest", "--endpoints", "http://10.0.0.10:2379", "--services",
					  "ContestWebServer", "--node-id", "core-1", "--initial", "-o", path, NULL },
			      &out, &err);
	cr_assert_eq(r, 0, "exit %d:\n%s", r, err ?: "");
	cr_expect(!out || !*out, "printed to stdout:\n%s", out);
	cr_expect_not_null(err && strstr(err, "mode 0600") ? err : NULL, "stderr: %s", err ?: "");
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "%s: mode %o", path, st.st_mode & 07777);
	expect_schema_valid(path);
	*path_out = TAKE_PTR(path);
	return load_embedded(*path_out);
}

Test(cloudinit, generated_secret_key_is_fresh_and_off_stdout) {
	_cleanup_free_ char *p1 = NULL, *p2 = NULL, *out = NULL, *err = NULL, *text = NULL;
	_cleanup_(conf_freep) conf *a = generate_core("core1.yaml", &p1);
	_cleanup_(conf_freep) conf *b = generate_core("core2.yaml", &p2);
	const char *ka = secret_key_of(a), *kb = secret_key_of(b);

	cr_assert_not_null(ka);
	cr_assert_not_null(kb);
	cr_expect_eq(strlen(ka), 32, "key %s", ka);
	cr_expect_eq(longest_hex_run(ka), 32, "key %s is not 32 hex digits", ka);
	cr_expect_str_neq(ka, kb, "two runs made the same key");
	expect_same_rules(a, b, "two core nodes");

	/* Without -o it refuses, and prints neither user data nor a key. */
	int r = run_generator((char *[]){ "--cluster", "c", "--endpoints", "http://e", "--initial", NULL }, &out, &err);
	cr_expect_eq(r, 2);
	cr_expect(!out || !*out, "printed:\n%s", out);
	cr_expect_not_null(err && strstr(err, "-o FILE") && strstr(err, "--print-secrets") ? err : NULL,
			   "stderr: %s", err ?: "");

	/* Asked explicitly, it prints (a key of its own again). */
	free(out);
	out = NULL;
	r = run_generator((char *[]){ "--cluster", "c", "--endpoints", "http://e", "--initial", "--print-secrets", NULL },
			  &out, NULL);
	cr_expect_eq(r, 0);
	cr_assert_not_null(out && strstr(out, "secret_key: \"") ? out : NULL, "stdout: %s", out ?: "");
	cr_expect_null(strstr(out, ka));
	cr_expect_null(strstr(out, kb));

	/* The database URL (it holds a password) comes from a file. */
	_cleanup_free_ char *dbfile = NULL, *f = NULL;
	cr_assert_geq(asprintf(&dbfile, "%s/db-url", tmp), 0);
	cr_assert_geq(asprintf(&f, "%s/db.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(dbfile, "postgresql+psycopg2://cms:pw\"x@db:5432/cmsdb\n"), 0);
	r = run_generator((char *[]){ "--cluster", "c", "--endpoints", "http://e", "--node-id", "n", "--initial",
				      "--database-url-file", dbfile, "-o", f, NULL },
			  NULL, NULL);
	cr_assert_eq(r, 0);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *d = load_embedded(f);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(d->initial, "cms"), "database")),
			 "postgresql+psycopg2://cms:pw\"x@db:5432/cmsdb");
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--database-url-file", dbfile, NULL }, 2);
}

/* The config and its etcd password file as cloud-init would write them,
 * under tmp instead of /etc (the config's password_file follows). */
static conf *load_with_password(const char *file, char **password_out) {
	_cleanup_free_ char *cfg = write_files_content(file, CORRALD_YAML), *pw = write_files_content(file, ETCD_PASSWORD),
			    *mode = NULL, *text = NULL, *relocated = NULL, *pwpath = NULL;
	const char *at = strstr(cfg, ETCD_PASSWORD);
	size_t len = strlen(cfg);
	conf *c = NULL;
	conf_error err;
	char buf[600];

	cr_assert_not_null(at, "%s: the config does not name %s:\n%s", file, ETCD_PASSWORD, cfg);
	text = hx_read_file(file, &len);
	cr_assert_eq(hx_user_data_field(text, len, ETCD_PASSWORD, "permissions", &mode), 0);
	cr_expect_str_eq(mode, "0600", "%s: %s is written with mode %s", file, ETCD_PASSWORD, mode);

	cr_assert_geq(asprintf(&pwpath, "%s/etcd-password", tmp), 0);
	cr_assert_eq(hx_write_file(pwpath, pw), 0);
	cr_assert_geq(asprintf(&relocated, "%.*s%s%s", (int) (at - cfg), cfg, pwpath, at + strlen(ETCD_PASSWORD)), 0);
	int r = conf_load_string(relocated, strlen(relocated), file, &c, &err);
	cr_assert_eq(r, 0, "%s: %s", file, conf_error_format(&err, buf, sizeof buf));
	if (password_out)
		*password_out = TAKE_PTR(relocated);
	return c;
}

Test(cloudinit, generated_etcd_password_goes_to_a_0600_file_with_a_warning) {
	_cleanup_free_ char *f = NULL, *out = NULL, *err = NULL, *srcpw = NULL, *f2 = NULL, *err2 = NULL;
	const char *pw = "s3cret-on-the-command-line";

	cr_assert_geq(asprintf(&f, "%s/cmdline.yaml", tmp), 0);
	int r = run_generator((char *[]){ "--cluster", "c", "--endpoints", "http://e", "--node-id", "n", "--no-cms",
					  "--etcd-user", "corral", "--etcd-password", (char *) pw, "-o", f, NULL },
			      &out, &err);
	cr_assert_eq(r, 0, "%s", err ?: "");
	cr_expect(!out || !*out, "printed:\n%s", out);
	cr_expect_not_null(err && strstr(err, "warning: --etcd-password") && strstr(err, "command line") &&
					   strstr(err, "--etcd-password-file") ? err : NULL,
			   "no warning in: %s", err ?: "");
	cr_expect_null(strstr(err, pw), "the warning repeats the secret: %s", err);
	expect_schema_valid(f);
	_cleanup_(conf_freep) conf *c = load_with_password(f, NULL);
	cr_expect_str_eq(c->etcd.username, "corral");
	cr_expect_str_eq(c->etcd.password, pw);

	/* From a file: the same result, no warning. */
	cr_assert_geq(asprintf(&srcpw, "%s/pw.txt", tmp), 0);
	cr_assert_geq(asprintf(&f2, "%s/file.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(srcpw, "from-a-file\n"), 0);
	r = run_generator((char *[]){ "--cluster", "c", "--endpoints", "http://e", "--node-id", "n", "--no-cms",
				      "--etcd-user", "corral", "--etcd-password-file", srcpw, "-o", f2, NULL },
			  NULL, &err2);
	cr_assert_eq(r, 0, "%s", err2 ?: "");
	cr_expect_null(err2 && strstr(err2, "warning") ? err2 : NULL, "warned: %s", err2);
	_cleanup_(conf_freep) conf *c2 = load_with_password(f2, NULL);
	cr_expect_str_eq(c2->etcd.password, "from-a-file");

	/* The warning comes even when the run fails for another reason; a
	 * password without a user, or secrets to stdout, are refused. */
	free(err);
	err = NULL;
	cr_expect_eq(run_generator((char *[]){ "--endpoints", "http://e", "--etcd-password", "x", NULL }, NULL, &err), 2);
	cr_expect_not_null(err && strstr(err, "command line") ? err : NULL, "%s", err ?: "");
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--etcd-password-file", srcpw, "-o", f2,
				  NULL }, 2);
	generate("x", (char *[]){ "--cluster", "c", "--endpoints", "http://e", "--etcd-user", "u", "--etcd-password-file",
				  srcpw, NULL }, 2);
}

/* ---- a node boots from generated user data ------------------------------------------------- */

static hx_etcd *boot_etcd;

static bool node_registered(void *ud) {
	_cleanup_free_ char *v = hx_etcd_get(boot_etcd, ud);
	return v != NULL;
}

/* The harness path cloud-init stands for: the files the user data writes
 * (config and etcd password, the config pointed at the password's place
 * here) and corrald started on them, as the unit's ExecStart does. */
Test(cloudinit, generated_user_data_boots_a_node_that_registers) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	_cleanup_free_ char *pwsrc = NULL, *ud = NULL, *cfg = NULL, *text = NULL, *log = NULL, *out = NULL;
	_cleanup_(hx_proc_freep) hx_proc *d = NULL;
	const char *key = "/corral/boot/nodes/b1";

	cr_assert_eq(hx_etcd_start(&e, NULL), 0);
	boot_etcd = e;
	cr_assert_eq(hx_etcd_enable_auth(e, "corral", "boot-pw-7", "/corral/boot/"), 0);
	cr_assert_geq(asprintf(&pwsrc, "%s/pw", tmp), 0);
	cr_assert_geq(asprintf(&ud, "%s/boot.yaml", tmp), 0);
	cr_assert_eq(hx_write_file(pwsrc, "boot-pw-7\n"), 0);
	int r = run_generator((char *[]){ "--cluster", "boot", "--endpoints", (char *) hx_etcd_endpoints(e), "--services",
					  "Worker", "--node-id", "b1", "--address", "127.0.0.9", "--no-cms", "--etcd-user",
					  "corral", "--etcd-password-file", pwsrc, "-o", ud, NULL },
			      &out, NULL);
	cr_assert_eq(r, 0);
	cr_expect(!out || !*out);
	expect_schema_valid(ud);

	_cleanup_(conf_freep) conf *c = load_with_password(ud, &text);
	cr_assert_geq(asprintf(&cfg, "%s/corrald.yaml", tmp), 0);
	cr_assert_geq(asprintf(&log, "%s/corrald.log", tmp), 0);
	cr_assert_eq(hx_write_file(cfg, text), 0);
	cr_assert_eq(hx_corrald_spawn(&d, cfg, NULL, log), 0);

	bool up = hx_wait_until(node_registered, (void *) key, 15 * USEC_PER_SEC);
	_cleanup_free_ char *corrald_log = hx_read_file(log, NULL);
	cr_assert(up, "b1 never registered; corrald's log:\n%s", corrald_log ?: "");
	_cleanup_free_ char *v = hx_etcd_get(e, key);
	json_auto_t *rec = json_loads(v, 0, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(rec, "address")), "127.0.0.9", "record: %s", v);
	cr_expect_null(strstr(corrald_log ?: "", "boot-pw-7"), "the password is in the log");
	boot_etcd = NULL;
}

