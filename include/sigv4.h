/* sigv4.h — AWS Signature Version 4 for the EC2 Query API, without an SDK.
 *
 * Pure: no I/O, no clock, no globals. The caller passes the request exactly
 * as it will go on the wire, the credentials and the time ("amz_date"), and
 * gets back the canonical request, the string to sign, the signature and
 * the Authorization header value. Hashing and HMAC come from OpenSSL 3.
 *
 * Typical EC2 use (POST, form body, path "/"):
 *
 *   char date[SIGV4_AMZ_DATE_MAX];
 *   sigv4_amz_date(now, date);
 *   sigv4_header h[SIGV4_EC2_HEADERS_MAX];
 *   size_t n = sigv4_ec2_headers(h, "POST", host, date, creds.session_token);
 *   sigv4_request rq = { .method = "POST", .path = "/", .headers = h,
 *                        .n_headers = n, .body = body, .body_len = len };
 *   _cleanup_(sigv4_result_done) sigv4_result res = {0};
 *   r = sigv4_sign(&rq, &creds, region, "ec2", date, NULL, &res);
 *   ... send h[0..n) plus "Authorization: " res.authorization, and exactly
 *   len bytes of body (CURLOPT_POSTFIELDSIZE) ...
 *
 * Rules applied (AWS SigV4, as botocore and the AWS test suite do them):
 *   - every header given is signed; names are lowercased and sorted, values
 *     trimmed and every run of whitespace (space, tab, CR, LF) collapsed to
 *     one space; a name given twice has its values joined with ',' in the
 *     order given. So pass exactly the headers you want signed, and never
 *     ones the HTTP library changes (User-Agent, Expect, Content-Length...).
 *   - the path is encoded per RFC 3986 except '/', byte by byte as given
 *     (no dot-segment normalisation: EC2's path is always "/").
 *   - the query (as sent, without '?') is split at '&', each piece at its
 *     first '='; names and values are percent-decoded, then re-encoded per
 *     RFC 3986 (A-Z a-z 0-9 - _ . ~ literal, every other byte %XX upper
 *     case; '+' is a literal '+', i.e. %2B) and sorted by encoded name, then
 *     encoded value; a piece without '=' is "k=". Empty pieces ("&&") are
 *     ignored. Send a query already in that form (sigv4_form_encode) so what
 *     the server sees is what was signed.
 *   - the body hash covers exactly body_len bytes.
 *
 * Secrets: the secret key and session token never appear in outputs other
 * than the token in the canonical request (where it is a signed header),
 * and the derived keys are wiped (OPENSSL_cleanse) before returning. There
 * are no error messages at all: errors are -errno only.
 *
 * Ownership: all inputs are borrowed and only read during the call. Result
 * strings are new, owned by the result; sigv4_result_done() frees them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_FORM_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"
#define SIGV4_EC2_API_VERSION "2016-11-15"
#define SIGV4_AMZ_DATE_MAX 17          /* "YYYYMMDDTHHMMSSZ" + NUL */
#define SIGV4_EC2_HEADERS_MAX 4
#define SIGV4_KEY_LEN 32

typedef struct sigv4_header {
	const char *name;               /* as sent, any case */
	const char *value;              /* as sent */
} sigv4_header;

typedef struct sigv4_request {
	const char *method;             /* "GET", "POST", ... (not empty) */
	const char *path;               /* as sent, starts with '/'; NULL: "/" */
	const char *query;              /* as sent, without '?'; NULL or "": none */
	const sigv4_header *headers;    /* must include Host and X-Amz-Date */
	size_t n_headers;
	const void *body;               /* may be NULL when body_len is 0 */
	size_t body_len;
} sigv4_request;

typedef struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;      /* NULL or "" for long-term keys */
} sigv4_credentials;

typedef struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers;           /* "content-type;host;x-amz-date" */
	char *signature;                /* 64 lower-case hex digits */
	char *authorization;            /* the Authorization header's value */
} sigv4_result;

/* Frees the strings and zeroes r. NULL-safe; for _cleanup_(). */
void sigv4_result_done(sigv4_result *r);

/* kSigning for one (secret, date, region, service), kept by the caller
 * between calls so a busy signer does four HMACs fewer per request. It
 * holds the derived key and a SHA-256 of the secret (never the secret), so
 * a rotated secret misses. Zero-initialise; sigv4_key_cache_clear() wipes
 * it (do so before freeing). */
typedef struct sigv4_key_cache {
	bool valid;
	uint8_t secret_hash[32];
	char date[9];
	char region[64];
	char service[64];
	uint8_t key[SIGV4_KEY_LEN];
} sigv4_key_cache;

void sigv4_key_cache_clear(sigv4_key_cache *c);

/* Signs req. amz_date is "YYYYMMDDTHHMMSSZ" (UTC); its first 8 characters
 * are the scope date. cache may be NULL. On success fills *out (which must
 * be zeroed or done) and returns 0. Errors (*out untouched):
 *   -EINVAL  a missing/empty method, access key, secret, region or service;
 *            a region/service holding '/' or whitespace; a malformed
 *            amz_date; a path not starting with '/'; a header name that is
 *            empty or holds ':', whitespace or control bytes; a query with a
 *            malformed %-escape; no Host header; no X-Amz-Date header or one
 *            differing from amz_date; a session token in creds with no
 *            X-Amz-Security-Token header holding it (EC2 wants it signed);
 *   -ENOMEM  out of memory. */
int sigv4_sign(const sigv4_request *req, const sigv4_credentials *creds, const char *region,
               const char *service, const char *amz_date, sigv4_key_cache *cache, sigv4_result *out);

/* kSigning = HMAC chain "AWS4"+secret -> date (8 digits) -> region ->
 * service -> "aws4_request". 0, or -EINVAL for empty inputs / a bad date. */
int sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                      uint8_t out[SIGV4_KEY_LEN]);

/* Fills h[0..n) with the headers EC2 requests sign and send: Host,
 * X-Amz-Date, Content-Type (SIGV4_FORM_CONTENT_TYPE, only when method is
 * "POST"), X-Amz-Security-Token (only when session_token is non-empty).
 * Pointers are borrowed from the arguments (and a static string); returns
 * n (at most SIGV4_EC2_HEADERS_MAX). */
size_t sigv4_ec2_headers(sigv4_header h[static SIGV4_EC2_HEADERS_MAX], const char *method, const char *host,
                         const char *amz_date, const char *session_token);

/* t (seconds since the epoch) as "YYYYMMDDTHHMMSSZ" in UTC. -EINVAL when
 * t is outside years 0000-9999. */
int sigv4_amz_date(time_t t, char out[static SIGV4_AMZ_DATE_MAX]);

/* One Query API parameter name or value (len bytes) encoded strictly per
 * RFC 3986 for a form body or query: A-Z a-z 0-9 - _ . ~ literal, every
 * other byte %XX with upper-case hex (space is %20, never '+'). New string;
 * NULL when out of memory. sigv4_form_encode(s) is the same over strlen(s). */
char *sigv4_uri_encode(const void *p, size_t len);
char *sigv4_form_encode(const char *value);
