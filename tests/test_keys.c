/* test_keys.c — the etcd key layout (src/keys/keys.c): every key of the
 * layout as the rest of corral expects it, the ids that are refused
 * because they would change a key's shape, and reading an id back out of
 * a key etcd returned. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "keys.h"
#include "macro.h"

#define P "/corral/demo"

static void expect(char *got, const char *want) {
	cr_assert_not_null(got, "want %s, got NULL (errno %d)", want, errno);
	cr_assert_str_eq(got, want);
	free(got);
}

Test(keys, single_keys) {
	expect(keys_one_of(P, KEYS_CURRENT), P "/current");
	expect(keys_one_of(P, KEYS_LEADER), P "/leader");
	expect(keys_one_of(P, KEYS_MAINTENANCE), P "/maintenance");
	expect(keys_one_of(P, KEYS_SCALE_POLICY), P "/scale/policy");
	expect(keys_one_of(P, KEYS_SCALE_STATE), P "/scale/state");
	expect(keys_one_of(P, KEYS_SCALE_METRICS), P "/scale/metrics");
	expect(keys_one_of(P, KEYS_UPGRADE_PLAN), P "/upgrade/plan");
	expect(keys_one_of(P, KEYS_UPGRADE_STATE), P "/upgrade/state");
	expect(keys_one_of(P, KEYS_UPGRADE_STABLE), P "/upgrade/stable");
	expect(keys_one_of(P, KEYS_SCALE_STOP), P "/scale/stop");
	expect(keys_one_of(P, KEYS_SCALE_TRIGGER), P "/scale/trigger");
	expect(keys_one_of(P, KEYS_SCALE_STATUS), P "/scale/status");
	expect(keys_all_of(P), P "/");
	errno = 0;
	cr_assert_null(keys_one_of(P, _KEYS_ONE_MAX));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(keys_one_of(NULL, KEYS_CURRENT));
}

Test(keys, folders_and_entries) {
	expect(keys_dir_of(P, KEYS_CONFIGS), P "/configs/");
	expect(keys_dir_of(P, KEYS_NODES), P "/nodes/");
	expect(keys_dir_of(P, KEYS_STATUS), P "/status/");
	expect(keys_dir_of(P, KEYS_LOAD), P "/load/");
	expect(keys_dir_of(P, KEYS_HOLDS), P "/holds/");
	expect(keys_dir_of(P, KEYS_SCALE), P "/scale/");
	expect(keys_dir_of(P, KEYS_SCALE_HOSTS), P "/scale/hosts/");
	expect(keys_dir_of(P, KEYS_UPGRADE), P "/upgrade/");
	expect(keys_dir_of(P, KEYS_UPGRADE_NODES), P "/upgrade/nodes/");
	expect(keys_dir_of(P, KEYS_UPGRADE_PROGRESS), P "/upgrade/progress/");
	expect(keys_dir_of(P, KEYS_UPGRADE_HISTORY), P "/upgrade/history/");
	expect(keys_dir_of(P, KEYS_SCALE_QUEUE), P "/scale/queue/");
	expect(keys_dir_of(P, KEYS_SCALE_HISTORY), P "/scale/history/");
	expect(keys_dir_end(P, KEYS_SCALE_HISTORY), P "/scale/history0");
	expect(keys_dir_of(P, KEYS_SCALE_LOAD_HISTORY), P "/scale/load_history/");
	expect(keys_dir_end(P, KEYS_SCALE), P "/scale0");
	expect(keys_entry(P, KEYS_SCALE_QUEUE, "web"), P "/scale/queue/web");

	expect(keys_entry(P, KEYS_NODES, "n1"), P "/nodes/n1");
	expect(keys_entry(P, KEYS_STATUS, "n1"), P "/status/n1");
	expect(keys_entry(P, KEYS_SCALE_HOSTS, "i-0abc"), P "/scale/hosts/i-0abc");
	expect(keys_entry(P, KEYS_CONFIGS, "n1_7"), P "/configs/n1_7/");
	expect(keys_entry(P, KEYS_HOLDS, "deploy Friday"), P "/holds/deploy Friday");
	expect(keys_config_leaf(P, "n1_7", "cms.conf/core_services/Worker"),
	       P "/configs/n1_7/cms.conf/core_services/Worker");
}

/* An id that would make the key address another record is refused, not
 * escaped: no caller has a reason to build one. */
