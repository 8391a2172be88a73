/* sigv4.c — AWS Signature Version 4 (see sigv4.h): canonical request,
 * string to sign, key derivation and signature, with OpenSSL 3's one-shot
 * SHA256() and HMAC(). Pure: nothing here logs, reads a clock or keeps
 * state outside what the caller passes in. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "macro.h"
#include "sigv4.h"

/* ---- a growable string, sticky on OOM so call sites stay linear ---------- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sbuf_grow(sbuf *b, size_t more) {
	if (b->oom)
		return;
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sbuf_addn(sbuf *b, const char *s, size_t n) {
	sbuf_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sbuf_add(sbuf *b, const char *s) {
	sbuf_addn(b, s, strlen(s));
}

static void sbuf_addc(sbuf *b, char c) {
	sbuf_addn(b, &c, 1);
}

static void sbuf_done(sbuf *b) {
	free(b->p);
	*b = (sbuf) { 0 };
}

/* The finished string, or NULL when out of memory (the buffer is freed). */
static char *sbuf_take(sbuf *b) {
	if (b->oom || !b->p) {
		bool had_oom = b->oom;
		sbuf_done(b);
		return had_oom ? NULL : strdup("");
	}
	char *p = b->p;
	*b = (sbuf) { 0 };
	return p;
}

/* ---- encoding ---------------------------------------------------------------- */

static bool is_unreserved(unsigned char c) {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.' || c == '~';
}

static void encode_into(sbuf *b, const unsigned char *p, size_t len, bool keep_slash) {
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		if (is_unreserved(p[i]) || (keep_slash && p[i] == '/'))
			sbuf_addc(b, (char) p[i]);
		else {
			char e[3] = { '%', hex[p[i] >> 4], hex[p[i] & 15] };
			sbuf_addn(b, e, 3);
		}
	}
}

char *sigv4_uri_encode(const void *p, size_t len) {
	sbuf b = { 0 };

	encode_into(&b, p, len, false);
	return sbuf_take(&b);
}

char *sigv4_form_encode(const char *value) {
	return sigv4_uri_encode(value, strlen(value));
}

static int unhex(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX in s[0..n) and re-encodes strictly into a new string.
 * -EINVAL for a malformed escape. */
static int reencode(const char *s, size_t n, char **out) {
	_cleanup_free_ unsigned char *raw = malloc(n + 1);
	size_t k = 0;

	if (!raw)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			raw[k++] = (unsigned char) s[i];
			continue;
		}
		if (i + 2 >= n)         /* fewer than two characters follow */
			return -EINVAL;
		int hi = unhex(s[i + 1]), lo = unhex(s[i + 2]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		raw[k++] = (unsigned char) (hi << 4 | lo);
		i += 2;
	}
	char *e = sigv4_uri_encode(raw, k);
	if (!e)
		return -ENOMEM;
	*out = e;
	return 0;
}

/* ---- hashing ------------------------------------------------------------------- */

static void hex_into(char *out, const uint8_t *p, size_t n) {
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = 0;
}

static void sha256_hex(const void *p, size_t n, char out[65]) {
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(n ? p : (const void *) "", n, md);
	hex_into(out, md, sizeof md);
}

static int hmac(const void *key, size_t key_len, const void *msg, size_t msg_len, uint8_t out[32]) {
	unsigned out_len = 0;

	if (!HMAC(EVP_sha256(), key, (int) key_len, msg, msg_len, out, &out_len) || out_len != 32)
		return -EIO;
	return 0;
}

/* ---- validation ------------------------------------------------------------- */

static bool amz_date_valid(const char *d) {
	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (size_t i = 0; i < 15; i++)
		if (i != 8 && !(d[i] >= '0' && d[i] <= '9'))
			return false;
	return true;
}

