#include "cgvalue.h"

#include <stdio.h>
#include <string.h>

#include "utf8.h"

static const char *const weekday_names[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
					     "Friday", "Saturday", "Sunday"};

const char *cgvalue_reject_name(enum cgvalue_reject reason)
{
	switch (reason) {
	case CGVALUE_OK: return "ok";
	case CGVALUE_BAD_KEY: return "bad_key";
	case CGVALUE_BAD_TYPE: return "bad_type";
	case CGVALUE_BAD_LENGTH: return "bad_length";
	case CGVALUE_BAD_COUNTS: return "bad_counts";
	}
	return "unknown";
}

/* 1..CGVALUE_ID_MAX bytes of UTF-8 without control characters. */
static bool id_ok(const char *id, size_t len, const char *what, char *why, size_t whylen)
{
	if (len == 0) {
		snprintf(why, whylen, "%s is empty", what);
		return false;
	}
	if (len > CGVALUE_ID_MAX) {
		snprintf(why, whylen, "%s is %zu bytes (at most %d)", what, len, CGVALUE_ID_MAX);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (c < 0x20 || c == 0x7f) {
			snprintf(why, whylen, "%s holds control byte 0x%02x", what, c);
			return false;
		}
	}
	if (!utf8_valid(id, len)) {
		snprintf(why, whylen, "%s is not valid UTF-8", what);
		return false;
	}
	return true;
}

bool cgvalue_parse_key(const char *key, size_t len, char *stat_id, char *chger_id, char *why,
		       size_t whylen)
{
	const size_t prefix_len = sizeof(RKEYS_CONGESTION_PREFIX) - 1;
	if (len < prefix_len || memcmp(key, RKEYS_CONGESTION_PREFIX, prefix_len) != 0) {
		snprintf(why, whylen, "key does not start with " RKEYS_CONGESTION_PREFIX);
		return false;
	}
	const char *rest = key + prefix_len;
	size_t rest_len = len - prefix_len;
	const char *colon = memchr(rest, ':', rest_len);
	if (!colon) {
		snprintf(why, whylen, "key has no ':' between statId and chgerId");
		return false;
	}
	size_t stat_len = (size_t)(colon - rest);
	size_t chger_len = rest_len - stat_len - 1;
	if (!id_ok(rest, stat_len, "statId", why, whylen) ||
	    !id_ok(colon + 1, chger_len, "chgerId", why, whylen))
		return false;
	memcpy(stat_id, rest, stat_len);
	stat_id[stat_len] = '\0';
	memcpy(chger_id, colon + 1, chger_len);
	chger_id[chger_len] = '\0';
	return true;
}

enum cgvalue_reject cgvalue_decode(const void *bytes, size_t len, struct cgvalue *out, char *why,
				   size_t whylen)
{
	if (len != RKEYS_CONGESTION_VALUE_BYTES && len != RKEYS_CONGESTION_V1_VALUE_BYTES) {
		snprintf(why, whylen, "value is %zu bytes, not %d (or %d, layout 1)", len,
			 RKEYS_CONGESTION_VALUE_BYTES, RKEYS_CONGESTION_V1_VALUE_BYTES);
		return CGVALUE_BAD_LENGTH;
	}
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
		unsigned s = rkeys_congestion_counter(bytes, len, slot, RKEYS_CG_SAMPLES);
		unsigned u = rkeys_congestion_counter(bytes, len, slot, RKEYS_CG_USES);
		unsigned o = rkeys_congestion_counter(bytes, len, slot, RKEYS_CG_OUT_OF_SERVICE);
		out->samples[slot] = (uint16_t)s;
		out->uses[slot] = (uint16_t)u;
		out->out_of_service[slot] = (uint16_t)o;
		if (u > s || o > s) {
			snprintf(why, whylen, "slot %d (%s %d h): %u %s of %u samples", slot,
				 weekday_names[slot / 24], slot % 24, u > s ? u : o,
				 u > s ? "uses" : "out of service", s);
			return CGVALUE_BAD_COUNTS;
		}
	}
	out->last_sample = rkeys_congestion_last_sample(bytes, len);
	return CGVALUE_OK;
}

void cgvalue_encode(const struct cgvalue *v, unsigned char *out)
{
	memset(out, 0, RKEYS_CONGESTION_VALUE_BYTES);
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
		rkeys_congestion_counter_put(out, slot, RKEYS_CG_SAMPLES, v->samples[slot]);
		rkeys_congestion_counter_put(out, slot, RKEYS_CG_USES, v->uses[slot]);
		rkeys_congestion_counter_put(out, slot, RKEYS_CG_OUT_OF_SERVICE,
					     v->out_of_service[slot]);
	}
	rkeys_congestion_last_sample_put(out, v->last_sample);
}

static uint64_t total(const uint16_t *counts)
{
	uint64_t sum = 0;
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++)
		sum += counts[slot];
	return sum;
}

uint64_t cgvalue_samples_total(const struct cgvalue *v)
{
	return total(v->samples);
}

uint64_t cgvalue_out_of_service_total(const struct cgvalue *v)
{
	return total(v->out_of_service);
}

size_t cgvalue_u16_text(uint16_t n, char *out)
{
	size_t count = dec_uint(out, n);
	out[count] = '\0';
	return count;
}

void cgvalue_hex(const void *bytes, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = bytes;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * len] = '\0';
}