Test(keys, ids_that_change_the_shape) {
	static const char *const bad[] = { "", ".", "..", "a/b", "/", "n1/", "a\nb", "a\x7f", "\x01" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		errno = 0;
		cr_assert_null(keys_entry(P, KEYS_NODES, bad[i]), "id #%zu accepted", i);
		cr_assert_eq(errno, EINVAL, "id #%zu", i);
		cr_assert_not(keys_cluster_valid(bad[i]), "cluster #%zu accepted", i);
		cr_assert_null(keys_prefix_for_cluster(bad[i]));
	}
	cr_assert_null(keys_entry(P, KEYS_NODES, NULL));
	cr_assert_null(keys_config_leaf(P, "a/b", "x"));
	cr_assert_null(keys_config_leaf(P, "ok", ""));

	char longest[KEYS_ID_MAX + 2];
	memset(longest, 'x', sizeof longest);
	longest[KEYS_ID_MAX] = '\0';
	char *k = keys_entry(P, KEYS_NODES, longest);
	cr_assert_not_null(k, "%d bytes refused", KEYS_ID_MAX);
	free(k);
	longest[KEYS_ID_MAX] = 'x';
	longest[KEYS_ID_MAX + 1] = '\0';
	cr_assert_null(keys_entry(P, KEYS_NODES, longest));

	cr_assert(keys_id_valid("...", 3));
	cr_assert(keys_id_valid("caf\xc3\xa9", 5));
	expect(keys_prefix_for_cluster("demo"), "/corral/demo");
	cr_assert_not(keys_cluster_valid(NULL));
}

static void expect_id(keys_dir d, const char *key, const char *want) {
	size_t n = 12345;
	const char *id = keys_id_in(P, d, key, strlen(key), &n);
	if (!want) {
		cr_assert_null(id, "%s gave an id", key);
		return;
	}
	cr_assert_not_null(id, "%s gave no id", key);
	cr_assert_eq(n, strlen(want), "%s: id of %zu bytes", key, n);
	cr_assert_eq(memcmp(id, want, n), 0, "%s", key);
}

Test(keys, id_read_back) {
	expect_id(KEYS_NODES, P "/nodes/n1", "n1");
	expect_id(KEYS_SCALE_HOSTS, P "/scale/hosts/i-1", "i-1");
	expect_id(KEYS_SCALE_QUEUE, P "/scale/queue/web", "web");
	expect_id(KEYS_SCALE_QUEUE, P "/scale/hosts/i-1", NULL);
	expect_id(KEYS_CONFIGS, P "/configs/n1_7/cms.conf/a", "n1_7");
	expect_id(KEYS_CONFIGS, P "/configs/n1_7/", "n1_7");
	expect_id(KEYS_NODES, P "/nodes/", NULL);
	expect_id(KEYS_NODES, P "/nodes/a/b", NULL);
	expect_id(KEYS_NODES, P "/nodesx/a", NULL);
	expect_id(KEYS_NODES, P "/status/n1", NULL);
	expect_id(KEYS_NODES, "/corral/other/nodes/n1", NULL);
	expect_id(KEYS_NODES, "/corral/demo2/nodes/n1", NULL);
	expect_id(KEYS_CONFIGS, P "/configs/n1_7", NULL);
	expect_id(KEYS_SCALE, P "/scale/hosts/i-1", NULL);

	/* Not NUL-terminated: only len bytes are read. */
	const char buf[] = P "/nodes/n1XYZ";
	size_t n = 0;
	const char *id = keys_id_in(P, KEYS_NODES, buf, strlen(P "/nodes/n1"), &n);
	cr_assert_not_null(id);
	cr_assert_eq(n, 2);
}
