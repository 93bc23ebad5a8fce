/* apid's degraded modes, with private stores killed and restarted:
 *   Redis killed: answers go on from the last known live state with
 *     X-Live-State: stale; /readyz stays 200 until the state is older than
 *     APID_LIVE_STALE_SECONDS, then 503; statistics 503 until a PostgreSQL
 *     congestion snapshot exists, then answered from it (source
 *     "snapshot"); after a restart
 *     (an empty Redis) the follower reconnects and live changes flow again.
 *   Redis down at start: answers from the load-time states, marked stale;
 *     /readyz 503 until Redis is reached.
 *   PostgreSQL down at start: /readyz and data answers 503 until the model
 *     loads; PostgreSQL killed later: the snapshot keeps being served, and
 *     a load landing after its restart is picked up. */
#include "testmain.h"

#include "test_apid.h"

static void seed(struct apid_env *e)
{
	apid_station(e->pg, "ST000001", "하나", "서울특별시 중구 1", 37.5, 127.0, "ME", "",
		     "환경부", "11");
	apid_charger(e->pg, "ST000001", "01", "02", "7", 2, 0);
	apid_charger(e->pg, "ST000001", "02", "04", "50", 2, 0);
}

/* A current congestion snapshot (as `ingestd congestion` leaves it) taken at
 * 1732500000 (2024-11-25 11:00 KST): ST000001 on Fridays at 10:00, the
 * standard charger 01 busy in 4 of 4 samples, the quick one 02 in 2 of 8
 * and out of service in 3 others. */
static void seed_snapshot(struct apid_env *e)
{
	apid_sql(e->pg, "INSERT INTO congestion_snapshot (run_id, taken_at, finished_at, outcome, "
			"is_current) VALUES (1, to_timestamp(1732500000), now(), 'ok', true)");
	apid_sql(e->pg, "CREATE TABLE congestion_snap.hours_1 PARTITION OF congestion_history "
			"FOR VALUES IN (1)");
	apid_sql(e->pg, "INSERT INTO congestion_history VALUES (1, 'ST000001', '01', 4, 10, 4, 4), "
			"(1, 'ST000001', '02', 4, 10, 8, 2), (1, 'ST000001', '02', 4, 11, 0, 0), "
			"(1, 'ST000001', 'GONE', 4, 10, 9, 9)");
	apid_sql(e->pg, "UPDATE congestion_history SET out_of_service = 3 "
			"WHERE chger_id = '02' AND hour = 10");
	apid_sql(e->pg, "UPDATE congestion_history SET out_of_service = 9 WHERE chger_id = 'GONE'");
}

/* Headers of GET path (caller frees); the status must be `status`. */
static char *headers_of(struct apid_env *e, const char *path, long status)
{
	char *body = NULL, *headers = NULL;
	long got = apid_get_headers(e, "GET", path, &body, &headers);
	ck_assert_msg(got == status, "GET %s: %ld, want %ld: %s", path, got, status, body);
	free(body);
	return headers;
}

static long wait_status(struct apid_env *e, const char *path, long want, int timeout_ms)
{
	long deadline = apid_now_ms() + timeout_ms, got = 0;
	while ((got = apid_get(e, path, NULL)) != want && apid_now_ms() < deadline)
		usleep(50000);
	return got;
}

