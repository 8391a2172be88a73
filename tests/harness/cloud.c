/* cloud.c — the test harness playing the cloud's part for the autoscaler:
 * every instance moto runs for the cluster gets a corrald, as EC2 and
 * cloud-init would give it on a real host, and loses it when the instance
 * goes. A host boots from user data that scripts/user-data generated: the
 * corrald.yaml cloud-init would write from it, the same for every host and
 * naming none, plus the test's overrides (below). The host learns who it is
 * from its own IMDS (the proxy's, one port per instance) as on EC2, then
 * really registers, reports load from a file the test writes and runs its
 * wind-down hook. harness.h says what each host is configured with. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* How long hx_cloud_poll waits between looks at moto. */
#define CLOUD_POLL_USEC (200 * USEC_PER_MSEC)

typedef struct cloud_host {
	char *id;
	hx_proc *proc;          /* NULL once stopped */
	bool stopped;           /* its instance was stopped, not terminated: a
	                           start boots the same corrald again */
} cloud_host;

struct hx_cloud {
	hx_moto *moto;
	char *cluster, *endpoints, *dir, *more;
	char *user_data_conf;   /* the corrald.yaml the hosts' user data writes */
	int capacity;
	cloud_host *hosts;
	size_t n_hosts;
	uint64_t last_sync;
};

static char *host_path(const hx_cloud *c, const char *id, const char *ext) {
	char *p;
	return asprintf(&p, "%s/%s.%s", c->dir, id, ext) < 0 ? NULL : p;
}

/* A file in the host's own directory, its "root file system": corrald runs
 * there, so the same relative paths in every host's config are its own. */
static char *host_file(const hx_cloud *c, const char *id, const char *name) {
	char *p;
	return asprintf(&p, "%s/%s/%s", c->dir, id, name) < 0 ? NULL : p;
}

static cloud_host *find(const hx_cloud *c, const char *id) {
	for (size_t i = 0; i < c->n_hosts; i++)
		if (streq(c->hosts[i].id, id))
			return &c->hosts[i];
	return NULL;
}

/* Written whole (temp + rename): the load command never reads half a file. */
static int write_load(const hx_cloud *c, const char *id, int jobs) {
	_cleanup_free_ char *path = host_file(c, id, "load"), *tmp = host_file(c, id, "load.tmp"), *text = NULL;

	if (!path || !tmp || asprintf(&text, "{\"jobs\": %d, \"capacity\": %d, \"memory\": 0.1}\n", jobs, c->capacity) < 0)
		return -ENOMEM;
	int r = hx_write_file(tmp, text);
	if (r < 0)
		return r;
	return rename(tmp, path) < 0 ? -errno : 0;
}

/* A core node named name (<name>.yaml, <name>.log in dir): no instance
 * (IMDS off), the scaler's ec2 settings and the options' more. */
int hx_cloud_start_node(hx_cloud *c, const char *name, hx_proc **out) {
	_cleanup_free_ char *cfg = host_path(c, name, "yaml"), *log = host_path(c, name, "log"), *yaml = NULL,
			    *bin = NULL;
	int r;

	if (!cfg || !log ||
	    asprintf(&yaml, "ec2:\n  region: %s\n  endpoint: %s\n  imds_endpoint: \"\"\n%s", hx_moto_region(c->moto),
		     hx_moto_endpoint(c->moto), c->more ?: "") < 0 ||
	    asprintf(&bin, "%s/corrald", hx_builddir()) < 0)
		return -ENOMEM;
	r = hx_write_corrald_config_full(cfg, name, "127.0.0.9", "Core", c->endpoints, yaml);
	if (r < 0)
		return r;
	char *const argv[] = { bin, "--config", cfg, NULL };
	return hx_proc_spawn(out, argv, hx_moto_env(c->moto), log);
}

/* What cloud-init would write to /etc/corral/corrald.yaml from the user
 * data scripts/user-data prints for the cluster's workers: once per cloud,
 * as a launch template carries one user data for all its instances. */
