/* test_rollout_observe.c — rollout_observe() (the records of one revision
 * -> the decision's input) and the schedule `corralctl upgrade plan`
 * prints (rollout_schedule_build/format). */
#include <criterion/criterion.h>
#include <string.h>

#include "macro.h"
#include "rollout.h"

#define P "/corral/t"
#define KV(k, v) { P "/" k, v, sizeof(v) - 1 }

static const char plan_doc[] = "{\"id\": \"p1\", \"target\": {\"image\": \"v2\"}, \"pools\": [\"web\"]}";
static const char state_doc[] = "{\"plan\": \"p1\", \"generation\": 2, \"phase\": \"rolling\", \"batch\": 3}";
static const char order_doc[] = "{\"plan\": \"p1\", \"generation\": 2, \"verb\": \"upgrade\", \"role\": \"batch\","
                                " \"batch\": 3, \"target\": {\"image\": \"v2\"}, \"from\": {\"image\": \"v1\"},"
                                " \"issued\": 100}";
static const char progress_doc[] = "{\"plan\": \"p1\", \"generation\": 2, \"verb\": \"upgrade\", \"state\": \"running\","
                                   " \"step\": 2, \"updated\": 120}";

static const rollout_kv upgrade[] = {
	KV("upgrade/plan", plan_doc),
	KV("upgrade/state", state_doc),
	KV("upgrade/stable", "{\"image\": \"v1\"}"),
	KV("upgrade/nodes/b", order_doc),
	KV("upgrade/progress/b", progress_doc),
	KV("upgrade/nodes/c", "{\"plan\": \"p1\"}"),                    /* no generation */
	KV("upgrade/progress/gone", progress_doc),                       /* a node no longer registered */
	KV("upgrade/history/p0", "{not json"),                           /* not read */
};
static const rollout_kv nodes[] = {
	KV("nodes/c", "{\"node_id\": \"c\", \"pool\": \"web\", \"image\": \"v1\", \"instance_id\": \"i-c\"}"),
	KV("nodes/a", "{\"node_id\": \"a\", \"pool\": \"web\", \"image\": \"v1\", \"boot_time\": \"2023-11-14T00:00:00Z\", \"started\": \"2023-11-15T00:00:00Z\"}"),
	KV("nodes/b", "{\"node_id\": \"b\", \"pool\": \"web\", \"image\": \"v1\", \"instance_id\": \"i-b\"}"),
	KV("nodes/d", "{\"node_id\": \"d\", \"pool\": \"db\", \"instance_id\": \"i-d\"}"),
};
static const rollout_kv status[] = {
	KV("status/a", "{\"ok\": true}"),
	KV("status/b", "{\"ok\": false}"),
};
static const rollout_kv holds[] = {
	KV("holds/i-c", "{\"reason\": \"debugging\"}"),
};
static const rollout_kv hosts[] = {
	KV("scale/hosts/i-d", "{\"id\": \"i-d\", \"pool\": \"db\", \"state\": \"launching\"}"),
	KV("scale/hosts/i-b", "{\"id\": \"i-b\", \"pool\": \"web\", \"state\": \"ready\", \"node_id\": \"b\"}"),
};

static rollout_records records(void) {
	return (rollout_records) { .prefix = P, .upgrade = upgrade, .n_upgrade = ELEMENTSOF(upgrade), .nodes = nodes,
		                   .n_nodes = ELEMENTSOF(nodes), .status = status, .n_status = ELEMENTSOF(status),
		                   .holds = holds, .n_holds = ELEMENTSOF(holds), .hosts = hosts,
		                   .n_hosts = ELEMENTSOF(hosts), .now = 1000 };
}

Test(rollout_observe, records_to_input) {
	rollout_records r = records();
	rollout_view v;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert(v.have_plan);
	cr_assert_null(v.plan_error);
	cr_assert_str_eq(v.input.plan->id, "p1");
	cr_assert_eq(v.input.state->generation, 2);
	cr_assert_eq(v.input.state->batch, 3);
	cr_assert_str_eq(v.input.stable->image, "v1");
	cr_assert_eq(v.input.now, 1000);
	cr_assert_eq(v.input.n_nodes, 5);
	const char *ids[] = { "a", "b", "c", "d", "gone" };
	for (size_t i = 0; i < 5; i++)
		cr_assert_str_eq(v.input.nodes[i].id, ids[i], "sorted by id");
	const rollout_node *a = &v.input.nodes[0], *b = &v.input.nodes[1], *c = &v.input.nodes[2],
	                   *d = &v.input.nodes[3], *gone = &v.input.nodes[4];
	cr_assert(a->registered && a->status_ok && !a->held && !a->launching);
	cr_assert_str_eq(a->pool, "web");
	cr_assert_str_eq(a->image, "v1");
	cr_assert_eq(a->booted, 1699920000);
	cr_assert_null(a->order);
	cr_assert_not(b->status_ok, "status says not ok");
	cr_assert_not(b->launching, "its host is ready");
	cr_assert_eq(b->order->verb, ROLLOUT_UPGRADE);
	cr_assert_eq(b->order->batch, 3);
	cr_assert_eq(b->progress->step, 2);
	cr_assert(c->held, "held by instance id");
	cr_assert(c->status_ok, "no status yet: ok");
	cr_assert_null(c->order, "its order does not parse: left out");
	cr_assert(d->launching, "host still launching");
	cr_assert_null(d->image, "no upgrade config");
	cr_assert_not(gone->registered);
	cr_assert_not_null(gone->progress);
	cr_assert_eq(v.n_notes, 1);
	cr_assert(strstr(v.notes[0], "upgrade/nodes/c: verb: is required"), "%s", v.notes[0]);

	/* the view feeds the decision as it is */
	rollout_output out;
	cr_assert_eq(rollout_decide(&v.input, &out), 0);
	cr_assert_eq(out.n_nodes, 5);
	rollout_output_done(&out);
	rollout_view_done(&v);
}

