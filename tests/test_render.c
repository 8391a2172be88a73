/* test_render.c — atomic file replacement on the real file system. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "render.h"

static char *dir;

static void up(void) {
	dir = hx_mkdtemp("render");
	cr_assert_not_null(dir);
}

static void down(void) {
	if (dir)
		hx_rm_tmp(dir);
	free(dir);
	dir = NULL;
}

TestSuite(render, .init = up, .fini = down, .timeout = 60);

static char *in_dir(const char *name) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static size_t entries(void) {
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."));
	closedir(d);
	return n;
}

Test(render, writes_new_file_with_mode) {
	_cleanup_free_ char *p = in_dir("cms.conf");
	render_opts o = { .mode = 0640, .uid = (uid_t) -1, .gid = (gid_t) -1 };

	cr_assert_eq(render_write(p, "hello\n", 6, &o), 1);
	_cleanup_free_ char *got = hx_read_file(p, NULL);
	cr_assert_str_eq(got, "hello\n");
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(entries(), 1, "no temp file left");
}

Test(render, same_bytes_are_not_rewritten) {
	_cleanup_free_ char *p = in_dir("f");
	struct stat a, b;

	cr_assert_eq(render_write(p, "x", 1, NULL), 1);
	cr_assert_eq(stat(p, &a), 0);
	cr_assert_eq(render_write(p, "x", 1, NULL), 0);
	cr_assert_eq(stat(p, &b), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "unchanged bytes keep the very same file");
	cr_assert_eq(render_same(p, "x", 1), 1);
	cr_assert_eq(render_same(p, "y", 1), 0);
	cr_assert_eq(render_same(p, "xx", 2), 0);
	cr_assert_eq(render_same(p, "", 0), 0);

	/* Changed bytes: a new inode took the name, in one step. */
	cr_assert_eq(render_write(p, "y", 1, NULL), 1);
	cr_assert_eq(stat(p, &b), 0);
	cr_assert_neq(a.st_ino, b.st_ino);
	_cleanup_free_ char *absent = in_dir("absent");
	cr_assert_eq(render_same(absent, "", 0), 0);
}

Test(render, empty_and_large_files) {
	_cleanup_free_ char *p = in_dir("big");
	size_t n = 8u << 20;
	char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char) (i * 7);
	cr_assert_eq(render_write(p, data, n, NULL), 1);
	cr_assert_eq(render_same(p, data, n), 1);
	data[n - 1] ^= 1;
	cr_assert_eq(render_same(p, data, n), 0, "the last byte counts");
	free(data);

	cr_assert_eq(render_write(p, "", 0, NULL), 1);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_size, 0);
}

Test(render, owner_is_set) {
	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away");
	_cleanup_free_ char *p = in_dir("owned");
	render_opts o = { .mode = 0600, .uid = 65534, .gid = 65534 };
	struct stat st;

	cr_assert_eq(render_write(p, "secret", 6, &o), 1);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_uid, 65534);
	cr_assert_eq(st.st_gid, 65534);
	cr_assert_eq(st.st_mode & 07777, 0600);
}

Test(render, staged_file_is_invisible_until_commit_and_can_be_discarded) {
	_cleanup_free_ char *p = in_dir("cms.conf");
	_cleanup_free_ char *tmp = NULL, *tmp2 = NULL;

	cr_assert_eq(render_write(p, "old", 3, NULL), 1);
	cr_assert_eq(render_stage(p, "new", 3, NULL, &tmp), 0);
	_cleanup_free_ char *still = hx_read_file(p, NULL);
	cr_assert_str_eq(still, "old");
	cr_assert_not_null(strstr(tmp, "/.cms.conf.corral-"));
	render_discard(tmp);
	cr_assert_eq(entries(), 1);

	cr_assert_eq(render_stage(p, "new", 3, NULL, &tmp2), 0);
	cr_assert_eq(render_commit(tmp2, p), 0);
	_cleanup_free_ char *now = hx_read_file(p, NULL);
	cr_assert_str_eq(now, "new");
	cr_assert_eq(entries(), 1);
}

