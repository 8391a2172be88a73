/* fanout.c — what the fan-out benchmark (bench_fanout.c) and the side by
 * side with confd (bench_confd.c) share: a private etcd, corrald nodes each
 * rendering one file f.json into its own directory, inotify on those
 * directories (a rename into place is IN_MOVED_TO, so a file is read only
 * when it changed), commits of f/round through the agreement protocol (what
 * `corralctl config set` does, without its process start), etcd's request
 * counters from /metrics, and a process's CPU and memory from /proc. */
#include <jansson.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "agree.h"
#include "bench.h"
#include "fanout.h"
#include "etcd.h"
#include "harness.h"
#include "keys.h"

bf_state B;

static void on_signal(int sig) {
	(void) sig;
	B.stop = 1;
}

bool bf_over(void) {
	return B.stop || mono_ns() >= B.deadline_ns;
}

/* ---- files seen through inotify ---------------------------------------------- */

/* The integer after "round" in text (JSON `"round": 3` or `round=3`), or -1. */
static long round_in(const char *text) {
	const char *p = text ? strstr(text, "round") : NULL;
	if (!p)
		return -1;
	p += 5;
	while (*p && (*p < '0' || *p > '9') && *p != '\n' && *p != ',' && *p != '}')
		p++;
	return *p >= '0' && *p <= '9' ? strtol(p, NULL, 10) : -1;
}

static size_t count_in(const char *text, const char *needle) {
	size_t n = 0, len = strlen(needle);
	for (const char *p = text; p && (p = strstr(p, needle)); p += len)
		n++;
	return n;
}

/* The node's file shows what this phase waits for: its round, and in the
 * start-up phase (round 0) with topology, all N ids in the list. */
static bool shows(bf_node *n) {
	if (B.round == 0 && B.topology) {
		/* Cheap first: a list of N ids is at least N x (id + quotes) long. */
		struct stat st;
		if (stat(n->file, &st) < 0 || (size_t) st.st_size < B.n * (strlen(n->id) + 2))
			return false;
	}
	_cleanup_free_ char *text = hx_read_file(n->file, NULL);
	if (!text || round_in(text) != B.round)
		return false;
	return B.round != 0 || !B.topology || count_in(text, "\"" BF_ID_STEM) == B.n;
}

void bf_check(bf_node *n) {
	n->dirty = false;
	if (n->seen_ns || !shows(n))
		return;
	n->seen_ns = mono_ns();
	B.reached++;
}

static bf_node *node_of_wd(int wd) {
	if (wd > 0 && (size_t) wd <= B.n_wd && B.wd_node[wd - 1])
		return B.wd_node[wd - 1];
	return NULL;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void) s, (void) revents, (void) userdata;
	for (;;) {
		ssize_t len = read(fd, buf, sizeof buf);
		if (len <= 0)
			break;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *) p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < B.n_all; i++)
					B.all[i]->dirty = true;
				B.overflows++;
				continue;
			}
			bf_node *n = node_of_wd(ev->wd);
			if (!n || !ev->len || !streq(ev->name, n->base))
				continue;
			n->dirty = true;
			/* A commit is timed as the event is read; the start-up's
			 * list checks are batched (bf_check_dirty). */
			if (B.round != 0)
				bf_check(n);
		}
	}
	return 0;
}

int bf_watch(bf_node *n) {
	int wd = inotify_add_watch(B.ino, n->dir, IN_MOVED_TO | IN_CLOSE_WRITE);
	if (wd < 0)
		return -errno;
	if ((size_t) wd > B.n_wd) {
		size_t nw = (size_t) wd * 2;
		bf_node **v = realloc(B.wd_node, nw * sizeof *v);
		if (!v)
			return -ENOMEM;
		memset(v + B.n_wd, 0, (nw - B.n_wd) * sizeof *v);
		B.wd_node = v;
		B.n_wd = nw;
	}
	B.wd_node[wd - 1] = n;
	bf_node **all = realloc(B.all, (B.n_all + 1) * sizeof *all);
	if (!all)
		return -ENOMEM;
	B.all = all;
	B.all[B.n_all++] = n;
	return 0;
}

