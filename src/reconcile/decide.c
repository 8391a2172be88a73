/* decide.c — the reconciler's pure decisions (see reconcile.h): which units
 * a set of changed files restarts or reloads, what follows an apply, how
 * long a burst of changes waits. reconcile.c observes and acts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile.h"

void reconcile_unit_plan_done(reconcile_unit_plan *p) {
	if (!p)
		return;
	for (size_t i = 0; i < p->n_steps; i++)
		free(p->steps[i].files);
	free(p->steps);
	*p = (reconcile_unit_plan){};
}

static reconcile_unit_step *step_find(reconcile_unit_plan *p, const char *unit) {
	for (size_t i = 0; i < p->n_steps; i++)
		if (streq(p->steps[i].unit, unit))
			return &p->steps[i];
	return NULL;
}

/* The step for unit, added with action when it is new (n: the most files
 * a step can hold). */
static reconcile_unit_step *step_get(reconcile_unit_plan *p, const char *unit, units_action action, size_t n) {
	reconcile_unit_step *s = step_find(p, unit), *v;

	if (s)
		return s;
	v = realloc(p->steps, (p->n_steps + 1) * sizeof *v);
	if (!v)
		return NULL;
	p->steps = v;
	s = &p->steps[p->n_steps];
	*s = (reconcile_unit_step){ .unit = unit, .action = action, .files = calloc(n, sizeof *s->files) };
	if (!s->files)
		return NULL;
	p->n_steps++;
	return s;
}

int reconcile_plan_units(const conf_file *files, size_t n, const bool *changed, reconcile_unit_plan *out) {
	_cleanup_(reconcile_unit_plan_done) reconcile_unit_plan p = {};

	*out = (reconcile_unit_plan){};
	/* Restarts first: a unit met in the first pass keeps its restart. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if (!changed[i])
				continue;
			char *const *units = pass == 0 ? files[i].restart : files[i].reload;
			units_action action = pass == 0 ? UNITS_RESTART : UNITS_RELOAD;
			for (size_t k = 0; units && units[k]; k++) {
				reconcile_unit_step *s = step_get(&p, units[k], action, n);
				bool have = false;

				if (!s)
					return -ENOMEM;
				for (size_t x = 0; x < s->n_files; x++)
					have = have || s->files[x] == i;
				if (!have)
					s->files[s->n_files++] = i;
			}
		}
	*out = p;
	p = (reconcile_unit_plan){};
	return 0;
}

reconcile_next reconcile_next_step(bool retry_now, bool etcd_failed, bool dirty, bool fault) {
	if (retry_now)
		return RECONCILE_NEXT_NOW;
	if (etcd_failed)
		return RECONCILE_NEXT_ETCD_RETRY;
	if (dirty)
		return RECONCILE_NEXT_DEBOUNCED;
	if (fault)
		return RECONCILE_NEXT_WRITE_RETRY;
	return RECONCILE_NEXT_WAIT;
}

uint64_t reconcile_debounce_wait(uint64_t now, uint64_t dirty_since, uint64_t debounce_usec, uint64_t max_wait_usec) {
	uint64_t wait = debounce_usec;

	/* Quiet period, but never past max_wait after the first change. */
	if (dirty_since + max_wait_usec < now + wait)
		wait = dirty_since + max_wait_usec > now ? dirty_since + max_wait_usec - now : 0;
	return wait;
}
