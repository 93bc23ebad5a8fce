#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "utf8.h"

/* ---- generator ---- */

/* Byte classes for escaping: 0 copy as is, 1 escape, 2 start of a
 * multi-byte (or invalid) sequence. */
static const unsigned char escape_class[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 00-0F */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 10-1F */
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 80-FF */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static void escape_char(struct buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = {'\\', 0};
	switch (c) {
	case '"': esc[1] = '"'; break;
	case '\\': esc[1] = '\\'; break;
	case '\b': esc[1] = 'b'; break;
	case '\f': esc[1] = 'f'; break;
	case '\n': esc[1] = 'n'; break;
	case '\r': esc[1] = 'r'; break;
	case '\t': esc[1] = 't'; break;
	default:
		memcpy(esc, "\\u00", 4);
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 0xF];
		buf_append(out, esc, 6);
		return;
	}
	buf_append(out, esc, 2);
}

#define BYTES_ONES 0x0101010101010101ull
#define BYTES_HIGHS 0x8080808080808080ull

/* True when none of the 8 bytes needs attention (control, '"', '\\',
 * non-ASCII). Bit tricks from "Bit Twiddling Hacks" (haszero/hasless): they
 * can report a false hit above a real one, never miss one. */
static inline bool word_is_plain(uint64_t w)
{
	uint64_t quote = w ^ (BYTES_ONES * '"');
	uint64_t backslash = w ^ (BYTES_ONES * '\\');
	uint64_t special = ((w - BYTES_ONES * 0x20) & ~w) | ((quote - BYTES_ONES) & ~quote) |
			   ((backslash - BYTES_ONES) & ~backslash) | w;
	return (special & BYTES_HIGHS) == 0;
}

/* Length of the well-formed 2- or 3-byte sequence at s (Hangul and most
 * text), else 0: the inline fast path before utf8_decode. */
static inline size_t common_utf8_len(const unsigned char *s, size_t left)
{
	if (s[0] >= 0xC2 && s[0] <= 0xDF && left >= 2 && (s[1] & 0xC0) == 0x80)
		return 2;
	/* E0 (overlongs) and ED (surrogates) restrict the second byte: slow path */
	if (s[0] >= 0xE1 && s[0] <= 0xEF && s[0] != 0xED && left >= 3 && (s[1] & 0xC0) == 0x80 &&
	    (s[2] & 0xC0) == 0x80)
		return 3;
	return 0;
}

void json_escape(struct buf *out, const char *s, size_t len)
{
	size_t run = 0; /* start of the pending run copied as is */
	size_t i = 0;
	while (i < len) {
		if (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (word_is_plain(w)) {
				i += 8;
				continue;
			}
		}
		unsigned char cls = escape_class[(unsigned char)s[i]];
		if (cls == 0) {
			i++;
			continue;
		}
		if (cls == 2) {
			size_t n = common_utf8_len((const unsigned char *)s + i, len - i);
			if (n) {
				i += n;
				continue;
			}
			uint32_t cp;
			n = utf8_decode(s + i, len - i, &cp);
			if (cp != UTF8_INVALID) {
				i += n;
				continue;
			}
			buf_append(out, s + run, i - run);
			buf_append(out, UTF8_REPLACEMENT_TEXT, 3);
			i += n;
			run = i;
			continue;
		}
		buf_append(out, s + run, i - run);
		escape_char(out, (unsigned char)s[i]);
		run = ++i;
	}
	buf_append(out, s + run, len - run);
}

void json_gen_init(struct json_gen *g, struct buf *out)
{
	*g = (struct json_gen){.out = out};
}

bool json_gen_finish(const struct json_gen *g)
{
	return !g->misused && g->depth == 0 && g->need_comma && !g->after_key && buf_ok(g->out);
}

static bool in_object(const struct json_gen *g)
{
	return g->depth > 0 && !(g->is_array_bits & (1ull << (g->depth - 1)));
}

/* Comma and well-formedness before any value. */
static void before_value(struct json_gen *g)
{
	if (g->after_key) {
		g->after_key = false;
		return;
	}
	if (in_object(g) || (g->depth == 0 && g->need_comma))
		g->misused = true; /* value without key, or a second top-level value */
	if (g->need_comma && g->depth > 0)
		buf_putc(g->out, ',');
}

