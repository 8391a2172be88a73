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
			       "  attempt_timeout: 400ms\n"
			       "  connect_timeout: 500ms\n"
			       "  watch_progress_timeout: 4s\n",
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
	cr_expect_eq(c->etcd.attempt_timeout_usec, 400 * USEC_PER_MSEC);
	cr_expect_eq(c->etcd.connect_timeout_usec, 500 * USEC_PER_MSEC);
	cr_expect_eq(c->etcd.watch_progress_usec, 4 * USEC_PER_SEC);
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
	cr_expect_eq(c->etcd.attempt_timeout_usec, 2 * USEC_PER_SEC);
	cr_expect_eq(c->etcd.connect_timeout_usec, 2 * USEC_PER_SEC);
	cr_expect_eq(c->etcd.watch_progress_usec, 3 * USEC_PER_SEC);
	cr_expect_null(c->files);
	cr_expect_eq(c->n_files, 0);
	cr_expect_null(c->topology);
	cr_expect_eq(c->n_topology, 0);
	cr_expect_null(c->initial);
	cr_expect_eq(c->units_user_bus, false);
	cr_expect_eq(c->debounce_usec, 1 * USEC_PER_SEC);
	cr_expect_eq(c->max_wait_usec, 10 * USEC_PER_SEC);
	cr_expect_eq(c->command_timeout_usec, 30 * USEC_PER_SEC);
	cr_expect_eq(c->unit_timeout_usec, 90 * USEC_PER_SEC);
	cr_expect_eq(c->write_retry_usec, 1 * USEC_PER_SEC);
	cr_expect_eq(c->write_retry_max_usec, 60 * USEC_PER_SEC);
	cr_expect_eq(c->history, 20);
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

/* The cluster and the node id are each one segment of an etcd key: what
 * keys.h refuses (keys_cluster_valid, keys_id_valid) is refused at load,
 * with the value's place. */
Test(conf, cluster_not_a_key_segment) {
	expect_error("cluster: .\n", 1, 10, "cluster: \".\" cannot be one segment of an etcd key");
	expect_error("cluster: \"..\"\n", 1, 10, "cluster: \"..\" cannot be one segment of an etcd key");
	expect_error("cluster: \"a\\x01b\"\n", 1, 10, "cluster: \"a?b\" cannot be one segment of an etcd key");
	expect_error("cluster: \"a\\tb\"\n", 1, 10, "cannot be one segment of an etcd key");
	expect_error("cluster: \"\"\n", 1, 10, "cluster: must not be empty");
	expect_error("cluster:\n", 1, 1, "cluster: missing value");

	_cleanup_free_ char *longer = NULL;
	cr_assert_geq(asprintf(&longer, "cluster: %0201d\n", 0), 0);
	expect_error(longer, 1, 10, "at most 200 bytes");
}

Test(conf, node_id_not_a_key_segment) {
	expect_error("cluster: a\nnode_id: ..\n", 2, 10, "node_id: \"..\" cannot be one segment of an etcd key");
	expect_error("cluster: a\nnode_id: \"x\\x7f\"\n", 2, 10, "node_id: \"x?\" cannot be one segment");
}

/* The longest name keys.h takes loads, and the default prefix is built from
 * it by keys_prefix_for_cluster(). */
Test(conf, cluster_longest_and_default_prefix) {
	_cleanup_free_ char *text = NULL, *want = NULL;
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error e;

	cr_assert_geq(asprintf(&text, "cluster: %0200d\nnode_id: n1\naddress: a\n" ETCD, 7), 0);
	cr_assert_eq(load(text, &c, &e), 0, "%s", e.message);
	cr_assert_geq(asprintf(&want, "/corral/%0200d", 7), 0);
	cr_assert_str_eq(c->prefix, want);
}

/* A conf lives as long as its last reference: the loader's, then each one
 * conf_ref() took. Under ASan a free too early is a use-after-free here. */
Test(conf, reference_count) {
	conf_error e;
	conf *c = NULL;

	cr_assert_eq(load(BASE ETCD "files:\n  f: {path: /f}\n", &c, &e), 0, "%s", e.message);
	cr_assert_eq(conf_ref(c), c);
	cr_assert_eq(conf_ref(c), c);
	cr_assert_null(conf_unref(c));
	cr_assert_null(conf_free(c));           /* the same as conf_unref() */
	cr_assert_str_eq(c->files[0].path, "/f", "freed while a reference was held");
	cr_assert_str_eq(c->prefix, "/corral/prod");
	cr_assert_null(conf_unref(c));          /* the last: frees (ASan: no leak) */
	cr_assert_null(conf_ref(NULL));
	cr_assert_null(conf_unref(NULL));
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
	b->etcd.attempt_timeout_usec++;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.attempt_timeout_usec--;
	b->etcd.watch_progress_usec++;
	cr_expect_not(conf_etcd_equal(&a->etcd, &b->etcd));
	b->etcd.watch_progress_usec--;
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
			   "  username: u\n  password: 'p'\n  request_timeout: 1m\n  connect_timeout: 1\n"
			   "files:\n  cms:\n    path: /etc/cms/cms.conf\n    check: cmsCheck \"$1\"\n"
			   "    mode: \"0640\"\n    owner: 0\n    group: root\n"
			   "    restart: [cms-worker.service, cms-log.service]\n    reload: [nginx.service]\n"
			   "  ranking:\n    path: /etc/cms/cms.ranking.conf\n    format: command\n    command: cat\n"
			   "topology:\n  - service: Worker\n    path: cms/core_services/Worker\n"
			   "    value: [\"{address}\", 26000]\n"
			   "  - {service: LogService, path: cms/core_services/LogService, value: [\"{address}\", 29000]}\n"
			   "initial:\n  cms:\n    database: \"postgresql+psycopg2://cms@db/cms\"\n"
			   "    keep_alive: 15.5\n    secret_key: ~\n    flags: [true, -1, 0x10]\n  ranking: {}\n"
			   "units_bus: user\ndebounce: 250ms\nmax_wait: 5s\ncommand_timeout: 10s\n"
			   "unit_timeout: 2m\nhistory: 50\n";
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

/* ---- the render section ------------------------------------------------- */

/* BASE and ETCD take lines 1-5; what a test adds starts on line 6. */
#define HEAD BASE ETCD

static conf *load_ok(const char *text) {
	conf *c = NULL;
	conf_error err;
	char buf[600];

	int r = load(text, &c, &err);
	cr_assert_eq(r, 0, "%s\nfor:\n%s", conf_error_format(&err, buf, sizeof buf), text);
	return c;
}

static void expect_json(json_t *got, const char *want_text) {
	json_error_t jerr;
	json_auto_t *want = json_loads(want_text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(want, "bad expectation %s: %s", want_text, jerr.text);
	cr_assert_not_null(got, "no value, want %s", want_text);
	_cleanup_free_ char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	/* json_equal() tells 1 from 1.0, so the JSON types are checked too. */
	cr_expect(json_equal(got, want), "got %s want %s", g, want_text);
}

Test(conf, files_every_key) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD
		"files:\n"
		"  cms:\n"
		"    path: /etc/cms/cms.conf\n"
		"    format: json\n"
		"    check: cmsCheckConfig \"$1\"\n"
		"    mode: \"0640\"\n"
		"    owner: root\n"
		"    group: root\n"
		"    restart: [cms-worker.service, cms-log.service]\n"
		"    reload:\n      - nginx.service\n"
		"  nginx:\n"
		"    path: /etc/nginx/sites-enabled/cms\n"
		"    format: command\n"
		"    command: /usr/local/bin/render-nginx\n"
		"    owner: 1000\n"
		"    group: 2000\n");

	cr_assert_eq(c->n_files, 2);
	conf_file *f = &c->files[0];
	cr_expect_str_eq(f->name, "cms");
	cr_expect_str_eq(f->path, "/etc/cms/cms.conf");
	cr_expect_eq(f->format, CONF_FORMAT_JSON);
	cr_expect_null(f->command);
	cr_expect_str_eq(f->check, "cmsCheckConfig \"$1\"");
	cr_expect_eq(f->mode, 0640);
	cr_expect_eq(f->uid, 0);
	cr_expect_eq(f->gid, 0);
	expect_strv(f->restart, (const char *[]){ "cms-worker.service", "cms-log.service", NULL });
	expect_strv(f->reload, (const char *[]){ "nginx.service", NULL });

	f = &c->files[1];
	cr_expect_str_eq(f->name, "nginx");
	cr_expect_eq(f->format, CONF_FORMAT_COMMAND);
	cr_expect_str_eq(f->command, "/usr/local/bin/render-nginx");
	cr_expect_null(f->check);
	cr_expect_eq(f->mode, 0644);
	cr_expect_eq(f->uid, 1000);
	cr_expect_eq(f->gid, 2000);
	expect_strv(f->restart, (const char *[]){ NULL });
	expect_strv(f->reload, (const char *[]){ NULL });
}

