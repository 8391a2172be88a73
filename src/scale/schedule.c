/* schedule.c — scheduled capacity (issue 17, docs/scale.md "Schedules"):
 * a pool's schedule entries as JSON and the minimum they put in force at
 * a time. An entry holds from lead before its event until duration after
 * it; the event is a five-field cron in UTC (the rollout's parser, one
 * cron dialect in corral) or one RFC 3339 time (EC2's parser). Pure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec2xml.h"
#include "rollout.h"
#include "scale-forecast.h"
#include "scale-internal.h"

#define DAY (24LL * 3600)

void scale_schedule_done(scale_schedule *s) {
	if (!s)
		return;
	free(s->cron);
	*s = (scale_schedule) { 0 };
}

int scale_schedule_from_json(json_t *j, const char *prefix, scale_schedule *out, scale_error *err) {
	static const char *const keys[] = { "cron", "at", "min", "duration", "lead" };
	_cleanup_(scale_schedule_done) scale_schedule s = { .duration = 3600, .lead = 900 };
	_cleanup_free_ char *at = NULL;
	char key[160];
	long long v;
	int r;

	if (!json_is_object(j))
		return scale_fail(err, prefix, "must be {\"cron\" or \"at\", \"min\", \"duration\", \"lead\"}");
	if ((r = scale_get_str(j, prefix, "cron", false, false, &s.cron, err)) < 0 ||
	    (r = scale_get_str(j, prefix, "at", false, false, &at, err)) < 0)
		return r;
	if (!s.cron == !at)
		return scale_fail(err, prefix, "needs exactly one of \"cron\" and \"at\"");
	if (s.cron) {
		_cleanup_(rollout_cron_done) rollout_cron c = { 0 };
		rollout_error e = { 0 };
		snprintf(key, sizeof key, "%s.cron", prefix);
		r = rollout_cron_parse(s.cron, "UTC", &c, &e);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return scale_fail(err, key, "%s", e.message);
	} else {
		snprintf(key, sizeof key, "%s.at", prefix);
		if (ec2xml_parse_time(at, &s.at) < 0 || s.at <= 0)
			return scale_fail(err, key, "\"%.64s\" is not an RFC 3339 time (e.g. \"2026-12-24T10:00:00Z\")", at);
	}
	if (!json_object_get(j, "min"))
		return scale_fail(err, prefix, "needs \"min\"");
	v = 0;
	if ((r = scale_get_int(j, prefix, "min", 0, 100000, &v, err)) < 0)
		return r;
	s.min = (int) v;
	v = s.duration;
	if ((r = scale_get_int(j, prefix, "duration", 1, 30 * DAY, &v, err)) < 0)
		return r;
	s.duration = v;
	v = s.lead;
	if ((r = scale_get_int(j, prefix, "lead", 0, DAY, &v, err)) < 0)
		return r;
	s.lead = v;
	if ((r = scale_check_keys(j, prefix, keys, ELEMENTSOF(keys), err)) < 0)
		return r;
	*out = s;
	s = (scale_schedule) { 0 };
	return 0;
}

json_t *scale_schedule_to_json(const scale_schedule *s) {
	json_auto_t *o = json_object();
	char at[32];
	struct tm tm;

	if (!o)
		return NULL;
	if (s->cron) {
		if (json_object_set_new(o, "cron", json_string(s->cron)) < 0)
			return NULL;
	} else {
		time_t t = s->at;
		if (!gmtime_r(&t, &tm) || strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 ||
		    json_object_set_new(o, "at", json_string(at)) < 0)
			return NULL;
	}
	if (json_object_set_new(o, "min", json_integer(s->min)) < 0 ||
	    json_object_set_new(o, "duration", json_integer(s->duration)) < 0 ||
	    json_object_set_new(o, "lead", json_integer(s->lead)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/* Whether entry s holds at now: now in [e - lead, e + duration) for some
 * event e. For a cron the first event after now - duration is the only
 * one to look at: every later one starts its lead later still. */
static bool schedule_holds(const scale_schedule *s, time_t now) {
	if (!s->cron)
		return s->at > 0 && now >= s->at - s->lead && now < s->at + s->duration;

	_cleanup_(rollout_cron_done) rollout_cron c = { 0 };
	rollout_error e;
	/* checked when the policy was read; a failure here (ENOMEM) holds nothing */
	if (rollout_cron_parse(s->cron, "UTC", &c, &e) < 0)
		return false;
	time_t ev = rollout_cron_next(&c, now - s->duration);     /* first e > now - duration */
	return ev > 0 && now >= ev - s->lead;
}

int scale_schedule_min(const scale_pool *p, time_t now) {
	int best = 0;
	for (size_t i = 0; i < p->n_schedule; i++)
		if (p->schedule[i].min > best && schedule_holds(&p->schedule[i], now))
			best = p->schedule[i].min;
	return best;
}
