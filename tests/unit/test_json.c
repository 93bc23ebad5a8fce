/* json: generator (structure, escaping, UTF-8 repair, numbers, misuse) and
 * the yajl stream walker (paths, chunking, errors). Generated text is
 * checked byte for byte and, where useful, parsed back with yajl_tree. */
#include "testmain.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "buf.h"
#include "json.h"
#include "utf8.h"

/* ---- generator ---- */

START_TEST(gen_structure_and_commas)
{
	struct buf b = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &b);
	json_obj_begin(&g);
	json_kv_int(&g, "a", 1);
	json_key(&g, "b");
	json_arr_begin(&g);
	json_bool(&g, true);
	json_bool(&g, false);
	json_null(&g);
	json_arr_end(&g);
	json_key(&g, "c");
	json_obj_begin(&g);
	json_kv_str(&g, "d", "x");
	json_obj_end(&g);
	json_key(&g, "e");
	json_arr_begin(&g);
	json_arr_end(&g);
	json_key(&g, "f");
	json_obj_begin(&g);
	json_obj_end(&g);
	json_key(&g, "g");
	json_arr_begin(&g);
	json_arr_begin(&g);
	json_int(&g, -7);
	json_arr_end(&g);
	json_obj_begin(&g);
	json_obj_end(&g);
	json_raw(&g, "{\"cached\":1}", 12);
	json_uint(&g, 18446744073709551615ull);
	json_arr_end(&g);
	json_kv_null(&g, "h");
	json_kv_bool(&g, "i", true);
	json_kv_str(&g, "j", NULL);
	json_obj_end(&g);
	ck_assert(json_gen_finish(&g));
	ck_assert_str_eq(buf_cstr(&b), "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\"},\"e\":[],"
				       "\"f\":{},\"g\":[[-7],{},{\"cached\":1},18446744073709551615],"
				       "\"h\":null,\"i\":true,\"j\":null}");
	buf_free(&b);
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	const char *out;
} escape_cases[] = {
	{"plain", 5, "\"plain\""},
	{"say \"hi\"", 8, "\"say \\\"hi\\\"\""},
	{"back\\slash", 10, "\"back\\\\slash\""},
	{"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
	{"\x01\x1f", 2, "\"\\u0001\\u001f\""},
	{"a\0b", 3, "\"a\\u0000b\""},
	{"/ \x7f", 3, "\"/ \x7f\""}, /* '/' and DEL need no escape */
	{"강남", 6, "\"강남\""},
	/* outside the BMP: 4-byte UTF-8 as is, never a surrogate pair */
	{"\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""},
	{"\xe2\x80\xa8", 3, "\"\xe2\x80\xa8\""}, /* U+2028 passes */
	/* invalid UTF-8: one U+FFFD per maximal ill-formed subpart */
	{"a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\""},
	{"\xf0\x9f\x98" "A", 4, "\"\xef\xbf\xbd" "A\""},        /* truncated emoji */
	{"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},       /* overlong */
	{"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* CESU surrogate */
	{"end\xea\xb0", 5, "\"end\xef\xbf\xbd\""},              /* cut at the end */
	{"", 0, "\"\""},
};

START_TEST(gen_string_escapes)
{
	struct buf b = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &b);
	json_str_n(&g, escape_cases[_i].in, escape_cases[_i].len);
	ck_assert(json_gen_finish(&g));
	ck_assert_uint_eq(b.len, strlen(escape_cases[_i].out));
	ck_assert_str_eq(buf_cstr(&b), escape_cases[_i].out);
	ck_assert(utf8_valid(b.data, b.len));
	buf_free(&b);
}
END_TEST

/* Every byte value, in keys and values, comes out as JSON a strict parser
 * accepts; valid input survives the round trip unchanged. */
START_TEST(gen_round_trip_through_yajl)
{
	char all[128 + 16];
	for (int i = 0; i < 128; i++)
		all[i] = (char)(i == 0 ? 'x' : i); /* yajl_tree strings are C strings: no NUL */
	memcpy(all + 128, "강남\xf0\x9f\x98\x80\xc2\xa9", 12);
	size_t all_len = 140;
	struct buf b = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &b);
	json_obj_begin(&g);
	json_key_n(&g, all, all_len);
	json_str_n(&g, all, all_len);
	json_key(&g, "bytes");
	char raw[256];
	for (int i = 0; i < 256; i++)
		raw[i] = (char)(i == 0 ? 1 : i);
	json_str_n(&g, raw, sizeof(raw));
	json_obj_end(&g);
	ck_assert(json_gen_finish(&g));
	ck_assert(utf8_valid(b.data, b.len));

	char err[256];
	yajl_val root = yajl_tree_parse(b.data, err, sizeof(err));
	ck_assert_msg(root != NULL, "yajl: %s in %s", err, b.data);
	ck_assert(YAJL_IS_OBJECT(root));
	ck_assert_uint_eq(root->u.object.len, 2);
	ck_assert_uint_eq(strlen(root->u.object.keys[0]), all_len);
	ck_assert_int_eq(memcmp(root->u.object.keys[0], all, all_len), 0);
	const char *value = YAJL_GET_STRING(root->u.object.values[0]);
	ck_assert_ptr_nonnull(value);
	ck_assert_int_eq(memcmp(value, all, all_len), 0);
	/* bytes 0x80..0xFF alone are each invalid: 128 replacement characters */
	const char *bytes = YAJL_GET_STRING(root->u.object.values[1]);
	ck_assert_ptr_nonnull(bytes);
	ck_assert_uint_eq(strlen(bytes), 128 + 128 * 3);
	ck_assert_int_eq(memcmp(bytes + 128, UTF8_REPLACEMENT_TEXT, 3), 0);
	yajl_tree_free(root);
	buf_free(&b);
}
END_TEST

START_TEST(gen_numbers)
{
	struct buf b = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &b);
	json_arr_begin(&g);
	json_double(&g, 37.5665, 6);
	json_double(&g, 50, 2);
	json_double(&g, 0.1, JSON_SHORTEST);
	json_double(&g, NAN, 2);
	json_double(&g, INFINITY, JSON_SHORTEST);
	json_double(&g, -INFINITY, 1);
	json_int(&g, INT64_MIN);
	json_double(&g, 126.978, JSON_SHORTEST);
	json_arr_end(&g);
	ck_assert(json_gen_finish(&g));
	ck_assert_str_eq(buf_cstr(&b), "[37.566500,50.00,0.1,null,null,null,-9223372036854775808,"
				       "126.978]");
	buf_reset(&b);
	json_gen_init(&g, &b);
	json_obj_begin(&g);
	json_kv_double(&g, "ratio", 0.25, 2);
	json_kv_double(&g, "bad", NAN, JSON_SHORTEST);
	json_obj_end(&g);
	ck_assert(json_gen_finish(&g));
	ck_assert_str_eq(buf_cstr(&b), "{\"ratio\":0.25,\"bad\":null}");
	buf_free(&b);
}
END_TEST

enum misuse {
	MISUSE_KEY_AT_TOP,
	MISUSE_KEY_IN_ARRAY,
	MISUSE_VALUE_WITHOUT_KEY,
	MISUSE_TWO_KEYS,
	MISUSE_UNCLOSED,
	MISUSE_EXTRA_END,
	MISUSE_WRONG_END,
	MISUSE_TWO_TOP_VALUES,
	MISUSE_KEY_THEN_END,
	MISUSE_NOTHING,
	MISUSE_TOO_DEEP,
	MISUSE_COUNT
};

START_TEST(gen_misuse_is_reported)
{
	struct buf b = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &b);
	switch ((enum misuse)_i) {
	case MISUSE_KEY_AT_TOP:
		json_key(&g, "k");
		json_int(&g, 1);
		break;
	case MISUSE_KEY_IN_ARRAY:
		json_arr_begin(&g);
		json_key(&g, "k");
		json_int(&g, 1);
		json_arr_end(&g);
		break;
	case MISUSE_VALUE_WITHOUT_KEY:
		json_obj_begin(&g);
		json_int(&g, 1);
		json_obj_end(&g);
		break;
	case MISUSE_TWO_KEYS:
		json_obj_begin(&g);
		json_key(&g, "a");
		json_key(&g, "b");
		json_int(&g, 1);
		json_obj_end(&g);
		break;
	case MISUSE_UNCLOSED:
		json_arr_begin(&g);
		json_int(&g, 1);
		break;
	case MISUSE_EXTRA_END:
		json_arr_begin(&g);
		json_arr_end(&g);
		json_arr_end(&g);
		break;
	case MISUSE_WRONG_END:
		json_arr_begin(&g);
		json_obj_end(&g);
		break;
	case MISUSE_TWO_TOP_VALUES:
		json_int(&g, 1);
		json_int(&g, 2);
		break;
	case MISUSE_KEY_THEN_END:
		json_obj_begin(&g);
		json_key(&g, "a");
		json_obj_end(&g);
		break;
	case MISUSE_NOTHING:
		break;
	case MISUSE_TOO_DEEP:
		for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
			json_arr_begin(&g);
		for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
			json_arr_end(&g);
		break;
	case MISUSE_COUNT:
		break;
	}
	ck_assert_msg(!json_gen_finish(&g), "case %d accepted: %s", _i, buf_cstr(&b));
	buf_free(&b);
}
END_TEST