static void open_container(struct json_gen *g, char c, bool is_array)
{
	before_value(g);
	if (g->depth >= JSON_MAX_DEPTH) {
		g->misused = true;
		return;
	}
	if (is_array)
		g->is_array_bits |= 1ull << g->depth;
	else
		g->is_array_bits &= ~(1ull << g->depth);
	g->depth++;
	g->need_comma = false;
	buf_putc(g->out, c);
}

static void close_container(struct json_gen *g, char c, bool is_array)
{
	if (g->depth == 0 || g->after_key ||
	    !!(g->is_array_bits & (1ull << (g->depth - 1))) != is_array) {
		g->misused = true;
		return;
	}
	g->depth--;
	g->need_comma = true;
	buf_putc(g->out, c);
}

void json_obj_begin(struct json_gen *g)
{
	open_container(g, '{', false);
}

void json_obj_end(struct json_gen *g)
{
	close_container(g, '}', false);
}

void json_arr_begin(struct json_gen *g)
{
	open_container(g, '[', true);
}

void json_arr_end(struct json_gen *g)
{
	close_container(g, ']', true);
}

/* Keys are nearly always short ASCII literals: check them whole, then
 * write ,"key": with one capacity check. */
static bool is_plain(const char *s, size_t len)
{
	size_t i = 0;
	for (; len - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (!word_is_plain(w))
			return false;
	}
	for (; i < len; i++)
		if (escape_class[(unsigned char)s[i]] != 0)
			return false;
	return true;
}

void json_key_n(struct json_gen *g, const char *key, size_t len)
{
	if (!in_object(g) || g->after_key)
		g->misused = true;
	struct buf *out = g->out;
	if (is_plain(key, len) && len < SIZE_MAX - 8 && !out->failed &&
	    (out->cap - out->len > len + 4 || buf_reserve(out, len + 4))) {
		char *p = out->data + out->len;
		if (g->need_comma)
			*p++ = ',';
		*p++ = '"';
		memcpy(p, key, len);
		p += len;
		*p++ = '"';
		*p++ = ':';
		*p = '\0';
		out->len = (size_t)(p - out->data);
	} else {
		if (g->need_comma)
			buf_putc(out, ',');
		buf_putc(out, '"');
		json_escape(out, key, len);
		buf_append(out, "\":", 2);
	}
	g->need_comma = false;
	g->after_key = true;
}

void json_key(struct json_gen *g, const char *key)
{
	json_key_n(g, key, strlen(key));
}

void json_str_n(struct json_gen *g, const char *s, size_t len)
{
	before_value(g);
	buf_putc(g->out, '"');
	json_escape(g->out, s, len);
	buf_putc(g->out, '"');
	g->need_comma = true;
}

void json_str(struct json_gen *g, const char *s)
{
	if (s)
		json_str_n(g, s, strlen(s));
	else
		json_null(g);
}

void json_int(struct json_gen *g, int64_t v)
{
	before_value(g);
	buf_put_int(g->out, v);
	g->need_comma = true;
}

void json_uint(struct json_gen *g, uint64_t v)
{
	before_value(g);
	buf_put_uint(g->out, v);
	g->need_comma = true;
}

void json_double(struct json_gen *g, double v, int decimals)
{
	if (!isfinite(v)) {
		json_null(g);
		return;
	}
	before_value(g);
	buf_put_double(g->out, v, decimals);
	g->need_comma = true;
}

void json_bool(struct json_gen *g, bool v)
{
	before_value(g);
	if (v)
		buf_append(g->out, "true", 4);
	else
		buf_append(g->out, "false", 5);
	g->need_comma = true;
}

void json_null(struct json_gen *g)
{
	before_value(g);
	buf_append(g->out, "null", 4);
	g->need_comma = true;
}

void json_raw(struct json_gen *g, const char *text, size_t len)
{
	before_value(g);
	buf_append(g->out, text, len);
	g->need_comma = true;
}

void json_kv_str(struct json_gen *g, const char *key, const char *s)
{
	json_key(g, key);
	json_str(g, s);
}

void json_kv_int(struct json_gen *g, const char *key, int64_t v)
{
	json_key(g, key);
	json_int(g, v);
}

void json_kv_double(struct json_gen *g, const char *key, double v, int decimals)
{
	json_key(g, key);
	json_double(g, v, decimals);
}

void json_kv_bool(struct json_gen *g, const char *key, bool v)
{
	json_key(g, key);
	json_bool(g, v);
}

void json_kv_null(struct json_gen *g, const char *key)
{
	json_key(g, key);
	json_null(g);
}

/* ---- stream ---- */

