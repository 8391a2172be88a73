/* test_scale.c — the autoscaler's pure decision (src/scale/scale.c) and its
 * JSON codecs (src/scale/policy.c): every rule of issue 5 as a table or a
 * scenario, a property test over random load sequences for flapping, and
 * the policy / host record documents. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "macro.h"
#include "scale-fixture.h"
#include "scale-report.h"
#include "scale.h"

TestSuite(scale, .init = fx_init, .fini = fini);

/* ---- jobs policy -------------------------------------------------------------------- */

Test(scale, jobs_n_plus_two_sqrt_n) {
	static const struct {
		int n, per_host;
		double cap;
		int hosts;
	} t[] = {
		{ 0, 1, 0, 1 },     { 1, 1, 3, 3 },     { 4, 1, 8, 8 },      { 9, 1, 15, 15 },
		{ 16, 1, 24, 24 },  { 100, 1, 120, 120 }, { 0, 10, 0, 1 },   { 1, 10, 3, 1 },
		{ 4, 10, 8, 1 },    { 9, 10, 15, 2 },   { 16, 10, 24, 3 },   { 100, 10, 120, 12 },
		{ 4, 4, 8, 2 },     { 9, 4, 15, 4 },    { 16, 4, 24, 6 },    { 100, 4, 120, 30 },
		{ 100, 40, 120, 3 }, { 100, 120, 120, 1 }, { 100, 119, 120, 2 },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->jobs_per_host = t[i].per_host;
		H("i-1", SCALE_READY, t[i].n);
		decide();
		cr_expect(fabs(M("web")->desired_capacity - t[i].cap) < 1e-9, "n=%d: capacity %g, want %g", t[i].n,
			  M("web")->desired_capacity, t[i].cap);
		cr_expect_eq(M("web")->desired_hosts, t[i].hosts, "n=%d per host %d: %d hosts, want %d", t[i].n,
			     t[i].per_host, M("web")->desired_hosts, t[i].hosts);
		cr_expect_eq(launched_all(), t[i].hosts - 1, "n=%d: launches", t[i].n);
		fini();
	}
}

Test(scale, jobs_capacity_factor) {
	static const struct {
		int n, per_host;
		double factor, cap;
		int hosts;
	} t[] = {
		{ 0, 40, 1.3, 0, 1 },    { 10, 1, 1.3, 13, 13 }, { 100, 40, 1.3, 130, 4 },
		{ 120, 40, 1.0, 120, 3 }, { 121, 40, 1.0, 121, 4 }, { 50, 10, 2.0, 100, 10 },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->jobs_per_host = t[i].per_host;
		P()->capacity_factor = t[i].factor;
		H("i-1", SCALE_READY, t[i].n);
		decide();
		cr_expect(fabs(M("web")->desired_capacity - t[i].cap) < 1e-9, "row %zu: %g", i,
			  M("web")->desired_capacity);
		cr_expect_eq(M("web")->desired_hosts, t[i].hosts, "row %zu: %d", i, M("web")->desired_hosts);
		fini();
	}
}

Test(scale, jobs_on_unhealthy_hosts_are_not_served) {
	P()->jobs_per_host = 1;
	H("i-1", SCALE_READY, 4);
	scale_host *u = H("i-2", SCALE_UNHEALTHY, 5);
	u->last_seen = 0;
	u->state_since = NOW - 60;
	decide();
	/* healthy base 4, headroom from all 9 jobs: 4 + 2*3 */
	cr_expect(fabs(M("web")->desired_capacity - 10) < 1e-9, "%g", M("web")->desired_capacity);
	cr_expect_eq(M("web")->jobs, 9);
	cr_expect_eq(M("web")->jobs_unhealthy, 5);
	/* the unhealthy host is not capacity: 10 wanted, 1 ready */
	cr_expect_eq(M("web")->ready, 1);
	cr_expect_eq(launched_all(), 9);
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "i-2"), "it still has jobs");
}

Test(scale, jobs_per_host_from_reported_capacity) {
	P()->jobs_per_host = 0;
	H("i-1", SCALE_READY, 30)->job_capacity = 20;
	H("i-2", SCALE_READY, 30)->job_capacity = 25;
	decide();
	cr_expect_eq(M("web")->jobs_per_host, 25);
	/* 60 + 2*sqrt(60) = 75.49 -> 4 hosts of 25 */
	cr_expect_eq(M("web")->desired_hosts, 4);
}

/* ---- other policies ----------------------------------------------------------------- */

Test(scale, queue_policy) {
	static const struct {
		int queue, max_queued, min_idle, busy, idle, max, want;
	} t[] = {
		{ 5, 0, 0, 2, 0, 10, 3 }, /* jobs wait: one up */
		{ 5, 5, 0, 2, 0, 10, 2 }, /* not above max queued: hold */
		{ 6, 5, 0, 2, 0, 10, 3 },
		{ 5, 0, 0, 2, 0, 2, 2 },  /* bounded by max */
		{ 0, 0, 0, 2, 2, 10, 3 }, /* idle beyond min idle: one down */
		{ 0, 0, 2, 2, 2, 10, 4 }, /* idle == min idle: hold */
		{ 0, 0, 3, 2, 2, 10, 5 }, /* fewer idle than min idle: one up */
		{ 3, 0, 0, 2, 2, 10, 5 }, /* queued and idle: up wins */
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		no_hysteresis();
		P()->kind = SCALE_POLICY_QUEUE;
		P()->max_queued_jobs = t[i].max_queued;
		P()->min_idle = t[i].min_idle;
		P()->max = t[i].max;
		static char ids[8][16];
		for (int k = 0; k < t[i].busy + t[i].idle; k++) {
			snprintf(ids[k], sizeof ids[k], "i-%d", k);
			H(ids[k], SCALE_READY, k < t[i].busy ? 3 : 0);
		}
		F.queues[0] = (scale_queue) { "web", t[i].queue };
		F.n_queues = 1;
		decide();
		cr_expect_eq(M("web")->desired_hosts, t[i].want, "row %zu: %d", i, M("web")->desired_hosts);
		int have = t[i].busy + t[i].idle;
		cr_expect_eq(launched_all(), t[i].want > have ? t[i].want - have : 0, "row %zu", i);
		cr_expect_eq(count(SCALE_ACTION_DRAIN), t[i].want < have ? have - t[i].want : 0, "row %zu", i);
		if (t[i].want < have)
			for (int k = 0; k < t[i].busy; k++)
				cr_expect_null(act(SCALE_ACTION_DRAIN, ids[k]), "row %zu: busy host drained", i);
		fini();
	}
}

Test(scale, threshold_policy_up_when_every_host_is_past) {
	P()->kind = SCALE_POLICY_THRESHOLD;
	H("i-1", SCALE_READY, 3)->memory_used = 0.9;
	H("i-2", SCALE_READY, 3)->memory_used = 0.85;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 3);
	cr_expect_eq(launched_all(), 1);

	fx_init();
	P()->kind = SCALE_POLICY_THRESHOLD;
	H("i-1", SCALE_READY, 3)->memory_used = 0.9;
	H("i-2", SCALE_READY, 3)->memory_used = 0.5;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 2, "one host has room");
	cr_expect_eq(F.out.n_actions, 0);
}

/* Every busy host past the threshold: the idle host is the room the
 * policy would launch again at once, so it stays (min_idle 0). */
Test(scale, threshold_policy_keeps_the_room_it_would_launch) {
	no_hysteresis();
	P()->kind = SCALE_POLICY_THRESHOLD;
	H("i-1", SCALE_READY, 3)->memory_used = 0.9;
	H("i-2", SCALE_READY, 0)->memory_used = 0;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 2);
	cr_expect_eq(F.out.n_actions, 0, "no drain of the only room");

	/* a second idle host is beyond that room: it goes */
	fx_init();
	no_hysteresis();
	P()->kind = SCALE_POLICY_THRESHOLD;
	H("i-1", SCALE_READY, 3)->memory_used = 0.9;
	H("i-2", SCALE_READY, 0)->memory_used = 0;
	H("i-3", SCALE_READY, 0)->memory_used = 0;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 2);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 1);
}

/* Waiting work no host has room for (unplaced tenant deployments, in the
 * pool's queue) grows a threshold pool by one, not while a host launches
 * or one is idle. */
Test(scale, threshold_policy_grows_for_waiting_work) {
	P()->kind = SCALE_POLICY_THRESHOLD;
	F.queues[F.n_queues++] = (scale_queue) { "web", 2 };
	H("i-1", SCALE_READY, 3)->memory_used = 0.5;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 2);
	cr_expect_eq(launched_all(), 1, "one host at a time");

	fx_init();
	P()->kind = SCALE_POLICY_THRESHOLD;
	F.queues[F.n_queues++] = (scale_queue) { "web", 2 };
	H("i-1", SCALE_READY, 3)->memory_used = 0.5;
	scale_host *l = H("i-2", SCALE_LAUNCHING, 0);
	l->launch_time = l->state_since = NOW - 60;
	decide();
	cr_expect_eq(launched_all(), 0, "the launching host takes it");

	fx_init();
	P()->kind = SCALE_POLICY_THRESHOLD;
	F.queues[F.n_queues++] = (scale_queue) { "web", 1 };
	H("i-1", SCALE_READY, 3)->memory_used = 0.5;
	H("i-2", SCALE_READY, 0)->memory_used = 0;
	decide();
	cr_expect_eq(launched_all(), 0, "an idle host takes it");
}

