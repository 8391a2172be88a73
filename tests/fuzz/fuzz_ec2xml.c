/* fuzz_ec2xml.c — an EC2 Query API reply (or anything a proxy in the way
 * might send instead) through every XML reader the EC2 client has. Each
 * must return 0 with its result filled, or a negative code with the error
 * filled; a DTD or an entity never expands. */
#include <errno.h>
#include <string.h>

#include "ec2xml.h"
#include "fuzz.h"

/* Runs one parser over the input at a success and at an error status. */
#define RUN(parse, type, done)                                                                  \
	do {                                                                                    \
		for (int s = 0; s < 2; s++) {                                                   \
			type out;                                                               \
			ec2_error err;                                                          \
			memset(&out, 0, sizeof out);                                            \
			memset(&err, 0, sizeof err);                                            \
			int rc = parse(statuses[s], body, size, &out, &err);                    \
			FUZZ_ASSERT(rc <= 0);                                                   \
			done(&out);                                                             \
			ec2_error_done(&err);                                                   \
		}                                                                               \
	} while (0)

static int parse_ack_create_tags(int status, const char *body, size_t size, ec2xml_ack *out, ec2_error *err) {
	return ec2xml_parse_ack(status, body, size, "CreateTags", out, err);
}

int fuzz_ec2xml(const uint8_t *data, size_t size) {
	static const int statuses[2] = { 200, 400 };
	const char *body = (const char *) data;

	RUN(ec2xml_parse_describe_instances, ec2xml_describe_instances, ec2xml_describe_instances_done);
	RUN(ec2xml_parse_run_instances, ec2xml_run_instances, ec2xml_run_instances_done);
	RUN(ec2xml_parse_terminate_instances, ec2xml_terminate_instances, ec2xml_terminate_instances_done);
	RUN(ec2xml_parse_describe_instance_status, ec2xml_describe_instance_status,
	    ec2xml_describe_instance_status_done);
	RUN(ec2xml_parse_describe_reserved_instances, ec2xml_describe_reserved_instances,
	    ec2xml_describe_reserved_instances_done);
	RUN(ec2xml_parse_spot_price_history, ec2xml_spot_price_history, ec2xml_spot_price_history_done);
	RUN(parse_ack_create_tags, ec2xml_ack, ec2xml_ack_done);

	ec2_error err;
	memset(&err, 0, sizeof err);
	(void) ec2xml_parse_error(500, body, size, &err);
	ec2_error_done(&err);
	return 0;
}

FUZZ_ENTRY(ec2xml)
