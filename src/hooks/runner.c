/* runner.c — the node's hooks (hooks.h): follows deployments/ (below,
 * "following") and keeps one task per deployment this node has an order
 * of. A task writes its report "running", runs the hook
 * as a transient unit with its stdout in a file, and writes the report
 * "done" or "failed"; then it looks at the record again (an order that
 * came meanwhile runs next). At most HOOKS_MAX_RUNNING tasks run at once;
 * the others queue in the order they came.
 *
 * A report write that fails is tried again after a jittered back-off until
 * it is stored: the unit never starts before its "running" report is, and
 * the task is not over before its end is. */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backoff.h"
#include "hooks.h"
#include "keys.h"

#define HOOKS_MAX_RUNNING      4
#define HOOKS_RETRY_USEC       (1 * USEC_PER_SEC)
#define HOOKS_RETRY_CAP_USEC   (30 * USEC_PER_SEC)
/* A unit found running after a restart started up to its timeout ago:
 * wait that long and a little more (its own timeout kills it first). */
#define HOOKS_WAIT_MARGIN_USEC (30 * USEC_PER_SEC)
/* Of the stdout file, only the tail is read: the last line is wanted. */
#define HOOKS_TAIL_BYTES       65536
#define HOOKS_OUTPUT_MAX       4096

typedef struct hooks_task hooks_task;

struct hooks_runner {
	sd_event *event;
	etcd_client *etcd;
	units_bus *bus;
	conf *conf;
	hooks_event_cb cb;
	void *userdata;
	char *out_dir;                  /* hooks' stdout files */

	/* following deployments/ */
	char *dep_prefix, *dep_end;     /* deployments/ */
	char *rep_prefix, *rep_end;     /* deployment_reports/ */
	etcd_call *call;                /* the read */
	etcd_watch *watch;
	sd_event_source *retry;
	backoff bo;

	/* the deployments on this host (host = this node, not removed), by
	 * id: hooks_runner_env() */
	char **here_ids, **here_owners;
	size_t n_here;

	/* the orders */
	hooks_task **tasks;             /* deployments this node has or had an order of */
	size_t n_tasks;
	unsigned running;               /* tasks under way */
};

struct hooks_task {
	hooks_runner *h;
	char *id;
	char *text;                     /* the record as last read (JSON) */
	int64_t seq;                    /* its order for us as last read, 0: none */
	deployment_hook hook;
	int64_t ended_seq;              /* our last report that says an order ended */
	int64_t running_seq;            /* our report said running when we started */
	bool busy, queued;

	deployment_report rep;          /* what we write */
	char *run_text;                 /* the record the hook runs with */
	char *unit, *out_path, *key;
	units_job *job;
	etcd_call *call;
	sd_event_source *retry;
	void (*then)(hooks_task *t);
	backoff bo;
};

_printf_(3, 4) static void hooks_emit(hooks_runner *h, const hooks_event *e, const char *fmt, ...) {
	char line[512];
	hooks_event ev = *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ev.line = line;
	if (h->cb)
		h->cb(h, &ev, h->userdata);
}

/* ---- tasks ---- */

static hooks_task *task_free(hooks_task *t) {
	if (!t)
		return NULL;
	units_job_cancel(t->job);
	etcd_call_cancel(t->call);
	sd_event_source_disable_unref(t->retry);
	deployment_report_done(&t->rep);
	free(t->id);
	free(t->text);
	free(t->run_text);
	free(t->unit);
	free(t->out_path);
	free(t->key);
	free(t);
	return NULL;
}

static hooks_task *task_find(hooks_runner *h, const char *id) {
	for (size_t i = 0; i < h->n_tasks; i++)
		if (streq(h->tasks[i]->id, id))
			return h->tasks[i];
	return NULL;
}

