/* corrald — the node daemon: one per host.
 *
 * It registers the host under <prefix>/nodes/<node-id> and keeps it there,
 * renders the cluster config named by <prefix>/current into this node's
 * files and restarts their units (reconcile.h), and takes its part in
 * keeping the config right (cluster.h). Once registered it campaigns for
 * leadership (leader.h); only the leader does the cluster's upkeep. On
 * SIGTERM it resigns first (the next node takes over at once), then
 * deregisters. With metrics_listen set it serves Prometheus metrics (metrics.c)
 * (docs/metrics.md): this node's on every node, the scaler's last decision
 * on the leader. Everything runs on one sd-event loop. Exit codes: 0 clean
 * stop, 1 failure, 2 bad usage or configuration. */
#include <getopt.h>
#include <signal.h>
#include <strings.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "curlev.h"
#include "daemon.h"
#include "buildinfo.h"
#include "keys.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/corral/corrald.yaml"
#define STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* How long a node on EC2 keeps asking IMDS who it is before giving up
 * (exit 1; the unit restarts it). */
#define IDENTITY_TIMEOUT_USEC (60 * USEC_PER_SEC)

static void stop_cluster(daemon_t *d) {
	daemon_upgrade_stop(d);
	daemon_hooks_stop(d);
	daemon_pin_stop(d);
	d->cluster = cluster_free(d->cluster);
	d->rec = reconcile_free(d->rec);
	d->bus = units_bus_free(d->bus);
}

static void daemon_done(daemon_t *d) {
	d->identity_fetch = imds_identity_fetch_free(d->identity_fetch);
	imds_identity_done(&d->identity);
	d->metrics = metrics_server_free(d->metrics);
	free(d->applied_config);
	stop_cluster(d);
	d->agent = agent_free(d->agent);
	d->campaign = leader_free(d->campaign);
	free(d->last_target);
	free(d->image);
	d->restart = sd_event_source_disable_unref(d->restart);
	d->reg = node_reg_free(d->reg);
	d->etcd = etcd_client_free(d->etcd);
	d->conf = conf_unref(d->conf);
	d->reload_pending = conf_unref(d->reload_pending);
	d->event = sd_event_unref(d->event);
}

/* READY=1 once the first apply is over and the registration settled
 * (registered, or etcd away and retrying): units ordered after corrald
 * start on the current config, and boot is not held up by a dead etcd. */
static void notify_ready(daemon_t *d, const char *status) {
	bool settled = d->reg && (node_reg_state(d->reg) == NODE_REGISTERED || node_reg_state(d->reg) == NODE_RETRYING);

	if (!d->applied_once || !settled)
		return;
	if (!d->ready_sent) {
		(void) sd_notifyf(false, "READY=1\nSTATUS=%s", status);
		d->ready_sent = true;
	} else
		(void) sd_notifyf(false, "STATUS=%s", status);
}

static int start_registration(daemon_t *d);
static int start_cluster(daemon_t *d);

static int on_restart_registration(sd_event_source *s, void *userdata) {
	daemon_t *d = userdata;

	d->restart = sd_event_source_disable_unref(d->restart);
	stop_cluster(d);
	d->agent = agent_free(d->agent);
	d->campaign = leader_free(d->campaign);
	d->reg = node_reg_free(d->reg);
	d->etcd = etcd_client_free(d->etcd);
	conf_unref(d->conf);
	d->conf = TAKE_PTR(d->reload_pending);
	log_set_max_level(d->conf->log_level);
	if (start_registration(d) < 0 || start_cluster(d) < 0)
		return sd_event_exit(d->event, 1);
	return 0;
}

static void on_elected(leader *l, int64_t token, void *userdata) {
	daemon_t *d = userdata;

	log_info("became leader (token %lld)", (long long) token);
	d->elections++;
	if (d->cluster)
		cluster_leader_changed(d->cluster);
}