/* The apid case: a ~30 KB answer into a buffer reserved once appends in
 * place (no reallocation), and the document is valid JSON. */
START_TEST(gen_large_answer_in_place)
{
	struct buf b = BUF_INIT;
	ck_assert(buf_reserve(&b, 64 * 1024));
	char *before = b.data;
	struct json_gen g;
	json_gen_init(&g, &b);
	json_obj_begin(&g);
	json_key(&g, "stations");
	json_arr_begin(&g);
	for (int i = 0; i < 200; i++) {
		char id[16];
		snprintf(id, sizeof(id), "ME%06d", i);
		json_obj_begin(&g);
		json_kv_str(&g, "stationId", id);
		json_kv_str(&g, "stationName", "강남구청 \"본관\" 주차장");
		json_kv_double(&g, "latitude", 37.5 + i * 0.001, 6);
		json_kv_double(&g, "longitude", 127.0 + i * 0.001, 6);
		json_kv_bool(&g, "isParkingFree", i % 2);
		json_kv_bool(&g, "isPrivate", false);
		json_kv_int(&g, "availableCount", i % 5);
		json_kv_int(&g, "quickChargerCount", i % 3);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	json_obj_end(&g);
	ck_assert(json_gen_finish(&g));
	ck_assert_ptr_eq(b.data, before);
	ck_assert_uint_gt(b.len, 30000);
	char err[128];
	yajl_val root = yajl_tree_parse(b.data, err, sizeof(err));
	ck_assert_msg(root != NULL, "%s", err);
	const char *path[] = {"stations", NULL};
	yajl_val stations = yajl_tree_get(root, path, yajl_t_array);
	ck_assert_ptr_nonnull(stations);
	ck_assert_uint_eq(stations->u.array.len, 200);
	yajl_tree_free(root);
	buf_free(&b);
}
END_TEST

/* ---- stream ---- */

/* Records every event as "path type value\n", and collects the objects
 * at "items.item[]" (or a lone "items.item") into "k=v;..." lines, the way
 * an upstream page parser would. */
struct walk {
	struct buf events;
	struct buf records;
	int record_depth; /* -1 outside a record */
	int stop_after;   /* stop the parse at this event (0: never) */
	int nevents;
};

static const char *event_name(enum json_event t)
{
	static const char *const names[] = {"null", "bool", "num", "str",
					    "{",    "}",    "[",   "]"};
	return names[t];
}

static bool walk_cb(void *ctx, struct json_stream *js, const struct json_value *v)
{
	struct walk *w = ctx;
	char path[256];
	json_stream_path(js, path, sizeof(path));
	buf_printf(&w->events, "%s %s", path, event_name(v->type));
	if (v->type == JSON_STRING || v->type == JSON_NUMBER) {
		buf_putc(&w->events, ' ');
		buf_append(&w->events, v->text, v->len);
	}
	if (v->type == JSON_BOOL)
		buf_puts(&w->events, v->boolean ? " true" : " false");
	buf_putc(&w->events, '\n');

	bool at_item = json_stream_at(js, "items.item[]") || json_stream_at(js, "items.item");
	if (v->type == JSON_OBJ_BEGIN && at_item) {
		w->record_depth = (int)json_stream_depth(js);
	} else if (v->type == JSON_OBJ_END && at_item) {
		buf_putc(&w->records, '\n');
		w->record_depth = -1;
	} else if (w->record_depth >= 0 && (int)json_stream_depth(js) == w->record_depth + 1 &&
		   (v->type == JSON_STRING || v->type == JSON_NUMBER)) {
		size_t klen;
		const char *key = json_stream_key(js, &klen);
		ck_assert_ptr_nonnull(key);
		buf_append(&w->records, key, klen);
		buf_putc(&w->records, '=');
		buf_append(&w->records, v->text, v->len);
		buf_putc(&w->records, ';');
	}
	return !(w->stop_after && ++w->nevents >= w->stop_after);
}

static void walk_init(struct walk *w)
{
	memset(w, 0, sizeof(*w));
	w->record_depth = -1;
}

static void walk_free(struct walk *w)
{
	buf_free(&w->events);
	buf_free(&w->records);
}

/* Parse text in chunks of `chunk` bytes (0: all at once). */
static bool walk_text(struct walk *w, const char *text, size_t len, size_t chunk, unsigned flags,
		      char *err, size_t errlen)
{
	struct json_stream *js = json_stream_new(walk_cb, w, flags);
	ck_assert_ptr_nonnull(js);
	bool ok = true;
	size_t step = chunk ? chunk : (len ? len : 1);
	for (size_t off = 0; ok && off < len; off += step)
		ok = json_stream_feed(js, text + off, len - off < step ? len - off : step);
	if (ok)
		ok = json_stream_finish(js);
	snprintf(err, errlen, "%s", json_stream_error(js));
	if (ok)
		ck_assert_str_eq(json_stream_error(js), "");
	json_stream_free(js);
	return ok;
}

/* tests/data/json/<name>: under $TEST_DATA_DIR, $TEST_ROOT (run.sh sets
 * it), next to the binary (build/tests/unit -> ../../..), or the cwd. */
static char *read_data(const char *name, size_t *len)
{
	char candidates[4][PATH_MAX + 64];
	size_t n_candidates = 0;
	const char *dir = getenv("TEST_DATA_DIR");
	if (dir)
		snprintf(candidates[n_candidates++], sizeof(candidates[0]), "%s/json/%s", dir, name);
	const char *root = getenv("TEST_ROOT");
	if (root)
		snprintf(candidates[n_candidates++], sizeof(candidates[0]), "%s/tests/data/json/%s",
			 root, name);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(candidates[n_candidates++], sizeof(candidates[0]),
			 "%s/../../../tests/data/json/%s", exe, name);
	}
	snprintf(candidates[n_candidates++], sizeof(candidates[0]), "tests/data/json/%s", name);
	FILE *f = NULL;
	for (size_t i = 0; i < n_candidates && !f; i++)
		f = fopen(candidates[i], "rb");
	ck_assert_msg(f != NULL, "cannot find tests/data/json/%s (set TEST_DATA_DIR)", name);
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, got);
	fclose(f);
	ck_assert(buf_ok(&b));
	return buf_detach(&b, len);
}

