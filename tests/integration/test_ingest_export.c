/* ingestd export against real PostgreSQL.
 *
 * Each test seeds a fresh migrated database by SQL: stations whose text
 * holds what CSV and JSON must escape (quotes, commas, newlines, tabs,
 * backslashes, Korean, '' beside NULL), some deleted; one to three chargers
 * each, some deleted, with NULL numbers and times; two congestion snapshots
 * (only the current one is exported); chargers and congestion runs in
 * ingest_run (a later failed chargers run is not a source). Covered: the dump
 * round-trips (each CSV, gunzipped and COPYed into a fresh migrated
 * database, holds exactly the rows the source serves, compared by a digest
 * of every row's text); the manifest's rows, sizes and SHA-256 (checked with
 * sha256sum, not the code under test) match the files; the GeoJSON holds a
 * feature per row with the point and typed properties; sources name the
 * right runs. A failing export (database unreachable, killed backend,
 * SIGTERM, a file it cannot create, another export holding the directory,
 * a database not migrated, a bad command line) exits with its code, says
 * why, and leaves the previous dump byte for byte as it was, with no
 * temporary file left. */
#include "testmain.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#include "itest.h"

static const char *const files[] = {"stations.csv.gz", "stations.geojson.gz", "chargers.csv.gz",
				    "chargers.geojson.gz", "congestion.csv.gz"};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* What the dump promises, stated here apart from export.c: the columns of
 * each CSV and the rows they must reproduce. */
#define STATION_COLS                                                                           \
	"stat_id, name, addr, addr_detail, location, use_time, lat, lng, busi_id, bnm, busi_nm, " \
	"busi_call, zcode, zscode, kind, kind_detail, parking_free, limit_yn, limit_detail, "     \
	"del_yn, del_detail, note, traffic_yn, floor_num, floor_type, updated_at"
#define CHARGER_COLS                                                                     \
	"stat_id, chger_id, chger_type, output_kw, method, power_type, year, stat, "      \
	"stat_upd_dt, last_tsdt, last_tedt, now_tsdt, updated_at"
#define CONGESTION_COLS "stat_id, chger_id, weekday, hour, samples, uses, out_of_service"

static const struct {
	const char *file, *table, *cols, *source, *order;
} tables[] = {
	{"stations.csv.gz", "station", STATION_COLS, "station WHERE deleted_at IS NULL", "stat_id"},
	{"chargers.csv.gz", "charger", CHARGER_COLS, "charger WHERE deleted_at IS NULL",
	 "stat_id, chger_id"},
	{"congestion.csv.gz", "congestion", CONGESTION_COLS, "congestion",
	 "stat_id, chger_id, weekday, hour"},
};

