/* test_scale_replace.c — the scaler's half of replace by relaunch
 * (src/scale/replace.c, its part of src/scale/observe.c): one replacement
 * per old host with the order's version and ClientToken, beyond the pool's
 * size within max_surge, drain first at the pool's max; the old host
 * drained once the replacement is ready, terminated once drained (not
 * with keep_old_until_bake); a replacement is never surplus; rollback
 * drains the replacement and undrains the old host with no launch; held
 * hosts untouched; new capacity on the rollout's version; observe turns
 * the rollout's records into all of that, and the host record keeps the
 * new fields. */
#include <criterion/criterion.h>

#include "macro.h"
#include "rollout.h"
#include "scale-observe.h"
#include "scale.h"

#define NOW ((time_t) 1700000000)
#define MAXH 16

static struct {
	char *types[1];
	scale_subnet subnets[2];
	scale_pool pool;
	scale_policy policy;
	scale_host hosts[MAXH];
	size_t n;
	scale_rollout rollout;
	scale_input in;
	scale_output out;
} F;

static void setup(void) {
	memset(&F, 0, sizeof F);
	F.types[0] = "m5.large";
	F.subnets[0] = (scale_subnet) { "subnet-a", "us-east-1a" };
	F.subnets[1] = (scale_subnet) { "subnet-b", "us-east-1b" };
	scale_pool_defaults(&F.pool);
	F.pool.name = "web";
	F.pool.launch_template = "lt-web";
	F.pool.instance_types = F.types;
	F.pool.n_instance_types = 1;
	F.pool.subnets = F.subnets;
	F.pool.n_subnets = 2;
	F.pool.kind = SCALE_POLICY_FIXED;
	F.pool.hosts = 3;
	F.pool.max = 10;
	F.pool.scale_in_after = F.pool.scale_in_cooldown = 0;
	F.policy = (scale_policy) { &F.pool, 1 };
	F.rollout = (scale_rollout) { .pool = "web", .launch_template_version = "2", .image_id = "ami-new",
		                      .max_surge = 1 };
}

static void teardown(void) {
	scale_output_done(&F.out);
}

TestSuite(scale_replace, .init = setup, .fini = teardown);

static scale_host *H(const char *id, scale_state s) {
	scale_host *h = &F.hosts[F.n++];
	*h = (scale_host) { .id = (char *) id, .pool = "web", .state = s, .market = SCALE_ON_DEMAND,
		            .instance_type = "m5.large", .availability_zone = "us-east-1b",
		            .launch_time = NOW - 7200, .state_since = NOW - 7200, .node_id = (char *) id,
		            .last_seen = NOW - 5, .job_capacity = 10, .cluster_tagged = true,
		            .launch_template_version = (char *) "1" };
	return h;
}

/* The old host id, in batch 1 of p1 gen 1, to version 2. */
static void order(scale_host *h, scale_replace what) {
	h->replace = what;
	h->in_rollout = true;
	h->replace_version = what == SCALE_REPLACE_UPGRADE ? (char *) "2" : NULL;
	h->replace_image = what == SCALE_REPLACE_UPGRADE ? (char *) "ami-new" : NULL;
	rollout_replace_token("p1", 1, 1, h->id, false, h->replace_token);
}

static scale_host *R(const char *id, scale_state s, const char *replaces) {
	scale_host *h = H(id, s);
	h->replaces = (char *) replaces;
	h->in_rollout = true;
	h->launch_template_version = (char *) "2";
	return h;
}

static void decide(void) {
	scale_output_done(&F.out);
	F.in = (scale_input) { .cluster = "test", .policy = &F.policy, .hosts = F.hosts, .n_hosts = F.n,
		               .rollout = &F.rollout, .now = NOW };
	cr_assert_eq(scale_decide(&F.in, &F.out), 0);
}

static int count(scale_action_kind k) {
	int n = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		n += F.out.actions[i].kind == k;
	return n;
}

