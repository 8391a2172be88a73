/* cluster.c — a node's initial values, and the leader's two loops that
 * keep the cluster config right (see cluster.h). Each leader loop is one
 * shape, observe -> decide -> act, run by a timer that coalesces its
 * triggers:
 *
 *   upkeep      observe: the live node map (livenodes.c: nodes/ read once
 *                        when leadership starts, then kept by its watch)
 *                        and the newest snapshot this node holds whole (its
 *                        reconciler's, or its own last commit);
 *               decide:  upkeep_apply(): topology_apply(), pure, on a copy
 *                        of that snapshot: nothing to change, nothing sent;
 *               act:     agree_propose() reads `current` and its snapshot
 *                        (not nodes/), makes the same change there and
 *                        commits it fenced with the leader's token;
 *                        on_upkeep_done() logs it (one line).
 *   collection  observe: agree_collect() lists the folders, `current` and
 *                        the ids in use at one revision (agree_folders);
 *               decide:  agree_gc_plan(), pure;
 *               act:     the deletes, fenced and guarded by current's
 *                        mod_revision; on_gc_done() logs them (one line).
 *
 * No node but the leader reads nodes/, and the leader reads it once per
 * term: a join is the node's own PUT, which the leader's watch sees; 1,000
 * joins in a burst are a handful of upkeep commits. A trigger that finds
 * its loop's run still under way comes back after the delay, so no trigger
 * is lost: a run only sees the state it read, and a later change needs a
 * later run. */
#include <unistd.h>

#include "agree.h"
#include "backoff.h"
#include "cluster.h"
#include "ec2.h"
#include "keys.h"
#include "lifecycle.h"
#include "livenodes.h"
#include "log.h"
#include "reconcile.h"
#include "rollout-loop.h"
#include "scaler.h"
#include "topology.h"

/* Node churn comes in bursts (a fleet boots together): let it settle, but
 * never leave a burst's first join waiting longer than the maximum. Each
 * upkeep commit that follows another within UPKEEP_CALM_USEC doubles both
 * (to 2 s and 16 s at most): a fleet of 1,000 that takes a minute to
 * register, or a storm of lost leases, costs a handful of commits, each
 * of which every node must read, instead of one every 2 s. */
#define UPKEEP_QUIET_USEC     (300 * USEC_PER_MSEC)
#define UPKEEP_MAX_WAIT_USEC  (2 * USEC_PER_SEC)
#define UPKEEP_QUIET_CAP_USEC (2 * USEC_PER_SEC)
#define UPKEEP_WAIT_CAP_USEC  (16 * USEC_PER_SEC)
#define UPKEEP_CALM_USEC      (10 * USEC_PER_SEC)
#define GC_DELAY_USEC        (2 * USEC_PER_SEC)
/* The initial values' proposal failed (etcd away): again after this. */
#define JOIN_RETRY_BASE_USEC (500 * USEC_PER_MSEC)
#define JOIN_RETRY_CAP_USEC  (30 * USEC_PER_SEC)

struct cluster {
	etcd_client *etcd;
	sd_event *event;
	/* Our reference. Read at the moment of use (a proposal's change
	 * callback reads the conf of that moment); what an operation keeps
	 * (prefix, proposer, fence, the scaler's and EC2's settings) it
	 * copies, so nothing points into an old conf after cluster_set_conf(). */
	conf *conf;
	agree_proposal *proposal;       /* the initial values' or an upkeep's, one at a time */
	agree_gc_op *gc;
	sd_event_source *upkeep_timer, *gc_timer, *join_timer;
	uint64_t upkeep_since;          /* the first trigger the armed upkeep waits on */
	uint64_t upkeep_last;           /* the last upkeep commit (0: none) */
	unsigned upkeep_streak;         /* upkeep commits, each within the calm of the last */
	uint64_t gc_last;               /* when the last collection started (0: never) */
	bool join_pending;              /* the initial values wait for the running proposal */
	bool join_done;                 /* proposed, or a config was found: never again */
	bool proposing_join;            /* the proposal under way is the initial values' */
	backoff join_retry;

