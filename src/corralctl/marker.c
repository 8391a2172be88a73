/* marker.c — the on/off switches an operator flips in etcd (maintenance,
 * cluster stop, a hold): a marker record saying since when, by whom and
 * why, created to switch on and deleted to switch off, with the scaling
 * summary logged around the change.
 *
 * Switching on never overwrites another operator's marker silently: the
 * marker is created only if absent (one txn), else the one in place is
 * named and the command fails; -f/--force replaces it (compare-and-swap
 * on the mod revision read) and names the one it replaced. */
#include <errno.h>
#include <stdlib.h>

#include "ctl.h"
#include "esc.h"

#define MARKER_TRIES 5          /* each loss means another writer moved it */

/* `since=... by=... reason="..."` for a marker record as stored. */
static void marker_fields(const char *text, char *buf, size_t size) {
	json_auto_t *m = json_loads(text, 0, NULL);
	const char *since = json_string_value(json_object_get(m, "since"));
	const char *by = json_string_value(json_object_get(m, "by"));
	const char *reason = json_string_value(json_object_get(m, "reason"));

	if (!json_is_object(m)) {
		snprintf(buf, size, "value=\"%s\"", ESC(text));
		return;
	}
	snprintf(buf, size, "since=%s by=%s reason=%s%s%s", since ? ESC(since) : "-", by ? ESC(by) : "-",
		 reason ? "\"" : "", reason ? ESC(reason) : "-", reason ? "\"" : "");
}

/* key = value if absent, or with force over whatever is there. 0 (*old:
 * the replaced text or NULL), -EEXIST (*old: the marker in place), or
 * -errno (-EIO printed). */
static int marker_put(ctl_t *c, const char *key, const char *value, bool force, char **old) {
	for (int i = 0; i < MARKER_TRIES; i++) {
		_cleanup_free_ char *cur = NULL;
		int64_t mod = 0;
		int r;

		if (!force) {
			/* the common case in one round trip: create only if absent */
			r = c->dry_run ? 0 : ctl_put(c, key, value, 0);
			if (r != -ESTALE && !c->dry_run)
				return r;
		}
		r = ctl_get(c, key, &cur, &mod, NULL);
		if (r < 0)
			return r;
		if (cur && !force) {
			*old = TAKE_PTR(cur);
			return -EEXIST;
		}
		if (!cur && !force && c->dry_run)
			return ctl_put(c, key, value, 0);
		r = ctl_put(c, key, value, mod);
		if (r != -ESTALE) {
			*old = TAKE_PTR(cur);
			return r;
		}
	}
	fprintf(stderr, "corralctl: %s kept changing; try again\n", ESC(key));
	return -EAGAIN;
}

static int switch_on(ctl_t *c, const char *key, const char *reason, const ctl_marker_texts *t) {
	_cleanup_free_ char *value = ctl_marker_json(reason), *old = NULL;
	char fields[ESC_MAX * 3 + 64];

	if (!value)
		return 1;
	int r = marker_put(c, key, value, c->force, &old);
	if (r == -EEXIST) {
		marker_fields(old, fields, sizeof fields);
		fprintf(stderr, "corralctl: %s: %s; not replaced (-f/--force replaces it)\n", t->taken, fields);
		return 1;
	}
	if (r < 0)
		return 1;
	if (old) {
		marker_fields(old, fields, sizeof fields);
		fprintf(stderr, "corralctl: %s: %s %s\n", t->taken, c->dry_run ? "would replace" : "replaced", fields);
	}
	return ctl_report(c, "put", key, value, t->on);
}

int ctl_switch_marker(ctl_t *c, const char *key, bool on, const char *reason, const ctl_marker_texts *t) {
	int r;

	if (!key)
		return 1;
	ctl_log_summary(c, "before");
	if (on)
		r = switch_on(c, key, reason, t);
	else {
		r = ctl_delete(c, key);
		if (r < 0)
			return 1;
		r = ctl_report(c, "delete", key, NULL, r > 0 ? t->off : t->absent);
	}
	if (r == 0)
		ctl_log_summary(c, "after");
	return r;
}
