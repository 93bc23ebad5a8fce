/* clock: the time realtimed reads "now" from for Korea-time bucketing and
 * lag: the system clock, or a fixed instant (REALTIMED_CLOCK=fixed:TS) for
 * tests and replays against a simulator whose clock is fixed. Timers,
 * lease periods and sample ticks always run on the system clock; only the
 * instant a sample is bucketed into and the lag use this one. Plain value. */
#ifndef REALTIMED_CLOCK_H
#define REALTIMED_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base.h"

struct rtclock {
	bool is_fixed;
	time_t fixed; /* UTC seconds, when is_fixed */
};

/* "system" or "fixed:YYYYMMDDHHMMSS" (Korea time). False with the expected
 * form in why. */
bool rtclock_parse(const char *text, struct rtclock *out, char *why, size_t whylen) MUSTCHECK;
/* cfg check hook for REALTIMED_CLOCK. */
bool rtclock_check(const char *value, char *why, size_t whylen);

/* The instant that stands for the system time `wall`. */
time_t rtclock_at(const struct rtclock *c, time_t wall);
time_t rtclock_now(const struct rtclock *c);

#endif
