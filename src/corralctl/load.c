/* load.c — `corralctl load set`: publishes a node's load record
 * (<prefix>/load/<node-id>), what the jobs policy counts. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static int load_set(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *key = NULL, *value = NULL;
	char host[256] = "", now[32], msg[300];

	if (o->jobs < 0)
		return ctl_usage_error("%s", "load set needs --jobs N");
	const char *node = o->node;
	if (!node) {
		if (gethostname(host, sizeof host - 1) < 0 || !ctl_id_valid(host))
			return ctl_usage_error("%s", "no --node given and the host name is no node id");
		node = host;
	}
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
	  .help = "publish a node's load (default node: this host's name)",
	  .options = CTL_OPT_NODE | CTL_OPT_JOBS | CTL_OPT_CAPACITY | CTL_OPT_MEMORY, .flags = CTL_VERB_ETCD,
	  .run = load_set },
	{},
};
