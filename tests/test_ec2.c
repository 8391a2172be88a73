/* test_ec2.c — corral's EC2 client against moto (signature checking on)
 * behind the fault proxy (tests/ec2proxy.py): signing, retries, errors,
 * credentials from the environment, a credentials file and IMDSv2. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "b64.h"
#include "ec2.h"
#include "harness.h"

static hx_moto *moto;
static sd_event *event;

static void up(void) {
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	cr_assert_geq(sd_event_new(&event), 0);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_SECURITY_TOKEN");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_PROFILE");
}

static void down(void) {
	event = sd_event_unref(event);
	moto = hx_moto_free(moto);
}

TestSuite(ec2, .init = up, .fini = down, .timeout = 120);

static void use_env_credentials(void) {
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", hx_moto_access_key_id(moto), 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", hx_moto_secret_access_key(moto), 1), 0);
}

static ec2_client *client_with(const ec2_options *extra) {
	ec2_options o = extra ? *extra : (ec2_options){};
	ec2_client *c = NULL;
	o.region = hx_moto_region(moto);
	o.endpoint = hx_moto_endpoint(moto);
	if (!extra || !extra->imds_endpoint)
		o.imds_endpoint = "";
	if (!o.backoff_base_usec)
		o.backoff_base_usec = 20 * USEC_PER_MSEC;
	if (!o.backoff_cap_usec)
		o.backoff_cap_usec = 200 * USEC_PER_MSEC;
	cr_assert_eq(ec2_client_new(&c, event, &o), 0);
	return c;
}

Test(ec2, signed_call_succeeds) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	ec2_owned_reply r = {};
	int k = ec2_call_sync(c, "DescribeInstances", NULL, 0, &r);
	cr_assert_eq(k, 0, "%s", r.r.message);
	cr_assert_eq(r.r.http_status, 200);
	cr_assert(strstr(r.body, "DescribeInstancesResponse"), "%s", r.body);
	ec2_owned_reply_done(&r);

	json_auto_t *log = NULL;
	cr_assert_eq(hx_moto_log(moto, &log), 0);
	json_t *last = json_array_get(log, json_array_size(log) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(last, "access_key_id")), hx_moto_access_key_id(moto));
}

Test(ec2, wrong_secret_is_auth_failure) {
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", hx_moto_access_key_id(moto), 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1), 0);
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	ec2_owned_reply r = {};
	cr_assert_eq(ec2_call_sync(c, "DescribeInstances", NULL, 0, &r), -EREMOTEIO);
	cr_assert_eq(r.r.error_class, EC2_ERROR_AUTH, "%s", r.r.message);
	cr_assert_eq(r.r.attempts, 1, "an auth failure is not retried");
	cr_assert_null(strstr(r.r.message, "not-the-secret"), "the secret is in the message");
	ec2_owned_reply_done(&r);
}

Test(ec2, throttling_is_retried_then_succeeds) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	cr_assert_eq(hx_moto_fault(moto, "DescribeInstances", "throttle", 2, 0), 0);
	ec2_owned_reply r = {};
	cr_assert_eq(ec2_call_sync(c, "DescribeInstances", NULL, 0, &r), 0, "%s", r.r.message);
	cr_assert_eq(r.r.attempts, 3);
	ec2_owned_reply_done(&r);
}

Test(ec2, throttling_beyond_the_attempts_is_reported) {
	use_env_credentials();
	ec2_options o = { .max_attempts = 3 };
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(&o);
	cr_assert_eq(hx_moto_fault(moto, "DescribeInstances", "throttle", -1, 0), 0);
	ec2_owned_reply r = {};
	cr_assert_eq(ec2_call_sync(c, "DescribeInstances", NULL, 0, &r), -EREMOTEIO);
	cr_assert_eq(r.r.error_class, EC2_ERROR_RETRYABLE);
	cr_assert_str_eq(r.r.code, "RequestLimitExceeded");
	cr_assert_eq(r.r.attempts, 3);
	ec2_owned_reply_done(&r);
}

Test(ec2, no_credentials_is_a_clear_error) {
	ec2_options o = { .credentials_file = "/nonexistent/credentials" };
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(&o);
	ec2_owned_reply r = {};
	cr_assert_eq(ec2_call_sync(c, "DescribeInstances", NULL, 0, &r), -EACCES);
	cr_assert_eq(r.r.error_class, EC2_ERROR_AUTH);
	cr_assert(strstr(r.r.message, "no credentials"), "%s", r.r.message);
	ec2_owned_reply_done(&r);
}

/* ---- typed calls (src/ec2/calls.c) against moto ------------------------------------- */

#define OP_USEC (60 * USEC_PER_SEC)
#define CLUSTER_TAG "corral:cluster"
#define IDS_MAX 256

/* What a test keeps of an operation's report: the reply (body dropped) and
 * a summary of the result. */
typedef struct outcome {
	bool done;
	unsigned calls;                 /* the callback ran this many times */
	ec2_reply r;
	size_t n;                       /* instances / items / changes */
	char *ids[IDS_MAX];
	char *states[IDS_MAX];
	char *cluster[IDS_MAX];         /* the corral:cluster tag, NULL if none */
	char *lifecycle[IDS_MAX];
	char *lt_id[IDS_MAX];
	size_t n_tags[IDS_MAX];
	size_t n_reservations;
	char **not_found;
	unsigned batches;
	bool ack;
} outcome;

