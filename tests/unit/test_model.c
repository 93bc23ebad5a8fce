/* model: charger type, status and region tables (API.md enumerations). */
#include "testmain.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

static const struct {
	const char *code;
	int value;
	const char *name;
} type_cases[] = {
	{"01", 1, "DC_FAST"},   {"02", 2, "AC_SLOW"},     {"03", 3, "DC_AC_3PHASE"},
	{"04", 4, "DC_COMBO"},  {"05", 5, "DC_DC_COMBO"}, {"06", 6, "DC_AC_DC_COMBO"},
	{"07", 7, "AC_3PHASE"}, {"08", 8, "TYPE_08"},     {"10", 10, "TYPE_10"},
	{"89", 89, "TYPE_89"},  {"99", 99, "TYPE_99"},    {"4", 4, "DC_COMBO"},
};

START_TEST(type_codes_both_ways)
{
	int code = -1;
	const char *text = type_cases[_i].code;
	ck_assert_msg(model_type_parse(text, strlen(text), &code), "%s refused", text);
	ck_assert_int_eq(code, type_cases[_i].value);
	ck_assert_str_eq(model_type_name(code), type_cases[_i].name);
	int back = -1;
	ck_assert(model_type_from_name(type_cases[_i].name, &back));
	ck_assert_int_eq(back, code);
}
END_TEST

START_TEST(type_codes_refused)
{
	static const char *const bad[] = {"", "00", "0", "100", "A1", " 1", "1 ", "-1", "+1", "0x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int code = -1;
		ck_assert_msg(!model_type_parse(bad[i], strlen(bad[i]), &code), "'%s' accepted",
			      bad[i]);
		ck_assert_int_eq(code, -1);
	}
	ck_assert(!model_type_parse(NULL, 2, &(int){0}));
	ck_assert_ptr_null(model_type_name(0));
	ck_assert_ptr_null(model_type_name(100));
	ck_assert_ptr_null(model_type_name(-4));
	/* names: canonical spellings only */
	static const char *const bad_names[] = {"dc_combo", "TYPE_04", "TYPE_7", "TYPE_100",
						"TYPE_", "", "DC COMBO", "TYPE_0A"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		int code = -1;
		ck_assert_msg(!model_type_from_name(bad_names[i], &code), "'%s' accepted",
			      bad_names[i]);
	}
	ck_assert(!model_type_from_name(NULL, &(int){0}));
}
END_TEST

/* Every code 1..99 has a distinct name that maps back to it. */
START_TEST(type_names_total_and_distinct)
{
	for (int c = 1; c <= MODEL_TYPE_MAX; c++) {
		const char *name = model_type_name(c);
		ck_assert_ptr_nonnull(name);
		int back = 0;
		ck_assert_msg(model_type_from_name(name, &back), "%s", name);
		ck_assert_int_eq(back, c);
		if (c > MODEL_TYPE_KNOWN_MAX) {
			char want[16];
			snprintf(want, sizeof(want), "TYPE_%02d", c);
			ck_assert_str_eq(name, want);
			ck_assert_ptr_null(model_type_label(c));
		} else {
			ck_assert_ptr_nonnull(model_type_label(c));
		}
	}
	ck_assert_str_eq(model_type_label(MODEL_TYPE_DC_COMBO), "DC콤보");
}
END_TEST

