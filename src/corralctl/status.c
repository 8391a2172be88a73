/* status.c — the read-only views of the cluster: `corralctl status` (the
 * current config, the leader, the scaling summary and every node's
 * state), `leader` (the elected corrald and its lease) and `nodes` (the
 * registered nodes). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "esc.h"
#include "leader.h"

/* ---- nodes ---------------------------------------------------------------- */

#define NODES_COLUMNS 5

static char *join_services(json_t *services) {
	size_t i, len = 0;
	json_t *s;
	char *out;

	json_array_foreach(services, i, s)
		len += json_string_length(s) + 1;
	out = calloc(1, len + 2);
	if (!out)
		return NULL;
	json_array_foreach(services, i, s) {
		if (!json_is_string(s))
			continue;
		if (out[0])
			strcat(out, ",");
		strcat(out, json_string_value(s));
	}
	if (!out[0])
		strcpy(out, "-");
	return out;
}

static int cmd_nodes(ctl_t *c, ctl_opts *o) {
	_cleanup_free_ char *key = keys_dir_of(c->prefix, KEYS_NODES);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return 1;
	etcd_range_req req = { .key = key, .prefix = true };
	if (etcd_range_all(c->etcd, &req, 500, etcd_sync_cb, &s, NULL) < 0)
		return 1;
	if (ctl_wait(c, &s, &resp) < 0)
		return 1;

	json_auto_t *all = json_array();
	_cleanup_free_ char **rows = calloc(resp->n_kvs * NODES_COLUMNS + 1, sizeof *rows);
	if (!all || !rows)
		return 1;
	size_t klen = strlen(key);
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *id = kv->key + klen;
		char **row = rows + i * NODES_COLUMNS;
		json_error_t jerr;
		json_t *rec = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, &jerr);

		if (!json_is_object(rec)) {
			fprintf(stderr, "corralctl: warning: %s holds no valid node record: %s\n", ESC(kv->key),
				rec ? "not a JSON object" : ESC_JERR(&jerr));
			json_decref(rec);
			rec = json_pack("{ss}", "error", "malformed node record");
		}
		json_object_set_new(rec, "node_id", json_string(id));
		json_object_set_new(rec, "lease", json_sprintf("%llx", (unsigned long long) kv->lease));
		row[0] = strdup(id);
		row[1] = ctl_field(rec, "address");
		row[2] = join_services(json_object_get(rec, "services"));
		row[3] = ctl_field(rec, "version");
		row[4] = ctl_field(rec, "started");
		json_array_append_new(all, rec);
	}

	if (c->format == FORMAT_JSON) {
		for (size_t i = 0; i < resp->n_kvs * NODES_COLUMNS; i++)
			free(rows[i]);
		return ctl_print_json_sorted(all);
	}
	static const char *const header[NODES_COLUMNS] = { "NODE", "ADDRESS", "SERVICES", "VERSION", "STARTED" };
	int r = ctl_print_rows(header, rows, resp->n_kvs, NODES_COLUMNS);
	if (resp->n_kvs == 0)
		printf("(no nodes registered under %s)\n", key);
	return r == 0 ? ctl_flush() : r;
}

/* ---- leader ------------------------------------------------------------------ */

typedef struct leader_view {
	bool present;
	char *node_id;
	uint64_t since;                 /* 0: unknown */
	int64_t token;                  /* the key's create_revision */
	int64_t lease;
	int64_t ttl;                    /* seconds left on its lease; -1: none */
} leader_view;

static void leader_view_done(leader_view *v) {
	free(v->node_id);
}

static void format_since(char *buf, size_t size, uint64_t t) {
	time_t tt = (time_t) t;
	struct tm tm;

	if (t == 0 || !gmtime_r(&tt, &tm))
		snprintf(buf, size, "?");
	else
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads <prefix>/leader and, with ttl, its lease's remaining TTL. */
static int read_leader(ctl_t *c, bool ttl, leader_view *out) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_LEADER);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL, *tr = NULL;
	etcd_sync st = {};
	int r = ctl_get_kv(c, key, &resp);

	if (r < 0)
		return r;
	*out = (leader_view){ .ttl = -1 };
	if (resp->n_kvs == 0)
		return 0;
	const etcd_kv *kv = &resp->kvs[0];
	out->present = true;
	out->token = kv->create_revision;
	out->lease = kv->lease;
	if (leader_value_parse(kv->value, kv->value_len, &out->node_id, &out->since) < 0)
		return -ENOMEM;
	if (ttl && kv->lease != 0) {
		if (etcd_lease_ttl(c->etcd, kv->lease, false, etcd_sync_cb, &st, NULL) < 0)
			return -ENOMEM;
		if (ctl_wait(c, &st, &tr) < 0)
			return -EIO;
		out->ttl = tr->ttl;
	}
	return 0;
}