static const char seed_sql[] =
	"INSERT INTO ingest_run (job, status, finished_at) VALUES "
	" ('chargers', 'ok', now() - interval '3 hours'), "
	" ('congestion', 'ok', now() - interval '1 hour'), "
	" ('chargers', 'failed', now());"
	"INSERT INTO station (stat_id, name, addr, addr_detail, location, use_time, lat, lng, "
	" busi_id, bnm, busi_nm, busi_call, zcode, zscode, kind, kind_detail, parking_free, "
	" limit_yn, limit_detail, del_yn, del_detail, note, traffic_yn, floor_num, floor_type, "
	" content_hash, updated_at, deleted_at, last_run_id) "
	"SELECT 'ST' || lpad(i::text, 6, '0'), "
	" CASE i % 7 WHEN 0 THEN '충전소 \"' || i || '\", 1층' WHEN 1 THEN E'줄\\n바꿈\\r ' || i "
	"  WHEN 2 THEN '' WHEN 3 THEN E'tab\\there\\\\back' WHEN 4 THEN '\"' ELSE '강남역 ' || i END, "
	" '서울 ' || i || '길', '', CASE WHEN i % 5 = 0 THEN ',' ELSE '' END, '24시간', "
	" 33.5 + (i % 500) * 0.0101, 126.5 + (i % 700) * 0.00731, 'ME', '환경부', '한국환경공단', "
	" '1661-9408', '11', '11680', 'A0', 'A001', CASE i % 3 WHEN 0 THEN true WHEN 1 THEN false END, "
	" i % 2 = 0, '', NULL, '\\N', CASE WHEN i % 11 = 0 THEN 'note \"q\"' ELSE '' END, NULL, "
	" 'B' || (i % 3), '', '\\x00'::bytea, "
	" timestamptz '2026-01-01 00:00:00+09' + i * interval '1 minute 0.25 second', "
	" CASE WHEN i % 50 = 49 THEN now() END, 1 "
	"FROM generate_series(0, current_setting('export_test.stations')::int - 1) i;"
	"INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, method, power_type, year, "
	" stat, stat_upd_dt, last_tsdt, last_tedt, now_tsdt, content_hash, updated_at, deleted_at) "
	"SELECT s.stat_id, lpad(c::text, 2, '0'), lpad((1 + (n + c) % 7)::text, 2, '0'), "
	" CASE WHEN (n + c) % 4 = 0 THEN NULL ELSE (n * 7 + c) % 350 + 0.25 END, "
	" CASE c WHEN 1 THEN '단독' ELSE '동시' END, 'DC', "
	" CASE WHEN n % 6 = 0 THEN NULL ELSE 2015 + n % 10 END, (n + c) % 10, "
	" timestamptz '2026-11-01 09:00:00+09' + n * interval '1 second', "
	" CASE WHEN n % 3 = 0 THEN timestamptz '2026-10-31 23:59:59+09' END, NULL, NULL, "
	" '\\x00'::bytea, now(), CASE WHEN (n + c) % 40 = 7 THEN now() END "
	"FROM (SELECT stat_id, row_number() OVER (ORDER BY stat_id) n FROM station) s, "
	" generate_series(1, 3) c WHERE c <= 1 + s.n % 3;"
	/* snapshot 1: old, not current; snapshot 2: current, for a third of the chargers */
	"INSERT INTO congestion_snapshot (run_id, outcome, finished_at, is_current) VALUES "
	" (2, 'ok', now(), false), (2, 'ok', now(), true);"
	"CREATE TABLE congestion_snap.hours_1 PARTITION OF congestion_history FOR VALUES IN (1);"
	"CREATE TABLE congestion_snap.hours_2 PARTITION OF congestion_history FOR VALUES IN (2);"
	"INSERT INTO congestion_history SELECT 1, stat_id, chger_id, 0, 0, 5, 1 FROM charger;"
	"INSERT INTO congestion_history SELECT 2, c.stat_id, c.chger_id, d, h, "
	" (n * 13 + d * 24 + h) % 300, (n * 13 + d * 24 + h) % 300 / 3, "
	" (n * 13 + d * 24 + h) % 300 * ((n + h) % 3) / 5 "
	"FROM (SELECT stat_id, chger_id, row_number() OVER (ORDER BY stat_id, chger_id) n "
	" FROM charger) c, generate_series(0, 6) d, generate_series(0, 23) h WHERE n % 3 = 0;"
	"UPDATE congestion_snapshot SET rows = (SELECT count(*) FROM congestion_history h "
	" WHERE h.snapshot_id = congestion_snapshot.id);"
	"ANALYZE;";

struct env {
	char *db;
	PGconn *conn;
	char *dir; /* the export directory */
	char env_db[4200];
};

static void migrate(const char *db)
{
	char env_db[4200], path[4096];
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
	snprintf(path, sizeof(path), "%s", itest_bin("ingestd"));
	char *argv[] = {path, "migrate", NULL};
	char *envv[] = {env_db, NULL};
	char *out = NULL;
	ck_assert_msg(itest_run(argv, envv, 60000, &out) == 0, "migrate: %s", out);
	free(out);
}

