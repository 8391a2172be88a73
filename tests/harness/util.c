/* util.c — time, waiting, files, ports and places for the test harness. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "harness.h"

/* How often hx_wait_until() asks again. */
#define HX_POLL_USEC (5 * USEC_PER_MSEC)

uint64_t hx_now_usec(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

bool hx_wait_until(bool (*pred)(void *userdata), void *userdata, uint64_t timeout_usec) {
	uint64_t deadline = hx_now_usec() + timeout_usec;

	for (;;) {
		if (pred(userdata))
			return true;
		uint64_t now = hx_now_usec();
		if (now >= deadline)
			return false;
		uint64_t left = deadline - now;
		usleep(left < HX_POLL_USEC ? left : HX_POLL_USEC);
	}
}

static const char *env_or(const char *name, const char *fallback) {
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

const char *hx_builddir(void) {
	return env_or("CORRAL_BUILDDIR", ".");
}

const char *hx_srcdir(void) {
	return env_or("CORRAL_SRCDIR", ".");
}

const char *hx_tool(const char *env, const char *fallback) {
	return env_or(env, fallback);
}

char *hx_mkdtemp(const char *tag) {
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/hx-%s-XXXXXX", env_or("TMPDIR", "/tmp"), tag ?: "tmp") < 0) {
		path = NULL;
		fprintf(stderr, "harness: out of memory\n");
		return NULL;
	}
	if (!mkdtemp(path)) {
		fprintf(stderr, "harness: cannot create temporary directory %s: %m\n", path);
		return NULL;
	}
	return TAKE_PTR(path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	if (remove(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int hx_rm_rf(const char *path) {
	if (!path)
		return 0;
	/* FTW_DEPTH: contents before their directory; FTW_PHYS: never follow
	 * symlinks out of the tree. */
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r == -1) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
	}
	if (r < 0) {
		fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(-r));
		return r;
	}
	return 0;
}

int hx_rm_tmp(const char *path) {
	if (!path)
		return 0;
	if (getenv("CORRAL_KEEP_TMP") && *getenv("CORRAL_KEEP_TMP")) {
		fprintf(stderr, "harness: keeping %s (CORRAL_KEEP_TMP)\n", path);
		return 0;
	}
	return hx_rm_rf(path);
}

char *hx_read_file(const char *path, size_t *len) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, size = 0;

	if (fd < 0)
		return NULL;
	for (;;) {
		if (size - n < 4096) {
			size_t nsize = size ? size * 2 : 8192;
			char *nbuf = realloc(buf, nsize);
			if (!nbuf)
				return NULL;
			buf = nbuf;
			size = nsize;
		}
		ssize_t k = read(fd, buf + n, size - n - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (k == 0)
			break;
		n += (size_t) k;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return TAKE_PTR(buf);
}

size_t hx_count_in_file(const char *path, const char *needle) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	size_t n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

size_t hx_file_lines(const char *path) {
	_cleanup_free_ char *text = hx_read_file(path, NULL);
	size_t k = 0;

	for (const char *c = text; c && *c; c++)
		k += *c == '\n';
	return k;
}

char *hx_fmt(const char *fmt, ...) {
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

int hx_write_file(const char *path, const char *text) {
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(text), done = 0;

	if (fd < 0) {
		int r = -errno;
		fprintf(stderr, "harness: cannot create %s: %m\n", path);
		return r;
	}
	while (done < len) {
		ssize_t k = write(fd, text + done, len - done);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			fprintf(stderr, "harness: cannot write %s: %m\n", path);
			return r;
		}
		done += (size_t) k;
	}
	if (close(TAKE_FD(fd)) < 0) {
		int r = -errno;
		fprintf(stderr, "harness: cannot write %s: %m\n", path);
		return r;
	}
	return 0;
}

int hx_free_port(void) {
	/* The kernel picks an unused ephemeral port; it is free when we close
	 * the socket, but someone may take it before our child binds it, so
	 * callers retry on EADDRINUSE. */
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t salen = sizeof(sa);

	if (fd < 0)
		goto fail;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
		goto fail;
	if (getsockname(fd, (struct sockaddr *) &sa, &salen) < 0)
		goto fail;
	return ntohs(sa.sin_port);
fail:;
	int r = -errno;
	fprintf(stderr, "harness: cannot find a free loopback port: %m\n");
	return r;
}

void hx_log_tail(const char *path, unsigned lines) {
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (!path)
		return;
	text = hx_read_file(path, &len);
	if (!text) {
		fprintf(stderr, "harness:   (cannot read %s: %m)\n", path);
		return;
	}
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (len == 0) {
		fprintf(stderr, "harness:   (%s is empty)\n", path);
		return;
	}

	/* Walk back over `lines` newlines. */
	size_t start = len;
	unsigned seen = 0;
	while (start > 0) {
		if (text[start - 1] == '\n' && ++seen == lines)
			break;
		start--;
	}
	fprintf(stderr, "harness:   last lines of %s:\n", path);
	for (char *line = text + start, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		fprintf(stderr, "harness:   | %s\n", line);
	}
}

bool hx_event_run_until(sd_event *event, const bool *flag, uint64_t timeout_usec) {
	uint64_t end = hx_now_usec() + timeout_usec;

	while (!*flag) {
		uint64_t now = hx_now_usec();
		if (now >= end || sd_event_run(event, end - now) < 0)
			return false;
	}
	return true;
}

int hx_write_corrald_config(const char *path, const char *node_id, const char *services, const char *endpoints) {
	return hx_write_corrald_config_full(path, node_id, "127.0.0.9", services, endpoints, NULL);
}

int hx_write_corrald_config_full(const char *path, const char *node_id, const char *address, const char *services,
				 const char *endpoints, const char *more) {
	_cleanup_free_ char *text = NULL;

	/* A YAML flow sequence takes the comma-separated list as it is. */
	if (asprintf(&text,
		     "cluster: t\n"
		     "node_id: %s\n"
		     "address: %s\n"
		     "services: [%s]\n"
		     "lease_ttl: 2s\n"
		     "log_level: debug\n"
		     "etcd:\n"
		     "  endpoints: [%s]\n"
		     "  request_timeout: 3s\n"
		     "  connect_timeout: 500ms\n"
		     "%s",
		     node_id, address, services, endpoints, more ? more : "") < 0)
		return -ENOMEM;
	return hx_write_file(path, text);
}

char **hx_corralctl_argv(const char *endpoints, char *const args[]) {
	size_t n = strv_length(args), k = 0;
	_cleanup_strv_free_ char **v = calloc(n + 4, sizeof(char *));

	if (!v || asprintf(&v[k++], "%s/corralctl", hx_builddir()) < 0 ||
	    asprintf(&v[k++], "--endpoints=%s", endpoints) < 0 || !(v[k++] = strdup("--cluster=t")))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(v[k++] = strdup(args[i])))
			return NULL;
	return TAKE_PTR(v);
}

int hx_corralctl(const char *endpoints, char **out, char *const args[]) {
	_cleanup_strv_free_ char **argv = hx_corralctl_argv(endpoints, args);

	if (!argv)
		return -ENOMEM;
	return hx_run(out, 30 * USEC_PER_SEC, argv, NULL);
}

/* ---- one blocking HTTP request ---- */

typedef struct http_body {
	char *data;
	size_t len;
} http_body;

static size_t http_body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
	http_body *b = userdata;
	size_t n = size * nmemb;
	char *d = realloc(b->data, b->len + n + 1);

	if (!d)
		return 0;
	memcpy(d + b->len, ptr, n);
	b->len += n;
	d[b->len] = '\0';
	b->data = d;
	return n;
}

static void curl_easy_cleanupp(CURL **c) {
	if (*c)
		curl_easy_cleanup(*c);
}

static void curl_slist_freep(struct curl_slist **l) {
	curl_slist_free_all(*l);
}

int hx_http(const hx_http_req *rq, char **out, long *http_code) {
	static bool curl_ready = false;
	_cleanup_(curl_easy_cleanupp) CURL *c = NULL;
	_cleanup_(curl_slist_freep) struct curl_slist *headers = NULL;
	http_body b = {};
	CURLcode cc;

	if (!rq || !rq->url)
		return -EINVAL;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		curl_ready = true;
	}
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, rq->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, rq->timeout_ms);
	if (rq->http11)
		curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (rq->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, rq->ca_file);
	if (rq->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, rq->cert_file);
	if (rq->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, rq->key_file);
	if (rq->json) {
		headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (!headers || !curl_slist_append(headers, "Expect:"))
			return -ENOMEM;
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->json);
	}
	if (rq->header) {
		struct curl_slist *l = curl_slist_append(headers, rq->header);
		if (!l)
			return -ENOMEM;
		headers = l;
	}
	if (headers)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	if (rq->method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);

	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		free(b.data);
		return cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
		       cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT :
		       cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	if (http_code)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http_code);
	if (out)
		*out = b.data ?: strdup("");
	else
		free(b.data);
	return 0;
}
