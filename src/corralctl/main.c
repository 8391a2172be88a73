/* corralctl — the operator's CLI. It reads and writes desired state in etcd;
 * corrald acts on it. Exit codes: 0 ok, 1 the operation failed, 2 usage or
 * input error. */
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "etcd.h"
#include "log.h"

typedef enum { FORMAT_TABLE, FORMAT_JSON } format_t;

typedef struct ctl {
	char **endpoints;
	char *prefix;
	char *ca_file, *cert_file, *key_file;
	char *user, *password;
	uint64_t timeout_usec;
	format_t format;
	sd_event *event;
	etcd_client *etcd;
} ctl_t;

static void ctl_done(ctl_t *c) {
	c->etcd = etcd_client_free(c->etcd);
	c->event = sd_event_unref(c->event);
	strv_free(c->endpoints);
	free(c->prefix);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->user);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
}

static int set_str(char **dst, const char *src) {
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

/* Takes endpoints, prefix and credentials from a corrald config; options
 * given on the command line win. */
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
	if ((!c->prefix && set_str(&c->prefix, cf->prefix) < 0) ||
	    (cf->etcd.ca_file && set_str(&c->ca_file, cf->etcd.ca_file) < 0) ||
	    (cf->etcd.cert_file && set_str(&c->cert_file, cf->etcd.cert_file) < 0) ||
	    (cf->etcd.key_file && set_str(&c->key_file, cf->etcd.key_file) < 0) ||
	    (cf->etcd.username && set_str(&c->user, cf->etcd.username) < 0) ||
	    (cf->etcd.password && set_str(&c->password, cf->etcd.password) < 0))
		return -ENOMEM;
	c->timeout_usec = cf->etcd.request_timeout_usec;
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
	int r = set_str(&c->password, buf);
	explicit_bzero(buf, sizeof buf);
	return r;
}

static int connect_etcd(ctl_t *c) {
	etcd_options o = {
		.endpoints = c->endpoints,
		.ca_file = c->ca_file,
		.cert_file = c->cert_file,
		.key_file = c->key_file,
		.username = c->user,
		.password = c->password,
		.request_timeout_usec = c->timeout_usec,
	};
	int r = sd_event_new(&c->event);
	if (r < 0)
		return r;
	return etcd_client_new(&c->etcd, c->event, &o);
}

static int fail(const etcd_response *r) {
	char buf[512];
	fprintf(stderr, "corralctl: etcd: %s\n", etcd_error_format(&r->error, buf, sizeof buf));
	return 1;
}

/* ---- tables ---------------------------------------------------------------- */

#define TABLE_COLUMNS 5

static void print_row(const size_t width[TABLE_COLUMNS], const char *const cells[TABLE_COLUMNS]) {
	for (size_t j = 0; j + 1 < TABLE_COLUMNS; j++)
		printf("%-*s  ", (int) width[j], cells[j]);
	printf("%s\n", cells[TABLE_COLUMNS - 1]);
}

static void print_table(const char *const header[TABLE_COLUMNS], char *(*rows)[TABLE_COLUMNS], size_t n) {
	size_t width[TABLE_COLUMNS];

	for (size_t j = 0; j < TABLE_COLUMNS; j++) {
		width[j] = strlen(header[j]);
		for (size_t i = 0; i < n; i++)
			if (strlen(rows[i][j]) > width[j])
				width[j] = strlen(rows[i][j]);
	}
	print_row(width, header);
	for (size_t i = 0; i < n; i++)
		print_row(width, (const char *const *) rows[i]);
}

/* ---- nodes ---------------------------------------------------------------- */

static char *join_services(json_t *services) {
	size_t i, len = 0;
	json_t *s;
	char *out;

	json_array_foreach(services, i, s)
		len += json_string_length(s) + 1;
	out = calloc(1, len + 2);
	if (!out)
		return NULL;
	json_array_foreach(services, i, s) {
		if (!json_is_string(s))
			continue;
		if (out[0])
			strcat(out, ",");
		strcat(out, json_string_value(s));
	}
	if (!out[0])
		strcpy(out, "-");
	return out;
}

static char *field(json_t *o, const char *name) {
	json_t *v = json_object_get(o, name);
	return strdup(json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : "-");
}