static const scale_action *find(scale_action_kind k, const char *id) {
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == k && (!id || streq_ptr(F.out.actions[i].id, id)))
			return &F.out.actions[i];
	return NULL;
}

Test(scale_replace, surge_launches_one_replacement_and_drains_nothing) {
	order(H("i-1", SCALE_READY), SCALE_REPLACE_UPGRADE);
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	decide();
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 1, "one replacement, no extra scale-up");
	cr_assert_eq(count(SCALE_ACTION_DRAIN), 0);
	const scale_action *a = find(SCALE_ACTION_LAUNCH, NULL);
	cr_assert_str_eq(a->launch_template_version, "2");
	cr_assert_str_eq(a->replaces, "i-1");
	cr_assert_str_eq(a->subnet, "subnet-b", "the old host's zone");
	cr_assert_str_eq(a->image_id, "ami-new", "recorded at once: the rollout tells a new host by it");
	char tok[65];
	rollout_replace_token("p1", 1, 1, "i-1", false, tok);
	cr_assert_str_eq(a->client_token, tok);
	cr_assert_eq(F.out.metrics[0].replaced, 1);
}

Test(scale_replace, no_surge_left_drains_first) {
	F.rollout.max_surge = 0;
	order(H("i-1", SCALE_READY), SCALE_REPLACE_UPGRADE);
	order(H("i-2", SCALE_READY), SCALE_REPLACE_UPGRADE);
	H("i-3", SCALE_READY);
	decide();
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 2);
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-1"));
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-2"));
}

Test(scale_replace, pool_at_max_drains_first_surge_or_not) {
	F.pool.max = 3;
	order(H("i-1", SCALE_READY), SCALE_REPLACE_UPGRADE);
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	decide();
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-1"));
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 1, "the replacement only: it takes the old host's place");
}

Test(scale_replace, surge_is_one_per_plan_knob) {
	for (int i = 0; i < 3; i++) {
		static const char *ids[] = { "i-1", "i-2", "i-3" };
		order(H(ids[i], SCALE_READY), SCALE_REPLACE_UPGRADE);
	}
	decide();
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 3);
	cr_assert_eq(count(SCALE_ACTION_DRAIN), 2, "one beyond the size, two drain first");
	cr_assert_null(find(SCALE_ACTION_DRAIN, "i-1"));
}

Test(scale_replace, launching_replacement_waits_then_old_drains_when_ready) {
	order(H("i-1", SCALE_READY), SCALE_REPLACE_UPGRADE);
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	scale_host *r = R("i-9", SCALE_LAUNCHING, "i-1");
	r->node_id = NULL;
	decide();
	cr_assert_eq(F.out.n_actions, 0, "nothing twice, no surplus drain");
	r->state = SCALE_READY;
	r->node_id = "i-9";
	decide();
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-1"));
	cr_assert_null(find(SCALE_ACTION_DRAIN, "i-9"), "a replacement is never surplus");
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 0);
}

Test(scale_replace, a_surge_replacement_is_no_surplus) {
	F.pool.hosts = 2;
	order(H("i-1", SCALE_READY), SCALE_REPLACE_UPGRADE);
	H("i-2", SCALE_READY);
	scale_host *r = R("i-9", SCALE_READY, "i-1");
	r->in_rollout = false;  /* even when observe did not say */
	r->state_since = NOW - 10;
	F.rollout.min_healthy_time = 30;
	decide();
	cr_assert_eq(F.out.n_actions, 0, "nothing drained: i-9 is the surge, i-1 waits for it to prove itself");
	r->state_since = NOW - 30;
	r->status_failed = true;
	decide();
	cr_assert_eq(F.out.n_actions, 0, "its status says not ok: the old host stays");
	r->status_failed = false;
	decide();
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-1"), "ready for min_healthy_time: the old host goes");
	cr_assert_eq(count(SCALE_ACTION_DRAIN), 1);
}

