/* ec2xml.h — EC2 Query API responses (XML) into plain C structs.
 *
 * Pure: no I/O, no clock, no logging (libxml2 is told not to print). Every
 * parser takes the HTTP status and the body exactly as received and
 * returns:
 *     0           a success response of the expected action; *out filled.
 *   -EREMOTEIO    EC2 answered with an error: a non-2xx status, or an error
 *                 envelope whatever the status. *err holds the status and,
 *                 when the body is an error envelope, Code/Message/RequestID
 *                 (code NULL when the body is HTML, empty or garbage).
 *   -EBADMSG      a 2xx status whose body is not the expected response (not
 *                 XML, truncated, another action's response, a DTD, a
 *                 malformed number or time, an item missing its id). *err
 *                 holds the status and code NULL.
 *   -ENOMEM       out of memory (*err may be partly filled).
 *   -ELIBACC      libxml2 could not be loaded (it is opened at the first
 *                 parse, not linked: src/ec2/xml.c); nothing was parsed.
 * *out is only written on success; *err is written on every call (zeroed on
 * success), so one _cleanup_ on each covers all paths.
 *
 * XML handling: elements are matched by local name, namespaces ignored
 * (AWS writes ".../doc/2016-11-15/", moto the same without the slash, old
 * fixtures 2014-06-15); unknown elements are skipped wherever they appear;
 * values are the element's text, "" for an empty element (<value/>), NULL
 * (or -1, or 0 for times) when the element is absent. Leaf text is kept as
 * sent (tag values may have meaningful spaces), except the error fields,
 * which are trimmed (IdempotentParameterMismatch's message comes indented
 * over several lines). No network, no entity substitution, and a document
 * carrying a DTD is refused (EC2 never sends one; it is how entity bombs
 * arrive). Nesting is bounded by libxml2's default depth limit.
 *
 * Times are ISO 8601 UTC ("2013-03-20T13:35:55.000Z", with or without
 * fractional seconds, 'Z' or a ±hh:mm offset) as time_t; 0 = absent.
 *
 * Ownership: every string and array in a result is owned by the result and
 * freed by its _done() function, which zeroes it and accepts a zeroed or
 * half-filled struct. Inputs are borrowed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "macro.h"

/* ---- errors ----------------------------------------------------------------------- */

typedef struct ec2_error {
	int http_status;
	char *code;             /* "InvalidInstanceID.NotFound"; NULL when not parsed */
	char *message;
	char *request_id;       /* AWS <RequestID>; NULL from moto's <ErrorResponse> */
	char *type;             /* moto's <Type>Sender</Type>, else NULL */
} ec2_error;

void ec2_error_done(ec2_error *e);

typedef enum ec2_error_class {
	EC2_ERROR_OTHER,        /* a 4xx to fix, not retry: bad parameter, idempotency mismatch, ... */
	EC2_ERROR_RETRYABLE,    /* throttling, 5xx, no response: back off (full jitter) and retry */
	EC2_ERROR_CAPACITY,     /* this launch cannot succeed now: change AZ/type/market or wait minutes */
	EC2_ERROR_AUTH,         /* credentials, permissions, signature or clock */
	EC2_ERROR_NOT_FOUND,    /* *.NotFound: gone, or not yet visible (eventual consistency) */
	EC2_ERROR_DRY_RUN_OK,   /* DryRunOperation: the dry run would have succeeded */
} ec2_error_class;

