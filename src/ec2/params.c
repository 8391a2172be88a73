/* params.c — the pure half of the typed EC2 calls (see ec2.h, "typed
 * calls"): ec2_params, an owned list of Query parameters, and the builders
 * that turn a request struct into exactly the parameters botocore's EC2
 * serializer sends, refusing what EC2 would refuse or what is unsafe to
 * send. No I/O. */
#include <stdarg.h>
#include <time.h>

#include "b64.h"
#include "ec2.h"

/* ---- ec2_params ------------------------------------------------------------------ */

void ec2_params_done(ec2_params *p) {
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free((char *) p->items[i].name);
		free((char *) p->items[i].value);
	}
	free(p->items);
	*p = (ec2_params){};
}

int ec2_params_add(ec2_params *p, const char *name, const char *value) {
	if (!p || !name || !*name || !value)
		return -EINVAL;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		ec2_param *items = realloc(p->items, cap * sizeof *items);
		if (!items)
			return -ENOMEM;
		p->items = items;
		p->cap = cap;
	}
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	p->items[p->n++] = (ec2_param){ .name = n, .value = v };
	return 0;
}

int ec2_params_addf(ec2_params *p, const char *value, const char *name_fmt, ...) {
	_cleanup_free_ char *name = NULL;
	va_list ap;
	int r;

	va_start(ap, name_fmt);
	r = vasprintf(&name, name_fmt, ap);
	va_end(ap);
	if (r < 0) {
		name = NULL;
		return -ENOMEM;
	}
	return ec2_params_add(p, name, value);
}

const char *ec2_params_get(const ec2_params *p, const char *name) {
	for (size_t i = 0; p && i < p->n; i++)
		if (streq(p->items[i].name, name))
			return p->items[i].value;
	return NULL;
}

/* ---- builders ---------------------------------------------------------------------- */

static bool nonempty(const char *s) {
	return s && *s;
}

static int add_uint(ec2_params *p, const char *name, unsigned v) {
	char buf[16];
	snprintf(buf, sizeof buf, "%u", v);
	return ec2_params_add(p, name, buf);
}

