/* routes: the front of the REST contract (../shared/API.md). Owns path
 * matching and dispatch to the modules that answer (area.h: the map box;
 * station.h: one station, its statistics and forecast; lookup.h: summary,
 * search, regions; changes.h: the change feed), method checks (405 with
 * Allow), the per-client rate limit, the query parsing (params.h; 400
 * names the parameter) and the station lookup (404), the operational
 * endpoints (/healthz, /readyz, /metrics, /openapi.json, and /docs: Swagger
 * UI over it), the answers to requests the screen refused (conn.h), and
 * the one reply path every answer takes: status codes and reason phrases,
 * error bodies, headers (Content-Type, the stale live-state header,
 * Connection: close while draining), metrics by route and status, and the
 * connection's request accounting. Runs on worker threads; nothing here
 * blocks. */
#ifndef APID_ROUTES_H
#define APID_ROUTES_H

#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

struct json_gen;

/* How a request is being answered: kept by deferred answers (stats.c). */
struct route_ctx {
	enum route route;
	int64_t start_ns; /* CLOCK_MONOTONIC at dispatch */
	bool uses_live;	  /* the answer carries live state: stale header applies */
};

/* evhttp's generic callback lands here. */
void routes_dispatch(struct worker *w, struct evhttp_request *req);

/* Send `len` bytes of JSON with `status`, finishing the request. */
void routes_reply(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  int status, const char *body, size_t len);
/* Send {"message": "..."} with `status`. */
void routes_error(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  int status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Finish a JSON answer built in w->out (200), `g` writing into it; NULL
 * when it was written without a generator. 500 when it could not be built. */
void routes_reply_json(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		       struct json_gen *g);

/* A streamed answer (200, chunked, Server-Sent Events): the headers every
 * answer gets, then the body in chunks (evhttp_send_reply_chunk) until
 * routes_stream_end, which also accounts the request (metrics, the
 * connection's timing) and frees it when the client is gone. */
void routes_stream_start(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			 const char *content_type);
void routes_stream_end(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc);

/* The embedded OpenAPI document (generated from apid/openapi.json by the
 * Makefile into build/gen/openapi_json.c). */
extern const char apid_openapi_json[];
extern const size_t apid_openapi_json_len;

/* The /docs page and the Swagger UI files it loads, each from its symbol to
 * its _end symbol (embedded with .incbin by the Makefile into
 * build/gen/docs_assets.c from apid/docs/index.html and npm's
 * swagger-ui-dist). */
extern const char apid_docs_index_html[], apid_docs_index_html_end[];
extern const char apid_docs_ui_js[], apid_docs_ui_js_end[];
extern const char apid_docs_ui_css[], apid_docs_ui_css_end[];

#endif
