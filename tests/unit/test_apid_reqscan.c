/* apid reqscan: the request screen in front of evhttp. Every case is fed
 * whole, then byte by byte and in every two-way split, and must give the
 * same answer: framing never depends on how TCP cut the bytes. */
#include "testmain.h"

#include <stdio.h>
#include <string.h>

/* The module is apid's; unit tests link only libcommon, so compile it in. */
#include "../../apid/reqscan.c"

static const struct reqscan_limits limits = {
	.max_head_bytes = 256,
	.max_body_bytes = 32,
	.max_header_lines = 8,
};

struct outcome {
	enum reqscan_status status;
	size_t used; /* DONE: request end; REFUSE: offset after the offending byte */
	int refusal;
	size_t skip;
};

/* Feed `text` in pieces of at most `piece` bytes, or split once at `split`
 * (when nonzero). Stops at the first DONE or REFUSE. */
static struct outcome feed(const char *text, size_t len, size_t piece, size_t split)
{
	struct reqscan s;
	reqscan_init(&s, &limits);
	struct outcome out = {REQSCAN_MORE, 0, 0, 0};
	size_t pos = 0;
	while (pos < len) {
		size_t n = len - pos;
		if (piece && n > piece)
			n = piece;
		if (split && pos < split && pos + n > split)
			n = split - pos;
		size_t used = 0;
		enum reqscan_status st = reqscan_feed(&s, text + pos, n, &used);
		if (st != REQSCAN_MORE) {
			out.status = st;
			out.used = pos + used;
			out.refusal = reqscan_refusal(&s, NULL);
			out.skip = reqscan_skip(&s);
			return out;
		}
		ck_assert_uint_eq(used, n);
		pos += n;
	}
	return out;
}

