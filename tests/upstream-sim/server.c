/* server: listener, gateway, data-request pipeline and fault delivery. */
#include "server_int.h"

#include "simtime.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_PREFIX "/B552584/EvCharger/"
#define CT_XML	   "text/xml;charset=UTF-8"
#define CT_JSON	   "application/json;charset=UTF-8"

/* A request waiting on a timer. Owned by the server's pending list; the
 * request itself stays libevent's until we reply (or free the connection). */
enum pending_kind {
	PENDING_LATENCY, /* reply when the timer fires */
	PENDING_RESET,	 /* part of the body sent; reset the connection */
};

struct pending {
	struct sim_server *srv;
	struct evhttp_request *req;
	struct event *timer;
	enum pending_kind kind;
	struct page_request pr;
	uint32_t fired;
	struct pending *prev, *next;
};

static struct pending *pending_new(struct sim_server *srv, struct evhttp_request *req,
				   enum pending_kind kind, event_callback_fn cb)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->timer = evtimer_new(srv->base, cb, p);
	if (!p->timer) {
		free(p);
		return NULL;
	}
	p->srv = srv;
	p->req = req;
	p->kind = kind;
	p->next = srv->pending;
	if (srv->pending)
		srv->pending->prev = p;
	srv->pending = p;
	return p;
}

static void pending_free(struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		p->srv->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	event_free(p->timer);
	free(p);
}

static void arm(struct pending *p, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

/* ---- replies ---- */

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

static void send_evbuffer(struct sim_server *srv, struct evhttp_request *req, int code,
			  const char *content_type, struct evbuffer *body)
{
	srv->stats.bytes += evbuffer_get_length(body);
	if (content_type)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  content_type);
	evhttp_send_reply(req, code, reason(code), body);
}

void server_reply(struct sim_server *srv, struct evhttp_request *req, int code,
		  const char *content_type, struct sbuf *body)
{
	struct evbuffer *evb = evbuffer_new();
	if (evb && body->len)
		evbuffer_add(evb, body->data, body->len);
	if (evb)
		send_evbuffer(srv, req, code, content_type, evb);
	else
		evhttp_send_error(req, 500, NULL);
	evbuffer_free(evb);
	sbuf_free(body);
}

static void count(struct sim_server *srv, enum op op, enum outcome outcome)
{
	srv->stats.requests[op][outcome]++;
}

static void reply_gateway(struct sim_server *srv, struct evhttp_request *req, enum op op,
			  enum outcome outcome, int http_code, int error_code)
{
	struct sbuf b = {0};
	if (!render_gateway_error(&b, error_code)) {
		sbuf_free(&b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	count(srv, op, outcome);
	server_reply(srv, req, http_code, CT_XML, &b);
}

/* ---- the reset fault ---- */

/* Replace the socket under libevent by a fresh unconnected one, so the last
 * reference to the real socket closes with SO_LINGER 0 (an RST), then let
 * libevent free the connection (its shutdown/close hit the dummy). */
static void reset_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pending *p = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
	if (!evcon) {
		evhttp_send_reply_end(p->req); /* client already gone: frees the request */
	} else {
		int sock = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		if (sock >= 0 && setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0) {
			int dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (dummy >= 0) {
				dup2(dummy, sock);
				close(dummy);
			}
		}
		evhttp_connection_free(evcon);
	}
	pending_free(p);
}

static void reset_flushed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	/* The partial body left our buffer; give the kernel a moment to hand
	 * it to the client before the RST discards what is still queued. */
	arm(arg, 50);
}

