/* log: redaction of URLs, conninfo and registered secrets; JSON and text
 * lines (read back from a temp file standing in for stderr, JSON parsed
 * with yajl); levels; per-thread context; concurrent writers. */
#include "testmain.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "buf.h"
#include "log.h"

/* ---- stderr capture ---- */

struct capture {
	int saved_fd;
	char path[256];
};

static void capture_start(struct capture *c)
{
	const char *tmp = getenv("TEST_TMPDIR"); /* run.sh's, removed after the run */
	snprintf(c->path, sizeof(c->path), "%s/test_log.XXXXXX", tmp ? tmp : "/tmp");
	int fd = mkstemp(c->path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_APPEND), 0);
	c->saved_fd = dup(STDERR_FILENO);
	ck_assert_int_ge(c->saved_fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Restore stderr; return what was written (free it). */
static char *capture_end(struct capture *c)
{
	ck_assert_int_eq(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
	close(c->saved_fd);
	FILE *f = fopen(c->path, "rb");
	ck_assert_ptr_nonnull(f);
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	unlink(c->path);
	buf_putc(&b, '\0');
	b.len--;
	char *text = buf_detach(&b, NULL);
	ck_assert_ptr_nonnull(text);
	return text;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Parse one JSON log line; the caller frees with yajl_tree_free. */
static yajl_val parse_line(const char *line)
{
	char err[256];
	yajl_val v = yajl_tree_parse(line, err, sizeof(err));
	ck_assert_msg(v != NULL, "not JSON (%s): %s", err, line);
	ck_assert(YAJL_IS_OBJECT(v));
	return v;
}

static const char *field(yajl_val obj, const char *name)
{
	const char *path[] = {name, NULL};
	yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
	return v ? YAJL_GET_STRING(v) : NULL;
}

static void setup_json(void)
{
	log_setup("apid", LOG_INFO);
	log_set_json(true);
	log_clear_secrets();
	log_ctx_clear();
}

/* ---- redaction ---- */

static const struct {
	const char *in;
	const char *out;
} redact_cases[] = {
	/* upstream service key, anywhere in the query, any case, encoded */
	{"GET https://apis.data.go.kr/B552584/EvCharger/getChargerInfo?serviceKey=abc%2Bdef%3D%3D&pageNo=1",
	 "GET https://apis.data.go.kr/B552584/EvCharger/getChargerInfo?serviceKey=***&pageNo=1"},
	{"/getChargerStatus?pageNo=2&numOfRows=9999&SERVICEKEY=xyz123&period=5",
	 "/getChargerStatus?pageNo=2&numOfRows=9999&SERVICEKEY=***&period=5"},
	{"?servicekey=k1#frag", "?servicekey=***#frag"},
	{"url=\"http://sim/x?serviceKey=k2\" done", "url=\"http://sim/x?serviceKey=***\" done"},
	{"serviceKey=", "serviceKey=***"},
	/* user:password@ in URLs */
	{"postgresql://app:s3cr3t@db:5432/ev?sslmode=require",
	 "postgresql://app:***@db:5432/ev?sslmode=require"},
	{"postgres://app:p@ss/w0rd@db/ev", "postgres://app:***@db/ev"},
	{"postgresql://app@db/ev", "postgresql://app@db/ev"},
	{"redis://:hunter22@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"},
	{"redis://default:hunter22@cache:6379", "redis://default:***@cache:6379"},
	{"redis://hunter22@cache", "redis://***@cache"},
	{"rediss://u:pw@h", "rediss://u:***@h"},
	{"https://user:pw@example.com/path", "https://user:***@example.com/path"},
	{"connect to http://host:8080/x failed", "connect to http://host:8080/x failed"},
	{"two: redis://:a1b2@h1 and postgresql://u:c3d4@h2/db",
	 "two: redis://:***@h1 and postgresql://u:***@h2/db"},
	/* libpq conninfo */
	{"host=db user=app password=s3cr3t dbname=ev", "host=db user=app password=*** dbname=ev"},
	{"password='s3 cr\\'et' host=db", "password=*** host=db"},
	{"PASSWORD = hunter2 port=5432", "PASSWORD = *** port=5432"},
	{"postgresql://db/ev?user=app&password=s3cr3t", "postgresql://db/ev?user=app&password=***"},
	{"password authentication failed for user \"app\"",
	 "password authentication failed for user \"app\""},
	/* nothing to hide */
	{"", ""},
	{"plain text, 강남 😀", "plain text, 강남 😀"},
	{"ratio 3:2 at 10://", "ratio 3:2 at 10://"},
};

START_TEST(redact_table)
{
	log_clear_secrets();
	char out[512];
	ck_assert_ptr_eq(log_redact(redact_cases[_i].in, out, sizeof(out)), out);
	ck_assert_str_eq(out, redact_cases[_i].out);
}
END_TEST

START_TEST(redact_registered_secrets)
{
	log_clear_secrets();
	log_add_secret("Zx9+Key/Value==");
	log_add_secret("abc"); /* too short: ignored */
	log_add_secret(NULL);
	log_add_secret("tok-1234");
	log_add_secret("tok-1234-long"); /* longest match wins */
	char out[256];
	log_redact("key Zx9+Key/Value== rejected", out, sizeof(out));
	ck_assert_str_eq(out, "key *** rejected");
	/* the same key percent-encoded, any hex case */
	log_redact("q=Zx9%2BKey%2FValue%3D%3D&x=1", out, sizeof(out));
	ck_assert_str_eq(out, "q=***&x=1");
	log_redact("q=Zx9%2bKey%2fValue%3d%3d", out, sizeof(out));
	ck_assert_str_eq(out, "q=***");
	log_redact("abc tok-1234-long tok-1234 tok-123", out, sizeof(out));
	ck_assert_str_eq(out, "abc *** *** tok-123");
	/* inside a user name, where URL rules keep the text */
	log_redact("postgresql://tok-1234@db/ev", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://***@db/ev");
	log_clear_secrets();
	log_redact("tok-1234", out, sizeof(out));
	ck_assert_str_eq(out, "tok-1234");
}
END_TEST

START_TEST(redact_truncates_safely)
{
	log_clear_secrets();
	char out[12];
	log_redact("password=abcdefghijkl", out, sizeof(out));
	ck_assert_str_eq(out, "password=**");
	char small[6];
	log_redact("강남역", small, sizeof(small)); /* 9 bytes: cut at a character */
	ck_assert_str_eq(small, "강");
	char one[1] = {'x'};
	log_redact("anything", one, sizeof(one));
	ck_assert_int_eq(one[0], '\0');
	ck_assert_ptr_null(log_redact("x", NULL, 0));
	char out2[8];
	log_redact(NULL, out2, sizeof(out2));
	ck_assert_str_eq(out2, "");
}
END_TEST

/* ---- output ---- */

START_TEST(json_line_fields)
{
	setup_json();
	log_ctx_set("run", "42");
	log_ctx_set("page", "7");
	struct capture c;
	capture_start(&c);
	log_info("hello %d", 5);
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 1);
	yajl_val v = parse_line(text);
	ck_assert_str_eq(field(v, "level"), "info");
	ck_assert_str_eq(field(v, "role"), "apid");
	ck_assert_str_eq(field(v, "msg"), "hello 5");
	ck_assert_str_eq(field(v, "run"), "42");
	ck_assert_str_eq(field(v, "page"), "7");
	const char *ts = field(v, "ts");
	ck_assert_ptr_nonnull(ts);
	/* 2024-01-02T03:04:05.678Z */
	ck_assert_uint_eq(strlen(ts), 24);
	ck_assert_int_eq(ts[4], '-');
	ck_assert_int_eq(ts[10], 'T');
	ck_assert_int_eq(ts[19], '.');
	ck_assert_int_eq(ts[23], 'Z');
	ck_assert_int_eq(strncmp(ts, "20", 2), 0);
	/* key order: ts, level, role, msg, then the context */
	ck_assert_int_eq(strncmp(text, "{\"ts\":\"", 7), 0);
	ck_assert_ptr_nonnull(strstr(text, "\",\"level\":\"info\",\"role\":\"apid\",\"msg\":\"hello 5\","
					   "\"run\":\"42\",\"page\":\"7\"}\n"));
	yajl_tree_free(v);
	free(text);
}
END_TEST

START_TEST(json_line_escaping)
{
	setup_json();
	struct capture c;
	capture_start(&c);
	log_warn("q=\"%s\" nl=\n tab=\t ctl=\x01 bad=\xff\xfe emoji=\xf0\x9f\x98\x80 back=\\ end",
		 "강남");
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 1); /* the newline is escaped */
	yajl_val v = parse_line(text);
	ck_assert_str_eq(field(v, "level"), "warn");
	ck_assert_str_eq(field(v, "msg"), "q=\"강남\" nl=\n tab=\t ctl=\x01 bad=\xef\xbf\xbd\xef\xbf\xbd "
					  "emoji=\xf0\x9f\x98\x80 back=\\ end");
	ck_assert_ptr_nonnull(strstr(text, "ctl=\\u0001"));
	ck_assert_ptr_nonnull(strstr(text, "emoji=\xf0\x9f\x98\x80")); /* raw, not \ud83d */
	yajl_tree_free(v);
	free(text);
}
END_TEST

START_TEST(secrets_never_printed)
{
	setup_json();
	log_set_level(LOG_DEBUG);
	log_add_secret("S3cr3tKey+/=");
	log_ctx_set("url", "redis://:ctxpass@h"); /* context values are redacted too */
	struct capture c;
	capture_start(&c);
	log_error("fetch https://apis.data.go.kr/x?serviceKey=%s&pageNo=1 failed", "S3cr3tKey%2B%2F%3D");
	log_warn("key %s quota spent", "S3cr3tKey+/=");
	log_info("db postgresql://app:dbpass1@db/ev, conninfo host=db password=dbpass2");
	log_debug("redis://:redispass@127.0.0.1:6379/0");
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 4);
	static const char *const fakes[] = {"S3cr3tKey", "dbpass1", "dbpass2", "redispass", "ctxpass"};
	for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++)
		ck_assert_msg(strstr(text, fakes[i]) == NULL, "%s leaked: %s", fakes[i], text);
	ck_assert_ptr_nonnull(strstr(text, "serviceKey=***&pageNo=1"));
	ck_assert_ptr_nonnull(strstr(text, "key *** quota spent"));
	ck_assert_ptr_nonnull(strstr(text, "postgresql://app:***@db/ev"));
	ck_assert_ptr_nonnull(strstr(text, "password=***"));
	ck_assert_ptr_nonnull(strstr(text, "\"url\":\"redis://:***@h\""));
	free(text);
}
END_TEST

