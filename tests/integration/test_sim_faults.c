/* upstream-sim: the gateway (keys, quotas) and every fault mode, observed on
 * the wire: latency, 5xx, resets (ECONNRESET on a raw socket), truncation,
 * XML errors, drift, totalCount mismatch, XML-converted shapes, empty
 * bodies, service errors, rate and page triggers, run-time switching, the
 * documented malformed records, and /__stats. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "itest.h"
#include "testmain.h"

/* every simulator here runs on this fixed clock */
#define CLOCK "--clock", "fixed:20240605120000"

#define INFO "/B552584/EvCharger/getChargerInfo?serviceKey=test-key&dataType=JSON"

static yajl_val parse_or_null(const char *body)
{
	char err[256];
	return yajl_tree_parse(body, err, sizeof(err));
}

static long long total_of(yajl_val v)
{
	const char *p[] = {"totalCount", NULL};
	yajl_val t = yajl_tree_get(v, p, yajl_t_number);
	ck_assert_ptr_nonnull(t);
	return YAJL_GET_INTEGER(t);
}

static long long stat_counter(const struct itest_sim *s, const char *a, const char *b, const char *c)
{
	char *body = NULL;
	ck_assert_int_eq(itest_sim_get(s, "/__stats", &body, NULL), 200);
	yajl_val v = parse_or_null(body);
	ck_assert_ptr_nonnull(v);
	const char *path[] = {a, b, c, NULL};
	yajl_val x = yajl_tree_get(v, path, yajl_t_number);
	ck_assert_msg(x != NULL, "no /__stats %s.%s.%s", a, b ? b : "", c ? c : "");
	long long n = YAJL_GET_INTEGER(x);
	yajl_tree_free(v);
	free(body);
	return n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *gateway_xml(int code, const char *msg, char *out, size_t outlen)
{
	snprintf(out, outlen,
		 "<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg>\n"
		 "<returnAuthMsg>%s</returnAuthMsg>\n"
		 "<returnReasonCode>%02d</returnReasonCode></cmmMsgHeader></"
		 "OpenAPI_ServiceResponse>",
		 msg, code);
	return out;
}

START_TEST(unknown_and_missing_keys)
{
	struct itest_sim s;
	const char *args[] = {CLOCK, "--keys", "alpha,beta", NULL};
	itest_sim_start(&s, args);
	char expect[512], *body = NULL, url[256], *headers = NULL;
	gateway_xml(30, "SERVICE_KEY_IS_NOT_REGISTERED_ERROR", expect, sizeof(expect));
	const char *paths[] = {
		"/B552584/EvCharger/getChargerInfo?serviceKey=test-key&dataType=JSON",
		"/B552584/EvCharger/getChargerStatus?dataType=JSON",
		"/B552584/EvCharger/getChargerInfo?serviceKey=ALPHA"};
	for (int i = 0; i < 3; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s.port, paths[i]);
		ck_assert_int_eq(itest_http("GET", url, NULL, &body, NULL, &headers), 200);
		ck_assert_str_eq(body, expect);
		ck_assert_ptr_nonnull(strstr(headers, "text/xml"));
		free(body);
		free(headers);
	}
	ck_assert_int_eq(itest_sim_get(&s, "/B552584/EvCharger/getChargerInfo?serviceKey=beta&dataType=JSON",
			     &body, NULL),
			 200);
	ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
	free(body);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "bad_key"), 2);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerStatus", "bad_key"), 1);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "ok"), 1);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(quota_per_key)
{
	struct itest_sim s;
	const char *args[] = {CLOCK, "--keys", "alpha,beta", "--quota", "3", NULL};
	itest_sim_start(&s, args);
	char expect[512], *body = NULL;
	gateway_xml(22, "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR", expect, sizeof(expect));
	const char *a =
		"/B552584/EvCharger/getChargerInfo?serviceKey=alpha&dataType=JSON&numOfRows=1";
	const char *b =
		"/B552584/EvCharger/getChargerStatus?serviceKey=beta&dataType=JSON&numOfRows=1";
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(itest_sim_get(&s, a, &body, NULL), 200);
		ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
		free(body);
	}
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(itest_sim_get(&s, a, &body, NULL), 200);
		ck_assert_str_eq(body, expect);
		free(body);
	}
	ck_assert_int_eq(itest_sim_get(&s, b, &body, NULL), 200); /* the other key has its own quota */
	ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
	free(body);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "quota"), 2);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "ok"), 3);
	/* a new KST day resets the quota */
	itest_sim_admin(&s, "clock?set=20240606000001");
	ck_assert_int_eq(itest_sim_get(&s, a, &body, NULL), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
	free(body);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(latency)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	itest_sim_admin(&s, "faults?latency=next:1&latency_ms=700");
	char *body = NULL;
	double t0 = now_s();
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 200);
	double slow = now_s() - t0;
	ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
	free(body);
	t0 = now_s();
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 200);
	double fast = now_s() - t0;
	free(body);
	ck_assert_msg(slow >= 0.69 && fast < 0.5, "slow %.3f fast %.3f", slow, fast);
	ck_assert_int_eq(stat_counter(&s, "faults", "latency", NULL), 1);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(http_5xx)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	char *body = NULL;
	itest_sim_admin(&s, "faults?http5xx=next:1&http_code=503");
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 503);
	ck_assert_ptr_nonnull(strstr(body, "<returnAuthMsg>APPLICATION_ERROR</returnAuthMsg>"));
	free(body);
	itest_sim_admin(&s, "faults?http5xx=next:20&http_code=0");
	int seen[600] = {0};
	for (int i = 0; i < 20; i++) {
		long code = itest_sim_get(&s, INFO, &body, NULL);
		ck_assert_msg(code == 500 || code == 502 || code == 503 || code == 504, "%ld",
			      code);
		seen[code]++;
		free(body);
	}
	ck_assert_int_gt((seen[500] > 0) + (seen[502] > 0) + (seen[503] > 0) + (seen[504] > 0), 1);
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 200); /* the trigger is used up */
	free(body);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "http5xx"), 21);
	itest_sim_stop(&s);
}
END_TEST

