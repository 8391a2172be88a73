/* demo_fleet.c — scripts/demo's second part (`make demo-fleet`): a small
 * fleet following its load, narrated for an operator. It builds the same
 * world as tests/test_e2e_scale.c with the same harness: a private etcd,
 * moto behind tests/ec2proxy.py as EC2, two core corrald processes, and
 * hx_cloud playing EC2 + cloud-init (every instance moto runs boots a
 * corrald from scripts/user-data's output, learns its instance id, address
 * and pool from its instance metadata, registers as that instance and
 * reports the load the demo writes for it). The jobs policy then takes pool "web" from 1 host to 4
 * and back to 1; each step prints a fleet table and `corralctl status`.
 *
 * Not a test: it asserts only that each step arrives, within a deadline.
 * Exit 0 when all did, 1 when one did not (what is known is printed and the
 * leader's log tailed), 128 + signal on SIGINT/SIGTERM. Whatever happens,
 * everything it started is stopped and its temp dirs are removed
 * (CORRAL_KEEP_TMP=1 keeps them, logs included). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "harness.h"

#define CLUSTER "t"
#define PREFIX  "/corral/" CLUSTER "/"
#define CORE    2
#define JOBS_PER_HOST 4
/* Each step takes a few seconds (a decision a second, a corrald boot, a
 * 1 s load interval); the deadline is for a broken build, not for luck.
 * (-DSTEP_USEC='(USEC_PER_SEC/2)' shows the time-out path.) */
#ifndef STEP_USEC
#define STEP_USEC (45 * USEC_PER_SEC)
#endif
/* How often a wait looks at etcd and moto (hx_wait_until asks every 5 ms). */
#define LOOK_USEC (250 * USEC_PER_MSEC)

static volatile sig_atomic_t stop_signal;

static hx_etcd *etcd;
static sd_event *event;
static etcd_client *client;     /* the demo's own reads */
static hx_moto *moto;
static hx_cloud *cloud;
static hx_proc *core[CORE];
static char *dir;
static uint64_t t0;

static void on_signal(int sig) {
	stop_signal = sig;
}

