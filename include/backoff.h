/* backoff.h — capped exponential back-off with full jitter, for every retry
 * loop in corral (etcd reconnects, registration, CAS retries, EC2 calls).
 *
 * Pure: the caller supplies the random number, so the sequence is testable.
 * With base b, cap c and attempt n (0-based), the delay is drawn uniformly
 * from [b/2, min(c, b * 2^n)] ("equal jitter" floor of b/2 keeps a burst
 * of clients from retrying at once while never retrying in a tight loop). */
#pragma once

#include <stdint.h>

typedef struct backoff {
	uint64_t base_usec;
	uint64_t cap_usec;
	unsigned attempt;     /* failures since the last success */
} backoff;

#define BACKOFF_INIT(base, cap) ((backoff){ .base_usec = (base), .cap_usec = (cap) })

/* The delay before the next attempt; counts the failure. rnd is any 64-bit
 * random value. */
uint64_t backoff_next(backoff *b, uint64_t rnd);
/* Call on success: the next failure starts from base again. */
void backoff_reset(backoff *b);
/* A random value for backoff_next from a non-cryptographic source. */
uint64_t backoff_random(void);