START_TEST(redis_killed_and_restarted)
{
	struct itest_store redis = {0};
	ck_assert(itest_redis_start(&redis));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	apid_redis_setup(&e, redis.url);
	seed(&e);
	apid_start(&e, (char *[]){"APID_LIVE_STALE_SECONDS=3", "APID_REDIS_TIMEOUT_MS=500", NULL},
		   true);
	apid_set_status(&e, "ST000001", "01", 3, (long)time(NULL)); /* charging: one free charger left */
	apid_wait_for(&e, "/stations/summary?stationIds=ST000001", "\"availableCount\":1", 5000);
	char *h = headers_of(&e, "/stations/ST000001", 200);
	ck_assert_ptr_null(strstr(h, "X-Live-State"));
	free(h);

	ck_assert(itest_store_ctl(&redis, "redis", "kill"));
	long killed = apid_now_ms();
	/* the last known state is served, marked stale */
	long deadline = apid_now_ms() + 3000;
	for (;;) {
		h = headers_of(&e, "/stations/summary?stationIds=ST000001", 200);
		bool stale = strstr(h, "X-Live-State: stale") != NULL;
		free(h);
		if (stale)
			break;
		ck_assert_msg(apid_now_ms() < deadline, "no stale header after Redis died");
		usleep(50000);
	}
	apid_wait_for(&e, "/stations/summary?stationIds=ST000001", "\"availableCount\":1", 100);
	yajl_val v = apid_json(&e, "/stations/ST000001/statistics", 503);
	ck_assert_msg(strstr(jstr(v, "message"), "statistics unavailable: Redis") &&
			      strstr(jstr(v, "message"), "no congestion snapshot"),
		      "%s", jstr(v, "message"));
	yajl_tree_free(v);
	/* ready while the cached state is young, then not */
	if (apid_now_ms() - killed < 2000)
		ck_assert_int_eq(apid_get(&e, "/readyz", NULL), 200);
	ck_assert_int_eq(wait_status(&e, "/readyz", 503, 8000), 503);
	v = apid_json(&e, "/readyz", 503);
	ck_assert_msg(strstr(jstr(v, "message"), "live state stale"), "%s", jstr(v, "message"));
	yajl_tree_free(v);
	ck_assert_int_eq(apid_get(&e, "/stations/ST000001", NULL), 200); /* still answering */
	/* with a snapshot in PostgreSQL, statistics come from it, and say so */
	seed_snapshot(&e);
	v = apid_json(&e, "/stations/ST000001/statistics?dayOfWeek=friday", 200);
	ck_assert_str_eq(jstr(v, "source"), "snapshot");
	ck_assert_str_eq(jstr(v, "snapshotTakenAt"), "2024-11-25T11:00:00+09:00");
	ck_assert_double_eq(ratio_at(v, "standard", 10), 1);
	ck_assert_double_eq(ratio_at(v, "quick", 10), 0.25);
	ck_assert_double_eq(ratio_at(v, "quick", 11), -1); /* a row without samples */
	ck_assert_double_eq(ratio_at(v, "standard", 9), -1);
	/* reliability from the snapshot's out_of_service column */
	ck_assert_double_eq(share_at(v, "outOfService", "quick", 10), 0.375);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 10), 0);
	ck_assert_double_eq(share_at(v, "outOfService", "quick", 11), -1);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 9), -1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ST000001/statistics?dayOfWeek=monday", 200);
	ck_assert_str_eq(jstr(v, "source"), "snapshot");
	ck_assert_double_eq(ratio_at(v, "standard", 10), -1);
	yajl_tree_free(v);

	/* back, empty (no persistence): the follower reloads and follows again */
	ck_assert(itest_store_ctl(&redis, "redis", "start"));
	ck_assert_int_eq(wait_status(&e, "/readyz", 200, 15000), 200);
	h = headers_of(&e, "/stations/ST000001", 200);
	ck_assert_ptr_null(strstr(h, "X-Live-State"));
	free(h);
	apid_set_status(&e, "ST000001", "02", 3, (long)time(NULL));
	apid_wait_for(&e, "/stations/summary?stationIds=ST000001", "\"availableCount\":0", 5000);
	/* each worker reconnects on its own backoff: until all have, an answer
	 * may still come from the snapshot; the one from Redis has no snapshot
	 * time */
	long until = itest_now_ms() + 10000;
	for (;;) {
		v = apid_json(&e, "/stations/ST000001/statistics", 200);
		if (strcmp(jstr(v, "source"), "redis") == 0)
			break;
		yajl_tree_free(v);
		ck_assert_msg(itest_now_ms() < until, "statistics never came from Redis again");
		usleep(100000);
	}
	ck_assert_ptr_null(jkey(v, "snapshotTakenAt"));
	yajl_tree_free(v);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

