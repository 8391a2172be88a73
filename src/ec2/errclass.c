/* errclass.c — what an EC2 error means for the caller: its class
 * (retry, no capacity, credentials, not found, dry run passed, other) from
 * the error code, or from the HTTP status when there is no code. Pure. */
#include "ec2xml.h"
#include "macro.h"

static bool str_in(const char *s, const char *const *v, size_t n) {
	for (size_t i = 0; i < n; i++)
		if (streq(s, v[i]))
			return true;
	return false;
}

static bool ends_with(const char *s, const char *suffix) {
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && streq(s + a - b, suffix);
}

ec2_error_class ec2_error_classify(int http_status, const char *code) {
	static const char *const capacity[] = {
		"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
		"InsufficientCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded",
		"VcpuLimitExceeded", "Unsupported",
	};
	static const char *const retryable[] = {
		"RequestLimitExceeded", "EC2ThrottledException", "Throttling", "ThrottlingException", "InternalError",
		"InternalFailure", "Unavailable", "ServiceUnavailable", "RequestTimeout",
	};
	static const char *const auth[] = {
		"AuthFailure", "UnauthorizedOperation", "SignatureDoesNotMatch", "InvalidClientTokenId",
		"IncompleteSignature", "MissingAuthenticationToken", "OptInRequired", "Blocked", "ExpiredToken",
		"RequestExpired",
	};

	if (code && *code) {
		if (streq(code, "DryRunOperation"))
			return EC2_ERROR_DRY_RUN_OK;
		if (str_in(code, capacity, ELEMENTSOF(capacity)))
			return EC2_ERROR_CAPACITY;
		if (str_in(code, retryable, ELEMENTSOF(retryable)))
			return EC2_ERROR_RETRYABLE;
		if (str_in(code, auth, ELEMENTSOF(auth)))
			return EC2_ERROR_AUTH;
		if (ends_with(code, ".NotFound") || ends_with(code, ".NotFoundException"))
			return EC2_ERROR_NOT_FOUND;
	}
	switch (http_status) {
	case 0: case 429: case 500: case 502: case 503: case 504:
		return EC2_ERROR_RETRYABLE;
	case 401: case 403:
		return EC2_ERROR_AUTH;
	default:
		/* an unknown code on another 5xx is still a server fault */
		return http_status >= 500 && http_status < 600 ? EC2_ERROR_RETRYABLE : EC2_ERROR_OTHER;
	}
}

const char *ec2_error_class_to_string(ec2_error_class c) {
	switch (c) {
	case EC2_ERROR_OTHER: return "other";
	case EC2_ERROR_RETRYABLE: return "retryable";
	case EC2_ERROR_CAPACITY: return "capacity";
	case EC2_ERROR_AUTH: return "auth";
	case EC2_ERROR_NOT_FOUND: return "not-found";
	case EC2_ERROR_DRY_RUN_OK: return "dry-run-ok";
	}
	return "?";
}
