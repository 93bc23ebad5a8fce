#include "record.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kst.h"
#include "model.h"
#include "utf8.h"

/* How a field's value is checked and put in canonical form. */
enum kind {
	K_ID,     /* ASCII letters and digits */
	K_TEXT,   /* free text */
	K_TYPE,   /* chgerType via model.h */
	K_STAT,   /* stat via model.h */
	K_DATE,   /* YYYYMMDDHHMMSS Korea time */
	K_LAT,    /* coordinates: checked as a pair */
	K_LNG,
	K_KW,     /* output in kW */
	K_YN,     /* "Y" / "N" */
	K_DIGITS, /* exactly `max` ASCII digits (zcode, zscode) */
	K_YEAR,   /* install year */
};

enum {
	REQ_MASTER = 1u << 0, /* required in a getChargerInfo item */
	REQ_STATUS = 1u << 1, /* required in a getChargerStatus item */
	IN_STATUS = 1u << 2,  /* part of a getChargerStatus item */
};

/* One row per field. max: the byte limit of the trimmed text (K_DIGITS: the
 * exact digit count). Limits are generous for free text (a long note is a
 * charger all the same) and tight for codes. */
static const struct field_rule {
	const char *name;
	enum kind kind;
	unsigned max;
	unsigned flags;
} rules[RECORD_NFIELDS] = {
	[RF_STAT_ID] = {"statId", K_ID, 20, REQ_MASTER | REQ_STATUS | IN_STATUS},
	[RF_CHGER_ID] = {"chgerId", K_ID, 10, REQ_MASTER | REQ_STATUS | IN_STATUS},
	[RF_STAT_NM] = {"statNm", K_TEXT, 300, REQ_MASTER},
	[RF_CHGER_TYPE] = {"chgerType", K_TYPE, 2, REQ_MASTER},
	[RF_ADDR] = {"addr", K_TEXT, 500, 0},
	[RF_ADDR_DETAIL] = {"addrDetail", K_TEXT, 500, 0},
	[RF_LOCATION] = {"location", K_TEXT, 1000, 0},
	[RF_USE_TIME] = {"useTime", K_TEXT, 500, 0},
	[RF_LAT] = {"lat", K_LAT, 32, REQ_MASTER},
	[RF_LNG] = {"lng", K_LNG, 32, REQ_MASTER},
	[RF_BUSI_ID] = {"busiId", K_ID, 10, IN_STATUS},
	[RF_BNM] = {"bnm", K_TEXT, 200, 0},
	[RF_BUSI_NM] = {"busiNm", K_TEXT, 300, 0},
	[RF_BUSI_CALL] = {"busiCall", K_TEXT, 100, 0},
	[RF_STAT] = {"stat", K_STAT, 2, REQ_STATUS | IN_STATUS},
	[RF_STAT_UPD_DT] = {"statUpdDt", K_DATE, 14, REQ_STATUS | IN_STATUS},
	[RF_LAST_TSDT] = {"lastTsdt", K_DATE, 14, IN_STATUS},
	[RF_LAST_TEDT] = {"lastTedt", K_DATE, 14, IN_STATUS},
	[RF_NOW_TSDT] = {"nowTsdt", K_DATE, 14, IN_STATUS},
	[RF_OUTPUT] = {"output", K_KW, 16, 0},
	[RF_METHOD] = {"method", K_TEXT, 30, 0},
	[RF_POWER_TYPE] = {"powerType", K_TEXT, 200, 0},
	[RF_ZCODE] = {"zcode", K_DIGITS, 2, 0},
	[RF_ZSCODE] = {"zscode", K_DIGITS, 5, 0},
	[RF_KIND] = {"kind", K_ID, 10, 0},
	[RF_KIND_DETAIL] = {"kindDetail", K_ID, 10, 0},
	[RF_PARKING_FREE] = {"parkingFree", K_YN, 1, 0},
	[RF_NOTE] = {"note", K_TEXT, 4000, 0},
	[RF_LIMIT_YN] = {"limitYn", K_YN, 1, 0},
	[RF_LIMIT_DETAIL] = {"limitDetail", K_TEXT, 2000, 0},
	[RF_DEL_YN] = {"delYn", K_YN, 1, 0},
	[RF_DEL_DETAIL] = {"delDetail", K_TEXT, 2000, 0},
	[RF_TRAFFIC_YN] = {"trafficYn", K_YN, 1, 0},
	[RF_YEAR] = {"year", K_YEAR, 4, 0},
	[RF_FLOOR_NUM] = {"floorNum", K_TEXT, 20, 0},
	[RF_FLOOR_TYPE] = {"floorType", K_TEXT, 20, 0},
};

