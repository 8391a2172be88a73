/* output.c — everything corralctl prints as a result: tables, JSON (two
 * spellings, kept as each command has always printed them), and the
 * result of a change. Errors go to stderr through common.c. */
#include <stdlib.h>

#include "ctl.h"
#include "tree.h"

int ctl_flush(void) {
	return fflush(stdout) == 0 ? 0 : 1;
}

void ctl_print_table(const char *const *header, char *const *rows, size_t n, size_t ncols) {
	_cleanup_free_ size_t *width = calloc(ncols, sizeof *width);

	if (!width)
		return;
	for (size_t j = 0; j < ncols; j++) {
		width[j] = strlen(header[j]);
		for (size_t i = 0; i < n; i++)
			if (strlen(rows[i * ncols + j]) > width[j])
				width[j] = strlen(rows[i * ncols + j]);
	}
	for (size_t i = 0; i <= n; i++) {
		const char *const *cells = i == 0 ? header : (const char *const *) rows + (i - 1) * ncols;
		for (size_t j = 0; j + 1 < ncols; j++)
			printf("%-*s  ", (int) width[j], cells[j]);
		printf("%s\n", cells[ncols - 1]);
	}
}

int ctl_print_rows(const char *const *header, char **rows, size_t n, size_t ncols) {
	bool ok = true;

	for (size_t i = 0; i < n * ncols; i++)
		ok = ok && rows[i];
	if (ok)
		ctl_print_table(header, rows, n, ncols);
	for (size_t i = 0; i < n * ncols; i++)
		free(rows[i]);
	return ok ? ctl_flush() : 1;
}

int ctl_print_json(json_t *v) {
	_cleanup_free_ char *text = tree_format_json(v);

	if (!text)
		return 1;
	fputs(text, stdout);
	return ctl_flush();
}

int ctl_print_json_sorted(json_t *v) {
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
	return ctl_flush();
}

int ctl_report(ctl_t *c, const char *op, const char *key, const char *value, const char *text) {
	if (c->format == FORMAT_JSON) {
		json_auto_t *v = NULL;
		if (value && !(v = json_loads(value, JSON_DECODE_ANY, NULL)))
			v = json_string(value);
		json_auto_t *o = json_pack("{s:s, s:s?, s:O?, s:b}", "op", op, "key", key, "value", v, "dry_run",
					   c->dry_run);
		return o ? ctl_print_json(o) : 1;
	}
	if (text && !c->dry_run)
		printf("%s\n", text);
	return ctl_flush();
}

void ctl_csv_row(FILE *f, const char *const *cells, size_t ncols) {
	for (size_t j = 0; j < ncols; j++) {
		const char *s = cells[j] ?: "";
		if (j > 0)
			fputc(',', f);
		if (!s[strcspn(s, ",\"\r\n")]) {
			fputs(s, f);
			continue;
		}
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	}
	fputs("\r\n", f);
}

int ctl_print_csv(const char *const *header, char **rows, size_t n, size_t ncols) {
	bool ok = true;

	for (size_t i = 0; i < n * ncols; i++)
		ok = ok && rows[i];
	if (ok) {
		ctl_csv_row(stdout, header, ncols);
		for (size_t i = 0; i < n; i++)
			ctl_csv_row(stdout, (const char *const *) rows + i * ncols, ncols);
	}
	for (size_t i = 0; i < n * ncols; i++)
		free(rows[i]);
	return ok ? ctl_flush() : 1;
}

int ctl_print_array(json_t *array, const char *const *header, size_t ncols, void (*fill)(json_t *o, char **cells),
		    bool csv) {
	size_t n = json_array_size(array), i;
	_cleanup_free_ char **cells = calloc(n * ncols + 1, sizeof *cells);
	json_t *o;

	if (!cells)
		return 1;
	json_array_foreach(array, i, o)
		fill(o, cells + i * ncols);
	return csv ? ctl_print_csv(header, cells, n, ncols) : ctl_print_rows(header, cells, n, ncols);
}

char *ctl_field(json_t *o, const char *name) {
	json_t *v = json_object_get(o, name);
	return strdup(json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : "-");
}
