#include "upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kst.h"
#include "log.h"

/* ---- URLs ---- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* A key holding a %XX escape is the portal's "encoded" form: sent as is,
 * since encoding it again would turn its '%' into %25. */
static bool already_encoded(const char *key)
{
	for (const char *p = key; *p; p++)
		if (p[0] == '%' && is_hex(p[1]) && is_hex(p[2]))
			return true;
	return false;
}

static void put_encoded(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			buf_putc(out, (char)c);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_append(out, esc, 3);
		}
	}
}

bool upstream_url(struct buf *out, const char *base, const char *service_key,
		  const struct upstream_query *q)
{
	if (!base || !*base || !q->op || q->page_no < 1 || q->num_of_rows < 1 ||
	    q->num_of_rows > UPSTREAM_MAX_ROWS || q->period_minutes < 0)
		return false;
	size_t base_len = strlen(base);
	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	buf_append(out, base, base_len);
	buf_putc(out, '/');
	buf_puts(out, q->op);
	buf_puts(out, "?serviceKey=");
	if (service_key && already_encoded(service_key))
		buf_puts(out, service_key);
	else if (service_key)
		put_encoded(out, service_key);
	buf_printf(out, "&pageNo=%ld&numOfRows=%d&dataType=JSON", q->page_no, q->num_of_rows);
	if (q->period_minutes > 0)
		buf_printf(out, "&period=%d", q->period_minutes);
	if (q->zcode && *q->zcode) {
		buf_puts(out, "&zcode=");
		put_encoded(out, q->zcode);
	}
	return buf_ok(out);
}

/* ---- outcomes ---- */

const char *upstream_action_name(enum upstream_action action)
{
	switch (action) {
	case UPSTREAM_OK: return "ok";
	case UPSTREAM_RETRY: return "retry";
	case UPSTREAM_NEXT_KEY: return "next_key";
	case UPSTREAM_CONFIG: return "config";
	case UPSTREAM_FAIL: return "fail";
	}
	return "?";
}

/* UPSTREAM.md's table of gateway codes, which the service's resultCode
 * shares. */
static const struct {
	const char *code;
	enum upstream_action action;
} code_table[] = {
	{"00", UPSTREAM_OK},
	{"01", UPSTREAM_RETRY},     /* APPLICATION_ERROR */
	{"10", UPSTREAM_FAIL},      /* INVALID_REQUEST_PARAMETER_ERROR: our bug */
	{"12", UPSTREAM_CONFIG},    /* NO_OPENAPI_SERVICE_ERROR: wrong URL */
	{"20", UPSTREAM_CONFIG},    /* SERVICE_ACCESS_DENIED_ERROR */
	{"22", UPSTREAM_NEXT_KEY},  /* LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR */
	{"30", UPSTREAM_CONFIG},    /* SERVICE_KEY_IS_NOT_REGISTERED_ERROR */
	{"31", UPSTREAM_CONFIG},    /* DEADLINE_HAS_EXPIRED_ERROR */
	{"32", UPSTREAM_CONFIG},    /* UNREGISTERED_IP_ERROR */
	{"99", UPSTREAM_RETRY},     /* UNKNOWN_ERROR */
};

enum upstream_action upstream_classify_code(const char *code)
{
	/* "0" and "00", "1" and "01": some answers drop the leading zero */
	char norm[8];
	size_t len = code ? strlen(code) : 0;
	if (len == 1 && code[0] >= '0' && code[0] <= '9')
		snprintf(norm, sizeof(norm), "0%c", code[0]);
	else
		snprintf(norm, sizeof(norm), "%s", code ? code : "");
	for (size_t i = 0; i < ARRAY_LEN(code_table); i++)
		if (strcmp(norm, code_table[i].code) == 0)
			return code_table[i].action;
	return UPSTREAM_RETRY;
}

long upstream_expected_items(long total_count, long page_no, long num_of_rows)
{
	if (total_count <= 0 || page_no < 1 || num_of_rows < 1)
		return 0;
	long before = (page_no - 1) * num_of_rows;
	if (before >= total_count)
		return 0;
	long left = total_count - before;
	return left < num_of_rows ? left : num_of_rows;
}

