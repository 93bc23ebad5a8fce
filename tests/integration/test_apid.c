/* apid's REST contract (../shared/API.md) against real PostgreSQL and Redis:
 * every endpoint's fields, types, filters, ordering and errors; live state
 * from the Redis stream; statistics from congestion counters; rebuilds on
 * NOTIFY and on a finished ingest_run seen by polling. */
#include "testmain.h"

#include "test_apid.h"

/* Redis db of this binary on the shared server. */
#define REDIS_DB 11

/* Stations and chargers every test starts from:
 *   ME000001 Gangnam: 01 DC_COMBO 50 kW STANDBY, 02 AC_SLOW 7 kW CHARGING
 *   ME000002 Yeoksam: 01 AC_SLOW 7 STANDBY, 02 code 99 100 kW UNKNOWN,
 *            03 code "X1" without output, COMMUNICATION_ERROR
 *   ME000006 on the corner (38, 127.5): 01 DC_COMBO 200 kW STANDBY
 *   PI000003 Busan: 01 AC_3PHASE 22 kW UNDER_INSPECTION
 *   DL000004 deleted station; NC000005 whose only charger is deleted. */
static void seed(struct apid_env *e)
{
	PGconn *pg = e->pg;
	apid_station(pg, "ME000001", "강남역 충전소", "서울특별시 강남구 테헤란로 1", 37.498,
		     127.028, "ME", "환경부", "환경부", "11");
	apid_station(pg, "ME000002", "역삼 주차장", "서울특별시 강남구 역삼로 2", 37.5, 127.036,
		     "GN", "GS", "GS칼텍스", "11");
	apid_station(pg, "ME000006", "Corner", "서울특별시 서초구 반포대로 3", 38.0, 127.5, "ME",
		     "환경부", "환경부", "11");
	apid_station(pg, "PI000003", "Busan Station", "부산광역시 해운대구 우동 1", 35.1631,
		     129.1635, "PI", "차지비", "차지비 주식회사", "26");
	apid_station(pg, "DL000004", "deleted", "서울특별시 중구 1", 37.56, 126.97, "ME", "", "",
		     "11");
	apid_station(pg, "NC000005", "no chargers", "서울특별시 중구 2", 37.56, 126.98, "ME", "",
		     "", "11");
	apid_sql(pg, "UPDATE station SET parking_free = true, busi_call = '1661-9408', "
		     "use_time = '24시간', location = '지하 2층' WHERE stat_id = 'ME000001'");
	apid_sql(pg, "UPDATE station SET parking_free = false, limit_yn = true, "
		     "limit_detail = '입주민 전용', note = '점검중' WHERE stat_id = 'ME000002'");
	apid_sql(pg, "UPDATE station SET deleted_at = now() WHERE stat_id = 'DL000004'");
	apid_charger(pg, "ME000001", "01", "04", "50", 2, 1732500000);
	apid_charger(pg, "ME000001", "02", "02", "7", 3, 1732500000);
	apid_charger(pg, "ME000002", "01", "02", "7.00", 2, 0);
	apid_charger(pg, "ME000002", "02", "99", "100", 9, 0);
	apid_charger(pg, "ME000002", "03", "X1", NULL, 1, 0);
	apid_charger(pg, "ME000006", "01", "04", "200", 2, 0);
	apid_charger(pg, "PI000003", "01", "07", "22", 5, 0);
	apid_charger(pg, "DL000004", "01", "02", "7", 2, 0);
	apid_charger(pg, "NC000005", "01", "02", "7", 2, 0);
	apid_sql(pg, "UPDATE charger SET method = '단독' WHERE stat_id = 'ME000001' AND chger_id = "
		     "'01'");
	apid_sql(pg, "UPDATE charger SET method = '동시' WHERE stat_id = 'ME000001' AND chger_id = "
		     "'02'");
	apid_sql(pg, "UPDATE charger SET deleted_at = now() WHERE stat_id = 'NC000005'");
}

static void fixture(struct apid_env *e, char *const *extra)
{
	memset(e, 0, sizeof(*e));
	apid_db_setup(e, NULL);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), REDIS_DB);
	apid_redis_setup(e, url);
	free(url);
	seed(e);
	char *env[8] = {"APID_MAX_MARKERS=3"};
	int n = 1;
	for (size_t i = 0; extra && extra[i] && n < 7; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	apid_start(e, env, true);
}

/* The ids of an answer's station list, joined by commas. */
static void ids_of(yajl_val list, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < jlen(list); i++) {
		if (i)
			strncat(out, ",", outlen - strlen(out) - 1);
		strncat(out, jstr(jat(list, i), "stationId"), outlen - strlen(out) - 1);
	}
}

static void expect_ids(struct apid_env *e, const char *path, const char *want)
{
	yajl_val v = apid_json(e, path, 200);
	char ids[512];
	ids_of(jkey(v, "stations"), ids, sizeof(ids));
	ck_assert_msg(strcmp(ids, want) == 0, "GET %s: [%s], want [%s]", path, ids, want);
	yajl_tree_free(v);
}

#define BOX "/stations?latitude=37.5&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5"

