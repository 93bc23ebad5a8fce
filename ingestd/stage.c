#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kst.h"
#include "utf8.h"

/* Raw text kept per reject: enough to see what came, bounded against a
 * hostile item. */
#define REJECT_RAW_MAX 8192

const char *stage_table(char *out, size_t outlen, const char *kind, long long run_id)
{
	snprintf(out, outlen, STAGE_SCHEMA ".%s_%lld", kind, run_id);
	return out;
}

/* The staging row: provenance, reject columns, then the live tables'
 * columns in STAGE_STATION_COLUMNS / STAGE_CHARGER_COLUMNS order with the
 * two digests. Types match the live tables, so the merge copies without
 * casts. */
static const char sql_create_fmt[] =
	"CREATE UNLOGGED TABLE %s ("
	"attempt integer NOT NULL, page integer NOT NULL, pos integer NOT NULL, "
	"stat_id text, chger_id text, reason text, detail text, raw text, swapped boolean, "
	"name text, addr text, addr_detail text, location text, use_time text, "
	"lat double precision, lng double precision, busi_id text, bnm text, busi_nm text, "
	"busi_call text, zcode text, zscode text, kind text, kind_detail text, "
	"parking_free boolean, limit_yn boolean, limit_detail text, del_yn boolean, "
	"del_detail text, note text, traffic_yn boolean, floor_num text, floor_type text, "
	"station_hash bytea, "
	"chger_type text, output_kw numeric(8,2), method text, power_type text, year smallint, "
	"stat smallint, stat_upd_dt timestamptz, last_tsdt timestamptz, last_tedt timestamptz, "
	"now_tsdt timestamptz, charger_hash bytea"
	") WITH (autovacuum_enabled = false)";

bool stage_create(PGconn *conn, long long run_id, struct pgx_err *err)
{
	char table[96], sql[sizeof(sql_create_fmt) + 96];
	stage_table(table, sizeof(table), "items", run_id);
	snprintf(sql, sizeof(sql), sql_create_fmt, table);
	return pgx_cmd(conn, sql, 0, NULL, NULL, err);
}

/* Tables of the staging schema; the run id is the number after the last
 * '_' of the name. */
static const char sql_stage_tables[] =
	"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE n.nspname = '" STAGE_SCHEMA "' AND c.relkind = 'r'";

bool stage_sweep(PGconn *conn, long long keep_run_id, int *dropped, struct pgx_err *err)
{
	if (dropped)
		*dropped = 0;
	PGresult *res = pgx_exec(conn, sql_stage_tables, 0, NULL, err);
	if (!res)
		return false;
	bool ok = true;
	for (int i = 0; i < PQntuples(res) && ok; i++) {
		const char *name = PQgetvalue(res, i, 0);
		const char *us = strrchr(name, '_');
		if (keep_run_id && us && strtoll(us + 1, NULL, 10) == keep_run_id)
			continue;
		char *quoted = PQescapeIdentifier(conn, name, strlen(name));
		if (!quoted) {
			ok = false;
			break;
		}
		char sql[256];
		snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS " STAGE_SCHEMA ".%s", quoted);
		PQfreemem(quoted);
		ok = pgx_cmd(conn, sql, 0, NULL, NULL, err);
		if (ok && dropped)
			(*dropped)++;
	}
	PQclear(res);
	return ok;
}

/* ---- digest ---- */

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t fmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Two 64-bit multiply-rotate lanes over 8-byte words, each finished with
 * splitmix64's mixer: every input bit reaches every output bit. */
void stage_digest(const void *data, size_t len, uint8_t out[16])
{
	const unsigned char *p = data;
	uint64_t h1 = 0x243F6A8885A308D3ULL ^ len, h2 = 0x13198A2E03707344ULL ^ (len << 1);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h1 = rotl((h1 ^ w) * 0x9E3779B97F4A7C15ULL, 31);
		h2 = rotl((h2 + w) * 0xC2B2AE3D27D4EB4FULL, 29) ^ h1;
	}
	uint64_t tail = 0;
	memcpy(&tail, p + i, len - i);
	h1 = fmix(h1 ^ tail ^ 0xA5A5A5A5A5A5A5A5ULL);
	h2 = fmix(h2 ^ rotl(tail, 17) ^ h1);
	h1 = fmix(h1 + h2);
	memcpy(out, &h1, 8);
	memcpy(out + 8, &h2, 8);
}

