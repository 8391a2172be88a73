/* test_conf.c — the conf module: every key, every default, every error
 * with its exact place, and the duration grammar. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>

#include "conf.h"

/* ---- fixture: a temporary directory per test ----------------------------- */

static char tmpdir[PATH_MAX];

static void tmpdir_setup(void) {
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_conf.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path) < 0 ? -errno : 0;
}

static void tmpdir_teardown(void) {
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(conf, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* Writes `len` bytes into tmpdir/name; returns the path (caller frees). */
static char *write_file_len(const char *name, const char *content, size_t len) {
	char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/%s", tmpdir, name), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t) len);
	close(fd);
	return path;
}

static char *write_file(const char *name, const char *content) {
	return write_file_len(name, content, strlen(content));
}

static int load(const char *text, conf **out, conf_error *err) {
	return conf_load_string(text, strlen(text), "test.yaml", out, err);
}

/* Loads text that must fail with -EINVAL at line:column (0:0 for "no place")
 * with `needle` somewhere in the message; the output stays untouched. */
#define expect_error(text, l, col, needle)                                                          \
	do {                                                                                        \
		conf *_c = (conf *) 0x1;                                                            \
		conf_error _e;                                                                      \
		int _r = load((text), &_c, &_e);                                                    \
		cr_assert_eq(_r, -EINVAL, "expected -EINVAL, got %d for:\n%s", _r, (text));         \
		cr_expect_eq(_c, (conf *) 0x1, "output must not be touched on failure");            \
		cr_expect_str_eq(_e.file, "test.yaml");                                             \
		cr_expect_eq(_e.line, (unsigned) (l), "line: got %u want %u (%s)", _e.line,         \
			     (unsigned) (l), _e.message);                                           \
		cr_expect_eq(_e.column, (unsigned) (col), "column: got %u want %u (%s)", _e.column, \
			     (unsigned) (col), _e.message);                                         \
		cr_expect_not_null(strstr(_e.message, (needle)), "message \"%s\" lacks \"%s\"",     \
				   _e.message, (needle));                                           \
	} while (0)

/* Keeps tests independent of this machine's /etc/machine-id and hostname. */
#define BASE "cluster: prod\nnode_id: n1\naddress: 10.0.0.5\n"
#define ETCD "etcd:\n  endpoints: [http://127.0.0.1:2379]\n"

static void expect_strv(char **got, const char *const *want) {
	size_t i = 0;
	cr_assert_not_null(got);
	for (; want[i]; i++) {
		cr_assert_not_null(got[i], "missing item %zu (%s)", i, want[i]);
		cr_expect_str_eq(got[i], want[i]);
	}
	cr_expect_null(got[i], "extra item %zu", i);
}

/* ---- valid files -------------------------------------------------------- */

Test(conf, full_file_every_key) {
	_cleanup_free_ char *pwfile = write_file("pw", "s3cret\n");
	_cleanup_free_ char *text = NULL, *path = NULL;
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_geq(asprintf(&text,
			       "# corrald.yaml\n"
			       "cluster: prod\n"
			       "prefix: /srv/corral/prod/\n"
			       "node_id: host-1\n"
			       "address: 10.0.0.5\n"
			       "services: [Worker, ContestWebServer]\n"
			       "lease_ttl: 15s\n"
			       "log_level: debug\n"
			       "etcd:\n"
			       "  endpoints:\n"
			       "    - http://10.0.0.1:2379\n"
			       "    - https://10.0.0.2:2379\n"
			       "  ca_file: /etc/corral/ca.pem\n"
			       "  cert_file: /etc/corral/node.pem\n"
			       "  key_file: /etc/corral/node-key.pem\n"
			       "  username: corral\n"
			       "  password_file: %s\n"
			       "  request_timeout: 1.5\n"
			       "  connect_timeout: 500ms\n",
			       pwfile),
		      0);
	path = write_file("corrald.yaml", text);

	cr_assert_eq(conf_load_file(path, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->path, path);
	cr_expect_str_eq(c->cluster, "prod");
	cr_expect_str_eq(c->prefix, "/srv/corral/prod");
	cr_expect_str_eq(c->node_id, "host-1");
	cr_expect_str_eq(c->address, "10.0.0.5");
	expect_strv(c->services, (const char *[]){ "Worker", "ContestWebServer", NULL });
	cr_expect_eq(c->lease_ttl_usec, 15 * USEC_PER_SEC);
	cr_expect_eq(c->log_level, LOG_DEBUG);
	expect_strv(c->etcd.endpoints, (const char *[]){ "http://10.0.0.1:2379", "https://10.0.0.2:2379", NULL });
	cr_expect_str_eq(c->etcd.ca_file, "/etc/corral/ca.pem");
	cr_expect_str_eq(c->etcd.cert_file, "/etc/corral/node.pem");
	cr_expect_str_eq(c->etcd.key_file, "/etc/corral/node-key.pem");
	cr_expect_str_eq(c->etcd.username, "corral");
	cr_expect_str_eq(c->etcd.password, "s3cret");
	cr_expect_eq(c->etcd.request_timeout_usec, 1500 * USEC_PER_MSEC);
	cr_expect_eq(c->etcd.connect_timeout_usec, 500 * USEC_PER_MSEC);
}

Test(conf, inline_password) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "etcd:\n  endpoints: [http://e:2379]\n  username: u\n  password: \"p w\"\n", &c, &err),
		     0, "%s", err.message);
	cr_expect_str_eq(c->etcd.username, "u");
	cr_expect_str_eq(c->etcd.password, "p w");
}

