/* test_etcd_codec.c — the etcd gateway codec (src/etcd/codec.c): every reply
 * shape etcd 3.4 was seen to send, straight from the captured traffic in
 * tests/data/etcd-gateway, every request shape the captures
 * show, and hand-made malformed replies that must become
 * ETCD_ERROR_MALFORMED (-EBADMSG) without a crash or a leak (ASan/LSan).
 *
 * Bodies are handed to the codec in buffers of exactly their length, with
 * no terminating NUL, so ASan catches a parser that reads past len. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>

#include "etcd-internal.h"
#include "harness.h"

/* The header every single-member capture carries. */
#define CLUSTER UINT64_C(324952591200643719)
#define MEMBER  UINT64_C(3319814642761637952)

/* ---- captured traffic ------------------------------------------------------- */

/* One response out of a capture file. The files are curl transcripts:
 * "### ..." comment lines, the request body after a "... body:" line, then
 * "HTTP/1.1 NNN ...", headers, a blank line and the body or stream lines.
 * Some carry arrival timestamps ("23:06:53.544 "), curl's own messages
 * ("curl: (18) ...", "curl exit code: 0", glued to an unterminated last
 * line), or sections ("--- forbidden:", "### unknown lease ID 999:").
 * `curl -i` also prints the HTTP trailer right after a chunked body
 * ("...}Grpc-Trailer-Content-Type: application/grpc"); libcurl hands
 * trailers to the header callback, so the body the client sees ends at '}'
 * and the helper cuts the trailer off. */
typedef struct capture {
	long status;            /* 0: the section shows no status line */
	char **req;             /* request body lines */
	size_t n_req;
	char **lines;           /* body (unary) or stream lines, no '\n' */
	size_t n_lines;
} capture;

static const char *gateway_dir(void) {
	static char dir[PATH_MAX];

	snprintf(dir, sizeof dir, "%s/tests/data/etcd-gateway", hx_srcdir());
	return dir;
}

static void strv_push(char ***v, size_t *n, const char *s, size_t len) {
	*v = realloc(*v, (*n + 1) * sizeof **v);
	cr_assert_not_null(*v);
	(*v)[*n] = strndup(s, len);
	cr_assert_not_null((*v)[*n]);
	(*n)++;
}

static void strv_release(char **v, size_t n) {
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void capture_free(capture *c) {
	if (!c)
		return;
	strv_release(c->req, c->n_req);
	strv_release(c->lines, c->n_lines);
	free(c);
}

/* "23:06:53.544 " in front of a line. */
static const char *strip_stamp(const char *s) {
	if (isdigit((unsigned char) s[0]) && isdigit((unsigned char) s[1]) && s[2] == ':' &&
	    isdigit((unsigned char) s[3]) && isdigit((unsigned char) s[4]) && s[5] == ':' &&
	    isdigit((unsigned char) s[6]) && isdigit((unsigned char) s[7]) && s[8] == '.') {
		const char *p = s + 9;
		while (isdigit((unsigned char) *p))
			p++;
		if (*p == ' ')
			return p + 1;
		if (*p == '\0')
			return p;
	}
	return s;
}

/* Reads capture `id` ("05", "49b": the file "<id>-*.txt"). With `after`,
 * the response is the one that follows the first line containing it;
 * without, the first "HTTP/" status line starts it (no lines when there is
 * none). */
static capture *cap_load(const char *id, const char *after) {
	char pattern[PATH_MAX + 32];
	glob_t g = {};

	snprintf(pattern, sizeof pattern, "%s/%s-*.txt", gateway_dir(), id);
	cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no capture %s (set CORRAL_SRCDIR)", pattern);
	cr_assert_eq(g.gl_pathc, 1, "capture %s is ambiguous", pattern);
	FILE *f = fopen(g.gl_pathv[0], "re");
	cr_assert_not_null(f, "%s: %s", g.gl_pathv[0], strerror(errno));
	globfree(&g);

	char **all = NULL, *line = NULL;
	size_t n_all = 0, cap_len = 0;
	ssize_t k;
	while ((k = getline(&line, &cap_len, f)) >= 0) {
		while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
			line[--k] = '\0';
		const char *s = strip_stamp(line);
		strv_push(&all, &n_all, s, strlen(s));
	}
	free(line);
	fclose(f);

	capture *c = calloc(1, sizeof *c);
	cr_assert_not_null(c);

	/* The request: the lines after the first "### ...body...:" line. */
	for (size_t i = 0; i < n_all; i++) {
		size_t l = strlen(all[i]);
		if (startswith(all[i], "###") && strstr(all[i], "body") && l > 0 && all[i][l - 1] == ':') {
			for (size_t j = i + 1; j < n_all; j++) {
				if (startswith(all[j], "###") || startswith(all[j], "HTTP/") || all[j][0] == '\0')
					break;
				strv_push(&c->req, &c->n_req, all[j], strlen(all[j]));
			}
			break;
		}
	}

	size_t i = 0;
	if (after) {
		while (i < n_all && !strstr(all[i], after))
			i++;
		cr_assert_lt(i, n_all, "capture %s has no line with \"%s\"", id, after);
		i++;
	} else {
		/* none: a capture read for its request only */
		while (i < n_all && !startswith(all[i], "HTTP/"))
			i++;
	}
	if (i < n_all && startswith(all[i], "HTTP/")) {
		const char *sp = strchr(all[i], ' ');
		cr_assert_not_null(sp);
		c->status = strtol(sp + 1, NULL, 10);
		while (i < n_all && all[i][0] != '\0')     /* headers */
			i++;
		i++;
	}

	for (; i < n_all; i++) {
		const char *s = all[i];
		if (s[0] == '\0' || startswith(s, "###") || startswith(s, "---")) {
			if (c->n_lines > 0)
				break;
			continue;
		}
		if (startswith(s, "curl") || s[0] == '(')
			continue;
		size_t l = strlen(s);
		const char *cut;
		if ((cut = strstr(s, "Grpc-Trailer-")) && cut > s)
			l = (size_t) (cut - s);
		if ((cut = strstr(s, "curl exit code:")) && cut > s && (size_t) (cut - s) < l)
			l = (size_t) (cut - s);
		strv_push(&c->lines, &c->n_lines, s, l);
	}
	strv_release(all, n_all);
	return c;
}

/* A copy of exactly len bytes, no NUL after them. */
static char *dup_exact(const char *s, size_t len) {
	char *p = malloc(len ? len : 1);
	cr_assert_not_null(p);
	memcpy(p, s, len);
	return p;
}

/* ---- JSON helpers ------------------------------------------------------------ */

/* jsonpb takes an int64 as a number or as a decimal string; the codec
 * always sends strings, some captured requests used numbers. A copy of v
 * with every integer turned into its string. */
static json_t *ints_to_strings(json_t *v) {
	const char *k;
	json_t *x, *out;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach(v, k, x) json_object_set_new(out, k, ints_to_strings(x));
		return out;
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, x) json_array_append_new(out, ints_to_strings(x));
		return out;
	case JSON_INTEGER:
		return json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	default:
		return json_incref(v);
	}
}

static void assert_json_eq(json_t *got, json_t *want, const char *what) {
	if (got && want && json_equal(got, want))
		return;
	char *g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	char *w = want ? json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	char msg[4096];
	snprintf(msg, sizeof msg, "%s\n  got  %s\n  want %s", what, g ? g : "(null)", w ? w : "(null)");
	free(g);
	free(w);
	cr_assert_fail("%s", msg);
}

static void assert_json_str(json_t *got, const char *want_text, const char *what) {
	json_error_t e;
	json_t *want = json_loads(want_text, 0, &e);
	cr_assert_not_null(want, "bad expectation %s: %s", want_text, e.text);
	assert_json_eq(got, want, what);
	json_decref(want);
}

/* The codec's request (owned, freed here) against request line `idx` of
 * capture `id`; numbers in the capture compared as strings when `numbers`. */
static void expect_request(json_t *got, const char *id, size_t idx, bool numbers) {
	capture *c = cap_load(id, NULL);
	cr_assert_lt(idx, c->n_req, "capture %s has no request line %zu", id, idx);
	json_error_t e;
	json_t *want = json_loads(c->req[idx], 0, &e);
	cr_assert_not_null(want, "capture %s request: %s", id, e.text);
	if (numbers) {
		json_t *n = ints_to_strings(want);
		json_decref(want);
		want = n;
	}
	bool same = got && json_equal(got, want);
	char *g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
	char msg[4096];
	snprintf(msg, sizeof msg, "request of capture %s\n  got  %s\n  want %s", id, g ? g : "(null)", w);
	free(g);
	free(w);
	json_decref(want);
	json_decref(got);
	capture_free(c);
	cr_assert(same, "%s", msg);
}

/* ---- response helpers ----------------------------------------------------------- */

static void assert_header(const etcd_header *h, uint64_t cluster, uint64_t member, int64_t rev, int64_t term) {
	cr_assert_eq(h->cluster_id, cluster, "cluster_id %" PRIu64, h->cluster_id);
	cr_assert_eq(h->member_id, member, "member_id %" PRIu64, h->member_id);
	cr_assert_eq(h->revision, rev, "revision %" PRId64 ", want %" PRId64, h->revision, rev);
	cr_assert_eq(h->raft_term, term, "raft_term %" PRId64, h->raft_term);
}

/* A nested txn response's header carries only a revision. */
static void assert_rev_only(const etcd_header *h, int64_t rev) {
	assert_header(h, 0, 0, rev, 0);
}

static void assert_kv(const etcd_kv *kv, const char *key, const char *value, int64_t create, int64_t mod,
		      int64_t version, int64_t lease) {
	cr_assert_not_null(kv->key);
	cr_assert_eq(kv->key_len, strlen(key), "key_len %zu for %s", kv->key_len, key);
	cr_assert_eq(memcmp(kv->key, key, kv->key_len), 0, "key %.*s, want %s", (int) kv->key_len, kv->key, key);
	cr_assert_eq(kv->key[kv->key_len], '\0', "key not NUL-terminated");
	if (value) {
		cr_assert_not_null(kv->value, "no value for %s", key);
		cr_assert_eq(kv->value_len, strlen(value));
		cr_assert_eq(memcmp(kv->value, value, kv->value_len), 0, "value %.*s, want %s", (int) kv->value_len,
			     kv->value, value);
		cr_assert_eq(kv->value[kv->value_len], '\0', "value not NUL-terminated");
	} else {
		cr_assert_null(kv->value, "value %s for %s, want none", kv->value, key);
		cr_assert_eq(kv->value_len, 0);
	}
	cr_assert_eq(kv->create_revision, create, "create_revision %" PRId64, kv->create_revision);
	cr_assert_eq(kv->mod_revision, mod, "mod_revision %" PRId64, kv->mod_revision);
	cr_assert_eq(kv->version, version, "version %" PRId64, kv->version);
	cr_assert_eq(kv->lease, lease, "lease %" PRId64, kv->lease);
}

static void assert_kv_absent(const etcd_kv *kv) {
	cr_assert_null(kv->key);
	cr_assert_null(kv->value);
	cr_assert_eq(kv->key_len, 0);
	cr_assert_eq(kv->mod_revision, 0);
}

/* Every field an RPC leaves alone stays zero. */
static void assert_no_payload(const etcd_response *r) {
	cr_assert_null(r->kvs);
	cr_assert_eq(r->n_kvs, 0);
	cr_assert_eq(r->count, 0);
	cr_assert_not(r->more);
	cr_assert_eq(r->deleted, 0);
	cr_assert_not(r->succeeded);
	cr_assert_null(r->responses);
	cr_assert_eq(r->n_responses, 0);
	cr_assert_eq(r->lease_id, 0);
	cr_assert_eq(r->ttl, 0);
	cr_assert_eq(r->granted_ttl, 0);
	cr_assert_null(r->token);
	cr_assert_null(r->version);
	cr_assert_eq(r->leader, 0);
}

static void parse_ok_len(etcd_op_type type, const char *body, size_t len, etcd_response *r) {
	char *buf = dup_exact(body, len);
	*r = (etcd_response){};
	int rc = etcd_codec_parse_reply(type, buf, len, r);
	free(buf);
	cr_assert_eq(rc, 0, "parse of %.*s: %d %s", (int) len, body, rc, r->error.message);
	cr_assert_eq(r->error.code, 0);
	cr_assert_eq(r->error.kind, ETCD_ERROR_NONE);
	cr_assert_eq(r->type, type);
}

static void parse_ok(etcd_op_type type, const char *body, etcd_response *r) {
	parse_ok_len(type, body, strlen(body), r);
}

/* The 200 reply of capture id (section after, or the first). */
static void parse_capture(const char *id, const char *after, etcd_op_type type, etcd_response *r) {
	capture *c = cap_load(id, after);
	cr_assert(c->status == 200 || c->status == 0, "capture %s: status %ld", id, c->status);
	cr_assert_eq(c->n_lines, 1, "capture %s: %zu body lines", id, c->n_lines);
	parse_ok(type, c->lines[0], r);
	capture_free(c);
}

/* A malformed body: -EBADMSG, MALFORMED, no gateway code, nothing else set
 * (and nothing leaked: LSan checks at exit). */
static void parse_bad_len(etcd_op_type type, const char *body, size_t len) {
	char *buf = dup_exact(body, len);
	etcd_response r = {};
	int rc = etcd_codec_parse_reply(type, buf, len, &r);
	free(buf);
	etcd_response copy = r;      /* checked after r is released: no leak on failure */
	etcd_response_done(&r);
	cr_assert_eq(rc, -EBADMSG, "type %d body %.*s: rc %d (%s)", type, (int) len, body, rc, copy.error.message);
	cr_assert_eq(copy.error.code, -EBADMSG, "body %.*s", (int) len, body);
	cr_assert_eq(copy.error.kind, ETCD_ERROR_MALFORMED, "body %.*s: kind %d", (int) len, body, copy.error.kind);
	cr_assert_eq(copy.error.grpc_code, -1, "body %.*s: grpc_code %d", (int) len, body, copy.error.grpc_code);
	cr_assert_neq(copy.error.message[0], '\0');
	cr_assert_eq(copy.type, type);
	assert_no_payload(&copy);
	cr_assert_eq(copy.header.revision, 0);
}

