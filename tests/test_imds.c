/* test_imds.c — a node learning who it is from the instance metadata
 * (imds.h, docs/ec2.md "instance_id: auto"): the identity fetch against the
 * moto proxy's per-instance IMDS (tags on and off, IMDS off, no answer), and
 * corrald as a process that registers as its instance with nothing but
 * DMI and the metadata endpoint to go on. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "etcd-test.h"
#include "imds.h"

#define WAIT_USEC (15 * USEC_PER_SEC)

static hx_moto *moto;
static char *dir;

static void up(void) {
	cr_assert_eq(hx_moto_start(&moto), 0, "moto did not start (see above for what is missing)");
	dir = hx_mkdtemp("imds");
	cr_assert_not_null(dir);
}

static void down(void) {
	moto = hx_moto_free(moto);
	hx_rm_tmp(dir);
	free(dir);
}

TestSuite(imds, .init = up, .fini = down, .timeout = 120);

/* An instance tagged as the leader tags its launches (tags: JSON object);
 * *id and *url (its own IMDS) are the caller's. */
static void launch(const char *tags, char **id, char **url) {
	_cleanup_free_ char *req = NULL;
	json_auto_t *out = NULL;
	cr_assert_geq(asprintf(&req, "{\"tags\": %s, \"type\": \"t3.small\"}", tags), 0);
	cr_assert_eq(hx_moto_run(moto, req, &out), 0);
	*id = strdup(json_string_value(json_object_get(out, "id")));
	cr_assert_not_null(*id);
	cr_assert_eq(hx_moto_node_imds(moto, *id, url), 0);
}

/* What moto says about the instance (new reference). */
static json_t *instance(const char *id) {
	json_auto_t *list = NULL;
	json_t *x;
	size_t i;
	cr_assert_eq(hx_moto_instances(moto, &list), 0);
	json_array_foreach(list, i, x)
		if (streq_ptr(json_string_value(json_object_get(x, "id")), id))
			return json_incref(x);
	cr_assert_fail("moto does not know %s", id);
	return NULL;
}

typedef struct got {
	bool done;
	int error;
	imds_identity id;
	char message[256];
} got;

static void on_identity(int error, const imds_identity *id, const char *message, void *userdata) {
	got *g = userdata;
	g->done = true;
	g->error = error;
	if (id) {
		g->id.instance_id = strdup(id->instance_id);
		g->id.instance_type = id->instance_type ? strdup(id->instance_type) : NULL;
		g->id.availability_zone = id->availability_zone ? strdup(id->availability_zone) : NULL;
		g->id.local_ipv4 = id->local_ipv4 ? strdup(id->local_ipv4) : NULL;
		g->id.pool = id->pool ? strdup(id->pool) : NULL;
	}
	snprintf(g->message, sizeof g->message, "%s", message ?: "");
}

static void fetch(const char *url, uint64_t timeout_usec, got *g) {
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_(imds_identity_fetch_freep) imds_identity_fetch *f = NULL;
	cr_assert_geq(sd_event_new(&event), 0);
	cr_assert_eq(imds_identity_fetch_start(&f, event, url, timeout_usec, on_identity, g), 0);
	cr_assert(hx_event_run_until(event, &g->done, timeout_usec + 5 * USEC_PER_SEC), "no answer at all");
}

Test(imds, identity_from_the_instance_metadata) {
	_cleanup_free_ char *id = NULL, *url = NULL;
	got g = {};
	launch("{\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}", &id, &url);
	json_auto_t *x = instance(id);

	fetch(url, 10 * USEC_PER_SEC, &g);
	cr_assert_eq(g.error, 0, "%s", g.message);
	cr_assert_str_eq(g.id.instance_id, id);
	cr_assert_str_eq(g.id.instance_type, "t3.small");
	cr_assert_str_eq(g.id.availability_zone, json_string_value(json_object_get(x, "az")));
	cr_assert_str_eq(g.id.local_ipv4, json_string_value(json_object_get(x, "private_ip")));
	cr_assert_str_eq(g.id.pool, "web", "the corral:pool tag from the metadata");
	imds_identity_done(&g.id);
}

