/* codec.c — etcd gateway JSON replies in (encode.c builds the requests),
 * and the etcd_error helpers.
 *
 * jsonpb rules the gateway follows (see docs/etcd-client.md): bytes are
 * padded base64, int64 travel as strings, and zero values, false and empty
 * lists are left out, so every field read here defaults to zero. Nothing a
 * server sends can crash this file: a reply of the wrong shape becomes an
 * ETCD_ERROR_MALFORMED error.
 *
 * jansson ownership: json_object_get() borrows. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>

#include "b64.h"
#include "etcd-internal.h"

/* ---- errors ---------------------------------------------------------------- */

void etcd_error_set(etcd_error *e, etcd_error_kind kind, int code, const char *fmt, ...) {
	va_list ap;

	e->kind = kind;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

int etcd_error_code_from_grpc(int grpc_code) {
	switch (grpc_code) {
	case ETCD_GRPC_INVALID_ARGUMENT:
		return -EINVAL;
	case ETCD_GRPC_NOT_FOUND:
		return -ENOENT;
	case ETCD_GRPC_PERMISSION_DENIED:
	case ETCD_GRPC_UNAUTHENTICATED:
		return -EACCES;
	case ETCD_GRPC_FAILED_PRECONDITION:
		return -EEXIST;
	case ETCD_GRPC_OUT_OF_RANGE:
		return -ERANGE;
	case ETCD_GRPC_UNAVAILABLE:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

const char *etcd_error_format(const etcd_error *e, char *buf, size_t size) {
	/* a message naming every endpoint tried (report.c) names this one */
	if (e->endpoint[0] && !strstr(e->message, e->endpoint))
		snprintf(buf, size, "%s: %s", e->endpoint, e->message);
	else
		snprintf(buf, size, "%s", e->message);
	return buf;
}

void etcd_error_prefix(etcd_error *e, const char *prefix) {
	char msg[sizeof e->message];
	size_t n = strnlen(prefix, sizeof msg - 1);

	memcpy(msg, prefix, n);
	size_t m = strnlen(e->message, sizeof msg - 1 - n);
	memcpy(msg + n, e->message, m);
	msg[n + m] = '\0';
	memcpy(e->message, msg, sizeof msg);
}

bool etcd_error_is_compacted(const etcd_error *e) {
	return e->code == -ERANGE && strstr(e->message, "compacted");
}

/* ---- decoding ---------------------------------------------------------------- */

static int parse_stream_error(json_t *o, etcd_watch_line *out, etcd_error *err);

/* Readers return 0, or -EBADMSG with a message in err naming the field. */

_printf_(2, 3) static int bad(etcd_error *err, const char *fmt, ...) {
	va_list ap;

	etcd_error_set(err, ETCD_ERROR_MALFORMED, -EBADMSG, "malformed reply from etcd: ");
	size_t n = strlen(err->message);
	va_start(ap, fmt);
	vsnprintf(err->message + n, sizeof err->message - n, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int get_int(json_t *o, const char *field, int64_t *out, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return bad(err, "\"%s\" is not an integer", field);
	const char *s = json_string_value(v);
	char *end;
	/* strtoll would skip spaces and take '+': jsonpb never sends those. */
	if (!(isdigit((unsigned char) s[0]) || (s[0] == '-' && isdigit((unsigned char) s[1]))))
		return bad(err, "\"%s\" is not an integer", field);
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return bad(err, "\"%s\" is not an integer", field);
	*out = n;
	return 0;
}

static int get_uint(json_t *o, const char *field, uint64_t *out, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t) json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	char *end;
	if (!s || !isdigit((unsigned char) s[0]))
		return bad(err, "\"%s\" is not an unsigned integer", field);
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return bad(err, "\"%s\" is not an unsigned integer", field);
	*out = n;
	return 0;
}

static int get_bool(json_t *o, const char *field, bool *out, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(err, "\"%s\" is not a boolean", field);
	*out = json_is_true(v);
	return 0;
}

static int get_bytes(json_t *o, const char *field, char **out, size_t *out_len, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = NULL;
	*out_len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(err, "\"%s\" is not a string", field);
	int r = b64_decode(json_string_value(v), json_string_length(v), out, out_len);
	if (r == -ENOMEM) {
		etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
		return r;
	}
	if (r < 0)
		return bad(err, "\"%s\" is not base64", field);
	return 0;
}

/* An optional object field: NULL when absent, error when not an object. */
static int get_object(json_t *o, const char *field, json_t **out, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return bad(err, "\"%s\" is not an object", field);
	*out = v;
	return 0;
}

static int get_array(json_t *o, const char *field, json_t **out, etcd_error *err) {
	json_t *v = json_object_get(o, field);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(err, "\"%s\" is not an array", field);
	*out = v;
	return 0;
}

void etcd_kv_done(etcd_kv *kv) {
	free(kv->key);
	free(kv->value);
	*kv = (etcd_kv){};
}

static int parse_kv(json_t *o, etcd_kv *kv, etcd_error *err) {
	int r;

	*kv = (etcd_kv){};
	if (!json_is_object(o))
		return bad(err, "%s is not an object", "kv");
	if ((r = get_bytes(o, "key", &kv->key, &kv->key_len, err)) < 0 ||
	    (r = get_bytes(o, "value", &kv->value, &kv->value_len, err)) < 0 ||
	    (r = get_int(o, "create_revision", &kv->create_revision, err)) < 0 ||
	    (r = get_int(o, "mod_revision", &kv->mod_revision, err)) < 0 ||
	    (r = get_int(o, "version", &kv->version, err)) < 0 || (r = get_int(o, "lease", &kv->lease, err)) < 0) {
		etcd_kv_done(kv);
		return r;
	}
	if (!kv->key) {
		etcd_kv_done(kv);
		return bad(err, "%s without a key", "kv");
	}
	return 0;
}

static int parse_kv_array(json_t *a, etcd_kv **out, size_t *n_out, etcd_error *err) {
	*out = NULL;
	*n_out = 0;
	if (!a || json_array_size(a) == 0)
		return 0;

	etcd_kv *kvs = calloc(json_array_size(a), sizeof *kvs);
	if (!kvs) {
		etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		int r = parse_kv(v, &kvs[i], err);
		if (r < 0) {
			while (i > 0)
				etcd_kv_done(&kvs[--i]);
			free(kvs);
			return r;
		}
	}
	*out = kvs;
	*n_out = json_array_size(a);
	return 0;
}

static int parse_header(json_t *root, etcd_header *h, etcd_error *err) {
	json_t *o;
	int r;

	*h = (etcd_header){};
	if ((r = get_object(root, "header", &o, err)) < 0 || !o)
		return r;
	if ((r = get_uint(o, "cluster_id", &h->cluster_id, err)) < 0 ||
	    (r = get_uint(o, "member_id", &h->member_id, err)) < 0 ||
	    (r = get_int(o, "revision", &h->revision, err)) < 0 || (r = get_int(o, "raft_term", &h->raft_term, err)) < 0)
		return r;
	return 0;
}

void etcd_response_done(etcd_response *r) {
	for (size_t i = 0; i < r->n_kvs; i++)
		etcd_kv_done(&r->kvs[i]);
	free(r->kvs);
	for (size_t i = 0; i < r->n_responses; i++)
		etcd_response_done(&r->responses[i]);
	free(r->responses);
	if (r->token)
		explicit_bzero(r->token, strlen(r->token));
	free(r->token);
	free(r->version);
	etcd_op_type type = r->type;
	*r = (etcd_response){ .type = type };
}

etcd_response *etcd_response_free(etcd_response *r) {
	if (r) {
		etcd_response_done(r);
		free(r);
	}
	return NULL;
}

static int parse_txn_item(json_t *item, etcd_response *r, etcd_error *err) {
	static const struct {
		const char *field;
		etcd_op_type type;
	} kinds[] = {
		{ "response_range", ETCD_OP_RANGE },
		{ "response_put", ETCD_OP_PUT },
		{ "response_delete_range", ETCD_OP_DELETE },
		{ "response_txn", ETCD_OP_TXN },
	};

	if (!json_is_object(item))
		return bad(err, "%s is not an object", "txn response");
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		json_t *v = json_object_get(item, kinds[i].field);
		if (v)
			return etcd_codec_parse_reply_json(kinds[i].type, v, r) < 0 ? (*err = r->error, -EBADMSG) : 0;
	}
	return bad(err, "%s of an unknown kind", "txn response");
}

static int parse_txn_body(json_t *root, etcd_response *r, etcd_error *err) {
	json_t *a;
	int rr;

	if ((rr = get_bool(root, "succeeded", &r->succeeded, err)) < 0 ||
	    (rr = get_array(root, "responses", &a, err)) < 0)
		return rr;
	size_t n = a ? json_array_size(a) : 0;
	if (n == 0)
		return 0;
	r->responses = calloc(n, sizeof *r->responses);
	if (!r->responses) {
		etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		r->n_responses = i + 1;
		if ((rr = parse_txn_item(json_array_get(a, i), &r->responses[i], err)) < 0)
			return rr;
	}
	return 0;
}

/* Grant, keep-alive and time-to-live replies share ID and TTL. */
static int parse_lease_body(etcd_op_type type, json_t *root, etcd_response *r, etcd_error *err) {
	json_t *a;
	int rr;

	if ((rr = get_int(root, "ID", &r->lease_id, err)) < 0 || (rr = get_int(root, "TTL", &r->ttl, err)) < 0 ||
	    (rr = get_int(root, "grantedTTL", &r->granted_ttl, err)) < 0)
		return rr;
	if (type == ETCD_OP_LEASE_GRANT) {
		json_t *e = json_object_get(root, "error");
		if (json_is_string(e) && json_string_length(e) > 0) {
			etcd_error_set(err, ETCD_ERROR_GATEWAY, -EIO, "lease grant failed: %s",
				       json_string_value(e));
			return -EIO;
		}
		if (r->lease_id == 0 || r->ttl <= 0)
			return bad(err, "%s without ID or TTL", "lease grant reply");
	}
	if (type == ETCD_OP_LEASE_TTL) {
		if ((rr = get_array(root, "keys", &a, err)) < 0)
			return rr;
		size_t n = a ? json_array_size(a) : 0;
		if (n > 0) {
			r->kvs = calloc(n, sizeof *r->kvs);
			if (!r->kvs) {
				etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
				return -ENOMEM;
			}
			for (size_t i = 0; i < n; i++) {
				json_t *k = json_array_get(a, i);
				if (!json_is_string(k) || b64_decode(json_string_value(k), json_string_length(k),
								     &r->kvs[i].key, &r->kvs[i].key_len) < 0)
					return bad(err, "%s", "lease key is not base64");
				r->n_kvs = i + 1;
			}
		}
	}
	return 0;
}

static int parse_body(etcd_op_type type, json_t *root, etcd_response *r) {
	etcd_error *err = &r->error;
	json_t *a, *o;
	int rr;

	if (!json_is_object(root))
		return bad(err, "%s is not a JSON object", "the reply");
	if ((rr = parse_header(root, &r->header, err)) < 0)
		return rr;

	switch (type) {
	case ETCD_OP_RANGE:
		if ((rr = get_array(root, "kvs", &a, err)) < 0 || (rr = parse_kv_array(a, &r->kvs, &r->n_kvs, err)) < 0 ||
		    (rr = get_int(root, "count", &r->count, err)) < 0 || (rr = get_bool(root, "more", &r->more, err)) < 0)
			return rr;
		return 0;

	case ETCD_OP_PUT:
		if ((rr = get_object(root, "prev_kv", &o, err)) < 0)
			return rr;
		if (o) {
			r->kvs = calloc(1, sizeof *r->kvs);
			if (!r->kvs) {
				etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
				return -ENOMEM;
			}
			if ((rr = parse_kv(o, r->kvs, err)) < 0)
				return rr;
			r->n_kvs = 1;
		}
		return 0;

	case ETCD_OP_DELETE:
		if ((rr = get_int(root, "deleted", &r->deleted, err)) < 0 ||
		    (rr = get_array(root, "prev_kvs", &a, err)) < 0 ||
		    (rr = parse_kv_array(a, &r->kvs, &r->n_kvs, err)) < 0)
			return rr;
		return 0;

	case ETCD_OP_TXN:
		return parse_txn_body(root, r, err);

	case ETCD_OP_LEASE_GRANT:
	case ETCD_OP_LEASE_KEEPALIVE:
	case ETCD_OP_LEASE_TTL:
		return parse_lease_body(type, root, r, err);

	case ETCD_OP_AUTH: {
		json_t *t = json_object_get(root, "token");
		if (!json_is_string(t) || json_string_length(t) == 0)
			return bad(err, "%s", "authenticate reply without a token");
		r->token = strdup(json_string_value(t));
		return r->token ? 0 : -ENOMEM;
	}

	case ETCD_OP_STATUS: {
		json_t *v = json_object_get(root, "version");
		if (json_is_string(v) && !(r->version = strdup(json_string_value(v))))
			return -ENOMEM;
		return get_uint(root, "leader", &r->leader, err);
	}

	case ETCD_OP_LEASE_REVOKE:
		return 0;
	}
	return bad(err, "%s", "reply to an unknown request");
}

int etcd_codec_parse_reply_json(etcd_op_type type, json_t *root, etcd_response *r) {
	int rr;

	r->type = type;
	/* Keepalive is a stream even for one renewal: {"result":{...}}, or an
	 * in-stream {"error":{...}}. */
	if (type == ETCD_OP_LEASE_KEEPALIVE && json_is_object(root)) {
		json_t *res = json_object_get(root, "result"), *e = json_object_get(root, "error");
		if (e) {
			etcd_watch_line l = {};
			r->error.grpc_code = -1;
			if (parse_stream_error(e, &l, &r->error) == 0)
				r->error = l.error;
			return r->error.code;
		}
		if (res && !json_is_object(res)) {
			rr = bad(&r->error, "%s", "keepalive result is not an object");
			r->error.grpc_code = -1;
			return rr;
		}
		if (res)
			root = res;
	}
	rr = parse_body(type, root, r);
	if (rr < 0) {
		etcd_error saved = r->error;
		etcd_response_done(r);
		r->error = saved;
		if (r->error.code == 0)
			etcd_error_set(&r->error, ETCD_ERROR_MALFORMED, rr, "malformed reply from etcd");
		r->error.grpc_code = -1;
		return r->error.code;
	}
	return 0;
}

int etcd_codec_parse_reply(etcd_op_type type, const char *body, size_t len, etcd_response *r) {
	json_error_t jerr;
	json_auto_t *root = json_loadb(body, len, 0, &jerr);

	r->type = type;
	if (!root) {
		etcd_error_set(&r->error, ETCD_ERROR_MALFORMED, -EBADMSG, "malformed reply from etcd: %s (at byte %d)",
			       jerr.text, jerr.position);
		r->error.grpc_code = -1;
		return -EBADMSG;
	}
	return etcd_codec_parse_reply_json(type, root, r);
}

void etcd_codec_parse_error_reply(long status, const char *body, size_t len, etcd_error *e) {
	json_auto_t *root = body && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *code = root ? json_object_get(root, "code") : NULL;
	const char *msg = NULL;

	e->http_status = status;
	e->grpc_code = -1;
	if (root) {
		json_t *m = json_object_get(root, "message");
		if (!json_is_string(m))
			m = json_object_get(root, "error");
		msg = json_string_value(m);
	}
	if (json_is_integer(code) && msg) {
		e->grpc_code = (int) json_integer_value(code);
		etcd_error_set(e, ETCD_ERROR_GATEWAY, etcd_error_code_from_grpc(e->grpc_code), "%s (HTTP %ld, code %d)",
			       msg, status, e->grpc_code);
		return;
	}

	/* Plain text (404 for an unknown route, 405 for a GET, a proxy's page):
	 * quote its first line, briefly. */
	char first[120] = "";
	if (body && len > 0) {
		size_t n = 0;
		while (n < len && n < sizeof first - 1 && body[n] != '\n' && body[n] != '\r')
			n++;
		memcpy(first, body, n);
		first[n] = '\0';
	}
	etcd_error_set(e, ETCD_ERROR_HTTP, status == 503 ? -EAGAIN : -EPROTO, "unexpected HTTP status %ld%s%s", status,
		       first[0] ? ": " : "", first);
}

/* ---- watch lines ---------------------------------------------------------------- */

void etcd_watch_line_done(etcd_watch_line *l) {
	for (size_t i = 0; i < l->n_events; i++) {
		etcd_kv_done(&l->events[i].kv);
		etcd_kv_done(&l->events[i].prev_kv);
	}
	free(l->events);
	free(l->cancel_reason);
	*l = (etcd_watch_line){};
}

static int parse_stream_error(json_t *o, etcd_watch_line *out, etcd_error *err) {
	int64_t grpc = -1, http = 0;
	json_t *m = json_object_get(o, "message");
	int r;

	if (!json_is_object(o))
		return bad(err, "%s is not an object", "stream error");
	if ((r = get_int(o, "grpc_code", &grpc, err)) < 0 || (r = get_int(o, "http_code", &http, err)) < 0)
		return r;
	if (!json_object_get(o, "grpc_code"))
		grpc = -1;
	out->error.grpc_code = (int) grpc;
	out->error.http_status = http;
	etcd_error_set(&out->error, ETCD_ERROR_GATEWAY, etcd_error_code_from_grpc((int) grpc),
		       "stream ended by etcd: %s (code %d)", json_is_string(m) ? json_string_value(m) : "no message",
		       (int) grpc);
	return 0;
}

int etcd_codec_parse_watch_line(const char *line, size_t len, etcd_watch_line *out, etcd_error *err) {
	json_error_t jerr;
	json_auto_t *root = json_loadb(line, len, 0, &jerr);
	json_t *res, *a;
	int r;

	*out = (etcd_watch_line){};
	if (!root) {
		etcd_error_set(err, ETCD_ERROR_MALFORMED, -EBADMSG, "malformed watch message: %s", jerr.text);
		return -EBADMSG;
	}
	if (!json_is_object(root))
		return bad(err, "%s is not an object", "watch message");

	json_t *e = json_object_get(root, "error");
	if (e) {
		r = parse_stream_error(e, out, err);
		if (r < 0)
			etcd_watch_line_done(out);
		return r;
	}

	if ((r = get_object(root, "result", &res, err)) < 0)
		return r;
	if (!res)
		return bad(err, "%s", "watch message without result or error");

	if ((r = parse_header(res, &out->header, err)) < 0 || (r = get_bool(res, "created", &out->created, err)) < 0 ||
	    (r = get_bool(res, "canceled", &out->canceled, err)) < 0 ||
	    (r = get_int(res, "watch_id", &out->watch_id, err)) < 0 ||
	    (r = get_int(res, "compact_revision", &out->compact_revision, err)) < 0 ||
	    (r = get_array(res, "events", &a, err)) < 0)
		goto fail;

	json_t *reason = json_object_get(res, "cancel_reason");
	if (json_is_string(reason) && !(out->cancel_reason = strdup(json_string_value(reason)))) {
		r = -ENOMEM;
		goto fail;
	}

	size_t n = a ? json_array_size(a) : 0;
	if (n > 0) {
		out->events = calloc(n, sizeof *out->events);
		if (!out->events) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *ev = json_array_get(a, i), *kv, *prev;
			etcd_event *dst = &out->events[i];

			out->n_events = i + 1;
			if (!json_is_object(ev)) {
				r = bad(err, "%s is not an object", "watch event");
				goto fail;
			}
			json_t *type = json_object_get(ev, "type");
			if (type && !(json_is_string(type) && (streq(json_string_value(type), "PUT") ||
							       streq(json_string_value(type), "DELETE")))) {
				r = bad(err, "%s", "watch event of an unknown type");
				goto fail;
			}
			dst->type = type && streq(json_string_value(type), "DELETE") ? ETCD_EVENT_DELETE
										      : ETCD_EVENT_PUT;
			if ((r = get_object(ev, "kv", &kv, err)) < 0 || (r = get_object(ev, "prev_kv", &prev, err)) < 0)
				goto fail;
			if (!kv) {
				r = bad(err, "%s", "watch event without kv");
				goto fail;
			}
			if ((r = parse_kv(kv, &dst->kv, err)) < 0 || (prev && (r = parse_kv(prev, &dst->prev_kv, err)) < 0))
				goto fail;
		}
	}
	return 0;

fail:
	if (r == -ENOMEM)
		etcd_error_set(err, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
	etcd_watch_line_done(out);
	return r;
}
