/* test_ctl_deployment.c — `corralctl deployment add|list|show|touch|
 * reclaim|remove`, the built binary against a real etcd: the records
 * written are what the codec (deployment.h) reads, with the fields the
 * verb is about changed and every other one kept (an application's own key
 * too); bad input exits 2 writing nothing; refusals exit 1; -n writes
 * nothing; a concurrent writer between read and write costs a retry, never
 * a lost change. Records in other states than pending are made here with
 * the codec, as the leader would write them. */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-test.h"
#include "deployment.h"
#include "rfc3339.h"

#define PREFIX "/corral/t"
#define GIB ((int64_t) 1 << 30)

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "ctl-deployment", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_deployment, .init = up, .fini = down, .timeout = 120);

#define CTL(out, err, ...) \
	ctlt_run(hx_etcd_endpoints(etcd), PREFIX, (out), (err), (char *const[]){ __VA_ARGS__, NULL })

static json_t *parse(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, text);
	return j;
}

/* The stored record's JSON, NULL when absent. */
static json_t *stored_json(const char *id) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/deployments/%s", id);
	_cleanup_free_ char *v = hx_etcd_get(etcd, key);
	return v && *v ? parse(v) : NULL;
}

/* The stored record through the codec. */
static void stored(const char *id, deployment *d) {
	json_auto_t *j = stored_json(id);
	deployment_error err = {};
	cr_assert_not_null(j, "no record %s", id);
	cr_assert_eq(deployment_from_json(j, id, d, &err), 0, "%s", err.message);
}

static void put_json(const char *id, json_t *j) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/deployments/%s", id);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	cr_assert_not_null(text);
	cr_assert_eq(hx_etcd_put(etcd, key, text), 0);
}

/* d as the leader would store it, with the application's own key kept. */
static void put_record(const deployment *d, bool app_key) {
	json_auto_t *j = deployment_to_json(d);
	cr_assert_not_null(j);
	if (app_key)
		cr_assert_eq(json_object_set_new(j, "app_seats", json_integer(42)), 0);
	put_json(d->id, j);
}

static void add(const char *id, const char *memory) {
	_cleanup_free_ char *err = NULL;
	cr_assert_eq(CTL(NULL, &err, "deployment", "add", (char *) id, "--memory", (char *) memory), 0, "%s", err);
}

/* Adds id, then makes it what edit says, stored through the codec with
 * an application key and an old last_active. */
static void make(const char *id, void (*edit)(deployment *d)) {
	_cleanup_(deployment_done) deployment d = {};
	add(id, "2G");
	stored(id, &d);
	d.last_active = 1700000000;     /* 2023-11-14 */
	if (edit)
		edit(&d);
	put_record(&d, true);
}

static void set_str(char **dst, const char *s) {
	free(*dst);
	*dst = s ? strdup(s) : NULL;
	cr_assert(!s || *dst);
}

static void to_maintenance(deployment *d) {
	d->state = DEPLOYMENT_MAINTENANCE;
	d->state_since = 1700600000;
	set_str(&d->host, "n1");
}

static void to_active(deployment *d) {
	d->state = DEPLOYMENT_ACTIVE;
	set_str(&d->host, "n1");
}

static void to_removed(deployment *d) {
	d->state = DEPLOYMENT_REMOVED;
	d->removal = DEPLOYMENT_REMOVAL_EXPIRED;
	d->removal_since = 1700500000;
	d->backup_at = 1700500100;
	d->last_seq = 7;
	set_str(&d->host, NULL);
	set_str(&d->last_host, "n1");
	set_str(&d->backup, "s3://backups/acme-1700500100.tar");
}

static void to_expired_license(deployment *d) {
	to_active(d);
	d->license_expires = 1700000000;
}

/* Both JSON records equal once the keys named are dropped from each. */
static void assert_same_but(json_t *a, json_t *b, const char *const *keys) {
	json_auto_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	for (size_t i = 0; keys[i]; i++) {
		json_object_del(x, keys[i]);
		json_object_del(y, keys[i]);
	}
	_cleanup_free_ char *xs = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);
	_cleanup_free_ char *ys = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert(json_equal(x, y), "changed more than it should:\n%s\n%s", xs, ys);
}

/* ---- add ------------------------------------------------------------------------------- */

