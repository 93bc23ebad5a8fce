/* test_apid.h: what apid's integration tests share (static helpers; each
 * test binary includes it once). A fresh database per test with the
 * migrations applied and a LOGIN role in evcharger_ro for apid; rows
 * written with SQL (no ingestd load needed); live state and counters
 * written into Redis in rkeys.h's layout; apid spawned on port 0 with its
 * port read from APID_PORT_FILE; answers parsed with yajl's tree. */
#ifndef TEST_APID_H
#define TEST_APID_H

#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "itest.h"
#include "rds.h"
#include "rkeys.h"

/* The read-only login role apid connects as (cluster-wide, made once). */
#define APID_TEST_ROLE "apid_test_ro"

struct apid_env {
	char *db_url;	 /* superuser URL of this test's database */
	char *ro_url;	 /* the same database as APID_TEST_ROLE */
	char *redis_url; /* a Redis db of its own */
	PGconn *pg;	 /* superuser connection for test data */
	struct rds *redis;
	struct itest_proc proc;
	char *dir;
	char *port_file;
	int port;
	bool running;
};

static __attribute__((unused)) char *apid_fmt(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static __attribute__((unused)) char *apid_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = NULL;
	ck_assert_int_ge(vasprintf(&out, fmt, ap), 0);
	va_end(ap);
	return out;
}

static __attribute__((unused)) long apid_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* "redis://127.0.0.1:PORT/0" with db index `db`. */
static __attribute__((unused)) char *apid_redis_db(const char *base, int db)
{
	const char *slash = strrchr(base, '/');
	ck_assert_ptr_nonnull(slash);
	return apid_fmt("%.*s/%d", (int)(slash - base), base, db);
}

static __attribute__((unused)) void apid_sql(PGconn *pg, const char *sql)
{
	PQclear(itest_pg_exec(pg, sql));
}

