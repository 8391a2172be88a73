/* test_deploy_e2e.c — tenant deployments end to end (issue 18): a real
 * etcd, moto behind tests/ec2proxy.py with one t3.large reservation, a
 * real `systemd --user` for the hooks, two core corralds (either may
 * lead) and the harness playing the cloud (each instance boots a corrald
 * from its user data, with a deployments: section whose hooks append to a
 * log). A threshold pool `tenants` of 4G hosts (0.8: 3.2G for
 * deployments), deployments added with `corralctl deployment add`:
 *   1. the first host launches on the reservation (t3.large) and takes
 *      three 1G deployments, deployed by its deploy hook;
 *   2. a fourth finds no room: the pool grows by one host (on-demand: the
 *      reservation is used) and the deployment is placed and deployed there;
 *   3. the fourth's license passes (deployment_policy.clock_offset moves
 *      the leader's lifecycle clock by days): its notices are sent once,
 *      its backup hook runs, then its remove hook; the emptied on-demand
 *      host is drained and terminated, the reserved one stays.
 * Every wait has a deadline; every process is stopped. */
#include <jansson.h>
#include <signal.h>

#include "ctl-test.h"
#include "rfc3339.h"
#include "scale-test.h"

#define PREFIX  "/corral/t"
#define CLUSTER "t"
#define CORE    2
#define WAIT    (90 * USEC_PER_SEC)
#define GIB     "1073741824"

static hx_etcd *etcd;
static hx_moto *moto;
static hx_systemd *sd;
static hx_cloud *cloud;
static hx_proc *core[CORE];
static char *dir;
static et t;

static void put(const char *sub, const char *value) {
	st_put(&t, PREFIX, sub, value);
}

static void step(const char *what) {
	static uint64_t t0;
	if (!t0)
		t0 = hx_now_usec();
	fprintf(stderr, "deploy e2e: %6.1f s: %s\n", (double) (hx_now_usec() - t0) / USEC_PER_SEC, what);
}

static json_t *dep(const char *id) {
	_cleanup_free_ char *sub = NULL;
	cr_assert_geq(asprintf(&sub, "deployments/%s", id), 0);
	return st_get_json(&t, PREFIX, sub);
}

static char *hooks_log(void) {
	_cleanup_free_ char *p = NULL;
	cr_assert_geq(asprintf(&p, "%s/hooks.log", dir), 0);
	char *s = hx_read_file(p, NULL);
	return s ? s : strdup("");
}

static char *notices_log(void) {
	_cleanup_free_ char *p = NULL;
	cr_assert_geq(asprintf(&p, "%s/notices.log", dir), 0);
	char *s = hx_read_file(p, NULL);
	return s ? s : strdup("");
}

static unsigned count_of(const char *text, const char *line) {
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, line)); p += strlen(line))
		n++;
	return n;
}

static void up(void) {
	dir = hx_mkdtemp("deploy-e2e");
	cr_assert_not_null(dir);
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	/* every corrald the cloud starts runs its hooks on this manager */
	for (char *const *e = hx_systemd_env(sd); *e; e++) {
		_cleanup_free_ char *kv = strdup(*e);
		char *eq = strchr(kv, '=');
		*eq = '\0';
		cr_assert_eq(setenv(kv, eq + 1, 1), 0);
	}
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	_cleanup_free_ char *more = NULL;
	cr_assert_geq(asprintf(&more,
			       "scale_interval: 1s\nlaunch_grace: 5s\nunits_bus: user\n"
			       "deployments:\n"
			       "  memory: 4G\n"
			       "  deploy: echo \"deploy $CORRAL_DEPLOYMENT $CORRAL_NODE\" >> %s/hooks.log\n"
			       "  backup: echo \"backup $CORRAL_DEPLOYMENT $CORRAL_NODE\" >> %s/hooks.log;"
			       " echo s3://backups/$CORRAL_DEPLOYMENT\n"
			       "  remove: echo \"remove $CORRAL_DEPLOYMENT $CORRAL_NODE\" >> %s/hooks.log\n"
			       "  timeout: 30s\n",
			       dir, dir, dir),
		      0);
	hx_cloud_options o = { .moto = moto, .cluster = CLUSTER, .endpoints = hx_etcd_endpoints(etcd), .dir = dir,
			       .capacity = 4, .more = more };
	cr_assert_eq(hx_cloud_new(&cloud, &o), 0);
}

