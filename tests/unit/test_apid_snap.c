/* apid snap + search: building the read model from rows, box queries
 * against a brute-force scan, filters, search ranking, cities, the /filters
 * answer and the live-state words (newer wins, carried to a new build). */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The modules are apid's; unit tests link only libcommon, so compile them in. */
#include "../../apid/search.c"
#include "../../apid/snap.c"

static void add_station(struct snap_builder *b, const char *id, const char *name, const char *addr,
			double lat, double lng, const char *busi_id, const char *busi_nm)
{
	char err[256];
	struct snap_station_row row = {
		.stat_id = id,
		.name = name,
		.addr = addr,
		.busi_id = busi_id,
		.busi_nm = busi_nm,
		.bnm = "",
		.zcode = "11",
		.lat = lat,
		.lng = lng,
		.parking_free = 1,
		.limit_yn = 0,
	};
	ck_assert_msg(snap_builder_station(b, &row, err, sizeof(err)), "%s", err);
}

static void add_charger(struct snap_builder *b, const char *st, const char *id, const char *type,
			int32_t ckw, int stat, int64_t t)
{
	char err[256];
	struct snap_charger_row row = {st, id, type, "단독", ckw, stat, t};
	ck_assert_msg(snap_builder_charger(b, &row, err, sizeof(err)), "%s", err);
}

