/* test_version.c — `corrald --version` and `corralctl --version`: the
 * version on the first line, then a `features:` line, the same for both
 * binaries and the same as corral_features() in this process, each
 * feature checked against its own probe here (libcurl's TLS backend,
 * libxml2 by its soname, libmicrohttpd's epoll mode). No etcd: a unit
 * test, so `make distcheck CORRAL_TESTS=unit` runs it from the tarball. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <microhttpd.h>

#include "buildinfo.h"
#include "harness.h"
#include "macro.h"

static char *run_bin(const char *prog, char *const args[], int *status) {
	_cleanup_free_ char *bin = NULL;
	char *out = NULL, *err = NULL;
	char *argv[8];
	size_t i = 0;

	cr_assert_geq(asprintf(&bin, "%s/%s", hx_builddir(), prog), 0);
	argv[i++] = bin;
	for (size_t j = 0; args[j]; j++) {
		cr_assert_lt(i, ELEMENTSOF(argv) - 1);
		argv[i++] = args[j];
	}
	argv[i] = NULL;
	*status = hx_run_capture(&out, &err, 10 * USEC_PER_SEC, argv, NULL);
	cr_assert_not_null(out);
	cr_expect_str_empty(err ? err : "", "%s --version wrote to stderr: %s", prog, err);
	free(err);
	return out;
}

/* What this process's libraries say, probed apart from corral_features(). */
static void expected_line(char *buf, size_t size) {
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	bool tls = curl->ssl_version && *curl->ssl_version;
	void *xml = dlopen(LIBXML2_SONAME, RTLD_NOW | RTLD_LOCAL);
	bool metrics = MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES;

	snprintf(buf, size, "features: %ctls %cec2 %cmetrics +systemd", tls ? '+' : '-', xml ? '+' : '-',
	         metrics ? '+' : '-');
	if (xml)
		dlclose(xml);
}

static void check_version(const char *prog, char *const args[]) {
	int status;
	char *out = run_bin(prog, args, &status);
	char want_first[64], want_second[128], first[64] = "", second[128] = "";
	size_t l1 = strcspn(out, "\n"), l2 = out[l1] ? strcspn(out + l1 + 1, "\n") : 0;

	cr_assert_eq(status, 0, "%s --version exited %d: %s", prog, status, out);
	snprintf(want_first, sizeof want_first, "%s %s", prog, PACKAGE_VERSION);
	expected_line(want_second, sizeof want_second);
	cr_assert_eq(out[l1], '\n', "one line only: %s", out);
	cr_assert_eq(out[l1 + 1 + l2], '\n', "no whole features line: %s", out);
	cr_assert_eq(out[l1 + 1 + l2 + 1], '\0', "%s printed more than two lines: %s", prog, out);
	snprintf(first, sizeof first, "%.*s", (int) l1, out);
	snprintf(second, sizeof second, "%.*s", (int) l2, out + l1 + 1);
	free(out);
	cr_assert_str_eq(first, want_first);
	cr_assert_str_eq(second, want_second, "%s", prog);
}

Test(version, corralctl_prints_version_and_features) {
	check_version("corralctl", (char *const[]){ "--version", NULL });
	/* no etcd, no cluster needed; options around it change nothing */
	check_version("corralctl", (char *const[]){ "--cluster", "t", "--endpoints", "http://127.0.0.1:1", "--version", NULL });
}

Test(version, corrald_prints_version_and_features) {
	check_version("corrald", (char *const[]){ "--version", NULL });
	/* the config is not read for --version */
	check_version("corrald", (char *const[]){ "--config", "/nonexistent/corrald.yaml", "--version", NULL });
}

Test(version, the_library_says_the_same) {
	corral_feature f[CORRAL_N_FEATURES];
	char line[128], want[128];

	corral_features(f);
	cr_assert_gt(corral_features_format(f, CORRAL_N_FEATURES, line, sizeof line), 0);
	expected_line(want, sizeof want);
	cr_assert_str_eq(want + strlen("features: "), line);
}

Test(version, format_is_pure_and_bounded) {
	const corral_feature f[] = { { "tls", true }, { "ec2", false }, { "metrics", true } };
	char buf[32], tiny[8];

	cr_assert_eq(corral_features_format(f, 3, buf, sizeof buf), (int) strlen("+tls -ec2 +metrics"));
	cr_assert_str_eq(buf, "+tls -ec2 +metrics");
	cr_assert_eq(corral_features_format(f, 0, buf, sizeof buf), 0);
	cr_assert_str_empty(buf);
	cr_assert_eq(corral_features_format(f, 3, tiny, sizeof tiny), -ENOBUFS);
	cr_assert_eq(strnlen(tiny, sizeof tiny), sizeof tiny - 1, "truncated, still terminated");
}
