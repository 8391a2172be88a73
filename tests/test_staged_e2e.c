/* test_staged_e2e.c — staged config rollouts end to end (docs/upgrades.md,
 * "Staged config rollout"): four corrald on a real etcd and a real
 * `systemd --user`, the candidate and its plan written by `corralctl
 * config set --staged`, the leader's rollout loop pinning the canary, the
 * canary's reconciler rendering the pinned snapshot through its check
 * command and unit restart, then promotion (or rollback).
 *
 * Each node nI renders two files: "app" (checked: the check command
 * refuses a file holding "bad"; a change restarts the user unit
 * app-nI.service) and "w", whose w/workers list the leader's topology
 * upkeep keeps. Nodes have no `upgrade:` section: a config-only rollout
 * needs none. n4 starts first, so it leads, and the canary (the first
 * eligible node by id) is n1, another node: killing the leader does not
 * kill the canary. In the rebase suite n1 starts first: the leader is the
 * pinned canary.
 *
 * The suites: bad (a check command refuses the candidate on the canary:
 * it never reaches another node, `current` never moves, the canary
 * renders current again), good (promotion after the bake, every node
 * renders it), rebase (a config set and a fifth node's join during the
 * bake are both in the promoted config, and the leader, pinned to the
 * candidate as the canary, never writes the candidate's values into
 * current before promotion), leader_kill (SIGKILL of the leader during the bake: the
 * successor promotes at the stored bake_until, not later). A watch
 * records every put of `current`, status/ and upgrade/nodes/ with the
 * wall-clock time it arrived. */
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "agree.h"
#include "etcd-test.h"
#include "harness.h"

#define PREFIX "/corral/t"
#define N 5                     /* n5 joins in the rebase suite only */
#define START 4
#define SCENARIO_USEC (60 * USEC_PER_SEC)
#define LEASE_TTL 2             /* hx_write_corrald_config_full's lease_ttl */

typedef struct node {
	char *id, *dir, *cfg, *log, *unit, *app, *w;
	hx_proc *proc;
} node;

static hx_etcd *etcd;
static hx_systemd *sd;
static char *dir;
static node nodes[N];
static et obs;
static etcd_watch *watch;

/* Every put the watch saw, its key (after the prefix), arrival time and
 * what matters of it: current: a = the id; status/<n>: a = target, b =
 * pinned; upgrade/nodes/<n>: a = verb, b = role, c = target.config;
 * upgrade/progress/<n>: a = verb, b = state, c = error. */
typedef struct seen_put {
	char key[96];
	char a[210], b[210], c[300];
	time_t at;
} seen_put;
static seen_put seen_puts[2048];
static size_t n_puts;

/* ---- etcd ---------------------------------------------------------------------- */

static json_t *get_json(const char *key) {
	_cleanup_free_ char *v = et_get(&obs, key);
	return v ? json_loads(v, 0, NULL) : NULL;
}

static const char *str_of(json_t *j, const char *field) {
	return json_string_value(json_object_get(j, field));
}

static char *current(void) {
	return et_get(&obs, PREFIX "/current");
}

static void seen_fill(seen_put *p, const char *k, const char *value, size_t len) {
	json_auto_t *j = strcmp(k, "current") ? json_loadb(value, len, 0, NULL) : NULL;
	const char *a = NULL, *b = NULL, *c = NULL;

	if (!strcmp(k, "current")) {
		snprintf(p->a, sizeof p->a, "%.*s", (int) len, value);
		return;
	}
	if (!strncmp(k, "status/", 7)) {
		a = str_of(j, "target");
		b = str_of(j, "pinned");
	} else if (!strncmp(k, "upgrade/nodes/", 14)) {
		a = str_of(j, "verb");
		b = str_of(j, "role");
		c = str_of(json_object_get(j, "target"), "config");
	} else {
		a = str_of(j, "verb");
		b = str_of(j, "state");
		c = str_of(j, "error");
	}
	snprintf(p->a, sizeof p->a, "%s", a ?: "");
	snprintf(p->b, sizeof p->b, "%s", b ?: "");
	snprintf(p->c, sizeof p->c, "%s", c ?: "");
}

