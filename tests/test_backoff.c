/* test_backoff.c — capped exponential back-off with equal jitter
 * (src/common/backoff.c). With base b, cap c and attempt n the delay is
 * drawn from [b/2, min(c, b * 2^n)]; the caller's random number picks it,
 * so every bound can be hit exactly: rnd 0 gives the floor, and
 * rnd = ceiling - floor gives the ceiling. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>

#include "backoff.h"
#include "macro.h"

/* min(cap, base * 2^n) without overflow. */
static uint64_t want_ceiling(uint64_t base, uint64_t cap, unsigned n) {
	uint64_t c = base;
	for (unsigned i = 0; i < n && c < cap; i++)
		c = c > UINT64_MAX / 2 ? UINT64_MAX : c * 2;
	return c < cap ? c : cap;
}

static uint64_t want_floor(uint64_t base, uint64_t cap) {
	uint64_t f = base / 2;
	return f < cap ? f : cap;   /* a cap below base/2 wins: never above cap */
}

/* xorshift64*, fixed seed: reproducible "random" values. */
static uint64_t rng_state = UINT64_C(0x2545F4914F6CDD1D);
static uint64_t rng(void) {
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(0x2545F4914F6CDD1D);
}

/* Runs `attempts` failures, each checked against the bounds; the kind of
 * rnd used at attempt n is chosen by `pick`. */
static void check_bounds(uint64_t base, uint64_t cap, unsigned attempts, uint64_t (*pick)(uint64_t lo, uint64_t hi)) {
	backoff b = BACKOFF_INIT(base, cap);
	uint64_t lo = want_floor(base, cap);
	for (unsigned n = 0; n < attempts; n++) {
		uint64_t hi = want_ceiling(base, cap, n);
		uint64_t rnd = pick(lo, hi);
		uint64_t d = backoff_next(&b, rnd);
		cr_assert(d >= lo && d <= hi,
			  "base %" PRIu64 " cap %" PRIu64 " attempt %u rnd %" PRIu64 ": delay %" PRIu64
			  " outside [%" PRIu64 ", %" PRIu64 "]",
			  base, cap, n, rnd, d, lo, hi);
		cr_assert_leq(d, cap);
	}
}

static uint64_t pick_zero(uint64_t lo, uint64_t hi) {
	return 0;
}
static uint64_t pick_max(uint64_t lo, uint64_t hi) {
	return UINT64_MAX;
}
static uint64_t pick_random(uint64_t lo, uint64_t hi) {
	return rng();
}
static uint64_t pick_span(uint64_t lo, uint64_t hi) {   /* exactly the ceiling */
	return hi - lo;
}
static uint64_t pick_span_plus_one(uint64_t lo, uint64_t hi) {   /* wraps to the floor */
	return hi - lo + 1;
}

static uint64_t (*const picks[])(uint64_t, uint64_t) = {
	pick_zero, pick_max, pick_random, pick_span, pick_span_plus_one,
};

Test(backoff, init) {
	backoff b = BACKOFF_INIT(100, 5000);
	cr_assert_eq(b.base_usec, 100);
	cr_assert_eq(b.cap_usec, 5000);
	cr_assert_eq(b.attempt, 0);
}

Test(backoff, first_delay_is_between_half_base_and_base) {
	for (uint64_t rnd = 0; rnd < 1000; rnd++) {
		backoff b = BACKOFF_INIT(100 * USEC_PER_MSEC, 30 * USEC_PER_SEC);
		uint64_t d = backoff_next(&b, rnd);
		cr_assert(d >= 50 * USEC_PER_MSEC && d <= 100 * USEC_PER_MSEC, "rnd %" PRIu64 ": %" PRIu64, rnd, d);
	}
}

Test(backoff, bounds_for_every_attempt) {
	static const struct {
		uint64_t base, cap;
	} cfg[] = {
		{ 100 * USEC_PER_MSEC, 30 * USEC_PER_SEC },     /* etcd reconnects */
		{ USEC_PER_SEC, 60 * USEC_PER_SEC },
		{ 1, 1000 },
		{ 2, 3 },
		{ 3, 1000003 },
		{ 1000, 1000 },                                /* cap == base */
		{ 1000, 1001 },
		{ 7, UINT64_C(1) << 40 },
	};
	for (size_t c = 0; c < ELEMENTSOF(cfg); c++)
		for (size_t p = 0; p < ELEMENTSOF(picks); p++)
			check_bounds(cfg[c].base, cfg[c].cap, 200, picks[p]);
}

Test(backoff, random_values_stay_in_bounds) {
	for (unsigned round = 0; round < 2000; round++) {
		uint64_t base = 1 + rng() % (10 * USEC_PER_SEC);
		uint64_t cap = base + rng() % (600 * USEC_PER_SEC);
		check_bounds(base, cap, 80, pick_random);
	}
}

