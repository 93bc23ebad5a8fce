/* simtime: civil-date conversions after Howard Hinnant's public-domain
 * algorithms, written out here so the simulator shares no time code with
 * the programs it tests. */
#include "simtime.h"

#include "sim.h"

#include <string.h>

int64_t simtime_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void simtime_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
}

void simtime_format_kst(int64_t unix_seconds, char out[14])
{
	int64_t local = unix_seconds + SIM_KST_OFFSET;
	int64_t days = sim_floordiv(local, 86400);
	int64_t secs = local - days * 86400;
	int64_t y;
	unsigned m, d;
	simtime_civil_from_days(days, &y, &m, &d);
	unsigned yy = (unsigned)(y < 0 ? 0 : y > 9999 ? 9999 : y);
	put2(out, yy / 100);
	put2(out + 2, yy % 100);
	put2(out + 4, m);
	put2(out + 6, d);
	put2(out + 8, (unsigned)(secs / 3600));
	put2(out + 10, (unsigned)(secs / 60 % 60));
	put2(out + 12, (unsigned)(secs % 60));
}

static bool digits(const char *p, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return true;
}

bool simtime_parse_kst(const char *text, int64_t *unix_seconds)
{
	unsigned y, mo, d, h, mi, s;
	if (strlen(text) != 14 || !digits(text, 4, &y) || !digits(text + 4, 2, &mo) ||
	    !digits(text + 6, 2, &d) || !digits(text + 8, 2, &h) || !digits(text + 10, 2, &mi) ||
	    !digits(text + 12, 2, &s))
		return false;
	if (y < 1971 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59)
		return false;
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		return false;
	int64_t days = simtime_days_from_civil(y, mo, d);
	*unix_seconds = days * 86400 + h * 3600 + mi * 60 + s - SIM_KST_OFFSET;
	return true;
}

int64_t simtime_kst_day(int64_t unix_seconds)
{
	return sim_floordiv(unix_seconds + SIM_KST_OFFSET, 86400);
}

int simtime_kst_weekday(int64_t unix_seconds)
{
	/* 1970-01-01 was a Thursday (4). */
	int64_t wd = (simtime_kst_day(unix_seconds) + 4) % 7;
	return (int)(wd < 0 ? wd + 7 : wd);
}

int simtime_kst_hour(int64_t unix_seconds)
{
	int64_t local = unix_seconds + SIM_KST_OFFSET;
	return (int)((local - sim_floordiv(local, 86400) * 86400) / 3600);
}