static void on_put(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	(void) w;
	(void) userdata;
	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events && n_puts < ELEMENTSOF(seen_puts); i++) {
		const etcd_event *e = &m->events[i];
		if (e->type != ETCD_EVENT_PUT || !e->kv.value || strncmp(e->kv.key, PREFIX "/", strlen(PREFIX "/")))
			continue;
		const char *k = e->kv.key + strlen(PREFIX "/");
		if (strcmp(k, "current") && strncmp(k, "status/", 7) && strncmp(k, "upgrade/nodes/", 14) &&
		    strncmp(k, "upgrade/progress/", 17))
			continue;
		seen_put *p = &seen_puts[n_puts++];
		snprintf(p->key, sizeof p->key, "%s", k);
		seen_fill(p, k, e->kv.value, e->kv.value_len);
		p->at = time(NULL);
	}
}

static json_t *status_of(const node *n) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/status/%s", n->id);
	return get_json(key);
}

static json_t *state(void) {
	return get_json(PREFIX "/upgrade/state");
}

static const char *phase_of(json_t *st) {
	return str_of(st, "phase");
}

/* ---- the fleet ------------------------------------------------------------------ */

static void node_init(node *n, unsigned i) {
	n->id = hx_fmt("n%u", i + 1);
	n->dir = hx_fmt("%s/%s", dir, n->id);
	n->cfg = hx_fmt("%s/corrald.yaml", n->dir);
	n->log = hx_fmt("%s/corrald.log", n->dir);
	n->unit = hx_fmt("app-%s.service", n->id);
	n->app = hx_fmt("%s/app.json", n->dir);
	n->w = hx_fmt("%s/w.json", n->dir);
	cr_assert_eq(mkdir(n->dir, 0755), 0);
	_cleanup_free_ char *address = hx_fmt("127.0.0.%u", 41 + i);
	_cleanup_free_ char *more = hx_fmt("units_bus: user\n"
					   "unit_timeout: 20s\n"
					   "debounce: 50ms\n"
					   "files:\n"
					   "  app:\n"
					   "    path: %s\n"
					   "    check: '! grep -q bad \"$1\"'\n"
					   "    restart: [%s]\n"
					   "  w:\n"
					   "    path: %s\n"
					   "topology:\n"
					   "  - service: Worker\n"
					   "    path: w/workers\n"
					   "    value: [\"{address}\", 26000]\n",
					   n->app, n->unit, n->w);
	/* n4, the first leader, is no Worker: its death in the leader_kill
	 * suite changes no topology list (no rebase during that bake) */
	cr_assert_eq(hx_write_corrald_config_full(n->cfg, n->id, address, i == START - 1 ? "Core" : "Worker",
						  hx_etcd_endpoints(etcd), more),
		     0);
	_cleanup_free_ char *unit = hx_fmt("[Unit]\nDescription=app on %s\n[Service]\n"
					   "ExecStartPre=/bin/sh -c 'echo start >> %s/starts.log'\n"
					   "ExecStart=/bin/sleep infinity\n",
					   n->id, n->dir);
	cr_assert_eq(hx_systemd_install_unit(sd, n->unit, unit), 0);
}

static void node_start(node *n) {
	cr_assert_eq(hx_corrald_spawn(&n->proc, n->cfg, hx_systemd_env(sd), n->log), 0, "%s did not start", n->id);
}

static void node_done(node *n) {
	n->proc = hx_proc_free(n->proc);
	free(n->id);
	free(n->dir);
	free(n->cfg);
	free(n->log);
	free(n->unit);
	free(n->app);
	free(n->w);
	*n = (node){};
}

