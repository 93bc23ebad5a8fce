/* pgx against the harness's PostgreSQL: bounded connect retry, statements,
 * transactions, advisory locks, and COPY round trips and failures. */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"
#include "log.h"
#include "pgx.h"

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

/* A pgx connection to a fresh database, with `setup` run. */
static PGconn *fresh_conn(const char *setup)
{
	char *url = itest_create_db("pgx");
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_msg(pgx_connect(url, "test_pgx", NULL, &conn, &err) == PGX_CONNECT_OK, "%s",
		      err.msg);
	free(url);
	if (setup)
		ck_assert_msg(pgx_exec_script(conn, setup, &err), "setup: %s", err.msg);
	return conn;
}

static void assert_usable(PGconn *conn)
{
	struct pgx_err err;
	int64_t one = 0;
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
	ck_assert_msg(pgx_query_int64(conn, "SELECT 1", 0, NULL, &one, &err), "%s", err.msg);
	ck_assert_int_eq(one, 1);
}

static int64_t count_rows(PGconn *conn, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	struct pgx_err err;
	int64_t n = -1;
	ck_assert_msg(pgx_query_int64(conn, sql, 0, NULL, &n, &err), "%s", err.msg);
	return n;
}

/* ---- connect ---- */

START_TEST(connect_closed_port_attempts_bounded)
{
	char url[128];
	snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/postgres",
		 itest_free_port());
	struct pgx_retry retry = {.max_attempts = 4, .max_total_ms = 10000, .first_backoff_ms = 100};
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_int_eq(pgx_connect(url, NULL, &retry, &conn, &err), PGX_CONNECT_UNAVAILABLE);
	long ms = elapsed_ms(&start);
	ck_assert_ptr_null(conn);
	/* backoff 100 + 200 + 400 ms, +-25%, then the fourth attempt fails */
	ck_assert_msg(ms >= 500 && ms < 3000, "took %ld ms", ms);
	ck_assert_msg(strstr(err.msg, "after 4 attempts"), "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "Connection refused"), "%s", err.msg);
}
END_TEST