START_TEST(levels_filter_before_formatting)
{
	setup_json();
	log_set_level(LOG_WARN);
	ck_assert(log_enabled(LOG_ERROR));
	ck_assert(log_enabled(LOG_WARN));
	ck_assert(!log_enabled(LOG_INFO));
	ck_assert(!log_enabled(LOG_DEBUG));
	struct capture c;
	capture_start(&c);
	/* formatting this would dereference address 1 and crash the test */
	log_debug("%s", (const char *)1);
	log_info("%s", (const char *)1);
	log_warn("shown %d", 1);
	log_error("shown %d", 2);
	log_set_level(LOG_DEBUG);
	log_debug("shown %d", 3);
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 3);
	ck_assert_ptr_nonnull(strstr(text, "\"level\":\"warn\",\"role\":\"apid\",\"msg\":\"shown 1\""));
	ck_assert_ptr_nonnull(strstr(text, "\"level\":\"error\",\"role\":\"apid\",\"msg\":\"shown 2\""));
	ck_assert_ptr_nonnull(strstr(text, "\"level\":\"debug\",\"role\":\"apid\",\"msg\":\"shown 3\""));
	free(text);
}
END_TEST

START_TEST(level_names_parse)
{
	static const struct {
		const char *text;
		bool ok;
		enum log_level level;
	} cases[] = {
		{"error", true, LOG_ERROR}, {"WARN", true, LOG_WARN},   {"warning", true, LOG_WARN},
		{"Info", true, LOG_INFO},   {"debug", true, LOG_DEBUG}, {"trace", false, LOG_ERROR},
		{"", false, LOG_ERROR},     {"info ", false, LOG_ERROR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum log_level level = LOG_ERROR;
		ck_assert_msg(log_level_parse(cases[i].text, &level) == cases[i].ok, "%s",
			      cases[i].text);
		if (cases[i].ok)
			ck_assert_int_eq(level, cases[i].level);
	}
	enum log_level level;
	ck_assert(!log_level_parse(NULL, &level));
}
END_TEST

START_TEST(text_format_one_line)
{
	log_setup("ingestd", LOG_INFO);
	log_set_json(false);
	log_clear_secrets();
	log_ctx_clear();
	log_ctx_set("run", "7");
	struct capture c;
	capture_start(&c);
	log_error("line one\nline two\x01 password=hunter22 bad\xff");
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 1);
	/* 2024-01-02T03:04:05.678Z ERROR ingestd run=7: ... */
	ck_assert_uint_gt(strlen(text), 25);
	ck_assert_int_eq(text[10], 'T');
	ck_assert_int_eq(text[23], 'Z');
	ck_assert_str_eq(text + 24, " ERROR ingestd run=7: line one\\nline two\\x01 password=*** "
				    "bad\xef\xbf\xbd\n");
	free(text);
}
END_TEST

