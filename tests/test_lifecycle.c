/* test_lifecycle.c — the leader's lifecycle loop (src/lifecycle/) against
 * a real etcd: it places and orders, applies the host's reports, sends
 * each notice once through the notice command after the record that holds
 * it, never loses a concurrent touch (compare-and-set), stops when fenced,
 * wakes on its own for a rule due, and decides nothing on a bad policy. The
 * test plays the hosts (writes their reports). Bounded waits only. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROLLOUT_LOOP_TAG "lifecycle"
#include "lifecycle.h"
#include "metrics.h"
#include "rfc3339.h"
#include "rollout-loop-test.h"

#define P "/corral/t"
#define WAIT (20 * USEC_PER_SEC)

TestSuite(lifecycle, .init = up, .fini = down, .timeout = 120);

typedef struct seen {
	unsigned lines, warnings, rounds;
	bool fenced;
	char last_warning[512];
} seen;

static void on_line(lifecycle_loop *l, bool warning, const char *line, void *ud) {
	seen *s = ud;
	s->lines++;
	if (warning) {
		s->warnings++;
		snprintf(s->last_warning, sizeof s->last_warning, "%s", line);
	}
	fprintf(stderr, "lifecycle: %s%s\n", warning ? "warning: " : "", line);
}

static void on_round(lifecycle_loop *l, int error, const char *why, void *ud) {
	((seen *) ud)->rounds++;
}

static void on_fenced(lifecycle_loop *l, void *ud) {
	((seen *) ud)->fenced = true;
}

static lifecycle_loop *start(int64_t token, seen *s) {
	static const lifecycle_callbacks cb = { .fenced = on_fenced, .line = on_line, .round = on_round };
	lifecycle_options o = { .prefix = P, .cluster = "t", .token = token };
	lifecycle_loop *l = NULL;
	cr_assert_eq(lifecycle_loop_new(&l, t.client, &o, &cb, s), 0);
	return l;
}

static void node(const char *id) {
	char v[160];
	snprintf(v, sizeof v, "{\"node_id\": \"%s\", \"deployments\": {\"memory\": 8589934592}}", id);
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "nodes/%s", id), 0);
	put(P, k, v);
}

static void deployment_put(const char *id, const char *json) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "deployments/%s", id), 0);
	put(P, k, json);
}

static json_t *rec(const char *id) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "deployments/%s", id), 0);
	return get_json(P, k);
}

typedef struct cond {
	const char *id;
	bool (*ok)(json_t *r, void *arg);
	void *arg;
} cond;

static bool cond_met(void *ud) {
	cond *c = ud;
	json_auto_t *r = rec(c->id);
	return r && c->ok(r, c->arg);
}

static void wait_rec(const char *id, bool (*ok)(json_t *, void *), void *arg, const char *what) {
	cond c = { id, ok, arg };
	if (!et_run_until(&t, cond_met, &c, WAIT)) {
		json_auto_t *r = rec(id);
		_cleanup_free_ char *text = r ? json_dumps(r, JSON_INDENT(1)) : NULL;
		cr_assert_fail("%s: %s", what, text ?: "(no record)");
	}
}

static bool has_order(json_t *r, void *hook) {
	return streq_ptr(json_string_value(json_object_get(json_object_get(r, "order"), "hook")), hook);
}

static bool in_state(json_t *r, void *state) {
	return streq_ptr(jstr(r, "state"), state);
}

static bool has_notice(json_t *r, void *kind) {
	return json_object_get(json_object_get(r, "notices"), kind) != NULL;
}

/* The host's report on the record's outstanding order. */
static void report(const char *id, const char *state, const char *output) {
	json_auto_t *r = rec(id);
	json_t *o = json_object_get(r, "order");
	cr_assert_not_null(o, "%s has no order", id);
	json_auto_t *rep = json_pack("{s:O, s:O, s:O, s:s, s:s?}", "seq", json_object_get(o, "seq"), "hook",
				     json_object_get(o, "hook"), "host", json_object_get(o, "host"), "state", state,
				     "output", output);
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "deployment_reports/%s", id), 0);
	put_json(P, k, rep);
}

