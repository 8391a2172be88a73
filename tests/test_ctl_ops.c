/* test_ctl_ops.c — corralctl's operator-facing behaviour, the built binary
 * against a real etcd (and moto for EC2): markers (maintenance, hold,
 * cluster stop) created only if absent, naming the one in place, -f
 * replacing it and naming the one replaced; an etcd that accepts and never
 * answers, or refuses, failing after the request timeout once with one
 * line naming the endpoints tried; "authentication failed" only when etcd
 * said so; load set's default node id as corrald derives it (node_id,
 * ec2.instance_id auto through IMDS); -c reading the whole node config
 * (ec2 settings); -d tracing the etcd requests without secrets. */
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl-test.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void ops_up(void) {
	ctlt_clean_env();
	et_fixture_up(&etcd, &dir, "ctl-ops", 1);
}

static void ops_down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_ops, .init = ops_up, .fini = ops_down, .timeout = 120);
TestSuite(ctl_ops_down, .init = ctlt_clean_env, .timeout = 60);

/* corralctl with exactly args, as user (USER=...); exit status. */
static int run_as(const char *user, char **out, char **err, char *const args[]) {
	_cleanup_free_ char *bin = NULL, *u = NULL;
	char *argv[32];
	size_t i = 0;

	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	cr_assert_geq(asprintf(&u, "USER=%s", user ? user : "tester"), 0);
	argv[i++] = bin;
	for (size_t j = 0; args[j]; j++) {
		cr_assert_lt(i, ELEMENTSOF(argv) - 1);
		argv[i++] = args[j];
	}
	argv[i] = NULL;
	return hx_run_capture(out, err, 30 * USEC_PER_SEC, argv, (char *const[]){ u, NULL });
}

