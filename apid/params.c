#include "params.h"

#include "base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Longest number text: more digits than a double carries are noise. */
#define NUMBER_TEXT_MAX 32
/* Bytes of a refused value quoted back in a message. */
#define ECHO_MAX 40

static void set_error(struct param_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct param_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
}

/* The value as quoted in a message: cut at a character boundary. */
static int echo_len(const char *value)
{
	size_t len = strlen(value);
	if (len > ECHO_MAX)
		len = utf8_cut(value, ECHO_MAX);
	return (int)len;
}

/* Decode src[0..len) into dst (room for len + 1); returns the decoded
 * length or -1 on a malformed %XX. plus_is_space for query strings. */
static long decode(const char *src, size_t len, char *dst, bool plus_is_space)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = hex_value(src[i + 1]);
			int lo = hex_value(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			dst[n++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			dst[n++] = ' ';
		} else {
			dst[n++] = c;
		}
	}
	dst[n] = '\0';
	return (long)n;
}

static bool has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

bool params_parse(struct params *p, const char *query, size_t len, struct param_error *err)
{
	memset(p, 0, sizeof(*p));
	if (!query || len == 0)
		return true;
	/* Decoded text never grows, but each pair stores two NUL-terminated
	 * strings: "a=1" fits in its own bytes plus the '&', a bare "a" needs
	 * two more (name NUL, empty value NUL). 2 * len + 2 bounds every mix. */
	p->storage = malloc(2 * len + 2);
	if (!p->storage) {
		set_error(err, "query: out of memory");
		return false;
	}
	char *out = p->storage;
	size_t pos = 0;
	while (pos <= len) {
		size_t end = pos;
		while (end < len && query[end] != '&')
			end++;
		if (end > pos) { /* "a=1&&b=2": empty pairs are skipped */
			const char *pair = query + pos;
			size_t pair_len = end - pos;
			const char *eq = memchr(pair, '=', pair_len);
			size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
			if (p->count >= PARAMS_MAX) {
				set_error(err, "query: more than %d parameters", PARAMS_MAX);
				return false;
			}
			struct param *item = &p->items[p->count];
			long n = decode(pair, name_len, out, true);
			if (n < 0) {
				set_error(err,
					  "query: malformed percent-encoding in a parameter name");
				return false;
			}
			if (n == 0 || !utf8_valid(out, (size_t)n) || has_control(out, (size_t)n) ||
			    strlen(out) != (size_t)n) {
				set_error(err, "query: invalid parameter name");
				return false;
			}
			item->name = out;
			out += n + 1;
			const char *raw = eq ? eq + 1 : pair + pair_len;
			size_t raw_len = eq ? pair_len - name_len - 1 : 0;
			n = decode(raw, raw_len, out, true);
			if (n < 0) {
				set_error(err, "%s: malformed percent-encoding", item->name);
				return false;
			}
			if (!utf8_valid(out, (size_t)n)) {
				set_error(err, "%s: not valid UTF-8", item->name);
				return false;
			}
			if (has_control(out, (size_t)n)) {
				set_error(err, "%s: contains a control character", item->name);
				return false;
			}
			item->value = out;
			item->value_len = (size_t)n;
			out += n + 1;
			p->count++;
		}
		pos = end + 1;
	}
	return true;
}

void params_free(struct params *p)
{
	if (!p)
		return;
	free(p->storage);
	p->storage = NULL;
	p->count = 0;
}

enum param_get params_one(const struct params *p, const char *name, const char **value,
			  struct param_error *err)
{
	const struct param *found = NULL;
	for (size_t i = 0; i < p->count; i++) {
		if (strcmp(p->items[i].name, name) != 0)
			continue;
		if (found) {
			set_error(err, "%s: given more than once", name);
			return PARAM_BAD;
		}
		found = &p->items[i];
	}
	if (!found)
		return PARAM_MISSING;
	*value = found->value;
	return PARAM_OK;
}

bool params_parse_decimal(const char *text, size_t len, double *out)
{
	if (len == 0 || len > NUMBER_TEXT_MAX)
		return false;
	size_t i = 0;
	if (text[i] == '-')
		i++;
	size_t int_digits = 0, frac_digits = 0;
	while (i < len && text[i] >= '0' && text[i] <= '9') {
		i++;
		int_digits++;
	}
	if (i < len && text[i] == '.') {
		i++;
		while (i < len && text[i] >= '0' && text[i] <= '9') {
			i++;
			frac_digits++;
		}
		if (frac_digits == 0)
			return false;
	}
	if (i != len || int_digits == 0)
		return false;
	char buf[NUMBER_TEXT_MAX + 1];
	memcpy(buf, text, len);
	buf[len] = '\0';
	errno = 0;
	char *end = NULL;
	double v = strtod(buf, &end);
	if (end != buf + len || errno == ERANGE || !isfinite(v))
		return false;
	*out = v;
	return true;
}

