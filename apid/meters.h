/* meters: every metric apid exports, registered in one place.
 * Owns the names, help texts, labels and buckets (the alert rules and
 * dashboards of issue 8 name these); modules get the series they update
 * through struct meters, never by name. Series pointers stay valid until
 * the registry is freed; updates are lock-free (metrics.h). */
#ifndef APID_METERS_H
#define APID_METERS_H

#include <stdbool.h>

#include "base.h"
#include "metrics.h"

struct meters {
	struct metrics *registry; /* borrowed */
	/* HTTP */
	struct metric_family *requests;	 /* apid_http_requests_total{route,status} */
	struct metric_family *durations; /* apid_http_request_duration_seconds{route} */
	struct metric_family *refusals;	 /* apid_http_refusals_total{reason} */
	struct metric *connections;	 /* gauge: open client connections */
	struct metric *connections_total;
	/* read model */
	struct metric *builds_ok, *builds_failed;
	struct metric *build_seconds, *model_version, *model_run_id, *model_stations,
		*model_chargers, *model_age, *model_bytes;
	/* live state */
	struct metric *live_connected, *live_sync_age, *live_changes, *live_resyncs,
		*live_apply_delay;
	/* change feed (/stations/changes, changes.c) */
	struct metric *feed_streams, *feed_polls; /* apid_feed_clients{kind}: open now */
	struct metric *feed_events;		  /* changes written to clients */
	struct metric *feed_drop_slow, *feed_drop_full, *feed_drop_behind; /* {reason} */
	struct metric *feed_delay; /* XADD to the write, status changes pushed live */
	/* stores */
	struct metric *pg_errors, *redis_errors;
	/* process */
	struct metric *ready, *draining;
};

/* Register everything; false when a registration fails (a bug: names are
 * constants). */
bool meters_setup(struct meters *m, struct metrics *registry) MUSTCHECK;

#endif
