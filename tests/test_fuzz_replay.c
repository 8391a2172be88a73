/* test_fuzz_replay.c — every input kept in tests/fuzz/ (the corpora the
 * fuzzers grew and the crashers they found) run again through its target,
 * in every build: the plain one, and the ASan+UBSan one where a crasher
 * that comes back is caught. A target aborts when one of its invariants
 * breaks, which Criterion reports as a crash of that test. To see which
 * input: build with `configure --enable-fuzz` and run the target on the
 * directory (docs/testing.md). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "harness.h"
#include "macro.h"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

static int read_all(const char *path, uint8_t **out, size_t *len) {
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	/* One spare byte so an empty file is a valid buffer too. */
	uint8_t *buf = malloc((size_t) st.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t) st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*len = (size_t) n;
	return 0;
}

/* Runs fn over every file in tests/fuzz/<kind>/<name>; returns how many. */
static size_t replay_dir(fuzz_fn fn, const char *kind, const char *name) {
	_cleanup_free_ char *dir = NULL;
	size_t n = 0;

	cr_assert(asprintf(&dir, "%s/tests/fuzz/%s/%s", hx_srcdir(), kind, name) > 0);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		_cleanup_free_ char *path = NULL;
		uint8_t *data = NULL;
		size_t len = 0;

		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
			continue;
		cr_assert(asprintf(&path, "%s/%s", dir, e->d_name) > 0);
		cr_assert_eq(read_all(path, &data, &len), 0, "cannot read %s", path);
		fn(data, len);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

static void replay(fuzz_fn fn, const char *name) {
	size_t corpus = replay_dir(fn, "corpus", name);
	size_t crashers = replay_dir(fn, "crashers", name);

	/* A target whose corpus went missing would pass on nothing. */
	cr_assert_gt(corpus, 10, "tests/fuzz/corpus/%s holds %zu inputs", name, corpus);
	cr_log_info("%s: %zu corpus inputs and %zu crashers replayed", name, corpus, crashers);
}

Test(fuzz_replay, etcd_codec) {
	replay(fuzz_etcd_codec, "etcd_codec");
}

Test(fuzz_replay, ec2xml) {
	replay(fuzz_ec2xml, "ec2xml");
}

Test(fuzz_replay, conf) {
	replay(fuzz_conf, "conf");
}

Test(fuzz_replay, tree) {
	replay(fuzz_tree, "tree");
}
