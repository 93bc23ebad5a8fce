/* conn: one client connection, between the socket and evhttp.
 * evhttp 2.1 sets no limits of its own that fit an API server: its read
 * timeout restarts on every byte, it answers oversized heads with 400 and
 * HTML, accepts duplicate Content-Length and odd Transfer-Encoding values,
 * and cannot close idle keep-alive connections on shutdown. So every
 * connection's bytes pass a bufferevent filter (created through
 * evhttp_set_bevcb) that owns:
 *   - the request screen (reqscan.h): only complete requests (head and
 *     body) that pass it reach evhttp; a refused one is replaced by a
 *     synthetic request to CONN_REFUSAL_PATH carrying this process's token,
 *     which routes.c answers with the status and a JSON message, closing
 *     the connection;
 *   - timers on an absolute clock: the head and body of a request must
 *     arrive within header_timeout_ms of its first byte (408, then close),
 *     an idle keep-alive connection closes after keepalive_timeout_ms, a
 *     client that reads nothing of an answer for send_timeout_ms is cut off;
 *   - the connection limit (503 past max_connections, counted across
 *     workers);
 *   - writing: answers go from the filter straight to the socket (never
 *     parked in a lower buffer), so evhttp's "written" means "in the
 *     kernel" and closing after a `Connection: close` answer loses nothing;
 *   - drain: idle connections close at once, busy ones after their answer.
 * Everything runs on the worker's thread. */
#ifndef APID_CONN_H
#define APID_CONN_H

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "reqscan.h"

struct worker;
struct conn;

struct conn_limits {
	struct reqscan_limits scan;
	int header_timeout_ms;
	int keepalive_timeout_ms;
	int send_timeout_ms;
	unsigned max_connections;      /* across all workers */
	atomic_uint *open_connections; /* the shared count, borrowed */
};

/* Path of the synthetic request that stands for a refused one. */
#define CONN_REFUSAL_PATH "/.apid/refused"
#define CONN_TOKEN_HEADER "X-Apid-Token"

/* The process's random token (32 hex digits); conn_setup makes it. */
bool conn_setup(void) MUSTCHECK;
const char *conn_token(void);

/* evhttp_set_bevcb callback; arg is the struct worker (its server holds
 * the limits). */
struct bufferevent *conn_new_bev(struct event_base *base, void *arg);

/* The connection a request arrived on; NULL when the connection is gone
 * (a client that hung up during a deferred answer). */
struct conn *conn_of(struct worker *w, struct evhttp_request *req);
/* A request was dispatched / answered on c (keeps idle timing right). */
void conn_request_begin(struct conn *c);
void conn_request_end(struct conn *c);
/* The refusal a synthetic request stands for. */
bool conn_refusal(const struct conn *c, int *status, const char **reason);

/* Close idle connections now, mark busy ones to close after their answer. */
void conn_drain(struct worker *w);

#endif
