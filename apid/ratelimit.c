#include "ratelimit.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64

struct bucket {
	uint8_t key[17]; /* family byte, then up to 16 address bytes; all zero: empty */
	double tokens;
	int64_t last_ns;
};

struct ratelimit {
	double rate; /* tokens a second */
	double burst;
	size_t nslots;
	struct bucket *slots;
	pthread_mutex_t locks[STRIPES];
};

struct ratelimit *ratelimit_new(double rate, unsigned burst, size_t slots, bool *failed)
{
	*failed = false;
	if (!(rate > 0))
		return NULL;
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl)
		rl->slots = calloc(slots ? slots : 1, sizeof(*rl->slots));
	if (!rl || !rl->slots) {
		free(rl);
		*failed = true;
		return NULL;
	}
	rl->rate = rate;
	rl->burst = burst ? burst : 1;
	rl->nslots = slots ? slots : 1;
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_init(&rl->locks[i], NULL);
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&rl->locks[i]);
	free(rl->slots);
	free(rl);
}

/* The address as a key; the port is left out (one client, many sockets). */
static bool key_of(const struct sockaddr *addr, uint8_t key[17])
{
	memset(key, 0, 17);
	if (addr->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		return true;
	}
	if (addr->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
		return true;
	}
	return false;
}

static uint64_t hash_key(const uint8_t key[17])
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return h;
}

bool ratelimit_take(struct ratelimit *rl, const struct sockaddr *addr, int64_t now_ns,
		    unsigned *retry_after_s)
{
	uint8_t key[17];
	if (!rl || !addr || !key_of(addr, key))
		return true;
	uint64_t h = hash_key(key);
	size_t slot = (size_t)(h % rl->nslots);
	struct bucket *b = &rl->slots[slot];
	pthread_mutex_t *lock = &rl->locks[slot % STRIPES]; /* one lock per slot, always */
	pthread_mutex_lock(lock);
	if (memcmp(b->key, key, sizeof(key)) != 0) {
		memcpy(b->key, key, sizeof(key));
		b->tokens = rl->burst;
		b->last_ns = now_ns;
	} else if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) / 1e9 * rl->rate;
		if (b->tokens > rl->burst)
			b->tokens = rl->burst;
		b->last_ns = now_ns;
	}
	bool ok = b->tokens >= 1;
	if (ok)
		b->tokens -= 1;
	else
		*retry_after_s = (unsigned)ceil((1 - b->tokens) / rl->rate);
	pthread_mutex_unlock(lock);
	if (!ok && *retry_after_s < 1)
		*retry_after_s = 1;
	return ok;
}
