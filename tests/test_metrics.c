/* test_metrics.c — Prometheus metrics (metrics.h, docs/metrics.md):
 *
 *   prom          the text writer: values, escapes, HELP/TYPE once, errors;
 *                 the scaler's metrics document turned into corral_scale_*;
 *   metrics_http  the libmicrohttpd server on an sd-event loop in this
 *                 process (the client runs in a forked child, so the loop
 *                 can serve it): /metrics, 404, 405, HEAD, port 0, a large
 *                 body, EADDRINUSE with a message;
 *   metrics_corrald  a real corrald against a real etcd: node metrics, a
 *                 bind failure it survives, a reload that moves the port,
 *                 a bad address as a config error;
 *   metrics_scale a real corrald leading with moto as EC2: the scaler's
 *                 last decision under corral_scale_*, gone when it stops.
 *
 * Every exposition a test gets is also checked for validity: each line a
 * comment or `name{labels} value`, each family one HELP and one TYPE
 * before its samples, a family's samples together. */
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <systemd/sd-event.h>

#include "etcd-test.h"
#include "deployment.h"
#include "metrics.h"
#include "rollout.h"
#include "scale-report.h"

/* ---- exposition validity -------------------------------------------------------- */

/* NULL when text is a valid 0.0.4 exposition, else what is wrong (static). */
static const char *exposition_problem(const char *text) {
	static char why[512];
	regex_t sample, help, type;
	char *families[512];
	bool has_help[512] = {}, has_type[512] = {};
	size_t n = 0, current = (size_t) -1;
	const char *problem = NULL;

	/* name{label="value",...} value, value a float, NaN or +-Inf. */
	cr_assert_eq(regcomp(&sample,
			     "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
			     "(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\")"
			     "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\")*\\})? "
			     "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|\\+Inf|-Inf)$",
			     REG_EXTENDED),
		     0);
	cr_assert_eq(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ([^\\\\]|\\\\[\\\\n])*$", REG_EXTENDED), 0);
	cr_assert_eq(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|untyped|histogram|summary)$",
			     REG_EXTENDED),
		     0);

	_cleanup_free_ char *copy = strdup(text);
	size_t len = strlen(copy);
	if (len > 0 && copy[len - 1] != '\n')
		problem = "does not end with a newline";
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line && !problem; line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];
		bool is_help = regexec(&help, line, 2, m, 0) == 0, is_type = !is_help && regexec(&type, line, 2, m, 0) == 0;
		if (!is_help && !is_type && line[0] == '#') {
			snprintf(why, sizeof why, "bad comment line: %s", line);
			problem = why;
			break;
		}
		if (!is_help && !is_type && regexec(&sample, line, 2, m, 0) != 0) {
			snprintf(why, sizeof why, "not name{labels} value: %s", line);
			problem = why;
			break;
		}
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int) (m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
		size_t i = 0;
		while (i < n && !streq(families[i], name))
			i++;
		if (is_help || is_type) {
			if (i == n) {
				cr_assert_lt(n, ELEMENTSOF(families));
				families[n++] = strdup(name);
			} else if (i != current) {
				snprintf(why, sizeof why, "family %s declared again further down", name);
				problem = why;
				break;
			}
			bool *seen = is_help ? &has_help[i] : &has_type[i];
			if (*seen) {
				snprintf(why, sizeof why, "two %s lines for %s", is_help ? "HELP" : "TYPE", name);
				problem = why;
				break;
			}
			*seen = true;
			current = i;
			continue;
		}
		if (i == n || i != current) {
			snprintf(why, sizeof why, "sample of %s outside its family (or before HELP/TYPE)", name);
			problem = why;
		} else if (!has_help[i] || !has_type[i]) {
			snprintf(why, sizeof why, "sample of %s before its HELP and TYPE", name);
			problem = why;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(families[i]);
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	return problem;
}

static void expect_valid(const char *text) {
	const char *p = exposition_problem(text);
	cr_assert_null(p, "invalid exposition: %s\n---\n%s", p, text);
}

/* The value of the sample `series` (name with labels exactly as written),
 * NAN when absent. */
static double sample_value(const char *text, const char *series) {
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

static bool has_family(const char *text, const char *name) {
	_cleanup_free_ char *needle = NULL;
	cr_assert_geq(asprintf(&needle, "# TYPE %s ", name), 0);
	return strstr(text, needle) != NULL;
}

/* ---- prom: the writer ---------------------------------------------------------- */

static char *take(metrics_buf *b) {
	char *text = NULL;
	size_t len = 0;
	cr_assert_eq(metrics_buf_take(b, &text, &len), 0);
	cr_assert_eq(strlen(text), len);
	return text;
}

Test(prom, values_are_spelled_as_prometheus_reads_them) {
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0, "0" },
		{ -0.0, "0" },
		{ 1, "1" },
		{ -12, "-12" },
		{ 42, "42" },
		{ 1700000000, "1700000000" },
		{ 9007199254740991.0, "9007199254740991" },
		{ 0.1, "0.1" },
		{ 1.5, "1.5" },
		{ -2.25, "-2.25" },
		{ 0.3333333333333333, "0.33333333333333331" },
		{ 1e-7, "9.9999999999999995e-08" },
		{ 1e300, "1.0000000000000001e+300" },
		{ NAN, "NaN" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
	};
	char buf[64];
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *got = metrics_format_value(cases[i].v, buf, sizeof buf);
		/* Whatever the digits, they must read back as the same double. */
		if (!isnan(cases[i].v))
			cr_assert_eq(strtod(got, NULL), cases[i].v, "%s does not read back", got);
		if (i < 10 || i >= 13)
			cr_assert_str_eq(got, cases[i].want, "case %zu", i);
	}
	/* Shortest: 1e-7 and 1e300 print in 15 digits when those read back. */
	cr_assert_str_eq(metrics_format_value(1e-7, buf, sizeof buf), "1e-07");
	cr_assert_str_eq(metrics_format_value(1e300, buf, sizeof buf), "1e+300");
	cr_assert_str_eq(metrics_format_value(0.3333333333333333, buf, sizeof buf), "0.33333333333333331");
	/* Integers beyond 2^53 are not exact any more: no "integer" spelling
	 * with invented digits, the float one. */
	cr_assert_str_eq(metrics_format_value(1e20, buf, sizeof buf), "1e+20");
}

