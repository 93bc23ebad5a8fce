/* rds_url_parse: every accepted REDIS_URL form, and refusals that name the
 * problem without quoting the password. */
#include "testmain.h"

#include <string.h>

#include "rds.h"

static const struct {
	const char *url;
	bool is_unix;
	const char *host;
	int port;
	const char *path;
	const char *user;
	const char *password; /* "" = none */
	int db;
} good[] = {
	{ "redis://localhost", false, "localhost", 6379, "", "", "", 0 },
	{ "redis://127.0.0.1:6380/2", false, "127.0.0.1", 6380, "", "", "", 2 },
	{ "redis://host/", false, "host", 6379, "", "", "", 0 },
	{ "redis://host:1/15", false, "host", 1, "", "", "", 15 },
	{ "redis://:s3cret@cache.internal:6379/15", false, "cache.internal", 6379, "", "", "s3cret", 15 },
	{ "redis://alice:s3cret@host/3", false, "host", 6379, "", "alice", "s3cret", 3 },
	{ "redis://:p%40ss%3Aw%2Frd@h", false, "h", 6379, "", "", "p@ss:w/rd", 0 },
	{ "redis://:p@ss@h:7000", false, "h", 7000, "", "", "p@ss", 0 },
	{ "redis://:@host", false, "host", 6379, "", "", "", 0 },
	{ "redis://[::1]:6390/1", false, "::1", 6390, "", "", "", 1 },
	{ "redis://[::1]", false, "::1", 6379, "", "", "", 0 },
	{ "redis://host:6379/0?password=pw", false, "host", 6379, "", "", "pw", 0 },
	{ "redis://host?db=7", false, "host", 6379, "", "", "", 7 },
	{ "REDIS://Host:6379", false, "Host", 6379, "", "", "", 0 },
	{ "redis://h/1000000", false, "h", 6379, "", "", "", 1000000 },
	{ "unix:///var/run/redis/redis.sock", true, "", 0, "/var/run/redis/redis.sock", "", "", 0 },
	{ "unix:///tmp/r.sock?db=4", true, "", 0, "/tmp/r.sock", "", "", 4 },
	{ "unix:///tmp/r.sock?db=4&password=pw", true, "", 0, "/tmp/r.sock", "", "pw", 4 },
	{ "unix:///tmp/r.sock?user=bob&password=pw", true, "", 0, "/tmp/r.sock", "bob", "pw", 0 },
	{ "unix://:pw@/tmp/r.sock?db=1", true, "", 0, "/tmp/r.sock", "", "pw", 1 },
	{ "unix://bob:pw@/tmp/r.sock", true, "", 0, "/tmp/r.sock", "bob", "pw", 0 },
};

START_TEST(accepted)
{
	struct rds_url u;
	char err[256] = "";
	ck_assert_msg(rds_url_parse(good[_i].url, &u, err, sizeof(err)), "%s: %s", good[_i].url, err);
	ck_assert_int_eq(u.is_unix, good[_i].is_unix);
	ck_assert_str_eq(u.host, good[_i].host);
	if (!u.is_unix)
		ck_assert_int_eq(u.port, good[_i].port);
	ck_assert_str_eq(u.path, good[_i].path);
	ck_assert_str_eq(u.user, good[_i].user);
	ck_assert_str_eq(u.password, good[_i].password);
	ck_assert_int_eq(u.has_password, good[_i].password[0] != '\0');
	ck_assert_int_eq(u.db, good[_i].db);
}
END_TEST