START_TEST(status_codes)
{
	static const struct {
		const char *text;
		int code;
		const char *name;
	} cases[] = {
		{"1", 1, "COMMUNICATION_ERROR"}, {"2", 2, "STANDBY"},
		{"3", 3, "CHARGING_IN_PROGRESS"}, {"4", 4, "OPERATION_SUSPENDED"},
		{"5", 5, "UNDER_INSPECTION"},     {"9", 9, "STATUS_UNKNOWN"},
		{"0", 9, "STATUS_UNKNOWN"},       {"6", 9, "STATUS_UNKNOWN"},
		{"02", 2, "STANDBY"},             {"77", 9, "STATUS_UNKNOWN"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int code = -1;
		ck_assert_msg(model_status_parse(cases[i].text, strlen(cases[i].text), &code), "%s",
			      cases[i].text);
		ck_assert_int_eq(code, cases[i].code);
		ck_assert_str_eq(model_status_name(code), cases[i].name);
	}
	static const char *const bad[] = {"", "x", "1a", "123", " 2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert(!model_status_parse(bad[i], strlen(bad[i]), &(int){0}));
	ck_assert_str_eq(model_status_name(42), "STATUS_UNKNOWN");
	int code = 0;
	ck_assert(model_status_from_name("CHARGING_IN_PROGRESS", &code));
	ck_assert_int_eq(code, MODEL_STATUS_CHARGING_IN_PROGRESS);
	ck_assert(model_status_from_name("STANDBY", &code));
	ck_assert_int_eq(code, MODEL_STATUS_STANDBY);
	ck_assert(!model_status_from_name("standby", &code));
	ck_assert(!model_status_from_name("FREE", &code));
}
END_TEST

START_TEST(quick_threshold)
{
	ck_assert(!model_is_quick(7));
	ck_assert(!model_is_quick(49.99));
	ck_assert(model_is_quick(50));
	ck_assert(model_is_quick(MODEL_QUICK_KW));
	ck_assert(model_is_quick(200));
	ck_assert(!model_is_quick(NAN));
	ck_assert(!model_is_quick(0));
	ck_assert(!model_is_quick(-50));
}
END_TEST

/* The API's region list: 17 regions in its order, with their codes. */
START_TEST(regions_table)
{
	static const struct {
		const char *slug;
		int zcode;
		int zcode_previous;
		const char *name_ko;
	} want[] = {
		{"seoul", 11, 0, "서울특별시"},         {"incheon", 28, 0, "인천광역시"},
		{"gwangju", 29, 0, "광주광역시"},       {"daegu", 27, 0, "대구광역시"},
		{"ulsan", 31, 0, "울산광역시"},         {"daejeon", 30, 0, "대전광역시"},
		{"busan", 26, 0, "부산광역시"},         {"gyeonggi", 41, 0, "경기도"},
		{"gangwon", 51, 42, "강원특별자치도"},  {"chungnam", 44, 0, "충청남도"},
		{"chungbuk", 43, 0, "충청북도"},        {"gyeongbuk", 47, 0, "경상북도"},
		{"gyeongnam", 48, 0, "경상남도"},       {"jeonbuk", 52, 45, "전북특별자치도"},
		{"jeonnam", 46, 0, "전라남도"},         {"jeju", 50, 0, "제주특별자치도"},
		{"sejong", 36, 0, "세종특별자치시"},
	};
	ck_assert_uint_eq(model_region_count(), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < model_region_count(); i++) {
		const struct model_region *r = model_region_at(i);
		ck_assert_ptr_nonnull(r);
		ck_assert_str_eq(r->slug, want[i].slug);
		ck_assert_int_eq(r->zcode, want[i].zcode);
		ck_assert_int_eq(r->zcode_previous, want[i].zcode_previous);
		ck_assert_str_eq(r->name_ko, want[i].name_ko);
		ck_assert_uint_eq(model_region_index(r), i);
		/* inside South Korea's bounding box */
		ck_assert(r->latitude > 33.0 && r->latitude < 38.7);
		ck_assert(r->longitude > 124.5 && r->longitude < 131.0);
		ck_assert_ptr_eq(model_region_by_slug(r->slug), r);
		ck_assert_ptr_eq(model_region_by_name(r->name_ko), r);
		ck_assert_ptr_eq(model_region_by_zcode(r->zcode), r);
	}
	ck_assert_ptr_null(model_region_at(model_region_count()));
}
END_TEST

START_TEST(region_lookups)
{
	/* both codes of the provinces that changed status */
	ck_assert_str_eq(model_region_by_zcode(42)->slug, "gangwon");
	ck_assert_str_eq(model_region_by_zcode(51)->slug, "gangwon");
	ck_assert_str_eq(model_region_by_zcode(45)->slug, "jeonbuk");
	ck_assert_str_eq(model_region_by_zcode(52)->slug, "jeonbuk");
	ck_assert_str_eq(model_region_by_zcode(36)->slug, "sejong");
	ck_assert_str_eq(model_region_by_zcode_text("26", 2)->slug, "busan");
	ck_assert_str_eq(model_region_by_zcode_text("11", 2)->name_ko, "서울특별시");
	ck_assert_ptr_null(model_region_by_zcode_text("1", 1));
	ck_assert_ptr_null(model_region_by_zcode_text("1a", 2));
	ck_assert_ptr_null(model_region_by_zcode_text("99", 2));
	ck_assert_ptr_null(model_region_by_zcode(0));
	ck_assert_ptr_null(model_region_by_zcode(12));
	ck_assert_ptr_null(model_region_by_zcode(-11));
	ck_assert_str_eq(model_region_by_slug("Seoul")->slug, "seoul");
	ck_assert_str_eq(model_region_by_slug("JEJU")->slug, "jeju");
	ck_assert_ptr_null(model_region_by_slug("all"));
	ck_assert_ptr_null(model_region_by_slug(""));
	ck_assert_ptr_null(model_region_by_slug(NULL));
	ck_assert_ptr_null(model_region_by_slug("seoul "));
	ck_assert_ptr_null(model_region_by_name("서울"));
	ck_assert_ptr_null(model_region_by_name(NULL));
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("types");
	tcase_add_loop_test(tc, type_codes_both_ways, 0, sizeof(type_cases) / sizeof(type_cases[0]));
	tcase_add_test(tc, type_codes_refused);
	tcase_add_test(tc, type_names_total_and_distinct);
	suite_add_tcase(s, tc);
	tc = tcase_create("status");
	tcase_add_test(tc, status_codes);
	tcase_add_test(tc, quick_threshold);
	suite_add_tcase(s, tc);
	tc = tcase_create("regions");
	tcase_add_test(tc, regions_table);
	tcase_add_test(tc, region_lookups);
	suite_add_tcase(s, tc);
	return s;
}
