#include "area.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "params.h"
#include "routes.h"
#include "worker.h"
#include "server.h"

/* Bounds on the map box: half-widths in degrees. A box wider than these
 * is a country view, which clients draw with /stations/clusters. */
#define MARKER_DELTA_MAX      10.0
#define CLUSTER_DIVISIONS_MAX 100

static bool scratch_reserve(struct worker *w, size_t n)
{
	if (n <= w->scratch_cap)
		return true;
	size_t cap = w->scratch_cap ? w->scratch_cap : 1024;
	while (cap < n)
		cap *= 2;
	uint32_t *more = realloc(w->scratch, cap * sizeof(*more));
	if (!more)
		return false;
	w->scratch = more;
	w->scratch_cap = cap;
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- parameters shared by the box endpoints ---- */

/* Missing is an error too: every box parameter is required. */
static bool need_number(const struct params *p, const char *name, double min, double max,
			bool min_exclusive, double *out, struct param_error *err)
{
	switch (params_number(p, name, min, max, min_exclusive, out, err)) {
	case PARAM_OK: return true;
	case PARAM_MISSING:
		snprintf(err->text, sizeof(err->text), "%s: missing", name);
		return false;
	default: return false;
	}
}

static bool parse_box(const struct params *p, double max_dlat, double max_dlng,
		      struct snap_box *box, struct param_error *err)
{
	double lat, lng, dlat, dlng;
	if (!need_number(p, "latitude", -90, 90, false, &lat, err) ||
	    !need_number(p, "longitude", -180, 180, false, &lng, err) ||
	    !need_number(p, "latitudeDelta", 0, max_dlat, true, &dlat, err) ||
	    !need_number(p, "longitudeDelta", 0, max_dlng, true, &dlng, err))
		return false;
	*box = (struct snap_box){lat - dlat, lat + dlat, lng - dlng, lng + dlng};
	return true;
}

/* A kW value as the hundredths the model holds; -1 when it has more
 * precision than numeric(8,2) (it then matches nothing, as in SQL). */
static int32_t centi_kw(double kw)
{
	double c = kw * 100.0;
	double r = round(c);
	return fabs(c - r) < 1e-6 && r <= INT32_MAX ? (int32_t)r : -1;
}

struct filter_input {
	struct param_list companies, types, capacities;
	int type_codes[PARAM_LIST_MAX];
	int32_t kws[PARAM_LIST_MAX];
	struct snap_filter filter;
};

static bool parse_filters(const struct params *p, struct filter_input *in, struct param_error *err)
{
	memset(in, 0, sizeof(*in));
	if (params_list(p, "companyNames", &in->companies, err) == PARAM_BAD ||
	    params_list(p, "chargerTypes", &in->types, err) == PARAM_BAD ||
	    params_list(p, "capacities", &in->capacities, err) == PARAM_BAD)
		return false;
	for (size_t i = 0; i < in->types.count; i++) {
		if (!model_type_from_name(in->types.items[i], &in->type_codes[i])) {
			snprintf(err->text, sizeof(err->text),
				 "chargerTypes: '%.40s' is not a charger type (see /filters)",
				 in->types.items[i]);
			return false;
		}
	}
	for (size_t i = 0; i < in->capacities.count; i++) {
		double kw;
		const char *v = in->capacities.items[i];
		if (!params_parse_decimal(v, strlen(v), &kw) || kw < 0 || kw > 1000000) {
			snprintf(err->text, sizeof(err->text),
				 "capacities: '%.40s' is not a capacity in kW (0 to 1000000)", v);
			return false;
		}
		in->kws[i] = centi_kw(kw);
	}
	in->filter = (struct snap_filter){
		.companies = in->companies.items,
		.ncompanies = in->companies.count,
		.types = in->type_codes,
		.ntypes = in->types.count,
		.capacities = in->kws,
		.ncapacities = in->capacities.count,
	};
	return true;
}

static void free_filters(struct filter_input *in)
{
	param_list_free(&in->companies);
	param_list_free(&in->types);
	param_list_free(&in->capacities);
}

/* ---- free now (issue 10) ---- */

/* Free now: at least one STANDBY charger whose status is fresh. */
static bool station_free_now(const struct worker *w, const struct snap *s, uint32_t station,
			     int64_t now)
{
	const struct snap_station *st = &s->stations[station];
	int64_t max_age_s = server_config(w->server)->status_max_age_s;
	for (uint32_t k = 0; k < st->charger_count; k++) {
		uint64_t live = snap_live_word(s, st->first_charger + k);
		if (snap_live_status(live) == MODEL_STATUS_STANDBY &&
		    snap_live_fresh(live, now, max_age_s))
			return true;
	}
	return false;
}

/* `available`: true keeps only stations free now; false or absent, all.
 * *given tells whether it was there at all (clusters then add counts). */
static bool parse_available(const struct params *p, bool *only_free, bool *given,
			    struct param_error *err)
{
	const char *v = NULL;
	*only_free = *given = false;
	enum param_get got = params_one(p, "available", &v, err);
	if (got == PARAM_BAD)
		return false;
	if (got == PARAM_MISSING)
		return true;
	*given = true;
	if (strcmp(v, "true") == 0)
		*only_free = true;
	else if (strcmp(v, "false") != 0) {
		snprintf(err->text, sizeof(err->text),
			 "available: '%.20s' is not a boolean; expected true or false", v);
		return false;
	}
	return true;
}

/* ---- GET /stations ---- */

struct box_collect {
	struct worker *w;
	const struct snap *snap;
	const struct snap_filter *filter;
	size_t n, max;
	bool overflow, oom;
	bool only_free;
	int64_t now;
};

static bool collect_station(void *arg, uint32_t st)
{
	struct box_collect *bc = arg;
	if (!snap_station_matches(bc->snap, st, bc->filter) ||
	    (bc->only_free && !station_free_now(bc->w, bc->snap, st, bc->now)))
		return true;
	if (bc->n >= bc->max) {
		bc->overflow = true;
		return false;
	}
	if (!scratch_reserve(bc->w, bc->n + 1)) {
		bc->oom = true;
		return false;
	}
	bc->w->scratch[bc->n++] = st;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Representative capping: keep `max` of the n stations in w->scratch,
 * spread evenly over the box. The box is cut into g x g cells (g =
 * ceil(sqrt(max))); the stations are grouped by cell (by stationId within
 * one), and picked round-robin: the first station of every non-empty cell,
 * then the second of every cell that has one, and so on until max are
 * taken. So every occupied part of the box shows up before any dense part
 * shows more, and the answer is deterministic. */
static bool even_sample(struct worker *w, const struct snap *s, const struct snap_box *box,
			size_t n, size_t max)
{
	uint32_t g = (uint32_t)ceil(sqrt((double)max));
	uint64_t *keys = malloc(n * sizeof(*keys));
	size_t *starts = malloc((n + 1) * sizeof(*starts));
	if (!keys || !starts) {
		free(keys);
		free(starts);
		return false;
	}
	double ch = (box->max_lat - box->min_lat) / g, cw = (box->max_lng - box->min_lng) / g;
	for (size_t i = 0; i < n; i++) {
		const struct snap_station *st = &s->stations[w->scratch[i]];
		long r = (long)floor((st->lat - box->min_lat) / ch);
		long c = (long)floor((st->lng - box->min_lng) / cw);
		r = r < 0 ? 0 : r >= (long)g ? (long)g - 1 : r;
		c = c < 0 ? 0 : c >= (long)g ? (long)g - 1 : c;
		keys[i] = (uint64_t)(r * (long)g + c) << 32 | w->scratch[i];
	}
	qsort(keys, n, sizeof(*keys), cmp_u64);
	size_t ncells = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || keys[i] >> 32 != keys[i - 1] >> 32)
			starts[ncells++] = i;
	starts[ncells] = n;
	size_t picked = 0;
	for (size_t round = 0; picked < max; round++) {
		bool any = false;
		for (size_t k = 0; k < ncells && picked < max; k++) {
			if (starts[k] + round < starts[k + 1]) {
				w->scratch[picked++] = (uint32_t)keys[starts[k] + round];
				any = true;
			}
		}
		if (!any)
			break;
	}
	free(keys);
	free(starts);
	return true;
}

void area_stations(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p)
{
	struct param_error err = {{0}};
	struct snap_box box;
	struct filter_input fin;
	bool only_free, available_given, sample = false;
	const char *sample_text = "false";
	memset(&fin, 0, sizeof(fin));
	if (params_one(p, "sample", &sample_text, &err) != PARAM_BAD) {
		sample = strcmp(sample_text, "true") == 0;
		if (!sample && strcmp(sample_text, "false") != 0)
			snprintf(err.text, sizeof(err.text),
				 "sample: '%.20s' is not a boolean; expected true or false",
				 sample_text);
	}
	if (err.text[0] || !parse_box(p, MARKER_DELTA_MAX, MARKER_DELTA_MAX, &box, &err) ||
	    !parse_filters(p, &fin, &err) ||
	    !parse_available(p, &only_free, &available_given, &err)) {
		free_filters(&fin);
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	const struct snap *s = w->snap;
	unsigned max = server_config(w->server)->max_markers;
	struct box_collect bc = {.w = w,
				 .snap = s,
				 .filter = &fin.filter,
				 .max = sample ? SIZE_MAX : max,
				 .only_free = only_free,
				 .now = time(NULL)};
	snap_box_visit(s, &box, collect_station, &bc);
	free_filters(&fin);
	if (bc.oom) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	if (bc.overflow) {
		routes_error(w, req, rc, 400,
			     "latitudeDelta, longitudeDelta: area too large for markers: more than "
			     "%u stations match; zoom in or use /stations/clusters",
			     max);
		return;
	}
	size_t matched = bc.n;
	if (bc.n > max) { /* sample=true */
		if (!even_sample(w, s, &box, bc.n, max)) {
			routes_error(w, req, rc, 500, "out of memory");
			return;
		}
		bc.n = max;
	}
	if (bc.n > 1)
		qsort(w->scratch, bc.n, sizeof(uint32_t), cmp_u32);
	struct buf *o = &w->out;
	buf_reset(o);
	buf_puts(o, "{\"stations\":[");
	for (size_t i = 0; i < bc.n; i++) {
		const struct snap_station *st = &s->stations[w->scratch[i]];
		if (i)
			buf_putc(o, ',');
		buf_append(o, snap_text(s, st->marker), st->marker_len);
		buf_put_uint(o, snap_available(s, w->scratch[i]));
		buf_puts(o, ",\"quickChargerCount\":");
		buf_put_uint(o, st->quick_count);
		buf_putc(o, '}');
	}
	buf_puts(o, "]");
	if (matched > bc.n) {
		buf_puts(o, ",\"sampled\":true,\"matchCount\":");
		buf_put_uint(o, matched);
	}
	buf_puts(o, "}");
	routes_reply_json(w, req, rc, NULL);
}

/* ---- GET /stations/clusters ---- */

struct cluster_cell {
	uint32_t count, available;
	double lat, lng;
};

struct cluster_collect {
	const struct worker *w;
	bool only_free, count_free;
	int64_t now;
	const struct snap *snap;
	const struct snap_box *box;
	struct cluster_cell *cells;
	long rows, cols;
	double cell_h, cell_w;
};

static bool collect_cluster(void *arg, uint32_t st)
{
	struct cluster_collect *cc = arg;
	const struct snap_station *s = &cc->snap->stations[st];
	long r = (long)floor((s->lat - cc->box->min_lat) / cc->cell_h);
	long c = (long)floor((s->lng - cc->box->min_lng) / cc->cell_w);
	r = r < 0 ? 0 : r >= cc->rows ? cc->rows - 1 : r;
	c = c < 0 ? 0 : c >= cc->cols ? cc->cols - 1 : c;
	bool free_now = cc->count_free && station_free_now(cc->w, cc->snap, st, cc->now);
	if (cc->only_free && !free_now)
		return true;
	struct cluster_cell *cell = &cc->cells[r * cc->cols + c];
	cell->available += free_now;
	cell->count++;
	cell->lat += s->lat;
	cell->lng += s->lng;
	return true;
}

void area_clusters(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		   const struct params *p)
{
	struct param_error err = {{0}};
	struct snap_box box;
	long rows = 0, cols = 0;
	enum param_get gr = PARAM_BAD, gc = PARAM_BAD;
	bool only_free = false, available_given = false;
	bool ok = parse_box(p, 90, 180, &box, &err) &&
		  parse_available(p, &only_free, &available_given, &err);
	if (ok) {
		gr = params_integer(p, "latitudeDivisionSize", 1, CLUSTER_DIVISIONS_MAX, &rows,
				    &err);
		if (gr == PARAM_MISSING)
			snprintf(err.text, sizeof(err.text), "latitudeDivisionSize: missing");
	}
	if (ok && gr == PARAM_OK) {
		gc = params_integer(p, "longitudeDivisionSize", 1, CLUSTER_DIVISIONS_MAX, &cols,
				    &err);
		if (gc == PARAM_MISSING)
			snprintf(err.text, sizeof(err.text), "longitudeDivisionSize: missing");
	}
	if (!ok || gr != PARAM_OK || gc != PARAM_OK) {
		routes_error(w, req, rc, 400, "%s", err.text);
		return;
	}
	struct cluster_cell *cells = calloc((size_t)(rows * cols), sizeof(*cells));
	if (!cells) {
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	struct cluster_collect cc = {w,
				     only_free,
				     available_given,
				     time(NULL),
				     w->snap,
				     &box,
				     cells,
				     rows,
				     cols,
				     (box.max_lat - box.min_lat) / (double)rows,
				     (box.max_lng - box.min_lng) / (double)cols};
	snap_box_visit(w->snap, &box, collect_cluster, &cc);
	buf_reset(&w->out);
	struct json_gen g;
	json_gen_init(&g, &w->out);
	json_arr_begin(&g);
	for (long i = 0; i < rows * cols; i++) {
		if (!cells[i].count)
			continue;
		json_obj_begin(&g);
		json_kv_int(&g, "id", i);
		json_kv_double(&g, "latitude", cells[i].lat / cells[i].count, 6);
		json_kv_double(&g, "longitude", cells[i].lng / cells[i].count, 6);
		json_kv_int(&g, "count", cells[i].count);
		if (available_given)
			json_kv_int(&g, "availableCount", cells[i].available);
		json_obj_end(&g);
	}
	json_arr_end(&g);
	free(cells);
	routes_reply_json(w, req, rc, &g);
}
