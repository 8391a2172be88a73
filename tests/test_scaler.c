/* test_scaler.c — the leader's autoscaling loop (scaler.h) in-process,
 * against a real etcd and moto behind tests/ec2proxy.py. Nodes are
 * simulated by writing nodes/<id> (with instance_id) and load/<id> as the
 * test, the way registered corralds would.
 *
 * moto ignores ClientToken idempotency (a repeated RunInstances launches
 * again), so the crash test asserts on the tokens in the proxy's log and
 * on the records; the scaler itself adopts instances that already carry a
 * launch's token, which is what keeps moto (and EC2 after its token window)
 * from a second set. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "ec2.h"
#include "scale-test.h"
#include "node.h"
#include "scale.h"
#include "scaler.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"

static hx_etcd *etcd;
static hx_moto *moto;
static et t;
static ec2_client *ec2;
static char *lt, *subnet, *az;

/* ---- EC2 helpers ---- */

/* The launch template, subnet and zone moto gives (the proxy makes them). */
static void make_launch_template(void) {
	json_auto_t *setup = NULL;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	lt = strdup(json_string_value(json_object_get(setup, "launch_template")));
	subnet = strdup(json_string_value(json_object_get(setup, "subnet")));
	az = strdup(json_string_value(json_object_get(setup, "az")));
	cr_assert(lt && subnet && az);
}

typedef struct described {
	bool done;
	int error;
	json_t *list;           /* [{"id","state","token","tags":{}}] */
} described;

static void on_described(ec2_client *c, const ec2_reply *r, const ec2xml_describe_instances *res, void *ud) {
	described *d = ud;
	d->done = true;
	d->error = r->error;
	d->list = json_array();
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t k = 0; k < res->reservations[i].n_instances; k++) {
			const ec2_instance *x = &res->reservations[i].instances[k];
			json_t *tags = json_object();
			for (size_t j = 0; j < x->n_tags; j++)
				json_object_set_new(tags, x->tags[j].key, json_string(x->tags[j].value));
			json_array_append_new(d->list, json_pack("{s:s, s:s?, s:s?, s:o}", "id", x->instance_id, "state",
								 x->state.name, "token", x->client_token, "tags", tags));
		}
}

static bool is_done(void *ud) {
	return *(bool *) ud;
}

/* The cluster's instances not terminated (new reference). */
static json_t *live_instances(void) {
	const char *const v[] = { CLUSTER };
	const char *const st[] = { "pending", "running" };
	const ec2_filter f[] = { { "tag:corral:cluster", v, 1 }, { "instance-state-name", st, 2 } };
	described d = {};
	cr_assert_eq(ec2_describe_instances(ec2, f, 2, 0, on_described, &d, NULL), 0);
	cr_assert(et_run_until(&t, is_done, &d.done, 30 * USEC_PER_SEC));
	cr_assert_eq(d.error, 0);
	return d.list;
}

/* RunInstances parameters, oldest first. */
static json_t *runs(void) {
	json_auto_t *calls = st_calls(moto, "RunInstances");
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(calls, i, e)
		json_array_append(out, json_object_get(e, "params"));
	return out;
}

static size_t count_action(const char *action) {
	json_auto_t *calls = st_calls(moto, action);
	return json_array_size(calls);
}

static const char *param(json_t *p, const char *name) {
	return json_string_value(json_object_get(p, name));
}

/* ---- etcd helpers ---- */

static void put(const char *sub, const char *value) {
	st_put(&t, PREFIX, sub, value);
}

static void del(const char *sub) {
	st_del(&t, PREFIX, sub);
}

static json_t *get_json(const char *sub) {
	return st_get_json(&t, PREFIX, sub);
}

static json_t *records(void) {
	return st_records(&t, PREFIX);
}

/* Becomes the leader (by writing the key): the fencing token. */
static int64_t take_leadership(void) {
	put("leader", "{\"node_id\":\"test\"}");
	etcd_range_req req = { .key = PREFIX "/leader" };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	cr_assert(r && r->n_kvs == 1);
	return r->kvs[0].create_revision;
}

