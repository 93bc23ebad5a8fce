#include "snap.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "search.h"

/* Grid cells of 0.01 degree (about 1.1 km north-south): a city box of a
 * hundred stations spans a few cells. Coarser when the data spans so much
 * of the globe that the grid would pass GRID_MAX_CELLS. */
#define GRID_CELL_DEGREES 0.01
#define GRID_MAX_CELLS	  (4u << 20)
/* Snapshots at least this big are freed off the thread that dropped the
 * last reference (snap_unref). */
#define SNAP_RECLAIM_BYTES (16u << 20)
/* Strings at most this long are interned: operator names and codes, hours,
 * charger ids and types repeat across the whole data set. */
#define INTERN_MAX_LEN 64

/* ---- text arena with interning ---- */

struct arena {
	struct buf text;
	uint32_t *slots; /* offsets of interned strings, 0 = empty slot */
	size_t mask;
	size_t used;
};

static uint32_t hash_bytes(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static bool arena_init(struct arena *a)
{
	memset(a, 0, sizeof(*a));
	buf_putc(&a->text, '\0'); /* offset 0 is "" */
	a->mask = (1u << 12) - 1;
	a->slots = calloc(a->mask + 1, sizeof(*a->slots));
	return a->slots && buf_ok(&a->text);
}

static void arena_free(struct arena *a)
{
	buf_free(&a->text);
	free(a->slots);
	a->slots = NULL;
}

static uint32_t arena_append(struct arena *a, const char *s, size_t len)
{
	uint32_t off = (uint32_t)a->text.len;
	buf_append(&a->text, s, len);
	buf_putc(&a->text, '\0');
	return off;
}

static bool arena_grow(struct arena *a)
{
	size_t size = (a->mask + 1) * 2;
	uint32_t *slots = calloc(size, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i <= a->mask; i++) {
		uint32_t off = a->slots[i];
		if (!off)
			continue;
		const char *s = a->text.data + off;
		size_t j = hash_bytes(s, strlen(s)) & (size - 1);
		while (slots[j])
			j = (j + 1) & (size - 1);
		slots[j] = off;
	}
	free(a->slots);
	a->slots = slots;
	a->mask = size - 1;
	return true;
}

/* Offset of s in the arena: shared with earlier equal strings when short. */
static uint32_t arena_put(struct arena *a, const char *s)
{
	if (!s || !*s)
		return 0;
	size_t len = strlen(s);
	if (len > INTERN_MAX_LEN)
		return arena_append(a, s, len);
	if ((a->used + 1) * 2 > a->mask + 1 && !arena_grow(a)) {
		a->text.failed = true;
		return 0;
	}
	size_t i = hash_bytes(s, len) & a->mask;
	for (; a->slots[i]; i = (i + 1) & a->mask) {
		const char *t = a->text.data + a->slots[i];
		if (strcmp(t, s) == 0)
			return a->slots[i];
	}
	uint32_t off = arena_append(a, s, len);
	a->slots[i] = off;
	a->used++;
	return off;
}

/* ---- builder ---- */

/* A charger while building: its live word travels with it through the sort. */
struct build_charger {
	struct snap_charger c;
	uint64_t live; /* from the load-time status */
};

struct snap_builder {
	struct arena arena;
	struct snap_station *stations;
	size_t nstations, stations_cap;
	struct build_charger *chargers;
	size_t nchargers, chargers_cap;
	uint32_t *by_id; /* station id hash -> index + 1, made at the first charger */
	size_t by_id_mask;
	uint32_t last_station; /* the last charger's station (a cache) */
	bool in_chargers;
	size_t skipped_chargers;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct snap_builder *snap_builder_new(void)
{
	struct snap_builder *b = calloc(1, sizeof(*b));
	if (!b || !arena_init(&b->arena)) {
		snap_builder_free(b);
		return NULL;
	}
	return b;
}

void snap_builder_free(struct snap_builder *b)
{
	if (!b)
		return;
	arena_free(&b->arena);
	free(b->stations);
	free(b->chargers);
	free(b->by_id);
	free(b);
}

static bool grow(void **array, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap * 2 : 1024;
	while (n < need)
		n *= 2;
	void *more = realloc(*array, n * size);
	if (!more)
		return false;
	*array = more;
	*cap = n;
	return true;
}

static const char *text_of(const struct snap_builder *b, uint32_t off)
{
	return b->arena.text.data + off;
}

bool snap_builder_station(struct snap_builder *b, const struct snap_station_row *row, char *err,
			  size_t errlen)
{
	if (b->in_chargers) {
		errf(err, errlen, "station %s after the chargers", row->stat_id);
		return false;
	}
	if (!row->stat_id || !*row->stat_id) {
		errf(err, errlen, "station without an id");
		return false;
	}
	if (!grow((void **)&b->stations, &b->stations_cap, b->nstations + 1,
		  sizeof(*b->stations))) {
		errf(err, errlen, "out of memory");
		return false;
	}
	struct arena *a = &b->arena;
	struct snap_station *st = &b->stations[b->nstations];
	memset(st, 0, sizeof(*st));
	st->id = arena_append(a, row->stat_id, strlen(row->stat_id));
	st->name = arena_put(a, row->name);
	st->addr = arena_put(a, row->addr);
	st->location = arena_put(a, row->location);
	st->use_time = arena_put(a, row->use_time);
	st->busi_id = arena_put(a, row->busi_id);
	st->bnm = arena_put(a, row->bnm);
	st->busi_nm = arena_put(a, row->busi_nm);
	st->busi_call = arena_put(a, row->busi_call);
	st->limit_detail = arena_put(a, row->limit_detail);
	st->note = arena_put(a, row->note);
	st->lat = row->lat;
	st->lng = row->lng;
	st->is_parking_free = row->parking_free == 1;
	st->is_private = row->limit_yn == 1;
	st->city = SNAP_NO_CITY;
	const struct model_region *region =
		row->zcode ? model_region_by_zcode_text(row->zcode, strlen(row->zcode)) : NULL;
	st->region = region ? (uint8_t)model_region_index(region) : SNAP_NO_REGION;
	if (!buf_ok(&a->text)) {
		errf(err, errlen, "out of memory");
		return false;
	}
	b->nstations++;
	return true;
}

/* Sorting station numbers: the arena offsets of their ids, compared. */
struct id_order {
	const char *text;
	const struct snap_station *stations;
};

static int cmp_station_id(const void *x, const void *y, void *arg)
{
	const struct id_order *o = arg;
	return strcmp(o->text + o->stations[*(const uint32_t *)x].id,
		      o->text + o->stations[*(const uint32_t *)y].id);
}

/* Sort the stations by id: an index array through the sort, then one pass
 * to permute (the structs are too big to move around in a merge sort). */
static bool sort_stations(struct snap_builder *b)
{
	/* a table scanned in heap order after a bulk load often is in order
	 * already: one pass to see, before a sort of O(n log n) strcmp calls */
	size_t i = 1;
	while (i < b->nstations &&
	       strcmp(text_of(b, b->stations[i - 1].id), text_of(b, b->stations[i].id)) < 0)
		i++;
	if (i >= b->nstations)
		return true;
	uint32_t *order = malloc(b->nstations * sizeof(*order));
	struct snap_station *sorted = malloc(b->nstations * sizeof(*sorted));
	if (!order || !sorted) {
		free(order);
		free(sorted);
		return false;
	}
	for (i = 0; i < b->nstations; i++)
		order[i] = (uint32_t)i;
	struct id_order o = {b->arena.text.data, b->stations};
	qsort_r(order, b->nstations, sizeof(*order), cmp_station_id, &o);
	for (i = 0; i < b->nstations; i++)
		sorted[i] = b->stations[order[i]];
	free(order);
	free(b->stations);
	b->stations = sorted;
	b->stations_cap = b->nstations;
	return true;
}

/* Rows come in any order (a sort here is cheaper than the server's): sort
 * the stations by id, refuse duplicates, index them by id. */
static bool prepare_stations(struct snap_builder *b, char *err, size_t errlen)
{
	b->in_chargers = true;
	b->last_station = UINT32_MAX;
	if (b->nstations > 1 && !sort_stations(b)) {
		errf(err, errlen, "out of memory");
		return false;
	}
	for (size_t i = 1; i < b->nstations; i++) {
		if (strcmp(text_of(b, b->stations[i - 1].id), text_of(b, b->stations[i].id)) == 0) {
			errf(err, errlen, "duplicate station %s", text_of(b, b->stations[i].id));
			return false;
		}
	}
	size_t size = 1024;
	while (size < b->nstations * 2 + 2)
		size *= 2;
	b->by_id = calloc(size, sizeof(*b->by_id));
	if (!b->by_id) {
		errf(err, errlen, "out of memory");
		return false;
	}
	b->by_id_mask = size - 1;
	for (size_t i = 0; i < b->nstations; i++) {
		const char *id = text_of(b, b->stations[i].id);
		size_t j = hash_bytes(id, strlen(id)) & b->by_id_mask;
		while (b->by_id[j])
			j = (j + 1) & b->by_id_mask;
		b->by_id[j] = (uint32_t)i + 1;
	}
	return true;
}

static bool station_by_id(const struct snap_builder *b, const char *id, uint32_t *index)
{
	for (size_t j = hash_bytes(id, strlen(id)) & b->by_id_mask; b->by_id[j];
	     j = (j + 1) & b->by_id_mask) {
		uint32_t i = b->by_id[j] - 1;
		if (strcmp(text_of(b, b->stations[i].id), id) == 0) {
			*index = i;
			return true;
		}
	}
	return false;
}

static uint8_t method_code(const char *method)
{
	if (method && strcmp(method, "단독") == 0)
		return 1;
	if (method && strcmp(method, "동시") == 0)
		return 2;
	return 0;
}

bool snap_builder_charger(struct snap_builder *b, const struct snap_charger_row *row, char *err,
			  size_t errlen)
{
	if (!b->in_chargers && !prepare_stations(b, err, errlen))
		return false;
	if (!row->stat_id || !row->chger_id || !*row->chger_id) {
		errf(err, errlen, "charger without a key");
		return false;
	}
	/* a station's chargers mostly come one after another: try the last
	 * charger's station before the hash */
	uint32_t st = b->last_station;
	if (!(st < b->nstations && strcmp(text_of(b, b->stations[st].id), row->stat_id) == 0)) {
		if (!station_by_id(b, row->stat_id, &st)) {
			b->skipped_chargers++; /* its station is deleted or missing */
			return true;
		}
		b->last_station = st;
	}
	struct snap_station *station = &b->stations[st];
	if (station->charger_count == UINT16_MAX) {
		b->skipped_chargers++;
		return true;
	}
	if (!grow((void **)&b->chargers, &b->chargers_cap, b->nchargers + 1,
		  sizeof(*b->chargers))) {
		errf(err, errlen, "out of memory");
		return false;
	}
	struct build_charger *bc = &b->chargers[b->nchargers];
	struct snap_charger *ch = &bc->c;
	memset(bc, 0, sizeof(*bc));
	ch->station = st;
	ch->id = arena_put(&b->arena, row->chger_id);
	ch->type_text = arena_put(&b->arena, row->chger_type);
	int code = 0;
	if (row->chger_type && model_type_parse(row->chger_type, strlen(row->chger_type), &code))
		ch->type = (uint8_t)code;
	ch->output_ckw = row->output_ckw;
	ch->method = method_code(row->method);
	station->charger_count++;
	if (row->output_ckw != SNAP_KW_UNKNOWN && model_is_quick(row->output_ckw / 100.0))
		station->quick_count++;
	int64_t t = row->stat_upd_unix > 0 ? row->stat_upd_unix : 0;
	bc->live = SNAP_LIVE_WORD(row->stat, t);
	if (!buf_ok(&b->arena.text)) {
		errf(err, errlen, "out of memory");
		return false;
	}
	b->nchargers++;
	return true;
}

static int cmp_charger_key_build(const void *x, const void *y, void *arg);

static bool sort_chargers(struct snap_builder *b)
{
	size_t n = b->nchargers;
	uint32_t *start = calloc(b->nstations + 1, sizeof(*start));
	struct build_charger *sorted = malloc(n * sizeof(*sorted));
	if (!start || !sorted) {
		free(start);
		free(sorted);
		return false;
	}
	for (size_t i = 0; i < b->nstations; i++)
		start[i + 1] = start[i] + b->stations[i].charger_count;
	for (size_t i = 0; i < n; i++)
		sorted[start[b->chargers[i].c.station]++] = b->chargers[i];
	free(start);
	free(b->chargers);
	b->chargers = sorted;
	const char *text = b->arena.text.data;
	for (size_t i = 1; i < n; i++) { /* insertion sort: groups are small, mostly in order */
		struct build_charger cur = sorted[i];
		size_t j = i;
		while (j > 0 && cmp_charger_key_build(&sorted[j - 1], &cur, (void *)text) > 0) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = cur;
	}
	return true;
}

static int cmp_charger_key_build(const void *x, const void *y, void *arg)
{
	const struct build_charger *a = x, *b = y;
	if (a->c.station != b->c.station)
		return a->c.station < b->c.station ? -1 : 1;
	const char *text = arg;
	return strcmp(text + a->c.id, text + b->c.id);
}

/* ---- finishing ---- */

/* A coordinate as the shortest text that reads back exactly. Upstream
 * coordinates carry at most 7 decimals, so fixed notation with trailing
 * zeros dropped almost always is that text, at a fraction of the cost of
 * the general search; anything else takes the general path. */
static void put_coordinate(struct buf *t, double v)
{
	char storage[64];
	struct buf fixed;
	buf_init_with(&fixed, storage, sizeof(storage));
	buf_put_double(&fixed, v, 7);
	if (buf_ok(&fixed) && fixed.data == storage) {
		size_t len = fixed.len;
		while (len > 0 && storage[len - 1] == '0')
			len--;
		if (len > 0 && storage[len - 1] == '.')
			len--;
		storage[len] = '\0';
		if (len > 0 && strtod(storage, NULL) == v && !(v == 0 && signbit(v))) {
			buf_append(t, storage, len);
			return;
		}
	}
	buf_put_double(t, v, BUF_SHORTEST);
}

static void put_marker(struct buf *t, const struct snap *s, const struct snap_station *st)
{
	buf_puts(t, "{\"stationId\":\"");
	const char *v = snap_text(s, st->id);
	json_escape(t, v, strlen(v));
	buf_puts(t, "\",\"stationName\":\"");
	v = snap_text(s, st->name);
	json_escape(t, v, strlen(v));
	buf_puts(t, "\",\"latitude\":");
	put_coordinate(t, st->lat);
	buf_puts(t, ",\"longitude\":");
	put_coordinate(t, st->lng);
	buf_puts(t, st->is_parking_free ? ",\"isParkingFree\":true" : ",\"isParkingFree\":false");
	buf_puts(t, st->is_private ? ",\"isPrivate\":true" : ",\"isPrivate\":false");
	buf_puts(t, ",\"availableCount\":");
}

/* The most put_marker can write for a station: the fixed text, two
 * coordinates and the id and name escaped (at most 6 bytes per byte). */
static size_t marker_room(const struct snap_builder *b, const struct snap_station *st)
{
	return 256 + 6 * (strlen(text_of(b, st->id)) + strlen(text_of(b, st->name)));
}

/* The most put_search_text can write: normalizing never lengthens. */
static size_t search_room(const struct snap_builder *b, const struct snap_station *st)
{
	return 8 + strlen(text_of(b, st->name)) + strlen(text_of(b, st->addr)) +
	       strlen(text_of(b, st->busi_nm)) + strlen(text_of(b, st->bnm));
}

static void put_search_text(struct buf *t, const struct snap *s, const struct snap_station *st)
{
	const uint32_t fields[] = {st->name, st->addr, st->busi_nm, st->bnm};
	for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
		if (i)
			buf_putc(t, SEARCH_FIELD_SEP);
		const char *v = snap_text(s, fields[i]);
		search_normalize(t, v, strlen(v));
	}
	buf_putc(t, '\0');
}

/* "서울특별시 강남구 테헤란로 1" -> "서울특별시 강남구": the first two words
 * when the second names a city, county or district (ends in 시, 군, 구). */
static bool city_name(const char *addr, char *out, size_t outlen)
{
	const char *sp1 = strchr(addr, ' ');
	if (!sp1 || sp1 == addr)
		return false;
	const char *w2 = sp1 + 1;
	const char *end = strchr(w2, ' ');
	size_t len = end ? (size_t)(end - addr) : strlen(addr);
	size_t w2len = (size_t)(addr + len - w2);
	if (w2len < 3 || len + 1 > outlen)
		return false;
	const char *tail = addr + len - 3;
	if (memcmp(tail, "시", 3) != 0 && memcmp(tail, "군", 3) != 0 && memcmp(tail, "구", 3) != 0)
		return false;
	memcpy(out, addr, len);
	out[len] = '\0';
	return true;
}

static int cmp_text_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

static bool build_filters(struct snap *s)
{
	struct buf out = BUF_INIT;
	struct json_gen g;
	size_t nnames = s->nstations > MODEL_TYPE_MAX ? s->nstations : MODEL_TYPE_MAX;
	const char **names = malloc((nnames + 1) * sizeof(*names));
	int32_t *kws = malloc((s->nchargers + 1) * sizeof(*kws));
	if (!names || !kws)
		goto fail;
	json_gen_init(&g, &out);
	json_obj_begin(&g);
	json_key(&g, "companies");
	json_arr_begin(&g);
	size_t n = 0;
	for (uint32_t i = 0; i < s->nstations; i++)
		if (s->stations[i].busi_id)
			names[n++] = snap_text(s, s->stations[i].busi_id);
	qsort(names, n, sizeof(*names), cmp_text_ptr);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			json_str(&g, names[i]);
	json_arr_end(&g);
	json_key(&g, "capacities");
	json_arr_begin(&g);
	n = 0;
	for (uint32_t i = 0; i < s->nchargers; i++)
		if (s->chargers[i].output_ckw >= 0)
			kws[n++] = s->chargers[i].output_ckw;
	qsort(kws, n, sizeof(*kws), cmp_i32);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && kws[i] == kws[i - 1])
			continue;
		char text[32];
		snprintf(text, sizeof(text), "%d.%02d", kws[i] / 100, kws[i] % 100);
		json_str(&g, text);
	}
	json_arr_end(&g);
	json_key(&g, "connectorTypes");
	json_arr_begin(&g);
	bool seen[MODEL_TYPE_MAX + 1] = {false};
	for (uint32_t i = 0; i < s->nchargers; i++)
		seen[s->chargers[i].type] = true;
	n = 0;
	for (int code = 1; code <= MODEL_TYPE_MAX; code++)
		if (seen[code])
			names[n++] = model_type_name(code);
	qsort(names, n, sizeof(*names), cmp_text_ptr);
	for (size_t i = 0; i < n; i++)
		json_str(&g, names[i]);
	json_arr_end(&g);
	json_obj_end(&g);
	if (!json_gen_finish(&g))
		goto fail;
	free(names);
	free(kws);
	s->filters_json = buf_detach(&out, &s->filters_len);
	return s->filters_json != NULL;
