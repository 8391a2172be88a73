/* xml.c — EC2 Query API responses into the structs of ec2xml.h, with
 * libxml2's tree parser. Each parser reads only the direct children it
 * knows at each level (so an ENI's privateIpAddress never passes for the
 * instance's, and new elements anywhere are skipped), and treats the
 * error envelopes the same way everywhere. Pure: no I/O, no logging. */
#include <ctype.h>
#include <dlfcn.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <math.h>

#include "ec2xml.h"
#include "rfc3339.h"
#include "macro.h"

/* ---- libxml2 plumbing ------------------------------------------------------------------ */

/* libxml2 is opened at the first parse, not linked: a process that never
 * talks to EC2 never maps it, nor what it pulls in (ICU, libstdc++ and its
 * exception pool: some 250 KiB of private memory a process,
 * docs/benchmarks.md "Memory"). Three functions are all it takes;
 * configure finds the soname (LIBXML2_SONAME). */
static struct {
	bool tried;
	xmlDoc *(*read_memory)(const char *buffer, int size, const char *url, const char *encoding, int options);
	void (*free_doc)(xmlDoc *doc);
	xmlNode *(*root)(const xmlDoc *doc);
} lx;

static bool lx_loaded(void) {
	if (!lx.tried) {
		lx.tried = true;
		/* Never closed: one handle for the process's life. */
		void *h = dlopen(LIBXML2_SONAME, RTLD_NOW | RTLD_LOCAL);
		if (h) {
			*(void **) &lx.read_memory = dlsym(h, "xmlReadMemory");
			*(void **) &lx.free_doc = dlsym(h, "xmlFreeDoc");
			*(void **) &lx.root = dlsym(h, "xmlDocGetRootElement");
		}
		if (!lx.read_memory || !lx.free_doc || !lx.root)
			lx.read_memory = NULL;
	}
	return lx.read_memory;
}

bool ec2xml_available(void) {
	return lx_loaded();
}

static xmlNode *doc_root(const xmlDoc *d) {
	return lx.root(d);
}

static void xml_doc_freep(xmlDoc **d) {
	if (*d)
		lx.free_doc(*d);
}
#define _cleanup_doc_ _cleanup_(xml_doc_freep)

static bool status_ok(int status) {
	return status >= 200 && status < 300;
}

/* -EBADMSG for anything that is not one well-formed XML document without a
 * DTD. No network, no entity substitution, no DTD loading, nothing printed. */
static int doc_read(const char *body, size_t len, xmlDoc **out) {
	if (!lx_loaded())
		return -ELIBACC;
	if (!body || len == 0 || len > INT_MAX)
		return -EBADMSG;
	xmlDoc *d = lx.read_memory(body, (int) len, NULL, NULL,
	                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!d)
		return -EBADMSG;
	if (d->intSubset || d->extSubset || !doc_root(d)) {
		lx.free_doc(d);
		return -EBADMSG;
	}
	*out = d;
	return 0;
}

static bool is_el(const xmlNode *n, const char *name) {
	return n && n->type == XML_ELEMENT_NODE && n->name && streq((const char *) n->name, name);
}

/* The first direct child element named name (local name), or NULL. */
static xmlNode *child(const xmlNode *n, const char *name) {
	if (!n)
		return NULL;
	for (xmlNode *c = n->children; c; c = c->next)
		if (is_el(c, name))
			return c;
	return NULL;
}

/* The element's own text (its text and CDATA children; entity references,
 * which are never substituted, are ignored). New string, "" when empty. */
static char *text_dup(const xmlNode *n) {
	size_t len = 0;

	for (xmlNode *c = n->children; c; c = c->next)
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
			len += strlen((const char *) c->content);
	char *s = malloc(len + 1), *p = s;
	if (!s)
		return NULL;
	for (xmlNode *c = n->children; c; c = c->next)
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
			size_t l = strlen((const char *) c->content);
			memcpy(p, c->content, l);
			p += l;
		}
	*p = 0;
	return s;
}

static void trim(char *s) {
	size_t a = 0, n = strlen(s);

	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	while (a < n && isspace((unsigned char) s[a]))
		a++;
	memmove(s, s + a, n - a);
	s[n - a] = 0;
}