Test(rollout_observe, a_bad_plan_is_refused_with_a_note) {
	rollout_kv up[] = { KV("upgrade/plan", "{\"id\": \"p1\", \"target\": {\"image\": \"v2\"}, \"batch\": {\"max\": 1}}"),
		            KV("upgrade/state", "[]") };
	rollout_records r = { .prefix = P, .upgrade = up, .n_upgrade = 2 };
	rollout_view v;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert_not(v.have_plan);
	cr_assert_null(v.input.plan);
	cr_assert(strstr(v.plan_error, "batch.max"), "%s", v.plan_error);
	cr_assert_eq(v.n_notes, 2);
	cr_assert_null(v.input.state->plan, "an unreadable state is no state");
	cr_assert_eq(v.input.n_nodes, 0);
	rollout_view_done(&v);
}

Test(rollout_observe, empty) {
	rollout_records r = { .prefix = P };
	rollout_view v;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert_null(v.input.plan);
	cr_assert_eq(v.input.n_nodes, 0);
	rollout_view_done(&v);
}

/* ---- schedule ----------------------------------------------------------------------------------- */

Test(rollout_schedule, three_nodes_at_90_percent_one_at_a_time) {
	rollout_plan p;
	rollout_plan_defaults(&p);
	p.id = "p1";
	p.target.image = "v2";
	rollout_node n[] = {
		{ .id = "n1", .image = "v1", .registered = true, .status_ok = true },
		{ .id = "n2", .image = "v1", .registered = true, .status_ok = true },
		{ .id = "n3", .image = "v1", .registered = true, .status_ok = true, .held = true },
		{ .id = "n4", .image = "v1", .registered = true, .status_ok = true },
	};
	rollout_state s = {};
	rollout_input in = { .plan = &p, .state = &s, .nodes = n, .n_nodes = 4 };
	rollout_schedule sc;
	cr_assert_eq(rollout_schedule_build(&in, &sc), 0);
	cr_assert_eq(sc.n_skipped, 1);
	cr_assert_str_eq(sc.skipped[0], "n3");
	cr_assert_str_eq(sc.skipped_why[0], "held");
	cr_assert_eq(sc.n_canary, 1);
	cr_assert_str_eq(sc.canary[0], "n1");
	cr_assert_eq(sc.n_batches, 2);
	cr_assert_eq(sc.batch_sizes[0], 1);
	cr_assert_str_eq(sc.batches[1][0], "n4");
	char *text = rollout_schedule_format(&p, &sc);
	cr_assert(strstr(text, "skipped: n3 (held)\ncanary: n1\nbatch 1: n2\nbatch 2: n4\n"), "%s", text);
	free(text);
	rollout_schedule_done(&sc);

	p.max_unavailable = 2;
	p.min_healthy_percent = 0;
	p.canary_nodes = 0;
	cr_assert_eq(rollout_schedule_build(&in, &sc), 0);
	cr_assert_eq(sc.n_canary, 0);
	cr_assert_eq(sc.n_batches, 2);
	cr_assert_eq(sc.batch_sizes[0], 2);
	cr_assert_eq(sc.batch_sizes[1], 1);
	rollout_schedule_done(&sc);

	n[0].status_ok = false;          /* 4 nodes at 90%: 3 must stay, 3 healthy: blocked */
	p.min_healthy_percent = 90;
	cr_assert_eq(rollout_schedule_build(&in, &sc), 0);
	cr_assert_eq(sc.n_batches, 0);
	cr_assert_eq(sc.n_skipped, 4, "held, then three blocked");
	cr_assert_str_eq(sc.skipped_why[3], "blocked: budget");
	rollout_schedule_done(&sc);
}

/* A staged config's inputs: `current` (its id and mod_revision) and each
 * node's applied snapshot from its status record. */
Test(rollout_observe, current_and_applied_config) {
	static const rollout_kv st[] = {
		KV("status/a", "{\"ok\": true, \"applied\": \"c_4\", \"target\": \"c_5\"}"),
		KV("status/b", "{\"ok\": true, \"applied\": 7}"),
	};
	static const rollout_kv cur = KV("current", "c_4");
	rollout_records r = records();
	rollout_view v;

	r.status = st;
	r.n_status = ELEMENTSOF(st);
	r.current = &cur;
	r.current_mod_revision = 41;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert_str_eq(v.input.current, "c_4");
	cr_assert_eq(v.input.current_mod_revision, 41);
	cr_assert_str_eq(v.input.nodes[0].id, "a");
	cr_assert_str_eq(v.input.nodes[0].config, "c_4");
	cr_assert_null(v.input.nodes[1].config, "not a string: unknown");
	rollout_view_done(&v);

	r.current = NULL;
	cr_assert_eq(rollout_observe(&r, &v), 0);
	cr_assert_null(v.input.current);
	cr_assert_eq(v.input.current_mod_revision, 0);
	rollout_view_done(&v);
}
