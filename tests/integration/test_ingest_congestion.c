/* ingestd congestion against real PostgreSQL and a private Redis.
 *
 * Each test fills its own Redis with up to 10,000 chargers whose counters follow
 * a formula of the charger, the slot and a seed, written the two ways
 * realtimed's layout allows (rkeys.h): SET of the whole 760-byte value, or
 * SET of zeros then BITFIELD SET u12/u32 per field; every 11th charger
 * still holds the 676-byte layout 1 (no out-of-service counter), as
 * realtimed left it before layout 2. Expected rows, bytes and
 * markers come from the formula here, never from ingestd's decoder. Covered:
 * every row equals its counter and refused keys land in ingest_reject;
 * kill -9 during the COPY and during the index build, and SIGTERM, leave the
 * previous snapshot current and intact and the next run succeeds; a second
 * concurrent run (or restore) is refused with 75; retention keeps K; a
 * shrunken Redis is not made current (65) unless --force; the restore round
 * trip is byte-exact (a layout-1 counter comes back in layout 2), never
 * overwrites without --replace, and says 66 when
 * there is nothing to restore. */
#include "testmain.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"
#include "rds.h"
#include "rkeys.h"

/* The 10,000 chargers (a quarter under sanitizers: test_size) for
 * rows_equal_redis_counters and the concurrent run, whose first run must
 * last; the kill, SIGTERM and restore tests need more rows than a kill
 * point's target (200,000), not that size: 2,500 chargers (420,000 rows) in
 * both passes. */
#define CHARGERS       test_size(10000)
#define FAULT_CHARGERS 2500L
#define SLOTS	    RKEYS_CONGESTION_SLOTS
#define VALUE_BYTES RKEYS_CONGESTION_VALUE_BYTES

/* ---- the known counters ---- */

/* Charger i's ids: station j (ST + 6 digits) holds 1 + j % 5 chargers. */
struct ids {
	char (*stat)[16];
	char (*chger)[8];
	long n;
};

static struct ids ids_new(long n)
{
	struct ids ids = {calloc((size_t)n, 16), calloc((size_t)n, 8), n};
	long i = 0;
	for (long j = 0; i < n; j++)
		for (int c = 1; c <= 1 + j % 5 && i < n; c++, i++) {
			snprintf(ids.stat[i], 16, "ST%06d", (int)j);
			snprintf(ids.chger[i], 8, "%02d", c % 100);
		}
	return ids;
}

static void ids_free(struct ids *ids)
{
	free(ids->stat);
	free(ids->chger);
}

/* Charger i still holds a layout-1 value. */
static bool is_layout1(long i)
{
	return i % 11 == 5;
}

static uint16_t want_samples(long i, int slot, unsigned seed)
{
	if (i % 97 == 3 && slot == 5)
		return RKEYS_CONGESTION_COUNTER_MAX; /* saturated */
	return (uint16_t)(((unsigned long)i * 31 + (unsigned)slot * 17 + seed * 101) % 2000);
}

static uint16_t want_uses(long i, int slot, unsigned seed)
{
	return (uint16_t)(want_samples(i, slot, seed) *
			  (((unsigned long)i + (unsigned)slot + seed) % 4) / 3);
}

static uint16_t want_out_of_service(long i, int slot, unsigned seed)
{
	if (is_layout1(i))
		return 0;
	return (uint16_t)(want_samples(i, slot, seed) *
			  (((unsigned long)i + 2 * (unsigned)slot + seed) % 3) / 4);
}

static uint32_t want_mark(long i, unsigned seed)
{
	return i % 50 == 0 ? 0 : 1700000000u + (uint32_t)i + seed;
}

/* Counter n at u12 index `at`, big-endian: nibbles 3at..3at+2. */
static void put_u12(unsigned char *v, int at, unsigned n)
{
	for (int k = 0; k < 3; k++) {
		int nibble = 3 * at + k;
		unsigned x = n >> (4 * (2 - k)) & 15;
		unsigned char *b = &v[nibble / 2];
		*b = (unsigned char)(nibble % 2 ? (*b & 0xf0) | x : (*b & 0x0f) | x << 4);
	}
}

static void put_u32(unsigned char *v, uint32_t m)
{
	v[0] = (unsigned char)(m >> 24);
	v[1] = (unsigned char)(m >> 16);
	v[2] = (unsigned char)(m >> 8);
	v[3] = (unsigned char)m;
}

/* The value of charger i, byte by byte as rkeys.h describes it: as filled
 * (layout 1 for is_layout1), or as a restore writes it (layout 2 always).
 * Returns its length. */
static size_t want_value(long i, unsigned seed, bool is_restored, unsigned char *v)
{
	if (is_layout1(i) && !is_restored) {
		for (int slot = 0; slot < SLOTS; slot++) {
			uint16_t s = want_samples(i, slot, seed), u = want_uses(i, slot, seed);
			v[4 * slot] = (unsigned char)(s >> 8);
			v[4 * slot + 1] = (unsigned char)(s & 0xff);
			v[4 * slot + 2] = (unsigned char)(u >> 8);
			v[4 * slot + 3] = (unsigned char)(u & 0xff);
		}
		put_u32(v + 672, want_mark(i, seed));
		return 676;
	}
	memset(v, 0, VALUE_BYTES);
	for (int slot = 0; slot < SLOTS; slot++) {
		put_u12(v, 3 * slot, want_samples(i, slot, seed));
		put_u12(v, 3 * slot + 1, want_uses(i, slot, seed));
		put_u12(v, 3 * slot + 2, want_out_of_service(i, slot, seed));
	}
	put_u32(v + 756, want_mark(i, seed));
	return VALUE_BYTES;
}

/* ---- the environment: a private Redis, a fresh migrated database ---- */

struct env {
	struct itest_store redis;
	char *db;
	PGconn *conn;
	struct rds *r;
	struct ids ids;
};