Test(scale, threshold_policy_removes_only_idle_hosts) {
	no_hysteresis();
	P()->kind = SCALE_POLICY_THRESHOLD;
	/* an uncovered on-demand host with work would be the first victim of
	 * the jobs policy; here only hosts with no work go */
	H("i-1", SCALE_READY, 3);
	scale_host *s = H("i-2", SCALE_READY, 0);
	s->market = SCALE_SPOT;
	H("i-3", SCALE_READY, 0);
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2);
	cr_expect_null(act(SCALE_ACTION_DRAIN, "i-1"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "i-2"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "i-3"));

	/* min idle keeps one */
	fx_init();
	no_hysteresis();
	P()->kind = SCALE_POLICY_THRESHOLD;
	P()->min_idle = 1;
	H("i-1", SCALE_READY, 3);
	H("i-2", SCALE_READY, 0);
	H("i-3", SCALE_READY, 0);
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 1);
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "i-2"), "the older of equals (same launch time: id)");
}

Test(scale, fixed_policy) {
	static const struct {
		int hosts, min, have, launch, drain;
	} t[] = {
		{ 3, 0, 1, 2, 0 }, { 3, 0, 3, 0, 0 }, { 3, 0, 5, 0, 2 }, { -1, 2, 0, 2, 0 }, { 0, 0, 2, 0, 2 },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		no_hysteresis();
		P()->kind = SCALE_POLICY_FIXED;
		P()->hosts = t[i].hosts;
		P()->min = t[i].min;
		static char ids[8][16];
		for (int k = 0; k < t[i].have; k++) {
			snprintf(ids[k], sizeof ids[k], "i-%d", k);
			H(ids[k], SCALE_READY, 1);
		}
		decide();
		cr_expect_eq(launched_all(), t[i].launch, "row %zu", i);
		cr_expect_eq(count(SCALE_ACTION_DRAIN), t[i].drain, "row %zu", i);
		fini();
	}
}

Test(scale, min_max_clamp_and_manual_override) {
	static const struct {
		int jobs, min, max, desired, want;
		const char *note;
	} t[] = {
		{ 1000, 0, 5, -1, 5, NULL }, /* 1063/10 -> 107, max 5 */
		{ 0, 3, 10, -1, 3, NULL },
		{ 0, 0, 10, 7, 7, "manual" },
		{ 1000, 0, 10, 2, 2, "manual" }, /* the override replaces the policy */
		{ 0, 2, 4, 9, 4, "manual" },     /* but not the bounds */
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->min = t[i].min;
		P()->max = t[i].max;
		P()->desired = t[i].desired;
		H("i-1", SCALE_READY, t[i].jobs);
		decide();
		cr_expect_eq(M("web")->desired_hosts, t[i].want, "row %zu: %d", i, M("web")->desired_hosts);
		cr_expect(streq_ptr(M("web")->note, t[i].note), "row %zu: note %s", i, M("web")->note);
		fini();
	}
}

Test(scale, disabled_by_flag_or_autoscale_off_tag) {
	for (int how = 0; how < 2; how++) {
		fx_init();
		no_hysteresis();
		H("i-1", SCALE_READY, 100);
		H("i-2", SCALE_DRAINING, 3);
		if (how == 0)
			P()->enabled = false;
		else
			H("i-3", SCALE_READY, 0)->autoscale_off = true;
		decide();
		cr_expect_not(M("web")->enabled);
		cr_expect_str_eq(M("web")->note, "disabled");
		cr_expect_eq(launched_all(), 0);
		cr_expect_eq(count(SCALE_ACTION_UNDRAIN), 0);
		cr_expect_eq(count(SCALE_ACTION_DRAIN), 0);
		fini();
	}
	/* surplus, disabled: nothing drained either */
	fx_init();
	no_hysteresis();
	P()->enabled = false;
	for (int k = 0; k < 3; k++)
		H((const char *[]) { "i-1", "i-2", "i-3" }[k], SCALE_READY, 0);
	decide();
	cr_expect_eq(F.out.n_actions, 0);
}

/* ---- a rollout in flight (principle 9) ---------------------------------------------- */

Test(scale, rollout_host_is_neither_drained_nor_surplus) {
	no_hysteresis();
	/* scale-in pressure: 0 jobs, 4 hosts, 2 taken by a rollout batch */
	H("i-1", SCALE_READY, 0)->in_rollout = true;
	H("i-2", SCALE_READY, 0)->in_rollout = true;
	H("i-3", SCALE_READY, 0);
	H("i-4", SCALE_READY, 0);
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);
	cr_expect_eq(M("web")->hosts_in_rollout, 2);
	cr_expect_not(touched("i-1"), "a host a batch is taking down is not drained");
	cr_expect_not(touched("i-2"));
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2, "the two others go, and no more");

	/* only rollout hosts left as surplus: nothing drains, and the report says why */
	fx_init();
	no_hysteresis();
	H("i-1", SCALE_READY, 0)->in_rollout = true;
	H("i-2", SCALE_READY, 0)->in_rollout = true;
	P()->min = 1;
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0);
	cr_expect_str_eq(M("web")->note, "surplus in rollout");
	_cleanup_free_ char *text = plan();
	cr_assert_not_null(text);
	cr_expect(strstr(text, "2 in rollout (not drained)"), "%s", text);

	/* rebooting for its upgrade (no heartbeat, unhealthy, no jobs): not
	 * terminated as broken; a drained one is not terminated either */
	fx_init();
	no_hysteresis();
	scale_host *u = H("u", SCALE_UNHEALTHY, 0);
	u->in_rollout = true;
	u->last_seen = 0;
	u->state_since = NOW - 13 * 3600;
	H("d", SCALE_DRAINING, 0)->in_rollout = true;
	P()->min = 0;
	P()->max = 1;
	decide();
	_cleanup_free_ char *t2 = plan();
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "u"), "%s", t2);
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "d"), "%s", t2);
}

/* ---- hold, drain before kill, undrain ----------------------------------------------- */

Test(scale, hold_is_never_drained_or_terminated) {
	no_hysteresis();
	/* scale-in pressure: 0 jobs, 4 hosts, 2 held */
	H("i-1", SCALE_READY, 0)->hold = true;
	H("i-2", SCALE_READY, 0)->hold = true;
	H("i-3", SCALE_READY, 0);
	H("i-4", SCALE_READY, 0);
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);
	cr_expect_eq(M("web")->hosts_held, 2);
	cr_expect_not(touched("i-1"));
	cr_expect_not(touched("i-2"));
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2, "the two unheld go, and no more");

	/* a held host in each terminating situation */
	fx_init();
	no_hysteresis();
	H("d", SCALE_DRAINING, 0)->hold = true;
	scale_host *u = H("u", SCALE_UNHEALTHY, 0);
	u->hold = true;
	u->last_seen = 0;
	u->state_since = NOW - 13 * 3600;
	scale_host *l = H("l", SCALE_LAUNCHING, 0);
	l->hold = true;
	l->state_since = NOW - 3600;
	scale_host *s = H("s", SCALE_READY, 0);
	s->hold = true;
	s->market = SCALE_SPOT;
	s->interruption = true;
	decide();
	for (const char *id = "d"; id; id = streq(id, "d") ? "u" : streq(id, "u") ? "l" : streq(id, "l") ? "s" : NULL)
		cr_expect_not(touched(id), "%s touched", id);

	/* cluster stop: everything goes but what is held */
	fx_init();
	H("i-1", SCALE_READY, 5)->hold = true;
	H("i-2", SCALE_READY, 5);
	H("i-3", SCALE_READY, 0);
	H("i-4", SCALE_DRAINING, 0)->hold = true;
	F.in.stop = true;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 0);
	cr_expect_str_eq(M("web")->note, "stop");
	cr_expect_not(touched("i-1"));
	cr_expect_not(touched("i-4"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "i-2"), "stop does not wait for hysteresis");
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "i-3"));
	cr_expect_str_eq(act(SCALE_ACTION_DRAIN, "i-3")->why, "cluster stop");
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 0, "drain first, never kill");
}

Test(scale, surplus_drains_never_kills) {
	no_hysteresis();
	H("i-1", SCALE_READY, 0);
	H("i-2", SCALE_READY, 2);
	H("i-3", SCALE_READY, 0);
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);
	cr_expect_eq(M("web")->surplus, 2);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2);
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 0);
	cr_expect_null(act(SCALE_ACTION_DRAIN, "i-2"), "fewest jobs first");
	cr_expect_eq(act(SCALE_ACTION_DRAIN, "i-1")->from, SCALE_READY);
	cr_expect_eq(act(SCALE_ACTION_DRAIN, "i-1")->to, SCALE_DRAINING);
}

