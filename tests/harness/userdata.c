/* userdata.c — what cloud-init would write from #cloud-config user data:
 * the content write_files gives one path, read with libyaml (not string
 * search), for the tests that check shipped user data and for hx_cloud,
 * which boots its hosts from generated user data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "harness.h"

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

int hx_user_data_field(const char *text, size_t len, const char *path, const char *field, char **out) {
	yaml_parser_t parser;
	yaml_document_t doc;
	char *content = NULL;
	int found = 0, r = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(stderr, "user data: not YAML: %s\n", parser.problem ? parser.problem : "?");
		yaml_parser_delete(&parser);
		return -EBADMSG;
	}
	yaml_node_t *wf = map_get(&doc, yaml_document_get_root_node(&doc), "write_files");
	if (!wf || wf->type != YAML_SEQUENCE_NODE)
		r = -EBADMSG;
	for (yaml_node_item_t *i = wf && r == 0 ? wf->data.sequence.items.start : NULL;
	     i && i < wf->data.sequence.items.top && r == 0; i++) {
		yaml_node_t *item = yaml_document_get_node(&doc, *i);
		yaml_node_t *p = map_get(&doc, item, "path"), *c = map_get(&doc, item, field);
		if (!p || p->type != YAML_SCALAR_NODE || strcmp((const char *) p->data.scalar.value, path) != 0)
			continue;
		found++;
		/* Plain text only: an encoded (b64, gzip) content would not be
		 * readable by whoever debugs a node. */
		if (map_get(&doc, item, "encoding") || !c || c->type != YAML_SCALAR_NODE)
			r = -EPROTO;
		else if (!content && !(content = strndup((const char *) c->data.scalar.value, c->data.scalar.length)))
			r = -ENOMEM;
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r == 0 && found != 1)
		r = found == 0 ? -ENOENT : -ENOTUNIQ;
	if (r < 0) {
		fprintf(stderr, "user data: %s %s: %s\n", path, field,
			r == -EBADMSG ? "no write_files sequence"
			: r == -EPROTO ? "encoded, or no plain content"
			: r == -ENOENT ? "not written"
			: r == -ENOTUNIQ ? "written more than once" : strerror(-r));
		free(content);
		return r;
	}
	*out = content;
	return 0;
}

int hx_user_data_file(const char *text, size_t len, const char *path, char **out) {
	return hx_user_data_field(text, len, path, "content", out);
}
