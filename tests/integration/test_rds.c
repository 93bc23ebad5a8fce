/* rds against real Redis: URL connect with a db index, AUTH (password and
 * ACL user) on a private server, Unix sockets, pipelined batches with every
 * reply checked, an error reply mid-batch, a server lost mid-batch. */
#include "testmain.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"
#include "rds.h"

/* TEST_REDIS_URL ("redis://127.0.0.1:PORT/0") with another db index. */
static char *shared_url_with_db(int db)
{
	const char *base = itest_env("TEST_REDIS_URL");
	const char *slash = strrchr(base, '/');
	ck_assert_ptr_nonnull(slash);
	char *url = NULL;
	ck_assert_int_ge(asprintf(&url, "%.*s/%d", (int)(slash - base), base, db), 0);
	return url;
}

static redisReply *must(struct rds *r, int argc, const char **argv)
{
	char err[256];
	redisReply *reply = rds_command(r, argc, argv, NULL, err, sizeof(err));
	ck_assert_msg(reply, "%s", err);
	return reply;
}

static void set_key(struct rds *r, const char *key, const char *value)
{
	freeReplyObject(must(r, 3, (const char *[]){"SET", key, value}));
}

START_TEST(connect_selects_db)
{
	char err[256];
	char key[64];
	snprintf(key, sizeof(key), "rds:test:%d", (int)getpid());
	char *url5 = shared_url_with_db(5);
	char *url0 = shared_url_with_db(0);
	struct rds *r5 = rds_new(url5, 2000, err, sizeof(err));
	ck_assert_msg(r5, "%s", err);
	struct rds *r0 = rds_new(url0, 2000, err, sizeof(err));
	ck_assert_msg(r0, "%s", err);

	set_key(r5, key, "in db 5");
	redisReply *reply = must(r0, 2, (const char *[]){"EXISTS", key});
	ck_assert_int_eq(reply->integer, 0);
	freeReplyObject(reply);
	reply = must(r5, 2, (const char *[]){"GET", key});
	ck_assert_str_eq(reply->str, "in db 5");
	freeReplyObject(reply);
	reply = must(r5, 2, (const char *[]){"CLIENT", "INFO"});
	ck_assert_msg(strstr(reply->str, " db=5 "), "%s", reply->str);
	freeReplyObject(reply);
	freeReplyObject(must(r5, 2, (const char *[]){"DEL", key}));

	rds_free(r5);
	rds_free(r0);
	rds_free(NULL);
	free(url5);
	free(url0);
}
END_TEST

START_TEST(connect_failures_name_the_problem)
{
	char err[256], url[128];
	snprintf(url, sizeof(url), "redis://:SECRETPW@127.0.0.1:%d/0", itest_free_port());
	ck_assert_ptr_null(rds_new(url, 1000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "Connection refused") && strstr(err, "127.0.0.1"), "%s", err);
	ck_assert_msg(!strstr(err, "SECRETPW"), "%s", err);

	ck_assert_ptr_null(rds_new("redis://h:99999", 1000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "port"), "%s", err);

	/* A db index the server does not have. */
	char *big_db = shared_url_with_db(999);
	ck_assert_ptr_null(rds_new(big_db, 1000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "SELECT") && strstr(err, "DB index is out of range"), "%s", err);
	free(big_db);
}
END_TEST

