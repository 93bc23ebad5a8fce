/* feed: the change feed's history, shared by every worker (changes.h
 * answers GET /stations/changes from it).
 * Owns two ordered logs and the cursor over both:
 *   - charger status changes: a ring of the last `retain` entries of
 *     realtimed's ev:changes stream (rkeys.h), loaded at start and then
 *     followed by a thread of its own (blocking hiredis connection, XREAD
 *     BLOCK), with the Redis entry id as position, so a cursor means the
 *     same on every apid instance;
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
#include "meters.h"

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

struct feed_config {
	const char *redis_url; /* borrowed for the feed's life */
	int timeout_ms;
	size_t retain; /* status entries kept */
};

struct feed;

struct feed *feed_start(const struct feed_config *cfg, const struct meters *meters,
			feed_notify_fn notify, void *arg) MUSTCHECK;
/* Stop the follower thread (nothing wakes the readers after it); the
 * history stays readable until feed_free. NULL-safe, idempotent. */
void feed_stop(struct feed *f);
void feed_free(struct feed *f); /* NULL-safe */

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

/* ---- the follower's arithmetic, for tests ---- */

/* "1732500000123-4" to (ms, seq). */
bool feed_parse_stream_id(const char *text, uint64_t *ms, uint64_t *seq) MUSTCHECK;

/* A change-stream entry [id, [s, statId, c, chgerId, st, stat, t, unix]]
 * (rkeys.h) as a status event; false when malformed (live.c reads the
 * stream with it too). */
struct redisReply;
bool feed_parse_entry(const struct redisReply *entry, uint64_t *ms, uint64_t *seq,
		      struct feed_event *ev) MUSTCHECK;

#endif