static void on_deposed(leader *l, leader_reason why, void *userdata) {
	daemon_t *d = userdata;

	/* cluster first: the leader's work stops before anyone reads the log */
	if (d->cluster)
		cluster_leader_changed(d->cluster);
	if (why == LEADER_RESIGNED)
		log_info("lost leadership: %s", leader_reason_to_string(why));
	else
		log_warning("lost leadership: %s", leader_reason_to_string(why));
}

static void on_campaign_trouble(leader *l, const etcd_error *error, void *userdata) {
	char buf[512];

	if (error)
		/* Once per outage; the campaign keeps at it on its own. */
		log_warning("leader election: etcd: %s (campaign goes on)", etcd_error_format(error, buf, sizeof buf));
	else
		log_info("leader election: etcd reachable again");
}

static void start_campaign(daemon_t *d) {
	_cleanup_free_ char *key = NULL;
	int r;

	if (d->campaign || d->stopping || d->once)
		return;
	key = keys_one_of(d->conf->prefix, KEYS_LEADER);
	if (!key) {
		log_oom();
		return;
	}
	/* A lease of its own with the registration's TTL: resigning (SIGTERM)
	 * then deletes only the leader key, and the node's key keeps its
	 * own lifetime. */
	leader_options o = {
		.key = key,
		.node_id = d->conf->node_id,
		.ttl_sec = (int64_t) ((d->conf->lease_ttl_usec + USEC_PER_SEC - 1) / USEC_PER_SEC),
	};
	static const leader_callbacks cb = {
		.elected = on_elected,
		.deposed = on_deposed,
		.trouble = on_campaign_trouble,
	};
	r = leader_new(&d->campaign, d->etcd, &o, &cb, d);
	if (r < 0) {
		log_error_errno(r, "cannot campaign for leadership: %m");
		return;
	}
	log_debug("campaigning for %s", key);
	if (d->cluster)
		cluster_set_campaign(d->cluster, d->campaign);
}

static void on_agent_report(agent *a, agent_report_kind kind, const char *message, void *userdata) {
	daemon_t *d = userdata;

	switch (kind) {
	case AGENT_LOAD_WRITTEN:
		d->agent_load_writes++;
		if (d->last_agent_error[0])
			log_info("node agent: load reported again");
		d->last_agent_error[0] = '\0';
		log_debug("node agent: %s", message);
		break;
	case AGENT_LOAD_FAILED:
	case AGENT_WRITE_FAILED:
	case AGENT_WATCH_FAILED:
	case AGENT_IMDS_FAILED:
	case AGENT_WIND_DOWN_FAILED:
		d->agent_failures++;
		/* A broken command fails every interval: say it once per change. */
		if (!streq(d->last_agent_error, message))
			log_warning("node agent: %s", message);
		snprintf(d->last_agent_error, sizeof d->last_agent_error, "%s", message);
		break;
	case AGENT_INTERRUPTION:
		d->agent_interruptions++;
		log_warning("node agent: %s", message);
		break;
	default:
		log_info("node agent: %s", message);
		break;
	}
}

static bool conf_wants_agent(const conf *cf) {
	return cf->load_command || cf->wind_down_command || cf->interruption_watch;
}

/* After the first registration: the load record rides on its lease. */
static void start_agent(daemon_t *d) {
	const conf *cf = d->conf;
	int r;

	if (d->agent || d->stopping || d->once || !conf_wants_agent(cf) || !d->reg ||
	    node_reg_state(d->reg) != NODE_REGISTERED)
		return;
	agent_options o = {
		.prefix = cf->prefix,
		.node_id = cf->node_id,
		.load_command = cf->load_command,
		.load_interval_usec = cf->load_interval_usec,
		.command_timeout_usec = cf->command_timeout_usec,
		.wind_down_command = cf->wind_down_command,
		.instance_id = cf->ec2.instance_id,
		.interruption_watch = cf->interruption_watch,
		.imds_endpoint = cf->ec2.imds_endpoint,
	};
	r = agent_new(&d->agent, d->event, d->etcd, &o, node_reg_lease(d->reg), on_agent_report, d);
	if (r < 0)
		log_error_errno(r, "cannot start the node agent: %m");
}