Test(prom, family_help_and_type_once_then_samples) {
	metrics_buf b = {};
	cr_assert_eq(metrics_family(&b, "corral_x", METRICS_GAUGE, "An x."), 0);
	cr_assert_eq(metrics_sample(&b, "corral_x", NULL, 1), 0);
	cr_assert_eq(metrics_family(&b, "corral_x", METRICS_GAUGE, "An x."), 0, "the current family again: nothing");
	cr_assert_eq(metrics_sample(&b, "corral_x", (const char *const[]){ "a", "b", NULL }, 2), 0);
	cr_assert_eq(metrics_counter(&b, "corral_y_total", "Ys.", NULL, 3), 0);
	cr_assert_eq(metrics_counter(&b, "corral_y_total", "Ys.", (const char *const[]){ "k", "v", "l", "w", NULL }, 4),
		     0);
	cr_assert_eq(metrics_family(&b, "corral_z", METRICS_UNTYPED, ""), 0);
	_cleanup_free_ char *text = take(&b);
	cr_assert_str_eq(text, "# HELP corral_x An x.\n"
			       "# TYPE corral_x gauge\n"
			       "corral_x 1\n"
			       "corral_x{a=\"b\"} 2\n"
			       "# HELP corral_y_total Ys.\n"
			       "# TYPE corral_y_total counter\n"
			       "corral_y_total 3\n"
			       "corral_y_total{k=\"v\",l=\"w\"} 4\n"
			       "# HELP corral_z \n"
			       "# TYPE corral_z untyped\n");
	expect_valid(text);
	cr_assert_null(b.data, "taken: the buffer is reset");
	cr_assert_eq(b.n_families, 0);
}

Test(prom, label_values_and_help_are_escaped) {
	metrics_buf b = {};
	metrics_gauge(&b, "m", "back\\slash, \"quotes\" stay,\nnew line", (const char *const[]){ "v", "a\\b\"c\nd", NULL },
		      1);
	metrics_gauge(&b, "m", NULL, (const char *const[]){ "v", "", NULL }, 2);
	metrics_gauge(&b, "m", NULL, (const char *const[]){ "v", "ünïcödé {x=\"y\"}", NULL }, 3);
	_cleanup_free_ char *text = take(&b);
	cr_assert_str_eq(text, "# HELP m back\\\\slash, \"quotes\" stay,\\nnew line\n"
			       "# TYPE m gauge\n"
			       "m{v=\"a\\\\b\\\"c\\nd\"} 1\n"
			       "m{v=\"\"} 2\n"
			       "m{v=\"ünïcödé {x=\\\"y\\\"}\"} 3\n");
	expect_valid(text);
}

Test(prom, names_are_checked) {
	cr_assert(metrics_name_valid("corral_up"));
	cr_assert(metrics_name_valid(":a:b_c9"));
	cr_assert(metrics_name_valid("_x"));
	cr_assert(!metrics_name_valid(""));
	cr_assert(!metrics_name_valid(NULL));
	cr_assert(!metrics_name_valid("9x"));
	cr_assert(!metrics_name_valid("a-b"));
	cr_assert(!metrics_name_valid("a b"));
	cr_assert(!metrics_name_valid("a{"));
	cr_assert(metrics_label_name_valid("pool"));
	cr_assert(metrics_label_name_valid("_p9"));
	cr_assert(!metrics_label_name_valid("__name__"), "reserved");
	cr_assert(!metrics_label_name_valid("a:b"), "colons are for metric names only");
	cr_assert(!metrics_label_name_valid("1a"));
	cr_assert(!metrics_label_name_valid(""));
	cr_assert_str_eq(metrics_type_to_string(METRICS_COUNTER), "counter");
	cr_assert_str_eq(metrics_type_to_string(METRICS_GAUGE), "gauge");
	cr_assert_str_eq(metrics_type_to_string(METRICS_UNTYPED), "untyped");
	cr_assert_null(metrics_type_to_string(_METRICS_TYPE_MAX));
}

/* Each misuse: -EINVAL, sticky, and take() hands nothing over. */
Test(prom, misuse_is_a_sticky_error) {
	static const char *const cases[] = { "bad name", "bad label", "reserved label", "label without value",
					     "sample outside family", "family again later", "bad type" };
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		metrics_buf b = {};
		char *text = (char *) 0x1;
		int r = 0;
		metrics_gauge(&b, "ok", "fine", NULL, 1);
		switch (i) {
		case 0:
			r = metrics_gauge(&b, "bad-name", "x", NULL, 1);
			break;
		case 1:
			r = metrics_gauge(&b, "ok", "x", (const char *const[]){ "bad-label", "v", NULL }, 1);
			break;
		case 2:
			r = metrics_gauge(&b, "ok", "x", (const char *const[]){ "__x", "v", NULL }, 1);
			break;
		case 3:
			r = metrics_gauge(&b, "ok", "x", (const char *const[]){ "a", NULL }, 1);
			break;
		case 4:
			r = metrics_sample(&b, "other", NULL, 1);
			break;
		case 5:
			metrics_gauge(&b, "second", "x", NULL, 1);
			r = metrics_gauge(&b, "ok", "x", NULL, 2);
			break;
		case 6:
			r = metrics_family(&b, "t", (metrics_type) 99, "x");
			break;
		}
		cr_assert_eq(r, -EINVAL, "%s: %d", cases[i], r);
		cr_assert_eq(metrics_gauge(&b, "later", "fine", NULL, 1), -EINVAL, "%s: not sticky", cases[i]);
		cr_assert_eq(metrics_buf_take(&b, &text, NULL), -EINVAL, "%s", cases[i]);
		cr_assert_eq(text, (char *) 0x1, "%s: nothing handed over", cases[i]);
		cr_assert_null(b.data);
	}
}

Test(prom, empty_buffer_gives_an_empty_string) {
	metrics_buf b = {};
	_cleanup_free_ char *text = take(&b);
	cr_assert_str_eq(text, "");
	metrics_buf_done(&b);   /* idempotent on a reset buffer */
}

Test(prom, grows_past_the_first_allocation) {
	metrics_buf b = {};
	char pool[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(pool, sizeof pool, "pool-%d", i);
		cr_assert_eq(metrics_gauge(&b, "corral_big", "Big.", (const char *const[]){ "pool", pool, NULL }, i), 0);
	}
	_cleanup_free_ char *text = take(&b);
	cr_assert_gt(strlen(text), 100000);
	cr_assert_eq(sample_value(text, "corral_big{pool=\"pool-4999\"}"), 4999);
	expect_valid(text);
}

/* A report as a scaler cycle leaves it (scale-report.h): what its
 * scale/metrics document says, as the structs it is written from. */
