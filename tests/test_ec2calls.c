/* test_ec2calls.c — the typed EC2 calls' pure parts (src/ec2/params.c, calls.c): the
 * Query parameters each builder makes, compared as form bodies (after the
 * client's own encoding, ec2_form_body) with what botocore's EC2
 * serializer makes of the same request (tests/ec2_serialize.py, one python
 * run for every case); what the builders refuse; the ids named in an
 * InvalidInstanceID.NotFound message. No network. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "b64.h"
#include "ec2.h"
#include "harness.h"

/* ---- form bodies ------------------------------------------------------------------ */

typedef struct pair {
	char *name, *value;
} pair;

static int hexval(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;      /* lower-case hex is not what we send */
}

static char *pct_decode(const char *s, size_t len) {
	char *out = malloc(len + 1), *o = out;
	cr_assert_not_null(out);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			cr_assert(i + 2 < len + 0 || i + 2 <= len - 1 + 1, "truncated escape in %.*s", (int) len, s);
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			cr_assert(hi >= 0 && lo >= 0, "bad escape in %.*s", (int) len, s);
			*o++ = (char) (hi * 16 + lo);
			i += 2;
		} else {
			/* Strict RFC 3986: only unreserved bytes go literal. */
			cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~", s[i]),
				  "byte '%c' not encoded in %.*s", s[i], (int) len, s);
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/* Our body for (action, params), decoded into pairs. */
static size_t our_pairs(const char *action, const ec2_params *p, pair **out) {
	_cleanup_free_ char *body = NULL;
	size_t len = 0, n = 0;
	pair *v = NULL;

	cr_assert_eq(ec2_form_body(action, p->items, p->n, &body, &len), 0);
	cr_assert_eq(strlen(body), len);
	for (const char *s = body; *s;) {
		size_t k = strcspn(s, "&");
		const char *eq = memchr(s, '=', k);
		cr_assert_not_null(eq, "pair without '=' in %s", body);
		v = realloc(v, (n + 1) * sizeof *v);
		cr_assert_not_null(v);
		v[n].name = pct_decode(s, (size_t) (eq - s));
		v[n].value = pct_decode(eq + 1, k - (size_t) (eq - s) - 1);
		n++;
		s += k;
		if (*s == '&')
			s++;
	}
	*out = v;
	return n;
}

