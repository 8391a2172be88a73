/* test_ec2xml.c — the EC2 response parser (src/ec2/xml.c) on every sample in
 * tests/data/ec2/{aws,errors,moto} (the directories are walked, so a
 * new sample is parsed too; known ones have their fields checked), on every
 * truncation of each sample, and on hostile input: empty, HTML, deep
 * nesting, entity/DTD bombs, external entities, random bytes. Plus times
 * and the error classification. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "ec2xml.h"
#include "harness.h"
#include "macro.h"

/* ---- helpers -------------------------------------------------------------------------- */

static void closedirp(DIR **d) {
	if (*d)
		closedir(*d);
}

#define DEFINE_DONEP(type, fn) \
	static void fn##p(type *p) { fn(p); }
DEFINE_DONEP(ec2_error, ec2_error_done)
DEFINE_DONEP(ec2xml_describe_instances, ec2xml_describe_instances_done)
DEFINE_DONEP(ec2xml_run_instances, ec2xml_run_instances_done)
DEFINE_DONEP(ec2xml_terminate_instances, ec2xml_terminate_instances_done)
DEFINE_DONEP(ec2xml_describe_instance_status, ec2xml_describe_instance_status_done)
DEFINE_DONEP(ec2xml_describe_reserved_instances, ec2xml_describe_reserved_instances_done)
DEFINE_DONEP(ec2xml_spot_price_history, ec2xml_spot_price_history_done)
DEFINE_DONEP(ec2xml_ack, ec2xml_ack_done)
#define _cleanup_err_ _cleanup_(ec2_error_donep)

static char *sample(const char *group, const char *name, size_t *len) {
	_cleanup_free_ char *path = NULL;
	cr_assert(asprintf(&path, "%s/tests/data/ec2/%s/%s", hx_srcdir(), group, name) >= 0);
	char *text = hx_read_file(path, len);
	cr_assert_not_null(text, "cannot read %s: %m", path);
	return text;
}

/* The HTTP status each sample came with (README tables; moto: requests.json). */
static int sample_status(const char *group, const char *name) {
	static const struct {
		const char *name;
		int status;
	} errors[] = {
		{ "invalid-instance-id-malformed.xml", 400 },
		{ "idempotent-parameter-mismatch.xml", 400 },
		{ "invalid-key-pair-not-found.xml", 400 },
		{ "constructed-request-limit-exceeded.xml", 503 },
		{ "constructed-insufficient-instance-capacity.xml", 500 },
		{ "constructed-insufficient-instance-capacity-spot.xml", 500 },
		{ "constructed-invalid-instance-id-not-found.xml", 400 },
		{ "constructed-unauthorized-operation.xml", 403 },
		{ "constructed-unauthorized-operation-encoded.xml", 403 },
		{ "constructed-auth-failure.xml", 401 },
		{ "constructed-dry-run-operation.xml", 412 },
	};

	if (streq(group, "aws"))
		return 200;
	if (streq(group, "errors")) {
		for (size_t i = 0; i < ELEMENTSOF(errors); i++)
			if (streq(errors[i].name, name))
				return errors[i].status;
		return 400;     /* a new error sample: some 4xx */
	}
	_cleanup_free_ char *path = NULL;
	cr_assert(asprintf(&path, "%s/tests/data/ec2/moto/requests.json", hx_srcdir()) >= 0);
	json_error_t e;
	json_auto_t *j = json_load_file(path, 0, &e);
	cr_assert_not_null(j, "%s: %s", path, e.text);
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v) {
		if (streq_ptr(json_string_value(json_object_get(v, "file")), name))
			return (int) json_integer_value(json_object_get(v, "http_status"));
	}
	cr_assert_fail("moto/%s is not in requests.json", name);
	return 0;
}

/* Parses body with the parser its root element calls for (the error
 * envelopes with the DescribeInstances parser, which routes them), frees
 * the result and returns the parser's return value. *err is left filled. */
static int parse_any(int status, const char *body, size_t len, const char *root_hint, ec2_error *err) {
	static const char *const acks[] = { "CreateTags", "DeleteTags", "CreateLaunchTemplate" };
	int r;

#define TRY(root, type, fn, donefn)                                  \
	if (streq(root_hint, root)) {                                \
		type res = { 0 };                                    \
		r = fn(status, body, len, &res, err);                \
		donefn(&res);                                        \
		return r;                                            \
	}
	TRY("DescribeInstancesResponse", ec2xml_describe_instances, ec2xml_parse_describe_instances,
	    ec2xml_describe_instances_done)
	TRY("RunInstancesResponse", ec2xml_run_instances, ec2xml_parse_run_instances, ec2xml_run_instances_done)
	TRY("TerminateInstancesResponse", ec2xml_terminate_instances, ec2xml_parse_terminate_instances,
	    ec2xml_terminate_instances_done)
	TRY("DescribeInstanceStatusResponse", ec2xml_describe_instance_status,
	    ec2xml_parse_describe_instance_status, ec2xml_describe_instance_status_done)
	TRY("DescribeReservedInstancesResponse", ec2xml_describe_reserved_instances,
	    ec2xml_parse_describe_reserved_instances, ec2xml_describe_reserved_instances_done)
	TRY("DescribeSpotPriceHistoryResponse", ec2xml_spot_price_history, ec2xml_parse_spot_price_history,
	    ec2xml_spot_price_history_done)
#undef TRY
	for (size_t i = 0; i < ELEMENTSOF(acks); i++) {
		char root[64];
		snprintf(root, sizeof root, "%sResponse", acks[i]);
		if (streq(root_hint, root)) {
			ec2xml_ack res = { 0 };
			r = ec2xml_parse_ack(status, body, len, acks[i], &res, err);
			ec2xml_ack_done(&res);
			return r;
		}
	}
	/* Response / ErrorResponse: any parser routes them */
	cr_assert(streq(root_hint, "Response") || streq(root_hint, "ErrorResponse"), "no parser for <%s>", root_hint);
	ec2xml_describe_instances res = { 0 };
	r = ec2xml_parse_describe_instances(status, body, len, &res, err);
	ec2xml_describe_instances_done(&res);
	return r;
}

/* The root element's name, read from the text (after the XML declaration). */
static void root_name(const char *body, char *out, size_t size) {
	const char *p = body;
	for (;;) {
		p = strchr(p, '<');
		cr_assert_not_null(p, "no root element");
		if (p[1] != '?' && p[1] != '!')
			break;
		p++;
	}
	p++;
	size_t n = strcspn(p, " \t\r\n>/");
	cr_assert_lt(n, size);
	memcpy(out, p, n);
	out[n] = 0;
	char *colon = strchr(out, ':');
	if (colon)
		memmove(out, colon + 1, strlen(colon));
}

typedef struct sample_file {
	char group[16];
	char name[NAME_MAX + 1];
} sample_file;

static size_t all_samples(sample_file **out) {
	static const char *const groups[] = { "aws", "errors", "moto" };
	size_t n = 0, max = 256;
	sample_file *v = calloc(max, sizeof *v);

	cr_assert_not_null(v);
	for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
		_cleanup_free_ char *dir = NULL;
		cr_assert(asprintf(&dir, "%s/tests/data/ec2/%s", hx_srcdir(), groups[g]) >= 0);
		_cleanup_(closedirp) DIR *d = opendir(dir);
		cr_assert_not_null(d, "cannot open %s: %m", dir);
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 5 || !streq(de->d_name + l - 4, ".xml"))
				continue;
			cr_assert_lt(n, max);
			snprintf(v[n].group, sizeof v[n].group, "%s", groups[g]);
			snprintf(v[n].name, sizeof v[n].name, "%s", de->d_name);
			n++;
		}
	}
	*out = v;
	return n;
}

