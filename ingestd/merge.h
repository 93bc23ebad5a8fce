/* merge: one run's staging into the live tables, in one transaction.
 *
 * Owns the load's SQL after the COPY: de-duplication, the set-based merge
 * into station and charger, the deletion rule, the rejects, the run row's
 * final counts and the NOTIFY, all committed together or not at all (a
 * crash or a failed statement leaves station and charger exactly as they
 * were).
 *
 * De-duplication (paging drift can show a charger twice in one pass): per
 * (statId, chgerId) the item with the newest statUpdDt wins (one without a
 * statUpdDt loses to one with), ties go to the later page, then the later
 * position in it. A station's fields come from its winning charger with the
 * smallest chgerId.
 *
 * Merge: new keys are inserted; existing rows are rewritten only when their
 * content digest differs (or they were marked deleted and are back), so an
 * unchanged load rewrites nothing. Absent rows are marked deleted_at only
 * when the caller says every page was fetched, no charger was listed twice
 * (paging drift: another may have been missed) and the distinct chargers
 * loaded are at least min_ratio x the live chargers before the run;
 * otherwise nothing is deleted and the run is 'partial'. */
#ifndef INGESTD_MERGE_H
#define INGESTD_MERGE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "base.h"
#include "pgx.h"

struct merge_input {
	long long run_id;
	const int *attempts;  /* the accepted fetch attempts: their rows count */
	size_t nattempts;
	bool has_discarded_rows; /* some attempt was not accepted: its rows go first */
	long long rejects;    /* reject rows of accepted attempts (0: skip that scan) */
	long long valid;      /* valid rows of accepted attempts (duplicates included) */
	bool is_complete;     /* every page was fetched and accepted */
	double min_ratio;     /* INGESTD_DELETE_MIN_RATIO */
	const char *channel;  /* NOTIFY channel, "" for none */
	bool dry_run;         /* roll back instead of committing */
	/* counts for the run row, known before the merge */
	long pages;
	long long records, bytes, repaired;
	const char *partial_reason; /* why the pass is incomplete, or NULL */
};

struct merge_result {
	long long distinct_chargers; /* after de-duplication */
	long long live_before;       /* live chargers before the run */
	long long inserted, updated, unchanged, deleted; /* chargers */
	long long stations_inserted, stations_updated, stations_deleted;
	long long rejected;
	bool deletes_applied;
	bool is_partial;
	char partial_reason[256]; /* why nothing was deleted */
};

/* De-duplicate, merge, record rejects and the run row (status 'ok' or
 * 'partial'), NOTIFY, commit. False with err on a database failure (rolled
 * back: nothing changed). */
bool merge_run(PGconn *conn, const struct merge_input *in, struct merge_result *out,
	       struct pgx_err *err) MUSTCHECK;

#endif