static const scale_metrics scale_pools[] = {
	{ .pool = "web", .hosts = { [SCALE_LAUNCHING] = 1, [SCALE_READY] = 2, [SCALE_DRAINING] = 1,
				    [SCALE_TERMINATED] = 3 },
	  .hosts_held = 1, .jobs = 7, .jobs_unhealthy = 1, .job_capacity = 8, .jobs_per_host = 4, .policy_hosts = 3,
	  .desired_hosts = 3, .ready = 2, .launching = 1, .deficit = 1, .undrained = 1, .launched = 2,
	  .terminated = 1, .transitions = 1, .desired_capacity = 10.5, .enabled = true },
	{ .pool = "batch", .enabled = false, .note = "maintenance: \"no\" actions" },
};
static const scale_action scale_actions[] = {
	{ .kind = SCALE_ACTION_LAUNCH, .pool = "web", .count = 2, .instance_type = "t3.micro" },
	{ .kind = SCALE_ACTION_UNDRAIN, .pool = "web", .id = "i-1" },
	{ .kind = SCALE_ACTION_TERMINATE, .pool = "web", .id = "i-2" },
};
static const scale_price scale_prices[] = { { "t3.micro", "us-east-1a", 0.0035 } };
static const scale_reservation scale_res[] = { { "t3.micro", NULL, 2 } };
static const char *const scale_launched[] = { "i-a", "i-b" };
static const char *const scale_errors[] = { "TerminateInstances: throttled" };