Test(imds, identity_without_tags_in_the_metadata) {
	_cleanup_free_ char *id = NULL, *url = NULL, *untagged = NULL, *url2 = NULL;
	got g = {}, h = {};
	launch("{\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}", &id, &url);
	launch("{\"Name\": \"x\"}", &untagged, &url2);

	/* As on EC2 without InstanceMetadataTags in the launch template. */
	cr_assert_eq(hx_moto_imds_control(moto, "{\"instance_tags\": false}", NULL), 0);
	fetch(url, 10 * USEC_PER_SEC, &g);
	cr_assert_eq(hx_moto_imds_control(moto, "{\"instance_tags\": true}", NULL), 0);
	cr_assert_eq(g.error, 0, "%s", g.message);
	cr_assert_str_eq(g.id.instance_id, id);
	cr_assert_null(g.id.pool, "no tags in the metadata: no pool, and no error");

	fetch(url2, 10 * USEC_PER_SEC, &h);
	cr_assert_eq(h.error, 0, "%s", h.message);
	cr_assert_null(h.id.pool, "no corral:pool tag: no pool");
	imds_identity_done(&g.id);
	imds_identity_done(&h.id);
}

Test(imds, imds_off_fails_at_once) {
	_cleanup_free_ char *id = NULL, *url = NULL;
	got g = {};
	launch("{\"corral:cluster\": \"t\"}", &id, &url);

	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": false}", NULL), 0);
	uint64_t t0 = hx_now_usec();
	fetch(url, 30 * USEC_PER_SEC, &g);
	uint64_t took = hx_now_usec() - t0;
	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": true}", NULL), 0);
	cr_assert_eq(g.error, -ENODEV, "%d: %s", g.error, g.message);
	cr_assert(strstr(g.message, "instance metadata service is off"), "%s", g.message);
	cr_assert_lt(took, 5 * USEC_PER_SEC, "IMDS off is no reason to wait out the time-out");
}

Test(imds, no_answer_is_retried_until_the_time_out) {
	_cleanup_free_ char *url = NULL;
	got g = {};
	cr_assert_geq(asprintf(&url, "http://127.0.0.1:%d", hx_free_port()), 0);

	uint64_t t0 = hx_now_usec();
	fetch(url, 2 * USEC_PER_SEC, &g);
	uint64_t took = hx_now_usec() - t0;
	cr_assert_eq(g.error, -ETIMEDOUT, "%d: %s", g.error, g.message);
	cr_assert(strstr(g.message, "did not answer in time"), "%s", g.message);
	cr_assert_geq(took, 1 * USEC_PER_SEC, "gave up after %llu us: no retries", (unsigned long long) took);
	cr_assert_lt(took, 4 * USEC_PER_SEC, "the time-out bounds the retries");
}

/* ---- corrald ---- */

/* A DMI directory saying "Amazon EC2", as on a Nitro instance. */
static char *ec2_dmi(void) {
	_cleanup_free_ char *vendor = NULL;
	char *d = NULL;
	cr_assert_geq(asprintf(&d, "%s/dmi", dir), 0);
	if (mkdir(d, 0755) < 0)
		cr_assert_eq(errno, EEXIST);
	cr_assert_geq(asprintf(&vendor, "%s/sys_vendor", d), 0);
	cr_assert_eq(hx_write_file(vendor, "Amazon EC2\n"), 0);
	return d;
}

/* Starts corrald with config text; its log is dir/name.log. */
static hx_proc *corrald(const char *name, const char *text, char **log) {
	_cleanup_free_ char *cfg = NULL, *bin = NULL;
	hx_proc *p = NULL;
	cr_assert_geq(asprintf(&cfg, "%s/%s.yaml", dir, name), 0);
	cr_assert_geq(asprintf(log, "%s/%s.log", dir, name), 0);
	cr_assert_geq(asprintf(&bin, "%s/corrald", hx_builddir()), 0);
	cr_assert_eq(hx_write_file(cfg, text), 0);
	char *const argv[] = { bin, "--config", cfg, NULL };
	cr_assert_eq(hx_proc_spawn(&p, argv, NULL, *log), 0);
	return p;
}

/* corrald on instance with its IMDS at url and DMI saying EC2: the top-level
 * keys `top` (may be "") and only what says where etcd, IMDS and DMI are. */
static hx_proc *corrald_on(hx_etcd *etcd, const char *name, const char *top, const char *url, const char *dmi,
			   char **log) {
	_cleanup_free_ char *text = NULL;
	cr_assert_geq(asprintf(&text, "cluster: t\n%slease_ttl: 2s\netcd:\n  endpoints: [%s]\n"
				      "ec2:\n  imds_endpoint: %s\n  dmi_dir: %s\n",
			       top, hx_etcd_endpoint(etcd, 0), url, dmi),
		      0);
	return corrald(name, text, log);
}

typedef struct node_wait {
	hx_etcd *etcd;
	const char *key;
	char *value;
} node_wait;

