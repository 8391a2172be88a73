/* observe.c — placeholder, completed next commit. */
#include <string.h>
#include "rollout-internal.h"
int rollout_observe(const rollout_records *r, rollout_view *out) {
	(void) r;
	memset(out, 0, sizeof *out);
	return 0;
}
void rollout_view_done(rollout_view *v) {
	memset(v, 0, sizeof *v);
}
