/* rkeys: the Redis key layout and value formats, in one place.
 * realtimed writes these keys, apid and ingestd read them; no other file
 * spells a key. Every key starts with "ev:" so one Redis can be shared and
 * an operator can SCAN MATCH ev:* safely.
 *
 *   ev:st:{statId}          HASH  the station's live state, one key per
 *                                 station (a re-apply into an empty Redis
 *                                 costs it half the CPU of three keys):
 *                                 - one field per charger: field chgerId,
 *                                 value "<stat>:<statUpdDt>[:q]" (status
 *                                 code 1..9, update time as Unix seconds
 *                                 UTC, ":q" when the charger is quick:
 *                                 output >= MODEL_QUICK_KW, from
 *                                 getChargerInfo), e.g. "2:1732500000:q". A
 *                                 status is written only when its time is
 *                                 newer than the stored one (the writer
 *                                 compares).
 *                                 - field "_av" (RKEYS_AVAIL_FIELD; a
 *                                 chgerId is alphanumeric, so never "_..."):
 *                                 "<standby>:<total>:<quick_standby>", the
 *                                 station's availability, rewritten with the
 *                                 chargers' fields in the same transaction.
 *                                 A hash with no charger left is deleted.
 *                                 Layout 1 kept the quick flag in a SET
 *                                 ev:qk:{statId} and the availability in a
 *                                 STRING ev:av:{statId}; realtimed deletes
 *                                 those (prune.c) after its next complete
 *                                 sweep, which also writes the ":q" flags
 *                                 (until then a layout-1 value reads as not
 *                                 quick).
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
 *                                 snapshot, or found none, in this Redis).
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
/* A station hash's fields that are not a charger's start with this (a
 * chgerId is alphanumeric); its availability field; a quick charger's
 * value suffix. */
#define RKEYS_RESERVED_PREFIX "_"
#define RKEYS_AVAIL_FIELD RKEYS_RESERVED_PREFIX "av"
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

/* Is a station hash's field a charger's (not RKEYS_AVAIL_FIELD or another
 * reserved "_" field)? */
static inline bool rkeys_is_charger_field(const char *field)
{
	return field[0] != RKEYS_RESERVED_PREFIX[0];
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

/* Parses a charger's value; quick (may be NULL) gets the ":q" flag. */
static inline bool rkeys_status_parse(const char *text, int *stat, int64_t *updated_unix,
				      bool *quick)
{
	char *end = NULL;
	long code = strtol(text, &end, 10);
	if (end == text || *end != ':' || code < 0 || code > 99)
		return false;
	const char *rest = end + 1;
	long long when = strtoll(rest, &end, 10);
	bool is_quick = *end && strcmp(end, RKEYS_QUICK_SUFFIX) == 0;
	if (end == rest || (*end && !is_quick))
		return false;
	*stat = (int)code;
	*updated_unix = when;
	if (quick)
		*quick = is_quick;
	return true;
}

/* Availability value: "<standby>:<total>:<quick_standby>". */
static inline bool rkeys_avail_parse(const char *text, int *standby, int *total, int *quick_standby)
{
	return sscanf(text, "%d:%d:%d", standby, total, quick_standby) == 3;
}

#endif
