/* test_man.c — the man pages, the bash completion and `make install`, as an
 * operator meets them:
 *
 *  - `man --warnings -l PAGE` (man-db with groff) prints no warning for any
 *    built page;
 *  - the pages stay complete: every command and option the built corralctl
 *    names in its help (the verb tables, whoever added the verb) is a term
 *    in corralctl.1, and every key the node config parser accepts
 *    (conf_key_names(), from its own tables) is a term in corrald.yaml.5;
 *  - the completion, run in bash against the built corralctl, offers every
 *    command, sub-command and option;
 *  - `make install DESTDIR=...` puts every file where the docs say, the unit
 *    naming the installed binary, and `make uninstall` removes them all
 *    (an edited example config is kept, as docs/operating.md says). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <ftw.h>
#include <sys/stat.h>

#include "conf.h"
#include "harness.h"
#include "macro.h"

#define RUN_USEC (60 * USEC_PER_SEC)

TestSuite(man, .timeout = 120);

static bool strv_has(char **v, const char *s) {
	for (; v && *v; v++)
		if (streq(*v, s))
			return true;
	return false;
}

static void strv_add(char ***v, const char *s) {
	size_t n = strv_length(*v);
	cr_assert_eq(strv_take(v, &n, strdup(s)), 0);
}

static char *const man_env[] = { "MANWIDTH=80", "LC_ALL=C.UTF-8", "MAN_KEEP_FORMATTING=", NULL };

/* The built page: in the build dir, or in the sources (a tarball's, which
 * carries the pages made by scdoc). */
static char *page_path(const char *name) {
	char *p;

	cr_assert_geq(asprintf(&p, "%s/man/%s", hx_builddir(), name), 0);
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	cr_assert_geq(asprintf(&p, "%s/man/%s", hx_srcdir(), name), 0);
	cr_assert_eq(access(p, R_OK), 0, "%s: not built", p);
	return p;
}

static char *ctl_path(void) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s/corralctl", hx_builddir()), 0);
	return p;
}

/* `man --warnings -l path`: its output; asserts it said nothing on stderr. */
static char *man_render(const char *path) {
	char *out = NULL;
	_cleanup_free_ char *err = NULL;
	char *const argv[] = { "man", "--warnings", "-l", (char *) path, NULL };

	int r = hx_run_capture(&out, &err, RUN_USEC, argv, man_env);
	cr_assert_eq(r, 0, "man -l %s: exit %d\n%s", path, r, err ? err : "");
	cr_assert_str_empty(err, "man --warnings -l %s warned:\n%s", path, err);
	return out;
}

/* A page's roff with scdoc's escapes taken out and every run of white
 * space one space: terms read as "\fBscale policy get\fR". For the key
 * page also "files.<name>.path" and "topology[].service" become the
 * parser's "files.path" and "topology.service". */
