/* record.c — what corrald writes as this node's record (nodes/<id>,
 * node.h): from the config, and the image the upgrade runner last read. */
#include "daemon.h"

node_info daemon_node_info(const daemon_t *d) {
	return (node_info){
		.node_id = d->conf->node_id,
		.address = d->conf->address,
		.services = d->conf->services,
		.version = CORRAL_VERSION,
		.boot_time = node_boot_time(),
		.started = d->started,
		.instance_id = d->conf->ec2.instance_id,
		.pool = d->conf->pool,
		.wind_down = d->conf->wind_down_command != NULL,
		.image = d->conf->upgrade.present ? d->image : NULL,
		.deployments_memory = d->conf->deployments.present ? d->conf->deployments.memory : 0,
	};
}