Test(conf, defaults) {
	_cleanup_(conf_freep) conf *c = NULL;
	_cleanup_free_ char *mid = NULL;
	char host[HOST_NAME_MAX + 1] = {};
	conf_error err;

	/* What the machine says, read independently of the module. */
	FILE *f = fopen("/etc/machine-id", "re");
	if (f) {
		size_t n = 0;
		if (getline(&mid, &n, f) < 0) {
			free(mid);
			mid = NULL;
		}
		fclose(f);
	}
	if (mid)
		mid[strcspn(mid, " \t\r\n")] = '\0';
	cr_assert_eq(gethostname(host, sizeof host - 1), 0);

	int r = load("cluster: prod\n" ETCD, &c, &err);
	if (!mid || !mid[0]) {
		cr_assert_eq(r, -EINVAL);
		cr_expect_not_null(strstr(err.message, "node_id not set and /etc/machine-id"));
		return;
	}
	cr_assert_eq(r, 0, "%s", err.message);
	cr_expect_str_eq(c->path, "test.yaml");
	cr_expect_str_eq(c->cluster, "prod");
	cr_expect_str_eq(c->prefix, "/corral/prod");
	cr_expect_str_eq(c->node_id, mid);
	cr_expect_str_eq(c->address, host);
	cr_assert_not_null(c->services);
	cr_expect_null(c->services[0]);
	cr_expect_eq(c->lease_ttl_usec, 10 * USEC_PER_SEC);
	cr_expect_eq(c->log_level, LOG_INFO);
	expect_strv(c->etcd.endpoints, (const char *[]){ "http://127.0.0.1:2379", NULL });
	cr_expect_null(c->etcd.ca_file);
	cr_expect_null(c->etcd.cert_file);
	cr_expect_null(c->etcd.key_file);
	cr_expect_null(c->etcd.username);
	cr_expect_null(c->etcd.password);
	cr_expect_eq(c->etcd.request_timeout_usec, 10 * USEC_PER_SEC);
	cr_expect_eq(c->etcd.connect_timeout_usec, 2 * USEC_PER_SEC);
}

Test(conf, block_and_flow_sequences_and_empty_services) {
	_cleanup_(conf_freep) conf *a = NULL, *b = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "services:\n  - Worker\n  - \"Checker\"\n" ETCD, &a, &err), 0, "%s", err.message);
	expect_strv(a->services, (const char *[]){ "Worker", "Checker", NULL });
	cr_assert_eq(load(BASE "services: []\n" ETCD, &b, &err), 0, "%s", err.message);
	expect_strv(b->services, (const char *[]){ NULL });
}

Test(conf, prefix_trailing_slashes_stripped) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "prefix: /a/b///\n" ETCD, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->prefix, "/a/b");
}

Test(conf, prefix_default_follows_cluster) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_eq(load("cluster: staging\nnode_id: n\naddress: a\n" ETCD, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->prefix, "/corral/staging");
}

Test(conf, scalars_are_taken_verbatim) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	/* YAML 1.1 would read these as a number, a boolean and null; here they
	 * are strings, exactly as written. */
	cr_assert_eq(load("cluster: 0042\nnode_id: yes\naddress: \"null\"\n" ETCD, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->cluster, "0042");
	cr_expect_str_eq(c->node_id, "yes");
	cr_expect_str_eq(c->address, "null");
}

Test(conf, aliases_resolve) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_eq(load("cluster: &name prod\nnode_id: *name\naddress: a\n" ETCD, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->node_id, "prod");
}

Test(conf, log_levels) {
	static const struct {
		const char *name;
		int level;
	} table[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO },  { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "err", LOG_ERR }, { "error", LOG_ERR },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		_cleanup_(conf_freep) conf *c = NULL;
		conf_error err;

		cr_assert_geq(asprintf(&text, BASE "log_level: %s\n" ETCD, table[i].name), 0);
		cr_assert_eq(load(text, &c, &err), 0, "%s: %s", table[i].name, err.message);
		cr_expect_eq(c->log_level, table[i].level, "%s", table[i].name);
	}
}

Test(conf, lease_ttl_minimum_is_allowed) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "lease_ttl: 2\n" ETCD, &c, &err), 0, "%s", err.message);
	cr_expect_eq(c->lease_ttl_usec, 2 * USEC_PER_SEC);
}

Test(conf, string_with_explicit_length) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;
	const char text[] = BASE ETCD "garbage that must not be read";

	cr_assert_eq(conf_load_string(text, strlen(BASE ETCD), "test.yaml", &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->cluster, "prod");
}