/* ---- every sample ------------------------------------------------------------------------ */

Test(ec2xml, every_sample_parses) {
	_cleanup_free_ sample_file *files = NULL;
	size_t n = all_samples(&files), n_ok = 0, n_err = 0;

	/* aws 10, errors 11, moto 15 at the time of writing */
	cr_assert_geq(n, 36, "only %zu samples under %s/tests/data/ec2", n, hx_srcdir());
	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ char *body = sample(files[i].group, files[i].name, &len);
		int status = sample_status(files[i].group, files[i].name);
		char root[128];
		_cleanup_err_ ec2_error err = { 0 };

		root_name(body, root, sizeof root);
		int r = parse_any(status, body, len, root, &err);
		cr_expect_eq(err.http_status, status, "%s/%s", files[i].group, files[i].name);
		if (status >= 200 && status < 300) {
			cr_expect_eq(r, 0, "%s/%s: %d", files[i].group, files[i].name, r);
			cr_expect_null(err.code);
			n_ok++;
		} else {
			cr_expect_eq(r, -EREMOTEIO, "%s/%s: %d", files[i].group, files[i].name, r);
			cr_expect_not_null(err.code, "%s/%s: no code", files[i].group, files[i].name);
			cr_expect_not_null(err.message, "%s/%s: no message", files[i].group, files[i].name);
			/* and the standalone error parser agrees */
			_cleanup_err_ ec2_error e2 = { 0 };
			cr_expect_eq(ec2xml_parse_error(status, body, len, &e2), 0);
			cr_expect(streq_ptr(e2.code, err.code) && streq_ptr(e2.message, err.message) &&
			          streq_ptr(e2.request_id, err.request_id), "%s/%s", files[i].group, files[i].name);
			n_err++;
		}
	}
	cr_expect_geq(n_ok, 21);
	cr_expect_geq(n_err, 14);
}

/* Every cut short of the root's closing '>' fails cleanly: -EBADMSG for a
 * success status, -EREMOTEIO with no code for an error status. Bodies are
 * copied to exactly-sized heap buffers so ASan sees any over-read. Small
 * samples: every length; big ones: the first and last 256 and 1024
 * spread between (the 314 KB spot file would take minutes otherwise). */
Test(ec2xml, every_truncation_fails_cleanly, .timeout = 600) {
	_cleanup_free_ sample_file *files = NULL;
	size_t n = all_samples(&files), cuts = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len;
		_cleanup_free_ char *body = sample(files[i].group, files[i].name, &len);
		int status = sample_status(files[i].group, files[i].name);
		char root[128];
		root_name(body, root, sizeof root);
		const char *last = body + len;
		while (last > body && last[-1] != '>')
			last--;
		size_t end = (size_t) (last - body);     /* one past the root's closing '>' */
		cr_assert_gt(end, 0);

		for (size_t k = 0; k < end; k++) {
			if (end > 16384 && k >= 256 && k + 256 < end && k % (end / 1024) != 0)
				continue;
			char *copy = malloc(k ? k : 1);
			cr_assert_not_null(copy);
			memcpy(copy, body, k);
			_cleanup_err_ ec2_error err = { 0 };
			int r = parse_any(status, k ? copy : NULL, k, root, &err);
			free(copy);
			if (status >= 200 && status < 300)
				cr_assert_eq(r, -EBADMSG, "%s/%s cut at %zu of %zu: %d", files[i].group, files[i].name,
				             k, len, r);
			else {
				cr_assert_eq(r, -EREMOTEIO, "%s/%s cut at %zu: %d", files[i].group, files[i].name, k, r);
				cr_assert_null(err.code, "%s/%s cut at %zu: code %s", files[i].group, files[i].name, k,
				               err.code);
			}
			cr_assert_eq(err.http_status, status);
			cuts++;
		}
		/* and the whole thing (trailing newline or not) still parses */
		_cleanup_err_ ec2_error err = { 0 };
		int r = parse_any(status, body, end, root, &err);
		cr_assert_eq(r, status >= 200 && status < 300 ? 0 : -EREMOTEIO, "%s/%s", files[i].group, files[i].name);
	}
	cr_expect_gt(cuts, 20000);
}

/* ---- known samples, field by field ------------------------------------------------------------- */

static void parse_di(const char *group, const char *name, ec2xml_describe_instances *out) {
	size_t len;
	_cleanup_free_ char *body = sample(group, name, &len);
	_cleanup_err_ ec2_error err = { 0 };
	int r = ec2xml_parse_describe_instances(200, body, len, out, &err);
	cr_assert_eq(r, 0, "%s/%s: %d", group, name, r);
}

static void parse_ri(const char *group, const char *name, ec2xml_run_instances *out) {
	size_t len;
	_cleanup_free_ char *body = sample(group, name, &len);
	_cleanup_err_ ec2_error err = { 0 };
	int r = ec2xml_parse_run_instances(200, body, len, out, &err);
	cr_assert_eq(r, 0, "%s/%s: %d", group, name, r);
}

Test(ec2xml, aws_describe_instances_two_reservations_tags) {
	_cleanup_(ec2xml_describe_instances_donep) ec2xml_describe_instances d = { 0 };
	parse_di("aws", "describe-instances-two-reservations-tags.xml", &d);

	cr_expect_str_eq(d.request_id, "d15d204f-fc31-4600-85d3-5c86e5483b92");
	cr_expect_null(d.next_token);
	cr_assert_eq(d.n_reservations, 2);
	cr_expect_str_eq(d.reservations[0].reservation_id, "r-9b4f3ca8");
	cr_assert_eq(d.reservations[0].n_instances, 1);
	const ec2_instance *a = &d.reservations[0].instances[0];
	cr_expect_str_eq(a->instance_id, "i-fde9cece");
	cr_expect_str_eq(a->image_id, "ami-30fe7300");
	cr_expect_str_eq(a->instance_type, "m1.small");
	cr_expect_eq(a->state.code, 80);
	cr_expect_str_eq(a->state.name, "stopped");
	cr_expect_eq(a->launch_time, 1350417613);       /* 2012-10-16T20:00:13.000Z */
	cr_expect_null(a->private_ip);                  /* stopped: none */
	cr_expect_str_eq(a->availability_zone, "us-west-2a");
	cr_expect_null(a->lifecycle);
	cr_expect_null(a->spot_request_id);
	cr_expect_null(a->client_token);                /* <clientToken/> */
	cr_assert_eq(a->n_tags, 1);
	cr_expect_str_eq(a->tags[0].key, "notebook");
	cr_expect_str_eq(a->tags[0].value, "");         /* <value/> */
	cr_expect_str_eq(ec2_instance_tag(a, "notebook"), "");
	cr_expect_null(ec2_instance_tag(a, "Name"));
	cr_expect_null(a->launch_template_id);

	cr_expect_str_eq(d.reservations[1].reservation_id, "r-6670ce54");
	cr_assert_eq(d.reservations[1].n_instances, 1);
	const ec2_instance *b = &d.reservations[1].instances[0];
	cr_expect_str_eq(b->instance_id, "i-78f1b94a");
	cr_expect_str_eq(b->instance_type, "m1.medium");
	cr_expect_eq(b->state.code, 16);
	cr_expect_str_eq(b->state.name, "running");
	cr_expect_str_eq(b->private_ip, "10.253.17.74");
	cr_expect_str_eq(b->availability_zone, "us-west-2b");
	cr_expect_str_eq(b->client_token, "aOJaC1362847444140");
	cr_expect_eq(b->n_tags, 0);
	cr_expect_null(b->tags);
}