/* The id of the node the leader key names ("" when none), in buf. */
static const char *leader_id(char *buf, size_t size) {
	_cleanup_free_ char *v = et_get(&obs, PREFIX "/leader");
	buf[0] = '\0';
	for (unsigned i = 0; v && i < N; i++) {
		_cleanup_free_ char *quoted = hx_fmt("\"n%u\"", i + 1), *plain = hx_fmt("n%u", i + 1);
		if (strstr(v, quoted) || streq(v, plain))
			snprintf(buf, size, "%s", plain);
	}
	return buf;
}

static int ctl(char **out, char *const args[]) {
	return hx_corralctl(hx_etcd_endpoints(etcd), out, args);
}

#define CTL(out, ...) ctl((out), (char *const[]){ __VA_ARGS__, NULL })

/* Node n's file holds needle. */
static bool file_has(const char *path, const char *needle) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	return text && strstr(text, needle);
}

typedef struct want {
	unsigned from, to;      /* nodes [from, to) */
	const char *config;     /* status applied == config (NULL: current) and not pinned */
	const char *needle;     /* in every app file */
} want;

static bool nodes_render(void *ud) {
	const want *w = ud;
	_cleanup_free_ char *cur = w->config ? NULL : current();
	const char *id = w->config ? w->config : cur;
	for (unsigned i = w->from; i < w->to; i++) {
		json_auto_t *st = status_of(&nodes[i]);
		if (!id || !streq_ptr(str_of(st, "applied"), id) || !json_is_null(json_object_get(st, "pinned")) ||
		    !json_is_true(json_object_get(st, "ok")))
			return false;
		if (w->needle && !file_has(nodes[i].app, w->needle))
			return false;
	}
	return true;
}

static bool has_leader(void *ud) {
	char buf[16];
	(void) ud;
	return *leader_id(buf, sizeof buf);
}

static bool all_ready(void *ud) {
	(void) ud;
	char buf[16];
	want w = { .from = 0, .to = START, .needle = "\"port\"" };
	return *leader_id(buf, sizeof buf) && nodes_render(&w);
}

/* The node started first, which leads: n4 (no canary), or n1 (the
 * canary: a pinned leader, whose upkeep must not take its pinned
 * snapshot for `current`). */
static unsigned first = START - 1;

static void up(void) {
	et_fixture_up(&etcd, &dir, "staged", 1);
	cr_assert_eq(hx_systemd_start(&sd), 0, "systemd --user did not start");
	cr_assert_eq(et_open(&obs, hx_etcd_endpoints(etcd), NULL), 0);
	n_puts = 0;
	cr_assert_eq(etcd_watch_new(&watch, obs.client, &(etcd_watch_req){ .key = PREFIX "/", .prefix = true }, on_put,
				    NULL),
		     0);
	for (unsigned i = 0; i < N; i++)
		node_init(&nodes[i], i);
	_cleanup_free_ char *o1 = NULL;
	cr_assert_eq(CTL(&o1, "config", "set", "app", "{\"port\": 1}"), 0, "%s", o1 ?: "");
	/* the first started leads; the canary is n1 */
	node_start(&nodes[first]);
	char buf[16];
	cr_assert(et_run_until(&obs, has_leader, NULL, 30 * USEC_PER_SEC), "no leader");
	cr_assert_str_eq(leader_id(buf, sizeof buf), nodes[first].id, "%s did not lead", nodes[first].id);
	for (unsigned i = 0; i < START; i++)
		if (i != first)
			node_start(&nodes[i]);
	cr_assert(et_run_until(&obs, all_ready, NULL, 30 * USEC_PER_SEC), "the fleet never rendered the first config");
}

