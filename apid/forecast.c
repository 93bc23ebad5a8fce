#include "forecast.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "kst.h"
#include "rkeys.h"
#include "snap.h"

/* ---- arriveAt ---- */

/* Exactly `n` ASCII digits at *p, advancing it. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool refuse(char *why, size_t whylen, const char *text)
{
	snprintf(why, whylen, "%s", text);
	return false;
}

bool forecast_parse_time(const char *text, time_t *out, char *why, size_t whylen)
{
	static const char form[] =
		"expected ISO 8601 with an offset, e.g. 2024-11-25T18:30:00+09:00";
	const char *p = text;
	int year, month, day, hour, minute, second = 0;
	if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &month) || *p++ != '-' ||
	    !digits(&p, 2, &day))
		return refuse(why, whylen, form);
	if (*p != 'T' && *p != 't' && *p != ' ')
		return refuse(why, whylen, form);
	p++;
	if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &minute))
		return refuse(why, whylen, form);
	if (*p == ':') {
		p++;
		if (!digits(&p, 2, &second))
			return refuse(why, whylen, form);
		if (*p == '.' || *p == ',') {
			p++;
			if (*p < '0' || *p > '9')
				return refuse(why, whylen, form);
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	int offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (!digits(&p, 2, &oh))
			return refuse(why, whylen, form);
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &om))
				return refuse(why, whylen, form);
		} else if (*p >= '0' && *p <= '9' && !digits(&p, 2, &om)) {
			return refuse(why, whylen, form);
		}
		if (oh > 23 || om > 59)
			return refuse(why, whylen, "the offset is out of range");
		offset_s = sign * (oh * 3600 + om * 60);
	} else {
		return refuse(why, whylen,
			      *p ? form : "no offset; expected Z or +HH:MM after the time");
	}
	if (*p)
		return refuse(why, whylen, form);
	if (month < 1 || month > 12 || day < 1 || day > kst_days_in_month(year, month))
		return refuse(why, whylen, "no such date");
	if (hour > 23 || minute > 59 || second > 59)
		return refuse(why, whylen, "no such time of day");
	int64_t days = kst_days_from_civil(year, month, day);
	*out = (time_t)(days * 86400 + hour * 3600 + minute * 60 + second - offset_s);
	return true;
}

bool forecast_check_window(time_t arrive_at, time_t now, char *why, size_t whylen)
{
	if (arrive_at < now - FORECAST_PAST_SLACK_S) {
		snprintf(why, whylen, "is in the past; expected a time from now to %d days ahead",
			 FORECAST_HORIZON_S / 86400);
		return false;
	}
	if (arrive_at > now + FORECAST_HORIZON_S) {
		snprintf(why, whylen, "is more than %d days ahead", FORECAST_HORIZON_S / 86400);
		return false;
	}
	return true;
}

/* ---- the method (forecast.h) ---- */

double forecast_live_weight(int64_t lead_s)
{
	if (lead_s >= FORECAST_LIVE_HORIZON_S)
		return 0;
	return exp(-(double)(lead_s > 0 ? lead_s : 0) / FORECAST_LIVE_TAU_S);
}

static double share(uint64_t uses, uint64_t samples)
{
	return uses >= samples ? 1.0 : (double)uses / (double)samples;
}

double forecast_class(size_t n, const bool *is_quick, bool quick, const char *const *blobs,
		      const size_t *lens, const uint64_t *live, int slot, double weight,
		      int64_t now, int64_t max_age_s, unsigned *chargers, uint64_t *samples)
{
	uint64_t pooled_samples = 0, pooled_uses = 0;
	unsigned count = 0;
	for (size_t i = 0; i < n; i++) {
		if (is_quick[i] != quick)
			continue;
		count++;
		pooled_samples += rkeys_congestion_counter(blobs[i], lens[i], slot, RKEYS_CG_SAMPLES);
		pooled_uses += rkeys_congestion_counter(blobs[i], lens[i], slot, RKEYS_CG_USES);
	}
	*chargers = count;
	*samples = pooled_samples;
	if (count == 0 || pooled_samples == 0)
		return -1;
	double pooled = share(pooled_uses, pooled_samples), all_busy = 1;
	for (size_t i = 0; i < n; i++) {
		if (is_quick[i] != quick)
			continue;
		unsigned s = rkeys_congestion_counter(blobs[i], lens[i], slot, RKEYS_CG_SAMPLES);
		unsigned u = rkeys_congestion_counter(blobs[i], lens[i], slot, RKEYS_CG_USES);
		double q = s ? share(u, s) : pooled;
		if (weight > 0 && snap_live_fresh(live[i], now, max_age_s)) {
			double busy_now = snap_live_status(live[i]) == MODEL_STATUS_STANDBY ? 0 : 1;
			q = weight * busy_now + (1 - weight) * q;
		}
		all_busy *= q;
	}
	return 1 - all_busy;
}

static void put_class(struct json_gen *g, const char *name, size_t n, const bool *is_quick,
		      bool quick, const char *const *blobs, const size_t *lens,
		      const uint64_t *live, int slot, double weight, const struct stats_ask *ask)
{
	unsigned chargers;
	uint64_t samples;
	double p = forecast_class(n, is_quick, quick, blobs, lens, live, slot, weight, ask->now,
				  ask->status_max_age_s, &chargers, &samples);
	json_key(g, name);
	json_obj_begin(g);
	json_kv_int(g, "chargers", chargers);
	json_kv_int(g, "samples", (int64_t)samples);
	json_key(g, "probability");
	if (p < 0)
		json_null(g);
	else
		json_double(g, round(p * 10000) / 10000, JSON_SHORTEST);
	json_obj_end(g);
}

void forecast_render(struct buf *out, const char *station_id, size_t n, const bool *is_quick,
		     const char *const *blobs, const size_t *lens, const uint64_t *live,
		     const struct stats_ask *ask, const struct stats_source *src)
{
	int64_t lead = (int64_t)ask->arrive_at - (int64_t)ask->now;
	if (lead < 0)
		lead = 0;
	double weight = forecast_live_weight(lead);
	int weekday = kst_weekday(ask->arrive_at), hour = kst_hour(ask->arrive_at);
	int slot = rkeys_congestion_slot(weekday, hour);
	char iso[KST_ISO_SIZE];
	kst_format_iso(ask->arrive_at, iso);
	struct json_gen g;
	json_gen_init(&g, out);
	json_obj_begin(&g);
	json_kv_str(&g, "stationId", station_id);
	json_kv_str(&g, "arriveAt", iso);
	json_kv_str(&g, "dayOfWeek", stats_weekday_names[weekday]);
	json_kv_int(&g, "hour", hour);
	json_kv_int(&g, "leadSeconds", lead);
	json_kv_double(&g, "liveWeight", round(weight * 10000) / 10000, JSON_SHORTEST);
	json_key(&g, "forecast");
	json_obj_begin(&g);
	put_class(&g, "standard", n, is_quick, false, blobs, lens, live, slot, weight, ask);
	put_class(&g, "quick", n, is_quick, true, blobs, lens, live, slot, weight, ask);
	json_obj_end(&g);
	stats_put_source(&g, src);
	json_obj_end(&g);
	if (!json_gen_finish(&g))
		out->failed = true;
}
