/* execute.c — act, the last step of a lifecycle round: each action's
 * record written with a compare-and-set on its mod_revision, fenced by the
 * leader's token, then its notices sent through the policy's
 * notice_command, one at a time (the record holds them first: a notice is
 * sent at most once). A record someone changed meanwhile is skipped and
 * the round asks for another at once; a refused fence ends the round with
 * -EPERM. One line per write and per notice. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "leader.h"
#include "lifecycle-internal.h"

#define NOTICE_MAX_OUTPUT (64 * 1024)

lc_round *lc_round_free(lc_round *r) {
	if (!r)
		return NULL;
	if (r->call)
		etcd_call_cancel(r->call);
	child_run_free(r->child);
	if (r->decided)
		deployment_output_done(&r->out);
	if (r->observed)
		deployment_observed_done(&r->obs);
	if (r->have_snap)
		lifecycle_snapshot_done(&r->snap);
	free(r);
	return NULL;
}

static void write_next(lc_round *r);
static void notice_next(lc_round *r);

_printf_(3, 4) static void sayf(lc_round *r, bool warning, const char *fmt, ...) {
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (r->line)
		r->line(r, warning, buf);
}

/* ---- notices ---------------------------------------------------------------------- */

static void on_notice(child_run *run, const child_result *res, void *userdata) {
	lc_round *r = userdata;
	const deployment_action *a = &r->out.actions[r->at];
	const char *kind = a->notices[r->notice_at];

	if (res->error == 0)
		sayf(r, false, "%s: notice %s sent", a->record.id, kind);
	else {
		r->notices_failed++;
		sayf(r, true, "%s: notice %s failed, not sent again: %s", a->record.id, kind, res->message);
	}
	r->child = child_run_free(r->child);
	r->notice_at++;
	notice_next(r);
}

/* "K=V" */
static char *env_kv(const char *k, const char *v) {
	char *s = NULL;
	return asprintf(&s, "%s=%s", k, v ? v : "") < 0 ? NULL : s;
}

static int notice_start(lc_round *r, const deployment_action *a, const char *kind) {
	const deployment_policy *p = &r->obs.policy;
	json_auto_t *rec = deployment_to_json(&a->record);
	_cleanup_free_ char *rec_text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	_cleanup_free_ char *msg = deployment_notice_message(&a->record, kind, r->cluster);
	if (!rec_text || !msg)
		return -ENOMEM;
	json_auto_t *in = json_pack("{s:s, s:s, s:O, s:s}", "notice", kind, "deployment", a->record.id, "record",
				    rec, "message", msg);
	_cleanup_free_ char *input = in ? json_dumps(in, JSON_COMPACT) : NULL;
	char *env[] = {
		env_kv("CORRAL_NOTICE", kind),      env_kv("CORRAL_DEPLOYMENT", a->record.id),
		env_kv("CORRAL_DEPLOYMENT_JSON", rec_text), env_kv("CORRAL_OWNER", a->record.owner),
		env_kv("CORRAL_CLUSTER", r->cluster),       env_kv("CORRAL_NOTICE_MESSAGE", msg),
		NULL,
	};
	int k = input ? 0 : -ENOMEM;
	for (size_t i = 0; i + 1 < ELEMENTSOF(env); i++)
		if (!env[i])
			k = -ENOMEM;
	if (k == 0) {
		child_options o = {
			.command = p->notice_command,
			.input = input,
			.input_len = strlen(input),
			.max_output = NOTICE_MAX_OUTPUT,
			.timeout_usec = (uint64_t) p->notice_timeout * USEC_PER_SEC,
			.env = env,
		};
		k = child_run_start(&r->child, r->event, &o, on_notice, r);
	}
	for (size_t i = 0; i + 1 < ELEMENTSOF(env); i++)
		free(env[i]);
	return k;
}

/* The action's notices, one at a time; then the next action. */
static void notice_next(lc_round *r) {
	const deployment_action *a = &r->out.actions[r->at];

	while (r->notice_at < a->n_notices) {
		const char *kind = a->notices[r->notice_at];
		if (!r->obs.policy.notice_command) {
			sayf(r, false, "%s: notice %s: no notice_command, logged only", a->record.id, kind);
			r->notice_at++;
			continue;
		}
		int k = notice_start(r, a, kind);
		if (k >= 0)
			return;         /* on_notice goes on */
		r->notices_failed++;
		sayf(r, true, "%s: notice %s could not run, not sent again: %s", a->record.id, kind, strerror(-k));
		r->notice_at++;
	}
	r->at++;
	write_next(r);
}

/* ---- the writes ------------------------------------------------------------------- */

static bool fence_failed(const lc_round *r, const etcd_response *res) {
	const etcd_response *lk = res->n_responses > 0 ? &res->responses[0] : NULL;
	return !lk || lk->n_kvs == 0 || lk->kvs[0].create_revision != r->token;
}

static void on_written(etcd_client *e, etcd_response *resp, void *userdata) {
	_cleanup_(etcd_response_freep) etcd_response *res = resp;
	lc_round *r = userdata;
	const deployment_action *a = &r->out.actions[r->at];
	char buf[512];

	r->call = NULL;
	if (res->error.code < 0)
		return r->done(r, res->error.code, etcd_error_format(&res->error, buf, sizeof buf));
	if (!res->succeeded) {
		if (fence_failed(r, res))
			return r->done(r, -EPERM, "fence refused: no longer the leader");
		/* a touch, a reclaim, a report of the application: decided
		 * again from what it wrote, at once */
		r->changed = true;
		r->at++;
		return write_next(r);
	}
	sayf(r, false, "%s", a->line);
	r->notice_at = 0;
	notice_next(r);
}

static void write_next(lc_round *r) {
	if (r->at >= r->out.n_actions)
		return r->done(r, 0, NULL);
	const deployment_action *a = &r->out.actions[r->at];
	_cleanup_free_ char *key = keys_entry(r->prefix, KEYS_DEPLOYMENTS, a->record.id);
	json_auto_t *j = deployment_to_json(&a->record);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (!key || !text)
		return r->done(r, -ENOMEM, "out of memory");
	etcd_compare cmp[2] = {
		leader_fence(r->leader_key, r->token),
		a->mod_revision > 0
			? (etcd_compare) { .key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
					   .number = a->mod_revision }
			: (etcd_compare) { .key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL },
	};
	etcd_op put = { .type = ETCD_OP_PUT, .put = { .key = key, .value = text, .value_len = strlen(text) } };
	etcd_op fail = { .type = ETCD_OP_RANGE, .range = { .key = r->leader_key } };
	etcd_txn_req req = { .compare = cmp, .n_compare = 2, .success = &put, .n_success = 1, .failure = &fail,
			     .n_failure = 1 };
	int k = etcd_txn(r->etcd, &req, on_written, r, &r->call);
	if (k < 0)
		r->done(r, k, "cannot send a write");
}

void lifecycle_execute_start(lc_round *r) {
	r->at = 0;
	write_next(r);
}
