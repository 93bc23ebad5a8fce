/* Security properties of apid and the daemons, against real stores:
 *  - SQL-injection strings in every apid query parameter and in the station
 *    path segment get 400 or a literal match (a station named like the
 *    string is found by /stations/search, nothing else), never a 5xx or a
 *    database error, and the tables are unchanged afterwards;
 *  - path traversal (../, %2e%2e, encoded slashes) gets 404, sent on raw
 *    sockets because HTTP clients squash dot segments;
 *  - apid's database role (a LOGIN role in evcharger_ro, migration 0002)
 *    can read but not write: INSERT, UPDATE, DELETE, TRUNCATE and CREATE
 *    are refused with SQLSTATE 42501;
 *  - no secret in logs: ingestd and apid run with known fake secrets (a
 *    service key, a Redis password, a PostgreSQL password) on paths that
 *    log errors about the very connections that carry them (a key the
 *    upstream refuses, a wrong Redis password, a PostgreSQL port nobody
 *    listens on), at debug level; no line they wrote holds any secret. */
#include "testmain.h"

#include <ctype.h>

#include "test_apid.h"

/* The station whose name is an injection string: found only literally. */
#define BAIT_ID	  "SQ000002"
#define BAIT_NAME "' OR '1'='1"

static const char *const injections[] = {
	BAIT_NAME,
	"1; DROP TABLE station; --",
	"\" OR \"\"=\"",
	"1' UNION SELECT stat_id FROM station --",
	"'); DELETE FROM charger; --",
	"1 OR 1=1",
	"$$; SELECT pg_sleep(10); $$",
	"\\'; SELECT 1; --",
	"%' AND 1=0 --",
	"ME' --",
	"1e308",
	"0x41",
};

/* Every query parameter apid reads, the path it belongs to and the other
 * parameters that path needs. */
static const struct {
	const char *name;
	const char *path;
	const char *others;
} targets[] = {
	{"latitude", "/stations", "longitude=127&latitudeDelta=1&longitudeDelta=1"},
	{"longitude", "/stations", "latitude=37.5&latitudeDelta=1&longitudeDelta=1"},
	{"latitudeDelta", "/stations", "latitude=37.5&longitude=127&longitudeDelta=1"},
	{"longitudeDelta", "/stations", "latitude=37.5&longitude=127&latitudeDelta=1"},
	{"companyNames", "/stations",
	 "latitude=37.5&longitude=127&latitudeDelta=1&longitudeDelta=1"},
	{"chargerTypes", "/stations",
	 "latitude=37.5&longitude=127&latitudeDelta=1&longitudeDelta=1"},
	{"capacities", "/stations",
	 "latitude=37.5&longitude=127&latitudeDelta=1&longitudeDelta=1"},
	{"stationIds", "/stations/summary", ""},
	{"q", "/stations/search", ""},
	{"scope", "/stations/search", "q=SQ"},
	{"page", "/stations/search", "q=SQ"},
	{"limit", "/stations/search", "q=SQ"},
	{"regions", "/stations/regions", ""},
	{"latitude", "/stations/clusters",
	 "longitude=127&latitudeDelta=1&longitudeDelta=1&latitudeDivisionSize=2&"
	 "longitudeDivisionSize=2"},
	{"latitudeDivisionSize", "/stations/clusters",
	 "latitude=37.5&longitude=127&latitudeDelta=1&longitudeDelta=1&longitudeDivisionSize=2"},
	{"longitudeDivisionSize", "/stations/clusters",
	 "latitude=37.5&longitude=127&latitudeDelta=1&longitudeDelta=1&latitudeDivisionSize=2"},
	{"dayOfWeek", "/stations/SQ000001/statistics", ""},
};

/* A Redis of its own: the shared one's db indices are taken by other tests,
 * and the secrets test sets a password on it. */
static struct itest_store redis;

static void fixture(struct apid_env *e, char *const *extra)
{
	memset(e, 0, sizeof(*e));
	apid_db_setup(e, NULL);
	ck_assert(itest_redis_start(&redis));
	apid_redis_setup(e, redis.url);
	apid_station(e->pg, "SQ000001", "보안 충전소", "서울특별시 중구 1", 37.5, 127.0, "ME",
		     "", "", "11");
	apid_charger(e->pg, "SQ000001", "01", "02", "7", 2, 0);
	apid_station(e->pg, BAIT_ID, BAIT_NAME, "서울특별시 중구 2", 37.6, 127.1, "ME", "", "",
		     "11");
	apid_charger(e->pg, BAIT_ID, "01", "02", "50", 2, 0);
	apid_start(e, extra, true);
}

