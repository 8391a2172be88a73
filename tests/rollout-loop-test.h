/* rollout-loop-test.h — what the leader loop's tests share: a harness
 * etcd and a client on it (t), puts and gets under a prefix, and the
 * leadership key (its create_revision is the fencing token). Include it
 * once, after defining ROLLOUT_LOOP_TAG (the temp dir's name). */
#pragma once

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "etcd-test.h"

static hx_etcd *etcd;
static char *dir;
static et t;

static inline void up(void) {
	et_fixture_up(&etcd, &dir, ROLLOUT_LOOP_TAG, 1);
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
}

static inline void down(void) {
	et_close(&t);
	et_fixture_down(&etcd, &dir);
}

/* ---- etcd helpers ---- */

static inline void put(const char *prefix, const char *sub, const char *value) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	cr_assert_eq(et_put(&t, k, value, 0), 0, "put %s", k);
}

static inline void put_json(const char *prefix, const char *sub, json_t *j) {
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	cr_assert_not_null(text);
	put(prefix, sub, text);
}

static inline char *get(const char *prefix, const char *sub) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	return et_get(&t, k);
}

static inline json_t *get_json(const char *prefix, const char *sub) {
	_cleanup_free_ char *k = NULL, *v = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	v = et_get(&t, k);
	return v ? json_loads(v, 0, NULL) : NULL;
}

static inline void del(const char *prefix, const char *sub) {
	_cleanup_free_ char *k = NULL;
	cr_assert_geq(asprintf(&k, "%s/%s", prefix, sub), 0);
	etcd_delete_req req = { .key = k };
	etcd_sync s = {};
	cr_assert_eq(etcd_delete(t.client, &req, etcd_sync_cb, &s, NULL), 0);
	cr_assert_eq(etcd_wait(t.client, &s, NULL), 0);
}

/* Becomes the leader by writing the key: the fencing token. */
static inline int64_t take_leadership(const char *prefix) {
	_cleanup_free_ char *k = NULL;
	put(prefix, "leader", "{\"node_id\":\"test\"}");
	cr_assert_geq(asprintf(&k, "%s/leader", prefix), 0);
	etcd_range_req req = { .key = k };
	_cleanup_(etcd_response_freep) etcd_response *r = et_range(&t, &req);
	cr_assert(r && r->n_kvs == 1);
	return r->kvs[0].create_revision;
}

/* A new leader: the key deleted and taken again (a new create_revision). */
static inline int64_t new_leader(const char *prefix, int64_t old) {
	del(prefix, "leader");
	int64_t token = take_leadership(prefix);
	cr_assert_neq(token, old);
	return token;
}

static inline const char *jstr(json_t *j, const char *key) {
	return json_string_value(json_object_get(j, key));
}

static inline json_int_t jint(json_t *j, const char *key) {
	return json_integer_value(json_object_get(j, key));
}

/* The stored state's phase is want (and its batch, >= 0), playing the
 * nodes' part (play(ud), NULL: not) meanwhile. */
typedef struct until {
	void (*play)(void *ud);
	void *ud;
	const char *prefix;
	const char *phase;
	int batch;
	json_t *state;          /* the state last read (owned) */
	uint64_t next_check;
} until;

static inline bool until_reached(void *p) {
	until *u = p;

	if (hx_now_usec() < u->next_check)
		return false;
	u->next_check = hx_now_usec() + 50 * USEC_PER_MSEC;
	if (u->play)
		u->play(u->ud);
	json_decref(u->state);
	u->state = get_json(u->prefix, "upgrade/state");
	return u->state && streq_ptr(jstr(u->state, "phase"), u->phase) &&
	       (u->batch < 0 || jint(u->state, "batch") == u->batch);
}

/* Runs the loop until then; the state (new reference). */
static inline json_t *wait_state(const char *prefix, void (*play)(void *), void *ud, const char *phase, int batch,
				 uint64_t timeout_usec) {
	until u = { .play = play, .ud = ud, .prefix = prefix, .phase = phase, .batch = batch };
	bool ok = et_run_until(&t, until_reached, &u, timeout_usec);
	_cleanup_free_ char *text = u.state ? json_dumps(u.state, JSON_COMPACT) : NULL;
	cr_assert(ok, "phase %s not reached: state %s", phase, text ?: "none");
	return u.state;
}
