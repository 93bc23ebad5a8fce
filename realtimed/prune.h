/* prune: after a complete sweep, removes from Redis the chargers it no
 * longer lists (removed upstream), so station values (ev:st) do not keep
 * dead chargers forever; and deletes the keys older layouts left
 * (rkeys.h: layout 2's station hashes, layout 1's ev:av/ev:qk keys).
 *
 * Runs only after a sweep that fetched every page completely, whose items
 * add up to its totalCount, and whose statuses are all acknowledged
 * (service.c calls prune_start from the sweep's barrier); never after a
 * partial sweep.
 *
 * Removal is decided in memory: the table knows every charger Redis holds
 * (table.h: loaded when the writer began, kept by every write since), so
 * each entry the table has not seen since the sweep began (its stamp: a
 * status poll after the sweep began counts as seen, so a charger that
 * appeared meanwhile is kept) is marked gone and queued; the writer
 * (apply.c) rewrites its station without it (deletes a station left with
 * none) and adds an ev:changes entry "s c gone=1" so that followers drop
 * the charger. A gone entry is never written back by a re-apply; a charger
 * listed again comes back as new. Removals are logged here and counted by
 * the writer when Redis acknowledged them.
 *
 * The cleanup walks ev:* with SCAN (one page at a time, not to compete
 * with the status writes) and deletes, with one fenced script per page,
 * every station key that is not a string and every layout-1 key. A lease
 * change or a Redis reconnect abandons it (prune_cancel): the next
 * complete sweep walks again. */
#ifndef REALTIMED_PRUNE_H
#define REALTIMED_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"
#include "lease.h"
#include "table.h"

struct prune_stats {
	uint64_t walks_done, walks_failed;
};

struct prune;

/* Registers its script with r: call before aredis_start. */
struct prune *prune_new(struct aredis *r, struct lease *l, struct table *t) MUSTCHECK;
void prune_free(struct prune *p);

/* Mark what the sweep stamped `stamp` did not list, and start the cleanup
 * walk. The caller kicks the writer. */
void prune_start(struct prune *p, uint16_t stamp);
void prune_cancel(struct prune *p);
bool prune_is_busy(const struct prune *p);
const struct prune_stats *prune_stats(const struct prune *p);

#endif