fail:
	free(names);
	free(kws);
	buf_free(&out);
	return false;
}

static bool build_grid(struct snap *s)
{
	double min_lat = 90, max_lat = -90, min_lng = 180, max_lng = -180;
	for (uint32_t i = 0; i < s->nstations; i++) {
		const struct snap_station *st = &s->stations[i];
		min_lat = fmin(min_lat, st->lat);
		max_lat = fmax(max_lat, st->lat);
		min_lng = fmin(min_lng, st->lng);
		max_lng = fmax(max_lng, st->lng);
	}
	if (s->nstations == 0)
		min_lat = max_lat = min_lng = max_lng = 0;
	double cell = GRID_CELL_DEGREES;
	for (;;) {
		s->grid_lat0 = floor(min_lat / cell) * cell;
		s->grid_lng0 = floor(min_lng / cell) * cell;
		double rows = floor((max_lat - s->grid_lat0) / cell) + 1;
		double cols = floor((max_lng - s->grid_lng0) / cell) + 1;
		if (rows * cols <= GRID_MAX_CELLS) {
			s->grid_rows = (uint32_t)rows;
			s->grid_cols = (uint32_t)cols;
			break;
		}
		cell *= 2;
	}
	s->grid_cell = cell;
	size_t ncells = (size_t)s->grid_rows * s->grid_cols;
	s->grid_start = calloc(ncells + 1, sizeof(*s->grid_start));
	s->grid_items = malloc((s->nstations + 1) * sizeof(*s->grid_items));
	uint32_t *cell_of = malloc((s->nstations + 1) * sizeof(*cell_of));
	if (!s->grid_start || !s->grid_items || !cell_of) {
		free(cell_of);
		return false;
	}
	for (uint32_t i = 0; i < s->nstations; i++) {
		const struct snap_station *st = &s->stations[i];
		uint32_t r = (uint32_t)floor((st->lat - s->grid_lat0) / cell);
		uint32_t c = (uint32_t)floor((st->lng - s->grid_lng0) / cell);
		if (r >= s->grid_rows)
			r = s->grid_rows - 1;
		if (c >= s->grid_cols)
			c = s->grid_cols - 1;
		cell_of[i] = r * s->grid_cols + c;
		s->grid_start[cell_of[i] + 1]++;
	}
	for (size_t i = 0; i < ncells; i++)
		s->grid_start[i + 1] += s->grid_start[i];
	uint32_t *fill = cell_of; /* reused: cell -> next slot is start[] itself below */
	for (uint32_t i = 0; i < s->nstations; i++) {
		uint32_t c = fill[i];
		s->grid_items[s->grid_start[c]++] = i;
	}
	/* start[c] now holds the end of cell c: shift back */
	for (size_t i = ncells; i > 0; i--)
		s->grid_start[i] = s->grid_start[i - 1];
	s->grid_start[0] = 0;
	free(cell_of);
	return true;
}