static void env_start(struct env *e)
{
	memset(e, 0, sizeof(*e));
	e->db = itest_create_db("exp");
	migrate(e->db);
	e->conn = itest_pg_connect(e->db);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT set_config('export_test.stations', '%ld', false)",
		 test_size(3000));
	PQclear(itest_pg_exec(e->conn, sql));
	PQclear(itest_pg_exec(e->conn, seed_sql));
	char *base = itest_tmpdir("export");
	size_t len = strlen(base) + 8;
	e->dir = malloc(len);
	snprintf(e->dir, len, "%s/dump", base); /* the export creates it */
	free(base);
	snprintf(e->env_db, sizeof(e->env_db), "DATABASE_URL=%s", e->db);
}

static void env_stop(struct env *e)
{
	PQfinish(e->conn);
	free(e->db);
	free(e->dir);
}

/* ingestd export with up to three more arguments; env_db overrides the URL. */
static int export_run(const struct env *e, const char *env_db, const char *a1, const char *a2,
		      const char *a3, char **out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s", itest_bin("ingestd"));
	char *argv[8] = {path, "export"};
	int n = 2;
	const char *args[] = {a1, a2, a3};
	for (int i = 0; i < 3; i++)
		if (args[i])
			argv[n++] = (char *)args[i];
	char *envv[] = {(char *)(env_db ? env_db : e->env_db), "LOG_FORMAT=json", NULL};
	char *text = NULL;
	int rc = itest_run(argv, envv, 240000, &text);
	if (out)
		*out = text;
	else
		free(text);
	return rc;
}

static void export_ok(const struct env *e)
{
	char *out = NULL;
	int rc = export_run(e, NULL, "--out", e->dir, NULL, &out);
	ck_assert_msg(rc == 0, "export exited %d:\n%s", rc, out);
	ck_assert_msg(strstr(out, "export ok"), "no summary line:\n%s", out);
	free(out);
}

static void assert_contains(const char *text, const char *needle)
{
	ck_assert_msg(text && strstr(text, needle), "output lacks '%s':\n%s", needle,
		      text ? text : "(none)");
}

/* One line of a shell command's output, without the newline. */
__attribute__((format(printf, 1, 2))) static char *shell_line(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	char line[512] = "";
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
	ck_assert_int_eq(pclose(p), 0);
	line[strcspn(line, "\n")] = '\0';
	return strdup(line);
}

static char *path_in(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *p = malloc(len);
	snprintf(p, len, "%s/%s", dir, name);
	return p;
}

static yajl_val manifest_read(const char *dir)
{
	char *path = path_in(dir, "manifest.json");
	char *text = itest_read_file(path);
	char err[256];
	yajl_val doc = yajl_tree_parse(text, err, sizeof(err));
	ck_assert_msg(doc, "manifest.json: %s:\n%s", err, text);
	free(text);
	free(path);
	return doc;
}

static yajl_val get(yajl_val v, const char *a, const char *b)
{
	const char *path[] = {a, b, NULL};
	return yajl_tree_get(v, path, yajl_t_any);
}

static yajl_val manifest_file(yajl_val doc, const char *name)
{
	yajl_val list = get(doc, "files", NULL);
	ck_assert(YAJL_IS_ARRAY(list));
	for (size_t i = 0; i < YAJL_GET_ARRAY(list)->len; i++) {
		yajl_val f = YAJL_GET_ARRAY(list)->values[i];
		const char *fname = YAJL_GET_STRING(get(f, "name", NULL));
		if (fname && !strcmp(fname, name))
			return f;
	}
	ck_abort_msg("manifest lacks %s", name);
	return NULL;
}