static struct snap *small_model(void)
{
	struct snap_builder *b = snap_builder_new();
	ck_assert_ptr_nonnull(b);
	add_station(b, "A1", "강남역 충전소", "서울특별시 강남구 테헤란로 1", 37.498, 127.028, "ME",
		    "환경부");
	add_station(b, "A2", "역삼 주차장", "서울특별시 강남구 역삼로 2", 37.500, 127.036, "GN",
		    "GS칼텍스");
	add_station(b, "B1", "Busan Station", "부산광역시 동구 중앙대로 206", 35.115, 129.041, "ME",
		    "환경부");
	add_station(b, "C1", "no chargers", "서울특별시 중구 세종대로 1", 37.56, 126.97, "ME", "");
	add_charger(b, "A1", "01", "04", 5000, 2, 1000);
	add_charger(b, "A1", "02", "02", 700, 3, 1000);
	add_charger(b, "A2", "01", "02", 700, 2, 1000);
	add_charger(b, "B1", "01", "07", 10000, 9, 0);
	add_charger(b, "Z9", "01", "04", 5000, 2, 0); /* no such station: skipped */
	char err[256];
	struct snap *s = snap_builder_finish(b, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	return s;
}

START_TEST(build_drops_stations_without_chargers)
{
	struct snap *s = small_model();
	ck_assert_uint_eq(s->nstations, 3);
	ck_assert_uint_eq(s->nchargers, 4);
	uint32_t i;
	ck_assert(snap_find_station(s, "A2", &i));
	ck_assert_uint_eq(i, 1);
	ck_assert(!snap_find_station(s, "C1", &i));
	ck_assert(snap_find_station(s, "B1", &i));
	const struct snap_station *b1 = &s->stations[i];
	ck_assert_uint_eq(b1->charger_count, 1);
	ck_assert_uint_eq(b1->quick_count, 1);
	ck_assert_str_eq(snap_text(s, s->chargers[b1->first_charger].id), "01");
	ck_assert(snap_find_station(s, "A1", &i));
	ck_assert_uint_eq(snap_available(s, i), 1);
	ck_assert_uint_eq(s->region_counts[0], 3); /* zcode 11: seoul */
	char marker[512];
	snprintf(marker, sizeof(marker), "%.*s", (int)s->stations[0].marker_len,
		 snap_text(s, s->stations[0].marker));
	ck_assert_str_eq(marker, "{\"stationId\":\"A1\",\"stationName\":\"강남역 충전소\","
				 "\"latitude\":37.498,\"longitude\":127.028,\"isParkingFree\":true,"
				 "\"isPrivate\":false,\"availableCount\":");
	ck_assert_str_eq(s->filters_json, "{\"companies\":[\"GN\",\"ME\"],\"capacities\":[\"7.00\","
					  "\"50.00\",\"100.00\"],\"connectorTypes\":[\"AC_3PHASE\","
					  "\"AC_SLOW\",\"DC_COMBO\"]}");
	snap_unref(s);
}
END_TEST

START_TEST(any_order_but_no_duplicates)
{
	char err[256];
	struct snap_builder *b = snap_builder_new();
	add_station(b, "B", "", "", 0, 0, "", "");
	add_station(b, "A", "", "", 0, 0, "", "");
	add_charger(b, "B", "2", "02", 700, 2, 0);
	add_charger(b, "A", "1", "02", 700, 2, 0);
	add_charger(b, "B", "1", "02", 700, 3, 0);
	struct snap *s = snap_builder_finish(b, err, sizeof(err));
	ck_assert_msg(s, "%s", err);
	ck_assert_str_eq(snap_text(s, s->stations[0].id), "A");
	ck_assert_str_eq(snap_text(s, s->stations[1].id), "B");
	ck_assert_uint_eq(s->stations[1].first_charger, 1);
	ck_assert_str_eq(snap_text(s, s->chargers[1].id), "1");
	ck_assert_int_eq(snap_live_status(snap_live_word(s, 1)), 3); /* moved with its charger */
	ck_assert_str_eq(snap_text(s, s->chargers[2].id), "2");
	snap_unref(s);

	b = snap_builder_new();
	add_station(b, "A", "", "", 0, 0, "", "");
	add_station(b, "A", "", "", 0, 0, "", "");
	struct snap_charger_row ch = {"A", "1", "02", "", 700, 2, 0};
	ck_assert(!snap_builder_charger(b, &ch, err, sizeof(err)));
	ck_assert_str_eq(err, "duplicate station A");
	snap_builder_free(b);

	b = snap_builder_new();
	add_station(b, "A", "", "", 0, 0, "", "");
	add_charger(b, "A", "1", "02", 700, 2, 0);
	add_charger(b, "A", "1", "04", 5000, 2, 0);
	ck_assert_ptr_null(snap_builder_finish(b, err, sizeof(err)));
	ck_assert_str_eq(err, "duplicate charger A/1");
}
END_TEST

struct collect {
	uint32_t items[4096];
	size_t n;
};

static bool collect_fn(void *arg, uint32_t i)
{
	struct collect *c = arg;
	c->items[c->n++] = i;
	return true;
}

static int cmp_u32_test(const void *a, const void *b)
{
	return cmp_u32(a, b);
}

START_TEST(box_equals_brute_force)
{
	srand(42);
	struct snap_builder *b = snap_builder_new();
	for (int i = 0; i < 3000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "S%05d", i);
		/* clustered points, some exactly on grid lines */
		double lat = 37.4 + (rand() % 2000) / 10000.0;
		double lng = 126.9 + (rand() % 3000) / 10000.0;
		add_station(b, id, "n", "a", lat, lng, "ME", "");
	}
	for (int i = 0; i < 3000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "S%05d", i);
		add_charger(b, id, "01", "02", 700, 2, 0);
	}
	char err[256];
	struct snap *s = snap_builder_finish(b, err, sizeof(err));
	ck_assert_ptr_nonnull(s);
	for (int q = 0; q < 300; q++) {
		double lat = 37.38 + (rand() % 2400) / 10000.0,
		       lng = 126.88 + (rand() % 3400) / 10000.0;
		double dlat = (rand() % 300) / 10000.0, dlng = (rand() % 300) / 10000.0;
		struct snap_box box = {lat - dlat, lat + dlat, lng - dlng, lng + dlng};
		struct collect got = {.n = 0};
		snap_box_visit(s, &box, collect_fn, &got);
		qsort(got.items, got.n, sizeof(uint32_t), cmp_u32_test);
		size_t want = 0;
		for (uint32_t i = 0; i < s->nstations; i++) {
			const struct snap_station *st = &s->stations[i];
			if (st->lat >= box.min_lat && st->lat <= box.max_lat &&
			    st->lng >= box.min_lng && st->lng <= box.max_lng) {
				ck_assert_uint_lt(want, got.n);
				ck_assert_uint_eq(got.items[want], i);
				want++;
			}
		}
		ck_assert_uint_eq(want, got.n);
	}
	snap_unref(s);
}
END_TEST

START_TEST(filters_need_one_charger_passing_all)
{
	struct snap *s = small_model();
	uint32_t a1, a2;
	ck_assert(snap_find_station(s, "A1", &a1));
	ck_assert(snap_find_station(s, "A2", &a2));
	int dc_combo = MODEL_TYPE_DC_COMBO, ac_slow = MODEL_TYPE_AC_SLOW;
	int32_t kw50 = 5000, kw7 = 700;
	struct snap_filter f = {0};
	ck_assert(snap_station_matches(s, a1, &f));
	f = (struct snap_filter){
		.types = &dc_combo, .ntypes = 1, .capacities = &kw50, .ncapacities = 1};
	ck_assert(snap_station_matches(s, a1, &f));
	f.capacities = &kw7; /* A1 has DC_COMBO at 50 and AC_SLOW at 7: no one charger */
	ck_assert(!snap_station_matches(s, a1, &f));
	f.types = &ac_slow;
	ck_assert(snap_station_matches(s, a1, &f));
	const char *by_name[] = {"GS칼텍스"}, *by_id[] = {"ME"};
	f = (struct snap_filter){.companies = by_name, .ncompanies = 1};
	ck_assert(snap_station_matches(s, a2, &f));
	ck_assert(!snap_station_matches(s, a1, &f));
	f.companies = by_id;
	ck_assert(snap_station_matches(s, a1, &f));
	snap_unref(s);
}
END_TEST

