#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <libpq-fe.h>

#include "base.h"
#include "buf.h"
#include "cgstore.h"
#include "json.h"
#include "kst.h"
#include "log.h"
#include "pgx.h"
#include "sha256.h"
#include "stopsig.h"
#include "version.h"

#define MANIFEST_NAME "manifest.json"
/* Never removed: unlinking a lock file another process may hold open races. */
#define LOCK_NAME ".export.lock"
/* Content gathered before one deflate call: a 30-byte congestion row per
 * call would spend more in deflate's call overhead than in compressing. */
#define IN_CHUNK  (256 * 1024)
#define OUT_CHUNK (256 * 1024)
#define MAX_COLS  32
/* Rows between two looks at the clock for the progress line. */
#define PROGRESS_ROWS 65536
#define PROGRESS_SECONDS 10

/* ---- what is exported ----
 * The column lists are the one place naming the dump's columns: the COPY
 * query is built from them, the CSV header is the server's own, and the
 * GeoJSON properties take the same names. */
enum col_kind {
	COL_TEXT,
	COL_NUMBER,
	COL_BOOL, /* t/f from the server: JSON true/false */
	COL_TIME, /* timestamptz in UTC, ISO: RFC 3339 in GeoJSON */
	COL_LAT,  /* the point: GeoJSON geometry, not a property */
	COL_LNG,
};

struct col {
	const char *name;
	enum col_kind kind;
};

static const struct col station_cols[] = {
	{"stat_id", COL_TEXT},	    {"name", COL_TEXT},		{"addr", COL_TEXT},
	{"addr_detail", COL_TEXT},  {"location", COL_TEXT},	{"use_time", COL_TEXT},
	{"lat", COL_LAT},	    {"lng", COL_LNG},		{"busi_id", COL_TEXT},
	{"bnm", COL_TEXT},	    {"busi_nm", COL_TEXT},	{"busi_call", COL_TEXT},
	{"zcode", COL_TEXT},	    {"zscode", COL_TEXT},	{"kind", COL_TEXT},
	{"kind_detail", COL_TEXT},  {"parking_free", COL_BOOL}, {"limit_yn", COL_BOOL},
	{"limit_detail", COL_TEXT}, {"del_yn", COL_BOOL},	{"del_detail", COL_TEXT},
	{"note", COL_TEXT},	    {"traffic_yn", COL_BOOL},	{"floor_num", COL_TEXT},
	{"floor_type", COL_TEXT},   {"updated_at", COL_TIME},
};

/* The last two are the station's point, for the GeoJSON only. */
static const struct col charger_cols[] = {
	{"stat_id", COL_TEXT},	   {"chger_id", COL_TEXT},  {"chger_type", COL_TEXT},
	{"output_kw", COL_NUMBER}, {"method", COL_TEXT},    {"power_type", COL_TEXT},
	{"year", COL_NUMBER},	   {"stat", COL_NUMBER},    {"stat_upd_dt", COL_TIME},
	{"last_tsdt", COL_TIME},   {"last_tedt", COL_TIME}, {"now_tsdt", COL_TIME},
	{"updated_at", COL_TIME},  {"lat", COL_LAT},	    {"lng", COL_LNG},
};

static const struct col congestion_cols[] = {
	{"stat_id", COL_TEXT}, {"chger_id", COL_TEXT}, {"weekday", COL_NUMBER},
	{"hour", COL_NUMBER},  {"samples", COL_NUMBER}, {"uses", COL_NUMBER},
	{"out_of_service", COL_NUMBER},
};

struct dataset {
	const char *name; /* files <name>.csv.gz and <name>.geojson.gz */
	const struct col *cols;
	size_t ncols;
	size_t ncsv; /* the first ncsv columns go to the CSV */
	bool has_geojson;
	const char *from; /* the SELECT after its column list */
};

/* Live rows only; stations and chargers in key order (a dump diffs well
 * against the last one); congestion in storage order (38.6M rows: sorting
 * them would cost more than the export). The `congestion` view is the
 * current snapshot (0004; out_of_service since 0005). */
