/* worker: one HTTP worker thread's state, shared by server.c (which owns
 * it), conn.c (its connections), routes.c and the modules that answer
 * through it (area.c, station.c, lookup.c, changes.c, stats.c, pgstats.c).
 * Everything here is touched only by the worker's own thread, except
 * `pending` and `wake_fd`, through which other threads hand it work. */
#ifndef APID_WORKER_H
#define APID_WORKER_H

#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "meters.h"
#include "snap.h"

struct server;
struct conn;
struct stats;
struct pgstats;
struct changes;

/* Routes, for metrics labels (routes.c names them). */
enum route {
	ROUTE_STATIONS,
	ROUTE_STATION,
	ROUTE_STATISTICS,
	ROUTE_FORECAST,
	ROUTE_CHANGES,
	ROUTE_SUMMARY,
	ROUTE_SEARCH,
	ROUTE_REGIONS,
	ROUTE_CLUSTERS,
	ROUTE_FILTERS,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_OPENAPI,
	ROUTE_OTHER,   /* 404 and 405 for unknown paths */
	ROUTE_REFUSED, /* refused by the request screen (conn.c) */
	ROUTE_COUNT,
};

/* Status codes metrics keep apart; others count under the last slot. */
#define WORKER_STATUS_SLOTS 15

struct worker {
	int index;
	struct server *server; /* borrowed: the owner */
	const struct meters *meters;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* NULL once accepting stopped */
	pthread_t thread;
	bool started;
	int wake_fd; /* eventfd: a snapshot or a command is waiting */
	struct event *wake_ev;
	_Atomic(struct snap *) pending; /* offered snapshot, owned reference */
	atomic_bool drain_requested;
	atomic_bool stop_accepting_requested;
	struct snap *snap; /* the snapshot answers read; owned reference */
	struct buf out;	   /* response scratch, reused */
	uint32_t *scratch; /* per-request station lists, reused */
	size_t scratch_cap;
	struct event *drain_tick; /* while draining */
	/* connections (conn.c) */
	struct conn *conns;  /* list of open connections */
	struct conn **by_fd; /* fd -> connection, for request -> connection */
	size_t by_fd_cap;
	unsigned nconns;
	bool draining;
	int64_t drain_deadline_ms;
	struct stats *stats; /* statistics client (stats.c), NULL when disabled */
	struct pgstats *pgstats; /* its PostgreSQL fallback (pgstats.c) */
	struct changes *changes; /* change-feed clients (changes.c), NULL when off */
	atomic_bool feed_wake;	 /* the feed has news for `changes` */
	/* metric series resolved on first use */
	struct metric *requests[ROUTE_COUNT][WORKER_STATUS_SLOTS];
	struct metric *durations[ROUTE_COUNT];
};

#endif