static void parse_bad(etcd_op_type type, const char *body) {
	parse_bad_len(type, body, strlen(body));
}

#define H "\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\",\"revision\":\"9\",\"raft_term\":\"2\"}"

/* ---- kv: put ------------------------------------------------------------------ */

Test(etcd_codec, put_reply_is_header_only) {
	etcd_response r;
	parse_capture("01", NULL, ETCD_OP_PUT, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 2, 2);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

Test(etcd_codec, put_reply_with_prev_kv) {
	etcd_response r;
	parse_capture("02", NULL, ETCD_OP_PUT, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 3, 2);
	cr_assert_eq(r.n_kvs, 1);
	assert_kv(&r.kvs[0], "foo", "bar", 2, 2, 1, 0);
	etcd_response_done(&r);
	cr_assert_null(r.kvs);
	cr_assert_eq(r.n_kvs, 0);
	cr_assert_eq(r.type, ETCD_OP_PUT, "done keeps the type");
}

Test(etcd_codec, put_replies_with_token_and_unknown_field) {
	etcd_response r;
	parse_capture("98", NULL, ETCD_OP_PUT, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 44, 4);
	etcd_response_done(&r);
	parse_capture("16", NULL, ETCD_OP_PUT, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 7, 2);
	etcd_response_done(&r);
}

Test(etcd_codec, put_reply_with_null_or_empty_prev_kv_field) {
	etcd_response r;
	parse_ok(ETCD_OP_PUT, "{" H ",\"prev_kv\":null}", &r);
	cr_assert_eq(r.n_kvs, 0);
	cr_assert_null(r.kvs);
	etcd_response_done(&r);
}

/* ---- kv: range ----------------------------------------------------------------- */

Test(etcd_codec, range_single_key) {
	etcd_response r;
	parse_capture("03", NULL, ETCD_OP_RANGE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 6, 2);
	cr_assert_eq(r.n_kvs, 1);
	assert_kv(&r.kvs[0], "foo", "bar2", 2, 3, 2, 0);
	cr_assert_eq(r.count, 1);
	cr_assert_not(r.more);
	etcd_response_done(&r);
}

Test(etcd_codec, range_missing_key_has_no_kvs_and_no_count) {
	etcd_response r;
	parse_capture("04", NULL, ETCD_OP_RANGE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 6, 2);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

Test(etcd_codec, range_prefix) {
	etcd_response r;
	parse_capture("05", NULL, ETCD_OP_RANGE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 6, 2);
	cr_assert_eq(r.n_kvs, 3);
	assert_kv(&r.kvs[0], "/svc/a", "va", 4, 4, 1, 0);
	assert_kv(&r.kvs[1], "/svc/b", "vb", 5, 5, 1, 0);
	assert_kv(&r.kvs[2], "/svc/c", "vc", 6, 6, 1, 0);
	cr_assert_eq(r.count, 3);
	cr_assert_not(r.more);
	etcd_response_done(&r);
}

Test(etcd_codec, range_keys_only_has_no_values) {
	static const char *const ids[] = { "06", "19" };   /* snake_case and camelCase requests */
	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		etcd_response r;
		parse_capture(ids[i], NULL, ETCD_OP_RANGE, &r);
		cr_assert_eq(r.n_kvs, 3);
		assert_kv(&r.kvs[0], "/svc/a", NULL, 4, 4, 1, 0);
		assert_kv(&r.kvs[1], "/svc/b", NULL, 5, 5, 1, 0);
		assert_kv(&r.kvs[2], "/svc/c", NULL, 6, 6, 1, 0);
		cr_assert_eq(r.count, 3);
		etcd_response_done(&r);
	}
}

Test(etcd_codec, range_count_only) {
	etcd_response r;
	parse_capture("07", NULL, ETCD_OP_RANGE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 6, 2);
	cr_assert_eq(r.n_kvs, 0);
	cr_assert_null(r.kvs);
	cr_assert_eq(r.count, 3);
	etcd_response_done(&r);
}

Test(etcd_codec, range_at_revision_keeps_current_header_revision) {
	static const char *const ids[] = { "08", "11" };   /* revision sent as number and as string */
	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		etcd_response r;
		parse_capture(ids[i], NULL, ETCD_OP_RANGE, &r);
		assert_header(&r.header, CLUSTER, MEMBER, 6, 2);
		cr_assert_eq(r.n_kvs, 1);
		assert_kv(&r.kvs[0], "foo", "bar", 2, 2, 1, 0);
		cr_assert_eq(r.count, 1);
		etcd_response_done(&r);
	}
}

Test(etcd_codec, range_limit_sets_more) {
	etcd_response r;
	parse_capture("09", NULL, ETCD_OP_RANGE, &r);
	cr_assert_eq(r.n_kvs, 2);
	assert_kv(&r.kvs[0], "/svc/c", "vc", 6, 6, 1, 0);
	assert_kv(&r.kvs[1], "/svc/b", "vb", 5, 5, 1, 0);
	cr_assert(r.more);
	cr_assert_eq(r.count, 3);
	etcd_response_done(&r);
}

Test(etcd_codec, range_all_keys) {
	etcd_response r;
	parse_capture("10", NULL, ETCD_OP_RANGE, &r);
	cr_assert_eq(r.n_kvs, 4);
	assert_kv(&r.kvs[0], "/svc/a", NULL, 4, 4, 1, 0);
	assert_kv(&r.kvs[3], "foo", NULL, 2, 3, 2, 0);
	cr_assert_eq(r.count, 4);
	etcd_response_done(&r);
}

Test(etcd_codec, range_leased_key_carries_lease) {
	etcd_response r;
	parse_capture("47", NULL, ETCD_OP_RANGE, &r);
	cr_assert_eq(r.n_kvs, 1);
	assert_kv(&r.kvs[0], "/leased/k1", "alive", 19, 19, 1, 4242);
	etcd_response_done(&r);
}

Test(etcd_codec, range_on_v3_and_v3beta_paths) {
	static const char *const sections[] = { "### POST /v3/kv/range", "### POST /v3beta/kv/range" };
	for (size_t i = 0; i < ELEMENTSOF(sections); i++) {
		etcd_response r;
		parse_capture("00", sections[i], ETCD_OP_RANGE, &r);
		assert_header(&r.header, CLUSTER, MEMBER, 20, 2);
		assert_kv(&r.kvs[0], "foo", "v6", 2, 15, 6, 0);
		etcd_response_done(&r);
	}
}

