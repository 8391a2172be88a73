/* deployment-view.c — `corralctl deployment list|show` and the line add
 * prints about where a deployment goes. The hosts' room comes from the
 * leader's own reading: lifecycle_snapshot_read() (the same txn the
 * lifecycle loop observes with), deployment_observe() and
 * deployment_place(), so what corralctl says is what the leader will do. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "deployment.h"
#include "esc.h"
#include "lifecycle.h"
#include "rfc3339.h"

/* "2.0G", "512.0M": a size for reading, not for parsing back. */
static const char *human_size(int64_t bytes, char buf[24]) {
	static const char units[] = "KMGT";
	double v = (double) (bytes < 0 ? 0 : bytes);
	int u = -1;

	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, 24, "%lldB", (long long) (bytes < 0 ? 0 : bytes));
	else
		snprintf(buf, 24, "%.1f%c", v, units[u]);
	return buf;
}

/* Room left under the host's threshold. */
static int64_t host_free(const deployment_host *h) {
	int64_t cap = (int64_t) (h->threshold * (double) h->memory);
	return cap > h->used ? cap - h->used : 0;
}

/* What the leader would observe now. 0, or -1 after saying why on stderr. */
static int observe(ctl_t *c, lifecycle_snapshot *snap, deployment_observed *obs) {
	deployment_error derr = {};
	char err[256] = "";
	int r;

	r = lifecycle_snapshot_read(c->etcd, c->prefix, snap, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "corralctl: reading the deployments' hosts: %s\n", *err ? err : strerror(-r));
		return -1;
	}
	r = deployment_observe(&snap->records, obs, &derr);
	if (r < 0) {
		fprintf(stderr, "corralctl: %s\n", r == -EINVAL ? derr.message : strerror(-r));
		return -1;
	}
	return 0;
}

void ctl_deployment_where(ctl_t *c, const char *id, int64_t memory) {
	_cleanup_(lifecycle_snapshot_done) lifecycle_snapshot snap = {};
	_cleanup_(deployment_observed_done) deployment_observed obs = {};
	char a[24], b[24];

	if (observe(c, &snap, &obs) < 0)
		return;
	for (size_t i = 0; i < obs.n_deployments; i++)
		if (streq(obs.deployments[i].id, id) && obs.deployments[i].host) {
			printf("deployment %s is on %s\n", id, obs.deployments[i].host);
			return;
		}
	ssize_t k = deployment_place(obs.hosts, obs.n_hosts, memory);
	if (k >= 0) {
		const deployment_host *h = &obs.hosts[k];
		printf("placing on %s (%s%s of %s free)\n", h->node_id, h->reserved ? "reserved, " : "",
		       human_size(memory, a), human_size(host_free(h), b));
	} else if (obs.n_hosts == 0)
		printf("no host takes deployments yet: waits for a new host\n");
	else if (!deployment_fits_some_host(obs.hosts, obs.n_hosts, memory))
		printf("no host could take %s even empty: it stays pending\n", human_size(memory, a));
	else
		printf("no host has room: waits for a new host\n");
}

/* ---- list ------------------------------------------------------------------------------- */

/* What comes next for d, or what is wrong: the list's last column. */
static char *next_cell(const deployment *d) {
	char t[RFC3339_MAX];
	char *s = NULL;
	int r;

	if (d->error)
		r = asprintf(&s, "error: %s (retry %s)", d->error, rfc3339_format(d->retry_at, t));
	else if (d->order.seq > 0)
		r = asprintf(&s, "%s #%lld on %s", deployment_hook_to_string(d->order.hook), (long long) d->order.seq,
			     d->order.host ?: "-");
	else if (d->removal != DEPLOYMENT_REMOVAL_NONE && d->state != DEPLOYMENT_REMOVED)
		r = asprintf(&s, "removal (%s)%s", deployment_removal_to_string(d->removal),
			     d->removal_skip_backup ? " without backup" : "");
	else if (d->state == DEPLOYMENT_PENDING && !d->host)
		r = asprintf(&s, "waits for a host");
	else
		r = asprintf(&s, "-");
	return r < 0 ? NULL : s;
}

static void fill_row(const deployment *d, char **cells) {
	char t[RFC3339_MAX], sz[24];

	cells[0] = strdup(d->id);
	cells[1] = strdup(deployment_state_to_string(d->state) ?: "?");
	cells[2] = strdup(d->host ?: "-");
	cells[3] = strdup(deployment_format_size(d->memory, sz, sizeof sz));
	cells[4] = strdup(d->owner ?: "-");
	cells[5] = strdup(rfc3339_format(d->license_expires, t));
	cells[6] = strdup(rfc3339_format(d->last_active, t));
	cells[7] = next_cell(d);
}

