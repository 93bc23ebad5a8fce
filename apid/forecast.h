/* forecast: GET /stations/{id}/forecast?arriveAt=, the chance that a
 * charger of each class (quick, standard) is free when a driver arrives.
 * Owns the arriveAt text (ISO 8601 with an offset), the window it must
 * fall in, and the method (docs/api.md "Arrival forecast"):
 *
 *   slot   the Korea-time weekday and hour of arriveAt;
 *   p_i    charger i's busy share in that slot: uses / samples of its
 *          counters (at most 1); a charger without a sample in the slot
 *          takes its class's pooled share (sum of uses / sum of samples);
 *   live   for an arrival less than FORECAST_LIVE_HORIZON_S ahead, a
 *          charger whose status is fresh (snap_live_fresh) blends in what
 *          it is doing now, l_i = 0 when STANDBY, 1 otherwise, with weight
 *          w = exp(-t / FORECAST_LIVE_TAU_S), t the seconds until arrival:
 *          q_i = w * l_i + (1 - w) * p_i (else q_i = p_i);
 *   answer P(at least one free) = 1 - prod q_i over the class's chargers,
 *          null when the class has no charger or no sample in the slot.
 *
 * Chargers are taken as independent. Pure: the counters come from stats.c
 * (Redis) or pgstats.c (the PostgreSQL snapshot), the live words from the
 * snapshot. */
#ifndef APID_FORECAST_H
#define APID_FORECAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "buf.h"
#include "stats.h"

/* arriveAt may be at most this far ahead: the counters describe a typical
 * week, and a week ahead is already as good a guess as they give. */
#define FORECAST_HORIZON_S (7 * 86400)
/* ... and this far behind now (clock skew between client and server);
 * earlier is refused as the past. */
#define FORECAST_PAST_SLACK_S 60
/* Arrivals closer than this blend in the live state. */
#define FORECAST_LIVE_HORIZON_S 3600
/* The live state's weight halves about every 10 minutes (tau ln 2). */
#define FORECAST_LIVE_TAU_S 900.0

/* ISO 8601 date and time with an offset: YYYY-MM-DDTHH:MM[:SS[.fraction]]
 * then Z, +HH:MM, -HH:MM, +HHMM or +HH (lower-case t and z, and a space
 * for T, accepted). The fraction is dropped. False with the reason in why
 * (no offset, a date that does not exist, trailing text, ...). */
bool forecast_parse_time(const char *text, time_t *out, char *why, size_t whylen) MUSTCHECK;

/* Is arrive_at within [now - FORECAST_PAST_SLACK_S, now + FORECAST_HORIZON_S]?
 * False with the reason in why. */
bool forecast_check_window(time_t arrive_at, time_t now, char *why, size_t whylen) MUSTCHECK;

/* The live state's weight for an arrival lead_s seconds ahead (<= 0: now). */
double forecast_live_weight(int64_t lead_s);

/* The probability for one class: chargers are the station's, in order;
 * only those with is_quick[i] == quick count. *chargers and *samples get
 * the class's charger count and the slot's samples. Negative: null. */
double forecast_class(size_t n, const bool *is_quick, bool quick, const char *const *blobs,
		      const size_t *lens, const uint64_t *live, int slot, double weight,
		      int64_t now, int64_t max_age_s, unsigned *chargers, uint64_t *samples);

/* The answer's JSON. live[i]: charger i's live word (snap.h). */
void forecast_render(struct buf *out, const char *station_id, size_t n, const bool *is_quick,
		     const char *const *blobs, const size_t *lens, const uint64_t *live,
		     const struct stats_ask *ask, const struct stats_source *src);

#endif
