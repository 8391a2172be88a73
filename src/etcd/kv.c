/* kv.c — the KV service: range, put, delete, txn, and paged ranges. */
#include "b64.h"
#include "etcd-internal.h"

int etcd_range(etcd_client *c, const etcd_range_req *req, etcd_callback cb, void *userdata, etcd_call **ret) {
	json_auto_t *body = etcd_codec_range(req);
	if (!body)
		return -EINVAL;
	return etcd_call_start(c, ETCD_OP_RANGE, "/v3/kv/range", body, &(etcd_call_opts){ .idempotent = true }, NULL,
			       NULL, NULL, cb, userdata, ret);
}

int etcd_put(etcd_client *c, const etcd_put_req *req, etcd_callback cb, void *userdata, etcd_call **ret) {
	json_auto_t *body = etcd_codec_put(req);
	if (!body)
		return -EINVAL;
	/* Applying a put twice leaves what applying it once does, so one a hung
	 * member may or may not have taken is sent to the next; not with
	 * prev_kv, whose answer would be the first put's value. */
	return etcd_call_start(c, ETCD_OP_PUT, "/v3/kv/put", body, &(etcd_call_opts){ .idempotent = !req->prev_kv },
			       NULL, NULL, NULL, cb, userdata, ret);
}

int etcd_delete(etcd_client *c, const etcd_delete_req *req, etcd_callback cb, void *userdata, etcd_call **ret) {
	json_auto_t *body = etcd_codec_delete(req);
	if (!body)
		return -EINVAL;
	/* Not re-sent: a second delete would answer "deleted 0". */
	return etcd_call_start(c, ETCD_OP_DELETE, "/v3/kv/deleterange", body, &(etcd_call_opts){}, NULL, NULL, NULL,
			       cb, userdata, ret);
}

int etcd_txn(etcd_client *c, const etcd_txn_req *req, etcd_callback cb, void *userdata, etcd_call **ret) {
	json_auto_t *body = etcd_codec_txn(req);
	if (!body)
		return -EINVAL;
	/* A txn that only reads could be resent, but telling is not worth it:
	 * callers of txn are CAS writers who re-read anyway. */
	return etcd_call_start(c, ETCD_OP_TXN, "/v3/kv/txn", body, &(etcd_call_opts){}, NULL, NULL, NULL, cb, userdata,
			       ret);
}

/* ---- paged range ---------------------------------------------------------------- */

typedef struct range_pages {
	json_t *body;                   /* the first page's request */
	int64_t page_size;
	etcd_response *acc;             /* pages so far */
} range_pages;

static void range_pages_free(void *p) {
	range_pages *rp = p;
	json_decref(rp->body);
	etcd_response_free(rp->acc);
	free(rp);
}

static int range_page(etcd_call *call, etcd_response **rr, void *data) {
	range_pages *rp = data;
	etcd_response *page = *rr;

	if (!rp->acc) {
		/* Every later page reads at the first page's revision, so the
		 * whole answer is one consistent snapshot. A request pinned to
		 * a revision keeps it: header.revision is the store's latest,
		 * not the one read at. */
		if (!json_object_get(rp->body, "revision") &&
		    json_object_set_new(rp->body, "revision", json_integer(page->header.revision)) < 0) {
			etcd_error_set(&page->error, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
			return 0;
		}
		rp->acc = TAKE_PTR(*rr);
	} else {
		size_t n = rp->acc->n_kvs + page->n_kvs;
		etcd_kv *kvs = realloc(rp->acc->kvs, (n ? n : 1) * sizeof *kvs);
		if (!kvs) {
			etcd_error_set(&page->error, ETCD_ERROR_LOCAL, -ENOMEM, "out of memory");
			return 0;
		}
		memcpy(kvs + rp->acc->n_kvs, page->kvs, page->n_kvs * sizeof *kvs);
		rp->acc->kvs = kvs;
		rp->acc->n_kvs = n;
		free(page->kvs);
		page->kvs = NULL;
		page->n_kvs = 0;
		rp->acc->more = page->more;
		*rr = etcd_response_free(*rr);
	}

	if (rp->acc->more && rp->acc->n_kvs > 0) {
		/* Next page starts just after the last key: key + "\0". */
		const etcd_kv *last = &rp->acc->kvs[rp->acc->n_kvs - 1];
		_cleanup_free_ char *next = malloc(last->key_len + 1);
		if (next) {
			memcpy(next, last->key, last->key_len);
			next[last->key_len] = '\0';
			_cleanup_free_ char *b = b64_encode(next, last->key_len + 1);
			if (b && json_object_set_new(rp->body, "key", json_string(b)) == 0 &&
			    etcd_call_resend(call, rp->body) >= 0)
				return 1;
		}
		etcd_error_set(&rp->acc->error, ETCD_ERROR_LOCAL, -ENOMEM, "could not request the next page");
	}
	rp->acc->more = false;
	*rr = TAKE_PTR(rp->acc);
	return 0;
}

int etcd_range_all(etcd_client *c, const etcd_range_req *req, int64_t page_size, etcd_callback cb, void *userdata,
		   etcd_call **ret) {
	etcd_range_req first = *req;

	if (page_size <= 0 || req->limit > 0 || req->count_only || req->sort_order != ETCD_SORT_NONE)
		return -EINVAL;
	first.limit = page_size;
	/* Pages continue after the last key, so they must come in key order. */
	first.sort_order = ETCD_SORT_ASCEND;
	first.sort_target = ETCD_SORT_KEY;

	range_pages *rp = calloc(1, sizeof *rp);
	if (!rp)
		return -ENOMEM;
	rp->page_size = page_size;
	rp->body = etcd_codec_range(&first);
	if (!rp->body) {
		range_pages_free(rp);
		return -EINVAL;
	}
	return etcd_call_start(c, ETCD_OP_RANGE, "/v3/kv/range", rp->body, &(etcd_call_opts){ .idempotent = true },
			       range_page, rp, range_pages_free, cb, userdata, ret);
}
