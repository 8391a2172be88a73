/* agree.h — the cluster config agreement protocol (DESIGN.md): every
 * change to the cluster config is a new, immutable snapshot folder
 * `<prefix>/configs/<id>/` and a compare-and-set of `<prefix>/current` on
 * its mod_revision.
 *
 *   1. read `current` (id C, mod_revision R) and configs/C/ at one revision;
 *   2. apply the change locally (a caller's function); no difference: done,
 *      nothing written;
 *   3+4. when the new folder and `current` fit in one txn (max_txn_ops,
 *      etcd's --max-txn-ops, default 128; and 640 KiB of keys and values,
 *      well under etcd's 1.5 MiB request limit once base64-encoded), one
 *      txn: if current's mod_revision is still R (0 = absent), put every
 *      leaf and `current`. Larger configs are written in chunks first
 *      (each guarded by the same compare, so a lost race stops early),
 *      then CAS'd; a lost race deletes the chunks again (best effort; the
 *      collector gets the rest). A commit whose reply is lost is checked
 *      by reading `current`;
 *   5. a lost race goes back to 1 after a jittered back-off, up to
 *      max_attempts.
 *
 * A snapshot folder always holds at least one key: a config with no leaf
 * at all is the one key configs/<id>/%empty (AGREE_EMPTY_MARKER, never a
 * leaf path: "%e" is no escape). So a folder that holds no key is missing
 * (collected, deleted by hand, `current` set by hand), never the empty
 * config; folders written before the marker existed read the same, except
 * an empty one, which now reads as missing.
 *
 * A broken snapshot (its folder missing, a leaf malformed, `current` not
 * an id) is never read as a config: reads fail, and a proposal goes on
 * only when its change does not need the broken part (agree_options.scope):
 * a malformed leaf is never carried into a new folder.
 *
 * Snapshot ids are "<proposer>_<n>", n a process-wide counter that is at
 * least the revision the snapshot was read at and grows by one each use, so
 * an id is never reused (etcd's revision only grows). Two processes with the
 * same proposer name must not propose at once: corralctl names itself
 * "ctl-<host>-<pid>".
 *
 * Everything is asynchronous on the etcd client's sd-event loop; each
 * operation reports once through its callback, unless freed first (then
 * never). The handle (*out, which may be NULL) is valid until the callback
 * has run: the operation frees itself when its callback returns, and a
 * *_free() call from inside the callback is a no-op (like etcd_call). The
 * *_sync wrappers run the loop until done, for the CLI and tests. Errors
 * are values (code -errno and a message naming the key).
 *
 * Delta snapshots (docs/snapshots.md). A change to a config too big for
 * one txn need not copy it: the new folder may be a delta on a complete
 * base folder B, holding
 *   configs/<id>/%base/<B>          the marker; its value repeats B;
 *   configs/<id>/%del/<leaf path>   one per leaf of B this config lacks
 *                                   (value empty);
 *   configs/<id>/<leaf path>        the leaves that differ from B's;
 * and nothing else: the config is B's leaves, less the deleted ones, with
 * the delta's leaves over them. "%b" and "%d" are no tree.h escapes, so
 * neither key is ever a leaf; a folder without the marker is complete, as
 * before (a complete copy written by hand stays valid). Depth one: a base
 * is always complete, and a delta made on a delta D (on B) is cumulative
 * against B, so a read is at most two ranges at one revision. A delta
 * whose base is gone (collected, deleted by hand) reads as MISSING with a
 * message naming both ids; a base that is itself a delta is UNREADABLE.
 * A proposal writes a delta when its config does not fit one txn and the
 * cumulative delta stays small (agree_delta_cap(): about sqrt(2N) entries
 * for N leaves, and 1/AGREE_DELTA_RATIO of the bytes), else a complete
 * folder (the next deltas' base). The
 * commit is the same one CAS on current's mod_revision either way. A
 * scoped change with agree_options.partial reads only its scope's region
 * (partial.c) and splices its delta into the cumulative one, so its cost
 * does not grow with the config. The collection keeps the base of every
 * folder it keeps. Trade-off and figures: docs/snapshots.md.
 *
 * Node status records (`<prefix>/status/<node-id>`, written by corrald) are
 * JSON objects; the collector reads two fields of them: "target" (the
 * config id the node is applying) and "applied" (the id whose files are on
 * disk); neither is ever collected. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"
#include "tree.h"

typedef struct agree_read_op agree_read_op;
typedef struct agree_proposal agree_proposal;
typedef struct agree_gc_op agree_gc_op;

typedef struct agree_error {
	int code;                       /* 0 or -errno */
	char message[512];              /* for humans; names the key concerned */
} agree_error;

