/* loader: builds read-model snapshots from PostgreSQL, in a thread of its own.
 * Owns its connection (the read-only role; blocking libpq is fine here: no
 * event loop runs on this thread), the decision to rebuild and the build:
 * at start (retrying with backoff until PostgreSQL answers), on ingestd's
 * NOTIFY, and when a new finished 'chargers' run appears in ingest_run
 * (polled: NOTIFY does not reach a streaming replica). One build reads
 * stations and chargers in one REPEATABLE READ transaction, so a model
 * never mixes two loads. A finished snapshot goes to `publish`; the
 * snapshot being served stays until then, and whatever fails (PostgreSQL
 * down, a query error) leaves it in place. */
#ifndef APID_LOADER_H
#define APID_LOADER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "meters.h"
#include "snap.h"

/* The job ingestd records for master-data loads (ingestd/run.h RUN_JOB). */
#define LOADER_JOB "chargers"
/* ingestd's default NOTIFY channel (INGESTD_NOTIFY_CHANNEL); apid's
 * APID_NOTIFY_CHANNEL must name the same. */
#define LOADER_NOTIFY_CHANNEL "ingest_chargers"

struct feed;

struct loader_config {
	const char *conninfo;	    /* borrowed for the loader's life */
	const char *notify_channel; /* "" for none: polling only */
	int poll_seconds;	    /* ingest_run check interval */
	struct feed *feed;	    /* borrowed; NULL: none. After each build, the stations
				     * the new finished runs changed go to it (feed.h) */
};

/* Takes the snapshot's reference. Called on the loader's thread. */
typedef void (*loader_publish_fn)(void *arg, struct snap *snap);

struct loader;

struct loader *loader_start(const struct loader_config *cfg, const struct meters *meters,
			    loader_publish_fn publish, void *arg) MUSTCHECK;
/* Stop and join; NULL-safe. */
void loader_stop(struct loader *l);
/* Rebuild now (SIGHUP). Any thread. */
void loader_request(struct loader *l);
/* Is PostgreSQL answering the loader right now? Any thread. */
bool loader_is_connected(const struct loader *l);

/* Build one snapshot on an open connection (tests and the benchmark use it
 * directly). NULL with the reason in err. */
struct snap *loader_build(PGconn *conn, char *err, size_t errlen) MUSTCHECK;

#endif