Test(ec2xml, aws_describe_instances_libcloud) {
	_cleanup_(ec2xml_describe_instances_donep) ec2xml_describe_instances d = { 0 };
	parse_di("aws", "describe-instances-libcloud.xml", &d);

	cr_expect_str_eq(d.request_id, "ec0d2a7d-5080-4f4b-9b02-cb0d5d2d4274");
	cr_assert_eq(d.n_reservations, 2);
	cr_expect_str_eq(d.reservations[0].reservation_id, "r-fd67fb97");
	cr_expect_str_eq(d.reservations[0].instances[0].instance_id, "i-4382922a");
	cr_expect_str_eq(d.reservations[0].instances[0].private_ip, "10.211.11.211");
	const ec2_instance *b = &d.reservations[1].instances[0];
	cr_expect_str_eq(b->instance_id, "i-8474834a");
	cr_expect_str_eq(b->instance_type, "t1.micro");
	cr_expect_str_eq(b->state.name, "stopped");
	cr_expect_str_eq(b->private_ip, "172.16.9.139");
	cr_expect_str_eq(b->availability_zone, "us-east-1d");
	cr_expect_eq(b->launch_time, 1385999909);       /* 2013-12-02T15:58:29.000Z */
	cr_assert_eq(b->n_tags, 2);
	cr_expect_str_eq(ec2_instance_tag(b, "Name"), "Test Server 2");
	cr_expect_str_eq(ec2_instance_tag(b, "Group"), "VPC Test");
}

Test(ec2xml, aws_run_instances) {
	_cleanup_(ec2xml_run_instances_donep) ec2xml_run_instances a = { 0 }, b = { 0 };

	parse_ri("aws", "run-instances.xml", &a);
	cr_expect_str_eq(a.request_id, "e86ff3c8-2400-45e3-a4e7-f158a69283d4");
	cr_expect_str_eq(a.reservation_id, "r-157ad274");
	cr_assert_eq(a.n_instances, 1);
	cr_expect_str_eq(a.instances[0].instance_id, "i-0ee0356c");
	cr_expect_eq(a.instances[0].state.code, 0);
	cr_expect_str_eq(a.instances[0].state.name, "pending");
	cr_expect_str_eq(a.instances[0].private_ip, "10.0.0.142");       /* not an ENI's */
	cr_expect_str_eq(a.instances[0].availability_zone, "us-east-1b");
	cr_expect_null(a.instances[0].lifecycle);

	parse_ri("aws", "run-instances-spot-lifecycle.xml", &b);
	cr_expect_null(b.request_id);
	cr_expect_str_eq(b.reservation_id, "r-47a5402e");
	cr_assert_eq(b.n_instances, 1);
	cr_expect_str_eq(b.instances[0].instance_id, "i-2ba64344");
	cr_expect_str_eq(b.instances[0].lifecycle, "spot");
	cr_expect_eq(b.instances[0].launch_time, 1186487510);    /* 2007-08-07T11:51:50.000Z */
}

Test(ec2xml, aws_terminate_instances_shutdown_state) {
	size_t len;
	_cleanup_free_ char *body = sample("aws", "terminate-instances.xml", &len);
	_cleanup_(ec2xml_terminate_instances_donep) ec2xml_terminate_instances t = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_eq(ec2xml_parse_terminate_instances(200, body, len, &t, &err), 0);
	cr_expect_str_eq(t.request_id, "fa63083d-e0f7-4933-b31a-f266643bdee8");
	cr_assert_eq(t.n_items, 1);
	cr_expect_str_eq(t.items[0].instance_id, "i-4382922a");
	cr_expect_eq(t.items[0].current.code, 32);      /* from <shutdownState> */
	cr_expect_str_eq(t.items[0].current.name, "shutting-down");
	cr_expect_eq(t.items[0].previous.code, 16);
	cr_expect_str_eq(t.items[0].previous.name, "running");
}

Test(ec2xml, aws_create_tags_and_instance_status) {
	size_t len;
	_cleanup_free_ char *tags = sample("aws", "create-tags.xml", &len);
	_cleanup_(ec2xml_ack_donep) ec2xml_ack ack = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_eq(ec2xml_parse_ack(200, tags, len, "CreateTags", &ack, &err), 0);
	cr_expect(ack.ok);
	cr_expect_str_eq(ack.request_id, "b001068a-ca0d-4f05-b622-28fe984f44be");
	/* the wrong action is a bad message, not a success */
	ec2_error_done(&err);
	ec2xml_ack other = { 0 };
	cr_expect_eq(ec2xml_parse_ack(200, tags, len, "DeleteTags", &other, &err), -EBADMSG);
	cr_expect_eq(ec2xml_parse_ack(200, tags, len, "", &other, &err), -EINVAL);

	_cleanup_free_ char *st = sample("aws", "describe-instance-status.xml", &len);
	_cleanup_(ec2xml_describe_instance_status_donep) ec2xml_describe_instance_status s = { 0 };
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_describe_instance_status(200, st, len, &s, &err), 0);
	cr_assert_eq(s.n_items, 1);
	cr_expect_str_eq(s.items[0].instance_id, "i-78f1b94a");
	cr_expect_str_eq(s.items[0].availability_zone, "us-west-2b");
	cr_expect_eq(s.items[0].state.code, 16);
	cr_expect_str_eq(s.items[0].state.name, "running");
	cr_expect_str_eq(s.items[0].system_status, "ok");
	cr_expect_str_eq(s.items[0].instance_status, "ok");
	cr_expect_null(s.next_token);
}

Test(ec2xml, aws_reserved_instances) {
	size_t len;
	_cleanup_free_ char *a = sample("aws", "describe-reserved-instances.xml", &len);
	_cleanup_(ec2xml_describe_reserved_instances_donep) ec2xml_describe_reserved_instances r = { 0 }, l = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_eq(ec2xml_parse_describe_reserved_instances(200, a, len, &r, &err), 0);
	cr_assert_eq(r.n_items, 1);
	cr_expect_str_eq(r.items[0].id, "93bbbca2-c500-49d0-9ede-9d8737400498");
	cr_expect_str_eq(r.items[0].instance_type, "t1.micro");
	cr_expect_str_eq(r.items[0].availability_zone, "us-east-1b");
	cr_expect_null(r.items[0].scope);
	cr_expect_eq(r.items[0].instance_count, 1);
	cr_expect_str_eq(r.items[0].state, "active");
	cr_expect_eq(r.items[0].start, 1371557273);     /* 2013-06-18T12:07:53.161Z */
	cr_expect_eq(r.items[0].end, 1403093273);       /* 2014-06-18T12:07:53.161Z */
	cr_expect_str_eq(r.items[0].offering_type, "Light Utilization");
	cr_expect_str_eq(r.items[0].product_description, "Linux/UNIX");

	_cleanup_free_ char *b = sample("aws", "describe-reserved-instances-light-utilization.xml", &len);
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_describe_reserved_instances(200, b, len, &l, &err), 0);
	cr_assert_eq(l.n_items, 1);
	cr_expect_str_eq(l.items[0].id, "4b2293b4-5813-4cc8-9ce3-1957fc1dcfc8EXAMPLE");
	cr_expect_str_eq(l.items[0].instance_type, "m1.xlarge");
	cr_expect_eq(l.items[0].instance_count, 3);
	cr_expect_eq(l.items[0].start, 0);               /* absent */
	cr_expect_eq(l.items[0].end, 0);
}