Test(conf, files_format_toml) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "files:\n  cms: {path: /etc/cms/cms.toml, format: toml}\n");

	cr_assert_eq(c->n_files, 1);
	cr_expect_eq(c->files[0].format, CONF_FORMAT_TOML);
	cr_expect_null(c->files[0].command);
}

Test(conf, files_defaults) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "files:\n  cms: {path: /etc/cms/cms.conf}\n");

	cr_assert_eq(c->n_files, 1);
	cr_expect_eq(c->files[0].format, CONF_FORMAT_JSON);
	cr_expect_eq(c->files[0].mode, 0644);
	cr_expect_eq(c->files[0].uid, (uid_t) -1);
	cr_expect_eq(c->files[0].gid, (gid_t) -1);
	cr_expect_null(c->files[0].check);
	expect_strv(c->files[0].restart, (const char *[]){ NULL });
	expect_strv(c->files[0].reload, (const char *[]){ NULL });
}

Test(conf, files_empty_mapping) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "files: {}\ntopology: []\n");
	cr_expect_eq(c->n_files, 0);
	cr_expect_eq(c->n_topology, 0);
}

Test(conf, files_keep_file_order) {
	_cleanup_(conf_freep) conf *c =
		load_ok(HEAD "files:\n  z: {path: /z}\n  a: {path: /a}\n  m: {path: /m/x.conf}\n");
	cr_assert_eq(c->n_files, 3);
	cr_expect_str_eq(c->files[0].name, "z");
	cr_expect_str_eq(c->files[1].name, "a");
	cr_expect_str_eq(c->files[2].name, "m");
}

Test(conf, mode_spellings) {
	static const struct {
		const char *text;
		mode_t mode;
	} table[] = {
		{ "0640", 0640 }, { "\"0640\"", 0640 }, { "'0600'", 0600 }, { "640", 0640 }, { "0o755", 0755 },
		{ "0", 0 },       { "07777", 07777 },   { "00000644", 0644 }, { "4755", 04755 },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		cr_assert_geq(asprintf(&text, HEAD "files:\n  f:\n    path: /f\n    mode: %s\n", table[i].text), 0);
		_cleanup_(conf_freep) conf *c = load_ok(text);
		cr_expect_eq(c->files[0].mode, table[i].mode, "%s: got %o", table[i].text, c->files[0].mode);
	}
}

Test(conf, mode_invalid) {
	static const char *const table[] = { "0648", "rw-r--r--", "0x1a4", "-0640", "010000", "\"\"", "0o", "+644",
					     "[0640]", "6.4", "0o9" };
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		cr_assert_geq(asprintf(&text, HEAD "files:\n  f:\n    path: /f\n    mode: %s\n", table[i]), 0);
		conf *c = NULL;
		conf_error err;
		cr_expect_eq(load(text, &c, &err), -EINVAL, "%s accepted", table[i]);
		cr_expect_eq(err.line, 9, "%s: line %u", table[i], err.line);
		cr_expect_eq(err.column, 11, "%s: column %u", table[i], err.column);
		cr_expect_not_null(strstr(err.message, "files.f.mode"), "%s: %s", table[i], err.message);
	}
}

Test(conf, owner_and_group_errors) {
	expect_error(HEAD "files:\n  f:\n    path: /f\n    owner: no-such-user-here\n", 9, 12,
		     "files.f.owner: unknown user \"no-such-user-here\"");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    group: no-such-group-here\n", 9, 12,
		     "files.f.group: unknown group \"no-such-group-here\"");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    owner: 4294967295\n", 9, 12, "files.f.owner: 4294967295 is out of range");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    group: 99999999999999999999999\n", 9, 12, "out of range");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    owner: -1\n", 9, 12, "unknown user \"-1\"");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    owner: [root]\n", 9, 12,
		     "files.f.owner: expected a user name or number");
}

Test(conf, owner_names_resolve) {
	/* root is 0 everywhere; a real lookup rather than a number. */
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "files:\n  f: {path: /f, owner: root, group: \"0\"}\n");
	cr_expect_eq(c->files[0].uid, 0);
	cr_expect_eq(c->files[0].gid, 0);
}

Test(conf, files_path_errors) {
	expect_error(HEAD "files:\n  f:\n    path: etc/cms.conf\n", 8, 11, "files.f.path: \"etc/cms.conf\" is not an absolute path");
	expect_error(HEAD "files:\n  f:\n    path: /etc/./cms.conf\n", 8, 11,
		     "files.f.path: \"/etc/./cms.conf\" must not contain \".\" or \"..\" components");
	expect_error(HEAD "files:\n  f:\n    path: /etc/../cms.conf\n", 8, 11, "must not contain");
	expect_error(HEAD "files:\n  f:\n    path: /etc/cms/..\n", 8, 11, "must not contain");
	expect_error(HEAD "files:\n  f:\n    path: /.\n", 8, 11, "must not contain");
	expect_error(HEAD "files:\n  f:\n    path: /\n", 8, 11, "files.f.path: \"/\" names no file");
	expect_error(HEAD "files:\n  f:\n    path: ///\n", 8, 11, "names no file");
	expect_error(HEAD "files:\n  f:\n    path: [/a]\n", 8, 11, "files.f.path: expected a path");
	expect_error(HEAD "files:\n  f:\n    mode: \"0600\"\n", 8, 5, "files.f: path is required");
	expect_error(HEAD "files:\n  f: {}\n", 7, 6, "files.f: path is required");
}

Test(conf, files_path_slashes_collapsed) {
	static const struct {
		const char *in, *out;
	} table[] = {
		{ "/etc/cms.conf", "/etc/cms.conf" }, { "/tmp//hx-1/cms.conf", "/tmp/hx-1/cms.conf" },
		{ "//etc///cms/", "/etc/cms" },         { "/a/.b/..c/...", "/a/.b/..c/..." },
		{ "/x", "/x" },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		cr_assert_geq(asprintf(&text, HEAD "files:\n  f: {path: \"%s\"}\n", table[i].in), 0);
		_cleanup_(conf_freep) conf *c = load_ok(text);
		cr_expect_str_eq(c->files[0].path, table[i].out, "%s", table[i].in);
	}
}