/* ---- COPY ---- */

struct stage {
	struct pgx_copy *copy; /* owned until stage_end/abort */
	struct pgx_err err;
	bool failed;
	struct buf canon; /* owned: the digest input of one row part */
	struct buf raw;   /* owned: a reject's raw JSON */
};

struct stage *stage_begin(PGconn *conn, long long run_id, struct pgx_err *err)
{
	char table[96], sql[160];
	stage_table(table, sizeof(table), "items", run_id);
	snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", table);
	struct stage *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	buf_init(&s->canon);
	buf_init(&s->raw);
	s->copy = pgx_copy_begin(conn, sql, err);
	if (!s->copy) {
		stage_abort(s, NULL);
		return NULL;
	}
	return s;
}

const char *stage_error(const struct stage *s)
{
	return s->failed ? s->err.msg : "";
}

/* A text column: absent is '' (0001: text columns are NOT NULL DEFAULT ''). */
static void put_text(struct stage *s, const struct record *rec, int field)
{
	const char *v = rec->text[field];
	pgx_copy_field(s->copy, v ? v : "", v ? rec->len[field] : 0);
	buf_append(&s->canon, v ? v : "", v ? rec->len[field] : 0);
	buf_putc(&s->canon, '\x1f');
}

/* A column NULL when absent (numbers, flags, times). */
static void put_nullable(struct stage *s, const char *v, size_t len)
{
	pgx_copy_field(s->copy, v, len);
	if (v)
		buf_append(&s->canon, v, len);
	else
		buf_putc(&s->canon, '\x1e'); /* NULL differs from every text */
	buf_putc(&s->canon, '\x1f');
}

static void put_flag(struct stage *s, signed char flag)
{
	put_nullable(s, flag < 0 ? NULL : flag ? "t" : "f", 1);
}

static void put_time(struct stage *s, const struct record *rec, enum record_time which)
{
	if (!rec->has_time[which]) {
		put_nullable(s, NULL, 0);
		return;
	}
	char iso[KST_ISO_SIZE];
	size_t n = kst_format_iso(rec->time[which], iso);
	put_nullable(s, iso, n);
}

static void put_digest(struct stage *s)
{
	uint8_t d[16];
	stage_digest(s->canon.data ? s->canon.data : "", s->canon.len, d);
	static const char hex[] = "0123456789abcdef";
	char text[2 + 32];
	text[0] = '\\';
	text[1] = 'x';
	for (int i = 0; i < 16; i++) {
		text[2 + 2 * i] = hex[d[i] >> 4];
		text[3 + 2 * i] = hex[d[i] & 15];
	}
	pgx_copy_field(s->copy, text, sizeof(text));
	buf_reset(&s->canon);
}

static bool end_row(struct stage *s)
{
	if (!pgx_copy_end_row(s->copy, &s->err) || !buf_ok(&s->canon) || !buf_ok(&s->raw)) {
		if (!s->err.msg[0])
			snprintf(s->err.msg, sizeof(s->err.msg), "staging: out of memory");
		s->failed = true;
		return false;
	}
	return true;
}

