/* render: the wire format. Owns the growable output buffer, the JSON and XML
 * renderings of items and envelopes, the gateway and service error bodies,
 * and the malformed-record defects. Hand-written formatting straight into
 * one buffer per page: no printf per field, no escaping pass (generated text
 * never needs escaping; defects carry their own pre-escaped forms). */
#ifndef SIM_RENDER_H
#define SIM_RENDER_H

#include "gen.h"
#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
	char *data;
	size_t len, cap;
};
bool sbuf_reserve(struct sbuf *b, size_t extra) MUSTCHECK;
bool sbuf_add(struct sbuf *b, const void *data, size_t len) MUSTCHECK;
bool sbuf_addf(struct sbuf *b, const char *fmt, ...) MUSTCHECK
	__attribute__((format(printf, 2, 3)));
void sbuf_free(struct sbuf *b);

enum render_format { FMT_JSON, FMT_XML };

/* Malformed-record defects, numbered as documented. */
enum defect {
	DEFECT_EMPTY_COORDS,
	DEFECT_ZERO_COORDS,
	DEFECT_SWAPPED_COORDS,
	DEFECT_BAD_DATE,
	DEFECT_UNKNOWN_CODE,
	DEFECT_OVERLONG,
	DEFECT_INVALID_UTF8,
	DEFECT_JSON_NUMBERS,
	DEFECT_PADDED,
	DEFECT_ESCAPES,
	DEFECT_ABSENT_FIELDS,
	DEFECT_COUNT,
	DEFECT_NONE = -1
};
extern const char *const defect_names[DEFECT_COUNT];

/* Item renderers: one item (with its separator when not first). */
bool render_info_item(struct sbuf *b, enum render_format fmt, bool first,
		      const struct sim_station *st, const struct sim_charger *ch,
		      const struct sim_status *status, int defect) MUSTCHECK;
bool render_status_item(struct sbuf *b, enum render_format fmt, bool first,
			const struct sim_station *st, const struct sim_charger *ch,
			const struct sim_status *status, int defect) MUSTCHECK;

/* Envelope around `items` rendered items. xml_shapes: JSON shows XML's
 * converted shapes (one item as an object, none as ""). */
bool render_page_head(struct sbuf *b, enum render_format fmt, bool xml_shapes, long total,
		      long items) MUSTCHECK;
bool render_page_tail(struct sbuf *b, enum render_format fmt, bool xml_shapes, long total,
		      long items, long page_no, long num_rows) MUSTCHECK;

/* returnAuthMsg for a gateway code (1 -> APPLICATION_ERROR); NULL if not a
 * code the gateway sends. */
const char *render_gateway_msg(int code);
bool render_gateway_error(struct sbuf *b, int code) MUSTCHECK;
bool render_service_error(struct sbuf *b, enum render_format fmt, int code, long page_no,
			  long num_rows) MUSTCHECK;

#endif