static char *now_text(time_t delta) {
	char b[RFC3339_MAX];
	return strdup(rfc3339_format(time(NULL) + delta, b));
}

typedef struct rounds_at_least {
	const seen *s;
	unsigned n;
} rounds_at_least;

static bool rounds_reached(void *ud) {
	rounds_at_least *r = ud;
	return r->s->rounds >= r->n;
}

/* Two more rounds, started by changes the decision does not care about. */
static void two_more_rounds(seen *s) {
	rounds_at_least r = { s, s->rounds + 1 };
	put(P, "nodes/other1", "{}");
	cr_assert(et_run_until(&t, rounds_reached, &r, WAIT));
	put(P, "nodes/other2", "{}");
	r.n = s->rounds + 1;
	cr_assert(et_run_until(&t, rounds_reached, &r, WAIT));
}

/* A notice script: appends "KIND ID OWNER N" to DIR/notices, N the times
 * the kind appears in the record it was given (1: the stored record holds
 * the notice); waits while DIR/hold exists. */
static char *notice_script(void) {
	_cleanup_free_ char *path = NULL, *text = NULL;
	char *policy = NULL;
	cr_assert_geq(asprintf(&path, "%s/notice.sh", dir), 0);
	cr_assert_geq(asprintf(&text,
			       "while [ -e %s/hold ]; do sleep 0.02; done\n"
			       "n=$(printf '%%s' \"$CORRAL_DEPLOYMENT_JSON\" | grep -c \"\\\"$CORRAL_NOTICE\\\"\")\n"
			       "echo \"$CORRAL_NOTICE $CORRAL_DEPLOYMENT $CORRAL_OWNER $n\" >> %s/notices\n",
			       dir, dir),
		      0);
	cr_assert_eq(hx_write_file(path, text), 0);
	cr_assert_geq(asprintf(&policy, "{\"notice_command\": \"sh %s\"}", path), 0);
	return policy;
}

static unsigned notices_sent(void) {
	_cleanup_free_ char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/notices", dir), 0);
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	unsigned n = 0;
	for (const char *p = text; p && *p; p++)
		n += *p == '\n';
	return n;
}

static bool notices_at_least(void *ud) {
	return notices_sent() >= *(unsigned *) ud;
}

/* Whether the exposition has the sample line exactly (every sample
 * follows a # line, so a newline precedes it). */
static bool has_sample(const char *text, const char *line) {
	_cleanup_free_ char *needle = NULL;
	cr_assert_geq(asprintf(&needle, "\n%s\n", line), 0);
	return strstr(text, needle) != NULL;
}

static bool last_has_active(void *ud) {
	const deployment_output *o = lifecycle_loop_last(ud);
	return o && o->by_state[DEPLOYMENT_ACTIVE] == 1;
}

/* The metrics corrald serves from the loop's last decision: acme active
 * (the round that wrote it may end a moment after the write is seen). */
static void expect_metrics(lifecycle_loop *l) {
	metrics_buf b = {};
	_cleanup_free_ char *text = NULL;
	size_t len;
	cr_assert(et_run_until(&t, last_has_active, l, WAIT), "no decision with acme active");
	cr_assert_eq(metrics_write_deployments(&b, lifecycle_loop_last(l), lifecycle_loop_rounds(l),
					       lifecycle_loop_rounds_failed(l), lifecycle_loop_notices_failed(l)),
		     0);
	cr_assert_eq(metrics_buf_take(&b, &text, &len), 0);
	cr_expect(has_sample(text, "corral_deployments{state=\"active\"} 1"), "%s", text);
	cr_expect(has_sample(text, "corral_deployments{state=\"pending\"} 0"), "%s", text);
	cr_expect(has_sample(text, "corral_deployment_orders 0"), "%s", text);
	cr_expect(has_sample(text, "corral_deployment_notices_failed_total 0"), "%s", text);
	cr_expect(has_sample(text, "corral_deployment_rounds_failed_total 0"), "%s", text);
}

