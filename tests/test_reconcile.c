/* test_reconcile.c — the reconciler's pure part: which units a set of
 * changed files restarts or reloads. (The I/O is tested end to end in
 * test_flow.c against real etcd and systemd.) */
#include <criterion/criterion.h>
#include <jansson.h>

#include "reconcile.h"

static conf_file file(char **restart, char **reload) {
	return (conf_file){ .restart = restart, .reload = reload };
}

/* The plan as "unit:action:files;..." for compact assertions. */
static char *plan_text(const conf_file *files, size_t n, const bool *changed) {
	_cleanup_(reconcile_unit_plan_done) reconcile_unit_plan plan = {};
	char *out = calloc(1, 1024);

	cr_assert_eq(reconcile_plan_units(files, n, changed, &plan), 0);
	for (size_t i = 0; i < plan.n_steps; i++) {
		const reconcile_unit_step *e = &plan.steps[i];
		char buf[128];
		snprintf(buf, sizeof buf, "%s%s:%s:", i ? ";" : "", e->unit, units_action_to_string(e->action));
		strcat(out, buf);
		for (size_t k = 0; k < e->n_files; k++) {
			snprintf(buf, sizeof buf, "%s%zu", k ? "," : "", e->files[k]);
			strcat(out, buf);
		}
	}
	return out;
}

Test(reconcile_plan, nothing_changed_nothing_to_do) {
	char *r[] = { "a.service", NULL };
	conf_file f[] = { file(r, NULL), file(NULL, r) };
	bool changed[] = { false, false };
	_cleanup_free_ char *t = plan_text(f, 2, changed);
	cr_assert_str_eq(t, "");
}

Test(reconcile_plan, only_changed_files_count) {
	char *a[] = { "a.service", NULL }, *b[] = { "b.service", NULL };
	conf_file f[] = { file(a, NULL), file(b, NULL) };
	bool changed[] = { false, true };
	_cleanup_free_ char *t = plan_text(f, 2, changed);
	cr_assert_str_eq(t, "b.service:restart:1");
}

Test(reconcile_plan, a_unit_is_acted_on_once_with_every_file) {
	char *a[] = { "cms.service", NULL };
	conf_file f[] = { file(a, NULL), file(a, NULL), file(a, NULL) };
	bool changed[] = { true, false, true };
	_cleanup_free_ char *t = plan_text(f, 3, changed);
	cr_assert_str_eq(t, "cms.service:restart:0,2");
}

Test(reconcile_plan, restart_wins_over_reload) {
	char *u[] = { "nginx.service", NULL };
	conf_file f[] = { file(NULL, u), file(u, NULL) };
	bool changed[] = { true, true };
	_cleanup_free_ char *t = plan_text(f, 2, changed);
	/* restarts come first, and the unit is restarted for both files */
	cr_assert_str_eq(t, "nginx.service:restart:1,0");
}

Test(reconcile_plan, reloads_and_restarts_in_order_of_mention) {
	char *r1[] = { "b.service", "a.service", NULL }, *l1[] = { "c.service", NULL };
	char *l2[] = { "d.service", "c.service", NULL };
	conf_file f[] = { file(r1, l1), file(NULL, l2) };
	bool changed[] = { true, true };
	_cleanup_free_ char *t = plan_text(f, 2, changed);
	cr_assert_str_eq(t, "b.service:restart:0;a.service:restart:0;c.service:reload:0,1;d.service:reload:1");
}

Test(reconcile_plan, every_subset_of_changes) {
	/* Three files sharing units in every way; for each subset of changed
	 * files, a unit appears iff one of its files changed, once, with
	 * exactly those files. */
	char *r0[] = { "x.service", NULL }, *l0[] = { "y.service", NULL };
	char *r1[] = { "y.service", NULL };
	char *l2[] = { "x.service", "z.service", NULL };
	conf_file f[] = { file(r0, l0), file(r1, NULL), file(NULL, l2) };
	const char *units[] = { "x.service", "y.service", "z.service" };
	/* files naming each unit (bit i: file i), and whether any restarts */
	const unsigned names[] = { 1 | 4, 1 | 2, 4 };
	const unsigned restarts[] = { 1, 2, 0 };

	for (unsigned set = 0; set < 8; set++) {
		bool changed[3] = { set & 1, set & 2, set & 4 };
		_cleanup_(reconcile_unit_plan_done) reconcile_unit_plan plan = {};
		cr_assert_eq(reconcile_plan_units(f, 3, changed, &plan), 0);
		for (unsigned u = 0; u < 3; u++) {
			const reconcile_unit_step *found = NULL;
			size_t seen = 0;
			for (size_t i = 0; i < plan.n_steps; i++)
				if (streq(plan.steps[i].unit, units[u])) {
					found = &plan.steps[i];
					seen++;
				}
			bool expect = (names[u] & set) != 0;
			cr_assert_eq(seen, expect ? 1u : 0u, "set %u unit %s", set, units[u]);
			if (!found)
				continue;
			const char *action = units_action_to_string(found->action);
			cr_assert_str_eq(action, (restarts[u] & set) ? "restart" : "reload", "set %u unit %s", set,
					 units[u]);
			unsigned files = 0;
			for (size_t i = 0; i < found->n_files; i++)
				files |= 1u << found->files[i];
			cr_assert_eq(files, names[u] & set, "set %u unit %s", set, units[u]);
		}
	}
}

/* What follows an apply: every combination of the four inputs. */
Test(reconcile_next, order_of_what_follows_an_apply) {
	for (unsigned m = 0; m < 16; m++) {
		bool now = m & 1, etcd = m & 2, dirty = m & 4, fault = m & 8;
		reconcile_next want = now     ? RECONCILE_NEXT_NOW
				      : etcd  ? RECONCILE_NEXT_ETCD_RETRY
				      : dirty ? RECONCILE_NEXT_DEBOUNCED   /* a newer config replaces the retry */
				      : fault ? RECONCILE_NEXT_WRITE_RETRY
					      : RECONCILE_NEXT_WAIT;
		cr_expect_eq(reconcile_next_step(now, etcd, dirty, fault), want, "now=%d etcd=%d dirty=%d fault=%d",
			     now, etcd, dirty, fault);
	}
	/* A failed check or unit alone (no fault) waits for the next change. */
	cr_expect_eq(reconcile_next_step(false, false, false, false), RECONCILE_NEXT_WAIT);
}

/* A burst of changes waits the quiet period, but never past max_wait after
 * its first change. */
Test(reconcile_next, debounce_wait_is_capped_by_max_wait) {
	cr_expect_eq(reconcile_debounce_wait(1000, 1000, 100, 500), 100, "the first change: the quiet period");
	cr_expect_eq(reconcile_debounce_wait(1300, 1000, 100, 500), 100, "well inside max_wait");
	cr_expect_eq(reconcile_debounce_wait(1450, 1000, 100, 500), 50, "what is left of max_wait");
	cr_expect_eq(reconcile_debounce_wait(1600, 1000, 100, 500), 0, "max_wait is over: at once");
}
