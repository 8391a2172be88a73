/* transient.c — a shell command run as a transient oneshot service
 * (StartTransientUnit), and waiting by name for one started earlier, maybe
 * by a corrald that has since died (units.h).
 *
 * The outcome of a oneshot is its start job (JobRemoved: "done" or
 * "failed") and the service's Result, ExecMainCode and ExecMainStatus. The
 * unit has CollectMode=inactive-or-failed, so nothing is left behind, and
 * we hold a reference on it (AddRef, RefUnit) until we have read those: a
 * referenced unit is not collected. The reference belongs to our bus
 * connection, so a corrald that dies leaves nothing pinned.
 *
 * Waiting on an existing unit: RefUnit (NoSuchUnit: it is gone), then its
 * Job property while the bus keeps every JobRemoved it sees (the job is in
 * JOB_CALLING), so a job that ends between the two calls is not missed.
 * No job and inactive or failed: it has ended, the Result says how. */
#include <signal.h>
#include <sys/wait.h>

#include "units-internal.h"

/* The manager kills the command at its timeout; ours comes this much later
 * so that its report (Result "timeout") is what we see. */
#define TRANSIENT_MARGIN_USEC (10 * USEC_PER_SEC)
#define TRANSIENT_STOP_USEC (5 * USEC_PER_SEC)
#define TRANSIENT_POLL_USEC (100 * USEC_PER_MSEC)
#define TRANSIENT_DEFAULT_TIMEOUT_USEC (90 * USEC_PER_SEC)
#define UNIT_NAME_MAX 255

