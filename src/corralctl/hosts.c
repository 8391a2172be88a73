/* hosts.c — `corralctl hosts`: the fleet, one row per host, as the leader
 * sees it. The rows come from the leader's own observe (scaler.h,
 * scaler_view_once: the etcd snapshot at one revision, DescribeInstances
 * when EC2 is configured, scale_observe()), never from a second reading of
 * the keys; this file only turns the observed hosts into rows and prints
 * them as a table, JSON (an array of objects) or CSV (RFC 4180).
 * docs/operating.md, "The fleet: corralctl hosts", has the fields. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "scale-observe.h"
#include "scaler.h"

/* The fields, in the order of the table's and CSV's columns. */
#define HOSTS_COLUMNS 14
static const char *const table_header[HOSTS_COLUMNS] = { "INSTANCE", "NODE",     "POOL",   "STATE",  "MARKET",
							 "TYPE",     "ZONE",     "LAUNCHED", "UPTIME", "BILLED",
							 "JOBS",     "IMAGE",    "CONFIG", "HOLD/MAINTENANCE" };
#define CSV_COLUMNS 19
static const char *const csv_header[CSV_COLUMNS] = {
	"instance_id", "node_id", "pool",  "state",	     "market",	   "type",	      "zone",
	"launched",    "uptime_seconds", "billing", "billed_minute", "jobs",	"image",	"config_applied",
	"in_ec2",      "hold_by", "hold_reason", "hold_since",    "maintenance_reason"
};

typedef struct hosts_ctx {
	const char *pool;               /* --pool, or NULL */
	json_t *maintenance;            /* the marker, or NULL */
	json_t *rows;                   /* array of objects */
	int error;
} hosts_ctx;

static const scale_kv *kv_find(const scale_kv *v, size_t n, const char *id) {
	for (size_t i = 0; id && i < n; i++)
		if (streq(v[i].id, id))
			return &v[i];
	return NULL;
}

static json_t *kv_json(const scale_kv *kv) {
	return kv && kv->value ? json_loadb(kv->value, kv->len, 0, NULL) : NULL;
}

static const scale_instance *instance_find(const scale_records *r, const char *id) {
	for (size_t i = 0; r->have_instances && i < r->n_instances; i++)
		if (streq(r->instances[i].id, id))
			return &r->instances[i];
	return NULL;
}

/* A marker ({since, by, reason}, as ctl_marker_json writes it) as the row
 * carries it; text that is not an object becomes the reason. */
static json_t *marker_of(json_t *m, const char *text, size_t len, const char *source) {
	json_t *o;

	if (json_is_object(m))
		/* ctl_read_marker gives text that is not JSON as {"value": text} */
		o = json_pack("{s:O?, s:O?, s:O?}", "by", json_object_get(m, "by"), "reason",
			      json_object_get(m, "reason") ?: json_object_get(m, "value"), "since",
			      json_object_get(m, "since"));
	else
		o = json_pack("{s:s%}", "reason", text ? text : "", text ? len : 0);
	if (o && source)
		json_object_set_new(o, "source", json_string(source));
	return o;
}

/* The hold of a host: holds/<id> first (it has who and why), else the
 * EC2 tag or the record's flag. NULL when not held. */
static json_t *hold_of(const scale_records *r, const char *id, bool held) {
	const scale_kv *kv = kv_find(r->holds, r->n_holds, id);
	json_auto_t *m = kv_json(kv);

	if (kv)
		return marker_of(m, kv->value, kv->len, "holds");
	return held ? json_pack("{s:n, s:n, s:n, s:s}", "by", "reason", "since", "source", "tag") : NULL;
}

static json_t *time_or_null(time_t t) {
	char buf[32];

	if (t <= 0)
		return json_null();
	ctl_format_time(buf, t);
	return json_string(buf);
}

/* The billed-hour position: per-second billing has none; hourly billing
 * is paid by started hours, so the minute into the current one is when an
 * idle host is cheapest to let go (the pool's hourly_threshold). */
static scale_billing billing_of(const scale_records *r, const char *pool) {
	const scale_pool *p = pool ? scale_policy_find(r->policy, pool) : NULL;
	scale_pool d;

	if (p)
		return p->billing;
	scale_pool_defaults(&d);
	return d.billing;
}

