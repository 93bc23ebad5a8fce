/* chargers: the `ingestd chargers` job, start to end.
 * Owns the order of a run: connect, take the job lock (or refuse, naming
 * the run that holds it), clean up after an abandoned run (its ingest_run
 * row marked failed, its staging dropped), open the run row and the staging
 * COPY, fetch every page (pipeline.c), end the COPY, merge (merge.c), drop
 * the staging, log the summary, and turn the outcome into the exit code the
 * scheduler reads. A failed run's row is finished here; merge.c writes a
 * successful one. */
#ifndef INGESTD_CHARGERS_H
#define INGESTD_CHARGERS_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes (sysexits style; --help and README list them). */
enum {
	CHARGERS_EXIT_OK = 0,
	CHARGERS_EXIT_PARTIAL = 65,     /* EX_DATAERR: loaded, but the pass was incomplete or
					   implausible: nothing deleted */
	CHARGERS_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: the upstream gave nothing usable */
	CHARGERS_EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: internal error */
	CHARGERS_EXIT_DATABASE = 74,    /* EX_IOERR: the database failed or is unreachable */
	CHARGERS_EXIT_RUNNING = 75,     /* EX_TEMPFAIL: another run holds the lock */
	CHARGERS_EXIT_CONFIG = 78,      /* EX_CONFIG: a setting, key or URL is wrong */
	/* interrupted by SIGINT/SIGTERM: 128 + the signal, as a shell reports it */
};

struct chargers_config {
	const char *database_url;
	const char *upstream_url;
	const char *const *keys;
	size_t nkeys;
	long key_call_limit;
	int concurrency;
	int page_size;
	int max_attempts;
	int backoff_first_ms, backoff_max_ms;
	int connect_timeout_ms;
	int page_timeout_s;
	int low_speed_seconds;
	double delete_min_ratio;
	const char *notify_channel;
	int progress_seconds;
	bool dry_run;
};

/* Run the job; returns the exit code. */
int chargers_main(const struct chargers_config *cfg);

#endif
