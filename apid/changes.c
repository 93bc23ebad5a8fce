#include "changes.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feed.h"
#include "json.h"
#include "kst.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "worker.h"

/* Changes in one long-poll answer (or one SSE write) unless asked less. */
#define LIMIT_DEFAULT 500
#define LIMIT_MAX     1000
/* A stream whose client lets this much pile up unread is ended: it cannot
 * keep up, and memory must not grow with it. */
#define STREAM_BACKLOG_MAX (1u << 20)

struct client {
	struct changes *ch;
	struct client *prev, *next;
	struct evhttp_request *req;
	struct route_ctx rc;
	struct feed_cursor pos;
	size_t limit;
	bool sse;
	struct event *timer; /* long-poll deadline, or the stream's heartbeat */
};

struct changes {
	struct worker *w; /* borrowed: the owner */
	struct client *clients;
	struct buf event; /* one event's JSON, reused */
	struct buf out;	  /* an SSE write, reused */
	/* what the emit callbacks are writing: a peek (nothing counted), or a
	 * delivery, pushed live (in a wake-up: its delay is observed) or not */
	bool delivering, waking;
};

struct changes *changes_new(struct worker *w)
{
	struct changes *ch = calloc(1, sizeof(*ch));
	if (ch)
		ch->w = w;
	return ch;
}

/* ---- rendering ---- */

static const char *kind_name(enum feed_kind k)
{
	switch (k) {
	case FEED_STATUS: return "status";
	case FEED_RELOAD: return "reload";
	default: return "station";
	}
}

static const char *change_name(enum feed_kind k)
{
	switch (k) {
	case FEED_STATION_ADDED: return "added";
	case FEED_STATION_DELETED: return "deleted";
	default: return "changed";
	}
}

/* One event as JSON into ch->event. */
static void render_event(struct changes *ch, const struct feed_event *ev,
			 const struct feed_cursor *at)
{
	char cursor[FEED_CURSOR_MAX];
	feed_cursor_format(at, cursor);
	buf_reset(&ch->event);
	struct json_gen g;
	json_gen_init(&g, &ch->event);
	json_obj_begin(&g);
	json_kv_str(&g, "cursor", cursor);
	json_kv_str(&g, "type", kind_name(ev->kind));
	if (ev->kind == FEED_STATUS) {
		json_kv_str(&g, "stationId", ev->stat_id);
		json_kv_str(&g, "chargerId", ev->chger_id);
		json_kv_str(&g, "state", model_status_name(ev->stat));
		json_key(&g, "statusTime");
		if (ev->stat_unix > 0) {
			char iso[KST_ISO_SIZE];
			kst_format_iso((time_t)ev->stat_unix, iso);
			json_str(&g, iso);
		} else {
			json_null(&g);
		}
	} else {
		if (ev->kind != FEED_RELOAD) {
			json_kv_str(&g, "change", change_name(ev->kind));
			json_kv_str(&g, "stationId", ev->stat_id);
		}
		json_kv_int(&g, "runId", ev->run_id);
	}
	json_obj_end(&g);
	if (!json_gen_finish(&g))
		ch->event.failed = true;
}

struct json_sink {
	struct changes *ch;
	struct json_gen *g;
};

/* A change written to a client (not a peek): count it, and time it when it
 * is pushed as it came. */
static void delivered(struct changes *ch, const struct feed_event *ev)
{
	if (!ch->delivering)
		return;
	const struct meters *m = ch->w->meters;
	metric_inc(m->feed_events);
	if (ch->waking && ev->kind == FEED_STATUS && ev->at_ms > 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		metric_observe(m->feed_delay, (double)(ms - ev->at_ms) / 1000.0);
	}
}

static void emit_json(void *arg, const struct feed_event *ev, const struct feed_cursor *at)
{
	struct json_sink *sink = arg;
	delivered(sink->ch, ev);
	render_event(sink->ch, ev, at);
	json_raw(sink->g, sink->ch->event.data, sink->ch->event.len);
}

static void emit_sse(void *arg, const struct feed_event *ev, const struct feed_cursor *at)
{
	struct changes *ch = arg;
	char cursor[FEED_CURSOR_MAX];
	feed_cursor_format(at, cursor);
	delivered(ch, ev);
	render_event(ch, ev, at);
	buf_printf(&ch->out, "id: %s\nevent: %s\ndata: ", cursor, kind_name(ev->kind));
	buf_append(&ch->out, ch->event.data, ch->event.len);
	buf_puts(&ch->out, "\n\n");
}

static struct feed *feed_of(const struct worker *w)
{
	return server_config(w->server)->feed;
}

/* ---- clients ---- */

