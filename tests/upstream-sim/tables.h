/* tables: the simulator's fixed reference data: districts (codes, centres,
 * boxes, weights), operators, facility kinds, the usage curve and the word
 * lists station names and addresses are built from. Read-only. */
#ifndef SIM_TABLES_H
#define SIM_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* A district: zscode = zcode + suffix. Stations fall inside the box
 * centre +- half (micro-degrees). Gangwon and Jeonbuk carry two province
 * codes (old 42/45, new 51/52). */
struct sim_region {
	const char *zcode;     /* 2 digits */
	const char *new_zcode; /* NULL, or the special self-governing code */
	const char *suffix;    /* 3 digits */
	const char *district;  /* 강남구, 수원시 ... */
	const char *short_name;
	int32_t lat_e6, lng_e6;
	int32_t half_lat_e6, half_lng_e6;
	int weight;
};

struct sim_operator {
	const char *code; /* busiId and primary statId prefix */
	const char *bnm;
	const char *busi_nm;
	const char *call;
	int weight_pm; /* per mille */
};

struct sim_kind {
	const char *code; /* "A0" */
	int details;	  /* kindDetail runs A001 .. A0<details> */
	int weight_pm;
	const char *const *names; /* statNm patterns, NULL-terminated */
};

extern const struct sim_region sim_regions[];
extern const size_t sim_region_count;
extern const struct sim_operator sim_operators[];
extern const size_t sim_operator_count;
extern const struct sim_kind sim_kinds[];
extern const size_t sim_kind_count;

/* Province name for a zcode ("11" -> 서울특별시); NULL if unknown. */
const char *sim_province_name(const char *zcode);

/* P(charging) in per mille by day class (0 weekday, 1 Saturday, 2 Sunday)
 * and KST hour. */
extern const int16_t sim_usage_pm[3][24];

/* Station-size draw: cumulative per mille for sizes 1..20. */
extern const int16_t sim_size_cum_pm[20];

/* Word lists. */
extern const char *const sim_brands[];
extern const size_t sim_brand_count;
extern const char *const sim_roads[];
extern const size_t sim_road_count;
extern const char *const sim_use_times[];
extern const size_t sim_use_time_count;
extern const char *const sim_locations[];
extern const size_t sim_location_count;
extern const char *const sim_addr_details[];
extern const size_t sim_addr_detail_count;
extern const char *const sim_limit_details[];
extern const size_t sim_limit_detail_count;
extern const char *const sim_notes[];
extern const size_t sim_note_count;

#endif