/* A node on instance id: nodes/<n> and load/<n>. */
static void node(const char *n, const char *id, int jobs) {
	_cleanup_free_ char *k1 = NULL, *k2 = NULL, *v1 = NULL, *v2 = NULL;
	cr_assert_geq(asprintf(&k1, "nodes/%s", n), 0);
	cr_assert_geq(asprintf(&v1, "{\"node_id\":\"%s\",\"address\":\"10.0.0.1\",\"instance_id\":\"%s\"}", n, id), 0);
	cr_assert_geq(asprintf(&k2, "load/%s", n), 0);
	cr_assert_geq(asprintf(&v2, "{\"jobs\":%d,\"capacity\":1,\"memory\":0.1,\"updated\":0}", jobs), 0);
	put(k1, v1);
	put(k2, v2);
}

static void policy(const char *markets, const char *types, int min, int max, const char *extra) {
	_cleanup_free_ char *p = NULL;
	cr_assert_geq(asprintf(&p,
			       "{\"pools\":{\"web\":{\"launch_template\":\"%s\",\"instance_types\":%s,"
			       "\"subnets\":[{\"id\":\"%s\",\"availability_zone\":\"%s\"}],\"markets\":%s,"
			       "\"min\":%d,\"max\":%d,\"jobs_per_host\":1,\"scale_in_after\":0,"
			       "\"scale_in_cooldown\":0,\"min_lifetime\":0%s}}}",
			       lt, types, subnet, az, markets, min, max, extra ?: ""),
		      0);
	put("scale/policy", p);
}

/* ---- the scaler ---- */

typedef struct run {
	int error;
	bool fenced;
	char *summary;
} run;

static void on_cycle(scaler *s, int error, const char *summary, void *ud) {
	run *r = ud;
	r->error = error;
	free(r->summary);
	r->summary = summary ? strdup(summary) : NULL;
	cr_log_info("cycle %u: %d\n%s", scaler_cycles(s), error, summary ?: "");
}

static void on_fenced(scaler *s, void *ud) {
	((run *) ud)->fenced = true;
}

static const scaler_callbacks callbacks = { .cycle = on_cycle, .fenced = on_fenced };

typedef struct waiter {
	scaler *s;
	unsigned target;
} waiter;

static bool cycled(void *ud) {
	waiter *w = ud;
	return scaler_cycles(w->s) >= w->target;
}

/* Triggers one more cycle and waits for it. */
static void cycle_once(scaler *s, run *r) {
	waiter w = { s, scaler_cycles(s) + 1 };
	scaler_trigger(s);
	cr_assert(et_run_until(&t, cycled, &w, 60 * USEC_PER_SEC), "no cycle");
}

static scaler *start(int64_t token, scaler_crash crash, int64_t grace, run *r) {
	scaler_options o = { .prefix = PREFIX, .cluster = CLUSTER, .token = token, .interval_usec = 3600 * USEC_PER_SEC,
			     .launch_grace_sec = grace ?: 3600, .crash = crash };
	scaler *s = NULL;
	cr_assert_eq(scaler_new(&s, t.client, ec2, &o, &callbacks, r), 0);
	waiter w = { s, 1 };
	cr_assert(et_run_until(&t, cycled, &w, 60 * USEC_PER_SEC), "no first cycle");
	return s;
}

static void up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	st_ec2_client(moto, t.event, &ec2);
	make_launch_template();
	cr_assert_eq(hx_moto_reset(moto), 0);
}

static void down(void) {
	ec2 = ec2_client_free(ec2);
	et_close(&t);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
	free(lt);
	free(subnet);
	free(az);
	lt = subnet = az = NULL;
}

TestSuite(scaler, .init = up, .fini = down, .timeout = 180);

static void expect_token(json_t *p, uint64_t seq, unsigned index) {
	char tok[SCALE_TOKEN_MAX + 1];
	scale_client_token(CLUSTER, "web", seq, index, tok);
	cr_assert_str_eq(param(p, "ClientToken"), tok);
}

