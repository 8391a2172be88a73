/* runner.c — the node's upgrade runner (upgrade.h): reads image_command,
 * follows upgrade/nodes/<self> (follow.c), decides with upgrade_decide_start()
 * what an order asks, walks the order's list step by step (steps.c runs
 * each one) and writes upgrade/progress/<self> before every step and at
 * the end.
 *
 * One thing of its own happens at a time: a progress write, the image
 * command or a step (the follower reads and watches beside it). A write
 * that fails is tried again every second until it is stored (a
 * step never starts before its progress is); a new order that arrives
 * while a list runs waits until the list has ended. */
#include <stdarg.h>
#include <time.h>

#include "conf.h"
#include "keys.h"
#include "upgrade-internal.h"

#define UPGRADE_RETRY_USEC     (1 * USEC_PER_SEC)
#define UPGRADE_RETRY_CAP_USEC (30 * USEC_PER_SEC)
#define UPGRADE_IMAGE_MAX 4096

static void step_finished(upgrade_runner *u, int error, const char *message);
static void step_next(upgrade_runner *u);
static void undo_next(upgrade_runner *u);

_printf_(3, 4) static void upgrade_emit(upgrade_runner *u, const upgrade_event *e, const char *fmt, ...) {
	char line[512];
	upgrade_event ev = *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ev.line = line;
	if (u->cb)
		u->cb(u, &ev, u->userdata);
}

static time_t now_sec(void) {
	return time(NULL);
}

static void read_boot_id(char *buf, size_t size) {
	_cleanup_free_ char *text = NULL;

	buf[0] = '\0';
	if (conf_read_file("/proc/sys/kernel/random/boot_id", false, &text, NULL) >= 0)
		snprintf(buf, size, "%.*s", (int) strcspn(text, "\n"), text);
}

static int replace_str(char **p, const char *s) {
	char *copy = NULL;

	if (s && !(copy = strdup(s)))
		return -ENOMEM;
	free(*p);
	*p = copy;
	return 0;
}

static int int_add(int **v, size_t *n, int x) {
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == x)
			return 0;
	int *grown = reallocarray(*v, *n + 1, sizeof *grown);
	if (!grown)
		return -ENOMEM;
	grown[(*n)++] = x;
	*v = grown;
	return 0;
}

static bool int_has(const int *v, size_t n, int x) {
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* ---- retrying ---- */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	upgrade_runner *u = userdata;
	void (*again)(upgrade_runner *) = u->then_retry;

	u->retry = sd_event_source_disable_unref(u->retry);
	again(u);
	return 0;
}

static void retry_later(upgrade_runner *u, void (*again)(upgrade_runner *u)) {
	u->then_retry = again;
	u->retry = sd_event_source_disable_unref(u->retry);
	/* Jittered and growing: a fleet whose etcd is away does not come
	 * back to it all at once, every second. */
	if (sd_event_add_time_relative(u->event, &u->retry, CLOCK_MONOTONIC, backoff_next(&u->bo, backoff_random()),
				       USEC_PER_MSEC, on_retry, u) < 0)
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = -ENOMEM },
			     "cannot schedule a retry: the upgrade runner stops");
}

/* ---- image_command ---- */

static void on_image(child_run *r, const child_result *res, void *userdata) {
	upgrade_runner *u = userdata;
	void (*then)(upgrade_runner *) = u->then;
	char why[512];
	int error = res->error;

	free(u->image);
	u->image = NULL;
	if (error == 0) {
		size_t b = 0, e = res->out_len;
		while (b < e && strchr(" \t\r\n\v\f", res->out[b]))
			b++;
		while (e > b && strchr(" \t\r\n\v\f", res->out[e - 1]))
			e--;
		if (e > b)
			u->image = strndup(res->out + b, e - b);
	}
	snprintf(why, sizeof why, "%s", error ? res->message : "printed nothing");
	/* res lives in the run: read before this. */
	u->image_run = child_run_free(u->image_run);
	if (u->image)
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_IMAGE, .image = u->image }, "image: %s",
			     u->image);
	else
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_IMAGE, .error = error ?: -ENODATA },
			     "image_command: %s", why);
	then(u);
}

