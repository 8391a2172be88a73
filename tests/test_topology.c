/* test_topology.c — the per-node lists: templates, join, leave, order,
 * ownership, errors that leave the document alone, and idempotence over many
 * random node sets. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "json-test.h"
#include "topology.h"

/* ---- helpers ------------------------------------------------------------------ */

static void expect_doc(json_t *got, const char *want_text) {
	json_auto_t *want = J(want_text);
	_cleanup_free_ char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	cr_expect(tree_equal(got, want), "got  %s\nwant %s", g, want_text);
}

/* Rules with their values parsed from JSON; freed by rules_free. */
typedef struct rules {
	conf_topology v[8];
	size_t n;
} rules;

static void rule_add(rules *r, const char *service, const char *path, const char *value) {
	cr_assert_lt(r->n, ELEMENTSOF(r->v));
	r->v[r->n++] = (conf_topology) { .service = (char *) service, .path = (char *) path, .value = J(value) };
}

static void rules_free(rules *r) {
	for (size_t i = 0; i < r->n; i++)
		json_decref(r->v[i].value);
	r->n = 0;
}

#define RULES_AUTO _cleanup_(rules_free) rules

/* The CMS rules of the example: Worker and LogService. */
static void cms_rules(rules *r) {
	rule_add(r, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");
	rule_add(r, "LogService", "cms/core_services/LogService", "[\"{address}\", 29000]");
}

/* Applies and checks the result; returns what topology_apply returned. */
static int apply(json_t *files, rules *r, const char *nodes_text) {
	json_auto_t *nodes = J(nodes_text);
	tree_error err;
	int ret = topology_apply(files, r->v, r->n, nodes, &err);
	cr_expect_geq(ret, 0, "topology_apply: %d: %s (%s)", ret, err.message, err.path);
	return ret;
}

/* Applying again must change nothing: idempotence, checked everywhere. */
static void expect_fixed_point(json_t *files, rules *r, const char *nodes_text) {
	json_auto_t *before = tree_copy(files);
	cr_expect_eq(apply(files, r, nodes_text), 0, "second application changed something");
	cr_expect(tree_equal(before, files));
}

#define N1 "\"n1\": {\"address\": \"10.0.0.1\", \"services\": [\"Worker\"]}"
#define N2 "\"n2\": {\"address\": \"10.0.0.2\", \"services\": [\"Worker\", \"LogService\"]}"
#define N3 "\"n3\": {\"address\": \"10.0.0.3\", \"services\": [\"Worker\"]}"

/* ---- templates ------------------------------------------------------------------ */

Test(topology, entry_templates_everywhere) {
	json_auto_t *value = J("{\"host\": \"{address}:26000\", \"id\": \"{node_id}\", \"{address}\": 1,"
			       " \"deep\": [[\"{address}\", [\"x{node_id}y{address}z\"]], {\"k\": \"{address}{address}\"}],"
			       " \"n\": 5, \"r\": 1.5, \"b\": true, \"z\": null, \"other\": \"{port} {address {node_id\","
			       " \"empty\": \"\", \"nul\": \"a\\u0000{address}\"}");
	conf_topology rule = { .service = "W", .path = "f/x", .value = value };
	json_auto_t *e = topology_entry(&rule, "host-1", "10.0.0.9");

	expect_doc(e, "{\"host\": \"10.0.0.9:26000\", \"id\": \"host-1\", \"{address}\": 1,"
		      " \"deep\": [[\"10.0.0.9\", [\"xhost-1y10.0.0.9z\"]], {\"k\": \"10.0.0.910.0.0.9\"}],"
		      " \"n\": 5, \"r\": 1.5, \"b\": true, \"z\": null, \"other\": \"{port} {address {node_id\","
		      " \"empty\": \"\", \"nul\": \"a\\u000010.0.0.9\"}");
	/* The template itself is not touched. */
	cr_expect_str_eq(json_string_value(json_object_get(value, "host")), "{address}:26000");
	cr_expect(json_is_integer(json_object_get(e, "n")));
	cr_expect(json_is_real(json_object_get(e, "r")));
}

Test(topology, entry_scalar_and_string_templates) {
	json_auto_t *v1 = J("\"{address}\""), *v2 = J("42"), *v3 = J("[\"{address}\", 26000]");
	conf_topology r1 = { .service = "W", .path = "f", .value = v1 };
	conf_topology r2 = { .service = "W", .path = "f", .value = v2 };
	conf_topology r3 = { .service = "W", .path = "f", .value = v3 };
	json_auto_t *e1 = topology_entry(&r1, "n", "a.example");
	json_auto_t *e2 = topology_entry(&r2, "n", "a");
	json_auto_t *e3 = topology_entry(&r3, "n", "::1");

	expect_doc(e1, "\"a.example\"");
	expect_doc(e2, "42");
	expect_doc(e3, "[\"::1\", 26000]");
	cr_expect_null(topology_entry(NULL, "n", "a"));
	cr_expect_null(topology_entry(&r1, NULL, "a"));
	cr_expect_null(topology_entry(&r1, "n", NULL));
}

/* ---- join and leave ------------------------------------------------------------- */

Test(topology, join_into_missing_file_creates_parents) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	cms_rules(&r);

	cr_expect_eq(apply(files, &r, "{" N1 "}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000]], \"LogService\": []}}}");
	expect_fixed_point(files, &r, "{" N1 "}");
}

Test(topology, join_keeps_other_content) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{\"cms\": {\"database\": \"pg://db\", \"core_services\": {\"Checker\": [[\"c\", 1]],"
			       " \"Worker\": [[\"10.0.0.1\", 26000]], \"LogService\": []}}, \"ranking\": {\"x\": 1}}");
	cms_rules(&r);

	cr_expect_eq(apply(files, &r, "{" N1 ", " N2 "}"), 1);
	expect_doc(files, "{\"cms\": {\"database\": \"pg://db\", \"core_services\": {\"Checker\": [[\"c\", 1]],"
			  " \"Worker\": [[\"10.0.0.1\", 26000], [\"10.0.0.2\", 26000]],"
			  " \"LogService\": [[\"10.0.0.2\", 29000]]}}, \"ranking\": {\"x\": 1}}");
	expect_fixed_point(files, &r, "{" N1 ", " N2 "}");
}

