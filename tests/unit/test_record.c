/* record: normalization and validation, one rule per case, plus the dirty
 * page fixture (tests/data/upstream/dirty.json) item by item. */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kst.h"
#include "model.h"
#include "record.h"
#include "upstream.h"

/* A valid master item; cases override or drop fields. */
static const char *const base_item[][2] = {
	{"statId", "ME000001"}, {"chgerId", "01"},   {"statNm", "서울 시청"},
	{"chgerType", "04"},    {"lat", "37.5665"},  {"lng", "126.978"},
	{"stat", "2"},          {"statUpdDt", "20240601120000"},
	{"output", "50"},       {"parkingFree", "Y"}, {"zcode", "11"},
};

struct field_case {
	const char *key;
	int type;          /* enum record_json; 0 = drop the key */
	const char *value; /* NULL: no text */
	size_t len;        /* 0: strlen */
};

static void build(struct record_raw *raw, const struct field_case *over, size_t nover)
{
	record_raw_reset(raw);
	for (size_t i = 0; i < sizeof(base_item) / sizeof(base_item[0]); i++) {
		bool replaced = false;
		for (size_t j = 0; j < nover && over[j].key; j++)
			replaced |= strcmp(over[j].key, base_item[i][0]) == 0;
		if (!replaced)
			record_raw_add(raw, base_item[i][0], strlen(base_item[i][0]),
				       RECORD_JSON_STRING, base_item[i][1], strlen(base_item[i][1]));
	}
	for (size_t j = 0; j < nover && over[j].key; j++) {
		if (!over[j].type)
			continue;
		size_t len = over[j].len ? over[j].len : over[j].value ? strlen(over[j].value) : 0;
		record_raw_add(raw, over[j].key, strlen(over[j].key), over[j].type, over[j].value, len);
	}
}