static void *log_from_thread(void *arg)
{
	(void)arg;
	log_info("from thread, no context");
	log_ctx_set("req", "r-1");
	log_info("from thread, with context");
	return NULL;
}

START_TEST(context_is_per_thread)
{
	setup_json();
	log_ctx_set("run", "42");
	log_ctx_set("run", "43");      /* replaces */
	log_ctx_set("msg", "ignored"); /* reserved keys cannot shadow fields */
	log_ctx_set("gone", "x");
	log_ctx_set("gone", NULL);     /* removes */
	struct capture c;
	capture_start(&c);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, log_from_thread, NULL), 0);
	pthread_join(t, NULL);
	log_info("main");
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 3);
	char *second = strchr(text, '\n') + 1;
	char *third = strchr(second, '\n') + 1;
	const char *first_tail = "\"msg\":\"from thread, no context\"}\n";
	ck_assert_int_eq(strncmp(strstr(text, "\"msg\""), first_tail, strlen(first_tail)), 0);
	ck_assert_ptr_nonnull(strstr(second, "\"msg\":\"from thread, with context\",\"req\":\"r-1\"}\n"));
	ck_assert_ptr_nonnull(strstr(third, "\"msg\":\"main\",\"run\":\"43\"}\n"));
	ck_assert_ptr_null(strstr(text, "gone"));
	ck_assert_ptr_null(strstr(text, "ignored"));
	free(text);
}
END_TEST

