/* etcd.c — real etcd members for tests (Debian's etcd 3.4) on loopback ports,
 * with optional TLS and auth, driven through etcdctl and libcurl. */
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define HX_ETCD_MAX_MEMBERS 5
#define HX_ETCD_START_USEC (20 * USEC_PER_SEC)
#define HX_ETCD_STOP_USEC (10 * USEC_PER_SEC)
#define HX_ETCD_PORT_TRIES 5
#define HX_ETCDCTL_USEC (30 * USEC_PER_SEC)
#define HX_OPENSSL_USEC (30 * USEC_PER_SEC)
#define HX_LOG_TAIL_LINES 8

typedef struct hx_member {
	char name[16];                  /* "m0" ... */
	char *client_url, *peer_url;
	char *data_dir, *log;
	hx_proc *proc;
	bool frozen;                    /* SIGSTOPped by hx_etcd_member_stop */
} hx_member;

struct hx_etcd {
	unsigned n;
	char *dir;
	bool tls, client_cert_auth;
	bool auth;                      /* etcdctl runs as root:rootpw */
	char **extra_args;
	char token[40];                 /* --initial-cluster-token */
	char *endpoints, *initial_cluster;
	char *ca, *ca_key, *server_cert, *server_key, *client_cert, *client_key;
	hx_member m[HX_ETCD_MAX_MEMBERS];
};

static char *path_in(const char *dir, const char *name) {
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static char **strv_copy(char *const *v) {
	size_t n = strv_length(v);
	char **c = calloc(n + 1, sizeof(char *));

	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			strv_free(c);
			return NULL;
		}
	return c;
}

/* ---- TLS material, made with the openssl CLI ---- */

static int openssl(char *const argv[]) {
	_cleanup_free_ char *err = NULL;
	int r = hx_run_capture(NULL, &err, HX_OPENSSL_USEC, argv, NULL);

	if (r == 0)
		return 0;
	if (r > 0) {
		fprintf(stderr, "harness: openssl %s %s failed (status %d): %s\n",
		        argv[1], argv[2] ?: "", r, err ?: "");
		r = -EIO;
	}
	return r;
}

/* Key and CSR, then a certificate signed by the CA with extensions from
 * ext (written to a file beside it). */
static int make_leaf(hx_etcd *e, const char *stem, const char *subject, const char *ext,
                     char **cert_out, char **key_out) {
	_cleanup_free_ char *key = NULL, *csr = NULL, *crt = NULL, *extf = NULL;
	const char *openssl_bin = hx_tool("CORRAL_OPENSSL", "openssl");
	int r;

	if (asprintf(&key, "%s/%s.key", e->dir, stem) < 0 ||
	    asprintf(&csr, "%s/%s.csr", e->dir, stem) < 0 ||
	    asprintf(&crt, "%s/%s.crt", e->dir, stem) < 0 ||
	    asprintf(&extf, "%s/%s.ext", e->dir, stem) < 0)
		return -ENOMEM;
	r = hx_write_file(extf, ext);
	if (r < 0)
		return r;

	char *const req[] = { (char *) openssl_bin, "req", "-new", "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
		"-out", csr, "-subj", (char *) subject, NULL };
	r = openssl(req);
	if (r < 0)
		return r;
	char *const sign[] = { (char *) openssl_bin, "x509", "-req", "-in", csr,
		"-CA", e->ca, "-CAkey", e->ca_key, "-set_serial", stem[0] == 's' ? "2" : "3",
		"-days", "2", "-extfile", extf, "-out", crt, NULL };
	r = openssl(sign);
	if (r < 0)
		return r;
	*cert_out = TAKE_PTR(crt);
	*key_out = TAKE_PTR(key);
	return 0;
}