static void outcome_done(outcome *o) {
	for (size_t i = 0; i < IDS_MAX; i++) {
		free(o->ids[i]);
		free(o->states[i]);
		free(o->cluster[i]);
		free(o->lifecycle[i]);
		free(o->lt_id[i]);
	}
	strv_free(o->not_found);
	*o = (outcome){};
}

static char *dup_or_null(const char *s) {
	return s ? strdup(s) : NULL;
}

static void keep_reply(outcome *o, const ec2_reply *r) {
	o->calls++;
	o->done = true;
	o->r = *r;
	o->r.body = NULL;
	o->r.body_len = 0;
}

static void keep_instance(outcome *o, const ec2_instance *in) {
	if (o->n >= IDS_MAX)
		return;
	o->ids[o->n] = strdup(in->instance_id);
	o->states[o->n] = dup_or_null(in->state.name);
	o->cluster[o->n] = dup_or_null(ec2_instance_tag(in, CLUSTER_TAG));
	o->lifecycle[o->n] = dup_or_null(in->lifecycle);
	o->lt_id[o->n] = dup_or_null(in->launch_template_id);
	o->n_tags[o->n] = in->n_tags;
	o->n++;
}

static void on_run(ec2_client *c, const ec2_reply *r, const ec2xml_run_instances *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	for (size_t i = 0; i < res->n_instances; i++)
		keep_instance(o, &res->instances[i]);
}

static void on_describe(ec2_client *c, const ec2_reply *r, const ec2xml_describe_instances *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	o->n_reservations = res->n_reservations;
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t j = 0; j < res->reservations[i].n_instances; j++)
			keep_instance(o, &res->reservations[i].instances[j]);
	cr_expect_null(res->next_token, "the merged result has no token");
}

static void on_terminate(ec2_client *c, const ec2_reply *r, const ec2_terminate_result *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	for (size_t i = 0; i < res->changes.n_items && o->n < IDS_MAX; i++, o->n++) {
		o->ids[o->n] = strdup(res->changes.items[i].instance_id);
		o->states[o->n] = dup_or_null(res->changes.items[i].current.name);
	}
	o->batches = res->batches;
	o->not_found = calloc(res->n_not_found + 1, sizeof(char *));
	for (size_t i = 0; i < res->n_not_found; i++)
		o->not_found[i] = strdup(res->not_found[i]);
}

static void on_ack(ec2_client *c, const ec2_reply *r, const ec2xml_ack *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	o->ack = res->ok;
}

static void on_status(ec2_client *c, const ec2_reply *r, const ec2xml_describe_instance_status *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	for (size_t i = 0; i < res->n_items && o->n < IDS_MAX; i++, o->n++) {
		o->ids[o->n] = strdup(res->items[i].instance_id);
		o->states[o->n] = dup_or_null(res->items[i].state.name);
	}
}

static void on_reserved(ec2_client *c, const ec2_reply *r, const ec2xml_describe_reserved_instances *res,
			void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	o->n = res->n_items;
}

static void on_spot(ec2_client *c, const ec2_reply *r, const ec2xml_spot_price_history *res, void *ud) {
	outcome *o = ud;
	keep_reply(o, r);
	for (size_t i = 0; i < res->n_items && o->n < IDS_MAX; i++, o->n++)
		o->ids[o->n] = dup_or_null(res->items[i].instance_type);
}

static void wait_for(outcome *o) {
	cr_assert(hx_event_run_until(event, &o->done, OP_USEC), "the operation did not report within 60 s");
	cr_assert_eq(o->calls, 1, "reported %u times", o->calls);
}

/* The text of the first <name> element in body, or NULL. */
static char *xml_first(const char *body, const char *name) {
	_cleanup_free_ char *open = NULL, *close = NULL;
	cr_assert_geq(asprintf(&open, "<%s>", name), 0);
	cr_assert_geq(asprintf(&close, "</%s>", name), 0);
	const char *s = body ? strstr(body, open) : NULL;
	if (!s)
		return NULL;
	s += strlen(open);
	const char *e = strstr(s, close);
	return e ? strndup(s, (size_t) (e - s)) : NULL;
}

/* An AMI moto knows (DescribeImages), and a launch template using it. */
static char *make_launch_template(ec2_client *c, const char *name) {
	ec2_owned_reply r = {};
	const ec2_param images[] = { { "Owner.1", "amazon" } };
	cr_assert_eq(ec2_call_sync(c, "DescribeImages", images, ELEMENTSOF(images), &r), 0, "%s", r.r.message);
	_cleanup_free_ char *ami = xml_first(r.body, "imageId");
	cr_assert_not_null(ami, "moto listed no images");
	ec2_owned_reply_done(&r);

	const ec2_param lt[] = {
		{ "LaunchTemplateName", name },
		{ "LaunchTemplateData.ImageId", ami },
		{ "LaunchTemplateData.InstanceType", "t3.micro" },
	};
	cr_assert_eq(ec2_call_sync(c, "CreateLaunchTemplate", lt, ELEMENTSOF(lt), &r), 0, "%s", r.r.message);
	char *id = xml_first(r.body, "launchTemplateId");
	cr_assert_not_null(id, "no launchTemplateId in %s", r.body);
	ec2_owned_reply_done(&r);
	return id;
}

