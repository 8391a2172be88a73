/* test_b64.c — standard padded base64 (src/common/b64.c): RFC 4648 vectors,
 * round trips of every length with every byte value, and every form etcd's
 * gateway refuses (unpadded, URL-safe, white space, misplaced padding,
 * embedded NUL), which the decoder must refuse too. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "b64.h"
#include "macro.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* xorshift64*: a fixed, reproducible byte stream. */
static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);
static uint8_t rng_byte(void) {
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint8_t) ((rng_state * UINT64_C(0x2545F4914F6CDD1D)) >> 56);
}

static void expect_decode(const char *text, size_t len, const void *want, size_t want_len) {
	char *out = NULL;
	size_t out_len = 12345;
	int r = b64_decode(text, len, &out, &out_len);
	cr_assert_eq(r, 0, "decode \"%.*s\": %d", (int) len, text, r);
	cr_assert_not_null(out);
	cr_assert_eq(out_len, want_len, "decode \"%.*s\": %zu bytes, want %zu", (int) len, text, out_len, want_len);
	cr_assert_eq(memcmp(out, want, want_len), 0, "decode \"%.*s\"", (int) len, text);
	cr_assert_eq(out[out_len], '\0', "decoded buffer is NUL-terminated");
	free(out);
}

/* The exact bytes given (no NUL after them, so ASan sees any overread). */
static void expect_reject_len(const char *text, size_t len) {
	char *buf = malloc(len ? len : 1);
	cr_assert_not_null(buf);
	memcpy(buf, text, len);
	char *out = NULL;
	size_t out_len = 0;
	int r = b64_decode(buf, len, &out, &out_len);
	free(buf);
	if (r == 0)
		free(out);
	cr_assert_eq(r, -EINVAL, "\"%.*s\" (%zu bytes) must be refused, got %d", (int) len, text, len, r);
}

static void expect_reject(const char *text) {
	expect_reject_len(text, strlen(text));
}

/* ---- encoding ---------------------------------------------------------------- */

Test(b64, rfc4648_vectors) {
	static const struct {
		const char *plain, *coded;
	} v[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		char *e = b64_encode(v[i].plain, strlen(v[i].plain));
		cr_assert_not_null(e);
		cr_assert_str_eq(e, v[i].coded);
		free(e);
		expect_decode(v[i].coded, strlen(v[i].coded), v[i].plain, strlen(v[i].plain));
	}
}

Test(b64, etcd_captured_values) {
	/* bytes fields seen in the gateway captures */
	static const struct {
		const char *plain, *coded;
	} v[] = {
		{ "/svc/", "L3N2Yy8=" },  { "/svc0", "L3N2YzA=" }, { "bar2", "YmFyMg==" },
		{ "/lock/newkey", "L2xvY2svbmV3a2V5" }, { "owner1-renewed", "b3duZXIxLXJlbmV3ZWQ=" },
		{ "mylockB/2040a2005d0c9f29", "bXlsb2NrQi8yMDQwYTIwMDVkMGM5ZjI5" },
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		char *e = b64_encode(v[i].plain, strlen(v[i].plain));
		cr_assert_str_eq(e, v[i].coded);
		free(e);
		expect_decode(v[i].coded, strlen(v[i].coded), v[i].plain, strlen(v[i].plain));
	}
	expect_decode("AA==", 4, "\0", 1);
}

Test(b64, encode_uses_plus_and_slash) {
	static const unsigned char fb[] = { 0xfb, 0xff, 0xbf };
	char *e = b64_encode(fb, sizeof fb);
	cr_assert_str_eq(e, "+/+/");
	free(e);
	static const unsigned char ff[] = { 0xff, 0xff };
	e = b64_encode(ff, sizeof ff);
	cr_assert_str_eq(e, "//8=");
	free(e);
	static const unsigned char zero[] = { 0, 0, 0 };
	e = b64_encode(zero, sizeof zero);
	cr_assert_str_eq(e, "AAAA");
	free(e);
}

