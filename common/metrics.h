/* metrics: a registry of counters, gauges and histograms and their
 * Prometheus text exposition (format 0.0.4, what GET /metrics serves).
 *
 * Owns every family registered in it (name, help, label names, bucket
 * bounds) and every series (one combination of label values). A series
 * pointer stays valid until metrics_free, so callers look a series up once
 * and keep it. Updates are lock-free atomics, safe from any thread;
 * metric_get and metrics_write take no lock either (series lists are
 * append-only and published with release stores); only creating a family or
 * a series takes the registry's mutex.
 *
 * Update functions accept NULL and do nothing, so a failed lookup costs a
 * count, never a crash. Registration validates names (Prometheus rules),
 * labels and buckets and refuses duplicates: callers check its result at
 * start-up. */
#ifndef EV_METRICS_H
#define EV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"

#define METRIC_MAX_LABELS 4
#define METRIC_MAX_BUCKETS 32
/* Label sets per family: a bound, so a label fed from request data (a raw
 * path) cannot grow memory without limit. metric_get fails beyond it. */
#define METRIC_MAX_SERIES 1024

struct metrics;        /* the registry */
struct metric_family;  /* one metric name */
struct metric;         /* one series of a family */

struct metrics *metrics_new(void) MUSTCHECK;
void metrics_free(struct metrics *m);

/* Families. `labels` names the label set, comma-separated ("route,status"),
 * at most METRIC_MAX_LABELS; NULL or "" for none. Histogram bounds are the
 * upper bounds of the buckets, finite and strictly increasing, at most
 * METRIC_MAX_BUCKETS; +Inf is implicit. NULL on an invalid or duplicate
 * name, bad labels or bounds, or no memory. */
struct metric_family *metrics_counter_family(struct metrics *m, const char *name,
					     const char *help, const char *labels) MUSTCHECK;
struct metric_family *metrics_gauge_family(struct metrics *m, const char *name, const char *help,
					   const char *labels) MUSTCHECK;
struct metric_family *metrics_histogram_family(struct metrics *m, const char *name,
					       const char *help, const char *labels,
					       const double *bounds, size_t nbounds) MUSTCHECK;

/* Unlabelled families: register and return their only series. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help) MUSTCHECK;
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help) MUSTCHECK;
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
				 const double *bounds, size_t nbounds) MUSTCHECK;

/* The series for these label values (in the family's label order), created
 * on first use. NULL when nvalues differs from the family's label count, a
 * value is NULL, the family is full (METRIC_MAX_SERIES) or memory runs out. */
struct metric *metric_get(struct metric_family *f, const char *const *values, size_t nvalues);
#define METRIC_GET(f, ...)                                                                  \
	metric_get((f), (const char *const[]){__VA_ARGS__},                                  \
		   sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Counters: inc and add (negative or NaN amounts are ignored: counters only
 * go up). Gauges: inc, add (any sign), set. Histograms: observe (NaN
 * ignored). A call that does not fit the series' type does nothing. */
void metric_inc(struct metric *s);
void metric_add(struct metric *s, double amount);
void metric_set(struct metric *s, double value);
void metric_observe(struct metric *s, double value);

/* Reading back (tests, self-checks). value: a counter's or gauge's value, a
 * histogram's sum. count: a histogram's observations. bucket: observations
 * <= bounds[i], cumulative as exposed; i == nbounds is +Inf. */
double metric_value(const struct metric *s);
uint64_t metric_count(const struct metric *s);
uint64_t metric_bucket(const struct metric *s, size_t i);

/* Append the exposition of every family, in registration order, series in
 * creation order: "# HELP", "# TYPE", one sample per line; histograms as
 * cumulative _bucket{le="..."} lines ending in le="+Inf", then _sum and
 * _count. Label values are escaped (\\, \", \n) and forced to valid UTF-8;
 * HELP text escapes \\ and \n. False when the buffer failed. */
bool metrics_write(const struct metrics *m, struct buf *out) MUSTCHECK;

#endif
