/* `bin/ingestd migrate` against fresh databases: fresh apply, re-run no-op,
 * --status, a changed file refused by name, a missing file reported, a failing
 * migration rolled back, two concurrent runners serialized, and the exit
 * codes for a bad directory and an unreachable database. */
#include "testmain.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "sha256.h"

static const char *const schema_tables[] = {
	"station", "charger", "ingest_run", "ingest_reject", "congestion", "schema_migrations",
};

/* Run `bin/ingestd migrate [extra]` with DATABASE_URL and
 * INGESTD_MIGRATIONS_DIR; returns the exit code, *output its stdout+stderr. */
static int run_migrate(const char *db_url, const char *dir, const char *extra, char **output)
{
	char *bin = strdup(itest_bin("ingestd"));
	char *url_env = NULL, *dir_env = NULL;
	ck_assert_int_ge(asprintf(&url_env, "DATABASE_URL=%s", db_url), 0);
	ck_assert_int_ge(asprintf(&dir_env, "INGESTD_MIGRATIONS_DIR=%s", dir), 0);
	char *argv[] = {bin, "migrate", (char *)extra, NULL};
	char *env[] = {url_env, dir_env, NULL};
	int rc = itest_run(argv, env, 60000, output);
	/* Under SAN=1 the child's reports land in its output, not our log. */
	ck_assert_msg(!*output || (!strstr(*output, "Sanitizer") && !strstr(*output, "runtime error")),
		      "sanitizer report from ingestd:\n%s", *output);
	free(bin);
	free(url_env);
	free(dir_env);
	return rc;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f, "open %s", path);
	fputs(text, f);
	fclose(f);
}

/* The repository's migrations/ copied into a fresh temp dir (caller frees). */
static char *copy_migrations(void)
{
	char *src = itest_path("migrations");
	char *dst = itest_tmpdir("migrations");
	DIR *d = opendir(src);
	ck_assert_msg(d, "opendir %s", src);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", src, e->d_name);
		size_t len;
		char *data = itest_read_file_len(path, &len);
		snprintf(path, sizeof(path), "%s/%s", dst, e->d_name);
		FILE *f = fopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(data, 1, len, f), len);
		fclose(f);
		free(data);
	}
	closedir(d);
	free(src);
	return dst;
}

/* The number of NNNN_*.sql files in the repository's migrations/. */
static long repo_migration_count(void)
{
	char *src = itest_path("migrations");
	DIR *d = opendir(src);
	ck_assert_ptr_nonnull(d);
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && len > 4 &&
		    strcmp(e->d_name + len - 4, ".sql") == 0)
			n++;
	}
	closedir(d);
	free(src);
	return n;
}

static long table_exists(PGconn *conn, const char *table)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT (to_regclass('public.%s') IS NOT NULL)::int", table);
	return itest_pg_long(conn, sql);
}

static void assert_contains(const char *output, const char *needle)
{
	ck_assert_msg(output && strstr(output, needle), "output lacks '%s':\n%s", needle,
		      output ? output : "(none)");
}