Test(ec2xml, aws_spot_price_history_large) {
	size_t len;
	_cleanup_free_ char *body = sample("aws", "describe-spot-price-history.xml", &len);
	_cleanup_(ec2xml_spot_price_history_donep) ec2xml_spot_price_history s = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_gt(len, 300000);
	cr_assert_eq(ec2xml_parse_spot_price_history(200, body, len, &s, &err), 0);
	/* count the items independently of the parser */
	size_t items = 0;
	for (const char *p = body; (p = strstr(p, "<spotPrice>")); p++)
		items++;
	cr_expect_eq(items, 1000);
	cr_expect_eq(s.n_items, items);
	cr_expect_str_eq(s.items[0].instance_type, "m1.small");
	cr_expect_str_eq(s.items[0].product_description, "Linux/UNIX");
	cr_expect_str_eq(s.items[0].spot_price, "0.010000");
	cr_expect(fabs(s.items[0].price - 0.01) < 1e-12);
	cr_expect_eq(s.items[0].timestamp, 1363786555);  /* 2013-03-20T13:35:55.000Z */
	cr_expect_str_eq(s.items[0].availability_zone, "us-west-2b");
	cr_expect_str_eq(s.items[1].spot_price, "0.106000");
	cr_expect_str_eq(s.items[s.n_items - 1].availability_zone, "us-west-2a");
	cr_expect_eq(s.items[s.n_items - 1].timestamp, 1363530951);      /* 2013-03-17T14:35:51.000Z */
	cr_expect_str_eq(s.next_token, "Qj9iZzP9N1Vh5jjNyad6X73sizWaPtVQ6328oKe9/GbmNSbOFX1TIhQaz5vok0nu");
	for (size_t i = 0; i < s.n_items; i++) {
		cr_assert(s.items[i].price > 0 && s.items[i].timestamp > 0 && s.items[i].instance_type &&
		          s.items[i].availability_zone, "item %zu", i);
	}
}

Test(ec2xml, moto_paging_and_tags) {
	_cleanup_(ec2xml_describe_instances_donep) ec2xml_describe_instances p1 = { 0 }, p2 = { 0 }, byid = { 0 };

	parse_di("moto", "describe-instances-filtered-page1.xml", &p1);
	cr_expect_str_eq(p1.next_token, "r-0c7660a55fd06c1c3");
	cr_expect_str_eq(p1.request_id, "request-id");
	cr_assert_eq(p1.n_reservations, 5);
	size_t n = 0, spot = 0;
	for (size_t r = 0; r < p1.n_reservations; r++)
		for (size_t i = 0; i < p1.reservations[r].n_instances; i++) {
			const ec2_instance *x = &p1.reservations[r].instances[i];
			n++;
			spot += streq_ptr(x->lifecycle, "spot");
			cr_expect_str_eq(x->state.name, "running");
			cr_expect_eq(x->state.code, 16);
			cr_expect_str_eq(ec2_instance_tag(x, "as:pool"), "builders");
			cr_expect_str_eq(x->launch_template_id, "lt-23d4d36cb9a5c23da");
			cr_expect_str_eq(x->launch_template_version, "1");
			cr_expect_eq(x->launch_time, 1795302131);        /* 2026-11-21T23:02:11.000Z */
		}
	cr_expect_eq(n, 10);
	cr_expect_eq(spot, 3);
	const ec2_instance *first = &p1.reservations[0].instances[0];
	cr_expect_str_eq(p1.reservations[0].reservation_id, "r-07b7183a9d564a934");
	cr_expect_str_eq(first->instance_id, "i-46cc53dc405032430");
	cr_expect_str_eq(first->instance_type, "c5.large");
	/* the instance's own address, not the ENI's copy that comes first */
	cr_expect_str_eq(first->private_ip, "10.139.92.243");
	cr_expect_str_eq(first->availability_zone, "us-east-1a");
	cr_expect_str_eq(ec2_instance_tag(first, "Name"), "builder-spot");
	cr_expect_str_eq(p1.reservations[1].instances[3].instance_id, "i-c8a588a9fabf76da4");
	cr_expect_null(p1.reservations[1].instances[3].lifecycle);

	parse_di("moto", "describe-instances-filtered-page2.xml", &p2);
	cr_expect_null(p2.next_token);
	cr_assert_eq(p2.n_reservations, 1);
	cr_expect_str_eq(p2.reservations[0].reservation_id, "r-cf365ae12503fea60");
	cr_assert_eq(p2.reservations[0].n_instances, 1);
	cr_expect_str_eq(p2.reservations[0].instances[0].instance_id, "i-c7730dbe9ed92774c");

	parse_di("moto", "describe-instances-by-id.xml", &byid);
	cr_assert_eq(byid.n_reservations, 1);
	cr_assert_eq(byid.reservations[0].n_instances, 1);
	cr_expect_str_eq(ec2_instance_tag(&byid.reservations[0].instances[0], "as:state"), "draining");
	cr_expect_eq(byid.reservations[0].instances[0].n_tags, 5);
}

Test(ec2xml, moto_run_terminate_status_spot_tags) {
	_cleanup_(ec2xml_run_instances_donep) ec2xml_run_instances sp = { 0 }, od = { 0 }, other = { 0 };
	size_t len;
	_cleanup_err_ ec2_error err = { 0 };

	parse_ri("moto", "run-instances-spot-launch-template.xml", &sp);
	cr_expect_str_eq(sp.reservation_id, "r-07b7183a9d564a934");
	cr_assert_eq(sp.n_instances, 3);
	for (size_t i = 0; i < 3; i++) {
		cr_expect_str_eq(sp.instances[i].lifecycle, "spot");
		cr_expect_str_eq(sp.instances[i].state.name, "pending");
		cr_expect_eq(sp.instances[i].state.code, 0);
		cr_expect_str_eq(sp.instances[i].client_token, "as-7f3c2a10-0001");
		cr_expect_str_eq(sp.instances[i].launch_template_id, "lt-23d4d36cb9a5c23da");
	}
	cr_expect_str_eq(sp.instances[2].instance_id, "i-ba9b559125e6de6c6");
	parse_ri("moto", "run-instances-on-demand.xml", &od);
	cr_assert_eq(od.n_instances, 4);
	cr_expect_str_eq(od.instances[0].instance_type, "m5.large");
	cr_expect_str_eq(ec2_instance_tag(&od.instances[0], "Name"), "builder-od");
	parse_ri("moto", "run-instances-other-pool.xml", &other);
	cr_assert_eq(other.n_instances, 1);
	cr_expect_str_eq(other.instances[0].instance_type, "t3.micro");
	cr_expect_null(other.instances[0].launch_template_id);
	cr_expect_str_eq(ec2_instance_tag(&other.instances[0], "as:pool"), "other");

	_cleanup_free_ char *term = sample("moto", "terminate-instances.xml", &len);
	_cleanup_(ec2xml_terminate_instances_donep) ec2xml_terminate_instances t = { 0 };
	cr_assert_eq(ec2xml_parse_terminate_instances(200, term, len, &t, &err), 0);
	cr_assert_eq(t.n_items, 2);
	cr_expect_str_eq(t.items[1].instance_id, "i-c09cb5833e9d01689");
	cr_expect_str_eq(t.items[1].current.name, "shutting-down");   /* from <currentState> */
	cr_expect_eq(t.items[1].previous.code, 16);

	_cleanup_free_ char *st = sample("moto", "describe-instance-status.xml", &len);
	_cleanup_(ec2xml_describe_instance_status_donep) ec2xml_describe_instance_status s = { 0 };
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_describe_instance_status(200, st, len, &s, &err), 0);
	cr_assert_eq(s.n_items, 2);
	cr_expect_str_eq(s.items[1].instance_id, "i-46cc53dc405032430");
	cr_expect_str_eq(s.items[1].system_status, "ok");

	_cleanup_free_ char *sph = sample("moto", "describe-spot-price-history.xml", &len);
	_cleanup_(ec2xml_spot_price_history_donep) ec2xml_spot_price_history p = { 0 };
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_spot_price_history(200, sph, len, &p, &err), 0);
	cr_assert_eq(p.n_items, 5);
	cr_expect_str_eq(p.items[4].availability_zone, "us-east-1f");
	cr_expect_str_eq(p.items[0].product_description, "Linux/UNIX (Amazon VPC)");
	cr_expect(fabs(p.items[0].price - 0.00001) < 1e-15);
	cr_expect_null(p.next_token);

	_cleanup_free_ char *ct = sample("moto", "create-tags.xml", &len);
	_cleanup_(ec2xml_ack_donep) ec2xml_ack ack = { 0 };
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_ack(200, ct, len, "CreateTags", &ack, &err), 0);
	cr_expect(ack.ok);              /* moto sends no <return> */
}

