/* test_ctl_hosts.c — `corralctl hosts`, the built binary against a real
 * etcd and moto (through tests/ec2proxy.py): instances launched in moto,
 * host records as the leader writes them, two registered nodes (load,
 * status), one instance held with `corralctl hold --reason`, maintenance
 * on; the rows asserted in all three formats (JSON parsed with jansson,
 * CSV read back with the RFC 4180 reader of csv-test.h, the table's columns
 * aligned), with EC2 asked (a record whose instance is gone shows as the
 * leader would see it: terminated) and without (etcd's view, said so);
 * and `ec2 describe`, which prints through the same table code. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv-test.h"
#include "ctl-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define REASON  "disk check, \"urgent\""        /* a comma and quotes: CSV must quote it */

static hx_etcd *etcd;
static hx_moto *moto;
static char *ids[4];            /* web: ready+node, ready+node+held, launching; batch: ready */
static char *unrecorded;        /* running in moto, no record (within the launch grace) */
static char *ami, *az;

static char *run_instance(const char *pool) {
	json_auto_t *out = NULL;
	char body[256];
	snprintf(body, sizeof body, "{\"tags\": {\"corral:cluster\": \"%s\", \"corral:pool\": \"%s\"}, \"type\": \"t3.micro\"}",
		 CLUSTER, pool);
	cr_assert_eq(hx_moto_run(moto, body, &out), 0);
	const char *id = json_string_value(json_object_get(out, "id"));
	cr_assert_not_null(id);
	return strdup(id);
}

static void put(const char *sub, const char *value) {
	char key[256];
	snprintf(key, sizeof key, PREFIX "/%s", sub);
	cr_assert_eq(hx_etcd_put(etcd, key, value), 0, "put %s", key);
}

/* A host record as the leader writes it (the codec's JSON). */
static void put_host(const char *id, const char *pool, const char *state, long launched) {
	char sub[128], rec[1024];
	snprintf(sub, sizeof sub, "scale/hosts/%s", id);
	snprintf(rec, sizeof rec,
		 "{\"id\": \"%s\", \"pool\": \"%s\", \"state\": \"%s\", \"market\": \"on-demand\","
		 " \"instance_type\": \"t3.micro\", \"availability_zone\": \"%s\", \"launch_time\": %ld,"
		 " \"state_since\": %ld, \"node_id\": null, \"last_seen\": 0, \"jobs\": 0, \"job_capacity\": 0,"
		 " \"memory_used\": 0, \"cluster_tagged\": true, \"hold\": false}",
		 id, pool, state, az, launched, launched);
	put(sub, rec);
}

/* A corrald node registered as instance id, with its load and status. */
static void register_node(const char *node, const char *id, int jobs, const char *applied) {
	char sub[128], rec[512];
	snprintf(sub, sizeof sub, "nodes/%s", node);
	snprintf(rec, sizeof rec, "{\"node_id\": \"%s\", \"instance_id\": \"%s\", \"address\": \"10.0.0.1\"}", node, id);
	put(sub, rec);
	snprintf(sub, sizeof sub, "load/%s", node);
	snprintf(rec, sizeof rec, "{\"jobs\": %d, \"capacity\": 4, \"memory\": 0.5}", jobs);
	put(sub, rec);
	snprintf(sub, sizeof sub, "status/%s", node);
	snprintf(rec, sizeof rec, "{\"node_id\": \"%s\", \"target\": \"%s\", \"applied\": \"%s\", \"ok\": true}", node,
		 applied, applied);
	put(sub, rec);
}

static int ctl(bool with_ec2, char **out, char **err, char *const args[]) {
	_cleanup_free_ char *ep = NULL;
	char *env[16];
	size_t k = 0;

	if (with_ec2) {
		for (char *const *e = hx_moto_env(moto); *e && k < ELEMENTSOF(env) - 2; e++)
			env[k++] = *e;
		cr_assert_geq(asprintf(&ep, "CORRAL_EC2_ENDPOINT=%s", hx_moto_endpoint(moto)), 0);
		env[k++] = ep;
	}
	env[k] = NULL;
	return ctlt_run_env(hx_etcd_endpoints(etcd), PREFIX, out, err, args, env);
}

#define CTL(ec2, out, err, ...) ctl((ec2), (out), (err), (char *const[]){ __VA_ARGS__, NULL })

