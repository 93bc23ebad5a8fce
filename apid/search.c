#include "search.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* One distinct gram: where its postings (document numbers, ascending) are. */
struct slot {
	uint32_t key; /* 0: empty */
	uint32_t start;
	uint32_t count;
	uint32_t fill; /* build only */
};

struct search_index {
	struct slot *slots;
	size_t mask; /* slots - 1 (a power of two) */
	size_t used;
	uint32_t *postings;
	size_t npostings;
	uint32_t ndocs;
};

void search_normalize(struct buf *out, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		buf_putc(out, (char)c);
	}
}

static uint32_t gram_key(uint32_t a, uint32_t b)
{
	uint32_t h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u) * 0x85EBCA77u;
	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 13;
	return h ? h : 1;
}

static size_t slot_of(uint32_t key, size_t mask)
{
	return (size_t)(key * 0x27D4EB2Fu) & mask;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The next gram of a normalized text from byte *i on (prev: the code
 * point before, 0 at the start or after a separator). False at the end. */
static bool next_gram(const char *text, size_t len, size_t *i, uint32_t *prev, uint32_t *key)
{
	while (*i < len) {
		uint32_t cp;
		*i += utf8_decode(text + *i, len - *i, &cp);
		if (cp == (uint32_t)SEARCH_FIELD_SEP || cp == UTF8_INVALID) {
			*prev = 0;
			continue;
		}
		uint32_t before = *prev;
		*prev = cp;
		if (before) {
			*key = gram_key(before, cp);
			return true;
		}
	}
	return false;
}

/* Append v to the array *a of *n items (capacity *cap, grown by doubling). */
static bool push_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v)
{
	if (*n == *cap) {
		size_t grown = *cap ? *cap * 2 : 64;
		uint32_t *more = realloc(*a, grown * sizeof(**a));
		if (!more)
			return false;
		*a = more;
		*cap = grown;
	}
	(*a)[(*n)++] = v;
	return true;
}

/* The distinct grams of a normalized text into *grams (grown as needed);
 * returns how many, or -1 when memory runs out. */
static long distinct_grams(const char *text, uint32_t **grams, size_t *cap)
{
	size_t n = 0, len = strlen(text), i = 0;
	uint32_t prev = 0, key;
	while (next_gram(text, len, &i, &prev, &key))
		if (!push_u32(grams, &n, cap, key))
			return -1;
	if (n > 1) {
		qsort(*grams, n, sizeof(**grams), cmp_u32);
		size_t w = 1;
		for (size_t r = 1; r < n; r++)
			if ((*grams)[r] != (*grams)[w - 1])
				(*grams)[w++] = (*grams)[r];
		n = w;
	}
	return (long)n;
}

static struct slot *find_slot(const struct search_index *idx, uint32_t key)
{
	for (size_t i = slot_of(key, idx->mask);; i = (i + 1) & idx->mask) {
		struct slot *s = &idx->slots[i];
		if (s->key == key)
			return s;
		if (s->key == 0)
			return NULL;
	}
}

static bool grow_table(struct search_index *idx)
{
	size_t old_size = idx->slots ? idx->mask + 1 : 0;
	size_t size = old_size ? old_size * 2 : 1u << 14;
	struct slot *slots = calloc(size, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < old_size; i++) {
		struct slot *s = &idx->slots[i];
		if (!s->key)
			continue;
		size_t j = slot_of(s->key, size - 1);
		while (slots[j].key)
			j = (j + 1) & (size - 1);
		slots[j] = *s;
	}
	free(idx->slots);
	idx->slots = slots;
	idx->mask = size - 1;
	return true;
}

static struct slot *add_slot(struct search_index *idx, uint32_t key)
{
	if ((idx->used + 1) * 4 > (idx->mask + 1) * 3 && !grow_table(idx))
		return NULL;
	size_t i = slot_of(key, idx->mask);
	while (idx->slots[i].key && idx->slots[i].key != key)
		i = (i + 1) & idx->mask;
	if (!idx->slots[i].key) {
		idx->slots[i].key = key;
		idx->used++;
	}
	return &idx->slots[i];
}

/* Append to *all the grams of document d not yet seen in it, counting
 * each in its slot: a slot's `fill` holds the last document that counted
 * it, plus one (so no per-document sort is needed to drop repeats; the
 * offsets pass resets it). Returns how many, or -1 when memory runs out. */
static long add_document(struct search_index *idx, const char *text, uint32_t d, uint32_t **all,
			 size_t *all_cap)
{
	size_t len = strlen(text), start = idx->npostings, i = 0;
	uint32_t prev = 0, key;
	while (next_gram(text, len, &i, &prev, &key)) {
		struct slot *s = add_slot(idx, key);
		if (!s)
			return -1;
		if (s->fill == d + 1)
			continue;
		s->fill = d + 1;
		s->count++;
		if (!push_u32(all, &idx->npostings, all_cap, key))
			return -1;
	}
	return (long)(idx->npostings - start);
}

