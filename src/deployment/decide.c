/* decide.c — the lifecycle decision (deployment.h): for each deployment, a
 * copy of its record goes through the rules below in order, and a record
 * that changed is an action (the new record, the notices it records, one
 * log line). Pure: no clock, no I/O; `now` is the input's.
 *
 *   1. an order the host reported on is applied (done or failed)
 *   2. placement of a pending deployment without host
 *   3. the license: warnings, expiry, renewal
 *   4. inactivity of an active deployment: warning, maintenance
 *   5. maintenance: reclaim, or removal after reclaim_within
 *   6. removal: backup, then remove
 * An order waits for the last one to end, for the retry time after a
 * failure, and for its host to be a live node; cluster maintenance makes no
 * change at all. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment-internal.h"
#include "macro.h"
#include "rfc3339.h"

#define MAX_NEW_NOTICES 4

typedef struct run {
	const deployment_input *in;
	deployment_host *hosts;         /* a copy: this decision's placements add to used */
	time_t now;
	time_t wake;
} run;

/* One deployment's decision under way. */
typedef struct one {
	deployment d;                   /* the new record */
	char *sent[MAX_NEW_NOTICES];    /* kinds recorded now */
	size_t n_sent;
	char line[256];
	size_t len;
} one;

_printf_(2, 3) static void say(one *o, const char *fmt, ...) {
	va_list ap;

	if (o->len >= sizeof o->line - 1)
		return;
	if (o->len > 0)
		o->len += (size_t) snprintf(o->line + o->len, sizeof o->line - o->len, "; ");
	va_start(ap, fmt);
	if (o->len < sizeof o->line)
		o->len += (size_t) vsnprintf(o->line + o->len, sizeof o->line - o->len, fmt, ap);
	va_end(ap);
}

static void wake_at(run *r, time_t t) {
	if (t > r->now && (r->wake == 0 || t < r->wake))
		r->wake = t;
}

static const deployment_host *live_host(const run *r, const char *node) {
	for (size_t i = 0; node && i < r->in->n_hosts; i++)
		if (strcmp(r->hosts[i].node_id, node) == 0)
			return &r->hosts[i];
	return NULL;
}

static void set_state(one *o, deployment_state s, time_t now) {
	if (o->d.state == s)
		return;
	say(o, "%s -> %s", deployment_state_to_string(o->d.state), deployment_state_to_string(s));
	o->d.state = s;
	o->d.state_since = now;
}

/* ---- notices -------------------------------------------------------------------- */

static int notice(one *o, const char *kind, time_t now) {
	deployment_notice *n;

	if (deployment_notice_sent(&o->d, kind) || o->n_sent == MAX_NEW_NOTICES)
		return 0;
	n = realloc(o->d.notices, (o->d.n_notices + 1) * sizeof *n);
	if (!n)
		return -ENOMEM;
	o->d.notices = n;
	n[o->d.n_notices] = (deployment_notice) { strdup(kind), now };
	o->sent[o->n_sent] = strdup(kind);
	if (!n[o->d.n_notices].kind || !o->sent[o->n_sent]) {
		free(n[o->d.n_notices].kind);
		free(o->sent[o->n_sent]);
		o->sent[o->n_sent] = NULL;
		return -ENOMEM;
	}
	o->d.n_notices++;
	o->n_sent++;
	say(o, "notice %s", kind);
	return 0;
}

/* Drops the notices keep() refuses (a new idle spell, a new license). */
static void drop_notices(one *o, bool (*drop)(const deployment_notice *n, const deployment *d)) {
	size_t k = 0;

	for (size_t i = 0; i < o->d.n_notices; i++) {
		if (drop(&o->d.notices[i], &o->d))
			free(o->d.notices[i].kind);
		else
			o->d.notices[k++] = o->d.notices[i];
	}
	o->d.n_notices = k;
}

static bool is_inactivity(const char *kind) {
	return strcmp(kind, "inactive_warning") == 0 || strcmp(kind, "maintenance") == 0;
}

static bool is_expiry(const char *kind) {
	return strncmp(kind, "expiry_", 7) == 0 || strcmp(kind, "expired") == 0;
}

/* activity after it: the notice belonged to an idle spell that ended */
static bool stale_inactivity(const deployment_notice *n, const deployment *d) {
	return is_inactivity(n->kind) && n->at <= d->last_active;
}

