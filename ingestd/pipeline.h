/* pipeline: the fetch half of `ingestd chargers`: every page of
 * getChargerInfo, concurrently, parsed while it arrives, each item
 * normalized (record.c) and written to the staging COPY (stage.c) as a row
 * or a reject.
 *
 * Owns the run's event loop (libevent), its fetcher (fetch.c), the state of
 * each page (page 1 first, for totalCount; then the others, at most
 * `concurrency` at a time; more pages if a later page reports a larger
 * total), the decision per attempt (upstream.c's classification, plus a
 * page whose item count disagrees with its own envelope: retried), key
 * rotation on quota errors, SIGINT/SIGTERM (stop fetching, report
 * interrupted) and the progress display (a redrawn bar on a terminal, JSON
 * log lines otherwise).
 *
 * Memory: one parser per page in flight, freed when the page is over;
 * items stream into the COPY; only the list of accepted attempt ids grows
 * (one int per page). */
#ifndef INGESTD_PIPELINE_H
#define INGESTD_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"
#include "stage.h"
#include "upstream.h"

struct pipeline_opts {
	const char *base_url;       /* UPSTREAM_URL */
	struct upstream_keys *keys; /* borrowed: the run's key ring */
	struct stage *stage;        /* borrowed: the staging COPY */
	int concurrency;
	int page_size;
	int max_attempts;
	int backoff_first_ms, backoff_max_ms;
	int connect_timeout_ms;
	int page_timeout_s;     /* one attempt; 0: none */
	int low_speed_seconds;  /* under 1 KiB/s for this long: the attempt fails */
	int progress_seconds;
	bool progress_tty;
};

enum pipeline_outcome {
	PIPE_COMPLETE,    /* every page accepted */
	PIPE_PARTIAL,     /* page 1 and some others accepted; some failed */
	PIPE_UNAVAILABLE, /* page 1 failed: nothing known */
	PIPE_CONFIG,      /* the gateway says the configuration is wrong */
	PIPE_DATABASE,    /* the staging COPY failed */
	PIPE_INTERRUPTED, /* SIGINT/SIGTERM */
	PIPE_INTERNAL,    /* out of memory, libevent or curl refused */
};

struct pipeline_result {
	enum pipeline_outcome outcome;
	long total_count;           /* page 1's totalCount (largest seen) */
	long pages_total, pages_ok, pages_failed;
	long long records;          /* items in accepted attempts */
	long long valid, rejected, repaired;
	long long bytes;            /* every attempt's body bytes */
	long long attempts, retries;
	int *accepted;              /* owned: accepted attempt ids */
	size_t naccepted;
	int attempt_ids;            /* ids handed out (1..attempt_ids) */
	int signal;                 /* PIPE_INTERRUPTED: which */
	char error[512];            /* first failure, one line, no secrets */
};

/* Run the fetch to its end. False only for PIPE_INTERNAL before anything
 * ran; otherwise out->outcome tells. */
bool pipeline_run(const struct pipeline_opts *opts, struct pipeline_result *out) MUSTCHECK;
void pipeline_result_free(struct pipeline_result *r);

#endif