Test(lifecycle, places_orders_and_applies_the_report) {
	seen s = {};
	int64_t token = take_leadership(P);
	node("n1");
	deployment_put("acme", "{\"memory\": 1073741824, \"state\": \"pending\", \"owner\": \"ops@acme.example\"}");
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	wait_rec("acme", has_order, "deploy", "placed with a deploy order");
	json_auto_t *r = rec("acme");
	cr_expect_str_eq(jstr(r, "host"), "n1");
	cr_expect_str_eq(jstr(r, "owner"), "ops@acme.example", "fields kept");
	report("acme", "done", NULL);
	wait_rec("acme", in_state, "active", "active after the deploy hook");
	json_auto_t *a = rec("acme");
	cr_expect(json_is_null(json_object_get(a, "order")));
	cr_expect_null(jstr(a, "error"));
	cr_expect_eq(s.warnings, 0, "%s", s.last_warning);
	expect_metrics(l);
}

Test(lifecycle, each_notice_once_after_its_record_is_stored) {
	seen s = {};
	_cleanup_free_ char *policy = notice_script(), *exp = now_text(2 * 86400), *now = now_text(0);
	put(P, "deployment_policy", policy);
	int64_t token = take_leadership(P);
	node("n1");
	_cleanup_free_ char *d = NULL;
	cr_assert_geq(asprintf(&d,
			       "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"n1\", \"owner\": \"o@x\","
			       " \"license_expires\": \"%s\", \"last_active\": \"%s\", \"state_since\": \"%s\"}",
			       exp, now, now),
		      0);
	deployment_put("acme", d);
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	unsigned one = 1;
	cr_assert(et_run_until(&t, notices_at_least, &one, WAIT), "the notice was not sent");
	two_more_rounds(&s);
	_cleanup_free_ char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/notices", dir), 0);
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	cr_expect_str_eq(text, "expiry_7d acme o@x 1\n", "once, with the stored record");
	json_auto_t *r = rec("acme");
	cr_expect(has_notice(r, "expiry_7d"));
	cr_expect_eq(lifecycle_loop_notices_failed(l), 0);
}

static bool active_at(json_t *r, void *when) {
	return streq_ptr(jstr(r, "last_active"), when) && json_is_string(json_object_get(r, "host"));
}

/* b's record changes between the round's read and its write (the loop is
 * busy with a's notice): the write is refused and b decided again from
 * what was written, so the touch stays. */
Test(lifecycle, a_concurrent_touch_is_not_lost) {
	seen s = {};
	_cleanup_free_ char *policy = notice_script(), *exp = now_text(2 * 86400), *now = now_text(0);
	_cleanup_free_ char *hold = NULL;
	cr_assert_geq(asprintf(&hold, "%s/hold", dir), 0);
	cr_assert_eq(hx_write_file(hold, ""), 0);
	put(P, "deployment_policy", policy);
	int64_t token = take_leadership(P);
	node("n1");
	_cleanup_free_ char *a = NULL;
	cr_assert_geq(asprintf(&a,
			       "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"n1\","
			       " \"license_expires\": \"%s\", \"last_active\": \"%s\", \"state_since\": \"%s\"}",
			       exp, now, now),
		      0);
	deployment_put("a", a);
	deployment_put("b", "{\"memory\": 1073741824, \"state\": \"pending\"}");
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	wait_rec("a", has_notice, "expiry_7d", "a's notice recorded (its command now waits)");
	deployment_put("b", "{\"memory\": 1073741824, \"state\": \"pending\", \"last_active\": \"2030-01-01T00:00:00Z\"}");
	cr_assert_eq(unlink(hold), 0);
	wait_rec("b", active_at, "2030-01-01T00:00:00Z", "b placed, the touch kept");
	cr_expect_eq(notices_sent(), 1);
}

static bool is_fenced(void *ud) {
	return ((seen *) ud)->fenced;
}