/* Launches count instances tagged corral:cluster=cluster; returns them. */
static void launch(ec2_client *c, const char *lt, const char *cluster, unsigned count, bool spot, outcome *o) {
	char token[33];
	cr_assert_eq(ec2_client_token(token), 0);
	const ec2_kv tags[] = { { CLUSTER_TAG, cluster }, { "Name", "worker" } };
	ec2_launch l = { .launch_template_id = lt, .count = count, .tags = tags, .n_tags = 2, .spot = spot,
			 .client_token = token };
	cr_assert_eq(ec2_run_instances(c, &l, on_run, o, NULL), 0);
	wait_for(o);
	cr_assert_eq(o->r.error, 0, "%s", o->r.message);
	cr_assert_eq(o->n, count);
}

/* The log's entries for action, as a new array. */
static json_t *log_of(const char *action) {
	json_auto_t *log = NULL;
	cr_assert_eq(hx_moto_log(moto, &log), 0);
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(log, i, e)
		if (streq_ptr(json_string_value(json_object_get(e, "action")), action))
			json_array_append(out, e);
	return out;
}

typedef struct log_want {
	const char *action;
	size_t n;
} log_want;

static bool log_has(void *userdata) {
	log_want *w = userdata;
	json_auto_t *l = log_of(w->action);
	return json_array_size(l) >= w->n;
}

/* Same, once at least n entries are there: the proxy appends an entry
 * after it has answered, so a read right after the reply can miss it. */
static json_t *log_wait(const char *action, size_t n) {
	log_want w = { action, n };
	(void) hx_wait_until(log_has, &w, 10 * USEC_PER_SEC);
	return log_of(action);
}

static const char *log_param(json_t *entry, const char *name) {
	return json_string_value(json_object_get(json_object_get(entry, "params"), name));
}

static size_t log_count_params(json_t *entry, const char *prefix) {
	const char *k;
	json_t *v;
	size_t n = 0;
	json_object_foreach(json_object_get(entry, "params"), k, v)
		if (strncmp(k, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

typedef struct token_want {
	const char *token;
	size_t n;
} token_want;

static json_t *runs_with_token(const char *token) {
	json_auto_t *runs = log_of("RunInstances");
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(runs, i, e)
		if (streq_ptr(log_param(e, "ClientToken"), token))
			json_array_append(out, e);
	return out;
}

static bool token_has(void *userdata) {
	token_want *w = userdata;
	json_auto_t *l = runs_with_token(w->token);
	return json_array_size(l) >= w->n;
}

/* The RunInstances entries carrying token, once there are n. */
static json_t *log_wait_token(const char *token, size_t n) {
	token_want w = { token, n };
	(void) hx_wait_until(token_has, &w, 10 * USEC_PER_SEC);
	return runs_with_token(token);
}

static const char USER_DATA[] = "#cloud-config\nwrite_files:\n  - path: /etc/corral/cluster\n    content: t\n";

Test(ec2, launch_from_template_with_tags_and_user_data) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-launch");
	_cleanup_(outcome_done) outcome o = {};
	char token[33];
	cr_assert_eq(ec2_client_token(token), 0);
	const ec2_kv tags[] = { { CLUSTER_TAG, "t" }, { "Name", "worker" } };
	ec2_launch l = { .launch_template_id = lt, .instance_type = "t3.small", .count = 3, .tags = tags,
			 .n_tags = 2, .user_data = USER_DATA, .user_data_len = strlen(USER_DATA),
			 .client_token = token };
	cr_assert_eq(ec2_run_instances(c, &l, on_run, &o, NULL), 0);
	cr_assert_not(o.done, "a start function never reports before it returns");
	wait_for(&o);
	cr_assert_eq(o.r.error, 0, "%s", o.r.message);
	cr_assert_eq(o.r.attempts, 1);
	cr_assert_eq(o.n, 3);
	for (size_t i = 0; i < o.n; i++) {
		cr_expect_str_eq(o.cluster[i], "t");
		cr_expect_str_eq(o.lt_id[i], lt, "moto tags template instances like AWS");
		cr_expect_null(o.lifecycle[i], "on-demand");
	}

	json_auto_t *runs = log_wait("RunInstances", 1);
	cr_assert_eq(json_array_size(runs), 1);
	json_t *e = json_array_get(runs, 0);
	cr_expect_str_eq(log_param(e, "ClientToken"), token);
	cr_expect_str_eq(log_param(e, "MinCount"), "3");
	cr_expect_str_eq(log_param(e, "MaxCount"), "3");
	cr_expect_str_eq(log_param(e, "LaunchTemplate.Version"), "$Latest");
	cr_expect_str_eq(log_param(e, "InstanceType"), "t3.small");
	cr_expect_str_eq(log_param(e, "TagSpecification.1.ResourceType"), "instance");
	char *ud = NULL;
	size_t ud_len = 0;
	cr_assert_eq(b64_decode(log_param(e, "UserData"), strlen(log_param(e, "UserData")), &ud, &ud_len), 0);
	cr_expect_str_eq(ud, USER_DATA);
	free(ud);

	/* The cluster's instances, by tag, as the scaler will poll them. */
	_cleanup_(outcome_done) outcome d = {};
	static const char *const cl[] = { "t" }, *const live[] = { "pending", "running" };
	const ec2_filter f[] = { { "tag:" CLUSTER_TAG, cl, 1 }, { "instance-state-name", live, 2 } };
	cr_assert_eq(ec2_describe_instances(c, f, 2, 0, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.r.error, 0, "%s", d.r.message);
	cr_assert_eq(d.n, 3);
	json_auto_t *ds = log_wait("DescribeInstances", 1);
	cr_expect_str_eq(log_param(json_array_get(ds, 0), "MaxResults"), "1000", "the default page size");
}

Test(ec2, retried_launch_carries_one_client_token) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-retry");
	cr_assert_eq(hx_moto_set_faults(moto, "[{\"action\":\"RunInstances\",\"kind\":\"drop\",\"count\":1},"
					      "{\"action\":\"RunInstances\",\"kind\":\"internal\",\"count\":1}]"),
		     0);
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "t", 2, false, &o);
	/* Two or three of ours: on a reused keep-alive connection that closes
	 * without an answer, libcurl itself sends the request again once,
	 * which this client does not see as an attempt. The log sees all. */
	cr_assert(o.r.attempts == 2 || o.r.attempts == 3, "attempts: %u", o.r.attempts);

	/* moto does not model idempotency (a repeated token launches again),
	 * so the proof is what was sent: three attempts, one token. */
	json_auto_t *runs = log_wait("RunInstances", 3);
	cr_assert_eq(json_array_size(runs), 3);
	const char *token = log_param(json_array_get(runs, 0), "ClientToken");
	cr_assert_not_null(token);
	cr_assert_eq(strlen(token), 32);
	for (size_t i = 1; i < 3; i++)
		cr_expect_str_eq(log_param(json_array_get(runs, i), "ClientToken"), token);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(runs, 0), "fault")), "drop");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(runs, 1), "fault")), "internal");
	cr_expect(json_is_null(json_object_get(json_array_get(runs, 2), "fault")));
}