static void up(void) {
	json_auto_t *setup = NULL;
	long now = (long) time(NULL);

	/* the child's AWS settings come from hx_moto_env only */
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("CORRAL_EC2_ENDPOINT");
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	ami = strdup(json_string_value(json_object_get(setup, "ami")));
	az = strdup(json_string_value(json_object_get(setup, "az")));
	for (size_t i = 0; i < 3; i++)
		ids[i] = run_instance("web");
	ids[3] = run_instance("batch");
	unrecorded = run_instance("web");
	put("scale/policy",
	    "{\"pools\": {\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"t3.micro\"],"
	    " \"subnets\": [{\"id\": \"subnet-a\"}], \"min\": 0, \"max\": 5, \"billing\": \"hourly\"}}}");
	put_host(ids[0], "web", "ready", now - 7200 - 42 * 60);
	put_host(ids[1], "web", "ready", now - 600);
	put_host(ids[2], "web", "launching", now - 60);
	put_host(ids[3], "batch", "ready", now - 900);
	/* the leader recorded it, its instance is gone long since */
	put_host("i-0000000000000dead", "web", "ready", now - 86400);
	register_node("node-a", ids[0], 3, "cfg-7");
	register_node("node-b", ids[1], 0, "cfg-6");
}

static void down(void) {
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		free(ids[i]);
	free(unrecorded);
	free(ami);
	free(az);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
}

TestSuite(ctl_hosts, .init = up, .fini = down, .timeout = 180);

/* ---- readers ---- */

static json_t *row_of(json_t *rows, const char *id) {
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		if (streq_ptr(json_string_value(json_object_get(r, "instance_id")), id))
			return r;
	return NULL;
}

static const char *s_of(json_t *row, const char *key) {
	return json_string_value(json_object_get(row, key));
}

static json_t *csv_row_of(json_t *csv, const char *id) {
	size_t i;
	json_t *r;
	json_array_foreach(csv, i, r)
		if (streq_ptr(json_string_value(json_array_get(r, 0)), id))
			return r;
	return NULL;
}

static const char *csv_field(json_t *csv, json_t *row, const char *name) {
	return json_string_value(json_array_get(row, csv_column(csv, name)));
}

static json_t *hosts_json(bool with_ec2, char **err, char *const extra) {
	_cleanup_free_ char *out = NULL;
	json_error_t jerr;

	if (extra)
		cr_assert_eq(CTL(with_ec2, &out, err, "-o", "json", "hosts", "--pool", extra), 0, "%s", err ? *err : "");
	else
		cr_assert_eq(CTL(with_ec2, &out, err, "-o", "json", "hosts"), 0, "%s", err ? *err : "");
	json_t *j = json_loads(out, 0, &jerr);
	cr_assert(json_is_array(j), "not a JSON array (%s): %s", jerr.text, out);
	return j;
}

/* ---- tests ---- */

