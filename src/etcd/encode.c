/* encode.c — etcd gateway JSON requests out: range, put, delete, txn and
 * watch bodies from the request structs of etcd.h, and etcd_prefix_end().
 *
 * jsonpb rules the gateway follows (see docs/etcd-client.md): bytes are
 * padded base64, int64 travel as strings, and zero values and false are
 * left out.
 *
 * jansson ownership: json_object_set_new() and json_array_append_new() steal
 * the reference of the value they are given, so values built inline need no
 * decref. */
#include <inttypes.h>

#include "b64.h"
#include "etcd-internal.h"

static size_t len_or_strlen(const char *s, size_t len) {
	return s && len == 0 ? strlen(s) : len;
}

static int set_bytes(json_t *o, const char *field, const char *data, size_t len) {
	_cleanup_free_ char *b = b64_encode(data ? data : "", data ? len : 0);
	if (!b)
		return -ENOMEM;
	return json_object_set_new(o, field, json_string(b)) < 0 ? -ENOMEM : 0;
}

static int set_int(json_t *o, const char *field, int64_t v) {
	char buf[32];
	snprintf(buf, sizeof buf, "%" PRId64, v);
	return json_object_set_new(o, field, json_string(buf)) < 0 ? -ENOMEM : 0;
}

int etcd_prefix_end(const char *key, size_t key_len, char **out, size_t *out_len) {
	key_len = len_or_strlen(key, key_len);

	/* Strip trailing 0xff bytes, then increment the last byte; a prefix of
	 * only 0xff (or empty) means "to the end": range_end "\0". */
	size_t n = key_len;
	while (n > 0 && (unsigned char) key[n - 1] == 0xff)
		n--;
	char *end = malloc(n > 0 ? n + 1 : 2);
	if (!end)
		return -ENOMEM;
	if (n == 0) {
		end[0] = end[1] = '\0';
		*out_len = 1;
	} else {
		memcpy(end, key, n);
		end[n - 1] = (char) ((unsigned char) end[n - 1] + 1);
		end[n] = '\0';
		*out_len = n;
	}
	*out = end;
	return 0;
}

/* key + (range_end | prefix) into o. */
static int set_key_range(json_t *o, const char *key, size_t key_len, const char *range_end, size_t range_end_len,
			 bool prefix) {
	int r;

	if (!key)
		return -EINVAL;
	key_len = len_or_strlen(key, key_len);
	/* etcd refuses an empty key; "every key" is ["\0", "\0"). */
	if (key_len == 0 && prefix) {
		r = set_bytes(o, "key", "", 1);
		return r < 0 ? r : set_bytes(o, "range_end", "", 1);
	}
	r = set_bytes(o, "key", key, key_len);
	if (r < 0)
		return r;
	if (prefix) {
		_cleanup_free_ char *end = NULL;
		size_t end_len;
		r = etcd_prefix_end(key, key_len, &end, &end_len);
		if (r < 0)
			return r;
		return set_bytes(o, "range_end", end, end_len);
	}
	if (range_end)
		return set_bytes(o, "range_end", range_end, len_or_strlen(range_end, range_end_len));
	return 0;
}

static int set_true(json_t *o, const char *field, bool b) {
	if (!b)
		return 0;
	return json_object_set_new(o, field, json_true()) < 0 ? -ENOMEM : 0;
}

json_t *etcd_codec_range(const etcd_range_req *req) {
	static const char *const orders[] = { "NONE", "ASCEND", "DESCEND" };
	static const char *const targets[] = { "KEY", "VERSION", "CREATE", "MOD", "VALUE" };
	json_auto_t *o = json_object();

	if (!o || set_key_range(o, req->key, req->key_len, req->range_end, req->range_end_len, req->prefix) < 0)
		return NULL;
	if ((req->revision > 0 && set_int(o, "revision", req->revision) < 0) ||
	    (req->limit > 0 && set_int(o, "limit", req->limit) < 0) || set_true(o, "keys_only", req->keys_only) < 0 ||
	    set_true(o, "count_only", req->count_only) < 0 || set_true(o, "serializable", req->serializable) < 0)
		return NULL;
	if ((unsigned) req->sort_order >= ELEMENTSOF(orders) || (unsigned) req->sort_target >= ELEMENTSOF(targets))
		return NULL;
	if (req->sort_order != ETCD_SORT_NONE &&
	    (json_object_set_new(o, "sort_order", json_string(orders[req->sort_order])) < 0 ||
	     json_object_set_new(o, "sort_target", json_string(targets[req->sort_target])) < 0))
		return NULL;
	return json_incref(o);
}

