/* apid pgbin: the binary COPY framing the read model is read with. One
 * stream of rows (text, NULL, int2/int4/int8, float8, bool) read whole and
 * split at every byte into two and three chunks gives the same rows; a
 * wrong field count, a truncated stream, a missing trailer, data after it
 * and a foreign signature are errors. The COPY itself is exercised against
 * PostgreSQL by the apid integration tests (every build reads through it). */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module is apid's; unit tests link only libcommon, so compile it in. */
#include "../../apid/pgbin.c"

struct stream {
	char data[1024];
	size_t len;
};

static void put(struct stream *s, const void *p, size_t n)
{
	ck_assert_uint_le(s->len + n, sizeof(s->data));
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void put_be(struct stream *s, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		put(s, &c, 1);
	}
}

static void put_header(struct stream *s, uint32_t ext)
{
	put(s, signature, sizeof(signature));
	put_be(s, 0, 4);
	put_be(s, ext, 4);
	for (uint32_t i = 0; i < ext; i++)
		put(s, "x", 1);
}

static void put_text(struct stream *s, const char *t)
{
	if (!t) {
		put_be(s, 0xffffffffu, 4);
		return;
	}
	put_be(s, strlen(t), 4);
	put(s, t, strlen(t));
}

static void put_double(struct stream *s, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	put_be(s, 8, 4);
	put_be(s, bits, 8);
}

/* Rows of (text id, text or NULL, int2, int4 or NULL, int8, float8, bool). */
#define NF 7
static const struct {
	const char *id, *name;
	int16_t small;
	int32_t mid;
	bool mid_null;
	int64_t big;
	double d;
	int flag;
} rows[] = {
	{"ST001", "강남 충전소", 2, 5000, false, 1700000000, 37.5012345, 1},
	{"ST002", NULL, -3, 0, true, -1, -126.25, 0},
	{"", "", 0, -7, false, INT64_MAX, 0.1, -1},
};

static void put_rows(struct stream *s)
{
	for (size_t r = 0; r < ARRAY_LEN(rows); r++) {
		put_be(s, NF, 2);
		put_text(s, rows[r].id);
		put_text(s, rows[r].name);
		put_be(s, 2, 4);
		put_be(s, (uint16_t)rows[r].small, 2);
		if (rows[r].mid_null) {
			put_be(s, 0xffffffffu, 4);
		} else {
			put_be(s, 4, 4);
			put_be(s, (uint32_t)rows[r].mid, 4);
		}
		put_be(s, 8, 4);
		put_be(s, (uint64_t)rows[r].big, 8);
		put_double(s, rows[r].d);
		if (rows[r].flag < 0) {
			put_be(s, 0xffffffffu, 4);
		} else {
			put_be(s, 1, 4);
			put_be(s, (uint64_t)rows[r].flag, 1);
		}
	}
}

static struct stream good_stream(void)
{
	struct stream s = {.len = 0};
	put_header(&s, 3);
	put_rows(&s);
	put_be(&s, 0xffff, 2);
	return s;
}

struct seen {
	size_t n;
	bool stop_at_second;
};

static bool check_row(void *arg, const struct pgbin_field *f, char *err, size_t errlen)
{
	struct seen *seen = arg;
	size_t r = seen->n++;
	ck_assert_uint_lt(r, ARRAY_LEN(rows));
	ck_assert_str_eq(f[0].data, rows[r].id);
	ck_assert_int_eq(f[0].len, (int32_t)strlen(rows[r].id));
	if (rows[r].name)
		ck_assert_str_eq(f[1].data, rows[r].name);
	else
		ck_assert(f[1].data == NULL && f[1].len == -1);
	int64_t v;
	ck_assert(pgbin_int(&f[2], &v));
	ck_assert_int_eq(v, rows[r].small);
	if (rows[r].mid_null) {
		ck_assert(!pgbin_int(&f[3], &v));
	} else {
		ck_assert(pgbin_int(&f[3], &v));
		ck_assert_int_eq(v, rows[r].mid);
	}
	ck_assert(pgbin_int(&f[4], &v));
	ck_assert_int_eq(v, rows[r].big);
	double d;
	ck_assert(pgbin_float8(&f[5], &d));
	ck_assert(d == rows[r].d);
	ck_assert(!pgbin_float8(&f[2], &d)); /* an int2 is no double */
	ck_assert_int_eq(pgbin_bool(&f[6]), rows[r].flag);
	ck_assert_int_eq(pgbin_bool(&f[0]), -2); /* text, not a boolean */
	if (seen->stop_at_second && r == 1) {
		snprintf(err, errlen, "stopped");
		return false;
	}
	return true;
}

