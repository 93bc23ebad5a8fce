/* rkeys: the Redis key layout and value formats, in one place.
 * realtimed writes these keys, apid and ingestd read them; no other file
 * spells a key. Every key starts with "ev:" so one Redis can be shared and
 * an operator can SCAN MATCH ev:* safely.
 *
 *   ev:st:{statId}          STRING the station's live state, one key per
 *                                 station, layout 3 (written with MSET, one
 *                                 per block of stations: a string costs
 *                                 Redis about 40% less to create and
 *                                 replace than a hash of the same fields):
 *                                 "<standby>:<total>:<quick_standby>", then
 *                                 per charger " <chgerId>=<stat>:<statUpdDt>[:q]"
 *                                 (status code 0..99, update time as Unix
 *                                 seconds UTC, ":q" when the charger is
 *                                 quick: output >= MODEL_QUICK_KW, from
 *                                 getChargerInfo), e.g.
 *                                 "1:2:0 01=2:1732500000:q 02=3:1732499000".
 *                                 A chgerId is ASCII letters and digits
 *                                 (record.c), so ' ' and '=' never occur in
 *                                 one. realtimed rewrites the whole value
 *                                 from its memory (it is the only writer,
 *                                 fenced); a status only when newer. A
 *                                 station with no charger left is deleted.
 *                                 Layout 2 kept a HASH here (a field per
 *                                 charger, "_av" the availability) and
 *                                 layout 1 also ev:av:{statId} and
 *                                 ev:qk:{statId}: realtimed sweeps when the
 *                                 heartbeat's "layout" is not
 *                                 RKEYS_LIVE_LAYOUT, and after that sweep
 *                                 deletes what is left of those (prune.c).
 *                                 Readers take a non-string key as absent.
 *   ev:changes              STREAM one entry per applied change, fields
 *                                 s=statId c=chgerId st=stat t=statUpdDt
 *                                 (Unix s); XADD MAXLEN ~ RKEYS_CHANGES_MAXLEN.
 *                                 A charger removed (no longer listed
 *                                 upstream) gets s=statId c=chgerId gone=1
 *                                 (no st, no t): followers that know it drop
 *                                 the charger, the others skip the entry.
 *   ev:heartbeat            HASH  realtimed's progress:
 *                                 poll_ok_ms (Unix ms: start of the last
 *                                 complete poll or sweep, whose every status
 *                                 is in Redis; a poll's window reaches back
 *                                 from there), lag_s (seconds the newest
 *                                 known status trails now), sweep_ok_ms (start
 *                                 of the last complete full sweep), instance
 *                                 (lease token of the writer), poll_err_ms and
 *                                 poll_error (last failed poll, one line),
 *                                 sample_started / sample_done (Unix s of the
 *                                 congestion sample begun / finished last),
 *                                 samples (samples finished, ever),
 *                                 restored_ms (Unix ms: realtimed seeded the
 *                                 counters from the latest PostgreSQL
 *                                 snapshot, or found none, in this Redis),
 *                                 layout (RKEYS_LIVE_LAYOUT, written with
 *                                 sweep_ok_ms: the station keys are of
 *                                 this layout).
 *   ev:lease                STRING the active realtimed's random token, SET NX
 *                                 PX; every write batch checks it first.
 *   ev:fenced               STRING counter: write batches refused because the
 *                                 lease held another token (the fence touches
 *                                 it to abort the batch's MULTI, WATCHed).
 *   ev:writers              LIST  the token of each status write batch, in
 *                                 the batch's MULTI (only with
 *                                 REALTIMED_TOKEN_LOG > 0, trimmed to that
 *                                 many): proves writers never interleave.
 *   ev:cg:{statId}:{chgerId} STRING congestion counters: 168 slots
 *                                 (weekday 0=Monday..6 x hour 0..23, Korea
 *                                 time), slot i holding three big-endian u12
 *                                 counters (samples, uses, out of service)
 *                                 at u12 index 3i, 3i+1 and 3i+2 (enum
 *                                 rkeys_cg_counter); written with BITFIELD
 *                                 ... OVERFLOW SAT INCRBY u12 #n, read with
 *                                 GET and rkeys_congestion_counter(). Then
 *                                 one big-endian u32 at u32 index 189 (byte
 *                                 756): the Unix second of the last sample
 *                                 counted, so a sample retried or resumed by
 *                                 another instance never counts twice. 760
 *                                 bytes of value, created at full size (SET
 *                                 of zeros: BITFIELD growing a string would
 *                                 allocate twice that): the same 768-byte
 *                                 allocation as the 676-byte layout before
 *                                 it, under 1 KiB per charger all told.
 *                                 u12 saturates at 4,095: at one sample per
 *                                 10 minutes a slot takes 6 a week, 13 years.
 *                                 Layout 1 (676 bytes: u16 samples and uses
 *                                 at u16 index 2i and 2i+1, then the u32 at
 *                                 byte 672) is still read (out of service 0)
 *                                 until realtimed rewrites the value.
 */
