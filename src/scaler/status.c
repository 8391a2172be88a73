/* status.c — <prefix>/scale/status, whether the leader can scale and
 * why not (scale-report.h), written with a fenced put that nothing waits
 * for: the scaler writes it when a cycle's outcome changes it, corrald's
 * leader when it has no scaler to run (no region, no EC2 client). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "leader.h"
#include "scaler.h"

static void on_status_written(etcd_client *e, etcd_response *r, void *userdata) {
	/* A refused fence or a failed write: the next cycle (or leader)
	 * finds out for itself and writes again on its own change. */
	etcd_response_free(r);
}

int scaler_status_write(etcd_client *etcd, const char *prefix, const scale_status *st) {
	_cleanup_free_ char *key = keys_one_of(prefix, KEYS_SCALE_STATUS);
	_cleanup_free_ char *leader_key = keys_one_of(prefix, KEYS_LEADER);
	json_auto_t *j = scale_status_to_json(st);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (!key || !leader_key || !text)
		return -ENOMEM;
	etcd_compare fence = leader_fence(leader_key, st->token);
	etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = key, .value = text, .value_len = strlen(text) } };
	etcd_txn_req req = { .compare = &fence, .n_compare = 1, .success = &put, .n_success = 1 };
	return etcd_txn(etcd, &req, on_status_written, NULL, NULL);
}