/* gunzip the file into `table` of conn by COPY (FORMAT csv, HEADER); the rows loaded. */
static long long load_csv(PGconn *conn, const char *table, const char *path)
{
	gzFile gz = gzopen(path, "rb");
	ck_assert_msg(gz, "%s: cannot open", path);
	char sql[256];
	snprintf(sql, sizeof(sql), "COPY %s FROM STDIN (FORMAT csv, HEADER)", table);
	PGresult *res = PQexec(conn, sql);
	ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	char buf[65536];
	int n;
	while ((n = gzread(gz, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(PQputCopyData(conn, buf, n), 1);
	int gzerr = 0;
	const char *why = gzerror(gz, &gzerr);
	ck_assert_msg(n == 0 && gzerr == Z_OK, "%s: %s", path, why);
	gzclose(gz);
	ck_assert_int_eq(PQputCopyEnd(conn, NULL), 1);
	res = PQgetResult(conn);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "COPY %s: %s", table,
		      PQresultErrorMessage(res));
	long long rows = atoll(PQcmdTuples(res));
	PQclear(res);
	while ((res = PQgetResult(conn)))
		PQclear(res);
	return rows;
}

/* count and a digest of every row's text, in key order */
static char *rows_digest(PGconn *conn, const char *cols, const char *from, const char *order)
{
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY %s)), '') "
		 "FROM (SELECT %s FROM %s) t",
		 order, cols, from);
	PGresult *res = itest_pg_exec(conn, sql);
	char *d = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return d;
}

