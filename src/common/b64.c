/* b64.c — base64 for etcd's bytes fields. */
#include <openssl/evp.h>

#include "b64.h"
#include "macro.h"

char *b64_encode(const void *data, size_t len) {
	if (len > ((size_t) INT32_MAX / 4) * 3)
		return NULL;
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *) out, data, (int) len);
	return out;
}

int b64_decode(const char *text, size_t len, char **out, size_t *out_len) {
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	/* EVP_DecodeBlock is lenient about whitespace and padding; etcd is
	 * not, so neither are we: exact length, alphabet and padding. */
	if (len % 4 != 0 || len > (size_t) INT32_MAX)
		return -EINVAL;
	size_t pad = 0;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '=') {
			if (i < len - 2)
				return -EINVAL;
			pad++;
		} else if (pad > 0 || c == '\0' || !strchr(alphabet, c))
			return -EINVAL;
	}

	_cleanup_free_ char *buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	int n = EVP_DecodeBlock((unsigned char *) buf, (const unsigned char *) text, (int) len);
	if (n < 0)
		return -EINVAL;
	/* EVP_DecodeBlock counts padding as zero bytes. */
	n -= (int) pad;
	buf[n] = '\0';
	*out_len = (size_t) n;
	*out = TAKE_PTR(buf);
	return 0;
}
