/* calls.c — typed EC2 calls on top of the transport (see ec2.h, "typed
 * calls"): operations that page, batch and parse, each request built by
 * params.c's pure builders. Nothing here logs.
 *
 * An operation (ec2_op) makes one call at a time. Its first call starts
 * from a defer event source, so a start function never reports before it
 * returns. ec2_call_start() itself may report at once (no credentials), so
 * every place that starts a call does so last and does not touch the op
 * afterwards; `depth` counts the starts on the stack, and an op that
 * finished inside one is freed by the outermost. */
#include <stdarg.h>

#include "ec2.h"

#define PAGES_MAX 100000u               /* a server whose tokens never end */

int ec2_not_found_ids(const char *message, char ***out) {
	_cleanup_strv_free_ char **v = NULL;
	size_t n = 0;
	const char *s, *end;

	if (!message || !out)
		return -EINVAL;
	s = strchr(message, '\'');
	if (!s)
		return -EINVAL;
	s++;
	/* A message cut short (ec2_reply's buffer) has no closing quote: the
	 * last id may be partial; callers match ids exactly, so it is harmless. */
	end = strchr(s, '\'');
	if (!end)
		end = s + strlen(s);
	while (s < end) {
		size_t len = strcspn(s, ",");
		if (s + len > end)
			len = (size_t) (end - s);
		const char *a = s, *b = s + len;
		while (a < b && *a == ' ')
			a++;
		while (b > a && b[-1] == ' ')
			b--;
		if (b > a) {
			char **nv = realloc(v, (n + 2) * sizeof *v);
			if (!nv)
				return -ENOMEM;
			v = nv;
			v[n] = strndup(a, (size_t) (b - a));
			v[n + 1] = NULL;
			if (!v[n])
				return -ENOMEM;
			n++;
		}
		s += len;
		if (s < end && *s == ',')
			s++;
	}
	if (n == 0)
		return -EINVAL;
	*out = TAKE_PTR(v);
	return 0;
}

/* ---- operations ------------------------------------------------------------------ */

static int params_copy(const ec2_params *from, ec2_params *to) {
	for (size_t i = 0; i < from->n; i++) {
		int r = ec2_params_add(to, from->items[i].name, from->items[i].value);
		if (r < 0)
			return r;
	}
	return 0;
}

typedef enum op_kind {
	OP_RUN,
	OP_TERMINATE,
	OP_STOP,
	OP_START,
	OP_DESCRIBE_INSTANCES,
	OP_CREATE_TAGS,
	OP_DELETE_TAGS,
	OP_INSTANCE_STATUS,
	OP_RESERVED,
	OP_SPOT_PRICES,
	OP_TEMPLATE_VERSION,
} op_kind;

/* Terminate, Stop and Start: ids in batches, state changes merged. */
static bool batched(op_kind k) {
	return k == OP_TERMINATE || k == OP_STOP || k == OP_START;
}

struct ec2_op {
	ec2_client *client;
	op_kind kind;
	const char *action;
	ec2_params base;                /* every page's params but NextToken */
	bool paged;
	char *next_token;
	unsigned pages;
	unsigned attempts;              /* summed over the calls */

	ec2_call *call;                 /* in flight, or NULL */
	sd_event_source *defer;
	unsigned depth;                 /* ec2_call_start()s on the stack */
	unsigned replies;
	bool finished;

	void (*cb)(void);               /* the typed callback, cast back by kind */
	void *userdata;

	/* batched kinds (OP_TERMINATE, OP_STOP, OP_START) */
	char **ids;
	size_t n_ids, pos;              /* the next batch starts at ids[pos] */
	char **batch;                   /* the batch in flight (strings borrowed from ids) */
	size_t n_batch;

	union {
		ec2xml_run_instances run;
		ec2_terminate_result term;      /* batched kinds */
		ec2xml_describe_instances di;
		ec2xml_ack ack;
		ec2xml_describe_instance_status st;
		ec2xml_describe_reserved_instances ri;
		ec2xml_spot_price_history sp;
		ec2xml_launch_template_version tv;
	} res;
};

