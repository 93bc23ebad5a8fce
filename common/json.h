/* json: writing JSON text and walking JSON streams.
 *
 * Generator: appends UTF-8 JSON straight into a caller's struct buf (no
 * allocation per call; the buffer grows), inserting commas itself. Strings
 * are escaped per RFC 8259: '"', '\\' and the control characters U+0000..
 * U+001F are escaped (\n \t \r \b \f, else \u00XX); everything else is
 * copied as UTF-8, including 4-byte characters outside the BMP (never split
 * into \uD83D\uDE00 surrogate pairs), '/' and U+2028/2029. Invalid UTF-8 is
 * never passed through: each ill-formed subsequence (see utf8_decode) is
 * replaced by U+FFFD, so the output is always valid UTF-8 whatever the
 * input. Doubles are written without locale; NaN and infinities, which JSON
 * cannot carry, become null. Misuse (a key outside an object, unbalanced
 * ends, nesting deeper than JSON_MAX_DEPTH) and allocation failure are
 * sticky: json_gen_finish reports them once.
 *
 * Stream: json_stream wraps a yajl parser and keeps the path of the value
 * being parsed (object keys and array indexes), so a callback can tell where
 * it is ("items.item[3].statId") without a tree being built: memory stays
 * bounded by nesting depth and key length, not by document size. It knows
 * nothing about the documents it walks. */
#ifndef EV_JSON_H
#define EV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"

#define JSON_MAX_DEPTH 64

/* ---- generator ---- */

struct json_gen {
	struct buf *out;        /* borrowed: the caller's buffer */
	uint64_t is_array_bits; /* bit d: container at depth d+1 is an array */
	unsigned depth;         /* open containers */
	bool need_comma;        /* a value was completed at this level */
	bool after_key;         /* a key was written; its value must follow */
	bool misused;           /* call sequence was not well-formed JSON */
};

/* Start generating at the end of out's current content. */
void json_gen_init(struct json_gen *g, struct buf *out);
/* True when the document is complete (all containers closed, no misuse)
 * and the buffer holds all of it. */
bool json_gen_finish(const struct json_gen *g) MUSTCHECK;

void json_obj_begin(struct json_gen *g);
void json_obj_end(struct json_gen *g);
void json_arr_begin(struct json_gen *g);
void json_arr_end(struct json_gen *g);

/* Object key; the next call writes its value. */
void json_key(struct json_gen *g, const char *key);
void json_key_n(struct json_gen *g, const char *key, size_t len);

void json_str(struct json_gen *g, const char *s); /* NULL writes null */
void json_str_n(struct json_gen *g, const char *s, size_t len);
void json_int(struct json_gen *g, int64_t v);
void json_uint(struct json_gen *g, uint64_t v);
/* decimals >= 0: fixed ("7.00" with 2); JSON_SHORTEST: shortest round-trip. */
void json_double(struct json_gen *g, double v, int decimals);
#define JSON_SHORTEST BUF_SHORTEST
void json_bool(struct json_gen *g, bool v);
void json_null(struct json_gen *g);
/* A complete JSON value the caller vouches for (a cached fragment); copied
 * as is, with the comma handled. */
void json_raw(struct json_gen *g, const char *text, size_t len);

/* key + value in one call, the common case in answers. */
void json_kv_str(struct json_gen *g, const char *key, const char *s);
void json_kv_int(struct json_gen *g, const char *key, int64_t v);
void json_kv_double(struct json_gen *g, const char *key, double v, int decimals);
void json_kv_bool(struct json_gen *g, const char *key, bool v);
void json_kv_null(struct json_gen *g, const char *key);

/* Append the escaped body of a JSON string (no quotes) to out, with the
 * rules above. For callers building JSON by hand (log lines). */
void json_escape(struct buf *out, const char *s, size_t len);

/* ---- stream ---- */

enum json_event {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER, /* text holds the number exactly as written */
	JSON_STRING, /* text holds the decoded string (escapes resolved, UTF-8) */
	JSON_OBJ_BEGIN,
	JSON_OBJ_END,
	JSON_ARR_BEGIN,
	JSON_ARR_END,
};

/* One event. text/len are valid only during the callback, are not
 * NUL-terminated, and may contain NUL bytes (from \u0000). */
struct json_value {
	enum json_event type;
	const char *text; /* JSON_NUMBER, JSON_STRING; else NULL */
	size_t len;
	bool boolean; /* JSON_BOOL */
};

struct json_stream;

/* Called for every value. During the call, the stream's path (json_stream_at,
 * json_stream_key, ...) names the value itself; for *_BEGIN and *_END events
 * it names the container, so a pattern matches both ends of an object.
 * Return false to stop the parse (json_stream_feed then fails with
 * "stopped by callback"). */
typedef bool (*json_stream_cb)(void *ctx, struct json_stream *js, const struct json_value *v);

enum {
	/* Accept strings that are not valid UTF-8 (passed through as bytes);
	 * by default they are a parse error. Callers that reject one record
	 * rather than a whole page check utf8_valid themselves. */
	JSON_STREAM_ALLOW_INVALID_UTF8 = 1u << 0,
};

struct json_stream *json_stream_new(json_stream_cb cb, void *ctx, unsigned flags) MUSTCHECK;
void json_stream_free(struct json_stream *js);
/* Feed the next chunk (any split, even inside a token). */
bool json_stream_feed(struct json_stream *js, const void *data, size_t len) MUSTCHECK;
/* End of input: fails on a truncated document ("premature EOF") or when
 * no value at all was seen. */
bool json_stream_finish(struct json_stream *js) MUSTCHECK;
/* Why feed or finish failed, with the 0-based offset of the byte where the
 * parser stopped (the document's length for a truncated one): "lexical
 * error: invalid char in json text at byte 1234". "" while no error. */
const char *json_stream_error(const struct json_stream *js);
/* Bytes fed so far. */
uint64_t json_stream_offset(const struct json_stream *js);

/* Path queries, valid inside the callback. Containers enclosing the value;
 * 0 for the top-level value. */
unsigned json_stream_depth(const struct json_stream *js);
/* Key of the value in its enclosing object, or NULL (array element, top). */
const char *json_stream_key(const struct json_stream *js, size_t *len);
/* Index of the value in its enclosing array, or -1. */
long json_stream_index(const struct json_stream *js);
/* Does the value's path equal pattern? Segments are separated by '.';
 * "name" matches that key, "*" any key, "[]" any array index, "[N]" index
 * N; "" is the top-level value. "items.item[]" matches every element of the
 * array under key item of the object under key items; "items.item[].statId"
 * the statId of each. Keys containing '.', '[' or '*' cannot be matched. */
bool json_stream_at(const struct json_stream *js, const char *pattern);
/* Is the value strictly inside a container whose path equals pattern? */
bool json_stream_under(const struct json_stream *js, const char *pattern);
/* The path as text ("items.item[3].statId"), truncated to outlen; for
 * error messages and rejects. Returns out. */
char *json_stream_path(const struct json_stream *js, char *out, size_t outlen);

#endif
