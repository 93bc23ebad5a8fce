/* apid params: strict query-string parsing, one message per refusal that
 * names the parameter and the reason. */
#include "testmain.h"

#include <string.h>

/* The module is apid's; unit tests link only libcommon, so compile it in. */
#include "../../apid/params.c"

static struct params parse_ok(const char *query)
{
	struct params p;
	struct param_error err = {{0}};
	ck_assert_msg(params_parse(&p, query, strlen(query), &err), "%s: %s", query, err.text);
	return p;
}

static void parse_fails(const char *query, const char *message)
{
	struct params p;
	struct param_error err = {{0}};
	ck_assert_msg(!params_parse(&p, query, strlen(query), &err), "%s parsed", query);
	ck_assert_msg(strstr(err.text, message), "%s: got '%s', want '%s'", query, err.text,
		      message);
	params_free(&p);
}

START_TEST(decoding)
{
	struct params p = parse_ok("q=%EA%B0%95%EB%82%A8+%EC%97%AD&a=&b&&c=1%2C2");
	ck_assert_uint_eq(p.count, 4);
	ck_assert_str_eq(p.items[0].name, "q");
	ck_assert_str_eq(p.items[0].value, "강남 역");
	ck_assert_str_eq(p.items[1].value, "");
	ck_assert_str_eq(p.items[2].name, "b");
	ck_assert_str_eq(p.items[2].value, "");
	ck_assert_str_eq(p.items[3].value, "1,2");
	params_free(&p);
	p = parse_ok("");
	ck_assert_uint_eq(p.count, 0);
	params_free(&p);
	params_free(NULL);

	parse_fails("q=%E", "q: malformed percent-encoding");
	parse_fails("q=%zz", "q: malformed percent-encoding");
	parse_fails("q=%ff%fe", "q: not valid UTF-8");
	parse_fails("q=a%00b", "q: contains a control character");
	parse_fails("q=a%0Ab", "q: contains a control character");
	parse_fails("=1", "query: invalid parameter name");
	char many[PARAMS_MAX * 4 + 16] = "";
	for (int i = 0; i <= PARAMS_MAX; i++)
		strcat(many, "a=1&");
	parse_fails(many, "more than 64 parameters");
}
END_TEST

static const struct {
	const char *text;
	bool ok;
	double value;
} decimals[] = {
	{"37.5", true, 37.5},
	{"-12", true, -12},
	{"50.00", true, 50},
	{"0", true, 0},
	{"007.10", true, 7.1},
	{"1e3", false, 0},
	{"0x10", false, 0},
	{"inf", false, 0},
	{"nan", false, 0},
	{" 1", false, 0},
	{"1 ", false, 0},
	{"+1", false, 0},
	{".5", false, 0},
	{"5.", false, 0},
	{"", false, 0},
	{"-", false, 0},
	{"1.2.3", false, 0},
	{"1,5", false, 0},
	{"123456789012345678901234567890123", false, 0},
};

/* Regression (fuzz_params): names without '=' need two NULs each; the
 * storage once held only one per pair and "a&b&c&d" wrote past it (SAN). */
START_TEST(names_without_values)
{
	struct params p = parse_ok("a&b&c&d");
	ck_assert_uint_eq(p.count, 4);
	ck_assert_str_eq(p.items[3].name, "d");
	ck_assert_str_eq(p.items[3].value, "");
	params_free(&p);
	char many[2 * PARAMS_MAX];
	for (int i = 0; i < PARAMS_MAX; i++)
		many[2 * i] = 'x', many[2 * i + 1] = '&';
	many[2 * PARAMS_MAX - 1] = 0;
	p = parse_ok(many);
	ck_assert_uint_eq(p.count, PARAMS_MAX);
	ck_assert_str_eq(p.items[PARAMS_MAX - 1].value, "");
	params_free(&p);
}
END_TEST

START_TEST(decimal_rules)
{
	double v = -1;
	bool ok = params_parse_decimal(decimals[_i].text, strlen(decimals[_i].text), &v);
	ck_assert_msg(ok == decimals[_i].ok, "'%s'", decimals[_i].text);
	if (ok)
		ck_assert_double_eq(v, decimals[_i].value);
}
END_TEST

