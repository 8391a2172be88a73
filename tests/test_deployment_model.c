/* test_deployment_model.c — the deployment model (src/deployment/): sizes
 * and durations as operators write them, the record, report and policy
 * codecs (every malformed input names its key, unknown record keys kept),
 * observe from records, and placement. Pure. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "macro.h"
#include "rfc3339.h"

#define GIB (INT64_C(1) << 30)
#define NOW ((time_t) 1796083200)       /* 2026-12-01T00:00:00Z */

Test(deployment_model, sizes) {
	static const struct {
		const char *s;
		int64_t v;
	} good[] = {
		{ "2G", 2 * GIB },       { "512M", 512 << 20 },     { "1536K", 1536 << 10 }, { "1073741824", GIB },
		{ "2GiB", 2 * GIB },     { "2GB", 2 * GIB },        { "100B", 100 },         { "1t", INT64_C(1) << 40 },
	};
	static const char *const bad[] = { "", "0", "-1", "2X", "G", "2.5G", "9999999T", "2Gx", "B", "0G" };
	int64_t v;

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		cr_assert_eq(deployment_parse_size(good[i].s, &v), 0, "%s", good[i].s);
		cr_expect_eq(v, good[i].v, "%s", good[i].s);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		cr_expect_eq(deployment_parse_size(bad[i], &v), -EINVAL, "\"%s\" refused", bad[i]);
	char buf[24];
	cr_expect_str_eq(deployment_format_size(2 * GIB, buf, sizeof buf), "2G");
	cr_expect_str_eq(deployment_format_size(1536 << 20, buf, sizeof buf), "1536M");
	cr_expect_str_eq(deployment_format_size(100, buf, sizeof buf), "100");
}

Test(deployment_model, durations) {
	static const struct {
		const char *s;
		int64_t v;
	} good[] = { { "7d", 604800 }, { "24h", 86400 }, { "90m", 5400 }, { "30s", 30 }, { "45", 45 }, { "2w", 1209600 }, { "0", 0 } };
	static const char *const bad[] = { "", "7x", "-1d", "d", "1.5h", "7 d" };
	int64_t v;
	char buf[32];

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		cr_assert_eq(deployment_parse_duration(good[i].s, &v), 0, "%s", good[i].s);
		cr_expect_eq(v, good[i].v, "%s", good[i].s);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		cr_expect_eq(deployment_parse_duration(bad[i], &v), -EINVAL, "\"%s\" refused", bad[i]);
	cr_expect_str_eq(deployment_format_duration(604800, buf, sizeof buf), "7d");
	cr_expect_str_eq(deployment_format_duration(129600, buf, sizeof buf), "36h");
	cr_expect_str_eq(deployment_format_duration(5400, buf, sizeof buf), "90m");
	cr_expect_str_eq(deployment_format_duration(45, buf, sizeof buf), "45s");
}

/* ---- malformed input: each table row must be refused naming its key ---- */

typedef struct refusal {
	const char *json, *key;
} refusal;

static int parse_record(json_t *j, deployment_error *err) {
	_cleanup_(deployment_done) deployment d = {};
	return deployment_from_json(j, "x", &d, err);
}

static int parse_report(json_t *j, deployment_error *err) {
	_cleanup_(deployment_report_done) deployment_report r = {};
	return deployment_report_from_json(j, &r, err);
}

static int parse_policy(json_t *j, deployment_error *err) {
	_cleanup_(deployment_policy_done) deployment_policy p = {};
	return deployment_policy_from_json(j, &p, err);
}

static void expect_refused(int (*parse)(json_t *, deployment_error *), const refusal *t, size_t n) {
	for (size_t i = 0; i < n; i++) {
		json_auto_t *j = json_loads(t[i].json, JSON_DECODE_ANY, NULL);
		deployment_error err = {};
		cr_assert_not_null(j, "%s", t[i].json);
		cr_expect_eq(parse(j, &err), -EINVAL, "%s", t[i].json);
		cr_expect_str_eq(err.key, t[i].key, "%s: %s", t[i].json, err.message);
		cr_expect_not_null(strstr(err.message, t[i].key), "%s", err.message);
	}
}

static const char full[] =
	"{\"owner\": \"ops@acme.example\", \"memory\": 2147483648, \"host\": \"n1\", \"state\": \"maintenance\","
	" \"created\": \"2026-11-01T00:00:00Z\", \"state_since\": \"2026-11-20T00:00:00Z\","
	" \"license_expires\": \"2026-12-24T00:00:00Z\", \"last_active\": \"2026-11-12T08:00:00Z\","
	" \"removal\": {\"reason\": \"inactive\", \"since\": \"2026-11-27T00:00:00Z\", \"skip_backup\": false},"
	" \"backup\": \"s3://b/acme-1\", \"backup_at\": \"2026-11-27T01:00:00Z\","
	" \"notices\": {\"inactive_warning\": \"2026-11-18T08:00:00Z\", \"maintenance\": \"2026-11-20T00:00:00Z\"},"
	" \"last_seq\": 4, \"order\": {\"seq\": 4, \"hook\": \"remove\", \"host\": \"n1\", \"since\": \"2026-11-27T01:00:05Z\"},"
	" \"error\": null, \"attempts\": 0, \"retry_at\": null, \"last_host\": null,"
	" \"app_plan\": {\"seats\": 30}}";

