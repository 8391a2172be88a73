/* fuzz_etcd_codec.c — the etcd gateway's replies, as they come off the wire,
 * through every parser the client uses: a reply body for each RPC type, a
 * watch stream line, an error body. Parsers must fail cleanly: a reply that
 * says it failed sets a negative code, one that succeeded sets none. */
#include <string.h>

#include "etcd-internal.h"
#include "fuzz.h"

int fuzz_etcd_codec(const uint8_t *data, size_t size) {
	const char *body = (const char *) data;

	for (int t = ETCD_OP_RANGE; t <= ETCD_OP_STATUS; t++) {
		etcd_response r;

		memset(&r, 0, sizeof r);
		int rc = etcd_codec_parse_reply((etcd_op_type) t, body, size, &r);
		FUZZ_ASSERT(rc <= 0);
		FUZZ_ASSERT(rc == r.error.code);
		FUZZ_ASSERT(rc == 0 || (r.kvs == NULL && r.responses == NULL));
		etcd_response_done(&r);
	}

	etcd_watch_line line;
	etcd_error err;
	memset(&line, 0, sizeof line);
	memset(&err, 0, sizeof err);
	int rc = etcd_codec_parse_watch_line(body, size, &line, &err);
	FUZZ_ASSERT(rc == 0 || (rc == -EBADMSG && err.code < 0));
	if (rc == 0)
		etcd_watch_line_done(&line);

	etcd_error e;
	memset(&e, 0, sizeof e);
	etcd_codec_parse_error_reply(400, body, size, &e);
	FUZZ_ASSERT(e.code < 0 && memchr(e.message, '\0', sizeof e.message));
	return 0;
}

FUZZ_ENTRY(etcd_codec)
