/* scale.c — corralctl's scaling commands: the policy (get/set with a
 * compare-and-set on its mod revision), manual sizes, autoscale (and its
 * local dry-run plan), cluster stop/start, maintenance, holds, load and
 * queue reports, the status summary, and `scale simulate`, which replays a
 * load trace through scale_decide() against a simulated cloud.
 *
 * The keys are the contract with the leader's scaling loop (docs/scale.md,
 * section corralctl): this file writes only scale/policy, scale/trigger,
 * scale/stop, scale/queue/<pool>, maintenance, holds/<id> and
 * load/<node-id>; host records, state and metrics are the leader's. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "esc.h"
#include "log.h"
#include "scale-observe.h"
#include "scale.h"
#include "scaler.h"

/* ---- small helpers ------------------------------------------------------------ */

static void format_time(char buf[32], time_t t) {
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%lld", (long long) t);
}

/* Who did it, for the records an operator leaves: "user@host". */
static char *who(void) {
	char host[256] = "";
	const char *user = getenv("USER");
	char *out;

	if (!user || !*user)
		user = getenv("LOGNAME");
	if (gethostname(host, sizeof host - 1) < 0 || !host[0])
		strcpy(host, "localhost");
	if (asprintf(&out, "%s@%s", user && *user ? user : "unknown", host) < 0)
		return NULL;
	return out;
}

/* {"since": now, "by": who, "reason": text|null} as compact JSON text. */
static char *marker_json(const char *reason) {
	_cleanup_free_ char *by = who();
	char now[32];

	format_time(now, time(NULL));
	json_auto_t *o = json_pack("{s:s, s:s, s:s?}", "since", now, "by", by ? by : "unknown", "reason", reason);
	return o ? json_dumps(o, JSON_COMPACT) : NULL;
}

