/* buildinfo.h — what this build of corral can do, for the `features:` line
 * of `corrald --version` and `corralctl --version` (both print through
 * corral_version_print, so they never disagree). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct corral_feature {
	const char *name;
	bool on;
} corral_feature;

enum { CORRAL_N_FEATURES = 4 };

/* Probes this process, in a fixed order: tls (libcurl was built with TLS:
 * https:// etcd endpoints and EC2 work), ec2 (libxml2, opened at run time,
 * loads: the EC2 client can parse replies), metrics (libmicrohttpd has the
 * epoll mode the /metrics server uses), systemd (always: libsystemd is
 * linked). */
void corral_features(corral_feature out[CORRAL_N_FEATURES]);

/* "+tls +ec2 -metrics +systemd" into buf (pure). The length it needed, as
 * snprintf, or -ENOBUFS when buf was too small. */
int corral_features_format(const corral_feature *f, size_t n, char *buf, size_t size);

/* "PROG VERSION" and "features: ..." on two lines to f; 0 or -errno. */
int corral_version_print(FILE *f, const char *prog);