/* The node's lease is the one owner of everything that must vanish with
 * the node: hand each new one to whatever rides on it, which puts its keys
 * back on it (status, load). The topology entry needs nothing: the leader
 * watches nodes/ and sees the record come back. The campaign keeps a lease of its own (resigning must
 * not deregister) and heals it itself: its watch on the leader key sees
 * the key go with a lost lease and campaigns on a new one. */
static void attach_lease(daemon_t *d, int64_t lease) {
	d->lease = lease;
	if (d->rec)
		reconcile_set_lease(d->rec, lease);
	if (d->agent)
		agent_set_lease(d->agent, lease);
	else
		start_agent(d);
	if (d->cluster)
		cluster_joined(d->cluster);
	daemon_upgrade_start(d);
	daemon_hooks_start(d);
	start_campaign(d);
}

static void on_node_state(node_reg *n, node_state state, const etcd_error *error, void *userdata) {
	daemon_t *d = userdata;
	char buf[512] = "";

	if (error)
		etcd_error_format(error, buf, sizeof buf);

	switch (state) {
	case NODE_REGISTERED:
		if (error)
			/* One line for the whole repair (docs/operating.md). */
			log_warning("lease %llx lost (%s): registered as %s/nodes/%s again on lease %llx; "
				    "status and load re-attached",
				    (unsigned long long) d->lease, buf, d->conf->prefix, d->conf->node_id,
				    (unsigned long long) node_reg_lease(n));
		else
			log_info("registered as %s/nodes/%s (lease %llx)", d->conf->prefix, d->conf->node_id,
				 (unsigned long long) node_reg_lease(n));
		d->last_error[0] = '\0';
		notify_ready(d, d->apply_status);
		/* The same lease after an outage it lived through: everything
		 * on it stayed (no re-join, no re-put by 1,000 nodes at once). */
		if (node_reg_lease(n) != d->lease)
			attach_lease(d, node_reg_lease(n));
		break;
	case NODE_RETRYING:
		/* Log a change of trouble, not every attempt. */
		if (d->last_state != NODE_RETRYING || strncmp(d->last_error, buf, sizeof d->last_error) != 0)
			log_warning("etcd: %s; retrying", buf);
		snprintf(d->last_error, sizeof d->last_error, "%s", buf);
		/* Do not hold up boot while etcd is away: the node keeps trying. */
		notify_ready(d, "etcd unreachable, retrying");
		break;
	case NODE_STOPPED:
		if (error)
			log_warning("could not revoke lease (the key expires with it): %s", buf);
		else
			log_info("deregistered");
		if (d->reload_pending) {
			/* A reload changed where or what we register: start over,
			 * once this callback has returned (we are inside the old
			 * client, which goes). */
			if (sd_event_add_defer(d->event, &d->restart, on_restart_registration, d) < 0)
				(void) sd_event_exit(d->event, 1);
		} else if (d->stopping)
			(void) sd_event_exit(d->event, 0);
		break;
	case NODE_REGISTERING:
		break;
	}
	d->last_state = state;
}

static int ensure_client(daemon_t *d) {
	const conf_etcd *ce = &d->conf->etcd;
	etcd_options o = {
		.endpoints = ce->endpoints,
		.ca_file = ce->ca_file,
		.cert_file = ce->cert_file,
		.key_file = ce->key_file,
		.username = ce->username,
		.password = ce->password,
		.request_timeout_usec = ce->request_timeout_usec,
		.attempt_timeout_usec = ce->attempt_timeout_usec,
		.connect_timeout_usec = ce->connect_timeout_usec,
		.watch_progress_usec = ce->watch_progress_usec,
	};
	int r;

	if (d->etcd)
		return 0;
	r = etcd_client_new(&d->etcd, d->event, &o);
	if (r < 0)
		return log_error_errno(r, "cannot create etcd client: %m");
	return 0;
}

