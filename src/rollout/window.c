/* window.c — maintenance windows ("Mon-Fri 02:00-05:00") and the
 * five-field cron schedule, in a time zone: "UTC", a fixed offset
 * ("+02:00") or an IANA name ("Europe/Rome").
 *
 * IANA zones are read by the C library: TZ is set to the zone for the one
 * conversion, then put back (tzset() both times). This is the simplest
 * correct way to get a zone's rules (DST included) without a parser of
 * its own; it touches the process's environment, which is fine in corral's
 * single-threaded programs and would not be in a threaded one. Windows and
 * cron fields are searched on the wall clock (struct tm arithmetic through
 * timegm), and only the found wall-clock time is turned into an instant. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rollout-internal.h"

#define ZONEINFO "/usr/share/zoneinfo"

static const char *const day_names[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month_names[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* ---- time zones ----------------------------------------------------------------- */

static bool tz_is_utc(const char *tz) {
	return !tz || !*tz || strcmp(tz, "UTC") == 0 || strcmp(tz, "Z") == 0;
}

/* "+02:00", "-0530", "+2": seconds east of UTC. */
static bool tz_offset(const char *tz, long *out) {
	int h = 0, m = 0, n = 0;

	if (tz_is_utc(tz)) {
		*out = 0;
		return true;
	}
	if ((tz[0] != '+' && tz[0] != '-') || !isdigit((unsigned char) tz[1]))
		return false;
	if (!((sscanf(tz + 1, "%2d:%2d%n", &h, &m, &n) == 2 && n == 5) ||
	      (sscanf(tz + 1, "%2d%2d%n", &h, &m, &n) == 2 && n == 4) ||
	      (m = 0, sscanf(tz + 1, "%2d%n", &h, &n) == 1 && (n == 1 || n == 2))) ||
	    tz[1 + n] != '\0' || h > 14 || m > 59)
		return false;
	*out = (tz[0] == '-' ? -1 : 1) * (h * 3600L + m * 60L);
	return true;
}

int rollout_tz_check(const char *tz, const char *key, rollout_error *err) {
	long off;
	char path[300];

	if (tz_offset(tz, &off))
		return 0;
	bool ok = tz[0] != '/' && strlen(tz) < 200 && !strstr(tz, "..");
	for (const char *c = tz; ok && *c; c++)
		ok = isalnum((unsigned char) *c) || strchr("_+-/", *c);
	snprintf(path, sizeof path, ZONEINFO "/%s", tz);
	if (!ok || access(path, R_OK) < 0)
		return rollout_fail(err, key, "unknown time zone \"%.64s\" (UTC, an offset like +02:00, or a name "
				    "like Europe/Rome)", tz);
	return 0;
}

typedef struct tz_saved {
	char *old;
	bool had;
} tz_saved;

static void tz_enter(const char *tz, tz_saved *s) {
	char spec[256];
	const char *old = getenv("TZ");

	s->had = old != NULL;
	s->old = old ? strdup(old) : NULL;
	snprintf(spec, sizeof spec, ":%s", tz);
	setenv("TZ", spec, 1);
	tzset();
}

static void tz_leave(tz_saved *s) {
	if (s->had && s->old)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	free(s->old);
	tzset();
}

void rollout_tz_local(const char *tz, time_t t, struct tm *out) {
	long off;

	if (tz_offset(tz, &off)) {
		time_t x = t + off;
		gmtime_r(&x, out);
		return;
	}
	tz_saved s;
	tz_enter(tz, &s);
	localtime_r(&t, out);
	tz_leave(&s);
}

time_t rollout_tz_instant(const char *tz, const struct tm *tm) {
	struct tm x = *tm;
	long off;

	if (tz_offset(tz, &off))
		return timegm(&x) - off;
	tz_saved s;
	tz_enter(tz, &s);
	x.tm_isdst = -1;
	time_t t = mktime(&x);
	tz_leave(&s);
	return t;
}

/* Wall-clock arithmetic: fields out of range carried into the next. */
static void wall_normalise(struct tm *tm) {
	time_t t = timegm(tm);
	gmtime_r(&t, tm);
}

/* ---- windows -------------------------------------------------------------------- */

static int day_index(const char *s, size_t len) {
	for (int i = 0; i < 7; i++)
		if (len == 3 && strncasecmp(s, day_names[i], 3) == 0)
			return i;
	return -1;
}

