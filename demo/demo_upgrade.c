/* demo_upgrade.c — the rolling-upgrade demo (`make demo-upgrade`, run by
 * scripts/demo-upgrade): a small fleet upgrading its image, narrated one
 * line per node per step. It builds the world of tests/test_upgrade_e2e.c
 * with the same harness and fleet (tests/upgrade-fleet.h): a private etcd,
 * a private `systemd --user`, and four corrald whose upgrade steps write to
 * files in a temp dir (the switch writes the image file; a health step
 * fails on an image named "bad"). Then:
 *
 *   1. corralctl upgrade start --image cms-2026.12: prepare on every node,
 *      the canary, batches of two, succeeded, cleanup;
 *   2. corralctl upgrade start --image cms-2026.12-bad: the canary's health
 *      step fails, the plan halts and rolls the canary back.
 *
 * After each, `corralctl upgrade status`. Not a test: it asserts only that
 * each plan ends, within a deadline. Exit 0 when both did, 1 when one did
 * not, 128 + signal on SIGINT/SIGTERM. Whatever happens, everything it
 * started is stopped and its temp dirs are removed (CORRAL_KEEP_TMP=1 keeps
 * them, logs included). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "harness.h"
#include "upgrade-fleet.h"

#define PREFIX "/corral/t/"
#define N 4
#ifndef PLAN_USEC
#define PLAN_USEC (90 * USEC_PER_SEC)
#endif

static volatile sig_atomic_t stop_signal;
static hx_etcd *etcd;
static hx_systemd *sd;
static sd_event *event;
static etcd_client *client;
static etcd_watch *watch;
static uf_node nodes[N];
static char *dir;
static uint64_t t0;
static char last_phase[32];
static bool plan_ended;
static const char *ended_in;

static void on_signal(int sig) {
	stop_signal = sig;
}

static double elapsed(void) {
	return (hx_now_usec() - t0) / 1e6;
}

static const char *str_of(json_t *j, const char *field) {
	return json_string_value(json_object_get(j, field));
}

/* One line per progress write that says something new: node, verb, step
 * and state. */
static void show_progress(const char *id, json_t *p) {
	const char *verb = str_of(p, "verb") ?: "?", *st = str_of(p, "state") ?: "?";
	const char *name = str_of(p, "step_name");
	long long step = json_integer_value(json_object_get(p, "step"));
	long long n = json_integer_value(json_object_get(p, "n_steps"));
	const char *err = str_of(p, "error");

	if (streq(st, "running"))
		printf("%6.1fs  %-3s %-8s step %lld/%lld  %s\n", elapsed(), id, verb, step + 1, n, name ?: "");
	else
		printf("%6.1fs  %-3s %-8s %s%s%s%s%s\n", elapsed(), id, verb, st, str_of(p, "image") ? "  image " : "",
		       str_of(p, "image") ?: "", err ? "  " : "", err ?: "");
}

static void show_state(json_t *s) {
	const char *phase = str_of(s, "phase");
	if (!phase || streq(phase, last_phase))
		return;
	snprintf(last_phase, sizeof last_phase, "%s", phase);
	const char *reason = str_of(s, "reason");
	long long batch = json_integer_value(json_object_get(s, "batch"));
	printf("%6.1fs  plan %s: %s", elapsed(), str_of(s, "plan") ?: "?", phase);
	if (streq(phase, "rolling") || streq(phase, "rolling_back"))
		printf(" (batch %lld)", batch);
	printf("%s%s\n", reason ? ": " : "", reason ?: "");
	if (streq(phase, "succeeded") || streq(phase, "failed") || streq(phase, "rolled_back") ||
	    streq(phase, "cancelled")) {
		plan_ended = true;
		ended_in = phase;
	}
}

static void on_event(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	(void) w;
	(void) userdata;
	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events; i++) {
		const etcd_event *e = &m->events[i];
		if (e->type != ETCD_EVENT_PUT || !e->kv.value)
			continue;
		json_auto_t *j = json_loads(e->kv.value, 0, NULL);
		const char *key = e->kv.key + strlen(PREFIX "upgrade/");
		if (strncmp(key, "progress/", 9) == 0)
			show_progress(key + 9, j);
		else if (streq(key, "state"))
			show_state(j);
	}
	fflush(stdout);
}

static int ctl(char *const args[]) {
	_cleanup_free_ char *out = NULL;
	int r = hx_corralctl(hx_etcd_endpoints(etcd), &out, args);
	if (out)
		fputs(out, stdout);
	return r;
}

static void say_command(char *const args[]) {
	printf("\ndemo: $ corralctl");
	for (size_t i = 0; args[i]; i++)
		printf(" %s", args[i]);
	printf("\n");
}