static const char *const reason_codes[RECORD_REASON_COUNT] = {
	[RECORD_OK] = "ok",
	[RECORD_NOT_OBJECT] = "not_object",
	[RECORD_MISSING] = "missing_field",
	[RECORD_BAD_TYPE] = "bad_type",
	[RECORD_BAD_UTF8] = "bad_utf8",
	[RECORD_BAD_TEXT] = "bad_text",
	[RECORD_TOO_LONG] = "too_long",
	[RECORD_BAD_ID] = "bad_id",
	[RECORD_BAD_CODE] = "bad_code",
	[RECORD_BAD_DATE] = "bad_date",
	[RECORD_BAD_NUMBER] = "bad_number",
	[RECORD_BAD_FLAG] = "bad_flag",
	[RECORD_BAD_COORD] = "bad_coord",
	[RECORD_COORD_OUTSIDE] = "coord_outside",
};

const char *record_reason_code(enum record_reason reason)
{
	return (unsigned)reason < RECORD_REASON_COUNT ? reason_codes[reason] : "unknown";
}

const char *record_field_name(enum record_field field)
{
	return (unsigned)field < RECORD_NFIELDS ? rules[field].name : NULL;
}

/* Field indexes by name length (names are 3..11 bytes): constant once
 * built, so any thread may read it. */
static int8_t by_len[16][8];
static pthread_once_t by_len_once = PTHREAD_ONCE_INIT;

static void build_by_len(void)
{
	memset(by_len, -1, sizeof(by_len));
	for (int f = 0; f < RECORD_NFIELDS; f++) {
		size_t n = strlen(rules[f].name);
		for (int slot = 0; slot < 8; slot++)
			if (by_len[n][slot] < 0) {
				by_len[n][slot] = (int8_t)f;
				break;
			}
	}
}

/* Key lookup runs once per key of every item (about 36 x 230k a load):
 * a switch on the length narrows it to a few memcmp. */
int record_field_lookup(const char *key, size_t len)
{
	pthread_once(&by_len_once, build_by_len);
	if (len == 0 || len >= 16)
		return -1;
	for (int slot = 0; slot < 8 && by_len[len][slot] >= 0; slot++) {
		int f = by_len[len][slot];
		if (memcmp(rules[f].name, key, len) == 0)
			return f;
	}
	return -1;
}

/* ---- raw ---- */

void record_raw_init(struct record_raw *raw)
{
	memset(raw, 0, sizeof(*raw));
	buf_init(&raw->text);
	memset(raw->by_field, -1, sizeof(raw->by_field));
}

void record_raw_free(struct record_raw *raw)
{
	buf_free(&raw->text);
	free(raw->entries);
	memset(raw, 0, sizeof(*raw));
}

void record_raw_reset(struct record_raw *raw)
{
	buf_reset(&raw->text);
	raw->nentries = 0;
	memset(raw->by_field, -1, sizeof(raw->by_field));
	raw->is_not_object = false;
	raw->failed = false;
}

/* Item size cap: an item is a few hundred bytes; 1 MiB of keys and values
 * is a hostile or broken one, refused (as out of memory) rather than grown. */
#define RAW_MAX_BYTES (1u << 20)
#define RAW_MAX_ENTRIES 4096

static struct record_entry *new_entry(struct record_raw *raw)
{
	if (raw->nentries == raw->entries_cap) {
		size_t cap = raw->entries_cap ? raw->entries_cap * 2 : 64;
		if (cap > RAW_MAX_ENTRIES) {
			raw->failed = true;
			return NULL;
		}
		struct record_entry *grown = realloc(raw->entries, cap * sizeof(*grown));
		if (!grown) {
			raw->failed = true;
			return NULL;
		}
		raw->entries = grown;
		raw->entries_cap = cap;
	}
	return &raw->entries[raw->nentries++];
}