Test(scale, undrain_newest_first_then_launch) {
	P()->jobs_per_host = 1;
	H("i-0", SCALE_READY, 10);
	H("old", SCALE_DRAINING, 1)->launch_time = NOW - 9000;
	H("mid", SCALE_DRAINING, 1)->launch_time = NOW - 5000;
	H("new", SCALE_DRAINING, 1)->launch_time = NOW - 1000;
	/* 10 jobs on ready i-0, 3 on draining: cap 13 + 2*sqrt(13) = 20.2 -> 21 */
	P()->max = 3; /* wants 3: 1 ready -> 2 more */
	decide();
	cr_expect_eq(count(SCALE_ACTION_UNDRAIN), 2);
	cr_expect_not_null(act(SCALE_ACTION_UNDRAIN, "new"));
	cr_expect_not_null(act(SCALE_ACTION_UNDRAIN, "mid"));
	cr_expect_null(act(SCALE_ACTION_UNDRAIN, "old"));
	cr_expect_eq(launched_all(), 0, "no launch while a draining host can be put back");

	P()->max = 6; /* 5 more: 3 undrains, 2 launches */
	decide();
	cr_expect_eq(count(SCALE_ACTION_UNDRAIN), 3);
	cr_expect_eq(launched_all(), 2);
	cr_expect_eq(M("web")->undrained, 3);
	cr_expect_eq(M("web")->launched, 2);
}

/* ---- hysteresis --------------------------------------------------------------------- */

Test(scale, surplus_must_last_and_cooldown) {
	P()->scale_in_after = 600;
	P()->scale_in_cooldown = 900;
	H("i-1", SCALE_READY, 0);
	H("i-2", SCALE_READY, 0);
	H("i-3", SCALE_READY, 0);
	for (size_t i = 0; i < F.n; i++)
		F.hosts[i].last_seen = NOW + 3000; /* heartbeats all along */
	F.state[0] = (scale_pool_state) { .pool = "web" };
	F.n_state = 1;

	decide_at(NOW);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0, "surplus just seen");
	cr_expect_eq(F.out.state[0].surplus_since, NOW);
	cr_expect_str_eq(M("web")->note, "waiting for surplus to last");
	F.state[0] = F.out.state[0];

	decide_at(NOW + 599);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0);
	cr_expect_eq(F.out.state[0].surplus_since, NOW, "kept");
	F.state[0] = F.out.state[0];

	/* surplus gone for one decision: the clock starts again */
	F.hosts[0].jobs = F.hosts[1].jobs = F.hosts[2].jobs = 40;
	decide_at(NOW + 300);
	cr_expect_eq(F.out.state[0].surplus_since, 0);
	F.hosts[0].jobs = F.hosts[1].jobs = F.hosts[2].jobs = 0;
	scale_pool_state reset = F.out.state[0];
	F.state[0] = reset;
	decide_at(NOW + 600);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0, "restarted at +600");
	F.state[0] = F.out.state[0];
	decide_at(NOW + 1200);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2);
	cr_expect_eq(F.out.state[0].last_scale_in, NOW + 1200);
	cr_expect_eq(F.out.state[0].surplus_since, 0);

	/* within the cooldown a new surplus, however old, waits */
	F.state[0] = (scale_pool_state) { .pool = "web", .last_scale_in = NOW + 1200, .surplus_since = NOW };
	decide_at(NOW + 1200 + 899);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0);
	cr_expect_str_eq(M("web")->note, "cooldown");
	decide_at(NOW + 1200 + 900);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2);
}

/* A tiny simulator: hosts follow the actions (launches become ready the
 * next round, drained hosts finish their jobs), load is random. */
Test(scale, no_flapping_over_random_load) {
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int drains = 0, launches = 0, undrains = 0;
	for (int run = 0; run < 40; run++) {
		fx_init();
		P()->jobs_per_host = 4;
		P()->max = 40;
		P()->scale_in_after = 120;
		P()->scale_in_cooldown = 300;
		F.state[0] = (scale_pool_state) { .pool = "web" };
		F.n_state = 1;
		static char ids[MAXH][16];
		int next_id = 0;
		time_t last_drain = 0, surplus_from = 0;
		int load = 10;
		for (int step = 0; step < 200; step++) {
			time_t now = NOW + step * 30;
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			load += (int) ((seed >> 33) % 9) - 4;
			if (load < 0)
				load = 0;
			if (load > 100)
				load = 100;
			/* spread load over ready hosts */
			int ready = 0;
			for (size_t i = 0; i < F.n; i++)
				ready += F.hosts[i].state == SCALE_READY;
			int left = load;
			for (size_t i = 0; i < F.n; i++) {
				scale_host *h = &F.hosts[i];
				h->last_seen = now;
				if (h->state == SCALE_READY) {
					h->jobs = left / (ready ? ready : 1) + (left % (ready ? ready : 1) > 0);
					if (h->jobs > left)
						h->jobs = left;
					left -= h->jobs;
					ready--;
				} else if (h->state == SCALE_DRAINING)
					h->jobs = 0;
			}
			decide_at(now);
			const scale_metrics *m = M("web");
			bool drained = false;
			for (size_t i = 0; i < F.out.n_actions; i++) {
				const scale_action *a = &F.out.actions[i];
				if (a->kind == SCALE_ACTION_DRAIN)
					drained = true;
				if (a->kind == SCALE_ACTION_LAUNCH)
					cr_assert_gt(m->desired_hosts, m->ready + m->launching - 0,
						     "run %d step %d: launch without need", run, step);
			}
			if (m->surplus > 0 && surplus_from == 0)
				surplus_from = now;
			if (m->surplus <= 0)
				surplus_from = 0;
			if (drained) {
				cr_assert(last_drain == 0 || now - last_drain >= 300, "run %d step %d: drain within cooldown",
					  run, step);
				cr_assert(now - F.state[0].surplus_since >= 120 && F.state[0].surplus_since > 0,
					  "run %d step %d: surplus did not last", run, step);
				cr_assert_eq(launched_all(), 0, "run %d step %d: drain and launch together", run, step);
				last_drain = now;
				drains++;
			}
			launches += launched_all() > 0;
			undrains += count(SCALE_ACTION_UNDRAIN);
			if (launched_all() > 0)
				for (size_t i = 0; i < F.n; i++)
					cr_assert(F.hosts[i].state != SCALE_DRAINING || act(SCALE_ACTION_UNDRAIN, F.hosts[i].id),
						  "run %d step %d: launched while %s could be undrained", run, step,
						  F.hosts[i].id);
			/* apply */
			F.state[0] = F.out.state[0];
			for (size_t i = 0; i < F.out.n_actions; i++) {
				const scale_action *a = &F.out.actions[i];
				if (a->kind == SCALE_ACTION_LAUNCH) {
					for (int k = 0; k < a->count && F.n < MAXH; k++) {
						snprintf(ids[next_id], sizeof ids[next_id], "i-%04d", next_id);
						scale_host *h = H(ids[next_id++], SCALE_READY, 0);
						h->launch_time = h->state_since = now;
					}
					continue;
				}
				for (size_t j = 0; j < F.n; j++)
					if (streq(F.hosts[j].id, a->id)) {
						F.hosts[j].state = a->to;
						F.hosts[j].state_since = now;
					}
			}
			/* terminated hosts leave the list */
			size_t w = 0;
			for (size_t i = 0; i < F.n; i++)
				if (F.hosts[i].state != SCALE_TERMINATING)
					F.hosts[w++] = F.hosts[i];
			F.n = w;
		}
		fini();
	}
	/* the property is not vacuous */
	cr_expect_gt(drains, 40);
	cr_expect_gt(launches, 40);
	cr_expect_gt(undrains, 0);
}

/* ---- termination rules -------------------------------------------------------------- */

Test(scale, draining_or_unhealthy_without_jobs_terminate) {
	H("d0", SCALE_DRAINING, 0);
	H("d1", SCALE_DRAINING, 2);
	scale_host *u0 = H("u0", SCALE_UNHEALTHY, 0);
	scale_host *u1 = H("u1", SCALE_UNHEALTHY, 2);
	u0->last_seen = u1->last_seen = 0;
	u0->state_since = u1->state_since = NOW - 60;
	H("r0", SCALE_READY, 0);
	P()->max = 1; /* no capacity needed: nothing undrained */
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "d0")->why, "no jobs");
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "u0")->why, "unhealthy, no jobs");
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "d1"));
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "u1"));
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "r0"), "a ready host is never terminated");
	cr_expect_eq(act(SCALE_ACTION_TERMINATE, "d0")->to, SCALE_TERMINATING);
}

Test(scale, winding_down_waits_for_ready_to_stop) {
	scale_host *w = H("w0", SCALE_DRAINING, 0);
	w->winding_down = true;
	H("r0", SCALE_READY, 0);
	P()->max = 1;
	decide();
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "w0"), "the wind-down hook has not said ready_to_stop");
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 0);

	w->winding_down = false;        /* ready_to_stop */
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "w0")->why, "no jobs");

	/* a spot interruption does not wait: EC2 takes the host anyway */
	w->winding_down = true;
	w->market = SCALE_SPOT;
	w->interruption = true;
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "w0")->why, "spot interruption, no jobs");
}

Test(scale, unhealthy_too_long_terminates_regardless) {
	static const struct {
		int64_t timeout, age;
		bool term;
	} t[] = {
		{ 43200, 43200, false }, { 43200, 43201, true }, { 3600, 3601, true }, { 3600, 3000, false },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->unhealthy_timeout = t[i].timeout;
		H("r", SCALE_READY, 1);
		scale_host *u = H("u", SCALE_UNHEALTHY, 7);
		u->last_seen = 0;
		u->state_since = NOW - t[i].age;
		decide();
		const scale_action *a = act(SCALE_ACTION_TERMINATE, "u");
		cr_expect_eq(a != NULL, t[i].term, "row %zu", i);
		if (a)
			cr_expect_str_eq(a->why, "unhealthy too long");
		fini();
	}
	fx_init();
	cr_expect_eq(P()->unhealthy_timeout, 43200, "default 12 h");
}