#ifndef EV_RKEYS_H
#define EV_RKEYS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"

#define RKEYS_PREFIX "ev:"
#define RKEYS_STATION_PREFIX "ev:st:"
/* The station keys' layout, as the heartbeat's "layout" field names it. */
#define RKEYS_LIVE_LAYOUT "3"
/* A quick charger's status suffix. */
#define RKEYS_QUICK_SUFFIX ":q"
/* Layout 1's per-station keys, only deleted now (prune.c). */
#define RKEYS_LEGACY_AVAIL_PREFIX "ev:av:"
#define RKEYS_LEGACY_QUICK_PREFIX "ev:qk:"
#define RKEYS_CONGESTION_PREFIX "ev:cg:"
#define RKEYS_CHANGES "ev:changes"
#define RKEYS_HEARTBEAT "ev:heartbeat"
#define RKEYS_LEASE "ev:lease"
#define RKEYS_FENCED "ev:fenced"
#define RKEYS_WRITERS "ev:writers"

/* The change stream keeps about this many entries (XADD MAXLEN ~): at a
 * change a second, over a day of history for followers that fall behind. */
#define RKEYS_CHANGES_MAXLEN 100000

/* 7 weekdays x 24 hours. */
#define RKEYS_CONGESTION_SLOTS 168

/* The counters of one slot, in value order (u12 index 3 * slot + counter). */
enum rkeys_cg_counter {
	RKEYS_CG_SAMPLES,        /* samples taken in the slot */
	RKEYS_CG_USES,           /* of them, CHARGING_IN_PROGRESS */
	RKEYS_CG_OUT_OF_SERVICE, /* of them, model_status_out_of_service() */
	RKEYS_CG_COUNTERS
};
#define RKEYS_CONGESTION_COUNTER_BITS 12
#define RKEYS_CONGESTION_COUNTER_MAX 4095
#define RKEYS_CONGESTION_BYTES                                                                 \
	(RKEYS_CONGESTION_SLOTS * RKEYS_CG_COUNTERS * RKEYS_CONGESTION_COUNTER_BITS / 8)
/* u32 index of the last-sample marker, and the whole value's size. */
#define RKEYS_CONGESTION_MARK_U32 (RKEYS_CONGESTION_BYTES / 4)
#define RKEYS_CONGESTION_VALUE_BYTES (RKEYS_CONGESTION_BYTES + 4)
/* Layout 1: u16 (samples, uses) pairs, then the u32 marker at byte 672. */
#define RKEYS_CONGESTION_V1_VALUE_BYTES (RKEYS_CONGESTION_SLOTS * 2 * 2 + 4)

/* u12 index of a slot's counter, as BITFIELD's "#n" takes it. */
static inline int rkeys_congestion_counter_index(int slot, enum rkeys_cg_counter which)
{
	return slot * RKEYS_CG_COUNTERS + (int)which;
}

/* One counter of a value of len bytes: layout 1 when len is exactly
 * RKEYS_CONGESTION_V1_VALUE_BYTES (out of service reads 0), otherwise the
 * current layout, where bytes past len read as zero (a value cut short, or
 * a caller's counters-only buffer of RKEYS_CONGESTION_BYTES). */
static inline unsigned rkeys_congestion_counter(const void *value, size_t len, int slot,
						enum rkeys_cg_counter which)
{
	const unsigned char *v = value;
	if (!v || slot < 0 || slot >= RKEYS_CONGESTION_SLOTS)
		return 0;
	if (len == RKEYS_CONGESTION_V1_VALUE_BYTES) {
		if (which == RKEYS_CG_OUT_OF_SERVICE)
			return 0;
		size_t at = ((size_t)slot * 2 + (size_t)which) * 2;
		return (unsigned)v[at] << 8 | v[at + 1];
	}
	size_t bit = (size_t)rkeys_congestion_counter_index(slot, which) *
		     RKEYS_CONGESTION_COUNTER_BITS;
	size_t at = bit / 8; /* the 12 bits start at bit 0 or 4 of this byte */
	unsigned hi = at < len ? v[at] : 0, lo = at + 1 < len ? v[at + 1] : 0;
	return ((hi << 8 | lo) >> (4 - bit % 8)) & RKEYS_CONGESTION_COUNTER_MAX;
}