Test(ctl_deployment, add_writes_a_pending_record) {
	_cleanup_(deployment_done) deployment d = {};
	_cleanup_free_ char *out = NULL, *err = NULL;
	time_t before = time(NULL);

	cr_assert_eq(CTL(&out, &err, "deployment", "add", "acme", "--memory", "2G", "--owner", "ops@acme.example",
			 "--license-expires", "2027-01-01T00:00:00Z"),
		     0, "%s", err);
	time_t after = time(NULL);
	cr_assert(strstr(out, "deployment acme added: pending"), "%s", out);
	cr_assert(strstr(out, "no host takes deployments yet: waits for a new host"), "%s", out);

	stored("acme", &d);
	cr_assert_eq(d.state, DEPLOYMENT_PENDING);
	cr_assert_eq(d.memory, 2 * GIB);
	cr_assert_str_eq(d.owner, "ops@acme.example");
	cr_assert_eq(d.license_expires, 1798761600);    /* 2027-01-01T00:00:00Z */
	cr_assert_null(d.host);
	cr_assert(d.last_active >= before && d.last_active <= after);
	cr_assert(d.created >= before && d.created <= after);
	cr_assert_eq(d.removal, DEPLOYMENT_REMOVAL_NONE);
	/* the contract's keys, readable with etcdctl */
	json_auto_t *j = stored_json("acme");
	const char *keys[] = { "host", "state", "memory", "owner", "license_expires", "last_active", "backup" };
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		cr_assert_not_null(json_object_get(j, keys[i]), "no %s", keys[i]);
	cr_assert_str_eq(json_string_value(json_object_get(j, "license_expires")), "2027-01-01T00:00:00Z");
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "pending");
}