Test(ctl_hosts, json_with_ec2) {
	_cleanup_free_ char *err = NULL, *herr = NULL, *merr = NULL;
	cr_assert_eq(CTL(false, NULL, &herr, "hold", ids[1], "--reason", REASON), 0, "%s", herr);
	cr_assert_eq(CTL(false, NULL, &merr, "maintenance", "on", "--reason", "kernel 6.1"), 0, "%s", merr);
	json_auto_t *rows = hosts_json(true, &err, NULL);

	cr_assert_null(strstr(err, "EC2 was not asked"), "%s", err);
	/* 4 live records, the gone one, the unrecorded instance */
	cr_assert_eq(json_array_size(rows), 6, "%s", json_dumps(rows, 0));
	/* sorted by pool, then id: batch first */
	cr_assert_str_eq(s_of(json_array_get(rows, 0), "instance_id"), ids[3]);

	json_t *a = row_of(rows, ids[0]);
	cr_assert_not_null(a);
	cr_assert_str_eq(s_of(a, "node_id"), "node-a");
	cr_assert_str_eq(s_of(a, "pool"), "web");
	cr_assert_str_eq(s_of(a, "state"), "ready");
	cr_assert_str_eq(s_of(a, "market"), "on-demand");
	cr_assert_str_eq(s_of(a, "type"), "t3.micro");
	cr_assert_str_eq(s_of(a, "zone"), az);
	cr_assert_str_eq(s_of(a, "image"), ami, "the AMI EC2 reports");
	cr_assert_str_eq(s_of(a, "config_applied"), "cfg-7");
	cr_assert_eq(json_integer_value(json_object_get(a, "jobs")), 3);
	cr_assert_str_eq(s_of(a, "billing"), "hourly");
	json_int_t up = json_integer_value(json_object_get(a, "uptime_seconds"));
	cr_assert(up >= 7200 + 42 * 60 && up < 7200 + 44 * 60, "uptime %lld", (long long) up);
	json_int_t minute = json_integer_value(json_object_get(a, "billed_minute"));
	cr_assert(minute == 42 || minute == 43, "minute %lld", (long long) minute);
	cr_assert(json_is_true(json_object_get(a, "in_ec2")));
	cr_assert(json_is_null(json_object_get(a, "hold")));
	cr_assert_str_eq(s_of(json_object_get(a, "maintenance"), "reason"), "kernel 6.1");
	cr_assert_not_null(strchr(s_of(a, "launched"), 'T'), "ISO 8601");

	json_t *b = row_of(rows, ids[1]);
	json_t *hold = json_object_get(b, "hold");
	cr_assert_str_eq(s_of(hold, "reason"), REASON);
	cr_assert_str_eq(s_of(hold, "source"), "holds");
	cr_assert_not_null(strchr(s_of(hold, "by"), '@'), "user@host");
	cr_assert_not_null(s_of(hold, "since"));
	cr_assert_str_eq(s_of(b, "config_applied"), "cfg-6");

	json_t *c = row_of(rows, ids[2]);
	cr_assert_str_eq(s_of(c, "state"), "launching");
	cr_assert(json_is_null(json_object_get(c, "node_id")));
	cr_assert(json_is_null(json_object_get(c, "config_applied")));

	/* the leader's observe: the record whose instance is gone is terminated */
	json_t *gone = row_of(rows, "i-0000000000000dead");
	cr_assert_str_eq(s_of(gone, "state"), "terminated");
	cr_assert(json_is_false(json_object_get(gone, "in_ec2")));
	cr_assert(json_is_null(json_object_get(gone, "uptime_seconds")), "gone: no uptime");

	json_t *u = row_of(rows, unrecorded);
	cr_assert_str_eq(s_of(u, "state"), "unrecorded");
	cr_assert_str_eq(s_of(u, "pool"), "web");
	cr_assert_str_eq(s_of(u, "image"), ami);

	/* --pool */
	json_auto_t *batch = hosts_json(true, NULL, "batch");
	cr_assert_eq(json_array_size(batch), 1);
	cr_assert_str_eq(s_of(json_array_get(batch, 0), "billing"), "per-second", "not in the policy: the default");
	cr_assert(json_is_null(json_object_get(json_array_get(batch, 0), "billed_minute")));

	cr_assert_eq(CTL(false, NULL, NULL, "maintenance", "off"), 0);
	cr_assert_eq(CTL(false, NULL, NULL, "unhold", ids[1]), 0);
}

Test(ctl_hosts, without_ec2_shows_what_etcd_knows) {
	_cleanup_free_ char *err = NULL;
	json_auto_t *rows = hosts_json(false, &err, NULL);

	cr_assert_not_null(strstr(err, "EC2 was not asked"), "%s", err);
	cr_assert_eq(json_array_size(rows), 5, "the records only: %s", json_dumps(rows, 0));
	cr_assert_null(row_of(rows, unrecorded));
	json_t *gone = row_of(rows, "i-0000000000000dead");
	cr_assert_str_eq(s_of(gone, "state"), "ready", "not asked: taken as recorded");
	cr_assert(json_is_null(json_object_get(gone, "in_ec2")));
	cr_assert_str_eq(s_of(row_of(rows, ids[0]), "node_id"), "node-a");
	cr_assert(json_is_null(json_object_get(row_of(rows, ids[0]), "image")), "only EC2 knows the AMI");
}

Test(ctl_hosts, csv_round_trips) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	cr_assert_eq(CTL(false, NULL, NULL, "hold", ids[1], "--reason", REASON), 0);
	cr_assert_eq(CTL(true, &out, &err, "-o", "csv", "hosts"), 0, "%s", err);
	json_auto_t *csv = csv_parse(out);
	static const char *const header[] = { "instance_id", "node_id", "pool", "state", "market", "type", "zone",
					      "launched", "uptime_seconds", "billing", "billed_minute", "jobs", "image",
					      "config_applied", "in_ec2", "hold_by", "hold_reason", "hold_since",
					      "maintenance_reason" };
	json_t *h = json_array_get(csv, 0);

	cr_assert_eq(json_array_size(h), ELEMENTSOF(header));
	for (size_t i = 0; i < ELEMENTSOF(header); i++)
		cr_assert_str_eq(json_string_value(json_array_get(h, i)), header[i]);
	cr_assert_eq(json_array_size(csv), 1 + 6, "header and six rows:\n%s", out);
	for (size_t i = 1; i < json_array_size(csv); i++)
		cr_assert_eq(json_array_size(json_array_get(csv, i)), ELEMENTSOF(header), "row %zu", i);
	cr_assert_not_null(strstr(out, "\r\n"), "CRLF line ends");

	json_t *b = csv_row_of(csv, ids[1]);
	cr_assert_str_eq(csv_field(csv, b, "hold_reason"), REASON, "quoted and read back whole");
	cr_assert_str_eq(csv_field(csv, b, "node_id"), "node-b");
	cr_assert_str_eq(csv_field(csv, b, "in_ec2"), "true");
	json_t *a = csv_row_of(csv, ids[0]);
	cr_assert_str_eq(csv_field(csv, a, "jobs"), "3");
	cr_assert_str_eq(csv_field(csv, a, "config_applied"), "cfg-7");
	cr_assert_str_eq(csv_field(csv, a, "hold_reason"), "", "not held: empty");
	cr_assert_str_eq(csv_field(csv, csv_row_of(csv, ids[2]), "node_id"), "");
	cr_assert_str_eq(csv_field(csv, csv_row_of(csv, "i-0000000000000dead"), "state"), "terminated");
	cr_assert_eq(CTL(false, NULL, NULL, "unhold", ids[1]), 0);
}