/* The last-sample second of a value (either layout); 0 when too short. */
static inline uint32_t rkeys_congestion_last_sample(const void *value, size_t len)
{
	const unsigned char *v = value;
	size_t at = len == RKEYS_CONGESTION_V1_VALUE_BYTES ? len - 4 : RKEYS_CONGESTION_BYTES;
	if (!v || len < at + 4)
		return 0;
	return (uint32_t)v[at] << 24 | (uint32_t)v[at + 1] << 16 | (uint32_t)v[at + 2] << 8 |
	       v[at + 3];
}

/* Write one counter into a current-layout value (at least
 * RKEYS_CONGESTION_BYTES long), saturated at RKEYS_CONGESTION_COUNTER_MAX
 * as BITFIELD ... OVERFLOW SAT would leave it; the other counters sharing
 * its bytes are kept. */
static inline void rkeys_congestion_counter_put(void *value, int slot, enum rkeys_cg_counter which,
						unsigned n)
{
	unsigned char *v = value;
	if (!v || slot < 0 || slot >= RKEYS_CONGESTION_SLOTS)
		return;
	if (n > RKEYS_CONGESTION_COUNTER_MAX)
		n = RKEYS_CONGESTION_COUNTER_MAX;
	size_t bit = (size_t)rkeys_congestion_counter_index(slot, which) *
		     RKEYS_CONGESTION_COUNTER_BITS;
	size_t at = bit / 8;
	if (bit % 8 == 0) {
		v[at] = (unsigned char)(n >> 4);
		v[at + 1] = (unsigned char)((v[at + 1] & 0x0f) | (n & 0x0f) << 4);
	} else {
		v[at] = (unsigned char)((v[at] & 0xf0) | n >> 8);
		v[at + 1] = (unsigned char)n;
	}
}

/* Write the last-sample second of a current-layout value
 * (RKEYS_CONGESTION_VALUE_BYTES long). */
static inline void rkeys_congestion_last_sample_put(void *value, uint32_t second)
{
	unsigned char *v = (unsigned char *)value + RKEYS_CONGESTION_BYTES;
	v[0] = (unsigned char)(second >> 24);
	v[1] = (unsigned char)(second >> 16);
	v[2] = (unsigned char)(second >> 8);
	v[3] = (unsigned char)second;
}

/* Longest key: prefix + 8-char statId (upstream ids are 8; allow slack) +
 * ':' + chgerId. Callers use a char[RKEYS_KEY_MAX]. */
#define RKEYS_KEY_MAX 96

/* text[0..len) at out as snprintf would put it: cut to fit outlen,
 * terminated; returns len. */
static inline int rkeys_put(char *out, size_t outlen, const char *text, size_t len)
{
	if (outlen > 0) {
		size_t fit = len < outlen ? len : outlen - 1;
		memcpy(out, text, fit);
		out[fit] = '\0';
	}
	return (int)len;
}

/* (The key and the status value are written for every charger of a sweep:
 * by hand, not with snprintf.) */
static inline int rkeys_station(char *out, size_t outlen, const char *stat_id)
{
	size_t prefix = sizeof(RKEYS_STATION_PREFIX) - 1, id = strlen(stat_id);
	if (outlen > 0) {
		size_t room = outlen - 1;
		size_t a = prefix < room ? prefix : room;
		size_t b = id < room - a ? id : room - a;
		memcpy(out, RKEYS_STATION_PREFIX, a);
		memcpy(out + a, stat_id, b);
		out[a + b] = '\0';
	}
	return (int)(prefix + id);
}

static inline int rkeys_congestion(char *out, size_t outlen, const char *stat_id,
				   const char *chger_id)
{
	return snprintf(out, outlen, RKEYS_CONGESTION_PREFIX "%s:%s", stat_id, chger_id);
}

/* Slot of a Korea-time weekday (0=Monday) and hour. */
static inline int rkeys_congestion_slot(int weekday, int hour)
{
	return weekday * 24 + hour;
}

/* A charger's live status value: "<stat>:<unix seconds>[:q]". */
static inline int rkeys_status_format(char *out, size_t outlen, int stat, int64_t updated_unix,
				      bool quick)
{
	if (stat < 0 || updated_unix < 0)
		return snprintf(out, outlen, "%d:%lld%s", stat, (long long)updated_unix,
				quick ? RKEYS_QUICK_SUFFIX : "");
	char value[48];
	size_t n = dec_uint(value, (uint64_t)stat);
	value[n++] = ':';
	n += dec_uint(value + n, (uint64_t)updated_unix);
	if (quick) {
		memcpy(value + n, RKEYS_QUICK_SUFFIX, sizeof(RKEYS_QUICK_SUFFIX) - 1);
		n += sizeof(RKEYS_QUICK_SUFFIX) - 1;
	}
	return rkeys_put(out, outlen, value, n);
}