Test(conf, files_same_path_twice) {
	/* The same file in two spellings is still the same file. */
	expect_error(HEAD "files:\n  a: {path: /etc//x}\n  b: {path: /etc/x/}\n", 8, 13,
		     "files.b: \"/etc/x\" is also the path of files.a");

	expect_error(HEAD "files:\n  a: {path: /etc/x}\n  b:\n    mode: \"0600\"\n    path: /etc/x\n", 10, 11,
		     "files.b: \"/etc/x\" is also the path of files.a");
}

Test(conf, files_format_and_command) {
	expect_error(HEAD "files:\n  f:\n    path: /f\n    format: command\n", 9, 5,
		     "files.f: format command requires command");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    command: cat\n", 9, 5,
		     "files.f: command is only for format: command");
	expect_error(HEAD "files:\n  f:\n    command: cat\n    path: /f\n    format: json\n", 8, 5,
		     "command is only for format: command");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    format: yaml\n", 9, 13,
		     "files.f.format: unknown format \"yaml\" (expected json, toml or command)");
	expect_error(HEAD "files:\n  f:\n    command: cat\n    path: /f\n    format: toml\n", 8, 5,
		     "command is only for format: command");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    format: command\n    command: \"\"\n", 10, 14,
		     "files.f.command: must not be empty");
}

Test(conf, files_structure_errors) {
	expect_error(HEAD "files: [cms]\n", 6, 8, "files: expected a mapping of file names");
	expect_error(HEAD "files: /etc/cms/cms.conf\n", 6, 8, "files: expected a mapping of file names");
	expect_error(HEAD "files:\n", 6, 1, "files: missing value");
	expect_error(HEAD "files:\n  cms:\n", 7, 3, "files.cms: missing value");
	expect_error(HEAD "files:\n  cms: /etc/cms/cms.conf\n", 7, 8, "files.cms: expected a mapping");
	expect_error(HEAD "files:\n  [a]: {path: /a}\n", 7, 3, "files: file names must be strings");
	expect_error(HEAD "files:\n  \"\": {path: /a}\n", 7, 3, "files: must not be empty");
	expect_error(HEAD "files:\n  a: {path: /a}\n  a: {path: /b}\n", 8, 3, "duplicate key \"files.a\"");
	expect_error(HEAD "files:\n  a: {path: /a, paht: /b}\n", 7, 17, "unknown key \"files.a.paht\"");
	expect_error(HEAD "files:\n  a: {path: /a, path: /b}\n", 7, 17, "duplicate key \"files.a.path\"");
	expect_error(HEAD "files:\n  a: {path: /a, check: }\n", 7, 17, "files.a.check: missing value");
}

Test(conf, files_unit_names) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "files:\n  f:\n    path: /f\n"
		"    restart: [a.service, b.socket, c.target, d.timer, e.path, f.mount, g@1.service]\n"
		"    reload: [h.automount, i.swap, j.slice]\n");
	expect_strv(c->files[0].restart, (const char *[]){ "a.service", "b.socket", "c.target", "d.timer", "e.path",
							    "f.mount", "g@1.service", NULL });
	expect_strv(c->files[0].reload, (const char *[]){ "h.automount", "i.swap", "j.slice", NULL });

	expect_error(HEAD "files:\n  f:\n    path: /f\n    restart: [a.service, cms]\n", 9, 26,
		     "files.f.restart: \"cms\" is not a unit name");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    reload: [.service]\n", 9, 14, "files.f.reload: \".service\" is not a unit name");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    reload: [a/b.service]\n", 9, 14, "is not a unit name");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    reload: [dev-sda.device]\n", 9, 14, "is not a unit name");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    reload: [a.Service]\n", 9, 14, "is not a unit name");
	expect_error(HEAD "files:\n  f:\n    path: /f\n    restart: cms.service\n", 9, 14,
		     "files.f.restart: expected a sequence of strings");
}

Test(conf, topology_rules) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "topology:\n"
		"  - service: Worker\n    path: cms/core_services/Worker\n    value: [\"{address}\", 26000]\n"
		"  - {service: ContestWebServer, path: cms/a%2Fb/x, value: {host: \"{address}:8888\", id: \"{node_id}\"}}\n"
		"  - {service: Single, path: single, value: 7}\n");
	cr_assert_eq(c->n_topology, 3);
	cr_expect_str_eq(c->topology[0].service, "Worker");
	cr_expect_str_eq(c->topology[0].path, "cms/core_services/Worker");
	expect_json(c->topology[0].value, "[\"{address}\", 26000]");
	cr_expect_str_eq(c->topology[1].path, "cms/a%2Fb/x");
	expect_json(c->topology[1].value, "{\"host\": \"{address}:8888\", \"id\": \"{node_id}\"}");
	cr_expect_str_eq(c->topology[2].path, "single");
	expect_json(c->topology[2].value, "7");
}

Test(conf, topology_errors) {
	expect_error(HEAD "topology: {service: W}\n", 6, 11, "topology: expected a sequence of rules");
	expect_error(HEAD "topology:\n  - Worker\n", 7, 5, "topology[0]: expected a mapping with service, path and value");
	expect_error(HEAD "topology:\n  - {service: W, path: a/b, value: 1}\n  -\n", 8, 4, "topology[1]: expected a mapping");
	expect_error(HEAD "topology:\n  - {path: a/b, value: 1}\n", 7, 5, "topology[0]: service is required");
	expect_error(HEAD "topology:\n  - {service: W, value: 1}\n", 7, 5, "topology[0]: path is required");
	expect_error(HEAD "topology:\n  - {service: W, path: a/b}\n", 7, 5, "topology[0]: value is required");
	expect_error(HEAD "topology:\n  - {service: W, path: a/b, value: ~}\n", 7, 29, "topology[0].value: missing value");
	expect_error(HEAD "topology:\n  - {service: W, path: a/b, value: 1, extra: 2}\n", 7, 39,
		     "unknown key \"topology[0].extra\"");
	expect_error(HEAD "topology:\n  - {service: W, path: a//b, value: 1}\n", 7, 24, "topology[0].path: ");
	expect_error(HEAD "topology:\n  - {service: W, path: a/%zz, value: 1}\n", 7, 24, "topology[0].path: ");
	expect_error(HEAD "topology:\n  - {service: W, path: /a/b, value: 1}\n", 7, 24, "topology[0].path: ");
	expect_error(HEAD "topology:\n  - {service: W, path: [a], value: 1}\n", 7, 24, "topology[0].path: expected a path");
	expect_error(HEAD "topology:\n  - {service: [W], path: a, value: 1}\n", 7, 15, "topology[0].service: expected a string");
	expect_error(HEAD "topology:\n  - {service: W, path: a, value: .inf}\n", 7, 34, "topology[0].value: .inf has no JSON equivalent");
}