Test(prom, scale_document_becomes_corral_scale_families) {
	scale_output out = { .actions = (scale_action *) scale_actions, .n_actions = ELEMENTSOF(scale_actions),
			     .metrics = (scale_metrics *) scale_pools, .n_metrics = ELEMENTSOF(scale_pools) };
	scale_records rec = { .n_instances = 4, .prices = scale_prices, .n_prices = 1, .reservations = scale_res,
			      .n_reservations = 1 };
	scale_observed obs = { .n_hosts = 7, .orphans = 1, .in_grace = 2 };
	scale_report rep = { .time = 1700000000, .revision = 42, .records = &rec, .observed = &obs, .out = &out,
			     .launched = scale_launched, .n_launched = 2, .errors = scale_errors, .n_errors = 1,
			     .records_by_state = { [SCALE_READY] = 2, [SCALE_TERMINATED] = 3 } };
	metrics_buf b = {};
	cr_assert_eq(metrics_write_scale(&b, &rep, 12, 3), 0);
	_cleanup_free_ char *t = take(&b);
	expect_valid(t);

	cr_assert_eq(sample_value(t, "corral_scale_cycles_total"), 12);
	cr_assert_eq(sample_value(t, "corral_scale_cycles_failed_total"), 3);
	cr_assert(strstr(t, "# TYPE corral_scale_cycles_total counter\n"));
	cr_assert_eq(sample_value(t, "corral_scale_last_decision_timestamp_seconds"), 1700000000);
	cr_assert_eq(sample_value(t, "corral_scale_last_decision_revision"), 42);
	cr_assert_eq(sample_value(t, "corral_scale_hosts{pool=\"web\",state=\"ready\"}"), 2);
	cr_assert_eq(sample_value(t, "corral_scale_hosts{pool=\"web\",state=\"launching\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_hosts{pool=\"web\",state=\"terminated\"}"), 3);
	cr_assert_eq(sample_value(t, "corral_scale_hosts{pool=\"batch\",state=\"ready\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_jobs{pool=\"web\"}"), 7);
	cr_assert_eq(sample_value(t, "corral_scale_jobs_unhealthy{pool=\"web\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_desired_hosts{pool=\"web\"}"), 3);
	cr_assert_eq(sample_value(t, "corral_scale_desired_capacity{pool=\"web\"}"), 10.5);
	cr_assert_eq(sample_value(t, "corral_scale_queue{pool=\"web\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_hosts_held{pool=\"web\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_decision_launched{pool=\"web\"}"), 2);
	cr_assert_eq(sample_value(t, "corral_scale_decision_terminated{pool=\"web\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_decision_drained{pool=\"web\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_decision_undrained{pool=\"web\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_pool_enabled{pool=\"web\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_pool_enabled{pool=\"batch\"}"), 0);
	/* typed: a decision has every field (the JSON document could lack one) */
	cr_assert_eq(sample_value(t, "corral_scale_queue{pool=\"batch\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_pool_note_info{pool=\"batch\",note=\"maintenance: \\\"no\\\" actions\"}"),
		     1);
	cr_assert_null(strstr(t, "corral_scale_pool_note_info{pool=\"web\""), "no note, no series");
	cr_assert_eq(sample_value(t, "corral_scale_actions{pool=\"web\",kind=\"launch\"}"), 2, "launch counts instances");
	cr_assert_eq(sample_value(t, "corral_scale_actions{pool=\"web\",kind=\"undrain\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_actions{pool=\"web\",kind=\"terminate\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_actions{pool=\"web\",kind=\"drain\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_actions{pool=\"batch\",kind=\"launch\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_last_launched_instances"), 2);
	cr_assert_eq(sample_value(t, "corral_scale_last_errors"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_maintenance"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_input_hosts"), 7);
	cr_assert_eq(sample_value(t, "corral_scale_input_instances"), 4);
	cr_assert_eq(sample_value(t, "corral_scale_reservations_error"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_spot_capacity_errors"), 0);
	cr_assert_eq(sample_value(t, "corral_scale_spot_price{instance_type=\"t3.micro\",availability_zone=\"us-east-1a\"}"),
		     0.0035);
	cr_assert_eq(sample_value(t, "corral_scale_reserved_instances{instance_type=\"t3.micro\",availability_zone=\"\"}"),
		     2);
	cr_assert_eq(sample_value(t, "corral_scale_orphans_terminated"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_unrecorded_in_grace"), 2);
	cr_assert_eq(sample_value(t, "corral_scale_records{state=\"terminated\"}"), 3);
}

Test(prom, scale_before_the_first_decision_has_only_the_counters) {
	metrics_buf b = {};
	cr_assert_eq(metrics_write_scale(&b, NULL, 1, 1), 0);
	_cleanup_free_ char *t = take(&b);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_scale_cycles_total"), 1);
	cr_assert_eq(sample_value(t, "corral_scale_cycles_failed_total"), 1);
	cr_assert(!has_family(t, "corral_scale_hosts"));
}

/* The rollout loop's last decision (rollout_loop_last()) as corral_rollout_*. */
Test(prom, rollout_decision_becomes_corral_rollout_families) {
	rollout_output out = {
		.state = { .plan = (char *) "p42", .generation = 2, .phase = ROLLOUT_ROLLING, .batch = 3,
			   .phase_since = 1700000000 - 90 },
		.n_done = 4, .n_running = 2, .n_failed = 1, .n_pending = 5, .n_skipped = 1,
	};
	metrics_buf b = {};
	cr_assert_eq(metrics_write_rollout(&b, &out, 1700000000 - 5, 1700000000, 7, 1), 0);
	_cleanup_free_ char *t = take(&b);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_rollout_rounds_total"), 7);
	cr_assert_eq(sample_value(t, "corral_rollout_rounds_failed_total"), 1);
	cr_assert_eq(sample_value(t, "corral_rollout_last_decision_timestamp_seconds"), 1700000000 - 5);
	cr_assert_eq(sample_value(t, "corral_rollout_phase{plan=\"p42\",phase=\"rolling\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_rollout_phase{plan=\"p42\",phase=\"canary\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_rollout_generation{plan=\"p42\"}"), 2);
	cr_assert_eq(sample_value(t, "corral_rollout_batch{plan=\"p42\"}"), 3);
	cr_assert_eq(sample_value(t, "corral_rollout_phase_seconds{plan=\"p42\"}"), 90);
	cr_assert_eq(sample_value(t, "corral_rollout_nodes{plan=\"p42\",state=\"done\"}"), 4);
	cr_assert_eq(sample_value(t, "corral_rollout_nodes{plan=\"p42\",state=\"running\"}"), 2);
	cr_assert_eq(sample_value(t, "corral_rollout_nodes{plan=\"p42\",state=\"failed\"}"), 1);
	cr_assert_eq(sample_value(t, "corral_rollout_nodes{plan=\"p42\",state=\"pending\"}"), 5);
	cr_assert_eq(sample_value(t, "corral_rollout_nodes{plan=\"p42\",state=\"skipped\"}"), 1);

	/* before the first decision: the counters only */
	cr_assert_eq(metrics_write_rollout(&b, NULL, 0, 1700000000, 0, 0), 0);
	_cleanup_free_ char *t2 = take(&b);
	cr_assert_eq(sample_value(t2, "corral_rollout_rounds_total"), 0);
	cr_assert(!has_family(t2, "corral_rollout_phase"));
}

/* The lifecycle loop's last decision as corral_deployment*. */
Test(prom, lifecycle_decision_becomes_corral_deployment_families) {
	deployment_output out = { .by_state = { [DEPLOYMENT_ACTIVE] = 7, [DEPLOYMENT_MAINTENANCE] = 2 },
				  .failing = 1, .unplaced = 3, .too_big = 1, .orders = 4 };
	metrics_buf b = {};
	cr_assert_eq(metrics_write_deployments(&b, &out, 9, 2, 1), 0);
	_cleanup_free_ char *t = take(&b);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_deployment_rounds_total"), 9);
	cr_assert_eq(sample_value(t, "corral_deployment_rounds_failed_total"), 2);
	cr_assert_eq(sample_value(t, "corral_deployment_notices_failed_total"), 1);
	cr_assert_eq(sample_value(t, "corral_deployments{state=\"active\"}"), 7);
	cr_assert_eq(sample_value(t, "corral_deployments{state=\"maintenance\"}"), 2);
	cr_assert_eq(sample_value(t, "corral_deployments{state=\"removed\"}"), 0);
	cr_assert_eq(sample_value(t, "corral_deployments_failing"), 1);
	cr_assert_eq(sample_value(t, "corral_deployments_unplaced"), 3);
	cr_assert_eq(sample_value(t, "corral_deployments_too_big"), 1);
	cr_assert_eq(sample_value(t, "corral_deployment_orders"), 4);
	cr_assert_eq(metrics_write_deployments(&b, NULL, 0, 0, 0), 0);
	_cleanup_free_ char *t2 = take(&b);
	cr_assert(!has_family(t2, "corral_deployments"), "no decision yet: counters only");
}

/* ---- metrics_http: the server in this process ---------------------------------- */

typedef struct fetched {
	long code;
	char content_type[128];
	char allow[64];
	char *body;
	size_t len;
} fetched;

static void fetched_done(fetched *f) {
	free(f->body);
}

static size_t child_body(char *p, size_t size, size_t n, void *ud) {
	FILE *f = ud;
	return fwrite(p, size, n, f);
}

static size_t child_header(char *p, size_t size, size_t n, void *ud) {
	char *allow = ud;
	if (size * n > 7 && strncasecmp(p, "Allow: ", 7) == 0)
		snprintf(allow, 64, "%.*s", (int) strcspn(p + 7, "\r\n"), p + 7);
	return size * n;
}

/* The forked child: one request with libcurl, then "code\ncontent-type\n
 * allow\n" and the body into fd. */
static _Noreturn void child_fetch(int fd, const char *url, const char *method) {
	char allow[64] = "";
	FILE *body = tmpfile();
	CURL *c = curl_easy_init();
	long code = 0;
	char *ct = NULL;
	if (!c || !body)
		_exit(3);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, child_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, child_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, allow);
	if (method && streq(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method && streq(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (curl_easy_perform(c) != CURLE_OK)
		_exit(4);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	dprintf(fd, "%ld\n%s\n%s\n", code, ct ?: "", allow);
	rewind(body);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, body)) > 0)
		if (write(fd, buf, n) != (ssize_t) n)
			_exit(5);
	_exit(0);
}

/* Requests url from a forked child while this process's loop runs the
 * server; 0 when the child got a response. */
static int fetch(sd_event *event, const char *url, const char *method, fetched *out) {
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		child_fetch(p[1], url, method);
	}
	close(p[1]);
	cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);

	_cleanup_free_ char *data = NULL;
	size_t len = 0, cap = 0;
	bool eof = false;
	uint64_t deadline = hx_now_usec() + 20 * USEC_PER_SEC;
	while (!eof && hx_now_usec() < deadline) {
		cr_assert_geq(sd_event_run(event, 5 * USEC_PER_MSEC), 0);
		for (;;) {
			if (cap - len < 65536) {
				cap = cap * 2 + 65536;
				data = realloc(data, cap);
				cr_assert_not_null(data);
			}
			ssize_t n = read(p[0], data + len, cap - len - 1);
			if (n > 0) {
				len += (size_t) n;
				continue;
			}
			if (n == 0)
				eof = true;
			break;
		}
	}
	close(p[0]);
	int status = 0;
	if (!eof)
		kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(eof, "no answer from the child within 20 s");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	data[len] = '\0';

	char *nl1 = strchr(data, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL, *nl3 = nl2 ? strchr(nl2 + 1, '\n') : NULL;
	cr_assert(nl3, "child output: %s", data);
	*out = (fetched){ .code = strtol(data, NULL, 10) };
	snprintf(out->content_type, sizeof out->content_type, "%.*s", (int) (nl2 - nl1 - 1), nl1 + 1);
	snprintf(out->allow, sizeof out->allow, "%.*s", (int) (nl3 - nl2 - 1), nl2 + 1);
	out->len = len - (size_t) (nl3 + 1 - data);
	out->body = strndup(nl3 + 1, out->len);
	return 0;
}

typedef struct collector {
	unsigned calls;
	int fail;                       /* return this */
	size_t big;                     /* write this many samples */
} collector;

static int collect(metrics_buf *b, void *userdata) {
	collector *c = userdata;
	c->calls++;
	if (c->fail)
		return c->fail;
	metrics_counter(b, "test_calls_total", "Collect calls, this one included.", NULL, c->calls);
	metrics_gauge(b, "test_label", "A labelled \"gauge\".", (const char *const[]){ "who", "x\"y", NULL }, 1.5);
	for (size_t i = 0; i < c->big; i++) {
		char id[32];
		snprintf(id, sizeof id, "%zu", i);
		metrics_gauge(b, "test_big", "Many series.", (const char *const[]){ "i", id, NULL }, (double) i);
	}
	return b->error;
}

static sd_event *event;

static void http_up(void) {
	cr_assert_eq(sd_event_new(&event), 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void http_down(void) {
	event = sd_event_unref(event);
}

TestSuite(metrics_http, .init = http_up, .fini = http_down, .timeout = 60);

static char *url_of(metrics_server *s, const char *path) {
	char *u;
	cr_assert_geq(asprintf(&u, "http://127.0.0.1:%u%s", (unsigned) metrics_server_port(s), path), 0);
	return u;
}

Test(metrics_http, serves_the_collectors_text_on_port_0) {
	collector c = {};
	char err[256] = "";
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);
	cr_assert_gt(metrics_server_port(s), 0, "port 0: the kernel picked one");
	cr_assert_str_eq(metrics_server_listen(s), "127.0.0.1:0");

	_cleanup_free_ char *url = url_of(s, "/metrics");
	for (unsigned i = 1; i <= 3; i++) {
		fetched f = {};
		cr_assert_eq(fetch(event, url, NULL, &f), 0);
		cr_assert_eq(f.code, 200);
		cr_assert_str_eq(f.content_type, "text/plain; version=0.0.4; charset=utf-8");
		cr_assert_eq(sample_value(f.body, "test_calls_total"), i, "a fresh collect per scrape:\n%s", f.body);
		cr_assert_eq(sample_value(f.body, "test_label{who=\"x\\\"y\"}"), 1.5, "%s", f.body);
		expect_valid(f.body);
		fetched_done(&f);
	}
	cr_assert_eq(c.calls, 3);
	cr_assert_eq(metrics_server_requests(s), 3);
}

Test(metrics_http, other_paths_404_other_methods_405_head_200) {
	collector c = {};
	char err[256] = "";
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);

	_cleanup_free_ char *other = url_of(s, "/"), *other2 = url_of(s, "/metricsx"), *url = url_of(s, "/metrics");
	fetched f = {};
	cr_assert_eq(fetch(event, other, NULL, &f), 0);
	cr_assert_eq(f.code, 404);
	fetched_done(&f);
	cr_assert_eq(fetch(event, other2, NULL, &f), 0);
	cr_assert_eq(f.code, 404);
	fetched_done(&f);
	cr_assert_eq(fetch(event, url, "POST", &f), 0);
	cr_assert_eq(f.code, 405);
	cr_assert_str_eq(f.allow, "GET, HEAD");
	fetched_done(&f);
	cr_assert_eq(fetch(event, url, "DELETE", &f), 0);
	cr_assert_eq(f.code, 405);
	fetched_done(&f);
	cr_assert_eq(c.calls, 0, "no collect for refused requests");
	cr_assert_eq(fetch(event, url, "HEAD", &f), 0);
	cr_assert_eq(f.code, 200);
	cr_assert_eq(f.len, 0, "HEAD: no body");
	fetched_done(&f);
}

Test(metrics_http, collect_failure_is_500) {
	collector c = { .fail = -EIO };
	char err[256] = "";
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);
	_cleanup_free_ char *url = url_of(s, "/metrics");
	fetched f = {};
	cr_assert_eq(fetch(event, url, NULL, &f), 0);
	cr_assert_eq(f.code, 500);
	fetched_done(&f);
	cr_assert_eq(c.calls, 1);
}

/* Several MB: the answer goes out over many rounds of the loop (MHD's
 * sockets are edge-triggered; the timer from MHD_get_timeout carries the
 * work over). */
Test(metrics_http, large_answer_arrives_whole) {
	collector c = { .big = 100000 };
	char err[256] = "";
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);
	_cleanup_free_ char *url = url_of(s, "/metrics");
	fetched f = {};
	cr_assert_eq(fetch(event, url, NULL, &f), 0);
	cr_assert_eq(f.code, 200);
	cr_assert_gt(f.len, 1000000);
	cr_assert_eq(sample_value(f.body, "test_big{i=\"99999\"}"), 99999);
	expect_valid(f.body);
	fetched_done(&f);
}