Test(deployment_model, record_round_trip_keeps_every_field_and_unknown_keys) {
	json_auto_t *in = json_loads(full, 0, NULL);
	_cleanup_(deployment_done) deployment d = {}, c = {};
	deployment_error err = {};

	cr_assert_not_null(in);
	cr_assert_eq(deployment_from_json(in, "acme", &d, &err), 0, "%s", err.message);
	cr_expect_str_eq(d.id, "acme");
	cr_expect_eq(d.memory, 2 * GIB);
	cr_expect_eq(d.state, DEPLOYMENT_MAINTENANCE);
	cr_expect_eq(d.removal, DEPLOYMENT_REMOVAL_INACTIVE);
	cr_expect_eq(d.order.hook, DEPLOYMENT_HOOK_REMOVE);
	cr_expect_eq(d.n_notices, 2);
	time_t t;
	cr_assert_eq(rfc3339_parse("2026-11-20T00:00:00Z", &t), 0);
	cr_expect_eq(deployment_notice_sent(&d, "maintenance"), t);
	cr_expect_eq(deployment_notice_sent(&d, "expired"), 0);
	cr_expect(deployment_occupies(&d));
	json_auto_t *out = deployment_to_json(&d);
	cr_assert_not_null(out);
	cr_expect(json_equal(in, out), "round trip:\n%s", json_dumps(out, JSON_INDENT(1)));
	cr_assert_eq(deployment_copy(&d, &c), 0);
	json_auto_t *out2 = deployment_to_json(&c);
	cr_expect(json_equal(out, out2));
	cr_expect_str_eq(c.id, "acme");

	/* a removed deployment occupies nothing; memory as a size string */
	json_auto_t *r = json_loads("{\"memory\": \"2G\", \"state\": \"removed\", \"host\": \"n1\"}", 0, NULL);
	_cleanup_(deployment_done) deployment rd = {};
	cr_assert_eq(deployment_from_json(r, "old", &rd, &err), 0, "%s", err.message);
	cr_expect_eq(rd.memory, 2 * GIB);
	cr_expect_not(deployment_occupies(&rd));
}

/* The fields the fixture above leaves unset, set: a failing hook's
 * error and retry, a removed record's last host, an operator's removal
 * without backup. */
Test(deployment_model, record_round_trip_with_the_other_fields_set) {
	static const char rec[] =
		"{\"owner\": null, \"memory\": 536870912, \"host\": null, \"state\": \"removed\","
		" \"created\": \"2026-11-01T00:00:00Z\", \"state_since\": \"2026-12-02T10:00:00Z\","
		" \"license_expires\": null, \"last_active\": null,"
		" \"removal\": {\"reason\": \"operator\", \"since\": \"2026-12-02T09:00:00Z\", \"skip_backup\": true},"
		" \"backup\": null, \"backup_at\": null, \"notices\": {\"removed\": \"2026-12-02T10:00:00Z\"},"
		" \"last_seq\": 9, \"order\": null, \"error\": \"exit status 1: disk full\", \"attempts\": 3,"
		" \"retry_at\": \"2026-12-02T11:20:00Z\", \"last_host\": \"n7\"}";
	json_auto_t *in = json_loads(rec, 0, NULL);
	_cleanup_(deployment_done) deployment d = {};
	deployment_error err = {};

	cr_assert_not_null(in);
	cr_assert_eq(deployment_from_json(in, "old", &d, &err), 0, "%s", err.message);
	cr_expect_eq(d.removal, DEPLOYMENT_REMOVAL_OPERATOR);
	cr_expect(d.removal_skip_backup);
	cr_expect_str_eq(d.error, "exit status 1: disk full");
	cr_expect_eq(d.attempts, 3);
	cr_expect_neq(d.retry_at, 0);
	cr_expect_str_eq(d.last_host, "n7");
	cr_expect_null(d.extra, "no unknown keys, none kept");
	json_auto_t *out = deployment_to_json(&d);
	cr_expect(json_equal(in, out), "round trip:\n%s", json_dumps(out, JSON_INDENT(1)));

	/* an order's seq above last_seq moves last_seq (seqs only increase) */
	json_auto_t *o = json_loads("{\"memory\": 1, \"state\": \"pending\", \"last_seq\": 2,"
				    " \"order\": {\"seq\": 5, \"hook\": \"deploy\", \"host\": \"n1\"}}", 0, NULL);
	_cleanup_(deployment_done) deployment od = {};
	cr_assert_eq(deployment_from_json(o, "p", &od, &err), 0, "%s", err.message);
	cr_expect_eq(od.last_seq, 5);
	cr_expect_not(deployment_occupies(&od), "no host yet: holds nothing");
}

