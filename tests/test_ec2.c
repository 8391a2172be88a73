/* test_ec2.c — corral's EC2 client against moto (signature checking on)
 * behind the fault proxy (tests/ec2proxy.py): signing, retries, errors,
 * credentials from the environment, a credentials file and IMDSv2. */
#include <criterion/criterion.h>
#include <jansson.h>

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