Test(backoff, rnd_zero_gives_the_floor) {
	backoff b = BACKOFF_INIT(1000, 64000);
	for (unsigned n = 0; n < 100; n++)
		cr_assert_eq(backoff_next(&b, 0), 500, "attempt %u", n);
}

Test(backoff, rnd_max_stays_in_bounds) {
	backoff b = BACKOFF_INIT(1000, 64000);
	for (unsigned n = 0; n < 100; n++) {
		uint64_t d = backoff_next(&b, UINT64_MAX);
		cr_assert(d >= 500 && d <= want_ceiling(1000, 64000, n), "attempt %u: %" PRIu64, n, d);
	}
}

Test(backoff, ceiling_doubles_up_to_the_cap) {
	static const uint64_t want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000 };
	backoff b = BACKOFF_INIT(100, 10000);
	for (size_t n = 0; n < ELEMENTSOF(want); n++) {
		/* rnd = ceiling - floor hits the ceiling exactly */
		uint64_t d = backoff_next(&b, want[n] - 50);
		cr_assert_eq(d, want[n], "attempt %zu: %" PRIu64 ", want %" PRIu64, n, d, want[n]);
	}
	/* one past the span wraps around to the floor */
	cr_assert_eq(backoff_next(&b, 10000 - 50 + 1), 50);
}

Test(backoff, every_value_of_the_range_is_reachable) {
	for (unsigned n = 0; n < 5; n++) {
		uint64_t hi = want_ceiling(8, 1000, n);
		bool seen[1001] = {};
		for (uint64_t rnd = 0; rnd <= hi - 4; rnd++) {
			backoff b = BACKOFF_INIT(8, 1000);
			b.attempt = n;
			uint64_t d = backoff_next(&b, rnd);
			cr_assert(d >= 4 && d <= hi);
			seen[d] = true;
		}
		for (uint64_t v = 4; v <= hi; v++)
			cr_assert(seen[v], "attempt %u: %" PRIu64 " never drawn", n, v);
	}
}

Test(backoff, counts_failures) {
	backoff b = BACKOFF_INIT(10, 1000);
	for (unsigned n = 0; n < 10; n++) {
		cr_assert_eq(b.attempt, n);
		backoff_next(&b, 0);
	}
	cr_assert_eq(b.attempt, 10);
}

Test(backoff, reset_starts_from_base_again) {
	backoff b = BACKOFF_INIT(100, 10000);
	for (unsigned n = 0; n < 20; n++)
		backoff_next(&b, 0);
	cr_assert_eq(backoff_next(&b, UINT64_C(10000) - 50), 10000);
	backoff_reset(&b);
	cr_assert_eq(b.attempt, 0);
	cr_assert_eq(b.base_usec, 100, "reset keeps the settings");
	cr_assert_eq(b.cap_usec, 10000);
	cr_assert_eq(backoff_next(&b, 50), 100, "ceiling back to base");
	cr_assert_eq(backoff_next(&b, 150), 200);
	backoff_reset(&b);
	backoff_reset(&b);
	cr_assert_eq(b.attempt, 0);
	cr_assert_eq(backoff_next(&b, UINT64_MAX), 50 + UINT64_MAX % 51);
}

Test(backoff, cap_smaller_than_base) {
	static const struct {
		uint64_t base, cap;
	} cfg[] = { { 1000, 100 }, { 1000, 499 }, { 1000, 500 }, { 1000, 999 }, { 1000, 0 }, { UINT64_MAX, 1 } };
	for (size_t c = 0; c < ELEMENTSOF(cfg); c++) {
		for (size_t p = 0; p < ELEMENTSOF(picks); p++)
			check_bounds(cfg[c].base, cfg[c].cap, 100, picks[p]);
		backoff b = BACKOFF_INIT(cfg[c].base, cfg[c].cap);
		for (unsigned n = 0; n < 100; n++)
			cr_assert_leq(backoff_next(&b, rng()), cfg[c].cap, "never above cap");
	}
	/* below half the base there is only one value left: the cap */
	backoff b = BACKOFF_INIT(1000, 100);
	cr_assert_eq(backoff_next(&b, 0), 100);
	cr_assert_eq(backoff_next(&b, UINT64_MAX), 100);
}

Test(backoff, zero_and_tiny_bases) {
	backoff z = BACKOFF_INIT(0, 1000);
	for (unsigned n = 0; n < 100; n++)
		cr_assert_eq(backoff_next(&z, rng()), 0, "a zero base never grows");
	backoff zz = BACKOFF_INIT(0, 0);
	cr_assert_eq(backoff_next(&zz, UINT64_MAX), 0);
	for (size_t p = 0; p < ELEMENTSOF(picks); p++)
		check_bounds(1, 1u << 20, 100, picks[p]);
}