static void pairs_free(pair *v, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

/* ---- the cases ------------------------------------------------------------------------ */

#define CASES_MAX 32

typedef struct bcase {
	const char *what;
	const char *action;
	ec2_params params;
	json_t *input;          /* botocore's shape */
} bcase;

static bcase cases[CASES_MAX];
static size_t n_cases;

static void add_case(const char *what, const char *action, int r, ec2_params *p, json_t *input) {
	cr_assert_eq(r, 0, "%s: builder returned %d", what, r);
	cr_assert_not_null(input, "%s: json_pack failed", what);
	cr_assert_lt(n_cases, CASES_MAX);
	cases[n_cases++] = (bcase){ .what = what, .action = action, .params = *p, .input = input };
	*p = (ec2_params){};
}

static const unsigned char USER_DATA[] = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo \"a+b=c&d\" > /x']\n\x01\xff\x80";

static void build_cases(void) {
	ec2_params p = {};
	int r;

	{
		ec2_launch l = { .launch_template_id = "lt-0123456789abcdef0", .count = 1, .client_token = "tok-1" };
		r = ec2_params_run_instances(&l, &p);
		add_case("run: template id, defaults", "RunInstances", r, &p,
			 json_pack("{s:{s:s,s:s},s:i,s:i,s:s}", "LaunchTemplate", "LaunchTemplateId",
				   "lt-0123456789abcdef0", "Version", "$Latest", "MinCount", 1, "MaxCount", 1,
				   "ClientToken", "tok-1"));
	}
	{
		static const ec2_kv tags[] = {
			{ "corral:cluster", "t" }, { "Name", "a b/c=d&e+f%g ü" }, { "empty", "" },
		};
		_cleanup_free_ char *ud = b64_encode(USER_DATA, sizeof USER_DATA - 1);
		ec2_launch l = {
			.launch_template_name = "corral-workers",
			.launch_template_version = "7",
			.instance_type = "c5.xlarge",
			.subnet_id = "subnet-0a1b2c3d",
			.count = 120,
			.tags = tags,
			.n_tags = ELEMENTSOF(tags),
			.user_data = USER_DATA,
			.user_data_len = sizeof USER_DATA - 1,
			.spot = true,
			.client_token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		};
		r = ec2_params_run_instances(&l, &p);
		add_case("run: everything, spot", "RunInstances", r, &p,
			 json_pack("{s:{s:s,s:s},s:s,s:s,s:i,s:i,s:s,s:s,s:[{s:s,s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}],"
				   "s:{s:s,s:{s:s,s:s}}}",
				   "LaunchTemplate", "LaunchTemplateName", "corral-workers", "Version", "7",
				   "InstanceType", "c5.xlarge", "SubnetId", "subnet-0a1b2c3d", "MinCount", 120,
				   "MaxCount", 120, "ClientToken", l.client_token, "UserData", ud,
				   "TagSpecifications", "ResourceType", "instance", "Tags", "Key", "corral:cluster",
				   "Value", "t", "Key", "Name", "Value", "a b/c=d&e+f%g ü", "Key", "empty", "Value", "",
				   "InstanceMarketOptions", "MarketType", "spot", "SpotOptions", "SpotInstanceType",
				   "one-time", "InstanceInterruptionBehavior", "terminate"));
	}
	{
		static const char *const cl[] = { "t" }, *const st[] = { "pending", "running" };
		const ec2_filter f[] = { { "tag:corral:cluster", cl, 1 }, { "instance-state-name", st, 2 } };
		r = ec2_params_describe_instances(f, 2, 5, "r-0abc +/=token", &p);
		add_case("describe instances: filters, paging", "DescribeInstances", r, &p,
			 json_pack("{s:[{s:s,s:[s]},{s:s,s:[s,s]}],s:i,s:s}", "Filters", "Name", "tag:corral:cluster",
				   "Values", "t", "Name", "instance-state-name", "Values", "pending", "running",
				   "MaxResults", 5, "NextToken", "r-0abc +/=token"));
	}
	{
		r = ec2_params_describe_instances(NULL, 0, 0, NULL, &p);
		add_case("describe instances: bare", "DescribeInstances", r, &p, json_object());
	}
	{
		static const char *const ids[] = { "i-0123456789abcdef0", "i-1", "i-2" };
		r = ec2_params_terminate(ids, 3, &p);
		add_case("terminate", "TerminateInstances", r, &p,
			 json_pack("{s:[s,s,s]}", "InstanceIds", ids[0], ids[1], ids[2]));
	}
	{
		static const char *const ids[] = { "i-0123456789abcdef0", "i-1" };
		r = ec2_params_stop(ids, 2, &p);
		add_case("stop", "StopInstances", r, &p, json_pack("{s:[s,s]}", "InstanceIds", ids[0], ids[1]));
		r = ec2_params_start(ids, 2, &p);
		add_case("start", "StartInstances", r, &p, json_pack("{s:[s,s]}", "InstanceIds", ids[0], ids[1]));
	}
	{
		static const char *const ids[] = { "i-a", "i-b" };
		static const ec2_kv tags[] = { { "corral:state", "draining" }, { "x", "" } };
		r = ec2_params_create_tags(ids, 2, tags, 2, &p);
		add_case("create tags", "CreateTags", r, &p,
			 json_pack("{s:[s,s],s:[{s:s,s:s},{s:s,s:s}]}", "Resources", "i-a", "i-b", "Tags", "Key",
				   "corral:state", "Value", "draining", "Key", "x", "Value", ""));
	}
	{
		static const char *const ids[] = { "i-a" };
		static const ec2_kv tags[] = { { "corral:state", "draining" }, { "any", NULL } };
		r = ec2_params_delete_tags(ids, 1, tags, 2, &p);
		add_case("delete tags", "DeleteTags", r, &p,
			 json_pack("{s:[s],s:[{s:s,s:s},{s:s}]}", "Resources", "i-a", "Tags", "Key", "corral:state",
				   "Value", "draining", "Key", "any"));
	}
	{
		static const char *const ids[] = { "i-a", "i-b" };
		r = ec2_params_describe_instance_status(ids, 2, true, 1000, NULL, &p);
		add_case("instance status: ids (no MaxResults)", "DescribeInstanceStatus", r, &p,
			 json_pack("{s:[s,s],s:b}", "InstanceIds", "i-a", "i-b", "IncludeAllInstances", 1));
	}
	{
		r = ec2_params_describe_instance_status(NULL, 0, false, 1000, "tok", &p);
		add_case("instance status: paged", "DescribeInstanceStatus", r, &p,
			 json_pack("{s:i,s:s}", "MaxResults", 1000, "NextToken", "tok"));
	}
	{
		static const char *const active[] = { "active" };
		const ec2_filter f[] = { { "state", active, 1 } };
		r = ec2_params_describe_reserved_instances(f, 1, &p);
		add_case("reserved instances", "DescribeReservedInstances", r, &p,
			 json_pack("{s:[{s:s,s:[s]}]}", "Filters", "Name", "state", "Values", "active"));
	}
	{
		static const char *const types[] = { "m5.large", "c5.xlarge" };
		r = ec2_params_spot_price_history(types, 2, "Linux/UNIX", 1704067200, 1000, "next+/", &p);
		add_case("spot price history", "DescribeSpotPriceHistory", r, &p,
			 json_pack("{s:[s,s],s:[s],s:s,s:i,s:s}", "InstanceTypes", "m5.large", "c5.xlarge",
				   "ProductDescriptions", "Linux/UNIX", "StartTime", "2024-01-01T00:00:00Z", "MaxResults",
				   1000, "NextToken", "next+/"));
	}
	{
		r = ec2_params_spot_price_history(NULL, 0, NULL, 0, 0, NULL, &p);
		add_case("spot price history: bare", "DescribeSpotPriceHistory", r, &p, json_object());
	}
	{
		ec2_template_version v = { .launch_template_id = "lt-0123456789abcdef0", .source_version = "3",
			                   .image_id = "ami-0abc", .description = "plan p1 gen 1",
			                   .client_token = "corral-v-0123456789abcdef-1" };
		r = ec2_params_create_launch_template_version(&v, &p);
		add_case("launch template version: by id, from a version", "CreateLaunchTemplateVersion", r, &p,
			 json_pack("{s:s,s:s,s:s,s:{s:s},s:s}", "LaunchTemplateId", "lt-0123456789abcdef0",
				   "SourceVersion", "3", "VersionDescription", "plan p1 gen 1", "LaunchTemplateData",
				   "ImageId", "ami-0abc", "ClientToken", v.client_token));
	}
	{
		ec2_template_version v = { .launch_template_name = "corral-test", .image_id = "ami-1",
			                   .client_token = "t" };
		r = ec2_params_create_launch_template_version(&v, &p);
		add_case("launch template version: by name", "CreateLaunchTemplateVersion", r, &p,
			 json_pack("{s:s,s:{s:s},s:s}", "LaunchTemplateName", "corral-test", "LaunchTemplateData",
				   "ImageId", "ami-1", "ClientToken", "t"));
	}
}

static void free_cases(void) {
	for (size_t i = 0; i < n_cases; i++) {
		ec2_params_done(&cases[i].params);
		json_decref(cases[i].input);
	}
	n_cases = 0;
}

Test(ec2calls, bodies_match_botocore) {
	build_cases();

	json_auto_t *in = json_array();
	for (size_t i = 0; i < n_cases; i++)
		json_array_append_new(in, json_pack("{s:s,s:O}", "action", cases[i].action, "input", cases[i].input));
	_cleanup_free_ char *dir = hx_mkdtemp("ec2calls");
	_cleanup_free_ char *path = NULL, *script = NULL, *out = NULL;
	cr_assert_geq(asprintf(&path, "%s/cases.json", dir), 0);
	cr_assert_geq(asprintf(&script, "%s/tests/ec2_serialize.py", hx_srcdir()), 0);
	cr_assert_eq(json_dump_file(in, path, 0), 0);
	char *const argv[] = { (char *) hx_tool("CORRAL_PYTHON3", "python3"), script, path, NULL };
	int st = hx_run(&out, 60 * USEC_PER_SEC, argv, NULL);
	cr_assert_eq(st, 0, "%s %s failed (%d): botocore is needed for this test", argv[0], script, st);
	hx_rm_tmp(dir);

	json_error_t jerr;
	json_auto_t *res = json_loads(out, 0, &jerr);
	cr_assert_not_null(res, "ec2_serialize.py printed no JSON: %s", jerr.text);
	cr_assert_eq(json_array_size(res), n_cases);
	cr_log_info("botocore %s", json_string_value(json_object_get(json_array_get(res, 0), "botocore")));

	for (size_t i = 0; i < n_cases; i++) {
		json_t *r = json_array_get(res, i);
		json_t *bp = json_object_get(r, "pairs");
		cr_assert_not_null(bp, "%s: botocore refused the input: %s", cases[i].what,
				   json_string_value(json_object_get(r, "error")));
		pair *ours = NULL;
		size_t n = our_pairs(cases[i].action, &cases[i].params, &ours);
		size_t nb = json_array_size(bp);
		_cleanup_free_ bool *used = calloc(nb + 1, sizeof *used);

		/* As sets: every pair of ours is one of botocore's, and as many. */
		for (size_t k = 0; k < n; k++) {
			bool found = false;
			for (size_t j = 0; j < nb && !found; j++) {
				json_t *q = json_array_get(bp, j);
				if (!used[j] && streq(json_string_value(json_array_get(q, 0)), ours[k].name) &&
				    streq(json_string_value(json_array_get(q, 1)), ours[k].value))
					used[j] = found = true;
			}
			cr_expect(found, "%s: we send %s=%s, botocore does not", cases[i].what, ours[k].name,
				  ours[k].value);
		}
		for (size_t j = 0; j < nb; j++)
			cr_expect(used[j], "%s: botocore sends %s=%s, we do not", cases[i].what,
				  json_string_value(json_array_get(json_array_get(bp, j), 0)),
				  json_string_value(json_array_get(json_array_get(bp, j), 1)));
		cr_expect_eq(n, nb, "%s: %zu parameters, botocore %zu", cases[i].what, n, nb);
		pairs_free(ours, n);
	}
	free_cases();
}

/* ---- details of the encoding and the builders ------------------------------------- */

Test(ec2calls, body_is_strictly_encoded) {
	ec2_launch l = { .launch_template_id = "lt-1", .count = 2, .client_token = "a b" };
	_cleanup_(ec2_params_done) ec2_params p = {};
	_cleanup_free_ char *body = NULL;
	size_t len;

	cr_assert_eq(ec2_params_run_instances(&l, &p), -EINVAL, "a token with a space is refused");
	l.client_token = "tok";
	cr_assert_eq(ec2_params_run_instances(&l, &p), 0);
	cr_assert_eq(ec2_form_body("RunInstances", p.items, p.n, &body, &len), 0);
	cr_assert_str_eq(body, "Action=RunInstances&Version=2016-11-15&LaunchTemplate.LaunchTemplateId=lt-1&"
			       "LaunchTemplate.Version=%24Latest&MinCount=2&MaxCount=2&ClientToken=tok");
	cr_assert_str_eq(ec2_params_get(&p, "MinCount"), "2");
	cr_assert_null(ec2_params_get(&p, "UserData"));
	cr_assert_null(ec2_params_get(&p, "InstanceMarketOptions.MarketType"), "on-demand sends no market options");
}

Test(ec2calls, user_data_is_base64) {
	ec2_launch l = { .launch_template_id = "lt-1", .count = 1, .client_token = "t",
			 .user_data = "hello\n", .user_data_len = 6 };
	_cleanup_(ec2_params_done) ec2_params p = {};
	cr_assert_eq(ec2_params_run_instances(&l, &p), 0);
	cr_assert_str_eq(ec2_params_get(&p, "UserData"), "aGVsbG8K");
}

Test(ec2calls, template_versions_need_a_token_an_image_and_one_template) {
	ec2_params p = {};
	ec2_template_version v = { .launch_template_id = "lt-1", .image_id = "ami-1", .client_token = "t" };
	cr_assert_eq(ec2_params_create_launch_template_version(&v, &p), 0);
	ec2_params_done(&p);
	v.client_token = NULL;
	cr_assert_eq(ec2_params_create_launch_template_version(&v, &p), -EINVAL);
	v.client_token = "t";
	v.image_id = "";
	cr_assert_eq(ec2_params_create_launch_template_version(&v, &p), -EINVAL);
	v.image_id = "ami-1";
	v.launch_template_name = "both";
	cr_assert_eq(ec2_params_create_launch_template_version(&v, &p), -EINVAL);
	cr_assert_null(p.items);
}

Test(ec2calls, launches_without_a_client_token_are_refused) {
	_cleanup_(ec2_params_done) ec2_params p = {};
	char long_token[EC2_CLIENT_TOKEN_MAX + 2];
	memset(long_token, 'a', sizeof long_token - 1);
	long_token[sizeof long_token - 1] = '\0';

	ec2_launch ok = { .launch_template_id = "lt-1", .count = 1, .client_token = "t" };
	ec2_launch l = ok;
	l.client_token = NULL;
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "no token");
	l.client_token = "";
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "empty token");
	l.client_token = long_token;
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "65 characters");
	long_token[EC2_CLIENT_TOKEN_MAX] = '\0';
	cr_expect_eq(ec2_params_run_instances(&l, &p), 0, "64 characters");
	ec2_params_done(&p);
	l = ok;
	l.count = 0;
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "count 0");
	l = ok;
	l.launch_template_id = NULL;
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "no template");
	l = ok;
	l.launch_template_name = "both";
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "id and name");
	l = ok;
	static const ec2_kv bad[] = { { "", "v" } };
	l.tags = bad;
	l.n_tags = 1;
	cr_expect_eq(ec2_params_run_instances(&l, &p), -EINVAL, "empty tag key");
	cr_expect_eq(p.n, 0, "nothing left behind on failure");
	cr_expect_eq(ec2_params_run_instances(NULL, &p), -EINVAL);
}