/* Raw HTTP: returns bytes of body received, *content_length from the
 * header, *err the errno of the failing recv (0 on a clean close). */
static long raw_get(int port, const char *path, long *content_length, int *err, char **out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[1024];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	ck_assert_int_eq(send(fd, req, (size_t)n, 0), n);
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	*err = 0;
	for (;;) {
		if (len + 65536 >= cap) /* room for the NUL after a full recv */
			buf = realloc(buf, cap *= 2);
		ssize_t r = recv(fd, buf + len, 65536, 0);
		if (r < 0) {
			*err = errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		buf[len] = 0;
		char *hdr_end = strstr(buf, "\r\n\r\n");
		char *cl = strstr(buf, "Content-Length: ");
		if (hdr_end && cl && (long)(len - (size_t)(hdr_end + 4 - buf)) >= atol(cl + 16))
			break; /* complete */
	}
	close(fd);
	buf[len] = 0;
	char *hdr_end = strstr(buf, "\r\n\r\n");
	char *cl = strstr(buf, "Content-Length: ");
	ck_assert_ptr_nonnull(hdr_end);
	ck_assert_ptr_nonnull(cl);
	*content_length = atol(cl + 16);
	*out = buf;
	return (long)(len - (size_t)(hdr_end + 4 - buf));
}

START_TEST(reset_mid_body)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	itest_sim_admin(&s, "faults?reset=next:1&reset_at=0.3");
	const char *path = "/B552584/EvCharger/"
			   "getChargerInfo?serviceKey=test-key&dataType=JSON&numOfRows=2000";
	long cl;
	int err;
	char *buf;
	long got = raw_get(s.port, path, &cl, &err, &buf);
	ck_assert_msg(err == ECONNRESET, "errno %d (%s)", err, strerror(err));
	ck_assert_msg(got < cl && got <= (long)(cl * 0.3) + 1, "got %ld of %ld", got, cl);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200"));
	free(buf);
	/* the next request is whole */
	got = raw_get(s.port, path, &cl, &err, &buf);
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(got, cl);
	free(buf);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "reset"), 1);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(truncated_json)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	const char *path = INFO "&pageNo=2&numOfRows=500";
	char *full = NULL, *cut = NULL;
	size_t full_len, cut_len;
	ck_assert_int_eq(itest_sim_get(&s, path, &full, &full_len), 200);
	itest_sim_admin(&s, "faults?truncate=next:1&truncate_at=0.4");
	ck_assert_int_eq(itest_sim_get(&s, path, &cut, &cut_len), 200); /* well framed: curl is happy */
	ck_assert_int_eq(cut_len, (size_t)(full_len * 0.4));
	ck_assert(memcmp(full, cut, cut_len) == 0); /* a prefix of the real page */
	ck_assert_ptr_null(parse_or_null(cut));	    /* but not a JSON document */
	yajl_val ok = parse_or_null(full);
	ck_assert_ptr_nonnull(ok);
	yajl_tree_free(ok);
	free(full);
	free(cut);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(xml_error_in_place_of_a_page)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	char expect[512], *body = NULL;
	itest_sim_admin(&s, "faults?xml_error=page:3");
	for (int page = 1; page <= 4; page++) {
		char path[256];
		snprintf(path, sizeof(path), INFO "&pageNo=%d&numOfRows=10", page);
		for (int again = 0; again < 2; again++) {
			ck_assert_int_eq(itest_sim_get(&s, path, &body, NULL), 200);
			if (page == 3)
				ck_assert_str_eq(body, gateway_xml(1, "APPLICATION_ERROR", expect,
								   sizeof(expect)));
			else
				ck_assert_ptr_nonnull(strstr(body, "\"resultCode\":\"00\""));
			free(body);
		}
	}
	itest_sim_admin(&s, "faults?xml_error=next:1&xml_error_code=99");
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 200);
	ck_assert_str_eq(body, gateway_xml(99, "UNKNOWN_ERROR", expect, sizeof(expect)));
	free(body);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "xml_error"), 3);
	itest_sim_stop(&s);
}
END_TEST