void record_raw_add(struct record_raw *raw, const char *key, size_t key_len,
		    enum record_json type, const char *text, size_t len)
{
	if (raw->failed)
		return;
	if (raw->text.len + key_len + len > RAW_MAX_BYTES) {
		raw->failed = true;
		return;
	}
	struct record_entry *e = new_entry(raw);
	if (!e)
		return;
	e->key_off = (uint32_t)raw->text.len;
	e->key_len = (uint32_t)key_len;
	buf_append(&raw->text, key, key_len);
	e->val_off = (uint32_t)raw->text.len;
	e->val_len = text ? (uint32_t)len : 0;
	if (text)
		buf_append(&raw->text, text, len);
	e->type = (uint8_t)type;
	e->field = (int16_t)record_field_lookup(key, key_len);
	if (!buf_ok(&raw->text))
		raw->failed = true;
	if (e->field >= 0)
		raw->by_field[e->field] = (int16_t)(raw->nentries - 1);
}

void record_raw_set_not_object(struct record_raw *raw, enum record_json type, const char *text,
			       size_t len)
{
	record_raw_reset(raw);
	raw->is_not_object = true;
	record_raw_add(raw, "", 0, type, text, len);
}

enum record_json record_raw_get(const struct record_raw *raw, enum record_field field,
				const char **text, size_t *len)
{
	int idx = (unsigned)field < RECORD_NFIELDS ? raw->by_field[field] : -1;
	if (idx < 0) {
		*text = NULL;
		*len = 0;
		return RECORD_JSON_ABSENT;
	}
	const struct record_entry *e = &raw->entries[idx];
	*text = raw->text.data + e->val_off;
	*len = e->val_len;
	return (enum record_json)e->type;
}

static void json_value(const struct record_raw *raw, const struct record_entry *e, struct buf *out)
{
	const char *text = raw->text.data + e->val_off;
	switch ((enum record_json)e->type) {
	case RECORD_JSON_STRING:
		buf_putc(out, '"');
		json_escape(out, text, e->val_len);
		buf_putc(out, '"');
		break;
	case RECORD_JSON_NUMBER:
	case RECORD_JSON_BOOL:
		buf_append(out, text, e->val_len);
		break;
	case RECORD_JSON_CONTAINER:
		buf_puts(out, e->val_len ? "[\"...\"]" : "{}");
		break;
	default:
		buf_puts(out, "null");
		break;
	}
}

void record_raw_json(const struct record_raw *raw, struct buf *out, size_t max_bytes)
{
	size_t start = out->len;
	if (raw->is_not_object) {
		if (raw->nentries)
			json_value(raw, &raw->entries[0], out);
		else
			buf_puts(out, "null");
		return;
	}
	buf_putc(out, '{');
	for (size_t i = 0; i < raw->nentries; i++) {
		const struct record_entry *e = &raw->entries[i];
		size_t before = out->len;
		if (i)
			buf_putc(out, ',');
		buf_putc(out, '"');
		json_escape(out, raw->text.data + e->key_off, e->key_len);
		buf_append(out, "\":", 2);
		json_value(raw, e, out);
		if (max_bytes && out->len - start > max_bytes) {
			buf_truncate(out, before);
			buf_puts(out, i ? ",\"...\":\"truncated\"" : "\"...\":\"truncated\"");
			break;
		}
	}
	buf_putc(out, '}');
}

/* ---- normalize ---- */

void record_init(struct record *rec)
{
	memset(rec, 0, sizeof(*rec));
	buf_init(&rec->store);
	rec->reason_field = -1;
}

void record_free(struct record *rec)
{
	buf_free(&rec->store);
	memset(rec, 0, sizeof(*rec));
}

