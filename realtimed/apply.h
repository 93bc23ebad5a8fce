/* apply: the writer that takes dirty chargers from the table into Redis.
 *
 * Owns the batches in flight and when what Redis holds is loaded into the
 * table (mirror.h). Each batch is up to batch_size dirty entries, sent as
 * one MULTI block of plain commands (pipelined: up to max_inflight blocks
 * at once), fenced:
 *
 *   WATCH ev:lease ev:fenced
 *   EVALSHA fence (touches ev:fenced unless the lease holds our token)
 *   MULTI, XADD ev:changes per change (a removal: "gone"), one MSET of
 *   the whole value (rkeys.h) of every station the batch's chargers belong
 *   to and of other pending stations (a load's repairs), DEL of a station
 *   left with no charger,
 *   PEXPIRE ev:lease (a block renews the lease: lease_extended),
 *   [RPUSH/LTRIM ev:writers token: the token log, when kept], EXEC
 *
 * EXEC runs only when the lease held our token at the fence and nobody
 * touched it since: a paused old leader writes nothing. The block is
 * written to the connection in one go, so blocks never interleave.
 *
 * "Newer only" is decided here, against the table's stored state: a
 * charger's status is written only when its statUpdDt is newer than the
 * one Redis holds (so re-delivery, out-of-order pages and a re-applied
 * sweep are harmless); a charger's first sight from a sweep or re-apply
 * is seeding and adds no stream entry. The stored state is exact because
 * the active instance is Redis' only writer: it is loaded when a new
 * connection or lease begins, and again after any failed block.
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

/* The largest batch_size. */
#define APPLY_BATCH_MAX 5000

struct apply_opts {
	int batch_size;	  /* chargers per block, 1..APPLY_BATCH_MAX */
	int max_inflight; /* blocks sent and unanswered */
	int token_log;	  /* ev:writers entries kept (0: none written) */
};

struct apply_stats {
	uint64_t applied; /* statuses written (newer than Redis held) */
	uint64_t stale;	  /* refused by Redis as not newer */
	uint64_t changes; /* stream entries added */
	uint64_t removed; /* chargers removed (prune.h) */
	uint64_t batches, batches_failed;
};

struct apply;

/* Registers its scripts with r: call before aredis_start. */
struct apply *apply_new(struct event_base *base, struct aredis *r, struct lease *l, struct table *t,
			const struct apply_opts *opts) MUSTCHECK;
void apply_free(struct apply *a);

/* Send what is dirty, at the next loop pass (calls coalesce). */
void apply_kick(struct apply *a);
/* Nothing dirty, no availability pending and nothing in flight. */
bool apply_is_idle(const struct apply *a);
size_t apply_inflight(const struct apply *a);
const struct apply_stats *apply_stats(const struct apply *a);

/* Milliseconds from the first block sent since the writer was last idle
 * to now: in a barrier's fn, how long the writes it waited for took (first
 * block sent to last reply). 0 when idle. */
int64_t apply_busy_ms(const struct apply *a);

/* Call fn(ctx) once, the next time everything dirty now (and since) has
 * been written and acknowledged: the heartbeat that claims a poll's
 * coverage goes after the poll's statuses. A new barrier replaces an
 * unfired one. */
void apply_barrier(struct apply *a, void (*fn)(void *ctx), void *ctx);

#endif