START_TEST(stations_fields_order_and_edges)
{
	struct apid_env e;
	fixture(&e, NULL);
	yajl_val v = apid_json(&e, BOX, 200);
	yajl_val list = jkey(v, "stations");
	ck_assert_uint_eq(jlen(v), 1);
	ck_assert_uint_eq(jlen(list), 3); /* sorted by id; the corner station included */
	yajl_val a = jat(list, 0);
	ck_assert_uint_eq(jlen(a), 8);
	ck_assert_str_eq(jstr(a, "stationId"), "ME000001");
	ck_assert_str_eq(jstr(a, "stationName"), "강남역 충전소");
	ck_assert_double_eq(jnum(a, "latitude"), 37.498);
	ck_assert_double_eq(jnum(a, "longitude"), 127.028);
	ck_assert(jbool(a, "isParkingFree"));
	ck_assert(!jbool(a, "isPrivate"));
	ck_assert_double_eq(jnum(a, "availableCount"), 1);
	ck_assert_double_eq(jnum(a, "quickChargerCount"), 1);
	yajl_val b = jat(list, 1);
	ck_assert_str_eq(jstr(b, "stationId"), "ME000002");
	ck_assert(jbool(b, "isPrivate"));
	ck_assert(!jbool(b, "isParkingFree"));
	ck_assert_double_eq(jnum(b, "availableCount"), 1);
	ck_assert_double_eq(jnum(b, "quickChargerCount"), 1);
	ck_assert_str_eq(jstr(jat(list, 2), "stationId"), "ME000006");
	yajl_tree_free(v);
	/* an empty box is an empty list */
	expect_ids(&e, "/stations?latitude=10&longitude=10&latitudeDelta=1&longitudeDelta=1", "");
	apid_teardown(&e);
}
END_TEST

START_TEST(stations_filters)
{
	struct apid_env e;
	fixture(&e, NULL);
	expect_ids(&e, BOX "&chargerTypes=AC_SLOW", "ME000001,ME000002");
	expect_ids(&e, BOX "&chargerTypes=DC_COMBO", "ME000001,ME000006");
	expect_ids(&e, BOX "&chargerTypes=DC_COMBO&capacities=7", "");
	expect_ids(&e, BOX "&chargerTypes=DC_COMBO&capacities=50.00,200", "ME000001,ME000006");
	expect_ids(&e, BOX "&capacities=100.00", "ME000002");
	expect_ids(&e, BOX "&chargerTypes=TYPE_99", "ME000002");
	expect_ids(&e, BOX "&companyNames=GS%EC%B9%BC%ED%85%8D%EC%8A%A4", "ME000002"); /* busiNm */
	expect_ids(&e, BOX "&companyNames=GS", "ME000002");			       /* bnm */
	expect_ids(&e, BOX "&companyNames=ME", "ME000001,ME000006");		       /* busiId */
	expect_ids(&e, BOX "&companyNames=GN,ME&chargerTypes=AC_SLOW", "ME000001,ME000002");
	expect_ids(&e,
		   BOX "&companyNames=&chargerTypes=&capacities=", "ME000001,ME000002,ME000006");
	expect_ids(&e, BOX "&unknownParameter=1", "ME000001,ME000002,ME000006");
	apid_teardown(&e);
}
END_TEST

START_TEST(stations_errors)
{
	struct apid_env e;
	fixture(&e, NULL);
	apid_expect_400(&e, "/stations?longitude=127&latitudeDelta=1&longitudeDelta=1",
			"latitude: missing");
	apid_expect_400(&e, "/stations?latitude=91&longitude=127&latitudeDelta=1&longitudeDelta=1",
			"latitude: 91 is out of range");
	apid_expect_400(&e, "/stations?latitude=1e1&longitude=127&latitudeDelta=1&longitudeDelta=1",
			"latitude: '1e1' is not a number");
	apid_expect_400(
		&e,
		"/stations?latitude=37&latitude=38&longitude=127&latitudeDelta=1&longitudeDelta=1",
		"latitude: given more than once");
	apid_expect_400(&e, "/stations?latitude=37&longitude=127&latitudeDelta=0&longitudeDelta=1",
			"latitudeDelta: 0 is out of range");
	apid_expect_400(&e, "/stations?latitude=37&longitude=127&latitudeDelta=1&longitudeDelta=11",
			"longitudeDelta: 11 is out of range");
	apid_expect_400(&e, BOX "&chargerTypes=FAST", "chargerTypes: 'FAST' is not a charger type");
	apid_expect_400(&e, BOX "&capacities=fifty", "capacities: 'fifty' is not a capacity");
	apid_expect_400(&e, BOX "&companyNames=a,,b", "companyNames: empty item");
	apid_expect_400(&e, BOX "&companyNames=%FF", "companyNames: not valid UTF-8");
	/* the marker limit (3 here): a box with more matching stations is refused */
	apid_expect_400(&e, "/stations?latitude=36&longitude=128&latitudeDelta=3&longitudeDelta=3",
			"area too large for markers");
	expect_ids(&e,
		   "/stations?latitude=36&longitude=128&latitudeDelta=3&longitudeDelta=3"
		   "&companyNames=PI",
		   "PI000003");
	apid_teardown(&e);
}
END_TEST

