/* reconcile.c — the node side of config agreement: read `current`, render,
 * check, write, restart, report (see reconcile.h).
 *
 * One apply is a chain of asynchronous steps on the event loop:
 *
 *   read snapshot -> for each file: render (maybe a child) -> compare with
 *   disk -> stage -> check (maybe a child) -> then commit the good ones ->
 *   for each unit: restart/reload -> on failure put that unit's old files
 *   back and restart it on them -> publish the status record.
 *
 * Only one apply runs at a time; a change seen meanwhile marks the state
 * dirty and another apply follows (debounced). An apply that met a fault
 * (a file it could not write) is followed by another after the write
 * back-off, unless a change or reconcile_retry_now() comes first; one
 * timer holds whichever is next (reconcile_next_step). This file is one
 * apply; follow.c, when and what (reconcile-internal.h). A core module: it
 * does not log; the callback hands the outcome to corrald, which does. */
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "reconcile-internal.h"
#include "render.h"
#include "tree.h"

#define FILE_MAX        ((size_t) 64 * 1024 * 1024)

static void apply_next_file(reconcile *r);
static void apply_next_unit(reconcile *r);
static void file_failed(reconcile *r, file_job *j, const char *fmt, ...) _printf_(3, 4);
static void file_fault(reconcile *r, file_job *j, const char *fmt, ...) _printf_(3, 4);

/* ---- small helpers ---------------------------------------------------------- */

static int read_whole(const char *path, char **out, size_t *out_len) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= FILE_MAX)
				return -EFBIG;
			cap = cap ? cap * 2 : (size_t) st.st_size + 4096;
			char *n = realloc(buf, cap);
			if (!n)
				return -ENOMEM;
			buf = n;
		}
		ssize_t k = read(fd, buf + len, cap - len - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		len += (size_t) k;
	}
	buf[len] = '\0';
	*out = TAKE_PTR(buf);
	*out_len = len;
	return 0;
}

void reconcile_jobs_free(reconcile *r) {
	for (size_t i = 0; i < r->n_jobs; i++) {
		file_job *j = &r->jobs[i];
		if (j->tmp)
			render_discard(j->tmp);
		free(j->tmp);
		free(j->bytes);
		free(j->old);
	}
	free(r->jobs);
	r->jobs = NULL;
	r->n_jobs = r->next = 0;
	reconcile_unit_plan_done(&r->plan);
	r->jobs_conf = conf_unref(r->jobs_conf);
}

/* ---- status ------------------------------------------------------------------- */

static json_t *status_build(reconcile *r, bool ok) {
	reconcile_status_in in = {
		.node_id = r->conf->node_id,
		.target = r->target,
		.applied = r->applied,
		.pinned = r->apply_pinned ? r->target : NULL,
		.revision = r->revision,
		.ok = ok,
		.error = r->error,
		.retry_attempt = r->write_retry.attempt,
		.retry_usec = r->retry_usec,
	};
	return reconcile_status_build(&r->rec, &in);
}

static void on_status_put(etcd_client *c, etcd_response *resp, void *userdata) {
	reconcile *r = userdata;

	r->put = NULL;
	/* A lost status write is repaired by the next apply or lease change
	 * (what was written stays what etcd holds, so that one writes);
	 * the record is advisory, the files are the truth. */
	if (resp->error.code == 0) {
		free(r->status_written);
		r->status_written = TAKE_PTR(r->status_sending);
		r->status_written_lease = r->status_sending_lease;
	}
	free(r->status_sending);
	r->status_sending = NULL;
	etcd_response_free(resp);
}

/* The record as compared between writes: all but its "updated" time. */
static char *status_key_text(json_t *status) {
	json_auto_t *copy = json_copy(status);

	if (!copy)
		return NULL;
	(void) json_object_del(copy, "updated");
	return json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
}

/* Writes the record unless etcd already holds the same on the same lease
 * (its "updated" time then stays that of the last change). */
void reconcile_status_publish(reconcile *r) {
	_cleanup_free_ char *text = NULL, *same = NULL;

	if (r->once || !r->status || !r->etcd)
		return;
	same = status_key_text(r->status);
	text = json_dumps(r->status, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text || !same)
		return;
	if (!r->put && r->status_written && r->status_written_lease == r->lease && streq(same, r->status_written))
		return;
	if (r->put)
		etcd_call_cancel(r->put);
	r->put = NULL;
	free(r->status_sending);
	r->status_sending = TAKE_PTR(same);
	r->status_sending_lease = r->lease;
	etcd_put_req req = { .key = r->status_key, .value = text, .lease = r->lease };
	if (etcd_put(r->etcd, &req, on_status_put, r, &r->put) < 0) {
		free(r->status_sending);
		r->status_sending = NULL;
	}
}