static void down(void) {
	for (int i = 0; i < CORE; i++)
		core[i] = hx_proc_free(core[i]);
	cloud = hx_cloud_free(cloud);
	et_close(&t);
	sd = hx_systemd_free(sd);
	moto = hx_moto_free(moto);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

TestSuite(deploy_e2e, .init = up, .fini = down, .timeout = 400);

/* corralctl deployment add ID --memory 1G [--license-expires T]: exit 0. */
static void add(const char *id, const char *license) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	char *const with[] = { "deployment", "add", (char *) id, "--memory", "1G", "--owner", "it@customer.example",
			       "--license-expires", (char *) license, NULL };
	char *const without[] = { "deployment", "add", (char *) id, "--memory", "1G", "--owner", "it@customer.example",
				  NULL };
	int r = ctlt_run(hx_etcd_endpoints(etcd), PREFIX, &out, &err, license ? with : without);
	cr_assert_eq(r, 0, "add %s: %s%s", id, out ?: "", err ?: "");
}

typedef struct want_dep {
	const char *id, *state;
	char *host;             /* out: its host (owned) */
} want_dep;

static bool dep_is(void *ud) {
	want_dep *w = ud;
	hx_cloud_poll(cloud);
	json_auto_t *d = dep(w->id);
	if (!d || !streq_ptr(json_string_value(json_object_get(d, "state")), w->state))
		return false;
	free(w->host);
	const char *h = json_string_value(json_object_get(d, "host"));
	w->host = h ? strdup(h) : NULL;
	return true;
}

/* Waits until deployment id is in state; returns its host (owned, may be NULL). */
static char *wait_dep(const char *id, const char *state) {
	want_dep w = { id, state, NULL };
	if (!hx_wait_until(dep_is, &w, WAIT)) {
		json_auto_t *d = dep(id), *recs = st_records(&t, PREFIX);
		_cleanup_free_ char *a = d ? json_dumps(d, JSON_INDENT(1)) : NULL, *b = json_dumps(recs, JSON_INDENT(1));
		cr_assert_fail("%s not %s: %s\nhosts: %s", id, state, a ?: "(none)", b);
	}
	return w.host;
}

static const char *host_instance(const char *node) {
	/* nodes here are instances: the node id is the instance id */
	return node;
}

typedef struct fleet {
	const char *gone;       /* this instance terminated in moto */
	const char *stays;      /* this one ready */
} fleet;

static bool fleet_is(void *ud) {
	fleet *f = ud;
	hx_cloud_poll(cloud);
	json_auto_t *recs = st_records(&t, PREFIX);
	return st_terminated_at(moto, f->gone) > 0 && streq_ptr(st_rec_state(recs, f->stays), "ready");
}