long upstream_page_count(long total_count, long num_of_rows)
{
	if (total_count <= 0 || num_of_rows < 1)
		return 0;
	return (total_count + num_of_rows - 1) / num_of_rows;
}

/* ---- page parser ---- */

/* XML bodies are error documents of a few hundred bytes; more is kept only
 * up to this bound (the codes sit near the start). */
#define XML_KEEP_MAX (64 * 1024)

enum body_kind { BODY_UNKNOWN, BODY_JSON, BODY_XML };

struct upstream_page {
	upstream_item_cb cb;
	void *ctx; /* borrowed: the caller's */
	struct json_stream *js; /* owned */
	struct record_raw raw;  /* owned: the item being read */
	struct buf xml;         /* owned: an XML body, bounded */
	enum body_kind kind;
	uint64_t bytes;
	long items;
	unsigned item_depth;   /* depth of an item's members; 0 outside items */
	unsigned skip_depth;   /* inside a nested container of an item: its depth */
	long item_position;
	bool top_not_object;
	bool stopped_by_cb;
	struct upstream_envelope env;
};

/* Envelope keys, wherever they sit outside the items (flat as UPSTREAM.md
 * shows, or under response.header / response.body). */
static void envelope_value(struct upstream_page *p, const char *key, size_t klen,
			   const struct json_value *v)
{
	if (v->type != JSON_STRING && v->type != JSON_NUMBER)
		return;
	char text[128];
	size_t n = v->len < sizeof(text) - 1 ? v->len : sizeof(text) - 1;
	memcpy(text, v->text, n);
	text[n] = '\0';
	struct upstream_envelope *e = &p->env;
#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)
	if (KEY_IS("resultCode")) {
		snprintf(e->result_code, sizeof(e->result_code), "%.7s", text);
		e->has_result_code = true;
	} else if (KEY_IS("resultMsg")) {
		snprintf(e->result_msg, sizeof(e->result_msg), "%s", text);
	} else if (KEY_IS("totalCount") || KEY_IS("pageNo") || KEY_IS("numOfRows")) {
		char *end;
		long value = strtol(text, &end, 10);
		if (end == text || *end != '\0' || value < 0)
			return; /* left unset: the finish check reports it */
		if (KEY_IS("totalCount")) {
			e->total_count = value;
			e->has_total_count = true;
		} else if (KEY_IS("pageNo")) {
			e->page_no = value;
			e->has_page_no = true;
		} else {
			e->num_of_rows = value;
			e->has_num_of_rows = true;
		}
	}
#undef KEY_IS
}

static bool is_item_path(struct json_stream *js)
{
	return json_stream_at(js, "items.item[]") || json_stream_at(js, "items.item") ||
	       json_stream_at(js, "response.body.items.item[]") ||
	       json_stream_at(js, "response.body.items.item");
}

static enum record_json json_type_of(enum json_event type)
{
	switch (type) {
	case JSON_STRING: return RECORD_JSON_STRING;
	case JSON_NUMBER: return RECORD_JSON_NUMBER;
	case JSON_BOOL: return RECORD_JSON_BOOL;
	case JSON_NULL: return RECORD_JSON_NULL;
	default: return RECORD_JSON_CONTAINER;
	}
}

static bool deliver(struct upstream_page *p)
{
	p->items++;
	if (!p->cb(p->ctx, &p->raw, p->item_position)) {
		p->stopped_by_cb = true;
		return false;
	}
	return true;
}

