/* upgrade-fleet.h — a fleet of corrald nodes with an `upgrade:` section
 * whose steps write what they did to files, shared by the rolling-upgrade
 * test (tests/test_upgrade_e2e.c), the demo (demo/demo_upgrade.c) and the
 * benchmark (bench/bench_rollout_e2e.c).
 *
 * Node <id> lives in <dir>/<id>/: its "image" is the file image
 * (image_command cats it), its app is the user unit app-<id>.service (each
 * start appends to starts.log), and its steps append to files there:
 *
 *   prepare     prepared   the target, written (idempotent)
 *   0 once      notices    "$CORRAL_ACTION $CORRAL_IMAGE" (the notice)
 *   1 undo      alarms     "off", and "on" from its undo
 *   2 run       steps      "$CORRAL_ACTION $CORRAL_IMAGE" (a step counter)
 *   3 stop      app-<id>.service
 *   4 run       the switch: sleeps `cat slow` seconds when slow exists,
 *               writes image, appends to switches
 *   5 start     app-<id>.service
 *   6 health    fails when the image says "bad"
 *   cleanup     cleanup    one line per run
 *
 * Functions return 0 or -errno (they print nothing: the caller says what
 * failed). */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define UF_SWITCH_STEP 4
#define UF_N_STEPS 7

typedef struct uf_node {
	char *id, *dir, *cfg, *log, *unit;
	hx_proc *proc;
} uf_node;

/* The node's YAML beyond hx_write_corrald_config_full's: the user bus and
 * the upgrade section. New string. */
static inline char *uf_config_more(const uf_node *n) {
	const char *d = n->dir;
	return hx_fmt("units_bus: user\n"
		      "unit_timeout: 20s\n"
		      "upgrade:\n"
		      "  image_command: cat %s/image\n"
		      "  step_timeout: 30s\n"
		      "  prepare:\n"
		      "    - {run: 'echo \"$CORRAL_IMAGE\" > %s/prepared'}\n"
		      "  steps:\n"
		      "    - {run: 'echo \"$CORRAL_ACTION $CORRAL_IMAGE\" >> %s/notices', once: true}\n"
		      "    - {run: 'echo off >> %s/alarms', undo: 'echo on >> %s/alarms'}\n"
		      "    - {run: 'echo \"$CORRAL_ACTION $CORRAL_IMAGE\" >> %s/steps'}\n"
		      "    - {stop: [%s]}\n"
		      "    - {run: 'if [ -f %s/slow ]; then sleep \"$(cat %s/slow)\"; fi; "
		      "echo \"$CORRAL_IMAGE\" > %s/image; echo \"$CORRAL_ACTION $CORRAL_IMAGE\" >> %s/switches'}\n"
		      "    - {start: [%s]}\n"
		      "    - {health: '! grep -q bad %s/image', timeout: 10s}\n"
		      "  cleanup: 'echo \"$CORRAL_ACTION $CORRAL_IMAGE\" >> %s/cleanup'\n",
		      d, d, d, d, d, d, n->unit, d, d, d, d, n->unit, d, d);
}

/* Sets up node `id` (index i: address 127.0.0.<31 + i % 200>) under dir:
 * its directory, image file (image), config and app unit, started. */
static inline int uf_node_init(uf_node *n, unsigned i, const char *id, const char *dir, const char *image,
			       hx_etcd *etcd, hx_systemd *sd) {
	int r;

	*n = (uf_node){};
	n->id = strdup(id);
	n->dir = hx_fmt("%s/%s", dir, id);
	n->cfg = hx_fmt("%s/corrald.yaml", n->dir);
	n->log = hx_fmt("%s/corrald.log", n->dir);
	n->unit = hx_fmt("app-%s.service", id);
	if (!n->id)
		return -ENOMEM;
	if (mkdir(n->dir, 0755) < 0)
		return -errno;
	_cleanup_free_ char *image_file = hx_fmt("%s/image", n->dir), *image_text = hx_fmt("%s\n", image);
	r = hx_write_file(image_file, image_text);
	if (r < 0)
		return r;
	_cleanup_free_ char *address = hx_fmt("127.0.0.%u", 31 + i % 200), *more = uf_config_more(n);
	r = hx_write_corrald_config_full(n->cfg, n->id, address, "Worker", hx_etcd_endpoints(etcd), more);
	if (r < 0)
		return r;
	_cleanup_free_ char *unit = hx_fmt("[Unit]\nDescription=app on %s\n[Service]\n"
					"ExecStartPre=/bin/sh -c 'echo start >> %s/starts.log'\n"
					"ExecStart=/bin/sleep infinity\n",
					n->id, n->dir);
	r = hx_systemd_install_unit(sd, n->unit, unit);
	if (r < 0)
		return r;
	r = hx_systemctl(sd, NULL, (char *const[]){ "start", n->unit, NULL });
	return r == 0 ? 0 : r < 0 ? r : -EIO;
}

