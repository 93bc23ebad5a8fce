/* upstream: URLs, the page parser on the fixtures in tests/data/upstream/
 * (envelope shapes, gateway and service errors, truncated and empty bodies),
 * fed whole and in small chunks, classification, and the key ring. */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kst.h"
#include "upstream.h"

static char *slurp(const char *name, size_t *len)
{
	char path[4096];
	const char *root = getenv("TEST_ROOT");
	snprintf(path, sizeof(path), "%s/tests/data/upstream/%s", root ? root : ".", name);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "open %s", path);
	char *data = NULL;
	size_t n = 0;
	FILE *mem = open_memstream(&data, &n);
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, got, mem);
	fclose(mem);
	fclose(f);
	*len = n;
	return data;
}

struct seen {
	long items;
	long positions[16];
	char stat_ids[16][16];
};

static bool count_item(void *ctx, const struct record_raw *raw, long position)
{
	struct seen *s = ctx;
	if (s->items < 16) {
		s->positions[s->items] = position;
		const char *text;
		size_t len;
		if (record_raw_get(raw, RF_STAT_ID, &text, &len) != RECORD_JSON_ABSENT && len < 16) {
			memcpy(s->stat_ids[s->items], text, len);
			s->stat_ids[s->items][len] = '\0';
		}
	}
	s->items++;
	return true;
}

/* Parse body fed in `chunk`-byte pieces (0: whole). */
static enum upstream_action parse(const char *data, size_t len, size_t chunk, long status,
				  struct upstream_result *res, struct seen *seen)
{
	memset(seen, 0, sizeof(*seen));
	struct upstream_page *p = upstream_page_new(count_item, seen);
	ck_assert_ptr_nonnull(p);
	size_t off = 0;
	bool ok = true;
	while (ok && off < len) {
		size_t n = chunk && chunk < len - off ? chunk : len - off;
		ok = upstream_page_feed(p, data + off, n);
		off += n;
	}
	enum upstream_action a = upstream_page_finish(p, status, res);
	/* the same parser, reset, must read the same body again */
	ck_assert(upstream_page_reset(p));
	upstream_page_free(p);
	return a;
}

static const struct {
	const char *file;
	long status;
	enum upstream_action action;
	const char *code;
	long items;
	const char *reason_has;
} cases[] = {
	{"envelope_array.json", 200, UPSTREAM_OK, "00", 2, ""},
	{"envelope_single.json", 200, UPSTREAM_OK, "00", 1, ""},
	{"envelope_items_empty.json", 200, UPSTREAM_OK, "00", 0, ""},
	{"envelope_reordered.json", 200, UPSTREAM_OK, "00", 2, ""},
	{"truncated.json", 200, UPSTREAM_RETRY, "", 1, "truncated"},
	{"empty.txt", 200, UPSTREAM_RETRY, "", 0, "empty body"},
	{"blank.txt", 200, UPSTREAM_RETRY, "", 0, "empty body"},
	{"service_error_22.json", 200, UPSTREAM_NEXT_KEY, "22", 0, "service error 22"},
	{"service_error_22.xml", 200, UPSTREAM_NEXT_KEY, "22", 0, "LIMITED"},
	{"service_error_10.xml", 200, UPSTREAM_FAIL, "10", 0, "INVALID"},
	{"gateway_01.xml", 200, UPSTREAM_RETRY, "01", 0, "APPLICATION_ERROR"},
	{"gateway_10.xml", 200, UPSTREAM_FAIL, "10", 0, "INVALID_REQUEST_PARAMETER_ERROR"},
	{"gateway_12.xml", 200, UPSTREAM_CONFIG, "12", 0, "NO_OPENAPI_SERVICE_ERROR"},
	{"gateway_20.xml", 200, UPSTREAM_CONFIG, "20", 0, "SERVICE_ACCESS_DENIED_ERROR"},
	{"gateway_22.xml", 200, UPSTREAM_NEXT_KEY, "22", 0, "LIMITED_NUMBER"},
	{"gateway_30.xml", 200, UPSTREAM_CONFIG, "30", 0, "SERVICE_KEY_IS_NOT_REGISTERED_ERROR"},
	{"gateway_31.xml", 200, UPSTREAM_CONFIG, "31", 0, "DEADLINE_HAS_EXPIRED_ERROR"},
	{"gateway_32.xml", 200, UPSTREAM_CONFIG, "32", 0, "UNREGISTERED_IP_ERROR"},
	{"gateway_99.xml", 200, UPSTREAM_RETRY, "99", 0, "UNKNOWN_ERROR"},
	{"gateway_30.xml", 503, UPSTREAM_CONFIG, "30", 0, "HTTP 503"},
	{"gateway_01.xml", 500, UPSTREAM_RETRY, "01", 0, "HTTP 500"},
	{"html_502.html", 502, UPSTREAM_RETRY, "", 0, "HTTP 502"},
	{"envelope_array.json", 503, UPSTREAM_RETRY, "", 2, "HTTP 503"},
	{"envelope_array.json", 404, UPSTREAM_FAIL, "", 2, "HTTP 404"},
	{"empty.txt", 500, UPSTREAM_RETRY, "", 0, "HTTP 500"},
	{"dirty.json", 200, UPSTREAM_OK, "00", 11, ""},
};