START_TEST(fresh_apply_creates_schema)
{
	char *db = itest_create_db("mig");
	char *dir = itest_path("migrations");
	char *out = NULL;
	int rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 0, "rc %d:\n%s", rc, out);
	assert_contains(out, "applied 0001_init.sql");

	PGconn *conn = itest_pg_connect(db);
	for (size_t i = 0; i < sizeof(schema_tables) / sizeof(schema_tables[0]); i++)
		ck_assert_msg(table_exists(conn, schema_tables[i]), "table %s missing", schema_tables[i]);
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(*) FROM schema_migrations"),
			 repo_migration_count());

	/* The recorded checksum is the SHA-256 of the file's bytes. */
	char path[1024];
	snprintf(path, sizeof(path), "%s/0001_init.sql", dir);
	size_t len;
	char *data = itest_read_file_len(path, &len);
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(data, len, hex);
	free(data);
	PGresult *res = itest_pg_exec(conn, "SELECT name, checksum FROM schema_migrations "
					    "WHERE version = 1");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "0001_init.sql");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), hex);
	PQclear(res);

	/* The indexes the API's queries use. */
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(*) FROM pg_indexes WHERE indexname IN "
					     "('station_live_lat_lng', 'station_live_search', "
					     "'ingest_reject_run', 'ingest_run_job_id')"),
			 4);
	/* The read-only group role: reads everything, writes nothing, no login. */
	ck_assert_int_eq(itest_pg_long(conn, "SELECT (NOT rolcanlogin)::int FROM pg_roles "
					     "WHERE rolname = 'evcharger_ro'"),
			 1);
	for (size_t i = 0; i < sizeof(schema_tables) / sizeof(schema_tables[0]); i++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "SELECT (has_table_privilege('evcharger_ro', '%s', 'SELECT') AND NOT "
			 "has_table_privilege('evcharger_ro', '%s', 'INSERT,UPDATE,DELETE'))::int",
			 schema_tables[i], schema_tables[i]);
		ck_assert_msg(itest_pg_long(conn, sql) == 1, "evcharger_ro on %s", schema_tables[i]);
	}
	/* Constraints hold: a run's status is one of four. */
	res = PQexec(conn, "INSERT INTO ingest_run (job, status) VALUES ('chargers', 'weird')");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
	PQclear(res);
	PQfinish(conn);
	free(out);
	free(dir);
	free(db);
}
END_TEST

START_TEST(rerun_is_noop_and_status_lists)
{
	char *db = itest_create_db("mig");
	char *dir = itest_path("migrations");
	char *out = NULL;

	ck_assert_int_eq(run_migrate(db, dir, "--status", &out), 0);
	assert_contains(out, "0001_init.sql");
	assert_contains(out, " pending\n");
	free(out);

	ck_assert_int_eq(run_migrate(db, dir, NULL, &out), 0);
	free(out);
	PGconn *conn = itest_pg_connect(db);
	PGresult *before = itest_pg_exec(conn, "SELECT string_agg(version || '@' || applied_at, ',' "
					       "ORDER BY version) FROM schema_migrations");

	ck_assert_int_eq(run_migrate(db, dir, NULL, &out), 0);
	assert_contains(out, "nothing to do");
	free(out);
	PGresult *after = itest_pg_exec(conn, "SELECT string_agg(version || '@' || applied_at, ',' "
					      "ORDER BY version) FROM schema_migrations");
	ck_assert_str_eq(PQgetvalue(before, 0, 0), PQgetvalue(after, 0, 0));
	PQclear(before);
	PQclear(after);

	ck_assert_int_eq(run_migrate(db, dir, "--status", &out), 0);
	assert_contains(out, "0001_init.sql");
	ck_assert_msg(!strstr(out, " pending\n"), "still pending after apply:\n%s", out);
	free(out);
	PQfinish(conn);
	free(dir);
	free(db);
}
END_TEST

START_TEST(changed_file_refused_by_name)
{
	char *db = itest_create_db("mig");
	char *dir = copy_migrations();
	char *out = NULL;
	ck_assert_int_eq(run_migrate(db, dir, NULL, &out), 0);
	free(out);

	/* Edit an applied file and add a new one: nothing may be applied. */
	char path[1024];
	snprintf(path, sizeof(path), "%s/0001_init.sql", dir);
	FILE *f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("\n-- an innocent-looking edit\n", f);
	fclose(f);
	write_file(dir, "0900_extra.sql", "CREATE TABLE extra (id int);\n");

	int rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 78, "rc %d:\n%s", rc, out);
	assert_contains(out, "0001_init.sql was changed");
	assert_contains(out, "nothing applied");
	free(out);
	PGconn *conn = itest_pg_connect(db);
	ck_assert_int_eq(table_exists(conn, "extra"), 0);
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(*) FROM schema_migrations "
					     "WHERE version = 900"),
			 0);

	/* --status shows it too, with the same exit code. */
	rc = run_migrate(db, dir, "--status", &out);
	ck_assert_int_eq(rc, 78);
	assert_contains(out, "CHANGED");
	assert_contains(out, "0900_extra.sql");
	free(out);
	PQfinish(conn);
	free(dir);
	free(db);
}
END_TEST

