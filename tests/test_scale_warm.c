/* test_scale_warm.c — the rules of issue 17 in the pure decision: the
 * demand policy, the forecast and the schedule raising the wanted count
 * (and holding off a drain), schedules' lead, duration and overlap, and
 * the warm pool's transitions (fill, start, return, refill, shrink, hold,
 * cluster stop, tokens, maintenance). The codecs' new keys are in
 * test_scale.c with the others. */
#include <criterion/criterion.h>
#include <math.h>

#include "scale-fixture.h"
#include "scale-forecast.h"

TestSuite(warm, .init = fx_init, .fini = fini);

static int count_why(scale_action_kind k, const char *why) {
	int n = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		n += F.out.actions[i].kind == k && streq_ptr(F.out.actions[i].why, why);
	return n;
}

static int launched_warm(bool warm) {
	int n = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == SCALE_ACTION_LAUNCH && F.out.actions[i].warm == warm)
			n += F.out.actions[i].count;
	return n;
}

/* A stopped warm host launched `age` s ago. */
static scale_host *W(const char *id, int64_t age) {
	scale_host *h = H(id, SCALE_STOPPED, 0);
	h->launch_time = NOW - age;
	h->warm = true;
	return h;
}

/* A pool that wants exactly n hosts, whatever runs. */
static void fixed(int n) {
	P()->kind = SCALE_POLICY_FIXED;
	P()->hosts = n;
}

static void forecast(int demand) {
	F.forecasts[0] = (scale_forecast) { .pool = "web", .demand = demand };
	F.n_forecasts = 1;
}

/* ---- demand ------------------------------------------------------------------------- */

Test(warm, demand_sees_the_queue) {
	/* the spike of issue 17: 8 jobs on 2 hosts, 72 waiting, 4 per host */
	P()->kind = SCALE_POLICY_DEMAND;
	P()->jobs_per_host = 4;
	H("i-1", SCALE_READY, 4);
	H("i-2", SCALE_READY, 4);
	F.queues[0] = (scale_queue) { "web", 72 };
	F.n_queues = 1;
	decide();
	double want = 80 + 2 * sqrt(80);
	cr_expect(fabs(M("web")->desired_capacity - want) < 1e-9, "%g", M("web")->desired_capacity);
	cr_expect_eq(M("web")->desired_hosts, (int) ceil(want / 4));
	cr_expect_eq(launched_all(), (int) ceil(want / 4) - 2, "launch for the demand at once");

	/* the jobs policy sees only what runs: 8 + 2 sqrt 8 -> 4 hosts */
	P()->kind = SCALE_POLICY_JOBS;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 4);
}

Test(warm, demand_counts_launching_and_not_unhealthy) {
	P()->kind = SCALE_POLICY_DEMAND;
	P()->jobs_per_host = 4;
	H("i-1", SCALE_READY, 4);
	H("i-2", SCALE_READY, 4);
	for (int i = 0; i < 20; i++) {
		static char ids[20][16];
		snprintf(ids[i], sizeof ids[i], "l-%02d", i);
		H(ids[i], SCALE_LAUNCHING, 0)->state_since = NOW - 60;
	}
	F.queues[0] = (scale_queue) { "web", 72 };
	F.n_queues = 1;
	decide();
	cr_expect_eq(launched_all(), 25 - 22, "launching hosts are capacity arriving");

	fx_init();
	P()->kind = SCALE_POLICY_DEMAND;
	P()->jobs_per_host = 4;
	H("i-1", SCALE_READY, 4);
	scale_host *u = H("u", SCALE_UNHEALTHY, 4);
	u->last_seen = 0;
	decide();
	cr_expect_eq(M("web")->desired_capacity, 4 + 2 * 2.0, "jobs on an unhealthy host are not served");

	/* no demand: no host (min decides) */
	fx_init();
	P()->kind = SCALE_POLICY_DEMAND;
	decide();
	cr_expect_eq(M("web")->policy_hosts, 0);
	cr_expect_eq(M("web")->desired_hosts, 0);
	P()->min = 2;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 2);

	/* capacity_factor instead of the sqrt */
	fx_init();
	P()->kind = SCALE_POLICY_DEMAND;
	P()->capacity_factor = 1.5;
	F.queues[0] = (scale_queue) { "web", 40 };
	F.n_queues = 1;
	decide();
	cr_expect_eq(M("web")->desired_capacity, 60);
	cr_expect_eq(M("web")->desired_hosts, 6);
}

