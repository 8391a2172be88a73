/* agree-internal.h — what read.c, propose.c and history.c share: the read
 * operation (a snapshot read and a history listing are both a few ranges
 * at one revision), error helpers and key building. Not installed. */
#pragma once

#include <stdarg.h>

#include "agree.h"

typedef enum agree_read_kind {
	AGREE_READ_SNAPSHOT,            /* current, configs/<current>/, nodes/ */
	AGREE_READ_CONFIG,              /* configs/<id>/ */
	AGREE_READ_HISTORY,             /* current, configs/ keys, status/ */
} agree_read_kind;

/* Both kinds of read: a chain of etcd calls, one at a time, then one
 * callback. The op frees itself once the callback returns; *_free() from
 * inside the callback is a no-op (in_callback). */
struct agree_read_op {
	agree_read_kind kind;
	etcd_client *client;
	char *prefix;
	bool read_nodes;
	bool in_callback;
	int stage;
	etcd_call *call;

	agree_read_cb cb;
	agree_folders_cb folders_cb;
	void *userdata;

	agree_snapshot snap;            /* SNAPSHOT, CONFIG */
	agree_error broken;             /* snap is broken: reported with snap */
	agree_folders folders;          /* HISTORY */
};

/* Shared by the read kinds: deliver the result (or err) and free the op. */
void agree_read_deliver(agree_read_op *op, const agree_error *err);
agree_read_op *agree_read_op_new(etcd_client *c, const char *prefix, agree_read_kind kind, void *userdata);
int agree_history_start(agree_read_op *op);

_printf_(3, 4) void agree_error_set(agree_error *e, int code, const char *fmt, ...);
/* e from an etcd error, prefixed with what was being done. */
void agree_error_etcd(agree_error *e, const etcd_error *ee, const char *what);

/* prefix + the formatted rest; NULL when out of memory. */
_printf_(2, 3) char *agree_key(const char *prefix, const char *fmt, ...);

/* A config id or proposer name is one etcd key segment: 1..200 bytes, no
 * '/', no control bytes, not "." or "..". */
bool agree_id_valid(const char *id, size_t len);

/* Runs c's loop until *done; -errno when the loop fails. */
int agree_run_until(etcd_client *c, const bool *done);

/* kvs -> leaves, each key with its first strip bytes cut (the folder);
 * the empty-config marker is no leaf and is skipped. -EBADMSG naming the
 * key for a key or value holding NUL. */
int agree_leaves_from_kvs(const etcd_kv *kvs, size_t n, size_t strip, tree_leaves *out, agree_error *err);
