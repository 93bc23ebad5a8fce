/* kst: Korea Standard Time and the upstream's timestamps.
 * Owns the conversion between the upstream's YYYYMMDDHHMMSS text (Korea
 * time) and time_t (UTC), the Korea-time weekday and hour that bucket
 * congestion, and the ISO-8601 and compact text forms. KST is UTC+9 all
 * year (no daylight saving), so +9h is exact: nothing here reads TZ or calls
 * localtime, which makes every function thread-safe and deterministic. The
 * civil-date arithmetic is the proleptic Gregorian calendar ("days from
 * civil", H. Hinnant). */
#ifndef EV_KST_H
#define EV_KST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"

#define KST_OFFSET_SECONDS (9 * 3600)

/* Years kst_parse accepts. Earlier values are placeholders, not events. */
#define KST_YEAR_MIN 1900
#define KST_YEAR_MAX 9999

/* Weekdays as kst_weekday returns them: Monday first, as in ISO 8601 and the
 * API's dayOfWeek (monday..sunday). */
enum kst_weekday {
	KST_MONDAY = 0,
	KST_TUESDAY,
	KST_WEDNESDAY,
	KST_THURSDAY,
	KST_FRIDAY,
	KST_SATURDAY,
	KST_SUNDAY = 6,
};

/* A broken-down civil time. */
struct kst_civil {
	int year;    /* e.g. 2024 */
	int month;   /* 1..12 */
	int day;     /* 1..31 */
	int hour;    /* 0..23 */
	int minute;  /* 0..59 */
	int second;  /* 0..59 */
	int weekday; /* enum kst_weekday: 0 = Monday .. 6 = Sunday */
};

/* Parse exactly 14 ASCII digits YYYYMMDDHHMMSS in Korea time into UTC
 * seconds. False for anything else: empty, shorter or longer text,
 * whitespace or signs anywhere, a date that does not exist (20240230,
 * 20230229), hour 24, minute or second 60 (no leap seconds), a year outside
 * KST_YEAR_MIN..KST_YEAR_MAX. Trimming padded upstream values is the
 * caller's decision, not this function's. */
bool kst_parse(const char *text, time_t *out) MUSTCHECK;
bool kst_parse_n(const char *text, size_t len, time_t *out) MUSTCHECK;

/* Korea-time weekday (enum kst_weekday, 0 = Monday .. 6 = Sunday) and hour
 * (0..23) of an instant. */
int kst_weekday(time_t t);
int kst_hour(time_t t);

/* Break an instant down in Korea time / in UTC. */
void kst_split(time_t t, struct kst_civil *out);
void kst_split_utc(time_t t, struct kst_civil *out);

/* Days since 1970-01-01 of a proleptic Gregorian date (any int year; month
 * 1..12, day 1..31 not checked against the month), and the reverse. */
int64_t kst_days_from_civil(int year, int month, int day);
void kst_civil_from_days(int64_t days, int *year, int *month, int *day);
bool kst_is_leap_year(int year);
int kst_days_in_month(int year, int month); /* 0 for a month outside 1..12 */

/* Text forms, always NUL-terminated, returning the length. Instants outside
 * years 0000..9999 are clamped to that range, so the width is fixed. */
#define KST_ISO_SIZE 26     /* "2024-01-02T03:04:05+09:00" + NUL */
#define KST_ISO_UTC_SIZE 21 /* "2024-01-01T18:04:05Z" + NUL */
#define KST_COMPACT_SIZE 15 /* "20240102030405" + NUL */
size_t kst_format_iso(time_t t, char out[KST_ISO_SIZE]);
size_t kst_format_iso_utc(time_t t, char out[KST_ISO_UTC_SIZE]);
size_t kst_format_compact(time_t t, char out[KST_COMPACT_SIZE]);

#endif