Test(etcd_codec, range_before_token_expiry) {
	etcd_response r;
	parse_capture("99b", "--- use immediately:", ETCD_OP_RANGE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 85, 5);
	assert_kv(&r.kvs[0], "/app/x", "1", 44, 44, 1, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, range_binary_key_and_value_keep_their_length) {
	etcd_response r;
	/* key 00 ff 00, value "a\0b" */
	parse_ok(ETCD_OP_RANGE, "{\"kvs\":[{\"key\":\"AP8A\",\"value\":\"YQBi\"}],\"count\":\"1\"}", &r);
	cr_assert_eq(r.kvs[0].key_len, 3);
	cr_assert_eq(memcmp(r.kvs[0].key, "\0\xff\0", 4), 0);
	cr_assert_eq(r.kvs[0].value_len, 3);
	cr_assert_eq(memcmp(r.kvs[0].value, "a\0b", 4), 0);
	etcd_response_done(&r);
}

Test(etcd_codec, range_empty_value_is_present_but_empty) {
	etcd_response r;
	parse_ok(ETCD_OP_RANGE, "{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"\"}]}", &r);
	cr_assert_not_null(r.kvs[0].value);
	cr_assert_eq(r.kvs[0].value_len, 0);
	cr_assert_eq(r.kvs[0].value[0], '\0');
	etcd_response_done(&r);
}

Test(etcd_codec, range_large_value) {
	char raw[3000];
	for (size_t i = 0; i < sizeof raw; i++)
		raw[i] = (char) (i * 7);
	_cleanup_free_ char *b = NULL;
	{
		/* build the body with the codec's own encoder */
		etcd_put_req put = { .key = "big", .value = raw, .value_len = sizeof raw };
		json_t *o = etcd_codec_put(&put);
		cr_assert_not_null(o);
		json_t *kv = json_pack("{s:[O]}", "kvs", o);
		json_decref(o);
		b = json_dumps(kv, JSON_COMPACT);
		json_decref(kv);
	}
	etcd_response r;
	parse_ok(ETCD_OP_RANGE, b, &r);
	cr_assert_eq(r.kvs[0].value_len, sizeof raw);
	cr_assert_eq(memcmp(r.kvs[0].value, raw, sizeof raw), 0);
	etcd_response_done(&r);
}

Test(etcd_codec, range_integers_as_json_numbers_and_nulls) {
	etcd_response r;
	parse_ok(ETCD_OP_RANGE,
		 "{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":3,\"raft_term\":4},"
		 "\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":5,\"mod_revision\":6,\"version\":7,\"lease\":8,"
		 "\"value\":null}],\"count\":9,\"more\":null}",
		 &r);
	assert_header(&r.header, 1, 2, 3, 4);
	assert_kv(&r.kvs[0], "foo", NULL, 5, 6, 7, 8);
	cr_assert_eq(r.count, 9);
	etcd_response_done(&r);
}

Test(etcd_codec, range_unknown_fields_are_ignored) {
	etcd_response r;
	parse_ok(ETCD_OP_RANGE,
		 "{\"header\":{\"revision\":\"5\",\"extra\":[1,{}]},\"kvs\":[{\"key\":\"Zm9v\",\"foo\":{}}],\"bar\":\"x\"}",
		 &r);
	cr_assert_eq(r.header.revision, 5);
	assert_kv(&r.kvs[0], "foo", NULL, 0, 0, 0, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, range_extreme_integers) {
	etcd_response r;
	parse_ok(ETCD_OP_RANGE,
		 "{\"header\":{\"cluster_id\":\"18446744073709551615\",\"revision\":\"9223372036854775807\","
		 "\"raft_term\":\"-9223372036854775808\"},\"count\":\"0\"}",
		 &r);
	cr_assert_eq(r.header.cluster_id, UINT64_MAX);
	cr_assert_eq(r.header.revision, INT64_MAX);
	cr_assert_eq(r.header.raft_term, INT64_MIN);
	etcd_response_done(&r);
}

Test(etcd_codec, member_ids_above_int64_max) {
	/* The 3-member cluster's ids do not fit an int64. */
	etcd_response r;
	parse_capture("86", "### /v3/maintenance/status:", ETCD_OP_STATUS, &r);
	assert_header(&r.header, UINT64_C(12766730506319933520), UINT64_C(15591367634152891082), 4, 23);
	etcd_response_done(&r);
}

Test(etcd_codec, empty_object_is_a_valid_reply_of_zero_values) {
	static const etcd_op_type types[] = {
		ETCD_OP_RANGE,        ETCD_OP_PUT,       ETCD_OP_DELETE, ETCD_OP_TXN,
		ETCD_OP_LEASE_REVOKE, ETCD_OP_LEASE_KEEPALIVE, ETCD_OP_LEASE_TTL, ETCD_OP_STATUS,
	};
	for (size_t i = 0; i < ELEMENTSOF(types); i++) {
		etcd_response r;
		parse_ok(types[i], "{}", &r);
		assert_header(&r.header, 0, 0, 0, 0);
		assert_no_payload(&r);
		etcd_response_done(&r);
	}
	/* the alarm list with no alarms is exactly "{}" */
	etcd_response r;
	parse_capture("83", NULL, ETCD_OP_RANGE, &r);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

Test(etcd_codec, empty_object_is_not_a_lease_grant_or_a_token) {
	parse_bad(ETCD_OP_LEASE_GRANT, "{}");
	parse_bad(ETCD_OP_AUTH, "{}");
}

Test(etcd_codec, reply_whitespace_around_the_object) {
	etcd_response r;
	parse_ok(ETCD_OP_RANGE, " \n{\"count\":\"2\"}\r\n ", &r);
	cr_assert_eq(r.count, 2);
	etcd_response_done(&r);
}

Test(etcd_codec, reply_length_is_respected) {
	/* the body is the first len bytes; what follows is not looked at */
	const char body[] = "{\"count\":\"2\"}garbage";
	etcd_response r;
	parse_ok_len(ETCD_OP_RANGE, body, strlen("{\"count\":\"2\"}"), &r);
	cr_assert_eq(r.count, 2);
	etcd_response_done(&r);
}

Test(etcd_codec, parse_reply_json_borrows_root) {
	json_t *root = json_loads("{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"}],\"count\":\"1\"}", 0, NULL);
	cr_assert_not_null(root);
	etcd_response r = {};
	cr_assert_eq(etcd_codec_parse_reply_json(ETCD_OP_RANGE, root, &r), 0);
	cr_assert_eq(root->refcount, 1);
	json_decref(root);
	assert_kv(&r.kvs[0], "foo", "bar", 0, 0, 0, 0);   /* copies, not borrowed */
	etcd_response_done(&r);
}

Test(etcd_codec, parse_reply_json_null_root_is_malformed) {
	static const etcd_op_type types[] = { ETCD_OP_RANGE, ETCD_OP_TXN, ETCD_OP_LEASE_KEEPALIVE, ETCD_OP_AUTH };
	for (size_t i = 0; i < ELEMENTSOF(types); i++) {
		etcd_response r = {};
		cr_assert_eq(etcd_codec_parse_reply_json(types[i], NULL, &r), -EBADMSG);
		cr_assert_eq(r.error.kind, ETCD_ERROR_MALFORMED);
		cr_assert_eq(r.error.grpc_code, -1);
		etcd_response_done(&r);
	}
}

Test(etcd_codec, response_free_accepts_null_and_heap_responses) {
	cr_assert_null(etcd_response_free(NULL));
	etcd_response *r = calloc(1, sizeof *r);
	cr_assert_not_null(r);
	capture *c = cap_load("35", NULL);
	cr_assert_eq(etcd_codec_parse_reply(ETCD_OP_TXN, c->lines[0], strlen(c->lines[0]), r), 0);
	capture_free(c);
	cr_assert_null(etcd_response_free(r));
}

/* ---- kv: delete ----------------------------------------------------------------- */

Test(etcd_codec, delete_single) {
	etcd_response r;
	parse_capture("20", NULL, ETCD_OP_DELETE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 12, 2);
	cr_assert_eq(r.deleted, 1);
	cr_assert_eq(r.n_kvs, 0);
	cr_assert_null(r.kvs);
	etcd_response_done(&r);
}

Test(etcd_codec, delete_prefix_with_prev_kvs) {
	etcd_response r;
	parse_capture("21", NULL, ETCD_OP_DELETE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 13, 2);
	cr_assert_eq(r.deleted, 2);
	cr_assert_eq(r.n_kvs, 2);
	assert_kv(&r.kvs[0], "/del/x2", "x2", 10, 10, 1, 0);
	assert_kv(&r.kvs[1], "/del/x3", "x3", 11, 11, 1, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, delete_missing_has_no_deleted) {
	etcd_response r;
	parse_capture("22", NULL, ETCD_OP_DELETE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 13, 2);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

/* ---- kv: txn -------------------------------------------------------------------- */

Test(etcd_codec, txn_value_compare_success_with_nested_prev_kv) {
	etcd_response r;
	parse_capture("30", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 14, 2);
	cr_assert(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	etcd_response *p = &r.responses[0];
	cr_assert_eq(p->type, ETCD_OP_PUT);
	cr_assert_eq(p->error.code, 0);
	assert_rev_only(&p->header, 14);
	cr_assert_eq(p->n_kvs, 1);
	assert_kv(&p->kvs[0], "foo", "bar3", 2, 8, 4, 0);
	cr_assert_eq(r.n_kvs, 0, "the prev_kv belongs to the nested put");
	etcd_response_done(&r);
	cr_assert_null(r.responses);
	cr_assert_eq(r.n_responses, 0);
}

Test(etcd_codec, txn_value_compare_failure_has_no_succeeded) {
	etcd_response r;
	parse_capture("31", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 14, 2);
	cr_assert_not(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	etcd_response *g = &r.responses[0];
	cr_assert_eq(g->type, ETCD_OP_RANGE);
	assert_rev_only(&g->header, 14);
	cr_assert_eq(g->n_kvs, 1);
	assert_kv(&g->kvs[0], "foo", "bar4", 2, 14, 5, 0);
	cr_assert_eq(g->count, 1);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_version_compare) {
	etcd_response r;
	parse_capture("32", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 15, 2);
	cr_assert(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	cr_assert_eq(r.responses[0].type, ETCD_OP_PUT);
	assert_rev_only(&r.responses[0].header, 15);
	cr_assert_eq(r.responses[0].n_kvs, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_create_if_absent_wins_then_loses) {
	etcd_response r;
	parse_capture("33", NULL, ETCD_OP_TXN, &r);
	cr_assert(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	cr_assert_eq(r.responses[0].type, ETCD_OP_PUT);
	assert_rev_only(&r.responses[0].header, 16);
	etcd_response_done(&r);

	parse_capture("34", NULL, ETCD_OP_TXN, &r);
	cr_assert_not(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	cr_assert_eq(r.responses[0].type, ETCD_OP_RANGE);
	assert_kv(&r.responses[0].kvs[0], "/lock/newkey", "owner1", 16, 16, 1, 0);
	cr_assert_eq(r.responses[0].count, 1);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_cas_ok_with_two_responses) {
	etcd_response r;
	parse_capture("35", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 17, 2);
	cr_assert(r.succeeded);
	cr_assert_eq(r.n_responses, 2);
	cr_assert_eq(r.responses[0].type, ETCD_OP_PUT);
	assert_rev_only(&r.responses[0].header, 17);
	cr_assert_eq(r.responses[1].type, ETCD_OP_RANGE);
	assert_rev_only(&r.responses[1].header, 17);
	cr_assert_eq(r.responses[1].n_kvs, 1);
	assert_kv(&r.responses[1].kvs[0], "/lock/newkey", "owner1-renewed", 16, 17, 2, 0);
	cr_assert_eq(r.responses[1].count, 1);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_cas_stale) {
	etcd_response r;
	parse_capture("36", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 17, 2);
	cr_assert_not(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	cr_assert_eq(r.responses[0].type, ETCD_OP_RANGE);
	assert_kv(&r.responses[0].kvs[0], "/lock/newkey", "owner1-renewed", 16, 17, 2, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_nested_delete_range) {
	etcd_response r;
	parse_capture("37", NULL, ETCD_OP_TXN, &r);
	cr_assert(r.succeeded);
	cr_assert_eq(r.n_responses, 1);
	etcd_response *d = &r.responses[0];
	cr_assert_eq(d->type, ETCD_OP_DELETE);
	assert_rev_only(&d->header, 18);
	cr_assert_eq(d->deleted, 1);
	cr_assert_eq(d->n_kvs, 1);
	assert_kv(&d->kvs[0], "/lock/newkey", "owner1-renewed", 16, 17, 2, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_failed_without_failure_ops_is_header_only) {
	etcd_response r;
	parse_capture("39", NULL, ETCD_OP_TXN, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 18, 2);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_nested_txn_response) {
	etcd_response r;
	parse_ok(ETCD_OP_TXN,
		 "{" H ",\"succeeded\":true,\"responses\":[{\"response_txn\":{\"header\":{\"revision\":\"9\"},"
		 "\"succeeded\":true,\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"Zm9v\"}],\"count\":\"1\"}},"
		 "{\"response_put\":{}}]}}]}",
		 &r);
	cr_assert_eq(r.n_responses, 1);
	etcd_response *t = &r.responses[0];
	cr_assert_eq(t->type, ETCD_OP_TXN);
	cr_assert(t->succeeded);
	cr_assert_eq(t->n_responses, 2);
	cr_assert_eq(t->responses[0].type, ETCD_OP_RANGE);
	assert_kv(&t->responses[0].kvs[0], "foo", NULL, 0, 0, 0, 0);
	cr_assert_eq(t->responses[1].type, ETCD_OP_PUT);
	etcd_response_done(&r);
}

Test(etcd_codec, txn_empty_responses_array) {
	etcd_response r;
	parse_ok(ETCD_OP_TXN, "{\"succeeded\":true,\"responses\":[]}", &r);
	cr_assert(r.succeeded);
	cr_assert_null(r.responses);
	cr_assert_eq(r.n_responses, 0);
	etcd_response_done(&r);
}

/* ---- leases ------------------------------------------------------------------------ */

Test(etcd_codec, lease_grant) {
	etcd_response r;
	parse_capture("40", NULL, ETCD_OP_LEASE_GRANT, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 18, 2);
	cr_assert_eq(r.lease_id, INT64_C(2324035530134825767));
	cr_assert_eq(r.ttl, 10);
	cr_assert_eq(r.granted_ttl, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_grant_with_chosen_id_and_minimum_ttl) {
	etcd_response r;
	parse_capture("41", NULL, ETCD_OP_LEASE_GRANT, &r);
	cr_assert_eq(r.lease_id, 4242);
	cr_assert_eq(r.ttl, 30);
	etcd_response_done(&r);

	parse_capture("41b", NULL, ETCD_OP_LEASE_GRANT, &r);
	cr_assert_eq(r.lease_id, INT64_C(2324035530134825770));
	cr_assert_eq(r.ttl, 2);
	etcd_response_done(&r);

	parse_capture("99", "--- lease grant with token:", ETCD_OP_LEASE_GRANT, &r);
	cr_assert_eq(r.lease_id, INT64_C(2324035530167983991));
	cr_assert_eq(r.ttl, 5);
	assert_header(&r.header, CLUSTER, MEMBER, 85, 4);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_grant_error_field_is_a_gateway_error) {
	etcd_response r = {};
	const char *body = "{" H ",\"ID\":\"5\",\"TTL\":\"5\",\"error\":\"lease store full\"}";
	cr_assert_eq(etcd_codec_parse_reply(ETCD_OP_LEASE_GRANT, body, strlen(body), &r), -EIO);
	cr_assert_eq(r.error.kind, ETCD_ERROR_GATEWAY);
	cr_assert_eq(r.error.code, -EIO);
	cr_assert_not_null(strstr(r.error.message, "lease store full"), "%s", r.error.message);
	cr_assert_eq(r.lease_id, 0, "nothing else is set on error");
	etcd_response_done(&r);

	/* an empty error string is the zero value: no error */
	parse_ok(ETCD_OP_LEASE_GRANT, "{\"ID\":\"5\",\"TTL\":\"5\",\"error\":\"\"}", &r);
	cr_assert_eq(r.lease_id, 5);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_grant_without_id_or_ttl_is_malformed) {
	parse_bad(ETCD_OP_LEASE_GRANT, "{" H ",\"TTL\":\"5\"}");
	parse_bad(ETCD_OP_LEASE_GRANT, "{" H ",\"ID\":\"5\"}");
	parse_bad(ETCD_OP_LEASE_GRANT, "{" H ",\"ID\":\"5\",\"TTL\":\"0\"}");
	parse_bad(ETCD_OP_LEASE_GRANT, "{" H ",\"ID\":\"5\",\"TTL\":\"-1\"}");
	parse_bad(ETCD_OP_LEASE_GRANT, "{" H ",\"ID\":\"abc\",\"TTL\":\"5\"}");
}

Test(etcd_codec, lease_keepalive_stream_message) {
	capture *c = cap_load("42", NULL);
	cr_assert_eq(c->status, 200);
	cr_assert_eq(c->n_lines, 1);
	etcd_response r;
	parse_ok(ETCD_OP_LEASE_KEEPALIVE, c->lines[0], &r);
	assert_header(&r.header, CLUSTER, MEMBER, 18, 2);
	cr_assert_eq(r.lease_id, 4242);
	cr_assert_eq(r.ttl, 30);
	etcd_response_done(&r);
	capture_free(c);
}

Test(etcd_codec, lease_keepalive_several_in_one_stream) {
	capture *c = cap_load("43", "### POST /v3/lease/keepalive");
	cr_assert_eq(c->n_lines, 2);
	static const int64_t ids[] = { 4242, INT64_C(2324035530134825773) }, ttls[] = { 30, 60 };
	for (size_t i = 0; i < 2; i++) {
		etcd_response r;
		parse_ok(ETCD_OP_LEASE_KEEPALIVE, c->lines[i], &r);
		cr_assert_eq(r.lease_id, ids[i]);
		cr_assert_eq(r.ttl, ttls[i]);
		etcd_response_done(&r);
	}
	capture_free(c);
}

Test(etcd_codec, lease_keepalive_unknown_lease_has_ttl_zero) {
	etcd_response r;
	parse_capture("43", "### unknown lease ID 999:", ETCD_OP_LEASE_KEEPALIVE, &r);
	cr_assert_eq(r.lease_id, 999);
	cr_assert_eq(r.ttl, 0, "a missing TTL means the lease is lost");
	etcd_response_done(&r);
}

Test(etcd_codec, lease_keepalive_unwrapped_body) {
	etcd_response r;
	parse_ok(ETCD_OP_LEASE_KEEPALIVE, "{" H ",\"ID\":\"7\",\"TTL\":\"9\"}", &r);
	cr_assert_eq(r.lease_id, 7);
	cr_assert_eq(r.ttl, 9);
	cr_assert_eq(r.header.revision, 9);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_keepalive_in_stream_error) {
	static const char body[] =
		"{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport is closing\","
		"\"http_status\":\"Service Unavailable\"}}";
	etcd_response r = {};
	int rc = etcd_codec_parse_reply(ETCD_OP_LEASE_KEEPALIVE, body, strlen(body), &r);
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_eq(r.error.code, -EAGAIN);
	cr_assert_eq(r.error.kind, ETCD_ERROR_GATEWAY);
	cr_assert_eq(r.error.grpc_code, 14);
	cr_assert_eq(r.error.http_status, 503);
	cr_assert_not_null(strstr(r.error.message, "transport is closing"), "%s", r.error.message);
	cr_assert_eq(r.ttl, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_keepalive_malformed) {
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"result\":{\"TTL\":\"x\"}}");
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"result\":{\"ID\":true}}");
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"result\":{\"header\":5}}");
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "[{\"result\":{}}]");
}

Test(etcd_codec, lease_keepalive_result_not_an_object_is_malformed) {
	/* Regression (fixed): codec.c etcd_codec_parse_reply_json() only unwraps "result"
	 * when it is an object; otherwise it parses the outer {"result":...}
	 * itself, finds no TTL and reports success with ttl 0, i.e. a false
	 * "lease lost" instead of ETCD_ERROR_MALFORMED. */
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"result\":[]}");
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"result\":\"ok\"}");
}

Test(etcd_codec, lease_keepalive_malformed_stream_error_is_malformed) {
	/* Regression (fixed): codec.c etcd_codec_parse_reply_json(): when the in-stream
	 * {"error":{...}} object itself is malformed (grpc_code not an
	 * integer), parse_stream_error() fills r->error with MALFORMED/-EBADMSG
	 * and the caller then overwrites kind with ETCD_ERROR_GATEWAY and
	 * leaves grpc_code 0: the reply is reported as a gateway error that
	 * has -EBADMSG, not as ETCD_ERROR_MALFORMED with grpc_code -1. */
	parse_bad(ETCD_OP_LEASE_KEEPALIVE, "{\"error\":{\"grpc_code\":\"x\",\"message\":\"m\"}}");
}

Test(etcd_codec, lease_timetolive_with_keys) {
	etcd_response r;
	parse_capture("44", NULL, ETCD_OP_LEASE_TTL, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 19, 2);
	cr_assert_eq(r.lease_id, 4242);
	cr_assert_eq(r.ttl, 24);
	cr_assert_eq(r.granted_ttl, 30);
	cr_assert_eq(r.n_kvs, 1);
	assert_kv(&r.kvs[0], "/leased/k1", NULL, 0, 0, 0, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_timetolive_unknown_lease_is_ttl_minus_one) {
	etcd_response r;
	parse_capture("45", NULL, ETCD_OP_LEASE_TTL, &r);
	cr_assert_eq(r.lease_id, 999);
	cr_assert_eq(r.ttl, -1);
	cr_assert_eq(r.granted_ttl, 0);
	cr_assert_eq(r.n_kvs, 0);
	cr_assert_null(r.kvs);
	etcd_response_done(&r);
}

Test(etcd_codec, lease_timetolive_malformed_keys) {
	parse_bad(ETCD_OP_LEASE_TTL, "{\"ID\":\"1\",\"keys\":\"L2E=\"}");
	parse_bad(ETCD_OP_LEASE_TTL, "{\"ID\":\"1\",\"keys\":[1]}");
	parse_bad(ETCD_OP_LEASE_TTL, "{\"ID\":\"1\",\"keys\":[\"YQ\"]}");
	parse_bad(ETCD_OP_LEASE_TTL, "{\"ID\":\"1\",\"keys\":[\"L2E=\",\"L2I=\",\"!!!!\"]}");   /* no leak */
	parse_bad(ETCD_OP_LEASE_TTL, "{\"ID\":\"1\",\"grantedTTL\":\"1e3\"}");
}

Test(etcd_codec, lease_revoke) {
	etcd_response r;
	parse_capture("48", NULL, ETCD_OP_LEASE_REVOKE, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 20, 2);
	assert_no_payload(&r);
	etcd_response_done(&r);
}

/* ---- status, auth ------------------------------------------------------------------ */

Test(etcd_codec, status) {
	etcd_response r;
	parse_capture("80", NULL, ETCD_OP_STATUS, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 43, 4);
	cr_assert_str_eq(r.version, "3.4.23");
	cr_assert_eq(r.leader, MEMBER);
	etcd_response_done(&r);
	cr_assert_null(r.version);

	parse_capture("99", "--- maintenance/status without token:", ETCD_OP_STATUS, &r);
	cr_assert_str_eq(r.version, "3.4.23");
	cr_assert_eq(r.leader, MEMBER);
	etcd_response_done(&r);
}

Test(etcd_codec, status_without_quorum_has_no_leader) {
	etcd_response r;
	parse_capture("86", "### /v3/maintenance/status:", ETCD_OP_STATUS, &r);
	cr_assert_str_eq(r.version, "3.4.23");
	cr_assert_eq(r.leader, 0);
	etcd_response_done(&r);
}

Test(etcd_codec, status_malformed) {
	parse_bad(ETCD_OP_STATUS, "{\"leader\":\"abc\"}");
	parse_bad(ETCD_OP_STATUS, "{\"leader\":\"-1\"}");
	parse_bad(ETCD_OP_STATUS, "{\"leader\":-1}");
	parse_bad(ETCD_OP_STATUS, "{\"leader\":true}");
	parse_bad(ETCD_OP_STATUS, "{\"version\":\"3.4.23\",\"leader\":[]}");
}

Test(etcd_codec, auth_token) {
	etcd_response r;
	parse_capture("97", NULL, ETCD_OP_AUTH, &r);
	assert_header(&r.header, CLUSTER, MEMBER, 43, 4);
	cr_assert_str_eq(r.token, "mZAIBKtmScEolgAO.87");
	etcd_response_done(&r);
	cr_assert_null(r.token);
}

Test(etcd_codec, auth_without_usable_token_is_malformed) {
	parse_bad(ETCD_OP_AUTH, "{" H "}");
	parse_bad(ETCD_OP_AUTH, "{\"token\":\"\"}");
	parse_bad(ETCD_OP_AUTH, "{\"token\":42}");
	parse_bad(ETCD_OP_AUTH, "{\"token\":null}");
}

/* ---- malformed replies ------------------------------------------------------------- */

Test(etcd_codec, malformed_not_json) {
	static const char *const bodies[] = {
		"not json", "", " ", "{", "{\"header\":", "{\"count\":\"1\"", "{\"count\":\"1\"}}", "{\"count\":\"1\"} x",
		"nul", "\"string\"", "42", "true", "null", "{'count':'1'}", "{\"a\":1,}",
	};
	static const etcd_op_type types[] = { ETCD_OP_RANGE, ETCD_OP_PUT, ETCD_OP_TXN, ETCD_OP_LEASE_KEEPALIVE,
					      ETCD_OP_STATUS };
	for (size_t t = 0; t < ELEMENTSOF(types); t++)
		for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
			parse_bad(types[t], bodies[i]);
}

Test(etcd_codec, malformed_json_array) {
	parse_bad(ETCD_OP_RANGE, "[]");
	parse_bad(ETCD_OP_RANGE, "[{\"count\":\"1\"}]");
	parse_bad(ETCD_OP_DELETE, "[1,2]");
	parse_bad(ETCD_OP_LEASE_REVOKE, "[]");
}

Test(etcd_codec, malformed_truncated_captures) {
	/* every prefix of real replies: never a crash, never a leak */
	static const char *const ids[] = { "05", "21", "35", "44", "80", "97" };
	static const etcd_op_type types[] = { ETCD_OP_RANGE, ETCD_OP_DELETE, ETCD_OP_TXN,
					      ETCD_OP_LEASE_TTL, ETCD_OP_STATUS, ETCD_OP_AUTH };
	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		capture *c = cap_load(ids[i], NULL);
		const char *b = c->lines[0];
		size_t n = strlen(b);
		for (size_t len = 0; len < n; len++)
			parse_bad_len(types[i], b, len);
		capture_free(c);
	}
}

Test(etcd_codec, malformed_header) {
	static const char *const bodies[] = {
		"{\"header\":{\"revision\":\"abc\"}}",
		"{\"header\":{\"revision\":true}}",
		"{\"header\":{\"revision\":1.5}}",
		"{\"header\":{\"revision\":\"1.5\"}}",
		"{\"header\":{\"revision\":\"\"}}",
		"{\"header\":{\"revision\":\"12abc\"}}",
		"{\"header\":{\"revision\":\"0x10\"}}",
		"{\"header\":{\"revision\":[]}}",
		"{\"header\":{\"revision\":{}}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{\"header\":{\"revision\":\"-99999999999999999999\"}}",
		"{\"header\":{\"revision\":99999999999999999999}}",
		"{\"header\":{\"raft_term\":\"x\"}}",
		"{\"header\":{\"cluster_id\":\"-1\"}}",
		"{\"header\":{\"cluster_id\":-1}}",
		"{\"header\":{\"cluster_id\":\"18446744073709551616\"}}",
		"{\"header\":{\"cluster_id\":\"99999999999999999999\"}}",
		"{\"header\":{\"member_id\":1.0}}",
		"{\"header\":{\"member_id\":false}}",
		"{\"header\":[]}",
		"{\"header\":\"h\"}",
		"{\"header\":5}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
		parse_bad(ETCD_OP_RANGE, bodies[i]);
}

Test(etcd_codec, malformed_unsigned_with_leading_space_and_minus) {
	/* Regression (fixed): codec.c get_uint() rejects "-1" by looking at the first
	 * character only; strtoull() skips leading white space and accepts a
	 * sign, so " -1" passes as 18446744073709551615 (and " 5" as 5), which
	 * etcd never sends. */
	parse_bad(ETCD_OP_RANGE, "{\"header\":{\"cluster_id\":\" -1\"}}");
}

Test(etcd_codec, malformed_range_kvs) {
	static const char *const bodies[] = {
		"{\"kvs\":{}}",
		"{\"kvs\":\"Zm9v\"}",
		"{\"kvs\":1}",
		"{\"kvs\":true}",
		"{\"kvs\":[1]}",
		"{\"kvs\":[null]}",
		"{\"kvs\":[[]]}",
		"{\"kvs\":[{}]}",
		"{\"kvs\":[{\"value\":\"eA==\"}]}",                              /* kv without key */
		"{\"kvs\":[{\"key\":null,\"value\":\"eA==\"}]}",
		"{\"kvs\":[{\"key\":5}]}",
		"{\"kvs\":[{\"key\":\"foo!\"}]}",                                /* not base64 */
		"{\"kvs\":[{\"key\":\"YQ\"}]}",                                  /* unpadded */
		"{\"kvs\":[{\"key\":\"Zm9vYQ\"}]}",
		"{\"kvs\":[{\"key\":\"_-8=\"}]}",                                /* url-safe */
		"{\"kvs\":[{\"key\":\"L3N2Yy9h\",\"value\":\"-_-_\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\\n\"}]}",                            /* white space */
		"{\"kvs\":[{\"key\":\"Zm 9v\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\\u0000YmFy\"}]}",                    /* embedded NUL */
		"{\"kvs\":[{\"key\":\"Y=Q=\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YQ\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":5}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"x\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":true}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"version\":1.5}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"lease\":\"99999999999999999999\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"},{\"key\":\"YmFy\",\"value\":\"Zm9v\"},{\"key\":\"!\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"},{\"key\":\"YmFy\",\"value\":\"!!!!\"}]}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"}],\"count\":\"abc\"}",
		"{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"}],\"count\":\"1\",\"more\":\"true\"}",
		"{\"more\":1}",
		"{\"count\":\"99999999999999999999\"}",
		"{\"count\":99999999999999999999}",
		"{\"count\":[]}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
		parse_bad(ETCD_OP_RANGE, bodies[i]);
}

Test(etcd_codec, malformed_put_and_delete) {
	parse_bad(ETCD_OP_PUT, "{\"prev_kv\":[]}");
	parse_bad(ETCD_OP_PUT, "{\"prev_kv\":\"Zm9v\"}");
	parse_bad(ETCD_OP_PUT, "{\"prev_kv\":{\"value\":\"eA==\"}}");
	parse_bad(ETCD_OP_PUT, "{\"prev_kv\":{\"key\":\"Zm9v\",\"value\":\"YmFy\",\"version\":\"x\"}}");
	parse_bad(ETCD_OP_PUT, "{\"prev_kv\":{\"key\":\"Zm9v\",\"value\":\"YQ\"}}");
	parse_bad(ETCD_OP_DELETE, "{\"deleted\":\"x\"}");
	parse_bad(ETCD_OP_DELETE, "{\"deleted\":true}");
	parse_bad(ETCD_OP_DELETE, "{\"deleted\":\"1\",\"prev_kvs\":{}}");
	parse_bad(ETCD_OP_DELETE, "{\"deleted\":\"2\",\"prev_kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"},{\"key\":\"?\"}]}");
	parse_bad(ETCD_OP_LEASE_REVOKE, "{\"header\":{\"revision\":\"r\"}}");
}

Test(etcd_codec, malformed_txn) {
	static const char *const bodies[] = {
		"{\"succeeded\":\"true\"}",
		"{\"succeeded\":1}",
		"{\"responses\":{}}",
		"{\"responses\":\"x\"}",
		"{\"responses\":[1]}",
		"{\"responses\":[null]}",
		"{\"responses\":[[]]}",
		"{\"responses\":[{}]}",                                                /* no kind */
		"{\"responses\":[{\"response_foo\":{}}]}",                           /* unknown kind */
		"{\"responses\":[{\"response_lease_grant\":{\"ID\":\"1\",\"TTL\":\"1\"}}]}",
		"{\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"17\"}}},{\"response_bogus\":{}}]}",
		"{\"responses\":[{\"response_range\":[]}]}",
		"{\"responses\":[{\"response_range\":5}]}",
		"{\"responses\":[{\"response_range\":{\"kvs\":{}}}]}",
		"{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\"}]}},"
		"{\"response_range\":{\"kvs\":[{\"key\":\"YmFy\"},{\"key\":\"!\"}]}}]}",
		"{\"responses\":[{\"response_put\":{\"prev_kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"x\"}}}]}",
		"{\"responses\":[{\"response_delete_range\":{\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"YQ\"}]}}]}",
		"{\"responses\":[{\"response_txn\":{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"Zm9v\"}]}},"
		"{\"response_nope\":{}}]}}]}",
		"{\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"x\"}}}]}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
		parse_bad(ETCD_OP_TXN, bodies[i]);
}

Test(etcd_codec, malformed_nested_error_names_the_field) {
	etcd_response r = {};
	const char *body = "{\"responses\":[{\"response_range\":{\"count\":\"abc\"}}]}";
	cr_assert_eq(etcd_codec_parse_reply(ETCD_OP_TXN, body, strlen(body), &r), -EBADMSG);
	cr_assert_not_null(strstr(r.error.message, "count"), "%s", r.error.message);
	etcd_response_done(&r);
}

Test(etcd_codec, malformed_reply_to_unknown_request_type) {
	parse_bad((etcd_op_type) 99, "{}");
}

/* ---- non-200 replies ---------------------------------------------------------------- */

typedef struct error_case {
	const char *id, *after;
	long http;
	int grpc, code;
	const char *text;
} error_case;

static void check_error_case(const error_case *t) {
	capture *c = cap_load(t->id, t->after);
	cr_assert_eq(c->status, t->http, "%s: status %ld", t->id, c->status);
	cr_assert_eq(c->n_lines, 1, "%s: %zu lines", t->id, c->n_lines);
	size_t len = strlen(c->lines[0]);
	char *body = dup_exact(c->lines[0], len);
	etcd_error e = {};
	etcd_codec_parse_error_reply(c->status, body, len, &e);
	free(body);
	cr_assert_eq(e.kind, ETCD_ERROR_GATEWAY, "%s: kind %d", t->id, e.kind);
	cr_assert_eq(e.code, t->code, "%s: code %d, want %d", t->id, e.code, t->code);
	cr_assert_eq(e.grpc_code, t->grpc, "%s: grpc %d", t->id, e.grpc_code);
	cr_assert_eq(e.http_status, t->http, "%s", t->id);
	cr_assert_not_null(strstr(e.message, t->text), "%s: message \"%s\" lacks \"%s\"", t->id, e.message, t->text);
	cr_assert_eq(e.curl_code, 0);
	cr_assert_eq(e.endpoint[0], '\0');
	capture_free(c);
}

Test(etcd_codec, error_bodies_from_captures) {
	static const error_case cases[] = {
		{ "12", NULL, 400, 11, -ERANGE, "etcdserver: mvcc: required revision is a future revision" },
		{ "13", NULL, 400, 3, -EINVAL, "etcdserver: key is not provided" },
		{ "14", NULL, 400, 3, -EINVAL, "unexpected EOF" },
		{ "15", NULL, 400, 3, -EINVAL, "illegal base64 data at input byte 3" },
		{ "17", NULL, 400, 3, -EINVAL, "illegal base64 data at input byte 0" },
		{ "17b", "### request larger", 400, 3, -EINVAL, "etcdserver: request is too large" },
		{ "18", NULL, 400, 3, -EINVAL, "illegal base64 data at input byte 0" },
		{ "38", NULL, 400, 3, -EINVAL, "etcdserver: duplicate key given in txn request" },
		{ "41c", NULL, 412, 9, -EEXIST, "etcdserver: lease already exists" },
		{ "49", NULL, 404, 5, -ENOENT, "etcdserver: requested lease not found" },
		{ "49b", NULL, 404, 5, -ENOENT, "etcdserver: requested lease not found" },
		{ "51b", NULL, 500, 2, -EIO, "illegal base64 data at input byte 0" },
		{ "53", NULL, 400, 11, -ERANGE, "etcdserver: mvcc: required revision has been compacted" },
		{ "54", NULL, 400, 11, -ERANGE, "etcdserver: mvcc: required revision has been compacted" },
		{ "82", NULL, 400, 3, -EINVAL, "etcdserver: key is not provided" },
		{ "86", "### c3 alone", 503, 14, -EAGAIN, "etcdserver: no leader" },
		{ "86", "### same WITHOUT the header:", 503, 14, -EAGAIN, "etcdserver: request timed out" },
		{ "86", "### serializable range", 503, 14, -EAGAIN, "etcdserver: no leader" },
		{ "97b", NULL, 400, 3, -EINVAL, "etcdserver: authentication failed, invalid user ID or password" },
		{ "97c", NULL, 412, 9, -EEXIST, "etcdserver: authentication is not enabled" },
		{ "98b", NULL, 400, 3, -EINVAL, "etcdserver: user name is empty" },
		{ "98c", NULL, 403, 7, -EACCES, "etcdserver: permission denied" },
		{ "98d", NULL, 401, 16, -EACCES, "etcdserver: invalid auth token" },
		{ "98e", NULL, 401, 16, -EACCES, "etcdserver: invalid auth token" },
		{ "99b", "--- after 5s idle:", 401, 16, -EACCES, "etcdserver: invalid auth token" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		check_error_case(&cases[i]);
}

Test(etcd_codec, error_compacted_is_recognised) {
	static const struct {
		const char *id;
		bool compacted;
	} cases[] = { { "54", true }, { "53", true }, { "12", false }, { "49", false } };
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		capture *c = cap_load(cases[i].id, NULL);
		etcd_error e = {};
		etcd_codec_parse_error_reply(c->status, c->lines[0], strlen(c->lines[0]), &e);
		cr_assert_eq(etcd_error_is_compacted(&e), cases[i].compacted, "%s: %s", cases[i].id, e.message);
		capture_free(c);
	}
}

Test(etcd_codec, error_plain_text_bodies) {
	static const struct {
		const char *after;
		long http;
		const char *text;
	} cases[] = {
		{ "### POST /v3alpha/kv/range", 404, "404 page not found" },
		{ "### POST /v2/kv/range", 404, "404 page not found" },
		{ "### GET /v3/kv/range", 405, "Method Not Allowed" },
		{ "### POST /v3/kv/nonexistent", 404, "Not Found" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		capture *c = cap_load("00", cases[i].after);
		cr_assert_eq(c->status, cases[i].http);
		etcd_error e = {};
		etcd_codec_parse_error_reply(c->status, c->lines[0], strlen(c->lines[0]), &e);
		cr_assert_eq(e.kind, ETCD_ERROR_HTTP);
		cr_assert_eq(e.code, -EPROTO);
		cr_assert_eq(e.grpc_code, -1);
		cr_assert_eq(e.http_status, cases[i].http);
		cr_assert_not_null(strstr(e.message, cases[i].text), "%s", e.message);
		char num[16];
		snprintf(num, sizeof num, "%ld", cases[i].http);
		cr_assert_not_null(strstr(e.message, num), "%s", e.message);
		capture_free(c);
	}
}

Test(etcd_codec, error_health_503_json_without_code) {
	capture *c = cap_load("86", "### GET /health:");
	cr_assert_eq(c->status, 503);
	etcd_error e = {};
	etcd_codec_parse_error_reply(c->status, c->lines[0], strlen(c->lines[0]), &e);
	cr_assert_eq(e.kind, ETCD_ERROR_HTTP);
	cr_assert_eq(e.code, -EAGAIN);
	cr_assert_eq(e.grpc_code, -1);
	cr_assert_eq(e.http_status, 503);
	capture_free(c);
}

Test(etcd_codec, error_without_body) {
	static const struct {
		long http;
		int code;
	} cases[] = { { 503, -EAGAIN }, { 502, -EPROTO }, { 500, -EPROTO }, { 404, -EPROTO }, { 0, -EPROTO } };
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		etcd_error e = {};
		etcd_codec_parse_error_reply(cases[i].http, NULL, 0, &e);
		cr_assert_eq(e.kind, ETCD_ERROR_HTTP);
		cr_assert_eq(e.code, cases[i].code, "HTTP %ld", cases[i].http);
		cr_assert_eq(e.grpc_code, -1);
		cr_assert_eq(e.http_status, cases[i].http);
		cr_assert_neq(e.message[0], '\0');
		etcd_error e2 = {};
		etcd_codec_parse_error_reply(cases[i].http, "", 0, &e2);
		cr_assert_eq(e2.code, cases[i].code);
	}
}

Test(etcd_codec, error_odd_bodies) {
	static const struct {
		const char *body;
		etcd_error_kind kind;
		int code, grpc;
	} cases[] = {
		/* "error" stands in for a missing "message" */
		{ "{\"error\":\"etcdserver: no leader\",\"code\":14}", ETCD_ERROR_GATEWAY, -EAGAIN, 14 },
		{ "{\"message\":\"m\",\"code\":4}", ETCD_ERROR_GATEWAY, -EIO, 4 },
		{ "{\"message\":\"m\",\"code\":0}", ETCD_ERROR_GATEWAY, -EIO, 0 },
		/* not the gateway's shape: plain HTTP error */
		{ "{\"message\":\"m\"}", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "{\"code\":3}", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "{\"message\":\"m\",\"code\":\"3\"}", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "{\"message\":5,\"code\":3}", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "[\"message\",3]", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "{\"error\":\"x\",\"code\":3", ETCD_ERROR_HTTP, -EPROTO, -1 },
		{ "<html><body>Bad Gateway</body></html>", ETCD_ERROR_HTTP, -EPROTO, -1 },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		size_t len = strlen(cases[i].body);
		char *b = dup_exact(cases[i].body, len);
		etcd_error e = {};
		etcd_codec_parse_error_reply(400, b, len, &e);
		free(b);
		cr_assert_eq(e.kind, cases[i].kind, "%s: kind %d", cases[i].body, e.kind);
		cr_assert_eq(e.code, cases[i].code, "%s: code %d", cases[i].body, e.code);
		cr_assert_eq(e.grpc_code, cases[i].grpc, "%s", cases[i].body);
		cr_assert_eq(e.http_status, 400);
	}
}

Test(etcd_codec, error_message_is_cut_to_fit) {
	char body[2048];
	char big[1500];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	snprintf(body, sizeof body, "{\"message\":\"%s\",\"code\":3}", big);
	etcd_error e = {};
	etcd_codec_parse_error_reply(400, body, strlen(body), &e);
	cr_assert_eq(e.code, -EINVAL);
	cr_assert_eq(strlen(e.message), sizeof e.message - 1);

	/* a long plain-text first line, several lines */
	memset(body, 'y', 1000);
	memcpy(body + 1000, "\r\nsecond", 9);
	etcd_error h = {};
	etcd_codec_parse_error_reply(502, body, strlen(body), &h);
	cr_assert_eq(h.kind, ETCD_ERROR_HTTP);
	cr_assert_null(strstr(h.message, "second"));
	cr_assert_lt(strlen(h.message), sizeof h.message);
}

Test(etcd_codec, error_code_from_grpc) {
	static const struct {
		int grpc, code;
	} map[] = {
		{ 0, -EIO },       { 1, -EIO },     { 2, -EIO },     { 3, -EINVAL }, { 4, -EIO },
		{ 5, -ENOENT },    { 6, -EIO },     { 7, -EACCES },  { 8, -EIO },    { 9, -EEXIST },
		{ 10, -EIO },      { 11, -ERANGE }, { 12, -EIO },    { 13, -EIO },   { 14, -EAGAIN },
		{ 15, -EIO },      { 16, -EACCES }, { -1, -EIO },    { 1000, -EIO },
	};
	for (size_t i = 0; i < ELEMENTSOF(map); i++)
		cr_assert_eq(etcd_error_code_from_grpc(map[i].grpc), map[i].code, "grpc %d", map[i].grpc);
}

Test(etcd_codec, error_set_prefix_format) {
	etcd_error e = {};
	etcd_error_set(&e, ETCD_ERROR_LOCAL, -ENOMEM, "out of %s %d", "memory", 7);
	cr_assert_eq(e.kind, ETCD_ERROR_LOCAL);
	cr_assert_eq(e.code, -ENOMEM);
	cr_assert_str_eq(e.message, "out of memory 7");

	etcd_error_prefix(&e, "put /a: ");
	cr_assert_str_eq(e.message, "put /a: out of memory 7");

	char buf[512];
	cr_assert_str_eq(etcd_error_format(&e, buf, sizeof buf), "put /a: out of memory 7");
	snprintf(e.endpoint, sizeof e.endpoint, "http://127.0.0.1:2379");
	cr_assert_str_eq(etcd_error_format(&e, buf, sizeof buf), "http://127.0.0.1:2379: put /a: out of memory 7");
	char small[8];
	cr_assert_str_eq(etcd_error_format(&e, small, sizeof small), "http://");

	/* a prefix that fills the message leaves it whole and terminated */
	char longp[400];
	memset(longp, 'p', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	etcd_error_prefix(&e, longp);
	cr_assert_eq(strlen(e.message), sizeof e.message - 1);
	cr_assert_eq(e.message[0], 'p');

	/* a long message is cut at the end */
	char longm[400];
	memset(longm, 'm', sizeof longm - 1);
	longm[sizeof longm - 1] = '\0';
	etcd_error_set(&e, ETCD_ERROR_HTTP, -EPROTO, "%s", longm);
	etcd_error_prefix(&e, "pre: ");
	cr_assert_eq(strlen(e.message), sizeof e.message - 1);
	cr_assert_eq(strncmp(e.message, "pre: mmm", 8), 0);
}

/* ---- watch lines --------------------------------------------------------------------- */

static void watch_ok_len(const char *line, size_t len, etcd_watch_line *l) {
	char *buf = dup_exact(line, len);
	etcd_error err = {};
	int rc = etcd_codec_parse_watch_line(buf, len, l, &err);
	free(buf);
	cr_assert_eq(rc, 0, "%.*s: %d %s", (int) len, line, rc, err.message);
	cr_assert_eq(err.code, 0);
}

static void watch_ok(const char *line, etcd_watch_line *l) {
	watch_ok_len(line, strlen(line), l);
}

static void watch_bad(const char *line) {
	size_t len = strlen(line);
	char *buf = dup_exact(line, len);
	etcd_watch_line l;
	memset(&l, 0x5a, sizeof l);   /* must be reset, even on failure */
	etcd_error err = {};
	int rc = etcd_codec_parse_watch_line(buf, len, &l, &err);
	free(buf);
	cr_assert_eq(rc, -EBADMSG, "%s: rc %d", line, rc);
	cr_assert_eq(err.code, -EBADMSG, "%s", line);
	cr_assert_eq(err.kind, ETCD_ERROR_MALFORMED, "%s", line);
	cr_assert_neq(err.message[0], '\0');
	cr_assert_null(l.events, "%s", line);
	cr_assert_eq(l.n_events, 0);
	cr_assert_null(l.cancel_reason);
	cr_assert_not(l.created);
	cr_assert_not(l.canceled);
	etcd_watch_line_done(&l);
}

static void assert_plain_line(const etcd_watch_line *l) {
	cr_assert_eq(l->n_events, 0);
	cr_assert_null(l->events);
	cr_assert_null(l->cancel_reason);
	cr_assert_eq(l->compact_revision, 0);
	cr_assert_eq(l->error.code, 0);
}

Test(etcd_codec, watch_prefix_with_prev_kv_stream) {
	capture *c = cap_load("50", NULL);
	cr_assert_eq(c->status, 200);
	cr_assert_eq(c->n_lines, 5);
	etcd_watch_line l;

	watch_ok(c->lines[0], &l);
	cr_assert(l.created);
	cr_assert_not(l.canceled);
	cr_assert_eq(l.watch_id, 0, "watch_id 0 is omitted");
	assert_header(&l.header, CLUSTER, MEMBER, 20, 2);
	assert_plain_line(&l);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[1], &l);
	cr_assert_not(l.created);
	assert_header(&l.header, CLUSTER, MEMBER, 21, 2);
	cr_assert_eq(l.n_events, 1);
	cr_assert_eq(l.events[0].type, ETCD_EVENT_PUT, "a PUT event has no type");
	assert_kv(&l.events[0].kv, "/w/a", "1", 21, 21, 1, 0);
	assert_kv_absent(&l.events[0].prev_kv);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[2], &l);
	cr_assert_eq(l.n_events, 1);
	cr_assert_eq(l.events[0].type, ETCD_EVENT_PUT);
	assert_kv(&l.events[0].kv, "/w/a", "2", 21, 22, 2, 0);
	assert_kv(&l.events[0].prev_kv, "/w/a", "1", 21, 21, 1, 0);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[3], &l);   /* one txn, one message */
	assert_header(&l.header, CLUSTER, MEMBER, 23, 2);
	cr_assert_eq(l.n_events, 2);
	assert_kv(&l.events[0].kv, "/w/b", "3", 23, 23, 1, 0);
	assert_kv(&l.events[1].kv, "/w/c", "4", 23, 23, 1, 0);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[4], &l);
	cr_assert_eq(l.n_events, 3);
	static const char *const keys[] = { "/w/a", "/w/b", "/w/c" };
	static const char *const prev_values[] = { "2", "3", "4" };
	static const int64_t prev_create[] = { 21, 23, 23 }, prev_mod[] = { 22, 23, 23 }, prev_ver[] = { 2, 1, 1 };
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(l.events[i].type, ETCD_EVENT_DELETE);
		assert_kv(&l.events[i].kv, keys[i], NULL, 0, 24, 0, 0);   /* key and mod_revision only */
		assert_kv(&l.events[i].prev_kv, keys[i], prev_values[i], prev_create[i], prev_mod[i], prev_ver[i], 0);
	}
	etcd_watch_line_done(&l);
	cr_assert_null(l.events);
	cr_assert_eq(l.n_events, 0);
	capture_free(c);
}

Test(etcd_codec, watch_line_with_and_without_newline) {
	capture *c = cap_load("50", NULL);
	for (size_t i = 0; i < c->n_lines; i++) {
		char *with_nl;
		cr_assert_geq(asprintf(&with_nl, "%s\n", c->lines[i]), 0);
		etcd_watch_line a, b;
		watch_ok(c->lines[i], &a);
		watch_ok(with_nl, &b);
		cr_assert_eq(a.n_events, b.n_events);
		cr_assert_eq(a.header.revision, b.header.revision);
		cr_assert_eq(a.created, b.created);
		for (size_t j = 0; j < a.n_events; j++) {
			cr_assert_eq(a.events[j].type, b.events[j].type);
			cr_assert_eq(a.events[j].kv.mod_revision, b.events[j].kv.mod_revision);
		}
		etcd_watch_line_done(&a);
		etcd_watch_line_done(&b);
		free(with_nl);
	}
	capture_free(c);
}

Test(etcd_codec, watch_line_length_is_respected) {
	const char buf[] = "{\"result\":{\"created\":true}}\n{\"result\":{\"canceled\":true}}";
	etcd_watch_line l;
	watch_ok_len(buf, strlen("{\"result\":{\"created\":true}}"), &l);
	cr_assert(l.created);
	cr_assert_not(l.canceled);
	etcd_watch_line_done(&l);
}

Test(etcd_codec, watch_several_watches_and_progress_response) {
	capture *c = cap_load("51", "### stream");
	cr_assert_eq(c->n_lines, 5);
	etcd_watch_line l;

	watch_ok(c->lines[0], &l);
	cr_assert(l.created);
	cr_assert_eq(l.watch_id, 7, "a client watch_id is echoed");
	assert_header(&l.header, CLUSTER, MEMBER, 24, 2);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[1], &l);
	cr_assert(l.created);
	cr_assert_eq(l.watch_id, 0);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[2], &l);   /* answer to progress_request */
	cr_assert_not(l.created);
	cr_assert_eq(l.watch_id, -1);
	assert_plain_line(&l);
	etcd_watch_line_done(&l);

	/* a replay batches several revisions; the header is the current one */
	watch_ok(c->lines[3], &l);
	cr_assert_eq(l.watch_id, 7);
	assert_header(&l.header, CLUSTER, MEMBER, 24, 2);
	cr_assert_eq(l.n_events, 3);
	assert_kv(&l.events[0].kv, "/w/a", "1", 21, 21, 1, 0);
	assert_kv(&l.events[1].kv, "/w/a", "2", 21, 22, 2, 0);
	cr_assert_eq(l.events[2].type, ETCD_EVENT_DELETE);
	assert_kv(&l.events[2].kv, "/w/a", NULL, 0, 24, 0, 0);
	assert_kv_absent(&l.events[2].prev_kv);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[4], &l);
	cr_assert_eq(l.watch_id, 0);
	cr_assert_eq(l.n_events, 5);
	cr_assert_eq(l.events[0].type, ETCD_EVENT_PUT);
	cr_assert_eq(l.events[0].kv.mod_revision, 23);
	cr_assert_eq(l.events[4].type, ETCD_EVENT_DELETE);
	assert_kv(&l.events[4].kv, "/w/c", NULL, 0, 24, 0, 0);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_filtered_delete_only) {
	capture *c = cap_load("51b", "### watch with filters NOPUT");
	cr_assert_eq(c->n_lines, 2);
	etcd_watch_line l;
	watch_ok(c->lines[1], &l);
	assert_header(&l.header, CLUSTER, MEMBER, 12104, 5);
	cr_assert_eq(l.n_events, 1);
	cr_assert_eq(l.events[0].type, ETCD_EVENT_DELETE);
	assert_kv(&l.events[0].kv, "/f/a", NULL, 0, 12104, 0, 0);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_compacted_cancel) {
	capture *c = cap_load("55", NULL);
	cr_assert_eq(c->n_lines, 2);
	etcd_watch_line l;
	watch_ok(c->lines[0], &l);
	cr_assert(l.created);
	etcd_watch_line_done(&l);

	watch_ok(c->lines[1], &l);
	cr_assert(l.canceled);
	cr_assert_not(l.created);
	cr_assert_eq(l.compact_revision, 22);
	assert_header(&l.header, CLUSTER, MEMBER, 0, 2);   /* no header.revision */
	cr_assert_eq(l.n_events, 0);
	cr_assert_null(l.cancel_reason);
	cr_assert_eq(l.error.code, 0);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_in_stream_error_without_newline) {
	capture *c = cap_load("56", NULL);
	cr_assert_eq(c->n_lines, 3);
	etcd_watch_line l;
	watch_ok(c->lines[1], &l);
	assert_kv(&l.events[0].kv, "/w/z", "before-kill", 25, 25, 1, 0);
	etcd_watch_line_done(&l);

	/* the last message: no '\n', and curl's note glued to it in the file */
	cr_assert_eq(c->lines[2][strlen(c->lines[2]) - 1], '}');
	watch_ok(c->lines[2], &l);
	cr_assert_eq(l.error.code, -EAGAIN);
	cr_assert_eq(l.error.kind, ETCD_ERROR_GATEWAY);
	cr_assert_eq(l.error.grpc_code, 14);
	cr_assert_eq(l.error.http_status, 503);
	cr_assert_not_null(strstr(l.error.message, "transport is closing"), "%s", l.error.message);
	cr_assert_not(l.created);
	cr_assert_not(l.canceled);
	cr_assert_eq(l.n_events, 0);
	etcd_watch_line_done(&l);
	cr_assert_eq(l.error.code, 0, "done resets the line");
	capture_free(c);
}