static int parse_int(const char *s, long min, long max, long *out) {
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double min, double max, double *out) {
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- etcd ---------------------------------------------------------------------- */

static char *key_of(ctl_t *c, const char *suffix) {
	char *k;

	if (asprintf(&k, "%s/%s", c->prefix, suffix) < 0)
		return NULL;
	return k;
}

/* The value of <prefix>/<suffix> (*value NULL when absent) and its mod
 * revision (0 when absent); *revision (may be NULL) the store's revision.
 * 0, -ENOMEM, -EIO (printed). */
static int get_key(ctl_t *c, const char *suffix, char **value, int64_t *mod_rev, int64_t *revision) {
	_cleanup_free_ char *key = key_of(c, suffix);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	if (etcd_range(c->etcd, &(etcd_range_req){ .key = key }, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (etcd_wait(c->etcd, &s, &resp) < 0) {
		ctl_fail(resp);
		return -EIO;
	}
	*value = NULL;
	if (mod_rev)
		*mod_rev = 0;
	if (revision)
		*revision = resp->header.revision;
	if (resp->n_kvs == 0)
		return 0;
	*value = strndup(resp->kvs[0].value ? resp->kvs[0].value : "", resp->kvs[0].value_len);
	if (!*value)
		return -ENOMEM;
	if (mod_rev)
		*mod_rev = resp->kvs[0].mod_revision;
	return 0;
}

/* <prefix>/<dir>/ as {rest-of-key: value text}. */
static int read_raw(ctl_t *c, const char *dir, json_t **out) {
	return ctl_read_dir(c, dir, false, out);
}

/* What a write does, said once: dry run prints it and stops; -v logs it. */
static bool announce(ctl_t *c, const char *op, const char *key, const char *value) {
	if (c->dry_run) {
		if (c->format != FORMAT_JSON)
			printf("dry run: would %s %s%s%s\n", op, key, value ? " = " : "", value ? value : "");
		return false;
	}
	if (c->verbosity >= CTL_VERBOSE)
		fprintf(stderr, "corralctl: %s %s%s%s\n", op, key, value ? " = " : "", value ? value : "");
	return true;
}

/* Puts <prefix>/<suffix> = value. With expect_mod >= 0, only if the key is
 * still at that mod revision (0: still absent): -ESTALE when it is not.
 * Dry run: says what it would write, writes nothing. 0, -ESTALE, -EIO
 * (printed), -ENOMEM. */
static int put_key(ctl_t *c, const char *suffix, const char *value, int64_t expect_mod) {
	_cleanup_free_ char *key = key_of(c, suffix);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	if (!announce(c, "put", key, value))
		return 0;
	etcd_put_req put = { .key = key, .value = value, .value_len = strlen(value) };
	if (expect_mod < 0) {
		if (etcd_put(c->etcd, &put, etcd_sync_cb, &s, NULL) < 0)
			return -ENOMEM;
	} else {
		etcd_compare cmp = { .key = key, .result = ETCD_CMP_EQUAL,
				     .target = expect_mod == 0 ? ETCD_CMP_CREATE : ETCD_CMP_MOD, .number = expect_mod };
		etcd_op op = { .type = ETCD_OP_PUT, .put = put };
		etcd_txn_req txn = { .compare = &cmp, .n_compare = 1, .success = &op, .n_success = 1 };
		if (etcd_txn(c->etcd, &txn, etcd_sync_cb, &s, NULL) < 0)
			return -ENOMEM;
	}
	if (etcd_wait(c->etcd, &s, &resp) < 0) {
		ctl_fail(resp);
		return -EIO;
	}
	if (expect_mod >= 0 && !resp->succeeded)
		return -ESTALE;
	return 0;
}

/* Deletes <prefix>/<suffix>; 1 if it existed, 0 if not (dry run: 0). */
static int delete_key(ctl_t *c, const char *suffix) {
	_cleanup_free_ char *key = key_of(c, suffix);
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};

	if (!key)
		return -ENOMEM;
	if (!announce(c, "delete", key, NULL))
		return 0;
	if (etcd_delete(c->etcd, &(etcd_delete_req){ .key = key }, etcd_sync_cb, &s, NULL) < 0)
		return -ENOMEM;
	if (etcd_wait(c->etcd, &s, &resp) < 0) {
		ctl_fail(resp);
		return -EIO;
	}
	return resp->deleted > 0;
}

/* JSON output of a change for -o json: {"op", "key", "value", "dry_run"}. */
static int report(ctl_t *c, const char *op, const char *suffix, const char *value, const char *text) {
	if (c->format == FORMAT_JSON) {
		_cleanup_free_ char *key = key_of(c, suffix);
		json_auto_t *v = NULL;
		if (value && !(v = json_loads(value, JSON_DECODE_ANY, NULL)))
			v = json_string(value);
		json_auto_t *o = json_pack("{s:s, s:s?, s:O?, s:b}", "op", op, "key", key, "value", v, "dry_run",
					   c->dry_run);
		return o ? ctl_print_json(o) : 1;
	}
	if (text && !c->dry_run)
		printf("%s\n", text);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- what etcd holds ------------------------------------------------------------ */

typedef struct view {
	int64_t revision;               /* the store's, at the policy read */
	char *policy_text;              /* NULL: absent */
	int64_t policy_mod;
	json_t *policy_doc;             /* parsed, or NULL */
	scale_policy policy;
	bool policy_ok;
	scale_error policy_err;
	json_t *hosts;                  /* {id: record} */
	json_t *holds;                  /* {id: record} */
	json_t *load;                   /* {node: record} */
	json_t *nodes;                  /* {node: record}: registered corrald nodes */
	json_t *queues;                 /* {pool: "text"} */
	json_t *maintenance;            /* record or NULL */
	json_t *stop;                   /* record or NULL */
	json_t *state, *metrics;        /* as the leader wrote them, or NULL */
} view;

static void view_done(view *v) {
	free(v->policy_text);
	json_decref(v->policy_doc);
	if (v->policy_ok)
		scale_policy_done(&v->policy);
	json_decref(v->hosts);
	json_decref(v->holds);
	json_decref(v->load);
	json_decref(v->nodes);
	json_decref(v->queues);
	json_decref(v->maintenance);
	json_decref(v->stop);
	json_decref(v->state);
	json_decref(v->metrics);
}

/* A marker key's JSON; text that is not JSON is kept as {"value": text}
 * (present is present, whatever it holds). */
static json_t *marker_parse(const char *text) {
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);

	if (!j)
		j = json_pack("{s:s}", "value", text);
	return j;
}

static int read_marker(ctl_t *c, const char *suffix, json_t **out) {
	_cleanup_free_ char *text = NULL;
	int r = get_key(c, suffix, &text, NULL, NULL);

	if (r < 0)
		return r;
	*out = text ? marker_parse(text) : NULL;
	return 0;
}

static int view_read(ctl_t *c, view *v) {
	int r;

	r = get_key(c, "scale/policy", &v->policy_text, &v->policy_mod, &v->revision);
	if (r < 0)
		return r;
	if (v->policy_text) {
		v->policy_doc = json_loads(v->policy_text, JSON_REJECT_DUPLICATES, NULL);
		if (!v->policy_doc)
			snprintf(v->policy_err.message, sizeof v->policy_err.message, "scale/policy: not JSON");
		else
			v->policy_ok = scale_policy_from_json(v->policy_doc, &v->policy, &v->policy_err) == 0;
	}
	if ((r = ctl_read_records(c, "scale/hosts", &v->hosts)) < 0 ||
	    (r = ctl_read_records(c, "holds", &v->holds)) < 0 || (r = ctl_read_records(c, "load", &v->load)) < 0 ||
	    (r = ctl_read_records(c, "nodes", &v->nodes)) < 0 ||
	    (r = read_raw(c, "scale/queue", &v->queues)) < 0 || (r = read_marker(c, "maintenance", &v->maintenance)) < 0 ||
	    (r = read_marker(c, "scale/stop", &v->stop)) < 0 || (r = read_marker(c, "scale/state", &v->state)) < 0 ||
	    (r = read_marker(c, "scale/metrics", &v->metrics)) < 0)
		return r;
	return 0;
}

static const char *host_state(json_t *rec) {
	return json_string_value(json_object_get(rec, "state"));
}

static bool host_held(view *v, const char *id, json_t *rec) {
	return json_is_true(json_object_get(rec, "hold")) || json_object_get(v->holds, id);
}

/* Host counts of one pool by state name; *winding (may be NULL): the
 * draining ones whose node has not finished its wind-down. */
static void count_hosts(view *v, const char *pool, int counts[_SCALE_STATE_MAX], int *winding) {
	const char *id;
	json_t *rec;

	memset(counts, 0, sizeof(int) * _SCALE_STATE_MAX);
	if (winding)
		*winding = 0;
	json_object_foreach(v->hosts, id, rec) {
		scale_state s;
		if (!streq_ptr(json_string_value(json_object_get(rec, "pool")), pool) || !host_state(rec) ||
		    scale_state_from_string(host_state(rec), &s) < 0)
			continue;
		counts[s]++;
		if (winding)
			*winding += json_is_true(json_object_get(rec, "winding_down"));
	}
}

/* The metrics the leader published, for pool: {"pools": {pool: ...}} as
 * src/scaler writes them ({"metrics": ...} or bare tolerated). */
static json_t *pool_metrics(view *v, const char *pool) {
	json_t *m = json_object_get(v->metrics, "pools");

	if (!m)
		m = json_object_get(v->metrics, "metrics");
	return json_object_get(m ? m : v->metrics, pool);
}

/* ---- status summary ------------------------------------------------------------- */

int ctl_scale_summary(ctl_t *c, json_t **out) {
	_cleanup_(view_done) view v = {};
	int r = view_read(c, &v);

	if (r < 0)
		return r;
	json_auto_t *pools = json_object(), *holds = json_array();
	if (!pools || !holds)
		return -ENOMEM;
	for (size_t i = 0; v.policy_ok && i < v.policy.n_pools; i++) {
		const scale_pool *p = &v.policy.pools[i];
		int counts[_SCALE_STATE_MAX];
		json_t *hosts = json_object(), *m = pool_metrics(&v, p->name);

		int winding;
		count_hosts(&v, p->name, counts, &winding);
		for (int s = 0; s < _SCALE_STATE_MAX; s++)
			json_object_set_new(hosts, scale_state_to_string(s), json_integer(counts[s]));
		json_object_set_new(hosts, "winding_down", json_integer(winding));
		json_object_set_new(pools, p->name,
				    json_pack("{s:o, s:i, s:i, s:b, s:s, s:O?, s:o}", "desired",
					      p->desired >= 0 ? json_integer(p->desired) : json_null(), "min", p->min,
					      "max", p->max, "enabled", p->enabled, "policy", scale_kind_to_string(p->kind),
					      "desired_hosts", json_object_get(m, "desired_hosts"), "hosts", hosts));
	}
	const char *id;
	json_t *rec;
	json_object_foreach(v.holds, id, rec)
		json_array_append_new(holds, json_string(id));
	json_object_foreach(v.hosts, id, rec)
		if (json_is_true(json_object_get(rec, "hold")) && !json_object_get(v.holds, id))
			json_array_append_new(holds, json_string(id));
	json_t *perr = NULL;
	if (v.policy_text && !v.policy_ok)
		perr = json_string(v.policy_err.message);
	*out = json_pack("{s:b, s:o?, s:o, s:O?, s:O?, s:o}", "policy", v.policy_text != NULL, "policy_error", perr,
			 "pools", json_incref(pools), "maintenance", v.maintenance, "stop", v.stop, "holds",
			 json_incref(holds));
	return *out ? 0 : -ENOMEM;
}

static const char *marker_text(json_t *m, char *buf, size_t size) {
	const char *by = json_string_value(json_object_get(m, "by"));
	const char *since = json_string_value(json_object_get(m, "since"));
	const char *reason = json_string_value(json_object_get(m, "reason"));

	if (!json_is_object(m))
		return "off";
	snprintf(buf, size, "ON since %s by %s%s%s", since ? since : "?", by ? by : "?", reason ? ": " : "",
		 reason ? reason : "");
	return buf;
}

void ctl_scale_summary_print(json_t *sum, FILE *f) {
	char mbuf[300], sbuf[300];
	const char *name;
	json_t *p, *h;
	size_t i;

	if (!sum)
		return;
	fprintf(f, "scaling: maintenance %s; cluster stop %s; held:",
		marker_text(json_object_get(sum, "maintenance"), mbuf, sizeof mbuf),
		marker_text(json_object_get(sum, "stop"), sbuf, sizeof sbuf));
	json_array_foreach(json_object_get(sum, "holds"), i, h)
		fprintf(f, " %s", json_string_value(h));
	fprintf(f, "%s\n", json_array_size(json_object_get(sum, "holds")) ? "" : " none");
	if (json_is_false(json_object_get(sum, "policy")))
		fprintf(f, "scaling policy: (none)\n");
	if (json_is_string(json_object_get(sum, "policy_error")))
		fprintf(f, "scaling policy: INVALID: %s\n", json_string_value(json_object_get(sum, "policy_error")));
	json_object_foreach(json_object_get(sum, "pools"), name, p) {
		json_t *d = json_object_get(p, "desired"), *dh = json_object_get(p, "desired_hosts");
		json_t *hosts = json_object_get(p, "hosts");
		char desired[64];

		if (json_is_integer(d))
			snprintf(desired, sizeof desired, "%" JSON_INTEGER_FORMAT " (manual)", json_integer_value(d));
		else if (json_is_integer(dh))
			snprintf(desired, sizeof desired, "%" JSON_INTEGER_FORMAT " (%s)", json_integer_value(dh),
				 json_string_value(json_object_get(p, "policy")));
		else
			snprintf(desired, sizeof desired, "? (%s, no decision yet)",
				 json_string_value(json_object_get(p, "policy")));
		fprintf(f, "pool %s: desired %s, min %" JSON_INTEGER_FORMAT ", max %" JSON_INTEGER_FORMAT "%s; hosts:",
			name, desired, json_integer_value(json_object_get(p, "min")),
			json_integer_value(json_object_get(p, "max")),
			json_is_false(json_object_get(p, "enabled")) ? ", disabled" : "");
		bool any = false;
		for (int s = 0; s < _SCALE_STATE_MAX; s++) {
			json_int_t n = json_integer_value(json_object_get(hosts, scale_state_to_string(s)));
			if (n > 0) {
				fprintf(f, "%s %" JSON_INTEGER_FORMAT " %s", any ? "," : "", n, scale_state_to_string(s));
				any = true;
			}
			json_int_t w = json_integer_value(json_object_get(hosts, "winding_down"));
			if (s == SCALE_DRAINING && n > 0 && w > 0)
				fprintf(f, " (%" JSON_INTEGER_FORMAT " winding down)", w);
		}
		fprintf(f, "%s\n", any ? "" : " none");
	}
}

/* The summary before and after a change, on stderr (not with -q). */
static void log_summary(ctl_t *c, const char *when) {
	json_auto_t *sum = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (c->verbosity <= CTL_QUIET || ctl_scale_summary(c, &sum) < 0)
		return;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return;
	ctl_scale_summary_print(sum, f);
	fclose(f);
	/* one line: the log is for reading later, next to other commands' */
	for (char *p = text; p && *p; p++)
		if (*p == '\n')
			*p = p[1] ? ' ' : '\0';
	fprintf(stderr, "corralctl: %s: %s\n", when, text ? text : "");
}

/* ---- options ---------------------------------------------------------------------- */

typedef struct opts {
	long wait;                      /* -w seconds, -1: none */
	const char *pool;
	const char *reason;
	long long revision;             /* --revision, -1: none */
	const char *node;
	long jobs, capacity;            /* -1: not given */
	double memory;                  /* -1: not given */
	char **pos;                     /* positional arguments */
	int n_pos;
} opts;

static int parse_opts(ctl_t *c, int argc, char **argv, opts *o) {
	enum { ARG_POOL = 0x100, ARG_REASON, ARG_REVISION, ARG_NODE, ARG_JOBS, ARG_CAPACITY, ARG_MEMORY };
	static const struct option options[] = {
		{ "wait", required_argument, NULL, 'w' },   { "force", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },      { "pool", required_argument, NULL, ARG_POOL },
		{ "reason", required_argument, NULL, ARG_REASON }, { "revision", required_argument, NULL, ARG_REVISION },
		{ "node", required_argument, NULL, ARG_NODE }, { "jobs", required_argument, NULL, ARG_JOBS },
		{ "capacity", required_argument, NULL, ARG_CAPACITY }, { "memory", required_argument, NULL, ARG_MEMORY },
		{},
	};
	long v;
	int opt;

	*o = (opts){ .wait = -1, .revision = -1, .jobs = -1, .capacity = -1, .memory = -1 };
	optind = 0;     /* GNU: start over, permuting: options may follow the arguments */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "w:fn", options, NULL)) >= 0) {
		switch (opt) {
		case 'w':
			if (parse_int(optarg, 0, 86400 * 7, &o->wait) < 0)
				return ctl_usage_error("bad -w '%s': seconds, 0..604800", optarg);
			break;
		case 'f':
			c->force = true;
			break;
		case 'n':
			c->dry_run = true;
			break;
		case ARG_POOL:
			if (!ctl_segment_valid(optarg))
				return ctl_usage_error("bad --pool '%s'", optarg);
			o->pool = optarg;
			break;
		case ARG_REASON:
			o->reason = optarg;
			break;
		case ARG_REVISION:
			if (parse_int(optarg, 0, LONG_MAX, &v) < 0)
				return ctl_usage_error("bad --revision '%s'", optarg);
			o->revision = v;
			break;
		case ARG_NODE:
			if (!ctl_segment_valid(optarg))
				return ctl_usage_error("bad --node '%s'", optarg);
			o->node = optarg;
			break;
		case ARG_JOBS:
			if (parse_int(optarg, 0, 1000000, &o->jobs) < 0)
				return ctl_usage_error("bad --jobs '%s': 0..1000000", optarg);
			break;
		case ARG_CAPACITY:
			if (parse_int(optarg, 0, 1000000, &o->capacity) < 0)
				return ctl_usage_error("bad --capacity '%s': 0..1000000", optarg);
			break;
		case ARG_MEMORY:
			if (parse_double(optarg, 0, 1, &o->memory) < 0)
				return ctl_usage_error("bad --memory '%s': a fraction 0..1", optarg);
			break;
		default:
			return ctl_usage_error("%s: unknown option or missing value '%s'", argv[0],
					       argv[optind - 1] ? argv[optind - 1] : "");
		}
	}
	o->pos = argv + optind;
	o->n_pos = argc - optind;
	return 0;
}

