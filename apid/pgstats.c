#include "pgstats.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rkeys.h"
#include "routes.h"
#include "stats.h"

/* The current snapshot's time (one row with only taken_at), then the
 * station's rows of that weekday: one statement, so both come from the
 * same snapshot even while a new one becomes current. No row at all: no
 * current snapshot. The view's plan is one range of the current
 * partition's primary key (docs/congestion.md). */
static const char STATS_SQL[] =
	"SELECT extract(epoch FROM s.taken_at)::bigint, NULL, NULL, NULL, NULL, NULL "
	"FROM congestion_snapshot s WHERE s.is_current "
	"UNION ALL "
	"SELECT NULL, c.chger_id, c.hour, c.samples, c.uses, c.out_of_service FROM congestion c "
	"WHERE c.stat_id = $1 AND c.weekday = $2";

enum pg_state {
	PG_DOWN,       /* no connection */
	PG_CONNECTING, /* PQconnectPoll in progress */
	PG_READY,
};

struct pgreq {
	struct pgreq *next;
	struct pgstats *ps;
	struct worker *w;
	struct evhttp_request *req;
	struct route_ctx rc;
	struct snap *snap; /* owned reference */
	uint32_t station;
	struct stats_ask ask;
	struct event *deadline;
	bool answered;
	char redis_why[128];
};

struct pgstats {
	struct event_base *base; /* borrowed: the worker's */
	char *conninfo;
	int timeout_ms;
	const struct meters *meters;
	PGconn *conn;
	enum pg_state state;
	struct event *io;	  /* on the connection's socket */
	struct event *connect_to; /* connect deadline */
	int64_t down_until_ms;	  /* no connect before this (CLOCK_MONOTONIC) */
	struct pgreq *head, *tail;
	bool in_flight; /* the head's query was sent */
	PGresult *result;
	size_t pending;
};

