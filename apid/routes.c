#include "routes.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "changes.h"
#include "conn.h"
#include "forecast.h"
#include "json.h"
#include "kst.h"
#include "log.h"
#include "params.h"
#include "pgstats.h"
#include "ratelimit.h"
#include "search.h"
#include "server.h"
#include "stats.h"

/* Bounds on the map box: half-widths in degrees. A box wider than these
 * is a country view, which clients draw with /stations/clusters. */
#define MARKER_DELTA_MAX      10.0
#define CLUSTER_DIVISIONS_MAX 100
#define SEARCH_PAGE_MAX	      100000
#define SEARCH_LIMIT_DEFAULT  12
#define SEARCH_CITIES_MAX     3
#define STATION_ID_MAX	      128

static const char *const route_names[ROUTE_COUNT] = {
	[ROUTE_STATIONS] = "stations",	   [ROUTE_STATION] = "station",
	[ROUTE_STATISTICS] = "statistics", [ROUTE_FORECAST] = "forecast",
	[ROUTE_CHANGES] = "changes",	   [ROUTE_SUMMARY] = "summary",
	[ROUTE_SEARCH] = "search",	   [ROUTE_REGIONS] = "regions",
	[ROUTE_CLUSTERS] = "clusters",	   [ROUTE_FILTERS] = "filters",
	[ROUTE_HEALTHZ] = "healthz",	   [ROUTE_READYZ] = "readyz",
	[ROUTE_METRICS] = "metrics",	   [ROUTE_OPENAPI] = "openapi",
	[ROUTE_OTHER] = "other",	   [ROUTE_REFUSED] = "refused",
};

static const int status_slots[WORKER_STATUS_SLOTS - 1] = {200, 400, 404, 405, 408, 413, 414,
							  429, 431, 500, 501, 503, 505, 304};

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 410: return "Gone";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void count(struct worker *w, const struct route_ctx *rc, int status)
{
	size_t slot = WORKER_STATUS_SLOTS - 1;
	for (size_t i = 0; i < ARRAY_LEN(status_slots); i++)
		if (status_slots[i] == status)
			slot = i;
	struct metric **m = &w->requests[rc->route][slot];
	if (!*m) {
		char text[8];
		if (slot == WORKER_STATUS_SLOTS - 1)
			snprintf(text, sizeof(text), "other");
		else
			snprintf(text, sizeof(text), "%d", status);
		*m = METRIC_GET(w->meters->requests, route_names[rc->route], text);
	}
	metric_inc(*m);
	struct metric **d = &w->durations[rc->route];
	if (!*d)
		*d = METRIC_GET(w->meters->durations, route_names[rc->route]);
	metric_observe(*d, (double)(mono_ns() - rc->start_ns) / 1e9);
}

static void add_headers(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			int status, const char *content_type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", content_type);
	if (rc->uses_live) {
		int64_t age;
		if (server_live_stale(w->server, &age)) {
			evhttp_add_header(h, "X-Live-State", "stale");
			if (age >= 0) {
				char text[24];
				snprintf(text, sizeof(text), "%lld", (long long)age);
				evhttp_add_header(h, "X-Live-State-Age", text);
			}
		}
	}
	if (status == 405)
		evhttp_add_header(h, "Allow", "GET, HEAD");
	if (w->draining || rc->route == ROUTE_REFUSED)
		evhttp_add_header(h, "Connection", "close");
}

static void send_reply(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		       int status, const char *content_type, const char *body, size_t len)
{
	add_headers(w, req, rc, status, content_type);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp 2.1 would send the body: give only its length */
		char text[24];
		snprintf(text, sizeof(text), "%zu", len);
		evhttp_add_header(h, "Content-Length", text);
	} else {
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	}
	struct conn *c = conn_of(w, req); /* before the send: it may free req */
	evhttp_send_reply(req, status, reason_phrase(status), NULL);
	conn_request_end(c);
	count(w, rc, status);
}

void routes_stream_start(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			 const char *content_type)
{
	add_headers(w, req, rc, 200, content_type);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Accel-Buffering", "no"); /* proxies: pass events at once */
	evhttp_send_reply_start(req, 200, reason_phrase(200));
}