/* ---- scale policy ----------------------------------------------------------------- */

static int policy_get(ctl_t *c, opts *o) {
	_cleanup_free_ char *text = NULL, *key = key_of(c, "scale/policy");
	int64_t mod = 0;
	json_error_t jerr;

	if (o->n_pos != 2)
		return ctl_usage_error("%s", "usage: scale policy get");
	if (!key || get_key(c, "scale/policy", &text, &mod, NULL) < 0)
		return 1;
	if (!text) {
		fprintf(stderr, "corralctl: no scaling policy at %s (set one: corralctl scale policy set FILE)\n", key);
		return 1;
	}
	json_auto_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s holds no JSON: %s\n", key, ESC_JERR(&jerr));
		return 1;
	}
	/* the revision is what `policy set --revision` compares with */
	if (c->verbosity > CTL_QUIET)
		fprintf(stderr, "corralctl: %s at revision %" PRId64 "\n", key, mod);
	return ctl_print_json(doc);
}

static int policy_invalid(const scale_error *err) {
	fprintf(stderr, "corralctl: invalid policy: %s\n", err->message[0] ? err->message : "not a policy");
	return 2;
}

static int stale(ctl_t *c, int64_t expected) {
	_cleanup_free_ char *key = key_of(c, "scale/policy"), *text = NULL;
	int64_t now = 0;

	(void) get_key(c, "scale/policy", &text, &now, NULL);
	fprintf(stderr,
		"corralctl: %s was changed by someone else: it is at revision %" PRId64 ", expected %" PRId64
		"; nothing written. Read it again (corralctl scale policy get) and retry.\n",
		key ? key : "scale/policy", now, expected);
	return 1;
}

static int policy_set(ctl_t *c, opts *o) {
	_cleanup_free_ char *cur = NULL, *text = NULL;
	scale_policy p = {};
	scale_error err = {};
	json_error_t jerr;
	int64_t mod = 0;
	int r;

	if (o->n_pos != 3)
		return ctl_usage_error("%s", "usage: scale policy set FILE|- [--revision R]");
	const char *file = o->pos[2];
	json_auto_t *doc = streq(file, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
					    : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s:%d:%d: %s\n", streq(file, "-") ? "<stdin>" : file, jerr.line, jerr.column,
			ESC_JERR(&jerr));
		return 2;
	}
	if (scale_policy_from_json(doc, &p, &err) < 0)
		return policy_invalid(&err);
	scale_policy_done(&p);
	text = json_dumps(doc, JSON_INDENT(2));
	if (!text)
		return 1;

	log_summary(c, "before");
	if (get_key(c, "scale/policy", &cur, &mod, NULL) < 0)
		return 1;
	int64_t expect = o->revision >= 0 ? o->revision : mod;
	if (expect != mod)
		return stale(c, expect);
	if (cur && streq(cur, text)) {
		if (c->format != FORMAT_JSON)
			printf("no change\n");
		return report(c, "none", "scale/policy", NULL, NULL);
	}
	r = put_key(c, "scale/policy", text, expect);
	if (r == -ESTALE)
		return stale(c, expect);
	if (r < 0)
		return 1;
	r = report(c, "put", "scale/policy", text, "policy written");
	log_summary(c, "after");
	return r;
}

/* ---- scale to / up / down / auto ----------------------------------------------------- */

typedef enum { EDIT_TO, EDIT_UP, EDIT_DOWN, EDIT_AUTO } edit_kind;

static const scale_pool *pick_pool(view *v, const char *name) {
	if (name) {
		const scale_pool *p = scale_policy_find(&v->policy, name);
		if (!p)
			ctl_usage_error("no pool '%s' in the scaling policy", name);
		return p;
	}
	if (v->policy.n_pools == 1)
		return &v->policy.pools[0];
	ctl_usage_error("the policy has %zu pools: name one with --pool", v->policy.n_pools);
	return NULL;
}

/* ready + launching hosts of the pool, as the records say */
static int fleet_size(view *v, const char *pool, int *ready, int *launching) {
	int counts[_SCALE_STATE_MAX];

	count_hosts(v, pool, counts, NULL);
	if (ready)
		*ready = counts[SCALE_READY];
	if (launching)
		*launching = counts[SCALE_LAUNCHING];
	return counts[SCALE_READY] + counts[SCALE_LAUNCHING];
}

typedef bool (*wait_pred)(view *v, const void *userdata);