static const struct dataset datasets[] = {
	{"stations", station_cols, ARRAY_LEN(station_cols), ARRAY_LEN(station_cols), true,
	 "FROM station WHERE deleted_at IS NULL ORDER BY stat_id"},
	{"chargers", charger_cols, ARRAY_LEN(charger_cols), ARRAY_LEN(charger_cols) - 2, true,
	 "FROM (SELECT c.*, s.lat, s.lng FROM charger c JOIN station s ON s.stat_id = c.stat_id "
	 "WHERE c.deleted_at IS NULL) c ORDER BY stat_id, chger_id"},
	{"congestion", congestion_cols, ARRAY_LEN(congestion_cols), ARRAY_LEN(congestion_cols),
	 false, "FROM congestion"},
};

#define MAX_FILES 6

/* ---- one output file: content in, gzip out, both digested ---- */

struct gzout {
	char name[64]; /* final name in the directory */
	char tmp[80];  /* ".<name>.part" beside it until published */
	int fd;	       /* owned: the temporary file; -1 once closed */
	bool has_zstream;
	z_stream z;
	struct sha256 content_sha, file_sha;
	unsigned char *in, *out; /* owned: IN_CHUNK, OUT_CHUNK */
	size_t in_len;
	long long rows;
	uint64_t content_bytes, file_bytes;
	int error; /* errno of the first failure (sticky) */
	char content_hex[SHA256_HEX_LEN + 1], file_hex[SHA256_HEX_LEN + 1];
};

static bool write_all(struct gzout *g, const unsigned char *p, size_t len)
{
	sha256_update(&g->file_sha, p, len);
	g->file_bytes += len;
	while (len) {
		ssize_t n = write(g->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g->error = n < 0 ? errno : EIO;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Compress what is gathered; flush Z_FINISH ends the stream. */
static void gz_pump(struct gzout *g, int flush)
{
	if (g->error)
		return;
	sha256_update(&g->content_sha, g->in, g->in_len);
	g->content_bytes += g->in_len;
	g->z.next_in = g->in;
	g->z.avail_in = (uInt)g->in_len;
	int zrc;
	do {
		g->z.next_out = g->out;
		g->z.avail_out = OUT_CHUNK;
		zrc = deflate(&g->z, flush);
		if (zrc == Z_STREAM_ERROR) {
			g->error = EIO;
			return;
		}
		size_t have = OUT_CHUNK - g->z.avail_out;
		if (have && !write_all(g, g->out, have))
			return;
	} while (g->z.avail_out == 0);
	if (flush == Z_FINISH && zrc != Z_STREAM_END)
		g->error = EIO;
	g->in_len = 0;
}

static void gz_write(struct gzout *g, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len && !g->error) {
		size_t room = IN_CHUNK - g->in_len, n = len < room ? len : room;
		memcpy(g->in + g->in_len, p, n);
		g->in_len += n;
		p += n;
		len -= n;
		if (g->in_len == IN_CHUNK)
			gz_pump(g, Z_NO_FLUSH);
	}
}

static bool gz_open(struct gzout *g, int dirfd, const char *name, int level)
{
	memset(g, 0, sizeof(*g));
	g->fd = -1;
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->tmp, sizeof(g->tmp), ".%s.part", name);
	sha256_init(&g->content_sha);
	sha256_init(&g->file_sha);
	g->in = malloc(IN_CHUNK);
	g->out = malloc(OUT_CHUNK);
	if (!g->in || !g->out) {
		g->error = ENOMEM;
		return false;
	}
	/* windowBits 15 + 16: a gzip wrapper (RFC 1952), what `gunzip` reads */
	if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		g->error = ENOMEM;
		return false;
	}
	g->has_zstream = true;
	g->fd = openat(dirfd, g->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (g->fd < 0) {
		g->error = errno;
		return false;
	}
	return true;
}

/* End the stream and make the file durable; digests ready after. */
static bool gz_finish(struct gzout *g)
{
	gz_pump(g, Z_FINISH);
	if (!g->error && fsync(g->fd) != 0)
		g->error = errno;
	if (g->fd >= 0 && close(g->fd) != 0 && !g->error)
		g->error = errno;
	g->fd = -1;
	uint8_t digest[SHA256_DIGEST_LEN];
	sha256_final(&g->content_sha, digest);
	sha256_to_hex(digest, g->content_hex);
	sha256_final(&g->file_sha, digest);
	sha256_to_hex(digest, g->file_hex);
	return !g->error;
}

/* Free everything; remove the temporary file unless it was published. */
static void gz_free(struct gzout *g, int dirfd, bool is_published)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	if (!is_published && g->tmp[0] && dirfd >= 0)
		(void)unlinkat(dirfd, g->tmp, 0);
	if (g->has_zstream)
		deflateEnd(&g->z);
	g->has_zstream = false;
	free(g->in);
	free(g->out);
	g->in = g->out = NULL;
}