/* copy takes any struct, also one decide() has half built (no memory yet,
 * a notice at time 0), and shares nothing with it */
Test(deployment_model, copy_is_deep) {
	deployment_notice notices[] = { { (char *) "expiry_7d", NOW }, { (char *) "expiry_1d", 0 } };
	json_auto_t *extra = json_pack("{s:{s:i}}", "app_plan", "seats", 30);
	deployment d = {
		.id = (char *) "acme", .owner = (char *) "ops@acme.example", .host = (char *) "n1",
		.state = DEPLOYMENT_ACTIVE, .notices = notices, .n_notices = 2, .last_seq = 3,
		.order = { .seq = 3, .hook = DEPLOYMENT_HOOK_BACKUP, .host = (char *) "n1", .since = NOW },
		.error = (char *) "exit status 2", .attempts = 1, .extra = extra,
	};
	_cleanup_(deployment_done) deployment c = {};

	cr_assert_eq(deployment_copy(&d, &c), 0);
	cr_expect_str_eq(c.id, "acme");
	cr_expect_neq(c.id, d.id);
	cr_expect_str_eq(c.owner, "ops@acme.example");
	cr_expect_str_eq(c.order.host, "n1");
	cr_expect_neq(c.order.host, d.order.host);
	cr_expect_eq(c.order.hook, DEPLOYMENT_HOOK_BACKUP);
	cr_expect_null(c.backup);
	cr_assert_eq(c.n_notices, 2);
	cr_expect_str_eq(c.notices[1].kind, "expiry_1d", "in the order sent");
	cr_expect_neq(c.notices, d.notices);
	cr_expect_eq(deployment_notice_sent(&c, "expiry_7d"), NOW);
	cr_expect_eq(c.memory, 0);
	cr_expect_str_eq(c.error, "exit status 2");
	cr_assert_not_null(c.extra);
	cr_expect_neq(c.extra, d.extra);
	cr_expect(json_equal(c.extra, d.extra));
	json_object_set_new(json_object_get(c.extra, "app_plan"), "seats", json_integer(31));
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(extra, "app_plan"), "seats")), 30,
		     "the original's extra untouched");
}

Test(deployment_model, malformed_records_name_their_key) {
	static const refusal t[] = {
		{ "[]", "deployment" },
		{ "{\"state\": \"active\"}", "deployment.memory" },
		{ "{\"memory\": \"lots\", \"state\": \"active\"}", "deployment.memory" },
		{ "{\"memory\": 0, \"state\": \"active\"}", "deployment.memory" },
		{ "{\"memory\": 1}", "deployment.state" },
		{ "{\"memory\": 1, \"state\": \"sleeping\"}", "deployment.state" },
		{ "{\"memory\": 1, \"state\": \"active\", \"license_expires\": \"tomorrow\"}", "deployment.license_expires" },
		{ "{\"memory\": 1, \"state\": \"active\", \"owner\": 7}", "deployment.owner" },
		{ "{\"memory\": 1, \"state\": \"active\", \"notices\": []}", "deployment.notices" },
		{ "{\"memory\": 1, \"state\": \"active\", \"notices\": {\"expired\": 1}}", "deployment.notices.expired" },
		{ "{\"memory\": 1, \"state\": \"active\", \"removal\": {\"reason\": \"bored\"}}", "deployment.removal.reason" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": {\"seq\": 1, \"hook\": \"dance\", \"host\": \"n\"}}", "deployment.order.hook" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": {\"hook\": \"deploy\"}}", "deployment.order" },
		{ "{\"memory\": 1, \"state\": \"active\", \"attempts\": -1}", "deployment.attempts" },
		{ "{\"memory\": 9007199254740992, \"state\": \"active\"}", "deployment.memory" },
		{ "{\"memory\": 1, \"state\": 5}", "deployment.state" },
		{ "{\"memory\": 1, \"state\": \"active\", \"host\": 7}", "deployment.host" },
		{ "{\"memory\": 1, \"state\": \"active\", \"created\": 1}", "deployment.created" },
		{ "{\"memory\": 1, \"state\": \"active\", \"state_since\": \"x\"}", "deployment.state_since" },
		{ "{\"memory\": 1, \"state\": \"active\", \"last_active\": \"2026-13-01T00:00:00Z\"}", "deployment.last_active" },
		{ "{\"memory\": 1, \"state\": \"active\", \"removal\": \"now\"}", "deployment.removal" },
		{ "{\"memory\": 1, \"state\": \"active\", \"removal\": {\"reason\": \"\"}}", "deployment.removal.reason" },
		{ "{\"memory\": 1, \"state\": \"active\", \"removal\": {\"reason\": \"operator\", \"since\": 5}}", "deployment.removal.since" },
		{ "{\"memory\": 1, \"state\": \"active\", \"removal\": {\"reason\": \"operator\", \"skip_backup\": \"no\"}}", "deployment.removal.skip_backup" },
		{ "{\"memory\": 1, \"state\": \"active\", \"backup\": true}", "deployment.backup" },
		{ "{\"memory\": 1, \"state\": \"active\", \"backup_at\": \"yesterday\"}", "deployment.backup_at" },
		{ "{\"memory\": 1, \"state\": \"active\", \"last_seq\": -1}", "deployment.last_seq" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": 4}", "deployment.order" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": {\"seq\": \"4\", \"hook\": \"deploy\", \"host\": \"n\"}}", "deployment.order.seq" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": {\"seq\": 4, \"hook\": \"deploy\", \"host\": 1}}", "deployment.order.host" },
		{ "{\"memory\": 1, \"state\": \"active\", \"order\": {\"seq\": 4, \"hook\": \"deploy\", \"host\": \"n\", \"since\": 0}}", "deployment.order.since" },
		{ "{\"memory\": 1, \"state\": \"active\", \"error\": 1}", "deployment.error" },
		{ "{\"memory\": 1, \"state\": \"active\", \"retry_at\": []}", "deployment.retry_at" },
		{ "{\"memory\": 1, \"state\": \"active\", \"last_host\": {}}", "deployment.last_host" },
	};
	expect_refused(parse_record, t, ELEMENTSOF(t));
}