Test(ec2, throttled_launch_is_retried) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-throttle");
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", "throttle", 2, 0), 0);
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "t", 1, false, &o);
	cr_assert_eq(o.r.attempts, 3);
	json_auto_t *runs = log_wait("RunInstances", 3);
	cr_assert_eq(json_array_size(runs), 3);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(runs, 0), "status")), 503);
	cr_expect_str_eq(log_param(json_array_get(runs, 2), "ClientToken"),
			 log_param(json_array_get(runs, 0), "ClientToken"));
}

static void expect_capacity(ec2_client *c, const char *lt, const char *kind, bool spot, const char *says) {
	cr_assert_eq(hx_moto_fault(moto, "RunInstances", kind, -1, 0), 0);
	_cleanup_(outcome_done) outcome o = {};
	char token[33];
	cr_assert_eq(ec2_client_token(token), 0);
	ec2_launch l = { .launch_template_id = lt, .instance_type = "c5.24xlarge", .count = 4, .spot = spot,
			 .client_token = token };
	cr_assert_eq(ec2_run_instances(c, &l, on_run, &o, NULL), 0);
	wait_for(&o);
	cr_assert_eq(o.r.error, -EREMOTEIO, "%s: %s", kind, o.r.message);
	cr_assert_eq(o.r.error_class, EC2_ERROR_CAPACITY, "%s: class %s", kind,
		     ec2_error_class_to_string(o.r.error_class));
	cr_assert_str_eq(o.r.code, "InsufficientInstanceCapacity");
	cr_assert_eq(o.r.http_status, 500);
	cr_assert_eq(o.r.attempts, 1, "%s: a capacity error is not retried", kind);
	cr_assert_eq(o.n, 0);
	cr_assert(strstr(o.r.message, says), "%s: %s", kind, o.r.message);
	cr_assert_null(strstr(o.r.message, hx_moto_secret_access_key(moto)));
	json_auto_t *runs = log_wait_token(token, 1);
	cr_assert_eq(json_array_size(runs), 1);
	if (spot)
		cr_expect_str_eq(log_param(json_array_get(runs, 0), "InstanceMarketOptions.MarketType"), "spot");
}

Test(ec2, capacity_errors_are_surfaced_not_retried) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-capacity");
	expect_capacity(c, lt, "capacity", false, "sufficient c5.24xlarge capacity");
	expect_capacity(c, lt, "spot-capacity", true, "no Spot capacity");
}

Test(ec2, spot_launch_is_spot) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-spot");
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "t", 2, true, &o);
	for (size_t i = 0; i < o.n; i++)
		cr_expect_str_eq(o.lifecycle[i], "spot");
}