static bool parse_split(const struct stream *s, size_t cut1, size_t cut2, size_t *nrows,
			char *err, size_t errlen, struct seen *seen)
{
	const char *chunks[3] = {s->data, s->data + cut1, s->data + cut2};
	size_t lens[3] = {cut1, cut2 - cut1, s->len - cut2};
	return pgbin_parse_chunks(chunks, lens, 3, NF, check_row, seen, nrows, err, errlen);
}

START_TEST(rows_survive_any_split)
{
	struct stream s = good_stream();
	char err[256] = "";
	for (size_t cut1 = 0; cut1 <= s.len; cut1++) {
		for (size_t cut2 = cut1; cut2 <= s.len; cut2 += 7) {
			struct seen seen = {0, false};
			size_t n = 0;
			ck_assert_msg(parse_split(&s, cut1, cut2, &n, err, sizeof(err), &seen),
				      "cut at %zu, %zu: %s", cut1, cut2, err);
			ck_assert_uint_eq(n, ARRAY_LEN(rows));
			ck_assert_uint_eq(seen.n, ARRAY_LEN(rows));
		}
	}
}
END_TEST

static void expect_error(const struct stream *s, int nfields, const char *want)
{
	char err[256] = "";
	struct seen seen = {0, false};
	const char *chunk = s->data;
	size_t len = s->len;
	ck_assert(!pgbin_parse_chunks(&chunk, &len, 1, nfields, check_row, &seen, NULL, err,
				      sizeof(err)));
	ck_assert_msg(strstr(err, want), "error '%s', expected '%s'", err, want);
}

START_TEST(broken_streams_are_errors)
{
	struct stream s = good_stream();
	expect_error(&s, NF - 1, "COPY row with 7 fields, expected 6");
	struct stream cut = s;
	cut.len -= 2; /* no trailer */
	expect_error(&cut, NF, "ended inside a row");
	cut.len -= 3; /* inside the last row */
	expect_error(&cut, NF, "ended inside a row");
	struct stream head = s;
	head.len = 10;
	expect_error(&head, NF, "ended inside the header");
	struct stream after = s;
	put_be(&after, NF, 2);
	expect_error(&after, NF, "after the trailer");
	struct stream foreign = s;
	foreign.data[0] = 'X';
	expect_error(&foreign, NF, "not a binary COPY stream");
	struct stream negative = {.len = 0};
	put_header(&negative, 0);
	put_be(&negative, 1, 2);
	put_be(&negative, 0xfffffff0u, 4);
	expect_error(&negative, 1, "COPY field of length -16");
	expect_error(&s, PGBIN_MAX_FIELDS + 1, "at most");
}
END_TEST

START_TEST(a_failing_row_stops_the_stream)
{
	struct stream s = good_stream();
	char err[256] = "";
	struct seen seen = {0, true};
	size_t n = 0;
	const char *chunk = s.data;
	ck_assert(!pgbin_parse_chunks(&chunk, &s.len, 1, NF, check_row, &seen, &n, err,
				      sizeof(err)));
	ck_assert_str_eq(err, "stopped");
	ck_assert_uint_eq(seen.n, 2);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_pgbin");
	TCase *tc = tcase_create("framing");
	tcase_add_test(tc, rows_survive_any_split);
	tcase_add_test(tc, broken_streams_are_errors);
	tcase_add_test(tc, a_failing_row_stops_the_stream);
	suite_add_tcase(s, tc);
	return s;
}
