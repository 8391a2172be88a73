/* csv-test.h — an RFC 4180 reader for the tests of corralctl's CSV
 * output (hosts, scale simulate): written apart from the writer
 * (src/corralctl/output.c) so a quoting slip on either side shows. Header-
 * only, like etcd-test.h. */
#pragma once

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* RFC 4180: records of fields; quoted fields may hold commas, CR, LF and
 * doubled quotes; records end in CRLF (a lone LF accepted). Returns an
 * array of arrays of strings; fails the test on a malformed quote. */
static inline json_t *csv_parse(const char *s) {
	json_t *rows = json_array(), *row = json_array();
	char *field = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&field, &len);

	cr_assert_not_null(f);
	while (*s) {
		if (*s == '"' && ftell(f) == 0) {
			for (s++;; s++) {
				cr_assert(*s, "unterminated quoted field");
				if (*s == '"' && s[1] == '"')
					fputc(*s++, f);
				else if (*s == '"')
					break;
				else
					fputc(*s, f);
			}
			s++;
			cr_assert(*s == ',' || *s == '\r' || *s == '\n' || !*s, "text after a closing quote: %s", s);
			continue;
		}
		if (*s == ',' || *s == '\r' || *s == '\n') {
			fflush(f);
			json_array_append_new(row, json_stringn(field, len));
			rewind(f);
			fflush(f);
			len = 0;
			if (*s == '\r') {
				cr_assert_eq(s[1], '\n', "CR without LF");
				s++;
			}
			if (*s == '\n') {
				json_array_append_new(rows, row);
				row = json_array();
			}
			s++;
			continue;
		}
		cr_assert_neq(*s, '"', "a quote inside an unquoted field");
		fputc(*s++, f);
	}
	fclose(f);
	free(field);
	cr_assert_eq(json_array_size(row), 0, "the last record has no line end");
	json_decref(row);
	return rows;
}

/* The column named name in the header (row 0), as an index. */
static inline size_t csv_column(json_t *csv, const char *name) {
	json_t *h;
	size_t i;
	json_array_foreach(json_array_get(csv, 0), i, h)
		if (strcmp(json_string_value(h), name) == 0)
			return i;
	cr_assert_fail("no CSV column %s", name);
	return 0;
}
