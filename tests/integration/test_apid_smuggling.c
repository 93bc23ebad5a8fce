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
 * (over 8 KiB, more than 100 fields) get 431 within 1 s. 1,000 clients
 * trickling header lines are each cut (408) by the absolute request
 * deadline while another client is answered (its p99 beside them and
 * without them is printed, not asserted: timing belongs to benchmarks).
 * Past the connection limit, connections get 503 and are closed, and
 * apid's RSS stays flat over rounds of them. Loopback only, bounded. */
#include "testmain.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

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

/* extra: "K=V" settings after the 8 KiB head limit (NULL-terminated). */
static void fixture(struct apid_env *e, const char *const *extra)
{
	memset(e, 0, sizeof(*e));
	apid_db_setup(e, NULL);
	ck_assert(itest_redis_start(&redis));
	apid_redis_setup(e, redis.url);
	apid_station(e->pg, "SM000001", "밀수", "서울특별시 중구 1", 37.5, 127.0, "ME", "", "",
		     "11");
	apid_charger(e->pg, "SM000001", "01", "02", "7", 2, 0);
	/* 8 KiB heads; the line limit stays at its default of 100 */
	char *env[8] = {"APID_MAX_HEADER_BYTES=8192"};
	for (size_t i = 0; extra && extra[i] && i < 6; i++)
		env[i + 1] = (char *)extra[i];
	apid_start(e, env, true);
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
	fixture(&e, NULL);
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
	fixture(&e, NULL);
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

/* ---- slow and excess connections ---- */

#define SLOW_CLIENTS	 1000
#define SLOW_DEADLINE_S	 3
#define LIMIT		 100
#define LIMIT_ROUNDS	 5
#define LIMIT_PER_ROUND	 300

/* A non-blocking loopback connection (connect completes at once). */
static int open_conn(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect: %s",
		      strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void send_text(int fd, const char *text)
{
	(void)!send(fd, text, strlen(text), MSG_NOSIGNAL); /* a closed peer is fine */
}

/* Milliseconds of one GET of the station on a new connection (200 asserted). */
static long timed_get(struct apid_env *e)
{
	long start = apid_now_ms();
	ck_assert_int_eq(apid_get(e, STATION, NULL), 200);
	return apid_now_ms() - start;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static long p99(long *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	return v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

START_TEST(slow_headers_cut_by_the_absolute_deadline)
{
	struct apid_env e;
	fixture(&e, (const char *const[]){"APID_REQUEST_TIMEOUT_SECONDS=" "3",
					  "APID_MAX_CONNECTIONS=4000", NULL});
	_Static_assert(SLOW_DEADLINE_S == 3, "the setting above");
	enum { SAMPLES = 100 };
	long alone[SAMPLES], loaded[SAMPLES];
	for (int i = 0; i < SAMPLES; i++)
		alone[i] = timed_get(&e);
	int *fds = calloc(SLOW_CLIENTS, sizeof(int));
	long *opened = calloc(SLOW_CLIENTS, sizeof(long)), *cut = calloc(SLOW_CLIENTS, sizeof(long));
	bool *got_408 = calloc(SLOW_CLIENTS, sizeof(bool));
	for (int i = 0; i < SLOW_CLIENTS; i++) {
		fds[i] = open_conn(e.port);
		send_text(fds[i], "GET /healthz HTTP/1.1\r\nHost: slow\r\n");
		opened[i] = apid_now_ms();
	}
	/* each sends a header line every 500 ms, never the end of its head;
	 * meanwhile another client asks for the station */
	int open_left = SLOW_CLIENTS, sampled = 0;
	long start = apid_now_ms(), next_trickle = start;
	struct pollfd *pfd = calloc(SLOW_CLIENTS, sizeof(*pfd));
	while (open_left > 0 && apid_now_ms() - start < (SLOW_DEADLINE_S + 10) * 1000) {
		long now = apid_now_ms();
		if (now >= next_trickle) {
			for (int i = 0; i < SLOW_CLIENTS; i++)
				if (!cut[i])
					send_text(fds[i], "X-Slow: 1\r\n");
			next_trickle = now + 500;
		}
		if (sampled < SAMPLES)
			loaded[sampled++] = timed_get(&e);
		for (int i = 0; i < SLOW_CLIENTS; i++)
			pfd[i] = (struct pollfd){.fd = cut[i] ? -1 : fds[i], .events = POLLIN};
		if (poll(pfd, SLOW_CLIENTS, sampled < SAMPLES ? 0 : 50) <= 0)
			continue;
		for (int i = 0; i < SLOW_CLIENTS; i++) {
			if (cut[i] || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[4096];
			ssize_t n = recv(fds[i], buf, sizeof(buf), 0);
			if (n > 0) {
				got_408[i] |= n >= 13 && memcmp(buf, "HTTP/1.1 408 ", 13) == 0;
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				continue;
			cut[i] = apid_now_ms();
			open_left--;
		}
	}
	while (sampled < SAMPLES)
		loaded[sampled++] = timed_get(&e);
	long latest = 0;
	int answered = 0;
	for (int i = 0; i < SLOW_CLIENTS; i++) {
		ck_assert_msg(cut[i], "slow client %d still open after %d s", i,
			      SLOW_DEADLINE_S + 10);
		long held = cut[i] - opened[i];
		latest = held > latest ? held : latest;
		answered += got_408[i];
		close(fds[i]);
	}
	/* the deadline counts from the first byte: the trickle never extends it */
	ck_assert_msg(latest <= SLOW_DEADLINE_S * 1000 + 2000, "a slow client held %ld ms", latest);
	ck_assert_int_ge(answered, SLOW_CLIENTS * 9 / 10);
	long p_alone = p99(alone, SAMPLES), p_loaded = p99(loaded, SAMPLES);
	fprintf(stderr,
		"slow headers: %d clients cut within %ld ms (deadline %d s), %d answered 408; "
		"other clients' p99 %ld ms alone, %ld ms beside them (ratio %.2f)\n",
		SLOW_CLIENTS, latest, SLOW_DEADLINE_S, answered, p_alone, p_loaded,
		p_alone ? (double)p_loaded / (double)p_alone : 0.0);
	ck_assert_msg(p_loaded < 2000, "other clients waited %ld ms", p_loaded);
	free(pfd);
	free(fds);
	free(opened);
	free(cut);
	free(got_408);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

static long rss_kb(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *status = itest_read_file(path);
	ck_assert_ptr_nonnull(status);
	const char *line = strstr(status, "VmRSS:");
	long kb = line ? strtol(line + 6, NULL, 10) : -1;
	free(status);
	return kb;
}

/* Wait until apid counts no open connection (its gauge). */
static void wait_no_connections(struct apid_env *e)
{
	long deadline = apid_now_ms() + 10000;
	for (;;) {
		char *metrics = NULL;
		/* 503 while the closes are still being noticed; the scrape itself
		 * is then the one open connection */
		bool idle = apid_get(e, "/metrics", &metrics) == 200 &&
			    strstr(metrics, "\napid_http_connections 1\n") != NULL;
		free(metrics);
		if (idle)
			return;
		ck_assert_msg(apid_now_ms() < deadline, "connections never closed");
		usleep(100000);
	}
}

START_TEST(past_the_limit_refused_and_rss_flat)
{
	struct apid_env e;
	fixture(&e, (const char *const[]){"APID_MAX_CONNECTIONS=" "100", NULL});
	_Static_assert(LIMIT == 100, "the setting above");
	long rss[LIMIT_ROUNDS];
	int refused_total = 0;
	for (int round = 0; round < LIMIT_ROUNDS; round++) {
		int fds[LIMIT_PER_ROUND];
		for (int i = 0; i < LIMIT_PER_ROUND; i++)
			fds[i] = open_conn(e.port);
		for (int i = 0; i < LIMIT_PER_ROUND; i++)
			send_text(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
		int ok = 0, refused = 0;
		for (int i = 0; i < LIMIT_PER_ROUND; i++) {
			struct pollfd p = {.fd = fds[i], .events = POLLIN};
			char buf[2048];
			ssize_t n = -1;
			if (poll(&p, 1, 5000) == 1)
				n = recv(fds[i], buf, sizeof(buf) - 1, 0);
			ck_assert_msg(n >= 13, "connection %d of round %d: no answer", i, round);
			if (memcmp(buf, "HTTP/1.1 200 ", 13) == 0) {
				ok++;
			} else {
				ck_assert_msg(memcmp(buf, "HTTP/1.1 503 ", 13) == 0, "%.*s", (int)n,
					      buf);
				refused++;
				/* and it is closed */
				bool closed = false;
				for (int k = 0; k < 50 && !closed; k++) {
					if (poll(&p, 1, 100) == 1)
						closed = recv(fds[i], buf, sizeof(buf), 0) <= 0;
				}
				ck_assert_msg(closed, "a refused connection stayed open");
			}
		}
		ck_assert_int_le(ok, LIMIT);
		ck_assert_int_ge(refused, LIMIT_PER_ROUND - LIMIT);
		refused_total += refused;
		for (int i = 0; i < LIMIT_PER_ROUND; i++)
			close(fds[i]);
		wait_no_connections(&e);
		rss[round] = rss_kb(e.proc.pid);
	}
	long growth = rss[LIMIT_ROUNDS - 1] - rss[1];
	fprintf(stderr,
		"connection limit %d: %d of %d connections refused with 503 over %d rounds; "
		"apid RSS %ld kB after round 2, %ld kB after round %d (%+ld kB)\n",
		LIMIT, refused_total, LIMIT_PER_ROUND * LIMIT_ROUNDS, LIMIT_ROUNDS, rss[1],
		rss[LIMIT_ROUNDS - 1], LIMIT_ROUNDS, growth);
	/* ASan keeps freed memory in quarantine: RSS is only meaningful without it */
	if (!strstr(itest_bin("apid"), "/san/"))
		ck_assert_msg(growth < 4096, "RSS grew %ld kB", growth);
	ck_assert_int_eq(apid_get(&e, STATION, NULL), 200);
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
	tcase_add_test(tc, slow_headers_cut_by_the_absolute_deadline);
	tcase_add_test(tc, past_the_limit_refused_and_rss_flat);
	suite_add_tcase(s, tc);
	return s;
}