/* ---- PostgreSQL's CSV rows ---- */

struct csv_field {
	size_t start;	 /* where the field begins in the raw row */
	size_t off, len; /* the value, unquoted, in the scratch buffer */
	bool is_null;	 /* unquoted and empty: how COPY CSV writes NULL */
};

/* Split one row as COPY ... (FORMAT csv) writes it: ',' between fields,
 * '"' around a field that needs it with "" inside, NULL as an unquoted
 * empty field, '' as "". Values go unquoted into scratch. The number of
 * fields, or -1 for a row that is not such a row or has over max fields. */
static int csv_split(const char *row, size_t len, struct buf *scratch, struct csv_field *f,
		     int max)
{
	buf_reset(scratch);
	if (len && row[len - 1] == '\n')
		len--;
	size_t i = 0;
	for (int n = 0; n < max; n++) {
		struct csv_field *cur = &f[n];
		cur->start = i;
		cur->off = scratch->len;
		cur->is_null = false;
		if (i < len && row[i] == '"') {
			for (i++;;) {
				const char *q = memchr(row + i, '"', len - i);
				if (!q)
					return -1;
				buf_append(scratch, row + i, (size_t)(q - row) - i);
				i = (size_t)(q - row) + 1;
				if (i < len && row[i] == '"') {
					buf_putc(scratch, '"');
					i++;
				} else {
					break;
				}
			}
		} else {
			const char *comma = memchr(row + i, ',', len - i);
			size_t end = comma ? (size_t)(comma - row) : len;
			if (memchr(row + i, '"', end - i))
				return -1;
			buf_append(scratch, row + i, end - i);
			cur->is_null = end == i;
			i = end;
		}
		cur->len = scratch->len - cur->off;
		if (i == len)
			return n + 1;
		if (row[i] != ',')
			return -1;
		i++;
	}
	return -1;
}

/* A number as JSON allows it: -?digits(.digits)?([eE][+-]?digits)?.
 * numeric can hold NaN, which JSON cannot. */
static bool is_json_number(const char *s, size_t len)
{
	size_t i = 0;
	if (i < len && s[i] == '-')
		i++;
	size_t digits = i;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == digits)
		return false;
	if (i < len && s[i] == '.') {
		size_t frac = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == frac)
			return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t exp = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == exp)
			return false;
	}
	return i == len;
}

/* "2026-11-26 01:29:49.5+00" (ISO DateStyle, UTC) as RFC 3339:
 * "2026-11-26T01:29:49.5Z". Anything else is passed as it is. */
static void json_time(struct json_gen *g, const char *s, size_t len)
{
	char t[64];
	if (len < 14 || len >= sizeof(t) || s[10] != ' ' || memcmp(s + len - 3, "+00", 3)) {
		json_str_n(g, s, len);
		return;
	}
	memcpy(t, s, len - 3);
	t[10] = 'T';
	t[len - 3] = 'Z';
	json_str_n(g, t, len - 2);
}

static void json_value(struct json_gen *g, enum col_kind kind, const char *v, size_t len)
{
	switch (kind) {
	case COL_BOOL:
		if (len == 1 && (*v == 't' || *v == 'f'))
			json_bool(g, *v == 't');
		else
			json_str_n(g, v, len);
		return;
	case COL_TIME: json_time(g, v, len); return;
	case COL_NUMBER:
	case COL_LAT:
	case COL_LNG:
		if (is_json_number(v, len))
			json_raw(g, v, len);
		else
			json_str_n(g, v, len);
		return;
	case COL_TEXT: json_str_n(g, v, len); return;
	}
}

