/* model: the upstream's code tables and the names the API gives them.
 * Owns one table each for charger types (chgerType), charger statuses
 * (stat) and regions (zcode), and the quick-charger threshold. Codes are
 * ints; text goes through the parse/name functions here and nowhere else.
 * Everything is constant data: thread-safe, no setup. */
#ifndef EV_MODEL_H
#define EV_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

/* ---- quick chargers ---- */

/* A charger of 50 kW or more is "quick" (quickChargerCount, speed). */
#define MODEL_QUICK_KW 50.0
bool model_is_quick(double output_kw);

/* ---- charger types (chgerType "01".."99") ---- */

enum model_charger_type {
	MODEL_TYPE_DC_FAST = 1,        /* 01 DC 차데모 (CHAdeMO) */
	MODEL_TYPE_AC_SLOW = 2,        /* 02 AC 완속 */
	MODEL_TYPE_DC_AC_3PHASE = 3,   /* 03 DC 차데모 + AC 3상 */
	MODEL_TYPE_DC_COMBO = 4,       /* 04 DC 콤보 */
	MODEL_TYPE_DC_DC_COMBO = 5,    /* 05 DC 차데모 + DC 콤보 */
	MODEL_TYPE_DC_AC_DC_COMBO = 6, /* 06 DC 차데모 + AC 3상 + DC 콤보 */
	MODEL_TYPE_AC_3PHASE = 7,      /* 07 AC 3상 */
	MODEL_TYPE_KNOWN_MAX = 7,
	MODEL_TYPE_MAX = 99,
};

/* "01".."99" (one or two digits, no padding) into 1..99. The publisher adds
 * codes over time: any code in range is accepted, known or not. False for
 * "00", "100", "", "A1". */
bool model_type_parse(const char *text, size_t len, int *code) MUSTCHECK;
/* API name: "DC_FAST" .. "AC_3PHASE"; codes 8..99 the publisher added after
 * this table are named "TYPE_08" .. "TYPE_99"; NULL outside 1..99. */
const char *model_type_name(int code);
/* The publisher's Korean label ("DC콤보"), NULL for codes past the table. */
const char *model_type_label(int code);
/* Reverse of model_type_name (exact, case-sensitive: the enum names are
 * what clients send in chargerTypes=). */
bool model_type_from_name(const char *name, int *code) MUSTCHECK;

/* ---- charger status (stat) ---- */

enum model_status {
	MODEL_STATUS_COMMUNICATION_ERROR = 1,
	MODEL_STATUS_STANDBY = 2, /* free: counts towards availableCount */
	MODEL_STATUS_CHARGING_IN_PROGRESS = 3,
	MODEL_STATUS_OPERATION_SUSPENDED = 4,
	MODEL_STATUS_UNDER_INSPECTION = 5,
	MODEL_STATUS_UNKNOWN = 9,
};

/* Out of service: COMMUNICATION_ERROR, OPERATION_SUSPENDED or
 * UNDER_INSPECTION (the reliability share of /statistics); STATUS_UNKNOWN
 * is not, as nothing says the charger is down. */
static inline bool model_status_out_of_service(int status)
{
	return status == MODEL_STATUS_COMMUNICATION_ERROR ||
	       status == MODEL_STATUS_OPERATION_SUSPENDED ||
	       status == MODEL_STATUS_UNDER_INSPECTION;
}

/* A decimal status code of 1 or 2 digits. Codes outside the table (0, 6,
 * ...) read as MODEL_STATUS_UNKNOWN, so a charger is never dropped for a
 * new status; false only for text that is not a number. */
bool model_status_parse(const char *text, size_t len, int *status) MUSTCHECK;
/* "STANDBY" ...; any code outside the table names as "STATUS_UNKNOWN". */
const char *model_status_name(int status);
bool model_status_from_name(const char *name, int *status) MUSTCHECK;

/* ---- regions (zcode) ---- */

struct model_region {
	const char *slug;     /* the API's regions= value: "seoul" */
	const char *name_ko;  /* regionName: "서울특별시" */
	double latitude;      /* fixed representative point */
	double longitude;
	int zcode;            /* current province code */
	int zcode_previous;   /* earlier code still seen in the data, 0 if none */
};

/* The 17 province-level regions, in the API's /stations/regions order. */
size_t model_region_count(void);
const struct model_region *model_region_at(size_t index);
/* Position of r in that order (for per-region arrays). */
size_t model_region_index(const struct model_region *r);
/* NULL when unknown. Slugs match case-insensitively ("Seoul"). Both codes
 * of Gangwon (42, 51) and Jeonbuk (45, 52) find their region. */
const struct model_region *model_region_by_slug(const char *slug);
const struct model_region *model_region_by_zcode(int zcode);
const struct model_region *model_region_by_zcode_text(const char *text, size_t len);
const struct model_region *model_region_by_name(const char *name_ko);

#endif
