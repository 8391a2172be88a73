/* cluster.c — `corralctl cluster stop|start`: <prefix>/scale/stop makes
 * the leader drain every host but held ones; --wait SECONDS follows the
 * host records until that is done (or the pools are back). */
#include <errno.h>
#include <stdlib.h>

#include "ctl.h"

static bool all_stopped(ctl_view *v, const void *userdata) {
	const char *id;
	json_t *rec;

	json_object_foreach(v->hosts, id, rec) {
		const char *s = ctl_host_state(rec);
		if (ctl_view_held(v, id, rec) || !s)
			continue;
		if (!streq(s, "terminating") && !streq(s, "terminated"))
			return false;
	}
	return true;
}

/* Every enabled pool has at least its min (or its override) ready. */
static bool all_started(ctl_view *v, const void *userdata) {
	if (!v->policy_ok)
		return true;
	for (size_t i = 0; i < v->policy.n_pools; i++) {
		const scale_pool *p = &v->policy.pools[i];
		int ready, launching;
		int want = p->desired >= 0 ? p->desired : p->min;
		ctl_fleet_size(v, p->name, &ready, &launching);
		if (p->enabled && ready < want)
			return false;
	}
	return true;
}

static int cluster_switch(ctl_t *c, ctl_opts *o, bool stop) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_SCALE_STOP);
	int r = ctl_switch_marker(c, key, stop, o->reason,
				  &(ctl_marker_texts){ .on = "cluster stop: every host but held ones will be drained",
						       .off = "cluster started: the pools scale again",
						       .absent = "the cluster was not stopped",
						       .taken = "cluster already stopped" });

	if (r != 0 || o->wait < 0 || c->dry_run)
		return r;
	r = ctl_wait_for(c, o->wait, stop ? all_stopped : all_started, NULL);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "corralctl: %s: not done within %lds%s\n", stop ? "cluster stop" : "cluster start",
			o->wait, c->force ? " (--force: going on)" : "");
		ctl_log_summary(c, "now");
		return c->force ? 0 : 1;
	}
	if (r < 0) {
		if (r != -EIO)
			fprintf(stderr, "corralctl: waiting: %s\n", strerror(-r));
		return 1;
	}
	if (c->format != FORMAT_JSON)
		printf("%s\n", stop ? "every host but held ones is terminating or gone" : "every pool is at its size");
	return 0;
}

static int cluster_stop(ctl_t *c, ctl_opts *o) {
	return cluster_switch(c, o, true);
}

static int cluster_start(ctl_t *c, ctl_opts *o) {
	return cluster_switch(c, o, false);
}

const ctl_verb ctl_cluster_verbs[] = {
	{ .group = "cluster", .name = "stop", .args = "[--wait S] [--reason TEXT]",
	  .help = "drain every host but held ones; --wait: wait up to S seconds until they are\n"
		  "terminating or gone (with -f a time-out is not a failure). Refused while\n"
		  "stopped (by whom, since, why are printed): -f replaces that marker",
	  .options = CTL_OPT_WAIT | CTL_OPT_REASON, .flags = CTL_VERB_ETCD, .run = cluster_stop },
	{ .group = "cluster", .name = "start", .args = "[--wait S]",
	  .help = "end a cluster stop; --wait: wait up to S seconds until every enabled pool has\n"
		  "its size ready",
	  .options = CTL_OPT_WAIT, .flags = CTL_VERB_ETCD, .run = cluster_start },
	{},
};