START_TEST(auth_on_private_server)
{
	struct itest_store store = {0};
	ck_assert(itest_redis_start(&store));
	char err[256];
	struct rds *admin = rds_new(store.url, 2000, err, sizeof(err));
	ck_assert_msg(admin, "%s", err);
	freeReplyObject(must(admin, 4, (const char *[]){"CONFIG", "SET", "requirepass", "s3cret pw"}));
	freeReplyObject(must(admin, 8,
			     (const char *[]){"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*",
					      "+@all", "resetchannels"}));
	rds_free(admin);

	char url[256];
	/* No password: the PING says NOAUTH. */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", store.port);
	ck_assert_ptr_null(rds_new(url, 2000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "NOAUTH"), "%s", err);
	/* No password but a db: the SELECT says NOAUTH. */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", store.port);
	ck_assert_ptr_null(rds_new(url, 2000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "NOAUTH"), "%s", err);
	/* Wrong password: refused, and the message does not carry it. */
	snprintf(url, sizeof(url), "redis://:WRONGPW@127.0.0.1:%d/0", store.port);
	ck_assert_ptr_null(rds_new(url, 2000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "authentication failed") && strstr(err, "WRONGPASS"), "%s", err);
	ck_assert_msg(!strstr(err, "WRONGPW"), "%s", err);
	/* Right password (percent-encoded space), with a db. */
	snprintf(url, sizeof(url), "redis://:s3cret%%20pw@127.0.0.1:%d/2", store.port);
	struct rds *r = rds_new(url, 2000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	set_key(r, "k", "v");
	redisReply *reply = must(r, 2, (const char *[]){"CLIENT", "INFO"});
	ck_assert_msg(strstr(reply->str, " db=2 "), "%s", reply->str);
	freeReplyObject(reply);
	rds_free(r);
	/* An ACL user. */
	snprintf(url, sizeof(url), "redis://alice:alice-pw@127.0.0.1:%d/1", store.port);
	r = rds_new(url, 2000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	reply = must(r, 2, (const char *[]){"ACL", "WHOAMI"});
	ck_assert_str_eq(reply->str, "alice");
	freeReplyObject(reply);
	rds_free(r);
	snprintf(url, sizeof(url), "redis://alice:nope@127.0.0.1:%d/1", store.port);
	ck_assert_ptr_null(rds_new(url, 2000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "WRONGPASS"), "%s", err);

	itest_store_stop(&store, "redis");
}
END_TEST

START_TEST(unix_socket)
{
	char *dir = itest_tmpdir("redis-unix");
	char sock[512], dir_arg[512];
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(dir_arg, sizeof(dir_arg), "%s", dir);
	char *argv[] = {"/usr/bin/redis-server", "--port", "0", "--unixsocket", sock,
			"--unixsocketperm", "700", "--save", "", "--appendonly", "no",
			"--dir", dir_arg, NULL};
	struct itest_proc proc;
	ck_assert(itest_spawn(&proc, argv, NULL));
	struct stat st;
	for (int i = 0; i < 200 && stat(sock, &st) != 0; i++)
		usleep(25000);
	ck_assert_msg(stat(sock, &st) == 0, "redis did not create %s", sock);

	char url[600], err[256];
	snprintf(url, sizeof(url), "unix://%s?db=4", sock);
	/* the socket file appears at bind(), a moment before listen(): until
	 * then a connect is refused */
	struct rds *r = NULL;
	for (int i = 0; i < 200 && !(r = rds_new(url, 2000, err, sizeof(err))); i++)
		usleep(25000);
	ck_assert_msg(r, "%s", err);
	redisReply *reply = must(r, 2, (const char *[]){"CLIENT", "INFO"});
	ck_assert_msg(strstr(reply->str, " db=4 "), "%s", reply->str);
	freeReplyObject(reply);
	rds_free(r);

	snprintf(url, sizeof(url), "unix://%s/missing.sock", dir);
	ck_assert_ptr_null(rds_new(url, 1000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "missing.sock") && strstr(err, "connect failed"), "%s", err);
	itest_stop(&proc);
	free(dir);
}
END_TEST

/* ---- pipelined batches ---- */

struct check_state {
	size_t seen;
	size_t wrong;
};

/* Command i is INCRBY counter 1 on a fresh key: reply i must be i + 1. */
static void check_incr(void *arg, size_t index, const redisReply *reply)
{
	struct check_state *st = arg;
	if (index != st->seen || reply->type != REDIS_REPLY_INTEGER ||
	    reply->integer != (long long)index + 1)
		st->wrong++;
	st->seen++;
}

START_TEST(pipeline_ten_thousand)
{
	char *url = shared_url_with_db(6);
	char err[256], key[64];
	snprintf(key, sizeof(key), "rds:pipe:%d", (int)getpid());
	struct rds *r = rds_new(url, 5000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	freeReplyObject(must(r, 2, (const char *[]){"DEL", key}));

	enum { N = 10000 };
	for (int i = 0; i < N; i++)
		ck_assert(rds_append(r, 3, (const char *[]){"INCRBY", key, "1"}, NULL));
	ck_assert_uint_eq(rds_pending(r), N);
	struct check_state st = {0};
	struct rds_batch_result result;
	ck_assert_int_eq(rds_flush(r, check_incr, &st, &result, err, sizeof(err)), RDS_OK);
	ck_assert_uint_eq(rds_pending(r), 0);
	ck_assert_uint_eq(result.replies, N);
	ck_assert_uint_eq(result.error_replies, 0);
	ck_assert_uint_eq(st.seen, N);
	ck_assert_uint_eq(st.wrong, 0);

	/* Binary-safe arguments with explicit lengths. */
	const char *argv[] = {"SET", key, "a\0b\r\n"};
	size_t argvlen[] = {3, strlen(key), 5};
	ck_assert(rds_append(r, 3, argv, argvlen));
	ck_assert(rds_append(r, 2, (const char *[]){"STRLEN", key}, NULL));
	ck_assert_int_eq(rds_flush(r, NULL, NULL, &result, err, sizeof(err)), RDS_OK);
	redisReply *reply = must(r, 2, (const char *[]){"STRLEN", key});
	ck_assert_int_eq(reply->integer, 5);
	freeReplyObject(reply);

	/* An empty flush is fine. */
	ck_assert_int_eq(rds_flush(r, NULL, NULL, NULL, err, sizeof(err)), RDS_OK);
	freeReplyObject(must(r, 2, (const char *[]){"DEL", key}));
	rds_free(r);
	free(url);
}
END_TEST

static void count_replies(void *arg, size_t index, const redisReply *reply)
{
	(void)index;
	(void)reply;
	(*(size_t *)arg)++;
}

START_TEST(pipeline_error_reply_mid_batch)
{
	char *url = shared_url_with_db(7);
	char err[256], key[64], text_key[64];
	snprintf(key, sizeof(key), "rds:err:%d", (int)getpid());
	snprintf(text_key, sizeof(text_key), "rds:text:%d", (int)getpid());
	struct rds *r = rds_new(url, 5000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	freeReplyObject(must(r, 3, (const char *[]){"DEL", key, text_key}));
	set_key(r, text_key, "not a number");

	enum { N = 10000 };
	for (int i = 0; i < N; i++) {
		if (i == 4321 || i == 9000)
			ck_assert(rds_append(r, 2, (const char *[]){"INCR", text_key}, NULL));
		else
			ck_assert(rds_append(r, 2, (const char *[]){"INCR", key}, NULL));
	}
	size_t seen = 0;
	struct rds_batch_result result;
	ck_assert_int_eq(rds_flush(r, count_replies, &seen, &result, err, sizeof(err)),
			 RDS_ERROR_REPLIES);
	ck_assert_uint_eq(seen, N); /* every reply read, the errors too */
	ck_assert_uint_eq(result.replies, N);
	ck_assert_uint_eq(result.error_replies, 2);
	ck_assert_uint_eq(result.first_error_index, 4321);
	ck_assert_msg(strstr(result.first_error, "not an integer"), "%s", result.first_error);
	ck_assert_msg(strstr(err, "2 of 10000 replies were errors, first at #4321"), "%s", err);
	/* The commands around the errors ran, and the connection is in step. */
	ck_assert(rds_is_usable(r));
	redisReply *reply = must(r, 2, (const char *[]){"GET", key});
	ck_assert_str_eq(reply->str, "9998");
	freeReplyObject(reply);

	/* An error inside EXEC's array counts too. */
	ck_assert(rds_append(r, 1, (const char *[]){"MULTI"}, NULL));
	ck_assert(rds_append(r, 2, (const char *[]){"INCR", key}, NULL));
	ck_assert(rds_append(r, 2, (const char *[]){"INCR", text_key}, NULL));
	ck_assert(rds_append(r, 1, (const char *[]){"EXEC"}, NULL));
	ck_assert_int_eq(rds_flush(r, NULL, NULL, &result, err, sizeof(err)), RDS_ERROR_REPLIES);
	ck_assert_uint_eq(result.error_replies, 1);
	ck_assert_uint_eq(result.first_error_index, 3);

	/* rds_command reports an error reply as a failure. */
	ck_assert_ptr_null(rds_command(r, 2, (const char *[]){"INCR", text_key}, NULL, err,
				       sizeof(err)));
	ck_assert_msg(strstr(err, "INCR") && strstr(err, "not an integer"), "%s", err);
	/* ...and refuses to run between append and flush. */
	ck_assert(rds_append(r, 1, (const char *[]){"PING"}, NULL));
	ck_assert_ptr_null(rds_command(r, 1, (const char *[]){"PING"}, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not flushed"), "%s", err);
	ck_assert_int_eq(rds_flush(r, NULL, NULL, NULL, err, sizeof(err)), RDS_OK);

	freeReplyObject(must(r, 3, (const char *[]){"DEL", key, text_key}));
	rds_free(r);
	free(url);
}
END_TEST

START_TEST(pipeline_server_lost)
{
	struct itest_store store = {0};
	ck_assert(itest_redis_start(&store));
	char err[256];
	struct rds *r = rds_new(store.url, 2000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	ck_assert(itest_store_ctl(&store, "redis", "kill"));
	for (int i = 0; i < 1000; i++)
		ck_assert(rds_append(r, 1, (const char *[]){"PING"}, NULL));
	struct rds_batch_result result;
	ck_assert_int_eq(rds_flush(r, NULL, NULL, &result, err, sizeof(err)), RDS_IO_ERROR);
	ck_assert_uint_eq(result.replies, 0);
	ck_assert_msg(strstr(err, "replies lost"), "%s", err);
	ck_assert(!rds_is_usable(r));
	ck_assert(!rds_append(r, 1, (const char *[]){"PING"}, NULL));
	rds_free(r);
	itest_store_stop(&store, "redis");
}
END_TEST

Suite *test_suite(void)
{
	signal(SIGPIPE, SIG_IGN); /* a write to a killed server must fail, not kill us */
	Suite *s = suite_create("rds");
	TCase *tc = tcase_create("connect");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, connect_selects_db);
	tcase_add_test(tc, connect_failures_name_the_problem);
	tcase_add_test(tc, auth_on_private_server);
	tcase_add_test(tc, unix_socket);
	suite_add_tcase(s, tc);

	tc = tcase_create("pipeline");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, pipeline_ten_thousand);
	tcase_add_test(tc, pipeline_error_reply_mid_batch);
	tcase_add_test(tc, pipeline_server_lost);
	suite_add_tcase(s, tc);
	return s;
}
