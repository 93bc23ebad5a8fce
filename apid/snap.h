/* snap: apid's read model, one immutable snapshot of the master data.
 * Owns the stations (live ones with at least one live charger: a map shows
 * nothing else) and their chargers as flat arrays, one text arena, a grid
 * index for box queries, the search index, the cities derived from
 * addresses, per-region counts, the /filters answer and one pre-rendered
 * JSON marker per station. Built whole by a snap_builder off the request
 * path, then never changed, except for the live-state words (charger status
 * and time, station availability): atomics written by one thread, the live
 * follower, and read by any.
 *
 * Lifetime: reference counted (snap_ref/snap_unref, atomic); whoever drops
 * the last reference frees it. Readers take no locks.
 *
 * Order: stations are sorted by stationId bytewise and chargers by
 * (stationId, chargerId); a station's number is its place in that order, so
 * "sorted by number" is "sorted by stationId". */
#ifndef APID_SNAP_H
#define APID_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "model.h"

#define SNAP_NO_REGION	0xff
#define SNAP_NO_CITY	UINT32_MAX
#define SNAP_KW_UNKNOWN (-1) /* output not given */

/* Text fields are offsets into snap->text (NUL-terminated). */
struct snap_station {
	uint32_t id, name, addr, location, use_time, busi_id, bnm, busi_nm, busi_call, limit_detail,
		note;
	uint32_t search; /* normalized "name SEP addr SEP busiNm SEP bnm" */
	uint32_t marker; /* /stations item up to "availableCount": */
	uint32_t marker_len;
	uint32_t city; /* index into cities, or SNAP_NO_CITY */
	double lat, lng;
	uint32_t first_charger;
	uint16_t charger_count;
	uint16_t quick_count;
	uint8_t region; /* model_region_at() index, or SNAP_NO_REGION */
	bool is_parking_free;
	bool is_private;
};

struct snap_charger {
	uint32_t station;
	uint32_t id;	    /* chgerId */
	uint32_t type_text; /* chgerType as stored */
	int32_t output_ckw; /* output in hundredths of a kW, or SNAP_KW_UNKNOWN */
	uint8_t type;	    /* 1..99, 0 when the code did not parse */
	uint8_t method;	    /* 0 none, 1 단독, 2 동시 */
};

struct snap_city {
	uint32_t name;	 /* "서울특별시 강남구" */
	double lat, lng; /* mean of its stations */
	uint32_t stations;
};

struct search_index;

struct snap {
	_Atomic long refs;
	uint64_t version; /* build number in this process, from 1 */
	int64_t run_id;	  /* newest finished ingest run seen when building; 0 none */
	time_t built_at;
	double build_seconds;	  /* wall clock, PostgreSQL's share included */
	double build_cpu_seconds; /* the building thread's CPU time */
	uint32_t nstations, nchargers;
	struct snap_station *stations;
	struct snap_charger *chargers;
	/* Live state, written by the live follower only. A word is
	 * (unix seconds << 8 | status code); newer times win. */
	_Atomic uint64_t *live;
	_Atomic uint32_t *available; /* per station: chargers in STANDBY */
	char *text;
	size_t text_len;
	/* grid: rows x cols cells of `cell` degrees from (lat0, lng0); the
	 * stations of cell r*cols+c are items[start[i] .. start[i+1]) */
	double grid_lat0, grid_lng0, grid_cell;
	uint32_t grid_rows, grid_cols;
	uint32_t *grid_start;
	uint32_t *grid_items;
	struct search_index *search;
	const char **search_docs; /* per station: text + stations[i].search */
	struct snap_city *cities;
	uint32_t ncities;
	uint32_t region_counts[32];
	char *filters_json; /* the GET /filters answer */
	size_t filters_len;
	size_t memory_bytes; /* what the snapshot holds, for /metrics */
};

/* ---- building ---- */

/* Text NULL reads as "". Booleans: -1 unknown (NULL), 0, 1. */
struct snap_station_row {
	const char *stat_id, *name, *addr, *location, *use_time, *busi_id, *bnm, *busi_nm,
		*busi_call, *zcode, *limit_detail, *note;
	double lat, lng;
	int parking_free;
	int limit_yn;
};

struct snap_charger_row {
	const char *stat_id, *chger_id, *chger_type, *method;
	int32_t output_ckw;    /* SNAP_KW_UNKNOWN when NULL */
	int stat;	       /* status code at load time */
	int64_t stat_upd_unix; /* 0 when unknown */
};

struct snap_builder;