Test(ctl_deployment, bad_input_exits_2_and_writes_nothing) {
	int64_t rev = et_revision(etcd);
	char *const bad[][12] = {
		{ "deployment", "add", "acme", "--memory", "2X", NULL },
		{ "deployment", "add", "acme", "--memory", "0", NULL },
		{ "deployment", "add", "acme", NULL },
		{ "deployment", "add", "a/b", "--memory", "2G", NULL },
		{ "deployment", "add", "..", "--memory", "2G", NULL },
		{ "deployment", "add", "acme", "--memory", "2G", "--license-expires", "tomorrow", NULL },
		{ "deployment", "add", "acme", "--memory", "2G", "--license-expires", "2026-02-31T00:00:00Z", NULL },
		{ "deployment", "touch", "acme", "--at", "yesterday", NULL },
		{ "deployment", "touch", "acme", "--at", "2999-01-01T00:00:00Z", NULL },
		{ "deployment", "reclaim", "acme", "--license-expires", "2001-01-01T00:00:00Z", NULL },
		{ "deployment", "remove", "a/b", NULL },
		{ "deployment", "touch", "acme", "--no-backup", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *err = NULL;
		cr_assert_eq(ctlt_run(hx_etcd_endpoints(etcd), PREFIX, NULL, &err, bad[i]), 2, "case %zu: %s", i, err);
		cr_assert(err && *err, "case %zu says nothing", i);
	}
	cr_assert_eq(et_revision(etcd), rev, "bad input wrote");
	/* load's --memory is still a fraction */
	_cleanup_free_ char *lerr = NULL;
	cr_assert_eq(CTL(NULL, &lerr, "load", "set", "--jobs", "1", "--memory", "2G"), 2);
	cr_assert(strstr(lerr, "a fraction 0..1"), "%s", lerr);
}

Test(ctl_deployment, add_of_an_existing_one_exits_1) {
	_cleanup_free_ char *err = NULL;

	add("acme", "2G");
	json_auto_t *before = stored_json("acme");
	cr_assert_eq(CTL(NULL, &err, "deployment", "add", "acme", "--memory", "4G"), 1);
	cr_assert(strstr(err, "exists"), "%s", err);
	json_auto_t *after = stored_json("acme");
	cr_assert(json_equal(before, after), "the existing record changed");
}

Test(ctl_deployment, add_again_after_removal_keeps_the_backup) {
	_cleanup_(deployment_done) deployment d = {};
	_cleanup_free_ char *out = NULL, *err = NULL;

	make("acme", to_removed);
	cr_assert_eq(CTL(&out, &err, "deployment", "add", "acme", "--memory", "3G", "--owner", "new@acme.example"), 0,
		     "%s", err);
	stored("acme", &d);
	cr_assert_eq(d.state, DEPLOYMENT_PENDING);
	cr_assert_eq(d.memory, 3 * GIB);
	cr_assert_str_eq(d.owner, "new@acme.example");
	cr_assert_str_eq(d.backup, "s3://backups/acme-1700500100.tar");
	cr_assert_eq(d.backup_at, 1700500100);
	cr_assert_eq(d.removal, DEPLOYMENT_REMOVAL_NONE);
	cr_assert_null(d.host);
	cr_assert_geq(d.last_seq, 7, "order numbers go back");
	cr_assert_eq(d.n_notices, 0);
	cr_assert(strstr(out, "backup kept"), "%s", out);
}

Test(ctl_deployment, add_says_where_it_goes) {
	_cleanup_free_ char *out = NULL, *err = NULL, *out2 = NULL;

	/* two nodes that take deployments, 8G each, threshold 0.8: 6.4G */
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n1", "{\"deployments\": {\"memory\": 8589934592}}"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/nodes/n2", "{\"deployments\": {\"memory\": 8589934592}}"), 0);
	make("a1", to_active);  /* on n1: the fullest that fits takes the next */
	cr_assert_eq(CTL(&out, &err, "deployment", "add", "b", "--memory", "2G"), 0, "%s", err);
	cr_assert(strstr(out, "placing on n1 (2.0G of 4.4G free)"), "%s", out);
	cr_assert_eq(CTL(&out2, NULL, "deployment", "add", "huge", "--memory", "7G"), 0);
	cr_assert(strstr(out2, "no host could take 7.0G even empty"), "%s", out2);
}

/* ---- list, show ----------------------------------------------------------------------- */

Test(ctl_deployment, list_and_show_as_table_and_json) {
	_cleanup_free_ char *out = NULL, *js = NULL, *show = NULL, *sjs = NULL, *err = NULL;

	make("beta", to_maintenance);
	add("alpha", "512M");
	cr_assert_eq(CTL(&out, &err, "deployment", "list"), 0, "%s", err);
	cr_assert(strstr(out, "ID") && strstr(out, "LAST-ACTIVE") && strstr(out, "NEXT/ERROR"), "%s", out);
	const char *a = strstr(out, "\nalpha "), *b = strstr(out, "\nbeta ");
	cr_assert(a && b && a < b, "by id: %s", out);
	cr_assert(strstr(a, "pending") && strstr(a, "512M") && strstr(a, "waits for a host"), "%s", out);
	cr_assert(strstr(b, "maintenance") && strstr(b, "n1") && strstr(b, "2023-11-14T22:13:20Z"), "%s", out);

	cr_assert_eq(CTL(&js, NULL, "-o", "json", "deployment", "list"), 0);
	json_auto_t *arr = parse(js);
	cr_assert_eq(json_array_size(arr), 2, "%s", js);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), "alpha");
	json_t *beta = json_array_get(arr, 1);
	cr_assert_str_eq(json_string_value(json_object_get(beta, "state")), "maintenance");
	cr_assert_eq(json_integer_value(json_object_get(beta, "app_seats")), 42, "the application's key: %s", js);

	cr_assert_eq(CTL(&show, NULL, "deployment", "show", "beta"), 0);
	cr_assert(strstr(show, "deployment beta") && strstr(show, "maintenance since 2023-11-21T20:53:20Z"), "%s", show);
	cr_assert(strstr(show, "no host takes deployments"), "%s", show);
	cr_assert_eq(CTL(&sjs, NULL, "-o", "json", "deployment", "show", "beta"), 0);
	json_auto_t *sj = parse(sjs);
	cr_assert_str_eq(json_string_value(json_object_get(sj, "id")), "beta");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sj, "record"), "host")), "n1");
	cr_assert(json_is_null(json_object_get(sj, "report")), "%s", sjs);
	cr_assert(json_is_array(json_object_get(sj, "hosts")), "%s", sjs);

	cr_assert_eq(CTL(NULL, NULL, "deployment", "show", "nope"), 1);
}

/* ---- touch, reclaim --------------------------------------------------------------------- */