static int on_trim(sd_event_source *s, void *userdata) {
	reconcile *r = userdata;

	r->trim = sd_event_source_disable_unref(r->trim);
	(void) malloc_trim(0);
	return 0;
}

/* Gives the heap's free pages back once the loop is idle again, when the
 * read that brought the snapshot has freed it too: a 5 MB config leaves
 * some 25 MB of free heap behind otherwise (docs/benchmarks.md). */
static void trim_soon(reconcile *r) {
	if (!r->trim)
		(void) sd_event_add_defer(r->event, &r->trim, on_trim, r);
}

void reconcile_apply_finish(reconcile *r) {
	bool ok = r->error[0] == '\0', transient = r->retry_soon || r->fault;
	reconcile_next next = RECONCILE_NEXT_WAIT;

	if (ok && r->target) {
		free(r->applied);
		r->applied = strdup(r->target);
	}
	if (!r->once && !r->stopped)
		next = reconcile_next_step(r->retry_now, r->retry_soon, r->dirty, r->fault);
	/* The back-off counts applies in a row that met a fault, across
	 * changes of `current`: the disk does not heal because the config
	 * changed. */
	r->retry_usec = next == RECONCILE_NEXT_WRITE_RETRY ? backoff_next(&r->write_retry, backoff_random()) : 0;
	if (!r->fault && !r->retry_soon)
		backoff_reset(&r->write_retry);
	json_decref(r->status);
	r->status = status_build(r, ok);
	reconcile_status_publish(r);
	reconcile_jobs_free(r);
	/* The document served this apply only: the next reads its own. */
	if (r->files) {
		json_decref(r->files);
		r->files = NULL;
		trim_soon(r);
	}
	r->phase = PHASE_IDLE;
	r->schedule_next(r, next);
	r->retry_soon = false;
	r->retry_now = false;

	reconcile_report rep = {
		.ok = ok,
		.changed = r->changed,
		.target = r->target,
		.applied = r->applied,
		.pinned = r->apply_pinned ? r->target : NULL,
		.pin_serial = r->apply_pin_serial,
		.transient = !ok && transient,
		.error = ok ? NULL : r->error,
		.retry_usec = r->retry_usec,
		.status = r->status,
		.revision = r->revision,
		.files = ok ? r->files : NULL,
	};
	if (r->cb)
		r->cb(r, &rep, r->userdata);       /* may free r when once */
}

void reconcile_set_error(reconcile *r, const char *fmt, ...) {
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* Keep the first error in full; count the rest. */
	if (r->error[0] == '\0')
		snprintf(r->error, sizeof r->error, "%s", buf);
	else if (!strstr(r->error, " (and more)"))
		strncat(r->error, " (and more)", sizeof r->error - strlen(r->error) - 1);
}

static void apply_oom(reconcile *r) {
	reconcile_set_error(r, "out of memory");
	reconcile_apply_finish(r);
}

/* ---- units ---------------------------------------------------------------------- */

/* Puts back the old bytes of the files this unit's step names. */
static bool undo_files(reconcile *r, const reconcile_unit_step *step) {
	bool any = false;

	for (size_t x = 0; x < step->n_files; x++) {
		file_job *j = &r->jobs[step->files[x]];
		if (!j->committed || !j->old_exists)
			continue;
		render_opts o = { .mode = j->cf->mode, .uid = j->cf->uid, .gid = j->cf->gid };
		int k = render_write(j->cf->path, j->old, j->old_len, &o);
		if (k < 0) {
			reconcile_set_error(r, "%s: cannot put the previous file back: %s", j->cf->path, strerror(-k));
			continue;
		}
		j->committed = false;
		any = true;
		reconcile_record_file_undone(&r->rec, j->cf, j->old, j->old_len);
	}
	return any;
}

static void on_unit_done(units_job *job, const units_result *res, void *userdata) {
	reconcile *r = userdata;
	const reconcile_unit_step *step = &r->plan.steps[r->next_unit];

	r->ujob = NULL;
	if (r->undoing) {
		/* The restart on the previous files: record it under its own name. */
		r->undoing = false;
		if (res->error < 0)
			reconcile_set_error(r, "%s: also failed on the previous files: %s", res->unit, res->message);
		r->next_unit++;
		apply_next_unit(r);
		return;
	}
	reconcile_record_unit(&r->rec, res);
	if (res->error < 0) {
		char msg[512];

		snprintf(msg, sizeof msg, "%s %s failed: %s", units_action_to_string(res->action), res->unit,
			 res->message);
		reconcile_set_error(r, "%s", msg);
		for (size_t x = 0; x < step->n_files; x++) {
			const file_job *j = &r->jobs[step->files[x]];
			reconcile_verdict_set(&r->rec, j->cf->name, r->target, j->bytes, j->len, msg);
		}
		if (undo_files(r, step)) {
			/* Back to the last good files, and run the unit on them. */
			r->undoing = true;
			int k = units_run(r->bus, res->unit, UNITS_RESTART, r->conf->unit_timeout_usec, on_unit_done,
					  r, &r->ujob);
			if (k >= 0)
				return;
			r->undoing = false;
			reconcile_set_error(r, "%s: cannot restart on the previous files: %s", res->unit, strerror(-k));
		}
	}
	r->next_unit++;
	apply_next_unit(r);
}