START_TEST(station_detail)
{
	struct apid_env e;
	fixture(&e, NULL);
	yajl_val v = apid_json(&e, "/stations/ME000001", 200);
	static const char *const keys[] = {
		"stationId",	 "stationName",	  "companyName",    "address",	"contact",
		"isParkingFree", "operatingTime", "detailLocation", "latitude", "longitude",
		"isPrivate",	 "stationState",  "privateReason",  "chargers"};
	ck_assert_uint_eq(jlen(v), ARRAY_LEN(keys));
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		ck_assert_msg(jkey(v, keys[i]), "missing %s", keys[i]);
	ck_assert_str_eq(jstr(v, "companyName"), "환경부");
	ck_assert_str_eq(jstr(v, "address"), "서울특별시 강남구 테헤란로 1");
	ck_assert_str_eq(jstr(v, "contact"), "1661-9408");
	ck_assert_str_eq(jstr(v, "operatingTime"), "24시간");
	ck_assert_str_eq(jstr(v, "detailLocation"), "지하 2층");
	ck_assert_str_eq(jstr(v, "stationState"), ""); /* empty text is "", never null */
	ck_assert_str_eq(jstr(v, "privateReason"), "");
	yajl_val chargers = jkey(v, "chargers");
	ck_assert_uint_eq(jlen(chargers), 2);
	yajl_val c0 = jat(chargers, 0), c1 = jat(chargers, 1);
	ck_assert_uint_eq(jlen(c0), 6);
	ck_assert_str_eq(jstr(c0, "type"), "DC_COMBO");
	ck_assert(YAJL_IS_NULL(jkey(c0, "price")));
	ck_assert_double_eq(jnum(c0, "capacity"), 50);
	ck_assert_str_eq(jstr(c0, "latestUpdateTime"), "2024-11-25T11:00:00+09:00");
	ck_assert_str_eq(jstr(c0, "state"), "STANDBY");
	ck_assert_str_eq(jstr(c0, "method"), "단독");
	ck_assert_str_eq(jstr(c1, "type"), "AC_SLOW");
	ck_assert_double_eq(jnum(c1, "capacity"), 7);
	ck_assert_str_eq(jstr(c1, "state"), "CHARGING_IN_PROGRESS");
	ck_assert_str_eq(jstr(c1, "method"), "동시");
	yajl_tree_free(v);

	v = apid_json(&e, "/stations/ME000002", 200);
	ck_assert(jbool(v, "isPrivate"));
	ck_assert_str_eq(jstr(v, "privateReason"), "입주민 전용");
	ck_assert_str_eq(jstr(v, "stationState"), "점검중");
	ck_assert_str_eq(jstr(v, "contact"), "");
	chargers = jkey(v, "chargers");
	ck_assert_uint_eq(jlen(chargers), 3);
	ck_assert_str_eq(jstr(jat(chargers, 1), "type"), "TYPE_99"); /* a newer code, named */
	ck_assert_str_eq(jstr(jat(chargers, 1), "state"), "STATUS_UNKNOWN");
	ck_assert_str_eq(jstr(jat(chargers, 2), "type"), "X1"); /* not a code: kept */
	ck_assert(YAJL_IS_NULL(jkey(jat(chargers, 2), "capacity")));
	ck_assert(YAJL_IS_NULL(jkey(jat(chargers, 2), "latestUpdateTime")));
	ck_assert(YAJL_IS_NULL(jkey(jat(chargers, 2), "method")));
	ck_assert_str_eq(jstr(jat(chargers, 2), "state"), "COMMUNICATION_ERROR");
	yajl_tree_free(v);

	yajl_val err = apid_json(&e, "/stations/NOPE", 404);
	ck_assert_ptr_nonnull(strstr(jstr(err, "message"), "no such station"));
	yajl_tree_free(err);
	yajl_tree_free(apid_json(&e, "/stations/DL000004", 404)); /* deleted */
	yajl_tree_free(apid_json(&e, "/stations/NC000005", 404)); /* no live charger */
	yajl_tree_free(apid_json(&e, "/stations/ME000001/nope", 404));
	yajl_tree_free(apid_json(&e, "/stations/", 404));
	yajl_tree_free(apid_json(&e, "/stations/ME%30%30%30%30%301", 200)); /* percent-encoded id */
	apid_teardown(&e);
}
END_TEST

START_TEST(summary_in_the_order_asked)
{
	struct apid_env e;
	fixture(&e, NULL);
	yajl_val v = apid_json(&e, "/stations/summary?stationIds=PI000003,NOPE,ME000001", 200);
	yajl_val list = jkey(v, "stations");
	ck_assert_uint_eq(jlen(list), 2);
	yajl_val p = jat(list, 0);
	ck_assert_uint_eq(jlen(p), 13);
	ck_assert_str_eq(jstr(p, "stationId"), "PI000003");
	ck_assert_str_eq(jstr(p, "companyName"), "차지비 주식회사");
	ck_assert_str_eq(jstr(p, "address"), "부산광역시 해운대구 우동 1");
	ck_assert_str_eq(jstr(p, "operatingTime"), "");
	ck_assert_str_eq(jstr(p, "detailLocation"), "");
	ck_assert_double_eq(jnum(p, "availableCount"), 0);
	ck_assert_double_eq(jnum(p, "totalCount"), 1);
	ck_assert_double_eq(jnum(p, "quickChargerCount"), 0);
	ck_assert_double_eq(jnum(p, "latitude"), 35.1631);
	ck_assert(!jbool(p, "isParkingFree"));
	ck_assert_str_eq(jstr(jat(list, 1), "stationId"), "ME000001");
	ck_assert_double_eq(jnum(jat(list, 1), "totalCount"), 2);
	yajl_tree_free(v);
	expect_ids(&e, "/stations/summary?stationIds=", "");
	apid_expect_400(&e, "/stations/summary", "stationIds: missing");
	char path[1024] = "/stations/summary?stationIds=";
	for (int i = 0; i <= 100; i++)
		strcat(path, i ? ",x" : "x");
	apid_expect_400(&e, path, "stationIds: more than 100 values");
	apid_teardown(&e);
}
END_TEST