Test(deployment_model, reports) {
	json_auto_t *j = json_loads("{\"seq\": 3, \"hook\": \"backup\", \"host\": \"n1\", \"state\": \"done\","
				    " \"started\": \"2026-12-01T00:00:00Z\", \"ended\": \"2026-12-01T00:01:00Z\","
				    " \"output\": \"s3://b/x\", \"error\": null}", 0, NULL);
	_cleanup_(deployment_report_done) deployment_report r = {};
	deployment_error err = {};
	cr_assert_eq(deployment_report_from_json(j, &r, &err), 0, "%s", err.message);
	cr_expect_eq(r.hook, DEPLOYMENT_HOOK_BACKUP);
	cr_expect_eq(r.state, DEPLOYMENT_REPORT_DONE);
	cr_expect_str_eq(r.output, "s3://b/x");
	json_auto_t *o = deployment_report_to_json(&r);
	cr_expect(json_equal(j, o));

	json_auto_t *bad = json_loads("{\"seq\": 3, \"hook\": \"backup\", \"state\": \"maybe\"}", 0, NULL);
	deployment_report b = {};
	cr_expect_eq(deployment_report_from_json(bad, &b, &err), -EINVAL);
	cr_expect_str_eq(err.key, "report.state");
}

Test(deployment_model, malformed_reports_name_their_key) {
	static const refusal t[] = {
		{ "\"done\"", "report" },
		{ "{\"seq\": 1, \"state\": \"done\"}", "report.hook" },
		{ "{\"seq\": 1, \"hook\": \"restore\", \"state\": \"done\"}", "report.hook" },
		{ "{\"seq\": 1, \"hook\": \"deploy\"}", "report.state" },
		{ "{\"hook\": \"deploy\", \"state\": \"done\"}", "report.seq" },
		{ "{\"seq\": 0, \"hook\": \"deploy\", \"state\": \"done\"}", "report.seq" },
		{ "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\", \"host\": 1}", "report.host" },
		{ "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\", \"started\": \"soon\"}", "report.started" },
		{ "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\", \"ended\": 17}", "report.ended" },
		{ "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\", \"output\": [\"s3://x\"]}", "report.output" },
		{ "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"failed\", \"error\": false}", "report.error" },
	};
	expect_refused(parse_report, t, ELEMENTSOF(t));
	/* a running report: no end, no output yet */
	json_auto_t *run = json_loads("{\"seq\": 2, \"hook\": \"maintenance_on\", \"host\": \"n1\", \"state\": \"running\","
				      " \"started\": \"2026-12-01T00:00:00Z\", \"ended\": null, \"output\": null, \"error\": null}",
				      0, NULL);
	_cleanup_(deployment_report_done) deployment_report r = {};
	deployment_error err = {};
	cr_assert_eq(deployment_report_from_json(run, &r, &err), 0, "%s", err.message);
	cr_expect_eq(r.state, DEPLOYMENT_REPORT_RUNNING);
	cr_expect_eq(r.ended, 0);
	json_auto_t *back = deployment_report_to_json(&r);
	cr_expect(json_equal(run, back));
}

