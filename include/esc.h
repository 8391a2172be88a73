/* esc.h — keys, paths and names as they may appear in a message.
 *
 * A config key may hold any byte, and an operator's terminal or the journal
 * must not be steered by one: every message that prints a key, a leaf path,
 * an etcd key or a file name passes it through esc_msg(). Control bytes
 * (0x00-0x1f, 0x7f), the C1 controls (U+0080-U+009F) and bytes that are not
 * UTF-8 become \n, \t, \r or \xHH; a backslash becomes "\\", so the escaped
 * text names one key only. Everything else, printable UTF-8 included, is
 * kept. Pure; never fails. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <string.h>

/* Room for one escaped name in a message; longer ones end in "...". */
#define ESC_MAX 512

/* s (len bytes, may hold NUL) escaped into buf (size > 4 bytes), cut at a
 * character boundary with "..." when it does not fit. Returns buf. */
char *esc_msg(char *buf, size_t size, const char *s, size_t len);

/* The same for a NUL-terminated s; NULL is "(null)". */
char *esc_msg_str(char *buf, size_t size, const char *s);

/* For printf arguments: a buffer that lives until the end of the
 * enclosing block. */
#define ESCN(s, len) esc_msg((char[ESC_MAX]){ 0 }, ESC_MAX, (s), (len))
#define ESC(s) esc_msg_str((char[ESC_MAX]){ 0 }, ESC_MAX, (s))

/* jansson's message for a document it could not read, for a message of
 * ours: control bytes escaped (it quotes the text it stopped at), and
 * worded without jansson's flag names (its text for "\u0000" in a string
 * read without JSON_ALLOW_NUL names that flag). Returns buf. */
char *esc_json_error(char *buf, size_t size, const json_error_t *e);
#define ESC_JERR(e) esc_json_error((char[ESC_MAX]){ 0 }, ESC_MAX, (e))