START_TEST(missing_applied_file_reported)
{
	char *db = itest_create_db("mig");
	char *dir = copy_migrations();
	char *out = NULL;
	ck_assert_int_eq(run_migrate(db, dir, NULL, &out), 0);
	free(out);
	char path[1024];
	snprintf(path, sizeof(path), "%s/0002_readonly_role.sql", dir);
	ck_assert_int_eq(unlink(path), 0);
	int rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 0, "rc %d:\n%s", rc, out);
	assert_contains(out, "0002_readonly_role.sql");
	assert_contains(out, "has no file");
	free(out);
	ck_assert_int_eq(run_migrate(db, dir, "--status", &out), 0);
	assert_contains(out, "file missing");
	free(out);
	free(dir);
	free(db);
}
END_TEST

START_TEST(failing_migration_rolled_back)
{
	char *db = itest_create_db("mig");
	char *dir = copy_migrations();
	write_file(dir, "0901_half.sql",
		   "CREATE TABLE half_done (id int);\n"
		   "INSERT INTO half_done VALUES (1);\n"
		   "SELEC broken;\n");
	write_file(dir, "0902_after.sql", "CREATE TABLE after_bad (id int);\n");
	char *out = NULL;
	int rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 70, "rc %d:\n%s", rc, out);
	assert_contains(out, "0901_half.sql failed");
	assert_contains(out, "line 3");
	free(out);
	PGconn *conn = itest_pg_connect(db);
	/* Earlier files stay applied; the failing one left nothing; later ones
	 * were not tried. */
	ck_assert_int_eq(table_exists(conn, "station"), 1);
	ck_assert_int_eq(table_exists(conn, "half_done"), 0);
	ck_assert_int_eq(table_exists(conn, "after_bad"), 0);
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(*) FROM schema_migrations"),
			 repo_migration_count());

	/* A file that commits on its own breaks the one-transaction rule. */
	write_file(dir, "0901_half.sql", "CREATE TABLE committed_early (id int);\nCOMMIT;\n");
	rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 70, "rc %d:\n%s", rc, out);
	assert_contains(out, "ended the runner's transaction");
	free(out);
	PQfinish(conn);
	free(dir);
	free(db);
}
END_TEST