Test(scale, drain_timeout_terminates_regardless) {
	static const struct {
		int64_t timeout, age;
		bool hold, winding_down, term;
	} t[] = {
		{ 0, 100000, false, false, false },     /* default: wait for the jobs */
		{ 600, 600, false, false, false },
		{ 600, 601, false, false, true },
		{ 600, 601, false, true, true },        /* the hook does not hold it either */
		{ 600, 601, true, false, false },       /* hold: hands off */
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->drain_timeout = t[i].timeout;
		P()->max = 1;
		H("r", SCALE_READY, 1);
		scale_host *d = H("d", SCALE_DRAINING, 3);
		d->state_since = NOW - t[i].age;
		d->hold = t[i].hold;
		d->winding_down = t[i].winding_down;
		decide();
		const scale_action *a = act(SCALE_ACTION_TERMINATE, "d");
		cr_expect_eq(a != NULL, t[i].term, "row %zu", i);
		if (a)
			cr_expect_str_eq(a->why, "drain timeout");
		cr_expect_null(act(SCALE_ACTION_UNDRAIN, "d"), "row %zu: no capacity is needed", i);
		fini();
	}
	fx_init();
	cr_expect_eq(P()->drain_timeout, 0, "default: none");
}

Test(scale, launching_timeout_terminates_and_relaunches) {
	P()->jobs_per_host = 100;
	H("r", SCALE_READY, 50); /* 50 + 14.1 -> 1 host... */
	P()->min = 2;           /* ... min 2 */
	scale_host *l = H("l", SCALE_LAUNCHING, 0);
	l->state_since = NOW - 601;
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "l")->why, "launch timeout");
	cr_expect_eq(launched_all(), 1, "replacement");

	l->state_since = NOW - 600;
	decide();
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "l"));
	cr_expect_eq(launched_all(), 0, "still within its time: counted");
	cr_expect_eq(M("web")->launching, 1);
}

Test(scale, terminating_is_resent_after_a_while) {
	scale_host *t = H("t", SCALE_TERMINATING, 0);
	t->state_since = NOW - 100;
	P()->min = 0;
	H("r", SCALE_READY, 0);
	decide();
	cr_expect_null(act(SCALE_ACTION_TERMINATE, "t"));
	t->state_since = NOW - 300;
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "t")->why, "terminate again");
}

/* ---- victims ------------------------------------------------------------------------ */

Test(scale, victim_order) {
	static const struct {
		int surplus;
		const char *want[4];
	} t[] = {
		{ 1, { "od-busy" } },
		{ 2, { "od-busy", "spot-0" } },
		{ 3, { "od-busy", "spot-0", "spot-2" } },
		{ 4, { "od-busy", "spot-0", "spot-2", "res-0" } },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		no_hysteresis();
		P()->kind = SCALE_POLICY_FIXED;
		H("keep", SCALE_READY, 9)->instance_type = "c5.large"; /* covered by the reservation, busy */
		H("res-0", SCALE_READY, 0)->instance_type = "c5.large";
		H("od-busy", SCALE_READY, 5);
		H("spot-2", SCALE_READY, 2)->market = SCALE_SPOT;
		H("spot-0", SCALE_READY, 0)->market = SCALE_SPOT;
		F.res[0] = (scale_reservation) { "c5.large", "us-east-1a", 2 };
		F.n_res = 1;
		P()->hosts = 5 - t[i].surplus;
		decide();
		cr_expect_eq(count(SCALE_ACTION_DRAIN), t[i].surplus, "row %zu", i);
		for (int k = 0; k < t[i].surplus; k++)
			cr_expect_not_null(act(SCALE_ACTION_DRAIN, t[i].want[k]), "row %zu: %s", i, t[i].want[k]);
		cr_expect_eq(M("web")->hosts_covered, 2);
		fini();
	}
}

Test(scale, victim_order_hourly_closest_to_end_of_hour) {
	no_hysteresis();
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 2;
	P()->billing = SCALE_BILLING_HOURLY;
	H("m10", SCALE_READY, 0)->launch_time = NOW - 3600 - 10 * 60;
	H("m55", SCALE_READY, 0)->launch_time = NOW - 2 * 3600 - 55 * 60;
	H("m30", SCALE_READY, 0)->launch_time = NOW - 30 * 60;
	H("m45", SCALE_READY, 0)->launch_time = NOW - 45 * 60;
	decide();
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "m55"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "m45"));
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 2);

	/* per-second billing plays no hour games: the oldest go */
	P()->billing = SCALE_BILLING_PER_SECOND;
	decide();
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "m55"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "m10"));
}

/* ---- billing ------------------------------------------------------------------------ */

Test(scale, hourly_fifty_minute_threshold) {
	static const struct {
		int64_t into; /* seconds into the current billed hour */
		int hours;
		int64_t threshold;
		bool term;
	} t[] = {
		{ 49 * 60 + 59, 0, 3000, false }, { 50 * 60, 0, 3000, true },   { 59 * 60, 0, 3000, true },
		{ 10 * 60, 1, 3000, false },      { 50 * 60, 3, 3000, true },   { 0, 2, 3000, false },
		{ 40 * 60, 0, 2400, true },       { 39 * 60, 0, 2400, false },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->billing = SCALE_BILLING_HOURLY;
		P()->hourly_threshold = t[i].threshold;
		P()->max = 1;
		H("r", SCALE_READY, 1);
		scale_host *d = H("d", SCALE_DRAINING, 0);
		d->launch_time = NOW - t[i].hours * 3600 - t[i].into;
		d->state_since = NOW - 1;
		decide();
		const scale_action *a = act(SCALE_ACTION_TERMINATE, "d");
		cr_expect_eq(a != NULL, t[i].term, "row %zu", i);
		if (a)
			cr_expect_str_eq(a->why, "no jobs, end of billed hour");
		fini();
	}
	fx_init();
	cr_expect_eq(P()->hourly_threshold, 3000, "default 50 min");
	cr_expect_eq(P()->billing, SCALE_BILLING_PER_SECOND, "default per second");
}

Test(scale, hourly_put_back_when_a_new_hour_began) {
	P()->billing = SCALE_BILLING_HOURLY;
	P()->jobs_per_host = 1;
	P()->max = 2;
	H("r", SCALE_READY, 5);
	/* drained at minute 40 of its hour, still busy: now 10 min into the next */
	scale_host *o = H("paid", SCALE_DRAINING, 1);
	o->launch_time = NOW - 3600 - 600;
	o->state_since = NOW - 30 * 60;
	/* newer, drained this hour */
	scale_host *n = H("newer", SCALE_DRAINING, 1);
	n->launch_time = NOW - 1200;
	n->state_since = NOW - 60;
	decide();
	cr_expect_eq(count(SCALE_ACTION_UNDRAIN), 1);
	cr_expect_not_null(act(SCALE_ACTION_UNDRAIN, "paid"), "the hour already paid for goes back first");
	cr_expect_str_eq(act(SCALE_ACTION_UNDRAIN, "paid")->why, "capacity needed, hour already paid");

	/* per second: newest first */
	P()->billing = SCALE_BILLING_PER_SECOND;
	decide();
	cr_expect_not_null(act(SCALE_ACTION_UNDRAIN, "newer"));
}

Test(scale, per_second_avoids_lifetimes_under_a_minute) {
	static const struct {
		int64_t up, min_life;
		bool term;
	} t[] = { { 30, 60, false }, { 59, 60, false }, { 60, 60, true }, { 3 * 3600 + 5, 60, true }, { 10, 0, true } };
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		P()->min_lifetime = t[i].min_life;
		P()->max = 1;
		H("r", SCALE_READY, 1);
		scale_host *d = H("d", SCALE_DRAINING, 0);
		d->launch_time = NOW - t[i].up;
		scale_host *u = H("u", SCALE_UNHEALTHY, 0);
		u->launch_time = NOW - t[i].up;
		u->last_seen = 0;
		decide();
		cr_expect_eq(act(SCALE_ACTION_TERMINATE, "d") != NULL, t[i].term, "row %zu drained", i);
		cr_expect_eq(act(SCALE_ACTION_TERMINATE, "u") != NULL, t[i].term, "row %zu unhealthy", i);
		fini();
	}
}

/* ---- markets ------------------------------------------------------------------------ */

static void markets(bool reserved, bool spot, bool od, double max_price) {
	P()->market_reserved = reserved;
	P()->market_spot = spot;
	P()->market_on_demand = od;
	P()->spot_max_price = max_price;
}