/* Classifies a failed call by status and Code (code may be NULL):
 *   DRY_RUN_OK  DryRunOperation.
 *   CAPACITY    InsufficientInstanceCapacity (a 500, but not a transient
 *               fault: botocore would retry it, Terraform stopped doing
 *               so), InsufficientHostCapacity, InsufficientReservedInstance-
 *               Capacity, InsufficientCapacity, SpotMaxPriceTooLow,
 *               MaxSpotInstanceCountExceeded, and the quotas
 *               InstanceLimitExceeded and VcpuLimitExceeded: retrying the
 *               same launch in seconds does not help, launching another
 *               type/market or after instances go away does; also
 *               Unsupported (type not offered in that AZ).
 *   RETRYABLE   RequestLimitExceeded, EC2ThrottledException, Throttling,
 *               ThrottlingException, InternalError, InternalFailure,
 *               Unavailable, ServiceUnavailable, RequestTimeout (EC2.md §5);
 *               with no known code: status 0 (no response), 429, 500, 502,
 *               503, 504.
 *   AUTH        AuthFailure, UnauthorizedOperation, SignatureDoesNotMatch,
 *               InvalidClientTokenId, IncompleteSignature, MissingAuthentica-
 *               tionToken, OptInRequired, Blocked, ExpiredToken,
 *               RequestExpired (the clock is off; re-signing with a checked
 *               clock is the fix); with no code: status 401, 403.
 *   NOT_FOUND   any code ending in ".NotFound" or ".NotFoundException".
 *   OTHER       everything else (InvalidInstanceID.Malformed,
 *               IdempotentParameterMismatch, InvalidParameterValue, ...).
 * A known code decides before the status does. */
ec2_error_class ec2_error_classify(int http_status, const char *code);
const char *ec2_error_class_to_string(ec2_error_class c);

/* Parses an error response on its own (any status). 0 when the body is an
 * error envelope (<Response><Errors><Error> or moto's <ErrorResponse>, with
 * or without <Errors>), -EBADMSG when it is not (HTML, empty, garbage);
 * either way err->http_status is set. -ENOMEM. */
int ec2xml_parse_error(int http_status, const char *body, size_t len, ec2_error *err);

/* ---- results ------------------------------------------------------------------------- */

typedef struct ec2_tag {
	char *key;
	char *value;            /* "" for <value/> or a missing value */
} ec2_tag;

typedef struct ec2_state {
	int code;               /* 0 pending, 16 running, 32 shutting-down, 48 terminated,
	                           64 stopping, 80 stopped; -1 absent */
	char *name;
} ec2_state;

typedef struct ec2_instance {
	char *instance_id;      /* never NULL */
	char *image_id;
	char *instance_type;
	ec2_state state;
	time_t launch_time;
	char *private_ip;       /* the instance's own privateIpAddress, not an ENI's */
	char *availability_zone;
	char *lifecycle;        /* instanceLifecycle: "spot", "scheduled"; NULL = on-demand */
	char *spot_request_id;
	char *client_token;
	ec2_tag *tags;
	size_t n_tags;
	/* from the tags aws:ec2launchtemplate:id / :version, else NULL */
	const char *launch_template_id;         /* borrowed from tags */
	const char *launch_template_version;    /* borrowed from tags */
} ec2_instance;

/* The tag's value (borrowed), or NULL when the instance has no such key. */
const char *ec2_instance_tag(const ec2_instance *i, const char *key);

typedef struct ec2_reservation {
	char *reservation_id;
	ec2_instance *instances;
	size_t n_instances;
} ec2_reservation;

typedef struct ec2xml_describe_instances {
	char *request_id;
	ec2_reservation *reservations;
	size_t n_reservations;
	char *next_token;       /* NULL when absent or empty: the last page */
} ec2xml_describe_instances;

typedef struct ec2xml_run_instances {
	char *request_id;
	char *reservation_id;
	ec2_instance *instances;
	size_t n_instances;
} ec2xml_run_instances;

typedef struct ec2_state_change {
	char *instance_id;
	ec2_state current;      /* <currentState>, or the old <shutdownState> */
	ec2_state previous;
} ec2_state_change;

typedef struct ec2xml_terminate_instances {
	char *request_id;
	ec2_state_change *items;
	size_t n_items;
} ec2xml_terminate_instances;

typedef struct ec2_instance_status {
	char *instance_id;
	char *availability_zone;
	ec2_state state;
	char *system_status;    /* "ok", "impaired", "initializing", ... */
	char *instance_status;
} ec2_instance_status;

typedef struct ec2xml_describe_instance_status {
	char *request_id;
	ec2_instance_status *items;
	size_t n_items;
	char *next_token;
} ec2xml_describe_instance_status;

