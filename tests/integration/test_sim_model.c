/* upstream-sim: the documented model, recomputed here from docs/simulator.md
 * alone (hash, block layout, statId, status timeline, usage curve, epochs)
 * and compared with what the simulator serves: every record's identity and
 * status fields, the exact getChargerStatus?period=M sets, usage-curve
 * frequencies within sampling error, exact epoch diffs, status overrides and
 * clock control. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "itest.h"
#include "sim_reference.h"
#include "testmain.h"

/* ---- the reference model (docs/simulator.md) ---- */

static const int size_cum[20] = {420, 670, 790, 880, 915, 940, 955, 967, 975, 980,
				 982, 984, 986, 988, 990, 992, 994, 996, 998, 1000};

static void layout(uint64_t seed, uint64_t block, int start[13])
{
	int size[12], r = (int)(sim_ref_hash(seed, 1, block, 0) % 12), left = 30, done = 0;
	for (int k = 0; k < 12; k++) {
		if (k == r)
			continue;
		done++;
		int x = (int)(sim_ref_hash(seed, 2, block, (uint64_t)k) % 1000), s = 1;
		while (x >= size_cum[s - 1])
			s++;
		if (s > left - (12 - done))
			s = left - (12 - done);
		size[k] = s;
		left -= s;
	}
	size[r] = left;
	start[0] = 0;
	for (int k = 0; k < 12; k++)
		start[k + 1] = start[k] + size[k];
}

struct ref_loc {
	uint64_t u, first;
	int charger;
};

static void locate(uint64_t seed, uint64_t slot, struct ref_loc *out)
{
	int start[13];
	uint64_t b = slot / 30;
	layout(seed, b, start);
	int o = (int)(slot % 30), k = 0;
	while (o >= start[k + 1])
		k++;
	out->u = b * 12 + (uint64_t)k;
	out->first = b * 30 + (uint64_t)start[k];
	out->charger = o - start[k];
}

static const struct {
	const char *code;
	int weight;
} ops[] = {{"ME", 160}, {"KP", 120}, {"PI", 90}, {"EV", 90}, {"ST", 60}, {"HE", 60},
	   {"SF", 60},	{"GN", 50},  {"CV", 50}, {"PW", 40}, {"EZ", 30}, {"SK", 40},
	   {"HM", 30},	{"LU", 40},  {"EP", 20}, {"KL", 20}, {"JE", 20}, {"NT", 20}};

/* "ME104729/01" for a slot (stations below 10^6 only: one prefix generation) */
static void key_of(uint64_t seed, uint64_t slot, char out[16])
{
	struct ref_loc loc;
	locate(seed, slot, &loc);
	int x = (int)(sim_ref_hash(seed, 3, loc.u, 0) % 1000), cum = 0, op = 0;
	for (; op < 18; op++) {
		cum += ops[op].weight;
		if (x < cum)
			break;
	}
	ck_assert(loc.u < 1000000);
	char buf[64];
	snprintf(buf, sizeof(buf), "%s%06llu/%02d", ops[op].code,
		 (unsigned long long)((loc.u * 619813ULL + 104729ULL) % 1000000ULL),
		 loc.charger + 1);
	ck_assert_int_eq(strlen(buf), 11);
	memcpy(out, buf, 12);
}

#define NONE INT64_MIN
struct ref_status {
	int stat;
	int64_t upd, last_start, last_end, now_start;
};

static void ref_status(uint64_t seed, uint64_t slot, int64_t t, struct ref_status *r)
{
	int64_t ph = sim_ref_phase(seed, slot), k = sim_ref_floor_div(t - ph, 1800), oldest = k - 48;
	int now = sim_ref_state(seed, slot, k);
	int64_t j = k;
	while (j > oldest && sim_ref_state(seed, slot, j - 1) == now)
		j--;
	r->stat = now;
	r->upd = j * 1800 + ph;
	r->now_start = now == 3 ? r->upd : NONE;
	r->last_start = r->last_end = NONE;
	for (int64_t e = k; e > oldest; e--) {
		if (sim_ref_state(seed, slot, e - 1) == 3 && sim_ref_state(seed, slot, e) != 3) {
			r->last_end = e * 1800 + ph;
			int64_t s = e - 1;
			while (s > oldest && sim_ref_state(seed, slot, s - 1) == 3)
				s--;
			r->last_start = s * 1800 + ph;
			break;
		}
	}
}

