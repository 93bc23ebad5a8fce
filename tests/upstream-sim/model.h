/* model: what changes over time. Owns the simulated clock, the epoch state
 * (which slots exist, which were removed, the per-epoch change versions),
 * the charger status model and the admin status overrides. Rules in
 * docs/simulator.md ("Clock", "Status model", "Epochs"). */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include "gen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum clock_mode { CLOCK_REAL, CLOCK_FAST, CLOCK_FIXED };

struct sim_clock {
	enum clock_mode mode;
	double speed;	  /* fast: simulated seconds per real second */
	int64_t base_sim; /* fast, fixed: simulated time at base_real */
	double base_real; /* fast: CLOCK_MONOTONIC seconds */
	int64_t offset;	  /* real: simulated = wall + offset */
};

/* "real", "fast:X" (0 < X <= 1e6) or "fixed:YYYYMMDDHHMMSS" (KST). */
bool clock_parse(struct sim_clock *clock, const char *spec, char *err, size_t errlen);
int64_t clock_now(const struct sim_clock *clock);
/* Jump to t, keeping the mode (fast keeps running from t). */
void clock_set(struct sim_clock *clock, int64_t t);
/* "real", "fast:X", "fixed" into out. */
void clock_describe(const struct sim_clock *clock, char *out, size_t outlen);

#define STATUS_NONE INT64_MIN

struct sim_status {
	int stat;	    /* 1 2 3 4 5 9 */
	int64_t updated;    /* statUpdDt */
	int64_t last_start; /* lastTsdt or STATUS_NONE */
	int64_t last_end;   /* lastTedt or STATUS_NONE */
	int64_t now_start;  /* nowTsdt or STATUS_NONE */
};

struct sim_override {
	uint64_t slot;
	int stat;
	int64_t at;
};

struct sim_model {
	const struct sim_gen *gen; /* borrowed */
	uint64_t chargers;	   /* N: slots at epoch 0 */
	uint64_t adds;		   /* slots appended per epoch: ceil(N / 200) */
	int epoch;
	uint64_t total;	   /* slots in use: N + epoch * adds */
	uint32_t *removed; /* sorted, unique; owned */
	size_t removed_count;
	struct sim_override *overrides; /* sorted by slot; owned */
	size_t override_count, override_cap;
};

/* Slots at epoch e: N + e * adds. */
uint64_t model_epoch_total(const struct sim_model *m, int epoch);
/* false (with err) when the epoch's statIds would exceed the capacity. */
bool model_init(struct sim_model *m, const struct sim_gen *gen, uint64_t chargers, int epoch,
		char *err, size_t errlen) MUSTCHECK;
bool model_set_epoch(struct sim_model *m, int epoch, char *err, size_t errlen) MUSTCHECK;
void model_free(struct sim_model *m);

uint64_t model_alive_count(const struct sim_model *m);
bool model_is_removed(const struct sim_model *m, uint64_t slot);
/* A walk over live slots in index order. */
struct model_cursor {
	uint64_t slot;
	size_t next_removed; /* first removed entry >= slot */
};
/* Position pos (0-based among live slots); false when pos is past the end. */
bool model_cursor_at(const struct sim_model *m, uint64_t pos, struct model_cursor *c);
/* Advance to the next live slot; false at the end. */
bool model_cursor_next(const struct sim_model *m, struct model_cursor *c);

int model_station_version(const struct sim_model *m, uint64_t u, uint64_t first_slot);
int model_charger_version(const struct sim_model *m, uint64_t slot);

/* Status of a slot at simulated time t (override applied). */
void model_status(const struct sim_model *m, uint64_t slot, int64_t t, struct sim_status *out);
/* Whether statUpdDt lies in (t - window_seconds, t]; window <= 24 h. */
bool model_changed(const struct sim_model *m, uint64_t slot, int64_t t, int64_t window_seconds);
/* P(charging) in per mille for the slot starting at t. */
int model_usage_pm(int64_t slot_start);

bool model_set_override(struct sim_model *m, uint64_t slot, int stat, int64_t at) MUSTCHECK;
void model_clear_overrides(struct sim_model *m);

#endif