START_TEST(stream_page_records_from_file)
{
	size_t len;
	char *text = read_data("charger_page.json", &len);
	struct walk w;
	walk_init(&w);
	char err[256];
	ck_assert_msg(walk_text(&w, text, len, 0, 0, err, sizeof(err)), "%s", err);
	const char *want =
		"statNm=강남구청 \"본관\" 주차장;statId=ME000001;chgerId=01;chgerType=04;"
		"addr=서울특별시 강남구 학동로 426;lat=37.5172;lng=127.0473;useTime=24시간 이용가능;"
		"busiId=ME;bnm=환경부;busiNm=환경부;stat=2;statUpdDt=20240102030405;output=100;"
		"zcode=11;note=\xf0\x9f\x98\x80 BMP 밖 문자;limitYn=N;delYn=N;\n"
		/* numbers arrive as written; the nested object's statId is not a field */
		"statNm=Jeju \\ Station;statId=ME000002;chgerId=02;chgerType=08;lat=33.4996;"
		"lng=126.5312;stat=3;statUpdDt=;output=;zcode=50;\n"
		/* escapes decoded, the surrogate pair to one 4-byte character */
		"statNm=Line\nBreak\tTab;statId=PI123456;chgerId=01;chgerType=02;stat=9;zcode=52;"
		"escaped=\xc3\xa9\xf0\x9f\x98\x80;\n";
	ck_assert_str_eq(buf_cstr(&w.records), want);
	/* the path of a nested value, and the envelope around the items */
	ck_assert_ptr_nonnull(strstr(buf_cstr(&w.events), "\nitems.item[1].nested.statId str IGNORED\n"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&w.events), "\ntotalCount num 3\n"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&w.events), "\nitems.item[2] }\n"));
	walk_free(&w);
	free(text);
}
END_TEST