Test(scaler, load_rises_launches_then_drains_and_terminates) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 3, NULL);
	int64_t token = take_leadership();
	_cleanup_(scaler_freep) scaler *s = start(token, SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);

	/* No hosts, no jobs: the jobs policy wants one. */
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1);
	json_t *p = json_array_get(rl, 0);
	expect_token(p, 1, 0);
	cr_assert_str_eq(param(p, "InstanceType"), "t3.micro");
	cr_assert_str_eq(param(p, "MinCount"), "1");
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 1);
	const char *id1 = json_object_iter_key(json_object_iter(recs));
	cr_assert_str_eq(st_rec_state(recs, id1), "launching");
	json_auto_t *live = live_instances();
	cr_assert_eq(json_array_size(live), 1);
	json_t *tags = json_object_get(json_array_get(live, 0), "tags");
	cr_assert_str_eq(json_string_value(json_object_get(tags, "corral:pool")), "web");
	cr_assert_str_eq(json_string_value(json_object_get(tags, "corral:state")), "launching");
	json_auto_t *state = get_json("scale/state");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(state, "web"), "launch_seq")), 1);
	json_auto_t *metrics = get_json("scale/metrics");
	cr_assert_not_null(json_object_get(json_object_get(metrics, "pools"), "web"));
	cr_assert_eq(json_array_size(json_object_get(metrics, "launched")), 1);

	/* It registers with 4 jobs: ready, and capacity 4 + 2*2 = 8 -> max 3. */
	_cleanup_free_ char *id1c = strdup(id1);
	node("n1", id1c, 4);
	cycle_once(s, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	json_auto_t *recs2 = records();
	cr_assert_str_eq(st_rec_state(recs2, id1c), "ready");
	cr_assert_eq(json_object_size(recs2), 3);
	cr_assert_eq(st_count_state(recs2, "launching"), 2);
	json_auto_t *rl2 = runs();
	cr_assert_eq(json_array_size(rl2), 2);
	expect_token(json_array_get(rl2, 1), 2, 0);
	cr_assert_str_eq(param(json_array_get(rl2, 1), "MinCount"), "2");

	/* The two register; then the load falls to 0: two drained. */
	const char *k;
	json_t *v;
	int i = 2;
	json_object_foreach(recs2, k, v) {
		if (streq(k, id1c))
			continue;
		char n[16];
		snprintf(n, sizeof n, "n%d", i++);
		node(n, k, 0);
	}
	node("n1", id1c, 0);
	cycle_once(s, &r);      /* launching -> ready, and the surplus of 2 drained */
	cr_assert_eq(r.error, 0, "%s", r.summary);
	json_auto_t *recs3 = records();
	cr_assert_eq(st_count_state(recs3, "ready"), 1, "%s", r.summary);
	cr_assert_eq(st_count_state(recs3, "draining"), 2, "%s", r.summary);
	cycle_once(s, &r);      /* draining with no jobs -> terminate */
	json_auto_t *recs4 = records();
	cr_assert_eq(st_count_state(recs4, "terminating"), 2, "%s", r.summary);
	cr_assert_eq(count_action("TerminateInstances"), 1);
	cycle_once(s, &r);      /* EC2 says terminated -> record terminated */
	json_auto_t *recs5 = records();
	cr_assert_eq(st_count_state(recs5, "terminated"), 2, "%s", r.summary);
	json_auto_t *live2 = live_instances();
	cr_assert_eq(json_array_size(live2), 1);
	free(r.summary);
}

/* The node agent's side of a drain: nodes/<n> says it has a wind-down
 * hook; load/<n> says ready_to_stop once the hook is done and jobs are 0. */
static void agent_node(const char *n, const char *id, int jobs, const char *extra) {
	_cleanup_free_ char *k1 = NULL, *k2 = NULL, *v1 = NULL, *v2 = NULL;
	cr_assert_geq(asprintf(&k1, "nodes/%s", n), 0);
	cr_assert_geq(asprintf(&v1, "{\"node_id\":\"%s\",\"instance_id\":\"%s\",\"wind_down\":true}", n, id), 0);
	cr_assert_geq(asprintf(&k2, "load/%s", n), 0);
	cr_assert_geq(asprintf(&v2, "{\"jobs\":%d,\"capacity\":1,\"memory\":0.1%s}", jobs, extra ?: ""), 0);
	put(k1, v1);
	put(k2, v2);
}

static char *only_record_id(void) {
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 1);
	return strdup(json_object_iter_key(json_object_iter(recs)));
}

Test(scaler, waits_for_the_wind_down_hook) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 1, NULL);
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	_cleanup_free_ char *id = only_record_id();
	agent_node("n1", id, 1, NULL);
	cycle_once(s, &r);
	json_auto_t *recs = records();
	cr_assert_str_eq(st_rec_state(recs, id), "ready", "%s", r.summary);

	/* a cluster stop drains it; its jobs end but the hook still runs */
	put("scale/stop", "{}");
	cycle_once(s, &r);
	json_auto_t *recs2 = records();
	cr_assert_str_eq(st_rec_state(recs2, id), "draining", "%s", r.summary);
	agent_node("n1", id, 0, NULL);
	cycle_once(s, &r);
	cycle_once(s, &r);
	json_auto_t *recs3 = records();
	cr_assert_str_eq(st_rec_state(recs3, id), "draining", "terminated before ready_to_stop: %s", r.summary);
	cr_assert(json_is_true(json_object_get(json_object_get(recs3, id), "winding_down")));
	cr_assert_eq(count_action("TerminateInstances"), 0);

	agent_node("n1", id, 0, ",\"ready_to_stop\":true");
	cycle_once(s, &r);
	json_auto_t *recs4 = records();
	cr_assert_str_eq(st_rec_state(recs4, id), "terminating", "%s", r.summary);
	cr_assert_eq(count_action("TerminateInstances"), 1);
	free(r.summary);
}