/* i-1 draining with its order, i-2 and i-3 serving, i-9 its ready replacement. */
static void replaced_and_draining(scale_replace what) {
	order(H("i-1", SCALE_DRAINING), what);
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	R("i-9", SCALE_READY, "i-1");
	decide();
}

Test(scale_replace, drained_old_host_terminates_unless_kept) {
	replaced_and_draining(SCALE_REPLACE_UPGRADE);
	cr_assert_not_null(find(SCALE_ACTION_TERMINATE, "i-1"));
	F.rollout.keep_old = true;
	decide();
	cr_assert_eq(F.out.n_actions, 0, "kept until the plan ends");
	F.rollout.keep_old = false;
	F.hosts[0].winding_down = true;
	decide();
	cr_assert_null(find(SCALE_ACTION_TERMINATE, "i-1"), "its wind-down hook first");
}

Test(scale_replace, held_old_host_is_left_alone) {
	scale_host *h = H("i-1", SCALE_READY);
	order(h, SCALE_REPLACE_UPGRADE);
	h->hold = true;
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	decide();
	cr_assert_eq(F.out.n_actions, 0);
}

Test(scale_replace, rollback_undrains_old_and_drains_new_without_launch) {
	replaced_and_draining(SCALE_REPLACE_ROLLBACK);
	cr_assert_not_null(find(SCALE_ACTION_UNDRAIN, "i-1"));
	cr_assert_not_null(find(SCALE_ACTION_DRAIN, "i-9"));
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 0);
}

Test(scale_replace, rollback_terminates_a_launching_replacement) {
	order(H("i-1", SCALE_READY), SCALE_REPLACE_ROLLBACK);
	H("i-2", SCALE_READY);
	H("i-3", SCALE_READY);
	R("i-9", SCALE_LAUNCHING, "i-1")->node_id = NULL;
	decide();
	cr_assert_not_null(find(SCALE_ACTION_TERMINATE, "i-9"));
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 0);
	cr_assert_eq(count(SCALE_ACTION_UNDRAIN), 0);
}

Test(scale_replace, new_capacity_launches_on_the_rollout_version) {
	F.pool.hosts = 2;
	H("i-1", SCALE_READY);
	decide();
	const scale_action *a = find(SCALE_ACTION_LAUNCH, NULL);
	cr_assert_not_null(a);
	cr_assert_str_eq(a->launch_template_version, "2");
	cr_assert_str_eq(a->image_id, "ami-new");
	cr_assert_null(a->replaces);
	F.rollout.pool = "db";
	decide();
	cr_assert_null(find(SCALE_ACTION_LAUNCH, NULL)->launch_template_version, "another pool: its default");
}

Test(scale_replace, host_record_keeps_the_new_fields) {
	scale_host h = { .id = "i-1", .pool = "web", .state = SCALE_READY, .launch_template_version = "7",
		         .image_id = "ami-1", .replaces = "i-0", .replace = SCALE_REPLACE_UPGRADE };
	json_auto_t *j = scale_host_to_json(&h);
	cr_assert_not_null(j);
	cr_assert_null(json_object_get(j, "replace_version"), "observe's, not stored");
	scale_host back;
	scale_error err;
	cr_assert_eq(scale_host_from_json(j, &back, &err), 0, "%s", err.message);
	cr_assert_str_eq(back.launch_template_version, "7");
	cr_assert_str_eq(back.image_id, "ami-1");
	cr_assert_str_eq(back.replaces, "i-0");
	cr_assert_eq(back.replace, SCALE_REPLACE_NONE);
	scale_host_done(&back);
}

/* ---- observe ---------------------------------------------------------------------------- */

#define KV(id, v) { id, v, sizeof(v) - 1 }