Test(etcd_codec, watch_in_stream_no_leader_error) {
	capture *c = cap_load("87", NULL);
	cr_assert_eq(c->n_lines, 2);
	etcd_watch_line l;
	watch_ok(c->lines[0], &l);
	assert_header(&l.header, UINT64_C(12766730506319933520), UINT64_C(15591367634152891082), 4, 23);
	etcd_watch_line_done(&l);
	watch_ok(c->lines[1], &l);
	cr_assert_eq(l.error.code, -EAGAIN);
	cr_assert_eq(l.error.grpc_code, 14);
	cr_assert_not_null(strstr(l.error.message, "etcdserver: no leader"), "%s", l.error.message);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_in_stream_error_codes) {
	static const struct {
		const char *line;
		int code, grpc;
		long http;
	} cases[] = {
		{ "{\"error\":{\"grpc_code\":7,\"http_code\":403,\"message\":\"permission denied\"}}", -EACCES, 7, 403 },
		{ "{\"error\":{\"grpc_code\":\"11\",\"http_code\":\"400\",\"message\":\"compacted\"}}", -ERANGE, 11, 400 },
		{ "{\"error\":{\"grpc_code\":2,\"message\":\"x\"}}", -EIO, 2, 0 },
		{ "{\"error\":{\"grpc_code\":14}}", -EAGAIN, 14, 0 },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		etcd_watch_line l;
		watch_ok(cases[i].line, &l);
		cr_assert_eq(l.error.code, cases[i].code, "%s", cases[i].line);
		cr_assert_eq(l.error.grpc_code, cases[i].grpc, "%s", cases[i].line);
		cr_assert_eq(l.error.http_status, cases[i].http, "%s", cases[i].line);
		cr_assert_eq(l.error.kind, ETCD_ERROR_GATEWAY);
		etcd_watch_line_done(&l);
	}
}