static char *page_terms(const char *path, bool keys) {
	_cleanup_free_ char *roff = hx_read_file(path, NULL);
	cr_assert_not_null(roff, "cannot read %s", path);
	char *t = calloc(1, strlen(roff) + 1), *o = t;
	cr_assert_not_null(t);

	for (const char *p = roff; *p;) {
		if (strncmp(p, "\\&", 2) == 0)
			p += 2;
		else if (strncmp(p, "\\-", 2) == 0) {
			*o++ = '-';
			p += 2;
		} else if (keys && strncmp(p, "<name>.", 7) == 0)
			p += 7;
		else if (keys && strncmp(p, "[]", 2) == 0)
			p += 2;
		else if (isspace((unsigned char) *p)) {
			if (o > t && o[-1] != ' ')
				*o++ = ' ';
			p++;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	return t;
}

static bool has_term(const char *text, const char *term) {
	_cleanup_free_ char *needle = NULL;
	cr_assert_geq(asprintf(&needle, "\\fB%s\\fR", term), 0);
	return strstr(text, needle) != NULL;
}

/* ---- what corralctl's help names ---- */

/* The commands ("scale policy get") of `corralctl --help`, as the
 * completion reads them: the lower-case words that start an entry of the
 * Commands list. Options: every -x and --xyz that starts an entry of an
 * options list, in the help of `corralctl WORDS --help`. */
static void help_parse(const char *help, char ***verbs, char ***options) {
	bool cmds = false;

	for (const char *l = help; *l;) {
		size_t len = strcspn(l, "\n");
		_cleanup_free_ char *line = bytes_dup(l, len);
		cr_assert_not_null(line);
		l += len + (l[len] == '\n');

		if (streq(line, "Commands:")) {
			cmds = true;
			continue;
		}
		if (!*line)
			cmds = false;
		if (cmds && verbs && line[0] == ' ' && line[1] == ' ' && islower((unsigned char) line[2])) {
			char path[256] = "";
			for (char *w = line + 2; *w;) {
				size_t n = strcspn(w, " ");
				bool word = true;
				for (size_t i = 0; i < n; i++)
					word = word && (islower((unsigned char) w[i]) || isdigit((unsigned char) w[i]) ||
							(i > 0 && w[i] == '-'));
				if (!word || n == 0)
					break;
				snprintf(path + strlen(path), sizeof path - strlen(path), "%s%.*s", *path ? " " : "",
					 (int) n, w);
				if (strncmp(w + n, "  ", 2) == 0)
					break;      /* the gap before the description */
				w += n + strspn(w + n, " ");
			}
			strv_add(verbs, path);
		}
		const char *o = line + strspn(line, " ");
		if (options && o - line >= 2 && o - line <= 6 && *o == '-')
			while (*o == '-') {
				size_t n = strcspn(o, " ,");
				_cleanup_free_ char *opt = bytes_dup(o, n);
				cr_assert_not_null(opt);
				if (!strv_has(*options, opt))
					strv_add(options, opt);
				o += n + strspn(o + n, " ,");
			}
	}
}

static char *ctl_help(char **words) {
	_cleanup_free_ char *ctl = ctl_path(), *err = NULL;
	char *argv[16] = { ctl }, *out = NULL;
	size_t n = 1;

	for (size_t i = 0; words && words[i] && n < 14; i++)
		argv[n++] = words[i];
	argv[n++] = "--help";
	argv[n] = NULL;
	int r = hx_run_capture(&out, &err, RUN_USEC, argv, NULL);
	cr_assert_eq(r, 0, "corralctl ... --help: exit %d\n%s", r, err);
	return out;
}

/* Every command and every option of any command's help. */
static void ctl_names(char ***verbs, char ***options) {
	_cleanup_free_ char *help = ctl_help(NULL);

	help_parse(help, verbs, options);
	cr_assert_gt(strv_length(*verbs), 30, "only %zu commands in corralctl --help", strv_length(*verbs));
	for (char **v = *verbs; *v; v++) {
		_cleanup_strv_free_ char **words = NULL;
		for (char *w = *v; *w;) {
			size_t n = strcspn(w, " ");
			_cleanup_free_ char *word = bytes_dup(w, n);
			strv_add(&words, word);
			w += n + (w[n] == ' ');
		}
		_cleanup_free_ char *one = ctl_help(words);
		help_parse(one, NULL, options);
	}
}

/* The names of `names` that are not a term of text, one per line ("" if
 * none). */
static char *missing_terms(const char *text, char **names) {
	char *miss = strdup("");
	cr_assert_not_null(miss);
	for (char **n = names; n && *n; n++)
		if (!has_term(text, *n)) {
			char *more;
			cr_assert_geq(asprintf(&more, "%s  %s\n", miss, *n), 0);
			free(miss);
			miss = more;
		}
	return miss;
}

/* ---- the pages ---- */

Test(man, no_warnings) {
	static const char *const pages[][2] = {
		{ "corrald.8", "corrald - the corral node daemon" },
		{ "corralctl.1", "corralctl - the corral operator's command line" },
		{ "corrald.yaml.5", "corrald.yaml - the corral node daemon's configuration" },
	};

	for (size_t i = 0; i < ELEMENTSOF(pages); i++) {
		_cleanup_free_ char *p = page_path(pages[i][0]), *out = man_render(p);
		cr_assert(strstr(out, "NAME"), "%s: no NAME section:\n%s", p, out);
		cr_assert(strstr(out, pages[i][1]), "%s: no \"%s\":\n%s", p, pages[i][1], out);
		cr_assert(strstr(out, "SEE ALSO"), "%s: no SEE ALSO", p);
	}
	/* and the check can fail: groff's warning about an unknown request */
	_cleanup_free_ char *dir = hx_mkdtemp("man"), *bad = NULL, *out = NULL, *err = NULL;
	cr_assert_geq(asprintf(&bad, "%s/bad.1", dir), 0);
	cr_assert_eq(hx_write_file(bad, ".TH BAD 1\n.SH NAME\nbad \\- a page\n.XYZZY\n"), 0);
	char *const argv[] = { "man", "--warnings", "-l", bad, NULL };
	hx_run_capture(&out, &err, RUN_USEC, argv, man_env);
	cr_assert(err && strstr(err, "XYZZY"), "a page with an unknown macro passed: %s", err ? err : "");
	hx_rm_tmp(dir);
}

Test(man, every_command_and_option_in_corralctl_1) {
	_cleanup_strv_free_ char **verbs = NULL, **options = NULL;
	_cleanup_free_ char *p = page_path("corralctl.1"), *text = page_terms(p, false);

	ctl_names(&verbs, &options);
	cr_assert(strv_has(verbs, "scale policy get") && strv_has(verbs, "nodes"));
	cr_assert(strv_has(options, "--endpoints") && strv_has(options, "--trace") &&
		  strv_has(options, "-o"), "options read from the help: too few");

	_cleanup_free_ char *mv = missing_terms(text, verbs), *mo = missing_terms(text, options);
	cr_assert_str_empty(mv, "commands corralctl knows that corralctl.1 does not name:\n%s", mv);
	cr_assert_str_empty(mo, "options corralctl knows that corralctl.1 does not name:\n%s", mo);

	/* and the check can fail: a page without "scale policy get" */
	char *at = strstr(text, "\\fBscale policy get\\fR");
	cr_assert_not_null(at);
	memcpy(at + 3, "XXXXX", 5);
	_cleanup_free_ char *m = missing_terms(text, verbs);
	cr_assert_str_eq(m, "  scale policy get\n");
}

Test(man, every_key_in_corrald_yaml_5) {
	_cleanup_strv_free_ char **keys = NULL;
	_cleanup_free_ char *p = page_path("corrald.yaml.5"), *text = page_terms(p, true);

	cr_assert_eq(conf_key_names(&keys), 0);
	cr_assert(strv_has(keys, "etcd.request_timeout") && strv_has(keys, "files.path") &&
		  strv_has(keys, "topology.value") && strv_has(keys, "upgrade.steps.run") &&
		  strv_has(keys, "ec2.instance_id"), "conf_key_names() lacks a key");
	cr_assert_not(strv_has(keys, "upgrade.prepare.run"), "a step's keys listed twice");
	cr_assert_gt(strv_length(keys), 60, "only %zu keys", strv_length(keys));

	_cleanup_free_ char *m = missing_terms(text, keys);
	cr_assert_str_empty(m, "keys corrald.yaml accepts that corrald.yaml.5 does not name:\n%s", m);
}

/* ---- the completion ---- */

/* What the completion offers for the words (the last one being completed),
 * run in bash against the built corralctl. */
static char *complete(const char *words) {
	_cleanup_free_ char *script = NULL, *path = NULL, *err = NULL;
	char *out = NULL;

	cr_assert_geq(asprintf(&path, "PATH=%s:%s", hx_builddir(), getenv("PATH")), 0);
	cr_assert_geq(asprintf(&script,
			       "source '%s/completions/corralctl' || exit 3\n"
			       "COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
			       "_corralctl; if ((${#COMPREPLY[@]})); then printf '%%s\\n' \"${COMPREPLY[@]}\" | sort; fi\n",
			       hx_srcdir(), words), 0);
	char *const argv[] = { "bash", "--norc", "--noprofile", "-c", script, NULL };
	char *const env[] = { path, NULL };
	int r = hx_run_capture(&out, &err, RUN_USEC, argv, env);
	cr_assert_eq(r, 0, "bash: exit %d: %s", r, err);
	cr_assert_str_empty(err, "bash said: %s", err);
	return out;
}

Test(man, completion_follows_the_verb_tables) {
	_cleanup_strv_free_ char **verbs = NULL, **options = NULL;
	_cleanup_free_ char *help = ctl_help(NULL);
	help_parse(help, &verbs, &options);

	/* every command's first word, and every word after it */
	_cleanup_free_ char *top = complete("corralctl ''");
	for (char **v = verbs; *v; v++) {
		_cleanup_free_ char *first = bytes_dup(*v, strcspn(*v, " ")), *line = NULL;
		cr_assert_geq(asprintf(&line, "\n%s\n", first), 0);
		_cleanup_free_ char *framed = NULL;
		cr_assert_geq(asprintf(&framed, "\n%s", top), 0);
		cr_assert(strstr(framed, line), "corralctl <TAB> lacks '%s':\n%s", first, top);
		const char *sp = strrchr(*v, ' ');
		if (sp) {
			_cleanup_free_ char *words = NULL, *got = NULL, *want = NULL;
			cr_assert_geq(asprintf(&words, "corralctl %.*s ''", (int) (sp - *v), *v), 0);
			got = complete(words);
			cr_assert_geq(asprintf(&want, "\n%s\n", sp + 1), 0);
			_cleanup_free_ char *g = NULL;
			cr_assert_geq(asprintf(&g, "\n%s", got), 0);
			cr_assert(strstr(g, want), "%s <TAB> lacks '%s':\n%s", words, sp + 1, got);
		}
	}

	_cleanup_free_ char *sc = complete("corralctl -c x.yaml sc");
	cr_assert_str_eq(sc, "scale\n");
	_cleanup_free_ char *pol = complete("corralctl scale policy ''");
	cr_assert_str_eq(pol, "get\nset\n");
	_cleanup_free_ char *none = complete("corralctl nodes ''");
	cr_assert_str_empty(none, "nothing follows `nodes`, not its description's words: %s", none);
	_cleanup_free_ char *fmt = complete("corralctl --format j");
	cr_assert_str_eq(fmt, "json\n");
	_cleanup_free_ char *tr = complete("corralctl scale simulate --tr");
	cr_assert_str_eq(tr, "--trace\n");   /* an option only that command's help names */
	_cleanup_free_ char *all = complete("corralctl --");
	for (char **o = options; *o; o++)
		if (strncmp(*o, "--", 2) == 0) {
			_cleanup_free_ char *line = NULL, *framed = NULL;
			cr_assert_geq(asprintf(&line, "\n%s\n", *o), 0);
			cr_assert_geq(asprintf(&framed, "\n%s", all), 0);
			cr_assert(strstr(framed, line), "corralctl --<TAB> lacks %s", *o);
		}
}

/* ---- make install, make uninstall ---- */

static char *install_root;
static char **installed;        /* regular files under install_root, relative */

static int collect_file(const char *path, const struct stat *st, int type, struct FTW *f) {
	if (type == FTW_F)
		strv_add(&installed, path + strlen(install_root));
	return 0;
}

static void scan(void) {
	strv_free(installed);
	installed = NULL;
	cr_assert_eq(nftw(install_root, collect_file, 16, FTW_PHYS), 0);
}

/* `make -s TARGET DESTDIR=install_root` in the build dir: its output. */
static char *make(const char *target) {
	_cleanup_free_ char *dir = NULL, *dest = NULL, *err = NULL;
	char *out = NULL;

	cr_assert_geq(asprintf(&dir, "%s", hx_builddir()), 0);
	cr_assert_geq(asprintf(&dest, "DESTDIR=%s", install_root), 0);
	char *const argv[] = { (char *) hx_tool("CORRAL_MAKE", "make"), "-s", "-C", dir, (char *) target, dest, NULL };
	/* not the jobserver of a `make check` this runs under */
	char *const env[] = { "MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=", NULL };
	int r = hx_run_capture(&out, &err, RUN_USEC, argv, env);
	cr_assert_eq(r, 0, "make %s: exit %d\n%s\n%s", target, r, out, err);
	return out;
}

/* The one installed file whose path ends with suffix (relative path). */
static const char *installed_at(const char *suffix) {
	const char *found = NULL;

	for (char **f = installed; f && *f; f++) {
		size_t n = strlen(*f), k = strlen(suffix);
		if (n >= k && streq(*f + n - k, suffix)) {
			cr_assert_null(found, "two installed files end with %s: %s and %s", suffix, found, *f);
			found = *f;
		}
	}
	cr_assert_not_null(found, "nothing installed ends with %s", suffix);
	return found;
}

static char *root_path(const char *rel) {
	char *p;
	cr_assert_geq(asprintf(&p, "%s%s", install_root, rel), 0);
	return p;
}

static void install_up(void) {
	install_root = hx_mkdtemp("install");
	cr_assert_not_null(install_root);
}

static void install_down(void) {
	strv_free(installed);
	installed = NULL;
	hx_rm_tmp(install_root);
	free(install_root);
}

Test(man, install_and_uninstall, .init = install_up, .fini = install_down) {
	static const char *const expected[] = {
		"/bin/corrald", "/bin/corralctl", "/systemd/system/corrald.service",
		"/man/man1/corralctl.1", "/man/man8/corrald.8", "/man/man5/corrald.yaml.5",
		"/bash-completion/completions/corralctl", "/etc/corral/corrald.yaml",
		"/doc/corral/README.md", "/doc/corral/docs/operating.md", "/doc/corral/docs/config.md",
		"/doc/corral/examples/corrald.yaml", "/doc/corral/examples/cloud-init/corral-node.yaml",
		"/doc/corral/examples/cloud-init/corral-worker.yaml", "/doc/corral/examples/cloud-init/README.md",
	};

	free(make("install"));
	scan();
	for (size_t i = 0; i < ELEMENTSOF(expected); i++)
		installed_at(expected[i]);

	/* the unit runs the installed corrald on the installed config */
	/* copies: scan() makes a new list */
	_cleanup_free_ char *bin = strdup(installed_at("/bin/corrald"));
	_cleanup_free_ char *cfg = strdup(installed_at("/etc/corral/corrald.yaml"));
	_cleanup_free_ char *unit_p = root_path(installed_at("/systemd/system/corrald.service"));
	_cleanup_free_ char *unit = hx_read_file(unit_p, NULL), *exec = NULL, *doc = NULL;
	cr_assert_not_null(unit);
	cr_assert_geq(asprintf(&exec, "\nExecStart=%s --config %s\n", bin, cfg), 0);
	cr_assert(strstr(unit, exec), "the unit's ExecStart is not%s%s", exec, unit);
	cr_assert_geq(asprintf(&doc, " file://%s\n", installed_at("/doc/corral/docs/operating.md")), 0);
	cr_assert(strstr(unit, doc), "the unit's Documentation= lacks%s", doc);
	cr_assert(strstr(unit, "\nProtectSystem=yes\n") && strstr(unit, "\nSystemCallFilter=@system-service\n"),
		  "the installed unit lost its hardening");

	/* the binary runs, the pages read, the example config is valid */
	_cleanup_free_ char *bin_p = root_path(bin), *out = NULL;
	char *const version[] = { bin_p, "--version", NULL };
	cr_assert_eq(hx_run(&out, RUN_USEC, version, NULL), 0);
	cr_assert(strncmp(out, "corrald ", 8) == 0, "corrald --version: %s", out);
	for (const char *const *m = (const char *const[]) { "/man1/corralctl.1", "/man8/corrald.8",
							    "/man5/corrald.yaml.5", NULL }; *m; m++) {
		_cleanup_free_ char *p = root_path(installed_at(*m)), *text = man_render(p);
		cr_assert(strstr(text, "SYNOPSIS"), "%s: %s", p, text);
	}
	_cleanup_free_ char *cfg_p = root_path(cfg);
	_cleanup_(conf_freep) conf *c = NULL;
	conf_error e = {};
	char ebuf[512];
	cr_assert_eq(conf_load_file(cfg_p, &c, &e), 0, "%s", conf_error_format(&e, ebuf, sizeof ebuf));
	struct stat st;
	cr_assert_eq(stat(cfg_p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640, "the config is %o", st.st_mode & 07777);

	/* uninstall leaves nothing */
	free(make("uninstall"));
	scan();
	cr_assert_null(installed, "left after make uninstall: %s ...", installed ? installed[0] : "");

	/* an operator's config is never replaced nor removed */
	_cleanup_free_ char *dir = bytes_dup(cfg_p, strrchr(cfg_p, '/') - cfg_p);
	char *const mk[] = { "mkdir", "-p", dir, NULL };
	cr_assert_eq(hx_run(NULL, RUN_USEC, mk, NULL), 0);
	cr_assert_eq(hx_write_file(cfg_p, "cluster: mine\n"), 0);
	free(make("install"));
	_cleanup_free_ char *kept = hx_read_file(cfg_p, NULL);
	cr_assert_str_eq(kept, "cluster: mine\n", "make install replaced the operator's config");
	_cleanup_free_ char *said = make("uninstall");
	cr_assert(strstr(said, "differs from the example: kept"), "uninstall said: %s", said);
	scan();
	cr_assert_eq(strv_length(installed), 1, "left after make uninstall: %zu files", strv_length(installed));
	cr_assert_str_eq(installed[0], cfg);
}
