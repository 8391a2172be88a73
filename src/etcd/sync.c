/* sync.c — waiting for one call, for the CLI and tests. */
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