static void teardown(struct apid_env *e)
{
	apid_teardown(e);
	itest_store_stop(&redis, "redis");
}

/* Percent-encode every byte but unreserved ones (caller frees). */
static char *encode(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *w = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr("-._~", *p))
			*w++ = (char)*p;
		else
			w += sprintf(w, "%%%02X", *p);
	}
	*w = '\0';
	return out;
}

/* Signs of a database error leaking into an answer. */
static bool looks_like_db_error(const char *body)
{
	return strstr(body, "syntax error") || strstr(body, "SQLSTATE") ||
	       strstr(body, "relation \"") || strstr(body, "ERROR:  ") || strstr(body, "libpq");
}

static long table_rows(PGconn *pg)
{
	return itest_pg_long(pg, "SELECT (SELECT count(*) FROM station) * 1000 + "
				 "(SELECT count(*) FROM charger)");
}

START_TEST(sql_injection_gets_400_or_a_literal_match)
{
	struct apid_env e;
	fixture(&e, NULL);
	long rows = table_rows(e.pg);
	int answers = 0, refused = 0;
	for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
		for (size_t i = 0; i < sizeof(injections) / sizeof(injections[0]); i++) {
			char *value = encode(injections[i]);
			char *path = apid_fmt("%s?%s%s%s=%s", targets[t].path, targets[t].others,
					      *targets[t].others ? "&" : "", targets[t].name,
					      value);
			char *body = NULL;
			long status = apid_get(&e, path, &body);
			ck_assert_msg(status == 200 || status == 400, "GET %s: %ld %s", path,
				      status, body ? body : "");
			ck_assert_msg(body && !looks_like_db_error(body), "GET %s: %s", path,
				      body ? body : "");
			if (status == 400)
				ck_assert_msg(strstr(body, targets[t].name), "GET %s: %s", path,
					      body);
			refused += status == 400;
			answers++;
			free(body);
			free(path);
			free(value);
		}
	}
	/* q: the bait's name finds the bait alone; the other strings nothing */
	for (size_t i = 0; i < sizeof(injections) / sizeof(injections[0]); i++) {
		char *value = encode(injections[i]);
		char *path = apid_fmt("/stations/search?q=%s", value);
		yajl_val v = apid_json(&e, path, 200);
		long want = strcmp(injections[i], BAIT_NAME) == 0 ? 1 : 0;
		ck_assert_msg((long)jnum(v, "totalCount") == want, "GET %s: totalCount %g", path,
			      jnum(v, "totalCount"));
		yajl_tree_free(v);
		free(path);
		free(value);
	}
	/* the station path segment */
	for (size_t i = 0; i < sizeof(injections) / sizeof(injections[0]); i++) {
		char *value = encode(injections[i]);
		for (int f = 0; f < 2; f++) {
			char *path = apid_fmt("/stations/%s%s", value, f ? "/statistics" : "");
			char *body = NULL;
			long status = apid_get(&e, path, &body);
			ck_assert_msg(status == 404 && body && !looks_like_db_error(body),
				      "GET %s: %ld %s", path, status, body ? body : "");
			free(body);
			free(path);
		}
		free(value);
	}
	ck_assert_int_eq(table_rows(e.pg), rows);
	ck_assert_int_eq(apid_get(&e, "/stations/SQ000001", NULL), 200);
	fprintf(stderr, "sql injection: %d requests, %d refused with 400, the rest literal\n",
		answers, refused);
	teardown(&e);
}
END_TEST

START_TEST(path_traversal_gets_404)
{
	struct apid_env e;
	fixture(&e, NULL);
	static const char *const paths[] = {
		"/../../etc/passwd",
		"/stations/../metrics",
		"/stations/../../etc/passwd",
		"/stations/SQ000001/../../healthz",
		"/stations/SQ000001/statistics/../../SQ000001",
		"/stations/%2e%2e/%2e%2e/etc/passwd",
		"/stations/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/stations/..%2fmetrics",
		"/stations/..%2F..%2Fhealthz",
		"/stations%2fSQ000001",
		"/stations/SQ000001%2fstatistics",
		"/%2e%2e/healthz",
		"/./healthz",
		"/healthz/.",
		"/metrics/../healthz",
		"//stations/SQ000001",
		"/stations//SQ000001",
		"/stations/%252e%252e/metrics",
		"/stations/..%5c..%5cmetrics",
		"/stations/%c0%ae%c0%ae/metrics",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char *request =
			apid_fmt("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", paths[i]);
		char *reply = NULL;
		ck_assert_int_gt(itest_raw_exchange(e.port, request, strlen(request), 5000, &reply),
				 0);
		ck_assert_msg(strncmp(reply, "HTTP/1.1 404 ", 13) == 0, "GET %s: %.300s",
			      paths[i], reply);
		ck_assert_msg(!strstr(reply, "root:") && !strstr(reply, "apid_http_"),
			      "GET %s: %.300s", paths[i], reply);
		free(reply);
		free(request);
	}
	teardown(&e);
}
END_TEST

