/* test_deployment_decide.c — the lifecycle decision (src/deployment/
 * decide.c) over simulated time: days advance in the test, the "host"
 * answers every order as a node would, and each notice, order and state
 * is checked. Pure: no clock, no sleeping. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "macro.h"

#define GIB (INT64_C(1) << 30)
#define HOUR 3600
#define DAY 86400
#define T0 ((time_t) 1796083200)        /* 2026-12-01T00:00:00Z */
#define MAXD 8

/* A simulated cluster: records, reports, hosts, and what happened. */
typedef struct sim {
	deployment_policy policy;
	deployment d[MAXD];
	size_t n;
	deployment_report rep[MAXD];
	const deployment_report *repp[MAXD];
	deployment_host hosts[4];
	size_t n_hosts;
	bool maintenance;
	time_t now;
	char log[8192];         /* "notice KIND ID\n", "hook HOOK ID\n" */
	int fail[_DEPLOYMENT_HOOK_MAX];         /* the host fails this many more of each */
	bool hold[_DEPLOYMENT_HOOK_MAX];        /* the host leaves these running */
	deployment_output out;
} sim;

static sim S;

static void sim_init(void) {
	deployment_output_done(&S.out);
	deployment_policy_done(&S.policy);
	for (size_t i = 0; i < S.n; i++) {
		deployment_done(&S.d[i]);
		deployment_report_done(&S.rep[i]);
	}
	memset(&S, 0, sizeof S);
	cr_assert_eq(deployment_policy_defaults(&S.policy), 0);
	S.now = T0;
	S.hosts[0] = (deployment_host) { .node_id = "n1", .memory = 8 * GIB, .threshold = 0.8, .placeable = true };
	S.n_hosts = 1;
}

static void sim_fini(void) {
	sim_init();
	deployment_policy_done(&S.policy);
}

TestSuite(deployment_decide, .init = sim_init, .fini = sim_fini);

/* "WHAT A B\n" into the log */
static void log_line(const char *what, const char *a, const char *b) {
	size_t l = strlen(S.log);
	snprintf(S.log + l, sizeof S.log - l, "%s %s %s\n", what, a, b);
}

/* A pending deployment as `corralctl deployment add` writes it. */
static deployment *add(const char *id, int64_t memory, time_t license) {
	cr_assert_lt(S.n, MAXD);
	deployment *d = &S.d[S.n++];
	*d = (deployment) { .id = strdup(id), .memory = memory, .state = DEPLOYMENT_PENDING, .created = S.now,
			    .state_since = S.now, .last_active = S.now, .license_expires = license };
	d->owner = strdup("owner@example.com");
	return d;
}

static deployment *D(const char *id) {
	for (size_t i = 0; i < S.n; i++)
		if (strcmp(S.d[i].id, id) == 0)
			return &S.d[i];
	cr_assert_fail("no deployment %s", id);
	return NULL;
}

/* One decision; its actions stored as the leader would, notices logged. */
static void decide(void) {
	int64_t mods[MAXD] = {};
	for (size_t i = 0; i < S.n; i++)
		S.repp[i] = S.rep[i].seq ? &S.rep[i] : NULL;
	deployment_input in = { .policy = &S.policy, .deployments = S.d, .mod_revisions = mods, .reports = S.repp,
				.n_deployments = S.n, .hosts = S.hosts, .n_hosts = S.n_hosts,
				.maintenance = S.maintenance, .now = S.now };
	deployment_output_done(&S.out);
	cr_assert_eq(deployment_decide(&in, &S.out), 0);
	for (size_t a = 0; a < S.out.n_actions; a++) {
		deployment_action *x = &S.out.actions[a];
		deployment *d = D(x->record.id);
		for (size_t k = 0; k < x->n_notices; k++)
			log_line("notice", x->notices[k], d->id);
		deployment_done(d);
		cr_assert_eq(deployment_copy(&x->record, d), 0);
	}
}

/* The host answers each order it has not answered: done, or failed while
 * fail[hook] > 0; a held hook stays running. */
