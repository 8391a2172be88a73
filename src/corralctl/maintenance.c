/* maintenance.c — `corralctl maintenance on|off`: while the marker
 * <prefix>/maintenance exists the leader does no scaling at all. */
#include <stdlib.h>

#include "ctl.h"

static int maintenance_switch(ctl_t *c, ctl_opts *o, bool on) {
	_cleanup_free_ char *key = keys_one_of(c->prefix, KEYS_MAINTENANCE);

	return ctl_switch_marker(c, key, on, o->reason,
				 &(ctl_marker_texts){ .on = "maintenance on: no scaling until 'maintenance off'",
						      .off = "maintenance off", .absent = "maintenance was not on",
						      .taken = "maintenance already on" });
}

static int maintenance_on(ctl_t *c, ctl_opts *o) {
	return maintenance_switch(c, o, true);
}

static int maintenance_off(ctl_t *c, ctl_opts *o) {
	return maintenance_switch(c, o, false);
}

const ctl_verb ctl_maintenance_verbs[] = {
	{ .group = "maintenance", .name = "on", .args = "[--reason TEXT]", .help = "no scaling at all while on; refused while on (by whom, since, why\n"
		  "are printed): -f replaces that marker",
	  .options = CTL_OPT_REASON, .flags = CTL_VERB_ETCD, .run = maintenance_on },
	{ .group = "maintenance", .name = "off", .help = "end maintenance: the pools scale again",
	  .flags = CTL_VERB_ETCD, .run = maintenance_off },
	{},
};