START_TEST(numbers_and_ranges)
{
	struct params p = parse_ok("latitude=37.5&latitudeDelta=0&lng=abc&twice=1&twice=2&page=3"
				   "&big=99999999999&limit=1.5");
	struct param_error err = {{0}};
	double d = 0;
	long n = 0;
	ck_assert_int_eq(params_number(&p, "latitude", -90, 90, false, &d, &err), PARAM_OK);
	ck_assert_double_eq(d, 37.5);
	ck_assert_int_eq(params_number(&p, "missing", -90, 90, false, &d, &err), PARAM_MISSING);
	ck_assert_int_eq(params_number(&p, "latitudeDelta", 0, 10, true, &d, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "latitudeDelta: 0 is out of range; expected a number greater "
				   "than 0 and at most 10");
	ck_assert_int_eq(params_number(&p, "lng", -180, 180, false, &d, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "lng: 'abc' is not a number");
	ck_assert_int_eq(params_number(&p, "twice", 0, 10, false, &d, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "twice: given more than once");
	ck_assert_int_eq(params_integer(&p, "page", 1, 1000000, &n, &err), PARAM_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(params_integer(&p, "big", 1, 1000000, &n, &err), PARAM_BAD);
	ck_assert_int_eq(params_integer(&p, "limit", 1, 100, &n, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "limit: '1.5' is not an integer");
	params_free(&p);
}
END_TEST

START_TEST(lists)
{
	struct params p = parse_ok("scope=stationId&scope=address,latitude&empty=&bad=a,,b"
				   "&companyNames=%ED%99%98%EA%B2%BD%EB%B6%80");
	struct param_error err = {{0}};
	struct param_list list;
	ck_assert_int_eq(params_list(&p, "scope", &list, &err), PARAM_OK);
	ck_assert_uint_eq(list.count, 3);
	ck_assert_str_eq(list.items[0], "stationId");
	ck_assert_str_eq(list.items[2], "latitude");
	param_list_free(&list);
	ck_assert_int_eq(params_list(&p, "empty", &list, &err), PARAM_OK);
	ck_assert_uint_eq(list.count, 0);
	param_list_free(&list);
	ck_assert_int_eq(params_list(&p, "nope", &list, &err), PARAM_MISSING);
	ck_assert_int_eq(params_list(&p, "bad", &list, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "bad: empty item in the list");
	ck_assert_int_eq(params_list(&p, "companyNames", &list, &err), PARAM_OK);
	ck_assert_str_eq(list.items[0], "환경부");
	param_list_free(&list);
	params_free(&p);

	char query[2048] = "ids=";
	for (int i = 0; i <= PARAM_LIST_MAX; i++)
		strcat(query, i ? ",x" : "x");
	p = parse_ok(query);
	ck_assert_int_eq(params_list(&p, "ids", &list, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "ids: more than 100 values");
	params_free(&p);
}
END_TEST

START_TEST(text_lengths_count_characters)
{
	char query[1024] = "q=";
	for (int i = 0; i < PARAM_TEXT_MAX; i++)
		strcat(query, "%EA%B0%95"); /* 100 x 강: 300 bytes, 100 characters */
	struct params p = parse_ok(query);
	struct param_error err = {{0}};
	const char *q = NULL;
	ck_assert_int_eq(params_text(&p, "q", PARAM_TEXT_MAX, &q, &err), PARAM_OK);
	ck_assert_uint_eq(strlen(q), 300);
	params_free(&p);
	strcat(query, "a");
	p = parse_ok(query);
	ck_assert_int_eq(params_text(&p, "q", PARAM_TEXT_MAX, &q, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "q: longer than 100 characters");
	params_free(&p);
	p = parse_ok("q=");
	ck_assert_int_eq(params_text(&p, "q", PARAM_TEXT_MAX, &q, &err), PARAM_BAD);
	ck_assert_str_eq(err.text, "q: must not be empty");
	params_free(&p);
}
END_TEST

START_TEST(path_segments)
{
	char out[16];
	ck_assert(params_decode_segment("ME174003", 8, out, sizeof(out)));
	ck_assert_str_eq(out, "ME174003");
	ck_assert(params_decode_segment("a%20b", 5, out, sizeof(out)));
	ck_assert_str_eq(out, "a b");
	ck_assert(!params_decode_segment("a%2", 3, out, sizeof(out)));
	ck_assert(!params_decode_segment("%00", 3, out, sizeof(out)));
	ck_assert(!params_decode_segment("%ff", 3, out, sizeof(out)));
	ck_assert(!params_decode_segment("", 0, out, sizeof(out)));
	ck_assert(!params_decode_segment("0123456789abcdef", 16, out, sizeof(out)));
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_params");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, decoding);
	tcase_add_test(tc, names_without_values);
	tcase_add_loop_test(tc, decimal_rules, 0, (int)(sizeof(decimals) / sizeof(decimals[0])));
	tcase_add_test(tc, numbers_and_ranges);
	tcase_add_test(tc, lists);
	tcase_add_test(tc, text_lengths_count_characters);
	tcase_add_test(tc, path_segments);
	suite_add_tcase(s, tc);
	return s;
}