/* Each refusal's message holds `want`; none holds the password SECRETPW. */
static const struct {
	const char *url;
	const char *want;
} bad[] = {
	{ "", "empty" },
	{ "http://host", "unknown scheme 'http'" },
	{ "localhost:6379", "unknown scheme" },
	{ "rediss://:SECRETPW@host", "TLS" },
	{ "redis://", "host is missing" },
	{ "redis://:6379", "host is missing" },
	{ "redis://:SECRETPW@", "host is missing" },
	{ "redis://h:0", "port '0'" },
	{ "redis://h:70000", "port '70000'" },
	{ "redis://h:abc/1", "port 'abc'" },
	{ "redis://h:", "port ''" },
	{ "redis://h/abc", "db 'abc'" },
	{ "redis://h/-1", "db '-1'" },
	{ "redis://h/1000001", "db '1000001'" },
	{ "redis://h/1/2", "db '1/2'" },
	{ "redis://SECRETPW@h", "credentials need a ':'" },
	{ "redis://:SECRETPW%zz@h", "percent-escape in the password" },
	{ "redis://:SECRETPW%4@h", "percent-escape in the password" },
	{ "redis://:SECRETPW%00@h", "percent-escape in the password" },
	{ "redis://user:@h", "user name needs a password" },
	{ "redis://h?foo=1", "unknown query parameter 'foo'" },
	{ "redis://h?db", "needs a value" },
	{ "redis://h/1?db=2", "db given twice" },
	{ "redis://:SECRETPW@h?password=x", "password given twice" },
	{ "redis://[::1", "without ']'" },
	{ "redis://[::1]x", "after ']'" },
	{ "redis://h x", "space or control" },
	{ "redis://:SECRET\tPW@h", "space or control" },
	{ "redis://h#frag", "'#'" },
	{ "unix://relative/path", "must be absolute" },
	{ "unix://", "must be absolute" },
	{ "unix:///", "path is missing" },
	{ "unix:///tmp/r.sock?db=x", "db 'x'" },
	{ "unix:///tmp/r.sock?user=bob", "user name needs a password" },
	{ "unix://SECRETPW@/tmp/r.sock", "credentials need a ':'" },
	{ "unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	  "longer than 107" },
};

START_TEST(refused)
{
	struct rds_url u;
	char err[256] = "";
	ck_assert_msg(!rds_url_parse(bad[_i].url, &u, err, sizeof(err)), "%s: accepted", bad[_i].url);
	ck_assert_msg(strstr(err, bad[_i].want), "%s: error '%s' lacks '%s'", bad[_i].url, err,
		      bad[_i].want);
	ck_assert_msg(!strstr(err, "SECRETPW") && !strstr(err, "SECRET"), "%s: error leaks: %s",
		      bad[_i].url, err);
	/* Nothing half-parsed (a password) is left behind. */
	ck_assert_str_eq(u.password, "");
}
END_TEST

START_TEST(describe_hides_credentials)
{
	struct rds_url u;
	char err[256], out[300];
	ck_assert(rds_url_parse("redis://alice:SECRETPW@10.0.0.5:6390/4", &u, err, sizeof(err)));
	ck_assert_str_eq(rds_url_describe(&u, out, sizeof(out)), "redis://10.0.0.5:6390/4");
	ck_assert(rds_url_parse("redis://[::1]:6379", &u, err, sizeof(err)));
	ck_assert_str_eq(rds_url_describe(&u, out, sizeof(out)), "redis://[::1]:6379/0");
	ck_assert(rds_url_parse("unix://:SECRETPW@/run/redis.sock?db=2", &u, err, sizeof(err)));
	ck_assert_str_eq(rds_url_describe(&u, out, sizeof(out)), "unix:///run/redis.sock?db=2");
}
END_TEST

/* A tiny error buffer is filled, not overrun. */
START_TEST(small_error_buffer)
{
	struct rds_url u;
	char err[8];
	memset(err, 'x', sizeof(err));
	ck_assert(!rds_url_parse("http://h", &u, err, sizeof(err)));
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("rds_url");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, accepted, 0, (int)(sizeof(good) / sizeof(good[0])));
	tcase_add_loop_test(tc, refused, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, describe_hides_credentials);
	tcase_add_test(tc, small_error_buffer);
	suite_add_tcase(s, tc);
	return s;
}