/* "Mon-Fri", "Sat,Sun", "Tue", "*", "daily", "Fri-Mon" (wraps). */
static int parse_days(const char *s, uint8_t *out) {
	uint8_t days = 0;

	if (strcmp(s, "*") == 0 || strcasecmp(s, "daily") == 0) {
		*out = 0x7f;
		return 0;
	}
	while (*s) {
		size_t len = strcspn(s, ",");
		const char *dash = memchr(s, '-', len);
		int a = day_index(s, dash ? (size_t) (dash - s) : len), b = a;
		if (dash)
			b = day_index(dash + 1, len - (dash - s) - 1);
		if (a < 0 || b < 0)
			return -EINVAL;
		for (int d = a;; d = (d + 1) % 7) {
			days |= 1u << d;
			if (d == b)
				break;
		}
		s += len;
		if (*s == ',' && !*++s)
			return -EINVAL;
	}
	if (!days)
		return -EINVAL;
	*out = days;
	return 0;
}

/* "02:00" (00:00..24:00) in minutes. */
static int parse_hhmm(const char *s, int *out) {
	int h, m, n = 0;

	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || s[n] || n != 5 || h < 0 || m < 0 || m > 59 || h > 24 ||
	    (h == 24 && m != 0))
		return -EINVAL;
	*out = h * 60 + m;
	return 0;
}

static int window_set(const char *days, const char *start, const char *end, const char *tz, rollout_window *out,
		      rollout_error *err) {
	rollout_window w = {};
	int r;

	if (parse_days(days, &w.days) < 0)
		return rollout_fail(err, "days", "\"%.40s\" is not days like Mon-Fri, Sat,Sun, Tue or *", days);
	if (parse_hhmm(start, &w.start) < 0)
		return rollout_fail(err, "start", "\"%.16s\" is not a time like 02:00", start);
	if (parse_hhmm(end, &w.end) < 0)
		return rollout_fail(err, "end", "\"%.16s\" is not a time like 05:00", end);
	if (w.end == 24 * 60)
		w.end = 0;
	if (w.start == 24 * 60)
		return rollout_fail(err, "start", "must be before 24:00");
	if ((r = rollout_tz_check(tz ? tz : "UTC", "tz", err)) < 0)
		return r;
	w.tz = strdup(tz ? tz : "UTC");
	if (!w.tz)
		return -ENOMEM;
	*out = w;
	return 0;
}

int rollout_window_parse(const char *text, const char *tz, rollout_window *out, rollout_error *err) {
	char days[64] = "*", range[32], start[16], end[16], extra[2];
	int n;

	if (!text)
		return rollout_fail(err, "", "empty window");
	n = sscanf(text, "%63s %31s %1s", days, range, extra);
	if (n == 1) {                   /* "02:00-05:00": every day */
		snprintf(range, sizeof range, "%.31s", days);
		snprintf(days, sizeof days, "*");
	} else if (n != 2)
		return rollout_fail(err, "", "\"%.64s\" is not a window like \"Mon-Fri 02:00-05:00\"", text);
	const char *dash = strchr(range, '-');
	if (!dash || (size_t) (dash - range) >= sizeof start)
		return rollout_fail(err, "", "\"%.64s\" is not a window like \"Mon-Fri 02:00-05:00\"", text);
	snprintf(start, sizeof start, "%.*s", (int) (dash - range), range);
	snprintf(end, sizeof end, "%s", dash + 1);
	return window_set(days, start, end, tz, out, err);
}

int rollout_window_from_json(json_t *j, rollout_window *out, rollout_error *err) {
	static const char *const keys[] = { "days", "start", "end", "tz", NULL };
	_cleanup_free_ char *days = NULL, *start = NULL, *end = NULL, *tz = NULL;
	int r;

	if (!json_is_object(j))
		return rollout_fail(err, "", "a window must be an object or \"Mon-Fri 02:00-05:00\"");
	if ((r = rollout_check_keys(j, "", keys, err)) < 0 || (r = rollout_get_str(j, "", "days", false, &days, err)) < 0 ||
	    (r = rollout_get_str(j, "", "start", true, &start, err)) < 0 ||
	    (r = rollout_get_str(j, "", "end", true, &end, err)) < 0 ||
	    (r = rollout_get_str(j, "", "tz", false, &tz, err)) < 0)
		return r;
	return window_set(days ? days : "*", start, end, tz, out, err);
}