Test(ec2calls, limits_are_checked) {
	_cleanup_(ec2_params_done) ec2_params p = {};
	const char *ids[EC2_TERMINATE_BATCH_MAX + 1];
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		ids[i] = "i-x";

	cr_expect_eq(ec2_params_terminate(ids, 0, &p), -EINVAL);
	cr_expect_eq(ec2_params_terminate(ids, EC2_TERMINATE_BATCH_MAX + 1, &p), -EINVAL, "101 ids in one call");
	cr_assert_eq(ec2_params_terminate(ids, EC2_TERMINATE_BATCH_MAX, &p), 0);
	cr_expect_str_eq(ec2_params_get(&p, "InstanceId.100"), "i-x");
	ec2_params_done(&p);
	cr_expect_eq(ec2_params_stop(ids, EC2_TERMINATE_BATCH_MAX + 1, &p), -EINVAL, "101 ids to stop");
	cr_expect_eq(ec2_params_start(ids, 0, &p), -EINVAL, "nothing to start");

	cr_expect_eq(ec2_params_describe_instances(NULL, 0, 4, NULL, &p), -EINVAL, "MaxResults 4");
	cr_expect_eq(ec2_params_describe_instances(NULL, 0, 1001, NULL, &p), -EINVAL, "MaxResults 1001");
	cr_assert_eq(ec2_params_describe_instances(NULL, 0, 1000, "", &p), 0);
	cr_expect_null(ec2_params_get(&p, "NextToken"), "an empty token is not sent");
	ec2_params_done(&p);

	const ec2_filter nothing[] = { { "instance-state-name", NULL, 0 } };
	cr_expect_eq(ec2_params_describe_instances(nothing, 1, 0, NULL, &p), -EINVAL, "a filter without values");
	cr_expect_eq(ec2_params_create_tags(ids, 1, NULL, 0, &p), -EINVAL, "CreateTags without tags");
	cr_expect_eq(ec2_params_create_tags(ids, 0, (ec2_kv[]){ { "k", "v" } }, 1, &p), -EINVAL, "no resources");
	cr_assert_eq(ec2_params_delete_tags(ids, 1, NULL, 0, &p), 0, "DeleteTags without tags: all of them");
	ec2_params_done(&p);
	cr_expect_eq(ec2_params_spot_price_history(NULL, 0, NULL, 0, 1001, NULL, &p), -EINVAL);
	cr_expect_eq(ec2_params_describe_instance_status(NULL, 0, false, 3, NULL, &p), -EINVAL);
}

