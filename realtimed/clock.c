#include "clock.h"

#include <stdio.h>
#include <string.h>

#include "kst.h"

bool rtclock_parse(const char *text, struct rtclock *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (!text || !*text || strcmp(text, "system") == 0)
		return true;
	if (strncmp(text, "fixed:", 6) == 0 && kst_parse(text + 6, &out->fixed)) {
		out->is_fixed = true;
		return true;
	}
	snprintf(why, whylen, "system or fixed:YYYYMMDDHHMMSS (Korea time)");
	return false;
}

bool rtclock_check(const char *value, char *why, size_t whylen)
{
	struct rtclock c;
	return rtclock_parse(value, &c, why, whylen);
}

time_t rtclock_at(const struct rtclock *c, time_t wall)
{
	return c->is_fixed ? c->fixed : wall;
}

time_t rtclock_now(const struct rtclock *c)
{
	return rtclock_at(c, time(NULL));
}
