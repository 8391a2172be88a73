/* test_ctl_schedule.c — `corralctl scale schedule add|list|remove`, the
 * built binary against a real etcd: the round trip through
 * pools.POOL.schedule of scale/policy, that the stored entries are what the
 * engine's codec reads, that bad input exits 2 naming the flag and writes
 * nothing, that concurrent adds all land (compare-and-set, re-read on a
 * loss), -n, and an unreachable etcd (1). */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-test.h"
#include "scale-forecast.h"
#include "scale.h"

#define PREFIX "/corral/t"

static hx_etcd *etcd;
static char *dir;

static void up(void) {
	et_fixture_up(&etcd, &dir, "ctl-schedule", 1);
}

static void down(void) {
	et_fixture_down(&etcd, &dir);
}

TestSuite(ctl_schedule, .init = up, .fini = down, .timeout = 120);

static const char policy_two[] =
	"{\"pools\": {\"web\": {\"launch_template\": \"lt-1\", \"instance_types\": [\"m5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}],"
	" \"min\": 1, \"max\": 40, \"jobs_per_host\": 4},"
	" \"batch\": {\"launch_template\": \"lt-2\", \"instance_types\": [\"c5.large\"],"
	" \"subnets\": [{\"id\": \"subnet-b\", \"availability_zone\": \"us-east-1b\"}],"
	" \"min\": 0, \"max\": 10}}}";

#define CTL(out, err, ...) \
	ctlt_run(hx_etcd_endpoints(etcd), PREFIX, (out), (err), (char *const[]){ __VA_ARGS__, NULL })

static json_t *parse(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, text);
	return j;
}

static json_t *stored_policy(void) {
	_cleanup_free_ char *v = hx_etcd_get(etcd, PREFIX "/scale/policy");
	cr_assert(v && *v, "no policy stored");
	return parse(v);
}

static json_t *stored_schedule(const char *pool) {
	json_auto_t *doc = stored_policy();
	return json_incref(json_object_get(json_object_get(json_object_get(doc, "pools"), pool), "schedule"));
}

static void set_policy(const char *text) {
	_cleanup_free_ char *file = hx_fmt("%s/policy.json", dir), *err = NULL;
	cr_assert_eq(hx_write_file(file, text), 0);
	cr_assert_eq(CTL(NULL, &err, "scale", "policy", "set", file), 0, "%s", err);
}

Test(ctl_schedule, add_list_remove_round_trip) {
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *out = NULL, *js = NULL, *e4 = NULL, *e5 = NULL;

	set_policy(policy_two);
	cr_assert_eq(CTL(NULL, &e1, "scale", "schedule", "add", "web", "--at", "2099-01-05T10:00:00Z", "--min", "25",
			 "--duration", "5h", "--lead", "15m"),
		     0, "%s", e1);
	cr_assert_eq(CTL(NULL, &e2, "scale", "schedule", "add", "web", "--cron", "0 9,14 * * 1-5", "--min", "20",
			 "--duration", "2h"),
		     0, "%s", e2);
	cr_assert_eq(CTL(NULL, &e3, "scale", "schedule", "add", "batch", "--cron", "30 2 * * *", "--min", "3"), 0, "%s",
		     e3);

	/* stored as the engine's codec reads it: seconds, the defaults written */
	json_auto_t *web = stored_schedule("web"), *batch = stored_schedule("batch");
	json_auto_t *want_web = parse("[{\"at\": \"2099-01-05T10:00:00Z\", \"min\": 25, \"duration\": 18000, \"lead\": 900},"
				      " {\"cron\": \"0 9,14 * * 1-5\", \"min\": 20, \"duration\": 7200, \"lead\": 900}]");
	json_auto_t *want_batch = parse("[{\"cron\": \"30 2 * * *\", \"min\": 3, \"duration\": 3600, \"lead\": 900}]");
	cr_assert(json_equal(web, want_web), "web: %s", json_dumps(web, JSON_COMPACT));
	cr_assert(json_equal(batch, want_batch), "batch: %s", json_dumps(batch, JSON_COMPACT));

	/* list: both pools, by name; then one pool; -o json */
	cr_assert_eq(CTL(&out, &e4, "scale", "schedule", "list"), 0, "%s", e4);
	cr_assert(strstr(out, "POOL") && strstr(out, "NEXT-START"), "%s", out);
	const char *b = strstr(out, "\nbatch "), *w = strstr(out, "\nweb ");
	cr_assert(b && w && b < w, "pools by name: %s", out);
	cr_assert(strstr(out, "2099-01-05T09:45:00Z"), "the at entry starts 15m ahead: %s", out);
	cr_assert(strstr(out, "cron '0 9,14 * * 1-5'") && strstr(out, "5h") && strstr(out, "2h"), "%s", out);
	cr_assert_eq(CTL(&js, NULL, "-o", "json", "scale", "schedule", "list", "web"), 0);
	json_auto_t *rows = parse(js);
	cr_assert_eq(json_array_size(rows), 2, "%s", js);
	json_t *r0 = json_array_get(rows, 0);
	cr_assert_str_eq(json_string_value(json_object_get(r0, "pool")), "web");
	cr_assert_eq(json_integer_value(json_object_get(r0, "index")), 0);
	cr_assert_str_eq(json_string_value(json_object_get(r0, "next_start")), "2099-01-05T09:45:00Z");
	cr_assert(json_is_false(json_object_get(r0, "active")));
	/* a weekday cron fires within a week */
	cr_assert(json_is_string(json_object_get(json_array_get(rows, 1), "next_start")), "%s", js);

	/* remove web's first: the cron entry becomes 0 */
	cr_assert_eq(CTL(NULL, &e5, "scale", "schedule", "remove", "web", "0"), 0, "%s", e5);
	json_decref(web);
	web = stored_schedule("web");
	cr_assert_eq(json_array_size(web), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(web, 0), "cron")), "0 9,14 * * 1-5");
	/* the last one gone: no schedule key left */
	cr_assert_eq(CTL(NULL, NULL, "scale", "schedule", "remove", "web", "0"), 0);
	json_decref(web);
	web = stored_schedule("web");
	cr_assert_null(web);
	_cleanup_free_ char *none = NULL;
	cr_assert_eq(CTL(&none, NULL, "scale", "schedule", "list", "web"), 0);
	cr_assert_str_eq(none, "no schedule for pool web\n");
}