static void flush_ok(struct rds *r)
{
	char err[512];
	struct rds_batch_result res;
	ck_assert_msg(rds_flush(r, NULL, NULL, &res, err, sizeof(err)) == RDS_OK, "%s", err);
}

static void redis_cmd(struct rds *r, int argc, const char **argv, const size_t *argvlen)
{
	char err[256];
	redisReply *reply = rds_command(r, argc, argv, argvlen, err, sizeof(err));
	ck_assert_msg(reply, "%s", err);
	freeReplyObject(reply);
}

/* Write every charger's counters: most by one SET, every 7th as realtimed
 * creates them (SET of zeros) and then field by field with BITFIELD. */
static void fill(struct env *e, unsigned seed)
{
	static char nums[3 * SLOTS + 1][3][16];
	static const char *argv[4 + 12 * SLOTS + 4];
	for (long i = 0; i < e->ids.n; i++) {
		char key[RKEYS_KEY_MAX];
		int len = rkeys_congestion(key, sizeof(key), e->ids.stat[i], e->ids.chger[i]);
		unsigned char v[VALUE_BYTES];
		if (i % 7 || is_layout1(i)) {
			size_t vlen = want_value(i, seed, false, v);
			const char *set[] = {"SET", key, (const char *)v};
			const size_t set_len[] = {3, (size_t)len, vlen};
			ck_assert(rds_append(e->r, 3, set, set_len));
		} else {
			memset(v, 0, sizeof(v));
			const char *set[] = {"SET", key, (const char *)v};
			const size_t set_len[] = {3, (size_t)len, sizeof(v)};
			ck_assert(rds_append(e->r, 3, set, set_len));
			int argc = 0;
			argv[argc++] = "BITFIELD";
			argv[argc++] = key;
			for (int slot = 0; slot < SLOTS; slot++)
				for (int k = 0; k < 3; k++) {
					int f = 3 * slot + k;
					snprintf(nums[f][0], 16, "#%d", f);
					snprintf(nums[f][1], 16, "%u",
						 k == 0	  ? want_samples(i, slot, seed)
						 : k == 1 ? want_uses(i, slot, seed)
							  : want_out_of_service(i, slot, seed));
					argv[argc++] = "SET";
					argv[argc++] = "u12";
					argv[argc++] = nums[f][0];
					argv[argc++] = nums[f][1];
				}
			snprintf(nums[3 * SLOTS][1], 16, "%u", want_mark(i, seed));
			argv[argc++] = "SET";
			argv[argc++] = "u32";
			argv[argc++] = "#189";
			argv[argc++] = nums[3 * SLOTS][1];
			ck_assert(rds_append(e->r, argc, argv, NULL));
		}
		if (rds_pending(e->r) >= 500)
			flush_ok(e->r);
	}
	flush_ok(e->r);
}

/* `ingestd migrate` from dir (NULL: the repository's migrations/). */
static void migrate_db(const char *db, const char *dir)
{
	char env_db[4200], env_dir[4200];
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
	snprintf(env_dir, sizeof(env_dir), "INGESTD_MIGRATIONS_DIR=%s", dir ? dir : "");
	char path[4096];
	snprintf(path, sizeof(path), "%s", itest_bin("ingestd"));
	char *argv[] = {path, "migrate", NULL};
	char *envv[] = {env_db, dir ? env_dir : NULL, NULL};
	char *out = NULL;
	ck_assert_msg(itest_run(argv, envv, 60000, &out) == 0, "migrate: %s", out);
	free(out);
}

/* A private Redis and a fresh database migrated from dir (NULL: all of the
 * repository's migrations). */
static void env_start_at(struct env *e, long chargers, const char *dir)
{
	memset(e, 0, sizeof(*e));
	ck_assert(itest_redis_start(&e->redis));
	char err[256];
	e->r = rds_new(e->redis.url, 10000, err, sizeof(err));
	ck_assert_msg(e->r, "%s", err);
	e->db = itest_create_db("cg");
	migrate_db(e->db, dir);
	e->conn = itest_pg_connect(e->db);
	e->ids = ids_new(chargers);
}

static void env_start(struct env *e, long chargers)
{
	env_start_at(e, chargers, NULL);
}

static void env_stop(struct env *e)
{
	ids_free(&e->ids);
	rds_free(e->r);
	PQfinish(e->conn);
	itest_store_stop(&e->redis, "redis");
	free(e->db);
}

/* ---- running ingestd ---- */

struct cmd {
	char path[4096], env_db[4200], env_redis[256];
	char *argv[8];
	char *envv[8];
};