static bool node_there(void *ud) {
	node_wait *w = ud;
	free(w->value);
	w->value = hx_etcd_get(w->etcd, w->key);
	return w->value && *w->value;
}

/* The node record at key (new reference), once corrald wrote it. */
static json_t *wait_node(hx_etcd *etcd, const char *key, const char *log) {
	node_wait w = { .etcd = etcd, .key = key };
	bool ok = hx_wait_until(node_there, &w, WAIT_USEC);
	if (!ok)
		hx_log_tail(log, 30);
	cr_assert(ok, "no node record at %s", key);
	json_t *rec = json_loads(w.value, 0, NULL);
	free(w.value);
	cr_assert_not_null(rec);
	return rec;
}

Test(imds, corrald_registers_as_its_instance, .timeout = 150) {
	_cleanup_(hx_etcd_freep) hx_etcd *etcd = NULL;
	_cleanup_free_ char *id = NULL, *url = NULL, *dmi = ec2_dmi(), *log = NULL, *key = NULL;
	_cleanup_free_ char *log2 = NULL, *id2 = NULL, *url2 = NULL;
	cr_assert_eq(hx_etcd_start(&etcd, NULL), 0);
	launch("{\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}", &id, &url);
	json_auto_t *x = instance(id);

	/* What scripts/user-data writes, plus where the test's IMDS and DMI
	 * are: no node id, no address, no pool, no instance id. */
	_cleanup_(hx_proc_freep) hx_proc *p = corrald_on(etcd, "bare", "", url, dmi, &log);
	cr_assert_geq(asprintf(&key, "/corral/t/nodes/%s", id), 0);
	json_auto_t *rec = wait_node(etcd, key, log);      /* the instance id is the node id */
	cr_assert_str_eq(json_string_value(json_object_get(rec, "instance_id")), id,
			 "the leader pairs the node with its host by this");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "pool")), "web", "the pool from the tag");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "address")),
			 json_string_value(json_object_get(x, "private_ip")), "the private address is advertised");
	_cleanup_free_ char *said = hx_read_file(log, NULL), *line = NULL;
	cr_assert_geq(asprintf(&line, "instance %s (t3.small in ", id), 0);
	cr_assert(said && strstr(said, line) && strstr(said, "pool web (its corral:pool tag)"),
		  "no line saying what was learned:\n%s", said ?: "");

	/* What the file says wins over what IMDS says, but the instance id. */
	launch("{\"corral:cluster\": \"t\", \"corral:pool\": \"web\"}", &id2, &url2);
	_cleanup_(hx_proc_freep) hx_proc *p2 =
		corrald_on(etcd, "given", "node_id: mine\naddress: 10.9.9.9\npool: batch\n", url2, dmi, &log2);
	json_auto_t *rec2 = wait_node(etcd, "/corral/t/nodes/mine", log2);
	cr_assert_str_eq(json_string_value(json_object_get(rec2, "instance_id")), id2);
	cr_assert_str_eq(json_string_value(json_object_get(rec2, "pool")), "batch");
	cr_assert_str_eq(json_string_value(json_object_get(rec2, "address")), "10.9.9.9");

	int status = 0;
	cr_assert_eq(hx_proc_signal(p, SIGTERM), 0);
	cr_assert_eq(hx_proc_wait(p, 10 * USEC_PER_SEC, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrald did not stop cleanly (%#x)", status);
}

Test(imds, corrald_without_imds_exits_1) {
	_cleanup_free_ char *id = NULL, *url = NULL, *text = NULL, *log = NULL, *out = NULL;
	launch("{\"corral:cluster\": \"t\"}", &id, &url);
	cr_assert_geq(asprintf(&text,
			       "cluster: t\netcd:\n  endpoints: [http://127.0.0.1:%d]\n"
			       "ec2:\n  imds_endpoint: %s\n  instance_id: auto\n",
			       hx_free_port(), url),
		      0);
	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": false}", NULL), 0);
	_cleanup_(hx_proc_freep) hx_proc *p = corrald("off", text, &log);
	int status = 0;
	int r = hx_proc_wait(p, 10 * USEC_PER_SEC, &status);
	cr_assert_eq(hx_moto_imds_control(moto, "{\"available\": true}", NULL), 0);
	cr_assert_eq(r, 0, "corrald did not give up");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %#x, not 1", status);
	out = hx_read_file(log, NULL);
	cr_assert(out && strstr(out, "cannot learn who this instance is") &&
			  strstr(out, "instance metadata service is off"),
		  "no clear error in the log:\n%s", out ?: "");
}