Test(deployment_model, policy_defaults_and_errors) {
	_cleanup_(deployment_policy_done) deployment_policy p = {};
	deployment_error err = {};

	cr_assert_eq(deployment_policy_from_json(NULL, &p, &err), 0);
	cr_expect_eq(p.n_expiry_notices, 2);
	cr_expect_eq(p.expiry_notices[0], 7 * 86400);
	cr_expect_eq(p.expiry_notices[1], 86400);
	cr_expect_eq(p.inactive_after, 7 * 86400);
	cr_expect_eq(p.inactive_warning, 86400);
	cr_expect_eq(p.reclaim_within, 7 * 86400);
	cr_expect_eq(p.retry, 600);
	cr_expect_null(p.notice_command);
	cr_expect_eq(p.memory_threshold, 0.8);
	cr_expect_not(p.consolidate);
	cr_expect_eq(p.clock_offset, 0);
	deployment_policy_done(&p);

	json_auto_t *j = json_loads("{\"expiry_notices\": [\"1d\", \"7d\", 86400, \"3d\"], \"inactive_after\": \"14d\","
				    " \"clock_offset\": \"-1d\", \"notice_command\": \"mail\", \"pool\": \"tenants\"}", 0, NULL);
	cr_assert_eq(deployment_policy_from_json(j, &p, &err), 0, "%s", err.message);
	cr_expect_eq(p.n_expiry_notices, 3, "sorted, unique");
	cr_expect_eq(p.expiry_notices[0], 7 * 86400);
	cr_expect_eq(p.expiry_notices[1], 3 * 86400);
	cr_expect_eq(p.expiry_notices[2], 86400);
	cr_expect_eq(p.inactive_after, 14 * 86400);
	cr_expect_eq(p.clock_offset, -86400);
	cr_expect_str_eq(p.pool, "tenants");
	json_auto_t *back = deployment_policy_to_json(&p);
	_cleanup_(deployment_policy_done) deployment_policy q = {};
	cr_assert_eq(deployment_policy_from_json(back, &q, &err), 0, "%s", err.message);
	cr_expect_eq(q.n_expiry_notices, 3);
	cr_expect_eq(q.clock_offset, -86400);

	static const refusal t[] = {
		{ "{\"inactive_afterr\": 1}", "deployment_policy.inactive_afterr" },
		{ "{\"inactive_warning\": \"8d\"}", "deployment_policy.inactive_warning" },
		{ "{\"retry\": \"soon\"}", "deployment_policy.retry" },
		{ "{\"expiry_notices\": [\"0\"]}", "deployment_policy.expiry_notices" },
		{ "{\"memory_threshold\": 1.5}", "deployment_policy.memory_threshold" },
		{ "{\"consolidate\": \"yes\"}", "deployment_policy.consolidate" },
		{ "[1]", "deployment_policy" },
		{ "{\"expiry_notices\": \"7d\"}", "deployment_policy.expiry_notices" },
		{ "{\"expiry_notices\": [\"7d\", -1]}", "deployment_policy.expiry_notices" },
		{ "{\"inactive_after\": 0}", "deployment_policy.inactive_after" },
		{ "{\"reclaim_within\": \"1.5d\"}", "deployment_policy.reclaim_within" },
		{ "{\"retry\": 0}", "deployment_policy.retry" },
		{ "{\"notice_command\": [\"mail\"]}", "deployment_policy.notice_command" },
		{ "{\"notice_timeout\": \"0s\"}", "deployment_policy.notice_timeout" },
		{ "{\"pool\": 3}", "deployment_policy.pool" },
		{ "{\"memory_threshold\": 0}", "deployment_policy.memory_threshold" },
		{ "{\"memory_threshold\": \"80%\"}", "deployment_policy.memory_threshold" },
		{ "{\"clock_offset\": \"soon\"}", "deployment_policy.clock_offset" },
		{ "{\"clock_offset\": 1.5}", "deployment_policy.clock_offset" },
	};
	expect_refused(parse_policy, t, ELEMENTSOF(t));

	/* null and "" mean the default, as an absent key */
	json_auto_t *z = json_loads("{\"expiry_notices\": null, \"notice_command\": \"\", \"pool\": \"\","
				    " \"retry\": null, \"memory_threshold\": 1}", 0, NULL);
	_cleanup_(deployment_policy_done) deployment_policy zp = {};
	cr_assert_eq(deployment_policy_from_json(z, &zp, &err), 0, "%s", err.message);
	cr_expect_eq(zp.n_expiry_notices, 2);
	cr_expect_null(zp.notice_command);
	cr_expect_null(zp.pool);
	cr_expect_eq(zp.retry, 600);
	cr_expect_eq(zp.memory_threshold, 1.0);
	/* every key written, each a key the reader takes */
	json_auto_t *all = deployment_policy_to_json(&zp);
	cr_assert_not_null(all);
	cr_expect_eq(json_object_size(all), 11);
}

/* ---- observe ---- */

#define KV(i, v) { i, v, sizeof(v) - 1, 7 }

