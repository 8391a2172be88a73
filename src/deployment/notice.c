/* notice.c — the sentence each notice carries to a deployment's owner
 * (deployment.h, CORRAL_NOTICE_MESSAGE): what happened or will happen,
 * when, and what the owner can do about it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "rfc3339.h"

char *deployment_notice_message(const deployment *d, const char *kind, const char *cluster) {
	char when[RFC3339_MAX], *s = NULL;
	const char *c = cluster ? cluster : "corral";
	const char *backup = d->backup ? d->backup : "(no backup)";
	int r;

	if (strncmp(kind, "expiry_", 7) == 0)
		r = asprintf(&s, "The license of deployment %s on %s expires at %s (in %s). Renew it before then: at expiry it is backed up and removed.",
			     d->id, c, rfc3339_format(d->license_expires, when), kind + 7);
	else if (strcmp(kind, "expired") == 0)
		r = asprintf(&s, "The license of deployment %s on %s expired at %s: it is backed up and removed now. To set it up again, renew the license and add it again (corralctl deployment add %s); its data is restored from the backup.",
			     d->id, c, rfc3339_format(d->license_expires, when), d->id);
	else if (strcmp(kind, "inactive_warning") == 0)
		r = asprintf(&s, "Deployment %s on %s has not been used since %s and goes into maintenance soon. Use it, or run corralctl deployment reclaim %s, to keep it running.",
			     d->id, c, rfc3339_format(d->last_active, when), d->id);
	else if (strcmp(kind, "maintenance") == 0)
		r = asprintf(&s, "Deployment %s on %s is in maintenance since %s because nobody used it. Reclaim it (use it, or corralctl deployment reclaim %s) within the reclaim period, or it is backed up and removed.",
			     d->id, c, rfc3339_format(d->state_since, when), d->id);
	else if (strcmp(kind, "removed") == 0)
		r = asprintf(&s, "Deployment %s on %s was removed at %s. Its backup is at %s; to set it up again, add it again (corralctl deployment add %s) and it is restored from that backup.",
			     d->id, c, rfc3339_format(d->state_since, when), backup, d->id);
	else
		r = asprintf(&s, "Deployment %s on %s: %s.", d->id, c, kind);
	return r < 0 ? NULL : s;
}
