/* cgfill: RESP for `redis-cli --pipe`: SET of N congestion counters in the
 * layout of common/rkeys.h (168 slots of big-endian u12 samples, uses and
 * out of service, then the big-endian u32 last-sample second: 760 bytes),
 * with counts that follow a formula of the charger and slot, so a reader
 * can check any value.
 *
 *   cgfill CHARGERS [SEED] > fill.resp
 *
 * Stations hold 1 to 8 chargers (statId "CG" + 6 digits, chgerId 2 digits),
 * as the public data does on average (230,000 chargers, about 60,000
 * stations). Built by tests/bench/ingest_congestion.sh with cc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rkeys.h"

#define SLOTS	    RKEYS_CONGESTION_SLOTS
#define VALUE_BYTES RKEYS_CONGESTION_VALUE_BYTES

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: cgfill CHARGERS [SEED]\n");
		return 64;
	}
	long total = atol(argv[1]);
	unsigned seed = argc > 2 ? (unsigned)atol(argv[2]) : 1;
	static char out[1 << 20];
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	long charger = 0;
	for (long station = 0; charger < total; station++) {
		int per_station = 1 + (int)((station * 2654435761u + seed) % 8);
		for (int c = 1; c <= per_station && charger < total; c++, charger++) {
			char key[64];
			int key_len = snprintf(key, sizeof(key), "ev:cg:CG%06ld:%02d", station, c);
			unsigned char value[VALUE_BYTES];
			memset(value, 0, sizeof(value));
			for (int slot = 0; slot < SLOTS; slot++) {
				uint32_t h = (uint32_t)(charger * 7919 + slot * 104729 + seed) *
					     2654435761u;
				unsigned samples = h >> 22; /* 0..1023 */
				unsigned uses = samples * ((h >> 8) & 7) / 7;
				unsigned down = samples * ((h >> 4) & 3) / 16;
				rkeys_congestion_counter_put(value, slot, RKEYS_CG_SAMPLES, samples);
				rkeys_congestion_counter_put(value, slot, RKEYS_CG_USES, uses);
				rkeys_congestion_counter_put(value, slot, RKEYS_CG_OUT_OF_SERVICE,
							     down);
			}
			rkeys_congestion_last_sample_put(value,
							 1732500000u + (uint32_t)(charger % 600));
			printf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", key_len, key,
			       VALUE_BYTES);
			fwrite(value, 1, sizeof(value), stdout);
			fputs("\r\n", stdout);
		}
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
