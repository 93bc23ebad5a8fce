/* server_int: what server.c, page.c and admin.c share: the server's state
 * and the parsed form of a data request. Not for other modules. */
#ifndef SIM_SERVER_INT_H
#define SIM_SERVER_INT_H

#include "server.h"

#include "render.h"

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct evkeyvalq;

enum op { OP_INFO, OP_STATUS, OP_OTHER, OP_COUNT };

/* One outcome per request, as /__stats reports them. */
enum outcome {
	OUT_OK,
	OUT_BAD_KEY,
	OUT_QUOTA,
	OUT_BAD_PARAM,
	OUT_TOO_MANY_ROWS,
	OUT_NO_SERVICE,
	OUT_HTTP5XX,
	OUT_RESET,
	OUT_TRUNCATE,
	OUT_XML_ERROR,
	OUT_SERVICE_ERROR,
	OUT_EMPTY_BODY,
	OUT_COUNT
};

struct sim_stats {
	uint64_t requests[OP_COUNT][OUT_COUNT];
	uint64_t faults[FAULT_COUNT]; /* firings per mode */
	uint64_t admin;
	uint64_t rows;
	uint64_t bytes;
	uint64_t malformed_records;
};

struct pending; /* a request waiting on a timer (latency, reset) */

struct sim_server {
	struct event_base *base; /* borrowed */
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* owned by http */
	int port;
	struct sim_gen gen;
	struct sim_model model;
	struct sim_clock clock;
	struct faults faults;
	char **keys; /* borrowed from the config */
	size_t key_count;
	long quota;
	long *used; /* calls per key today; owned */
	int64_t quota_day;
	int max_period;
	struct sim_stats stats;
	struct pending *pending; /* owned list */
};

struct page_request {
	enum op op;
	enum render_format fmt;
	long page_no, num_rows;
	int period;
	char zcode[3], zscode[6], kind[3], kind_detail[5]; /* "" = no filter */
};

/* page.c: renders one page into out. drift_sign is -1, 0 or +1. */
bool page_build(struct sim_server *srv, const struct page_request *pr, uint32_t fired,
		int drift_sign, struct evbuffer *out) MUSTCHECK;

/* admin.c: /__admin/... and /__stats. */
void admin_handle(struct sim_server *srv, struct evhttp_request *req, const char *path,
		  const struct evkeyvalq *params);

/* server.c: send body (consumed) with a status and content type. */
void server_reply(struct sim_server *srv, struct evhttp_request *req, int code,
		  const char *content_type, struct sbuf *body);

#endif