START_TEST(fixtures)
{
	static const size_t chunks[] = {0, 1, 7, 4096};
	size_t len;
	char *data = slurp(cases[_i].file, &len);
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct upstream_result res;
		struct seen seen;
		enum upstream_action a = parse(data, len, chunks[c], cases[_i].status, &res, &seen);
		ck_assert_msg(a == cases[_i].action, "%s (HTTP %ld, chunk %zu): %s, want %s: %s",
			      cases[_i].file, cases[_i].status, chunks[c], upstream_action_name(a),
			      upstream_action_name(cases[_i].action), res.reason);
		ck_assert_int_eq(res.action, a);
		ck_assert_str_eq(res.code, cases[_i].code);
		ck_assert_int_eq(seen.items, cases[_i].items);
		ck_assert_int_eq(res.items, cases[_i].items);
		ck_assert_msg(strstr(res.reason, cases[_i].reason_has), "%s: reason '%s' lacks '%s'",
			      cases[_i].file, res.reason, cases[_i].reason_has);
	}
	free(data);
}
END_TEST

START_TEST(envelope_values)
{
	size_t len;
	char *data = slurp("envelope_reordered.json", &len);
	struct upstream_result res;
	struct seen seen;
	ck_assert_int_eq(parse(data, len, 3, 200, &res, &seen), UPSTREAM_OK);
	/* numbers sent as strings read the same */
	ck_assert(res.env.has_total_count && res.env.has_page_no && res.env.has_num_of_rows);
	ck_assert_int_eq(res.env.total_count, 2);
	ck_assert_int_eq(res.env.page_no, 1);
	ck_assert_int_eq(res.env.num_of_rows, 10);
	ck_assert_str_eq(res.env.result_msg, "NORMAL SERVICE.");
	ck_assert_int_eq(seen.positions[0], 0);
	ck_assert_int_eq(seen.positions[1], 1);
	ck_assert_str_eq(seen.stat_ids[0], "ME000001");
	free(data);
	data = slurp("envelope_single.json", &len);
	ck_assert_int_eq(parse(data, len, 0, 200, &res, &seen), UPSTREAM_OK);
	ck_assert_int_eq(seen.positions[0], 0);
	free(data);
}
END_TEST