static struct timeval tv_ms(int ms)
{
	return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* libpq's messages end in a newline and may hold DETAIL lines: one line
 * for logs and answers. */
static const char *first_line(const char *msg, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", msg);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* ---- answers ---- */

static void unavailable(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
			const char *redis_why, const char *pg_why)
{
	routes_error(w, req, rc, 503, "statistics unavailable: %s; snapshot fallback: %s",
		     redis_why, pg_why);
}

static void req_free(struct pgreq *r)
{
	if (r->deadline)
		event_free(r->deadline);
	snap_unref(r->snap);
	r->ps->pending--;
	free(r);
}

static void req_fail(struct pgreq *r, const char *why)
{
	if (!r->answered) {
		r->answered = true;
		unavailable(r->w, r->req, &r->rc, r->redis_why, why);
	}
}

/* The result of the head's query: rebuild the counters' layout per charger
 * (counters-only, RKEYS_CONGESTION_BYTES each; a layout-1 snapshot's counts
 * above 4,095 saturate as realtimed's conversion leaves them) and render as
 * stats.c does. */
static void req_render(struct pgreq *r, const PGresult *res)
{
	if (r->answered)
		return;
	r->answered = true;
	const struct snap *s = r->snap;
	const struct snap_station *station = &s->stations[r->station];
	size_t n = station->charger_count;
	int rows = PQntuples(res);
	if (rows == 0) {
		unavailable(r->w, r->req, &r->rc, r->redis_why, "no congestion snapshot");
		return;
	}
	char *blob = calloc(n + 1, RKEYS_CONGESTION_BYTES);
	const char **blobs = calloc(n + 1, sizeof(*blobs));
	size_t *lens = calloc(n + 1, sizeof(*lens));
	if (!blob || !blobs || !lens) {
		routes_error(r->w, r->req, &r->rc, 500, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		blobs[i] = blob + i * RKEYS_CONGESTION_BYTES;
		lens[i] = RKEYS_CONGESTION_BYTES;
	}
	long long taken = 0;
	for (int row = 0; row < rows; row++) {
		if (!PQgetisnull(res, row, 0)) {
			taken = atoll(PQgetvalue(res, row, 0));
			continue;
		}
		uint32_t c;
		if (!snap_find_charger(s, snap_text(s, station->id), PQgetvalue(res, row, 1), &c) ||
		    c < station->first_charger || c >= station->first_charger + n)
			continue; /* a charger the model no longer has */
		int hour = atoi(PQgetvalue(res, row, 2));
		long samples = atol(PQgetvalue(res, row, 3)), uses = atol(PQgetvalue(res, row, 4));
		long down = atol(PQgetvalue(res, row, 5));
		if (hour < 0 || hour > 23 || samples < 0 || samples > 65535 || uses < 0 ||
		    uses > 65535 || down < 0 || down > 65535)
			continue; /* the schema's CHECKs make this impossible */
		int slot = rkeys_congestion_slot(r->ask.weekday, hour);
		char *value = blob + (size_t)(c - station->first_charger) * RKEYS_CONGESTION_BYTES;
		rkeys_congestion_counter_put(value, slot, RKEYS_CG_SAMPLES, (unsigned)samples);
		rkeys_congestion_counter_put(value, slot, RKEYS_CG_USES, (unsigned)uses);
		rkeys_congestion_counter_put(value, slot, RKEYS_CG_OUT_OF_SERVICE, (unsigned)down);
	}
	struct stats_source src = {"snapshot", (time_t)taken};
	stats_answer(r->w, r->req, &r->rc, s, r->station, &r->ask, blobs, lens, &src);
out:
	free(blob);
	free(blobs);
	free(lens);
}

/* ---- the connection ---- */

static void pump(struct pgstats *ps);

static void drop_head(struct pgstats *ps)
{
	struct pgreq *r = ps->head;
	ps->head = r->next;
	if (!ps->head)
		ps->tail = NULL;
	ps->in_flight = false;
	req_free(r);
}

/* The connection is unusable: close it, fail every queued request. */
static void conn_lost(struct pgstats *ps, const char *why)
{
	if (ps->state != PG_DOWN)
		log_warn("statistics fallback: PostgreSQL connection lost: %s", why);
	metric_inc(ps->meters->pg_errors);
	if (ps->io) {
		event_free(ps->io);
		ps->io = NULL;
	}
	evtimer_del(ps->connect_to);
	if (ps->result) {
		PQclear(ps->result);
		ps->result = NULL;
	}
	if (ps->conn) {
		PQfinish(ps->conn);
		ps->conn = NULL;
	}
	ps->state = PG_DOWN;
	ps->down_until_ms = monotonic_ms() + PGSTATS_RETRY_MS;
	while (ps->head) {
		req_fail(ps->head, "PostgreSQL unreachable");
		drop_head(ps);
	}
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Watch the socket for `what` (it may change while connecting). */
static bool watch(struct pgstats *ps, short what)
{
	if (ps->io)
		event_free(ps->io);
	ps->io = event_new(ps->base, PQsocket(ps->conn), what, on_io, ps);
	return ps->io && event_add(ps->io, NULL) == 0;
}

static void connect_step(struct pgstats *ps)
{
	switch (PQconnectPoll(ps->conn)) {
	case PGRES_POLLING_READING:
		if (!watch(ps, EV_READ))
			conn_lost(ps, "event setup failed");
		return;
	case PGRES_POLLING_WRITING:
		if (!watch(ps, EV_WRITE))
			conn_lost(ps, "event setup failed");
		return;
	case PGRES_POLLING_OK:
		evtimer_del(ps->connect_to);
		ps->state = PG_READY;
		if (PQsetnonblocking(ps->conn, 1) != 0 || !watch(ps, EV_READ | EV_PERSIST)) {
			conn_lost(ps, "setup failed");
			return;
		}
		pump(ps);
		return;
	default: {
		char why[256];
		conn_lost(ps, first_line(PQerrorMessage(ps->conn), why, sizeof(why)));
		return;
	}
	}
}

static void read_results(struct pgstats *ps)
{
	if (!PQconsumeInput(ps->conn)) {
		char why[256];
		conn_lost(ps, first_line(PQerrorMessage(ps->conn), why, sizeof(why)));
		return;
	}
	while (ps->in_flight && !PQisBusy(ps->conn)) {
		PGresult *res = PQgetResult(ps->conn);
		if (res) { /* keep the first; the NULL after it ends the query */
			if (!ps->result)
				ps->result = res;
			else
				PQclear(res);
			continue;
		}
		struct pgreq *r = ps->head;
		if (ps->result && PQresultStatus(ps->result) == PGRES_TUPLES_OK) {
			req_render(r, ps->result);
		} else {
			char why[256];
			first_line(ps->result ? PQresultErrorMessage(ps->result) : "no result", why,
				   sizeof(why));
			metric_inc(ps->meters->pg_errors);
			log_warn("statistics fallback: query failed: %s", why);
			req_fail(r, "query failed");
		}
		if (ps->result)
			PQclear(ps->result);
		ps->result = NULL;
		drop_head(ps);
	}
	if (!ps->in_flight)
		pump(ps);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgstats *ps = arg;
	if (ps->state == PG_CONNECTING)
		connect_step(ps);
	else if (ps->state == PG_READY)
		read_results(ps);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pgstats *ps = arg;
	if (ps->state == PG_CONNECTING)
		conn_lost(ps, "connect timed out");
}

static bool start_connect(struct pgstats *ps)
{
	const char *keys[] = {"dbname", "application_name", "client_encoding", NULL};
	const char *values[] = {ps->conninfo, "apid-statistics", "UTF8", NULL};
	ps->conn = PQconnectStartParams(keys, values, 1);
	if (!ps->conn || PQstatus(ps->conn) == CONNECTION_BAD) {
		ps->state = PG_CONNECTING; /* so conn_lost logs */
		conn_lost(ps, "cannot start a connection");
		return false;
	}
	ps->state = PG_CONNECTING;
	struct timeval tv = tv_ms(ps->timeout_ms);
	evtimer_add(ps->connect_to, &tv);
	if (!watch(ps, EV_WRITE)) { /* PQconnectStart: as if POLLING_WRITING */
		conn_lost(ps, "event setup failed");
		return false;
	}
	return true;
}

/* Send the head's query when the connection is idle. */
static void pump(struct pgstats *ps)
{
	while (ps->head && !ps->in_flight && ps->state == PG_READY) {
		struct pgreq *r = ps->head;
		if (r->answered) { /* timed out while queued */
			drop_head(ps);
			continue;
		}
		char weekday[8];
		snprintf(weekday, sizeof(weekday), "%d", r->ask.weekday);
		const char *values[2] = {snap_text(r->snap, r->snap->stations[r->station].id),
					 weekday};
		if (!PQsendQueryParams(ps->conn, STATS_SQL, 2, NULL, values, NULL, NULL, 0) ||
		    PQflush(ps->conn) < 0) {
			char why[256];
			conn_lost(ps, first_line(PQerrorMessage(ps->conn), why, sizeof(why)));
			return;
		}
		/* a query of a few dozen bytes: PQflush leaves nothing behind in practice;
		 * what it would leave goes with the next PQconsumeInput/PQflush */
		ps->in_flight = true;
	}
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct pgreq *r = arg;
	struct pgstats *ps = r->ps;
	req_fail(r, "PostgreSQL did not answer in time");
	metric_inc(ps->meters->pg_errors);
	/* the query in flight is stuck: give up on the connection (its queue
	 * fails with it); a queued one is dropped when its turn comes */
	if (r == ps->head && ps->in_flight)
		conn_lost(ps, "query timed out");
}

/* ---- interface ---- */

struct pgstats *pgstats_new(struct event_base *base, const char *conninfo, int timeout_ms,
			    const struct meters *meters)
{
	struct pgstats *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	ps->base = base;
	ps->conninfo = strdup(conninfo ? conninfo : "");
	ps->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	ps->meters = meters;
	ps->connect_to = evtimer_new(base, on_connect_timeout, ps);
	if (!ps->conninfo || !ps->connect_to) {
		pgstats_free(ps);
		return NULL;
	}
	return ps;
}

void pgstats_free(struct pgstats *ps)
{
	if (!ps)
		return;
	while (ps->head) {
		req_fail(ps->head, "shutting down");
		drop_head(ps);
	}
	if (ps->io)
		event_free(ps->io);
	if (ps->connect_to)
		event_free(ps->connect_to);
	if (ps->result)
		PQclear(ps->result);
	if (ps->conn)
		PQfinish(ps->conn);
	free(ps->conninfo);
	free(ps);
}

size_t pgstats_pending(const struct pgstats *ps)
{
	return ps ? ps->pending : 0;
}

void pgstats_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    struct snap *snap, uint32_t station, const struct stats_ask *ask,
		    const char *redis_why)
{
	struct pgstats *ps = w->pgstats;
	if (!ps || !ps->conninfo[0]) {
		unavailable(w, req, rc, redis_why, "not configured");
		return;
	}
	if (ps->state == PG_DOWN && monotonic_ms() < ps->down_until_ms) {
		unavailable(w, req, rc, redis_why, "PostgreSQL unreachable");
		return;
	}
	struct pgreq *r = calloc(1, sizeof(*r));
	if (!r) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	*r = (struct pgreq){NULL, ps, w, req, *rc, snap_ref(snap), station, *ask, NULL, false, ""};
	snprintf(r->redis_why, sizeof(r->redis_why), "%s", redis_why);
	ps->pending++;
	r->deadline = evtimer_new(ps->base, on_deadline, r);
	struct timeval tv = tv_ms(ps->timeout_ms);
	if (!r->deadline || evtimer_add(r->deadline, &tv) != 0) {
		req_fail(r, "timer setup failed");
		req_free(r);
		return;
	}
	if (ps->tail)
		ps->tail->next = r;
	else
		ps->head = r;
	ps->tail = r;
	if (ps->state == PG_DOWN)
		start_connect(ps); /* failing, it fails the queue */
	else
		pump(ps);
}
