/* fuzz.h — what the fuzz targets share.
 *
 * Each target is a plain function, fuzz_<name>(data, size), so one source
 * serves two builds: tests/test_fuzz_replay (Criterion, every build, runs
 * the kept corpus and crashers as a regression test) and the libFuzzer
 * programs of `configure --enable-fuzz` (CORRAL_LIBFUZZER defined), which
 * explore. A target returns 0; a broken invariant aborts, so both the
 * fuzzer and the replay see it as a crash. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int fuzz_etcd_codec(const uint8_t *data, size_t size);
int fuzz_ec2xml(const uint8_t *data, size_t size);
int fuzz_conf(const uint8_t *data, size_t size);
int fuzz_tree(const uint8_t *data, size_t size);

/* An invariant the parser promises, checked on every input. */
#define FUZZ_ASSERT(cond)                                                                      \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                               \
		}                                                                              \
	} while (0)

#ifdef CORRAL_LIBFUZZER
#define FUZZ_ENTRY(name)                                                        \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);           \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {          \
		return fuzz_##name(data, size);                                 \
	}
#else
#define FUZZ_ENTRY(name)
#endif