static json_t *row_of(const scale_records *r, const hosts_ctx *x, const scale_host *h, const scale_instance *in) {
	const char *node = h ? h->node_id : NULL;
	const char *pool = h ? h->pool : in->pool;
	time_t launched = h ? h->launch_time : in->launch_time;
	scale_billing b = billing_of(r, pool);
	json_auto_t *status = kv_json(kv_find(r->status, r->n_status, node));
	json_t *applied = json_object_get(status, "applied");
	/* a terminated host runs no more: no uptime, nothing billed */
	bool gone = h && h->state == SCALE_TERMINATED;
	int64_t up = !gone && launched > 0 && r->now >= launched ? r->now - launched : -1;

	if (!in)
		in = instance_find(r, h->id);
	return json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s?, s:s?, s:o, s:o, s:s, s:o, s:i, s:s?, s:O?, s:o, s:o?, s:O?}",
			 "instance_id", h ? h->id : in->id, "node_id", node, "pool", pool, "state",
			 h ? scale_state_to_string(h->state) : "unrecorded", "market",
			 scale_market_to_string(h ? h->market : in->spot ? SCALE_SPOT : SCALE_ON_DEMAND), "type",
			 h ? h->instance_type : in->instance_type, "zone", h ? h->availability_zone : in->availability_zone,
			 "launched", time_or_null(launched), "uptime_seconds", up >= 0 ? json_integer(up) : json_null(),
			 "billing", scale_billing_to_string(b), "billed_minute",
			 b == SCALE_BILLING_HOURLY && up >= 0 ? json_integer(up % 3600 / 60) : json_null(), "jobs",
			 h ? h->jobs : 0, "image", h && h->image_id ? h->image_id : in ? in->image_id : NULL,
			 "config_applied", json_is_string(applied) ? applied : NULL, "in_ec2",
			 r->have_instances ? json_boolean(in != NULL) : json_null(), "hold",
			 hold_of(r, h ? h->id : in->id, h ? h->hold : in->hold), "maintenance", x->maintenance);
}

static int row_cmp(const void *a, const void *b) {
	json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
	const char *px = json_string_value(json_object_get(x, "pool")) ?: "";
	const char *py = json_string_value(json_object_get(y, "pool")) ?: "";
	int c = strcmp(px, py);

	return c ? c : strcmp(json_string_value(json_object_get(x, "instance_id")),
			      json_string_value(json_object_get(y, "instance_id")));
}

static bool in_pool(const hosts_ctx *x, const char *pool) {
	return !x->pool || streq_ptr(pool, x->pool);
}

/* scaler_view_fn: every observed host, then every live instance EC2
 * listed that observe left unrecorded (launched moments ago, or held). */
static void add_row(hosts_ctx *x, json_t *row) {
	if (!row || json_array_append_new(x->rows, row) < 0)
		x->error = -ENOMEM;
}

static void on_view(const scale_records *r, const scale_observed *o, void *userdata) {
	hosts_ctx *x = userdata;
	size_t n;

	for (size_t i = 0; i < o->n_hosts; i++)
		if (in_pool(x, o->hosts[i].pool))
			add_row(x, row_of(r, x, &o->hosts[i], NULL));
	for (size_t i = 0; r->have_instances && i < r->n_instances; i++) {
		const scale_instance *in = &r->instances[i];
		bool known = in->gone;
		for (size_t k = 0; !known && k < o->n_hosts; k++)
			known = streq(o->hosts[k].id, in->id);
		if (!known && in_pool(x, in->pool))
			add_row(x, row_of(r, x, NULL, in));
	}
	/* stable order: by pool, then instance id */
	n = json_array_size(x->rows);
	json_t **v = calloc(n + 1, sizeof *v);
	if (!v) {
		x->error = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(x->rows, i));
	qsort(v, n, sizeof *v, row_cmp);
	json_array_clear(x->rows);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(x->rows, v[i]);
	free(v);
}

/* ---- printing ---- */

static char *str_or(json_t *o, const char *key, const char *none) {
	json_t *v = json_object_get(o, key);
	char buf[32];

	if (json_is_string(v) && json_string_length(v) > 0)
		return strdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(buf, sizeof buf, "%lld", (long long) json_integer_value(v));
		return strdup(buf);
	}
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "true" : "false");
	return strdup(none);
}

static char *uptime_text(json_t *row) {
	json_t *v = json_object_get(row, "uptime_seconds");
	int64_t s = json_integer_value(v);
	char *t = NULL;

	if (!json_is_integer(v))
		return strdup("-");
	if (s >= 86400)
		return asprintf(&t, "%lldd%02lldh", (long long) (s / 86400), (long long) (s % 86400 / 3600)) < 0 ? NULL : t;
	if (s >= 3600)
		return asprintf(&t, "%lldh%02lldm", (long long) (s / 3600), (long long) (s % 3600 / 60)) < 0 ? NULL : t;
	return asprintf(&t, "%lldm%02llds", (long long) (s / 60), (long long) (s % 60)) < 0 ? NULL : t;
}

static char *billed_text(json_t *row) {
	json_t *m = json_object_get(row, "billed_minute");
	char *t = NULL;

	if (!json_is_integer(m))
		return str_or(row, "billing", "-");
	return asprintf(&t, "minute %lld of 60", (long long) json_integer_value(m)) < 0 ? NULL : t;
}