/* Runs of days: "Mon-Fri", "Sat,Sun", "*". */
static void format_days(uint8_t days, char *buf, size_t size) {
	size_t n = 0;

	buf[0] = '\0';
	if ((days & 0x7f) == 0x7f) {
		snprintf(buf, size, "*");
		return;
	}
	for (int d = 0; d < 7; d++) {
		if (!(days & (1u << d)))
			continue;
		int e = d;
		while (e + 1 < 7 && (days & (1u << (e + 1))))
			e++;
		if (e - d >= 2)
			n += snprintf(buf + n, size - n, "%s%s-%s", n ? "," : "", day_names[d], day_names[e]);
		else
			for (int x = d; x <= e; x++)
				n += snprintf(buf + n, size - n, "%s%s", n ? "," : "", day_names[x]);
		d = e;
		if (n >= size)
			return;
	}
}

json_t *rollout_window_to_json(const rollout_window *w) {
	char days[64], start[24], end[24];

	format_days(w->days, days, sizeof days);
	snprintf(start, sizeof start, "%02d:%02d", w->start / 60, w->start % 60);
	snprintf(end, sizeof end, "%02d:%02d", w->end / 60, w->end % 60);
	return json_pack("{s:s, s:s, s:s, s:s}", "days", days, "start", start, "end", end, "tz",
			 w->tz ? w->tz : "UTC");
}

void rollout_window_done(rollout_window *w) {
	if (!w)
		return;
	free(w->tz);
	w->tz = NULL;
}

static bool day_set(const rollout_window *w, int wday) {
	return w->days & (1u << ((wday % 7 + 7) % 7));
}

static bool in_window(const rollout_window *w, time_t t) {
	struct tm tm;

	rollout_tz_local(w->tz, t, &tm);
	int m = tm.tm_hour * 60 + tm.tm_min;
	if (w->start == w->end)
		return day_set(w, tm.tm_wday);
	if (w->start < w->end)
		return day_set(w, tm.tm_wday) && m >= w->start && m < w->end;
	/* across midnight: the window belongs to the day it starts on */
	return (day_set(w, tm.tm_wday) && m >= w->start) || (day_set(w, tm.tm_wday - 1) && m < w->end);
}

bool rollout_in_windows(const rollout_window *w, size_t n, time_t t) {
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (in_window(&w[i], t))
			return true;
	return false;
}

time_t rollout_next_window(const rollout_window *w, size_t n, time_t t) {
	time_t best = 0;

	if (rollout_in_windows(w, n, t))
		return t;
	for (size_t i = 0; i < n; i++) {
		struct tm base;
		rollout_tz_local(w[i].tz, t, &base);
		for (int d = -1; d <= 8; d++) {
			struct tm day = base;
			day.tm_mday += d;
			day.tm_hour = w[i].start / 60;
			day.tm_min = w[i].start % 60;
			day.tm_sec = 0;
			wall_normalise(&day);
			if (!day_set(&w[i], day.tm_wday))
				continue;
			time_t at = rollout_tz_instant(w[i].tz, &day);
			if (at > t && (best == 0 || at < best))
				best = at;
		}
	}
	return best;
}

/* ---- cron ----------------------------------------------------------------------- */

static int cron_value(const char *s, size_t len, int min, int max, const char *const *names, int *out) {
	char buf[16];
	char *end;

	if (len == 0 || len >= sizeof buf)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (int i = 0; names && i <= max - min && i < (names == day_names ? 7 : 12); i++)
		if (strcasecmp(buf, names[i]) == 0) {
			*out = i + min;
			return 0;
		}
	long v = strtol(buf, &end, 10);
	if (!isdigit((unsigned char) buf[0]) || *end || v < min || v > max)
		return -EINVAL;
	*out = (int) v;
	return 0;
}

/* One field: "*", "*\/15", "1,15", "1-5", "10-50/10", "Mon-Fri"; bit i set
 * for each value i. */
