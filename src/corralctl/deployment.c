/* deployment.c — `corralctl deployment add|touch|reclaim|remove`: the
 * operator's and the application's edits of deployments/<id> (issue 18,
 * docs/deployments.md). The leader writes the same records (orders,
 * states, notices), so every edit here is a compare-and-set on the
 * record's mod_revision through the codec (deployment.h): read, change the
 * one field the verb is about, put if nobody wrote meanwhile, else start
 * over from what they wrote. Fields this codec does not know ride along in
 * the record's extra. list and show are in deployment-view.c. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "deployment.h"
#include "esc.h"
#include "rfc3339.h"

/* A write lost to a concurrent one is tried again from what that one
 * wrote; each loss means the record moved, so this bounds a storm only. */
#define DEP_TRIES 25

/* A touch --at this far ahead of our clock is a mistake, not skew. */
#define DEP_FUTURE_SLACK 300

/* An edit: changes d (exists false: d is empty, only id set) and says what
 * it did in msg. 0: write d; DEP_NOOP: print msg, write nothing, exit 0;
 * else the exit code (the edit printed why). */
enum { DEP_NOOP = -1 };
typedef int (*dep_edit_fn)(ctl_t *c, deployment *d, bool exists, void *userdata, char *msg, size_t msg_size);

typedef struct dep_args {
	int64_t memory;         /* add */
	const char *owner;      /* add */
	time_t license;         /* add, reclaim: 0 not given */
	time_t at;              /* touch: the activity's time */
	bool no_backup;         /* remove */
	time_t now;
} dep_args;

static char *dep_key(ctl_t *c, const char *id) {
	return keys_entry(c->prefix, KEYS_DEPLOYMENTS, id);
}

static int bad_id(const char *id) {
	return ctl_usage_error("bad deployment id '%s': one key segment (not empty, no '/', not . or ..)", id);
}

static int parse_time_opt(const char *option, const char *arg, time_t *out) {
	if (rfc3339_parse(arg, out) < 0 || *out <= 0)
		return ctl_usage_error("bad %s '%s': an RFC 3339 time, such as 2026-12-24T00:00:00Z", option, arg);
	return 0;
}

/* The operands and options every verb shares, checked before etcd is
 * asked (each verb takes only its own: check_verb saw to that). Exit code. */
static int parse_args(const ctl_opts *o, dep_args *a) {
	int r;

	*a = (dep_args){ .owner = o->owner, .no_backup = o->no_backup, .now = time(NULL) };
	a->at = a->now;
	if (!ctl_id_valid(o->pos[0]))
		return bad_id(o->pos[0]);
	if ((o->given & CTL_OPT_SIZE) && deployment_parse_size(o->memory_text, &a->memory) < 0)
		return ctl_usage_error("bad --memory '%s': a size such as 2G, 512M, 1536K (powers of 1024)",
				       o->memory_text);
	if (o->owner && !*o->owner)
		return ctl_usage_error("bad --owner '': empty");
	if (o->license_expires && (r = parse_time_opt("--license-expires", o->license_expires, &a->license)) != 0)
		return r;
	if (o->schedule.at && (r = parse_time_opt("--at", o->schedule.at, &a->at)) != 0)
		return r;
	return 0;
}

/* The stored record of id into d (*exists false when absent), its mod
 * revision into *mod. Exit code (a malformed record: 1, said). */
static int dep_read(ctl_t *c, const char *key, const char *id, deployment *d, bool *exists, int64_t *mod) {
	_cleanup_free_ char *text = NULL;
	deployment_error err = {};
	json_error_t jerr;

	if (ctl_get(c, key, &text, mod, NULL) < 0)
		return 1;
	*exists = text != NULL;
	if (!text)
		return (d->id = strdup(id)) ? 0 : 1;
	json_auto_t *j = json_loads(text, 0, &jerr);
	if (!j) {
		fprintf(stderr, "corralctl: %s holds no JSON (%s): not changed\n", key, ESC_JERR(&jerr));
		return 1;
	}
	if (deployment_from_json(j, id, d, &err) < 0) {
		fprintf(stderr, "corralctl: %s is not a deployment record (%s): not changed\n", key, err.message);
		return 1;
	}
	return 0;
}

/* Reads, edits, writes with compare-and-set on the mod revision read
 * (create-only when absent); a lost race starts over. Reports the write
 * (-n: prints it, writes nothing). Exit code. */
