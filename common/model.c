#include "model.h"

#include <string.h>
#include <strings.h>

bool model_is_quick(double output_kw)
{
	return output_kw >= MODEL_QUICK_KW; /* false for NaN */
}

/* Up to two decimal digits, nothing else. */
static bool parse_small(const char *text, size_t len, int *out)
{
	if (!text || len < 1 || len > 2)
		return false;
	int v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		v = v * 10 + (text[i] - '0');
	}
	*out = v;
	return true;
}

/* ---- charger types ---- */

struct type_row {
	const char *name;
	const char *label_ko;
};

static const struct type_row type_table[MODEL_TYPE_KNOWN_MAX + 1] = {
	[MODEL_TYPE_DC_FAST] = {"DC_FAST", "DC차데모"},
	[MODEL_TYPE_AC_SLOW] = {"AC_SLOW", "AC완속"},
	[MODEL_TYPE_DC_AC_3PHASE] = {"DC_AC_3PHASE", "DC차데모+AC3상"},
	[MODEL_TYPE_DC_COMBO] = {"DC_COMBO", "DC콤보"},
	[MODEL_TYPE_DC_DC_COMBO] = {"DC_DC_COMBO", "DC차데모+DC콤보"},
	[MODEL_TYPE_DC_AC_DC_COMBO] = {"DC_AC_DC_COMBO", "DC차데모+AC3상+DC콤보"},
	[MODEL_TYPE_AC_3PHASE] = {"AC_3PHASE", "AC3상"},
};

/* Names for codes the publisher adds later: constant strings, so callers
 * may keep the pointer like any other name. */
static const char *const later_type_names[MODEL_TYPE_MAX - MODEL_TYPE_KNOWN_MAX] = {
	"TYPE_08", "TYPE_09", "TYPE_10", "TYPE_11", "TYPE_12", "TYPE_13", "TYPE_14", "TYPE_15",
	"TYPE_16", "TYPE_17", "TYPE_18", "TYPE_19", "TYPE_20", "TYPE_21", "TYPE_22", "TYPE_23",
	"TYPE_24", "TYPE_25", "TYPE_26", "TYPE_27", "TYPE_28", "TYPE_29", "TYPE_30", "TYPE_31",
	"TYPE_32", "TYPE_33", "TYPE_34", "TYPE_35", "TYPE_36", "TYPE_37", "TYPE_38", "TYPE_39",
	"TYPE_40", "TYPE_41", "TYPE_42", "TYPE_43", "TYPE_44", "TYPE_45", "TYPE_46", "TYPE_47",
	"TYPE_48", "TYPE_49", "TYPE_50", "TYPE_51", "TYPE_52", "TYPE_53", "TYPE_54", "TYPE_55",
	"TYPE_56", "TYPE_57", "TYPE_58", "TYPE_59", "TYPE_60", "TYPE_61", "TYPE_62", "TYPE_63",
	"TYPE_64", "TYPE_65", "TYPE_66", "TYPE_67", "TYPE_68", "TYPE_69", "TYPE_70", "TYPE_71",
	"TYPE_72", "TYPE_73", "TYPE_74", "TYPE_75", "TYPE_76", "TYPE_77", "TYPE_78", "TYPE_79",
	"TYPE_80", "TYPE_81", "TYPE_82", "TYPE_83", "TYPE_84", "TYPE_85", "TYPE_86", "TYPE_87",
	"TYPE_88", "TYPE_89", "TYPE_90", "TYPE_91", "TYPE_92", "TYPE_93", "TYPE_94", "TYPE_95",
	"TYPE_96", "TYPE_97", "TYPE_98", "TYPE_99",
};

bool model_type_parse(const char *text, size_t len, int *code)
{
	int v;
	if (!parse_small(text, len, &v) || v < 1)
		return false;
	*code = v;
	return true;
}

const char *model_type_name(int code)
{
	if (code >= 1 && code <= MODEL_TYPE_KNOWN_MAX)
		return type_table[code].name;
	if (code > MODEL_TYPE_KNOWN_MAX && code <= MODEL_TYPE_MAX)
		return later_type_names[code - MODEL_TYPE_KNOWN_MAX - 1];
	return NULL;
}

const char *model_type_label(int code)
{
	if (code >= 1 && code <= MODEL_TYPE_KNOWN_MAX)
		return type_table[code].label_ko;
	return NULL;
}

bool model_type_from_name(const char *name, int *code)
{
	if (!name)
		return false;
	for (int c = 1; c <= MODEL_TYPE_KNOWN_MAX; c++) {
		if (strcmp(name, type_table[c].name) == 0) {
			*code = c;
			return true;
		}
	}
	int v;
	if (strncmp(name, "TYPE_", 5) == 0 && strlen(name) == 7 && parse_small(name + 5, 2, &v) &&
	    v > MODEL_TYPE_KNOWN_MAX) {
		*code = v;
		return true;
	}
	return false;
}