	/* The newest snapshot of `current` this node holds whole, ordered by
	 * current's mod_revision: from its reconciler (cluster_config_applied)
	 * or from its own commit. Not known: the upkeep must read it. */
	bool snap_known;
	int64_t snap_rev;               /* -1: nothing seen yet */
	char *snap_id;                  /* NULL: the cluster has no config */
	json_t *snap_files;             /* shared, never changed */
	bool seen_target;               /* collection: the last target reported */
	char *seen_id;

	live_nodes *live;               /* while leading */

	leader *campaign;               /* borrowed from main */
	char *leader_key;
	int64_t token;                  /* while leading: the fencing token */
	etcd_compare fence;             /* compare create_revision(leader) == token */
	char last_error[512];

	/* Autoscaling, while leading and when the node config names an EC2
	 * region (docs/scale.md, "The leader loop"). */
	ec2_client *ec2;
	scaler *scaler;
	sd_event_source *fence_defer;   /* leader_fence_failed() outside the scaler's
	                                   or the rollout loop's callback */
	scale_status scaling;           /* what scale/status says, while leading */
	bool scaling_known;

	/* Rolling upgrades: every leader runs the rollout loop
	 * (docs/upgrades.md, "The leader loop"). */
	rollout_loop *rollout;
	char last_rollout_error[512];

	/* Tenant deployments: every leader runs the lifecycle loop
	 * (docs/deployments.md). */
	lifecycle_loop *lifecycle;
	char last_lifecycle_error[512];
};

static void cluster_run(cluster *c);
static void schedule_gc(cluster *c);

static bool leading(const cluster *c) {
	return c->token > 0;
}

static uint64_t now_usec(const cluster *c) {
	uint64_t t = 0;

	(void) sd_event_now(c->event, CLOCK_MONOTONIC, &t);
	return t;
}

/* Arms a loop's timer unless it is armed: triggers within the delay are
 * one run. */
static void loop_arm(cluster *c, sd_event_source **timer, uint64_t delay_usec, sd_event_time_handler_t fn) {
	if (*timer)
		return;
	(void) sd_event_add_time_relative(c->event, timer, CLOCK_MONOTONIC, delay_usec, USEC_PER_MSEC, fn, c);
}

/* The snapshot the upkeep decides on (files: a new reference, or NULL:
 * not known whole, the upkeep reads it). Only a newer one replaces it (or
 * the same one from the reconciler, whose tree it then shares instead of
 * keeping a copy), but a report of no config at all is taken as is
 * (`current` deleted). */
static bool snap_stale(const cluster *c, const char *id, int64_t rev, const json_t *files) {
	if (!c->snap_known)
		/* Any whole snapshot beats none; "not whole" only moves on. */
		return !files && rev <= c->snap_rev;
	if (!id && c->snap_id && files)
		return false;           /* no config any more: as is */
	return rev < c->snap_rev || (rev == c->snap_rev && !files);
}

static void snap_set(cluster *c, const char *id, int64_t rev, json_t *files) {
	if (snap_stale(c, id, rev, files))
		return;
	json_decref(c->snap_files);
	c->snap_files = json_incref(files);
	free(c->snap_id);
	c->snap_id = id && files ? strdup(id) : NULL;
	c->snap_known = files && (!id || c->snap_id);
	c->snap_rev = rev;
}

/* A proposal's outcome that is neither a commit nor a refused fence. */
static void proposal_failed(cluster *c, const char *what, const agree_result *res) {
	if (!streq(c->last_error, res->error.message))
		log_warning("%s: %s", what, res->error.message);
	snprintf(c->last_error, sizeof c->last_error, "%s", res->error.message);
}

static void proposal_done(cluster *c, const char *what, const agree_result *res) {
	c->last_error[0] = '\0';
	if (res->committed)
		log_info("%s: committed %s (was %s)", what, res->config_id, res->previous_id ? res->previous_id : "none");
	if (leading(c) && res->committed)
		schedule_gc(c);
}

/* ---- initial values: a node that has them, once ------------------------------ */

static int upkeep_apply(const conf *cf, json_t *files, bool no_config, json_t *nodes, char *err, size_t err_size);