START_TEST(connect_closed_port_time_bounded)
{
	char url[160];
	snprintf(url, sizeof(url), "postgresql://postgres:SECRETPW@127.0.0.1:%d/postgres",
		 itest_free_port());
	struct pgx_retry retry = {.max_attempts = 1000, .max_total_ms = 1500, .first_backoff_ms = 50,
				  .max_backoff_ms = 200};
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_int_eq(pgx_connect(url, NULL, &retry, &conn, &err), PGX_CONNECT_UNAVAILABLE);
	long ms = elapsed_ms(&start);
	ck_assert_msg(ms < 2500, "took %ld ms", ms);
	ck_assert_msg(strstr(err.msg, "Connection refused"), "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "SECRETPW"), "password in the reason: %s", err.msg);
}
END_TEST

START_TEST(connect_bad_conninfo_not_retried)
{
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_int_eq(pgx_connect("host=127.0.0.1 password=SECRETPW bogus_option=1", NULL, NULL,
				     &conn, &err),
			 PGX_CONNECT_BAD_CONNINFO);
	ck_assert_msg(strstr(err.msg, "bogus_option"), "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "SECRETPW"), "password in the reason: %s", err.msg);
}
END_TEST

START_TEST(connect_unknown_database_refused_at_once)
{
	const char *admin = itest_env("TEST_PG_URL");
	char url[512];
	snprintf(url, sizeof(url), "%.*s/no_such_db_here", (int)(strrchr(admin, '/') - admin),
		 admin);
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_int_eq(pgx_connect(url, NULL, NULL, &conn, &err), PGX_CONNECT_REFUSED);
	ck_assert_msg(elapsed_ms(&start) < 1000, "retried a permanent failure");
	ck_assert_msg(strstr(err.msg, "does not exist"), "%s", err.msg);
}
END_TEST

START_TEST(connect_sets_utf8_and_application_name)
{
	PGconn *conn = NULL;
	struct pgx_err err;
	ck_assert_int_eq(pgx_connect(itest_env("TEST_PG_URL"), "pgx-app", NULL, &conn, &err),
			 PGX_CONNECT_OK);
	ck_assert_str_eq(PQparameterStatus(conn, "client_encoding"), "UTF8");
	ck_assert_str_eq(PQparameterStatus(conn, "application_name"), "pgx-app");
	PQfinish(conn);
}
END_TEST

/* ---- statements and transactions ---- */

START_TEST(exec_parameters_and_errors)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int PRIMARY KEY, v text)");
	struct pgx_err err;
	/* A value full of SQL is data, not SQL. */
	const char *values[] = {"1", "'); DROP TABLE t; --"};
	long long affected = 0;
	ck_assert_msg(pgx_cmd(conn, "INSERT INTO t VALUES ($1, $2)", 2, values, &affected, &err),
		      "%s", err.msg);
	ck_assert_int_eq(affected, 1);
	ck_assert(!pgx_cmd(conn, "INSERT INTO t VALUES ($1, $2)", 2, values, NULL, &err));
	ck_assert_str_eq(err.sqlstate, "23505");
	ck_assert_msg(strstr(err.msg, "ERROR 23505: duplicate key") && strstr(err.msg, "DETAIL"),
		      "%s", err.msg);
	PGresult *res = pgx_exec(conn, "SELECT v FROM t WHERE id = $1", 1, values, &err);
	ck_assert_ptr_nonnull(res);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), values[1]);
	PQclear(res);
	ck_assert_ptr_null(pgx_exec(conn, "SELECT * FROM missing", 0, NULL, &err));
	ck_assert_str_eq(err.sqlstate, "42P01");
	int64_t n;
	ck_assert(!pgx_query_int64(conn, "SELECT NULL::int", 0, NULL, &n, &err));
	assert_usable(conn);
	PQfinish(conn);
}
END_TEST

START_TEST(script_error_names_line)
{
	PGconn *conn = fresh_conn(NULL);
	struct pgx_err err;
	ck_assert(!pgx_exec_script(conn, "SELECT 1;\n-- 한글 comment\nSELECT 2;\nSELEC 3;\n", &err));
	ck_assert_str_eq(err.sqlstate, "42601");
	ck_assert_msg(strstr(err.msg, "(line 4)"), "%s", err.msg);
	assert_usable(conn);
	PQfinish(conn);
}
END_TEST

START_TEST(transactions)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int PRIMARY KEY)");
	struct pgx_err err;
	ck_assert(pgx_begin(conn, &err));
	ck_assert(pgx_in_transaction(conn));
	ck_assert(pgx_cmd(conn, "INSERT INTO t VALUES (1)", 0, NULL, NULL, &err));
	ck_assert(pgx_commit(conn, &err));
	ck_assert(!pgx_in_transaction(conn));

	/* A failed transaction's COMMIT is reported, not taken for success. */
	ck_assert(pgx_begin(conn, &err));
	ck_assert(pgx_cmd(conn, "INSERT INTO t VALUES (2)", 0, NULL, NULL, &err));
	ck_assert(!pgx_cmd(conn, "INSERT INTO t VALUES (1)", 0, NULL, NULL, &err));
	ck_assert(!pgx_commit(conn, &err));
	ck_assert_str_eq(err.sqlstate, "25P02");
	ck_assert_int_eq(count_rows(conn, "t"), 1);

	ck_assert(pgx_begin(conn, &err));
	ck_assert(pgx_cmd(conn, "INSERT INTO t VALUES (3)", 0, NULL, NULL, &err));
	ck_assert(pgx_rollback(conn));
	ck_assert(pgx_rollback(conn)); /* idle: nothing to do, still true */
	ck_assert_int_eq(count_rows(conn, "t"), 1);
	PQfinish(conn);
}
END_TEST