/* ---- forecast ----------------------------------------------------------------------- */

Test(warm, forecast_raises_want_for_every_policy) {
	H("i-1", SCALE_READY, 4);
	decide();
	cr_expect_eq(M("web")->forecast, -1, "no forecast given");
	cr_expect_eq(M("web")->desired_hosts, 1);

	forecast(100);
	decide();
	cr_expect_eq(M("web")->forecast, 100);
	cr_expect_eq(M("web")->policy_hosts, 1, "the policy's own answer");
	cr_expect_eq(M("web")->desired_hosts, 12, "(100 + 20) / 10");
	cr_expect_eq(launched_all(), 11);

	/* a lower forecast changes nothing */
	forecast(1);
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);

	/* another pool's forecast is not ours */
	F.forecasts[0].pool = "other";
	F.forecasts[0].demand = 500;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 1);
	cr_expect_eq(M("web")->forecast, -1);

	/* the manual override still wins, a cluster stop still makes 0 */
	forecast(100);
	P()->desired = 3;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 3);
	P()->desired = -1;
	F.in.stop = true;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 0);

	/* clamped to max */
	F.in.stop = false;
	P()->max = 5;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 5);
}

Test(warm, forecast_peak_blocks_a_drain) {
	no_hysteresis();
	for (int i = 0; i < 10; i++) {
		static char ids[10][16];
		snprintf(ids[i], sizeof ids[i], "i-%02d", i);
		H(ids[i], SCALE_READY, 0);
	}
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 9, "idle: the surplus drains");

	forecast(80);   /* 80 + 2 sqrt 80 = 97.9 slots: 10 hosts */
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0, "a peak ahead: nothing drains");
	cr_expect_eq(M("web")->surplus, 0);
	cr_expect_eq(F.out.state[0].surplus_since, 0, "no surplus clock runs");

	forecast(30);   /* 30 + 11 = 41 slots: 5 hosts */
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 5);
}

/* ---- schedules ---------------------------------------------------------------------- */

static time_t utc(int y, int mo, int d, int h, int mi, int s) {
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return timegm(&tm);
}

Test(warm, schedule_lead_duration_overlap) {
	scale_schedule s[3] = {
		{ .cron = "0 10 * * *", .min = 5, .duration = 3600, .lead = 900 },
		{ .cron = "30 10 * * *", .min = 8, .duration = 3600, .lead = 0 },
		{ .cron = "30 23 * * *", .min = 3, .duration = 3600, .lead = 600 },
	};
	P()->schedule = s;
	P()->n_schedule = 3;
	static const struct {
		int h, m, s, want;
	} t[] = {
		{ 9, 44, 59, 0 },  /* before the lead */
		{ 9, 45, 0, 5 },   /* lead begins */
		{ 10, 0, 0, 5 },   /* the event */
		{ 10, 29, 59, 5 },
		{ 10, 30, 0, 8 },  /* overlap: the larger */
		{ 10, 59, 59, 8 },
		{ 11, 0, 0, 8 },   /* the first ended, the second holds */
		{ 11, 29, 59, 8 },
		{ 11, 30, 0, 0 },  /* both ended */
		{ 23, 19, 59, 0 },
		{ 23, 20, 0, 3 },  /* lead before 23:30 */
		{ 0, 29, 59, 3 },  /* across midnight (the next day) */
		{ 0, 30, 0, 0 },
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		int day = t[i].h == 0 ? 16 : 15;
		time_t now = utc(2026, 12, day, t[i].h, t[i].m, t[i].s);
		cr_expect_eq(scale_schedule_min(P(), now), t[i].want, "%02d:%02d:%02d: %d, want %d", t[i].h, t[i].m,
			     t[i].s, scale_schedule_min(P(), now), t[i].want);
	}

	/* through the decision: a minimum, clamped to max, under the override */
	time_t at = utc(2026, 12, 15, 10, 40, 0);
	decide_at(at);
	cr_expect_eq(M("web")->schedule_min, 8);
	cr_expect_eq(M("web")->policy_hosts, 1);
	cr_expect_eq(M("web")->desired_hosts, 8);
	cr_expect_eq(launched_all(), 8);
	P()->max = 6;
	decide_at(at);
	cr_expect_eq(M("web")->desired_hosts, 6);
	P()->desired = 2;
	decide_at(at);
	cr_expect_eq(M("web")->desired_hosts, 2, "the operator's count wins");
}