static const struct {
	const char *name;
	struct field_case over[3];
	enum record_reason reason;
	const char *field; /* the field a reject names, or one to check */
	const char *text;  /* its normalized text (NULL: absent) when accepted */
} cases[] = {
	{"valid", {{0}}, RECORD_OK, "statNm", "서울 시청"},
	{"padded", {{"statNm", RECORD_JSON_STRING, "  \xE3\x80\x80서울\t ", 0}}, RECORD_OK, "statNm", "서울"},
	{"empty is absent", {{"addr", RECORD_JSON_STRING, "   ", 0}}, RECORD_OK, "addr", NULL},
	{"null is absent", {{"addr", RECORD_JSON_NULL, NULL, 0}}, RECORD_OK, "addr", NULL},
	{"number as JSON number", {{"lat", RECORD_JSON_NUMBER, "37.5", 0}, {"lng", RECORD_JSON_NUMBER, "127", 0}}, RECORD_OK, "lat", "37.5"},
	{"swapped repaired", {{"lat", RECORD_JSON_STRING, "126.978", 0}, {"lng", RECORD_JSON_STRING, "37.5665", 0}}, RECORD_OK, "lng", "126.978"},
	{"unknown type kept", {{"chgerType", RECORD_JSON_STRING, "99", 0}}, RECORD_OK, "chgerType", "99"},
	{"one-digit type", {{"chgerType", RECORD_JSON_NUMBER, "7", 0}}, RECORD_OK, "chgerType", "07"},
	{"unknown stat is 9", {{"stat", RECORD_JSON_STRING, "6", 0}}, RECORD_OK, "stat", "9"},
	{"output number", {{"output", RECORD_JSON_NUMBER, "100.0", 0}}, RECORD_OK, "output", "100"},
	{"output empty", {{"output", RECORD_JSON_STRING, "", 0}}, RECORD_OK, "output", NULL},
	{"flag lowercase", {{"parkingFree", RECORD_JSON_STRING, "n", 0}}, RECORD_OK, "parkingFree", "N"},
	{"outside BMP", {{"statNm", RECORD_JSON_STRING, "충전 \xF0\x9F\x94\x8C", 0}}, RECORD_OK, "statNm", "충전 \xF0\x9F\x94\x8C"},
	{"unknown key kept", {{"brandNew", RECORD_JSON_STRING, "x", 0}}, RECORD_OK, "statId", "ME000001"},
	{"zero coords", {{"lat", RECORD_JSON_STRING, "0", 0}, {"lng", RECORD_JSON_STRING, "0", 0}}, RECORD_BAD_COORD, "lat", NULL},
	{"empty coords", {{"lat", RECORD_JSON_STRING, "", 0}, {"lng", RECORD_JSON_STRING, "", 0}}, RECORD_BAD_COORD, "lat", NULL},
	{"absent lng", {{"lng", 0, NULL, 0}}, RECORD_BAD_COORD, "lng", NULL},
	{"coords not numbers", {{"lat", RECORD_JSON_STRING, "37.5N", 0}}, RECORD_BAD_COORD, "lat", NULL},
	{"outside korea", {{"lat", RECORD_JSON_STRING, "35.6", 0}, {"lng", RECORD_JSON_STRING, "139.7", 0}}, RECORD_COORD_OUTSIDE, "lat", NULL},
	{"missing statId", {{"statId", 0, NULL, 0}}, RECORD_MISSING, "statId", NULL},
	{"blank chgerId", {{"chgerId", RECORD_JSON_STRING, " ", 0}}, RECORD_MISSING, "chgerId", NULL},
	{"bad statId", {{"statId", RECORD_JSON_STRING, "ME-0001", 0}}, RECORD_BAD_ID, "statId", NULL},
	{"bad type code", {{"chgerType", RECORD_JSON_STRING, "A1", 0}}, RECORD_BAD_CODE, "chgerType", NULL},
	{"type zero", {{"chgerType", RECORD_JSON_STRING, "00", 0}}, RECORD_BAD_CODE, "chgerType", NULL},
	{"bad date format", {{"statUpdDt", RECORD_JSON_STRING, "2023-06-01 12:30:00", 0}}, RECORD_BAD_DATE, "statUpdDt", NULL},
	{"impossible date", {{"statUpdDt", RECORD_JSON_STRING, "20231345256199", 0}}, RECORD_BAD_DATE, "statUpdDt", NULL},
	{"short date", {{"lastTsdt", RECORD_JSON_STRING, "202306011230", 0}}, RECORD_BAD_DATE, "lastTsdt", NULL},
	{"invalid utf8", {{"statNm", RECORD_JSON_STRING, "a\xC3\x28\xFF", 0}}, RECORD_BAD_UTF8, "statNm", NULL},
	{"nul in text", {{"addr", RECORD_JSON_STRING, "a\0b", 3}}, RECORD_BAD_TEXT, "addr", NULL},
	{"object for text", {{"addr", RECORD_JSON_CONTAINER, NULL, 0}}, RECORD_BAD_TYPE, "addr", NULL},
	{"bool for text", {{"statNm", RECORD_JSON_BOOL, "true", 0}}, RECORD_BAD_TYPE, "statNm", NULL},
	{"bad flag", {{"limitYn", RECORD_JSON_STRING, "maybe", 0}}, RECORD_BAD_FLAG, "limitYn", NULL},
	{"bad output", {{"output", RECORD_JSON_STRING, "fast", 0}}, RECORD_BAD_NUMBER, "output", NULL},
	{"bad zscode", {{"zscode", RECORD_JSON_STRING, "1114", 0}}, RECORD_BAD_CODE, "zscode", NULL},
	{"bad year", {{"year", RECORD_JSON_STRING, "20x0", 0}}, RECORD_BAD_NUMBER, "year", NULL},
};

START_TEST(rules)
{
	struct record_raw raw;
	struct record rec;
	record_raw_init(&raw);
	record_init(&rec);
	build(&raw, cases[_i].over, 3);
	enum record_reason why = record_normalize(&raw, RECORD_MASTER, &rec);
	ck_assert_msg(why == cases[_i].reason, "%s: %s (%s), want %s", cases[_i].name,
		      record_reason_code(why), rec.detail, record_reason_code(cases[_i].reason));
	int field = record_field_lookup(cases[_i].field, strlen(cases[_i].field));
	ck_assert_int_ge(field, 0);
	if (why == RECORD_OK) {
		if (cases[_i].text)
			ck_assert_msg(rec.text[field] && strcmp(rec.text[field], cases[_i].text) == 0,
				      "%s: '%s', want '%s'", cases[_i].name,
				      rec.text[field] ? rec.text[field] : "(null)", cases[_i].text);
		else
			ck_assert_ptr_null(rec.text[field]);
	} else {
		ck_assert_msg(rec.reason_field == field, "%s: reject names %d, want %d (%s)",
			      cases[_i].name, rec.reason_field, field, rec.detail);
		ck_assert_ptr_nonnull(strstr(rec.detail, cases[_i].field));
	}
	record_free(&rec);
	record_raw_free(&raw);
}
END_TEST