START_TEST(advisory_locks)
{
	PGconn *a = fresh_conn(NULL);
	PGconn *b = NULL;
	struct pgx_err err;
	/* b must be in the same database: advisory locks are per database. */
	char url[512];
	const char *admin = itest_env("TEST_PG_URL");
	snprintf(url, sizeof(url), "%.*s/%s", (int)(strrchr(admin, '/') - admin), admin, PQdb(a));
	ck_assert_int_eq(pgx_connect(url, NULL, NULL, &b, &err), PGX_CONNECT_OK);

	const int64_t key = PGX_LOCK_CHARGERS;
	bool acquired = false;
	ck_assert(pgx_lock_try(a, key, &acquired, &err));
	ck_assert(acquired);
	ck_assert(pgx_lock_try(b, key, &acquired, &err));
	ck_assert(!acquired);
	int holder = 0;
	ck_assert(pgx_lock_holder(b, key, &holder, &err));
	ck_assert_int_eq(holder, PQbackendPID(a));

	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	ck_assert(!pgx_lock_wait(b, key, 300, &err));
	ck_assert_str_eq(err.sqlstate, "55P03");
	ck_assert_msg(elapsed_ms(&start) < 2000, "lock wait not bounded");
	/* The timeout was put back. */
	PGresult *res = pgx_exec(b, "SHOW lock_timeout", 0, NULL, &err);
	ck_assert_ptr_nonnull(res);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "0");
	PQclear(res);

	ck_assert(!pgx_unlock(b, key, &err)); /* b does not hold it */
	ck_assert(pgx_unlock(a, key, &err));
	ck_assert(pgx_lock_wait(b, key, 1000, &err));
	ck_assert(pgx_lock_holder(a, key, &holder, &err));
	ck_assert_int_eq(holder, PQbackendPID(b));
	/* Another key is independent. */
	ck_assert(pgx_lock_try(a, PGX_LOCK_CONGESTION, &acquired, &err));
	ck_assert(acquired);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

/* ---- COPY ---- */

/* Values with every byte the text format treats specially, and then some. */
static const char *const special_values[] = {
	"",
	"plain",
	"\\",
	"\\N",
	"\\.",
	"\t",
	"\n",
	"\r",
	"\r\n",
	"a\tb\nc\rd\\e",
	"trailing backslash\\",
	"\\\\double",
	"서울특별시 강남구 테헤란로 152 (역삼동)",
	"\xf0\x9f\x94\x8c\xf0\x9f\x9a\x97 outside the BMP",
	"\x01\x02\x1f\x7f controls",
	"\"quotes\" 'single' `back`",
	" padded ",
	NULL,
};

