/* propose.c — one change to the cluster config, made by the agreement
 * protocol (agree.h): read a snapshot, apply the caller's change, write a
 * new folder and compare-and-set `current` on the mod_revision it was read
 * at; a lost race starts over from a fresh snapshot after a jittered
 * back-off. */
#include <inttypes.h>

#include "agree-internal.h"
#include "backoff.h"
#include "esc.h"

#define DEFAULT_ATTEMPTS 20
#define DEFAULT_BACKOFF_BASE (20 * USEC_PER_MSEC)
#define DEFAULT_BACKOFF_CAP USEC_PER_SEC
#define DEFAULT_MAX_TXN_OPS 128
/* Raw key+value bytes per txn: well under etcd's limit, so that a txn
 * stays a modest request. */
#define TXN_BYTES (640 * 1024)

/* Ids are "<proposer>_<n>". One counter for the whole process, so two
 * proposals in one process never pick the same n, and n is at least the
 * revision the snapshot was read at, so a restarted process (whose counter
 * starts again from 0) cannot pick an n it used before: every folder it
 * wrote was read at a revision below the one it is reading at now. No
 * threads in corral, so no lock. */
static uint64_t agree_counter;

typedef enum phase {
	PHASE_READ,
	PHASE_CHUNKS,                   /* writing the folder in several txns */
	PHASE_COMMIT,                   /* the CAS txn */
	PHASE_CLEANUP,                  /* deleting a lost folder */
	PHASE_WAIT,                     /* back-off before the next attempt */
	PHASE_DONE,
} phase;

struct agree_proposal {
	etcd_client *client;
	agree_options o;
	char *prefix, *proposer, *scope;
	agree_fence fence;              /* o.fence points into it */

	agree_change_fn change;
	void *change_userdata;
	agree_done_cb done;
	void *done_userdata;

	phase phase;
	bool in_callback;
	backoff backoff;
	unsigned attempts;
	agree_read_op *read;
	agree_partial_op *pread;        /* o.partial: the scope's region only */
	bool full_only;                 /* the partial read did not fit: whole reads */
	bool partial_attempt;           /* this attempt read the region only */
	size_t base_leaves;             /*   and the complete folder's key count */
	etcd_call *call;
	sd_event_source *timer;

	/* this attempt */
	char *previous_id;              /* the snapshot's current */
	int64_t base_mod;               /* current's mod_revision then, 0: absent */
	char *current_key;
	char *new_id;
	char *folder;                   /* <prefix>/configs/<new_id>/ */
	tree_leaves leaves;             /* the new config */
	agree_delta delta;              /* written as a delta: what the folder holds */
	char **keys;                    /* what the folder gets: n_puts keys */
	const char **vals;              /*   and their values (pointing into
	                                   leaves, delta or "") */
	size_t n_puts;
	char *repaired;                 /* the snapshot was broken: how */
	size_t next_chunk;
	bool chunked;                   /* the folder went in before the CAS */
	json_t *diff, *files;
	agree_error pending;            /* reported after cleanup */
	bool retry_after_cleanup;
};

static void attempt_reset(agree_proposal *p) {
	p->partial_attempt = false;
	p->base_leaves = 0;
	free(p->previous_id);
	p->previous_id = NULL;
	free(p->new_id);
	p->new_id = NULL;
	free(p->folder);
	p->folder = NULL;
	tree_leaves_done(&p->leaves);
	agree_delta_done(&p->delta);
	for (size_t i = 0; p->keys && i < p->n_puts; i++)
		free(p->keys[i]);
	free(p->keys);
	p->keys = NULL;
	free(p->vals);
	p->vals = NULL;
	p->n_puts = 0;
	free(p->repaired);
	p->repaired = NULL;
	p->next_chunk = 0;
	p->chunked = false;
	json_decref(p->diff);
	p->diff = NULL;
	json_decref(p->files);
	p->files = NULL;
	p->base_mod = 0;
	p->pending = (agree_error){};
	p->retry_after_cleanup = false;
}