struct search_index *search_build(const char *const *docs, uint32_t ndocs)
{
	struct search_index *idx = calloc(1, sizeof(*idx));
	uint32_t *all = NULL, *counts = NULL;
	size_t all_cap = 0;
	if (!idx || !grow_table(idx) || !(counts = malloc(((size_t)ndocs + 1) * sizeof(*counts))))
		goto fail;
	idx->ndocs = ndocs;
	/* pass 1: each document's distinct grams, kept in order, and how many
	 * documents hold each gram */
	for (uint32_t d = 0; d < ndocs; d++) {
		long n = add_document(idx, docs[d], d, &all, &all_cap);
		if (n < 0 || idx->npostings > UINT32_MAX)
			goto fail;
		counts[d] = (uint32_t)n;
	}
	uint32_t offset = 0;
	for (size_t i = 0; i <= idx->mask; i++) {
		idx->slots[i].start = offset;
		idx->slots[i].fill = 0;
		offset += idx->slots[i].count;
	}
	/* pass 2: the postings, in document order; the gram list becomes them */
	idx->postings = malloc((idx->npostings ? idx->npostings : 1) * sizeof(uint32_t));
	if (!idx->postings)
		goto fail;
	size_t k = 0;
	for (uint32_t d = 0; d < ndocs; d++) {
		for (uint32_t i = 0; i < counts[d]; i++, k++) {
			struct slot *s = find_slot(idx, all[k]);
			idx->postings[s->start + s->fill++] = d;
		}
	}
	free(all);
	free(counts);
	return idx;
fail:
	free(all);
	free(counts);
	search_free(idx);
	return NULL;
}

void search_free(struct search_index *idx)
{
	if (!idx)
		return;
	free(idx->slots);
	free(idx->postings);
	free(idx);
}

size_t search_memory(const struct search_index *idx)
{
	if (!idx)
		return 0;
	return (idx->mask + 1) * sizeof(struct slot) + idx->npostings * sizeof(uint32_t);
}

/* Rank of the first match of q in doc, or -1: which field it falls in. */
static int match_rank(const char *doc, const char *q, size_t qlen)
{
	const char *hit = memmem(doc, strlen(doc), q, qlen);
	if (!hit)
		return -1;
	int field = 0;
	for (const char *p = doc; p < hit; p++)
		field += *p == SEARCH_FIELD_SEP;
	return field < 2 ? field : 2;
}

static int cmp_slot_count(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	return x->count < y->count ? -1 : x->count > y->count;
}

/* Intersect two ascending lists into out; returns the count. */
static size_t intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out)
{
	size_t i = 0, j = 0, n = 0;
	while (i < na && j < nb) {
		if (a[i] < b[j])
			i++;
		else if (a[i] > b[j])
			j++;
		else {
			out[n++] = a[i];
			i++;
			j++;
		}
	}
	return n;
}

bool search_query(const struct search_index *idx, const char *const *docs, const char *query,
		  uint64_t **keys_out, size_t *count_out)
{
	*keys_out = NULL;
	*count_out = 0;
	struct buf q = BUF_INIT;
	search_normalize(&q, query, strlen(query));
	uint32_t *grams = NULL, *cand = NULL;
	const struct slot **lists = NULL;
	uint64_t *keys = NULL;
	size_t cap = 0, ncand = 0, nkeys = 0;
	bool ok = false;
	if (!buf_ok(&q))
		goto out;
	if (q.len == 0) {
		ok = true;
		goto out;
	}
	long ngrams = distinct_grams(buf_cstr(&q), &grams, &cap);
	if (ngrams < 0)
		goto out;
	if (ngrams == 0) {
		/* one character: every document is a candidate */
		cand = malloc((idx->ndocs ? idx->ndocs : 1) * sizeof(*cand));
		if (!cand)
			goto out;
		for (uint32_t d = 0; d < idx->ndocs; d++)
			cand[d] = d;
		ncand = idx->ndocs;
	} else {
		lists = malloc((size_t)ngrams * sizeof(*lists));
		if (!lists)
			goto out;
		for (long i = 0; i < ngrams; i++) {
			lists[i] = find_slot(idx, grams[i]);
			if (!lists[i]) {
				ok = true; /* a gram no document holds */
				goto out;
			}
		}
		qsort(lists, (size_t)ngrams, sizeof(*lists), cmp_slot_count);
		ncand = lists[0]->count;
		cand = malloc((ncand ? ncand : 1) * sizeof(*cand));
		if (!cand)
			goto out;
		memcpy(cand, idx->postings + lists[0]->start, ncand * sizeof(*cand));
		for (long i = 1; i < ngrams && ncand > 0; i++)
			ncand = intersect(cand, ncand, idx->postings + lists[i]->start,
					  lists[i]->count, cand);
	}
	keys = malloc((ncand ? ncand : 1) * sizeof(*keys));
	if (!keys)
		goto out;
	for (size_t i = 0; i < ncand; i++) {
		int rank = match_rank(docs[cand[i]], buf_cstr(&q), q.len);
		if (rank >= 0)
			keys[nkeys++] = (uint64_t)rank << 32 | cand[i];
	}
	qsort(keys, nkeys, sizeof(*keys), cmp_u64);
	ok = true;
out:
	if (ok && nkeys > 0) {
		*keys_out = keys;
		*count_out = nkeys;
	} else {
		free(keys);
	}
	free(grams);
	free(cand);
	free(lists);
	buf_free(&q);
	return ok;
}
