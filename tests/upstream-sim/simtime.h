/* simtime: the simulator's own calendar arithmetic and its one time format,
 * YYYYMMDDHHMMSS in Korea time (UTC+9, no DST). Times are Unix seconds. */
#ifndef SIM_SIMTIME_H
#define SIM_SIMTIME_H

#include <stdbool.h>
#include <stdint.h>

/* Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t simtime_days_from_civil(int64_t y, unsigned m, unsigned d);
void simtime_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* Writes exactly 14 digits (no NUL). */
void simtime_format_kst(int64_t unix_seconds, char out[14]);
/* Parses exactly 14 digits as a valid KST calendar time. */
bool simtime_parse_kst(const char *text, int64_t *unix_seconds);

/* Day of week of the KST date (0 = Sunday .. 6 = Saturday) and hour 0..23. */
int simtime_kst_weekday(int64_t unix_seconds);
int simtime_kst_hour(int64_t unix_seconds);
/* Days since 1970-01-01 of the KST date. */
int64_t simtime_kst_day(int64_t unix_seconds);

#endif
