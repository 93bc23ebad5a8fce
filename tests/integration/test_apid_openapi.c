/* /openapi.json is apid/openapi.json byte for byte (so the embedded copy
 * is current), and real answers of every endpoint (200s and errors) are
 * valid against the response schemas it gives. The validator covers the
 * JSON Schema subset the document uses: $ref (local), type (also lists;
 * integer = a whole number), const, enum, properties, required,
 * additionalProperties false, items, minItems, maxItems, minimum, maximum,
 * exclusiveMinimum, minLength, maxLength, pattern (POSIX ERE), oneOf. Any
 * other keyword in a schema fails the test, so the document cannot use
 * what is not checked. */
#include "testmain.h"

#include <math.h>
#include <regex.h>

#include "kst.h"
#include "test_apid.h"

#define REDIS_DB 15

static yajl_val doc; /* the parsed document */

static const char *const known_keywords[] = {"$ref",
					     "type",
					     "const",
					     "enum",
					     "properties",
					     "required",
					     "additionalProperties",
					     "items",
					     "minItems",
					     "maxItems",
					     "minimum",
					     "maximum",
					     "exclusiveMinimum",
					     "minLength",
					     "maxLength",
					     "pattern",
					     "oneOf",
					     "description",
					     "format",
					     "default"};

/* "#/components/schemas/X" */
static yajl_val resolve(const char *ref)
{
	ck_assert_msg(strncmp(ref, "#/", 2) == 0, "non-local $ref %s", ref);
	yajl_val v = doc;
	char part[128];
	const char *p = ref + 2;
	while (*p) {
		size_t n = strcspn(p, "/");
		ck_assert_uint_lt(n, sizeof(part));
		memcpy(part, p, n);
		part[n] = '\0';
		v = jkey(v, part);
		ck_assert_msg(v, "unresolved $ref %s", ref);
		p += n + (p[n] == '/');
	}
	return v;
}

static bool type_is(yajl_val value, const char *type)
{
	if (strcmp(type, "object") == 0)
		return YAJL_IS_OBJECT(value);
	if (strcmp(type, "array") == 0)
		return YAJL_IS_ARRAY(value);
	if (strcmp(type, "string") == 0)
		return YAJL_IS_STRING(value);
	if (strcmp(type, "number") == 0)
		return YAJL_IS_NUMBER(value);
	if (strcmp(type, "integer") == 0)
		return YAJL_IS_NUMBER(value) &&
		       (YAJL_IS_INTEGER(value) ||
			floor(YAJL_GET_DOUBLE(value)) == YAJL_GET_DOUBLE(value));
	if (strcmp(type, "boolean") == 0)
		return YAJL_IS_TRUE(value) || YAJL_IS_FALSE(value);
	if (strcmp(type, "null") == 0)
		return YAJL_IS_NULL(value);
	ck_abort_msg("unknown type %s", type);
	return false;
}

static double num(yajl_val v)
{
	return YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
}

static bool same_scalar(yajl_val a, yajl_val b)
{
	if (YAJL_IS_STRING(a) && YAJL_IS_STRING(b))
		return strcmp(a->u.string, b->u.string) == 0;
	if (YAJL_IS_NUMBER(a) && YAJL_IS_NUMBER(b))
		return num(a) == num(b);
	return a->type == b->type && (YAJL_IS_NULL(a) || YAJL_IS_TRUE(a) || YAJL_IS_FALSE(a));
}