/* This node alone, as its record says it (node.h): what its own topology
 * entries are made of. New reference. */
static json_t *self_as_nodes(const conf *cf) {
	json_auto_t *services = json_array(), *nodes = NULL;

	if (!services)
		return NULL;
	for (char **s = cf->services; s && *s; s++)
		if (json_array_append_new(services, json_string(*s)) < 0)
			return NULL;
	nodes = json_pack("{s:{s:s?,s:O}}", cf->node_id, "address", cf->address, "services", services);
	return TAKE_PTR(nodes);
}

/* only_if_absent: called only while there is no config. The initial
 * values with this node's own entries (the leader adds the others): the
 * first config already lists the node that made it. */
static int join_change(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	cluster *c = userdata;
	json_auto_t *self = self_as_nodes(c->conf);

	if (!self)
		return -ENOMEM;
	return upkeep_apply(c->conf, files, true, self, err, err_size);
}

static int on_join_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	cluster *c = userdata;

	c->join_timer = sd_event_source_disable_unref(c->join_timer);
	c->join_pending = true;
	cluster_run(c);
	return 0;
}

static void on_join_done(agree_proposal *p, const agree_result *res, void *userdata) {
	cluster *c = userdata;

	c->proposal = agree_proposal_free(c->proposal);
	c->proposing_join = false;
	if (res->error.code < 0 && res->error.code != -EEXIST) {
		proposal_failed(c, "initial values", res);
		(void) sd_event_add_time_relative(c->event, &c->join_timer, CLOCK_MONOTONIC,
						  backoff_next(&c->join_retry, backoff_random()), USEC_PER_MSEC,
						  on_join_timer, c);
	} else {
		c->join_done = true;
		if (res->error.code == -EEXIST)
			log_debug("initial values not needed: %s", res->error.message);
		else
			proposal_done(c, "initial values", res);
	}
	cluster_run(c);
}

/* Runs what is pending, one proposal at a time. The initial values are
 * the node's own business and need no fence; they read `current` alone
 * (only_if_absent) and never nodes/. */
static void cluster_run(cluster *c) {
	agree_options o = {
		.prefix = c->conf->prefix,
		.proposer = c->conf->node_id,
		.only_if_absent = true,
	};
	int r;

	if (c->proposal || !c->join_pending)
		return;
	c->join_pending = false;
	c->proposing_join = true;
	r = agree_propose(&c->proposal, c->etcd, &o, join_change, c, on_join_done, c);
	if (r < 0) {
		log_warning_errno(r, "cannot start a config proposal: %m");
		c->proposing_join = false;
	}
}

/* ---- topology upkeep: the leader ------------------------------------------- */

/* decide (pure): every topology list holds exactly the entries of the live
 * nodes; with no config at all, start from this node's initial values, so
 * that a config of topology lists alone never shuts them out. */
static int upkeep_apply(const conf *cf, json_t *files, bool no_config, json_t *nodes, char *err, size_t err_size) {
	tree_error te = {};
	int r;

	if (no_config && cf->initial) {
		json_auto_t *init = tree_copy(cf->initial);
		if (!init || json_object_update(files, init) < 0)
			return -ENOMEM;
	}
	if (cf->n_topology == 0 || !nodes)
		return 0;
	r = topology_apply(files, cf->topology, cf->n_topology, nodes, &te);
	if (r < 0) {
		snprintf(err, err_size, "topology rule for %s: %s", te.path, te.message);
		return r;
	}
	return 0;
}

/* The proposal's change, on the snapshot it read. A deposed leader's
 * proposal is cancelled; until then it changes nothing. */
static int upkeep_change(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	cluster *c = userdata;

	if (!leading(c))
		return 0;
	return upkeep_apply(c->conf, files, !s->config_id, live_nodes_map(c->live), err, err_size);
}

/* Whether the snapshot we hold needs a change (or is not known whole): the
 * same decision on a copy, so an upkeep with nothing to do costs etcd
 * nothing. */
