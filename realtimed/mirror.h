/* mirror: loads what Redis holds of the status keys into the table's
 * stored state (table.h), so that the active instance decides "newer than
 * stored" and each station's availability in memory.
 *
 * Walks the string keys ev:st:* with SCAN (the next page asked while the
 * current one is read) and reads each page's station values with one
 * read-only script (rkeys.h). Each charger is learned (table_learn); a
 * station whose counts differ from the value's head, or whose value is
 * malformed, becomes pending and is written again. A key SCAN returns
 * twice is learned twice, harmlessly. Keys of an older layout (hashes)
 * are not read: the heartbeat's layout makes realtimed sweep, and the
 * sweep's cleanup deletes them (prune.c).
 *
 * apply.c loads when it becomes the writer (lease gained, Redis connected)
 * and after a batch that failed, before it writes again; nothing is
 * written while a load runs. */
#ifndef REALTIMED_MIRROR_H
#define REALTIMED_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"
#include "table.h"

struct mirror;

/* Registers its script with r: call before aredis_start. */
struct mirror *mirror_new(struct aredis *r, struct table *t) MUSTCHECK;
void mirror_free(struct mirror *m);

/* Forget the table's stored state and load it from Redis (a load running
 * is abandoned); done(ctx, ok) when over: ok false when Redis failed (the
 * stored state is then partial: load again). */
void mirror_load(struct mirror *m, void (*done)(void *ctx, bool ok), void *ctx);
void mirror_cancel(struct mirror *m);
bool mirror_is_loading(const struct mirror *m);
/* Chargers learned by the last load. */
uint64_t mirror_loaded(const struct mirror *m);

#endif