/* An expiry notice belongs to the license it warned about: one sent before
 * it was due for the current license_expires (a license moved later, or
 * none now) was about an earlier license, and the new one warns again. */
static bool stale_expiry(const deployment_notice *n, const deployment *d) {
	int64_t before = 0;

	if (!is_expiry(n->kind))
		return false;
	if (strcmp(n->kind, "expired") != 0 && deployment_parse_duration(n->kind + 7, &before) < 0)
		return true;    /* no policy names it: nothing to keep it for */
	return d->license_expires == 0 || n->at < d->license_expires - before;
}

/* ---- orders --------------------------------------------------------------------- */

/* Orders hook on the deployment's host when it may: true when ordered. */
static bool order(run *r, one *o, deployment_hook hook) {
	deployment *d = &o->d;
	const deployment_host *h = live_host(r, d->host);

	if (d->order.seq)
		return false;   /* one at a time (rule 1 holds the rest while one runs) */
	if (d->retry_at > r->now) {
		wake_at(r, d->retry_at);
		return false;
	}
	if (!h || (hook == DEPLOYMENT_HOOK_DEPLOY && !h->placeable))
		return false;   /* its node comes back (a watch wakes us) */
	char *host = strdup(d->host);
	if (!host)
		return false;
	d->last_seq++;
	d->order = (deployment_order) { d->last_seq, hook, host, r->now };
	say(o, "order %s #%lld on %s", deployment_hook_to_string(hook), (long long) d->last_seq, host);
	return true;
}

static void clear_order(deployment *d) {
	free(d->order.host);
	d->order = (deployment_order) {};
}

/* retry * 2^min(attempts - 1, 3): doubling, at most 8 times as long */
static int64_t retry_delay(const deployment_policy *p, int attempts) {
	return p->retry << (attempts < 1 ? 0 : attempts > 4 ? 3 : attempts - 1);
}

/* Whether this removal's remove hook was ordered and failed (its backup
 * done or skipped, then a failure): past the point of no return, as a
 * remove hook may have run halfway. */
static bool remove_tried(const deployment *d) {
	return d->removal != DEPLOYMENT_REMOVAL_NONE && d->attempts > 0 &&
	       (d->removal_skip_backup || (d->backup_at && d->backup_at >= d->removal_since));
}

static int failed(run *r, one *o, const char *why) {
	deployment *d = &o->d;
	char at[RFC3339_MAX];

	free(d->error);
	d->error = strdup(why);
	if (!d->error)
		return -ENOMEM;
	d->attempts++;
	d->retry_at = r->now + retry_delay(r->in->policy, d->attempts);
	say(o, "%s #%lld failed (attempt %d): %s; again at %s", deployment_hook_to_string(d->order.hook),
	    (long long) d->order.seq, d->attempts, why, rfc3339_format(d->retry_at, at));
	clear_order(d);
	wake_at(r, d->retry_at);
	return 0;
}

/* Rule 1: what the host reported on the outstanding order. 1: it is still
 * under way (nothing else for this deployment now), 0 done with, <0. */