Test(etcd_codec, watch_in_stream_error_without_grpc_code) {
	/* Regression (fixed): codec.c parse_stream_error() starts grpc at -1 ("none", as
	 * etcd.h documents for grpc_code), but get_int() zeroes its output
	 * when the field is absent, so an error object without grpc_code
	 * reports grpc_code 0 (gRPC OK) instead of -1. */
	etcd_watch_line l;
	watch_ok("{\"error\":{\"message\":\"gone\"}}", &l);
	etcd_error e = l.error;
	etcd_watch_line_done(&l);
	cr_assert_lt(e.code, 0);
	cr_assert_eq(e.grpc_code, -1, "grpc_code %d", e.grpc_code);
}

Test(etcd_codec, watch_progress_notify_is_header_only) {
	capture *c = cap_load("57", NULL);
	cr_assert_eq(c->status, 200);
	cr_assert_eq(c->n_lines, 5);
	etcd_watch_line l;
	static const size_t progress[] = { 1, 2, 4 };
	static const int64_t revs[] = { 25, 25, 26 };
	for (size_t i = 0; i < ELEMENTSOF(progress); i++) {
		watch_ok(c->lines[progress[i]], &l);
		cr_assert_not(l.created);
		cr_assert_not(l.canceled);
		cr_assert_eq(l.watch_id, 0);
		assert_header(&l.header, CLUSTER, MEMBER, revs[i], 3);
		assert_plain_line(&l);
		etcd_watch_line_done(&l);
	}
	watch_ok(c->lines[3], &l);
	assert_kv(&l.events[0].kv, "/w/p", "x", 26, 26, 1, 0);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_permission_denied_cancel) {
	static const struct {
		const char *section, *reason;
	} cases[] = {
		{ "--- forbidden:", "rpc error: code = PermissionDenied desc = etcdserver: permission denied" },
		{ "--- no token:", "rpc error: code = InvalidArgument desc = etcdserver: user name is empty" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		capture *c = cap_load("99", cases[i].section);
		cr_assert_eq(c->n_lines, 1);
		etcd_watch_line l;
		watch_ok(c->lines[0], &l);
		cr_assert(l.created);
		cr_assert(l.canceled);
		cr_assert_eq(l.watch_id, -1);
		assert_header(&l.header, CLUSTER, MEMBER, 85, 4);
		cr_assert_not_null(l.cancel_reason);
		cr_assert_str_eq(l.cancel_reason, cases[i].reason);
		cr_assert_eq(l.compact_revision, 0);
		cr_assert_eq(l.error.code, 0);
		etcd_watch_line_done(&l);
		cr_assert_null(l.cancel_reason);
		capture_free(c);
	}
	capture *c = cap_load("99", "--- permitted:");
	etcd_watch_line l;
	watch_ok(c->lines[0], &l);
	cr_assert(l.created);
	cr_assert_not(l.canceled);
	etcd_watch_line_done(&l);
	capture_free(c);
}

Test(etcd_codec, watch_explicit_put_type_and_nulls) {
	etcd_watch_line l;
	watch_ok("{\"result\":{\"header\":null,\"events\":[{\"type\":\"PUT\",\"kv\":{\"key\":\"YQ==\"},\"prev_kv\":null}],"
		 "\"cancel_reason\":null,\"watch_id\":null}}",
		 &l);
	cr_assert_eq(l.n_events, 1);
	cr_assert_eq(l.events[0].type, ETCD_EVENT_PUT);
	assert_kv(&l.events[0].kv, "a", NULL, 0, 0, 0, 0);
	assert_kv_absent(&l.events[0].prev_kv);
	cr_assert_null(l.cancel_reason);
	etcd_watch_line_done(&l);

	watch_ok("{\"result\":{\"events\":[]}}", &l);
	cr_assert_null(l.events);
	cr_assert_eq(l.n_events, 0);
	etcd_watch_line_done(&l);

	watch_ok("{\"result\":{}}", &l);
	assert_plain_line(&l);
	etcd_watch_line_done(&l);
}

Test(etcd_codec, watch_malformed_lines) {
	static const char *const lines[] = {
		"",
		"not json",
		"{",
		"[]",
		"[{\"result\":{}}]",
		"\"result\"",
		"{}",                                                   /* neither result nor error */
		"{\"foo\":{}}",
		"{\"result\":null}",
		"{\"result\":[]}",
		"{\"result\":\"x\"}",
		"{\"result\":{\"created\":\"yes\"}}",
		"{\"result\":{\"canceled\":1}}",
		"{\"result\":{\"watch_id\":\"abc\"}}",
		"{\"result\":{\"compact_revision\":true}}",
		"{\"result\":{\"header\":[]}}",
		"{\"result\":{\"header\":{\"revision\":\"abc\"}}}",
		"{\"result\":{\"header\":{\"member_id\":\"-5\"}}}",
		"{\"result\":{\"events\":{}}}",                         /* events not an array */
		"{\"result\":{\"events\":\"x\"}}",
		"{\"result\":{\"events\":[1]}}",
		"{\"result\":{\"events\":[null]}}",
		"{\"result\":{\"events\":[{}]}}",                       /* event without kv */
		"{\"result\":{\"events\":[{\"type\":\"DELETE\"}]}}",
		"{\"result\":{\"events\":[{\"kv\":[]}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"value\":\"MQ==\"}}]}}",   /* kv without key */
		"{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":\"delete\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":1,\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"_-8=\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"value\":\"Y=Q=\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"},\"prev_kv\":[]}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"},\"prev_kv\":{\"value\":\"MQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"x\"}}]}}",
		/* failures after something was allocated: nothing may leak */
		"{\"result\":{\"cancel_reason\":\"why\",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"value\":\"MQ==\"},"
		"\"prev_kv\":{\"key\":\"YQ==\",\"value\":\"MA==\"}},{\"kv\":{\"key\":\"!\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"value\":\"MQ==\"},"
		"\"prev_kv\":{\"key\":\"YQ==\",\"value\":\"!!\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}},{\"type\":\"BOGUS\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		/* the stream error shape, broken */
		"{\"error\":null}",
		"{\"error\":\"transport is closing\"}",
		"{\"error\":[]}",
		"{\"error\":{\"grpc_code\":\"x\"}}",
		"{\"error\":{\"grpc_code\":14,\"http_code\":true}}",
	};
	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		watch_bad(lines[i]);
}

