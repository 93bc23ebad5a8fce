/* gen: master data. Every value is a pure function of (seed, station ordinal)
 * or (seed, slot), so any page of any size is computed on demand and memory
 * stays flat. The rules are documented in docs/simulator.md ("Data"). */
#include "gen.h"

#include <stdio.h>
#include <string.h>

#define DIGIT_MUL 619813ULL /* odd, not a multiple of 5: a bijection mod 10^6 */
#define DIGIT_ADD 104729ULL

static uint64_t mod_inverse(uint64_t a, uint64_t m)
{
	int64_t t = 0, new_t = 1, r = (int64_t)m, new_r = (int64_t)a;
	while (new_r != 0) {
		int64_t q = r / new_r, tmp;
		tmp = t - q * new_t, t = new_t, new_t = tmp;
		tmp = r - q * new_r, r = new_r, new_r = tmp;
	}
	return (uint64_t)(t < 0 ? t + (int64_t)m : t);
}

void gen_setup(struct sim_gen *gen, uint64_t seed)
{
	memset(gen, 0, sizeof(*gen));
	sim_keys_init(&gen->keys, seed);
	for (size_t i = 0; i < sim_region_count && i < ARRAY_LEN(gen->region_cum); i++) {
		gen->region_total += sim_regions[i].weight;
		gen->region_cum[i] = gen->region_total;
	}
	/* Secondary statId prefixes: every two-letter code in alphabetical
	 * order that is not an operator's own code. */
	for (char a = 'A'; a <= 'Z'; a++) {
		for (char b = 'A'; b <= 'Z'; b++) {
			char code[3] = {a, b, 0};
			bool is_operator = false;
			for (size_t o = 0; o < sim_operator_count; o++)
				is_operator |= strcmp(sim_operators[o].code, code) == 0;
			if (!is_operator)
				memcpy(gen->secondary[gen->secondary_count++], code, 3);
		}
	}
	uint64_t generations = 1 + gen->secondary_count / sim_operator_count;
	gen->station_capacity = generations * GEN_STATIONS_PER_PREFIX;
	gen->digit_inverse = mod_inverse(DIGIT_MUL, GEN_STATIONS_PER_PREFIX);
}

static inline uint64_t H(const struct sim_gen *gen, enum sim_tag tag, uint64_t a, uint64_t b)
{
	return sim_hash(&gen->keys, tag, a, b);
}

static int draw_size(uint64_t h)
{
	int x = (int)(h % 1000);
	for (int s = 0; s < 20; s++)
		if (x < sim_size_cum_pm[s])
			return s + 1;
	return 20;
}

void gen_layout(const struct sim_gen *gen, uint64_t block, struct sim_layout *out)
{
	int size[SIM_BLOCK_STATIONS];
	int remainder_station = (int)(H(gen, TAG_BLOCK, block, 0) % SIM_BLOCK_STATIONS);
	int left = SIM_BLOCK_SLOTS, processed = 0;
	for (int k = 0; k < SIM_BLOCK_STATIONS; k++) {
		if (k == remainder_station)
			continue;
		processed++;
		/* keep one slot for every station still unassigned */
		int reserve = SIM_BLOCK_STATIONS - processed;
		int s = draw_size(H(gen, TAG_SIZE, block, (uint64_t)k));
		if (s > left - reserve)
			s = left - reserve;
		size[k] = s;
		left -= s;
	}
	size[remainder_station] = left;
	out->block = block;
	out->valid = true;
	out->start[0] = 0;
	for (int k = 0; k < SIM_BLOCK_STATIONS; k++)
		out->start[k + 1] = (uint8_t)(out->start[k] + size[k]);
}

void gen_locate(const struct sim_gen *gen, struct sim_layout *cache, uint64_t slot,
		struct sim_loc *out)
{
	uint64_t block = slot / SIM_BLOCK_SLOTS;
	int offset = (int)(slot % SIM_BLOCK_SLOTS);
	if (!cache->valid || cache->block != block)
		gen_layout(gen, block, cache);
	int k = 0;
	while (offset >= cache->start[k + 1])
		k++;
	out->station = block * SIM_BLOCK_STATIONS + (uint64_t)k;
	out->first = block * SIM_BLOCK_SLOTS + cache->start[k];
	out->size = cache->start[k + 1] - cache->start[k];
	out->charger = offset - cache->start[k];
}