static void host_acts(void) {
	for (size_t i = 0; i < S.n; i++) {
		deployment *d = &S.d[i];
		if (!d->order.seq || S.rep[i].seq == d->order.seq || S.hold[d->order.hook])
			continue;
		deployment_report_done(&S.rep[i]);
		bool fail = S.fail[d->order.hook] > 0;
		S.fail[d->order.hook] -= fail;
		log_line("hook", deployment_hook_to_string(d->order.hook), d->id);
		S.rep[i] = (deployment_report) { .seq = d->order.seq, .hook = d->order.hook, .host = strdup(d->order.host),
						 .state = fail ? DEPLOYMENT_REPORT_FAILED : DEPLOYMENT_REPORT_DONE,
						 .started = S.now, .ended = S.now };
		if (fail)
			S.rep[i].error = strdup("exit status 1");
		else if (d->order.hook == DEPLOYMENT_HOOK_BACKUP) {
			char b[64];
			snprintf(b, sizeof b, "s3://backups/%s", d->id);
			S.rep[i].output = strdup(b);
		}
	}
}

/* Decide and let the host act until nothing moves, then the clock goes on
 * by step until until. */
static void settle(void) {
	for (int i = 0; i < 20; i++) {
		decide();
		size_t before = strlen(S.log);
		host_acts();
		if (S.out.n_actions == 0 && strlen(S.log) == before)
			return;
	}
	cr_assert_fail("no rest");
}

static void run_until(time_t until, time_t step) {
	for (; S.now <= until; S.now += step)
		settle();
	S.now -= step;
}

/* run_until() with every deployment used at each step (only the license
 * or the operator ends it). */
static void run_used_until(time_t until) {
	for (; S.now <= until; S.now += HOUR) {
		for (size_t i = 0; i < S.n; i++)
			S.d[i].last_active = S.now;
		settle();
	}
	S.now -= HOUR;
}

static unsigned count(const char *line) {
	unsigned n = 0;
	for (const char *p = S.log; (p = strstr(p, line)); p += strlen(line))
		n++;
	return n;
}

/* The log's lines that start with prefix, in order, joined by ' '. */
static char *only(const char *prefix) {
	static char buf[4096];
	size_t l = 0;
	buf[0] = '\0';
	for (const char *p = S.log; *p;) {
		const char *e = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			l += (size_t) snprintf(buf + l, sizeof buf - l, "%s%.*s", l ? " | " : "", (int) (e - p), p);
		p = e + 1;
	}
	return buf;
}

/* ---- whole lives ---- */

Test(deployment_decide, expiry_life_each_notice_once_backup_before_remove) {
	add("acme", GIB, T0 + 10 * DAY);
	/* used every day: only the license ends it */
	run_used_until(T0 + 12 * DAY);
	cr_expect_str_eq(only("notice"), "notice expiry_7d acme | notice expiry_1d acme | notice expired acme | notice removed acme");
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook backup acme | hook remove acme");
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED);
	cr_expect_null(d->host);
	cr_expect_str_eq(d->last_host, "n1");
	cr_expect_str_eq(d->backup, "s3://backups/acme");
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_EXPIRED);
	cr_expect_eq(deployment_notice_sent(d, "expiry_7d"), T0 + 3 * DAY);
	cr_expect_eq(deployment_notice_sent(d, "expiry_1d"), T0 + 9 * DAY);
	cr_expect_eq(deployment_notice_sent(d, "expired"), T0 + 10 * DAY);
}

Test(deployment_decide, inactivity_life_warning_maintenance_then_removal) {
	add("acme", GIB, 0);
	run_until(T0 + 20 * DAY, HOUR);
	cr_expect_str_eq(only("notice"), "notice inactive_warning acme | notice maintenance acme | notice removed acme");
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook maintenance_on acme | hook backup acme | hook remove acme");
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_INACTIVE);
	/* the warning a day ahead, maintenance at 7 days, removal 7 days later */
	cr_expect_eq(deployment_notice_sent(d, "inactive_warning"), T0 + 6 * DAY);
	cr_expect_eq(deployment_notice_sent(d, "maintenance"), T0 + 7 * DAY);
	cr_expect_eq(d->state_since, T0 + 14 * DAY);
}

