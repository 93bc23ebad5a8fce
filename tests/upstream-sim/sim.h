/* sim: what every upstream-simulator module shares: the fixed constants of the
 * data model, the seeded hash every generated value comes from, and a tiny
 * stderr logger. Nothing here has state.
 *
 * The simulator is deliberately independent of common/: it must not share the
 * record model, parser, JSON or time code of the programs it tests, so a
 * mistake in their reading of the wire format cannot be mirrored here.
 * docs/simulator.md documents every rule below precisely enough to recompute
 * any value from (seed, index, time). */
#ifndef SIM_H
#define SIM_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The index space is cut into blocks of 30 charger slots holding exactly 12
 * stations each, so index -> (station, charger) is O(1) and station ordinals
 * are dense (statId capacity is the limit at 37M chargers). */
#define SIM_BLOCK_SLOTS	     30
#define SIM_BLOCK_STATIONS   12
#define SIM_MAX_STATION_SIZE 20

/* Status model: each charger's timeline is cut into 30-minute slots, shifted
 * by a per-charger phase; statUpdDt and friends look back at most 48 slots. */
#define SIM_SLOT_SECONDS   1800
#define SIM_LOOKBACK_SLOTS 48
/* KST is UTC+9 all year (no DST), so +9h is exact. */
#define SIM_KST_OFFSET 32400

/* 9,999 rows: the API's page limit. */
#define SIM_MAX_ROWS  9999
#define SIM_MAX_EPOCH 1000

/* Hash domains: one per derived quantity (values are part of the documented
 * format; never renumber). */
enum sim_tag {
	TAG_BLOCK = 1,	  /* block: which station takes the remainder */
	TAG_SIZE = 2,	  /* station size draw */
	TAG_OPERATOR = 3, /* station operator */
	TAG_REGION = 4,	  /* station district */
	TAG_ZNEW = 5,	  /* new (51/52) or old (42/45) province code */
	TAG_LAT = 6,
	TAG_LNG = 7,
	TAG_KIND = 8,	  /* facility kind and detail */
	TAG_CLASS = 9,	  /* slow (AC) or fast (DC) station */
	TAG_NAME = 10,	  /* station name parts */
	TAG_ADDR = 11,	  /* road, number, addrDetail, location */
	TAG_MISC = 12,	  /* station flags: parking, limits, year, floor */
	TAG_TYPE = 13,	  /* chgerType */
	TAG_OUTPUT = 14,  /* output */
	TAG_METHOD = 15,  /* method, powerType */
	TAG_PHASE = 16,	  /* status slot phase */
	TAG_STAT = 17,	  /* status draw per slot */
	TAG_SREMOVE = 18, /* epoch: station removed */
	TAG_CREMOVE = 19, /* epoch: charger removed */
	TAG_SCHANGE = 20, /* epoch: station changed */
	TAG_CCHANGE = 21, /* epoch: charger changed */
	TAG_MALFORMED = 22,
	TAG_MALKIND = 23,
	TAG_USETIME = 24,
	TAG_COUNT
};

/* splitmix64's finaliser (Steele, Lea, Flood 2014). */
static inline uint64_t sim_mix(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* H(tag, a, b) = mix(mix(mix(seed ^ tag) ^ a) ^ b); keys[tag] caches the
 * innermost term. */
struct sim_keys {
	uint64_t seed;
	uint64_t key[TAG_COUNT];
};

static inline void sim_keys_init(struct sim_keys *k, uint64_t seed)
{
	k->seed = seed;
	for (int t = 0; t < TAG_COUNT; t++)
		k->key[t] = sim_mix(seed ^ (uint64_t)t);
}

static inline uint64_t sim_hash(const struct sim_keys *k, enum sim_tag tag, uint64_t a, uint64_t b)
{
	return sim_mix(sim_mix(k->key[tag] ^ a) ^ b);
}

/* Floor division for possibly negative times. */
static inline int64_t sim_floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Logging: one choke point, readable lines on stderr. */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