static size_t chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Why `value` is not valid against `schema`, into why; true when valid. */
static bool valid(yajl_val schema, yajl_val value, const char *at, char *why, size_t whylen)
{
	for (size_t i = 0; i < jlen(schema); i++) {
		bool known = false;
		for (size_t k = 0; k < ARRAY_LEN(known_keywords); k++)
			known = known || strcmp(schema->u.object.keys[i], known_keywords[k]) == 0;
		ck_assert_msg(known, "schema keyword %s is not validated",
			      schema->u.object.keys[i]);
	}
	yajl_val kw;
	if ((kw = jkey(schema, "$ref")))
		return valid(resolve(YAJL_GET_STRING(kw)), value, at, why, whylen);
	if ((kw = jkey(schema, "type"))) {
		bool ok = false;
		if (YAJL_IS_STRING(kw))
			ok = type_is(value, YAJL_GET_STRING(kw));
		for (size_t i = 0; YAJL_IS_ARRAY(kw) && i < jlen(kw); i++)
			ok = ok || type_is(value, YAJL_GET_STRING(jat(kw, i)));
		if (!ok) {
			snprintf(why, whylen, "%s: wrong type", at);
			return false;
		}
	}
	if ((kw = jkey(schema, "const")) && !same_scalar(kw, value)) {
		snprintf(why, whylen, "%s: not the constant", at);
		return false;
	}
	if ((kw = jkey(schema, "enum"))) {
		bool ok = false;
		for (size_t i = 0; i < jlen(kw); i++)
			ok = ok || same_scalar(jat(kw, i), value);
		if (!ok) {
			snprintf(why, whylen, "%s: not in the enum", at);
			return false;
		}
	}
	if ((kw = jkey(schema, "oneOf"))) {
		int matches = 0;
		char ignored[256];
		for (size_t i = 0; i < jlen(kw); i++)
			matches += valid(jat(kw, i), value, at, ignored, sizeof(ignored));
		if (matches != 1) {
			snprintf(why, whylen, "%s: matches %d of oneOf", at, matches);
			return false;
		}
	}
	if (YAJL_IS_NUMBER(value)) {
		double v = num(value);
		if (((kw = jkey(schema, "minimum")) && v < num(kw)) ||
		    ((kw = jkey(schema, "maximum")) && v > num(kw)) ||
		    ((kw = jkey(schema, "exclusiveMinimum")) && v <= num(kw))) {
			snprintf(why, whylen, "%s: %g out of range", at, v);
			return false;
		}
	}
	if (YAJL_IS_STRING(value)) {
		const char *s = YAJL_GET_STRING(value);
		if (((kw = jkey(schema, "minLength")) && chars(s) < (size_t)num(kw)) ||
		    ((kw = jkey(schema, "maxLength")) && chars(s) > (size_t)num(kw))) {
			snprintf(why, whylen, "%s: length", at);
			return false;
		}
		if ((kw = jkey(schema, "pattern"))) {
			regex_t re;
			ck_assert_int_eq(
				regcomp(&re, YAJL_GET_STRING(kw), REG_EXTENDED | REG_NOSUB), 0);
			int rc = regexec(&re, s, 0, NULL, 0);
			regfree(&re);
			if (rc != 0) {
				snprintf(why, whylen, "%s: '%s' does not match the pattern", at, s);
				return false;
			}
		}
	}
	if (YAJL_IS_ARRAY(value)) {
		if (((kw = jkey(schema, "minItems")) && jlen(value) < (size_t)num(kw)) ||
		    ((kw = jkey(schema, "maxItems")) && jlen(value) > (size_t)num(kw))) {
			snprintf(why, whylen, "%s: %zu items", at, jlen(value));
			return false;
		}
		if ((kw = jkey(schema, "items"))) {
			for (size_t i = 0; i < jlen(value); i++) {
				char here[256];
				snprintf(here, sizeof(here), "%s[%zu]", at, i);
				if (!valid(kw, jat(value, i), here, why, whylen))
					return false;
			}
		}
	}
	if (YAJL_IS_OBJECT(value)) {
		yajl_val props = jkey(schema, "properties");
		if ((kw = jkey(schema, "required"))) {
			for (size_t i = 0; i < jlen(kw); i++) {
				if (!jkey(value, YAJL_GET_STRING(jat(kw, i)))) {
					snprintf(why, whylen, "%s: missing %s", at,
						 YAJL_GET_STRING(jat(kw, i)));
					return false;
				}
			}
		}
		yajl_val extra = jkey(schema, "additionalProperties");
		for (size_t i = 0; i < jlen(value); i++) {
			const char *name = value->u.object.keys[i];
			char here[256];
			snprintf(here, sizeof(here), "%s.%s", at, name);
			yajl_val sub = props ? jkey(props, name) : NULL;
			if (!sub && extra && YAJL_IS_FALSE(extra)) {
				snprintf(why, whylen, "%s: not in the schema", here);
				return false;
			}
			if (sub && !valid(sub, value->u.object.values[i], here, why, whylen))
				return false;
		}
	}
	return true;
}

/* The schema of GET `path_template`'s answer with `status`. */
static yajl_val response_schema(const char *path_template, long status)
{
	yajl_val op = jkey(jkey(jkey(doc, "paths"), path_template), "get");
	ck_assert_msg(op, "no GET %s in the document", path_template);
	char code[8];
	snprintf(code, sizeof(code), "%ld", status);
	yajl_val resp = jkey(jkey(op, "responses"), code);
	ck_assert_msg(resp, "GET %s: no %ld response in the document", path_template, status);
	if (jkey(resp, "$ref"))
		resp = resolve(YAJL_GET_STRING(jkey(resp, "$ref")));
	yajl_val content = jkey(resp, "content");
	yajl_val media = jkey(content, "application/json");
	ck_assert_msg(media, "GET %s %ld: no application/json content", path_template, status);
	return jkey(media, "schema");
}