Test(ec2, describe_follows_next_token_across_pages) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-paging");
	/* moto pages by reservation (MaxResults counts reservations, and a
	 * reservation comes whole): 11 reservations (10 of 1 instance, 1 of 6)
	 * under MaxResults=5 make three pages, 5 + 5 + 1. Another cluster's
	 * instances must not show. */
	for (int i = 0; i < 11; i++) {
		_cleanup_(outcome_done) outcome o = {};
		launch(c, lt, "paging", i == 4 ? 6 : 1, false, &o);
	}
	_cleanup_(outcome_done) outcome other = {};
	launch(c, lt, "other", 2, false, &other);
	cr_assert_eq(hx_moto_reset(moto), 0);

	_cleanup_(outcome_done) outcome d = {};
	static const char *const cl[] = { "paging" };
	const ec2_filter f[] = { { "tag:" CLUSTER_TAG, cl, 1 } };
	cr_assert_eq(ec2_describe_instances(c, f, 1, 5, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.r.error, 0, "%s", d.r.message);
	cr_assert_eq(d.n, 16, "every page merged");
	cr_assert_eq(d.n_reservations, 11);
	for (size_t i = 0; i < d.n; i++)
		cr_expect_str_eq(d.cluster[i], "paging");
	cr_expect_eq(d.r.attempts, 3, "attempts summed over the pages: %u", d.r.attempts);

	json_auto_t *pages = log_wait("DescribeInstances", 3);
	cr_assert_eq(json_array_size(pages), 3, "three pages walked, not %zu", json_array_size(pages));
	cr_expect_null(log_param(json_array_get(pages, 0), "NextToken"));
	for (size_t i = 0; i < 3; i++) {
		cr_expect_str_eq(log_param(json_array_get(pages, i), "MaxResults"), "5");
		cr_expect_str_eq(log_param(json_array_get(pages, i), "Filter.1.Value.1"), "paging");
	}
	const char *t1 = log_param(json_array_get(pages, 1), "NextToken"),
		   *t2 = log_param(json_array_get(pages, 2), "NextToken");
	cr_assert(t1 && t2 && !streq(t1, t2), "page 2 and 3 carry the tokens of pages 1 and 2");
}

Test(ec2, terminate_in_batches_dropping_ids_that_do_not_exist) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-terminate");
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "big", 120, false, &o);
	cr_assert_eq(hx_moto_reset(moto), 0);

	/* 121 ids; the bogus one in the first batch: EC2 (and moto) then
	 * terminate nothing of that batch and name it. */
	const char *ids[121];
	const char *bogus = "i-00000000000000000";
	for (size_t i = 0, k = 0; i < 121; i++)
		ids[i] = i == 50 ? bogus : o.ids[k++];
	_cleanup_(outcome_done) outcome t = {};
	cr_assert_eq(ec2_terminate_instances(c, ids, 121, on_terminate, &t, NULL), 0);
	wait_for(&t);
	cr_assert_eq(t.r.error, 0, "%s", t.r.message);
	cr_assert_eq(t.n, 120, "every real instance changed state");
	cr_assert_eq(t.batches, 2);
	cr_assert_eq(strv_length(t.not_found), 1);
	cr_assert_str_eq(t.not_found[0], bogus);
	for (size_t i = 0; i < t.n; i++)
		cr_expect(streq(t.states[i], "shutting-down") || streq(t.states[i], "terminated"), "%s", t.states[i]);

	json_auto_t *calls = log_wait("TerminateInstances", 3);
	cr_assert_eq(json_array_size(calls), 3);
	cr_expect_eq(log_count_params(json_array_get(calls, 0), "InstanceId."), 100);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(calls, 0), "status")), 400);
	cr_expect_eq(log_count_params(json_array_get(calls, 1), "InstanceId."), 99, "the batch without the bogus id");
	cr_expect_eq(log_count_params(json_array_get(calls, 2), "InstanceId."), 21);

	/* All bad: reported as dropped, nothing else to do. */
	_cleanup_(outcome_done) outcome b = {};
	const char *const only_bad[] = { bogus, "i-0000000000000000a" };
	cr_assert_eq(ec2_terminate_instances(c, only_bad, 2, on_terminate, &b, NULL), 0);
	wait_for(&b);
	cr_assert_eq(b.r.error, 0, "%s", b.r.message);
	cr_assert_eq(strv_length(b.not_found), 2);
	cr_assert_eq(b.n, 0);
}

/* The warm pool's calls: stop, start; a gone id is dropped, not an error. */
Test(ec2, stop_and_start_dropping_ids_that_do_not_exist) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-warm");
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "warm", 2, false, &o);
	cr_assert_eq(hx_moto_reset(moto), 0);

	const char *bogus = "i-00000000000000000";
	const char *const ids[] = { o.ids[0], bogus, o.ids[1] };
	_cleanup_(outcome_done) outcome s = {};
	cr_assert_eq(ec2_stop_instances(c, ids, 3, on_terminate, &s, NULL), 0);
	wait_for(&s);
	cr_assert_eq(s.r.error, 0, "%s", s.r.message);
	cr_assert_eq(s.n, 2, "both real instances changed state");
	cr_assert_eq(strv_length(s.not_found), 1);
	cr_assert_str_eq(s.not_found[0], bogus);
	for (size_t i = 0; i < s.n; i++)
		cr_expect(streq(s.states[i], "stopping") || streq(s.states[i], "stopped"), "%s", s.states[i]);

	_cleanup_(outcome_done) outcome d = {};
	const char *const values[] = { "warm" };
	const ec2_filter f[] = { { "tag:" CLUSTER_TAG, values, 1 } };
	cr_assert_eq(ec2_describe_instances(c, f, 1, 0, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.n, 2);
	for (size_t i = 0; i < d.n; i++)
		cr_expect_str_eq(d.states[i], "stopped", "moto says %s", d.states[i]);

	_cleanup_(outcome_done) outcome g = {};
	cr_assert_eq(ec2_start_instances(c, ids, 3, on_terminate, &g, NULL), 0);
	wait_for(&g);
	cr_assert_eq(g.r.error, 0, "%s", g.r.message);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(strv_length(g.not_found), 1);
	for (size_t i = 0; i < g.n; i++)
		cr_expect(streq(g.states[i], "pending") || streq(g.states[i], "running"), "%s", g.states[i]);

	json_auto_t *stops = log_wait("StopInstances", 2), *starts = log_wait("StartInstances", 2);
	cr_assert_eq(json_array_size(stops), 2, "the first with the bogus id (400), then the two");
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(stops, 0), "status")), 400);
	cr_expect_eq(log_count_params(json_array_get(stops, 1), "InstanceId."), 2);
	cr_assert_eq(json_array_size(starts), 2);
	cr_expect_eq(log_count_params(json_array_get(starts, 1), "InstanceId."), 2);
}

