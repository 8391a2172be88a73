/* agree-internal.h — what the agree files share (common.c implements it):
 * the read operation (a snapshot read and a history listing are both a few
 * ranges at one revision), error helpers, fence copies. Keys are keys.h's.
 * Not installed. */
#pragma once

#include <stdarg.h>

#include "agree.h"
#include "keys.h"

typedef enum agree_read_kind {
	AGREE_READ_SNAPSHOT,            /* current, configs/<current>/, nodes/ */
	AGREE_READ_CONFIG,              /* configs/<id>/ */
	AGREE_READ_HISTORY,             /* current, configs/ keys, status/, upgrade/ */
} agree_read_kind;

/* Both kinds of read: a chain of etcd calls, one at a time, then one
 * callback. The op frees itself once the callback returns; *_free() from
 * inside the callback is a no-op (in_callback). */
struct agree_read_op {
	agree_read_kind kind;
	etcd_client *client;
	char *prefix;
	bool read_nodes;
	bool current_only;              /* stop after `current` when it exists
	                                   (only_if_absent needs nothing more) */
	bool at_revision;               /* agree_read_at(): the folder at a given revision */
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

/* agree_read(), and with current_only: a `current` that exists ends the
 * read (the snapshot holds its id and revisions, files {}). */
int agree_read_snapshot(etcd_client *c, const char *prefix, bool read_nodes, bool current_only, agree_read_cb cb,
			void *userdata, agree_read_op **out);

/* Shared by the read kinds: deliver the result (or err) and free the op. */
void agree_read_deliver(agree_read_op *op, const agree_error *err);
agree_read_op *agree_read_op_new(etcd_client *c, const char *prefix, agree_read_kind kind, void *userdata);

_printf_(3, 4) void agree_error_set(agree_error *e, int code, const char *fmt, ...);
/* e from an etcd error, prefixed with what was being done. */
void agree_error_etcd(agree_error *e, const etcd_error *ee, const char *what);

/* A caller's fence compares, copied with their keys and values (byte
 * strings) so the caller's may go away. */
typedef struct agree_fence {
	etcd_compare *v;
	size_t n;
	char **bufs;                    /* 2 per compare: key, value (or NULL) */
} agree_fence;
/* *out = a copy of fence[0..n); {} when n is 0. -EINVAL (n but no fence),
 * -ENOMEM; *out is {} on failure. */
int agree_fence_copy(agree_fence *out, const etcd_compare *fence, size_t n);
void agree_fence_done(agree_fence *f);

/* Runs c's loop until *done; -errno when the loop fails. */
int agree_run_until(etcd_client *c, const bool *done);

/* partial.c: the read of a scoped proposal beside a big config
 * (agree_options.partial). snap holds `current`, the scope's region of
 * the config (leaves within scope and on the path to it) as leaves and
 * files, and C's own delta in full; base_leaves is the key count of the
 * complete folder under it. */
typedef struct agree_partial {
	agree_snapshot snap;
	size_t base_leaves;
} agree_partial;
typedef struct agree_partial_op agree_partial_op;
/* res NULL and err NULL: this path does not fit (no current, a complete
 * folder under min_leaves keys, anything broken): read the whole config.
 * res is the op's: take what you keep (it is freed after the call). */
typedef void (*agree_partial_cb)(agree_partial *res, const agree_error *err, void *userdata);
int agree_partial_read(etcd_client *c, const char *prefix, const char *scope, size_t min_leaves, agree_partial_cb cb,
		       void *userdata, agree_partial_op **out);
agree_partial_op *agree_partial_op_free(agree_partial_op *op);

/* delta.c, pure: the leaf of sorted l at path, or NULL (a binary search). */
const tree_leaf *agree_leaves_find(const tree_leaves *l, const char *path);
/* delta.c, pure: whether sorted strings v[0..n) hold s. */
bool agree_sorted_has(char *const *v, size_t n, const char *s);

/* delta.c, pure, for a partial change: -EINVAL (msg says which) when one
 * of leaves l lies outside the region of scope (it broke its word); and
 * whether old and new hold the same leaves above scope (a parent emptied
 * or replaced has children the change did not see: read the whole). */
int agree_region_outside(const tree_leaves *l, const char *scope, char *msg, size_t size);
bool agree_region_above_same(const tree_leaves *old, const tree_leaves *new, const char *scope);