START_TEST(search_korean_substring)
{
	struct apid_env e;
	fixture(&e, NULL);
	/* 강남: ME000001 by name (first), ME000002 by address */
	yajl_val v = apid_json(&e, "/stations/search?q=%EA%B0%95%EB%82%A8", 200);
	ck_assert_double_eq(jnum(v, "totalCount"), 2);
	yajl_val list = jkey(v, "stations");
	ck_assert_uint_eq(jlen(list), 2);
	yajl_val first = jat(list, 0);
	ck_assert_uint_eq(jlen(first), 6); /* no scope: every field */
	ck_assert_str_eq(jstr(first, "stationId"), "ME000001");
	ck_assert_str_eq(jstr(first, "speed"), "quick");
	ck_assert_str_eq(jstr(first, "address"), "서울특별시 강남구 테헤란로 1");
	ck_assert_str_eq(jstr(jat(list, 1), "stationId"), "ME000002");
	yajl_val cities = jkey(v, "cities");
	ck_assert_uint_eq(jlen(cities), 1);
	ck_assert_str_eq(jstr(jat(cities, 0), "cityName"), "서울특별시 강남구");
	ck_assert_double_eq_tol(jnum(jat(cities, 0), "latitude"), 37.499, 1e-6);
	yajl_tree_free(v);

	/* scope, repeated and comma-separated; stationId always */
	v = apid_json(&e, "/stations/search?q=busan&scope=stationName&scope=speed,latitude", 200);
	list = jkey(v, "stations");
	ck_assert_uint_eq(jlen(list), 1);
	first = jat(list, 0);
	ck_assert_uint_eq(jlen(first), 4);
	ck_assert_str_eq(jstr(first, "stationName"), "Busan Station");
	ck_assert_str_eq(jstr(first, "speed"), "standard");
	ck_assert_ptr_null(jkey(first, "address"));
	yajl_tree_free(v);

	/* operator names; paging */
	v = apid_json(&e, "/stations/search?q=%EC%B0%A8%EC%A7%80%EB%B9%84&scope=stationId", 200);
	ck_assert_double_eq(jnum(v, "totalCount"), 1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/search?q=%EC%84%9C%EC%9A%B8&page=2&limit=2", 200); /* 서울 */
	ck_assert_double_eq(jnum(v, "totalCount"), 3);
	ck_assert_uint_eq(jlen(jkey(v, "stations")), 1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/search?q=zzzz", 200);
	ck_assert_double_eq(jnum(v, "totalCount"), 0);
	ck_assert_uint_eq(jlen(jkey(v, "cities")), 0);
	yajl_tree_free(v);

	apid_expect_400(&e, "/stations/search", "q: missing");
	apid_expect_400(&e, "/stations/search?q=", "q: must not be empty");
	apid_expect_400(&e, "/stations/search?q=%C0%AF", "q: not valid UTF-8");
	char path[512] = "/stations/search?q=";
	for (int i = 0; i < 101; i++)
		strcat(path, "a");
	apid_expect_400(&e, path, "q: longer than 100 characters");
	apid_expect_400(&e, "/stations/search?q=a&limit=101", "limit: 101 is out of range");
	apid_expect_400(&e, "/stations/search?q=a&page=0", "page: 0 is out of range");
	apid_expect_400(&e, "/stations/search?q=a&scope=phone", "scope: 'phone' is not a field");
	apid_teardown(&e);
}
END_TEST

START_TEST(regions_and_clusters)
{
	struct apid_env e;
	fixture(&e, NULL);
	yajl_val v = apid_json(&e, "/stations/regions?regions=all", 200);
	ck_assert(YAJL_IS_ARRAY(v));
	ck_assert_uint_eq(jlen(v), 17);
	yajl_val seoul = jat(v, 0);
	ck_assert_uint_eq(jlen(seoul), 4);
	ck_assert_str_eq(jstr(seoul, "regionName"), "서울특별시");
	ck_assert_double_eq(jnum(seoul, "count"), 3);
	ck_assert_double_eq(jnum(seoul, "latitude"), 37.540705);
	ck_assert_str_eq(jstr(jat(v, 16), "regionName"), "세종특별자치시");
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/regions?regions=busan,seoul", 200);
	ck_assert_uint_eq(jlen(v), 2);
	ck_assert_str_eq(jstr(jat(v, 0), "regionName"), "부산광역시");
	ck_assert_double_eq(jnum(jat(v, 0), "count"), 1);
	yajl_tree_free(v);
	apid_expect_400(&e, "/stations/regions?regions=atlantis",
			"regions: 'atlantis' is not a region");
	apid_expect_400(&e, "/stations/regions", "regions: missing");

	v = apid_json(&e,
		      "/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=0.5"
		      "&longitudeDelta=0.5&latitudeDivisionSize=2&longitudeDivisionSize=2",
		      200);
	ck_assert_uint_eq(jlen(v), 2);
	yajl_val c0 = jat(v, 0), c1 = jat(v, 1);
	ck_assert_uint_eq(jlen(c0), 4);
	ck_assert_double_eq(jnum(c0, "id"), 1);
	ck_assert_double_eq(jnum(c0, "count"), 1);
	ck_assert_double_eq(jnum(c1, "id"), 3);
	ck_assert_double_eq(jnum(c1, "count"), 2);
	ck_assert_double_eq_tol(jnum(c1, "latitude"), 37.75, 1e-6);
	yajl_tree_free(v);
	apid_expect_400(&e,
			"/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=0.5"
			"&longitudeDelta=0.5&latitudeDivisionSize=0&longitudeDivisionSize=2",
			"latitudeDivisionSize: 0 is out of range");
	apid_expect_400(&e,
			"/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=0.5"
			"&longitudeDelta=0.5&latitudeDivisionSize=2",
			"longitudeDivisionSize: missing");
	apid_teardown(&e);
}
END_TEST

START_TEST(filters_list_what_exists)
{
	struct apid_env e;
	fixture(&e, NULL);
	char *body = NULL;
	ck_assert_int_eq(apid_get(&e, "/filters", &body), 200);
	ck_assert_str_eq(body, "{\"companies\":[\"GN\",\"ME\",\"PI\"],\"capacities\":[\"7.00\","
			       "\"22.00\",\"50.00\",\"100.00\",\"200.00\"],\"connectorTypes\":["
			       "\"AC_3PHASE\",\"AC_SLOW\",\"DC_COMBO\",\"TYPE_99\"]}");
	free(body);
	apid_teardown(&e);
}
END_TEST

/* BITFIELD the counters of one slot, as realtimed does. */
static void count_slot_down(struct apid_env *e, const char *station, const char *charger,
			    int weekday, int hour, int samples, int uses, int out_of_service)
{
	char key[RKEYS_KEY_MAX], at[RKEYS_CG_COUNTERS][16], n[RKEYS_CG_COUNTERS][16];
	rkeys_congestion(key, sizeof(key), station, charger);
	int slot = rkeys_congestion_slot(weekday, hour);
	int counts[RKEYS_CG_COUNTERS] = {[RKEYS_CG_SAMPLES] = samples,
					 [RKEYS_CG_USES] = uses,
					 [RKEYS_CG_OUT_OF_SERVICE] = out_of_service};
	for (int c = 0; c < RKEYS_CG_COUNTERS; c++) {
		snprintf(at[c], sizeof(at[c]), "#%d", rkeys_congestion_counter_index(slot, c));
		snprintf(n[c], sizeof(n[c]), "%d", counts[c]);
	}
	apid_redis(e, 16,
		   (const char *[]){"BITFIELD", key, "OVERFLOW", "SAT", "INCRBY", "u12", at[0], n[0],
				    "INCRBY", "u12", at[1], n[1], "INCRBY", "u12", at[2], n[2]});
}

static void count_slot(struct apid_env *e, const char *station, const char *charger, int weekday,
		       int hour, int samples, int uses)
{
	count_slot_down(e, station, charger, weekday, hour, samples, uses, 0);
}

START_TEST(statistics_from_counters)
{
	struct apid_env e;
	fixture(&e, NULL);
	/* Friday 10:00: quick (01, 50 kW) 1 use in 4 samples; standard (02) 3 in 3 */
	count_slot(&e, "ME000001", "01", 4, 10, 4, 1);
	count_slot(&e, "ME000001", "02", 4, 10, 3, 3);
	count_slot(&e, "ME000001", "02", 6, 23, 10, 5); /* the last slot of the blob */
	yajl_val v = apid_json(&e, "/stations/ME000001/statistics?dayOfWeek=friday", 200);
	ck_assert_str_eq(jstr(v, "stationId"), "ME000001");
	ck_assert_double_eq(ratio_at(v, "quick", 10), 0.25);
	ck_assert_double_eq(ratio_at(v, "standard", 10), 1);
	ck_assert_double_eq(ratio_at(v, "quick", 9), -1);
	ck_assert_double_eq(ratio_at(v, "standard", 11), -1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000001/statistics?dayOfWeek=SUNDAY", 200);
	ck_assert_double_eq(ratio_at(v, "standard", 23), 0.5);
	ck_assert_double_eq(ratio_at(v, "quick", 23), -1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000001/statistics", 200); /* monday */
	ck_assert_double_eq(ratio_at(v, "standard", 10), -1);
	yajl_tree_free(v);
	/* PI000003 has no counters at all */
	v = apid_json(&e, "/stations/PI000003/statistics?dayOfWeek=friday", 200);
	ck_assert_double_eq(ratio_at(v, "standard", 0), -1);
	yajl_tree_free(v);
	apid_expect_400(&e, "/stations/ME000001/statistics?dayOfWeek=funday",
			"dayOfWeek: 'funday' is not a day");
	yajl_tree_free(apid_json(&e, "/stations/NOPE/statistics", 404));
	apid_teardown(&e);
}
END_TEST

/* Reliability (issue 10): outOfService per hour, apart from busy, pooled
 * over a class's chargers as congestion is. */
START_TEST(statistics_out_of_service)
{
	struct apid_env e;
	fixture(&e, NULL);
	/* ME000002 on Wednesdays at 08:00: the standard chargers 01 (7 kW: 10
	 * samples, 2 uses, 3 out of service) and 03 (unknown output: 6 samples,
	 * all out of service); the quick 02 (100 kW) out of service in 5 of 5.
	 * At 09:00 only 01, busy in 4 of 4. */
	count_slot_down(&e, "ME000002", "01", 2, 8, 10, 2, 3);
	count_slot_down(&e, "ME000002", "03", 2, 8, 6, 0, 6);
	count_slot_down(&e, "ME000002", "02", 2, 8, 5, 0, 5);
	count_slot_down(&e, "ME000002", "01", 2, 9, 4, 4, 0);
	yajl_val v = apid_json(&e, "/stations/ME000002/statistics?dayOfWeek=wednesday", 200);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 8), 0.5625); /* 9 / 16 */
	ck_assert_double_eq(share_at(v, "congestion", "standard", 8), 0.125);	 /* 2 / 16 */
	ck_assert_double_eq(share_at(v, "outOfService", "quick", 8), 1);
	ck_assert_double_eq(share_at(v, "congestion", "quick", 8), 0);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 9), 0);
	ck_assert_double_eq(share_at(v, "congestion", "standard", 9), 1);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 7), -1); /* no sample */
	ck_assert_double_eq(share_at(v, "outOfService", "quick", 9), -1);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000002/statistics?dayOfWeek=thursday", 200);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 8), -1);
	yajl_tree_free(v);
	/* a layout-1 value (676 bytes: u16 samples and uses, no out-of-service
	 * counter; realtimed converts it on its next sample) counts none */
	char at_s[16], at_u[16];
	int slot = rkeys_congestion_slot(2, 8);
	snprintf(at_s, sizeof(at_s), "#%d", slot * 2);
	snprintf(at_u, sizeof(at_u), "#%d", slot * 2 + 1);
	apid_redis(&e, 14,
		   (const char *[]){"BITFIELD", "ev:cg:ME000006:01", "SET", "u8", "#675", "0",
				    "INCRBY", "u16", at_s, "4", "INCRBY", "u16", at_u, "1"});
	v = apid_json(&e, "/stations/ME000006/statistics?dayOfWeek=wednesday", 200);
	ck_assert_double_eq(share_at(v, "congestion", "quick", 8), 0.25);
	ck_assert_double_eq(share_at(v, "outOfService", "quick", 8), 0);
	ck_assert_double_eq(share_at(v, "outOfService", "standard", 8), -1); /* no such charger */
	yajl_tree_free(v);
	apid_teardown(&e);
}
END_TEST