Test(scaler, interruption_notice_drains_and_replaces) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 1, 2, NULL);
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	_cleanup_free_ char *id = only_record_id();
	node("n1", id, 0);
	cycle_once(s, &r);
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1, "one host is enough before the notice");

	/* The agent writes IMDS's notice into the load record, jobs still on. */
	put("load/n1", "{\"jobs\":1,\"capacity\":1,\"memory\":0.1,"
		       "\"interruption\":{\"action\":\"terminate\",\"time\":\"2026-11-26T12:00:00Z\"}}");
	cycle_once(s, &r);
	json_auto_t *recs = records();
	cr_assert_str_eq(st_rec_state(recs, id), "draining", "%s", r.summary);
	cr_assert(json_is_true(json_object_get(json_object_get(recs, id), "interruption")));
	json_auto_t *rl2 = runs();
	cr_assert_eq(json_array_size(rl2), 2, "the replacement is launched at once: %s", r.summary);
	cr_assert_eq(count_action("TerminateInstances"), 0, "jobs still running");
	free(r.summary);
}

static void on_ack(ec2_client *c, const ec2_reply *r, const ec2xml_ack *res, void *ud) {
	described *d = ud;
	d->done = true;
	d->error = r->error;
}

/* Three ready hosts: one held in etcd (holds/<id>), one by the EC2 tag
 * hold=true; a cluster stop drains and terminates the third only. */
Test(scaler, held_hosts_survive_stop) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 3, 3, NULL);
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 3);
	const char *k;
	json_t *v;
	int i = 0;
	char ids[3][32];
	json_object_foreach(recs, k, v) {
		char n[16];
		snprintf(n, sizeof n, "n%d", i);
		node(n, k, 0);
		snprintf(ids[i], sizeof ids[i], "%s", k);
		i++;
	}
	cycle_once(s, &r);
	_cleanup_free_ char *hk = NULL;
	cr_assert_geq(asprintf(&hk, "holds/%s", ids[0]), 0);
	put(hk, "{}");
	const char *tagged[] = { ids[1] };
	const ec2_kv hold[] = { { "hold", "true" } };
	described d = {};
	cr_assert_eq(ec2_create_tags(ec2, tagged, 1, hold, 1, on_ack, &d, NULL), 0);
	cr_assert(et_run_until(&t, is_done, &d.done, 30 * USEC_PER_SEC));
	cr_assert_eq(d.error, 0);
	put("scale/stop", "{}");
	for (int n = 0; n < 4; n++)
		cycle_once(s, &r);
	json_auto_t *recs2 = records();
	cr_assert_str_eq(st_rec_state(recs2, ids[0]), "ready", "%s", r.summary);
	cr_assert_str_eq(st_rec_state(recs2, ids[1]), "ready", "%s", r.summary);
	cr_assert_str_eq(st_rec_state(recs2, ids[2]), "terminated", "%s", r.summary);
	json_auto_t *live = live_instances();
	cr_assert_eq(json_array_size(live), 2);
	json_auto_t *m = get_json("scale/metrics");
	cr_assert(json_is_true(json_object_get(json_object_get(m, "inputs"), "stop")));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(m, "pools"), "web"), "hosts_held")),
		     2);
	free(r.summary);
}

static void on_run(ec2_client *c, const ec2_reply *r, const ec2xml_run_instances *res, void *ud) {
	described *d = ud;
	d->done = true;
	d->error = r->error;
	d->list = json_array();
	for (size_t i = 0; i < res->n_instances; i++)
		json_array_append_new(d->list, json_string(res->instances[i].instance_id));
}