Test(lifecycle, a_fenced_loop_writes_nothing) {
	seen s = {};
	int64_t old = take_leadership(P);
	new_leader(P, old);
	node("n1");
	deployment_put("acme", "{\"memory\": 1073741824, \"state\": \"pending\"}");
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(old, &s);
	cr_assert(et_run_until(&t, is_fenced, &s, WAIT), "not fenced");
	cr_expect(lifecycle_loop_stopped(l));
	cr_expect(s.fenced);
	json_auto_t *r = rec("acme");
	cr_expect(json_is_null(json_object_get(r, "host")) || !json_object_get(r, "host"), "nothing written");
}

/* No etcd change at all: the decision's wake time runs the next rule. */
Test(lifecycle, the_wake_timer_runs_a_rule_due) {
	seen s = {};
	put(P, "deployment_policy", "{\"inactive_after\": 4, \"inactive_warning\": 2}");
	int64_t token = take_leadership(P);
	node("n1");
	_cleanup_free_ char *now = now_text(0), *d = NULL;
	cr_assert_geq(asprintf(&d,
			       "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"n1\","
			       " \"last_active\": \"%s\", \"state_since\": \"%s\"}",
			       now, now),
		      0);
	deployment_put("acme", d);
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	wait_rec("acme", has_notice, "inactive_warning", "the warning, 2 s in");
	wait_rec("acme", has_order, "maintenance_on", "maintenance ordered, 4 s in");
	cr_expect_gt(lifecycle_loop_rounds(l), 0);
}

/* The decision runs days ahead (clock_offset): its wake is on that clock,
 * the timer on the real one. The 7-day notice falls due 5 s after the
 * start; a timer left on the decision's clock would wait three days. */
Test(lifecycle, the_wake_timer_runs_on_the_real_clock_under_clock_offset) {
	seen s = {};
	_cleanup_free_ char *exp = now_text(10 * 86400), *now = now_text(0), *d = NULL, *policy = NULL;
	cr_assert_geq(asprintf(&policy, "{\"clock_offset\": %d}", 3 * 86400 - 5), 0);
	put(P, "deployment_policy", policy);
	int64_t token = take_leadership(P);
	node("n1");
	cr_assert_geq(asprintf(&d,
			       "{\"memory\": 1073741824, \"state\": \"active\", \"host\": \"n1\","
			       " \"license_expires\": \"%s\", \"last_active\": \"%s\", \"state_since\": \"%s\"}",
			       exp, now, now),
		      0);
	deployment_put("acme", d);
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	rounds_at_least first = { &s, 1 };
	cr_assert(et_run_until(&t, rounds_reached, &first, WAIT));
	json_auto_t *before = rec("acme");
	cr_expect(!has_notice(before, "expiry_7d"), "not due yet on the decision's clock");
	time_t wake = lifecycle_loop_wake(l);
	cr_expect(wake > time(NULL) && wake <= time(NULL) + 6, "wake %lld is on the real clock",
		  (long long) wake);
	wait_rec("acme", has_notice, "expiry_7d", "the 7-day notice, 5 s in");
}

static bool warned(void *ud) {
	return ((seen *) ud)->warnings > 0;
}

Test(lifecycle, a_bad_policy_decides_nothing_and_says_so_once) {
	seen s = {};
	put(P, "deployment_policy", "{\"retry\": -1}");
	int64_t token = take_leadership(P);
	node("n1");
	deployment_put("acme", "{\"memory\": 1073741824, \"state\": \"pending\"}");
	_cleanup_(lifecycle_loop_freep) lifecycle_loop *l = start(token, &s);
	cr_assert(et_run_until(&t, warned, &s, WAIT));
	two_more_rounds(&s);
	cr_expect_eq(s.warnings, 1, "said once");
	cr_expect_not_null(strstr(s.last_warning, "deployment_policy.retry"), "%s", s.last_warning);
	json_auto_t *r = rec("acme");
	cr_expect(!json_object_get(r, "host"), "nothing written");
	/* fixed: decided at once */
	put(P, "deployment_policy", "{}");
	wait_rec("acme", has_order, "deploy", "placed once the policy is good");
}