Test(topology, new_nodes_appended_in_node_id_order) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.2\", 26000]]}}}");
	rule_add(&r, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");

	/* n1 < n10 < n2 < n9 (bytewise, as etcd lists keys); the
	 * object's own key order must not matter. */
	cr_expect_eq(apply(files, &r,
			   "{\"n9\": {\"address\": \"9\", \"services\": [\"Worker\"]},"
			   " \"n2\": {\"address\": \"10.0.0.2\", \"services\": [\"Worker\"]},"
			   " \"n10\": {\"address\": \"10\", \"services\": [\"Worker\"]},"
			   " \"a\": {\"address\": \"a\", \"services\": [\"Worker\"]},"
			   " \"n1\": {\"address\": \"1\", \"services\": [\"Worker\"]}}"),
		     1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.2\", 26000], [\"a\", 26000],"
			  " [\"1\", 26000], [\"10\", 26000], [\"9\", 26000]]}}}");
}

Test(topology, leave_drops_only_the_gone_node) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	cms_rules(&r);

	cr_expect_eq(apply(files, &r, "{" N1 ", " N2 ", " N3 "}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000], [\"10.0.0.2\", 26000],"
			  " [\"10.0.0.3\", 26000]], \"LogService\": [[\"10.0.0.2\", 29000]]}}}");
	cr_expect_eq(apply(files, &r, "{" N1 ", " N3 "}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000], [\"10.0.0.3\", 26000]],"
			  " \"LogService\": []}}}");
	cr_expect_eq(apply(files, &r, "{}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [], \"LogService\": []}}}");
	expect_fixed_point(files, &r, "{}");
}

Test(topology, node_changing_services_or_address) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	cms_rules(&r);

	apply(files, &r, "{" N1 ", " N2 ", " N3 "}");
	/* n2 stops LogService; n1 moves to a new address: its entry leaves
	 * its place and is appended (it is a different entry now). */
	cr_expect_eq(apply(files, &r,
			   "{\"n1\": {\"address\": \"10.0.1.1\", \"services\": [\"Worker\"]},"
			   " \"n2\": {\"address\": \"10.0.0.2\", \"services\": [\"Worker\"]}, " N3 "}"),
		     1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.2\", 26000], [\"10.0.0.3\", 26000],"
			  " [\"10.0.1.1\", 26000]], \"LogService\": []}}}");
}

/* ---- order --------------------------------------------------------------------- */

Test(topology, existing_order_is_kept) {
	RULES_AUTO r = {};
	/* An operator (or an earlier history) ordered the list n3, n1, n2. */
	json_auto_t *files = J("{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.3\", 26000], [\"10.0.0.1\", 26000],"
			       " [\"10.0.0.2\", 26000]], \"LogService\": [[\"10.0.0.2\", 29000]]}}}");
	json_auto_t *before = tree_copy(files);
	cms_rules(&r);

	cr_expect_eq(apply(files, &r, "{" N1 ", " N2 ", " N3 "}"), 0);
	cr_expect(tree_equal(before, files));

	/* n1 leaves and comes back: it is appended at the end, the others
	 * keep their order. */
	cr_expect_eq(apply(files, &r, "{" N2 ", " N3 "}"), 1);
	cr_expect_eq(apply(files, &r, "{" N1 ", " N2 ", " N3 "}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.3\", 26000], [\"10.0.0.2\", 26000],"
			  " [\"10.0.0.1\", 26000]], \"LogService\": [[\"10.0.0.2\", 29000]]}}}");
}

Test(topology, foreign_and_surplus_entries_dropped) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{\"cms\": {\"core_services\": {\"Worker\": [\"junk\", [\"10.0.0.1\", 26000], 7,"
			       " [\"10.0.0.1\", 26000], [\"10.0.0.1\", 26001], null, {}]}}}");
	rule_add(&r, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");

	cr_expect_eq(apply(files, &r, "{" N1 "}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000]]}}}");
}

Test(topology, no_change_returns_zero_and_leaves_document_equal) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{\"cms\": {\"core_services\": {\"Worker\": [[\"10.0.0.1\", 26000]],"
			       " \"LogService\": []}, \"x\": [1.5, \"y\"]}}");
	json_auto_t *before = tree_copy(files);
	cms_rules(&r);

	cr_expect_eq(apply(files, &r, "{" N1 "}"), 0);
	cr_expect(tree_equal(before, files));

	/* No rules: nothing to own, nothing to change. */
	json_auto_t *nodes = J("{" N1 "}");
	cr_expect_eq(topology_apply(files, NULL, 0, nodes, NULL), 0);
	cr_expect(tree_equal(before, files));
}

/* ---- ownership ------------------------------------------------------------------- */

Test(topology, rules_sharing_a_path_share_a_list) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "Worker", "cms/services", "{\"kind\": \"worker\", \"at\": \"{address}\"}");
	rule_add(&r, "Checker", "cms/services", "{\"kind\": \"checker\", \"at\": \"{address}\"}");

	cr_expect_eq(apply(files, &r,
			   "{\"b\": {\"address\": \"B\", \"services\": [\"Checker\", \"Worker\"]},"
			   " \"a\": {\"address\": \"A\", \"services\": [\"Checker\"]},"
			   " \"c\": {\"address\": \"C\", \"services\": [\"Other\"]}}"),
		     1);
	/* Node order first, then rule order within a node. */
	expect_doc(files, "{\"cms\": {\"services\": [{\"kind\": \"checker\", \"at\": \"A\"},"
			  " {\"kind\": \"worker\", \"at\": \"B\"}, {\"kind\": \"checker\", \"at\": \"B\"}]}}");
	expect_fixed_point(files, &r,
			   "{\"b\": {\"address\": \"B\", \"services\": [\"Checker\", \"Worker\"]},"
			   " \"a\": {\"address\": \"A\", \"services\": [\"Checker\"]}}");
}

