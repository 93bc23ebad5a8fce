/* apid's HTTP limits and shutdown, over raw sockets: 431 for oversized
 * heads (414 for the request line), framing refusals (duplicate
 * Content-Length, odd Transfer-Encoding, both, oversized body), pipelining,
 * a client sending a byte a second cut off by the absolute request
 * deadline, idle keep-alive connections closed, the connection limit, and
 * SIGTERM: readiness first, then the listener, in-flight requests finish,
 * exit 0; a second SIGTERM exits at once. */
#include "testmain.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "test_apid.h"

#define REDIS_DB 14

static void fixture(struct apid_env *e, char *const *extra)
{
	memset(e, 0, sizeof(*e));
	apid_db_setup(e, NULL);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), REDIS_DB);
	apid_redis_setup(e, url);
	free(url);
	apid_station(e->pg, "LM000001", "한계", "서울특별시 중구 1", 37.5, 127.0, "ME", "", "",
		     "11");
	apid_charger(e->pg, "LM000001", "01", "02", "7", 2, 0);
	apid_start(e, extra, true);
}

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void send_all(int fd, const char *data)
{
	size_t len = strlen(data), sent = 0;
	while (sent < len) {
		ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
		ck_assert_int_gt(n, 0);
		sent += (size_t)n;
	}
}

/* Read until `count` answers are complete (each ends after its
 * Content-Length body), the peer closes, or timeout_ms passes. Returns the
 * text (caller frees); *closed says whether the peer closed. */
static char *read_answers(int fd, int count, int timeout_ms, bool *closed)
{
	char *data = calloc(1, 1);
	size_t len = 0;
	long deadline = apid_now_ms() + timeout_ms;
	*closed = false;
	for (;;) {
		int seen = 0;
		const char *p = data;
		while (seen < count) {
			const char *end = strstr(p, "\r\n\r\n");
			const char *cl = strstr(p, "Content-Length: ");
			if (!end || !cl || cl > end)
				break;
			size_t body = strtoul(cl + 16, NULL, 10);
			if ((size_t)(end + 4 - data) + body > len)
				break;
			p = end + 4 + body;
			seen++;
		}
		if (seen >= count)
			break;
		long left = deadline - apid_now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		char chunk[65536];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0) {
			*closed = true;
			break;
		}
		data = realloc(data, len + (size_t)n + 1);
		memcpy(data + len, chunk, (size_t)n);
		len += (size_t)n;
		data[len] = '\0';
	}
	return data;
}

/* Wait until the peer closes (true) or timeout_ms passes. */
static bool wait_closed(int fd, int timeout_ms)
{
	long deadline = apid_now_ms() + timeout_ms;
	for (;;) {
		long left = deadline - apid_now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)left) <= 0)
			return false;
		char chunk[4096];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
}

/* One request on a fresh connection: its answer and whether it closed. */
static char *exchange(struct apid_env *e, const char *request, bool *closed)
{
	int fd = connect_to(e->port);
	ck_assert_int_ge(fd, 0);
	send_all(fd, request);
	char *answer = read_answers(fd, 1, 5000, closed);
	if (!*closed)
		*closed = wait_closed(fd, 2000);
	close(fd);
	return answer;
}

static void expect_refusal(struct apid_env *e, const char *request, const char *status_line,
			   const char *message)
{
	bool closed;
	char *answer = exchange(e, request, &closed);
	ck_assert_msg(strncmp(answer, status_line, strlen(status_line)) == 0, "got: %.200s",
		      answer);
	ck_assert_msg(strstr(answer, "Content-Type: application/json; charset=utf-8"), "%.300s",
		      answer);
	ck_assert_msg(strstr(answer, message), "'%s' not in %.300s", message, answer);
	ck_assert_msg(closed, "connection left open after: %.100s", answer);
	free(answer);
}