static uint64_t now_usec(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

typedef struct waker {
	bool woke, lost;
} waker;

static void on_change(etcd_watch *w, const etcd_watch_msg *m, void *userdata) {
	waker *k = userdata;

	if (m->type == ETCD_WATCH_EVENTS)
		k->woke = true;
	else if (m->type == ETCD_WATCH_COMPACTED || m->type == ETCD_WATCH_CANCELED)
		k->woke = k->lost = true;
}

/* Re-reads the records whenever something under the prefix changes (a
 * watch from the revision read) until pred holds or seconds pass; every
 * 5 s regardless, in case the watch is stuck. 0: reached, -ETIMEDOUT, or
 * a read error (printed). */
static int wait_for(ctl_t *c, long seconds, wait_pred pred, const void *userdata) {
	_cleanup_(etcd_watch_freep) etcd_watch *w = NULL;
	_cleanup_free_ char *key = NULL;
	uint64_t deadline = now_usec() + (uint64_t) seconds * USEC_PER_SEC;
	waker k = {};
	int r;

	if (asprintf(&key, "%s/", c->prefix) < 0)
		return -ENOMEM;
	for (;;) {
		_cleanup_(view_done) view v = {};
		r = view_read(c, &v);
		if (r < 0)
			return r;
		if (pred(&v, userdata))
			return 0;
		if (k.lost)
			w = etcd_watch_free(w);
		if (!w) {
			k = (waker){};
			etcd_watch_req req = { .key = key, .prefix = true, .start_revision = v.revision + 1 };
			r = etcd_watch_new(&w, c->etcd, &req, on_change, &k);
			if (r < 0)
				return r;
		}
		k.woke = false;
		uint64_t until = now_usec() + 5 * USEC_PER_SEC;
		while (!k.woke) {
			uint64_t n = now_usec();
			if (n >= deadline)
				return -ETIMEDOUT;
			if (n >= until)
				break;
			uint64_t step = (deadline < until ? deadline : until) - n;
			r = sd_event_run(c->event, step);
			if (r < 0)
				return r;
		}
	}
}

typedef struct size_goal {
	const char *pool;
	int hosts;
} size_goal;

static bool reached_size(view *v, const void *userdata) {
	const size_goal *g = userdata;
	int ready, launching;

	fleet_size(v, g->pool, &ready, &launching);
	return ready == g->hosts && launching == 0;
}

static int scale_edit(ctl_t *c, opts *o, edit_kind kind) {
	long n = -1;
	char pool[256] = "";
	int goal = -1;

	if (kind == EDIT_TO) {
		if (o->n_pos != 2 || parse_int(o->pos[1], 0, 100000, &n) < 0)
			return ctl_usage_error("%s", "usage: scale to N [--pool P] (N: 0..100000)");
	} else if (o->n_pos != 1)
		return ctl_usage_error("usage: scale %s [-w S] [--pool P]", o->pos[0]);

	log_summary(c, "before");
	/* Read, edit, compare-and-set; a concurrent writer makes us start over
	 * from what it wrote, so both changes land. */
	for (int attempt = 0;; attempt++) {
		_cleanup_(view_done) view v = {};
		_cleanup_free_ char *text = NULL;
		_cleanup_free_ char *key = key_of(c, "scale/policy");
		scale_policy check = {};
		scale_error err = {};
		char msg[512] = "";

		if (view_read(c, &v) < 0 || !key)
			return 1;
		if (!v.policy_text) {
			fprintf(stderr, "corralctl: no scaling policy at %s (set one: corralctl scale policy set FILE)\n",
				key);
			return 1;
		}
		if (!v.policy_ok) {
			fprintf(stderr, "corralctl: the stored policy is invalid (%s): fix it with scale policy set\n",
				v.policy_err.message);
			return 1;
		}
		const scale_pool *p = pick_pool(&v, o->pool);
		if (!p)
			return 2;
		snprintf(pool, sizeof pool, "%s", p->name);
		json_t *pj = json_object_get(json_object_get(v.policy_doc, "pools"), p->name);
		if (!json_is_object(pj))
			return 1;
		if (kind == EDIT_UP || kind == EDIT_DOWN) {
			/* From the override when one is set (what the leader aims at),
			 * else from the fleet as it is. */
			long base = p->desired >= 0 ? p->desired : fleet_size(&v, p->name, NULL, NULL);
			n = base + (kind == EDIT_UP ? 1 : -1);
			if (n < 0) {
				fprintf(stderr, "corralctl: pool %s is already at 0 hosts\n", p->name);
				return 2;
			}
		}
		if (kind == EDIT_AUTO) {
			json_object_del(pj, "desired");
			snprintf(msg, sizeof msg, "pool %s: override cleared, the %s policy decides", p->name,
				 scale_kind_to_string(p->kind));
		} else {
			if (n > p->max || n < p->min) {
				bool above = n > p->max;
				if (!c->force) {
					fprintf(stderr,
						"corralctl: %ld is %s pool %s's %s (%d); -f sets %s to %ld as well\n", n,
						above ? "above" : "below", p->name, above ? "max" : "min",
						above ? p->max : p->min, above ? "max" : "min", n);
					return 2;
				}
				json_object_set_new(pj, above ? "max" : "min", json_integer(n));
			}
			json_object_set_new(pj, "desired", json_integer(n));
			char was[32] = "automatic";
			if (p->desired >= 0)
				snprintf(was, sizeof was, "%d", p->desired);
			snprintf(msg, sizeof msg, "pool %s: desired %ld (was %s)%s", p->name, n, was,
				 n > p->max || n < p->min ? ", bounds widened" : "");
			goal = (int) n;
		}
		if (scale_policy_from_json(v.policy_doc, &check, &err) < 0)
			return policy_invalid(&err);
		scale_policy_done(&check);
		text = json_dumps(v.policy_doc, JSON_INDENT(2));
		if (!text)
			return 1;
		int r = put_key(c, "scale/policy", text, v.policy_mod);
		if (r == -ESTALE && attempt < 5) {
			if (c->verbosity >= CTL_VERBOSE)
				fprintf(stderr, "corralctl: %s changed meanwhile; again\n", key);
			continue;
		}
		if (r == -ESTALE)
			return stale(c, v.policy_mod);
		if (r < 0)
			return 1;
		r = report(c, "put", "scale/policy", text, msg);
		if (r != 0)
			return r;
		break;
	}
	log_summary(c, "after");
	if (o->wait >= 0 && goal >= 0 && !c->dry_run) {
		size_goal g = { .pool = pool, .hosts = goal };
		int r = wait_for(c, o->wait, reached_size, &g);
		if (r == -ETIMEDOUT) {
			fprintf(stderr, "corralctl: pool %s did not reach %d ready hosts within %lds\n", pool, goal, o->wait);
			return 1;
		}
		if (r < 0) {
			if (r != -EIO)
				fprintf(stderr, "corralctl: waiting for pool %s: %s\n", pool, strerror(-r));
			return 1;
		}
		if (c->format != FORMAT_JSON)
			printf("pool %s: %d ready hosts\n", pool, goal);
	}
	return 0;
}

static int queue_set(ctl_t *c, opts *o) {
	_cleanup_free_ char *suffix = NULL;
	char value[32];
	long n;

	if (o->n_pos != 4 || !streq(o->pos[1], "set"))
		return ctl_usage_error("%s", "usage: scale queue set POOL N");
	if (!ctl_segment_valid(o->pos[2]))
		return ctl_usage_error("bad pool name '%s'", o->pos[2]);
	if (parse_int(o->pos[3], 0, 100000000, &n) < 0)
		return ctl_usage_error("bad queue length '%s': 0..100000000", o->pos[3]);
	if (asprintf(&suffix, "scale/queue/%s", o->pos[2]) < 0)
		return 1;
	snprintf(value, sizeof value, "%ld", n);
	log_summary(c, "before");
	if (put_key(c, suffix, value, -1) < 0)
		return 1;
	char msg[300];
	snprintf(msg, sizeof msg, "pool %s: queue %ld", o->pos[2], n);
	int r = report(c, "put", suffix, value, msg);
	log_summary(c, "after");
	return r;
}

/* ---- autoscale ------------------------------------------------------------------ */

/* The leader's decision from what etcd holds now: the same read (one txn,
 * one revision) and the same observe and decide as the leader (scaler.h,
 * scale-observe.h); EC2 is not asked, so records are taken as they are. */
static int autoscale_plan(ctl_t *c) {
	_cleanup_(scaler_snapshot_done) scaler_snapshot snap = {};
	_cleanup_(scale_observed_done) scale_observed obs = {};
	scale_error err = {};
	scale_output out = {};
	int r;

	r = scaler_snapshot_read(c->etcd, c->prefix, &snap, &err);
	if (r == -EINVAL && snap.response) {
		fprintf(stderr, "corralctl: the stored policy is invalid: %s\n", err.message);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "corralctl: etcd: %s\n", err.message[0] ? err.message : strerror(-r));
		return 1;
	}
	if (!snap.have_policy) {
		fprintf(stderr, "corralctl: no scaling policy at %s/scale/policy: nothing to decide\n", c->prefix);
		return 1;
	}
	snap.records.cluster = strrchr(c->prefix, '/') + 1;
	snap.records.now = time(NULL);
	r = scale_observe(&snap.records, &obs);
	for (size_t i = 0; r >= 0 && i < obs.n_errors; i++)
		fprintf(stderr, "corralctl: warning: %s\n", obs.errors[i]);
	if (r >= 0)
		r = scale_decide(&obs.input, &out);
	if (r < 0) {
		fprintf(stderr, "corralctl: the decision failed: %s\n", strerror(-r));
		return 1;
	}
	static const char note[] = "EC2 spot prices and reservations are not in etcd: this plan assumes none "
				   "(no spot placement, no reservation coverage); the leader's may differ there";
	if (c->format == FORMAT_JSON) {
		json_auto_t *o = scale_output_to_json(&out);
		scale_output_done(&out);
		if (!o)
			return 1;
		json_object_set_new(o, "dry_run", json_true());
		json_object_set_new(o, "revision", json_integer(snap.revision));
		json_object_set_new(o, "note", json_string(note));
		return ctl_print_json(o);
	}
	_cleanup_free_ char *plan = scale_plan_format(&out);
	scale_output_done(&out);
	if (!plan)
		return 1;
	printf("dry run: the leader's decision as etcd holds it at revision %" PRId64 "; nothing written.\n"
	       "note: %s.\n%s",
	       snap.revision, note, plan);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_autoscale(ctl_t *c, opts *o) {
	_cleanup_free_ char *value = NULL;

	if (o->n_pos != 0)
		return ctl_usage_error("%s", "autoscale takes no arguments");
	if (c->dry_run)
		return autoscale_plan(c);
	value = marker_json(o->reason);
	if (!value)
		return 1;
	log_summary(c, "before");
	if (put_key(c, "scale/trigger", value, -1) < 0)
		return 1;
	int r = report(c, "put", "scale/trigger", value, "asked the leader to decide now");
	log_summary(c, "after");
	return r;
}

/* ---- cluster, maintenance, holds, load ---------------------------------------------- */

static bool all_stopped(view *v, const void *userdata) {
	const char *id;
	json_t *rec;

	json_object_foreach(v->hosts, id, rec) {
		const char *s = host_state(rec);
		if (host_held(v, id, rec) || !s)
			continue;
		if (!streq(s, "terminating") && !streq(s, "terminated"))
			return false;
	}
	return true;
}

/* Every enabled pool has at least its min (or its override) ready. */
static bool all_started(view *v, const void *userdata) {
	if (!v->policy_ok)
		return true;
	for (size_t i = 0; i < v->policy.n_pools; i++) {
		const scale_pool *p = &v->policy.pools[i];
		int ready, launching;
		int want = p->desired >= 0 ? p->desired : p->min;
		fleet_size(v, p->name, &ready, &launching);
		if (p->enabled && ready < want)
			return false;
	}
	return true;
}

static int cmd_cluster(ctl_t *c, opts *o) {
	int r;

	if (o->n_pos != 1 || (!streq(o->pos[0], "stop") && !streq(o->pos[0], "start")))
		return ctl_usage_error("%s", "usage: cluster stop|start [-w S] [--reason TEXT]");
	bool stop = streq(o->pos[0], "stop");
	log_summary(c, "before");
	if (stop) {
		_cleanup_free_ char *value = marker_json(o->reason);
		if (!value || put_key(c, "scale/stop", value, -1) < 0)
			return 1;
		r = report(c, "put", "scale/stop", value, "cluster stop: every host but held ones will be drained");
	} else {
		r = delete_key(c, "scale/stop");
		if (r < 0)
			return 1;
		r = report(c, "delete", "scale/stop", NULL,
			   r > 0 ? "cluster started: the pools scale again" : "the cluster was not stopped");
	}
	log_summary(c, "after");
	if (r != 0 || o->wait < 0 || c->dry_run)
		return r;
	r = wait_for(c, o->wait, stop ? all_stopped : all_started, NULL);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "corralctl: %s: not done within %lds%s\n", stop ? "cluster stop" : "cluster start",
			o->wait, c->force ? " (--force: going on)" : "");
		log_summary(c, "now");
		return c->force ? 0 : 1;
	}
	if (r < 0) {
		if (r != -EIO)
			fprintf(stderr, "corralctl: waiting: %s\n", strerror(-r));
		return 1;
	}
	if (c->format != FORMAT_JSON)
		printf("%s\n", stop ? "every host but held ones is terminating or gone" : "every pool is at its size");
	return 0;
}