static void page_keys(const struct itest_sim *s, const char *path, char keys[][16], long *n)
{
	char *body = NULL;
	ck_assert_int_eq(itest_sim_get(s, path, &body, NULL), 200);
	yajl_val v = parse_or_null(body);
	ck_assert_ptr_nonnull(v);
	const char *ip[] = {"items", "item", NULL};
	yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
	*n = (long)YAJL_GET_ARRAY(items)->len;
	for (long i = 0; i < *n; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		const char *a[] = {"statId", NULL}, *b[] = {"chgerId", NULL};
		snprintf(keys[i], 16, "%s/%s", YAJL_GET_STRING(yajl_tree_get(it, a, yajl_t_string)),
			 YAJL_GET_STRING(yajl_tree_get(it, b, yajl_t_string)));
	}
	yajl_tree_free(v);
	free(body);
}

START_TEST(drift_shifts_pages)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	static char all[300][16], drifted[100][16];
	long n_all, n;
	page_keys(&s, INFO "&pageNo=1&numOfRows=300", all, &n_all);
	ck_assert_int_eq(n_all, 300);
	bool saw_back = false, saw_forward = false;
	for (int i = 0; i < 16 && !(saw_back && saw_forward); i++) {
		itest_sim_admin(&s, "faults?drift=next:1&drift_rows=4");
		page_keys(&s, INFO "&pageNo=2&numOfRows=100", drifted, &n);
		ck_assert_int_eq(n, 100);
		/* page 2 normally starts at row 100: drift serves 96 (duplicates
		 * the end of page 1) or 104 (skips four rows) */
		bool back = strcmp(drifted[0], all[96]) == 0,
		     forward = strcmp(drifted[0], all[104]) == 0;
		ck_assert_msg(back || forward, "drifted page starts at %s", drifted[0]);
		long start = back ? 96 : 104;
		for (long k = 0; k < 100 && start + k < 300; k++)
			ck_assert_str_eq(drifted[k], all[start + k]);
		saw_back |= back;
		saw_forward |= forward;
	}
	ck_assert(saw_back && saw_forward);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(total_mismatch)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	char *body = NULL;
	itest_sim_admin(&s, "faults?total_mismatch=next:2");
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=5", &body, NULL), 200);
		yajl_val v = parse_or_null(body);
		ck_assert_int_eq(total_of(v), i < 2 ? 10007 : 10000);
		yajl_tree_free(v);
		free(body);
	}
	itest_sim_admin(&s, "faults?total_mismatch=1&total_delta=-9000");
	ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=5", &body, NULL), 200);
	yajl_val v = parse_or_null(body);
	ck_assert_int_eq(total_of(v), 1000);
	yajl_tree_free(v);
	free(body);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(xml_converted_shapes)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	itest_sim_admin(&s, "faults?xml_shapes=1");
	char *body = NULL;
	const char *ip[] = {"items", "item", NULL}, *items_path[] = {"items", NULL};
	ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=1&pageNo=7", &body, NULL), 200);
	yajl_val v = parse_or_null(body);
	ck_assert_ptr_nonnull(yajl_tree_get(v, ip, yajl_t_object)); /* one item: an object */
	yajl_tree_free(v);
	free(body);
	ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=100&pageNo=1000", &body, NULL), 200);
	v = parse_or_null(body);
	yajl_val items = yajl_tree_get(v, items_path, yajl_t_string); /* none: "" */
	ck_assert_ptr_nonnull(items);
	ck_assert_str_eq(YAJL_GET_STRING(items), "");
	ck_assert_int_eq(total_of(v), 10000);
	yajl_tree_free(v);
	free(body);
	ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=3", &body, NULL), 200);
	v = parse_or_null(body);
	ck_assert_ptr_nonnull(yajl_tree_get(v, ip, yajl_t_array)); /* several: still a list */
	yajl_tree_free(v);
	free(body);
	/* faults off: an empty page is an empty list */
	itest_sim_admin(&s, "faults?clear=1");
	ck_assert_int_eq(itest_sim_get(&s, INFO "&numOfRows=100&pageNo=1000", &body, NULL), 200);
	v = parse_or_null(body);
	items = yajl_tree_get(v, ip, yajl_t_array);
	ck_assert_ptr_nonnull(items);
	ck_assert_int_eq(YAJL_GET_ARRAY(items)->len, 0);
	yajl_tree_free(v);
	free(body);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(empty_body_and_service_error)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){CLOCK, NULL});
	char *body = NULL;
	size_t len = 99;
	itest_sim_admin(&s, "faults?empty_body=next:1");
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, &len), 200);
	ck_assert_int_eq(len, 0);
	free(body);
	itest_sim_admin(&s, "faults?service_error=next:1");
	ck_assert_int_eq(itest_sim_get(&s, INFO, &body, NULL), 200);
	ck_assert_str_eq(
		body,
		"<response><header><resultCode>22</resultCode><resultMsg>"
		"LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR</resultMsg></header></response>");
	free(body);
	itest_sim_admin(&s, ""
		  "faults?service_error=next:1&service_error_format=json&service_error_code=1");
	ck_assert_int_eq(itest_sim_get(&s, INFO "&pageNo=4&numOfRows=9", &body, NULL), 200);
	yajl_val v = parse_or_null(body);
	const char *rc[] = {"resultCode", NULL};
	ck_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, rc, yajl_t_string)), "01");
	yajl_tree_free(v);
	free(body);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "empty_body"), 1);
	ck_assert_int_eq(stat_counter(&s, "requests", "getChargerInfo", "service_error"), 2);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(rates_and_scope)
{
	struct itest_sim a, b;
	const char *args[] = {CLOCK, "--fault-seed", "77", "--faults", "http5xx=0.3&only=status", NULL};
	itest_sim_start(&a, args);
	itest_sim_start(&b, args);
	char *body = NULL;
	const char *status =
		"/B552584/EvCharger/getChargerStatus?serviceKey=test-key&dataType=JSON&numOfRows=1";
	char seq_a[201] = {0}, seq_b[201] = {0};
	long failures = 0;
	for (int i = 0; i < 200; i++) {
		long ca = itest_sim_get(&a, status, &body, NULL);
		free(body);
		long cb = itest_sim_get(&b, status, &body, NULL);
		free(body);
		seq_a[i] = ca == 200 ? '.' : 'x';
		seq_b[i] = cb == 200 ? '.' : 'x';
		failures += ca != 200;
	}
	ck_assert_str_eq(seq_a, seq_b); /* same fault seed, same sequence */
	double sigma = sqrt(200 * 0.3 * 0.7);
	ck_assert_msg(fabs((double)failures - 60) < 4 * sigma, "%ld failures of 200", failures);
	ck_assert_int_eq(stat_counter(&a, "faults", "http5xx", NULL), failures);
	for (int i = 0; i < 20; i++) { /* only=status: info is untouched */
		ck_assert_int_eq(itest_sim_get(&a, INFO "&numOfRows=1", &body, NULL), 200);
		free(body);
	}
	/* switched off at run time */
	itest_sim_admin(&a, "faults?http5xx=off");
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(itest_sim_get(&a, status, &body, NULL), 200);
		free(body);
	}
	/* bad admin input is refused and changes nothing */
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/__admin/faults?http5xx=1&bogus=2", a.port);
	ck_assert_int_eq(itest_http_get(url, &body, NULL), 400);
	free(body);
	ck_assert_int_eq(itest_sim_get(&a, status, &body, NULL), 200);
	free(body);
	itest_sim_stop(&a);
	itest_sim_stop(&b);
}
END_TEST

