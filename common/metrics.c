#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* One series. Values are atomics; doubles are stored as their bit pattern
 * and updated with compare-and-swap. */
struct metric {
	struct metric_family *family;  /* borrowed: the owning family */
	struct metric *_Atomic next;   /* family's list; published with release */
	char *values[METRIC_MAX_LABELS]; /* owned label values */
	_Atomic uint64_t whole;        /* counter: integer increments */
	_Atomic uint64_t bits;         /* counter: fractional adds; gauge: value; histogram: sum */
	size_t nbuckets;               /* histogram: nbounds + 1 (+Inf) */
	_Atomic uint64_t buckets[];    /* histogram: non-cumulative counts */
};

struct metric_family {
	struct metrics *registry;            /* borrowed */
	struct metric_family *_Atomic next;  /* registry's list */
	enum metric_type type;
	char *name; /* owned */
	char *help; /* owned */
	size_t nlabels;
	char *label_names[METRIC_MAX_LABELS]; /* owned */
	size_t nbounds;
	double bounds[METRIC_MAX_BUCKETS];
	struct metric *_Atomic first;
	struct metric *last; /* guarded by registry->lock */
	size_t nseries;      /* guarded by registry->lock */
};

struct metrics {
	pthread_mutex_t lock; /* guards creation: list tails and nseries */
	struct metric_family *_Atomic first;
	struct metric_family *last; /* guarded by lock */
};

static double bits_to_double(uint64_t bits)
{
	double d;
	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

static void atomic_add_double(_Atomic uint64_t *p, double amount)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	uint64_t next;
	do {
		next = double_to_bits(bits_to_double(old) + amount);
	} while (!atomic_compare_exchange_weak_explicit(p, &old, next, memory_order_relaxed,
							 memory_order_relaxed));
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void series_free(struct metric *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < METRIC_MAX_LABELS; i++)
		free(s->values[i]);
	free(s);
}

