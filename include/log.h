/* log.h — the daemon's and CLI's logging. Core modules never log: they
 * return errors; only corrald and corralctl call these.
 *
 * Lines go to stderr with sd-daemon level prefixes ("<3>") when stderr is the
 * journal (JOURNAL_STREAM matches) so journald keeps the level, plain
 * otherwise. Nothing that may hold a secret is ever passed here. */
#pragma once

#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_ident(const char *ident);

/* Returns -abs(error) so callers can `return log_error_errno(r, ...)`;
 * "%m" in the format expands to strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_full(level, ...) ((void) log_full_errno((level), 0, __VA_ARGS__))

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "out of memory")

/* Parses "debug", "info", "notice", "warning", "err"/"error"; -EINVAL else. */
int log_level_from_string(const char *s);
