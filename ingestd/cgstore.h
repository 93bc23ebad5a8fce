/* cgstore: congestion snapshots in PostgreSQL (migrations/0004, 0005).
 * Owns every statement on congestion_snapshot, congestion_history,
 * congestion_charger and the congestion_snap schema:
 *   - the snapshot row of a run (opened 'running', closed 'ok' or 'failed',
 *     abandoned ones marked failed by the next run);
 *   - the load, one transaction from CREATE TABLE to the caller's COMMIT:
 *     the snapshot's two tables, COPY ... FREEZE of the hour rows in
 *     primary-key order, the charger rows, the rejects, the primary keys
 *     built afterwards, ANALYZE, ATTACH to the partitioned parents and the
 *     snapshot made current (the caller closes its run row in the same
 *     transaction). A crash anywhere before COMMIT leaves nothing: the
 *     tables vanish with the transaction, the previous snapshot stays
 *     current;
 *   - retention: snapshots past the newest `keep` detached CONCURRENTLY
 *     (readers never wait) and dropped, each step repaired by the next run
 *     if interrupted;
 *   - the restore read: one snapshot's rows, in one REPEATABLE READ
 *     transaction, reassembled into each charger's counters, a station at
 *     a time.
 * Nothing here logs; failures come back in struct pgx_err. */
#ifndef INGESTD_CGSTORE_H
#define INGESTD_CGSTORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "cgvalue.h"
#include "pgx.h"

/* The schema of the snapshot tables (nothing else lives there). */
#define CGSTORE_SCHEMA "congestion_snap"

/* ---- bookkeeping ---- */

/* Whether migrations 0004 and 0005 are applied. */
bool cgstore_is_migrated(PGconn *conn, bool *is_migrated, struct pgx_err *err) MUSTCHECK;

/* What the previous runs left, repaired (call holding the job lock). */
struct cgstore_repair {
	long long snapshots_failed; /* 'running' snapshot rows of dead runs, marked failed */
	int detaches_finished;	    /* partitions left "detach pending", finalized */
	int tables_dropped;	    /* tables of the schema attached to nothing, dropped */
};
bool cgstore_repair(PGconn *conn, struct cgstore_repair *out, struct pgx_err *err) MUSTCHECK;

/* The current snapshot, if any: *id 0 when none. */
struct cgstore_snapshot {
	int id;
	long long chargers, rows;
	uint64_t samples;
	char taken_at[40]; /* ISO 8601 */
};
bool cgstore_current(PGconn *conn, struct cgstore_snapshot *out, struct pgx_err *err) MUSTCHECK;

/* Insert the run's snapshot row ('running'); *snapshot_id gets its id. */
bool cgstore_open(PGconn *conn, long long run_id, int *snapshot_id, struct pgx_err *err) MUSTCHECK;

/* Close a snapshot row as failed (outside any transaction). */
bool cgstore_fail(PGconn *conn, int snapshot_id, const char *error, struct pgx_err *err) MUSTCHECK;

/* ---- the load ---- */

struct cgstore_load;

/* BEGIN, create the snapshot's tables, open the COPY of its hour rows. */
struct cgstore_load *cgstore_load_begin(PGconn *conn, int snapshot_id,
					struct pgx_err *err) MUSTCHECK;
/* A station's 168 x n rows, in primary-key order (weekday, hour, then
 * chgerId: the chargers arrive sorted). Stations must come in statId order
 * for the index build to read sorted input (correct in any order). */
bool cgstore_load_station(struct cgstore_load *load, const char *stat_id,
			  const struct cgvalue_charger *chargers, size_t n,
			  struct pgx_err *err) MUSTCHECK;
long long cgstore_load_rows(const struct cgstore_load *load);
/* Give up: abort the COPY, roll back, free. NULL-safe. */
void cgstore_load_abort(struct cgstore_load *load, const char *reason);

/* The chargers of the snapshot, yielded one at a time: false when there is
 * no more. */
typedef bool (*cgstore_next_charger)(void *arg, const char **stat_id, const char **chger_id,
				     uint32_t *last_sample);

/* One refused key or value, for ingest_reject. */
struct cgstore_reject {
	const char *stat_id, *chger_id; /* may be NULL */
	const char *reason, *detail, *raw;
	long position; /* the key's index in the scan */
};
typedef bool (*cgstore_next_reject)(void *arg, struct cgstore_reject *out);

/* What the run read, for the snapshot row. */
struct cgstore_summary {
	long long run_id;   /* the rejects' ingest_run */
	long long chargers; /* loaded */
	long long rejected;
	uint64_t samples;
	uint64_t out_of_service; /* of the samples */
	uint32_t first_sample, last_sample;
	int sort_mem_mb;     /* maintenance_work_mem of the index build */
	int lock_timeout_ms; /* waiting for the parents' lock at ATTACH */
};

/* Finish the load: end the hour COPY; COPY the chargers and the rejects;
 * build both primary keys; ANALYZE; ATTACH; make the snapshot current and
 * close its row 'ok'. The transaction stays open for the caller to add its
 * run row and COMMIT (or roll back). Frees load (also on failure, after
 * rolling back). *rows gets the hour rows loaded. */
bool cgstore_load_finish(struct cgstore_load *load, const struct cgstore_summary *summary,
			 cgstore_next_charger next_charger, void *charger_arg,
			 cgstore_next_reject next_reject, void *reject_arg, long long *rows,
			 struct pgx_err *err) MUSTCHECK;

/* ---- retention ---- */

/* Detach and drop the partitions of 'ok' snapshots older than the newest
 * `keep` (the current one counts); *dropped gets how many. Each detach is
 * CONCURRENTLY (no transaction block): readers are never blocked.
 * statement_timeout_ms bounds each statement (a long reader of an old
 * snapshot delays its drop to a later run). */
bool cgstore_retain(PGconn *conn, int keep, int statement_timeout_ms, int *dropped,
		    struct pgx_err *err) MUSTCHECK;

/* ---- the restore read ---- */

/* The station callback of the restore: its chargers' counters, sorted by
 * chgerId, each with its last-sample second; false stops the read. */
typedef bool (*cgstore_restore_fn)(void *arg, const char *stat_id,
				   const struct cgvalue_charger *chargers, size_t n);

struct cgstore_restore_result {
	int snapshot_id;
	char taken_at[40];
	long long chargers, rows;
	bool is_stopped; /* the callback returned false */
};

/* Read snapshot `snapshot_id` (0: the current one) in one REPEATABLE READ
 * transaction and call fn per station. False with err on a database error
 * or an inconsistent snapshot; true with result->snapshot_id 0 when there is
 * no such (kept, 'ok') snapshot. */
bool cgstore_restore_read(PGconn *conn, int snapshot_id, cgstore_restore_fn fn, void *arg,
			  struct cgstore_restore_result *result, struct pgx_err *err) MUSTCHECK;

#endif