START_TEST(long_messages)
{
	setup_json();
	log_add_secret("SECRETSECRET");
	/* longer than the stack buffer, with the secret across its 1 KiB edge */
	struct buf msg = BUF_INIT;
	for (int i = 0; i < 1020; i++)
		buf_putc(&msg, 'a');
	buf_puts(&msg, "SECRETSECRET tail");
	/* and one far past the limit */
	struct buf huge = BUF_INIT;
	for (int i = 0; i < 40000; i++)
		buf_putc(&huge, (char)('a' + i % 26));
	struct capture c;
	capture_start(&c);
	log_info("%s", msg.data);
	log_info("%s", huge.data);
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), 2);
	ck_assert_ptr_null(strstr(text, "SECRET"));
	ck_assert_ptr_nonnull(strstr(text, "aaaa*** tail\""));
	char *second = strchr(text, '\n') + 1;
	yajl_val v = parse_line(second);
	const char *m = field(v, "msg");
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(strlen(m), 16 * 1024 + strlen(" [truncated]"));
	ck_assert_str_eq(m + 16 * 1024, " [truncated]");
	yajl_tree_free(v);
	free(text);
	buf_free(&msg);
	buf_free(&huge);
}
END_TEST

START_TEST(errno_preserved)
{
	setup_json();
	struct capture c;
	capture_start(&c);
	errno = ECONNREFUSED;
	log_info("connect: %s", strerror(errno));
	ck_assert_int_eq(errno, ECONNREFUSED);
	char *text = capture_end(&c);
	ck_assert_ptr_nonnull(strstr(text, "Connection refused"));
	free(text);
}
END_TEST