static void proposal_destroy(agree_proposal *p) {
	if (p->call)
		etcd_call_cancel(p->call);
	agree_read_op_free(p->read);
	agree_partial_op_free(p->pread);
	sd_event_source_disable_unref(p->timer);
	attempt_reset(p);
	free(p->prefix);
	free(p->proposer);
	free(p->scope);
	free(p->current_key);
	agree_fence_done(&p->fence);
	free(p);
}

agree_proposal *agree_proposal_free(agree_proposal *p) {
	if (p && !p->in_callback)
		proposal_destroy(p);
	return NULL;
}

/* Reports once, then frees the proposal. committed: the commit txn
 * succeeded, which for stage_only means the folder is staged. */
static void finish(agree_proposal *p, const agree_error *err, bool changed, bool committed, int64_t revision) {
	json_auto_t *empty = json_array();
	bool staged = committed && p->o.stage_only;

	committed = committed && !staged;
	agree_result r = {
		.error = err ? *err : (agree_error){},
		.changed = changed,
		.committed = committed,
		.config_id = committed || staged ? p->new_id : p->previous_id,
		.previous_id = p->previous_id,
		.revision = revision,
		.attempts = p->attempts,
		.diff = p->diff ? p->diff : empty,
		.files = p->files,
		.repaired = committed || changed ? p->repaired : NULL,
		.base_id = committed || staged ? p->delta.base_id : NULL,
		.staged = staged,
	};

	p->phase = PHASE_DONE;
	p->in_callback = true;
	p->done(p, &r, p->done_userdata);
	proposal_destroy(p);
}

_printf_(3, 4) static void finish_error(agree_proposal *p, int code, const char *fmt, ...) {
	agree_error e = { .code = code };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e.message, sizeof e.message, fmt, ap);
	va_end(ap);
	finish(p, &e, p->diff && json_array_size(p->diff) > 0, false, 0);
}

static int attempt_start(agree_proposal *p);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	agree_proposal *p = userdata;
	int r;

	p->timer = sd_event_source_disable_unref(p->timer);
	r = attempt_start(p);
	if (r < 0)
		finish_error(p, r, "cannot read %s: %s", p->current_key, strerror(-r));
	return 0;
}

/* The race was lost: again from a fresh snapshot, after a back-off. */
static void retry(agree_proposal *p) {
	int r;

	if (p->attempts >= p->o.max_attempts)
		return finish_error(p, -EAGAIN, "%s kept changing: gave up after %u attempts", p->current_key,
				    p->attempts);
	uint64_t delay = backoff_next(&p->backoff, backoff_random());
	p->phase = PHASE_WAIT;
	r = sd_event_add_time_relative(etcd_client_event(p->client), &p->timer, CLOCK_MONOTONIC, delay, 0, on_timer, p);
	if (r < 0)
		finish_error(p, r, "cannot arm the back-off timer: %s", strerror(-r));
}

/* After a lost race with a folder written in chunks: delete it (best
 * effort; the collector removes what this misses), then go on. */
static void on_cleanup(etcd_client *c, etcd_response *resp, void *userdata) {
	agree_proposal *p = userdata;

	p->call = NULL;
	etcd_response_free(resp);
	if (p->retry_after_cleanup)
		return retry(p);
	agree_error e = p->pending;
	finish(p, &e, true, false, 0);
}

static void cleanup_then(agree_proposal *p, bool retry_after, const agree_error *err) {
	etcd_delete_req req = { .key = p->folder, .prefix = true };

	p->retry_after_cleanup = retry_after;
	if (err)
		p->pending = *err;
	p->phase = PHASE_CLEANUP;
	if (etcd_delete(p->client, &req, on_cleanup, p, &p->call) < 0) {
		p->call = NULL;
		if (retry_after)
			return retry(p);
		agree_error e = p->pending;
		finish(p, &e, true, false, 0);
	}
}