bool stage_item(struct stage *s, int attempt, long page, long position, const struct record *rec)
{
	if (s->failed)
		return false;
	pgx_copy_int(s->copy, attempt);
	pgx_copy_int(s->copy, page);
	pgx_copy_int(s->copy, position);
	pgx_copy_field(s->copy, rec->text[RF_STAT_ID], rec->len[RF_STAT_ID]);
	pgx_copy_field(s->copy, rec->text[RF_CHGER_ID], rec->len[RF_CHGER_ID]);
	pgx_copy_null(s->copy); /* reason */
	pgx_copy_null(s->copy); /* detail */
	pgx_copy_null(s->copy); /* raw */
	pgx_copy_str(s->copy, rec->coord_swapped ? "t" : "f");

	buf_reset(&s->canon);
	put_text(s, rec, RF_STAT_NM);
	put_text(s, rec, RF_ADDR);
	put_text(s, rec, RF_ADDR_DETAIL);
	put_text(s, rec, RF_LOCATION);
	put_text(s, rec, RF_USE_TIME);
	put_text(s, rec, RF_LAT);
	put_text(s, rec, RF_LNG);
	put_text(s, rec, RF_BUSI_ID);
	put_text(s, rec, RF_BNM);
	put_text(s, rec, RF_BUSI_NM);
	put_text(s, rec, RF_BUSI_CALL);
	put_text(s, rec, RF_ZCODE);
	put_text(s, rec, RF_ZSCODE);
	put_text(s, rec, RF_KIND);
	put_text(s, rec, RF_KIND_DETAIL);
	put_flag(s, rec->flag[RFL_PARKING_FREE]);
	put_flag(s, rec->flag[RFL_LIMIT]);
	put_text(s, rec, RF_LIMIT_DETAIL);
	put_flag(s, rec->flag[RFL_DEL]);
	put_text(s, rec, RF_DEL_DETAIL);
	put_text(s, rec, RF_NOTE);
	put_flag(s, rec->flag[RFL_TRAFFIC]);
	put_text(s, rec, RF_FLOOR_NUM);
	put_text(s, rec, RF_FLOOR_TYPE);
	put_digest(s);

	put_text(s, rec, RF_CHGER_TYPE);
	put_nullable(s, rec->text[RF_OUTPUT], rec->len[RF_OUTPUT]);
	put_text(s, rec, RF_METHOD);
	put_text(s, rec, RF_POWER_TYPE);
	put_nullable(s, rec->text[RF_YEAR], rec->len[RF_YEAR]);
	/* 0001: stat NOT NULL DEFAULT 9; an item without one is "unknown" */
	put_nullable(s, rec->text[RF_STAT] ? rec->text[RF_STAT] : "9",
		     rec->text[RF_STAT] ? rec->len[RF_STAT] : 1);
	put_time(s, rec, RT_STAT_UPD);
	put_time(s, rec, RT_LAST_TS);
	put_time(s, rec, RT_LAST_TE);
	put_time(s, rec, RT_NOW_TS);
	put_digest(s);
	return end_row(s);
}

/* A raw id worth storing beside a reject: trimmed, valid UTF-8, short. */
static void put_raw_id(struct stage *s, const struct record_raw *raw, enum record_field field)
{
	const char *text;
	size_t len;
	enum record_json type = record_raw_get(raw, field, &text, &len);
	if (type == RECORD_JSON_STRING || type == RECORD_JSON_NUMBER) {
		len = record_trim(&text, len);
		if (len > 0 && len <= 64 && utf8_valid(text, len) && !memchr(text, '\0', len)) {
			pgx_copy_field(s->copy, text, len);
			return;
		}
	}
	pgx_copy_null(s->copy);
}

bool stage_reject(struct stage *s, int attempt, long page, long position,
		  const struct record_raw *raw, const struct record *rec)
{
	if (s->failed)
		return false;
	pgx_copy_int(s->copy, attempt);
	pgx_copy_int(s->copy, page);
	pgx_copy_int(s->copy, position);
	put_raw_id(s, raw, RF_STAT_ID);
	put_raw_id(s, raw, RF_CHGER_ID);
	pgx_copy_str(s->copy, record_reason_code(rec->reason));
	pgx_copy_str(s->copy, rec->detail);
	buf_reset(&s->raw);
	record_raw_json(raw, &s->raw, REJECT_RAW_MAX);
	/* json_escape wrote \u0000 for a NUL: the text is storable */
	pgx_copy_field(s->copy, buf_cstr(&s->raw), s->raw.len);
	pgx_copy_null(s->copy); /* swapped */
	/* the 35 value columns and 2 digests: NULL */
	for (int i = 0; i < 24 + 1 + 10 + 1; i++)
		pgx_copy_null(s->copy);
	return end_row(s);
}

bool stage_end(struct stage *s, long long *rows, struct pgx_err *err)
{
	bool ok = !s->failed;
	if (ok) {
		ok = pgx_copy_end(s->copy, rows, err);
		s->copy = NULL;
	} else if (err) {
		*err = s->err;
	}
	stage_abort(s, "staging failed");
	return ok;
}

void stage_abort(struct stage *s, const char *reason)
{
	if (!s)
		return;
	if (s->copy)
		pgx_copy_abort(s->copy, reason);
	buf_free(&s->canon);
	buf_free(&s->raw);
	free(s);
}
