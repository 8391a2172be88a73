/* log.c — stderr logging with journald level prefixes. */
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *ident = "corral";

void log_set_max_level(int level) {
	max_level = level;
}

int log_get_max_level(void) {
	return max_level;
}

void log_set_ident(const char *s) {
	ident = s;
}

/* journald sets JOURNAL_STREAM=dev:ino for the stderr it hands a service;
 * only then are "<N>" prefixes meaningful rather than noise. */
static bool stderr_is_journal(void) {
	static int cached = -1;
	if (cached < 0) {
		const char *e = getenv("JOURNAL_STREAM");
		struct stat st;
		unsigned long long dev, ino;

		cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
			 (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
	}
	return cached;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
	int saved = errno;
	int e = error < 0 ? -error : error;

	if (level > max_level)
		return -e;

	/* Let "%m" name our error, not whatever errno happens to hold. */
	errno = e;
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* One record, one line: a newline from elsewhere (a peer's error
	 * message, a multi-line summary) must not start a record of its own. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (stderr_is_journal())
		fprintf(stderr, "<%d>%s\n", level, buf);
	else if (max_level >= LOG_DEBUG)
		fprintf(stderr, "%s: %s (%s:%d)\n", ident, buf, file, line);
	else
		fprintf(stderr, "%s: %s\n", ident, buf);

	errno = saved;
	return -e;
}

int log_level_from_string(const char *s) {
	static const struct {
		const char *name;
		int level;
	} table[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "err", LOG_ERR }, { "error", LOG_ERR },
	};
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (streq(s, table[i].name))
			return table[i].level;
	return -EINVAL;
}