Test(scaler, orphan_terminated_after_grace) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 0, NULL);
	const ec2_kv tags[] = { { "corral:cluster", CLUSTER }, { "corral:pool", "web" } };
	ec2_launch l = { .launch_template_id = lt, .count = 1, .tags = tags, .n_tags = 2, .client_token = "orphan-1" };
	described d = {};
	cr_assert_eq(ec2_run_instances(ec2, &l, on_run, &d, NULL), 0);
	cr_assert(et_run_until(&t, is_done, &d.done, 30 * USEC_PER_SEC));
	cr_assert_eq(d.error, 0);
	json_auto_t *ids = d.list;
	const char *orphan = json_string_value(json_array_get(ids, 0));

	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 2, &r);
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 0, "within the grace: left alone");
	cr_assert_eq(count_action("TerminateInstances"), 0);
	json_auto_t *m = get_json("scale/metrics");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "consistency"), "unrecorded_in_grace")), 1);

	sleep(3);
	cycle_once(s, &r);
	json_auto_t *recs2 = records();
	cr_assert_str_eq(st_rec_state(recs2, orphan), "terminating", "%s", r.summary);
	cr_assert_eq(count_action("TerminateInstances"), 1);
	json_auto_t *m2 = get_json("scale/metrics");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m2, "consistency"), "orphans_terminated")), 1);
	cycle_once(s, &r);
	json_auto_t *recs3 = records();
	cr_assert_str_eq(st_rec_state(recs3, orphan), "terminated", "%s", r.summary);
	free(r.summary);
}

Test(scaler, maintenance_means_no_action) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 2, 2, NULL);
	put("maintenance", "{}");
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	cr_assert_eq(count_action("RunInstances"), 0);
	json_auto_t *m = get_json("scale/metrics");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(m, "pools"), "web"), "note")),
			 "maintenance");
	cr_assert(json_is_true(json_object_get(json_object_get(m, "inputs"), "maintenance")));
	/* Maintenance ends: the watch decides at once. */
	del("maintenance");
	waiter w = { s, scaler_cycles(s) + 1 };
	cr_assert(et_run_until(&t, cycled, &w, 30 * USEC_PER_SEC));
	cr_assert_eq(count_action("RunInstances"), 1);
	free(r.summary);
}

Test(scaler, reserved_first) {
	run r = {};
	cr_assert_eq(hx_moto_set_reserved(moto, "[{\"type\":\"t3.small\",\"count\":1}]"), 0);
	policy("[\"reserved\",\"on-demand\"]", "[\"t3.micro\",\"t3.small\"]", 1, 1, NULL);
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1, "%s", r.summary);
	cr_assert_str_eq(param(json_array_get(rl, 0), "InstanceType"), "t3.small", "the reserved type, not the first");
	cr_assert_null(param(json_array_get(rl, 0), "InstanceMarketOptions.MarketType"));
	json_auto_t *m = get_json("scale/metrics");
	json_t *res = json_object_get(json_object_get(m, "inputs"), "reservations");
	cr_assert_eq(json_array_size(res), 1);
	cr_assert_eq(count_action("DescribeReservedInstances"), 1);
	free(r.summary);
}

Test(scaler, reservations_unavailable_is_said) {
	run r = {};
	/* No list set: the proxy passes the call to moto, which has no
	 * DescribeReservedInstances (a 500, retried, then given up). */
	policy("[\"reserved\",\"on-demand\"]", "[\"t3.micro\",\"t3.small\"]", 1, 1, NULL);
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0);
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1);
	cr_assert_str_eq(param(json_array_get(rl, 0), "InstanceType"), "t3.micro");
	json_auto_t *m = get_json("scale/metrics");
	const char *why = json_string_value(json_object_get(json_object_get(m, "inputs"), "reservations_error"));
	cr_assert(why && strstr(why, "unavailable"), "%s", why ?: "(null)");
	free(r.summary);
}

Test(scaler, spot_capacity_falls_back_to_on_demand) {
	run r = {};
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "spot-capacity", 1, 0), 0);
	policy("[\"spot\",\"on-demand\"]", "[\"t3.micro\"]", 1, 1, ",\"spot_max_price\":1000");
	_cleanup_(scaler_freep) scaler *s = start(take_leadership(), SCALER_CRASH_NONE, 0, &r);
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1, "%s", r.summary);
	cr_assert_str_eq(param(json_array_get(rl, 0), "InstanceMarketOptions.MarketType"), "spot",
			 "moto gave no spot price? %s", r.summary);
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 0);
	json_auto_t *st = get_json("scale/state");
	cycle_once(s, &r);
	json_auto_t *rl2 = runs();
	cr_assert_eq(json_array_size(rl2), 2, "%s", r.summary);
	cr_assert_null(param(json_array_get(rl2, 1), "InstanceMarketOptions.MarketType"), "on-demand now");
	json_auto_t *recs2 = records();
	cr_assert_eq(st_count_state(recs2, "launching"), 1);
	free(r.summary);
}