/* ---- a station's value (layout 3) ---- */

/* A station's counts: the value's head. */
struct rkeys_avail {
	int standby, total, quick_standby;
};

/* One charger of a station's value; id points into the value. */
struct rkeys_charger {
	const char *id;
	size_t id_len;
	int stat;
	int64_t updated;
	bool quick;
};

/* Room the writers below need at out. */
#define RKEYS_LIVE_HEAD_MAX 40
#define RKEYS_LIVE_CHARGER_MAX (2 + 64 + 48)

/* A non-negative decimal in v[*at..len), at most 18 digits; *at moves past it. */
static inline bool rkeys_dec_scan(const char *v, size_t len, size_t *at, int64_t *out)
{
	size_t i = *at;
	int64_t n = 0;
	while (i < len && i - *at < 18 && v[i] >= '0' && v[i] <= '9')
		n = n * 10 + (v[i++] - '0');
	if (i == *at || (i < len && v[i] >= '0' && v[i] <= '9'))
		return false;
	*at = i;
	*out = n;
	return true;
}

/* "<standby>:<total>:<quick_standby>" at out (RKEYS_LIVE_HEAD_MAX); its length. */
static inline size_t rkeys_live_head_put(char *out, unsigned standby, unsigned total,
					 unsigned quick_standby)
{
	size_t n = dec_uint(out, standby);
	out[n++] = ':';
	n += dec_uint(out + n, total);
	out[n++] = ':';
	n += dec_uint(out + n, quick_standby);
	return n;
}

/* " <chgerId>=<stat>:<updated>[:q]" at out (RKEYS_LIVE_CHARGER_MAX; an id
 * longer than 64 bytes is cut); its length. */
static inline size_t rkeys_live_charger_put(char *out, const char *id, size_t id_len, int stat,
					    int64_t updated, bool quick)
{
	size_t n = 0;
	out[n++] = ' ';
	if (id_len > 64)
		id_len = 64;
	memcpy(out + n, id, id_len);
	n += id_len;
	out[n++] = '=';
	n += (size_t)rkeys_status_format(out + n, 48, stat, updated, quick);
	return n;
}

/* The head of a station's value: its counts; *at moves past them. */
static inline bool rkeys_live_head(const char *v, size_t len, struct rkeys_avail *av, size_t *at)
{
	int64_t x[3];
	size_t i = 0;
	for (int k = 0; k < 3; k++) {
		if ((k > 0 && (i >= len || v[i++] != ':')) || !rkeys_dec_scan(v, len, &i, &x[k]) ||
		    x[k] > INT32_MAX)
			return false;
	}
	if (i < len && v[i] != ' ')
		return false;
	*av = (struct rkeys_avail){(int)x[0], (int)x[1], (int)x[2]};
	*at = i;
	return true;
}

/* The next charger of a station's value from v[*at..len) (after the head):
 * 1 and *c filled, 0 at the end, -1 when the rest is malformed. */
static inline int rkeys_live_next(const char *v, size_t len, size_t *at, struct rkeys_charger *c)
{
	size_t i = *at;
	if (i >= len)
		return 0;
	if (v[i++] != ' ')
		return -1;
	size_t id = i;
	while (i < len && v[i] != '=' && v[i] != ' ')
		i++;
	if (i == id || i >= len || v[i] != '=')
		return -1;
	c->id = v + id;
	c->id_len = i - id;
	i++;
	int64_t stat, when;
	if (!rkeys_dec_scan(v, len, &i, &stat) || stat > 99 || i >= len || v[i++] != ':')
		return -1;
	bool before_1970 = i < len && v[i] == '-';
	i += before_1970;
	if (!rkeys_dec_scan(v, len, &i, &when))
		return -1;
	if (before_1970)
		when = -when;
	c->quick = false;
	if (i + 1 < len && v[i] == ':' && v[i + 1] == 'q' && (i + 2 == len || v[i + 2] == ' ')) {
		c->quick = true;
		i += 2;
	}
	if (i < len && v[i] != ' ')
		return -1;
	c->stat = (int)stat;
	c->updated = when;
	*at = i;
	return 1;
}

/* The charger chger_id of a station's value: true and *c when present. */
static inline bool rkeys_live_find(const char *v, size_t len, const char *chger_id,
				   struct rkeys_charger *c)
{
	struct rkeys_avail av;
	size_t at, id_len = strlen(chger_id);
	if (!rkeys_live_head(v, len, &av, &at))
		return false;
	while (rkeys_live_next(v, len, &at, c) == 1)
		if (c->id_len == id_len && memcmp(c->id, chger_id, id_len) == 0)
			return true;
	return false;
}

#endif