Test(warm, schedule_at_past_and_future) {
	time_t ev = utc(2026, 12, 24, 10, 0, 0);
	scale_schedule s = { .at = ev, .min = 4, .duration = 3600, .lead = 900 };
	P()->schedule = &s;
	P()->n_schedule = 1;
	cr_expect_eq(scale_schedule_min(P(), ev - 86400), 0, "a day ahead");
	cr_expect_eq(scale_schedule_min(P(), ev - 901), 0);
	cr_expect_eq(scale_schedule_min(P(), ev - 900), 4);
	cr_expect_eq(scale_schedule_min(P(), ev + 3599), 4);
	cr_expect_eq(scale_schedule_min(P(), ev + 3600), 0, "ended");
	cr_expect_eq(scale_schedule_min(P(), ev + 86400 * 365), 0, "long past");
	s.lead = 0;
	cr_expect_eq(scale_schedule_min(P(), ev - 1), 0);
	cr_expect_eq(scale_schedule_min(P(), ev), 4);
}

/* ---- warm pool ---------------------------------------------------------------------- */

Test(warm, fill_launches_warm_on_demand_without_reservation) {
	fixed(0);
	P()->warm_pool_size = 2;
	P()->market_spot = true;
	P()->spot_max_price = 1;
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.n_prices = 1;
	F.res[0] = (scale_reservation) { "m5.large", NULL, 5 };
	F.n_res = 1;
	decide();
	cr_expect_eq(launched_warm(true), 2);
	cr_expect_eq(launched_warm(false), 0);
	cr_expect_eq(launched(SCALE_ON_DEMAND, false), 2, "on-demand, no reservation, no spot");
	cr_expect_eq(M("web")->warm_launching, 2);
	cr_expect_geq(count_why(SCALE_ACTION_LAUNCH, "warm pool refill"), 1);
	cr_expect_eq(F.out.state[0].launch_seq, 1, "the pool's token sequence moved on");
	_cleanup_free_ char *text = plan();
	cr_expect(strstr(text, "(warm)"), "%s", text);

	/* under way: not launched again, not capacity */
	fx_init();
	fixed(1);
	P()->warm_pool_size = 2;
	for (const char *id = "w-1"; id; id = streq(id, "w-1") ? "w-2" : NULL) {
		scale_host *h = H(id, SCALE_LAUNCHING, 0);
		h->warm = true;
		h->state_since = NOW - 60;      /* within launch_timeout */
	}
	decide();
	cr_expect_eq(launched_warm(true), 0);
	cr_expect_eq(launched_warm(false), 1, "warm launches are no capacity");
	cr_expect_eq(M("web")->warm_launching, 2);
	cr_expect_eq(M("web")->launching, 0);
}

Test(warm, registered_warm_host_is_stopped) {
	fixed(0);
	P()->warm_pool_size = 1;
	scale_host *w = H("w-1", SCALE_LAUNCHING, 0);
	w->warm = true;
	w->node_id = "w-1";
	decide();
	const scale_action *t = act(SCALE_ACTION_TRANSITION, "w-1"), *s = act(SCALE_ACTION_STOP, "w-1");
	cr_assert_not_null(t);
	cr_assert_not_null(s);
	cr_expect_eq(s->from, SCALE_READY);
	cr_expect_eq(s->to, SCALE_STOPPED);
	cr_expect_str_eq(s->why, "warm pool fill");
	cr_expect_eq(M("web")->stopped, 1);
	cr_expect_eq(M("web")->ready, 0, "not capacity");
	cr_expect_eq(launched_all(), 0, "the pool is full");
	_cleanup_free_ char *text = plan();
	cr_expect(strstr(text, "stop w-1 (ready -> stopped): warm pool fill"), "%s", text);

	/* stopped: no heartbeat expected, never unhealthy, never drained */
	fx_init();
	fixed(0);
	no_hysteresis();
	P()->warm_pool_size = 1;
	W("w-1", 7200)->last_seen = 0;
	decide();
	cr_expect_eq(F.out.n_actions, 0);
	cr_expect_eq(M("web")->hosts[SCALE_STOPPED], 1);
	cr_expect_eq(M("web")->ready, 0);
}

