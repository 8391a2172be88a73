/* test_chaos.c — the fault suite: three corrald on a three-member etcd,
 * concurrent `corralctl config set` writers, a reader that parses every
 * rendered file it can catch, and faults from a schedule that is a pure
 * function of a seed (CORRAL_CHAOS_SEED, else the clock; printed first so a
 * failure can be replayed) and of the enabled kinds (CORRAL_CHAOS_FAULTS).
 * When the faults are over and healed it checks: no acknowledged write
 * lost, no invalid file ever read, every node's file equal to the export of
 * `current`, status applied == current everywhere, every node in the
 * topology list, one leader holding the fence, no corrald crash.
 * docs/testing.md, "The fault suite", says how to run and replay it.
 *
 * The test drives everything from one polling loop (no threads): writers
 * and the fault's steps advance a little each tick of 10 ms. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "harness.h"

#define NODES 3
#define MEMBERS 3
#define WRITERS 3
#define KEYS_PER_WRITER 4
#define MAX_PENDING 256
#define TICK_USEC (10 * USEC_PER_MSEC)
#define WRITE_TIMEOUT_USEC (20 * USEC_PER_SEC)
#define CONVERGE_USEC (40 * USEC_PER_SEC)
#define SETTLE_USEC (10 * USEC_PER_SEC)
#define LEASE_TTL_MS 2000       /* hx_write_corrald_config_full's lease_ttl */
#define LEADER_OVERLAP_MAX_MS 500
#define RENDER_FS_SIZE "1m"

/* ---- fault kinds ---------------------------------------------------------------- */

typedef enum fault_kind {
	F_KILL_ETCD,            /* kill -9 a member (the raft leader or another), restart it */
	F_STOP_ETCD,            /* SIGSTOP a member for about one lease TTL, then SIGCONT */
	F_KILL_RENDER,          /* kill -9 a corrald while its slowed check holds a staged file */
	F_KILL_CAS,             /* kill -9 a corrald (the leader: upkeep) and again just after its restart (join) */
	F_KILL_CTL,             /* kill -9 a corralctl config set a few ms into its commit */
	F_STOP_LEADER,          /* SIGSTOP the leading corrald past its lease TTL, then SIGCONT */
	F_LEASE_REVOKE,         /* revoke a node's lease, or the leader key's */
	F_DIR_RO,               /* remount a node's render dir read-only */
	F_DIR_FULL,             /* fill a node's render dir (a 1 MiB tmpfs) */
	_F_MAX,
} fault_kind;

static const char *const fault_names[_F_MAX] = {
	[F_KILL_ETCD] = "kill_etcd",
	[F_STOP_ETCD] = "stop_etcd",
	[F_KILL_RENDER] = "kill_corrald_render",
	[F_KILL_CAS] = "kill_corrald_cas",
	[F_KILL_CTL] = "kill_ctl",
	[F_STOP_LEADER] = "stop_leader",
	[F_LEASE_REVOKE] = "lease_revoke",
	[F_DIR_RO] = "dir_ro",
	[F_DIR_FULL] = "dir_full",
};

/* The kinds `make check` runs when CORRAL_CHAOS_FAULTS is unset: every one. */
#define DEFAULT_FAULTS "all"

/* One scheduled fault. target < 0: whoever leads when it starts (the raft
 * leader, the leading corrald, the leader key's lease). */
typedef struct fault {
	fault_kind kind;
	uint64_t at_ms;         /* from the start of the fault phase */
	int target;
	unsigned dur_ms;        /* how long it lasts */
	unsigned delay_ms;      /* kind-specific: when a kill lands (kill_ctl:
	                           per mille of the last acknowledged write's time) */
	/* run time */
	int phase;
	uint64_t t;
	int resolved;
} fault;

/* ---- the schedule: a pure function of (seed, enabled kinds, length) ----------- */