Test(etcd_codec, watch_truncated_lines) {
	capture *c = cap_load("50", NULL);
	for (size_t i = 0; i < c->n_lines; i++) {
		size_t n = strlen(c->lines[i]);
		for (size_t len = 0; len < n; len++) {
			char *buf = dup_exact(c->lines[i], len);
			etcd_watch_line l;
			etcd_error err = {};
			int rc = etcd_codec_parse_watch_line(buf, len, &l, &err);
			free(buf);
			cr_assert_eq(rc, -EBADMSG, "line %zu cut at %zu", i, len);
			cr_assert_eq(err.kind, ETCD_ERROR_MALFORMED);
			cr_assert_null(l.events);
			etcd_watch_line_done(&l);
		}
	}
	capture_free(c);
}

Test(etcd_codec, watch_line_done_twice_is_safe) {
	etcd_watch_line l;
	watch_ok("{\"result\":{\"cancel_reason\":\"r\",\"events\":[{\"kv\":{\"key\":\"YQ==\"}}]}}", &l);
	etcd_watch_line_done(&l);
	etcd_watch_line_done(&l);
	cr_assert_null(l.events);
}

/* ---- request encoders ------------------------------------------------------------------ */

Test(etcd_codec, encode_put_as_captured) {
	etcd_put_req p1 = { .key = "foo", .value = "bar" };
	expect_request(etcd_codec_put(&p1), "01", 0, false);
	etcd_put_req p2 = { .key = "foo", .value = "bar2", .prev_kv = true };
	expect_request(etcd_codec_put(&p2), "02", 0, false);
	etcd_put_req p3 = { .key = "/leased/k2", .value = "x", .lease = 4242 };
	expect_request(etcd_codec_put(&p3), "49b", 0, false);
	etcd_put_req p4 = { .key = "/app/x", .value = "1" };
	expect_request(etcd_codec_put(&p4), "98", 0, false);
}