static hooks_task *task_get(hooks_runner *h, const char *id) {
	hooks_task *t = task_find(h, id), **grown;

	if (t)
		return t;
	grown = reallocarray(h->tasks, h->n_tasks + 1, sizeof *grown);
	if (!grown)
		return NULL;
	h->tasks = grown;
	t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->h = h;
	t->bo = BACKOFF_INIT(HOOKS_RETRY_USEC, HOOKS_RETRY_CAP_USEC);
	t->id = strdup(id);
	t->key = keys_entry(h->conf->prefix, KEYS_DEPLOYMENT_REPORTS, id);
	if (!t->id || !t->key)
		return task_free(t);
	h->tasks[h->n_tasks++] = t;
	return t;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	hooks_task *t = userdata;

	t->retry = sd_event_source_disable_unref(t->retry);
	t->then(t);
	return 0;
}

static void retry_later(hooks_task *t, void (*again)(hooks_task *t)) {
	t->then = again;
	t->retry = sd_event_source_disable_unref(t->retry);
	if (sd_event_add_time_relative(t->h->event, &t->retry, CLOCK_MONOTONIC, backoff_next(&t->bo, backoff_random()),
				       USEC_PER_MSEC, on_retry, t) < 0)
		hooks_emit(t->h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = t->id, .error = -ENOMEM },
			   "%s: cannot schedule a retry: its order waits for the next change", t->id);
}

/* ---- the report ---- */

static void write_report(hooks_task *t);

static void on_written(etcd_client *c, etcd_response *resp, void *userdata) {
	hooks_task *t = userdata;
	char buf[512];

	t->call = NULL;
	if (resp->error.code < 0) {
		hooks_emit(t->h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = t->id,
						  .error = resp->error.code },
			   "cannot write %s: %s; again after a back-off", t->key,
			   etcd_error_format(&resp->error, buf, sizeof buf));
		etcd_response_free(resp);
		retry_later(t, write_report);
		return;
	}
	etcd_response_free(resp);
	backoff_reset(&t->bo);
	t->then(t);
}

/* Writes t->rep, then t->then. A plain put: the report key is this
 * node's while it has the order (no fence, nobody else writes it). */
static void write_report(hooks_task *t) {
	json_t *j = deployment_report_to_json(&t->rep);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int r = -ENOMEM;

	json_decref(j);
	if (text) {
		etcd_put_req req = { .key = t->key, .value = text };
		r = etcd_put(t->h->etcd, &req, on_written, t, &t->call);
	}
	if (r < 0) {
		hooks_emit(t->h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = t->id, .error = r },
			   "cannot write %s: %s; again after a back-off", t->key, strerror(-r));
		retry_later(t, write_report);
	}
}

static void write_then(hooks_task *t, void (*then)(hooks_task *t)) {
	t->then = then;
	write_report(t);
}

/* ---- the end of an order ---- */

static void consider(hooks_task *t);
static void start_queued(hooks_runner *h);

static void ended(hooks_task *t) {
	hooks_runner *h = t->h;
	deployment_report *rep = &t->rep;
	bool ok = rep->state == DEPLOYMENT_REPORT_DONE;

	if (t->out_path)
		(void) unlink(t->out_path);
	t->ended_seq = rep->seq;
	t->running_seq = 0;
	t->busy = false;
	h->running--;
	hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_DONE, .deployment = t->id, .hook = rep->hook,
				       .seq = rep->seq, .error = ok ? 0 : -EIO },
		   "%s: %s #%lld: %s%s%s%s", t->id, deployment_hook_to_string(rep->hook), (long long) rep->seq,
		   ok ? "done" : "failed: ", ok ? "" : rep->error, ok && rep->output ? ", printed " : "",
		   ok && rep->output ? rep->output : "");
	consider(t);
	start_queued(h);
}

static void finish(hooks_task *t, int error, const char *why, char *output) {
	deployment_report *rep = &t->rep;

	rep->state = error ? DEPLOYMENT_REPORT_FAILED : DEPLOYMENT_REPORT_DONE;
	rep->ended = time(NULL);
	free(rep->output);
	rep->output = output;
	free(rep->error);
	rep->error = error ? strdup(why && *why ? why : "failed") : NULL;
	write_then(t, ended);
}