Test(render, errors_are_values) {
	_cleanup_free_ char *nodir = in_dir("missing/dir/file"), *file = in_dir("plain"), *under = NULL;
	_cleanup_free_ char *tmp = NULL;

	cr_assert_eq(render_write(nodir, "x", 1, NULL), -ENOENT);
	cr_assert_eq(render_write(file, "x", 1, NULL), 1);
	cr_assert_geq(asprintf(&under, "%s/child", file), 0);
	cr_assert_eq(render_write(under, "x", 1, NULL), -ENOTDIR);
	/* A directory where the file should be: the rename fails, no temp stays. */
	_cleanup_free_ char *d = in_dir("adir");
	cr_assert_eq(mkdir(d, 0755), 0);
	cr_assert_eq(render_stage(d, "x", 1, NULL, &tmp), 0);
	cr_assert_lt(render_commit(tmp, d), 0);
	cr_assert_eq(entries(), 2, "the failed commit removed its temp file");
}

Test(render, crash_before_commit_leaves_old_file_and_stale_temp_is_cleaned) {
	_cleanup_free_ char *p = in_dir("cms.conf");
	cr_assert_eq(render_write(p, "old", 3, NULL), 1);

	pid_t pid = fork();
	if (pid == 0) {
		char *tmp = NULL;
		(void) render_stage(p, "half-done", 9, NULL, &tmp);
		_exit(0); /* dies between stage and commit */
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	_cleanup_free_ char *got = hx_read_file(p, NULL);
	cr_assert_str_eq(got, "old");
	cr_assert_eq(entries(), 2, "the crash left its temp file");

	_cleanup_free_ char *other = in_dir(".cms.conf.corral-notours"), *keep = in_dir(".other.corral-ABCDEF");
	cr_assert_eq(hx_write_file(other, "x"), 0);
	cr_assert_eq(hx_write_file(keep, "x"), 0);
	cr_assert_eq(render_cleanup_stale(p), 1, "only this file's temp files go");
	cr_assert_eq(entries(), 3);
}

Test(render, readers_never_see_a_partial_file) {
	/* A reader loops while the file flips between two 1 MiB contents;
	 * every read must be all 'a' or all 'b'. */
	_cleanup_free_ char *p = in_dir("flip");
	size_t n = 1u << 20;
	char *a = malloc(n), *b = malloc(n);
	memset(a, 'a', n);
	memset(b, 'b', n);
	cr_assert_eq(render_write(p, a, n, NULL), 1);

	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	pid_t reader = fork();
	if (reader == 0) {
		char *buf = malloc(n + 1);
		int bad = 0, reads = 0;
		char stop;
		close(pipefd[1]);
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
		while (read(pipefd[0], &stop, 1) < 0) {
			int fd = open(p, O_RDONLY);
			if (fd < 0) {
				bad++;
				continue;
			}
			size_t got = 0;
			ssize_t k;
			while ((k = read(fd, buf + got, n + 1 - got)) > 0)
				got += (size_t) k;
			close(fd);
			reads++;
			if (got != n || (memcmp(buf, a, n) != 0 && memcmp(buf, b, n) != 0))
				bad++;
		}
		_exit(bad > 0 ? 1 : reads > 0 ? 0 : 2);
	}
	close(pipefd[0]);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(render_write(p, i % 2 ? a : b, n, NULL), 1);
	cr_assert_eq(write(pipefd[1], "x", 1), 1);
	close(pipefd[1]);
	int status;
	cr_assert_eq(waitpid(reader, &status, 0), reader);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader saw a partial file (status %d)", status);
	free(a);
	free(b);
}

Test(render, digest_is_sha256) {
	char d[65];
	render_digest("", 0, d);
	cr_assert_str_eq(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	render_digest("abc", 3, d);
	cr_assert_str_eq(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
