/* stats: GET /stations/{id}/statistics from realtimed's congestion
 * counters in Redis (rkeys.h ev:cg:{statId}:{chgerId}: 168 slots of
 * samples, uses and out of service, read with rkeys_congestion_counter()),
 * read with one MGET per request on the worker's own
 * event loop (hiredis async + libevent), so a request waits for Redis
 * without blocking the worker. Owns that connection per worker: connect
 * (with a timeout), AUTH/SELECT, reconnect with backoff, a deadline per
 * request (503 when Redis is slow or gone), and the arithmetic: a class's
 * ratio for an hour is the sum of its chargers' uses (congestion), or of
 * their out-of-service counts (outOfService), over the sum of their
 * samples, -1 when there is no sample. When Redis cannot answer, the
 * request goes to pgstats.h (the PostgreSQL snapshot).
 *
 * Why Redis and not the PostgreSQL history: the counters are current to
 * the last sample, and one MGET of a station's few keys costs well under a
 * millisecond (docs/api.md has the measurements). */
#ifndef APID_STATS_H
#define APID_STATS_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base.h"
#include "buf.h"
#include "json.h"
#include "kst.h"
#include "meters.h"
#include "snap.h"

struct worker;
struct route_ctx;
struct stats;

struct stats *stats_new(struct event_base *base, const char *redis_url, int timeout_ms,
			const struct meters *meters) MUSTCHECK;
/* Answers every pending request (503) and closes; NULL-safe. Call before
 * the worker's evhttp is freed. */
void stats_free(struct stats *st);
/* Requests waiting for Redis. */
size_t stats_pending(const struct stats *st);

/* dayOfWeek names, 0 = Monday (kst_weekday's order). */
static const char *const stats_weekday_names[7] = {"monday", "tuesday",	 "wednesday", "thursday",
						   "friday", "saturday", "sunday"};

/* What a request answers from a station's counters: the statistics of a
 * weekday (all 24 hours), or an arrival forecast (forecast.h) for the
 * Korea-time slot of arrive_at. */
struct stats_ask {
	int weekday;	  /* 0 = Monday: the weekday whose slots are read */
	bool is_forecast; /* the rest is the forecast's */
	time_t arrive_at, now;
	int64_t status_max_age_s; /* live states older than this are unknown */
};

/* Start answering `ask` for `station`. False when Redis is not connected:
 * the caller falls back (pgstats.h). A request Redis then fails or leaves
 * unanswered past the timeout falls back the same way. */
bool stats_request(struct stats *st, struct worker *w, struct evhttp_request *req,
		   const struct route_ctx *rc, struct snap *snap, uint32_t station,
		   const struct stats_ask *ask) MUSTCHECK;

/* Where an answer's counters came from: "redis" (live counters) or
 * "snapshot" (pgstats.h) with the snapshot's time. */
struct stats_source {
	const char *name;
	time_t taken_at; /* 0: not a snapshot */
};

/* An answer's "source" (and "snapshotTakenAt") members. */
static inline void stats_put_source(struct json_gen *g, const struct stats_source *src)
{
	json_kv_str(g, "source", src->name);
	if (src->taken_at > 0) {
		char iso[KST_ISO_SIZE];
		kst_format_iso(src->taken_at, iso);
		json_kv_str(g, "snapshotTakenAt", iso);
	}
}

/* The answer's JSON from the counters of a station's chargers (blobs[i]
 * of either layout, NULL or cut short: missing counters are zero). */
void stats_render(struct buf *out, const char *station_id, size_t nchargers, const bool *is_quick,
		  const char *const *blobs, const size_t *lens, int weekday,
		  const struct stats_source *src);

/* Answer `ask` from the counters of the station's chargers (blobs as
 * stats_render takes them, in the station's charger order): the one
 * rendering path of both sources. */
void stats_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  const struct snap *snap, uint32_t station, const struct stats_ask *ask,
		  const char *const *blobs, const size_t *lens, const struct stats_source *src);

#endif