/* The entries written are the engine's: the whole stored policy parses,
 * and (once the codec reads schedules) each entry comes back as given. */
Test(ctl_schedule, stored_policy_is_what_the_codec_reads) {
	_cleanup_free_ char *err = NULL;

	set_policy(policy_two);
	cr_assert_eq(CTL(NULL, &err, "scale", "schedule", "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "25",
			 "--duration", "18000s"),
		     0, "%s", err);
	json_auto_t *doc = stored_policy();
	scale_policy p = {};
	scale_error e = {};
	if (scale_policy_from_json(doc, &p, &e) < 0) {
		/* the engine's codec (i17-engine) has not landed: it must be the
		 * schedule key alone it does not know */
		cr_assert_str_eq(e.key, "pools.web.schedule", "%s", e.message);
		return;
	}
	const scale_pool *web = scale_policy_find(&p, "web");
	cr_assert_not_null(web);
	cr_assert_eq(web->n_schedule, 1);
	cr_assert_null(web->schedule[0].cron);
	cr_assert_eq(web->schedule[0].at, 1767607200);  /* 2026-01-05T10:00:00Z */
	cr_assert_eq(web->schedule[0].min, 25);
	cr_assert_eq(web->schedule[0].duration, 18000);
	cr_assert_eq(web->schedule[0].lead, 900);
	scale_policy_done(&p);
}

/* Bad input: exit 2, a message naming the flag, the revision unchanged. */
Test(ctl_schedule, bad_input_exits_2_and_writes_nothing) {
	set_policy(policy_two);
	int64_t rev = et_revision(etcd);
	static const struct {
		const char *args[12];
		const char *says;
	} cases[] = {
		{ { "add", "web", "--cron", "0 25 * * *", "--min", "2" }, "--cron" },
		{ { "add", "web", "--cron", "0 10 * *", "--min", "2" }, "--cron" },
		{ { "add", "web", "--at", "2026-13-05T10:00:00Z", "--min", "2" }, "--at" },
		{ { "add", "web", "--at", "tomorrow", "--min", "2" }, "--at" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "0" }, "--min" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "x" }, "--min" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z" }, "--min" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--cron", "0 10 * * *", "--min", "2" }, "--cron" },
		{ { "add", "web", "--min", "2" }, "--at" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "2", "--duration", "soon" }, "--duration" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "2", "--duration", "0s" }, "--duration" },
		{ { "add", "web", "--at", "2026-01-05T10:00:00Z", "--min", "2", "--lead", "-5m" }, "--lead" },
		{ { "add", "nosuch", "--at", "2026-01-05T10:00:00Z", "--min", "2" }, "no pool 'nosuch'" },
		{ { "add", "batch", "--at", "2026-01-05T10:00:00Z", "--min", "2", "--lead", "31d" }, "--lead" },
		/* a minimum the pool's max never allows */
		{ { "add", "batch", "--at", "2026-01-05T10:00:00Z", "--min", "11" }, "--min 11 is above pool batch's max" },
		{ { "remove", "web", "0" }, "no schedule" },
		{ { "remove", "web", "x" }, "INDEX" },
		{ { "remove", "nosuch", "0" }, "no pool 'nosuch'" },
		{ { "list", "nosuch" }, "no pool 'nosuch'" },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *args[20] = { "-e", (char *) hx_etcd_endpoints(etcd), "-p", PREFIX, "scale", "schedule" };
		size_t n = 6;
		for (size_t j = 0; cases[i].args[j]; j++)
			args[n++] = (char *) cases[i].args[j];
		_cleanup_free_ char *err = NULL;
		cr_assert_eq(ctlt_run(NULL, NULL, NULL, &err, args), 2, "case %zu: %s", i, err);
		cr_assert(strstr(err, cases[i].says), "case %zu names %s: %s", i, cases[i].says, err);
	}
	cr_assert_eq(et_revision(etcd), rev, "something was written");
}