json_t *etcd_codec_put(const etcd_put_req *req) {
	json_auto_t *o = json_object();

	if (!o || !req->key || set_bytes(o, "key", req->key, len_or_strlen(req->key, req->key_len)) < 0)
		return NULL;
	if (!req->ignore_value &&
	    set_bytes(o, "value", req->value, req->value ? len_or_strlen(req->value, req->value_len) : 0) < 0)
		return NULL;
	if ((req->lease != 0 && set_int(o, "lease", req->lease) < 0) || set_true(o, "prev_kv", req->prev_kv) < 0 ||
	    set_true(o, "ignore_value", req->ignore_value) < 0 || set_true(o, "ignore_lease", req->ignore_lease) < 0)
		return NULL;
	return json_incref(o);
}

json_t *etcd_codec_delete(const etcd_delete_req *req) {
	json_auto_t *o = json_object();

	if (!o || set_key_range(o, req->key, req->key_len, req->range_end, req->range_end_len, req->prefix) < 0 ||
	    set_true(o, "prev_kv", req->prev_kv) < 0)
		return NULL;
	return json_incref(o);
}

static json_t *encode_op(const etcd_op *op) {
	const char *name;
	json_t *inner;

	switch (op->type) {
	case ETCD_OP_RANGE:
		name = "request_range";
		inner = etcd_codec_range(&op->range);
		break;
	case ETCD_OP_PUT:
		name = "request_put";
		inner = etcd_codec_put(&op->put);
		break;
	case ETCD_OP_DELETE:
		name = "request_delete_range";
		inner = etcd_codec_delete(&op->del);
		break;
	default:
		return NULL;
	}
	if (!inner)
		return NULL;
	return json_pack("{so}", name, inner);
}

static json_t *encode_compare(const etcd_compare *c) {
	static const char *const results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	static const char *const targets[] = { "VERSION", "CREATE", "MOD", "VALUE", "LEASE" };
	static const char *const fields[] = { "version", "create_revision", "mod_revision", "value", "lease" };
	json_auto_t *o = json_object();

	if (!o || !c->key || (unsigned) c->result >= ELEMENTSOF(results) ||
	    (unsigned) c->target >= ELEMENTSOF(targets))
		return NULL;
	if (set_bytes(o, "key", c->key, len_or_strlen(c->key, c->key_len)) < 0 ||
	    json_object_set_new(o, "result", json_string(results[c->result])) < 0 ||
	    json_object_set_new(o, "target", json_string(targets[c->target])) < 0)
		return NULL;
	int r = c->target == ETCD_CMP_VALUE
			? set_bytes(o, "value", c->value, c->value ? len_or_strlen(c->value, c->value_len) : 0)
			: set_int(o, fields[c->target], c->number);
	if (r < 0)
		return NULL;
	return json_incref(o);
}

static json_t *encode_ops(const etcd_op *ops, size_t n) {
	json_auto_t *a = json_array();
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, encode_op(&ops[i])) < 0)
			return NULL;
	return json_incref(a);
}

json_t *etcd_codec_txn(const etcd_txn_req *req) {
	json_auto_t *o = json_object();
	json_auto_t *cmp = json_array();

	if (!o || !cmp)
		return NULL;
	for (size_t i = 0; i < req->n_compare; i++)
		if (json_array_append_new(cmp, encode_compare(&req->compare[i])) < 0)
			return NULL;
	if (json_object_set(o, "compare", cmp) < 0 ||
	    json_object_set_new(o, "success", encode_ops(req->success, req->n_success)) < 0 ||
	    json_object_set_new(o, "failure", encode_ops(req->failure, req->n_failure)) < 0)
		return NULL;
	return json_incref(o);
}

json_t *etcd_codec_watch(const etcd_watch_req *req, int64_t start_revision) {
	json_auto_t *create = json_object();
	json_auto_t *filters = json_array();

	if (!create || !filters ||
	    set_key_range(create, req->key, req->key_len, req->range_end, req->range_end_len, req->prefix) < 0)
		return NULL;
	if ((start_revision > 0 && set_int(create, "start_revision", start_revision) < 0) ||
	    set_true(create, "prev_kv", req->prev_kv) < 0 ||
	    set_true(create, "progress_notify", req->progress_notify) < 0)
		return NULL;
	if ((req->no_put && json_array_append_new(filters, json_string("NOPUT")) < 0) ||
	    (req->no_delete && json_array_append_new(filters, json_string("NODELETE")) < 0))
		return NULL;
	if (json_array_size(filters) > 0 && json_object_set(create, "filters", filters) < 0)
		return NULL;
	return json_pack("{sO}", "create_request", create);
}
