/* kst: upstream YYYYMMDDHHMMSS parsing, Korea-time weekday/hour, text forms.
 * Expected values were computed independently (Python's datetime with a
 * fixed +09:00 zone). */
#include "testmain.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kst.h"

static const struct {
	const char *text;
	long long epoch;
	const char *utc;
	int weekday; /* 0 = Monday */
	int hour;
} valid_cases[] = {
	{"20240102030405", 1704132245LL, "2024-01-01T18:04:05Z", 1, 3},
	{"20240229235959", 1709218799LL, "2024-02-29T14:59:59Z", 3, 23}, /* leap day */
	{"20000229120000", 951793200LL, "2000-02-29T03:00:00Z", 1, 12},   /* /400 leap */
	{"19700101090000", 0LL, "1970-01-01T00:00:00Z", 3, 9},
	{"19700101000000", -32400LL, "1969-12-31T15:00:00Z", 3, 0},       /* before the epoch */
	{"19000101090000", -2208988800LL, "1900-01-01T00:00:00Z", 0, 9},
	{"99991231235959", 253402268399LL, "9999-12-31T14:59:59Z", 4, 23},
	{"20231231150000", 1704002400LL, "2023-12-31T06:00:00Z", 6, 15},  /* Sunday */
	{"20240301000000", 1709218800LL, "2024-02-29T15:00:00Z", 4, 0},   /* KST day != UTC day */
	{"21000228235959", 4107509999LL, "2100-02-28T14:59:59Z", 6, 23},
};

START_TEST(parse_valid)
{
	time_t t = 0;
	const char *text = valid_cases[_i].text;
	ck_assert_msg(kst_parse(text, &t), "%s refused", text);
	ck_assert_int_eq((long long)t, valid_cases[_i].epoch);
	char utc[KST_ISO_UTC_SIZE];
	ck_assert_uint_eq(kst_format_iso_utc(t, utc), 20);
	ck_assert_str_eq(utc, valid_cases[_i].utc);
	ck_assert_int_eq(kst_weekday(t), valid_cases[_i].weekday);
	ck_assert_int_eq(kst_hour(t), valid_cases[_i].hour);
	/* compact form reads back to the same text */
	char compact[KST_COMPACT_SIZE];
	ck_assert_uint_eq(kst_format_compact(t, compact), 14);
	ck_assert_str_eq(compact, text);
}
END_TEST

static const char *const invalid_cases[] = {
	"",
	"2024010203040",       /* 13 digits */
	"202401020304050",     /* 15 digits */
	"20240230000000",      /* February 30 */
	"20230229000000",      /* 2023 is not a leap year */
	"19000229000000",      /* 1900: divisible by 100, not by 400 */
	"21000229000000",
	"20240431000000",      /* April has 30 days */
	"20240101240000",      /* 24:00 is not an hour */
	"20240101236000",      /* minute 60 */
	"20240101235960",      /* no leap seconds */
	"20241301000000",      /* month 13 */
	"20240001000000",      /* month 0 */
	"20240100000000",      /* day 0 */
	"20240132000000",      /* day 32 */
	" 20240102030405",     /* padding is the caller's to trim */
	"20240102030405 ",
	"2024010203040 ",
	"\t2024010203040",
	"2024010203040a",
	"+2024010203040",
	"-2024010203040",
	"2024-01-02 03:0",
	"2024010203 405",
	"18991231235959",      /* before KST_YEAR_MIN */
	"00000000000000",      /* the usual placeholder */
	"２０２４０１０２",    /* full-width digits */
};

START_TEST(parse_invalid)
{
	time_t t = 12345;
	const char *text = invalid_cases[_i];
	ck_assert_msg(!kst_parse(text, &t), "'%s' accepted", text);
	ck_assert_int_eq((long long)t, 12345); /* output untouched on failure */
}
END_TEST