static void read_image(upgrade_runner *u, void (*then)(upgrade_runner *u)) {
	child_options o = {
		.command = u->conf->upgrade.image_command,
		.max_output = UPGRADE_IMAGE_MAX,
		.timeout_usec = u->conf->command_timeout_usec,
	};
	int r;

	u->then = then;
	r = child_run_start(&u->image_run, u->event, &o, on_image, u);
	if (r < 0) {
		child_result res = { .error = r, .exit_status = -1, .out = "" };
		snprintf(res.message, sizeof res.message, "cannot run: %s", strerror(-r));
		on_image(NULL, &res, u);
	}
}

/* ---- progress ---- */

static void write_progress(upgrade_runner *u);

static void on_written(etcd_client *c, etcd_response *resp, void *userdata) {
	upgrade_runner *u = userdata;
	char buf[512];

	u->call = NULL;
	if (resp->error.code < 0) {
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = resp->error.code },
			     "cannot write %s: %s; again after a back-off", u->progress_key,
			     etcd_error_format(&resp->error, buf, sizeof buf));
		etcd_response_free(resp);
		retry_later(u, write_progress);
		return;
	}
	etcd_response_free(resp);
	backoff_reset(&u->bo);
	u->then(u);
}

static void write_progress(upgrade_runner *u) {
	_cleanup_free_ char *text = NULL;
	json_t *j;
	int r;

	u->prog.updated = now_sec();
	j = rollout_progress_to_json(&u->prog);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!text) {
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = -ENOMEM },
			     "cannot encode the progress; again after a back-off");
		retry_later(u, write_progress);
		return;
	}
	etcd_put_req req = { .key = u->progress_key, .value = text };
	r = etcd_put(u->etcd, &req, on_written, u, &u->call);
	if (r < 0) {
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = r },
			     "cannot write %s: %s; again after a back-off", u->progress_key, strerror(-r));
		retry_later(u, write_progress);
	}
}

static void write_then(upgrade_runner *u, void (*then)(upgrade_runner *u)) {
	u->then = then;
	write_progress(u);
}

/* ---- the end of a list ---- */

static void consider(upgrade_runner *u);

static void list_done(upgrade_runner *u) {
	const char *verb = rollout_verb_to_string(u->cur.verb);
	bool ok = u->prog.state == ROLLOUT_STEP_DONE;

	u->busy = false;
	if (ok)
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_DONE, .image = u->image }, "%s of %s gen %lld: done",
			     verb, u->cur.plan, (long long) u->cur.generation);
	else
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_DONE, .error = -EIO, .image = u->image },
			     "%s of %s gen %lld: failed: %s", verb, u->cur.plan, (long long) u->cur.generation,
			     u->prog.error ? u->prog.error : "?");
	consider(u);
}

static void list_final(upgrade_runner *u) {
	bool ok = !u->fail_error;

	u->prog.state = ok ? ROLLOUT_STEP_DONE : ROLLOUT_STEP_FAILED;
	u->prog.finished = now_sec();
	(void) replace_str(&u->prog.image, u->image);
	(void) replace_str(&u->prog.error, u->fail_error);
	if (ok && u->cur.verb == ROLLOUT_FINISH) {
		free(u->prog.undo_pending);
		u->prog.undo_pending = NULL;
		u->prog.n_undo_pending = 0;
	}
	write_then(u, list_done);
}

/* Every list ends by reading the image again: the node record follows. */
static void list_end(upgrade_runner *u) {
	read_image(u, list_final);
}

/* ---- steps ---- */

static void step_go(upgrade_runner *u) {
	upgrade_step_start(u, &u->items[u->pos]);
}

