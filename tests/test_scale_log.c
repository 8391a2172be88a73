/* test_scale_log.c — the pure parts of what the operator sees of scaling
 * (src/scale/report.c, scale-report.h): the key=value log lines and their
 * quoting, a pool's decision line, the scale/status record and its
 * `corralctl status` line, the history record's id, seq and document. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "scale-report.h"

Test(scale_log, key_value_line_quotes_what_needs_it) {
	char buf[256];
	const char *const kv[] = { "pool", "web", "reason", "no jobs", "skip", NULL, "empty", "", "q", "a\"b\\c",
				   "eq", "a=b", NULL };
	cr_assert_str_eq(scale_log_line(buf, sizeof buf, "drain", kv),
			 "scale: drain pool=web reason=\"no jobs\" empty=\"\" q=\"a\\\"b\\\\c\" eq=\"a=b\"");
}

Test(scale_log, a_line_never_breaks_and_is_cut_safely) {
	char buf[64];
	const char *const kv[] = { "error", "first line\nsecond\rline\t!", NULL };
	scale_log_line(buf, sizeof buf, "launch", kv);
	cr_assert_null(strchr(buf, '\n'), "%s", buf);
	cr_assert_null(strchr(buf, '\r'), "%s", buf);
	cr_assert_str_eq(buf, "scale: launch error=\"first line second line !\"");
	char small[16];
	scale_log_line(small, sizeof small, "launch", kv);
	cr_assert_eq(strlen(small), sizeof small - 1);
	cr_assert(strncmp(small, "scale: launch e", 15) == 0, "%s", small);
}

static scale_output two_pools(scale_metrics m[2], scale_action a[3]) {
	m[0] = (scale_metrics) { .pool = "web", .desired_hosts = 3, .jobs = 7, .queue = 2, .note = "cooldown" };
	m[0].hosts[SCALE_READY] = 2;
	m[0].hosts[SCALE_DRAINING] = 1;
	m[1] = (scale_metrics) { .pool = "batch", .desired_hosts = 0 };
	a[0] = (scale_action) { .kind = SCALE_ACTION_LAUNCH, .pool = "web", .count = 2 };
	a[1] = (scale_action) { .kind = SCALE_ACTION_DRAIN, .pool = "web", .id = "i-1" };
	a[2] = (scale_action) { .kind = SCALE_ACTION_TERMINATE, .pool = "batch", .id = "i-2" };
	return (scale_output) { .actions = a, .n_actions = 3, .metrics = m, .n_metrics = 2 };
}

Test(scale_log, decision_line_counts_the_pools_actions) {
	scale_metrics m[2];
	scale_action a[3];
	scale_output out = two_pools(m, a);
	char buf[512];

	cr_assert_str_eq(scale_decision_line(&out, 0, true, buf, sizeof buf),
			 "scale: decision pool=web desired=3 ready=2 launching=0 draining=1 unhealthy=0 terminating=0 "
			 "held=0 jobs=7 queue=2 launch=2 drain=1 undrain=0 terminate=0 mark=0 note=cooldown");
	/* the change key leaves the load out: new jobs alone are no new line */
	scale_decision_line(&out, 0, false, buf, sizeof buf);
	cr_assert_null(strstr(buf, "jobs="), "%s", buf);
	cr_assert_null(strstr(buf, "queue="), "%s", buf);
	cr_assert_str_eq(scale_decision_line(&out, 1, true, buf, sizeof buf),
			 "scale: decision pool=batch desired=0 ready=0 launching=0 draining=0 unhealthy=0 terminating=0 "
			 "held=0 jobs=0 queue=0 launch=0 drain=0 undrain=0 terminate=1 mark=0");
}

Test(scale_log, status_codes_round_trip) {
	for (int i = 0; i < _SCALE_STATUS_MAX; i++) {
		scale_status_code c;
		cr_assert_eq(scale_status_code_from_string(scale_status_code_to_string(i), &c), 0);
		cr_assert_eq((int) c, i);
	}
	scale_status_code c;
	cr_assert_eq(scale_status_code_from_string("nonsense", &c), -EINVAL);
	cr_assert(scale_status_working(SCALE_STATUS_OK));
	cr_assert(scale_status_working(SCALE_STATUS_NO_POLICY));
	cr_assert_not(scale_status_working(SCALE_STATUS_NO_REGION));
	cr_assert_not(scale_status_working(SCALE_STATUS_EC2_UNREACHABLE));
}

Test(scale_log, status_record_round_trips_and_changes_on_code_or_reason) {
	scale_status a = { .code = SCALE_STATUS_NO_REGION, .since = 1796346123, .interval = 30, .token = 7 }, b;
	snprintf(a.reason, sizeof a.reason, "no EC2 region (set ec2.region)");
	json_auto_t *j = scale_status_to_json(&a);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "stopped");
	cr_assert_str_eq(json_string_value(json_object_get(j, "code")), "no_region");
	cr_assert_eq(scale_status_from_json(j, &b), 0);
	cr_assert_eq(b.code, a.code);
	cr_assert_str_eq(b.reason, a.reason);
	cr_assert_eq(b.since, a.since);
	cr_assert_eq(b.token, 7);
	cr_assert_not(scale_status_changed(&a, &b));
	b.since = a.since + 100; /* since alone is no change */
	cr_assert_not(scale_status_changed(&a, &b));
	b.code = SCALE_STATUS_OK;
	cr_assert(scale_status_changed(&a, &b));
	cr_assert(scale_status_changed(NULL, &b));
	json_auto_t *bad = json_pack("{s:s}", "code", "nonsense");
	cr_assert_eq(scale_status_from_json(bad, &b), -EINVAL);

	char line[300];
	cr_assert_str_eq(scale_status_log_line(&a, line, sizeof line),
			 "scale: status state=stopped code=no_region since=2026-12-04T01:02:03Z "
			 "reason=\"no EC2 region (set ec2.region)\"");
}