/* Small u32 -> u32 map for grouping stations into cities by name offset. */
struct u32map {
	uint32_t *keys, *values;
	size_t mask;
};

static bool cities_build(struct snap *s)
{
	struct u32map map = {NULL, NULL, 0};
	size_t size = 1024;
	while (size < (size_t)s->nstations * 2 + 2)
		size *= 2;
	map.mask = size - 1;
	map.keys = calloc(size, sizeof(uint32_t));
	map.values = calloc(size, sizeof(uint32_t));
	size_t cap = 0;
	struct arena names;
	bool ok = map.keys && map.values && arena_init(&names);
	for (uint32_t i = 0; ok && i < s->nstations; i++) {
		char name[256];
		struct snap_station *st = &s->stations[i];
		if (!city_name(snap_text(s, st->addr), name, sizeof(name)))
			continue;
		uint32_t key = arena_put(&names, name);
		size_t j = hash_bytes((const char *)&key, sizeof(key)) & map.mask;
		while (map.keys[j] && map.keys[j] != key)
			j = (j + 1) & map.mask;
		if (!map.keys[j]) {
			if (!grow((void **)&s->cities, &cap, s->ncities + 1, sizeof(*s->cities))) {
				ok = false;
				break;
			}
			map.keys[j] = key;
			map.values[j] = s->ncities;
			s->cities[s->ncities++] = (struct snap_city){key, 0, 0, 0};
		}
		struct snap_city *city = &s->cities[map.values[j]];
		city->lat += st->lat;
		city->lng += st->lng;
		city->stations++;
		st->city = map.values[j];
	}
	ok = ok && buf_ok(&names.text);
	for (uint32_t c = 0; ok && c < s->ncities; c++) {
		struct snap_city *city = &s->cities[c];
		city->lat /= city->stations;
		city->lng /= city->stations;
	}
	if (ok) {
		/* append the city names to the snapshot's text */
		size_t base = s->text_len;
		char *text = realloc(s->text, base + names.text.len + 1);
		if (!text) {
			ok = false;
		} else {
			memcpy(text + base, names.text.data, names.text.len);
			s->text = text;
			s->text_len = base + names.text.len;
			for (uint32_t c = 0; c < s->ncities; c++)
				s->cities[c].name += (uint32_t)base;
		}
	}
	arena_free(&names);
	free(map.keys);
	free(map.values);
	return ok;
}

