#include "table.h"

#include <stdlib.h>
#include <string.h>

struct table {
	struct table_entry *entries; /* owned; count used, cap allocated */
	size_t count, cap;
	uint32_t *slots; /* owned: entry index + 1, 0 = empty; nslots a power of two */
	size_t nslots;
	uint32_t dirty_head, dirty_tail; /* FIFO of dirty entries: index + 1, 0 = none */
	size_t dirty;
	int64_t newest;
	uint16_t stamp; /* given to every put; a sweep takes a new one */
};

/* FNV-1a over "statId\0chgerId". */
static uint64_t hash_ids(const char *stat_id, size_t slen, const char *chger_id, size_t clen)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < slen; i++)
		h = (h ^ (unsigned char)stat_id[i]) * 0x100000001b3ULL;
	h = (h ^ 0xffu) * 0x100000001b3ULL;
	for (size_t i = 0; i < clen; i++)
		h = (h ^ (unsigned char)chger_id[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static bool same_ids(const struct table_entry *e, const char *stat_id, size_t slen,
		     const char *chger_id, size_t clen)
{
	return strncmp(e->stat_id, stat_id, slen) == 0 && e->stat_id[slen] == '\0' &&
	       strncmp(e->chger_id, chger_id, clen) == 0 && e->chger_id[clen] == '\0';
}

/* The slot holding the charger, or the empty slot where it would go. */
static size_t probe(const struct table *t, const char *stat_id, size_t slen, const char *chger_id,
		    size_t clen)
{
	size_t mask = t->nslots - 1;
	size_t i = (size_t)hash_ids(stat_id, slen, chger_id, clen) & mask;
	while (t->slots[i] &&
	       !same_ids(&t->entries[t->slots[i] - 1], stat_id, slen, chger_id, clen))
		i = (i + 1) & mask;
	return i;
}

static bool grow_slots(struct table *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 1024;
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return false;
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	for (size_t e = 0; e < t->count; e++) {
		const struct table_entry *en = &t->entries[e];
		size_t i = probe(t, en->stat_id, strlen(en->stat_id), en->chger_id,
				 strlen(en->chger_id));
		t->slots[i] = (uint32_t)(e + 1);
	}
	return true;
}

struct table *table_new(void)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t || !grow_slots(t)) {
		table_free(t);
		return NULL;
	}
	return t;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	free(t->entries);
	free(t->slots);
	free(t);
}

static void push_dirty(struct table *t, size_t index)
{
	struct table_entry *e = &t->entries[index];
	e->flags |= TABLE_DIRTY;
	e->next_dirty = 0;
	if (t->dirty_tail)
		t->entries[t->dirty_tail - 1].next_dirty = (uint32_t)(index + 1);
	else
		t->dirty_head = (uint32_t)(index + 1);
	t->dirty_tail = (uint32_t)(index + 1);
	t->dirty++;
}

/* Mark an entry changed: a change from a poll stays a change for the stream
 * even when a sweep touches the entry again before it is written. */
static void dirty(struct table *t, size_t index, bool seed)
{
	struct table_entry *e = &t->entries[index];
	if (e->flags & TABLE_DIRTY) {
		if (!seed)
			e->flags &= (uint8_t)~TABLE_SEED;
		return;
	}
	e->flags = (uint8_t)((e->flags & ~TABLE_SEED) | (seed ? TABLE_SEED : 0));
	push_dirty(t, index);
}