Test(ec2calls, params_own_their_strings) {
	_cleanup_(ec2_params_done) ec2_params p = {};
	char name[16] = "A", value[16] = "1";
	for (int i = 0; i < 100; i++)
		cr_assert_eq(ec2_params_addf(&p, value, "Name.%d", i), 0);
	cr_assert_eq(ec2_params_add(&p, name, value), 0);
	strcpy(name, "B");
	strcpy(value, "2");
	cr_assert_str_eq(ec2_params_get(&p, "A"), "1");
	cr_assert_str_eq(ec2_params_get(&p, "Name.99"), "1");
	cr_assert_eq(p.n, 101);
	cr_assert_eq(ec2_params_add(&p, NULL, "x"), -EINVAL);
	cr_assert_eq(ec2_params_add(&p, "x", NULL), -EINVAL);
}

Test(ec2calls, form_body_refuses_holes) {
	_cleanup_free_ char *b = NULL;
	size_t len;
	ec2_param bad[] = { { "Name", NULL } };
	cr_expect_eq(ec2_form_body("X", bad, 1, &b, &len), -EINVAL);
	cr_expect_eq(ec2_form_body("", NULL, 0, &b, &len), -EINVAL);
	cr_assert_eq(ec2_form_body("DescribeInstances", NULL, 0, &b, &len), 0);
	cr_expect_str_eq(b, "Action=DescribeInstances&Version=2016-11-15");
}