static int rule_report(run *r, one *o, const deployment_report *rep) {
	deployment *d = &o->d;

	if (d->order.seq == 0)
		return 0;
	if (!rep || rep->seq != d->order.seq || rep->state == DEPLOYMENT_REPORT_RUNNING)
		return 1;
	if (rep->state == DEPLOYMENT_REPORT_FAILED)
		return failed(r, o, rep->error ? rep->error : "the hook failed");
	if (d->order.hook == DEPLOYMENT_HOOK_BACKUP && (!rep->output || !*rep->output))
		return failed(r, o, "the backup hook printed no backup location");

	say(o, "%s #%lld done", deployment_hook_to_string(d->order.hook), (long long) d->order.seq);
	switch (d->order.hook) {
	case DEPLOYMENT_HOOK_DEPLOY:
		/* the idle spell starts at activation anyway (state_since) */
		if (d->last_active == 0)
			d->last_active = r->now;
		if (d->state == DEPLOYMENT_PENDING)
			set_state(o, DEPLOYMENT_ACTIVE, r->now);
		break;
	case DEPLOYMENT_HOOK_MAINTENANCE_ON:
		if (d->state == DEPLOYMENT_ACTIVE)
			set_state(o, DEPLOYMENT_MAINTENANCE, r->now);
		if (notice(o, "maintenance", r->now) < 0)
			return -ENOMEM;
		break;
	case DEPLOYMENT_HOOK_MAINTENANCE_OFF:
		if (d->state == DEPLOYMENT_MAINTENANCE)
			set_state(o, DEPLOYMENT_ACTIVE, r->now);
		/* its inactivity notices are before the reclaim: rule 4 drops them */
		break;
	case DEPLOYMENT_HOOK_BACKUP:
		free(d->backup);
		if (!(d->backup = strdup(rep->output)))
			return -ENOMEM;
		d->backup_at = r->now;
		break;
	case DEPLOYMENT_HOOK_REMOVE:
		set_state(o, DEPLOYMENT_REMOVED, r->now);
		free(d->last_host);
		d->last_host = d->host;
		d->host = NULL;
		if (notice(o, "removed", r->now) < 0)
			return -ENOMEM;
		break;
	default:
		break;
	}
	free(d->error);
	d->error = NULL;
	d->attempts = 0;
	d->retry_at = 0;
	clear_order(d);
	return 0;
}

/* Rule 2: a pending deployment without host goes where deployment_place()
 * says (this decision's earlier placements count). */
static int rule_place(run *r, one *o) {
	deployment *d = &o->d;

	if (d->state != DEPLOYMENT_PENDING || d->host || d->removal != DEPLOYMENT_REMOVAL_NONE ||
	    (d->license_expires && d->license_expires <= r->now))
		return 0;       /* an expired license: rule 3 ends it, nothing is deployed */
	ssize_t i = deployment_place(r->hosts, r->in->n_hosts, d->memory);
	if (i < 0)
		return 0;       /* counted as unplaced or too big */
	r->hosts[i].used += d->memory;
	if (!(d->host = strdup(r->hosts[i].node_id)))
		return -ENOMEM;
	say(o, "placed on %s%s", d->host, r->hosts[i].reserved ? " (reserved)" : "");
	return 0;
}

/* Whether rule 3 looks at d's license: a deployment on a host or on its
 * way to one (an unplaced one too: an expired license is not placed). */
static bool license_applies(const deployment *d) {
	return d->state == DEPLOYMENT_PENDING || d->state == DEPLOYMENT_ACTIVE || d->state == DEPLOYMENT_MAINTENANCE;
}

/* Rule 3b: an expired deployment whose license moved into the future (or
 * went) before its remove was tried goes back to where it was: maintenance
 * (since it began, so a reclaim brings it out and the reclaim deadline
 * stands) if its maintenance notice is there, else active. */
static void renew(run *r, one *o) {
	deployment *d = &o->d;
	time_t paused = deployment_notice_sent(d, "maintenance");

	if (d->state != DEPLOYMENT_EXPIRED || d->removal != DEPLOYMENT_REMOVAL_EXPIRED || remove_tried(d) ||
	    (d->license_expires && d->license_expires <= r->now))
		return;
	d->removal = DEPLOYMENT_REMOVAL_NONE;
	d->removal_since = 0;
	say(o, "license renewed");
	set_state(o, paused ? DEPLOYMENT_MAINTENANCE : DEPLOYMENT_ACTIVE, r->now);
	if (paused)
		d->state_since = paused;
}

/* Rule 3c: the latest warning due and not sent, unless a later one was
 * (a leader away for days sends only the latest); the next one's time. */
static int expiry_warning(run *r, one *o) {
	const deployment_policy *p = r->in->policy;
	deployment *d = &o->d;
	char name[48], dur[32];

	/* expiry_notices is descending: from the last warning back */
	for (size_t i = p->n_expiry_notices; i-- > 0;) {
		time_t due = d->license_expires - p->expiry_notices[i];
		snprintf(name, sizeof name, "expiry_%s", deployment_format_duration(p->expiry_notices[i], dur, sizeof dur));
		if (deployment_notice_sent(d, name))
			return 0;
		if (due <= r->now)
			return notice(o, name, r->now);
		wake_at(r, due);
	}
	return 0;
}