Test(ctl_deployment, touch_moves_last_active_only) {
	_cleanup_free_ char *out = NULL, *err = NULL, *out2 = NULL;
	static const char *const changed[] = { "last_active", NULL };

	make("acme", to_active);
	json_auto_t *before = stored_json("acme");
	cr_assert_eq(CTL(&out, &err, "deployment", "touch", "acme", "--at", "2025-06-01T12:00:00Z"), 0, "%s", err);
	json_auto_t *after = stored_json("acme");
	cr_assert_str_eq(json_string_value(json_object_get(after, "last_active")), "2025-06-01T12:00:00Z");
	assert_same_but(before, after, changed);
	cr_assert_eq(json_integer_value(json_object_get(after, "app_seats")), 42);
	/* older activity never moves it back */
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(&out2, NULL, "deployment", "touch", "acme", "--at", "2024-01-01T00:00:00Z"), 0);
	cr_assert(strstr(out2, "already"), "%s", out2);
	cr_assert_eq(et_revision(etcd), rev);
	/* now */
	time_t t0 = time(NULL);
	cr_assert_eq(CTL(NULL, NULL, "deployment", "touch", "acme"), 0);
	_cleanup_(deployment_done) deployment d = {};
	stored("acme", &d);
	cr_assert_geq(d.last_active, t0);
	cr_assert_eq(CTL(NULL, NULL, "deployment", "touch", "nope"), 1);
}

Test(ctl_deployment, reclaim_out_of_maintenance_keeps_the_rest) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	static const char *const changed[] = { "last_active", NULL };

	make("acme", to_maintenance);
	json_auto_t *before = stored_json("acme");
	time_t t0 = time(NULL);
	cr_assert_eq(CTL(&out, &err, "deployment", "reclaim", "acme"), 0, "%s", err);
	cr_assert(strstr(out, "maintenance_off will be ordered on n1"), "%s", out);
	json_auto_t *after = stored_json("acme");
	assert_same_but(before, after, changed);
	_cleanup_(deployment_done) deployment d = {};
	stored("acme", &d);
	cr_assert_geq(d.last_active, t0);
	cr_assert_eq(d.state, DEPLOYMENT_MAINTENANCE, "the leader changes the state, not corralctl");
}

Test(ctl_deployment, reclaim_refusals) {
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *out = NULL, *e4 = NULL;

	make("gone", to_removed);
	make("late", to_expired_license);
	add("leaving", "1G");
	cr_assert_eq(CTL(NULL, NULL, "deployment", "remove", "leaving"), 0);
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(NULL, &e1, "deployment", "reclaim", "gone"), 1);
	cr_assert(strstr(e1, "removed") && strstr(e1, "add it again"), "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "deployment", "reclaim", "late"), 1);
	cr_assert(strstr(e2, "license expired") && strstr(e2, "--license-expires"), "%s", e2);
	cr_assert_eq(CTL(NULL, &e3, "deployment", "reclaim", "leaving"), 1);
	cr_assert(strstr(e3, "being removed"), "%s", e3);
	cr_assert_eq(CTL(NULL, NULL, "deployment", "reclaim", "nope"), 1);
	cr_assert_eq(et_revision(etcd), rev, "a refusal wrote");

	/* a later license reclaims the expired one */
	static const char *const changed[] = { "last_active", "license_expires", NULL };
	json_auto_t *before = stored_json("late");
	cr_assert_eq(CTL(&out, &e4, "deployment", "reclaim", "late", "--license-expires", "2999-01-01T00:00:00Z"), 0,
		     "%s", e4);
	json_auto_t *after = stored_json("late");
	cr_assert_str_eq(json_string_value(json_object_get(after, "license_expires")), "2999-01-01T00:00:00Z");
	assert_same_but(before, after, changed);
}

/* ---- remove ------------------------------------------------------------------------------ */