static void step_next(upgrade_runner *u) {
	char name[256];

	while (u->pos < u->n_items) {
		const upgrade_item *it = &u->items[u->pos];
		if (it->step->once && !it->undo && !u->resuming &&
		    int_has(u->prog.once_done, u->prog.n_once_done, it->index)) {
			upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_STEP }, "step %zu/%zu %s: skipped (once, ran before)",
				     u->pos + 1, u->n_items, upgrade_item_name(it, name, sizeof name));
			u->pos++;
			continue;
		}
		break;
	}
	if (u->pos >= u->n_items) {
		list_end(u);
		return;
	}

	const upgrade_item *it = &u->items[u->pos];
	u->prog.step = (int) u->pos;
	u->prog.state = ROLLOUT_STEP_RUNNING;
	if (replace_str(&u->prog.step_name, upgrade_item_name(it, name, sizeof name)) < 0 ||
	    replace_str(&u->prog.boot_id, u->boot_id) < 0 ||
	    (!it->undo && it->step->once && int_add(&u->prog.once_done, &u->prog.n_once_done, it->index) < 0) ||
	    (!it->undo && it->step->undo && int_add(&u->prog.undo_pending, &u->prog.n_undo_pending, it->index) < 0)) {
		step_finished(u, -ENOMEM, "out of memory");
		return;
	}
	write_then(u, step_go);
}

/* The step list failed: the undos owed, the last first, then the end. */
static void undo_start(upgrade_runner *u) {
	free(u->undo_list);
	u->undo_list = NULL;
	u->n_undo_list = u->undo_pos = 0;
	for (size_t i = u->prog.n_undo_pending; i > 0; i--)
		if (int_add(&u->undo_list, &u->n_undo_list, u->prog.undo_pending[i - 1]) < 0)
			break;
	u->undoing = true;
	undo_next(u);
}

static void undo_next(upgrade_runner *u) {
	const conf_steps *l = u->cur.verb == ROLLOUT_PREPARE ? &u->conf->upgrade.prepare : &u->conf->upgrade.steps;

	while (u->undo_pos < u->n_undo_list) {
		int k = u->undo_list[u->undo_pos];
		if (k >= 0 && (size_t) k < l->n && l->steps[k].undo) {
			u->undo_item = (upgrade_item) { .step = &l->steps[k], .undo = true, .index = k };
			upgrade_step_start(u, &u->undo_item);
			return;
		}
		u->undo_pos++;
	}
	u->undoing = false;
	free(u->prog.undo_pending);
	u->prog.undo_pending = NULL;
	u->prog.n_undo_pending = 0;
	list_end(u);
}

static void step_finished(upgrade_runner *u, int error, const char *message) {
	const upgrade_item *it = u->undoing ? &u->undo_item : &u->items[u->pos];
	char name[256];

	upgrade_item_name(it, name, sizeof name);
	if (u->undoing) {
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_STEP, .error = error }, "undo of step %d %s: %s%s%s",
			     it->index + 1, name, error ? "failed: " : "done", error ? message : "", "");
		u->undo_pos++;
		undo_next(u);
		return;
	}

	u->resuming = false;
	upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_STEP, .error = error }, "step %zu/%zu %s: %s%s",
		     u->pos + 1, u->n_items, name, error ? "failed: " : "done", error ? message : "");
	if (error == 0) {
		u->pos++;
		step_next(u);
		return;
	}

	free(u->fail_error);
	/* the progress's step and step_name say where; error says what */
	u->fail_error = strdup(message && *message ? message : "failed");
	if (!u->fail_error)
		u->fail_error = strdup("a step failed");
	/* FINISH goes on with the other undos and cleanup; anything else stops
	 * here and undoes what it owes. */
	if (u->cur.verb == ROLLOUT_FINISH) {
		u->pos++;
		step_next(u);
	} else
		undo_start(u);
}

/* ---- orders ---- */

/* The list of FINISH: the undos owed (last first), then cleanup if asked. */
static int build_items(upgrade_runner *u) {
	const conf_upgrade *c = &u->conf->upgrade;
	const conf_steps *l = u->cur.verb == ROLLOUT_PREPARE ? &c->prepare : &c->steps;
	size_t n = 0;

	free(u->items);
	u->items = NULL;
	u->n_items = 0;
	if (u->cur.verb != ROLLOUT_FINISH) {
		u->items = calloc(l->n ? l->n : 1, sizeof *u->items);
		if (!u->items)
			return -ENOMEM;
		for (size_t i = 0; i < l->n; i++)
			u->items[n++] = (upgrade_item) { .step = &l->steps[i], .index = (int) i };
		u->n_items = n;
		return 0;
	}
	/* The undos owed belong to the steps (an upgrade's, or a prepare's
	 * when that is all that ran). */
	u->items = calloc(u->prog.n_undo_pending + c->cleanup.n + 1, sizeof *u->items);
	if (!u->items)
		return -ENOMEM;
	for (size_t i = u->prog.n_undo_pending; i > 0; i--) {
		int k = u->prog.undo_pending[i - 1];
		if (k >= 0 && (size_t) k < c->steps.n && c->steps.steps[k].undo)
			u->items[n++] = (upgrade_item) { .step = &c->steps.steps[k], .undo = true, .index = k };
	}
	if (u->cur.cleanup)
		for (size_t i = 0; i < c->cleanup.n; i++)
			u->items[n++] = (upgrade_item) { .step = &c->cleanup.steps[i], .index = (int) i };
	u->n_items = n;
	return 0;
}

