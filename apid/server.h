/* server: the listening socket and the HTTP worker threads.
 * Owns the listening socket (adopted from systemd socket activation, else
 * bound with SO_REUSEPORT so an old and a new apid can overlap), the port
 * file (written by rename once workers accept), W worker threads (one
 * event_base and one evhttp each, all accepting on the one socket), the
 * hand-over of read-model snapshots to the workers (an atomic slot per
 * worker plus an eventfd wake-up: a worker swaps between requests and drops
 * its old reference), readiness (model loaded, live state fresh enough,
 * not draining) and the drain on SIGTERM: readiness first, then stop
 * accepting, then let connections finish. */
#ifndef APID_SERVER_H
#define APID_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"
#include "conn.h"
#include "meters.h"
#include "snap.h"

struct feed;
struct live;
struct loader;

struct server_config {
	const char *bind;      /* numeric address */
	int port;	       /* 0: any free port */
	const char *port_file; /* "" or NULL: none */
	int workers;	       /* >= 1 */
	int backlog;
	struct conn_limits limits; /* open_connections is set by the server */
	int live_stale_ms;	   /* readiness: oldest acceptable live state */
	const char *redis_url;	   /* statistics */
	const char *database_url;  /* statistics fallback (read-only role) */
	int stats_timeout_ms;
	unsigned max_markers; /* /stations refuses boxes with more matches */
	int status_max_age_s; /* older charger statuses count as unknown (freshness) */
	double rate_limit;    /* requests a second per client address; 0: off */
	unsigned rate_burst;
	size_t rate_slots;
	struct feed *feed;	   /* the change feed (borrowed); NULL: off */
	unsigned feed_max_clients; /* across workers; past it 503 */
	int feed_heartbeat_ms;	   /* SSE comment interval */
	int feed_max_wait_s;	   /* bound of a long-poll's timeout */
};

struct server;

/* Open (or adopt) the listening socket. NULL with the reason in err. */
struct server *server_new(const struct server_config *cfg, const struct meters *meters, char *err,
			  size_t errlen) MUSTCHECK;
void server_free(struct server *s); /* after server_wait; NULL-safe */

/* Readiness and metrics read these, the workers the feed; borrowed, may
 * stay NULL. Before server_start. */
void server_set_sources(struct server *s, struct live *live, struct loader *loader,
			struct feed *feed);
/* Start the workers, then write the port file. */
bool server_start(struct server *s, char *err, size_t errlen) MUSTCHECK;
int server_port(const struct server *s);

/* feed_notify_fn: the change feed has news for every worker. */
void server_feed_notify(void *server);
/* The change-feed clients open now, across workers. */
atomic_uint *server_feed_clients(struct server *s);

/* live_publish_fn: give every worker the snapshot (takes the reference). */
void server_publish(void *server, struct snap *snap);

/* Shutdown, in order: readiness turns 503; then the workers stop accepting
 * (server_accepting() turns false, the socket is closed); then workers
 * close idle connections and finish the others until drain_ms passes. */
void server_begin_drain(struct server *s);
void server_stop_accepting(struct server *s, int drain_ms);
bool server_accepting(const struct server *s);
/* Close the listening socket once no worker accepts on it any more. */
void server_close_listener(struct server *s);
/* True once every worker has exited (then server_free joins them). */
bool server_workers_done(const struct server *s);
bool server_is_draining(const struct server *s);
/* Has the first read model been published? Is PostgreSQL answering the
 * loader? (main.c waits for the model before accepting.) Any thread. */
bool server_has_model(const struct server *s);
bool server_loader_connected(const struct server *s);

/* ---- for routes.c and conn.c, on worker threads ---- */

const struct server_config *server_config(const struct server *s);
const struct conn_limits *server_conn_limits(const struct server *s);
/* The per-client request limit (ratelimit.h); NULL when off. */
struct ratelimit *server_ratelimit(const struct server *s);
/* 200 or 503 and why (readyz). */
bool server_ready(const struct server *s, char *why, size_t whylen);
/* The live state is stale (Redis unreachable or behind): *age_s is its age
 * in seconds, -1 when no state was ever read. */
bool server_live_stale(const struct server *s, int64_t *age_s);
/* The /metrics text, gauges refreshed from `snap` (the caller's model). */
bool server_metrics(const struct server *s, const struct snap *snap, struct buf *out) MUSTCHECK;

#endif
