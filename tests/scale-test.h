/* scale-test.h — what the autoscaler's tests share: the scaling keys under
 * a prefix (put, read, host records by state) and the EC2 calls the test
 * proxy served. Header-only, like etcd-test.h, which it builds on. */
#pragma once

#include <glob.h>
#include <jansson.h>

#include "ec2.h"
#include "etcd-test.h"

/* An EC2 client for moto on event, with moto's credentials in the
 * environment (and nothing else AWS_* that could override them). */
static inline void st_ec2_client(hx_moto *m, sd_event *event, ec2_client **out) {
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_PROFILE");
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", hx_moto_access_key_id(m), 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", hx_moto_secret_access_key(m), 1), 0);
	ec2_options o = { .region = hx_moto_region(m), .endpoint = hx_moto_endpoint(m), .imds_endpoint = "",
			  .backoff_base_usec = 20 * USEC_PER_MSEC, .backoff_cap_usec = 200 * USEC_PER_MSEC };
	cr_assert_eq(ec2_client_new(out, event, &o), 0);
}

static inline void st_put(et *t, const char *prefix, const char *sub, const char *value) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	cr_assert_eq(et_put(t, k, value, 0), 0, "put %s", k);
}

static inline void st_del(et *t, const char *prefix, const char *sub) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	etcd_delete_req req = { .key = k };
	etcd_sync s = {};
	cr_assert_eq(etcd_delete(t->client, &req, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t->client, &s, NULL), 0);
}

/* The key's value as JSON (new reference), NULL when absent or not JSON. */
static inline json_t *st_get_json(et *t, const char *prefix, const char *sub) {
	_cleanup_free_ char *k = NULL, *v = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	v = et_get(t, k);
	return v ? json_loads(v, 0, NULL) : NULL;
}

/* Host records: {instance id: record} (new reference). */
static inline json_t *st_records(et *t, const char *prefix) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/scale/hosts/", prefix), 0);
	etcd_range_req req = { .key = k, .prefix = true };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(t, &req);
	json_t *out = json_object();
	cr_assert_not_null(r);
	for (size_t i = 0; i < r->n_kvs; i++) {
		json_t *j = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
		json_object_set_new(out, json_string_value(json_object_get(j, "id")), j);
	}
	return out;
}

static inline const char *st_rec_state(json_t *recs, const char *id) {
	return json_string_value(json_object_get(json_object_get(recs, id), "state"));
}

static inline size_t st_count_state(json_t *recs, const char *state) {
	const char *k;
	json_t *v;
	size_t n = 0;
	json_object_foreach(recs, k, v)
		n += streq_ptr(json_string_value(json_object_get(v, "state")), state);
	return n;
}

/* The proxy's log entries for action, oldest first (new reference). */
static inline json_t *st_calls(hx_moto *m, const char *action) {
	json_auto_t *log = NULL;
	json_t *out = json_array(), *e;
	size_t i;
	cr_assert_eq(hx_moto_log(m, &log), 0);
	json_array_foreach(log, i, e)
		if (streq_ptr(json_string_value(json_object_get(e, "action")), action))
			json_array_append(out, e);
	return out;
}

/* The cluster's instances pending or running, as hx_moto_instances gives
 * them (new reference). */
static inline json_t *st_live(hx_moto *m, const char *cluster) {
	json_auto_t *all = NULL;
	json_t *out = json_array(), *x;
	size_t i;
	cr_assert_eq(hx_moto_instances(m, &all), 0);
	json_array_foreach(all, i, x) {
		const char *st = json_string_value(json_object_get(x, "state"));
		json_t *tags = json_object_get(x, "tags");
		if (streq_ptr(json_string_value(json_object_get(tags, "corral:cluster")), cluster) &&
		    (streq_ptr(st, "pending") || streq_ptr(st, "running")))
			json_array_append(out, x);
	}
	return out;
}