Test(ec2, tags_are_created_and_deleted) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-tags");
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "tags", 2, false, &o);

	const char *const ids[] = { o.ids[0], o.ids[1] };
	const ec2_kv add[] = { { "corral:state", "draining" }, { "note", "" } };
	_cleanup_(outcome_done) outcome a = {};
	cr_assert_eq(ec2_create_tags(c, ids, 2, add, 2, on_ack, &a, NULL), 0);
	wait_for(&a);
	cr_assert_eq(a.r.error, 0, "%s", a.r.message);
	cr_assert(a.ack);

	_cleanup_(outcome_done) outcome d = {};
	static const char *const draining[] = { "draining" };
	const ec2_filter f[] = { { "tag:corral:state", draining, 1 } };
	cr_assert_eq(ec2_describe_instances(c, f, 1, 0, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.n, 2);
	cr_expect_eq(d.n_tags[0], 6, "cluster, Name, corral:state, note, aws:ec2launchtemplate:id/version: %zu", d.n_tags[0]);

	const ec2_kv del[] = { { "corral:state", NULL } };
	_cleanup_(outcome_done) outcome x = {};
	cr_assert_eq(ec2_delete_tags(c, ids, 2, del, 1, on_ack, &x, NULL), 0);
	wait_for(&x);
	cr_assert_eq(x.r.error, 0, "%s", x.r.message);
	_cleanup_(outcome_done) outcome d2 = {};
	cr_assert_eq(ec2_describe_instances(c, f, 1, 0, on_describe, &d2, NULL), 0);
	wait_for(&d2);
	cr_assert_eq(d2.n, 0, "the tag is gone");
}

Test(ec2, instance_status_spot_prices_and_reserved_instances) {
	use_env_credentials();
	ec2_options opt = { .max_attempts = 2 };
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(&opt);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-status");
	_cleanup_(outcome_done) outcome o = {};
	launch(c, lt, "status", 2, false, &o);

	_cleanup_(outcome_done) outcome s = {};
	cr_assert_eq(ec2_describe_instance_status(c, NULL, 0, true, on_status, &s, NULL), 0);
	wait_for(&s);
	cr_assert_eq(s.r.error, 0, "%s", s.r.message);
	cr_assert_geq(s.n, 2);
	_cleanup_(outcome_done) outcome s1 = {};
	const char *const one[] = { o.ids[1] };
	cr_assert_eq(ec2_describe_instance_status(c, one, 1, true, on_status, &s1, NULL), 0);
	wait_for(&s1);
	cr_assert_eq(s1.r.error, 0, "%s", s1.r.message);
	cr_assert_eq(s1.n, 1);
	cr_expect_str_eq(s1.ids[0], o.ids[1]);
	cr_expect_str_eq(s1.states[0], "running");

	_cleanup_(outcome_done) outcome p = {};
	const char *const types[] = { "m5.large" };
	cr_assert_eq(ec2_describe_spot_price_history(c, types, 1, "Linux/UNIX", time(NULL) - 3600, on_spot, &p, NULL),
		     0);
	wait_for(&p);
	cr_assert_eq(p.r.error, 0, "%s", p.r.message);
	for (size_t i = 0; i < p.n; i++)
		cr_expect_str_eq(p.ids[i], "m5.large");
	json_auto_t *sp = log_wait("DescribeSpotPriceHistory", 1);
	cr_expect_str_eq(log_param(json_array_get(sp, 0), "ProductDescription.1"), "Linux/UNIX");

	/* moto does not implement DescribeReservedInstances: HTTP 500 with an
	 * HTML page. A 500 without an EC2 code counts as transient, so it is
	 * retried, then reported as a value. */
	_cleanup_(outcome_done) outcome r = {};
	static const char *const active[] = { "active" };
	const ec2_filter f[] = { { "state", active, 1 } };
	cr_assert_eq(ec2_describe_reserved_instances(c, f, 1, on_reserved, &r, NULL), 0);
	wait_for(&r);
	cr_assert_eq(r.r.error, -EREMOTEIO, "%s", r.r.message);
	cr_assert_eq(r.r.http_status, 500);
	cr_assert_str_eq(r.r.code, "");
	cr_assert_eq(r.r.error_class, EC2_ERROR_RETRYABLE);
	cr_assert_eq(r.r.attempts, 2);
	cr_assert_eq(r.n, 0);
}

/* ---- credentials: IMDSv2 and the shared file ----------------------------------------- */

static json_int_t imds_count(const char *what) {
	json_auto_t *st = NULL;
	cr_assert_eq(hx_moto_imds_state(moto, &st), 0);
	return json_integer_value(json_object_get(json_object_get(st, "requests"), what));
}