static int cmd_maintenance(ctl_t *c, opts *o) {
	int r;

	if (o->n_pos != 1 || (!streq(o->pos[0], "on") && !streq(o->pos[0], "off")))
		return ctl_usage_error("%s", "usage: maintenance on|off [--reason TEXT]");
	log_summary(c, "before");
	if (streq(o->pos[0], "on")) {
		_cleanup_free_ char *value = marker_json(o->reason);
		if (!value || put_key(c, "maintenance", value, -1) < 0)
			return 1;
		r = report(c, "put", "maintenance", value, "maintenance on: no scaling until 'maintenance off'");
	} else {
		r = delete_key(c, "maintenance");
		if (r < 0)
			return 1;
		r = report(c, "delete", "maintenance", NULL, r > 0 ? "maintenance off" : "maintenance was not on");
	}
	log_summary(c, "after");
	return r;
}

static int cmd_hold(ctl_t *c, opts *o, bool hold) {
	_cleanup_free_ char *suffix = NULL;
	char msg[300];
	int r;

	if (o->n_pos != 1)
		return ctl_usage_error("usage: %s", hold ? "hold INSTANCE-ID [--reason TEXT]" : "unhold INSTANCE-ID");
	if (!ctl_segment_valid(o->pos[0]))
		return ctl_usage_error("bad instance id '%s'", o->pos[0]);
	if (asprintf(&suffix, "holds/%s", o->pos[0]) < 0)
		return 1;
	log_summary(c, "before");
	if (hold) {
		_cleanup_free_ char *value = marker_json(o->reason);
		if (!value || put_key(c, suffix, value, -1) < 0)
			return 1;
		snprintf(msg, sizeof msg, "%s held: never drained or terminated until 'unhold %s'", o->pos[0], o->pos[0]);
		r = report(c, "put", suffix, value, msg);
	} else {
		r = delete_key(c, suffix);
		if (r < 0)
			return 1;
		snprintf(msg, sizeof msg, r > 0 ? "%s released" : "%s was not held", o->pos[0]);
		r = report(c, "delete", suffix, NULL, msg);
	}
	log_summary(c, "after");
	return r;
}

