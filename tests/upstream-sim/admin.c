/* admin: test-facing endpoints. /__stats, /__health and /__admin/{faults,
 * clock,epoch,status,charger,quota}. GET or POST alike; parameters in the
 * query string; answers are JSON. Documented in docs/simulator.md. */
#include "server_int.h"

#include "simtime.h"

#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json;charset=UTF-8"

static const char *const outcome_names[OUT_COUNT] = {
	"ok",	   "bad_key", "quota",	  "bad_param", "too_many_rows", "no_service",
	"http5xx", "reset",   "truncate", "xml_error", "service_error", "empty_body",
};
static const char *const op_names[OP_COUNT] = {"getChargerInfo", "getChargerStatus", "other"};

static void reply_json(struct sim_server *srv, struct evhttp_request *req, int code, struct sbuf *b,
		       bool ok)
{
	if (!ok) {
		sbuf_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	server_reply(srv, req, code, CT_JSON, b);
}

static void reply_error(struct sim_server *srv, struct evhttp_request *req, int code,
			const char *message)
{
	struct sbuf b = {0};
	bool ok = sbuf_add(&b, "{\"error\":\"", 10);
	for (const char *p = message; ok && *p; p++) /* messages may quote user input */
		ok = *p == '"' || *p == '\\'	? sbuf_addf(&b, "\\%c", *p)
		     : (unsigned char)*p < 0x20 ? sbuf_addf(&b, "\\u%04x", *p)
						: sbuf_add(&b, p, 1);
	ok = ok && sbuf_add(&b, "\"}", 2);
	reply_json(srv, req, code, &b, ok);
}

static bool param_count(const struct evkeyvalq *params)
{
	return TAILQ_FIRST(params) != NULL;
}

static void handle_stats(struct sim_server *srv, struct evhttp_request *req,
			 const struct evkeyvalq *params)
{
	const char *reset = evhttp_find_header(params, "reset");
	struct sbuf b = {0};
	bool ok = sbuf_addf(&b, "{\"requests\":{");
	for (int op = 0; op < OP_COUNT; op++) {
		uint64_t total = 0;
		for (int o = 0; o < OUT_COUNT; o++)
			total += srv->stats.requests[op][o];
		ok = ok && sbuf_addf(&b, "%s\"%s\":{\"total\":%llu", op ? "," : "", op_names[op],
				     (unsigned long long)total);
		for (int o = 0; o < OUT_COUNT; o++)
			ok = ok && sbuf_addf(&b, ",\"%s\":%llu", outcome_names[o],
					     (unsigned long long)srv->stats.requests[op][o]);
		ok = ok && sbuf_addf(&b, "}");
	}
	ok = ok && sbuf_addf(&b, "},\"faults\":{");
	for (int m = 0; m < FAULT_COUNT; m++)
		ok = ok && sbuf_addf(&b, "%s\"%s\":%llu", m ? "," : "", fault_names[m],
				     (unsigned long long)srv->stats.faults[m]);
	ok = ok &&
	     sbuf_addf(&b,
		       "},\"admin\":%llu,\"rows\":%llu,\"bytes\":%llu,\"malformed_records\":%llu,"
		       "\"quota\":{\"limit\":%ld,\"used\":[",
		       (unsigned long long)srv->stats.admin, (unsigned long long)srv->stats.rows,
		       (unsigned long long)srv->stats.bytes,
		       (unsigned long long)srv->stats.malformed_records, srv->quota);
	for (size_t k = 0; k < srv->key_count; k++)
		ok = ok && sbuf_addf(&b, "%s%ld", k ? "," : "", srv->used[k]);
	ok = ok && sbuf_addf(&b, "]}}");
	if (reset && strcmp(reset, "1") == 0)
		memset(&srv->stats, 0, sizeof(srv->stats));
	reply_json(srv, req, 200, &b, ok);
}

static void handle_faults(struct sim_server *srv, struct evhttp_request *req,
			  const struct evkeyvalq *params)
{
	char err[256];
	if (param_count(params) && !faults_apply(&srv->faults, params, err, sizeof(err))) {
		reply_error(srv, req, 400, err);
		return;
	}
	struct sbuf b = {0};
	reply_json(srv, req, 200, &b, faults_json(&srv->faults, &b));
}

static bool clock_json(const struct sim_server *srv, struct sbuf *b)
{
	int64_t now = clock_now(&srv->clock);
	char ts[15] = {0}, mode[64];
	simtime_format_kst(now, ts);
	clock_describe(&srv->clock, mode, sizeof(mode));
	return sbuf_addf(b, "{\"now\":\"%s\",\"unix\":%lld,\"mode\":\"%s\"}", ts, (long long)now,
			 mode);
}

static void handle_clock(struct sim_server *srv, struct evhttp_request *req,
			 const struct evkeyvalq *params)
{
	const char *mode = evhttp_find_header(params, "mode");
	const char *set = evhttp_find_header(params, "set");
	const char *advance = evhttp_find_header(params, "advance");
	char err[256];
	if (mode) {
		int64_t now = clock_now(&srv->clock);
		struct sim_clock next;
		if (!clock_parse(&next, mode, err, sizeof(err))) {
			reply_error(srv, req, 400, err);
			return;
		}
		if (next.mode == CLOCK_FAST)
			clock_set(&next, now); /* keep running from the current time */
		srv->clock = next;
	}
	if (set) {
		int64_t t;
		if (!simtime_parse_kst(set, &t)) {
			reply_error(srv, req, 400, "set needs YYYYMMDDHHMMSS (KST)");
			return;
		}
		clock_set(&srv->clock, t);
	}
	if (advance) {
		char *end;
		errno = 0;
		long long secs = strtoll(advance, &end, 10);
		if (errno || end == advance || *end || secs < -3153600000LL ||
		    secs > 3153600000LL) {
			reply_error(srv, req, 400, "advance needs whole seconds");
			return;
		}
		clock_set(&srv->clock, clock_now(&srv->clock) + secs);
	}
	struct sbuf b = {0};
	reply_json(srv, req, 200, &b, clock_json(srv, &b));
}

static void handle_epoch(struct sim_server *srv, struct evhttp_request *req,
			 const struct evkeyvalq *params)
{
	const char *set = evhttp_find_header(params, "set");
	const char *advance = evhttp_find_header(params, "advance");
	long target = srv->model.epoch;
	char *end;
	if (set) {
		errno = 0;
		target = strtol(set, &end, 10);
		if (errno || end == set || *end) {
			reply_error(srv, req, 400, "set needs an epoch number");
			return;
		}
	} else if (advance) {
		errno = 0;
		long n = strtol(advance, &end, 10);
		if (errno || end == advance || *end || n < -SIM_MAX_EPOCH || n > SIM_MAX_EPOCH) {
			reply_error(srv, req, 400, "advance needs a count");
			return;
		}
		target += n;
	}
	char err[256];
	if (target < 0 || target > SIM_MAX_EPOCH) {
		reply_error(srv, req, 400, "epoch must be 0..1000");
		return;
	}
	if (target != srv->model.epoch &&
	    !model_set_epoch(&srv->model, (int)target, err, sizeof(err))) {
		reply_error(srv, req, 400, err);
		return;
	}
	const struct sim_model *m = &srv->model;
	struct sbuf b = {0};
	bool ok =
		sbuf_addf(&b,
			  "{\"epoch\":%d,\"chargers\":%llu,\"adds_per_epoch\":%llu,\"slots\":%llu,"
			  "\"removed\":%zu,\"alive\":%llu}",
			  m->epoch, (unsigned long long)m->chargers, (unsigned long long)m->adds,
			  (unsigned long long)m->total, m->removed_count,
			  (unsigned long long)model_alive_count(m));
	reply_json(srv, req, 200, &b, ok);
}

/* index=SLOT, or statId=..&chgerId=.. */
static bool find_slot(const struct sim_server *srv, const struct evkeyvalq *params, uint64_t *slot,
		      const char **why)
{
	const char *index = evhttp_find_header(params, "index");
	const char *stat_id = evhttp_find_header(params, "statId");
	const char *chger_id = evhttp_find_header(params, "chgerId");
	char *end;
	if (index) {
		errno = 0;
		unsigned long long v = strtoull(index, &end, 10);
		if (errno || end == index || *end || v >= srv->model.total) {
			*why = "no charger with that index";
			return false;
		}
		*slot = v;
		return true;
	}
	uint64_t u;
	if (!stat_id || !chger_id || !gen_parse_stat_id(&srv->gen, stat_id, &u)) {
		*why = "give index=N, or statId and chgerId of an existing charger";
		return false;
	}
	errno = 0;
	long n = strtol(chger_id, &end, 10);
	struct sim_layout layout;
	gen_layout(&srv->gen, u / SIM_BLOCK_STATIONS, &layout);
	int k = (int)(u % SIM_BLOCK_STATIONS);
	uint64_t first = u / SIM_BLOCK_STATIONS * SIM_BLOCK_SLOTS + layout.start[k];
	if (errno || end == chger_id || *end || n < 1 ||
	    n > layout.start[k + 1] - layout.start[k] ||
	    first + (uint64_t)n - 1 >= srv->model.total) {
		*why = "no such charger";
		return false;
	}
	*slot = first + (uint64_t)n - 1;
	return true;
}

static bool charger_json(struct sim_server *srv, uint64_t slot, bool status_only, struct sbuf *b)
{
	struct sim_layout layout = {0};
	struct sim_loc loc;
	gen_locate(&srv->gen, &layout, slot, &loc);
	struct sim_station st;
	gen_station(&srv->gen, loc.station,
		    model_station_version(&srv->model, loc.station, loc.first), &st);
	struct sim_charger ch;
	gen_charger(&srv->gen, &st, slot, loc.charger, model_charger_version(&srv->model, slot),
		    &ch);
	struct sim_status status;
	model_status(&srv->model, slot, clock_now(&srv->clock), &status);
	bool ok = sbuf_addf(b, "{\"index\":%llu,\"station\":%llu,\"removed\":%s,\"item\":",
			    (unsigned long long)slot, (unsigned long long)loc.station,
			    model_is_removed(&srv->model, slot) ? "true" : "false");
	ok = ok &&
	     (status_only ? render_status_item(b, FMT_JSON, true, &st, &ch, &status, DEFECT_NONE)
			  : render_info_item(b, FMT_JSON, true, &st, &ch, &status, DEFECT_NONE));
	return ok && sbuf_addf(b, "}");
}

static void handle_status(struct sim_server *srv, struct evhttp_request *req,
			  const struct evkeyvalq *params)
{
	const char *clear = evhttp_find_header(params, "clear");
	struct sbuf b = {0};
	if (clear && strcmp(clear, "1") == 0) {
		size_t n = srv->model.override_count;
		model_clear_overrides(&srv->model);
		reply_json(srv, req, 200, &b, sbuf_addf(&b, "{\"cleared\":%zu}", n));
		return;
	}
	uint64_t slot;
	const char *why;
	if (!find_slot(srv, params, &slot, &why)) {
		reply_error(srv, req, 404, why);
		return;
	}
	const char *stat = evhttp_find_header(params, "stat");
	if (stat) {
		if (strlen(stat) != 1 || !strchr("123459", stat[0])) {
			reply_error(srv, req, 400, "stat must be 1, 2, 3, 4, 5 or 9");
			return;
		}
		if (model_is_removed(&srv->model, slot)) {
			reply_error(srv, req, 404, "that charger was removed");
			return;
		}
		if (!model_set_override(&srv->model, slot, stat[0] - '0', clock_now(&srv->clock))) {
			reply_error(srv, req, 503, "too many overrides");
			return;
		}
	}
	reply_json(srv, req, 200, &b, charger_json(srv, slot, true, &b));
}

static void handle_charger(struct sim_server *srv, struct evhttp_request *req,
			   const struct evkeyvalq *params)
{
	uint64_t slot;
	const char *why;
	if (!find_slot(srv, params, &slot, &why)) {
		reply_error(srv, req, 404, why);
		return;
	}
	struct sbuf b = {0};
	reply_json(srv, req, 200, &b, charger_json(srv, slot, false, &b));
}

static void handle_quota(struct sim_server *srv, struct evhttp_request *req,
			 const struct evkeyvalq *params)
{
	const char *reset = evhttp_find_header(params, "reset");
	if (reset && strcmp(reset, "1") == 0)
		memset(srv->used, 0, srv->key_count * sizeof(*srv->used));
	struct sbuf b = {0};
	bool ok = sbuf_addf(&b, "{\"limit\":%ld,\"used\":[", srv->quota);
	for (size_t k = 0; k < srv->key_count; k++)
		ok = ok && sbuf_addf(&b, "%s%ld", k ? "," : "", srv->used[k]);
	reply_json(srv, req, 200, &b, ok && sbuf_addf(&b, "]}"));
}

void admin_handle(struct sim_server *srv, struct evhttp_request *req, const char *path,
		  const struct evkeyvalq *params)
{
	srv->stats.admin++;
	if (strcmp(path, "/__stats") == 0)
		handle_stats(srv, req, params);
	else if (strcmp(path, "/__health") == 0) {
		struct sbuf b = {0};
		reply_json(srv, req, 200, &b, sbuf_addf(&b, "{\"ok\":true}"));
	} else if (strcmp(path, "/__admin/faults") == 0)
		handle_faults(srv, req, params);
	else if (strcmp(path, "/__admin/clock") == 0)
		handle_clock(srv, req, params);
	else if (strcmp(path, "/__admin/epoch") == 0)
		handle_epoch(srv, req, params);
	else if (strcmp(path, "/__admin/status") == 0)
		handle_status(srv, req, params);
	else if (strcmp(path, "/__admin/charger") == 0)
		handle_charger(srv, req, params);
	else if (strcmp(path, "/__admin/quota") == 0)
		handle_quota(srv, req, params);
	else
		reply_error(srv, req, 404, "unknown admin endpoint");
}