void bf_check_dirty(void) {
	for (size_t i = 0; i < B.n_all; i++)
		if (B.all[i]->dirty)
			bf_check(B.all[i]);
}

void bf_run_for(uint64_t usec) {
	int64_t end = mono_ns() + (int64_t) usec * 1000;
	while (!B.stop && mono_ns() < end)
		(void) sd_event_run(B.event, (uint64_t) (end - mono_ns()) / 1000 + 1);
}

/* ---- commits ----------------------------------------------------------------- */

static int set_round(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	json_t *f = json_object_get(files, BF_FILE);

	(void) s, (void) err, (void) err_size;
	if (!f) {
		f = json_object();
		if (json_object_set_new(files, BF_FILE, f) < 0)
			return -ENOMEM;
	}
	return json_object_set_new(f, "round", json_integer(*(const long *) userdata)) < 0 ? -ENOMEM : 0;
}

/* Commits what change makes of the config (running the loop meanwhile),
 * labelled round in errors; the commit's own duration in *took_ns. */
int bf_propose(agree_change_fn change, void *userdata, long round, int64_t *took_ns) {
	agree_options o = { .prefix = B.prefix, .proposer = "bench" };
	agree_owned_result r = {};
	int64_t t0 = mono_ns();
	int rc = agree_propose_sync(B.client, &o, change, userdata, &r);

	if (took_ns)
		*took_ns = mono_ns() - t0;
	if (rc == 0 && r.error.code == 0 && !r.committed)
		rc = -EALREADY;
	if (rc < 0 || r.error.code < 0)
		fprintf(stderr, "bench: commit of round %ld: %s\n", round, r.error.message[0] ? r.error.message : strerror(-rc));
	rc = rc < 0 ? rc : r.error.code;
	agree_owned_result_done(&r);
	return rc;
}

/* Commits f/round = round. */
int bf_commit(long round, int64_t *took_ns) {
	return bf_propose(set_round, &round, round, took_ns);
}

/* ---- /proc and /metrics ------------------------------------------------------ */

/* CPU time pid has used, in ns: for a single-threaded process (corrald)
 * /proc/PID/schedstat's first field (exact, but the main thread's only);
 * else utime + stime from /proc/PID/stat (all threads, 10 ms ticks). 0 when
 * gone. */
uint64_t bf_cpu_ns(pid_t pid) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
	_cleanup_free_ char *status = hx_read_file(path, NULL);
	const char *th = status ? strstr(status, "Threads:") : NULL;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int) pid);
	_cleanup_free_ char *sched = th && atol(th + 8) == 1 ? hx_read_file(path, NULL) : NULL;
	if (sched)
		return strtoull(sched, NULL, 10);
	snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
	_cleanup_free_ char *stat = hx_read_file(path, NULL);
	const char *p = stat ? strrchr(stat, ')') : NULL;
	unsigned long long ut = 0, st = 0;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * (1000000000 / (uint64_t) sysconf(_SC_CLK_TCK));
}

/* VmRSS and RssAnon of pid in KiB (-1 when unknown). */
void bf_rss(pid_t pid, long *rss, long *anon) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
	_cleanup_free_ char *st = hx_read_file(path, NULL);
	const char *r = st ? strstr(st, "VmRSS:") : NULL, *a = st ? strstr(st, "RssAnon:") : NULL;
	*rss = r ? atol(r + 6) : -1;
	*anon = a ? atol(a + 8) : -1;
}

const char *const bf_kinds[BF_KINDS] = { "Range", "Txn", "Put", "DeleteRange", "LeaseGrant", "LeaseKeepAlive",
					 "Watch" };

/* Requests etcd received, by kind: grpc_server_msg_received_total per
 * method (a unary call is one message; on the streams, one keepalive and
 * one watch create/cancel each), and watch responses etcd sent
 * (msg_sent_total of Watch: events and progress), the time etcd spent on
 * unary calls (grpc_server_handling_seconds, with --metrics=extensive) and
 * on WAL fsyncs. The v3 gateway corrald talks to goes through the same gRPC
 * server, so its calls count too. */