static struct cmd *cmd_new(const struct env *e, const char *a1, const char *a2, const char *setting)
{
	struct cmd *c = calloc(1, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", itest_bin("ingestd"));
	snprintf(c->env_db, sizeof(c->env_db), "DATABASE_URL=%s", e->db);
	snprintf(c->env_redis, sizeof(c->env_redis), "REDIS_URL=%s", e->redis.url);
	int n = 0;
	c->argv[n++] = c->path;
	c->argv[n++] = "congestion";
	if (a1)
		c->argv[n++] = (char *)a1;
	if (a2)
		c->argv[n++] = (char *)a2;
	n = 0;
	c->envv[n++] = c->env_db;
	c->envv[n++] = c->env_redis;
	c->envv[n++] = "LOG_FORMAT=json";
	c->envv[n++] = "INGESTD_PROGRESS_SECONDS=1";
	if (setting)
		c->envv[n++] = (char *)setting;
	return c;
}

static void assert_clean(const char *out)
{
	ck_assert_msg(!out || (!strstr(out, "Sanitizer") && !strstr(out, "runtime error")),
		      "sanitizer report from ingestd:\n%s", out);
}

static int ingest(const struct env *e, const char *a1, const char *a2, const char *setting,
		  char **out)
{
	struct cmd *c = cmd_new(e, a1, a2, setting);
	char *text = NULL;
	int rc = itest_run(c->argv, c->envv, 240000, &text);
	assert_clean(text);
	free(c);
	if (out)
		*out = text;
	else
		free(text);
	return rc;
}

static void spawn(const struct env *e, struct itest_proc *p, const char *setting)
{
	struct cmd *c = cmd_new(e, NULL, NULL, setting);
	ck_assert(itest_spawn(p, c->argv, c->envv));
	free(c);
}

static void assert_contains(const char *text, const char *needle)
{
	ck_assert_msg(text && strstr(text, needle), "output lacks '%s':\n%s", needle,
		      text ? text : "(none)");
}

static long q(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long q(PGconn *conn, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return itest_pg_long(conn, sql);
}

static long current_snapshot(PGconn *conn)
{
	return q(conn, "SELECT coalesce((SELECT id FROM congestion_snapshot WHERE is_current), 0)");
}

/* ---- checks ---- */

/* Every row of the `congestion` view (the current snapshot) equals the
 * formula, and every charger's marker too; nothing more, nothing less. Rows
 * are read in primary-key order (station, weekday, hour, charger), which
 * needs no sort. */
static void check_rows(const struct env *e, unsigned seed)
{
	PGconn *conn = e->conn;
	PQclear(itest_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
	PQclear(itest_pg_exec(
		conn,
		"DECLARE rows NO SCROLL CURSOR FOR SELECT stat_id, chger_id, weekday, "
		"hour, samples, uses, out_of_service FROM congestion ORDER BY stat_id, weekday, "
		"hour, chger_id"));
	long k = 0;
	long first = 0, count = 0; /* the station of row k: chargers [first, first + count) */
	long in_station = 0;	   /* rows of it seen */
	for (;;) {
		PGresult *res = itest_pg_exec(conn, "FETCH 50000 FROM rows");
		int n = PQntuples(res);
		for (int r = 0; r < n; r++, k++, in_station++) {
			if (in_station == count * SLOTS) {
				first += count;
				ck_assert_msg(first < e->ids.n, "more rows than %ld chargers",
					      e->ids.n);
				for (count = 1;
				     first + count < e->ids.n &&
				     !strcmp(e->ids.stat[first + count], e->ids.stat[first]);
				     count++)
					;
				in_station = 0;
			}
			long i = first + in_station % count;
			int slot = (int)(in_station / count);
			const char *stat = PQgetvalue(res, r, 0), *chger = PQgetvalue(res, r, 1);
			int weekday = atoi(PQgetvalue(res, r, 2)),
			    hour = atoi(PQgetvalue(res, r, 3));
			long samples = atol(PQgetvalue(res, r, 4)),
			     uses = atol(PQgetvalue(res, r, 5)), down = atol(PQgetvalue(res, r, 6));
			ck_assert_msg(!strcmp(stat, e->ids.stat[i]) &&
					      !strcmp(chger, e->ids.chger[i]) &&
					      weekday * 24 + hour == slot &&
					      samples == want_samples(i, slot, seed) &&
					      uses == want_uses(i, slot, seed) &&
					      down == want_out_of_service(i, slot, seed),
				      "row %ld: %s %s %d %d %ld %ld %ld, want %s %s %d %d %u %u %u",
				      k, stat, chger, weekday, hour, samples, uses, down,
				      e->ids.stat[i], e->ids.chger[i], slot / 24, slot % 24,
				      want_samples(i, slot, seed), want_uses(i, slot, seed),
				      want_out_of_service(i, slot, seed));
		}
		PQclear(res);
		if (n == 0)
			break;
	}
	ck_assert_int_eq(k, e->ids.n * SLOTS);
	ck_assert_int_eq(first + count, e->ids.n);
	PGresult *res =
		itest_pg_exec(conn, "SELECT stat_id, chger_id, last_sample FROM congestion_charger "
				    "WHERE snapshot_id = (SELECT id FROM congestion_snapshot "
				    "WHERE is_current) ORDER BY stat_id, chger_id");
	ck_assert_int_eq(PQntuples(res), e->ids.n);
	for (long i = 0; i < e->ids.n; i++)
		ck_assert_msg(!strcmp(PQgetvalue(res, (int)i, 0), e->ids.stat[i]) &&
				      !strcmp(PQgetvalue(res, (int)i, 1), e->ids.chger[i]) &&
				      strtoul(PQgetvalue(res, (int)i, 2), NULL, 10) ==
					      want_mark(i, seed),
			      "charger %ld: %s %s %s", i, PQgetvalue(res, (int)i, 0),
			      PQgetvalue(res, (int)i, 1), PQgetvalue(res, (int)i, 2));
	PQclear(res);
	PQclear(itest_pg_exec(conn, "COMMIT"));
}

struct compare {
	const struct env *e;
	long first;
	unsigned seed;
	bool is_restored;
	long differ;
	long first_differ;
};

static void on_get(void *arg, size_t index, const redisReply *reply)
{
	struct compare *c = arg;
	long i = c->first + (long)index;
	unsigned char v[VALUE_BYTES];
	size_t len = want_value(i, c->seed, c->is_restored, v);
	if (reply->type != REDIS_REPLY_STRING || reply->len != len ||
	    memcmp(reply->str, v, len) != 0) {
		if (!c->differ++)
			c->first_differ = i;
	}
}

/* How many of Redis' counters differ from the formula, byte for byte (as
 * filled, or as restored). */
static long redis_differs(const struct env *e, unsigned seed, bool is_restored, long *first)
{
	struct compare c = {e, 0, seed, is_restored, 0, -1};
	for (long i = 0; i < e->ids.n; i++) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), e->ids.stat[i], e->ids.chger[i]);
		ck_assert(rds_append(e->r, 2, (const char *[]){"GET", key}, NULL));
		if (rds_pending(e->r) == 1000 || i == e->ids.n - 1) {
			char err[512];
			ck_assert_msg(rds_flush(e->r, on_get, &c, NULL, err, sizeof(err)) == RDS_OK,
				      "%s", err);
			c.first = i + 1;
		}
	}
	if (first)
		*first = c.first_differ;
	return c.differ;
}

