/* harness.h — real parts for integration tests: etcd members, a systemd
 * --user manager, and child processes, each started on loopback in its own
 * temporary directory and stopped by the test that started it.
 *
 * Every child is started with PR_SET_PDEATHSIG=SIGKILL (the systemd manager:
 * SIGTERM, see hx_proc_spawn_full), so a test worker that crashes cannot
 * leave one behind (its temp dirs do stay, logs included); the *_free()
 * functions stop children politely (SIGTERM, bounded wait, then SIGKILL) and
 * remove their temp dirs. (The kernel sends that signal when the *thread*
 * that forked dies: start and free children from the test's own thread.)
 * Nothing here sleeps for luck: waits poll a condition up to a deadline.
 *
 * Functions return 0 or -errno and print a line to stderr saying what failed
 * (a test log is where such lines belong). Paths to tools come from the
 * environment `make check` sets (CORRAL_ETCD, CORRAL_ETCDCTL, ...; see
 * Makefile.am), with the plain command names as fallbacks. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* ---- time and waiting ---- */
uint64_t hx_now_usec(void);             /* CLOCK_MONOTONIC */
/* Polls pred every few milliseconds until it returns true (-> true) or the
 * deadline passes (-> false). */
bool hx_wait_until(bool (*pred)(void *userdata), void *userdata, uint64_t timeout_usec);
/* Runs an sd-event loop until *flag is true (-> true) or the deadline
 * passes (-> false); a failing sd_event_run() ends it too (-> false). */
struct sd_event;
bool hx_event_run_until(struct sd_event *event, const bool *flag, uint64_t timeout_usec);

/* ---- files and places ---- */
const char *hx_builddir(void);          /* CORRAL_BUILDDIR or "." */
const char *hx_srcdir(void);            /* CORRAL_SRCDIR or "." */
char *hx_mkdtemp(const char *tag);      /* new dir under $TMPDIR or /tmp */
int hx_rm_rf(const char *path);
/* Removes a temp dir made by hx_mkdtemp(), unless CORRAL_KEEP_TMP is set
 * (non-empty): then it stays, logs included, and a line says where. The
 * *_free() functions use this. */
int hx_rm_tmp(const char *path);
char *hx_read_file(const char *path, size_t *len);   /* NULL on error */
size_t hx_file_lines(const char *path);  /* newlines in it; 0 when unreadable */
/* How often needle occurs in it (0 when unreadable): log lines, say. */
size_t hx_count_in_file(const char *path, const char *needle);
/* asprintf that aborts when out of memory: for test code, never NULL. */
char *hx_fmt(const char *fmt, ...) _printf_(1, 2);
int hx_write_file(const char *path, const char *text);
int hx_free_port(void);                 /* a loopback TCP port free right now */
/* The tool named by environment variable env (CORRAL_ETCD, ...) when set and
 * non-empty, else fallback. */
const char *hx_tool(const char *env, const char *fallback);
/* Prints the last `lines` lines of a log file to stderr, indented, after a
 * failure message that names the file. */
void hx_log_tail(const char *path, unsigned lines);

/* Writes a corrald config for node `node_id` of cluster "t" to path:
 * address 127.0.0.9, the given services ("A, B"), a 2 s lease, debug logs,
 * the given etcd endpoints (comma-separated), 3 s request and 500 ms
 * connect timeouts. */
int hx_write_corrald_config(const char *path, const char *node_id, const char *services, const char *endpoints);
/* Same with another address, and YAML text `more` (may be NULL) appended:
 * the node's render section, say. */
int hx_write_corrald_config_full(const char *path, const char *node_id, const char *address, const char *services,
				 const char *endpoints, const char *more);
/* The command line of the built corralctl (hx_builddir()) for cluster "t"
 * on endpoints (comma-separated), then args (NULL-terminated): a new
 * NULL-terminated vector, every string its own (strv_free), or NULL. */