START_TEST(round_trip)
{
	struct env e;
	env_start(&e);
	export_ok(&e);
	yajl_val doc = manifest_read(e.dir);

	/* the checksums, sizes and rows of the manifest are the files' */
	for (size_t i = 0; i < NFILES; i++) {
		yajl_val f = manifest_file(doc, files[i]);
		char *path = path_in(e.dir, files[i]);
		char *sum = shell_line("sha256sum '%s' | cut -d' ' -f1", path);
		ck_assert_str_eq(YAJL_GET_STRING(get(f, "sha256", NULL)), sum);
		free(sum);
		sum = shell_line("gunzip -c '%s' | sha256sum | cut -d' ' -f1", path);
		ck_assert_str_eq(YAJL_GET_STRING(get(f, "contentSha256", NULL)), sum);
		free(sum);
		char *size = shell_line("gunzip -c '%s' | wc -c", path);
		ck_assert_int_eq(YAJL_GET_INTEGER(get(f, "contentBytes", NULL)), atoll(size));
		free(size);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(YAJL_GET_INTEGER(get(f, "bytes", NULL)), st.st_size);
		ck_assert_str_eq(YAJL_GET_STRING(get(f, "compression", NULL)), "gzip");
		free(path);
	}

	/* sources: the last chargers run that merged (1, not the failed 3), the
	 * current snapshot (2) and its run (2) */
	ck_assert_int_eq(YAJL_GET_INTEGER(get(get(doc, "sources", "chargers"), "runId", NULL)), 1);
	ck_assert_str_eq(YAJL_GET_STRING(get(get(doc, "sources", "chargers"), "status", NULL)), "ok");
	yajl_val cg = get(doc, "sources", "congestion");
	ck_assert_int_eq(YAJL_GET_INTEGER(get(cg, "snapshotId", NULL)), 2);
	ck_assert_int_eq(YAJL_GET_INTEGER(get(cg, "runId", NULL)), 2);
	const char *generated = YAJL_GET_STRING(get(doc, "generatedAt", NULL));
	ck_assert_msg(generated && strlen(generated) == 20 && generated[19] == 'Z', "generatedAt %s",
		      generated);

	/* the round trip: a fresh migrated database, each CSV loaded into a
	 * table of the dump's columns with the source's types */
	char *target_db = itest_create_db("exp_load");
	migrate(target_db);
	PGconn *target = itest_pg_connect(target_db);
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[1024], name[64];
		snprintf(name, sizeof(name), "loaded_%s", tables[i].table);
		snprintf(sql, sizeof(sql), "CREATE TABLE %s AS SELECT %s FROM %s WITH NO DATA", name,
			 tables[i].cols, tables[i].table);
		PQclear(itest_pg_exec(target, sql));
		char *path = path_in(e.dir, tables[i].file);
		long long loaded = load_csv(target, name, path);
		free(path);
		yajl_val f = manifest_file(doc, tables[i].file);
		ck_assert_int_eq(YAJL_GET_INTEGER(get(f, "rows", NULL)), loaded);
		char *want = rows_digest(e.conn, tables[i].cols, tables[i].source, tables[i].order);
		char *got = rows_digest(target, tables[i].cols, name, tables[i].order);
		ck_assert_msg(!strcmp(want, got), "%s: source %s, loaded %s", tables[i].file, want,
			      got);
		ck_assert_msg(loaded > 100, "%s: only %lld rows", tables[i].file, loaded);
		free(want);
		free(got);
	}
	/* deleted rows and the old snapshot stayed out */
	ck_assert_int_eq(itest_pg_long(target, "SELECT count(*) FROM loaded_station WHERE "
					       "stat_id LIKE '%49' OR stat_id LIKE '%99'"),
			 0);
	ck_assert_int_eq(itest_pg_long(target, "SELECT count(*) FROM loaded_congestion WHERE "
					       "weekday = 0 AND hour = 0 AND samples = 5 AND uses = 1"),
			 itest_pg_long(e.conn, "SELECT count(*) FROM congestion WHERE weekday = 0 "
					       "AND hour = 0 AND samples = 5 AND uses = 1"));
	/* the out-of-service counts came through (0005's column) */
	ck_assert_int_gt(itest_pg_long(target, "SELECT count(*) FROM loaded_congestion WHERE "
					       "out_of_service > 0"),
			 100);
	PQfinish(target);
	free(target_db);

	/* GeoJSON: a feature per row, the point, typed properties */
	char *path = path_in(e.dir, "stations.geojson.gz");
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "gunzip -c '%s'", path);
	FILE *p = popen(cmd, "r");
	struct { char *data; size_t len, cap; } text = {0};
	for (;;) {
		if (text.cap - text.len < 65536) {
			text.cap = text.cap * 2 + 65536;
			text.data = realloc(text.data, text.cap);
		}
		size_t n = fread(text.data + text.len, 1, text.cap - text.len - 1, p);
		if (!n)
			break;
		text.len += n;
	}
	text.data[text.len] = '\0';
	ck_assert_int_eq(pclose(p), 0);
	char err[256];
	yajl_val geo = yajl_tree_parse(text.data, err, sizeof(err));
	ck_assert_msg(geo, "stations.geojson: %s", err);
	ck_assert_str_eq(YAJL_GET_STRING(get(geo, "type", NULL)), "FeatureCollection");
	yajl_val features = get(geo, "features", NULL);
	ck_assert_int_eq((long)YAJL_GET_ARRAY(features)->len,
			 itest_pg_long(e.conn, "SELECT count(*) FROM station WHERE deleted_at IS NULL"));
	/* feature 7 is ST000007 (i % 7 == 0: quotes and a comma), 1 (i % 7 == 1: newline) */
	PGresult *res = itest_pg_exec(
		e.conn, "SELECT stat_id, name, lat::text, lng::text, coalesce(parking_free::text, 'null') "
			"FROM station WHERE stat_id IN ('ST000007', 'ST000001') ORDER BY stat_id");
	for (int r = 0; r < 2; r++) {
		yajl_val f = YAJL_GET_ARRAY(features)->values[r ? 7 : 1];
		yajl_val props = get(f, "properties", NULL);
		ck_assert_str_eq(YAJL_GET_STRING(get(props, "stat_id", NULL)), PQgetvalue(res, r, 0));
		ck_assert_str_eq(YAJL_GET_STRING(get(props, "name", NULL)), PQgetvalue(res, r, 1));
		ck_assert_str_eq(YAJL_GET_STRING(get(f, "geometry", "type")), "Point");
		yajl_val coords = get(get(f, "geometry", NULL), "coordinates", NULL);
		ck_assert_double_eq(YAJL_GET_DOUBLE(YAJL_GET_ARRAY(coords)->values[0]),
				    strtod(PQgetvalue(res, r, 3), NULL));
		ck_assert_double_eq(YAJL_GET_DOUBLE(YAJL_GET_ARRAY(coords)->values[1]),
				    strtod(PQgetvalue(res, r, 2), NULL));
		yajl_val pf = get(props, "parking_free", NULL);
		const char *want_pf = PQgetvalue(res, r, 4);
		ck_assert(!strcmp(want_pf, "null") ? YAJL_IS_NULL(pf)
						  : (YAJL_IS_TRUE(pf) == !strcmp(want_pf, "true")));
		ck_assert(YAJL_IS_NULL(get(props, "del_yn", NULL)));
		ck_assert_str_eq(YAJL_GET_STRING(get(props, "del_detail", NULL)), "\\N");
		/* RFC 3339 in UTC, the same instant to the microsecond */
		const char *when = YAJL_GET_STRING(get(props, "updated_at", NULL));
		ck_assert_msg(when && strlen(when) < 40 && strchr(when, 'T') && when[strlen(when) - 1] == 'Z',
			      "updated_at %s", when);
		char sql[256];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM station WHERE stat_id = '%s' AND "
			 "updated_at = '%s'::timestamptz", PQgetvalue(res, r, 0), when);
		ck_assert_int_eq(itest_pg_long(e.conn, sql), 1);
		ck_assert_ptr_null(get(props, "lat", NULL));
	}
	PQclear(res);
	yajl_tree_free(geo);
	free(text.data);
	free(path);

	/* a second export replaces the dump whole and leaves nothing behind */
	PQclear(itest_pg_exec(e.conn, "UPDATE station SET deleted_at = now() WHERE stat_id = 'ST000000'"));
	export_ok(&e);
	yajl_val doc2 = manifest_read(e.dir);
	ck_assert_int_eq(YAJL_GET_INTEGER(get(manifest_file(doc2, "stations.csv.gz"), "rows", NULL)),
			 YAJL_GET_INTEGER(get(manifest_file(doc, "stations.csv.gz"), "rows", NULL)) - 1);
	char *left = shell_line("ls -A '%s' | tr '\\n' ' '", e.dir);
	ck_assert_str_eq(left, ".export.lock chargers.csv.gz chargers.geojson.gz congestion.csv.gz "
			       "manifest.json stations.csv.gz stations.geojson.gz ");
	free(left);
	yajl_tree_free(doc2);
	yajl_tree_free(doc);
	env_stop(&e);
}
END_TEST

