/* base: the few macros every module uses; nothing with state. */
#ifndef EV_BASE_H
#define EV_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MUSTCHECK __attribute__((warn_unused_result))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The value of one hex digit, either case; -1 when c is not one. */
static inline int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The decimal digits of v at out (room for 20 needed), unterminated;
 * returns their count. Locale-free; a tenth of snprintf's cost, which was a
 * quarter of realtimed's CPU when it wrote 500,000 statuses. */
static inline size_t dec_uint(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Milliseconds on the monotonic clock: for timeouts and durations, never
 * for dates. */
static inline int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sysexits codes: a daemon exits only at start-up; ingestd's exit code is its
 * report to the scheduler. */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 64,       /* EX_USAGE: bad command line */
	EXIT_DATAERR = 65,     /* EX_DATAERR */
	EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: upstream or store unreachable */
	EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: internal error */
	EXIT_TEMPFAIL = 75,    /* EX_TEMPFAIL: try again later (e.g. already running) */
	EXIT_CONFIG = 78,      /* EX_CONFIG: a configuration value is wrong */
};

#endif