static long dbsize(const struct env *e)
{
	char err[256];
	redisReply *reply =
		rds_command(e->r, 1, (const char *[]){"DBSIZE"}, NULL, err, sizeof(err));
	ck_assert_msg(reply, "%s", err);
	long n = (long)reply->integer;
	freeReplyObject(reply);
	return n;
}

static void snapshot_ok(const struct env *e, const char *setting)
{
	char *out = NULL;
	int rc = ingest(e, NULL, NULL, setting, &out);
	ck_assert_msg(rc == 0, "ingestd congestion: exit %d\n%s", rc, out);
	free(out);
}

/* ---- tests ---- */

START_TEST(rows_equal_redis_counters)
{
	struct env e;
	env_start(&e, CHARGERS);
	fill(&e, 1);
	/* the fill is what the formula says */
	ck_assert_int_eq(redis_differs(&e, 1, false, NULL), 0);
	/* refused: a value without the marker, a hash, more uses than
	 * samples, more out of service than samples, names that are no
	 * counter of a charger */
	unsigned char v[VALUE_BYTES];
	want_value(1, 1, true, v);
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:cg:BAD1:01", (const char *)v},
		  (const size_t[]){3, 13, RKEYS_CONGESTION_BYTES});
	redis_cmd(e.r, 4, (const char *[]){"HSET", "ev:cg:BAD2:01", "f", "v"}, NULL);
	unsigned char w[VALUE_BYTES];
	memcpy(w, v, sizeof(w));
	put_u12(v, 3 * 9 + 1, 4095); /* slot 9: uses 4095 > samples */
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:cg:BAD3:01", (const char *)v},
		  (const size_t[]){3, 13, VALUE_BYTES});
	put_u12(w, 3 * 10 + 2, 4095); /* slot 10: out of service 4095 > samples */
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:cg:BAD4:01", (const char *)w},
		  (const size_t[]){3, 13, VALUE_BYTES});
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:cg:NOCOLON", "x"}, NULL);
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:cg:BAD\x01:01", "x"}, NULL);
	/* other keys of the layout are not counters */
	redis_cmd(e.r, 3, (const char *[]){"SET", "ev:st:ST000000", "1:1:0 01=2:1732500000"}, NULL);

	char *out = NULL;
	int rc = ingest(&e, NULL, NULL, NULL, &out);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	char want[200];
	snprintf(want, sizeof(want),
		 "\"msg\":\"congestion run 1 ok: snapshot 1 current: %ld chargers, %ld rows, "
		 "6 refused",
		 CHARGERS, CHARGERS * SLOTS);
	assert_contains(out, want);
	free(out);
	check_rows(&e, 1);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM congestion"), CHARGERS * SLOTS);
	/* the snapshot and run rows */
	PGresult *res = itest_pg_exec(
		e.conn, "SELECT outcome, chargers, rows, rejected, samples, extract(epoch FROM "
			"last_sample)::bigint, "
			"finished_at IS NOT NULL, out_of_service FROM congestion_snapshot "
			"WHERE is_current");
	ck_assert_int_eq(PQntuples(res), 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "ok");
	ck_assert_int_eq(atol(PQgetvalue(res, 0, 1)), CHARGERS);
	ck_assert_int_eq(atol(PQgetvalue(res, 0, 2)), CHARGERS * SLOTS);
	ck_assert_str_eq(PQgetvalue(res, 0, 3), "6");
	unsigned long long total = 0, total_down = 0;
	uint32_t last = 0;
	for (long i = 0; i < CHARGERS; i++) {
		for (int slot = 0; slot < SLOTS; slot++) {
			total += want_samples(i, slot, 1);
			total_down += want_out_of_service(i, slot, 1);
		}
		if (want_mark(i, 1) > last)
			last = want_mark(i, 1);
	}
	ck_assert_uint_eq(strtoull(PQgetvalue(res, 0, 4), NULL, 10), total);
	ck_assert_uint_eq(strtoul(PQgetvalue(res, 0, 5), NULL, 10), last);
	ck_assert_str_eq(PQgetvalue(res, 0, 6), "t");
	ck_assert_uint_gt(total_down, 0);
	ck_assert_uint_eq(strtoull(PQgetvalue(res, 0, 7), NULL, 10), total_down);
	PQclear(res);
	ck_assert_int_eq(q(e.conn,
			   "SELECT count(*) FROM ingest_run WHERE job = 'congestion' AND status = "
			   "'ok' AND records = %ld AND inserted = %ld AND rejected = 6",
			   CHARGERS + 6, CHARGERS * SLOTS),
			 1);
	res = itest_pg_exec(e.conn,
			    "SELECT reason, coalesce(stat_id, '-'), detail FROM ingest_reject "
			    "ORDER BY reason, stat_id");
	ck_assert_int_eq(PQntuples(res), 6);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "bad_counts");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "BAD3");
	ck_assert_msg(strstr(PQgetvalue(res, 0, 2), "slot 9 (Monday 9 h): 4095 uses of"), "%s",
		      PQgetvalue(res, 0, 2));
	ck_assert_str_eq(PQgetvalue(res, 1, 0), "bad_counts");
	ck_assert_str_eq(PQgetvalue(res, 1, 1), "BAD4");
	ck_assert_msg(strstr(PQgetvalue(res, 1, 2), "slot 10 (Monday 10 h): 4095 out of service of"),
		      "%s", PQgetvalue(res, 1, 2));
	ck_assert_str_eq(PQgetvalue(res, 2, 0), "bad_key");
	ck_assert_str_eq(PQgetvalue(res, 3, 0), "bad_key");
	ck_assert_str_eq(PQgetvalue(res, 4, 0), "bad_length");
	ck_assert_str_eq(PQgetvalue(res, 4, 1), "BAD1");
	ck_assert_str_eq(PQgetvalue(res, 5, 0), "bad_type");
	ck_assert_str_eq(PQgetvalue(res, 5, 1), "BAD2");
	PQclear(res);
	/* the statistics query answers from the primary key of the current
	 * snapshot, the other partitions pruned */
	res = itest_pg_exec(e.conn,
			    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT hour, sum(samples), "
			    "sum(uses) FROM congestion WHERE stat_id = 'ST000100' AND weekday = 2 "
			    "GROUP BY hour");
	bool uses_pkey = false;
	for (int i = 0; i < PQntuples(res); i++)
		uses_pkey |= strstr(PQgetvalue(res, i, 0), "hours_1_pkey") != NULL;
	ck_assert(uses_pkey);
	PQclear(res);
	ck_assert_int_eq(
		q(e.conn,
		  "SELECT count(*) FROM congestion WHERE stat_id = 'ST000100' AND weekday = 2"),
		24 * (1 + 100 % 5));
	/* a second run with nothing changed: a new snapshot, equal rows */
	snapshot_ok(&e, NULL);
	ck_assert_int_eq(current_snapshot(e.conn), 2);
	check_rows(&e, 1);
	env_stop(&e);
}
END_TEST

