/* station: the answers about one station, found by routes.c from the path.
 * Owns GET /stations/{id} (the detail, its chargers and, with
 * freshness=true, each status's age and the station's confidence) and the
 * parameters of its two sub-resources, /statistics (dayOfWeek) and
 * /forecast (arriveAt, within the forecast window); those are answered by
 * stats.c from Redis, else by pgstats.c from the PostgreSQL snapshot. Runs
 * on the worker's thread. */
#ifndef APID_STATION_H
#define APID_STATION_H

#include <event2/http.h>
#include <stdint.h>

struct worker;
struct route_ctx;
struct params;

/* `station` indexes w->snap->stations. */
void station_detail(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p, uint32_t station);
void station_statistics(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			const struct params *p, uint32_t station);
void station_forecast(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		      const struct params *p, uint32_t station);

#endif