/* One open container. Keys of all open objects live back to back in
 * keys: a frame's key starts where its parent's ends, so setting a new key
 * truncates to key_off and appends. */
struct frame {
	bool is_array;
	long index;     /* arrays: index of the current element, -1 before the first */
	size_t key_off; /* objects: current key in js->keys */
	size_t key_len;
};

struct json_stream {
	yajl_handle parser;   /* owned */
	json_stream_cb cb;
	void *ctx;            /* borrowed, the caller's */
	struct frame frames[JSON_MAX_DEPTH];
	unsigned depth;
	struct buf keys;      /* owned: the keys of the open objects */
	uint64_t offset;      /* bytes fed before the current chunk */
	bool seen_value;
	bool failed;
	char error[192];
};

static int emit(struct json_stream *js, const struct json_value *v)
{
	if (!js->cb(js->ctx, js, v)) {
		if (!js->error[0])
			snprintf(js->error, sizeof(js->error), "stopped by callback");
		return 0;
	}
	return 1;
}

static void before_element(struct json_stream *js)
{
	js->seen_value = true;
	if (js->depth > 0 && js->frames[js->depth - 1].is_array)
		js->frames[js->depth - 1].index++;
}

static int scalar(struct json_stream *js, enum json_event type, const char *text, size_t len,
		  bool boolean)
{
	before_element(js);
	struct json_value v = {.type = type, .text = text, .len = len, .boolean = boolean};
	return emit(js, &v);
}

static int on_null(void *ctx)
{
	return scalar(ctx, JSON_NULL, NULL, 0, false);
}

static int on_boolean(void *ctx, int value)
{
	return scalar(ctx, JSON_BOOL, NULL, 0, value != 0);
}

static int on_number(void *ctx, const char *text, size_t len)
{
	return scalar(ctx, JSON_NUMBER, text, len, false);
}

static int on_string(void *ctx, const unsigned char *text, size_t len)
{
	return scalar(ctx, JSON_STRING, (const char *)text, len, false);
}

static int open_frame(struct json_stream *js, bool is_array)
{
	before_element(js);
	struct json_value v = {.type = is_array ? JSON_ARR_BEGIN : JSON_OBJ_BEGIN};
	if (!emit(js, &v))
		return 0;
	if (js->depth >= JSON_MAX_DEPTH) {
		snprintf(js->error, sizeof(js->error), "nesting deeper than %d", JSON_MAX_DEPTH);
		return 0;
	}
	js->frames[js->depth++] = (struct frame){
		.is_array = is_array,
		.index = -1,
		.key_off = js->keys.len,
	};
	return 1;
}

static int close_frame(struct json_stream *js, bool is_array)
{
	struct frame *f = &js->frames[--js->depth];
	buf_truncate(&js->keys, f->key_off);
	struct json_value v = {.type = is_array ? JSON_ARR_END : JSON_OBJ_END};
	return emit(js, &v);
}

static int on_start_map(void *ctx)
{
	return open_frame(ctx, false);
}

static int on_end_map(void *ctx)
{
	return close_frame(ctx, false);
}

static int on_start_array(void *ctx)
{
	return open_frame(ctx, true);
}

static int on_end_array(void *ctx)
{
	return close_frame(ctx, true);
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
	struct json_stream *js = ctx;
	struct frame *f = &js->frames[js->depth - 1];
	buf_truncate(&js->keys, f->key_off);
	buf_append(&js->keys, key, len);
	if (!buf_ok(&js->keys)) {
		snprintf(js->error, sizeof(js->error), "out of memory");
		return 0;
	}
	f->key_len = len;
	return 1;
}

static const yajl_callbacks stream_callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end_map,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end_array,
};

struct json_stream *json_stream_new(json_stream_cb cb, void *ctx, unsigned flags)
{
	struct json_stream *js = calloc(1, sizeof(*js));
	if (!js)
		return NULL;
	js->cb = cb;
	js->ctx = ctx;
	js->parser = yajl_alloc(&stream_callbacks, NULL, js);
	if (!js->parser)
		goto fail;
	if ((flags & JSON_STREAM_ALLOW_INVALID_UTF8) &&
	    !yajl_config(js->parser, yajl_dont_validate_strings, 1))
		goto fail;
	return js;
fail:
	json_stream_free(js);
	return NULL;
}

void json_stream_free(struct json_stream *js)
{
	if (!js)
		return;
	if (js->parser)
		yajl_free(js->parser);
	buf_free(&js->keys);
	free(js);
}

