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

/* ---- typed calls ------------------------------------------------------------------ */
/* Two layers:
 *
 * 1. Pure parameter builders (src/ec2/params.c): a request struct ->
 *    the Query parameters (ec2_params, owned copies) with the exact names
 *    botocore's EC2 serializer produces (tests/test_ec2calls.c compares the form bodies
 *    with botocore's). No I/O. They return 0, -EINVAL for a request EC2
 *    would refuse or that is unsafe to send (a launch without a
 *    ClientToken, a count of 0, more than 100 ids to terminate, MaxResults
 *    out of range, ...), or -ENOMEM.
 *
 * 2. Operations on a client (src/ec2/calls.c): one logical request,
 *    possibly several calls (pages, batches), reported once through a typed callback with the
 *    ec2_reply of the call that decided the outcome (error as a value;
 *    attempts summed over every call the operation made) and the parsed
 *    result. The result pointer is never NULL: on success it holds
 *    everything (all pages merged, next_token NULL); on failure it holds
 *    what was gathered before the failing call (earlier pages, earlier
 *    terminate batches), possibly nothing. A reply that is not the
 *    expected response becomes error -EBADMSG (class OTHER). The result is
 *    borrowed: valid in the callback only.
 *
 * A start function returning < 0 means the callback will not run. An
 * operation must end (its callback) or be cancelled (ec2_op_cancel)
 * before its client is freed. */

#define EC2_TERMINATE_BATCH_MAX 100     /* ids per TerminateInstances */
#define EC2_CLIENT_TOKEN_MAX 64         /* ASCII characters */
#define EC2_MAX_RESULTS_DEFAULT 1000

/* The event loop the client runs on (borrowed). */
sd_event *ec2_client_event(ec2_client *c);

/* An owned list of parameters in the order added. */
typedef struct ec2_params {
	ec2_param *items;               /* name and value owned (strdup) */
	size_t n, cap;
} ec2_params;

void ec2_params_done(ec2_params *p);
int ec2_params_add(ec2_params *p, const char *name, const char *value);
/* Name from a format ("Filter.%zu.Name", i). */
int ec2_params_addf(ec2_params *p, const char *value, const char *name_fmt, ...) _printf_(3, 4);
/* The value of the first parameter called name, or NULL. */
const char *ec2_params_get(const ec2_params *p, const char *name);

/* The form body ec2_call_start() sends: Action, Version, then the params in
 * order, names and values encoded strictly (sigv4_form_encode). Pure. 0 and
 * a new string (*len bytes), -EINVAL (no action, a NULL name or value),
 * -ENOMEM. Implemented in client.c. */
int ec2_form_body(const char *action, const ec2_param *params, size_t n_params, char **out, size_t *len);

typedef struct ec2_kv {
	const char *key;
	const char *value;              /* DeleteTags: NULL = whatever the value */
} ec2_kv;

typedef struct ec2_filter {
	const char *name;               /* "tag:corral:cluster", "instance-state-name" */
	const char *const *values;
	size_t n_values;                /* >= 1 */
} ec2_filter;

typedef struct ec2_launch {
	const char *launch_template_id;         /* one of id or name */
	const char *launch_template_name;
	const char *launch_template_version;    /* NULL: "$Latest" */
	const char *instance_type;              /* override; NULL: the template's */
	const char *subnet_id;                  /* NULL: the template's */
	unsigned count;                         /* MinCount = MaxCount = count, >= 1 */
	const ec2_kv *tags;                     /* TagSpecification.1 (instance) */
	size_t n_tags;
	const void *user_data;                  /* raw bytes, sent base64-encoded */
	size_t user_data_len;                   /* 0: none */
	bool spot;                              /* one-time spot, terminate on interruption */
	const char *client_token;               /* required: 1-64 printable ASCII
	                                           (ec2_client_token()); one per
	                                           launch decision, kept when the
	                                           launch is repeated */
} ec2_launch;

int ec2_params_run_instances(const ec2_launch *l, ec2_params *out);

/* A new version of a launch template (replace by relaunch): source_version
 * ("3", "$Default"; NULL: none, only image_id then) with its ImageId
 * replaced. client_token required, as for a launch: a repeat with the same
 * token returns the same version. */
typedef struct ec2_template_version {
	const char *launch_template_id;         /* one of id or name */
	const char *launch_template_name;
	const char *source_version;
	const char *image_id;                   /* "ami-..." */
	const char *description;                /* NULL: none */
	const char *client_token;
} ec2_template_version;

int ec2_params_create_launch_template_version(const ec2_template_version *v, ec2_params *out);
/* max_results 0: none sent (EC2's default); else 5..1000. */
int ec2_params_describe_instances(const ec2_filter *filters, size_t n_filters, unsigned max_results,
				  const char *next_token, ec2_params *out);
/* 1..EC2_TERMINATE_BATCH_MAX ids; the same for stop and start. */
int ec2_params_terminate(const char *const *ids, size_t n_ids, ec2_params *out);
int ec2_params_stop(const char *const *ids, size_t n_ids, ec2_params *out);
int ec2_params_start(const char *const *ids, size_t n_ids, ec2_params *out);
int ec2_params_create_tags(const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
			   ec2_params *out);
int ec2_params_delete_tags(const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
			   ec2_params *out);
/* With ids, MaxResults is not sent (EC2 refuses the two together);
 * max_results 0: none, else 5..1000. */