static int cmd_load(ctl_t *c, opts *o) {
	_cleanup_free_ char *suffix = NULL, *value = NULL;
	char host[256] = "", now[32], msg[300];

	if (o->n_pos != 1 || !streq(o->pos[0], "set"))
		return ctl_usage_error("%s", "usage: load set [--node ID] --jobs N [--capacity M] [--memory F]");
	if (o->jobs < 0)
		return ctl_usage_error("%s", "load set needs --jobs N");
	const char *node = o->node;
	if (!node) {
		if (gethostname(host, sizeof host - 1) < 0 || !ctl_segment_valid(host))
			return ctl_usage_error("%s", "no --node given and the host name is no node id");
		node = host;
	}
	if (asprintf(&suffix, "load/%s", node) < 0)
		return 1;
	format_time(now, time(NULL));
	json_auto_t *rec = json_pack("{s:i, s:i, s:f, s:s}", "jobs", (int) o->jobs, "capacity",
				     (int) (o->capacity < 0 ? 0 : o->capacity), "memory", o->memory < 0 ? 0.0 : o->memory,
				     "updated", now);
	if (!rec || !(value = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		return 1;
	log_summary(c, "before");
	if (put_key(c, suffix, value, -1) < 0)
		return 1;
	snprintf(msg, sizeof msg, "node %s: %ld jobs", node, o->jobs);
	int r = report(c, "put", suffix, value, msg);
	log_summary(c, "after");
	return r;
}

/* ---- dispatch ---------------------------------------------------------------------- */

bool ctl_scale_is_command(const char *cmd) {
	static const char *const names[] = { "scale", "autoscale", "cluster", "maintenance", "hold", "unhold", "load" };

	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (streq(cmd, names[i]))
			return true;
	return false;
}

int ctl_scale_main(ctl_t *c, int argc, char **argv) {
	opts o;
	int r = parse_opts(c, argc, argv, &o);

	if (r != 0)
		return r;
	const char *cmd = argv[0];
	if (streq(cmd, "autoscale"))
		return cmd_autoscale(c, &o);
	if (streq(cmd, "cluster"))
		return cmd_cluster(c, &o);
	if (streq(cmd, "maintenance"))
		return cmd_maintenance(c, &o);
	if (streq(cmd, "hold") || streq(cmd, "unhold"))
		return cmd_hold(c, &o, streq(cmd, "hold"));
	if (streq(cmd, "load"))
		return cmd_load(c, &o);

	if (o.n_pos < 1)
		return ctl_usage_error("%s", "scale needs a subcommand: policy, to, up, down, auto, queue, simulate");
	const char *sub = o.pos[0];
	if (streq(sub, "policy")) {
		if (o.n_pos >= 2 && streq(o.pos[1], "get"))
			return policy_get(c, &o);
		if (o.n_pos >= 2 && streq(o.pos[1], "set"))
			return policy_set(c, &o);
		return ctl_usage_error("%s", "usage: scale policy get | scale policy set FILE|-");
	}
	if (streq(sub, "to"))
		return scale_edit(c, &o, EDIT_TO);
	if (streq(sub, "up"))
		return scale_edit(c, &o, EDIT_UP);
	if (streq(sub, "down"))
		return scale_edit(c, &o, EDIT_DOWN);
	if (streq(sub, "auto"))
		return scale_edit(c, &o, EDIT_AUTO);
	if (streq(sub, "queue"))
		return queue_set(c, &o);
	return ctl_usage_error("unknown scale subcommand '%s'", sub);
}

/* ---- scale simulate ---------------------------------------------------------------- */

/* A load trace replayed through scale_decide() against a simulated cloud.
 * Time moves in steps; at each step:
 *   1. launching hosts whose launch delay has passed register (a node id);
 *      registered hosts heartbeat (last_seen = now), so none goes unhealthy;
 *   2. the trace's running jobs, then its queued ones, are placed anew on
 *      ready hosts, evenly, up to their capacity (jobs are taken as shorter
 *      than a step, so draining hosts empty at once); running jobs without
 *      a slot are unmet, counted in job-minutes;
 *   3. the decision runs with those hosts and queue = the jobs not placed;
 *   4. its actions are carried out: launches add launching hosts, drains
 *      and transitions change states, terminations end billing at once.
 * Billing per host: per-second with a 60 s minimum, or hourly rounded up
 * (a started hour is paid). --reserved N: the N oldest live on-demand hosts
 * are covered at each step (their covered seconds cost nothing on top), and
 * the reservation itself costs N x duration x the reserved price for every
 * policy alike. No randomness and no clock: the same input gives the same
 * output. */

typedef struct trace_row {
	long t;
	int running, queued;
} trace_row;

typedef struct sim_settings {
	long launch_delay, step;
	bool billing_set;
	scale_billing billing;
	double price_on_demand, price_spot, price_reserved;
	int reserved;
	int host_capacity;              /* job slots per simulated host */
} sim_settings;

typedef struct sim_result {
	char name[48];
	double instance_hours, cost, unmet_job_minutes;
	long launches, terminations;
	int peak_hosts;
} sim_result;

static int trace_load(const char *path, trace_row **out, size_t *n_out) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ trace_row *rows = NULL;
	size_t n = 0, cap = 0;
	char line[256];
	unsigned lineno = 0;

	if (!f) {
		fprintf(stderr, "corralctl: cannot read trace %s: %m\n", path);
		return 2;
	}
	while (fgets(line, sizeof line, f)) {
		long t;
		int running, queued;
		char extra;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#' || (lineno == 1 && strncmp(line, "seconds", 7) == 0))
			continue;
		if (sscanf(line, "%ld , %d , %d %c", &t, &running, &queued, &extra) != 3 || t < 0 || running < 0 ||
		    queued < 0) {
			fprintf(stderr, "corralctl: %s:%u: want \"seconds,running,queued\" (non-negative integers)\n",
				path, lineno);
			return 2;
		}
		if (n > 0 && t <= rows[n - 1].t) {
			fprintf(stderr, "corralctl: %s:%u: seconds must increase\n", path, lineno);
			return 2;
		}
		if (n == cap) {
			trace_row *nr = realloc(rows, (cap = cap ? cap * 2 : 256) * sizeof *rows);
			if (!nr)
				return 1;
			rows = nr;
		}
		rows[n++] = (trace_row){ t, running, queued };
	}
	if (n == 0) {
		fprintf(stderr, "corralctl: %s: no rows\n", path);
		return 2;
	}
	*out = TAKE_PTR(rows);
	*n_out = n;
	return 0;
}

static double sim_bill(const sim_settings *s, scale_billing billing, long uptime, double covered, double price) {
	double billed;

	if (billing == SCALE_BILLING_HOURLY)
		billed = (double) (uptime <= 0 ? 1 : (uptime + 3599) / 3600) * 3600;
	else
		billed = uptime < 60 ? 60 : uptime;
	billed -= covered;
	return billed > 0 ? billed / 3600 * price : 0;
}

typedef struct sim_fleet {
	scale_host *hosts;
	double *covered;
	size_t n, cap;
	unsigned next_id;
} sim_fleet;

static void sim_fleet_done(sim_fleet *f) {
	for (size_t i = 0; i < f->n; i++)
		scale_host_done(&f->hosts[i]);
	free(f->hosts);
	free(f->covered);
}

static scale_host *sim_find(sim_fleet *f, const char *id) {
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->hosts[i].id, id))
			return &f->hosts[i];
	return NULL;
}

/* Bills host i up to `end` into res and forgets it. */
static void sim_end_host(sim_fleet *f, size_t i, time_t end, const sim_settings *s, scale_billing billing,
			 sim_result *res) {
	scale_host *h = &f->hosts[i];
	long uptime = (long) (end - h->launch_time);
	double price = h->market == SCALE_SPOT ? s->price_spot : s->price_on_demand;

	res->instance_hours += (double) uptime / 3600;
	res->cost += sim_bill(s, billing, uptime, f->covered[i], price);
	scale_host_done(h);
	memmove(h, h + 1, (f->n - i - 1) * sizeof *h);
	memmove(&f->covered[i], &f->covered[i + 1], (f->n - i - 1) * sizeof *f->covered);
	f->n--;
}

static int sim_launch(sim_fleet *f, const scale_action *a, time_t now, int capacity) {
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		scale_host *nh = realloc(f->hosts, cap * sizeof *nh);
		if (!nh)
			return -ENOMEM;
		f->hosts = nh;
		double *nc = realloc(f->covered, cap * sizeof *nc);
		if (!nc)
			return -ENOMEM;
		f->covered = nc;
		f->cap = cap;
	}
	scale_host *h = &f->hosts[f->n];
	*h = (scale_host){ .state = SCALE_LAUNCHING, .market = a->market, .launch_time = now, .state_since = now,
			   .job_capacity = capacity, .cluster_tagged = true };
	if (asprintf(&h->id, "i-%06u", f->next_id++) < 0)
		return -ENOMEM;
	h->pool = strdup(a->pool);
	h->instance_type = strdup(a->instance_type ? a->instance_type : "?");
	h->availability_zone = a->availability_zone ? strdup(a->availability_zone) : NULL;
	if (!h->pool || !h->instance_type || (a->availability_zone && !h->availability_zone)) {
		scale_host_done(h);
		return -ENOMEM;
	}
	f->covered[f->n++] = 0;
	return 0;
}

/* Epoch of the simulated clock: fixed (determinism) and > 0 (the engine
 * takes now <= 0 as an error). */
#define SIM_EPOCH ((time_t) 1700000000)