static int dep_edit(ctl_t *c, const char *id, dep_edit_fn fn, void *userdata) {
	_cleanup_free_ char *key = dep_key(c, id);

	if (!key)
		return 1;
	for (int attempt = 0;; attempt++) {
		_cleanup_(deployment_done) deployment d = {};
		_cleanup_free_ char *text = NULL;
		char msg[512] = "";
		int64_t mod = 0;
		bool exists;
		int r;

		if ((r = dep_read(c, key, id, &d, &exists, &mod)) != 0)
			return r;
		r = fn(c, &d, exists, userdata, msg, sizeof msg);
		if (r == DEP_NOOP) {
			if (c->format == FORMAT_JSON)
				return ctl_report(c, "none", key, NULL, NULL);
			printf("%s\n", msg);
			return ctl_flush();
		}
		if (r != 0)
			return r;
		json_auto_t *j = deployment_to_json(&d);
		if (!j || !(text = json_dumps(j, JSON_INDENT(2))))
			return 1;
		r = ctl_put(c, key, text, exists ? mod : 0);
		if (r == -ESTALE && attempt + 1 < DEP_TRIES) {
			if (c->verbosity >= CTL_VERBOSE)
				fprintf(stderr, "corralctl: %s changed meanwhile; again\n", key);
			continue;
		}
		if (r == -ESTALE) {
			fprintf(stderr, "corralctl: %s kept changing (%d tries): not written\n", key, DEP_TRIES);
			return 1;
		}
		if (r < 0)
			return 1;
		return ctl_report(c, "put", key, text, msg);
	}
}

/* ---- add ------------------------------------------------------------------------------ */

static int edit_add(ctl_t *c, deployment *d, bool exists, void *userdata, char *msg, size_t msg_size) {
	const dep_args *a = userdata;
	_cleanup_(deployment_done) deployment n = {};
	char buf[RFC3339_MAX];

	(void) c;
	if (exists && d->state != DEPLOYMENT_REMOVED) {
		fprintf(stderr, "corralctl: deployment %s exists (%s%s%s): remove it first, or touch it\n", d->id,
			deployment_state_to_string(d->state), d->host ? " on " : "", d->host ?: "");
		return 1;
	}
	/* a new life; a removed one's backup stays (the deploy hook may restore
	 * it) and its order numbers go on increasing */
	n = (deployment){ .memory = a->memory, .state = DEPLOYMENT_PENDING, .created = a->now, .state_since = a->now,
			  .license_expires = a->license, .last_active = a->now, .backup_at = d->backup_at,
			  .last_seq = d->last_seq };
	n.id = TAKE_PTR(d->id);
	n.backup = TAKE_PTR(d->backup);
	if (a->owner && !(n.owner = strdup(a->owner)))
		return 1;
	deployment_done(d);
	*d = n;
	n = (deployment){};
	snprintf(msg, msg_size, "deployment %s added: pending%s%s", d->id, d->backup ? ", backup kept: " : "",
		 d->backup ?: "");
	if (exists)
		snprintf(msg + strlen(msg), msg_size - strlen(msg), " (it was removed; added again at %s)",
			 rfc3339_format(a->now, buf));
	return 0;
}

/* add --wait: what the record says once it settled. */
typedef struct dep_waiting {
	ctl_t *c;
	const char *id;
	deployment_state state;
	bool failing;
} dep_waiting;

/* ctl_wait_for's predicate: active (or anything past pending), or a hook
 * failing. Reads the record on each change under the prefix. */
static bool settled(ctl_view *v, const void *userdata) {
	dep_waiting *w = (dep_waiting *) userdata;      /* ours: written back */
	_cleanup_free_ char *key = dep_key(w->c, w->id);
	_cleanup_(deployment_done) deployment d = {};
	bool exists;
	int64_t mod;

	(void) v;
	if (!key || dep_read(w->c, key, w->id, &d, &exists, &mod) != 0 || !exists)
		return false;
	w->state = d.state;
	w->failing = d.error != NULL;
	return d.state != DEPLOYMENT_PENDING || d.error;
}