static char *imds_key(void) {
	json_auto_t *st = NULL;
	cr_assert_eq(hx_moto_imds_state(moto, &st), 0);
	return strdup(json_string_value(json_object_get(json_object_get(st, "credentials"), "AccessKeyId")));
}

/* The signing key and token of the last DescribeInstances in the log. */
static void last_signer(char **key, bool *has_token) {
	json_auto_t *ds = log_of("DescribeInstances");
	json_t *e = json_array_get(ds, json_array_size(ds) - 1);
	cr_assert_not_null(e);
	*key = strdup(json_string_value(json_object_get(e, "access_key_id")) ?: "");
	*has_token = json_string_length(json_object_get(e, "security_token")) > 0;
}

static void describe_ok(ec2_client *c, size_t n_log_before) {
	_cleanup_(outcome_done) outcome d = {};
	cr_assert_eq(ec2_describe_instances(c, NULL, 0, 0, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.r.error, 0, "%s", d.r.message);
	json_auto_t *l = log_wait("DescribeInstances", n_log_before + 1);
	cr_assert_eq(json_array_size(l), n_log_before + 1);
}

Test(ec2, imds_credentials_are_fetched_refreshed_and_rotated) {
	ec2_options o = { .imds_endpoint = hx_moto_imds_url(moto), .credentials_file = "/nonexistent/credentials",
			  .refresh_ahead_usec = 60 * USEC_PER_SEC };
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(&o);
	_cleanup_free_ char *key0 = imds_key(), *signer = NULL;
	bool token = false;

	/* The role's credentials expire in 5 s, within refresh_ahead (60 s). */
	cr_assert_eq(hx_moto_imds_control(moto, "{\"expires_in\": 5}", NULL), 0);
	describe_ok(c, 0);
	last_signer(&signer, &token);
	cr_assert_str_eq(signer, key0, "signed with the role's key from IMDS");
	cr_assert(token, "the session token was sent");
	cr_assert_eq(imds_count("token"), 1);
	cr_assert_eq(imds_count("role"), 1);
	cr_assert_eq(imds_count("credentials"), 1);

	/* So the next call fetches them again first. */
	describe_ok(c, 1);
	cr_assert_eq(imds_count("credentials"), 2, "refreshed ahead of the expiry");
	cr_assert_eq(imds_count("token"), 1, "the IMDS token is kept for its TTL");

	/* Rotated (new key, 6 h): the client holds the old key, about to
	 * expire; the next call fetches and signs with the new one. (moto does
	 * not refuse the old key, so the log's signer is the proof.) */
	cr_assert_eq(hx_moto_imds_control(moto, "{\"rotate\": true}", NULL), 0);
	_cleanup_free_ char *key1 = imds_key();
	cr_assert_str_neq(key1, key0);
	describe_ok(c, 2);
	free(signer);
	signer = NULL;
	last_signer(&signer, &token);
	cr_assert_str_eq(signer, key1, "signed with the rotated key");
	cr_assert(token);
	cr_assert_eq(imds_count("credentials"), 3);

	/* Fresh for 6 h now: no fetch. */
	describe_ok(c, 3);
	cr_assert_eq(imds_count("credentials"), 3);
}

Test(ec2, imds_unavailable_is_an_error_value_without_secrets) {
	ec2_options o = { .imds_endpoint = hx_moto_imds_url(moto), .credentials_file = "/nonexistent/credentials" };
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(&o);
	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": false}", NULL), 0);
	_cleanup_(outcome_done) outcome d = {};
	cr_assert_eq(ec2_describe_instances(c, NULL, 0, 0, on_describe, &d, NULL), 0);
	wait_for(&d);
	cr_assert_eq(d.r.error, -EACCES, "%s", d.r.message);
	cr_assert_eq(d.r.error_class, EC2_ERROR_AUTH);
	cr_assert(strstr(d.r.message, "instance metadata"), "%s", d.r.message);

	/* Back on: the next call fetches. */
	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": true}", NULL), 0);
	describe_ok(c, 0);
	json_auto_t *st = NULL;
	cr_assert_eq(hx_moto_imds_state(moto, &st), 0);
	json_t *cr = json_object_get(st, "credentials");
	const char *secret = json_string_value(json_object_get(cr, "SecretAccessKey"));
	const char *tok = json_string_value(json_object_get(cr, "Token"));
	cr_assert_null(strstr(d.r.message, secret));
	cr_assert_null(strstr(d.r.message, tok));

	/* An error reply signed with those credentials carries neither. */
	cr_assert_eq(hx_moto_fault(moto, "DescribeInstances", "error", 1, 0), 0);
	_cleanup_(outcome_done) outcome e = {};
	cr_assert_eq(ec2_describe_instances(c, NULL, 0, 0, on_describe, &e, NULL), 0);
	wait_for(&e);
	cr_assert_eq(e.r.error, -EREMOTEIO);
	cr_assert_str_eq(e.r.code, "InvalidParameterValue");
	cr_assert_null(strstr(e.r.message, secret));
	cr_assert_null(strstr(e.r.message, tok));
}