/* ---- failures leave the previous dump as it was ---- */

struct dump {
	char *content[NFILES + 1]; /* the files' bytes, manifest last (gz read as text: sizes below) */
	off_t size[NFILES + 1];
};

static void dump_take(const char *dir, struct dump *d)
{
	for (size_t i = 0; i <= NFILES; i++) {
		char *path = path_in(dir, i < NFILES ? files[i] : "manifest.json");
		char *sum = shell_line("sha256sum '%s' | cut -d' ' -f1", path);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		d->content[i] = sum;
		d->size[i] = st.st_size;
		free(path);
	}
}

static void dump_assert_same(const char *dir, const struct dump *before, const char *what)
{
	struct dump now;
	dump_take(dir, &now);
	for (size_t i = 0; i <= NFILES; i++) {
		ck_assert_msg(!strcmp(now.content[i], before->content[i]) && now.size[i] == before->size[i],
			      "%s: %s changed", what, i < NFILES ? files[i] : "manifest.json");
		free(now.content[i]);
	}
	char *left = shell_line("ls -A '%s' | grep -c '\\.part$' || true", dir);
	ck_assert_msg(!strcmp(left, "0"), "%s: temporary files left in %s", what, dir);
	free(left);
}

static void dump_free(struct dump *d)
{
	for (size_t i = 0; i <= NFILES; i++)
		free(d->content[i]);
}

