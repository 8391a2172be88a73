/* scale-test.h — what the autoscaler's tests share: the scaling keys under
 * a prefix (put, read, host records by state) and the EC2 calls the test
 * proxy served. Header-only, like etcd-test.h, which it builds on. */
#pragma once

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