Test(ctl_schedule, no_policy_exits_2_and_dry_run_writes_nothing) {
	_cleanup_free_ char *e1 = NULL, *out = NULL, *e2 = NULL;

	cr_assert_eq(CTL(NULL, &e1, "scale", "schedule", "add", "web", "--cron", "0 10 * * *", "--min", "2"), 2);
	cr_assert(strstr(e1, "no scaling policy"), "%s", e1);
	cr_assert_eq(CTL(NULL, NULL, "scale", "schedule", "list"), 2);

	set_policy(policy_two);
	int64_t rev = et_revision(etcd);
	cr_assert_eq(CTL(&out, &e2, "-n", "scale", "schedule", "add", "web", "--cron", "0 10 * * *", "--min", "2"), 0,
		     "%s", e2);
	cr_assert(strstr(out, "dry run") && strstr(out, "\"schedule\"") && strstr(out, "0 10 * * *"),
		  "prints the new policy: %s", out);
	cr_assert_eq(et_revision(etcd), rev, "-n wrote");
}

/* Adds running at once all land: each write is a compare-and-set on the
 * revision it read, and a lost one starts over from the winner's. */
Test(ctl_schedule, concurrent_adds_all_land) {
	enum { N = 4 };
	pid_t pids[N];

	set_policy(policy_two);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			char min[16];
			snprintf(min, sizeof min, "%d", i + 1);
			_exit(CTL(NULL, NULL, "-v", "scale", "schedule", "add", "web", "--cron", "0 10 * * *", "--min",
				  min));
		}
	}
	for (int i = 0; i < N; i++) {
		int st;
		cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "add %d failed: %d", i, st);
	}
	json_auto_t *web = stored_schedule("web");
	cr_assert_eq(json_array_size(web), N, "an add was lost: %s", json_dumps(web, JSON_COMPACT));
	unsigned seen = 0;
	size_t i;
	json_t *e;
	json_array_foreach(web, i, e)
		seen |= 1u << json_integer_value(json_object_get(e, "min"));
	cr_assert_eq(seen, 0x1eu, "each add once: %s", json_dumps(web, JSON_COMPACT));
}

Test(ctl_schedule, unreachable_etcd_exits_1) {
	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", hx_free_port());
	char *const add[] = { "--timeout", "2s", "scale", "schedule", "add", "web", "--cron", "0 10 * * *", "--min", "2",
			      NULL };
	char *const list[] = { "--timeout", "2s", "scale", "schedule", "list", NULL };
	cr_assert_eq(ctlt_run(ep, PREFIX, NULL, NULL, add), 1);
	cr_assert_eq(ctlt_run(ep, PREFIX, NULL, NULL, list), 1);
	/* input errors are found before etcd is asked */
	char *const bad[] = { "--timeout", "2s", "scale", "schedule", "add", "web", "--cron", "bad", "--min", "2", NULL };
	cr_assert_eq(ctlt_run(ep, PREFIX, NULL, NULL, bad), 2);
}

/* ---- the traces of issue 17 (no etcd) -------------------------------------------------- */

TestSuite(ctl_schedule_traces, .timeout = 120);

/* The largest running count of a trace within [from, to) seconds, and the
 * smallest; rows counted. */
