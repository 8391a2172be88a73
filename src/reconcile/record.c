/* record.c — the reconciler's records across applies: each file's digest
 * and config id, each unit's last action, the verdicts (bytes a check or
 * a unit refused), and the status record built from them (see record.h). */
#include <time.h>

#include "record.h"
#include "render.h"

int reconcile_records_init(reconcile_records *rec) {
	rec->files = json_object();
	rec->units = json_object();
	rec->verdicts = json_object();
	if (!rec->files || !rec->units || !rec->verdicts) {
		reconcile_records_done(rec);
		return -ENOMEM;
	}
	return 0;
}

void reconcile_records_done(reconcile_records *rec) {
	json_decref(rec->files);
	json_decref(rec->units);
	json_decref(rec->verdicts);
	*rec = (reconcile_records){};
}

const char *reconcile_verdict_get(const reconcile_records *rec, const char *name, const char *config_id,
				  const char *bytes, size_t len) {
	json_t *v = json_object_get(rec->verdicts, name);
	char digest[65];

	if (!v || !bytes || !streq_ptr(json_string_value(json_object_get(v, "config_id")), config_id))
		return NULL;
	render_digest(bytes, len, digest);
	if (!streq_ptr(json_string_value(json_object_get(v, "digest")), digest))
		return NULL;
	return json_string_value(json_object_get(v, "error"));
}

void reconcile_verdict_set(reconcile_records *rec, const char *name, const char *config_id, const char *bytes,
			   size_t len, const char *error) {
	char digest[65];

	if (!bytes || !config_id)
		return;
	render_digest(bytes, len, digest);
	(void) json_object_set_new(rec->verdicts, name,
				   json_pack("{ss ss ss}", "config_id", config_id, "digest", digest, "error", error));
}

void reconcile_verdicts_forget(reconcile_records *rec) {
	json_object_clear(rec->verdicts);
}

void reconcile_record_file(reconcile_records *rec, const conf_file *cf, const char *config_id, const void *bytes,
			   size_t len, const char *error) {
	char digest[65];
	json_t *old = json_object_get(rec->files, cf->name);
	json_t *prev = old ? json_object_get(old, "config_id") : NULL;

	if (bytes)
		render_digest(bytes, len, digest);
	/* The same file again (a re-apply that changed nothing): the record
	 * stays, previous_config_id included, so the status says nothing new. */
	if (old && streq_ptr(json_string_value(json_object_get(old, "path")), cf->path) &&
	    streq_ptr(json_string_value(prev), config_id) &&
	    streq_ptr(json_string_value(json_object_get(old, "digest")), bytes ? digest : NULL) &&
	    streq_ptr(json_string_value(json_object_get(old, "error")), error && error[0] ? error : NULL))
		return;
	json_t *fs = json_pack("{ss ss* ss* ss*}", "path", cf->path, "digest", bytes ? digest : NULL, "config_id",
			       config_id, "error", error && error[0] ? error : NULL);
	if (!fs)
		return;
	if (prev)
		(void) json_object_set(fs, "previous_config_id", prev);
	(void) json_object_set_new(rec->files, cf->name, fs);
}

void reconcile_record_file_kept(reconcile_records *rec, const conf_file *cf, const void *old, size_t old_len,
				const char *error) {
	json_t *fs = json_object_get(rec->files, cf->name);

	if (fs)
		(void) json_object_set_new(fs, "error", json_string(error));
	else
		reconcile_record_file(rec, cf, NULL, old, old_len, error);
}

void reconcile_record_file_undone(reconcile_records *rec, const conf_file *cf, const void *old, size_t old_len) {
	json_t *fs = json_object_get(rec->files, cf->name);
	char digest[65];

	render_digest(old, old_len, digest);
	if (fs)
		(void) json_object_set_new(fs, "digest", json_string(digest));
	/* config_id stays that of the last good apply */
	json_t *prev = json_object_get(fs, "previous_config_id");
	if (fs && prev)
		(void) json_object_set(fs, "config_id", prev);
}

void reconcile_record_unit(reconcile_records *rec, const units_result *res) {
	json_t *u = json_pack("{ss ss ss sb ss}", "action", units_action_to_string(res->action), "result",
			      res->job_result, "active_state", res->active_state, "ok", res->error == 0, "message",
			      res->message);
	if (u)
		(void) json_object_set_new(rec->units, res->unit, u);
}

static char *now_rfc3339(void) {
	time_t t = time(NULL);
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return strdup("");
	return strdup(buf);
}

json_t *reconcile_status_build(const reconcile_records *rec, const reconcile_status_in *in) {
	_cleanup_free_ char *updated = now_rfc3339();
	json_t *retry = in->retry_usec ? json_pack("{sI sI}", "attempt", (json_int_t) in->retry_attempt, "delay_ms",
						   (json_int_t) (in->retry_usec / USEC_PER_MSEC))
				       : json_null();
	return json_pack("{ss ss* ss* ss? sI sb ss* sO sO so? ss}", "node_id", in->node_id, "target", in->target,
			 "applied", in->applied, "pinned", in->pinned, "revision", (json_int_t) in->revision, "ok",
			 in->ok, "error", in->ok ? NULL : in->error, "files", rec->files, "units", rec->units, "retry",
			 retry, "updated", updated);
}