START_TEST(copy_round_trip_special_characters)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int PRIMARY KEY, v text, w text)");
	struct pgx_err err;
	struct pgx_copy *copy = pgx_copy_begin(conn, "COPY t (id, v, w) FROM STDIN", &err);
	ck_assert_msg(copy, "%s", err.msg);
	size_t nvalues = sizeof(special_values) / sizeof(special_values[0]);
	/* Many rows so the 256 KiB buffer is flushed several times; one huge
	 * value crosses a flush boundary in the middle of its escaping. */
	const int rows = 30000;
	size_t big_len = 3 * PGX_COPY_CHUNK / 2 + 7;
	char *big = malloc(big_len + 1);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = "ab\\\t\n\r한"[i % 9]; /* 9 bytes: 한 stays whole */
	big[big_len] = '\0';
	for (int i = 0; i < rows; i++) {
		pgx_copy_int(copy, i);
		if (i == 777) {
			pgx_copy_field(copy, big, big_len);
		} else {
			pgx_copy_str(copy, special_values[i % nvalues]);
		}
		pgx_copy_str(copy, special_values[(i * 7 + 3) % nvalues]);
		ck_assert_msg(pgx_copy_end_row(copy, &err), "%s", err.msg);
	}
	const char *row[] = {"-1", "\\N", NULL};
	ck_assert(pgx_copy_row(copy, 3, row, &err));
	ck_assert_int_eq(pgx_copy_rows(copy), rows + 1);
	long long loaded = 0;
	ck_assert_msg(pgx_copy_end(copy, &loaded, &err), "%s", err.msg);
	ck_assert_int_eq(loaded, rows + 1);

	PGresult *res = pgx_exec(conn, "SELECT id, v, w FROM t ORDER BY id", 0, NULL, &err);
	ck_assert_msg(res, "%s", err.msg);
	ck_assert_int_eq(PQntuples(res), rows + 1);
	ck_assert_int_eq(atoi(PQgetvalue(res, 0, 0)), -1);
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "\\N");
	ck_assert(PQgetisnull(res, 0, 2));
	for (int i = 0; i < rows; i++) {
		int r = i + 1;
		ck_assert_int_eq(atoi(PQgetvalue(res, r, 0)), i);
		const char *want_v = i == 777 ? big : special_values[i % nvalues];
		const char *want_w = special_values[(i * 7 + 3) % nvalues];
		if (want_v)
			ck_assert_msg(!PQgetisnull(res, r, 1) && strcmp(PQgetvalue(res, r, 1), want_v) == 0,
				      "row %d v differs", i);
		else
			ck_assert_msg(PQgetisnull(res, r, 1), "row %d v not NULL", i);
		if (want_w)
			ck_assert_msg(!PQgetisnull(res, r, 2) && strcmp(PQgetvalue(res, r, 2), want_w) == 0,
				      "row %d w differs", i);
		else
			ck_assert_msg(PQgetisnull(res, r, 2), "row %d w not NULL", i);
	}
	PQclear(res);
	free(big);
	assert_usable(conn);
	PQfinish(conn);
}
END_TEST

START_TEST(copy_constraint_violation_reported)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
	struct pgx_err err;
	struct pgx_copy *copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_msg(copy, "%s", err.msg);
	for (int i = 0; i < 20000; i++) {
		pgx_copy_int(copy, i == 15000 ? 42 : i); /* 42 twice */
		pgx_copy_str(copy, "x");
		ck_assert(pgx_copy_end_row(copy, &err));
	}
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_str_eq(err.sqlstate, "23505");
	ck_assert_msg(strstr(err.msg, "duplicate key") && strstr(err.msg, "(id)=(42)"), "%s",
		      err.msg);
	assert_usable(conn);
	ck_assert_int_eq(count_rows(conn, "t"), 0);

	/* NOT NULL, inside a transaction: the transaction fails, rollback mends. */
	ck_assert(pgx_begin(conn, &err));
	copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	const char *row[] = {"1", NULL};
	ck_assert(pgx_copy_row(copy, 2, row, &err));
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_str_eq(err.sqlstate, "23502");
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_INERROR);
	ck_assert(pgx_rollback(conn));
	assert_usable(conn);

	/* A malformed value (type error) names the column. */
	copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	const char *bad[] = {"not a number", "x"};
	ck_assert(pgx_copy_row(copy, 2, bad, &err));
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_str_eq(err.sqlstate, "22P02");
	ck_assert_msg(strstr(err.msg, "CONTEXT") && strstr(err.msg, "column id"), "%s", err.msg);
	assert_usable(conn);
	PQfinish(conn);
}
END_TEST

