/* cluster.c — join proposals, and the leader's two loops that keep the
 * cluster config right (see cluster.h). Each leader loop is one shape,
 * observe -> decide -> act, run by a timer that coalesces its triggers:
 *
 *   upkeep      observe: agree_propose() reads `current`, its snapshot and
 *                        nodes/ at one revision (agree_snapshot);
 *               decide:  upkeep_change(): topology_apply(), pure;
 *               act:     the commit, fenced with the leader's token;
 *                        on_upkeep_done() logs it (one line).
 *   collection  observe: agree_collect() lists the folders, `current` and
 *                        the ids in use at one revision (agree_folders);
 *               decide:  agree_gc_plan(), pure;
 *               act:     the deletes, fenced and guarded by current's
 *                        mod_revision; on_gc_done() logs them (one line).
 *
 * A trigger that finds its loop's run still under way comes back after the
 * delay (loop_arm()), so no trigger is lost: a run only sees the state it
 * read, and a later change needs a later run. */
#include <unistd.h>

#include "agree.h"
#include "cluster.h"
#include "ec2.h"
#include "keys.h"
#include "log.h"
#include "rollout-loop.h"
#include "scaler.h"
#include "topology.h"

/* Node churn comes in bursts (a fleet boots together): let it settle. */
#define UPKEEP_DELAY_USEC (300 * USEC_PER_MSEC)
#define GC_DELAY_USEC     (2 * USEC_PER_SEC)

struct cluster {
	etcd_client *etcd;
	sd_event *event;
	/* Our reference. Read at the moment of use (a proposal's change
	 * callback reads the conf of that moment); what an operation keeps
	 * (prefix, proposer, fence, the scaler's and EC2's settings) it
	 * copies, so nothing points into an old conf after cluster_set_conf(). */
	conf *conf;
	char *nodes_key, *current_key;
	etcd_watch *nodes_watch;
	etcd_watch *current_watch;      /* while leading: every change of current */
	agree_proposal *proposal;       /* a join's or an upkeep's, one at a time */
	agree_gc_op *gc;
	sd_event_source *upkeep_timer, *gc_timer;
	bool join_pending;              /* a join waits for the running proposal */
	bool proposing_join;            /* the proposal under way is a join */

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
	char last_scale_error[512];

	/* Rolling upgrades: every leader runs the rollout loop
	 * (docs/upgrades.md, "The leader loop"). */
	rollout_loop *rollout;
	char last_rollout_error[512];
};

static void cluster_run(cluster *c);
static void schedule_gc(cluster *c);

static bool leading(const cluster *c) {
	return c->token > 0;
}

/* Arms a loop's timer unless it is armed: triggers within the delay are
 * one run. */
static void loop_arm(cluster *c, sd_event_source **timer, uint64_t delay_usec, sd_event_time_handler_t fn) {
	if (*timer)
		return;
	(void) sd_event_add_time_relative(c->event, timer, CLOCK_MONOTONIC, delay_usec, USEC_PER_MSEC, fn, c);
}

/* Every topology list holds exactly the live nodes' entries (pure). */
static int change_topology(cluster *c, json_t *files, const agree_snapshot *s, char *err, size_t err_size) {
	tree_error te = {};
	int r;

	if (c->conf->n_topology == 0)
		return 0;
	r = topology_apply(files, c->conf->topology, c->conf->n_topology, s->nodes, &te);
	if (r < 0) {
		snprintf(err, err_size, "topology rule for %s: %s", te.path, te.message);
		return r;
	}
	return 0;
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
	if (leading(c))
		schedule_gc(c);
}

/* ---- join: every node, once registered ------------------------------------- */

static int join_change(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	cluster *c = userdata;

	if (!s->config_id && c->conf->initial) {
		/* The first config of the cluster: start from our initial values. */
		json_auto_t *init = tree_copy(c->conf->initial);
		if (!init || json_object_update(files, init) < 0)
			return -ENOMEM;
	}
	return change_topology(c, files, s, err, err_size);
}

static void on_join_done(agree_proposal *p, const agree_result *res, void *userdata) {
	cluster *c = userdata;

	c->proposal = agree_proposal_free(c->proposal);
	c->proposing_join = false;
	if (res->error.code < 0 && res->error.code != -EEXIST) {
		proposal_failed(c, "join", res);
		c->join_pending = true;         /* again after the next proposal */
	} else
		proposal_done(c, "join", res);
	cluster_run(c);
}

/* Runs what is pending, one proposal at a time. Joins are every node's own
 * business and need no fence. */
