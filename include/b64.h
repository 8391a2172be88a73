/* b64.h — standard, padded base64 (RFC 4648 §4), the only form etcd's
 * gateway accepts for bytes fields. Built on OpenSSL's EVP block coder. */
#pragma once

#include <stddef.h>

/* Returns a new NUL-terminated string, or NULL on allocation failure. */
char *b64_encode(const void *data, size_t len);

/* Decodes text (len bytes) into a new buffer, NUL-terminated for convenience
 * (the terminator is not counted in *out_len). -EINVAL when text is not
 * padded standard base64, -ENOMEM on allocation failure. */
int b64_decode(const char *text, size_t len, char **out, size_t *out_len);