Test(b64, encode_empty) {
	char *e = b64_encode("", 0);
	cr_assert_not_null(e);
	cr_assert_str_eq(e, "");
	free(e);
	e = b64_encode(NULL, 0);
	cr_assert_not_null(e);
	cr_assert_str_eq(e, "");
	free(e);
}

/* ---- round trips ---------------------------------------------------------------- */

Test(b64, round_trip_every_length_0_to_300) {
	uint8_t data[301];
	for (size_t n = 0; n <= 300; n++) {
		for (size_t rep = 0; rep < 4; rep++) {
			for (size_t i = 0; i < n; i++)
				data[i] = rng_byte();
			/* make sure NULs (first, middle, last) and 0xff are in there */
			if (n > 0 && rep == 1)
				data[0] = data[n / 2] = data[n - 1] = 0;
			if (n > 0 && rep == 2)
				memset(data, 0xff, n);
			if (rep == 3)
				memset(data, 0, n);

			char *e = b64_encode(data, n);
			cr_assert_not_null(e);
			size_t elen = strlen(e);
			cr_assert_eq(elen, 4 * ((n + 2) / 3), "length %zu encodes to %zu chars", n, elen);
			size_t pad = (3 - n % 3) % 3;
			for (size_t i = 0; i < elen; i++) {
				if (i >= elen - pad)
					cr_assert_eq(e[i], '=', "n=%zu: padding at %zu", n, i);
				else
					cr_assert_not_null(strchr(ALPHABET, e[i]), "n=%zu: '%c' at %zu", n, e[i], i);
			}
			expect_decode(e, elen, data, n);
			free(e);
		}
	}
}

Test(b64, round_trip_every_byte_value) {
	for (int b = 0; b < 256; b++) {
		for (size_t n = 1; n <= 3; n++) {
			unsigned char data[3] = { (unsigned char) b, (unsigned char) b, (unsigned char) b };
			char *e = b64_encode(data, n);
			expect_decode(e, strlen(e), data, n);
			free(e);
		}
	}
	unsigned char all[256];
	for (int b = 0; b < 256; b++)
		all[b] = (unsigned char) b;
	char *e = b64_encode(all, sizeof all);
	expect_decode(e, strlen(e), all, sizeof all);
	free(e);
}

Test(b64, round_trip_large) {
	size_t n = 3 * 1024 * 1024 + 1;   /* above etcd's 1.5 MiB request limit */
	unsigned char *data = malloc(n);
	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = rng_byte();
	char *e = b64_encode(data, n);
	cr_assert_not_null(e);
	cr_assert_eq(strlen(e), 4 * ((n + 2) / 3));
	char *out;
	size_t out_len;
	cr_assert_eq(b64_decode(e, strlen(e), &out, &out_len), 0);
	cr_assert_eq(out_len, n);
	cr_assert_eq(memcmp(out, data, n), 0);
	free(out);
	free(e);
	free(data);
}

Test(b64, every_character_of_the_alphabet_decodes) {
	for (size_t i = 0; i < 64; i++) {
		char text[5] = { ALPHABET[i], ALPHABET[i], ALPHABET[i], ALPHABET[i], '\0' };
		unsigned char want[3] = {
			(unsigned char) (i << 2 | i >> 4), (unsigned char) ((i & 0xf) << 4 | i >> 2),
			(unsigned char) ((i & 3) << 6 | i),
		};
		expect_decode(text, 4, want, 3);
	}
}

/* ---- decoding: what it accepts ------------------------------------------------------ */

Test(b64, decode_empty) {
	expect_decode("", 0, "", 0);
}

Test(b64, decode_respects_len) {
	/* only the first len bytes count, whatever follows */
	expect_decode("Zm9vYmFy", 4, "foo", 3);
	expect_decode("Zm9v!!!!", 4, "foo", 3);
	expect_decode("Zg==garbage", 4, "f", 1);
	expect_decode("Zm9v", 0, "", 0);
}