static void cluster_run(cluster *c) {
	agree_options o = {
		.prefix = c->conf->prefix,
		.proposer = c->conf->node_id,
		.read_nodes = true,
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

/* decide: re-derive every managed list from the live nodes read with the
 * snapshot. A deposed leader's proposal is cancelled; until then it
 * changes nothing. */
static int upkeep_change(json_t *files, const agree_snapshot *s, void *userdata, char *err, size_t err_size) {
	cluster *c = userdata;

	if (!leading(c))
		return 0;
	return change_topology(c, files, s, err, err_size);
}

/* act done: one log line. A failure waits for the next trigger (a nodes/
 * event or a change of current). */
static void on_upkeep_done(agree_proposal *p, const agree_result *res, void *userdata) {
	cluster *c = userdata;

	c->proposal = agree_proposal_free(c->proposal);
	if (res->error.code == -EPERM) {
		/* The fence held no more: someone else leads. */
		log_warning("topology upkeep refused: %s", res->error.message);
		leader_fence_failed(c->campaign);
	} else if (res->error.code < 0 && res->error.code != -EEXIST)
		proposal_failed(c, "topology upkeep", res);
	else
		proposal_done(c, "topology upkeep", res);
	cluster_run(c);
}

static int on_upkeep_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	cluster *c = userdata;
	agree_options o = {
		.prefix = c->conf->prefix,
		.proposer = c->conf->node_id,
		.read_nodes = true,
		/* commits only while the leader key is still the one it won */
		.fence = &c->fence,
		.n_fence = 1,
	};
	int r;

	c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
	if (!leading(c))
		return 0;
	if (c->proposal) {
		/* Busy: come back shortly. */
		loop_arm(c, &c->upkeep_timer, UPKEEP_DELAY_USEC, on_upkeep_timer);
		return 0;
	}
	r = agree_propose(&c->proposal, c->etcd, &o, upkeep_change, c, on_upkeep_done, c);
	if (r < 0)
		log_warning_errno(r, "cannot start a config proposal: %m");
	return 0;
}

static void schedule_upkeep(cluster *c) {
	loop_arm(c, &c->upkeep_timer, UPKEEP_DELAY_USEC, on_upkeep_timer);
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
	r = agree_collect(c->etcd, c->conf->prefix, c->conf->history, &c->fence, 1, on_gc_done, c, &c->gc);
	if (r < 0)
		log_warning_errno(r, "cannot collect old config snapshots: %m");
	return 0;
}

static void schedule_gc(cluster *c) {
	loop_arm(c, &c->gc_timer, GC_DELAY_USEC, on_gc_timer);
}

/* ---- watches ------------------------------------------------------------------ */

static int watch_nodes(cluster *c);
static int watch_current(cluster *c);

static void on_nodes(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	cluster *c = userdata;

	switch (m->type) {
	case ETCD_WATCH_EVENTS:
		if (leading(c))
			schedule_upkeep(c);
		break;
	case ETCD_WATCH_COMPACTED:
	case ETCD_WATCH_CANCELED:
		/* Start over from now; what we missed is in the next snapshot. */
		if (watch_nodes(c) < 0)
			log_warning("cannot watch %s again", c->nodes_key);
		if (leading(c))
			schedule_upkeep(c);
		break;
	default:
		break;
	}
}

static int watch_nodes(cluster *c) {
	etcd_watch_req req = { .key = c->nodes_key, .prefix = true };

	c->nodes_watch = etcd_watch_free(c->nodes_watch);
	return etcd_watch_new(&c->nodes_watch, c->etcd, &req, on_nodes, c);
}

/* A new `current` (an import, set or rollback, or our own commit) may have
 * replaced a managed list: re-derive the lists from the live nodes. Our own
 * upkeep commit comes back here too and finds nothing to change, so one
 * change costs at most one repair commit. (Collection waits for this
 * node's apply, cluster_config_changed(): the nodes move off the old
 * snapshots first.) */
static void on_current(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	cluster *c = userdata;

	if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED) {
		/* Start over from now: the upkeep below covers what we missed. */
		if (watch_current(c) < 0)
			log_warning("cannot watch %s again", c->current_key);
	} else if (m->type != ETCD_WATCH_EVENTS)
		return;
	if (leading(c))
		schedule_upkeep(c);
}

static int watch_current(cluster *c) {
	etcd_watch_req req = { .key = c->current_key };

	c->current_watch = etcd_watch_free(c->current_watch);
	return etcd_watch_new(&c->current_watch, c->etcd, &req, on_current, c);
}

int cluster_new(cluster **out, etcd_client *etcd, conf *cf) {
	_cleanup_(cluster_freep) cluster *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	c->etcd = etcd;
	c->event = sd_event_ref(etcd_client_event(etcd));
	c->conf = conf_ref(cf);
	c->nodes_key = keys_dir_of(cf->prefix, KEYS_NODES);
	c->leader_key = keys_one_of(cf->prefix, KEYS_LEADER);
	c->current_key = keys_one_of(cf->prefix, KEYS_CURRENT);
	if (!c->nodes_key || !c->leader_key || !c->current_key)
		return -errno;
	r = watch_nodes(c);
	if (r < 0)
		return r;
	*out = TAKE_PTR(c);
	return 0;
}