static void begin(upgrade_runner *u, const upgrade_start *st) {
	rollout_order_done(&u->cur);
	if (rollout_order_copy(&u->latest, &u->cur) < 0)
		goto nomem;
	if (!st->carry) {
		free(u->prog.once_done);
		free(u->prog.undo_pending);
		u->prog.once_done = u->prog.undo_pending = NULL;
		u->prog.n_once_done = u->prog.n_undo_pending = 0;
	}
	if (replace_str(&u->prog.plan, u->cur.plan) < 0 || build_items(u) < 0)
		goto nomem;
	u->prog.generation = u->cur.generation;
	u->prog.verb = u->cur.verb;
	u->prog.n_steps = (int) u->n_items;
	u->prog.state = ROLLOUT_STEP_RUNNING;
	u->prog.finished = 0;
	if (st->kind == UPGRADE_START_FRESH) {
		u->prog.started = now_sec();
		u->prog.step = 0;       /* nothing of the last order's steps */
		free(u->prog.step_name);
		u->prog.step_name = NULL;
	}
	free(u->prog.error);
	u->prog.error = NULL;
	free(u->fail_error);
	u->fail_error = NULL;
	u->have_prog = true;
	u->busy = true;
	u->undoing = false;
	u->resuming = st->kind == UPGRADE_START_RESUME;
	u->pos = u->resuming ? (size_t) st->step : 0;
	if (u->pos > u->n_items)
		u->pos = u->n_items;
	upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_ORDER }, "%s of %s gen %lld to %s: %s at step %zu/%zu",
		     rollout_verb_to_string(u->cur.verb), u->cur.plan, (long long) u->cur.generation,
		     u->cur.target.image ? u->cur.target.image : "-", u->resuming ? "resuming" : "starting",
		     u->pos + 1, u->n_items);
	step_next(u);
	return;
nomem:
	upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = -ENOMEM },
		     "out of memory; trying the order again after a back-off");
	retry_later(u, consider);
}

static void consider(upgrade_runner *u) {
	upgrade_start st;

	if (u->busy || !u->started)
		return;
	upgrade_decide_start(u->have_latest ? &u->latest : NULL, u->have_prog ? &u->prog : NULL, &st);
	if (st.kind == UPGRADE_START_NONE) {
		if (u->have_latest && st.why && (strstr(st.why, "stale") || upgrade_order_config_only(&u->latest)))
			upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_ORDER }, "order of %s gen %lld ignored: %s",
				     u->latest.plan, (long long) u->latest.generation, st.why);
		return;
	}
	begin(u, &st);
}

/* ---- following the order (follow.c) ---- */

