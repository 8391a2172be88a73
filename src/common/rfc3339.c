/* rfc3339.c — one parser and one formatter for the UTC times corral stores
 * and prints (rfc3339.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "rfc3339.h"

static int digits(const char **p, int n, int *out) {
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char) (*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int expect(const char **p, char c) {
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

int rfc3339_parse(const char *s, time_t *out) {
	int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
	const char *p = s;

	if (!s || digits(&p, 4, &Y) < 0 || expect(&p, '-') < 0 || digits(&p, 2, &M) < 0 || expect(&p, '-') < 0 ||
	    digits(&p, 2, &D) < 0 || (*p != 'T' && *p != 't') || (p++, digits(&p, 2, &h) < 0) ||
	    expect(&p, ':') < 0 || digits(&p, 2, &m) < 0 || expect(&p, ':') < 0 || digits(&p, 2, &sec) < 0)
		return -EINVAL;
	if (*p == '.' || *p == ',') {           /* fractional seconds: dropped */
		p++;
		if (!isdigit((unsigned char) *p))
			return -EINVAL;
		while (isdigit((unsigned char) *p))
			p++;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (digits(&p, 2, &oh) < 0)
			return -EINVAL;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
			return -EINVAL;
	}
	/* no zone at all: EC2 means UTC */
	if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;

	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m,
		         .tm_sec = sec };
	time_t t = timegm(&tm);
	/* timegm normalises 31 February into March: refuse such dates */
	if (tm.tm_mday != D || tm.tm_mon != M - 1)
		return -EINVAL;
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

const char *rfc3339_format(time_t t, char buf[static RFC3339_MAX]) {
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm) || strftime(buf, RFC3339_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, RFC3339_MAX, "-");
	return buf;
}

json_t *rfc3339_json(time_t t) {
	char buf[RFC3339_MAX];

	return t > 0 ? json_string(rfc3339_format(t, buf)) : json_null();
}
