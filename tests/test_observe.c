/* test_observe.c — observe (scale-observe.h), the translation of records
 * into the decision's input, from the JSON fixtures in tests/data/observe/
 * (README.md there has their format), pure: each fixture's records ->
 * scale_observe() -> scale_decide(), checked against its "expect"; the
 * policy's parse and scale_report_to_json. test_observe_same.c feeds the
 * same fixtures to the real corralctl and to the leader's dry run. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe-fixture.h"
#include "scale-forecast.h"
#include "scale-observe.h"
#include "scale-report.h"
#include "scale.h"

#define NOW     1700000000
#define CLUSTER "t"

/* ---- fixtures as records ---- */

typedef struct fixture {
	fx fx;
	scale_kv *kvs;
	scale_instance *insts;
	scale_policy policy;
	bool have_policy;
	scale_records rec;
} fixture;

static void fixture_done(fixture *f) {
	fx_done(&f->fx);
	free(f->kvs);
	free(f->insts);
	if (f->have_policy)
		scale_policy_done(&f->policy);
}

/* The records of the folder dir ("scale/hosts/") or the key itself. */
static void fixture_folder(fixture *f, const char *dir, const scale_kv **out, size_t *n, size_t *used) {
	const fx *x = &f->fx;

	*out = f->kvs + *used;
	*n = 0;
	for (size_t i = 0; i < x->n; i++)
		if (strncmp(x->keys[i], dir, strlen(dir)) == 0 && !strchr(x->keys[i] + strlen(dir), '/')) {
			f->kvs[(*used)++] = (scale_kv) { x->keys[i] + strlen(dir), x->vals[i], strlen(x->vals[i]) };
			(*n)++;
		}
}

static void fixture_ec2(fixture *f) {
	json_t *list = json_object_get(json_object_get(f->fx.doc, "ec2"), "instances"), *x;
	size_t i;

	if (!list)
		return;
	f->insts = calloc(json_array_size(list) + 1, sizeof *f->insts);
	cr_assert_not_null(f->insts);
	json_array_foreach(list, i, x) {
		json_t *tags = json_object_get(x, "tags");
		const char *state = json_string_value(json_object_get(x, "state"));
		const char *hold = json_string_value(json_object_get(tags, "hold"));
		f->insts[i] = (scale_instance) {
			.id = json_string_value(json_object_get(x, "id")),
			.instance_type = "m5.large",
			.availability_zone = "us-east-1a",
			.pool = json_string_value(json_object_get(x, "pool")),
			.client_token = json_string_value(json_object_get(x, "client_token")),
			.spot = json_is_true(json_object_get(x, "spot")),
			.hold = hold && (streq(hold, "true") || streq(hold, "1") || streq(hold, "yes")),
			.autoscale_off = streq_ptr(json_string_value(json_object_get(tags, "autoscale")), "off"),
			.gone = streq_ptr(state, "terminated") || streq_ptr(state, "shutting-down"),
			.launch_time = (time_t) json_integer_value(json_object_get(x, "launch_time")),
		};
	}
	f->rec.have_instances = true;
	f->rec.instances = f->insts;
	f->rec.n_instances = json_array_size(list);
}

