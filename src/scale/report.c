/* report.c — a scaling cycle's report (scale-report.h) as the
 * scale/metrics document. Pure. jansson: *_set_new and "o" in json_pack
 * steal the reference. */
#include <jansson.h>

#include "scale-report.h"

static json_t *strv_json(const char *const *v, size_t n) {
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0)
			return json_decref(a), NULL;
	return a;
}

static json_t *inputs_json(const scale_report *r) {
	const scale_records *rec = r->records;
	const scale_observed *o = r->observed;
	json_t *q = json_object(), *p = json_array(), *rv = json_array(), *se = json_array();

	for (size_t i = 0; i < o->n_queues; i++)
		json_object_set_new(q, o->queues[i].pool, json_integer(o->queues[i].length));
	for (size_t i = 0; i < rec->n_prices; i++)
		json_array_append_new(p, json_pack("{s:s, s:s?, s:f}", "instance_type", rec->prices[i].instance_type,
						   "availability_zone", rec->prices[i].availability_zone, "price",
						   rec->prices[i].price));
	for (size_t i = 0; i < rec->n_reservations; i++)
		json_array_append_new(rv, json_pack("{s:s, s:s?, s:i}", "instance_type",
						    rec->reservations[i].instance_type, "availability_zone",
						    rec->reservations[i].availability_zone, "count",
						    rec->reservations[i].count));
	for (size_t i = 0; i < rec->n_spot_errors; i++)
		json_array_append_new(se, json_pack("{s:s, s:s}", "pool", rec->spot_errors[i].pool, "instance_type",
						    rec->spot_errors[i].instance_type));
	return json_pack("{s:b, s:b, s:i, s:i, s:o, s:o, s:o, s:s?, s:o}", "maintenance", rec->maintenance, "stop",
			 rec->stop, "hosts", (int) o->n_hosts, "instances", (int) rec->n_instances, "queues", q,
			 "prices", p, "reservations", rv, "reservations_error", rec->reservations_error,
			 "spot_errors", se);
}

static json_t *consistency_json(const scale_report *r) {
	json_t *hosts = json_object();

	for (int i = 0; hosts && i < _SCALE_STATE_MAX; i++)
		json_object_set_new(hosts, scale_state_to_string(i), json_integer(r->records_by_state[i]));
	return json_pack("{s:i, s:i, s:i, s:o}", "orphans_terminated", r->observed->orphans, "records_gone",
			 r->observed->gone, "unrecorded_in_grace", r->observed->in_grace, "hosts", hosts);
}

json_t *scale_report_to_json(const scale_report *r) {
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "time", (json_int_t) r->time, "revision",
			 (json_int_t) r->revision, "pools", scale_metrics_to_json(r->out), "actions",
			 scale_actions_to_json(r->out), "launched", strv_json(r->launched, r->n_launched), "errors",
			 strv_json(r->errors, r->n_errors), "inputs", inputs_json(r), "consistency",
			 consistency_json(r));
}
