/* fanout.h — the fan-out benchmark's shared parts (fanout.c): one etcd,
 * corrald nodes rendering f.json each into its own directory, inotify,
 * commits of f/round, /metrics and /proc figures. One state, B: these are
 * two small programs, not a library. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agree.h"
#include "etcd.h"
#include "harness.h"

#define BF_CLUSTER "f"
#define BF_FILE "f"                     /* the config's file: f.json on disk */
#define BF_ID_STEM "node-"              /* ids node-0001..: fixed width */

typedef struct bf_node {
	char *id, *dir, *base, *file, *cfg, *log;
	hx_proc *proc;
	bool dirty;                     /* its file changed since last read */
	int64_t seen_ns;                /* this phase: when it showed what we
	                                   wait for; 0: not yet */
	uint64_t cpu_ns;                /* CPU used at the phase's start */
} bf_node;

enum { BF_RANGE, BF_TXN, BF_PUT, BF_DELETE, BF_GRANT, BF_KEEPALIVE, BF_WATCH, BF_KINDS };
extern const char *const bf_kinds[BF_KINDS];

typedef struct bf_counts {
	double v[BF_KINDS];             /* messages etcd received, by method */
	double watch_sent;              /* watch responses etcd sent */
	double handling_s[BF_KINDS];    /* time etcd spent on unary calls */
	double handled[BF_KINDS];       /*   and how many it timed */
	double fsync_s, fsyncs;         /* WAL fsyncs: time and count */
} bf_counts;

typedef struct bf_state {
	hx_etcd *etcd;
	sd_event *event;
	etcd_client *client;
	char *dir, *prefix;
	int ino;
	sd_event_source *ino_src;
	bf_node **wd_node;              /* inotify wd - 1 -> node */
	size_t n_wd;
	bf_node **all;                  /* every watched node */
	size_t n_all;
	unsigned n;                     /* nodes a list must hold */
	bool topology;
	long round;                     /* what files must show; 0: start-up */
	unsigned reached;               /* nodes that showed it */
	unsigned overflows;             /* inotify queue overflows */
	int64_t deadline_ns;
	volatile sig_atomic_t stop;
} bf_state;

extern bf_state B;

bool bf_over(void);                     /* Ctrl-C or past the deadline */
int bf_setup_common(void);              /* etcd, client, inotify, round 0 */
int bf_node_init(bf_node *n, unsigned i, const char *more);
const char *bf_debounce_yaml(const char *def);
int bf_node_start(bf_node *n);
int bf_watch(bf_node *n);
void bf_node_done(bf_node *n);
void bf_teardown(bf_node *nodes, size_t n);

void bf_check(bf_node *n);
void bf_check_dirty(void);
void bf_run_for(uint64_t usec);
int bf_commit(long round, int64_t *took_ns);
int bf_propose(agree_change_fn change, void *userdata, long round, int64_t *took_ns);

uint64_t bf_cpu_ns(pid_t pid);
void bf_rss(pid_t pid, long *rss_kib, long *anon_kib);
int bf_metrics(bf_counts *c);
void bf_metrics_settle(bf_counts *c, uint64_t max_usec);

int64_t bf_pct(const int64_t *sorted, size_t n, unsigned p);
double bf_ms(int64_t ns);