static void fixture_load(fixture *f, const char *name, time_t now) {
	scale_error err = {};
	size_t used = 0;

	*f = (fixture) {};
	fx_load(&f->fx, name, now);
	f->kvs = calloc(f->fx.n + 1, sizeof *f->kvs);
	cr_assert_not_null(f->kvs);
	f->rec = (scale_records) { .cluster = CLUSTER, .now = now, .launch_grace = 300 };
	fixture_folder(f, "scale/hosts/", &f->rec.hosts, &f->rec.n_hosts, &used);
	fixture_folder(f, "scale/queue/", &f->rec.queues, &f->rec.n_queues, &used);
	fixture_folder(f, "nodes/", &f->rec.nodes, &f->rec.n_nodes, &used);
	fixture_folder(f, "load/", &f->rec.load, &f->rec.n_load, &used);
	fixture_folder(f, "holds/", &f->rec.holds, &f->rec.n_holds, &used);
	fixture_folder(f, "upgrade/nodes/", &f->rec.upgrade_orders, &f->rec.n_upgrade_orders, &used);
	fixture_folder(f, "upgrade/progress/", &f->rec.upgrade_progress, &f->rec.n_upgrade_progress, &used);
	fixture_folder(f, "deployments/", &f->rec.deployments, &f->rec.n_deployments, &used);
	f->rec.deployment_policy = fx_value(&f->fx, "deployment_policy");
	f->rec.deployment_policy_len = f->rec.deployment_policy ? strlen(f->rec.deployment_policy) : 0;
	f->rec.upgrade_state = fx_value(&f->fx, "upgrade/state");
	f->rec.upgrade_state_len = f->rec.upgrade_state ? strlen(f->rec.upgrade_state) : 0;
	f->rec.state = fx_value(&f->fx, "scale/state");
	f->rec.state_len = f->rec.state ? strlen(f->rec.state) : 0;
	f->rec.stop = fx_value(&f->fx, "scale/stop") != NULL;
	f->rec.maintenance = fx_value(&f->fx, "maintenance") != NULL;
	const char *policy = fx_value(&f->fx, "scale/policy");
	cr_assert_not_null(policy, "%s: no scale/policy", name);
	cr_assert_eq(scale_observe_policy(policy, strlen(policy), &f->policy, &err), 0, "%s: %s", name, err.message);
	f->have_policy = true;
	f->rec.policy = &f->policy;
	fixture_ec2(f);
}

/* ---- expectations ---- */

/* Every key of want is in have with an equal value. */
static bool subset(json_t *want, json_t *have, char *why, size_t size) {
	const char *k;
	json_t *v;

	json_object_foreach(want, k, v) {
		json_t *h = json_object_get(have, k);
		bool same = json_is_number(v) && json_is_number(h) ? json_number_value(v) == json_number_value(h) :
								     json_equal(v, h);
		if (!same) {
			_cleanup_free_ char *hv = h ? json_dumps(h, JSON_ENCODE_ANY) : strdup("(absent)");
			_cleanup_free_ char *wv = json_dumps(v, JSON_ENCODE_ANY);
			snprintf(why, size, "%s: want %s, have %s", k, wv, hv);
			return false;
		}
	}
	return true;
}

static void expect_strv_set(const char *what, json_t *want, char **have, size_t n) {
	json_t *v;
	size_t i;

	if (!want)
		return;
	cr_assert_eq(json_array_size(want), n, "%s: want %zu, have %zu", what, json_array_size(want), n);
	json_array_foreach(want, i, v) {
		bool found = false;
		for (size_t k = 0; k < n; k++)
			found = found || streq(have[k], json_string_value(v));
		cr_assert(found, "%s: %s missing", what, json_string_value(v));
	}
}

static void expect_observed(const char *name, json_t *e, scale_observed *o) {
	const char *k;
	json_t *v;
	char why[512];

	json_object_foreach(json_object_get(e, "hosts"), k, v) {
		scale_host *h = scale_observed_host(o, k);
		cr_assert_not_null(h, "%s: no host %s", name, k);
		json_auto_t *j = scale_host_to_json(h);
		cr_assert(subset(v, j, why, sizeof why), "%s: host %s: %s", name, k, why);
	}
	if (json_object_get(e, "dirty")) {
		_cleanup_free_ char **dirty = calloc(o->n_hosts + 1, sizeof *dirty);
		size_t n = 0;
		for (size_t i = 0; i < o->n_hosts; i++)
			if (o->dirty[i])
				dirty[n++] = o->hosts[i].id;
		expect_strv_set("dirty", json_object_get(e, "dirty"), dirty, n);
	}
	expect_strv_set("terminate", json_object_get(e, "terminate"), o->terminate, o->n_terminate);
	json_object_foreach(json_object_get(e, "queues"), k, v) {
		bool found = false;
		for (size_t i = 0; i < o->n_queues; i++)
			if (streq(o->queues[i].pool, k)) {
				cr_assert_eq(o->queues[i].length, json_integer_value(v), "%s: queue %s", name, k);
				found = true;
			}
		cr_assert(found, "%s: no queue %s", name, k);
	}
#define COUNT(key, have)                                                                                       \
	if (json_object_get(e, key))                                                                          \
		cr_assert_eq((json_int_t) (have), json_integer_value(json_object_get(e, key)), "%s: %s", name, key)
	COUNT("orphans", o->orphans);
	COUNT("gone", o->gone);
	COUNT("in_grace", o->in_grace);
	COUNT("errors", o->n_errors);
#undef COUNT
	if (json_object_get(e, "stop"))
		cr_assert_eq(o->input.stop, json_is_true(json_object_get(e, "stop")), "%s: stop", name);
}

