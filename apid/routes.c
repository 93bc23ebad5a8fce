#include "routes.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "area.h"
#include "changes.h"
#include "conn.h"
#include "json.h"
#include "lookup.h"
#include "params.h"
#include "ratelimit.h"
#include "server.h"
#include "station.h"

#define STATION_ID_MAX 128

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

void routes_reply_json(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
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
	routes_reply_json(w, req, rc, &g);
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
	case ROUTE_STATIONS: area_stations(w, req, &rc, &p); break;
	case ROUTE_STATION: station_detail(w, req, &rc, &p, station); break;
	case ROUTE_STATISTICS: station_statistics(w, req, &rc, &p, station); break;
	case ROUTE_FORECAST: station_forecast(w, req, &rc, &p, station); break;
	case ROUTE_CHANGES: changes_answer(w, req, &rc, &p); break;
	case ROUTE_SUMMARY: lookup_summary(w, req, &rc, &p); break;
	case ROUTE_SEARCH: lookup_search(w, req, &rc, &p); break;
	case ROUTE_REGIONS: lookup_regions(w, req, &rc, &p); break;
	case ROUTE_CLUSTERS: area_clusters(w, req, &rc, &p); break;
	case ROUTE_FILTERS:
		routes_reply(w, req, &rc, 200, w->snap->filters_json, w->snap->filters_len);
		break;
	default: routes_error(w, req, &rc, 500, "unrouted"); break;
	}
	params_free(&p);
}
