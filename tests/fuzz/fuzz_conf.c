/* fuzz_conf.c — a node's YAML config (written by hand or by cloud-init from
 * user data) through the config loader: 0 with a config, or -EINVAL with
 * a message; never both, never neither. */
#include <errno.h>
#include <string.h>

#include "conf.h"
#include "fuzz.h"

int fuzz_conf(const uint8_t *data, size_t size) {
	conf *c = NULL;
	conf_error err;
	char buf[512];

	memset(&err, 0, sizeof err);
	int rc = conf_load_string((const char *) data, size, "fuzz.yaml", &c, &err);
	if (rc == 0) {
		FUZZ_ASSERT(c);
		conf_free(c);
	} else {
		FUZZ_ASSERT(rc < 0 && !c);
		FUZZ_ASSERT(err.message[0] != '\0' || rc == -ENOMEM);
		conf_error_format(&err, buf, sizeof buf);
	}
	return 0;
}

FUZZ_ENTRY(conf)