/* Record yajl's reason with the absolute byte offset. */
static void note_error(struct json_stream *js, yajl_status status, bool at_end)
{
	js->failed = true;
	/* yajl counts the offending byte as consumed: step back onto it. At the
	 * end its count refers to an internal chunk; the offset is then the
	 * document's length. */
	size_t consumed = at_end ? 0 : yajl_get_bytes_consumed(js->parser);
	uint64_t at = js->offset + (consumed ? consumed - 1 : 0);
	if (status == yajl_status_client_canceled && js->error[0]) {
		size_t used = strlen(js->error);
		snprintf(js->error + used, sizeof(js->error) - used, " at byte %llu",
			 (unsigned long long)at);
		return;
	}
	unsigned char *msg = yajl_get_error(js->parser, 0, NULL, 0);
	const char *text = msg ? (const char *)msg : "parse error";
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.'))
		n--;
	snprintf(js->error, sizeof(js->error), "%.*s at byte %llu", (int)n, text,
		 (unsigned long long)at);
	if (msg)
		yajl_free_error(js->parser, msg);
}

bool json_stream_feed(struct json_stream *js, const void *data, size_t len)
{
	if (js->failed)
		return false;
	yajl_status st = yajl_parse(js->parser, data, len);
	if (st != yajl_status_ok) {
		note_error(js, st, false);
		return false;
	}
	js->offset += len;
	return true;
}

bool json_stream_finish(struct json_stream *js)
{
	if (js->failed)
		return false;
	yajl_status st = yajl_complete_parse(js->parser);
	if (st != yajl_status_ok) {
		note_error(js, st, true);
		return false;
	}
	if (!js->seen_value) {
		js->failed = true;
		snprintf(js->error, sizeof(js->error), "empty document");
		return false;
	}
	return true;
}

const char *json_stream_error(const struct json_stream *js)
{
	return js->failed ? js->error : "";
}

uint64_t json_stream_offset(const struct json_stream *js)
{
	return js->offset;
}

unsigned json_stream_depth(const struct json_stream *js)
{
	return js->depth;
}

const char *json_stream_key(const struct json_stream *js, size_t *len)
{
	if (js->depth == 0 || js->frames[js->depth - 1].is_array) {
		if (len)
			*len = 0;
		return NULL;
	}
	const struct frame *f = &js->frames[js->depth - 1];
	if (len)
		*len = f->key_len;
	return js->keys.data + f->key_off;
}

long json_stream_index(const struct json_stream *js)
{
	if (js->depth == 0 || !js->frames[js->depth - 1].is_array)
		return -1;
	return js->frames[js->depth - 1].index;
}

/* Match pattern against the path made of the first nframes frames. */
static bool match_frames(const struct json_stream *js, const char *p, unsigned nframes)
{
	for (unsigned i = 0; i < nframes; i++) {
		const struct frame *f = &js->frames[i];
		if (f->is_array) {
			if (*p != '[')
				return false;
			p++;
			if (*p == ']') {
				p++;
				continue;
			}
			long want = 0;
			if (*p < '0' || *p > '9')
				return false;
			while (*p >= '0' && *p <= '9') {
				if (want > 100000000)
					return false;
				want = want * 10 + (*p++ - '0');
			}
			if (*p++ != ']' || want != f->index)
				return false;
			continue;
		}
		if (i > 0 && *p++ != '.')
			return false;
		size_t seg = strcspn(p, ".[");
		if (!(seg == 1 && *p == '*') &&
		    (seg != f->key_len || memcmp(p, js->keys.data + f->key_off, seg) != 0))
			return false;
		p += seg;
	}
	return *p == '\0';
}

bool json_stream_at(const struct json_stream *js, const char *pattern)
{
	return match_frames(js, pattern, js->depth);
}

bool json_stream_under(const struct json_stream *js, const char *pattern)
{
	for (unsigned k = 0; k < js->depth; k++)
		if (match_frames(js, pattern, k))
			return true;
	return false;
}

char *json_stream_path(const struct json_stream *js, char *out, size_t outlen)
{
	if (!outlen)
		return out;
	size_t used = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < js->depth && used < outlen - 1; i++) {
		const struct frame *f = &js->frames[i];
		int n;
		if (f->is_array)
			n = snprintf(out + used, outlen - used, "[%ld]", f->index);
		else
			n = snprintf(out + used, outlen - used, "%s%.*s", i > 0 ? "." : "",
				     (int)f->key_len, js->keys.data + f->key_off);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return out;
}