/* ---- errors ----------------------------------------------------------------------------------- */

static void expect_error(const char *group, const char *name, const char *code, const char *msg_prefix,
                         const char *request_id, ec2_error_class cls) {
	size_t len;
	_cleanup_free_ char *body = sample(group, name, &len);
	int status = sample_status(group, name);
	_cleanup_err_ ec2_error err = { 0 };
	ec2xml_terminate_instances t = { 0 };

	cr_assert_eq(ec2xml_parse_terminate_instances(status, body, len, &t, &err), -EREMOTEIO, "%s", name);
	cr_expect_eq(err.http_status, status);
	cr_expect_str_eq(err.code, code, "%s", name);
	cr_assert_not_null(err.message);
	cr_expect(strncmp(err.message, msg_prefix, strlen(msg_prefix)) == 0, "%s: message \"%s\"", name, err.message);
	if (request_id)
		cr_expect_str_eq(err.request_id, request_id, "%s", name);
	else
		cr_expect_null(err.request_id, "%s", name);
	ec2_error_class c = ec2_error_classify(err.http_status, err.code);
	cr_expect_eq(c, cls, "%s: %s, want %s", name, ec2_error_class_to_string(c), ec2_error_class_to_string(cls));
}

Test(ec2xml, error_samples) {
	expect_error("errors", "invalid-instance-id-malformed.xml", "InvalidInstanceID.Malformed",
	             "Invalid id: \"foobar\"", "dfb14b43-9a55-4d8e-b676-e8034d12bbeb", EC2_ERROR_OTHER);
	/* several lines, indented: trimmed at both ends */
	expect_error("errors", "idempotent-parameter-mismatch.xml", "IdempotentParameterMismatch",
	             "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
	             "5dabd361-d2e0-4f79-937d-4b2852a3b719", EC2_ERROR_OTHER);
	expect_error("errors", "invalid-key-pair-not-found.xml", "InvalidKeyPair.NotFound",
	             "The key pair 'test-key-pair' does not exist", "31b97300-eb8e-405e-9567-b0f57b791fed",
	             EC2_ERROR_NOT_FOUND);
	expect_error("errors", "constructed-request-limit-exceeded.xml", "RequestLimitExceeded",
	             "Request limit exceeded.", "0a1b2c3d-0000-4000-8000-000000000503", EC2_ERROR_RETRYABLE);
	expect_error("errors", "constructed-insufficient-instance-capacity.xml", "InsufficientInstanceCapacity",
	             "We currently do not have sufficient c5.large capacity", "0a1b2c3d-0000-4000-8000-000000000500",
	             EC2_ERROR_CAPACITY);
	expect_error("errors", "constructed-insufficient-instance-capacity-spot.xml", "InsufficientInstanceCapacity",
	             "There is no Spot capacity available", "0a1b2c3d-0000-4000-8000-000000000501",
	             EC2_ERROR_CAPACITY);
	expect_error("errors", "constructed-invalid-instance-id-not-found.xml", "InvalidInstanceID.NotFound",
	             "The instance ID 'i-0123456789abcdef0' does not exist", "0a1b2c3d-0000-4000-8000-000000000400",
	             EC2_ERROR_NOT_FOUND);
	expect_error("errors", "constructed-unauthorized-operation.xml", "UnauthorizedOperation",
	             "You are not authorized", "0a1b2c3d-0000-4000-8000-000000000403", EC2_ERROR_AUTH);
	expect_error("errors", "constructed-unauthorized-operation-encoded.xml", "UnauthorizedOperation",
	             "You are not authorized", "0a1b2c3d-0000-4000-8000-000000000404", EC2_ERROR_AUTH);
	expect_error("errors", "constructed-auth-failure.xml", "AuthFailure", "AWS was not able to validate",
	             "0a1b2c3d-0000-4000-8000-000000000401", EC2_ERROR_AUTH);
	expect_error("errors", "constructed-dry-run-operation.xml", "DryRunOperation", "Request would have succeeded",
	             "0a1b2c3d-0000-4000-8000-000000000412", EC2_ERROR_DRY_RUN_OK);
	/* moto: <ErrorResponse><Errors><Error>…<Type>, no RequestID */
	expect_error("moto", "error-auth-failure.xml", "AuthFailure", "AWS was not able to validate", NULL,
	             EC2_ERROR_AUTH);
	expect_error("moto", "error-terminate-invalid-instance-id-not-found.xml", "InvalidInstanceID.NotFound",
	             "The instance ID 'i-0123456789abcdef0' does not exist", "request-id", EC2_ERROR_NOT_FOUND);
	expect_error("moto", "error-describe-invalid-instance-id-malformed.xml", "InvalidInstanceID.NotFound",
	             "The instance ID 'bogus' does not exist", "request-id", EC2_ERROR_NOT_FOUND);
	expect_error("moto", "error-dry-run.xml", "DryRunOperation", "Request would have succeeded", "request-id",
	             EC2_ERROR_DRY_RUN_OK);
}

Test(ec2xml, error_details) {
	size_t len;
	_cleanup_free_ char *idem = sample("errors", "idempotent-parameter-mismatch.xml", &len);
	_cleanup_err_ ec2_error e = { 0 };

	cr_assert_eq(ec2xml_parse_error(400, idem, len, &e), 0);
	cr_expect_str_eq(e.message,
	                 "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).");
	ec2_error_done(&e);

	_cleanup_free_ char *moto = sample("moto", "error-auth-failure.xml", &len);
	cr_assert_eq(ec2xml_parse_error(401, moto, len, &e), 0);
	cr_expect_str_eq(e.type, "Sender");
	cr_expect_null(e.request_id);
	ec2_error_done(&e);

	/* moto's other spelling, no <Errors> level, <RequestId> */
	static const char flat[] = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
	                           "<Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
	cr_assert_eq(ec2xml_parse_error(400, flat, strlen(flat), &e), 0);
	cr_expect_str_eq(e.code, "Throttling");
	cr_expect_str_eq(e.message, "Rate exceeded");
	cr_expect_str_eq(e.request_id, "r-1");
	cr_expect_eq(ec2_error_classify(e.http_status, e.code), EC2_ERROR_RETRYABLE);
	ec2_error_done(&e);

	/* an envelope with a 200 status is still an error */
	_cleanup_free_ char *dry = sample("errors", "constructed-dry-run-operation.xml", &len);
	ec2xml_run_instances ri = { 0 };
	cr_expect_eq(ec2xml_parse_run_instances(200, dry, len, &ri, &e), -EREMOTEIO);
	cr_expect_str_eq(e.code, "DryRunOperation");
	ec2_error_done(&e);

	/* a success body with an error status: an error without a code */
	_cleanup_free_ char *ok = sample("aws", "run-instances.xml", &len);
	cr_expect_eq(ec2xml_parse_run_instances(503, ok, len, &ri, &e), -EREMOTEIO);
	cr_expect_null(e.code);
	cr_expect_eq(e.http_status, 503);
	cr_expect_eq(ec2xml_parse_error(503, ok, len, &e), -EBADMSG);
	cr_expect_eq(e.http_status, 503);
}

