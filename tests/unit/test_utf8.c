/* utf8: strict validation, decoding with maximal-subpart lengths, cutting. */
#include "testmain.h"

#include <string.h>

#include "utf8.h"

static const struct {
	const char *bytes;
	size_t len;
	bool is_valid;
	const char *why;
} validity_cases[] = {
	{"", 0, true, "empty"},
	{"plain ascii", 11, true, "ascii"},
	{"\xea\xb0\x95\xeb\x82\xa8", 6, true, "Hangul 강남"},
	{"\xc2\xa9", 2, true, "2-byte"},
	{"\xf0\x9f\x98\x80", 4, true, "U+1F600, outside the BMP"},
	{"\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF, the last code point"},
	{"\xef\xbf\xbd", 3, true, "U+FFFD itself"},
	{"a\0b", 3, true, "NUL is a character"},
	{"\x80", 1, false, "lone continuation byte"},
	{"\xc0\xaf", 2, false, "overlong '/'"},
	{"\xc1\xbf", 2, false, "overlong 2-byte"},
	{"\xe0\x80\xaf", 3, false, "overlong 3-byte"},
	{"\xf0\x80\x80\xaf", 4, false, "overlong 4-byte"},
	{"\xed\xa0\x80", 3, false, "surrogate U+D800"},
	{"\xed\xbf\xbf", 3, false, "surrogate U+DFFF"},
	{"\xf4\x90\x80\x80", 4, false, "U+110000"},
	{"\xf5\x80\x80\x80", 4, false, "F5 lead"},
	{"\xff", 1, false, "FF"},
	{"\xea\xb0", 2, false, "truncated 3-byte"},
	{"abcdefgh\xea\xb0", 10, false, "truncated after a fast ASCII run"},
	{"abcdefghijklmnop\x80", 17, false, "bad byte after two ASCII words"},
	{"\xf0\x9f\x98", 3, false, "truncated 4-byte"},
	{"\xe2\x28\xa1", 3, false, "bad continuation"},
};

START_TEST(validity)
{
	ck_assert_msg(utf8_valid(validity_cases[_i].bytes, validity_cases[_i].len) ==
			      validity_cases[_i].is_valid,
		      "%s", validity_cases[_i].why);
}
END_TEST

START_TEST(decode_code_points_and_subparts)
{
	uint32_t cp;
	ck_assert_uint_eq(utf8_decode("A", 1, &cp), 1);
	ck_assert_uint_eq(cp, 'A');
	ck_assert_uint_eq(utf8_decode("\xea\xb0\x95", 3, &cp), 3);
	ck_assert_uint_eq(cp, 0xAC15); /* 강 */
	ck_assert_uint_eq(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
	ck_assert_uint_eq(cp, 0x1F600);
	/* maximal subparts: a truncated sequence counts as one unit... */
	ck_assert_uint_eq(utf8_decode("\xf0\x9f\x98" "A", 4, &cp), 3);
	ck_assert_uint_eq(cp, UTF8_INVALID);
	ck_assert_uint_eq(utf8_decode("\xe2\x28\xa1", 3, &cp), 1);
	ck_assert_uint_eq(cp, UTF8_INVALID);
	/* ...a byte that cannot follow the lead ends it at the lead */
	ck_assert_uint_eq(utf8_decode("\xe0\x80\x80", 3, &cp), 1);
	ck_assert_uint_eq(utf8_decode("\xed\xa0\x80", 3, &cp), 1);
	ck_assert_uint_eq(utf8_decode("\xc0\xaf", 2, &cp), 1);
	ck_assert_uint_eq(utf8_decode("\xea\xb0", 2, &cp), 2); /* end of buffer */
	ck_assert_uint_eq(cp, UTF8_INVALID);
}
END_TEST

START_TEST(cut_at_character_boundary)
{
	const char *s = "ab\xea\xb0\x95\xf0\x9f\x98\x80"; /* a b 강 😀 */
	ck_assert_uint_eq(utf8_cut(s, 0), 0);
	ck_assert_uint_eq(utf8_cut(s, 2), 2);
	ck_assert_uint_eq(utf8_cut(s, 3), 2);
	ck_assert_uint_eq(utf8_cut(s, 4), 2);
	ck_assert_uint_eq(utf8_cut(s, 5), 5);
	ck_assert_uint_eq(utf8_cut(s, 6), 5);
	ck_assert_uint_eq(utf8_cut(s, 8), 5);
	ck_assert_uint_eq(utf8_cut(s, 9), 9);
	for (size_t n = 0; n <= 9; n++)
		ck_assert(utf8_valid(s, utf8_cut(s, n)));
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("utf8");
	tcase_add_loop_test(tc, validity, 0, sizeof(validity_cases) / sizeof(validity_cases[0]));
	tcase_add_test(tc, decode_code_points_and_subparts);
	tcase_add_test(tc, cut_at_character_boundary);
	suite_add_tcase(s, tc);
	return s;
}
