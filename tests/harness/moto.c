/* moto.c — an EC2 for tests: moto_server on loopback with SigV4 checking on,
 * behind tests/ec2proxy.py (faults, call log, IMDSv2).
 *
 * Order of a start: moto_server with INITIAL_NO_AUTH_ACTION_COUNT=5 on a
 * free port; ec2proxy.py, which waits for moto, spends exactly those 5
 * unchecked calls on the IAM bootstrap (user + ec2:* policy + access key,
 * role for IMDS), assumes the role, binds a port the kernel picks and writes
 * ready.json by rename. moto accepts signed requests only after that
 * bootstrap: before it, anything goes; after it, a signature made with a key
 * moto does not know, or with the wrong secret, gets 401 AuthFailure. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "harness.h"

#define HX_MOTO_BOOTSTRAP_CALLS "5"     /* ec2proxy.py's bootstrap makes 5 */
#define HX_MOTO_START_USEC (30 * USEC_PER_SEC)
#define HX_MOTO_CHECK_USEC (30 * USEC_PER_SEC)
#define HX_MOTO_PORT_TRIES 5
#define HX_MOTO_HTTP_TIMEOUT_MS 30000L
#define HX_MOTO_LOG_TAIL_LINES 12
#define HX_MOTO_REGION "us-east-1"

struct hx_moto {
	char *dir, *moto_log, *proxy_log, *ready_file;
	char *server_url, *endpoint, *imds_url;
	char *access_key_id, *secret_access_key;
	char *env[6];
	hx_proc *server, *proxy;
};

static const char *python3(void) {
	return hx_tool("CORRAL_PYTHON3", "python3");
}

static const char *moto_server(void) {
	return hx_tool("CORRAL_MOTO_SERVER", "moto_server");
}

/* moto_server and a python3 that imports botocore (which the tests' signing
 * client uses) must be there; say precisely what is not. */
static int check_tools(void) {
	_cleanup_free_ char *out = NULL, *err = NULL;
	char *const py[] = { (char *) python3(), "-c", "import botocore; print(botocore.__version__)", NULL };
	char *const ms[] = { (char *) moto_server(), "--help", NULL };
	int r;

	r = hx_run_capture(&out, &err, HX_MOTO_CHECK_USEC, ms, NULL);
	if (r != 0) {
		fprintf(stderr, "harness: EC2 tests need moto_server (moto 5.x with its server extra): "
		        "`%s --help`: %s. It ships in this machine image's pyenv Python (moto 5.2.1: "
		        "/root/.pyenv/shims/moto_server); elsewhere `pip install 'moto[server]'`, or set "
		        "CORRAL_MOTO_SERVER to its path.\n",
		        moto_server(), r < 0 ? strerror(-r) : "failed (see above)");
		if (r > 0 && err && *err)
			fprintf(stderr, "harness:   | %s\n", err);
		return r < 0 ? r : -ENOENT;
	}
	free(out);
	free(err);
	out = err = NULL;
	r = hx_run_capture(&out, &err, HX_MOTO_CHECK_USEC, py, NULL);
	if (r != 0) {
		fprintf(stderr, "harness: EC2 tests need botocore in %s (the signing client and moto use it): "
		        "`%s -c 'import botocore'`: %s. The image's pyenv Python has it (botocore 1.43, with "
		        "moto); Debian: apt-get install python3-botocore; or point CORRAL_PYTHON3 (configure's "
		        "PYTHON3) at a python3 that has it.\n",
		        python3(), python3(), r < 0 ? strerror(-r) : "failed (see above)");
		if (r > 0 && err && *err)
			fprintf(stderr, "harness:   | %s\n", err);
		return r < 0 ? r : -ENOENT;
	}
	return 0;
}

/* ---- HTTP to the proxy ---- */

