/* rollout-version.h — the launch template version an AMI target needs
 * (version.c), for the leader's loop (loop.c). Internal to src/rollout/. */
#pragma once

#include "ec2.h"
#include "etcd.h"
#include "rollout.h"

typedef struct rollout_version_op rollout_version_op;

/* error 0 and version ("7"), or why it failed; v is the callee's to free
 * (rollout_version_free) from then on. */
typedef void (*rollout_version_cb)(rollout_version_op *v, int error, const char *version, const char *why,
				   void *userdata);

/* Reads scale/policy for the plan's one pool's launch template, then
 * CreateLaunchTemplateVersion (SourceVersion: state.previous's version,
 * else "$Default"; ImageId: plan.target.ami; ClientToken: plan id +
 * generation). 0 (cb runs later) or -errno (it does not). */
int rollout_version_start(rollout_version_op **out, etcd_client *etcd, ec2_client *ec2, const char *prefix,
			  const rollout_plan *plan, const rollout_state *state, rollout_version_cb cb,
			  void *userdata);
/* Cancels what is in flight (no callback). NULL-safe. */
rollout_version_op *rollout_version_free(rollout_version_op *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(rollout_version_op *, rollout_version_free);
