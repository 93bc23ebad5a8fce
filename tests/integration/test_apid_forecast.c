/* GET /stations/{id}/forecast against real PostgreSQL and Redis: counters
 * and live states seeded with known values, answers compared with the
 * method of apid/forecast.h (docs/api.md "Arrival forecast") worked out
 * here; arriveAt's rules (offset required, not in the past, at most 7 days
 * ahead); the answer when Redis is gone. */
#include "testmain.h"

#include <math.h>

#include "kst.h"
#include "test_apid.h"

/* FC000001: quick 01 (50 kW), 02 (100 kW); standard 03, 04, 05 (7 kW).
 * FC000002: one standard charger, no counters at all. */
static void seed(struct apid_env *e)
{
	apid_station(e->pg, "FC000001", "Forecast", "서울특별시 중구 세종대로 1", 37.56, 126.97,
		     "ME", "환경부", "환경부", "11");
	apid_station(e->pg, "FC000002", "Quiet", "서울특별시 중구 세종대로 2", 37.57, 126.97, "ME",
		     "환경부", "환경부", "11");
	apid_charger(e->pg, "FC000001", "01", "04", "50", 2, 0);
	apid_charger(e->pg, "FC000001", "02", "04", "100", 2, 0);
	apid_charger(e->pg, "FC000001", "03", "02", "7", 2, 0);
	apid_charger(e->pg, "FC000001", "04", "02", "7", 2, 0);
	apid_charger(e->pg, "FC000001", "05", "02", "7", 2, 0);
	apid_charger(e->pg, "FC000002", "01", "02", "7", 2, 0);
}

/* One slot of a charger's counters (rkeys.h layout), written with
 * BITFIELD SET: the value grows to the slot as needed (a shorter value reads
 * as zeros past its end, as apid must accept). */
static void set_counters(struct apid_env *e, const char *station, const char *charger, int slot,
			 unsigned samples, unsigned uses)
{
	char key[RKEYS_KEY_MAX], s_at[16], u_at[16], s_n[16], u_n[16];
	rkeys_congestion(key, sizeof(key), station, charger);
	snprintf(s_at, sizeof(s_at), "#%d", rkeys_congestion_counter_index(slot, RKEYS_CG_SAMPLES));
	snprintf(u_at, sizeof(u_at), "#%d", rkeys_congestion_counter_index(slot, RKEYS_CG_USES));
	snprintf(s_n, sizeof(s_n), "%u", samples);
	snprintf(u_n, sizeof(u_n), "%u", uses);
	char err[256];
	redisReply *r = rds_command(
		e->redis, 10,
		(const char *[]){"BITFIELD", key, "SET", "u12", s_at, s_n, "SET", "u12", u_at, u_n},
		NULL, err, sizeof(err));
	ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY, "BITFIELD: %s", err);
	freeReplyObject(r);
}

/* The slot's counters: quick 8/10 and 5/20, standard 4/4 and 3/6, and 05
 * without a sample (it takes the standard class's pooled 7/10). */
static void seed_counters(struct apid_env *e, int slot)
{
	set_counters(e, "FC000001", "01", slot, 10, 8);
	set_counters(e, "FC000001", "02", slot, 20, 5);
	set_counters(e, "FC000001", "03", slot, 4, 4);
	set_counters(e, "FC000001", "04", slot, 6, 3);
	set_counters(e, "FC000001", "05", (slot + 2) % RKEYS_CONGESTION_SLOTS, 9,
		     9); /* elsewhere */
}

struct fixture {
	struct itest_store redis;
	struct apid_env e;
};

static void start(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert(itest_redis_start(&f->redis));
	apid_db_setup(&f->e, NULL);
	apid_redis_setup(&f->e, f->redis.url);
	seed(&f->e);
}

static void stop(struct fixture *f)
{
	apid_teardown(&f->e);
	itest_store_stop(&f->redis, "redis");
}

static yajl_val forecast(struct apid_env *e, const char *station, time_t at)
{
	char iso[KST_ISO_SIZE];
	kst_format_iso(at, iso);
	char *path = apid_fmt("/stations/%s/forecast?arriveAt=%.19s%%2B09:00", station, iso);
	yajl_val v = apid_json(e, path, 200);
	free(path);
	return v;
}

static yajl_val class_of(yajl_val v, const char *cls)
{
	yajl_val c = jkey(jkey(v, "forecast"), cls);
	ck_assert_msg(c && YAJL_IS_OBJECT(c), "no forecast.%s", cls);
	return c;
}