#define AS(user, out, err, ...) \
	run_as((user), (out), (err), \
	       (char *const[]){ "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX, __VA_ARGS__, NULL })

static size_t count_lines(const char *s) {
	size_t n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* The stored marker's field. */
static char *stored_field(const char *key, const char *field) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	cr_assert_not_null(v, "%s not stored", key);
	json_auto_t *o = json_loads(v, 0, NULL);
	cr_assert(json_is_object(o), "%s: %s", key, v);
	const char *s = json_string_value(json_object_get(o, field));
	return s ? strdup(s) : NULL;
}

static char host[256];

static void expect_by(const char *key, const char *user, const char *reason) {
	_cleanup_free_ char *by = stored_field(key, "by"), *why = stored_field(key, "reason"),
			    *since = stored_field(key, "since"), *want = hx_fmt("%s@%s", user, host);
	cr_assert_str_eq(by, want);
	if (reason)
		cr_assert_str_eq(why, reason);
	else
		cr_assert_null(why);
	cr_assert(since && strlen(since) == 20 && since[10] == 'T' && since[19] == 'Z', "since %s", since);
}

/* One switch: on by alice, a second on by bob refused (naming alice's),
 * bob with -f replacing it (naming alice's), off. */
static void marker_round(const char *const words[], size_t n_words, const char *key, const char *taken,
			 const char *on_text) {
	_cleanup_free_ char *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL, *o3 = NULL, *e3 = NULL;
	char *a[12];
	size_t k = 0;

	cr_assert_eq(gethostname(host, sizeof host - 1), 0);
	for (size_t i = 0; i < n_words; i++)
		a[k++] = (char *) words[i];
	a[k++] = "--reason";
	size_t reason_at = k;
	a[k++] = "kernel upgrade";
	a[k] = NULL;

	char *const base[] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX, NULL };
	char *args[24];
	size_t m = 0;
	for (size_t i = 0; base[i]; i++)
		args[m++] = base[i];
	size_t first = m;
	for (size_t i = 0; a[i]; i++)
		args[m++] = a[i];
	args[m] = NULL;

	cr_assert_eq(run_as("alice", &o1, &e1, args), 0, "%s", e1);
	cr_assert(strstr(o1, on_text), "%s", o1);
	expect_by(key, "alice", "kernel upgrade");

	args[first + reason_at] = "other work";
	cr_assert_eq(run_as("bob", &o2, &e2, args), 1, "a second switch-on must fail: %s", e2);
	_cleanup_free_ char *refused = hx_fmt("corralctl: %s: since=", taken);
	cr_assert(strstr(e2, refused), "%s", e2);
	_cleanup_free_ char *who = hx_fmt("by=alice@%s reason=\"kernel upgrade\"; not replaced (-f/--force replaces it)",
					  host);
	cr_assert(strstr(e2, who), "%s", e2);
	cr_assert(!strstr(o2, on_text), "%s", o2);
	expect_by(key, "alice", "kernel upgrade");

	args[m++] = "-f";
	args[m] = NULL;
	cr_assert_eq(run_as("bob", &o3, &e3, args), 0, "%s", e3);
	_cleanup_free_ char *replaced = hx_fmt("corralctl: %s: replaced since=", taken);
	cr_assert(strstr(e3, replaced), "%s", e3);
	cr_assert(strstr(e3, "by=alice@"), "%s", e3);
	cr_assert(strstr(o3, on_text), "%s", o3);
	expect_by(key, "bob", "other work");
}

Test(ctl_ops, maintenance_on_twice_is_refused_force_replaces) {
	static const char *const w[] = { "maintenance", "on" };
	_cleanup_free_ char *err = NULL;

	marker_round(w, 2, PREFIX "/maintenance", "maintenance already on", "maintenance on: no scaling");
	cr_assert_eq(AS("carol", NULL, &err, "maintenance", "off"), 0, "%s", err);
	_cleanup_free_ char *v = hx_etcd_get(etcd, PREFIX "/maintenance");
	cr_assert_null(v);
}

Test(ctl_ops, hold_twice_is_refused_force_replaces) {
	static const char *const w[] = { "hold", "i-0123456789abcdef0" };

	marker_round(w, 2, PREFIX "/holds/i-0123456789abcdef0", "i-0123456789abcdef0 already held",
		     "i-0123456789abcdef0 held");
}

Test(ctl_ops, cluster_stop_twice_is_refused_force_replaces) {
	static const char *const w[] = { "cluster", "stop" };

	marker_round(w, 2, PREFIX "/scale/stop", "cluster already stopped", "cluster stop: every host");
}

/* A marker someone left that is not ours (not JSON) is named as it is. */
Test(ctl_ops, foreign_marker_named_and_kept) {
	_cleanup_free_ char *err = NULL;

	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/maintenance", "by hand"), 0);
	cr_assert_eq(AS("alice", NULL, &err, "maintenance", "on"), 1);
	cr_assert(strstr(err, "maintenance already on: value=\"by hand\""), "%s", err);
	_cleanup_free_ char *v = hx_etcd_get(etcd, PREFIX "/maintenance");
	cr_assert_str_eq(v, "by hand");
}

/* A dry run says what it would do and leaves the marker. */
Test(ctl_ops, dry_run_force_says_it_would_replace) {
	_cleanup_free_ char *out = NULL, *err = NULL;

	cr_assert_eq(AS("alice", NULL, NULL, "maintenance", "on", "--reason", "a"), 0);
	cr_assert_eq(AS("bob", &out, &err, "-n", "-f", "maintenance", "on", "--reason", "b"), 0, "%s", err);
	cr_assert(strstr(err, "maintenance already on: would replace since="), "%s", err);
	cr_assert(strstr(out, "dry run: would put " PREFIX "/maintenance"), "%s", out);
	_cleanup_free_ char *why = stored_field(PREFIX "/maintenance", "reason");
	cr_assert_str_eq(why, "a");
}

/* ---- an etcd that does not answer ---------------------------------------------- */

/* A loopback port that accepts connections (the kernel completes them) and
 * never answers: nobody calls accept(). */
static int silent_listener(int *port) {
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, len), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Runs corralctl against endpoints; the exit status, stderr, and how long
 * it took in *usec. */
static int timed(const char *endpoints, char **err, uint64_t *usec, char *const args[]) {
	char *argv[24] = { "-e", (char *) endpoints, "-p", PREFIX };
	size_t i = 4;
	for (size_t j = 0; args[j]; j++)
		argv[i++] = args[j];
	argv[i] = NULL;
	uint64_t t0 = hx_now_usec();
	int r = run_as("alice", NULL, err, argv);
	*usec = hx_now_usec() - t0;
	return r;
}

Test(ctl_ops_down, hung_etcd_fails_once_after_the_timeout) {
	int port, fd = silent_listener(&port);
	_cleanup_free_ char *ep = hx_fmt("http://127.0.0.1:%d", port), *err = NULL, *want = NULL;
	uint64_t usec;

	int r = timed(ep, &err, &usec, (char *const[]){ "--timeout", "2s", "maintenance", "on", "--reason", "x", NULL });
	close(fd);
	cr_assert_eq(r, 1, "%s", err);
	cr_assert(usec >= 2 * USEC_PER_SEC && usec < 5 * USEC_PER_SEC, "took %.1fs", (double) usec / USEC_PER_SEC);
	want = hx_fmt("corralctl: etcd: unreachable: tried %s (no reply in 2.0s)\n", ep);
	cr_assert_str_eq(err, want);
}

/* One refusing and one silent member: both named, in one line, after the
 * request timeout (not one wait per call of the command). */
Test(ctl_ops_down, refused_and_hung_named_in_one_line) {
	int hung, fd = silent_listener(&hung), refused = hx_free_port();
	_cleanup_free_ char *eps = hx_fmt("http://127.0.0.1:%d,http://127.0.0.1:%d", refused, hung), *err = NULL,
			    *want = NULL;
	uint64_t usec;

	int r = timed(eps, &err, &usec, (char *const[]){ "--timeout", "2s", "hold", "i-1", NULL });
	close(fd);
	cr_assert_eq(r, 1, "%s", err);
	cr_assert(usec >= 1900 * USEC_PER_MSEC && usec < 5 * USEC_PER_SEC, "took %.1fs", (double) usec / USEC_PER_SEC);
	want = hx_fmt("corralctl: etcd: unreachable: tried http://127.0.0.1:%d (connection refused), "
		      "http://127.0.0.1:%d (no reply in ",
		      refused, hung);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	cr_assert_eq(count_lines(err), 1, "%s", err);
}

Test(ctl_ops_down, refused_fails_at_once_in_one_line) {
	_cleanup_free_ char *ep = hx_fmt("http://127.0.0.1:%d", hx_free_port()), *err = NULL, *want = NULL;
	uint64_t usec;

	int r = timed(ep, &err, &usec, (char *const[]){ "status", NULL });
	cr_assert_eq(r, 1, "%s", err);
	cr_assert_lt(usec, 2 * USEC_PER_SEC);
	want = hx_fmt("corralctl: etcd: unreachable: tried %s (connection refused)\n", ep);
	cr_assert_str_eq(err, want);
	/* with credentials, an unreachable etcd is still not a wrong password */
	free(err);
	err = NULL;
	setenv("CORRAL_ETCD_PASSWORD", "secret", 1);
	r = timed(ep, &err, &usec, (char *const[]){ "--user", "ops", "maintenance", "on", NULL });
	cr_assert_eq(r, 1);
	cr_assert_str_eq(err, want);
	cr_assert(!strstr(err, "authentication"), "%s", err);
}

/* ---- authentication -------------------------------------------------------------- */

Test(ctl_ops, auth_failed_only_when_etcd_says_so) {
	_cleanup_free_ char *err = NULL, *err2 = NULL, *out = NULL;

	cr_assert_eq(hx_etcd_enable_auth(etcd, "ops", "right-pw", PREFIX "/"), 0);
	setenv("CORRAL_ETCD_PASSWORD", "wrong-pw", 1);
	cr_assert_eq(AS("alice", NULL, &err, "--user", "ops", "maintenance", "on"), 1);
	cr_assert(strstr(err, "authentication failed: etcdserver: authentication failed"), "%s", err);
	cr_assert_eq(count_lines(err), 1, "%s", err);

	/* the right one works, and -d shows the requests, never a secret */
	setenv("CORRAL_ETCD_PASSWORD", "right-pw", 1);
	cr_assert_eq(AS("alice", &out, &err2, "-d", "--user", "ops", "maintenance", "on", "--reason", "r"), 0, "%s",
		     err2);
	cr_assert(strstr(err2, "etcd: request method=POST path=/v3/auth/authenticate endpoint="), "%s", err2);
	cr_assert(strstr(err2, "etcd: request method=POST path=/v3/kv/txn key=\"" PREFIX "/maintenance\""), "%s",
		  err2);
	cr_assert(strstr(err2, " status=200 code=0 time="), "%s", err2);
	cr_assert(!strstr(err2, "right-pw") && !strstr(err2, "Authorization") && !strstr(err2, "token"), "%s", err2);
	unsetenv("CORRAL_ETCD_PASSWORD");
}

/* ---- the node config: load set's node, ec2's settings ------------------------------- */

static char *node_config(const char *extra) {
	_cleanup_free_ char *text = hx_fmt("cluster: t\netcd:\n  endpoints: [%s]\n%s", hx_etcd_endpoint(etcd, 0),
					   extra);
	char *path = hx_fmt("%s/corrald.yaml", dir);
	cr_assert_eq(hx_write_file(path, text), 0);
	return path;
}

Test(ctl_ops, load_set_defaults_to_the_configs_node_id) {
	_cleanup_free_ char *cf = node_config("node_id: n-cfg\nec2:\n  instance_id: none\n"), *out = NULL, *err = NULL;

	cr_assert_eq(run_as("alice", &out, &err, (char *const[]){ "-c", cf, "load", "set", "--jobs", "4", NULL }), 0, "%s",
		     err);
	cr_assert(strstr(out, "node n-cfg: 4 jobs"), "%s", out);
	_cleanup_free_ char *v = hx_etcd_get(etcd, PREFIX "/load/n-cfg");
	cr_assert_not_null(v);
	cr_assert(strstr(v, "\"jobs\":4"), "%s", v);
	/* --node still wins */
	cr_assert_eq(run_as("alice", NULL, NULL, (char *const[]){ "-c", cf, "load", "set", "--node", "n2", "--jobs", "1",
								  NULL }),
		     0);
	_cleanup_free_ char *v2 = hx_etcd_get(etcd, PREFIX "/load/n2");
	cr_assert_not_null(v2);
}

/* On EC2 (ec2.instance_id auto, no node_id) corrald's node id is the
 * instance id IMDS tells; load set finds the same, and -c's ec2 section
 * (region, endpoint, credentials file) is what ec2 describe uses. */
Test(ctl_ops, node_config_on_ec2) {
	_cleanup_(hx_moto_freep) hx_moto *moto = NULL;
	_cleanup_free_ char *imds = NULL, *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;

	json_auto_t *setup = NULL, *ran = NULL;

	cr_assert_eq(hx_moto_start(&moto), 0);
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	cr_assert_eq(hx_moto_run(moto, "{\"tags\": {\"corral:cluster\": \"t\"}, \"type\": \"t3.small\"}", &ran), 0);
	const char *id = json_string_value(json_object_get(ran, "id"));
	cr_assert_not_null(id);
	cr_assert_eq(hx_moto_node_imds(moto, id, &imds), 0);
	_cleanup_free_ char *creds = hx_fmt("%s/aws-credentials", dir);
	cr_assert_eq(hx_moto_write_credentials(moto, creds), 0);
	_cleanup_free_ char *extra = hx_fmt("ec2:\n  region: %s\n  endpoint: %s\n  credentials_file: %s\n"
					    "  imds_endpoint: %s\n  instance_id: auto\n",
					    hx_moto_region(moto), hx_moto_endpoint(moto), creds, imds);
	_cleanup_free_ char *cf = node_config(extra);

	cr_assert_eq(run_as("alice", &out, &err, (char *const[]){ "-c", cf, "load", "set", "--jobs", "2", NULL }), 0, "%s",
		     err);
	_cleanup_free_ char *said = hx_fmt("node %s: 2 jobs", id), *key = hx_fmt(PREFIX "/load/%s", id);
	cr_assert(strstr(out, said), "%s", out);
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	cr_assert_not_null(v, "no %s", key);

	/* no --region, no AWS_* in the environment: all from the config */
	cr_assert_eq(run_as("alice", &out2, &err2, (char *const[]){ "-c", cf, "-o", "json", "ec2", "describe", NULL }), 0,
		     "%s", err2);
	json_auto_t *list = json_loads(out2, 0, NULL);
	cr_assert(json_is_array(list), "%s", out2);
	cr_assert_eq(json_array_size(list), 1, "%s", out2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "instance_id")), id);
	json_auto_t *log = NULL;
	cr_assert_eq(hx_moto_log(moto, &log), 0);
	bool described = false;
	size_t i;
	json_t *call;
	json_array_foreach(log, i, call)
		described = described ||
			    (streq(json_string_value(json_object_get(call, "action")) ?: "", "DescribeInstances") &&
			     json_integer_value(json_object_get(call, "status")) == 200);
	cr_assert(described, "ec2 describe did not reach the config's endpoint");
}
