/* live: keeps the read model's charger states current from Redis.
 * Owns a thread with a blocking hiredis connection (rds.h): at connect, a
 * full load of every station's ev:st hash (pipelined), then XREAD BLOCK on
 * the ev:changes stream from the entry that was last before the load, so a
 * change written during the load is applied again rather than missed
 * (applying is idempotent: newer times win). Owns the hand-over of new
 * snapshots: the loader offers one, this thread carries the live words
 * over from the snapshot it replaces (fetching the stations that are new),
 * then publishes it to the workers, so the live state is only ever written
 * by this thread. When Redis is down the last known state stays and
 * reconnection is retried with backoff; a snapshot offered meanwhile is
 * published at once with what is known. */
#ifndef APID_LIVE_H
#define APID_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "meters.h"
#include "snap.h"

struct live_config {
	const char *redis_url; /* borrowed for the follower's life */
	int timeout_ms;	       /* connect and per-command I/O bound */
};

/* Takes the snapshot's reference. Called on the follower's thread. */
typedef void (*live_publish_fn)(void *arg, struct snap *snap);

struct live;

struct live *live_start(const struct live_config *cfg, const struct meters *meters,
			live_publish_fn publish, void *arg) MUSTCHECK;
/* Stop and join; drops the snapshots held. NULL-safe. */
void live_stop(struct live *l);
/* Hand over a new snapshot (any thread; takes the reference). A snapshot
 * offered before the previous one was taken replaces it. */
void live_offer(struct live *l, struct snap *snap);

/* Any thread. Milliseconds since the follower last read the change stream
 * to its end, or -1 when it never has. */
int64_t live_sync_age_ms(const struct live *l);
bool live_is_connected(const struct live *l);

#endif