static void apply_next_unit(reconcile *r) {
	while (r->next_unit < r->plan.n_steps) {
		const reconcile_unit_step *e = &r->plan.steps[r->next_unit];
		const char *unit = e->unit, *action = units_action_to_string(e->action);
		units_action a = e->action;
		int k = -ENOTCONN;

		if (r->bus)
			k = units_run(r->bus, unit, a, r->conf->unit_timeout_usec, on_unit_done, r, &r->ujob);
		if (k >= 0)
			return;
		reconcile_set_error(r, "%s %s: cannot queue the job: %s", action, unit, strerror(-k));
		units_result res = { .unit = unit, .action = a, .error = k };
		snprintf(res.message, sizeof res.message, "cannot queue the job: %s", strerror(-k));
		reconcile_record_unit(&r->rec, &res);
		r->next_unit++;
	}
	reconcile_apply_finish(r);
}

/* ---- files ---------------------------------------------------------------------- */

static void commit_files(reconcile *r) {
	bool *changed = calloc(r->n_jobs ? r->n_jobs : 1, sizeof *changed);
	/* The files section this apply started with (r->conf may have been
	 * reloaded since): the jobs point into it, one per file, in order. */
	const conf_file *files = r->n_jobs ? r->jobs_conf->files : NULL;

	for (size_t i = 0; i < r->n_jobs; i++) {
		file_job *j = &r->jobs[i];
		if (!j->present)
			continue;
		if (j->changed && !j->failed) {
			int k = render_commit(j->tmp, j->cf->path);
			free(j->tmp);
			j->tmp = NULL;          /* render_commit removed it on failure */
			if (k < 0)
				file_fault(r, j, "%s: cannot write: %s", j->cf->path, strerror(-k));
			/* Renamed, but the directory's fsync failed: the file is
			 * in place, so its units act on it; the fault is still
			 * reported and retried. */
			if (k >= 0 || render_same(j->cf->path, j->bytes, j->len) == 1) {
				j->committed = true;
				r->changed = true;
				if (changed)
					changed[i] = true;
			}
		}
		if (j->failed) {
			/* Keep what is on disk; say so. */
			reconcile_record_file_kept(&r->rec, j->cf, j->old_exists ? j->old : NULL, j->old_len, j->error);
			continue;
		}
		reconcile_record_file(&r->rec, j->cf, r->target, j->bytes, j->len, j->error);
	}
	if (!changed)
		return apply_oom(r);
	int k = reconcile_plan_units(files, r->n_jobs, changed, &r->plan);
	free(changed);
	if (k < 0)
		return apply_oom(r);
	r->phase = PHASE_UNITS;
	r->next_unit = 0;
	apply_next_unit(r);
}

static void file_failv(reconcile *r, file_job *j, const char *fmt, va_list ap) _printf_(3, 0);
static void file_failv(reconcile *r, file_job *j, const char *fmt, va_list ap) {
	vsnprintf(j->error, sizeof j->error, fmt, ap);
	j->failed = true;
	if (j->tmp) {
		render_discard(j->tmp);
		free(j->tmp);
		j->tmp = NULL;
	}
	reconcile_set_error(r, "%s", j->error);
}

/* A verdict on the bytes (a check, a render command): the previous file
 * stays, and the failure is not retried for this config. */
static void file_failed(reconcile *r, file_job *j, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	file_failv(r, j, fmt, ap);
	va_end(ap);
}

/* A fault of this host (the disk, a command that cannot start): the apply
 * is tried again with back-off until it goes through. */
static void file_fault(reconcile *r, file_job *j, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	file_failv(r, j, fmt, ap);
	va_end(ap);
	r->fault = true;
}

static void on_check_done(child_run *c, const child_result *res, void *userdata) {
	reconcile *r = userdata;
	file_job *j = &r->jobs[r->next];

	r->child = child_run_free(r->child);
	if (res->error < 0) {
		file_failed(r, j, "%s: check failed, keeping the previous file: %s", j->cf->path, res->message);
		reconcile_verdict_set(&r->rec, j->cf->name, r->target, j->bytes, j->len, j->error);
	}
	r->next++;
	apply_next_file(r);
}

/* The new bytes are known: compare, stage, check. Returns true when a
 * child was started (the chain goes on in its callback). */