/* One GeoJSON Feature: the point, the other columns as properties. */
static bool geo_feature(struct buf *out, const struct dataset *ds, const struct buf *scratch,
			const struct csv_field *f)
{
	struct json_gen g;
	json_gen_init(&g, out);
	json_obj_begin(&g);
	json_kv_str(&g, "type", "Feature");
	json_key(&g, "geometry");
	json_obj_begin(&g);
	json_kv_str(&g, "type", "Point");
	json_key(&g, "coordinates");
	json_arr_begin(&g);
	for (int axis = 0; axis < 2; axis++) /* GeoJSON order: longitude, latitude */
		for (size_t i = 0; i < ds->ncols; i++)
			if (ds->cols[i].kind == (axis ? COL_LAT : COL_LNG))
				json_value(&g, COL_NUMBER, scratch->data + f[i].off, f[i].len);
	json_arr_end(&g);
	json_obj_end(&g);
	json_key(&g, "properties");
	json_obj_begin(&g);
	for (size_t i = 0; i < ds->ncols; i++) {
		if (ds->cols[i].kind == COL_LAT || ds->cols[i].kind == COL_LNG)
			continue;
		json_key(&g, ds->cols[i].name);
		if (f[i].is_null)
			json_null(&g);
		else
			json_value(&g, ds->cols[i].kind, scratch->data + f[i].off, f[i].len);
	}
	json_obj_end(&g);
	json_obj_end(&g);
	return json_gen_finish(&g);
}

/* ---- the job ---- */

struct sources {
	time_t generated_at;
	long long chargers_run; /* 0: none */
	char chargers_status[16], chargers_finished[32];
	long long congestion_run, congestion_snapshot; /* 0: none */
	long long congestion_rows;		       /* what the snapshot row says it holds */
	char congestion_taken[32];
};

