/* observe-fixture.h — the fixtures of tests/data/observe/ (README.md
 * there): loaded with their times resolved, the etcd part as sorted key and
 * value texts. Shared by test_observe.c (pure) and test_observe_same.c
 * (real etcd, corralctl and the leader's dry run). Header-only. */
#pragma once

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-test.h"

/* "now", "now-N", "now+N" -> now -+ N, anywhere in j (new reference). */
static inline json_t *at_now(json_t *j, time_t now) {
	const char *k, *s = json_string_value(j);
	json_t *v, *out;
	size_t i;

	if (s && strncmp(s, "now", 3) == 0 && (!s[3] || ((s[3] == '-' || s[3] == '+') && s[4]))) {
		char *end;
		long n = s[3] ? strtol(s + 4, &end, 10) : 0;
		if (!s[3] || !*end)
			return json_integer((json_int_t) now + (s[3] == '-' ? -n : n));
	}
	if (json_is_object(j)) {
		out = json_object();
		json_object_foreach(j, k, v)
			json_object_set_new(out, k, at_now(v, now));
		return out;
	}
	if (json_is_array(j)) {
		out = json_array();
		json_array_foreach(j, i, v)
			json_array_append_new(out, at_now(v, now));
		return out;
	}
	return json_incref(j);
}

static inline json_t *host_defaults(const char *id) {
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:i, s:i, s:f, s:b, s:b}", "id", id, "market",
			 "on-demand", "instance_type", "m5.large", "availability_zone", "us-east-1a", "launch_time",
			 "now-7200", "state_since", "now-3600", "node_id", "last_seen", "now", "jobs", 0,
			 "job_capacity", 4, "memory_used", 0.2, "cluster_tagged", true, "hold", false);
}

static inline int key_cmp(const void *a, const void *b) {
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* One fixture: the document (times resolved) and its etcd part. */
typedef struct fx {
	json_t *doc;
	char **keys, **vals;            /* sorted by key, as etcd returns them */
	size_t n;
} fx;

static inline void fx_done(fx *f) {
	json_decref(f->doc);
	for (size_t i = 0; i < f->n; i++) {
		free(f->keys[i]);
		free(f->vals[i]);
	}
	free(f->keys);
	free(f->vals);
}

/* The etcd part: key -> value text, sorted; host records over their defaults. */
static inline void fx_etcd(fx *f) {
	json_t *etcd = json_object_get(f->doc, "etcd"), *v;
	const char *k;
	size_t i = 0;

	f->n = json_object_size(etcd);
	f->keys = calloc(f->n + 1, sizeof *f->keys);
	f->vals = calloc(f->n + 1, sizeof *f->vals);
	cr_assert(f->keys && f->vals);
	json_object_foreach(etcd, k, v)
		f->keys[i++] = strdup(k);
	qsort(f->keys, f->n, sizeof *f->keys, key_cmp);
	for (i = 0; i < f->n; i++) {
		json_t *x = json_object_get(etcd, f->keys[i]);
		if (json_is_string(x)) {
			f->vals[i] = strdup(json_string_value(x));
			continue;
		}
		if (strncmp(f->keys[i], "scale/hosts/", 12) == 0) {
			json_auto_t *h = host_defaults(f->keys[i] + 12);
			json_auto_t *t = NULL;
			json_object_update(h, x);
			t = at_now(h, json_integer_value(json_object_get(f->doc, "now")));
			f->vals[i] = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
		} else
			f->vals[i] = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);
		cr_assert_not_null(f->vals[i]);
	}
}

static inline void fx_load(fx *f, const char *name, time_t now) {
	_cleanup_free_ char *path = NULL;
	json_error_t jerr;

	*f = (fx) {};
	cr_assert_geq(asprintf(&path, "%s/tests/data/observe/%s.json", hx_srcdir(), name), 0);
	json_auto_t *raw = json_load_file(path, 0, &jerr);
	cr_assert_not_null(raw, "%s: %s (line %d)", path, jerr.text, jerr.line);
	json_object_set_new(raw, "now", json_integer(now));
	f->doc = at_now(raw, now);
	fx_etcd(f);
}

static inline const char *fx_value(const fx *f, const char *key) {
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->keys[i], key))
			return f->vals[i];
	return NULL;
}