static __attribute__((unused)) void apid_sqlf(PGconn *pg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static __attribute__((unused)) void apid_sqlf(PGconn *pg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = NULL;
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	apid_sql(pg, sql);
	free(sql);
}

/* A database with the schema (bin/ingestd migrate) and the role. */
static __attribute__((unused)) void apid_db_setup(struct apid_env *e, const char *pg_admin_url)
{
	char *saved = NULL;
	if (pg_admin_url) { /* a private server: create the database there */
		PGconn *admin = itest_pg_connect(pg_admin_url);
		apid_sql(admin, "CREATE DATABASE apid_private");
		PQfinish(admin);
		const char *slash = strrchr(pg_admin_url, '/');
		e->db_url =
			apid_fmt("%.*s/apid_private", (int)(slash - pg_admin_url), pg_admin_url);
	} else {
		e->db_url = itest_create_db("apid");
	}
	char *url_env = apid_fmt("DATABASE_URL=%s", e->db_url);
	char *dir = itest_path("migrations");
	char *dir_env = apid_fmt("INGESTD_MIGRATIONS_DIR=%s", dir);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *argv[] = {bin, "migrate", NULL};
	char *env[] = {url_env, dir_env, "LOG_LEVEL=warn", NULL};
	int rc = itest_run(argv, env, 60000, &saved);
	ck_assert_msg(rc == 0, "ingestd migrate: %s", saved);
	free(saved);
	free(url_env);
	free(dir);
	free(dir_env);
	e->pg = itest_pg_connect(e->db_url);
	apid_sql(e->pg,
		 "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" APID_TEST_ROLE
		 "') THEN CREATE ROLE " APID_TEST_ROLE " LOGIN; END IF; "
		 "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
	apid_sql(e->pg, "GRANT evcharger_ro TO " APID_TEST_ROLE);
	/* postgresql://postgres@host:port/db -> postgresql://ROLE@host:port/db */
	const char *at = strchr(e->db_url, '@');
	ck_assert_ptr_nonnull(at);
	e->ro_url = apid_fmt("postgresql://" APID_TEST_ROLE "%s", at);
}

static __attribute__((unused)) void apid_redis_setup(struct apid_env *e, const char *url)
{
	e->redis_url = strdup(url);
	char err[256];
	e->redis = rds_new(url, 5000, err, sizeof(err));
	ck_assert_msg(e->redis, "redis: %s", err);
	redisReply *r =
		rds_command(e->redis, 1, (const char *[]){"FLUSHDB"}, NULL, err, sizeof(err));
	ck_assert_msg(r, "FLUSHDB: %s", err);
	freeReplyObject(r);
}

/* A Redis command that must succeed. */
static __attribute__((unused)) void apid_redis(struct apid_env *e, int argc, const char **argv)
{
	char err[256];
	if (!e->redis || !rds_is_usable(e->redis)) {
		rds_free(e->redis);
		e->redis = rds_new(e->redis_url, 5000, err, sizeof(err));
		ck_assert_msg(e->redis, "redis: %s", err);
	}
	redisReply *r = rds_command(e->redis, argc, argv, NULL, err, sizeof(err));
	if (!r && !rds_is_usable(e->redis)) { /* the server restarted: once more */
		rds_free(e->redis);
		e->redis = rds_new(e->redis_url, 5000, err, sizeof(err));
		ck_assert_msg(e->redis, "redis: %s", err);
		r = rds_command(e->redis, argc, argv, NULL, err, sizeof(err));
	}
	ck_assert_msg(r, "%s: %s", argv[0], err);
	freeReplyObject(r);
}

/* A charger's status as realtimed writes it (the station's value, then a
 * stream entry), with the time `when_unix`. */
static __attribute__((unused)) void apid_set_status(struct apid_env *e, const char *station,
						    const char *charger, int stat, long when_unix)
{
	char when[32], code[8];
	long now = when_unix;
	snprintf(when, sizeof(when), "%ld", now);
	snprintf(code, sizeof(code), "%d", stat);
	char key[RKEYS_KEY_MAX], err[256];
	rkeys_station(key, sizeof(key), station);
	redisReply *old = e->redis && rds_is_usable(e->redis)
				  ? rds_command(e->redis, 2, (const char *[]){"GET", key}, NULL, err,
						sizeof(err))
				  : NULL;
	bool has_old = old && old->type == REDIS_REPLY_STRING;
	char *value = itest_live_value_with(has_old ? old->str : NULL, has_old ? old->len : 0,
					    charger, stat, now, false);
	freeReplyObject(old);
	apid_redis(e, 3, (const char *[]){"SET", key, value});
	free(value);
	apid_redis(e, 11,
		   (const char *[]){"XADD", RKEYS_CHANGES, "*", "s", station, "c", charger, "st",
				    code, "t", when});
}

/* ---- data ---- */

static __attribute__((unused)) void apid_station(PGconn *pg, const char *id, const char *name,
						 const char *addr, double lat, double lng,
						 const char *busi_id, const char *bnm,
						 const char *busi_nm, const char *zcode)
{
	char lat_text[32], lng_text[32];
	snprintf(lat_text, sizeof(lat_text), "%.17g", lat);
	snprintf(lng_text, sizeof(lng_text), "%.17g", lng);
	const char *values[] = {id, name, addr, lat_text, lng_text, busi_id, bnm, busi_nm, zcode};
	PGresult *res = PQexecParams(
		pg,
		"INSERT INTO station (stat_id, name, addr, lat, lng, busi_id, bnm, busi_nm, zcode, "
		"content_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '\\x00')",
		9, NULL, values, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
}

/* kw NULL: no output; upd_unix 0: no update time. */
static __attribute__((unused)) void apid_charger(PGconn *pg, const char *station, const char *id,
						 const char *type, const char *kw, int stat,
						 long upd_unix)
{
	char stat_text[16], upd[32];
	snprintf(stat_text, sizeof(stat_text), "%d", stat);
	snprintf(upd, sizeof(upd), "%ld", upd_unix);
	const char *values[] = {station, id, type, kw, stat_text, upd_unix ? upd : NULL};
	PGresult *res = PQexecParams(
		pg,
		"INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, stat, stat_upd_dt, "
		"content_hash) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint), '\\x00')",
		6, NULL, values, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
}

/* ---- the daemon ---- */

/* Start apid; extra is a NULL-terminated "K=V" list (may be NULL). Waits
 * for the port file; with wait_ready, for /readyz 200 as well. */
static __attribute__((unused)) void apid_start(struct apid_env *e, char *const *extra,
					       bool wait_ready)
{
	if (!e->dir)
		e->dir = itest_tmpdir("apid");
	free(e->port_file);
	e->port_file = apid_fmt("%s/port", e->dir);
	unlink(e->port_file);
	char *env[40];
	int n = 0;
	env[n++] = apid_fmt("DATABASE_URL=%s", e->ro_url);
	env[n++] = apid_fmt("REDIS_URL=%s", e->redis_url);
	env[n++] = apid_fmt("APID_PORT_FILE=%s", e->port_file);
	env[n++] = strdup("APID_PORT=0");
	env[n++] = strdup("APID_BIND=127.0.0.1");
	env[n++] = strdup("APID_WORKERS=2");
	env[n++] = strdup("APID_SHUTDOWN_GRACE_SECONDS=0");
	env[n++] = strdup("APID_DRAIN_SECONDS=5");
	env[n++] = strdup("APID_MODEL_POLL_SECONDS=1");
	env[n++] = strdup("LOG_FORMAT=json");
	for (size_t i = 0; extra && extra[i] && n < 39; i++)
		env[n++] = strdup(extra[i]);
	env[n] = NULL;
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("apid"));
	char *argv[] = {bin, NULL};
	ck_assert(itest_spawn(&e->proc, argv, env));
	for (int i = 0; i < n; i++) /* the child has its own copies */
		free(env[i]);
	e->running = true;
	e->port = itest_wait_port_file(e->port_file, 20000);
	if (e->port <= 0) {
		char *log = itest_proc_output(&e->proc);
		ck_abort_msg("apid did not start: %s", log);
	}
	if (wait_ready) {
		char *url = apid_fmt("http://127.0.0.1:%d/readyz", e->port);
		long deadline = apid_now_ms() + 20000, status = 0;
		while (apid_now_ms() < deadline &&
		       (status = itest_http_get(url, NULL, NULL)) != 200)
			usleep(20000);
		free(url);
		if (status != 200) {
			char *log = itest_proc_output(&e->proc);
			ck_abort_msg("apid not ready: %s", log);
		}
	}
}

/* Fail on sanitizer reports in the daemon's log. */
static __attribute__((unused)) void apid_check_log(struct apid_env *e)
{
	char *log = itest_proc_output(&e->proc);
	ck_assert_msg(!strstr(log, "AddressSanitizer") && !strstr(log, "LeakSanitizer") &&
			      !strstr(log, "runtime error:"),
		      "sanitizer report in apid's log: %s", log);
	free(log);
}

/* SIGTERM; expect exit 0 within timeout_ms. */
static __attribute__((unused)) void apid_stop(struct apid_env *e)
{
	if (!e->running)
		return;
	itest_signal(&e->proc, SIGTERM);
	int rc = itest_wait(&e->proc, 20000);
	e->running = false;
	char *log = itest_proc_output(&e->proc);
	ck_assert_msg(rc == 0, "apid exited %d: %s", rc, log);
	free(log);
	apid_check_log(e);
	free(e->proc.log); /* itest_spawn's; itest_stop would free it */
	e->proc.log = NULL;
}

static __attribute__((unused)) void apid_teardown(struct apid_env *e)
{
	apid_stop(e);
	if (e->pg)
		PQfinish(e->pg);
	rds_free(e->redis);
	free(e->db_url);
	free(e->ro_url);
	free(e->redis_url);
	free(e->dir);
	free(e->port_file);
	memset(e, 0, sizeof(*e));
}

/* GET path; returns the status, *body (caller frees) if non-NULL. */
static __attribute__((unused)) long apid_get(struct apid_env *e, const char *path, char **body)
{
	char *url = apid_fmt("http://127.0.0.1:%d%s", e->port, path);
	long status = itest_http_get(url, body, NULL);
	free(url);
	return status;
}

static __attribute__((unused)) long apid_get_headers(struct apid_env *e, const char *method,
						     const char *path, char **body, char **headers)
{
	char *url = apid_fmt("http://127.0.0.1:%d%s", e->port, path);
	long status = itest_http(method, url, NULL, body, NULL, headers);
	free(url);
	return status;
}

/* ---- JSON ---- */

static __attribute__((unused)) yajl_val apid_parse(const char *text)
{
	char err[256];
	yajl_val v = yajl_tree_parse(text, err, sizeof(err));
	ck_assert_msg(v, "not JSON (%s): %s", err, text);
	return v;
}

/* Member `key` of an object, or NULL. */
static __attribute__((unused)) yajl_val jkey(yajl_val obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

static __attribute__((unused)) size_t jlen(yajl_val v)
{
	return YAJL_IS_ARRAY(v) ? v->u.array.len : YAJL_IS_OBJECT(v) ? v->u.object.len : 0;
}

static __attribute__((unused)) yajl_val jat(yajl_val arr, size_t i)
{
	ck_assert_msg(YAJL_IS_ARRAY(arr) && i < arr->u.array.len, "no element %zu", i);
	return arr->u.array.values[i];
}

static __attribute__((unused)) const char *jstr(yajl_val obj, const char *key)
{
	yajl_val v = jkey(obj, key);
	ck_assert_msg(v && YAJL_IS_STRING(v), "%s: not a string", key);
	return YAJL_GET_STRING(v);
}

static __attribute__((unused)) double jnum(yajl_val obj, const char *key)
{
	yajl_val v = jkey(obj, key);
	ck_assert_msg(v && YAJL_IS_NUMBER(v), "%s: not a number", key);
	return YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
}

static __attribute__((unused)) bool jbool(yajl_val obj, const char *key)
{
	yajl_val v = jkey(obj, key);
	ck_assert_msg(v && (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)), "%s: not a boolean", key);
	return YAJL_IS_TRUE(v);
}

/* /statistics: the ratio of `hour` in list `cls` of member `what`
 * (congestion, outOfService), after checking the list has 24 hours in order. */
static __attribute__((unused)) double share_at(yajl_val v, const char *what, const char *cls,
					       int hour)
{
	yajl_val list = jkey(jkey(v, what), cls);
	ck_assert_uint_eq(jlen(list), 24);
	yajl_val e = jat(list, (size_t)hour);
	ck_assert_double_eq(jnum(e, "hour"), hour);
	return jnum(e, "ratio");
}

/* /statistics: the congestion ratio of `hour` for class `cls`. */
static __attribute__((unused)) double ratio_at(yajl_val v, const char *cls, int hour)
{
	return share_at(v, "congestion", cls, hour);
}

/* GET, expect `status`, parse the body. */
static __attribute__((unused)) yajl_val apid_json(struct apid_env *e, const char *path, long status)
{
	char *body = NULL;
	long got = apid_get(e, path, &body);
	ck_assert_msg(got == status, "GET %s: %ld, want %ld: %s", path, got, status,
		      body ? body : "");
	yajl_val v = apid_parse(body);
	free(body);
	return v;
}

/* GET expecting 400 whose message contains `part`. */
static __attribute__((unused)) void apid_expect_400(struct apid_env *e, const char *path,
						    const char *part)
{
	yajl_val v = apid_json(e, path, 400);
	const char *msg = jstr(v, "message");
	ck_assert_msg(strstr(msg, part), "GET %s: message '%s' lacks '%s'", path, msg, part);
	yajl_tree_free(v);
}

/* Poll `path` until its body contains `text` (or fail after timeout_ms). */
static __attribute__((unused)) void apid_wait_for(struct apid_env *e, const char *path,
						  const char *text, int timeout_ms)
{
	long deadline = apid_now_ms() + timeout_ms;
	char *body = NULL;
	for (;;) {
		free(body);
		body = NULL;
		long status = apid_get(e, path, &body);
		if (status == 200 && body && strstr(body, text))
			break;
		ck_assert_msg(apid_now_ms() < deadline, "GET %s never showed '%s': %ld %s", path,
			      text, status, body ? body : "");
		usleep(50000);
	}
	free(body);
}

#endif
