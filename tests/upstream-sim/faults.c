/* faults: triggers and their decisions. */
#include "faults.h"

#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fault_names[FAULT_COUNT] = {
	"latency", "http5xx",	     "reset",	   "truncate",	 "xml_error",
	"drift",   "total_mismatch", "xml_shapes", "empty_body", "service_error",
};

void faults_init(struct faults *f, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->latency_ms = 1000;
	f->http_code = 0;
	f->xml_error_code = 1;
	f->drift_rows = 3;
	f->total_delta = 7;
	f->truncate_at = 0.5;
	f->reset_at = 0.5;
	f->service_error_code = 22;
	f->malformed_kinds = (1u << DEFECT_COUNT) - 1;
	f->seed = seed;
	f->rng = seed;
}

double faults_draw(struct faults *f)
{
	uint64_t z = sim_mix(f->rng); /* splitmix64: output k is mix(seed + k * golden) */
	f->rng += 0x9E3779B97F4A7C15ULL;
	return (double)(z >> 11) * 0x1.0p-53;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_double(const char *text, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

/* off | 0 | rate (0, 1] | next:N | page:P */
static bool parse_trigger(const char *text, struct fault_trigger *t)
{
	memset(t, 0, sizeof(*t));
	if (strcmp(text, "off") == 0 || strcmp(text, "0") == 0)
		return true;
	if (strncmp(text, "next:", 5) == 0) {
		t->kind = TRIG_NEXT;
		return parse_long(text + 5, 1, 1000000000L, &t->count);
	}
	if (strncmp(text, "page:", 5) == 0) {
		t->kind = TRIG_PAGE;
		return parse_long(text + 5, 1, 1000000000L, &t->page);
	}
	if (!parse_double(text, 0, 1, &t->rate))
		return false;
	t->kind = t->rate > 0 ? TRIG_RATE : TRIG_OFF;
	return true;
}

static bool parse_kinds(const char *text, uint32_t *out)
{
	if (strcmp(text, "all") == 0) {
		*out = (1u << DEFECT_COUNT) - 1;
		return true;
	}
	uint32_t mask = 0;
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", text);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int d = 0; d < DEFECT_COUNT; d++)
			if (strcmp(tok, defect_names[d]) == 0)
				found = d;
		if (found < 0)
			return false;
		mask |= 1u << found;
	}
	*out = mask;
	return mask != 0;
}

static bool apply_one(struct faults *f, const char *key, const char *value, char *err,
		      size_t errlen)
{
	for (int m = 0; m < FAULT_COUNT; m++) {
		if (strcmp(key, fault_names[m]) == 0) {
			if (!parse_trigger(value, &f->trigger[m]))
				goto bad;
			return true;
		}
	}
	long l;
	double d;
	if (strcmp(key, "latency_ms") == 0) {
		if (!parse_long(value, 0, 600000, &f->latency_ms))
			goto bad;
	} else if (strcmp(key, "http_code") == 0) {
		if (!parse_long(value, 0, 599, &l) ||
		    !(l == 0 || l == 500 || l == 502 || l == 503 || l == 504))
			goto bad;
		f->http_code = (int)l;
	} else if (strcmp(key, "xml_error_code") == 0 || strcmp(key, "service_error_code") == 0) {
		if (!parse_long(value, 0, 99, &l) || !render_gateway_msg((int)l))
			goto bad;
		*(key[0] == 'x' ? &f->xml_error_code : &f->service_error_code) = (int)l;
	} else if (strcmp(key, "service_error_format") == 0) {
		if (strcmp(value, "xml") != 0 && strcmp(value, "json") != 0)
			goto bad;
		f->service_error_json = strcmp(value, "json") == 0;
	} else if (strcmp(key, "drift_rows") == 0) {
		if (!parse_long(value, 1, SIM_MAX_ROWS, &f->drift_rows))
			goto bad;
	} else if (strcmp(key, "total_delta") == 0) {
		if (!parse_long(value, -1000000000L, 1000000000L, &l) || l == 0)
			goto bad;
		f->total_delta = l;
	} else if (strcmp(key, "truncate_at") == 0 || strcmp(key, "reset_at") == 0) {
		if (!parse_double(value, 0, 1, &d) || d <= 0 || d >= 1)
			goto bad;
		*(key[0] == 't' ? &f->truncate_at : &f->reset_at) = d;
	} else if (strcmp(key, "malformed") == 0) {
		if (!parse_double(value, 0, 1, &f->malformed_rate))
			goto bad;
	} else if (strcmp(key, "malformed_kinds") == 0) {
		if (!parse_kinds(value, &f->malformed_kinds))
			goto bad;
	} else if (strcmp(key, "only") == 0) {
		if (strcmp(value, "all") == 0)
			f->scope = SCOPE_ALL;
		else if (strcmp(value, "info") == 0)
			f->scope = SCOPE_INFO;
		else if (strcmp(value, "status") == 0)
			f->scope = SCOPE_STATUS;
		else
			goto bad;
	} else if (strcmp(key, "seed") == 0) {
		char *end;
		errno = 0;
		unsigned long long s = strtoull(value, &end, 10);
		if (errno || end == value || *end)
			goto bad;
		f->seed = f->rng = s;
	} else if (strcmp(key, "clear") == 0) {
		if (strcmp(value, "1") != 0)
			goto bad;
		faults_init(f, f->seed);
	} else {
		snprintf(err, errlen, "unknown fault parameter '%s'", key);
		return false;
	}
	return true;
bad:
	snprintf(err, errlen, "bad value for %s: '%s'", key, value);
	return false;
}

bool faults_apply(struct faults *f, const struct evkeyvalq *params, char *err, size_t errlen)
{
	struct faults next = *f;
	const struct evkeyval *kv;
	/* clear first, whatever its position, so "clear=1&http5xx=1" sets one mode */
	TAILQ_FOREACH(kv, params, next)
	if (strcmp(kv->key, "clear") == 0 && !apply_one(&next, kv->key, kv->value, err, errlen))
		return false;
	TAILQ_FOREACH(kv, params, next)
	if (strcmp(kv->key, "clear") != 0 && !apply_one(&next, kv->key, kv->value, err, errlen))
		return false;
	*f = next;
	return true;
}

bool faults_apply_query(struct faults *f, const char *query, char *err, size_t errlen)
{
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) != 0) {
		snprintf(err, errlen, "cannot parse fault query '%s'", query);
		return false;
	}
	bool ok = faults_apply(f, &params, err, errlen);
	evhttp_clear_headers(&params);
	return ok;
}

