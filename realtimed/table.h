/* table: realtimed's memory of every charger it has seen: the newest status
 * and update time, whether the charger is quick (known only from a full
 * sweep), and whether that state still has to reach Redis.
 *
 * The table is the write queue too: an update that is newer than what the
 * table holds marks the entry dirty and appends it to a FIFO; the writer
 * (apply.c) takes dirty entries in order, and puts them back when a write
 * fails. So memory is one entry per charger (72 bytes), never a queue
 * that grows with the upstream's speed, and "re-apply the last sweep"
 * after Redis lost its data is marking every entry dirty.
 *
 * Every put (newer or not) stamps the entry with the table's current
 * stamp; a sweep takes a new stamp when it starts, so after it completes an
 * entry stamped otherwise was not listed (prune.c): it is marked gone and
 * queued, and the writer removes it from Redis. A re-apply skips a gone
 * entry; listed again, it comes back as new.
 *
 * The table also holds what Redis stores of each charger (its "stored"
 * status, update time and quick flag) as the active instance
 * knows it: loaded from Redis when it becomes active (mirror.c), then kept
 * by the writer as it queues each write (apply.c). The writer is Redis'
 * only one (fenced), so "newer than stored", each station's availability
 * and each station's whole value (rkeys.h: the writer replaces it) are
 * decided in memory. Each station chains its entries.
 *
 * Open addressing over a power-of-two slot array of entry indexes; entries
 * live in one growable array and are never freed (a gone one keeps its
 * slot). Single-threaded. */
#ifndef REALTIMED_TABLE_H
#define REALTIMED_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "buf.h"

/* Longest ids kept (record.c's limits: statId 20, chgerId 10). */
#define TABLE_STAT_ID_MAX  20
#define TABLE_CHGER_ID_MAX 10

enum {
	TABLE_QUICK_KNOWN = 1u << 0, /* quickness came from a getChargerInfo item */
	TABLE_QUICK = 1u << 1,	     /* output >= MODEL_QUICK_KW */
	TABLE_SEED = 1u << 2,	     /* dirtied by a sweep or a re-apply: a first
					sight in Redis is no change for the stream */
	TABLE_DIRTY = 1u << 3,	     /* queued for Redis */
	TABLE_GONE = 1u << 4,	     /* absent from a complete sweep: removed from Redis
					(queued until the writer took it) */
};

/* stored_flags: what Redis holds of the charger. */
enum {
	TABLE_STORED = 1u << 0,	      /* in ev:st:{statId}, as stored_stat:stored_updated */
	TABLE_STORED_QUICK = 1u << 1, /* its value carries the quick flag (rkeys.h) */
};

struct table_entry {
	char stat_id[TABLE_STAT_ID_MAX + 1];
	char chger_id[TABLE_CHGER_ID_MAX + 1];
	int64_t updated;	/* statUpdDt, Unix seconds */
	int64_t stored_updated; /* what Redis holds (with TABLE_STORED) */
	uint32_t station;	/* stations.h index */
	uint32_t next_dirty;	/* FIFO link: index + 1, 0 = end */
	uint32_t next_in_station; /* the station's chain: index + 1, 0 = end */
	uint16_t seen;		/* the table's stamp at the last put */
	uint8_t stat;		/* enum model_status */
	uint8_t flags;
	uint8_t stored_stat;
	uint8_t stored_flags;
};

/* One status as an upstream item gave it. */
struct table_item {
	const char *stat_id, *chger_id;
	size_t stat_id_len, chger_id_len;
	int stat;
	int64_t updated;
	bool quick_known, quick;
	bool from_sweep;
};

enum table_put {
	TABLE_NEWER,  /* stored and queued for Redis */
	TABLE_KEPT,   /* not newer than what the table holds: nothing to do */
	TABLE_BAD_ID, /* an id longer than the limits, or empty */
	TABLE_NO_MEMORY,
};

struct table;

struct table *table_new(void) MUSTCHECK;
void table_free(struct table *t);

enum table_put table_put(struct table *t, const struct table_item *item) MUSTCHECK;
/* The entry of a charger, or NULL. */
const struct table_entry *table_find(const struct table *t, const char *stat_id,
				     const char *chger_id);

/* A new stamp for the puts from now on (a sweep begins); returns it. */
uint16_t table_new_stamp(struct table *t);
/* Every charger not gone whose last put was not stamped stamp (a complete
 * sweep's): marked gone and queued for the writer, as a change. Returns how
 * many. */
size_t table_forget_unlisted(struct table *t, uint16_t stamp);

/* Take the oldest dirty entry (its DIRTY flag cleared): its index, or -1. */
long table_take_dirty(struct table *t);
/* Queue an entry again (a write failed); no-op when already queued. */
void table_requeue(struct table *t, long index);
/* Queue every entry, as seeds (Redis lost its data). */
void table_mark_all_dirty(struct table *t);

const struct table_entry *table_at(const struct table *t, long index);
size_t table_count(const struct table *t);
size_t table_dirty_count(const struct table *t);
/* The newest statUpdDt held (0 when empty). */
int64_t table_newest(const struct table *t);

/* ---- what Redis holds ---- */

/* Forget every stored state (before a load). */
void table_stored_reset(struct table *t);
/* A charger a load found in Redis: its entry (added when unknown: not
 * dirty, not listed by a sweep in progress; a newer stored status is
 * adopted) gets the stored state. Returns its station (entry->station),
 * 0 on a bad id or no memory. */
uint32_t table_learn(struct table *t, const char *stat_id, size_t stat_id_len, const char *chger_id,
		 size_t chger_id_len, int stat, int64_t updated, bool stored_quick) MUSTCHECK;
/* A write is queued: Redis will hold the entry's status (when status),
 * and its quick flag as given. Its station becomes pending (its value is
 * rewritten). */
void table_store(struct table *t, long index, bool status, bool stored_quick);
/* Redis will no longer hold the charger: its station becomes pending when
 * rewrite. */
void table_unstore(struct table *t, long index, bool rewrite);

/* Each station's availability (entry->station) is counted from the stored
 * state: chargers, standing by, quick and standing by. A station whose
 * value is to be written (a charger stored or removed, or a load found it
 * differing) is pending until the writer takes it. */
uint32_t table_av_take(struct table *t); /* the oldest pending station, or 0 */
/* Take this station when pending: true when it was. */
bool table_av_claim(struct table *t, uint32_t station);
size_t table_av_pending(const struct table *t);
/* The station's value as Redis is to hold it (rkeys.h: the counts, then
 * each stored charger) into out (reset first), its id into *stat_id;
 * returns the chargers in it, 0 when none (the key goes; out is empty)
 * or out of memory (!buf_ok(out)). */
size_t table_station_format(const struct table *t, uint32_t station, const char **stat_id,
			    struct buf *out);
/* The load read this value head (the counts, "" when the value was
 * malformed; NULL: no value): pending when it differs. */
void table_av_check(struct table *t, uint32_t station, const char *stored);

#endif
