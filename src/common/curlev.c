/* curlev.c — libcurl's multi socket interface on sd-event (see curlev.h),
 * in the manner of systemd's src/import/curl-util.c. */
#include <openssl/crypto.h>
#include <stdbool.h>
#include <sys/epoll.h>

#include "curlev.h"

struct curlev {
	sd_event *event;
	sd_event_source *timer;
	CURLM *multi;
	char *name;
	int64_t priority;               /* of the timer and every io source */
	curlev_progress_fn progress;
	void *userdata;
};

static void drive(curlev *cv, curl_socket_t fd, int action) {
	int running;

	(void) curl_multi_socket_action(cv->multi, fd, action, &running);
	cv->progress(cv, cv->userdata);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	int action = 0;

	if (revents & (EPOLLIN | EPOLLPRI))
		action |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		action |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		action |= CURL_CSELECT_ERR;
	drive(userdata, fd, action);
	return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
	curlev *cv = userdata;
	sd_event_source *s = socketp;
	uint32_t events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			sd_event_source_disable_unref(s);
			curl_multi_assign(cv->multi, fd, NULL);
		}
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EPOLLOUT;

	if (s) {
		if (sd_event_source_set_io_events(s, events) < 0 || sd_event_source_set_enabled(s, SD_EVENT_ON) < 0)
			return -1;
		return 0;
	}
	if (sd_event_add_io(cv->event, &s, fd, events, on_io, cv) < 0)
		return -1;
	(void) sd_event_source_set_description(s, cv->name);
	(void) sd_event_source_set_priority(s, cv->priority);
	if (curl_multi_assign(cv->multi, fd, s) != CURLM_OK) {
		sd_event_source_disable_unref(s);
		return -1;
	}
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	drive(userdata, CURL_SOCKET_TIMEOUT, 0);
	return 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userdata) {
	curlev *cv = userdata;
	uint64_t now;

	if (timeout_ms < 0)
		return sd_event_source_set_enabled(cv->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	if (sd_event_now(cv->event, CLOCK_MONOTONIC, &now) < 0)
		return -1;
	/* +1: a 0 ms timeout still has to run after this callback returns. */
	if (sd_event_source_set_time(cv->timer, now + (uint64_t) timeout_ms * USEC_PER_MSEC + 1) < 0 ||
	    sd_event_source_set_enabled(cv->timer, SD_EVENT_ONESHOT) < 0)
		return -1;
	return 0;
}

curlev *curlev_free(curlev *cv) {
	if (!cv)
		return NULL;
	if (cv->multi)
		curl_multi_cleanup(cv->multi);
	sd_event_source_disable_unref(cv->timer);
	sd_event_unref(cv->event);
	free(cv->name);
	free(cv);
	return NULL;
}

static bool curl_ready;

int curlev_global_init(bool tls) {
	if (curl_ready)
		return 0;
	/* First come, first served: OpenSSL then skips the strings that
	 * curl's init asks it to load. */
	if (!tls)
		(void) OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	curl_ready = true;
	return 0;
}

int curlev_new(curlev **out, sd_event *event, const char *name, curlev_progress_fn progress, void *userdata) {
	_cleanup_(curlev_freep) curlev *cv = NULL;
	int r = curlev_global_init(true);

	if (r < 0)
		return r;
	cv = calloc(1, sizeof *cv);
	if (!cv)
		return -ENOMEM;
	cv->event = sd_event_ref(event);
	cv->progress = progress;
	cv->userdata = userdata;
	if (asprintf(&cv->name, "%s-curl", name) < 0) {
		cv->name = NULL;
		return -ENOMEM;
	}
	cv->multi = curl_multi_init();
	if (!cv->multi)
		return -ENOMEM;
	/* Accuracy 1 us: 0 would mean sd-event's default of 250 ms, and curl's
	 * timeouts drive every transfer's progress. */
	r = sd_event_add_time(event, &cv->timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_timer, cv);
	if (r < 0)
		return r;
	(void) sd_event_source_set_description(cv->timer, cv->name);
	(void) sd_event_source_set_enabled(cv->timer, SD_EVENT_OFF);

	if (curl_multi_setopt(cv->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(cv->multi, CURLMOPT_SOCKETDATA, cv) != CURLM_OK ||
	    curl_multi_setopt(cv->multi, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
	    curl_multi_setopt(cv->multi, CURLMOPT_TIMERDATA, cv) != CURLM_OK)
		return -EIO;
	*out = TAKE_PTR(cv);
	return 0;
}

int curlev_set_priority(curlev *cv, int64_t priority) {
	cv->priority = priority;
	return sd_event_source_set_priority(cv->timer, priority);
}

CURLM *curlev_multi(curlev *cv) {
	return cv->multi;
}

sd_event *curlev_event(curlev *cv) {
	return cv->event;
}