static uint64_t splitmix64(uint64_t *s) {
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rnd(uint64_t *s, unsigned lo, unsigned hi) {      /* [lo, hi] */
	return lo + (unsigned) (splitmix64(s) % (hi - lo + 1));
}

static size_t make_schedule(uint64_t seed, const bool enabled[_F_MAX], uint64_t run_ms, fault *out, size_t max) {
	fault_kind kinds[_F_MAX];
	size_t nk = 0, n = 0;
	uint64_t s = seed, t = 2000;

	for (int k = 0; k < _F_MAX; k++)
		if (enabled[k])
			kinds[nk++] = k;
	if (nk == 0)
		return 0;
	while (t + 1000 < run_ms && n < max) {
		fault f = { .kind = kinds[rnd(&s, 0, nk - 1)], .at_ms = t };
		switch (f.kind) {
		case F_KILL_ETCD:
			f.target = rnd(&s, 0, 1) ? -1 : (int) rnd(&s, 0, MEMBERS - 1);
			f.dur_ms = rnd(&s, 500, 3000);
			break;
		case F_STOP_ETCD:
			f.target = rnd(&s, 0, 1) ? -1 : (int) rnd(&s, 0, MEMBERS - 1);
			f.dur_ms = rnd(&s, LEASE_TTL_MS + 500, LEASE_TTL_MS + 2000);
			break;
		case F_KILL_RENDER:
			f.target = rnd(&s, 0, NODES - 1);
			f.dur_ms = rnd(&s, 200, 2000);
			break;
		case F_KILL_CAS:
			f.target = rnd(&s, 0, 2) ? -1 : (int) rnd(&s, 0, NODES - 1);
			f.dur_ms = rnd(&s, 200, 1500);
			f.delay_ms = rnd(&s, 20, 400);
			break;
		case F_KILL_CTL:
			f.dur_ms = 300;
			f.delay_ms = rnd(&s, 100, 700);
			break;
		case F_STOP_LEADER:
			f.target = -1;
			f.dur_ms = rnd(&s, LEASE_TTL_MS + 1000, LEASE_TTL_MS + 2500);
			break;
		case F_LEASE_REVOKE:
			f.target = rnd(&s, 0, 2) ? (int) rnd(&s, 0, NODES - 1) : -1;
			f.dur_ms = 1000;
			break;
		case F_DIR_RO:
		case F_DIR_FULL:
			f.target = rnd(&s, 0, NODES - 1);
			f.dur_ms = rnd(&s, 1000, 3000);
			break;
		default:
			break;
		}
		out[n++] = f;
		t += f.dur_ms + rnd(&s, 1500, 4000);
	}
	return n;
}

/* ---- run state ---------------------------------------------------------------- */

typedef struct cnode {
	char id[8], address[16];
	char *dir, *rdir, *cfg, *log, *file, *slow;
	char metrics_url[64];
	hx_proc *proc;
	bool stopped;           /* SIGSTOPped by us */
	bool mounted, readonly;
	char *filler;           /* a file filling rdir, or NULL */
} cnode;

typedef struct key_state {
	long acked;                     /* last acknowledged value, 0: none */
	long pending[MAX_PENDING];      /* attempted since then, not acknowledged */
	size_t n_pending;
} key_state;

typedef struct writer {
	hx_proc *proc;
	unsigned key;
	long value;
	uint64_t started, next_at;
	char *log;
	key_state keys[KEYS_PER_WRITER];
} writer;

typedef struct stats {
	unsigned faults[_F_MAX], skipped[_F_MAX];
	unsigned attempted, acked, failed, timeouts, ctl_killed, ctl_done_before_kill;
	unsigned reads, invalid_reads;
	unsigned leader_samples, double_leader_samples, overlap_ms_max;
} stats;

static hx_etcd *etcd;
static char *dir;
static cnode nodes[NODES];
static writer writers[WRITERS];
static bool member_down[MEMBERS], member_stopped[MEMBERS];
static stats st;
static bool writers_paused;
static char *problems;                  /* one line per failed check */
static unsigned n_problems;
static uint64_t writer_seed;
static uint64_t overlap_since;
static bool no_mounts;                  /* not root: no tmpfs per node */
static uint64_t last_write_usec;        /* how long the last acknowledged write took */

static void problem(const char *f, ...) _printf_(1, 2);
static void problem(const char *f, ...) {
	va_list ap;
	_cleanup_free_ char *line = NULL, *old = problems;
	va_start(ap, f);
	cr_assert_geq(vasprintf(&line, f, ap), 0);
	va_end(ap);
	fprintf(stderr, "chaos: FAIL: %s\n", line);
	problems = hx_fmt("%s%s\n", old ? old : "", line);
	n_problems++;
}

static uint64_t now_ms(void) {
	return hx_now_usec() / USEC_PER_MSEC;
}

/* ---- etcd access that avoids members we stopped --------------------------------- */

static int live_member(void) {
	for (unsigned m = 0; m < MEMBERS; m++)
		if (!member_down[m] && !member_stopped[m])
			return (int) m;
	return -1;
}

/* The key's kv (new reference) from /v3/kv/range, or NULL when absent. */
static json_t *range_kv(const char *key) {
	int m = live_member();
	if (m < 0)
		return NULL;
	_cleanup_free_ char *k64 = b64_encode(key, strlen(key));
	_cleanup_free_ char *body = hx_fmt("{\"key\":\"%s\"}", k64), *out = NULL;
	long code = 0;
	if (hx_etcd_request(etcd, (unsigned) m, "/v3/kv/range", body, &out, &code) < 0 || code != 200)
		return NULL;
	json_auto_t *reply = json_loads(out, 0, NULL);
	json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
	return kv ? json_incref(kv) : NULL;
}

static char *kv_value(json_t *kv) {
	const char *v = json_string_value(json_object_get(kv, "value"));
	char *out = NULL;
	size_t len;
	if (!v || b64_decode(v, strlen(v), &out, &len) < 0)
		return NULL;
	return out;
}

/* The leading corrald's index by the leader key (-1: none), and the key's
 * create_revision (the fencing token) in *token. */
static int leader_node(long long *token) {
	json_auto_t *kv = range_kv("/corral/t/leader");
	_cleanup_free_ char *v = kv_value(kv);
	json_auto_t *rec = v ? json_loads(v, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(rec, "node_id"));
	if (token)
		*token = kv ? atoll(json_string_value(json_object_get(kv, "create_revision")) ?: "0") : 0;
	for (int i = 0; id && i < NODES; i++)
		if (streq(nodes[i].id, id))
			return i;
	return -1;
}

static int corralctl(char **out, char *const args[]) {
	return hx_corralctl(hx_etcd_endpoints(etcd), out, args);
}

/* Starts `corralctl config set path value`, its output to log. */
static void spawn_set(hx_proc **out, const char *path, const char *value, const char *log) {
	_cleanup_strv_free_ char **argv =
		hx_corralctl_argv(hx_etcd_endpoints(etcd), (char *const[]){ "config", "set", (char *) path, (char *) value, NULL });
	cr_assert_not_null(argv);
	cr_assert_eq(hx_proc_spawn(out, argv, NULL, log), 0);
}

/* ---- corrald ---------------------------------------------------------------- */

static void spawn_node(cnode *n) {
	_cleanup_free_ char *bin = hx_fmt("%s/corrald", hx_builddir());
	char *const argv[] = { bin, "--config", n->cfg, NULL };
	cr_assert_null(n->proc);
	cr_assert_eq(hx_proc_spawn(&n->proc, argv, NULL, n->log), 0);
}

static void kill_node(cnode *n) {
	if (!n->proc)
		return;
	if (n->stopped)
		(void) hx_proc_signal(n->proc, SIGCONT);
	n->stopped = false;
	(void) hx_proc_signal(n->proc, SIGKILL);
	(void) hx_proc_wait(n->proc, 5 * USEC_PER_SEC, NULL);
	n->proc = hx_proc_free(n->proc);
}

static void remount(cnode *n, bool ro) {
	if (mount(NULL, n->rdir, NULL, MS_REMOUNT | (ro ? MS_RDONLY : 0), "size=" RENDER_FS_SIZE) < 0)
		cr_assert_fail("remount %s %s: %m", n->rdir, ro ? "ro" : "rw");
	n->readonly = ro;
}

/* Writes zeros to n->filler until the file system is full. */
static void fill(cnode *n) {
	static const char zeros[4096];
	n->filler = hx_fmt("%s/filler", n->rdir);
	int fd = open(n->filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %m", n->filler);
	while (write(fd, zeros, sizeof zeros) > 0)
		;
	cr_assert_eq(errno, ENOSPC, "filling %s: %m", n->rdir);
	close(fd);
}

static void unfill(cnode *n) {
	if (!n->filler)
		return;
	(void) unlink(n->filler);
	free(n->filler);
	n->filler = NULL;
}

/* ---- writers ---------------------------------------------------------------- */

static void key_path(char *buf, size_t len, unsigned w, unsigned k) {
	snprintf(buf, len, "app/w%u/k%u", w, k);
}

static void writer_done(writer *w, unsigned idx, int status) {
	key_state *ks = &w->keys[w->key];
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	char path[32];
	key_path(path, sizeof path, idx, w->key);
	if (ok) {
		st.acked++;
		last_write_usec = hx_now_usec() - w->started;
		ks->acked = w->value;
		ks->n_pending = 0;
	} else {
		st.failed++;
		cr_assert_lt(ks->n_pending, MAX_PENDING);
		ks->pending[ks->n_pending++] = w->value;
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			problem("corralctl (writer %u) died of signal %d", idx, WTERMSIG(status));
	}
	FILE *f = fopen(w->log, "a");
	if (f) {
		fprintf(f, "%s %ld %s\n", path, w->value, ok ? "ack" : "fail");
		fclose(f);
	}
	w->proc = hx_proc_free(w->proc);
	w->next_at = now_ms() + rnd(&writer_seed, 30, 200);
}

static void writers_step(void) {
	for (unsigned i = 0; i < WRITERS; i++) {
		writer *w = &writers[i];
		int status;
		if (w->proc) {
			if (hx_proc_wait(w->proc, 0, &status) == 0)
				writer_done(w, i, status);
			else if (hx_now_usec() - w->started > WRITE_TIMEOUT_USEC) {
				st.timeouts++;
				(void) hx_proc_signal(w->proc, SIGKILL);
				(void) hx_proc_wait(w->proc, 5 * USEC_PER_SEC, &status);
				writer_done(w, i, status);
			}
			continue;
		}
		if (writers_paused || now_ms() < w->next_at)
			continue;
		w->key = (w->key + 1) % KEYS_PER_WRITER;
		w->value++;
		char path[32], value[32];
		key_path(path, sizeof path, i, w->key);
		snprintf(value, sizeof value, "%ld", w->value);
		_cleanup_free_ char *log = hx_fmt("%s.out", w->log);
		spawn_set(&w->proc, path, value, log);
		w->started = hx_now_usec();
		st.attempted++;
	}
}

static bool writers_idle(void) {
	for (unsigned i = 0; i < WRITERS; i++)
		if (writers[i].proc)
			return false;
	return true;
}

/* ---- observers: the reader, the leader sampler, crashes ------------------------- */

static void reader_step(void) {
	for (unsigned i = 0; i < NODES; i++) {
		size_t len;
		_cleanup_free_ char *text = hx_read_file(nodes[i].file, &len);
		if (!text)
			continue;       /* not rendered yet */
		st.reads++;
		json_error_t e;
		json_auto_t *v = json_loadb(text, len, 0, &e);
		if (!v) {
			if (st.invalid_reads++ == 0)
				problem("%s: read an invalid file (%s): %.200s", nodes[i].id, e.text, text);
		}
	}
}

static int metrics_leader(cnode *n) {
	if (!n->proc || n->stopped)
		return -1;
	_cleanup_free_ char *out = NULL;
	long code = 0;
	hx_http_req req = { .url = n->metrics_url, .timeout_ms = 300 };
	if (hx_http(&req, &out, &code) < 0 || code != 200)
		return -1;
	return strstr(out, "\ncorral_leader 1\n") != NULL;
}

static void leader_step(void) {
	static uint64_t last;
	unsigned leaders = 0;
	uint64_t now = now_ms();
	if (now - last < 200)
		return;
	last = now;
	for (unsigned i = 0; i < NODES; i++)
		leaders += metrics_leader(&nodes[i]) == 1;
	st.leader_samples++;
	if (leaders > 1) {
		st.double_leader_samples++;
		if (!overlap_since)
			overlap_since = now;
		unsigned ms = (unsigned) (now - overlap_since);
		if (ms > st.overlap_ms_max)
			st.overlap_ms_max = ms;
	} else
		overlap_since = 0;
}

static void crash_step(void) {
	for (unsigned i = 0; i < NODES; i++) {
		cnode *n = &nodes[i];
		int status;
		if (!n->proc || n->stopped || hx_proc_wait(n->proc, 0, &status) < 0)
			continue;
		problem("%s: corrald exited on its own (%s %d); restarting it", n->id,
			WIFSIGNALED(status) ? "signal" : "status",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		hx_log_tail(n->log, 30);
		n->proc = hx_proc_free(n->proc);
		spawn_node(n);
	}
}

static void tick(void) {
	writers_step();
	reader_step();
	leader_step();
	crash_step();
	usleep(TICK_USEC);
}

/* ---- convergence ---------------------------------------------------------------- */

static char *export_app(void) {
	char *out = NULL;
	if (corralctl(&out, (char *const[]){ "config", "export", "app", NULL }) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static bool node_file_is(cnode *n, const char *want) {
	_cleanup_free_ char *text = hx_read_file(n->file, NULL);
	return text && want && streq(text, want);
}

static json_t *status_of(cnode *n) {
	_cleanup_free_ char *key = hx_fmt("/corral/t/status/%s", n->id);
	json_auto_t *kv = range_kv(key);
	_cleanup_free_ char *v = kv_value(kv);
	return v ? json_loads(v, 0, NULL) : NULL;
}

static bool status_current(cnode *n, const char *cur) {
	json_auto_t *s = status_of(n);
	return cur && s && streq_ptr(json_string_value(json_object_get(s, "applied")), cur) &&
	       json_is_true(json_object_get(s, "ok"));
}

static char *current_id(void) {
	json_auto_t *kv = range_kv("/corral/t/current");
	return kv_value(kv);
}

/* Every node's address once in app/workers of the export. */
static bool workers_complete(const char *exported) {
	json_auto_t *doc = exported ? json_loads(exported, 0, NULL) : NULL;
	json_t *w = json_object_get(doc, "workers");
	if (json_array_size(w) != NODES)
		return false;
	for (unsigned i = 0; i < NODES; i++) {
		bool found = false;
		size_t k;
		json_t *e;
		json_array_foreach(w, k, e)
			found = found || streq_ptr(json_string_value(json_array_get(e, 0)), nodes[i].address);
		if (!found)
			return false;
	}
	return true;
}

static bool converged(void *ud) {
	(void) ud;
	tick();
	_cleanup_free_ char *cur = current_id(), *want = export_app();
	if (!want || !workers_complete(want))
		return false;
	for (unsigned i = 0; i < NODES; i++)
		if (!node_file_is(&nodes[i], want) || !status_current(&nodes[i], cur))
			return false;
	return true;
}

/* Node n's file is the export of current (writers paused), within SETTLE. */
static bool node_settled(void *ud) {
	cnode *n = ud;
	tick();
	_cleanup_free_ char *want = export_app();
	return node_file_is(n, want);
}

/* ---- fault steps: each returns true when the fault is over and healed ---------- */

static bool staged_file_in(const char *d) {
	DIR *dh = opendir(d);
	struct dirent *de;
	bool found = false;
	while (dh && (de = readdir(dh)))
		found = found || strncmp(de->d_name, ".app.json.corral-", 17) == 0;
	if (dh)
		closedir(dh);
	return found;
}

static int resolve_member(int target) {
	unsigned m;
	if (target >= 0)
		return target;
	uint64_t deadline = hx_now_usec() + 3 * USEC_PER_SEC;
	while (hx_etcd_leader(etcd, &m) < 0) {
		if (hx_now_usec() > deadline)
			return 0;
		tick();
	}
	return (int) m;
}

static int resolve_node(int target) {
	if (target >= 0)
		return target;
	uint64_t deadline = hx_now_usec() + 3 * USEC_PER_SEC;
	int i;
	while ((i = leader_node(NULL)) < 0 || !nodes[i].proc) {
		if (hx_now_usec() > deadline)
			return 0;
		tick();
	}
	return i;
}

/* n's status: target is current, not applied, an error. */
static bool failed_current(cnode *n) {
	_cleanup_free_ char *cur = current_id();
	json_auto_t *s = status_of(n);
	return cur && s && streq_ptr(json_string_value(json_object_get(s, "target")), cur) &&
	       !json_is_true(json_object_get(s, "ok")) && json_string_value(json_object_get(s, "error"));
}

static bool elapsed(const fault *f, unsigned ms) {
	return now_ms() - f->t >= ms;
}

static bool lease_revoke(fault *f) {
	_cleanup_free_ char *key = f->resolved >= 0 ? hx_fmt("/corral/t/nodes/%s", nodes[f->resolved].id)
						    : strdup("/corral/t/leader");
	json_auto_t *kv = range_kv(key);
	const char *lease = json_string_value(json_object_get(kv, "lease"));
	if (!lease || streq(lease, "0"))
		return false;
	_cleanup_free_ char *body = hx_fmt("{\"ID\":\"%s\"}", lease), *out = NULL;
	long code = 0;
	int m = live_member();
	return m >= 0 && hx_etcd_request(etcd, (unsigned) m, "/v3/lease/revoke", body, &out, &code) == 0 &&
	       code == 200;
}

static bool fault_step(fault *f) {
	cnode *n = f->resolved >= 0 && f->resolved < NODES ? &nodes[f->resolved] : NULL;

	switch (f->kind) {
	case F_KILL_ETCD:
		if (f->phase == 0) {
			f->resolved = resolve_member(f->target);
			cr_assert_eq(hx_etcd_stop_member(etcd, (unsigned) f->resolved, SIGKILL), 0);
			member_down[f->resolved] = true;
			break;
		}
		if (!elapsed(f, f->dur_ms))
			return false;
		cr_assert_eq(hx_etcd_start_member(etcd, (unsigned) f->resolved), 0, "etcd member did not restart");
		member_down[f->resolved] = false;
		return true;

	case F_STOP_ETCD:
		if (f->phase == 0) {
			f->resolved = resolve_member(f->target);
			cr_assert_eq(kill(hx_etcd_member_pid(etcd, (unsigned) f->resolved), SIGSTOP), 0);
			member_stopped[f->resolved] = true;
			break;
		}
		if (!elapsed(f, f->dur_ms))
			return false;
		cr_assert_eq(kill(hx_etcd_member_pid(etcd, (unsigned) f->resolved), SIGCONT), 0);
		member_stopped[f->resolved] = false;
		return true;

	case F_KILL_RENDER:
		if (f->phase == 0) {
			f->resolved = f->target;
			n = &nodes[f->resolved];
			cr_assert_eq(hx_write_file(n->slow, "1\n"), 0);
			break;
		}
		if (f->phase == 1) {
			/* Its check now sleeps: wait for a staged file, then kill. */
			if (!staged_file_in(n->rdir)) {
				if (!elapsed(f, 8000))
					return false;
				unlink(n->slow);
				st.skipped[f->kind]++;
				return true;
			}
			kill_node(n);
			unlink(n->slow);
			break;
		}
		if (!elapsed(f, f->dur_ms))
			return false;
		spawn_node(n);
		return true;

	case F_KILL_CAS:
		if (f->phase == 0) {
			f->resolved = resolve_node(f->target);
			n = &nodes[f->resolved];
			kill_node(n);
			spawn_node(n);
			break;
		}
		if (f->phase == 1) {
			/* delay_ms after the restart: its registration and join. */
			if (!elapsed(f, f->delay_ms))
				return false;
			kill_node(n);
			break;
		}
		if (!elapsed(f, f->dur_ms))
			return false;
		spawn_node(n);
		return true;

	case F_KILL_CTL: {
		static hx_proc *ctl;
		static unsigned seq;
		if (f->phase == 0) {
			char path[32], value[32];
			snprintf(path, sizeof path, "app/killed/k%u", seq % 4);
			snprintf(value, sizeof value, "%u", ++seq);
			_cleanup_free_ char *log = hx_fmt("%s/killed-ctl.log", dir);
			spawn_set(&ctl, path, value, log);
			break;
		}
		if (f->phase == 1) {
			/* A fraction of what a write takes: inside its commit.
			 * Slept here, not ticked: a tick may take longer. */
			uint64_t at = f->t * USEC_PER_MSEC + last_write_usec * f->delay_ms / 1000, now = hx_now_usec();
			if (at > now)
				usleep((useconds_t) (at - now));
			if (hx_proc_running(ctl)) {
				(void) hx_proc_signal(ctl, SIGKILL);
				st.ctl_killed++;
			} else
				st.ctl_done_before_kill++;
			(void) hx_proc_wait(ctl, 5 * USEC_PER_SEC, NULL);
			ctl = hx_proc_free(ctl);
			break;
		}
		return elapsed(f, f->dur_ms);
	}

	case F_STOP_LEADER:
		if (f->phase == 0) {
			f->resolved = resolve_node(f->target);
			n = &nodes[f->resolved];
			cr_assert_eq(hx_proc_signal(n->proc, SIGSTOP), 0);
			n->stopped = true;
			break;
		}
		if (!elapsed(f, f->dur_ms))
			return false;
		cr_assert_eq(hx_proc_signal(n->proc, SIGCONT), 0);
		n->stopped = false;
		return true;

	case F_LEASE_REVOKE:
		if (f->phase == 0) {
			f->resolved = f->target;
			if (!lease_revoke(f))
				st.skipped[f->kind]++;
			break;
		}
		return elapsed(f, f->dur_ms);

	case F_DIR_RO:
	case F_DIR_FULL:
		if (f->phase == 0) {
			f->resolved = f->target;
			n = &nodes[f->resolved];
			if (f->kind == F_DIR_RO)
				remount(n, true);
			else
				fill(n);
			break;
		}
		if (f->phase == 1) {
			/* Writers went on meanwhile; now hold them, so the node
			 * has nothing new to apply but what failed. */
			if (!elapsed(f, f->dur_ms))
				return false;
			writers_paused = true;
			break;
		}
		if (f->phase == 2) {
			if (!writers_idle())
				return false;
			break;
		}
		if (f->phase == 3) {
			/* Heal once the node has failed to write current (its
			 * status says so), so only a retry can put it in place. */
			if (!failed_current(n) && !elapsed(f, 8000))
				return false;
			if (!failed_current(n))
				st.skipped[f->kind]++;
			if (f->kind == F_DIR_RO)
				remount(n, false);
			else
				unfill(n);
			break;
		}
		/* The write that failed must be retried without a new change. */
		if (!hx_wait_until(node_settled, n, SETTLE_USEC))
			problem("%s: %s: the file was not rewritten within %llu s after its directory healed "
				"(no retry of a failed write)",
				n->id, fault_names[f->kind], (unsigned long long) (SETTLE_USEC / USEC_PER_SEC));
		writers_paused = false;
		return true;

	default:
		return true;
	}
	f->phase++;
	f->t = now_ms();
	return false;
}

/* ---- setup and teardown ---------------------------------------------------------- */

static void setup(void) {
	hx_etcd_options o = { .members = MEMBERS };
	cr_assert_eq(hx_etcd_start(&etcd, &o), 0, "etcd did not start");
	dir = hx_mkdtemp("chaos");
	cr_assert_not_null(dir);

	_cleanup_free_ char *doc = hx_fmt("%s/app.json", dir);
	cr_assert_eq(hx_write_file(doc, "{\"workers\": [], \"w0\": {}, \"w1\": {}, \"w2\": {}, \"killed\": {}}\n"), 0);
	cr_assert_eq(corralctl(NULL, (char *const[]){ "config", "import", "app", doc, NULL }), 0);

	for (unsigned i = 0; i < NODES; i++) {
		cnode *n = &nodes[i];
		snprintf(n->id, sizeof n->id, "n%u", i + 1);
		snprintf(n->address, sizeof n->address, "127.0.0.%u", 31 + i);
		n->dir = hx_fmt("%s/%s", dir, n->id);
		n->rdir = hx_fmt("%s/render", n->dir);
		n->cfg = hx_fmt("%s/corrald.yaml", n->dir);
		n->log = hx_fmt("%s/corrald.log", n->dir);
		n->file = hx_fmt("%s/app.json", n->rdir);
		n->slow = hx_fmt("%s/slow", n->dir);
		cr_assert_eq(mkdir(n->dir, 0755), 0);
		cr_assert_eq(mkdir(n->rdir, 0755), 0);
		/* Its own small file system, so it can be made read-only or full;
		 * without the right to mount, the dir faults are left out. */
		if (mount("tmpfs", n->rdir, "tmpfs", MS_NOSUID | MS_NODEV, "size=" RENDER_FS_SIZE) == 0)
			n->mounted = true;
		else if (!no_mounts) {
			fprintf(stderr, "chaos: cannot mount a tmpfs on %s (%m): dir_ro and dir_full are off\n", n->rdir);
			no_mounts = true;
		}
		int port = hx_free_port();
		cr_assert_gt(port, 0);
		snprintf(n->metrics_url, sizeof n->metrics_url, "http://127.0.0.1:%d/metrics", port);
		_cleanup_free_ char *more = hx_fmt("files:\n"
						"  app:\n"
						"    path: %s\n"
						"    check: '[ ! -e %s ] || sleep 3'\n"
						"topology:\n"
						"  - service: Worker\n"
						"    path: app/workers\n"
						"    value: [\"{address}\", 26000]\n"
						"metrics_listen: 127.0.0.1:%d\n"
						"debounce: 50ms\n"
						"max_wait: 500ms\n"
						/* a dir fault lasts seconds: the default 60 s
						 * cap would outlast the settle deadline */
						"write_retry_max: 2s\n",
						n->file, n->slow, port);
		cr_assert_eq(hx_write_corrald_config_full(n->cfg, n->id, n->address, "Worker", hx_etcd_endpoints(etcd),
							  more), 0);
		spawn_node(n);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		writers[i].log = hx_fmt("%s/writer%u.log", dir, i);
}

static void teardown(void) {
	for (unsigned m = 0; m < MEMBERS; m++)
		if (member_stopped[m] && etcd)
			(void) kill(hx_etcd_member_pid(etcd, m), SIGCONT);
	for (unsigned i = 0; i < WRITERS; i++) {
		writers[i].proc = hx_proc_free(writers[i].proc);
		free(writers[i].log);
	}
	for (unsigned i = 0; i < NODES; i++) {
		cnode *n = &nodes[i];
		if (n->proc && n->stopped)
			(void) hx_proc_signal(n->proc, SIGCONT);
		n->proc = hx_proc_free(n->proc);
		unfill(n);
		if (n->mounted)
			(void) umount2(n->rdir, MNT_DETACH);
		free(n->dir);
		free(n->rdir);
		free(n->cfg);
		free(n->log);
		free(n->file);
		free(n->slow);
	}
	etcd = hx_etcd_free(etcd);
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	free(problems);
}

TestSuite(chaos, .init = setup, .fini = teardown, .timeout = 400);

/* ---- configuration from the environment -------------------------------------------- */

static void parse_faults(const char *spec, bool enabled[_F_MAX]) {
	if (streq(spec, "all")) {
		for (int k = 0; k < _F_MAX; k++)
			enabled[k] = true;
		return;
	}
	_cleanup_free_ char *copy = strdup(spec);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		int k;
		for (k = 0; k < _F_MAX && !streq(t, fault_names[k]); k++)
			;
		cr_assert_lt(k, _F_MAX, "CORRAL_CHAOS_FAULTS: unknown fault kind '%s'", t);
		enabled[k] = true;
	}
}

/* ---- final checks ---------------------------------------------------------------- */

/* Each writer's key holds its last acknowledged value, or a value it tried
 * after that (a failed write may still have committed). */
static unsigned check_writes(json_t *doc) {
	unsigned lost = 0;
	for (unsigned i = 0; i < WRITERS; i++)
		for (unsigned k = 0; k < KEYS_PER_WRITER; k++) {
			key_state *ks = &writers[i].keys[k];
			char name[16], path[32];
			snprintf(name, sizeof name, "w%u", i);
			snprintf(path, sizeof path, "k%u", k);
			json_t *v = json_object_get(json_object_get(doc, name), path);
			long got = json_is_integer(v) ? (long) json_integer_value(v) : 0;
			bool fine = got == ks->acked;
			for (size_t p = 0; p < ks->n_pending && !fine; p++)
				fine = got == ks->pending[p];
			if (!fine) {
				lost++;
				problem("app/w%u/k%u is %ld; last acknowledged %ld (%zu unacknowledged tries since)", i, k,
					got, ks->acked, ks->n_pending);
			}
		}
	return lost;
}

static void check_converged(void) {
	if (hx_wait_until(converged, NULL, CONVERGE_USEC))
		return;
	_cleanup_free_ char *cur = current_id(), *want = export_app();
	if (!workers_complete(want))
		problem("app/workers does not hold every node: %s", want ? want : "(no export)");
	for (unsigned i = 0; i < NODES; i++) {
		cnode *n = &nodes[i];
		if (!node_file_is(n, want)) {
			_cleanup_free_ char *text = hx_read_file(n->file, NULL);
			problem("%s: file is not the export of current %s within %llu s: %.300s", n->id, cur,
				(unsigned long long) (CONVERGE_USEC / USEC_PER_SEC), text ? text : "(none)");
		}
		json_auto_t *s = status_of(n);
		_cleanup_free_ char *stext = s ? json_dumps(s, JSON_COMPACT) : NULL;
		if (!status_current(n, cur))
			problem("%s: status is not applied == current (%s), ok: %.400s", n->id, cur,
				stext ? stext : "(no status record)");
		hx_log_tail(n->log, 15);
	}
}

/* One leader, named by the key, holding the key's token, and no other node
 * claiming leadership. report: say what is wrong (else just answer). */
static bool leader_ok(bool report) {
	long long token = 0;
	int l = leader_node(&token);
	bool ok = true;
	if (l < 0) {
		if (report)
			problem("no leader key naming a node");
		return false;
	}
	for (unsigned i = 0; i < NODES; i++) {
		int says = metrics_leader(&nodes[i]);
		if (says != ((int) i == l)) {
			ok = false;
			if (report)
				problem("%s: corral_leader is %d but the leader key names %s", nodes[i].id, says,
					nodes[l].id);
		}
	}
	/* The holder's latest "became leader (token N)" is the key's token. */
	_cleanup_free_ char *log = hx_read_file(nodes[l].log, NULL);
	const char *p = log, *last = NULL;
	while (p && (p = strstr(p, "became leader (token ")))
		last = p++;
	long long said = last ? atoll(last + strlen("became leader (token ")) : -1;
	if (said != token) {
		ok = false;
		if (report)
			problem("%s leads with token %lld by its log, the key's create_revision is %lld", nodes[l].id,
				said, token);
	}
	return ok;
}

static bool leader_settled(void *ud) {
	(void) ud;
	tick();
	return leader_ok(false);
}

/* A corrald killed just now leaves its key until its lease ends: wait for
 * a hand-over (a few TTLs) before judging. */
static void check_leader(void) {
	if (!hx_wait_until(leader_settled, NULL, 5 * LEASE_TTL_MS * USEC_PER_MSEC))
		(void) leader_ok(true);
	if (st.overlap_ms_max > LEADER_OVERLAP_MAX_MS)
		problem("two nodes reported corral_leader 1 together for %u ms", st.overlap_ms_max);
}

static void check_clean_exit(void) {
	for (unsigned i = 0; i < NODES; i++) {
		cnode *n = &nodes[i];
		int status = 0;
		if (!n->proc)
			continue;
		cr_assert_eq(hx_proc_signal(n->proc, SIGTERM), 0);
		if (hx_proc_wait(n->proc, 10 * USEC_PER_SEC, &status) < 0)
			problem("%s: corrald ignored SIGTERM for 10 s", n->id);
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			problem("%s: corrald exited with status %d on SIGTERM", n->id, status);
		n->proc = hx_proc_free(n->proc);
		_cleanup_free_ char *log = hx_read_file(n->log, NULL);
		if (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error:") || strstr(log, "core dumped")))
			problem("%s: a sanitizer report or core in its log", n->id);
		/* A file staged by a killed corrald is removed by the next write. */
		if (staged_file_in(n->rdir))
			problem("%s: a staged .app.json.corral-* file was left behind", n->id);
	}
}

Test(chaos, seeded_faults) {
	uint64_t t0 = hx_now_usec();
	const char *seed_env = getenv("CORRAL_CHAOS_SEED");
	uint64_t seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t) time(NULL);
	const char *spec = getenv("CORRAL_CHAOS_FAULTS");
	const char *secs = getenv("CORRAL_CHAOS_SECONDS");
	uint64_t run_ms = (secs && *secs ? strtoull(secs, NULL, 10) : 75) * 1000;
	bool enabled[_F_MAX] = {};
	spec = spec && *spec ? spec : DEFAULT_FAULTS;
	/* First thing: what it takes to replay this run. */
	fprintf(stderr, "chaos: CORRAL_CHAOS_SEED=%llu CORRAL_CHAOS_FAULTS=%s CORRAL_CHAOS_SECONDS=%llu\n",
		(unsigned long long) seed, spec, (unsigned long long) (run_ms / 1000));
	parse_faults(spec, enabled);
	if (no_mounts)
		enabled[F_DIR_RO] = enabled[F_DIR_FULL] = false;

	fault schedule[128];
	size_t n_faults = make_schedule(seed, enabled, run_ms, schedule, ELEMENTSOF(schedule));
	for (size_t i = 0; i < n_faults; i++)
		fprintf(stderr, "chaos: schedule %5.1f s %-20s target %d for %u ms (delay %u ms)\n",
			schedule[i].at_ms / 1000.0, fault_names[schedule[i].kind], schedule[i].target, schedule[i].dur_ms,
			schedule[i].delay_ms);
	writer_seed = seed ^ 0x5eed;

	/* Start: every node has rendered the imported config; then writers go. */
	writers_paused = true;
	cr_assert(hx_wait_until(converged, NULL, CONVERGE_USEC), "the nodes did not converge before any fault");
	writers_paused = false;

	uint64_t start = now_ms();
	size_t next = 0;
	fault *active = NULL;
	while (active || now_ms() - start < run_ms) {
		tick();
		if (!active && next < n_faults && now_ms() - start >= schedule[next].at_ms) {
			active = &schedule[next++];
			active->resolved = -1;
			active->t = now_ms();
			fprintf(stderr, "chaos: %5.1f s %s\n", (now_ms() - start) / 1000.0, fault_names[active->kind]);
			st.faults[active->kind]++;
		}
		if (active && fault_step(active))
			active = NULL;
	}

	/* Quiet: writers finish, then everything must converge. */
	writers_paused = true;
	uint64_t deadline = hx_now_usec() + 2 * WRITE_TIMEOUT_USEC;
	while (!writers_idle() && hx_now_usec() < deadline)
		tick();
	cr_assert(writers_idle(), "writers did not finish");
	check_converged();
	_cleanup_free_ char *exported = export_app();
	json_auto_t *doc = exported ? json_loads(exported, 0, NULL) : NULL;
	cr_assert_not_null(doc, "config export app failed");
	unsigned lost = check_writes(doc);
	check_leader();
	if (st.invalid_reads)
		problem("%u of %u reads of rendered files were not valid JSON", st.invalid_reads, st.reads);
	check_clean_exit();

	fprintf(stderr, "chaos: seed %llu faults:", (unsigned long long) seed);
	for (int k = 0; k < _F_MAX; k++)
		if (st.faults[k])
			fprintf(stderr, " %s=%u%s", fault_names[k], st.faults[k], st.skipped[k] ? "(some skipped)" : "");
	fprintf(stderr, "; corralctl killed mid-commit %u (finished first %u; a write took %llu ms)\n", st.ctl_killed,
		st.ctl_done_before_kill, (unsigned long long) (last_write_usec / USEC_PER_MSEC));
	fprintf(stderr, "chaos: seed %llu writes attempted=%u acknowledged=%u failed=%u timed-out=%u lost=%u; "
		"reads=%u invalid=%u; leader samples=%u with two leaders=%u (longest %u ms); problems=%u; %.0f s\n",
		(unsigned long long) seed, st.attempted, st.acked, st.failed, st.timeouts, lost, st.reads,
		st.invalid_reads, st.leader_samples, st.double_leader_samples, st.overlap_ms_max, n_problems,
		(hx_now_usec() - t0) / (double) USEC_PER_SEC);
	cr_assert_eq(n_problems, 0, "seed %llu (replay: CORRAL_CHAOS_SEED=%llu CORRAL_CHAOS_FAULTS=%s):\n%s",
		     (unsigned long long) seed, (unsigned long long) seed, spec, problems);
}