START_TEST(live_state_follows_the_stream)
{
	struct apid_env e;
	fixture(&e, NULL);
	/* ME000001/01 (STANDBY at load) starts charging: written as realtimed does */
	char when[32];
	long now = (long)time(NULL);
	apid_set_status(&e, "ME000001", "01", 3, now);
	apid_wait_for(&e, "/stations/ME000001",
		      "\"type\":\"DC_COMBO\",\"price\":null,\"capacity\":"
		      "50.00,\"latestUpdateTime\"",
		      100);
	apid_wait_for(&e, BOX,
		      "\"stationId\":\"ME000001\",\"stationName\":\"강남역 충전소\","
		      "\"latitude\":37.498,\"longitude\":127.028,\"isParkingFree\":true,"
		      "\"isPrivate\":false,\"availableCount\":0",
		      5000);
	/* an older status for the same charger is ignored */
	apid_redis(&e, 11,
		   (const char *[]){"XADD", RKEYS_CHANGES, "*", "s", "ME000001", "c", "01", "st",
				    "2", "t", "1000"});
	/* a newer one for another station, then a marker to know both were read */
	snprintf(when, sizeof(when), "%ld", now + 1);
	apid_redis(&e, 11,
		   (const char *[]){"XADD", RKEYS_CHANGES, "*", "s", "ME000002", "c", "01", "st",
				    "3", "t", when});
	apid_wait_for(&e, "/stations/summary?stationIds=ME000002", "\"availableCount\":0", 5000);
	char *body = NULL, *headers = NULL;
	ck_assert_int_eq(apid_get_headers(&e, "GET", "/stations/ME000001", &body, &headers), 200);
	ck_assert_ptr_nonnull(
		strstr(body, "\"state\":\"CHARGING_IN_PROGRESS\",\"method\":\"단독\""));
	ck_assert_ptr_null(strstr(headers, "X-Live-State")); /* Redis is fine: not stale */
	free(body);
	free(headers);
	/* live state present before start is loaded at start (a restart) */
	apid_stop(&e);
	apid_start(&e, (char *[]){"APID_MAX_MARKERS=3", NULL}, true);
	apid_wait_for(&e, "/stations/summary?stationIds=ME000001", "\"availableCount\":0", 5000);
	apid_teardown(&e);
}
END_TEST

