/* http.c — the /metrics HTTP server (metrics.h): libmicrohttpd in external
 * polling mode on the caller's sd-event loop.
 *
 * MHD runs with MHD_USE_EPOLL and no thread: all its sockets sit in one
 * epoll fd of its own, which we watch from sd-event; when it is readable,
 * or when the timeout MHD asks for (idle connections, work left over from
 * an edge-triggered round) passes, MHD_run() does the work and we re-arm
 * the timer from MHD_get_timeout(). The listening socket is ours: binding
 * it ourselves gives the real errno (MHD_start_daemon only says NULL),
 * so "address already in use" reaches the user. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <microhttpd.h>

#include "metrics.h"

/* A scrape is one short request: idle connections go after this. */
#define CONNECTION_TIMEOUT_SEC 10
#define CONNECTION_LIMIT 32

struct metrics_server {
	sd_event *event;
	struct MHD_Daemon *mhd;
	sd_event_source *io, *timer;
	char *listen;
	uint16_t port;
	uint64_t requests;
	metrics_collect_fn collect;
	void *userdata;
};

int metrics_listen_parse(const char *listen, struct sockaddr_storage *out, socklen_t *out_len, char *err,
			 size_t err_size) {
	_cleanup_free_ char *host = NULL;
	const char *port_s;

	memset(out, 0, sizeof *out);
	if (!listen || !*listen) {
		snprintf(err, err_size, "empty address (expected host:port)");
		return -EINVAL;
	}
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':') {
			snprintf(err, err_size, "\"%.64s\": expected [IPv6]:port", listen);
			return -EINVAL;
		}
		host = strndup(listen + 1, (size_t) (close - listen - 1));
		port_s = close + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || strchr(listen, ':') != colon) {
			snprintf(err, err_size, "\"%.64s\": expected host:port (IPv6 in brackets: [::1]:9469)", listen);
			return -EINVAL;
		}
		host = strndup(listen, (size_t) (colon - listen));
		port_s = colon + 1;
	}
	if (!host)
		return -ENOMEM;

	/* Digits only: strtoul would take "+1", " 1" or "0x10". */
	unsigned long port = 0;
	size_t n = strlen(port_s);
	if (n == 0 || n > 5 || strspn(port_s, "0123456789") != n || (port = strtoul(port_s, NULL, 10)) > 65535) {
		snprintf(err, err_size, "\"%.64s\": port must be a number from 0 to 65535", listen);
		return -EINVAL;
	}
	if (!*host) {
		/* All interfaces only when asked for in so many words. */
		snprintf(err, err_size, "\"%.64s\": no host (write 127.0.0.1:PORT, or 0.0.0.0:PORT for every interface)",
			 listen);
		return -EINVAL;
	}

	/* Numeric only: a name would need a resolver call that blocks the
	 * loop, and the node's config should say exactly where it listens. */
	if (listen[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *) out;
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
			snprintf(err, err_size, "\"%.64s\": \"%.48s\" is not an IPv6 address", listen, host);
			return -EINVAL;
		}
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t) port);
		*out_len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *) out;
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
			snprintf(err, err_size, "\"%.64s\": \"%.48s\" is not an IPv4 address (IPv6 in brackets)", listen,
				 host);
			return -EINVAL;
		}
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t) port);
		*out_len = sizeof *a;
	}
	return 0;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
			       const char *content_type, const char *allow) {
	/* MUST_FREE: MHD frees body with free() when done with it. */
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	(void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (allow)
		(void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text,
				    const char *allow) {
	char *body = strdup(text);
	if (!body)
		return MHD_NO;
	return respond(conn, status, body, strlen(body), "text/plain; charset=utf-8", allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls) {
	metrics_server *s = cls;
	metrics_buf b = {};
	char *text = NULL;
	size_t len = 0;
	int r;

	/* Answer on the first call: nothing here wants a request body, and
	 * MHD drops (and then closes for) one we did not read. */
	s->requests++;
	if (!streq(url, "/metrics"))
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", NULL);
	if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n", "GET, HEAD");

	r = s->collect(&b, s->userdata);
	if (r < 0) {
		metrics_buf_done(&b);
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "collecting metrics failed\n", NULL);
	}
	r = metrics_buf_take(&b, &text, &len);
	if (r < 0)
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "collecting metrics failed\n", NULL);
	return respond(conn, MHD_HTTP_OK, text, len, METRICS_CONTENT_TYPE, NULL);
}

static void server_run(metrics_server *s);

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	server_run(userdata);
	return 0;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
	server_run(userdata);
	return 0;
}

/* One round of MHD's work, then the timer set to when it wants the next
 * one at the latest (off when it has no deadline). */