static int start_registration(daemon_t *d) {
	_cleanup_free_ char *key = NULL;
	int r;

	r = ensure_client(d);
	if (r < 0)
		return r;
	/* The node id was checked when the conf was loaded: only memory can
	 * fail here. */
	key = keys_entry(d->conf->prefix, KEYS_NODES, d->conf->node_id);
	if (!key)
		return log_oom();
	node_info info = daemon_node_info(d);
	int64_t ttl = (int64_t) ((d->conf->lease_ttl_usec + USEC_PER_SEC - 1) / USEC_PER_SEC);
	d->last_state = NODE_REGISTERING;
	r = node_reg_new(&d->reg, d->etcd, key, &info, ttl, on_node_state, d);
	if (r < 0)
		return log_error_errno(r, "cannot start registration: %m");
	log_info("registering %s with etcd at %s", key, etcd_client_endpoint(d->etcd));
	return 0;
}

static void on_report(reconcile *rec, const reconcile_report *rep, void *userdata) {
	daemon_t *d = userdata;

	if (rep->error) {
		/* Once per error, not per retry. */
		if (!streq(d->last_apply_error, rep->error)) {
			if (rep->retry_usec)
				log_error("config %s: %s; retrying with back-off (next in %.1f s, or on SIGHUP)",
					  rep->target ? rep->target : "(none)", rep->error,
					  (double) rep->retry_usec / USEC_PER_SEC);
			else
				log_error("config %s: %s", rep->target ? rep->target : "(none)", rep->error);
		}
		snprintf(d->last_apply_error, sizeof d->last_apply_error, "%s", rep->error);
	} else {
		if (rep->changed)
			log_info("applied config %s", rep->target);
		else if (d->last_apply_error[0] || !streq_ptr(d->last_target, rep->target))
			log_info("config %s in place", rep->target ? rep->target : "(none yet)");
		d->last_apply_error[0] = '\0';
	}
	if (!streq_ptr(d->last_target, rep->target)) {
		free(d->last_target);
		d->last_target = rep->target ? strdup(rep->target) : NULL;
	}
	/* A pinned apply is a candidate's, not `current`: the leader's
	 * upkeep must never decide on it (it would write the candidate's
	 * values into current). */
	if (d->cluster && !rep->pinned)
		cluster_config_applied(d->cluster, rep->target, rep->revision, rep->files);
	daemon_pin_report(d, rep);

	if (d->once) {
		(void) sd_event_exit(d->event, rep->ok ? 0 : 1);
		return;
	}
	d->last_apply_sec = (uint64_t) time(NULL);
	d->last_apply_failed = !rep->ok;
	if (rep->ok) {
		d->applies_ok++;
		d->last_apply_ok_sec = d->last_apply_sec;
	} else
		d->applies_failed++;
	if (!streq_ptr(d->applied_config, rep->applied)) {
		free(d->applied_config);
		d->applied_config = rep->applied ? strdup(rep->applied) : NULL;
	}
	d->applied_once = true;
	snprintf(d->apply_status, sizeof d->apply_status, "%s", rep->ok ? "config in place" : "config failed; see the logs");
	notify_ready(d, d->apply_status);
}

static bool conf_names_units(const conf *cf) {
	for (size_t i = 0; i < cf->n_files; i++)
		if (strv_length(cf->files[i].restart) + strv_length(cf->files[i].reload) > 0)
			return true;
	return false;
}

static int start_cluster(daemon_t *d) {
	int r;

	r = ensure_client(d);
	if (r < 0)
		return r;
	if (conf_names_units(d->conf) || d->conf->upgrade.present || d->conf->deployments.present) {
		r = units_bus_open(&d->bus, d->event, d->conf->units_user_bus);
		if (r < 0)
			/* Files still render; their units' jobs will fail and say so. */
			log_warning_errno(r, "cannot connect to the %s bus: %m", d->conf->units_user_bus ? "user" : "system");
	}
	r = reconcile_new(&d->rec, d->event, d->etcd, d->bus, d->conf, d->once, on_report, d);
	if (r < 0)
		return log_error_errno(r, "cannot set up the reconciler: %m");
	if (!d->once) {
		r = cluster_new(&d->cluster, d->etcd, d->conf);
		if (r < 0)
			return log_error_errno(r, "cannot watch the cluster: %m");
		if (d->campaign)
			cluster_set_campaign(d->cluster, d->campaign);
		if (d->reg && node_reg_state(d->reg) == NODE_REGISTERED) {
			reconcile_set_lease(d->rec, node_reg_lease(d->reg));
			cluster_joined(d->cluster);
		}
	}
	r = reconcile_start(d->rec);
	if (r >= 0)
		daemon_pin_start(d);
	return r;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
	daemon_t *d = userdata;
	log_warning("etcd did not answer the lease revocation in time; exiting (the key expires with its lease)");
	return sd_event_exit(d->event, 0);
}