/* Wait until the running job's backend reports progress in `view` (a
 * pg_stat_progress_* view) with `column` over `min`. False if the process
 * ended first. */
static bool wait_phase(const struct env *e, struct itest_proc *p, const char *view,
		       const char *column, long min)
{
	for (int i = 0; i < 12000; i++) {
		if (q(e->conn,
		      "SELECT count(*) FROM %s v JOIN pg_stat_activity a USING (pid) "
		      "WHERE a.application_name = 'ingestd congestion' "
		      "AND a.datname = current_database() AND v.%s > %ld",
		      view, column, min) > 0)
			return true;
		if (itest_wait(p, 0) >= 0)
			return false;
		usleep(5000);
	}
	return false;
}

/* The killed client's backend notices within a second and rolls back. */
static void wait_backend_gone(const struct env *e)
{
	for (int i = 0; i < 200; i++) {
		if (q(e->conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
			       "'ingestd congestion' AND datname = current_database()") == 0)
			return;
		usleep(50000);
	}
	ck_abort_msg("the killed run's backend is still there");
}

/* A digest of what the `congestion` view shows: the rows, each with its
 * values, order-independent. Cheap next to check_rows. Caller frees. */
static char *digest(const struct env *e)
{
	PGresult *res = itest_pg_exec(
		e->conn, "SELECT count(*) || ':' || sum(samples) || ':' || sum(uses) || ':' || "
			 "sum(out_of_service) || ':' || "
			 "sum(hashtext(stat_id || '/' || chger_id || '/' || weekday || '/' || hour "
			 "|| '/' || "
			 "samples || '/' || uses || '/' || out_of_service)::bigint) FROM congestion");
	char *d = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return d;
}

/* The previous snapshot is current and shows what it showed, the dead
 * run's tables gone. */
static void assert_previous(const struct env *e, long snapshot, const char *want_digest)
{
	ck_assert_int_eq(current_snapshot(e->conn), snapshot);
	char *d = digest(e);
	ck_assert_str_eq(d, want_digest);
	free(d);
	ck_assert_int_eq(q(e->conn,
			   "SELECT count(*) FROM pg_tables WHERE schemaname = 'congestion_snap' "
			   "AND tablename NOT IN ('hours_%ld', 'chargers_%ld')",
			   snapshot, snapshot),
			 0);
}

START_TEST(kill9_keeps_previous_snapshot)
{
	struct env e;
	env_start(&e, FAULT_CHARGERS);
	fill(&e, 1);
	snapshot_ok(&e, NULL);
	check_rows(&e, 1);
	char *before = digest(&e);
	fill(&e, 2);
	/* kill -9 while the rows stream in, then while the index is built */
	static const struct {
		const char *view, *column;
		long min;
	} points[] = {
		{"pg_stat_progress_copy", "tuples_processed", 200000},
		{"pg_stat_progress_create_index", "tuples_done", -1},
	};
	long snapshot = 2;
	for (size_t k = 0; k < ARRAY_LEN(points); k++, snapshot++) {
		struct itest_proc p;
		spawn(&e, &p, NULL);
		ck_assert_msg(wait_phase(&e, &p, points[k].view, points[k].column, points[k].min),
			      "the run ended before %s", points[k].view);
		itest_signal(&p, SIGKILL);
		ck_assert_int_eq(itest_wait(&p, 10000), 128 + SIGKILL);
		wait_backend_gone(&e);
		assert_previous(&e, 1, before);
		/* the dead run's rows say 'running' until the next run */
		ck_assert_int_eq(q(e.conn,
				   "SELECT count(*) FROM congestion_snapshot WHERE id = %ld "
				   "AND outcome = 'running'",
				   snapshot),
				 1);
		itest_stop(&p);
	}
	char *out = NULL;
	ck_assert_int_eq(ingest(&e, NULL, NULL, NULL, &out), 0);
	assert_contains(out, "marked 1 abandoned run(s) and 1 snapshot(s) failed");
	free(out);
	ck_assert_int_eq(current_snapshot(e.conn), 4);
	check_rows(&e, 2);
	free(before);
	ck_assert_int_eq(q(e.conn,
			   "SELECT count(*) FROM congestion_snapshot WHERE outcome = 'failed' "
			   "AND error LIKE 'abandoned:%%'"),
			 2);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM ingest_run WHERE status = 'failed' "
				   "AND error LIKE 'abandoned:%%'"),
			 2);
	env_stop(&e);
}
END_TEST