/* ---- status ---- */

static const struct {
	int code;
	const char *name;
} status_table[] = {
	{MODEL_STATUS_COMMUNICATION_ERROR, "COMMUNICATION_ERROR"},
	{MODEL_STATUS_STANDBY, "STANDBY"},
	{MODEL_STATUS_CHARGING_IN_PROGRESS, "CHARGING_IN_PROGRESS"},
	{MODEL_STATUS_OPERATION_SUSPENDED, "OPERATION_SUSPENDED"},
	{MODEL_STATUS_UNDER_INSPECTION, "UNDER_INSPECTION"},
	{MODEL_STATUS_UNKNOWN, "STATUS_UNKNOWN"},
};

static bool status_known(int code)
{
	for (size_t i = 0; i < ARRAY_LEN(status_table); i++)
		if (status_table[i].code == code)
			return true;
	return false;
}

bool model_status_parse(const char *text, size_t len, int *status)
{
	int v;
	if (!parse_small(text, len, &v))
		return false;
	*status = status_known(v) ? v : MODEL_STATUS_UNKNOWN;
	return true;
}

const char *model_status_name(int status)
{
	for (size_t i = 0; i < ARRAY_LEN(status_table); i++)
		if (status_table[i].code == status)
			return status_table[i].name;
	return "STATUS_UNKNOWN";
}

bool model_status_from_name(const char *name, int *status)
{
	if (!name)
		return false;
	for (size_t i = 0; i < ARRAY_LEN(status_table); i++) {
		if (strcmp(name, status_table[i].name) == 0) {
			*status = status_table[i].code;
			return true;
		}
	}
	return false;
}

/* ---- regions ---- */

/* Order and names follow the API's /stations/regions list; Gangwon (2023)
 * and Jeonbuk (2024) became special self-governing provinces and got new
 * codes, and the data carries both. The points are fixed map positions for
 * the region marker, not centroids of the data. */
static const struct model_region region_table[] = {
	{"seoul", "서울특별시", 37.540705, 126.956764, 11, 0},
	{"incheon", "인천광역시", 37.3865, 126.647, 28, 0},
	{"gwangju", "광주광역시", 35.126033, 126.831302, 29, 0},
	{"daegu", "대구광역시", 35.798838, 128.583052, 27, 0},
	{"ulsan", "울산광역시", 35.519301, 129.239078, 31, 0},
	{"daejeon", "대전광역시", 36.321655, 127.378953, 30, 0},
	{"busan", "부산광역시", 35.198362, 129.053922, 26, 0},
	{"gyeonggi", "경기도", 37.2895, 127.0535, 41, 0},
	{"gangwon", "강원특별자치도", 37.555837, 128.209315, 51, 42},
	{"chungnam", "충청남도", 36.557229, 126.779757, 44, 0},
	{"chungbuk", "충청북도", 36.628503, 127.929344, 43, 0},
	{"gyeongbuk", "경상북도", 36.248647, 128.664734, 47, 0},
	{"gyeongnam", "경상남도", 35.259787, 128.213200, 48, 0},
	{"jeonbuk", "전북특별자치도", 35.716705, 127.144185, 52, 45},
	{"jeonnam", "전라남도", 34.819400, 126.893113, 46, 0},
	{"jeju", "제주특별자치도", 33.364805, 126.542671, 50, 0},
	{"sejong", "세종특별자치시", 36.480132, 127.289021, 36, 0},
};

size_t model_region_count(void)
{
	return ARRAY_LEN(region_table);
}

const struct model_region *model_region_at(size_t index)
{
	return index < ARRAY_LEN(region_table) ? &region_table[index] : NULL;
}

size_t model_region_index(const struct model_region *r)
{
	return (size_t)(r - region_table);
}

const struct model_region *model_region_by_slug(const char *slug)
{
	if (!slug)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(region_table); i++)
		if (strcasecmp(slug, region_table[i].slug) == 0)
			return &region_table[i];
	return NULL;
}

const struct model_region *model_region_by_zcode(int zcode)
{
	if (zcode <= 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(region_table); i++)
		if (region_table[i].zcode == zcode || region_table[i].zcode_previous == zcode)
			return &region_table[i];
	return NULL;
}

const struct model_region *model_region_by_zcode_text(const char *text, size_t len)
{
	int zcode;
	if (len != 2 || !parse_small(text, len, &zcode))
		return NULL;
	return model_region_by_zcode(zcode);
}

const struct model_region *model_region_by_name(const char *name_ko)
{
	if (!name_ko)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(region_table); i++)
		if (strcmp(name_ko, region_table[i].name_ko) == 0)
			return &region_table[i];
	return NULL;
}
