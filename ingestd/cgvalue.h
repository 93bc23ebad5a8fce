/* cgvalue: one congestion counter of Redis as ingestd reads and writes it.
 * Owns the decoding of an ev:cg:{statId}:{chgerId} key into its two ids and
 * of its value (rkeys.h: 168 slots of samples, uses and out of service,
 * then the big-endian u32 last-sample second; the 760-byte layout 2, or the
 * 676-byte layout 1 that realtimed converts when it next samples, read with
 * rkeys_congestion_counter) into numbers, the encoding back into layout-2
 * bytes (restore: counters above 4,095, which only layout 1 could hold,
 * saturate as realtimed's conversion does), the checks that keep a bad
 * key or value out of a snapshot (each refusal has a reason code for
 * ingest_reject), and the number rendering of the COPY hot path. Pure: no
 * I/O, no allocation. */
#ifndef INGESTD_CGVALUE_H
#define INGESTD_CGVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "rkeys.h"

/* The longest statId and chgerId accepted (upstream ids are 8 and 2). */
#define CGVALUE_ID_MAX 40

/* A decoded value. */
struct cgvalue {
	uint16_t samples[RKEYS_CONGESTION_SLOTS]; /* by rkeys_congestion_slot(weekday, hour) */
	uint16_t uses[RKEYS_CONGESTION_SLOTS];
	uint16_t out_of_service[RKEYS_CONGESTION_SLOTS]; /* 0 in a layout-1 value */
	uint32_t last_sample; /* Unix second of the last sample counted; 0: never */
};

/* One charger of a station and its counters, as the reader hands them to
 * the snapshot writer and the snapshot reader to the restore; borrowed. */
struct cgvalue_charger {
	const char *chger_id;
	const struct cgvalue *value;
};

/* Why a key or value is refused: the ingest_reject reason. */
enum cgvalue_reject {
	CGVALUE_OK,
	CGVALUE_BAD_KEY,    /* "bad_key": not ev:cg:<statId>:<chgerId> with usable ids */
	CGVALUE_BAD_TYPE,   /* "bad_type": not a string (WRONGTYPE) */
	CGVALUE_BAD_LENGTH, /* "bad_length": not RKEYS_CONGESTION_VALUE_BYTES bytes
			     * (nor RKEYS_CONGESTION_V1_VALUE_BYTES) */
	CGVALUE_BAD_COUNTS, /* "bad_counts": more uses, or more out of service,
			     * than samples in a slot */
};

/* The reason code stored in ingest_reject.reason. */
const char *cgvalue_reject_name(enum cgvalue_reject reason);

/* Split `key` (len bytes, not necessarily NUL-terminated) into statId and
 * chgerId at the first ':' after RKEYS_CONGESTION_PREFIX. Both must be 1 to
 * CGVALUE_ID_MAX bytes of valid UTF-8 without control characters (they
 * become COPY text and Redis keys again). On success the ids are copied,
 * NUL-terminated, into stat_id and chger_id (CGVALUE_ID_MAX + 1 bytes each);
 * otherwise why says what is wrong. */
bool cgvalue_parse_key(const char *key, size_t len, char *stat_id, char *chger_id, char *why,
		       size_t whylen) MUSTCHECK;

/* Decode a value of either layout. CGVALUE_BAD_LENGTH or CGVALUE_BAD_COUNTS
 * (with why, e.g. "slot 37 (Tuesday 13 h): 5 uses of 4 samples") or
 * CGVALUE_OK. */
enum cgvalue_reject cgvalue_decode(const void *bytes, size_t len, struct cgvalue *out, char *why,
				   size_t whylen) MUSTCHECK;

/* The layout-2 bytes of `v`, RKEYS_CONGESTION_VALUE_BYTES of them. */
void cgvalue_encode(const struct cgvalue *v, unsigned char *out);

/* Sums over all slots: of the samples, and of the out-of-service ones. */
uint64_t cgvalue_samples_total(const struct cgvalue *v);
uint64_t cgvalue_out_of_service_total(const struct cgvalue *v);

/* Decimal text of n into out (6 bytes: up to 65535 and a NUL); returns the
 * digits written. For the COPY rows: faster than snprintf. */
size_t cgvalue_u16_text(uint16_t n, char *out);

/* Lowercase hex of len bytes into out (2 * len + 1 bytes): a refused value's
 * raw text for ingest_reject. */
void cgvalue_hex(const void *bytes, size_t len, char *out);

#endif