/* current's compare: unchanged since the snapshot (absent: never created). */
static etcd_compare current_compare(const agree_proposal *p) {
	if (p->base_mod == 0)
		return (etcd_compare){ .key = p->current_key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL };
	return (etcd_compare){ .key = p->current_key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
			       .number = p->base_mod };
}

/* A failed commit: was it the race (current moved) or a fence? The
 * failure branch read `current`. */
static bool lost_race(const agree_proposal *p, const etcd_response *resp) {
	if (resp->n_responses < 1 || resp->responses[0].type != ETCD_OP_RANGE)
		return true;
	const etcd_response *cur = &resp->responses[0];
	int64_t mod = cur->n_kvs > 0 ? cur->kvs[0].mod_revision : 0;
	return mod != p->base_mod;
}

/* After a commit whose reply was lost: `current` naming our id (staged:
 * the folder's first key existing; the txn is atomic) means it landed.
 * Anything else proves nothing (etcd may still apply it), so the error
 * stands and says so. */
static void on_verify(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_proposal *p = userdata;
	agree_error e = p->pending;

	p->call = NULL;
	if (resp->error.code == 0 && resp->n_kvs > 0 && p->o.stage_only)
		return finish(p, NULL, true, true, resp->kvs[0].mod_revision);
	if (resp->error.code == 0 && resp->n_kvs > 0 && resp->kvs[0].value && streq(resp->kvs[0].value, p->new_id))
		return finish(p, NULL, true, true, resp->kvs[0].mod_revision);
	snprintf(e.message + strnlen(e.message, sizeof e.message - 1),
		 sizeof e.message - strnlen(e.message, sizeof e.message - 1),
		 " (the commit of %s may or may not have happened)", p->new_id);
	finish(p, &e, true, false, 0);
}

static void verify_commit(agree_proposal *p) {
	etcd_range_req req = { .key = p->o.stage_only && p->n_puts > 0 ? p->keys[0] : p->current_key };

	if (etcd_range(p->client, &req, on_verify, p, &p->call) < 0) {
		p->call = NULL;
		agree_error e = p->pending;
		finish(p, &e, true, false, 0);
	}
}

static void on_commit(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_proposal *p = userdata;
	bool chunked = p->chunked;
	agree_error e = {};

	p->call = NULL;
	if (resp->error.code < 0) {
		/* The commit's fate is unknown (it may have been applied):
		 * look whether `current` names our id. The chunks stay: if
		 * the commit did land, they are the new config. */
		agree_error_etcd(&p->pending, &resp->error, "committing");
		return verify_commit(p);
	}
	if (resp->succeeded)
		return finish(p, NULL, true, true, resp->header.revision);
	if (lost_race(p, resp)) {
		if (chunked)
			return cleanup_then(p, true, NULL);
		return retry(p);
	}
	agree_error_set(&e, -EPERM, "a fence compare failed: %s was not changed (no longer the leader?)",
			p->current_key);
	if (chunked)
		return cleanup_then(p, false, &e);
	finish(p, &e, true, false, 0);
}

/* stage_only: the same txn without the put of `current` (after chunks:
 * no op at all, the compares alone say the folder was made on the
 * current still current, by the leader still leader). */