int gen_station_operator(const struct sim_gen *gen, uint64_t u)
{
	int x = (int)(H(gen, TAG_OPERATOR, u, 0) % 1000), cum = 0;
	for (size_t o = 0; o < sim_operator_count; o++) {
		cum += sim_operators[o].weight_pm;
		if (x < cum)
			return (int)o;
	}
	return 0;
}

void gen_station_region(const struct sim_gen *gen, uint64_t u, const struct sim_region **region,
			const char **zcode)
{
	int x = (int)(H(gen, TAG_REGION, u, 0) % (uint64_t)gen->region_total);
	size_t lo = 0, hi = sim_region_count - 1;
	while (lo < hi) { /* first cumulative weight above x */
		size_t mid = (lo + hi) / 2;
		if (gen->region_cum[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	*region = &sim_regions[lo];
	*zcode = (*region)->new_zcode && H(gen, TAG_ZNEW, u, 0) % 2 == 1 ? (*region)->new_zcode
									 : (*region)->zcode;
}

void gen_station_kind(const struct sim_gen *gen, uint64_t u, int *kind, char detail[5])
{
	int x = (int)(H(gen, TAG_KIND, u, 0) % 1000), cum = 0;
	size_t k = 0;
	for (; k < sim_kind_count - 1; k++) {
		cum += sim_kinds[k].weight_pm;
		if (x < cum)
			break;
	}
	*kind = (int)k;
	int d = (int)(H(gen, TAG_KIND, u, 1) % (uint64_t)sim_kinds[k].details) + 1;
	detail[0] = sim_kinds[k].code[0];
	detail[1] = sim_kinds[k].code[1];
	detail[2] = (char)('0' + d / 10);
	detail[3] = (char)('0' + d % 10);
	detail[4] = 0;
}

bool gen_stat_id(const struct sim_gen *gen, uint64_t u, int op, char out[9])
{
	if (u >= gen->station_capacity)
		return false;
	uint64_t generation = u / GEN_STATIONS_PER_PREFIX;
	uint64_t low = u % GEN_STATIONS_PER_PREFIX;
	uint64_t digits = (low * DIGIT_MUL + DIGIT_ADD) % GEN_STATIONS_PER_PREFIX;
	const char *prefix =
		generation == 0
			? sim_operators[op].code
			: gen->secondary[(generation - 1) * sim_operator_count + (size_t)op];
	out[0] = prefix[0];
	out[1] = prefix[1];
	for (int i = 7; i >= 2; i--) {
		out[i] = (char)('0' + digits % 10);
		digits /= 10;
	}
	out[8] = 0;
	return true;
}

bool gen_parse_stat_id(const struct sim_gen *gen, const char *stat_id, uint64_t *u)
{
	if (strlen(stat_id) != 8)
		return false;
	uint64_t digits = 0;
	for (int i = 2; i < 8; i++) {
		if (stat_id[i] < '0' || stat_id[i] > '9')
			return false;
		digits = digits * 10 + (uint64_t)(stat_id[i] - '0');
	}
	uint64_t generation = 0;
	int op = -1;
	for (size_t o = 0; o < sim_operator_count; o++)
		if (memcmp(sim_operators[o].code, stat_id, 2) == 0)
			op = (int)o;
	if (op < 0) {
		for (size_t s = 0; s < gen->secondary_count; s++) {
			if (memcmp(gen->secondary[s], stat_id, 2) == 0) {
				generation = 1 + s / sim_operator_count;
				op = (int)(s % sim_operator_count);
				break;
			}
		}
	}
	if (op < 0)
		return false;
	uint64_t low = ((digits + GEN_STATIONS_PER_PREFIX - DIGIT_ADD) % GEN_STATIONS_PER_PREFIX) *
		       gen->digit_inverse % GEN_STATIONS_PER_PREFIX;
	uint64_t cand = generation * GEN_STATIONS_PER_PREFIX + low;
	if (cand >= gen->station_capacity || gen_station_operator(gen, cand) != op)
		return false;
	*u = cand;
	return true;
}

/* "37.517200": micro-degrees as fixed-point text (always positive in Korea). */
static void format_e6(int32_t v, char out[12])
{
	uint32_t a = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
	char tmp[12];
	int n = 0;
	for (int i = 0; i < 6; i++, a /= 10)
		tmp[n++] = (char)('0' + a % 10);
	tmp[n++] = '.';
	do {
		tmp[n++] = (char)('0' + a % 10);
		a /= 10;
	} while (a && n < 10);
	if (v < 0)
		tmp[n++] = '-';
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = 0;
}

static int32_t jitter(const struct sim_gen *gen, enum sim_tag tag, uint64_t u, int32_t half)
{
	uint64_t span = 2 * (uint64_t)half + 1;
	uint64_t d1 = H(gen, tag, u, 0) % span, d2 = H(gen, tag, u, 1) % span;
	return (int32_t)((d1 + d2) / 2) - half; /* triangular: denser near the centre */
}

/* Expands {s} {d} {b} {n} in a name pattern. */
static void expand_name(const char *pattern, const struct sim_region *region, const char *brand,
			int number, char *out, size_t outlen)
{
	size_t len = 0;
	for (const char *p = pattern; *p && len + 1 < outlen; p++) {
		const char *ins = NULL;
		char num[2] = {(char)('0' + number), 0};
		if (p[0] == '{' && p[1] && p[2] == '}') {
			switch (p[1]) {
			case 's': ins = region->short_name; break;
			case 'd': ins = region->district; break;
			case 'b': ins = brand; break;
			case 'n': ins = num; break;
			default: break;
			}
		}
		if (ins) {
			size_t n = strlen(ins);
			if (len + n >= outlen)
				break;
			memcpy(out + len, ins, n);
			len += n;
			p += 2;
		} else {
			out[len++] = *p;
		}
	}
	out[len] = 0;
}

static const char *pick(const char *const *list, size_t count, uint64_t h)
{
	return list[h % count];
}

void gen_station(const struct sim_gen *gen, uint64_t u, int version, struct sim_station *st)
{
	st->u = u;
	st->version = version;
	st->op = gen_station_operator(gen, u);
	gen_station_region(gen, u, &st->region, &st->zcode);
	memcpy(st->zscode, st->zcode, 2);
	memcpy(st->zscode + 2, st->region->suffix, 4);
	st->lat_e6 = st->region->lat_e6 + jitter(gen, TAG_LAT, u, st->region->half_lat_e6);
	st->lng_e6 = st->region->lng_e6 + jitter(gen, TAG_LNG, u, st->region->half_lng_e6);
	format_e6(st->lat_e6, st->lat);
	format_e6(st->lng_e6, st->lng);
	gen_station_kind(gen, u, &st->kind, st->kind_detail);
	st->is_fast = H(gen, TAG_CLASS, u, 0) % 1000 < 300;
	if (!gen_stat_id(gen, u, st->op, st->stat_id))
		memcpy(st->stat_id, "XX000000", 9);

	const struct sim_kind *kind = &sim_kinds[st->kind];
	size_t patterns = 0;
	while (kind->names[patterns])
		patterns++;
	expand_name(pick(kind->names, patterns, H(gen, TAG_NAME, u, 0)), st->region,
		    pick(sim_brands, sim_brand_count, H(gen, TAG_NAME, u, 1)),
		    (int)(H(gen, TAG_NAME, u, 2) % 9) + 1, st->stat_nm, sizeof(st->stat_nm));
	snprintf(st->addr, sizeof(st->addr), "%s %s %s %d", sim_province_name(st->zcode),
		 st->region->district, pick(sim_roads, sim_road_count, H(gen, TAG_ADDR, u, 0)),
		 (int)(H(gen, TAG_ADDR, u, 1) % 999) + 1);
	st->addr_detail =
		H(gen, TAG_ADDR, u, 2) % 100 < 30
			? pick(sim_addr_details, sim_addr_detail_count, H(gen, TAG_ADDR, u, 3))
			: "";
	st->location = H(gen, TAG_ADDR, u, 4) % 100 < 60
			       ? pick(sim_locations, sim_location_count, H(gen, TAG_ADDR, u, 5))
			       : "";

	/* Mutable fields: each station change (version + 1) cycles useTime to
	 * the next entry and flips parkingFree, so every change is visible. */
	uint64_t use_base = H(gen, TAG_USETIME, u, 0) % 100 < 80
				    ? 0
				    : 1 + H(gen, TAG_USETIME, u, 1) % (sim_use_time_count - 1);
	st->use_time = sim_use_times[(use_base + (uint64_t)version) % sim_use_time_count];
	bool free_parking = H(gen, TAG_MISC, u, 0) % 100 < 60;
	if (version % 2 == 1)
		free_parking = !free_parking;
	st->parking_free = free_parking ? "Y" : "N";

	bool limited = H(gen, TAG_MISC, u, 1) % 100 < 20;
	st->limit_yn = limited ? "Y" : "N";
	st->limit_detail =
		limited ? pick(sim_limit_details, sim_limit_detail_count, H(gen, TAG_MISC, u, 2))
			: "";
	st->traffic_yn = H(gen, TAG_MISC, u, 3) % 100 < 5 ? "Y" : "N";
	st->note = H(gen, TAG_MISC, u, 4) % 100 < 15
			   ? pick(sim_notes, sim_note_count, H(gen, TAG_MISC, u, 5))
			   : "";
	static const int year_cum[] = {4, 9, 16, 26, 38, 54, 72, 90, 100}; /* 2016..2024 */
	int y = (int)(H(gen, TAG_MISC, u, 6) % 100), yi = 0;
	while (y >= year_cum[yi])
		yi++;
	snprintf(st->year, sizeof(st->year), "%d", 2016 + yi);
	bool underground = H(gen, TAG_MISC, u, 7) % 100 < 35;
	st->floor_type = underground ? "B" : "F";
	st->floor_num[0] = underground ? (char)('1' + H(gen, TAG_MISC, u, 8) % 3) : '1';
	st->floor_num[1] = 0;
}

static const char *const outputs_ac[] = {"7", "11", "3"};
static const char *const outputs_ac3[] = {"22", "43"};
static const char *const outputs_dc[] = {"50", "100", "200"};

void gen_charger(const struct sim_gen *gen, const struct sim_station *st, uint64_t slot,
		 int charger, int version, struct sim_charger *ch)
{
	ch->slot = slot;
	ch->version = version;
	ch->chger_id[0] = (char)('0' + (charger + 1) / 10);
	ch->chger_id[1] = (char)('0' + (charger + 1) % 10);
	ch->chger_id[2] = 0;
	int x = (int)(H(gen, TAG_TYPE, slot, 0) % 100);
	const char *const *outputs;
	size_t noutputs;
	uint64_t base;
	int o = (int)(H(gen, TAG_OUTPUT, slot, 0) % 100);
	if (!st->is_fast) {
		bool three_phase = x >= 95;
		ch->chger_type = three_phase ? "07" : "02";
		outputs = three_phase ? outputs_ac3 : outputs_ac;
		noutputs = three_phase ? 2 : 3;
		base = three_phase ? (o < 50 ? 0 : 1) : (o < 90 ? 0 : o < 97 ? 1 : 2);
	} else {
		ch->chger_type = x < 35	  ? "04"
				 : x < 70 ? "06"
				 : x < 85 ? "05"
				 : x < 90 ? "01"
					  : "03";
		outputs = outputs_dc;
		noutputs = 3;
		base = o < 55 ? 0 : o < 80 ? 1 : 2;
	}
	/* A charger change (version + 1) moves output to the next value of its
	 * type's list, so every change is visible. */
	ch->output = outputs[(base + (uint64_t)version) % noutputs];
	if (version == 0 && H(gen, TAG_OUTPUT, slot, 1) % 1000 < 10)
		ch->output = "";
	int m = (int)(H(gen, TAG_METHOD, slot, 0) % 100);
	if (st->is_fast)
		ch->method = m < 75 ? "단독" : m < 95 ? "동시" : "";
	else
		ch->method = m < 95 ? "단독" : "";
	ch->power_type =
		H(gen, TAG_METHOD, slot, 1) % 100 < 30 ? (st->is_fast ? "급속" : "완속") : "";
}