/* The YAML 1.2 core schema, plain scalar by plain scalar, and quoting. */
Test(conf, yaml_to_json_typing) {
	static const struct {
		const char *yaml, *json;
	} table[] = {
		{ "~", "null" }, { "null", "null" }, { "Null", "null" }, { "NULL", "null" }, { "", "null" },
		{ "nULL", "\"nULL\"" }, { "true", "true" }, { "True", "true" }, { "TRUE", "true" },
		{ "false", "false" }, { "False", "false" }, { "FALSE", "false" }, { "yes", "\"yes\"" },
		{ "no", "\"no\"" }, { "on", "\"on\"" }, { "tRUE", "\"tRUE\"" }, { "0", "0" }, { "-0", "0" },
		{ "26000", "26000" }, { "-17", "-17" }, { "+17", "17" }, { "0640", "640" },
		{ "9223372036854775807", "9223372036854775807" }, { "-9223372036854775808", "-9223372036854775808" },
		{ "0o17", "15" }, { "0x1F", "31" }, { "0xff", "255" }, { "0X1F", "\"0X1F\"" }, { "0b101", "\"0b101\"" },
		{ "1.5", "1.5" }, { "-1.5", "-1.5" }, { ".5", "0.5" }, { "1.", "1.0" }, { "1e3", "1000.0" },
		{ "1E-2", "0.01" }, { "+2.5e+2", "250.0" }, { "1e-400", "0.0" }, { "1_000", "\"1_000\"" },
		{ "1:30", "\"1:30\"" }, { "10.0.0.5", "\"10.0.0.5\"" }, { "hello world", "\"hello world\"" },
		{ "\"26000\"", "\"26000\"" }, { "'true'", "\"true\"" }, { "\"~\"", "\"~\"" }, { "''", "\"\"" },
		{ "\"a\\tb\"", "\"a\\tb\"" }, { "\"a\\0b\"", "\"a\\u0000b\"" }, { "|\n      x\n      y", "\"x\\ny\\n\"" },
		{ ">-\n      x\n      y", "\"x y\"" }, { "[1, a, ~]", "[1, \"a\", null]" }, { "[]", "[]" }, { "{}", "{}" },
		{ "{a: {b: [true, {c: 1.25}]}}", "{\"a\": {\"b\": [true, {\"c\": 1.25}]}}" },
		{ "{1: a, true: b, ~: c, 1.5: d}", "{\"1\": \"a\", \"true\": \"b\", \"~\": \"c\", \"1.5\": \"d\"}" },
		{ "{<<: x}", "{\"<<\": \"x\"}" }, { "!!str 123", "123" }, { "\"{address}\"", "\"{address}\"" },
		{ "é", "\"é\"" },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		_cleanup_free_ char *text = NULL;
		cr_assert_geq(asprintf(&text, HEAD "initial:\n  f:\n    v: %s\n", table[i].yaml), 0);
		conf *c = NULL;
		conf_error err;
		int r = load(text, &c, &err);
		cr_expect_eq(r, 0, "%s: %s", table[i].yaml, err.message);
		if (r < 0)
			continue;
		json_t *v = json_object_get(json_object_get(c->initial, "f"), "v");
		json_error_t jerr;
		json_t *want = json_loads(table[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		cr_assert_not_null(want, "%s", table[i].json);
		_cleanup_free_ char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		cr_expect(v && json_equal(v, want) && json_typeof(v) == json_typeof(want), "%s: got %s want %s",
			  table[i].yaml, got, table[i].json);
		json_decref(want);
		conf_free(c);
	}
}

Test(conf, yaml_to_json_errors) {
	expect_error(HEAD "initial:\n  f: 9223372036854775808\n", 7, 6, "initial: integer 9223372036854775808 is out of range");
	expect_error(HEAD "initial:\n  f: -9223372036854775809\n", 7, 6, "out of range");
	expect_error(HEAD "initial:\n  f: 0x10000000000000000\n", 7, 6, "out of range");
	expect_error(HEAD "initial:\n  f: 1e999\n", 7, 6, "initial: number 1e999 is out of range");
	expect_error(HEAD "initial:\n  f: [.nan]\n", 7, 7, "initial: .nan has no JSON equivalent");
	expect_error(HEAD "initial:\n  f: -.inf\n", 7, 6, "initial: -.inf has no JSON equivalent");
	expect_error(HEAD "initial:\n  f: {[a]: 1}\n", 7, 7, "initial: keys must be strings");
	expect_error(HEAD "initial:\n  f: {{a: 1}: 1}\n", 7, 7, "initial: keys must be strings");
	expect_error(HEAD "initial:\n  f: {\"a\\0b\": 1}\n", 7, 7, "initial: keys must not contain a NUL byte");
	expect_error(HEAD "initial:\n  f: {a: 1, b: 2, a: 3}\n", 7, 19, "initial: duplicate key \"a\"");
	expect_error(HEAD "initial:\n  f: {1: a, \"1\": b}\n", 7, 13, "initial: duplicate key \"1\"");
	expect_error(HEAD "initial:\n  f: {a: 1}\n  f: {b: 1}\n", 8, 3, "initial: duplicate key \"f\"");
}

Test(conf, yaml_aliases) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "initial:\n  a: &x {k: [1, 2]}\n  b: *x\n  c: [*x, *x]\n");
	expect_json(c->initial, "{\"a\": {\"k\": [1, 2]}, \"b\": {\"k\": [1, 2]}, \"c\": [{\"k\": [1, 2]}, {\"k\": [1, 2]}]}");
	/* Copies, not shared: changing one leaves the others. */
	json_object_set_new(json_object_get(c->initial, "a"), "k", json_null());
	expect_json(json_object_get(c->initial, "b"), "{\"k\": [1, 2]}");

	expect_error(HEAD "initial: &a {x: *a}\n", 6, 10, "initial: an alias refers to a value containing it");
	expect_error(HEAD "initial:\n  f: &b [1, [2, *b]]\n", 7, 6, "an alias refers to a value containing it");
}

Test(conf, yaml_billion_laughs_refused) {
	const char *text = HEAD "initial:\n"
		"  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		"  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		"  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		"  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		"  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
		"  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
	conf *c = NULL;
	conf_error err;
	cr_assert_eq(load(text, &c, &err), -EINVAL);
	cr_expect_not_null(strstr(err.message, "initial: more than 100000 values"), "%s", err.message);
	cr_expect_null(c);
}

Test(conf, yaml_depth_limited) {
	_cleanup_free_ char *deep = NULL, *ok = NULL;
	char open[200] = "", close[200] = "";

	/* 63 nested sequences under initial.f: 65 levels with the two maps. */
	memset(open, '[', 70);
	memset(close, ']', 70);
	cr_assert_geq(asprintf(&deep, HEAD "initial:\n  f: %s1%s\n", open, close), 0);
	conf *c = NULL;
	conf_error err;
	cr_assert_eq(load(deep, &c, &err), -EINVAL);
	cr_expect_not_null(strstr(err.message, "nested deeper than 64 levels"), "%s", err.message);

	open[62] = close[62] = '\0';
	cr_assert_geq(asprintf(&ok, HEAD "initial:\n  f: %s1%s\n", open, close), 0);
	conf_free(load_ok(ok));
}

Test(conf, initial_shape) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "initial:\n  cms: {core_services: {Worker: []}}\n  rank: [1]\n  x: ~\n");
	expect_json(c->initial, "{\"cms\": {\"core_services\": {\"Worker\": []}}, \"rank\": [1], \"x\": null}");

	_cleanup_(conf_freep) conf *e = load_ok(HEAD "initial: {}\n");
	expect_json(e->initial, "{}");

	expect_error(HEAD "initial: [a]\n", 6, 10, "initial: expected a mapping of file names to values");
	expect_error(HEAD "initial: 5\n", 6, 10, "initial: expected a mapping of file names to values");
	expect_error(HEAD "initial:\n", 6, 1, "initial: missing value");
}

static char *write_initial(const char *json) {
	return write_file("initial.json", json);
}

Test(conf, initial_file_loads) {
	_cleanup_free_ char *jpath = write_initial("{\"cms\": {\"a\": [1, 2.5, null, \"x\"]}, \"ranking\": {}}\n");
	_cleanup_free_ char *text = NULL;
	cr_assert_geq(asprintf(&text, HEAD "initial_file: %s\n", jpath), 0);
	_cleanup_(conf_freep) conf *c = load_ok(text);
	expect_json(c->initial, "{\"cms\": {\"a\": [1, 2.5, null, \"x\"]}, \"ranking\": {}}");
}

/* As CMS reads its config (Python's json.load): a repeated key keeps its
 * last value; the daemon gets one warning per key to log. */
