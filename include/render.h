/* render.h — putting a rendered file on disk so that every reader sees the
 * old file or the new one, whole, even across a crash or power loss.
 *
 * The bytes go to a temp file in the target's own directory (same file
 * system, so rename(2) is atomic), which gets its mode and owner and is
 * fsynced; then it is renamed over the target and the directory is
 * fsynced, so the rename itself is durable. Between render_stage() and
 * render_commit() the caller may run a check command on the staged file
 * (corrald runs it as a child on its event loop): a file that fails its
 * check is discarded and the last good file stays.
 *
 * Temp files are named ".<name>.corral-XXXXXX"; render_cleanup_stale()
 * removes those a crash left behind. Functions return 0 or -errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct render_opts {
	mode_t mode;            /* permission bits; 0 means 0644 */
	uid_t uid;              /* (uid_t) -1: leave as created */
	gid_t gid;              /* (gid_t) -1: leave as created */
} render_opts;

#define RENDER_OPTS_DEFAULT ((render_opts){ .mode = 0644, .uid = (uid_t) -1, .gid = (gid_t) -1 })

/* 1 when path holds exactly these bytes, 0 when it differs or is absent,
 * -errno when it cannot be read. */
int render_same(const char *path, const void *data, size_t len);

/* Writes data to a new, fsynced temp file beside path with the options'
 * mode and owner; its path in *out_tmp (caller frees). */
int render_stage(const char *path, const void *data, size_t len, const render_opts *o, char **out_tmp);

/* Renames the staged tmp over path and fsyncs the directory. */
int render_commit(const char *tmp, const char *path);

/* Removes a staged temp file (NULL-safe). */
void render_discard(const char *tmp);

/* render_same, then stage and commit: 1 when the file was written, 0 when
 * it already held these bytes (and its mode and owner are left alone). */
int render_write(const char *path, const void *data, size_t len, const render_opts *o);

/* Removes ".<name>.corral-*" temp files beside path; the count removed. */
int render_cleanup_stale(const char *path);

/* SHA-256 of data as 64 hex digits and a NUL. */
void render_digest(const void *data, size_t len, char out[65]);
