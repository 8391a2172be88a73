/* files.c — what this node renders (docs/operating.md): the `files:`
 * section, one render file spec per file the cluster config names (path,
 * format, command, check, mode, owner, group, the units to restart or
 * reload), and the settings of rendering itself (units_bus, debounce,
 * max_wait, command and unit timeouts, write_retry, history,
 * collect_interval). */
#include <grp.h>
#include <pwd.h>
#include <stddef.h>

#include "conf-internal.h"

#define CONF_DEFAULT_DEBOUNCE_USEC        (1 * USEC_PER_SEC)
#define CONF_DEFAULT_MAX_WAIT_USEC        (10 * USEC_PER_SEC)
#define CONF_DEFAULT_COMMAND_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CONF_DEFAULT_UNIT_TIMEOUT_USEC    (90 * USEC_PER_SEC)
#define CONF_DEFAULT_WRITE_RETRY_USEC     (1 * USEC_PER_SEC)
#define CONF_DEFAULT_WRITE_RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define CONF_MIN_WRITE_RETRY_USEC         (10 * USEC_PER_MSEC)
#define CONF_DEFAULT_HISTORY              20u
#define CONF_MAX_HISTORY                  100000u
/* The leader collects old snapshots at most this often: a listing of
 * configs/ and status/ per commit would cost O(N) per commit. */
#define CONF_DEFAULT_COLLECT_INTERVAL_USEC (30 * USEC_PER_SEC)

/* Absolute, and stored in one spelling: repeated and trailing '/' are
 * collapsed ("/tmp//x/" is "/tmp/x", as TMPDIR=/tmp/ produces), while "."
 * and ".." components are refused rather than resolved. Then equal strings
 * are the same file, which is what the duplicate check compares (symlinks
 * aside). */
static int parse_abs_path(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			  void *field) {
	_cleanup_free_ char *s = NULL;
	char **p = field;
	size_t j = 0;

	int r = conf_scalar_dup(w, name, "a path", value, &s);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return conf_fail(w, value, "%s: \"%.128s\" is not an absolute path", name, s);
	for (const char *c = s;;) {
		c += strspn(c, "/");
		size_t n = strcspn(c, "/");
		if (n == 0)
			break;
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return conf_fail(w, value, "%s: \"%.128s\" must not contain \".\" or \"..\" components", name, s);
		/* Writing behind the reading position: j never passes c. */
		s[j++] = '/';
		memmove(s + j, c, n);
		j += n;
		c += n;
	}
	if (j == 0)
		return conf_fail(w, value, "%s: \"%.128s\" names no file", name, s);
	s[j] = '\0';
	free(*p);
	*p = TAKE_PTR(s);
	return 0;
}

static int parse_format(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			void *field) {
	_cleanup_free_ char *s = NULL;
	conf_format *p = field;

	int r = conf_scalar_dup(w, name, "a format", value, &s);
	if (r < 0)
		return r;
	if (streq(s, "json"))
		*p = CONF_FORMAT_JSON;
	else if (streq(s, "toml"))
		*p = CONF_FORMAT_TOML;
	else if (streq(s, "command"))
		*p = CONF_FORMAT_COMMAND;
	else
		return conf_fail(w, value, "%s: unknown format \"%.32s\" (expected json, toml or command)", name, s);
	return 0;
}

/* Always octal, as chmod reads it: "0640", 0640 and 640 are all rw-r-----.
 * (YAML 1.2 would read a plain 0640 as decimal 640; nobody means that.)
 * "0o640", YAML 1.2's own octal spelling, is accepted too. */