static void client_unlink(struct client *c)
{
	struct changes *ch = c->ch;
	if (c->prev)
		c->prev->next = c->next;
	else if (ch->clients == c)
		ch->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static struct metric *client_gauge(const struct client *c)
{
	const struct meters *m = c->ch->w->meters;
	return c->sse ? m->feed_streams : m->feed_polls;
}

static void client_free(struct client *c)
{
	client_unlink(c);
	if (c->timer)
		event_free(c->timer);
	atomic_fetch_sub(server_feed_clients(c->ch->w->server), 1);
	metric_add(client_gauge(c), -1);
	free(c);
}

/* A long-poll answer: the changes after pos (maybe none) and the cursor. */
static void answer_poll(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			struct changes *ch, struct feed_cursor *pos, size_t limit)
{
	struct buf *out = &w->out;
	buf_reset(out);
	struct json_gen g;
	json_gen_init(&g, out);
	json_obj_begin(&g);
	json_key(&g, "changes");
	json_arr_begin(&g);
	struct json_sink sink = {ch, &g};
	size_t n = 0;
	struct feed_cursor oldest;
	/* GONE cannot happen here: the cursor was checked when the request came
	 * and only moves forward; the retained floor moves too, so a client that
	 * waited long enough to fall behind it gets what is left */
	ch->delivering = true;
	if (feed_read(feed_of(w), pos, limit, emit_json, &sink, &n, &oldest) == FEED_READ_GONE)
		*pos = oldest;
	ch->delivering = false;
	json_arr_end(&g);
	char cursor[FEED_CURSOR_MAX];
	feed_cursor_format(pos, cursor);
	json_kv_str(&g, "cursor", cursor);
	json_obj_end(&g);
	if (!json_gen_finish(&g) || !buf_ok(out) || !buf_ok(&ch->event)) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	routes_reply(w, req, rc, 200, out->data, out->len);
}

/* The client is gone when evhttp let go of its request's connection. */
static bool client_gone(const struct client *c)
{
	return evhttp_request_get_connection(c->req) == NULL;
}

static void end_client(struct client *c)
{
	if (c->sse)
		routes_stream_end(c->ch->w, c->req, &c->rc);
	else
		answer_poll(c->ch->w, c->req, &c->rc, c->ch, &c->pos, c->limit);
	client_free(c);
}

/* Write what is new to a stream; false when the stream had to end. */
static bool stream_push(struct client *c, bool heartbeat)
{
	struct changes *ch = c->ch;
	if (client_gone(c))
		return false;
	struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > STREAM_BACKLOG_MAX) {
		metric_inc(ch->w->meters->feed_drop_slow);
		return false;
	}
	buf_reset(&ch->out);
	size_t n = 0;
	struct feed_cursor oldest;
	ch->delivering = true;
	do {
		if (feed_read(feed_of(ch->w), &c->pos, c->limit, emit_sse, ch, &n, &oldest) ==
		    FEED_READ_GONE) {
			/* fell behind the retained history: say where to reload from */
			char cursor[FEED_CURSOR_MAX];
			feed_cursor_format(&oldest, cursor);
			buf_printf(&ch->out, "event: gone\ndata: {\"oldestCursor\":\"%s\"}\n\n",
				   cursor);
			heartbeat = false;
			n = 0;
			c->limit = 0; /* end after this write */
			metric_inc(ch->w->meters->feed_drop_behind);
		}
	} while (n > 0 && n >= c->limit && ch->out.len < STREAM_BACKLOG_MAX);
	ch->delivering = false;
	if (heartbeat && ch->out.len == 0)
		buf_puts(&ch->out, ": heartbeat\n\n");
	if (!buf_ok(&ch->out))
		return false;
	if (ch->out.len > 0) {
		struct evbuffer *chunk = evbuffer_new();
		if (!chunk)
			return false;
		evbuffer_add(chunk, ch->out.data, ch->out.len);
		evhttp_send_reply_chunk(c->req, chunk);
		evbuffer_free(chunk);
	}
	return c->limit > 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	if (c->sse) {
		if (!stream_push(c, true))
			end_client(c);
		return;
	}
	end_client(c); /* the long-poll's time is up: answer what there is */
}

void changes_wake(struct changes *ch)
{
	if (!ch)
		return;
	struct client *next;
	ch->waking = true;
	for (struct client *c = ch->clients; c; c = next) {
		next = c->next;
		if (c->sse) {
			if (!stream_push(c, false))
				end_client(c);
			continue;
		}
		struct feed_cursor peek = c->pos;
		size_t n = 0;
		struct feed_cursor oldest;
		feed_read(feed_of(ch->w), &peek, 1, emit_sse, ch, &n, &oldest);
		buf_reset(&ch->out);
		if (n > 0 || client_gone(c))
			end_client(c);
	}
	ch->waking = false;
}