static bool upkeep_wanted(cluster *c) {
	char err[sizeof c->last_error] = "";
	json_auto_t *files = NULL;
	int r;

	if (c->conf->n_topology == 0 && !c->conf->initial)
		return false;
	if (!c->snap_known)
		return true;
	files = tree_copy(c->snap_files);
	if (!files)
		return true;
	r = upkeep_apply(c->conf, files, !c->snap_id, live_nodes_map(c->live), err, sizeof err);
	if (r < 0) {
		/* The proposal would fail the same way: say it once. */
		if (!streq(c->last_error, err))
			log_warning("topology upkeep: %s", err);
		snprintf(c->last_error, sizeof c->last_error, "%s", err);
		return false;
	}
	return !json_equal(files, c->snap_files);
}

/* act done: one log line. A failure waits for the next trigger (a node
 * that comes or goes, or a new `current`). */
static void on_upkeep_done(agree_proposal *p, const agree_result *res, void *userdata) {
	cluster *c = userdata;

	c->proposal = agree_proposal_free(c->proposal);
	if (res->error.code == -EPERM) {
		/* The fence held no more: someone else leads. */
		log_warning("topology upkeep refused: %s", res->error.message);
		leader_fence_failed(c->campaign);
	} else if (res->error.code < 0)
		proposal_failed(c, "topology upkeep", res);
	else {
		/* What we committed is the newest snapshot we know; what we
		 * read and left alone is at least known whole. */
		if (res->committed) {
			snap_set(c, res->config_id, res->revision, res->files);
			uint64_t now = now_usec(c);
			c->upkeep_streak = c->upkeep_last && now - c->upkeep_last < UPKEEP_CALM_USEC ? c->upkeep_streak + 1 : 0;
			c->upkeep_last = now;
		}
		else if (!c->snap_known && res->files)
			snap_set(c, res->config_id, c->snap_rev, res->files);
		proposal_done(c, "topology upkeep", res);
	}
	cluster_run(c);
}

static void schedule_upkeep(cluster *c, bool churn);

static int on_upkeep_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	cluster *c = userdata;
	agree_options o = {
		.prefix = c->conf->prefix,
		.proposer = c->conf->node_id,
		/* commits only while the leader key is still the one it won */
		.fence = &c->fence,
		.n_fence = 1,
	};
	int r;

	c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
	c->upkeep_since = 0;
	/* Until the node map is read, its arrival is the trigger. */
	if (!leading(c) || !live_nodes_map(c->live))
		return 0;
	if (c->proposal) {
		/* Busy: come back shortly. */
		schedule_upkeep(c, false);
		return 0;
	}
	if (!upkeep_wanted(c))
		return 0;
	r = agree_propose(&c->proposal, c->etcd, &o, upkeep_change, c, on_upkeep_done, c);
	if (r < 0)
		log_warning_errno(r, "cannot start a config proposal: %m");
	return 0;
}

/* The upkeep's quiet period and maximum wait after `streak` commits in
 * quick succession (pure). */
static void upkeep_delays(unsigned streak, uint64_t *quiet, uint64_t *max_wait) {
	unsigned k = streak < 6 ? streak : 6;

	*quiet = UPKEEP_QUIET_USEC << k;
	*max_wait = UPKEEP_MAX_WAIT_USEC << k;
	if (*quiet > UPKEEP_QUIET_CAP_USEC)
		*quiet = UPKEEP_QUIET_CAP_USEC;
	if (*max_wait > UPKEEP_WAIT_CAP_USEC)
		*max_wait = UPKEEP_WAIT_CAP_USEC;
}

/* Debounced: a quiet period after the last trigger, at most the maximum
 * after the first. Node churn (churn) waits longer while upkeep commits
 * follow each other; a new `current` to repair does not, and brings an
 * armed upkeep forward. */