static bool file_stage(reconcile *r, file_job *j) {
	render_opts o = { .mode = j->cf->mode, .uid = j->cf->uid, .gid = j->cf->gid };
	const char *verdict = reconcile_verdict_get(&r->rec, j->cf->name, r->target, j->bytes, j->len);
	int k;

	if (verdict) {
		file_failed(r, j, "%s", verdict);
		return false;
	}
	k = read_whole(j->cf->path, &j->old, &j->old_len);
	if (k == -ENOENT)
		j->old_exists = false;
	else if (k < 0) {
		file_fault(r, j, "%s: cannot read the current file: %s", j->cf->path, strerror(-k));
		return false;
	} else
		j->old_exists = true;

	if (j->old_exists && j->old_len == j->len && memcmp(j->old, j->bytes, j->len) == 0)
		return false;                   /* unchanged: no write, no restart */

	(void) render_cleanup_stale(j->cf->path);
	k = render_stage(j->cf->path, j->bytes, j->len, &o, &j->tmp);
	if (k < 0) {
		file_fault(r, j, "%s: cannot stage the new file: %s", j->cf->path, strerror(-k));
		return false;
	}
	j->changed = true;
	if (!j->cf->check)
		return false;
	child_options co = {
		.command = j->cf->check,
		.arg = j->tmp,
		.timeout_usec = r->conf->command_timeout_usec,
	};
	k = child_run_start(&r->child, r->event, &co, on_check_done, r);
	if (k < 0) {
		file_fault(r, j, "%s: cannot run the check command: %s", j->cf->path, strerror(-k));
		return false;
	}
	return true;
}

static void on_render_done(child_run *c, const child_result *res, void *userdata) {
	reconcile *r = userdata;
	file_job *j = &r->jobs[r->next];

	if (res->error < 0)
		file_failed(r, j, "%s: render command failed, keeping the previous file: %s", j->cf->path,
			    res->message);
	else {
		j->bytes = malloc(res->out_len + 1);
		if (!j->bytes)
			file_failed(r, j, "%s: out of memory", j->cf->path);
		else {
			memcpy(j->bytes, res->out, res->out_len);
			j->bytes[res->out_len] = '\0';
			j->len = res->out_len;
		}
	}
	r->child = child_run_free(r->child);
	if (!j->failed && file_stage(r, j))
		return;
	r->next++;
	apply_next_file(r);
}

/* The file's text: TOML for format: toml, else JSON (what a render command
 * reads on stdin). False when it failed (reported). */
static bool file_text(reconcile *r, file_job *j, json_t *value, char **out) {
	tree_error e;
	int k;

	if (j->cf->format != CONF_FORMAT_TOML) {
		*out = tree_format_json(value);
		k = *out ? 0 : -ENOMEM;
	} else
		k = tree_format_toml(j->cf->name, value, out, &e);
	if (k == -EINVAL)
		file_failed(r, j, "%s: cannot render as TOML, keeping the previous file: %s: %s", j->cf->path, e.path,
			    e.message);
	else if (k < 0)
		file_failed(r, j, "%s: out of memory", j->cf->path);
	return k >= 0;
}

static void apply_next_file(reconcile *r) {
	for (; r->next < r->n_jobs; r->next++) {
		file_job *j = &r->jobs[r->next];
		json_t *value = json_object_get(r->files, j->cf->name);

		if (!value)
			continue;               /* not in this config: left alone */
		j->present = true;
		_cleanup_free_ char *text = NULL;
		if (!file_text(r, j, value, &text))
			continue;
		if (j->cf->format == CONF_FORMAT_COMMAND) {
			child_options co = {
				.command = j->cf->command,
				.input = text,
				.input_len = strlen(text),
				.timeout_usec = r->conf->command_timeout_usec,
			};
			int k = child_run_start(&r->child, r->event, &co, on_render_done, r);
			if (k >= 0)
				return;
			file_fault(r, j, "%s: cannot run the render command: %s", j->cf->path, strerror(-k));
			continue;
		}
		j->len = strlen(text);
		j->bytes = TAKE_PTR(text);
		if (file_stage(r, j))
			return;
	}
	commit_files(r);
}

void reconcile_apply_files(reconcile *r) {
	r->jobs = r->files ? calloc(r->conf->n_files ? r->conf->n_files : 1, sizeof *r->jobs) : NULL;
	if (!r->jobs)
		return apply_oom(r);
	/* Held until reconcile_jobs_free(): a reload during this apply must
	 * not free the files section the jobs point into. */
	r->jobs_conf = conf_ref(r->conf);
	r->n_jobs = r->conf->n_files;
	for (size_t i = 0; i < r->n_jobs; i++)
		r->jobs[i].cf = &r->jobs_conf->files[i];
	r->phase = PHASE_FILES;
	r->next = 0;
	apply_next_file(r);
}
