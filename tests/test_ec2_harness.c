/* test_ec2_harness.c — the EC2 harness itself: moto_server with SigV4
 * checking behind tests/ec2proxy.py. corral's own EC2 client is not used
 * here: requests are signed by botocore (python, run with hx_run), so these
 * tests prove the harness, not the client. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"

#define CALL_USEC (60 * USEC_PER_SEC)
#define AMI "ami-760aaa0f"

/* One EC2 Query call signed by botocore: argv is URL KEY SECRET TOKEN
 * NAME=VALUE...; KEY "-" sends it unsigned, TOKEN "-" means none. Prints
 * {"status", "body", "ms"}; status 0 when the connection closed without a
 * response. */
static const char client_py[] =
	"import http.client, json, sys, time, urllib.error, urllib.parse, urllib.request\n"
	"from botocore.auth import SigV4Auth\n"
	"from botocore.awsrequest import AWSRequest\n"
	"from botocore.credentials import Credentials\n"
	"url, key, secret, token = sys.argv[1:5]\n"
	"params = dict(a.split('=', 1) for a in sys.argv[5:])\n"
	"params.setdefault('Version', '2016-11-15')\n"
	"body = urllib.parse.urlencode(params)\n"
	"req = AWSRequest(method='POST', url=url, data=body,\n"
	"                 headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})\n"
	"if key != '-':\n"
	"    creds = Credentials(key, secret, None if token == '-' else token)\n"
	"    SigV4Auth(creds, 'ec2', 'us-east-1').add_auth(req)\n"
	"headers = dict(req.prepare().headers)\n"
	"opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
	"t0 = time.monotonic()\n"
	"try:\n"
	"    with opener.open(urllib.request.Request(url, data=body.encode(), headers=headers), timeout=30) as r:\n"
	"        status, text = r.status, r.read().decode()\n"
	"except urllib.error.HTTPError as e:\n"
	"    status, text = e.code, e.read().decode()\n"
	"except (OSError, http.client.HTTPException) as e:\n"
	"    status, text = 0, str(e)\n"
	"print(json.dumps({'status': status, 'body': text, 'ms': (time.monotonic() - t0) * 1000}))\n";

/* Runs client_py against url with the given credentials and NULL-terminated
 * parameters ("Action=...", ...); returns its JSON result (new reference). */
static json_t *call_url(const char *url, const char *key, const char *secret, const char *token, ...) {
	const char *argv[32] = { hx_tool("CORRAL_PYTHON3", "python3"), "-c", client_py, url,
	                         key ?: "-", secret ?: "-", token ?: "-" };
	size_t n = 7;
	_cleanup_free_ char *out = NULL;
	json_error_t jerr;
	va_list ap;

	va_start(ap, token);
	for (const char *p; (p = va_arg(ap, const char *)) && n < ELEMENTSOF(argv) - 1;)
		argv[n++] = p;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(hx_run(&out, CALL_USEC, (char *const *) argv, NULL), 0, "the botocore client failed");
	json_t *j = json_loads(out, 0, &jerr);
	cr_assert_not_null(j, "client output is not JSON (%s): %s", jerr.text, out);
	return j;
}

#define call(m, ...) call_url(hx_moto_endpoint(m), hx_moto_access_key_id(m), \
                              hx_moto_secret_access_key(m), NULL, __VA_ARGS__, NULL)

static int status_of(json_t *r) {
	return (int) json_integer_value(json_object_get(r, "status"));
}

static const char *body_of(json_t *r) {
	return json_string_value(json_object_get(r, "body"));
}

static double ms_of(json_t *r) {
	return json_number_value(json_object_get(r, "ms"));
}