/* Runs one plan to its end; true when it ended in `want`. */
static bool run_plan(const char *image, const char *want) {
	char *const *args = uf_start_args(image, "2", true, false);
	plan_ended = false;
	ended_in = NULL;
	last_phase[0] = 0;
	say_command(args);
	if (ctl(args) != 0) {
		fprintf(stderr, "demo: corralctl upgrade start failed\n");
		return false;
	}
	uint64_t end = hx_now_usec() + PLAN_USEC;
	while (!plan_ended && !stop_signal && hx_now_usec() < end)
		(void) sd_event_run(event, 100 * USEC_PER_MSEC);
	/* The finish orders (undos, cleanup) follow the end: show them. */
	uint64_t tail = hx_now_usec() + 2 * USEC_PER_SEC;
	while (plan_ended && !stop_signal && hx_now_usec() < tail)
		(void) sd_event_run(event, 100 * USEC_PER_MSEC);
	if (stop_signal)
		return false;
	char *const status[] = { "upgrade", "status", NULL };
	say_command(status);
	(void) ctl(status);
	if (!plan_ended || !streq_ptr(ended_in, want)) {
		fprintf(stderr, "demo: the plan ended in %s, not %s\n", ended_in ?: "nothing (time out)", want);
		for (unsigned i = 0; i < N; i++)
			hx_log_tail(nodes[i].log, 20);
		return false;
	}
	return true;
}

static bool registered(void *ud) {
	(void) ud;
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *key = hx_fmt(PREFIX "nodes/%s", nodes[i].id), *v = hx_etcd_get(etcd, key);
		json_auto_t *j = v ? json_loads(v, 0, NULL) : NULL;
		if (!str_of(j, "image"))
			return false;
	}
	return !stop_signal;
}

static int run(void) {
	etcd_options eo = {};
	char *eps[] = { (char *) hx_etcd_endpoints(etcd), NULL };

	dir = hx_mkdtemp("demo-upgrade");
	if (!dir)
		return 1;
	printf("demo: a private etcd at %s, a private systemd --user, %u corrald (n1..n%u), files in %s\n",
	       hx_etcd_endpoints(etcd), N, N, dir);
	for (unsigned i = 0; i < N; i++) {
		_cleanup_free_ char *id = hx_fmt("n%u", i + 1);
		if (uf_node_init(&nodes[i], i, id, dir, "cms-2026.11", etcd, sd) < 0 || uf_node_start(&nodes[i], sd) < 0) {
			fprintf(stderr, "demo: could not set up %s\n", id);
			return 1;
		}
	}
	_cleanup_free_ char *more = uf_config_more(&nodes[0]);
	printf("demo: n1's upgrade section (every node's is the same, in its own dir):\n%s", more);
	if (!hx_wait_until(registered, NULL, 30 * USEC_PER_SEC)) {
		fprintf(stderr, "demo: the nodes did not register their image\n");
		return 1;
	}
	printf("demo: every node registered, image cms-2026.11\n");

	eo.endpoints = eps;
	if (sd_event_new(&event) < 0 || etcd_client_new(&client, event, &eo) < 0 ||
	    etcd_watch_new(&watch, client, &(etcd_watch_req){ .key = PREFIX "upgrade/", .prefix = true }, on_event,
			   NULL) < 0) {
		fprintf(stderr, "demo: no etcd client\n");
		return 1;
	}
	t0 = hx_now_usec();
	printf("\ndemo: 1. a good image: prepare everywhere, canary n1, then batches of 2\n");
	if (!run_plan("cms-2026.12", "succeeded"))
		return stop_signal ? 128 + stop_signal : 1;
	t0 = hx_now_usec();
	printf("\ndemo: 2. a bad image: the canary's health step fails, the plan rolls it back\n");
	if (!run_plan("cms-2026.12-bad", "rolled_back"))
		return stop_signal ? 128 + stop_signal : 1;
	printf("\ndemo: done: the fleet runs cms-2026.12; the bad image never went past the canary\n");
	return 0;
}

int main(void) {
	struct sigaction sa = { .sa_handler = on_signal };
	int code;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (hx_etcd_start(&etcd, NULL) < 0 || hx_systemd_start(&sd) < 0) {
		fprintf(stderr, "demo: could not start etcd or systemd --user\n");
		code = 1;
	} else
		code = run();
	watch = etcd_watch_free(watch);
	client = etcd_client_free(client);
	event = sd_event_unref(event);
	for (unsigned i = 0; i < N; i++)
		uf_node_done(&nodes[i]);
	sd = hx_systemd_free(sd);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	printf("demo: stopped every corrald, systemd --user and etcd; removed the temp dirs\n");
	return code;
}