Test(topology, equal_entries_from_one_node_counted_once) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "Worker", "f/hosts", "\"{address}\"");
	rule_add(&r, "Checker", "f/hosts", "\"{address}\"");

	/* Two rules, one entry; a service listed twice, still one entry. */
	cr_expect_eq(apply(files, &r, "{\"a\": {\"address\": \"A\", \"services\": [\"Worker\", \"Checker\", \"Worker\"]}}"),
		     1);
	expect_doc(files, "{\"f\": {\"hosts\": [\"A\"]}}");
}

Test(topology, same_address_two_nodes_one_entry_each) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");

	/* Containers that all see the same address, and advertise it. */
	const char *both = "{\"c1\": {\"address\": \"172.17.0.1\", \"services\": [\"Worker\"]},"
			   " \"c2\": {\"address\": \"172.17.0.1\", \"services\": [\"Worker\"]}}";
	cr_expect_eq(apply(files, &r, both), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"172.17.0.1\", 26000], [\"172.17.0.1\", 26000]]}}}");
	expect_fixed_point(files, &r, both);

	cr_expect_eq(apply(files, &r, "{\"c2\": {\"address\": \"172.17.0.1\", \"services\": [\"Worker\"]}}"), 1);
	expect_doc(files, "{\"cms\": {\"core_services\": {\"Worker\": [[\"172.17.0.1\", 26000]]}}}");
}

