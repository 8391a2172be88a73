/* render.c — atomic, durable file replacement. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "macro.h"
#include "render.h"

#define TEMP_TAG ".corral-"

static int split_path(const char *path, char **dir, char **base) {
	_cleanup_free_ char *a = strdup(path), *b = strdup(path);

	if (!a || !b)
		return -ENOMEM;
	*dir = strdup(dirname(a));
	*base = strdup(basename(b));
	if (!*dir || !*base) {
		free(*dir);
		free(*base);
		return -ENOMEM;
	}
	return 0;
}

static int write_all(int fd, const void *data, size_t len) {
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

int render_same(const char *path, const void *data, size_t len) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char buf[65536];
	size_t off = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (size_t) st.st_size != len)
		return 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return off == len;
		if (off + (size_t) n > len || memcmp((const char *) data + off, buf, (size_t) n) != 0)
			return 0;
		off += (size_t) n;
	}
}

int render_stage(const char *path, const void *data, size_t len, const render_opts *o, char **out_tmp) {
	render_opts def = RENDER_OPTS_DEFAULT;
	_cleanup_free_ char *dir = NULL, *base = NULL, *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (!o)
		o = &def;
	r = split_path(path, &dir, &base);
	if (r < 0)
		return r;
	if (asprintf(&tmp, "%s/.%s" TEMP_TAG "XXXXXX", dir, base) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;

	r = write_all(fd, data, len);
	if (r >= 0 && fchmod(fd, o->mode ? o->mode & 07777 : 0644) < 0)
		r = -errno;
	if (r >= 0 && (o->uid != (uid_t) -1 || o->gid != (gid_t) -1) && fchown(fd, o->uid, o->gid) < 0)
		r = -errno;
	/* The data must be on disk before the rename makes it the file. */
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		(void) unlink(tmp);
		return r;
	}
	*out_tmp = TAKE_PTR(tmp);
	return 0;
}

int render_commit(const char *tmp, const char *path) {
	_cleanup_free_ char *dir = NULL, *base = NULL;
	int r = split_path(path, &dir, &base);

	if (r < 0)
		return r;
	if (rename(tmp, path) < 0) {
		r = -errno;
		(void) unlink(tmp);
		return r;
	}
	/* And the rename must be on disk before we say it happened. */
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return -errno;
	return 0;
}

void render_discard(const char *tmp) {
	if (tmp)
		(void) unlink(tmp);
}

int render_write(const char *path, const void *data, size_t len, const render_opts *o) {
	_cleanup_free_ char *tmp = NULL;
	int r = render_same(path, data, len);

	if (r != 0)
		return r < 0 ? r : 0;
	r = render_stage(path, data, len, o, &tmp);
	if (r < 0)
		return r;
	r = render_commit(tmp, path);
	return r < 0 ? r : 1;
}

int render_cleanup_stale(const char *path) {
	_cleanup_free_ char *dir = NULL, *base = NULL, *prefix = NULL;
	DIR *d;
	struct dirent *de;
	int r, n = 0;

	r = split_path(path, &dir, &base);
	if (r < 0)
		return r;
	if (asprintf(&prefix, ".%s" TEMP_TAG, base) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (!startswith(de->d_name, prefix) ||
		    strlen(de->d_name) != strlen(prefix) + 6)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

void render_digest(const void *data, size_t len, char out[65]) {
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}