Test(metrics_http, ipv6_loopback) {
	collector c = {};
	char err[256] = "";
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	int r = metrics_server_new(&s, event, "[::1]:0", collect, &c, err, sizeof err);
	cr_assert_eq(r, 0, "%s (no IPv6 loopback here?)", err);
	_cleanup_free_ char *url = NULL;
	cr_assert_geq(asprintf(&url, "http://[::1]:%u/metrics", (unsigned) metrics_server_port(s)), 0);
	fetched f = {};
	cr_assert_eq(fetch(event, url, NULL, &f), 0);
	cr_assert_eq(f.code, 200);
	cr_assert_eq(sample_value(f.body, "test_calls_total"), 1);
	fetched_done(&f);
}

Test(metrics_http, second_server_on_the_port_is_eaddrinuse_with_a_message) {
	collector c = {};
	char err[256] = "", listen[64], want[128];
	_cleanup_(metrics_server_freep) metrics_server *a = NULL;
	metrics_server *b = (metrics_server *) 0x1;
	cr_assert_eq(metrics_server_new(&a, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);
	snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned) metrics_server_port(a));
	cr_assert_eq(metrics_server_new(&b, event, listen, collect, &c, err, sizeof err), -EADDRINUSE);
	cr_assert_eq(b, (metrics_server *) 0x1, "output untouched on failure");
	snprintf(want, sizeof want, "metrics_listen %s: address already in use", listen);
	cr_assert_str_eq(err, want);

	/* The first one still serves. */
	_cleanup_free_ char *url = url_of(a, "/metrics");
	fetched f = {};
	cr_assert_eq(fetch(event, url, NULL, &f), 0);
	cr_assert_eq(f.code, 200);
	fetched_done(&f);

	/* Once it is gone the port is free again (SO_REUSEADDR: no TIME_WAIT wait). */
	a = metrics_server_free(a);
	cr_assert_eq(metrics_server_new(&a, event, listen, collect, &c, err, sizeof err), 0, "%s", err);
}