static void op_free(ec2_op *op) {
	if (!op)
		return;
	ec2_call_cancel(op->call);
	sd_event_source_disable_unref(op->defer);
	ec2_params_done(&op->base);
	free(op->next_token);
	switch (op->kind) {
	case OP_RUN:
		ec2xml_run_instances_done(&op->res.run);
		break;
	case OP_TERMINATE:
	case OP_STOP:
	case OP_START:
		ec2xml_terminate_instances_done(&op->res.term.changes);
		strv_free(op->res.term.not_found);
		break;
	case OP_DESCRIBE_INSTANCES:
		ec2xml_describe_instances_done(&op->res.di);
		break;
	case OP_CREATE_TAGS:
	case OP_DELETE_TAGS:
		ec2xml_ack_done(&op->res.ack);
		break;
	case OP_INSTANCE_STATUS:
		ec2xml_describe_instance_status_done(&op->res.st);
		break;
	case OP_RESERVED:
		ec2xml_describe_reserved_instances_done(&op->res.ri);
		break;
	case OP_SPOT_PRICES:
		ec2xml_spot_price_history_done(&op->res.sp);
		break;
	case OP_TEMPLATE_VERSION:
		ec2xml_launch_template_version_done(&op->res.tv);
		break;
	}
	strv_free(op->ids);
	free(op->batch);
	free(op);
}

void ec2_op_cancel(ec2_op *op) {
	/* From inside its own callback the op is already finishing: its
	 * finisher frees it. */
	if (!op || op->finished)
		return;
	op_free(op);
}

/* Reports once; frees the op unless a start below is still on the stack. */
static void op_finish(ec2_op *op, const ec2_reply *reply) {
	ec2_reply r = *reply;

	r.attempts = op->attempts;
	op->finished = true;
	op->call = NULL;
	switch (op->kind) {
	case OP_RUN:
		((ec2_run_instances_cb) op->cb)(op->client, &r, &op->res.run, op->userdata);
		break;
	case OP_TERMINATE:
	case OP_STOP:
	case OP_START:
		((ec2_terminate_cb) op->cb)(op->client, &r, &op->res.term, op->userdata);
		break;
	case OP_DESCRIBE_INSTANCES:
		((ec2_describe_instances_cb) op->cb)(op->client, &r, &op->res.di, op->userdata);
		break;
	case OP_CREATE_TAGS:
	case OP_DELETE_TAGS:
		((ec2_ack_cb) op->cb)(op->client, &r, &op->res.ack, op->userdata);
		break;
	case OP_INSTANCE_STATUS:
		((ec2_instance_status_cb) op->cb)(op->client, &r, &op->res.st, op->userdata);
		break;
	case OP_RESERVED:
		((ec2_reserved_instances_cb) op->cb)(op->client, &r, &op->res.ri, op->userdata);
		break;
	case OP_SPOT_PRICES:
		((ec2_spot_price_cb) op->cb)(op->client, &r, &op->res.sp, op->userdata);
		break;
	case OP_TEMPLATE_VERSION:
		((ec2_template_version_cb) op->cb)(op->client, &r, &op->res.tv, op->userdata);
		break;
	}
	if (op->depth == 0)
		op_free(op);
}

static void op_fail(ec2_op *op, int error, const char *fmt, ...) _printf_(3, 4);
static void op_fail(ec2_op *op, int error, const char *fmt, ...) {
	ec2_reply r = { .error = error, .error_class = EC2_ERROR_OTHER };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.message, sizeof r.message, fmt, ap);
	va_end(ap);
	op_finish(op, &r);
}

static void on_reply(ec2_client *c, const ec2_reply *r, void *userdata);