Test(scale, reserved_first) {
	markets(true, true, true, 1.0);
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 4;
	/* two zonal c5.large in 1b, one regional m5.large already used by a host */
	F.res[0] = (scale_reservation) { "c5.large", "us-east-1b", 2 };
	F.res[1] = (scale_reservation) { "m5.large", NULL, 1 };
	F.n_res = 2;
	H("i-1", SCALE_READY, 0); /* m5.large on-demand: takes the regional one */
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.03 };
	F.prices[1] = (scale_price) { "m5.large", "us-east-1b", 0.04 };
	F.n_prices = 2;
	decide();
	cr_expect_eq(M("web")->hosts_covered, 1);
	cr_expect_eq(launched(SCALE_ON_DEMAND, true), 2);
	cr_expect_eq(launched(SCALE_SPOT, false), 1);
	cr_expect_eq(launched(SCALE_ON_DEMAND, false), 0);
	const scale_action *a = &F.out.actions[0];
	cr_expect_eq(a->kind, SCALE_ACTION_LAUNCH);
	cr_expect_str_eq(a->instance_type, "c5.large");
	cr_expect_str_eq(a->subnet, "subnet-b", "the reservation's zone");
	cr_expect(a->reserved);
	cr_expect_str_eq(a->launch_template, "lt-web");

	/* reservations not allowed for the pool: not used */
	markets(false, false, true, 0);
	decide();
	cr_expect_eq(launched(SCALE_ON_DEMAND, true), 0);
	cr_expect_eq(launched(SCALE_ON_DEMAND, false), 3);
}

Test(scale, spot_when_under_max_price) {
	static const struct {
		bool spot_allowed, od_allowed;
		double price, max;
		int spot, od, unplaced;
	} t[] = {
		{ true, true, 0.03, 0.05, 2, 0, 0 },  { true, true, 0.05, 0.05, 0, 2, 0 },
		{ true, true, 0.07, 0.05, 0, 2, 0 },  { false, true, 0.01, 0.05, 0, 2, 0 },
		{ true, false, 0.07, 0.05, 0, 0, 2 }, { true, false, 0.01, 0.05, 2, 0, 0 },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		fx_init();
		markets(true, t[i].spot_allowed, t[i].od_allowed, t[i].max);
		P()->kind = SCALE_POLICY_FIXED;
		P()->hosts = 2;
		F.prices[0] = (scale_price) { "m5.large", "us-east-1a", t[i].price };
		F.prices[1] = (scale_price) { "m5.large", "us-east-1b", t[i].price };
		F.n_prices = 2;
		decide();
		cr_expect_eq(launched(SCALE_SPOT, false), t[i].spot, "row %zu", i);
		cr_expect_eq(launched(SCALE_ON_DEMAND, false), t[i].od, "row %zu", i);
		cr_expect_eq(M("web")->unplaced, t[i].unplaced, "row %zu", i);
		fini();
	}
}

Test(scale, launches_spread_over_subnets) {
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 4;
	H("i-1", SCALE_READY, 0); /* in 1a */
	decide();
	int a = 0, b = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == SCALE_ACTION_LAUNCH) {
			if (streq(F.out.actions[i].subnet, "subnet-a"))
				a += F.out.actions[i].count;
			else
				b += F.out.actions[i].count;
		}
	cr_expect_eq(a, 1);
	cr_expect_eq(b, 2);
}

Test(scale, spot_capacity_error_falls_back_to_on_demand) {
	markets(false, true, true, 0.05);
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 1;
	P()->n_instance_types = 1;
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.n_prices = 1;
	decide();
	cr_expect_eq(launched(SCALE_SPOT, false), 1);
	F.errs[0] = (scale_spot_error) { "web", "m5.large" };
	F.n_errs = 1;
	decide();
	cr_expect_eq(launched(SCALE_SPOT, false), 0);
	cr_expect_eq(launched(SCALE_ON_DEMAND, false), 1);
	/* an error for another pool does not count */
	F.errs[0].pool = "batch";
	decide();
	cr_expect_eq(launched(SCALE_SPOT, false), 1);
}

Test(scale, spot_interruption_drains_and_replaces_at_once) {
	markets(false, true, true, 0.05);
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 2;
	H("i-1", SCALE_READY, 3);
	scale_host *s = H("i-2", SCALE_READY, 3);
	s->market = SCALE_SPOT;
	s->interruption = true;
	decide();
	const scale_action *d = act(SCALE_ACTION_DRAIN, "i-2");
	cr_assert_not_null(d);
	cr_expect_str_eq(d->why, "spot interruption");
	cr_expect_eq(launched_all(), 1, "replacement in the same decision");
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 0, "jobs still running");

	/* next round: draining, jobs gone: terminate at once (no minimum) */
	s->state = SCALE_DRAINING;
	s->jobs = 0;
	s->launch_time = NOW - 20;
	H("i-3", SCALE_LAUNCHING, 0)->state_since = NOW;
	decide();
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "i-2")->why, "spot interruption, no jobs");
	cr_expect_null(act(SCALE_ACTION_UNDRAIN, "i-2"), "never put back");
	cr_expect_eq(launched_all(), 0);
}

Test(scale, fast_start_then_spot_replaces_on_demand) {
	markets(false, true, true, 0.05);
	P()->fast_start = true;
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 2;
	no_hysteresis();
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.prices[1] = (scale_price) { "m5.large", "us-east-1b", 0.01 };
	F.n_prices = 2;
	decide();
	cr_expect_eq(launched(SCALE_ON_DEMAND, false), 2, "fast start");
	cr_expect_eq(launched(SCALE_SPOT, false), 2, "their spot replacements");

	/* on-demand ready, spot still launching: nothing more */
	fx_init();
	markets(false, true, true, 0.05);
	P()->fast_start = true;
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 2;
	no_hysteresis();
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.n_prices = 1;
	H("od-1", SCALE_READY, 1);
	H("od-2", SCALE_READY, 1);
	H("sp-1", SCALE_LAUNCHING, 0)->market = SCALE_SPOT;
	H("sp-2", SCALE_LAUNCHING, 0)->market = SCALE_SPOT;
	F.hosts[2].state_since = F.hosts[3].state_since = NOW - 10;
	decide();
	cr_expect_eq(F.out.n_actions, 0, "wait for spot to run");

	/* spot ready: the on-demand pair drains */
	F.hosts[2].state = F.hosts[3].state = SCALE_READY;
	F.hosts[2].node_id = "sp-1";
	F.hosts[3].node_id = "sp-2";
	decide();
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "od-1"));
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "od-2"));
	cr_expect_eq(launched_all(), 0);
}

/* ---- state machine, safety ---------------------------------------------------------- */

Test(scale, health_transitions) {
	P()->min = 0;
	P()->max = 10;
	H("l", SCALE_LAUNCHING, 0)->node_id = "node-l";
	scale_host *r = H("r", SCALE_READY, 1);
	r->last_seen = NOW - 61;
	scale_host *g = H("g", SCALE_READY, 1);
	g->node_id = NULL;
	scale_host *u = H("u", SCALE_UNHEALTHY, 1);
	u->last_seen = NOW - 1;
	u->state_since = NOW - 100;
	decide();
	const scale_action *a = act(SCALE_ACTION_TRANSITION, "l");
	cr_assert_not_null(a);
	cr_expect_eq(a->from, SCALE_LAUNCHING);
	cr_expect_eq(a->to, SCALE_READY);
	cr_expect_eq(act(SCALE_ACTION_TRANSITION, "r")->to, SCALE_UNHEALTHY);
	cr_expect_str_eq(act(SCALE_ACTION_TRANSITION, "r")->why, "no heartbeat");
	cr_expect_eq(act(SCALE_ACTION_TRANSITION, "g")->to, SCALE_UNHEALTHY, "no node registered");
	cr_expect_eq(act(SCALE_ACTION_TRANSITION, "u")->to, SCALE_READY);
	cr_expect_eq(M("web")->transitions, 4);
	cr_expect_eq(M("web")->ready, 2, "l and u count as ready now");
}

Test(scale, untagged_instances_are_never_touched) {
	no_hysteresis();
	H("mine", SCALE_READY, 0);
	scale_host *x = H("foreign", SCALE_DRAINING, 0);
	x->cluster_tagged = false;
	scale_host *y = H("foreign2", SCALE_UNHEALTHY, 0);
	y->cluster_tagged = false;
	y->state_since = NOW - 20 * 3600;
	H("other-pool", SCALE_DRAINING, 0)->pool = "gone";
	decide();
	cr_expect_not(touched("foreign"));
	cr_expect_not(touched("foreign2"));
	cr_expect_not(touched("other-pool"), "a pool not in the policy is left alone");
	cr_expect_eq(M("web")->hosts[SCALE_DRAINING], 0, "not counted");
}

Test(scale, maintenance_pauses_everything) {
	no_hysteresis();
	H("d", SCALE_DRAINING, 0);
	H("l", SCALE_LAUNCHING, 0)->state_since = NOW - 7200;
	H("r", SCALE_READY, 500);
	F.in.maintenance = true;
	decide();
	cr_expect_eq(F.out.n_actions, 0);
	cr_expect_str_eq(M("web")->note, "maintenance");
	cr_expect_eq(M("web")->hosts[SCALE_DRAINING], 1, "inputs still published");
	cr_expect_eq(M("web")->jobs, 500);
	_cleanup_free_ char *p = plan();
	cr_expect(strstr(p, "no changes"), "%s", p);
}