/* A record the codec refuses still gets its row: the operator must see it. */
static void fill_bad_row(const char *id, const char *why, char **cells) {
	cells[0] = strdup(id);
	cells[1] = strdup("malformed");
	for (size_t j = 2; j < 7; j++)
		cells[j] = strdup("-");
	cells[7] = strdup(why);
}

int ctl_deployment_list(ctl_t *c, ctl_opts *o) {
	static const char *const header[] = { "ID",      "STATE",       "HOST",      "MEMORY",
					      "OWNER",   "LICENSE",     "LAST-ACTIVE", "NEXT/ERROR" };
	enum { NCOLS = ELEMENTSOF(header) };
	json_auto_t *all = NULL;
	const char *id;
	json_t *rec;
	size_t i = 0;

	(void) o;
	if (ctl_read_records(c, KEYS_DEPLOYMENTS, &all) < 0)
		return 1;
	if (c->format == FORMAT_JSON) {
		json_auto_t *arr = json_array();
		if (!arr)
			return 1;
		json_object_foreach(all, id, rec) {
			json_t *row = json_copy(rec);
			if (!row || json_object_set_new(row, "id", json_string(id)) < 0 || json_array_append_new(arr, row) < 0)
				return 1;
		}
		return ctl_print_json(arr);
	}
	if (json_object_size(all) == 0) {
		printf("no deployments\n");
		return ctl_flush();
	}
	_cleanup_free_ char **cells = calloc(json_object_size(all) * NCOLS, sizeof(char *));
	if (!cells)
		return 1;
	json_object_foreach(all, id, rec) {
		_cleanup_(deployment_done) deployment d = {};
		deployment_error err = {};
		const char *bad = json_string_value(json_object_get(rec, "malformed"));

		if (bad && json_object_size(rec) == 1)
			fill_bad_row(id, bad, cells + i * NCOLS);
		else if (deployment_from_json(rec, id, &d, &err) < 0)
			fill_bad_row(id, err.message, cells + i * NCOLS);
		else
			fill_row(&d, cells + i * NCOLS);
		i++;
	}
	return ctl_print_rows(header, cells, i, NCOLS);
}

/* ---- show ------------------------------------------------------------------------------- */

static json_t *hosts_json(const deployment_observed *obs) {
	json_auto_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < obs->n_hosts; i++) {
		const deployment_host *h = &obs->hosts[i];
		json_t *o = json_pack("{s:s, s:s?, s:s?, s:I, s:I, s:f, s:I, s:b, s:b}", "node", h->node_id, "pool",
				      h->pool, "instance_id", h->instance_id, "memory", (json_int_t) h->memory, "used",
				      (json_int_t) h->used, "threshold", h->threshold, "free",
				      (json_int_t) host_free(h), "placeable", h->placeable, "reserved", h->reserved);
		if (!o || json_array_append_new(arr, o) < 0)
			return NULL;
	}
	return TAKE_PTR(arr);
}

static json_t *load_text(const char *key, const char *text) {
	json_error_t jerr;
	json_t *j;

	if (!text)
		return json_null();
	j = json_loads(text, 0, &jerr);
	if (!j)
		fprintf(stderr, "corralctl: %s holds no JSON (%s)\n", key, ESC_JERR(&jerr));
	return j ?: json_pack("{ss}", "malformed", "not JSON");
}

static void print_line(const char *name, const char *value) {
	printf("  %-12s %s\n", name, value && *value ? value : "-");
}

static void print_record(const deployment *d) {
	char t[RFC3339_MAX], t2[RFC3339_MAX], sz[24], line[512];

	printf("deployment %s\n", d->id);
	snprintf(line, sizeof line, "%s since %s", deployment_state_to_string(d->state),
		 rfc3339_format(d->state_since, t));
	print_line("state", line);
	print_line("host", d->host ?: (d->last_host ? d->last_host : NULL));
	print_line("memory", deployment_format_size(d->memory, sz, sizeof sz));
	print_line("owner", d->owner);
	print_line("license", rfc3339_format(d->license_expires, t));
	print_line("last active", rfc3339_format(d->last_active, t));
	print_line("created", rfc3339_format(d->created, t));
	line[0] = 0;
	if (d->removal != DEPLOYMENT_REMOVAL_NONE)
		snprintf(line, sizeof line, "%s since %s%s", deployment_removal_to_string(d->removal),
			 rfc3339_format(d->removal_since, t), d->removal_skip_backup ? " (no backup)" : "");
	print_line("removal", line);
	line[0] = 0;
	if (d->backup)
		snprintf(line, sizeof line, "%s (%s)", d->backup, rfc3339_format(d->backup_at, t));
	print_line("backup", line);
	line[0] = 0;
	if (d->order.seq > 0)
		snprintf(line, sizeof line, "%s #%lld on %s since %s", deployment_hook_to_string(d->order.hook),
			 (long long) d->order.seq, d->order.host ?: "-", rfc3339_format(d->order.since, t));
	print_line("order", line);
	line[0] = 0;
	if (d->error)
		snprintf(line, sizeof line, "%s (%d in a row, retry %s)", d->error, d->attempts,
			 rfc3339_format(d->retry_at, t2));
	print_line("error", line);
	if (d->n_notices == 0)
		print_line("notices", NULL);
	for (size_t i = 0; i < d->n_notices; i++) {
		snprintf(line, sizeof line, "%s %s", d->notices[i].kind, rfc3339_format(d->notices[i].at, t));
		print_line(i == 0 ? "notices" : "", line);
	}
}

