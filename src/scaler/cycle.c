/* cycle.c — a scaling cycle's memory (cycle.h): freeing everything a
 * cycle gathered, its notes and its action lines. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cycle.h"

void cycle_spot_errors_free(scale_spot_error *e, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(e[i].pool);
		free(e[i].instance_type);
	}
	free(e);
}

static void insts_free(scale_instance *v, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free((char *) v[i].id);
		free((char *) v[i].instance_type);
		free((char *) v[i].availability_zone);
		free((char *) v[i].pool);
		free((char *) v[i].client_token);
		free((char *) v[i].image_id);
		free((char *) v[i].launch_template_version);
	}
	free(v);
}

cycle *cycle_free(cycle *c) {
	if (!c)
		return NULL;
	scale_output_done(&c->out);
	scale_observed_done(&c->obs);
	free(c->leader_key);
	insts_free(c->insts, c->n_insts);
	free(c->adopted);
	for (size_t i = 0; i < c->snap.records.n_prices; i++) {
		free(c->prices[i].instance_type);
		free(c->prices[i].availability_zone);
	}
	free(c->prices);
	for (size_t i = 0; i < c->snap.records.n_reservations; i++) {
		free(c->res[i].instance_type);
		free(c->res[i].availability_zone);
	}
	free(c->res);
	/* Last: the counts above are the records'. */
	scaler_snapshot_done(&c->snap);
	free(c->prices_error);
	free(c->reservations_error);
	cycle_spot_errors_free(c->spot_errors, c->n_spot_errors);
	cycle_spot_errors_free(c->spot_failed, c->n_spot_failed);
	strv_free(c->terminate);
	strv_free(c->stop);
	strv_free(c->start);
	for (size_t i = 0; i < c->n_tags; i++)
		free(c->tags[i].id);
	free(c->tags);
	strv_free(c->launched);
	strv_free(c->errors);
	strv_free(c->wkeys);
	strv_free(c->wvals);
	free(c->del_from);
	free(c->del_to);
	free(c);
	return NULL;
}

void cycle_note(cycle *c, const char *fmt, ...) {
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	(void) strv_take(&c->errors, &c->n_errors, strdup(buf));
}

void cycle_say(cycle *c, int priority, const char *verb, const char *const *kv) {
	char line[1024];

	if (c->action)
		c->action(c, priority, scale_log_line(line, sizeof line, verb, kv));
}