static void dump(void) {
	_cleanup_free_ char *st = et_get(&obs, PREFIX "/upgrade/state"), *pl = et_get(&obs, PREFIX "/upgrade/plan");
	fprintf(stderr, "upgrade/plan: %s\nupgrade/state: %s\n", pl ?: "(none)", st ?: "(none)");
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *ok = hx_fmt(PREFIX "/upgrade/nodes/%s", nodes[i].id);
		_cleanup_free_ char *pk = hx_fmt(PREFIX "/upgrade/progress/%s", nodes[i].id);
		_cleanup_free_ char *sk = hx_fmt(PREFIX "/status/%s", nodes[i].id);
		_cleanup_free_ char *o = et_get(&obs, ok), *p = et_get(&obs, pk), *s = et_get(&obs, sk);
		json_auto_t *sj = s ? json_loads(s, 0, NULL) : NULL;
		json_object_del(sj, "files");
		_cleanup_free_ char *brief = sj ? json_dumps(sj, JSON_COMPACT) : NULL, *app = hx_read_file(nodes[i].app, NULL);
		fprintf(stderr, "%s order: %s\n%s progress: %s\n%s status: %s\n%s app: %s\n", nodes[i].id, o ?: "-",
			nodes[i].id, p ?: "-", nodes[i].id, brief ?: "-", nodes[i].id, app ?: "-");
	}
}

static void down(void) {
	if (getenv("CORRAL_STAGED_LOGS") && obs.client)
		dump();
	watch = etcd_watch_free(watch);
	for (unsigned i = 0; i < N; i++) {
		if (getenv("CORRAL_STAGED_LOGS") && nodes[i].log && nodes[i].proc)
			hx_log_tail(nodes[i].log, 60);
		node_done(&nodes[i]);
	}
	et_close(&obs);
	sd = hx_systemd_free(sd);
	et_fixture_down(&etcd, &dir);
}

TestSuite(staged_bad, .init = up, .fini = down, .timeout = 150);
TestSuite(staged_good, .init = up, .fini = down, .timeout = 150);
static void up_leader_canary(void) {
	first = 0;
	up();
	first = START - 1;
}

TestSuite(staged_rebase, .init = up_leader_canary, .fini = down, .timeout = 150);
TestSuite(staged_leader_kill, .init = up, .fini = down, .timeout = 150);

/* ---- the plan -------------------------------------------------------------------- */

/* config set PATH VALUE --staged with short times (options after the
 * operands, as an operator types them); the candidate id. */
static char *stage(const char *path, const char *value, const char *bake) {
	_cleanup_free_ char *out = NULL;
	int r = CTL(&out, "-o", "json", "config", "set", (char *) path, (char *) value, "--staged", "--canary", "1",
		    "--bake", (char *) bake, "--min-healthy-time", "1s", "--auto-promote", "--id", "s1");
	cr_assert_eq(r, 0, "config set --staged: %d: %s", r, out ?: "");
	json_auto_t *j = json_loads(out, 0, NULL);
	const char *cand = str_of(j, "candidate");
	cr_assert_not_null(cand, "%s", out);
	return strdup(cand);
}

static bool phase_in(void *ud) {
	const char *const *phases = ud;
	json_auto_t *st = state();
	for (size_t i = 0; phases[i]; i++)
		if (streq_ptr(phase_of(st), phases[i]))
			return true;
	return false;
}

static void wait_phase(const char *const *phases) {
	if (!et_run_until(&obs, phase_in, (void *) phases, SCENARIO_USEC)) {
		dump();
		json_auto_t *st = state();
		cr_assert_fail("the plan never reached %s (phase %s)", phases[0], phase_of(st) ?: "none");
	}
}

/* Some status record of a node other than `except` named id as its
 * target or pin: the candidate reached it. */
static bool status_named(const char *id, const char *except) {
	for (size_t i = 0; i < n_puts; i++)
		if (!strncmp(seen_puts[i].key, "status/", 7) && strcmp(seen_puts[i].key + 7, except) &&
		    (streq(seen_puts[i].a, id) || streq(seen_puts[i].b, id)))
			return true;
	return false;
}

/* When `current` was put to id (0: never). */
static time_t current_put_at(const char *id) {
	for (size_t i = 0; i < n_puts; i++)
		if (streq(seen_puts[i].key, "current") && streq(seen_puts[i].a, id))
			return seen_puts[i].at;
	return 0;
}