static inline int uf_node_start(uf_node *n, hx_systemd *sd) {
	return hx_corrald_spawn(&n->proc, n->cfg, hx_systemd_env(sd), n->log);
}

/* SIGKILL, reaped. */
static inline int uf_node_kill(uf_node *n) {
	int status = 0, r = hx_proc_signal(n->proc, SIGKILL);
	if (r < 0)
		return r;
	r = hx_proc_wait(n->proc, 10 * USEC_PER_SEC, &status);
	n->proc = hx_proc_free(n->proc);
	return r;
}

/* Stops its corrald (SIGTERM, then SIGKILL) and frees it. */
static inline void uf_node_done(uf_node *n) {
	n->proc = hx_proc_free(n->proc);
	free(n->id);
	free(n->dir);
	free(n->cfg);
	free(n->log);
	free(n->unit);
	*n = (uf_node){};
}

static inline char *uf_file(const uf_node *n, const char *name) {
	return hx_fmt("%s/%s", n->dir, name);
}

static inline int uf_set_file(const uf_node *n, const char *name, const char *text) {
	_cleanup_free_ char *p = uf_file(n, name);
	return hx_write_file(p, text);
}

static inline size_t uf_lines(const uf_node *n, const char *name) {
	_cleanup_free_ char *p = uf_file(n, name);
	return hx_file_lines(p);
}

static inline size_t uf_count(const uf_node *n, const char *name, const char *needle) {
	_cleanup_free_ char *p = uf_file(n, name);
	return hx_count_in_file(p, needle);
}

/* The last line of a node's file (new string; "" when none). */
static inline char *uf_last_line(const uf_node *n, const char *name) {
	_cleanup_free_ char *p = uf_file(n, name), *text = hx_read_file(p, NULL);
	if (!text)
		return strdup("");
	size_t len = strlen(text);
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = 0;
	const char *nl = strrchr(text, '\n');
	return strdup(nl ? nl + 1 : text);
}

/* The arguments of `corralctl upgrade start` for a quick plan: canary 1
 * (0 when !canary), auto promotion, 1 s bakes and min_healthy_time
 * (min_healthy 0 s when quick), min_healthy_percent 0. Static storage:
 * valid until the next call. */
static inline char *const *uf_start_args(const char *image, const char *max_unavailable, bool canary, bool quick) {
	static char *args[32];
	size_t k = 0;
	args[k++] = "upgrade";
	args[k++] = "start";
	args[k++] = "--image";
	args[k++] = (char *) image;
	args[k++] = "--canary";
	args[k++] = canary ? "1" : "0";
	args[k++] = "--bake";
	args[k++] = quick ? "0s" : "1s";
	args[k++] = "--auto-promote";
	args[k++] = "--max-unavailable";
	args[k++] = (char *) max_unavailable;
	args[k++] = "--min-healthy-percent";
	args[k++] = "0";
	args[k++] = "--min-healthy-time";
	args[k++] = quick ? "0s" : "1s";
	args[k++] = "--final-bake";
	args[k++] = quick ? "0s" : "1s";
	args[k] = NULL;
	return args;
}

/* ---- a whole world, for the demo and the benchmark ---------------------------- */

#include "etcd.h"

/* What the fleet's watch calls for every put under the watched folder:
 * the key after the folder ("state", "progress/n3") and the value parsed
 * (NULL when not JSON). */
typedef void (*uf_put_cb)(const char *key, json_t *value, void *userdata);

/* A private etcd and systemd --user, n nodes in a temp dir, and an etcd
 * client with one watch on <prefix>upgrade/. */