START_TEST(sigterm_rolls_back)
{
	struct env e;
	env_start(&e, FAULT_CHARGERS);
	fill(&e, 1);
	snapshot_ok(&e, NULL);
	char *before = digest(&e);
	fill(&e, 2);
	struct itest_proc p;
	spawn(&e, &p, NULL);
	ck_assert(wait_phase(&e, &p, "pg_stat_progress_copy", "tuples_processed", 100000));
	itest_signal(&p, SIGTERM);
	ck_assert_int_eq(itest_wait(&p, 20000), 128 + SIGTERM);
	char *out = itest_proc_output(&p);
	assert_clean(out);
	assert_contains(out, "failed: interrupted by Terminated");
	free(out);
	itest_stop(&p);
	assert_previous(&e, 1, before);
	free(before);
	ck_assert_int_eq(q(e.conn,
			   "SELECT count(*) FROM congestion_snapshot WHERE id = 2 AND outcome = "
			   "'failed' AND error = 'interrupted by Terminated'"),
			 1);
	ck_assert_int_eq(
		q(e.conn, "SELECT count(*) FROM ingest_run WHERE id = 2 AND status = 'failed'"), 1);
	snapshot_ok(&e, NULL);
	check_rows(&e, 2);
	env_stop(&e);
}
END_TEST

START_TEST(second_run_refused)
{
	struct env e;
	env_start(&e, CHARGERS);
	fill(&e, 1);
	/* one GET a round trip: the first run lasts a while */
	struct itest_proc p;
	spawn(&e, &p, "INGESTD_CONGESTION_BATCH=1");
	for (int i = 0;
	     i < 2000 && q(e.conn, "SELECT count(*) FROM ingest_run WHERE status = 'running'") == 0;
	     i++)
		usleep(5000);
	/* the run's ingest_run row held: it cannot record its end, so it stays
	 * in progress (its lock held) until both others were refused, however
	 * fast it reads Redis beside two sanitized start-ups on a loaded machine */
	PGconn *holder = itest_pg_connect(e.db);
	PQclear(itest_pg_exec(holder, "BEGIN"));
	ck_assert_int_eq(q(holder, "SELECT count(*) FROM (SELECT id FROM ingest_run WHERE status = "
				   "'running' FOR UPDATE) AS held"),
			 1);
	char *out = NULL;
	ck_assert_int_eq(ingest(&e, NULL, NULL, NULL, &out), 75);
	assert_contains(
		out,
		"another congestion snapshot or restore is in progress: congestion run 1 (pid");
	free(out);
	ck_assert_int_eq(ingest(&e, "--restore", NULL, NULL, &out), 75);
	free(out);
	PQclear(itest_pg_exec(holder, "COMMIT"));
	PQfinish(holder);
	ck_assert_int_eq(itest_wait(&p, 120000), 0);
	itest_stop(&p);
	/* the refused ones left no rows */
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM ingest_run"), 1);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM congestion_snapshot"), 1);
	check_rows(&e, 1);
	env_stop(&e);
}
END_TEST

/* Leave `table` "detach pending", as a DETACH ... CONCURRENTLY cut short
 * between its two transactions does: a reader holds a snapshot, the detach
 * waits for it in its second step and is cancelled there. */
static void pend_detach(const struct env *e, const char *table)
{
	PGconn *reader = itest_pg_connect(e->db), *detacher = itest_pg_connect(e->db);
	PQclear(itest_pg_exec(reader, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
	PQclear(itest_pg_exec(reader, "SELECT count(*) FROM congestion_history"));
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "ALTER TABLE congestion_history DETACH PARTITION congestion_snap.%s CONCURRENTLY",
		 table);
	ck_assert(PQsendQuery(detacher, sql));
	for (int i = 0;
	     i < 1000 && q(e->conn, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending") == 0;
	     i++)
		usleep(10000);
	ck_assert_int_eq(q(e->conn, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"), 1);
	usleep(100000);
	PGcancel *cancel = PQgetCancel(detacher);
	char err[256];
	ck_assert(PQcancel(cancel, err, sizeof(err)));
	PQfreeCancel(cancel);
	PGresult *res;
	bool failed = false;
	while ((res = PQgetResult(detacher)) != NULL) {
		failed |= PQresultStatus(res) == PGRES_FATAL_ERROR;
		PQclear(res);
	}
	ck_assert(failed);
	PQclear(itest_pg_exec(reader, "COMMIT"));
	PQfinish(reader);
	PQfinish(detacher);
	ck_assert_int_eq(q(e->conn, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"), 1);
}

START_TEST(retention_keeps_k)
{
	struct env e;
	env_start(&e, 500);
	fill(&e, 1);
	for (int run = 1; run <= 4; run++) {
		if (run == 4) {
			/* what a retention cut short by a crash leaves: snapshot 2
			 * (the one run 4 drops) half detached, a table attached to
			 * nothing */
			pend_detach(&e, "hours_2");
			PQclear(itest_pg_exec(e.conn, "CREATE TABLE congestion_snap.hours_999 "
						      "(LIKE congestion_history)"));
		}
		char *out = NULL;
		int rc = ingest(&e, NULL, NULL, "INGESTD_CONGESTION_KEEP=2", &out);
		ck_assert_msg(rc == 0, "run %d: exit %d\n%s", run, rc, out);
		if (run == 4)
			assert_contains(out, "1 detach(es) finalized, 2 table(s) dropped");
		free(out);
	}
	ck_assert_int_eq(current_snapshot(e.conn), 4);
	ck_assert_int_eq(
		q(e.conn, "SELECT count(*) FROM congestion_snapshot WHERE dropped_at IS NULL"), 2);
	ck_assert_int_eq(q(e.conn,
			   "SELECT count(*) FROM congestion_snapshot WHERE dropped_at IS NOT NULL "
			   "AND id IN (1, 2)"),
			 2);
	PGresult *res =
		itest_pg_exec(e.conn, "SELECT string_agg(tablename, ',' ORDER BY tablename) "
				      "FROM pg_tables WHERE schemaname = 'congestion_snap'");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "chargers_3,chargers_4,hours_3,hours_4");
	PQclear(res);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
				   "'congestion_history'::regclass"),
			 2);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM congestion_history"), 2 * 500 * SLOTS);
	/* history across snapshots answers per snapshot */
	ck_assert_int_eq(q(e.conn, "SELECT count(DISTINCT snapshot_id) FROM congestion_history"),
			 2);
	check_rows(&e, 1);
	env_stop(&e);
}
END_TEST

START_TEST(shrunk_redis_not_current)
{
	struct env e;
	env_start(&e, 2000);
	fill(&e, 1);
	snapshot_ok(&e, NULL);
	/* Redis lost most counters */
	for (long i = 0; i < e.ids.n; i += 2) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), e.ids.stat[i], e.ids.chger[i]);
		ck_assert(rds_append(e.r, 2, (const char *[]){"DEL", key}, NULL));
	}
	flush_ok(e.r);
	char *out = NULL;
	ck_assert_int_eq(ingest(&e, NULL, NULL, NULL, &out), 65);
	assert_contains(out, "1000 chargers, under 0.90 of the 2000 of snapshot 1");
	free(out);
	ck_assert_int_eq(current_snapshot(e.conn), 1);
	check_rows(&e, 1);
	ck_assert_int_eq(
		q(e.conn,
		  "SELECT count(*) FROM congestion_snapshot WHERE id = 2 AND outcome = 'failed'"),
		1);
	/* samples shrinking alone also counts (the same keys, counts reset) */
	redis_cmd(e.r, 1, (const char *[]){"FLUSHDB"}, NULL);
	for (long i = 0; i < e.ids.n; i++) {
		char key[RKEYS_KEY_MAX];
		unsigned char zeros[VALUE_BYTES] = {0};
		int len = rkeys_congestion(key, sizeof(key), e.ids.stat[i], e.ids.chger[i]);
		ck_assert(rds_append(e.r, 3, (const char *[]){"SET", key, (const char *)zeros},
				     (const size_t[]){3, (size_t)len, VALUE_BYTES}));
	}
	flush_ok(e.r);
	ck_assert_int_eq(ingest(&e, NULL, NULL, NULL, &out), 65);
	assert_contains(out, "0 samples, under 0.90 of the");
	free(out);
	ck_assert_int_eq(current_snapshot(e.conn), 1);
	/* an operator accepts it */
	ck_assert_int_eq(ingest(&e, "--force", NULL, NULL, NULL), 0);
	ck_assert_int_eq(current_snapshot(e.conn), 4);
	ck_assert_int_eq(q(e.conn, "SELECT sum(samples) FROM congestion"), 0);
	env_stop(&e);
}
END_TEST