/* Run an export that blocks on a lock held by conn on `table`, then call
 * `act` on it (signal it, or kill its backend); its exit code. */
static int export_blocked(struct env *e, const char *table, void (*act)(struct env *, struct itest_proc *),
			  char **out)
{
	PGconn *locker = itest_pg_connect(e->db);
	char sql[256];
	snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", table);
	PQclear(itest_pg_exec(locker, sql));
	char path[4096];
	snprintf(path, sizeof(path), "%s", itest_bin("ingestd"));
	char *argv[] = {path, "export", "--out", e->dir, NULL};
	char *envv[] = {e->env_db, "LOG_FORMAT=json", NULL};
	struct itest_proc proc;
	ck_assert(itest_spawn(&proc, argv, envv));
	long deadline = itest_now_ms() + 60000;
	while (itest_pg_long(e->conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
				      "= 'ingestd export' AND wait_event_type = 'Lock'") == 0) {
		ck_assert_msg(itest_now_ms() < deadline, "the export never waited for the lock");
		ck_assert_int_eq(itest_wait(&proc, 0), -1);
		usleep(50000);
	}
	act(e, &proc);
	int rc = itest_wait(&proc, 60000);
	*out = itest_proc_output(&proc);
	itest_stop(&proc);
	PQclear(itest_pg_exec(locker, "ROLLBACK"));
	PQfinish(locker);
	return rc;
}

static void act_sigterm(struct env *e, struct itest_proc *proc)
{
	itest_signal(proc, SIGTERM);
}

static void act_terminate_backend(struct env *e, struct itest_proc *proc)
{
	ck_assert_int_eq(itest_pg_long(e->conn, "SELECT count(*) FROM (SELECT "
						"pg_terminate_backend(pid) FROM pg_stat_activity "
						"WHERE application_name = 'ingestd export') t"),
			 1);
}

