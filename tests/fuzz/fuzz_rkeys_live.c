/* Fuzz the station value parser (rkeys.h layout 3, which apid, realtimed's
 * load and the tests read from Redis): never crash or read outside the
 * value; what parses writes back in a form that parses whole and writes
 * back as the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rkeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* v parsed and written again into out (room enough); false when its head
 * does not parse; *whole: every charger parsed. Returns the length in *n. */
static bool rewrite(const char *v, size_t size, char *out, size_t *n, bool *whole)
{
	struct rkeys_avail av;
	struct rkeys_charger c;
	size_t at;
	if (!rkeys_live_head(v, size, &av, &at))
		return false;
	*n = rkeys_live_head_put(out, (unsigned)av.standby, (unsigned)av.total,
				 (unsigned)av.quick_standby);
	int next;
	while ((next = rkeys_live_next(v, size, &at, &c)) == 1) {
		if (c.id < v || c.id + c.id_len > v + size || c.id_len == 0 || c.stat < 0 ||
		    c.stat > 99)
			abort();
		*n += rkeys_live_charger_put(out + *n, c.id, c.id_len, c.stat, c.updated, c.quick);
	}
	*whole = next == 0;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exactly size bytes, unterminated: ASan catches a read past the value */
	char *v = malloc(size ? size : 1);
	size_t room = RKEYS_LIVE_HEAD_MAX + (size / 4 + 1) * RKEYS_LIVE_CHARGER_MAX;
	char *once = malloc(room), *twice = malloc(room);
	if (!v || !once || !twice)
		abort();
	memcpy(v, data, size);
	size_t n1, n2;
	bool whole;
	if (rewrite(v, size, once, &n1, &whole)) {
		if (!rewrite(once, n1, twice, &n2, &whole) || !whole || n2 != n1 ||
		    memcmp(once, twice, n1) != 0)
			abort();
	}
	free(v);
	free(once);
	free(twice);
	return 0;
}
