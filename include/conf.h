/* conf.h — the node's own YAML configuration (what cloud-init writes to
 * /etc/corral/corrald.yaml).
 *
 * Loading parses the whole file into a new `conf`, validates every key and
 * fills defaults; on any problem it returns -EINVAL and describes the first
 * problem in a conf_error (file, line, column, message) and nothing is kept.
 * Callers reload by loading beside the old conf and swapping on success.
 *
 * Unknown keys are errors (a typo must not silently fall back to a default).
 * Durations accept a number of seconds (may be fractional) or a string with a
 * unit: "500ms", "10s", "2m", "1h".
 *
 * Example:
 *   cluster: prod
 *   prefix: /corral/prod             # default /corral/<cluster>
 *   node_id: host-1                  # default: /etc/machine-id
 *   address: 10.0.0.5                # advertised address, default: hostname
 *   services: [Worker, ContestWebServer]
 *   lease_ttl: 10s                   # node key lease (>= 2 s)
 *   log_level: info
 *   etcd:
 *     endpoints: [http://127.0.0.1:2379]
 *     ca_file: /etc/corral/ca.pem
 *     cert_file: /etc/corral/node.pem
 *     key_file: /etc/corral/node-key.pem
 *     username: corral
 *     password_file: /etc/corral/etcd-password   # or password: ...
 *     request_timeout: 10s
 *     connect_timeout: 2s
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct conf_etcd {
	char **endpoints;             /* NULL-terminated; at least one */
	char *ca_file, *cert_file, *key_file;
	char *username;
	char *password;               /* secret: never log it */
	uint64_t request_timeout_usec;
	uint64_t connect_timeout_usec;
} conf_etcd;

typedef struct conf {
	char *path;                   /* file it came from, or the name given */
	char *cluster;
	char *prefix;                 /* no trailing '/' */
	char *node_id;
	char *address;
	char **services;              /* NULL-terminated, may be empty */
	uint64_t lease_ttl_usec;
	int log_level;                /* LOG_* from syslog.h */
	conf_etcd etcd;
} conf;

typedef struct conf_error {
	char file[256];
	unsigned line, column;        /* 1-based; 0 when not about a place */
	char message[256];
} conf_error;

/* Both return 0, -EINVAL for invalid input (err filled), or another -errno
 * for an I/O failure (err filled too). */
int conf_load_file(const char *path, conf **out, conf_error *err);
int conf_load_string(const char *text, size_t len, const char *name, conf **out, conf_error *err);

conf *conf_free(conf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(conf *, conf_free);

/* "file:line:column: message" (or "file: message" without a place). */
const char *conf_error_format(const conf_error *err, char *buf, size_t size);

/* True when two etcd sections would make the same client. */
bool conf_etcd_equal(const conf_etcd *a, const conf_etcd *b);

/* Parses a duration as described above; -EINVAL when malformed. */
int conf_parse_duration(const char *s, uint64_t *out_usec);