_printf_(1, 2) static void say(const char *fmt, ...) {
	va_list ap;
	printf("demo: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void heading(const char *what) {
	printf("\n");
	say("[%5.1f s] %s", (double) (hx_now_usec() - t0) / USEC_PER_SEC, what);
}

/* ---- etcd: corral's own client, waited on (etcd-test.h would bring Criterion in) ---- */

/* Keys under PREFIX sub (a prefix when it ends in '/', else one key) ->
 * {the key after PREFIX sub: value as JSON, or as a string when not JSON}
 * (one key: {"": value}); NULL when etcd did not answer. */
static json_t *range(const char *sub) {
	_cleanup_free_ char *key = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync sync = {};

	if (asprintf(&key, PREFIX "%s", sub) < 0)
		return NULL;
	size_t n = strlen(key);
	etcd_range_req req = { .key = key, .prefix = key[n - 1] == '/' };
	if (etcd_range(client, &req, etcd_sync_cb, &sync, NULL) < 0 || etcd_wait(client, &sync, &resp) < 0)
		return NULL;

	json_t *res = json_object();
	for (size_t i = 0; res && i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *v = kv->value ? kv->value : "";
		if (kv->key_len < n)
			continue;
		json_t *j = json_loadb(v, kv->value_len, JSON_DECODE_ANY, NULL);
		json_object_set_new(res, kv->key + n, j ?: json_stringn(v, kv->value_len));
	}
	return res;
}

static json_t *get_json(const char *sub) {
	json_auto_t *r = range(sub);
	return json_incref(json_object_get(r, ""));
}

static int put(const char *sub, const char *value) {
	_cleanup_free_ char *key = NULL;
	return asprintf(&key, PREFIX "%s", sub) < 0 ? -ENOMEM : hx_etcd_put(etcd, key, value);
}

static char *leader_node(void) {
	json_auto_t *l = get_json("leader");
	const char *n = json_string_value(json_object_get(l, "node_id"));
	return n ? strdup(n) : NULL;
}

/* ---- the fleet as the demo sees it ---- */

typedef struct fleet {
	json_t *instances;      /* the cluster's instances in moto, any state */
	json_t *records;        /* {id: host record} (scale/hosts/) */
	json_t *nodes;          /* {id: node record} (nodes/) */
	json_t *loads;          /* {id: what the host's agent reports} (load/) */
	size_t live;            /* instances pending or running */
	size_t ready;           /* ready records whose corrald registered */
	size_t draining, launching;
} fleet;

static void fleet_done(fleet *f) {
	json_decref(f->instances);
	json_decref(f->records);
	json_decref(f->nodes);
	json_decref(f->loads);
	*f = (fleet) {};
}

static const char *instance_state(json_t *x) {
	return json_string_value(json_object_get(x, "state"));
}

static const char *record_state(const fleet *f, const char *id) {
	return json_string_value(json_object_get(json_object_get(f->records, id), "state"));
}

static bool registered(const fleet *f, const char *id) {
	return streq_ptr(json_string_value(json_object_get(json_object_get(f->nodes, id), "instance_id")), id);
}

/* 0, or -errno when etcd or moto did not answer. */
static int fleet_look(fleet *f) {
	json_auto_t *all = NULL, *recs = range("scale/hosts/"), *nodes = range("nodes/"), *loads = range("load/");
	json_t *x;
	size_t i;

	*f = (fleet) {};
	if (!recs || !nodes || !loads || hx_moto_instances(moto, &all) < 0)
		return -EIO;
	f->instances = json_array();
	json_array_foreach(all, i, x)
		if (streq_ptr(json_string_value(json_object_get(json_object_get(x, "tags"), "corral:cluster")), CLUSTER))
			json_array_append(f->instances, x);
	f->records = json_incref(recs);
	f->nodes = json_incref(nodes);
	f->loads = json_incref(loads);
	json_array_foreach(f->instances, i, x) {
		const char *id = json_string_value(json_object_get(x, "id")), *st = instance_state(x);
		const char *rs = record_state(f, id);
		if (!streq_ptr(st, "pending") && !streq_ptr(st, "running"))
			continue;
		f->live++;
		f->ready += streq_ptr(rs, "ready") && registered(f, id);
		f->draining += streq_ptr(rs, "draining");
		f->launching += streq_ptr(rs, "launching") || !rs;
	}
	return 0;
}

static void fleet_print(const fleet *f) {
	json_t *x;
	size_t i;

	printf("    %-21s %-11s %-11s %-10s %s\n", "INSTANCE", "EC2", "RECORD", "REGISTERED", "JOBS");
	json_array_foreach(f->instances, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		/* The agent's report, not the record's copy: the leader rewrites a
		 * record when its state changes, not on every load report. */
		json_t *load = json_object_get(f->loads, id);
		char jobs[48] = "-";
		if (load)
			snprintf(jobs, sizeof jobs, "%lld%s", (long long) json_integer_value(json_object_get(load, "jobs")),
				 json_is_true(json_object_get(load, "ready_to_stop")) ? " (wound down: ready_to_stop)" : "");
		printf("    %-21s %-11s %-11s %-10s %s\n", id, instance_state(x) ?: "?", record_state(f, id) ?: "-",
		       registered(f, id) ? "yes" : "no", jobs);
	}
	if (json_array_size(f->instances) == 0)
		printf("    (no instances yet)\n");
}

static void show_fleet(void) {
	fleet f;
	if (fleet_look(&f) < 0) {
		say("(could not read the fleet: etcd or moto did not answer)");
		return;
	}
	_cleanup_free_ char *leader = leader_node();
	say("fleet (leader %s; %zu running, %zu ready and registered):", leader ?: "none yet", f.live, f.ready);
	fleet_print(&f);
	fleet_done(&f);
}

/* The real CLI, as an operator would run it. 0, or -1 when it failed. */
static int corralctl_status(void) {
	_cleanup_free_ char *bin = NULL, *out = NULL;
	if (asprintf(&bin, "%s/corralctl", hx_builddir()) < 0)
		return -1;
	char *const argv[] = { bin, "--endpoints", (char *) hx_etcd_endpoints(etcd), "--cluster", CLUSTER, "status", NULL };
	say("$ corralctl --endpoints %s --cluster %s status", hx_etcd_endpoints(etcd), CLUSTER);
	int r = hx_run(&out, 15 * USEC_PER_SEC, argv, NULL);
	for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		printf("    %.*s\n", nl ? (int) (nl - line) : (int) strlen(line), line);
	}
	if (r != 0) {
		say("corralctl status failed (%s %d)", r < 0 ? "error" : "exit status", r);
		return -1;
	}
	return 0;
}

