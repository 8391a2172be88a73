/* corralctl — the operator's CLI. It reads and writes desired state in etcd;
 * corrald acts on it. main() parses the command line against the verb
 * tables (one per command group, see ctl.h), sets up what the verb needs
 * and runs it. Exit codes: 0 ok, 1 the operation failed, 2 usage or input
 * error, for every command. */
#include "ctl.h"
#include "buildinfo.h"
#include "log.h"

/* Every command, in the order `corralctl --help` lists them. A new group:
 * its file's ctl_<group>_verbs here and in ctl.h, its file in Makefile.am. */
static const ctl_verb *const tables[] = {
	ctl_status_verbs,      ctl_hosts_verbs, ctl_config_verbs, ctl_ec2_verbs,  ctl_policy_verbs, ctl_schedule_verbs,
	ctl_scale_verbs,       ctl_history_verbs,
	ctl_cluster_verbs,     ctl_maintenance_verbs, ctl_hold_verbs, ctl_load_verbs, ctl_upgrade_verbs, ctl_deployment_verbs,
	NULL,
};

int main(int argc, char *argv[]) {
	_cleanup_(ctl_done) ctl_t c = { .format = FORMAT_TABLE };
	_cleanup_(ctl_parsed_done) ctl_parsed p = {};
	int r;

	log_set_ident("corralctl");
	r = ctl_parse(&c, tables, argc, argv, &p);
	if (r >= 0)
		return r;
	if (p.cl.help)
		return ctl_help(tables, p.words, p.n_words);
	if (p.cl.version) {
		corral_version_print(stdout, "corralctl");
		return ctl_flush();
	}
	if (p.verb->flags & (CTL_VERB_ETCD | CTL_VERB_CLUSTER) && (r = ctl_setup(&c, &p.cl)) != 0)
		return r;
	if (p.verb->flags & CTL_VERB_ETCD && (r = ctl_connect(&c)) != 0)
		return r;
	return p.verb->run(&c, &p.opts);
}
