/* search: substring search over a fixed list of documents (one per
 * station: name, address and operator names), Korean included.
 * Owns the normalization (ASCII letters lowercased; Hangul has no case),
 * a two-character gram index (every query of two or more characters
 * narrows to the documents holding all of its grams, then a substring
 * check confirms; the same idea as the PostgreSQL index in 0001_init.sql),
 * and the ranking: a match in the first field (the name) before one in the
 * second (the address), before the rest (operators), then document order.
 * A one-character query scans every document.
 *
 * Documents are borrowed (the snapshot owns the text), separated into
 * fields by SEARCH_FIELD_SEP, and must already be normalized
 * (search_normalize). The index is immutable once built: any number of
 * threads may query it. */
#ifndef APID_SEARCH_H
#define APID_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"

#define SEARCH_FIELD_SEP '\x1f'

struct search_index;

/* Append text normalized for search to out (ASCII lowercased, control
 * characters dropped, so no query can span two fields). */
void search_normalize(struct buf *out, const char *text, size_t len);

/* Build over docs[0..ndocs). NULL when memory runs out. */
struct search_index *search_build(const char *const *docs, uint32_t ndocs) MUSTCHECK;
void search_free(struct search_index *idx);
/* Bytes the index holds (for the model's size metrics). */
size_t search_memory(const struct search_index *idx);

/* Matches of `query` (any text: normalized here), sorted best first: each
 * key is (rank << 32 | document), rank 0 for a match in the first field, 1
 * in the second, 2 in a later one. *keys is malloc'd (free it; NULL when
 * nothing matched). False when memory runs out. */
bool search_query(const struct search_index *idx, const char *const *docs, const char *query,
		  uint64_t **keys, size_t *count) MUSTCHECK;

#endif