Test(ctl_deployment, remove_with_and_without_backup) {
	_cleanup_free_ char *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *err = NULL;
	static const char *const changed[] = { "removal", "removal_since", "removal_skip_backup", NULL };

	make("a", to_active);
	make("b", to_active);
	json_auto_t *before = stored_json("a");
	cr_assert_eq(CTL(&o1, &err, "deployment", "remove", "a"), 0, "%s", err);
	cr_assert(strstr(o1, "backup, then remove on n1"), "%s", o1);
	json_auto_t *after = stored_json("a");
	assert_same_but(before, after, changed);
	_cleanup_(deployment_done) deployment a = {}, b = {}, b2 = {};
	stored("a", &a);
	cr_assert_eq(a.removal, DEPLOYMENT_REMOVAL_OPERATOR);
	cr_assert(!a.removal_skip_backup);
	cr_assert_gt(a.removal_since, 0);

	cr_assert_eq(CTL(&o2, NULL, "deployment", "remove", "b", "--no-backup"), 0);
	cr_assert(strstr(o2, "remove (no backup) on n1"), "%s", o2);
	stored("b", &b);
	cr_assert_eq(b.removal, DEPLOYMENT_REMOVAL_OPERATOR);
	cr_assert(b.removal_skip_backup);

	/* again: under way, nothing written; then removed: already removed */
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(&o3, NULL, "deployment", "remove", "b"), 0);
	cr_assert(strstr(o3, "under way"), "%s", o3);
	cr_assert_eq(et_revision(etcd), rev);
	b.state = DEPLOYMENT_REMOVED;
	put_record(&b, false);
	rev = et_revision(etcd);
	cr_assert_eq(CTL(&o4, NULL, "deployment", "remove", "b"), 0);
	cr_assert(strstr(o4, "already removed"), "%s", o4);
	cr_assert_eq(et_revision(etcd), rev);
	stored("b", &b2);
	cr_assert_eq(b2.state, DEPLOYMENT_REMOVED);
	cr_assert_eq(CTL(NULL, NULL, "deployment", "remove", "nope"), 1);
}

Test(ctl_deployment, dry_run_writes_nothing) {
	_cleanup_free_ char *o1 = NULL, *o2 = NULL, *o3 = NULL, *e = NULL;

	make("acme", to_maintenance);
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(&o1, &e, "-n", "deployment", "add", "new", "--memory", "1G"), 0, "%s", e);
	cr_assert(strstr(o1, "dry run") && strstr(o1, "deployments/new"), "%s", o1);
	cr_assert_eq(CTL(&o2, NULL, "-n", "deployment", "reclaim", "acme"), 0);
	cr_assert(strstr(o2, "dry run"), "%s", o2);
	cr_assert_eq(CTL(&o3, NULL, "deployment", "remove", "acme", "-n"), 0);
	cr_assert(strstr(o3, "dry run"), "%s", o3);
	cr_assert_eq(et_revision(etcd), rev, "-n wrote");
	cr_assert_null(stored_json("new"));
}

/* ---- concurrency ------------------------------------------------------------------------- */

/* One compare-and-set write of key by the test, as the leader makes them:
 * adds the application key name. Retries until it lands. */
static void cas_add_key(et *t, const char *key, const char *name) {
	for (int attempt = 0; attempt < 100; attempt++) {
		_cleanup_(etcd_response_freep) etcd_response *r = et_range(t, &(etcd_range_req){ .key = key });
		cr_assert(r && r->error.code == 0 && r->n_kvs == 1);
		json_auto_t *j = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
		cr_assert_not_null(j);
		cr_assert_eq(json_object_set_new(j, name, json_true()), 0);
		_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
		etcd_compare cmp = { .key = key, .key_len = strlen(key), .result = ETCD_CMP_EQUAL,
				     .target = ETCD_CMP_MOD, .number = r->kvs[0].mod_revision };
		etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = key, .value = text } };
		_cleanup_(etcd_response_freep) etcd_response *w =
			et_txn(t, &(etcd_txn_req){ .compare = &cmp, .n_compare = 1, .success = &put, .n_success = 1 });
		cr_assert(w && w->error.code == 0);
		if (w->succeeded)
			return;
	}
	cr_assert_fail("%s kept changing", key);
}

/* touch and remove racing each other and a leader-like writer: each
 * write is a compare-and-set, a lost one starts over from the winner's,
 * so every change is in the final record. */