Test(scale, client_tokens_are_deterministic) {
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 3;
	F.state[0] = (scale_pool_state) { .pool = "web", .launch_seq = 41 };
	F.n_state = 1;
	decide();
	cr_assert_eq(count(SCALE_ACTION_LAUNCH), 2, "two subnets");
	char t0[SCALE_TOKEN_MAX + 1], t1[SCALE_TOKEN_MAX + 1];
	strcpy(t0, F.out.actions[0].client_token);
	strcpy(t1, F.out.actions[1].client_token);
	cr_expect_str_neq(t0, t1);
	cr_expect_eq(F.out.state[0].launch_seq, 42);
	cr_expect(strstr(t0, "-42-0") != NULL, "%s", t0);
	cr_expect_leq(strlen(t0), 64);

	char want[SCALE_TOKEN_MAX + 1];
	scale_client_token("test", "web", 42, 1, want);
	cr_expect_str_eq(t1, want, "documented derivation");

	/* a successor deciding from the same stored state: same tokens, even
	 * with another type (the spot price moved) */
	markets(false, true, true, 1);
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.prices[1] = (scale_price) { "m5.large", "us-east-1b", 0.01 };
	F.n_prices = 2;
	decide();
	cr_expect_str_eq(F.out.actions[0].client_token, t0);
	cr_expect_eq(F.out.actions[0].market, SCALE_SPOT);

	/* the next decision (state stored): new tokens */
	F.state[0] = F.out.state[0];
	decide();
	cr_expect_str_neq(F.out.actions[0].client_token, t0);

	/* another cluster or pool: another token */
	char a[SCALE_TOKEN_MAX + 1], b[SCALE_TOKEN_MAX + 1], c[SCALE_TOKEN_MAX + 1];
	scale_client_token("test", "web", 42, 0, a);
	scale_client_token("prod", "web", 42, 0, b);
	scale_client_token("test", "api", 42, 0, c);
	cr_expect_str_eq(a, t0);
	cr_expect_str_neq(a, b);
	cr_expect_str_neq(a, c);
	/* a decision with no launch keeps the sequence */
	P()->hosts = 0;
	F.n_prices = 0;
	decide();
	cr_expect_eq(F.out.state[0].launch_seq, F.state[0].launch_seq);
	/* the longest pool name still fits */
	char longname[300];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	scale_client_token(longname, longname, UINT64_MAX, UINT32_MAX, a);
	cr_expect_leq(strlen(a), 64);
}

Test(scale, order_is_deterministic) {
	no_hysteresis();
	P()->jobs_per_host = 1;
	static const char *ids[] = { "i-9", "i-3", "i-7", "i-1", "i-5", "i-2" };
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		H(ids[i], i % 2 ? SCALE_READY : SCALE_DRAINING, i % 3 == 0 ? 0 : 1);
	F.hosts[1].last_seen = 0; /* i-3 -> unhealthy */
	decide();
	json_auto_t *first = scale_output_to_json(&F.out);
	/* reversed input order, same output */
	for (size_t i = 0; i < F.n / 2; i++) {
		scale_host t = F.hosts[i];
		F.hosts[i] = F.hosts[F.n - 1 - i];
		F.hosts[F.n - 1 - i] = t;
	}
	decide();
	json_auto_t *second = scale_output_to_json(&F.out);
	cr_expect(json_equal(first, second));
	/* kinds in order, ids in order within a kind */
	for (size_t i = 1; i < F.out.n_actions; i++) {
		const scale_action *x = &F.out.actions[i - 1], *y = &F.out.actions[i];
		cr_expect(x->kind < y->kind || (x->kind == y->kind && (!x->id || strcmp(x->id, y->id) < 0)),
			  "action %zu out of order", i);
	}
}

Test(scale, several_pools_by_name) {
	scale_pool *q = &F.pools[1];
	*q = F.pools[0];
	q->name = "batch";
	q->kind = SCALE_POLICY_FIXED;
	q->hosts = 1;
	F.policy.n_pools = 2;
	H("w", SCALE_READY, 0);
	decide();
	cr_assert_eq(F.out.n_metrics, 2);
	cr_expect_str_eq(F.out.metrics[0].pool, "batch");
	cr_expect_str_eq(F.out.metrics[1].pool, "web");
	cr_expect_str_eq(F.out.actions[0].pool, "batch");
	cr_expect_str_eq(F.out.state[0].pool, "batch");
}

Test(scale, dry_run_plan_and_json) {
	markets(false, true, true, 0.05);
	no_hysteresis();
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 2;
	F.prices[0] = (scale_price) { "m5.large", "us-east-1b", 0.01 };
	F.n_prices = 1;
	H("i-1", SCALE_READY, 0);
	H("i-2", SCALE_DRAINING, 0);
	H("i-3", SCALE_LAUNCHING, 0)->node_id = "n3";
	P()->hosts = 1;
	decide();
	_cleanup_free_ char *p = plan();
	cr_assert_not_null(p);
	cr_expect(strstr(p, "pool web: 1 launching, 1 ready, 1 draining, 0 unhealthy, 0 terminating; jobs 0 "
			    "(0 on unhealthy), queue 0; desired 1 hosts\n"),
		  "%s", p);
	cr_expect(strstr(p, "  mark i-3 launching -> ready: registered\n"), "%s", p);
	cr_expect(strstr(p, "  terminate i-2 (draining -> terminating): no jobs\n"), "%s", p);
	cr_expect(strstr(p, "  drain i-1 (ready -> draining): surplus\n"), "%s", p);

	P()->hosts = 4; /* i-1, i-3 (registered), i-2 undrained, one launch */
	decide();
	_cleanup_free_ char *p2 = plan();
	char tok[SCALE_TOKEN_MAX + 1];
	scale_client_token("test", "web", 1, 0, tok);
	char line[200];
	snprintf(line, sizeof line, "  launch 1 x m5.large spot in subnet-b (us-east-1b), token %s: capacity needed\n", tok);
	cr_expect(strstr(p2, line), "%s\nwant %s", p2, line);
	cr_expect(strstr(p2, "  undrain i-2 (draining -> ready): capacity needed\n"), "%s", p2);

	json_auto_t *j = scale_output_to_json(&F.out);
	json_t *a = json_array_get(json_object_get(j, "actions"), 2);
	cr_expect_str_eq(json_string_value(json_object_get(a, "action")), "launch");
	cr_expect_str_eq(json_string_value(json_object_get(a, "client_token")), tok);
	cr_expect_eq(json_integer_value(json_object_get(a, "count")), 1);
	json_t *m = json_object_get(json_object_get(j, "metrics"), "web");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(m, "hosts"), "draining")), 1);
	cr_expect_eq(json_integer_value(json_object_get(m, "desired_hosts")), 4);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(json_object_get(j, "state"), "web"), "launch_seq")), 1);
}

/* The decision log line names the warm pool's stops and starts only when
 * there are any (issue 17; test_scale_warm has the rules). */
Test(scale, decision_line_with_warm_pool) {
	char line[512];
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = 1;
	P()->warm_pool_size = 1;
	H("w-1", SCALE_STOPPED, 0);
	decide();
	scale_decision_line(&F.out, 0, false, line, sizeof line);
	cr_expect(strstr(line, " stopped=1") && strstr(line, " start=1") && !strstr(line, "stop=1"), "%s", line);
	fx_init();
	H("i-1", SCALE_READY, 1);
	decide();
	scale_decision_line(&F.out, 0, false, line, sizeof line);
	cr_expect(!strstr(line, "stop") && !strstr(line, "start"), "%s", line);
}

Test(scale, bad_input) {
	scale_output out;
	scale_input in = { .policy = &F.policy, .now = 0 };
	cr_expect_eq(scale_decide(&in, &out), -EINVAL);
	in.now = NOW;
	in.policy = NULL;
	cr_expect_eq(scale_decide(&in, &out), -EINVAL);
	cr_expect_eq(scale_decide(NULL, &out), -EINVAL);
}

/* ---- policy JSON -------------------------------------------------------------------- */

static json_t *J(const char *text) {
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
	cr_assert_not_null(v, "bad test JSON %s: %s", text, e.text);
	return v;
}

static const char *full_policy =
	"{\"pools\": {"
	" \"web\": {\"launch_template\": \"lt-0abc\", \"instance_types\": [\"m5.large\", \"m5a.large\"],"
	"  \"subnets\": [{\"id\": \"subnet-a\", \"availability_zone\": \"us-east-1a\"}, \"subnet-b\"],"
	"  \"markets\": [\"reserved\", \"spot\", \"on-demand\"], \"spot_max_price\": 0.05, \"fast_start\": true,"
	"  \"min\": 1, \"max\": 20, \"min_idle\": 1, \"jobs_per_host\": 40, \"policy\": \"demand\","
	"  \"capacity_factor\": 1.3, \"enabled\": true, \"desired\": null, \"billing\": \"hourly\","
	"  \"hourly_threshold\": 3000, \"scale_in_cooldown\": 300, \"scale_in_after\": 120,"
	"  \"forecast\": {\"enabled\": true, \"lookback\": 1209600, \"season\": 604800},"
	"  \"warm_pool\": {\"size\": 10, \"reuse_on_scale_in\": false},"
	"  \"schedule\": [{\"cron\": \"0 10 * * 1-5\", \"min\": 8, \"duration\": 7200},"
	"               {\"at\": \"2026-12-24T11:00:00+01:00\", \"min\": 12, \"lead\": 1800}]},"
	" \"batch\": {\"launch_template\": \"lt-b\", \"instance_types\": [\"c5.xlarge\"], \"subnets\": [\"subnet-c\"],"
	"  \"policy\": \"queue\", \"max_queued_jobs\": 5, \"max\": 3}"
	"}}";