START_TEST(apid_role_cannot_write)
{
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	apid_station(e.pg, "SQ000001", "보안", "서울특별시 중구 1", 37.5, 127.0, "ME", "", "",
		     "11");
	apid_charger(e.pg, "SQ000001", "01", "02", "7", 2, 0);
	PGconn *ro = itest_pg_connect(e.ro_url);
	/* it reads */
	ck_assert_int_eq(itest_pg_long(ro, "SELECT count(*) FROM charger"), 1);
	static const char *const writes[] = {
		"INSERT INTO station (stat_id, name, addr, lat, lng, busi_id, bnm, busi_nm, zcode, "
		"content_hash) VALUES ('SQ999999', 'x', 'x', 37, 127, 'ME', '', '', '11', '\\x00')",
		"UPDATE station SET name = 'owned' WHERE stat_id = 'SQ000001'",
		"DELETE FROM charger",
		"TRUNCATE charger",
		"CREATE TABLE evil (x int)",
		"ALTER TABLE station ADD COLUMN evil int",
		"DROP TABLE charger",
		"INSERT INTO ingest_run DEFAULT VALUES",
	};
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		PGresult *res = PQexec(ro, writes[i]);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && state &&
				      (strcmp(state, "42501") == 0 || strcmp(state, "42P01") == 0),
			      "%s: %s %s", writes[i], PQresStatus(PQresultStatus(res)),
			      PQresultErrorMessage(res));
		PQclear(res);
	}
	PQfinish(ro);
	ck_assert_int_eq(itest_pg_long(e.pg, "SELECT count(*) FROM station WHERE name = '보안'"),
			 1);
	ck_assert_int_eq(itest_pg_long(e.pg, "SELECT count(*) FROM charger"), 1);
	apid_teardown(&e);
}
END_TEST

/* ---- no secret in logs ---- */

#define FAKE_SERVICE_KEY "fake-svc-key-4f1c9e2a"
#define FAKE_REDIS_PASS	 "fake-redis-pass-8b3d"
#define FAKE_REDIS_WRONG "fake-redis-wrong-2e7a"
#define FAKE_PG_PASS	 "fake-pg-pass-5c6f"

static void assert_no_secret(const char *who, const char *log)
{
	static const char *const secrets[] = {FAKE_SERVICE_KEY, FAKE_REDIS_PASS, FAKE_REDIS_WRONG,
					      FAKE_PG_PASS};
	ck_assert_msg(log && *log, "%s wrote no log at all", who);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		const char *hit = strstr(log, secrets[i]);
		if (!hit)
			continue;
		const char *line = hit;
		while (line > log && line[-1] != '\n')
			line--;
		ck_abort_msg("%s logged a secret: %.*s", who, (int)strcspn(line, "\n"), line);
	}
}

/* postgresql://user@host:port/db -> postgresql://user:PASS@host:port/db, or
 * with the port replaced (port > 0). */
static char *with_password(const char *url, int port)
{
	const char *at = strchr(url, '@');
	const char *colon = strchr(at, ':');
	const char *slash = strchr(at, '/');
	ck_assert_ptr_nonnull(colon);
	ck_assert_ptr_nonnull(slash);
	if (port > 0)
		return apid_fmt("%.*s:" FAKE_PG_PASS "%.*s:%d%s", (int)(at - url), url,
				(int)(colon - at), at, port, slash);
	return apid_fmt("%.*s:" FAKE_PG_PASS "%s", (int)(at - url), url, at);
}