/* The error envelope AWS uses: <Response><Errors><Error><Code>code</Code>. */
static void assert_aws_error(json_t *r, int status, const char *code, const char *message_part) {
	_cleanup_free_ char *want = NULL;

	cr_assert_eq(status_of(r), status, "status %d, want %d: %s", status_of(r), status, body_of(r));
	cr_assert_geq(asprintf(&want, "<Response><Errors><Error><Code>%s</Code><Message>", code), 0);
	cr_assert_not_null(strstr(body_of(r), want), "no %s envelope in: %s", code, body_of(r));
	cr_assert_not_null(strstr(body_of(r), "</Message></Error></Errors><RequestID>"), "%s", body_of(r));
	if (message_part)
		cr_assert_not_null(strstr(body_of(r), message_part), "%s", body_of(r));
}

static json_t *log_entry(hx_moto *m, size_t i, size_t want_len) {
	json_t *log = NULL;

	cr_assert_eq(hx_moto_log(m, &log), 0);
	cr_assert(json_is_array(log));
	cr_assert_eq(json_array_size(log), want_len, "log has %zu entries, want %zu",
	             json_array_size(log), want_len);
	json_t *e = json_incref(json_array_get(log, i));
	json_decref(log);
	return e;
}

static const char *str_at(json_t *o, const char *key) {
	return json_string_value(json_object_get(o, key));
}

static const char *param(json_t *entry, const char *name) {
	return json_string_value(json_object_get(json_object_get(entry, "params"), name));
}

/* ---- IMDS: method, path, one optional header ---- */

typedef struct http_reply {
	long status;
	char *body;
} http_reply;

static http_reply imds(hx_moto *m, const char *method, const char *path, const char *header) {
	http_reply r = {};
	_cleanup_free_ char *url = NULL;

	cr_assert_geq(asprintf(&url, "%s%s", hx_moto_imds_url(m), path), 0);
	hx_http_req rq = { .method = method, .url = url, .header = header, .timeout_ms = 10000 };
	cr_assert_eq(hx_http(&rq, &r.body, &r.status), 0, "%s %s failed", method, path);
	return r;
}

static char *imds_token(hx_moto *m) {
	http_reply r = imds(m, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60");

	cr_assert_eq(r.status, 200, "token PUT: %ld %s", r.status, r.body);
	cr_assert_gt(strlen(r.body), 16);
	return r.body;
}

static json_t *imds_credentials(hx_moto *m, const char *token) {
	_cleanup_free_ char *hdr = NULL;
	json_error_t jerr;

	cr_assert_geq(asprintf(&hdr, "X-aws-ec2-metadata-token: %s", token), 0);
	http_reply r = imds(m, "GET", "/latest/meta-data/iam/security-credentials/corral-node", hdr);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	json_t *j = json_loads(r.body, 0, &jerr);
	cr_assert_not_null(j, "%s: %s", jerr.text, r.body);
	free(r.body);
	return j;
}

/* "2026-11-26T18:12:48Z" -> seconds since the epoch. */
static time_t parse_iso(const char *s) {
	struct tm tm = {};

	cr_assert_not_null(s);
	cr_assert_not_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm), "bad time %s", s);
	return timegm(&tm);
}

static int64_t imds_count(hx_moto *m, const char *what) {
	json_auto_t *st = NULL;

	cr_assert_eq(hx_moto_imds_state(m, &st), 0);
	return json_integer_value(json_object_get(json_object_get(st, "requests"), what));
}

/* ---- signatures ---- */