Test(scale_log, status_line_wording) {
	const time_t now = 1796346123; /* 2026-12-04T01:02:03Z */
	char buf[300];
	scale_status st = { .code = SCALE_STATUS_NO_REGION, .since = now - 3600, .interval = 30 };
	snprintf(st.reason, sizeof st.reason, "no EC2 region (set ec2.region)");

	cr_assert_not(scale_status_line(NULL, 0, 0, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: unknown: no leader has reported");

	cr_assert_not(scale_status_line(&st, now - 5, now - 100, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: stopped since 2026-12-04T00:02:03Z: no EC2 region (set ec2.region)");

	st.code = SCALE_STATUS_OK;
	st.reason[0] = '\0';
	cr_assert(scale_status_line(&st, now - 12, now - 72, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: ok, last decision 1m12s ago, next evaluation in 18s");
	cr_assert(scale_status_line(&st, now - 40, 0, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: ok, last decision none yet, next evaluation due now");
	/* three intervals and half a minute without a cycle: stale */
	cr_assert_not(scale_status_line(&st, now - 300, now - 4000, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: stale: no evaluation for 5m0s (is a leader running its scaler?)");

	st.code = SCALE_STATUS_NO_POLICY;
	cr_assert(scale_status_line(&st, 0, 0, now, buf, sizeof buf));
	cr_assert_str_eq(buf, "scaling: off since 2026-12-04T00:02:03Z: no scale/policy");
}

Test(scale_log, history_ids_sort_and_parse) {
	char a[24], b[24];
	int64_t seq;
	scale_history_id(9, a);
	scale_history_id(10, b);
	cr_assert_str_eq(a, "00000000000000000009");
	cr_assert_lt(strcmp(a, b), 0, "keys sort by seq");
	cr_assert_eq(scale_history_seq(b, strlen(b), &seq), 0);
	cr_assert_eq(seq, 10);
	cr_assert_eq(scale_history_seq("12", 2, &seq), -EINVAL);
	cr_assert_eq(scale_history_seq("0000000000000000000x", 20, &seq), -EINVAL);
}

Test(scale_log, history_record_holds_inputs_actions_and_outcome) {
	scale_metrics m[2];
	scale_action a[3];
	scale_output out = two_pools(m, a);
	scale_records rec = { .maintenance = false };
	char *orphans[] = { "i-orphan", NULL };
	scale_host hosts[2] = { { .id = "i-gone", .state = SCALE_TERMINATED, .state_since = 1796346123 },
				{ .id = "i-old", .state = SCALE_TERMINATED, .state_since = 5 } };
	bool dirty[2] = { true, false };
	scale_observed obs = { .hosts = hosts, .n_hosts = 2, .dirty = dirty, .terminate = orphans, .n_terminate = 1 };
	const char *launched[] = { "i-new1", "i-new2" };
	const char *errors[] = { "launch 1 x t3.micro spot: InsufficientInstanceCapacity" };
	scale_report r = { .time = 1796346123, .revision = 42, .records = &rec, .observed = &obs, .out = &out,
			   .launched = launched, .n_launched = 2 };

	json_auto_t *ok = scale_history_to_json(&r, 501, 7);
	cr_assert_not_null(ok);
	cr_assert_eq(json_integer_value(json_object_get(ok, "seq")), 501);
	cr_assert_eq(json_integer_value(json_object_get(ok, "time")), 1796346123);
	cr_assert_eq(json_integer_value(json_object_get(ok, "token")), 7);
	cr_assert_str_eq(json_string_value(json_object_get(ok, "outcome")), "ok");
	json_t *web = json_object_get(json_object_get(ok, "pools"), "web");
	cr_assert_eq(json_integer_value(json_object_get(web, "desired_hosts")), 3);
	cr_assert_eq(json_integer_value(json_object_get(web, "jobs")), 7);
	cr_assert_eq(json_integer_value(json_object_get(web, "queue")), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(web, "hosts"), "ready")), 2);
	cr_assert_eq(json_array_size(json_object_get(ok, "actions")), 3);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(ok, "launched"), 1)), "i-new2");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(ok, "orphans_terminated"), 0)), "i-orphan");
	json_t *gone = json_object_get(ok, "gone");
	cr_assert_eq(json_array_size(gone), 1, "only the record terminated by this decision");
	cr_assert_str_eq(json_string_value(json_array_get(gone, 0)), "i-gone");

	r.errors = errors;
	r.n_errors = 1;
	json_auto_t *failed = scale_history_to_json(&r, 502, 7);
	cr_assert_str_eq(json_string_value(json_object_get(failed, "outcome")), "errors");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(failed, "errors"), 0)), errors[0]);
}