static void family_free(struct metric_family *f)
{
	if (!f)
		return;
	struct metric *s = atomic_load_explicit(&f->first, memory_order_relaxed);
	while (s) {
		struct metric *next = atomic_load_explicit(&s->next, memory_order_relaxed);
		series_free(s);
		s = next;
	}
	for (size_t i = 0; i < METRIC_MAX_LABELS; i++)
		free(f->label_names[i]);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	struct metric_family *f = atomic_load_explicit(&m->first, memory_order_relaxed);
	while (f) {
		struct metric_family *next = atomic_load_explicit(&f->next, memory_order_relaxed);
		family_free(f);
		f = next;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Prometheus data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names [a-zA-Z_][a-zA-Z0-9_]* without the reserved "__" prefix. */
static bool valid_name(const char *s, size_t len, bool colon_ok)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool parse_labels(struct metric_family *f, const char *labels)
{
	if (!labels || !*labels)
		return true;
	const char *p = labels;
	for (;;) {
		size_t len = strcspn(p, ",");
		if (f->nlabels >= METRIC_MAX_LABELS || !valid_name(p, len, false) ||
		    (len >= 2 && p[0] == '_' && p[1] == '_'))
			return false;
		if (f->type == METRIC_HISTOGRAM && len == 2 && memcmp(p, "le", 2) == 0)
			return false;
		for (size_t i = 0; i < f->nlabels; i++)
			if (strlen(f->label_names[i]) == len && memcmp(f->label_names[i], p, len) == 0)
				return false;
		if (!(f->label_names[f->nlabels] = strndup(p, len)))
			return false;
		f->nlabels++;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

static struct metric *series_new(struct metric_family *f, const char *const *values)
{
	size_t nbuckets = f->type == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
	struct metric *s = calloc(1, sizeof(*s) + nbuckets * sizeof(s->buckets[0]));
	if (!s)
		return NULL;
	s->family = f;
	s->nbuckets = nbuckets;
	for (size_t i = 0; i < f->nlabels; i++) {
		if (!(s->values[i] = strdup(values[i]))) {
			series_free(s);
			return NULL;
		}
	}
	return s;
}

/* Append under the registry lock; the release store publishes a fully
 * built series to lock-free readers. */
static void series_publish(struct metric_family *f, struct metric *s)
{
	if (f->last)
		atomic_store_explicit(&f->last->next, s, memory_order_release);
	else
		atomic_store_explicit(&f->first, s, memory_order_release);
	f->last = s;
	f->nseries++;
}

static struct metric_family *family_new(struct metrics *m, enum metric_type type,
					const char *name, const char *help, const char *labels,
					const double *bounds, size_t nbounds)
{
	if (!m || !name || !valid_name(name, strlen(name), true))
		return NULL;
	if (type == METRIC_HISTOGRAM) {
		if (!bounds || nbounds < 1 || nbounds > METRIC_MAX_BUCKETS)
			return NULL;
		for (size_t i = 0; i < nbounds; i++)
			if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
				return NULL;
	}
	struct metric_family *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->registry = m;
	f->type = type;
	if (type == METRIC_HISTOGRAM) {
		f->nbounds = nbounds;
		memcpy(f->bounds, bounds, nbounds * sizeof(bounds[0]));
	}
	if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")) ||
	    !parse_labels(f, labels)) {
		family_free(f);
		return NULL;
	}
	/* an unlabelled family has exactly one series, made now */
	struct metric *only = NULL;
	if (f->nlabels == 0 && !(only = series_new(f, NULL))) {
		family_free(f);
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	for (struct metric_family *g = atomic_load_explicit(&m->first, memory_order_relaxed); g;
	     g = atomic_load_explicit(&g->next, memory_order_relaxed)) {
		if (strcmp(g->name, name) == 0) {
			pthread_mutex_unlock(&m->lock);
			series_free(only);
			family_free(f);
			return NULL;
		}
	}
	if (only)
		series_publish(f, only);
	if (m->last)
		atomic_store_explicit(&m->last->next, f, memory_order_release);
	else
		atomic_store_explicit(&m->first, f, memory_order_release);
	m->last = f;
	pthread_mutex_unlock(&m->lock);
	return f;
}

struct metric_family *metrics_counter_family(struct metrics *m, const char *name,
					     const char *help, const char *labels)
{
	return family_new(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct metric_family *metrics_gauge_family(struct metrics *m, const char *name, const char *help,
					   const char *labels)
{
	return family_new(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct metric_family *metrics_histogram_family(struct metrics *m, const char *name,
					       const char *help, const char *labels,
					       const double *bounds, size_t nbounds)
{
	return family_new(m, METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

static struct metric *only_series(struct metric_family *f)
{
	return f ? atomic_load_explicit(&f->first, memory_order_acquire) : NULL;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help)
{
	return only_series(family_new(m, METRIC_COUNTER, name, help, NULL, NULL, 0));
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help)
{
	return only_series(family_new(m, METRIC_GAUGE, name, help, NULL, NULL, 0));
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
				 const double *bounds, size_t nbounds)
{
	return only_series(family_new(m, METRIC_HISTOGRAM, name, help, NULL, bounds, nbounds));
}

static struct metric *find_series(struct metric_family *f, const char *const *values)
{
	for (struct metric *s = atomic_load_explicit(&f->first, memory_order_acquire); s;
	     s = atomic_load_explicit(&s->next, memory_order_acquire)) {
		size_t i = 0;
		while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0)
			i++;
		if (i == f->nlabels)
			return s;
	}
	return NULL;
}

struct metric *metric_get(struct metric_family *f, const char *const *values, size_t nvalues)
{
	if (!f || nvalues != f->nlabels || (nvalues && !values))
		return NULL;
	for (size_t i = 0; i < nvalues; i++)
		if (!values[i])
			return NULL;
	struct metric *s = find_series(f, values);
	if (s)
		return s;
	pthread_mutex_lock(&f->registry->lock);
	s = find_series(f, values); /* another thread may have made it meanwhile */
	if (!s && f->nseries < METRIC_MAX_SERIES && (s = series_new(f, values)))
		series_publish(f, s);
	pthread_mutex_unlock(&f->registry->lock);
	return s;
}

void metric_inc(struct metric *s)
{
	if (!s)
		return;
	if (s->family->type == METRIC_COUNTER)
		atomic_fetch_add_explicit(&s->whole, 1, memory_order_relaxed);
	else if (s->family->type == METRIC_GAUGE)
		atomic_add_double(&s->bits, 1.0);
}

void metric_add(struct metric *s, double amount)
{
	if (!s || isnan(amount))
		return;
	if (s->family->type == METRIC_COUNTER) {
		if (amount < 0)
			return;
		/* whole amounts stay exact integers; only fractions use the CAS path */
		if (amount == floor(amount) && amount < 9007199254740992.0)
			atomic_fetch_add_explicit(&s->whole, (uint64_t)amount, memory_order_relaxed);
		else
			atomic_add_double(&s->bits, amount);
	} else if (s->family->type == METRIC_GAUGE) {
		atomic_add_double(&s->bits, amount);
	}
}

void metric_set(struct metric *s, double value)
{
	if (s && s->family->type == METRIC_GAUGE)
		atomic_store_explicit(&s->bits, double_to_bits(value), memory_order_relaxed);
}

void metric_observe(struct metric *s, double value)
{
	if (!s || s->family->type != METRIC_HISTOGRAM || isnan(value))
		return;
	const struct metric_family *f = s->family;
	size_t i = 0;
	while (i < f->nbounds && value > f->bounds[i])
		i++;
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&s->bits, value);
}

double metric_value(const struct metric *s)
{
	if (!s)
		return 0;
	double v = bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
	if (s->family->type == METRIC_COUNTER)
		v += (double)atomic_load_explicit(&s->whole, memory_order_relaxed);
	return v;
}

uint64_t metric_bucket(const struct metric *s, size_t i)
{
	if (!s || s->family->type != METRIC_HISTOGRAM)
		return 0;
	if (i >= s->nbuckets)
		i = s->nbuckets - 1;
	uint64_t total = 0;
	for (size_t k = 0; k <= i; k++)
		total += atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
	return total;
}

uint64_t metric_count(const struct metric *s)
{
	if (!s || s->family->type != METRIC_HISTOGRAM)
		return 0;
	return metric_bucket(s, s->nbuckets - 1);
}

/* ---- exposition ---- */

static void put_help_text(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_append(out, "\\\\", 2);
		else if (*s == '\n')
			buf_append(out, "\\n", 2);
		else
			buf_putc(out, *s);
	}
}

static void put_label_value(struct buf *out, const char *s)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			buf_append(out, "\\\\", 2);
		} else if (c == '"') {
			buf_append(out, "\\\"", 2);
		} else if (c == '\n') {
			buf_append(out, "\\n", 2);
		} else if (c >= 0x80) {
			uint32_t cp;
			size_t n = utf8_decode(s + i, len - i, &cp);
			if (cp == UTF8_INVALID)
				buf_append(out, UTF8_REPLACEMENT_TEXT, 3);
			else
				buf_append(out, s + i, n);
			i += n;
			continue;
		} else {
			buf_putc(out, (char)c);
		}
		i++;
	}
}

/* {a="x",b="y"} plus le="..." for buckets; nothing when both are absent. */
static void put_labels(struct buf *out, const struct metric *s, const double *le)
{
	const struct metric_family *f = s->family;
	if (f->nlabels == 0 && !le)
		return;
	buf_putc(out, '{');
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			buf_putc(out, ',');
		buf_puts(out, f->label_names[i]);
		buf_append(out, "=\"", 2);
		put_label_value(out, s->values[i]);
		buf_putc(out, '"');
	}
	if (le) {
		if (f->nlabels)
			buf_putc(out, ',');
		buf_append(out, "le=\"", 4);
		buf_put_double(out, *le, BUF_SHORTEST);
		buf_putc(out, '"');
	}
	buf_putc(out, '}');
}

static void put_sample(struct buf *out, const struct metric *s, const char *suffix,
		       const double *le)
{
	buf_puts(out, s->family->name);
	buf_puts(out, suffix);
	put_labels(out, s, le);
	buf_putc(out, ' ');
}

static void write_series(struct buf *out, const struct metric *s)
{
	const struct metric_family *f = s->family;
	switch (f->type) {
	case METRIC_COUNTER: {
		uint64_t whole = atomic_load_explicit(&s->whole, memory_order_relaxed);
		double frac = bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
		put_sample(out, s, "", NULL);
		if (frac == 0)
			buf_put_uint(out, whole); /* exact even past 2^53 */
		else
			buf_put_double(out, (double)whole + frac, BUF_SHORTEST);
		buf_putc(out, '\n');
		break;
	}
	case METRIC_GAUGE:
		put_sample(out, s, "", NULL);
		buf_put_double(out, metric_value(s), BUF_SHORTEST);
		buf_putc(out, '\n');
		break;
	case METRIC_HISTOGRAM: {
		/* one pass over the buckets, so +Inf and _count agree even while
		 * other threads observe */
		uint64_t cumulative = 0;
		for (size_t i = 0; i < s->nbuckets; i++) {
			cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
			double le = i < f->nbounds ? f->bounds[i] : INFINITY;
			put_sample(out, s, "_bucket", &le);
			buf_put_uint(out, cumulative);
			buf_putc(out, '\n');
		}
		put_sample(out, s, "_sum", NULL);
		buf_put_double(out, metric_value(s), BUF_SHORTEST);
		buf_putc(out, '\n');
		put_sample(out, s, "_count", NULL);
		buf_put_uint(out, cumulative);
		buf_putc(out, '\n');
		break;
	}
	default:
		abort();
	}
}

bool metrics_write(const struct metrics *m, struct buf *out)
{
	static const char *const type_names[] = {
		[METRIC_COUNTER] = "counter",
		[METRIC_GAUGE] = "gauge",
		[METRIC_HISTOGRAM] = "histogram",
	};
	for (const struct metric_family *f = atomic_load_explicit(&m->first, memory_order_acquire);
	     f; f = atomic_load_explicit(&f->next, memory_order_acquire)) {
		buf_append(out, "# HELP ", 7);
		buf_puts(out, f->name);
		buf_putc(out, ' ');
		put_help_text(out, f->help);
		buf_append(out, "\n# TYPE ", 8);
		buf_puts(out, f->name);
		buf_putc(out, ' ');
		buf_puts(out, type_names[f->type]);
		buf_putc(out, '\n');
		for (const struct metric *s = atomic_load_explicit(&f->first, memory_order_acquire);
		     s; s = atomic_load_explicit(&s->next, memory_order_acquire))
			write_series(out, s);
	}
	return buf_ok(out);
}
