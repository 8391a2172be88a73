/* etcd-test.h — small helpers the etcd client's tests and benchmark share:
 * a client on a harness etcd, blocking put/get, and running the event loop
 * until a condition holds or a deadline passes. */
#pragma once

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>

#include "etcd.h"
#include "harness.h"

typedef struct et {
	sd_event *event;
	etcd_client *client;
} et;

static inline char **et_split(const char *list) {
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	char **v = calloc(n + 1, sizeof *v);
	char *copy = strdup(list), *save = NULL;
	size_t i = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		v[i++] = strdup(t);
	free(copy);
	return v;
}

/* A client for `endpoints` (comma-separated) with options from o (may be NULL). */
static inline int et_open(et *t, const char *endpoints, const etcd_options *o) {
	_cleanup_strv_free_ char **eps = et_split(endpoints);
	etcd_options opts = o ? *o : (etcd_options){};
	int r;

	opts.endpoints = eps;
	r = sd_event_new(&t->event);
	if (r < 0)
		return r;
	return etcd_client_new(&t->client, t->event, &opts);
}

static inline void et_close(et *t) {
	t->client = etcd_client_free(t->client);
	t->event = sd_event_unref(t->event);
}

/* Runs the loop until pred(ud) or the deadline; returns pred's last value. */
static inline bool et_run_until(et *t, bool (*pred)(void *), void *ud, uint64_t timeout_usec) {
	uint64_t end = hx_now_usec() + timeout_usec;
	while (!pred(ud)) {
		if (hx_now_usec() >= end)
			return false;
		(void) sd_event_run(t->event, 20 * USEC_PER_MSEC);
	}
	return true;
}

/* Runs the loop for a while, whatever happens (to let stray events in). */
static inline void et_run_for(et *t, uint64_t usec) {
	uint64_t end = hx_now_usec() + usec;
	while (hx_now_usec() < end)
		(void) sd_event_run(t->event, 10 * USEC_PER_MSEC);
}

static inline int et_put(et *t, const char *key, const char *value, int64_t lease) {
	etcd_put_req req = { .key = key, .value = value, .lease = lease };
	etcd_sync s = {};
	int r = etcd_put(t->client, &req, etcd_sync_cb, &s, NULL);
	return r < 0 ? r : etcd_wait(t->client, &s, NULL);
}

/* The value of key (new string), or NULL when absent or on error. */
static inline char *et_get(et *t, const char *key) {
	etcd_range_req req = { .key = key };
	etcd_sync s = {};
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	if (etcd_range(t->client, &req, etcd_sync_cb, &s, NULL) < 0 || etcd_wait(t->client, &s, &resp) < 0 ||
	    resp->n_kvs == 0)
		return NULL;
	return strdup(resp->kvs[0].value ? resp->kvs[0].value : "");
}

/* Issues a range and waits: the response (caller frees). */
static inline etcd_response *et_range(et *t, const etcd_range_req *req) {
	etcd_sync s = {};
	etcd_response *resp = NULL;
	if (etcd_range(t->client, req, etcd_sync_cb, &s, NULL) < 0)
		return NULL;
	(void) etcd_wait(t->client, &s, &resp);
	return resp;
}

static inline etcd_response *et_txn(et *t, const etcd_txn_req *req) {
	etcd_sync s = {};
	etcd_response *resp = NULL;
	if (etcd_txn(t->client, req, etcd_sync_cb, &s, NULL) < 0)
		return NULL;
	(void) etcd_wait(t->client, &s, &resp);
	return resp;
}

/* Collects what a watch delivers. */
typedef struct et_watch_log {
	size_t created, progress, disconnected, compacted, canceled;
	int64_t compact_revision;
	int last_error;
	char keys[4096][64];            /* "P key=value" or "D key" per event */
	int64_t revs[4096];
	size_t n_events;
} et_watch_log;

static inline void et_watch_record(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	et_watch_log *l = userdata;
	switch (m->type) {
	case ETCD_WATCH_CREATED:
		l->created++;
		break;
	case ETCD_WATCH_PROGRESS:
		l->progress++;
		break;
	case ETCD_WATCH_DISCONNECTED:
		l->disconnected++;
		l->last_error = m->error ? m->error->code : 0;
		break;
	case ETCD_WATCH_COMPACTED:
		l->compacted++;
		l->compact_revision = m->compact_revision;
		break;
	case ETCD_WATCH_CANCELED:
		l->canceled++;
		l->last_error = m->error ? m->error->code : 0;
		break;
	case ETCD_WATCH_EVENTS:
		for (size_t i = 0; i < m->n_events && l->n_events < 4096; i++, l->n_events++) {
			const etcd_event *e = &m->events[i];
			if (e->type == ETCD_EVENT_PUT)
				snprintf(l->keys[l->n_events], sizeof l->keys[0], "P %s=%s", e->kv.key,
					 e->kv.value ? e->kv.value : "");
			else
				snprintf(l->keys[l->n_events], sizeof l->keys[0], "D %s", e->kv.key);
			l->revs[l->n_events] = e->kv.mod_revision;
		}
		break;
	}
}

/* The fixture most suites share: a harness etcd of `members` (1 or 3) and
 * a temp dir named after tag. */
static inline void et_fixture_up(hx_etcd **etcd, char **dir, const char *tag, unsigned members) {
	hx_etcd_options o = { .members = members };
	cr_assert_eq(hx_etcd_start(etcd, &o), 0, "etcd (%u member%s) did not start", members, members > 1 ? "s" : "");
	*dir = hx_mkdtemp(tag);
	cr_assert_not_null(*dir);
}

static inline void et_fixture_down(hx_etcd **etcd, char **dir) {
	*etcd = hx_etcd_free(*etcd);
	if (*dir)
		hx_rm_tmp(*dir);
	free(*dir);
	*dir = NULL;
}

/* One harness etcd and two clients on it, each on its own loop (two
 * proposers racing): the fixture the agree suites share. */
static inline void et_pair_up(hx_etcd **etcd, et *a, et *b) {
	cr_assert_eq(hx_etcd_start(etcd, NULL), 0, "etcd did not start");
	cr_assert_eq(et_open(a, hx_etcd_endpoints(*etcd), NULL), 0);
	cr_assert_eq(et_open(b, hx_etcd_endpoints(*etcd), NULL), 0);
}

static inline void et_pair_down(hx_etcd **etcd, et *a, et *b) {
	et_close(b);
	et_close(a);
	*etcd = hx_etcd_free(*etcd);
}

/* Defines that fixture for a suite: etcd, t, t2, and up() and down() for
 * TestSuite's .init and .fini. */
#define ET_PAIR_FIXTURE                                                                 \
	static hx_etcd *etcd;                                                           \
	static et t, t2;                                                                \
	static void up(void) {                                                          \
		et_pair_up(&etcd, &t, &t2);                                             \
	}                                                                               \
	static void down(void) {                                                        \
		et_pair_down(&etcd, &t, &t2);                                           \
	}

/* The store's revision, read through the gateway: a command that wrote
 * nothing leaves it where it was. */
static inline int64_t et_revision(hx_etcd *e) {
	_cleanup_free_ char *body = NULL;
	long code = 0;
	cr_assert_eq(hx_etcd_request(e, 0, "/v3/kv/range", "{\"key\":\"AA==\",\"count_only\":true}", &body, &code), 0);
	cr_assert_eq(code, 200);
	json_auto_t *j = json_loads(body, 0, NULL);
	const char *rev = json_string_value(json_object_get(json_object_get(j, "header"), "revision"));
	cr_assert_not_null(rev, "%s", body);
	return strtoll(rev, NULL, 10);
}
