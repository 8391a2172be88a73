/* common.c — corralctl's run: its settings (cluster, endpoints,
 * credentials: options, then --config, then the environment), the etcd
 * client, the error and exit-code helpers, and the small parsers every
 * command uses. */
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"

void ctl_done(ctl_t *c) {
	c->etcd = etcd_client_free(c->etcd);
	c->event = sd_event_unref(c->event);
	c->conf = conf_unref(c->conf);
	strv_free(c->endpoints);
	free(c->prefix);
	free(c->cluster);
	free(c->proposer);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->user);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
}

int ctl_set_str(char **dst, const char *src) {
	char *s = strdup(src);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int split_endpoints(const char *list, char ***out) {
	_cleanup_free_ char *copy = strdup(list);
	_cleanup_strv_free_ char **v = NULL;
	size_t n = 0;
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **nv = realloc(v, (n + 2) * sizeof *v);
		if (!nv)
			return -ENOMEM;
		v = nv;
		v[n] = strdup(t);
		v[n + 1] = NULL;
		if (!v[n])
			return -ENOMEM;
		if (strncmp(t, "http://", 7) != 0 && strncmp(t, "https://", 8) != 0)
			return -EINVAL;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	strv_free(*out);
	*out = TAKE_PTR(v);
	return 0;
}

/* Reads a corrald config whole, with the parser corrald uses, and keeps it
 * (c->conf: the node id for load set, ec2's settings); takes endpoints,
 * prefix, credentials and time-outs from it. Options given on the command
 * line win. */
static int use_config(ctl_t *c, const char *path) {
	_cleanup_(conf_freep) conf *cf = NULL;
	conf_error err = {};
	char buf[600];
	int r;

	r = conf_load_file(path, &cf, &err);
	if (r < 0) {
		fprintf(stderr, "corralctl: %s\n", conf_error_format(&err, buf, sizeof buf));
		return r;
	}
	strv_free(c->endpoints);
	c->endpoints = TAKE_PTR(cf->etcd.endpoints);
	if ((!c->prefix && ctl_set_str(&c->prefix, cf->prefix) < 0) ||
	    (!c->ca_file && cf->etcd.ca_file && ctl_set_str(&c->ca_file, cf->etcd.ca_file) < 0) ||
	    (!c->cert_file && cf->etcd.cert_file && ctl_set_str(&c->cert_file, cf->etcd.cert_file) < 0) ||
	    (!c->key_file && cf->etcd.key_file && ctl_set_str(&c->key_file, cf->etcd.key_file) < 0) ||
	    (!c->user && cf->etcd.username && ctl_set_str(&c->user, cf->etcd.username) < 0) ||
	    (cf->etcd.password && ctl_set_str(&c->password, cf->etcd.password) < 0))
		return -ENOMEM;
	if (!c->timeout_usec)
		c->timeout_usec = cf->etcd.request_timeout_usec;
	c->attempt_usec = cf->etcd.attempt_timeout_usec;
	conf_unref(c->conf);
	c->conf = TAKE_PTR(cf);
	return 0;
}

static int read_password_file(ctl_t *c, const char *path) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char buf[1024];

	if (!f) {
		fprintf(stderr, "corralctl: cannot read %s: %m\n", path);
		return -errno;
	}
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	int r = ctl_set_str(&c->password, buf);
	explicit_bzero(buf, sizeof buf);
	return r;
}

/* The prefix: --prefix, else /corral/<--cluster>, else --config's, else
 * $CORRAL_PREFIX or $CORRAL_CLUSTER; and the cluster's name, for ec2: the
 * name given, else the prefix's last part. Exit code. */
static int set_cluster(ctl_t *c, const ctl_cmdline *cl) {
	const char *prefix = cl->prefix, *cluster = cl->cluster;

	if (!prefix && !cluster && !c->prefix) {
		prefix = getenv("CORRAL_PREFIX");
		cluster = getenv("CORRAL_CLUSTER");
		if (!prefix && cluster && !keys_cluster_valid(cluster))
			return ctl_usage_error("bad $CORRAL_CLUSTER '%s': a cluster name is one key segment "
					       "(not empty, no '/')", cluster);
	}
	if (prefix && ctl_set_str(&c->prefix, prefix) < 0)
		return 1;
	if (!prefix && cluster) {
		free(c->prefix);
		c->prefix = keys_prefix_for_cluster(cluster);
		if (!c->prefix)
			return 1;
	}
	if (!c->prefix)
		return ctl_usage_error("%s", "no cluster given: use --prefix, --cluster or --config (or $CORRAL_PREFIX)");
	if (c->prefix[0] != '/')
		return ctl_usage_error("prefix '%s' must start with '/'", c->prefix);
	while (strlen(c->prefix) > 1 && c->prefix[strlen(c->prefix) - 1] == '/')
		c->prefix[strlen(c->prefix) - 1] = '\0';
	return ctl_set_str(&c->cluster, cluster && !prefix ? cluster : strrchr(c->prefix, '/') + 1) < 0 ? 1 : 0;
}