START_TEST(no_secret_in_any_log_line)
{
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	ck_assert(itest_redis_start(&redis));
	apid_station(e.pg, "SQ000001", "보안", "서울특별시 중구 1", 37.5, 127.0, "ME", "", "",
		     "11");
	apid_charger(e.pg, "SQ000001", "01", "02", "7", 2, 0);
	/* the private Redis gets a password (over the protocol, not argv) */
	char err[256];
	struct rds *r = rds_new(redis.url, 5000, err, sizeof(err));
	ck_assert_msg(r, "%s", err);
	redisReply *reply = rds_command(
		r, 4, (const char *[]){"CONFIG", "SET", "requirepass", FAKE_REDIS_PASS}, NULL, err,
		sizeof(err));
	ck_assert_msg(reply, "%s", err);
	freeReplyObject(reply);
	rds_free(r);
	const char *slash = strrchr(redis.url, '/');
	const char *host = strstr(redis.url, "://") + 3;
	char *redis_good = apid_fmt("redis://:" FAKE_REDIS_PASS "@%.*s%s", (int)(slash - host),
				    host, slash);
	char *redis_bad = apid_fmt("redis://:" FAKE_REDIS_WRONG "@%.*s%s", (int)(slash - host),
				   host, slash);

	/* ingestd: a key the upstream refuses, at debug level */
	struct itest_sim sim;
	itest_sim_start(&sim, (const char *const[]){"--keys", "another-key", NULL});
	char *pg_url = with_password(e.db_url, 0);
	char *db_env = apid_fmt("DATABASE_URL=%s", pg_url);
	free(pg_url);
	char *up_env = apid_fmt("UPSTREAM_URL=%s", sim.base);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *ingest_argv[] = {bin, "chargers", NULL};
	char *ingest_env[] = {db_env,
			      up_env,
			      "UPSTREAM_KEYS=" FAKE_SERVICE_KEY,
			      "LOG_LEVEL=debug",
			      "LOG_FORMAT=json",
			      "INGESTD_RETRIES=1",
			      "INGESTD_BACKOFF_MS=10",
			      "INGESTD_BACKOFF_MAX_MS=20",
			      NULL};
	char *out = NULL;
	int rc = itest_run(ingest_argv, ingest_env, 60000, &out);
	ck_assert_msg(rc != 0, "ingestd accepted a refused key: %s", out);
	assert_no_secret("ingestd chargers (refused key)", out);
	ck_assert_msg(strstr(out, "SERVICE_KEY_IS_NOT_REGISTERED"), "key not refused: %s", out);
	free(out);
	/* ingestd: PostgreSQL on a port nobody listens on */
	free(db_env);
	pg_url = with_password(e.db_url, itest_free_port());
	db_env = apid_fmt("DATABASE_URL=%s", pg_url);
	free(pg_url);
	ingest_env[0] = db_env;
	rc = itest_run(ingest_argv, ingest_env, 60000, &out);
	ck_assert_msg(rc != 0, "ingestd ran without its database: %s", out);
	assert_no_secret("ingestd chargers (no database)", out);
	ck_assert_msg(strstr(out, ":***@"), "database URL not logged masked: %s", out);
	free(out);
	itest_sim_stop(&sim);

	/* apid: the right Redis password, then a wrong one, then no database */
	char *ro_pw = with_password(e.ro_url, 0);
	free(e.ro_url);
	e.ro_url = ro_pw;
	e.redis_url = redis_good;
	apid_start(&e, (char *[]){"LOG_LEVEL=debug", NULL}, true);
	ck_assert_int_eq(apid_get(&e, "/stations/SQ000001", NULL), 200);
	char *log = itest_proc_output(&e.proc);
	assert_no_secret("apid (serving)", log);
	free(log);
	apid_stop(&e);
	e.redis_url = redis_bad;
	apid_start(&e, (char *[]){"LOG_LEVEL=debug", "APID_WORKERS=2", NULL}, false);
	usleep(3000000); /* it retries Redis and logs why */
	log = itest_proc_output(&e.proc);
	assert_no_secret("apid (wrong Redis password)", log);
	ck_assert_msg(strstr(log, "WRONGPASS"), "no Redis AUTH error logged: %s", log);
	/* once per worker, not at every retry (each 250 ms at first) */
	int refusals = 0;
	for (const char *p = log; (p = strstr(p, "statistics: Redis refused AUTH")); p++)
		refusals++;
	ck_assert_msg(refusals >= 1 && refusals <= 2,
		      "%d statistics refusals logged in 3 s, expected one per worker (2)", refusals);
	free(log);
	apid_stop(&e);
	free(e.ro_url);
	e.ro_url = with_password(e.db_url, itest_free_port());
	e.redis_url = redis_good;
	apid_start(&e, (char *[]){"LOG_LEVEL=debug", NULL}, false);
	usleep(1500000);
	log = itest_proc_output(&e.proc);
	assert_no_secret("apid (no database)", log);
	ck_assert_msg(strstr(log, ":***@"), "database URL not logged masked: %s", log);
	free(log);
	apid_stop(&e);
	free(redis_bad);
	free(up_env);
	free(db_env);
	e.redis_url = NULL;
	free(redis_good);
	teardown(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("security");
	TCase *tc = tcase_create("security");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, sql_injection_gets_400_or_a_literal_match);
	tcase_add_test(tc, path_traversal_gets_404);
	tcase_add_test(tc, apid_role_cannot_write);
	tcase_add_test(tc, no_secret_in_any_log_line);
	suite_add_tcase(s, tc);
	return s;
}