void routes_stream_end(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc)
{
	struct conn *c = conn_of(w, req); /* before the end: it may free req */
	evhttp_send_reply_end(req);
	conn_request_end(c);
	count(w, rc, 200);
}

void routes_reply(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  int status, const char *body, size_t len)
{
	send_reply(w, req, rc, status, "application/json; charset=utf-8", body, len);
}

void routes_error(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  int status, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	struct buf body = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &body);
	json_obj_begin(&g);
	json_kv_str(&g, "message", message);
	json_obj_end(&g);
	if (json_gen_finish(&g))
		routes_reply(w, req, rc, status, body.data, body.len);
	else
		routes_reply(w, req, rc, 500, "{\"message\":\"out of memory\"}", 27);
	buf_free(&body);
}

/* Finish a JSON answer built in w->out. */
static void reply_out(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		      struct json_gen *g)
{
	if (g && !json_gen_finish(g)) {
		routes_error(w, req, rc, 500, "answer could not be built");
		return;
	}
	if (!buf_ok(&w->out)) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	routes_reply(w, req, rc, 200, w->out.data, w->out.len);
}

static bool scratch_reserve(struct worker *w, size_t n)
{
	if (n <= w->scratch_cap)
		return true;
	size_t cap = w->scratch_cap ? w->scratch_cap : 1024;
	while (cap < n)
		cap *= 2;
	uint32_t *more = realloc(w->scratch, cap * sizeof(*more));
	if (!more)
		return false;
	w->scratch = more;
	w->scratch_cap = cap;
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- parameters shared by the box endpoints ---- */

/* Missing is an error too: every box parameter is required. */
static bool need_number(const struct params *p, const char *name, double min, double max,
			bool min_exclusive, double *out, struct param_error *err)
{
	switch (params_number(p, name, min, max, min_exclusive, out, err)) {
	case PARAM_OK: return true;
	case PARAM_MISSING:
		snprintf(err->text, sizeof(err->text), "%s: missing", name);
		return false;
	default: return false;
	}
}

static bool parse_box(const struct params *p, double max_dlat, double max_dlng,
		      struct snap_box *box, struct param_error *err)
{
	double lat, lng, dlat, dlng;
	if (!need_number(p, "latitude", -90, 90, false, &lat, err) ||
	    !need_number(p, "longitude", -180, 180, false, &lng, err) ||
	    !need_number(p, "latitudeDelta", 0, max_dlat, true, &dlat, err) ||
	    !need_number(p, "longitudeDelta", 0, max_dlng, true, &dlng, err))
		return false;
	*box = (struct snap_box){lat - dlat, lat + dlat, lng - dlng, lng + dlng};
	return true;
}

/* A kW value as the hundredths the model holds; -1 when it has more
 * precision than numeric(8,2) (it then matches nothing, as in SQL). */
static int32_t centi_kw(double kw)
{
	double c = kw * 100.0;
	double r = round(c);
	return fabs(c - r) < 1e-6 && r <= INT32_MAX ? (int32_t)r : -1;
}

struct filter_input {
	struct param_list companies, types, capacities;
	int type_codes[PARAM_LIST_MAX];
	int32_t kws[PARAM_LIST_MAX];
	struct snap_filter filter;
};

static bool parse_filters(const struct params *p, struct filter_input *in, struct param_error *err)
{
	memset(in, 0, sizeof(*in));
	if (params_list(p, "companyNames", &in->companies, err) == PARAM_BAD ||
	    params_list(p, "chargerTypes", &in->types, err) == PARAM_BAD ||
	    params_list(p, "capacities", &in->capacities, err) == PARAM_BAD)
		return false;
	for (size_t i = 0; i < in->types.count; i++) {
		if (!model_type_from_name(in->types.items[i], &in->type_codes[i])) {
			snprintf(err->text, sizeof(err->text),
				 "chargerTypes: '%.40s' is not a charger type (see /filters)",
				 in->types.items[i]);
			return false;
		}
	}
	for (size_t i = 0; i < in->capacities.count; i++) {
		double kw;
		const char *v = in->capacities.items[i];
		if (!params_parse_decimal(v, strlen(v), &kw) || kw < 0 || kw > 1000000) {
			snprintf(err->text, sizeof(err->text),
				 "capacities: '%.40s' is not a capacity in kW (0 to 1000000)", v);
			return false;
		}
		in->kws[i] = centi_kw(kw);
	}
	in->filter = (struct snap_filter){
		.companies = in->companies.items,
		.ncompanies = in->companies.count,
		.types = in->type_codes,
		.ntypes = in->types.count,
		.capacities = in->kws,
		.ncapacities = in->capacities.count,
	};
	return true;
}

static void free_filters(struct filter_input *in)
{
	param_list_free(&in->companies);
	param_list_free(&in->types);
	param_list_free(&in->capacities);
}

/* ---- freshness (issue 10) ---- */

static bool status_fresh(const struct worker *w, uint64_t live, int64_t now)
{
	return snap_live_fresh(live, now, server_config(w->server)->status_max_age_s);
}

/* Free now: at least one STANDBY charger whose status is fresh. */
static bool station_free_now(const struct worker *w, const struct snap *s, uint32_t station,
			     int64_t now)
{
	const struct snap_station *st = &s->stations[station];
	for (uint32_t k = 0; k < st->charger_count; k++) {
		uint64_t live = snap_live_word(s, st->first_charger + k);
		if (snap_live_status(live) == MODEL_STATUS_STANDBY && status_fresh(w, live, now))
			return true;
	}
	return false;
}

/* `available`: true keeps only stations free now; false or absent, all.
 * *given tells whether it was there at all (clusters then add counts). */
static bool parse_available(const struct params *p, bool *only_free, bool *given,
			    struct param_error *err)
{
	const char *v = NULL;
	*only_free = *given = false;
	enum param_get got = params_one(p, "available", &v, err);
	if (got == PARAM_BAD)
		return false;
	if (got == PARAM_MISSING)
		return true;
	*given = true;
	if (strcmp(v, "true") == 0)
		*only_free = true;
	else if (strcmp(v, "false") != 0) {
		snprintf(err->text, sizeof(err->text),
			 "available: '%.20s' is not a boolean; expected true or false", v);
		return false;
	}
	return true;
}

/* ---- GET /stations ---- */

struct box_collect {
	struct worker *w;
	const struct snap *snap;
	const struct snap_filter *filter;
	size_t n, max;
	bool overflow, oom;
	bool only_free;
	int64_t now;
};

static bool collect_station(void *arg, uint32_t st)
{
	struct box_collect *bc = arg;
	if (!snap_station_matches(bc->snap, st, bc->filter) ||
	    (bc->only_free && !station_free_now(bc->w, bc->snap, st, bc->now)))
		return true;
	if (bc->n >= bc->max) {
		bc->overflow = true;
		return false;
	}
	if (!scratch_reserve(bc->w, bc->n + 1)) {
		bc->oom = true;
		return false;
	}
	bc->w->scratch[bc->n++] = st;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Representative capping: keep `max` of the n stations in w->scratch,
 * spread evenly over the box. The box is cut into g x g cells (g =
 * ceil(sqrt(max))); the stations are grouped by cell (by stationId within
 * one), and picked round-robin: the first station of every non-empty cell,
 * then the second of every cell that has one, and so on until max are
 * taken. So every occupied part of the box shows up before any dense part
 * shows more, and the answer is deterministic. */
static bool even_sample(struct worker *w, const struct snap *s, const struct snap_box *box,
			size_t n, size_t max)
{
	uint32_t g = (uint32_t)ceil(sqrt((double)max));
	uint64_t *keys = malloc(n * sizeof(*keys));
	size_t *starts = malloc((n + 1) * sizeof(*starts));
	if (!keys || !starts) {
		free(keys);
		free(starts);
		return false;
	}
	double ch = (box->max_lat - box->min_lat) / g, cw = (box->max_lng - box->min_lng) / g;
	for (size_t i = 0; i < n; i++) {
		const struct snap_station *st = &s->stations[w->scratch[i]];
		long r = (long)floor((st->lat - box->min_lat) / ch);
		long c = (long)floor((st->lng - box->min_lng) / cw);
		r = r < 0 ? 0 : r >= (long)g ? (long)g - 1 : r;
		c = c < 0 ? 0 : c >= (long)g ? (long)g - 1 : c;
		keys[i] = (uint64_t)(r * (long)g + c) << 32 | w->scratch[i];
	}
	qsort(keys, n, sizeof(*keys), cmp_u64);
	size_t ncells = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || keys[i] >> 32 != keys[i - 1] >> 32)
			starts[ncells++] = i;
	starts[ncells] = n;
	size_t picked = 0;
	for (size_t round = 0; picked < max; round++) {
		bool any = false;
		for (size_t k = 0; k < ncells && picked < max; k++) {
			if (starts[k] + round < starts[k + 1]) {
				w->scratch[picked++] = (uint32_t)keys[starts[k] + round];
				any = true;
			}
		}
		if (!any)
			break;
	}
	free(keys);
	free(starts);
	return true;
}

static void get_stations(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
			 const struct params *p)
{
	struct param_error err = {{0}};
	struct snap_box box;
	struct filter_input fin;
	bool only_free, available_given, sample = false;
	const char *sample_text = "false";
	memset(&fin, 0, sizeof(fin));
	if (params_one(p, "sample", &sample_text, &err) != PARAM_BAD) {
		sample = strcmp(sample_text, "true") == 0;
		if (!sample && strcmp(sample_text, "false") != 0)
			snprintf(err.text, sizeof(err.text),
				 "sample: '%.20s' is not a boolean; expected true or false",
				 sample_text);
	}
	if (err.text[0] || !parse_box(p, MARKER_DELTA_MAX, MARKER_DELTA_MAX, &box, &err) ||
	    !parse_filters(p, &fin, &err) ||
	    !parse_available(p, &only_free, &available_given, &err)) {
		free_filters(&fin);
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	const struct snap *s = w->snap;
	unsigned max = server_config(w->server)->max_markers;
	struct box_collect bc = {
		w, s, &fin.filter, 0, sample ? SIZE_MAX : max, false, false, only_free, time(NULL)};
	snap_box_visit(s, &box, collect_station, &bc);
	free_filters(&fin);
	if (bc.oom) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	if (bc.overflow) {
		routes_error(w, req, rc, 400,
			     "latitudeDelta, longitudeDelta: area too large for markers: more than "
			     "%u stations match; zoom in or use /stations/clusters",
			     max);
		return;
	}
	size_t matched = bc.n;
	if (bc.n > max) { /* sample=true */
		if (!even_sample(w, s, &box, bc.n, max)) {
			routes_error(w, req, rc, 500, "out of memory");
			return;
		}
		bc.n = max;
	}
	if (bc.n > 1)
		qsort(w->scratch, bc.n, sizeof(uint32_t), cmp_u32);
	struct buf *o = &w->out;
	buf_reset(o);
	buf_puts(o, "{\"stations\":[");
	for (size_t i = 0; i < bc.n; i++) {
		const struct snap_station *st = &s->stations[w->scratch[i]];
		if (i)
			buf_putc(o, ',');
		buf_append(o, snap_text(s, st->marker), st->marker_len);
		buf_put_uint(o, snap_available(s, w->scratch[i]));
		buf_puts(o, ",\"quickChargerCount\":");
		buf_put_uint(o, st->quick_count);
		buf_putc(o, '}');
	}
	buf_puts(o, "]");
	if (matched > bc.n) {
		buf_puts(o, ",\"sampled\":true,\"matchCount\":");
		buf_put_uint(o, matched);
	}
	buf_puts(o, "}");
	reply_out(w, req, rc, NULL);
}

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
	uint32_t fresh = 0;
	for (uint32_t k = 0; k < st->charger_count; k++)
		fresh += status_fresh(w, snap_live_word(s, st->first_charger + k), now);
	if (fresh == 0)
		return "unknown";
	int64_t age;
	if (fresh < st->charger_count || server_live_stale(w->server, &age))
		return "stale";
	return "live";
}

static void get_station(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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
	reply_out(w, req, rc, &g);
}

/* ---- GET /stations/{id}/statistics ---- */

static void get_statistics(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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

static void get_forecast(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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

/* ---- GET /stations/summary ---- */

static void get_summary(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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
	reply_out(w, req, rc, &g);
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

static void get_search(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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
	reply_out(w, req, rc, &g);
}

/* ---- GET /stations/regions ---- */

static void get_regions(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
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
	reply_out(w, req, rc, &g);
}

/* ---- GET /stations/clusters ---- */

struct cluster_cell {
	uint32_t count, available;
	double lat, lng;
};

struct cluster_collect {
	const struct worker *w;
	bool only_free, count_free;
	int64_t now;
	const struct snap *snap;
	const struct snap_box *box;
	struct cluster_cell *cells;
	long rows, cols;
	double cell_h, cell_w;
};

static bool collect_cluster(void *arg, uint32_t st)
{
	struct cluster_collect *cc = arg;
	const struct snap_station *s = &cc->snap->stations[st];
	long r = (long)floor((s->lat - cc->box->min_lat) / cc->cell_h);
	long c = (long)floor((s->lng - cc->box->min_lng) / cc->cell_w);
	r = r < 0 ? 0 : r >= cc->rows ? cc->rows - 1 : r;
	c = c < 0 ? 0 : c >= cc->cols ? cc->cols - 1 : c;
	bool free_now = cc->count_free && station_free_now(cc->w, cc->snap, st, cc->now);
	if (cc->only_free && !free_now)
		return true;
	struct cluster_cell *cell = &cc->cells[r * cc->cols + c];
	cell->available += free_now;
	cell->count++;
	cell->lat += s->lat;
	cell->lng += s->lng;
	return true;
}

static void get_clusters(struct worker *w, struct evhttp_request *req, struct route_ctx *rc,
			 const struct params *p)
{
	struct param_error err = {{0}};
	struct snap_box box;
	long rows = 0, cols = 0;
	enum param_get gr = PARAM_BAD, gc = PARAM_BAD;
	bool only_free = false, available_given = false;
	bool ok = parse_box(p, 90, 180, &box, &err) &&
		  parse_available(p, &only_free, &available_given, &err);
	if (ok) {
		gr = params_integer(p, "latitudeDivisionSize", 1, CLUSTER_DIVISIONS_MAX, &rows,
				    &err);
		if (gr == PARAM_MISSING)
			snprintf(err.text, sizeof(err.text), "latitudeDivisionSize: missing");
	}
	if (ok && gr == PARAM_OK) {
		gc = params_integer(p, "longitudeDivisionSize", 1, CLUSTER_DIVISIONS_MAX, &cols,
				    &err);
		if (gc == PARAM_MISSING)
			snprintf(err.text, sizeof(err.text), "longitudeDivisionSize: missing");
	}
	if (!ok || gr != PARAM_OK || gc != PARAM_OK) {
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	struct cluster_cell *cells = calloc((size_t)(rows * cols), sizeof(*cells));
	if (!cells) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	struct cluster_collect cc = {w,
				     only_free,
				     available_given,
				     time(NULL),
				     w->snap,
				     &box,
				     cells,
				     rows,
				     cols,
				     (box.max_lat - box.min_lat) / (double)rows,
				     (box.max_lng - box.min_lng) / (double)cols};
	snap_box_visit(w->snap, &box, collect_cluster, &cc);
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_arr_begin(&g);
	for (long i = 0; i < rows * cols; i++) {
		if (!cells[i].count)
			continue;
		json_obj_begin(&g);
		json_kv_int(&g, "id", i);
		json_kv_double(&g, "latitude", cells[i].lat / cells[i].count, 6);
		json_kv_double(&g, "longitude", cells[i].lng / cells[i].count, 6);
		json_kv_int(&g, "count", cells[i].count);
		if (available_given)
			json_kv_int(&g, "availableCount", cells[i].available);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	free(cells);
	reply_out(w, req, rc, &g);
}

/* ---- operations ---- */

static void get_readyz(struct worker *w, struct evhttp_request *req, struct route_ctx *rc)
{
	char why[256];
	if (!server_ready(w->server, why, sizeof(why))) {
		routes_error(w, req, rc, 503, "not ready: %s", why);
		return;
	}
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_obj_begin(&g);
	json_kv_str(&g, "status", "ready");
	json_kv_int(&g, "modelVersion", w->snap ? (int64_t)w->snap->version : 0);
	json_obj_end(&g);
	reply_out(w, req, rc, &g);
}

static void get_metrics(struct worker *w, struct evhttp_request *req, struct route_ctx *rc)
{
	buf_reset(&w->out);
	if (!server_metrics(w->server, w->snap, &w->out)) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	send_reply(w, req, rc, 200, "text/plain; version=0.0.4; charset=utf-8", w->out.data,
		   w->out.len);
}

static void answer_refusal(struct worker *w, struct evhttp_request *req, struct route_ctx *rc)
{
	const char *token =
		evhttp_find_header(evhttp_request_get_input_headers(req), CONN_TOKEN_HEADER);
	int status;
	const char *reason;
	if (!token || strcmp(token, conn_token()) != 0 ||
	    !conn_refusal(conn_of(w, req), &status, &reason)) {
		rc->route = ROUTE_OTHER;
		routes_error(w, req, rc, 404, "no such path");
		return;
	}
	rc->route = ROUTE_REFUSED;
	routes_error(w, req, rc, status, "%s", reason);
}

/* ---- dispatch ---- */

/* The per-client limit (off unless APID_RATE_LIMIT_PER_SECOND is set);
 * probes and scrapes are never limited. False: answered 429. */
static bool within_rate(struct worker *w, struct evhttp_request *req, struct route_ctx *rc)
{
	struct ratelimit *rl = server_ratelimit(w->server);
	if (!rl || rc->route == ROUTE_HEALTHZ || rc->route == ROUTE_READYZ ||
	    rc->route == ROUTE_METRICS)
		return true;
	const struct sockaddr *addr = NULL;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon)
		addr = evhttp_connection_get_addr(evcon);
	unsigned retry;
	if (ratelimit_take(rl, addr, rc->start_ns, &retry))
		return true;
	char text[16];
	snprintf(text, sizeof(text), "%u", retry);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", text);
	routes_error(w, req, rc, 429, "too many requests from this address; retry in %u s", retry);
	return false;
}

static bool path_is(const char *path, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* /docs (the page) and the two Swagger UI files it loads. The files change
 * only with the binary: clients may keep them a day; the page is checked
 * each time (it names no version). */
struct docs_file {
	const char *path, *content_type, *cache;
	const char *data, *end;
};

static const struct docs_file docs_files[] = {
	{"/docs", "text/html; charset=utf-8", "no-cache", apid_docs_index_html,
	 apid_docs_index_html_end},
	{"/docs/", "text/html; charset=utf-8", "no-cache", apid_docs_index_html,
	 apid_docs_index_html_end},
	{"/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8", "public, max-age=86400",
	 apid_docs_ui_js, apid_docs_ui_js_end},
	{"/docs/swagger-ui.css", "text/css; charset=utf-8", "public, max-age=86400",
	 apid_docs_ui_css, apid_docs_ui_css_end},
};

/* NULL: not a docs path. */
static const struct docs_file *docs_find(const char *uri, size_t path_len)
{
	for (size_t i = 0; i < ARRAY_LEN(docs_files); i++)
		if (path_is(uri, path_len, docs_files[i].path))
			return &docs_files[i];
	return NULL;
}

static void get_docs(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		     const struct docs_file *f)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", f->cache);
	send_reply(w, req, rc, 200, f->content_type, f->data, (size_t)(f->end - f->data));
}

void routes_dispatch(struct worker *w, struct evhttp_request *req)
{
	struct route_ctx rc = {ROUTE_OTHER, mono_ns(), false};
	conn_request_begin(conn_of(w, req));
	const char *uri = evhttp_request_get_uri(req);
	size_t path_len = strcspn(uri, "?#");
	const char *query = uri[path_len] == '?' ? uri + path_len + 1 : NULL;
	size_t query_len = query ? strcspn(query, "#") : 0;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);

	if (path_is(uri, path_len, CONN_REFUSAL_PATH)) {
		answer_refusal(w, req, &rc);
		return;
	}
	/* match the path */
	char station_id[STATION_ID_MAX];
	bool has_station = false;
	const struct docs_file *docs = NULL;
	if (path_is(uri, path_len, "/stations"))
		rc.route = ROUTE_STATIONS;
	else if (path_is(uri, path_len, "/stations/summary"))
		rc.route = ROUTE_SUMMARY;
	else if (path_is(uri, path_len, "/stations/search"))
		rc.route = ROUTE_SEARCH;
	else if (path_is(uri, path_len, "/stations/regions"))
		rc.route = ROUTE_REGIONS;
	else if (path_is(uri, path_len, "/stations/clusters"))
		rc.route = ROUTE_CLUSTERS;
	else if (path_is(uri, path_len, "/stations/changes"))
		rc.route = ROUTE_CHANGES;
	else if (path_is(uri, path_len, "/filters"))
		rc.route = ROUTE_FILTERS;
	else if (path_is(uri, path_len, "/healthz"))
		rc.route = ROUTE_HEALTHZ;
	else if (path_is(uri, path_len, "/readyz"))
		rc.route = ROUTE_READYZ;
	else if (path_is(uri, path_len, "/metrics"))
		rc.route = ROUTE_METRICS;
	else if (path_is(uri, path_len, "/openapi.json"))
		rc.route = ROUTE_OPENAPI;
	else if ((docs = docs_find(uri, path_len)) != NULL)
		rc.route = ROUTE_OPENAPI; /* its human view: counted with it */
	else if (path_len > 10 && memcmp(uri, "/stations/", 10) == 0) {
		const char *seg = uri + 10;
		size_t seg_len = path_len - 10;
		const char *slash = memchr(seg, '/', seg_len);
		if (!slash) {
			rc.route = ROUTE_STATION;
		} else if (path_is(slash, (size_t)(uri + path_len - slash), "/statistics")) {
			rc.route = ROUTE_STATISTICS;
			seg_len = (size_t)(slash - seg);
		} else if (path_is(slash, (size_t)(uri + path_len - slash), "/forecast")) {
			rc.route = ROUTE_FORECAST;
			seg_len = (size_t)(slash - seg);
		}
		if (rc.route != ROUTE_OTHER) {
			if (!params_decode_segment(seg, seg_len, station_id, sizeof(station_id))) {
				routes_error(w, req, &rc, 404, "no such station");
				return;
			}
			has_station = true;
		}
	}
	if (rc.route == ROUTE_OTHER) {
		routes_error(w, req, &rc, 404, "no such path");
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		routes_error(w, req, &rc, 405, "method not allowed; use GET");
		return;
	}
	if (!within_rate(w, req, &rc))
		return;
	switch (rc.route) {
	case ROUTE_HEALTHZ: routes_reply(w, req, &rc, 200, "{\"status\":\"ok\"}", 15); return;
	case ROUTE_READYZ: get_readyz(w, req, &rc); return;
	case ROUTE_METRICS: get_metrics(w, req, &rc); return;
	case ROUTE_OPENAPI:
		if (docs)
			get_docs(w, req, &rc, docs);
		else
			routes_reply(w, req, &rc, 200, apid_openapi_json, apid_openapi_json_len);
		return;
	default: break;
	}
	if (!w->snap) {
		routes_error(w, req, &rc, 503, "read model not loaded yet");
		return;
	}
	struct params p;
	struct param_error err = {{0}};
	if (!params_parse(&p, query, query_len, &err)) {
		routes_error(w, req, &rc, 400, "%s", err.text);
		params_free(&p);
		return;
	}
	uint32_t station = 0;
	if (has_station && !snap_find_station(w->snap, station_id, &station)) {
		routes_error(w, req, &rc, 404, "no such station: %.*s", 64, station_id);
		params_free(&p);
		return;
	}
	rc.uses_live = rc.route == ROUTE_STATIONS || rc.route == ROUTE_STATION ||
		       rc.route == ROUTE_SUMMARY || rc.route == ROUTE_CLUSTERS;
	switch (rc.route) {
	case ROUTE_STATIONS: get_stations(w, req, &rc, &p); break;
	case ROUTE_STATION: get_station(w, req, &rc, &p, station); break;
	case ROUTE_STATISTICS: get_statistics(w, req, &rc, &p, station); break;
	case ROUTE_FORECAST: get_forecast(w, req, &rc, &p, station); break;
	case ROUTE_CHANGES: changes_answer(w, req, &rc, &p); break;
	case ROUTE_SUMMARY: get_summary(w, req, &rc, &p); break;
	case ROUTE_SEARCH: get_search(w, req, &rc, &p); break;
	case ROUTE_REGIONS: get_regions(w, req, &rc, &p); break;
	case ROUTE_CLUSTERS: get_clusters(w, req, &rc, &p); break;
	case ROUTE_FILTERS:
		routes_reply(w, req, &rc, 200, w->snap->filters_json, w->snap->filters_len);
		break;
	default: routes_error(w, req, &rc, 500, "unrouted"); break;
	}
	params_free(&p);
}