static int sim_run(const trace_row *rows, size_t n_rows, const scale_pool *pool, const sim_settings *s,
		   sim_result *res) {
	_cleanup_(sim_fleet_done) sim_fleet f = {};
	_cleanup_free_ scale_price *prices = NULL;
	scale_policy pol = { .pools = (scale_pool *) pool, .n_pools = 1 };
	scale_pool_state st = { .pool = pool->name };
	scale_reservation resv = { .instance_type = pool->instance_types[0], .count = s->reserved };
	size_t n_prices = 0, row = 0;
	long t;
	int r;

	prices = calloc(pool->n_instance_types * pool->n_subnets + 1, sizeof *prices);
	if (!prices)
		return -ENOMEM;
	for (size_t i = 0; i < pool->n_instance_types; i++)
		for (size_t j = 0; j < pool->n_subnets; j++)
			if (pool->subnets[j].availability_zone)
				prices[n_prices++] = (scale_price){ pool->instance_types[i],
								    pool->subnets[j].availability_zone, s->price_spot };

	for (t = rows[0].t; t <= rows[n_rows - 1].t; t += s->step) {
		time_t now = SIM_EPOCH + t;
		scale_output out = {};

		while (row + 1 < n_rows && rows[row + 1].t <= t)
			row++;
		/* 1. registration and heartbeats */
		size_t ready = 0;
		for (size_t i = 0; i < f.n; i++) {
			scale_host *h = &f.hosts[i];
			if (!h->node_id && now >= h->launch_time + s->launch_delay && asprintf(&h->node_id, "n-%s", h->id) < 0) {
				h->node_id = NULL;
				return -ENOMEM;
			}
			if (h->node_id)
				h->last_seen = now;
			ready += h->state == SCALE_READY;
		}
		/* 2. jobs on ready hosts, evenly: the running ones first, then
		 * queued ones while slots are free; running jobs without a slot
		 * are unmet, and whatever is not placed is the queue */
		long running = rows[row].running, want = running + rows[row].queued;
		long slots = (long) ready * s->host_capacity;
		long placed = want < slots ? want : slots;
		long unmet = running > slots ? running - slots : 0;
		size_t k = 0;
		for (size_t i = 0; i < f.n; i++) {
			scale_host *h = &f.hosts[i];
			h->jobs = 0;
			if (h->state == SCALE_READY) {
				h->jobs = (int) (placed / (long) ready + ((long) k < placed % (long) ready));
				k++;
			}
			h->memory_used = (double) h->jobs / s->host_capacity;
		}
		res->unmet_job_minutes += (double) unmet * s->step / 60;
		/* the reservation covers the oldest live on-demand hosts */
		int left = s->reserved;
		for (size_t i = 0; i < f.n && left > 0; i++)
			if (f.hosts[i].market == SCALE_ON_DEMAND) {
				f.covered[i] += s->step;
				left--;
			}
		/* 3. decide */
		scale_queue q = { .pool = pool->name, .length = (int) (want - placed) };
		scale_input in = {
			.cluster = "sim", .policy = &pol, .hosts = f.hosts, .n_hosts = f.n, .queues = &q, .n_queues = 1,
			.prices = prices, .n_prices = n_prices, .reservations = &resv, .n_reservations = s->reserved > 0,
			.state = &st, .n_state = 1, .now = now,
		};
		r = scale_decide(&in, &out);
		if (r < 0)
			return r;
		/* 4. carry it out; terminated hosts leave after the loop, since the
		 * actions point at their ids */
		for (size_t i = 0; i < out.n_actions && r >= 0; i++) {
			const scale_action *a = &out.actions[i];
			scale_host *h;

			if (a->kind == SCALE_ACTION_LAUNCH) {
				for (int j = 0; j < a->count && r >= 0; j++)
					r = sim_launch(&f, a, now, s->host_capacity);
				res->launches += a->count;
				continue;
			}
			h = sim_find(&f, a->id);
			if (!h)
				continue;
			h->state = a->kind == SCALE_ACTION_TERMINATE ? SCALE_TERMINATED : a->to;
			h->state_since = now;
			res->terminations += a->kind == SCALE_ACTION_TERMINATE;
		}
		if (out.n_state == 1) {
			st.last_scale_in = out.state[0].last_scale_in;
			st.surplus_since = out.state[0].surplus_since;
			st.launch_seq = out.state[0].launch_seq;
		}
		scale_output_done(&out);
		if (r < 0)
			return r;
		for (size_t i = f.n; i-- > 0;)
			if (f.hosts[i].state == SCALE_TERMINATED)
				sim_end_host(&f, i, now, s, pool->billing, res);
		if ((int) f.n > res->peak_hosts)
			res->peak_hosts = (int) f.n;
	}
	time_t end = SIM_EPOCH + t;
	while (f.n > 0)
		sim_end_host(&f, f.n - 1, end, s, pool->billing, res);
	double hours = (double) (t - rows[0].t) / 3600;
	res->cost += s->reserved * hours * s->price_reserved;
	return 0;
}

static const char sim_default_policy[] =
	"{\"pools\": {\"sim\": {\"launch_template\": \"lt-sim\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"markets\": [\"reserved\", \"on-demand\"], \"min\": 0, \"max\": 500, \"jobs_per_host\": 4}}}";

static void sim_help(void) {
	printf("Usage: corralctl scale simulate --trace FILE [OPTIONS]\n"
	       "\n"
	       "Replays a load trace (CSV \"seconds,running,queued\") through the autoscaler's decision\n"
	       "against a simulated cloud, once per policy, and compares them.\n"
	       "\n"
	       "  --trace FILE            the trace (tests/traces/ has examples)\n"
	       "  --policy FILE           a scale policy document; its pool (--pool P when several)\n"
	       "                          is the base of every run, and runs as given too\n"
	       "                          (default: 4 jobs per host, min 0, max 500, on-demand)\n"
	       "  --pool P                the pool of --policy to use\n"
	       "  --launch-delay S        seconds from launch to a registered node (default 120)\n"
	       "  --billing MODE          per-second (60 s minimum) or hourly (default: the pool's)\n"
	       "  --price-on-demand X     USD/hour (default 0.096)\n"
	       "  --price-spot Y          USD/hour (default 0.035)\n"
	       "  --price-reserved Z      USD/hour per reserved instance (default 0.060)\n"
	       "  --reserved N            reserved instances of the pool's first type (default 0)\n"
	       "  --step S                seconds per step, one decision each (default 60)\n"
	       "  --host-capacity N       jobs per host when the pool's jobs_per_host is 0 (default 4)\n"
	       "  -o, --format FORMAT     table (default) or json\n"
	       "\n"
	       "Policies compared: as given (with --policy), jobs n+2*sqrt(n), jobs x1.3, queue, fixed at\n"
	       "the trace's peak, fixed at its mean. Columns: instance-hours (up time), cost (billed),\n"
	       "unmet job-minutes (running jobs without a slot), launches, terminations, peak hosts.\n");
}

