/* report.c — what the etcd client says about a call, apart from sending
 * it: the one-line debug trace of each attempt (method, gateway path, the
 * key decoded, result and time; never a body, so never a password or
 * token), and the failure that names every endpoint a call tried, so a
 * caller prints one line instead of one per member. */
#include <inttypes.h>
#include <stdio.h>

#include "b64.h"
#include "etcd-internal.h"
#include "log.h"

/* The key a request body names, decoded: "key" (range, put, delete), a
 * watch's, a txn's first compare, a lease's ID; "" for none. Quoted the way the log
 * convention wants values with spaces or odd bytes. */
static void body_key(const char *body, char *buf, size_t size) {
	json_auto_t *o = json_loads(body, 0, NULL);
	json_t *k = json_object_get(o, "key");
	_cleanup_free_ char *raw = NULL;
	size_t n = 0;

	buf[0] = '\0';
	if (!k) /* a watch */
		k = json_object_get(json_object_get(o, "create_request"), "key");
	if (!k) {
		json_t *cmp = json_array_get(json_object_get(o, "compare"), 0);
		k = json_object_get(cmp, "key");
	}
	if (!k && json_object_get(o, "ID")) {
		json_t *id = json_object_get(o, "ID");
		if (json_is_string(id))
			snprintf(buf, size, "lease:%s", json_string_value(id));
		else if (json_is_integer(id))
			snprintf(buf, size, "lease:%" JSON_INTEGER_FORMAT, json_integer_value(id));
		return;
	}
	if (!json_is_string(k) || b64_decode(json_string_value(k), json_string_length(k), &raw, &n) < 0)
		return;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 5 < size; i++) {
		unsigned char ch = (unsigned char) raw[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			j += (size_t) snprintf(buf + j, size - j, "\\x%02x", ch);
		else
			buf[j++] = (char) ch;
	}
	buf[j < size ? j : size - 1] = '\0';
}

void etcd_report_attempt(const char *path, const char *body, bool is_auth, const char *endpoint, long status,
			 const etcd_error *e, uint64_t usec) {
	char key[200] = "";

	if (log_get_max_level() < LOG_DEBUG)
		return;
	/* The authenticate body holds the password: no key, nothing of it. */
	if (!is_auth && body)
		body_key(body, key, sizeof key);
	log_debug("etcd: request method=POST path=%s%s%s%s endpoint=%s status=%ld code=%d time=%" PRIu64 "ms%s%s%s",
		  path, key[0] ? " key=\"" : "", key, key[0] ? "\"" : "", endpoint, status, e->code,
		  usec / USEC_PER_MSEC, e->code < 0 ? " error=\"" : "", e->code < 0 ? e->message : "",
		  e->code < 0 ? "\"" : "");
}

/* Short words for why one endpoint did not serve the call. */
static void reason(const etcd_error *e, uint64_t usec, char *buf, size_t size) {
	if (e->kind == ETCD_ERROR_TRANSPORT && e->curl_code == CURLE_OPERATION_TIMEDOUT)
		snprintf(buf, size, "no reply in %.1fs", (double) usec / USEC_PER_SEC);
	else if (e->kind == ETCD_ERROR_TRANSPORT && e->curl_code == CURLE_COULDNT_CONNECT)
		snprintf(buf, size, "connection refused");
	else if (e->kind == ETCD_ERROR_TRANSPORT && e->curl_code == CURLE_COULDNT_RESOLVE_HOST)
		snprintf(buf, size, "cannot resolve host");
	else if (e->code == -ECONNRESET)
		snprintf(buf, size, "connection dropped");
	else
		snprintf(buf, size, "%.150s", e->message);
}

void etcd_report_trail_add(char *trail, size_t size, const char *endpoint, const etcd_error *e, uint64_t usec) {
	char why[160];
	size_t n = strnlen(trail, size);

	reason(e, usec, why, sizeof why);
	if (n + 1 < size)
		snprintf(trail + n, size - n, "%s%s (%s)", n ? ", " : "", endpoint, why);
}

void etcd_report_unreachable(etcd_error *e, const char *trail) {
	char msg[sizeof e->message];

	if (!trail[0])
		return;
	snprintf(msg, sizeof msg, "%s: tried %s", e->kind == ETCD_ERROR_TRANSPORT ? "unreachable" : "unavailable",
		 trail);
	memcpy(e->message, msg, sizeof msg);
}
