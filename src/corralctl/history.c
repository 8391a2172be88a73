/* history.c — `corralctl scale history`: the leader's decision log
 * (<prefix>/scale/history/<seq>, one record per decision that changed
 * something, the last SCALE_HISTORY_MAX kept; scale-report.h) as a table,
 * one row per decision and pool, or as the records themselves (JSON); and
 * what `corralctl status` says about scaling (its `scaling:` line, from
 * scale/status, scale/metrics and the newest record). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "ctl.h"
#include "keys.h"
#include "scale-report.h"

/* "launch 2 x t3.micro on-demand (deficit); drain i-0abc (surplus)" for
 * the actions of pool in rec (all pools when NULL). */
static char *actions_text(json_t *rec, const char *pool) {
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	json_t *a;
	size_t i, n = 0;

	if (!f)
		return NULL;
	json_array_foreach(json_object_get(rec, "actions"), i, a) {
		const char *kind = json_string_value(json_object_get(a, "action"));
		const char *why = json_string_value(json_object_get(a, "why"));
		if (pool && !streq_ptr(json_string_value(json_object_get(a, "pool")), pool))
			continue;
		fprintf(f, "%s%s ", n++ ? "; " : "", kind ?: "?");
		if (streq_ptr(kind, "launch"))
			fprintf(f, "%" JSON_INTEGER_FORMAT " x %s %s", json_integer_value(json_object_get(a, "count")),
				json_string_value(json_object_get(a, "instance_type")) ?: "?",
				json_string_value(json_object_get(a, "market")) ?: "?");
		else
			fprintf(f, "%s", json_string_value(json_object_get(a, "id")) ?: "?");
		if (why)
			fprintf(f, " (%s)", why);
	}
	if (n == 0)
		fputs("-", f);
	fclose(f);
	return text;
}

static const char *outcome_text(json_t *rec, char *buf, size_t size) {
	const char *outcome = json_string_value(json_object_get(rec, "outcome")) ?: "?";
	json_t *errors = json_object_get(rec, "errors");

	if (json_array_size(errors) == 0)
		return outcome;
	snprintf(buf, size, "%s: %s", outcome, json_string_value(json_array_get(errors, 0)) ?: "?");
	return buf;
}

#define HISTORY_COLUMNS 10

static int history_table(json_t *recs, const char *pool) {
	static const char *const header[HISTORY_COLUMNS] = { "TIME", "POOL", "DESIRED", "READY", "LAUNCHING",
							     "DRAINING", "JOBS", "QUEUE", "ACTIONS", "OUTCOME" };
	size_t n = 0, cap = 0;
	char **rows = NULL;
	json_t *rec;
	size_t i;
	int r = 0;

	json_array_foreach(recs, i, rec) {
		const char *name;
		json_t *m;
		json_object_foreach(json_object_get(rec, "pools"), name, m) {
			char t[32], out[300];
			json_t *hosts = json_object_get(m, "hosts");
			if (pool && !streq(name, pool))
				continue;
			if (n + 1 > cap) {
				char **more = realloc(rows, (cap = cap * 2 + 8) * HISTORY_COLUMNS * sizeof *rows);
				if (!more) {
					r = -ENOMEM;
					goto done;
				}
				rows = more;
			}
			char **row = rows + n * HISTORY_COLUMNS;
			ctl_format_time(t, (time_t) json_integer_value(json_object_get(rec, "time")));
			row[0] = strdup(t);
			row[1] = strdup(name);
#define NUM(k, obj) (asprintf(&row[k], "%" JSON_INTEGER_FORMAT, json_integer_value(obj)) < 0 ? (row[k] = NULL) : row[k])
			NUM(2, json_object_get(m, "desired_hosts"));
			NUM(3, json_object_get(hosts, "ready"));
			NUM(4, json_object_get(hosts, "launching"));
			NUM(5, json_object_get(hosts, "draining"));
			NUM(6, json_object_get(m, "jobs"));
			NUM(7, json_object_get(m, "queue"));
#undef NUM
			row[8] = actions_text(rec, name);
			row[9] = strdup(outcome_text(rec, out, sizeof out));
			n++;
			for (size_t k = 0; k < HISTORY_COLUMNS; k++)
				if (!row[k])
					r = -ENOMEM;
		}
	}
	if (r == 0)
		ctl_print_table(header, rows, n, HISTORY_COLUMNS);
done:
	for (size_t k = 0; k < n * HISTORY_COLUMNS; k++)
		free(rows[k]);
	free(rows);
	return r;
}

