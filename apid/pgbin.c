#include "pgbin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "PGCOPY\n\377\r\n\0", then flags (int32) and the extension's length (int32). */
static const char signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
#define HEADER_LEN 19

struct parser {
	int nfields;
	pgbin_row_fn fn;
	void *arg;
	bool header_done, trailer_seen, failed;
	char *carry; /* bytes of a tuple not yet complete */
	size_t carry_len, carry_cap;
	char *scratch; /* the current tuple's fields, each NUL-terminated */
	size_t scratch_cap;
	struct pgbin_field fields[PGBIN_MAX_FIELDS];
	size_t rows;
	char *err;
	size_t errlen;
};

static void parse_fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void parse_fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	p->failed = true;
}

static uint32_t be32(const char *b)
{
	const unsigned char *u = (const unsigned char *)b;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static uint16_t be16(const char *b)
{
	const unsigned char *u = (const unsigned char *)b;
	return (uint16_t)(u[0] << 8 | u[1]);
}

static bool reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	char *more = realloc(*buf, n);
	if (!more)
		return false;
	*buf = more;
	*cap = n;
	return true;
}

/* One complete tuple at b[0 .. len), its fields counted and bounded by the
 * caller: copy them out NUL-terminated and call back. */
static void deliver(struct parser *p, const char *b, size_t len)
{
	if (!reserve(&p->scratch, &p->scratch_cap, len + (size_t)p->nfields)) {
		parse_fail(p, "out of memory reading COPY data");
		return;
	}
	size_t at = 2, w = 0;
	for (int i = 0; i < p->nfields; i++) {
		int32_t flen = (int32_t)be32(b + at);
		at += 4;
		if (flen < 0) {
			p->fields[i] = (struct pgbin_field){NULL, -1};
			continue;
		}
		memcpy(p->scratch + w, b + at, (size_t)flen);
		p->scratch[w + (size_t)flen] = '\0';
		p->fields[i] = (struct pgbin_field){p->scratch + w, flen};
		w += (size_t)flen + 1;
		at += (size_t)flen;
	}
	p->rows++;
	if (!p->fn(p->arg, p->fields, p->err, p->errlen))
		p->failed = true;
}

/* Parse what b[0 .. len) holds; returns the bytes consumed (complete
 * header, tuples and trailer), the rest being an incomplete tuple. */
static size_t parse(struct parser *p, const char *b, size_t len)
{
	size_t off = 0;
	while (!p->failed && off < len) {
		if (p->trailer_seen) {
			parse_fail(p, "COPY data after the trailer");
			break;
		}
		if (!p->header_done) {
			if (len - off < HEADER_LEN)
				break;
			if (memcmp(b + off, signature, sizeof(signature)) != 0) {
				parse_fail(p, "not a binary COPY stream");
				break;
			}
			size_t ext = be32(b + off + 15);
			if (len - off - HEADER_LEN < ext)
				break;
			off += HEADER_LEN + ext;
			p->header_done = true;
			continue;
		}
		if (len - off < 2)
			break;
		int16_t count = (int16_t)be16(b + off);
		if (count == -1) {
			p->trailer_seen = true;
			off += 2;
			continue;
		}
		if (count != p->nfields) {
			parse_fail(p, "COPY row with %d fields, expected %d", count, p->nfields);
			break;
		}
		size_t at = off + 2;
		bool complete = true;
		for (int i = 0; i < count && complete; i++) {
			if (len - at < 4) {
				complete = false;
				break;
			}
			int32_t flen = (int32_t)be32(b + at);
			at += 4;
			if (flen < -1) {
				parse_fail(p, "COPY field of length %d", flen);
				return off;
			}
			if (flen > 0 && len - at < (size_t)flen)
				complete = false;
			else if (flen > 0)
				at += (size_t)flen;
		}
		if (!complete)
			break;
		deliver(p, b + off, at - off);
		off = at;
	}
	return off;
}

/* Feed one chunk of the stream. */
static void feed(struct parser *p, const char *data, size_t len)
{
	bool carried = p->carry_len > 0;
	if (!carried) {
		size_t used = parse(p, data, len);
		data += used;
		len -= used;
		if (p->failed || len == 0)
			return;
	}
	/* an incomplete tuple: keep it, with what came before */
	if (!reserve(&p->carry, &p->carry_cap, p->carry_len + len)) {
		parse_fail(p, "out of memory reading COPY data");
		return;
	}
	memcpy(p->carry + p->carry_len, data, len);
	p->carry_len += len;
	if (!carried)
		return;
	size_t used = parse(p, p->carry, p->carry_len);
	memmove(p->carry, p->carry + used, p->carry_len - used);
	p->carry_len -= used;
}

