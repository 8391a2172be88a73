/* store.c — corralctl's reads and writes of single etcd keys and
 * folders, with the dry run (-n: say it, write nothing) and -v (say
 * which key is written) in one place. Keys come from keys.h. */
#include <errno.h>
#include <stdlib.h>

#include "ctl.h"
#include "esc.h"

/* A failure that every later call of the run would repeat, after the same
 * wait: no member answers, none is available, or etcd refused the
 * credentials (or -EACCES: access). */
static bool etcd_down(const etcd_error *e) {
	return e->kind == ETCD_ERROR_TRANSPORT || e->code == -EAGAIN || e->code == -ETIMEDOUT || e->code == -EACCES ||
	       e->code == -ECONNREFUSED || e->code == -EHOSTUNREACH;
}

int ctl_wait(ctl_t *c, etcd_sync *s, etcd_response **out) {
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;

	if (etcd_wait(c->etcd, s, &resp) < 0) {
		if (!resp) {
			fprintf(stderr, "corralctl: out of memory\n");
			return -ENOMEM;
		}
		if (etcd_down(&resp->error))
			c->etcd_down = true;
		ctl_fail(resp);
		return -EIO;
	}
	*out = TAKE_PTR(resp);
	return 0;
}

/* -EIO once etcd was found down: said once, not again after each wait. */
#define ETCD_UP_OR_RETURN(c)           \
	do {                           \
		if ((c)->etcd_down)    \
			return -EIO;   \
	} while (0)

int ctl_get_kv(ctl_t *c, const char *key, etcd_response **out) {
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	ETCD_UP_OR_RETURN(c);
	if (etcd_range(c->etcd, &(etcd_range_req){ .key = key }, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (ctl_wait(c, &s, &resp) < 0)
		return -EIO;
	*out = TAKE_PTR(resp);
	return 0;
}

int ctl_get(ctl_t *c, const char *key, char **value, int64_t *mod_rev, int64_t *revision) {
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	int r = ctl_get_kv(c, key, &resp);

	if (r < 0)
		return r;
	*value = NULL;
	if (mod_rev)
		*mod_rev = 0;
	if (revision)
		*revision = resp->header.revision;
	if (resp->n_kvs == 0)
		return 0;
	*value = strndup(resp->kvs[0].value ? resp->kvs[0].value : "", resp->kvs[0].value_len);
	if (!*value)
		return -ENOMEM;
	if (mod_rev)
		*mod_rev = resp->kvs[0].mod_revision;
	return 0;
}

/* What a write does, said once: dry run prints it and stops; -v logs it. */
static bool announce(ctl_t *c, const char *op, const char *key, const char *value) {
	if (c->dry_run) {
		if (c->format != FORMAT_JSON)
			printf("dry run: would %s %s%s%s\n", op, key, value ? " = " : "", value ? value : "");
		return false;
	}
	if (c->verbosity >= CTL_VERBOSE)
		fprintf(stderr, "corralctl: %s %s%s%s\n", op, key, value ? " = " : "", value ? value : "");
	return true;
}

int ctl_put_guarded(ctl_t *c, const char *key, const char *value, const ctl_guard *g, size_t n) {
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_compare cmp[CTL_GUARDS_MAX];
	etcd_sync s = {};

	if (!key || n > CTL_GUARDS_MAX)
		return -ENOMEM;
	ETCD_UP_OR_RETURN(c);
	if (!announce(c, "put", key, value))
		return 0;
	etcd_put_req put = { .key = key, .value = value, .value_len = strlen(value) };
	if (n == 0) {
		if (etcd_put(c->etcd, &put, etcd_sync_cb, &s, NULL) < 0)
			return -ENOMEM;
	} else {
		for (size_t i = 0; i < n; i++)
			cmp[i] = (etcd_compare){ .key = g[i].key, .result = ETCD_CMP_EQUAL,
						 .target = g[i].mod == 0 ? ETCD_CMP_CREATE : ETCD_CMP_MOD,
						 .number = g[i].mod };
		etcd_op op = { .type = ETCD_OP_PUT, .put = put };
		etcd_txn_req txn = { .compare = cmp, .n_compare = n, .success = &op, .n_success = 1 };
		if (etcd_txn(c->etcd, &txn, etcd_sync_cb, &s, NULL) < 0)
			return -ENOMEM;
	}
	if (ctl_wait(c, &s, &resp) < 0)
		return -EIO;
	if (n > 0 && !resp->succeeded)
		return -ESTALE;
	return 0;
}

int ctl_put(ctl_t *c, const char *key, const char *value, int64_t expect_mod) {
	ctl_guard g = { .key = key, .mod = expect_mod };
	return ctl_put_guarded(c, key, value, &g, expect_mod >= 0);
}

int ctl_delete(ctl_t *c, const char *key) {
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	ETCD_UP_OR_RETURN(c);
	if (!announce(c, "delete", key, NULL))
		return 0;
	if (etcd_delete(c->etcd, &(etcd_delete_req){ .key = key }, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (ctl_wait(c, &s, &resp) < 0)
		return -EIO;
	return resp->deleted > 0;
}

int ctl_read_dir(ctl_t *c, keys_dir dir, bool parse, json_t **out) {
	_cleanup_free_ char *key = keys_dir_of(c->prefix, dir);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	ETCD_UP_OR_RETURN(c);
	etcd_range_req req = { .key = key, .prefix = true };
	if (etcd_range_all(c->etcd, &req, 500, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (ctl_wait(c, &s, &resp) < 0)
		return -EIO;
	json_auto_t *all = json_object();
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *text = kv->value ? kv->value : "";
		json_error_t jerr;
		json_t *v;

		if (kv->key_len <= strlen(key) || memchr(kv->key, 0, kv->key_len))
			continue;
		if (!parse)
			v = json_stringn_nocheck(text, kv->value_len);
		else {
			v = json_loadb(text, kv->value_len, 0, &jerr);
			if (!json_is_object(v)) {
				json_decref(v);
				v = json_pack("{ss}", "malformed", v ? "not a JSON object" : ESC_JERR(&jerr));
			}
		}
		json_object_set_new(all, kv->key + strlen(key), v);
	}
	*out = TAKE_PTR(all);
	return 0;
}

int ctl_read_records(ctl_t *c, keys_dir dir, json_t **out) {
	return ctl_read_dir(c, dir, true, out);
}

int ctl_read_marker(ctl_t *c, const char *key, json_t **out) {
	_cleanup_free_ char *text = NULL;
	int r = ctl_get(c, key, &text, NULL, NULL);

	if (r < 0)
		return r;
	*out = NULL;
	if (text) {
		/* present is present, whatever it holds */
		*out = json_loads(text, JSON_DECODE_ANY, NULL);
		if (!*out)
			*out = json_pack("{s:s}", "value", text);
	}
	return 0;
}