START_TEST(failure_keeps_previous_dump)
{
	struct env e;
	env_start(&e);
	export_ok(&e);
	struct dump before;
	dump_take(e.dir, &before);
	/* the data changes, so a completed export would change every file */
	PQclear(itest_pg_exec(e.conn, "UPDATE station SET name = name || '+'; "
				      "UPDATE charger SET stat = (stat + 1) % 10; "
				      "UPDATE congestion_history SET uses = 0 WHERE snapshot_id = 2"));
	char *out = NULL;

	/* the database unreachable: 74 */
	char env_db[256];
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=postgresql://postgres@127.0.0.1:%d/x",
		 itest_free_port());
	ck_assert_int_eq(export_run(&e, env_db, "--out", e.dir, NULL, &out), 74);
	assert_contains(out, "unavailable");
	assert_contains(out, "the previous dump in");
	free(out);
	dump_assert_same(e.dir, &before, "database unreachable");

	/* the backend killed in the middle (stations written, chargers waiting): 74 */
	ck_assert_int_eq(export_blocked(&e, "charger", act_terminate_backend, &out), 74);
	assert_contains(out, "export failed: database: chargers:");
	free(out);
	dump_assert_same(e.dir, &before, "backend terminated");

	/* SIGTERM in the middle: 143 */
	ck_assert_int_eq(export_blocked(&e, "congestion_snap.hours_2", act_sigterm, &out), 143);
	assert_contains(out, "interrupted by");
	free(out);
	dump_assert_same(e.dir, &before, "SIGTERM");

	/* the snapshot holds other rows than its row says (retention dropped it
	 * while the export read): 74, nothing published */
	PQclear(itest_pg_exec(e.conn, "UPDATE congestion_snapshot SET rows = rows + 1 WHERE is_current"));
	ck_assert_int_eq(export_run(&e, NULL, "--out", e.dir, NULL, &out), 74);
	assert_contains(out, "dropped while being read");
	free(out);
	PQclear(itest_pg_exec(e.conn, "UPDATE congestion_snapshot SET rows = rows - 1 WHERE is_current"));
	dump_assert_same(e.dir, &before, "snapshot rows differ");

	/* a file it cannot create (a directory in the way of the chargers' temporary file): 73 */
	char *blocker = path_in(e.dir, ".chargers.csv.gz.part");
	ck_assert_int_eq(mkdir(blocker, 0755), 0);
	ck_assert_int_eq(export_run(&e, NULL, "--out", e.dir, NULL, &out), 73);
	assert_contains(out, ".chargers.csv.gz.part: Is a directory");
	free(out);
	ck_assert_int_eq(rmdir(blocker), 0);
	free(blocker);
	dump_assert_same(e.dir, &before, "file not creatable");

	/* the directory cannot be created (its parent is a file): 73 */
	char *file = path_in(e.dir, "manifest.json");
	char *below = path_in(file, "sub");
	ck_assert_int_eq(export_run(&e, NULL, "--out", below, NULL, &out), 73);
	assert_contains(out, "cannot create the directory");
	free(out);
	free(below);
	free(file);

	/* another export holds the directory: 75, naming its pid */
	char *lock_path = path_in(e.dir, ".export.lock");
	int fd = open(lock_path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, "4242\n", 5, 0), 5);
	ck_assert_int_eq(export_run(&e, NULL, "--out", e.dir, NULL, &out), 75);
	assert_contains(out, "another export is writing into");
	assert_contains(out, "(pid 4242)");
	free(out);
	close(fd);
	free(lock_path);
	dump_assert_same(e.dir, &before, "locked");

	/* and then it works, with the new data */
	export_ok(&e);
	struct dump after;
	dump_take(e.dir, &after);
	for (size_t i = 0; i <= NFILES; i++)
		ck_assert_msg(strcmp(after.content[i], before.content[i]), "%s did not change",
			      i < NFILES ? files[i] : "manifest.json");
	dump_free(&after);
	dump_free(&before);
	env_stop(&e);
}
END_TEST

START_TEST(bad_usage_and_config)
{
	struct env e;
	env_start(&e);
	char *out = NULL;
	ck_assert_int_eq(export_run(&e, NULL, NULL, NULL, NULL, &out), 64);
	assert_contains(out, "export: --out DIR is required");
	free(out);
	ck_assert_int_eq(export_run(&e, NULL, "--out", e.dir, "--level=0", &out), 64);
	assert_contains(out, "--level: '0' is not an integer from 1 to 9");
	free(out);
	ck_assert_int_eq(export_run(&e, NULL, "--out", NULL, NULL, NULL), 64);
	ck_assert_int_eq(export_run(&e, NULL, "--bogus", NULL, NULL, NULL), 64);
	ck_assert_int_eq(export_run(&e, NULL, "--help", NULL, NULL, &out), 0);
	assert_contains(out, "export --out DIR");
	free(out);
	/* a database not migrated: 78, and no dump at all */
	char *bare = itest_create_db("expbare");
	char env_db[4200];
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", bare);
	ck_assert_int_eq(export_run(&e, env_db, "--out", e.dir, "--level", &out), 64);
	free(out);
	ck_assert_int_eq(export_run(&e, env_db, "--out", e.dir, "--level=9", &out), 78);
	assert_contains(out, "run `ingestd migrate` first");
	free(out);
	char *left = shell_line("ls -A '%s' | tr '\\n' ' '", e.dir);
	ck_assert_str_eq(left, ".export.lock ");
	free(left);
	free(bare);
	env_stop(&e);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("ingest_export");
	TCase *tc = tcase_create("export");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, failure_keeps_previous_dump);
	tcase_add_test(tc, bad_usage_and_config);
	suite_add_tcase(s, tc);
	return s;
}