static size_t current_puts(void) {
	size_t k = 0;
	for (size_t i = 0; i < n_puts; i++)
		k += streq(seen_puts[i].key, "current");
	return k;
}

/* The canary's id, from the orders seen ("" when none). */
static const char *canary_of(char *buf, size_t size) {
	buf[0] = '\0';
	for (size_t i = 0; i < n_puts && !*buf; i++)
		if (!strncmp(seen_puts[i].key, "upgrade/nodes/", 14) && streq(seen_puts[i].b, "canary"))
			snprintf(buf, size, "%s", seen_puts[i].key + 14);
	return buf;
}

/* The progress node id reported for verb in state: its error ("" none),
 * NULL when never. */
static const char *progress_seen(const char *id, const char *verb, const char *st) {
	_cleanup_free_ char *key = hx_fmt("upgrade/progress/%s", id);
	for (size_t i = 0; i < n_puts; i++)
		if (streq(seen_puts[i].key, key) && streq(seen_puts[i].a, verb) && streq(seen_puts[i].b, st))
			return seen_puts[i].c;
	return NULL;
}

/* ---- 1. a candidate the canary's check refuses ---------------------------------- */

Test(staged_bad, a_refused_candidate_never_leaves_the_canary) {
	_cleanup_free_ char *before = current();
	size_t puts_before = current_puts();
	_cleanup_free_ char *cand = stage("app/mode", "bad", "2s");
	static const char *const ended[] = { "rolled_back", "failed", NULL };

	wait_phase(ended);
	_cleanup_free_ char *after = current();
	cr_assert_str_eq(after, before, "current moved");
	cr_assert_eq(current_puts(), puts_before, "current was written during the plan");
	char canary[32];
	cr_assert_str_neq(canary_of(canary, sizeof canary), "", "no canary order seen");
	cr_assert(!status_named(cand, canary), "the candidate reached a node other than the canary");

	/* the canary was pinned, its check refused it: failed, with the reason */
	const char *why = progress_seen(canary, "upgrade", "failed");
	cr_assert_not_null(why, "the canary never reported the refusal");
	cr_assert(strstr(why, "check failed"), "%s", why);
	cr_assert_null(progress_seen(canary, "upgrade", "done"));

	/* and renders current again, unpinned; nothing of the candidate on disk */
	want w = { .from = 0, .to = START, .config = before, .needle = "\"port\"" };
	cr_assert(et_run_until(&obs, nodes_render, &w, SCENARIO_USEC), "the canary never returned to current");
	for (unsigned i = 0; i < START; i++)
		cr_assert(!file_has(nodes[i].app, "bad"), "%s renders the refused value", nodes[i].id);
}

/* ---- 2. a good candidate -------------------------------------------------------- */

Test(staged_good, a_good_candidate_promotes_after_the_bake) {
	_cleanup_free_ char *before = current();
	_cleanup_free_ char *cand = stage("app/port", "2", "2s");
	static const char *const bake[] = { "canary_bake", NULL }, *const done[] = { "succeeded", NULL };

	wait_phase(bake);
	/* baking: the canary runs the candidate, current has not moved */
	json_auto_t *st = state();
	time_t bake_until = (time_t) json_integer_value(json_object_get(st, "bake_until"));
	_cleanup_free_ char *mid = current();
	cr_assert_str_eq(mid, before, "current moved before the bake ended");
	char canary[32];
	cr_assert_str_neq(canary_of(canary, sizeof canary), "", "no canary order seen");
	json_auto_t *c1 = status_of(&nodes[canary[1] - '1']);
	cr_assert_str_eq(str_of(c1, "pinned"), cand, "the canary is pinned to the candidate");
	cr_assert_str_eq(str_of(c1, "applied"), cand);
	cr_assert(!status_named(cand, canary), "a node other than the canary took the candidate before promotion");

	wait_phase(done);
	json_auto_t *fin = state();
	_cleanup_free_ char *now = current();
	cr_assert_str_eq(now, str_of(fin, "candidate") ?: cand, "current is the promoted candidate");
	time_t at = current_put_at(now);
	cr_assert_gt(at, 0, "no put of current to %s seen", now);
	cr_assert_gt(bake_until, 0);
	cr_assert_geq(at, bake_until, "promoted at %lld, before the bake's end %lld", (long long) at,
		      (long long) bake_until);
	want w = { .from = 0, .to = START, .config = now, .needle = "2" };
	cr_assert(et_run_until(&obs, nodes_render, &w, SCENARIO_USEC), "not every node renders the promoted config");
	for (unsigned i = 0; i < START; i++) {
		json_auto_t *s = status_of(&nodes[i]);
		cr_assert(json_is_null(json_object_get(s, "pinned")), "%s still pinned", nodes[i].id);
	}
}

