/* buildinfo.c — the version and `features:` lines both binaries print for
 * --version: the build's options an operator asks about, probed in this
 * process (a libcurl without TLS or a missing libxml2 shows here, not at
 * the first EC2 call). */
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>

#include "ec2xml.h"
#include "buildinfo.h"

void corral_features(corral_feature out[CORRAL_N_FEATURES]) {
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

	out[0] = (corral_feature) { "tls", curl && (curl->features & CURL_VERSION_SSL) };
	out[1] = (corral_feature) { "ec2", ec2xml_available() };
	out[2] = (corral_feature) { "metrics", MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES };
	/* libsystemd is required to build (sd_notify, the journal, units over
	 * D-Bus); listed because operators ask. */
	out[3] = (corral_feature) { "systemd", true };
}

int corral_features_format(const corral_feature *f, size_t n, char *buf, size_t size) {
	size_t len = 0;

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, "%s%c%s",
		                 i ? " " : "", f[i].on ? '+' : '-', f[i].name);
		if (k < 0)
			return -EINVAL;
		len += (size_t) k;
	}
	return len < size ? (int) len : -ENOBUFS;
}

int corral_version_print(FILE *f, const char *prog) {
	corral_feature feats[CORRAL_N_FEATURES];
	char line[128];

	corral_features(feats);
	if (corral_features_format(feats, CORRAL_N_FEATURES, line, sizeof line) < 0)
		return -ENOBUFS;
	if (fprintf(f, "%s %s\nfeatures: %s\n", prog, CORRAL_VERSION, line) < 0)
		return -EIO;
	return 0;
}