/* ---- reclaim at each stage ---- */

Test(deployment_decide, reclaim_after_the_warning_starts_a_new_idle_spell) {
	add("acme", GIB, 0);
	run_until(T0 + 6 * DAY + 2 * HOUR, HOUR);
	cr_assert_eq(count("notice inactive_warning"), 1);
	D("acme")->last_active = S.now;         /* used again */
	run_until(T0 + 13 * DAY, HOUR);         /* the new spell's warning at 12 d 2 h */
	cr_expect_eq(count("hook maintenance_on"), 0, "no maintenance in the old spell");
	cr_expect_eq(count("notice inactive_warning"), 2, "the new spell warns again, once");
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
}

Test(deployment_decide, reclaim_in_maintenance_turns_it_back_on) {
	add("acme", GIB, 0);
	run_until(T0 + 8 * DAY, HOUR);
	cr_assert_eq(D("acme")->state, DEPLOYMENT_MAINTENANCE);
	D("acme")->last_active = S.now;         /* corralctl deployment reclaim */
	settle();
	cr_expect_eq(count("hook maintenance_off"), 1);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(deployment_notice_sent(D("acme"), "maintenance"), 0, "a new spell may pause it again");
	run_until(T0 + 30 * DAY, HOUR);
	cr_expect_eq(count("notice maintenance"), 2, "the next spell: maintenance again, once");
}

Test(deployment_decide, reclaim_while_the_backup_runs_cancels_the_removal) {
	add("acme", GIB, 0);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_BACKUP);
	cr_assert_eq(D("acme")->removal, DEPLOYMENT_REMOVAL_INACTIVE);
	D("acme")->last_active = S.now;
	settle();
	cr_expect_eq(count("hook maintenance_off"), 0, "the backup under way ends first");
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	settle();
	cr_expect_eq(count("hook backup"), 1);
	cr_expect_eq(count("hook maintenance_off"), 1);
	cr_expect_eq(count("hook remove"), 0);
	cr_expect_eq(D("acme")->removal, DEPLOYMENT_REMOVAL_NONE);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
}

Test(deployment_decide, reclaim_once_remove_is_ordered_is_too_late) {
	add("acme", GIB, 0);
	S.hold[DEPLOYMENT_HOOK_REMOVE] = true;
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_REMOVE);
	D("acme")->last_active = S.now;
	S.hold[DEPLOYMENT_HOOK_REMOVE] = false;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(count("hook maintenance_off"), 0);
}

Test(deployment_decide, reclaim_after_the_backup_before_remove_is_ordered_keeps_it) {
	add("acme", GIB, 0);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_BACKUP);
	S.n_hosts = 0;          /* its node goes away just as the backup ends */
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	settle();
	cr_assert_str_eq(D("acme")->backup, "s3://backups/acme");
	cr_assert_eq(D("acme")->order.seq, 0, "no remove ordered to a node that is not there");
	D("acme")->last_active = S.now;         /* reclaimed with the backup done */
	settle();
	cr_expect_eq(D("acme")->removal, DEPLOYMENT_REMOVAL_NONE, "the removal is cancelled at once");
	S.n_hosts = 1;
	settle();
	cr_expect_eq(count("hook remove"), 0);
	cr_expect_eq(count("hook maintenance_off"), 1);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
}

Test(deployment_decide, reclaim_after_a_failed_remove_is_too_late) {
	add("acme", GIB, 0);
	S.fail[DEPLOYMENT_HOOK_REMOVE] = 1;
	S.policy.retry = DAY;   /* not retried within the hour steps */
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(count("hook remove"), 1);
	cr_assert_str_eq(D("acme")->error, "exit status 1");
	D("acme")->last_active = S.now;         /* the remove may have run halfway */
	settle();
	cr_expect_eq(D("acme")->removal, DEPLOYMENT_REMOVAL_INACTIVE);
	S.now = D("acme")->retry_at;
	settle();
	cr_expect_eq(count("hook maintenance_off"), 0);
	cr_expect_eq(count("hook remove"), 2);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
}