Test(conf, initial_file_repeated_keys_keep_the_last) {
	_cleanup_free_ char *dup = write_file("dup.json", "{\"cms\": {\"_help\": \"a\",\n \"_help\": \"b\", \"x\": 1,\n"
							  " \"_help\": \"c\", \"x\": 2}}");
	_cleanup_free_ char *text = NULL, *want = NULL;
	cr_assert_geq(asprintf(&text, HEAD "initial_file: %s\n", dup), 0);
	_cleanup_(conf_freep) conf *c = load_ok(text);
	expect_json(c->initial, "{\"cms\": {\"_help\": \"c\", \"x\": 2}}");
	cr_assert_eq(strv_length(c->warnings), 2);
	cr_assert_geq(asprintf(&want, "%s:2:2: duplicate key \"_help\"", dup), 0);
	cr_assert_eq(strncmp(c->warnings[0], want, strlen(want)), 0, "%s", c->warnings[0]);
	cr_assert_not_null(strstr(c->warnings[1], "duplicate key \"x\""), "%s", c->warnings[1]);
	_cleanup_(conf_freep) conf *plain = load_ok(HEAD);
	cr_assert_null(plain->warnings);
}

Test(conf, initial_file_malformed_json_names_its_place) {
	_cleanup_free_ char *jpath = write_initial("{\n  \"cms\": {\n    \"a\": tru\n  }\n}\n");
	_cleanup_free_ char *text = NULL;
	cr_assert_geq(asprintf(&text, HEAD "initial_file: %s\n", jpath), 0);
	conf *c = NULL;
	conf_error err;
	char buf[800], *want = NULL;

	cr_assert_eq(load(text, &c, &err), -EINVAL);
	cr_expect_null(c);
	cr_expect_str_eq(err.file, jpath);
	cr_expect_eq(err.line, 3);
	cr_expect_gt(err.column, 0);
	cr_expect_not_null(strstr(err.message, "(initial_file at test.yaml:6:15)"), "%s", err.message);
	conf_error_format(&err, buf, sizeof buf);
	cr_assert_geq(asprintf(&want, "%s:3:", jpath), 0);
	cr_expect_eq(strncmp(buf, want, strlen(want)), 0, "%s", buf);
	free(want);
}

Test(conf, initial_file_errors) {
	_cleanup_free_ char *arr = write_file("arr.json", "[1]");
	_cleanup_free_ char *empty = write_file("empty.json", "");
	_cleanup_free_ char *t2 = NULL, *t3 = NULL, *t4 = NULL, *t5 = NULL;
	conf *c = NULL;
	conf_error err;

	cr_assert_geq(asprintf(&t2, HEAD "initial_file: %s\n", arr), 0);
	expect_error(t2, 6, 15, "does not hold a JSON object of file names to values");

	cr_assert_geq(asprintf(&t3, HEAD "initial_file: %s\n", empty), 0);
	cr_expect_eq(load(t3, &c, &err), -EINVAL);
	cr_expect_str_eq(err.file, empty);

	cr_assert_geq(asprintf(&t4, HEAD "initial_file: %s/missing.json\n", tmpdir), 0);
	expect_error(t4, 6, 15, "initial_file: cannot read");

	cr_assert_geq(asprintf(&t5, HEAD "initial_file: %s\n", tmpdir), 0);
	expect_error(t5, 6, 15, "Is a directory");
	cr_expect_null(c);
}

Test(conf, initial_and_initial_file_exclusive) {
	_cleanup_free_ char *jpath = write_initial("{}");
	_cleanup_free_ char *a = NULL, *b = NULL;

	cr_assert_geq(asprintf(&a, HEAD "initial: {}\ninitial_file: %s\n", jpath), 0);
	expect_error(a, 7, 1, "initial and initial_file are mutually exclusive");
	cr_assert_geq(asprintf(&b, HEAD "initial_file: %s\ninitial: {cms: {}}\n", jpath), 0);
	expect_error(b, 7, 1, "initial and initial_file are mutually exclusive");
}

Test(conf, scalars_of_the_render_section) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "units_bus: user\ndebounce: 0\nmax_wait: 0\n"
						 "command_timeout: 1ms\nunit_timeout: 1h\nhistory: 1\n");
	cr_expect_eq(c->units_user_bus, true);
	cr_expect_eq(c->debounce_usec, 0);
	cr_expect_eq(c->max_wait_usec, 0);
	cr_expect_eq(c->command_timeout_usec, USEC_PER_MSEC);
	cr_expect_eq(c->unit_timeout_usec, 3600 * USEC_PER_SEC);
	cr_expect_eq(c->history, 1);

	_cleanup_(conf_freep) conf *d = load_ok(HEAD "units_bus: system\ndebounce: 2s\nmax_wait: 2s\nhistory: \"100000\"\n");
	cr_expect_eq(d->units_user_bus, false);
	cr_expect_eq(d->debounce_usec, 2 * USEC_PER_SEC);
	cr_expect_eq(d->max_wait_usec, 2 * USEC_PER_SEC);
	cr_expect_eq(d->history, 100000);

	/* Only debounce given: the default max_wait must still be >= it. */
	_cleanup_(conf_freep) conf *e = load_ok(HEAD "debounce: 10s\n");
	cr_expect_eq(e->max_wait_usec, 10 * USEC_PER_SEC);
}

Test(conf, scalars_of_the_render_section_invalid) {
	expect_error(HEAD "units_bus: session\n", 6, 12, "units_bus: unknown bus \"session\" (expected system or user)");
	expect_error(HEAD "units_bus: [user]\n", 6, 12, "units_bus: expected system or user");
	expect_error(HEAD "debounce: soon\n", 6, 11, "debounce: invalid duration");
	expect_error(HEAD "max_wait: -1\n", 6, 11, "max_wait: invalid duration");
	expect_error(HEAD "command_timeout: 0\n", 6, 18, "command_timeout: must be at least 1ms");
	expect_error(HEAD "unit_timeout: 0.0001\n", 6, 15, "unit_timeout: must be at least 1ms");
	expect_error(HEAD "history: 0\n", 6, 10, "history: must be between 1 and 100000");
	expect_error(HEAD "history: 100001\n", 6, 10, "history: must be between 1 and 100000");
	expect_error(HEAD "history: 99999999999999999999999\n", 6, 10, "history: must be between 1 and 100000");
	expect_error(HEAD "history: -1\n", 6, 10, "history: \"-1\" is not a whole number");
	expect_error(HEAD "history: 2.5\n", 6, 10, "not a whole number");
	expect_error(HEAD "history: {}\n", 6, 10, "history: expected a number");
}

Test(conf, max_wait_below_debounce) {
	expect_error(HEAD "debounce: 5s\nmax_wait: 4s\n", 7, 11, "max_wait must be at least debounce");
	expect_error(HEAD "max_wait: 4s\ndebounce: 5s\n", 6, 11, "max_wait must be at least debounce");
	/* No max_wait written: point at the debounce that exceeds the default. */
	expect_error(HEAD "debounce: 11s\n", 6, 11, "max_wait must be at least debounce");
}

Test(conf, write_retry) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "write_retry: 10ms\nwrite_retry_max: 10ms\n");
	cr_expect_eq(c->write_retry_usec, 10 * USEC_PER_MSEC);
	cr_expect_eq(c->write_retry_max_usec, 10 * USEC_PER_MSEC);
	_cleanup_(conf_freep) conf *d = load_ok(HEAD "write_retry: 30s\nwrite_retry_max: 1h\n");
	cr_expect_eq(d->write_retry_usec, 30 * USEC_PER_SEC);
	cr_expect_eq(d->write_retry_max_usec, 3600 * USEC_PER_SEC);

	expect_error(HEAD "write_retry: 5ms\n", 6, 14, "write_retry: must be at least 10ms");
	expect_error(HEAD "write_retry_max: never\n", 6, 18, "write_retry_max: invalid duration");
	expect_error(HEAD "write_retry: 5s\nwrite_retry_max: 4s\n", 7, 18,
		     "write_retry_max must be at least write_retry");
	/* No write_retry_max written: point at the write_retry above the default. */
	expect_error(HEAD "write_retry: 2m\n", 6, 14, "write_retry_max must be at least write_retry");
}

