/* notice.c — the sentence each notice carries to a deployment's owner
 * (deployment.h, CORRAL_NOTICE_MESSAGE): one sentence naming the
 * deployment, the time (RFC 3339) and what the owner can do about it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "rfc3339.h"

char *deployment_notice_message(const deployment *d, const char *kind, const char *cluster) {
	char when[RFC3339_MAX], *s = NULL;
	const char *c = cluster ? cluster : "corral", *id = d->id;
	int r;

	if (strncmp(kind, "expiry_", 7) == 0)
		r = asprintf(&s,
			     "The license of deployment %s on %s expires at %s (in %s): renew it before then "
			     "(corralctl deployment reclaim %s --license-expires TIME) or it is backed up and removed.",
			     id, c, rfc3339_format(d->license_expires, when), kind + 7, id);
	else if (strcmp(kind, "expired") == 0)
		r = asprintf(&s,
			     "The license of deployment %s on %s expired at %s, so it is being backed up and removed: "
			     "renew it now (corralctl deployment reclaim %s --license-expires TIME) to keep it, or "
			     "set it up again from its backup once it is removed.",
			     id, c, rfc3339_format(d->license_expires, when), id);
	else if (strcmp(kind, "inactive_warning") == 0)
		r = asprintf(&s,
			     "Deployment %s on %s has not been used since %s and goes into maintenance soon "
			     "unless it is used or reclaimed (corralctl deployment reclaim %s).",
			     id, c, rfc3339_format(d->last_active, when), id);
	else if (strcmp(kind, "maintenance") == 0)
		r = asprintf(&s,
			     "Deployment %s on %s is in maintenance since %s because nobody used it: reclaim it "
			     "(corralctl deployment reclaim %s, or use it) or it is backed up and removed.",
			     id, c, rfc3339_format(d->state_since, when), id);
	else if (strcmp(kind, "removed") == 0 && d->backup && !d->removal_skip_backup)
		r = asprintf(&s,
			     "Deployment %s on %s was removed at %s: set it up again from the backup at %s "
			     "(corralctl deployment add %s).",
			     id, c, rfc3339_format(d->state_since, when), d->backup, id);
	else if (strcmp(kind, "removed") == 0)
		r = asprintf(&s, "Deployment %s on %s was removed at %s without a backup, as the operator asked.", id, c,
			     rfc3339_format(d->state_since, when));
	else
		r = asprintf(&s, "Deployment %s on %s: %s at %s.", id, c, kind, rfc3339_format(d->state_since, when));
	return r < 0 ? NULL : s;
}