static bool is_space_at(const unsigned char *p, size_t left, size_t *width)
{
	if (left >= 1 && (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r'))) {
		*width = 1;
		return true;
	}
	if (left >= 2 && p[0] == 0xC2 && p[1] == 0xA0) { /* U+00A0 no-break space */
		*width = 2;
		return true;
	}
	if (left >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) { /* U+3000 */
		*width = 3;
		return true;
	}
	return false;
}

size_t record_trim(const char **start, size_t len)
{
	const unsigned char *p = (const unsigned char *)*start;
	size_t width;
	while (len > 0 && is_space_at(p, len, &width)) {
		p += width;
		len -= width;
	}
	while (len > 0) {
		unsigned char last = p[len - 1];
		if (last == ' ' || (last >= '\t' && last <= '\r'))
			len--;
		else if (len >= 2 && p[len - 2] == 0xC2 && last == 0xA0)
			len -= 2;
		else if (len >= 3 && p[len - 3] == 0xE3 && p[len - 2] == 0x80 && last == 0x80)
			len -= 3;
		else
			break;
	}
	*start = (const char *)p;
	return len;
}

/* An excerpt of a value for the reject text: valid UTF-8 (the caller checked
 * or it is skipped), control characters as '?', cut at 40 bytes. */
static void excerpt(char *out, size_t outlen, const char *text, size_t len)
{
	if (!utf8_valid(text, len)) {
		snprintf(out, outlen, "(invalid UTF-8)");
		return;
	}
	size_t cut = utf8_cut(text, len < 40 ? len : 40);
	size_t n = cut < outlen - 4 ? cut : utf8_cut(text, outlen - 4);
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)text[i] < 0x20 ? '?' : text[i];
	if (n < len)
		memcpy(out + n, "...", 4);
	else
		out[n] = '\0';
}

static enum record_reason reject(struct record *rec, enum record_reason reason, int field,
				 const char *text, size_t len, const char *problem)
{
	rec->reason = reason;
	rec->reason_field = field;
	const char *name = field >= 0 ? rules[field].name : "item";
	if (text) {
		char value[64];
		excerpt(value, sizeof(value), text, len);
		snprintf(rec->detail, sizeof(rec->detail), "%s: '%s' %s", name, value, problem);
	} else {
		snprintf(rec->detail, sizeof(rec->detail), "%s: %s", name, problem);
	}
	return reason;
}

/* Store normalized text; the pointer is fixed up after the last append,
 * since the buffer may move. */
static void keep(struct record *rec, uint32_t offsets[], int field, const char *text, size_t len)
{
	offsets[field] = (uint32_t)rec->store.len;
	rec->len[field] = (uint32_t)len;
	buf_append(&rec->store, text, len);
	buf_putc(&rec->store, '\0');
	rec->text[field] = ""; /* present; pointed into store at the end */
}

static bool all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return len > 0;
}