Test(conf, null_name_and_null_err) {
	_cleanup_(conf_freep) conf *c = NULL;
	conf *bad = NULL;
	const char *text = BASE ETCD;

	cr_assert_eq(conf_load_string(text, strlen(text), NULL, &c, NULL), 0);
	cr_expect_not_null(c->path);
	cr_expect_eq(conf_load_string("x: 1\n", 5, NULL, &bad, NULL), -EINVAL);
	cr_expect_null(bad);
}

/* ---- YAML syntax -------------------------------------------------------- */

Test(conf, syntax_error_mapping_value) {
	expect_error("cluster: prod\n  node_id: x\n", 2, 10, "mapping values are not allowed");
}

Test(conf, syntax_error_unclosed_flow) {
	expect_error("cluster: prod\netcd: [\n", 3, 1, "did not find expected node content");
}

Test(conf, syntax_error_unclosed_quote) {
	expect_error("cluster: \"prod\n", 2, 1, "found unexpected end of stream");
}

Test(conf, syntax_error_tab_indentation) {
	expect_error("cluster: a\nnode_id: b\n\tx: y\n", 3, 1, "tab character");
}

Test(conf, syntax_error_undefined_alias) {
	expect_error(BASE "services: *nope\n", 4, 11, "undefined alias");
}

Test(conf, syntax_error_bad_utf8_has_a_place) {
	expect_error("cluster: prod\nnode_id: \xff\n", 2, 10, "invalid leading UTF-8 octet");
}

Test(conf, syntax_error_control_character) {
	expect_error("cluster: prod\nnode_id: a\x01\n", 2, 11, "control characters are not allowed");
}

Test(conf, syntax_error_after_valid_document) {
	expect_error(BASE ETCD "---\n[\n", 8, 1, "invalid YAML");
}

Test(conf, second_document_rejected) {
	expect_error(BASE ETCD "---\ncluster: other\n", 7, 1, "only one YAML document");
}

/* ---- structure ---------------------------------------------------------- */

Test(conf, top_level_sequence) {
	expect_error("- cluster: prod\n", 1, 1, "expected a mapping of keys at the top level");
}

Test(conf, top_level_scalar) {
	expect_error("\n  cluster\n", 2, 3, "expected a mapping of keys at the top level");
}

Test(conf, empty_file) {
	expect_error("", 0, 0, "cluster is required");
}

Test(conf, empty_documents) {
	expect_error("# only a comment\n", 0, 0, "cluster is required");
	expect_error("---\n", 0, 0, "cluster is required");
	expect_error("---\n...\n", 0, 0, "cluster is required");
	expect_error("~\n", 0, 0, "cluster is required");
	expect_error("{}\n", 0, 0, "cluster is required");
}

Test(conf, empty_file_on_disk) {
	_cleanup_free_ char *path = write_file("empty.yaml", "");
	conf *c = NULL;
	conf_error err;

	cr_assert_eq(conf_load_file(path, &c, &err), -EINVAL);
	cr_expect_null(c);
	cr_expect_str_eq(err.file, path);
	cr_expect_eq(err.line, 0);
	cr_expect_not_null(strstr(err.message, "cluster is required"));
}

Test(conf, unknown_key) {
	expect_error("cluster: prod\nendpoint: http://e\n", 2, 1, "unknown key \"endpoint\"");
}

Test(conf, unknown_key_nested) {
	expect_error(BASE "etcd:\n  endpoint: [http://e]\n", 5, 3, "unknown key \"etcd.endpoint\"");
}