Test(ec2xml, classify) {
	static const struct {
		int status;
		const char *code;
		ec2_error_class want;
	} t[] = {
		{ 0, NULL, EC2_ERROR_RETRYABLE },
		{ 500, NULL, EC2_ERROR_RETRYABLE },
		{ 502, NULL, EC2_ERROR_RETRYABLE },
		{ 503, NULL, EC2_ERROR_RETRYABLE },
		{ 504, NULL, EC2_ERROR_RETRYABLE },
		{ 429, NULL, EC2_ERROR_RETRYABLE },
		{ 599, "SomethingNew", EC2_ERROR_RETRYABLE },
		{ 503, "RequestLimitExceeded", EC2_ERROR_RETRYABLE },
		{ 400, "RequestLimitExceeded", EC2_ERROR_RETRYABLE },
		{ 400, "EC2ThrottledException", EC2_ERROR_RETRYABLE },
		{ 400, "Throttling", EC2_ERROR_RETRYABLE },
		{ 500, "InternalError", EC2_ERROR_RETRYABLE },
		{ 500, "InternalFailure", EC2_ERROR_RETRYABLE },
		{ 503, "Unavailable", EC2_ERROR_RETRYABLE },
		{ 503, "ServiceUnavailable", EC2_ERROR_RETRYABLE },
		{ 400, "RequestTimeout", EC2_ERROR_RETRYABLE },
		{ 500, "InsufficientInstanceCapacity", EC2_ERROR_CAPACITY },
		{ 400, "InstanceLimitExceeded", EC2_ERROR_CAPACITY },
		{ 400, "VcpuLimitExceeded", EC2_ERROR_CAPACITY },
		{ 400, "MaxSpotInstanceCountExceeded", EC2_ERROR_CAPACITY },
		{ 400, "SpotMaxPriceTooLow", EC2_ERROR_CAPACITY },
		{ 400, "Unsupported", EC2_ERROR_CAPACITY },
		{ 401, NULL, EC2_ERROR_AUTH },
		{ 403, NULL, EC2_ERROR_AUTH },
		{ 401, "AuthFailure", EC2_ERROR_AUTH },
		{ 403, "UnauthorizedOperation", EC2_ERROR_AUTH },
		{ 400, "RequestExpired", EC2_ERROR_AUTH },
		{ 400, "ExpiredToken", EC2_ERROR_AUTH },
		{ 400, "InvalidInstanceID.NotFound", EC2_ERROR_NOT_FOUND },
		{ 400, "InvalidLaunchTemplateName.NotFoundException", EC2_ERROR_NOT_FOUND },
		{ 412, "DryRunOperation", EC2_ERROR_DRY_RUN_OK },
		{ 412, NULL, EC2_ERROR_OTHER },
		{ 400, "InvalidInstanceID.Malformed", EC2_ERROR_OTHER },
		{ 400, "IdempotentParameterMismatch", EC2_ERROR_OTHER },
		{ 400, "InvalidParameterValue", EC2_ERROR_OTHER },
		{ 400, "MissingParameter", EC2_ERROR_OTHER },
		{ 400, "", EC2_ERROR_OTHER },
		{ 404, NULL, EC2_ERROR_OTHER },
		{ 400, "NotFound", EC2_ERROR_OTHER },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		ec2_error_class c = ec2_error_classify(t[i].status, t[i].code);
		cr_expect_eq(c, t[i].want, "%d %s: %s, want %s", t[i].status, t[i].code ? t[i].code : "(null)",
		             ec2_error_class_to_string(c), ec2_error_class_to_string(t[i].want));
	}
	cr_expect_str_eq(ec2_error_class_to_string(EC2_ERROR_DRY_RUN_OK), "dry-run-ok");
}

/* ---- hostile and odd input ----------------------------------------------------------------------- */

/* Runs body through every parser with status; each must return want and
 * leave err with the status and no code. */
static void expect_all_parsers(int status, const char *body, size_t len, int want) {
	static const char *const roots[] = {
		"DescribeInstancesResponse", "RunInstancesResponse", "TerminateInstancesResponse",
		"DescribeInstanceStatusResponse", "DescribeReservedInstancesResponse",
		"DescribeSpotPriceHistoryResponse", "CreateTagsResponse",
	};
	for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
		_cleanup_err_ ec2_error err = { 0 };
		int r = parse_any(status, body, len, roots[i], &err);
		cr_expect_eq(r, want, "%s, status %d: %d", roots[i], status, r);
		cr_expect_eq(err.http_status, status);
		cr_expect_null(err.code);
	}
	_cleanup_err_ ec2_error err = { 0 };
	cr_expect_eq(ec2xml_parse_error(status, body, len, &err), -EBADMSG);
	cr_expect_eq(err.http_status, status);
}

Test(ec2xml, empty_html_garbage) {
	static const char *const bodies[] = {
		"",
		" ",
		"\n\n",
		"<html><body><h1>503 Service Unavailable</h1></body></html>",
		"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Error</title></head><body>oops</body></html>",
		"<?xml version=\"1.0\"?>",
		"{\"message\": \"not xml\"}",
		"upstream connect error or disconnect/reset before headers",
		"<DescribeInstancesResponse",
		"<Response><Errors><Error><Code>X</Code>",
		"\xff\xfe<\x00R\x00",
		"<a><b></a></b>",
	};
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
		size_t len = i == 10 ? 6 : strlen(bodies[i]);
		expect_all_parsers(200, bodies[i], len, -EBADMSG);
		expect_all_parsers(503, bodies[i], len, -EREMOTEIO);
		expect_all_parsers(403, bodies[i], len, -EREMOTEIO);
	}
	/* NULL with zero length */
	expect_all_parsers(200, NULL, 0, -EBADMSG);
	expect_all_parsers(500, NULL, 0, -EREMOTEIO);
	cr_expect_eq(ec2_error_classify(500, NULL), EC2_ERROR_RETRYABLE);
}