/* The answer's probability equals `want` rounded to 4 decimals. */
static void expect_p(yajl_val v, const char *cls, double want)
{
	double got = jnum(class_of(v, cls), "probability");
	ck_assert_msg(fabs(got - round(want * 10000) / 10000) < 1e-9, "%s: %.6f, want %.6f", cls,
		      got, want);
}

START_TEST(history_only_two_days_ahead)
{
	struct fixture f;
	start(&f);
	time_t at = time(NULL) + 2 * 86400;
	int slot = rkeys_congestion_slot(kst_weekday(at), kst_hour(at));
	seed_counters(&f.e, slot);
	apid_start(&f.e, NULL, true);
	yajl_val v = forecast(&f.e, "FC000001", at);
	ck_assert_str_eq(jstr(v, "stationId"), "FC000001");
	char iso[KST_ISO_SIZE];
	kst_format_iso(at, iso);
	ck_assert_str_eq(jstr(v, "arriveAt"), iso);
	static const char *const days[] = {"monday", "tuesday",	 "wednesday", "thursday",
					   "friday", "saturday", "sunday"};
	ck_assert_str_eq(jstr(v, "dayOfWeek"), days[kst_weekday(at)]);
	ck_assert_int_eq((int)jnum(v, "hour"), kst_hour(at));
	ck_assert_double_eq(jnum(v, "liveWeight"), 0);
	ck_assert_str_eq(jstr(v, "source"), "redis");
	/* P = 1 - prod p_i */
	expect_p(v, "quick", 1 - 0.8 * 0.25);
	expect_p(v, "standard", 1 - 1.0 * 0.5 * 0.7);
	ck_assert_int_eq((int)jnum(class_of(v, "quick"), "chargers"), 2);
	ck_assert_int_eq((int)jnum(class_of(v, "quick"), "samples"), 30);
	ck_assert_int_eq((int)jnum(class_of(v, "standard"), "chargers"), 3);
	ck_assert_int_eq((int)jnum(class_of(v, "standard"), "samples"), 10);
	yajl_tree_free(v);
	/* no counters: null; no quick charger: null */
	v = forecast(&f.e, "FC000002", at);
	ck_assert(YAJL_IS_NULL(jkey(class_of(v, "standard"), "probability")));
	ck_assert(YAJL_IS_NULL(jkey(class_of(v, "quick"), "probability")));
	ck_assert_int_eq((int)jnum(class_of(v, "quick"), "chargers"), 0);
	ck_assert_int_eq((int)jnum(class_of(v, "standard"), "chargers"), 1);
	yajl_tree_free(v);
	/* the same instant in UTC gives the same answer */
	char utc[KST_ISO_UTC_SIZE];
	kst_format_iso_utc(at, utc);
	char *path = apid_fmt("/stations/FC000001/forecast?arriveAt=%s", utc);
	v = apid_json(&f.e, path, 200);
	free(path);
	expect_p(v, "quick", 1 - 0.8 * 0.25);
	ck_assert_str_eq(jstr(v, "arriveAt"), iso);
	yajl_tree_free(v);
	stop(&f);
}
END_TEST