/* ---- failures ---- */

Test(deployment_decide, a_failed_backup_blocks_removal_and_retries_with_back_off) {
	add("acme", GIB, T0 + DAY);
	S.fail[DEPLOYMENT_HOOK_BACKUP] = 3;
	S.now = T0;
	settle();
	S.now = T0 + DAY;
	settle();
	deployment *d = D("acme");
	cr_assert_eq(count("hook backup"), 1);
	cr_expect_eq(d->state, DEPLOYMENT_EXPIRED);
	cr_expect_str_eq(d->error, "exit status 1");
	cr_expect_eq(d->attempts, 1);
	cr_expect_eq(d->retry_at, T0 + DAY + 600);
	cr_expect_eq(S.out.wake, T0 + DAY + 600, "woken for the retry");
	cr_expect_eq(S.out.failing, 1);
	S.now = T0 + DAY + 599;
	settle();
	cr_expect_eq(count("hook backup"), 1, "not before the retry time");
	S.now = T0 + DAY + 600;
	settle();
	cr_expect_eq(D("acme")->retry_at, T0 + DAY + 600 + 1200, "doubling");
	S.now = D("acme")->retry_at;
	settle();
	cr_expect_eq(D("acme")->retry_at, S.now + 2400);
	cr_expect_eq(count("hook remove"), 0, "never removed without a backup");
	S.now = D("acme")->retry_at;
	settle();
	d = D("acme");
	cr_expect_eq(count("hook backup"), 4);
	cr_expect_eq(count("hook remove"), 1);
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED);
	cr_expect_null(d->error);
	cr_expect_eq(d->attempts, 0);
}

Test(deployment_decide, a_backup_without_location_is_a_failure) {
	add("acme", GIB, 0);
	settle();
	deployment *d = D("acme");
	d->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	d->removal_since = S.now;
	decide();
	size_t i = D("acme") - S.d;
	cr_assert_eq(S.d[i].order.hook, DEPLOYMENT_HOOK_BACKUP);
	deployment_report_done(&S.rep[i]);     /* the deploy's report */
	S.rep[i] = (deployment_report) { .seq = S.d[i].order.seq, .hook = DEPLOYMENT_HOOK_BACKUP,
					 .state = DEPLOYMENT_REPORT_DONE, .output = strdup("") };
	decide();
	cr_expect_str_eq(D("acme")->error, "the backup hook printed no backup location");
	cr_expect_eq(D("acme")->order.seq, 0);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
}

Test(deployment_decide, operator_removal_without_backup) {
	add("acme", GIB, 0);
	settle();
	D("acme")->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	D("acme")->removal_since = S.now;
	D("acme")->removal_skip_backup = true;
	settle();
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook remove acme");
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
	cr_expect_null(D("acme")->backup);
}

/* Nothing on a host: removed at once, not placed first to be backed up. */
Test(deployment_decide, removing_an_unplaced_deployment_removes_it_at_once) {
	S.n_hosts = 0;
	add("acme", GIB, 0);
	decide();
	cr_assert_null(D("acme")->host);
	cr_expect_eq(S.out.unplaced, 1);
	D("acme")->removal = DEPLOYMENT_REMOVAL_OPERATOR;     /* as a host comes */
	D("acme")->removal_since = S.now;
	S.n_hosts = 1;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
	cr_expect_null(D("acme")->host);
	cr_expect_str_eq(only("hook"), "");
	cr_expect_eq(S.out.unplaced, 0);
}