static int cron_field(const char *s, int min, int max, const char *const *names, uint64_t *out) {
	uint64_t bits = 0;

	while (*s) {
		size_t len = strcspn(s, ",");
		const char *slash = memchr(s, '/', len), *dash;
		size_t rlen = slash ? (size_t) (slash - s) : len;
		int a = min, b = max, step = 1;
		if (slash && (cron_value(slash + 1, len - rlen - 1, 1, max, NULL, &step) < 0 || step < 1))
			return -EINVAL;
		if (!(rlen == 1 && s[0] == '*')) {
			dash = memchr(s, '-', rlen);
			if (cron_value(s, dash ? (size_t) (dash - s) : rlen, min, max, names, &a) < 0)
				return -EINVAL;
			if (dash) {
				if (cron_value(dash + 1, rlen - (dash - s) - 1, min, max, names, &b) < 0 || b < a)
					return -EINVAL;
			} else if (!slash)
				b = a;
		}
		for (int v = a; v <= b; v += step)
			bits |= 1ull << v;
		s += len;
		if (*s == ',' && !*++s)
			return -EINVAL;
	}
	*out = bits;
	return bits ? 0 : -EINVAL;
}

int rollout_cron_parse(const char *text, const char *tz, rollout_cron *out, rollout_error *err) {
	static const char *const what[5] = { "minute", "hour", "day of month", "month", "day of week" };
	char f[5][64], extra[2];
	uint64_t bits[5];
	rollout_cron c = {};
	int r;

	if (!text || sscanf(text, "%63s %63s %63s %63s %63s %1s", f[0], f[1], f[2], f[3], f[4], extra) != 5)
		return rollout_fail(err, "", "\"%.64s\" is not a five-field cron expression (e.g. \"0 2 * * 2\")",
				    text ? text : "");
	static const int lo[5] = { 0, 0, 1, 1, 0 }, hi[5] = { 59, 23, 31, 12, 7 };
	for (int i = 0; i < 5; i++)
		if (cron_field(f[i], lo[i], hi[i], i == 3 ? month_names : i == 4 ? day_names : NULL, &bits[i]) < 0)
			return rollout_fail(err, "", "cron \"%.64s\": bad %s field \"%.20s\"", text, what[i], f[i]);
	if ((r = rollout_tz_check(tz ? tz : "UTC", "tz", err)) < 0)
		return r;
	c.minutes = bits[0];
	c.hours = (uint32_t) bits[1];
	c.mdays = (uint32_t) bits[2];
	c.months = (uint16_t) bits[3];
	c.wdays = (uint8_t) ((bits[4] | (bits[4] >> 7)) & 0x7f);       /* 7 is Sunday too */
	c.mday_star = f[2][0] == '*';
	c.wday_star = f[4][0] == '*';
	c.tz = strdup(tz ? tz : "UTC");
	c.text = strdup(text);
	if (!c.tz || !c.text) {
		rollout_cron_done(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void rollout_cron_done(rollout_cron *c) {
	if (!c)
		return;
	free(c->tz);
	free(c->text);
	c->tz = c->text = NULL;
}

static bool cron_day(const rollout_cron *c, const struct tm *tm) {
	bool md = c->mdays & (1u << tm->tm_mday), wd = c->wdays & (1u << tm->tm_wday);

	if (c->mday_star && c->wday_star)
		return true;
	if (c->mday_star)
		return wd;
	if (c->wday_star)
		return md;
	return md || wd;        /* both restricted: either, as cron does */
}

time_t rollout_cron_next(const rollout_cron *c, time_t after) {
	struct tm tm;
	time_t first = (after / 60 + 1) * 60;

	rollout_tz_local(c->tz, first, &tm);
	tm.tm_sec = 0;
	int last_year = tm.tm_year + 5;
	/* Each step moves to the start of the next month, day, hour or minute:
	 * at most 60 months + 1830 days + ... steps within five years. */
	for (int i = 0; i < 200000 && tm.tm_year <= last_year; i++) {
		if (!(c->months & (1u << (tm.tm_mon + 1)))) {
			tm.tm_mon++, tm.tm_mday = 1, tm.tm_hour = 0, tm.tm_min = 0;
		} else if (!cron_day(c, &tm)) {
			tm.tm_mday++, tm.tm_hour = 0, tm.tm_min = 0;
		} else if (!(c->hours & (1u << tm.tm_hour))) {
			tm.tm_hour++, tm.tm_min = 0;
		} else if (!(c->minutes & (1ull << tm.tm_min))) {
			tm.tm_min++;
		} else {
			time_t t = rollout_tz_instant(c->tz, &tm);
			if (t > after)
				return t;
			tm.tm_min++;    /* a wall time repeated by a DST change */
		}
		wall_normalise(&tm);
	}
	return 0;
}
