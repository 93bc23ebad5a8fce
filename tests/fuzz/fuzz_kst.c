/* Fuzz Korea-time parsing: whatever parses must format back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	time_t t;
	if (!kst_parse_n((const char *)data, size, &t))
		return 0;
	char compact[KST_COMPACT_SIZE];
	kst_format_compact(t, compact);
	if (size != strlen(compact) || memcmp(compact, data, size) != 0)
		abort(); /* a parsed time must print back as the same text */
	char iso[KST_ISO_SIZE];
	kst_format_iso(t, iso);
	(void)kst_weekday(t);
	(void)kst_hour(t);
	return 0;
}