static void schedule_upkeep(cluster *c, bool churn) {
	uint64_t now = now_usec(c), at, quiet, max_wait, armed;
	bool calm = !c->upkeep_last || now - c->upkeep_last >= UPKEEP_CALM_USEC;

	if (!c->upkeep_since)
		c->upkeep_since = now;
	upkeep_delays(churn && !calm ? c->upkeep_streak + 1 : 0, &quiet, &max_wait);
	at = now + reconcile_debounce_wait(now, c->upkeep_since, quiet, max_wait);
	if (c->upkeep_timer && !churn && sd_event_source_get_time(c->upkeep_timer, &armed) >= 0 && armed < at)
		return;
	if (c->upkeep_timer && sd_event_source_set_time(c->upkeep_timer, at) >= 0)
		return;
	c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
	(void) sd_event_add_time(c->event, &c->upkeep_timer, CLOCK_MONOTONIC, at, USEC_PER_MSEC, on_upkeep_timer, c);
}

/* A node came or went (or the map was read): the upkeep looks. */
static void on_live_nodes(live_nodes *l, void *userdata) {
	cluster *c = userdata;

	if (leading(c))
		schedule_upkeep(c, true);
}

/* ---- collection of old snapshots: the leader ------------------------------- */

/* act done: one log line. */
static void on_gc_done(int deleted, const agree_error *err, void *userdata) {
	cluster *c = userdata;

	c->gc = agree_gc_op_free(c->gc);
	if (err && err->code == -EPERM) {
		log_warning("collecting old config snapshots refused: %s", err->message);
		leader_fence_failed(c->campaign);
	} else if (err && err->code < 0)
		log_warning("collecting old config snapshots: %s", err->message);
	else if (deleted > 0)
		log_info("collected %d old config snapshot%s", deleted, deleted == 1 ? "" : "s");
}

static int on_gc_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	cluster *c = userdata;
	int r;

	c->gc_timer = sd_event_source_disable_unref(c->gc_timer);
	if (!leading(c))
		return 0;
	if (c->gc) {
		/* Busy: the run under way plans from what it read before this
		 * trigger (it may even stop early on the commit that caused
		 * it). Come back, or the snapshots this trigger freed stay. */
		loop_arm(c, &c->gc_timer, GC_DELAY_USEC, on_gc_timer);
		return 0;
	}
	c->gc_last = now_usec(c);
	r = agree_collect(c->etcd, c->conf->prefix, c->conf->history, &c->fence, 1, on_gc_done, c, &c->gc);
	if (r < 0)
		log_warning_errno(r, "cannot collect old config snapshots: %m");
	return 0;
}

/* A collection lists configs/ and every status record: it runs a little
 * after a change, but at most once per collect_interval however many
 * commits come (what a later commit frees waits for the next run). */
static void schedule_gc(cluster *c) {
	uint64_t delay = GC_DELAY_USEC, now = now_usec(c), next = c->gc_last + c->conf->collect_interval_usec;

	if (c->gc_last && next > now + delay)
		delay = next - now;
	loop_arm(c, &c->gc_timer, delay, on_gc_timer);
}

/* ---- what this node applied -------------------------------------------------- */

int cluster_new(cluster **out, etcd_client *etcd, conf *cf) {
	_cleanup_(cluster_freep) cluster *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->etcd = etcd;
	c->event = sd_event_ref(etcd_client_event(etcd));
	c->conf = conf_ref(cf);
	c->snap_rev = -1;
	c->join_retry = BACKOFF_INIT(JOIN_RETRY_BASE_USEC, JOIN_RETRY_CAP_USEC);
	c->leader_key = keys_one_of(cf->prefix, KEYS_LEADER);
	if (!c->leader_key)
		return -errno;
	*out = TAKE_PTR(c);
	return 0;
}

void cluster_joined(cluster *c) {
	/* A new lease needs nothing from us: the leader's watch sees the
	 * node's record come back. */
	if (c->join_done || c->join_pending || c->proposing_join || c->join_timer || !c->conf->initial)
		return;
	c->join_pending = true;
	cluster_run(c);
}