Test(b64, decode_padding_counts) {
	expect_decode("YQ==", 4, "a", 1);
	expect_decode("YWI=", 4, "ab", 2);
	expect_decode("YWJj", 4, "abc", 3);
	expect_decode("YWJjZA==", 8, "abcd", 4);
}

/* ---- decoding: what it refuses, like etcd --------------------------------------------- */

Test(b64, reject_unpadded) {
	static const char *const v[] = { "YQ", "YWI", "Zg", "Zm8", "Zm9vYg", "Zm9vYmE", "A", "AAAAA" };
	for (size_t i = 0; i < ELEMENTSOF(v); i++)
		expect_reject(v[i]);
}

Test(b64, reject_length_not_multiple_of_4) {
	for (size_t len = 1; len < 16; len++) {
		if (len % 4 == 0)
			continue;
		char text[16];
		memset(text, 'A', len);
		expect_reject_len(text, len);
	}
	expect_reject("Zm9v=");
	expect_reject("Zg===");
	expect_reject("Zm9vZg=");
}

Test(b64, reject_url_safe) {
	static const char *const v[] = { "_-8=", "-_-_", "Zm9-", "Zm9_", "__8=", "--==" };
	for (size_t i = 0; i < ELEMENTSOF(v); i++)
		expect_reject(v[i]);
}

Test(b64, reject_white_space) {
	static const char *const v[] = {
		"Zm9v\n", " Zm9v", "Zm9v ", "Zm 9v", "Zm9 ", " Zm9", "Zm\t9", "Zm9v\r\nZm9v", "Zm9v\nYmFy",
		"Zm9v\n\n\n\n", "    ", "\n\n\n\n", "Zg==\n", "Zg= =",
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++)
		expect_reject(v[i]);
}

Test(b64, reject_bad_padding_positions) {
	static const char *const v[] = {
		"Y=Q=", "=Zm9", "====", "A===", "Z===", "Zm=v", "Zg=a", "Z=g=", "=AAA", "AA=A",
		"Zg==Zg==",      /* padding in the middle */
		"Zm8=Zm9v",
		"Zm9v====",      /* a whole group of padding */
		"Zm9vY===",
		"Zm9v=AAA",
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++)
		expect_reject(v[i]);
}

Test(b64, reject_embedded_nul) {
	expect_reject_len("Zm\0v", 4);
	expect_reject_len("\0\0\0\0", 4);
	expect_reject_len("Zm9v\0\0\0\0", 8);
	expect_reject_len("Zg=\0", 4);
	expect_reject_len("Zg\0=", 4);
	expect_reject_len("Zm9vYmF\0", 8);
}

Test(b64, reject_other_characters) {
	static const char *const v[] = {
		"foo!", "Zm9v.", "Zm9*", "Zm9#", "Zm9%", "Zm9v\\AAA", "Zm9\"", "Zm9:", "Zm9@", "Zm9[", "Zm9`", "Zm9{",
	};
	for (size_t i = 0; i < ELEMENTSOF(v); i++)
		expect_reject(v[i]);
	/* every byte outside the alphabet and '=' */
	for (int c = 1; c < 256; c++) {
		if (c == '=' || (c < 128 && strchr(ALPHABET, c)))
			continue;
		char text[4] = { 'Q', 'Q', 'Q', (char) c };
		expect_reject_len(text, 4);
		char first[4] = { (char) c, 'Q', 'Q', 'Q' };
		expect_reject_len(first, 4);
	}
	expect_reject("\xc3\xa9QQ");   /* UTF-8 */
}

Test(b64, reject_does_not_allocate) {
	/* a refused input leaves *out alone (LSan would see a leak otherwise) */
	char *out = (char *) 0x1;
	size_t out_len = 7;
	cr_assert_eq(b64_decode("YQ", 2, &out, &out_len), -EINVAL);
	cr_assert_eq(out, (char *) 0x1);
	cr_assert_eq(b64_decode("Y=Q=", 4, &out, &out_len), -EINVAL);
	cr_assert_eq(out, (char *) 0x1);
}