Test(deployment_decide, back_off_doubles_up_to_eight_times_the_retry) {
	add("acme", GIB, 0);
	settle();
	D("acme")->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	D("acme")->removal_since = S.now;
	S.fail[DEPLOYMENT_HOOK_BACKUP] = 6;
	const int64_t want[] = { 600, 1200, 2400, 4800, 4800, 4800 };
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		settle();
		cr_expect_eq(D("acme")->attempts, (int) i + 1);
		cr_expect_eq(D("acme")->retry_at - S.now, want[i], "attempt %zu", i + 1);
		S.now = D("acme")->retry_at;
	}
	settle();
	cr_expect_eq(count("hook backup"), 7);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
}

/* A backup belongs to its removal: one from before (an earlier removal
 * that was reclaimed, a deployment added again) does not let remove run. */
Test(deployment_decide, a_backup_taken_for_an_earlier_removal_does_not_count) {
	add("acme", GIB, T0 + 30 * DAY);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_BACKUP, "not reclaimed: backup");
	D("acme")->last_active = S.now;         /* reclaimed while it runs */
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	settle();
	cr_assert_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_assert_not_null(D("acme")->backup);
	for (; S.now <= T0 + 31 * DAY; S.now += HOUR) {       /* used until the license ends */
		D("acme")->last_active = S.now;
		settle();
	}
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook maintenance_on acme | hook backup acme | "
				       "hook maintenance_off acme | hook backup acme | hook remove acme");
	cr_expect_eq(D("acme")->backup_at, T0 + 30 * DAY, "the removal's own backup");
}


/* Expiry takes over an inactive removal (its backup still counts: the
 * removal began when it began); the operator's removal stays his. */
Test(deployment_decide, expiry_during_a_removal_keeps_its_start_and_the_operators_reason) {
	add("acme", GIB, T0 + 14 * DAY + 2 * HOUR);
	S.fail[DEPLOYMENT_HOOK_BACKUP] = 2;
	run_until(T0 + 14 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->removal, DEPLOYMENT_REMOVAL_INACTIVE);
	cr_assert_eq(D("acme")->attempts, 2, "its backup failed twice");
	time_t since = D("acme")->removal_since;
	run_until(T0 + 15 * DAY, HOUR);
	deployment *d = D("acme");
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_EXPIRED);
	cr_expect_eq(d->removal_since, since);
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(count("notice expired"), 1);
	cr_expect_eq(count("notice removed"), 1);

	add("beta", GIB, S.now + DAY);
	settle();
	D("beta")->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	D("beta")->removal_since = S.now;
	D("beta")->removal_skip_backup = true;
	S.n_hosts = 0;                          /* its node is away: nothing ordered */
	S.now += 2 * DAY;
	settle();
	cr_assert_eq(D("beta")->state, DEPLOYMENT_EXPIRED);
	cr_expect_eq(D("beta")->removal, DEPLOYMENT_REMOVAL_OPERATOR);
	cr_expect_eq(D("beta")->removal_since, S.now - 2 * DAY);
	S.n_hosts = 1;
	settle();
	cr_expect_eq(D("beta")->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(count("hook backup beta"), 0, "--no-backup stands");
}

/* ---- the license ---- */

Test(deployment_decide, a_leader_away_for_days_sends_only_the_latest_warning) {
	add("acme", GIB, T0 + 10 * DAY);
	settle();
	S.now = T0 + 9 * DAY + 12 * HOUR;       /* back half a day before expiry */
	D("acme")->last_active = S.now;
	settle();
	cr_expect_str_eq(only("notice"), "notice expiry_1d acme");
}

Test(deployment_decide, renewal_before_removal_keeps_it) {
	add("acme", GIB, T0 + 2 * DAY);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_until(T0 + 2 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->state, DEPLOYMENT_EXPIRED);
	D("acme")->license_expires = T0 + 400 * DAY;    /* reclaim --license-expires */
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	settle();
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_NONE);
	cr_expect_eq(count("hook remove"), 0);
	cr_expect_eq(deployment_notice_sent(d, "expired"), 0, "a new license: its notices come again");
	cr_expect_eq(deployment_notice_sent(d, "expiry_1d"), 0);
}