Test(ec2, credentials_file_with_a_profile) {
	_cleanup_free_ char *dir = hx_mkdtemp("ec2creds"), *path = NULL, *text = NULL;
	cr_assert_geq(asprintf(&path, "%s/credentials", dir), 0);
	cr_assert_geq(asprintf(&text,
			       "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\naws_secret_access_key = wrong\n\n"
			       "[corral]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			       hx_moto_access_key_id(moto), hx_moto_secret_access_key(moto)),
		      0);
	cr_assert_eq(hx_write_file(path, text), 0);

	ec2_options o = { .credentials_file = path, .profile = "corral" };
	ec2_client *c = client_with(&o);
	describe_ok(c, 0);
	_cleanup_free_ char *signer = NULL;
	bool token = true;
	last_signer(&signer, &token);
	cr_assert_str_eq(signer, hx_moto_access_key_id(moto));
	cr_assert_not(token, "long-term keys send no token");
	c = ec2_client_free(c);

	/* The default profile's key is wrong: an auth error, no secret in it. */
	ec2_options d = { .credentials_file = path };
	c = client_with(&d);
	_cleanup_(outcome_done) outcome e = {};
	cr_assert_eq(ec2_describe_instances(c, NULL, 0, 0, on_describe, &e, NULL), 0);
	wait_for(&e);
	cr_assert_eq(e.r.error_class, EC2_ERROR_AUTH, "%s", e.r.message);
	cr_assert_null(strstr(e.r.message, "wrong\n"));
	c = ec2_client_free(c);

	/* hx_moto_write_credentials' [default] through AWS_SHARED_CREDENTIALS_FILE. */
	cr_assert_eq(hx_moto_write_credentials(moto, path), 0);
	cr_assert_eq(setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1), 0);
	c = client_with(NULL);
	describe_ok(c, 2);
	c = ec2_client_free(c);
	hx_rm_tmp(dir);
}

/* ---- corralctl ec2 describe ---------------------------------------------------------- */

static int corralctl(char **out, char **err, const char *format, const char *sub) {
	_cleanup_free_ char *bin = NULL;
	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	char *const argv[] = { bin, "--cluster", "ctl", "--ec2-endpoint", (char *) hx_moto_endpoint(moto),
			       "--format", (char *) format, "ec2", (char *) sub, NULL };
	return hx_run_capture(out, err, 60 * USEC_PER_SEC, argv, hx_moto_env(moto));
}

Test(ec2, corralctl_ec2_describe) {
	use_env_credentials();
	_cleanup_(ec2_client_freep) ec2_client *c = client_with(NULL);
	_cleanup_free_ char *lt = make_launch_template(c, "corral-ctl");
	_cleanup_(outcome_done) outcome od = {}, spot = {}, other = {};
	launch(c, lt, "ctl", 2, false, &od);
	launch(c, lt, "ctl", 1, true, &spot);
	launch(c, lt, "ctl-other", 1, false, &other);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	_cleanup_free_ char *table = NULL, *json = NULL, *err = NULL;
	cr_assert_eq(corralctl(&table, NULL, "table", "describe"), 0);
	cr_log_info("corralctl ec2 describe:\n%s", table);
	cr_assert(strncmp(table, "INSTANCE", 8) == 0, "%s", table);
	cr_assert(strstr(table, "STATE") && strstr(table, "MARKET") && strstr(table, "PRIVATE IP"), "%s", table);
	size_t lines = 0;
	for (const char *p = table; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, 4, "a header and 3 instances:\n%s", table);
	for (size_t i = 0; i < od.n; i++)
		cr_assert(strstr(table, od.ids[i]), "%s missing:\n%s", od.ids[i], table);
	cr_assert(strstr(table, spot.ids[0]));
	cr_assert_null(strstr(table, other.ids[0]), "another cluster's instance is listed");
	cr_assert(strstr(table, "corral:cluster=ctl"), "%s", table);
	cr_assert(strstr(table, " spot "), "%s", table);
	cr_assert(strstr(table, " on-demand "), "%s", table);
	cr_assert(strstr(table, " running "), "%s", table);

	cr_assert_eq(corralctl(&json, NULL, "json", "describe"), 0);
	json_error_t jerr;
	json_auto_t *v = json_loads(json, 0, &jerr);
	cr_assert_not_null(v, "%s: %s", jerr.text, json);
	cr_assert_eq(json_array_size(v), 3);
	size_t i, n_spot = 0;
	json_t *o;
	json_array_foreach(v, i, o) {
		cr_expect_str_eq(json_string_value(json_object_get(o, "state")), "running");
		cr_expect_str_eq(json_string_value(json_object_get(o, "type")), "t3.micro");
		cr_expect_str_eq(json_string_value(json_object_get(json_object_get(o, "tags"), CLUSTER_TAG)), "ctl");
		cr_expect_not_null(json_string_value(json_object_get(o, "launch_time")));
		cr_expect_not_null(json_string_value(json_object_get(o, "private_ip")));
		n_spot += streq(json_string_value(json_object_get(o, "market")), "spot");
	}
	cr_expect_eq(n_spot, 1);

	/* Usage: 2. An EC2 error: 1, with EC2's code on stderr. */
	free(table);
	table = NULL;
	cr_assert_eq(corralctl(&table, &err, "table", "launch"), 2);
	free(err);
	free(table);
	err = table = NULL;
	cr_assert_eq(hx_moto_fault(moto, "DescribeInstances", "error", -1, 0), 0);
	cr_assert_eq(corralctl(&table, &err, "table", "describe"), 1);
	cr_assert(strstr(err, "InvalidParameterValue"), "%s", err);
	cr_assert_null(strstr(err, hx_moto_secret_access_key(moto)));
}
