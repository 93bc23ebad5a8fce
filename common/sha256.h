/* sha256: SHA-256 (FIPS 180-4) of byte strings, one-shot or streamed.
 * Owns nothing but the state in a caller-held struct: no allocation, no I/O,
 * no globals but one: whether the CPU's SHA instructions are used (decided
 * once from CPUID; about six times the portable code's speed). Used for
 * migration checksums (schema_migrations.checksum, the hex digest of a
 * file's bytes) and for the export's digests (ingestd/export.c). */
#ifndef EV_SHA256_H
#define EV_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 64 /* without the NUL */

/* A streaming context: sha256_init, any number of sha256_update, then
 * sha256_final. Plain value: copy it to fork a digest. */
struct sha256 {
	uint32_t state[8];
	uint64_t total_bytes;
	uint8_t block[64];
	size_t block_len;
};

void sha256_init(struct sha256 *ctx);
void sha256_update(struct sha256 *ctx, const void *data, size_t len);
/* Writes the digest; the context must be re-initialised before reuse. */
void sha256_final(struct sha256 *ctx, uint8_t digest[SHA256_DIGEST_LEN]);

/* Lowercase hex of a digest into out (SHA256_HEX_LEN + 1 bytes, NUL-terminated). */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1]);
/* One shot: lowercase hex digest of data. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

/* Use the x86 SHA instructions when wanted and the CPU has them (the
 * default), else the portable code; returns whether they are used now. For
 * the tests, which check both against the same vectors. */
bool sha256_use_hw(bool wanted);

#endif