int ctl_setup(ctl_t *c, const ctl_cmdline *cl) {
	const char *endpoints = cl->endpoints;
	int r;

	if (cl->config && use_config(c, cl->config) < 0)
		return 2;
	if ((r = set_cluster(c, cl)) != 0)
		return r;
	if (!endpoints && !c->endpoints)
		endpoints = getenv("CORRAL_ENDPOINTS");
	if (endpoints || !c->endpoints) {
		r = split_endpoints(endpoints ? endpoints : "http://127.0.0.1:2379", &c->endpoints);
		if (r == -EINVAL)
			return ctl_usage_error("bad endpoints '%s' (want http(s)://host:port,...)", endpoints);
		if (r < 0)
			return 1;
	}
	if (cl->pwfile && read_password_file(c, cl->pwfile) < 0)
		return 2;
	if (c->user && !c->password) {
		const char *pw = getenv("CORRAL_ETCD_PASSWORD");
		if (!pw)
			return ctl_usage_error("%s", "--user needs a password: --password-file or $CORRAL_ETCD_PASSWORD");
		if (ctl_set_str(&c->password, pw) < 0)
			return 1;
	}
	return 0;
}

/* "ctl-<hostname>-<pid>": unique among live processes, so no two
 * corralctl runs pick the same snapshot id (agree.h). */
static int set_proposer(ctl_t *c) {
	char host[256] = "";

	if (gethostname(host, sizeof host - 1) < 0 || !host[0])
		strcpy(host, "localhost");
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == '_' || (unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '-';
	host[100] = '\0';
	if (asprintf(&c->proposer, "ctl-%s-%ld", host, (long) getpid()) < 0) {
		c->proposer = NULL;
		return -ENOMEM;
	}
	return 0;
}

int ctl_connect(ctl_t *c) {
	etcd_options o = {
		.endpoints = c->endpoints,
		.ca_file = c->ca_file,
		.cert_file = c->cert_file,
		.key_file = c->key_file,
		.username = c->user,
		.password = c->password,
		.request_timeout_usec = c->timeout_usec,
		.attempt_timeout_usec = c->attempt_usec,
	};
	int r;

	if (set_proposer(c) < 0)
		return 1;
	r = sd_event_new(&c->event);
	if (r >= 0)
		r = etcd_client_new(&c->etcd, c->event, &o);
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot set up the etcd client: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

int ctl_fail(const etcd_response *r) {
	char buf[512];
	fprintf(stderr, "corralctl: etcd: %s\n", etcd_error_format(&r->error, buf, sizeof buf));
	return 1;
}

int ctl_usage_error(const char *fmt, ...) {
	va_list ap;

	fprintf(stderr, "corralctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'corralctl --help'.\n");
	return 2;
}

int ctl_parse_int(const char *s, long min, long max, long *out) {
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int ctl_parse_double(const char *s, double min, double max, double *out) {
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

void ctl_format_time(char buf[32], time_t t) {
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%lld", (long long) t);
}

/* Who did it, for the records an operator leaves: "user@host". */
static char *who(void) {
	char host[256] = "";
	const char *user = getenv("USER");
	char *out;

	if (!user || !*user)
		user = getenv("LOGNAME");
	if (!user || !*user) {
		/* a service or cron job has no $USER: the account's name */
		const struct passwd *pw = getpwuid(geteuid());
		user = pw ? pw->pw_name : NULL;
	}
	if (gethostname(host, sizeof host - 1) < 0 || !host[0])
		strcpy(host, "localhost");
	if (asprintf(&out, "%s@%s", user && *user ? user : "unknown", host) < 0)
		return NULL;
	return out;
}

char *ctl_marker_json(const char *reason) {
	_cleanup_free_ char *by = who();
	char now[32];

	ctl_format_time(now, time(NULL));
	json_auto_t *o = json_pack("{s:s, s:s, s:s?}", "since", now, "by", by ? by : "unknown", "reason", reason);
	return o ? json_dumps(o, JSON_COMPACT) : NULL;
}