int ctl_scale_simulate(format_t format, int argc, char **argv) {
	enum { ARG_TRACE = 0x100, ARG_POLICY, ARG_POOL, ARG_DELAY, ARG_BILLING, ARG_POD, ARG_PSPOT, ARG_PRES,
	       ARG_RESERVED, ARG_STEP, ARG_CAPACITY };
	static const struct option options[] = {
		{ "trace", required_argument, NULL, ARG_TRACE },
		{ "policy", required_argument, NULL, ARG_POLICY },
		{ "pool", required_argument, NULL, ARG_POOL },
		{ "launch-delay", required_argument, NULL, ARG_DELAY },
		{ "billing", required_argument, NULL, ARG_BILLING },
		{ "price-on-demand", required_argument, NULL, ARG_POD },
		{ "price-spot", required_argument, NULL, ARG_PSPOT },
		{ "price-reserved", required_argument, NULL, ARG_PRES },
		{ "reserved", required_argument, NULL, ARG_RESERVED },
		{ "step", required_argument, NULL, ARG_STEP },
		{ "host-capacity", required_argument, NULL, ARG_CAPACITY },
		{ "format", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	sim_settings s = { .launch_delay = 120, .step = 60, .price_on_demand = 0.096, .price_spot = 0.035,
			   .price_reserved = 0.060, .host_capacity = 4 };
	const char *trace = NULL, *policy_file = NULL, *pool_name = NULL;
	_cleanup_free_ trace_row *rows = NULL;
	size_t n_rows = 0;
	long v;
	int opt, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
		switch (opt) {
		case ARG_TRACE:
			trace = optarg;
			break;
		case ARG_POLICY:
			policy_file = optarg;
			break;
		case ARG_POOL:
			pool_name = optarg;
			break;
		case ARG_DELAY:
			if (parse_int(optarg, 0, 86400, &s.launch_delay) < 0)
				return ctl_usage_error("bad --launch-delay '%s': seconds, 0..86400", optarg);
			break;
		case ARG_BILLING:
			if (scale_billing_from_string(optarg, &s.billing) < 0)
				return ctl_usage_error("bad --billing '%s': per-second or hourly", optarg);
			s.billing_set = true;
			break;
		case ARG_POD:
			if (parse_double(optarg, 0, 1000, &s.price_on_demand) < 0)
				return ctl_usage_error("bad --price-on-demand '%s'", optarg);
			break;
		case ARG_PSPOT:
			if (parse_double(optarg, 0, 1000, &s.price_spot) < 0)
				return ctl_usage_error("bad --price-spot '%s'", optarg);
			break;
		case ARG_PRES:
			if (parse_double(optarg, 0, 1000, &s.price_reserved) < 0)
				return ctl_usage_error("bad --price-reserved '%s'", optarg);
			break;
		case ARG_RESERVED:
			if (parse_int(optarg, 0, 100000, &v) < 0)
				return ctl_usage_error("bad --reserved '%s': 0..100000", optarg);
			s.reserved = (int) v;
			break;
		case ARG_STEP:
			if (parse_int(optarg, 1, 86400, &s.step) < 0)
				return ctl_usage_error("bad --step '%s': seconds, 1..86400", optarg);
			break;
		case ARG_CAPACITY:
			if (parse_int(optarg, 1, 100000, &v) < 0)
				return ctl_usage_error("bad --host-capacity '%s': 1..100000", optarg);
			s.host_capacity = (int) v;
			break;
		case 'o':
			if (streq(optarg, "json"))
				format = FORMAT_JSON;
			else if (streq(optarg, "table"))
				format = FORMAT_TABLE;
			else
				return ctl_usage_error("unknown format '%s' (json or table)", optarg);
			break;
		case 'h':
			sim_help();
			return 0;
		default:
			return ctl_usage_error("scale simulate: unknown option or missing value '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_usage_error("scale simulate: unexpected argument '%s'", argv[optind]);
	if (!trace)
		return ctl_usage_error("%s", "scale simulate needs --trace FILE");
	if ((r = trace_load(trace, &rows, &n_rows)) != 0)
		return r;

	json_error_t jerr;
	json_auto_t *doc = policy_file ? json_load_file(policy_file, JSON_REJECT_DUPLICATES, &jerr)
				       : json_loads(sim_default_policy, 0, &jerr);
	if (!doc) {
		fprintf(stderr, "corralctl: %s:%d:%d: %s\n", policy_file, jerr.line, jerr.column, ESC_JERR(&jerr));
		return 2;
	}
	_cleanup_(scale_policy_done) scale_policy pol = {};
	scale_error err = {};
	if (scale_policy_from_json(doc, &pol, &err) < 0)
		return policy_invalid(&err);
	if (pol.n_pools == 0)
		return ctl_usage_error("%s: no pools", policy_file);
	const scale_pool *base = pool_name ? scale_policy_find(&pol, pool_name) : &pol.pools[0];
	if (!base)
		return ctl_usage_error("no pool '%s' in %s", pool_name, policy_file);
	if (base->jobs_per_host > 0)
		s.host_capacity = base->jobs_per_host;

	/* peak and mean of the running jobs over the simulated steps */
	long peak = 0, steps = 0;
	double sum = 0;
	for (long t = rows[0].t, row = 0; t <= rows[n_rows - 1].t; t += s.step, steps++) {
		while ((size_t) row + 1 < n_rows && rows[row + 1].t <= t)
			row++;
		peak = rows[row].running > peak ? rows[row].running : peak;
		sum += rows[row].running;
	}
	int peak_hosts = (int) ((peak + s.host_capacity - 1) / s.host_capacity);
	int mean_hosts = (int) ceil(sum / steps / s.host_capacity);

	/* the runs: the base pool under each policy kind; the manual override
	 * is dropped (it would make every run the same) */
	struct {
		const char *name;
		scale_pool pool;
	} runs[6];
	size_t n = 0;
	scale_pool p = *base;
	p.desired = -1;
	p.enabled = true;
	if (s.billing_set)
		p.billing = s.billing;
	if (policy_file)
		runs[n++] = (typeof(runs[0])){ "as given", p };
	runs[n] = (typeof(runs[0])){ "jobs n+2sqrt(n)", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 0;
	runs[n] = (typeof(runs[0])){ "jobs x1.3", p };
	runs[n].pool.kind = SCALE_POLICY_JOBS;
	runs[n++].pool.capacity_factor = 1.3;
	runs[n] = (typeof(runs[0])){ "queue", p };
	runs[n++].pool.kind = SCALE_POLICY_QUEUE;
	runs[n] = (typeof(runs[0])){ "fixed at peak", p };
	runs[n].pool.kind = SCALE_POLICY_FIXED;
	runs[n].pool.hosts = peak_hosts > p.min ? peak_hosts : p.min;
	runs[n].pool.max = runs[n].pool.hosts > p.max ? runs[n].pool.hosts : p.max;
	n++;
	runs[n] = (typeof(runs[0])){ "fixed at mean", p };
	runs[n].pool.kind = SCALE_POLICY_FIXED;
	runs[n].pool.hosts = mean_hosts > p.min ? mean_hosts : p.min;
	runs[n].pool.max = runs[n].pool.hosts > p.max ? runs[n].pool.hosts : p.max;
	n++;

	sim_result res[6] = {};
	for (size_t i = 0; i < n; i++) {
		snprintf(res[i].name, sizeof res[i].name, "%s", runs[i].name);
		r = sim_run(rows, n_rows, &runs[i].pool, &s, &res[i]);
		if (r < 0) {
			fprintf(stderr, "corralctl: simulation '%s' failed: %s\n", runs[i].name, strerror(-r));
			return 1;
		}
	}

	const char *billing = scale_billing_to_string(p.billing);
	long duration = rows[n_rows - 1].t - rows[0].t;
	if (format == FORMAT_JSON) {
		json_auto_t *o = json_pack("{s:s, s:{s:s, s:I, s:I, s:i, s:i, s:I, s:s, s:f, s:f, s:f, s:i, s:i, s:i}, s:[]}",
					   "trace", trace, "settings", "pool", p.name, "duration", (json_int_t) duration,
					   "step", (json_int_t) s.step, "jobs_per_host", s.host_capacity, "peak_jobs",
					   (int) peak, "launch_delay", (json_int_t) s.launch_delay, "billing", billing,
					   "price_on_demand", s.price_on_demand, "price_spot", s.price_spot,
					   "price_reserved", s.price_reserved, "reserved", s.reserved, "fixed_peak_hosts",
					   peak_hosts, "fixed_mean_hosts", mean_hosts, "results");
		if (!o)
			return 1;
		for (size_t i = 0; i < n; i++)
			json_array_append_new(json_object_get(o, "results"),
					      json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:i}", "policy", res[i].name,
							"instance_hours", round(res[i].instance_hours * 1000) / 1000, "cost",
							round(res[i].cost * 10000) / 10000, "unmet_job_minutes",
							round(res[i].unmet_job_minutes * 100) / 100, "launches",
							(json_int_t) res[i].launches, "terminations",
							(json_int_t) res[i].terminations, "peak_hosts", res[i].peak_hosts));
		return ctl_print_json(o);
	}
	printf("trace %s: %zu rows, %lds in steps of %lds, peak %ld running jobs\n"
	       "pool %s: %d jobs per host, launch delay %lds, billing %s; on-demand $%.3f/h, spot $%.3f/h, "
	       "%d reserved at $%.3f/h\n\n",
	       trace, n_rows, duration, s.step, peak, p.name, s.host_capacity, s.launch_delay, billing,
	       s.price_on_demand, s.price_spot, s.reserved, s.price_reserved);
	static const char *const header[] = { "POLICY", "INSTANCE-HOURS", "COST", "UNMET JOB-MIN", "LAUNCHES",
					      "TERMINATIONS", "PEAK HOSTS" };
	char *cells[6 * ELEMENTSOF(header)] = {};
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		char **row = cells + i * ELEMENTSOF(header);
		char buf[7][64] = {};
		snprintf(buf[1], sizeof buf[1], "%.2f", res[i].instance_hours);
		snprintf(buf[2], sizeof buf[2], "%.2f", res[i].cost);
		snprintf(buf[3], sizeof buf[3], "%.1f", res[i].unmet_job_minutes);
		snprintf(buf[4], sizeof buf[4], "%ld", res[i].launches);
		snprintf(buf[5], sizeof buf[5], "%ld", res[i].terminations);
		snprintf(buf[6], sizeof buf[6], "%d", res[i].peak_hosts);
		for (size_t j = 0; j < ELEMENTSOF(header); j++)
			ok = ok && (row[j] = strdup(j == 0 ? res[i].name : buf[j]));
	}
	if (ok)
		ctl_print_table(header, cells, n, ELEMENTSOF(header));
	for (size_t i = 0; i < ELEMENTSOF(cells); i++)
		free(cells[i]);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}
