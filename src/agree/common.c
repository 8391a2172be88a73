/* common.c — what the agree files share (agree-internal.h): the errors
 * every operation reports, the read operation's life (a snapshot read and
 * a history listing both run as one: created, delivered once, freed), the
 * result values' destructors, the fence copy proposals and collections
 * keep, and running the loop for the *_sync wrappers. */
#include <stdarg.h>

#include "agree-internal.h"

/* ---- errors ------------------------------------------------------------------------ */

void agree_error_set(agree_error *e, int code, const char *fmt, ...) {
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

void agree_error_etcd(agree_error *e, const etcd_error *ee, const char *what) {
	char buf[512];

	agree_error_set(e, ee->code < 0 ? ee->code : -EIO, "%s: %s", what, etcd_error_format(ee, buf, sizeof buf));
}

int agree_run_until(etcd_client *c, const bool *done) {
	sd_event *e = etcd_client_event(c);

	/* Every etcd call carries a timeout and every retry is bounded, so
	 * this ends. */
	while (!*done) {
		int r = sd_event_run(e, UINT64_MAX);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- fences ---------------------------------------------------------------------- */

void agree_fence_done(agree_fence *f) {
	/* bufs has gaps (compares without a value): free by count. */
	for (size_t i = 0; f->bufs && i < 2 * f->n; i++)
		free(f->bufs[i]);
	free(f->bufs);
	free(f->v);
	*f = (agree_fence){};
}

static int fence_copy_one(agree_fence *f, size_t i, const etcd_compare *c) {
	size_t klen = c->key_len ? c->key_len : strlen(c->key);

	f->v[i] = *c;
	f->bufs[2 * i] = bytes_dup(c->key, klen);
	if (!f->bufs[2 * i])
		return -ENOMEM;
	f->v[i].key = f->bufs[2 * i];
	f->v[i].key_len = klen;
	if (c->value) {
		size_t vlen = c->value_len ? c->value_len : strlen(c->value);
		f->bufs[2 * i + 1] = bytes_dup(c->value, vlen);
		if (!f->bufs[2 * i + 1])
			return -ENOMEM;
		f->v[i].value = f->bufs[2 * i + 1];
		f->v[i].value_len = vlen;
	}
	return 0;
}

int agree_fence_copy(agree_fence *out, const etcd_compare *fence, size_t n) {
	*out = (agree_fence){};
	if (n == 0)
		return 0;
	if (!fence)
		return -EINVAL;
	out->n = n;
	out->v = calloc(n, sizeof *out->v);
	out->bufs = calloc(2 * n, sizeof *out->bufs);
	if (!out->v || !out->bufs) {
		agree_fence_done(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (fence_copy_one(out, i, &fence[i]) < 0) {
			agree_fence_done(out);
			return -ENOMEM;
		}
	return 0;
}

/* ---- the read operation ------------------------------------------------------------ */

void agree_delta_done(agree_delta *d) {
	if (!d)
		return;
	free(d->base_id);
	tree_leaves_done(&d->set);
	for (size_t i = 0; i < d->n_deleted; i++)
		free(d->deleted[i]);
	free(d->deleted);
	*d = (agree_delta){};
}

void agree_snapshot_done(agree_snapshot *s) {
	if (!s)
		return;
	free(s->config_id);
	json_decref(s->files);
	tree_leaves_done(&s->leaves);
	json_decref(s->nodes);
	json_decref(s->node_create_revisions);
	free(s->faults);
	agree_delta_done(&s->delta);
	*s = (agree_snapshot){};
}

agree_read_op *agree_read_op_new(etcd_client *c, const char *prefix, agree_read_kind kind, void *userdata) {
	agree_read_op *op = calloc(1, sizeof *op);

	if (!op)
		return NULL;
	op->kind = kind;
	op->client = c;
	op->userdata = userdata;
	op->prefix = strdup(prefix);
	if (!op->prefix) {
		free(op);
		return NULL;
	}
	return op;
}

static void read_op_destroy(agree_read_op *op) {
	if (op->call)
		etcd_call_cancel(op->call);
	free(op->prefix);
	agree_snapshot_done(&op->snap);
	agree_folders_done(&op->folders);
	free(op);
}

agree_read_op *agree_read_op_free(agree_read_op *op) {
	/* From inside its own callback: it goes away when the callback
	 * returns. */
	if (op && !op->in_callback)
		read_op_destroy(op);
	return NULL;
}

void agree_read_deliver(agree_read_op *op, const agree_error *err) {
	op->call = NULL;
	op->in_callback = true;
	if (op->kind == AGREE_READ_HISTORY)
		op->folders_cb(err ? NULL : &op->folders, err, op->userdata);
	else
		/* A broken snapshot is reported with what was read of it. */
		op->cb(!err || err == &op->broken ? &op->snap : NULL, err, op->userdata);
	read_op_destroy(op);
}