/* ---- reading ---------------------------------------------------------- */

#define AGREE_EMPTY_MARKER "%empty"

#define AGREE_BASE_MARKER "%base"     /* configs/<id>/%base/<base id> */
#define AGREE_DELETED_DIR "%del"        /* configs/<id>/%del/<leaf path> */
/* A delta is written while its bytes stay within 1/4 of the config's and
 * its leaves and deletions within agree_delta_cap() of the config's
 * leaves. */
#define AGREE_DELTA_RATIO 4

/* What one folder holds. base_id NULL: a complete folder (set is the
 * whole config; deleted is empty). Else a delta on base_id. set is sorted
 * by path, deleted (n_deleted leaf paths) too. */
typedef struct agree_delta {
	char *base_id;
	tree_leaves set;
	char **deleted;
	size_t n_deleted;
} agree_delta;
void agree_delta_done(agree_delta *d);

/* Pure: a folder's keys (etcd's listing, sorted; strip: the folder's
 * length) -> what it holds. The empty marker and, in a delta, its marker
 * are no leaves; "%del/" keys are deletions only in a delta (in a complete
 * folder they are leaves, malformed ones). -EBADMSG with err naming the key
 * for a key or value holding NUL, a key that is the folder itself, two
 * bases or a base that is no id; -ENOMEM. */
int agree_folder_parse(const etcd_kv *kvs, size_t n, size_t strip, agree_delta *out, agree_error *err);

/* Pure: base's leaves (sorted; its strings are moved into *out, base is
 * left for the caller to free) less d's deletions, with d's leaves over
 * them: the config, sorted. -ENOMEM. */
int agree_delta_resolve(tree_leaves *base, const agree_delta *d, tree_leaves *out);

/* Pure: the delta that makes config `new` from the base of snapshot
 * old_id, whose config is `old` and which holds old_delta (NULL or
 * base_id NULL: old_id is complete and is the base). Cumulative against
 * that base; of an old delta's own leaves and deletions the base's value
 * is not known, so they stay in (a leaf equal to the base's or a deletion
 * of a leaf the base lacks is harmless). -EINVAL (old_id no id), -ENOMEM. */
int agree_delta_make(const tree_leaves *old, const char *old_id, const agree_delta *old_delta,
		     const tree_leaves *new, agree_delta *out);
/* Pure: the part of d within the region of scope (leaf paths within scope
 * or on the path to it), base_id and all. -ENOMEM. */
int agree_delta_within(const agree_delta *d, const char *scope, agree_delta *out);
/* Pure: old's entries outside the region of scope with region's (entries
 * within it) over them; base_id region's. -ENOMEM. */
int agree_delta_splice(const agree_delta *old, const agree_delta *region, const char *scope, agree_delta *out);

/* Pure: the most entries (leaves and deletions) a cumulative delta on a
 * base of n leaves may hold: floor(sqrt(2n)). Each change rewrites the
 * cumulative delta and every cap-th one a complete folder, so k one-leaf
 * changes write about k * (cap/2 + n/cap) keys, least at this cap (a
 * quarter of n would make it about k * n/8). */
size_t agree_delta_cap(size_t n);
/* Pure: whether delta d is small enough beside config full (its
 * resolution) to be written instead of a complete folder
 * (agree_delta_cap(), AGREE_DELTA_RATIO of the bytes). */
