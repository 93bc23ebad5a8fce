#include "reqscan.h"

#include "base.h"

#include <string.h>
#include <strings.h>

/* Where the scanner is within one request. */
enum {
	S_IDLE,		 /* nothing of the request yet; blank lines are skipped */
	S_METHOD,	 /* request line: method token */
	S_TARGET,	 /* request line: request target */
	S_VERSION,	 /* request line: "HTTP/1.x" */
	S_RL_LF,	 /* CR ended the request line: LF must follow */
	S_LINE_START,	 /* start of a header (or trailer) line, or the empty line */
	S_NAME,		 /* field name */
	S_VALUE,	 /* field value */
	S_VALUE_LF,	 /* CR ended a field line: LF must follow */
	S_END_LF,	 /* CR of the empty line: LF must follow */
	S_BODY,		 /* Content-Length body bytes */
	S_CHUNK_SIZE,	 /* hex digits of a chunk size */
	S_CHUNK_SIZE_LF, /* CR after the size: LF must follow */
	S_CHUNK_DATA,	 /* chunk data bytes */
	S_CHUNK_END,	 /* CR after chunk data */
	S_CHUNK_END_LF,	 /* LF after that CR */
};

/* Longest method accepted: longer ones are not methods anyone implements. */
#define METHOD_MAX 20
_Static_assert(METHOD_MAX <= sizeof(((struct reqscan *)0)->line), "the method fits in line");
/* Content-Length digits: 18 fit in 63 bits with room to spare. */
#define LENGTH_DIGITS_MAX 18
/* Chunk-size hex digits: 15 keep the size below 2^60. */
#define CHUNK_DIGITS_MAX 15

void reqscan_init(struct reqscan *s, const struct reqscan_limits *limits)
{
	memset(s, 0, sizeof(*s));
	s->limits = limits;
}

static void reset_request(struct reqscan *s)
{
	const struct reqscan_limits *limits = s->limits;
	uint64_t requests = s->requests;
	size_t skip = s->blank;
	memset(s, 0, sizeof(*s));
	s->limits = limits;
	s->requests = requests + 1;
	s->last_skip = skip;
}

bool reqscan_in_request(const struct reqscan *s)
{
	return s->state != S_IDLE || s->blank > 0;
}

static enum reqscan_status refuse(struct reqscan *s, int status, const char *reason)
{
	s->refusal_status = status;
	s->refusal_reason = reason;
	return REQSCAN_REFUSE;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: visible ASCII, space, tab and obs-text (>= 0x80). */
static bool is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The value part of the captured line, trimmed of optional whitespace. */
static void field_value(const struct reqscan *s, size_t name_len, const char **value, size_t *len)
{
	size_t kept = s->line_len < sizeof(s->line) ? s->line_len : sizeof(s->line);
	const char *v = s->line + name_len + 1;
	const char *end = s->line + kept;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*value = v;
	*len = (size_t)(end - v);
}

/* A complete header line is in s->line (its first bytes): apply the rules
 * about the fields that decide framing. */
static enum reqscan_status end_field_line(struct reqscan *s)
{
	if (++s->header_lines > s->limits->max_header_lines)
		return refuse(s, 431, "too many header lines");
	if (s->in_trailer)
		return REQSCAN_MORE; /* trailer fields frame nothing */
	size_t kept = s->line_len < sizeof(s->line) ? s->line_len : sizeof(s->line);
	const char *colon = memchr(s->line, ':', kept);
	if (!colon)
		return REQSCAN_MORE; /* a name longer than the capture: not one we read */
	size_t name_len = (size_t)(colon - s->line);
	bool truncated = s->line_len > sizeof(s->line);
	const char *value;
	size_t len;
	if (name_len == 14 && strncasecmp(s->line, "content-length", 14) == 0) {
		if (s->has_length)
			return refuse(s, 400, "duplicate Content-Length");
		s->has_length = true;
		field_value(s, name_len, &value, &len);
		if (truncated || len == 0 || len > LENGTH_DIGITS_MAX)
			return refuse(s, 400, "invalid Content-Length");
		uint64_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (value[i] < '0' || value[i] > '9')
				return refuse(s, 400, "invalid Content-Length");
			n = n * 10 + (uint64_t)(value[i] - '0');
		}
		s->content_length = n;
	} else if (name_len == 17 && strncasecmp(s->line, "transfer-encoding", 17) == 0) {
		if (s->is_chunked)
			return refuse(s, 400, "duplicate Transfer-Encoding");
		field_value(s, name_len, &value, &len);
		if (truncated || len != 7 || strncasecmp(value, "chunked", 7) != 0)
			return refuse(s, 501, "unsupported Transfer-Encoding");
		s->is_chunked = true;
	} else if (name_len == 4 && strncasecmp(s->line, "host", 4) == 0) {
		if (s->has_host)
			return refuse(s, 400, "duplicate Host");
		s->has_host = true;
	}
	return REQSCAN_MORE;
}

