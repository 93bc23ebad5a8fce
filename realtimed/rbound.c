#include "rbound.h"

#include <stdio.h>

/* hiredis' own reply functions (a static table inside the library, reached
 * through a reader it creates). */
static redisReplyObjectFunctions *defaults;

static struct rbound *state_of(const redisReadTask *task)
{
	return task->privdata;
}

static void *bounded_string(const redisReadTask *task, char *str, size_t len)
{
	struct rbound *b = state_of(task);
	if (b && len > b->max_bulk) {
		snprintf(b->why, sizeof(b->why), "reply string of %zu bytes (limit %zu)", len,
			 b->max_bulk);
		return NULL;
	}
	return defaults->createString(task, str, len);
}

static void *bounded_array(const redisReadTask *task, int elements)
{
	struct rbound *b = state_of(task);
	if (b) {
		if (!task->parent)
			b->total_elements = 0; /* a new reply */
		size_t n = elements > 0 ? (size_t)elements : 0;
		if (n > b->max_elements) {
			snprintf(b->why, sizeof(b->why), "reply array of %zu elements (limit %zu)",
				 n, b->max_elements);
			return NULL;
		}
		b->total_elements += n;
		if (b->total_elements > b->max_total_elements) {
			snprintf(b->why, sizeof(b->why),
				 "reply of over %zu elements in nested arrays (limit %zu)",
				 b->total_elements, b->max_total_elements);
			return NULL;
		}
	}
	return defaults->createArray(task, elements);
}

static void *bounded_integer(const redisReadTask *task, long long value)
{
	return defaults->createInteger(task, value);
}

static void *bounded_nil(const redisReadTask *task)
{
	return defaults->createNil(task);
}

static void bounded_free(void *reply)
{
	defaults->freeObject(reply);
}

static redisReplyObjectFunctions bounded = {
	bounded_string, bounded_array, bounded_integer, bounded_nil, bounded_free,
};

void rbound_init(struct rbound *b)
{
	b->max_bulk = RBOUND_MAX_BULK;
	b->max_elements = RBOUND_MAX_ELEMENTS;
	b->max_total_elements = RBOUND_MAX_TOTAL_ELEMENTS;
	b->max_pending = RBOUND_MAX_PENDING;
	b->total_elements = 0;
	b->why[0] = '\0';
}

bool rbound_install(redisReader *r, struct rbound *b)
{
	if (!defaults) {
		redisReader *probe = redisReaderCreate();
		if (!probe)
			return false;
		defaults = probe->fn;
		redisReaderFree(probe);
	}
	if (!defaults || !defaults->createString || !defaults->createArray ||
	    !defaults->createInteger || !defaults->createNil || !defaults->freeObject)
		return false;
	r->fn = &bounded;
	r->privdata = b;
	return true;
}

bool rbound_pending_ok(const redisReader *r, struct rbound *b)
{
	size_t pending = r->len > r->pos ? r->len - r->pos : 0;
	if (pending <= b->max_pending)
		return true;
	snprintf(b->why, sizeof(b->why), "%zu reply bytes buffered unparsed (limit %zu)", pending,
		 b->max_pending);
	return false;
}
