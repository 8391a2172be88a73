/* schedule.c — what `corralctl upgrade plan` prints: the plan's schedule
 * from the nodes as they are now, built from the decision's own rules
 * (rollout_node_eligible, rollout_budget), assuming every node stays
 * healthy: which nodes are skipped and why, the canaries, the batches;
 * in a plan with both an image and a machine image, each node's kind. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout-internal.h"

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int rollout_schedule_build(const rollout_input *in, rollout_schedule *out) {
	const rollout_plan *p = in->plan;
	rollout_schedule s = {};
	size_t n = in->n_nodes, n_elig = 0;
	int scope = 0, healthy = 0;
	_cleanup_free_ const char **elig = NULL;

	*out = s;
	if (!p)
		return -EINVAL;
	s.skipped = calloc(n + 1, sizeof *s.skipped);
	s.skipped_why = calloc(n + 1, sizeof *s.skipped_why);
	s.canary = calloc(n + 1, sizeof *s.canary);
	s.batches = calloc(n + 1, sizeof *s.batches);
	s.batch_sizes = calloc(n + 1, sizeof *s.batch_sizes);
	s.replaced = calloc(n + 1, sizeof *s.replaced);
	elig = calloc(n + 1, sizeof *elig);
	if (!s.skipped || !s.skipped_why || !s.canary || !s.batches || !s.batch_sizes || !s.replaced || !elig)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const rollout_node *node = &in->nodes[i];
		const char *why;
		bool covered = rollout_plan_covers(p, node->pool);
		scope += covered && node->registered;
		healthy += covered && node->registered && node->status_ok;
		if (rollout_node_eligible(p, node, &why)) {
			if (rollout_plan_both(p) && rollout_node_replaced(p, node))
				s.replaced[s.n_replaced++] = node->id;
			if ((int) s.n_canary < p->canary_nodes && node->status_ok)
				s.canary[s.n_canary++] = node->id;
			else
				elig[n_elig++] = node->id;
		} else if (covered) {
			s.skipped[s.n_skipped] = node->id;
			s.skipped_why[s.n_skipped++] = why;
		}
	}
	/* a staged config has no batches: every node follows `current` at
	 * the promotion */
	int k = rollout_plan_staged(p) ? (int) n_elig
	                               : rollout_budget(scope, healthy, 0, p->max_unavailable, p->min_healthy_percent);
	for (size_t i = 0; i < n_elig; i += k) {
		if (k == 0) {
			for (; i < n_elig; i++) {
				s.skipped[s.n_skipped] = elig[i];
				s.skipped_why[s.n_skipped++] = "blocked: budget";
			}
			break;
		}
		size_t m = n_elig - i < (size_t) k ? n_elig - i : (size_t) k;
		s.batches[s.n_batches] = calloc(m + 1, sizeof **s.batches);
		if (!s.batches[s.n_batches])
			goto oom;
		memcpy(s.batches[s.n_batches], elig + i, m * sizeof *elig);
		s.batch_sizes[s.n_batches++] = m;
	}
	qsort(s.replaced, s.n_replaced, sizeof *s.replaced, cmp_str);
	*out = s;
	return 0;
oom:
	rollout_schedule_done(&s);
	return -ENOMEM;
}

void rollout_schedule_done(rollout_schedule *s) {
	if (!s)
		return;
	free(s->skipped);
	free(s->skipped_why);
	free(s->canary);
	for (size_t i = 0; s->batches && i < s->n_batches; i++)
		free(s->batches[i]);
	free(s->batches);
	free(s->batch_sizes);
	free(s->replaced);
	*s = (rollout_schedule) {};
}

/* The ids; in a plan with both, each with its kind. */
static void list(FILE *f, const rollout_plan *p, const rollout_schedule *s, const char *const *ids, size_t n) {
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s%s", i ? ", " : "", ids[i]);
		if (rollout_plan_both(p))
			fprintf(f, " (%s)", bsearch(&ids[i], s->replaced, s->n_replaced, sizeof *s->replaced, cmp_str)
			                            ? "replace" : "in place");
	}
	fputc('\n', f);
}

char *rollout_schedule_format(const rollout_plan *p, const rollout_schedule *s) {
	char *text = NULL;
	size_t size = 0, total = s->n_canary;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	for (size_t i = 0; i < s->n_batches; i++)
		total += s->batch_sizes[i];
	if (rollout_plan_staged(p))
		fprintf(f, "plan %s: config %s (made on %s), %zu node%s: the canaries pinned to it, then every node "
			   "at the promotion of current\n",
			p->id ? p->id : "-", p->target.config, p->config_base ? p->config_base : "current", total,
			total == 1 ? "" : "s");
	else if (rollout_target_replaces(&p->target))
		fprintf(f, "plan %s: %s%s%s%s %s, %zu node%s to %s (max_unavailable %d, min_healthy_percent %d)\n",
			p->id ? p->id : "-", p->target.image ? "image " : "", p->target.image ? p->target.image : "",
			p->target.image ? " and " : "", p->target.ami ? "AMI" : "launch template version",
			p->target.ami ? p->target.ami : p->target.launch_template_version, total, total == 1 ? "" : "s",
			p->target.image ? "upgrade or replace" : "replace", p->max_unavailable, p->min_healthy_percent);
	else
		fprintf(f, "plan %s: image %s, %zu node%s to upgrade (max_unavailable %d, min_healthy_percent %d)\n",
			p->id ? p->id : "-", p->target.image ? p->target.image : "-", total, total == 1 ? "" : "s",
			p->max_unavailable, p->min_healthy_percent);
	for (size_t i = 0; i < s->n_skipped; i++)
		fprintf(f, "skipped: %s (%s)\n", s->skipped[i], s->skipped_why[i]);
	if (s->n_canary) {
		fprintf(f, "canary: ");
		list(f, p, s, s->canary, s->n_canary);
	}
	for (size_t i = 0; i < s->n_batches; i++) {
		if (rollout_plan_staged(p))
			fprintf(f, "at promotion: ");
		else
			fprintf(f, "batch %zu: ", i + 1);
		list(f, p, s, s->batches[i], s->batch_sizes[i]);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
