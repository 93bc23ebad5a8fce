/* area: the map's answers over a box, GET /stations and GET
 * /stations/clusters. Owns the box parameters (centre and half-widths,
 * bounded so a country view goes to clusters), the filters (company,
 * charger type, capacity), `available` (only stations with a fresh STANDBY
 * charger), the marker cap with its even sample (sample=true) and the
 * cluster grid. Answers through routes.h; runs on the worker's thread. */
#ifndef APID_AREA_H
#define APID_AREA_H

#include <event2/http.h>

struct worker;
struct route_ctx;
struct params;

/* GET /stations: the markers in the box (400 past the cap unless sampled). */
void area_stations(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p);
/* GET /stations/clusters: station counts per cell of a grid over the box. */
void area_clusters(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p);

#endif