Test(scaler, deposed_leader_is_fenced_and_stops) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 0, NULL);
	int64_t token = take_leadership();
	_cleanup_(scaler_freep) scaler *s = start(token, SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	/* Someone else is leader now (new create_revision). */
	del("leader");
	int64_t token2 = take_leadership();
	cr_assert_neq(token, token2);
	del("scale/metrics");
	cycle_once(s, &r);
	cr_assert_eq(r.error, -EPERM, "%s", r.summary);
	cr_assert(r.fenced);
	cr_assert(scaler_stopped(s));
	json_auto_t *m = get_json("scale/metrics");
	cr_assert_null(m, "the deposed leader wrote nothing");
	/* Stopped means stopped: a trigger does nothing. */
	unsigned n = scaler_cycles(s);
	put("scale/trigger", "1");
	et_run_for(&t, 300 * USEC_PER_MSEC);
	cr_assert_eq(scaler_cycles(s), n);
	free(r.summary);
}

/* The leader dies between RunInstances and writing the records: the
 * successor, deciding from the same stored state, derives the same token
 * and adopts the instances carrying it instead of launching again. */
Test(scaler, crash_after_run_does_not_launch_twice) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 2, 2, NULL);
	int64_t token = take_leadership();
	scaler *s1 = start(token, SCALER_CRASH_AFTER_RUN, 0, &r);
	cr_assert_eq(r.error, -ECANCELED, "%s", r.summary);
	scaler_free(s1);
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 0);
	cr_assert_null(get_json("scale/state"));

	run r2 = {};
	_cleanup_(scaler_freep) scaler *s2 = start(token, SCALER_CRASH_NONE, 0, &r2);
	cr_assert_eq(r2.error, 0, "%s", r2.summary);
	json_auto_t *rl = runs();
	cr_assert_eq(json_array_size(rl), 1, "one RunInstances in all");
	expect_token(json_array_get(rl, 0), 1, 0);
	json_auto_t *recs2 = records();
	cr_assert_eq(st_count_state(recs2, "launching"), 2);
	json_auto_t *live = live_instances();
	cr_assert_eq(json_array_size(live), 2, "one set of instances");
	json_t *v;
	size_t i;
	json_array_foreach(live, i, v) cr_assert(json_object_get(recs2, json_string_value(json_object_get(v, "id"))));
	json_auto_t *st = get_json("scale/state");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "web"), "launch_seq")), 1);
	free(r.summary);
	free(r2.summary);
}

/* The leader dies after the records, before scale/state: the successor
 * sees the launching hosts and launches nothing more. */
Test(scaler, crash_before_state_does_not_launch_twice) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 2, 2, NULL);
	int64_t token = take_leadership();
	scaler *s1 = start(token, SCALER_CRASH_BEFORE_STATE, 0, &r);
	cr_assert_eq(r.error, -ECANCELED, "%s", r.summary);
	scaler_free(s1);
	json_auto_t *recs = records();
	cr_assert_eq(st_count_state(recs, "launching"), 2);
	cr_assert_null(get_json("scale/state"));

	run r2 = {};
	_cleanup_(scaler_freep) scaler *s2 = start(token, SCALER_CRASH_NONE, 0, &r2);
	cr_assert_eq(r2.error, 0, "%s", r2.summary);
	cr_assert_eq(count_action("RunInstances"), 1);
	json_auto_t *live = live_instances();
	cr_assert_eq(json_array_size(live), 2);
	free(r.summary);
	free(r2.summary);
}

Test(scaler, dry_run_changes_nothing) {
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 2, 2, NULL);
	scaler_options o = { .prefix = PREFIX, .cluster = CLUSTER };
	_cleanup_free_ char *plan = NULL;
	cr_assert_eq(scaler_plan_once(t.client, ec2, &o, &plan), 0);
	cr_assert(strstr(plan, "launch 2 x t3.micro"), "%s", plan);
	cr_assert_eq(count_action("RunInstances"), 0);
	json_auto_t *recs = records();
	cr_assert_eq(json_object_size(recs), 0);
	cr_assert_null(get_json("scale/state"));
	cr_assert_null(get_json("scale/metrics"));
}