int ec2_params_describe_instance_status(const char *const *ids, size_t n_ids, bool include_all,
					unsigned max_results, const char *next_token, ec2_params *out);
int ec2_params_describe_reserved_instances(const ec2_filter *filters, size_t n_filters, ec2_params *out);
/* product e.g. "Linux/UNIX" (NULL: all); start_time 0: none (EC2: now);
 * max_results 0: none, else 1..1000. */
int ec2_params_spot_price_history(const char *const *types, size_t n_types, const char *product,
				  time_t start_time, unsigned max_results, const char *next_token,
				  ec2_params *out);

/* The ids an InvalidInstanceID.NotFound message names: "The instance ID
 * 'i-a' does not exist", "The instance IDs 'i-a, i-b' do not exist". Pure.
 * 0 and a NULL-terminated list (strv_free), -EINVAL when the message
 * names none, -ENOMEM. */
int ec2_not_found_ids(const char *message, char ***out);

typedef struct ec2_op ec2_op;
/* Cancels the call in flight; the callback does not run. NULL-safe. */
void ec2_op_cancel(ec2_op *op);

typedef struct ec2_terminate_result {
	ec2xml_terminate_instances changes;     /* every batch's state changes */
	char **not_found;               /* ids EC2 said do not exist (dropped) */
	size_t n_not_found;
	unsigned batches;               /* TerminateInstances calls that succeeded */
} ec2_terminate_result;

typedef void (*ec2_run_instances_cb)(ec2_client *c, const ec2_reply *r, const ec2xml_run_instances *res,
				     void *userdata);
typedef void (*ec2_terminate_cb)(ec2_client *c, const ec2_reply *r, const ec2_terminate_result *res,
				 void *userdata);
typedef void (*ec2_describe_instances_cb)(ec2_client *c, const ec2_reply *r, const ec2xml_describe_instances *res,
					  void *userdata);
typedef void (*ec2_ack_cb)(ec2_client *c, const ec2_reply *r, const ec2xml_ack *res, void *userdata);
typedef void (*ec2_instance_status_cb)(ec2_client *c, const ec2_reply *r,
				       const ec2xml_describe_instance_status *res, void *userdata);
typedef void (*ec2_reserved_instances_cb)(ec2_client *c, const ec2_reply *r,
					  const ec2xml_describe_reserved_instances *res, void *userdata);
typedef void (*ec2_spot_price_cb)(ec2_client *c, const ec2_reply *r, const ec2xml_spot_price_history *res,
				  void *userdata);

typedef void (*ec2_template_version_cb)(ec2_client *c, const ec2_reply *r,
				       const ec2xml_launch_template_version *res, void *userdata);
/* CreateLaunchTemplateVersion: one call (retried with the same token). */
int ec2_create_launch_template_version(ec2_client *c, const ec2_template_version *v, ec2_template_version_cb cb,
				       void *userdata, ec2_op **out);

/* RunInstances: one call (the client retries it with the same ClientToken).
 * CAPACITY errors (InsufficientInstanceCapacity, spot capacity, quotas)
 * come back after one attempt, for the caller to fall back. */
int ec2_run_instances(ec2_client *c, const ec2_launch *l, ec2_run_instances_cb cb, void *userdata,
		      ec2_op **out);
/* TerminateInstances in batches of at most 100 ids, one after another.
 * When EC2 answers InvalidInstanceID.NotFound for a batch (it then
 * terminates nothing of it), the ids it names are dropped and the rest of
 * the batch is sent once more; a second failure ends the operation. */
int ec2_terminate_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb,
			    void *userdata, ec2_op **out);
/* StopInstances / StartInstances (the warm pool): batched and reported
 * exactly as ec2_terminate_instances(), the result in the same struct
 * (changes: the state changes; not_found: ids EC2 said do not exist,
 * dropped, not an error: a host gone is not stopped or started again).
 * Stopping a stopped instance succeeds; starting a stopping one is EC2's
 * IncorrectInstanceState (class OTHER): the caller tries again later. */
int ec2_stop_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb, void *userdata,
		       ec2_op **out);
int ec2_start_instances(ec2_client *c, const char *const *ids, size_t n_ids, ec2_terminate_cb cb, void *userdata,
			ec2_op **out);
/* DescribeInstances, following NextToken until it is absent, every
 * reservation merged into one result. max_results 0: 1000. */
int ec2_describe_instances(ec2_client *c, const ec2_filter *filters, size_t n_filters, unsigned max_results,
			   ec2_describe_instances_cb cb, void *userdata, ec2_op **out);
int ec2_create_tags(ec2_client *c, const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
		    ec2_ack_cb cb, void *userdata, ec2_op **out);
int ec2_delete_tags(ec2_client *c, const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
		    ec2_ack_cb cb, void *userdata, ec2_op **out);
/* Paged (1000 per page) when no ids are given. */
int ec2_describe_instance_status(ec2_client *c, const char *const *ids, size_t n_ids, bool include_all,
				 ec2_instance_status_cb cb, void *userdata, ec2_op **out);
int ec2_describe_reserved_instances(ec2_client *c, const ec2_filter *filters, size_t n_filters,
				    ec2_reserved_instances_cb cb, void *userdata, ec2_op **out);
/* Paged, 1000 per page. */
int ec2_describe_spot_price_history(ec2_client *c, const char *const *types, size_t n_types, const char *product,
				    time_t start_time, ec2_spot_price_cb cb, void *userdata, ec2_op **out);
