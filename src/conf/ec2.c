/* ec2.c — EC2 and scaling (docs/scale.md, docs/ec2.md): the `ec2:`
 * section, whether this machine is an EC2 instance (DMI) and what
 * instance_id auto learns, the node's pool and the leader's scaling
 * periods, and the node agent's settings (load, wind-down, spot
 * interruptions). */
#include <stddef.h>

#include "conf-internal.h"

#define CONF_DMI_DIR "/sys/devices/virtual/dmi/id"

static const conf_key conf_ec2_keys[] = {
	{ "region",           conf_parse_name,   offsetof(conf_ec2, region) },
	{ "endpoint",         conf_parse_string, offsetof(conf_ec2, endpoint) },
	{ "imds_endpoint",    conf_parse_string_or_empty, offsetof(conf_ec2, imds_endpoint) },
	{ "credentials_file", conf_parse_string, offsetof(conf_ec2, credentials_file) },
	{ "profile",          conf_parse_string, offsetof(conf_ec2, profile) },
	{ "instance_id",      conf_parse_name,   offsetof(conf_ec2, instance_id) },
	{ "dmi_dir",          conf_parse_string, offsetof(conf_ec2, dmi_dir) },
	{}
};

bool conf_dmi_is_ec2(const char *dir) {
	static const struct {
		const char *file;
		bool prefix;            /* else: contains */
		const char *text;
	} marks[] = {
		{ "sys_vendor", false, "Amazon EC2" },
		{ "board_asset_tag", true, "i-" },
	};

	for (size_t i = 0; i < ELEMENTSOF(marks); i++) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		if (asprintf(&path, "%s/%s", dir ? dir : CONF_DMI_DIR, marks[i].file) < 0)
			return false;
		/* Unreadable (no DMI, another machine) is simply not EC2. */
		if (conf_read_file(path, false, &text, NULL) < 0)
			continue;
		if (marks[i].prefix ? startswith(text, marks[i].text) : strstr(text, marks[i].text) != NULL)
			return true;
	}
	return false;
}

/* ec2.instance_id: "auto" learns the identity from IMDS at start, "none"
 * says this node is no instance, an id is taken as given; left out, it is
 * "auto" on an EC2 machine (by DMI: probing the metadata address would hang
 * elsewhere) unless IMDS is turned off. */
static int conf_finish_instance(conf *c, conf_error *err) {
	conf_ec2 *e = &c->ec2;
	bool imds_off = e->imds_endpoint && !*e->imds_endpoint;

	if (e->instance_id && (streq(e->instance_id, "auto") || streq(e->instance_id, "none"))) {
		e->instance_auto = streq(e->instance_id, "auto");
		free(e->instance_id);
		e->instance_id = NULL;
		if (e->instance_auto && imds_off)
			return conf_fail_errno(err, -EINVAL,
					       "ec2.instance_id: auto needs the instance metadata service, which "
					       "ec2.imds_endpoint \"\" turns off");
	} else if (!e->instance_id) {
		/* The environment moves the default: a test suite running on an
		 * EC2 machine keeps its corralds off the real IMDS. */
		const char *env = getenv("CORRAL_DMI_DIR");
		e->instance_auto = !imds_off && conf_dmi_is_ec2(e->dmi_dir ? e->dmi_dir : env && *env ? env : NULL);
	}
	return 0;
}

int conf_apply_identity(conf *c, const char *instance_id, const char *address, const char *pool) {
	_cleanup_free_ char *id = NULL, *node = NULL, *addr = NULL, *p = NULL;

	if (!c || !instance_id)
		return -EINVAL;
	if (!(id = strdup(instance_id)) || (c->node_id_default && !(node = strdup(instance_id))) ||
	    (c->address_default && address && !(addr = strdup(address))) || (!c->pool && pool && !(p = strdup(pool))))
		return -ENOMEM;
	free(c->ec2.instance_id);
	c->ec2.instance_id = TAKE_PTR(id);
	if (node) {
		free(c->node_id);
		c->node_id = TAKE_PTR(node);
	}
	if (addr) {
		free(c->address);
		c->address = TAKE_PTR(addr);
	}
	if (p)
		c->pool = TAKE_PTR(p);
	return 0;
}

static const conf_key conf_ec2_part_keys[] = {
	{ "ec2",                conf_parse_section,      offsetof(conf, ec2), .section = conf_ec2_keys },
	{ "pool",               conf_parse_name,         offsetof(conf, pool) },
	{ "scale_interval",     conf_parse_duration_key, offsetof(conf, scale_interval_usec), .min_usec = USEC_PER_SEC },
	{ "launch_grace",       conf_parse_duration_key, offsetof(conf, launch_grace_usec), .min_usec = USEC_PER_SEC },
	{ "load_command",       conf_parse_string,       offsetof(conf, load_command) },
	{ "load_interval",      conf_parse_duration_key, offsetof(conf, load_interval_usec), .min_usec = USEC_PER_SEC },
	{ "wind_down_command",  conf_parse_string,       offsetof(conf, wind_down_command) },
	{ "interruption_watch", conf_parse_bool,         offsetof(conf, interruption_watch) },
	{}
};

static void conf_ec2_init(conf *c) {
	c->scale_interval_usec = 30 * USEC_PER_SEC;
	c->launch_grace_usec = 300 * USEC_PER_SEC;
	c->load_interval_usec = 10 * USEC_PER_SEC;
}

static void conf_ec2_done(conf *c) {
	free(c->ec2.region);
	free(c->ec2.endpoint);
	free(c->ec2.imds_endpoint);
	free(c->ec2.credentials_file);
	free(c->ec2.profile);
	free(c->ec2.instance_id);
	free(c->ec2.dmi_dir);
	free(c->pool);
	free(c->load_command);
	free(c->wind_down_command);
}

const conf_part conf_part_ec2 = {
	.keys = conf_ec2_part_keys,
	.init = conf_ec2_init,
	.finish = conf_finish_instance,
	.done = conf_ec2_done,
};