static int parse_mode(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		      void *field) {
	_cleanup_free_ char *s = NULL;
	mode_t *p = field;
	char *end;

	int r = conf_scalar_dup(w, name, "an octal mode", value, &s);
	if (r < 0)
		return r;
	const char *digits = strncmp(s, "0o", 2) == 0 ? s + 2 : s;
	if (!*digits || strspn(digits, "01234567") != strlen(digits))
		return conf_fail(w, value, "%s: \"%.32s\" is not an octal mode like \"0640\"", name, s);
	errno = 0;
	unsigned long m = strtoul(digits, &end, 8);
	if (errno == ERANGE || m > 07777)
		return conf_fail(w, value, "%s: %.32s is more than 07777", name, s);
	*p = (mode_t) m;
	return 0;
}

/* A user or group: a name looked up now (so a typo fails at load, not at the
 * first render) or a number taken as it is. */
static int conf_parse_id(conf_walk *w, const char *name, yaml_node_t *value, bool group, uint32_t *ret) {
	_cleanup_free_ char *s = NULL;
	char buf[16384];

	int r = conf_scalar_dup(w, name, group ? "a group name or number" : "a user name or number", value, &s);
	if (r < 0)
		return r;

	if (strspn(s, "0123456789") == strlen(s)) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		/* (uid_t) -1 means "not set" to chown(), so it is no id. */
		if (errno == ERANGE || v >= UINT32_MAX)
			return conf_fail(w, value, "%s: %.32s is out of range", name, s);
		*ret = (uint32_t) v;
		return 0;
	}

	if (group) {
		struct group gr, *res = NULL;
		r = getgrnam_r(s, &gr, buf, sizeof buf, &res);
		if (r == 0 && res) {
			*ret = res->gr_gid;
			return 0;
		}
	} else {
		struct passwd pw, *res = NULL;
		r = getpwnam_r(s, &pw, buf, sizeof buf, &res);
		if (r == 0 && res) {
			*ret = res->pw_uid;
			return 0;
		}
	}
	if (r == ENOMEM)
		return -ENOMEM;
	if (r != 0)
		return conf_fail(w, value, "%s: cannot look up \"%.64s\": %s", name, s, strerror(r));
	return conf_fail(w, value, "%s: unknown %s \"%.64s\"", name, group ? "group" : "user", s);
}

static int parse_owner(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	uint32_t id;
	int r = conf_parse_id(w, name, value, false, &id);
	if (r < 0)
		return r;
	*(uid_t *) field = (uid_t) id;
	return 0;
}

static int parse_group(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	uint32_t id;
	int r = conf_parse_id(w, name, value, true, &id);
	if (r < 0)
		return r;
	*(gid_t *) field = (gid_t) id;
	return 0;
}

/* Unit names as systemd takes them over D-Bus: a non-empty name without '/'
 * and a type suffix. Device and scope units cannot be restarted, so they
 * are not offered. */
int conf_parse_units(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	static const char *const suffixes[] = { ".service", ".socket", ".target", ".timer", ".path",
						".mount", ".automount", ".swap", ".slice" };
	_cleanup_strv_free_ char **v = NULL;
	char ***p = field;

	int r = conf_strv(w, name, value, &v);
	if (r < 0)
		return r;
	for (size_t i = 0; v[i]; i++) {
		size_t len = strlen(v[i]);
		bool ok = false;
		for (size_t s = 0; s < ELEMENTSOF(suffixes) && !ok; s++) {
			size_t sl = strlen(suffixes[s]);
			ok = len > sl && streq(v[i] + len - sl, suffixes[s]);
		}
		if (!ok || strchr(v[i], '/'))
			return conf_fail(w, yaml_document_get_node(w->doc, value->data.sequence.items.start[i]),
					 "%s: \"%.64s\" is not a unit name (like cms-worker.service)", name, v[i]);
	}
	strv_free(*p);
	*p = TAKE_PTR(v);
	return 0;
}