Test(ec2xml, deep_nesting) {
	/* 100000 unclosed levels: libxml2's depth limit (256 without
	 * XML_PARSE_HUGE) stops it early */
	size_t depth = 100000;
	char *deep = malloc(3 * depth + 1);
	cr_assert_not_null(deep);
	for (size_t i = 0; i < depth; i++)
		memcpy(deep + 3 * i, "<a>", 3);
	deep[3 * depth] = 0;
	expect_all_parsers(200, deep, 3 * depth, -EBADMSG);
	expect_all_parsers(500, deep, 3 * depth, -EREMOTEIO);
	free(deep);

	/* well-formed but 10000 levels deep inside a valid response */
	_cleanup_free_ char *body = NULL;
	size_t levels = 10000;
	char *mid = calloc(levels, 7), *end = calloc(levels, 8);
	cr_assert(mid && end);
	for (size_t i = 0; i < levels; i++) {
		memcpy(mid + 3 * i, "<x>", 3);
		memcpy(end + 4 * i, "</x>", 4);
	}
	cr_assert(asprintf(&body, "<DescribeInstancesResponse><reservationSet><item>%s%s</item></reservationSet>"
	                          "</DescribeInstancesResponse>", mid, end) >= 0);
	free(mid);
	free(end);
	_cleanup_err_ ec2_error err = { 0 };
	ec2xml_describe_instances d = { 0 };
	cr_expect_eq(ec2xml_parse_describe_instances(200, body, strlen(body), &d, &err), -EBADMSG);

	/* 200 levels of an unknown element are fine, and skipped */
	_cleanup_free_ char *ok = NULL, *m2 = calloc(200, 7), *e2 = calloc(200, 8);
	cr_assert(m2 && e2);
	for (size_t i = 0; i < 200; i++) {
		memcpy(m2 + 3 * i, "<x>", 3);
		memcpy(e2 + 4 * i, "</x>", 4);
	}
	cr_assert(asprintf(&ok, "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
	                        "<future>%s<instanceId>i-deep</instanceId>%s</future><instanceId>i-real</instanceId>"
	                        "</item></instancesSet></item></reservationSet></DescribeInstancesResponse>",
	                   m2, e2) >= 0);
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_describe_instances(200, ok, strlen(ok), &d, &err), 0);
	cr_expect_str_eq(d.reservations[0].instances[0].instance_id, "i-real");
	ec2xml_describe_instances_done(&d);
}