uint32_t faults_decide(struct faults *f, bool is_status, long page_no)
{
	if ((f->scope == SCOPE_INFO && is_status) || (f->scope == SCOPE_STATUS && !is_status))
		return 0;
	uint32_t fired = 0;
	for (int m = 0; m < FAULT_COUNT; m++) {
		struct fault_trigger *t = &f->trigger[m];
		bool fire = false;
		switch (t->kind) {
		case TRIG_OFF: break;
		case TRIG_RATE: fire = faults_draw(f) < t->rate; break;
		case TRIG_NEXT:
			fire = true;
			if (--t->count <= 0)
				t->kind = TRIG_OFF;
			break;
		case TRIG_PAGE: fire = page_no == t->page; break;
		}
		if (fire)
			fired |= 1u << m;
	}
	return fired;
}

int faults_defect(const struct faults *f, const struct sim_keys *keys, uint64_t slot)
{
	if (f->malformed_rate <= 0)
		return DEFECT_NONE;
	uint64_t ppm = (uint64_t)llround(f->malformed_rate * 1e6);
	if (sim_hash(keys, TAG_MALFORMED, slot, 0) % 1000000 >= ppm)
		return DEFECT_NONE;
	int enabled[DEFECT_COUNT], n = 0;
	for (int d = 0; d < DEFECT_COUNT; d++)
		if (f->malformed_kinds & (1u << d))
			enabled[n++] = d;
	if (n == 0)
		return DEFECT_NONE;
	return enabled[sim_hash(keys, TAG_MALKIND, slot, 0) % (uint64_t)n];
}

static bool trigger_json(struct sbuf *out, const struct fault_trigger *t)
{
	switch (t->kind) {
	case TRIG_OFF: return sbuf_addf(out, "\"off\"");
	case TRIG_RATE: return sbuf_addf(out, "\"rate:%g\"", t->rate);
	case TRIG_NEXT: return sbuf_addf(out, "\"next:%ld\"", t->count);
	case TRIG_PAGE: return sbuf_addf(out, "\"page:%ld\"", t->page);
	}
	return false;
}

bool faults_json(const struct faults *f, struct sbuf *out)
{
	bool ok = sbuf_addf(out, "{");
	for (int m = 0; m < FAULT_COUNT; m++)
		ok = ok && sbuf_addf(out, "\"%s\":", fault_names[m]) &&
		     trigger_json(out, &f->trigger[m]) && sbuf_addf(out, ",");
	ok = ok &&
	     sbuf_addf(
		     out,
		     "\"latency_ms\":%ld,\"http_code\":%d,\"xml_error_code\":%d,\"drift_rows\":%ld,"
		     "\"total_delta\":%ld,\"truncate_at\":%g,\"reset_at\":%g,"
		     "\"service_error_code\":%d,\"service_error_format\":\"%s\",\"malformed\":%g,"
		     "\"malformed_kinds\":[",
		     f->latency_ms, f->http_code, f->xml_error_code, f->drift_rows, f->total_delta,
		     f->truncate_at, f->reset_at, f->service_error_code,
		     f->service_error_json ? "json" : "xml", f->malformed_rate);
	bool first = true;
	for (int d = 0; d < DEFECT_COUNT; d++) {
		if (f->malformed_kinds & (1u << d)) {
			ok = ok && sbuf_addf(out, "%s\"%s\"", first ? "" : ",", defect_names[d]);
			first = false;
		}
	}
	static const char *const scopes[] = {"all", "info", "status"};
	ok = ok && sbuf_addf(out, "],\"only\":\"%s\",\"seed\":%llu}", scopes[f->scope],
			     (unsigned long long)f->seed);
	return ok;
}