Test(ctl_deployment, concurrent_writes_are_retried_not_lost) {
	enum { N = 6, K = 8 };     /* fewer competing writes than corralctl's tries */
	pid_t pids[N];
	et t = {};

	make("acme", to_active);
	cr_assert_eq(et_open(&t, hx_etcd_endpoints(etcd), NULL), 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			char at[32];
			if (i == 0)
				_exit(CTL(NULL, NULL, "deployment", "remove", "acme", "--no-backup"));
			snprintf(at, sizeof at, "2025-01-0%dT00:00:00Z", i);
			_exit(CTL(NULL, NULL, "deployment", "touch", "acme", "--at", at));
		}
	}
	for (int k = 0; k < K; k++) {
		char name[32];
		snprintf(name, sizeof name, "leader_%d", k);
		cas_add_key(&t, PREFIX "/deployments/acme", name);
	}
	for (int i = 0; i < N; i++) {
		int st;
		cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "corralctl %d failed: %d", i, st);
	}
	et_close(&t);
	_cleanup_(deployment_done) deployment d = {};
	stored("acme", &d);
	cr_assert_eq(d.removal, DEPLOYMENT_REMOVAL_OPERATOR, "the remove was lost");
	cr_assert(d.removal_skip_backup);
	cr_assert_eq(d.last_active, 1736035200, "the latest touch was lost");        /* 2025-01-05 */
	json_auto_t *j = stored_json("acme");
	for (int k = 0; k < K; k++) {
		char name[32];
		snprintf(name, sizeof name, "leader_%d", k);
		cr_assert(json_is_true(json_object_get(j, name)), "the writer's %s was lost", name);
	}
	cr_assert_eq(json_integer_value(json_object_get(j, "app_seats")), 42);
}

/* ---- add --wait ---------------------------------------------------------------------------- */

/* Waits (bounded) until the record of id exists. */
static void await_record(const char *id) {
	uint64_t deadline = hx_now_usec() + 20 * USEC_PER_SEC;
	for (;;) {
		json_auto_t *j = stored_json(id);
		if (j)
			return;
		cr_assert_lt(hx_now_usec(), deadline, "%s never written", id);
		usleep(20 * 1000);
	}
}

/* Plays the leader and the host: makes the pending record active (or
 * failing) while `deployment add --wait` waits. Returns add's exit code. */
static int add_and_settle(const char *id, bool fail) {
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(CTL(NULL, NULL, "deployment", "add", (char *) id, "--memory", "1G", "--wait", "30"));
	await_record(id);
	_cleanup_(deployment_done) deployment d = {};
	stored(id, &d);
	set_str(&d.host, "n1");
	if (fail) {
		set_str(&d.error, "exit status 1: docker: no space left");
		d.attempts = 1;
	} else
		d.state = DEPLOYMENT_ACTIVE;
	put_record(&d, false);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "%d", st);
	return WEXITSTATUS(st);
}

Test(ctl_deployment, add_wait_until_active_or_failing) {
	cr_assert_eq(add_and_settle("ok", false), 0);
	cr_assert_eq(add_and_settle("broken", true), 1);
}

/* A record the codec refuses is listed as malformed and never written
 * over: the operator must see it and fix it with etcdctl. */
Test(ctl_deployment, malformed_records_are_shown_never_overwritten) {
	_cleanup_free_ char *out = NULL, *js = NULL, *e1 = NULL, *e2 = NULL;

	add("good", "1G");
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/deployments/junk", "{\"state\": \"sleeping\", \"memory\": 5}"), 0);
	cr_assert_eq(hx_etcd_put(etcd, PREFIX "/deployments/text", "not json"), 0);
	cr_assert_eq(CTL(&out, NULL, "deployment", "list"), 0);
	cr_assert(strstr(out, "\njunk ") && strstr(out, "\ntext ") && strstr(out, "malformed"), "%s", out);
	cr_assert(strstr(out, "\ngood "), "%s", out);
	cr_assert_eq(CTL(&js, NULL, "-o", "json", "deployment", "list"), 0);
	json_auto_t *arr = parse(js);
	cr_assert_eq(json_array_size(arr), 3, "%s", js);
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(NULL, &e1, "deployment", "touch", "junk"), 1);
	cr_assert(strstr(e1, "not a deployment record"), "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "deployment", "add", "text", "--memory", "1G"), 1);
	cr_assert(strstr(e2, "holds no JSON"), "%s", e2);
	cr_assert_eq(et_revision(etcd), rev, "a malformed record was written over");
}