Test(ec2_harness, signed_call_succeeds_and_is_logged, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);
	cr_assert(strncmp(hx_moto_endpoint(m), "http://127.0.0.1:", 17) == 0);
	cr_assert_str_eq(hx_moto_region(m), "us-east-1");
	cr_assert(strncmp(hx_moto_access_key_id(m), "AKIA", 4) == 0);
	cr_assert_gt(hx_moto_server_pid(m), 0);
	cr_assert_gt(hx_moto_proxy_pid(m), 0);

	json_auto_t *r = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(r), 200, "%s", body_of(r));
	cr_assert_not_null(strstr(body_of(r), "<DescribeInstancesResponse"), "%s", body_of(r));

	json_auto_t *e = log_entry(m, 0, 1);
	cr_assert_str_eq(str_at(e, "action"), "DescribeInstances");
	cr_assert_str_eq(param(e, "Version"), "2016-11-15");
	cr_assert_str_eq(str_at(e, "access_key_id"), hx_moto_access_key_id(m));
	cr_assert(json_is_null(json_object_get(e, "fault")));
	cr_assert(json_is_null(json_object_get(e, "security_token")));
	cr_assert_eq(json_integer_value(json_object_get(e, "status")), 200);
	cr_assert_gt(json_number_value(json_object_get(e, "time")), 1.6e9);

	/* The same key works from a credentials file's values and env. */
	char *const *env = hx_moto_env(m);
	cr_assert_str_eq(env[0] + strlen("AWS_ACCESS_KEY_ID="), hx_moto_access_key_id(m));
	_cleanup_free_ char *path = NULL, *text = NULL;
	cr_assert_geq(asprintf(&path, "%s/credentials", hx_moto_dir(m)), 0);
	cr_assert_eq(hx_moto_write_credentials(m, path), 0);
	text = hx_read_file(path, NULL);
	cr_assert_not_null(strstr(text, hx_moto_secret_access_key(m)));
}