/* Sends params; must be the caller's last use of op. */
static void op_send(ec2_op *op, const ec2_params *params) {
	ec2_call *call = NULL;
	unsigned replies = op->replies;

	op->depth++;
	int r = ec2_call_start(op->client, op->action, params->items, params->n, on_reply, op, &call);
	op->depth--;
	if (r < 0) {
		op_fail(op, r, "EC2 %s: cannot start the call: %s", op->action, strerror(-r));
		return;
	}
	if (op->finished) {
		/* It reported while we were in ec2_call_start(). */
		if (op->depth == 0)
			op_free(op);
		return;
	}
	if (op->replies == replies)
		op->call = call;
}

/* The next call: a page (base + NextToken) or the next batch of ids. */
static void op_next(ec2_op *op) {
	_cleanup_(ec2_params_done) ec2_params p = {};
	int r;

	if (batched(op->kind)) {
		while (op->n_batch == 0 && op->pos < op->n_ids) {
			size_t n = op->n_ids - op->pos < EC2_TERMINATE_BATCH_MAX ? op->n_ids - op->pos : EC2_TERMINATE_BATCH_MAX;
			for (size_t i = 0; i < n; i++)
				op->batch[i] = op->ids[op->pos + i];
			op->n_batch = n;
			op->pos += n;
		}
		if (op->n_batch == 0) {
			ec2_reply ok = { .http_status = 200 };
			op_finish(op, &ok);
			return;
		}
		r = ec2_params_terminate((const char *const *) op->batch, op->n_batch, &p);     /* stop, start alike */
	} else {
		r = params_copy(&op->base, &p);
		if (r >= 0 && op->next_token)
			r = ec2_params_add(&p, "NextToken", op->next_token);
	}
	if (r < 0) {
		op_fail(op, r, "EC2 %s: cannot build the request: %s", op->action, strerror(-r));
		return;
	}
	op_send(op, &p);
}

static int on_defer(sd_event_source *s, void *userdata) {
	ec2_op *op = userdata;

	op->defer = sd_event_source_disable_unref(op->defer);
	op_next(op);
	return 0;
}

/* Appends src[0..n) (elements moved) to (*dst, *dst_n), then frees src's array. */
static int merge(void **dst, size_t *dst_n, void **src, size_t *src_n, size_t size) {
	if (*src_n == 0)
		return 0;
	void *a = realloc(*dst, (*dst_n + *src_n) * size);
	if (!a)
		return -ENOMEM;
	memcpy((char *) a + *dst_n * size, *src, *src_n * size);
	*dst = a;
	*dst_n += *src_n;
	free(*src);
	*src = NULL;
	*src_n = 0;
	return 0;
}

#define MERGE(dst, dn, src, sn) merge((void **) &(dst), &(dn), (void **) &(src), &(sn), sizeof *(dst))

static void take_str(char **dst, char **src) {
	free(*dst);
	*dst = TAKE_PTR(*src);
}

/* Parses one successful reply into op->res. 0, or -EBADMSG/-ENOMEM/-ELIBACC. For
 * paged kinds, op->next_token becomes the page's token (NULL: the last). */