Test(conf, render_section_unknown_and_duplicate_keys) {
	expect_error(HEAD "file:\n  a: {path: /a}\n", 6, 1, "unknown key \"file\"");
	expect_error(HEAD "history: 3\nhistory: 4\n", 7, 1, "duplicate key \"history\"");
	expect_error(HEAD "topology:\n  - {service: W, path: a, value: 1, service: X}\n", 7, 37,
		     "duplicate key \"topology[0].service\"");
}

/* Every allocation in a fully loaded render section is released (ASan's
 * leak checker is what actually judges this; it runs in the ASan build). */
Test(conf, render_section_free_after_failure_midway) {
	/* A failure in the second file and in the second rule, after the first
	 * of each was kept: nothing may leak. */
	expect_error(HEAD "files:\n  a: {path: /a, restart: [a.service]}\n  b: {path: b}\n", 8, 13, "not an absolute path");
	expect_error(HEAD "topology:\n  - {service: W, path: a, value: [1, {x: y}]}\n  - {service: W, path: a}\n", 8, 5,
		     "value is required");
	expect_error(HEAD "initial:\n  a: {b: [1, 2, {c: d}]}\n  e: .nan\n", 8, 6, "no JSON equivalent");
}

/* ---- autoscaling keys: ec2, pool, scale_interval, launch_grace ---------- */

Test(conf, scale_keys_default_absent) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD);
	cr_assert_null(c->ec2.region, "no region: this node never scales");
	cr_assert_null(c->ec2.endpoint);
	cr_assert_null(c->ec2.instance_id);
	cr_assert_null(c->pool);
	cr_assert_eq(c->scale_interval_usec, 30 * USEC_PER_SEC);
	cr_assert_eq(c->launch_grace_usec, 300 * USEC_PER_SEC);
}

Test(conf, scale_keys_all) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "pool: web\nscale_interval: 10s\nlaunch_grace: 2m\n"
						     "ec2:\n  region: eu-west-1\n  endpoint: http://127.0.0.1:5000/\n"
						     "  imds_endpoint: \"\"\n  credentials_file: /etc/corral/aws\n"
						     "  profile: corral\n  instance_id: i-0abc\n");
	cr_assert_str_eq(c->ec2.region, "eu-west-1");
	cr_assert_str_eq(c->ec2.endpoint, "http://127.0.0.1:5000/");
	cr_assert_str_eq(c->ec2.imds_endpoint, "", "\"\" = no IMDS");
	cr_assert_str_eq(c->ec2.credentials_file, "/etc/corral/aws");
	cr_assert_str_eq(c->ec2.profile, "corral");
	cr_assert_str_eq(c->ec2.instance_id, "i-0abc");
	cr_assert_str_eq(c->pool, "web");
	cr_assert_eq(c->scale_interval_usec, 10 * USEC_PER_SEC);
	cr_assert_eq(c->launch_grace_usec, 120 * USEC_PER_SEC);
}

Test(conf, scale_keys_invalid) {
	expect_error(HEAD "ec2:\n  regoin: us-east-1\n", 7, 3, "unknown key \"ec2.regoin\"");
	expect_error(HEAD "ec2:\n  region: a/b\n", 7, 11, "ec2.region: must not contain '/'");
	expect_error(HEAD "pool: a/b\n", 6, 7, "pool: must not contain '/'");
	expect_error(HEAD "scale_interval: 0\n", 6, 17, "scale_interval: must be at least 1s");
	expect_error(HEAD "launch_grace: soon\n", 6, 15, "launch_grace: invalid duration");
	expect_error(HEAD "ec2:\n  instance_id: \"\"\n", 7, 16, "ec2.instance_id: must not be empty");
}

/* ---- instance_id: auto, and EC2 recognised by DMI ------------------------ */

/* A DMI directory like /sys/devices/virtual/dmi/id with the given files
 * (NULL: absent); returns its path. */
static char *dmi(const char *name, const char *vendor, const char *asset_tag) {
	char *dir = NULL;
	cr_assert_geq(asprintf(&dir, "%s/%s", tmpdir, name), 0);
	cr_assert_eq(mkdir(dir, 0755), 0);
	_cleanup_free_ char *v = NULL, *t = NULL;
	cr_assert_geq(asprintf(&v, "%s/sys_vendor", name), 0);
	cr_assert_geq(asprintf(&t, "%s/board_asset_tag", name), 0);
	if (vendor)
		free(write_file(v, vendor));
	if (asset_tag)
		free(write_file(t, asset_tag));
	return dir;
}

Test(conf, dmi_recognises_ec2) {
	_cleanup_free_ char *nitro = dmi("nitro", "Amazon EC2\n", "i-0123456789abcdef0\n");
	_cleanup_free_ char *vendor = dmi("vendor", "Amazon EC2\n", NULL);
	_cleanup_free_ char *tag = dmi("tag", "Xen\n", "i-0abc\n");
	_cleanup_free_ char *qemu = dmi("qemu", "QEMU\n", "Not Specified\n");
	_cleanup_free_ char *empty = dmi("empty", NULL, NULL);
	_cleanup_free_ char *amazon = dmi("amazon", "Amazon.com\n", "\n");

	cr_assert(conf_dmi_is_ec2(nitro));
	cr_assert(conf_dmi_is_ec2(vendor), "sys_vendor alone is enough");
	cr_assert(conf_dmi_is_ec2(tag), "an i- asset tag alone is enough");
	cr_assert(!conf_dmi_is_ec2(qemu));
	cr_assert(!conf_dmi_is_ec2(empty), "no DMI files: not EC2");
	cr_assert(!conf_dmi_is_ec2(amazon), "another Amazon product is not an EC2 instance");
	cr_assert(!conf_dmi_is_ec2("/nonexistent/dmi"), "no DMI at all (a container): not EC2");
}

static conf *load_with_dmi(const char *dir, const char *ec2_more) {
	_cleanup_free_ char *text = NULL;
	cr_assert_geq(asprintf(&text, HEAD "ec2:\n  dmi_dir: %s\n%s", dir, ec2_more), 0);
	return load_ok(text);
}

Test(conf, instance_id_defaults_to_auto_on_ec2_only) {
	_cleanup_free_ char *ec2 = dmi("ec2", "Amazon EC2\n", NULL), *other = dmi("other", "QEMU\n", NULL);
	_cleanup_(conf_freep) conf *on_ec2 = load_with_dmi(ec2, "");
	_cleanup_(conf_freep) conf *elsewhere = load_with_dmi(other, "");
	_cleanup_(conf_freep) conf *imds_off = load_with_dmi(ec2, "  imds_endpoint: \"\"\n");

	cr_assert_str_eq(on_ec2->ec2.dmi_dir, ec2);
	cr_assert(on_ec2->ec2.instance_auto, "an EC2 machine learns its identity by default");
	cr_assert_null(on_ec2->ec2.instance_id, "learned at start, not known yet");
	cr_assert(!elsewhere->ec2.instance_auto, "not EC2: nothing to ask");
	cr_assert(!imds_off->ec2.instance_auto, "IMDS turned off: nothing to ask");
}

