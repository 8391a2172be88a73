/* conf.h — the node's own YAML configuration (what cloud-init writes to
 * /etc/corral/corrald.yaml).
 *
 * Loading parses the whole file into a new `conf`, validates every key and
 * fills defaults; on any problem it returns -EINVAL and describes the first
 * problem in a conf_error (file, line, column, message) and nothing is kept.
 * Callers reload by loading beside the old conf and swapping on success.
 *
 * A conf is reference-counted: loading returns it with one reference,
 * conf_ref() takes another for whoever keeps using it (the reconciler, and
 * an apply under way after a reload swapped it out; the cluster), and the
 * last conf_unref() frees it.
 *
 * The code is split by what it parses (src/conf/): conf.c the node and its
 * etcd section, files.c what it renders, ec2.c EC2 and scaling, initial.c
 * topology and the initial values, upgrade.c the upgrade steps, walk.c the
 * YAML walk they share.
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
 *     attempt_timeout: 2s            # one member, then the next (<= request_timeout)
 *     connect_timeout: 2s
 *     watch_progress_timeout: 3s     # silent watch: is its member answering?
 *
 *   # What this node renders from the cluster config (see docs/operating.md):
 *   files:
 *     cms:                           # the file's name in the cluster config
 *       path: /etc/cms/cms.conf      # absolute
 *       format: json                 # json (default), toml or command
 *       command: /usr/local/bin/render-nginx   # format command: sh -c, JSON
 *                                              # on stdin, the file on stdout
 *       check: cmsCheckConfig "$1"   # optional: sh -c, $1 = the staged file
 *       mode: "0640"                 # default 0644
 *       owner: cms                   # user name or number; default: unchanged
 *       group: cms
 *       restart: [cms-worker.service]   # units restarted when it changes
 *       reload: [nginx.service]         # units reloaded when it changes
 *   topology:                        # this node's part of the cluster config
 *     - service: Worker              # for each live node with this service,
 *       path: cms/core_services/Worker   # the list here holds one entry
 *       value: ["{address}", 26000]  # "{address}", "{node_id}" substituted
 *   initial:                         # proposed only while there is no config
 *     cms: {...}                     # (any YAML; plain scalars typed as JSON)
 *   initial_file: /etc/corral/initial.json   # or: a JSON file of the same
 *   units_bus: system                # system (default) or user
 *   debounce: 1s                     # quiet period before applying a change
 *   max_wait: 10s                    # apply at the latest this long after
 *   command_timeout: 30s             # render and check commands
 *   unit_timeout: 90s                # a unit's restart job, and settling
 *   write_retry: 1s                  # a file that could not be written is
 *   write_retry_max: 60s             # tried again, doubling up to this
 *   history: 20                      # old config snapshots kept
 *   collect_interval: 30s            # the leader collects them at most this often
 *
 *   # Autoscaling (docs/scale.md); without ec2.region this node never scales:
 *   pool: web                        # the scale pool this node belongs to
 *   scale_interval: 30s              # the leader's decision period
 *   launch_grace: 5m                 # unrecorded instances younger are launches in flight
 *   ec2:
 *     region: us-east-1
 *     endpoint: https://ec2.us-east-1.amazonaws.com   # default from region
 *     imds_endpoint: http://169.254.169.254           # "" = no IMDS
 *     credentials_file: /etc/corral/aws-credentials
 *     profile: corral
 *     instance_id: auto              # this node's instance (node record): auto
 *                                    # (default on EC2, see docs/ec2.md), none or i-...
 *     dmi_dir: /sys/devices/virtual/dmi/id   # where EC2 is recognised (tests)
 *
 *   # The node agent (docs/scale.md "Node agent"):
 *   load_command: /usr/local/bin/load   # prints {"jobs":N,"capacity":M,"memory":F}
 *   load_interval: 10s
 *   wind_down_command: systemctl stop cms-worker   # when this host drains
 *   interruption_watch: true         # spot interruption notices (IMDS), default false
 *
 *   # Prometheus metrics over HTTP (docs/metrics.md); absent or "": off:
 *   metrics_listen: 127.0.0.1:9469   # numeric host:port, [IPv6]:port; port 0 = any
 *
 *   # In-place upgrades (docs/upgrades.md); absent: this node is never upgraded.
 *   upgrade:
 *     image_command: cat /etc/cms/image   # required: prints the image running
 *     step_timeout: 5m               # a step without its own timeout (default 5m)
 *     prepare:                       # before anything stops (PREPARE orders)
 *       - run: docker pull "$CORRAL_IMAGE"
 *         timeout: 20m
 *     steps:                         # UPGRADE and ROLLBACK orders, in order
 *       - run: notify-owners "maintenance"
 *         once: true                 # never run twice for one plan generation
 *       - run: silence-monitoring
 *         undo: unsilence-monitoring # run when the order fails or the plan ends
 *       - stop: [cms-app.service, cms-infra.service]
 *       - run: switch-image "$CORRAL_IMAGE"
 *       - start: [cms-infra.service, cms-app.service]   # also restart: [...]
 *       - health: curl -fsS localhost:8888/health
 *         timeout: 1m
 *       - reboot: true               # optional: reboot, resume after it
 *     cleanup: docker image prune -f # after the plan succeeded (string or steps)
 *   # Commands run as transient units with CORRAL_IMAGE, CORRAL_FROM_IMAGE,
 *   # CORRAL_PLAN, CORRAL_NODE and CORRAL_ACTION in their environment.
 *
 *   # Tenant deployments (docs/deployments.md); absent: this node takes none.
 *   deployments:
 *     memory: 16G                    # capacity (K, M, G, T: powers of 1024);
 *                                    # default: the machine's total memory
 *     deploy: /usr/local/bin/tenant deploy        # each hook optional: a
 *     maintenance_on: /usr/local/bin/tenant pause # missing hook is a step
 *     maintenance_off: /usr/local/bin/tenant resume   # that succeeds
 *     backup: /usr/local/bin/tenant backup        # last stdout line: where
 *     remove: /usr/local/bin/tenant remove
 *     timeout: 1h                    # one hook (default 1h)
 *   # Hooks run as transient units with CORRAL_DEPLOYMENT (the id) and
 *   # CORRAL_DEPLOYMENT_JSON (the record) in their environment.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "deployment.h"
#include "macro.h"

typedef struct conf_etcd {
	char **endpoints;             /* NULL-terminated; at least one */
	char *ca_file, *cert_file, *key_file;
	char *username;
	char *password;               /* secret: never log it */
	uint64_t request_timeout_usec;  /* one request over every member tried */
	uint64_t attempt_timeout_usec;  /* one member's try (etcd_options) */
	uint64_t connect_timeout_usec;
	uint64_t watch_progress_usec;   /* a silent watch checks its member */
} conf_etcd;