START_TEST(typed_values)
{
	struct record_raw raw;
	struct record rec;
	record_raw_init(&raw);
	record_init(&rec);
	const struct field_case swap[] = {{"lat", RECORD_JSON_STRING, "126.978", 0},
					  {"lng", RECORD_JSON_STRING, "37.5665", 0}};
	build(&raw, swap, 2);
	ck_assert_int_eq(record_normalize(&raw, RECORD_MASTER, &rec), RECORD_OK);
	ck_assert(rec.coord_swapped);
	ck_assert(rec.lat == 37.5665 && rec.lng == 126.978);
	ck_assert_int_eq(rec.chger_type, 4);
	ck_assert_int_eq(rec.stat, MODEL_STATUS_STANDBY);
	ck_assert(rec.has_output && rec.output_kw == 50);
	ck_assert_int_eq(rec.zcode, 11);
	ck_assert_int_eq(rec.flag[RFL_PARKING_FREE], 1);
	ck_assert_int_eq(rec.flag[RFL_LIMIT], -1);
	time_t t;
	ck_assert(kst_parse("20240601120000", &t));
	ck_assert(rec.has_time[RT_STAT_UPD] && rec.time[RT_STAT_UPD] == t);
	ck_assert(!rec.has_time[RT_NOW_TS]);
	/* the same structs serve the next item: nothing of this one stays */
	build(&raw, NULL, 0);
	ck_assert_int_eq(record_normalize(&raw, RECORD_MASTER, &rec), RECORD_OK);
	ck_assert(!rec.coord_swapped);
	record_free(&rec);
	record_raw_free(&raw);
}
END_TEST

START_TEST(status_mode)
{
	struct record_raw raw;
	struct record rec;
	record_raw_init(&raw);
	record_init(&rec);
	static const char *const item[][2] = {{"busiId", "ME"}, {"statId", "ME000001"},
					      {"chgerId", "02"}, {"stat", "3"},
					      {"statUpdDt", "20240601120000"}, {"nowTsdt", ""}};
	for (size_t i = 0; i < 6; i++)
		record_raw_add(&raw, item[i][0], strlen(item[i][0]), RECORD_JSON_STRING, item[i][1],
			       strlen(item[i][1]));
	/* no coordinates, no type: fine for a status item, not for a master one */
	ck_assert_int_eq(record_normalize(&raw, RECORD_STATUS, &rec), RECORD_OK);
	ck_assert_int_eq(rec.stat, MODEL_STATUS_CHARGING_IN_PROGRESS);
	ck_assert_str_eq(rec.text[RF_BUSI_ID], "ME");
	ck_assert_ptr_null(rec.text[RF_NOW_TSDT]);
	ck_assert_int_ne(record_normalize(&raw, RECORD_MASTER, &rec), RECORD_OK);
	record_raw_reset(&raw);
	record_raw_add(&raw, "statId", 6, RECORD_JSON_STRING, "ME000001", 8);
	record_raw_add(&raw, "chgerId", 7, RECORD_JSON_STRING, "02", 2);
	record_raw_add(&raw, "stat", 4, RECORD_JSON_STRING, "3", 1);
	ck_assert_int_eq(record_normalize(&raw, RECORD_STATUS, &rec), RECORD_MISSING);
	ck_assert_int_eq(rec.reason_field, RF_STAT_UPD_DT);
	record_free(&rec);
	record_raw_free(&raw);
}
END_TEST

START_TEST(raw_json)
{
	struct record_raw raw;
	record_raw_init(&raw);
	record_raw_add(&raw, "statId", 6, RECORD_JSON_STRING, "ME\"1", 4);
	record_raw_add(&raw, "lat", 3, RECORD_JSON_NUMBER, "37.5", 4);
	record_raw_add(&raw, "x", 1, RECORD_JSON_CONTAINER, NULL, 0);
	record_raw_add(&raw, "ok", 2, RECORD_JSON_BOOL, "true", 4);
	record_raw_add(&raw, "n", 1, RECORD_JSON_NULL, NULL, 0);
	record_raw_add(&raw, "bad", 3, RECORD_JSON_STRING, "a\xFF", 2);
	struct buf b = BUF_INIT;
	record_raw_json(&raw, &b, 0);
	ck_assert_str_eq(buf_cstr(&b), "{\"statId\":\"ME\\\"1\",\"lat\":37.5,\"x\":{},\"ok\":true,"
				       "\"n\":null,\"bad\":\"a\xEF\xBF\xBD\"}");
	buf_reset(&b);
	record_raw_json(&raw, &b, 20);
	ck_assert_str_eq(buf_cstr(&b), "{\"statId\":\"ME\\\"1\",\"...\":\"truncated\"}");
	buf_reset(&b);
	record_raw_set_not_object(&raw, RECORD_JSON_STRING, "oops", 4);
	record_raw_json(&raw, &b, 0);
	ck_assert_str_eq(buf_cstr(&b), "\"oops\"");
	buf_free(&b);
	record_raw_free(&raw);
}
END_TEST