typedef struct uf_fleet {
	hx_etcd *etcd;
	hx_systemd *sd;
	char *dir;
	uf_node *nodes;
	unsigned n;
	sd_event *event;
	etcd_client *client;
	etcd_watch *watch;
	size_t folder_len;
	uf_put_cb on_put;
	void *userdata;
} uf_fleet;

/* Starts etcd, systemd --user and n corrald named n1, n2, ... (numbers
 * zero-padded to width digits) on image. 0, or -errno with *what saying
 * which part failed. */
static inline int uf_fleet_up(uf_fleet *f, unsigned n, int width, const char *image, const char **what) {
	int r;

	*f = (uf_fleet){};
	*what = "etcd";
	if ((r = hx_etcd_start(&f->etcd, NULL)) < 0)
		return r;
	*what = "systemd --user";
	if ((r = hx_systemd_start(&f->sd)) < 0)
		return r;
	*what = "a temp dir";
	f->dir = hx_mkdtemp("upgrade-fleet");
	f->nodes = calloc(n, sizeof *f->nodes);
	if (!f->dir || !f->nodes)
		return -ENOMEM;
	f->n = n;
	*what = "a node";
	for (unsigned i = 0; i < n; i++) {
		_cleanup_free_ char *id = hx_fmt("n%0*u", width, i + 1);
		if ((r = uf_node_init(&f->nodes[i], i, id, f->dir, image, f->etcd, f->sd)) < 0 ||
		    (r = uf_node_start(&f->nodes[i], f->sd)) < 0)
			return r;
	}
	return 0;
}

static inline void uf_fleet_on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	uf_fleet *f = userdata;
	(void) w;
	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events; i++) {
		const etcd_event *e = &m->events[i];
		if (e->type != ETCD_EVENT_PUT || !e->kv.value || strlen(e->kv.key) < f->folder_len)
			continue;
		json_t *j = json_loads(e->kv.value, 0, NULL);
		f->on_put(e->kv.key + f->folder_len, j, f->userdata);
		json_decref(j);
	}
}

/* The fleet's own client, watching folder (a key prefix ending in "/"):
 * cb for every put. Run it with sd_event_run(f->event, ...). */
static inline int uf_fleet_watch(uf_fleet *f, const char *folder, uf_put_cb cb, void *userdata) {
	char *eps[] = { (char *) hx_etcd_endpoints(f->etcd), NULL };
	etcd_options eo = { .endpoints = eps };
	int r;

	f->folder_len = strlen(folder);
	f->on_put = cb;
	f->userdata = userdata;
	if ((r = sd_event_new(&f->event)) < 0 || (r = etcd_client_new(&f->client, f->event, &eo)) < 0)
		return r;
	return etcd_watch_new(&f->watch, f->client, &(etcd_watch_req){ .key = folder, .prefix = true },
			      uf_fleet_on_watch, f);
}

/* Every node's image_command output is in its record (image given: equal). */
static inline bool uf_fleet_registered(const uf_fleet *f, const char *prefix, const char *image) {
	for (unsigned i = 0; i < f->n; i++) {
		_cleanup_free_ char *key = hx_fmt("%snodes/%s", prefix, f->nodes[i].id);
		_cleanup_free_ char *v = hx_etcd_get(f->etcd, key);
		json_t *j = v ? json_loads(v, 0, NULL) : NULL;
		const char *got = json_string_value(json_object_get(j, "image"));
		bool ok = got && (!image || strcmp(got, image) == 0);
		json_decref(j);
		if (!ok)
			return false;
	}
	return true;
}

/* Stops everything it started (corrald, systemd, etcd) and removes the dir. */
static inline void uf_fleet_down(uf_fleet *f) {
	f->watch = etcd_watch_free(f->watch);
	f->client = etcd_client_free(f->client);
	f->event = sd_event_unref(f->event);
	for (unsigned i = 0; f->nodes && i < f->n; i++)
		uf_node_done(&f->nodes[i]);
	free(f->nodes);
	f->sd = hx_systemd_free(f->sd);
	f->etcd = hx_etcd_free(f->etcd);
	if (f->dir)
		hx_rm_tmp(f->dir);
	free(f->dir);
	*f = (uf_fleet){};
}