typedef struct ec2_reserved_instances {
	char *id;               /* reservedInstancesId */
	char *instance_type;
	char *availability_zone;        /* NULL for a regional reservation */
	char *scope;            /* "Region" / "Availability Zone"; NULL when absent (old API) */
	int instance_count;     /* -1 absent */
	char *state;            /* "active", "retired", "payment-pending", ... */
	time_t start, end;      /* 0 absent */
	char *offering_type;
	char *product_description;
} ec2_reserved_instances;

typedef struct ec2xml_describe_reserved_instances {
	char *request_id;
	ec2_reserved_instances *items;
	size_t n_items;
} ec2xml_describe_reserved_instances;

typedef struct ec2_spot_price {
	char *instance_type;
	char *product_description;
	char *spot_price;       /* as sent, "0.010000" */
	double price;
	time_t timestamp;
	char *availability_zone;
} ec2_spot_price;

typedef struct ec2xml_spot_price_history {
	char *request_id;
	ec2_spot_price *items;
	size_t n_items;
	char *next_token;
} ec2xml_spot_price_history;

/* CreateTags, DeleteTags, and any action whose answer is only <return>. */
typedef struct ec2xml_ack {
	char *request_id;
	bool ok;                /* <return>; true when absent (moto omits it) */
} ec2xml_ack;

/* CreateLaunchTemplateVersion: the version made. */
typedef struct ec2xml_launch_template_version {
	char *request_id;
	char *launch_template_id;
	char *version_number;   /* "7" */
	char *image_id;         /* launchTemplateData.imageId, NULL absent */
} ec2xml_launch_template_version;

void ec2xml_launch_template_version_done(ec2xml_launch_template_version *r);
int ec2xml_parse_launch_template_version(int http_status, const char *body, size_t len,
                                         ec2xml_launch_template_version *out, ec2_error *err);

void ec2xml_describe_instances_done(ec2xml_describe_instances *r);
void ec2xml_run_instances_done(ec2xml_run_instances *r);
void ec2xml_terminate_instances_done(ec2xml_terminate_instances *r);
void ec2xml_describe_instance_status_done(ec2xml_describe_instance_status *r);
void ec2xml_describe_reserved_instances_done(ec2xml_describe_reserved_instances *r);
void ec2xml_spot_price_history_done(ec2xml_spot_price_history *r);
void ec2xml_ack_done(ec2xml_ack *r);

/* ---- parsers (return values: see the top of this file) --------------------------- */

int ec2xml_parse_describe_instances(int http_status, const char *body, size_t len,
                                    ec2xml_describe_instances *out, ec2_error *err);
int ec2xml_parse_run_instances(int http_status, const char *body, size_t len, ec2xml_run_instances *out,
                               ec2_error *err);
int ec2xml_parse_terminate_instances(int http_status, const char *body, size_t len,
                                     ec2xml_terminate_instances *out, ec2_error *err);
/* StopInstances / StartInstances: the same shape as TerminateInstances
 * (state changes under their own root), parsed into the same struct. */
int ec2xml_parse_stop_instances(int http_status, const char *body, size_t len, ec2xml_terminate_instances *out,
                                ec2_error *err);
int ec2xml_parse_start_instances(int http_status, const char *body, size_t len, ec2xml_terminate_instances *out,
                                 ec2_error *err);
int ec2xml_parse_describe_instance_status(int http_status, const char *body, size_t len,
                                          ec2xml_describe_instance_status *out, ec2_error *err);
int ec2xml_parse_describe_reserved_instances(int http_status, const char *body, size_t len,
                                             ec2xml_describe_reserved_instances *out, ec2_error *err);
int ec2xml_parse_spot_price_history(int http_status, const char *body, size_t len,
                                    ec2xml_spot_price_history *out, ec2_error *err);
/* action: "CreateTags", "DeleteTags", or any other whose root is
 * <{action}Response> (the rest of the body is not looked at). -EINVAL
 * when action is NULL or empty. */
int ec2xml_parse_ack(int http_status, const char *body, size_t len, const char *action, ec2xml_ack *out,
                     ec2_error *err);

/* Whether libxml2 loads (it is opened at the first parse, not linked);
 * `--version` reports it as +ec2 / -ec2. */
bool ec2xml_available(void);

/* ISO 8601 UTC time -> time_t. 0, or -EINVAL. */
int ec2xml_parse_time(const char *s, time_t *out);