START_TEST(lookup_and_trim)
{
	for (int f = 0; f < RECORD_NFIELDS; f++) {
		const char *name = record_field_name(f);
		ck_assert_int_eq(record_field_lookup(name, strlen(name)), f);
	}
	ck_assert_int_eq(record_field_lookup("statid", 6), -1);
	ck_assert_int_eq(record_field_lookup("", 0), -1);
	ck_assert_int_eq(record_field_lookup("aVeryLongKeyName", 16), -1);
	const char *s = "\xC2\xA0 x \xE3\x80\x80";
	ck_assert_uint_eq(record_trim(&s, strlen(s)), 1);
	ck_assert_int_eq(*s, 'x');
	ck_assert_str_eq(record_reason_code(RECORD_COORD_OUTSIDE), "coord_outside");
}
END_TEST

/* dirty.json: each item's expected outcome, in page order. */
static const struct {
	enum record_reason reason;
	bool swapped;
	const char *stat_nm;
} dirty_expect[] = {
	{RECORD_OK, false, "패딩 충전소"},
	{RECORD_OK, true, "뒤바뀐 좌표"},
	{RECORD_BAD_COORD, false, NULL},
	{RECORD_BAD_COORD, false, NULL},
	{RECORD_BAD_DATE, false, NULL},
	{RECORD_OK, false, "새 유형"},
	{RECORD_OK, false, "이스케이프 \"충전\" \\ \xF0\x9F\x94\x8C"},
	{RECORD_BAD_TEXT, false, NULL},
	{RECORD_COORD_OUTSIDE, false, NULL},
	{RECORD_NOT_OBJECT, false, NULL},
	{RECORD_BAD_UTF8, false, NULL},
};

struct dirty_ctx {
	struct record rec;
	int n;
};

static bool check_dirty(void *ctx, const struct record_raw *raw, long position)
{
	struct dirty_ctx *d = ctx;
	ck_assert_int_eq(position, d->n);
	ck_assert_int_lt(d->n, (int)(sizeof(dirty_expect) / sizeof(dirty_expect[0])));
	enum record_reason why = record_normalize(raw, RECORD_MASTER, &d->rec);
	ck_assert_msg(why == dirty_expect[d->n].reason, "item %d: %s (%s)", d->n,
		      record_reason_code(why), d->rec.detail);
	if (why == RECORD_OK) {
		ck_assert_int_eq(d->rec.coord_swapped, dirty_expect[d->n].swapped);
		ck_assert_str_eq(d->rec.text[RF_STAT_NM], dirty_expect[d->n].stat_nm);
	}
	if (d->n == 0) {
		ck_assert_str_eq(d->rec.text[RF_STAT_ID], "ME000002");
		ck_assert_str_eq(d->rec.text[RF_CHGER_TYPE], "04");
		ck_assert_str_eq(d->rec.text[RF_ZCODE], "11");
	}
	if (d->n == 5)
		ck_assert_int_eq(d->rec.stat, MODEL_STATUS_UNKNOWN);
	d->n++;
	return true;
}

START_TEST(dirty_page)
{
	char path[4096];
	const char *root = getenv("TEST_ROOT");
	snprintf(path, sizeof(path), "%s/tests/data/upstream/dirty.json", root ? root : ".");
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	struct dirty_ctx d = {.n = 0};
	record_init(&d.rec);
	struct upstream_page *p = upstream_page_new(check_dirty, &d);
	char chunk[5];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert(upstream_page_feed(p, chunk, n));
	fclose(f);
	struct upstream_result res;
	ck_assert_int_eq(upstream_page_finish(p, 200, &res), UPSTREAM_OK);
	ck_assert_int_eq(d.n, 11);
	upstream_page_free(p);
	record_free(&d.rec);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("record");
	tcase_add_loop_test(tc, rules, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, typed_values);
	tcase_add_test(tc, status_mode);
	tcase_add_test(tc, raw_json);
	tcase_add_test(tc, lookup_and_trim);
	tcase_add_test(tc, dirty_page);
	suite_add_tcase(s, tc);
	return s;
}