/* The empty line ended the head (or the trailer). */
static enum reqscan_status end_head(struct reqscan *s)
{
	if (s->in_trailer)
		return REQSCAN_DONE;
	if (s->is_chunked && s->is_http10)
		return refuse(s, 400, "Transfer-Encoding on HTTP/1.0");
	if (s->is_chunked && s->has_length)
		return refuse(s, 400, "both Content-Length and Transfer-Encoding");
	if (s->bodyless && (s->is_chunked || s->content_length > 0))
		return refuse(s, 400, "body on GET or HEAD");
	if (s->is_chunked) {
		s->state = S_CHUNK_SIZE;
		return REQSCAN_MORE;
	}
	if (s->content_length > s->limits->max_body_bytes)
		return refuse(s, 413, "request body too large");
	if (s->content_length > 0) {
		s->remaining = s->content_length;
		s->state = S_BODY;
		return REQSCAN_MORE;
	}
	return REQSCAN_DONE;
}

static enum reqscan_status end_request_line(struct reqscan *s)
{
	if (s->version_len == 8 && memcmp(s->version, "HTTP/1.1", 8) == 0)
		s->is_http10 = false;
	else if (s->version_len == 8 && memcmp(s->version, "HTTP/1.0", 8) == 0)
		s->is_http10 = true;
	else if (s->version_len == 8 && memcmp(s->version, "HTTP/", 5) == 0 &&
		 s->version[5] >= '0' && s->version[5] <= '9' && s->version[6] == '.' &&
		 s->version[7] >= '0' && s->version[7] <= '9')
		return refuse(s, 505, "HTTP version not supported");
	else
		return refuse(s, 400, "malformed request line");
	s->state = S_LINE_START;
	return REQSCAN_MORE;
}

/* One byte of the head (request line, header lines, trailer). */
static enum reqscan_status head_byte(struct reqscan *s, unsigned char c)
{
	if (++s->head_bytes > s->limits->max_head_bytes) {
		if (s->state == S_METHOD || s->state == S_TARGET || s->state == S_VERSION)
			return refuse(s, 414, "request line too long");
		return refuse(s, 431, "request header fields too large");
	}
	switch (s->state) {
	case S_METHOD:
		if (c == ' ' && s->method_len > 0) {
			s->bodyless = (s->method_len == 3 && memcmp(s->line, "GET", 3) == 0) ||
				      (s->method_len == 4 && memcmp(s->line, "HEAD", 4) == 0);
			s->state = S_TARGET;
			return REQSCAN_MORE;
		}
		if (!is_tchar(c) || ++s->method_len > METHOD_MAX)
			return refuse(s, 400, "malformed request line");
		s->line[s->method_len - 1] = (char)c; /* METHOD_MAX fits in line */
		return REQSCAN_MORE;
	case S_TARGET:
		if (c == ' ' && s->line_len > 0) {
			s->state = S_VERSION;
			return REQSCAN_MORE;
		}
		if (c <= 0x20 || c == 0x7f)
			return refuse(s, 400, "malformed request line");
		s->line_len = 1; /* the target is not empty */
		return REQSCAN_MORE;
	case S_VERSION:
		if (c == '\r') {
			s->state = S_RL_LF;
			return REQSCAN_MORE;
		}
		if (c == '\n')
			return refuse(s, 400, "bare LF in request line");
		if (s->version_len >= 8)
			return refuse(s, 400, "malformed request line");
		s->version[s->version_len++] = (char)c;
		return REQSCAN_MORE;
	case S_RL_LF:
		if (c != '\n')
			return refuse(s, 400, "malformed request line");
		return end_request_line(s);
	case S_LINE_START:
		if (c == '\r') {
			s->state = S_END_LF;
			return REQSCAN_MORE;
		}
		if (c == '\n')
			return refuse(s, 400, "bare LF in header");
		if (c == ' ' || c == '\t')
			return refuse(s, 400, "obsolete line folding");
		if (!is_tchar(c))
			return refuse(s, 400, "malformed header line");
		s->line_len = 0;
		s->state = S_NAME;
		/* fall through: the byte is part of the name */
		/* FALLTHROUGH */
	case S_NAME:
		if (c == ':' && s->line_len > 0) {
			s->state = S_VALUE;
		} else if (!is_tchar(c)) {
			return refuse(s, 400,
				      c == ' ' || c == '\t' ? "whitespace before colon"
							    : "malformed header line");
		}
		break;
	case S_VALUE:
		if (c == '\r') {
			s->state = S_VALUE_LF;
			return REQSCAN_MORE;
		}
		if (c == '\n')
			return refuse(s, 400, "bare LF in header");
		if (!is_value_byte(c))
			return refuse(s, 400, "control character in header");
		break;
	case S_VALUE_LF:
		if (c != '\n')
			return refuse(s, 400, "bare CR in header");
		s->state = S_LINE_START;
		return end_field_line(s);
	case S_END_LF:
		if (c != '\n')
			return refuse(s, 400, "bare CR in header");
		return end_head(s);
	default: return refuse(s, 400, "internal scanner state");
	}
	if (s->line_len < sizeof(s->line))
		s->line[s->line_len] = (char)c;
	s->line_len++;
	return REQSCAN_MORE;
}

