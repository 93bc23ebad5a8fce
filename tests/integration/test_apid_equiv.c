/* GET /stations equals a SQL query over the same data: 200 seeded random
 * boxes and filter sets over a few thousand generated stations (points on
 * a 0.001-degree lattice and box edges on a 0.0005 one, so edges are hit),
 * comparing ids, order, availableCount and quickChargerCount. */
#include "testmain.h"

#include "test_apid.h"

#define REDIS_DB 12
#define QUERIES	 200

/* The definition the contract gives, in SQL: live station in the box whose
 * operator is one of the companies (if given) and with a live charger of
 * one of the types and one of the capacities (each if given). */
static const char sql_expected[] =
	"SELECT s.stat_id, "
	"  (SELECT count(*) FROM charger c WHERE c.stat_id = s.stat_id AND c.deleted_at IS NULL "
	"     AND c.stat = 2), "
	"  (SELECT count(*) FROM charger c WHERE c.stat_id = s.stat_id AND c.deleted_at IS NULL "
	"     AND c.output_kw >= 50) "
	"FROM station s "
	"WHERE s.deleted_at IS NULL AND s.lat BETWEEN $1 AND $2 AND s.lng BETWEEN $3 AND $4 "
	"  AND ($5::text[] IS NULL OR s.busi_nm = ANY ($5) OR s.bnm = ANY ($5) "
	"       OR s.busi_id = ANY ($5)) "
	"  AND EXISTS (SELECT 1 FROM charger c WHERE c.stat_id = s.stat_id AND c.deleted_at IS "
	"NULL "
	"       AND ($6::text[] IS NULL OR c.chger_type = ANY ($6)) "
	"       AND ($7::numeric[] IS NULL OR c.output_kw = ANY ($7))) "
	"ORDER BY s.stat_id COLLATE \"C\"";

/* Deterministic data: setseed makes random() repeat. */
static const char sql_generate[] =
	"SELECT setseed(0.42);"
	"INSERT INTO station (stat_id, name, addr, lat, lng, busi_id, bnm, busi_nm, zcode, "
	"  content_hash) "
	"SELECT format('EQ%s', lpad(i::text, 5, '0')), '충전소 ' || i, '서울특별시 어딘가 ' || i, "
	"  round((37.40 + random() * 0.30)::numeric, 3)::float8, "
	"  round((126.80 + random() * 0.40)::numeric, 3)::float8, "
	"  (ARRAY['ME', 'GN', 'PI', 'EV'])[1 + floor(random() * 4)::int], "
	"  (ARRAY['환경부', 'GS', '차지비', ''])[1 + floor(random() * 4)::int], "
	"  (ARRAY['환경부', 'GS칼텍스', '차지비', '에버온'])[1 + floor(random() * 4)::int], "
	"  '11', '\\x00' "
	"FROM generate_series(1, 3000) AS i;"
	"INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, stat, content_hash) "
	"SELECT s.stat_id, lpad(k::text, 2, '0'), "
	"  (ARRAY['01', '02', '04', '05', '07', '99'])[1 + floor(random() * 6)::int], "
	"  (ARRAY[7, 11, 22, 50, 100, 200, NULL])[1 + floor(random() * 7)::int], "
	"  (ARRAY[1, 2, 2, 3, 9])[1 + floor(random() * 5)::int], '\\x00' "
	"FROM station s, generate_series(1, 4) AS k WHERE k <= 1 + (hashtext(s.stat_id) & 3);"
	"UPDATE station SET deleted_at = now() WHERE random() < 0.05;"
	"UPDATE charger SET deleted_at = now() WHERE random() < 0.10;";

static const char *const type_names[] = {"DC_FAST",	"AC_SLOW",   "DC_COMBO",
					 "DC_DC_COMBO", "AC_3PHASE", "TYPE_99"};
static const char *const type_codes[] = {"01", "02", "04", "05", "07", "99"};
static const char *const capacities[] = {"7", "11.00", "22", "50.00", "100", "200", "3.5"};
/* URL-encoded for the request, plain for SQL */
static const char *const companies_url[] = {
	"ME", "GS", "%ED%99%98%EA%B2%BD%EB%B6%80", "%EC%B0%A8%EC%A7%80%EB%B9%84", "PI", "nobody"};
static const char *const companies_sql[] = {"ME", "GS", "환경부", "차지비", "PI", "nobody"};

static unsigned next(unsigned *state)
{
	*state = *state * 1103515245u + 12345u;
	return (*state >> 8) & 0xffffff;
}

/* Pick up to `max` distinct indexes of n into picks; returns how many. */
static size_t pick(unsigned *rng, size_t n, size_t max, size_t *picks)
{
	size_t count = next(rng) % (max + 1), got = 0;
	for (size_t i = 0; i < count; i++) {
		size_t k = next(rng) % n;
		bool dup = false;
		for (size_t j = 0; j < got; j++)
			dup = dup || picks[j] == k;
		if (!dup)
			picks[got++] = k;
	}
	return got;
}

static void append(char *out, size_t outlen, const char *text)
{
	strncat(out, text, outlen - strlen(out) - 1);
}