static const struct {
	const char *text;
	enum reqscan_status status;
	int refusal;	/* for REFUSE */
	size_t done_at; /* for DONE: 0 = the whole text */
	const char *why;
} cases[] = {
	{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", REQSCAN_DONE, 0, 0, "plain GET"},
	{"GET / HTTP/1.0\n\n", REQSCAN_REFUSE, 400, 0, "bare LF ending the request line"},
	{"GET / HTTP/1.1\r\nHost: a\n\r\n", REQSCAN_REFUSE, 400, 0, "bare LF ending a field"},
	{"GET / HTTP/1.1\r\nHost: a\r\n\n", REQSCAN_REFUSE, 400, 0, "bare LF ending the head"},
	{"\n\r\nGET / HTTP/1.1\r\n\r\n", REQSCAN_DONE, 0, 0, "blank bytes before a request"},
	{"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", REQSCAN_REFUSE, 400, 0,
	 "body on GET"},
	{"HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", REQSCAN_REFUSE, 400,
	 0, "chunked body on HEAD"},
	{"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", REQSCAN_DONE, 0, 0,
	 "GET with an empty body"},
	{"GETX / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", REQSCAN_DONE, 0, 0,
	 "a body on another method reaches the router (405)"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
	 REQSCAN_REFUSE, 400, 0, "bare LF after a chunk size"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
	 REQSCAN_REFUSE, 400, 0, "bare LF after chunk data"},
	{"GET /stations?latitude=37.5 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nGET", REQSCAN_DONE,
	 0, 62, "pipelined: ends before the next request"},
	{"\r\n\r\nGET / HTTP/1.1\r\n\r\n", REQSCAN_DONE, 0, 0, "leading blank lines skipped"},
	{"GET / HTTP/1.1\r\nHost: a\r\n", REQSCAN_MORE, 0, 0, "incomplete head"},
	{"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", REQSCAN_DONE, 0, 0,
	 "Content-Length body"},
	{"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", REQSCAN_MORE, 0, 0, "body pending"},
	{"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", REQSCAN_DONE, 0, 0, "empty body"},
	{"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	 REQSCAN_DONE, 0, 0, "chunked body"},
	{"POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
	 REQSCAN_DONE, 0, 0, "chunked with a trailer, value case and spaces"},
	{"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", REQSCAN_REFUSE, 400,
	 0, "duplicate Content-Length, even equal"},
	{"GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", REQSCAN_REFUSE, 400, 0,
	 "signed Content-Length"},
	{"GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", REQSCAN_REFUSE, 400, 0,
	 "list Content-Length"},
	{"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n", REQSCAN_REFUSE, 400, 0,
	 "empty Content-Length"},
	{"POST / HTTP/1.1\r\nContent-Length: 33\r\n\r\n", REQSCAN_REFUSE, 413, 0,
	 "body over the limit, refused before any body byte"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n21\r\n", REQSCAN_REFUSE, 413, 0,
	 "chunk over the limit"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", REQSCAN_REFUSE, 501, 0,
	 "coding list"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", REQSCAN_REFUSE, 501, 0,
	 "odd coding"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	 REQSCAN_REFUSE, 400, 0, "duplicate Transfer-Encoding"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	 REQSCAN_REFUSE, 400, 0, "both framings"},
	{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", REQSCAN_REFUSE, 400, 0,
	 "chunked on HTTP/1.0"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
	 REQSCAN_REFUSE, 400, 0, "chunk extension (evhttp refuses them)"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", REQSCAN_REFUSE, 400, 0,
	 "chunk data longer than its size"},
	{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", REQSCAN_REFUSE, 400, 0, "duplicate Host"},
	{"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", REQSCAN_REFUSE, 400, 0, "obs-fold"},
	{"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", REQSCAN_REFUSE, 400, 0,
	 "space before colon"},
	{"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n", REQSCAN_REFUSE, 400, 0, "control byte"},
	{"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", REQSCAN_REFUSE, 400, 0, "bare CR"},
	{"GET / HTTP/1.1\r\nNoColon\r\n\r\n", REQSCAN_REFUSE, 400, 0, "field without colon"},
	{"GET / HTTP/2.0\r\n\r\n", REQSCAN_REFUSE, 505, 0, "HTTP/2 on this port"},
	{"GET / HTTP/1.1 x\r\n\r\n", REQSCAN_REFUSE, 400, 0, "junk after the version"},
	{"GET /\r\n\r\n", REQSCAN_REFUSE, 400, 0, "HTTP/0.9"},
	{"G\x01T / HTTP/1.1\r\n\r\n", REQSCAN_REFUSE, 400, 0, "bad method byte"},
	{"GET /a b HTTP/1.1\r\n\r\n", REQSCAN_REFUSE, 400, 0, "space in the target"},
	{"GET  / HTTP/1.1\r\n\r\n", REQSCAN_REFUSE, 400, 0, "double space"},
	{"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: "
	 "1\r\n\r\n",
	 REQSCAN_REFUSE, 431, 0, "too many header lines"},
};

static void check_case(size_t i, struct outcome got, const char *how)
{
	ck_assert_msg(got.status == cases[i].status, "%s (%s): status %d", cases[i].why, how,
		      (int)got.status);
	if (cases[i].status == REQSCAN_REFUSE)
		ck_assert_msg(got.refusal == cases[i].refusal, "%s (%s): refusal %d", cases[i].why,
			      how, got.refusal);
	if (cases[i].status == REQSCAN_DONE) {
		size_t want = cases[i].done_at ? cases[i].done_at : strlen(cases[i].text);
		ck_assert_msg(got.used == want, "%s (%s): done at %zu, want %zu", cases[i].why, how,
			      got.used, want);
	}
}

START_TEST(table_in_every_split)
{
	const char *text = cases[_i].text;
	size_t len = strlen(text);
	check_case((size_t)_i, feed(text, len, 0, 0), "whole");
	check_case((size_t)_i, feed(text, len, 1, 0), "byte by byte");
	for (size_t split = 1; split < len; split++) {
		char how[32];
		snprintf(how, sizeof(how), "split at %zu", split);
		check_case((size_t)_i, feed(text, len, 0, split), how);
	}
}
END_TEST

START_TEST(oversized_head_is_431_and_long_line_414)
{
	char text[600];
	snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nX-Big: %0300d\r\n\r\n", 0);
	struct outcome got = feed(text, strlen(text), 0, 0);
	ck_assert_int_eq(got.status, REQSCAN_REFUSE);
	ck_assert_int_eq(got.refusal, 431);
	ck_assert_uint_le(got.used, limits.max_head_bytes + 1); /* decided at the limit */
	snprintf(text, sizeof(text), "GET /%0300d HTTP/1.1\r\n\r\n", 0);
	got = feed(text, strlen(text), 7, 0);
	ck_assert_int_eq(got.refusal, 414);
}
END_TEST

START_TEST(skip_counts_leading_blank_lines)
{
	const char *text = "\r\n\nGET / HTTP/1.1\r\n\r\n";
	struct outcome got = feed(text, strlen(text), 0, 0);
	ck_assert_int_eq(got.status, REQSCAN_DONE);
	ck_assert_uint_eq(got.skip, 3);
	char many[REQSCAN_MAX_BLANK + 8];
	memset(many, '\n', sizeof(many));
	got = feed(many, sizeof(many), 0, 0);
	ck_assert_int_eq(got.status, REQSCAN_REFUSE);
}
END_TEST

START_TEST(state_resets_between_pipelined_requests)
{
	const char *text = "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabPUT / HTTP/1.1\r\n"
			   "Content-Length: 1\r\n\r\nc";
	struct reqscan s;
	reqscan_init(&s, &limits);
	size_t used = 0, len = strlen(text);
	ck_assert(!reqscan_in_request(&s));
	ck_assert_int_eq(reqscan_feed(&s, text, len, &used), REQSCAN_DONE);
	ck_assert_uint_eq(used, 40);
	ck_assert(!reqscan_in_request(&s));
	size_t rest = 0;
	/* the second request's Content-Length is its own, not a duplicate */
	ck_assert_int_eq(reqscan_feed(&s, text + used, len - used, &rest), REQSCAN_DONE);
	ck_assert_uint_eq(used + rest, len);
	ck_assert_uint_eq(s.requests, 2);
	ck_assert_int_eq(reqscan_feed(&s, "GE", 2, &rest), REQSCAN_MORE);
	ck_assert(reqscan_in_request(&s));
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_reqscan");
	TCase *tc = tcase_create("rules");
	tcase_add_loop_test(tc, table_in_every_split, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, oversized_head_is_431_and_long_line_414);
	tcase_add_test(tc, skip_counts_leading_blank_lines);
	tcase_add_test(tc, state_resets_between_pipelined_requests);
	suite_add_tcase(s, tc);
	return s;
}
