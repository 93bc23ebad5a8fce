/* pgx_copy_escape: the text COPY format's field escaping, alone (no server). */
#include "testmain.h"

#include <stdlib.h>
#include <string.h>

#include "pgx.h"

static const struct {
	const char *name;
	const char *in;
	size_t in_len; /* 0: strlen(in) */
	const char *out;
} cases[] = {
	{ "empty", "", 0, "" },
	{ "plain", "plain text 123", 0, "plain text 123" },
	{ "backslash", "a\\b", 0, "a\\\\b" },
	{ "tab newline cr", "\t\n\r", 0, "\\t\\n\\r" },
	{ "crlf inside", "line1\r\nline2", 0, "line1\\r\\nline2" },
	{ "literal \\N is not NULL", "\\N", 0, "\\\\N" },
	{ "end-of-data marker", "\\.", 0, "\\\\." },
	{ "trailing backslash", "abc\\", 0, "abc\\\\" },
	{ "korean", "서울 강남구 테헤란로 1", 0, "서울 강남구 테헤란로 1" },
	{ "outside the BMP", "\xf0\x9f\x94\x8c plug", 0, "\xf0\x9f\x94\x8c plug" },
	{ "other controls pass", "\b\f\v\x01\x1f\x7f", 0, "\b\f\v\x01\x1f\x7f" },
	{ "quotes pass", "\"'`", 0, "\"'`" },
	{ "mixed", "a\tb\\c\nd", 0, "a\\tb\\\\c\\nd" },
};

START_TEST(table)
{
	const char *in = cases[_i].in;
	size_t len = cases[_i].in_len ? cases[_i].in_len : strlen(in);
	char *out = malloc(2 * len + 1);
	ck_assert_ptr_nonnull(out);
	size_t n = pgx_copy_escape(in, len, out);
	ck_assert_msg(n != PGX_COPY_BAD_BYTE, "%s: refused", cases[_i].name);
	out[n] = '\0';
	ck_assert_msg(n == strlen(cases[_i].out) && memcmp(out, cases[_i].out, n) == 0,
		      "%s: got '%s' want '%s'", cases[_i].name, out, cases[_i].out);
	free(out);
}
END_TEST

START_TEST(nul_refused)
{
	static const char in[] = { 'a', '\0', 'b' };
	char out[8];
	ck_assert(pgx_copy_escape(in, sizeof(in), out) == PGX_COPY_BAD_BYTE);
	ck_assert(pgx_copy_escape("\0", 1, out) == PGX_COPY_BAD_BYTE);
}
END_TEST

/* The worst case is exactly 2x: the documented output bound holds. */
START_TEST(worst_case_size)
{
	char in[300], out[600];
	memset(in, '\\', sizeof(in));
	ck_assert_uint_eq(pgx_copy_escape(in, sizeof(in), out), 600);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = "\t\n\r\\"[i % 4];
	ck_assert_uint_eq(pgx_copy_escape(in, sizeof(in), out), 600);
}
END_TEST

/* The server's text-format decoding of one field (the subset we emit plus
 * the escapes it would also accept), to prove a round trip. */
static size_t unescape(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\\') {
			out[o++] = in[i];
			continue;
		}
		ck_assert_msg(i + 1 < len, "dangling backslash");
		switch (in[++i]) {
		case '\\': out[o++] = '\\'; break;
		case 't': out[o++] = '\t'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		default: ck_abort_msg("unexpected escape \\%c", in[i]);
		}
	}
	return o;
}

/* Every byte 1..255, in every position: the output never holds a raw
 * delimiter (tab, newline, CR) and decodes to the input. */
START_TEST(all_bytes_round_trip)
{
	char in[255 * 3], out[2 * sizeof(in)], back[sizeof(in)];
	size_t len = 0;
	for (int c = 1; c <= 255; c++) {
		in[len++] = 'x';
		in[len++] = (char)c;
		in[len++] = (char)(256 - c);
	}
	size_t n = pgx_copy_escape(in, len, out);
	ck_assert(n != PGX_COPY_BAD_BYTE);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(out[i] != '\t' && out[i] != '\n' && out[i] != '\r',
			      "raw delimiter at %zu", i);
	size_t m = unescape(out, n, back);
	ck_assert_uint_eq(m, len);
	ck_assert(memcmp(back, in, len) == 0);
}
END_TEST

/* Escaping a string in pieces equals escaping it whole (pgx_copy_field
 * escapes in buffer-sized pieces). */
START_TEST(piecewise_equals_whole)
{
	static const char text[] = "ab\\\tc\n\rd 한글\\\\e\tf";
	size_t len = sizeof(text) - 1;
	char whole[2 * sizeof(text)], pieces[2 * sizeof(text)];
	size_t whole_len = pgx_copy_escape(text, len, whole);
	for (size_t split = 0; split <= len; split++) {
		size_t a = pgx_copy_escape(text, split, pieces);
		size_t b = pgx_copy_escape(text + split, len - split, pieces + a);
		ck_assert_uint_eq(a + b, whole_len);
		ck_assert(memcmp(pieces, whole, whole_len) == 0);
	}
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("pgx_copy");
	TCase *tc = tcase_create("escape");
	tcase_add_loop_test(tc, table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, nul_refused);
	tcase_add_test(tc, worst_case_size);
	tcase_add_test(tc, all_bytes_round_trip);
	tcase_add_test(tc, piecewise_equals_whole);
	suite_add_tcase(s, tc);
	return s;
}