START_TEST(stream_single_item_object)
{
	size_t len;
	char *text = read_data("single_item.json", &len);
	struct walk w;
	walk_init(&w);
	char err[256];
	ck_assert_msg(walk_text(&w, text, len, 0, 0, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(buf_cstr(&w.records), "statId=ME000009;chgerId=03;stat=2;\n");
	walk_free(&w);
	free(text);
}
END_TEST

/* Any split of the input, down to one byte per feed, gives the same events. */
START_TEST(stream_chunking_invariant)
{
	size_t len;
	char *text = read_data("charger_page.json", &len);
	struct walk whole;
	walk_init(&whole);
	char err[256];
	ck_assert(walk_text(&whole, text, len, 0, 0, err, sizeof(err)));
	static const size_t chunks[] = {1, 2, 3, 7, 64, 1000};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct walk w;
		walk_init(&w);
		ck_assert_msg(walk_text(&w, text, len, chunks[i], 0, err, sizeof(err)), "%s", err);
		ck_assert_str_eq(buf_cstr(&w.events), buf_cstr(&whole.events));
		ck_assert_str_eq(buf_cstr(&w.records), buf_cstr(&whole.records));
		walk_free(&w);
	}
	walk_free(&whole);
	free(text);
}
END_TEST

START_TEST(stream_truncated_page_fails)
{
	size_t len;
	char *text = read_data("truncated_page.json", &len);
	struct walk w;
	walk_init(&w);
	char err[256];
	ck_assert(!walk_text(&w, text, len, 100, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "premature EOF") != NULL, "%s", err);
	char want[64];
	snprintf(want, sizeof(want), "at byte %zu", len);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	/* the first record was complete before the cut, the second was not */
	ck_assert_int_eq(memcmp(buf_cstr(&w.records), "statNm=", 7), 0);
	ck_assert_ptr_null(strchr(strchr(buf_cstr(&w.records), '\n') + 1, '\n'));
	walk_free(&w);
	free(text);
}
END_TEST

static const struct {
	const char *text;
	const char *error; /* substring of json_stream_error */
} bad_documents[] = {
	{"{\"a\":1,}", "parse error"},
	{"{\"a\" 1}", "parse error"},
	{"[1,2", "premature EOF"},
	{"", "EOF"},
	{"   ", "EOF"},
	{"<OpenAPI_ServiceResponse>", "invalid char"},
	{"{\"a\":\"\xff\"}", "invalid bytes in UTF8"},
	{"{\"a\":1} {\"b\":2}", "trailing garbage"},
	{"[tru]", "invalid string"},
};

START_TEST(stream_errors)
{
	struct walk w;
	walk_init(&w);
	char err[256];
	const char *text = bad_documents[_i].text;
	ck_assert(!walk_text(&w, text, strlen(text), 0, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, bad_documents[_i].error) != NULL, "'%s': %s", text, err);
	ck_assert_ptr_nonnull(strstr(err, "at byte"));
	walk_free(&w);
}
END_TEST

START_TEST(stream_error_is_final_and_offset_counts)
{
	struct walk w;
	walk_init(&w);
	struct json_stream *js = json_stream_new(walk_cb, &w, 0);
	ck_assert_ptr_nonnull(js);
	ck_assert(json_stream_feed(js, "[1, 2, ", 7));
	ck_assert_uint_eq(json_stream_offset(js), 7);
	ck_assert(!json_stream_feed(js, "x]", 2));
	ck_assert_msg(strstr(json_stream_error(js), "at byte 7") != NULL, "%s",
		      json_stream_error(js));
	ck_assert(!json_stream_feed(js, "3]", 2)); /* stays failed */
	ck_assert(!json_stream_finish(js));
	json_stream_free(js);
	json_stream_free(NULL);
	walk_free(&w);
}
END_TEST

START_TEST(stream_invalid_utf8_allowed_by_flag)
{
	struct walk w;
	walk_init(&w);
	char err[256];
	const char *text = "{\"items\":{\"item\":[{\"statNm\":\"bad\xff\"}]}}";
	ck_assert(!walk_text(&w, text, strlen(text), 0, 0, err, sizeof(err)));
	walk_free(&w);
	walk_init(&w);
	ck_assert_msg(walk_text(&w, text, strlen(text), 0, JSON_STREAM_ALLOW_INVALID_UTF8, err,
				sizeof(err)),
		      "%s", err);
	ck_assert_str_eq(buf_cstr(&w.records), "statNm=bad\xff;\n");
	walk_free(&w);
}
END_TEST

START_TEST(stream_callback_stops)
{
	struct walk w;
	walk_init(&w);
	w.stop_after = 3;
	char err[256];
	const char *text = "[1,2,3,4,5]";
	ck_assert(!walk_text(&w, text, strlen(text), 0, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "stopped by callback") != NULL, "%s", err);
	ck_assert_str_eq(buf_cstr(&w.events), " [\n[0] num 1\n[1] num 2\n");
	walk_free(&w);
}
END_TEST

START_TEST(stream_depth_limit)
{
	struct buf text = BUF_INIT;
	for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
		buf_putc(&text, '[');
	for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
		buf_putc(&text, ']');
	struct walk w;
	walk_init(&w);
	char err[256];
	ck_assert(!walk_text(&w, text.data, text.len, 0, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "nesting deeper than 64") != NULL, "%s", err);
	walk_free(&w);
	/* exactly the limit is fine */
	buf_reset(&text);
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf_putc(&text, '[');
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf_putc(&text, ']');
	walk_init(&w);
	ck_assert_msg(walk_text(&w, text.data, text.len, 0, 0, err, sizeof(err)), "%s", err);
	walk_free(&w);
	buf_free(&text);
}
END_TEST

/* Path queries inside the callback: at, under, key, index, depth. */
struct probe {
	int hits_at;      /* values at "a[].b" */
	int hits_under;   /* values strictly under "a[1]" */
	int hits_star;    /* values at "*.x" */
	int hits_index;   /* values at "a[2]" */
	int top;          /* callbacks for the top-level value */
	bool keys_ok;
};

static bool probe_cb(void *ctx, struct json_stream *js, const struct json_value *v)
{
	struct probe *p = ctx;
	if (json_stream_at(js, ""))
		p->top++;
	if (json_stream_at(js, "a[].b")) {
		p->hits_at++;
		size_t klen;
		const char *key = json_stream_key(js, &klen);
		p->keys_ok = p->keys_ok && key && klen == 1 && key[0] == 'b' &&
			     json_stream_index(js) == -1 && json_stream_depth(js) == 3;
	}
	if (json_stream_under(js, "a[1]"))
		p->hits_under++;
	if (json_stream_at(js, "*.x") && v->type == JSON_NUMBER)
		p->hits_star++;
	if (json_stream_at(js, "a[2]")) {
		p->hits_index++;
		p->keys_ok = p->keys_ok && json_stream_key(js, NULL) == NULL &&
			     json_stream_index(js) == 2;
	}
	return true;
}

START_TEST(stream_path_queries)
{
	const char *text = "{\"a\":[{\"b\":1},{\"b\":2,\"c\":[3]},{\"d\":4}],"
			   "\"q\":{\"x\":5},\"r\":{\"x\":6}}";
	struct probe p = {.keys_ok = true};
	struct json_stream *js = json_stream_new(probe_cb, &p, 0);
	ck_assert_ptr_nonnull(js);
	ck_assert(json_stream_feed(js, text, strlen(text)));
	ck_assert(json_stream_finish(js));
	json_stream_free(js);
	ck_assert_int_eq(p.hits_at, 2);
	ck_assert_int_eq(p.hits_under, 4); /* 2, [, 3, ] */
	ck_assert_int_eq(p.hits_star, 2);
	ck_assert_int_eq(p.hits_index, 2); /* begin and end of the third element */
	ck_assert_int_eq(p.top, 2);        /* '{' and '}' of the document */
	ck_assert(p.keys_ok);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("gen");
	tcase_add_test(tc, gen_structure_and_commas);
	tcase_add_loop_test(tc, gen_string_escapes, 0, sizeof(escape_cases) / sizeof(escape_cases[0]));
	tcase_add_test(tc, gen_round_trip_through_yajl);
	tcase_add_test(tc, gen_numbers);
	tcase_add_loop_test(tc, gen_misuse_is_reported, 0, MISUSE_COUNT);
	tcase_add_test(tc, gen_large_answer_in_place);
	suite_add_tcase(s, tc);
	tc = tcase_create("stream");
	tcase_add_test(tc, stream_page_records_from_file);
	tcase_add_test(tc, stream_single_item_object);
	tcase_add_test(tc, stream_chunking_invariant);
	tcase_add_test(tc, stream_truncated_page_fails);
	tcase_add_loop_test(tc, stream_errors, 0, sizeof(bad_documents) / sizeof(bad_documents[0]));
	tcase_add_test(tc, stream_error_is_final_and_offset_counts);
	tcase_add_test(tc, stream_invalid_utf8_allowed_by_flag);
	tcase_add_test(tc, stream_callback_stops);
	tcase_add_test(tc, stream_depth_limit);
	tcase_add_test(tc, stream_path_queries);
	suite_add_tcase(s, tc);
	return s;
}