static int op_absorb(ec2_op *op, const ec2_reply *r) {
	_cleanup_(ec2_error_done) ec2_error e = {};
	int s = (int) r->http_status, k = 0;
	const char *b = r->body ? r->body : "";
	size_t len = r->body ? r->body_len : 0;
	char *token = NULL;

	switch (op->kind) {
	case OP_RUN:
		k = ec2xml_parse_run_instances(s, b, len, &op->res.run, &e);
		break;
	case OP_TERMINATE:
	case OP_STOP:
	case OP_START: {
		_cleanup_(ec2xml_terminate_instances_done) ec2xml_terminate_instances t = {};
		if (op->kind == OP_STOP)
			k = ec2xml_parse_stop_instances(s, b, len, &t, &e);
		else if (op->kind == OP_START)
			k = ec2xml_parse_start_instances(s, b, len, &t, &e);
		else
			k = ec2xml_parse_terminate_instances(s, b, len, &t, &e);
		if (k >= 0) {
			take_str(&op->res.term.changes.request_id, &t.request_id);
			k = MERGE(op->res.term.changes.items, op->res.term.changes.n_items, t.items, t.n_items);
			op->res.term.batches++;
		}
		break;
	}
	case OP_DESCRIBE_INSTANCES: {
		_cleanup_(ec2xml_describe_instances_done) ec2xml_describe_instances d = {};
		k = ec2xml_parse_describe_instances(s, b, len, &d, &e);
		if (k >= 0) {
			take_str(&op->res.di.request_id, &d.request_id);
			token = TAKE_PTR(d.next_token);
			k = MERGE(op->res.di.reservations, op->res.di.n_reservations, d.reservations,
				  d.n_reservations);
		}
		break;
	}
	case OP_CREATE_TAGS:
	case OP_DELETE_TAGS:
		k = ec2xml_parse_ack(s, b, len, op->action, &op->res.ack, &e);
		break;
	case OP_INSTANCE_STATUS: {
		_cleanup_(ec2xml_describe_instance_status_done) ec2xml_describe_instance_status d = {};
		k = ec2xml_parse_describe_instance_status(s, b, len, &d, &e);
		if (k >= 0) {
			take_str(&op->res.st.request_id, &d.request_id);
			token = TAKE_PTR(d.next_token);
			k = MERGE(op->res.st.items, op->res.st.n_items, d.items, d.n_items);
		}
		break;
	}
	case OP_RESERVED:
		k = ec2xml_parse_describe_reserved_instances(s, b, len, &op->res.ri, &e);
		break;
	case OP_TEMPLATE_VERSION:
		k = ec2xml_parse_launch_template_version(s, b, len, &op->res.tv, &e);
		break;
	case OP_SPOT_PRICES: {
		_cleanup_(ec2xml_spot_price_history_done) ec2xml_spot_price_history d = {};
		k = ec2xml_parse_spot_price_history(s, b, len, &d, &e);
		if (k >= 0) {
			take_str(&op->res.sp.request_id, &d.request_id);
			token = TAKE_PTR(d.next_token);
			k = MERGE(op->res.sp.items, op->res.sp.n_items, d.items, d.n_items);
		}
		break;
	}
	}
	if (k < 0) {
		free(token);
		return k == -ENOMEM || k == -ELIBACC ? k : -EBADMSG;
	}
	if (op->paged) {
		if (token && op->next_token && streq(token, op->next_token)) {
			free(token);
			return -ELOOP;          /* the same page again: it would never end */
		}
		free(op->next_token);
		op->next_token = token;
	} else
		free(token);
	op->pages++;
	return 0;
}

/* A batch (Terminate, Stop, StartInstances) answered NotFound: drop the ids it names from the
 * batch and send the rest. true when handled (op is then not to be
 * touched); false: report the error as it is. Each round must drop at
 * least one id of the batch, so the rounds end: normally one, more only
 * when the reply's message was cut short. */
static bool terminate_not_found(ec2_op *op, const ec2_reply *r) {
	_cleanup_strv_free_ char **bad = NULL;
	size_t kept = 0, dropped = 0;

	if (!batched(op->kind) || r->error != -EREMOTEIO || !streq(r->code, "InvalidInstanceID.NotFound") ||
	    ec2_not_found_ids(r->message, &bad) < 0)
		return false;
	for (size_t i = 0; i < op->n_batch; i++) {
		bool is_bad = false;
		for (char **b = bad; *b; b++)
			if (streq(*b, op->batch[i])) {
				is_bad = true;
				break;
			}
		if (!is_bad) {
			op->batch[kept++] = op->batch[i];
			continue;
		}
		char **nf = realloc(op->res.term.not_found, (op->res.term.n_not_found + 2) * sizeof *nf);
		if (!nf)
			return false;
		op->res.term.not_found = nf;
		nf[op->res.term.n_not_found] = strdup(op->batch[i]);
		if (!nf[op->res.term.n_not_found])
			return false;
		nf[++op->res.term.n_not_found] = NULL;
		dropped++;
	}
	if (dropped == 0) {
		/* Nothing matched: keep the batch as it was. */
		return false;
	}
	op->n_batch = kept;
	op_next(op);
	return true;
}