Test(topology, node_id_template_tells_same_address_apart) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "W", "f/w", "{\"{address}\": \"{node_id}\", \"a\": \"{address}\", \"id\": \"{node_id}\"}");

	cr_expect_eq(apply(files, &r,
			   "{\"x\": {\"address\": \"h\", \"services\": [\"W\"]}, \"y\": {\"address\": \"h\", \"services\": [\"W\"]}}"),
		     1);
	expect_doc(files, "{\"f\": {\"w\": [{\"{address}\": \"x\", \"a\": \"h\", \"id\": \"x\"},"
			  " {\"{address}\": \"y\", \"a\": \"h\", \"id\": \"y\"}]}}");
}

Test(topology, escaped_path_segments) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "W", "my file/a%2Fb/%", "\"{address}\"");

	cr_expect_eq(apply(files, &r, "{" N1 "}"), 0 + 1);
	expect_doc(files, "{\"my file\": {\"a/b\": {\"\": []}}}");
	/* N1 runs Worker, not W: empty list, created once. */
	expect_fixed_point(files, &r, "{" N1 "}");
}

Test(topology, whole_file_as_list) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{\"other\": 1}");
	rule_add(&r, "Worker", "workers", "\"{address}\"");

	cr_expect_eq(apply(files, &r, "{" N1 ", " N3 "}"), 1);
	expect_doc(files, "{\"other\": 1, \"workers\": [\"10.0.0.1\", \"10.0.0.3\"]}");
}

/* ---- malformed records ------------------------------------------------------------- */

Test(topology, malformed_node_records_ignored) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	json_auto_t *nodes = J("{\"ok\": {\"address\": \"good\", \"services\": [\"Worker\"], \"extra\": {\"x\": 1}},"
			       " \"s\": \"not an object\","
			       " \"arr\": [\"Worker\"],"
			       " \"nul\": null,"
			       " \"noaddr\": {\"services\": [\"Worker\"]},"
			       " \"numaddr\": {\"address\": 10, \"services\": [\"Worker\"]},"
			       " \"emptyaddr\": {\"address\": \"\", \"services\": [\"Worker\"]},"
			       " \"nuladdr\": {\"address\": \"a\\u0000b\", \"services\": [\"Worker\"]},"
			       " \"nosvc\": {\"address\": \"x\"},"
			       " \"svcstr\": {\"address\": \"x\", \"services\": \"Worker\"},"
			       " \"svcmixed\": {\"address\": \"x\", \"services\": [\"Worker\", 5]},"
			       " \"svcobj\": {\"address\": \"x\", \"services\": {\"Worker\": true}}}");
	tree_error err;
	rule_add(&r, "Worker", "f/w", "\"{address}\"");

	/* A node id holding NUL cannot be an etcd key component. */
	cr_assert_eq(json_object_setn_new(nodes, "bad\0id", 6, J("{\"address\": \"x\", \"services\": [\"Worker\"]}")), 0);

	cr_expect_eq(topology_apply(files, r.v, r.n, nodes, &err), 1, "%s", err.message);
	expect_doc(files, "{\"f\": {\"w\": [\"good\"]}}");
}