Test(deploy_e2e, place_grow_expire_and_scale_in) {
	json_auto_t *setup = NULL;
	cr_assert_eq(hx_moto_setup(moto, &setup), 0);
	cr_assert_eq(hx_moto_set_reserved(moto, "[{\"type\":\"t3.large\",\"count\":1}]"), 0);
	_cleanup_free_ char *policy = NULL, *dpolicy = NULL;
	cr_assert_geq(asprintf(&policy,
			       "{\"pools\": {\"tenants\": {\"launch_template\": \"%s\","
			       " \"instance_types\": [\"m5.large\", \"t3.large\"],"
			       " \"subnets\": [{\"id\": \"%s\", \"availability_zone\": \"%s\"}],"
			       " \"markets\": [\"reserved\", \"on-demand\"], \"policy\": \"threshold\","
			       " \"memory_threshold\": 0.8, \"min\": 1, \"max\": 3, \"min_idle\": 0,"
			       " \"scale_in_after\": 0, \"scale_in_cooldown\": 0, \"min_lifetime\": 0}}}",
			       json_string_value(json_object_get(setup, "launch_template")),
			       json_string_value(json_object_get(setup, "subnet")),
			       json_string_value(json_object_get(setup, "az"))),
		      0);
	cr_assert_geq(asprintf(&dpolicy,
			       "{\"pool\": \"tenants\", \"notice_command\": \"echo \\\"$CORRAL_NOTICE $CORRAL_DEPLOYMENT\\\" >> "
			       "%s/notices.log\"}",
			       dir),
		      0);
	put("deployment_policy", dpolicy);
	put("scale/policy", policy);
	for (int i = 0; i < CORE; i++) {
		char name[16];
		snprintf(name, sizeof name, "n%d", i + 1);
		cr_assert_eq(hx_cloud_start_node(cloud, name, &core[i]), 0);
	}
	step("start");

	/* 1. min 1: the first host, on the reservation; three deployments fit */
	add("c1", NULL);
	_cleanup_free_ char *h1 = wait_dep("c1", "active");
	cr_assert_not_null(h1);
	json_auto_t *recs1 = st_records(&t, PREFIX);
	json_t *r1 = json_object_get(recs1, host_instance(h1));
	cr_assert_str_eq(json_string_value(json_object_get(r1, "instance_type")), "t3.large", "the reserved type");
	cr_assert(json_is_true(json_object_get(r1, "reserved")));
	add("c2", NULL);
	add("c3", NULL);
	_cleanup_free_ char *h2 = wait_dep("c2", "active"), *h3 = wait_dep("c3", "active");
	cr_assert_str_eq(h2, h1);
	cr_assert_str_eq(h3, h1);
	step("three on the reserved host");

	/* 2. no room for a fourth (4 x 1G > 3.2G): a host launches, takes it */
	char license[RFC3339_MAX];
	rfc3339_format(time(NULL) + 2 * 86400, license);
	add("c4", license);
	_cleanup_free_ char *h4 = wait_dep("c4", "active");
	cr_assert_not_null(h4);
	cr_assert_str_neq(h4, h1, "a new host");
	json_auto_t *recs2 = st_records(&t, PREFIX);
	json_t *r4 = json_object_get(recs2, host_instance(h4));
	cr_assert_not_null(r4, "%s has no host record", h4);
	cr_assert_not(json_is_true(json_object_get(r4, "reserved")), "the reservation is used: on-demand");
	_cleanup_free_ char *log2 = hooks_log();
	cr_assert_eq(count_of(log2, "deploy c4 "), 1, "%s", log2);
	step("the fourth on a new host");

	/* 3. three days later (the lifecycle's clock): expired, backed up,
	 * removed; the on-demand host is emptied and scaled in */
	_cleanup_free_ char *later = NULL;
	cr_assert_geq(asprintf(&later, "%.*s, \"clock_offset\": \"3d\"}", (int) (strrchr(dpolicy, '}') - dpolicy),
			       dpolicy),
		      0);
	put("deployment_policy", later);
	_cleanup_free_ char *gone = wait_dep("c4", "removed");
	cr_assert_null(gone, "the host is cleared");
	json_auto_t *d4 = dep("c4");
	cr_assert_str_eq(json_string_value(json_object_get(d4, "backup")), "s3://backups/c4");
	cr_assert_str_eq(json_string_value(json_object_get(d4, "last_host")), h4);
	_cleanup_free_ char *log3 = hooks_log();
	const char *b = strstr(log3, "backup c4 "), *rm = strstr(log3, "remove c4 ");
	cr_assert(b && rm && b < rm, "backup, then remove:\n%s", log3);
	fleet f = { h4, h1 };
	if (!hx_wait_until(fleet_is, &f, WAIT)) {
		json_auto_t *recs = st_records(&t, PREFIX);
		_cleanup_free_ char *a = json_dumps(recs, JSON_INDENT(1));
		cr_assert_fail("%s not terminated / %s not ready:\n%s", h4, h1, a);
	}
	_cleanup_free_ char *notes = notices_log();
	cr_assert_eq(count_of(notes, "expired c4"), 1, "%s", notes);
	cr_assert_eq(count_of(notes, "removed c4"), 1, "%s", notes);
	cr_assert_eq(count_of(notes, "expiry_7d c4"), 1, "due when added (2 days left):\n%s", notes);
	cr_assert_eq(count_of(notes, "expiry_1d c4"), 0, "skipped: expired was due when the clock moved:\n%s", notes);
	for (const char *c = "c1"; c; c = streq(c, "c1") ? "c2" : streq(c, "c2") ? "c3" : NULL) {
		json_auto_t *d = dep(c);
		cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "active", "%s", c);
	}
	step("done");
}