/* The records, oldest first, as JSON; only those since cutoff (0: all)
 * that name pool (NULL: any). */
static int history_read(ctl_t *c, time_t cutoff, const char *pool, json_t **out) {
	json_auto_t *all = NULL;
	const char *id;
	json_t *rec;
	int r;

	r = ctl_read_records(c, KEYS_SCALE_HISTORY, &all);
	if (r < 0)
		return r;
	*out = json_array();
	if (!*out)
		return -ENOMEM;
	/* etcd returns keys in order, and seq ids are zero-padded */
	json_object_foreach(all, id, rec) {
		if (json_integer_value(json_object_get(rec, "time")) < cutoff)
			continue;
		if (pool && !json_object_get(json_object_get(rec, "pools"), pool))
			continue;
		json_array_append(*out, rec);
	}
	return 0;
}

static int cmd_history(ctl_t *c, ctl_opts *o) {
	json_auto_t *recs = NULL;
	time_t cutoff = 0;
	uint64_t usec;

	if (o->since) {
		if (conf_parse_duration(o->since, &usec) < 0)
			return ctl_usage_error("bad --since '%s': a duration such as 90s, 30m, 1h, 2d", o->since);
		cutoff = time(NULL) - (time_t) (usec / USEC_PER_SEC);
	}
	if (history_read(c, cutoff, o->pool, &recs) < 0)
		return 1;
	if (c->format == FORMAT_JSON)
		return ctl_print_json(recs);
	if (json_array_size(recs) == 0) {
		printf("no decisions recorded%s%s%s%s\n", o->since ? " in the last " : "", o->since ?: "",
		       o->pool ? " for pool " : "", o->pool ?: "");
		return 0;
	}
	return history_table(recs, o->pool) < 0 ? 1 : 0;
}

const ctl_verb ctl_history_verbs[] = {
	{ .group = "scale", .name = "history", .args = "[--since DURATION] [--pool P]",
	  .help = "the leader's last scaling decisions, oldest first: per pool the inputs\n"
		  "(hosts by state, jobs, queue), desired, the actions and their outcome\n"
		  "(the last 500 decisions that changed something are kept)",
	  .options = CTL_OPT_SINCE | CTL_OPT_POOL, .flags = CTL_VERB_ETCD, .run = cmd_history },
	{},
};

/* ---- the status line ---- */

int ctl_scaling_status(ctl_t *c, json_t **out) {
	_cleanup_free_ char *skey = keys_one_of(c->prefix, KEYS_SCALE_STATUS);
	_cleanup_free_ char *mkey = keys_one_of(c->prefix, KEYS_SCALE_METRICS);
	_cleanup_free_ char *hkey = keys_dir_of(c->prefix, KEYS_SCALE_HISTORY);
	json_auto_t *st = NULL, *metrics = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync sync = {};
	scale_status status;
	char line[600];
	time_t last_decision = 0, now = time(NULL);
	int r;

	if (!skey || !mkey || !hkey)
		return -ENOMEM;
	if ((r = ctl_read_marker(c, skey, &st)) < 0 || (r = ctl_read_marker(c, mkey, &metrics)) < 0)
		return r;
	/* the newest history record only */
	etcd_range_req req = { .key = hkey, .prefix = true, .limit = 1, .sort_order = ETCD_SORT_DESCEND,
			       .sort_target = ETCD_SORT_KEY };
	if (etcd_range(c->etcd, &req, etcd_sync_cb, &sync, NULL) < 0)
		return -ENOMEM;
	if ((r = ctl_wait(c, &sync, &resp)) < 0)
		return r;
	if (resp->n_kvs > 0 && resp->kvs[0].value) {
		json_auto_t *last = json_loadb(resp->kvs[0].value, resp->kvs[0].value_len, 0, NULL);
		last_decision = (time_t) json_integer_value(json_object_get(last, "time"));
	}
	bool have = st && scale_status_from_json(st, &status) == 0;
	time_t last_cycle = (time_t) json_integer_value(json_object_get(metrics, "time"));
	bool current = scale_status_line(have ? &status : NULL, last_cycle, last_decision, now, line, sizeof line);
	*out = json_pack("{s:s, s:b, s:O?, s:o, s:o}", "line", line, "current", current, "status", st,
			 "last_decision", last_decision ? json_integer(last_decision) : json_null(), "last_evaluation",
			 last_cycle ? json_integer(last_cycle) : json_null());
	return *out ? 0 : -ENOMEM;
}