START_TEST(parse_n_bounds)
{
	time_t t;
	/* only len bytes are read: a longer buffer is fine */
	ck_assert(kst_parse_n("20240102030405XYZ", 14, &t));
	ck_assert_int_eq((long long)t, 1704132245LL);
	/* an embedded NUL is not a digit */
	ck_assert(!kst_parse_n("2024010203\0" "405", 14, &t));
	ck_assert(!kst_parse_n("20240102030405", 13, &t));
	ck_assert(!kst_parse_n("20240102030405", 0, &t));
	ck_assert(!kst_parse_n(NULL, 14, &t));
	ck_assert(!kst_parse(NULL, &t));
}
END_TEST

START_TEST(weekday_hour_at_day_boundary)
{
	/* 2024-01-07T14:59:59Z is Sunday 23:59:59 in Korea; one second later it
	 * is Monday 00:00:00 there while UTC is still Sunday. */
	time_t sunday_last = 1704639599;
	ck_assert_int_eq(kst_weekday(sunday_last), KST_SUNDAY);
	ck_assert_int_eq(kst_hour(sunday_last), 23);
	ck_assert_int_eq(kst_weekday(sunday_last + 1), KST_MONDAY);
	ck_assert_int_eq(kst_hour(sunday_last + 1), 0);
	/* each hour of one week maps to (weekday, hour) exactly once */
	int seen[7][24] = {{0}};
	for (int h = 0; h < 7 * 24; h++) {
		time_t t = sunday_last + 1 + h * 3600;
		seen[kst_weekday(t)][kst_hour(t)]++;
		ck_assert_int_eq(kst_weekday(t), h / 24);
		ck_assert_int_eq(kst_hour(t), h % 24);
	}
	for (int d = 0; d < 7; d++)
		for (int h = 0; h < 24; h++)
			ck_assert_int_eq(seen[d][h], 1);
	/* negative instants floor correctly: 1969-12-31T23:00:00Z is Thursday 08:00 KST */
	ck_assert_int_eq(kst_weekday(-3600), KST_THURSDAY);
	ck_assert_int_eq(kst_hour(-3600), 8);
	ck_assert_int_eq(kst_weekday(-32401), KST_WEDNESDAY);
	ck_assert_int_eq(kst_hour(-32401), 23);
}
END_TEST

START_TEST(format_iso_offset)
{
	time_t t;
	ck_assert(kst_parse("20240102030405", &t));
	char iso[KST_ISO_SIZE];
	ck_assert_uint_eq(kst_format_iso(t, iso), 25);
	ck_assert_str_eq(iso, "2024-01-02T03:04:05+09:00");
	ck_assert_uint_eq(kst_format_iso(0, iso), 25);
	ck_assert_str_eq(iso, "1970-01-01T09:00:00+09:00");
	char utc[KST_ISO_UTC_SIZE];
	kst_format_iso_utc(0, utc);
	ck_assert_str_eq(utc, "1970-01-01T00:00:00Z");
	/* outside four-digit years the text is clamped, never wider */
	ck_assert_uint_eq(kst_format_iso((time_t)400000000000LL, iso), 25);
	ck_assert_str_eq(iso, "9999-12-31T23:59:59+09:00");
	ck_assert_uint_eq(kst_format_iso_utc((time_t)-70000000000LL, utc), 20);
	ck_assert_str_eq(utc, "0000-01-01T09:00:00Z");
	char compact[KST_COMPACT_SIZE];
	ck_assert_uint_eq(kst_format_compact((time_t)400000000000LL, compact), 14);
	ck_assert_str_eq(compact, "99991231235959");
}
END_TEST

/* The civil arithmetic against the C library's timegm/gmtime_r (pure UTC,
 * no TZ involved) across 1900-2200, day by day, including every leap day. */