Test(deployment_decide, expiry_in_maintenance_removes_as_expired) {
	add("acme", GIB, T0 + 9 * DAY);
	run_until(T0 + 9 * DAY + DAY, HOUR);
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_EXPIRED);
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook maintenance_on acme | hook backup acme | hook remove acme");
	cr_expect_eq(count("notice expired"), 1);
}

Test(deployment_decide, a_renewal_within_the_warnings_reach_warns_again_for_the_new_license) {
	add("acme", GIB, T0 + 2 * DAY);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_used_until(T0 + 2 * DAY + HOUR);
	cr_assert_eq(D("acme")->state, DEPLOYMENT_EXPIRED);
	D("acme")->license_expires = T0 + 5 * DAY;      /* three more days */
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	run_used_until(T0 + 6 * DAY);
	/* expiry_7d was sent inside the new license's reach: not again */
	cr_expect_str_eq(only("notice"), "notice expiry_7d acme | notice expiry_1d acme | notice expired acme | "
					 "notice expiry_1d acme | notice expired acme | notice removed acme");
	cr_expect_eq(deployment_notice_sent(D("acme"), "expired"), T0 + 5 * DAY);
	cr_expect_str_eq(only("hook"), "hook deploy acme | hook backup acme | hook backup acme | hook remove acme");
}

Test(deployment_decide, a_renewal_of_a_paused_deployment_goes_back_to_maintenance) {
	add("acme", GIB, T0 + 9 * DAY);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	run_until(T0 + 9 * DAY + HOUR, HOUR);
	cr_assert_eq(D("acme")->state, DEPLOYMENT_EXPIRED);
	D("acme")->license_expires = T0 + 400 * DAY;
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	settle();
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_MAINTENANCE, "maintenance_on ran: it is still paused");
	cr_expect_eq(d->state_since, T0 + 7 * DAY, "since its maintenance began: the reclaim deadline stands");
	cr_expect_eq(d->removal, DEPLOYMENT_REMOVAL_NONE);
	D("acme")->last_active = S.now;         /* then reclaimed */
	settle();
	cr_expect_eq(count("hook maintenance_off"), 1);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(count("hook remove"), 0);
}

Test(deployment_decide, no_renewal_once_remove_was_tried) {
	add("acme", GIB, T0 + 2 * DAY);
	S.fail[DEPLOYMENT_HOOK_REMOVE] = 1;
	S.policy.retry = DAY;
	run_used_until(T0 + 2 * DAY + HOUR);
	cr_assert_eq(count("hook remove"), 1);
	D("acme")->license_expires = T0 + 400 * DAY;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_EXPIRED);
	S.now = D("acme")->retry_at;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_REMOVED);
	cr_expect_eq(count("hook remove"), 2);
}

Test(deployment_decide, an_expired_license_is_never_placed) {
	S.n_hosts = 0;          /* no room: it waits unplaced */
	add("acme", GIB, T0 + DAY);
	settle();
	cr_expect_eq(S.out.unplaced, 1);
	S.n_hosts = 1;
	S.now = T0 + DAY;
	settle();
	deployment *d = D("acme");
	cr_expect_eq(d->state, DEPLOYMENT_REMOVED, "nothing on a host: removed at once");
	cr_expect_null(d->host);
	cr_expect_str_eq(only("hook"), "", "no deploy, backup or remove");
	cr_expect_eq(count("notice expired acme"), 1);
}

/* ---- placement ---- */