static const conf_key conf_file_keys[] = {
	{ "path",    parse_abs_path, offsetof(conf_file, path) },
	{ "format",  parse_format,   offsetof(conf_file, format) },
	{ "command", conf_parse_string,   offsetof(conf_file, command) },
	{ "check",   conf_parse_string,   offsetof(conf_file, check) },
	{ "mode",    parse_mode,     offsetof(conf_file, mode) },
	{ "owner",   parse_owner,    offsetof(conf_file, uid) },
	{ "group",   parse_group,    offsetof(conf_file, gid) },
	{ "restart", conf_parse_units, offsetof(conf_file, restart) },
	{ "reload",  conf_parse_units, offsetof(conf_file, reload) },
	{}
};

static void conf_file_done(conf_file *f) {
	free(f->name);
	free(f->path);
	free(f->command);
	free(f->check);
	strv_free(f->restart);
	strv_free(f->reload);
}

static int conf_file_one(conf_walk *w, conf *c, yaml_node_t *key, yaml_node_t *value) {
	_cleanup_(conf_file_done) conf_file f = { .mode = 0644, .uid = (uid_t) -1, .gid = (gid_t) -1 };
	yaml_node_t *v = NULL;
	char quoted[80], section[96];

	if (key->type != YAML_SCALAR_NODE)
		return conf_fail(w, key, "files: file names must be strings");
	int r = conf_scalar_dup(w, "files", "a file name", key, &f.name);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_files; i++)
		if (streq(c->files[i].name, f.name))
			return conf_fail(w, key, "duplicate key \"files.%s\"", conf_quote(key, quoted, sizeof quoted));

	snprintf(section, sizeof section, "files.%s", conf_quote(key, quoted, sizeof quoted));
	if (conf_node_is_null(value))
		return conf_fail(w, key, "%s: missing value", section);
	r = conf_walk_mapping(w, (const conf_key *const[]) { conf_file_keys, NULL }, section, value, &f);
	if (r < 0)
		return r;

	if (!f.path)
		return conf_fail(w, value, "%s: path is required", section);
	if (f.format == CONF_FORMAT_COMMAND && !f.command)
		return conf_fail(w, conf_mapping_key(w, value, "format", NULL), "%s: format command requires command",
				 section);
	if (f.format != CONF_FORMAT_COMMAND && f.command)
		return conf_fail(w, conf_mapping_key(w, value, "command", NULL),
				 "%s: command is only for format: command", section);
	for (size_t i = 0; i < c->n_files; i++)
		if (streq(c->files[i].path, f.path)) {
			conf_mapping_key(w, value, "path", &v);
			return conf_fail(w, v, "%s: \"%.128s\" is also the path of files.%.64s", section, f.path,
					 c->files[i].name);
		}

	/* Empty lists rather than NULL: callers iterate without checking. */
	if (!f.restart && !(f.restart = calloc(1, sizeof(char *))))
		return -ENOMEM;
	if (!f.reload && !(f.reload = calloc(1, sizeof(char *))))
		return -ENOMEM;

	conf_file *grown = reallocarray(c->files, c->n_files + 1, sizeof *c->files);
	if (!grown)
		return -ENOMEM;
	c->files = grown;
	c->files[c->n_files++] = f;
	f = (conf_file) {};
	return 0;
}