/* ---- 3. a concurrent edit and a join during the bake ------------------------------ */

/* Every config `current` named before promotion lacks the candidate's
 * value: no upkeep wrote it there (the leader may be pinned). */
static void assert_candidate_never_current_early(const char *cand, const char *promoted, const char *path) {
	for (size_t i = 0; i < n_puts; i++) {
		const char *id = seen_puts[i].a;
		if (!streq(seen_puts[i].key, "current"))
			continue;
		if (streq(id, promoted) || streq(id, cand))
			break;  /* the promotion itself */
		_cleanup_free_ char *out = NULL;
		if (CTL(&out, "-o", "json", "config", "diff", (char *) id, (char *) cand) != 0)
			continue;       /* collected meanwhile */
		json_auto_t *j = json_loads(out, 0, NULL);
		bool differs = false;
		size_t k;
		json_t *d;
		json_array_foreach(json_object_get(j, "diff"), k, d)
			differs = differs || streq_ptr(str_of(d, "path"), path);
		cr_assert(differs, "current %s already held the candidate's %s before promotion", id, path);
	}
}

Test(staged_rebase, an_edit_and_a_join_during_the_bake_are_both_promoted) {
	_cleanup_free_ char *cand = stage("app/port", "3", "4s");
	static const char *const bake[] = { "canary_bake", NULL }, *const done[] = { "succeeded", NULL };

	wait_phase(bake);
	char buf[16], canary[32];
	cr_assert_str_eq(leader_id(buf, sizeof buf), canary_of(canary, sizeof canary), "the leader is the canary");
	/* during the bake: an operator's edit of another key, and a join */
	_cleanup_free_ char *o = NULL;
	cr_assert_eq(CTL(&o, "config", "set", "app/other", "7"), 0, "%s", o ?: "");
	node_start(&nodes[N - 1]);
	wait_phase(done);

	json_auto_t *fin = state();
	_cleanup_free_ char *now = current();
	cr_assert_str_eq(now, str_of(fin, "candidate"), "current is the (rebased) candidate");
	cr_assert_str_neq(now, cand, "the candidate was rebased on the newer current");
	cr_assert_geq(json_integer_value(json_object_get(fin, "rebases")), 1);

	/* the promoted config holds the plan's change, the edit and the join */
	_cleanup_free_ char *port = NULL, *other = NULL, *workers = NULL;
	cr_assert_eq(CTL(&port, "config", "get", "app/port"), 0);
	cr_assert_str_eq(port, "3\n");
	cr_assert_eq(CTL(&other, "config", "get", "app/other"), 0);
	cr_assert_str_eq(other, "7\n", "the concurrent edit was lost");
	cr_assert_eq(CTL(&workers, "config", "get", "w/workers"), 0);
	cr_assert(strstr(workers, "127.0.0.45"), "n5's join was lost: %s", workers);

	want w = { .from = 0, .to = N, .config = now, .needle = "\"other\"" };
	cr_assert(et_run_until(&obs, nodes_render, &w, SCENARIO_USEC), "not every node renders the promoted config");
	assert_candidate_never_current_early(cand, now, "app/port");
}