int bf_metrics(bf_counts *c) {
	_cleanup_free_ char *body = NULL;
	long code = 0;

	*c = (bf_counts){};
	if (hx_etcd_request(B.etcd, 0, "/metrics", NULL, &body, &code) < 0 || code != 200)
		return -EIO;
	for (char *line = body; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		bool recv = strncmp(line, "grpc_server_msg_received_total{", 31) == 0,
		     sent = strncmp(line, "grpc_server_msg_sent_total{", 27) == 0,
		     hsum = strncmp(line, "grpc_server_handling_seconds_sum{", 33) == 0,
		     hcount = strncmp(line, "grpc_server_handling_seconds_count{", 35) == 0;
		const char *m = recv || sent || hsum || hcount ? strstr(line, "grpc_method=\"") : NULL,
			   *v = strrchr(line, ' ');
		if (v && strncmp(line, "etcd_disk_wal_fsync_duration_seconds_sum ", 41) == 0)
			c->fsync_s += strtod(v + 1, NULL);
		else if (v && strncmp(line, "etcd_disk_wal_fsync_duration_seconds_count ", 43) == 0)
			c->fsyncs += strtod(v + 1, NULL);
		if (m && v) {
			m += 13;
			size_t mlen = strcspn(m, "\"");
			for (unsigned k = 0; k < BF_KINDS; k++)
				if (strlen(bf_kinds[k]) == mlen && strncmp(m, bf_kinds[k], mlen) == 0) {
					double x = strtod(v + 1, NULL);
					if (recv)
						c->v[k] += x;
					else if (sent && k == BF_WATCH)
						c->watch_sent += x;
					else if (hsum)
						c->handling_s[k] += x;
					else if (hcount)
						c->handled[k] += x;
				}
		}
		line = next;
	}
	return 0;
}

/* Samples /metrics every 250 ms (running the loop) until Range, Txn and Put
 * stood still over one interval, or max_usec: the commit's trailing
 * requests (status puts, re-reads) are in. */
void bf_metrics_settle(bf_counts *c, uint64_t max_usec) {
	bf_counts prev;
	int64_t end = mono_ns() + (int64_t) max_usec * 1000;

	(void) bf_metrics(&prev);
	while (!B.stop && mono_ns() < end) {
		bf_run_for(250 * USEC_PER_MSEC);
		(void) bf_metrics(c);
		if (c->v[BF_RANGE] == prev.v[BF_RANGE] && c->v[BF_TXN] == prev.v[BF_TXN] &&
		    c->v[BF_PUT] == prev.v[BF_PUT])
			return;
		prev = *c;
	}
	*c = prev;
}

/* ---- set-up ------------------------------------------------------------------- */

int bf_setup_common(void) {
	struct rlimit rl;

	/* etcd inherits this: N nodes hold a few connections each. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	B.deadline_ns = mono_ns() + (int64_t) env_int("BENCH_DEADLINE", 480) * 1000000000;
	hx_etcd_options eo = { .extra_args = (char *const[]){ "--log-level=warn", "--metrics=extensive", NULL } };
	if (hx_etcd_start(&B.etcd, &eo) < 0)
		return -1;
	B.dir = hx_mkdtemp("bench-fanout");
	B.prefix = keys_prefix_for_cluster(BF_CLUSTER);
	_cleanup_free_ char *logs = hx_fmt("%s/logs", B.dir);
	if (!B.dir || !B.prefix || mkdir(logs, 0755) < 0)
		return -1;
	char *const eps[] = { (char *) hx_etcd_endpoint(B.etcd, 0), NULL };
	/* Patient: at N=1000 etcd can take seconds to answer, and the
	 * benchmark's own commits must not be what fails. */
	etcd_options o = { .endpoints = eps, .request_timeout_usec = 60 * USEC_PER_SEC,
			   .attempt_timeout_usec = 30 * USEC_PER_SEC };
	if (sd_event_new(&B.event) < 0 || etcd_client_new(&B.client, B.event, &o) < 0)
		return -1;
	B.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (B.ino < 0 || sd_event_add_io(B.event, &B.ino_src, B.ino, EPOLLIN, on_inotify, NULL) < 0)
		return -1;
	/* The first snapshot: the file's one leaf, round 0. */
	return bf_commit(0, NULL) < 0 ? -1 : 0;
}

