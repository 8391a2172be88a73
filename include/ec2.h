/* ec2.h — an EC2 Query API client (API version 2016-11-15) on sd-event,
 * without an AWS SDK: libcurl (curlev.h) for HTTP, sigv4.h for signing,
 * ec2xml.h for the replies.
 *
 * Credentials come from, in order: the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE
 * or "default"), then the instance metadata service, IMDSv2 (token PUT,
 * role name, role credentials), refreshed ahead of their expiry. A secret
 * key, a session token or a signature never appears in a message.
 *
 * Every call is POST / with a form body, signed; throttling, 5xx and
 * transport failures are retried with capped, jittered exponential
 * back-off, and a retried RunInstances carries the same ClientToken, so a
 * launch whose reply was lost never starts twice. The caller learns the
 * outcome once, through its callback, as a value: the EC2 error code and
 * message, and a class to branch on (capacity, throttled, auth, ...). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "ec2xml.h"
#include "macro.h"

typedef struct ec2_client ec2_client;
typedef struct ec2_call ec2_call;

/* ---- credentials ------------------------------------------------------------ */

typedef struct ec2_credentials {
	char *access_key_id;
	char *secret_access_key;        /* secret */
	char *session_token;            /* secret; NULL for long-term keys */
	uint64_t expiration;            /* CLOCK_REALTIME seconds; 0: none */
	char source[8];                 /* "env", "file", "imds" */
} ec2_credentials;

/* Wipes the secrets and frees. */
void ec2_credentials_done(ec2_credentials *c);
int ec2_credentials_copy(const ec2_credentials *from, ec2_credentials *to);

/* From the environment: 0, or -ENOENT when the variables are not set
 * (-EINVAL when only one of the two is). */
int ec2_credentials_from_env(ec2_credentials *out);
/* From a shared credentials file (INI: [profile] with aws_access_key_id,
 * aws_secret_access_key, aws_session_token): 0, -ENOENT when the file or
 * the profile is missing, -EINVAL (err says where) when malformed. */
int ec2_credentials_from_file(const char *path, const char *profile, ec2_credentials *out, char *err,
			      size_t err_size);
/* Pure: the role credentials document IMDS serves ({"Code":"Success",
 * "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}) -> credentials. */
int ec2_credentials_from_imds_json(const char *json, size_t len, ec2_credentials *out, char *err,
				   size_t err_size);

/* ---- the client ---------------------------------------------------------------- */

typedef struct ec2_options {
	const char *region;             /* required, e.g. "us-east-1" */
	const char *endpoint;           /* default https://ec2.<region>.amazonaws.com */
	const char *imds_endpoint;      /* default http://169.254.169.254; "" = no IMDS */
	const char *credentials_file;   /* default as described above */
	const char *profile;            /* default as described above */
	unsigned max_attempts;          /* per call; default 5 */
	uint64_t backoff_base_usec;     /* default 1 s */
	uint64_t backoff_cap_usec;      /* default 20 s */
	uint64_t request_timeout_usec;  /* default 30 s */
	uint64_t refresh_ahead_usec;    /* refresh IMDS credentials this long before
	                                   they expire; default 15 min */
} ec2_options;

int ec2_client_new(ec2_client **out, sd_event *event, const ec2_options *o);
/* Pending calls are dropped without their callbacks. NULL-safe. */
ec2_client *ec2_client_free(ec2_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ec2_client *, ec2_client_free);

/* ---- calls ---------------------------------------------------------------------- */

typedef struct ec2_param {
	const char *name;               /* "InstanceId.1", "Filter.1.Name", ... */
	const char *value;
} ec2_param;

typedef struct ec2_reply {
	int error;                      /* 0; -EREMOTEIO EC2 answered with an
	                                   error (code, class); -EBADMSG an answer
	                                   that is not EC2's; -EACCES no
	                                   credentials; a transport -errno
	                                   (-ETIMEDOUT, -ECONNREFUSED, ...) after
	                                   the retries */
	ec2_error_class error_class;    /* when error < 0 (ec2xml.h): RETRYABLE
	                                   (still throttled or failing after the
	                                   retries, or no answer), CAPACITY,
	                                   AUTH, NOT_FOUND, DRY_RUN_OK, OTHER */
	long http_status;               /* of the last attempt; 0: none */
	char code[64];                  /* EC2's error code, "" when none */
	char message[512];              /* EC2's message, or what went wrong */
	char request_id[96];
	unsigned attempts;
	const char *body;               /* the last reply's body (success: the
	                                   XML to parse); valid in the callback */
	size_t body_len;
} ec2_reply;

typedef void (*ec2_reply_cb)(ec2_client *c, const ec2_reply *r, void *userdata);

/* One Query API call: Action plus params (copied). For RunInstances, pass
 * a ClientToken param: every attempt carries it. Returns 0 and, when out is
 * not NULL, a handle valid until the callback; a negative return means cb
 * will not run. */
int ec2_call_start(ec2_client *c, const char *action, const ec2_param *params, size_t n_params, ec2_reply_cb cb,
		   void *userdata, ec2_call **out);
void ec2_call_cancel(ec2_call *call);

/* A new ClientToken: 32 hex digits from the kernel's random source. */
int ec2_client_token(char out[33]);

/* Blocking use (CLI, tests): runs the loop until the call is done. The
 * reply is copied into out (body included; free with ec2_reply_done). */
typedef struct ec2_owned_reply {
	ec2_reply r;
	char *body;
} ec2_owned_reply;
void ec2_owned_reply_done(ec2_owned_reply *r);
int ec2_call_sync(ec2_client *c, const char *action, const ec2_param *params, size_t n_params,
		  ec2_owned_reply *out);
