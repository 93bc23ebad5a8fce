/* live: keeps the read model's charger states current from Redis, and is
 * the one follower of realtimed's ev:changes stream (rkeys.h).
 * Owns a thread with a blocking hiredis connection (rds.h). At connect: the
 * change feed's history (feed.h: the last entries the first time, a gap
 * check after a reconnect) gives the stream position, then a full load of
 * every station's ev:st value (pipelined GETs), then XREAD BLOCK from that
 * position, so a change written during the load is applied again rather
 * than missed (applying is idempotent: newer times win). Every entry read
 * goes both to the live state and to the change feed's ring, so the two
 * never disagree on what was read. Owns the hand-over of new snapshots:
 * the loader offers one, this thread carries the live words over from the
 * snapshot it replaces (fetching the stations that are new), then
 * publishes it to the workers, so the live state is only ever written by
 * this thread. When Redis is down the last known state stays and
 * reconnection is retried with backoff; a snapshot offered meanwhile is
 * published at once with what is known. */
#ifndef APID_LIVE_H
#define APID_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "meters.h"
#include "snap.h"

struct feed;

struct live_config {
	const char *redis_url; /* borrowed for the follower's life */
	int timeout_ms;	       /* connect and per-command I/O bound */
	struct feed *feed;     /* borrowed: the change feed the follower appends to */
};

/* Takes the snapshot's reference. Called on the follower's thread (as is
 * the feed's notify). */
typedef void (*live_publish_fn)(void *arg, struct snap *snap);

struct live;

struct live *live_start(const struct live_config *cfg, const struct meters *meters,
			live_publish_fn publish, void *arg) MUSTCHECK;
/* Stop and join the follower: nothing is published or appended to the
 * feed after it. The sync state stays readable until live_free. NULL-safe,
 * idempotent. */
void live_stop(struct live *l);
/* Stops if needed; drops the snapshots held. NULL-safe. */
void live_free(struct live *l);
/* Hand over a new snapshot (any thread; takes the reference). A snapshot
 * offered before the previous one was taken replaces it. */
void live_offer(struct live *l, struct snap *snap);

/* Any thread. Milliseconds since the follower last read the change stream
 * to its end, or -1 when it never has. */
int64_t live_sync_age_ms(const struct live *l);
bool live_is_connected(const struct live *l);

#endif