void cluster_config_applied(cluster *c, const char *id, int64_t revision, json_t *files) {
	bool was_known = c->snap_known;
	int64_t was_rev = c->snap_rev;

	/* A new `current` frees old snapshots: the nodes move off them
	 * first (this node has, now). */
	if (!c->seen_target || !streq_ptr(c->seen_id, id)) {
		free(c->seen_id);
		c->seen_id = id ? strdup(id) : NULL;
		c->seen_target = true;
		if (leading(c))
			schedule_gc(c);
	}
	snap_set(c, id, revision, files);
	if (c->snap_known == was_known && c->snap_rev == was_rev)
		return;
	/* An import, set or rollback may have replaced a managed list: one
	 * fenced commit puts the live nodes back. Our own commits come back
	 * here and find nothing to do. */
	if (leading(c) && live_nodes_map(c->live) && upkeep_wanted(c))
		schedule_upkeep(c, false);
}

void cluster_set_campaign(cluster *c, leader *l) {
	c->campaign = l;
	cluster_leader_changed(c);
}

/* What a cycle did is in its decision and action lines, a failure in
 * the status line (on change); the cycle's end itself is for debugging,
 * on one line. */
static void on_scaler_cycle(scaler *s, int error, const char *summary, void *userdata) {
	if (error < 0)
		log_debug("scale: cycle result=failed error=%d", error);
	else
		log_debug("scale: cycle result=ok");
}

/* One line per action or decision, at the level the scaler gave it. */
static void on_scaler_action(scaler *s, int priority, const char *line, void *userdata) {
	log_full(priority, "%s", line);
}

static void scaling_changed(cluster *c, const scale_status *st) {
	char line[600];

	c->scaling = *st;
	c->scaling_known = true;
	log_full(scale_status_working(st->code) ? LOG_INFO : LOG_WARNING, "%s",
		 scale_status_log_line(st, line, sizeof line));
}

static void on_scaler_status(scaler *s, const scale_status *st, void *userdata) {
	scaling_changed(userdata, st);
}

static int on_fence_defer(sd_event_source *src, void *userdata) {
	cluster *c = userdata;

	c->fence_defer = sd_event_source_disable_unref(c->fence_defer);
	if (c->campaign)
		leader_fence_failed(c->campaign);
	return 0;
}

static void on_scaler_fenced(scaler *s, void *userdata) {
	cluster *c = userdata;

	log_warning("autoscaler: a fenced write was refused, stepping down");
	/* Stepping down frees the scaler, which must not happen inside its
	 * own callback: do it from the loop. */
	if (!c->fence_defer)
		(void) sd_event_add_defer(c->event, &c->fence_defer, on_fence_defer, c);
}

static void scaler_start(cluster *c) {
	const conf *cf = c->conf;
	static const scaler_callbacks cb = { .cycle = on_scaler_cycle, .fenced = on_scaler_fenced,
					     .action = on_scaler_action, .status = on_scaler_status };
	char why[300] = "";
	int r;

	if (c->scaler)
		return;
	/* Without EC2 the scaler still runs, on etcd alone: with a policy to
	 * follow it says in scale/status why it cannot scale (no region, no
	 * client); without one scaling is off and nothing is wrong. */
	if (cf->ec2.region && !c->ec2) {
		ec2_options eo = {
			.region = cf->ec2.region,
			.endpoint = cf->ec2.endpoint,
			.imds_endpoint = cf->ec2.imds_endpoint,
			.credentials_file = cf->ec2.credentials_file,
			.profile = cf->ec2.profile,
		};
		r = ec2_client_new(&c->ec2, c->event, &eo);
		if (r < 0) {
			log_error_errno(r, "autoscaler: cannot create the EC2 client: %m");
			snprintf(why, sizeof why, "cannot create the EC2 client for region %s: %s", cf->ec2.region,
				 strerror(-r));
		}
	}
	scaler_options o = {
		.prefix = cf->prefix,
		.cluster = cf->cluster,
		.token = c->token,
		.interval_usec = cf->scale_interval_usec,
		.launch_grace_sec = (int64_t) (cf->launch_grace_usec / USEC_PER_SEC),
		.no_ec2_code = cf->ec2.region ? SCALE_STATUS_FAILED : SCALE_STATUS_NO_REGION,
		.no_ec2_reason = why[0] ? why : NULL,
	};
	r = scaler_new(&c->scaler, c->etcd, c->ec2, &o, &cb, c);
	if (r < 0)
		log_error_errno(r, "autoscaler: cannot start: %m");
	else if (c->ec2)
		log_info("autoscaler: started (region %s, every %llus)", cf->ec2.region,
			 (unsigned long long) (cf->scale_interval_usec / USEC_PER_SEC));
}

