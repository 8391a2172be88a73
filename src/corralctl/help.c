/* help.c — corralctl's usage texts, made from the verb tables: the whole
 * CLI (`corralctl --help`), a group's (`corralctl scale --help`) and one
 * command's (`corralctl config rollback --help`, `corralctl help config
 * rollback`). Printed on stdout; nothing else happens. */
#include <stdlib.h>

#include "ctl.h"

#define INDENT 27
#define WIDTH 96

static const char global_options[] =
	"  -e, --endpoints URL,...  etcd endpoints ($CORRAL_ENDPOINTS, default http://127.0.0.1:2379)\n"
	"  -p, --prefix PREFIX      cluster key prefix ($CORRAL_PREFIX)\n"
	"      --cluster NAME       cluster name: prefix /corral/NAME ($CORRAL_CLUSTER); one key\n"
	"                           segment: not empty, no '/'\n"
	"  -c, --config FILE        a corrald config, read whole: endpoints, prefix, credentials,\n"
	"                           time-outs, ec2 settings, this node's id (load set)\n"
	"  -o, --format FORMAT      table (default) or json; csv for hosts and scale simulate\n"
	"  -n, --dry-run            show what would be written, write nothing\n"
	"  -f, --force              scale: ignore min/max; cluster stop: go on after time-outs;\n"
	"                           maintenance on, hold, cluster stop: replace a marker in place\n"
	"  -v, --verbose            say which keys are written\n"
	"  -q, --quiet              no status summary before and after changes\n"
	"  -d, --debug              debug logging: each etcd request (path, key, result, time)\n"
	"      --ca-file FILE       CA bundle for https endpoints\n"
	"      --cert-file FILE     client certificate\n"
	"      --key-file FILE      client key\n"
	"      --user NAME          etcd user; password from --password-file or $CORRAL_ETCD_PASSWORD\n"
	"      --password-file FILE\n"
	"      --timeout DURATION   per request, over every endpoint (default 10s)\n"
	"      --region REGION      ec2: AWS region (--config's, $AWS_REGION, $AWS_DEFAULT_REGION)\n"
	"      --ec2-endpoint URL   ec2: EC2 endpoint ($CORRAL_EC2_ENDPOINT, default\n"
	"                           https://ec2.REGION.amazonaws.com/)\n"
	"  -h, --help               show this help (after a command: that command's)\n"
	"      --version            show the version\n";

static const char exit_codes[] = "Exit codes: 0 ok, 1 the operation failed (e.g. etcd unreachable), 2 usage or input error.\n";

static void verb_path(const ctl_verb *v, char *buf, size_t size) {
	snprintf(buf, size, "%s%s%s", v->group ? v->group : "", v->group ? " " : "", v->name);
}

/* text's words from column col on, wrapped before column WIDTH onto lines
 * indented by indent ('\n' in text is a space: lines are made here). */
static void print_wrapped(const char *text, int indent, int col) {
	bool first = true;

	for (const char *p = text + strspn(text, " \n"); *p; p += strspn(p, " \n"), first = false) {
		int n = (int) strcspn(p, " \n");
		if (!first && col + 1 + n > WIDTH)
			col = printf("\n%*s", indent, "") - 1;
		else if (!first)
			col += printf(" ");
		col += printf("%.*s", n, p);
		p += n;
	}
	putchar('\n');
}

/* "  SYNOPSIS   description", the description from column INDENT. */
static void print_entry(const char *synopsis, const char *help) {
	int col = printf("  %s", synopsis);

	if (col + 2 > INDENT) {
		putchar('\n');
		col = 0;
	}
	printf("%*s", INDENT - col, "");
	print_wrapped(help, INDENT, INDENT);
}

/* "  -w, --workers N", "      --wait S": long-only ones aligned, as in the
 * global list. */