START_TEST(copy_local_failures)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int, v text)");
	struct pgx_err err;

	/* A NUL byte cannot travel in text: refused locally, COPY aborted with
	 * the reason, nothing loaded. */
	struct pgx_copy *copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	ck_assert(pgx_copy_row(copy, 2, (const char *[]){"1", "ok"}, &err));
	pgx_copy_int(copy, 2);
	pgx_copy_field(copy, "a\0b", 3);
	ck_assert(!pgx_copy_end_row(copy, &err));
	ck_assert_msg(strstr(err.msg, "NUL byte"), "%s", err.msg);
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_msg(strstr(err.msg, "NUL byte"), "%s", err.msg);
	assert_usable(conn);
	ck_assert_int_eq(count_rows(conn, "t"), 0);

	/* Ending in the middle of a row is refused the same way. */
	copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	pgx_copy_int(copy, 1);
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_msg(strstr(err.msg, "middle of row"), "%s", err.msg);
	assert_usable(conn);

	/* Abort: the server discards what was sent. */
	copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	for (int i = 0; i < 1000; i++)
		ck_assert(pgx_copy_row(copy, 2, (const char *[]){"1", "x"}, &err));
	pgx_copy_abort(copy, "test abort");
	pgx_copy_abort(NULL, "NULL-safe");
	assert_usable(conn);
	ck_assert_int_eq(count_rows(conn, "t"), 0);

	/* Statements that are not COPY FROM STDIN. */
	ck_assert_ptr_null(pgx_copy_begin(conn, "COPY missing FROM STDIN", &err));
	ck_assert_str_eq(err.sqlstate, "42P01");
	ck_assert_ptr_null(pgx_copy_begin(conn, "COPY t TO STDOUT", &err));
	ck_assert_msg(strstr(err.msg, "not a COPY"), "%s", err.msg);
	ck_assert_ptr_null(pgx_copy_begin(conn, "COPY t FROM STDIN (FORMAT binary)", &err));
	ck_assert_msg(strstr(err.msg, "binary"), "%s", err.msg);
	ck_assert_ptr_null(pgx_copy_begin(conn, "SELECT 1", &err));
	assert_usable(conn);
	PQfinish(conn);
}
END_TEST

/* The server closing the session mid-COPY: the loss is reported, not hung on. */
START_TEST(copy_connection_lost)
{
	PGconn *conn = fresh_conn("CREATE TABLE t (id int, v text)");
	PGconn *admin = itest_pg_connect(itest_env("TEST_PG_URL"));
	struct pgx_err err;
	struct pgx_copy *copy = pgx_copy_begin(conn, "COPY t FROM STDIN", &err);
	ck_assert_ptr_nonnull(copy);
	ck_assert(pgx_copy_row(copy, 2, (const char *[]){"1", "x"}, &err));
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", PQbackendPID(conn));
	PQclear(itest_pg_exec(admin, sql));
	for (int i = 0; i < 200000 && pgx_copy_row(copy, 2, (const char *[]){"2", "y"}, &err); i++)
		;
	ck_assert(!pgx_copy_end(copy, NULL, &err));
	ck_assert_msg(err.msg[0], "no reason");
	ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
	PQfinish(conn);
	PQfinish(admin);
}
END_TEST

Suite *test_suite(void)
{
	log_setup("test_pgx", LOG_WARN);
	Suite *s = suite_create("pgx");
	TCase *tc = tcase_create("connect");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, connect_closed_port_attempts_bounded);
	tcase_add_test(tc, connect_closed_port_time_bounded);
	tcase_add_test(tc, connect_bad_conninfo_not_retried);
	tcase_add_test(tc, connect_unknown_database_refused_at_once);
	tcase_add_test(tc, connect_sets_utf8_and_application_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("statements");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, exec_parameters_and_errors);
	tcase_add_test(tc, script_error_names_line);
	tcase_add_test(tc, transactions);
	tcase_add_test(tc, advisory_locks);
	suite_add_tcase(s, tc);

	tc = tcase_create("copy");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, copy_round_trip_special_characters);
	tcase_add_test(tc, copy_constraint_violation_reported);
	tcase_add_test(tc, copy_local_failures);
	tcase_add_test(tc, copy_connection_lost);
	suite_add_tcase(s, tc);
	return s;
}
