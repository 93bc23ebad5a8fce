/* lookup: finding stations other than on the map. Owns GET
 * /stations/summary (cards for a list of stationIds, unknown ones left
 * out), GET /stations/search (text search over the snapshot's index, with
 * matching cities, pages and the scope of fields returned) and GET
 * /stations/regions (station counts per region). Answers through routes.h;
 * runs on the worker's thread. */
#ifndef APID_LOOKUP_H
#define APID_LOOKUP_H

#include <event2/http.h>

struct worker;
struct route_ctx;
struct params;

void lookup_summary(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p);
void lookup_search(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p);
void lookup_regions(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p);

#endif
