/* place.c — where a deployment goes (deployment.h): reserved-covered hosts
 * first (paid for already), then the fullest host that fits, so emptier
 * hosts stay emptiable and the on-demand ones can be scaled in. */
#include <string.h>

#include "deployment.h"

static bool fits(const deployment_host *h, int64_t used, int64_t memory) {
	return h->memory > 0 && (double) (used + memory) <= h->threshold * (double) h->memory + 1e-6;
}

/* a before b: reserved, then fuller, then node id */
static bool better(const deployment_host *a, const deployment_host *b) {
	if (a->reserved != b->reserved)
		return a->reserved;
	double fa = (double) a->used / (double) a->memory, fb = (double) b->used / (double) b->memory;
	if (fa != fb)
		return fa > fb;
	return strcmp(a->node_id, b->node_id) < 0;
}

ssize_t deployment_place(const deployment_host *hosts, size_t n, int64_t memory) {
	ssize_t best = -1;

	for (size_t i = 0; i < n; i++)
		if (hosts[i].placeable && fits(&hosts[i], hosts[i].used, memory) &&
		    (best < 0 || better(&hosts[i], &hosts[best])))
			best = (ssize_t) i;
	return best;
}

bool deployment_fits_some_host(const deployment_host *hosts, size_t n, int64_t memory) {
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (fits(&hosts[i], 0, memory))
			return true;
	return false;
}