static int make_certs(hx_etcd *e) {
	const char *openssl_bin = hx_tool("CORRAL_OPENSSL", "openssl");
	int r;

	e->ca = path_in(e->dir, "ca.crt");
	e->ca_key = path_in(e->dir, "ca.key");
	if (!e->ca || !e->ca_key)
		return -ENOMEM;
	/* P-256 keys: quick to make, and Go's TLS takes them. */
	char *const ca[] = { (char *) openssl_bin, "req", "-x509", "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", e->ca_key,
		"-out", e->ca, "-days", "2", "-subj", "/CN=hx test CA",
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL };
	r = openssl(ca);
	if (r < 0)
		return r;
	/* The server certificate also says clientAuth: etcd 3.4's gRPC gateway
	 * presents it when it dials its own gRPC port under --client-cert-auth. */
	r = make_leaf(e, "server", "/CN=127.0.0.1",
	              "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
	              "extendedKeyUsage=serverAuth,clientAuth\n"
	              "keyUsage=critical,digitalSignature,keyEncipherment\n",
	              &e->server_cert, &e->server_key);
	if (r < 0)
		return r;
	return make_leaf(e, "client", "/CN=hx-client",
	                 "extendedKeyUsage=clientAuth\n"
	                 "keyUsage=critical,digitalSignature\n",
	                 &e->client_cert, &e->client_key);
}

/* ---- HTTP to a member ---- */

static int request(hx_etcd *e, unsigned member, const char *path, const char *json,
                   long timeout_ms, char **out, long *http_code) {
	_cleanup_free_ char *url = NULL;

	if (!e || member >= e->n || !path)
		return -EINVAL;
	if (asprintf(&url, "%s%s", e->m[member].client_url, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	hx_http_req rq = {
		.url = url,
		.json = json,
		.timeout_ms = timeout_ms,
		/* The client port also speaks h2 for gRPC; stay on HTTP/1.1. */
		.http11 = true,
		.ca_file = e->tls ? e->ca : NULL,
		.cert_file = e->tls ? e->client_cert : NULL,
		.key_file = e->tls ? e->client_key : NULL,
	};
	return hx_http(&rq, out, http_code);
}

int hx_etcd_request(hx_etcd *e, unsigned member, const char *path, const char *json,
                    char **out, long *http_code) {
	/* Above etcd's own 7 s request timeout after a leader loss. */
	return request(e, member, path, json, 10000, out, http_code);
}

static bool member_healthy(hx_etcd *e, unsigned i) {
	_cleanup_free_ char *out = NULL;
	long code = 0;

	if (request(e, i, "/health", NULL, 2000, &out, &code) < 0)
		return false;
	return code == 200 && strstr(out, "\"health\":\"true\"");
}

/* ---- members ---- */

/* A frozen member handles no signal but SIGKILL: thaw it before anything
 * asks it to stop. */
static void member_thaw(hx_member *m) {
	if (m->frozen && m->proc)
		(void) hx_proc_signal(m->proc, SIGCONT);
	m->frozen = false;
}

static void member_reset(hx_member *m) {
	member_thaw(m);
	m->proc = hx_proc_free(m->proc);
	free(m->client_url);
	free(m->peer_url);
	m->client_url = m->peer_url = NULL;
}

static int member_spawn(hx_etcd *e, unsigned i, bool existing) {
	hx_member *m = &e->m[i];
	size_t n_extra = strv_length(e->extra_args), k = 0;
	_cleanup_free_ char **argv = calloc(40 + n_extra, sizeof(char *));

	if (!argv)
		return -ENOMEM;
	argv[k++] = (char *) hx_tool("CORRAL_ETCD", "etcd");
	argv[k++] = "--name";
	argv[k++] = m->name;
	argv[k++] = "--data-dir";
	argv[k++] = m->data_dir;
	argv[k++] = "--listen-client-urls";
	argv[k++] = m->client_url;
	argv[k++] = "--advertise-client-urls";
	argv[k++] = m->client_url;
	argv[k++] = "--listen-peer-urls";
	argv[k++] = m->peer_url;
	argv[k++] = "--initial-advertise-peer-urls";
	argv[k++] = m->peer_url;
	argv[k++] = "--initial-cluster";
	argv[k++] = e->initial_cluster;
	argv[k++] = "--initial-cluster-state";
	argv[k++] = existing ? "existing" : "new";
	argv[k++] = "--initial-cluster-token";
	argv[k++] = e->token;
	/* Fast raft for tests (defaults 100 / 1000 ms). */
	argv[k++] = "--heartbeat-interval";
	argv[k++] = "50";
	argv[k++] = "--election-timeout";
	argv[k++] = "500";
	/* zap to stderr, which goes to DIR/mN.log. */
	argv[k++] = "--logger";
	argv[k++] = "zap";
	argv[k++] = "--log-outputs";
	argv[k++] = "stderr";
	if (e->tls) {
		argv[k++] = "--cert-file";
		argv[k++] = e->server_cert;
		argv[k++] = "--key-file";
		argv[k++] = e->server_key;
		argv[k++] = "--trusted-ca-file";
		argv[k++] = e->ca;
		if (e->client_cert_auth)
			argv[k++] = "--client-cert-auth";
	}
	for (size_t j = 0; j < n_extra; j++)
		argv[k++] = e->extra_args[j];
	argv[k] = NULL;

	return hx_proc_spawn(&m->proc, argv, NULL, m->log);
}

static bool log_says_addr_in_use(const char *log) {
	_cleanup_free_ char *text = hx_read_file(log, NULL);

	return text && strstr(text, "address already in use");
}

static void report_exit(hx_member *m) {
	int status = 0;

	(void) hx_proc_wait(m->proc, 0, &status);
	fprintf(stderr, "harness: etcd %s exited with %s %d while starting; log: %s\n", m->name,
	        WIFEXITED(status) ? "status" : "signal",
	        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), m->log);
	/* Status 2 is a command-line error: said on the first line, followed
	 * by a usage text that would bury it. */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
		_cleanup_free_ char *text = hx_read_file(m->log, NULL);
		if (text) {
			text[strcspn(text, "\n")] = '\0';
			fprintf(stderr, "harness:   | %s\n", text);
		}
		return;
	}
	hx_log_tail(m->log, HX_LOG_TAIL_LINES);
}