static void server_run(metrics_server *s) {
	MHD_UNSIGNED_LONG_LONG ms = 0;

	(void) MHD_run(s->mhd);
	if (MHD_get_timeout(s->mhd, &ms) != MHD_YES) {
		(void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
		return;
	}
	/* Failing to arm it costs only timeouts; readiness still drives MHD. */
	if (sd_event_source_set_time_relative(s->timer, (uint64_t) ms * USEC_PER_MSEC) >= 0)
		(void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static int bind_socket(const struct sockaddr_storage *sa, socklen_t len) {
	_cleanup_close_ int fd = -1;
	int one = 1;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Restarting corrald must not wait out TIME_WAIT; a second live
	 * listener still gets EADDRINUSE (this is not SO_REUSEPORT). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		return -errno;
	if (sa->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *) sa, len) < 0)
		return -errno;
	if (listen(fd, 64) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static uint16_t bound_port(int fd) {
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;

	if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
		return 0;
	if (sa.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *) &sa)->sin6_port);
	return ntohs(((struct sockaddr_in *) &sa)->sin_port);
}

int metrics_server_new(metrics_server **out, sd_event *event, const char *listen, metrics_collect_fn collect,
		       void *userdata, char *err, size_t err_size) {
	_cleanup_(metrics_server_freep) metrics_server *s = NULL;
	struct sockaddr_storage sa;
	socklen_t len = 0;
	char why[200];
	int fd, r;

	if (!event || !collect) {
		snprintf(err, err_size, "metrics_listen %s: no event loop or collector", listen ?: "(none)");
		return -EINVAL;
	}
	r = metrics_listen_parse(listen, &sa, &len, why, sizeof why);
	if (r < 0) {
		snprintf(err, err_size, "metrics_listen: %s", why);
		return r;
	}

	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->event = sd_event_ref(event);
	s->collect = collect;
	s->userdata = userdata;
	s->listen = strdup(listen);
	if (!s->listen)
		return -ENOMEM;

	fd = bind_socket(&sa, len);
	if (fd < 0) {
		/* strerror's "Address already in use" reads better in lower case
		 * after the address. */
		snprintf(why, sizeof why, "%s", strerror(-fd));
		if (why[0] >= 'A' && why[0] <= 'Z' && why[1] >= 'a' && why[1] <= 'z')
			why[0] = (char) (why[0] - 'A' + 'a');
		snprintf(err, err_size, "metrics_listen %s: %s", listen, why);
		return fd;
	}
	s->port = bound_port(fd);

	/* No MHD_USE_INTERNAL_POLLING_THREAD: external polling, ours. No
	 * MHD_USE_ERROR_LOG: the library must not print; failures show as
	 * errors returned here or as a scrape that fails. */
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
				  on_request, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) CONNECTION_TIMEOUT_SEC,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned) CONNECTION_LIMIT, MHD_OPTION_END);
	if (!s->mhd) {
		/* Whether MHD closed the socket on its way out differs between
		 * versions; nothing else has opened an fd since (one thread),
		 * so a valid fd here is still ours. */
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd);
		snprintf(err, err_size, "metrics_listen %s: cannot start the HTTP server (libmicrohttpd)", listen);
		return -EIO;
	}

	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		snprintf(err, err_size, "metrics_listen %s: libmicrohttpd has no epoll support", listen);
		return -EOPNOTSUPP;
	}
	r = sd_event_add_io(event, &s->io, info->epoll_fd, EPOLLIN, on_io, s);
	if (r < 0) {
		snprintf(err, err_size, "metrics_listen %s: cannot watch the server: %s", listen, strerror(-r));
		return r;
	}
	r = sd_event_add_time_relative(event, &s->timer, CLOCK_MONOTONIC, 0, 0, on_timer, s);
	if (r < 0) {
		snprintf(err, err_size, "metrics_listen %s: cannot add a timer: %s", listen, strerror(-r));
		return r;
	}
	(void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
	(void) sd_event_source_set_description(s->io, "metrics-http");
	(void) sd_event_source_set_description(s->timer, "metrics-http-timer");

	*out = TAKE_PTR(s);
	return 0;
}

uint16_t metrics_server_port(const metrics_server *s) {
	return s->port;
}

const char *metrics_server_listen(const metrics_server *s) {
	return s->listen;
}

uint64_t metrics_server_requests(const metrics_server *s) {
	return s->requests;
}

metrics_server *metrics_server_free(metrics_server *s) {
	if (!s)
		return NULL;
	/* The sources first: they watch the epoll fd MHD closes. */
	s->io = sd_event_source_disable_unref(s->io);
	s->timer = sd_event_source_disable_unref(s->timer);
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	sd_event_unref(s->event);
	free(s->listen);
	free(s);
	return NULL;
}
