/* curlev.h — one libcurl multi handle driven by an sd-event loop: curl's
 * sockets become sd-event io sources and its timer an sd-event timer, so
 * every HTTP client in corral (etcd, EC2, instance metadata) shares the one
 * loop and never blocks it.
 *
 * The owner adds and removes its easy handles on curlev_multi() as usual;
 * after curl has made progress, the owner's progress callback runs and
 * reads finished transfers with curl_multi_info_read(). */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct curlev curlev;

typedef void (*curlev_progress_fn)(curlev *cv, void *userdata);

/* Optional, before the first curlev_new(): tls false says that no
 * transfer of this process will use TLS (no https URL), so OpenSSL's error
 * strings, some 40 KiB of heap a process, are never loaded (curl's own
 * init would load them). Should TLS be used after all, it works; its
 * errors then name OpenSSL's reason by number. Calls curl_global_init(). */
int curlev_global_init(bool tls);
/* name labels the event sources ("etcd", "ec2") for debugging. Calls
 * curl_global_init() the first time (curlev_global_init(true)). */
int curlev_new(curlev **out, sd_event *event, const char *name, curlev_progress_fn progress, void *userdata);
/* The sd-event priority of its timer and of the io sources of sockets
 * opened from now on (set it before adding handles). */
int curlev_set_priority(curlev *cv, int64_t priority);
CURLM *curlev_multi(curlev *cv);
sd_event *curlev_event(curlev *cv);
/* The owner removes its easy handles first. NULL-safe. */
curlev *curlev_free(curlev *cv);
DEFINE_TRIVIAL_CLEANUP_FUNC(curlev *, curlev_free);
