/* Fuzz apid's request screen (apid/reqscan.c): never crash, never read
 * past the input, and give the same answer however TCP cuts the bytes:
 * the input is fed whole, then in pieces whose sizes come from its first
 * byte. Every DONE/REFUSE offset is within the bytes fed, a refusal carries
 * one of the documented statuses and a reason, and the sequence of
 * outcomes (request ends and the final refusal) is identical both ways. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The module is apid's; harnesses link only libcommon, so compile it in. */
#include "../../apid/reqscan.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct reqscan_limits fuzz_limits = {
	.max_head_bytes = 512,
	.max_body_bytes = 256,
	.max_header_lines = 12,
};

#define OUTCOMES_MAX 64

struct trace {
	size_t ends[OUTCOMES_MAX]; /* absolute offsets where requests ended */
	size_t n;
	int refusal; /* 0: none */
	size_t refused_at;
};

/* Feed text in pieces of `piece` bytes (0: whole), restarting after each
 * DONE with the rest of the piece, as conn.c does. */
static void run(const char *text, size_t len, size_t piece, struct trace *t)
{
	struct reqscan s;
	reqscan_init(&s, &fuzz_limits);
	memset(t, 0, sizeof(*t));
	size_t pos = 0;
	while (pos < len) {
		size_t n = len - pos;
		if (piece && n > piece)
			n = piece;
		/* a heap copy of exactly n bytes: ASan sees any over-read */
		char *chunk = malloc(n);
		if (!chunk)
			abort();
		memcpy(chunk, text + pos, n);
		size_t off = 0;
		while (off < n) {
			size_t used = 0;
			enum reqscan_status st = reqscan_feed(&s, chunk + off, n - off, &used);
			if (used > n - off)
				abort();
			if (st == REQSCAN_MORE) {
				if (used != n - off)
					abort();
				off = n;
				break;
			}
			if (used == 0)
				abort(); /* no progress: a loop in conn.c */
			off += used;
			if (st == REQSCAN_REFUSE) {
				const char *reason = NULL;
				int status = reqscan_refusal(&s, &reason);
				if (!reason || !*reason)
					abort();
				if (status != 400 && status != 413 && status != 414 &&
				    status != 431 && status != 501 && status != 505)
					abort();
				t->refusal = status;
				t->refused_at = pos + off;
				free(chunk);
				return;
			}
			/* DONE: the blank bytes skipped lie inside the request */
			if (reqscan_skip(&s) > REQSCAN_MAX_BLANK || reqscan_in_request(&s))
				abort();
			if (t->n < OUTCOMES_MAX)
				t->ends[t->n] = pos + off;
			t->n++;
		}
		free(chunk);
		pos += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)(data[0] % 7) + 1; /* 1..7 bytes at a time */
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct trace whole, split;
	run(text, len, 0, &whole);
	run(text, len, piece, &split);
	if (whole.n != split.n || whole.refusal != split.refusal ||
	    whole.refused_at != split.refused_at)
		abort();
	for (size_t i = 0; i < whole.n && i < OUTCOMES_MAX; i++)
		if (whole.ends[i] != split.ends[i])
			abort();
	return 0;
}
