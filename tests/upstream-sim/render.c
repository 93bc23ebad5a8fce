/* render: JSON and XML output. */
#include "render.h"

#include "simtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

bool sbuf_reserve(struct sbuf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return true;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + extra)
		ncap *= 2;
	char *grown = realloc(b->data, ncap);
	if (!grown)
		return false;
	b->data = grown;
	b->cap = ncap;
	return true;
}

bool sbuf_add(struct sbuf *b, const void *data, size_t len)
{
	if (!sbuf_reserve(b, len))
		return false;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return true;
}

bool sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sbuf_reserve(b, (size_t)n + 1))
		return false;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return true;
}

void sbuf_free(struct sbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- items ---- */

const char *const defect_names[DEFECT_COUNT] = {
	"empty_coords", "zero_coords",	"swapped_coords", "bad_date", "unknown_code",  "overlong",
	"invalid_utf8", "json_numbers", "padded",	  "escapes",  "absent_fields",
};

enum { FF_NUMBER = 1, FF_ABSENT = 2 };

struct field {
	const char *name;
	const char *value;
	uint32_t len;
	uint8_t name_len;
	uint8_t flags;
};

/* Field positions in an info item, in output order. */
enum {
	I_STATNM,
	I_STATID,
	I_CHGERID,
	I_CHGERTYPE,
	I_ADDR,
	I_ADDRDETAIL,
	I_LOCATION,
	I_USETIME,
	I_LAT,
	I_LNG,
	I_BUSIID,
	I_BNM,
	I_BUSINM,
	I_BUSICALL,
	I_STAT,
	I_STATUPDDT,
	I_LASTTSDT,
	I_LASTTEDT,
	I_NOWTSDT,
	I_OUTPUT,
	I_METHOD,
	I_POWERTYPE,
	I_ZCODE,
	I_ZSCODE,
	I_KIND,
	I_KINDDETAIL,
	I_PARKINGFREE,
	I_NOTE,
	I_LIMITYN,
	I_LIMITDETAIL,
	I_DELYN,
	I_DELDETAIL,
	I_TRAFFICYN,
	I_YEAR,
	I_FLOORNUM,
	I_FLOORTYPE,
	I_COUNT
};

#define OVERLONG_REPEAT 1000
struct item {
	struct field f[I_COUNT];
	int n;
	char stat[2];
	char ts[4][14];
	char scratch[OVERLONG_REPEAT * 3 + 512];
	char scratch2[256];
};

static void set(struct item *it, int idx, const char *name, const char *value, size_t len)
{
	struct field *f = &it->f[idx];
	f->name = name;
	f->name_len = (uint8_t)strlen(name);
	f->value = value;
	f->len = (uint32_t)len;
	f->flags = 0;
	if (idx >= it->n)
		it->n = idx + 1;
}

static void set_str(struct item *it, int idx, const char *name, const char *value)
{
	set(it, idx, name, value, strlen(value));
}

static void set_time(struct item *it, int idx, const char *name, int64_t t, char buf[14])
{
	if (t == STATUS_NONE) {
		set(it, idx, name, "", 0);
		return;
	}
	simtime_format_kst(t, buf);
	set(it, idx, name, buf, 14);
}

static size_t concat(char *out, size_t cap, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	if (la + lb + lc > cap)
		return 0;
	memcpy(out, a, la);
	memcpy(out + la, b, lb);
	memcpy(out + la + lb, c, lc);
	return la + lb + lc;
}

/* Applies one documented defect to the fields present. */
static void apply_defect(struct item *it, enum render_format fmt, int defect, uint64_t slot,
			 bool is_info)
{
	struct field *f = it->f;
	int lat = is_info ? I_LAT : -1, lng = is_info ? I_LNG : -1;
	int statnm = is_info ? I_STATNM : -1;
	int upd =
		is_info ? I_STATUPDDT : 4; /* status items: busiId statId chgerId stat statUpdDt */
	switch (defect) {
	case DEFECT_EMPTY_COORDS:
		if (lat >= 0) {
			f[lat].value = f[lng].value = "";
			f[lat].len = f[lng].len = 0;
		}
		break;
	case DEFECT_ZERO_COORDS:
		if (lat >= 0) {
			f[lat].value = f[lng].value = "0";
			f[lat].len = f[lng].len = 1;
		}
		break;
	case DEFECT_SWAPPED_COORDS:
		if (lat >= 0) {
			const char *v = f[lat].value;
			uint32_t l = f[lat].len;
			f[lat].value = f[lng].value, f[lat].len = f[lng].len;
			f[lng].value = v, f[lng].len = l;
		}
		break;
	case DEFECT_BAD_DATE: {
		static const char *const bad[] = {"20231345256199", "2023-06-01 12:30:00",
						  "202306011230"};
		const char *v = bad[(slot / 16) % 3];
		f[upd].value = v;
		f[upd].len = (uint32_t)strlen(v);
		break;
	}
	case DEFECT_UNKNOWN_CODE:
		if (is_info) {
			f[I_CHGERTYPE].value = "99";
			f[I_CHGERTYPE].len = 2;
		}
		break;
	case DEFECT_OVERLONG:
		if (statnm >= 0) {
			size_t n = f[statnm].len;
			memcpy(it->scratch, f[statnm].value, n);
			it->scratch[n++] = ' ';
			for (int i = 0; i < OVERLONG_REPEAT; i++, n += 3)
				memcpy(it->scratch + n, "가", 3);
			f[statnm].value = it->scratch;
			f[statnm].len = (uint32_t)n;
		}
		break;
	case DEFECT_INVALID_UTF8:
		if (statnm >= 0) {
			size_t n = f[statnm].len;
			memcpy(it->scratch, f[statnm].value, n);
			memcpy(it->scratch + n, "\xC3\x28\xFF", 3);
			f[statnm].value = it->scratch;
			f[statnm].len = (uint32_t)n + 3;
		}
		break;
	case DEFECT_JSON_NUMBERS:
		if (is_info) {
			f[I_LAT].flags |= FF_NUMBER;
			f[I_LNG].flags |= FF_NUMBER;
			if (f[I_OUTPUT].len)
				f[I_OUTPUT].flags |= FF_NUMBER;
		}
		break;
	case DEFECT_PADDED:
		if (statnm >= 0) {
			char name[200];
			memcpy(name, f[statnm].value, f[statnm].len);
			name[f[statnm].len] = 0;
			f[statnm].len = (uint32_t)concat(it->scratch, sizeof(it->scratch), "  ",
							 name, "  ");
			f[statnm].value = it->scratch;
			char addr[256];
			memcpy(addr, f[I_ADDR].value, f[I_ADDR].len);
			addr[f[I_ADDR].len] = 0;
			f[I_ADDR].len = (uint32_t)concat(it->scratch2, sizeof(it->scratch2), " ",
							 addr, " ");
			f[I_ADDR].value = it->scratch2;
		}
		break;
	case DEFECT_ESCAPES:
		if (statnm >= 0) {
			char name[200];
			memcpy(name, f[statnm].value, f[statnm].len);
			name[f[statnm].len] = 0;
			/* decoded: name + ` "충전" \ 🔌` (U+1F50C, outside the BMP) */
			const char *tail = fmt == FMT_JSON ? " \\\"충전\\\" \\\\ \\ud83d\\udd0c"
							   : " \"충전\" \\ \xF0\x9F\x94\x8C";
			f[statnm].len =
				(uint32_t)concat(it->scratch, sizeof(it->scratch), name, tail, "");
			f[statnm].value = it->scratch;
		}
		break;
	case DEFECT_ABSENT_FIELDS:
		if (is_info) {
			static const int optional[] = {I_ADDRDETAIL, I_LOCATION,    I_POWERTYPE,
						       I_NOTE,	     I_LIMITDETAIL, I_DELDETAIL,
						       I_YEAR,	     I_FLOORNUM,    I_FLOORTYPE};
			for (size_t i = 0; i < ARRAY_LEN(optional); i++)
				f[optional[i]].flags |= FF_ABSENT;
		}
		break;
	default: break;
	}
}

static bool emit(struct sbuf *b, enum render_format fmt, bool first, const struct item *it)
{
	size_t need = 16;
	for (int i = 0; i < it->n; i++)
		need += 2u * it->f[i].name_len + it->f[i].len + 8;
	if (!sbuf_reserve(b, need))
		return false;
	char *p = b->data + b->len;
	if (fmt == FMT_JSON) {
		if (!first)
			*p++ = ',';
		*p++ = '{';
		bool any = false;
		for (int i = 0; i < it->n; i++) {
			const struct field *f = &it->f[i];
			if (f->flags & FF_ABSENT)
				continue;
			if (any)
				*p++ = ',';
			any = true;
			*p++ = '"';
			memcpy(p, f->name, f->name_len);
			p += f->name_len;
			*p++ = '"';
			*p++ = ':';
			bool quoted = !(f->flags & FF_NUMBER);
			if (quoted)
				*p++ = '"';
			memcpy(p, f->value, f->len);
			p += f->len;
			if (quoted)
				*p++ = '"';
		}
		*p++ = '}';
	} else {
		memcpy(p, "<item>", 6);
		p += 6;
		for (int i = 0; i < it->n; i++) {
			const struct field *f = &it->f[i];
			if (f->flags & FF_ABSENT)
				continue;
			*p++ = '<';
			memcpy(p, f->name, f->name_len);
			p += f->name_len;
			*p++ = '>';
			memcpy(p, f->value, f->len);
			p += f->len;
			*p++ = '<';
			*p++ = '/';
			memcpy(p, f->name, f->name_len);
			p += f->name_len;
			*p++ = '>';
		}
		memcpy(p, "</item>", 7);
		p += 7;
	}
	b->len = (size_t)(p - b->data);
	return true;
}

static void set_status_fields(struct item *it, int idx_stat, const struct sim_status *status)
{
	it->stat[0] = (char)('0' + status->stat);
	it->stat[1] = 0;
	set(it, idx_stat, "stat", it->stat, 1);
	set_time(it, idx_stat + 1, "statUpdDt", status->updated, it->ts[0]);
	set_time(it, idx_stat + 2, "lastTsdt", status->last_start, it->ts[1]);
	set_time(it, idx_stat + 3, "lastTedt", status->last_end, it->ts[2]);
	set_time(it, idx_stat + 4, "nowTsdt", status->now_start, it->ts[3]);
}

bool render_info_item(struct sbuf *b, enum render_format fmt, bool first,
		      const struct sim_station *st, const struct sim_charger *ch,
		      const struct sim_status *status, int defect)
{
	struct item it;
	it.n = 0;
	const struct sim_operator *op = &sim_operators[st->op];
	set_str(&it, I_STATNM, "statNm", st->stat_nm);
	set(&it, I_STATID, "statId", st->stat_id, 8);
	set(&it, I_CHGERID, "chgerId", ch->chger_id, 2);
	set(&it, I_CHGERTYPE, "chgerType", ch->chger_type, 2);
	set_str(&it, I_ADDR, "addr", st->addr);
	set_str(&it, I_ADDRDETAIL, "addrDetail", st->addr_detail);
	set_str(&it, I_LOCATION, "location", st->location);
	set_str(&it, I_USETIME, "useTime", st->use_time);
	set_str(&it, I_LAT, "lat", st->lat);
	set_str(&it, I_LNG, "lng", st->lng);
	set(&it, I_BUSIID, "busiId", op->code, 2);
	set_str(&it, I_BNM, "bnm", op->bnm);
	set_str(&it, I_BUSINM, "busiNm", op->busi_nm);
	set_str(&it, I_BUSICALL, "busiCall", op->call);
	set_status_fields(&it, I_STAT, status);
	set_str(&it, I_OUTPUT, "output", ch->output);
	set_str(&it, I_METHOD, "method", ch->method);
	set_str(&it, I_POWERTYPE, "powerType", ch->power_type);
	set(&it, I_ZCODE, "zcode", st->zcode, 2);
	set(&it, I_ZSCODE, "zscode", st->zscode, 5);
	set(&it, I_KIND, "kind", sim_kinds[st->kind].code, 2);
	set(&it, I_KINDDETAIL, "kindDetail", st->kind_detail, 4);
	set(&it, I_PARKINGFREE, "parkingFree", st->parking_free, 1);
	set_str(&it, I_NOTE, "note", st->note);
	set(&it, I_LIMITYN, "limitYn", st->limit_yn, 1);
	set_str(&it, I_LIMITDETAIL, "limitDetail", st->limit_detail);
	set(&it, I_DELYN, "delYn", "N", 1);
	set(&it, I_DELDETAIL, "delDetail", "", 0);
	set(&it, I_TRAFFICYN, "trafficYn", st->traffic_yn, 1);
	set(&it, I_YEAR, "year", st->year, 4);
	set(&it, I_FLOORNUM, "floorNum", st->floor_num, 1);
	set(&it, I_FLOORTYPE, "floorType", st->floor_type, 1);
	if (defect != DEFECT_NONE)
		apply_defect(&it, fmt, defect, ch->slot, true);
	return emit(b, fmt, first, &it);
}

bool render_status_item(struct sbuf *b, enum render_format fmt, bool first,
			const struct sim_station *st, const struct sim_charger *ch,
			const struct sim_status *status, int defect)
{
	struct item it;
	it.n = 0;
	set(&it, 0, "busiId", sim_operators[st->op].code, 2);
	set(&it, 1, "statId", st->stat_id, 8);
	set(&it, 2, "chgerId", ch->chger_id, 2);
	set_status_fields(&it, 3, status);
	if (defect != DEFECT_NONE)
		apply_defect(&it, fmt, defect, ch->slot, false);
	return emit(b, fmt, first, &it);
}

/* ---- envelopes ---- */

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"

bool render_page_head(struct sbuf *b, enum render_format fmt, bool xml_shapes, long total,
		      long items)
{
	if (fmt == FMT_XML)
		return sbuf_addf(b, XML_DECL
				 "<response><header><resultCode>00</resultCode>"
				 "<resultMsg>NORMAL SERVICE.</resultMsg></header><body><items>");
	const char *open = xml_shapes && items == 0   ? "\"\""
			   : xml_shapes && items == 1 ? "{\"item\":"
						      : "{\"item\":[";
	return sbuf_addf(b, "{\"resultMsg\":\"NORMAL SERVICE.\",\"totalCount\":%ld,\"items\":%s",
			 total, open);
}

bool render_page_tail(struct sbuf *b, enum render_format fmt, bool xml_shapes, long total,
		      long items, long page_no, long num_rows)
{
	if (fmt == FMT_XML)
		return sbuf_addf(b,
				 "</items><numOfRows>%ld</numOfRows><pageNo>%ld</pageNo>"
				 "<totalCount>%ld</totalCount></body></response>",
				 num_rows, page_no, total);
	const char *close = xml_shapes && items == 0 ? "" : xml_shapes && items == 1 ? "}" : "]}";
	return sbuf_addf(b, "%s,\"pageNo\":%ld,\"resultCode\":\"00\",\"numOfRows\":%ld}", close,
			 page_no, num_rows);
}

static const struct {
	int code;
	const char *msg;
} gateway_codes[] = {
	{1, "APPLICATION_ERROR"},
	{10, "INVALID_REQUEST_PARAMETER_ERROR"},
	{12, "NO_OPENAPI_SERVICE_ERROR"},
	{20, "SERVICE_ACCESS_DENIED_ERROR"},
	{22, "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR"},
	{30, "SERVICE_KEY_IS_NOT_REGISTERED_ERROR"},
	{31, "DEADLINE_HAS_EXPIRED_ERROR"},
	{32, "UNREGISTERED_IP_ERROR"},
	{99, "UNKNOWN_ERROR"},
};

const char *render_gateway_msg(int code)
{
	for (size_t i = 0; i < ARRAY_LEN(gateway_codes); i++)
		if (gateway_codes[i].code == code)
			return gateway_codes[i].msg;
	return NULL;
}

bool render_gateway_error(struct sbuf *b, int code)
{
	const char *msg = render_gateway_msg(code);
	return sbuf_addf(b,
			 "<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg>\n"
			 "<returnAuthMsg>%s</returnAuthMsg>\n"
			 "<returnReasonCode>%02d</returnReasonCode></cmmMsgHeader></"
			 "OpenAPI_ServiceResponse>",
			 msg ? msg : "UNKNOWN_ERROR", code);
}

bool render_service_error(struct sbuf *b, enum render_format fmt, int code, long page_no,
			  long num_rows)
{
	const char *msg = render_gateway_msg(code);
	msg = msg ? msg : "UNKNOWN_ERROR";
	if (fmt == FMT_XML)
		return sbuf_addf(
			b,
			"<response><header><resultCode>%02d</resultCode><resultMsg>%s</resultMsg>"
			"</header></response>",
			code, msg);
	return sbuf_addf(b,
			 "{\"resultMsg\":\"%s\",\"totalCount\":0,\"items\":\"\",\"pageNo\":%ld,"
			 "\"resultCode\":\"%02d\",\"numOfRows\":%ld}",
			 msg, page_no, code, num_rows);
}