static void expect_actions(const char *name, json_t *want, const scale_output *out) {
	json_auto_t *have = scale_actions_to_json(out);
	_cleanup_free_ char *text = json_dumps(have, JSON_INDENT(1));
	json_t *v;
	size_t i;
	char why[512];

	if (!want)
		return;
	cr_assert_eq(json_array_size(have), json_array_size(want), "%s: actions:\n%s", name, text);
	json_array_foreach(want, i, v)
		cr_assert(subset(v, json_array_get(have, i), why, sizeof why), "%s: action %zu: %s\n%s", name, i, why,
			  text);
}

static void run_fixture(const char *name) {
	fixture f;
	scale_observed o = {};
	scale_output out = {};

	fixture_load(&f, name, NOW);
	cr_assert_eq(scale_observe(&f.rec, &o), 0, "%s", name);
	cr_assert_eq(scale_decide(&o.input, &out), 0, "%s", name);
	json_t *e = json_object_get(f.fx.doc, "expect");
	expect_observed(name, e, &o);
	expect_actions(name, json_object_get(e, "actions"), &out);
	scale_output_done(&out);
	scale_observed_done(&o);
	fixture_done(&f);
}

/* ---- pure ---- */

Test(observe, prairielearn_jobs) {
	run_fixture("prairielearn_jobs");
}

Test(observe, matterhorn_queue) {
	run_fixture("matterhorn_queue");
}

Test(observe, aerofs_threshold) {
	run_fixture("aerofs_threshold");
}

Test(observe, aerofs_deployments) {
	run_fixture("aerofs_deployments");
}

Test(observe, picloud_fixed) {
	run_fixture("picloud_fixed");
}

Test(observe, wind_down_done_is_seen_now) {
	run_fixture("wind_down_done");
}

Test(observe, interruption_notice_from_load) {
	run_fixture("interruption_notice");
}

Test(observe, queue_count_as_atoi_reads_it) {
	run_fixture("queue_text");
}

Test(observe, empty_stop_is_a_stop) {
	run_fixture("stop_empty");
}

Test(observe, consistency_with_ec2) {
	run_fixture("consistency");
}

Test(observe, what_cannot_be_used_is_a_note) {
	run_fixture("notes");
}

/* Principle 9: the host of a node a rollout has in flight is neither
 * drained nor counted as surplus; only that node's. */
Test(observe, rollout_in_flight_is_not_drained) {
	fixture f;
	scale_observed o = {};

	run_fixture("rollout_in_flight");
	fixture_load(&f, "rollout_in_flight", NOW);
	cr_assert_eq(scale_observe(&f.rec, &o), 0);
	cr_expect(scale_observed_host(&o, "i-r1")->in_rollout);
	cr_expect_not(scale_observed_host(&o, "i-r2")->in_rollout, "its order finished");
	cr_expect_not(scale_observed_host(&o, "i-r3")->in_rollout, "another plan's order");
	cr_expect_not(scale_observed_host(&o, "i-r4")->in_rollout, "a prepare order takes nothing down");
	scale_observed_done(&o);
	fixture_done(&f);
}

Test(observe, policy_not_json_is_said) {
	scale_policy p = {};
	scale_error err = {};
	cr_assert_eq(scale_observe_policy("{pools", 6, &p, &err), -EINVAL);
	cr_assert_str_eq(err.message, "scale/policy: not JSON");
	cr_assert_eq(scale_observe_policy("{\"pools\": {\"w\": {\"min\": -1}}}", 29, &p, &err), -EINVAL);
	cr_assert_neq(err.message[0], 0);
}