/* ---- waiting ---- */

typedef struct look {
	bool (*check)(const fleet *f, void *ud);
	void *ud;
	uint64_t last;
} look;

/* hx_wait_until's predicate: true at once on a signal (the caller checks
 * stop_signal), otherwise the fleet looked at every LOOK_USEC, with the
 * cloud brought in line with moto first. */
static bool look_pred(void *userdata) {
	look *l = userdata;
	fleet f;

	if (stop_signal)
		return true;
	if (hx_now_usec() - l->last < LOOK_USEC)
		return false;
	l->last = hx_now_usec();
	(void) hx_cloud_sync(cloud);
	if (fleet_look(&f) < 0)
		return false;
	bool ok = l->check(&f, l->ud);
	fleet_done(&f);
	return ok;
}

/* The leader's log: a core node's or, when a launched host leads, its own. */
static void tail_leader_log(void) {
	_cleanup_free_ char *leader = leader_node(), *log = NULL;
	if (!leader) {
		for (int i = 0; i < CORE; i++) {
			_cleanup_free_ char *p = NULL;
			if (asprintf(&p, "%s/n%d.log", dir, i + 1) >= 0)
				hx_log_tail(p, 20);
		}
		return;
	}
	if (asprintf(&log, "%s/%s.log", dir, leader) >= 0)
		hx_log_tail(log, 30);
}

/* 0 once check holds; -EINTR on a signal; -ETIMEDOUT (after saying what is
 * known and tailing the logs that say why) at the deadline. */
static int wait_for(bool (*check)(const fleet *, void *), void *ud, const char *what) {
	look l = { check, ud, 0 };
	if (hx_wait_until(look_pred, &l, STEP_USEC) && !stop_signal)
		return 0;
	if (stop_signal)
		return -EINTR;
	say("TIMED OUT after %.1f s waiting for %s; what is known:", (double) STEP_USEC / USEC_PER_SEC, what);
	show_fleet();
	json_auto_t *m = get_json("scale/metrics");
	_cleanup_free_ char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	say("scale/metrics: %s", text ?: "(none)");
	fflush(stdout);
	tail_leader_log();
	_cleanup_free_ char *proxy = NULL;
	if (asprintf(&proxy, "%s/proxy.log", hx_moto_dir(moto)) >= 0)
		hx_log_tail(proxy, 15);
	return -ETIMEDOUT;
}

typedef struct want {
	size_t ready, live;
} want;

/* Exactly `ready` hosts ready and registered, `live` instances running and
 * as many corralds booted for them: a settled fleet. */
static bool fleet_is(const fleet *f, void *ud) {
	const want *w = ud;
	return f->ready == w->ready && f->live == w->live && hx_cloud_hosts(cloud) == w->live;
}

static bool live_at_least(const fleet *f, void *ud) {
	return f->live >= *(size_t *) ud;
}

static bool some_draining(const fleet *f, void *ud) {
	return f->draining > 0;
}

/* ---- set-up ---- */

static int start_core(int i) {
	char name[16];
	snprintf(name, sizeof name, "n%d", i + 1);
	return hx_cloud_start_node(cloud, name, &core[i]);
}

