/* model: clock, epochs, status. */
#include "model.h"

#include "simtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- clock ---- */

static double mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool clock_parse(struct sim_clock *clock, const char *spec, char *err, size_t errlen)
{
	memset(clock, 0, sizeof(*clock));
	if (strcmp(spec, "real") == 0) {
		clock->mode = CLOCK_REAL;
		return true;
	}
	if (strncmp(spec, "fast:", 5) == 0) {
		char *end;
		errno = 0;
		double x = strtod(spec + 5, &end);
		if (errno || end == spec + 5 || *end || !(x > 0 && x <= 1e6)) {
			snprintf(err, errlen, "--clock fast:X needs 0 < X <= 1000000, got '%s'",
				 spec + 5);
			return false;
		}
		clock->mode = CLOCK_FAST;
		clock->speed = x;
		clock->base_sim = (int64_t)time(NULL);
		clock->base_real = mono_seconds();
		return true;
	}
	if (strncmp(spec, "fixed:", 6) == 0) {
		if (!simtime_parse_kst(spec + 6, &clock->base_sim)) {
			snprintf(err, errlen,
				 "--clock fixed:TS needs TS as YYYYMMDDHHMMSS (KST), got '%s'",
				 spec + 6);
			return false;
		}
		clock->mode = CLOCK_FIXED;
		return true;
	}
	snprintf(err, errlen, "--clock must be real, fast:X or fixed:YYYYMMDDHHMMSS, got '%s'",
		 spec);
	return false;
}

int64_t clock_now(const struct sim_clock *clock)
{
	switch (clock->mode) {
	case CLOCK_REAL: return (int64_t)time(NULL) + clock->offset;
	case CLOCK_FAST:
		return clock->base_sim +
		       (int64_t)floor((mono_seconds() - clock->base_real) * clock->speed);
	case CLOCK_FIXED: return clock->base_sim;
	}
	abort();
}

void clock_set(struct sim_clock *clock, int64_t t)
{
	switch (clock->mode) {
	case CLOCK_REAL: clock->offset = t - (int64_t)time(NULL); break;
	case CLOCK_FAST:
		clock->base_sim = t;
		clock->base_real = mono_seconds();
		break;
	case CLOCK_FIXED: clock->base_sim = t; break;
	}
}

void clock_describe(const struct sim_clock *clock, char *out, size_t outlen)
{
	switch (clock->mode) {
	case CLOCK_REAL: snprintf(out, outlen, "real"); break;
	case CLOCK_FAST: snprintf(out, outlen, "fast:%g", clock->speed); break;
	case CLOCK_FIXED: snprintf(out, outlen, "fixed"); break;
	}
}

/* ---- epochs ---- */

static inline uint64_t H(const struct sim_model *m, enum sim_tag tag, uint64_t a, uint64_t b)
{
	return sim_hash(&m->gen->keys, tag, a, b);
}

uint64_t model_epoch_total(const struct sim_model *m, int epoch)
{
	return m->chargers + (uint64_t)epoch * m->adds;
}

/* Slots removed at epoch e (from slots existing at e-1), appended in index
 * order to *list. */