static const struct {
	const char *path_template;
	const char *url;
	long status;
} cases[] = {
	{"/stations", "/stations?latitude=37.5&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5",
	 200},
	{"/stations",
	 "/stations?latitude=37.5&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5"
	 "&chargerTypes=DC_COMBO&capacities=50",
	 200},
	{"/stations", "/stations?latitude=95&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5",
	 400},
	{"/stations/{stationId}", "/stations/OA000001", 200},
	{"/stations/{stationId}", "/stations/OA000002", 200},
	{"/stations/{stationId}", "/stations/NOPE", 404},
	{"/stations", "/stations?latitude=37.5&longitude=127&latitudeDelta=5&longitudeDelta=5&sample=true",
	 200},
	{"/stations", "/stations?latitude=37.5&longitude=127&latitudeDelta=5&longitudeDelta=5&sample=1",
	 400},
	{"/stations/{stationId}", "/stations/OA000001?freshness=true", 200},
	{"/stations/{stationId}", "/stations/OA000002?freshness=true", 200},
	{"/stations/{stationId}", "/stations/OA000001?freshness=yes", 400},
	{"/stations",
	 "/stations?latitude=37.5&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5&available=true",
	 200},
	{"/stations",
	 "/stations?latitude=37.5&longitude=127&latitudeDelta=0.5&longitudeDelta=0.5&available=1",
	 400},
	{"/stations/clusters",
	 "/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=1"
	 "&longitudeDelta=1&latitudeDivisionSize=3&longitudeDivisionSize=3&available=false",
	 200},
	{"/stations/{stationId}/statistics", "/stations/OA000001/statistics?dayOfWeek=tuesday",
	 200},
	{"/stations/{stationId}/statistics", "/stations/OA000001/statistics?dayOfWeek=x", 400},
	{"/stations/{stationId}/statistics", "/stations/NOPE/statistics", 404},
	{"/stations/changes", "/stations/changes?timeout=0", 200},
	{"/stations/changes", "/stations/changes?since=0-0.0&timeout=0&limit=10", 200},
	{"/stations/changes", "/stations/changes?since=yesterday", 400},
	/* a 200 needs a time from now: checked after these */
	{"/stations/{stationId}/forecast", "/stations/OA000001/forecast?arriveAt=2020-01-01T00:00Z",
	 400},
	{"/stations/{stationId}/forecast", "/stations/NOPE/forecast?arriveAt=2020-01-01T00:00Z", 404},
	{"/stations/summary", "/stations/summary?stationIds=OA000002,OA000001", 200},
	{"/stations/summary", "/stations/summary", 400},
	{"/stations/search", "/stations/search?q=%EA%B0%95%EB%82%A8", 200},
	{"/stations/search", "/stations/search?q=%EA%B0%95&scope=stationId,speed", 200},
	{"/stations/search", "/stations/search?q=a&limit=1000", 400},
	{"/stations/regions", "/stations/regions?regions=all", 200},
	{"/stations/regions", "/stations/regions?regions=mars", 400},
	{"/stations/clusters",
	 "/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=1"
	 "&longitudeDelta=1&latitudeDivisionSize=3&longitudeDivisionSize=3",
	 200},
	{"/stations/clusters",
	 "/stations/clusters?latitude=37.5&longitude=127&latitudeDelta=1"
	 "&longitudeDelta=1&latitudeDivisionSize=3&longitudeDivisionSize=101",
	 400},
	{"/filters", "/filters", 200},
	{"/healthz", "/healthz", 200},
	{"/readyz", "/readyz", 200},
	{"/openapi.json", "/openapi.json", 200},
};

