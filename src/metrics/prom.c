/* prom.c — the Prometheus text exposition writer (metrics.h): names
 * checked, escapes applied, HELP/TYPE once per family, values spelled the
 * way Prometheus parses them. Pure: no I/O. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "metrics.h"

static const char *const type_names[_METRICS_TYPE_MAX] = {
	[METRICS_COUNTER] = "counter",
	[METRICS_GAUGE] = "gauge",
	[METRICS_UNTYPED] = "untyped",
};

const char *metrics_type_to_string(metrics_type t) {
	return t >= 0 && t < _METRICS_TYPE_MAX ? type_names[t] : NULL;
}

static bool is_alpha_(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
	return c >= '0' && c <= '9';
}

bool metrics_name_valid(const char *name) {
	if (!name || !*name || !(is_alpha_(name[0]) || name[0] == ':'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
			return false;
	return true;
}

bool metrics_label_name_valid(const char *name) {
	if (!name || !*name || !is_alpha_(name[0]) || strncmp(name, "__", 2) == 0)
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return false;
	return true;
}

static int fail(metrics_buf *b, int error) {
	if (!b->error)
		b->error = error;
	return b->error;
}

static int reserve(metrics_buf *b, size_t more) {
	if (b->error)
		return b->error;
	/* +1: the NUL that keeps data a string at every step. */
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return fail(b, -ENOMEM);
	b->data = p;
	b->cap = cap;
	return 0;
}

static int append(metrics_buf *b, const char *s, size_t n) {
	int r = reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int append_str(metrics_buf *b, const char *s) {
	return append(b, s, strlen(s));
}

int metrics_append_escaped(metrics_buf *b, const char *s, bool help) {
	const char *run = s;

	if (b->error)
		return b->error;
	for (const char *p = s; *p; p++) {
		const char *esc = NULL;
		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p == '"' && !help)
			esc = "\\\"";
		if (!esc)
			continue;
		append(b, run, (size_t) (p - run));
		append_str(b, esc);
		run = p + 1;
	}
	return append_str(b, run);
}

const char *metrics_format_value(double v, char *buf, size_t size) {
	if (isnan(v))
		snprintf(buf, size, "NaN");
	else if (isinf(v))
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == 0)
		snprintf(buf, size, "0");      /* -0 too: a scrape gains nothing from the sign */
	else if (v == trunc(v) && fabs(v) < 9007199254740992.0)
		/* Exactly an integer that a double holds without loss (< 2^53):
		 * counters and counts read as integers. */
		snprintf(buf, size, "%.0f", v);
	else {
		/* The shortest of 15 or 17 significant digits that reads back
		 * the same: 0.1 stays "0.1", not "0.10000000000000001". */
		snprintf(buf, size, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, size, "%.17g", v);
	}
	return buf;
}

static bool declared(const metrics_buf *b, const char *name) {
	for (size_t i = 0; i < b->n_families; i++)
		if (streq(b->families[i], name))
			return true;
	return false;
}

int metrics_family(metrics_buf *b, const char *name, metrics_type type, const char *help) {
	const char *tn = metrics_type_to_string(type);

	if (b->error)
		return b->error;
	if (!metrics_name_valid(name) || !tn)
		return fail(b, -EINVAL);
	if (b->current && streq(b->current, name))
		return 0;
	if (declared(b, name))
		return fail(b, -EINVAL);

	char **v = realloc(b->families, (b->n_families + 1) * sizeof *v);
	if (!v)
		return fail(b, -ENOMEM);
	b->families = v;
	v[b->n_families] = strdup(name);
	if (!v[b->n_families])
		return fail(b, -ENOMEM);
	b->current = v[b->n_families++];

	append_str(b, "# HELP ");
	append_str(b, name);
	append_str(b, " ");
	metrics_append_escaped(b, help ?: "", true);
	append_str(b, "\n# TYPE ");
	append_str(b, name);
	append_str(b, " ");
	append_str(b, tn);
	return append_str(b, "\n");
}

int metrics_sample(metrics_buf *b, const char *name, const char *const *labels, double value) {
	char num[64];

	if (b->error)
		return b->error;
	if (!name || !b->current || !streq(b->current, name))
		return fail(b, -EINVAL);
	for (size_t i = 0; labels && labels[i]; i += 2)
		if (!metrics_label_name_valid(labels[i]) || !labels[i + 1])
			return fail(b, -EINVAL);

	append_str(b, name);
	if (labels && labels[0]) {
		append_str(b, "{");
		for (size_t i = 0; labels[i]; i += 2) {
			if (i > 0)
				append_str(b, ",");
			append_str(b, labels[i]);
			append_str(b, "=\"");
			metrics_append_escaped(b, labels[i + 1], false);
			append_str(b, "\"");
		}
		append_str(b, "}");
	}
	append_str(b, " ");
	append_str(b, metrics_format_value(value, num, sizeof num));
	return append_str(b, "\n");
}

static int family_sample(metrics_buf *b, const char *name, metrics_type type, const char *help,
			 const char *const *labels, double value) {
	int r = metrics_family(b, name, type, help);
	if (r < 0)
		return r;
	return metrics_sample(b, name, labels, value);
}

int metrics_gauge(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value) {
	return family_sample(b, name, METRICS_GAUGE, help, labels, value);
}

int metrics_counter(metrics_buf *b, const char *name, const char *help, const char *const *labels, double value) {
	return family_sample(b, name, METRICS_COUNTER, help, labels, value);
}

void metrics_buf_done(metrics_buf *b) {
	free(b->data);
	for (size_t i = 0; i < b->n_families; i++)
		free(b->families[i]);
	free(b->families);
	*b = (metrics_buf){};
}

int metrics_buf_take(metrics_buf *b, char **out, size_t *len) {
	int r = b->error;

	if (r >= 0 && !b->data)
		r = reserve(b, 0) < 0 ? b->error : 0;
	if (r >= 0 && b->data)
		b->data[b->len] = '\0';
	if (r < 0) {
		metrics_buf_done(b);
		return r;
	}
	if (len)
		*len = b->len;
	*out = TAKE_PTR(b->data);
	metrics_buf_done(b);
	return 0;
}