/* A finished load: rows changed, the run recorded, NOTIFY on `channel`
 * (NULL: none, as on a replica). */
static void land_load(struct apid_env *e, const char *channel)
{
	apid_sql(e->pg, "BEGIN");
	apid_station(e->pg, "NEW00007", "새 충전소", "서울특별시 강남구 신사로 7", 37.52, 127.02,
		     "ME", "", "", "11");
	apid_charger(e->pg, "NEW00007", "01", "02", "7", 2, 0);
	apid_sql(e->pg, "INSERT INTO ingest_run (job, status, finished_at) "
			"VALUES ('chargers', 'ok', now())");
	if (channel)
		apid_sqlf(e->pg, "SELECT pg_notify('%s', currval('ingest_run_id_seq')::text)",
			  channel);
	apid_sql(e->pg, "COMMIT");
}

START_TEST(rebuild_on_notify)
{
	struct apid_env e;
	/* polling slow enough that only the NOTIFY can explain a quick rebuild */
	fixture(&e, (char *[]){"APID_MODEL_POLL_SECONDS=3600", NULL});
	land_load(&e, "ingest_chargers");
	apid_wait_for(&e, "/stations/NEW00007", "새 충전소", 3000);
	yajl_val v = apid_json(&e, "/readyz", 200);
	ck_assert_double_eq(jnum(v, "modelVersion"), 2);
	yajl_tree_free(v);
	apid_teardown(&e);
}
END_TEST