/* All NULL when the section is absent; region NULL: this node never scales. */
typedef struct conf_ec2 {
	char *region;
	char *endpoint;
	char *imds_endpoint;          /* "" = no IMDS */
	char *credentials_file;
	char *profile;
	char *instance_id;            /* this node's instance, given or learned
	                                 (conf_apply_identity); NULL: unknown */
	bool instance_auto;           /* learn the identity from IMDS before
	                                 registering: "auto", or left out on a
	                                 machine DMI says is EC2 */
	char *dmi_dir;                /* NULL: $CORRAL_DMI_DIR, else
	                                 /sys/devices/virtual/dmi/id */
} conf_ec2;

typedef enum conf_format { CONF_FORMAT_JSON, CONF_FORMAT_COMMAND, CONF_FORMAT_TOML } conf_format;

typedef struct conf_file {
	char *name;                   /* the file's name in the cluster config */
	char *path;                   /* absolute path rendered to */
	conf_format format;
	char *command;                /* CONF_FORMAT_COMMAND only */
	char *check;                  /* NULL: none */
	mode_t mode;                  /* default 0644 */
	uid_t uid;                    /* (uid_t) -1: not set */
	gid_t gid;                    /* (gid_t) -1: not set */
	char **restart;               /* NULL-terminated, may be empty */
	char **reload;                /* NULL-terminated, may be empty */
} conf_file;

typedef struct conf_topology {
	char *service;
	char *path;                   /* escaped leaf path, checked with
	                                 tree_path_parse(); first segment is a
	                                 file name */
	json_t *value;                /* the entry template */
} conf_topology;

/* One step of an upgrade step list (upgrade.c). */
typedef enum conf_step_kind {
	CONF_STEP_RUN,                /* command */
	CONF_STEP_STOP,               /* units */
	CONF_STEP_START,
	CONF_STEP_RESTART,
	CONF_STEP_HEALTH,             /* command; must pass */
	CONF_STEP_REBOOT,
	_CONF_STEP_KIND_MAX,
} conf_step_kind;

typedef struct conf_step {
	conf_step_kind kind;
	char *command;                /* run, health: given to /bin/sh -c */
	char **units;                 /* stop, start, restart: NULL-terminated */
	bool once;                    /* run: never started twice per plan generation */
	char *undo;                   /* run: what turns it back (NULL: none) */
	uint64_t timeout_usec;        /* 0: upgrade.step_timeout */
} conf_step;

typedef struct conf_steps {
	conf_step *steps;
	size_t n;
} conf_steps;

/* The `upgrade:` section; present false (and everything else empty) when
 * the file has none. */
typedef struct conf_upgrade {
	bool present;
	char *image_command;          /* required with the section */
	conf_steps prepare, steps, cleanup;
	uint64_t step_timeout_usec;   /* default 5 min */
} conf_upgrade;