/* ---- InvalidInstanceID.NotFound ------------------------------------------------------ */

static void expect_ids(const char *message, const char *const *want, size_t n) {
	_cleanup_strv_free_ char **v = NULL;
	cr_assert_eq(ec2_not_found_ids(message, &v), 0, "%s", message);
	cr_assert_eq(strv_length(v), n, "%s: %zu ids", message, strv_length(v));
	for (size_t i = 0; i < n; i++)
		cr_expect_str_eq(v[i], want[i]);
}

Test(ec2calls, not_found_ids) {
	expect_ids("The instance ID 'i-0123456789abcdef0' does not exist",
		   (const char *const[]){ "i-0123456789abcdef0" }, 1);
	expect_ids("The instance IDs 'i-00000000000000000, i-0000000000000000a' do not exist",
		   (const char *const[]){ "i-00000000000000000", "i-0000000000000000a" }, 2);
	/* As the client's reply message carries it. */
	expect_ids("EC2 TerminateInstances: InvalidInstanceID.NotFound: The instance IDs 'i-a, i-b,i-c' do not "
		   "exist (HTTP 400, request 5f2b)",
		   (const char *const[]){ "i-a", "i-b", "i-c" }, 3);
	/* Cut short: what is there, the last one maybe partial. */
	expect_ids("The instance IDs 'i-a, i-b, i-cc", (const char *const[]){ "i-a", "i-b", "i-cc" }, 3);

	char **v = NULL;
	cr_expect_eq(ec2_not_found_ids("The instance ID does not exist", &v), -EINVAL);
	cr_expect_eq(ec2_not_found_ids("The instance IDs '' do not exist", &v), -EINVAL);
	cr_expect_eq(ec2_not_found_ids(NULL, &v), -EINVAL);
	cr_expect_null(v);
}