struct job {
	const struct export_config *cfg;
	int dirfd;  /* owned */
	int lockfd; /* owned: holds the flock */
	PGconn *conn;
	PGcancel *cancel;
	struct gzout files[MAX_FILES];
	size_t nfiles;
	struct gzout manifest;
	bool has_manifest;
	bool is_published;
	struct buf scratch, feature;
	struct sources src;
	int code; /* the first failure's exit code */
	char why[1200];
	double last_progress;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Remember the first failure (the one to report); false, for `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static bool fail(struct job *job, int code, const char *fmt,
						       ...)
{
	if (job->code)
		return false;
	job->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(job->why, sizeof(job->why), fmt, ap);
	va_end(ap);
	return false;
}

static bool fail_output(struct job *job, const char *name, int error)
{
	return fail(job, EXPORT_EXIT_OUTPUT, "%s/%s: %s", job->cfg->out_dir, name,
		    strerror(error));
}

static bool fail_db(struct job *job, const char *what, const struct pgx_err *err)
{
	/* 3F000 invalid_schema_name, 42P01 undefined_table: not migrated */
	bool is_unmigrated = !strcmp(err->sqlstate, "3F000") || !strcmp(err->sqlstate, "42P01");
	return fail(job, is_unmigrated ? EXPORT_EXIT_CONFIG : EXPORT_EXIT_DATABASE, "database: %s: %s",
		    what, err->msg);
}

/* The failure of a libpq call that is not pgx's (the COPY OUT), as pgx words it. */
static void pq_err(PGconn *conn, const PGresult *res, struct pgx_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
	const char *msg = res ? PQresultErrorMessage(res) : "";
	snprintf(err->msg, sizeof(err->msg), "%s", *msg ? msg : PQerrorMessage(conn));
	size_t n = strlen(err->msg);
	while (n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
		err->msg[--n] = '\0';
	for (char *p = err->msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* The directory (created if missing) and its lock. */
static bool open_dir(struct job *job)
{
	const char *dir = job->cfg->out_dir;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return fail(job, EXPORT_EXIT_OUTPUT, "%s: cannot create the directory: %s", dir,
			    strerror(errno));
	job->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (job->dirfd < 0)
		return fail(job, EXPORT_EXIT_OUTPUT, "%s: %s", dir, strerror(errno));
	job->lockfd = openat(job->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (job->lockfd < 0)
		return fail_output(job, LOCK_NAME, errno);
	if (flock(job->lockfd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK)
			return fail_output(job, LOCK_NAME, errno);
		char holder[32] = "";
		ssize_t n = pread(job->lockfd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		return fail(job, EXPORT_EXIT_RUNNING,
			    "another export is writing into %s (pid %s); not starting", dir,
			    *holder ? holder : "?");
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(job->lockfd, 0) != 0 || pwrite(job->lockfd, pid, (size_t)n, 0) != n)
		log_warn("%s/%s: cannot record the pid: %s", dir, LOCK_NAME, strerror(errno));
	return true;
}

static const char sql_begin[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/* Times as UTC ISO text: the CSV round-trips them, GeoJSON turns them into RFC 3339. */
static const char sql_settings[] =
	"SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
	"SET LOCAL extra_float_digits = 1; SET LOCAL statement_timeout = 0";
/* The snapshot's time and the runs the data came from: the last chargers
 * run that merged (a partial run merges too; 'chargers' is chargers.c's
 * job name) and the current congestion snapshot. */
static const char sql_sources[] =
	"SELECT extract(epoch FROM now())::bigint, r.id, r.status, "
	"to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"s.id, s.run_id, to_char(s.taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"s.rows "
	"FROM (SELECT 1) one "
	"LEFT JOIN LATERAL (SELECT id, status, finished_at FROM ingest_run WHERE job = 'chargers' "
	"AND status IN ('ok', 'partial') ORDER BY id DESC LIMIT 1) r ON true "
	"LEFT JOIN congestion_snapshot s ON s.is_current";

static bool connect_db(struct job *job)
{
	char safe_url[512];
	struct pgx_err err;
	log_redact(job->cfg->database_url, safe_url, sizeof(safe_url));
	switch (pgx_connect(job->cfg->database_url, "ingestd export", NULL, &job->conn, &err)) {
	case PGX_CONNECT_OK: break;
	case PGX_CONNECT_BAD_CONNINFO:
	case PGX_CONNECT_REFUSED:
		return fail(job, EXPORT_EXIT_CONFIG, "database %s: %s", safe_url, err.msg);
	case PGX_CONNECT_UNAVAILABLE:
		return fail(job, EXPORT_EXIT_DATABASE, "database %s unavailable: %s", safe_url,
			    err.msg);
	}
	bool is_migrated = false;
	if (!pgx_cmd(job->conn, sql_begin, 0, NULL, NULL, &err) ||
	    !pgx_exec_script(job->conn, sql_settings, &err) ||
	    !cgstore_is_migrated(job->conn, &is_migrated, &err))
		return fail_db(job, "starting the read", &err);
	if (!is_migrated)
		return fail(job, EXPORT_EXIT_CONFIG,
			    "database: congestion_snapshot or congestion_history.out_of_service "
			    "missing: run `ingestd migrate` first");
	PGresult *res = pgx_exec(job->conn, sql_sources, 0, NULL, &err);
	if (!res)
		return fail_db(job, "reading the source runs", &err);
	struct sources *s = &job->src;
	s->generated_at = (time_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->chargers_run = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	snprintf(s->chargers_status, sizeof(s->chargers_status), "%s", PQgetvalue(res, 0, 2));
	snprintf(s->chargers_finished, sizeof(s->chargers_finished), "%s", PQgetvalue(res, 0, 3));
	s->congestion_snapshot = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	s->congestion_run = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	snprintf(s->congestion_taken, sizeof(s->congestion_taken), "%s", PQgetvalue(res, 0, 6));
	s->congestion_rows = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
	PQclear(res);
	job->cancel = PQgetCancel(job->conn);
	stopsig_arm(job->cancel);
	return true;
}

static struct gzout *add_file(struct job *job, const char *name)
{
	if (job->nfiles == MAX_FILES) {
		fail(job, EXPORT_EXIT_SOFTWARE, "too many files");
		return NULL;
	}
	struct gzout *g = &job->files[job->nfiles++];
	if (!gz_open(g, job->dirfd, name, job->cfg->level)) {
		fail_output(job, g->tmp, g->error);
		return NULL;
	}
	return g;
}

static const char geojson_head[] = "{\"type\":\"FeatureCollection\",\"features\":[\n";
static const char geojson_tail[] = "\n]}\n";

/* One row of a dataset with a GeoJSON file: the CSV gets its first ncsv
 * columns (the raw row when that is all of them), the GeoJSON a Feature. */
static bool geo_row(struct job *job, const struct dataset *ds, const char *row, size_t len,
		    bool is_header, struct gzout *csv, struct gzout *geo)
{
	struct csv_field f[MAX_COLS];
	int n = csv_split(row, len, &job->scratch, f, MAX_COLS);
	if (n != (int)ds->ncols || !buf_ok(&job->scratch))
		return fail(job, EXPORT_EXIT_SOFTWARE,
			    "%s: row %lld: %d fields where %zu were asked for (%.80s)", ds->name,
			    csv->rows + 1, n, ds->ncols, row);
	if (ds->ncsv == ds->ncols) {
		gz_write(csv, row, len);
	} else {
		gz_write(csv, row, f[ds->ncsv].start - 1); /* up to the comma before the rest */
		gz_write(csv, "\n", 1);
	}
	if (is_header)
		return true;
	csv->rows++;
	buf_reset(&job->feature);
	if (geo->rows)
		buf_append(&job->feature, ",\n", 2);
	if (!geo_feature(&job->feature, ds, &job->scratch, f))
		return fail(job, EXPORT_EXIT_SOFTWARE, "%s: row %lld: the feature cannot be written",
			    ds->name, csv->rows);
	gz_write(geo, job->feature.data, job->feature.len);
	geo->rows++;
	return true;
}

static void progress(struct job *job, const struct dataset *ds, long long rows)
{
	double t = now_s();
	if (t - job->last_progress < PROGRESS_SECONDS)
		return;
	job->last_progress = t;
	log_info("progress: %s, %lld rows", ds->name, rows);
}

/* Stream one table: COPY ... TO STDOUT in CSV, each row into its files. */
static bool export_dataset(struct job *job, const struct dataset *ds)
{
	struct buf sql = BUF_INIT;
	buf_puts(&sql, "COPY (SELECT ");
	for (size_t i = 0; i < ds->ncols; i++) {
		buf_puts(&sql, i ? ", " : "");
		buf_puts(&sql, ds->cols[i].name);
	}
	buf_printf(&sql, " %s) TO STDOUT (FORMAT csv, HEADER)", ds->from);
	if (!buf_ok(&sql)) {
		buf_free(&sql);
		return fail(job, EXPORT_EXIT_SOFTWARE, "out of memory");
	}
	char name[64];
	snprintf(name, sizeof(name), "%s.csv.gz", ds->name);
	struct gzout *csv = add_file(job, name), *geo = NULL;
	if (csv && ds->has_geojson) {
		snprintf(name, sizeof(name), "%s.geojson.gz", ds->name);
		if ((geo = add_file(job, name)))
			gz_write(geo, geojson_head, sizeof(geojson_head) - 1);
	}
	if (!csv || (ds->has_geojson && !geo)) {
		buf_free(&sql);
		return false;
	}
	double t0 = now_s();
	struct pgx_err err;
	PGresult *res = PQexec(job->conn, sql.data);
	buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		pq_err(job->conn, res, &err);
		PQclear(res);
		return fail_db(job, ds->name, &err);
	}
	bool is_shape_ok = PQnfields(res) == (int)ds->ncols;
	PQclear(res);
	if (!is_shape_ok)
		return fail(job, EXPORT_EXIT_SOFTWARE, "%s: the COPY has the wrong columns", ds->name);
	bool is_header = true;
	for (;;) {
		char *row = NULL;
		int n = PQgetCopyData(job->conn, &row, 0);
		if (n < 0)
			break;
		bool ok = true;
		if (geo) {
			ok = geo_row(job, ds, row, (size_t)n, is_header, csv, geo);
		} else {
			gz_write(csv, row, (size_t)n);
			csv->rows += !is_header;
		}
		PQfreemem(row);
		is_header = false;
		if (!ok)
			return false;
		if (csv->error)
			return fail_output(job, csv->tmp, csv->error);
		if (geo && geo->error)
			return fail_output(job, geo->tmp, geo->error);
		if ((csv->rows & (PROGRESS_ROWS - 1)) == 0)
			progress(job, ds, csv->rows);
	}
	/* the COPY's own outcome: complete, or the server's (or a cancel's) error */
	bool is_done = true;
	for (PGresult *r; (r = PQgetResult(job->conn));) {
		if (is_done && PQresultStatus(r) != PGRES_COMMAND_OK) {
			pq_err(job->conn, r, &err);
			is_done = false;
		}
		PQclear(r);
	}
	if (is_done && PQstatus(job->conn) != CONNECTION_OK) {
		pq_err(job->conn, NULL, &err);
		is_done = false;
	}
	if (!is_done)
		return fail_db(job, ds->name, &err);
	if (geo) {
		gz_write(geo, geojson_tail, sizeof(geojson_tail) - 1);
		if (!gz_finish(geo))
			return fail_output(job, geo->tmp, geo->error);
	}
	if (!gz_finish(csv))
		return fail_output(job, csv->tmp, csv->error);
	double seconds = now_s() - t0;
	log_info("%s: %lld rows, %s %.1f MiB%s in %.1f s (%.0f rows/s)", ds->name, csv->rows,
		 csv->name, (double)csv->file_bytes / 1048576.0,
		 geo ? " and GeoJSON" : "", seconds, seconds > 0 ? (double)csv->rows / seconds : 0.0);
	return true;
}

/* manifest.json: the commit point of a dump (docs/ingest.md, Export). */
static bool write_manifest(struct job *job)
{
	struct buf out = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &out);
	char when[KST_ISO_UTC_SIZE];
	kst_format_iso_utc(job->src.generated_at, when);
	json_obj_begin(&g);
	json_kv_int(&g, "format", 1);
	json_kv_str(&g, "generatedAt", when);
	char generator[128];
	snprintf(generator, sizeof(generator), "ingestd %s", version_string);
	json_kv_str(&g, "generator", generator);
	json_key(&g, "sources");
	json_obj_begin(&g);
	json_key(&g, "chargers");
	if (job->src.chargers_run) {
		json_obj_begin(&g);
		json_kv_int(&g, "runId", job->src.chargers_run);
		json_kv_str(&g, "status", job->src.chargers_status);
		json_kv_str(&g, "finishedAt", job->src.chargers_finished);
		json_obj_end(&g);
	} else {
		json_null(&g);
	}
	json_key(&g, "congestion");
	if (job->src.congestion_snapshot) {
		json_obj_begin(&g);
		json_kv_int(&g, "runId", job->src.congestion_run);
		json_kv_int(&g, "snapshotId", job->src.congestion_snapshot);
		json_kv_str(&g, "takenAt", job->src.congestion_taken);
		json_obj_end(&g);
	} else {
		json_null(&g);
	}
	json_obj_end(&g);
	json_key(&g, "files");
	json_arr_begin(&g);
	for (size_t i = 0; i < job->nfiles; i++) {
		const struct gzout *f = &job->files[i];
		json_obj_begin(&g);
		json_kv_str(&g, "name", f->name);
		json_kv_str(&g, "format", strstr(f->name, ".geojson") ? "geojson" : "csv");
		json_kv_str(&g, "compression", "gzip");
		json_kv_int(&g, "rows", f->rows);
		json_kv_int(&g, "bytes", (int64_t)f->file_bytes);
		json_kv_str(&g, "sha256", f->file_hex);
		json_kv_int(&g, "contentBytes", (int64_t)f->content_bytes);
		json_kv_str(&g, "contentSha256", f->content_hex);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	json_obj_end(&g);
	buf_putc(&out, '\n');
	if (!json_gen_finish(&g) || !buf_ok(&out)) {
		buf_free(&out);
		return fail(job, EXPORT_EXIT_SOFTWARE, "manifest: out of memory");
	}
	/* plain text, through the same temporary-file path as the data files */
	struct gzout *m = &job->manifest;
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	sha256_init(&m->file_sha);
	snprintf(m->name, sizeof(m->name), MANIFEST_NAME);
	snprintf(m->tmp, sizeof(m->tmp), "." MANIFEST_NAME ".part");
	job->has_manifest = true;
	m->fd = openat(job->dirfd, m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool ok = m->fd >= 0 && write_all(m, (const unsigned char *)out.data, out.len) &&
		  fsync(m->fd) == 0;
	if (!ok && !m->error)
		m->error = errno;
	buf_free(&out);
	if (m->fd >= 0 && close(m->fd) != 0 && ok) {
		ok = false;
		m->error = errno;
	}
	m->fd = -1;
	return ok || fail_output(job, m->tmp, m->error);
}

/* The data files over the old ones, then the manifest, then the directory
 * entry made durable. */
static bool publish(struct job *job)
{
	for (size_t i = 0; i <= job->nfiles; i++) {
		struct gzout *f = i < job->nfiles ? &job->files[i] : &job->manifest;
		if (renameat(job->dirfd, f->tmp, job->dirfd, f->name) != 0)
			return fail_output(job, f->name, errno);
		f->tmp[0] = '\0'; /* nothing left to remove */
	}
	job->is_published = true;
	if (fsync(job->dirfd) != 0)
		log_warn("%s: fsync of the directory: %s", job->cfg->out_dir, strerror(errno));
	return true;
}

static bool run(struct job *job)
{
	if (!open_dir(job) || !connect_db(job))
		return false;
	char safe_url[512];
	log_redact(job->cfg->database_url, safe_url, sizeof(safe_url));
	log_info("export of %s into %s (gzip level %d)", safe_url, job->cfg->out_dir,
		 job->cfg->level);
	for (size_t i = 0; i < ARRAY_LEN(datasets); i++)
		if (!export_dataset(job, &datasets[i]))
			return false;
	/* A snapshot whose partition retention dropped after this transaction
	 * began reads as empty: refuse that rather than publish no counters. */
	const struct gzout *cg = NULL;
	for (size_t i = 0; i < job->nfiles; i++)
		if (!strcmp(job->files[i].name, "congestion.csv.gz"))
			cg = &job->files[i];
	if (cg && job->src.congestion_snapshot && cg->rows != job->src.congestion_rows)
		return fail(job, EXPORT_EXIT_DATABASE,
			    "congestion: %lld rows read, snapshot %lld holds %lld (dropped while "
			    "being read? run the export again)",
			    cg->rows, job->src.congestion_snapshot, job->src.congestion_rows);
	struct pgx_err err;
	if (!pgx_commit(job->conn, &err))
		return fail_db(job, "ending the read", &err);
	return write_manifest(job) && publish(job);
}

int export_main(const struct export_config *cfg)
{
	struct stopsig_saved signals;
	stopsig_install(&signals);

	struct job job = {.cfg = cfg, .dirfd = -1, .lockfd = -1, .last_progress = now_s()};
	double t0 = now_s();
	bool ok = run(&job);
	if (!ok && stopsig_caught()) {
		job.code = 128 + stopsig_caught();
		snprintf(job.why, sizeof(job.why), "interrupted by %s", strsignal(stopsig_caught()));
	}
	stopsig_arm(NULL);
	if (job.cancel)
		PQfreeCancel(job.cancel);
	if (job.conn)
		PQfinish(job.conn);
	for (size_t i = 0; i < job.nfiles; i++)
		gz_free(&job.files[i], job.dirfd, job.is_published);
	if (job.has_manifest && !job.is_published && job.manifest.tmp[0])
		(void)unlinkat(job.dirfd, job.manifest.tmp, 0);
	buf_free(&job.scratch);
	buf_free(&job.feature);
	if (ok) {
		long long rows = 0;
		uint64_t bytes = 0;
		for (size_t i = 0; i < job.nfiles; i++) {
			if (!strstr(job.files[i].name, ".geojson")) /* the same rows again */
				rows += job.files[i].rows;
			bytes += job.files[i].file_bytes;
		}
		double seconds = now_s() - t0;
		log_info("export ok: %s/%s: %zu files, %lld rows, %.1f MiB compressed; %.1f s "
			 "(%.0f rows/s)",
			 cfg->out_dir, MANIFEST_NAME, job.nfiles, rows, (double)bytes / 1048576.0,
			 seconds, seconds > 0 ? (double)rows / seconds : 0.0);
	} else {
		log_error("export failed: %s; the previous dump in %s is unchanged", job.why,
			  cfg->out_dir);
	}
	if (job.lockfd >= 0)
		close(job.lockfd); /* releases the flock */
	if (job.dirfd >= 0)
		close(job.dirfd);
	stopsig_restore(&signals);
	return ok ? EXPORT_EXIT_OK : job.code ? job.code : EXPORT_EXIT_SOFTWARE;
}