Test(metrics_http, bad_addresses_are_einval_with_a_message) {
	static const struct {
		const char *listen, *needle;
	} cases[] = {
		{ "", "empty address" },
		{ "9469", "expected host:port" },
		{ ":9469", "no host" },
		{ "localhost:9469", "is not an IPv4 address" },
		{ "127.0.0.1:65536", "port must be a number from 0 to 65535" },
		{ "127.0.0.1:+1", "port must be a number" },
		{ "127.0.0.1:", "port must be a number" },
		{ "::1:9469", "IPv6 in brackets" },
		{ "[::1:9469", "expected [IPv6]:port" },
		{ "[127.0.0.1]:1", "is not an IPv6 address" },
	};
	collector c = {};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char err[256] = "";
		metrics_server *s = NULL;
		cr_assert_eq(metrics_server_new(&s, event, cases[i].listen, collect, &c, err, sizeof err), -EINVAL, "%s",
			     cases[i].listen);
		cr_assert_null(s);
		cr_assert(strstr(err, cases[i].needle) && strncmp(err, "metrics_listen", 14) == 0, "%s: %s",
			  cases[i].listen, err);
	}
	/* Binding an address this host does not have: the kernel's reason. */
	char err[256] = "";
	metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "192.0.2.1:9469", collect, &c, err, sizeof err), -EADDRNOTAVAIL);
	cr_assert_str_eq(err, "metrics_listen 192.0.2.1:9469: cannot assign requested address");
}

Test(metrics_http, free_closes_the_port) {
	collector c = {};
	char err[256] = "";
	metrics_server *s = NULL;
	cr_assert_eq(metrics_server_new(&s, event, "127.0.0.1:0", collect, &c, err, sizeof err), 0, "%s", err);
	uint16_t port = metrics_server_port(s);
	s = metrics_server_free(s);
	cr_assert_null(metrics_server_free(NULL));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_neq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0, "still listening after free");
	cr_assert_eq(errno, ECONNREFUSED);
	close(fd);
}

/* ---- metrics_corrald: a real corrald against a real etcd ------------------------ */

static hx_etcd *etcd;
static char *dir;

static void corrald_up(void) {
	et_fixture_up(&etcd, &dir, "metrics", 1);
}

static void corrald_down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(metrics_corrald, .init = corrald_up, .fini = corrald_down, .timeout = 90);
TestSuite(metrics_input, .timeout = 30);

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...) {
	va_list ap;
	char *s = NULL;
	va_start(ap, f);
	cr_assert_geq(vasprintf(&s, f, ap), 0);
	va_end(ap);
	return s;
}

/* GET http://127.0.0.1:port/metrics from another process's server:
 * the body on 200, else NULL. */
static char *scrape(int port) {
	_cleanup_free_ char *url = fmt("http://127.0.0.1:%d/metrics", port);
	hx_http_req rq = { .url = url, .timeout_ms = 2000 };
	char *body = NULL;
	long code = 0;
	if (hx_http(&rq, &body, &code) < 0 || code != 200) {
		free(body);
		return NULL;
	}
	return body;
}

/* w: {port, series, minimum value}: true once a scrape shows series >= min. */
typedef struct want {
	int port;
	const char *series;
	double min;
} want;

static bool scrape_shows(void *ud) {
	want *w = ud;
	_cleanup_free_ char *t = scrape(w->port);
	return t && sample_value(t, w->series) >= w->min;
}

static bool scrape_lacks(void *ud) {
	want *w = ud;
	_cleanup_free_ char *t = scrape(w->port);
	return t && !strstr(t, w->series);
}

static bool scrape_fails(void *ud) {
	_cleanup_free_ char *t = scrape(*(int *) ud);
	return t == NULL;
}

static bool log_contains(void *ud) {
	const char *const *w = ud;
	_cleanup_free_ char *text = hx_read_file(w[0], NULL);
	return text && strstr(text, w[1]);
}

/* The port corrald says it serves on ("... (port N)"), once it says so;
 * with metrics_listen port 0 no other process can race us for a port. */
static bool log_names_port(void *ud) {
	const char *log = ud;
	_cleanup_free_ char *text = hx_read_file(log, NULL);
	return text && strstr(text, "metrics: serving http://");
}

static int served_port(const char *log) {
	bool ok = hx_wait_until(log_names_port, (void *) log, 20 * USEC_PER_SEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "corrald never said where it serves metrics");
	_cleanup_free_ char *text = hx_read_file(log, NULL);
	const char *p = strstr(strstr(text, "metrics: serving http://"), "(port ");
	cr_assert_not_null(p);
	int port = atoi(p + 6);
	cr_assert_gt(port, 0);
	return port;
}

static hx_proc *spawn_corrald(const char *cfg, const char *log, char *const env[]) {
	_cleanup_free_ char *bin = fmt("%s/corrald", hx_builddir());
	char *const argv[] = { bin, "--config", (char *) cfg, NULL };
	hx_proc *p = NULL;
	cr_assert_eq(hx_proc_spawn(&p, argv, env, log), 0);
	return p;
}

static void stop_corrald(hx_proc **p, const char *log) {
	int status = -1;
	cr_assert_eq(hx_proc_signal(*p, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(*p, 15 * USEC_PER_SEC, &status), 0, "corrald did not stop");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		hx_log_tail(log, 30);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald exited with %d", status);
	*p = hx_proc_free(*p);
}

/* A config for n1 rendering one file from initial values, with metrics on
 * port (0 < port) or the given metrics_listen line. */
static char *node_config(const char *name, const char *metrics_line) {
	_cleanup_free_ char *more =
		fmt("files:\n  app:\n    path: %s/app.json\ninitial:\n  app: {greeting: hello}\n%s", dir, metrics_line);
	char *cfg = fmt("%s/%s.yaml", dir, name);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), more), 0);
	return cfg;
}

