/* prune: removes from Redis the chargers a complete sweep no longer lists
 * (removed upstream), so the station hashes (ev:st) do not keep dead
 * chargers forever; and deletes layout 1's per-station keys (rkeys.h).
 *
 * Runs only after a sweep that fetched every page completely, whose items
 * add up to its totalCount, and whose statuses are all acknowledged
 * (service.c calls prune_start from the sweep's barrier); never after a partial sweep. It walks ev:st:* with
 * SCAN (one page at a time, not to compete with the status writes), reads
 * the page's charger ids with one read-only script, and removes each id
 * the table has not seen since the sweep began (table.h's stamp: a status
 * poll after the sweep counts as seen, so a charger that appeared
 * meanwhile is kept) with one fenced script per page: HDEL from the
 * station hash, availability recomputed, the hash deleted when no charger
 * is left. The same script deletes layout 1's ev:av/ev:qk keys of the
 * page's stations, which the read reports, and a station hash holding no
 * charger's field. Removed entries are
 * marked gone in the table (a re-apply never writes them back; a charger
 * listed again comes back as new). Removals are counted and logged, and
 * each adds an ev:changes entry "s c gone=1" so that followers drop the
 * charger.
 *
 * A lease change or a Redis reconnect abandons the walk (prune_cancel):
 * the next complete sweep prunes again. */
#ifndef REALTIMED_PRUNE_H
#define REALTIMED_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"
#include "lease.h"
#include "table.h"

struct event_base;

struct prune_stats {
	uint64_t removed;	   /* chargers removed, ever */
	uint64_t stations_emptied; /* stations left without chargers, deleted */
	uint64_t walks_done, walks_failed;
};

struct prune;

/* Registers its scripts with r: call before aredis_start. */
struct prune *prune_new(struct aredis *r, struct lease *l, struct table *t) MUSTCHECK;
void prune_free(struct prune *p);

/* Walk Redis against the table's entries stamped `stamp` (the sweep's). */
void prune_start(struct prune *p, uint16_t stamp);
void prune_cancel(struct prune *p);
bool prune_is_busy(const struct prune *p);
const struct prune_stats *prune_stats(const struct prune *p);

#endif