Test(topology, service_names_match_exactly) {
	RULES_AUTO r = {};
	json_auto_t *files = J("{}");
	rule_add(&r, "Worker", "f/w", "\"{address}\"");

	cr_expect_eq(apply(files, &r,
			   "{\"a\": {\"address\": \"a\", \"services\": [\"worker\", \"Worker2\", \"Work\", \"Worker\\u0000\"]}}"),
		     1);
	expect_doc(files, "{\"f\": {\"w\": []}}");
}

/* ---- errors leave the document alone ------------------------------------------------- */

static void expect_einval_untouched(const char *files_text, rules *r, const char *nodes_text, const char *needle) {
	json_auto_t *files = J(files_text), *before = tree_copy(files), *nodes = J(nodes_text);
	tree_error err;

	cr_expect_eq(topology_apply(files, r->v, r->n, nodes, &err), -EINVAL);
	cr_expect(tree_equal(before, files), "files changed on failure");
	cr_expect_not_null(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message, needle);
}

Test(topology, path_through_non_object) {
	RULES_AUTO r = {};
	cms_rules(&r);
	/* LogService's path is fine and Worker's is not: neither is applied. */
	expect_einval_untouched("{\"cms\": {\"core_services\": 5}}", &r, "{" N1 ", " N2 "}", "not an object");
	expect_einval_untouched("{\"cms\": [1]}", &r, "{" N1 "}", "runs through a value that is not an object");
	expect_einval_untouched("{\"cms\": \"text\"}", &r, "{" N1 "}", "not an object");

	json_auto_t *files = J("{\"cms\": {\"core_services\": null}}"), *nodes = J("{" N1 "}");
	tree_error err;
	cr_expect_eq(topology_apply(files, r.v, r.n, nodes, &err), -EINVAL);
	cr_expect_str_eq(err.path, "cms/core_services/Worker");
}

Test(topology, list_place_holding_a_non_list) {
	RULES_AUTO r = {};
	cms_rules(&r);
	expect_einval_untouched("{\"cms\": {\"core_services\": {\"Worker\": {\"a\": 1}, \"LogService\": []}}}", &r, "{" N1 "}",
				"holds a value that is not a list");
	expect_einval_untouched("{\"cms\": {\"core_services\": {\"Worker\": \"10.0.0.1\"}}}", &r, "{}",
				"holds a value that is not a list");
}

Test(topology, bad_rules) {
	RULES_AUTO r = {};
	rule_add(&r, "W", "f/a", "1");
	rule_add(&r, "W", "f//b", "1");
	expect_einval_untouched("{}", &r, "{}", "empty segment");
	rules_free(&r);

	rule_add(&r, "W", "f/%zz", "1");
	expect_einval_untouched("{}", &r, "{}", "bad escape");
	rules_free(&r);

	rule_add(&r, "W", "f/list", "1");
	rule_add(&r, "V", "f/list/inner", "1");
	expect_einval_untouched("{}", &r, "{}", "lies inside the list \"f/list\"");
	rules_free(&r);

	rule_add(&r, "V", "f/list/inner", "1");
	rule_add(&r, "W", "f", "1");
	expect_einval_untouched("{}", &r, "{}", "lies inside the list \"f\"");
	rules_free(&r);

	rule_add(&r, "W", "f/a", "1");
	r.v[0].service = NULL;
	expect_einval_untouched("{}", &r, "{}", "incomplete");
}