/* The scaler maps hosts to nodes by the node record's instance_id. */
Test(scaler_node, record_carries_instance_id_and_pool) {
	node_info info = { .node_id = "n1", .address = "10.0.0.1", .version = "1", .instance_id = "i-0abc", .pool = "web" };
	_cleanup_free_ char *with = node_record_json(&info);
	json_auto_t *j = json_loads(with, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "instance_id")), "i-0abc");
	cr_assert_str_eq(json_string_value(json_object_get(j, "pool")), "web");
	info.instance_id = info.pool = NULL;
	_cleanup_free_ char *without = node_record_json(&info);
	json_auto_t *k = json_loads(without, 0, NULL);
	cr_assert_null(json_object_get(k, "instance_id"), "absent when not configured");
	cr_assert_null(json_object_get(k, "pool"));
}

/* ---- corrald runs the scaler while it leads ---- */

static bool has_launching_record(void *ud) {
	json_auto_t *recs = records();
	return st_count_state(recs, "launching") >= 1;
}

/* w: {log path, needle, count as text (NULL: 1)} */
static bool log_has(void *ud) {
	const char **w = ud;
	_cleanup_free_ char *text = hx_read_file(w[0], NULL);
	int want = w[2] ? atoi(w[2]) : 1, n = 0;
	for (const char *p = text; p && (p = strstr(p, w[1])); p++)
		n++;
	return n >= want;
}

Test(scaler, corrald_leader_runs_the_scaler_and_stops_it) {
	_cleanup_free_ char *dir = hx_mkdtemp("scaler"), *cfg = NULL, *log = NULL, *bin = NULL, *more = NULL,
			    *key = NULL, *secret = NULL;
	cr_assert_geq(asprintf(&cfg, "%s/n1.yaml", dir), 0);
	cr_assert_geq(asprintf(&log, "%s/n1.log", dir), 0);
	cr_assert_geq(asprintf(&bin, "%s/corrald", hx_builddir()), 0);
	cr_assert_geq(asprintf(&more,
			       "pool: web\nscale_interval: 1s\nec2:\n  region: %s\n  endpoint: %s\n"
			       "  imds_endpoint: \"\"\n  instance_id: i-self\n",
			       hx_moto_region(moto), hx_moto_endpoint(moto)),
		      0);
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), more), 0);
	cr_assert_geq(asprintf(&key, "AWS_ACCESS_KEY_ID=%s", hx_moto_access_key_id(moto)), 0);
	cr_assert_geq(asprintf(&secret, "AWS_SECRET_ACCESS_KEY=%s", hx_moto_secret_access_key(moto)), 0);
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 1, 1, NULL);

	char *const argv[] = { bin, "--config", cfg, NULL };
	char *const env[] = { key, secret, NULL };
	hx_proc *p = NULL;
	cr_assert_eq(hx_proc_spawn(&p, argv, env, log), 0);
	bool launched = hx_wait_until(has_launching_record, NULL, 30 * USEC_PER_SEC);
	if (!launched)
		hx_log_tail(log, 40);
	cr_assert(launched, "the leader's scaler launched nothing");

	json_auto_t *n = get_json("nodes/n1");
	cr_assert_str_eq(json_string_value(json_object_get(n, "instance_id")), "i-self");
	cr_assert_str_eq(json_string_value(json_object_get(n, "pool")), "web");

	/* Deposed (the key deleted by hand): the scaler stops at once. */
	del("leader");
	const char *w[] = { log, "autoscaler: stopped (no longer the leader)", NULL };
	cr_assert(hx_wait_until(log_has, w, 10 * USEC_PER_SEC));
	const char *w2[] = { log, "autoscaler: started (region us-east-1, every 1s)", "2" };
	cr_assert(hx_wait_until(log_has, w2, 10 * USEC_PER_SEC), "re-elected, started again");

	/* A reload without the region stops it. */
	cr_assert_eq(hx_write_corrald_config_full(cfg, "n1", "127.0.0.9", "Worker", hx_etcd_endpoints(etcd), "pool: web\n"),
		     0);
	cr_assert_eq(hx_proc_signal(p, SIGHUP), 0);
	const char *w3[] = { log, "autoscaler: stopped (configuration changed)", NULL };
	if (!hx_wait_until(log_has, w3, 10 * USEC_PER_SEC)) {
		hx_log_tail(log, 30);
		cr_assert_fail("the reload did not stop the scaler");
	}

	cr_assert_eq(hx_proc_signal(p, SIGTERM), 0);
	int status = -1;
	cr_assert_eq(hx_proc_wait(p, 15 * USEC_PER_SEC, &status), 0);
	_cleanup_free_ char *text = hx_read_file(log, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald exited with %d:\n%s", status, text ?: "");
	cr_assert(text && strstr(text, "autoscaler: started"), "%s", text ?: "");
	cr_assert(strstr(text, "autoscaler: stopped"), "%s", text);
	cr_assert_null(strstr(text, "autoscaler: stopped (corrald stopping)"), "it was stopped by the reload");
	p = hx_proc_free(p);
	hx_rm_tmp(dir);
}