bool agree_delta_worth(const agree_delta *d, const tree_leaves *full);

/* Pure, a staged rollout's rebase (rebase.c): the plan's change from
 * base's leaves to candidate's (leaves set or changed, leaves removed)
 * applied to now's, the config `current` names now (now_id, for the
 * message; NULL: "the current config"). *out: the result, sorted, new
 * strings. A path the plan changed that now holds otherwise than base
 * (changed to another value than candidate's, or removed on one side and
 * changed on the other), or a leaf the plan set where now has an object
 * or the other way round: -EEXIST, err naming the first such leaf path
 * (tree.h spelling; value conflicts in path order before shape ones):
 * "<path> was changed by both the plan and <now_id>". The same change on
 * both sides (same value, both removed) is no conflict. Leaf values
 * compare as JSON ("[1,2]" is "[1, 2]"); an array is one leaf, as tree.h
 * has it. -ENOMEM. */
int agree_rebase(const tree_leaves *base, const tree_leaves *candidate, const tree_leaves *now, const char *now_id,
		 tree_leaves *out, agree_error *err);

typedef enum agree_snapshot_state {
	AGREE_SNAPSHOT_SOUND,
	AGREE_SNAPSHOT_MISSING,         /* the folder holds no key, or it is a
	                                   delta whose base holds none */
	AGREE_SNAPSHOT_MALFORMED,       /* some leaves are malformed: faults */
	AGREE_SNAPSHOT_UNREADABLE,      /* `current` is not an id, a key or
	                                   value holds NUL, a delta's marker is
	                                   bad or its base is a delta: nothing
	                                   is usable */
} agree_snapshot_state;

typedef struct agree_snapshot {
	char *config_id;                /* NULL when there is no `current` (or
	                                   it is not an id) */
	int64_t current_mod_revision;   /* 0 when there is no `current` */
	int64_t revision;               /* everything was read at this revision */
	json_t *files;                  /* the config document; {} when none;
	                                   broken: only the well-formed part */
	tree_leaves leaves;             /* every leaf as read (malformed ones too);
	                                   a delta: resolved against its base */
	agree_delta delta;              /* what the folder itself holds, when it
	                                   is a delta (delta.base_id != NULL);
	                                   else {} (its leaves are `leaves`) */
	agree_snapshot_state state;
	tree_fault *faults;             /* MALFORMED: which leaves (indexes into */
	size_t n_faults;                /*   leaves) and why, in path order */
	json_t *nodes;                  /* with read_nodes: {node-id: record} of
	                                   the registered nodes (records that are
	                                   not JSON objects are left out); else NULL */
	json_t *node_create_revisions;  /* with read_nodes: {node-id: int} */
} agree_snapshot;

void agree_snapshot_done(agree_snapshot *s);

/* Callback for reads: s is valid during the call only (copy what you keep);
 * on failure err says why (etcd errors as etcd_error.code) and s is NULL,
 * except for a broken snapshot: err is -ENOENT (MISSING) or -EBADMSG (the
 * message names the snapshot and the first malformed key), and s says what
 * was read (config_id, revisions, state, faults) so a reader can wait for
 * the next `current` and report it. Its files are NOT the config. */
typedef void (*agree_read_cb)(const agree_snapshot *s, const agree_error *err, void *userdata);

/* Reads `current` and the config it names, at one revision (the latest).
 * read_nodes: also `nodes/` at that revision. */
int agree_read(etcd_client *c, const char *prefix, bool read_nodes, agree_read_cb cb, void *userdata,
	       agree_read_op **out);
/* What agree_read() would have read at `revision`, given what `current`
 * held there (a watch event: id is its value, revision its mod_revision):
 * one range, the folder at that revision. id NULL (deleted) or not an id:
 * a full agree_read() at the latest revision, which reports it. If etcd
 * compacted `revision` meanwhile, it reads afresh at the latest revision
 * (the snapshot says which it read). */