static void commit(agree_proposal *p, bool with_leaves) {
	size_t n_cmp = 1 + p->o.n_fence, n_ops = (with_leaves ? p->n_puts : 0) + 1;
	_cleanup_free_ etcd_compare *cmp = calloc(n_cmp, sizeof *cmp);
	_cleanup_free_ etcd_op *ops = calloc(n_ops, sizeof *ops);
	etcd_op fail_ops[] = { { .type = ETCD_OP_RANGE, .range = { .key = p->current_key } } };
	size_t k = 0;

	if (!cmp || !ops)
		return finish_error(p, -ENOMEM, "out of memory");
	cmp[0] = current_compare(p);
	for (size_t i = 0; i < p->o.n_fence; i++)
		cmp[1 + i] = p->fence.v[i];
	if (with_leaves)
		for (size_t i = 0; i < p->n_puts; i++)
			ops[k++] = (etcd_op){ .type = ETCD_OP_PUT,
					      .put = { .key = p->keys[i], .value = p->vals[i],
						       .value_len = strlen(p->vals[i]) } };
	if (!p->o.stage_only)
		ops[k++] = (etcd_op){ .type = ETCD_OP_PUT, .put = { .key = p->current_key, .value = p->new_id } };

	etcd_txn_req txn = { cmp, n_cmp, ops, k, fail_ops, 1 };
	p->phase = PHASE_COMMIT;
	int r = etcd_txn(p->client, &txn, on_commit, p, &p->call);
	if (r < 0) {
		p->call = NULL;
		if (!with_leaves) {
			agree_error e = {};
			agree_error_set(&e, r, "cannot send the commit: %s", strerror(-r));
			return cleanup_then(p, false, &e);
		}
		finish_error(p, r, "cannot send the commit: %s", strerror(-r));
	}
}

static void write_chunk(agree_proposal *p);

static void on_chunk(etcd_client *c, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *owned = resp;
	agree_proposal *p = userdata;
	agree_error e = {};

	p->call = NULL;
	if (resp->error.code < 0) {
		agree_error_etcd(&e, &resp->error, "writing the new config folder");
		return cleanup_then(p, false, &e);
	}
	if (!resp->succeeded)
		/* current moved while we wrote: this folder can never win. */
		return cleanup_then(p, true, NULL);
	if (p->next_chunk >= p->n_puts)
		return commit(p, false);
	write_chunk(p);
}

/* Each chunk also compares `current`, so a lost race stops the writing
 * early instead of after the whole folder. */
static size_t leaf_bytes(const agree_proposal *p, size_t i) {
	return strlen(p->keys[i]) + strlen(p->vals[i]);
}

/* Whether the folder and `current` fit one txn (ops and bytes). */
static bool fits_one_txn(const agree_proposal *p) {
	size_t bytes = 0;

	if (p->n_puts + 1 > p->o.max_txn_ops)
		return false;
	for (size_t i = 0; i < p->n_puts; i++)
		bytes += leaf_bytes(p, i);
	return bytes <= TXN_BYTES;
}

/* A leaf too big for any request etcd takes (AGREE_LEAF_MAX): -E2BIG with
 * the message in err, before anything is written. The key is measured
 * with the longest id this proposer can take, so the answer does not
 * depend on the counter. */
static int leaves_fit(const agree_proposal *p, char *err, size_t size) {
	size_t folder = strlen(p->prefix) + strlen("/configs/") + strlen(p->proposer) + strlen("_") +
			strlen("18446744073709551615") + strlen("/");

	for (size_t i = 0; i < p->leaves.n; i++) {
		size_t bytes = folder + strlen(p->leaves.v[i].path) + strlen(p->leaves.v[i].value);
		if (bytes > AGREE_LEAF_MAX) {
			snprintf(err, size,
				 "leaf %s is too big: %zu bytes with its etcd key, and etcd takes at most %zu "
				 "in one request (docs/config.md)",
				 ESC(p->leaves.v[i].path), bytes, (size_t) AGREE_LEAF_MAX);
			return -E2BIG;
		}
	}
	return 0;
}