void changes_drain(struct changes *ch)
{
	if (!ch)
		return;
	while (ch->clients)
		end_client(ch->clients);
}

void changes_free(struct changes *ch)
{
	if (!ch)
		return;
	changes_drain(ch);
	buf_free(&ch->event);
	buf_free(&ch->out);
	free(ch);
}

/* ---- the request ---- */

static bool wants_sse(struct evhttp_request *req)
{
	const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	return accept && strstr(accept, "text/event-stream") &&
	       evhttp_request_get_command(req) == EVHTTP_REQ_GET;
}

void changes_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p)
{
	const struct server_config *cfg = server_config(w->server);
	struct changes *ch = w->changes;
	if (!cfg->feed || !ch) {
		routes_error(w, req, rc, 503, "change feed unavailable: no Redis configured");
		return;
	}
	bool sse = wants_sse(req);
	struct param_error err = {{0}};
	const char *since = NULL;
	long timeout = cfg->feed_max_wait_s < 25 ? cfg->feed_max_wait_s : 25, limit = LIMIT_DEFAULT;
	enum param_get got = params_one(p, "since", &since, &err);
	if (got == PARAM_BAD ||
	    params_integer(p, "timeout", 0, cfg->feed_max_wait_s, &timeout, &err) == PARAM_BAD ||
	    params_integer(p, "limit", 1, LIMIT_MAX, &limit, &err) == PARAM_BAD) {
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	if (got == PARAM_MISSING && sse) /* a browser's EventSource reconnecting */
		since = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
	struct feed_cursor pos;
	if (since && !feed_cursor_parse(since, &pos)) {
		routes_error(w, req, rc, 400,
			     "since: '%.40s' is not a cursor; expected one from a previous answer "
			     "(<ms>-<seq>.<run>)",
			     since);
		return;
	}
	if (!since && !feed_head(cfg->feed, &pos)) {
		routes_error(w, req, rc, 503,
			     "change feed not ready: history not read from Redis yet");
		return;
	}
	atomic_uint *clients = server_feed_clients(w->server);
	if (atomic_fetch_add(clients, 1) >= cfg->feed_max_clients) {
		atomic_fetch_sub(clients, 1);
		metric_inc(w->meters->feed_drop_full);
		routes_error(w, req, rc, 503, "too many change-feed clients (%u); retry later",
			     cfg->feed_max_clients);
		return;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub(clients, 1);
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	*c = (struct client){ch, NULL, NULL, req, *rc, pos, (size_t)limit, sse, NULL};
	/* refuse a cursor the history no longer covers before anything else */
	struct feed_cursor probe = pos, oldest;
	size_t n = 0;
	enum feed_read st = feed_read(cfg->feed, &probe, 0, emit_sse, ch, &n, &oldest);
	if (st != FEED_READ_OK) {
		if (st == FEED_READ_NOT_READY) {
			routes_error(w, req, rc, 503,
				     "change feed not ready: history not read from Redis yet");
		} else {
			char cursor[FEED_CURSOR_MAX], body[256];
			feed_cursor_format(&oldest, cursor);
			int len = snprintf(body, sizeof(body),
					   "{\"message\":\"since: the cursor is older than the "
					   "history kept; reload, then follow from oldestCursor\","
					   "\"oldestCursor\":\"%s\"}",
					   cursor);
			routes_reply(w, req, rc, 410, body, (size_t)len);
		}
		atomic_fetch_sub(clients, 1);
		free(c);
		return;
	}
	c->next = ch->clients;
	if (ch->clients)
		ch->clients->prev = c;
	ch->clients = c;
	metric_inc(client_gauge(c));
	c->timer = event_new(w->base, -1, sse ? EV_PERSIST : 0, on_timer, c);
	if (!c->timer) {
		routes_error(w, req, rc, 500, "out of memory");
		client_free(c);
		return;
	}
	if (sse) {
		routes_stream_start(w, req, rc, "text/event-stream; charset=utf-8");
		int ms = cfg->feed_heartbeat_ms;
		struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
		evtimer_add(c->timer, &tv);
		/* the backlog (or a first comment, so the client sees the stream open) */
		if (!stream_push(c, true))
			end_client(c);
		return;
	}
	probe = pos;
	feed_read(cfg->feed, &probe, 1, emit_sse, ch, &n, &oldest);
	buf_reset(&ch->out);
	if (n > 0 || timeout == 0 || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		end_client(c);
		return;
	}
	struct timeval tv = {(time_t)timeout, 0};
	evtimer_add(c->timer, &tv);
}