char **hx_corralctl_argv(const char *endpoints, char *const args[]);
/* Runs it to completion (30 s at most), stdout in *out (may be NULL);
 * returns what hx_run() does. */
int hx_corralctl(const char *endpoints, char **out, char *const args[]);

/* The content #cloud-config user data (text, len bytes) has write_files
 * put at path, as cloud-init would write it (*out, the caller's). -EBADMSG:
 * not YAML or no write_files; -ENOENT: not written; -ENOTUNIQ: written more
 * than once; -EPROTO: encoded (b64, gzip) or no plain content. Says why on
 * stderr. */
int hx_user_data_file(const char *text, size_t len, const char *path, char **out);
/* Same for another scalar of that write_files entry ("permissions", "owner"). */
int hx_user_data_field(const char *text, size_t len, const char *path, const char *field, char **out);

/* One blocking HTTP request (proxies bypassed): GET, or POST with a JSON
 * body, or `method`. Response body in *out (may be NULL), status in
 * *http_code (may be NULL). 0 when a response arrived (any status), -errno
 * when none did. Quiet on failure. */
typedef struct hx_http_req {
	const char *method;             /* NULL: GET, or POST with json */
	const char *url;
	const char *json;               /* body, or NULL */
	const char *header;             /* one more "Name: value" line, or NULL */
	long timeout_ms;
	const char *ca_file, *cert_file, *key_file;     /* TLS, or NULL */
	bool http11;                    /* insist on HTTP/1.1 */
} hx_http_req;
int hx_http(const hx_http_req *req, char **out, long *http_code);

/* ---- child processes ---- */
typedef struct hx_proc hx_proc;
/* Starts argv[0] (looked up in PATH) with extra "K=V" environment entries
 * (NULL-terminated, may be NULL) added to ours, stdin from /dev/null and
 * stdout+stderr appended to log_path (NULL: inherit ours). */
int hx_proc_spawn(hx_proc **out, char *const argv[], char *const env_extra[], const char *log_path);
/* Same with another parent-death signal than SIGKILL. The systemd --user
 * manager gets SIGTERM, which to a user manager means "stop your units,
 * then exit": SIGKILL would orphan the units' processes. */
int hx_proc_spawn_full(hx_proc **out, char *const argv[], char *const env_extra[],
                       const char *log_path, int pdeathsig);
/* Starts the build's corrald (hx_builddir()/corrald) on config cfg, as
 * hx_proc_spawn does. */
int hx_corrald_spawn(hx_proc **out, const char *cfg, char *const env_extra[], const char *log_path);
pid_t hx_proc_pid(const hx_proc *p);
int hx_proc_signal(hx_proc *p, int sig);
/* Waits for exit up to timeout; 0 and *status (as waitpid) once exited,
 * -ETIMEDOUT otherwise. Safe to call again after exit. */