Test(ec2_harness, signature_checking_is_on, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;
	const char *key;

	cr_assert_eq(hx_moto_start(&m), 0);
	key = hx_moto_access_key_id(m);

	/* Right key id, wrong secret: moto's own auth error (its envelope is
	 * <ErrorResponse>, not AWS's <Response>). */
	json_auto_t *wrong = call_url(hx_moto_endpoint(m), key, "not-the-secret", NULL,
	                              "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(wrong), 401, "%s", body_of(wrong));
	cr_assert_not_null(strstr(body_of(wrong), "<Code>AuthFailure</Code>"), "%s", body_of(wrong));

	/* Same straight to moto: the 401 is moto's, not the proxy's. */
	json_auto_t *direct = call_url(hx_moto_server_url(m), key, "not-the-secret", NULL,
	                               "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(direct), 401, "%s", body_of(direct));

	/* A key moto never issued. */
	json_auto_t *unknown = call_url(hx_moto_endpoint(m), "AKIAIOSFODNN7EXAMPLE",
	                                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
	                                "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(unknown), 401, "%s", body_of(unknown));

	/* A long-term (AKIA) key with a session token: moto refuses it. */
	json_auto_t *token = call_url(hx_moto_endpoint(m), key, hx_moto_secret_access_key(m), "SESSIONTOKEN",
	                              "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(token), 401, "%s", body_of(token));

	/* Unsigned: rejected, but as a 500 HTML page (moto looks up the
	 * Authorization header and fails), not AWS's 401. */
	json_auto_t *unsigned_ = call_url(hx_moto_endpoint(m), NULL, NULL, NULL, "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(unsigned_), 500, "%s", body_of(unsigned_));
	cr_assert_null(strstr(body_of(unsigned_), "DescribeInstancesResponse"));

	/* And the good key still works: nothing above consumed anything. */
	json_auto_t *ok = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(ok), 200, "%s", body_of(ok));

	/* Five through the proxy (the direct call bypassed it). */
	json_auto_t *e = log_entry(m, 2, 5);
	cr_assert_str_eq(str_at(e, "security_token"), "SESSIONTOKEN");
	json_auto_t *u = log_entry(m, 3, 5);
	cr_assert(json_is_null(json_object_get(u, "access_key_id")));
	json_auto_t *last = log_entry(m, 4, 5);
	cr_assert_str_eq(str_at(last, "access_key_id"), key);
	cr_assert_eq(json_integer_value(json_object_get(last, "status")), 200);
}

/* libcurl's own SigV4 (what corral's client is built on): the request as
 * libcurl sends it, keep-alive and all, verifies at moto through the proxy.
 * One extra header, signed along (CURLOPT_AWS_SIGV4 signs every header set). */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata) {
	return size * nmemb;
}

static long curl_sigv4(const char *url, const char *key, const char *secret, const char *extra) {
	_cleanup_free_ char *userpwd = NULL;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
	CURL *c = curl_easy_init();
	long status = 0;

	cr_assert(c && h);
	if (extra)
		cr_assert_not_null(curl_slist_append(h, extra));
	cr_assert_geq(asprintf(&userpwd, "%s:%s", key, secret), 0);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:ec2");
	curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "Action=DescribeInstances&Version=2016-11-15");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return status;
}

Test(ec2_harness, libcurl_sigv4_passes_through, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;
	const char *k, *s;

	cr_assert_eq(hx_moto_start(&m), 0);
	k = hx_moto_access_key_id(m);
	s = hx_moto_secret_access_key(m);
	cr_assert_eq(curl_sigv4(hx_moto_endpoint(m), k, s, NULL), 200);
	cr_assert_eq(curl_sigv4(hx_moto_endpoint(m), k, "wrong", NULL), 401);
	/* Extra signed headers reach moto unchanged ... */
	cr_assert_eq(curl_sigv4(hx_moto_endpoint(m), k, s, "X-Corral-Test: yes"), 200);
	/* ... but moto's server eats Expect, so a signature over it fails at
	 * moto itself, proxy or not. (EC2.md says not to sign it anyway.) */
	cr_assert_eq(curl_sigv4(hx_moto_server_url(m), k, s, "Expect: 100-continue"), 401);
	cr_assert_eq(curl_sigv4(hx_moto_endpoint(m), k, s, "Expect: 100-continue"), 401);
}

/* ---- faults ---- */

Test(ec2_harness, faults_fire_count_times_then_pass_through, .timeout = 180) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);

	/* Throttling twice, for DescribeInstances only. */
	cr_assert_eq(hx_moto_fault(m, "DescribeInstances", "throttle", 2, 0), 0);
	json_auto_t *other = call(m, "Action=DescribeInstanceStatus");
	cr_assert_eq(status_of(other), 200, "%s", body_of(other));
	for (int i = 0; i < 2; i++) {
		json_auto_t *r = call(m, "Action=DescribeInstances");
		assert_aws_error(r, 503, "RequestLimitExceeded", "Request limit exceeded.");
	}
	json_auto_t *through = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(through), 200, "%s", body_of(through));

	/* Each kind once, in order, for any action. */
	cr_assert_eq(hx_moto_set_faults(m,
		"[{\"action\":\"RunInstances\",\"kind\":\"capacity\"},"
		" {\"action\":\"RunInstances\",\"kind\":\"spot-capacity\"},"
		" {\"action\":\"*\",\"kind\":\"internal\"},"
		" {\"action\":\"*\",\"kind\":\"http500\"},"
		" {\"action\":\"*\",\"kind\":\"drop\"},"
		" {\"action\":\"*\",\"kind\":\"error\",\"status\":400,\"code\":\"IdempotentParameterMismatch\","
		"  \"message\":\"Arguments on this idempotent request are inconsistent\"}]"), 0);
	json_auto_t *cap = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=1", "MaxCount=1",
	                        "InstanceType=c5.large");
	assert_aws_error(cap, 500, "InsufficientInstanceCapacity",
	                 "We currently do not have sufficient c5.large capacity in the Availability Zone");
	json_auto_t *spot = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=1", "MaxCount=1");
	assert_aws_error(spot, 500, "InsufficientInstanceCapacity",
	                 "There is no Spot capacity available that matches your request.");
	json_auto_t *internal = call(m, "Action=DescribeInstances");
	assert_aws_error(internal, 500, "InternalError", "An internal error has occurred.");
	json_auto_t *html = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(html), 500);
	cr_assert(strncmp(body_of(html), "<html>", 6) == 0, "%s", body_of(html));
	json_auto_t *dropped = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(dropped), 0, "%d %s", status_of(dropped), body_of(dropped));
	json_auto_t *custom = call(m, "Action=DescribeInstances");
	assert_aws_error(custom, 400, "IdempotentParameterMismatch", "inconsistent");
	json_auto_t *after = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(after), 200, "%s", body_of(after));

	/* The log says which calls got which fault. */
	json_t *log = NULL;
	cr_assert_eq(hx_moto_log(m, &log), 0);
	cr_assert_eq(json_array_size(log), 11);
	const char *want[] = { NULL, "throttle", "throttle", NULL, "capacity", "spot-capacity", "internal",
	                       "http500", "drop", "error", NULL };
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		json_t *f = json_object_get(json_array_get(log, i), "fault");
		if (want[i])
			cr_assert_str_eq(json_string_value(f), want[i], "entry %zu", i);
		else
			cr_assert(json_is_null(f), "entry %zu", i);
	}
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(log, 8), "status")), 0);
	json_decref(log);

	/* The fault list is empty again; a bad kind is refused. */
	_cleanup_free_ char *text = NULL;
	long code = 0;
	cr_assert_eq(hx_moto_request(m, "GET", "/_proxy/faults", NULL, &text, &code), 0);
	cr_assert_eq(code, 200);
	cr_assert_not_null(strstr(text, "\"count\": 0"), "%s", text);
	free(text);
	text = NULL;
	cr_assert_eq(hx_moto_request(m, "POST", "/_proxy/faults", "[{\"kind\":\"nope\"}]", &text, &code), 0);
	cr_assert_eq(code, 400, "%ld %s", code, text);

	/* Unlimited until reset; reset clears faults and log. */
	cr_assert_eq(hx_moto_fault(m, "*", "throttle", -1, 0), 0);
	for (int i = 0; i < 3; i++) {
		json_auto_t *r = call(m, "Action=DescribeInstances");
		cr_assert_eq(status_of(r), 503);
	}
	cr_assert_eq(hx_moto_reset(m), 0);
	json_auto_t *clean = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(clean), 200, "%s", body_of(clean));
	json_auto_t *only = log_entry(m, 0, 1);
	cr_assert(json_is_null(json_object_get(only, "fault")));
}