START_TEST(oversized_heads)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_MAX_HEADER_BYTES=4096", "APID_MAX_HEADER_LINES=20", NULL});
	char *big = malloc(20000);
	snprintf(big, 20000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %08000d\r\n\r\n", 0);
	expect_refusal(&e, big, "HTTP/1.1 431 ", "request header fields too large");
	snprintf(big, 20000, "GET /%08000d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
	expect_refusal(&e, big, "HTTP/1.1 414 ", "request line too long");
	strcpy(big, "GET /healthz HTTP/1.1\r\n");
	for (int i = 0; i < 21; i++)
		strcat(big, "X-Many: 1\r\n");
	strcat(big, "\r\n");
	expect_refusal(&e, big, "HTTP/1.1 431 ", "too many header lines");
	free(big);
	/* just under the limits: answered */
	bool closed;
	char *answer = exchange(&e, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
				&closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
	free(answer);
	char *metrics = NULL;
	ck_assert_int_eq(apid_get(&e, "/metrics", &metrics), 200);
	ck_assert_ptr_nonnull(strstr(metrics, "apid_http_refusals_total{reason=\"status_431\"} 2"));
	ck_assert_ptr_nonnull(
		strstr(metrics, "apid_http_requests_total{route=\"refused\",status=\"414\"} 1"));
	free(metrics);
	apid_teardown(&e);
}
END_TEST

START_TEST(framing_refusals_and_pipelining)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_MAX_BODY_BYTES=1024", NULL});
	expect_refusal(&e,
		       "GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		       "HTTP/1.1 400 ", "duplicate Content-Length");
	expect_refusal(&e, "POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		       "HTTP/1.1 501 ", "unsupported Transfer-Encoding");
	expect_refusal(&e,
		       "POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		       "Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		       "HTTP/1.1 400 ", "both Content-Length and Transfer-Encoding");
	expect_refusal(&e, "POST /healthz HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
		       "HTTP/1.1 413 ", "request body too large");
	expect_refusal(&e, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 ",
		       "duplicate Host");
	expect_refusal(&e, "GET /healthz HTTP/2.0\r\n\r\n", "HTTP/1.1 505 ", "not supported");
	/* a chunked body within the limit is read, then the method refused */
	bool closed;
	char *answer = exchange(&e,
				"POST /filters HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				"3\r\nabc\r\n0\r\n\r\n",
				&closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 405 ", 13) == 0, "%s", answer);
	free(answer);
	/* three pipelined requests, answered in order on one connection */
	int fd = connect_to(e.port);
	send_all(fd, "GET /healthz HTTP/1.1\r\n\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
		     "GET /stations/LM000001 HTTP/1.1\r\n\r\n");
	answer = read_answers(fd, 3, 5000, &closed);
	char *a = strstr(answer, "HTTP/1.1 200 "), *b = strstr(answer, "HTTP/1.1 404 "),
	     *c = a ? strstr(a + 1, "HTTP/1.1 200 ") : NULL;
	ck_assert_msg(a && b && c && a < b && b < c, "%s", answer);
	ck_assert_ptr_nonnull(strstr(c, "\"stationId\":\"LM000001\""));
	ck_assert(!closed);
	free(answer);
	close(fd);
	apid_teardown(&e);
}
END_TEST

START_TEST(slow_clients_are_cut_off)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_REQUEST_TIMEOUT_SECONDS=2", "APID_KEEPALIVE_TIMEOUT_SECONDS=1",
			       NULL});
	/* one byte a second: each byte would restart evhttp's own timeout */
	int fd = connect_to(e.port);
	const char *request = "GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n";
	long start = apid_now_ms();
	bool cut = false;
	for (size_t i = 0; request[i] && !cut; i++) {
		if (send(fd, request + i, 1, MSG_NOSIGNAL) != 1) {
			cut = true;
			break;
		}
		cut = wait_closed(fd, 1000);
	}
	long took = apid_now_ms() - start;
	ck_assert_msg(cut, "a client sending a byte a second was never cut off");
	ck_assert_msg(took >= 1500 && took < 5000, "cut off after %ld ms", took);
	close(fd);
	/* idle keep-alive: closed after a second, also one that never spoke */
	int silent = connect_to(e.port);
	fd = connect_to(e.port);
	send_all(fd, "GET /healthz HTTP/1.1\r\n\r\n");
	bool closed;
	char *answer = read_answers(fd, 1, 3000, &closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
	free(answer);
	start = apid_now_ms();
	ck_assert(wait_closed(fd, 4000));
	took = apid_now_ms() - start;
	ck_assert_msg(took >= 500 && took < 3000, "idle connection closed after %ld ms", took);
	ck_assert(wait_closed(silent, 3000));
	close(fd);
	close(silent);
	apid_teardown(&e);
}
END_TEST

START_TEST(connection_limit)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_MAX_CONNECTIONS=3", NULL});
	/* the readiness polls' connections are closed by the client; wait until
	 * the server has noticed (only the scrape's own connection is open) */
	long deadline = apid_now_ms() + 5000;
	for (;;) {
		char *metrics = NULL;
		ck_assert_int_eq(apid_get(&e, "/metrics", &metrics), 200);
		bool settled = strstr(metrics, "\napid_http_connections 1\n") != NULL;
		free(metrics);
		if (settled)
			break;
		ck_assert_msg(apid_now_ms() < deadline, "connections never settled");
		usleep(50000);
	}
	usleep(300000); /* and the scrape's own connection is gone */
	int fds[3];
	bool closed;
	for (int i = 0; i < 3; i++) {
		fds[i] = connect_to(e.port);
		send_all(fds[i], "GET /healthz HTTP/1.1\r\n\r\n");
		char *answer = read_answers(fds[i], 1, 3000, &closed);
		ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
		free(answer);
	}
	expect_refusal(&e, "GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 503 ",
		       "too many connections");
	close(fds[0]);
	usleep(300000); /* the server notices the close */
	char *answer = exchange(&e, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", &closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
	free(answer);
	close(fds[1]);
	close(fds[2]);
	apid_teardown(&e);
}
END_TEST

/* The per-address token bucket: a burst of 3, then one request every 2 s;
 * probes are never limited; the refusal says when to come back. */
START_TEST(rate_limit_per_client)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_RATE_LIMIT_PER_SECOND=0.5", "APID_RATE_LIMIT_BURST=3", NULL});
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(apid_get(&e, "/stations/LM000001", NULL), 200);
	char *body = NULL, *headers = NULL;
	long status = apid_get_headers(&e, "GET", "/stations/LM000001", &body, &headers);
	ck_assert_int_eq(status, 429);
	ck_assert_msg(strstr(headers, "Retry-After: 2\r\n") || strstr(headers, "Retry-After: 1\r\n"),
		      "%s", headers);
	ck_assert_ptr_nonnull(strstr(headers, "Content-Type: application/json; charset=utf-8"));
	yajl_val v = apid_parse(body);
	ck_assert_msg(strstr(jstr(v, "message"), "too many requests"), "%s", body);
	yajl_tree_free(v);
	free(body);
	free(headers);
	/* every route counts, probes do not */
	ck_assert_int_eq(apid_get(&e, "/filters", NULL), 429);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(apid_get(&e, "/healthz", NULL), 200);
		ck_assert_int_eq(apid_get(&e, "/readyz", NULL), 200);
	}
	body = NULL;
	ck_assert_int_eq(apid_get(&e, "/metrics", &body), 200);
	ck_assert_msg(strstr(body, "route=\"station\",status=\"429\"} 1"), "%s", body);
	free(body);
	/* a token is back after 2 s, and only one */
	usleep(2100000);
	ck_assert_int_eq(apid_get(&e, "/stations/LM000001", NULL), 200);
	ck_assert_int_eq(apid_get(&e, "/stations/LM000001", NULL), 429);
	apid_teardown(&e);
}
END_TEST