/* Waits until the members in mask answer /health true. -EADDRINUSE if one
 * died because a port was taken (the caller may retry with new ports). */
static int wait_healthy(hx_etcd *e, unsigned mask, bool quiet_addrinuse) {
	uint64_t deadline = hx_now_usec() + HX_ETCD_START_USEC;
	unsigned healthy = 0;

	for (;;) {
		for (unsigned i = 0; i < e->n; i++) {
			hx_member *m = &e->m[i];
			if (!(mask & (1u << i)) || (healthy & (1u << i)))
				continue;
			if (!hx_proc_running(m->proc)) {
				if (log_says_addr_in_use(m->log)) {
					if (quiet_addrinuse)
						return -EADDRINUSE;
					fprintf(stderr, "harness: etcd %s could not bind its ports "
					        "(address already in use); log: %s\n", m->name, m->log);
					hx_log_tail(m->log, HX_LOG_TAIL_LINES);
					return -EADDRINUSE;
				}
				report_exit(m);
				return -ESRCH;
			}
			if (member_healthy(e, i))
				healthy |= 1u << i;
		}
		if (healthy == mask)
			return 0;
		if (hx_now_usec() >= deadline)
			break;
		usleep(5 * USEC_PER_MSEC);
	}
	for (unsigned i = 0; i < e->n; i++)
		if ((mask & (1u << i)) && !(healthy & (1u << i))) {
			fprintf(stderr, "harness: etcd %s did not become healthy within %u s; log: %s\n",
			        e->m[i].name, (unsigned) (HX_ETCD_START_USEC / USEC_PER_SEC), e->m[i].log);
			hx_log_tail(e->m[i].log, HX_LOG_TAIL_LINES);
		}
	return -ETIMEDOUT;
}