struct snap *snap_builder_finish(struct snap_builder *b, char *err, size_t errlen)
{
	struct snap *s = NULL;
	struct timespec t0, ta, tb, tc, td, te;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	if (!b->in_chargers && !prepare_stations(b, err, errlen))
		goto fail;
	/* chargers by (station, chargerId): a counting sort by station (stable,
	 * linear), then each station's few chargers by id */
	if (b->nchargers > 1 && !sort_chargers(b))
		goto oom;
	for (size_t i = 1; i < b->nchargers; i++) {
		if (cmp_charger_key_build(&b->chargers[i - 1], &b->chargers[i],
					  b->arena.text.data) == 0) {
			errf(err, errlen, "duplicate charger %s/%s",
			     text_of(b, b->stations[b->chargers[i].c.station].id),
			     text_of(b, b->chargers[i].c.id));
			goto fail;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	atomic_init(&s->refs, 1);
	/* keep the stations that have chargers; renumber */
	uint32_t *renum = malloc((b->nstations + 1) * sizeof(*renum));
	if (!renum)
		goto oom;
	uint32_t kept = 0;
	for (size_t i = 0; i < b->nstations; i++) {
		renum[i] = kept;
		if (b->stations[i].charger_count > 0)
			b->stations[kept++] = b->stations[i];
	}
	s->nstations = kept;
	s->nchargers = (uint32_t)b->nchargers;
	s->chargers = malloc((b->nchargers + 1) * sizeof(*s->chargers));
	s->live = malloc((b->nchargers + 1) * sizeof(*s->live));
	s->available = calloc(kept + 1, sizeof(*s->available));
	if (!s->chargers || !s->live || !s->available) {
		free(renum);
		goto oom;
	}
	for (size_t i = 0; i < b->nchargers; i++) {
		struct snap_charger *ch = &s->chargers[i];
		*ch = b->chargers[i].c;
		ch->station = renum[ch->station];
		struct snap_station *st = &b->stations[ch->station];
		if (i == 0 || s->chargers[i - 1].station != ch->station)
			st->first_charger = (uint32_t)i;
		atomic_init(&s->live[i], b->chargers[i].live);
		if (snap_live_status(b->chargers[i].live) == MODEL_STATUS_STANDBY)
			s->available[ch->station]++;
	}
	free(renum);
	free(b->chargers);
	b->chargers = NULL;
	s->stations = realloc(b->stations, (kept + 1) * sizeof(*s->stations));
	if (!s->stations) {
		s->stations = b->stations;
		b->stations = NULL;
		goto oom;
	}
	b->stations = NULL;
	/* The markers and search texts go after the arena's text, which they
	 * quote: room for the most they can take is reserved first, so the
	 * arena does not move while they are written (no second buffer to
	 * fill, fault in and copy over). */
	struct buf *t = &b->arena.text;
	size_t room = 0;
	for (uint32_t i = 0; i < kept; i++)
		room += marker_room(b, &s->stations[i]) + search_room(b, &s->stations[i]);
	if (!buf_reserve(t, room))
		goto oom;
	s->text = t->data;
	size_t limit = t->len + room;
	for (uint32_t i = 0; i < kept; i++) {
		struct snap_station *st = &s->stations[i];
		st->marker = (uint32_t)t->len;
		put_marker(t, s, st);
		st->marker_len = (uint32_t)(t->len - st->marker);
		st->search = (uint32_t)t->len;
		put_search_text(t, s, st);
	}
	if (!buf_ok(t) || t->len > UINT32_MAX)
		goto oom;
	if (t->len > limit || t->data != s->text) {
		errf(err, errlen, "read model: markers outgrew their room"); /* a bug */
		goto fail;
	}
	s->text = buf_detach(t, &s->text_len);
	if (!s->text)
		goto oom;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ta);
	if (!cities_build(s))
		goto oom;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &tb);
	if (!build_grid(s) || !build_filters(s))
		goto oom;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &tc);
	s->search_docs = malloc((kept + 1) * sizeof(*s->search_docs));
	if (!s->search_docs)
		goto oom;
	for (uint32_t i = 0; i < kept; i++)
		s->search_docs[i] = s->text + s->stations[i].search;
	s->search = search_build(s->search_docs, kept);
	if (!s->search)
		goto oom;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &td);
	for (uint32_t i = 0; i < kept; i++)
		if (s->stations[i].region != SNAP_NO_REGION)
			s->region_counts[s->stations[i].region]++;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &te);