Test(ctl_hosts, table_is_aligned) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	cr_assert_eq(CTL(false, NULL, NULL, "hold", ids[1], "--reason", "disk check"), 0);
	cr_assert_eq(CTL(true, &out, &err, "hosts"), 0, "%s", err);
	cr_log_info("corralctl hosts:\n%s", out);
	static const char *const cols[] = { "INSTANCE", "NODE",	    "POOL",   "STATE",	"MARKET",
					    "TYPE",	"ZONE",	    "LAUNCHED", "UPTIME", "BILLED",
					    "JOBS",	"IMAGE",    "CONFIG",	"HOLD/MAINTENANCE" };
	char *save = NULL, *line = strtok_r(out, "\n", &save);
	size_t at[ELEMENTSOF(cols)], n = 0;

	cr_assert_not_null(line);
	for (size_t j = 0; j < ELEMENTSOF(cols); j++) {
		const char *p = strstr(line, cols[j]);
		cr_assert_not_null(p, "column %s: %s", cols[j], line);
		at[j] = (size_t) (p - line);
		cr_assert(j == 0 || at[j] > at[j - 1]);
	}
	bool saw_hold = false, saw_launching = false;
	for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		/* every cell starts where its header does, after a space; none is empty */
		for (size_t j = 1; j < ELEMENTSOF(cols); j++) {
			cr_assert_gt(strlen(line), at[j], "%s", line);
			cr_assert(line[at[j] - 1] == ' ' && line[at[j]] != ' ', "column %s: %s", cols[j], line);
		}
		if (startswith(line, ids[1])) {
			saw_hold = true;
			cr_assert_not_null(strstr(line + at[13], "hold by "), "%s", line);
			cr_assert_not_null(strstr(line + at[13], ": disk check"), "%s", line);
		}
		if (startswith(line, ids[2])) {
			saw_launching = true;
			cr_assert(strncmp(line + at[1], "- ", 2) == 0, "no node: '-': %s", line);
			cr_assert(strncmp(line + at[3], "launching", 9) == 0, "%s", line);
		}
		if (startswith(line, ids[0]))
			cr_assert(strncmp(line + at[9], "minute 4", 8) == 0, "the billed hour: %s", line);
		if (startswith(line, ids[3]))
			cr_assert(strncmp(line + at[9], "per-second", 10) == 0, "%s", line);
	}
	cr_assert_eq(n, 6);
	cr_assert(saw_hold && saw_launching);
	cr_assert_eq(CTL(false, NULL, NULL, "unhold", ids[1]), 0);
}

Test(ctl_hosts, bad_usage_exits_2) {
	_cleanup_free_ char *err = NULL, *e2 = NULL;
	cr_assert_eq(CTL(false, NULL, &err, "-o", "csv", "status"), 2);
	cr_assert_not_null(strstr(err, "csv"), "%s", err);
	cr_assert_eq(CTL(false, NULL, &e2, "-o", "yaml", "hosts"), 2);
	cr_assert_not_null(strstr(e2, "yaml"), "%s", e2);
}

/* ec2 describe prints through the same table code (ctl_print_array). */
Test(ctl_hosts, ec2_describe_lists_the_instances) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	cr_assert_eq(CTL(true, &out, &err, "--cluster", CLUSTER, "ec2", "describe"), 0, "%s", err);
	cr_assert(startswith(out, "INSTANCE "), "%s", out);
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		cr_assert_not_null(strstr(out, ids[i]), "%s: %s", ids[i], out);
	cr_assert_not_null(strstr(out, "corral:pool=web"), "%s", out);
}