static bool on_value(void *ctx, struct json_stream *js, const struct json_value *v)
{
	struct upstream_page *p = ctx;
	unsigned depth = json_stream_depth(js);
	if (depth == 0) {
		if (v->type != JSON_OBJ_BEGIN && v->type != JSON_OBJ_END)
			p->top_not_object = true;
		return true;
	}
	if (p->item_depth) {
		/* inside an item */
		if (p->skip_depth) {
			if ((v->type == JSON_OBJ_END || v->type == JSON_ARR_END) && depth == p->skip_depth)
				p->skip_depth = 0;
			return true;
		}
		if (depth == p->item_depth - 1 && v->type == JSON_OBJ_END) {
			p->item_depth = 0;
			return deliver(p);
		}
		size_t klen;
		const char *key = json_stream_key(js, &klen);
		if (v->type == JSON_OBJ_BEGIN || v->type == JSON_ARR_BEGIN) {
			/* a container where a scalar belongs: noted, contents skipped */
			record_raw_add(&p->raw, key ? key : "", klen, RECORD_JSON_CONTAINER,
				       v->type == JSON_ARR_BEGIN ? "[" : NULL, v->type == JSON_ARR_BEGIN);
			p->skip_depth = depth;
			return true;
		}
		const char *text = v->text;
		size_t len = v->len;
		if (v->type == JSON_BOOL) {
			text = v->boolean ? "true" : "false";
			len = strlen(text);
		}
		record_raw_add(&p->raw, key ? key : "", klen, json_type_of(v->type), text, len);
		return true;
	}
	if (is_item_path(js)) {
		long index = json_stream_index(js);
		p->item_position = index < 0 ? 0 : index;
		if (v->type == JSON_OBJ_BEGIN) {
			record_raw_reset(&p->raw);
			p->item_depth = depth + 1;
			return true;
		}
		if (v->type == JSON_ARR_BEGIN || v->type == JSON_ARR_END)
			return true; /* the item list itself */
		if (v->type == JSON_STRING && v->len == 0 && index < 0)
			return true; /* "item": "" : no item */
		if (v->type == JSON_NULL && index < 0)
			return true;
		if (v->type == JSON_OBJ_END)
			return true;
		record_raw_set_not_object(&p->raw, json_type_of(v->type), v->text, v->len);
		return deliver(p);
	}
	size_t klen;
	const char *key = json_stream_key(js, &klen);
	if (key)
		envelope_value(p, key, klen, v);
	return true;
}

static void page_clear(struct upstream_page *p)
{
	json_stream_free(p->js);
	p->js = NULL;
	buf_reset(&p->xml);
	p->kind = BODY_UNKNOWN;
	p->bytes = 0;
	p->items = 0;
	p->item_depth = 0;
	p->skip_depth = 0;
	p->item_position = 0;
	p->top_not_object = false;
	p->stopped_by_cb = false;
	memset(&p->env, 0, sizeof(p->env));
	record_raw_reset(&p->raw);
}

struct upstream_page *upstream_page_new(upstream_item_cb cb, void *ctx)
{
	struct upstream_page *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cb = cb;
	p->ctx = ctx;
	record_raw_init(&p->raw);
	buf_init(&p->xml);
	if (!upstream_page_reset(p)) {
		upstream_page_free(p);
		return NULL;
	}
	return p;
}

void upstream_page_free(struct upstream_page *p)
{
	if (!p)
		return;
	json_stream_free(p->js);
	record_raw_free(&p->raw);
	buf_free(&p->xml);
	free(p);
}

bool upstream_page_reset(struct upstream_page *p)
{
	page_clear(p);
	/* invalid UTF-8 rejects one item (record.c), not the page */
	p->js = json_stream_new(on_value, p, JSON_STREAM_ALLOW_INVALID_UTF8);
	return p->js != NULL;
}

uint64_t upstream_page_bytes(const struct upstream_page *p)
{
	return p->bytes;
}

bool upstream_page_feed(struct upstream_page *p, const void *data, size_t len)
{
	const char *s = data;
	p->bytes += len;
	if (p->kind == BODY_UNKNOWN) {
		/* the first non-blank byte tells JSON from XML */
		size_t i = 0;
		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
			i++;
		if (i == len)
			return true;
		if (len - i >= 3 && memcmp(s + i, "\xEF\xBB\xBF", 3) == 0)
			i += 3; /* a UTF-8 byte order mark */
		if (i < len)
			p->kind = s[i] == '<' ? BODY_XML : BODY_JSON;
		s += i;
		len -= i;
		if (p->kind == BODY_UNKNOWN)
			return true;
	}
	if (p->kind == BODY_XML) {
		if (p->xml.len < XML_KEEP_MAX) {
			size_t room = XML_KEEP_MAX - p->xml.len;
			buf_append(&p->xml, s, len < room ? len : room);
		}
		return true;
	}
	return json_stream_feed(p->js, s, len);
}

