/* reqscan: the byte-level screen every request passes before evhttp sees it.
 * Owns the framing rules apid enforces on its own, because evhttp 2.1 does
 * not (or answers them with HTML and the wrong status): the size of a
 * request head (431; 414 when the request line alone is too long), the
 * number of header lines, the body size (413, decided from Content-Length
 * before any body byte is read, or while counting chunks), one
 * Content-Length at most and only digits in it, Transfer-Encoding exactly
 * "chunked" (501 otherwise; 400 when repeated, on HTTP/1.0 or beside a
 * Content-Length), no body on GET or HEAD (none of apid's routes reads one,
 * and a proxy may not forward it: a smuggled second request), one Host, no
 * obs-fold, no whitespace before a colon, no control bytes, every line
 * ended by CRLF (a bare LF is a line end to evhttp and to some proxies but
 * not to others), HTTP/1.0 or 1.1 only (505), chunk sizes as bare hex
 * (evhttp refuses chunk extensions, so they are refused here first).
 * Anything this screen accepts, evhttp frames the same way: no request
 * smuggling between the two parsers.
 *
 * Pure and incremental: bytes arrive in any split; the state carries over.
 * Nothing is allocated. Leading empty lines before a request line (which
 * RFC 9112 says to ignore, and evhttp refuses) are reported as bytes to
 * skip. */
#ifndef APID_REQSCAN_H
#define APID_REQSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct reqscan_limits {
	size_t max_head_bytes; /* request line + header lines (+ chunked trailer) */
	size_t max_body_bytes;
	unsigned max_header_lines;
};

enum reqscan_status {
	REQSCAN_MORE,	/* every byte consumed; the request is not complete */
	REQSCAN_DONE,	/* a complete request ends after *used bytes */
	REQSCAN_REFUSE, /* the request breaks a rule: reqscan_refusal says which */
};

/* Leading blank bytes (CR/LF) tolerated before a request line. */
#define REQSCAN_MAX_BLANK 64

struct reqscan {
	const struct reqscan_limits *limits; /* borrowed */
	uint8_t state;			     /* enum in reqscan.c */
	uint8_t version_len;
	char version[9]; /* "HTTP/1.1" */
	bool is_http10;
	bool has_length, is_chunked, has_host;
	bool bodyless; /* GET or HEAD: a body is refused */
	bool in_trailer;
	unsigned method_len;
	unsigned header_lines;
	size_t blank;	   /* leading blank bytes of this request (to skip) */
	size_t head_bytes; /* bytes of the head so far */
	size_t line_len;   /* bytes of the current header line so far */
	char line[64];	   /* its first bytes: name, colon and start of value */
	uint64_t content_length;
	uint64_t body_seen; /* chunked: data bytes so far */
	uint64_t remaining; /* body or chunk bytes still to skip */
	uint64_t chunk_size;
	unsigned chunk_digits;
	int refusal_status;
	const char *refusal_reason; /* static text */
	uint64_t requests;	    /* complete requests seen */
	size_t last_skip;	    /* blank bytes before the last complete request */
};

void reqscan_init(struct reqscan *s, const struct reqscan_limits *limits);

/* Feed len bytes. MORE: all consumed, *used = len. DONE: the request's
 * last byte is data[*used - 1]; the scanner is ready for the next request
 * (feed the rest). REFUSE: stop feeding; the connection gets the refusal
 * and is closed. */
enum reqscan_status reqscan_feed(struct reqscan *s, const char *data, size_t len,
				 size_t *used) MUSTCHECK;

/* Blank bytes at the start of the request just completed (DONE), to drop
 * before handing it on. */
static inline size_t reqscan_skip(const struct reqscan *s)
{
	return s->last_skip;
}

/* True while part of a request (other than nothing) has been received. */
bool reqscan_in_request(const struct reqscan *s);

/* The refusal: an HTTP status (400, 413, 414, 431, 501, 505) and a short
 * reason ("duplicate Content-Length"). */
static inline int reqscan_refusal(const struct reqscan *s, const char **reason)
{
	if (reason)
		*reason = s->refusal_reason;
	return s->refusal_status;
}

#endif