static int cmd_leader(ctl_t *c, ctl_opts *o) {
	_cleanup_(leader_view_done) leader_view v = {};
	char since[32];

	if (read_leader(c, true, &v) < 0)
		return 1;
	format_since(since, sizeof since, v.since);
	if (c->format == FORMAT_JSON) {
		json_auto_t *out = NULL;
		if (!v.present)
			out = json_pack("{s:n}", "node_id");
		else
			out = json_pack("{s:s, s:o, s:I, s:o, s:I}", "node_id", v.node_id, "since",
					v.since ? json_string(since) : json_null(), "token", (json_int_t) v.token, "lease",
					json_sprintf("%llx", (unsigned long long) v.lease), "ttl", (json_int_t) v.ttl);
		return out ? ctl_print_json(out) : 1;
	}
	if (!v.present) {
		printf("(no leader: %s/leader is absent)\n", c->prefix);
		return ctl_flush();
	}
	static const char *const header[] = { "LEADER", "SINCE", "TOKEN", "LEASE", "TTL" };
	char token[32], lease[32], ttl[32];
	snprintf(token, sizeof token, "%lld", (long long) v.token);
	snprintf(lease, sizeof lease, "%llx", (unsigned long long) v.lease);
	if (v.ttl >= 0)
		snprintf(ttl, sizeof ttl, "%llds", (long long) v.ttl);
	else
		snprintf(ttl, sizeof ttl, "-");
	char *const row[] = { v.node_id, since, token, lease, ttl };
	ctl_print_table(header, row, 1, ELEMENTSOF(header));
	return ctl_flush();
}

/* ---- status ------------------------------------------------------------------ */

#define STATUS_COLUMNS 7

/* One line, no control bytes, at most 80 characters: error texts come from
 * nodes and may be anything. */
static char *one_line(const char *s) {
	size_t n = strlen(s) > 80 ? 80 : strlen(s);
	char *out = malloc(n + 4);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	strcpy(out + n, strlen(s) > 80 ? "..." : "");
	return out;
}

static char *units_summary(json_t *units) {
	size_t ok = 0, failed = 0;
	int r;
	const char *k;
	json_t *u;
	char *out = NULL;

	if (!json_is_object(units) || json_object_size(units) == 0)
		return strdup("-");
	json_object_foreach(units, k, u) {
		if (json_is_true(json_object_get(u, "ok")))
			ok++;
		else
			failed++;
	}
	if (failed && ok)
		r = asprintf(&out, "%zu failed, %zu ok", failed, ok);
	else if (failed)
		r = asprintf(&out, "%zu failed", failed);
	else
		r = asprintf(&out, "%zu ok", ok);
	return r < 0 ? NULL : out;
}

static char *status_error(json_t *st) {
	json_t *e = json_object_get(st, "error");

	if (json_is_string(e) && json_string_length(e) > 0)
		return one_line(json_string_value(e));
	if (json_is_false(json_object_get(st, "ok")))
		return strdup("not ok");
	return strdup("-");
}

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* What status shows, read from etcd. */
typedef struct status_view {
	char *current;
	json_t *nodes, *status, *ids, *scaling;
	const char **order;             /* every node known either way, sorted by id */
	size_t n;
	leader_view leader;
	char since[32];
} status_view;

static void status_view_done(status_view *v) {
	free(v->current);
	json_decref(v->nodes);
	json_decref(v->status);
	json_decref(v->ids);
	json_decref(v->scaling);
	free(v->order);
	leader_view_done(&v->leader);
}

static int status_read(ctl_t *c, status_view *v) {
	_cleanup_free_ char *ckey = keys_one_of(c->prefix, KEYS_CURRENT);
	const char *id;
	json_t *x;

	if (!(v->ids = json_object()) || ctl_get(c, ckey, &v->current, NULL, NULL) < 0)
		return 1;
	if (v->current && !*v->current) {
		free(v->current);       /* empty: shown as none, as before */
		v->current = NULL;
	}
	if (ctl_read_records(c, KEYS_NODES, &v->nodes) < 0 || ctl_read_records(c, KEYS_STATUS, &v->status) < 0)
		return 1;
	if (read_leader(c, false, &v->leader) < 0)
		return 1;
	format_since(v->since, sizeof v->since, v->leader.since);

	json_object_foreach(v->nodes, id, x)
		json_object_set_new(v->ids, id, json_true());
	json_object_foreach(v->status, id, x)
		json_object_set_new(v->ids, id, json_true());
	v->n = json_object_size(v->ids);
	v->order = calloc(v->n ? v->n : 1, sizeof *v->order);
	if (!v->order)
		return 1;
	size_t k = 0;
	json_object_foreach(v->ids, id, x)
		v->order[k++] = id;
	qsort(v->order, v->n, sizeof *v->order, cmp_str);
	if (ctl_scale_summary(c, &v->scaling) < 0)
		return 1;
	/* Whether the leader scales, and whether its desired counts are
	 * current: a stopped scaler's last decision is shown as stale. */
	json_t *health = NULL;
	if (ctl_scaling_status(c, &health) < 0)
		return 1;
	json_object_set_new(v->scaling, "stale", json_boolean(!json_is_true(json_object_get(health, "current"))));
	json_object_set_new(v->scaling, "status", health);
	return 0;
}