static int user_data_conf(hx_cloud *c) {
	_cleanup_free_ char *script = NULL, *out = NULL;

	if (c->user_data_conf)
		return 0;
	if (asprintf(&script, "%s/scripts/user-data", hx_srcdir()) < 0)
		return -ENOMEM;
	char *const argv[] = { "/bin/sh", script, "--cluster", c->cluster, "--endpoints", c->endpoints,
			       "--services", "Worker", "--no-cms", NULL };
	int r = hx_run(&out, 10 * USEC_PER_SEC, argv, NULL);
	if (r != 0) {
		fprintf(stderr, "cloud: scripts/user-data failed (%d)\n", r);
		return r < 0 ? r : -EIO;
	}
	return hx_user_data_file(out, strlen(out), "/etc/corral/corrald.yaml", &c->user_data_conf);
}

/* The host's DMI as the kernel shows it on a Nitro instance. */
static int write_dmi(const hx_cloud *c, const char *id) {
	_cleanup_free_ char *dmi = host_file(c, id, "dmi"), *vendor = host_file(c, id, "dmi/sys_vendor"),
			    *tag = host_file(c, id, "dmi/board_asset_tag"), *tag_text = NULL;

	if (!dmi || !vendor || !tag || asprintf(&tag_text, "%s\n", id) < 0)
		return -ENOMEM;
	if (mkdir(dmi, 0755) < 0)
		return -errno;
	int r = hx_write_file(vendor, "Amazon EC2\n");
	return r < 0 ? r : hx_write_file(tag, tag_text);
}

/* Runs the host's corrald in its directory with its config (again after a
 * stop: the warm pool). */
static int spawn_host(hx_cloud *c, cloud_host *h) {
	_cleanup_free_ char *root = host_file(c, h->id, ""), *cfg = host_path(c, h->id, "yaml"),
			    *log = host_path(c, h->id, "log"), *bin = NULL;

	if (!root || !cfg || !log || asprintf(&bin, "%s/corrald", hx_builddir()) < 0)
		return -ENOMEM;
	/* exec: the pid (and the parent-death signal) are corrald's. */
	char *const argv[] = { "/bin/sh", "-c", "cd \"$1\" && exec \"$2\" --config \"$3\"", "sh", root, bin, cfg, NULL };
	return hx_proc_spawn(&h->proc, argv, hx_moto_env(c->moto), log);
}

/* Boots instance id: its directory, DMI and IMDS, then corrald in that
 * directory with the user data's config and the test's overrides: timing
 * (lease, load interval, the test's `more`), the app's hooks on files in
 * the host's directory, and where the cloud is (EC2 endpoint, this
 * instance's IMDS, DMI). Node id, address, pool and instance id: none. */
static int start_host(hx_cloud *c, const char *id, const char *pool) {
	_cleanup_free_ char *root = host_file(c, id, ""), *cfg = host_path(c, id, "yaml"), *imds = NULL, *yaml = NULL;
	cloud_host *n;
	int r;

	if (!root || !cfg)
		return -ENOMEM;
	if ((r = user_data_conf(c)) < 0)
		return r;
	if (mkdir(root, 0755) < 0)
		return -errno;
	if ((r = write_dmi(c, id)) < 0 || (r = write_load(c, id, 0)) < 0)
		return r;
	if ((r = hx_moto_node_imds(c->moto, id, &imds)) < 0)
		return r;
	if (asprintf(&yaml,
		     "%s\n# the test's overrides\n"
		     "lease_ttl: 2s\n"
		     "log_level: debug\n"
		     "load_command: cat load\n"
		     "load_interval: 1s\n"
		     "wind_down_command: echo down >> wound\n"
		     "%s"
		     "ec2:\n  region: %s\n  endpoint: %s\n  imds_endpoint: %s\n  dmi_dir: dmi\n",
		     c->user_data_conf, c->more ?: "", hx_moto_region(c->moto), hx_moto_endpoint(c->moto), imds) < 0)
		return -ENOMEM;
	if ((r = hx_write_file(cfg, yaml)) < 0)
		return r;

	n = realloc(c->hosts, (c->n_hosts + 1) * sizeof *n);
	if (!n)
		return -ENOMEM;
	c->hosts = n;
	n = &c->hosts[c->n_hosts];
	*n = (cloud_host) { .id = strdup(id) };
	if (!n->id)
		return -ENOMEM;
	r = spawn_host(c, n);
	if (r < 0) {
		free(n->id);
		return r;
	}
	c->n_hosts++;
	fprintf(stderr, "cloud: %s (tagged pool %s) booted from user data: corrald pid %d\n", id, pool,
		(int) hx_proc_pid(n->proc));
	return 0;
}