START_TEST(missing_envelope_keys)
{
	static const struct {
		const char *body;
		enum upstream_action action;
		const char *reason_has;
	} bodies[] = {
		{"{\"totalCount\":0,\"items\":\"\"}", UPSTREAM_RETRY, "no resultCode"},
		{"{\"resultCode\":\"00\",\"items\":\"\"}", UPSTREAM_RETRY, "no totalCount"},
		{"[1,2,3]", UPSTREAM_RETRY, "not an object"},
		{"{\"resultCode\":\"00\",\"totalCount\":1,\"items\":{\"item\":[{\"a\":1}]}} x",
		 UPSTREAM_RETRY, "malformed JSON"},
		{"{\"resultCode\":\"0\",\"totalCount\":0,\"items\":{\"item\":[]}}", UPSTREAM_OK, ""},
		{"{\"resultCode\":\"03\",\"resultMsg\":\"NODATA_ERROR\",\"totalCount\":0}", UPSTREAM_RETRY,
		 "service error 03 NODATA_ERROR"},
		{"{\"response\":{\"header\":{\"resultCode\":\"00\"},\"body\":{\"totalCount\":1,"
		 "\"items\":{\"item\":{\"statId\":\"X\"}}}}}",
		 UPSTREAM_OK, ""},
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct upstream_result res;
		struct seen seen;
		enum upstream_action a =
			parse(bodies[i].body, strlen(bodies[i].body), 0, 200, &res, &seen);
		ck_assert_msg(a == bodies[i].action && strstr(res.reason, bodies[i].reason_has),
			      "%s: %s (%s)", bodies[i].body, upstream_action_name(a), res.reason);
	}
}
END_TEST

static bool stop_at_second(void *ctx, const struct record_raw *raw, long position)
{
	(void)raw;
	(void)ctx;
	return position < 1;
}

START_TEST(callback_stops_parse)
{
	size_t len;
	char *data = slurp("envelope_array.json", &len);
	struct upstream_page *p = upstream_page_new(stop_at_second, NULL);
	ck_assert(!upstream_page_feed(p, data, len));
	struct upstream_result res;
	ck_assert_int_eq(upstream_page_finish(p, 200, &res), UPSTREAM_FAIL);
	ck_assert_ptr_nonnull(strstr(res.reason, "stopped"));
	ck_assert_uint_eq(upstream_page_bytes(p), len);
	upstream_page_free(p);
	free(data);
}
END_TEST

START_TEST(attempt_outcomes)
{
	struct upstream_page *p = upstream_page_new(count_item, &(struct seen){0});
	struct upstream_result res;
	/* a transport failure: the error text is redacted into the reason */
	struct fetch_attempt a = {.attempt = 1, .retryable = true,
				  .error = "timed out at http://h/x?serviceKey=secret-key-1&pageNo=1"};
	ck_assert_int_eq(upstream_attempt_finish(p, &a, &res), UPSTREAM_RETRY);
	ck_assert_ptr_nonnull(strstr(res.reason, "transport: timed out"));
	ck_assert_ptr_null(strstr(res.reason, "secret-key-1"));
	a.retryable = false;
	ck_assert_int_eq(upstream_attempt_finish(p, &a, &res), UPSTREAM_FAIL);
	/* a complete response goes to the page parser */
	const char *body = "{\"resultCode\":\"00\",\"totalCount\":0,\"items\":\"\"}";
	ck_assert(upstream_page_reset(p));
	ck_assert(upstream_page_feed(p, body, strlen(body)));
	struct fetch_attempt done = {.attempt = 1, .transport_ok = true, .http_status = 200};
	ck_assert_int_eq(upstream_attempt_finish(p, &done, &res), UPSTREAM_OK);
	upstream_page_free(p);
}
END_TEST