/* ---- 4. the leader dies during the bake ------------------------------------------- */

Test(staged_leader_kill, the_successor_promotes_at_the_stored_time) {
	_cleanup_free_ char *cand = stage("app/port", "4", "4s");
	static const char *const bake[] = { "canary_bake", NULL }, *const done[] = { "succeeded", NULL };

	wait_phase(bake);
	json_auto_t *st = state();
	time_t bake_until = (time_t) json_integer_value(json_object_get(st, "bake_until"));
	cr_assert_gt(bake_until, 0);
	char buf[16];
	cr_assert_str_eq(leader_id(buf, sizeof buf), "n4");
	int status = 0;
	cr_assert_eq(hx_proc_signal(nodes[START - 1].proc, SIGKILL), 0);
	cr_assert_eq(hx_proc_wait(nodes[START - 1].proc, 10 * USEC_PER_SEC, &status), 0);
	nodes[START - 1].proc = hx_proc_free(nodes[START - 1].proc);

	wait_phase(done);
	json_auto_t *fin = state();
	const char *promoted = str_of(fin, "candidate");
	cr_assert_not_null(promoted);
	time_t at = current_put_at(promoted);
	cr_assert_gt(at, 0, "no put of current to %s seen", promoted);
	cr_assert_geq(at, bake_until, "promoted at %lld, before bake_until %lld", (long long) at,
		      (long long) bake_until);
	cr_assert_leq(at, bake_until + LEASE_TTL + 5, "promoted at %lld, long after bake_until %lld", (long long) at,
		      (long long) bake_until);
	cr_assert_str_neq(leader_id(buf, sizeof buf), "n4");
	want w = { .from = 0, .to = START - 1, .config = promoted, .needle = "4" };
	cr_assert(et_run_until(&obs, nodes_render, &w, SCENARIO_USEC), "the survivors never rendered it");
}

/* ---- the node side alone: orders written by the test ------------------------------ */

TestSuite(staged_node, .init = up, .fini = down, .timeout = 150);

typedef struct stage_change {
	const char *path, *value;
} stage_change;

static int change_one(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t size) {
	const stage_change *c = userdata;
	json_auto_t *segs = json_pack("[s,s]", "app", c->path), *v = json_string(c->value);
	tree_error te = {};
	(void) s;
	return tree_set(files, segs, v, &te) < 0 ? (snprintf(err, size, "%s", te.message), -EINVAL) : 0;
}

/* A candidate snapshot made with stage_only, as the CLI does: its id. */
static char *stage_by_hand(const char *path, const char *value) {
	agree_options o = { .prefix = PREFIX, .proposer = "test", .stage_only = true };
	_cleanup_(agree_owned_result_done) agree_owned_result r = {};
	stage_change c = { path, value };
	cr_assert_eq(agree_propose_sync(obs.client, &o, change_one, &c, &r), 0, "%s", r.error.message);
	cr_assert(r.staged && !r.committed);
	return strdup(r.config_id);
}

/* The order of a config plan "h1": target and from configs. */
static void put_order(const char *id, int64_t gen, const char *verb, const char *config, const char *from) {
	_cleanup_free_ char *key = hx_fmt(PREFIX "/upgrade/nodes/%s", id);
	json_auto_t *o = json_pack("{s:s, s:I, s:s, s:s, s:{s:s?}, s:{s:s?}}", "plan", "h1", "generation",
				   (json_int_t) gen, "verb", verb, "role", "canary", "target", "config", config, "from",
				   "config", from);
	_cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
	cr_assert_eq(et_put(&obs, key, text, 0), 0);
}

typedef struct prog_want {
	const char *id, *verb, *state, *config;
	int64_t gen;
} prog_want;

