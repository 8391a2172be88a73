/* folders.c — the config folders as records, and which of them to
 * delete: pure functions from what etcd listed (the keys under configs/,
 * `current`, the status records) to agree_folders, and from agree_folders
 * to the ids the collection deletes (agree_gc_plan). No I/O: history.c
 * lists, collect.c deletes. */
#include "agree-internal.h"

void agree_folders_done(agree_folders *f) {
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].id);
	free(f->v);
	free(f->current);
	strv_free(f->in_use);
	*f = (agree_folders){};
}

static int folder_cmp(const void *a, const void *b) {
	const agree_folder *x = a, *y = b;

	if (x->create_revision != y->create_revision)
		return x->create_revision > y->create_revision ? -1 : 1;
	return -strcmp(x->id, y->id);
}

static int folders_add(agree_folders *f, const char *id, size_t len, int64_t create_revision, size_t n_keys) {
	/* Keys come sorted, so a folder's keys are next to each other: look
	 * at the last folder first. */
	for (size_t i = f->n; i > 0; i--) {
		agree_folder *d = &f->v[i - 1];
		if (strlen(d->id) == len && memcmp(d->id, id, len) == 0) {
			if (create_revision < d->create_revision)
				d->create_revision = create_revision;
			d->n_keys += n_keys;
			return 0;
		}
		if (i == f->n && f->n > 64)
			break;          /* sorted input: not seen before */
	}
	agree_folder *v = realloc(f->v, (f->n + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	f->v = v;
	f->v[f->n] = (agree_folder){ .id = strndup(id, len), .create_revision = create_revision, .n_keys = n_keys };
	if (!f->v[f->n].id)
		return -ENOMEM;
	f->n++;
	return 0;
}

int agree_folders_from_keys(const etcd_kv *kvs, size_t n, size_t strip, agree_folders *out) {
	agree_folders f = {};
	int r;

	for (size_t i = 0; i < n; i++) {
		const etcd_kv *kv = &kvs[i];
		if (kv->key_len <= strip)
			continue;
		const char *id = kv->key + strip;
		size_t rest = kv->key_len - strip;
		const char *slash = memchr(id, '/', rest);
		/* A key straight under configs/ is no folder: not ours. */
		if (!slash || slash == id || !keys_id_valid(id, slash - id))
			continue;
		/* The empty config's marker keeps the folder, but is no leaf. */
		bool marker = (size_t) (kv->key + kv->key_len - slash - 1) == strlen(AGREE_EMPTY_MARKER) &&
			      memcmp(slash + 1, AGREE_EMPTY_MARKER, strlen(AGREE_EMPTY_MARKER)) == 0;
		r = folders_add(&f, id, slash - id, kv->create_revision, marker ? 0 : 1);
		if (r < 0) {
			agree_folders_done(&f);
			return r;
		}
	}
	if (f.n > 1)
		qsort(f.v, f.n, sizeof *f.v, folder_cmp);
	*out = f;
	return 0;
}

static bool strv_contains(char *const *v, const char *s) {
	for (size_t i = 0; v && v[i]; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

static int in_use_add(agree_folders *f, size_t *n, json_t *v) {
	if (!json_is_string(v) || strv_contains(f->in_use, json_string_value(v)))
		return 0;
	char **nv = realloc(f->in_use, (*n + 2) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	f->in_use = nv;
	f->in_use[*n] = strdup(json_string_value(v));
	f->in_use[*n + 1] = NULL;
	if (!f->in_use[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int agree_folders_in_use(agree_folders *f, const etcd_kv *status, size_t n_status) {
	size_t n = 0;

	strv_free(f->in_use);
	f->in_use = calloc(1, sizeof *f->in_use);
	if (!f->in_use)
		return -ENOMEM;
	for (size_t i = 0; i < n_status; i++) {
		const etcd_kv *kv = &status[i];
		json_auto_t *rec = kv->value ? json_loadb(kv->value, kv->value_len, 0, NULL) : NULL;

		/* A malformed record names nothing we could keep. */
		if (!json_is_object(rec))
			continue;
		if (in_use_add(f, &n, json_object_get(rec, "target")) < 0 ||
		    in_use_add(f, &n, json_object_get(rec, "applied")) < 0)
			return -ENOMEM;
	}
	return 0;
}

int agree_gc_plan(const agree_folders *f, unsigned keep, char ***out_delete) {
	_cleanup_strv_free_ char **del = calloc(f->n + 1, sizeof *del);
	size_t n = 0;
	unsigned kept = 0;

	if (!del)
		return -ENOMEM;
	for (size_t i = 0; i < f->n; i++) {
		const agree_folder *d = &f->v[i];

		if (streq_ptr(d->id, f->current) || strv_contains(f->in_use, d->id))
			continue;
		/* Newer than the last commit: a proposal may be writing it
		 * in chunks right now. Without a current, every folder is. */
		if (d->create_revision > f->current_mod_revision)
			continue;
		/* f->v is newest first, so these are the `keep` newest. */
		if (kept < keep) {
			kept++;
			continue;
		}
		del[n] = strdup(d->id);
		if (!del[n])
			return -ENOMEM;
		n++;
	}
	*out_delete = TAKE_PTR(del);
	return 0;
}