Test(policy, valid_and_defaults) {
	json_auto_t *doc = J(full_policy);
	scale_policy p = { 0 };
	scale_error err;
	int r = scale_policy_from_json(doc, &p, &err);
	cr_assert_eq(r, 0, "%s", err.message);
	cr_assert_eq(p.n_pools, 2);
	cr_expect_str_eq(p.pools[0].name, "batch", "sorted");
	const scale_pool *w = scale_policy_find(&p, "web");
	cr_assert_not_null(w);
	cr_expect_str_eq(w->launch_template, "lt-0abc");
	cr_expect_eq(w->n_instance_types, 2);
	cr_expect_str_eq(w->instance_types[1], "m5a.large");
	cr_expect_str_eq(w->subnets[0].availability_zone, "us-east-1a");
	cr_expect_null(w->subnets[1].availability_zone);
	cr_expect(w->market_reserved && w->market_spot && w->market_on_demand && w->fast_start);
	cr_expect_eq(w->spot_max_price, 0.05);
	cr_expect_eq(w->min, 1);
	cr_expect_eq(w->max, 20);
	cr_expect_eq(w->capacity_factor, 1.3);
	cr_expect_eq(w->desired, -1);
	cr_expect_eq(w->billing, SCALE_BILLING_HOURLY);
	cr_expect_eq(w->scale_in_after, 120);

	const scale_pool *b = scale_policy_find(&p, "batch");
	cr_expect_eq(b->kind, SCALE_POLICY_QUEUE);
	/* defaults */
	cr_expect(b->market_reserved && !b->market_spot && b->market_on_demand);
	cr_expect_eq(b->min, 0);
	cr_expect_eq(b->min_idle, 0);
	cr_expect_eq(b->jobs_per_host, 0);
	cr_expect_eq(b->capacity_factor, 0);
	cr_expect_eq(b->memory_threshold, 0.8);
	cr_expect_eq(b->hosts, -1);
	cr_expect(b->enabled);
	cr_expect_eq(b->desired, -1);
	cr_expect_eq(b->billing, SCALE_BILLING_PER_SECOND);
	cr_expect_eq(b->hourly_threshold, 3000);
	cr_expect_eq(b->min_lifetime, 60);
	cr_expect_eq(b->scale_in_cooldown, 600);
	cr_expect_eq(b->scale_in_after, 600);
	cr_expect_eq(b->launch_timeout, 600);
	cr_expect_eq(b->unhealthy_timeout, 43200);
	cr_expect_eq(b->health_timeout, 60);
	cr_expect_eq(b->terminate_retry, 300);
	cr_expect(!b->forecast.enabled);
	cr_expect_eq(b->forecast.lookback, 604800);
	cr_expect_eq(b->forecast.season, 86400);
	cr_expect_eq(b->forecast.horizon, 300);
	cr_expect_eq(b->warm_pool_size, 0);
	cr_expect(b->warm_reuse_on_scale_in);
	cr_expect_eq(b->n_schedule, 0);
	cr_expect_eq(w->kind, SCALE_POLICY_DEMAND);
	cr_expect(w->forecast.enabled);
	cr_expect_eq(w->forecast.lookback, 1209600);
	cr_expect_eq(w->forecast.season, 604800);
	cr_expect_eq(w->forecast.horizon, 300, "a default inside the object");
	cr_expect_eq(w->warm_pool_size, 10);
	cr_expect(!w->warm_reuse_on_scale_in);
	cr_assert_eq(w->n_schedule, 2);
	cr_expect_str_eq(w->schedule[0].cron, "0 10 * * 1-5");
	cr_expect_eq(w->schedule[0].min, 8);
	cr_expect_eq(w->schedule[0].duration, 7200);
	cr_expect_eq(w->schedule[0].lead, 900, "default");
	cr_expect_null(w->schedule[1].cron);
	cr_expect_eq(w->schedule[1].at, 1798106400, "2026-12-24T10:00:00Z");
	cr_expect_eq(w->schedule[1].duration, 3600, "default");
	cr_expect_eq(w->schedule[1].lead, 1800);

	/* round trip */
	json_auto_t *again = scale_policy_to_json(&p);
	scale_policy q = { 0 };
	cr_assert_eq(scale_policy_from_json(again, &q, &err), 0, "%s", err.message);
	json_auto_t *third = scale_policy_to_json(&q);
	cr_expect(json_equal(again, third));
	json_t *ws = json_object_get(json_object_get(json_object_get(again, "pools"), "web"), "schedule");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(ws, 1), "at")), "2026-12-24T10:00:00Z",
			 "written in UTC");
	cr_expect_eq(json_array_size(json_object_get(json_object_get(json_object_get(again, "pools"), "batch"), "schedule")),
		     0, "an empty schedule is written too");
	scale_policy_done(&p);
	scale_policy_done(&q);

	/* empty */
	json_auto_t *empty = J("{}");
	cr_expect_eq(scale_policy_from_json(empty, &p, &err), 0);
	cr_expect_eq(p.n_pools, 0);
	scale_policy_done(&p);
}

Test(policy, every_error_names_its_key) {
	static const char *base =
		"\"launch_template\": \"lt\", \"instance_types\": [\"m5.large\"], \"subnets\": [\"s-1\"]";
	static const struct {
		const char *extra; /* added to a valid pool "web" */
		const char *key, *message;
	} t[] = {
		{ "\"max\": 1, \"min\": 2", "pools.web.max", "pools.web.max: must be >= min" },
		{ "\"min\": -1", "pools.web.min", "pools.web.min: must be >= 0" },
		{ "\"min\": \"1\"", "pools.web.min", "pools.web.min: must be an integer" },
		{ "\"max\": 1.5", "pools.web.max", "pools.web.max: must be an integer" },
		{ "\"policy\": \"magic\"", "pools.web.policy", NULL },
		{ "\"billing\": \"monthly\"", "pools.web.billing", NULL },
		{ "\"markets\": [\"spot\"]", "pools.web.spot_max_price", NULL },
		{ "\"markets\": [\"cheap\"]", "pools.web.markets[0]", NULL },
		{ "\"markets\": []", "pools.web.markets", NULL },
		{ "\"spot_max_price\": -1", "pools.web.spot_max_price", NULL },
		{ "\"fast_start\": true", "pools.web.fast_start", NULL },
		{ "\"fast_start\": 1", "pools.web.fast_start", "pools.web.fast_start: must be true or false" },
		{ "\"capacity_factor\": 0.5", "pools.web.capacity_factor", NULL },
		{ "\"memory_threshold\": 0", "pools.web.memory_threshold", NULL },
		{ "\"memory_threshold\": 1.5", "pools.web.memory_threshold", NULL },
		{ "\"desired\": 50", "pools.web.desired", "pools.web.desired: must be between min and max" },
		{ "\"policy\": \"fixed\", \"hosts\": 99", "pools.web.hosts", NULL },
		{ "\"hourly_threshold\": 3600", "pools.web.hourly_threshold", "pools.web.hourly_threshold: must be <= 3599" },
		{ "\"launch_timeout\": 0", "pools.web.launch_timeout", NULL },
		{ "\"unhealthy_timeout\": -5", "pools.web.unhealthy_timeout", NULL },
		{ "\"scale_in_cooldown\": true", "pools.web.scale_in_cooldown", NULL },
		{ "\"enabled\": \"yes\"", "pools.web.enabled", NULL },
		{ "\"maxx\": 3", "pools.web.maxx", "pools.web.maxx: unknown key" },
		{ "\"min_idle\": -1", "pools.web.min_idle", NULL },
		{ "\"jobs_per_host\": -1", "pools.web.jobs_per_host", NULL },
		{ "\"max_queued_jobs\": -1", "pools.web.max_queued_jobs", NULL },
		{ "\"policy\": \"magic\"", "pools.web.policy",
		  "pools.web.policy: must be \"jobs\", \"queue\", \"threshold\", \"fixed\" or \"demand\"" },
		/* issue 17: forecast, warm_pool, schedule */
		{ "\"forecast\": true", "pools.web.forecast", NULL },
		{ "\"forecast\": {\"enabled\": 1}", "pools.web.forecast.enabled", NULL },
		{ "\"forecast\": {\"lookback\": 60}", "pools.web.forecast.lookback", "pools.web.forecast.lookback: must be >= 3600" },
		{ "\"forecast\": {\"lookback\": 99999999}", "pools.web.forecast.lookback", NULL },
		{ "\"forecast\": {\"season\": 604800, \"lookback\": 86400}", "pools.web.forecast.season",
		  "pools.web.forecast.season: must be <= lookback" },
		{ "\"forecast\": {\"horizon\": -1}", "pools.web.forecast.horizon", NULL },
		{ "\"forecast\": {\"seasons\": 2}", "pools.web.forecast.seasons", "pools.web.forecast.seasons: unknown key" },
		{ "\"warm_pool\": 3", "pools.web.warm_pool", NULL },
		{ "\"warm_pool\": {\"size\": -1}", "pools.web.warm_pool.size", NULL },
		{ "\"warm_pool\": {\"size\": 11}", "pools.web.warm_pool.size", "pools.web.warm_pool.size: must be <= 10" },
		{ "\"warm_pool\": {\"reuse_on_scale_in\": \"yes\"}", "pools.web.warm_pool.reuse_on_scale_in", NULL },
		{ "\"warm_pool\": {\"sise\": 1}", "pools.web.warm_pool.sise", NULL },
		{ "\"schedule\": {}", "pools.web.schedule", NULL },
		{ "\"schedule\": [3]", "pools.web.schedule[0]", NULL },
		{ "\"schedule\": [{\"min\": 1}]", "pools.web.schedule[0]",
		  "pools.web.schedule[0]: needs exactly one of \"cron\" and \"at\"" },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"at\": \"2026-12-24T10:00:00Z\", \"min\": 1}]",
		  "pools.web.schedule[0]", NULL },
		{ "\"schedule\": [{\"cron\": \"0 25 * * *\", \"min\": 1}]", "pools.web.schedule[0].cron", NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * *\", \"min\": 1}]", "pools.web.schedule[0].cron", NULL },
		{ "\"schedule\": [{\"at\": \"tomorrow\", \"min\": 1}]", "pools.web.schedule[0].at", NULL },
		{ "\"schedule\": [{\"at\": \"2026-12-24T10:00:00Z\"}]", "pools.web.schedule[0]",
		  "pools.web.schedule[0]: needs \"min\"" },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": 11}]", "pools.web.schedule[0].min", NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": -1}]", "pools.web.schedule[0].min", NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": 1, \"duration\": 0}]",
		  "pools.web.schedule[0].duration", NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": 1, \"lead\": -5}]", "pools.web.schedule[0].lead",
		  NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": 1}, {\"cron\": \"x\", \"min\": 1}]",
		  "pools.web.schedule[1].cron", NULL },
		{ "\"schedule\": [{\"cron\": \"0 10 * * *\", \"min\": 1, \"mins\": 1}]", "pools.web.schedule[0].mins",
		  NULL },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		char text[600];
		snprintf(text, sizeof text, "{\"pools\": {\"web\": {%s, %s}}}", base, t[i].extra);
		json_auto_t *doc = J(text);
		scale_policy p = { 0 };
		scale_error err;
		int r = scale_policy_from_json(doc, &p, &err);
		cr_expect_eq(r, -EINVAL, "row %zu (%s): %d", i, t[i].extra, r);
		cr_expect_str_eq(err.key, t[i].key, "row %zu: %s", i, err.message);
		if (t[i].message)
			cr_expect_str_eq(err.message, t[i].message, "row %zu", i);
		else
			cr_expect(strncmp(err.message, t[i].key, strlen(t[i].key)) == 0, "row %zu: %s", i, err.message);
		cr_expect_eq(p.n_pools, 0, "nothing handed out on error");
	}

	/* structure errors */
	static const struct {
		const char *doc, *key;
	} s[] = {
		{ "[]", "" },
		{ "{\"pool\": {}}", "pool" },
		{ "{\"pools\": []}", "pools" },
		{ "{\"pools\": {\"web\": 3}}", "pools.web" },
		{ "{\"pools\": {\"web\": {\"instance_types\": [\"a\"], \"subnets\": [\"s\"]}}}", "pools.web.launch_template" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"subnets\": [\"s\"]}}}", "pools.web.instance_types" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [], \"subnets\": [\"s\"]}}}",
		  "pools.web.instance_types" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\", \"a\"], \"subnets\": [\"s\"]}}}",
		  "pools.web.instance_types[1]" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\", 3], \"subnets\": [\"s\"]}}}",
		  "pools.web.instance_types[1]" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"]}}}", "pools.web.subnets" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"], \"subnets\": [{\"az\": 1}]}}}",
		  "pools.web.subnets[0].az" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"], \"subnets\": [{}]}}}",
		  "pools.web.subnets[0].id" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"lt\", \"instance_types\": [\"a\"], \"subnets\": [\"s\", \"s\"]}}}",
		  "pools.web.subnets[1]" },
		{ "{\"pools\": {\"web\": {\"launch_template\": \"\", \"instance_types\": [\"a\"], \"subnets\": [\"s\"]}}}",
		  "pools.web.launch_template" },
		/* the first bad pool by name is reported */
		{ "{\"pools\": {\"z\": 1, \"a\": 2}}", "pools.a" },
	};
	for (size_t i = 0; i < ELEMENTSOF(s); i++) {
		json_auto_t *doc = J(s[i].doc);
		scale_policy p = { 0 };
		scale_error err;
		cr_expect_eq(scale_policy_from_json(doc, &p, &err), -EINVAL, "doc %zu", i);
		cr_expect_str_eq(err.key, s[i].key, "doc %zu: %s", i, err.message);
	}
}