struct snap_builder *snap_builder_new(void) MUSTCHECK;
/* Stations first, then chargers, each in any order (the builder sorts). A
 * charger whose station was not given is skipped. False (with the reason)
 * on a repeated station id or charger key, or no memory. */
bool snap_builder_station(struct snap_builder *b, const struct snap_station_row *row, char *err,
			  size_t errlen) MUSTCHECK;
bool snap_builder_charger(struct snap_builder *b, const struct snap_charger_row *row, char *err,
			  size_t errlen) MUSTCHECK;
/* Finish and free the builder: stations without chargers are dropped, the
 * indexes built. The snapshot starts with one reference. */
struct snap *snap_builder_finish(struct snap_builder *b, char *err, size_t errlen) MUSTCHECK;
void snap_builder_free(struct snap_builder *b);

/* ---- lifetime ---- */

struct snap *snap_ref(struct snap *s);
void snap_unref(struct snap *s); /* NULL-safe */

/* ---- reading ---- */

static inline const char *snap_text(const struct snap *s, uint32_t off)
{
	return s->text + off;
}

bool snap_find_station(const struct snap *s, const char *stat_id, uint32_t *index);

struct snap_box {
	double min_lat, max_lat, min_lng, max_lng; /* inclusive */
};

/* Call fn for each station inside the box (edges included), cell by cell:
 * not in station order. fn returns false to stop. */
typedef bool (*snap_visit_fn)(void *arg, uint32_t station);
void snap_box_visit(const struct snap *s, const struct snap_box *box, snap_visit_fn fn, void *arg);

/* The /stations filters; empty lists filter nothing. */
struct snap_filter {
	const char *const *companies; /* each matches busiNm, bnm or busiId exactly */
	size_t ncompanies;
	const int *types; /* charger type codes */
	size_t ntypes;
	const int32_t *capacities; /* hundredths of a kW */
	size_t ncapacities;
};
/* Does the station match: its operator is one of the companies (if any),
 * and one of its chargers has one of the types and one of the capacities
 * (each if given)? */
bool snap_station_matches(const struct snap *s, uint32_t station, const struct snap_filter *f);

/* Up to max cities whose name contains the normalized query, most stations
 * first; returns how many were written to out. */
size_t snap_cities_matching(const struct snap *s, const char *query, uint32_t *out, size_t max);

/* ---- live state ---- */

#define SNAP_LIVE_WORD(stat, unix_s) ((uint64_t)(unix_s) << 8 | (uint8_t)(stat))
static inline int snap_live_status(uint64_t word)
{
	return (int)(word & 0xff);
}
static inline int64_t snap_live_time(uint64_t word)
{
	return (int64_t)(word >> 8);
}
static inline uint64_t snap_live_word(const struct snap *s, uint32_t charger)
{
	return atomic_load_explicit(&s->live[charger], memory_order_relaxed);
}
static inline uint32_t snap_available(const struct snap *s, uint32_t station)
{
	return atomic_load_explicit(&s->available[station], memory_order_relaxed);
}

/* A status is known and fresh when it is a real state (not
 * COMMUNICATION_ERROR, STATUS_UNKNOWN or none) and its time is at most
 * max_age_s before now; anything else counts as unknown, never as free. */
static inline bool snap_live_fresh(uint64_t word, int64_t now, int64_t max_age_s)
{
	int st = snap_live_status(word);
	int64_t t = snap_live_time(word);
	return st != 0 && st != MODEL_STATUS_COMMUNICATION_ERROR && st != MODEL_STATUS_UNKNOWN &&
	       t > 0 && now - t <= max_age_s;
}

/* Quick charger (model_is_quick); unknown output counts as standard. */
static inline bool snap_charger_is_quick(const struct snap_charger *ch)
{
	return ch->output_ckw != SNAP_KW_UNKNOWN && model_is_quick(ch->output_ckw / 100.0);
}

bool snap_find_charger(const struct snap *s, const char *stat_id, const char *chger_id,
		       uint32_t *index);
/* Live follower only: set a charger's status if `unix_s` is not older than
 * what is held; keeps the station's availability in step. True if changed. */
bool snap_live_apply(struct snap *s, uint32_t charger, int stat, int64_t unix_s);
/* Live follower only: carry every charger's live word from `from` (the
 * snapshot being replaced) into `to` where newer. Writes into *fresh
 * (malloc'd, may be NULL) the stations of `to` with a charger `from` did
 * not have, whose live state must be fetched. False when memory runs out. */
bool snap_live_carry(struct snap *to, const struct snap *from, uint32_t **fresh,
		     size_t *nfresh) MUSTCHECK;

#endif
