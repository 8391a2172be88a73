/* esc.c — names escaped for messages (see esc.h). */
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

#include "esc.h"

/* The length of the UTF-8 character at s (at most n bytes), 0 when the
 * bytes there are not one (overlong forms, surrogates and values beyond
 * U+10FFFF included, as in RFC 3629). */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
	uint32_t c;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

char *esc_msg(char *buf, size_t size, const char *s, size_t len) {
	const unsigned char *p = (const unsigned char *) s;
	size_t o = 0;

	if (size < 5) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	for (size_t i = 0; i < len;) {
		char one[5];
		size_t n = utf8_char_len(p + i, len - i), w;
		bool c1 = n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;

		if (n == 1 && p[i] == '\\')
			w = (size_t) snprintf(one, sizeof one, "\\\\");
		else if (n == 1 && (p[i] == '\n' || p[i] == '\t' || p[i] == '\r'))
			w = (size_t) snprintf(one, sizeof one, "\\%c", p[i] == '\n' ? 'n' : p[i] == '\t' ? 't' : 'r');
		else if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) || c1) {
			/* a C1 control is escaped byte by byte, like bad UTF-8 */
			w = (size_t) snprintf(one, sizeof one, "\\x%02x", p[i]);
			n = 1;
		} else {
			w = n;
			memcpy(one, p + i, n);
		}
		/* keep room for "..." and the NUL */
		if (o + w + 4 > size) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, one, w);
		o += w;
		i += n;
	}
	buf[o] = '\0';
	return buf;
}

char *esc_msg_str(char *buf, size_t size, const char *s) {
	return esc_msg(buf, size, s ? s : "(null)", s ? strlen(s) : 6);
}

char *esc_json_error(char *buf, size_t size, const json_error_t *e) {
	if (json_error_code(e) == json_error_null_character) {
		snprintf(buf, size, "\\u0000 (a NUL character) is not accepted here");
		return buf;
	}
	return esc_msg(buf, size, e->text, strnlen(e->text, sizeof e->text));
}