Test(conf, dmi_dir_default_from_the_environment) {
	_cleanup_free_ char *ec2 = dmi("ec2", "Amazon EC2\n", NULL), *other = dmi("other", "QEMU\n", NULL);
	const char *saved = getenv("CORRAL_DMI_DIR");
	_cleanup_free_ char *keep = saved ? strdup(saved) : NULL;

	cr_assert_eq(setenv("CORRAL_DMI_DIR", ec2, 1), 0);
	_cleanup_(conf_freep) conf *env = load_ok(HEAD);
	_cleanup_(conf_freep) conf *key = load_with_dmi(other, "");
	if (keep)
		setenv("CORRAL_DMI_DIR", keep, 1);
	else
		unsetenv("CORRAL_DMI_DIR");
	cr_assert(env->ec2.instance_auto, "CORRAL_DMI_DIR moves the default DMI dir");
	cr_assert(!key->ec2.instance_auto, "ec2.dmi_dir beats the environment");
}

Test(conf, instance_id_auto_none_and_given) {
	_cleanup_free_ char *ec2 = dmi("ec2", "Amazon EC2\n", NULL), *other = dmi("other", "QEMU\n", NULL);
	_cleanup_(conf_freep) conf *a = load_with_dmi(other, "  instance_id: auto\n");
	_cleanup_(conf_freep) conf *n = load_with_dmi(ec2, "  instance_id: none\n");
	_cleanup_(conf_freep) conf *g = load_with_dmi(ec2, "  instance_id: i-0abc\n");

	cr_assert(a->ec2.instance_auto, "auto asks IMDS wherever it runs");
	cr_assert_null(a->ec2.instance_id);
	cr_assert(!n->ec2.instance_auto, "none: an EC2 machine that is no host of the fleet");
	cr_assert_null(n->ec2.instance_id);
	cr_assert(!g->ec2.instance_auto, "an id given is taken as it is");
	cr_assert_str_eq(g->ec2.instance_id, "i-0abc");
	expect_error(HEAD "ec2:\n  imds_endpoint: \"\"\n  instance_id: auto\n", 0, 0,
		     "ec2.instance_id: auto needs the instance metadata service");
}

Test(conf, identity_fills_what_the_file_left_out) {
	_cleanup_(conf_freep) conf *bare = load_ok("cluster: prod\n" ETCD "ec2:\n  instance_id: auto\n");
	_cleanup_(conf_freep) conf *given = load_ok(HEAD "pool: mine\nec2:\n  instance_id: auto\n");

	cr_assert(bare->node_id_default && bare->address_default);
	cr_assert_eq(conf_apply_identity(bare, "i-0abc", "10.0.1.7", "web"), 0);
	cr_assert_str_eq(bare->ec2.instance_id, "i-0abc");
	cr_assert_str_eq(bare->node_id, "i-0abc", "no node_id given: the instance id");
	cr_assert_str_eq(bare->address, "10.0.1.7", "no address given: the private address");
	cr_assert_str_eq(bare->pool, "web", "no pool given: the tag's");

	cr_assert(!given->node_id_default && !given->address_default);
	cr_assert_eq(conf_apply_identity(given, "i-0abc", "10.0.1.7", "web"), 0);
	cr_assert_str_eq(given->ec2.instance_id, "i-0abc");
	cr_assert_str_eq(given->node_id, "n1", "the file's node_id stays");
	cr_assert_str_eq(given->address, "10.0.0.5", "the file's address stays");
	cr_assert_str_eq(given->pool, "mine", "the file's pool stays");

	_cleanup_(conf_freep) conf *no_tag = load_ok("cluster: prod\n" ETCD);
	cr_assert_eq(conf_apply_identity(no_tag, "i-0def", NULL, NULL), 0);
	cr_assert_null(no_tag->pool, "no tag in the metadata: no pool");
	cr_assert_eq(conf_apply_identity(no_tag, NULL, NULL, NULL), -EINVAL);
}

/* ---- node agent keys -------------------------------------------------- */

Test(conf, agent_keys_defaults) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD);
	cr_assert_null(c->load_command);
	cr_assert_eq(c->load_interval_usec, 10 * USEC_PER_SEC);
	cr_assert_null(c->wind_down_command);
	cr_assert(!c->interruption_watch);
}

Test(conf, agent_keys_all) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "load_command: echo '{\"jobs\":1}'\nload_interval: 2s\n"
						     "wind_down_command: touch /tmp/x\ninterruption_watch: true\n");
	cr_assert_str_eq(c->load_command, "echo '{\"jobs\":1}'");
	cr_assert_eq(c->load_interval_usec, 2 * USEC_PER_SEC);
	cr_assert_str_eq(c->wind_down_command, "touch /tmp/x");
	cr_assert(c->interruption_watch);
}

Test(conf, agent_keys_invalid) {
	expect_error(HEAD "load_interval: 0.5\n", 6, 16, "load_interval: must be at least 1s");
	expect_error(HEAD "interruption_watch: maybe\n", 6, 21, "interruption_watch: \"maybe\" is not true or false");
	expect_error(HEAD "load_command: [a]\n", 6, 15, "load_command");
	expect_error(HEAD "wind_down_command: \"\"\n", 6, 20, "wind_down_command: must not be empty");
}

Test(conf, metrics_listen_default_off) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD);
	cr_assert_null(c->metrics_listen);
	_cleanup_(conf_freep) conf *e = load_ok(HEAD "metrics_listen: \"\"\n");
	cr_assert_null(e->metrics_listen, "\"\" means off");
}

Test(conf, metrics_listen_forms) {
	static const char *const ok[] = { "127.0.0.1:9469", "0.0.0.0:9469", "127.0.0.1:0", "[::1]:9469", "[::]:65535" };
	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		_cleanup_free_ char *text = NULL;
		cr_assert_geq(asprintf(&text, HEAD "metrics_listen: \"%s\"\n", ok[i]), 0);
		_cleanup_(conf_freep) conf *c = load_ok(text);
		cr_assert_str_eq(c->metrics_listen, ok[i]);
	}
}

Test(conf, metrics_listen_invalid) {
	expect_error(HEAD "metrics_listen: 9469\n", 6, 17, "metrics_listen: \"9469\": expected host:port");
	expect_error(HEAD "metrics_listen: \":9469\"\n", 6, 17, "metrics_listen: \":9469\": no host");
	expect_error(HEAD "metrics_listen: 127.0.0.1:70000\n", 6, 17, "port must be a number from 0 to 65535");
	expect_error(HEAD "metrics_listen: 127.0.0.1:x1\n", 6, 17, "port must be a number from 0 to 65535");
	expect_error(HEAD "metrics_listen: \"127.0.0.1:\"\n", 6, 17, "port must be a number");
	expect_error(HEAD "metrics_listen: localhost:9469\n", 6, 17, "\"localhost\" is not an IPv4 address");
	expect_error(HEAD "metrics_listen: \"::1:9469\"\n", 6, 17, "IPv6 in brackets");
	expect_error(HEAD "metrics_listen: \"[::1]9469\"\n", 6, 17, "expected [IPv6]:port");
	expect_error(HEAD "metrics_listen: \"[10.0.0.1]:9469\"\n", 6, 17, "is not an IPv6 address");
	expect_error(HEAD "metrics_listen: [a]\n", 6, 17, "metrics_listen");
	expect_error(HEAD "metrics_listen:\n", 6, 1, "metrics_listen: missing value");
}

/* ---- upgrade: ------------------------------------------------------------ */

Test(conf, upgrade_absent) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD);
	cr_assert(!c->upgrade.present);
	cr_assert_null(c->upgrade.image_command);
	cr_assert_eq(c->upgrade.steps.n, 0);
	cr_assert_eq(c->upgrade.step_timeout_usec, 300 * USEC_PER_SEC);
}

