/* sim_reference.h: the simulator's status model (docs/simulator.md),
 * written again from the document, apart from tests/upstream-sim/: the tests
 * that check the simulator (test_sim_model) and those that check what
 * realtimed counted from it (test_realtimed*) compare against this one copy.
 * Header-only: each test binary that includes it gets its own. */
#ifndef TESTS_SIM_REFERENCE_H
#define TESTS_SIM_REFERENCE_H

#include <stdint.h>

static inline uint64_t sim_ref_mix(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline uint64_t sim_ref_hash(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
	return sim_ref_mix(sim_ref_mix(sim_ref_mix(seed ^ tag) ^ a) ^ b);
}

static inline int64_t sim_ref_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Per-mille of chargers in use at Unix second t: by Korea-time hour and day
 * class (weekday, Saturday, Sunday). */
static inline int sim_ref_usage_pm(int64_t t)
{
	static const int usage[3][24] = {
		{120, 100, 85,	75,  70,  75,  95,  130, 170, 200, 210, 220,
		 230, 235, 240, 245, 255, 290, 340, 380, 400, 360, 280, 180},
		{150, 120, 100, 85,  75,  75,  85,  110, 150, 210, 270, 310,
		 330, 340, 345, 340, 330, 320, 310, 300, 290, 260, 220, 180},
		{150, 125, 105, 90,  80,  75,  80,  100, 140, 190, 250, 290,
		 310, 320, 320, 315, 310, 320, 330, 330, 310, 270, 210, 160},
	};
	int64_t local = t + 32400, day = sim_ref_floor_div(local, 86400);
	int wd = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
	int hour = (int)((local - day * 86400) / 3600);
	return usage[wd == 6 ? 1 : wd == 0 ? 2 : 0][hour];
}

/* A charger's timeline is cut in 30-minute slots shifted by its phase. */
static inline int64_t sim_ref_phase(uint64_t seed, uint64_t slot)
{
	return (int64_t)(sim_ref_hash(seed, 16, slot, 0) % 1800);
}

/* The status code of charger `slot` in its half-hour slot j: charging (3)
 * when its draw falls under the usage curve, else mostly standing by (2),
 * rarely in error (1), suspended (4), inspection (5) or unknown (9). */
static inline int sim_ref_state(uint64_t seed, uint64_t slot, int64_t j)
{
	uint64_t x = sim_ref_hash(seed, 17, slot, (uint64_t)j) % 1000000;
	uint64_t p = (uint64_t)sim_ref_usage_pm(j * 1800 + sim_ref_phase(seed, slot)) * 1000;
	return x < p ? 3 : x < 990000 ? 2 : x < 994000 ? 1 : x < 996000 ? 4 : x < 998000 ? 5 : 9;
}

/* The status code of charger `slot` at Unix second t: its half-hour slot's
 * state (the slots start at the charger's phase). */
static inline int sim_ref_state_at(uint64_t seed, uint64_t slot, int64_t t)
{
	return sim_ref_state(seed, slot, sim_ref_floor_div(t - sim_ref_phase(seed, slot), 1800));
}

#endif