Test(warm, grow_starts_stopped_first_then_launches) {
	P()->warm_pool_size = 3;
	P()->warm_refill_after = 0;     /* refill_lent_hosts_waits has the wait */
	W("w-new", 600);
	W("w-old", 9000);
	W("w-mid", 3000);
	fixed(2);
	decide();
	cr_expect_eq(count(SCALE_ACTION_START), 2);
	cr_expect_not_null(act(SCALE_ACTION_START, "w-old"), "oldest first");
	cr_expect_not_null(act(SCALE_ACTION_START, "w-mid"));
	cr_expect_null(act(SCALE_ACTION_START, "w-new"));
	const scale_action *a = act(SCALE_ACTION_START, "w-old");
	cr_expect_eq(a->from, SCALE_STOPPED);
	cr_expect_eq(a->to, SCALE_LAUNCHING);
	cr_expect_str_eq(a->why, "capacity needed, warm start");
	cr_expect_eq(M("web")->started, 2);
	cr_expect_eq(launched_warm(false), 0);
	cr_expect_eq(launched_warm(true), 2, "the pool refilled behind them");
	_cleanup_free_ char *text = plan();
	cr_expect(strstr(text, "start w-old (stopped -> launching): capacity needed, warm start"), "%s", text);

	fixed(5);
	decide();
	cr_expect_eq(count(SCALE_ACTION_START), 3);
	cr_expect_eq(launched_warm(false), 2, "the rest launched");
	cr_expect_eq(launched_warm(true), 3);

	/* undrain comes before a start */
	fx_init();
	P()->warm_pool_size = 1;
	W("w-1", 600);
	H("d-1", SCALE_DRAINING, 0);
	fixed(1);
	decide();
	cr_expect_not_null(act(SCALE_ACTION_UNDRAIN, "d-1"));
	cr_expect_eq(count(SCALE_ACTION_START), 0);
}

Test(warm, scale_in_returns_to_the_pool_then_terminates) {
	fixed(0);
	P()->warm_pool_size = 2;
	H("d-1", SCALE_DRAINING, 0);
	H("d-2", SCALE_DRAINING, 0);
	H("d-3", SCALE_DRAINING, 0);
	H("d-4", SCALE_DRAINING, 0)->market = SCALE_SPOT;
	decide();
	cr_expect_eq(count_why(SCALE_ACTION_STOP, "returned to the warm pool"), 2);
	cr_expect_not_null(act(SCALE_ACTION_STOP, "d-1"));
	cr_expect_not_null(act(SCALE_ACTION_STOP, "d-2"));
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "d-3"), "the pool is full");
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "d-4"), "spot is never stopped");
	cr_expect_eq(M("web")->stopped, 2);
	cr_expect_eq(launched_all(), 0, "no refill: the returns filled it");

	/* reuse off: terminate as before, refill by launching */
	P()->warm_reuse_on_scale_in = false;
	decide();
	cr_expect_eq(count(SCALE_ACTION_STOP), 0);
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 4);
	cr_expect_eq(launched_warm(true), 2);

	/* billing decides when, as for a terminate */
	fx_init();
	fixed(0);
	P()->warm_pool_size = 2;
	H("d-1", SCALE_DRAINING, 0)->launch_time = NOW - 30;
	decide();
	cr_expect_eq(count(SCALE_ACTION_STOP), 0, "younger than min_lifetime");
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 0);
}

