/* congest: the congestion counters behind "how busy is this station at this
 * hour of this weekday".
 *
 * Every S seconds, at the wall-clock multiples of S (so every instance
 * agrees on a sample's second, its "tick"), the active instance counts one
 * sample for every charger in Redis into its ev:cg:{statId}:{chgerId} slot
 * of the current Korea-time weekday and hour (as the configured clock
 * tells it), one use when the charger's stored status is
 * CHARGING_IN_PROGRESS and one out of service when it is
 * model_status_out_of_service(). Chargers are found by SCAN over the
 * station values (Redis is the truth, also for an instance that just took
 * over) and counted by a fenced Lua script per SCAN page, pipelined with
 * the next SCAN: BITFIELD ... OVERFLOW SAT INCRBY u12 (rkeys.h layout 2),
 * plus the value's trailing u32 marking the tick counted last (a layout-1
 * value is converted in place when first touched). The marker makes a
 * sample idempotent per charger: a page retried after a lost reply, a SCAN
 * that returns a key twice (it may, while Redis rehashes) or a sample
 * resumed by the instance that took over from a dead one never counts a
 * charger twice in a tick.
 *
 * Progress is in ev:heartbeat: sample_started when a tick begins,
 * sample_done and samples (+1) when its SCAN is over. A new active
 * instance finishes a tick that was started and not done, then goes on.
 * One tick runs at a time: a boundary that finds the previous tick still
 * running (or Redis down) is skipped; a tick whose requests fail is retried
 * every second until its interval is over, then abandoned. Both are counted
 * in ticks_skipped. */
#ifndef REALTIMED_CONGEST_H
#define REALTIMED_CONGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"
#include "clock.h"
#include "lease.h"

struct event_base;

struct congest_stats {
	uint64_t ticks_done;	/* ticks this process finished */
	uint64_t ticks_skipped; /* ticks not begun or abandoned (busy, Redis down) */
	uint64_t chargers_counted;
	uint64_t chargers_skipped; /* already counted in that tick */
	int64_t last_done;	   /* Unix s of the last tick finished here, 0 none */
};

struct congest;

/* Registers its scripts with r: call before aredis_start. clock is
 * borrowed and may be updated in place (SIGHUP). */
struct congest *congest_new(struct event_base *base, struct aredis *r, struct lease *l,
			    const struct rtclock *clock, int interval_s) MUSTCHECK;
void congest_free(struct congest *c);

/* Start sampling (the instance is active and Redis holds the chargers):
 * resume an unfinished tick, then one every interval. */
void congest_activate(struct congest *c);
/* Stop: no new tick; a running one is abandoned (its replies ignored). */
void congest_deactivate(struct congest *c);
void congest_set_interval(struct congest *c, int interval_s);
/* A tick is in progress (SIGTERM waits for it). */
bool congest_is_busy(const struct congest *c);
const struct congest_stats *congest_stats(const struct congest *c);

/* The slot (rkeys_congestion_slot) counted for an instant. */
int congest_slot(time_t t);

#endif