/* changed: a slot boundary in (t - 60M, t] where the state differs */
static bool ref_changed(uint64_t seed, uint64_t slot, int64_t t, int minutes)
{
	int64_t ph = sim_ref_phase(seed, slot);
	for (int64_t j = sim_ref_floor_div(t - ph, 1800); j * 1800 + ph > t - minutes * 60; j--)
		if (sim_ref_state(seed, slot, j) != sim_ref_state(seed, slot, j - 1))
			return true;
	return false;
}

/* KST text <-> Unix seconds */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int64_t kst(const char *ts)
{
	unsigned y, mo, d, h, mi, s;
	ck_assert_int_eq(sscanf(ts, "%4u%2u%2u%2u%2u%2u", &y, &mo, &d, &h, &mi, &s), 6);
	return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - 32400;
}

static void fmt_kst(int64_t t, char out[15])
{
	if (t == NONE) {
		out[0] = 0;
		return;
	}
	time_t local = (time_t)(t + 32400);
	struct tm tm;
	gmtime_r(&local, &tm);
	strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

/* ---- simulator plumbing ---- */

static char *sim_body(const struct itest_sim *s, const char *path, size_t *len)
{
	char *body = NULL;
	long code = itest_sim_get(s, path, &body, len);
	ck_assert_msg(code == 200, "%s: HTTP %ld: %s", path, code, body ? body : "");
	return body;
}

static yajl_val sim_json(const struct itest_sim *s, const char *path)
{
	char *body = sim_body(s, path, NULL), err[512];
	yajl_val v = yajl_tree_parse(body, err, sizeof(err));
	ck_assert_msg(v != NULL, "%s: %s", path, err);
	free(body);
	return v;
}

static const char *str_at(yajl_val v, const char *a, const char *b)
{
	const char *path[] = {a, b, NULL};
	yajl_val x = yajl_tree_get(v, path, yajl_t_string);
	ck_assert_msg(x != NULL, "no string at %s.%s", a, b ? b : "");
	return YAJL_GET_STRING(x);
}

static long long int_at(yajl_val v, const char *a)
{
	const char *path[] = {a, NULL};
	yajl_val x = yajl_tree_get(v, path, yajl_t_number);
	ck_assert_msg(x != NULL, "no number at %s", a);
	return YAJL_GET_INTEGER(x);
}

/* All items of a full pass, as parsed pages (caller frees with pass_free). */
struct pass {
	yajl_val pages[64];
	int page_count;
	yajl_val items[200000];
	long count;
	long total;
};

static void pass_load(struct pass *p, const struct itest_sim *s, const char *op, const char *extra)
{
	memset(p, 0, sizeof(*p));
	for (long page = 1; page < 64; page++) {
		char path[512];
		snprintf(path, sizeof(path),
			 "/B552584/EvCharger/"
			 "%s?serviceKey=test-key&pageNo=%ld&numOfRows=9999&dataType=JSON%s",
			 op, page, extra ? extra : "");
		yajl_val v = sim_json(s, path);
		p->pages[p->page_count++] = v;
		p->total = int_at(v, "totalCount");
		const char *ip[] = {"items", "item", NULL};
		yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
		ck_assert_ptr_nonnull(items);
		for (size_t i = 0; i < YAJL_GET_ARRAY(items)->len; i++)
			p->items[p->count++] = YAJL_GET_ARRAY(items)->values[i];
		if (p->count >= p->total)
			break;
	}
	ck_assert_int_eq(p->count, p->total);
}

static void pass_free(struct pass *p)
{
	for (int i = 0; i < p->page_count; i++)
		yajl_tree_free(p->pages[i]);
}

static void item_key(yajl_val item, char out[16])
{
	snprintf(out, 16, "%s/%s", str_at(item, "statId", NULL), str_at(item, "chgerId", NULL));
}

#define SEED	 20240605ULL
#define SEED_ARG "20240605"

static void check_status_fields(yajl_val item, uint64_t slot, int64_t t)
{
	struct ref_status r;
	ref_status(SEED, slot, t, &r);
	char stat[4], upd[15], ls[15], le[15], ns[15];
	snprintf(stat, sizeof(stat), "%d", r.stat);
	fmt_kst(r.upd, upd);
	fmt_kst(r.last_start, ls);
	fmt_kst(r.last_end, le);
	fmt_kst(r.now_start, ns);
	ck_assert_str_eq(str_at(item, "stat", NULL), stat);
	ck_assert_str_eq(str_at(item, "statUpdDt", NULL), upd);
	ck_assert_str_eq(str_at(item, "lastTsdt", NULL), ls);
	ck_assert_str_eq(str_at(item, "lastTedt", NULL), le);
	ck_assert_str_eq(str_at(item, "nowTsdt", NULL), ns);
}

static struct pass pass_a, pass_b; /* large: static */

START_TEST(identity_and_status_match_the_formula)
{
	struct itest_sim s;
	const char *args[] = {
		"--seed", SEED_ARG, "--chargers", "10000", "--clock", "fixed:20240605193012", NULL};
	itest_sim_start(&s, args);
	const char *times[] = {"20240605193012", "20240608031729"}; /* Wed evening, Sat night */
	for (int ti = 0; ti < 2; ti++) {
		char path[128];
		snprintf(path, sizeof(path), "/__admin/clock?set=%s", times[ti]);
		yajl_val c = sim_json(&s, path);
		ck_assert_str_eq(str_at(c, "now", NULL), times[ti]);
		yajl_tree_free(c);
		pass_load(&pass_a, &s, "getChargerInfo", NULL);
		ck_assert_int_eq(pass_a.count, 10000);
		for (long i = 0; i < pass_a.count; i++) {
			char expect[16], got[16];
			key_of(SEED, (uint64_t)i, expect);
			item_key(pass_a.items[i], got);
			ck_assert_str_eq(got, expect);
			check_status_fields(pass_a.items[i], (uint64_t)i, kst(times[ti]));
		}
		pass_free(&pass_a);
	}
	itest_sim_stop(&s);
}
END_TEST

static int cmp_str16(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

START_TEST(period_returns_exactly_the_changed_set)
{
	struct itest_sim s;
	const char *now = "20240607184459";
	const char *args[] = {
		"--seed", SEED_ARG, "--chargers", "10000", "--clock", "fixed:20240607184459", NULL};
	itest_sim_start(&s, args);
	static const int minutes[] = {1, 5, 60, 1440};
	static char expect[10000][16], got[10000][16];
	for (int mi = 0; mi < 4; mi++) {
		long n = 0;
		for (uint64_t i = 0; i < 10000; i++)
			if (ref_changed(SEED, i, kst(now), minutes[mi]))
				key_of(SEED, i, expect[n++]);
		char extra[32];
		snprintf(extra, sizeof(extra), "&period=%d", minutes[mi]);
		pass_load(&pass_a, &s, "getChargerStatus", extra);
		ck_assert_msg(pass_a.count == n, "period=%d: %ld items, expected %ld", minutes[mi],
			      pass_a.count, n);
		for (long i = 0; i < n; i++)
			item_key(pass_a.items[i], got[i]);
		qsort(expect, (size_t)n, 16, cmp_str16);
		qsort(got, (size_t)n, 16, cmp_str16);
		for (long i = 0; i < n; i++)
			ck_assert_str_eq(got[i], expect[i]);
		if (minutes[mi] == 1440)
			ck_assert_int_gt(n, 9000); /* nearly everything changes in a day */
		else
			ck_assert_int_gt(n, 0);
		pass_free(&pass_a);
	}
	itest_sim_stop(&s);
}
END_TEST

/* Counts <stat>S</stat> in an XML pass of N chargers at time ts. */
static void count_states(const struct itest_sim *s, const char *ts, long n, long counts[10])
{
	char path[256];
	snprintf(path, sizeof(path), "/__admin/clock?set=%s", ts);
	yajl_tree_free(sim_json(s, path));
	memset(counts, 0, 10 * sizeof(long));
	long seen = 0;
	for (long page = 1; page <= (n + 9998) / 9999; page++) {
		snprintf(path, sizeof(path),
			 "/B552584/EvCharger/"
			 "getChargerInfo?serviceKey=test-key&pageNo=%ld&numOfRows=9999",
			 page);
		size_t len;
		char *body = sim_body(s, path, &len);
		/* a plain scan: strstr per match is quadratic under ASan's
		 * strict_string_checks */
		for (size_t i = 0; i + 8 <= len; i++) {
			if (body[i] != '<' || memcmp(body + i, "<stat>", 6) != 0)
				continue;
			int v = body[i + 6] - '0';
			ck_assert(v >= 0 && v <= 9 && body[i + 7] == '<');
			counts[v]++;
			seen++;
		}
		free(body);
	}
	ck_assert_int_eq(seen, n);
}

START_TEST(usage_curve_frequencies)
{
	/* At HH:59:59 every charger's current slot started within hour HH, so
	 * P(charging) is exactly the table value for that day class and hour. */
	const long n = 25000;
	struct itest_sim s;
	const char *args[] = {
		"--seed", "99", "--chargers", "25000", "--clock", "fixed:20240605000000", NULL};
	itest_sim_start(&s, args);
	struct {
		const char *ts;
	} points[] = {
		{"20240605205959"}, /* Wednesday 20h: the weekday peak */
		{"20240605045959"}, /* Wednesday 04h: the trough */
		{"20240608145959"}, /* Saturday 14h */
		{"20240609105959"}, /* Sunday 10h */
	};
	long other = 0, samples = 0;
	double rate[4];
	for (int i = 0; i < 4; i++) {
		long counts[10];
		count_states(&s, points[i].ts, n, counts);
		double p = sim_ref_usage_pm(kst(points[i].ts)) / 1000.0;
		double sigma = sqrt(n * p * (1 - p));
		ck_assert_msg(fabs((double)counts[3] - n * p) < 4 * sigma,
			      "%s: %ld charging, expected %.0f +- %.0f", points[i].ts, counts[3],
			      n * p, 4 * sigma);
		/* standby is what is left after charging and the 1% fault states */
		double p2 = 0.99 - p;
		ck_assert(fabs((double)counts[2] - n * p2) < 4 * sqrt(n * p2 * (1 - p2)));
		other += counts[1] + counts[4] + counts[5] + counts[9];
		ck_assert_int_eq(counts[0] + counts[6] + counts[7] + counts[8], 0);
		samples += n;
		rate[i] = (double)counts[3] / n;
	}
	ck_assert(fabs((double)other - samples * 0.01) < 4 * sqrt(samples * 0.01 * 0.99));
	ck_assert(rate[0] > rate[1] * 3); /* evenings are busier than nights */
	itest_sim_stop(&s);
}
END_TEST

/* ---- epochs ---- */

static uint64_t slots_at(uint64_t n, int e)
{
	return n + (uint64_t)e * ((n + 199) / 200);
}

static bool ref_removed_at(uint64_t n, int e, uint64_t slot)
{
	if (slot >= slots_at(n, e - 1))
		return false;
	struct ref_loc loc;
	locate(SEED, slot, &loc);
	return sim_ref_hash(SEED, 18, (uint64_t)e, loc.u) % 1000 < 2 ||
	       sim_ref_hash(SEED, 19, (uint64_t)e, slot) % 1000 < 2;
}

static bool ref_changed_at(uint64_t n, int e, uint64_t slot)
{
	struct ref_loc loc;
	locate(SEED, slot, &loc);
	bool station =
		loc.first < slots_at(n, e - 1) && sim_ref_hash(SEED, 20, (uint64_t)e, loc.u) % 1000 < 10;
	bool charger = slot < slots_at(n, e - 1) && sim_ref_hash(SEED, 21, (uint64_t)e, slot) % 1000 < 10;
	return station || charger;
}

/* master fields: everything except the status fields */
static void master_text(yajl_val item, char *out, size_t outlen)
{
	static const char *const status_fields[] = {"stat", "statUpdDt", "lastTsdt", "lastTedt",
						    "nowTsdt"};
	size_t len = 0;
	out[0] = 0;
	for (size_t f = 0; f < YAJL_GET_OBJECT(item)->len; f++) {
		const char *k = YAJL_GET_OBJECT(item)->keys[f];
		bool skip = false;
		for (int s = 0; s < 5; s++)
			skip |= strcmp(k, status_fields[s]) == 0;
		if (!skip)
			len += (size_t)snprintf(out + len, outlen - len, "%s=%s;", k,
						YAJL_GET_STRING(YAJL_GET_OBJECT(item)->values[f]));
	}
}

static long find(char (*keys)[16], long n, const char *key)
{
	long lo = 0, hi = n;
	while (lo < hi) {
		long mid = (lo + hi) / 2;
		int c = strcmp(keys[mid], key);
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

struct keyed {
	char key[16];
	long index;
};

static int cmp_keyed(const void *a, const void *b)
{
	return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

START_TEST(epoch_diff_is_exact)
{
	const uint64_t n = 10000;
	struct itest_sim s;
	const char *args[] = {
		"--seed", SEED_ARG, "--chargers", "10000", "--clock", "fixed:20240605120000", NULL};
	itest_sim_start(&s, args);
	for (int e = 1; e <= 2; e++) {
		pass_load(&pass_a, &s, "getChargerInfo", NULL);
		yajl_val ep = sim_json(&s, "/__admin/epoch?advance=1");
		ck_assert_int_eq(int_at(ep, "epoch"), e);
		ck_assert_int_eq(int_at(ep, "slots"), (long long)slots_at(n, e));
		yajl_tree_free(ep);
		pass_load(&pass_b, &s, "getChargerInfo", NULL);

		/* expected sets from the formulas */
		static char removed[2000][16], added[2000][16], changed[2000][16];
		long nr = 0, na = 0, nc = 0, alive = 0;
		for (uint64_t i = 0; i < slots_at(n, e); i++) {
			bool gone = false;
			for (int x = 1; x <= e; x++)
				gone |= ref_removed_at(n, x, i);
			bool gone_before = false;
			for (int x = 1; x < e; x++)
				gone_before |= ref_removed_at(n, x, i);
			alive += !gone;
			if (gone && !gone_before && i < slots_at(n, e - 1))
				key_of(SEED, i, removed[nr++]);
			else if (!gone && i >= slots_at(n, e - 1))
				key_of(SEED, i, added[na++]);
			else if (!gone && ref_changed_at(n, e, i))
				key_of(SEED, i, changed[nc++]);
		}
		ck_assert_int_eq(pass_b.total, alive);
		ck_assert(nr > 0 && na > 0 && nc > 0);

		/* observed diff */
		static struct keyed before[12000], after[12000];
		for (long i = 0; i < pass_a.count; i++) {
			item_key(pass_a.items[i], before[i].key);
			before[i].index = i;
		}
		for (long i = 0; i < pass_b.count; i++) {
			item_key(pass_b.items[i], after[i].key);
			after[i].index = i;
		}
		qsort(before, (size_t)pass_a.count, sizeof(before[0]), cmp_keyed);
		qsort(after, (size_t)pass_b.count, sizeof(after[0]), cmp_keyed);
		qsort(removed, (size_t)nr, 16, cmp_str16);
		qsort(added, (size_t)na, 16, cmp_str16);
		qsort(changed, (size_t)nc, 16, cmp_str16);
		long seen_removed = 0, seen_added = 0, seen_changed = 0;
		long ia = 0, ib = 0;
		static char ta[8192], tb[8192];
		while (ia < pass_a.count || ib < pass_b.count) {
			int c = ia == pass_a.count   ? 1
				: ib == pass_b.count ? -1
						     : strcmp(before[ia].key, after[ib].key);
			if (c < 0) {
				ck_assert_msg(find(removed, nr, before[ia].key) >= 0,
					      "unexpected removal %s", before[ia].key);
				seen_removed++;
				ia++;
			} else if (c > 0) {
				ck_assert_msg(find(added, na, after[ib].key) >= 0,
					      "unexpected add %s", after[ib].key);
				seen_added++;
				ib++;
			} else {
				master_text(pass_a.items[before[ia].index], ta, sizeof(ta));
				master_text(pass_b.items[after[ib].index], tb, sizeof(tb));
				bool differs = strcmp(ta, tb) != 0;
				ck_assert_msg(differs == (find(changed, nc, before[ia].key) >= 0),
					      "%s: changed=%d", before[ia].key, differs);
				seen_changed += differs;
				ia++;
				ib++;
			}
		}
		ck_assert_int_eq(seen_removed, nr);
		ck_assert_int_eq(seen_added, na);
		ck_assert_int_eq(seen_changed, nc);
		pass_free(&pass_a);
		pass_free(&pass_b);
	}
	/* --epoch 2 at start-up serves the same bytes as two advances */
	struct itest_sim direct;
	const char *args2[] = {"--seed",  SEED_ARG,  "--chargers",
			       "10000",	  "--clock", "fixed:20240605120000",
			       "--epoch", "2",	     NULL};
	itest_sim_start(&direct, args2);
	const char *path =
		"/B552584/EvCharger/"
		"getChargerInfo?serviceKey=test-key&pageNo=2&numOfRows=9999&dataType=JSON";
	size_t la, lb;
	char *a = sim_body(&s, path, &la), *b = sim_body(&direct, path, &lb);
	ck_assert(la == lb && memcmp(a, b, la) == 0);
	free(a);
	free(b);
	itest_sim_stop(&direct);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(status_override_propagates)
{
	struct itest_sim s;
	const char *args[] = {
		"--seed", SEED_ARG, "--chargers", "10000", "--clock", "fixed:20240605120000", NULL};
	itest_sim_start(&s, args);
	char key[16], stat_id[9], path[256];
	key_of(SEED, 1234, key);
	memcpy(stat_id, key, 8);
	stat_id[8] = 0;
	struct ref_status r;
	ref_status(SEED, 1234, kst("20240605120000"), &r);
	int forced = r.stat == 5 ? 4 : 5;
	snprintf(path, sizeof(path), "/__admin/status?statId=%s&chgerId=%s&stat=%d", stat_id,
		 key + 9, forced);
	yajl_val v = sim_json(&s, path);
	ck_assert_int_eq(int_at(v, "index"), 1234);
	char stat[2] = {(char)('0' + forced), 0};
	ck_assert_str_eq(str_at(v, "item", "stat"), stat);
	ck_assert_str_eq(str_at(v, "item", "statUpdDt"), "20240605120000");
	yajl_tree_free(v);
	/* period=1 now: the natural changes of the last minute plus ours */
	long natural = 0;
	for (uint64_t i = 0; i < 10000; i++)
		natural += i != 1234 && ref_changed(SEED, i, kst("20240605120000"), 1);
	pass_load(&pass_a, &s, "getChargerStatus", "&period=1");
	ck_assert_int_eq(pass_a.count, natural + 1);
	bool found = false;
	for (long i = 0; i < pass_a.count; i++) {
		char k[16];
		item_key(pass_a.items[i], k);
		if (strcmp(k, key) == 0) {
			found = true;
			ck_assert_str_eq(str_at(pass_a.items[i], "stat", NULL), stat);
		}
	}
	ck_assert(found);
	pass_free(&pass_a);
	/* two minutes on, the override is older than period=1 but within 3 */
	yajl_tree_free(sim_json(&s, "/__admin/clock?advance=120"));
	pass_load(&pass_a, &s, "getChargerStatus", "&period=1");
	for (long i = 0; i < pass_a.count; i++) {
		char k[16];
		item_key(pass_a.items[i], k);
		ck_assert_str_ne(k, key);
	}
	pass_free(&pass_a);
	pass_load(&pass_a, &s, "getChargerStatus", "&period=3");
	found = false;
	for (long i = 0; i < pass_a.count; i++) {
		char k[16];
		item_key(pass_a.items[i], k);
		found |= strcmp(k, key) == 0;
	}
	ck_assert(found);
	pass_free(&pass_a);
	/* the master data carries it too; clearing restores the formula */
	v = sim_json(&s,
		     "/B552584/EvCharger/"
		     "getChargerInfo?serviceKey=test-key&pageNo=1235&numOfRows=1&dataType=JSON");
	const char *ip[] = {"items", "item", NULL};
	yajl_val item = YAJL_GET_ARRAY(yajl_tree_get(v, ip, yajl_t_array))->values[0];
	ck_assert_str_eq(str_at(item, "stat", NULL), stat);
	ck_assert_str_eq(str_at(item, "statUpdDt", NULL), "20240605120000");
	yajl_tree_free(v);
	v = sim_json(&s, "/__admin/status?clear=1");
	ck_assert_int_eq(int_at(v, "cleared"), 1);
	yajl_tree_free(v);
	v = sim_json(&s, "/__admin/charger?index=1234");
	ck_assert_str_eq(str_at(v, "item", "statId"), stat_id);
	check_status_fields(yajl_tree_get(v, (const char *[]){"item", NULL}, yajl_t_object), 1234,
			    kst("20240605120200"));
	yajl_tree_free(v);
	/* bad admin input */
	char url[256], *body = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/__admin/status?index=1234&stat=7", s.port);
	ck_assert_int_eq(itest_http_get(url, &body, NULL), 400);
	free(body);
	snprintf(url, sizeof(url),
		 "http://127.0.0.1:%d/__admin/status?statId=ZZ999999&chgerId=01&stat=3", s.port);
	ck_assert_int_eq(itest_http_get(url, &body, NULL), 404);
	free(body);
	itest_sim_stop(&s);
}
END_TEST

START_TEST(clock_modes)
{
	struct itest_sim fast, fixed;
	const char *fa[] = {"--clock", "fast:600", "--start", "20240101000000", NULL};
	const char *fx[] = {"--clock", "fixed:20240101000000", NULL};
	itest_sim_start(&fast, fa);
	itest_sim_start(&fixed, fx);
	yajl_val a = sim_json(&fast, "/__admin/clock"), b = sim_json(&fixed, "/__admin/clock");
	usleep(1000000);
	yajl_val c = sim_json(&fast, "/__admin/clock"), d = sim_json(&fixed, "/__admin/clock");
	long long adv = int_at(c, "unix") - int_at(a, "unix");
	ck_assert_msg(adv >= 500 && adv <= 1500, "fast:600 advanced %lld s in ~1 s", adv);
	ck_assert_int_ge(int_at(a, "unix"), kst("20240101000000"));
	ck_assert_int_eq(int_at(b, "unix"), kst("20240101000000"));
	ck_assert_int_eq(int_at(d, "unix"), kst("20240101000000"));
	ck_assert_str_eq(str_at(d, "now", NULL), "20240101000000");
	ck_assert_str_eq(str_at(d, "mode", NULL), "fixed");
	yajl_tree_free(a);
	yajl_tree_free(b);
	yajl_tree_free(c);
	yajl_tree_free(d);
	a = sim_json(&fixed, "/__admin/clock?advance=-60");
	ck_assert_str_eq(str_at(a, "now", NULL), "20231231235900");
	yajl_tree_free(a);
	a = sim_json(&fixed, "/__admin/clock?mode=fast:60");
	ck_assert_str_eq(str_at(a, "mode", NULL), "fast:60");
	yajl_tree_free(a);
	itest_sim_stop(&fast);
	itest_sim_stop(&fixed);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("upstream-sim model");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, identity_and_status_match_the_formula);
	tcase_add_test(tc, period_returns_exactly_the_changed_set);
	tcase_add_test(tc, usage_curve_frequencies);
	tcase_add_test(tc, epoch_diff_is_exact);
	tcase_add_test(tc, status_override_propagates);
	tcase_add_test(tc, clock_modes);
	suite_add_tcase(s, tc);
	return s;
}