Test(ec2xml, entity_bombs_are_not_expanded, .timeout = 20) {
	/* billion laughs: a DTD is refused outright (and never expanded) */
	static const char lol[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE DescribeInstancesResponse [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n"
		"<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
		"<instanceId>i-1</instanceId><tagSet><item><key>k</key><value>&lol9;</value></item></tagSet>"
		"</item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
	/* an external entity: must not be fetched or read */
	static const char xxe[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE Response [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
		"<Response><Errors><Error><Code>&xxe;</Code><Message>&xxe;</Message></Error></Errors></Response>";
	/* an entity defined nowhere */
	static const char undef[] =
		"<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
		"<instanceId>&lol9;</instanceId></item></instancesSet></item></reservationSet>"
		"</DescribeInstancesResponse>";
	_cleanup_err_ ec2_error err = { 0 };
	ec2xml_describe_instances d = { 0 };
	uint64_t t0 = hx_now_usec();

	cr_expect_eq(ec2xml_parse_describe_instances(200, lol, strlen(lol), &d, &err), -EBADMSG);
	cr_expect_null(err.code);
	ec2_error_done(&err);
	cr_expect_eq(ec2xml_parse_describe_instances(400, xxe, strlen(xxe), &d, &err), -EREMOTEIO);
	cr_expect_null(err.code);
	cr_expect_null(err.message);
	ec2_error_done(&err);
	cr_expect_eq(ec2xml_parse_error(400, xxe, strlen(xxe), &err), -EBADMSG);
	cr_expect_null(err.code);
	ec2_error_done(&err);
	cr_expect_eq(ec2xml_parse_describe_instances(200, undef, strlen(undef), &d, &err), -EBADMSG);
	/* nothing was expanded: all of it took well under a second */
	cr_expect_lt(hx_now_usec() - t0, 2 * USEC_PER_SEC);

	/* predefined entities and character references are plain text */
	static const char amp[] =
		"<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
		"<instanceId>i-1</instanceId><tagSet><item><key>a&amp;b</key><value>&lt;&#x263A;&#65;<![CDATA[<c>]]></value>"
		"</item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
	ec2_error_done(&err);
	cr_assert_eq(ec2xml_parse_describe_instances(200, amp, strlen(amp), &d, &err), 0);
	cr_expect_str_eq(d.reservations[0].instances[0].tags[0].key, "a&b");
	cr_expect_str_eq(d.reservations[0].instances[0].tags[0].value, "<\xe2\x98\xba" "A<c>");
	ec2xml_describe_instances_done(&d);
}

Test(ec2xml, namespaces_and_unknown_elements) {
	/* a prefix, another namespace version, new elements at every level,
	 * and nested elements that share names with the ones we read */
	static const char body[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		"<ec2:DescribeInstancesResponse xmlns:ec2=\"http://ec2.amazonaws.com/doc/2099-01-01/\">"
		"<ec2:requestId>req</ec2:requestId><ec2:brandNew><ec2:nextToken>nope</ec2:nextToken></ec2:brandNew>"
		"<ec2:reservationSet><ec2:item><ec2:reservationId>r-1</ec2:reservationId>"
		"<ec2:instancesSet><ec2:item>"
		"<ec2:networkInterfaceSet><ec2:item><ec2:privateIpAddress>10.9.9.9</ec2:privateIpAddress>"
		"<ec2:instanceId>i-eni</ec2:instanceId></ec2:item></ec2:networkInterfaceSet>"
		"<ec2:instanceId>i-1</ec2:instanceId><ec2:instanceState><ec2:code> 16 </ec2:code>"
		"<ec2:name>running</ec2:name><ec2:extra>1</ec2:extra></ec2:instanceState>"
		"<ec2:stateReason><ec2:code>x</ec2:code></ec2:stateReason>"
		"<ec2:privateIpAddress>10.0.0.1</ec2:privateIpAddress>"
		"<other:thing xmlns:other=\"urn:x\"><other:instanceId>i-other</other:instanceId></other:thing>"
		"<ec2:tagSet><ec2:item><ec2:key>k</ec2:key><ec2:value>  spaced  </ec2:value></ec2:item>"
		"<ec2:item><ec2:key>nov</ec2:key></ec2:item></ec2:tagSet>"
		"<ec2:launchTime>2024-02-29T23:59:59+01:00</ec2:launchTime>"
		"</ec2:item></ec2:instancesSet></ec2:item></ec2:reservationSet>"
		"<ec2:nextToken></ec2:nextToken>"
		"</ec2:DescribeInstancesResponse>";
	_cleanup_(ec2xml_describe_instances_donep) ec2xml_describe_instances d = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_eq(ec2xml_parse_describe_instances(200, body, strlen(body), &d, &err), 0);
	cr_expect_str_eq(d.request_id, "req");
	cr_expect_null(d.next_token);           /* empty token: last page */
	const ec2_instance *i = &d.reservations[0].instances[0];
	cr_expect_str_eq(i->instance_id, "i-1");
	cr_expect_eq(i->state.code, 16);
	cr_expect_str_eq(i->private_ip, "10.0.0.1");
	cr_expect_str_eq(ec2_instance_tag(i, "k"), "  spaced  ");      /* tag values kept as sent */
	cr_expect_str_eq(ec2_instance_tag(i, "nov"), "");
	cr_expect_eq(i->launch_time, 1709251199 - 3600);
}

Test(ec2xml, rejects_bad_fields) {
	static const char *const bad[] = {
		/* no instanceId */
		"<RunInstancesResponse><instancesSet><item><instanceType>t3.micro</instanceType></item>"
		"</instancesSet></RunInstancesResponse>",
		/* empty instanceId */
		"<RunInstancesResponse><instancesSet><item><instanceId/></item></instancesSet></RunInstancesResponse>",
		/* a state code that is not a number */
		"<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId><instanceState><code>16x</code>"
		"</instanceState></item></instancesSet></RunInstancesResponse>",
		/* a bad time */
		"<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId><launchTime>yesterday</launchTime>"
		"</item></instancesSet></RunInstancesResponse>",
		/* a tag without a key */
		"<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId><tagSet><item><value>v</value>"
		"</item></tagSet></item></instancesSet></RunInstancesResponse>",
		/* another action's response */
		"<TerminateInstancesResponse/>",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(ec2xml_run_instances_donep) ec2xml_run_instances r = { 0 };
		_cleanup_err_ ec2_error err = { 0 };
		cr_expect_eq(ec2xml_parse_run_instances(200, bad[i], strlen(bad[i]), &r, &err), -EBADMSG, "case %zu", i);
		cr_expect_null(r.instances);
		cr_expect_eq(err.http_status, 200);
	}

	static const char *const bad_prices[] = { "", "abc", "1.0x", "-1", "nan", "inf", " 1" };
	for (size_t i = 0; i < ELEMENTSOF(bad_prices); i++) {
		_cleanup_free_ char *body = NULL;
		cr_assert(asprintf(&body, "<DescribeSpotPriceHistoryResponse><spotPriceHistorySet><item>"
		                          "<spotPrice>%s</spotPrice></item></spotPriceHistorySet>"
		                          "</DescribeSpotPriceHistoryResponse>", bad_prices[i]) >= 0);
		_cleanup_(ec2xml_spot_price_history_donep) ec2xml_spot_price_history s = { 0 };
		_cleanup_err_ ec2_error err = { 0 };
		cr_expect_eq(ec2xml_parse_spot_price_history(200, body, strlen(body), &s, &err), -EBADMSG, "\"%s\"",
		             bad_prices[i]);
	}

	static const char ret_false[] = "<DeleteTagsResponse><return>false</return></DeleteTagsResponse>";
	static const char ret_bad[] = "<DeleteTagsResponse><return>maybe</return></DeleteTagsResponse>";
	_cleanup_(ec2xml_ack_donep) ec2xml_ack a = { 0 };
	_cleanup_err_ ec2_error err = { 0 };
	cr_assert_eq(ec2xml_parse_ack(200, ret_false, strlen(ret_false), "DeleteTags", &a, &err), 0);
	cr_expect(!a.ok);
	ec2_error_done(&err);
	ec2xml_ack b = { 0 };
	cr_expect_eq(ec2xml_parse_ack(200, ret_bad, strlen(ret_bad), "DeleteTags", &b, &err), -EBADMSG);
}

Test(ec2xml, random_bytes_never_crash) {
	/* splitmix64, fixed seed: mangled samples and plain noise */
	uint64_t s = 0xec2c0ffeeULL;
#define RNG() ({ uint64_t z = (s += 0x9e3779b97f4a7c15ULL); z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL; \
		 z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL; z ^ (z >> 31); })
	size_t len;
	_cleanup_free_ char *orig = sample("moto", "run-instances-other-pool.xml", &len);
	static const char *const roots[] = { "RunInstancesResponse", "Response" };

	for (int round = 0; round < 2000; round++) {
		size_t n = round % 2 ? len : (size_t) (RNG() % 512);
		char *b = malloc(n ? n : 1);
		cr_assert_not_null(b);
		if (round % 2) {
			memcpy(b, orig, n);
			for (int k = 0; k < 1 + (int) (RNG() % 8); k++)
				b[RNG() % n] = "<>/&;\"'x\0\xff"[RNG() % 11];
		} else
			for (size_t k = 0; k < n; k++)
				b[k] = (char) (RNG() & 0xff);
		_cleanup_err_ ec2_error err = { 0 };
		int r = parse_any(round % 4 < 2 ? 200 : 500, n ? b : NULL, n, roots[round % 2 == 0], &err);
		cr_assert(r == 0 || r == -EBADMSG || r == -EREMOTEIO, "round %d: %d", round, r);
		free(b);
	}
#undef RNG
}

/* ---- times ------------------------------------------------------------------------------------------ */

Test(ec2xml, times) {
	static const struct {
		const char *s;
		time_t want;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2013-03-20T13:35:55.000Z", 1363786555 },
		{ "2013-03-20T13:35:55Z", 1363786555 },
		{ "2013-03-20T13:35:55.123456789Z", 1363786555 },
		{ "2013-03-20T13:35:55", 1363786555 },
		{ "2013-03-20T14:35:55+01:00", 1363786555 },
		{ "2013-03-20T12:35:55-0100", 1363786555 },
		{ "2024-02-29T00:00:00Z", 1709164800 },
		{ "2038-01-19T03:14:08Z", (time_t) 2147483648LL },
	};
	static const char *const bad[] = {
		"", "2013", "2013-03-20", "2013-03-20 13:35:55Z", "2013-13-20T13:35:55Z", "2013-02-30T00:00:00Z",
		"2023-02-29T00:00:00Z", "2013-03-20T24:00:00Z", "2013-03-20T13:35:55.Z", "2013-03-20T13:35:55ZZ",
		"2013-03-20T13:35:55+1", "x013-03-20T13:35:55Z", "2013-03-20T13:35:55 Z",
	};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		time_t t = -1;
		cr_expect_eq(ec2xml_parse_time(good[i].s, &t), 0, "%s", good[i].s);
		cr_expect_eq(t, good[i].want, "%s: %lld", good[i].s, (long long) t);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		time_t t = 42;
		cr_expect_eq(ec2xml_parse_time(bad[i], &t), -EINVAL, "\"%s\"", bad[i]);
		cr_expect_eq(t, 42);
	}
}

/* CreateLaunchTemplateVersion (the AWS API reference's example; moto
 * answers the same shape). */
Test(ec2xml, create_launch_template_version) {
	static const char body[] =
		"<CreateLaunchTemplateVersionResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
		"<requestId>65cadec1-b364-4354-8ca8-4176dexample</requestId><launchTemplateVersion>"
		"<createTime>2017-10-31T11:56:00.000Z</createTime><defaultVersion>false</defaultVersion>"
		"<launchTemplateData><imageId>ami-8c1be5f6</imageId><instanceType>t2.micro</instanceType>"
		"</launchTemplateData><launchTemplateId>lt-0a20c965061f64abc</launchTemplateId>"
		"<launchTemplateName>MyLaunchTemplate</launchTemplateName><versionNumber> 2 </versionNumber>"
		"</launchTemplateVersion></CreateLaunchTemplateVersionResponse>";
	ec2xml_launch_template_version v = { 0 };
	_cleanup_err_ ec2_error err = { 0 };

	cr_assert_eq(ec2xml_parse_launch_template_version(200, body, sizeof body - 1, &v, &err), 0);
	cr_expect_str_eq(v.request_id, "65cadec1-b364-4354-8ca8-4176dexample");
	cr_expect_str_eq(v.launch_template_id, "lt-0a20c965061f64abc");
	cr_expect_str_eq(v.version_number, "2");
	cr_expect_str_eq(v.image_id, "ami-8c1be5f6");
	ec2xml_launch_template_version_done(&v);
	static const char none[] = "<CreateLaunchTemplateVersionResponse><requestId>x</requestId>"
	                           "</CreateLaunchTemplateVersionResponse>";
	cr_expect_eq(ec2xml_parse_launch_template_version(200, none, sizeof none - 1, &v, &err), -EBADMSG);
	static const char other[] = "<RunInstancesResponse/>";
	cr_expect_eq(ec2xml_parse_launch_template_version(200, other, sizeof other - 1, &v, &err), -EBADMSG);
}
