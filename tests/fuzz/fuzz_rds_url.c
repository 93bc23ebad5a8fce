/* Fuzz the Redis URL parser: never crash, and a parsed URL is in range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct rds_url url;
	char err[256];
	if (rds_url_parse(text, &url, err, sizeof(err))) {
		if (!url.is_unix && (url.port < 1 || url.port > 65535))
			abort();
		char described[512];
		rds_url_describe(&url, described, sizeof(described));
	}
	free(text);
	return 0;
}