static void write_chunk(agree_proposal *p) {
	size_t n = 0, bytes = 0;

	/* at least one leaf per chunk, however big */
	while (p->next_chunk + n < p->n_puts && n < p->o.max_txn_ops &&
	       (n == 0 || bytes + leaf_bytes(p, p->next_chunk + n) <= TXN_BYTES))
		bytes += leaf_bytes(p, p->next_chunk + n++);
	_cleanup_free_ etcd_op *ops = calloc(n, sizeof *ops);
	etcd_compare cmp = current_compare(p);

	if (!ops) {
		agree_error e = {};
		agree_error_set(&e, -ENOMEM, "out of memory");
		return cleanup_then(p, false, &e);
	}
	for (size_t i = 0; i < n; i++) {
		size_t j = p->next_chunk + i;
		ops[i] = (etcd_op){ .type = ETCD_OP_PUT,
				    .put = { .key = p->keys[j], .value = p->vals[j], .value_len = strlen(p->vals[j]) } };
	}
	p->next_chunk += n;
	etcd_txn_req txn = { &cmp, 1, ops, n, NULL, 0 };
	p->phase = PHASE_CHUNKS;
	int r = etcd_txn(p->client, &txn, on_chunk, p, &p->call);
	if (r < 0) {
		agree_error e = {};
		p->call = NULL;
		agree_error_set(&e, r, "cannot write the new config folder: %s", strerror(-r));
		cleanup_then(p, false, &e);
	}
}

/* One more key for the folder: folder + leaf path (with a directory in
 * front: a delta's marker and deletions), and its value. */
static int put_add(agree_proposal *p, const char *dir, const char *leaf, const char *value) {
	_cleanup_free_ char *path = NULL;

	if (dir && asprintf(&path, "%s/%s", dir, leaf) < 0)
		return -ENOMEM;
	p->keys[p->n_puts] = keys_config_leaf(p->prefix, p->new_id, path ? path : leaf);
	if (!p->keys[p->n_puts])
		return -ENOMEM;
	p->vals[p->n_puts++] = value;
	return 0;
}

static int puts_alloc(agree_proposal *p, size_t n) {
	for (size_t i = 0; p->keys && i < p->n_puts; i++)
		free(p->keys[i]);
	free(p->keys);
	free(p->vals);
	p->n_puts = 0;
	p->keys = calloc(n + 1, sizeof *p->keys);
	p->vals = calloc(n + 1, sizeof *p->vals);
	return p->keys && p->vals ? 0 : -ENOMEM;
}

static int puts_complete(agree_proposal *p) {
	int r = puts_alloc(p, p->leaves.n + 1);

	/* A folder is never without a key: that is how a missing one is told
	 * from the empty config (agree.h). */
	if (r >= 0 && p->leaves.n == 0)
		r = put_add(p, NULL, AGREE_EMPTY_MARKER, "");
	for (size_t i = 0; r >= 0 && i < p->leaves.n; i++)
		r = put_add(p, NULL, p->leaves.v[i].path, p->leaves.v[i].value);
	return r;
}

/* The marker first, so that a folder being written in chunks already
 * names its base to the collection. */
static int puts_delta(agree_proposal *p) {
	const agree_delta *d = &p->delta;
	int r = puts_alloc(p, 1 + d->n_deleted + d->set.n);

	if (r >= 0)
		r = put_add(p, AGREE_BASE_MARKER, d->base_id, d->base_id);
	for (size_t i = 0; r >= 0 && i < d->n_deleted; i++)
		r = put_add(p, AGREE_DELETED_DIR, d->deleted[i], "");
	for (size_t i = 0; r >= 0 && i < d->set.n; i++)
		r = put_add(p, NULL, d->set.v[i].path, d->set.v[i].value);
	return r;
}

/* A partial attempt's delta: the old cumulative delta outside the scope's
 * region, the region's new one inside. 1: grown past its cap (only
 * leaves are counted here; the whole read weighs bytes too), the whole
 * config must be read (a complete folder). */
static int choose_partial(agree_proposal *p, const agree_snapshot *s) {
	_cleanup_(agree_delta_done) agree_delta old = {}, region = {};
	int r = agree_delta_within(&s->delta, p->scope, &old);

	if (r >= 0)
		r = agree_delta_make(&s->leaves, s->config_id, &old, &p->leaves, &region);
	if (r >= 0)
		r = agree_delta_splice(&s->delta, &region, p->scope, &p->delta);
	if (r < 0)
		return r;
	if (p->delta.set.n + p->delta.n_deleted > agree_delta_cap(p->base_leaves))
		return 1;
	return puts_delta(p);
}

