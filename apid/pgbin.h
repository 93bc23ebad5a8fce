/* pgbin: reads the rows of `COPY (query) TO STDOUT (FORMAT binary)` on a
 * blocking libpq connection, one callback per row.
 *
 * Why binary COPY for the read model: the server streams rows while the
 * client builds (a cursor's FETCH makes each side wait for the other), no
 * output function runs for numbers (doubles, integers and booleans go as
 * their bytes, not as text to be parsed again), and libpq builds no
 * PGresult per batch. Owns the framing (header, tuples, trailer; a tuple
 * may span CopyData messages) and the checks on it: a row with another
 * number of fields than asked for, a field running past its tuple or a
 * missing trailer is an error, never a short model.
 *
 * Each field handed to the callback is NUL-terminated (text fields read as
 * C strings) and valid only during the call. */
#ifndef APID_PGBIN_H
#define APID_PGBIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define PGBIN_MAX_FIELDS 32

struct pgbin_field {
	const char *data; /* NULL for SQL NULL; else NUL-terminated */
	int32_t len;	  /* -1 for SQL NULL */
};

typedef bool (*pgbin_row_fn)(void *arg, const struct pgbin_field *fields, char *err,
			     size_t errlen);

/* Run `copy_sql` (a COPY ... TO STDOUT (FORMAT binary) whose rows have
 * `nfields` columns) and call fn for every row; stops at the first false.
 * False with the reason in err (the connection is then idle again, or
 * broken: check PQstatus). `rows`, if not NULL, gets the rows read. */
bool pgbin_copy(PGconn *conn, const char *copy_sql, int nfields, pgbin_row_fn fn, void *arg,
		size_t *rows, char *err, size_t errlen) MUSTCHECK;

/* Parse a stream of binary COPY bytes (what the CopyData messages carry,
 * concatenated) as pgbin_copy does: exposed for the unit test. `chunks`
 * are fed one after another, split anywhere. */
bool pgbin_parse_chunks(const char *const *chunks, const size_t *lens, size_t nchunks,
			int nfields, pgbin_row_fn fn, void *arg, size_t *rows, char *err,
			size_t errlen) MUSTCHECK;

/* Field decoders: false when the field is NULL or not of that kind. */
bool pgbin_int(const struct pgbin_field *f, int64_t *out) MUSTCHECK; /* int2, int4 or int8 */
bool pgbin_float8(const struct pgbin_field *f, double *out) MUSTCHECK;
/* bool: -1 for NULL, 0, 1; -2 when the field is not a boolean */
int pgbin_bool(const struct pgbin_field *f);

#endif