static void on_reply(ec2_client *c, const ec2_reply *r, void *userdata) {
	ec2_op *op = userdata;
	int k;

	op->call = NULL;
	op->replies++;
	op->attempts += r->attempts;
	if (r->error < 0) {
		if (terminate_not_found(op, r))
			return;
		op_finish(op, r);
		return;
	}
	k = op_absorb(op, r);
	if (k < 0) {
		ec2_reply e = *r;
		e.error = k == -ELOOP ? -EBADMSG : k;
		e.error_class = EC2_ERROR_OTHER;
		if (k == -ENOMEM)
			snprintf(e.message, sizeof e.message, "EC2 %s: out of memory", op->action);
		else if (k == -ELIBACC)
			snprintf(e.message, sizeof e.message, "EC2 %s: cannot load %s to read the reply (is it installed?)",
				 op->action, LIBXML2_SONAME);
		else if (k == -ELOOP)
			snprintf(e.message, sizeof e.message, "EC2 %s: the same NextToken came back twice", op->action);
		else
			snprintf(e.message, sizeof e.message, "EC2 %s: HTTP %ld with a body that is not a %sResponse",
				 op->action, r->http_status, op->action);
		op_finish(op, &e);
		return;
	}
	if (batched(op->kind)) {
		op->n_batch = 0;
		op_next(op);
		return;
	}
	if (op->paged && op->next_token) {
		if (op->pages >= PAGES_MAX) {
			ec2_reply e = *r;
			e.error = -EBADMSG;
			e.error_class = EC2_ERROR_OTHER;
			snprintf(e.message, sizeof e.message, "EC2 %s: more than %u pages", op->action, PAGES_MAX);
			op_finish(op, &e);
			return;
		}
		op_next(op);
		return;
	}
	op_finish(op, r);
}

static int op_new(ec2_client *c, op_kind kind, const char *action, void (*cb)(void), void *userdata,
		  ec2_op **out) {
	ec2_op *op;

	if (!c || !cb)
		return -EINVAL;
	op = calloc(1, sizeof *op);
	if (!op)
		return -ENOMEM;
	op->client = c;
	op->kind = kind;
	op->action = action;
	op->cb = cb;
	op->userdata = userdata;
	*out = op;
	return 0;
}

/* Takes base (built by a builder), schedules the first call. */
static int op_start(ec2_op *op, ec2_params *base, bool paged, ec2_op **out) {
	int r;

	op->base = *base;
	*base = (ec2_params){};
	op->paged = paged;
	r = sd_event_add_defer(ec2_client_event(op->client), &op->defer, on_defer, op);
	if (r < 0) {
		op_free(op);
		return r;
	}
	if (out)
		*out = op;
	return 0;
}

#define OP_BEGIN(kind, action, cb)                                                       \
	ec2_op *op = NULL;                                                               \
	int r = op_new(c, kind, action, (void (*)(void)) (cb), userdata, &op);           \
	if (r < 0)                                                                       \
		return r

int ec2_run_instances(ec2_client *c, const ec2_launch *l, ec2_run_instances_cb cb, void *userdata,
		      ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_RUN, "RunInstances", cb);
	r = ec2_params_run_instances(l, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, false, out);
}

int ec2_create_launch_template_version(ec2_client *c, const ec2_template_version *v, ec2_template_version_cb cb,
				       void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_TEMPLATE_VERSION, "CreateLaunchTemplateVersion", cb);
	r = ec2_params_create_launch_template_version(v, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, false, out);
}