/* Picks 2 * n distinct free ports and builds every URL from them. */
static int assign_ports(hx_etcd *e) {
	int ports[2 * HX_ETCD_MAX_MEMBERS];
	const char *scheme = e->tls ? "https" : "http";
	size_t len = 0;

	for (unsigned i = 0; i < 2 * e->n; i++) {
		bool dup;
		do {
			int p = hx_free_port();
			if (p < 0)
				return p;
			ports[i] = p;
			dup = false;
			for (unsigned j = 0; j < i; j++)
				dup = dup || ports[j] == p;
		} while (dup);
	}

	free(e->endpoints);
	free(e->initial_cluster);
	e->endpoints = e->initial_cluster = NULL;
	for (unsigned i = 0; i < e->n; i++) {
		hx_member *m = &e->m[i];
		member_reset(m);
		if (asprintf(&m->client_url, "%s://127.0.0.1:%d", scheme, ports[2 * i]) < 0) {
			m->client_url = NULL;
			return -ENOMEM;
		}
		if (asprintf(&m->peer_url, "http://127.0.0.1:%d", ports[2 * i + 1]) < 0) {
			m->peer_url = NULL;
			return -ENOMEM;
		}
		len += strlen(m->client_url) + strlen(m->peer_url) + strlen(m->name) + 3;
	}
	e->endpoints = calloc(1, len);
	e->initial_cluster = calloc(1, len);
	if (!e->endpoints || !e->initial_cluster)
		return -ENOMEM;
	char *pe = e->endpoints, *pc = e->initial_cluster;
	for (unsigned i = 0; i < e->n; i++) {
		pe += sprintf(pe, "%s%s", i ? "," : "", e->m[i].client_url);
		pc += sprintf(pc, "%s%s=%s", i ? "," : "", e->m[i].name, e->m[i].peer_url);
	}
	return 0;
}

/* Signals the members in mask together, then waits for each (SIGKILL after
 * 10 s, as hx_proc_free does). */
static void stop_mask(hx_etcd *e, unsigned mask, int sig) {
	for (unsigned i = 0; i < e->n; i++)
		if ((mask & (1u << i)) && e->m[i].proc) {
			member_thaw(&e->m[i]);
			(void) hx_proc_signal(e->m[i].proc, sig);
		}
	for (unsigned i = 0; i < e->n; i++)
		if (mask & (1u << i))
			e->m[i].proc = hx_proc_free(e->m[i].proc);
}

/* Stops every member: SIGKILL when sig says so (a failed start), else
 * politely, except for a cluster's leader. A leader given SIGTERM hands
 * leadership to the follower it has heard from longest and waits for it to
 * take over, up to etcd's request timeout (5 s + 2 elections = 6 s here);
 * when the followers are stopping too, or just stopped and it has not
 * noticed yet, that is a 6 s stall. So followers get SIGTERM and the leader,
 * whose data is about to be deleted anyway, SIGKILL once they are gone. */
static void stop_all(hx_etcd *e, int sig) {
	unsigned all = (1u << e->n) - 1, leader;

	if (sig == SIGTERM && e->n > 1 && hx_etcd_leader(e, &leader) == 0) {
		stop_mask(e, all & ~(1u << leader), SIGTERM);
		stop_mask(e, 1u << leader, SIGKILL);
	} else
		stop_mask(e, all, sig);
}