/* ---- rollouts: every leader ------------------------------------------------ */

static void on_rollout_line(rollout_loop *l, const char *line, void *userdata) {
	log_info("rollout: %s", line);
}

static void on_rollout_round(rollout_loop *l, int error, const char *why, void *userdata) {
	cluster *c = userdata;

	if (error >= 0 || error == -EPERM) {
		c->last_rollout_error[0] = '\0';
		return;
	}
	if (!streq(c->last_rollout_error, why ?: ""))
		log_warning_errno(error, "rollout: %s", why ?: "failed");
	snprintf(c->last_rollout_error, sizeof c->last_rollout_error, "%s", why ?: "");
}

static void on_rollout_fenced(rollout_loop *l, void *userdata) {
	cluster *c = userdata;

	log_warning("rollout: a fenced write was refused, stepping down");
	if (!c->fence_defer)
		(void) sd_event_add_defer(c->event, &c->fence_defer, on_fence_defer, c);
}

static void rollout_start(cluster *c) {
	static const rollout_loop_callbacks cb = { .fenced = on_rollout_fenced, .line = on_rollout_line,
						   .round = on_rollout_round };
	rollout_loop_options o = { .prefix = c->conf->prefix, .token = c->token, .proposer = c->conf->node_id,
				   .ec2 = c->ec2 };
	int r;

	if (c->rollout)
		return;
	r = rollout_loop_new(&c->rollout, c->etcd, &o, &cb, c);
	if (r < 0)
		log_error_errno(r, "rollout: cannot start: %m");
}

/* ---- tenant deployments: every leader ------------------------------------------ */

static void on_lifecycle_line(lifecycle_loop *l, bool warning, const char *line, void *userdata) {
	if (warning)
		log_warning("deployments: %s", line);
	else
		log_info("deployments: %s", line);
}

static void on_lifecycle_round(lifecycle_loop *l, int error, const char *why, void *userdata) {
	cluster *c = userdata;

	if (error >= 0 || error == -EPERM) {
		c->last_lifecycle_error[0] = '\0';
		return;
	}
	if (!streq(c->last_lifecycle_error, why ?: ""))
		log_warning_errno(error, "deployments: %s", why ?: "failed");
	snprintf(c->last_lifecycle_error, sizeof c->last_lifecycle_error, "%s", why ?: "");
}

static void on_lifecycle_fenced(lifecycle_loop *l, void *userdata) {
	cluster *c = userdata;

	log_warning("deployments: a fenced write was refused, stepping down");
	if (!c->fence_defer)
		(void) sd_event_add_defer(c->event, &c->fence_defer, on_fence_defer, c);
}

static void lifecycle_start(cluster *c) {
	static const lifecycle_callbacks cb = { .fenced = on_lifecycle_fenced, .line = on_lifecycle_line,
						.round = on_lifecycle_round };
	lifecycle_options o = { .prefix = c->conf->prefix, .cluster = c->conf->cluster, .token = c->token };
	int r;

	if (c->lifecycle)
		return;
	r = lifecycle_loop_new(&c->lifecycle, c->etcd, &o, &cb, c);
	if (r < 0)
		log_error_errno(r, "deployments: cannot start: %m");
}