Test(deployment_decide, placement_reserved_first_then_fullest_with_this_decisions_placements) {
	S.hosts[0] = (deployment_host) { .node_id = "od", .memory = 8 * GIB, .threshold = 0.8, .placeable = true,
					 .used = 2 * GIB };
	S.hosts[1] = (deployment_host) { .node_id = "res", .memory = 8 * GIB, .threshold = 0.8, .placeable = true,
					 .reserved = true };
	S.n_hosts = 2;
	add("a", 4 * GIB, 0);
	add("b", 4 * GIB, 0);
	add("c", 4 * GIB, 0);
	add("d", 7 * GIB, 0);
	decide();
	cr_expect_str_eq(D("a")->host, "res", "reserved first");
	cr_expect_str_eq(D("b")->host, "od", "res is full with a (4 + 4 > 6.4): the fullest that fits");
	cr_expect_null(D("c")->host, "no room left anywhere");
	cr_expect_null(D("d")->host);
	cr_expect_eq(S.out.unplaced, 1, "c: a new host could take it");
	cr_expect_eq(S.out.too_big, 1, "d: no host could");
	cr_expect_eq(D("a")->order.hook, DEPLOYMENT_HOOK_DEPLOY);
	cr_expect_eq(S.out.orders, 2);
	/* a host that is not placeable (draining) takes nothing */
	S.hosts[1].placeable = false;
	S.hosts[1].used = 4 * GIB;
	S.hosts[0].used = 6 * GIB;
	S.hosts[2] = (deployment_host) { .node_id = "new", .memory = 8 * GIB, .threshold = 0.8, .placeable = true };
	S.n_hosts = 3;
	decide();
	cr_expect_str_eq(D("c")->host, "new");
}

Test(deployment_decide, active_only_after_the_deploy_hook) {
	add("acme", GIB, 0);
	S.hold[DEPLOYMENT_HOOK_DEPLOY] = true;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_PENDING);
	cr_expect_str_eq(D("acme")->host, "n1");
	S.fail[DEPLOYMENT_HOOK_DEPLOY] = 1;
	S.hold[DEPLOYMENT_HOOK_DEPLOY] = false;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_PENDING, "a failed deploy stays pending");
	S.now = D("acme")->retry_at;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(count("hook deploy"), 2);
}

/* ---- the frame ---- */

Test(deployment_decide, cluster_maintenance_changes_nothing) {
	add("acme", GIB, T0 + 2 * DAY);
	add("big", 64 * GIB, 0);
	S.maintenance = true;
	decide();
	cr_expect_eq(S.out.n_actions, 0, "not even the placement");
	cr_expect_eq(S.out.by_state[DEPLOYMENT_PENDING], 2);
	cr_expect_eq(S.out.unplaced, 1, "counted still");
	cr_expect_eq(S.out.too_big, 1);
	S.now = T0 + 3 * DAY;   /* expired meanwhile */
	decide();
	cr_expect_eq(S.out.n_actions, 0);
	cr_expect_str_eq(only("notice"), "");
	S.maintenance = false;
	settle();
	cr_expect_str_eq(only("notice"), "notice expired acme", "once maintenance ends");
}

Test(deployment_decide, wake_is_the_next_rule_due) {
	add("acme", GIB, T0 + 30 * DAY);
	settle();
	cr_expect_eq(S.out.wake, T0 + 6 * DAY, "the inactivity warning comes first");
	S.now = T0 + 6 * DAY;
	settle();
	cr_expect_eq(S.out.wake, T0 + 7 * DAY, "maintenance, after the warning");
	S.now = T0 + 7 * DAY;
	settle();
	cr_assert_eq(D("acme")->state, DEPLOYMENT_MAINTENANCE);
	cr_expect_eq(S.out.wake, T0 + 14 * DAY, "the reclaim deadline");
	D("acme")->last_active = T0 + 20 * DAY;
	S.now = T0 + 20 * DAY;
	settle();
	cr_assert_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(S.out.wake, T0 + 23 * DAY, "the 7-day expiry warning");
	S.now = T0 + 23 * DAY;
	D("acme")->last_active = S.now;
	settle();
	cr_expect_eq(S.out.wake, T0 + 29 * DAY, "the 1-day expiry warning (before the inactivity warning)");
	cr_expect_eq(S.out.by_state[DEPLOYMENT_ACTIVE], 1);
}