START_TEST(civil_matches_libc)
{
	int64_t first = kst_days_from_civil(1900, 1, 1);
	int64_t last = kst_days_from_civil(2200, 12, 31);
	ck_assert_int_eq(first, -25567);
	ck_assert_int_eq(last - first + 1, 301 * 365 + 73); /* 73 leap years: multiples of 4 but 1900, 2100, 2200 */
	/* plain comparisons in the loop: a Check assertion per step would
	 * cost a syscall each (mark_point) */
	for (int64_t days = first; days <= last; days++) {
		time_t t = (time_t)(days * 86400 + 43210);
		struct tm tm;
		ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
		int y, m, d;
		kst_civil_from_days(days, &y, &m, &d);
		struct kst_civil c;
		kst_split_utc(t, &c);
		if (y != tm.tm_year + 1900 || m != tm.tm_mon + 1 || d != tm.tm_mday ||
		    kst_days_from_civil(y, m, d) != days || c.weekday != (tm.tm_wday + 6) % 7 ||
		    c.year != y || c.month != m || c.day != d || c.hour != 12 || c.minute != 0 ||
		    c.second != 10)
			ck_abort_msg("day %lld: kst %04d-%02d-%02d wd %d, libc %04d-%02d-%02d wd %d",
				     (long long)days, y, m, d, c.weekday, tm.tm_year + 1900,
				     tm.tm_mon + 1, tm.tm_mday, tm.tm_wday);
	}
}
END_TEST

START_TEST(leap_years)
{
	static const struct {
		int year;
		bool is_leap;
	} years[] = {{1900, false}, {2000, true}, {2023, false}, {2024, true},
		     {2100, false}, {2400, true}, {1996, true}, {2001, false}};
	for (size_t i = 0; i < sizeof(years) / sizeof(years[0]); i++) {
		ck_assert_int_eq(kst_is_leap_year(years[i].year), years[i].is_leap);
		ck_assert_int_eq(kst_days_in_month(years[i].year, 2), years[i].is_leap ? 29 : 28);
	}
	ck_assert_int_eq(kst_days_in_month(2024, 4), 30);
	ck_assert_int_eq(kst_days_in_month(2024, 12), 31);
	ck_assert_int_eq(kst_days_in_month(2024, 0), 0);
	ck_assert_int_eq(kst_days_in_month(2024, 13), 0);
}
END_TEST

/* Every second-resolution text the parser accepts formats back identically:
 * sample instants across the accepted range. */
START_TEST(compact_round_trip)
{
	time_t lo, hi;
	ck_assert(kst_parse("19000101000000", &lo));
	ck_assert(kst_parse("99991231235959", &hi));
	/* a step co-prime with day and hour lengths visits varied clocks */
	long long checked = 0;
	for (long long t = lo; t <= hi; t += 86400LL * 365 / 3 + 3671) {
		char compact[KST_COMPACT_SIZE];
		kst_format_compact((time_t)t, compact);
		time_t back = 0;
		struct kst_civil c;
		kst_split((time_t)t, &c);
		if (!kst_parse(compact, &back) || back != (time_t)t ||
		    c.weekday != kst_weekday((time_t)t) || c.hour != kst_hour((time_t)t))
			ck_abort_msg("%lld: %s read back as %lld", t, compact, (long long)back);
		checked++;
	}
	ck_assert_int_gt(checked, 20000);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("kst");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, parse_valid, 0, sizeof(valid_cases) / sizeof(valid_cases[0]));
	tcase_add_loop_test(tc, parse_invalid, 0, sizeof(invalid_cases) / sizeof(invalid_cases[0]));
	tcase_add_test(tc, parse_n_bounds);
	suite_add_tcase(s, tc);
	tc = tcase_create("calendar");
	tcase_add_test(tc, weekday_hour_at_day_boundary);
	tcase_add_test(tc, format_iso_offset);
	tcase_add_test(tc, civil_matches_libc);
	tcase_add_test(tc, leap_years);
	tcase_add_test(tc, compact_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
