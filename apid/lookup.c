#include "lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "params.h"
#include "routes.h"
#include "worker.h"
#include "search.h"

#define SEARCH_PAGE_MAX	     100000
#define SEARCH_LIMIT_DEFAULT 12
#define SEARCH_CITIES_MAX    3

/* ---- GET /stations/summary ---- */

void lookup_summary(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p)
{
	struct param_error err = {{0}};
	struct param_list ids;
	enum param_get got = params_list(p, "stationIds", &ids, &err);
	if (got != PARAM_OK) {
		routes_error(w, req, rc, 400, "%s",
			     got == PARAM_MISSING ? "stationIds: missing" : err.text);
		return;
	}
	const struct snap *s = w->snap;
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_obj_begin(&g);
	json_key(&g, "stations");
	json_arr_begin(&g);
	for (size_t k = 0; k < ids.count; k++) {
		uint32_t i;
		if (!snap_find_station(s, ids.items[k], &i))
			continue;
		const struct snap_station *st = &s->stations[i];
		json_obj_begin(&g);
		json_kv_str(&g, "stationId", snap_text(s, st->id));
		json_kv_str(&g, "companyName", snap_text(s, st->busi_nm));
		json_kv_str(&g, "stationName", snap_text(s, st->name));
		json_kv_str(&g, "address", snap_text(s, st->addr));
		json_kv_str(&g, "operatingTime", snap_text(s, st->use_time));
		json_kv_str(&g, "detailLocation", snap_text(s, st->location));
		json_kv_bool(&g, "isParkingFree", st->is_parking_free);
		json_kv_bool(&g, "isPrivate", st->is_private);
		json_kv_double(&g, "latitude", st->lat, JSON_SHORTEST);
		json_kv_double(&g, "longitude", st->lng, JSON_SHORTEST);
		json_kv_int(&g, "availableCount", snap_available(s, i));
		json_kv_int(&g, "totalCount", st->charger_count);
		json_kv_int(&g, "quickChargerCount", st->quick_count);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	json_obj_end(&g);
	param_list_free(&ids);
	routes_reply_json(w, req, rc, &g);
}

/* ---- GET /stations/search ---- */

enum {
	SCOPE_NAME = 1 << 0,
	SCOPE_ADDRESS = 1 << 1,
	SCOPE_LATITUDE = 1 << 2,
	SCOPE_LONGITUDE = 1 << 3,
	SCOPE_SPEED = 1 << 4,
	SCOPE_ALL = 0x1f,
};

static bool parse_scope(const struct params *p, unsigned *scope, struct param_error *err)
{
	struct param_list list;
	enum param_get got = params_list(p, "scope", &list, err);
	if (got == PARAM_BAD)
		return false;
	if (got == PARAM_MISSING || list.count == 0) {
		*scope = SCOPE_ALL;
		param_list_free(&list);
		return true;
	}
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"stationId", 0},
		     {"stationName", SCOPE_NAME},
		     {"address", SCOPE_ADDRESS},
		     {"latitude", SCOPE_LATITUDE},
		     {"longitude", SCOPE_LONGITUDE},
		     {"speed", SCOPE_SPEED}};
	*scope = 0;
	for (size_t i = 0; i < list.count; i++) {
		bool known = false;
		for (size_t k = 0; k < ARRAY_LEN(names); k++) {
			if (strcmp(list.items[i], names[k].name) == 0) {
				*scope |= names[k].bit;
				known = true;
			}
		}
		if (!known) {
			snprintf(err->text, sizeof(err->text),
				 "scope: '%.40s' is not a field; expected stationId, stationName, "
				 "address, latitude, longitude or speed",
				 list.items[i]);
			param_list_free(&list);
			return false;
		}
	}
	param_list_free(&list);
	return true;
}