Test(etcd_codec, encode_put_lengths_and_binary) {
	etcd_put_req p = { .key = "a\0b", .key_len = 3, .value = "\0\xff", .value_len = 2 };
	json_t *o = etcd_codec_put(&p);
	assert_json_str(o, "{\"key\":\"YQBi\",\"value\":\"AP8=\"}", "binary put");
	json_decref(o);

	/* value_len 0: strlen(value) */
	etcd_put_req q = { .key = "k", .key_len = 1, .value = "hello" };
	o = etcd_codec_put(&q);
	assert_json_str(o, "{\"key\":\"aw==\",\"value\":\"aGVsbG8=\"}", "strlen value");
	json_decref(o);
}

Test(etcd_codec, encode_put_null_value_is_empty) {
	etcd_put_req p = { .key = "foo" };
	json_t *o = etcd_codec_put(&p);
	cr_assert_not_null(o);
	cr_assert_str_eq(json_string_value(json_object_get(o, "key")), "Zm9v");
	json_t *v = json_object_get(o, "value");
	cr_assert(!v || (json_is_string(v) && json_string_length(v) == 0), "an empty value, absent or \"\"");
	cr_assert_eq(json_object_size(o), v ? 2 : 1);
	json_decref(o);
}

Test(etcd_codec, encode_put_flags) {
	etcd_put_req p = { .key = "foo", .value = "bar", .ignore_lease = true, .prev_kv = true, .lease = -5 };
	json_t *o = etcd_codec_put(&p);
	assert_json_str(o, "{\"key\":\"Zm9v\",\"value\":\"YmFy\",\"ignore_lease\":true,\"prev_kv\":true,\"lease\":\"-5\"}",
			"flags");
	json_decref(o);

	etcd_put_req q = { .key = "foo", .value = "bar", .ignore_value = true, .lease = INT64_MAX };
	o = etcd_codec_put(&q);
	assert_json_str(o, "{\"key\":\"Zm9v\",\"ignore_value\":true,\"lease\":\"9223372036854775807\"}", "ignore_value");
	json_decref(o);
}

Test(etcd_codec, encode_put_without_key_fails) {
	etcd_put_req p = { .value = "x" };
	cr_assert_null(etcd_codec_put(&p));
}

Test(etcd_codec, encode_range_as_captured) {
	etcd_range_req r3 = { .key = "foo" };
	expect_request(etcd_codec_range(&r3), "03", 0, false);
	etcd_range_req r4 = { .key = "nope" };
	expect_request(etcd_codec_range(&r4), "04", 0, false);
	etcd_range_req r47 = { .key = "/leased/k1" };
	expect_request(etcd_codec_range(&r47), "47", 0, false);
}

Test(etcd_codec, encode_range_prefix_as_captured) {
	etcd_range_req r5 = { .key = "/svc/", .prefix = true };
	json_t *o = etcd_codec_range(&r5);
	cr_assert_str_eq(json_string_value(json_object_get(o, "range_end")), "L3N2YzA=");
	expect_request(o, "05", 0, false);

	etcd_range_req explicit_end = { .key = "/svc/", .range_end = "/svc0" };
	expect_request(etcd_codec_range(&explicit_end), "05", 0, false);

	etcd_range_req r6 = { .key = "/svc/", .prefix = true, .keys_only = true };
	expect_request(etcd_codec_range(&r6), "06", 0, false);
	etcd_range_req r7 = { .key = "/svc/", .prefix = true, .count_only = true };
	expect_request(etcd_codec_range(&r7), "07", 0, false);
}

Test(etcd_codec, encode_range_revision_limit_sort_as_captured) {
	etcd_range_req r8 = { .key = "foo", .revision = 2 };
	expect_request(etcd_codec_range(&r8), "08", 0, true);
	expect_request(etcd_codec_range(&r8), "11", 0, false);   /* the string form, verbatim */
	etcd_range_req r9 = {
		.key = "/svc/", .prefix = true, .limit = 2, .sort_order = ETCD_SORT_DESCEND, .sort_target = ETCD_SORT_KEY,
	};
	expect_request(etcd_codec_range(&r9), "09", 0, true);
}

Test(etcd_codec, encode_range_all_keys_as_captured) {
	etcd_range_req all = { .key = "\0", .key_len = 1, .range_end = "\0", .range_end_len = 1, .keys_only = true };
	expect_request(etcd_codec_range(&all), "10", 0, false);
	etcd_range_req all_prefix = { .key = "\0", .key_len = 1, .prefix = true, .keys_only = true };
	json_t *o = etcd_codec_range(&all_prefix);
	assert_json_str(o, "{\"key\":\"AA==\",\"range_end\":\"AQ==\",\"keys_only\":true}", "prefix \\0");
	json_decref(o);
}

Test(etcd_codec, encode_range_empty_prefix_is_all_keys) {
	/* Regression (fixed): codec.c set_key_range() sends an empty prefix as
	 * {"key":"","range_end":"AA=="}; etcd rejects an empty key with
	 * 400 "etcdserver: key is not provided" (captures 13 and 82), so
	 * "every key" cannot be read or deleted with .prefix. The form etcd
	 * accepts (capture 10, and what clientv3's WithPrefix sends) is
	 * key "\0", range_end "\0". */
	etcd_range_req r = { .key = "", .prefix = true, .keys_only = true };
	expect_request(etcd_codec_range(&r), "10", 0, false);
}

Test(etcd_codec, encode_delete_empty_prefix_is_all_keys) {
	/* Regression (fixed): the same set_key_range() defect as
	 * encode_range_empty_prefix_is_all_keys: {"key":"","range_end":"AA=="}
	 * is refused by etcd ("key is not provided"). */
	etcd_delete_req d = { .key = "", .prefix = true };
	json_t *o = etcd_codec_delete(&d);
	json_t *want = json_pack("{ssss}", "key", "AA==", "range_end", "AA==");
	bool same = o && json_equal(o, want);
	char *g = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	char msg[256];
	snprintf(msg, sizeof msg, "delete with empty prefix: got %s", g ? g : "(null)");
	free(g);
	json_decref(o);
	json_decref(want);
	cr_assert(same, "%s", msg);
}

Test(etcd_codec, encode_range_options) {
	etcd_range_req r = {
		.key = "k", .serializable = true, .sort_order = ETCD_SORT_ASCEND, .sort_target = ETCD_SORT_MOD,
		.revision = INT64_MAX, .limit = 1,
	};
	json_t *o = etcd_codec_range(&r);
	assert_json_str(o,
			"{\"key\":\"aw==\",\"serializable\":true,\"sort_order\":\"ASCEND\",\"sort_target\":\"MOD\","
			"\"revision\":\"9223372036854775807\",\"limit\":\"1\"}",
			"options");
	json_decref(o);

	static const char *const targets[] = { "KEY", "VERSION", "CREATE", "MOD", "VALUE" };
	for (int t = ETCD_SORT_KEY; t <= ETCD_SORT_VALUE; t++) {
		etcd_range_req s = { .key = "k", .sort_order = ETCD_SORT_DESCEND, .sort_target = t };
		o = etcd_codec_range(&s);
		cr_assert_str_eq(json_string_value(json_object_get(o, "sort_target")), targets[t]);
		cr_assert_str_eq(json_string_value(json_object_get(o, "sort_order")), "DESCEND");
		json_decref(o);
	}

	/* zero values are left out: no sort without an order, no revision or
	 * limit at 0 or below */
	etcd_range_req z = { .key = "k", .sort_target = ETCD_SORT_VALUE, .revision = -3, .limit = -1 };
	o = etcd_codec_range(&z);
	assert_json_str(o, "{\"key\":\"aw==\"}", "zero values");
	json_decref(o);
}

Test(etcd_codec, encode_range_invalid) {
	etcd_range_req nokey = { .range_end = "z" };
	cr_assert_null(etcd_codec_range(&nokey));
	etcd_range_req order = { .key = "k", .sort_order = (etcd_sort_order) 3 };
	cr_assert_null(etcd_codec_range(&order));
	etcd_range_req order_neg = { .key = "k", .sort_order = (etcd_sort_order) -1 };
	cr_assert_null(etcd_codec_range(&order_neg));
	etcd_range_req target = { .key = "k", .sort_order = ETCD_SORT_ASCEND, .sort_target = (etcd_sort_target) 5 };
	cr_assert_null(etcd_codec_range(&target));
}

Test(etcd_codec, encode_range_prefix_wins_over_range_end) {
	etcd_range_req r = { .key = "/svc/", .range_end = "/zzz", .prefix = true };
	json_t *o = etcd_codec_range(&r);
	cr_assert_str_eq(json_string_value(json_object_get(o, "range_end")), "L3N2YzA=");
	json_decref(o);
}

Test(etcd_codec, encode_delete_as_captured) {
	etcd_delete_req d20 = { .key = "/del/x1" };
	expect_request(etcd_codec_delete(&d20), "20", 0, false);
	etcd_delete_req d21 = { .key = "/del/", .prefix = true, .prev_kv = true };
	expect_request(etcd_codec_delete(&d21), "21", 0, false);
	etcd_delete_req d21b = { .key = "/del/", .range_end = "/del0", .prev_kv = true };
	expect_request(etcd_codec_delete(&d21b), "21", 0, false);
	etcd_delete_req d22 = { .key = "/del/none" };
	expect_request(etcd_codec_delete(&d22), "22", 0, false);
	etcd_delete_req nokey = { .prefix = true };
	cr_assert_null(etcd_codec_delete(&nokey));
}

/* txn requests in the captures, built with the codec's types */

static const char *const LOCK = "/lock/newkey";

Test(etcd_codec, encode_txn_cas_as_captured) {
	etcd_compare cmp = { .key = LOCK, .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_MOD, .number = 16 };
	etcd_op success[] = {
		{ .type = ETCD_OP_PUT, .put = { .key = LOCK, .value = "owner1-renewed" } },
		{ .type = ETCD_OP_RANGE, .range = { .key = LOCK } },
	};
	etcd_op failure[] = { { .type = ETCD_OP_RANGE, .range = { .key = LOCK } } };
	etcd_txn_req t = { .compare = &cmp, .n_compare = 1, .success = success, .n_success = 2,
			   .failure = failure, .n_failure = 1 };
	expect_request(etcd_codec_txn(&t), "35", 0, false);

	success[0].put.value = "x";
	t.n_success = 1;
	expect_request(etcd_codec_txn(&t), "36", 0, false);
}