/* The text of the first <tag>...</tag> in xml, trimmed, into out. */
static bool xml_tag(const char *xml, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *start = strstr(xml, open);
	if (!start)
		return false;
	start += strlen(open);
	const char *end = strstr(start, close);
	if (!end)
		return false;
	size_t len = record_trim(&start, (size_t)(end - start));
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, start, len);
	out[len] = '\0';
	/* messages are ASCII; anything else becomes '?' so a reason line stays clean */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	return true;
}

static enum upstream_action finish_xml(struct upstream_page *p, long http_status,
				       struct upstream_result *out)
{
	const char *xml = buf_cstr(&p->xml);
	char code[16] = "", msg[128] = "", detail[128] = "";
	bool gateway = xml_tag(xml, "returnReasonCode", code, sizeof(code));
	if (gateway) {
		if (!xml_tag(xml, "returnAuthMsg", msg, sizeof(msg)))
			xml_tag(xml, "errMsg", msg, sizeof(msg));
		xml_tag(xml, "errMsg", detail, sizeof(detail));
	} else if (xml_tag(xml, "resultCode", code, sizeof(code))) {
		xml_tag(xml, "resultMsg", msg, sizeof(msg));
	}
	if (!code[0]) {
		out->action = http_status >= 400 && http_status < 500 && http_status != 408 &&
					      http_status != 429
				      ? UPSTREAM_FAIL
				      : UPSTREAM_RETRY;
		snprintf(out->reason, sizeof(out->reason),
			 "HTTP %ld: an XML or HTML body without a result code", http_status);
		return out->action;
	}
	snprintf(out->code, sizeof(out->code), "%s", code);
	out->action = upstream_classify_code(code);
	if (out->action == UPSTREAM_OK) {
		/* a "00" in XML: we asked for JSON, so this is no page */
		out->action = UPSTREAM_FAIL;
		snprintf(out->reason, sizeof(out->reason),
			 "HTTP %ld: an XML answer with code 00 where JSON was asked", http_status);
		return out->action;
	}
	snprintf(out->reason, sizeof(out->reason), "%s error %s %s (HTTP %ld)",
		 gateway ? "gateway" : "service", code, msg[0] ? msg : "(no message)", http_status);
	return out->action;
}

static enum upstream_action fail_with(struct upstream_result *out, enum upstream_action action,
				      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum upstream_action fail_with(struct upstream_result *out, enum upstream_action action,
				      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	out->action = action;
	return action;
}

enum upstream_action upstream_page_finish(struct upstream_page *p, long http_status,
					  struct upstream_result *out)
{
	memset(out, 0, sizeof(*out));
	out->items = p->items;
	out->is_xml = p->kind == BODY_XML;
	if (p->stopped_by_cb)
		return fail_with(out, UPSTREAM_FAIL, "stopped by the item callback");
	if (p->kind == BODY_XML)
		return finish_xml(p, http_status, out);
	bool retryable_status = http_status == 0 || http_status >= 500 || http_status == 408 ||
				http_status == 429;
	if (http_status < 200 || http_status >= 300) {
		return fail_with(out, retryable_status ? UPSTREAM_RETRY : UPSTREAM_FAIL,
				 "HTTP %ld%s", http_status, p->bytes ? "" : " with an empty body");
	}
	if (p->kind == BODY_UNKNOWN)
		return fail_with(out, UPSTREAM_RETRY, "empty body (HTTP %ld)", http_status);
	if (!json_stream_finish(p->js)) {
		const char *why = json_stream_error(p->js);
		bool truncated = strstr(why, "premature EOF") != NULL;
		return fail_with(out, UPSTREAM_RETRY, "%s body: %s",
				 truncated ? "truncated" : "malformed JSON", why);
	}
	if (p->top_not_object)
		return fail_with(out, UPSTREAM_RETRY, "the body is JSON but not an object");
	out->env = p->env;
	if (!p->env.has_result_code)
		return fail_with(out, UPSTREAM_RETRY, "no resultCode in the JSON envelope");
	snprintf(out->code, sizeof(out->code), "%s", p->env.result_code);
	enum upstream_action action = upstream_classify_code(p->env.result_code);
	if (action != UPSTREAM_OK)
		return fail_with(out, action, "service error %s %s", p->env.result_code,
				 p->env.result_msg[0] ? p->env.result_msg : "(no message)");
	if (!p->env.has_total_count)
		return fail_with(out, UPSTREAM_RETRY, "no totalCount in the JSON envelope");
	out->action = UPSTREAM_OK;
	return UPSTREAM_OK;
}

enum upstream_action upstream_attempt_finish(struct upstream_page *page,
					     const struct fetch_attempt *a,
					     struct upstream_result *out)
{
	if (a->transport_ok || a->stopped)
		return upstream_page_finish(page, a->http_status, out);
	memset(out, 0, sizeof(*out));
	char safe[200];
	log_redact(a->error, safe, sizeof(safe));
	return fail_with(out, a->retryable ? UPSTREAM_RETRY : UPSTREAM_FAIL, "transport: %s", safe);
}

/* ---- service keys ---- */

struct key_slot {
	char *key;             /* owned */
	long calls;            /* on calls_day */
	int64_t calls_day;     /* Korea-time day number of the count */
	time_t exhausted_until; /* 0: usable */
};

struct upstream_keys {
	struct key_slot *slots; /* owned */
	size_t count;
	size_t current; /* the key in use: keys are spent one after another */
	long max_calls;
};

struct upstream_keys *upstream_keys_new(const char *const *keys, size_t nkeys,
					long max_calls_per_key)
{
	struct upstream_keys *ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	ring->max_calls = max_calls_per_key;
	ring->slots = calloc(nkeys ? nkeys : 1, sizeof(*ring->slots));
	if (!ring->slots)
		goto fail;
	for (size_t i = 0; i < nkeys; i++) {
		ring->slots[i].key = strdup(keys[i]);
		if (!ring->slots[i].key)
			goto fail;
		ring->count++;
	}
	return ring;
fail:
	upstream_keys_free(ring);
	return NULL;
}

void upstream_keys_free(struct upstream_keys *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->count; i++)
		free(ring->slots[i].key);
	free(ring->slots);
	free(ring);
}