Test(ec2_harness, retried_run_instances_logged_with_its_client_token, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);
	cr_assert_eq(hx_moto_fault(m, "RunInstances", "throttle", 1, 0), 0);
	for (int i = 0; i < 2; i++) {
		json_auto_t *r = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=1", "MaxCount=1",
		                      "ClientToken=as-7f3c2a10-0001", "TagSpecification.1.ResourceType=instance",
		                      "TagSpecification.1.Tag.1.Key=as:pool", "TagSpecification.1.Tag.1.Value=builders");
		cr_assert_eq(status_of(r), i == 0 ? 503 : 200, "attempt %d: %s", i, body_of(r));
	}
	json_auto_t *first = log_entry(m, 0, 2), *second = log_entry(m, 1, 2);
	cr_assert_str_eq(param(first, "ClientToken"), "as-7f3c2a10-0001");
	cr_assert_str_eq(param(second, "ClientToken"), param(first, "ClientToken"));
	cr_assert_str_eq(param(second, "TagSpecification.1.Tag.1.Key"), "as:pool");
	cr_assert_str_eq(str_at(first, "fault"), "throttle");
	cr_assert_eq(json_integer_value(json_object_get(second, "status")), 200);
	cr_assert_str_eq(str_at(second, "access_key_id"), hx_moto_access_key_id(m));
}