static int deployment_add(ctl_t *c, ctl_opts *o) {
	const char *id = o->pos[0];
	dep_args a;
	char sz[24];
	int r;

	if ((r = parse_args(o, &a)) != 0)
		return r;
	if (!(o->given & CTL_OPT_SIZE))
		return ctl_usage_error("deployment add: --memory SIZE is required (2G, 512M)");
	if ((r = dep_edit(c, id, edit_add, &a)) != 0)
		return r;
	if (c->format != FORMAT_JSON)
		ctl_deployment_where(c, id, a.memory);
	if (o->wait < 0 || c->dry_run)
		return ctl_flush();

	dep_waiting w = { c, id, DEPLOYMENT_PENDING, false };
	r = ctl_wait_for(c, o->wait, settled, &w);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "corralctl: deployment %s still pending after %lds\n", id, o->wait);
		return 1;
	}
	if (r < 0)
		return 1;
	if (w.failing) {
		fprintf(stderr, "corralctl: deployment %s is failing (%s): see corralctl deployment show %s\n", id,
			deployment_state_to_string(w.state), id);
		return 1;
	}
	if (c->format != FORMAT_JSON)
		printf("deployment %s: %s (%s)\n", id, deployment_state_to_string(w.state),
		       deployment_format_size(a.memory, sz, sizeof sz));
	return ctl_flush();
}

/* ---- touch, reclaim ------------------------------------------------------------------- */

static int refuse_removed(const deployment *d) {
	char buf[RFC3339_MAX];

	fprintf(stderr, "corralctl: deployment %s was removed at %s%s%s: add it again to set it up\n", d->id,
		rfc3339_format(d->state_since, buf), d->backup ? "; its backup is at " : "", d->backup ?: "");
	return 1;
}

static int refuse_absent(const char *id) {
	fprintf(stderr, "corralctl: no deployment %s\n", id);
	return 1;
}

static int edit_touch(ctl_t *c, deployment *d, bool exists, void *userdata, char *msg, size_t msg_size) {
	const dep_args *a = userdata;
	char buf[RFC3339_MAX];

	(void) c;
	if (!exists)
		return refuse_absent(d->id);
	if (d->state == DEPLOYMENT_REMOVED)
		return refuse_removed(d);
	if (d->last_active >= a->at) {
		/* activity never moves back: an older report changes nothing */
		snprintf(msg, msg_size, "deployment %s: last active %s already", d->id,
			 rfc3339_format(d->last_active, buf));
		return DEP_NOOP;
	}
	d->last_active = a->at;
	snprintf(msg, msg_size, "deployment %s: last active %s", d->id, rfc3339_format(a->at, buf));
	return 0;
}

static int deployment_touch(ctl_t *c, ctl_opts *o) {
	dep_args a;
	int r;

	if ((r = parse_args(o, &a)) != 0)
		return r;
	if (a.at > a.now + DEP_FUTURE_SLACK)
		return ctl_usage_error("bad --at '%s': in the future", o->schedule.at);
	return dep_edit(c, o->pos[0], edit_touch, &a);
}

static int edit_reclaim(ctl_t *c, deployment *d, bool exists, void *userdata, char *msg, size_t msg_size) {
	const dep_args *a = userdata;
	char buf[RFC3339_MAX], lic[RFC3339_MAX];
	bool expired;

	(void) c;
	if (!exists)
		return refuse_absent(d->id);
	if (d->state == DEPLOYMENT_REMOVED)
		return refuse_removed(d);
	if (d->removal == DEPLOYMENT_REMOVAL_OPERATOR) {
		fprintf(stderr, "corralctl: deployment %s is being removed (by the operator, since %s): nothing to "
			"reclaim\n", d->id, rfc3339_format(d->removal_since, buf));
		return 1;
	}
	expired = d->state == DEPLOYMENT_EXPIRED || (d->license_expires > 0 && d->license_expires <= a->now);
	if (expired && !a->license) {
		fprintf(stderr, "corralctl: deployment %s: license expired %s: reclaim it with --license-expires "
			"TIME (a later one)\n", d->id, rfc3339_format(d->license_expires, buf));
		return 1;
	}
	if (a->license)
		d->license_expires = a->license;
	if (d->last_active < a->now)
		d->last_active = a->now;
	rfc3339_format(d->license_expires, lic);
	if (d->state == DEPLOYMENT_MAINTENANCE)
		snprintf(msg, msg_size, "deployment %s reclaimed: maintenance_off will be ordered on %s", d->id,
			 d->host ?: "its host");
	else if (d->state == DEPLOYMENT_EXPIRED)
		snprintf(msg, msg_size, "deployment %s reclaimed: license until %s; the leader stops its removal "
			 "unless the remove hook already ran", d->id, lic);
	else if (d->removal != DEPLOYMENT_REMOVAL_NONE)
		snprintf(msg, msg_size, "deployment %s reclaimed: its removal (%s) stops unless the remove hook "
			 "already ran", d->id, deployment_removal_to_string(d->removal));
	else
		snprintf(msg, msg_size, "deployment %s reclaimed: %s, last active %s%s%s", d->id,
			 deployment_state_to_string(d->state), rfc3339_format(d->last_active, buf),
			 a->license ? ", license until " : "", a->license ? lic : "");
	return 0;
}