static enum reqscan_status chunk_byte(struct reqscan *s, unsigned char c)
{
	switch (s->state) {
	case S_CHUNK_SIZE: {
		if (c == '\r') {
			s->state = S_CHUNK_SIZE_LF;
			return REQSCAN_MORE;
		}
		int v = hex_value(c);
		if (v < 0)
			return refuse(s, 400, "malformed chunk size");
		if (++s->chunk_digits > CHUNK_DIGITS_MAX)
			return refuse(s, 413, "request body too large");
		s->chunk_size = s->chunk_size * 16 + (uint64_t)v;
		return REQSCAN_MORE;
	}
	case S_CHUNK_SIZE_LF:
		if (c != '\n')
			return refuse(s, 400, "malformed chunk size");
		break;
	case S_CHUNK_END:
		if (c == '\r') {
			s->state = S_CHUNK_END_LF;
			return REQSCAN_MORE;
		}
		return refuse(s, 400, "malformed chunk");
	case S_CHUNK_END_LF:
		if (c != '\n')
			return refuse(s, 400, "malformed chunk");
		s->state = S_CHUNK_SIZE;
		return REQSCAN_MORE;
	default: return refuse(s, 400, "internal scanner state");
	}
	/* a chunk-size line just ended */
	if (s->chunk_digits == 0)
		return refuse(s, 400, "malformed chunk size");
	s->state = S_CHUNK_DATA;
	if (s->chunk_size == 0) {
		s->in_trailer = true;
		s->state = S_LINE_START;
		return REQSCAN_MORE;
	}
	s->body_seen += s->chunk_size;
	if (s->body_seen > s->limits->max_body_bytes)
		return refuse(s, 413, "request body too large");
	s->remaining = s->chunk_size;
	s->chunk_size = 0;
	s->chunk_digits = 0;
	return REQSCAN_MORE;
}

enum reqscan_status reqscan_feed(struct reqscan *s, const char *data, size_t len, size_t *used)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)data[i];
		enum reqscan_status st = REQSCAN_MORE;
		switch (s->state) {
		case S_IDLE:
			if (c == '\r' || c == '\n') {
				if (++s->blank > REQSCAN_MAX_BLANK) {
					*used = i + 1;
					return refuse(s, 400, "malformed request line");
				}
				i++;
				continue;
			}
			s->state = S_METHOD;
			st = head_byte(s, c);
			i++;
			break;
		case S_BODY:
		case S_CHUNK_DATA: {
			uint64_t take = len - i;
			if (take > s->remaining)
				take = s->remaining;
			s->remaining -= take;
			i += (size_t)take;
			if (s->remaining == 0) {
				if (s->state == S_BODY)
					st = REQSCAN_DONE;
				else
					s->state = S_CHUNK_END;
			}
			break;
		}
		case S_CHUNK_SIZE:
		case S_CHUNK_SIZE_LF:
		case S_CHUNK_END:
		case S_CHUNK_END_LF:
			st = chunk_byte(s, c);
			i++;
			break;
		default:
			st = head_byte(s, c);
			i++;
			break;
		}
		if (st == REQSCAN_REFUSE) {
			*used = i;
			return st;
		}
		if (st == REQSCAN_DONE) {
			*used = i;
			reset_request(s);
			return st;
		}
	}
	*used = len;
	return REQSCAN_MORE;
}