static size_t trace_range(const char *text, long from, long to, int *lo, int *hi) {
	size_t rows = 0;
	*lo = 1 << 30;
	*hi = -1;
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		long t;
		int running, queued;
		if (sscanf(l, "%ld,%d,%d", &t, &running, &queued) != 3)
			continue;
		rows++;
		if (t >= from && t < to) {
			*lo = running < *lo ? running : *lo;
			*hi = running > *hi ? running : *hi;
		}
	}
	return rows;
}

/* scripts/make-traces writes the shipped files byte for byte (fixed
 * seeds), `scale simulate` reads each, and each has the shape
 * tests/traces/README gives. */
Test(ctl_schedule_traces, made_traces_are_reproducible_and_simulate_reads_them) {
	static const char *const names[] = { "contest-day.csv", "exam-week.csv", "daynight.csv" };
	_cleanup_free_ char *tmp = hx_mkdtemp("traces"), *script = hx_fmt("%s/scripts/make-traces", hx_srcdir());
	_cleanup_free_ char *err = NULL;
	char *const argv[] = { "python3", script, tmp, NULL };

	cr_assert_eq(hx_run_capture(NULL, &err, 60 * USEC_PER_SEC, argv, NULL), 0, "%s", err);
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		_cleanup_free_ char *shipped = hx_fmt("%s/tests/traces/%s", hx_srcdir(), names[i]);
		_cleanup_free_ char *made = hx_fmt("%s/%s", tmp, names[i]);
		_cleanup_free_ char *a = hx_read_file(shipped, NULL), *b = hx_read_file(made, NULL);
		cr_assert(a && b, "%s", names[i]);
		cr_assert_str_eq(a, b, "%s: scripts/make-traces makes other bytes", names[i]);
		_cleanup_free_ char *out = NULL, *e = NULL;
		/* steps of 300 s: reading is what is tested here, and a week at
		 * 60 s takes half a minute under the sanitizers */
		char *const sim[] = { "scale", "simulate", "--step", "300", "--trace", shipped, NULL };
		cr_assert_eq(ctlt_run(NULL, NULL, &out, &e, sim), 0, "%s: %s", names[i], e);
		cr_assert(strstr(out, "jobs n+2sqrt(n)"), "%s: %s", names[i], out);
	}
	hx_rm_tmp(tmp);

	int lo, hi;
	_cleanup_free_ char *cpath = hx_fmt("%s/tests/traces/contest-day.csv", hx_srcdir());
	_cleanup_free_ char *epath = hx_fmt("%s/tests/traces/exam-week.csv", hx_srcdir());
	_cleanup_free_ char *dpath = hx_fmt("%s/tests/traces/daynight.csv", hx_srcdir());
	_cleanup_free_ char *contest = hx_read_file(cpath, NULL), *exam = hx_read_file(epath, NULL),
			    *dn = hx_read_file(dpath, NULL);
	cr_assert(contest && exam && dn);

	cr_assert_eq(trace_range(contest, 0, 36000, &lo, &hi), 1440);
	cr_assert_leq(hi, 10, "quiet before 10:00");
	trace_range(contest, 36000, 54000, &lo, &hi);
	cr_assert(lo >= 85 && hi <= 115, "the contest at ~100: %d..%d", lo, hi);
	trace_range(contest, 54000, 86400, &lo, &hi);
	cr_assert_leq(hi, 10, "quiet after 15:00");

	/* exams on the weekdays (Monday 09:00-11:00, Friday 14:00-16:00), none
	 * on Saturday */
	cr_assert_eq(trace_range(exam, 9 * 3600, 11 * 3600, &lo, &hi), 7 * 288);
	cr_assert(lo >= 55 && hi <= 85, "Monday's first exam: %d..%d", lo, hi);
	trace_range(exam, 4 * 86400 + 14 * 3600, 4 * 86400 + 16 * 3600, &lo, &hi);
	cr_assert(lo >= 55 && hi <= 85, "Friday's second exam: %d..%d", lo, hi);
	trace_range(exam, 5 * 86400, 6 * 86400, &lo, &hi);
	cr_assert_leq(hi, 6, "Saturday: base load only");

	/* night low, day high, on each of the 3 days */
	cr_assert_eq(trace_range(dn, 0, 3 * 86400, &lo, &hi), 3 * 1440);
	for (long d = 0; d < 3; d++) {
		trace_range(dn, d * 86400 + 2 * 3600, d * 86400 + 4 * 3600, &lo, &hi);
		cr_assert_leq(hi, 14, "day %ld night: %d", d, hi);
		trace_range(dn, d * 86400 + 14 * 3600, d * 86400 + 16 * 3600, &lo, &hi);
		cr_assert(lo >= 45 && hi <= 72, "day %ld afternoon: %d..%d", d, lo, hi);
	}
}
