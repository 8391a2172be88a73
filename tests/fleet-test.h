/* fleet-test.h — a small fleet of real corrald on one etcd, for the tests
 * that count what it costs (test_fanout_requests, test_upkeep) and what it
 * repairs (test_repair): each node renders one file "w" whose "workers"
 * list a topology rule keeps (an entry ["<address>", 26000] per live node
 * with service Worker). Include after etcd-test.h. */
#pragma once

#include <signal.h>
#include <stdlib.h>

typedef struct fleet_node {
	char *id, *address, *cfg, *log, *file;
	hx_proc *proc;
	bool dead;                      /* killed by the test */
} fleet_node;

/* Takes id and address (hx_fmt'd); writes the node's config into dir,
 * with `tuning` (YAML: debounce, max_wait...) appended. */
static inline void fleet_node_init(fleet_node *n, const char *dir, const char *endpoints, char *id, char *address,
				   const char *tuning) {
	n->id = id;
	n->address = address;
	n->cfg = hx_fmt("%s/%s.yaml", dir, n->id);
	n->log = hx_fmt("%s/%s.log", dir, n->id);
	n->file = hx_fmt("%s/%s.w.json", dir, n->id);
	_cleanup_free_ char *more = hx_fmt("files:\n"
					"  w:\n"
					"    path: %s\n"
					"topology:\n"
					"  - service: Worker\n"
					"    path: w/workers\n"
					"    value: [\"{address}\", 26000]\n"
					"%s",
					n->file, tuning);
	cr_assert_eq(hx_write_corrald_config_full(n->cfg, n->id, n->address, "Worker", endpoints, more), 0);
}

static inline void fleet_node_start(fleet_node *n) {
	cr_assert_eq(hx_corrald_spawn(&n->proc, n->cfg, NULL, n->log), 0);
}

/* Stops the node (a stopped one is continued first: it could not stop)
 * and frees its names; when the environment variable logs_env is set,
 * shows the tail of its log first. */
static inline void fleet_node_done(fleet_node *n, const char *logs_env) {
	if (n->proc && hx_proc_pid(n->proc) > 0)
		(void) hx_proc_signal(n->proc, SIGCONT);
	n->proc = hx_proc_free(n->proc);
	if (getenv(logs_env) && n->log)
		hx_log_tail(n->log, 80);
	free(n->id);
	free(n->address);
	free(n->cfg);
	free(n->log);
	free(n->file);
	*n = (fleet_node){};
}