static bool parser_init(struct parser *p, int nfields, pgbin_row_fn fn, void *arg, char *err,
			size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->nfields = nfields;
	p->fn = fn;
	p->arg = arg;
	p->err = err;
	p->errlen = errlen;
	if (nfields < 1 || nfields > PGBIN_MAX_FIELDS) {
		parse_fail(p, "COPY of %d fields: at most %d", nfields, PGBIN_MAX_FIELDS);
		return false;
	}
	return true;
}

/* The stream ended: it must have ended with the trailer. */
static bool parser_finish(struct parser *p, size_t *rows)
{
	if (!p->failed && (!p->trailer_seen || p->carry_len > 0))
		parse_fail(p, "COPY data ended inside %s", p->header_done ? "a row" : "the header");
	free(p->carry);
	free(p->scratch);
	if (rows)
		*rows = p->rows;
	return !p->failed;
}

bool pgbin_parse_chunks(const char *const *chunks, const size_t *lens, size_t nchunks,
			int nfields, pgbin_row_fn fn, void *arg, size_t *rows, char *err,
			size_t errlen)
{
	struct parser p;
	if (parser_init(&p, nfields, fn, arg, err, errlen))
		for (size_t i = 0; i < nchunks && !p.failed; i++)
			feed(&p, chunks[i], lens[i]);
	return parser_finish(&p, rows);
}

/* libpq's message, on one line. */
static void conn_error(char *err, size_t errlen, const char *what, const char *msg)
{
	snprintf(err, errlen, "%s: %s", what, msg && *msg ? msg : "connection lost");
	for (char *c = err; *c; c++)
		if (*c == '\n')
			*c = c[1] ? ' ' : '\0';
}

bool pgbin_copy(PGconn *conn, const char *copy_sql, int nfields, pgbin_row_fn fn, void *arg,
		size_t *rows, char *err, size_t errlen)
{
	struct parser p;
	if (!parser_init(&p, nfields, fn, arg, err, errlen))
		return parser_finish(&p, rows);
	PGresult *res = PQexec(conn, copy_sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		conn_error(err, errlen, "COPY",
			   res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		p.failed = true;
		return parser_finish(&p, rows);
	}
	PQclear(res);
	bool stream_ok = true;
	for (;;) {
		char *chunk = NULL;
		int n = PQgetCopyData(conn, &chunk, 0);
		if (n > 0) {
			/* after a failed row the rest is read and dropped, so
			 * the connection stays usable */
			if (!p.failed)
				feed(&p, chunk, (size_t)n);
			PQfreemem(chunk);
			continue;
		}
		if (n == -2) {
			stream_ok = false;
			if (!p.failed)
				conn_error(err, errlen, "COPY", PQerrorMessage(conn));
		}
		break;
	}
	/* the COPY's own outcome (an error the server hit mid-stream) */
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !p.failed && stream_ok) {
			conn_error(err, errlen, "COPY", PQresultErrorMessage(res));
			stream_ok = false;
		}
		PQclear(res);
	}
	if (!stream_ok)
		p.failed = true;
	return parser_finish(&p, rows);
}

bool pgbin_int(const struct pgbin_field *f, int64_t *out)
{
	switch (f->len) {
	case 2:
		*out = (int16_t)be16(f->data);
		return true;
	case 4:
		*out = (int32_t)be32(f->data);
		return true;
	case 8:
		*out = (int64_t)((uint64_t)be32(f->data) << 32 | be32(f->data + 4));
		return true;
	default:
		return false;
	}
}

bool pgbin_float8(const struct pgbin_field *f, double *out)
{
	if (f->len != 8)
		return false;
	uint64_t bits = (uint64_t)be32(f->data) << 32 | be32(f->data + 4);
	memcpy(out, &bits, sizeof(*out));
	return true;
}

int pgbin_bool(const struct pgbin_field *f)
{
	if (f->len < 0)
		return -1;
	if (f->len != 1)
		return -2;
	return f->data[0] != 0;
}
