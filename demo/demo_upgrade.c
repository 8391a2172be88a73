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
static uf_fleet fleet;
#define nodes fleet.nodes
static uint64_t t0;
static char last_phase[32];
static bool plan_ended;
static char ended_in[32];

static void on_signal(int sig) {
	stop_signal = sig;
}

static double elapsed(void) {
	return (hx_now_usec() - t0) / 1e6;
}

static const char *str_of(json_t *j, const char *field) {
	return json_string_value(json_object_get(j, field));
}

/* The step's name with the fleet's temp dir written $DIR (new string). */
static char *shorten(const char *name) {
	size_t dl = strlen(fleet.dir);
	char *out = malloc(strlen(name) + 1), *o = out;

	if (!out)
		return NULL;
	for (const char *p = name; *p;)
		if (strncmp(p, fleet.dir, dl) == 0) {
			o = stpcpy(o, "$DIR");
			p += dl;
		} else
			*o++ = *p++;
	*o = 0;
	return out;
}

/* One line per progress write that says something new: node, verb, step
 * and state. */
static void show_progress(const char *id, json_t *p) {
	const char *verb = str_of(p, "verb") ?: "?", *st = str_of(p, "state") ?: "?";
	const char *name = str_of(p, "step_name");
	long long step = json_integer_value(json_object_get(p, "step"));
	long long n = json_integer_value(json_object_get(p, "n_steps"));
	_cleanup_free_ char *err = str_of(p, "error") ? shorten(str_of(p, "error")) : NULL;

	if (streq(st, "running")) {
		_cleanup_free_ char *shortname = shorten(name ?: "");
		printf("%6.1fs  %-3s %-8s step %lld/%lld  %s\n", elapsed(), id, verb, step + 1, n, shortname ?: "");
	}
	else
		printf("%6.1fs  %-3s %-8s %s%s%s%s%s\n", elapsed(), id, verb, st, str_of(p, "image") ? "  image " : "",
		       str_of(p, "image") ?: "", err ? "  " : "", err ?: "");
}

static void show_state(json_t *s) {
	const char *phase = str_of(s, "phase");
	if (!phase || streq(phase, last_phase))
		return;
	snprintf(last_phase, sizeof last_phase, "%s", phase);
	_cleanup_free_ char *reason = str_of(s, "reason") ? shorten(str_of(s, "reason")) : NULL;
	long long batch = json_integer_value(json_object_get(s, "batch"));
	printf("%6.1fs  plan %s: %s", elapsed(), str_of(s, "plan") ?: "?", phase);
	if (streq(phase, "rolling") || streq(phase, "rolling_back"))
		printf(" (batch %lld)", batch);
	printf("%s%s\n", reason ? ": " : "", reason ?: "");
	if (streq(phase, "succeeded") || streq(phase, "failed") || streq(phase, "rolled_back") ||
	    streq(phase, "cancelled")) {
		plan_ended = true;
		snprintf(ended_in, sizeof ended_in, "%s", phase);
	}
}

static void on_put(const char *key, json_t *j, void *userdata) {
	(void) userdata;
	if (strncmp(key, "progress/", 9) == 0)
		show_progress(key + 9, j);
	else if (streq(key, "state"))
		show_state(j);
	fflush(stdout);
}

static int ctl(char *const args[]) {
	_cleanup_free_ char *out = NULL;
	int r = hx_corralctl(hx_etcd_endpoints(fleet.etcd), &out, args);
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
	ended_in[0] = 0;
	last_phase[0] = 0;
	say_command(args);
	if (ctl(args) != 0) {
		fprintf(stderr, "demo: corralctl upgrade start failed\n");
		return false;
	}
	uint64_t end = hx_now_usec() + PLAN_USEC;
	while (!plan_ended && !stop_signal && hx_now_usec() < end)
		(void) sd_event_run(fleet.event, 100 * USEC_PER_MSEC);
	/* The finish orders (undos, cleanup) follow the end: show them. */
	uint64_t tail = hx_now_usec() + 2 * USEC_PER_SEC;
	while (plan_ended && !stop_signal && hx_now_usec() < tail)
		(void) sd_event_run(fleet.event, 100 * USEC_PER_MSEC);
	if (stop_signal)
		return false;
	char *const status[] = { "upgrade", "status", NULL };
	say_command(status);
	(void) ctl(status);
	if (!plan_ended || !streq(ended_in, want)) {
		fprintf(stderr, "demo: the plan ended in %s, not %s\n", ended_in[0] ? ended_in : "nothing (time out)", want);
		for (unsigned i = 0; i < N; i++)
			hx_log_tail(nodes[i].log, 20);
		return false;
	}
	return true;
}

static bool registered(void *ud) {
	(void) ud;
	return uf_fleet_registered(&fleet, PREFIX, NULL) || stop_signal;
}

static int run(void) {
	const char *what = NULL;

	if (uf_fleet_up(&fleet, N, 1, "cms-2026.11", &what) < 0) {
		fprintf(stderr, "demo: could not start %s\n", what);
		return 1;
	}
	printf("demo: a private etcd at %s, a private systemd --user, %u corrald (n1..n%u), files in %s\n",
	       hx_etcd_endpoints(fleet.etcd), N, N, fleet.dir);
	_cleanup_free_ char *more = uf_config_more(&nodes[0]), *shortmore = more ? shorten(more) : NULL;
	printf("demo: n1's upgrade section (every node's is the same, in its own dir; DIR=%s):\n%s", fleet.dir,
	       shortmore ?: "");
	if (!hx_wait_until(registered, NULL, 30 * USEC_PER_SEC) || stop_signal) {
		fprintf(stderr, "demo: the nodes did not register their image\n");
		return stop_signal ? 128 + stop_signal : 1;
	}
	printf("demo: every node registered, image cms-2026.11\n");
	if (uf_fleet_watch(&fleet, PREFIX "upgrade/", on_put, NULL) < 0) {
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
	code = run();
	uf_fleet_down(&fleet);
	printf("demo: stopped every corrald, systemd --user and etcd; removed the temp dirs\n");
	return code;
}