/* Four threads log 500 lines of ~3 KB each: every line arrives whole. */
#define WRITERS 4
#define LINES 500

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	char fill[3000];
	memset(fill, 'a' + id, sizeof(fill) - 1);
	fill[sizeof(fill) - 1] = '\0';
	char value[16];
	snprintf(value, sizeof(value), "w%d", id);
	log_ctx_set("writer", value);
	for (int i = 0; i < LINES; i++)
		log_info("writer %d line %d %s", id, i, fill);
	return NULL;
}

START_TEST(concurrent_lines_whole)
{
	setup_json();
	struct capture c;
	capture_start(&c);
	pthread_t threads[WRITERS];
	for (int i = 0; i < WRITERS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(threads[i], NULL);
	char *text = capture_end(&c);
	ck_assert_uint_eq(count_lines(text), WRITERS * LINES);
	int seen[WRITERS] = {0};
	char *line = text;
	while (*line) {
		char *end = strchr(line, '\n');
		ck_assert_ptr_nonnull(end);
		*end = '\0';
		yajl_val v = parse_line(line);
		int id, n;
		const char *m = field(v, "msg");
		ck_assert_ptr_nonnull(m);
		ck_assert_int_eq(sscanf(m, "writer %d line %d", &id, &n), 2);
		ck_assert(id >= 0 && id < WRITERS);
		ck_assert_int_eq(n, seen[id]); /* each thread's lines in order */
		seen[id]++;
		const char *fill = strrchr(m, ' ') + 1;
		ck_assert_uint_eq(strspn(fill, (char[]){(char)('a' + id), 0}), 2999);
		char want[16];
		snprintf(want, sizeof(want), "w%d", id);
		ck_assert_str_eq(field(v, "writer"), want);
		yajl_tree_free(v);
		line = end + 1;
	}
	for (int i = 0; i < WRITERS; i++)
		ck_assert_int_eq(seen[i], LINES);
	free(text);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("redact");
	tcase_add_loop_test(tc, redact_table, 0, sizeof(redact_cases) / sizeof(redact_cases[0]));
	tcase_add_test(tc, redact_registered_secrets);
	tcase_add_test(tc, redact_truncates_safely);
	suite_add_tcase(s, tc);
	tc = tcase_create("output");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, json_line_fields);
	tcase_add_test(tc, json_line_escaping);
	tcase_add_test(tc, secrets_never_printed);
	tcase_add_test(tc, levels_filter_before_formatting);
	tcase_add_test(tc, level_names_parse);
	tcase_add_test(tc, text_format_one_line);
	tcase_add_test(tc, context_is_per_thread);
	tcase_add_test(tc, long_messages);
	tcase_add_test(tc, errno_preserved);
	tcase_add_test(tc, concurrent_lines_whole);
	suite_add_tcase(s, tc);
	return s;
}