START_TEST(stations_equal_sql)
{
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), REDIS_DB);
	apid_redis_setup(&e, url);
	free(url);
	apid_sql(e.pg, sql_generate);
	apid_start(&e, (char *[]){"APID_MAX_MARKERS=100000", NULL}, true);
	unsigned rng = 20241125;
	size_t nonempty = 0, filtered = 0;
	for (int q = 0; q < QUERIES; q++) {
		/* center and half-widths on a 0.0005 lattice */
		char lat[32], lng[32], dlat[32], dlng[32];
		snprintf(lat, sizeof(lat), "%.4f", 37.40 + (next(&rng) % 600) * 0.0005);
		snprintf(lng, sizeof(lng), "%.4f", 126.80 + (next(&rng) % 800) * 0.0005);
		snprintf(dlat, sizeof(dlat), "%.4f", 0.0005 + (next(&rng) % 120) * 0.0005);
		snprintf(dlng, sizeof(dlng), "%.4f", 0.0005 + (next(&rng) % 120) * 0.0005);
		char path[2048], types_sql[256] = "{", caps_sql[256] = "{", comp_sql[256] = "{";
		snprintf(path, sizeof(path),
			 "/stations?latitude=%s&longitude=%s&latitudeDelta=%s&longitudeDelta=%s",
			 lat, lng, dlat, dlng);
		size_t picks[3], n;
		n = pick(&rng, ARRAY_LEN(type_names), 2, picks);
		if (n) {
			append(path, sizeof(path), "&chargerTypes=");
			for (size_t i = 0; i < n; i++) {
				append(path, sizeof(path), i ? "," : "");
				append(path, sizeof(path), type_names[picks[i]]);
				append(types_sql, sizeof(types_sql), i ? "," : "");
				append(types_sql, sizeof(types_sql), type_codes[picks[i]]);
			}
		}
		bool has_types = n > 0;
		n = pick(&rng, ARRAY_LEN(capacities), 2, picks);
		if (n) {
			append(path, sizeof(path), "&capacities=");
			for (size_t i = 0; i < n; i++) {
				append(path, sizeof(path), i ? "," : "");
				append(path, sizeof(path), capacities[picks[i]]);
				append(caps_sql, sizeof(caps_sql), i ? "," : "");
				append(caps_sql, sizeof(caps_sql), capacities[picks[i]]);
			}
		}
		bool has_caps = n > 0;
		n = pick(&rng, ARRAY_LEN(companies_sql), 2, picks);
		if (n) {
			append(path, sizeof(path), "&companyNames=");
			for (size_t i = 0; i < n; i++) {
				append(path, sizeof(path), i ? "," : "");
				append(path, sizeof(path), companies_url[picks[i]]);
				append(comp_sql, sizeof(comp_sql), i ? "," : "");
				append(comp_sql, sizeof(comp_sql), companies_sql[picks[i]]);
			}
		}
		bool has_comp = n > 0;
		append(types_sql, sizeof(types_sql), "}");
		append(caps_sql, sizeof(caps_sql), "}");
		append(comp_sql, sizeof(comp_sql), "}");
		filtered += has_types || has_caps || has_comp;

		/* the box exactly as apid computes it, from the same text */
		double la = strtod(lat, NULL), lo = strtod(lng, NULL), dla = strtod(dlat, NULL),
		       dlo = strtod(dlng, NULL);
		char b[4][40];
		snprintf(b[0], sizeof(b[0]), "%.17g", la - dla);
		snprintf(b[1], sizeof(b[1]), "%.17g", la + dla);
		snprintf(b[2], sizeof(b[2]), "%.17g", lo - dlo);
		snprintf(b[3], sizeof(b[3]), "%.17g", lo + dlo);
		const char *values[] = {b[0],
					b[1],
					b[2],
					b[3],
					has_comp ? comp_sql : NULL,
					has_types ? types_sql : NULL,
					has_caps ? caps_sql : NULL};
		PGresult *res = PQexecParams(e.pg, sql_expected, 7, NULL, values, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			      PQresultErrorMessage(res));
		yajl_val v = apid_json(&e, path, 200);
		yajl_val list = jkey(v, "stations");
		ck_assert_msg(jlen(list) == (size_t)PQntuples(res),
			      "query %d %s: %zu stations, SQL %d", q, path, jlen(list),
			      PQntuples(res));
		for (int r = 0; r < PQntuples(res); r++) {
			yajl_val st = jat(list, (size_t)r);
			ck_assert_msg(strcmp(jstr(st, "stationId"), PQgetvalue(res, r, 0)) == 0,
				      "query %d %s: #%d is %s, SQL %s", q, path, r,
				      jstr(st, "stationId"), PQgetvalue(res, r, 0));
			ck_assert_msg(jnum(st, "availableCount") == atof(PQgetvalue(res, r, 1)),
				      "query %d: %s availableCount", q, PQgetvalue(res, r, 0));
			ck_assert_msg(jnum(st, "quickChargerCount") == atof(PQgetvalue(res, r, 2)),
				      "query %d: %s quickChargerCount", q, PQgetvalue(res, r, 0));
		}
		nonempty += PQntuples(res) > 0;
		PQclear(res);
		yajl_tree_free(v);
	}
	/* the random sets must exercise something */
	ck_assert_uint_gt(nonempty, QUERIES / 2); /* most boxes hold stations */
	ck_assert_uint_gt(filtered, QUERIES / 2);
	apid_teardown(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_equiv");
	TCase *tc = tcase_create("sql");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, stations_equal_sql);
	suite_add_tcase(s, tc);
	return s;
}
