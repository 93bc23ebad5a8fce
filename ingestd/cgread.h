/* cgread: every congestion counter in Redis, read once, station by station.
 * Owns the read half of `ingestd congestion`: SCAN MATCH ev:cg:* over the
 * whole keyspace into one sorted, de-duplicated key list (SCAN may return a
 * key twice; sorting by (statId, chgerId) also lets the writer emit rows in
 * the snapshot's primary-key order, so the index build reads sorted input),
 * then pipelined GETs in batches of whole stations, each value decoded
 * (cgvalue.c) and handed to the caller's sink with the other chargers of its
 * station. A refused key or value goes to the sink's reject callback with
 * its reason; a key deleted since the SCAN is counted, not refused.
 *
 * Memory: the key list (about 24 bytes per charger: 5.5 MB for 230,000) and
 * one batch of decoded values (struct cgvalue, 1 KiB each); nothing else grows. After
 * the read, the list still answers which chargers were loaded and their
 * last-sample second (the snapshot's charger table). */
#ifndef INGESTD_CGREAD_H
#define INGESTD_CGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "cgvalue.h"
#include "rds.h"

/* A refused key or value; every pointer borrowed for the call. */
struct cgread_reject {
	enum cgvalue_reject reason;
	const char *stat_id, *chger_id; /* NULL for CGVALUE_BAD_KEY */
	const char *detail;		/* one line */
	const void *raw;		/* the key (bad_key) or the value */
	size_t raw_len;
};

struct cgread_sink {
	void *arg;
	/* A station's loaded chargers, sorted by chgerId (n >= 1). Returning
	 * false stops the read with CGREAD_SINK (the sink keeps its reason). */
	bool (*station)(void *arg, const char *stat_id, const struct cgvalue_charger *chargers,
			size_t n);
	/* May be NULL. */
	void (*reject)(void *arg, const struct cgread_reject *reject);
	/* Polled between batches (may be NULL): true stops with CGREAD_STOPPED. */
	bool (*should_stop)(void *arg);
	/* After each batch (may be NULL): keys handled so far of cgread_keys(). */
	void (*progress)(void *arg, size_t keys_done);
};

enum cgread_status {
	CGREAD_OK,
	CGREAD_REDIS,	/* Redis failed (I/O, timeout, an error reply other than WRONGTYPE) */
	CGREAD_SINK,	/* the sink returned false */
	CGREAD_STOPPED, /* should_stop said so */
	CGREAD_NOMEM,
};

struct cgread_stats {
	long long scan_calls;
	long long keys_scanned;		    /* as SCAN returned them, duplicates included */
	long long bad_keys;		    /* refused by name */
	long long chargers;		    /* values loaded */
	long long rejected;		    /* values refused (bad_type, bad_length, bad_counts) */
	long long vanished;		    /* deleted between SCAN and GET */
	long long bytes;		    /* value bytes read */
	uint64_t samples;		    /* sum of every loaded slot's samples */
	uint64_t out_of_service;	    /* ... and of its out-of-service samples */
	uint32_t first_sample, last_sample; /* min and max non-zero last-sample second; 0: none */
};

struct cgread;

/* r is borrowed and must stay usable for the reader's life. batch_keys:
 * GETs per pipelined batch (a station is never split, so a batch may hold
 * more). */
struct cgread *cgread_new(struct rds *r, int batch_keys) MUSTCHECK;
void cgread_free(struct cgread *rd);

/* SCAN the whole keyspace for congestion keys; refused names go to the
 * sink's reject callback. Then sorts and de-duplicates. */
enum cgread_status cgread_scan(struct cgread *rd, const struct cgread_sink *sink, char *err,
			       size_t errlen) MUSTCHECK;
/* Keys with usable names after cgread_scan. */
size_t cgread_keys(const struct cgread *rd);

/* GET every key, station by station, into the sink. */
enum cgread_status cgread_read(struct cgread *rd, const struct cgread_sink *sink, char *err,
			       size_t errlen) MUSTCHECK;

const struct cgread_stats *cgread_stats(const struct cgread *rd);

/* After cgread_read, the i-th key (0 <= i < cgread_keys, sorted): false
 * unless its value was loaded; then its ids (borrowed from the reader) and
 * last-sample second. */
bool cgread_loaded(const struct cgread *rd, size_t i, const char **stat_id, const char **chger_id,
		   uint32_t *last_sample);

#endif