START_TEST(redis_down_at_start)
{
	struct itest_store redis = {0};
	ck_assert(itest_redis_start(&redis));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	apid_redis_setup(&e, redis.url);
	rds_free(e.redis);
	e.redis = NULL;
	seed(&e);
	ck_assert(itest_store_ctl(&redis, "redis", "stop"));
	apid_start(&e, (char *[]){"APID_REDIS_TIMEOUT_MS=500", NULL}, false);
	ck_assert_int_eq(wait_status(&e, "/stations/ST000001", 200, 10000), 200);
	char *h = headers_of(&e, "/stations/ST000001", 200);
	ck_assert_ptr_nonnull(strstr(h, "X-Live-State: stale"));
	ck_assert_ptr_null(strstr(h, "X-Live-State-Age")); /* never read: no age */
	free(h);
	yajl_val v = apid_json(&e, "/readyz", 503);
	ck_assert_msg(strstr(jstr(v, "message"), "live state never read"), "%s",
		      jstr(v, "message"));
	yajl_tree_free(v);
	ck_assert(itest_store_ctl(&redis, "redis", "start"));
	ck_assert_int_eq(wait_status(&e, "/readyz", 200, 15000), 200);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

START_TEST(postgres_down_at_start_then_killed)
{
	struct itest_store pg = {0};
	ck_assert(itest_pg_start(&pg));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, pg.url);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), 13);
	apid_redis_setup(&e, url);
	free(url);
	seed(&e);
	PQfinish(e.pg);
	e.pg = NULL;
	ck_assert(itest_store_ctl(&pg, "pg", "stop"));

	apid_start(&e, NULL, false);
	yajl_val v = apid_json(&e, "/readyz", 503);
	ck_assert_msg(strstr(jstr(v, "message"), "read model not loaded"), "%s",
		      jstr(v, "message"));
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ST000001", 503);
	yajl_tree_free(v);
	ck_assert_int_eq(apid_get(&e, "/healthz", NULL), 200);

	ck_assert(itest_store_ctl(&pg, "pg", "start"));
	ck_assert_int_eq(wait_status(&e, "/readyz", 200, 20000), 200);
	ck_assert_int_eq(apid_get(&e, "/stations/ST000001", NULL), 200);

	/* killed later: the snapshot keeps being served, readiness holds */
	ck_assert(itest_store_ctl(&pg, "pg", "kill"));
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(apid_get(&e, "/stations/ST000001", NULL), 200);
		ck_assert_int_eq(apid_get(&e, "/readyz", NULL), 200);
		usleep(100000);
	}
	/* back: a load that lands now is picked up (poll of ingest_run) */
	ck_assert(itest_store_ctl(&pg, "pg", "start"));
	e.pg = itest_pg_connect(e.db_url);
	apid_sql(e.pg, "BEGIN");
	apid_station(e.pg, "ST000002", "둘", "서울특별시 중구 2", 37.51, 127.01, "ME", "", "환경부",
		     "11");
	apid_charger(e.pg, "ST000002", "01", "02", "7", 2, 0);
	apid_sql(e.pg, "INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', "
		       "'ok', now())");
	apid_sql(e.pg, "COMMIT");
	apid_wait_for(&e, "/stations/ST000002", "\"stationName\":\"둘\"", 25000);
	apid_teardown(&e);
	itest_store_stop(&pg, "pg");
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_degraded");
	TCase *tc = tcase_create("stores");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, redis_killed_and_restarted);
	tcase_add_test(tc, redis_down_at_start);
	tcase_add_test(tc, postgres_down_at_start_then_killed);
	suite_add_tcase(s, tc);
	return s;
}