int hx_proc_wait(hx_proc *p, uint64_t timeout_usec, int *status);
bool hx_proc_running(hx_proc *p);
/* SIGTERM, wait up to 10 s, SIGKILL, reap; then free. NULL-safe. */
hx_proc *hx_proc_free(hx_proc *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(hx_proc *, hx_proc_free);
/* Runs a command to completion (bounded by timeout), capturing stdout
 * (*out, may be NULL: discarded) and returning its exit status (>= 0; 128 +
 * signal number if killed) or -errno (-ETIMEDOUT: killed at the deadline).
 * Its stderr goes to ours. */
int hx_run(char **out, uint64_t timeout_usec, char *const argv[], char *const env_extra[]);
/* Same, but also captures stderr in *err when err is non-NULL (NULL:
 * inherit ours). For commands whose failure is expected or polled. */
int hx_run_capture(char **out, char **err, uint64_t timeout_usec,
                   char *const argv[], char *const env_extra[]);

/* ---- etcd ---- */
typedef struct hx_etcd hx_etcd;
typedef struct hx_etcd_options {
	unsigned members;               /* 1 (default when 0) or 3 */
	bool tls;                       /* client URLs https with a fresh CA,
	                                   server cert for 127.0.0.1 and a client
	                                   cert, made with the openssl CLI */
	bool client_cert_auth;          /* with tls: require client certs */
	char *const *extra_args;        /* appended to every member's command line */
} hx_etcd_options;
/* Starts the members (Debian's etcd) on free loopback ports with data under
 * a temp dir, and waits (20 s at most) until every member answers /health
 * with true. Raft runs with --heartbeat-interval 50 --election-timeout 500
 * (ms; etcd's defaults are 100/1000) so elections and fail-overs in tests
 * take about half a second. Each member logs (zap, info) to DIR/mN.log; a
 * member that fails to bind its ports (another process took a "free" port)
 * makes the whole start retry with new ports, a few times. */
int hx_etcd_start(hx_etcd **out, const hx_etcd_options *opts);
unsigned hx_etcd_members(const hx_etcd *e);
const char *hx_etcd_endpoint(const hx_etcd *e, unsigned member);  /* "http://127.0.0.1:P" */
const char *hx_etcd_endpoints(const hx_etcd *e);   /* all, comma-separated */
const char *hx_etcd_dir(const hx_etcd *e);         /* the temp dir */
/* TLS material (NULL unless tls): */
const char *hx_etcd_ca_file(const hx_etcd *e);
const char *hx_etcd_client_cert(const hx_etcd *e);
const char *hx_etcd_client_key(const hx_etcd *e);
/* Stops one member with sig (SIGTERM or SIGKILL) and reaps it (SIGKILL
 * after 10 s). -ESRCH if it was not started. A leader given SIGTERM first
 * hands leadership to a live follower; with none it can reach it may take up
 * to 6 s to give up. */
int hx_etcd_stop_member(hx_etcd *e, unsigned member, int sig);
/* Starts a stopped member again, same data and ports; waits until healthy
 * (for a cluster: until the member answers /health true). */
int hx_etcd_start_member(hx_etcd *e, unsigned member);
/* Freezes one member with SIGSTOP (it keeps its ports and accepts
 * connections, but answers nothing: a hung member) and thaws it with
 * SIGCONT. A frozen member is thawed before anything stops it, and
 * hx_etcd_leader skips it. */
int hx_etcd_member_stop(hx_etcd *e, unsigned member);
int hx_etcd_member_cont(hx_etcd *e, unsigned member);
bool hx_etcd_member_running(hx_etcd *e, unsigned member);
pid_t hx_etcd_member_pid(const hx_etcd *e, unsigned member);  /* -1 if stopped */
const char *hx_etcd_log(const hx_etcd *e, unsigned member);  /* its log file */
/* Runs etcdctl (API v3) against all members with args; stdout in *out;
 * returns etcdctl's exit status (>= 0) or -errno. Once auth is enabled it
 * runs as root. */
int hx_etcdctl(hx_etcd *e, char **out, char *const args[]);
/* Same, as user "name:password", or with no --user at all when NULL. */
int hx_etcdctl_as(hx_etcd *e, const char *user, char **out, char *const args[]);
/* One HTTP request to a member's client URL (TLS material included):
 * GET when body is NULL, else POST body as JSON (the v3 gateway). Response
 * body in *out (may be NULL), status in *http_code (may be NULL). 0 when a
 * response arrived (any status), -errno when none did. Quiet on failure. */
int hx_etcd_request(hx_etcd *e, unsigned member, const char *path, const char *body,
                    char **out, long *http_code);
/* Index of the leader if every running member (frozen ones aside) answers
 * and names the same leader (a running member) -> 0; -EAGAIN if not (yet). Quiet; poll it. */
int hx_etcd_leader(hx_etcd *e, unsigned *out);
/* Value of key, or NULL if absent/error (etcdctl get --print-value-only). */
char *hx_etcd_get(hx_etcd *e, const char *key);
int hx_etcd_put(hx_etcd *e, const char *key, const char *value);
/* Enables auth with user root/rootpw and a user `user`/`password` with
 * read-write on everything under prefix. */
int hx_etcd_enable_auth(hx_etcd *e, const char *user, const char *password, const char *prefix);
/* Stops all members (followers SIGTERM; a cluster's leader SIGKILL, since
 * its data is going and a SIGTERMed leader would stall up to 6 s handing
 * over to followers that are leaving) and removes the temp dir. */
hx_etcd *hx_etcd_free(hx_etcd *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(hx_etcd *, hx_etcd_free);

/* ---- systemd --user ---- */
typedef struct hx_systemd hx_systemd;
/* Starts `systemd --user` with a fresh XDG_RUNTIME_DIR (0700; TMPDIR/
 * hx-systemd-XXXXXX/runtime, its log in manager.log beside it). As root in a
 * container without systemd as PID 1 it creates /run/systemd/system first so
 * the manager agrees to run. Waits until `systemctl --user is-system-running`
 * answers running or degraded and the user bus socket exists. */
int hx_systemd_start(hx_systemd **out);
const char *hx_systemd_runtime_dir(const hx_systemd *s);   /* XDG_RUNTIME_DIR */
const char *hx_systemd_unit_dir(const hx_systemd *s);      /* runtime/systemd/user */
pid_t hx_systemd_pid(const hx_systemd *s);                 /* the manager's */
const char *hx_systemd_log(const hx_systemd *s);           /* the manager's log */
/* "XDG_RUNTIME_DIR=...", "DBUS_SESSION_BUS_ADDRESS=..." for child env. */
char *const *hx_systemd_env(const hx_systemd *s);
/* Writes unit_dir/name and runs daemon-reload. */
int hx_systemd_install_unit(hx_systemd *s, const char *name, const char *text);
/* systemctl --user args...; stdout in *out; returns exit status. */
int hx_systemctl(hx_systemd *s, char **out, char *const args[]);
/* Value of one property (systemctl --user show -P prop unit), or NULL. */
char *hx_systemd_unit_property(hx_systemd *s, const char *unit, const char *prop);
/* Stops the manager (systemctl --user exit, then signals), removes its dir. */
hx_systemd *hx_systemd_free(hx_systemd *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(hx_systemd *, hx_systemd_free);

/* ---- EC2 (moto + proxy) ---- */
/* moto_server (moto 5, CORRAL_MOTO_SERVER or `moto_server` in PATH) on a free
 * loopback port in a temp dir, with tests/ec2proxy.py (run by
 * CORRAL_PYTHON3) in front of it; docs/testing.md says what each adds.
 *
 * moto runs with INITIAL_NO_AUTH_ACTION_COUNT=5: it accepts signed requests
 * only after the bootstrap, and the bootstrap is exactly its 5 unchecked
 * calls (the proxy makes them at start: IAM user corral-test with an
 * ec2:* + sts:AssumeRole policy and an access key, role corral-node with
 * ec2:*). From then on every call must be SigV4-signed with a key moto knows
 * (the user's, or the role's with its session token); a wrong signature gets
 * 401 AuthFailure, an unsigned request a 500 HTML page.
 *
 * The endpoint and the IMDS URL are the same port (EC2 is POST /, IMDSv2 is
 * /latest/..., the control API /_proxy/...). If moto_server, python3 or
 * botocore is missing, hx_moto_start() fails (-ENOENT) and prints what is
 * missing and where it comes from: EC2 tests fail, never skip. */
typedef struct hx_moto hx_moto;
struct json_t;
int hx_moto_start(hx_moto **out);
const char *hx_moto_endpoint(const hx_moto *m);          /* proxy, "http://127.0.0.1:P/" */
const char *hx_moto_imds_url(const hx_moto *m);          /* "http://127.0.0.1:P" (same port) */
const char *hx_moto_server_url(const hx_moto *m);        /* moto itself, bypassing the proxy */
const char *hx_moto_access_key_id(const hx_moto *m);     /* the IAM user's long-term key */
const char *hx_moto_secret_access_key(const hx_moto *m);
const char *hx_moto_region(const hx_moto *m);            /* "us-east-1" */
const char *hx_moto_dir(const hx_moto *m);               /* temp dir: moto.log, proxy.log */
pid_t hx_moto_server_pid(const hx_moto *m);
pid_t hx_moto_proxy_pid(const hx_moto *m);
/* "AWS_ACCESS_KEY_ID=...", "AWS_SECRET_ACCESS_KEY=...", "AWS_REGION=...",
 * "AWS_DEFAULT_REGION=...", "NO_PROXY=127.0.0.1,localhost", for a child's env. */
char *const *hx_moto_env(const hx_moto *m);
/* Writes an AWS shared credentials file ([default] with the user's key). */
int hx_moto_write_credentials(const hx_moto *m, const char *path);
/* Replaces the proxy's fault list with a JSON array (see ec2proxy.py), e.g.
 * [{"action":"RunInstances","kind":"throttle","count":2}]. Kinds: throttle
 * (503 RequestLimitExceeded), capacity / spot-capacity (500
 * InsufficientInstanceCapacity), internal (500 InternalError), http500 (500,
 * HTML body), drop (connection closed, no response), slow (delay_ms, then
 * forwarded), error (status/code/message given). */
int hx_moto_set_faults(hx_moto *m, const char *json);
/* One fault: count times (< 0: until reset) for action ("*": any). */
int hx_moto_fault(hx_moto *m, const char *action, const char *kind, int count, unsigned delay_ms);
/* Sets the reservations DescribeReservedInstances answers with (moto has
 * none): a JSON array of {"id", "type", "az" (null/absent: regional),
 * "count", "state" (default "active"), "scope"}; "[]": none; "null": not
 * answered by the proxy any more (moto's 500, as before any call). */
int hx_moto_set_reserved(hx_moto *m, const char *json);
/* The calls served, oldest first (new reference): a JSON array of {"time",
 * "method", "action", "params" {name: value}, "access_key_id" (from the
 * Authorization header, null if unsigned), "security_token", "fault" (kind
 * or null), "status" (0: dropped), "duration_ms"}. */
int hx_moto_log(hx_moto *m, struct json_t **out);
/* Clears faults, the call log and the IMDS counters. */
int hx_moto_reset(hx_moto *m);
/* GET /_proxy/imds: {"requests": {"token", "role", "credentials",
 * "unauthorized", "other", "unavailable": counts}, "credentials": {...},
 * "role", "available"}. */
int hx_moto_imds_state(hx_moto *m, struct json_t **out);
/* POST /_proxy/imds with a JSON object: {"expires_in": S} (Expiration = now
 * + S), {"rotate": true} (assume the role again: new key, secret and token),
 * {"available": false}. *out (may be NULL): the credentials now served. */
int hx_moto_imds_control(hx_moto *m, const char *json, struct json_t **out);
/* The IMDS of one instance, on a port of its own ("http://127.0.0.1:P" in
 * *url, the caller's): what the main port's IMDS serves plus that
 * instance's instance-id, instance-type, local-ipv4, availability zone and
 * tags (tags/instance/KEY; {"instance_tags": false} in
 * hx_moto_imds_control turns them off, as on EC2 without
 * InstanceMetadataTags). */
int hx_moto_node_imds(hx_moto *m, const char *instance_id, char **url);
/* One HTTP request to the proxy (path like "/_proxy/log"; GET when body is
 * NULL, else POST). 0 when a response arrived (any status), -errno if not. */
int hx_moto_request(hx_moto *m, const char *method, const char *path, const char *body,
                    char **out, long *http_code);
/* The test's own view of the cloud, signed by the proxy with the user's key
 * and kept out of the call log. setup: creates (once) launch template
 * "corral-test" -> {"launch_template", "subnet", "az", "ami"}. instances:
 * every instance -> [{"id", "state", "type", "launch_time", "token",
 * "tags": {}}]. run: {"tags": {...}, "type"} starts one instance outside
 * corral -> {"id"}. inflight: EC2 calls being served now -> {action: n}. */
int hx_moto_setup(hx_moto *m, struct json_t **out);
int hx_moto_instances(hx_moto *m, struct json_t **out);
int hx_moto_run(hx_moto *m, const char *json, struct json_t **out);
int hx_moto_inflight(hx_moto *m, struct json_t **out);
/* Stops the proxy and moto (SIGTERM, 10 s, SIGKILL) and removes the temp
 * dir. NULL-safe. */
hx_moto *hx_moto_free(hx_moto *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(hx_moto *, hx_moto_free);

/* ---- the cloud's part: a corrald per instance ---- */

/* Plays what EC2 + cloud-init do for corral's hosts: for every instance
 * tagged corral:cluster=<cluster> that moto reports pending or running it
 * boots a corrald from the corrald.yaml the user data of scripts/user-data
 * writes (no node id, address, pool or instance id), plus the test's
 * overrides: timing, the hooks, the scaler's ec2 settings (any node can
 * lead), the instance's own IMDS (hx_moto_node_imds) and a DMI dir saying
 * EC2. The host learns its instance id (= node id), address and pool (the
 * corral:pool tag) from IMDS. When the instance is shutting down,
 * terminated, stopping or stopped it stops that corrald (SIGTERM); a
 * stopped instance started again runs it again. corrald runs in dir/<id>/,
 * which holds load (what its load_command prints; hx_cloud_set_jobs writes
 * it), wound (its wind_down_command appends a line there) and dmi/; its
 * config and log are dir/<id>.yaml and dir/<id>.log. */
typedef struct hx_cloud hx_cloud;
typedef struct hx_cloud_options {
	hx_moto *moto;
	const char *cluster;    /* "t": hx_write_corrald_config_full's cluster */
	const char *endpoints;  /* etcd, comma-separated */
	const char *dir;        /* exists; the caller removes it */
	int capacity;           /* job capacity each host reports */
	const char *more;       /* YAML appended to each host's config, or NULL */
} hx_cloud_options;
int hx_cloud_new(hx_cloud **out, const hx_cloud_options *o);
/* A corrald that is no instance (a core node, which may lead and scale):
 * node id name, services "Core", the same ec2 settings and options' more
 * as the hosts; <name>.yaml and <name>.log in dir. The caller stops it. */
int hx_cloud_start_node(hx_cloud *c, const char *name, hx_proc **out);
/* Looks at moto now and starts/stops corralds to match. 0 or -errno. */
int hx_cloud_sync(hx_cloud *c);
/* hx_cloud_sync, at most every 200 ms: for hx_wait_until predicates. */
void hx_cloud_poll(hx_cloud *c);
/* Instances with a corrald running now. */
size_t hx_cloud_hosts(const hx_cloud *c);
/* 1 if a corrald runs for id, 0 if one ran and was stopped, -ENOENT if none ever did. */
int hx_cloud_host_state(const hx_cloud *c, const char *id);
/* What the host's load_command prints from now on. */
int hx_cloud_set_jobs(hx_cloud *c, const char *id, int jobs);
/* Same for every running host. */
int hx_cloud_set_all_jobs(hx_cloud *c, int jobs);
/* Lines its wind_down_command wrote (0: never ran). */
unsigned hx_cloud_wound_down(const hx_cloud *c, const char *id);
/* Stops every corrald (SIGTERM, then SIGKILL after 10 s). NULL-safe. */
hx_cloud *hx_cloud_free(hx_cloud *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(hx_cloud *, hx_cloud_free);