int agree_read_at(etcd_client *c, const char *prefix, const char *id, size_t id_len, int64_t revision,
		  agree_read_cb cb, void *userdata, agree_read_op **out);
/* Reads configs/<id>/ (at the latest revision); config_id and
 * current_mod_revision in the snapshot are id and 0. -ENOENT in err when
 * the folder holds no key. */
int agree_read_config(etcd_client *c, const char *prefix, const char *id, agree_read_cb cb, void *userdata,
		      agree_read_op **out);
agree_read_op *agree_read_op_free(agree_read_op *op);     /* cancels; NULL-safe */
DEFINE_TRIVIAL_CLEANUP_FUNC(agree_read_op *, agree_read_op_free);
/* Pure: the node record kv holds (a key of <prefix>/nodes/, whose first
 * strip bytes are that folder), as every reader of nodes/ takes it: *id
 * the key's rest, *record its JSON object (both new). -EINVAL when kv
 * holds none (a key outside the folder or holding NUL, no value, a value
 * that is not a JSON object: such a node is left out), -ENOMEM. */
int agree_node_parse(const etcd_kv *kv, size_t strip, char **id, json_t **record);

/* ---- proposing ---------------------------------------------------------- */

/* The change: edit files in place (a private copy of the snapshot's).
 * Return 0 to go on (no difference -> nothing is written), or -errno with a
 * message in err to give up (the proposal reports that error). It may run
 * several times, once per attempt, on fresh snapshots: it must be a pure
 * function of its inputs. */
typedef int (*agree_change_fn)(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size);

/* The biggest leaf, its etcd key and value together, in bytes. etcd
 * refuses a request whose raft entry exceeds --max-request-bytes (default
 * 1.5 MiB = 1572864; the gateway's base64 does not count: it is decoded
 * before the check); a leaf goes in a txn with the `current` compare and a
 * few dozen bytes of framing, so 4 KiB are kept for those. A proposal with
 * a bigger leaf fails with -E2BIG before anything is written. */
#define AGREE_LEAF_MAX ((size_t) 1572864 - 4096)

typedef struct agree_options {
	const char *prefix;             /* no trailing '/' */
	const char *proposer;           /* ids are "<proposer>_<n>" */
	unsigned max_attempts;          /* 0: 20 */
	uint64_t backoff_base_usec;     /* 0: 20 ms */
	uint64_t backoff_cap_usec;      /* 0: 1 s */
	size_t max_txn_ops;             /* 0: 128 */
	bool read_nodes;                /* the change needs s->nodes */
	bool only_if_absent;            /* commit only while there is no `current`
	                                   (initial values); else -EEXIST, after
	                                   reading `current` alone */
	bool dry_run;                   /* compute and report, write nothing */
	bool no_delta;                  /* always a complete folder (flattening;
	                                   the benchmark's "before") */
	bool partial;                   /* with a scope (not ""): the change
	                                   reads and writes only within it, so
	                                   beside a big config the proposal
	                                   reads only `current`, the delta and
	                                   the base's leaves within scope and on
	                                   the path to it, and writes a delta
	                                   (docs/snapshots.md). The change then
	                                   sees only that part of the config,
	                                   and agree_result.files is that part.
	                                   A config that fits one txn, a broken
	                                   snapshot or a delta grown past its
	                                   share: the whole config, as without */
	const char *scope;              /* the leaf path (tree.h spelling; "": the
	                                   whole document) of the one value the
	                                   change replaces or removes, keeping all
	                                   else as it was. Then a broken snapshot
	                                   refuses the change only when it must
	                                   look through a malformed leaf (one
	                                   above scope) or would carry one forward
	                                   (one outside scope); leaves within
	                                   scope are dropped; a missing folder
	                                   refuses unless scope is "" or
	                                   scope_whole. NULL: the change may read
	                                   anything; any broken snapshot refuses
	                                   it (-ENOENT missing, else -EBADMSG). */
	bool scope_whole;               /* the value written at scope is whole on
	                                   its own (an imported file): a missing
	                                   folder does not refuse the change, and
	                                   the new config holds only what it wrote */
	const etcd_compare *fence;      /* extra compares for the commit txn */
	size_t n_fence;                 /*   (the leader's fencing token) */
	bool stage_only;                /* write the new folder (complete or
	                                   delta, guarded by current's
	                                   mod_revision and the fence as a
	                                   commit is) but do NOT move `current`:
	                                   a staged config rollout's candidate
	                                   (docs/upgrades.md). Reported as
	                                   staged, never committed */
} agree_options;