/* After resigning: deregister; NODE_STOPPED exits or re-registers. */
static void leave_registration(daemon_t *d) {
	if (d->reg && node_reg_stop(d->reg) >= 0)
		return;
	if (d->reload_pending) {
		/* Possibly inside an etcd callback: restart from the loop. */
		if (sd_event_add_defer(d->event, &d->restart, on_restart_registration, d) < 0)
			(void) sd_event_exit(d->event, 1);
	} else
		(void) sd_event_exit(d->event, 0);
}

static void on_resigned(leader *l, const etcd_error *error, void *userdata) {
	char buf[512];

	if (error)
		log_warning("could not resign cleanly (the leader key expires with its lease): %s",
			    etcd_error_format(error, buf, sizeof buf));
	leave_registration(userdata);
}

/* Resign leadership (revoking its lease hands over at once), then
 * deregister. */
static void leave(daemon_t *d) {
	if (d->campaign && leader_resign(d->campaign, on_resigned, d) >= 0)
		return;
	leave_registration(d);
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	daemon_t *d = userdata;
	int r;

	if (d->stopping)
		return 0;
	d->stopping = true;
	log_info("stopping on %s", strsignal((int) si->ssi_signo));
	(void) sd_notify(false, "STOPPING=1\nSTATUS=deregistering");
	d->reload_pending = conf_unref(d->reload_pending);
	/* The leader's work stops here, before the key goes. */
	stop_cluster(d);
	d->agent = agent_free(d->agent);
	/* Bounded: a dead etcd must not keep us from exiting. */
	r = sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, STOP_TIMEOUT_USEC, 0, on_stop_timeout, d);
	if (r < 0)
		return sd_event_exit(d->event, 0);
	leave(d);
	return 0;
}

/* A conf that wants its identity from IMDS gets what was learned at
 * start (an instance does not change who it is). -ENOENT: nothing was. */
static int apply_identity(daemon_t *d, conf *cf) {
	const imds_identity *id = &d->identity;

	if (!cf->ec2.instance_auto)
		return 0;
	if (!id->instance_id)
		return -ENOENT;
	return conf_apply_identity(cf, id->instance_id, id->local_ipv4, id->pool);
}