/* *out: the child's text, or NULL when there is no such child. */
static int get_str(const xmlNode *n, const char *name, char **out) {
	xmlNode *c = child(n, name);

	*out = NULL;
	if (!c)
		return 0;
	*out = text_dup(c);
	return *out ? 0 : -ENOMEM;
}

/* Like get_str, but an empty value counts as absent (tokens). */
static int get_nonempty(const xmlNode *n, const char *name, char **out) {
	int r = get_str(n, name, out);

	if (r >= 0 && *out && !**out) {
		free(*out);
		*out = NULL;
	}
	return r;
}

static int get_int(const xmlNode *n, const char *name, int *out) {
	xmlNode *c = child(n, name);

	*out = -1;
	if (!c)
		return 0;
	_cleanup_free_ char *t = text_dup(c);
	if (!t)
		return -ENOMEM;
	trim(t);
	if (!*t)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(t, &end, 10);
	if (errno || *end || v < INT_MIN || v > INT_MAX)
		return -EBADMSG;
	*out = (int) v;
	return 0;
}

static int get_time(const xmlNode *n, const char *name, time_t *out) {
	xmlNode *c = child(n, name);

	*out = 0;
	if (!c)
		return 0;
	_cleanup_free_ char *t = text_dup(c);
	if (!t)
		return -ENOMEM;
	trim(t);
	if (!*t)
		return 0;
	return ec2xml_parse_time(t, out) < 0 ? -EBADMSG : 0;
}

static size_t count_items(const xmlNode *set) {
	size_t n = 0;

	if (set)
		for (xmlNode *c = set->children; c; c = c->next)
			n += is_el(c, "item");
	return n;
}

#define FOREACH_ITEM(c, set) \
	for (xmlNode *c = (set) ? (set)->children : NULL; c; c = c->next) \
		if (is_el(c, "item"))

typedef int (*item_parser)(const xmlNode *item, void *out);

/* Every <item> of set (absent: none) through parse into a new array of
 * size-byte elements, zeroed before each is parsed. *n_out counts the
 * items begun, also on error, so that the caller's done function frees
 * what was filled. */
static int parse_set(const xmlNode *set, size_t size, item_parser parse, void **out, size_t *n_out) {
	size_t n = count_items(set), k = 0;
	char *v;
	int r = 0;

	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return 0;
	v = calloc(n, size);
	if (!v)
		return -ENOMEM;
	FOREACH_ITEM(c, set) {
		r = parse(c, v + size * k++);
		if (r < 0)
			break;
	}
	*out = v;
	*n_out = k;
	return r;
}

/* ---- time ----------------------------------------------------------------------------------- */

int ec2xml_parse_time(const char *s, time_t *out) {
	return rfc3339_parse(s, out);
}

/* ---- errors ---------------------------------------------------------------------------------- */

void ec2_error_done(ec2_error *e) {
	if (!e)
		return;
	free(e->code);
	free(e->message);
	free(e->request_id);
	free(e->type);
	*e = (ec2_error) { 0 };
}

static bool is_envelope(const xmlNode *root) {
	return is_el(root, "Response") || is_el(root, "ErrorResponse");
}

static int get_trimmed(const xmlNode *n, const char *name, char **out) {
	int r = get_str(n, name, out);

	if (r >= 0 && *out)
		trim(*out);
	return r;
}

/* Fills err from <Response>/<ErrorResponse>: Errors/Error or Error. */
static int envelope_fill(const xmlNode *root, ec2_error *err) {
	xmlNode *e = child(child(root, "Errors"), "Error");
	int r;

	if (!e)
		e = child(root, "Error");
	r = get_trimmed(root, "RequestID", &err->request_id);
	if (r >= 0 && !err->request_id)
		r = get_trimmed(root, "RequestId", &err->request_id);
	if (r >= 0 && e) {
		r = get_trimmed(e, "Code", &err->code);
		if (r >= 0)
			r = get_trimmed(e, "Message", &err->message);
		if (r >= 0)
			r = get_trimmed(e, "Type", &err->type);
	}
	if (r >= 0 && err->code && !*err->code) {
		free(err->code);
		err->code = NULL;
	}
	return r;
}