typedef struct agree_result {
	agree_error error;              /* code: 0; -EAGAIN out of attempts;
	                                   -EEXIST only_if_absent and a current
	                                   exists; -EPERM a fence compare failed
	                                   (nothing committed); -E2BIG a leaf
	                                   is bigger than AGREE_LEAF_MAX (nothing
	                                   written); the change fn's
	                                   error; etcd's (a commit whose reply
	                                   was lost: its fate is unknown) */
	bool changed;                   /* the change made a difference */
	bool committed;                 /* a new snapshot is now `current` */
	const char *config_id;          /* committed: the new id; else the
	                                   current one (NULL: none) */
	const char *previous_id;        /* the id the change was made on */
	int64_t revision;               /* committed: the commit's revision */
	unsigned attempts;
	json_t *diff;                   /* tree_diff() old -> new; [] if none */
	json_t *files;                  /* the resulting document */
	const char *repaired;           /* the change was made on a broken
	                                   snapshot (leaving its broken part
	                                   behind): what was wrong; else NULL */
	const char *base_id;            /* committed (or staged) as a delta on
	                                   this base; else NULL (a complete
	                                   folder) */
	bool staged;                    /* stage_only: the new folder is written
	                                   (config_id names it, previous_id the
	                                   `current` it was made from, which
	                                   stays `current`) */
} agree_result;

/* r and what it points to are valid during the call only. */
typedef void (*agree_done_cb)(agree_proposal *p, const agree_result *r, void *userdata);

/* Options (and the strings they point to) are copied. */
int agree_propose(agree_proposal **out, etcd_client *c, const agree_options *o, agree_change_fn change,
		  void *change_userdata, agree_done_cb done, void *done_userdata);
agree_proposal *agree_proposal_free(agree_proposal *p);   /* cancels; NULL-safe */
DEFINE_TRIVIAL_CLEANUP_FUNC(agree_proposal *, agree_proposal_free);

/* ---- history and collection ---------------------------------------------- */

typedef struct agree_folder {
	char *id;
	int64_t create_revision;        /* smallest create_revision of its keys */
	size_t n_keys;                  /* its leaves (the empty marker not counted;
	                                   a delta: the leaves it sets) */
	char *base;                     /* a delta: its base's id; else NULL */
	size_t n_deleted;               /* a delta: its deletions */
} agree_folder;

typedef struct agree_folders {
	agree_folder *v;                /* newest first (create_revision desc) */
	size_t n;
	char *current;                  /* NULL when none */
	int64_t current_mod_revision;
	char **in_use;                  /* ids named by status records (target,
	                                   applied) and by upgrade/ records (a
	                                   staged rollout's), NULL-terminated */
} agree_folders;
void agree_folders_done(agree_folders *f);

/* Pure: from etcd's keys-only listing of <prefix>/configs/ (keys relative to
 * that folder: "<id>/<leaf path>") to folders, newest first. */
int agree_folders_from_keys(const etcd_kv *kvs, size_t n, size_t strip, agree_folders *out);

/* Pure: f->in_use from the status records (etcd's listing of
 * <prefix>/status/): each string "target" and "applied" names, once, in
 * the order met; a record that is not a JSON object names nothing. Replaces
 * f->in_use (an empty list, not NULL, when nothing is named). -ENOMEM. */
int agree_folders_in_use(agree_folders *f, const etcd_kv *status, size_t n_status);