/* Next midnight in Korea time after now: when the portal resets quotas. */
static time_t next_kst_midnight(time_t now)
{
	int64_t local = (int64_t)now + KST_OFFSET_SECONDS;
	int64_t day = local / 86400;
	if (local < 0 && local % 86400)
		day--;
	return (time_t)((day + 1) * 86400 - KST_OFFSET_SECONDS);
}

static int64_t kst_day(time_t now)
{
	int64_t local = (int64_t)now + KST_OFFSET_SECONDS;
	return local >= 0 ? local / 86400 : (local - 86399) / 86400;
}

static bool usable(const struct upstream_keys *ring, const struct key_slot *slot, time_t now)
{
	if (slot->exhausted_until && now < slot->exhausted_until)
		return false;
	long calls = slot->calls_day == kst_day(now) ? slot->calls : 0;
	return ring->max_calls <= 0 || calls < ring->max_calls;
}

const char *upstream_keys_take(struct upstream_keys *ring, time_t now, int *index)
{
	for (size_t n = 0; n < ring->count; n++) {
		size_t i = (ring->current + n) % ring->count;
		struct key_slot *slot = &ring->slots[i];
		if (slot->exhausted_until && now >= slot->exhausted_until)
			slot->exhausted_until = 0; /* a new Korean day: quota is back */
		if (slot->calls_day != kst_day(now)) {
			slot->calls_day = kst_day(now);
			slot->calls = 0;
		}
		if (!usable(ring, slot, now))
			continue;
		ring->current = i;
		slot->calls++;
		if (index)
			*index = (int)i;
		return slot->key;
	}
	return NULL;
}

void upstream_keys_exhausted(struct upstream_keys *ring, int index, time_t now)
{
	if (index < 0 || (size_t)index >= ring->count)
		return;
	ring->slots[index].exhausted_until = next_kst_midnight(now);
	if (ring->current == (size_t)index)
		ring->current = (ring->current + 1) % ring->count;
}

size_t upstream_keys_count(const struct upstream_keys *ring)
{
	return ring->count;
}

size_t upstream_keys_usable(const struct upstream_keys *ring, time_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < ring->count; i++) {
		if (usable(ring, &ring->slots[i], now))
			n++;
	}
	return n;
}

long upstream_keys_calls(const struct upstream_keys *ring, int index)
{
	if (index < 0 || (size_t)index >= ring->count)
		return 0;
	return ring->slots[index].calls;
}