/* Rule 3: the license: renewal, warnings, expiry. */
static int rule_license(run *r, one *o) {
	deployment *d = &o->d;

	drop_notices(o, stale_expiry);
	renew(r, o);
	if (!license_applies(d) || d->license_expires == 0)
		return 0;
	if (r->now < d->license_expires) {
		wake_at(r, d->license_expires);
		return expiry_warning(r, o);
	}
	if (notice(o, "expired", r->now) < 0)
		return -ENOMEM;
	set_state(o, DEPLOYMENT_EXPIRED, r->now);
	/* the operator's removal stays his (--no-backup); an inactive one
	 * becomes the license's, started when it started */
	if (d->removal == DEPLOYMENT_REMOVAL_NONE)
		d->removal_since = r->now;
	if (d->removal != DEPLOYMENT_REMOVAL_OPERATOR)
		d->removal = DEPLOYMENT_REMOVAL_EXPIRED;
	return 0;
}

/* Rule 4: inactivity of an active deployment. */
static int rule_inactive(run *r, one *o) {
	deployment *d = &o->d;
	const deployment_policy *p = r->in->policy;

	if (d->state != DEPLOYMENT_ACTIVE || d->removal != DEPLOYMENT_REMOVAL_NONE)
		return 0;
	/* in maintenance they stay until maintenance_off ran (renewal reads them) */
	drop_notices(o, stale_inactivity);
	time_t idle = d->last_active > d->state_since ? d->last_active : d->state_since;
	time_t warn = idle + p->inactive_after - p->inactive_warning;
	time_t warned = deployment_notice_sent(d, "inactive_warning");
	if (p->inactive_warning > 0 && !warned) {
		if (r->now < warn) {
			wake_at(r, warn);
			return 0;
		}
		if (notice(o, "inactive_warning", r->now) < 0)
			return -ENOMEM;
		warned = r->now;
	}
	/* a late warning still gives its full notice period */
	time_t due = idle + p->inactive_after;
	if (warned && warned + p->inactive_warning > due)
		due = warned + p->inactive_warning;
	if (r->now < due) {
		wake_at(r, due);
		return 0;
	}
	order(r, o, DEPLOYMENT_HOOK_MAINTENANCE_ON);
	return 0;
}

/* Rule 5: maintenance: reclaimed, or removal when nobody did. */
static void rule_maintenance(run *r, one *o) {
	deployment *d = &o->d;

	if (d->state != DEPLOYMENT_MAINTENANCE)
		return;
	if (d->last_active > d->state_since &&
	    (d->removal == DEPLOYMENT_REMOVAL_NONE || (d->removal == DEPLOYMENT_REMOVAL_INACTIVE && !remove_tried(d)))) {
		if (d->removal == DEPLOYMENT_REMOVAL_INACTIVE) {
			d->removal = DEPLOYMENT_REMOVAL_NONE;
			say(o, "reclaimed: removal cancelled");
		}
		order(r, o, DEPLOYMENT_HOOK_MAINTENANCE_OFF);
		return;
	}
	time_t deadline = d->state_since + r->in->policy->reclaim_within;
	if (d->removal != DEPLOYMENT_REMOVAL_NONE)
		return;
	if (r->now < deadline) {
		wake_at(r, deadline);
		return;
	}
	d->removal = DEPLOYMENT_REMOVAL_INACTIVE;
	d->removal_since = r->now;
	say(o, "not reclaimed: removal");
}

/* Rule 6: removal: a backup taken for this removal, then remove. */
static void rule_removal(run *r, one *o) {
	deployment *d = &o->d;

	if (d->removal == DEPLOYMENT_REMOVAL_NONE || d->state == DEPLOYMENT_REMOVED)
		return;
	if (!d->host) {
		/* never placed: nothing on a host to back up or remove */
		set_state(o, DEPLOYMENT_REMOVED, r->now);
		return;
	}
	if (!d->removal_skip_backup && d->backup_at < d->removal_since)
		order(r, o, DEPLOYMENT_HOOK_BACKUP);
	else
		order(r, o, DEPLOYMENT_HOOK_REMOVE);
}

/* A pending deployment with a host whose deploy is not ordered (placed
 * now, or its deploy failed and the retry is due). */
static void rule_deploy(run *r, one *o) {
	deployment *d = &o->d;

	if (d->state == DEPLOYMENT_PENDING && d->host && d->removal == DEPLOYMENT_REMOVAL_NONE)
		order(r, o, DEPLOYMENT_HOOK_DEPLOY);
}