void cluster_leader_changed(cluster *c) {
	int64_t token = leader_token(c->campaign);

	if (token == c->token)
		return;
	if (c->token > 0) {
		/* Stop at once: nothing of the old term may still be written
		 * (the fence would refuse it anyway). Joins go on. */
		c->token = 0;
		c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
		c->upkeep_since = 0;
		c->gc_timer = sd_event_source_disable_unref(c->gc_timer);
		c->gc = agree_gc_op_free(c->gc);
		c->live = live_nodes_free(c->live);
		if (c->proposal && !c->proposing_join)
			c->proposal = agree_proposal_free(c->proposal);
		/* Every EC2 call, timer and watch of the old term goes now. */
		if (c->scaler && c->ec2)
			log_info("autoscaler: stopped (no longer the leader)");
		c->scaler = scaler_free(c->scaler);
		c->scaling_known = false;
		c->rollout = rollout_loop_free(c->rollout);
		c->lifecycle = lifecycle_loop_free(c->lifecycle);
	}
	if (token > 0) {
		c->token = token;
		c->upkeep_last = 0;
		c->upkeep_streak = 0;
		c->fence = leader_fence(c->leader_key, token);
		scaler_start(c);
		rollout_start(c);
		lifecycle_start(c);
		/* nodes/, once, then its watch: the map's arrival runs the
		 * first upkeep (a new leader may have missed changes). Every
		 * later `current` comes through cluster_config_applied(). */
		if (live_nodes_new(&c->live, c->etcd, c->conf->prefix, on_live_nodes, c) < 0)
			log_warning("cannot read %s/nodes/: topology lists are not kept", c->conf->prefix);
		schedule_gc(c);
	}
	cluster_run(c);
}

static bool ec2_conf_equal(const conf *a, const conf *b) {
	return streq_ptr(a->ec2.region, b->ec2.region) && streq_ptr(a->ec2.endpoint, b->ec2.endpoint) &&
	       streq_ptr(a->ec2.imds_endpoint, b->ec2.imds_endpoint) &&
	       streq_ptr(a->ec2.credentials_file, b->ec2.credentials_file) &&
	       streq_ptr(a->ec2.profile, b->ec2.profile) && a->scale_interval_usec == b->scale_interval_usec &&
	       a->launch_grace_usec == b->launch_grace_usec;
}

void cluster_set_conf(cluster *c, conf *cf) {
	bool restart = !ec2_conf_equal(c->conf, cf);
	conf *old = c->conf;

	c->conf = conf_ref(cf);         /* before the unref: cf may be old */
	conf_unref(old);
	/* The rules or the initial values may have changed. */
	if (leading(c) && live_nodes_map(c->live) && upkeep_wanted(c))
		schedule_upkeep(c, false);
	if (!restart)
		return;
	/* EC2 settings changed: the scaler (and client) start over with them;
	 * no region any more: it stops. */
	if (c->scaler && c->ec2)
		log_info("autoscaler: stopped (configuration changed)");
	c->scaler = scaler_free(c->scaler);
	c->ec2 = ec2_client_free(c->ec2);
	if (leading(c))
		scaler_start(c);
}

const scaler *cluster_scaler(const cluster *c) {
	/* the scaling metrics are the EC2 scaler's: none from one on etcd alone */
	return c && leading(c) && c->ec2 ? c->scaler : NULL;
}

const scale_status *cluster_scaling(const cluster *c) {
	return c && leading(c) && c->scaling_known ? &c->scaling : NULL;
}

const rollout_loop *cluster_rollout(const cluster *c) {
	return c && leading(c) ? c->rollout : NULL;
}

const lifecycle_loop *cluster_lifecycle(const cluster *c) {
	return c && leading(c) ? c->lifecycle : NULL;
}

cluster *cluster_free(cluster *c) {
	if (!c)
		return NULL;
	if (c->scaler && c->ec2)
		log_info("autoscaler: stopped (corrald stopping)");
	c->scaler = scaler_free(c->scaler);
	c->rollout = rollout_loop_free(c->rollout);
	c->lifecycle = lifecycle_loop_free(c->lifecycle);
	c->ec2 = ec2_client_free(c->ec2);
	c->fence_defer = sd_event_source_disable_unref(c->fence_defer);
	c->live = live_nodes_free(c->live);
	c->proposal = agree_proposal_free(c->proposal);
	c->gc = agree_gc_op_free(c->gc);
	c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
	c->gc_timer = sd_event_source_disable_unref(c->gc_timer);
	c->join_timer = sd_event_source_disable_unref(c->join_timer);
	sd_event_unref(c->event);
	json_decref(c->snap_files);
	free(c->snap_id);
	free(c->seen_id);
	free(c->leader_key);
	conf_unref(c->conf);
	free(c);
	return NULL;
}
