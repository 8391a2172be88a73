/* policy.c — deployment_policy as JSON (deployment.h): the lifecycle's
 * durations, the notice command, the pool and the test clock offset. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deployment-internal.h"

#define DAY 86400

int deployment_policy_defaults(deployment_policy *p) {
	*p = (deployment_policy) {
		.inactive_after = 7 * DAY,
		.inactive_warning = DAY,
		.reclaim_within = 7 * DAY,
		.retry = 600,
		.notice_timeout = 30,
		.memory_threshold = 0.8,
	};
	p->expiry_notices = calloc(2, sizeof *p->expiry_notices);
	if (!p->expiry_notices)
		return -ENOMEM;
	p->expiry_notices[0] = 7 * DAY;
	p->expiry_notices[1] = DAY;
	p->n_expiry_notices = 2;
	return 0;
}

static const char *const keys[] = {
	"expiry_notices", "inactive_after", "inactive_warning", "reclaim_within", "retry", "notice_command",
	"notice_timeout", "pool", "memory_threshold", "consolidate", "clock_offset", NULL,
};

static int cmp_desc(const void *a, const void *b) {
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
	return x > y ? -1 : x < y;
}

static int get_notices(json_t *doc, deployment_policy *p, deployment_error *err) {
	json_t *a = json_object_get(doc, "expiry_notices"), *v;
	size_t i, n = 0;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 16)
		return dep_fail(err, "deployment_policy", "expiry_notices", "must be a list of at most 16 durations");
	int64_t *d = calloc(json_array_size(a) + 1, sizeof *d);
	if (!d)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		int64_t s;
		if (json_is_integer(v) && json_integer_value(v) > 0)
			s = json_integer_value(v);
		else if (!json_is_string(v) || deployment_parse_duration(json_string_value(v), &s) < 0 || s <= 0) {
			free(d);
			return dep_fail(err, "deployment_policy", "expiry_notices",
					"must be a list of durations > 0 like \"7d\", \"24h\"");
		}
		d[n++] = s;
	}
	qsort(d, n, sizeof *d, cmp_desc);
	size_t k = 0;
	for (i = 0; i < n; i++)
		if (k == 0 || d[k - 1] != d[i])
			d[k++] = d[i];
	free(p->expiry_notices);
	p->expiry_notices = d;
	p->n_expiry_notices = k;
	return 0;
}

int deployment_policy_from_json(json_t *doc, deployment_policy *out, deployment_error *err) {
	_cleanup_(deployment_policy_done) deployment_policy p = {};
	const char *k;
	json_t *v;
	int r;

	*out = (deployment_policy) {};
	if ((r = deployment_policy_defaults(&p)) < 0)
		return r;
	if (!doc) {
		*out = p;
		p = (deployment_policy) {};
		return 0;
	}
	if (!json_is_object(doc))
		return dep_fail(err, "deployment_policy", NULL, "must be a JSON object");
	json_object_foreach(doc, k, v) {
		bool ok = false;
		for (size_t i = 0; keys[i] && !ok; i++)
			ok = strcmp(keys[i], k) == 0;
		if (!ok)
			return dep_fail(err, "deployment_policy", k, "unknown key");
	}
	const char *ctx = "deployment_policy";
	if ((r = get_notices(doc, &p, err)) < 0 ||
	    (r = dep_get_duration(doc, ctx, "inactive_after", &p.inactive_after, err)) < 0 ||
	    (r = dep_get_duration(doc, ctx, "inactive_warning", &p.inactive_warning, err)) < 0 ||
	    (r = dep_get_duration(doc, ctx, "reclaim_within", &p.reclaim_within, err)) < 0 ||
	    (r = dep_get_duration(doc, ctx, "retry", &p.retry, err)) < 0 ||
	    (r = dep_get_str(doc, ctx, "notice_command", &p.notice_command, err)) < 0 ||
	    (r = dep_get_duration(doc, ctx, "notice_timeout", &p.notice_timeout, err)) < 0 ||
	    (r = dep_get_str(doc, ctx, "pool", &p.pool, err)) < 0 ||
	    (r = dep_get_bool(doc, ctx, "consolidate", &p.consolidate, err)) < 0)
		return r;
	v = json_object_get(doc, "memory_threshold");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1))
			return dep_fail(err, ctx, "memory_threshold", "must be > 0 and <= 1");
		p.memory_threshold = json_number_value(v);
	}
	/* the test knob may go back in time too */
	v = json_object_get(doc, "clock_offset");
	if (v && !json_is_null(v)) {
		if (json_is_integer(v))
			p.clock_offset = json_integer_value(v);
		else if (!json_is_string(v) ||
			 deployment_parse_duration(json_string_value(v)[0] == '-' ? json_string_value(v) + 1
										 : json_string_value(v),
						   &p.clock_offset) < 0)
			return dep_fail(err, ctx, "clock_offset", "must be seconds or a duration like 3d (\"-1d\" back)");
		else if (json_string_value(v)[0] == '-')
			p.clock_offset = -p.clock_offset;
	}
	if (p.inactive_after <= 0)
		return dep_fail(err, ctx, "inactive_after", "must be > 0");
	if (p.inactive_warning > p.inactive_after)
		return dep_fail(err, ctx, "inactive_warning", "must be <= inactive_after");
	if (p.retry <= 0)
		return dep_fail(err, ctx, "retry", "must be > 0");
	if (p.notice_timeout <= 0)
		return dep_fail(err, ctx, "notice_timeout", "must be > 0");
	/* "" means none, as an absent key does */
	char **empty[] = { &p.notice_command, &p.pool };
	for (size_t i = 0; i < ELEMENTSOF(empty); i++)
		if (*empty[i] && !**empty[i]) {
			free(*empty[i]);
			*empty[i] = NULL;
		}
	*out = p;
	p = (deployment_policy) {};
	return 0;
}

json_t *deployment_policy_to_json(const deployment_policy *p) {
	json_auto_t *n = json_array();
	char buf[32];

	for (size_t i = 0; n && i < p->n_expiry_notices; i++)
		if (json_array_append_new(n, json_string(deployment_format_duration(p->expiry_notices[i], buf, sizeof buf))) < 0)
			return NULL;
	if (!n)
		return NULL;
	return json_pack("{s:O, s:I, s:I, s:I, s:I, s:o, s:I, s:o, s:f, s:b, s:I}", "expiry_notices", n,
			 "inactive_after", (json_int_t) p->inactive_after, "inactive_warning",
			 (json_int_t) p->inactive_warning, "reclaim_within", (json_int_t) p->reclaim_within, "retry",
			 (json_int_t) p->retry, "notice_command", dep_str_or_null(p->notice_command), "notice_timeout",
			 (json_int_t) p->notice_timeout, "pool", dep_str_or_null(p->pool), "memory_threshold",
			 p->memory_threshold, "consolidate", p->consolidate, "clock_offset", (json_int_t) p->clock_offset);
}

void deployment_policy_done(deployment_policy *p) {
	if (!p)
		return;
	free(p->expiry_notices);
	free(p->notice_command);
	free(p->pool);
	*p = (deployment_policy) {};
}