START_TEST(search_ranks_name_before_address)
{
	struct snap *s = small_model();
	uint64_t *keys;
	size_t n;
	ck_assert(search_query(s->search, s->search_docs, "강남", &keys, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(keys[0], 0);		    /* A1: name */
	ck_assert_uint_eq(keys[1], 1ull << 32 | 1); /* A2: address */
	free(keys);
	ck_assert(search_query(s->search, s->search_docs, "BUSAN st", &keys, &n));
	ck_assert_uint_eq(n, 1);
	free(keys);
	ck_assert(search_query(s->search, s->search_docs, "칼텍", &keys, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(keys[0], 2ull << 32 | 1); /* operator */
	free(keys);
	ck_assert(search_query(s->search, s->search_docs, "역", &keys, &n)); /* one character */
	ck_assert_uint_eq(n, 3); /* 강남역, 역삼 and 부산광역시 */
	free(keys);
	ck_assert(search_query(s->search, s->search_docs, "없는말", &keys, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(keys);
	/* a gram present in two fields, but the query spans them: no match */
	ck_assert(search_query(s->search, s->search_docs, "소서", &keys, &n));
	ck_assert_uint_eq(n, 0);
	uint32_t cities[3];
	ck_assert_uint_eq(snap_cities_matching(s, "강남", cities, 3), 1);
	ck_assert_str_eq(snap_text(s, s->cities[cities[0]].name), "서울특별시 강남구");
	ck_assert_double_eq_tol(s->cities[cities[0]].lat, 37.499, 1e-9);
	ck_assert_uint_eq(snap_cities_matching(s, "구", cities, 1), 1);
	ck_assert_str_eq(snap_text(s, s->cities[cities[0]].name), "서울특별시 강남구");
	snap_unref(s);
}
END_TEST

START_TEST(live_newer_wins_and_carries)
{
	struct snap *s = small_model();
	uint32_t c, a1;
	ck_assert(snap_find_charger(s, "A1", "02", &c));
	ck_assert(snap_find_station(s, "A1", &a1));
	ck_assert(!snap_live_apply(s, c, 2, 999)); /* older than the load's 1000 */
	ck_assert(snap_live_apply(s, c, 2, 1000)); /* same time: the live feed wins */
	ck_assert_uint_eq(snap_available(s, a1), 2);
	ck_assert(snap_live_apply(s, c, 3, 1500));
	ck_assert_uint_eq(snap_available(s, a1), 1);
	ck_assert_int_eq(snap_live_status(snap_live_word(s, c)), 3);
	ck_assert_int_eq(snap_live_time(snap_live_word(s, c)), 1500);

	struct snap_builder *b = snap_builder_new();
	add_station(b, "A1", "강남역 충전소", "서울특별시 강남구 테헤란로 1", 37.498, 127.028, "ME",
		    "");
	add_station(b, "A3", "new", "x", 37.5, 127.0, "ME", "");
	add_charger(b, "A1", "02", "02", 700, 2, 1200); /* older than the live 1500 */
	add_charger(b, "A1", "03", "02", 700, 2, 1200); /* new charger */
	add_charger(b, "A3", "01", "02", 700, 2, 1200);
	char err[256];
	struct snap *next = snap_builder_finish(b, err, sizeof(err));
	ck_assert_ptr_nonnull(next);
	uint32_t *fresh;
	size_t nfresh;
	ck_assert(snap_live_carry(next, s, &fresh, &nfresh));
	ck_assert_uint_eq(nfresh, 2); /* A1 (charger 03) and A3 */
	ck_assert_uint_eq(fresh[0], 0);
	ck_assert_uint_eq(fresh[1], 1);
	free(fresh);
	ck_assert(snap_find_charger(next, "A1", "02", &c));
	ck_assert_int_eq(snap_live_status(snap_live_word(next, c)), 3);
	ck_assert_uint_eq(snap_available(next, 0), 1);
	snap_unref(s);
	ck_assert_ptr_eq(snap_ref(next), next);
	snap_unref(next);
	snap_unref(next);
	snap_unref(NULL);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_snap");
	TCase *tc = tcase_create("model");
	tcase_add_test(tc, build_drops_stations_without_chargers);
	tcase_add_test(tc, any_order_but_no_duplicates);
	tcase_add_test(tc, box_equals_brute_force);
	tcase_add_test(tc, filters_need_one_charger_passing_all);
	tcase_add_test(tc, search_ranks_name_before_address);
	tcase_add_test(tc, live_newer_wins_and_carries);
	suite_add_tcase(s, tc);
	return s;
}