/* The last non-empty line of the tail of path, NULL when none. */
static char *last_line(const char *path) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	off_t from = st.st_size > HOOKS_TAIL_BYTES ? st.st_size - HOOKS_TAIL_BYTES : 0;
	buf = malloc(HOOKS_TAIL_BYTES + 1);
	if (!buf || (n = pread(fd, buf, HOOKS_TAIL_BYTES, from)) < 0)
		return NULL;
	buf[n] = '\0';
	size_t e = (size_t) n;
	while (e > 0 && strchr(" \t\r\n\v\f", buf[e - 1]))
		e--;
	size_t b = e;
	while (b > 0 && buf[b - 1] != '\n')
		b--;
	while (b < e && strchr(" \t\r\v\f", buf[b]))
		b++;
	if (b == e)
		return NULL;
	return strndup(buf + b, e - b > HOOKS_OUTPUT_MAX ? HOOKS_OUTPUT_MAX : e - b);
}

/* ---- the unit ---- */

static void run_unit(hooks_task *t);

static void on_unit_done(units_job *j, const units_result *r, void *userdata) {
	hooks_task *t = userdata;

	t->job = NULL;
	if (r->action == UNITS_WAIT && r->error == -ENOENT) {
		/* It ended while nobody watched: its outcome is lost. Hooks
		 * are idempotent (docs/deployments.md): run it again. */
		run_unit(t);
		return;
	}
	char *out = r->error ? NULL : last_line(t->out_path);
	if (!r->error && !out && t->rep.hook == DEPLOYMENT_HOOK_BACKUP) {
		finish(t, -ENODATA, "printed no backup location", NULL);
		return;
	}
	finish(t, r->error, r->message, out);
}

static uint64_t hook_timeout(const hooks_task *t) {
	return t->h->conf->deployments.timeout_usec;
}

static char **hook_env(const hooks_task *t) {
	const char *const kv[][2] = {
		{ "CORRAL_DEPLOYMENT", t->id },
		{ "CORRAL_DEPLOYMENT_JSON", t->run_text },
		{ "CORRAL_HOOK", deployment_hook_to_string(t->rep.hook) },
		{ "CORRAL_NODE", t->h->conf->node_id },
	};
	_cleanup_strv_free_ char **env = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(kv); i++)
		if (strv_takef(&env, &n, "%s=%s", kv[i][0], kv[i][1] ?: "") < 0)
			return NULL;
	return TAKE_PTR(env);
}

static void run_unit(hooks_task *t) {
	const char *command = t->h->conf->deployments.hooks[t->rep.hook];
	_cleanup_strv_free_ char **env = hook_env(t);
	int r;

	/* systemd appends to an existing file: a run starts from empty. */
	if (unlink(t->out_path) < 0 && errno != ENOENT) {
		finish(t, -errno, "cannot remove the last run's output file", NULL);
		return;
	}
	r = env ? units_run_transient_opts(t->h->bus, t->unit, command, env, hook_timeout(t), t->out_path,
					   on_unit_done, t, &t->job)
		: -ENOMEM;
	if (r == -EEXIST)
		/* Loaded already (a run we lost track of): its end is ours. */
		r = units_wait_unit(t->h->bus, t->unit, hook_timeout(t) + HOOKS_WAIT_MARGIN_USEC, on_unit_done, t,
				    &t->job);
	if (r < 0) {
		char why[128];
		snprintf(why, sizeof why, "cannot start %s: %s", t->unit, strerror(-r));
		finish(t, r, why, NULL);
		return;
	}
	hooks_emit(t->h, &(hooks_event) { .kind = HOOKS_EVENT_START, .deployment = t->id, .hook = t->rep.hook,
					  .seq = t->rep.seq },
		   "%s: %s #%lld: running %s", t->id, deployment_hook_to_string(t->rep.hook), (long long) t->rep.seq,
		   t->unit);
}

/* ---- starting an order ---- */