START_TEST(restore_round_trip_exact)
{
	struct env e;
	env_start(&e, FAULT_CHARGERS);
	char *out = NULL;
	/* nothing to restore yet */
	ck_assert_int_eq(ingest(&e, "--restore", NULL, NULL, &out), 66);
	assert_contains(out, "no current snapshot to restore");
	free(out);
	fill(&e, 3);
	snapshot_ok(&e, NULL);
	/* Redis is lost */
	redis_cmd(e.r, 1, (const char *[]){"FLUSHALL"}, NULL);
	ck_assert_int_eq(ingest(&e, "--restore", NULL, NULL, &out), 0);
	char want[200];
	snprintf(want, sizeof(want), "%ld chargers (%ld rows), %ld counters written, 0 existing kept",
		 FAULT_CHARGERS, FAULT_CHARGERS * SLOTS, FAULT_CHARGERS);
	assert_contains(out, want);
	free(out);
	long first = -1;
	long differ = redis_differs(&e, 3, true, &first);
	ck_assert_msg(differ == 0, "%ld counters differ, first charger %ld", differ, first);
	ck_assert_int_eq(dbsize(&e), FAULT_CHARGERS);

	/* a counter that exists is left alone... */
	char key[RKEYS_KEY_MAX];
	rkeys_congestion(key, sizeof(key), e.ids.stat[5], e.ids.chger[5]);
	redis_cmd(e.r, 6, (const char *[]){"BITFIELD", key, "INCRBY", "u12", "#0", "1"}, NULL);
	ck_assert_int_eq(ingest(&e, "--restore", NULL, NULL, &out), 0);
	snprintf(want, sizeof(want), "0 counters written, %ld existing kept", FAULT_CHARGERS);
	assert_contains(out, want);
	free(out);
	ck_assert_int_eq(redis_differs(&e, 3, true, &first), 1);
	ck_assert_int_eq(first, 5);
	/* ...unless --replace; a kept snapshot by id */
	ck_assert_int_eq(ingest(&e, "--restore", "--replace", NULL, NULL), 0);
	ck_assert_int_eq(redis_differs(&e, 3, true, NULL), 0);
	fill(&e, 4);
	snapshot_ok(&e, "INGESTD_CONGESTION_MIN_RATIO=0");
	ck_assert_int_eq(current_snapshot(e.conn), 2);
	struct cmd *c = cmd_new(&e, "--restore", "--replace", NULL);
	c->argv[4] = "--snapshot=1";
	ck_assert_int_eq(itest_run(c->argv, c->envv, 120000, NULL), 0);
	free(c);
	ck_assert_int_eq(redis_differs(&e, 3, true, NULL), 0);
	ck_assert_int_eq(ingest(&e, "--restore", "--snapshot=7", NULL, NULL), 66);
	ck_assert_int_eq(q(e.conn,
			   "SELECT count(*) FROM ingest_run WHERE job = 'congestion_restore' "
			   "AND status = 'ok'"),
			 4);
	env_stop(&e);
}
END_TEST