Test(observe, no_policy_no_input) {
	scale_records r = { .now = NOW };
	scale_observed o = {};
	cr_assert_eq(scale_observe(&r, &o), -EINVAL);
	cr_assert_eq(o.n_hosts, 0);
}

/* The report's document: the fields the scale/metrics contract names. */
Test(observe, report_document_has_the_contract_fields) {
	fixture f;
	scale_observed o = {};
	scale_output out = {};
	const char *const launched[] = { "i-new" };

	fixture_load(&f, "consistency", NOW);
	cr_assert_eq(scale_observe(&f.rec, &o), 0);
	cr_assert_eq(scale_decide(&o.input, &out), 0);
	scale_report r = { .time = NOW, .revision = 9, .records = &f.rec, .observed = &o, .out = &out,
			   .launched = launched, .n_launched = 1, .errors = (const char *const *) o.errors,
			   .n_errors = o.n_errors, .records_by_state = { [SCALE_READY] = 2 } };
	json_auto_t *j = scale_report_to_json(&r);
	cr_assert_not_null(j);
	cr_assert_eq(json_integer_value(json_object_get(j, "time")), NOW);
	cr_assert_eq(json_integer_value(json_object_get(j, "revision")), 9);
	cr_assert(json_is_object(json_object_get(json_object_get(j, "pools"), "web")));
	cr_assert(json_is_array(json_object_get(j, "actions")));
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "launched"), 0)), "i-new");
	cr_assert_eq(json_array_size(json_object_get(j, "errors")), 1);
	json_t *in = json_object_get(j, "inputs");
	cr_assert_eq(json_integer_value(json_object_get(in, "hosts")), (json_int_t) o.n_hosts);
	cr_assert_eq(json_integer_value(json_object_get(in, "instances")), 6);
	cr_assert(json_is_null(json_object_get(in, "reservations_error")));
	json_t *cons = json_object_get(j, "consistency");
	cr_assert_eq(json_integer_value(json_object_get(cons, "orphans_terminated")), 1);
	cr_assert_eq(json_integer_value(json_object_get(cons, "records_gone")), 2);
	cr_assert_eq(json_integer_value(json_object_get(cons, "unrecorded_in_grace")), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(cons, "hosts"), "ready")), 2);
	cr_assert_eq(json_object_size(json_object_get(cons, "hosts")), _SCALE_STATE_MAX);
	scale_output_done(&out);
	scale_observed_done(&o);
	fixture_done(&f);
}

/* Lookups, as a scan of the records would find them: two node records
 * naming one instance -> the first in key order (not the first by node
 * id); its load; holds by instance id; an instance listed twice is one
 * orphan. Records out of id order, so any lookup that assumes sorted
 * input finds the wrong one. */