static void start(hooks_task *t) {
	hooks_runner *h = t->h;
	bool resume = t->running_seq == t->seq;

	t->busy = true;
	t->queued = false;
	h->running++;
	deployment_report_done(&t->rep);
	free(t->run_text);
	free(t->unit);
	free(t->out_path);
	t->out_path = NULL;
	t->run_text = strdup(t->text);
	t->unit = hooks_unit_name(t->id, t->hook, t->seq);
	t->rep = (deployment_report) { .seq = t->seq, .hook = t->hook, .host = strdup(h->conf->node_id),
				       .state = DEPLOYMENT_REPORT_RUNNING, .started = time(NULL) };
	if (!t->run_text || !t->unit || !t->rep.host ||
	    asprintf(&t->out_path, "%s/%s.out", h->out_dir, t->unit) < 0) {
		t->out_path = NULL;
		finish(t, -ENOMEM, "out of memory", NULL);
		return;
	}
	if (!h->conf->deployments.hooks[t->hook]) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_START, .deployment = t->id, .hook = t->hook,
					       .seq = t->seq },
			   "%s: %s #%lld: no such hook in corrald.yaml: nothing to do", t->id,
			   deployment_hook_to_string(t->hook), (long long) t->seq);
		finish(t, 0, NULL, NULL);
		return;
	}
	if (!resume) {
		write_then(t, run_unit);
		return;
	}
	int r = units_wait_unit(h->bus, t->unit, hook_timeout(t) + HOOKS_WAIT_MARGIN_USEC, on_unit_done, t, &t->job);
	if (r < 0) {
		finish(t, r, "cannot reach the service manager", NULL);
		return;
	}
	hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_START, .deployment = t->id, .hook = t->hook, .seq = t->seq },
		   "%s: %s #%lld: started before this corrald; waiting for %s", t->id,
		   deployment_hook_to_string(t->hook), (long long) t->seq, t->unit);
}

static void consider(hooks_task *t) {
	if (t->busy || t->queued || t->seq <= 0 || t->seq <= t->ended_seq)
		return;
	if (t->h->running >= HOOKS_MAX_RUNNING) {
		t->queued = true;
		return;
	}
	start(t);
}

static void start_queued(hooks_runner *h) {
	for (size_t i = 0; i < h->n_tasks && h->running < HOOKS_MAX_RUNNING; i++) {
		hooks_task *t = h->tasks[i];
		if (t->queued) {
			t->queued = false;
			consider(t);
		}
	}
}

/* ---- what the follower reads ---- */

static void take_report(hooks_runner *h, const char *id, const deployment_report *rep) {
	hooks_task *t = task_get(h, id);

	if (!t) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = -ENOMEM },
			   "%s: out of memory; its report is not looked at", id);
		return;
	}
	if (t->busy)
		return;         /* we are its writer now */
	if (rep->state == DEPLOYMENT_REPORT_RUNNING)
		t->running_seq = rep->seq;
	else if (rep->seq > t->ended_seq)
		t->ended_seq = rep->seq;
}

/* ---- the deployments on this host ---- */

static void here_drop(hooks_runner *h, size_t i) {
	free(h->here_ids[i]);
	free(h->here_owners[i]);
	memmove(h->here_ids + i, h->here_ids + i + 1, (h->n_here - i - 1) * sizeof *h->here_ids);
	memmove(h->here_owners + i, h->here_owners + i + 1, (h->n_here - i - 1) * sizeof *h->here_owners);
	h->n_here--;
}

static void here_clear(hooks_runner *h) {
	while (h->n_here > 0)
		here_drop(h, h->n_here - 1);
}

/* d NULL (deleted, or not on this host any more): forgotten. Kept in id
 * order. Out of memory: left out (the environment is a courtesy). */