Test(ec2_harness, slow_responses_are_slow, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);
	cr_assert_eq(hx_moto_fault(m, "DescribeInstances", "slow", 1, 700), 0);
	json_auto_t *slow = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(slow), 200, "%s", body_of(slow));      /* delayed, then forwarded */
	cr_assert_geq(ms_of(slow), 700.0);
	cr_assert_lt(ms_of(slow), 700.0 + 10000.0);
	json_auto_t *e = log_entry(m, 0, 1);
	cr_assert_str_eq(str_at(e, "fault"), "slow");
	cr_assert_geq(json_number_value(json_object_get(e, "duration_ms")), 700.0);

	json_auto_t *fast = call(m, "Action=DescribeInstances");
	cr_assert_eq(status_of(fast), 200);
	cr_assert_lt(ms_of(fast), 700.0, "%.0f ms without a fault", ms_of(fast));
}

/* ---- IMDSv2 ---- */

Test(ec2_harness, imds_token_flow_and_credentials, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;
	_cleanup_free_ char *token = NULL, *hdr = NULL;
	http_reply r;

	cr_assert_eq(hx_moto_start(&m), 0);
	cr_assert_str_eq(hx_moto_imds_url(m), strndupa(hx_moto_endpoint(m), strlen(hx_moto_endpoint(m)) - 1));

	/* No token, a bad token, a PUT without a TTL. */
	r = imds(m, "GET", "/latest/meta-data/iam/security-credentials/", NULL);
	cr_assert_eq(r.status, 401);
	free(r.body);
	r = imds(m, "GET", "/latest/meta-data/placement/region", "X-aws-ec2-metadata-token: forged");
	cr_assert_eq(r.status, 401);
	free(r.body);
	r = imds(m, "PUT", "/latest/api/token", NULL);
	cr_assert_eq(r.status, 400);
	free(r.body);

	token = imds_token(m);
	cr_assert_geq(asprintf(&hdr, "X-aws-ec2-metadata-token: %s", token), 0);
	r = imds(m, "GET", "/latest/meta-data/iam/security-credentials/", hdr);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "corral-node");
	free(r.body);
	r = imds(m, "GET", "/latest/meta-data/placement/region", hdr);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "us-east-1");
	free(r.body);
	r = imds(m, "GET", "/latest/meta-data/no/such/thing", hdr);
	cr_assert_eq(r.status, 404);
	free(r.body);

	json_auto_t *c = imds_credentials(m, token);
	cr_assert_str_eq(str_at(c, "Code"), "Success");
	cr_assert_str_eq(str_at(c, "Type"), "AWS-HMAC");
	cr_assert(strncmp(str_at(c, "AccessKeyId"), "ASIA", 4) == 0, "%s", str_at(c, "AccessKeyId"));
	cr_assert_gt(strlen(str_at(c, "SecretAccessKey")), 20);
	cr_assert_gt(strlen(str_at(c, "Token")), 20);
	time_t now = time(NULL);
	cr_assert_gt(parse_iso(str_at(c, "Expiration")), now + 3600);
	cr_assert_leq(labs((long) (parse_iso(str_at(c, "LastUpdated")) - now)), 60);

	/* moto takes these credentials with their session token, and checks
	 * the token: without it, or with another one, 401. */
	json_auto_t *ok = call_url(hx_moto_endpoint(m), str_at(c, "AccessKeyId"), str_at(c, "SecretAccessKey"),
	                           str_at(c, "Token"), "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(ok), 200, "%s", body_of(ok));
	json_auto_t *no_token = call_url(hx_moto_endpoint(m), str_at(c, "AccessKeyId"),
	                                 str_at(c, "SecretAccessKey"), NULL, "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(no_token), 401, "%s", body_of(no_token));
	json_auto_t *bad_token = call_url(hx_moto_endpoint(m), str_at(c, "AccessKeyId"),
	                                  str_at(c, "SecretAccessKey"), "not-the-token", "Action=DescribeInstances", NULL);
	cr_assert_eq(status_of(bad_token), 401, "%s", body_of(bad_token));
	json_auto_t *e = log_entry(m, 0, 3);
	cr_assert_str_eq(str_at(e, "access_key_id"), str_at(c, "AccessKeyId"));
	cr_assert_str_eq(str_at(e, "security_token"), str_at(c, "Token"));

	/* Counters: 2 token PUTs (one refused), 1 role name, 1 credentials,
	 * 2 refused GETs. */
	cr_assert_eq(imds_count(m, "token"), 2);
	cr_assert_eq(imds_count(m, "role"), 1);
	cr_assert_eq(imds_count(m, "credentials"), 1);
	cr_assert_eq(imds_count(m, "unauthorized"), 2);

	/* No IMDS at all. */
	cr_assert_eq(hx_moto_imds_control(m, "{\"available\": false}", NULL), 0);
	r = imds(m, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60");
	cr_assert_eq(r.status, 404);
	free(r.body);
}

Test(ec2_harness, imds_expiry_and_rotation, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;
	_cleanup_free_ char *token = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);
	token = imds_token(m);
	json_auto_t *before = imds_credentials(m, token);

	/* A short expiry, same key. */
	json_auto_t *set = NULL;
	cr_assert_eq(hx_moto_imds_control(m, "{\"expires_in\": 5}", &set), 0);
	json_auto_t *soon = imds_credentials(m, token);
	time_t now = time(NULL);
	cr_assert_str_eq(str_at(soon, "AccessKeyId"), str_at(before, "AccessKeyId"));
	cr_assert_str_eq(str_at(soon, "Expiration"), str_at(set, "Expiration"));
	cr_assert_geq(parse_iso(str_at(soon, "Expiration")), now + 5 - 2);
	cr_assert_leq(parse_iso(str_at(soon, "Expiration")), now + 5 + 2);

	/* Rotation: a new key, secret and token that moto accepts; the log
	 * tells which key signed each call. */
	json_auto_t *rotated = NULL;
	cr_assert_eq(hx_moto_imds_control(m, "{\"rotate\": true, \"expires_in\": 30}", &rotated), 0);
	json_auto_t *after = imds_credentials(m, token);
	cr_assert_str_neq(str_at(after, "AccessKeyId"), str_at(before, "AccessKeyId"));
	cr_assert_str_neq(str_at(after, "Token"), str_at(before, "Token"));
	cr_assert_str_eq(str_at(after, "AccessKeyId"), str_at(rotated, "AccessKeyId"));
	cr_assert_leq(parse_iso(str_at(after, "Expiration")), time(NULL) + 30 + 2);

	json_auto_t *old = call_url(hx_moto_endpoint(m), str_at(before, "AccessKeyId"),
	                            str_at(before, "SecretAccessKey"), str_at(before, "Token"),
	                            "Action=DescribeInstances", NULL);
	json_auto_t *new = call_url(hx_moto_endpoint(m), str_at(after, "AccessKeyId"),
	                            str_at(after, "SecretAccessKey"), str_at(after, "Token"),
	                            "Action=DescribeInstances", NULL);
	/* moto keeps old assumed-role keys valid (it enforces no expiry). */
	cr_assert_eq(status_of(old), 200, "%s", body_of(old));
	cr_assert_eq(status_of(new), 200, "%s", body_of(new));
	json_auto_t *e0 = log_entry(m, 0, 2), *e1 = log_entry(m, 1, 2);
	cr_assert_str_eq(str_at(e0, "access_key_id"), str_at(before, "AccessKeyId"));
	cr_assert_str_eq(str_at(e1, "access_key_id"), str_at(after, "AccessKeyId"));
	cr_assert_eq(imds_count(m, "credentials"), 3);
}

/* ---- what moto does not model (docs/testing.md lists these) ---- */

Test(ec2_harness, moto_gaps_are_as_documented, .timeout = 120) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;

	cr_assert_eq(hx_moto_start(&m), 0);

	/* The same ClientToken launches twice: no idempotency. */
	json_auto_t *a = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=1", "MaxCount=1",
	                      "ClientToken=same-token");
	json_auto_t *b = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=1", "MaxCount=1",
	                      "ClientToken=same-token");
	cr_assert_eq(status_of(a), 200, "%s", body_of(a));
	cr_assert_eq(status_of(b), 200, "%s", body_of(b));
	const char *ra = strstr(body_of(a), "<reservationId>"), *rb = strstr(body_of(b), "<reservationId>");
	cr_assert(ra && rb);
	cr_assert(strncmp(ra, rb, 40) != 0, "moto now honours ClientToken: update docs/testing.md");

	/* Paging goes by reservation: one reservation of 6 instances comes
	 * back whole under MaxResults=5 (AWS would cut it at 5). */
	json_auto_t *six = call(m, "Action=RunInstances", "ImageId=" AMI, "MinCount=6", "MaxCount=6");
	cr_assert_eq(status_of(six), 200, "%s", body_of(six));
	json_auto_t *page = call(m, "Action=DescribeInstances", "MaxResults=5");
	cr_assert_eq(status_of(page), 200, "%s", body_of(page));
	size_t n = 0;
	for (const char *p = body_of(page); (p = strstr(p, "<instanceId>")); p++)
		n++;
	cr_assert_gt(n, 5, "moto now pages by instance (%zu on a page of 5): update docs/testing.md", n);

	/* Instances are running at once: no pending state to wait through. */
	cr_assert_not_null(strstr(body_of(page), "<name>running</name>"), "%s", body_of(page));
	cr_assert_null(strstr(body_of(page), "<name>pending</name>"), "%s", body_of(page));

	/* DescribeReservedInstances is not implemented: a 500 HTML page. */
	json_auto_t *ri = call(m, "Action=DescribeReservedInstances");
	cr_assert_eq(status_of(ri), 500, "moto now implements DescribeReservedInstances: %s", body_of(ri));
}

