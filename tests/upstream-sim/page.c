/* page: one page of getChargerInfo or getChargerStatus. Rows are rendered
 * straight into one buffer that the response then references (no copy).
 * Info pages without filters jump to their first row in O(log removed);
 * filtered and status pages scan every live charger (O(N) per request). */
#include "server_int.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

struct page_ctx {
	struct sim_server *srv;
	const struct page_request *pr;
	int64_t now;
	bool has_filter;
	struct sim_layout layout;
	bool station_valid;
	struct sim_station station;
	bool filter_valid;
	uint64_t filter_u;
	bool filter_match;
	struct sbuf items;
	long rendered;
};

static void load_station(struct page_ctx *pc, const struct sim_loc *loc)
{
	if (pc->station_valid && pc->station.u == loc->station)
		return;
	int version = model_station_version(&pc->srv->model, loc->station, loc->first);
	gen_station(&pc->srv->gen, loc->station, version, &pc->station);
	pc->station_valid = true;
}

static bool matches(struct page_ctx *pc, const struct sim_loc *loc)
{
	if (pc->filter_valid && pc->filter_u == loc->station)
		return pc->filter_match;
	const struct page_request *pr = pc->pr;
	const struct sim_gen *gen = &pc->srv->gen;
	bool ok = true;
	if (pr->zcode[0] || pr->zscode[0]) {
		const struct sim_region *region;
		const char *zcode;
		gen_station_region(gen, loc->station, &region, &zcode);
		if (pr->zcode[0] && strcmp(pr->zcode, zcode) != 0)
			ok = false;
		if (ok && pr->zscode[0] &&
		    (memcmp(pr->zscode, zcode, 2) != 0 ||
		     strcmp(pr->zscode + 2, region->suffix) != 0))
			ok = false;
	}
	if (ok && (pr->kind[0] || pr->kind_detail[0])) {
		int kind;
		char detail[5];
		gen_station_kind(gen, loc->station, &kind, detail);
		if (pr->kind[0] && strcmp(pr->kind, sim_kinds[kind].code) != 0)
			ok = false;
		if (ok && pr->kind_detail[0] && strcmp(pr->kind_detail, detail) != 0)
			ok = false;
	}
	pc->filter_valid = true;
	pc->filter_u = loc->station;
	pc->filter_match = ok;
	return ok;
}

static bool render_row(struct page_ctx *pc, uint64_t slot, const struct sim_loc *loc)
{
	struct sim_server *srv = pc->srv;
	load_station(pc, loc);
	struct sim_charger ch;
	gen_charger(&srv->gen, &pc->station, slot, loc->charger,
		    model_charger_version(&srv->model, slot), &ch);
	struct sim_status status;
	model_status(&srv->model, slot, pc->now, &status);
	int defect = faults_defect(&srv->faults, &srv->gen.keys, slot);
	if (defect != DEFECT_NONE)
		srv->stats.malformed_records++;
	bool first = pc->rendered == 0;
	pc->rendered++;
	if (pc->pr->op == OP_STATUS)
		return render_status_item(&pc->items, pc->pr->fmt, first, &pc->station, &ch,
					  &status, defect);
	return render_info_item(&pc->items, pc->pr->fmt, first, &pc->station, &ch, &status, defect);
}

static void free_items(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

bool page_build(struct sim_server *srv, const struct page_request *pr, uint32_t fired,
		int drift_sign, struct evbuffer *out)
{
	struct page_ctx pc;
	memset(&pc, 0, sizeof(pc));
	pc.srv = srv;
	pc.pr = pr;
	pc.now = clock_now(&srv->clock);
	pc.has_filter = pr->zcode[0] || pr->zscode[0] || pr->kind[0] || pr->kind_detail[0];
	const struct sim_model *m = &srv->model;

	int64_t start = (int64_t)(pr->page_no - 1) * pr->num_rows;
	if (fired & (1u << FAULT_DRIFT))
		start += drift_sign * srv->faults.drift_rows;
	if (start < 0)
		start = 0;
	/* One row is at most ~4 KB (the overlong defect); typical rows ~1 KB. */
	if (!sbuf_reserve(&pc.items, (size_t)pr->num_rows * 1100))
		return false;

	bool ok = true;
	int64_t total = 0;
	struct model_cursor cur;
	struct sim_loc loc;
	if (pr->op == OP_INFO && !pc.has_filter) {
		total = (int64_t)model_alive_count(m);
		bool more = model_cursor_at(m, (uint64_t)start, &cur);
		for (long n = 0; ok && more && n < pr->num_rows; n++) {
			gen_locate(&srv->gen, &pc.layout, cur.slot, &loc);
			ok = render_row(&pc, cur.slot, &loc);
			more = model_cursor_next(m, &cur);
		}
	} else {
		int64_t window = (int64_t)pr->period * 60;
		bool more = model_cursor_at(m, 0, &cur);
		for (; ok && more; more = model_cursor_next(m, &cur)) {
			gen_locate(&srv->gen, &pc.layout, cur.slot, &loc);
			if (pc.has_filter && !matches(&pc, &loc))
				continue;
			if (pr->op == OP_STATUS && !model_changed(m, cur.slot, pc.now, window))
				continue;
			if (total >= start && total < start + pr->num_rows)
				ok = render_row(&pc, cur.slot, &loc);
			total++;
		}
	}
	bool xml_shapes = (fired & (1u << FAULT_XML_SHAPES)) != 0;
	long reported = (long)total;
	if (fired & (1u << FAULT_TOTAL_MISMATCH))
		reported += srv->faults.total_delta;
	struct sbuf head = {0}, tail = {0};
	ok = ok && render_page_head(&head, pr->fmt, xml_shapes, reported, pc.rendered) &&
	     render_page_tail(&tail, pr->fmt, xml_shapes, reported, pc.rendered, pr->page_no,
			      pr->num_rows);
	ok = ok && evbuffer_add(out, head.data, head.len) == 0;
	if (ok && pc.items.len) {
		ok = evbuffer_add_reference(out, pc.items.data, pc.items.len, free_items, NULL) ==
		     0;
		if (ok)
			pc.items.data = NULL; /* the evbuffer frees it */
	}
	ok = ok && evbuffer_add(out, tail.data, tail.len) == 0;
	srv->stats.rows += (uint64_t)pc.rendered;
	sbuf_free(&head);
	sbuf_free(&tail);
	sbuf_free(&pc.items);
	return ok;
}