/* A delta when the complete folder would not fit one txn, the snapshot is
 * sound and the cumulative delta stays small (agree.h); else complete. */
static int choose_folder(agree_proposal *p, const agree_snapshot *s) {
	if (p->partial_attempt)
		return choose_partial(p, s);

	int r = puts_complete(p);

	if (r < 0 || fits_one_txn(p) || p->o.no_delta || s->state != AGREE_SNAPSHOT_SOUND || !s->config_id ||
	    p->repaired)
		return r;
	r = agree_delta_make(&s->leaves, s->config_id, &s->delta, &p->leaves, &p->delta);
	if (r < 0)
		return r;
	if (!agree_delta_worth(&p->delta, &p->leaves)) {
		agree_delta_done(&p->delta);
		return 0;
	}
	return puts_delta(p);
}

static int prepare_write(agree_proposal *p, const agree_snapshot *s) {
	uint64_t n = agree_counter + 1;

	if (s->revision > 0 && (uint64_t) s->revision > n)
		n = (uint64_t) s->revision;
	agree_counter = n;
	if (asprintf(&p->new_id, "%s_%" PRIu64, p->proposer, n) < 0) {
		p->new_id = NULL;
		return -ENOMEM;
	}
	p->folder = keys_entry(p->prefix, KEYS_CONFIGS, p->new_id);
	if (!p->folder)
		return -ENOMEM;
	return choose_folder(p, s);
}

_printf_(3, 4) static void msg_set(char *msg, size_t size, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, size, fmt, ap);
	va_end(ap);
}

/* Whether the change may be made on broken snapshot s (agree_options.scope):
 * 0, or -errno with why (after what err says) in msg. Pure. */
static int base_usable(const agree_options *o, const agree_snapshot *s, const agree_error *err, char *msg,
		       size_t size) {
	const char *scope = o->scope;

	if (s->state == AGREE_SNAPSHOT_SOUND || (scope && !*scope))
		return 0;               /* the whole document is replaced */
	if (!scope) {
		msg_set(msg, size, "%s; a change needs the whole config and cannot be made on it", err->message);
		return err->code;
	}
	if (s->state == AGREE_SNAPSHOT_MISSING) {
		if (o->scope_whole)
			return 0;
		msg_set(msg, size, "%s; this change would start from an empty config", err->message);
		return err->code;
	}
	if (s->state == AGREE_SNAPSHOT_UNREADABLE) {
		msg_set(msg, size, "%s; only a change that replaces the whole config can be made on it",
			err->message);
		return err->code;
	}
	for (size_t i = 0; i < s->n_faults; i++) {
		const char *leaf = s->leaves.v[s->faults[i].leaf].path;

		if (tree_path_within(leaf, scope))
			continue;       /* replaced or removed: left behind */
		msg_set(msg, size, "config %s has a malformed leaf %s/configs/%s/%s (%s): %s", s->config_id, o->prefix,
			s->config_id, leaf, s->faults[i].message,
			tree_path_within(scope, leaf) ? "it lies on the path this change edits"
						      : "this change would carry it into the new config");
		return -EBADMSG;
	}
	return 0;
}

static void on_snapshot(const agree_snapshot *s, const agree_error *err, void *userdata);

/* The partial read does not fit this config: this attempt reads it whole,
 * and so do the next ones. */
static void read_whole(agree_proposal *p) {
	int r;

	attempt_reset(p);
	p->full_only = true;
	p->phase = PHASE_READ;
	r = agree_read(p->client, p->prefix, p->o.read_nodes, on_snapshot, p, &p->read);
	if (r < 0)
		finish_error(p, r, "cannot read %s: %s", p->current_key, strerror(-r));
}

