/* feed: the change feed's history, shared by every worker (changes.h
 * answers GET /stations/changes from it).
 * Owns two ordered logs and the cursor over both:
 *   - charger status changes: a ring of the last `retain` entries of
 *     realtimed's ev:changes stream (rkeys.h), loaded at the first connect
 *     and then appended by the stream's one follower (live.h: one thread
 *     and one Redis connection feed both the live state and this ring),
 *     with the Redis entry id as position, so a cursor means the same on
 *     every apid instance;
 *   - master-data changes: per finished `ingestd chargers` run, the
 *     stations it added, changed or deleted (the loader reads them from
 *     station/charger.last_run_id after each build: loader.h), the last
 *     FEED_RUNS_KEPT runs, a run always delivered whole.
 * A cursor is "<ms>-<seq>.<run>": the last status entry and the last run
 * delivered. Reading merges the two logs by time (entry id ms, run finish
 * ms) and never repeats or skips an entry of either, whatever the
 * interleaving. A cursor older than what is retained (a status position
 * before the ring's floor, a run before the oldest run kept) is refused
 * with the oldest cursor still served. Readers take a mutex for the copy;
 * the follower and the loader take it to append. New entries wake the
 * workers through `notify`. */
#ifndef APID_FEED_H
#define APID_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define FEED_ID_MAX	   32	 /* station and charger ids, with the NUL */
#define FEED_CURSOR_MAX	   64	 /* "<ms>-<seq>.<run>" with the NUL */
#define FEED_RUNS_KEPT	   8	 /* master-data runs retained */
#define FEED_RUN_MAX_ITEMS 10000 /* more stations in one run: one "reload" event */

struct feed_cursor {
	uint64_t ms, seq; /* the last status entry delivered (Redis stream id) */
	int64_t run;	  /* the last master-data run delivered */
};

enum feed_kind {
	FEED_STATUS,	      /* a charger's status changed */
	FEED_STATION_ADDED,   /* a station appeared on the map */
	FEED_STATION_CHANGED, /* its fields or chargers changed */
	FEED_STATION_DELETED, /* it left the map (deleted, or no live charger) */
	FEED_RELOAD,	      /* a run changed more than FEED_RUN_MAX_ITEMS stations */
};

struct feed_event {
	enum feed_kind kind;
	char stat_id[FEED_ID_MAX];
	char chger_id[FEED_ID_MAX]; /* status only */
	int stat;		    /* status only: the code */
	int64_t stat_unix;	    /* status only: statUpdDt */
	int64_t run_id;		    /* master data only */
	int64_t at_ms;		    /* stream id ms, or the run's finish */
};

/* One station of a run, for feed_add_run. */
struct feed_station_change {
	char stat_id[FEED_ID_MAX];
	enum feed_kind kind;
};

/* Called on the follower's or the loader's thread after entries were
 * added: wake the readers. */
typedef void (*feed_notify_fn)(void *arg);

struct feed;
struct rds;

/* `retain`: status entries kept (at least 1). NULL when memory runs out. */
struct feed *feed_new(size_t retain, feed_notify_fn notify, void *arg) MUSTCHECK;
/* After the follower is stopped (it appends) and the workers are joined
 * (they read). NULL-safe. */
void feed_free(struct feed *f);

/* ---- the follower's side (live.c) ---- */

#define FEED_STREAM_ID_MAX 48 /* "<ms>-<seq>" with the NUL */

/* One status entry of the stream, parsed (feed_parse_entry). */
struct feed_entry {
	uint64_t ms, seq;
	struct feed_event ev;
};

/* After each connect, on the follower's connection. The first time, load
 * the last `retain` entries and set `pos` to the newest ("0-0": none);
 * later, `pos` is the last entry read before the connection was lost: note
 * whether entries after it are gone (the stream trimmed past it, or
 * emptied), so that cursors from before the gap get 410. False with the
 * reason in err when Redis fails. */
bool feed_on_connect(struct feed *f, struct rds *redis, char pos[FEED_STREAM_ID_MAX], char *err,
	       size_t errlen) MUSTCHECK;
/* Append entries read after the previous ones (ids increasing; ones at or
 * below the newest are ignored) and wake the readers when any was new. */
void feed_append(struct feed *f, const struct feed_entry *entries, size_t n);

/* ---- the loader's side ---- */

/* The newest run added, -1 before the first. */
int64_t feed_last_run(struct feed *f);
/* Add a finished run's station changes (sorted by station id; n may be 0),
 * or a reload event when `reload`. `floor_run` (>= 0): the newest run not
 * retained, on the first call (0: every run is). Runs must come in id order;
 * one at or below the last is ignored. False: no memory. */
bool feed_add_run(struct feed *f, int64_t run_id, int64_t finished_ms,
		  const struct feed_station_change *items, size_t n, bool reload,
		  int64_t floor_run) MUSTCHECK;

/* ---- cursors ---- */

bool feed_cursor_parse(const char *text, struct feed_cursor *out) MUSTCHECK;
size_t feed_cursor_format(const struct feed_cursor *c, char out[FEED_CURSOR_MAX]);

/* ---- reading (any thread) ---- */

enum feed_read {
	FEED_READ_OK,	     /* *pos advanced past what was emitted */
	FEED_READ_GONE,	     /* *pos is older than what is retained: *oldest says where to go */
	FEED_READ_NOT_READY, /* the status history was never loaded (Redis unreachable) */
};

/* `at`: the position after this event. Called with the feed's lock held:
 * only format, never call back into the feed. */
typedef void (*feed_emit_fn)(void *arg, const struct feed_event *ev, const struct feed_cursor *at);

/* Emit the events after *pos in order, up to `max` (a run is never split:
 * the last one may go past it), and advance *pos. *emitted counts them. */
enum feed_read feed_read(struct feed *f, struct feed_cursor *pos, size_t max, feed_emit_fn emit,
			 void *arg, size_t *emitted, struct feed_cursor *oldest);
/* The position after the newest event; false before the history loaded. */
bool feed_head(struct feed *f, struct feed_cursor *out);

/* ---- the stream's arithmetic (the follower's, and tests') ---- */

/* "1732500000123-4" to (ms, seq). */
bool feed_parse_stream_id(const char *text, uint64_t *ms, uint64_t *seq) MUSTCHECK;

/* A change-stream entry [id, [s, statId, c, chgerId, st, stat, t, unix]]
 * (rkeys.h) as a status event; false when malformed. */
struct redisReply;
bool feed_parse_entry(const struct redisReply *entry, uint64_t *ms, uint64_t *seq,
		      struct feed_event *ev) MUSTCHECK;

#endif