static void print_option(const ctl_option_doc *d) {
	char synopsis[64];

	snprintf(synopsis, sizeof synopsis, "%s%s", d->spelling[1] == '-' ? "    " : "", d->spelling);
	print_entry(synopsis, d->help);
}

/* The verbs under group ("" for all), without the group's words. */
static void print_verbs(const ctl_verb *const *tables, const char *group) {
	size_t skip = *group ? strlen(group) + 1 : 0;

	for (size_t t = 0; tables[t]; t++)
		for (const ctl_verb *v = tables[t]; v->name; v++) {
			char path[128], synopsis[256];
			verb_path(v, path, sizeof path);
			if (skip && (strncmp(path, group, skip - 1) != 0 || path[skip - 1] != ' '))
				continue;
			snprintf(synopsis, sizeof synopsis, "%s%s%s", path + skip, v->args && *v->args ? " " : "",
				 v->args ? v->args : "");
			print_entry(synopsis, v->help);
		}
}

static int help_all(const ctl_verb *const *tables) {
	printf("Usage: corralctl [OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
	       "\n"
	       "The corral operator's CLI. Options may come before or after the command.\n"
	       "\n"
	       "Commands:\n");
	print_verbs(tables, "");
	printf("\n"
	       "PATH is FILE/KEY/...: 'cms/core_services/Worker'. In a key, write '/' as %%2F and '%%' as %%25.\n"
	       "Every config change is a new snapshot and a compare-and-set of <prefix>/current (docs/config.md);\n"
	       "scaling: docs/scale.md, section corralctl. `corralctl help COMMAND` for one command.\n"
	       "\n"
	       "Options:\n%s"
	       "\n"
	       "Command options:\n",
	       global_options);
	for (const ctl_option_doc *d = ctl_option_docs; d->bit; d++)
		print_option(d);
	printf("\n%s", exit_codes);
	return ctl_flush();
}

static int help_group(const ctl_verb *const *tables, const char *const *words, size_t n) {
	char group[128] = "";

	for (size_t i = 0; i < n; i++)
		snprintf(group + strlen(group), sizeof group - strlen(group), "%s%s", i ? " " : "", words[i]);
	printf("Usage: corralctl [OPTIONS] %s SUBCOMMAND [ARGS]\n\nSubcommands:\n", group);
	print_verbs(tables, group);
	printf("\n`corralctl help %s SUBCOMMAND` for one; global options: corralctl --help.\n\n%s", group, exit_codes);
	return ctl_flush();
}

static int help_verb(const ctl_verb *v) {
	char path[128];

	if (v->flags & CTL_VERB_OWN_OPTIONS) {
		/* it knows its options: ask it (it prints and returns at --help) */
		char *argv[] = { (char *) v->name, (char *) "--help", NULL };
		ctl_t c = {};
		ctl_opts o = { .argc = 2, .argv = argv };
		return v->run(&c, &o);
	}
	verb_path(v, path, sizeof path);
	printf("Usage: corralctl [OPTIONS] %s%s%s\n\n", path, v->args && *v->args ? " " : "", v->args ? v->args : "");
	print_wrapped(v->help, 0, 0);
	if (v->options) {
		printf("\nOptions:\n");
		for (const ctl_option_doc *d = ctl_option_docs; d->bit; d++)
			if (v->options & d->bit)
				print_option(d);
	}
	printf("\nGlobal options: corralctl --help.%s\n\n%s",
	       v->flags & CTL_VERB_ETCD ? " Needs the cluster (--prefix, --cluster or --config)." : "", exit_codes);
	return ctl_flush();
}

int ctl_help(const ctl_verb *const *tables, const char *const *words, size_t n) {
	bool partial;
	const ctl_verb *v;

	if (n == 0)
		return help_all(tables);
	v = ctl_find_verb(tables, words, n, &partial);
	if (v)
		return help_verb(v);
	if (partial)
		return help_group(tables, words, n);
	return ctl_usage_error("unknown command '%s'", words[n - 1]);
}