START_TEST(live_state_blends_in_within_the_hour)
{
	struct fixture f;
	start(&f);
	time_t now = time(NULL);
	/* live now: 01 STANDBY, 02 CHARGING, 03 CHARGING, 04 CHARGING, 05 in
	 * COMMUNICATION_ERROR (unknown: history only) */
	apid_set_status(&f.e, "FC000001", "01", 2, now - 60);
	apid_set_status(&f.e, "FC000001", "02", 3, now - 60);
	apid_set_status(&f.e, "FC000001", "03", 3, now - 60);
	apid_set_status(&f.e, "FC000001", "04", 3, now - 60);
	apid_set_status(&f.e, "FC000001", "05", 1, now - 60);
	time_t soon = now + 600, at_now = now;
	seed_counters(&f.e, rkeys_congestion_slot(kst_weekday(soon), kst_hour(soon)));
	if (kst_hour(soon) != kst_hour(at_now))
		seed_counters(&f.e, rkeys_congestion_slot(kst_weekday(at_now), kst_hour(at_now)));
	apid_start(&f.e, NULL, true);
	apid_wait_for(&f.e, "/stations/summary?stationIds=FC000001", "\"availableCount\":1", 5000);

	/* ten minutes ahead: w = exp(-t / 900), q_i = w l_i + (1 - w) p_i */
	yajl_val v = forecast(&f.e, "FC000001", soon);
	double lead = jnum(v, "leadSeconds");
	ck_assert_msg(lead >= 590 && lead <= 600, "leadSeconds %.0f", lead);
	double w = exp(-lead / 900);
	ck_assert_double_eq_tol(jnum(v, "liveWeight"), round(w * 10000) / 10000, 1e-9);
	expect_p(v, "quick", 1 - (w * 0 + (1 - w) * 0.8) * (w * 1 + (1 - w) * 0.25));
	expect_p(v, "standard", 1 - (w * 1 + (1 - w) * 1.0) * (w * 1 + (1 - w) * 0.5) * 0.7);
	yajl_tree_free(v);

	/* arriving now: the live state alone, where it is known */
	v = forecast(&f.e, "FC000001", at_now);
	ck_assert_double_eq(jnum(v, "leadSeconds"), 0);
	ck_assert_double_eq(jnum(v, "liveWeight"), 1);
	expect_p(v, "quick", 1);	  /* 01 is free */
	expect_p(v, "standard", 1 - 0.7); /* 03, 04 busy; 05 unknown: history */
	yajl_tree_free(v);

	/* Redis gone and no snapshot in PostgreSQL: 503 naming both */
	apid_stop(&f.e);
	apid_start(&f.e, (char *[]){"APID_REDIS_TIMEOUT_MS=300", NULL}, true);
	ck_assert(itest_store_ctl(&f.redis, "redis", "kill"));
	char iso[KST_ISO_SIZE];
	kst_format_iso(now + 3600, iso);
	char *path = apid_fmt("/stations/FC000001/forecast?arriveAt=%.19s%%2B09:00", iso);
	long deadline = apid_now_ms() + 5000;
	for (;;) {
		char *body = NULL;
		long status = apid_get(&f.e, path, &body);
		bool done = status == 503 && strstr(body, "no congestion snapshot");
		if (!done)
			ck_assert_msg(apid_now_ms() < deadline, "%ld %s", status, body);
		free(body);
		if (done)
			break;
		usleep(100000);
	}
	free(path);
	stop(&f);
}
END_TEST

START_TEST(arrive_at_rules)
{
	struct fixture f;
	start(&f);
	apid_start(&f.e, NULL, true);
	struct apid_env *e = &f.e;
	apid_expect_400(e, "/stations/FC000001/forecast", "arriveAt: missing");
	apid_expect_400(e, "/stations/FC000001/forecast?arriveAt=2030-01-01T10:00:00",
			"arriveAt: '2030-01-01T10:00:00' is not a time: no offset");
	apid_expect_400(e, "/stations/FC000001/forecast?arriveAt=tomorrow",
			"expected ISO 8601 with an offset");
	apid_expect_400(e, "/stations/FC000001/forecast?arriveAt=2023-02-29T10:00:00Z",
			"no such date");
	apid_expect_400(e, "/stations/FC000001/forecast?arriveAt=2020-01-01T10:00:00Z",
			"is in the past");
	char utc[KST_ISO_UTC_SIZE];
	kst_format_iso_utc(time(NULL) + 8 * 86400, utc);
	char *path = apid_fmt("/stations/FC000001/forecast?arriveAt=%s", utc);
	apid_expect_400(e, path, "more than 7 days ahead");
	free(path);
	kst_format_iso_utc(time(NULL) + 3600, utc);
	path = apid_fmt("/stations/FC000001/forecast?arriveAt=%s&arriveAt=%s", utc, utc);
	apid_expect_400(e, path, "arriveAt");
	free(path);
	path = apid_fmt("/stations/NOPE0001/forecast?arriveAt=%s", utc);
	yajl_tree_free(apid_json(e, path, 404));
	free(path);
	path = apid_fmt("http://127.0.0.1:%d/stations/FC000001/forecast?arriveAt=%s", e->port, utc);
	ck_assert_int_eq(itest_http("POST", path, "", NULL, NULL, NULL), 405);
	free(path);
	stop(&f);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_forecast");
	TCase *tc = tcase_create("forecast");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, history_only_two_days_ahead);
	tcase_add_test(tc, live_state_blends_in_within_the_hour);
	tcase_add_test(tc, arrive_at_rules);
	suite_add_tcase(s, tc);
	return s;
}