/* The `deployments:` section (deployments.c); present false when absent. */
typedef struct conf_deployments {
	bool present;
	char *hooks[_DEPLOYMENT_HOOK_MAX];      /* by deployment_hook; NULL: none
	                                           (the step succeeds) */
	int64_t memory;               /* bytes; default: MemTotal of /proc/meminfo */
	uint64_t timeout_usec;        /* one hook; default 1 h */
} conf_deployments;

/* "run", "stop", ... */
const char *conf_step_kind_to_string(conf_step_kind k);

typedef struct conf {
	char *path;                   /* file it came from, or the name given */
	char *cluster;
	char *prefix;                 /* no trailing '/' */
	char *node_id;
	char *address;
	bool node_id_default;         /* node_id from /etc/machine-id */
	bool address_default;         /* address from the hostname */
	char **services;              /* NULL-terminated, may be empty */
	uint64_t lease_ttl_usec;
	int log_level;                /* LOG_* from syslog.h */
	conf_etcd etcd;

	conf_file *files;             /* n_files of them, in file order */
	size_t n_files;
	conf_topology *topology;
	size_t n_topology;
	json_t *initial;              /* an object of files, or NULL */
	bool units_user_bus;
	uint64_t debounce_usec;       /* default 1 s */
	uint64_t max_wait_usec;       /* default 10 s; >= debounce */
	uint64_t command_timeout_usec;/* default 30 s */
	uint64_t unit_timeout_usec;   /* default 90 s */
	uint64_t write_retry_usec;    /* default 1 s: first back-off after a failed write */
	uint64_t write_retry_max_usec;/* default 60 s; >= write_retry */
	unsigned history;             /* default 20 */
	uint64_t collect_interval_usec; /* default 30 s */
	conf_ec2 ec2;
	char *pool;                   /* scale pool of this node, NULL: none */
	uint64_t scale_interval_usec; /* default 30 s */
	uint64_t launch_grace_usec;   /* default 5 min */
	/* The node agent (docs/scale.md "Node agent"): */
	char *load_command;           /* prints {"jobs","capacity","memory"}; NULL: none */
	uint64_t load_interval_usec;  /* default 10 s, >= 1 s */
	char *wind_down_command;      /* run once when this host drains; NULL: none */
	bool interruption_watch;      /* poll IMDS spot/instance-action; default false */
	char *metrics_listen;         /* "host:port" of /metrics; NULL: off (the default) */
	conf_upgrade upgrade;         /* in-place upgrades (upgrade.c) */
	conf_deployments deployments; /* tenant deployments (deployments.c) */
	char **warnings;              /* for the daemon to log (a key initial_file
	                                 repeats); NULL-terminated or NULL */
	unsigned n_ref;               /* conf_ref() / conf_unref() only */
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

/* Another reference to c (NULL: NULL); returns c. */
conf *conf_ref(conf *c);
/* Drops one reference; the last frees c. Returns NULL. */
conf *conf_unref(conf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(conf *, conf_unref);
/* The same as conf_unref(): for the owner of the only reference. */
conf *conf_free(conf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(conf *, conf_free);

/* "file:line:column: message" (or "file: message" without a place). */
const char *conf_error_format(const conf_error *err, char *buf, size_t size);

/* The whole file at path (a regular file, a pipe, /dev/stdin) in a new
 * buffer with a NUL after its *ret_size bytes. -EISDIR for a directory,
 * -EFBIG at 4 MiB or more, else the -errno of open/read. secret: the
 * buffers it drops on the way are wiped. */
int conf_read_file(const char *path, bool secret, char **ret, size_t *ret_size);

/* True when two etcd sections would make the same client. */
bool conf_etcd_equal(const conf_etcd *a, const conf_etcd *b);

/* True when DMI (dir, NULL: /sys/devices/virtual/dmi/id) says this machine
 * is an EC2 instance: sys_vendor contains "Amazon EC2" or board_asset_tag
 * starts with "i-". Unreadable files say no. */
bool conf_dmi_is_ec2(const char *dir);

/* What IMDS said this instance is (ec2.instance_auto): the instance id,
 * also the node id unless the file gave one; the address unless the file
 * gave one (NULL: keep); the pool unless the file gave one (NULL: none).
 * 0, -EINVAL (no instance id) or -ENOMEM (c unchanged). */
int conf_apply_identity(conf *c, const char *instance_id, const char *address, const char *pool);

/* Every key corrald.yaml accepts, as a NULL-terminated list (strv_free)
 * of dotted names from the parser's own tables: "etcd.endpoints",
 * "files.path" (a key of every entry of files), "upgrade.steps.run". A
 * table reached from two keys (a step's keys under prepare, steps and
 * cleanup) is listed once, under the first. For the man page's test:
 * corrald.yaml(5) must name them all. 0 or -ENOMEM. */
int conf_key_names(char ***ret);

/* Parses a duration as described above; -EINVAL when malformed. */
int conf_parse_duration(const char *s, uint64_t *out_usec);