static bool same_registration(const conf *a, const conf *b) {
	return streq(a->prefix, b->prefix) && streq(a->node_id, b->node_id) && a->lease_ttl_usec == b->lease_ttl_usec &&
	       conf_etcd_equal(&a->etcd, &b->etcd);
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	daemon_t *d = userdata;
	_cleanup_(conf_unrefp) conf *next = NULL;
	conf_error err = {};
	char buf[600];
	int r;

	if (d->stopping)
		return 0;
	(void) sd_notify(false, "RELOADING=1");
	r = conf_load_file(d->conf->path, &next, &err);
	if (r < 0) {
		log_error("reload failed, keeping the running configuration: %s",
			  conf_error_format(&err, buf, sizeof buf));
		/* SIGHUP also means "try again": an operator who repaired a
		 * disk or a unit gets an apply at once, whatever the file. */
		if (d->rec)
			reconcile_retry_now(d->rec);
		(void) sd_notify(false, "READY=1");
		return 0;
	}
	r = apply_identity(d, next);
	if (r < 0) {
		log_error("reload failed, keeping the running configuration: %s",
			  r == -ENOMEM ? "out of memory"
				       : "ec2.instance_id: auto takes effect when corrald starts; restart it");
		(void) sd_notify(false, "READY=1");
		return 0;
	}

	log_set_max_level(next->log_level);
	for (size_t i = 0; next->warnings && next->warnings[i]; i++)
		log_warning("%s", next->warnings[i]);
	daemon_update_metrics(d, next->metrics_listen);
	if (same_registration(d->conf, next) && d->conf->units_user_bus == next->units_user_bus) {
		/* The reconciler and the cluster hold their own references
		 * (an apply under way keeps the conf it started with). */
		conf_unref(d->conf);
		d->conf = TAKE_PTR(next);
		if (d->rec) {
			reconcile_set_conf(d->rec, d->conf);
			/* Now, not after the debounce: a failed write is not
			 * left to its back-off. */
			reconcile_retry_now(d->rec);
		}
		if (d->cluster)
			cluster_set_conf(d->cluster, d->conf);
		/* The agent copies its settings: start it over with the new ones. */
		d->agent = agent_free(d->agent);
		start_agent(d);
		/* So does the upgrade runner; a step under way is waited for by
		 * the new one. */
		daemon_upgrade_stop(d);
		daemon_upgrade_start(d);
		/* And the hook runner: a hook under way is waited for. */
		daemon_hooks_stop(d);
		daemon_hooks_start(d);
		node_info info = daemon_node_info(d);
		r = node_reg_update(d->reg, &info);
		if (r < 0)
			log_error_errno(r, "cannot update the node record: %m");
		log_info("configuration reloaded");
	} else {
		/* Leave under the old name (revoke the old lease), then register
		 * anew; on_node_state picks up reload_pending when stopped. */
		log_info("configuration reloaded; registration changes, re-registering");
		conf_unref(d->reload_pending);
		d->reload_pending = TAKE_PTR(next);
		/* Resign (we may move to another cluster), then deregister. */
		leave(d);
	}
	(void) sd_notify(false, "READY=1");
	return 0;
}

static int start(daemon_t *d) {
	if (!d->once && start_registration(d) < 0)
		return -1;
	return start_cluster(d);
}

static void on_identity(int error, const imds_identity *id, const char *message, void *userdata) {
	daemon_t *d = userdata;
	bool pool_given = d->conf->pool != NULL;
	int r;

	if (error < 0) {
		log_error("cannot learn who this instance is (ec2.instance_id: auto): %s", message);
		(void) sd_event_exit(d->event, 1);
		return;
	}
	if (imds_identity_copy(&d->identity, id) < 0 || apply_identity(d, d->conf) < 0) {
		log_oom();
		(void) sd_event_exit(d->event, 1);
		return;
	}
	/* id is the fetch's: done with it from here. */
	d->identity_fetch = imds_identity_fetch_free(d->identity_fetch);
	id = &d->identity;
	log_info("instance %s (%s in %s, %s): node %s, address %s, pool %s%s", id->instance_id,
		 id->instance_type ?: "?", id->availability_zone ?: "?", id->local_ipv4 ?: "?", d->conf->node_id,
		 d->conf->address, d->conf->pool ?: "(none)",
		 pool_given ? "" : d->conf->pool ? " (its corral:pool tag)" : "");
	if (!d->conf->pool)
		log_warning("no pool: none in the configuration and no corral:pool tag in the instance metadata "
			    "(enable InstanceMetadataTags in the launch template); the leader still pairs this node "
			    "with its instance");
	r = start(d);
	if (r < 0)
		(void) sd_event_exit(d->event, 1);
}