enum table_put table_put(struct table *t, const struct table_item *item)
{
	if (item->stat_id_len == 0 || item->stat_id_len > TABLE_STAT_ID_MAX ||
	    item->chger_id_len == 0 || item->chger_id_len > TABLE_CHGER_ID_MAX)
		return TABLE_BAD_ID;
	if (item->updated > t->newest)
		t->newest = item->updated;
	size_t slot =
		probe(t, item->stat_id, item->stat_id_len, item->chger_id, item->chger_id_len);
	uint8_t quick_bits =
		item->quick_known ? (uint8_t)(TABLE_QUICK_KNOWN | (item->quick ? TABLE_QUICK : 0))
				  : 0;
	if (t->slots[slot]) {
		size_t index = t->slots[slot] - 1;
		struct table_entry *e = &t->entries[index];
		bool changed = false;
		e->seen = t->stamp;
		if (e->flags & TABLE_GONE) {
			/* listed again after its removal: new to Redis */
			e->flags &= (uint8_t)~TABLE_GONE;
			e->updated = item->updated;
			e->stat = (uint8_t)item->stat;
			changed = true;
		}
		if (item->updated > e->updated) {
			e->updated = item->updated;
			e->stat = (uint8_t)item->stat;
			changed = true;
		}
		if (item->quick_known &&
		    (e->flags & (TABLE_QUICK_KNOWN | TABLE_QUICK)) != quick_bits) {
			e->flags = (uint8_t)((e->flags & ~(TABLE_QUICK_KNOWN | TABLE_QUICK)) |
					     quick_bits);
			changed = true;
		}
		if (!changed)
			return TABLE_KEPT;
		dirty(t, index, item->from_sweep);
		return TABLE_NEWER;
	}
	if (t->count >= UINT32_MAX - 1)
		return TABLE_NO_MEMORY;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		struct table_entry *grown = realloc(t->entries, cap * sizeof(*grown));
		if (!grown)
			return TABLE_NO_MEMORY;
		t->entries = grown;
		t->cap = cap;
	}
	/* keep the load under 1/2: probes stay short at 500k chargers */
	if ((t->count + 1) * 2 > t->nslots) {
		if (!grow_slots(t))
			return TABLE_NO_MEMORY;
		slot = probe(t, item->stat_id, item->stat_id_len, item->chger_id,
			     item->chger_id_len);
	}
	size_t index = t->count++;
	struct table_entry *e = &t->entries[index];
	memset(e, 0, sizeof(*e));
	memcpy(e->stat_id, item->stat_id, item->stat_id_len);
	memcpy(e->chger_id, item->chger_id, item->chger_id_len);
	e->updated = item->updated;
	e->stat = (uint8_t)item->stat;
	e->flags = quick_bits;
	e->seen = t->stamp;
	t->slots[slot] = (uint32_t)(index + 1);
	dirty(t, index, item->from_sweep);
	return TABLE_NEWER;
}

const struct table_entry *table_find(const struct table *t, const char *stat_id,
				     const char *chger_id)
{
	size_t slen = strlen(stat_id), clen = strlen(chger_id);
	if (slen > TABLE_STAT_ID_MAX || clen > TABLE_CHGER_ID_MAX)
		return NULL;
	size_t slot = probe(t, stat_id, slen, chger_id, clen);
	return t->slots[slot] ? &t->entries[t->slots[slot] - 1] : NULL;
}

uint16_t table_new_stamp(struct table *t)
{
	return ++t->stamp;
}

void table_forget(struct table *t, const char *stat_id, const char *chger_id)
{
	size_t slen = strlen(stat_id), clen = strlen(chger_id);
	if (slen > TABLE_STAT_ID_MAX || clen > TABLE_CHGER_ID_MAX)
		return;
	size_t slot = probe(t, stat_id, slen, chger_id, clen);
	if (t->slots[slot])
		t->entries[t->slots[slot] - 1].flags |= TABLE_GONE;
}

long table_take_dirty(struct table *t)
{
	if (!t->dirty_head)
		return -1;
	size_t index = t->dirty_head - 1;
	struct table_entry *e = &t->entries[index];
	t->dirty_head = e->next_dirty;
	if (!t->dirty_head)
		t->dirty_tail = 0;
	e->next_dirty = 0;
	e->flags &= (uint8_t)~TABLE_DIRTY;
	t->dirty--;
	return (long)index;
}

void table_requeue(struct table *t, long index)
{
	if (index < 0 || (size_t)index >= t->count || (t->entries[index].flags & TABLE_DIRTY))
		return;
	push_dirty(t, (size_t)index);
}

void table_mark_all_dirty(struct table *t)
{
	for (size_t i = 0; i < t->count; i++)
		if (!(t->entries[i].flags & (TABLE_DIRTY | TABLE_GONE))) {
			t->entries[i].flags |= TABLE_SEED;
			push_dirty(t, i);
		}
}

const struct table_entry *table_at(const struct table *t, long index)
{
	return index >= 0 && (size_t)index < t->count ? &t->entries[index] : NULL;
}

size_t table_count(const struct table *t)
{
	return t->count;
}

size_t table_dirty_count(const struct table *t)
{
	return t->dirty;
}

int64_t table_newest(const struct table *t)
{
	return t->newest;
}
