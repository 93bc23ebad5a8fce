/* Fuzz the upstream page parser (JSON envelope, XML gateway errors, item
 * shapes) and record normalization in both modes on every item it yields.
 * The first byte picks where the body is split into two feeds. */
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool on_item(void *ctx, const struct record_raw *raw, long position)
{
	struct record *rec = ctx;
	(void)position;
	if (record_normalize(raw, RECORD_MASTER, rec) != RECORD_OK) {
		struct buf text = BUF_INIT;
		record_raw_json(raw, &text, 4096);
		buf_free(&text);
	}
	(void)record_normalize(raw, RECORD_STATUS, rec);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % (size);
	data++;
	size--;
	if (split > size)
		split = size;
	struct record rec;
	record_init(&rec);
	struct upstream_page *page = upstream_page_new(on_item, &rec);
	if (page) {
		if (upstream_page_feed(page, data, split))
			(void)upstream_page_feed(page, data + split, size - split);
		struct upstream_result result;
		(void)upstream_page_finish(page, 200, &result);
		upstream_page_free(page);
	}
	record_free(&rec);
	return 0;
}