static void here_set(hooks_runner *h, const char *id, const deployment *d) {
	size_t i = 0;

	while (i < h->n_here && strcmp(h->here_ids[i], id) < 0)
		i++;
	bool found = i < h->n_here && streq(h->here_ids[i], id);
	bool on = d && deployment_occupies(d) && streq_ptr(d->host, h->conf->node_id);
	if (found)
		here_drop(h, i);
	if (!on)
		return;
	char **a = realloc(h->here_ids, (h->n_here + 1) * sizeof *a);
	if (a)
		h->here_ids = a;
	char **b = realloc(h->here_owners, (h->n_here + 1) * sizeof *b);
	if (b)
		h->here_owners = b;
	char *idc = strdup(id), *owner = d->owner ? strdup(d->owner) : NULL;
	if (!a || !b || !idc || (d->owner && !owner)) {
		free(idc);
		free(owner);
		return;
	}
	memmove(h->here_ids + i + 1, h->here_ids + i, (h->n_here - i) * sizeof *h->here_ids);
	memmove(h->here_owners + i + 1, h->here_owners + i, (h->n_here - i) * sizeof *h->here_owners);
	h->here_ids[i] = idc;
	h->here_owners[i] = owner;
	h->n_here++;
}

char **hooks_runner_env(const hooks_runner *h) {
	size_t ids = 1, owners = 1;

	if (!h)
		return NULL;
	for (size_t i = 0; i < h->n_here; i++) {
		ids += strlen(h->here_ids[i]) + 1;
		owners += h->here_owners[i] ? strlen(h->here_owners[i]) + 1 : 0;
	}
	_cleanup_free_ char *a = calloc(ids, 1), *b = calloc(owners, 1);
	if (!a || !b)
		return NULL;
	for (size_t i = 0; i < h->n_here; i++) {
		if (i > 0)
			strcat(a, " ");
		strcat(a, h->here_ids[i]);
		const char *o = h->here_owners[i];
		bool seen = !o;
		for (size_t k = 0; !seen && k < i; k++)
			seen = streq_ptr(h->here_owners[k], o);
		if (!seen) {
			if (*b)
				strcat(b, ",");
			strcat(b, o);
		}
	}
	char **env = calloc(3, sizeof *env);
	if (!env)
		return NULL;
	if (asprintf(&env[0], "CORRAL_DEPLOYMENTS=%s", a) < 0 || asprintf(&env[1], "CORRAL_OWNERS=%s", b) < 0) {
		env[0] = env[1] = NULL;
		strv_free(env);
		return NULL;
	}
	return env;
}

static void orders_reset(hooks_runner *h) {
	for (size_t i = 0; i < h->n_tasks; i++) {
		h->tasks[i]->seq = 0;
		h->tasks[i]->queued = false;
	}
}

static void take_record(hooks_runner *h, const char *id, const char *value, size_t len, bool deleted) {
	_cleanup_(deployment_done) deployment d = {};
	deployment_error err = {};
	json_error_t jerr;
	hooks_task *t;

	if (deleted) {
		here_set(h, id, NULL);
		t = task_find(h, id);
		if (t) {
			t->seq = 0;
			t->queued = false;
		}
		return;
	}
	json_t *j = json_loadb(value ?: "", len, 0, &jerr);
	int r = j ? deployment_from_json(j, id, &d, &err) : -EINVAL;
	const char *why = j ? err.message : jerr.text;

	json_decref(j);
	if (r < 0) {
		/* Never acted on: the leader skips it too, until someone fixes it. */
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = id, .error = r },
			   "%s%s: skipped: %s", h->dep_prefix, id, why);
		return;
	}
	here_set(h, id, &d);
	bool ours = d.order.seq > 0 && streq_ptr(d.order.host, h->conf->node_id);
	t = ours ? task_get(h, id) : task_find(h, id);
	if (!t) {
		if (ours)
			hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = id, .error = -ENOMEM },
				   "%s: out of memory; its order waits for the next change", id);
		return;
	}
	char *text = strndup(value, len);
	if (!text) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .deployment = id, .error = -ENOMEM },
			   "%s: out of memory; its order waits for the next change", id);
		return;
	}
	free(t->text);
	t->text = text;
	t->seq = ours ? d.order.seq : 0;
	t->hook = d.order.hook;
	if (!ours)
		t->queued = false;
	consider(t);
}

