#include "buf.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define BUF_MIN_CAP 64

void buf_init(struct buf *b)
{
	*b = (struct buf)BUF_INIT;
}

void buf_init_with(struct buf *b, char *storage, size_t size)
{
	*b = (struct buf)BUF_INIT;
	if (storage && size > 0) {
		b->data = storage;
		b->cap = size;
		b->is_borrowed = true;
		storage[0] = '\0';
	}
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	if (!b->is_borrowed)
		free(b->data);
	*b = (struct buf)BUF_INIT;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data)
		b->data[0] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

bool buf_reserve(struct buf *b, size_t extra)
{
	if (b->failed)
		return false;
	/* need = len + extra + NUL, checked for overflow */
	if (extra > SIZE_MAX - 1 - b->len)
		goto fail;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	char *data;
	if (b->is_borrowed) {
		data = malloc(cap);
		if (data && b->len)
			memcpy(data, b->data, b->len);
	} else {
		data = realloc(b->data, cap);
	}
	if (!data)
		goto fail;
	if (!b->data || b->is_borrowed)
		data[b->len] = '\0';
	b->data = data;
	b->cap = cap;
	b->is_borrowed = false;
	return true;
fail:
	b->failed = true;
	return false;
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	if (b->failed)
		return;
	va_list copy;
	va_copy(copy, ap);
	size_t room = b->cap - b->len;
	int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, copy);
	va_end(copy);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n >= room) {
		if (!buf_reserve(b, (size_t)n))
			return;
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_put_uint(struct buf *b, uint64_t v)
{
	char digits[20];
	buf_append(b, digits, dec_uint(digits, v));
}

void buf_put_int(struct buf *b, int64_t v)
{
	if (v < 0) {
		buf_putc(b, '-');
		/* -(v + 1) + 1 avoids overflowing INT64_MIN */
		buf_put_uint(b, (uint64_t)(-(v + 1)) + 1);
	} else {
		buf_put_uint(b, (uint64_t)v);
	}
}

/* printf and strtod follow LC_NUMERIC, which a program (or a library it
 * loads) may set to a locale whose decimal point is ','. Number formatting
 * switches this thread to a private "C" locale object for the call. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static int format_c(char *out, size_t outlen, int precision, char conv, double v)
{
	pthread_once(&c_locale_once, c_locale_init);
	locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
	int n = conv == 'f' ? snprintf(out, outlen, "%.*f", precision, v)
			    : snprintf(out, outlen, "%.*g", precision, v);
	if (c_locale)
		uselocale(old);
	return n;
}

static double parse_c(const char *text)
{
	pthread_once(&c_locale_once, c_locale_init);
	if (c_locale)
		return strtod_l(text, NULL, c_locale);
	return strtod(text, NULL);
}

static const double pow10_table[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
};

/* Fixed notation without printf for the common case (coordinates with 6
 * decimals, kW with 2). The scaled value must stay below 2^33 so the
 * multiplication's rounding error (< 2^-20) cannot move it across a
 * rounding boundary; values within 1e-6 of a tie go to printf, which rounds
 * the exact binary value. Either way the text equals printf's. */
static bool put_fixed_fast(struct buf *b, double v, int decimals)
{
	double scaled = fabs(v) * pow10_table[decimals];
	if (!(scaled < 8589934592.0)) /* 2^33; also false for NaN */
		return false;
	double whole = floor(scaled);
	double frac = scaled - whole;
	if (fabs(frac - 0.5) < 1e-6)
		return false;
	uint64_t r = (uint64_t)whole + (frac > 0.5 ? 1 : 0);
	uint64_t unit = (uint64_t)pow10_table[decimals];
	char tmp[48];
	char *p = tmp + sizeof(tmp);
	uint64_t fraction = r % unit, integer = r / unit;
	for (int i = 0; i < decimals; i++) {
		*--p = (char)('0' + fraction % 10);
		fraction /= 10;
	}
	if (decimals > 0)
		*--p = '.';
	do {
		*--p = (char)('0' + integer % 10);
		integer /= 10;
	} while (integer);
	if (signbit(v))
		*--p = '-';
	buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
	return true;
}

void buf_put_double(struct buf *b, double v, int decimals)
{
	if (isnan(v)) {
		buf_append(b, "NaN", 3);
		return;
	}
	if (isinf(v)) {
		if (v > 0)
			buf_append(b, "+Inf", 4);
		else
			buf_append(b, "-Inf", 4);
		return;
	}
	char tmp[400]; /* %.17f of 1e308 needs 309 + 18 digits */
	if (decimals >= 0) {
		if (decimals > 17)
			decimals = 17;
		if (put_fixed_fast(b, v, decimals))
			return;
		int n = format_c(tmp, sizeof(tmp), decimals, 'f', v);
		if (n > 0 && (size_t)n < sizeof(tmp))
			buf_append(b, tmp, (size_t)n);
		else
			b->failed = true;
		return;
	}
	/* Integral values in the exact range print as integers: "50", not "5e+01". */
	if (v == floor(v) && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
		buf_put_int(b, (int64_t)v);
		return;
	}
	/* %.15g is exact for any normal double whose shortest form has <= 15
	 * digits (trailing zeros are dropped); 16 and 17 cover the rest (17
	 * always reads back). Subnormals carry fewer significant digits, so
	 * for them the search starts at 1. */
	int n = 0;
	for (int precision = fabs(v) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
		n = format_c(tmp, sizeof(tmp), precision, 'g', v);
		if (n <= 0 || (size_t)n >= sizeof(tmp)) {
			b->failed = true;
			return;
		}
		if (precision == 17 || parse_c(tmp) == v)
			break;
	}
	buf_append(b, tmp, (size_t)n);
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *out;
	if (b->failed) {
		buf_free(b);
		return NULL;
	}
	if (!b->data || b->is_borrowed) {
		out = malloc(b->len + 1);
		if (out) {
			if (b->len)
				memcpy(out, b->data, b->len);
			out[b->len] = '\0';
		}
	} else {
		out = b->data;
		b->data = NULL;
	}
	if (out && len)
		*len = b->len;
	buf_free(b);
	return out;
}
