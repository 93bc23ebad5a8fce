/* Fuzz the JSON stream walker (any split) and the generator's escaping:
 * escaped output must always be valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>

#include "json.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool on_value(void *ctx, struct json_stream *js, const struct json_value *v)
{
	char path[256];
	(void)ctx;
	(void)v;
	json_stream_path(js, path, sizeof(path));
	(void)json_stream_at(js, "items.item[].statId");
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_stream *js = json_stream_new(on_value, NULL, 0);
	if (js) {
		size_t half = size / 2;
		if (json_stream_feed(js, data, half) && json_stream_feed(js, data + half, size - half))
			(void)json_stream_finish(js);
		json_stream_free(js);
	}
	struct buf out = BUF_INIT;
	struct json_gen g;
	json_gen_init(&g, &out);
	json_obj_begin(&g);
	json_key_n(&g, (const char *)data, size);
	json_str_n(&g, (const char *)data, size);
	json_obj_end(&g);
	if (!json_gen_finish(&g) || !utf8_valid(out.data, out.len))
		abort();
	buf_free(&out);
	return 0;
}
