/* members.c — the etcd client's members (endpoints) and fail-over: which
 * member a call goes to next, how long a member that failed is tried last,
 * and which failures are the member's fault. Pure: the caller passes the
 * clock; client.c does the sending. */
#include "etcd-internal.h"

#define MAX_ENDPOINTS   64           /* a call's tried set is one uint64_t */

/* How long a member that failed is tried last: one that did not answer or
 * could not be reached is likely to stay so for a while; one that said "no
 * leader" may be in an election every member goes through. */
#define DEMOTE_UNRESPONSIVE_USEC (5 * USEC_PER_SEC)
#define DEMOTE_UNAVAILABLE_USEC  (1 * USEC_PER_SEC)

int etcd_members_init(etcd_members *m, char *const *urls) {
	m->n = strv_length(urls);
	if (m->n > MAX_ENDPOINTS)
		return -E2BIG;
	m->v = calloc(m->n, sizeof *m->v);
	if (!m->v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		const char *e = urls[i];
		size_t n = strlen(e);
		if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)
			return -EINVAL;
		while (n > 0 && e[n - 1] == '/')
			n--;
		m->v[i].url = strndup(e, n);
		if (!m->v[i].url)
			return -ENOMEM;
	}
	return 0;
}

void etcd_members_done(etcd_members *m) {
	for (size_t i = 0; m->v && i < m->n; i++)
		free(m->v[i].url);
	free(m->v);
}

/* The endpoint to send to, from the current one on: the first in good
 * standing not in `tried`; else the untried one whose demotion ends first;
 * -1 when every endpoint has been tried. */
ssize_t etcd_members_pick(const etcd_members *m, uint64_t tried, uint64_t now) {
	ssize_t best = -1;

	for (size_t k = 0; k < m->n; k++) {
		size_t i = (m->current + k) % m->n;
		if (tried & (UINT64_C(1) << i))
			continue;
		if (m->v[i].demoted_until <= now)
			return (ssize_t) i;
		if (best < 0 || m->v[i].demoted_until < m->v[best].demoted_until)
			best = (ssize_t) i;
	}
	return best;
}

static uint64_t demotion_for(const etcd_error *e) {
	return e->kind == ETCD_ERROR_TRANSPORT ? DEMOTE_UNRESPONSIVE_USEC : DEMOTE_UNAVAILABLE_USEC;
}

size_t etcd_members_untried(const etcd_members *m, uint64_t tried) {
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += !(tried & (UINT64_C(1) << i));
	return n;
}

void etcd_members_failed(etcd_members *m, size_t index, const etcd_error *e, uint64_t now) {
	uint64_t until = now + demotion_for(e);

	if (m->v[index].demoted_until < until)
		m->v[index].demoted_until = until;
	/* Several calls may fail on the same endpoint at once; move on once. */
	if (index == m->current) {
		ssize_t next = etcd_members_pick(m, 0, now);
		if (next >= 0)
			m->current = (size_t) next;
	}
}

bool etcd_error_never_reached(const etcd_error *e) {
	if (e->kind == ETCD_ERROR_TRANSPORT)
		return e->curl_code == CURLE_COULDNT_CONNECT || e->curl_code == CURLE_COULDNT_RESOLVE_HOST;
	/* With hasleader, "no leader" is a refusal before any work. */
	return e->grpc_code == ETCD_GRPC_UNAVAILABLE && strstr(e->message, "no leader");
}

bool etcd_error_endpoint_trouble(const etcd_error *e) {
	return (e->kind == ETCD_ERROR_TRANSPORT && e->curl_code != CURLE_WRITE_ERROR) ||
	       e->grpc_code == ETCD_GRPC_UNAVAILABLE || e->http_status == 503;
}