/* A node: id, directory <dir>/<id>/ holding only its rendered file, config
 * and log under <dir>/logs/. more: YAML appended to its config. */
int bf_node_init(bf_node *n, unsigned i, const char *more) {
	n->id = hx_fmt(BF_ID_STEM "%04u", i + 1);
	n->dir = hx_fmt("%s/%s", B.dir, n->id);
	n->base = strdup(BF_FILE ".json");
	n->file = hx_fmt("%s/%s", n->dir, n->base);
	n->cfg = hx_fmt("%s/logs/%s.yaml", B.dir, n->id);
	n->log = hx_fmt("%s/logs/%s.log", B.dir, n->id);
	if (!n->base || mkdir(n->dir, 0755) < 0)
		return -1;
	/* Addresses 127.1.x.y: loopback, distinct, never bound (nothing listens). */
	_cleanup_free_ char *text =
		hx_fmt("cluster: " BF_CLUSTER "\nnode_id: %s\naddress: 127.1.%u.%u\nservices: [Worker]\n"
		       "log_level: warning\netcd:\n  endpoints: [%s]\n"
		       "files:\n  " BF_FILE ":\n    path: %s\n%s",
		       n->id, i / 250, i % 250 + 1, hx_etcd_endpoint(B.etcd, 0), n->file, more ? more : "");
	return hx_write_file(n->cfg, text) < 0 || bf_watch(n) < 0 ? -1 : 0;
}

/* corrald's debounce and max_wait: BENCH_DEBOUNCE (else def) and
 * BENCH_MAX_WAIT (else 1s), as YAML lines. */
const char *bf_debounce_yaml(const char *def) {
	static char yaml[128];
	snprintf(yaml, sizeof yaml, "debounce: %s\nmax_wait: %s\n", getenv("BENCH_DEBOUNCE") ?: def,
		 getenv("BENCH_MAX_WAIT") ?: "1s");
	return yaml;
}

int bf_node_start(bf_node *n) {
	return hx_corrald_spawn(&n->proc, n->cfg, NULL, n->log);
}

void bf_node_done(bf_node *n) {
	n->proc = hx_proc_free(n->proc);
	free(n->id);
	free(n->dir);
	free(n->base);
	free(n->file);
	free(n->cfg);
	free(n->log);
}

/* Stops every process: SIGTERM to all first (so N nodes stop in parallel),
 * then each reaped; etcd last. */
void bf_teardown(bf_node *nodes, size_t n) {
	for (size_t i = 0; nodes && i < n; i++)
		if (nodes[i].proc)
			(void) hx_proc_signal(nodes[i].proc, SIGTERM);
	for (size_t i = 0; nodes && i < n; i++)
		bf_node_done(&nodes[i]);
	B.client = etcd_client_free(B.client);
	B.ino_src = sd_event_source_disable_unref(B.ino_src);
	B.event = sd_event_unref(B.event);
	if (B.ino >= 0)
		close(B.ino);
	B.etcd = hx_etcd_free(B.etcd);
	if (B.dir)
		hx_rm_tmp(B.dir);
	free(B.dir);
	free(B.prefix);
	free(B.wd_node);
	free(B.all);
}

/* p-th percentile (0..100) of sorted v[0..n). */
int64_t bf_pct(const int64_t *v, size_t n, unsigned p) {
	size_t k = n * p / 100;
	return n ? v[k < n ? k : n - 1] : 0;
}

double bf_ms(int64_t ns) {
	return (double) ns / 1e6;
}