Test(conf, upgrade_every_kind) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "upgrade:\n"
						     "  image_command: cat /etc/image\n"
						     "  step_timeout: 2m\n"
						     "  prepare:\n"
						     "    - run: pull \"$CORRAL_IMAGE\"\n"
						     "      timeout: 20m\n"
						     "  steps:\n"
						     "    - run: notify\n"
						     "      once: true\n"
						     "    - run: silence\n"
						     "      undo: unsilence\n"
						     "    - stop: [app.service, infra.service]\n"
						     "    - start: [infra.service]\n"
						     "    - restart: [app.service]\n"
						     "    - health: check\n"
						     "      timeout: 10s\n"
						     "    - reboot: true\n"
						     "  cleanup: prune\n");
	const conf_upgrade *u = &c->upgrade;
	cr_assert(u->present);
	cr_assert_str_eq(u->image_command, "cat /etc/image");
	cr_assert_eq(u->step_timeout_usec, 120 * USEC_PER_SEC);
	cr_assert_eq(u->prepare.n, 1);
	cr_assert_eq(u->prepare.steps[0].kind, CONF_STEP_RUN);
	cr_assert_str_eq(u->prepare.steps[0].command, "pull \"$CORRAL_IMAGE\"");
	cr_assert_eq(u->prepare.steps[0].timeout_usec, 1200 * USEC_PER_SEC);
	cr_assert_eq(u->steps.n, 7);
	const conf_step *s = u->steps.steps;
	cr_assert(s[0].once);
	cr_assert_null(s[0].undo);
	cr_assert_eq(s[0].timeout_usec, 0, "no timeout: the section's");
	cr_assert(!s[1].once);
	cr_assert_str_eq(s[1].undo, "unsilence");
	cr_assert_eq(s[2].kind, CONF_STEP_STOP);
	cr_assert_str_eq(s[2].units[0], "app.service");
	cr_assert_str_eq(s[2].units[1], "infra.service");
	cr_assert_null(s[2].units[2]);
	cr_assert_eq(s[3].kind, CONF_STEP_START);
	cr_assert_eq(s[4].kind, CONF_STEP_RESTART);
	cr_assert_eq(s[5].kind, CONF_STEP_HEALTH);
	cr_assert_str_eq(s[5].command, "check");
	cr_assert_eq(s[5].timeout_usec, 10 * USEC_PER_SEC);
	cr_assert_eq(s[6].kind, CONF_STEP_REBOOT);
	cr_assert_eq(u->cleanup.n, 1);
	cr_assert_eq(u->cleanup.steps[0].kind, CONF_STEP_RUN);
	cr_assert_str_eq(u->cleanup.steps[0].command, "prune");
	cr_assert_str_eq(conf_step_kind_to_string(CONF_STEP_RESTART), "restart");
	cr_assert_null(conf_step_kind_to_string(_CONF_STEP_KIND_MAX));
}

Test(conf, upgrade_cleanup_as_steps) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "upgrade:\n  image_command: x\n  cleanup:\n    - run: a\n"
						     "    - restart: [b.service]\n");
	cr_assert_eq(c->upgrade.cleanup.n, 2);
	cr_assert_eq(c->upgrade.cleanup.steps[1].kind, CONF_STEP_RESTART);
}

Test(conf, upgrade_invalid) {
	expect_error(HEAD "upgrade:\n  steps: []\n", 6, 1, "upgrade: image_command is required");
	expect_error(HEAD "upgrade:\n  image_command: x\n  stepz: []\n", 8, 3, "unknown key \"upgrade.stepz\"");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - run: a\n      onse: true\n", 10, 7,
		     "unknown key \"upgrade.steps[0].onse\"");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - run: a\n    - run: b\n      stop: [a.service]\n",
		     10, 7, "upgrade.steps[1]: a step needs exactly one of run, stop");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - once: true\n", 9, 7,
		     "upgrade.steps[0]: a step needs exactly one of");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - health: h\n      undo: u\n", 10, 7,
		     "upgrade.steps[0]: undo is not an option of a health step");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - stop: [a.service]\n      once: true\n", 10, 7,
		     "once is not an option of a stop step");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - reboot: true\n      timeout: 1m\n", 10, 7,
		     "timeout is not an option of a reboot step");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - reboot: false\n", 9, 7, "reboot: false is no step");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - stop: [nginx]\n", 9, 14, "is not a unit name");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - stop: []\n", 9, 7, "stop needs at least one unit");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps: run\n", 8, 10, "upgrade.steps: expected a sequence");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - run\n", 9, 7, "upgrade.steps[0]: expected a step");
	expect_error(HEAD "upgrade:\n  image_command: x\n  step_timeout: 0\n", 8, 17, "step_timeout: must be at least");
	expect_error(HEAD "upgrade:\n  image_command: x\n  steps:\n    - run: a\n      timeout: soon\n", 10, 16,
		     "invalid duration");
}

/* ---- deployments: -------------------------------------------------------- */

Test(conf, deployments_absent) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD);
	cr_assert(!c->deployments.present);
	cr_assert_eq(c->deployments.memory, 0);
	for (size_t i = 0; i < _DEPLOYMENT_HOOK_MAX; i++)
		cr_assert_null(c->deployments.hooks[i]);
}

Test(conf, deployments_every_key) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "deployments:\n  memory: 16G\n  deploy: d\n  maintenance_on: on\n"
						"  maintenance_off: off\n  backup: b\n  remove: r\n  timeout: 2m\n");
	const conf_deployments *d = &c->deployments;
	cr_assert(d->present);
	cr_assert_eq(d->memory, 16LL << 30);
	cr_assert_str_eq(d->hooks[DEPLOYMENT_HOOK_DEPLOY], "d");
	cr_assert_str_eq(d->hooks[DEPLOYMENT_HOOK_MAINTENANCE_ON], "on");
	cr_assert_str_eq(d->hooks[DEPLOYMENT_HOOK_MAINTENANCE_OFF], "off");
	cr_assert_str_eq(d->hooks[DEPLOYMENT_HOOK_BACKUP], "b");
	cr_assert_str_eq(d->hooks[DEPLOYMENT_HOOK_REMOVE], "r");
	cr_assert_eq(d->timeout_usec, 120 * USEC_PER_SEC);
}

/* Left out: the machine's MemTotal, and hooks that succeed at once. */
Test(conf, deployments_defaults) {
	_cleanup_(conf_freep) conf *c = load_ok(HEAD "deployments: {deploy: d}\n");
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kib = 0;
	char line[256];

	cr_assert_not_null(f);
	while (fgets(line, sizeof line, f) && sscanf(line, "MemTotal: %llu kB", &kib) != 1)
		;
	cr_assert_gt(kib, 0);
	cr_assert(c->deployments.present);
	cr_assert_eq(c->deployments.memory, (int64_t) kib * 1024);
	cr_assert_null(c->deployments.hooks[DEPLOYMENT_HOOK_BACKUP]);
	cr_assert_eq(c->deployments.timeout_usec, 3600 * USEC_PER_SEC);
}

Test(conf, deployments_invalid) {
	expect_error(HEAD "deployments:\n  memory: lots\n", 7, 11, "deployments.memory: expected a size like 16G");
	expect_error(HEAD "deployments:\n  memory: 0\n", 7, 11, "deployments.memory: expected a size");
	expect_error(HEAD "deployments:\n  deploi: x\n", 7, 3, "unknown key \"deployments.deploi\"");
	expect_error(HEAD "deployments:\n  timeout: 0\n", 7, 12, "timeout: must be at least");
	expect_error(HEAD "deployments:\n  backup: [a]\n", 7, 11, "deployments.backup");
	expect_error(HEAD "deployments: x\n", 6, 14, "deployments");
}