Test(topology, bad_arguments) {
	RULES_AUTO r = {};
	json_auto_t *arr = J("[]"), *obj = J("{}"), *str = J("\"x\"");
	tree_error err;
	rule_add(&r, "W", "f/a", "1");

	cr_expect_eq(topology_apply(arr, r.v, r.n, obj, &err), -EINVAL);
	cr_expect_eq(topology_apply(NULL, r.v, r.n, obj, &err), -EINVAL);
	cr_expect_eq(topology_apply(obj, r.v, r.n, str, &err), -EINVAL);
	cr_expect_eq(topology_apply(obj, r.v, r.n, NULL, NULL), -EINVAL);
	cr_expect_eq(topology_apply(obj, NULL, 2, obj, &err), -EINVAL);
	cr_expect_eq(json_object_size(obj), 0);
}

/* ---- the property: random node sets ---------------------------------------------- */

/* A small fixed generator, so failures reproduce on every machine. */
static uint64_t rng_state;
static uint32_t rng(void) {
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) (rng_state >> 33);
}

static const char *const services[] = { "Worker", "LogService", "Checker", "Other" };

/* Random nodes: ids from a small pool (so nodes come and go between
 * rounds), addresses from a smaller one (so some collide), random services,
 * and now and then a malformed record. */
static json_t *random_nodes(void) {
	json_t *nodes = json_object();
	size_t n = rng() % 9;

	for (size_t i = 0; i < n; i++) {
		char id[16], addr[16];
		snprintf(id, sizeof id, "n%u", rng() % 12);
		snprintf(addr, sizeof addr, "10.0.0.%u", rng() % 6);
		json_t *rec;
		if (rng() % 10 == 0)
			rec = json_pack("{s:i}", "address", 5);
		else {
			json_t *svc = json_array();
			for (size_t s = 0; s < ELEMENTSOF(services); s++)
				if (rng() % 2)
					json_array_append_new(svc, json_string(services[s]));
			rec = json_pack("{s:s, s:o}", "address", addr, "services", svc);
		}
		json_object_set_new(nodes, id, rec);
	}
	return nodes;
}

/* What the lists must hold, as a multiset: per valid node and per path,
 * the distinct entries its matching rules make. */
static json_t *expected_multiset(rules *r, json_t *nodes, const char *path) {
	json_t *want = json_array();
	const char *id;
	json_t *rec;

	json_object_foreach(nodes, id, rec) {
		json_t *addr = json_object_get(rec, "address"), *svc = json_object_get(rec, "services");
		if (!json_is_string(addr) || !json_is_array(svc))
			continue;
		json_auto_t *mine = json_array();
		for (size_t k = 0; k < r->n; k++) {
			if (!streq(r->v[k].path, path))
				continue;
			size_t i;
			json_t *s;
			bool runs = false;
			json_array_foreach(svc, i, s)
				runs = runs || streq(json_string_value(s), r->v[k].service);
			if (!runs)
				continue;
			json_auto_t *e = topology_entry(&r->v[k], id, json_string_value(addr));
			bool dup = false;
			json_array_foreach(mine, i, s)
				dup = dup || tree_equal(s, e);
			if (!dup)
				json_array_append(mine, e);
		}
		json_array_extend(want, mine);
	}
	return want;
}

static bool same_multiset(json_t *a, json_t *b) {
	size_t n = json_array_size(a);
	if (n != json_array_size(b))
		return false;
	_cleanup_free_ bool *used = calloc(n + 1, sizeof *used);
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			if (!used[j] && tree_equal(json_array_get(a, i), json_array_get(b, j)))
				used[j] = found = true;
		if (!found)
			return false;
	}
	return true;
}

