/* schedule.c — placeholder, completed next commit. */
#include <string.h>
#include "rollout-internal.h"
int rollout_schedule_build(const rollout_input *in, rollout_schedule *out) {
	(void) in;
	memset(out, 0, sizeof *out);
	return 0;
}
void rollout_schedule_done(rollout_schedule *s) {
	memset(s, 0, sizeof *s);
}
char *rollout_schedule_format(const rollout_plan *p, const rollout_schedule *s) {
	(void) p; (void) s;
	return strdup("");
}