START_TEST(urls)
{
	struct buf b = BUF_INIT;
	struct upstream_query q = {.op = UPSTREAM_OP_INFO, .page_no = 3, .num_of_rows = 9999};
	ck_assert(upstream_url(&b, "http://h/B552584/EvCharger/", "a+b/c=", &q));
	ck_assert_str_eq(buf_cstr(&b), "http://h/B552584/EvCharger/getChargerInfo?serviceKey="
				       "a%2Bb%2Fc%3D&pageNo=3&numOfRows=9999&dataType=JSON");
	buf_reset(&b);
	/* the portal's encoded form goes as is */
	struct upstream_query s = {.op = UPSTREAM_OP_STATUS, .page_no = 1, .num_of_rows = 10,
				   .period_minutes = 5, .zcode = "11"};
	ck_assert(upstream_url(&b, "http://h/x", "a%2Bb", &s));
	ck_assert_str_eq(buf_cstr(&b), "http://h/x/getChargerStatus?serviceKey=a%2Bb&pageNo=1&"
				       "numOfRows=10&dataType=JSON&period=5&zcode=11");
	buf_reset(&b);
	q.num_of_rows = 10000;
	ck_assert(!upstream_url(&b, "http://h", "k", &q));
	q.num_of_rows = 10;
	q.page_no = 0;
	ck_assert(!upstream_url(&b, "http://h", "k", &q));
	buf_free(&b);
}
END_TEST

START_TEST(codes_and_pages)
{
	ck_assert_int_eq(upstream_classify_code("00"), UPSTREAM_OK);
	ck_assert_int_eq(upstream_classify_code("1"), UPSTREAM_RETRY);
	ck_assert_int_eq(upstream_classify_code("22"), UPSTREAM_NEXT_KEY);
	ck_assert_int_eq(upstream_classify_code("30"), UPSTREAM_CONFIG);
	ck_assert_int_eq(upstream_classify_code("10"), UPSTREAM_FAIL);
	ck_assert_int_eq(upstream_classify_code("77"), UPSTREAM_RETRY);
	ck_assert_int_eq(upstream_page_count(0, 10), 0);
	ck_assert_int_eq(upstream_page_count(20, 10), 2);
	ck_assert_int_eq(upstream_page_count(21, 10), 3);
	ck_assert_int_eq(upstream_expected_items(21, 3, 10), 1);
	ck_assert_int_eq(upstream_expected_items(21, 2, 10), 10);
	ck_assert_int_eq(upstream_expected_items(21, 4, 10), 0);
	ck_assert_int_eq(upstream_expected_items(0, 1, 10), 0);
}
END_TEST

START_TEST(key_ring)
{
	const char *keys[] = {"key-one", "key-two"};
	struct upstream_keys *ring = upstream_keys_new(keys, 2, 3);
	time_t now;
	ck_assert(kst_parse("20240601120000", &now));
	int idx = -1;
	/* three calls on the first key, then the client-side limit moves on */
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(upstream_keys_take(ring, now, &idx), "key-one");
		ck_assert_int_eq(idx, 0);
	}
	ck_assert_str_eq(upstream_keys_take(ring, now, &idx), "key-two");
	ck_assert_int_eq(upstream_keys_calls(ring, 0), 3);
	/* the gateway's 22, twice (concurrent pages): one key set aside */
	upstream_keys_exhausted(ring, 1, now);
	upstream_keys_exhausted(ring, 1, now);
	ck_assert_uint_eq(upstream_keys_usable(ring, now), 0);
	ck_assert_ptr_null(upstream_keys_take(ring, now, &idx));
	/* back after midnight Korea time */
	time_t tomorrow;
	ck_assert(kst_parse("20240602000001", &tomorrow));
	ck_assert_uint_eq(upstream_keys_usable(ring, tomorrow), 2);
	ck_assert_ptr_nonnull(upstream_keys_take(ring, tomorrow, &idx));
	upstream_keys_exhausted(ring, idx, tomorrow);
	int other = -1;
	ck_assert_ptr_nonnull(upstream_keys_take(ring, tomorrow, &other));
	ck_assert_int_ne(other, idx);
	upstream_keys_free(ring);
	upstream_keys_free(NULL);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("upstream");
	tcase_add_loop_test(tc, fixtures, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, envelope_values);
	tcase_add_test(tc, missing_envelope_keys);
	tcase_add_test(tc, callback_stops_parse);
	tcase_add_test(tc, attempt_outcomes);
	tcase_add_test(tc, urls);
	tcase_add_test(tc, codes_and_pages);
	tcase_add_test(tc, key_ring);
	suite_add_tcase(s, tc);
	return s;
}
