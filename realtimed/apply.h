/* apply: the writer that takes dirty chargers from the table into Redis.
 *
 * Owns the apply Lua script and the batches in flight. Each batch is up to
 * batch_size dirty entries, sent as one EVALSHA (pipelined: up to
 * max_inflight batches at once) of a fenced script that, per station in the
 * batch, writes a charger's "<stat>:<unix>" into ev:st:{statId} only when
 * newer than the stored one (so re-delivery, out-of-order pages and a
 * re-applied sweep are harmless), keeps ev:qk:{statId} (quick chargers),
 * rewrites ev:av:{statId} when anything changed, and XADDs each applied
 * change to ev:changes (MAXLEN ~), except a charger's first sight from a
 * sweep or re-apply, which is seeding, not a change.
 *
 * A batch that fails (connection lost, an error reply, fenced) puts its
 * entries back in the table's queue; a fenced one also tells the lease.
 * After an error reply the writer pauses a second, so a Redis refusing
 * writes (OOM) is not hammered. */
#ifndef REALTIMED_APPLY_H
#define REALTIMED_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"
#include "lease.h"
#include "table.h"

struct event_base;

/* The standby code as the scripts (apply, prune) compare a stored value's
 * first byte: '2' of MODEL_STATUS_STANDBY, which, like every status, is one
 * digit (apply.c checks both). */
#define STANDBY_BYTE "50"

/* The largest batch_size (a run's flags are one argument). */
#define APPLY_BATCH_MAX 5000

struct apply_opts {
	int batch_size;	  /* chargers per script call, 1..APPLY_BATCH_MAX */
	int max_inflight; /* batches sent and unanswered */
};

struct apply_stats {
	uint64_t applied; /* statuses written (newer than Redis held) */
	uint64_t stale;	  /* refused by Redis as not newer */
	uint64_t changes; /* stream entries added */
	uint64_t batches, batches_failed;
};

struct apply;

/* Registers its script with r: call before aredis_start. */
struct apply *apply_new(struct event_base *base, struct aredis *r, struct lease *l, struct table *t,
			const struct apply_opts *opts) MUSTCHECK;
void apply_free(struct apply *a);

/* Send what is dirty, at the next loop pass (calls coalesce). */
void apply_kick(struct apply *a);
/* Nothing dirty and nothing in flight. */
bool apply_is_idle(const struct apply *a);
size_t apply_inflight(const struct apply *a);
const struct apply_stats *apply_stats(const struct apply *a);

/* Call fn(ctx) once, the next time everything dirty now (and since) has
 * been written and acknowledged: the heartbeat that claims a poll's
 * coverage goes after the poll's statuses. A new barrier replaces an
 * unfired one. */
void apply_barrier(struct apply *a, void (*fn)(void *ctx), void *ctx);

#endif