static bool is_id(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

/* A decimal number (sign, digits, point, exponent: what JSON and the
 * upstream's text write); no hex, inf or nan, nothing after it. */
static bool parse_number(const char *s, size_t len, double *out)
{
	char tmp[40];
	if (len == 0 || len >= sizeof(tmp))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
		      c == 'E'))
			return false;
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	char *end;
	double v = strtod(tmp, &end);
	if (end != tmp + len || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool inside_korea(double lat, double lng)
{
	return lat >= RECORD_LAT_MIN && lat <= RECORD_LAT_MAX && lng >= RECORD_LNG_MIN &&
	       lng <= RECORD_LNG_MAX;
}

static void keep_double(struct record *rec, uint32_t offsets[], int field, double v)
{
	char text[40];
	struct buf b;
	buf_init_with(&b, text, sizeof(text));
	buf_put_double(&b, v, BUF_SHORTEST);
	keep(rec, offsets, field, buf_cstr(&b), b.len);
	buf_free(&b);
}

static int flag_index(int field)
{
	switch (field) {
	case RF_PARKING_FREE: return RFL_PARKING_FREE;
	case RF_LIMIT_YN: return RFL_LIMIT;
	case RF_DEL_YN: return RFL_DEL;
	default: return RFL_TRAFFIC;
	}
}

/* One field of the item: checks and keeps it. RECORD_OK when absent and
 * not required (the caller checks required fields). */
static enum record_reason one_field(struct record *rec, uint32_t offsets[], int f,
				    const char *raw_text, size_t raw_len, enum record_json type,
				    double coord[2])
{
	const struct field_rule *r = &rules[f];
	if (type == RECORD_JSON_ABSENT || type == RECORD_JSON_NULL)
		return RECORD_OK;
	if (type == RECORD_JSON_CONTAINER || type == RECORD_JSON_BOOL)
		return reject(rec, RECORD_BAD_TYPE, f, NULL, 0,
			      type == RECORD_JSON_BOOL ? "a boolean, not text"
						       : "an object or array, not text");
	if (!utf8_valid(raw_text, raw_len))
		return reject(rec, RECORD_BAD_UTF8, f, NULL, 0, "not valid UTF-8");
	if (memchr(raw_text, '\0', raw_len))
		return reject(rec, RECORD_BAD_TEXT, f, NULL, 0, "holds a NUL character");
	const char *s = raw_text;
	size_t len = record_trim(&s, raw_len);
	if (len == 0)
		return RECORD_OK; /* empty means absent */
	/* text and ids have a length limit; typed values fail their own check */
	if (len > r->max && (r->kind == K_TEXT || r->kind == K_ID))
		return reject(rec, RECORD_TOO_LONG, f, s, len, "is longer than allowed");

	switch (r->kind) {
	case K_TEXT:
		keep(rec, offsets, f, s, len);
		return RECORD_OK;
	case K_ID:
		if (!is_id(s, len))
			return reject(rec, RECORD_BAD_ID, f, s, len, "is not letters and digits");
		keep(rec, offsets, f, s, len);
		return RECORD_OK;
	case K_TYPE: {
		int code;
		if (!model_type_parse(s, len, &code))
			return reject(rec, RECORD_BAD_CODE, f, s, len, "is not a charger type code");
		rec->chger_type = code;
		char canon[4];
		snprintf(canon, sizeof(canon), "%02d", code);
		keep(rec, offsets, f, canon, 2);
		return RECORD_OK;
	}
	case K_STAT: {
		int stat;
		if (!model_status_parse(s, len, &stat))
			return reject(rec, RECORD_BAD_CODE, f, s, len, "is not a status code");
		rec->stat = stat;
		char canon[4];
		int n = snprintf(canon, sizeof(canon), "%d", stat);
		keep(rec, offsets, f, canon, (size_t)n);
		return RECORD_OK;
	}
	case K_DATE: {
		time_t t;
		if (!kst_parse_n(s, len, &t))
			return reject(rec, RECORD_BAD_DATE, f, s, len,
				      "is not a YYYYMMDDHHMMSS time that exists");
		int ti = f - RF_STAT_UPD_DT;
		rec->time[ti] = t;
		rec->has_time[ti] = true;
		keep(rec, offsets, f, s, len);
		return RECORD_OK;
	}
	case K_LAT:
	case K_LNG: {
		double v;
		if (!parse_number(s, len, &v))
			return reject(rec, RECORD_BAD_COORD, f, s, len, "is not a number");
		coord[r->kind == K_LNG] = v;
		return RECORD_OK;
	}
	case K_KW: {
		double v;
		/* 0 kW is no output: read as unknown, like an empty value */
		if (!parse_number(s, len, &v) || v < 0 || v > 2000)
			return reject(rec, RECORD_BAD_NUMBER, f, s, len,
				      "is not an output in kW (0..2000)");
		if (v == 0)
			return RECORD_OK;
		rec->output_kw = v;
		rec->has_output = true;
		keep_double(rec, offsets, f, v);
		return RECORD_OK;
	}
	case K_YN: {
		char c = len == 1 ? (char)(s[0] & ~0x20) : 0;
		if (c != 'Y' && c != 'N')
			return reject(rec, RECORD_BAD_FLAG, f, s, len, "is not Y or N");
		rec->flag[flag_index(f)] = c == 'Y';
		keep(rec, offsets, f, c == 'Y' ? "Y" : "N", 1);
		return RECORD_OK;
	}
	case K_DIGITS:
		if (len != r->max || !all_digits(s, len))
			return reject(rec, RECORD_BAD_CODE, f, s, len,
				      r->max == 2 ? "is not a 2-digit code" : "is not a 5-digit code");
		if (f == RF_ZCODE)
			rec->zcode = (s[0] - '0') * 10 + (s[1] - '0');
		keep(rec, offsets, f, s, len);
		return RECORD_OK;
	case K_YEAR: {
		int year = 0;
		if (len == 4 && all_digits(s, 4))
			year = atoi(s) /* 4 digits, then a non-digit or the end */;
		if (len != 4 || year < 1900 || year > 2100)
			return reject(rec, RECORD_BAD_NUMBER, f, s, len, "is not a year");
		rec->year = year;
		keep(rec, offsets, f, s, len);
		return RECORD_OK;
	}
	}
	abort();
}

/* The coordinate pair: both needed, neither 0, inside South Korea, else
 * swapped inside it (repaired), else rejected. */
static enum record_reason check_coords(struct record *rec, uint32_t offsets[], const double c[2],
				       bool have_lat, bool have_lng)
{
	if (!have_lat || !have_lng)
		return reject(rec, RECORD_BAD_COORD, have_lat ? RF_LNG : RF_LAT, NULL, 0,
			      "absent or empty");
	double lat = c[0], lng = c[1];
	if (lat == 0 || lng == 0) {
		char text[48];
		snprintf(text, sizeof(text), "%g,%g", lat, lng);
		return reject(rec, RECORD_BAD_COORD, lat == 0 ? RF_LAT : RF_LNG, text, strlen(text),
			      "is zero");
	}
	if (!inside_korea(lat, lng)) {
		if (!inside_korea(lng, lat)) {
			char text[64];
			snprintf(text, sizeof(text), "%.6f,%.6f", lat, lng);
			return reject(rec, RECORD_COORD_OUTSIDE, RF_LAT, text, strlen(text),
				      "is not inside South Korea, even swapped");
		}
		double t = lat;
		lat = lng;
		lng = t;
		rec->coord_swapped = true;
	}
	rec->lat = lat;
	rec->lng = lng;
	keep_double(rec, offsets, RF_LAT, lat);
	keep_double(rec, offsets, RF_LNG, lng);
	return RECORD_OK;
}

static void reset_record(struct record *rec, enum record_mode mode)
{
	struct buf store = rec->store;
	memset(rec, 0, sizeof(*rec));
	rec->store = store;
	buf_reset(&rec->store);
	rec->mode = mode;
	rec->reason_field = -1;
	for (int i = 0; i < RECORD_NFLAGS; i++)
		rec->flag[i] = -1;
}

enum record_reason record_normalize(const struct record_raw *raw, enum record_mode mode,
				    struct record *rec)
{
	reset_record(rec, mode);
	if (raw->failed)
		return reject(rec, RECORD_TOO_LONG, -1, NULL, 0,
			      "larger than an item can be (over 1 MiB or 4096 keys)");
	if (raw->is_not_object)
		return reject(rec, RECORD_NOT_OBJECT, -1, NULL, 0, "not a JSON object");

	uint32_t offsets[RECORD_NFIELDS];
	double coord[2] = {0, 0};
	bool have_coord[2] = {false, false};
	unsigned need = mode == RECORD_MASTER ? REQ_MASTER : REQ_STATUS;
	for (int f = 0; f < RECORD_NFIELDS; f++) {
		const struct field_rule *r = &rules[f];
		if (mode == RECORD_STATUS && !(r->flags & IN_STATUS))
			continue;
		const char *text;
		size_t len;
		enum record_json type = record_raw_get(raw, f, &text, &len);
		bool was_coord = r->kind == K_LAT || r->kind == K_LNG;
		size_t kept_before = rec->store.len;
		enum record_reason why = one_field(rec, offsets, f, text, len, type, coord);
		if (why != RECORD_OK)
			return why;
		bool present = rec->store.len != kept_before;
		if (was_coord) {
			const char *s = text;
			present = type == RECORD_JSON_STRING || type == RECORD_JSON_NUMBER
					  ? record_trim(&s, len) > 0
					  : false;
			have_coord[r->kind == K_LNG] = present;
		}
		if (!present && (r->flags & need) && !was_coord)
			return reject(rec, RECORD_MISSING, f, NULL, 0, "absent or empty");
	}
	if (mode == RECORD_MASTER) {
		enum record_reason why = check_coords(rec, offsets, coord, have_coord[0], have_coord[1]);
		if (why != RECORD_OK)
			return why;
	}
	if (!buf_ok(&rec->store))
		return reject(rec, RECORD_TOO_LONG, -1, NULL, 0, "out of memory");
	for (int f = 0; f < RECORD_NFIELDS; f++)
		if (rec->text[f])
			rec->text[f] = rec->store.data + offsets[f];
	return RECORD_OK;
}
