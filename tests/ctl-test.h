/* ctl-test.h — what the corralctl tests share: running the built binary
 * against a test etcd and prefix. Header-only, like etcd-test.h. */
#pragma once

#include "etcd-test.h"

/* The environment corralctl reads its cluster, endpoints and password
 * from: unset, so that only what a test passes counts. */
static inline void ctlt_clean_env(void) {
	unsetenv("CORRAL_PREFIX");
	unsetenv("CORRAL_CLUSTER");
	unsetenv("CORRAL_ENDPOINTS");
	unsetenv("CORRAL_ETCD_PASSWORD");
}

/* Runs corralctl with args (no -e/-p when endpoint is NULL) and env
 * ("NAME=value", NULL-terminated; NULL: none) added to ours; stdout in
 * *out, stderr in *err (each may be NULL); returns the exit status. */
static inline int ctlt_run_env(const char *endpoint, const char *prefix, char **out, char **err, char *const args[],
			       char *const env[]) {
	_cleanup_free_ char *bin = NULL;
	char *argv[64];
	size_t i = 0;

	cr_assert_geq(asprintf(&bin, "%s/corralctl", hx_builddir()), 0);
	argv[i++] = bin;
	if (endpoint) {
		argv[i++] = "-e";
		argv[i++] = (char *) endpoint;
		argv[i++] = "-p";
		argv[i++] = (char *) prefix;
	}
	for (size_t j = 0; args[j]; j++) {
		cr_assert_lt(i, ELEMENTSOF(argv) - 1);
		argv[i++] = args[j];
	}
	argv[i] = NULL;
	return hx_run_capture(out, err, 30 * USEC_PER_SEC, argv, env);
}

static inline int ctlt_run(const char *endpoint, const char *prefix, char **out, char **err, char *const args[]) {
	return ctlt_run_env(endpoint, prefix, out, err, args, NULL);
}