static void print_report(json_t *rj) {
	_cleanup_(deployment_report_done) deployment_report r = {};
	deployment_error err = {};
	char t[RFC3339_MAX], line[512];

	if (json_is_null(rj)) {
		print_line("report", NULL);
		return;
	}
	if (deployment_report_from_json(rj, &r, &err) < 0) {
		print_line("report", err.message);
		return;
	}
	snprintf(line, sizeof line, "%s #%lld on %s: %s %s%s%s", deployment_hook_to_string(r.hook), (long long) r.seq,
		 r.host ?: "-", deployment_report_state_to_string(r.state),
		 rfc3339_format(r.ended ? r.ended : r.started, t), r.output || r.error ? ": " : "",
		 r.error ?: (r.output ?: ""));
	print_line("report", line);
}

static int print_hosts(const deployment_observed *obs) {
	static const char *const header[] = { "NODE", "POOL", "RESERVED", "PLACEABLE", "MEMORY", "USED", "FREE" };
	enum { NCOLS = ELEMENTSOF(header) };
	char a[24];

	printf("\n");
	if (obs->n_hosts == 0) {
		printf("no host takes deployments\n");
		return ctl_flush();
	}
	_cleanup_free_ char **cells = calloc(obs->n_hosts * NCOLS, sizeof(char *));
	if (!cells)
		return 1;
	for (size_t i = 0; i < obs->n_hosts; i++) {
		const deployment_host *h = &obs->hosts[i];
		char **row = cells + i * NCOLS;
		row[0] = strdup(h->node_id);
		row[1] = strdup(h->pool ?: "-");
		row[2] = strdup(h->reserved ? "yes" : "no");
		row[3] = strdup(h->placeable ? "yes" : "no");
		row[4] = strdup(human_size(h->memory, a));
		row[5] = strdup(human_size(h->used, a));
		row[6] = strdup(human_size(host_free(h), a));
	}
	return ctl_print_rows(header, cells, obs->n_hosts, NCOLS);
}

int ctl_deployment_show(ctl_t *c, ctl_opts *o) {
	_cleanup_(lifecycle_snapshot_done) lifecycle_snapshot snap = {};
	_cleanup_(deployment_observed_done) deployment_observed obs = {};
	_cleanup_(deployment_done) deployment d = {};
	_cleanup_free_ char *key = NULL, *rkey = NULL, *text = NULL, *rtext = NULL;
	const char *id = o->pos[0];
	deployment_error err = {};

	if (!ctl_id_valid(id))
		return ctl_usage_error("bad deployment id '%s'", id);
	key = keys_entry(c->prefix, KEYS_DEPLOYMENTS, id);
	rkey = keys_entry(c->prefix, KEYS_DEPLOYMENT_REPORTS, id);
	if (!key || !rkey || ctl_get(c, key, &text, NULL, NULL) < 0 || ctl_get(c, rkey, &rtext, NULL, NULL) < 0)
		return 1;
	if (!text) {
		fprintf(stderr, "corralctl: no deployment %s\n", id);
		return 1;
	}
	json_auto_t *rec = load_text(key, text), *rep = load_text(rkey, rtext);
	if (!rec || !rep)
		return 1;
	bool hosts_ok = observe(c, &snap, &obs) == 0;
	if (c->format == FORMAT_JSON) {
		json_auto_t *out = json_pack("{s:s, s:O, s:O, s:o}", "id", id, "record", rec, "report", rep, "hosts",
					     hosts_ok ? hosts_json(&obs) : json_null());
		return out ? ctl_print_json(out) : 1;
	}
	if (deployment_from_json(rec, id, &d, &err) < 0) {
		printf("deployment %s\n", id);
		print_line("malformed", err.message);
	} else
		print_record(&d);
	print_report(rep);
	if (!hosts_ok)
		return ctl_flush() ?: 1;
	return print_hosts(&obs);
}