void cluster_joined(cluster *c) {
	c->join_pending = true;
	cluster_run(c);
}

void cluster_config_changed(cluster *c) {
	if (leading(c))
		schedule_gc(c);
}

void cluster_set_campaign(cluster *c, leader *l) {
	c->campaign = l;
	cluster_leader_changed(c);
}

static void on_scaler_cycle(scaler *s, int error, const char *summary, void *userdata) {
	cluster *c = userdata;

	if (error < 0 && error != -EPERM) {
		if (!streq(c->last_scale_error, summary ?: ""))
			log_warning_errno(error, "autoscaler: %s", summary ?: "failed");
		snprintf(c->last_scale_error, sizeof c->last_scale_error, "%s", summary ?: "");
		return;
	}
	c->last_scale_error[0] = '\0';
	if (summary && !strstr(summary, "no changes"))
		log_info("autoscaler: %s", summary);
	else
		log_debug("autoscaler: %s", summary ?: "done");
}

/* One line per action the scaler carried out (the plan above says what it
 * meant to do; these say what was done). */
static void on_scaler_action(scaler *s, const char *line, void *userdata) {
	log_info("autoscaler: %s", line);
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
					     .action = on_scaler_action };
	int r;

	if (!cf->ec2.region || c->scaler)
		return;
	if (!c->ec2) {
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
			return;
		}
	}
	scaler_options o = {
		.prefix = cf->prefix,
		.cluster = cf->cluster,
		.token = c->token,
		.interval_usec = cf->scale_interval_usec,
		.launch_grace_sec = (int64_t) (cf->launch_grace_usec / USEC_PER_SEC),
	};
	r = scaler_new(&c->scaler, c->etcd, c->ec2, &o, &cb, c);
	if (r < 0)
		log_error_errno(r, "autoscaler: cannot start: %m");
	else
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
	rollout_loop_options o = { .prefix = c->conf->prefix, .token = c->token };
	int r;

	if (c->rollout)
		return;
	r = rollout_loop_new(&c->rollout, c->etcd, &o, &cb, c);
	if (r < 0)
		log_error_errno(r, "rollout: cannot start: %m");
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
		c->gc_timer = sd_event_source_disable_unref(c->gc_timer);
		c->gc = agree_gc_op_free(c->gc);
		c->current_watch = etcd_watch_free(c->current_watch);
		if (c->proposal && !c->proposing_join)
			c->proposal = agree_proposal_free(c->proposal);
		/* Every EC2 call, timer and watch of the old term goes now. */
		if (c->scaler)
			log_info("autoscaler: stopped (no longer the leader)");
		c->scaler = scaler_free(c->scaler);
		c->rollout = rollout_loop_free(c->rollout);
	}
	if (token > 0) {
		c->token = token;
		c->fence = leader_fence(c->leader_key, token);
		scaler_start(c);
		rollout_start(c);
		/* From now on every change of current is repaired; what came
		 * before is covered by the first upkeep. */
		if (watch_current(c) < 0)
			log_warning("cannot watch %s: lists are repaired only when nodes come or go", c->current_key);
		/* A new leader may have missed changes: re-derive and collect. */
		schedule_upkeep(c);
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
	if (!restart)
		return;
	/* EC2 settings changed: the scaler (and client) start over with them;
	 * no region any more: it stops. */
	if (c->scaler)
		log_info("autoscaler: stopped (configuration changed)");
	c->scaler = scaler_free(c->scaler);
	c->ec2 = ec2_client_free(c->ec2);
	if (leading(c))
		scaler_start(c);
}

const scaler *cluster_scaler(const cluster *c) {
	return c && leading(c) ? c->scaler : NULL;
}

const rollout_loop *cluster_rollout(const cluster *c) {
	return c && leading(c) ? c->rollout : NULL;
}

cluster *cluster_free(cluster *c) {
	if (!c)
		return NULL;
	if (c->scaler)
		log_info("autoscaler: stopped (corrald stopping)");
	c->scaler = scaler_free(c->scaler);
	c->rollout = rollout_loop_free(c->rollout);
	c->ec2 = ec2_client_free(c->ec2);
	c->fence_defer = sd_event_source_disable_unref(c->fence_defer);
	c->nodes_watch = etcd_watch_free(c->nodes_watch);
	c->current_watch = etcd_watch_free(c->current_watch);
	c->proposal = agree_proposal_free(c->proposal);
	c->gc = agree_gc_op_free(c->gc);
	c->upkeep_timer = sd_event_source_disable_unref(c->upkeep_timer);
	c->gc_timer = sd_event_source_disable_unref(c->gc_timer);
	sd_event_unref(c->event);
	free(c->nodes_key);
	free(c->current_key);
	free(c->leader_key);
	conf_unref(c->conf);
	free(c);
	return NULL;
}