static bool progress_is(void *ud) {
	const prog_want *w = ud;
	_cleanup_free_ char *key = hx_fmt(PREFIX "/upgrade/progress/%s", w->id);
	json_auto_t *p = get_json(key);
	return streq_ptr(str_of(p, "plan"), "h1") && json_integer_value(json_object_get(p, "generation")) == w->gen &&
	       streq_ptr(str_of(p, "verb"), w->verb) && streq_ptr(str_of(p, "state"), w->state) &&
	       (!w->config || streq_ptr(str_of(p, "config"), w->config));
}

static void wait_progress(const prog_want *w) {
	if (!et_run_until(&obs, progress_is, (void *) w, SCENARIO_USEC)) {
		dump();
		cr_assert_fail("%s: no progress %s %s gen %lld", w->id, w->verb, w->state, (long long) w->gen);
	}
}

/* A config order pins n2 (and only n2) to its snapshot, through the
 * check and the unit restart; current's changes wait while it is
 * pinned; a refused snapshot fails the order at once and keeps the last
 * good file; rollback unpins it back to current. */
Test(staged_node, orders_pin_and_unpin_the_reconciler) {
	_cleanup_free_ char *c0 = current(), *x = stage_by_hand("port", "9"), *same = current();
	cr_assert_str_eq(same, c0, "stage_only moved current");
	node *n2 = &nodes[1];
	_cleanup_free_ char *sl = hx_fmt("%s/starts.log", n2->dir);
	size_t starts = hx_file_lines(sl);

	put_order("n2", 1, "upgrade", x, c0);
	prog_want w1 = { "n2", "upgrade", "done", x, 1 };
	wait_progress(&w1);
	json_auto_t *s1 = status_of(n2);
	cr_assert_str_eq(str_of(s1, "pinned"), x);
	cr_assert_str_eq(str_of(s1, "applied"), x);
	cr_assert(file_has(n2->app, "9"), "n2 renders the pinned snapshot");
	cr_assert_gt(hx_file_lines(sl), starts, "its unit was restarted on it");
	for (unsigned i = 0; i < START; i++)
		if (i != 1)
			cr_assert(!file_has(nodes[i].app, "9"), "%s took the pinned snapshot", nodes[i].id);

	/* current moves: the others follow, n2 stays pinned */
	_cleanup_free_ char *o = NULL;
	cr_assert_eq(CTL(&o, "config", "set", "app/other", "5"), 0, "%s", o ?: "");
	want others = { .from = 2, .to = START, .needle = "other" };
	cr_assert(et_run_until(&obs, nodes_render, &others, SCENARIO_USEC), "the others never followed current");
	et_run_for(&obs, 300 * USEC_PER_MSEC);
	cr_assert(!file_has(n2->app, "other"), "a pinned node applied a change of current");

	/* a refused candidate: failed at once, the last good file stays */
	_cleanup_free_ char *bad = stage_by_hand("mode", "bad");
	put_order("n2", 2, "upgrade", bad, c0);
	prog_want w2 = { "n2", "upgrade", "failed", NULL, 2 };
	wait_progress(&w2);
	_cleanup_free_ char *pk = hx_fmt(PREFIX "/upgrade/progress/n2");
	json_auto_t *p2 = get_json(pk);
	cr_assert(strstr(str_of(p2, "error") ?: "", "check"), "%s", str_of(p2, "error"));
	cr_assert(!file_has(n2->app, "bad") && file_has(n2->app, "9"), "the refused file was written");

	/* rollback: unpinned, current in place, reported with its id */
	_cleanup_free_ char *cur = current();
	put_order("n2", 2, "rollback", cur, bad);
	prog_want w3 = { "n2", "rollback", "done", cur, 2 };
	wait_progress(&w3);
	want back = { .from = 0, .to = START, .config = cur, .needle = "other" };
	cr_assert(et_run_until(&obs, nodes_render, &back, SCENARIO_USEC), "n2 never returned to current");
	cr_assert(!file_has(n2->app, "9"));
}