static void on_snapshot(const agree_snapshot *s, const agree_error *err, void *userdata) {
	agree_proposal *p = userdata;
	char msg[sizeof ((agree_error *) NULL)->message] = "";
	int r;

	p->read = NULL;
	if (err && !s)
		return finish(p, err, false, false, 0);
	/* Whatever `current` names, broken or not, it exists. */
	if (p->o.only_if_absent && s->current_mod_revision != 0) {
		p->previous_id = s->config_id ? strdup(s->config_id) : NULL;
		return finish_error(p, -EEXIST, "%s exists (config %s): initial values not applied", p->current_key,
				    s->config_id ? s->config_id : "?");
	}
	if (err) {
		r = base_usable(&p->o, s, err, msg, sizeof msg);
		if (r < 0)
			return finish_error(p, r, "%s", msg);
		p->repaired = strdup(err->message);
		if (!p->repaired)
			return finish_error(p, -ENOMEM, "out of memory");
		msg[0] = '\0';
	}

	if (s->config_id) {
		p->previous_id = strdup(s->config_id);
		if (!p->previous_id)
			return finish_error(p, -ENOMEM, "out of memory");
	}
	p->base_mod = s->current_mod_revision;

	p->files = tree_copy(s->files);
	if (!p->files)
		return finish_error(p, -ENOMEM, "out of memory");
	r = p->change(p->files, s, p->change_userdata, msg, sizeof msg);
	if (r < 0) {
		if (!msg[0])
			snprintf(msg, sizeof msg, "the change failed: %s", strerror(-r));
		json_decref(p->files);
		p->files = NULL;
		return finish_error(p, r, "%s", msg);
	}
	r = tree_flatten(p->files, &p->leaves);
	if (r < 0)
		return finish_error(p, r, "the changed config cannot be stored: %s", strerror(-r));
	if (p->partial_attempt && (r = agree_region_outside(&p->leaves, p->scope, msg, sizeof msg)) < 0)
		return finish_error(p, r, "%s", msg);
	if (p->partial_attempt && !agree_region_above_same(&s->leaves, &p->leaves, p->scope))
		return read_whole(p);
	p->diff = tree_diff(&s->leaves, &p->leaves);
	if (!p->diff)
		return finish_error(p, -ENOMEM, "cannot compare the configs: out of memory");
	/* On a broken snapshot, even the same content is a change: a new
	 * folder is the repair. */
	if (json_array_size(p->diff) == 0 && !p->repaired)
		return finish(p, NULL, false, false, 0);
	r = leaves_fit(p, msg, sizeof msg);
	if (r < 0)
		return finish_error(p, r, "%s", msg);
	if (p->o.dry_run)
		return finish(p, NULL, true, false, 0);

	r = prepare_write(p, s);
	if (r == 1)
		return read_whole(p);
	if (r < 0)
		return finish_error(p, r, "out of memory");
	p->chunked = !fits_one_txn(p);
	if (!p->chunked)
		return commit(p, true);
	write_chunk(p);
}

static void on_partial(agree_partial *res, const agree_error *err, void *userdata) {
	agree_proposal *p = userdata;

	p->pread = NULL;
	if (err)
		return finish(p, err, false, false, 0);
	if (!res)
		return read_whole(p);
	p->partial_attempt = true;
	p->base_leaves = res->base_leaves;
	on_snapshot(&res->snap, NULL, p);
}

static int attempt_start(agree_proposal *p) {
	attempt_reset(p);
	p->attempts++;
	p->phase = PHASE_READ;
	if (p->o.partial && p->scope && *p->scope && !p->o.no_delta && !p->o.read_nodes && !p->full_only)
		return agree_partial_read(p->client, p->prefix, p->scope, p->o.max_txn_ops, on_partial, p, &p->pread);
	return agree_read_snapshot(p->client, p->prefix, p->o.read_nodes, p->o.only_if_absent, on_snapshot, p,
				   &p->read);
}

