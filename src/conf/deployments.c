/* deployments.c — the `deployments:` section (docs/deployments.md): the
 * memory this node offers tenant deployments, the hook commands an order
 * names, and how long one hook may run.
 *
 * memory is a size ("16G", deployment_parse_size); left out, the machine's
 * total memory (MemTotal of /proc/meminfo) is offered. */
#include <stddef.h>
#include <stdio.h>

#include "conf-internal.h"

#define CONF_DEFAULT_HOOK_TIMEOUT_USEC (3600 * USEC_PER_SEC)

static int parse_memory(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	_cleanup_free_ char *s = NULL;
	int64_t *p = field, v;

	int r = conf_scalar_dup(w, name, "a size like 16G", value, &s);
	if (r < 0)
		return r;
	if (deployment_parse_size(s, &v) < 0 || v <= 0)
		return conf_fail(w, value, "%s: expected a size like 16G (K, M, G, T), got \"%s\"", name, s);
	*p = v;
	return 0;
}

/* MemTotal in bytes; -errno when /proc/meminfo does not say. */
static int meminfo_total(int64_t *out) {
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	char line[256];

	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long long kib;

		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1) {
			*out = (int64_t) kib * 1024;
			return 0;
		}
	}
	return -ENODATA;
}

static const conf_key deployments_keys[] = {
	{ "memory",          parse_memory,            offsetof(conf_deployments, memory) },
	{ "deploy",          conf_parse_string,       offsetof(conf_deployments, hooks[DEPLOYMENT_HOOK_DEPLOY]) },
	{ "maintenance_on",  conf_parse_string,       offsetof(conf_deployments, hooks[DEPLOYMENT_HOOK_MAINTENANCE_ON]) },
	{ "maintenance_off", conf_parse_string,       offsetof(conf_deployments, hooks[DEPLOYMENT_HOOK_MAINTENANCE_OFF]) },
	{ "backup",          conf_parse_string,       offsetof(conf_deployments, hooks[DEPLOYMENT_HOOK_BACKUP]) },
	{ "remove",          conf_parse_string,       offsetof(conf_deployments, hooks[DEPLOYMENT_HOOK_REMOVE]) },
	{ "timeout",         conf_parse_duration_key, offsetof(conf_deployments, timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{}
};

static int parse_deployments(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			     void *field) {
	conf_deployments *d = field;

	int r = conf_walk_mapping(w, (const conf_key *const[]) { deployments_keys, NULL }, name, value, d);
	if (r < 0)
		return r;
	d->present = true;
	return 0;
}

static const conf_key conf_deployments_part_keys[] = {
	{ "deployments", parse_deployments, offsetof(conf, deployments), .section = deployments_keys },
	{}
};

static void conf_deployments_init(conf *c) {
	c->deployments.timeout_usec = CONF_DEFAULT_HOOK_TIMEOUT_USEC;
}

static int conf_deployments_finish(conf *c, conf_error *err) {
	if (!c->deployments.present || c->deployments.memory > 0)
		return 0;
	int r = meminfo_total(&c->deployments.memory);
	if (r < 0)
		return conf_fail_errno(err, -EINVAL, "deployments.memory: not given and /proc/meminfo has no MemTotal");
	return 0;
}

static void conf_deployments_done(conf *c) {
	for (size_t i = 0; i < _DEPLOYMENT_HOOK_MAX; i++)
		free(c->deployments.hooks[i]);
}

const conf_part conf_part_deployments = {
	.keys = conf_deployments_part_keys,
	.init = conf_deployments_init,
	.finish = conf_deployments_finish,
	.done = conf_deployments_done,
};
