/* apid against a request-smuggling and abuse corpus, over raw sockets:
 * conflicting or malformed framing (Content-Length pairs and lists, signed,
 * spaced, hex or huge lengths, Content-Length with Transfer-Encoding, coding
 * lists, obsolete line folding, bare LF and bare CR, NUL and other control
 * bytes, a body on GET or HEAD, bad chunked encodings). Each case is a
 * request to a real route, most followed by a second request a lenient
 * parser would see; each must get exactly one answer with its refusal
 * status, and the connection must close. Proof that none reached a handler:
 * apid's per-route request counters (apid_http_requests_total) do not move
 * except for route="refused", which grows by one per case. Oversized heads
 * (over 8 KiB, more than 100 fields) get 431 within 1 s. */
#include "testmain.h"

#include "test_apid.h"

#define STATION "/stations/SM000001"
/* The request a lenient parser would find after the first one. */
#define SMUGGLED "GET " STATION " HTTP/1.1\r\nHost: x\r\n\r\n"
/* A refused connection closes at once; a wait this long means it did not. */
#define EXCHANGE_TIMEOUT_MS 4000

struct smuggle_case {
	const char *name;
	const char *text;
	size_t len; /* the text may hold NUL bytes */
	int status;
};

#define CASE(name, status, text) {name, text, sizeof(text) - 1, status}