/* "hold by u@h: reason; maintenance by u@h: reason", or "-". */
static char *reason_text(json_t *row) {
	static const char *const kinds[] = { "hold", "maintenance" };
	char *t = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&t, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		json_t *m = json_object_get(row, kinds[i]);
		const char *by = json_string_value(json_object_get(m, "by"));
		const char *why = json_string_value(json_object_get(m, "reason"));
		if (!json_is_object(m))
			continue;
		fprintf(f, "%s%s", ftell(f) > 0 ? "; " : "", kinds[i]);
		if (streq_ptr(json_string_value(json_object_get(m, "source")), "tag"))
			fputs(" (tag)", f);
		if (by)
			fprintf(f, " by %s", by);
		if (why && *why)
			fprintf(f, ": %s", why);
	}
	fclose(f);
	if (t && !*t) {
		free(t);
		return strdup("-");
	}
	return t;
}

static void table_cells(json_t *row, char **c) {
	static const char *const direct[] = { "instance_id", "node_id", "pool", "state", "market", "type", "zone",
					      "launched" };

	for (size_t j = 0; j < ELEMENTSOF(direct); j++)
		c[j] = str_or(row, direct[j], "-");
	c[8] = uptime_text(row);
	c[9] = billed_text(row);
	c[10] = str_or(row, "jobs", "-");
	c[11] = str_or(row, "image", "-");
	c[12] = str_or(row, "config_applied", "-");
	c[13] = reason_text(row);
}

/* The JSON's scalar fields as they are, then the hold's and the
 * maintenance's parts: null is an empty field. */
static void csv_cells(json_t *row, char **c) {
	json_t *hold = json_object_get(row, "hold");

	for (size_t j = 0; j < 15; j++)
		c[j] = str_or(row, csv_header[j], "");
	c[15] = str_or(hold, "by", json_is_object(hold) ? "-" : "");
	c[16] = str_or(hold, "reason", "");
	c[17] = str_or(hold, "since", "");
	c[18] = str_or(json_object_get(row, "maintenance"), "reason", "");
}

/* ---- the command ---- */

static int cmd_hosts(ctl_t *c, ctl_opts *o) {
	_cleanup_(ec2_client_freep) ec2_client *ec2 = NULL;
	_cleanup_free_ char *mkey = keys_one_of(c->prefix, KEYS_MAINTENANCE);
	json_auto_t *rows = json_array(), *maint = NULL;
	/* the leader's cluster name: its tag on every instance */
	const char *slash = strrchr(c->prefix, '/');
	const char *cluster = c->cluster && *c->cluster ? c->cluster : slash ? slash + 1 : c->prefix;
	hosts_ctx x = { .pool = o->pool, .rows = rows };
	char why[512];
	int r;

	if (!rows || !mkey)
		return 1;
	if (o->pool && !ctl_id_valid(o->pool))
		return ctl_usage_error("bad --pool '%s'", o->pool);
	if ((r = ctl_ec2_client(c, etcd_client_event(c->etcd), &ec2)) != 0)
		return r;
	/* The cluster-wide marker (observe only says whether it is there). */
	if (ctl_read_marker(c, mkey, &maint) < 0)
		return 1;
	x.maintenance = maint ? marker_of(maint, NULL, 0, NULL) : NULL;
	r = scaler_view_once(c->etcd, ec2, c->prefix, cluster, time(NULL), 0, on_view, &x, why);
	json_decref(x.maintenance);
	if (r == -EINVAL && why[0]) {
		fprintf(stderr, "corralctl: %s\n", why);
		return 1;
	}
	if (r < 0 || x.error < 0) {
		fprintf(stderr, "corralctl: hosts: %s\n", why[0] ? why : strerror(-(r < 0 ? r : x.error)));
		return 1;
	}
	if (!ec2)
		fprintf(stderr, "corralctl: note: EC2 was not asked (no region: --region, $AWS_REGION); the rows are "
				"what etcd holds\n");
	if (c->format == FORMAT_JSON)
		return ctl_print_json_sorted(rows);
	if (c->format == FORMAT_CSV)
		return ctl_print_array(rows, csv_header, CSV_COLUMNS, csv_cells, true);
	return ctl_print_array(rows, table_header, HOSTS_COLUMNS, table_cells, false);
}

const ctl_verb ctl_hosts_verbs[] = {
	{ .name = "hosts", .args = "[--pool P]",
	  .help = "the fleet, one row per host, as the leader sees it (etcd's records, and EC2\n"
		  "when a region is configured): instance, node, pool, state, market, type, zone,\n"
		  "launched, uptime, billed-hour position, jobs, image, config applied, hold or\n"
		  "maintenance reason; -o table, json or csv",
	  .options = CTL_OPT_POOL, .flags = CTL_VERB_ETCD | CTL_VERB_CSV, .run = cmd_hosts },
	{},
};