#define KV(id, text) { id, text, sizeof text - 1 }
Test(observe, lookups_find_what_a_scan_finds) {
	static const char policy[] = "{\"pools\": {\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
				     " \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
				     " \"markets\": [\"on-demand\"], \"min\": 0, \"max\": 9, \"jobs_per_host\": 4}}}";
	const scale_kv hosts[] = {
		KV("i-3", "{\"id\": \"i-3\", \"pool\": \"web\", \"state\": \"ready\"}"),
		KV("i-1", "{\"id\": \"i-1\", \"pool\": \"web\", \"state\": \"ready\"}"),
		KV("i-2", "{\"id\": \"i-2\", \"pool\": \"web\", \"state\": \"ready\"}"),
	};
	const scale_kv nodes[] = {
		KV("n-z", "{\"instance_id\": \"i-1\"}"),
		KV("n-a", "{\"instance_id\": \"i-1\"}"),
		KV("n-m", "{\"instance_id\": \"i-3\"}"),
		KV("n-x", "not json"),
	};
	const scale_kv load[] = {
		KV("n-a", "{\"jobs\": 9, \"capacity\": 9}"),
		KV("n-m", "{\"jobs\": 2, \"capacity\": 4}"),
		KV("n-z", "{\"jobs\": 3, \"capacity\": 4}"),
		KV("n-z", "{\"jobs\": 7, \"capacity\": 8}"),
	};
	const scale_kv holds[] = { KV("i-9", "{}"), KV("i-2", "{}") };
	const scale_instance insts[] = {
		{ .id = "i-4", .pool = "web", .launch_time = NOW - 7200 },
		{ .id = "i-2", .pool = "web", .launch_time = NOW - 7200 },
		{ .id = "i-1", .pool = "web", .launch_time = NOW - 7200 },
		{ .id = "i-3", .pool = "web", .launch_time = NOW - 7200 },
		{ .id = "i-4", .pool = "web", .launch_time = NOW - 7200 },
	};
	_cleanup_(scale_policy_done) scale_policy p = {};
	scale_error err = {};
	cr_assert_eq(scale_observe_policy(policy, strlen(policy), &p, &err), 0, "%s", err.message);
	scale_records r = {
		.cluster = CLUSTER, .now = NOW, .launch_grace = 300, .policy = &p,
		.hosts = hosts, .n_hosts = ELEMENTSOF(hosts), .nodes = nodes, .n_nodes = ELEMENTSOF(nodes),
		.load = load, .n_load = ELEMENTSOF(load), .holds = holds, .n_holds = ELEMENTSOF(holds),
		.have_instances = true, .instances = insts, .n_instances = ELEMENTSOF(insts),
	};
	_cleanup_(scale_observed_done) scale_observed o = {};
	cr_assert_eq(scale_observe(&r, &o), 0);

	scale_host *h1 = scale_observed_host(&o, "i-1"), *h2 = scale_observed_host(&o, "i-2"),
		   *h3 = scale_observed_host(&o, "i-3"), *h4 = scale_observed_host(&o, "i-4");
	cr_assert(h1 && h2 && h3 && h4);
	cr_assert_str_eq(h1->node_id, "n-z", "the first record naming i-1, as etcd lists them");
	cr_assert_eq(h1->jobs, 3, "n-z's first load record");
	cr_assert_str_eq(h3->node_id, "n-m");
	cr_assert_eq(h3->jobs, 2);
	cr_assert_null(h2->node_id);
	cr_assert(h2->hold);
	cr_assert_not(h1->hold || h3->hold);
	cr_assert_eq(o.n_hosts, 4, "i-4 listed twice is one orphan");
	cr_assert_eq(o.orphans, 1);
	cr_assert_eq(o.n_terminate, 1);
	cr_assert_str_eq(o.terminate[0], "i-4");
	cr_assert_eq(h4->state, SCALE_TERMINATING);
}

/* ---- forecast (scale/load_history/<pool>) ---- */

static const char forecast_policy[] =
	"{\"pools\": {\"api\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\"}], \"markets\": [\"on-demand\"], \"min\": 0, \"max\": 9},"
	" \"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\"}], \"markets\": [\"on-demand\"], \"min\": 0, \"max\": 9}}}";

/* Two days of minutes from day (a multiple of a day): 4 jobs, 40 from
 * 10:00 to 10:30. Compact JSON, malloc'd. */
static char *two_days_of_exams(time_t day) {
	scale_history h = { .start = day, .step = SCALE_HISTORY_STEP, .n = 2 * 1440 };

	h.points = calloc(h.n, sizeof *h.points);
	cr_assert_not_null(h.points);
	for (size_t i = 0; i < h.n; i++)
		h.points[i] = i % 1440 >= 600 && i % 1440 < 630 ? 40 : 4;
	json_auto_t *j = scale_load_history_to_json(&h);
	scale_history_done(&h);
	cr_assert_not_null(j);
	return json_dumps(j, JSON_COMPACT);
}

/* The policy with forecast set by hand on the pools named (the policy
 * codec's "forecast" key is the engine's). */