START_TEST(sigterm_drains)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_SHUTDOWN_GRACE_SECONDS=1", "APID_DRAIN_SECONDS=10", NULL});
	bool closed;
	/* an idle keep-alive connection, and one in the middle of a request */
	int idle = connect_to(e.port);
	send_all(idle, "GET /healthz HTTP/1.1\r\n\r\n");
	free(read_answers(idle, 1, 3000, &closed));
	int busy = connect_to(e.port);
	send_all(busy, "GET /stations/LM000001 HTTP/1.1\r\nHost: x\r\n");
	usleep(100000);
	itest_signal(&e.proc, SIGTERM);
	usleep(200000);
	/* readiness is off at once; everything else still answers */
	ck_assert_int_eq(apid_get(&e, "/readyz", NULL), 503);
	ck_assert_int_eq(apid_get(&e, "/stations/LM000001", NULL), 200);
	send_all(idle, "GET /healthz HTTP/1.1\r\n\r\n");
	char *answer = read_answers(idle, 1, 3000, &closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
	free(answer);
	/* after the grace: the listener is gone, idle connections are closed */
	long deadline = apid_now_ms() + 5000;
	int probe;
	while ((probe = connect_to(e.port)) >= 0 && apid_now_ms() < deadline) {
		close(probe);
		usleep(50000);
	}
	ck_assert_msg(probe < 0, "still accepting after the grace");
	ck_assert(wait_closed(idle, 3000));
	/* the request in flight finishes, told to close */
	ck_assert_int_eq(itest_wait(&e.proc, 100), -1);
	send_all(busy, "\r\n");
	answer = read_answers(busy, 1, 3000, &closed);
	ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
	ck_assert_ptr_nonnull(strstr(answer, "Connection: close"));
	ck_assert_ptr_nonnull(strstr(answer, "\"stationId\":\"LM000001\""));
	free(answer);
	ck_assert_int_eq(itest_wait(&e.proc, 5000), 0);
	e.running = false;
	apid_check_log(&e);
	free(e.proc.log);
	e.proc.log = NULL;
	close(idle);
	close(busy);
	apid_teardown(&e);
}
END_TEST

START_TEST(second_sigterm_exits_at_once)
{
	struct apid_env e;
	fixture(&e, (char *[]){"APID_SHUTDOWN_GRACE_SECONDS=0", "APID_DRAIN_SECONDS=60", NULL});
	int busy = connect_to(e.port);
	send_all(busy, "GET /healthz HTTP/1.1\r\n"); /* holds the drain open */
	usleep(100000);
	itest_signal(&e.proc, SIGTERM);
	usleep(500000);
	ck_assert_int_eq(itest_wait(&e.proc, 100), -1); /* still draining */
	long start = apid_now_ms();
	itest_signal(&e.proc, SIGTERM);
	ck_assert_int_eq(itest_wait(&e.proc, 3000), 0);
	ck_assert_int_lt(apid_now_ms() - start, 2000);
	e.running = false;
	free(e.proc.log);
	e.proc.log = NULL;
	close(busy);
	apid_teardown(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_limits");
	TCase *tc = tcase_create("limits");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, oversized_heads);
	tcase_add_test(tc, framing_refusals_and_pipelining);
	tcase_add_test(tc, slow_clients_are_cut_off);
	tcase_add_test(tc, connection_limit);
	tcase_add_test(tc, rate_limit_per_client);
	tcase_add_test(tc, sigterm_drains);
	tcase_add_test(tc, second_sigterm_exits_at_once);
	suite_add_tcase(s, tc);
	return s;
}