/* ---- lifecycle ---- */

static bool pid_gone(pid_t pid) {
	return kill(pid, 0) < 0 && errno == ESRCH;
}

Test(ec2_harness, free_leaves_nothing_behind, .timeout = 120) {
	hx_moto *m = NULL;
	_cleanup_free_ char *dir = NULL;
	struct stat st;

	cr_assert_eq(hx_moto_start(&m), 0);
	pid_t server = hx_moto_server_pid(m), proxy = hx_moto_proxy_pid(m);
	dir = strdup(hx_moto_dir(m));
	cr_assert(!pid_gone(server) && !pid_gone(proxy));
	cr_assert_eq(stat(dir, &st), 0);

	uint64_t t0 = hx_now_usec();
	cr_assert_null(hx_moto_free(m));
	cr_assert_lt(hx_now_usec() - t0, 10 * USEC_PER_SEC, "SIGTERM should be enough for both");
	cr_assert(pid_gone(server), "moto_server (pid %d) is still there", (int) server);
	cr_assert(pid_gone(proxy), "ec2proxy.py (pid %d) is still there", (int) proxy);
	if (!getenv("CORRAL_KEEP_TMP") || !*getenv("CORRAL_KEEP_TMP"))
		cr_assert(stat(dir, &st) < 0 && errno == ENOENT, "%s is still there", dir);
	cr_assert_null(hx_moto_free(NULL));
}

Test(ec2_harness, missing_tools_fail_with_a_message, .timeout = 60) {
	hx_moto *m = NULL;

	/* Criterion runs each test in its own process: the environment
	 * changes stay here. */
	setenv("CORRAL_MOTO_SERVER", "/nonexistent/moto_server", 1);
	cr_assert_eq(hx_moto_start(&m), -ENOENT);
	cr_assert_null(m);
	unsetenv("CORRAL_MOTO_SERVER");
	setenv("CORRAL_PYTHON3", "/nonexistent/python3", 1);
	cr_assert_eq(hx_moto_start(&m), -ENOENT);
	cr_assert_null(m);
}