START_TEST(rebuild_on_ingest_run_without_notify)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_NOTIFY_CHANNEL=", NULL});
	land_load(&e, NULL);
	apid_wait_for(&e, "/stations/NEW00007", "새 충전소", 5000);
	/* a failed run changes nothing and triggers nothing */
	apid_sql(e.pg, "INSERT INTO ingest_run (job, status, finished_at, error) "
		       "VALUES ('chargers', 'failed', now(), 'x')");
	usleep(1500000);
	yajl_val v = apid_json(&e, "/readyz", 200);
	ck_assert_double_eq(jnum(v, "modelVersion"), 2);
	yajl_tree_free(v);
	apid_teardown(&e);
}
END_TEST

START_TEST(methods_and_operations)
{
	struct apid_env e;
	fixture(&e, NULL);
	char *body = NULL, *headers = NULL;
	ck_assert_int_eq(apid_get_headers(&e, "POST", "/stations/ME000001", &body, &headers), 405);
	ck_assert_ptr_nonnull(strstr(headers, "Allow: GET, HEAD"));
	ck_assert_ptr_nonnull(strstr(body, "\"message\""));
	free(body);
	free(headers);
	ck_assert_int_eq(apid_get_headers(&e, "DELETE", "/filters", &body, NULL), 405);
	free(body);
	/* HEAD: the GET's headers, no body (curl would wait for one) */
	const char head[] = "HEAD /filters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char *reply = NULL;
	ck_assert_int_gt(itest_raw_exchange(e.port, head, sizeof(head) - 1, 5000, &reply), 0);
	ck_assert_msg(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", reply);
	ck_assert_ptr_nonnull(strstr(reply, "Content-Type: application/json; charset=utf-8"));
	ck_assert_ptr_nonnull(strstr(reply, "Content-Length: 148\r\n"));
	ck_assert_ptr_nonnull(strstr(reply, "\r\n\r\n"));
	ck_assert_str_eq(strstr(reply, "\r\n\r\n"), "\r\n\r\n");
	free(reply);
	yajl_tree_free(apid_json(&e, "/healthz", 200));
	yajl_val v = apid_json(&e, "/nowhere", 404);
	ck_assert_str_eq(jstr(v, "message"), "no such path");
	yajl_tree_free(v);
	v = apid_json(&e, "/openapi.json", 200);
	ck_assert_str_eq(jstr(v, "openapi"), "3.1.0");
	yajl_tree_free(v);
	ck_assert_int_eq(apid_get_headers(&e, "GET", "/metrics", &body, &headers), 200);
	ck_assert_ptr_nonnull(strstr(headers, "text/plain; version=0.0.4"));
	static const char *const names[] = {
		"apid_http_requests_total{route=\"station\",status=\"405\"} 1",
		"apid_http_request_duration_seconds_bucket{route=\"healthz\"",
		"apid_model_version 1",
		"apid_model_stations 4",
		"apid_model_chargers 7",
		"apid_live_connected 1",
		"apid_live_sync_age_seconds",
		"apid_ready 1",
		"apid_store_errors_total{store=\"redis\"}",
		"apid_http_connections"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		ck_assert_msg(strstr(body, names[i]), "metrics lack %s", names[i]);
	free(body);
	free(headers);
	apid_teardown(&e);
}
END_TEST

/* Issue 10: freshness and free now. A status counts as fresh when it is a
 * real state at most APID_STATUS_MAX_AGE_SECONDS (600 here) old; the seed's
 * times are from 2024 or unknown, so nothing is free now until the live
 * state says so. */
START_TEST(freshness_and_free_now)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_STATUS_MAX_AGE_SECONDS=600", NULL});
	expect_ids(&e, BOX "&available=true", "");
	expect_ids(&e, BOX "&available=false", "ME000001,ME000002,ME000006");
	apid_expect_400(&e, BOX "&available=yes", "available: 'yes' is not a boolean");
	long now = (long)time(NULL);
	apid_set_status(&e, "ME000006", "01", 2, now);
	apid_set_status(&e, "ME000001", "02", 2, now - 5);
	apid_set_status(&e, "ME000002", "01", 2, now - 700); /* standby, but too old */
	apid_wait_for(&e, "/stations/ME000002", "\"state\":\"STANDBY\"", 5000);
	apid_wait_for(&e, BOX "&available=true", "ME000001", 5000);
	expect_ids(&e, BOX "&available=true", "ME000001,ME000006");
	expect_ids(&e, BOX "&available=true&chargerTypes=DC_COMBO&capacities=200", "ME000006");

	/* per charger age and per station confidence, only when asked */
	yajl_val v = apid_json(&e, "/stations/ME000001?freshness=true", 200);
	ck_assert_str_eq(jstr(v, "statusConfidence"), "stale"); /* 01 is from 2024 */
	yajl_val c0 = jat(jkey(v, "chargers"), 0), c1 = jat(jkey(v, "chargers"), 1);
	ck_assert_uint_eq(jlen(c0), 7);
	ck_assert_double_ge(jnum(c0, "statusAgeSeconds"), (double)(now - 1732500000));
	ck_assert_double_ge(jnum(c1, "statusAgeSeconds"), 5);
	ck_assert_double_le(jnum(c1, "statusAgeSeconds"), 60);
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000006?freshness=true", 200);
	ck_assert_str_eq(jstr(v, "statusConfidence"), "live");
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000002?freshness=true", 200);
	/* 01 too old, 02 STATUS_UNKNOWN, 03 COMMUNICATION_ERROR without a time */
	ck_assert_str_eq(jstr(v, "statusConfidence"), "unknown");
	ck_assert(YAJL_IS_NULL(jkey(jat(jkey(v, "chargers"), 2), "statusAgeSeconds")));
	yajl_tree_free(v);
	v = apid_json(&e, "/stations/ME000001", 200);
	ck_assert_ptr_null(jkey(v, "statusConfidence"));
	ck_assert_uint_eq(jlen(jat(jkey(v, "chargers"), 0)), 6);
	yajl_tree_free(v);
	apid_expect_400(&e, "/stations/ME000001?freshness=1", "freshness: '1' is not a boolean");

	/* clusters: availableCount once `available` is given; true drops the rest */
#define CELL "/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=0.5" \
	     "&longitudeDelta=0.5&latitudeDivisionSize=1&longitudeDivisionSize=1"
	v = apid_json(&e, CELL "&available=false", 200);
	ck_assert_uint_eq(jlen(v), 1);
	ck_assert_double_eq(jnum(jat(v, 0), "count"), 3);
	ck_assert_double_eq(jnum(jat(v, 0), "availableCount"), 2);
	yajl_tree_free(v);
	v = apid_json(&e, CELL "&available=true", 200);
	ck_assert_double_eq(jnum(jat(v, 0), "count"), 2);
	ck_assert_double_eq(jnum(jat(v, 0), "availableCount"), 2);
	yajl_tree_free(v);
	v = apid_json(&e, CELL, 200);
	ck_assert_ptr_null(jkey(jat(v, 0), "availableCount"));
	yajl_tree_free(v);
#undef CELL
	apid_teardown(&e);
}
END_TEST

/* Issue 10: representative capping. The marker limit is 3 here and the
 * box holds 4 stations: three in Seoul, one in Busan. sample=true answers 3
 * spread over the box (a 2 x 2 grid picked round-robin: Busan's cell gives
 * its station before Seoul's gives a second), not the first 3 by id. */
START_TEST(representative_capping)
{
	struct apid_env e;
	fixture(&e, NULL);
#define WIDE "/stations?latitude=36&longitude=128&latitudeDelta=3&longitudeDelta=3"
	apid_expect_400(&e, WIDE, "area too large for markers"); /* unchanged without sample */
	apid_expect_400(&e, WIDE "&sample=yes", "sample: 'yes' is not a boolean");
	yajl_val v = apid_json(&e, WIDE "&sample=true", 200);
	char ids[512];
	ids_of(jkey(v, "stations"), ids, sizeof(ids));
	ck_assert_str_eq(ids, "ME000001,ME000002,PI000003");
	ck_assert(jbool(v, "sampled"));
	ck_assert_double_eq(jnum(v, "matchCount"), 4);
	yajl_tree_free(v);
	/* within the limit, sample=true changes nothing */
	v = apid_json(&e, WIDE "&sample=true&companyNames=PI", 200);
	ck_assert_uint_eq(jlen(v), 1);
	ck_assert_uint_eq(jlen(jkey(v, "stations")), 1);
	yajl_tree_free(v);
#undef WIDE
	apid_teardown(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid");
	TCase *tc = tcase_create("contract");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stations_fields_order_and_edges);
	tcase_add_test(tc, stations_filters);
	tcase_add_test(tc, stations_errors);
	tcase_add_test(tc, station_detail);
	tcase_add_test(tc, summary_in_the_order_asked);
	tcase_add_test(tc, search_korean_substring);
	tcase_add_test(tc, regions_and_clusters);
	tcase_add_test(tc, filters_list_what_exists);
	tcase_add_test(tc, statistics_from_counters);
	tcase_add_test(tc, statistics_out_of_service);
	tcase_add_test(tc, live_state_follows_the_stream);
	tcase_add_test(tc, rebuild_on_notify);
	tcase_add_test(tc, rebuild_on_ingest_run_without_notify);
	tcase_add_test(tc, methods_and_operations);
	tcase_add_test(tc, freshness_and_free_now);
	tcase_add_test(tc, representative_capping);
	suite_add_tcase(s, tc);
	return s;
}
