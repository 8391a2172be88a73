/* marker.c — the on/off switches an operator flips in etcd (maintenance,
 * cluster stop, a hold): a marker record saying since when, by whom and
 * why, put to switch on and deleted to switch off, with the scaling
 * summary logged around the change. */
#include <stdlib.h>

#include "ctl.h"

int ctl_switch_marker(ctl_t *c, const char *key, bool on, const char *reason, const char *on_text,
		      const char *off_text, const char *absent_text) {
	int r;

	if (!key)
		return 1;
	ctl_log_summary(c, "before");
	if (on) {
		_cleanup_free_ char *value = ctl_marker_json(reason);
		if (!value || ctl_put(c, key, value, -1) < 0)
			return 1;
		r = ctl_report(c, "put", key, value, on_text);
	} else {
		r = ctl_delete(c, key);
		if (r < 0)
			return 1;
		r = ctl_report(c, "delete", key, NULL, r > 0 ? off_text : absent_text);
	}
	ctl_log_summary(c, "after");
	return r;
}