static void help(void) {
	printf("Usage: corrald [OPTIONS]\n"
	       "\n"
	       "The corral node daemon: registers this host in etcd and keeps it configured.\n"
	       "\n"
	       "  -c, --config FILE     node configuration (default " DEFAULT_CONFIG ")\n"
	       "      --check-config    load and validate the configuration, then exit\n"
	       "      --once            render the current config, restart what changed, exit\n"
	       "                        (0: all in place, 1: something failed)\n"
	       "  -h, --help            show this help\n"
	       "      --version         show the version\n"
	       "\n"
	       "Signals: SIGTERM/SIGINT resign leadership, deregister and stop; SIGHUP reloads the configuration\n"
	       "and applies the cluster config again at once (retrying a failed write).\n"
	       "Exit codes: 0 ok, 1 failure, 2 usage or configuration error.\n");
}

/* Whether any transfer may use TLS: an https endpoint of etcd, etcd
 * certificates, or EC2 (its API is https). IMDS is plain http. */
static bool uses_tls(const conf *c) {
	for (char **e = c->etcd.endpoints; e && *e; e++)
		if (strncasecmp(*e, "https:", 6) == 0)
			return true;
	return c->etcd.ca_file || c->etcd.cert_file || c->ec2.region || c->ec2.endpoint ||
	       (c->ec2.imds_endpoint && strncasecmp(c->ec2.imds_endpoint, "https:", 6) == 0);
}

int main(int argc, char *argv[]) {
	enum { ARG_VERSION = 0x100, ARG_CHECK, ARG_ONCE };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, ARG_CHECK },
		{ "once", no_argument, NULL, ARG_ONCE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	const char *config_path = DEFAULT_CONFIG;
	bool check_only = false;
	_cleanup_(daemon_done) daemon_t d = {};
	conf_error err = {};
	char buf[600];
	int c, r;

	log_set_ident("corrald");
	while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case ARG_CHECK:
			check_only = true;
			break;
		case ARG_ONCE:
			d.once = true;
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			return corral_version_print(stdout, "corrald") < 0 || fflush(stdout) != 0 ? 1 : 0;
		default:
			fprintf(stderr, "Try 'corrald --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corrald: unexpected argument '%s'\nTry 'corrald --help'.\n", argv[optind]);
		return 2;
	}

	r = conf_load_file(config_path, &d.conf, &err);
	if (r < 0) {
		log_error("%s", conf_error_format(&err, buf, sizeof buf));
		return r == -EINVAL ? 2 : 1;
	}
	log_set_max_level(d.conf->log_level);
	for (size_t i = 0; d.conf->warnings && d.conf->warnings[i]; i++)
		log_warning("%s", d.conf->warnings[i]);
	if (check_only) {
		printf("%s: ok\n", config_path);
		return 0;
	}
	d.started = (uint64_t) time(NULL);
	if (curlev_global_init(uses_tls(d.conf)) < 0)
		return log_error("cannot initialise libcurl"), 1;

	r = sd_event_default(&d.event);
	if (r < 0)
		return log_error_errno(r, "cannot create event loop: %m"), 1;
	/* libsystemd 252 wants the signals blocked first, which PROCMASK does. */
	if (sd_event_add_signal(d.event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_terminate, &d) < 0 ||
	    sd_event_add_signal(d.event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_terminate, &d) < 0 ||
	    sd_event_add_signal(d.event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_reload, &d) < 0)
		return log_error("cannot set up signal handling"), 1;
	(void) signal(SIGPIPE, SIG_IGN);
	/* Sends WATCHDOG=1 at half of WatchdogSec while the loop turns. */
	(void) sd_event_set_watchdog(d.event, true);

	daemon_update_metrics(&d, d.conf->metrics_listen);
	if (d.conf->ec2.instance_auto) {
		/* Registration and rendering wait for the node id, address and
		 * pool this brings. */
		r = imds_identity_fetch_start(&d.identity_fetch, d.event, d.conf->ec2.imds_endpoint,
					      IDENTITY_TIMEOUT_USEC, on_identity, &d);
		if (r < 0)
			return log_error_errno(r, "cannot ask the instance metadata service: %m"), 1;
		log_info("asking the instance metadata service who this instance is");
	} else if (start(&d) < 0)
		return 1;
	r = sd_event_loop(d.event);
	if (r < 0)
		return log_error_errno(r, "event loop failed: %m"), 1;
	return r == 0 ? 0 : 1;
}