/* ---- following deployments/ ----
 *
 * One txn reads deployments/ and deployment_reports/ (our reports say which
 * orders ended, and which one ran when corrald stopped), then a watch of
 * deployments/ from the next revision hands every change on. The shape of
 * upgrade/follow.c: a compacted watch is read again at once (we missed
 * something, etcd is fine); a failed read or a cancelled watch is read
 * again after a jittered back-off, so a fleet whose etcd was away does not
 * come back to it all at once. */

static void follow_read(hooks_runner *h);

static int on_follow_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	hooks_runner *h = userdata;

	h->retry = sd_event_source_disable_unref(h->retry);
	follow_read(h);
	return 0;
}

static void follow_retry_later(hooks_runner *h) {
	h->retry = sd_event_source_disable_unref(h->retry);
	if (sd_event_add_time_relative(h->event, &h->retry, CLOCK_MONOTONIC, backoff_next(&h->bo, backoff_random()),
				       USEC_PER_MSEC, on_follow_retry, h) < 0)
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = -ENOMEM },
			   "cannot schedule a retry: this node follows no deployment orders");
}

/* The id of key under prefix dir as a new string; NULL when the key is not
 * one entry of it. */
static char *id_of(hooks_runner *h, keys_dir dir, const etcd_kv *kv) {
	size_t len;
	const char *id = keys_id_in(h->conf->prefix, dir, kv->key, kv->key_len, &len);

	return id && len > 0 && !memchr(id, '/', len) ? strndup(id, len) : NULL;
}

static void on_watch(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	hooks_runner *h = userdata;

	if (m->type == ETCD_WATCH_COMPACTED) {
		h->watch = etcd_watch_free(h->watch);
		follow_read(h);
		return;
	}
	if (m->type == ETCD_WATCH_CANCELED) {
		h->watch = etcd_watch_free(h->watch);
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = -EIO },
			   "the watch of %s was cancelled; reading again after a back-off", h->dep_prefix);
		follow_retry_later(h);
		return;
	}
	if (m->type != ETCD_WATCH_EVENTS)
		return;
	for (size_t i = 0; i < m->n_events; i++) {
		const etcd_event *e = &m->events[i];
		_cleanup_free_ char *id = id_of(h, KEYS_DEPLOYMENTS, &e->kv);
		if (id)
			take_record(h, id, e->kv.value, e->kv.value_len, e->type == ETCD_EVENT_DELETE);
	}
}

static void on_read(etcd_client *c, etcd_response *resp, void *userdata) {
	hooks_runner *h = userdata;
	char buf[512];
	int r;

	h->call = NULL;
	if (resp->error.code < 0 || resp->n_responses != 2) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = resp->error.code ?: -EBADMSG },
			   "cannot read %s: %s; again after a back-off", h->dep_prefix,
			   etcd_error_format(&resp->error, buf, sizeof buf));
		etcd_response_free(resp);
		follow_retry_later(h);
		return;
	}
	/* Reports first: they say which orders ended before the records are
	 * looked at. Only ours: the key is per deployment, its host ours. */
	const etcd_response *reps = &resp->responses[1];
	for (size_t i = 0; i < reps->n_kvs; i++) {
		_cleanup_free_ char *id = id_of(h, KEYS_DEPLOYMENT_REPORTS, &reps->kvs[i]);
		_cleanup_(deployment_report_done) deployment_report rep = {};
		deployment_error err = {};
		json_t *j = json_loadb(reps->kvs[i].value ?: "", reps->kvs[i].value_len, 0, NULL);
		int k = j ? deployment_report_from_json(j, &rep, &err) : -EINVAL;
		json_decref(j);
		if (id && k >= 0 && streq_ptr(rep.host, h->conf->node_id))
			take_report(h, id, &rep);
	}
	orders_reset(h);
	here_clear(h);
	const etcd_response *deps = &resp->responses[0];
	for (size_t i = 0; i < deps->n_kvs; i++) {
		_cleanup_free_ char *id = id_of(h, KEYS_DEPLOYMENTS, &deps->kvs[i]);
		if (id)
			take_record(h, id, deps->kvs[i].value, deps->kvs[i].value_len, false);
	}
	etcd_watch_req wr = { .key = h->dep_prefix, .range_end = h->dep_end,
			      .start_revision = resp->header.revision + 1 };
	etcd_response_free(resp);
	r = etcd_watch_new(&h->watch, h->etcd, &wr, on_watch, h);
	if (r < 0) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = r },
			   "cannot watch %s: %s; again after a back-off", h->dep_prefix, strerror(-r));
		follow_retry_later(h);
		return;
	}
	backoff_reset(&h->bo);
}

