#include "station.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "forecast.h"
#include "json.h"
#include "params.h"
#include "kst.h"
#include "pgstats.h"
#include "routes.h"
#include "worker.h"
#include "server.h"
#include "stats.h"

/* ---- GET /stations/{id} ---- */

static void put_charger(struct json_gen *g, const struct snap *s, uint32_t c, bool freshness,
			int64_t now)
{
	const struct snap_charger *ch = &s->chargers[c];
	uint64_t live = snap_live_word(s, c);
	json_obj_begin(g);
	json_key(g, "type");
	if (ch->type)
		json_str(g, model_type_name(ch->type));
	else if (*snap_text(s, ch->type_text))
		json_str(g, snap_text(s, ch->type_text)); /* a code that is not a number: kept */
	else
		json_null(g);
	json_kv_null(g, "price"); /* no tariff source yet */
	json_key(g, "capacity");
	if (ch->output_ckw >= 0)
		json_double(g, ch->output_ckw / 100.0, 2);
	else
		json_null(g);
	json_key(g, "latestUpdateTime");
	if (snap_live_time(live) > 0) {
		char iso[KST_ISO_SIZE];
		kst_format_iso((time_t)snap_live_time(live), iso);
		json_str(g, iso);
	} else {
		json_null(g);
	}
	json_kv_str(g, "state", model_status_name(snap_live_status(live)));
	if (freshness) {
		json_key(g, "statusAgeSeconds");
		if (snap_live_time(live) > 0)
			json_int(g, now > snap_live_time(live) ? now - snap_live_time(live) : 0);
		else
			json_null(g);
	}
	json_key(g, "method");
	if (ch->method == 1)
		json_str(g, "단독");
	else if (ch->method == 2)
		json_str(g, "동시");
	else
		json_null(g);
	json_obj_end(g);
}

/* live: every charger's status is known and fresh, and the live state is
 * current; unknown: none is; stale: anything between (some chargers not
 * fresh, or Redis not followed right now). */
static const char *station_confidence(const struct worker *w, const struct snap *s, uint32_t i,
				      int64_t now)
{
	const struct snap_station *st = &s->stations[i];
	int64_t max_age_s = server_config(w->server)->status_max_age_s;
	uint32_t fresh = 0;
	for (uint32_t k = 0; k < st->charger_count; k++)
		fresh += snap_live_fresh(snap_live_word(s, st->first_charger + k), now, max_age_s);
	if (fresh == 0)
		return "unknown";
	int64_t age;
	if (fresh < st->charger_count || server_live_stale(w->server, &age))
		return "stale";
	return "live";
}

void station_detail(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p, uint32_t i)
{
	const struct snap *s = w->snap;
	const struct snap_station *st = &s->stations[i];
	struct param_error err = {{0}};
	const char *v = "false";
	if (params_one(p, "freshness", &v, &err) == PARAM_BAD ||
	    (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)) {
		if (!err.text[0])
			snprintf(err.text, sizeof(err.text),
				 "freshness: '%.20s' is not a boolean; expected true or false", v);
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	bool freshness = strcmp(v, "true") == 0;
	int64_t now = time(NULL);
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_obj_begin(&g);
	json_kv_str(&g, "stationId", snap_text(s, st->id));
	json_kv_str(&g, "stationName", snap_text(s, st->name));
	json_kv_str(&g, "companyName", snap_text(s, st->busi_nm));
	json_kv_str(&g, "address", snap_text(s, st->addr));
	json_kv_str(&g, "contact", snap_text(s, st->busi_call));
	json_kv_bool(&g, "isParkingFree", st->is_parking_free);
	json_kv_str(&g, "operatingTime", snap_text(s, st->use_time));
	json_kv_str(&g, "detailLocation", snap_text(s, st->location));
	json_kv_double(&g, "latitude", st->lat, JSON_SHORTEST);
	json_kv_double(&g, "longitude", st->lng, JSON_SHORTEST);
	json_kv_bool(&g, "isPrivate", st->is_private);
	json_kv_str(&g, "stationState", snap_text(s, st->note));
	json_kv_str(&g, "privateReason", snap_text(s, st->limit_detail));
	if (freshness)
		json_kv_str(&g, "statusConfidence", station_confidence(w, s, i, now));
	json_key(&g, "chargers");
	json_arr_begin(&g);
	for (uint32_t k = 0; k < st->charger_count; k++)
		put_charger(&g, s, st->first_charger + k, freshness, now);
	json_arr_end(&g);
	json_obj_end(&g);
	routes_reply_json(w, req, rc, &g);
}

/* ---- GET /stations/{id}/statistics ---- */

void station_statistics(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			const struct params *p, uint32_t station)
{
	struct param_error err = {{0}};
	const char *day = "monday";
	if (params_one(p, "dayOfWeek", &day, &err) == PARAM_BAD) {
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	struct stats_ask ask = {.weekday = -1};
	for (int i = 0; i < 7; i++)
		if (strcasecmp(day, stats_weekday_names[i]) == 0)
			ask.weekday = i;
	if (ask.weekday < 0) {
		routes_error(w, req, rc, 400,
			     "dayOfWeek: '%.20s' is not a day; expected monday .. sunday", day);
		return;
	}
	if (!w->stats || !stats_request(w->stats, w, req, rc, w->snap, station, &ask))
		pgstats_answer(w, req, rc, w->snap, station, &ask, "Redis unreachable");
}

/* ---- GET /stations/{id}/forecast (issue 10) ---- */

void station_forecast(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		      const struct params *p, uint32_t station)
{
	struct param_error err = {{0}};
	const char *text = NULL;
	enum param_get got = params_one(p, "arriveAt", &text, &err);
	if (got != PARAM_OK) {
		routes_error(w, req, rc, 400, "%s",
			     got == PARAM_MISSING ? "arriveAt: missing; expected ISO 8601 with an "
						    "offset, e.g. 2024-11-25T18:30:00+09:00"
						  : err.text);
		return;
	}
	struct stats_ask ask = {.is_forecast = true,
				.now = time(NULL),
				.status_max_age_s = server_config(w->server)->status_max_age_s};
	char why[160];
	if (!forecast_parse_time(text, &ask.arrive_at, why, sizeof(why)) ||
	    !forecast_check_window(ask.arrive_at, ask.now, why, sizeof(why))) {
		routes_error(w, req, rc, 400, "arriveAt: '%.40s' %s%s", text,
			     strncmp(why, "is ", 3) == 0 ? "" : "is not a time: ", why);
		return;
	}
	ask.weekday = kst_weekday(ask.arrive_at);
	if (!w->stats || !stats_request(w->stats, w, req, rc, w->snap, station, &ask))
		pgstats_answer(w, req, rc, w->snap, station, &ask, "Redis unreachable");
}
