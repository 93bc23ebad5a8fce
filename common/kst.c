#include "kst.h"

#include <string.h>

#define SECONDS_PER_DAY 86400

/* Floor division: the calendar math must round toward minus infinity for
 * instants before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

bool kst_is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int kst_days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (month < 1 || month > 12)
		return 0;
	if (month == 2 && kst_is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Shift the year to start in March, so the leap day is the year's last day;
 * then count 400-year eras of 146097 days. */
int64_t kst_days_from_civil(int year, int month, int day)
{
	int64_t y = (int64_t)year - (month <= 2);
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;                               /* 0..399 */
	int64_t mp = (month + 9) % 12;                             /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + day - 1;                /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;       /* 0..146096 */
	return era * 146097 + doe - 719468;                        /* 719468: 0000-03-01 to 1970-01-01 */
}

void kst_civil_from_days(int64_t days, int *year, int *month, int *day)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;                                   /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;                                  /* 0..11 */
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*year = (int)(yoe + era * 400 + (m <= 2));
	*month = m;
	*day = d;
}

/* 1970-01-01 was a Thursday (3 when Monday is 0). */
static int weekday_of_days(int64_t days)
{
	return (int)(((days % 7) + 7 + 3) % 7);
}

static void split_offset(time_t t, int offset, struct kst_civil *out)
{
	int64_t s = (int64_t)t + offset;
	int64_t days = floor_div(s, SECONDS_PER_DAY);
	int64_t secs = s - days * SECONDS_PER_DAY;
	kst_civil_from_days(days, &out->year, &out->month, &out->day);
	out->hour = (int)(secs / 3600);
	out->minute = (int)(secs / 60 % 60);
	out->second = (int)(secs % 60);
	out->weekday = weekday_of_days(days);
}

void kst_split(time_t t, struct kst_civil *out)
{
	split_offset(t, KST_OFFSET_SECONDS, out);
}

void kst_split_utc(time_t t, struct kst_civil *out)
{
	split_offset(t, 0, out);
}

int kst_weekday(time_t t)
{
	int64_t days = floor_div((int64_t)t + KST_OFFSET_SECONDS, SECONDS_PER_DAY);
	return weekday_of_days(days);
}

int kst_hour(time_t t)
{
	int64_t s = (int64_t)t + KST_OFFSET_SECONDS;
	int64_t secs = s - floor_div(s, SECONDS_PER_DAY) * SECONDS_PER_DAY;
	return (int)(secs / 3600);
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool kst_parse_n(const char *text, size_t len, time_t *out)
{
	int year, month, day, hour, minute, second;
	if (!text || len != 14)
		return false;
	if (!digits(text, 4, &year) || !digits(text + 4, 2, &month) ||
	    !digits(text + 6, 2, &day) || !digits(text + 8, 2, &hour) ||
	    !digits(text + 10, 2, &minute) || !digits(text + 12, 2, &second))
		return false;
	if (year < KST_YEAR_MIN || year > KST_YEAR_MAX || month < 1 || month > 12 || day < 1 ||
	    day > kst_days_in_month(year, month) || hour > 23 || minute > 59 || second > 59)
		return false;
	int64_t s = kst_days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 +
		    minute * 60 + second - KST_OFFSET_SECONDS;
	*out = (time_t)s;
	return true;
}

bool kst_parse(const char *text, time_t *out)
{
	if (!text)
		return false;
	/* strnlen: a long string is refused without reading all of it */
	return kst_parse_n(text, strnlen(text, 15), out);
}

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, each moved inward by the
 * offset so both the UTC and the Korea form keep four-digit years. */
#define CLAMP_MIN (-62167219200LL + KST_OFFSET_SECONDS)
#define CLAMP_MAX (253402300799LL - KST_OFFSET_SECONDS)

static time_t clamp(time_t t)
{
	if ((int64_t)t < CLAMP_MIN)
		return (time_t)CLAMP_MIN;
	if ((int64_t)t > CLAMP_MAX)
		return (time_t)CLAMP_MAX;
	return t;
}

static char *put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

static char *put4(char *p, int v)
{
	p = put2(p, v / 100);
	return put2(p, v % 100);
}

/* "YYYY-MM-DDTHH:MM:SS" */
static char *put_iso(char *p, const struct kst_civil *c)
{
	p = put4(p, c->year);
	*p++ = '-';
	p = put2(p, c->month);
	*p++ = '-';
	p = put2(p, c->day);
	*p++ = 'T';
	p = put2(p, c->hour);
	*p++ = ':';
	p = put2(p, c->minute);
	*p++ = ':';
	return put2(p, c->second);
}

size_t kst_format_iso(time_t t, char out[KST_ISO_SIZE])
{
	struct kst_civil c;
	kst_split(clamp(t), &c);
	char *p = put_iso(out, &c);
	memcpy(p, "+09:00", 7);
	return (size_t)(p - out) + 6;
}

size_t kst_format_iso_utc(time_t t, char out[KST_ISO_UTC_SIZE])
{
	struct kst_civil c;
	kst_split_utc(clamp(t), &c);
	char *p = put_iso(out, &c);
	memcpy(p, "Z", 2);
	return (size_t)(p - out) + 1;
}

size_t kst_format_compact(time_t t, char out[KST_COMPACT_SIZE])
{
	struct kst_civil c;
	kst_split(clamp(t), &c);
	char *p = put4(out, c.year);
	p = put2(p, c.month);
	p = put2(p, c.day);
	p = put2(p, c.hour);
	p = put2(p, c.minute);
	p = put2(p, c.second);
	*p = '\0';
	return (size_t)(p - out);
}