static const struct smuggle_case cases[] = {
	/* Content-Length */
	CASE("differing Content-Length pair", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n"
	     SMUGGLED),
	CASE("equal Content-Length pair", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
	     "hello"),
	CASE("Content-Length list", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 40\r\n\r\n" SMUGGLED),
	CASE("signed Content-Length (+)", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"),
	CASE("negative Content-Length", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" SMUGGLED),
	CASE("spaced Content-Length digits", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n" SMUGGLED),
	CASE("hex Content-Length", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 0x28\r\n\r\n" SMUGGLED),
	CASE("Content-Length over 2^64", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551656\r\n\r\n"
	     SMUGGLED),
	CASE("empty Content-Length", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n" SMUGGLED),
	CASE("space before the colon of Content-Length", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length : 40\r\n\r\n" SMUGGLED),
	/* Transfer-Encoding */
	CASE("Content-Length then Transfer-Encoding", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding then Content-Length", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	     "Content-Length: 45\r\n\r\n0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding: gzip, chunked", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding: chunked, gzip", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding over two fields", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding: chunked twice", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding: identity", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n" SMUGGLED),
	CASE("quoted Transfer-Encoding", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	CASE("Transfer-Encoding: xchunked", 501,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	CASE("space before the colon of Transfer-Encoding", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	CASE("chunked on HTTP/1.0", 400,
	     "POST " STATION " HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "0\r\n\r\n" SMUGGLED),
	/* line structure */
	CASE("obs-fold in a field", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n" SMUGGLED),
	CASE("obs-fold with a tab", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n" SMUGGLED),
	CASE("obs-folded Content-Length value", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 40\r\n\r\n" SMUGGLED),
	CASE("bare LF ending the request line", 400,
	     "GET " STATION " HTTP/1.1\nHost: x\r\n\r\n" SMUGGLED),
	CASE("bare LF ending a field", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n" SMUGGLED),
	CASE("bare LF ending the head", 400, "GET " STATION " HTTP/1.1\r\nHost: x\r\n\n" SMUGGLED),
	CASE("bare CR inside a field", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX-A: a\rContent-Length: 40\r\n\r\n" SMUGGLED),
	CASE("field without a colon", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n" SMUGGLED),
	CASE("duplicate Host", 400, "GET " STATION " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
	/* control bytes */
	CASE("NUL in a field value", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" SMUGGLED),
	CASE("NUL in a field name", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX\0A: 1\r\n\r\n" SMUGGLED),
	CASE("NUL in the target", 400, "GET " STATION "\0 HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED),
	CASE("NUL in the method", 400, "G\0T " STATION " HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED),
	CASE("DEL in a field value", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n" SMUGGLED),
	/* request line */
	CASE("double space in the request line", 400,
	     "GET  " STATION " HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED),
	CASE("tab in the request line", 400, "GET\t" STATION " HTTP/1.1\r\nHost: x\r\n\r\n"),
	CASE("lower-case version", 400, "GET " STATION " http/1.1\r\nHost: x\r\n\r\n" SMUGGLED),
	CASE("HTTP/2.0 on an HTTP/1 port", 505, "GET " STATION " HTTP/2.0\r\nHost: x\r\n\r\n"),
	/* a body where none belongs */
	CASE("Content-Length body on GET", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" SMUGGLED),
	CASE("chunked body on GET", 400,
	     "GET " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "28\r\n" SMUGGLED "\r\n0\r\n\r\n"),
	CASE("body on HEAD", 400,
	     "HEAD " STATION " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
	/* chunked encoding */
	CASE("chunk extension", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3;x=y\r\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("chunk size not hex", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "zz\r\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("negative chunk size", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "-3\r\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("space before a chunk size", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     " 3\r\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("empty chunk size", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "\r\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("chunk data longer than its size", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3\r\nabcd\r\n0\r\n\r\n" SMUGGLED),
	CASE("chunk data without its CRLF", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3\r\nabc0\r\n\r\n" SMUGGLED),
	CASE("bare LF after a chunk size", 400,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3\nabc\r\n0\r\n\r\n" SMUGGLED),
	CASE("chunk size over 2^64", 413,
	     "POST " STATION " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "10000000000000003\r\nabc\r\n0\r\n\r\n" SMUGGLED),
};

/* A Redis of its own: the shared one's db indices are taken by other tests
 * that run beside this one. */
static struct itest_store redis;

static void fixture(struct apid_env *e)
{
	memset(e, 0, sizeof(*e));
	apid_db_setup(e, NULL);
	ck_assert(itest_redis_start(&redis));
	apid_redis_setup(e, redis.url);
	apid_station(e->pg, "SM000001", "밀수", "서울특별시 중구 1", 37.5, 127.0, "ME", "", "",
		     "11");
	apid_charger(e->pg, "SM000001", "01", "02", "7", 2, 0);
	/* 8 KiB heads; the line limit stays at its default of 100 */
	apid_start(e, (char *[]){"APID_MAX_HEADER_BYTES=8192", NULL}, true);
}

/* The request counters of every route but "refused" and "metrics" (the
 * scrape itself), one line each; *refused gets the sum of "refused". */
static char *handler_counters(struct apid_env *e, long *refused)
{
	char *metrics = NULL;
	ck_assert_int_eq(apid_get(e, "/metrics", &metrics), 200);
	char *out = calloc(1, strlen(metrics) + 1);
	*refused = 0;
	for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "apid_http_requests_total{", 25) != 0 ||
		    strstr(line, "route=\"metrics\""))
			continue;
		if (strstr(line, "route=\"refused\"")) {
			const char *space = strrchr(line, ' ');
			*refused += space ? strtol(space + 1, NULL, 10) : 0;
			continue;
		}
		strcat(out, line);
		strcat(out, "\n");
	}
	free(metrics);
	return out;
}

/* Send one case on a fresh connection; returns the reply (caller frees) and
 * its milliseconds; *closed when the server closed before the timeout. */
static char *exchange(struct apid_env *e, const char *text, size_t len, long *ms, bool *closed)
{
	char *reply = NULL;
	long start = apid_now_ms();
	long n = itest_raw_exchange(e->port, text, len, EXCHANGE_TIMEOUT_MS, &reply);
	*ms = apid_now_ms() - start;
	ck_assert_int_ge(n, 0);
	*closed = *ms < EXCHANGE_TIMEOUT_MS - 500;
	return reply;
}

static int count_answers(const char *reply)
{
	int n = 0;
	for (const char *p = reply; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
		n++;
	return n;
}

/* One answer with `status`, a JSON reason, and the connection closed. */
static void expect_refused(struct apid_env *e, const char *name, const char *text, size_t len,
			   int status, long max_ms)
{
	bool closed;
	long ms;
	char *reply = exchange(e, text, len, &ms, &closed);
	char want[32];
	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	ck_assert_msg(strncmp(reply, want, strlen(want)) == 0, "%s: got %.200s", name, reply);
	ck_assert_msg(count_answers(reply) == 1, "%s: more than one answer: %.600s", name, reply);
	ck_assert_msg(strstr(reply, "{\"message\":"), "%s: no JSON reason: %.300s", name, reply);
	ck_assert_msg(closed, "%s: connection left open (%ld ms)", name, ms);
	ck_assert_msg(ms <= max_ms, "%s: answered after %ld ms", name, ms);
	free(reply);
}

START_TEST(corpus_refused_before_any_handler)
{
	struct apid_env e;
	fixture(&e);
	long refused_before, refused_after;
	char *before = handler_counters(&e, &refused_before);
	size_t n = sizeof(cases) / sizeof(cases[0]);
	ck_assert_uint_ge(n, 30);
	for (size_t i = 0; i < n; i++)
		expect_refused(&e, cases[i].name, cases[i].text, cases[i].len, cases[i].status,
			       EXCHANGE_TIMEOUT_MS);
	char *after = handler_counters(&e, &refused_after);
	ck_assert_msg(strcmp(before, after) == 0, "a handler answered:\nbefore:\n%s\nafter:\n%s",
		      before, after);
	ck_assert_int_eq(refused_after - refused_before, (long)n);
	free(before);
	free(after);
	/* the same station is served to a well-formed request */
	bool closed;
	long ms;
	char *reply = exchange(&e, SMUGGLED, strlen(SMUGGLED), &ms, &closed);
	ck_assert_msg(strncmp(reply, "HTTP/1.1 200 ", 13) == 0, "%.300s", reply);
	ck_assert_ptr_nonnull(strstr(reply, "\"stationId\":\"SM000001\""));
	free(reply);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

/* A request with `fields` extra fields of `value_len` value bytes each. */
static char *big_request(int fields, size_t value_len)
{
	size_t cap = 256 + (size_t)fields * (value_len + 32);
	char *text = malloc(cap);
	size_t len = (size_t)snprintf(text, cap, "GET " STATION " HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < fields; i++) {
		len += (size_t)snprintf(text + len, cap - len, "X-F%d: ", i);
		memset(text + len, 'v', value_len);
		len += value_len;
		len += (size_t)snprintf(text + len, cap - len, "\r\n");
	}
	snprintf(text + len, cap - len, "\r\n");
	return text;
}

START_TEST(oversized_heads_refused_within_a_second)
{
	struct apid_env e;
	fixture(&e);
	long refused_before, refused_after;
	char *before = handler_counters(&e, &refused_before);
	struct {
		const char *name;
		char *text;
	} big[] = {
		{"one field over 8 KiB", big_request(1, 8300)},
		{"fields adding up over 8 KiB", big_request(60, 150)},
		{"101 fields", big_request(100, 4)}, /* with Host */
		{"1000 fields", big_request(1000, 1)},
	};
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		expect_refused(&e, big[i].name, big[i].text, strlen(big[i].text), 431, 1000);
		free(big[i].text);
	}
	char *after = handler_counters(&e, &refused_after);
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(refused_after - refused_before, 4);
	free(before);
	free(after);
	/* just within both limits: 100 fields (99 and Host), under 8 KiB */
	char *fits = big_request(99, 40);
	ck_assert_uint_lt(strlen(fits), 8192);
	bool closed;
	long ms;
	char *reply = exchange(&e, fits, strlen(fits), &ms, &closed);
	ck_assert_msg(strncmp(reply, "HTTP/1.1 200 ", 13) == 0, "%.300s", reply);
	free(reply);
	free(fits);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_smuggling");
	TCase *tc = tcase_create("smuggling");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, corpus_refused_before_any_handler);
	tcase_add_test(tc, oversized_heads_refused_within_a_second);
	suite_add_tcase(s, tc);
	return s;
}
