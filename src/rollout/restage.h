/* restage.h — the rebase's I/O (restage.c), internal to src/rollout/: the
 * loop runs it when a decision asks for ROLLOUT_REBASE, and puts its
 * result into the next decision's input. */
#pragma once

#include <stdint.h>

#include "etcd.h"
#include "macro.h"

typedef struct rollout_restage rollout_restage;

typedef struct rollout_restage_options {
	const char *prefix;
	const char *proposer;           /* the new snapshot's id: "<proposer>_<n>" */
	int64_t token;                  /* the leader's fence */
	const char *base;               /* the candidate's base (NULL: made on nothing) */
	const char *candidate;
} rollout_restage_options;

typedef struct rollout_restage_result {
	const char *id;                 /* the rebased candidate (staged; or `current`
	                                   itself when it holds the plan's change) */
	const char *made_on;            /* the `current` it was made on */
	int code;                       /* 0, or -errno: -EEXIST a conflict, -EPERM
	                                   the fence, -ENOENT a folder missing, ... */
	const char *error;              /* code < 0: why, naming the key */
} rollout_restage_result;

/* res is valid during the call. The op may be freed from inside. */
typedef void (*rollout_restage_cb)(rollout_restage *op, const rollout_restage_result *res, void *userdata);

/* Options copied. Reports once, unless freed first. */
int rollout_restage_start(rollout_restage **out, etcd_client *etcd, const rollout_restage_options *o,
			  rollout_restage_cb cb, void *userdata);
rollout_restage *rollout_restage_free(rollout_restage *op);     /* cancels; NULL-safe */
