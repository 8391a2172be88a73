/* test_observe_same.c — the "same records, same actions": each
 * fixture of tests/data/observe/ marked "same" (the seed examples and the
 * cases where the leader and `corralctl autoscale plan` (or -n) used to differ) is
 * put in a real etcd; the real corralctl's plan and the leader's own dry
 * run (scaler_plan_once, moto answering EC2, where each host record's
 * instance runs) must be the same text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec2.h"
#include "observe-fixture.h"
#include "scale-test.h"
#include "scaler.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"

static hx_etcd *etcd;
static hx_moto *moto;
static et t;
static ec2_client *ec2;

static void same_up(void) {
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start");
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	st_ec2_client(moto, t.event, &ec2);
}

static void same_down(void) {
	ec2 = ec2_client_free(ec2);
	et_close(&t);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
}

TestSuite(observe_same, .init = same_up, .fini = same_down, .timeout = 120);

/* ---- the fixture's hosts as moto instances ---- */

typedef struct launched {
	bool done;
	int error;
	char *ids[64];
	size_t n;
} launched;

static void on_run(ec2_client *c, const ec2_reply *r, const ec2xml_run_instances *res, void *ud) {
	launched *l = ud;
	l->done = true;
	l->error = r->error;
	for (size_t i = 0; r->error >= 0 && i < res->n_instances && l->n < ELEMENTSOF(l->ids); i++)
		l->ids[l->n++] = strdup(res->instances[i].instance_id);
}

static bool is_done(void *ud) {
	return *(bool *) ud;
}

/* s with every "from" (quoted) or key tail /from replaced by to. */
static char *renamed(const char *s, const char *from, const char *to, bool key) {
	_cleanup_free_ char *pat = NULL, *rep = NULL;
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	cr_assert_not_null(f);
	cr_assert_geq(asprintf(&pat, key ? "/%s" : "\"%s\"", from), 0);
	cr_assert_geq(asprintf(&rep, key ? "/%s" : "\"%s\"", to), 0);
	for (const char *p = s; *p;) {
		const char *hit = strstr(p, pat);
		if (!hit || (key && hit[strlen(pat)])) {
			fputs(p, f);
			break;
		}
		fwrite(p, 1, (size_t) (hit - p), f);
		fputs(rep, f);
		p = hit + strlen(pat);
	}
	cr_assert_eq(fclose(f), 0);
	return out;
}

/* Every host record of the fixture gets a running moto instance tagged for
 * the cluster, and the fixture is renamed to its id: the leader then sees
 * what it would in EC2 (the records' instances alive, nothing else). */
static void instances_for_hosts(fx *f) {
	json_auto_t *setup = NULL;
	const char *const *hosts[64];
	size_t n = 0;

	for (size_t i = 0; i < f->n; i++)
		if (startswith(f->keys[i], "scale/hosts/") && n < ELEMENTSOF(hosts))
			hosts[n++] = (const char *const *) &f->keys[i];
	if (n == 0)
		return;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	const ec2_kv tags[] = { { "corral:cluster", CLUSTER } };
	ec2_launch l = { .launch_template_id = json_string_value(json_object_get(setup, "launch_template")),
			 .subnet_id = json_string_value(json_object_get(setup, "subnet")),
			 .count = (unsigned) n, .tags = tags, .n_tags = 1, .client_token = "observe-same" };
	launched run = {};
	cr_assert_eq(ec2_run_instances(ec2, &l, on_run, &run, NULL), 0);
	cr_assert(et_run_until(&t, is_done, &run.done, 30 * USEC_PER_SEC));
	cr_assert_eq(run.error, 0);
	cr_assert_eq(run.n, n);
	for (size_t h = 0; h < n; h++) {
		_cleanup_free_ char *from = strdup(*hosts[h] + strlen("scale/hosts/"));
		for (size_t i = 0; i < f->n; i++) {
			char *k = renamed(f->keys[i], from, run.ids[h], true);
			char *v = renamed(f->vals[i], from, run.ids[h], false);
			free(f->keys[i]);
			free(f->vals[i]);
			f->keys[i] = k;
			f->vals[i] = v;
		}
	}
	for (size_t i = 0; i < run.n; i++)
		free(run.ids[i]);
}

/* corralctl's plan (`autoscale plan`, or `-n autoscale`): its output
 * after the two header lines. */
static char *cli_plan(bool dash_n) {
	_cleanup_free_ char *bin = NULL, *out = NULL, *err = NULL;
	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	char *const argv[] = { bin, "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX,
			       dash_n ? "-n" : "autoscale", dash_n ? "autoscale" : "plan", NULL };
	cr_assert_eq(hx_run_capture(&out, &err, 30 * USEC_PER_SEC, argv, NULL), 0, "corralctl: %s", err ?: "");
	const char *p = strchr(out, '\n');
	cr_assert(p && startswith(out, "dry run:"), "%s", out);
	p = strchr(p + 1, '\n');
	cr_assert(p && startswith(strchr(out, '\n') + 1, "note:"), "%s", out);
	return strdup(p + 1);
}

static void same_plan(const char *name) {
	fx f;
	_cleanup_free_ char *cli = NULL, *cli_n = NULL, *leader = NULL;

	/* The leader writes its records with its clock; so do the fixtures. */
	fx_load(&f, name, time(NULL));
	cr_assert(json_is_true(json_object_get(f.doc, "same")), "%s is not in the set", name);
	instances_for_hosts(&f);
	for (size_t i = 0; i < f.n; i++) {
		_cleanup_free_ char *k = NULL;
		cr_assert_geq(asprintf(&k, PREFIX "/%s", f.keys[i]), 0);
		cr_assert_eq(et_put(&t, k, f.vals[i], 0), 0, "put %s", k);
	}
	cli = cli_plan(false);
	cli_n = cli_plan(true);
	/* The leader's own dry run: the same read, DescribeInstances (the
	 * hosts' instances running), observe and decide. */
	scaler_options o = { .prefix = PREFIX, .cluster = CLUSTER };
	cr_assert_eq(scaler_plan_once(t.client, ec2, &o, &leader), 0);
	cr_log_info("%s: leader:\n%s\ncorralctl:\n%s", name, leader, cli);
	cr_assert_str_eq(cli, leader, "%s: corralctl autoscale plan and the leader differ", name);
	cr_assert_str_eq(cli_n, leader, "%s: corralctl -n autoscale and the leader differ", name);
	cr_assert_null(strstr(leader, "no changes"), "%s: a fixture of the set should act", name);
	fx_done(&f);
}

Test(observe_same, prairielearn_jobs) {
	same_plan("prairielearn_jobs");
}

Test(observe_same, matterhorn_queue) {
	same_plan("matterhorn_queue");
}

Test(observe_same, aerofs_threshold) {
	same_plan("aerofs_threshold");
}

Test(observe_same, aerofs_deployments) {
	same_plan("aerofs_deployments");
}

Test(observe_same, picloud_fixed) {
	same_plan("picloud_fixed");
}

Test(observe_same, wind_down_done) {
	same_plan("wind_down_done");
}

Test(observe_same, interruption_notice) {
	same_plan("interruption_notice");
}

Test(observe_same, queue_text) {
	same_plan("queue_text");
}

Test(observe_same, stop_empty) {
	same_plan("stop_empty");
}