/* ---- host records ------------------------------------------------------------------- */

Test(policy, host_record_round_trip) {
	scale_host h = {
		.id = "i-0abc", .pool = "web", .state = SCALE_DRAINING, .market = SCALE_SPOT,
		.instance_type = "m5.large", .availability_zone = "us-east-1a", .launch_time = NOW - 100,
		.state_since = NOW - 5, .node_id = "node-7", .last_seen = NOW, .jobs = 3, .job_capacity = 40,
		.memory_used = 0.25, .cluster_tagged = true, .hold = true, .autoscale_off = false, .interruption = true,
		.winding_down = true, .warm = true,
	};
	json_auto_t *j = scale_host_to_json(&h);
	cr_assert_not_null(j);
	scale_host back = { 0 };
	scale_error err;
	cr_assert_eq(scale_host_from_json(j, &back, &err), 0, "%s", err.message);
	json_auto_t *j2 = scale_host_to_json(&back);
	cr_expect(json_equal(j, j2));
	cr_expect_str_eq(back.id, "i-0abc");
	cr_expect_eq(back.state, SCALE_DRAINING);
	cr_expect_eq(back.market, SCALE_SPOT);
	cr_expect_eq(back.launch_time, NOW - 100);
	cr_expect_eq(back.memory_used, 0.25);
	cr_expect(back.hold && back.interruption && !back.autoscale_off && back.winding_down && back.warm);
	scale_host_done(&back);
	json_auto_t *stopped = J("{\"id\": \"i-1\", \"pool\": \"web\", \"state\": \"stopped\"}");
	cr_assert_eq(scale_host_from_json(stopped, &back, &err), 0, "%s", err.message);
	cr_expect_eq(back.state, SCALE_STOPPED);
	cr_expect(!back.warm, "warm: false unless said");
	json_auto_t *sj = scale_host_to_json(&back);
	cr_expect_null(json_object_get(sj, "warm"), "omitted when false");
	scale_host_done(&back);
	json_auto_t *badwarm = J("{\"id\": \"i-1\", \"pool\": \"web\", \"state\": \"stopped\", \"warm\": 1}");
	cr_expect_eq(scale_host_from_json(badwarm, &back, &err), -EINVAL);
	cr_expect_str_eq(err.key, "host.warm");

	/* every state and market */
	for (int s = 0; s < _SCALE_STATE_MAX; s++)
		for (int m = 0; m < _SCALE_MARKET_MAX; m++) {
			h.state = s;
			h.market = m;
			h.node_id = s % 2 ? NULL : "n";
			json_auto_t *x = scale_host_to_json(&h);
			cr_assert_eq(scale_host_from_json(x, &back, &err), 0);
			json_auto_t *y = scale_host_to_json(&back);
			cr_expect(json_equal(x, y), "state %d market %d", s, m);
			scale_host_done(&back);
		}

	/* minimal: defaults */
	json_auto_t *min = J("{\"id\": \"i-1\", \"pool\": \"web\", \"state\": \"launching\", \"future_field\": 1}");
	cr_assert_eq(scale_host_from_json(min, &back, &err), 0, "%s", err.message);
	cr_expect(back.cluster_tagged, "records are the leader's: tagged unless said");
	cr_expect_eq(back.market, SCALE_ON_DEMAND);
	cr_expect_null(back.node_id);
	scale_host_done(&back);
}

Test(policy, host_record_errors) {
	static const struct {
		const char *doc, *key;
	} t[] = {
		{ "[]", "host" },
		{ "{\"pool\": \"web\", \"state\": \"ready\"}", "host.id" },
		{ "{\"id\": \"i\", \"state\": \"ready\"}", "host.pool" },
		{ "{\"id\": \"i\", \"pool\": \"web\"}", "host.state" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"asleep\"}", "host.state" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"market\": \"reserved\"}", "host.market" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"jobs\": -1}", "host.jobs" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"launch_time\": \"yesterday\"}", "host.launch_time" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"memory_used\": 2}", "host.memory_used" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"hold\": \"yes\"}", "host.hold" },
		{ "{\"id\": \"i\", \"pool\": \"web\", \"state\": \"ready\", \"node_id\": 5}", "host.node_id" },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		json_auto_t *doc = J(t[i].doc);
		scale_host h = { 0 };
		scale_error err;
		cr_expect_eq(scale_host_from_json(doc, &h, &err), -EINVAL, "doc %zu", i);
		cr_expect_str_eq(err.key, t[i].key, "doc %zu: %s", i, err.message);
		cr_expect_null(h.id);
	}
}

Test(policy, names) {
	for (int s = 0; s < _SCALE_STATE_MAX; s++) {
		scale_state back;
		cr_expect_eq(scale_state_from_string(scale_state_to_string(s), &back), 0);
		cr_expect_eq(back, s);
	}
	scale_kind k;
	cr_expect_eq(scale_kind_from_string("threshold", &k), 0);
	cr_expect_eq(k, SCALE_POLICY_THRESHOLD);
	cr_expect_eq(scale_kind_from_string("nope", &k), -EINVAL);
	cr_expect_null(scale_state_to_string(_SCALE_STATE_MAX));
	cr_expect_str_eq(scale_action_kind_to_string(SCALE_ACTION_UNDRAIN), "undrain");
}