static int status_json(status_view *v) {
	const leader_view *lv = &v->leader;
	json_auto_t *out = json_pack("{s:o,s:[]}", "current", v->current ? json_string(v->current) : json_null(),
				     "nodes");

	if (!out)
		return 1;
	json_object_set_new(out, "leader",
			    lv->present ? json_pack("{s:s, s:o, s:I}", "node_id", lv->node_id, "since",
						    lv->since ? json_string(v->since) : json_null(), "token",
						    (json_int_t) lv->token)
					: json_null());
	json_object_set(out, "scaling", v->scaling);
	for (size_t i = 0; i < v->n; i++) {
		json_t *nd = json_object_get(v->nodes, v->order[i]), *st = json_object_get(v->status, v->order[i]);
		json_array_append_new(json_object_get(out, "nodes"),
				      json_pack("{s:s,s:b,s:O?,s:O?}", "node_id", v->order[i], "live", nd != NULL, "node",
						nd, "status", st));
	}
	return ctl_print_json(out);
}

/* One node's row: NODE LIVE APPLIED TARGET PINNED UNITS ERROR (PINNED:
 * the candidate a staged config rollout pinned it to, "-" when it
 * follows current). */
static void status_row(status_view *v, size_t i, char **row) {
	json_t *st = json_object_get(v->status, v->order[i]);

	row[0] = strdup(v->order[i]);
	row[1] = strdup(json_object_get(v->nodes, v->order[i]) ? "yes" : "no");
	if (!st) {
		for (int k = 2; k < 6; k++)
			row[k] = strdup("-");
		row[6] = strdup("(no status record)");
	} else if (json_object_get(st, "malformed")) {
		for (int k = 2; k < 6; k++)
			row[k] = strdup("?");
		row[6] = strdup("malformed status record");
	} else {
		row[2] = ctl_field(st, "applied");
		row[3] = ctl_field(st, "target");
		row[4] = ctl_field(st, "pinned");
		row[5] = units_summary(json_object_get(st, "units"));
		row[6] = status_error(st);
	}
}

static int status_table(ctl_t *c, status_view *v) {
	static const char *const header[STATUS_COLUMNS] = { "NODE", "LIVE", "APPLIED", "TARGET", "PINNED", "UNITS",
								     "ERROR" };

	printf("current: %s\n", v->current ? v->current : "(none)");
	if (v->leader.present)
		printf("leader: %s since %s\n", v->leader.node_id, v->since);
	else
		printf("leader: (none)\n");
	printf("%s\n", json_string_value(json_object_get(json_object_get(v->scaling, "status"), "line")));
	ctl_scale_summary_print(v->scaling, stdout);
	if (v->n == 0) {
		printf("(no nodes under %s/nodes/ or %s/status/)\n", c->prefix, c->prefix);
		return ctl_flush();
	}
	_cleanup_free_ char **rows = calloc(v->n * STATUS_COLUMNS, sizeof *rows);
	if (!rows)
		return 1;
	for (size_t i = 0; i < v->n; i++)
		status_row(v, i, rows + i * STATUS_COLUMNS);
	return ctl_print_rows(header, rows, v->n, STATUS_COLUMNS);
}

static int cmd_status(ctl_t *c, ctl_opts *o) {
	_cleanup_(status_view_done) status_view v = {};
	int r = status_read(c, &v);

	if (r != 0)
		return r;
	return c->format == FORMAT_JSON ? status_json(&v) : status_table(c, &v);
}

const ctl_verb ctl_status_verbs[] = {
	{ .name = "nodes", .help = "list the registered nodes", .flags = CTL_VERB_ETCD, .run = cmd_nodes },
	{ .name = "status",
	  .help = "the current config id, the leader, whether it scales (ok, or stopped and why;\n"
		  "the last decision, the next evaluation), the scaling summary (pools, hosts by state,\n"
		  "maintenance, stop, holds), and per node: registered, applied and target config,\n"
		  "the candidate a staged config rollout pinned it to, unit results, last error",
	  .flags = CTL_VERB_ETCD, .run = cmd_status },
	{ .name = "leader", .help = "the elected corrald: node id, since when, fencing token, lease TTL",
	  .flags = CTL_VERB_ETCD, .run = cmd_leader },
	{},
};