Test(topology, property_random_node_sets) {
	static const char *const paths[] = { "cms/core_services/Worker", "cms/core_services/LogService", "cms/all" };
	RULES_AUTO r = {};
	rule_add(&r, "Worker", paths[0], "[\"{address}\", 26000]");
	rule_add(&r, "LogService", paths[1], "[\"{address}\", 29000]");
	rule_add(&r, "Worker", paths[2], "{\"host\": \"{address}\", \"as\": \"w\"}");
	rule_add(&r, "Checker", paths[2], "{\"host\": \"{address}\", \"as\": \"c\"}");
	rule_add(&r, "Other", paths[2], "{\"host\": \"{address}\", \"as\": \"w\"}");

	rng_state = 20261126;
	json_auto_t *files = J("{\"cms\": {\"keep\": true}}");

	for (int round = 0; round < 2000; round++) {
		json_auto_t *nodes = random_nodes();
		json_auto_t *before = tree_copy(files);
		tree_error err;

		/* Now and then someone edits a list by hand: shuffle it. */
		if (round % 7 == 3) {
			json_t *l = json_object_get(json_object_get(json_object_get(files, "cms"), "core_services"), "Worker");
			size_t n = json_array_size(l);
			for (size_t i = n; i > 1; i--) {
				size_t j = rng() % i;
				json_t *a = json_incref(json_array_get(l, i - 1)), *b = json_incref(json_array_get(l, j));
				json_array_set_new(l, i - 1, b);
				json_array_set_new(l, j, a);
			}
			json_decref(before);
			before = tree_copy(files);
		}

		int ret = topology_apply(files, r.v, r.n, nodes, &err);
		cr_assert_geq(ret, 0, "round %d: %s", round, err.message);
		cr_assert_eq(ret == 1, !tree_equal(before, files), "round %d: return %d disagrees with the change", round,
			     ret);
		cr_assert_eq(json_object_get(json_object_get(files, "cms"), "keep"), json_true());

		for (size_t p = 0; p < ELEMENTSOF(paths); p++) {
			json_auto_t *segs = NULL;
			cr_assert_eq(tree_path_parse(paths[p], &segs, NULL), 0);
			json_t *got = tree_get(files, segs), *old = tree_get(before, segs);
			json_auto_t *want = expected_multiset(&r, nodes, paths[p]);
			_cleanup_free_ char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
			_cleanup_free_ char *w = json_dumps(want, JSON_COMPACT);
			cr_assert(json_is_array(got), "round %d: %s is no list", round, paths[p]);
			cr_assert(same_multiset(got, want), "round %d %s: got %s want %s", round, paths[p], g, w);

			/* Order: the longest prefix of the new list that is a
			 * subsequence of the old one is what stayed, in its old
			 * order... */
			size_t kept = 0;
			for (size_t i = 0; i < json_array_size(old) && kept < json_array_size(got); i++)
				if (tree_equal(json_array_get(old, i), json_array_get(got, kept)))
					kept++;
			/* ...and whatever follows it is new: no entry there could
			 * have stayed, i.e. the old list held no more copies of
			 * it than the prefix kept. */
			for (size_t t = kept; t < json_array_size(got); t++) {
				json_t *e = json_array_get(got, t);
				size_t in_old = 0, in_prefix = 0, s;
				json_t *x;
				json_array_foreach(old, s, x)
					in_old += tree_equal(x, e);
				for (s = 0; s < kept; s++)
					in_prefix += tree_equal(json_array_get(got, s), e);
				cr_assert_eq(in_old, in_prefix, "round %d %s: entry at %zu could have kept its place: %s", round,
					     paths[p], t, g);
			}
		}

		/* Idempotent: the same nodes again change nothing. */
		json_auto_t *once = tree_copy(files);
		cr_assert_eq(topology_apply(files, r.v, r.n, nodes, &err), 0, "round %d: not idempotent", round);
		cr_assert(tree_equal(once, files), "round %d: second run changed the document", round);
	}
}

/* Two nodes racing from the same snapshot with the same view of the nodes
 * propose the same document, whatever the rule order each has. */
Test(topology, rule_order_only_orders_within_a_node) {
	RULES_AUTO a = {};
	RULES_AUTO b = {};
	rule_add(&a, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");
	rule_add(&a, "LogService", "cms/core_services/LogService", "[\"{address}\", 29000]");
	rule_add(&b, "LogService", "cms/core_services/LogService", "[\"{address}\", 29000]");
	rule_add(&b, "Worker", "cms/core_services/Worker", "[\"{address}\", 26000]");
	json_auto_t *fa = J("{}"), *fb = J("{}");

	apply(fa, &a, "{" N1 ", " N2 ", " N3 "}");
	apply(fb, &b, "{" N3 ", " N2 ", " N1 "}");
	cr_expect(tree_equal(fa, fb));
}
