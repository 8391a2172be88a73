/* test_hooks.c — the node's hook runner (include/hooks.h). So far its
 * names: the unit of one hook of one order, and where stdout files go.
 * The runner against etcd and systemd --user is still to come. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "hooks.h"

Test(hooks_names, unit_name_is_per_order_and_escaped) {
	_cleanup_free_ char *a = hooks_unit_name("t-1", DEPLOYMENT_HOOK_BACKUP, 7);
	_cleanup_free_ char *b = hooks_unit_name("t-1", DEPLOYMENT_HOOK_BACKUP, 8);
	_cleanup_free_ char *c = hooks_unit_name("a b", DEPLOYMENT_HOOK_MAINTENANCE_ON, 1);

	cr_assert_str_eq(a, "corral-deployment-t-1-backup-7.service");
	cr_assert_str_neq(a, b);
	cr_assert_str_eq(c, "corral-deployment-a\\x20b-maintenance_on-1.service");
	cr_assert_null(hooks_unit_name("x", _DEPLOYMENT_HOOK_MAX, 1));
	cr_assert_null(hooks_unit_name(NULL, DEPLOYMENT_HOOK_DEPLOY, 1));
}

Test(hooks_names, stdout_dir) {
	cr_assert_eq(setenv("RUNTIME_DIRECTORY", "/run/corral-x:/run/other", 1), 0);
	_cleanup_free_ char *a = hooks_stdout_dir(false);
	cr_assert_str_eq(a, "/run/corral-x");
	cr_assert_eq(unsetenv("RUNTIME_DIRECTORY"), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/7", 1), 0);
	_cleanup_free_ char *u = hooks_stdout_dir(true), *s = hooks_stdout_dir(false);
	cr_assert_str_eq(u, "/run/user/7/corral");
	cr_assert_str_eq(s, "/run/corral");
}