int hx_moto_request(hx_moto *m, const char *method, const char *path, const char *data,
                    char **out, long *http_code) {
	_cleanup_free_ char *url = NULL;

	if (!m || !m->imds_url || !path)
		return -EINVAL;
	if (asprintf(&url, "%s%s", m->imds_url, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	hx_http_req rq = { .method = method, .url = url, .json = data, .timeout_ms = HX_MOTO_HTTP_TIMEOUT_MS };
	return hx_http(&rq, out, http_code);
}

/* A control call that must answer 200 with JSON; *out may be NULL. */
static int control(hx_moto *m, const char *method, const char *path, const char *data, json_t **out) {
	_cleanup_free_ char *text = NULL;
	json_error_t jerr;
	long code = 0;
	int r;

	r = hx_moto_request(m, method, path, data, &text, &code);
	if (r < 0) {
		fprintf(stderr, "harness: ec2proxy %s %s: %s\n", method ?: "GET", path, strerror(-r));
		return r;
	}
	if (code != 200) {
		fprintf(stderr, "harness: ec2proxy %s %s: HTTP %ld: %s", method ?: "GET", path, code, text);
		return -EINVAL;
	}
	if (!out)
		return 0;
	*out = json_loads(text, 0, &jerr);
	if (!*out) {
		fprintf(stderr, "harness: ec2proxy %s %s: bad JSON (%s): %s", method ?: "GET", path, jerr.text, text);
		return -EBADMSG;
	}
	return 0;
}

int hx_moto_set_faults(hx_moto *m, const char *json) {
	return control(m, "POST", "/_proxy/faults", json, NULL);
}

int hx_moto_fault(hx_moto *m, const char *action, const char *kind, int count, unsigned delay_ms) {
	json_auto_t *f = json_pack("[{s:s, s:s, s:i, s:i}]", "action", action ?: "*", "kind", kind,
	                           "count", count, "delay_ms", (int) delay_ms);
	_cleanup_free_ char *text = NULL;

	if (!f || !(text = json_dumps(f, JSON_COMPACT)))
		return -ENOMEM;
	return hx_moto_set_faults(m, text);
}

int hx_moto_set_reserved(hx_moto *m, const char *json) {
	return control(m, "POST", "/_proxy/reserved", json, NULL);
}

int hx_moto_log(hx_moto *m, json_t **out) {
	return control(m, "GET", "/_proxy/log", NULL, out);
}

int hx_moto_reset(hx_moto *m) {
	return control(m, "POST", "/_proxy/reset", "", NULL);
}

int hx_moto_imds_state(hx_moto *m, json_t **out) {
	return control(m, "GET", "/_proxy/imds", NULL, out);
}

int hx_moto_imds_control(hx_moto *m, const char *json, json_t **out) {
	return control(m, "POST", "/_proxy/imds", json, out);
}

int hx_moto_node_imds(hx_moto *m, const char *instance_id, char **url) {
	_cleanup_free_ char *body = NULL;
	json_auto_t *reply = NULL, *req = NULL;
	int r;

	if (!instance_id || !url)
		return -EINVAL;
	req = json_pack("{s:s}", "id", instance_id);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!body)
		return -ENOMEM;
	r = control(m, "POST", "/_proxy/node", body, &reply);
	if (r < 0)
		return r;
	const char *u = json_string_value(json_object_get(reply, "url"));
	if (!u || !(*url = strdup(u)))
		return -EPROTO;
	return 0;
}

int hx_moto_setup(hx_moto *m, json_t **out) {
	return control(m, "POST", "/_proxy/setup", "", out);
}

int hx_moto_instances(hx_moto *m, json_t **out) {
	return control(m, "GET", "/_proxy/instances", NULL, out);
}

int hx_moto_run(hx_moto *m, const char *json, json_t **out) {
	return control(m, "POST", "/_proxy/run", json, out);
}

int hx_moto_inflight(hx_moto *m, json_t **out) {
	return control(m, "GET", "/_proxy/inflight", NULL, out);
}

/* ---- start and stop ---- */

static bool ready_or_dead(void *userdata) {
	hx_moto *m = userdata;

	return access(m->ready_file, F_OK) == 0 || !hx_proc_running(m->server) || !hx_proc_running(m->proxy);
}

static bool log_says_addr_in_use(const char *log) {
	_cleanup_free_ char *text = hx_read_file(log, NULL);

	return text && strstr(text, "Address already in use");
}

static int read_ready(hx_moto *m) {
	json_auto_t *j = NULL;
	json_error_t jerr;
	const char *key = NULL, *secret = NULL;
	int port = 0;

	j = json_load_file(m->ready_file, 0, &jerr);
	if (!j || json_unpack(j, "{s:i, s:s, s:s}", "port", &port, "access_key_id", &key,
	                      "secret_access_key", &secret) < 0) {
		fprintf(stderr, "harness: bad %s: %s\n", m->ready_file, j ? "fields missing" : jerr.text);
		return -EBADMSG;
	}
	if (asprintf(&m->endpoint, "http://127.0.0.1:%d/", port) < 0) {
		m->endpoint = NULL;
		return -ENOMEM;
	}
	if (asprintf(&m->imds_url, "http://127.0.0.1:%d", port) < 0) {
		m->imds_url = NULL;
		return -ENOMEM;
	}
	m->access_key_id = strdup(key);
	m->secret_access_key = strdup(secret);
	if (!m->access_key_id || !m->secret_access_key)
		return -ENOMEM;
	if (asprintf(&m->env[0], "AWS_ACCESS_KEY_ID=%s", key) < 0 ||
	    asprintf(&m->env[1], "AWS_SECRET_ACCESS_KEY=%s", secret) < 0 ||
	    !(m->env[2] = strdup("AWS_REGION=" HX_MOTO_REGION)) ||
	    !(m->env[3] = strdup("AWS_DEFAULT_REGION=" HX_MOTO_REGION)) ||
	    !(m->env[4] = strdup("NO_PROXY=127.0.0.1,localhost")))
		return -ENOMEM;
	return 0;
}

static void stop_children(hx_moto *m) {
	m->proxy = hx_proc_free(m->proxy);
	m->server = hx_proc_free(m->server);
}

/* One attempt on one port: -EADDRINUSE if moto lost its port to another
 * process (the caller retries with a new one). */
static int start_once(hx_moto *m) {
	_cleanup_free_ char *port_s = NULL;
	int port, r;

	port = hx_free_port();
	if (port < 0)
		return port;
	free(m->server_url);
	if (asprintf(&m->server_url, "http://127.0.0.1:%d", port) < 0 || asprintf(&port_s, "%d", port) < 0) {
		m->server_url = NULL;
		return -ENOMEM;
	}
	(void) unlink(m->moto_log);
	(void) unlink(m->proxy_log);
	(void) unlink(m->ready_file);

	char *const moto_argv[] = { (char *) moto_server(), "-H", "127.0.0.1", "-p", port_s, NULL };
	char *const moto_env[] = { "INITIAL_NO_AUTH_ACTION_COUNT=" HX_MOTO_BOOTSTRAP_CALLS, NULL };
	r = hx_proc_spawn(&m->server, moto_argv, moto_env, m->moto_log);
	if (r < 0)
		return r;

	_cleanup_free_ char *script = NULL;
	if (asprintf(&script, "%s/tests/ec2proxy.py", hx_srcdir()) < 0) {
		script = NULL;
		return -ENOMEM;
	}
	char *const proxy_argv[] = { (char *) python3(), script, "--moto", m->server_url,
		"--ready-file", m->ready_file, "--region", HX_MOTO_REGION, NULL };
	r = hx_proc_spawn(&m->proxy, proxy_argv, NULL, m->proxy_log);
	if (r < 0)
		return r;

	if (!hx_wait_until(ready_or_dead, m, HX_MOTO_START_USEC)) {
		fprintf(stderr, "harness: ec2proxy did not become ready within %u s; logs: %s, %s\n",
		        (unsigned) (HX_MOTO_START_USEC / USEC_PER_SEC), m->proxy_log, m->moto_log);
		hx_log_tail(m->proxy_log, HX_MOTO_LOG_TAIL_LINES);
		hx_log_tail(m->moto_log, HX_MOTO_LOG_TAIL_LINES);
		return -ETIMEDOUT;
	}
	if (!hx_proc_running(m->server)) {
		if (log_says_addr_in_use(m->moto_log))
			return -EADDRINUSE;
		fprintf(stderr, "harness: moto_server exited while starting; log: %s\n", m->moto_log);
		hx_log_tail(m->moto_log, HX_MOTO_LOG_TAIL_LINES);
		return -ESRCH;
	}
	if (!hx_proc_running(m->proxy)) {
		fprintf(stderr, "harness: ec2proxy.py exited while starting; log: %s\n", m->proxy_log);
		hx_log_tail(m->proxy_log, HX_MOTO_LOG_TAIL_LINES);
		return -ESRCH;
	}
	return read_ready(m);
}

int hx_moto_start(hx_moto **out) {
	_cleanup_(hx_moto_freep) hx_moto *m = NULL;
	int r;

	if (!out)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->dir = hx_mkdtemp("moto");
	if (!m->dir)
		return -EIO;
	if (asprintf(&m->moto_log, "%s/moto.log", m->dir) < 0 ||
	    asprintf(&m->proxy_log, "%s/proxy.log", m->dir) < 0 ||
	    asprintf(&m->ready_file, "%s/ready.json", m->dir) < 0)
		return -ENOMEM;

	for (unsigned attempt = 1;; attempt++) {
		r = start_once(m);
		if (r != -EADDRINUSE)
			break;
		stop_children(m);
		if (attempt == HX_MOTO_PORT_TRIES) {
			fprintf(stderr, "harness: moto_server could not bind a free port %d times; log: %s\n",
			        HX_MOTO_PORT_TRIES, m->moto_log);
			break;
		}
	}
	if (r < 0) {
		/* Most often a tool is missing: say precisely which. Checked
		 * only after a failure: it costs half a second per start. */
		int t = check_tools();
		return t < 0 ? t : r;
	}
	*out = TAKE_PTR(m);
	return 0;
}

const char *hx_moto_endpoint(const hx_moto *m) {
	return m ? m->endpoint : NULL;
}

const char *hx_moto_imds_url(const hx_moto *m) {
	return m ? m->imds_url : NULL;
}

const char *hx_moto_server_url(const hx_moto *m) {
	return m ? m->server_url : NULL;
}

const char *hx_moto_access_key_id(const hx_moto *m) {
	return m ? m->access_key_id : NULL;
}

const char *hx_moto_secret_access_key(const hx_moto *m) {
	return m ? m->secret_access_key : NULL;
}

const char *hx_moto_region(const hx_moto *m) {
	return HX_MOTO_REGION;
}

const char *hx_moto_dir(const hx_moto *m) {
	return m ? m->dir : NULL;
}

pid_t hx_moto_server_pid(const hx_moto *m) {
	return m ? hx_proc_pid(m->server) : -1;
}

pid_t hx_moto_proxy_pid(const hx_moto *m) {
	return m ? hx_proc_pid(m->proxy) : -1;
}

char *const *hx_moto_env(const hx_moto *m) {
	return m ? m->env : NULL;
}

int hx_moto_write_credentials(const hx_moto *m, const char *path) {
	_cleanup_free_ char *text = NULL;

	if (!m || !path)
		return -EINVAL;
	if (asprintf(&text, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
	             m->access_key_id, m->secret_access_key) < 0) {
		text = NULL;
		return -ENOMEM;
	}
	return hx_write_file(path, text);
}

hx_moto *hx_moto_free(hx_moto *m) {
	if (!m)
		return NULL;
	stop_children(m);
	if (m->dir)
		(void) hx_rm_tmp(m->dir);
	free(m->dir);
	free(m->moto_log);
	free(m->proxy_log);
	free(m->ready_file);
	free(m->server_url);
	free(m->endpoint);
	free(m->imds_url);
	free(m->access_key_id);
	free(m->secret_access_key);
	for (size_t i = 0; i < ELEMENTSOF(m->env); i++)
		free(m->env[i]);
	free(m);
	return NULL;
}
