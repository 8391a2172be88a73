/* hold.c — `corralctl hold ID` / `unhold ID`: <prefix>/holds/<id> keeps
 * the leader from ever draining or terminating that instance. */
#include <stdlib.h>

#include "ctl.h"

static int hold_switch(ctl_t *c, ctl_opts *o, bool hold) {
	_cleanup_free_ char *key = NULL;
	const char *id = o->pos[0];
	char on[300], off[300], absent[300], taken[300];

	if (!ctl_id_valid(id))
		return ctl_usage_error("bad instance id '%s'", id);
	key = keys_entry(c->prefix, KEYS_HOLDS, id);
	snprintf(on, sizeof on, "%s held: never drained or terminated until 'unhold %s'", id, id);
	snprintf(off, sizeof off, "%s released", id);
	snprintf(absent, sizeof absent, "%s was not held", id);
	snprintf(taken, sizeof taken, "%s already held", id);
	return ctl_switch_marker(c, key, hold, o->reason,
				 &(ctl_marker_texts){ .on = on, .off = off, .absent = absent, .taken = taken });
}

static int hold(ctl_t *c, ctl_opts *o) {
	return hold_switch(c, o, true);
}

static int unhold(ctl_t *c, ctl_opts *o) {
	return hold_switch(c, o, false);
}

const ctl_verb ctl_hold_verbs[] = {
	{ .name = "hold", .args = "INSTANCE-ID [--reason TEXT]",
	  .help = "never drain or terminate instance INSTANCE-ID; unhold ends it. Refused\n"
		  "while held (by whom, since, why are printed); -f replaces that hold", .options = CTL_OPT_REASON,
	  .flags = CTL_VERB_ETCD, .min_args = 1, .max_args = 1, .run = hold },
	{ .name = "unhold", .args = "INSTANCE-ID", .help = "end a hold", .flags = CTL_VERB_ETCD, .min_args = 1,
	  .max_args = 1, .run = unhold },
	{},
};
