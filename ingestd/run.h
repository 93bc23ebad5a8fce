/* run: the bookkeeping every ingestd job shares: its advisory lock and its
 * ingest_run rows.
 *
 * Owns the job lock (session level, one pgx key per family of jobs: the lock
 * is held for the whole run, so a second run is refused at once and told
 * which run holds it); the ingest_run row of a run ('running' with host and
 * pid from start to finish); and marking abandoned runs failed. A run killed
 * at any point leaves its row 'running'; the next run of the family, holding
 * the lock and so knowing nobody else runs, marks such rows failed
 * (run_reap). What else a dead run left (staging tables, snapshots) is the
 * job's to clean up. Runtime SQL lives here; callers log. */
#ifndef INGESTD_RUN_H
#define INGESTD_RUN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgx.h"

/* A family of jobs sharing one lock: `ingestd chargers` alone, or the
 * congestion snapshot and restore. jobs[] are ingest_run.job values. */
struct run_family {
	int64_t lock_key; /* PGX_LOCK_* */
	const char *const *jobs;
	size_t njobs;
};

enum run_lock {
	RUN_LOCKED, /* this session holds the lock */
	RUN_BUSY,   /* another session does: holder describes it */
	RUN_ERROR,  /* database error: err */
};

/* Take the family's lock without waiting. RUN_BUSY: holder gets
 * "<job> run <id> (pid P on H, started T, backend B)", or a note that the
 * holder has no row yet (a dry run, or a run starting up). */
enum run_lock run_lock(PGconn *conn, const struct run_family *family, char *holder,
		       size_t holder_len, struct pgx_err *err);

/* Mark every 'running' row of the family failed (abandoned); *reaped gets
 * how many. Call holding the lock. */
bool run_reap(PGconn *conn, const struct run_family *family, long long *reaped,
	      struct pgx_err *err) MUSTCHECK;

/* Insert the run's row for job ('running', host, pid); *run_id gets its id. */
bool run_start(PGconn *conn, const char *job, long long *run_id, struct pgx_err *err) MUSTCHECK;

/* A run id for a dry run (its staging table is named by it), with no row. */
bool run_dry_id(PGconn *conn, long long *run_id, struct pgx_err *err) MUSTCHECK;

/* What a run's row reports when the job finishes it here (merge.c writes a
 * successful chargers run itself, with the merge's counts). */
struct run_counts {
	long pages;
	long long records, inserted, unchanged, rejected, repaired, bytes;
};

/* Finish the row: status ("ok", "partial", "failed"), error (one line, or
 * NULL), counts. Fails (err says why) when the row is no longer 'running'. */
bool run_finish(PGconn *conn, long long run_id, const char *status, const char *error,
		const struct run_counts *counts, struct pgx_err *err) MUSTCHECK;

#endif