static int add_list(ec2_params *p, const char *prefix, const char *const *values, size_t n) {
	for (size_t i = 0; i < n; i++) {
		if (!nonempty(values[i]))
			return -EINVAL;
		int r = ec2_params_addf(p, values[i], "%s.%zu", prefix, i + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_filters(ec2_params *p, const ec2_filter *f, size_t n) {
	int r;

	if (n && !f)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!nonempty(f[i].name) || f[i].n_values == 0 || !f[i].values)
			return -EINVAL;
		r = ec2_params_addf(p, f[i].name, "Filter.%zu.Name", i + 1);
		for (size_t j = 0; r >= 0 && j < f[i].n_values; j++) {
			if (!f[i].values[j])
				return -EINVAL;
			r = ec2_params_addf(p, f[i].values[j], "Filter.%zu.Value.%zu", i + 1, j + 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* prefix "Tag" or "TagSpecification.1.Tag"; with_empty_values: a NULL
 * value is sent as "" (CreateTags) or left out (DeleteTags). */
static int add_tags(ec2_params *p, const char *prefix, const ec2_kv *tags, size_t n, bool need_values) {
	int r;

	if (n && !tags)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!nonempty(tags[i].key))
			return -EINVAL;
		r = ec2_params_addf(p, tags[i].key, "%s.%zu.Key", prefix, i + 1);
		if (r >= 0 && (tags[i].value || need_values))
			r = ec2_params_addf(p, tags[i].value ? tags[i].value : "", "%s.%zu.Value", prefix, i + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool max_results_ok(unsigned v, unsigned lo) {
	return v == 0 || (v >= lo && v <= 1000);
}

static bool client_token_ok(const char *t) {
	size_t n = t ? strlen(t) : 0;

	if (n == 0 || n > EC2_CLIENT_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x21 || t[i] > 0x7e)
			return false;
	return true;
}

/* Builds into a scratch list; *out is written only on success. */
static int params_finish(ec2_params *scratch, int r, ec2_params *out) {
	if (r < 0) {
		ec2_params_done(scratch);
		return r;
	}
	*out = *scratch;
	return 0;
}

int ec2_params_run_instances(const ec2_launch *l, ec2_params *out) {
	ec2_params p = {};
	int r = 0;

	if (!l || !out || l->count == 0 || !client_token_ok(l->client_token) ||
	    nonempty(l->launch_template_id) == nonempty(l->launch_template_name) ||
	    (l->user_data_len && !l->user_data))
		return -EINVAL;
	if (nonempty(l->launch_template_id))
		r = ec2_params_add(&p, "LaunchTemplate.LaunchTemplateId", l->launch_template_id);
	else
		r = ec2_params_add(&p, "LaunchTemplate.LaunchTemplateName", l->launch_template_name);
	if (r >= 0)
		r = ec2_params_add(&p, "LaunchTemplate.Version",
				   nonempty(l->launch_template_version) ? l->launch_template_version : "$Latest");
	if (r >= 0 && nonempty(l->instance_type))
		r = ec2_params_add(&p, "InstanceType", l->instance_type);
	if (r >= 0 && nonempty(l->subnet_id))
		r = ec2_params_add(&p, "SubnetId", l->subnet_id);
	if (r >= 0)
		r = add_uint(&p, "MinCount", l->count);
	if (r >= 0)
		r = add_uint(&p, "MaxCount", l->count);
	if (r >= 0)
		r = ec2_params_add(&p, "ClientToken", l->client_token);
	if (r >= 0 && l->user_data_len) {
		_cleanup_free_ char *b = b64_encode(l->user_data, l->user_data_len);
		r = b ? ec2_params_add(&p, "UserData", b) : -ENOMEM;
	}
	if (r >= 0 && l->n_tags) {
		r = ec2_params_add(&p, "TagSpecification.1.ResourceType", "instance");
		if (r >= 0)
			r = add_tags(&p, "TagSpecification.1.Tag", l->tags, l->n_tags, true);
	}
	if (r >= 0 && l->spot) {
		r = ec2_params_add(&p, "InstanceMarketOptions.MarketType", "spot");
		if (r >= 0)
			r = ec2_params_add(&p, "InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
		if (r >= 0)
			r = ec2_params_add(&p, "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
					   "terminate");
	}
	return params_finish(&p, r, out);
}

int ec2_params_create_launch_template_version(const ec2_template_version *v, ec2_params *out) {
	ec2_params p = {};
	int r;

	if (!v || !out || !client_token_ok(v->client_token) || !nonempty(v->image_id) ||
	    nonempty(v->launch_template_id) == nonempty(v->launch_template_name))
		return -EINVAL;
	if (nonempty(v->launch_template_id))
		r = ec2_params_add(&p, "LaunchTemplateId", v->launch_template_id);
	else
		r = ec2_params_add(&p, "LaunchTemplateName", v->launch_template_name);
	if (r >= 0 && nonempty(v->source_version))
		r = ec2_params_add(&p, "SourceVersion", v->source_version);
	if (r >= 0 && nonempty(v->description))
		r = ec2_params_add(&p, "VersionDescription", v->description);
	if (r >= 0)
		r = ec2_params_add(&p, "LaunchTemplateData.ImageId", v->image_id);
	if (r >= 0)
		r = ec2_params_add(&p, "ClientToken", v->client_token);
	return params_finish(&p, r, out);
}

int ec2_params_describe_instances(const ec2_filter *filters, size_t n_filters, unsigned max_results,
				  const char *next_token, ec2_params *out) {
	ec2_params p = {};
	int r;

	if (!out || !max_results_ok(max_results, 5))
		return -EINVAL;
	r = add_filters(&p, filters, n_filters);
	if (r >= 0 && max_results)
		r = add_uint(&p, "MaxResults", max_results);
	if (r >= 0 && nonempty(next_token))
		r = ec2_params_add(&p, "NextToken", next_token);
	return params_finish(&p, r, out);
}

int ec2_params_terminate(const char *const *ids, size_t n_ids, ec2_params *out) {
	ec2_params p = {};

	if (!out || !ids || n_ids == 0 || n_ids > EC2_TERMINATE_BATCH_MAX)
		return -EINVAL;
	return params_finish(&p, add_list(&p, "InstanceId", ids, n_ids), out);
}

/* Stop and Start take the same InstanceId.N list as Terminate (and no
 * other parameter we send: no Force, no Hibernate). */
int ec2_params_stop(const char *const *ids, size_t n_ids, ec2_params *out) {
	return ec2_params_terminate(ids, n_ids, out);
}

int ec2_params_start(const char *const *ids, size_t n_ids, ec2_params *out) {
	return ec2_params_terminate(ids, n_ids, out);
}

static int tags_params(const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags, bool need_values,
		       ec2_params *out) {
	ec2_params p = {};
	int r;

	if (!out || !ids || n_ids == 0 || (need_values && n_tags == 0))
		return -EINVAL;
	r = add_list(&p, "ResourceId", ids, n_ids);
	if (r >= 0)
		r = add_tags(&p, "Tag", tags, n_tags, need_values);
	return params_finish(&p, r, out);
}

int ec2_params_create_tags(const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
			   ec2_params *out) {
	return tags_params(ids, n_ids, tags, n_tags, true, out);
}

int ec2_params_delete_tags(const char *const *ids, size_t n_ids, const ec2_kv *tags, size_t n_tags,
			   ec2_params *out) {
	return tags_params(ids, n_ids, tags, n_tags, false, out);
}

int ec2_params_describe_instance_status(const char *const *ids, size_t n_ids, bool include_all,
					unsigned max_results, const char *next_token, ec2_params *out) {
	ec2_params p = {};
	int r = 0;

	if (!out || !max_results_ok(max_results, 5) || (n_ids && !ids))
		return -EINVAL;
	if (n_ids)
		r = add_list(&p, "InstanceId", ids, n_ids);
	if (r >= 0 && include_all)
		r = ec2_params_add(&p, "IncludeAllInstances", "true");
	if (r >= 0 && max_results && n_ids == 0)
		r = add_uint(&p, "MaxResults", max_results);
	if (r >= 0 && nonempty(next_token))
		r = ec2_params_add(&p, "NextToken", next_token);
	return params_finish(&p, r, out);
}

int ec2_params_describe_reserved_instances(const ec2_filter *filters, size_t n_filters, ec2_params *out) {
	ec2_params p = {};

	if (!out)
		return -EINVAL;
	return params_finish(&p, add_filters(&p, filters, n_filters), out);
}

int ec2_params_spot_price_history(const char *const *types, size_t n_types, const char *product,
				  time_t start_time, unsigned max_results, const char *next_token,
				  ec2_params *out) {
	ec2_params p = {};
	int r = 0;

	if (!out || !max_results_ok(max_results, 1) || (n_types && !types) || start_time < 0)
		return -EINVAL;
	if (n_types)
		r = add_list(&p, "InstanceType", types, n_types);
	if (r >= 0 && nonempty(product))
		r = ec2_params_add(&p, "ProductDescription.1", product);
	if (r >= 0 && start_time > 0) {
		struct tm tm;
		char buf[32];
		if (!gmtime_r(&start_time, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			r = -EINVAL;
		else
			r = ec2_params_add(&p, "StartTime", buf);
	}
	if (r >= 0 && max_results)
		r = add_uint(&p, "MaxResults", max_results);
	if (r >= 0 && nonempty(next_token))
		r = ec2_params_add(&p, "NextToken", next_token);
	return params_finish(&p, r, out);
}
