/* changes: GET /stations/changes, the change feed's HTTP side, per worker.
 * Owns the feed clients of one worker: long-poll requests waiting for a
 * change (answered at the first change or when their timeout passes) and
 * Server-Sent Events streams (Accept: text/event-stream; one event per
 * change, a comment line as heartbeat every heartbeat interval, exempt
 * from the request timeouts because an answer is in progress). Reads the
 * shared history (feed.h) from a client's cursor on every wake-up the feed
 * sends; bounds the clients across workers (503 past the limit); ends
 * every stream on drain. Runs on the worker's thread only. */
#ifndef APID_CHANGES_H
#define APID_CHANGES_H

#include <event2/http.h>
#include <stdbool.h>

#include "base.h"

struct worker;
struct route_ctx;
struct params;
struct changes;

/* NULL when memory runs out. */
struct changes *changes_new(struct worker *w) MUSTCHECK;
/* Ends every client (streams end, long-polls answered); call before the
 * worker's evhttp is freed. NULL-safe. */
void changes_free(struct changes *ch);

/* Answer (now, or later from the feed) a GET /stations/changes. */
void changes_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		    const struct params *p);
/* The feed has news: advance every client. */
void changes_wake(struct changes *ch);
/* Draining: answer every long-poll and end every stream now. */
void changes_drain(struct changes *ch);

#endif