static void stop_host(cloud_host *h, const char *why) {
	fprintf(stderr, "cloud: %s %s: stopping its corrald\n", h->id, why);
	h->proc = hx_proc_free(h->proc);
	h->stopped = streq(why, "stopping") || streq(why, "stopped");
}

int hx_cloud_sync(hx_cloud *c) {
	json_auto_t *list = NULL;
	json_t *x;
	size_t i;
	int r;

	c->last_sync = hx_now_usec();
	r = hx_moto_instances(c->moto, &list);
	if (r < 0)
		return r;
	json_array_foreach(list, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		const char *state = json_string_value(json_object_get(x, "state"));
		json_t *tags = json_object_get(x, "tags");
		const char *cluster = json_string_value(json_object_get(tags, "corral:cluster"));
		const char *pool = json_string_value(json_object_get(tags, "corral:pool"));
		cloud_host *h;

		if (!id || !state || !streq_ptr(cluster, c->cluster))
			continue;
		h = find(c, id);
		if (streq(state, "pending") || streq(state, "running")) {
			/* An instance boots from its user data once; one that
			 * was stopped boots its corrald again when started. */
			if (!h && (r = start_host(c, id, pool ?: "default")) < 0)
				return r;
			if (h && !h->proc && h->stopped) {
				h->stopped = false;
				if ((r = spawn_host(c, h)) < 0)
					return r;
				fprintf(stderr, "cloud: %s started again: corrald pid %d\n", id, (int) hx_proc_pid(h->proc));
			}
		} else if (h && h->proc)
			stop_host(h, state);
	}
	return 0;
}

void hx_cloud_poll(hx_cloud *c) {
	if (hx_now_usec() - c->last_sync >= CLOUD_POLL_USEC)
		(void) hx_cloud_sync(c);
}

size_t hx_cloud_hosts(const hx_cloud *c) {
	size_t n = 0;
	for (size_t i = 0; i < c->n_hosts; i++)
		n += c->hosts[i].proc != NULL;
	return n;
}

int hx_cloud_host_state(const hx_cloud *c, const char *id) {
	const cloud_host *h = find(c, id);
	return !h ? -ENOENT : h->proc != NULL;
}

int hx_cloud_set_jobs(hx_cloud *c, const char *id, int jobs) {
	return find(c, id) ? write_load(c, id, jobs) : -ENOENT;
}

int hx_cloud_set_all_jobs(hx_cloud *c, int jobs) {
	for (size_t i = 0; i < c->n_hosts; i++) {
		int r = c->hosts[i].proc ? write_load(c, c->hosts[i].id, jobs) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

unsigned hx_cloud_wound_down(const hx_cloud *c, const char *id) {
	_cleanup_free_ char *path = host_file(c, id, "wound"), *text = path ? hx_read_file(path, NULL) : NULL;
	unsigned n = 0;
	for (const char *p = text; p && *p; p++)
		n += *p == '\n';
	return n;
}

hx_cloud *hx_cloud_free(hx_cloud *c) {
	if (!c)
		return NULL;
	/* Signal all first, then reap: ten corralds stop in parallel. */
	for (size_t i = 0; i < c->n_hosts; i++)
		if (c->hosts[i].proc)
			(void) hx_proc_signal(c->hosts[i].proc, SIGTERM);
	for (size_t i = 0; i < c->n_hosts; i++) {
		hx_proc_free(c->hosts[i].proc);
		free(c->hosts[i].id);
	}
	free(c->hosts);
	free(c->cluster);
	free(c->endpoints);
	free(c->dir);
	free(c->more);
	free(c->user_data_conf);
	free(c);
	return NULL;
}

int hx_cloud_new(hx_cloud **out, const hx_cloud_options *o) {
	_cleanup_(hx_cloud_freep) hx_cloud *c = NULL;

	if (!out || !o || !o->moto || !o->cluster || !o->endpoints || !o->dir)
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->moto = o->moto;
	c->capacity = o->capacity > 0 ? o->capacity : 1;
	c->cluster = strdup(o->cluster);
	c->endpoints = strdup(o->endpoints);
	c->dir = strdup(o->dir);
	c->more = o->more ? strdup(o->more) : NULL;
	if (!c->cluster || !c->endpoints || !c->dir || (o->more && !c->more))
		return -ENOMEM;
	*out = TAKE_PTR(c);
	return 0;
}