static int decide_one(run *r, one *o, const deployment_report *rep) {
	int k = rule_report(r, o, rep);

	if (k != 0)
		return k < 0 ? k : 0;
	if (o->d.state == DEPLOYMENT_REMOVED)
		return 0;
	if ((k = rule_place(r, o)) < 0 || (k = rule_license(r, o)) < 0 || (k = rule_inactive(r, o)) < 0)
		return k;
	rule_maintenance(r, o);
	rule_removal(r, o);
	rule_deploy(r, o);
	return 0;
}

/* ---- the frame ------------------------------------------------------------------- */

static void one_done(one *o) {
	deployment_done(&o->d);
	for (size_t i = 0; i < o->n_sent; i++)
		free(o->sent[i]);
}

/* The action's notices point into its record's notices. */
static int take_action(deployment_output *out, one *o, int64_t mod_revision, const char *id) {
	deployment_action *a = &out->actions[out->n_actions];

	*a = (deployment_action) { .mod_revision = mod_revision };
	a->notices = calloc(o->n_sent + 1, sizeof *a->notices);
	if (!a->notices)
		return -ENOMEM;
	snprintf(a->line, sizeof a->line, "%.40s: %.200s", id, o->len ? o->line : "record updated");
	a->record = o->d;
	o->d = (deployment) {};
	for (size_t i = 0; i < o->n_sent; i++)
		for (size_t k = 0; k < a->record.n_notices; k++)
			if (strcmp(a->record.notices[k].kind, o->sent[i]) == 0)
				a->notices[a->n_notices++] = a->record.notices[k].kind;
	out->n_actions++;
	return 0;
}

/* The counts of the record as decided (as it is in cluster maintenance). */
static void count(deployment_output *out, const run *r, const deployment *d) {
	if (d->state >= 0 && d->state < _DEPLOYMENT_STATE_MAX)
		out->by_state[d->state]++;
	if (d->state == DEPLOYMENT_PENDING && !d->host && d->removal == DEPLOYMENT_REMOVAL_NONE) {
		bool fits = deployment_fits_some_host(r->hosts, r->in->n_hosts, d->memory);
		out->unplaced += fits;
		out->too_big += !fits;
	}
	out->failing += d->error != NULL;
	out->orders += d->order.seq > 0;
}

int deployment_decide(const deployment_input *in, deployment_output *out) {
	run r = { .in = in };
	int k = 0;

	*out = (deployment_output) {};
	if (!in || !in->policy || in->now <= 0)
		return -EINVAL;
	r.now = in->now;
	r.hosts = calloc(in->n_hosts + 1, sizeof *r.hosts);
	out->actions = calloc(in->n_deployments + 1, sizeof *out->actions);
	if (!r.hosts || !out->actions) {
		free(r.hosts);
		free(out->actions);
		out->actions = NULL;
		return -ENOMEM;
	}
	memcpy(r.hosts, in->hosts, in->n_hosts * sizeof *r.hosts);
	for (size_t i = 0; i < in->n_deployments && k >= 0; i++) {
		one o = {};
		if ((k = deployment_copy(&in->deployments[i], &o.d)) < 0)
			break;
		if (!in->maintenance)
			k = decide_one(&r, &o, in->reports ? in->reports[i] : NULL);
		if (k >= 0) {
			count(out, &r, &o.d);
			json_auto_t *was = deployment_to_json(&in->deployments[i]), *now = deployment_to_json(&o.d);
			if (!was || !now)
				k = -ENOMEM;
			else if (!json_equal(was, now))
				k = take_action(out, &o, in->mod_revisions ? in->mod_revisions[i] : 0, in->deployments[i].id);
		}
		one_done(&o);
	}
	free(r.hosts);
	if (k < 0) {
		deployment_output_done(out);
		return k;
	}
	out->wake = r.wake;
	return 0;
}

void deployment_output_done(deployment_output *out) {
	if (!out)
		return;
	for (size_t i = 0; i < out->n_actions; i++) {
		deployment_done(&out->actions[i].record);
		free(out->actions[i].notices);
	}
	free(out->actions);
	*out = (deployment_output) {};
}