int hx_etcd_start(hx_etcd **out, const hx_etcd_options *opts) {
	_cleanup_(hx_etcd_freep) hx_etcd *e = NULL;
	hx_etcd_options none = {};
	uint8_t rnd[8];
	int r;

	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &none;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->n = opts->members ?: 1;
	if (e->n > HX_ETCD_MAX_MEMBERS) {
		fprintf(stderr, "harness: %u etcd members asked for, at most %d supported\n",
		        e->n, HX_ETCD_MAX_MEMBERS);
		e->n = 0;
		return -EINVAL;
	}
	e->tls = opts->tls;
	e->client_cert_auth = opts->tls && opts->client_cert_auth;
	if (opts->extra_args && !(e->extra_args = strv_copy(opts->extra_args)))
		return -ENOMEM;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
		return -EIO;
	snprintf(e->token, sizeof(e->token), "hx-%02x%02x%02x%02x%02x%02x%02x%02x",
	         rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);

	e->dir = hx_mkdtemp("etcd");
	if (!e->dir)
		return -EIO;
	for (unsigned i = 0; i < e->n; i++) {
		hx_member *m = &e->m[i];
		char f[32];
		snprintf(m->name, sizeof(m->name), "m%u", i);
		snprintf(f, sizeof(f), "%s.log", m->name);
		m->data_dir = path_in(e->dir, m->name);
		m->log = path_in(e->dir, f);
		if (!m->data_dir || !m->log)
			return -ENOMEM;
	}
	if (e->tls) {
		r = make_certs(e);
		if (r < 0) {
			fprintf(stderr, "harness: cannot make TLS material in %s: %s\n",
			        e->dir, strerror(-r));
			return r;
		}
	}

	for (unsigned attempt = 1;; attempt++) {
		r = assign_ports(e);
		if (r < 0)
			return r;
		for (unsigned i = 0; i < e->n; i++) {
			/* A fresh start each attempt: no data, no old log. */
			(void) hx_rm_rf(e->m[i].data_dir);
			(void) unlink(e->m[i].log);
			r = member_spawn(e, i, false);
			if (r < 0)
				return r;
		}
		r = wait_healthy(e, (1u << e->n) - 1, attempt < HX_ETCD_PORT_TRIES);
		if (r != -EADDRINUSE || attempt >= HX_ETCD_PORT_TRIES)
			break;
		stop_all(e, SIGKILL);
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(e);
	return 0;
}

unsigned hx_etcd_members(const hx_etcd *e) {
	return e ? e->n : 0;
}

const char *hx_etcd_endpoint(const hx_etcd *e, unsigned member) {
	return e && member < e->n ? e->m[member].client_url : NULL;
}

const char *hx_etcd_endpoints(const hx_etcd *e) {
	return e ? e->endpoints : NULL;
}

const char *hx_etcd_dir(const hx_etcd *e) {
	return e ? e->dir : NULL;
}

const char *hx_etcd_log(const hx_etcd *e, unsigned member) {
	return e && member < e->n ? e->m[member].log : NULL;
}

const char *hx_etcd_ca_file(const hx_etcd *e) {
	return e && e->tls ? e->ca : NULL;
}

const char *hx_etcd_client_cert(const hx_etcd *e) {
	return e && e->tls ? e->client_cert : NULL;
}

const char *hx_etcd_client_key(const hx_etcd *e) {
	return e && e->tls ? e->client_key : NULL;
}

int hx_etcd_stop_member(hx_etcd *e, unsigned member, int sig) {
	if (!e || member >= e->n)
		return -EINVAL;
	hx_member *m = &e->m[member];
	if (!m->proc) {
		fprintf(stderr, "harness: etcd %s is not running\n", m->name);
		return -ESRCH;
	}
	if (hx_proc_running(m->proc)) {
		member_thaw(m);
		int r = hx_proc_signal(m->proc, sig);
		if (r < 0 && r != -ESRCH) {
			fprintf(stderr, "harness: cannot signal etcd %s: %s\n", m->name, strerror(-r));
			return r;
		}
		if (hx_proc_wait(m->proc, HX_ETCD_STOP_USEC, NULL) == -ETIMEDOUT) {
			fprintf(stderr, "harness: etcd %s still running 10 s after signal %d; killing it\n",
			        m->name, sig);
			(void) hx_proc_signal(m->proc, SIGKILL);
			(void) hx_proc_wait(m->proc, HX_ETCD_STOP_USEC, NULL);
		}
	}
	m->proc = hx_proc_free(m->proc);
	return 0;
}

int hx_etcd_start_member(hx_etcd *e, unsigned member) {
	int r;

	if (!e || member >= e->n)
		return -EINVAL;
	hx_member *m = &e->m[member];
	if (hx_proc_running(m->proc)) {
		fprintf(stderr, "harness: etcd %s is already running\n", m->name);
		return -EBUSY;
	}
	m->proc = hx_proc_free(m->proc);
	/* Same data dir and URLs; the data dir makes --initial-cluster moot,
	 * and "existing" says so. */
	r = member_spawn(e, member, true);
	if (r < 0)
		return r;
	return wait_healthy(e, 1u << member, false);
}

/* SIGSTOP/SIGCONT: the process stays, its sockets keep accepting (the
 * kernel queues), but nothing answers: a hung member, not a dead one. */
static int member_signal(hx_etcd *e, unsigned member, int sig, bool frozen) {
	if (!e || member >= e->n)
		return -EINVAL;
	hx_member *m = &e->m[member];
	if (!hx_proc_running(m->proc)) {
		fprintf(stderr, "harness: etcd %s is not running\n", m->name);
		return -ESRCH;
	}
	int r = hx_proc_signal(m->proc, sig);
	if (r < 0) {
		fprintf(stderr, "harness: cannot signal etcd %s: %s\n", m->name, strerror(-r));
		return r;
	}
	m->frozen = frozen;
	return 0;
}

int hx_etcd_member_stop(hx_etcd *e, unsigned member) {
	return member_signal(e, member, SIGSTOP, true);
}

int hx_etcd_member_cont(hx_etcd *e, unsigned member) {
	return member_signal(e, member, SIGCONT, false);
}

bool hx_etcd_member_running(hx_etcd *e, unsigned member) {
	return e && member < e->n && hx_proc_running(e->m[member].proc);
}

pid_t hx_etcd_member_pid(const hx_etcd *e, unsigned member) {
	return e && member < e->n && e->m[member].proc ? hx_proc_pid(e->m[member].proc) : -1;
}

static const char *json_str(const char *json, const char *key, char *buf, size_t size) {
	/* "key":"value" as the gateway writes it (uint64s are strings). */
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(json, pat), *q;
	if (!p)
		return NULL;
	p += strlen(pat);
	q = strchr(p, '"');
	if (!q || (size_t) (q - p) >= size)
		return NULL;
	memcpy(buf, p, (size_t) (q - p));
	buf[q - p] = '\0';
	return buf;
}

int hx_etcd_leader(hx_etcd *e, unsigned *out) {
	char ids[HX_ETCD_MAX_MEMBERS][32] = {}, leader[32] = "", l[32];
	bool any = false;

	if (!e)
		return -EINVAL;
	for (unsigned i = 0; i < e->n; i++) {
		_cleanup_free_ char *json = NULL;
		long code = 0;

		if (!hx_proc_running(e->m[i].proc) || e->m[i].frozen)
			continue;
		if (request(e, i, "/v3/maintenance/status", "{}", 2000, &json, &code) < 0 ||
		    code != 200 || !json_str(json, "member_id", ids[i], sizeof(ids[i])) ||
		    !json_str(json, "leader", l, sizeof(l)))
			return -EAGAIN;
		if (any && !streq(l, leader))
			return -EAGAIN;
		strcpy(leader, l);
		any = true;
	}
	for (unsigned i = 0; any && i < e->n; i++)
		if (streq(ids[i], leader)) {
			if (out)
				*out = i;
			return 0;
		}
	return -EAGAIN;
}

/* ---- etcdctl ---- */

int hx_etcdctl_as(hx_etcd *e, const char *user, char **out, char *const args[]) {
	size_t n_args = strv_length(args), k = 0;
	_cleanup_free_ char **argv = NULL;
	char *const env[] = { "ETCDCTL_API=3", NULL };

	if (!e)
		return -EINVAL;
	argv = calloc(20 + n_args, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	argv[k++] = (char *) hx_tool("CORRAL_ETCDCTL", "etcdctl");
	argv[k++] = "--endpoints";
	argv[k++] = e->endpoints;
	argv[k++] = "--dial-timeout";
	argv[k++] = "2s";
	argv[k++] = "--command-timeout";
	argv[k++] = "5s";
	if (e->tls) {
		argv[k++] = "--cacert";
		argv[k++] = e->ca;
		argv[k++] = "--cert";
		argv[k++] = e->client_cert;
		argv[k++] = "--key";
		argv[k++] = e->client_key;
	}
	if (user) {
		argv[k++] = "--user";
		argv[k++] = (char *) user;
	}
	for (size_t j = 0; j < n_args; j++)
		argv[k++] = args[j];
	argv[k] = NULL;
	return hx_run(out, HX_ETCDCTL_USEC, argv, env);
}

int hx_etcdctl(hx_etcd *e, char **out, char *const args[]) {
	return hx_etcdctl_as(e, e && e->auth ? "root:rootpw" : NULL, out, args);
}

/* etcdctl that must succeed: exit status != 0 becomes -EIO with a message. */
static int etcdctl_ok(hx_etcd *e, char **out, char *const args[]) {
	int r = hx_etcdctl(e, out, args);

	if (r > 0) {
		fprintf(stderr, "harness: etcdctl %s %s failed with status %d\n",
		        args[0], args[1] ?: "", r);
		if (out) {
			free(*out);
			*out = NULL;
		}
		return -EIO;
	}
	return r;
}

char *hx_etcd_get(hx_etcd *e, const char *key) {
	_cleanup_free_ char *out = NULL;
	char *const args[] = { "get", "--print-value-only", "--", (char *) key, NULL };

	if (etcdctl_ok(e, &out, args) < 0)
		return NULL;
	/* Nothing at all: no such key. A value is printed with a newline. */
	size_t len = strlen(out);
	if (len == 0)
		return NULL;
	if (out[len - 1] == '\n')
		out[len - 1] = '\0';
	return TAKE_PTR(out);
}

int hx_etcd_put(hx_etcd *e, const char *key, const char *value) {
	char *const args[] = { "put", "--", (char *) key, (char *) value, NULL };

	return etcdctl_ok(e, NULL, args);
}

int hx_etcd_enable_auth(hx_etcd *e, const char *user, const char *password, const char *prefix) {
	_cleanup_free_ char *cred = NULL, *role = NULL;
	int r;

	if (!e || !user || !password || !prefix)
		return -EINVAL;
	if (asprintf(&cred, "%s:%s", user, password) < 0 ||
	    asprintf(&role, "hx-%s", user) < 0)
		return -ENOMEM;

	char *const steps[][7] = {
		{ "user", "add", "root:rootpw", "--interactive=false", NULL },
		{ "role", "add", "root", NULL },
		{ "user", "grant-role", "root", "root", NULL },
		{ "role", "add", role, NULL },
		{ "role", "grant-permission", role, "--prefix=true", "readwrite", (char *) prefix, NULL },
		{ "user", "add", cred, "--interactive=false", NULL },
		{ "user", "grant-role", (char *) user, role, NULL },
		{ "auth", "enable", NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
		r = etcdctl_ok(e, NULL, steps[i]);
		if (r < 0) {
			fprintf(stderr, "harness: enabling auth on etcd in %s failed\n", e->dir);
			return r;
		}
	}
	e->auth = true;
	return 0;
}

hx_etcd *hx_etcd_free(hx_etcd *e) {
	if (!e)
		return NULL;
	stop_all(e, SIGTERM);
	for (unsigned i = 0; i < HX_ETCD_MAX_MEMBERS; i++) {
		member_reset(&e->m[i]);
		free(e->m[i].data_dir);
		free(e->m[i].log);
	}
	(void) hx_rm_tmp(e->dir);
	free(e->dir);
	strv_free(e->extra_args);
	free(e->endpoints);
	free(e->initial_cluster);
	free(e->ca);
	free(e->ca_key);
	free(e->server_cert);
	free(e->server_key);
	free(e->client_cert);
	free(e->client_key);
	free(e);
	return NULL;
}
