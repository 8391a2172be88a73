/* backoff.c — capped, jittered exponential back-off. */
#include <stdlib.h>
#include <sys/random.h>

#include "backoff.h"

uint64_t backoff_next(backoff *b, uint64_t rnd) {
	uint64_t ceiling = b->base_usec;
	for (unsigned i = 0; i < b->attempt && ceiling < b->cap_usec; i++) {
		if (ceiling > UINT64_MAX / 2) {
			ceiling = UINT64_MAX;
			break;
		}
		ceiling *= 2;
	}
	if (ceiling > b->cap_usec)
		ceiling = b->cap_usec;
	if (b->attempt < 64)
		b->attempt++;

	uint64_t floor = b->base_usec / 2;
	if (floor > ceiling)
		floor = ceiling;
	uint64_t span = ceiling - floor;
	return floor + (span == UINT64_MAX ? rnd : rnd % (span + 1));
}

void backoff_reset(backoff *b) {
	b->attempt = 0;
}

uint64_t backoff_random(void) {
	uint64_t r;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t) sizeof r)
		r = (uint64_t) random() << 32 ^ (uint64_t) random();
	return r;
}