Test(deployment_model, observe_records) {
	static const deployment_kv deps[] = {
		KV("zed", "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"n1\"}"),
		KV("acme", "{\"memory\": 2147483648, \"state\": \"active\", \"host\": \"n1\"}"),
		KV("broken", "{\"memory\": 1}"),
		KV("gone", "{\"memory\": 4294967296, \"state\": \"removed\", \"last_host\": \"n2\"}"),
		KV("new", "{\"memory\": 1073741824, \"state\": \"pending\"}"),
	};
	static const deployment_kv reports[] = {
		KV("acme", "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\", \"host\": \"n1\"}"),
		KV("nobody", "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\"}"),
	};
	static const deployment_kv nodes[] = {
		KV("n1", "{\"instance_id\": \"i-1\", \"pool\": \"t\", \"deployments\": {\"memory\": 8589934592}}"),
		KV("n2", "{\"instance_id\": \"i-2\", \"pool\": \"t\", \"deployments\": {\"memory\": 8589934592}}"),
		KV("n3", "{\"instance_id\": \"i-3\", \"pool\": \"t\", \"deployments\": {\"memory\": 8589934592}}"),
		KV("core", "{\"pool\": null}"),
		KV("other", "{\"pool\": \"web\", \"deployments\": {\"memory\": 8589934592}}"),
	};
	static const deployment_kv hosts[] = {
		KV("i-1", "{\"pool\": \"t\", \"state\": \"ready\", \"reserved\": true}"),
		KV("i-2", "{\"pool\": \"t\", \"state\": \"draining\"}"),
	};
	static const char policy[] = "{\"pool\": \"t\", \"clock_offset\": 3600}";
	static const char scale[] = "{\"pools\": {\"t\": {\"launch_template\": \"lt\", \"instance_types\": [\"r5.large\"],"
				    " \"subnets\": [\"s\"], \"policy\": \"threshold\", \"memory_threshold\": 0.6}}}";
	deployment_records r = {
		.now = NOW, .policy = policy, .policy_len = sizeof policy - 1, .scale_policy = scale,
		.scale_policy_len = sizeof scale - 1, .deployments = deps, .n_deployments = ELEMENTSOF(deps),
		.reports = reports, .n_reports = ELEMENTSOF(reports), .nodes = nodes, .n_nodes = ELEMENTSOF(nodes),
		.hosts = hosts, .n_hosts = ELEMENTSOF(hosts),
	};
	_cleanup_(deployment_observed_done) deployment_observed o = {};
	deployment_error err = {};

	cr_assert_eq(deployment_observe(&r, &o, &err), 0, "%s", err.message);
	const deployment_input *in = &o.input;
	cr_expect_eq(in->now, NOW + 3600, "the test clock offset");
	cr_assert_eq(in->n_deployments, 4, "the malformed one skipped");
	cr_expect_str_eq(in->deployments[0].id, "acme", "sorted by id");
	cr_expect_str_eq(in->deployments[3].id, "zed");
	cr_expect_eq(in->mod_revisions[0], 7);
	cr_expect_not_null(in->reports[0], "acme's report");
	cr_expect_null(in->reports[1]);
	cr_assert_eq(o.n_errors, 1);
	cr_expect_not_null(strstr(o.errors[0], "deployments/broken: deployment.state"), "%s", o.errors[0]);
	/* hosts: the pool's nodes with a deployments section, by id */
	cr_assert_eq(in->n_hosts, 3, "core has no section, other is of another pool");
	cr_expect_str_eq(in->hosts[0].node_id, "n1");
	cr_expect_eq(in->hosts[0].used, 3 * GIB, "acme + zed; the removed one holds nothing");
	cr_expect(in->hosts[0].reserved);
	cr_expect(in->hosts[0].placeable);
	cr_expect_eq(in->hosts[0].threshold, 0.6, "the threshold pool's");
	cr_expect_not(in->hosts[1].placeable, "n2's host drains");
	cr_expect(in->hosts[2].placeable, "n3 has no host record: a static host");
	cr_expect_eq(in->hosts[2].used, 0);

	/* consolidation is not built: said, not silently ignored */
	static const char cons[] = "{\"consolidate\": true}";
	deployment_records rc = r;
	rc.policy = cons;
	rc.policy_len = sizeof cons - 1;
	_cleanup_(deployment_observed_done) deployment_observed oc = {};
	cr_assert_eq(deployment_observe(&rc, &oc, &err), 0);
	cr_expect_not_null(strstr(oc.errors[0], "consolidate"), "%s", oc.errors[0]);

	/* a bad policy decides nothing */
	static const char bad[] = "{\"retry\": -5}";
	deployment_records rb = r;
	rb.policy = bad;
	rb.policy_len = sizeof bad - 1;
	deployment_observed ob = {};
	cr_expect_eq(deployment_observe(&rb, &ob, &err), -EINVAL);
	cr_expect_str_eq(err.key, "deployment_policy.retry");
}

/* What observe does with records it cannot use: notes, fallbacks, never a
 * silent guess. No deployment_policy pool: any node with a deployments
 * section is a host, static or of any pool. */