Test(warm, held_stopped_host_is_left_alone_but_counts) {
	P()->warm_pool_size = 1;
	W("w-held", 9000)->hold = true;
	W("w-2", 600);
	fixed(1);
	decide();
	cr_expect_null(act(SCALE_ACTION_START, "w-held"));
	cr_expect_not_null(act(SCALE_ACTION_START, "w-2"));
	cr_expect_eq(launched_warm(true), 0, "the held host fills the pool");

	/* too many: the surplus goes, never the held one */
	fixed(0);
	decide();
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 1);
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "w-2"));
	cr_expect_str_eq(act(SCALE_ACTION_TERMINATE, "w-2")->why, "warm pool shrunk");
	cr_expect_not(touched("w-held"));

	F.in.stop = true;
	decide();
	cr_expect_not(touched("w-held"));
}

Test(warm, size_lowered_terminates_oldest_surplus) {
	fixed(0);
	P()->warm_pool_size = 1;
	W("w-a", 600);
	W("w-b", 9000);
	W("w-c", 3000);
	decide();
	cr_expect_eq(count_why(SCALE_ACTION_TERMINATE, "warm pool shrunk"), 2);
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "w-b"));
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "w-c"));
	cr_expect_eq(M("web")->terminated, 2);

	/* size 0: every one goes (reuse on or off) */
	P()->warm_pool_size = 0;
	decide();
	cr_expect_eq(count(SCALE_ACTION_TERMINATE), 3);
}

Test(warm, cluster_stop_terminates_stopped) {
	P()->warm_pool_size = 3;
	W("w-1", 600);
	W("w-2", 900);
	H("r-1", SCALE_READY, 0);
	F.in.stop = true;
	decide();
	cr_expect_eq(count_why(SCALE_ACTION_TERMINATE, "cluster stop"), 2);
	cr_expect_not_null(act(SCALE_ACTION_DRAIN, "r-1"));
	cr_expect_eq(launched_all(), 0, "no refill on a stop");
	cr_expect_eq(count(SCALE_ACTION_START), 0);

	/* a drained host under a stop is terminated, not stopped */
	fx_init();
	P()->warm_pool_size = 3;
	H("d-1", SCALE_DRAINING, 0);
	F.in.stop = true;
	decide();
	cr_expect_not_null(act(SCALE_ACTION_TERMINATE, "d-1"));
}

Test(warm, tokens_stable_across_re_decision) {
	P()->warm_pool_size = 2;
	fixed(3);
	F.state[0] = (scale_pool_state) { .pool = "web", .launch_seq = 41 };
	F.n_state = 1;
	decide();
	char tokens[8][SCALE_TOKEN_MAX + 1];
	size_t n = 0;
	for (size_t i = 0; i < F.out.n_actions && n < 8; i++)
		if (F.out.actions[i].kind == SCALE_ACTION_LAUNCH)
			memcpy(tokens[n++], F.out.actions[i].client_token, sizeof tokens[0]);
	cr_assert_geq(n, 2, "a capacity launch and a warm launch");
	cr_expect_eq(F.out.state[0].launch_seq, 42);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(tokens[i], tokens[j], "each launch its own token");

	/* a successor deciding from the same stored state: the same tokens */
	decide();
	size_t k = 0;
	for (size_t i = 0; i < F.out.n_actions; i++)
		if (F.out.actions[i].kind == SCALE_ACTION_LAUNCH) {
			cr_assert_lt(k, n);
			cr_expect_str_eq(F.out.actions[i].client_token, tokens[k], "launch %zu", k);
			k++;
		}
	cr_expect_eq(k, n);
}

Test(warm, maintenance_and_disabled_do_nothing) {
	P()->warm_pool_size = 3;
	W("w-1", 600);
	scale_host *w = H("w-2", SCALE_LAUNCHING, 0);
	w->warm = true;
	w->node_id = "w-2";
	fixed(4);
	F.in.maintenance = true;
	decide();
	cr_expect_eq(F.out.n_actions, 0);
	cr_expect_str_eq(M("web")->note, "maintenance");

	F.in.maintenance = false;
	P()->enabled = false;
	decide();
	cr_expect_eq(count(SCALE_ACTION_START), 0);
	cr_expect_eq(launched_all(), 0, "no refill while disabled");
	cr_expect_not_null(act(SCALE_ACTION_STOP, "w-2"), "a registered warm host still completes its fill");
}