/* ---- malformed records (docs/simulator.md "Malformed records") ---- */

static uint64_t mix(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t H(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
	return mix(mix(mix(seed ^ tag) ^ a) ^ b);
}

/* kinds in documented order; invalid_utf8 (6) is checked on raw bytes */
static int expected_defect(uint64_t seed, uint64_t slot, double rate, const int *kinds, int nkinds)
{
	if (H(seed, 22, slot, 0) % 1000000 >= (uint64_t)llround(rate * 1e6))
		return -1;
	return kinds[H(seed, 23, slot, 0) % (uint64_t)nkinds];
}

static const char *field(yajl_val item, const char *name, yajl_type type)
{
	const char *p[] = {name, NULL};
	yajl_val v = yajl_tree_get(item, p, yajl_t_any);
	if (!v)
		return NULL;
	if (type == yajl_t_number)
		return YAJL_IS_NUMBER(v) ? YAJL_GET_NUMBER(v) : NULL;
	return YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

static bool valid_ts(const char *s)
{
	if (!s || strlen(s) != 14)
		return false;
	for (int i = 0; i < 14; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	int mo = (s[4] - '0') * 10 + (s[5] - '0');
	return mo >= 1 && mo <= 12;
}

START_TEST(malformed_records_are_the_documented_ones)
{
	struct itest_sim s;
	const char *args[] = {CLOCK, "--seed", "5", "--chargers", "10000", NULL};
	itest_sim_start(&s, args);
	static const int kinds[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10};
	itest_sim_admin(&s, "faults?malformed=0.05&malformed_kinds=empty_coords,zero_coords,"
		  "swapped_coords,bad_date,unknown_code,overlong,json_numbers,padded,escapes,"
		  "absent_fields");
	long expected = 0, seen_kind[11] = {0};
	for (int page = 1; page <= 2; page++) {
		char path[256], *body = NULL;
		snprintf(path, sizeof(path), INFO "&pageNo=%d&numOfRows=9999", page);
		ck_assert_int_eq(itest_sim_get(&s, path, &body, NULL), 200);
		yajl_val v = parse_or_null(body);
		ck_assert_ptr_nonnull(v);
		const char *ip[] = {"items", "item", NULL};
		yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
		for (size_t i = 0; i < YAJL_GET_ARRAY(items)->len; i++) {
			uint64_t slot = (uint64_t)(page - 1) * 9999 + i;
			yajl_val it = YAJL_GET_ARRAY(items)->values[i];
			int d = expected_defect(5, slot, 0.05, kinds, 10);
			const char *lat = field(it, "lat", yajl_t_string),
				   *lng = field(it, "lng", yajl_t_string);
			const char *nm = field(it, "statNm", yajl_t_string);
			if (d < 0) { /* clean records stay clean */
				ck_assert(lat && atof(lat) > 33 && atof(lat) < 39 && lng &&
					  atof(lng) > 124);
				ck_assert(valid_ts(field(it, "statUpdDt", yajl_t_string)));
				ck_assert(nm && nm[0] != ' ' && strlen(nm) < 200);
				ck_assert_ptr_nonnull(field(it, "note", yajl_t_string));
				continue;
			}
			expected++;
			seen_kind[d]++;
			switch (d) {
			case 0: ck_assert(lat && !lat[0] && lng && !lng[0]); break;
			case 1:
				ck_assert(lat && lng && !strcmp(lat, "0") && !strcmp(lng, "0"));
				break;
			case 2: ck_assert(lat && lng && atof(lat) > 124 && atof(lng) < 39); break;
			case 3: ck_assert(!valid_ts(field(it, "statUpdDt", yajl_t_string))); break;
			case 4:
				ck_assert_str_eq(field(it, "chgerType", yajl_t_string), "99");
				break;
			case 5: ck_assert(nm && strlen(nm) > 3000); break;
			case 7:
				ck_assert(field(it, "lat", yajl_t_number) &&
					  field(it, "lng", yajl_t_number));
				break;
			case 8:
				ck_assert(nm && !strncmp(nm, "  ", 2) && nm[strlen(nm) - 1] == ' ');
				break;
			case 9: ck_assert(nm && strstr(nm, " \"충전\" \\ \xF0\x9F\x94\x8C")); break;
			case 10:
				ck_assert(!field(it, "note", yajl_t_string) &&
					  !field(it, "floorType", yajl_t_string));
				ck_assert_ptr_nonnull(field(it, "statId", yajl_t_string));
				break;
			default: ck_abort();
			}
		}
		yajl_tree_free(v);
		free(body);
	}
	ck_assert_msg(expected > 350 && expected < 650, "%ld malformed of 10000", expected);
	for (int k = 0; k < 10; k++)
		ck_assert_int_gt(seen_kind[kinds[k]], 0);
	ck_assert_int_eq(stat_counter(&s, "malformed_records", NULL, NULL), expected);
	/* invalid UTF-8: raw bytes, exactly in the selected records */
	itest_sim_admin(&s, "faults?malformed=0.01&malformed_kinds=invalid_utf8");
	long want = 0, got = 0;
	static const int only6[] = {6};
	for (uint64_t slot = 0; slot < 10000; slot++)
		want += expected_defect(5, slot, 0.01, only6, 1) == 6;
	for (int page = 1; page <= 2; page++) {
		char path[256], *body = NULL;
		size_t len;
		snprintf(path, sizeof(path), INFO "&pageNo=%d&numOfRows=9999", page);
		ck_assert_int_eq(itest_sim_get(&s, path, &body, &len), 200);
		for (size_t i = 0; i + 3 <= len; i++)
			got += memcmp(body + i, "\xC3\x28\xFF", 3) == 0;
		free(body);
	}
	ck_assert_int_gt(want, 50);
	ck_assert_int_eq(got, want);
	itest_sim_stop(&s);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("upstream-sim faults");
	TCase *tc = tcase_create("faults");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unknown_and_missing_keys);
	tcase_add_test(tc, quota_per_key);
	tcase_add_test(tc, latency);
	tcase_add_test(tc, http_5xx);
	tcase_add_test(tc, reset_mid_body);
	tcase_add_test(tc, truncated_json);
	tcase_add_test(tc, xml_error_in_place_of_a_page);
	tcase_add_test(tc, drift_shifts_pages);
	tcase_add_test(tc, total_mismatch);
	tcase_add_test(tc, xml_converted_shapes);
	tcase_add_test(tc, empty_body_and_service_error);
	tcase_add_test(tc, rates_and_scope);
	tcase_add_test(tc, malformed_records_are_the_documented_ones);
	suite_add_tcase(s, tc);
	return s;
}