/* ---- operations refuse before any I/O ------------------------------------------------ */

static void never(ec2_client *c, const ec2_reply *r, const ec2xml_run_instances *res, void *ud) {
	cr_assert_fail("the callback ran");
}

Test(ec2calls, operations_refuse_bad_requests_without_calling_back) {
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	cr_assert_geq(sd_event_new(&e), 0);
	ec2_options o = { .region = "us-east-1", .endpoint = "http://127.0.0.1:9/", .imds_endpoint = "" };
	_cleanup_(ec2_client_freep) ec2_client *c = NULL;
	cr_assert_eq(ec2_client_new(&c, e, &o), 0);

	ec2_launch l = { .launch_template_id = "lt-1", .count = 1 };
	ec2_op *op = NULL;
	cr_expect_eq(ec2_run_instances(c, &l, never, NULL, &op), -EINVAL, "no ClientToken");
	cr_expect_null(op);
	l.client_token = "t";
	cr_expect_eq(ec2_run_instances(c, &l, NULL, NULL, &op), -EINVAL, "no callback");
	cr_expect_eq(ec2_terminate_instances(c, NULL, 0, NULL, NULL, &op), -EINVAL);
	cr_expect_eq(ec2_stop_instances(c, NULL, 0, NULL, NULL, &op), -EINVAL);
	const char *const empty[] = { "" };
	cr_expect_eq(ec2_start_instances(c, empty, 1, NULL, NULL, &op), -EINVAL, "an empty id");

	/* Started, then cancelled before the loop ran: no callback, no leak. */
	cr_assert_eq(ec2_run_instances(c, &l, never, NULL, &op), 0);
	cr_assert_not_null(op);
	ec2_op_cancel(op);
	cr_assert_geq(sd_event_run(e, 0), 0);
}