static bool removed_at(const struct sim_model *m, int e, uint32_t **list, size_t *count,
		       size_t *cap)
{
	uint64_t before = model_epoch_total(m, e - 1);
	struct sim_layout layout;
	for (uint64_t block = 0; block * SIM_BLOCK_SLOTS < before; block++) {
		gen_layout(m->gen, block, &layout);
		for (int k = 0; k < SIM_BLOCK_STATIONS; k++) {
			uint64_t u = block * SIM_BLOCK_STATIONS + (uint64_t)k;
			bool station_gone = H(m, TAG_SREMOVE, (uint64_t)e, u) % 1000 < 2;
			for (int s = layout.start[k]; s < layout.start[k + 1]; s++) {
				uint64_t slot = block * SIM_BLOCK_SLOTS + (uint64_t)s;
				if (slot >= before)
					break;
				if (!station_gone &&
				    H(m, TAG_CREMOVE, (uint64_t)e, slot) % 1000 >= 2)
					continue;
				if (*count == *cap) {
					size_t ncap = *cap ? *cap * 2 : 1024;
					uint32_t *grown = realloc(*list, ncap * sizeof(**list));
					if (!grown)
						return false;
					*list = grown;
					*cap = ncap;
				}
				(*list)[(*count)++] = (uint32_t)slot;
			}
		}
	}
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

bool model_set_epoch(struct sim_model *m, int epoch, char *err, size_t errlen)
{
	if (epoch < 0 || epoch > SIM_MAX_EPOCH) {
		snprintf(err, errlen, "epoch must be 0..%d", SIM_MAX_EPOCH);
		return false;
	}
	uint64_t total = model_epoch_total(m, epoch);
	uint64_t blocks = (total + SIM_BLOCK_SLOTS - 1) / SIM_BLOCK_SLOTS;
	if (blocks * SIM_BLOCK_STATIONS > m->gen->station_capacity || total > UINT32_MAX) {
		snprintf(err, errlen, "epoch %d needs %llu chargers, past the statId capacity",
			 epoch, (unsigned long long)total);
		return false;
	}
	uint32_t *list = NULL;
	size_t count = 0, cap = 0;
	for (int e = 1; e <= epoch; e++) {
		if (!removed_at(m, e, &list, &count, &cap)) {
			free(list);
			snprintf(err, errlen, "out of memory");
			return false;
		}
	}
	if (count)
		qsort(list, count, sizeof(*list), cmp_u32);
	size_t unique = 0;
	for (size_t i = 0; i < count; i++)
		if (unique == 0 || list[unique - 1] != list[i])
			list[unique++] = list[i];
	free(m->removed);
	m->removed = list;
	m->removed_count = unique;
	m->epoch = epoch;
	m->total = total;
	return true;
}

bool model_init(struct sim_model *m, const struct sim_gen *gen, uint64_t chargers, int epoch,
		char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	m->gen = gen;
	m->chargers = chargers;
	m->adds = (chargers + 199) / 200;
	return model_set_epoch(m, epoch, err, errlen);
}

void model_free(struct sim_model *m)
{
	free(m->removed);
	free(m->overrides);
	m->removed = NULL;
	m->overrides = NULL;
}

uint64_t model_alive_count(const struct sim_model *m)
{
	return m->total - m->removed_count;
}

/* First removed entry >= slot. */
static size_t removed_lower_bound(const struct sim_model *m, uint64_t slot)
{
	size_t lo = 0, hi = m->removed_count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->removed[mid] < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool model_is_removed(const struct sim_model *m, uint64_t slot)
{
	size_t i = removed_lower_bound(m, slot);
	return i < m->removed_count && m->removed[i] == slot;
}

bool model_cursor_at(const struct sim_model *m, uint64_t pos, struct model_cursor *c)
{
	if (pos >= model_alive_count(m))
		return false;
	/* removed[j] - j is non-decreasing: the number of removed slots below
	 * the answer is the count of j with removed[j] - j <= pos. */
	size_t lo = 0, hi = m->removed_count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->removed[mid] - mid <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	c->slot = pos + lo;
	c->next_removed = lo;
	return true;
}

bool model_cursor_next(const struct sim_model *m, struct model_cursor *c)
{
	for (;;) {
		c->slot++;
		if (c->slot >= m->total)
			return false;
		while (c->next_removed < m->removed_count && m->removed[c->next_removed] < c->slot)
			c->next_removed++;
		if (c->next_removed < m->removed_count && m->removed[c->next_removed] == c->slot)
			continue;
		return true;
	}
}

int model_station_version(const struct sim_model *m, uint64_t u, uint64_t first_slot)
{
	int v = 0;
	for (int e = 1; e <= m->epoch; e++)
		if (first_slot < model_epoch_total(m, e - 1) &&
		    H(m, TAG_SCHANGE, (uint64_t)e, u) % 1000 < 10)
			v++;
	return v;
}

int model_charger_version(const struct sim_model *m, uint64_t slot)
{
	int v = 0;
	for (int e = 1; e <= m->epoch; e++)
		if (slot < model_epoch_total(m, e - 1) &&
		    H(m, TAG_CCHANGE, (uint64_t)e, slot) % 1000 < 10)
			v++;
	return v;
}

/* ---- status ---- */

int model_usage_pm(int64_t slot_start)
{
	int wd = simtime_kst_weekday(slot_start);
	int day_class = wd == 6 ? 1 : wd == 0 ? 2 : 0;
	return sim_usage_pm[day_class][simtime_kst_hour(slot_start)];
}

struct timeline {
	const struct sim_model *m;
	uint64_t slot;
	int64_t phase;
	int64_t k;			      /* current slot number */
	int8_t state[SIM_LOOKBACK_SLOTS + 1]; /* state of slot k - i, 0 = not computed */
};

static int64_t slot_start(const struct timeline *tl, int64_t j)
{
	return j * SIM_SLOT_SECONDS + tl->phase;
}

static int natural_state(struct timeline *tl, int64_t j)
{
	int8_t *cached = &tl->state[tl->k - j];
	if (*cached)
		return *cached;
	uint64_t x = H(tl->m, TAG_STAT, tl->slot, (uint64_t)j) % 1000000;
	uint64_t charging = (uint64_t)model_usage_pm(slot_start(tl, j)) * 1000;
	int s = x < charging ? 3
		: x < 990000 ? 2
		: x < 994000 ? 1
		: x < 996000 ? 4
		: x < 998000 ? 5
			     : 9;
	*cached = (int8_t)s;
	return s;
}

static void timeline_init(struct timeline *tl, const struct sim_model *m, uint64_t slot, int64_t t)
{
	tl->m = m;
	tl->slot = slot;
	tl->phase = (int64_t)(H(m, TAG_PHASE, slot, 0) % SIM_SLOT_SECONDS);
	tl->k = sim_floordiv(t - tl->phase, SIM_SLOT_SECONDS);
	memset(tl->state, 0, sizeof(tl->state));
}

static const struct sim_override *find_override(const struct sim_model *m, uint64_t slot)
{
	size_t lo = 0, hi = m->override_count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->overrides[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->override_count && m->overrides[lo].slot == slot ? &m->overrides[lo] : NULL;
}

void model_status(const struct sim_model *m, uint64_t slot, int64_t t, struct sim_status *out)
{
	struct timeline tl;
	timeline_init(&tl, m, slot, t);
	const int64_t k = tl.k, oldest = k - SIM_LOOKBACK_SLOTS;
	int now = natural_state(&tl, k);
	int64_t j = k;
	while (j > oldest && natural_state(&tl, j - 1) == now)
		j--;
	out->stat = now;
	out->updated = slot_start(&tl, j);
	out->now_start = now == 3 ? out->updated : STATUS_NONE;
	/* the latest completed charging run within the window */
	out->last_start = out->last_end = STATUS_NONE;
	for (int64_t e = k; e > oldest; e--) {
		if (natural_state(&tl, e - 1) == 3 && natural_state(&tl, e) != 3) {
			out->last_end = slot_start(&tl, e);
			int64_t s = e - 1;
			while (s > oldest && natural_state(&tl, s - 1) == 3)
				s--;
			out->last_start = slot_start(&tl, s);
			break;
		}
	}
	const struct sim_override *ov = m->override_count ? find_override(m, slot) : NULL;
	if (ov && ov->at <= t) {
		out->stat = ov->stat;
		out->updated = ov->at;
		out->now_start = ov->stat == 3 ? ov->at : STATUS_NONE;
	}
}

bool model_changed(const struct sim_model *m, uint64_t slot, int64_t t, int64_t window_seconds)
{
	const struct sim_override *ov = m->override_count ? find_override(m, slot) : NULL;
	if (ov && ov->at <= t)
		return ov->at > t - window_seconds;
	struct timeline tl;
	timeline_init(&tl, m, slot, t);
	for (int64_t j = tl.k;
	     j > tl.k - SIM_LOOKBACK_SLOTS && slot_start(&tl, j) > t - window_seconds; j--)
		if (natural_state(&tl, j) != natural_state(&tl, j - 1))
			return true;
	return false;
}

bool model_set_override(struct sim_model *m, uint64_t slot, int stat, int64_t at)
{
	size_t lo = 0, hi = m->override_count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->overrides[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->override_count && m->overrides[lo].slot == slot) {
		m->overrides[lo].stat = stat;
		m->overrides[lo].at = at;
		return true;
	}
	if (m->override_count == m->override_cap) {
		size_t ncap = m->override_cap ? m->override_cap * 2 : 16;
		if (ncap > 1000000)
			return false;
		struct sim_override *grown = realloc(m->overrides, ncap * sizeof(*grown));
		if (!grown)
			return false;
		m->overrides = grown;
		m->override_cap = ncap;
	}
	memmove(&m->overrides[lo + 1], &m->overrides[lo],
		(m->override_count - lo) * sizeof(*m->overrides));
	m->overrides[lo] = (struct sim_override){.slot = slot, .stat = stat, .at = at};
	m->override_count++;
	return true;
}

void model_clear_overrides(struct sim_model *m)
{
	m->override_count = 0;
}