START_TEST(concurrent_runners_serialized)
{
	char *db = itest_create_db("mig");
	char *dir = copy_migrations();
	/* A slow file keeps the first runner inside the lock long enough for
	 * the second to find it held. */
	write_file(dir, "0903_slow.sql", "SELECT pg_sleep(1.5);\nCREATE TABLE slow_done (id int);\n");
	char *bin = strdup(itest_bin("ingestd"));
	char *url_env = NULL, *dir_env = NULL;
	ck_assert_int_ge(asprintf(&url_env, "DATABASE_URL=%s", db), 0);
	ck_assert_int_ge(asprintf(&dir_env, "INGESTD_MIGRATIONS_DIR=%s", dir), 0);
	char *argv[] = {bin, "migrate", NULL};
	char *env[] = {url_env, dir_env, NULL};
	struct itest_proc a, b;
	ck_assert(itest_spawn(&a, argv, env));
	ck_assert(itest_spawn(&b, argv, env));
	int rc_a = itest_wait(&a, 60000);
	int rc_b = itest_wait(&b, 60000);
	char *out_a = itest_proc_output(&a);
	char *out_b = itest_proc_output(&b);
	ck_assert_msg(!strstr(out_a, "Sanitizer") && !strstr(out_b, "Sanitizer"),
		      "sanitizer report from ingestd:\n%s\n---\n%s", out_a, out_b);
	ck_assert_msg(rc_a == 0 && rc_b == 0, "rc %d %d:\n%s\n---\n%s", rc_a, rc_b, out_a, out_b);
	/* Exactly one applied; the other waited and found nothing to do. */
	bool a_applied = strstr(out_a, "applied 0903_slow.sql") != NULL;
	bool b_applied = strstr(out_b, "applied 0903_slow.sql") != NULL;
	ck_assert_msg(a_applied != b_applied, "both or neither applied:\n%s\n---\n%s", out_a, out_b);
	const char *idle = a_applied ? out_b : out_a;
	assert_contains(idle, "nothing to do");
	assert_contains(idle, "holds the migration lock");

	PGconn *conn = itest_pg_connect(db);
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(*) FROM schema_migrations"),
			 repo_migration_count() + 1);
	ck_assert_int_eq(itest_pg_long(conn, "SELECT count(DISTINCT version) FROM schema_migrations"),
			 repo_migration_count() + 1);
	ck_assert_int_eq(table_exists(conn, "slow_done"), 1);
	PQfinish(conn);
	free(out_a);
	free(out_b);
	itest_stop(&a);
	itest_stop(&b);
	free(bin);
	free(url_env);
	free(dir_env);
	free(dir);
	free(db);
}
END_TEST

START_TEST(bad_directory_and_names)
{
	char *db = itest_create_db("mig");
	char *out = NULL;
	int rc = run_migrate(db, "/nonexistent/migrations", NULL, &out);
	ck_assert_msg(rc == 78, "rc %d:\n%s", rc, out);
	assert_contains(out, "/nonexistent/migrations");
	free(out);

	char *dir = copy_migrations();
	write_file(dir, "init-again.sql", "SELECT 1;\n");
	rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 78, "rc %d:\n%s", rc, out);
	assert_contains(out, "init-again.sql");
	free(out);
	char path[1024];
	snprintf(path, sizeof(path), "%s/init-again.sql", dir);
	unlink(path);

	write_file(dir, "0001_duplicate.sql", "SELECT 1;\n");
	rc = run_migrate(db, dir, NULL, &out);
	ck_assert_msg(rc == 78, "rc %d:\n%s", rc, out);
	assert_contains(out, "same version 1");
	free(out);

	/* Nothing was applied by any of these. */
	PGconn *conn = itest_pg_connect(db);
	ck_assert_int_eq(table_exists(conn, "schema_migrations"), 0);
	PQfinish(conn);
	free(dir);
	free(db);
}
END_TEST

START_TEST(unreachable_database)
{
	char url[256];
	snprintf(url, sizeof(url), "postgresql://postgres:SECRETPW@127.0.0.1:%d/postgres",
		 itest_free_port());
	char *dir = itest_path("migrations");
	char *out = NULL;
	int rc = run_migrate(url, dir, NULL, &out);
	ck_assert_msg(rc == 69, "rc %d:\n%s", rc, out);
	assert_contains(out, "database unavailable");
	ck_assert_msg(!strstr(out, "SECRETPW"), "password in the output:\n%s", out);
	free(out);

	rc = run_migrate("postgresql://127.0.0.1:notaport/x", dir, NULL, &out);
	ck_assert_msg(rc == 78, "rc %d:\n%s", rc, out);
	free(out);
	free(dir);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fresh_apply_creates_schema);
	tcase_add_test(tc, rerun_is_noop_and_status_lists);
	tcase_add_test(tc, changed_file_refused_by_name);
	tcase_add_test(tc, missing_applied_file_reported);
	tcase_add_test(tc, failing_migration_rolled_back);
	tcase_add_test(tc, concurrent_runners_serialized);
	tcase_add_test(tc, bad_directory_and_names);
	tcase_add_test(tc, unreachable_database);
	suite_add_tcase(s, tc);
	return s;
}