static int batch_op(ec2_client *c, op_kind kind, const char *action, const char *const *ids, size_t n_ids,
		    ec2_terminate_cb cb, void *userdata, ec2_op **out) {
	ec2_params none = {};

	if (!ids || n_ids == 0)
		return -EINVAL;
	for (size_t i = 0; i < n_ids; i++)
		if (!ids[i] || !*ids[i])
			return -EINVAL;
	OP_BEGIN(kind, action, cb);
	op->ids = calloc(n_ids + 1, sizeof *op->ids);
	op->batch = calloc(EC2_TERMINATE_BATCH_MAX, sizeof *op->batch);
	if (!op->ids || !op->batch) {
		op_free(op);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_ids; i++) {
		op->ids[i] = strdup(ids[i]);
		if (!op->ids[i]) {
			op_free(op);
			return -ENOMEM;
		}
	}
	op->n_ids = n_ids;
	return op_start(op, &none, false, out);
}

int ec2_terminate_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb,
			    void *userdata, ec2_op **out) {
	return batch_op(c, OP_TERMINATE, "TerminateInstances", ids, n_ids, cb, userdata, out);
}

int ec2_stop_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb, void *userdata,
		       ec2_op **out) {
	return batch_op(c, OP_STOP, "StopInstances", ids, n_ids, cb, userdata, out);
}

int ec2_start_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb, void *userdata,
			ec2_op **out) {
	return batch_op(c, OP_START, "StartInstances", ids, n_ids, cb, userdata, out);
}

int ec2_describe_instances(ec2_client *c, const ec2_filter *filters, size_t n_filters, unsigned max_results,
			   ec2_describe_instances_cb cb, void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_DESCRIBE_INSTANCES, "DescribeInstances", cb);
	r = ec2_params_describe_instances(filters, n_filters, max_results ? max_results : EC2_MAX_RESULTS_DEFAULT,
					  NULL, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, true, out);
}

static int tags_op(ec2_client *c, op_kind kind, const char *const *ids, size_t n_ids, const ec2_kv *tags,
		   size_t n_tags, ec2_ack_cb cb, void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(kind, kind == OP_CREATE_TAGS ? "CreateTags" : "DeleteTags", cb);
	r = kind == OP_CREATE_TAGS ? ec2_params_create_tags(ids, n_ids, tags, n_tags, &p)
				   : ec2_params_delete_tags(ids, n_ids, tags, n_tags, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, false, out);
}

int ec2_create_tags(ec2_client *c, const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
		    ec2_ack_cb cb, void *userdata, ec2_op **out) {
	return tags_op(c, OP_CREATE_TAGS, ids, n_ids, tags, n_tags, cb, userdata, out);
}

int ec2_delete_tags(ec2_client *c, const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
		    ec2_ack_cb cb, void *userdata, ec2_op **out) {
	return tags_op(c, OP_DELETE_TAGS, ids, n_ids, tags, n_tags, cb, userdata, out);
}

int ec2_describe_instance_status(ec2_client *c, const char *const *ids, size_t n_ids, bool include_all,
				 ec2_instance_status_cb cb, void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_INSTANCE_STATUS, "DescribeInstanceStatus", cb);
	r = ec2_params_describe_instance_status(ids, n_ids, include_all, n_ids ? 0 : EC2_MAX_RESULTS_DEFAULT, NULL,
						&p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, true, out);
}

int ec2_describe_reserved_instances(ec2_client *c, const ec2_filter *filters, size_t n_filters,
				    ec2_reserved_instances_cb cb, void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_RESERVED, "DescribeReservedInstances", cb);
	r = ec2_params_describe_reserved_instances(filters, n_filters, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, false, out);
}

int ec2_describe_spot_price_history(ec2_client *c, const char *const *types, size_t n_types, const char *product,
				    time_t start_time, ec2_spot_price_cb cb, void *userdata, ec2_op **out) {
	ec2_params p = {};
	OP_BEGIN(OP_SPOT_PRICES, "DescribeSpotPriceHistory", cb);
	r = ec2_params_spot_price_history(types, n_types, product, start_time, EC2_MAX_RESULTS_DEFAULT, NULL, &p);
	if (r < 0) {
		op_free(op);
		return r;
	}
	return op_start(op, &p, true, out);
}