Test(backoff, huge_values_do_not_overflow_when_capped_below_half) {
	static const struct {
		uint64_t base, cap;
	} cfg[] = {
		{ UINT64_MAX, UINT64_MAX },
		{ UINT64_MAX / 2, UINT64_MAX / 2 + 1 },
		{ UINT64_C(1) << 62, UINT64_C(1) << 63 },
		{ UINT64_C(1) << 40, UINT64_C(1) << 63 },
		{ 12345, UINT64_C(1) << 63 },
		{ 1, UINT64_C(1) << 63 },
	};
	for (size_t c = 0; c < ELEMENTSOF(cfg); c++)
		for (size_t p = 0; p < ELEMENTSOF(picks); p++)
			check_bounds(cfg[c].base, cfg[c].cap, 1000, picks[p]);
}

Test(backoff, no_overflow_after_1000_attempts) {
	/* Regression (fixed): backoff.c backoff_next() doubles the ceiling with a plain
	 * `ceiling *= 2` while it is below the cap; when the cap is above
	 * 2^63 (e.g. UINT64_MAX for "no cap") the product wraps modulo 2^64.
	 * With base 1 s and cap UINT64_MAX the ceiling is garbage from
	 * attempt 45 on (delays jump up and down), and from attempt 58 on it
	 * is 0, so every delay is 0, below base/2: a retry loop with no
	 * pause, for good (attempt stays at 64). Base 1 with cap UINT64_MAX
	 * gives 0 from attempt 64. The doubling must saturate at the cap. */
	static const struct {
		uint64_t base, cap;
	} cfg[] = {
		{ USEC_PER_SEC, UINT64_MAX },
		{ 100 * USEC_PER_MSEC, UINT64_MAX },
		{ 3, UINT64_MAX },
		{ 1, UINT64_MAX },
		{ UINT64_C(1) << 63 | 1, UINT64_MAX },
		{ UINT64_C(3) << 61, UINT64_MAX - 1 },
	};
	for (size_t c = 0; c < ELEMENTSOF(cfg); c++) {
		backoff b = BACKOFF_INIT(cfg[c].base, cfg[c].cap);
		uint64_t lo = want_floor(cfg[c].base, cfg[c].cap), prev_hi = 0;
		for (unsigned n = 0; n < 1000; n++) {
			uint64_t hi = want_ceiling(cfg[c].base, cfg[c].cap, n);
			cr_assert_geq(hi, prev_hi);
			prev_hi = hi;
			uint64_t d = backoff_next(&b, hi - lo);   /* must give the ceiling */
			cr_assert_eq(d, hi,
				     "base %" PRIu64 " cap %" PRIu64 " attempt %u: delay %" PRIu64 ", want %" PRIu64,
				     cfg[c].base, cfg[c].cap, n, d, hi);
		}
	}
}

Test(backoff, attempt_counter_does_not_wrap) {
	backoff b = BACKOFF_INIT(100 * USEC_PER_MSEC, 30 * USEC_PER_SEC);
	unsigned prev = 0;
	for (unsigned n = 0; n < 100000; n++) {
		uint64_t d = backoff_next(&b, rng());
		cr_assert(d >= 50 * USEC_PER_MSEC && d <= 30 * USEC_PER_SEC);
		cr_assert_geq(b.attempt, prev, "attempt went back from %u to %u", prev, b.attempt);
		prev = b.attempt;
	}
	cr_assert_gt(b.attempt, 0);
	/* after that many failures it still sits at the cap */
	cr_assert_eq(backoff_next(&b, 30 * USEC_PER_SEC - 50 * USEC_PER_MSEC), 30 * USEC_PER_SEC);
	/* a counter set near its limit by hand does not wrap either */
	b.attempt = UINT_MAX;
	uint64_t d = backoff_next(&b, 0);
	cr_assert_eq(d, 50 * USEC_PER_MSEC);
	cr_assert_neq(b.attempt, 0);
}

Test(backoff, random_source) {
	uint64_t seen[16];
	for (size_t i = 0; i < ELEMENTSOF(seen); i++)
		seen[i] = backoff_random();
	/* 16 draws of 64 bits: a repeat means the source is broken */
	for (size_t i = 0; i < ELEMENTSOF(seen); i++)
		for (size_t j = i + 1; j < ELEMENTSOF(seen); j++)
			cr_assert_neq(seen[i], seen[j]);
	backoff b = BACKOFF_INIT(1000, 8000);
	for (unsigned n = 0; n < 1000; n++) {
		uint64_t d = backoff_next(&b, backoff_random());
		cr_assert(d >= 500 && d <= 8000);
	}
}