int agree_propose(agree_proposal **out, etcd_client *c, const agree_options *o, agree_change_fn change,
		  void *change_userdata, agree_done_cb done, void *done_userdata) {
	agree_proposal *p;
	int r;

	if (!c || !o || !o->prefix || !o->proposer || !change || !done)
		return -EINVAL;
	if (!keys_id_valid(o->proposer, strlen(o->proposer)) || strlen(o->proposer) > 150)
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->client = c;
	p->o = *o;
	if (p->o.max_attempts == 0)
		p->o.max_attempts = DEFAULT_ATTEMPTS;
	if (p->o.backoff_base_usec == 0)
		p->o.backoff_base_usec = DEFAULT_BACKOFF_BASE;
	if (p->o.backoff_cap_usec == 0)
		p->o.backoff_cap_usec = DEFAULT_BACKOFF_CAP;
	if (p->o.max_txn_ops == 0)
		p->o.max_txn_ops = DEFAULT_MAX_TXN_OPS;
	if (p->o.max_txn_ops < 2)
		p->o.max_txn_ops = 2;
	p->backoff = BACKOFF_INIT(p->o.backoff_base_usec, p->o.backoff_cap_usec);
	p->change = change;
	p->change_userdata = change_userdata;
	p->done = done;
	p->done_userdata = done_userdata;
	p->prefix = strdup(o->prefix);
	p->proposer = strdup(o->proposer);
	p->scope = o->scope ? strdup(o->scope) : NULL;
	p->current_key = keys_one_of(o->prefix, KEYS_CURRENT);
	if (!p->prefix || !p->proposer || !p->current_key || (o->scope && !p->scope)) {
		proposal_destroy(p);
		return -ENOMEM;
	}
	p->o.prefix = p->prefix;
	p->o.proposer = p->proposer;
	p->o.scope = p->scope;
	r = agree_fence_copy(&p->fence, o->fence, o->n_fence);
	if (r < 0) {
		proposal_destroy(p);
		return r;
	}
	p->o.fence = p->fence.v;

	r = attempt_start(p);
	if (r < 0) {
		proposal_destroy(p);
		return r;
	}
	if (out)
		*out = p;
	return 0;
}

/* ---- blocking ------------------------------------------------------------------ */

void agree_owned_result_done(agree_owned_result *r) {
	if (!r)
		return;
	free(r->config_id);
	free(r->previous_id);
	free(r->repaired);
	free(r->base_id);
	json_decref(r->diff);
	json_decref(r->files);
	*r = (agree_owned_result){};
}

typedef struct propose_sync {
	bool done;
	agree_owned_result *r;
} propose_sync;

static void on_propose_sync(agree_proposal *p, const agree_result *res, void *userdata) {
	propose_sync *ps = userdata;
	agree_owned_result *r = ps->r;

	ps->done = true;
	r->error = res->error;
	r->changed = res->changed;
	r->committed = res->committed;
	r->staged = res->staged;
	r->revision = res->revision;
	r->attempts = res->attempts;
	r->config_id = res->config_id ? strdup(res->config_id) : NULL;
	r->previous_id = res->previous_id ? strdup(res->previous_id) : NULL;
	r->repaired = res->repaired ? strdup(res->repaired) : NULL;
	r->base_id = res->base_id ? strdup(res->base_id) : NULL;
	r->diff = json_incref(res->diff);
	r->files = json_incref(res->files);
	if ((res->config_id && !r->config_id) || (res->previous_id && !r->previous_id) ||
	    (res->repaired && !r->repaired) || (res->base_id && !r->base_id))
		if (r->error.code == 0)
			agree_error_set(&r->error, -ENOMEM, "out of memory");
}

int agree_propose_sync(etcd_client *c, const agree_options *o, agree_change_fn change, void *userdata,
		       agree_owned_result *r) {
	propose_sync ps = { .r = r };
	int k;

	*r = (agree_owned_result){};
	k = agree_propose(NULL, c, o, change, userdata, on_propose_sync, &ps);
	if (k < 0) {
		agree_error_set(&r->error, k, "cannot start the proposal: %s", strerror(-k));
		return k;
	}
	k = agree_run_until(c, &ps.done);
	if (k < 0) {
		agree_error_set(&r->error, k, "event loop failed: %s", strerror(-k));
		return k;
	}
	return r->error.code;
}
