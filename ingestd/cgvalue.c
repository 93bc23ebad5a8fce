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

static uint16_t be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

enum cgvalue_reject cgvalue_decode(const void *bytes, size_t len, struct cgvalue *out, char *why,
				   size_t whylen)
{
	if (len != RKEYS_CONGESTION_VALUE_BYTES) {
		snprintf(why, whylen, "value is %zu bytes, not %d", len,
			 RKEYS_CONGESTION_VALUE_BYTES);
		return CGVALUE_BAD_LENGTH;
	}
	const unsigned char *p = bytes;
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++, p += 4) {
		out->samples[slot] = be16(p);
		out->uses[slot] = be16(p + 2);
		if (out->uses[slot] > out->samples[slot]) {
			snprintf(why, whylen, "slot %d (%s %d h): %u uses of %u samples", slot,
				 weekday_names[slot / 24], slot % 24, out->uses[slot],
				 out->samples[slot]);
			return CGVALUE_BAD_COUNTS;
		}
	}
	out->last_sample = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return CGVALUE_OK;
}

void cgvalue_encode(const struct cgvalue *v, unsigned char *out)
{
	unsigned char *p = out;
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++, p += 4) {
		p[0] = (unsigned char)(v->samples[slot] >> 8);
		p[1] = (unsigned char)v->samples[slot];
		p[2] = (unsigned char)(v->uses[slot] >> 8);
		p[3] = (unsigned char)v->uses[slot];
	}
	p[0] = (unsigned char)(v->last_sample >> 24);
	p[1] = (unsigned char)(v->last_sample >> 16);
	p[2] = (unsigned char)(v->last_sample >> 8);
	p[3] = (unsigned char)v->last_sample;
}

uint64_t cgvalue_samples_total(const struct cgvalue *v)
{
	uint64_t total = 0;
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++)
		total += v->samples[slot];
	return total;
}

size_t cgvalue_u16_text(uint16_t n, char *out)
{
	char digits[5];
	size_t count = 0;
	do {
		digits[count++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	for (size_t i = 0; i < count; i++)
		out[i] = digits[count - 1 - i];
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