static void on_follow(upgrade_follow *f, const upgrade_follow_event *e, void *userdata) {
	upgrade_runner *u = userdata;
	const char *order_key = upgrade_follow_order_key(f);

	if (e->kind == UPGRADE_FOLLOW_TROUBLE) {
		upgrade_event ev = { .kind = UPGRADE_EVENT_TROUBLE, .error = e->error };
		switch (e->trouble) {
		case UPGRADE_FOLLOW_READ:
			upgrade_emit(u, &ev, "cannot read this node's order: %s; again after a back-off", e->message);
			break;
		case UPGRADE_FOLLOW_WATCH:
			upgrade_emit(u, &ev, "cannot watch %s: %s; again after a back-off", order_key, e->message);
			break;
		case UPGRADE_FOLLOW_CANCELED:
			upgrade_emit(u, &ev, "the watch of %s was cancelled; reading again after a back-off", order_key);
			break;
		case UPGRADE_FOLLOW_BAD_ORDER:
			upgrade_emit(u, &ev, "%s: unreadable order: %s", order_key, e->message);
			break;
		case UPGRADE_FOLLOW_BAD_PROGRESS:
			/* Our own progress is read once: from then on we are its writer. */
			if (!u->started)
				upgrade_emit(u, &ev, "%s: unreadable progress, starting afresh: %s", e->key, e->message);
			break;
		case UPGRADE_FOLLOW_STOPPED:
			upgrade_emit(u, &ev, "cannot schedule a retry: the upgrade runner stops");
			break;
		}
		return;
	}
	rollout_order o = {};
	if (e->order && rollout_order_copy(e->order, &o) < 0) {
		rollout_order_done(&o);
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = -ENOMEM },
			     "out of memory: %s stands as it was until its next change", order_key);
		return;
	}
	rollout_order_done(&u->latest);
	u->latest = o;
	u->have_latest = e->order != NULL;
	if (e->read && !u->started) {
		if (e->progress) {
			rollout_progress_done(&u->prog);
			u->prog = *e->progress;
			*e->progress = (rollout_progress) {};
			u->have_prog = true;
			(void) replace_str(&u->prev_boot_id, u->prog.boot_id);
		}
		u->started = true;
	}
	consider(u);
}

static void follow_start(upgrade_runner *u) {
	int r = upgrade_follow_new(&u->follow, u->event, u->etcd, u->conf->prefix, u->conf->node_id, on_follow, u);
	if (r < 0) {
		upgrade_emit(u, &(upgrade_event) { .kind = UPGRADE_EVENT_TROUBLE, .error = r },
			     "cannot follow this node's order: %s; again after a back-off", strerror(-r));
		retry_later(u, follow_start);
	}
}

/* ---- the runner ---- */

int upgrade_runner_new(upgrade_runner **out, sd_event *event, etcd_client *etcd, units_bus *bus, conf *c,
		       upgrade_event_cb cb, void *userdata) {
	_cleanup_(upgrade_runner_freep) upgrade_runner *u = NULL;

	if (!out || !event || !etcd || !bus || !c || !c->upgrade.present)
		return -EINVAL;
	u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->bo = BACKOFF_INIT(UPGRADE_RETRY_USEC, UPGRADE_RETRY_CAP_USEC);
	u->event = sd_event_ref(event);
	u->etcd = etcd;
	u->bus = bus;
	u->conf = conf_ref(c);
	u->cb = cb;
	u->userdata = userdata;
	u->step_done = step_finished;
	u->progress_key = keys_entry(c->prefix, KEYS_UPGRADE_PROGRESS, c->node_id);
	if (!u->progress_key)
		return errno == EINVAL ? -EINVAL : -ENOMEM;
	read_boot_id(u->boot_id, sizeof u->boot_id);
	read_image(u, follow_start);
	*out = TAKE_PTR(u);
	return 0;
}

upgrade_runner *upgrade_runner_free(upgrade_runner *u) {
	if (!u)
		return NULL;
	units_job_cancel(u->job);
	upgrade_follow_free(u->follow);
	etcd_call_cancel(u->call);
	child_run_free(u->image_run);
	sd_event_source_disable_unref(u->retry);
	rollout_order_done(&u->latest);
	rollout_order_done(&u->cur);
	rollout_progress_done(&u->prog);
	free(u->items);
	free(u->undo_list);
	free(u->fail_error);
	free(u->step_unit);
	free(u->prev_boot_id);
	free(u->image);
	free(u->progress_key);
	conf_unref(u->conf);
	sd_event_unref(u->event);
	free(u);
	return NULL;
}

void upgrade_runner_set_env(upgrade_runner *u, upgrade_env_fn fn, void *userdata) {
	u->env_fn = fn;
	u->env_userdata = userdata;
}

const char *upgrade_runner_image(const upgrade_runner *u) {
	return u ? u->image : NULL;
}

bool upgrade_runner_busy(const upgrade_runner *u) {
	return u && u->busy;
}