START_TEST(document_served_and_answers_valid)
{
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), REDIS_DB);
	apid_redis_setup(&e, url);
	free(url);
	apid_station(e.pg, "OA000001", "강남 충전소", "서울특별시 강남구 테헤란로 1", 37.5, 127.03,
		     "ME", "환경부", "환경부", "11");
	apid_station(e.pg, "OA000002", "강릉", "강원특별자치도 강릉시 1", 37.75, 128.9, "GN", "",
		     "", "51");
	apid_charger(e.pg, "OA000001", "01", "04", "50", 2, 1732500000);
	apid_charger(e.pg, "OA000001", "02", "02", "7", 3, 0);
	apid_charger(e.pg, "OA000002", "01", "X1", NULL, 9, 0);
	apid_sql(e.pg, "UPDATE charger SET method = '동시' WHERE chger_id = '02'");
	/* slot 34 (Tuesday 10 h): 3 samples, 2 uses, 1 out of service (rkeys.h
	 * u12 #3i, #3i+1, #3i+2) */
	apid_redis(&e, 16,
		   (const char *[]){"BITFIELD", "ev:cg:OA000001:01", "OVERFLOW", "SAT", "INCRBY",
				    "u12", "#102", "3", "INCRBY", "u12", "#103", "2", "INCRBY", "u12",
				    "#104", "1"});
	apid_start(&e, NULL, true);

	/* the served document is the file */
	char *path = itest_path("apid/openapi.json");
	char *file = itest_read_file(path);
	free(path);
	char *served = NULL;
	ck_assert_int_eq(apid_get(&e, "/openapi.json", &served), 200);
	ck_assert_msg(
		strcmp(served, file) == 0,
		"GET /openapi.json differs from apid/openapi.json: rebuild apid (make)");
	free(served);
	doc = apid_parse(file);
	free(file);
	ck_assert_str_eq(YAJL_GET_STRING(jkey(doc, "openapi")), "3.1.0");

	/* every path of the document is exercised below */
	yajl_val paths = jkey(doc, "paths");
	for (size_t i = 0; i < jlen(paths); i++) {
		const char *p = paths->u.object.keys[i];
		bool used = strcmp(p, "/metrics") == 0; /* text, not JSON */
		for (size_t k = 0; k < ARRAY_LEN(cases); k++)
			used = used || strcmp(cases[k].path_template, p) == 0;
		ck_assert_msg(used, "path %s of the document is not tested", p);
	}
	for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
		yajl_val answer = apid_json(&e, cases[k].url, cases[k].status);
		char why[512] = "";
		ck_assert_msg(valid(response_schema(cases[k].path_template, cases[k].status),
				    answer, "$", why, sizeof(why)),
			      "GET %s (%ld): %s", cases[k].url, cases[k].status, why);
		yajl_tree_free(answer);
	}
	/* forecasts: within the hour (live state blended in) and a day ahead */
	for (int k = 0; k < 2; k++) {
		char utc[KST_ISO_UTC_SIZE];
		kst_format_iso_utc(time(NULL) + (k ? 86400 : 600), utc);
		char *forecast_url = apid_fmt("/stations/OA000001/forecast?arriveAt=%s", utc);
		yajl_val answer = apid_json(&e, forecast_url, 200);
		char why[512] = "";
		ck_assert_msg(valid(response_schema("/stations/{stationId}/forecast", 200), answer,
				    "$", why, sizeof(why)),
			      "GET %s: %s", forecast_url, why);
		yajl_tree_free(answer);
		free(forecast_url);
	}
	/* every example the document gives is valid against its schema */
	size_t examples = 0;
	for (size_t i = 0; i < jlen(paths); i++) {
		yajl_val responses = jkey(jkey(paths->u.object.values[i], "get"), "responses");
		for (size_t k = 0; k < jlen(responses); k++) {
			yajl_val media = jkey(jkey(responses->u.object.values[k], "content"),
					      "application/json");
			yajl_val example = jkey(media, "example");
			if (!example)
				continue;
			char at[256], why[512] = "";
			snprintf(at, sizeof(at), "example of %s %s", paths->u.object.keys[i],
				 responses->u.object.keys[k]);
			ck_assert_msg(valid(jkey(media, "schema"), example, at, why, sizeof(why)),
				      "%s", why);
			examples++;
		}
	}
	ck_assert_uint_ge(examples, 1); /* /stations/{stationId}/statistics has one */
	/* the validator does reject: a marker without its count */
	yajl_val bad =
		apid_parse("{\"stations\":[{\"stationId\":\"x\",\"stationName\":\"y\","
			   "\"latitude\":1,\"longitude\":2,\"isParkingFree\":true,"
			   "\"isPrivate\":false,\"availableCount\":1.5,\"quickChargerCount\":0}]}");
	char why[512];
	ck_assert(!valid(response_schema("/stations", 200), bad, "$", why, sizeof(why)));
	yajl_tree_free(bad);
	yajl_tree_free(doc);
	doc = NULL;
	apid_teardown(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_openapi");
	TCase *tc = tcase_create("openapi");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, document_served_and_answers_valid);
	suite_add_tcase(s, tc);
	return s;
}
