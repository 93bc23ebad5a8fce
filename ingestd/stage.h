/* stage: the per-run staging table of `ingestd chargers` and the COPY that
 * fills it.
 *
 * Owns ingest_stage.items_<run id> (UNLOGGED, no index: the cheapest table
 * PostgreSQL can fill): its DDL, the rendering of one normalized record into
 * one COPY row in the live tables' types and text conventions (absent text
 * is '', as 0001 wants; absent flags and times are NULL), and the content
 * digests of the station part and the charger part that the merge compares
 * (a 128-bit non-cryptographic digest of the normalized values: it detects
 * change, it does not resist an adversary, and it costs a fraction of
 * SHA-256 on a 1.5M-row load). Rejected items go to the same table with
 * their reason, detail and raw text, the other columns NULL.
 *
 * Every row carries the fetch attempt that produced it: items arrive while a
 * page downloads, before the page is known to be good, so the merge reads
 * only rows of accepted attempts (a truncated page's items, re-sent by its
 * retry, are not counted twice). */
#ifndef INGESTD_STAGE_H
#define INGESTD_STAGE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "pgx.h"
#include "record.h"

#define STAGE_SCHEMA "ingest_stage"

/* The upstream-sourced columns of the live tables, in the staging table's
 * order: the merge copies these from staging (stat_id and chger_id aside). */
#define STAGE_STATION_COLUMNS                                                                   \
	"name, addr, addr_detail, location, use_time, lat, lng, busi_id, bnm, busi_nm, "        \
	"busi_call, zcode, zscode, kind, kind_detail, parking_free, limit_yn, limit_detail, "   \
	"del_yn, del_detail, note, traffic_yn, floor_num, floor_type"
#define STAGE_CHARGER_COLUMNS                                                                   \
	"chger_type, output_kw, method, power_type, year, stat, stat_upd_dt, last_tsdt, "       \
	"last_tedt, now_tsdt"

/* "ingest_stage.<kind>_<run id>" into out. kind: "items", "chargers",
 * "stations". */
const char *stage_table(char *out, size_t outlen, const char *kind, long long run_id);

/* CREATE UNLOGGED TABLE ingest_stage.items_<run_id>. */
bool stage_create(PGconn *conn, long long run_id, struct pgx_err *err) MUSTCHECK;
/* Drop every table in ingest_stage except those of keep_run_id (0: all):
 * this run's leftovers at its end, an abandoned run's at the next start.
 * *dropped (may be NULL) gets the count. */
bool stage_sweep(PGconn *conn, long long keep_run_id, int *dropped, struct pgx_err *err) MUSTCHECK;

struct stage;

/* Start the COPY into items_<run_id> on conn (which then carries nothing
 * else until stage_end). */
struct stage *stage_begin(PGconn *conn, long long run_id, struct pgx_err *err) MUSTCHECK;
/* One valid record. False once the COPY has failed (stage_end tells why). */
bool stage_item(struct stage *s, int attempt, long page, long position,
		const struct record *rec) MUSTCHECK;
/* One rejected item: rec holds the reason (record_normalize's result). */
bool stage_reject(struct stage *s, int attempt, long page, long position,
		  const struct record_raw *raw, const struct record *rec) MUSTCHECK;
/* Finish the COPY (frees s). *rows (may be NULL) gets the row count. */
bool stage_end(struct stage *s, long long *rows, struct pgx_err *err) MUSTCHECK;
/* Abandon the COPY (frees s); NULL-safe. */
void stage_abort(struct stage *s, const char *reason);
/* Why the COPY failed, "" while it has not. */
const char *stage_error(const struct stage *s);

/* The 128-bit digest of len bytes, as 16 bytes. Exposed for tests. */
void stage_digest(const void *data, size_t len, uint8_t out[16]);

#endif