static void down(void) {
	fflush(stdout);
	/* SIGTERM to every corrald first so they leave in parallel; each
	 * deregisters from etcd on the way out, so etcd goes last. */
	for (int i = 0; i < CORE; i++)
		if (core[i])
			(void) hx_proc_signal(core[i], SIGTERM);
	cloud = hx_cloud_free(cloud);
	for (int i = 0; i < CORE; i++)
		core[i] = hx_proc_free(core[i]);
	moto = hx_moto_free(moto);
	client = etcd_client_free(client);
	event = sd_event_unref(event);
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

/* The policy: pool "web", jobs policy, 1..4 hosts of 4 jobs each, scale-in
 * as soon as there is a surplus, per-second billing with no minimum life,
 * so an idle host goes as soon as it has drained. */
static char *policy_json(size_t flags) {
	json_auto_t *setup = NULL;
	if (hx_moto_setup(moto, &setup) < 0)
		return NULL;
	json_auto_t *p = json_pack(
		"{s:{s:{s:O, s:[s], s:[{s:O, s:O}], s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:i}}}", "pools", "web",
		"launch_template", json_object_get(setup, "launch_template"), "instance_types", "t3.micro", "subnets", "id",
		json_object_get(setup, "subnet"), "availability_zone", json_object_get(setup, "az"), "markets", "on-demand",
		"policy", "jobs", "min", 1, "max", 4, "jobs_per_host", JOBS_PER_HOST, "scale_in_after", 0,
		"scale_in_cooldown", 0, "billing", "per-second", "min_lifetime", 0);
	return p ? json_dumps(p, flags) : NULL;
}

static int run(void) {
	int r;

	heading("starting a private etcd and moto (EC2, behind tests/ec2proxy.py)");
	dir = hx_mkdtemp("demo-fleet");
	if (!dir)
		return -ENOMEM;
	if ((r = hx_etcd_start(&etcd, NULL)) < 0) {
		say("etcd did not start");
		return r;
	}
	char *const endpoints[] = { (char *) hx_etcd_endpoints(etcd), NULL };
	etcd_options eo = { .endpoints = endpoints };
	if ((r = sd_event_new(&event)) < 0 || (r = etcd_client_new(&client, event, &eo)) < 0)
		return r;
	if ((r = hx_moto_start(&moto)) < 0) {
		say("moto did not start (the lines above say what is missing)");
		return r;
	}
	/* The starts above wait up to 30 s without looking at signals. */
	if (stop_signal)
		return -EINTR;
	say("etcd at %s (data in %s)", hx_etcd_endpoints(etcd), hx_etcd_dir(etcd));
	say("EC2 at %s, region %s (moto and proxy logs in %s)", hx_moto_endpoint(moto), hx_moto_region(moto),
	    hx_moto_dir(moto));
	say("corrald configs and logs in %s", dir);
	hx_cloud_options o = { .moto = moto, .cluster = CLUSTER, .endpoints = hx_etcd_endpoints(etcd), .dir = dir,
			       .capacity = JOBS_PER_HOST, .more = "scale_interval: 1s\nlaunch_grace: 5s\n" };
	if ((r = hx_cloud_new(&cloud, &o)) < 0)
		return r;
	say("the harness plays EC2 + cloud-init: every instance moto runs for cluster \"%s\" boots a corrald", CLUSTER);
	say("from scripts/user-data's output, which learns who it is from its instance metadata");
	say("(ec2.instance_id: auto), registers as that instance and reports the jobs this demo writes for it.");

	heading("the scaling policy");
	_cleanup_free_ char *policy = policy_json(JSON_COMPACT), *shown = policy_json(JSON_INDENT(2));
	if (!policy || !shown) {
		say("could not make the launch template in moto (/_proxy/setup)");
		return -EIO;
	}
	say("$ corralctl --cluster %s scale policy set web.json   # written to " PREFIX "scale/policy:", CLUSTER);
	for (char *line = shown, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		printf("    %.*s\n", nl ? (int) (nl - line) : (int) strlen(line), line);
	}
	say("jobs policy: wanted hosts = ceil((jobs + 2*sqrt(jobs)) / %d), between min 1 and max 4;", JOBS_PER_HOST);
	say("per-second billing with min_lifetime 0 and no scale-in delay: an idle host goes once it has drained.");
	if ((r = put("scale/policy", policy)) < 0)
		return r;

	heading("starting two core corrald nodes (n1, n2); one of them leads and runs the scaler every second");
	for (int i = 0; i < CORE && !stop_signal; i++)
		if ((r = start_core(i)) < 0)
			return r;
	want w = { 1, 1 };
	if ((r = wait_for(fleet_is, &w, "the fleet at min (1 host)")) < 0)
		return r;
	say("no load: the leader launched the pool's min, 1 host; it booted and registered.");
	show_fleet();
	if (corralctl_status() < 0)
		return -EIO;

	fleet f;
	if (fleet_look(&f) < 0)
		return -EIO;
	_cleanup_free_ char *first = strdup(json_string_value(json_object_get(json_array_get(f.instances, 0), "id")) ?: "");
	fleet_done(&f);

	heading("load rises: 4 jobs on the first host");
	say("4 + 2*sqrt(4) = 8 job slots / %d per host -> 2 hosts", JOBS_PER_HOST);
	if ((r = hx_cloud_set_jobs(cloud, first, 4)) < 0)
		return r;
	size_t n = 2;
	if ((r = wait_for(live_at_least, &n, "a second instance")) < 0)
		return r;
	say("a second instance was launched:");
	show_fleet();
	w = (want) { 2, 2 };
	if ((r = wait_for(fleet_is, &w, "2 hosts ready and registered")) < 0)
		return r;
	say("it booted, registered and is ready:");
	show_fleet();

	heading("load rises again: 4 jobs on each of the 2 hosts");
	say("8 + 2*sqrt(8) = 13.7 job slots / %d per host -> 4 hosts (the pool's max)", JOBS_PER_HOST);
	if ((r = hx_cloud_set_all_jobs(cloud, 4)) < 0)
		return r;
	n = 4;
	if ((r = wait_for(live_at_least, &n, "4 instances")) < 0)
		return r;
	say("two more instances were launched:");
	show_fleet();
	w = (want) { 4, 4 };
	if ((r = wait_for(fleet_is, &w, "4 hosts ready and registered")) < 0)
		return r;
	say("all 4 hosts are ready and registered:");
	show_fleet();
	if (corralctl_status() < 0)
		return -EIO;

	heading("the load falls to 0 on every host");
	say("0 jobs -> the pool's min, 1 host: 3 hosts drain, run their wind-down hook, report");
	say("ready_to_stop and are terminated. Victims: fewest jobs first, then the oldest.");
	if ((r = hx_cloud_set_all_jobs(cloud, 0)) < 0)
		return r;
	if ((r = wait_for(some_draining, NULL, "hosts draining")) < 0)
		return r;
	say("draining:");
	show_fleet();
	w = (want) { 1, 1 };
	if ((r = wait_for(fleet_is, &w, "the fleet back at 1 host")) < 0)
		return r;
	say("back at min: the others were terminated and their corralds stopped (deregistered):");
	show_fleet();
	if (fleet_look(&f) < 0)
		return -EIO;
	json_t *x;
	size_t i;
	json_array_foreach(f.instances, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		if (!streq_ptr(instance_state(x), "running"))
			say("%s: wind-down hook ran %u time(s) before it was terminated", id, hx_cloud_wound_down(cloud, id));
	}
	fleet_done(&f);
	if (corralctl_status() < 0)
		return -EIO;
	return 0;
}

int main(void) {
	struct sigaction sa = { .sa_handler = on_signal };

	/* Line by line, so the harness's stderr lines stay in order with ours
	 * under make or a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	t0 = hx_now_usec();

	int r = run();
	if (stop_signal) {
		say("interrupted (signal %d): stopping everything", (int) stop_signal);
		r = -EINTR;
	} else if (r < 0 && r != -ETIMEDOUT)
		say("failed: %s", strerror(-r));
	down();
	if (stop_signal) {
		say("stopped");
		return 128 + stop_signal;
	}
	if (r < 0) {
		say("FAILED; everything it started is stopped");
		return 1;
	}
	say("done in %.1f s; stopped every corrald, moto and etcd, removed the temp dirs",
	    (double) (hx_now_usec() - t0) / USEC_PER_SEC);
	return 0;
}
