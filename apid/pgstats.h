/* pgstats: GET /stations/{id}/statistics from the latest PostgreSQL
 * congestion snapshot (`ingestd congestion`, migrations/0004), the fallback
 * when Redis cannot answer (stats.c hands its failures here). Owns, per
 * worker, one libpq connection driven asynchronously on the worker's event
 * loop (PQconnectStart/PQconnectPoll, PQsendQueryParams), opened on first
 * need and kept; a FIFO of requests (one query in flight: libpq's plain
 * protocol), a deadline per request (503 when PostgreSQL is slow or gone),
 * and a pause of PGSTATS_RETRY_MS after a failed connection, during which
 * requests get 503 at once instead of piling up connects. The arithmetic is
 * stats_render's: the snapshot's rows are put back into the counters'
 * layout, so both sources answer by one formula. */
#ifndef APID_PGSTATS_H
#define APID_PGSTATS_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#include "base.h"
#include "meters.h"
#include "snap.h"

struct worker;
struct route_ctx;
struct pgstats;
struct stats_ask;

#define PGSTATS_RETRY_MS 1000

/* conninfo "" or NULL: no fallback (pgstats_answer then answers 503). */
struct pgstats *pgstats_new(struct event_base *base, const char *conninfo, int timeout_ms,
			    const struct meters *meters) MUSTCHECK;
/* Answers every queued request (503) and closes; NULL-safe. Call before
 * the worker's evhttp is freed. */
void pgstats_free(struct pgstats *ps);
size_t pgstats_pending(const struct pgstats *ps);

/* Answer `ask` (stats.h: statistics or forecast) for `station` from the
 * snapshot, on the worker's own loop (w->pgstats); when that is impossible,
 * 503 naming `redis_why` (why Redis did not answer) and the PostgreSQL
 * reason. Always answers, now or later. */
void pgstats_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    struct snap *snap, uint32_t station, const struct stats_ask *ask,
		    const char *redis_why);

#endif