int ec2xml_parse_error(int http_status, const char *body, size_t len, ec2_error *err) {
	_cleanup_doc_ xmlDoc *doc = NULL;
	int r;

	*err = (ec2_error) { .http_status = http_status };
	r = doc_read(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = doc_root(doc);
	if (!is_envelope(root))
		return -EBADMSG;
	return envelope_fill(root, err);
}

/* The common start of every parser: read, route errors, check the root. */
static int begin(int status, const char *body, size_t len, const char *root_name, xmlDoc **doc, xmlNode **root,
                 ec2_error *err) {
	int r;

	*err = (ec2_error) { .http_status = status };
	r = doc_read(body, len, doc);
	if (r == -ELIBACC)
		return r;
	if (r < 0)
		return status_ok(status) ? -EBADMSG : -EREMOTEIO;
	*root = doc_root(*doc);
	if (is_envelope(*root)) {
		r = envelope_fill(*root, err);
		return r < 0 ? r : -EREMOTEIO;
	}
	if (!status_ok(status))
		return -EREMOTEIO;
	if (!is_el(*root, root_name))
		return -EBADMSG;
	return 0;
}

/* The shape of every listing: <Response> with a requestId, an <item>
 * set and, when paged, a nextToken. */
typedef struct list_shape {
	const char *root, *set;
	size_t item_size;
	item_parser parse;
	bool paged;
} list_shape;

/* *items and *n are set also on error (see parse_set), as are the strings:
 * the caller's done function frees them all. */
static int parse_list(int http_status, const char *body, size_t len, const list_shape *shape, void **items,
		      size_t *n, char **request_id, char **next_token, ec2_error *err) {
	_cleanup_doc_ xmlDoc *doc = NULL;
	xmlNode *root;
	int r;

	*items = NULL;
	*n = 0;
	r = begin(http_status, body, len, shape->root, &doc, &root, err);
	if (r < 0)
		return r;
	r = parse_set(child(root, shape->set), shape->item_size, shape->parse, items, n);
	if (r < 0 || (r = get_str(root, "requestId", request_id)) < 0)
		return r;
	return shape->paged ? get_nonempty(root, "nextToken", next_token) : 0;
}

/* ---- instances ------------------------------------------------------------------------------------ */

static void state_done(ec2_state *s) {
	free(s->name);
	*s = (ec2_state) { .code = -1 };
}

static int get_state(const xmlNode *n, const char *name, ec2_state *out) {
	xmlNode *c = child(n, name);
	int r;

	*out = (ec2_state) { .code = -1 };
	if (!c)
		return 0;
	r = get_int(c, "code", &out->code);
	if (r >= 0)
		r = get_str(c, "name", &out->name);
	return r;
}

static void instance_done(ec2_instance *i) {
	free(i->instance_id);
	free(i->image_id);
	free(i->instance_type);
	state_done(&i->state);
	free(i->private_ip);
	free(i->availability_zone);
	free(i->lifecycle);
	free(i->spot_request_id);
	free(i->client_token);
	for (size_t k = 0; k < i->n_tags; k++) {
		free(i->tags[k].key);
		free(i->tags[k].value);
	}
	free(i->tags);
	*i = (ec2_instance) { 0 };
}

const char *ec2_instance_tag(const ec2_instance *i, const char *key) {
	for (size_t k = 0; k < i->n_tags; k++)
		if (streq(i->tags[k].key, key))
			return i->tags[k].value;
	return NULL;
}

static int parse_tag(const xmlNode *c, void *out) {
	ec2_tag *t = out;
	int r;

	if ((r = get_str(c, "key", &t->key)) < 0 || (r = get_str(c, "value", &t->value)) < 0)
		return r;
	if (!t->key)
		return -EBADMSG;
	if (!t->value && !(t->value = strdup("")))
		return -ENOMEM;
	return 0;
}

static int parse_instance(const xmlNode *n, void *out) {
	ec2_instance *i = out;
	void *tags;
	int r;

	*i = (ec2_instance) { .state.code = -1 };
	if ((r = get_str(n, "instanceId", &i->instance_id)) < 0 ||
	    (r = get_str(n, "imageId", &i->image_id)) < 0 ||
	    (r = get_str(n, "instanceType", &i->instance_type)) < 0 ||
	    (r = get_state(n, "instanceState", &i->state)) < 0 ||
	    (r = get_time(n, "launchTime", &i->launch_time)) < 0 ||
	    (r = get_nonempty(n, "privateIpAddress", &i->private_ip)) < 0 ||
	    (r = get_nonempty(child(n, "placement"), "availabilityZone", &i->availability_zone)) < 0 ||
	    (r = get_nonempty(n, "instanceLifecycle", &i->lifecycle)) < 0 ||
	    (r = get_nonempty(n, "spotInstanceRequestId", &i->spot_request_id)) < 0 ||
	    (r = get_nonempty(n, "clientToken", &i->client_token)) < 0)
		return r;
	r = parse_set(child(n, "tagSet"), sizeof *i->tags, parse_tag, &tags, &i->n_tags);
	i->tags = tags;
	if (r < 0)
		return r;
	if (!i->instance_id || !*i->instance_id)
		return -EBADMSG;
	i->launch_template_id = ec2_instance_tag(i, "aws:ec2launchtemplate:id");
	i->launch_template_version = ec2_instance_tag(i, "aws:ec2launchtemplate:version");
	return 0;
}

static void instances_free(ec2_instance *v, size_t n) {
	for (size_t k = 0; k < n; k++)
		instance_done(&v[k]);
	free(v);
}

static int parse_instances(const xmlNode *set, ec2_instance **out, size_t *n_out) {
	void *v;
	int r = parse_set(set, sizeof **out, parse_instance, &v, n_out);

	*out = v;
	return r;
}

void ec2xml_describe_instances_done(ec2xml_describe_instances *r) {
	if (!r)
		return;
	for (size_t k = 0; k < r->n_reservations; k++) {
		free(r->reservations[k].reservation_id);
		instances_free(r->reservations[k].instances, r->reservations[k].n_instances);
	}
	free(r->reservations);
	free(r->request_id);
	free(r->next_token);
	*r = (ec2xml_describe_instances) { 0 };
}

static int parse_reservation(const xmlNode *c, void *out) {
	ec2_reservation *v = out;
	int r = get_str(c, "reservationId", &v->reservation_id);

	return r < 0 ? r : parse_instances(child(c, "instancesSet"), &v->instances, &v->n_instances);
}

int ec2xml_parse_describe_instances(int http_status, const char *body, size_t len,
                                    ec2xml_describe_instances *out, ec2_error *err) {
	static const list_shape shape = { "DescribeInstancesResponse", "reservationSet", sizeof(ec2_reservation),
					  parse_reservation, true };
	_cleanup_(ec2xml_describe_instances_done) ec2xml_describe_instances res = { 0 };
	void *v;
	int r = parse_list(http_status, body, len, &shape, &v, &res.n_reservations, &res.request_id,
			   &res.next_token, err);

	res.reservations = v;
	if (r < 0)
		return r;
	*out = res;
	res = (ec2xml_describe_instances) { 0 };
	return 0;
}

void ec2xml_run_instances_done(ec2xml_run_instances *r) {
	if (!r)
		return;
	free(r->request_id);
	free(r->reservation_id);
	instances_free(r->instances, r->n_instances);
	*r = (ec2xml_run_instances) { 0 };
}

int ec2xml_parse_run_instances(int http_status, const char *body, size_t len, ec2xml_run_instances *out,
                               ec2_error *err) {
	_cleanup_doc_ xmlDoc *doc = NULL;
	_cleanup_(ec2xml_run_instances_done) ec2xml_run_instances res = { 0 };
	xmlNode *root;
	int r;

	r = begin(http_status, body, len, "RunInstancesResponse", &doc, &root, err);
	if (r < 0)
		return r;
	if ((r = get_str(root, "requestId", &res.request_id)) < 0 ||
	    (r = get_str(root, "reservationId", &res.reservation_id)) < 0 ||
	    (r = parse_instances(child(root, "instancesSet"), &res.instances, &res.n_instances)) < 0)
		return r;
	*out = res;
	res = (ec2xml_run_instances) { 0 };
	return 0;
}

/* ---- terminate ------------------------------------------------------------------------------------- */

void ec2xml_terminate_instances_done(ec2xml_terminate_instances *r) {
	if (!r)
		return;
	for (size_t k = 0; k < r->n_items; k++) {
		free(r->items[k].instance_id);
		state_done(&r->items[k].current);
		state_done(&r->items[k].previous);
	}
	free(r->items);
	free(r->request_id);
	*r = (ec2xml_terminate_instances) { 0 };
}

static int parse_state_change(const xmlNode *c, void *out) {
	ec2_state_change *v = out;
	int r;

	*v = (ec2_state_change) { .current.code = -1, .previous.code = -1 };
	if ((r = get_str(c, "instanceId", &v->instance_id)) < 0 ||
	    (r = get_state(c, child(c, "currentState") ? "currentState" : "shutdownState", &v->current)) < 0 ||
	    (r = get_state(c, "previousState", &v->previous)) < 0)
		return r;
	return v->instance_id && *v->instance_id ? 0 : -EBADMSG;
}

/* Terminate, Stop and StartInstances answer alike: an instancesSet of
 * state changes under <{root}>. */
static int parse_state_changes(const char *root, int http_status, const char *body, size_t len,
			       ec2xml_terminate_instances *out, ec2_error *err) {
	const list_shape shape = { root, "instancesSet", sizeof(ec2_state_change), parse_state_change, false };
	_cleanup_(ec2xml_terminate_instances_done) ec2xml_terminate_instances res = { 0 };
	void *v;
	int r = parse_list(http_status, body, len, &shape, &v, &res.n_items, &res.request_id, NULL, err);

	res.items = v;
	if (r < 0)
		return r;
	*out = res;
	res = (ec2xml_terminate_instances) { 0 };
	return 0;
}

int ec2xml_parse_terminate_instances(int http_status, const char *body, size_t len,
                                     ec2xml_terminate_instances *out, ec2_error *err) {
	return parse_state_changes("TerminateInstancesResponse", http_status, body, len, out, err);
}

int ec2xml_parse_stop_instances(int http_status, const char *body, size_t len, ec2xml_terminate_instances *out,
                                ec2_error *err) {
	return parse_state_changes("StopInstancesResponse", http_status, body, len, out, err);
}

int ec2xml_parse_start_instances(int http_status, const char *body, size_t len, ec2xml_terminate_instances *out,
                                 ec2_error *err) {
	return parse_state_changes("StartInstancesResponse", http_status, body, len, out, err);
}

/* ---- instance status ---------------------------------------------------------------------------- */

void ec2xml_describe_instance_status_done(ec2xml_describe_instance_status *r) {
	if (!r)
		return;
	for (size_t k = 0; k < r->n_items; k++) {
		ec2_instance_status *v = &r->items[k];
		free(v->instance_id);
		free(v->availability_zone);
		state_done(&v->state);
		free(v->system_status);
		free(v->instance_status);
	}
	free(r->items);
	free(r->request_id);
	free(r->next_token);
	*r = (ec2xml_describe_instance_status) { 0 };
}

static int parse_instance_status(const xmlNode *c, void *out) {
	ec2_instance_status *v = out;
	int r;

	*v = (ec2_instance_status) { .state.code = -1 };
	if ((r = get_str(c, "instanceId", &v->instance_id)) < 0 ||
	    (r = get_str(c, "availabilityZone", &v->availability_zone)) < 0 ||
	    (r = get_state(c, "instanceState", &v->state)) < 0 ||
	    (r = get_str(child(c, "systemStatus"), "status", &v->system_status)) < 0 ||
	    (r = get_str(child(c, "instanceStatus"), "status", &v->instance_status)) < 0)
		return r;
	return v->instance_id && *v->instance_id ? 0 : -EBADMSG;
}

int ec2xml_parse_describe_instance_status(int http_status, const char *body, size_t len,
                                          ec2xml_describe_instance_status *out, ec2_error *err) {
	static const list_shape shape = { "DescribeInstanceStatusResponse", "instanceStatusSet",
					  sizeof(ec2_instance_status), parse_instance_status, true };
	_cleanup_(ec2xml_describe_instance_status_done) ec2xml_describe_instance_status res = { 0 };
	void *v;
	int r = parse_list(http_status, body, len, &shape, &v, &res.n_items, &res.request_id, &res.next_token, err);

	res.items = v;
	if (r < 0)
		return r;
	*out = res;
	res = (ec2xml_describe_instance_status) { 0 };
	return 0;
}

/* ---- reserved instances ------------------------------------------------------------------------- */

void ec2xml_describe_reserved_instances_done(ec2xml_describe_reserved_instances *r) {
	if (!r)
		return;
	for (size_t k = 0; k < r->n_items; k++) {
		ec2_reserved_instances *v = &r->items[k];
		free(v->id);
		free(v->instance_type);
		free(v->availability_zone);
		free(v->scope);
		free(v->state);
		free(v->offering_type);
		free(v->product_description);
	}
	free(r->items);
	free(r->request_id);
	*r = (ec2xml_describe_reserved_instances) { 0 };
}

static int parse_reserved(const xmlNode *c, void *out) {
	ec2_reserved_instances *v = out;
	int r;

	*v = (ec2_reserved_instances) { .instance_count = -1 };
	if ((r = get_str(c, "reservedInstancesId", &v->id)) < 0 ||
	    (r = get_str(c, "instanceType", &v->instance_type)) < 0 ||
	    (r = get_nonempty(c, "availabilityZone", &v->availability_zone)) < 0 ||
	    (r = get_nonempty(c, "scope", &v->scope)) < 0 ||
	    (r = get_int(c, "instanceCount", &v->instance_count)) < 0 ||
	    (r = get_str(c, "state", &v->state)) < 0 ||
	    (r = get_time(c, "start", &v->start)) < 0 ||
	    (r = get_time(c, "end", &v->end)) < 0 ||
	    (r = get_str(c, "offeringType", &v->offering_type)) < 0 ||
	    (r = get_str(c, "productDescription", &v->product_description)) < 0)
		return r;
	return v->id && *v->id ? 0 : -EBADMSG;
}

int ec2xml_parse_describe_reserved_instances(int http_status, const char *body, size_t len,
                                             ec2xml_describe_reserved_instances *out, ec2_error *err) {
	static const list_shape shape = { "DescribeReservedInstancesResponse", "reservedInstancesSet",
					  sizeof(ec2_reserved_instances), parse_reserved, false };
	_cleanup_(ec2xml_describe_reserved_instances_done) ec2xml_describe_reserved_instances res = { 0 };
	void *v;
	int r = parse_list(http_status, body, len, &shape, &v, &res.n_items, &res.request_id, NULL, err);

	res.items = v;
	if (r < 0)
		return r;
	*out = res;
	res = (ec2xml_describe_reserved_instances) { 0 };
	return 0;
}

/* ---- spot prices --------------------------------------------------------------------------------- */

void ec2xml_spot_price_history_done(ec2xml_spot_price_history *r) {
	if (!r)
		return;
	for (size_t k = 0; k < r->n_items; k++) {
		ec2_spot_price *v = &r->items[k];
		free(v->instance_type);
		free(v->product_description);
		free(v->spot_price);
		free(v->availability_zone);
	}
	free(r->items);
	free(r->request_id);
	free(r->next_token);
	*r = (ec2xml_spot_price_history) { 0 };
}

static int parse_price(const char *s, double *out) {
	char *end;

	if (!s || !*s || isspace((unsigned char) *s))
		return -EBADMSG;
	errno = 0;
	double d = strtod(s, &end);
	if (errno || *end || !isfinite(d) || d < 0)
		return -EBADMSG;
	*out = d;
	return 0;
}

static int parse_spot_price(const xmlNode *c, void *out) {
	ec2_spot_price *v = out;
	int r;

	if ((r = get_str(c, "instanceType", &v->instance_type)) < 0 ||
	    (r = get_str(c, "productDescription", &v->product_description)) < 0 ||
	    (r = get_str(c, "spotPrice", &v->spot_price)) < 0 ||
	    (r = get_time(c, "timestamp", &v->timestamp)) < 0 ||
	    (r = get_str(c, "availabilityZone", &v->availability_zone)) < 0)
		return r;
	return parse_price(v->spot_price, &v->price);
}

int ec2xml_parse_spot_price_history(int http_status, const char *body, size_t len,
                                    ec2xml_spot_price_history *out, ec2_error *err) {
	static const list_shape shape = { "DescribeSpotPriceHistoryResponse", "spotPriceHistorySet",
					  sizeof(ec2_spot_price), parse_spot_price, true };
	_cleanup_(ec2xml_spot_price_history_done) ec2xml_spot_price_history res = { 0 };
	void *v;
	int r = parse_list(http_status, body, len, &shape, &v, &res.n_items, &res.request_id, &res.next_token, err);

	res.items = v;
	if (r < 0)
		return r;
	*out = res;
	res = (ec2xml_spot_price_history) { 0 };
	return 0;
}

/* ---- acknowledgements ------------------------------------------------------------------------------ */

void ec2xml_ack_done(ec2xml_ack *r) {
	if (!r)
		return;
	free(r->request_id);
	*r = (ec2xml_ack) { 0 };
}

int ec2xml_parse_ack(int http_status, const char *body, size_t len, const char *action, ec2xml_ack *out,
                     ec2_error *err) {
	_cleanup_doc_ xmlDoc *doc = NULL;
	_cleanup_(ec2xml_ack_done) ec2xml_ack res = { .ok = true };
	_cleanup_free_ char *root_name = NULL, *ret = NULL;
	xmlNode *root;
	int r;

	if (!action || !*action) {
		*err = (ec2_error) { .http_status = http_status };
		return -EINVAL;
	}
	if (asprintf(&root_name, "%sResponse", action) < 0) {
		*err = (ec2_error) { .http_status = http_status };
		return -ENOMEM;
	}
	r = begin(http_status, body, len, root_name, &doc, &root, err);
	if (r < 0)
		return r;
	if ((r = get_str(root, "requestId", &res.request_id)) < 0 || (r = get_str(root, "return", &ret)) < 0)
		return r;
	if (ret) {
		trim(ret);
		if (streq(ret, "true"))
			res.ok = true;
		else if (streq(ret, "false"))
			res.ok = false;
		else
			return -EBADMSG;
	}
	*out = res;
	res = (ec2xml_ack) { 0 };
	return 0;
}

/* ---- CreateLaunchTemplateVersion --------------------------------------------------------------------- */

void ec2xml_launch_template_version_done(ec2xml_launch_template_version *r) {
	if (!r)
		return;
	free(r->request_id);
	free(r->launch_template_id);
	free(r->version_number);
	free(r->image_id);
	*r = (ec2xml_launch_template_version) { 0 };
}

int ec2xml_parse_launch_template_version(int http_status, const char *body, size_t len,
                                         ec2xml_launch_template_version *out, ec2_error *err) {
	_cleanup_doc_ xmlDoc *doc = NULL;
	_cleanup_(ec2xml_launch_template_version_done) ec2xml_launch_template_version res = { 0 };
	xmlNode *root, *v;
	int r;

	r = begin(http_status, body, len, "CreateLaunchTemplateVersionResponse", &doc, &root, err);
	if (r < 0)
		return r;
	v = child(root, "launchTemplateVersion");
	if (!v)
		return -EBADMSG;
	if ((r = get_str(root, "requestId", &res.request_id)) < 0 ||
	    (r = get_str(v, "launchTemplateId", &res.launch_template_id)) < 0 ||
	    (r = get_str(v, "versionNumber", &res.version_number)) < 0 ||
	    (r = get_str(child(v, "launchTemplateData"), "imageId", &res.image_id)) < 0)
		return r;
	if (!res.version_number)
		return -EBADMSG;
	trim(res.version_number);
	*out = res;
	res = (ec2xml_launch_template_version) { 0 };
	return 0;
}