/* The decision history is capped: the record that would be one too many
 * deletes the oldest in the txn that writes it. */
Test(scaler, history_is_capped) {
	run r = {};
	char id[24];
	for (int64_t i = 1; i <= SCALE_HISTORY_MAX; i++) {
		_cleanup_free_ char *k = NULL;
		scale_history_id(i, id);
		cr_assert_geq(asprintf(&k, "scale/history/%s", id), 0);
		put(k, "{\"seq\": 0}");
	}
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 1, 1, NULL);
	int64_t token = take_leadership();
	_cleanup_(scaler_freep) scaler *s = start(token, SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);

	etcd_range_req req = { .key = PREFIX "/scale/history/", .prefix = true };
	_cleanup_(etcd_response_freep) etcd_response *h = et_range(&t, &req);
	cr_assert_not_null(h);
	cr_assert_eq(h->n_kvs, SCALE_HISTORY_MAX, "%zu records kept", h->n_kvs);
	cr_assert(strncmp(h->kvs[0].key, PREFIX "/scale/history/00000000000000000002", h->kvs[0].key_len) == 0,
		  "the oldest left is not seq 2: %.*s", (int) h->kvs[0].key_len, h->kvs[0].key);
	const etcd_kv *last = &h->kvs[h->n_kvs - 1];
	scale_history_id(SCALE_HISTORY_MAX + 1, id);
	cr_assert(last->key_len > strlen(id) && memcmp(last->key + last->key_len - strlen(id), id, strlen(id)) == 0);
	json_auto_t *rec = json_loadb(last->value, last->value_len, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), SCALE_HISTORY_MAX + 1);
	cr_assert_eq(json_integer_value(json_object_get(rec, "token")), token);
	json_t *a = json_array_get(json_object_get(rec, "actions"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(a, "action")), "launch");
	cr_assert_eq(json_array_size(json_object_get(rec, "launched")), 1);
	json_auto_t *st = get_json("scale/status");
	cr_assert_str_eq(json_string_value(json_object_get(st, "code")), "ok");
	free(r.summary);
}

/* The forecast's load history: after a decision, a pool with forecast
 * enabled gets its demand (jobs + queue) for the minute; a bad history is
 * started afresh, a pool without forecast gets none. */
Test(scaler, load_history_is_written_for_forecast_pools) {
	run r = {};
	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 1, ",\"forecast\":{\"enabled\":true}");
	put("scale/queue/web", "5");
	int64_t token = take_leadership();
	_cleanup_(scaler_freep) scaler *s = start(token, SCALER_CRASH_NONE, 0, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	json_auto_t *h = get_json("scale/load_history/web");
	cr_assert_not_null(h, "no load history written");
	json_t *points = json_object_get(h, "points");
	cr_assert_geq(json_array_size(points), 1);
	cr_assert_eq(json_integer_value(json_array_get(points, json_array_size(points) - 1)), 5,
		     "jobs 0 + queue 5 for this minute");
	cr_assert_eq(json_integer_value(json_object_get(h, "step")), 60);

	put("scale/load_history/web", "not a history");
	cycle_once(s, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	json_auto_t *h2 = get_json("scale/load_history/web");
	cr_assert_not_null(h2, "a bad history was not started afresh");
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(h2, "points"), 0)), 5);

	policy("[\"on-demand\"]", "[\"t3.micro\"]", 0, 1, NULL);
	st_del(&t, PREFIX, "scale/load_history/web");
	cycle_once(s, &r);
	cr_assert_eq(r.error, 0, "%s", r.summary);
	json_auto_t *h3 = get_json("scale/load_history/web");
	cr_assert_null(h3, "a history for a pool without forecast");
	free(r.summary);
}