static int cmd_nodes(ctl_t *c, int argc, char **argv) {
	_cleanup_free_ char *key = NULL;
	_cleanup_(etcd_response_freep) etcd_response *resp = NULL;
	etcd_sync s = {};
	int r, bad = 0;

	if (argc > 1) {
		fprintf(stderr, "corralctl: nodes takes no arguments\n");
		return 2;
	}
	if (asprintf(&key, "%s/nodes/", c->prefix) < 0)
		return 1;
	etcd_range_req req = { .key = key, .prefix = true };
	r = etcd_range_all(c->etcd, &req, 500, etcd_sync_cb, &s, NULL);
	if (r < 0)
		return 1;
	if (etcd_wait(c->etcd, &s, &resp) < 0)
		return fail(resp);

	json_auto_t *all = json_array();
	char *(*rows)[TABLE_COLUMNS] = calloc(resp->n_kvs ? resp->n_kvs : 1, sizeof *rows);
	if (!all || !rows) {
		free(rows);
		return 1;
	}
	size_t klen = strlen(key);
	for (size_t i = 0; i < resp->n_kvs; i++) {
		const etcd_kv *kv = &resp->kvs[i];
		const char *id = kv->key + klen;
		json_error_t jerr;
		json_t *rec = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, &jerr);

		if (!json_is_object(rec)) {
			fprintf(stderr, "corralctl: warning: %s holds no valid node record: %s\n", kv->key,
				rec ? "not a JSON object" : jerr.text);
			json_decref(rec);
			rec = json_pack("{ss}", "error", "malformed node record");
			bad++;
		}
		json_object_set_new(rec, "node_id", json_string(id));
		json_object_set_new(rec, "lease", json_sprintf("%llx", (unsigned long long) kv->lease));
		rows[i][0] = strdup(id);
		rows[i][1] = field(rec, "address");
		rows[i][2] = join_services(json_object_get(rec, "services"));
		rows[i][3] = field(rec, "version");
		rows[i][4] = field(rec, "started");
		json_array_append_new(all, rec);
	}

	if (c->format == FORMAT_JSON) {
		json_dumpf(all, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		static const char *const header[TABLE_COLUMNS] = { "NODE", "ADDRESS", "SERVICES", "VERSION", "STARTED" };
		bool ok = true;
		for (size_t i = 0; i < resp->n_kvs; i++)
			for (size_t j = 0; j < TABLE_COLUMNS; j++)
				ok = ok && rows[i][j];
		if (ok)
			print_table(header, rows, resp->n_kvs);
		if (resp->n_kvs == 0)
			printf("(no nodes registered under %s)\n", key);
	}
	for (size_t i = 0; i < resp->n_kvs; i++)
		for (size_t j = 0; j < TABLE_COLUMNS; j++)
			free(rows[i][j]);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------- */

static void help(void) {
	printf("Usage: corralctl [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "The corral operator's CLI.\n"
	       "\n"
	       "Commands:\n"
	       "  nodes                    list the registered nodes\n"
	       "\n"
	       "Options:\n"
	       "  -e, --endpoints URL,...  etcd endpoints ($CORRAL_ENDPOINTS, default http://127.0.0.1:2379)\n"
	       "  -p, --prefix PREFIX      cluster key prefix ($CORRAL_PREFIX)\n"
	       "      --cluster NAME       cluster name: prefix /corral/NAME ($CORRAL_CLUSTER)\n"
	       "  -c, --config FILE        take endpoints, prefix and credentials from a corrald config\n"
	       "  -o, --format FORMAT      table (default) or json\n"
	       "      --ca-file FILE       CA bundle for https endpoints\n"
	       "      --cert-file FILE     client certificate\n"
	       "      --key-file FILE      client key\n"
	       "      --user NAME          etcd user; password from --password-file or $CORRAL_ETCD_PASSWORD\n"
	       "      --password-file FILE\n"
	       "      --timeout DURATION   per request (default 10s)\n"
	       "  -h, --help               show this help\n"
	       "      --version            show the version\n"
	       "\n"
	       "Exit codes: 0 ok, 1 the operation failed, 2 usage or input error.\n");
}

_printf_(1, 2) static int usage_error(const char *fmt, ...) {
	va_list ap;

	fprintf(stderr, "corralctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'corralctl --help'.\n");
	return 2;
}

int main(int argc, char *argv[]) {
	enum { ARG_VERSION = 0x100, ARG_CLUSTER, ARG_CA, ARG_CERT, ARG_KEY, ARG_USER, ARG_PWFILE, ARG_TIMEOUT };
	static const struct option options[] = {
		{ "endpoints", required_argument, NULL, 'e' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "cluster", required_argument, NULL, ARG_CLUSTER },
		{ "config", required_argument, NULL, 'c' },
		{ "format", required_argument, NULL, 'o' },
		{ "ca-file", required_argument, NULL, ARG_CA },
		{ "cert-file", required_argument, NULL, ARG_CERT },
		{ "key-file", required_argument, NULL, ARG_KEY },
		{ "user", required_argument, NULL, ARG_USER },
		{ "password-file", required_argument, NULL, ARG_PWFILE },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	_cleanup_(ctl_done) ctl_t c = { .format = FORMAT_TABLE };
	/* Precedence: options, then --config, then the environment. */
	const char *endpoints = NULL, *prefix = NULL, *cluster = NULL, *config = NULL, *pwfile = NULL;
	int opt, r;

	log_set_ident("corralctl");
	while ((opt = getopt_long(argc, argv, "+e:p:c:o:h", options, NULL)) >= 0) {
		switch (opt) {
		case 'e':
			endpoints = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case ARG_CLUSTER:
			cluster = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (streq(optarg, "json"))
				c.format = FORMAT_JSON;
			else if (streq(optarg, "table"))
				c.format = FORMAT_TABLE;
			else
				return usage_error("unknown format '%s' (json or table)", optarg);
			break;
		case ARG_CA:
			if (set_str(&c.ca_file, optarg) < 0)
				return 1;
			break;
		case ARG_CERT:
			if (set_str(&c.cert_file, optarg) < 0)
				return 1;
			break;
		case ARG_KEY:
			if (set_str(&c.key_file, optarg) < 0)
				return 1;
			break;
		case ARG_USER:
			if (set_str(&c.user, optarg) < 0)
				return 1;
			break;
		case ARG_PWFILE:
			pwfile = optarg;
			break;
		case ARG_TIMEOUT:
			if (conf_parse_duration(optarg, &c.timeout_usec) < 0 || c.timeout_usec == 0)
				return usage_error("bad --timeout '%s'", optarg);
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("corralctl %s\n", CORRAL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'corralctl --help'.\n");
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "no command given");

	if (config && use_config(&c, config) < 0)
		return 2;
	if (!prefix && !cluster && !c.prefix) {
		prefix = getenv("CORRAL_PREFIX");
		cluster = getenv("CORRAL_CLUSTER");
	}
	if (!endpoints && !c.endpoints)
		endpoints = getenv("CORRAL_ENDPOINTS");
	if (prefix && set_str(&c.prefix, prefix) < 0)
		return 1;
	if (!prefix && cluster) {
		free(c.prefix);
		c.prefix = NULL;
		if (asprintf(&c.prefix, "/corral/%s", cluster) < 0)
			return 1;
	}
	if (!c.prefix)
		return usage_error("%s", "no cluster given: use --prefix, --cluster or --config (or $CORRAL_PREFIX)");
	if (c.prefix[0] != '/')
		return usage_error("prefix '%s' must start with '/'", c.prefix);
	while (strlen(c.prefix) > 1 && c.prefix[strlen(c.prefix) - 1] == '/')
		c.prefix[strlen(c.prefix) - 1] = '\0';
	if (endpoints || !c.endpoints) {
		r = split_endpoints(endpoints ? endpoints : "http://127.0.0.1:2379", &c.endpoints);
		if (r == -EINVAL)
			return usage_error("bad endpoints '%s' (want http(s)://host:port,...)", endpoints);
		if (r < 0)
			return 1;
	}
	if (pwfile && read_password_file(&c, pwfile) < 0)
		return 2;
	if (c.user && !c.password) {
		const char *pw = getenv("CORRAL_ETCD_PASSWORD");
		if (!pw)
			return usage_error("%s", "--user needs a password: --password-file or $CORRAL_ETCD_PASSWORD");
		if (set_str(&c.password, pw) < 0)
			return 1;
	}

	r = connect_etcd(&c);
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot set up the etcd client: %s\n", strerror(-r));
		return 1;
	}

	const char *cmd = argv[optind];
	if (streq(cmd, "nodes"))
		return cmd_nodes(&c, argc - optind, argv + optind);
	return usage_error("unknown command '%s'", cmd);
}