Test(scale_replace, observe_turns_the_rollout_into_replace_work) {
	static const scale_kv hosts[] = {
		KV("i-1", "{\"id\": \"i-1\", \"pool\": \"web\", \"state\": \"ready\", \"launch_time\": 1699990000}"),
		KV("i-2", "{\"id\": \"i-2\", \"pool\": \"web\", \"state\": \"ready\", \"launch_time\": 1699990000}"),
		KV("i-9", "{\"id\": \"i-9\", \"pool\": \"web\", \"state\": \"launching\", \"replaces\": \"i-1\","
		          " \"launch_time\": 1699999990}"),
	};
	static const scale_kv nodes[] = {
		KV("n1", "{\"instance_id\": \"i-1\"}"),
		KV("n2", "{\"instance_id\": \"i-2\"}"),
	};
	static const scale_kv status[] = { KV("n2", "{\"ok\": false}") };
	static const scale_kv orders[] = {
		KV("n1", "{\"plan\": \"p1\", \"generation\": 1, \"verb\": \"upgrade\", \"role\": \"batch\", \"batch\": 1,"
		         " \"target\": {\"launch_template_version\": \"2\"}, \"from\": {\"launch_template_version\": \"1\"},"
		         " \"issued\": 1699999000}"),
	};
	static const char state[] = "{\"plan\": \"p1\", \"generation\": 1, \"phase\": \"rolling\", \"batch\": 1,"
	                            " \"launch_template_version\": \"2\", \"previous\": {\"launch_template_version\": \"1\"}}";
	static const char plan[] = "{\"id\": \"p1\", \"pools\": [\"web\"], \"target\": {\"launch_template_version\": 2},"
	                           " \"batch\": {\"max_surge\": 2, \"keep_old_until_bake\": true}}";
	const scale_instance inst[] = {
		{ .id = "i-1", .pool = "web", .image_id = "ami-old", .launch_template_version = "1", .launch_time = NOW - 10000 },
		{ .id = "i-2", .pool = "web", .launch_time = NOW - 10000 },
		{ .id = "i-9", .pool = "web", .launch_time = NOW - 10 },
	};
	scale_records r = { .cluster = "test", .now = NOW, .launch_grace = 300, .policy = &F.policy,
		            .hosts = hosts, .n_hosts = ELEMENTSOF(hosts), .nodes = nodes, .n_nodes = ELEMENTSOF(nodes),
		            .status = status, .n_status = ELEMENTSOF(status),
		            .upgrade_state = state, .upgrade_state_len = sizeof state - 1, .upgrade_orders = orders,
		            .n_upgrade_orders = ELEMENTSOF(orders), .upgrade_plan = plan,
		            .upgrade_plan_len = sizeof plan - 1, .have_instances = true, .instances = inst,
		            .n_instances = ELEMENTSOF(inst) };
	scale_observed o;
	cr_assert_eq(scale_observe(&r, &o), 0);
	scale_host *h1 = scale_observed_host(&o, "i-1"), *h2 = scale_observed_host(&o, "i-2"),
		   *h9 = scale_observed_host(&o, "i-9");
	cr_assert_eq(h1->replace, SCALE_REPLACE_UPGRADE);
	cr_assert_str_eq(h1->replace_version, "2");
	char tok[65];
	rollout_replace_token("p1", 1, 1, "i-1", false, tok);
	cr_assert_str_eq(h1->replace_token, tok);
	cr_assert_str_eq(h1->image_id, "ami-old", "from DescribeInstances");
	cr_assert_str_eq(h1->launch_template_version, "1");
	cr_assert(o.dirty[h1 - o.hosts], "the record learns its image");
	cr_assert_eq(h2->replace, SCALE_REPLACE_NONE);
	cr_assert(h9->in_rollout, "the replacement is the rollout's");
	cr_assert_not(h2->in_rollout);
	cr_assert(h2->status_failed);
	cr_assert_not(h1->status_failed, "no status record: not failed");
	cr_assert_not_null(o.input.rollout);
	cr_assert_str_eq(o.input.rollout->pool, "web");
	cr_assert_str_eq(o.input.rollout->launch_template_version, "2");
	cr_assert_eq(o.input.rollout->max_surge, 2);
	cr_assert(o.input.rollout->keep_old);
	scale_observed_done(&o);
}
