/* gen: master data from (seed, index). Owns the block layout that maps a
 * charger slot to its station, statId encoding (and its inverse), and every
 * station and charger field except the status fields (model.c) and epoch
 * versions (passed in by the caller). Pure functions over a read-only
 * struct sim_gen. */
#ifndef SIM_GEN_H
#define SIM_GEN_H

#include "sim.h"
#include "tables.h"

#include <stdbool.h>
#include <stdint.h>

#define GEN_STATIONS_PER_PREFIX 1000000ULL

struct sim_gen {
	struct sim_keys keys;
	int region_total;	/* sum of region weights */
	int region_cum[160];	/* cumulative weights */
	char secondary[676][3]; /* 2-letter prefixes for generations >= 1 */
	size_t secondary_count;
	uint64_t station_capacity; /* statIds available */
	uint64_t digit_inverse;	   /* inverse of the digit multiplier mod 10^6 */
};

/* One block's station boundaries: station k holds slots
 * [block*30 + start[k], block*30 + start[k+1]); start[12] = 30. */
struct sim_layout {
	uint64_t block;
	bool valid;
	uint8_t start[SIM_BLOCK_STATIONS + 1];
};

struct sim_loc {
	uint64_t station; /* ordinal u = block * 12 + k */
	uint64_t first;	  /* slot of its first charger */
	int size;	  /* slots in the station */
	int charger;	  /* 0-based position of this slot in the station */
};

struct sim_station {
	uint64_t u;
	int version;
	int op;
	const struct sim_region *region;
	const char *zcode;
	char zscode[6];
	int32_t lat_e6, lng_e6;
	char lat[12], lng[12];
	int kind;
	char kind_detail[5];
	bool is_fast;
	char stat_id[9];
	char stat_nm[160];
	char addr[200];
	const char *addr_detail, *location, *use_time, *parking_free, *limit_yn, *limit_detail;
	const char *traffic_yn, *note, *floor_type;
	char year[5];
	char floor_num[2];
};

struct sim_charger {
	uint64_t slot;
	int version;
	char chger_id[3];
	const char *chger_type;
	const char *output;
	const char *method;
	const char *power_type;
};

void gen_setup(struct sim_gen *gen, uint64_t seed);

void gen_layout(const struct sim_gen *gen, uint64_t block, struct sim_layout *out);
/* cache: a layout reused while consecutive slots stay in one block. */
void gen_locate(const struct sim_gen *gen, struct sim_layout *cache, uint64_t slot,
		struct sim_loc *out);

/* Cheap station attributes (for filters and statIds) and the full record. */
int gen_station_operator(const struct sim_gen *gen, uint64_t u);
void gen_station_region(const struct sim_gen *gen, uint64_t u, const struct sim_region **region,
			const char **zcode);
void gen_station_kind(const struct sim_gen *gen, uint64_t u, int *kind, char detail[5]);
void gen_station(const struct sim_gen *gen, uint64_t u, int version, struct sim_station *out);
void gen_charger(const struct sim_gen *gen, const struct sim_station *st, uint64_t slot,
		 int charger, int version, struct sim_charger *out);

/* statId of station u (8 chars + NUL); false past the capacity. */
bool gen_stat_id(const struct sim_gen *gen, uint64_t u, int op, char out[9]);
/* Inverse: the station ordinal of a statId, or false if no station has it. */
bool gen_parse_stat_id(const struct sim_gen *gen, const char *stat_id, uint64_t *u);

#endif