static void forecast_policy_parse(scale_policy *p, bool api, bool web) {
	scale_error err = {};
	cr_assert_eq(scale_observe_policy(forecast_policy, strlen(forecast_policy), p, &err), 0, "%s", err.message);
	cr_assert_eq(p->n_pools, 2);
	for (size_t i = 0; i < 2; i++)
		p->pools[i].forecast = (scale_forecast_conf) {
			.enabled = i == 0 ? api : web, .lookback = 7 * 86400, .season = 86400, .horizon = 300,
		};
}

#define DAY0 ((time_t) 1764547200)
#define EXAM_DUE (DAY0 + 2 * 86400 + 9 * 3600 + 57 * 60)      /* day 3, 09:57 */

/* The records: the policy and these histories, nothing else. */
static void observe_histories(scale_observed *o, const scale_policy *p, const scale_kv *hist, size_t n, time_t now) {
	scale_records r = { .cluster = CLUSTER, .now = now, .launch_grace = 300, .policy = p,
			    .load_history = hist, .n_load_history = n };
	cr_assert_eq(scale_observe(&r, o), 0);
}

Test(observe, forecast_from_load_history) {
	_cleanup_(scale_policy_done) scale_policy p = {};
	_cleanup_free_ char *web = two_days_of_exams(DAY0), *api = two_days_of_exams(DAY0);
	const scale_kv hist[] = { { "api", api, strlen(api) }, { "web", web, strlen(web) } };

	forecast_policy_parse(&p, false, true);
	_cleanup_(scale_observed_done) scale_observed o = {};
	observe_histories(&o, &p, hist, ELEMENTSOF(hist), EXAM_DUE);
	cr_assert_eq(o.n_forecasts, 1, "api has a history but no forecast enabled");
	cr_assert_str_eq(o.forecasts[0].pool, "web");
	cr_assert_eq(o.forecasts[0].demand, 40, "the exam at 10:00, 3 minutes ahead");
	cr_assert_eq(o.input.forecasts, o.forecasts);
	cr_assert_eq(o.input.n_forecasts, 1);
	cr_assert_eq(o.n_errors, 0);
	/* the pool name is observe's own copy */
	cr_assert_neq(o.forecasts[0].pool, p.pools[1].name);
	scale_observed_done(&o);

	/* at noon: no exam ahead */
	observe_histories(&o, &p, hist, ELEMENTSOF(hist), DAY0 + 2 * 86400 + 12 * 3600);
	cr_assert_eq(o.n_forecasts, 1);
	cr_assert_eq(o.forecasts[0].demand, 4);
}

Test(observe, forecast_without_a_season_of_history_is_none) {
	_cleanup_(scale_policy_done) scale_policy p = {};
	_cleanup_free_ char *web = two_days_of_exams(DAY0);
	const scale_kv hist[] = { { "web", web, strlen(web) } };

	forecast_policy_parse(&p, true, true);
	/* the history starts now: nothing a season ago */
	_cleanup_(scale_observed_done) scale_observed o = {};
	observe_histories(&o, &p, hist, ELEMENTSOF(hist), DAY0 + 600 * 60);
	cr_assert_eq(o.n_forecasts, 0);
	cr_assert_eq(o.input.n_forecasts, 0);
	cr_assert_eq(o.n_errors, 0, "too little history is no error");
}

Test(observe, bad_load_history_is_a_note) {
	_cleanup_(scale_policy_done) scale_policy p = {};
	_cleanup_free_ char *api = two_days_of_exams(DAY0);
	const scale_kv hist[] = { { "api", api, strlen(api) }, KV("web", "{\"step\": 60, \"points\": [1]}") };

	forecast_policy_parse(&p, true, true);
	_cleanup_(scale_observed_done) scale_observed o = {};
	observe_histories(&o, &p, hist, ELEMENTSOF(hist), EXAM_DUE);
	cr_assert_eq(o.n_forecasts, 1, "api's still counts");
	cr_assert_str_eq(o.forecasts[0].pool, "api");
	cr_assert_eq(o.n_errors, 1);
	cr_assert_str_eq(o.errors[0], "scale/load_history/web: not a load history (ignored; the leader starts it afresh)");
}