Test(deployment_model, observe_notes_and_fallbacks) {
	static const deployment_kv deps[] = {
		KV("a", "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"s1\"}"),
		KV("b", "{\"memory\": 1073741824, \"state\": \"pending\", \"host\": \"n1\"}"),
		KV("c", "not json"),
		KV("d", "{\"memory\": 1073741824, \"state\": \"expired\", \"host\": \"nowhere\"}"),
	};
	static const deployment_kv reports[] = {
		KV("a", "{\"seq\": 0, \"hook\": \"deploy\", \"state\": \"done\"}"),
		KV("b", "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"running\", \"host\": \"n1\"}"),
		KV("c", "{\"seq\": 1, \"hook\": \"deploy\", \"state\": \"done\"}"),
	};
	static const deployment_kv nodes[] = {
		KV("s1", "{\"deployments\": {\"memory\": 4294967296}}"),
		KV("n1", "{\"instance_id\": \"i-1\", \"pool\": \"jobs\", \"deployments\": {\"memory\": 4294967296}}"),
		KV("n2", "{\"instance_id\": \"i-2\", \"pool\": \"jobs\", \"deployments\": {\"memory\": 4294967296}}"),
		KV("n3", "{\"instance_id\": \"i-3\", \"deployments\": {\"memory\": 0}}"),
		KV("n4", "{\"instance_id\": \"i-4\", \"deployments\": {\"memory\": \"4G\"}}"),
	};
	static const deployment_kv hosts[] = {
		KV("i-1", "{\"state\": \"launching\"}"),
		KV("i-2", "{\"state\": \"rebooting\", \"reserved\": true}"),
	};
	static const char scale_bad[] = "{\"pools\": {\"jobs\": {\"policy\": \"sometimes\"}}}";
	deployment_records r = {
		.now = NOW, .scale_policy = scale_bad, .scale_policy_len = sizeof scale_bad - 1,
		.deployments = deps, .n_deployments = ELEMENTSOF(deps), .reports = reports, .n_reports = ELEMENTSOF(reports),
		.nodes = nodes, .n_nodes = ELEMENTSOF(nodes), .hosts = hosts, .n_hosts = ELEMENTSOF(hosts),
		.maintenance = true,
	};
	_cleanup_(deployment_observed_done) deployment_observed o = {};
	deployment_error err = {};

	cr_assert_eq(deployment_observe(&r, &o, &err), 0, "%s", err.message);
	const deployment_input *in = &o.input;
	cr_expect_eq(in->now, NOW, "no policy: no offset");
	cr_expect(in->maintenance);
	cr_expect_eq(in->policy->inactive_after, 7 * 86400, "no policy: the defaults");
	cr_assert_eq(in->n_deployments, 3);
	cr_expect_null(in->reports[0], "a's report is malformed");
	cr_expect_not_null(in->reports[1]);
	cr_assert_eq(o.n_errors, 3, "scale policy, c, a's report");
	bool scale = false, c = false, rep = false;
	for (size_t i = 0; i < o.n_errors; i++) {
		scale |= strstr(o.errors[i], "thresholds from deployment_policy") != NULL;
		c |= strstr(o.errors[i], "deployments/c: not JSON") != NULL;
		rep |= strstr(o.errors[i], "deployment_reports/a: report.seq") != NULL;
	}
	cr_expect(scale && c && rep, "notes: %s | %s | %s", o.errors[0], o.errors[1], o.errors[2]);
	cr_assert_eq(in->n_hosts, 3, "n3 offers nothing, n4's memory is not a number of bytes");
	cr_expect_str_eq(in->hosts[0].node_id, "n1");
	cr_expect_str_eq(in->hosts[2].node_id, "s1");
	for (size_t i = 0; i < in->n_hosts; i++)
		cr_expect_eq(in->hosts[i].threshold, 0.8, "%s: the scale policy is unreadable", in->hosts[i].node_id);
	cr_expect_not(in->hosts[0].placeable, "launching");
	cr_expect_eq(in->hosts[0].used, GIB, "a pending deployment on its way holds its memory");
	cr_expect_not(in->hosts[1].placeable, "a state nobody knows is not ready");
	cr_expect(in->hosts[1].reserved);
	cr_expect(in->hosts[2].placeable);
	cr_expect_eq(in->hosts[2].used, GIB);
	cr_expect_null(in->hosts[2].pool);
	cr_expect_null(in->hosts[2].instance_id);

	/* a readable scale policy whose pool does not scale by threshold: the
	 * deployment policy's threshold, not the pool's memory_threshold */
	static const char scale_jobs[] = "{\"pools\": {\"jobs\": {\"launch_template\": \"lt\", \"instance_types\": [\"m5.large\"],"
					 " \"subnets\": [\"s\"], \"policy\": \"jobs\", \"memory_threshold\": 0.5}}}";
	static const char policy[] = "{\"memory_threshold\": 0.7}";
	deployment_records rj = r;
	rj.scale_policy = scale_jobs;
	rj.scale_policy_len = sizeof scale_jobs - 1;
	rj.policy = policy;
	rj.policy_len = sizeof policy - 1;
	_cleanup_(deployment_observed_done) deployment_observed oj = {};
	cr_assert_eq(deployment_observe(&rj, &oj, &err), 0, "%s", err.message);
	cr_assert_eq(oj.n_errors, 2, "c and a's report only");
	cr_expect_eq(oj.input.hosts[0].threshold, 0.7);

	/* nothing is decided on a policy nobody meant, or without a clock */
	static const char notjson[] = "{\"retry\": ";
	deployment_records rb = r;
	rb.policy = notjson;
	rb.policy_len = sizeof notjson - 1;
	deployment_observed ob = {};
	cr_expect_eq(deployment_observe(&rb, &ob, &err), -EINVAL);
	cr_expect_str_eq(err.key, "deployment_policy");
	cr_expect_eq(ob.n_deployments, 0, "out left empty");
	rb = r;
	rb.now = 0;
	cr_expect_eq(deployment_observe(&rb, &ob, &err), -EINVAL);
	cr_expect_str_eq(err.key, "deployment_records.now");
}