/* When TerminateInstances first named id (epoch s), 0 if never. */
static inline double st_terminated_at(hx_moto *m, const char *id) {
	json_auto_t *ts = st_calls(m, "TerminateInstances");
	json_t *e, *v;
	size_t i;
	const char *k;
	json_array_foreach(ts, i, e)
		json_object_foreach(json_object_get(e, "params"), k, v)
			if (startswith(k, "InstanceId.") && streq_ptr(json_string_value(v), id))
				return json_number_value(json_object_get(e, "time"));
	return 0;
}

/* The node of instance id registered as the instance (its node id and
 * instance id what IMDS told it), in pool. */
static inline bool st_registered(et *t, const char *prefix, const char *id, const char *pool) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "nodes/%s", id), 0);
	json_auto_t *n = st_get_json(t, prefix, k);
	return n && streq_ptr(json_string_value(json_object_get(n, "instance_id")), id) &&
	       streq_ptr(json_string_value(json_object_get(n, "pool")), pool);
}

/* The leader's node id (free it), NULL when none. */
static inline char *st_leader(et *t, const char *prefix) {
	json_auto_t *l = st_get_json(t, prefix, "leader");
	const char *n = l ? json_string_value(json_object_get(l, "node_id")) : NULL;
	return n ? strdup(n) : NULL;
}

/* scale/policy for the replace-by-relaunch tests: pool web on the proxy's
 * launch template (setup: hx_moto_setup), fixed at hosts, up to max, no
 * waits before a scale-in (free it). */
static inline char *st_fixed_web_policy(json_t *setup, int hosts, int max) {
	char *p = NULL;
	cr_assert_geq(asprintf(&p,
			       "{\"pools\":{\"web\":{\"launch_template\":\"%s\",\"instance_types\":[\"t3.micro\"],"
			       "\"subnets\":[{\"id\":\"%s\",\"availability_zone\":\"%s\"}],\"markets\":[\"on-demand\"],"
			       "\"policy\":\"fixed\",\"hosts\":%d,\"min\":%d,\"max\":%d,\"scale_in_after\":0,"
			       "\"scale_in_cooldown\":0,\"min_lifetime\":0}}}",
			       json_string_value(json_object_get(setup, "launch_template")),
			       json_string_value(json_object_get(setup, "subnet")),
			       json_string_value(json_object_get(setup, "az")), hosts, hosts, max),
		      0);
	return p;
}

/* Every RunInstances after the first `from` is a replacement on launch
 * template version v with its own corral-r- ClientToken, each token sent
 * once; how many there were. */
static inline size_t st_replacement_runs(hx_moto *m, size_t from, const char *v) {
	json_auto_t *calls = st_calls(m, "RunInstances");
	json_auto_t *seen = json_object();
	for (size_t i = from; i < json_array_size(calls); i++) {
		json_t *p = json_object_get(json_array_get(calls, i), "params");
		const char *tok = json_string_value(json_object_get(p, "ClientToken"));
		cr_assert_str_eq(json_string_value(json_object_get(p, "LaunchTemplate.Version")), v,
				 "a launch on another version than the plan's");
		cr_assert(tok && startswith(tok, "corral-r-"), "not a replacement's token: %s", tok ?: "-");
		cr_assert_null(json_object_get(seen, tok), "token %s sent twice", tok);
		json_object_set_new(seen, tok, json_true());
	}
	return json_array_size(calls) - from;
}

/* Lines holding needle in every corrald log in dir (dir/<node>.log: the
 * core nodes' and the cloud hosts': any of them may lead). */
static inline size_t st_logs_say(const char *dir, const char *needle) {
	_cleanup_free_ char *pattern = hx_fmt("%s/*.log", dir);
	glob_t g = {};
	size_t n = 0;
	if (glob(pattern, 0, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			n += hx_count_in_file(g.gl_pathv[i], needle);
	globfree(&g);
	return n;
}
