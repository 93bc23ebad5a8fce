/* apid forecast: the arriveAt text and the method of forecast.h, case by
 * case against values worked out by hand. */
#include "testmain.h"

#include <math.h>
#include <string.h>

/* The module is apid's; unit tests link only libcommon, so compile it in. */
#include "../../apid/forecast.c"

static time_t parse_ok(const char *text)
{
	time_t t = 0;
	char why[160] = "";
	ck_assert_msg(forecast_parse_time(text, &t, why, sizeof(why)), "%s: %s", text, why);
	return t;
}

static void parse_fails(const char *text, const char *reason)
{
	time_t t = 0;
	char why[160] = "";
	ck_assert_msg(!forecast_parse_time(text, &t, why, sizeof(why)), "%s parsed", text);
	ck_assert_msg(strstr(why, reason), "%s: got '%s', want '%s'", text, why, reason);
}

START_TEST(arrive_at_text)
{
	/* 2024-11-25T18:30:00+09:00 = 09:30:00 UTC */
	time_t want = 1732527000;
	ck_assert_int_eq(parse_ok("2024-11-25T18:30:00+09:00"), want);
	ck_assert_int_eq(parse_ok("2024-11-25T09:30:00Z"), want);
	ck_assert_int_eq(parse_ok("2024-11-25t09:30:00z"), want);
	ck_assert_int_eq(parse_ok("2024-11-25 18:30+09:00"), want);
	ck_assert_int_eq(parse_ok("2024-11-25T18:30:00.999+0900"), want);
	ck_assert_int_eq(parse_ok("2024-11-25T18:30:00+09"), want);
	ck_assert_int_eq(parse_ok("2024-11-25T04:00:00-05:30"), want);
	ck_assert_int_eq(parse_ok("2024-02-29T00:00:00Z"), 1709164800);
	parse_fails("2024-11-25T18:30:00", "no offset");
	parse_fails("2024-11-25", "expected ISO 8601");
	parse_fails("", "expected ISO 8601");
	parse_fails("2024-11-25T18:30:00+09:00 ", "expected ISO 8601");
	parse_fails("2024-11-25T18:30:00+9:00", "expected ISO 8601");
	parse_fails("2024-11-25T18:30:00.+09:00", "expected ISO 8601");
	parse_fails("1732527000", "expected ISO 8601");
	parse_fails("2023-02-29T00:00:00Z", "no such date");
	parse_fails("2024-13-01T00:00:00Z", "no such date");
	parse_fails("2024-11-25T24:00:00Z", "no such time of day");
	parse_fails("2024-11-25T23:60:00Z", "no such time of day");
	parse_fails("2024-11-25T18:30:00+24:00", "offset is out of range");
}
END_TEST

START_TEST(window)
{
	char why[160];
	time_t now = 1732527000;
	ck_assert(forecast_check_window(now, now, why, sizeof(why)));
	ck_assert(forecast_check_window(now - FORECAST_PAST_SLACK_S, now, why, sizeof(why)));
	ck_assert(!forecast_check_window(now - FORECAST_PAST_SLACK_S - 1, now, why, sizeof(why)));
	ck_assert_msg(strstr(why, "in the past"), "%s", why);
	ck_assert(forecast_check_window(now + 7 * 86400, now, why, sizeof(why)));
	ck_assert(!forecast_check_window(now + 7 * 86400 + 1, now, why, sizeof(why)));
	ck_assert_msg(strstr(why, "more than 7 days ahead"), "%s", why);
}
END_TEST

START_TEST(live_weight)
{
	ck_assert_double_eq(forecast_live_weight(-5), 1);
	ck_assert_double_eq(forecast_live_weight(0), 1);
	ck_assert_double_eq_tol(forecast_live_weight(900), exp(-1), 1e-15);
	ck_assert_double_eq_tol(forecast_live_weight(3599), exp(-3599.0 / 900), 1e-15);
	ck_assert_double_eq(forecast_live_weight(3600), 0);
	ck_assert_double_eq(forecast_live_weight(86400), 0);
}
END_TEST

/* A counters value with (samples, uses) in one slot. */
static void put_slot(char *blob, int slot, unsigned samples, unsigned uses)
{
	rkeys_congestion_counter_put(blob, slot, RKEYS_CG_SAMPLES, samples);
	rkeys_congestion_counter_put(blob, slot, RKEYS_CG_USES, uses);
}

