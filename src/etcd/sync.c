/* sync.c — waiting for one call, for the CLI and tests. */
#include <stdio.h>
#include <string.h>

#include "etcd-internal.h"

void etcd_sync_cb(etcd_client *c, etcd_response *r, void *userdata) {
	etcd_sync *s = userdata;
	s->response = r;
	s->done = true;
}

int etcd_wait(etcd_client *c, etcd_sync *s, etcd_response **out) {
	sd_event *e = etcd_client_event(c);

	/* Every call carries a timeout, so this loop ends. */
	while (!s->done) {
		int r = sd_event_run(e, UINT64_MAX);
		if (r < 0)
			return r;
	}
	int code = s->response ? s->response->error.code : -ENOMEM;
	if (out)
		*out = TAKE_PTR(s->response);
	else
		s->response = etcd_response_free(s->response);
	return code;
}

int etcd_txn_wait(etcd_client *c, const etcd_txn_req *req, etcd_response **out, char *err, size_t err_size) {
	etcd_sync sync = {};
	etcd_response *resp = NULL;
	int r;

	*out = NULL;
	if (err_size > 0)
		err[0] = '\0';
	r = etcd_txn(c, req, etcd_sync_cb, &sync, NULL);
	if (r < 0) {
		snprintf(err, err_size, "%s", strerror(-r));
		return r;
	}
	r = etcd_wait(c, &sync, &resp);
	if (r < 0) {
		etcd_error_format(&resp->error, err, err_size);
		etcd_response_free(resp);
		return r;
	}
	*out = resp;
	return 0;
}
