/* faults: the fault-injection switchboard. Owns each mode's trigger (off, a
 * rate drawn from a seeded PRNG, the next N requests, or one pageNo), the
 * modes' parameters, the malformed-record settings, and the decision per
 * request. Changed at run time through /__admin/faults (server.c) or at
 * start-up with --faults. Semantics in docs/simulator.md ("Faults"). */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include "render.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evkeyvalq;
struct sbuf;

/* Request-level modes, in evaluation (and PRNG draw) order. */
enum fault_mode {
	FAULT_LATENCY,
	FAULT_HTTP5XX,
	FAULT_RESET,
	FAULT_TRUNCATE,
	FAULT_XML_ERROR,
	FAULT_DRIFT,
	FAULT_TOTAL_MISMATCH,
	FAULT_XML_SHAPES,
	FAULT_EMPTY_BODY,
	FAULT_SERVICE_ERROR,
	FAULT_COUNT
};
extern const char *const fault_names[FAULT_COUNT];

enum trigger_kind { TRIG_OFF, TRIG_RATE, TRIG_NEXT, TRIG_PAGE };

struct fault_trigger {
	enum trigger_kind kind;
	double rate; /* TRIG_RATE: 0 < rate <= 1 */
	long count;  /* TRIG_NEXT: requests left */
	long page;   /* TRIG_PAGE: pageNo */
};

enum fault_scope { SCOPE_ALL, SCOPE_INFO, SCOPE_STATUS };

struct faults {
	struct fault_trigger trigger[FAULT_COUNT];
	long latency_ms;
	int http_code; /* 0: each firing picks 500/502/503/504 */
	int xml_error_code;
	long drift_rows; /* shift size; sign chosen per firing */
	long total_delta;
	double truncate_at; /* fraction of the body kept */
	double reset_at;    /* fraction of the body sent before the reset */
	int service_error_code;
	bool service_error_json;
	double malformed_rate;	  /* fraction of records (not requests) */
	uint32_t malformed_kinds; /* bit per enum defect */
	enum fault_scope scope;
	uint64_t seed;
	uint64_t rng; /* splitmix64 state */
};

void faults_init(struct faults *f, uint64_t seed);
/* Applies admin parameters (all or nothing). */
bool faults_apply(struct faults *f, const struct evkeyvalq *params, char *err,
		  size_t errlen) MUSTCHECK;
/* Same, from a query string ("http5xx=0.1&latency=next:2"). */
bool faults_apply_query(struct faults *f, const char *query, char *err, size_t errlen) MUSTCHECK;

/* Which modes fire for one data request (bit per enum fault_mode). */
uint32_t faults_decide(struct faults *f, bool is_status, long page_no);
/* A PRNG draw, uniform in [0, 1). */
double faults_draw(struct faults *f);

/* The record-level malformed selection: DEFECT_NONE or the defect. */
int faults_defect(const struct faults *f, const struct sim_keys *keys, uint64_t slot);

bool faults_json(const struct faults *f, struct sbuf *out) MUSTCHECK;

#endif