START_TEST(bad_usage_and_config)
{
	struct env e;
	env_start(&e, 10);
	ck_assert_int_eq(ingest(&e, "--replace", NULL, NULL, NULL), 64);
	ck_assert_int_eq(ingest(&e, "--restore", "--force", NULL, NULL), 64);
	ck_assert_int_eq(ingest(&e, "--snapshot", "x", NULL, NULL), 64);
	ck_assert_int_eq(ingest(&e, "--bogus", NULL, NULL, NULL), 64);
	ck_assert_int_eq(ingest(&e, NULL, NULL, "INGESTD_CONGESTION_KEEP=0", NULL), 78);
	/* Redis unreachable: 69, nothing current changes */
	char *out = NULL;
	struct cmd *c = cmd_new(&e, NULL, NULL, NULL);
	int port = itest_free_port();
	snprintf(c->env_redis, sizeof(c->env_redis), "REDIS_URL=redis://127.0.0.1:%d/0", port);
	ck_assert_int_eq(itest_run(c->argv, c->envv, 60000, &out), 69);
	free(out);
	free(c);
	/* a database not migrated: 78 */
	char *bare = itest_create_db("cgbare");
	c = cmd_new(&e, NULL, NULL, NULL);
	snprintf(c->env_db, sizeof(c->env_db), "DATABASE_URL=%s", bare);
	ck_assert_int_eq(itest_run(c->argv, c->envv, 60000, &out), 78);
	assert_contains(out, "run `ingestd migrate` first");
	free(out);
	free(c);
	free(bare);
	env_stop(&e);
}
END_TEST

/* A snapshot taken before migration 0005 (its partition has no
 * out_of_service column): 0005 adds the column to the partitioned parent,
 * so the kept partition gets it with its rows at 0 and the CHECK, the
 * `congestion` view shows it, and a restore of that snapshot writes
 * layout-2 counters with out of service 0 and everything else kept. */
START_TEST(migration_0005_upgrades_kept_snapshots)
{
	/* the repository's migrations before 0005 */
	char *src = itest_path("migrations"), *old = itest_tmpdir("migrations_0004");
	static const char *const files[] = {"0001_init.sql", "0002_readonly_role.sql",
					    "0003_ingest_stage.sql",
					    "0004_congestion_snapshots.sql"};
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char from[4200], to[4200];
		snprintf(from, sizeof(from), "%s/%s", src, files[i]);
		snprintf(to, sizeof(to), "%s/%s", old, files[i]);
		ck_assert_int_eq(symlink(from, to), 0);
	}
	struct env e;
	env_start_at(&e, 2, old);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
				   "'congestion_history'::regclass AND attname = 'out_of_service'"),
			 0);
	PQclear(itest_pg_exec(
		e.conn,
		"INSERT INTO congestion_snapshot (run_id, outcome, finished_at, is_current, "
		" chargers, rows) VALUES (1, 'ok', now(), true, 2, 336);"
		"CREATE TABLE congestion_snap.hours_1 PARTITION OF congestion_history "
		" FOR VALUES IN (1);"
		"CREATE TABLE congestion_snap.chargers_1 PARTITION OF congestion_charger "
		" FOR VALUES IN (1);"
		"INSERT INTO congestion_history SELECT 1, 'ST000000', c, d, h, 10 + h + d, h "
		" FROM (VALUES ('01'), ('02')) v(c), generate_series(0, 6) d, "
		" generate_series(0, 23) h;"
		"INSERT INTO congestion_charger VALUES (1, 'ST000000', '01', 1700000000), "
		" (1, 'ST000000', '02', 1700000001);"));
	migrate_db(e.db, src);
	ck_assert_int_eq(
		q(e.conn, "SELECT count(*) FROM congestion_snap.hours_1 WHERE out_of_service = 0"),
		2 * SLOTS);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM congestion WHERE out_of_service = 0"),
			 2 * SLOTS);
	ck_assert_int_eq(q(e.conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
				   "'congestion_snap.hours_1'::regclass AND contype = 'c' AND "
				   "pg_get_constraintdef(oid) LIKE '%%out_of_service%%samples%%'"),
			 1);
	PGresult *res = PQexec(e.conn, "INSERT INTO congestion_history VALUES "
				       "(1, 'ST000000', '03', 0, 0, 1, 0, 2)");
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514"); /* check_violation */
	PQclear(res);

	char *out = NULL;
	ck_assert_int_eq(ingest(&e, "--restore", NULL, NULL, &out), 0);
	assert_contains(out, "2 chargers (336 rows), 2 counters written");
	free(out);
	for (int c = 0; c < 2; c++) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), "ST000000", c ? "02" : "01");
		char err[256];
		redisReply *v = rds_command(e.r, 2, (const char *[]){"GET", key}, NULL, err,
					    sizeof(err));
		ck_assert_msg(v && v->type == REDIS_REPLY_STRING && v->len == VALUE_BYTES, "%s: %s",
			      key, err);
		for (int slot = 0; slot < SLOTS; slot++) {
			int d = slot / 24, h = slot % 24;
			ck_assert_uint_eq(
				rkeys_congestion_counter(v->str, v->len, slot, RKEYS_CG_SAMPLES),
				(unsigned)(10 + h + d));
			ck_assert_uint_eq(rkeys_congestion_counter(v->str, v->len, slot, RKEYS_CG_USES),
					  (unsigned)h);
			ck_assert_uint_eq(rkeys_congestion_counter(v->str, v->len, slot,
								   RKEYS_CG_OUT_OF_SERVICE),
					  0);
		}
		ck_assert_uint_eq(rkeys_congestion_last_sample(v->str, v->len), 1700000000u + c);
		freeReplyObject(v);
	}
	free(src);
	free(old);
	env_stop(&e);
}
END_TEST

static TCase *area(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *test_suite(void)
{
	/* one case per area: `test_ingest_congestion retention` runs one */
	Suite *s = suite_create("ingest_congestion");
	TCase *tc = area(s, "snapshot");
	tcase_add_test(tc, rows_equal_redis_counters);
	tcase_add_test(tc, shrunk_redis_not_current);
	tc = area(s, "crash");
	tcase_add_test(tc, kill9_keeps_previous_snapshot);
	tcase_add_test(tc, sigterm_rolls_back);
	tcase_add_test(area(s, "concurrency"), second_run_refused);
	tcase_add_test(area(s, "retention"), retention_keeps_k);
	tcase_add_test(area(s, "restore"), restore_round_trip_exact);
	tcase_add_test(area(s, "upgrade"), migration_0005_upgrades_kept_snapshots);
	tcase_add_test(area(s, "usage"), bad_usage_and_config);
	return s;
}