enum param_get params_number(const struct params *p, const char *name, double min, double max,
			     bool min_exclusive, double *out, struct param_error *err)
{
	const char *value;
	enum param_get got = params_one(p, name, &value, err);
	if (got != PARAM_OK)
		return got;
	double v;
	if (!params_parse_decimal(value, strlen(value), &v)) {
		set_error(err, "%s: '%.*s' is not a number", name, echo_len(value), value);
		return PARAM_BAD;
	}
	if ((min_exclusive ? v <= min : v < min) || v > max) {
		set_error(err, "%s: %.*s is out of range; expected a number %s %g and at most %g",
			  name, echo_len(value), value,
			  min_exclusive ? "greater than" : "of at least", min, max);
		return PARAM_BAD;
	}
	*out = v;
	return PARAM_OK;
}

enum param_get params_integer(const struct params *p, const char *name, long min, long max,
			      long *out, struct param_error *err)
{
	const char *value;
	enum param_get got = params_one(p, name, &value, err);
	if (got != PARAM_OK)
		return got;
	size_t len = strlen(value);
	size_t i = value[0] == '-' ? 1 : 0;
	bool digits = len > i && len - i <= 10;
	for (size_t k = i; digits && k < len; k++)
		digits = value[k] >= '0' && value[k] <= '9';
	if (!digits) {
		set_error(err, "%s: '%.*s' is not an integer", name, echo_len(value), value);
		return PARAM_BAD;
	}
	long v = strtol(value, NULL, 10);
	if (v < min || v > max) {
		set_error(err, "%s: %s is out of range; expected an integer from %ld to %ld", name,
			  value, min, max);
		return PARAM_BAD;
	}
	*out = v;
	return PARAM_OK;
}

/* Code points in valid UTF-8 text. */
static size_t count_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

enum param_get params_text(const struct params *p, const char *name, size_t max_chars,
			   const char **out, struct param_error *err)
{
	const char *value;
	enum param_get got = params_one(p, name, &value, err);
	if (got != PARAM_OK)
		return got;
	size_t len = strlen(value);
	if (len == 0) {
		set_error(err, "%s: must not be empty", name);
		return PARAM_BAD;
	}
	if (count_chars(value, len) > max_chars) {
		set_error(err, "%s: longer than %zu characters", name, max_chars);
		return PARAM_BAD;
	}
	*out = value;
	return PARAM_OK;
}

enum param_get params_list(const struct params *p, const char *name, struct param_list *out,
			   struct param_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t total = 0;
	bool given = false;
	for (size_t i = 0; i < p->count; i++) {
		if (strcmp(p->items[i].name, name) == 0) {
			total += p->items[i].value_len + 1;
			given = true;
		}
	}
	if (!given)
		return PARAM_MISSING;
	out->storage = malloc(total + 1);
	if (!out->storage) {
		set_error(err, "%s: out of memory", name);
		return PARAM_BAD;
	}
	char *w = out->storage;
	for (size_t i = 0; i < p->count; i++) {
		const struct param *item = &p->items[i];
		if (strcmp(item->name, name) != 0 || item->value_len == 0)
			continue;
		const char *v = item->value;
		for (;;) {
			const char *comma = strchr(v, ',');
			size_t len = comma ? (size_t)(comma - v) : strlen(v);
			if (len == 0) {
				set_error(err, "%s: empty item in the list", name);
				goto bad;
			}
			if (count_chars(v, len) > PARAM_TEXT_MAX) {
				set_error(err, "%s: an item is longer than %d characters", name,
					  PARAM_TEXT_MAX);
				goto bad;
			}
			if (out->count >= PARAM_LIST_MAX) {
				set_error(err, "%s: more than %d values", name, PARAM_LIST_MAX);
				goto bad;
			}
			memcpy(w, v, len);
			w[len] = '\0';
			out->items[out->count++] = w;
			w += len + 1;
			if (!comma)
				break;
			v = comma + 1;
		}
	}
	return PARAM_OK;
bad:
	param_list_free(out);
	return PARAM_BAD;
}

void param_list_free(struct param_list *list)
{
	if (!list)
		return;
	free(list->storage);
	list->storage = NULL;
	list->count = 0;
}

bool params_decode_segment(const char *seg, size_t len, char *out, size_t outlen)
{
	if (len + 1 > outlen)
		return false;
	long n = decode(seg, len, out, false);
	return n > 0 && utf8_valid(out, (size_t)n) && !has_control(out, (size_t)n);
}