Test(etcd_codec, encode_txn_create_if_absent_as_captured) {
	etcd_compare cmp = { .key = LOCK, .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_CREATE, .number = 0 };
	etcd_op success[] = { { .type = ETCD_OP_PUT, .put = { .key = LOCK, .value = "owner1" } } };
	etcd_op failure[] = { { .type = ETCD_OP_RANGE, .range = { .key = LOCK } } };
	etcd_txn_req t = { .compare = &cmp, .n_compare = 1, .success = success, .n_success = 1,
			   .failure = failure, .n_failure = 1 };
	expect_request(etcd_codec_txn(&t), "33", 0, false);
	success[0].put.value = "owner2";
	expect_request(etcd_codec_txn(&t), "34", 0, false);
}

Test(etcd_codec, encode_txn_value_compare_as_captured) {
	etcd_compare cmp = { .key = "foo", .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_VALUE, .value = "bar3" };
	etcd_op success[] = { { .type = ETCD_OP_PUT, .put = { .key = "foo", .value = "bar4", .prev_kv = true } } };
	etcd_op failure[] = { { .type = ETCD_OP_RANGE, .range = { .key = "foo" } } };
	etcd_txn_req t = { .compare = &cmp, .n_compare = 1, .success = success, .n_success = 1,
			   .failure = failure, .n_failure = 1 };
	expect_request(etcd_codec_txn(&t), "30", 0, false);
	success[0].put.prev_kv = false;
	expect_request(etcd_codec_txn(&t), "31", 0, false);
}

/* The codec always sends the three arrays; a capture that left an empty
 * one out is the same request. */
static json_t *drop_empty_array(json_t *o, const char *field) {
	json_t *a = json_object_get(o, field);
	cr_assert(json_is_array(a) && json_array_size(a) == 0, "\"%s\" is an empty array", field);
	json_object_del(o, field);
	return o;
}

Test(etcd_codec, encode_txn_version_and_multi_compare_as_captured) {
	etcd_compare cmp = { .key = "foo", .result = ETCD_CMP_EQUAL, .target = ETCD_CMP_VERSION, .number = 5 };
	etcd_op success[] = { { .type = ETCD_OP_PUT, .put = { .key = "foo", .value = "v6" } } };
	etcd_txn_req t = { .compare = &cmp, .n_compare = 1, .success = success, .n_success = 1 };
	expect_request(drop_empty_array(etcd_codec_txn(&t), "failure"), "32", 0, false);

	etcd_compare two[] = {
		{ .key = LOCK, .result = ETCD_CMP_NOT_EQUAL, .target = ETCD_CMP_VALUE, .value = "zzz" },
		{ .key = "foo", .result = ETCD_CMP_GREATER, .target = ETCD_CMP_VERSION, .number = 0 },
	};
	etcd_op get[] = { { .type = ETCD_OP_RANGE, .range = { .key = "foo" } } };
	etcd_txn_req t2 = { .compare = two, .n_compare = 2, .success = get, .n_success = 1 };
	expect_request(drop_empty_array(etcd_codec_txn(&t2), "failure"), "39", 0, true);
}

Test(etcd_codec, encode_txn_delete_and_enum_names) {
	/* capture 37 used numeric enums (result 2 = LESS, target 2 = MOD) */
	etcd_compare cmp = { .key = LOCK, .result = ETCD_CMP_LESS, .target = ETCD_CMP_MOD, .number = 100 };
	etcd_op success[] = { { .type = ETCD_OP_DELETE, .del = { .key = LOCK, .prev_kv = true } } };
	etcd_txn_req t = { .compare = &cmp, .n_compare = 1, .success = success, .n_success = 1 };
	json_t *o = drop_empty_array(etcd_codec_txn(&t), "failure");
	assert_json_str(o,
			"{\"compare\":[{\"key\":\"L2xvY2svbmV3a2V5\",\"result\":\"LESS\",\"target\":\"MOD\","
			"\"mod_revision\":\"100\"}],"
			"\"success\":[{\"request_delete_range\":{\"key\":\"L2xvY2svbmV3a2V5\",\"prev_kv\":true}}]}",
			"capture 37 with enum names");
	json_decref(o);
}

Test(etcd_codec, encode_txn_duplicate_puts_as_captured) {
	/* etcd refuses it (400, capture 38), but the encoding is faithful */
	etcd_op success[] = {
		{ .type = ETCD_OP_PUT, .put = { .key = LOCK, .value = "a" } },
		{ .type = ETCD_OP_PUT, .put = { .key = LOCK, .value = "b" } },
	};
	etcd_txn_req t = { .success = success, .n_success = 2 };
	json_t *o = drop_empty_array(drop_empty_array(etcd_codec_txn(&t), "failure"), "compare");
	expect_request(o, "38", 0, false);
}

Test(etcd_codec, encode_txn_every_compare_target_and_result) {
	static const char *const results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	static const char *const targets[] = { "VERSION", "CREATE", "MOD", "VALUE", "LEASE" };
	static const char *const fields[] = { "version", "create_revision", "mod_revision", "value", "lease" };
	for (int res = ETCD_CMP_EQUAL; res <= ETCD_CMP_NOT_EQUAL; res++)
		for (int tg = ETCD_CMP_VERSION; tg <= ETCD_CMP_LEASE; tg++) {
			etcd_compare cmp = { .key = "k", .result = res, .target = tg, .number = 42, .value = "v" };
			etcd_txn_req t = { .compare = &cmp, .n_compare = 1 };
			json_t *o = etcd_codec_txn(&t);
			cr_assert_not_null(o);
			json_t *c = json_array_get(json_object_get(o, "compare"), 0);
			cr_assert_str_eq(json_string_value(json_object_get(c, "result")), results[res]);
			cr_assert_str_eq(json_string_value(json_object_get(c, "target")), targets[tg]);
			cr_assert_str_eq(json_string_value(json_object_get(c, "key")), "aw==");
			cr_assert_str_eq(json_string_value(json_object_get(c, fields[tg])), tg == ETCD_CMP_VALUE ? "dg==" : "42");
			cr_assert_eq(json_object_size(c), 4, "only the target's own field");
			json_decref(o);
		}
}

Test(etcd_codec, encode_txn_value_compare_binary_and_empty) {
	etcd_compare cmp[] = {
		{ .key = "k", .target = ETCD_CMP_VALUE, .value = "\0\1", .value_len = 2 },
		{ .key = "k", .target = ETCD_CMP_VALUE },
	};
	etcd_txn_req t = { .compare = cmp, .n_compare = 2 };
	json_t *o = etcd_codec_txn(&t);
	json_t *a = json_object_get(o, "compare");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "value")), "AAE=");
	json_t *v = json_object_get(json_array_get(a, 1), "value");
	cr_assert(!v || streq(json_string_value(v), ""));
	json_decref(o);
}

Test(etcd_codec, encode_txn_empty) {
	etcd_txn_req t = {};
	json_t *o = etcd_codec_txn(&t);
	assert_json_str(o, "{\"compare\":[],\"success\":[],\"failure\":[]}", "empty txn");
	json_decref(o);
}

Test(etcd_codec, encode_txn_invalid) {
	etcd_compare good = { .key = "k" };
	etcd_compare bad_result = { .key = "k", .result = (etcd_compare_result) 4 };
	etcd_compare bad_target = { .key = "k", .target = (etcd_compare_target) 5 };
	etcd_compare no_key = { .target = ETCD_CMP_MOD };
	const etcd_compare *cmps[] = { &bad_result, &bad_target, &no_key };
	for (size_t i = 0; i < ELEMENTSOF(cmps); i++) {
		etcd_compare two[] = { good, *cmps[i] };
		etcd_txn_req t = { .compare = two, .n_compare = 2 };
		cr_assert_null(etcd_codec_txn(&t), "compare %zu", i);
	}

	etcd_op ops[][2] = {
		{ { .type = ETCD_OP_RANGE, .range = { .key = "a" } }, { .type = ETCD_OP_TXN } },
		{ { .type = ETCD_OP_RANGE, .range = { .key = "a" } }, { .type = ETCD_OP_LEASE_GRANT } },
		{ { .type = ETCD_OP_RANGE, .range = { .key = "a" } }, { .type = ETCD_OP_PUT, .put = { .value = "v" } } },
		{ { .type = ETCD_OP_RANGE, .range = { .key = "a" } }, { .type = ETCD_OP_DELETE, .del = { .prefix = true } } },
		{ { .type = ETCD_OP_RANGE, .range = { .key = "a" } },
		  { .type = ETCD_OP_RANGE, .range = { .key = "a", .sort_order = (etcd_sort_order) 9 } } },
	};
	for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
		etcd_txn_req s = { .success = ops[i], .n_success = 2 };
		cr_assert_null(etcd_codec_txn(&s), "success op set %zu", i);
		etcd_txn_req f = { .failure = ops[i], .n_failure = 2 };
		cr_assert_null(etcd_codec_txn(&f), "failure op set %zu", i);
	}
}

Test(etcd_codec, encode_watch_as_captured) {
	etcd_watch_req w50 = { .key = "/w/", .prefix = true, .prev_kv = true };
	expect_request(etcd_codec_watch(&w50, 0), "50", 0, false);

	etcd_watch_req w55 = { .key = "/w/", .prefix = true };
	expect_request(etcd_codec_watch(&w55, 5), "55", 0, true);

	etcd_watch_req w57 = { .key = "/w/", .prefix = true, .progress_notify = true };
	expect_request(etcd_codec_watch(&w57, 0), "57", 0, false);

	etcd_watch_req w51 = { .key = "/w/", .range_end = "/w0" };
	expect_request(etcd_codec_watch(&w51, 23), "51", 1, true);
}

Test(etcd_codec, encode_watch_single_key_without_watch_id) {
	/* capture 51's first request also set a client watch_id, which the
	 * codec never sends */
	etcd_watch_req w = { .key = "/w/a" };
	json_t *got = etcd_codec_watch(&w, 21);
	capture *c = cap_load("51", NULL);
	cr_assert_eq(c->n_req, 3);
	json_t *want = json_loads(c->req[0], 0, NULL);
	cr_assert_not_null(want);
	json_object_del(json_object_get(want, "create_request"), "watch_id");
	json_t *norm = ints_to_strings(want);
	assert_json_eq(got, norm, "capture 51 without watch_id");
	json_decref(norm);
	json_decref(want);
	json_decref(got);
	capture_free(c);
}

Test(etcd_codec, encode_watch_filters_and_revision_argument) {
	etcd_watch_req w = { .key = "/f/", .prefix = true, .no_put = true, .start_revision = 99 };
	json_t *o = etcd_codec_watch(&w, 0);
	assert_json_str(o, "{\"create_request\":{\"key\":\"L2Yv\",\"range_end\":\"L2Yw\",\"filters\":[\"NOPUT\"]}}",
			"NOPUT; start from the argument, not the struct");
	json_decref(o);

	w.no_delete = true;
	o = etcd_codec_watch(&w, 7);
	assert_json_str(o,
			"{\"create_request\":{\"key\":\"L2Yv\",\"range_end\":\"L2Yw\",\"start_revision\":\"7\","
			"\"filters\":[\"NOPUT\",\"NODELETE\"]}}",
			"both filters");
	json_decref(o);

	etcd_watch_req d = { .key = "k", .no_delete = true };
	o = etcd_codec_watch(&d, -1);
	assert_json_str(o, "{\"create_request\":{\"key\":\"aw==\",\"filters\":[\"NODELETE\"]}}", "NODELETE");
	json_decref(o);

	etcd_watch_req nokey = { .prefix = true };
	cr_assert_null(etcd_codec_watch(&nokey, 0));
}

Test(etcd_codec, encoded_requests_are_fresh_objects) {
	etcd_range_req r = { .key = "foo" };
	json_t *a = etcd_codec_range(&r), *b = etcd_codec_range(&r);
	cr_assert_neq(a, b);
	cr_assert_eq(a->refcount, 1);
	cr_assert_eq(b->refcount, 1);
	json_decref(a);
	json_decref(b);

	etcd_watch_req w = { .key = "foo", .no_put = true };
	json_t *o = etcd_codec_watch(&w, 1);
	cr_assert_eq(o->refcount, 1);
	cr_assert_eq(json_object_get(o, "create_request")->refcount, 1);
	json_decref(o);
}

/* ---- etcd_prefix_end --------------------------------------------------------------------- */

static void expect_prefix_end(const char *key, size_t key_len, const char *want, size_t want_len) {
	char *end = NULL;
	size_t end_len = 12345;
	cr_assert_eq(etcd_prefix_end(key, key_len, &end, &end_len), 0);
	cr_assert_not_null(end);
	cr_assert_eq(end_len, want_len, "length %zu, want %zu", end_len, want_len);
	cr_assert_eq(memcmp(end, want, want_len), 0);
	cr_assert_eq(end[end_len], '\0', "NUL-terminated");
	free(end);
}

Test(etcd_codec, prefix_end_edges) {
	expect_prefix_end("/svc/", 0, "/svc0", 5);
	expect_prefix_end("/svc/", 5, "/svc0", 5);
	expect_prefix_end("", 0, "\0", 1);                     /* everything */
	expect_prefix_end("\xff", 1, "\0", 1);
	expect_prefix_end("\xff\xff\xff", 3, "\0", 1);
	expect_prefix_end("a\xff", 2, "b", 1);
	expect_prefix_end("a\xff\xff", 3, "b", 1);
	expect_prefix_end("ab\xff", 3, "ac", 2);
	expect_prefix_end("a\xfe", 2, "a\xff", 2);
	expect_prefix_end("\xffz", 2, "\xff{", 2);
	expect_prefix_end("a\x7f", 2, "a\x80", 2);
	expect_prefix_end("a\0", 2, "a\x01", 2);
	expect_prefix_end("\0", 1, "\x01", 1);
	expect_prefix_end("abc", 0, "abd", 3);
	expect_prefix_end("abc", 2, "ac", 2);                  /* key_len wins over strlen */
	expect_prefix_end("z", 1, "{", 1);
}

Test(etcd_codec, prefix_end_every_last_byte) {
	for (int b = 0; b < 255; b++) {
		char key[2] = { 'p', (char) b }, want[2] = { 'p', (char) (b + 1) };
		expect_prefix_end(key, 2, want, 2);
	}
}