Test(warm, fast_start_does_not_count_warm_launches) {
	P()->market_spot = true;
	P()->spot_max_price = 1;
	P()->fast_start = true;
	F.prices[0] = (scale_price) { "m5.large", "us-east-1a", 0.01 };
	F.prices[1] = (scale_price) { "m5.large", "us-east-1b", 0.01 };
	F.n_prices = 2;
	P()->warm_pool_size = 2;
	fixed(2);
	H("i-1", SCALE_READY, 0);
	H("i-2", SCALE_READY, 0);
	for (const char *id = "w-1"; id; id = streq(id, "w-1") ? "w-2" : NULL) {
		scale_host *h = H(id, SCALE_LAUNCHING, 0);
		h->warm = true;
		h->state_since = NOW - 60;
	}
	decide();
	cr_expect_eq(launched(SCALE_SPOT, false), 2, "both on-demand hosts get their spot replacement");
	cr_expect_eq(launched_warm(true), 0);
}

/* The pool lends hosts on scale-out: the refill waits refill_after from
 * the last start, so the next scale-in returns them instead of finding the
 * pool full and terminating them. */
Test(warm, refill_lent_hosts_waits) {
	P()->warm_pool_size = 2;
	W("w-1", 9000);
	W("w-2", 3000);
	fixed(2);
	decide();
	cr_expect_eq(count(SCALE_ACTION_START), 2);
	cr_expect_eq(launched_all(), 0, "no refill right after lending");
	cr_expect_eq(F.out.state[0].last_warm_start, NOW, "the start is remembered");

	/* a later decision within refill_after (the state passed back) */
	fx_init();
	P()->warm_pool_size = 2;
	fixed(2);
	H("r-1", SCALE_READY, 1);
	H("r-2", SCALE_READY, 1);
	F.state[0] = (scale_pool_state) { .pool = "web", .last_warm_start = NOW - 3599 };
	F.n_state = 1;
	decide();
	cr_expect_eq(launched_all(), 0, "3599 s after the start: still lent");
	F.state[0].last_warm_start = NOW - 3600;
	decide();
	cr_expect_eq(launched_warm(true), 2, "refill_after passed: refilled");
	cr_expect_eq(F.out.state[0].last_warm_start, NOW - 3600, "kept until the next start");
}

/* demand: a scale-in keeps the most hosts wanted in the surplus's window,
 * so a noisy load is not drained at a dip. */
Test(warm, demand_scale_in_keeps_the_windows_peak) {
	P()->kind = SCALE_POLICY_DEMAND;
	P()->jobs_per_host = 4;
	P()->scale_in_cooldown = 0;
	static char ids[10][16];
	for (int i = 0; i < 10; i++) {
		snprintf(ids[i], sizeof ids[i], "r-%02d", i);
		H(ids[i], SCALE_READY, i < 2 ? 4 : 0);
	}
	/* demand 8 now -> 4 hosts wanted; the window's peak wanted 7 */
	F.state[0] = (scale_pool_state) { .pool = "web", .surplus_since = NOW - 600, .surplus_want = 7 };
	F.n_state = 1;
	decide();
	cr_expect_eq(M("web")->desired_hosts, 4);
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 3, "10 ready, keep the window's 7");
	cr_expect_eq(F.out.state[0].surplus_want, 0, "drained: the next window starts afresh");

	/* the window's peak keeps them all: no drain, a new window from now */
	F.state[0].surplus_want = 10;
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 0);
	cr_expect_eq(F.out.state[0].surplus_since, NOW);
	cr_expect_eq(F.out.state[0].surplus_want, 4, "the new window starts from what is wanted now");

	/* the jobs policy (an anchor) drains to what it wants now, as before */
	P()->kind = SCALE_POLICY_JOBS;
	F.state[0].surplus_want = 7;
	decide();
	cr_expect_eq(count(SCALE_ACTION_DRAIN), 10 - M("web")->desired_hosts);
}
