/* ec2.c — `corralctl ec2 describe`: the cluster's EC2 instances (by its
 * corral:cluster tag) through the same EC2 client corrald uses; no etcd. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "ctl.h"
#include "ec2.h"

#define EC2_COLUMNS 7
#define EC2_CLUSTER_TAG "corral:cluster"

typedef struct ec2_listing {
	bool done;
	int error;
	char message[512];
	json_t *instances;              /* array of objects */
} ec2_listing;

static void on_ec2_describe(ec2_client *client, const ec2_reply *r, const ec2xml_describe_instances *res,
			    void *userdata) {
	ec2_listing *l = userdata;

	l->done = true;
	l->error = r->error;
	snprintf(l->message, sizeof l->message, "%s", r->message);
	if (r->error < 0)
		return;
	for (size_t i = 0; i < res->n_reservations; i++)
		for (size_t j = 0; j < res->reservations[i].n_instances; j++) {
			const ec2_instance *in = &res->reservations[i].instances[j];
			char when[32] = "";
			struct tm tm;
			json_t *tags = json_object();

			if (in->launch_time > 0 && gmtime_r(&in->launch_time, &tm))
				strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
			for (size_t k = 0; k < in->n_tags; k++)
				json_object_set_new(tags, in->tags[k].key, json_string(in->tags[k].value));
			json_t *o = json_pack("{s:s,s:s?,s:s?,s:s,s:s?,s:s?,s:s?,s:o}", "instance_id", in->instance_id,
					      "state", in->state.name, "type", in->instance_type, "market",
					      in->lifecycle && streq(in->lifecycle, "spot") ? "spot" : "on-demand",
					      "launch_time", when[0] ? when : NULL, "private_ip", in->private_ip,
					      "availability_zone", in->availability_zone, "tags", tags);
			if (!o || json_array_append_new(l->instances, o) < 0) {
				l->error = -ENOMEM;
				snprintf(l->message, sizeof l->message, "out of memory");
				return;
			}
		}
}

static const char *const ec2_header[EC2_COLUMNS] = { "INSTANCE", "STATE",      "TYPE", "MARKET",
						     "LAUNCHED", "PRIVATE IP", "TAGS" };

static void ec2_cells(json_t *o, char **row) {
	static const char *const fields[EC2_COLUMNS - 1] = { "instance_id", "state",	  "type",
							     "market",	    "launch_time", "private_ip" };
	const char *key;
	json_t *v;
	char *tags = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&tags, &len);

	if (!f)
		return;         /* a row of NULLs: ctl_print_array fails */
	json_object_foreach(json_object_get(o, "tags"), key, v)
		fprintf(f, "%s%s=%s", ftell(f) > 0 ? "," : "", key, json_string_value(v));
	fclose(f);
	for (size_t j = 0; j < EC2_COLUMNS - 1; j++)
		row[j] = ctl_field(o, fields[j]);
	row[EC2_COLUMNS - 1] = tags && *tags ? tags : (free(tags), strdup("-"));
}

int ctl_ec2_client(ctl_t *c, sd_event *event, ec2_client **out) {
	const char *region = c->region, *endpoint = c->ec2_endpoint;
	const conf_ec2 *ce = c->conf ? &c->conf->ec2 : NULL;
	int r;

	*out = NULL;
	/* an option, then --config's ec2 section, then the environment */
	if ((!region || !*region) && ce)
		region = ce->region;
	if ((!endpoint || !*endpoint) && ce)
		endpoint = ce->endpoint;
	if (!region || !*region)
		region = getenv("AWS_REGION");
	if (!region || !*region)
		region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		return 0;
	if (!endpoint || !*endpoint)
		endpoint = getenv("CORRAL_EC2_ENDPOINT");

	ec2_options o = { .region = region, .endpoint = endpoint && *endpoint ? endpoint : NULL };
	if (ce) {
		/* the credentials' source corrald uses: file, profile, IMDS */
		o.credentials_file = ce->credentials_file;
		o.profile = ce->profile;
		o.imds_endpoint = ce->imds_endpoint;
	}
	r = ec2_client_new(out, event, &o);
	if (r == -EINVAL)
		return ctl_usage_error("bad --region '%s' or --ec2-endpoint '%s'", region, endpoint ? endpoint : "");
	if (r < 0) {
		fprintf(stderr, "corralctl: cannot set up the EC2 client: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

/* corralctl ec2 describe: the cluster's instances, by its corral:cluster
 * tag, through the same EC2 client corrald uses. */
static int ec2_describe(ctl_t *c, ctl_opts *opts) {
	const char *cluster = c->cluster;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_(ec2_client_freep) ec2_client *client = NULL;
	ec2_listing l = {};
	int r;

	if (!*cluster)
		return ctl_usage_error("%s", "ec2: no cluster name (use --cluster NAME)");
	r = sd_event_new(&event);
	if (r < 0)
		return 1;
	if ((r = ctl_ec2_client(c, event, &client)) != 0)
		return r;
	if (!client)
		return ctl_usage_error("%s", "no AWS region: use --region (or $AWS_REGION, $AWS_DEFAULT_REGION)");

	const char *const values[] = { cluster };
	const ec2_filter f[] = { { "tag:" EC2_CLUSTER_TAG, values, 1 } };
	json_auto_t *instances = json_array();
	l.instances = instances;
	if (!instances)
		return 1;
	r = ec2_describe_instances(client, f, 1, 0, on_ec2_describe, &l, NULL);
	if (r < 0) {
		fprintf(stderr, "corralctl: EC2 DescribeInstances: %s\n", strerror(-r));
		return 1;
	}
	while (!l.done) {
		r = sd_event_run(event, UINT64_MAX);
		if (r < 0) {
			fprintf(stderr, "corralctl: event loop: %s\n", strerror(-r));
			return 1;
		}
	}
	if (l.error < 0) {
		fprintf(stderr, "corralctl: %s\n", l.message);
		return 1;
	}
	if (c->format == FORMAT_JSON)
		return ctl_print_json_sorted(instances);
	return ctl_print_array(instances, ec2_header, EC2_COLUMNS, ec2_cells, false);
}

const ctl_verb ctl_ec2_verbs[] = {
	{ .group = "ec2", .name = "describe",
	  .help = "the cluster's EC2 instances (tag corral:cluster=<cluster name>):\n"
		  "id, state, type, market, launch time, private IP, tags",
	  .flags = CTL_VERB_CLUSTER, .run = ec2_describe },
	{},
};