START_TEST(method)
{
	enum { N = 5, SLOT = 7 };
	static char blobs_mem[N][RKEYS_CONGESTION_BYTES];
	memset(blobs_mem, 0, sizeof(blobs_mem));
	/* quick 0 (8/10), 1 (5/20); standard 2 (4/4), 3 (3/6), 4 (no sample) */
	put_slot(blobs_mem[0], SLOT, 10, 8);
	put_slot(blobs_mem[1], SLOT, 20, 5);
	put_slot(blobs_mem[2], SLOT, 4, 4);
	put_slot(blobs_mem[3], SLOT, 6, 3);
	put_slot(blobs_mem[4], SLOT + 1, 9, 9); /* another slot: not read */
	const char *blobs[N];
	size_t lens[N];
	for (int i = 0; i < N; i++) {
		blobs[i] = blobs_mem[i];
		lens[i] = RKEYS_CONGESTION_BYTES;
	}
	bool is_quick[N] = {true, true, false, false, false};
	int64_t now = 1732527000;
	uint64_t live[N] = {
		SNAP_LIVE_WORD(MODEL_STATUS_STANDBY, now - 60),
		SNAP_LIVE_WORD(MODEL_STATUS_CHARGING_IN_PROGRESS, now - 60),
		SNAP_LIVE_WORD(MODEL_STATUS_CHARGING_IN_PROGRESS, now - 60),
		SNAP_LIVE_WORD(MODEL_STATUS_STANDBY, now - 100000),    /* too old: unknown */
		SNAP_LIVE_WORD(MODEL_STATUS_COMMUNICATION_ERROR, now), /* unknown */
	};
	unsigned chargers;
	uint64_t samples;
	/* history only: quick 1 - 0.8 * 0.25; standard: 4 takes the pooled 7/10 */
	double p = forecast_class(N, is_quick, true, blobs, lens, live, SLOT, 0, now, 86400,
				  &chargers, &samples);
	ck_assert_double_eq_tol(p, 0.8, 1e-12);
	ck_assert_uint_eq(chargers, 2);
	ck_assert_uint_eq(samples, 30);
	p = forecast_class(N, is_quick, false, blobs, lens, live, SLOT, 0, now, 86400, &chargers,
			   &samples);
	ck_assert_double_eq_tol(p, 1 - 1.0 * 0.5 * 0.7, 1e-12);
	ck_assert_uint_eq(chargers, 3);
	ck_assert_uint_eq(samples, 10);
	/* live weight 0.5: quick (0.5*0 + 0.5*0.8)(0.5*1 + 0.5*0.25); standard:
	 * only charger 2 is fresh */
	p = forecast_class(N, is_quick, true, blobs, lens, live, SLOT, 0.5, now, 86400, &chargers,
			   &samples);
	ck_assert_double_eq_tol(p, 1 - 0.4 * 0.625, 1e-12);
	p = forecast_class(N, is_quick, false, blobs, lens, live, SLOT, 0.5, now, 86400, &chargers,
			   &samples);
	ck_assert_double_eq_tol(p, 1 - 1.0 * 0.5 * 0.7, 1e-12);
	/* no sample in the slot: null, whatever the live state */
	p = forecast_class(N, is_quick, true, blobs, lens, live, SLOT + 2, 1, now, 86400, &chargers,
			   &samples);
	ck_assert_double_lt(p, 0);
	/* no charger of the class */
	bool none_quick[N] = {false, false, false, false, false};
	p = forecast_class(N, none_quick, true, blobs, lens, live, SLOT, 0, now, 86400, &chargers,
			   &samples);
	ck_assert_double_lt(p, 0);
	ck_assert_uint_eq(chargers, 0);
	/* saturated counters (more uses than samples) count as always busy */
	put_slot(blobs_mem[0], SLOT, 3, 7);
	p = forecast_class(1, is_quick, true, blobs, lens, live, SLOT, 0, now, 86400, &chargers,
			   &samples);
	ck_assert_double_eq(p, 0);
	/* a missing value (NULL) has no samples */
	const char *missing[1] = {NULL};
	size_t zero[1] = {0};
	p = forecast_class(1, is_quick, true, missing, zero, live, SLOT, 0, now, 86400, &chargers,
			   &samples);
	ck_assert_double_lt(p, 0);
}
END_TEST

START_TEST(render)
{
	static char blob[RKEYS_CONGESTION_BYTES];
	memset(blob, 0, sizeof(blob));
	/* 2024-11-25T18:30:00+09:00 is a Monday, 18:00 Korea time */
	time_t arrive = 1732527000;
	put_slot(blob, rkeys_congestion_slot(0, 18), 4, 1);
	const char *blobs[1] = {blob};
	size_t lens[1] = {sizeof(blob)};
	bool is_quick[1] = {true};
	uint64_t live[1] = {0};
	struct stats_ask ask = {.weekday = 0,
				.is_forecast = true,
				.arrive_at = arrive,
				.now = arrive - 7200,
				.status_max_age_s = 86400};
	struct stats_source src = {"redis", 0};
	struct buf out = BUF_INIT;
	forecast_render(&out, "ME000001", 1, is_quick, blobs, lens, live, &ask, &src);
	ck_assert(buf_ok(&out));
	ck_assert_str_eq(out.data,
			 "{\"stationId\":\"ME000001\",\"arriveAt\":\"2024-11-25T18:30:00+09:00\","
			 "\"dayOfWeek\":\"monday\",\"hour\":18,\"leadSeconds\":7200,"
			 "\"liveWeight\":0,\"forecast\":{\"standard\":{\"chargers\":0,"
			 "\"samples\":0,\"probability\":null},\"quick\":{\"chargers\":1,"
			 "\"samples\":4,\"probability\":0.75}},\"source\":\"redis\"}");
	buf_free(&out);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_forecast");
	TCase *tc = tcase_create("forecast");
	tcase_add_test(tc, arrive_at_text);
	tcase_add_test(tc, window);
	tcase_add_test(tc, live_weight);
	tcase_add_test(tc, method);
	tcase_add_test(tc, render);
	suite_add_tcase(s, tc);
	return s;
}
