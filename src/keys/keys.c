/* keys.c — the etcd key layout (see include/keys.h). Plain string joins;
 * the one thing that matters is that an id can never add a '/'. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "macro.h"

static const char *const dir_names[_KEYS_DIR_MAX] = {
	[KEYS_CONFIGS] = "configs",   [KEYS_NODES] = "nodes",
	[KEYS_STATUS] = "status",     [KEYS_LOAD] = "load",
	[KEYS_HOLDS] = "holds",       [KEYS_SCALE] = "scale",
	[KEYS_SCALE_HOSTS] = "scale/hosts",
	[KEYS_UPGRADE] = "upgrade",   [KEYS_UPGRADE_NODES] = "upgrade/nodes",
	[KEYS_SCALE_QUEUE] = "scale/queue",
	[KEYS_UPGRADE_PROGRESS] = "upgrade/progress",
	[KEYS_UPGRADE_HISTORY] = "upgrade/history",
	[KEYS_SCALE_HISTORY] = "scale/history",
	[KEYS_SCALE_LOAD_HISTORY] = "scale/load_history",
	[KEYS_DEPLOYMENTS] = "deployments",
	[KEYS_DEPLOYMENT_REPORTS] = "deployment_reports",
};

static const char *const one_names[_KEYS_ONE_MAX] = {
	[KEYS_CURRENT] = "current",             [KEYS_LEADER] = "leader",
	[KEYS_MAINTENANCE] = "maintenance",     [KEYS_SCALE_POLICY] = "scale/policy",
	[KEYS_SCALE_STATE] = "scale/state",     [KEYS_SCALE_METRICS] = "scale/metrics",
	[KEYS_UPGRADE_PLAN] = "upgrade/plan",
	[KEYS_SCALE_STOP] = "scale/stop",       [KEYS_SCALE_TRIGGER] = "scale/trigger",
	[KEYS_UPGRADE_STATE] = "upgrade/state", [KEYS_UPGRADE_STABLE] = "upgrade/stable",
	[KEYS_SCALE_STATUS] = "scale/status",
	[KEYS_DEPLOYMENT_POLICY] = "deployment_policy",
};

bool keys_id_valid(const char *id, size_t len) {
	if (!id || len == 0 || len > KEYS_ID_MAX)
		return false;
	if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (id[i] == '/' || (unsigned char) id[i] < 0x20 || id[i] == 0x7f)
			return false;
	return true;
}

bool keys_cluster_valid(const char *name) {
	return name && keys_id_valid(name, strlen(name));
}

/* The joins: NULL with errno set on failure, as the header promises. */
static char *join(const char *a, const char *b, const char *c, const char *d) {
	char *s = NULL;

	if (!a || !b) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&s, "%s/%s%s%s", a, b, c ? c : "", d ? d : "") < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

char *keys_prefix_for_cluster(const char *cluster) {
	if (!keys_cluster_valid(cluster)) {
		errno = EINVAL;
		return NULL;
	}
	return join("/corral", cluster, NULL, NULL);
}

char *keys_all_of(const char *prefix) {
	return join(prefix, "", NULL, NULL);
}

char *keys_one_of(const char *prefix, keys_one k) {
	if ((unsigned) k >= _KEYS_ONE_MAX) {
		errno = EINVAL;
		return NULL;
	}
	return join(prefix, one_names[k], NULL, NULL);
}

char *keys_dir_of(const char *prefix, keys_dir d) {
	if ((unsigned) d >= _KEYS_DIR_MAX) {
		errno = EINVAL;
		return NULL;
	}
	return join(prefix, dir_names[d], "/", NULL);
}

char *keys_dir_end(const char *prefix, keys_dir d) {
	if ((unsigned) d >= _KEYS_DIR_MAX) {
		errno = EINVAL;
		return NULL;
	}
	return join(prefix, dir_names[d], "0", NULL);
}

char *keys_entry(const char *prefix, keys_dir d, const char *id) {
	_cleanup_free_ char *dir = NULL;

	if (!id || !keys_id_valid(id, strlen(id))) {
		errno = EINVAL;
		return NULL;
	}
	dir = keys_dir_of(prefix, d);
	if (!dir)
		return NULL;

	char *s = NULL;
	if (asprintf(&s, "%s%s%s", dir, id, d == KEYS_CONFIGS ? "/" : "") < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

char *keys_config_leaf(const char *prefix, const char *config_id, const char *leaf) {
	_cleanup_free_ char *folder = keys_entry(prefix, KEYS_CONFIGS, config_id);
	char *s = NULL;

	if (!folder)
		return NULL;
	if (!leaf || !*leaf) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&s, "%s%s", folder, leaf) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

const char *keys_id_in(const char *prefix, keys_dir d, const char *key, size_t len, size_t *id_len) {
	if (!prefix || !key || (unsigned) d >= _KEYS_DIR_MAX)
		return NULL;

	size_t np = strlen(prefix), nd = strlen(dir_names[d]);
	if (len < np + nd + 3 || memcmp(key, prefix, np) != 0 || key[np] != '/' ||
	    memcmp(key + np + 1, dir_names[d], nd) != 0 || key[np + 1 + nd] != '/')
		return NULL;

	const char *id = key + np + nd + 2;
	size_t n = len - (size_t) (id - key);
	if (d == KEYS_CONFIGS) {
		const char *slash = memchr(id, '/', n);
		if (!slash)
			return NULL;
		n = (size_t) (slash - id);
	}
	if (!keys_id_valid(id, n))
		return NULL;
	*id_len = n;
	return id;
}