Test(deployment_decide, a_late_inactivity_warning_still_gives_its_full_notice) {
	add("acme", GIB, 0);
	settle();
	S.now = T0 + 10 * DAY;  /* the leader was away past the maintenance time */
	settle();
	cr_expect_eq(deployment_notice_sent(D("acme"), "inactive_warning"), T0 + 10 * DAY);
	cr_expect_eq(D("acme")->state, DEPLOYMENT_ACTIVE);
	cr_expect_eq(S.out.wake, T0 + 11 * DAY);
	S.now = T0 + 11 * DAY;
	settle();
	cr_expect_eq(D("acme")->state, DEPLOYMENT_MAINTENANCE);
}

Test(deployment_decide, an_order_waits_for_its_host) {
	add("acme", GIB, 0);
	S.hold[DEPLOYMENT_HOOK_DEPLOY] = true;
	decide();
	cr_assert_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_DEPLOY);
	/* the deploy fails; by the retry its host drains: no deploy there */
	size_t i = D("acme") - S.d;
	deployment_report_done(&S.rep[i]);
	S.rep[i] = (deployment_report) { .seq = S.d[i].order.seq, .hook = DEPLOYMENT_HOOK_DEPLOY,
					 .state = DEPLOYMENT_REPORT_FAILED, .error = strdup("exit status 1") };
	decide();
	S.hosts[0].placeable = false;
	S.now = D("acme")->retry_at;
	decide();
	cr_expect_eq(D("acme")->order.seq, 0, "a deploy needs a placeable host");
	cr_expect_eq(S.out.n_actions, 0);
	/* other hooks need it live only */
	D("acme")->removal = DEPLOYMENT_REMOVAL_OPERATOR;
	D("acme")->removal_since = S.now;
	decide();
	cr_expect_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_BACKUP);
	S.hold[DEPLOYMENT_HOOK_BACKUP] = true;
	host_acts();
	S.n_hosts = 0;          /* n1's node is gone */
	S.hold[DEPLOYMENT_HOOK_BACKUP] = false;
	host_acts();
	decide();
	cr_expect_eq(D("acme")->order.seq, 0, "nothing ordered to a host that is not there");
	cr_expect_str_eq(D("acme")->backup, "s3://backups/acme");
	S.n_hosts = 1;
	decide();
	cr_expect_eq(D("acme")->order.hook, DEPLOYMENT_HOOK_REMOVE);
}

/* One sentence: a single full stop, at the end. */
static void expect_sentence(char *m, const char *has1, const char *has2) {
	cr_assert_not_null(m);
	cr_expect_not_null(strstr(m, "acme"), "%s", m);
	cr_expect_not_null(strstr(m, has1), "%s", m);
	cr_expect_not_null(strstr(m, has2), "%s", m);
	cr_expect_eq(m[strlen(m) - 1], '.', "%s", m);
	cr_expect_null(strstr(m, ". "), "one sentence: %s", m);
	free(m);
}

Test(deployment_decide, notice_messages_say_when_and_what_to_do) {
	deployment *d = add("acme", GIB, T0 + DAY);
	d->last_active = T0 - DAY;
	d->state_since = T0 + 2 * DAY;
	expect_sentence(deployment_notice_message(d, "expiry_7d", "prod"), "2026-12-02T00:00:00Z",
			"corralctl deployment reclaim acme");
	expect_sentence(deployment_notice_message(d, "expired", "prod"), "2026-12-02T00:00:00Z",
			"corralctl deployment reclaim acme");
	expect_sentence(deployment_notice_message(d, "inactive_warning", "prod"), "2026-11-30T00:00:00Z",
			"corralctl deployment reclaim acme");
	expect_sentence(deployment_notice_message(d, "maintenance", "prod"), "2026-12-03T00:00:00Z",
			"corralctl deployment reclaim acme");
	d->backup = strdup("s3://b/acme");
	expect_sentence(deployment_notice_message(d, "removed", "prod"), "2026-12-03T00:00:00Z",
			"set it up again from the backup at s3://b/acme");
	d->removal_skip_backup = true;
	expect_sentence(deployment_notice_message(d, "removed", "prod"), "2026-12-03T00:00:00Z", "without a backup");
}
