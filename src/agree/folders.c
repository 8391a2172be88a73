/* folders.c — the config folders as records, and which of them to
 * delete: pure functions from what etcd listed (the keys under configs/,
 * `current`, the status records) to agree_folders, and from agree_folders
 * to the ids the collection deletes (agree_gc_plan). No I/O: history.c
 * lists, collect.c deletes. */
#include "agree-internal.h"

void agree_folders_done(agree_folders *f) {
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].id);
		free(f->v[i].base);
	}
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

/* What one key of a folder is: a leaf, the empty marker, a delta's
 * marker (naming its base) or one of its deletions. */
typedef struct folder_key {
	size_t leaf, deleted;
	const char *base;
	size_t base_len;
} folder_key;

static folder_key key_kind(const char *rel, size_t len) {
	size_t nb = strlen(AGREE_BASE_MARKER "/"), nd = strlen(AGREE_DELETED_DIR "/");

	if (len == strlen(AGREE_EMPTY_MARKER) && memcmp(rel, AGREE_EMPTY_MARKER, len) == 0)
		return (folder_key){};
	if (len > nb && memcmp(rel, AGREE_BASE_MARKER "/", nb) == 0 && keys_id_valid(rel + nb, len - nb))
		return (folder_key){ .base = rel + nb, .base_len = len - nb };
	/* A deletion counts as one in any folder: a complete folder with
	 * such a key (by hand) is malformed, and its leaf count is moot. */
	if (len > nd && memcmp(rel, AGREE_DELETED_DIR "/", nd) == 0)
		return (folder_key){ .deleted = 1 };
	return (folder_key){ .leaf = 1 };
}

static int folders_add(agree_folders *f, const char *id, size_t len, int64_t create_revision, const folder_key *k) {
	agree_folder *d = NULL;

	/* Keys come sorted, so a folder's keys are next to each other: look
	 * at the last folder first. */
	for (size_t i = f->n; i > 0; i--) {
		agree_folder *x = &f->v[i - 1];
		if (strlen(x->id) == len && memcmp(x->id, id, len) == 0) {
			d = x;
			break;
		}
		if (i == f->n && f->n > 64)
			break;          /* sorted input: not seen before */
	}
	if (!d) {
		agree_folder *v = realloc(f->v, (f->n + 1) * sizeof *v);
		if (!v)
			return -ENOMEM;
		f->v = v;
		d = &f->v[f->n];
		*d = (agree_folder){ .id = strndup(id, len), .create_revision = create_revision };
		if (!d->id)
			return -ENOMEM;
		f->n++;
	}
	if (create_revision < d->create_revision)
		d->create_revision = create_revision;
	d->n_keys += k->leaf;
	d->n_deleted += k->deleted;
	/* Two bases (by hand): the reader refuses the folder; keep the first
	 * so that the collection keeps at least it. */
	if (k->base && !d->base && !(d->base = strndup(k->base, k->base_len)))
		return -ENOMEM;
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
		folder_key k = key_kind(slash + 1, (size_t) (kv->key + kv->key_len - slash - 1));
		r = folders_add(&f, id, slash - id, kv->create_revision, &k);
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

/* The fields of upgrade/ records that name a snapshot: a target's (plan,
 * orders' target and from, state previous, upgrade/stable) and progress's
 * "config", the plan's config_base, the state's candidate and its base. */
static bool names_config(const char *key) {
	return streq(key, "config") || streq(key, "config_base") || streq(key, "candidate") ||
	       streq(key, "candidate_base");
}

static int in_use_walk(agree_folders *f, size_t *n, json_t *v) {
	const char *key;
	json_t *m;

	json_object_foreach(v, key, m) {
		bool id = names_config(key) && json_is_string(m) &&
			  keys_id_valid(json_string_value(m), json_string_length(m));
		int r = json_is_object(m) ? in_use_walk(f, n, m) : id ? in_use_add(f, n, m) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

int agree_folders_in_use_upgrade(agree_folders *f, const etcd_kv *upgrade, size_t n_upgrade, const char *skip) {
	size_t n = strv_length(f->in_use), skip_len = skip ? strlen(skip) : 0;

	for (size_t i = 0; i < n_upgrade; i++) {
		const etcd_kv *kv = &upgrade[i];
		if (skip && kv->key && kv->key_len >= skip_len && memcmp(kv->key, skip, skip_len) == 0)
			continue;
		json_auto_t *rec = kv->value ? json_loadb(kv->value, kv->value_len, 0, NULL) : NULL;
		/* Only ids of folders: a string that is no id names nothing. */
		if (json_is_object(rec) && in_use_walk(f, &n, rec) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Marks the base of every kept folder kept, and theirs (a base is
 * complete, but one written by hand may not be: follow the chain). */
static void keep_bases(const agree_folders *f, bool *kept) {
	for (bool more = true; more;) {
		more = false;
		for (size_t i = 0; i < f->n; i++) {
			if (!kept[i] || !f->v[i].base)
				continue;
			for (size_t j = 0; j < f->n; j++)
				if (!kept[j] && streq(f->v[j].id, f->v[i].base)) {
					kept[j] = more = true;
					break;
				}
		}
	}
}

int agree_gc_plan(const agree_folders *f, unsigned keep, char ***out_delete) {
	_cleanup_strv_free_ char **del = calloc(f->n + 1, sizeof *del);
	_cleanup_free_ bool *kept = calloc(f->n + 1, sizeof *kept);
	size_t n = 0;
	unsigned newest = 0;

	if (!del || !kept)
		return -ENOMEM;
	for (size_t i = 0; i < f->n; i++) {
		const agree_folder *d = &f->v[i];

		if (streq_ptr(d->id, f->current) || strv_contains(f->in_use, d->id))
			kept[i] = true;
		/* Newer than the last commit: a proposal may be writing it
		 * in chunks right now. Without a current, every folder is. */
		else if (d->create_revision > f->current_mod_revision)
			kept[i] = true;
		/* f->v is newest first, so these are the `keep` newest. */
		else if (newest < keep) {
			newest++;
			kept[i] = true;
		}
	}
	keep_bases(f, kept);
	for (size_t i = 0; i < f->n; i++) {
		if (kept[i])
			continue;
		del[n] = strdup(f->v[i].id);
		if (!del[n])
			return -ENOMEM;
		n++;
	}
	*out_delete = TAKE_PTR(del);
	return 0;
}