static void send_with_reset(struct sim_server *srv, struct evhttp_request *req,
			    const char *content_type, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	size_t part = (size_t)((double)len * srv->faults.reset_at);
	struct pending *p = pending_new(srv, req, PENDING_RESET, reset_now);
	struct evbuffer *partial = evbuffer_new();
	if (!p || !partial) {
		if (p)
			pending_free(p);
		evbuffer_free(partial);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	char length[32];
	snprintf(length, sizeof(length), "%zu", len);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_add_header(headers, "Content-Length", length); /* the full length: not chunked */
	evbuffer_remove_buffer(body, partial, part);
	srv->stats.bytes += part;
	arm(p, 5000); /* fallback if the flush callback never comes */
	evhttp_send_reply_start(req, 200, "OK");
	evhttp_send_reply_chunk_with_cb(req, partial, reset_flushed, p);
	evbuffer_free(partial);
}

/* ---- data requests ---- */

static void respond(struct sim_server *srv, struct evhttp_request *req,
		    const struct page_request *pr, uint32_t fired)
{
	const char *ct = pr->fmt == FMT_JSON ? CT_JSON : CT_XML;
	enum op op = pr->op;
	if (fired & (1u << FAULT_EMPTY_BODY)) {
		struct sbuf empty = {0};
		count(srv, op, OUT_EMPTY_BODY);
		server_reply(srv, req, 200, ct, &empty);
		return;
	}
	if (fired & (1u << FAULT_HTTP5XX)) {
		static const int codes[] = {500, 502, 503, 504};
		int code = srv->faults.http_code ? srv->faults.http_code
						 : codes[(int)(faults_draw(&srv->faults) * 4)];
		reply_gateway(srv, req, op, OUT_HTTP5XX, code, 1);
		return;
	}
	if (fired & (1u << FAULT_XML_ERROR)) {
		reply_gateway(srv, req, op, OUT_XML_ERROR, 200, srv->faults.xml_error_code);
		return;
	}
	if (fired & (1u << FAULT_SERVICE_ERROR)) {
		struct sbuf b = {0};
		enum render_format fmt = srv->faults.service_error_json ? FMT_JSON : FMT_XML;
		if (!render_service_error(&b, fmt, srv->faults.service_error_code, pr->page_no,
					  pr->num_rows)) {
			sbuf_free(&b);
			evhttp_send_error(req, 500, NULL);
			return;
		}
		count(srv, op, OUT_SERVICE_ERROR);
		server_reply(srv, req, 200, fmt == FMT_JSON ? CT_JSON : CT_XML, &b);
		return;
	}
	int drift_sign = 0;
	if (fired & (1u << FAULT_DRIFT))
		drift_sign = faults_draw(&srv->faults) < 0.5 ? -1 : 1;
	struct evbuffer *body = evbuffer_new();
	if (!body || !page_build(srv, pr, fired, drift_sign, body)) {
		evbuffer_free(body);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (fired & (1u << FAULT_RESET)) {
		count(srv, op, OUT_RESET);
		send_with_reset(srv, req, ct, body);
	} else if (fired & (1u << FAULT_TRUNCATE)) {
		size_t keep = (size_t)((double)evbuffer_get_length(body) * srv->faults.truncate_at);
		struct evbuffer *cut = evbuffer_new();
		if (!cut) {
			evhttp_send_error(req, 500, NULL);
		} else {
			evbuffer_remove_buffer(body, cut, keep);
			count(srv, op, OUT_TRUNCATE);
			send_evbuffer(srv, req, 200, ct, cut);
			evbuffer_free(cut);
		}
	} else {
		count(srv, op, OUT_OK);
		send_evbuffer(srv, req, 200, ct, body);
	}
	evbuffer_free(body);
}

static void latency_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pending *p = arg;
	respond(p->srv, p->req, &p->pr, p->fired);
	pending_free(p);
}

static bool parse_num(const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool copy_code(const char *text, size_t len, bool digits, char *out)
{
	if (!text || !*text) {
		out[0] = 0;
		return true;
	}
	if (strlen(text) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (digits ? (text[i] < '0' || text[i] > '9')
			   : !((text[i] >= 'A' && text[i] <= 'Z') ||
			       (text[i] >= '0' && text[i] <= '9')))
			return false;
	memcpy(out, text, len + 1);
	return true;
}

/* Parses the data parameters. Returns OUT_OK, OUT_TOO_MANY_ROWS or
 * OUT_BAD_PARAM. Empty values count as absent. */
static enum outcome parse_request(const struct sim_server *srv, const struct evkeyvalq *params,
				  struct page_request *pr)
{
	const char *v;
	long n;
	pr->page_no = 1;
	pr->num_rows = 10;
	pr->period = 5;
	if ((v = evhttp_find_header(params, "pageNo")) && *v) {
		if (!parse_num(v, 1, 1000000000L, &pr->page_no))
			return OUT_BAD_PARAM;
	}
	if ((v = evhttp_find_header(params, "numOfRows")) && *v) {
		if (!parse_num(v, 1, 1000000000L, &pr->num_rows))
			return OUT_BAD_PARAM;
	}
	if ((v = evhttp_find_header(params, "period")) && *v) {
		if (!parse_num(v, 1, srv->max_period, &n))
			return OUT_BAD_PARAM;
		pr->period = (int)n;
	}
	v = evhttp_find_header(params, "dataType");
	pr->fmt = v && strcasecmp(v, "JSON") == 0 ? FMT_JSON : FMT_XML;
	if (!copy_code(evhttp_find_header(params, "zcode"), 2, true, pr->zcode) ||
	    !copy_code(evhttp_find_header(params, "zscode"), 5, true, pr->zscode) ||
	    !copy_code(evhttp_find_header(params, "kind"), 2, false, pr->kind) ||
	    !copy_code(evhttp_find_header(params, "kindDetail"), 4, false, pr->kind_detail))
		return OUT_BAD_PARAM;
	/* asking for more than allowed: the real service answers 200 with an
	 * empty body */
	if (pr->num_rows > SIM_MAX_ROWS)
		return OUT_TOO_MANY_ROWS;
	return OUT_OK;
}

static void handle_api(struct sim_server *srv, struct evhttp_request *req, const char *operation,
		       const struct evkeyvalq *params, bool params_ok)
{
	enum op op = strcmp(operation, "getChargerInfo") == 0	  ? OP_INFO
		     : strcmp(operation, "getChargerStatus") == 0 ? OP_STATUS
								  : OP_OTHER;
	if (op == OP_OTHER) {
		reply_gateway(srv, req, op, OUT_NO_SERVICE, 200, 12);
		return;
	}
	if (!params_ok) {
		reply_gateway(srv, req, op, OUT_BAD_PARAM, 200, 10);
		return;
	}
	const char *key = evhttp_find_header(params, "serviceKey");
	int key_index = -1;
	for (size_t i = 0; key && i < srv->key_count; i++)
		if (strcmp(key, srv->keys[i]) == 0)
			key_index = (int)i;
	if (key_index < 0) {
		reply_gateway(srv, req, op, OUT_BAD_KEY, 200, 30);
		return;
	}
	/* quotas reset at midnight Korea time, simulated */
	int64_t day = simtime_kst_day(clock_now(&srv->clock));
	if (day != srv->quota_day) {
		memset(srv->used, 0, srv->key_count * sizeof(*srv->used));
		srv->quota_day = day;
	}
	if (srv->quota > 0 && srv->used[key_index] >= srv->quota) {
		reply_gateway(srv, req, op, OUT_QUOTA, 200, 22);
		return;
	}
	srv->used[key_index]++;
	struct page_request pr = {.op = op};
	enum outcome parsed = parse_request(srv, params, &pr);
	if (parsed == OUT_TOO_MANY_ROWS) {
		struct sbuf empty = {0};
		count(srv, op, OUT_TOO_MANY_ROWS);
		server_reply(srv, req, 200, pr.fmt == FMT_JSON ? CT_JSON : CT_XML, &empty);
		return;
	}
	if (parsed != OUT_OK) {
		reply_gateway(srv, req, op, OUT_BAD_PARAM, 200, 10);
		return;
	}
	uint32_t fired = faults_decide(&srv->faults, op == OP_STATUS, pr.page_no);
	for (int m = 0; m < FAULT_COUNT; m++)
		if (fired & (1u << m))
			srv->stats.faults[m]++;
	if ((fired & (1u << FAULT_LATENCY)) && srv->faults.latency_ms > 0) {
		struct pending *p = pending_new(srv, req, PENDING_LATENCY, latency_done);
		if (p) {
			p->pr = pr;
			p->fired = fired;
			arm(p, srv->faults.latency_ms);
			return;
		}
	}
	respond(srv, req, &pr, fired);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct sim_server *srv = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	if (!path) {
		evhttp_send_error(req, 400, NULL);
		return;
	}
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	bool params_ok = !query || evhttp_parse_query_str(query, &params) == 0;
	if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0) {
		handle_api(srv, req, path + strlen(API_PREFIX), &params, params_ok);
	} else if (strncmp(path, "/__", 3) == 0) {
		if (params_ok) {
			admin_handle(srv, req, path, &params);
		} else {
			struct sbuf b = {0};
			if (sbuf_addf(&b, "{\"error\":\"cannot parse the query string\"}"))
				server_reply(srv, req, 400, CT_JSON, &b);
			else
				evhttp_send_error(req, 500, NULL);
		}
	} else {
		evhttp_send_error(req, 404, NULL);
	}
	evhttp_clear_headers(&params);
}

/* ---- lifecycle ---- */

struct sim_server *server_new(struct event_base *base, const struct sim_config *cfg, char *err,
			      size_t errlen)
{
	struct sim_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->base = base;
	gen_setup(&srv->gen, cfg->seed);
	if (!model_init(&srv->model, &srv->gen, cfg->chargers, cfg->epoch, err, errlen))
		goto fail;
	srv->clock = cfg->clock;
	srv->faults = cfg->faults;
	srv->keys = cfg->keys;
	srv->key_count = cfg->key_count;
	srv->quota = cfg->quota;
	srv->max_period = cfg->max_period;
	srv->quota_day = simtime_kst_day(clock_now(&srv->clock));
	srv->used = calloc(cfg->key_count ? cfg->key_count : 1, sizeof(*srv->used));
	srv->http = evhttp_new(base);
	if (!srv->used || !srv->http) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_timeout(srv->http, 120);
	srv->bound = evhttp_bind_socket_with_handle(srv->http, cfg->bind, (uint16_t)cfg->port);
	if (!srv->bound) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->bind, cfg->port,
			 strerror(errno));
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	if (getsockname(evhttp_bound_socket_get_fd(srv->bound), (struct sockaddr *)&ss, &sslen) !=
	    0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		goto fail;
	}
	srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return srv;
fail:
	server_free(srv);
	return NULL;
}

int server_port(const struct sim_server *srv)
{
	return srv->port;
}

void server_free(struct sim_server *srv)
{
	if (!srv)
		return;
	while (srv->pending) {
		struct pending *p = srv->pending;
		/* a request whose connection is gone is ours to free; the rest
		 * go with their connections in evhttp_free */
		if (!evhttp_request_get_connection(p->req))
			evhttp_request_free(p->req);
		pending_free(p);
	}
	if (srv->http)
		evhttp_free(srv->http);
	model_free(&srv->model);
	free(srv->used);
	free(srv);
}