char *units_transient_name(const char *prefix, const char *text) {
	static const char hex[] = "0123456789abcdef";
	size_t plen = strlen(prefix), max = UNIT_NAME_MAX - strlen(".service");
	char *s = malloc(plen + 4 * strlen(text) + sizeof ".service"), *p;

	if (!s)
		return NULL;
	p = stpcpy(s, prefix);
	for (const unsigned char *t = (const unsigned char *) text; *t; t++) {
		if ((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
		    strchr(":_.-", *t))
			*p++ = (char) *t;
		else {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[*t >> 4];
			*p++ = hex[*t & 15];
		}
	}
	if ((size_t) (p - s) > max)
		p = s + max;
	strcpy(p, ".service");
	return s;
}

/* ---- the outcome ---- */

typedef struct service_result {
	const char *result;
	int32_t code, status;           /* ExecMainCode (CLD_*), ExecMainStatus */
} service_result;

static int parse_service(sd_bus_message *m, service_result *sr) {
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *name;

		r = sd_bus_message_read(m, "s", &name);
		if (r < 0)
			return r;
		if (streq(name, "Result"))
			r = sd_bus_message_read(m, "v", "s", &sr->result);
		else if (streq(name, "ExecMainCode"))
			r = sd_bus_message_read(m, "v", "i", &sr->code);
		else if (streq(name, "ExecMainStatus"))
			r = sd_bus_message_read(m, "v", "i", &sr->status);
		else
			r = sd_bus_message_skip(m, "v");
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	r = sd_bus_message_exit_container(m);
	if (r < 0)
		return r;
	return sr->result ? 0 : -EBADMSG;
}

/* Reports what the job result and the service's Result add up to. */
static void report(units_job *j, const service_result *sr) {
	const char *jr = j->res.job_result;

	if (sr && (sr->code == CLD_EXITED))
		j->res.exit_status = sr->status;
	else if (sr && (sr->code == CLD_KILLED || sr->code == CLD_DUMPED))
		j->res.exit_status = 128 + sr->status;
	units_job_drop_ref(j);

	if (!sr) {
		if (streq(jr, "done"))
			units_job_finish(j, 0, "job done");
		else
			units_job_finish(j, -EIO, "job %s", jr[0] ? jr : "gone");
	} else if (streq(sr->result, "success") && (!jr[0] || streq(jr, "done")))
		units_job_finish(j, 0, "exited 0");
	else if (streq(sr->result, "timeout"))
		units_job_finish(j, -ETIMEDOUT, "timed out (killed by the service manager)");
	else if (sr->code == CLD_EXITED && sr->status != 0)
		units_job_finish(j, -EIO, "exit status %d", sr->status);
	else if (sr->code == CLD_KILLED || sr->code == CLD_DUMPED)
		units_job_finish(j, -EIO, "killed by signal %d (%s)", sr->status, strsignal(sr->status));
	else
		units_job_finish(j, -EIO, "job %s, result %s", jr[0] ? jr : "none", sr->result);
}

static int on_service(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	service_result sr = { .code = 0, .status = 0 };

	j->slot = sd_bus_slot_unref(j->slot);
	/* The unit could not be read (collected after all): the job's
	 * result is all there is. */
	if (sd_bus_message_is_method_error(m, NULL) || parse_service(m, &sr) < 0)
		report(j, NULL);
	else
		report(j, &sr);
	return 0;
}

/* After JobRemoved (job_result set), or once a waited-for unit is found
 * ended: read how the service ended. */
static void read_service(units_job *j) {
	int r;

	j->state = JOB_READING;
	units_early_prune(j->bus);
	r = sd_bus_call_method_async(j->bus->bus, &j->slot, SD_DEST, j->unit_path, "org.freedesktop.DBus.Properties",
				     "GetAll", on_service, j, "s", SD_SERVICE);
	if (r < 0)
		units_job_fail_soon(j, r, "cannot read the unit's result: %s", strerror(-r));
}

/* ---- running ---- */

static int on_started(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	const char *path;

	j->slot = sd_bus_slot_unref(j->slot);
	if (sd_bus_message_is_method_error(m, "org.freedesktop.systemd1.UnitExists")) {
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_finish(j, -EEXIST, "a unit of this name is loaded already");
		return 0;
	}
	if (units_job_reply_error(j, m))
		return 0;
	j->ref_held = true;
	if (sd_bus_message_read(m, "o", &path) < 0) {
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_drop_ref(j);
		units_job_finish(j, -EBADMSG, "unexpected answer from the service manager");
		return 0;
	}
	units_job_queued(j, path);
	return 0;
}

static int append_properties(sd_bus_message *m, const char *name, const char *command, char *const *env,
			     uint64_t timeout_usec, const char *stdout_path) {
	_cleanup_free_ char *description = NULL;
	int r;

	if (asprintf(&description, "corral: %.200s", command) < 0)
		return -ENOMEM;
	r = sd_bus_message_append(m, "ss", name, "fail");
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'a', "(sv)");
	if (r >= 0)
		r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)(sv)(sv)", "Description", "s", description, "Type", "s",
					  "oneshot", "CollectMode", "s", "inactive-or-failed", "AddRef", "b", 1,
					  "TimeoutStartUSec", "t", timeout_usec, "TimeoutStopUSec", "t",
					  (uint64_t) TRANSIENT_STOP_USEC);
	if (r >= 0)
		r = sd_bus_message_append(m, "(sv)", "ExecStart", "a(sasb)", 1, "/bin/sh", 3, "/bin/sh", "-c", command,
					  0);
	/* "file:" (systemd >= 236) writes from the start without truncating:
	 * the caller removes an old file first (units.h). */
	if (r >= 0 && stdout_path)
		r = sd_bus_message_append(m, "(sv)", "StandardOutputFile", "s", stdout_path);
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'r', "sv");
	if (r >= 0)
		r = sd_bus_message_append(m, "s", "Environment");
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'v', "as");
	if (r >= 0)
		r = sd_bus_message_append_strv(m, (char **) (env ? env : (char *const[]) { NULL }));
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	/* No auxiliary units. */
	if (r >= 0)
		r = sd_bus_message_append(m, "a(sa(sv))", 0);
	return r;
}

int units_run_transient(units_bus *b, const char *name, const char *command, char *const *env,
			uint64_t timeout_usec, units_done_cb cb, void *userdata, units_job **out) {
	return units_run_transient_opts(b, name, command, env, timeout_usec, NULL, cb, userdata, out);
}

int units_run_transient_opts(units_bus *b, const char *name, const char *command, char *const *env,
			     uint64_t timeout_usec, const char *stdout_path, units_done_cb cb, void *userdata,
			     units_job **out) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	units_job *j;
	int r;

	if (!b || !name || !*name || !command || !cb || (stdout_path && stdout_path[0] != '/'))
		return -EINVAL;
	if (!timeout_usec)
		timeout_usec = TRANSIENT_DEFAULT_TIMEOUT_USEC;
	r = units_job_new(b, name, UNITS_RUN, timeout_usec + TRANSIENT_MARGIN_USEC, cb, userdata, &j);
	if (r < 0)
		return r;
	j->removed = read_service;
	r = sd_bus_message_new_method_call(b->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, "StartTransientUnit");
	if (r >= 0)
		r = append_properties(m, name, command, env, timeout_usec, stdout_path);
	if (r >= 0)
		r = units_job_call(b, j, m, on_started);
	if (r < 0) {
		units_job_free(j);
		return r;
	}
	if (out)
		*out = j;
	return 0;
}

