/* etcd-metrics.h — what etcd itself counts of the requests it received
 * (its /metrics), for tests that bound what corrald costs etcd. Requests
 * are gRPC messages received: one per unary call, one per keepalive or
 * watch request on a stream. Include after etcd-test.h. */
#pragma once

#include <stdlib.h>
#include <string.h>

enum { M_RANGE, M_TXN, M_PUT, M_DELETE, M_KEEPALIVE, M_WATCH, M_MAX };
static const char *const em_method_names[M_MAX] = { "Range", "Txn", "Put", "DeleteRange", "LeaseKeepAlive",
						     "Watch" };

typedef struct em_counts {
	double v[M_MAX];
} em_counts;

/* Requests by method, from member 0's /metrics. */
static inline em_counts em_metrics(hx_etcd *etcd) {
	_cleanup_free_ char *url = hx_fmt("%s/metrics", hx_etcd_endpoint(etcd, 0)), *body = NULL;
	long code = 0;
	em_counts c = {};

	cr_assert_eq(hx_http(&(hx_http_req){ .url = url, .timeout_ms = 5000 }, &body, &code), 0, "GET %s", url);
	cr_assert_eq(code, 200, "GET %s: %ld", url, code);
	for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "grpc_server_msg_received_total{", 31) != 0)
			continue;
		const char *m = strstr(line, "grpc_method=\"");
		const char *end = strchr(line, '}');
		if (!m || !end)
			continue;
		m += strlen("grpc_method=\"");
		for (unsigned i = 0; i < M_MAX; i++) {
			size_t len = strlen(em_method_names[i]);
			if (strncmp(m, em_method_names[i], len) == 0 && m[len] == '"')
				c.v[i] += strtod(end + 1, NULL);
		}
	}
	return c;
}

/* The counts once etcd received no Range, Txn, Put or DeleteRange for
 * `quiet` (the leader's loops and every status write are done), within
 * `limit`; obs's loop runs meanwhile. */
static inline em_counts em_settled(hx_etcd *etcd, et *obs, uint64_t quiet, uint64_t limit) {
	em_counts prev = em_metrics(etcd);
	uint64_t since = hx_now_usec(), end = since + limit;

	while (hx_now_usec() < end) {
		et_run_for(obs, 250 * USEC_PER_MSEC);
		em_counts now = em_metrics(etcd);
		bool same = true;
		for (unsigned i = M_RANGE; i <= M_DELETE; i++)
			same = same && now.v[i] == prev.v[i];
		if (!same) {
			prev = now;
			since = hx_now_usec();
		} else if (hx_now_usec() - since >= quiet)
			return now;
	}
	cr_assert_fail("etcd never went quiet");
	return prev;
}