/* Pure: adds to f->in_use (after agree_folders_in_use()) every snapshot
 * id the rollout's records name (etcd's listing of <prefix>/upgrade/,
 * leaving out keys under skip, a key prefix: the history's): each string
 * that is an id at a key "config" (targets: the plan's, orders' target
 * and from, the state's previous, upgrade/stable; progress), "config_base"
 * (the plan's), "candidate" or "candidate_base" (the state's), at any
 * depth. Records that are not JSON objects name nothing. -ENOMEM. */
int agree_folders_in_use_upgrade(agree_folders *f, const etcd_kv *upgrade, size_t n_upgrade, const char *skip);

/* Pure, the collection's decision: which folders to delete. Kept: current;
 * every id in in_use; any folder created after current_mod_revision (a
 * proposal in flight; with no current, every folder); then the `keep`
 * newest of the rest; and the base of every folder kept (not counted in
 * `keep`). New NULL-terminated list, newest first. */
int agree_gc_plan(const agree_folders *f, unsigned keep, char ***out_delete);

typedef void (*agree_folders_cb)(const agree_folders *f, const agree_error *err, void *userdata);
/* Lists the folders, current and the in-use ids (status/ and upgrade/;
 * one revision). */
int agree_history(etcd_client *c, const char *prefix, agree_folders_cb cb, void *userdata, agree_read_op **out);

/* Lists, plans, then deletes the planned folders in txns that hold only
 * while `current` is unchanged (mod_revision) so a racing commit is never
 * undone. Reports the number deleted (>= 0) or an error. A commit racing
 * the collection stops it early without an error (the next run plans
 * again); a failed fence compare stops it with -EPERM. */
typedef void (*agree_gc_cb)(int deleted, const agree_error *err, void *userdata);
int agree_collect(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence, size_t n_fence,
		  agree_gc_cb cb, void *userdata, agree_gc_op **out);
/* The collection's act alone (agree_collect is agree_history, then
 * agree_gc_plan, then this): deletes the folders ids names (NULL-terminated,
 * each a valid id, else -EINVAL) as agree_collect does, each txn holding
 * only while `current`'s mod_revision is still current_mod_revision (0:
 * while there is no `current`), the value agree_history listed with the
 * folders the plan came from. Reports like agree_collect, never before it
 * returns. ids and fence are copied. */
int agree_gc_delete(etcd_client *c, const char *prefix, char *const *ids, int64_t current_mod_revision,
		    const etcd_compare *fence, size_t n_fence, agree_gc_cb cb, void *userdata, agree_gc_op **out);
agree_gc_op *agree_gc_op_free(agree_gc_op *op);
DEFINE_TRIVIAL_CLEANUP_FUNC(agree_gc_op *, agree_gc_op_free);

/* ---- blocking use (CLI, tests) --------------------------------------------- */

/* Each runs the client's event loop until done. Results are copies the
 * caller owns (free with agree_snapshot_done / agree_owned_result_done). */
int agree_read_sync(etcd_client *c, const char *prefix, bool read_nodes, agree_snapshot *out, agree_error *err);
int agree_read_config_sync(etcd_client *c, const char *prefix, const char *id, agree_snapshot *out,
			   agree_error *err);
int agree_history_sync(etcd_client *c, const char *prefix, agree_folders *out, agree_error *err);
/* Returns the number of folders deleted (>= 0) or -errno (err says why). */
int agree_collect_sync(etcd_client *c, const char *prefix, unsigned keep, const etcd_compare *fence,
		       size_t n_fence, agree_error *err);

typedef struct agree_owned_result {
	agree_error error;
	bool changed, committed, staged;
	char *config_id, *previous_id;
	int64_t revision;
	unsigned attempts;
	json_t *diff, *files;
	char *repaired;
	char *base_id;
} agree_owned_result;
void agree_owned_result_done(agree_owned_result *r);
/* Returns r->error.code. */
int agree_propose_sync(etcd_client *c, const agree_options *o, agree_change_fn change, void *userdata,
		       agree_owned_result *r);