/* ---- placement ---- */

static deployment_host H(const char *id, int64_t gib, int64_t used_gib, bool reserved, bool placeable) {
	return (deployment_host) { .node_id = (char *) id, .memory = gib * GIB, .threshold = 0.8,
				   .placeable = placeable, .reserved = reserved, .used = used_gib * GIB };
}

Test(deployment_model, placement) {
	/* reserved first even when emptier */
	deployment_host a[] = { H("a", 8, 6, false, true), H("b", 8, 0, true, true) };
	cr_expect_eq(deployment_place(a, 2, GIB), 1);
	/* then the fullest that fits */
	deployment_host b[] = { H("a", 8, 1, false, true), H("b", 8, 4, false, true), H("c", 8, 6, false, true) };
	cr_expect_eq(deployment_place(b, 3, GIB), 1, "c would pass its threshold (7 > 6.4)");
	cr_expect_eq(deployment_place(b, 3, GIB / 4), 2, "c has room for a quarter");
	/* the threshold, exactly */
	deployment_host c[] = { H("a", 10, 6, false, true) };
	cr_expect_eq(deployment_place(c, 1, 2 * GIB), 0, "6 + 2 = 8 = 0.8 x 10");
	cr_expect_eq(deployment_place(c, 1, 2 * GIB + 1), -1);
	/* not placeable: never */
	deployment_host d[] = { H("a", 8, 0, true, false), H("b", 8, 0, false, true) };
	cr_expect_eq(deployment_place(d, 2, GIB), 1);
	/* ties by node id */
	deployment_host e[] = { H("b", 8, 2, false, true), H("a", 8, 2, false, true) };
	cr_expect_eq(deployment_place(e, 2, GIB), 1);
	/* among reserved hosts, the fullest; a full reserved one gives way */
	deployment_host f[] = { H("r1", 8, 1, true, true), H("r2", 8, 3, true, true), H("r3", 8, 6, true, true),
				H("od", 8, 6, false, true) };
	cr_expect_eq(deployment_place(f, 4, GIB), 1, "r3 has no room for 1G, r2 is fuller than r1");
	cr_expect_eq(deployment_place(f, 4, 5 * GIB), 0);
	cr_expect_eq(deployment_place(f, 4, 6 * GIB), -1, "no host takes 6G under 0.8 x 8G with used memory");
	/* fullness is relative to capacity; each host its own threshold */
	deployment_host g[] = { H("big", 64, 16, false, true), H("small", 8, 3, false, true) };
	cr_expect_eq(deployment_place(g, 2, 2 * GIB), 1, "3/8 is fuller than 16/64");
	g[1].threshold = 0.5;
	cr_expect_eq(deployment_place(g, 2, 2 * GIB), 0, "small's pool stops at half (3 + 2 > 4)");
	/* a host offering nothing takes nothing */
	deployment_host z[] = { H("z", 0, 0, true, true) };
	cr_expect_eq(deployment_place(z, 1, 1), -1);
	cr_expect_not(deployment_fits_some_host(z, 1, 1));
	/* nothing fits */
	cr_expect_eq(deployment_place(d, 1, GIB), -1);
	cr_expect_eq(deployment_place(NULL, 0, GIB), -1);
	/* could an empty host take it? */
	cr_expect(deployment_fits_some_host(b, 3, 6 * GIB));
	cr_expect_not(deployment_fits_some_host(b, 3, 7 * GIB));
	cr_expect(deployment_fits_some_host(d, 2, GIB), "placeable or not");
	cr_expect(deployment_fits_some_host(NULL, 0, 100 * GIB), "no host known: a new one may");
}