static int deployment_reclaim(ctl_t *c, ctl_opts *o) {
	dep_args a;
	int r;

	if ((r = parse_args(o, &a)) != 0)
		return r;
	if (o->license_expires && a.license <= a.now)
		return ctl_usage_error("bad --license-expires '%s': not in the future", o->license_expires);
	return dep_edit(c, o->pos[0], edit_reclaim, &a);
}

/* ---- remove ----------------------------------------------------------------------------- */

static int edit_remove(ctl_t *c, deployment *d, bool exists, void *userdata, char *msg, size_t msg_size) {
	const dep_args *a = userdata;
	char buf[RFC3339_MAX];

	(void) c;
	if (!exists)
		return refuse_absent(d->id);
	if (d->state == DEPLOYMENT_REMOVED) {
		snprintf(msg, msg_size, "deployment %s already removed%s%s", d->id,
			 d->backup ? "; backup at " : "", d->backup ?: "");
		return DEP_NOOP;
	}
	if (d->removal != DEPLOYMENT_REMOVAL_NONE) {
		if (!a->no_backup || d->removal_skip_backup) {
			snprintf(msg, msg_size, "deployment %s: removal (%s) under way since %s", d->id,
				 deployment_removal_to_string(d->removal), rfc3339_format(d->removal_since, buf));
			return DEP_NOOP;
		}
		d->removal_skip_backup = true;
		snprintf(msg, msg_size, "deployment %s: removal (%s) goes on without a backup", d->id,
			 deployment_removal_to_string(d->removal));
		return 0;
	}
	d->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	d->removal_since = a->now;
	d->removal_skip_backup = a->no_backup;
	if (!d->host)
		snprintf(msg, msg_size, "deployment %s: removal ordered; it is on no host: the leader marks it removed",
			 d->id);
	else
		snprintf(msg, msg_size, "deployment %s: removal ordered: %s on %s", d->id,
			 a->no_backup ? "remove (no backup)" : "backup, then remove", d->host);
	return 0;
}

static int deployment_remove(ctl_t *c, ctl_opts *o) {
	dep_args a;
	int r;

	if ((r = parse_args(o, &a)) != 0)
		return r;
	return dep_edit(c, o->pos[0], edit_remove, &a);
}

const ctl_verb ctl_deployment_verbs[] = {
	{ .group = "deployment", .name = "add", .args = "ID --memory SIZE [--owner CONTACT] [--license-expires TIME]",
	  .help = "a new deployment, pending: the leader places it on a host with room (reserved-covered\n"
		  "first, then the fullest) and orders its deploy hook; says where it would go.\n"
		  "A removed one is added again (its backup kept). --wait S: until active or failing",
	  .options = CTL_OPT_SIZE | CTL_OPT_OWNER | CTL_OPT_LICENSE_EXPIRES | CTL_OPT_WAIT, .flags = CTL_VERB_ETCD,
	  .min_args = 1, .max_args = 1, .run = deployment_add },
	{ .group = "deployment", .name = "list", .help = "every deployment: state, host, memory, license, activity",
	  .flags = CTL_VERB_ETCD, .run = ctl_deployment_list },
	{ .group = "deployment", .name = "show", .args = "ID",
	  .help = "a deployment's record, its host's report, and the hosts' room", .flags = CTL_VERB_ETCD,
	  .min_args = 1, .max_args = 1, .run = ctl_deployment_show },
	{ .group = "deployment", .name = "touch", .args = "ID [--at TIME]",
	  .help = "record activity now (or at TIME): the inactivity clock starts again", .options = CTL_OPT_AT,
	  .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1, .run = deployment_touch },
	{ .group = "deployment", .name = "reclaim", .args = "ID [--license-expires TIME]",
	  .help = "take it back: activity now, out of maintenance; an expired one needs a later\n"
		  "--license-expires",
	  .options = CTL_OPT_LICENSE_EXPIRES, .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1,
	  .run = deployment_reclaim },
	{ .group = "deployment", .name = "remove", .args = "ID [--no-backup]",
	  .help = "remove it: backup, then the remove hook (--no-backup: skip the backup, on purpose)",
	  .options = CTL_OPT_NO_BACKUP, .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1,
	  .run = deployment_remove },
	{},
};