void lookup_search(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p)
{
	struct param_error err = {{0}};
	const char *q = NULL;
	long page = 1, limit = SEARCH_LIMIT_DEFAULT;
	unsigned scope = SCOPE_ALL;
	enum param_get got = params_text(p, "q", PARAM_TEXT_MAX, &q, &err);
	if (got == PARAM_MISSING)
		snprintf(err.text, sizeof(err.text), "q: missing");
	if (got != PARAM_OK ||
	    params_integer(p, "page", 1, SEARCH_PAGE_MAX, &page, &err) == PARAM_BAD ||
	    params_integer(p, "limit", 1, PARAM_LIST_MAX, &limit, &err) == PARAM_BAD ||
	    !parse_scope(p, &scope, &err)) {
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	const struct snap *s = w->snap;
	uint64_t *keys = NULL;
	size_t n = 0;
	if (!search_query(s->search, s->search_docs, q, &keys, &n)) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	uint32_t cities[SEARCH_CITIES_MAX];
	size_t ncities = snap_cities_matching(s, q, cities, SEARCH_CITIES_MAX);
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_obj_begin(&g);
	json_kv_int(&g, "totalCount", (int64_t)n);
	json_key(&g, "cities");
	json_arr_begin(&g);
	for (size_t i = 0; i < ncities; i++) {
		const struct snap_city *city = &s->cities[cities[i]];
		json_obj_begin(&g);
		json_kv_str(&g, "cityName", snap_text(s, city->name));
		json_kv_double(&g, "latitude", city->lat, 6);
		json_kv_double(&g, "longitude", city->lng, 6);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	json_key(&g, "stations");
	json_arr_begin(&g);
	size_t first = (size_t)(page - 1) * (size_t)limit;
	for (size_t i = first; i < n && i < first + (size_t)limit; i++) {
		uint32_t k = (uint32_t)keys[i];
		const struct snap_station *st = &s->stations[k];
		json_obj_begin(&g);
		json_kv_str(&g, "stationId", snap_text(s, st->id));
		if (scope & SCOPE_NAME)
			json_kv_str(&g, "stationName", snap_text(s, st->name));
		if (scope & SCOPE_ADDRESS)
			json_kv_str(&g, "address", snap_text(s, st->addr));
		if (scope & SCOPE_LATITUDE)
			json_kv_double(&g, "latitude", st->lat, JSON_SHORTEST);
		if (scope & SCOPE_LONGITUDE)
			json_kv_double(&g, "longitude", st->lng, JSON_SHORTEST);
		if (scope & SCOPE_SPEED)
			json_kv_str(&g, "speed", st->quick_count > 0 ? "quick" : "standard");
		json_obj_end(&g);
	}
	json_arr_end(&g);
	json_obj_end(&g);
	free(keys);
	routes_reply_json(w, req, rc, &g);
}

/* ---- GET /stations/regions ---- */

void lookup_regions(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p)
{
	struct param_error err = {{0}};
	struct param_list list;
	enum param_get got = params_list(p, "regions", &list, &err);
	if (got != PARAM_OK) {
		routes_error(w, req, rc, 400, "%s",
			     got == PARAM_MISSING ? "regions: missing; expected all or region names"
						  : err.text);
		return;
	}
	size_t order[32], n = 0;
	bool all = list.count == 0, seen[32] = {false};
	for (size_t i = 0; i < list.count && !all; i++) {
		if (strcasecmp(list.items[i], "all") == 0) {
			all = true;
			break;
		}
		const struct model_region *r = model_region_by_slug(list.items[i]);
		if (!r) {
			routes_error(w, req, rc, 400, "regions: '%.40s' is not a region",
				     list.items[i]);
			param_list_free(&list);
			return;
		}
		size_t idx = model_region_index(r);
		if (!seen[idx] && n < ARRAY_LEN(order)) {
			seen[idx] = true;
			order[n++] = idx;
		}
	}
	param_list_free(&list);
	if (all)
		for (n = 0; n < model_region_count() && n < ARRAY_LEN(order); n++)
			order[n] = n;
	const struct snap *s = w->snap;
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_arr_begin(&g);
	for (size_t i = 0; i < n; i++) {
		const struct model_region *r = model_region_at(order[i]);
		json_obj_begin(&g);
		json_kv_str(&g, "regionName", r->name_ko);
		json_kv_double(&g, "latitude", r->latitude, JSON_SHORTEST);
		json_kv_double(&g, "longitude", r->longitude, JSON_SHORTEST);
		json_kv_int(&g, "count", s->region_counts[order[i]]);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	routes_reply_json(w, req, rc, &g);
}
