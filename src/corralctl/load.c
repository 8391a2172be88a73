/* load.c — `corralctl load set`: publishes a node's load record
 * (<prefix>/load/<node-id>), what the jobs policy counts. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "imds.h"

#define NODE_CONFIG "/etc/corral/corrald.yaml"  /* corrald's default */
#define IMDS_TIMEOUT_USEC (5 * USEC_PER_SEC)

typedef struct identity_wait {
	bool done;
	conf *cf;
	int r;
	char message[300];
} identity_wait;

static void on_identity(int error, const imds_identity *id, const char *message, void *userdata) {
	identity_wait *w = userdata;

	w->done = true;
	w->r = error;
	snprintf(w->message, sizeof w->message, "%s", message ? message : "");
	if (error >= 0)
		w->r = conf_apply_identity(w->cf, id->instance_id, id->local_ipv4, id->pool);
}

/* This node's id as corrald derives it, from --config or else the node
 * config at corrald's default place: node_id, else /etc/machine-id; with
 * ec2.instance_id auto the instance id IMDS tells (conf_apply_identity(),
 * what corrald does at start). NULL after printing why. */
static const char *this_node(ctl_t *c) {
	conf_error err = {};
	char buf[600];

	if (!c->conf) {
		if (access(NODE_CONFIG, R_OK) < 0) {
			ctl_usage_error("%s", "no --node given and no node config to take this node's id from "
					      "(-c " NODE_CONFIG ")");
			return NULL;
		}
		if (conf_load_file(NODE_CONFIG, &c->conf, &err) < 0) {
			fprintf(stderr, "corralctl: %s\n", conf_error_format(&err, buf, sizeof buf));
			return NULL;
		}
	}
	if (c->conf->ec2.instance_auto && !c->conf->ec2.instance_id) {
		_cleanup_(imds_identity_fetch_freep) imds_identity_fetch *f = NULL;
		identity_wait w = { .cf = c->conf };
		int r = imds_identity_fetch_start(&f, c->event, c->conf->ec2.imds_endpoint, IMDS_TIMEOUT_USEC,
						  on_identity, &w);
		while (r >= 0 && !w.done)
			r = sd_event_run(c->event, UINT64_MAX);
		if (r < 0 || w.r < 0) {
			fprintf(stderr, "corralctl: this node's id (ec2.instance_id: auto): %s\n",
				w.message[0] ? w.message : strerror(-(r < 0 ? r : w.r)));
			return NULL;
		}
	}
	return c->conf->node_id;
}

static int load_set(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *key = NULL, *value = NULL;
	char now[32], msg[300];

	if (o->jobs < 0)
		return ctl_usage_error("%s", "load set needs --jobs N");
	const char *node = o->node ? o->node : this_node(c);
	if (!node)
		return 2;
	if (!ctl_id_valid(node))
		return ctl_usage_error("bad node id '%s'", node);
	key = keys_entry(c->prefix, KEYS_LOAD, node);
	if (!key)
		return 1;
	ctl_format_time(now, time(NULL));
	json_auto_t *rec = json_pack("{s:i, s:i, s:f, s:s}", "jobs", (int) o->jobs, "capacity",
				     (int) (o->capacity < 0 ? 0 : o->capacity), "memory", o->memory < 0 ? 0.0 : o->memory,
				     "updated", now);
	if (!rec || !(value = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		return 1;
	ctl_log_summary(c, "before");
	if (ctl_put(c, key, value, -1) < 0)
		return 1;
	snprintf(msg, sizeof msg, "node %s: %ld jobs", node, o->jobs);
	int r = ctl_report(c, "put", key, value, msg);
	ctl_log_summary(c, "after");
	return r;
}

const ctl_verb ctl_load_verbs[] = {
	{ .group = "load", .name = "set", .args = "[--node ID] --jobs N [--capacity M] [--memory F]",
	  .help = "publish a node's load (default node: this node's id, as corrald derives it\n"
		  "from its config: -c FILE, else " NODE_CONFIG ")",
	  .options = CTL_OPT_NODE | CTL_OPT_JOBS | CTL_OPT_CAPACITY | CTL_OPT_MEMORY, .flags = CTL_VERB_ETCD,
	  .run = load_set },
	{},
};