static int parse_files(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
		       void *field) {
	conf *c = field;

	if (value->type != YAML_MAPPING_NODE)
		return conf_fail(w, value, "%s: expected a mapping of file names", name);
	for (yaml_node_pair_t *p = value->data.mapping.pairs.start; p < value->data.mapping.pairs.top; p++) {
		yaml_node_t *fk = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *fv = yaml_document_get_node(w->doc, p->value);
		if (!fk || !fv)
			return conf_fail(w, value, "%s: invalid mapping", name);
		int r = conf_file_one(w, c, fk, fv);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_units_bus(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			   void *field) {
	_cleanup_free_ char *s = NULL;
	bool *p = field;

	int r = conf_scalar_dup(w, name, "system or user", value, &s);
	if (r < 0)
		return r;
	if (streq(s, "system"))
		*p = false;
	else if (streq(s, "user"))
		*p = true;
	else
		return conf_fail(w, value, "%s: unknown bus \"%.32s\" (expected system or user)", name, s);
	return 0;
}

/* Snapshots kept besides the current one; at least one, so that there is
 * always something to roll back to. */
static int parse_history(conf_walk *w, const conf_key *k, const char *name, yaml_node_t *key, yaml_node_t *value,
			 void *field) {
	_cleanup_free_ char *s = NULL;
	unsigned *p = field;
	char *end;

	int r = conf_scalar_dup(w, name, "a number", value, &s);
	if (r < 0)
		return r;
	if (strspn(s, "0123456789") != strlen(s))
		return conf_fail(w, value, "%s: \"%.32s\" is not a whole number", name, s);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE || v < 1 || v > CONF_MAX_HISTORY)
		return conf_fail(w, value, "%s: must be between 1 and %u", name, CONF_MAX_HISTORY);
	*p = (unsigned) v;
	return 0;
}

/* Cross-key checks that still have the document, so they point at a place. */
static int conf_check_walked(conf_walk *w, yaml_node_t *root, conf *c) {
	if (c->max_wait_usec < c->debounce_usec) {
		yaml_node_t *v = NULL;
		if (!conf_mapping_key(w, root, "max_wait", &v))
			conf_mapping_key(w, root, "debounce", &v);
		return conf_fail(w, v, "max_wait must be at least debounce");
	}
	if (c->write_retry_max_usec < c->write_retry_usec) {
		yaml_node_t *v = NULL;
		if (!conf_mapping_key(w, root, "write_retry_max", &v))
			conf_mapping_key(w, root, "write_retry", &v);
		return conf_fail(w, v, "write_retry_max must be at least write_retry");
	}
	return 0;
}

static const conf_key conf_files_keys[] = {
	{ "files",           parse_files,        0, .section = conf_file_keys },
	{ "units_bus",       parse_units_bus,    offsetof(conf, units_user_bus) },
	{ "debounce",        conf_parse_duration_key, offsetof(conf, debounce_usec) },
	{ "max_wait",        conf_parse_duration_key, offsetof(conf, max_wait_usec) },
	{ "command_timeout", conf_parse_duration_key, offsetof(conf, command_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "unit_timeout",    conf_parse_duration_key, offsetof(conf, unit_timeout_usec),
	  .min_usec = CONF_MIN_TIMEOUT_USEC },
	{ "write_retry",     conf_parse_duration_key, offsetof(conf, write_retry_usec),
	  .min_usec = CONF_MIN_WRITE_RETRY_USEC },
	{ "write_retry_max", conf_parse_duration_key, offsetof(conf, write_retry_max_usec),
	  .min_usec = CONF_MIN_WRITE_RETRY_USEC },
	{ "history",         parse_history,      offsetof(conf, history) },
	{ "collect_interval", conf_parse_duration_key, offsetof(conf, collect_interval_usec) },
	{}
};

static void conf_files_init(conf *c) {
	c->debounce_usec = CONF_DEFAULT_DEBOUNCE_USEC;
	c->max_wait_usec = CONF_DEFAULT_MAX_WAIT_USEC;
	c->command_timeout_usec = CONF_DEFAULT_COMMAND_TIMEOUT_USEC;
	c->unit_timeout_usec = CONF_DEFAULT_UNIT_TIMEOUT_USEC;
	c->write_retry_usec = CONF_DEFAULT_WRITE_RETRY_USEC;
	c->write_retry_max_usec = CONF_DEFAULT_WRITE_RETRY_MAX_USEC;
	c->history = CONF_DEFAULT_HISTORY;
	c->collect_interval_usec = CONF_DEFAULT_COLLECT_INTERVAL_USEC;
}

static void conf_files_done(conf *c) {
	for (size_t i = 0; i < c->n_files; i++)
		conf_file_done(&c->files[i]);
	free(c->files);
}

const conf_part conf_part_files = {
	.keys = conf_files_keys,
	.init = conf_files_init,
	.check = conf_check_walked,
	.done = conf_files_done,
};