static bool scope_part_valid(const char *s) {
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '/' || (unsigned char) *p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

static bool header_name_valid(const char *s) {
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (*p == ':' || (unsigned char) *p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

static bool is_ws(char c) {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- key derivation ------------------------------------------------------------ */

int sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                      uint8_t out[SIGV4_KEY_LEN]) {
	uint8_t k1[32], k2[32];
	int r;

	if (!secret || !*secret || !date8 || strlen(date8) != 8 || !scope_part_valid(region) ||
	    !scope_part_valid(service))
		return -EINVAL;
	for (size_t i = 0; i < 8; i++)
		if (!(date8[i] >= '0' && date8[i] <= '9'))
			return -EINVAL;

	size_t slen = strlen(secret);
	_cleanup_free_ char *k0 = malloc(4 + slen);
	if (!k0)
		return -ENOMEM;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen);

	r = hmac(k0, 4 + slen, date8, 8, k1);
	OPENSSL_cleanse(k0, 4 + slen);
	if (r >= 0)
		r = hmac(k1, 32, region, strlen(region), k2);
	if (r >= 0)
		r = hmac(k2, 32, service, strlen(service), k1);
	if (r >= 0)
		r = hmac(k1, 32, "aws4_request", strlen("aws4_request"), out);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(k2, sizeof k2);
	return r;
}

void sigv4_key_cache_clear(sigv4_key_cache *c) {
	if (c)
		OPENSSL_cleanse(c, sizeof *c);
}

static int signing_key_cached(const sigv4_credentials *creds, const char *date8, const char *region,
                              const char *service, sigv4_key_cache *cache, uint8_t out[SIGV4_KEY_LEN]) {
	uint8_t sh[32];
	int r;

	if (!cache)
		return sigv4_signing_key(creds->secret_access_key, date8, region, service, out);

	SHA256((const unsigned char *) creds->secret_access_key, strlen(creds->secret_access_key), sh);
	if (cache->valid && CRYPTO_memcmp(cache->secret_hash, sh, sizeof sh) == 0 &&
	    strncmp(cache->date, date8, 8) == 0 && streq(cache->region, region) && streq(cache->service, service)) {
		memcpy(out, cache->key, SIGV4_KEY_LEN);
		OPENSSL_cleanse(sh, sizeof sh);
		return 0;
	}

	r = sigv4_signing_key(creds->secret_access_key, date8, region, service, out);
	if (r < 0) {
		OPENSSL_cleanse(sh, sizeof sh);
		return r;
	}
	sigv4_key_cache_clear(cache);
	/* regions/services too long for the cache are simply not cached */
	if (strlen(region) < sizeof cache->region && strlen(service) < sizeof cache->service) {
		memcpy(cache->secret_hash, sh, sizeof sh);
		memcpy(cache->date, date8, 8);
		cache->date[8] = 0;
		strcpy(cache->region, region);
		strcpy(cache->service, service);
		memcpy(cache->key, out, SIGV4_KEY_LEN);
		cache->valid = true;
	}
	OPENSSL_cleanse(sh, sizeof sh);
	return 0;
}

/* ---- canonical parts ------------------------------------------------------------- */

typedef struct hdr {
	char *name;             /* lower case */
	char *value;            /* trimmed, whitespace collapsed */
	size_t order;           /* position as given: duplicates join in this order */
} hdr;

static int hdr_cmp(const void *a, const void *b) {
	const hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void hdrs_free(hdr *h, size_t n) {
	for (size_t i = 0; i < n; i++) {
		/* values can hold the session token */
		if (h[i].value)
			OPENSSL_cleanse(h[i].value, strlen(h[i].value));
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static char *collapse_ws(const char *v) {
	sbuf b = { 0 };
	bool pending = false;

	while (is_ws(*v))
		v++;
	for (; *v; v++) {
		if (is_ws(*v)) {
			pending = true;
			continue;
		}
		if (pending)
			sbuf_addc(&b, ' ');
		pending = false;
		sbuf_addc(&b, *v);
	}
	return sbuf_take(&b);
}

/* Appends "name:value\n" lines (duplicates joined) to creq and the
 * signed-headers list to sh. */
static int canonical_headers(const sigv4_request *req, sbuf *creq, sbuf *sh) {
	hdr *h = calloc(req->n_headers ? req->n_headers : 1, sizeof *h);
	int r = 0;

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++) {
		if (!header_name_valid(req->headers[i].name) || !req->headers[i].value) {
			r = -EINVAL;
			goto finish;
		}
		h[i].name = strdup(req->headers[i].name);
		h[i].value = collapse_ws(req->headers[i].value);
		h[i].order = i;
		if (!h[i].name || !h[i].value) {
			r = -ENOMEM;
			goto finish;
		}
		for (char *p = h[i].name; *p; p++)
			*p = (char) tolower((unsigned char) *p);
	}
	qsort(h, req->n_headers, sizeof *h, hdr_cmp);

	for (size_t i = 0; i < req->n_headers; i++) {
		bool first = i == 0 || !streq(h[i - 1].name, h[i].name);
		if (first) {
			if (i > 0) {
				sbuf_addc(creq, '\n');
				sbuf_addc(sh, ';');
			}
			sbuf_add(creq, h[i].name);
			sbuf_addc(creq, ':');
			sbuf_add(sh, h[i].name);
		} else
			sbuf_addc(creq, ',');
		sbuf_add(creq, h[i].value);
	}
	if (req->n_headers > 0)
		sbuf_addc(creq, '\n');
	r = creq->oom || sh->oom ? -ENOMEM : 0;
finish:
	hdrs_free(h, req->n_headers);
	return r;
}

typedef struct qpair {
	char *name, *value;     /* encoded */
} qpair;

static int qpair_cmp(const void *a, const void *b) {
	const qpair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static void qpairs_free(qpair *q, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
}

static int canonical_query(const char *query, sbuf *out) {
	size_t n = 0, max = 1;
	qpair *q;
	int r = 0;

	if (!query || !*query)
		return 0;
	for (const char *p = query; *p; p++)
		max += *p == '&';
	q = calloc(max, sizeof *q);
	if (!q)
		return -ENOMEM;

	for (const char *p = query; *p;) {
		size_t len = strcspn(p, "&");
		if (len > 0) {
			const char *eq = memchr(p, '=', len);
			size_t nlen = eq ? (size_t) (eq - p) : len;
			r = reencode(p, nlen, &q[n].name);
			if (r >= 0)
				r = eq ? reencode(eq + 1, len - nlen - 1, &q[n].value) : reencode("", 0, &q[n].value);
			n++;
			if (r < 0)
				goto finish;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	qsort(q, n, sizeof *q, qpair_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sbuf_addc(out, '&');
		sbuf_add(out, q[i].name);
		sbuf_addc(out, '=');
		sbuf_add(out, q[i].value);
	}
	r = out->oom ? -ENOMEM : 0;
finish:
	qpairs_free(q, n);
	return r;
}

static const char *header_find(const sigv4_request *req, const char *name) {
	const char *found = NULL;

	for (size_t i = 0; i < req->n_headers; i++)
		if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0) {
			if (found)
				return NULL;    /* given twice: no single value to check */
			found = req->headers[i].value;
		}
	return found;
}

/* ---- signing ---------------------------------------------------------------------- */

void sigv4_result_done(sigv4_result *r) {
	if (!r)
		return;
	if (r->canonical_request)     /* holds the token when one is signed */
		OPENSSL_cleanse(r->canonical_request, strlen(r->canonical_request));
	free(r->canonical_request);
	free(r->string_to_sign);
	free(r->signed_headers);
	free(r->signature);
	free(r->authorization);
	*r = (sigv4_result) { 0 };
}

static void sbuf_wipe_done(sbuf *b) {
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	sbuf_done(b);
}

/* The checks before signing: what cannot be signed. -EINVAL: refused. */
static int sign_args_check(const sigv4_request *req, const sigv4_credentials *creds, const char *region,
                           const char *service, const char *amz_date) {
	if (!req || !creds || !req->method || !*req->method || !creds->access_key_id ||
	    !*creds->access_key_id || !creds->secret_access_key || !*creds->secret_access_key ||
	    !scope_part_valid(region) || !scope_part_valid(service) || !amz_date_valid(amz_date) ||
	    (req->n_headers && !req->headers) || (req->body_len && !req->body))
		return -EINVAL;
	if (req->path && *req->path && req->path[0] != '/')
		return -EINVAL;
	if (strpbrk(creds->access_key_id, "/,= \t\r\n"))
		return -EINVAL;

	/* What EC2 insists on; caught here rather than as a 401 later. */
	const char *v = header_find(req, "host");
	if (!v || !*v)
		return -EINVAL;
	v = header_find(req, "x-amz-date");
	if (!v || !streq(v, amz_date))
		return -EINVAL;
	if (creds->session_token && *creds->session_token) {
		v = header_find(req, "x-amz-security-token");
		if (!v || !streq(v, creds->session_token))
			return -EINVAL;
	}
	return 0;
}

/* Step 1: the canonical request into creq, the signed header list into sh. */
static int canonical_request(const sigv4_request *req, sbuf *creq, sbuf *sh) {
	char body_hash[65];
	int r;

	sbuf_add(creq, req->method);
	sbuf_addc(creq, '\n');
	if (req->path && *req->path)
		encode_into(creq, (const unsigned char *) req->path, strlen(req->path), true);
	else
		sbuf_addc(creq, '/');
	sbuf_addc(creq, '\n');
	r = canonical_query(req->query, creq);
	if (r < 0)
		return r;
	sbuf_addc(creq, '\n');
	r = canonical_headers(req, creq, sh);
	if (r < 0)
		return r;
	sbuf_addc(creq, '\n');
	sbuf_addn(creq, sh->p ? sh->p : "", sh->len);
	sbuf_addc(creq, '\n');
	sha256_hex(req->body, req->body_len, body_hash);
	sbuf_add(creq, body_hash);
	if (creq->oom || sh->oom)
		return -ENOMEM;
	return 0;
}

/* Step 2: the string to sign, over the canonical request's hash. */
static int string_to_sign(const sbuf *creq, const char *amz_date, const char *date8, const char *region,
                          const char *service, sbuf *sts) {
	char creq_hash[65];

	sha256_hex(creq->p, creq->len, creq_hash);
	sbuf_add(sts, SIGV4_ALGORITHM "\n");
	sbuf_add(sts, amz_date);
	sbuf_addc(sts, '\n');
	sbuf_add(sts, date8);
	sbuf_addc(sts, '/');
	sbuf_add(sts, region);
	sbuf_addc(sts, '/');
	sbuf_add(sts, service);
	sbuf_add(sts, "/aws4_request\n");
	sbuf_add(sts, creq_hash);
	if (sts->oom)
		return -ENOMEM;
	return 0;
}

/* Step 3: the signature (hex) of the string to sign, with the day's key. */
static int signature(const sigv4_credentials *creds, const char *date8, const char *region, const char *service,
                     sigv4_key_cache *cache, const sbuf *sts, char sig_hex[static 65]) {
	uint8_t key[SIGV4_KEY_LEN], sig[32];
	int r;

	r = signing_key_cached(creds, date8, region, service, cache, key);
	if (r < 0)
		return r;
	r = hmac(key, sizeof key, sts->p, sts->len, sig);
	OPENSSL_cleanse(key, sizeof key);
	if (r < 0)
		return r;
	hex_into(sig_hex, sig, sizeof sig);
	return 0;
}

/* Step 4: the Authorization header's value. */
static int authorization(const sigv4_credentials *creds, const char *date8, const char *region,
                         const char *service, const sbuf *sh, const char *sig_hex, sbuf *authz) {
	sbuf_add(authz, SIGV4_ALGORITHM " Credential=");
	sbuf_add(authz, creds->access_key_id);
	sbuf_addc(authz, '/');
	sbuf_add(authz, date8);
	sbuf_addc(authz, '/');
	sbuf_add(authz, region);
	sbuf_addc(authz, '/');
	sbuf_add(authz, service);
	sbuf_add(authz, "/aws4_request, SignedHeaders=");
	sbuf_addn(authz, sh->p ? sh->p : "", sh->len);
	sbuf_add(authz, ", Signature=");
	sbuf_add(authz, sig_hex);
	if (authz->oom)
		return -ENOMEM;
	return 0;
}

int sigv4_sign(const sigv4_request *req, const sigv4_credentials *creds, const char *region,
               const char *service, const char *amz_date, sigv4_key_cache *cache, sigv4_result *out) {
	_cleanup_(sbuf_wipe_done) sbuf creq = { 0 };
	_cleanup_(sbuf_done) sbuf sh = { 0 }, sts = { 0 }, authz = { 0 };
	char date8[9], sig_hex[65];
	int r;

	if (!out)
		return -EINVAL;
	r = sign_args_check(req, creds, region, service, amz_date);
	if (r < 0)
		return r;
	memcpy(date8, amz_date, 8);
	date8[8] = 0;

	r = canonical_request(req, &creq, &sh);
	if (r < 0)
		return r;
	r = string_to_sign(&creq, amz_date, date8, region, service, &sts);
	if (r < 0)
		return r;
	r = signature(creds, date8, region, service, cache, &sts, sig_hex);
	if (r < 0)
		return r;
	r = authorization(creds, date8, region, service, &sh, sig_hex, &authz);
	if (r < 0)
		return r;

	_cleanup_(sigv4_result_done) sigv4_result res = {
		.signature = strdup(sig_hex),
		.canonical_request = sbuf_take(&creq),
		.string_to_sign = sbuf_take(&sts),
		.signed_headers = sbuf_take(&sh),
		.authorization = sbuf_take(&authz),
	};
	if (!res.signature || !res.canonical_request || !res.string_to_sign || !res.signed_headers ||
	    !res.authorization)
		return -ENOMEM;

	*out = res;
	res = (sigv4_result) { 0 };
	return 0;
}

/* ---- helpers for callers ------------------------------------------------------------ */

size_t sigv4_ec2_headers(sigv4_header h[static SIGV4_EC2_HEADERS_MAX], const char *method, const char *host,
                         const char *amz_date, const char *session_token) {
	size_t n = 0;

	h[n++] = (sigv4_header) { "Host", host };
	h[n++] = (sigv4_header) { "X-Amz-Date", amz_date };
	if (method && streq(method, "POST"))
		h[n++] = (sigv4_header) { "Content-Type", SIGV4_FORM_CONTENT_TYPE };
	if (session_token && *session_token)
		h[n++] = (sigv4_header) { "X-Amz-Security-Token", session_token };
	return n;
}

int sigv4_amz_date(time_t t, char out[static SIGV4_AMZ_DATE_MAX]) {
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -EINVAL;
	if (strftime(out, SIGV4_AMZ_DATE_MAX, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_AMZ_DATE_MAX - 1)
		return -EINVAL;
	return 0;
}
