/* test_ctl_opts.c — corralctl's command line as an operator meets it, the
 * built binary: every command's usage (`CMD --help`, `CMD SUB --help`,
 * `help CMD [SUB]`, a group alone) on stdout with exit 0, with no etcd and
 * no cluster, and never acting against a real etcd; options before or
 * after the verb giving the same output; the exit codes (2 for a usage
 * error of every command, 1 for an unreachable etcd); -w meaning workers
 * (`scale up -w 2` is `scale up 2`) and --wait waiting; a --cluster that is
 * empty or holds '/' refused. */
#include <jansson.h>
#include <stdlib.h>

#include "etcd-test.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void clean_env(void) {
	unsetenv("CORRAL_PREFIX");
	unsetenv("CORRAL_CLUSTER");
	unsetenv("CORRAL_ENDPOINTS");
}

static void up(void) {
	clean_env();
	et_fixture_up(&etcd, &dir, "ctl-opts", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_opts_help, .init = clean_env, .timeout = 60);
TestSuite(ctl_opts, .init = up, .fini = down, .timeout = 120);

/* Runs corralctl with exactly args (no options added); returns the exit
 * status, stdout and stderr in *out, *err (each may be NULL). */
static int run(char **out, char **err, char *const args[], char *const env[]) {
	_cleanup_free_ char *bin = NULL;
	char *argv[32];
	size_t i = 0;

	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	argv[i++] = bin;
	for (size_t j = 0; args[j]; j++) {
		cr_assert_lt(i, ELEMENTSOF(argv) - 1);
		argv[i++] = args[j];
	}
	argv[i] = NULL;
	return hx_run_capture(out, err, 30 * USEC_PER_SEC, argv, env);
}

#define RUN(out, err, ...) run((out), (err), (char *const[]){ __VA_ARGS__, NULL }, NULL)
/* against our etcd and prefix */
#define CTL(out, err, ...) \
	run((out), (err), (char *const[]){ "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX, __VA_ARGS__, NULL }, NULL)

/* Every command's words: the verbs and the groups alone. */
static const char *const commands[][4] = {
	{ "nodes" },           { "status" },          { "leader" },          { "config" },
	{ "config", "get" },   { "config", "set" },   { "config", "delete" }, { "config", "import" },
	{ "config", "export" }, { "config", "history" }, { "config", "diff" }, { "config", "rollback" },
	{ "ec2" },             { "ec2", "describe" }, { "scale" },           { "scale", "policy" },
	{ "scale", "policy", "get" }, { "scale", "policy", "set" }, { "scale", "to" }, { "scale", "up" },
	{ "scale", "down" },   { "scale", "auto" },   { "scale", "queue", "set" }, { "scale", "simulate" },
	{ "autoscale" },       { "cluster" },         { "cluster", "stop" }, { "cluster", "start" },
	{ "maintenance" },     { "maintenance", "on" }, { "maintenance", "off" }, { "hold" },
	{ "unhold" },          { "load" },            { "load", "set" },     { "upgrade" },
	{ "upgrade", "start" }, { "upgrade", "status" }, { "upgrade", "plan" }, { "upgrade", "pause" },
	{ "upgrade", "resume" }, { "upgrade", "promote" }, { "upgrade", "abort" }, { "upgrade", "rollback" },
	{ "upgrade", "retry" },
};

static void expect_usage(const char *out, const char *what) {
	cr_assert_not_null(out);
	cr_assert(strncmp(out, "Usage:", 6) == 0, "%s: stdout does not start with Usage:\n%s", what, out);
}

/* No etcd, no --prefix/--cluster/--config, nothing in the environment. */
Test(ctl_opts_help, every_command_help_without_etcd) {
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		char *args[8] = {}, *hargs[8] = { "help" };
		size_t n = 0;
		for (; n < 4 && commands[i][n]; n++)
			args[n] = hargs[n + 1] = (char *) commands[i][n];
		args[n] = "--help";
		_cleanup_free_ char *out = NULL, *hout = NULL, *err = NULL;
		_cleanup_free_ char *what = hx_fmt("corralctl %s%s%s --help", args[0], n > 1 ? " " : "", n > 1 ? args[1] : "");

		cr_assert_eq(run(&out, &err, args, NULL), 0, "%s: %s", what, err);
		expect_usage(out, what);
		cr_assert(strstr(out, commands[i][n - 1]), "%s: its usage does not name it:\n%s", what, out);
		cr_assert_eq(run(&hout, NULL, hargs, NULL), 0, "corralctl help %s", args[0]);
		cr_assert_str_eq(hout, out, "`help CMD` and `CMD --help` differ for %s", what);
	}
	/* -h too, and the options before the command */
	_cleanup_free_ char *h = NULL, *h2 = NULL;
	cr_assert_eq(RUN(&h, NULL, "config", "rollback", "-h"), 0);
	expect_usage(h, "config rollback -h");
	cr_assert_eq(RUN(&h2, NULL, "-o", "json", "--help", "config", "rollback"), 0);
	cr_assert_str_eq(h2, h);
}

Test(ctl_opts_help, overall_help_lists_commands_and_exit_codes) {
	_cleanup_free_ char *a = NULL, *b = NULL;

	cr_assert_eq(RUN(&a, NULL, "--help"), 0);
	expect_usage(a, "--help");
	cr_assert_eq(RUN(&b, NULL, "help"), 0);
	cr_assert_str_eq(a, b);
	cr_assert(strstr(a, "Exit codes: 0 ok, 1 "), "%s", a);
	cr_assert(strstr(a, "2 usage or input error"), "%s", a);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		cr_assert(strstr(a, commands[i][0]), "%s missing from --help", commands[i][0]);
	cr_assert(strstr(a, "-w, --workers N"), "%s", a);
	cr_assert(strstr(a, "--wait S"), "%s", a);
	/* a group's usage lists its subcommands */
	_cleanup_free_ char *g = NULL;
	cr_assert_eq(RUN(&g, NULL, "scale", "--help"), 0);
	cr_assert(strstr(g, "  up [N]") && strstr(g, "  policy set FILE") && strstr(g, "  simulate"), "%s", g);
	/* naming nothing is a usage error */
	cr_assert_eq(RUN(NULL, NULL, "help", "frobnicate"), 2);
}

/* --help never acts: against a real etcd where each of these would write. */
Test(ctl_opts, help_never_acts) {
	cr_assert_eq(CTL(NULL, NULL, "-q", "config", "set", "cms/a", "1"), 0);
	cr_assert_eq(CTL(NULL, NULL, "-q", "config", "set", "cms/a", "2"), 0);
	_cleanup_free_ char *cur = hx_etcd_get(etcd, PREFIX "/current");
	cr_assert_not_null(cur);
	int64_t rev = et_revision(etcd);

	char *const *cases[] = {
		(char *const[]){ "config", "rollback", "--help", NULL },
		(char *const[]){ "config", "rollback", cur, "--help", NULL },
		(char *const[]){ "config", "set", "cms/a", "3", "--help", NULL },
		(char *const[]){ "config", "delete", "cms/a", "-h", NULL },
		(char *const[]){ "maintenance", "on", "--help", NULL },
		(char *const[]){ "hold", "i-1", "--help", NULL },
		(char *const[]){ "cluster", "stop", "--help", NULL },
		(char *const[]){ "help", "cluster", "stop", NULL },
		(char *const[]){ "scale", "to", "3", "--help", NULL },
		(char *const[]){ "load", "set", "--jobs", "3", "--help", NULL },
		(char *const[]){ "autoscale", "--help", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *args[12] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX };
		size_t n = 4;
		for (size_t j = 0; cases[i][j]; j++)
			args[n++] = cases[i][j];
		_cleanup_free_ char *out = NULL, *err = NULL;
		cr_assert_eq(run(&out, &err, args, NULL), 0, "case %zu (%s %s): %s", i, cases[i][0], cases[i][1], err);
		expect_usage(out, cases[i][0]);
	}
	_cleanup_free_ char *now = hx_etcd_get(etcd, PREFIX "/current");
	cr_assert_str_eq(now, cur, "a --help moved current");
	cr_assert_eq(et_revision(etcd), rev, "a --help wrote to etcd");
}

static void put(const char *key, const char *value) {
	et t = {};
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	cr_assert_eq(et_put(&t, key, value, 0), 0);
	et_close(&t);
}

/* The same output, the options before or after the verb. */
Test(ctl_opts, options_either_side_of_the_verb) {
	put(PREFIX "/nodes/n1", "{\"address\": \"10.0.0.1\", \"services\": [\"Worker\"], \"version\": \"1\"}");
	cr_assert_eq(CTL(NULL, NULL, "-q", "config", "set", "cms/a", "1"), 0);
	static const char *const pairs[][2][8] = {
		{ { "-o", "json", "nodes" }, { "nodes", "-o", "json" } },
		{ { "--format", "json", "leader" }, { "leader", "--format", "json" } },
		{ { "-o", "json", "status" }, { "status", "-o", "json" } },
		{ { "-o", "json", "config", "history" }, { "config", "history", "-o", "json" } },
		{ { "-o", "json", "config", "get", "cms" }, { "config", "-o", "json", "get", "cms" } },
		{ { "-n", "-o", "json", "scale", "queue", "set", "web", "3" }, { "scale", "queue", "-n", "set", "web", "3", "--format=json" } },
		{ { "--dry-run", "config", "set", "cms/b", "-5" }, { "config", "set", "--dry-run", "cms/b", "-5" } },
	};
	for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
		_cleanup_free_ char *a = NULL, *b = NULL, *ea = NULL, *eb = NULL;
		char *args[2][14];
		for (size_t s = 0; s < 2; s++) {
			size_t n = 0;
			args[s][n++] = "-e";
			args[s][n++] = (char *) hx_etcd_endpoints(etcd);
			args[s][n++] = "-p";
			args[s][n++] = PREFIX;
			for (size_t j = 0; j < 8 && pairs[i][s][j]; j++)
				args[s][n++] = (char *) pairs[i][s][j];
			args[s][n] = NULL;
		}
		cr_assert_eq(run(&a, &ea, args[0], NULL), 0, "pair %zu, before: %s", i, ea);
		cr_assert_eq(run(&b, &eb, args[1], NULL), 0, "pair %zu, after: %s", i, eb);
		cr_assert_str_eq(a, b, "pair %zu: options before and after the verb differ", i);
		cr_assert_gt(strlen(a), 0);
	}
	cr_assert_null(hx_etcd_get(etcd, PREFIX "/scale/queue/web"), "a dry run wrote");
}

/* A usage error is 2, whatever the command; each of these is one. */
Test(ctl_opts, usage_errors_are_2_for_every_command) {
	char *const *cases[] = {
		(char *const[]){ "nodes", "extra", NULL },
		(char *const[]){ "status", "extra", NULL },
		(char *const[]){ "leader", "extra", NULL },
		(char *const[]){ "config", NULL },
		(char *const[]){ "config", "frob", NULL },
		(char *const[]){ "config", "get", "a", "b", NULL },
		(char *const[]){ "config", "set", "cms/a", NULL },
		(char *const[]){ "config", "set", "--strict", "cms/a", "1", NULL },
		(char *const[]){ "config", "delete", NULL },
		(char *const[]){ "config", "import", "cms", NULL },
		(char *const[]){ "config", "export", NULL },
		(char *const[]){ "config", "history", "x", NULL },
		(char *const[]){ "config", "diff", "a", "b", "c", NULL },
		(char *const[]){ "config", "rollback", "a", "b", NULL },
		(char *const[]){ "ec2", NULL },
		(char *const[]){ "ec2", "describe", "x", NULL },
		(char *const[]){ "scale", NULL },
		(char *const[]){ "scale", "policy", NULL },
		(char *const[]){ "scale", "policy", "get", "x", NULL },
		(char *const[]){ "scale", "policy", "set", NULL },
		(char *const[]){ "scale", "to", NULL },
		(char *const[]){ "scale", "to", "many", NULL },
		(char *const[]){ "scale", "up", "1", "2", NULL },
		(char *const[]){ "scale", "down", "--bogus", NULL },
		(char *const[]){ "scale", "auto", "3", NULL },
		(char *const[]){ "scale", "queue", "set", "web", NULL },
		(char *const[]){ "scale", "simulate", NULL },
		(char *const[]){ "autoscale", "x", NULL },
		(char *const[]){ "cluster", NULL },
		(char *const[]){ "cluster", "stop", "-w", "5", NULL },
		(char *const[]){ "cluster", "start", "--wait", "soon", NULL },
		(char *const[]){ "maintenance", NULL },
		(char *const[]){ "maintenance", "on", "x", NULL },
		(char *const[]){ "maintenance", "off", "--reason", NULL },
		(char *const[]){ "hold", NULL },
		(char *const[]){ "hold", "a/b", NULL },
		(char *const[]){ "unhold", "a", "b", NULL },
		(char *const[]){ "load", NULL },
		(char *const[]){ "load", "set", "--node", "n1", NULL },
		(char *const[]){ "upgrade", NULL },
		(char *const[]){ "upgrade", "start", "x", "--image", "i", NULL },
		(char *const[]){ "upgrade", "status", "--supersede", NULL },
		(char *const[]){ "upgrade", "plan", "--supersede", NULL },
		(char *const[]){ "upgrade", "pause", "--image", "i", NULL },
		(char *const[]){ "upgrade", "retry", "x", NULL },
		(char *const[]){ "frobnicate", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *args[12] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX };
		size_t n = 4;
		for (size_t j = 0; cases[i][j]; j++)
			args[n++] = cases[i][j];
		_cleanup_free_ char *err = NULL;
		cr_assert_eq(run(NULL, &err, args, NULL), 2, "case %zu (%s %s) is not 2: %s", i, cases[i][0],
			     cases[i][1] ? cases[i][1] : "", err);
		cr_assert(strstr(err, "corralctl: "), "case %zu: no message: %s", i, err);
	}
	cr_assert_null(hx_etcd_get(etcd, PREFIX "/scale/stop"), "cluster stop -w 5 acted");
}

/* etcd unreachable: 1, whatever the command. */
Test(ctl_opts, unreachable_etcd_is_1_for_every_command) {
	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", hx_free_port());
	char *const *cases[] = {
		(char *const[]){ "nodes", NULL },
		(char *const[]){ "status", NULL },
		(char *const[]){ "leader", NULL },
		(char *const[]){ "config", "get", NULL },
		(char *const[]){ "config", "set", "cms/a", "1", NULL },
		(char *const[]){ "config", "history", NULL },
		(char *const[]){ "config", "rollback", NULL },
		(char *const[]){ "scale", "policy", "get", NULL },
		(char *const[]){ "scale", "up", "2", NULL },
		(char *const[]){ "scale", "queue", "set", "web", "3", NULL },
		(char *const[]){ "autoscale", NULL },
		(char *const[]){ "cluster", "stop", NULL },
		(char *const[]){ "maintenance", "on", NULL },
		(char *const[]){ "hold", "i-1", NULL },
		(char *const[]){ "load", "set", "--node", "n1", "--jobs", "1", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *args[14] = { "-e", ep, "--cluster", "t", "--timeout", "2s" };
		size_t n = 6;
		for (size_t j = 0; cases[i][j]; j++)
			args[n++] = cases[i][j];
		_cleanup_free_ char *err = NULL;
		cr_assert_eq(run(NULL, &err, args, NULL), 1, "case %zu (%s %s): %s", i, cases[i][0],
			     cases[i][1] ? cases[i][1] : "", err);
	}
}

/* -w N is workers, the count of scale to/up/down; --wait waits. */
Test(ctl_opts, w_is_workers_and_wait_waits) {
	_cleanup_free_ char *file = hx_fmt("%s/policy.json", dir);
	cr_assert_eq(hx_write_file(file, "{\"pools\": {\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": "
					 "[\"m5.large\"], \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": "
					 "\"us-east-1a\"}], \"min\": 0, \"max\": 10, \"jobs_per_host\": 4}}}"),
		     0);
	cr_assert_eq(CTL(NULL, NULL, "-q", "scale", "policy", "set", file), 0);
	static const struct {
		const char *args[5];
		int exit, desired;
	} steps[] = {
		{ { "scale", "to", "1" }, 0, 1 },
		{ { "scale", "up", "-w", "2" }, 0, 3 },
		{ { "scale", "up", "2" }, 0, 5 },
		{ { "-w", "1", "scale", "down" }, 0, 4 },
		{ { "scale", "down", "2", "-w", "2" }, 0, 2 },
		{ { "scale", "down", "1", "-w", "2" }, 2, 2 },
		{ { "scale", "up" }, 0, 3 },
		{ { "scale", "to", "-w", "6" }, 0, 6 },
		{ { "scale", "to", "--workers", "4" }, 0, 4 },
		{ { "scale", "down", "9" }, 2, 4 },
	};
	for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
		char *args[12] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX, "-q" };
		size_t n = 5;
		for (size_t j = 0; j < 5 && steps[i].args[j]; j++)
			args[n++] = (char *) steps[i].args[j];
		_cleanup_free_ char *err = NULL, *text = NULL;
		cr_assert_eq(run(NULL, &err, args, NULL), steps[i].exit, "step %zu: %s", i, err);
		text = hx_etcd_get(etcd, PREFIX "/scale/policy");
		json_auto_t *p = json_loads(text, 0, NULL);
		json_t *d = json_object_get(json_object_get(json_object_get(p, "pools"), "web"), "desired");
		cr_assert_eq(json_integer_value(d), steps[i].desired, "step %zu: desired %lld", i,
			     (long long) json_integer_value(d));
	}
	/* --wait: nobody runs the leader here, so the fleet never gets there */
	_cleanup_free_ char *err = NULL;
	cr_assert_eq(CTL(NULL, &err, "-q", "scale", "up", "--wait", "1"), 1);
	cr_assert(strstr(err, "did not reach 5 ready hosts within 1s"), "%s", err);
}

/* --cluster '' or with a '/' would address another prefix: refused. */
Test(ctl_opts, bad_cluster_names_refused) {
	static const char *const bad[] = { "", "a/b", "/", "..", "a/../b" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *err = NULL;
		cr_assert_eq(run(NULL, &err, (char *const[]){ "-e", (char *) hx_etcd_endpoints(etcd), "--cluster",
							      (char *) bad[i], "nodes", NULL },
				 NULL),
			     2, "--cluster '%s'", bad[i]);
		cr_assert(strstr(err, "--cluster"), "%s", err);
	}
	_cleanup_free_ char *err = NULL;
	cr_assert_eq(run(NULL, &err, (char *const[]){ "-e", (char *) hx_etcd_endpoints(etcd), "nodes", NULL },
			 (char *const[]){ "CORRAL_CLUSTER=a/b", NULL }),
		     2);
	cr_assert(strstr(err, "CORRAL_CLUSTER"), "%s", err);
	/* a good name still works, before or after the verb */
	cr_assert_eq(run(NULL, NULL, (char *const[]){ "-e", (char *) hx_etcd_endpoints(etcd), "nodes", "--cluster", "t",
						       NULL },
			 NULL),
		     0);
}