#define SECS(a, b) ((double)((b).tv_sec - (a).tv_sec) + ((b).tv_nsec - (a).tv_nsec) / 1e9)
	log_debug("read model (CPU): sort and markers %.3f s, cities %.3f s, grid and filters %.3f "
		  "s, "
		  "search %.3f s, rest %.3f s",
		  SECS(t0, ta), SECS(ta, tb), SECS(tb, tc), SECS(tc, td), SECS(td, te));
	s->memory_bytes = s->text_len + (size_t)kept * (sizeof(*s->stations) + 16 + 8) +
			  (size_t)s->nchargers * (sizeof(*s->chargers) + 8) +
			  ((size_t)s->grid_rows * s->grid_cols + 1) * 4 + search_memory(s->search) +
			  s->filters_len + s->ncities * sizeof(*s->cities);
	snap_builder_free(b);
	return s;
oom:
	errf(err, errlen, "out of memory building the read model");
fail:
	snap_builder_free(b);
	snap_unref(s);
	return NULL;
}

/* ---- lifetime ---- */

struct snap *snap_ref(struct snap *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

static void snap_free(struct snap *s)
{
	free(s->stations);
	free(s->chargers);
	free((void *)s->live);
	free((void *)s->available);
	free(s->text);
	free(s->grid_start);
	free(s->grid_items);
	search_free(s->search);
	free(s->search_docs);
	free(s->cities);
	free(s->filters_json);
	free(s);
}

static void *free_in_background(void *arg)
{
	/* raising one's own nice value needs no privilege */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
		log_debug("read model: reclaim thread stays at its nice value");
	snap_free(arg);
	return NULL;
}

void snap_unref(struct snap *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* The last reference is mostly dropped by an HTTP worker (the last
	 * to swap to the next model). Unmapping a big model there stalls
	 * every connection of that worker: a p99 spike per rebuild. A big
	 * one goes back on a detached thread at nice 19; a small one, or
	 * when no thread can be started, here. */
	if (s->memory_bytes >= SNAP_RECLAIM_BYTES) {
		pthread_attr_t attr;
		pthread_t thread;
		if (pthread_attr_init(&attr) == 0) {
			bool started =
				pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
				pthread_create(&thread, &attr, free_in_background, s) == 0;
			pthread_attr_destroy(&attr);
			if (started)
				return;
		}
	}
	snap_free(s);
}

/* ---- reading ---- */

bool snap_find_station(const struct snap *s, const char *stat_id, uint32_t *index)
{
	uint32_t lo = 0, hi = s->nstations;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(snap_text(s, s->stations[mid].id), stat_id);
		if (c == 0) {
			*index = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

bool snap_find_charger(const struct snap *s, const char *stat_id, const char *chger_id,
		       uint32_t *index)
{
	uint32_t st;
	if (!snap_find_station(s, stat_id, &st))
		return false;
	const struct snap_station *station = &s->stations[st];
	for (uint32_t i = 0; i < station->charger_count; i++) {
		uint32_t c = station->first_charger + i;
		if (strcmp(snap_text(s, s->chargers[c].id), chger_id) == 0) {
			*index = c;
			return true;
		}
	}
	return false;
}

static long cell_index(double v, double origin, double cell, uint32_t n)
{
	double x = floor((v - origin) / cell);
	if (x < 0)
		return -1;
	if (x >= n)
		return (long)n;
	return (long)x;
}

void snap_box_visit(const struct snap *s, const struct snap_box *box, snap_visit_fn fn, void *arg)
{
	if (s->nstations == 0 || !(box->min_lat <= box->max_lat) || !(box->min_lng <= box->max_lng))
		return;
	long r0 = cell_index(box->min_lat, s->grid_lat0, s->grid_cell, s->grid_rows);
	long r1 = cell_index(box->max_lat, s->grid_lat0, s->grid_cell, s->grid_rows);
	long c0 = cell_index(box->min_lng, s->grid_lng0, s->grid_cell, s->grid_cols);
	long c1 = cell_index(box->max_lng, s->grid_lng0, s->grid_cell, s->grid_cols);
	if (r1 < 0 || c1 < 0 || r0 >= (long)s->grid_rows || c0 >= (long)s->grid_cols)
		return;
	if (r0 < 0)
		r0 = 0;
	if (c0 < 0)
		c0 = 0;
	if (r1 >= (long)s->grid_rows)
		r1 = (long)s->grid_rows - 1;
	if (c1 >= (long)s->grid_cols)
		c1 = (long)s->grid_cols - 1;
	for (long r = r0; r <= r1; r++) {
		size_t first = (size_t)r * s->grid_cols + (size_t)c0;
		size_t last = (size_t)r * s->grid_cols + (size_t)c1;
		for (uint32_t k = s->grid_start[first]; k < s->grid_start[last + 1]; k++) {
			uint32_t i = s->grid_items[k];
			const struct snap_station *st = &s->stations[i];
			if (st->lat >= box->min_lat && st->lat <= box->max_lat &&
			    st->lng >= box->min_lng && st->lng <= box->max_lng && !fn(arg, i))
				return;
		}
	}
}

static bool charger_passes(const struct snap_charger *ch, const struct snap_filter *f)
{
	if (f->ntypes) {
		bool hit = false;
		for (size_t i = 0; i < f->ntypes && !hit; i++)
			hit = ch->type == f->types[i];
		if (!hit)
			return false;
	}
	if (f->ncapacities) {
		bool hit = false;
		for (size_t i = 0; i < f->ncapacities && !hit; i++)
			hit = ch->output_ckw == f->capacities[i] && ch->output_ckw >= 0;
		if (!hit)
			return false;
	}
	return true;
}

bool snap_station_matches(const struct snap *s, uint32_t station, const struct snap_filter *f)
{
	const struct snap_station *st = &s->stations[station];
	if (f->ncompanies) {
		const char *nm = snap_text(s, st->busi_nm), *bnm = snap_text(s, st->bnm),
			   *id = snap_text(s, st->busi_id);
		bool hit = false;
		for (size_t i = 0; i < f->ncompanies && !hit; i++) {
			const char *c = f->companies[i];
			hit = (*nm && strcmp(c, nm) == 0) || (*bnm && strcmp(c, bnm) == 0) ||
			      (*id && strcmp(c, id) == 0);
		}
		if (!hit)
			return false;
	}
	if (!f->ntypes && !f->ncapacities)
		return true; /* every station in the model has a charger */
	for (uint32_t i = 0; i < st->charger_count; i++)
		if (charger_passes(&s->chargers[st->first_charger + i], f))
			return true;
	return false;
}

size_t snap_cities_matching(const struct snap *s, const char *query, uint32_t *out, size_t max)
{
	struct buf q = BUF_INIT;
	search_normalize(&q, query, strlen(query));
	size_t n = 0;
	if (buf_ok(&q) && q.len > 0) {
		for (uint32_t c = 0; c < s->ncities; c++) {
			if (!strstr(snap_text(s, s->cities[c].name), buf_cstr(&q)))
				continue;
			/* keep the best `max` by station count, then name */
			size_t pos = n;
			while (pos > 0) {
				const struct snap_city *a = &s->cities[out[pos - 1]],
						       *b = &s->cities[c];
				bool before =
					b->stations > a->stations ||
					(b->stations == a->stations &&
					 strcmp(snap_text(s, b->name), snap_text(s, a->name)) < 0);
				if (!before)
					break;
				if (pos < max)
					out[pos] = out[pos - 1];
				pos--;
			}
			if (pos < max) {
				out[pos] = c;
				if (n < max)
					n++;
			}
		}
	}
	buf_free(&q);
	return n;
}

/* ---- live state ---- */

bool snap_live_apply(struct snap *s, uint32_t charger, int stat, int64_t unix_s)
{
	if (charger >= s->nchargers)
		return false;
	if (unix_s < 0)
		unix_s = 0;
	uint64_t old = atomic_load_explicit(&s->live[charger], memory_order_relaxed);
	if (unix_s < snap_live_time(old))
		return false;
	uint64_t word = SNAP_LIVE_WORD(stat, unix_s);
	if (word == old)
		return false;
	atomic_store_explicit(&s->live[charger], word, memory_order_relaxed);
	bool was_free = snap_live_status(old) == MODEL_STATUS_STANDBY;
	bool is_free = stat == MODEL_STATUS_STANDBY;
	_Atomic uint32_t *avail = &s->available[s->chargers[charger].station];
	if (is_free && !was_free)
		atomic_fetch_add_explicit(avail, 1, memory_order_relaxed);
	else if (was_free && !is_free)
		atomic_fetch_sub_explicit(avail, 1, memory_order_relaxed);
	return true;
}

static int cmp_charger_key(const struct snap *a, uint32_t i, const struct snap *b, uint32_t j)
{
	const struct snap_charger *x = &a->chargers[i], *y = &b->chargers[j];
	int c = strcmp(snap_text(a, a->stations[x->station].id),
		       snap_text(b, b->stations[y->station].id));
	return c ? c : strcmp(snap_text(a, x->id), snap_text(b, y->id));
}

bool snap_live_carry(struct snap *to, const struct snap *from, uint32_t **fresh, size_t *nfresh)
{
	*fresh = NULL;
	*nfresh = 0;
	size_t cap = 0;
	uint32_t i = 0, j = 0;
	while (i < to->nchargers) {
		int c = j < from->nchargers ? cmp_charger_key(to, i, from, j) : -1;
		if (c > 0) {
			j++;
			continue;
		}
		if (c == 0) {
			uint64_t w = snap_live_word(from, j);
			snap_live_apply(to, i, snap_live_status(w), snap_live_time(w));
			i++;
			j++;
			continue;
		}
		uint32_t st = to->chargers[i].station;
		if (*nfresh == 0 || (*fresh)[*nfresh - 1] != st) {
			if (!grow((void **)fresh, &cap, *nfresh + 1, sizeof(**fresh)))
				return false;
			(*fresh)[(*nfresh)++] = st;
		}
		i++;
	}
	return true;
}