static void follow_read(hooks_runner *h) {
	etcd_op ops[2] = {
		{ .type = ETCD_OP_RANGE, .range = { .key = h->dep_prefix, .range_end = h->dep_end } },
		{ .type = ETCD_OP_RANGE, .range = { .key = h->rep_prefix, .range_end = h->rep_end } },
	};
	etcd_txn_req req = { .success = ops, .n_success = 2 };

	h->watch = etcd_watch_free(h->watch);
	int r = etcd_txn(h->etcd, &req, on_read, h, &h->call);
	if (r < 0) {
		hooks_emit(h, &(hooks_event) { .kind = HOOKS_EVENT_TROUBLE, .error = r },
			   "cannot read %s: %s; again after a back-off", h->dep_prefix, strerror(-r));
		follow_retry_later(h);
	}
}

static void follow_done(hooks_runner *h) {
	etcd_call_cancel(h->call);
	h->call = NULL;
	h->watch = etcd_watch_free(h->watch);
	h->retry = sd_event_source_disable_unref(h->retry);
	free(h->dep_prefix);
	free(h->dep_end);
	free(h->rep_prefix);
	free(h->rep_end);
}

/* ---- the runner ---- */

/* Where stdout files go (hooks_stdout_dir()), made if missing. */
static int out_dir(const conf *c, char **out) {
	if (c->units_user_bus && !getenv("RUNTIME_DIRECTORY") && !getenv("XDG_RUNTIME_DIR"))
		return -ENXIO;
	*out = hooks_stdout_dir(c->units_user_bus);
	if (!*out)
		return -ENOMEM;
	if (mkdir(*out, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int hooks_runner_new(hooks_runner **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *c,
		     hooks_event_cb cb, void *userdata) {
	_cleanup_(hooks_runner_freep) hooks_runner *h = NULL;
	int r;

	if (!out || !event || !etcd || !bus || !c || !c->deployments.present)
		return -EINVAL;
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->event = sd_event_ref(event);
	h->etcd = etcd;
	h->bus = bus;
	h->conf = conf_ref(c);
	h->cb = cb;
	h->userdata = userdata;
	h->bo = BACKOFF_INIT(HOOKS_RETRY_USEC, HOOKS_RETRY_CAP_USEC);
	r = out_dir(c, &h->out_dir);
	if (r < 0)
		return r;
	h->dep_prefix = keys_dir_of(c->prefix, KEYS_DEPLOYMENTS);
	h->dep_end = keys_dir_end(c->prefix, KEYS_DEPLOYMENTS);
	h->rep_prefix = keys_dir_of(c->prefix, KEYS_DEPLOYMENT_REPORTS);
	h->rep_end = keys_dir_end(c->prefix, KEYS_DEPLOYMENT_REPORTS);
	if (!h->dep_prefix || !h->dep_end || !h->rep_prefix || !h->rep_end)
		return -ENOMEM;
	follow_read(h);
	*out = TAKE_PTR(h);
	return 0;
}

hooks_runner *hooks_runner_free(hooks_runner *h) {
	if (!h)
		return NULL;
	follow_done(h);
	for (size_t i = 0; i < h->n_tasks; i++)
		task_free(h->tasks[i]);
	free(h->tasks);
	here_clear(h);
	free(h->here_ids);
	free(h->here_owners);
	free(h->out_dir);
	conf_unref(h->conf);
	sd_event_unref(h->event);
	free(h);
	return NULL;
}

unsigned hooks_runner_running(const hooks_runner *h) {
	return h ? h->running : 0;
}