Test(metrics_corrald, node_metrics_on_the_only_node) {
	_cleanup_free_ char *cfg = node_config("n1", "metrics_listen: 127.0.0.1:0\n"), *log = fmt("%s/n1.log", dir);
	_cleanup_(hx_proc_freep) hx_proc *p = spawn_corrald(cfg, log, NULL);
	int port = served_port(log);

	/* The only node: registered, elected, and its first apply done. */
	want leader = { port, "corral_leader", 1 };
	bool ok = hx_wait_until(scrape_shows, &leader, 20 * USEC_PER_SEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "corral_leader never 1");
	want applied = { port, "corral_config_applies_total{result=\"ok\"}", 1 };
	cr_assert(hx_wait_until(scrape_shows, &applied, 20 * USEC_PER_SEC), "no successful apply counted");
	_cleanup_free_ char *current = hx_etcd_get(etcd, "/corral/t/current");
	cr_assert_not_null(current);
	_cleanup_free_ char *series = fmt("corral_config_applied_info{config=\"%s\"}", current);
	want in_place = { port, series, 1 };
	cr_assert(hx_wait_until(scrape_shows, &in_place, 20 * USEC_PER_SEC), "%s never shown", series);

	_cleanup_free_ char *t = scrape(port);
	cr_assert_not_null(t);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_up"), 1);
	cr_assert_eq(sample_value(t, "corral_build_info{version=\"" CORRAL_VERSION "\"}"), 1, "%s", t);
	cr_assert_eq(sample_value(t, "corral_node_info{cluster=\"t\",node=\"n1\",pool=\"\"}"), 1, "%s", t);
	cr_assert_eq(sample_value(t, "corral_node_registered"), 1);
	cr_assert_geq(sample_value(t, "corral_leader_elections_total"), 1);
	cr_assert_eq(sample_value(t, "corral_config_in_place"), 1);
	cr_assert_eq(sample_value(t, "corral_config_applies_total{result=\"failed\"}"), 0);
	cr_assert_gt(sample_value(t, "corral_config_last_apply_timestamp_seconds"), 1.6e9);
	cr_assert_gt(sample_value(t, "corral_start_time_seconds"), 1.6e9);
	cr_assert_eq(sample_value(t, "corral_agent_running"), 0, "no agent configured");
	cr_assert(!has_family(t, "corral_scale_cycles_total"), "no ec2.region: no scaling metrics");
	cr_assert(has_family(t, "corral_rollout_rounds_total"), "every leader runs the rollout loop, EC2 or not");
	cr_assert(!has_family(t, "corral_rollout_phase"), "no plan: nothing per plan");

	/* Other paths and methods, from outside. */
	_cleanup_free_ char *url = fmt("http://127.0.0.1:%d/", port);
	hx_http_req rq = { .url = url, .timeout_ms = 2000 };
	long code = 0;
	cr_assert_eq(hx_http(&rq, NULL, &code), 0);
	cr_assert_eq(code, 404);
	_cleanup_free_ char *murl = fmt("http://127.0.0.1:%d/metrics", port);
	hx_http_req post = { .url = murl, .json = "{}", .timeout_ms = 2000 };
	cr_assert_eq(hx_http(&post, NULL, &code), 0);
	cr_assert_eq(code, 405);

	stop_corrald(&p, log);
	cr_assert(scrape_fails(&port), "still served after exit");
}

Test(metrics_corrald, node_load_from_the_agent) {
	_cleanup_free_ char *line = fmt("metrics_listen: 127.0.0.1:0\nload_interval: 1s\n"
					"load_command: \"echo '{\\\"jobs\\\": 3, \\\"capacity\\\": 8, \\\"memory\\\": 0.25}'\"\n");
	_cleanup_free_ char *cfg = node_config("n1", line), *log = fmt("%s/n1.log", dir);
	_cleanup_(hx_proc_freep) hx_proc *p = spawn_corrald(cfg, log, NULL);
	int port = served_port(log);

	want jobs = { port, "corral_load_jobs", 3 };
	bool ok = hx_wait_until(scrape_shows, &jobs, 20 * USEC_PER_SEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "corral_load_jobs never 3");
	_cleanup_free_ char *t = scrape(port);
	cr_assert_not_null(t);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_agent_running"), 1);
	cr_assert_eq(sample_value(t, "corral_load_capacity"), 8);
	cr_assert_eq(sample_value(t, "corral_load_memory_ratio"), 0.25);
	cr_assert_eq(sample_value(t, "corral_host_draining"), 0);
	cr_assert_eq(sample_value(t, "corral_host_ready_to_stop"), 0);
	stop_corrald(&p, log);
}

Test(metrics_corrald, bind_failure_is_logged_and_corrald_runs_on) {
	/* Hold the port ourselves. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	cr_assert_geq(fd, 0);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
	int port = ntohs(sa.sin_port);

	_cleanup_free_ char *line = fmt("metrics_listen: 127.0.0.1:%d\n", port);
	_cleanup_free_ char *cfg = node_config("n1", line), *log = fmt("%s/n1.log", dir);
	_cleanup_(hx_proc_freep) hx_proc *p = spawn_corrald(cfg, log, NULL);

	_cleanup_free_ char *msg = fmt("metrics_listen 127.0.0.1:%d: address already in use; running without metrics", port);
	const char *w[] = { log, msg };
	bool ok = hx_wait_until(log_contains, w, 10 * USEC_PER_SEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "no clear log line for the bind failure");
	/* It carries on: registers as usual. */
	const char *reg[] = { log, "registered as /corral/t/nodes/n1" };
	cr_assert(hx_wait_until(log_contains, reg, 10 * USEC_PER_SEC), "corrald did not carry on");
	cr_assert(hx_proc_running(p));

	/* The port freed and a reload (same address): now it serves. */
	close(fd);
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	want up = { port, "corral_up", 1 };
	cr_assert(hx_wait_until(scrape_shows, &up, 10 * USEC_PER_SEC), "the reload did not start the server");
	stop_corrald(&p, log);
}

Test(metrics_corrald, reload_moves_and_stops_the_server) {
	_cleanup_free_ char *cfg = node_config("n1", "metrics_listen: 127.0.0.1:0\n"), *log = fmt("%s/n1.log", dir);
	_cleanup_(hx_proc_freep) hx_proc *p = spawn_corrald(cfg, log, NULL);
	int port1 = served_port(log), port2 = hx_free_port();
	cr_assert(port2 > 0 && port1 != port2);

	want up1 = { port1, "corral_node_registered", 1 };
	cr_assert(hx_wait_until(scrape_shows, &up1, 20 * USEC_PER_SEC), "not served on the first port");

	/* Another port: the old one closes, the new one serves. */
	_cleanup_free_ char *line2 = fmt("metrics_listen: \"127.0.0.1:%d\"\n", port2);
	free(node_config("n1", line2));
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	want up2 = { port2, "corral_up", 1 };
	cr_assert(hx_wait_until(scrape_shows, &up2, 10 * USEC_PER_SEC), "not served on the new port");
	cr_assert(hx_wait_until(scrape_fails, &port1, 10 * USEC_PER_SEC), "the old port still serves");

	/* The key gone: no server at all. */
	free(node_config("n1", ""));
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	cr_assert(hx_wait_until(scrape_fails, &port2, 10 * USEC_PER_SEC), "metrics still served without the key");
	const char *stopped[] = { log, "metrics: stopped serving on 127.0.0.1:" };
	cr_assert(log_contains(stopped));
	cr_assert(hx_proc_running(p));
	stop_corrald(&p, log);
}

Test(metrics_input, bad_metrics_listen_is_a_config_error) {
	_cleanup_free_ char *d = hx_mkdtemp("metrics-input"), *cfg = fmt("%s/bad.yaml", d);
	_cleanup_free_ char *bin = fmt("%s/corrald", hx_builddir());
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", "http://127.0.0.1:1",
						  "metrics_listen: 127.0.0.1:99999\n"),
		     0);
	char *const check[] = { bin, "--config", cfg, "--check-config", NULL };
	cr_assert_eq(hx_run(NULL, 10 * USEC_PER_SEC, check, NULL), 2);
	/* Running it: the same, before anything starts. */
	_cleanup_free_ char *err = NULL;
	char *const run[] = { bin, "--config", cfg, NULL };
	cr_assert_eq(hx_run_capture(NULL, &err, 10 * USEC_PER_SEC, run, NULL), 2);
	cr_assert(err && strstr(err, "bad.yaml:11:17: metrics_listen: \"127.0.0.1:99999\": port must be a number"),
		  "stderr: %s", err ?: "");
	hx_rm_tmp(d);
}