Test(conf, unknown_key_is_sanitised_and_bounded) {
	_cleanup_free_ char *text = NULL;
	char big[1000];

	memset(big, 'k', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cr_assert_geq(asprintf(&text, "cluster: prod\n%s: 1\n", big), 0);
	expect_error(text, 2, 1, "unknown key \"kkkk");
	expect_error("cluster: prod\n\"a\\tb\\0c\": 1\n", 2, 1, "unknown key \"a?b?c\"");
}

Test(conf, key_with_nul_is_not_a_known_key) {
	expect_error("\"cluster\\0x\": prod\n", 1, 1, "unknown key");
}

Test(conf, non_scalar_key) {
	expect_error("[a]: b\n", 1, 1, "keys must be strings");
	expect_error(BASE "etcd:\n  {a: b}: c\n", 5, 3, "etcd: keys must be strings");
}

Test(conf, duplicate_key) {
	expect_error("cluster: a\nnode_id: n\ncluster: b\n", 3, 1, "duplicate key \"cluster\"");
}

Test(conf, duplicate_key_nested) {
	expect_error(BASE "etcd:\n  endpoints: [http://a]\n  username: u\n  endpoints: [http://b]\n", 7, 3,
		     "duplicate key \"etcd.endpoints\"");
}

Test(conf, duplicate_section) {
	expect_error(BASE ETCD "etcd:\n  username: u\n", 6, 1, "duplicate key \"etcd\"");
}

Test(conf, missing_value) {
	expect_error(BASE "services:\n" ETCD, 4, 1, "services: missing value");
	expect_error(BASE "etcd:\n", 4, 1, "etcd: missing value");
	expect_error(BASE "etcd:\n  endpoints: ~\n", 5, 3, "etcd.endpoints: missing value");
}

/* ---- wrong types -------------------------------------------------------- */

Test(conf, wrong_type_services_scalar) {
	expect_error(BASE "services: Worker\n" ETCD, 4, 11, "services: expected a sequence of strings");
}

Test(conf, wrong_type_services_mapping) {
	expect_error(BASE "services: {a: b}\n" ETCD, 4, 11, "services: expected a sequence of strings");
}

Test(conf, wrong_type_services_nested_item) {
	expect_error(BASE "services:\n  - Worker\n  - [Checker]\n" ETCD, 6, 5,
		     "services: expected a sequence of strings");
}

Test(conf, wrong_type_services_null_item) {
	expect_error(BASE "services: [a, ~]\n" ETCD, 4, 15, "services: expected a sequence of strings");
}

Test(conf, self_referential_sequence) {
	expect_error(BASE "services: &a [*a]\n" ETCD, 4, 11, "services: expected a sequence of strings");
}

Test(conf, wrong_type_string) {
	expect_error("cluster: [a, b]\n", 1, 10, "cluster: expected a string");
	expect_error("cluster: a\nnode_id: n\naddress: {a: b}\n" ETCD, 3, 10, "address: expected a string");
	expect_error(BASE "etcd:\n  endpoints: [http://e]\n  ca_file: [x]\n", 6, 12,
		     "etcd.ca_file: expected a string");
}

Test(conf, wrong_type_section) {
	expect_error(BASE "etcd: http://127.0.0.1:2379\n", 4, 7, "etcd: expected a mapping");
	expect_error(BASE "etcd: [http://127.0.0.1:2379]\n", 4, 7, "etcd: expected a mapping");
}

Test(conf, wrong_type_duration) {
	expect_error(BASE "lease_ttl: [10]\n" ETCD, 4, 12, "lease_ttl: expected a duration");
}

Test(conf, wrong_type_log_level) {
	expect_error(BASE "log_level: {a: b}\n" ETCD, 4, 12, "log_level: expected a log level");
}

Test(conf, wrong_type_endpoints) {
	expect_error(BASE "etcd:\n  endpoints: http://127.0.0.1:2379\n", 5, 14,
		     "etcd.endpoints: expected a sequence of strings");
}

Test(conf, empty_strings) {
	expect_error("cluster: \"\"\n", 1, 10, "cluster: must not be empty");
	expect_error(BASE "services: [a, '']\n" ETCD, 4, 15, "services: must not be empty");
}

Test(conf, nul_byte_in_value) {
	expect_error("cluster: \"pr\\0od\"\n", 1, 10, "cluster: must not contain a NUL byte");
}

/* ---- value checks ------------------------------------------------------- */

Test(conf, missing_cluster) {
	expect_error("node_id: n1\naddress: a\n" ETCD, 0, 0, "cluster is required");
}

Test(conf, missing_etcd_section) {
	expect_error(BASE, 0, 0, "etcd.endpoints is required");
}

Test(conf, missing_endpoints) {
	expect_error(BASE "etcd:\n  username: u\n", 0, 0, "etcd.endpoints is required");
}

Test(conf, empty_endpoints) {
	expect_error(BASE "etcd:\n  endpoints: []\n", 5, 14, "etcd.endpoints: at least one endpoint is required");
}

Test(conf, endpoint_without_scheme) {
	expect_error(BASE "etcd:\n  endpoints:\n    - http://a:2379\n    - 127.0.0.1:2379\n", 7, 7,
		     "\"127.0.0.1:2379\" is not an http:// or https:// URL");
}

Test(conf, endpoint_other_scheme_or_bare) {
	expect_error(BASE "etcd:\n  endpoints: [ftp://a]\n", 5, 15, "is not an http:// or https:// URL");
	expect_error(BASE "etcd:\n  endpoints: [https://]\n", 5, 15, "is not an http:// or https:// URL");
	expect_error(BASE "etcd:\n  endpoints: [HTTP://a]\n", 5, 15, "is not an http:// or https:// URL");
}

Test(conf, cluster_with_slash) {
	expect_error("cluster: a/b\n", 1, 10, "cluster: must not contain '/'");
}

Test(conf, node_id_with_slash) {
	expect_error("cluster: a\nnode_id: x/y\n", 2, 10, "node_id: must not contain '/'");
}

Test(conf, prefix_relative) {
	expect_error(BASE "prefix: corral/prod\n" ETCD, 4, 9, "prefix: must start with '/'");
}

Test(conf, prefix_root) {
	expect_error(BASE "prefix: //\n" ETCD, 4, 9, "prefix: must not be the root");
}

Test(conf, bad_duration) {
	expect_error(BASE "lease_ttl: 10 s\n" ETCD, 4, 12, "lease_ttl: invalid duration \"10 s\"");
	expect_error(BASE "lease_ttl: -5\n" ETCD, 4, 12, "lease_ttl: invalid duration");
	expect_error(BASE "etcd:\n  endpoints: [http://e]\n  request_timeout: soon\n", 6, 20,
		     "etcd.request_timeout: invalid duration");
}

Test(conf, lease_ttl_too_short) {
	expect_error(BASE "lease_ttl: 1s\n" ETCD, 4, 12, "lease_ttl: must be at least 2s");
	expect_error(BASE "lease_ttl: 1999ms\n" ETCD, 4, 12, "lease_ttl: must be at least 2s");
	expect_error(BASE "lease_ttl: 0\n" ETCD, 4, 12, "lease_ttl: must be at least 2s");
}

Test(conf, timeouts_must_be_positive) {
	expect_error(BASE "etcd:\n  endpoints: [http://e]\n  connect_timeout: 0\n", 6, 20,
		     "etcd.connect_timeout: must be at least 1ms");
	/* Under a millisecond libcurl would round to 0, which means "never". */
	expect_error(BASE "etcd:\n  endpoints: [http://e]\n  request_timeout: 0.0005\n", 6, 20,
		     "etcd.request_timeout: must be at least 1ms");
}

Test(conf, bad_log_level) {
	expect_error(BASE "log_level: verbose\n" ETCD, 4, 12, "log_level: unknown level \"verbose\"");
	expect_error(BASE "log_level: INFO\n" ETCD, 4, 12, "log_level: unknown level");
}

Test(conf, password_and_password_file) {
	_cleanup_free_ char *pw = write_file("pw", "x\n");
	_cleanup_free_ char *a = NULL, *b = NULL;

	cr_assert_geq(asprintf(&a, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password: p\n  password_file: %s\n", pw), 0);
	expect_error(a, 8, 3, "etcd.password and etcd.password_file are mutually exclusive");
	cr_assert_geq(asprintf(&b, BASE "etcd:\n  password_file: %s\n  password: p\n  endpoints: [http://e]\n", pw), 0);
	expect_error(b, 6, 3, "etcd.password and etcd.password_file are mutually exclusive");
}

Test(conf, password_file_unreadable) {
	_cleanup_free_ char *text = NULL;

	cr_assert_geq(asprintf(&text, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s/nope\n",
			       tmpdir),
		      0);
	expect_error(text, 7, 18, "No such file or directory");
	expect_error(text, 7, 18, "etcd.password_file: cannot read");
}

Test(conf, password_file_is_a_directory) {
	_cleanup_free_ char *text = NULL;

	cr_assert_geq(asprintf(&text, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s\n", tmpdir),
		      0);
	expect_error(text, 7, 18, strerror(EISDIR));
}

Test(conf, password_without_username) {
	expect_error(BASE "etcd:\n  endpoints: [http://e]\n  password: p\n", 0, 0,
		     "etcd.username is required with a password");
}

/* ---- password_file contents ---------------------------------------------- */

static void expect_password_from_file(const char *content, size_t len, const char *want) {
	_cleanup_free_ char *pw = write_file_len("pw", content, len);
	_cleanup_free_ char *text = NULL;
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error err;

	cr_assert_geq(asprintf(&text, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s\n", pw),
		      0);
	cr_assert_eq(load(text, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->etcd.password, want);
}

Test(conf, password_file_trailing_newline_stripped) {
	expect_password_from_file("s3cret\n", 7, "s3cret");
	expect_password_from_file("s3cret", 6, "s3cret");
	expect_password_from_file("s3cret\r\n", 8, "s3cret");
	/* Only the one final newline belongs to the file, not the secret. */
	expect_password_from_file("s3cret\n\n", 8, "s3cret\n");
	expect_password_from_file(" two words \n", 12, " two words ");
}

Test(conf, password_file_large) {
	/* Bigger than the first read buffer guess for a pipe, to exercise growth. */
	size_t n = 100000;
	_cleanup_free_ char *big = malloc(n + 2);
	cr_assert_not_null(big);
	memset(big, 'p', n);
	big[n] = '\n';
	big[n + 1] = '\0';
	_cleanup_free_ char *want = strndup(big, n);
	expect_password_from_file(big, n + 1, want);
}

Test(conf, password_file_empty_or_nul) {
	_cleanup_free_ char *empty = write_file_len("empty", "", 0);
	_cleanup_free_ char *nl = write_file_len("nl", "\n", 1);
	_cleanup_free_ char *nul = write_file_len("nul", "ab\0cd\n", 6);
	_cleanup_free_ char *a = NULL, *b = NULL, *d = NULL;

	cr_assert_geq(asprintf(&a, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s\n", empty), 0);
	cr_assert_geq(asprintf(&b, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s\n", nl), 0);
	cr_assert_geq(asprintf(&d, BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password_file: %s\n", nul), 0);
	expect_error(a, 7, 18, "is empty");
	expect_error(b, 7, 18, "is empty");
	expect_error(d, 7, 18, "contains a NUL byte");
}

/* ---- conf_load_file --------------------------------------------------------- */

Test(conf, load_file_missing) {
	_cleanup_free_ char *path = NULL;
	conf *c = NULL;
	conf_error err;
	char buf[600];

	cr_assert_geq(asprintf(&path, "%s/does-not-exist.yaml", tmpdir), 0);
	cr_assert_eq(conf_load_file(path, &c, &err), -ENOENT);
	cr_expect_null(c);
	cr_expect_str_eq(err.file, path);
	cr_expect_eq(err.line, 0);
	cr_expect_eq(err.column, 0);
	cr_expect_not_null(strstr(err.message, "cannot read the configuration"));
	cr_expect_not_null(strstr(err.message, strerror(ENOENT)));
	conf_error_format(&err, buf, sizeof buf);
	cr_expect_eq(strncmp(buf, path, strlen(path)), 0, "%s", buf);
	cr_expect_eq(strncmp(buf + strlen(path), ": ", 2), 0, "%s", buf);
}

Test(conf, load_file_directory) {
	conf *c = NULL;
	conf_error err;

	cr_assert_eq(conf_load_file(tmpdir, &c, &err), -EISDIR);
	cr_expect_null(c);
	cr_expect_not_null(strstr(err.message, strerror(EISDIR)));
}

Test(conf, load_file_syntax_error_names_file) {
	_cleanup_free_ char *path = write_file("bad.yaml", "cluster: prod\n  node_id: x\n");
	_cleanup_free_ char *want = NULL;
	conf *c = NULL;
	conf_error err;
	char buf[600];

	cr_assert_eq(conf_load_file(path, &c, &err), -EINVAL);
	cr_assert_geq(asprintf(&want, "%s:2:10: invalid YAML: mapping values are not allowed", path), 0);
	conf_error_format(&err, buf, sizeof buf);
	cr_expect_eq(strncmp(buf, want, strlen(want)), 0, "%s", buf);
}

Test(conf, load_file_too_large) {
	size_t n = 5 * 1024 * 1024;
	_cleanup_free_ char *big = malloc(n);
	cr_assert_not_null(big);
	memset(big, '#', n);
	_cleanup_free_ char *path = write_file_len("big.yaml", big, n);
	conf *c = NULL;
	conf_error err;

	cr_assert_eq(conf_load_file(path, &c, &err), -EFBIG);
	cr_expect_null(c);
}

/* ---- node_id from /etc/machine-id ------------------------------------------- */

/* What a child reports about one load: the result and the node_id or the
 * error message. */
typedef struct mid_result {
	int r;
	char text[512];
} mid_result;

/* In the calling (single-threaded) process: a private mount namespace,
 * inside a user namespace unless we are root, where /etc/machine-id holds
 * `content` or, for NULL, does not exist. */
static bool mid_replace(const char *content_path) {
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	int fd;

	if (unshare(uid == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return false;
	if (uid != 0) {
		fd = open("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void) !write(fd, "deny", 4);
			close(fd);
		}
		snprintf(map, sizeof map, "0 %u 1", (unsigned) uid);
		fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map, strlen(map)) < 0)
			return false;
		close(fd);
		snprintf(map, sizeof map, "0 %u 1", (unsigned) gid);
		fd = open("/proc/self/gid_map", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map, strlen(map)) < 0)
			return false;
		close(fd);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return false;
	if (!content_path)
		return mount("tmpfs", "/etc", "tmpfs", 0, NULL) == 0;
	if (access("/etc/machine-id", F_OK) < 0)
		return false;  /* nothing to bind over */
	return mount(content_path, "/etc/machine-id", NULL, MS_BIND, NULL) == 0;
}

/* Loads `text` with /etc/machine-id replaced (see mid_replace). Criterion's
 * worker has threads, and a threaded process may not enter a new user
 * namespace, so this happens in a forked child. False when the namespace
 * cannot be had here; the test is then skipped. */
static bool load_with_machine_id(const char *content, const char *text, mid_result *out) {
	_cleanup_free_ char *content_path = content ? write_file("machine-id", content) : NULL;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		mid_result res = {};
		conf *c = NULL;
		conf_error err;

		close(p[0]);
		if (!mid_replace(content_path))
			_exit(77);
		res.r = load(text, &c, &err);
		snprintf(res.text, sizeof res.text, "%s", res.r == 0 ? c->node_id : err.message);
		conf_free(c);
		_exit(write(p[1], &res, sizeof res) == (ssize_t) sizeof res ? 0 : 1);
	}

	close(p[1]);
	ssize_t n = read(p[0], out, sizeof *out);
	close(p[0]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died");
	if (WEXITSTATUS(status) == 77)
		return false;
	cr_assert_eq(WEXITSTATUS(status), 0);
	cr_assert_eq(n, (ssize_t) sizeof *out);
	return true;
}

#define NO_NODE_ID "cluster: prod\naddress: a\n" ETCD

Test(conf, node_id_default_machine_id_missing) {
	mid_result res;

	if (!load_with_machine_id(NULL, NO_NODE_ID, &res))
		cr_skip_test("cannot replace /etc/machine-id here (no mount namespace)");
	cr_expect_eq(res.r, -EINVAL);
	cr_expect_not_null(strstr(res.text, "node_id not set and /etc/machine-id unreadable"), "%s", res.text);
	cr_expect_not_null(strstr(res.text, strerror(ENOENT)), "%s", res.text);
}

Test(conf, node_id_default_machine_id_empty) {
	mid_result res;

	if (!load_with_machine_id("", NO_NODE_ID, &res))
		cr_skip_test("cannot replace /etc/machine-id here (no mount namespace)");
	cr_expect_eq(res.r, -EINVAL);
	cr_expect_not_null(strstr(res.text, "node_id not set and /etc/machine-id"), "%s", res.text);
	if (!load_with_machine_id(" \n\t\n", NO_NODE_ID, &res))
		cr_skip_test("cannot replace /etc/machine-id here (no mount namespace)");
	cr_expect_eq(res.r, -EINVAL);
	cr_expect_not_null(strstr(res.text, "is empty"), "%s", res.text);
}

Test(conf, node_id_default_machine_id_trimmed) {
	mid_result res;

	if (!load_with_machine_id("  0123456789abcdef0123456789abcdef \n\n", NO_NODE_ID, &res))
		cr_skip_test("cannot replace /etc/machine-id here (no mount namespace)");
	cr_expect_eq(res.r, 0, "%s", res.text);
	cr_expect_str_eq(res.text, "0123456789abcdef0123456789abcdef");
}

Test(conf, node_id_given_needs_no_machine_id) {
	mid_result res;

	if (!load_with_machine_id(NULL, BASE ETCD, &res))
		cr_skip_test("cannot replace /etc/machine-id here (no mount namespace)");
	cr_expect_eq(res.r, 0, "%s", res.text);
	cr_expect_str_eq(res.text, "n1");
}

/* ---- durations ---------------------------------------------------------- */

Test(conf, durations_valid) {
	static const struct {
		const char *s;
		uint64_t usec;
	} table[] = {
		{ "0", 0 },
		{ "1", USEC_PER_SEC },
		{ "10", 10 * USEC_PER_SEC },
		{ "007", 7 * USEC_PER_SEC },
		{ "1.5", 1500 * USEC_PER_MSEC },
		{ "0.25", 250 * USEC_PER_MSEC },
		{ "0.000001", 1 },
		{ "0.0000019", 1 },               /* below a microsecond: truncated */
		{ "500ms", 500 * USEC_PER_MSEC },
		{ "1.5ms", 1500 },
		{ "0ms", 0 },
		{ "10s", 10 * USEC_PER_SEC },
		{ "2.5s", 2500 * USEC_PER_MSEC },
		{ "2m", 120 * USEC_PER_SEC },
		{ "0.5m", 30 * USEC_PER_SEC },
		{ "1h", 3600 * USEC_PER_SEC },
		{ "1.25h", 4500 * USEC_PER_SEC },
		{ "0.1h", 360 * USEC_PER_SEC },
		{ "18446744073709", 18446744073709 * USEC_PER_SEC },
		{ "18446744073709.551615", UINT64_MAX },
		{ "1.00000000000000000000000001", USEC_PER_SEC },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		uint64_t got = 42;
		cr_expect_eq(conf_parse_duration(table[i].s, &got), 0, "\"%s\" rejected", table[i].s);
		cr_expect_eq(got, table[i].usec, "\"%s\": got %" PRIu64 " want %" PRIu64, table[i].s, got,
			     table[i].usec);
	}
}

Test(conf, durations_invalid) {
	static const char *const table[] = {
		"",
		" ",
		"-1",
		"-1s",
		"+1",
		"s",
		"ms",
		".5",
		"5.",
		"1.s",
		"1..5",
		"1.2.3",
		"1e3",
		"0x10",
		"10 s",
		" 10s",
		"10s ",
		"10S",
		"10sec",
		"10us",
		"10d",
		"1m30s",
		"abc",
		"inf",
		"nan",
		"18446744073710",             /* seconds: overflows microseconds */
		"18446744073709.551616",
		"18446744073709551615",
		"99999999999999999999999",    /* overflows even as a whole number */
		"5124096000h",
		"1\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		uint64_t got = 42;
		cr_expect_eq(conf_parse_duration(table[i], &got), -EINVAL, "\"%s\" accepted", table[i]);
		cr_expect_eq(got, 42, "\"%s\": output written on failure", table[i]);
	}
	cr_expect_eq(conf_parse_duration(NULL, &(uint64_t){ 0 }), -EINVAL);
}

/* ---- conf_etcd_equal --------------------------------------------------------- */

Test(conf, etcd_equal) {
	_cleanup_(conf_freep) conf *a = NULL, *b = NULL;
	conf_error err;
	const char *text = BASE "etcd:\n  endpoints: [http://a:2379, http://b:2379]\n  ca_file: /ca\n"
				"  cert_file: /cert\n  key_file: /key\n  username: u\n  password: p\n";

	cr_assert_eq(load(text, &a, &err), 0, "%s", err.message);
	cr_assert_eq(load(text, &b, &err), 0, "%s", err.message);
	cr_expect(conf_etcd_equal(&a->etcd, &b->etcd));
	cr_expect(conf_etcd_equal(&a->etcd, &a->etcd));
	cr_expect(conf_etcd_equal(NULL, NULL));
	cr_expect_not(conf_etcd_equal(&a->etcd, NULL));
	cr_expect_not(conf_etcd_equal(NULL, &b->etcd));

	/* Each field in turn: change it in b, compare, put it back. */
#define FLIP_STR(field, other)                                                       \
	do {                                                                         \
		char *_saved = b->etcd.field;                                        \
		b->etcd.field = (char *) (other);                                    \
		cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd), #field " = %s", \
			      (other) ? (const char *) (other) : "NULL");           \
		b->etcd.field = _saved;                                              \
		cr_expect(conf_etcd_equal(&a->etcd, &b->etcd));                      \
	} while (0)
	FLIP_STR(ca_file, "/other");
	FLIP_STR(ca_file, NULL);
	FLIP_STR(cert_file, "/other");
	FLIP_STR(cert_file, NULL);
	FLIP_STR(key_file, "/other");
	FLIP_STR(key_file, NULL);
	FLIP_STR(username, "v");
	FLIP_STR(username, NULL);
	FLIP_STR(password, "q");
	FLIP_STR(password, NULL);
#undef FLIP_STR

	b->etcd.request_timeout_usec++;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.request_timeout_usec--;
	b->etcd.connect_timeout_usec++;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.connect_timeout_usec--;
	cr_expect(conf_etcd_equal(&a->etcd, &b->etcd));

	char **saved = b->etcd.endpoints;
	char *reordered[] = { "http://b:2379", "http://a:2379", NULL };
	char *shorter[] = { "http://a:2379", NULL };
	char *longer[] = { "http://a:2379", "http://b:2379", "http://c:2379", NULL };
	char *changed[] = { "http://a:2379", "http://b:2380", NULL };
	b->etcd.endpoints = reordered;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd), "endpoint order matters");
	b->etcd.endpoints = shorter;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.endpoints = longer;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.endpoints = changed;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.endpoints = saved;
	cr_expect(conf_etcd_equal(&a->etcd, &b->etcd));
}

Test(conf, etcd_equal_ignores_other_sections) {
	_cleanup_(conf_freep) conf *a = NULL, *b = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "log_level: debug\n" ETCD, &a, &err), 0, "%s", err.message);
	cr_assert_eq(load("cluster: other\nnode_id: n2\naddress: b\n" ETCD, &b, &err), 0, "%s", err.message);
	cr_expect(conf_etcd_equal(&a->etcd, &b->etcd));
}

/* ---- conf_error_format and conf_free ----------------------------------------- */

Test(conf, error_format) {
	conf_error err = { .file = "/etc/corral/corrald.yaml", .line = 3, .column = 7, .message = "bad thing" };
	char buf[128], tiny[8];

	cr_expect_str_eq(conf_error_format(&err, buf, sizeof buf), "/etc/corral/corrald.yaml:3:7: bad thing");
	err.line = err.column = 0;
	cr_expect_str_eq(conf_error_format(&err, buf, sizeof buf), "/etc/corral/corrald.yaml: bad thing");
	cr_expect_str_eq(conf_error_format(&err, tiny, sizeof tiny), "/etc/co");
	cr_expect_eq(conf_error_format(&err, buf, 0), buf);
}

Test(conf, error_format_of_real_error) {
	conf *c = NULL;
	conf_error err;
	char buf[600];

	cr_assert_eq(load("cluster: prod\nendpoint: x\n", &c, &err), -EINVAL);
	cr_expect_str_eq(conf_error_format(&err, buf, sizeof buf), "test.yaml:2:1: unknown key \"endpoint\"");
}

Test(conf, free_null) {
	cr_expect_null(conf_free(NULL));
	conf *c = NULL;
	conf_freep(&c);
}

Test(conf, free_returns_null) {
	conf *c = NULL;
	conf_error err;

	cr_assert_eq(load(BASE "etcd:\n  endpoints: [http://e]\n  username: u\n  password: p\n", &c, &err), 0, "%s",
		     err.message);
	cr_expect_null(conf_free(c));
}

/* Every prefix of a valid file must load or fail cleanly: no crash, no
 * leak (under ASan), an error always filled. */
Test(conf, every_truncation_fails_cleanly) {
	const char *text = "cluster: prod\nprefix: /p/\nnode_id: n\naddress: a\nservices: [A, \"B\"]\n"
			   "lease_ttl: 2.5s\nlog_level: notice\netcd:\n  endpoints:\n    - https://e:2379\n"
			   "  username: u\n  password: 'p'\n  request_timeout: 1m\n  connect_timeout: 1\n";
	size_t len = strlen(text);

	for (size_t n = 0; n <= len; n++) {
		conf *c = NULL;
		conf_error err;
		int r = conf_load_string(text, n, "t", &c, &err);
		if (r == 0) {
			cr_expect_not_null(c);
			conf_free(c);
		} else {
			cr_expect_eq(r, -EINVAL, "prefix %zu: %d", n, r);
			cr_expect_neq(err.message[0], '\0', "prefix %zu: no message", n);
			cr_expect_null(c);
		}
	}
}
