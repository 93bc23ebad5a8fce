/* congestion: the `ingestd congestion` job, start to end, and its restore.
 * Owns the order of a run: connect to PostgreSQL, take the job lock (or
 * refuse, naming the run that holds it), repair what dead runs left (their
 * run and snapshot rows marked failed, half-done retention finished), open
 * the run and snapshot rows, read every counter from Redis (cgread.c) into
 * the snapshot's load (cgstore.c), refuse a snapshot whose counters shrank
 * (Redis was lost or reset: the previous snapshot stays current), commit,
 * apply retention, log the summary, and turn the outcome into the exit code
 * the scheduler reads. SIGINT/SIGTERM cancel the statement in progress, roll
 * back and exit 128+signal: the previous snapshot stays current.
 *
 * --restore writes a kept snapshot (the current one by default) back into
 * Redis, byte for byte, pipelined: for realtimed starting on an empty Redis,
 * or an operator after a loss. It never overwrites a counter that exists
 * unless --replace says so. */
#ifndef INGESTD_CONGESTION_H
#define INGESTD_CONGESTION_H

#include <stdbool.h>

/* Exit codes (sysexits style; --help and README list them). */
enum {
	CONGESTION_EXIT_OK = 0,
	CONGESTION_EXIT_SHRUNK = 65,	  /* EX_DATAERR: fewer chargers or samples than the current
					     snapshot (below INGESTD_CONGESTION_MIN_RATIO): not
					     made current */
	CONGESTION_EXIT_NO_SNAPSHOT = 66, /* EX_NOINPUT: restore: no such kept snapshot */
	CONGESTION_EXIT_REDIS = 69,	  /* EX_UNAVAILABLE: Redis unreachable or failing */
	CONGESTION_EXIT_SOFTWARE = 70,	  /* EX_SOFTWARE: internal error (out of memory) */
	CONGESTION_EXIT_DATABASE = 74,	  /* EX_IOERR: the database failed or is unreachable */
	CONGESTION_EXIT_RUNNING = 75, /* EX_TEMPFAIL: another snapshot or restore holds the lock */
	CONGESTION_EXIT_CONFIG = 78,  /* EX_CONFIG: a setting is wrong, or not migrated */
	/* interrupted by SIGINT/SIGTERM: 128 + the signal, as a shell reports it */
};

struct congestion_config {
	const char *database_url;
	const char *redis_url;
	int keep;		  /* snapshots kept, the current one included */
	double min_ratio;	  /* of the current snapshot's chargers and samples; 0: no check */
	int batch_keys;		  /* GETs or SETs per pipelined batch */
	int sort_mem_mb;	  /* maintenance_work_mem of the index build */
	int lock_timeout_ms;	  /* waiting for the parents' lock at ATTACH */
	int retention_timeout_ms; /* one detach or drop of an old snapshot */
	int redis_timeout_ms;
	int progress_seconds;
	bool is_forced; /* make the snapshot current even if it shrank */
	bool is_restore;
	bool is_replace; /* restore: overwrite existing counters too */
	int snapshot_id; /* restore: this snapshot; 0: the current one */
};

/* Run the job (or the restore); returns the exit code. */
int congestion_main(const struct congestion_config *cfg);

#endif