/* ---- metrics_scale: the leader's scaler, moto as EC2 ----------------------------- */

static hx_moto *moto;

/* scale/policy for pool web: exactly one t3.micro, from the launch
 * template the proxy makes in moto. */
static void write_policy(void) {
	/* Reservations answered (none): moto alone has no DescribeReservedInstances,
	 * and corrald's EC2 client would back off on it every cycle. */
	cr_assert_eq(hx_moto_set_reserved(moto, "[]"), 0);
	json_auto_t *setup = NULL;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	const char *lt = json_string_value(json_object_get(setup, "launch_template"));
	const char *subnet = json_string_value(json_object_get(setup, "subnet"));
	const char *az = json_string_value(json_object_get(setup, "az"));
	cr_assert(lt && subnet && az);

	_cleanup_free_ char *policy =
		fmt("{\"pools\":{\"web\":{\"launch_template\":\"%s\",\"instance_types\":[\"t3.micro\"],"
		    "\"subnets\":[{\"id\":\"%s\",\"availability_zone\":\"%s\"}],\"markets\":[\"on-demand\"],"
		    "\"min\":1,\"max\":1,\"jobs_per_host\":1,\"scale_in_after\":0,"
		    "\"scale_in_cooldown\":0,\"min_lifetime\":0}}}",
		    lt, subnet, az);
	cr_assert_eq(hx_etcd_put(etcd, "/corral/t/scale/policy", policy), 0);
}

static void scale_up(void) {
	corrald_up();
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_PROFILE");
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", hx_moto_access_key_id(moto), 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", hx_moto_secret_access_key(moto), 1), 0);
}

static void scale_down(void) {
	moto = hx_moto_free(moto);
	corrald_down();
}

TestSuite(metrics_scale, .init = scale_up, .fini = scale_down, .timeout = 150);

Test(metrics_scale, leader_shows_the_last_decision_while_its_scaler_runs) {
	write_policy();
	_cleanup_free_ char *more = fmt("pool: web\nscale_interval: 1s\nmetrics_listen: 127.0.0.1:0\n"
					"ec2:\n  region: %s\n  endpoint: %s\n  imds_endpoint: \"\"\n  instance_id: i-self\n",
					hx_moto_region(moto), hx_moto_endpoint(moto));
	_cleanup_free_ char *cfg = fmt("%s/n1.yaml", dir), *log = fmt("%s/n1.log", dir);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), more), 0);
	_cleanup_free_ char *key = fmt("AWS_ACCESS_KEY_ID=%s", hx_moto_access_key_id(moto));
	_cleanup_free_ char *secret = fmt("AWS_SECRET_ACCESS_KEY=%s", hx_moto_secret_access_key(moto));
	char *const env[] = { key, secret, NULL };
	_cleanup_(hx_proc_freep) hx_proc *p = spawn_corrald(cfg, log, env);
	int port = served_port(log);

	/* min 1, nothing running: the first decision launches one host, and
	 * from then on the pool has one record (launching: no node ever
	 * registers for the instance). */
	want launching = { port, "corral_scale_hosts{pool=\"web\",state=\"launching\"}", 1 };
	bool ok = hx_wait_until(scrape_shows, &launching, 40 * USEC_PER_SEC);
	if (!ok)
		hx_log_tail(log, 40);
	cr_assert(ok, "corral_scale_hosts{pool=\"web\",state=\"launching\"} never 1");

	_cleanup_free_ char *t = scrape(port);
	cr_assert_not_null(t);
	expect_valid(t);
	cr_assert_eq(sample_value(t, "corral_leader"), 1);
	cr_assert_eq(sample_value(t, "corral_node_info{cluster=\"t\",node=\"n1\",pool=\"web\"}"), 1, "%s", t);
	cr_assert_eq(sample_value(t, "corral_scale_hosts{pool=\"web\",state=\"ready\"}"), 0, "%s", t);
	cr_assert_eq(sample_value(t, "corral_scale_desired_hosts{pool=\"web\"}"), 1, "%s", t);
	cr_assert_eq(sample_value(t, "corral_scale_jobs{pool=\"web\"}"), 0, "%s", t);
	cr_assert_eq(sample_value(t, "corral_scale_jobs_unhealthy{pool=\"web\"}"), 0, "%s", t);
	cr_assert(!isnan(sample_value(t, "corral_scale_desired_capacity{pool=\"web\"}")), "%s", t);
	cr_assert(!isnan(sample_value(t, "corral_scale_queue{pool=\"web\"}")), "%s", t);
	cr_assert(!isnan(sample_value(t, "corral_scale_hosts_held{pool=\"web\"}")), "%s", t);
	cr_assert(!isnan(sample_value(t, "corral_scale_actions{pool=\"web\",kind=\"launch\"}")), "%s", t);
	cr_assert_geq(sample_value(t, "corral_scale_cycles_total"), 1);
	cr_assert(!isnan(sample_value(t, "corral_scale_cycles_failed_total")));
	cr_assert_gt(sample_value(t, "corral_scale_last_decision_timestamp_seconds"), 1.6e9);

	/* The one launch shows as a decision's launch; later ones launch nothing. */
	const char *runs[] = { log, "autoscaler: " };
	cr_assert(log_contains(runs));
	want cycles = { port, "corral_scale_cycles_total", sample_value(t, "corral_scale_cycles_total") + 1 };
	cr_assert(hx_wait_until(scrape_shows, &cycles, 40 * USEC_PER_SEC), "cycles_total does not count up");
	_cleanup_free_ char *t2 = scrape(port);
	cr_assert_not_null(t2);
	cr_assert_eq(sample_value(t2, "corral_scale_actions{pool=\"web\",kind=\"launch\"}"), 0,
		     "the host exists: no launch in the last decision\n%s", t2);
	cr_assert_eq(sample_value(t2, "corral_scale_decision_launched{pool=\"web\"}"), 0, "%s", t2);
	cr_assert_eq(sample_value(t2, "corral_scale_hosts{pool=\"web\",state=\"launching\"}"), 1, "%s", t2);

	/* A reload without the region stops the scaler: its metrics go, the
	 * node's stay. */
	_cleanup_free_ char *no_region = fmt("pool: web\nmetrics_listen: 127.0.0.1:0\n");
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), no_region),
		     0);
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	want gone = { port, "corral_scale_", 0 };
	cr_assert(hx_wait_until(scrape_lacks, &gone, 10 * USEC_PER_SEC), "scaling metrics after the scaler stopped");
	want still = { port, "corral_leader", 1 };
	cr_assert(scrape_shows(&still));
	stop_corrald(&p, log);
}
