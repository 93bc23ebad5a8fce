/* buf: the growable byte buffer json, metrics and log write into.
 * Owns its heap memory (or borrows caller storage until it outgrows it, see
 * buf_init_with), keeps the content NUL-terminated after every append, and
 * formats numbers without locale: the one place that turns an int or a
 * double into text, so JSON and the metrics exposition agree.
 *
 * Appends do not return a status: an allocation failure sets a sticky flag,
 * later appends become no-ops, and the owner checks buf_ok() once at the end
 * (json_gen_finish and metrics_write do). Hot paths (a 30 KB answer is
 * thousands of appends) stay free of a check per call; the fast path of
 * buf_append/buf_putc is inline. */
#ifndef EV_BUF_H
#define EV_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base.h"

struct buf {
	char *data;       /* len bytes + NUL; heap unless is_borrowed */
	size_t len;
	size_t cap;       /* bytes usable at data, including room for the NUL */
	bool is_borrowed; /* data is caller storage from buf_init_with: never freed */
	bool failed;      /* an allocation failed: content is incomplete */
};

#define BUF_INIT {0}

/* Empty buffer; no memory until the first append. */
void buf_init(struct buf *b);
/* Start in caller storage (a stack array): no malloc until `size` bytes are
 * outgrown, then the content moves to the heap. storage must outlive b's use. */
void buf_init_with(struct buf *b, char *storage, size_t size);
/* Release heap memory and return to the empty state; NULL-safe. */
void buf_free(struct buf *b);
/* Empty the content, keep the memory, clear the failure flag. */
void buf_reset(struct buf *b);
/* Shorten to len (no-op if already shorter). */
void buf_truncate(struct buf *b, size_t len);

/* Make room for `extra` more bytes (plus the NUL). Slow path of the appends;
 * false (and the sticky flag) when memory runs out or the size overflows. */
bool buf_reserve(struct buf *b, size_t extra) MUSTCHECK;

static inline bool buf_ok(const struct buf *b)
{
	return !b->failed;
}

/* Content as a C string: "" for an empty, never-grown buffer. */
static inline const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

static inline void buf_append(struct buf *b, const void *data, size_t len)
{
	if ((b->cap - b->len <= len || b->failed) && !buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static inline void buf_putc(struct buf *b, char c)
{
	if ((b->cap - b->len <= 1 || b->failed) && !buf_reserve(b, 1))
		return;
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

static inline void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Locale-free numbers. */
void buf_put_int(struct buf *b, int64_t v);
void buf_put_uint(struct buf *b, uint64_t v);
/* decimals >= 0: fixed notation with exactly that many digits after the
 * point (max 17), as printf("%.*f") in the C locale would write it.
 * decimals < 0: the shortest text that reads back as the same double
 * ("0.1", "37.5665", "1e+300"). Non-finite values print as "NaN", "+Inf",
 * "-Inf" (Prometheus spelling; JSON writes null instead). */
void buf_put_double(struct buf *b, double v, int decimals);
#define BUF_SHORTEST (-1)

/* Hand the heap content to the caller (free() it); the buffer becomes empty.
 * Copies out of borrowed storage. NULL on failure or a failed buffer. */
char *buf_detach(struct buf *b, size_t *len) MUSTCHECK;

#endif