/* ---- waiting ---- */

static int wait_read(units_job *j);

static int on_wait_poll(sd_event_source *s, uint64_t usec, void *userdata) {
	units_job *j = userdata;
	int r;

	j->poll = sd_event_source_disable_unref(j->poll);
	r = wait_read(j);
	if (r < 0)
		units_job_fail_soon(j, r, "cannot read the unit's state: %s", strerror(-r));
	return 0;
}

static int on_wait_state(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	const char *load = NULL, *active = NULL, *job_path = NULL;
	uint32_t job_id = 0;
	int r;

	j->slot = sd_bus_slot_unref(j->slot);
	if (units_job_reply_error(j, m))
		return 0;
	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *name;
		r = sd_bus_message_read(m, "s", &name);
		if (r >= 0 && streq(name, "LoadState"))
			r = sd_bus_message_read(m, "v", "s", &load);
		else if (r >= 0 && streq(name, "ActiveState"))
			r = sd_bus_message_read(m, "v", "s", &active);
		else if (r >= 0 && streq(name, "Job"))
			r = sd_bus_message_read(m, "v", "(uo)", &job_id, &job_path);
		else if (r >= 0)
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	if (r < 0 || !load || !active) {
		units_job_drop_ref(j);
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_finish(j, r < 0 ? r : -EBADMSG, "unreadable unit state");
		return 0;
	}
	units_copy_str(j->res.active_state, sizeof j->res.active_state, active);
	if (streq(load, "not-found")) {
		units_job_drop_ref(j);
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_finish(j, -ENOENT, "no such unit");
	} else if (job_id != 0 && job_path)
		units_job_queued(j, job_path);
	else if (streq(active, "inactive") || streq(active, "failed"))
		read_service(j);
	else {
		/* Between jobs (or a unit that stays active): look again. */
		r = sd_event_add_time_relative(j->bus->event, &j->poll, CLOCK_MONOTONIC, TRANSIENT_POLL_USEC, 1,
					       on_wait_poll, j);
		if (r < 0)
			units_job_fail_soon(j, r, "cannot schedule reading the unit's state: %s", strerror(-r));
	}
	return 0;
}

static int wait_read(units_job *j) {
	return sd_bus_call_method_async(j->bus->bus, &j->slot, SD_DEST, j->unit_path, "org.freedesktop.DBus.Properties",
					"GetAll", on_wait_state, j, "s", SD_UNIT);
}

static int on_wait_ref(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	units_job *j = userdata;
	int r;

	j->slot = sd_bus_slot_unref(j->slot);
	if (units_job_reply_error(j, m))
		return 0;
	j->ref_held = true;
	r = wait_read(j);
	if (r < 0) {
		units_job_drop_ref(j);
		j->state = JOB_FAILING;
		units_early_prune(j->bus);
		units_job_finish(j, r, "cannot read the unit's state: %s", strerror(-r));
	}
	return 0;
}

int units_wait_unit(units_bus *b, const char *name, uint64_t timeout_usec, units_done_cb cb, void *userdata,
		    units_job **out) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	units_job *j;
	int r;

	if (!b || !name || !*name || !cb)
		return -EINVAL;
	r = units_job_new(b, name, UNITS_WAIT, timeout_usec ? timeout_usec : TRANSIENT_DEFAULT_TIMEOUT_USEC, cb,
			  userdata, &j);
	if (r < 0)
		return r;
	j->removed = read_service;
	r = sd_bus_message_new_method_call(b->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, "RefUnit");
	if (r >= 0)
		r = sd_bus_message_append(m, "s", name);
	if (r >= 0)
		r = units_job_call(b, j, m, on_wait_ref);
	if (r < 0) {
		units_job_free(j);
		return r;
	}
	if (out)
		*out = j;
	return 0;
}
