#include "sha256.h"

#include <stdbool.h>
#include <string.h>

static const uint32_t round_constants[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void compress(uint32_t state[8], const uint8_t block[64])
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
		       (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}

	uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
	uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
	for (int i = 0; i < 64; i++) {
		uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
		uint32_t ch = (e & f) ^ (~e & g);
		uint32_t t1 = h + s1 + ch + round_constants[i] + w[i];
		uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
		uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
		uint32_t t2 = s0 + maj;
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	state[4] += e;
	state[5] += f;
	state[6] += g;
	state[7] += h;
}

/* ---- the x86 SHA extensions ----
 * sha256rnds2 does two rounds, sha256msg1/2 the message schedule: about six
 * times the portable code (measured in one run: 463 MB/s against 71 MB/s;
 * the export digests 1.4 GB a night).
 * Chosen at run time from CPUID; the portable code stays for other CPUs and
 * is what sha256_use_hw(false) selects (the unit test runs both). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1,ssse3"))) static void compress_hw(uint32_t state[8],
								  const uint8_t *data,
								  size_t blocks)
{
	/* PSHUFB mask: each 32-bit word big-endian */
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	/* the state as the instructions want it: ABEF and CDGH */
	__m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);
	__m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);
	__m128i state0 = _mm_alignr_epi8(tmp, state1, 8);
	state1 = _mm_blend_epi16(state1, tmp, 0xF0);
	for (; blocks; blocks--, data += 64) {
		__m128i abef = state0, cdgh = state1, w[4];
#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) { /* rounds 4g .. 4g+3 */
			if (g < 4) {
				w[g] = _mm_shuffle_epi8(
					_mm_loadu_si128((const __m128i *)(data + 16 * g)), bswap);
			} else {
				/* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16] */
				__m128i t = _mm_sha256msg1_epu32(w[g & 3], w[(g - 3) & 3]);
				t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g - 1) & 3], w[(g - 2) & 3], 4));
				w[g & 3] = _mm_sha256msg2_epu32(t, w[(g - 1) & 3]);
			}
			__m128i m = _mm_add_epi32(
				w[g & 3], _mm_loadu_si128((const __m128i *)&round_constants[4 * g]));
			state1 = _mm_sha256rnds2_epu32(state1, state0, m);
			state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(m, 0x0E));
		}
		state0 = _mm_add_epi32(state0, abef);
		state1 = _mm_add_epi32(state1, cdgh);
	}
	tmp = _mm_shuffle_epi32(state0, 0x1B);
	state1 = _mm_shuffle_epi32(state1, 0xB1);
	_mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(tmp, state1, 0xF0));
	_mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(state1, tmp, 8));
}

static bool cpu_has_sha(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#else
static void compress_hw(uint32_t state[8], const uint8_t *data, size_t blocks)
{
	(void)state, (void)data, (void)blocks;
}

static bool cpu_has_sha(void)
{
	return false;
}
#endif

/* -1: not decided yet; 0: portable; 1: the SHA instructions. Relaxed
 * atomics: every thread that decides decides the same. */
static int use_hw = -1;

static bool hw_selected(void)
{
	int v = __atomic_load_n(&use_hw, __ATOMIC_RELAXED);
	if (v < 0) {
		v = cpu_has_sha();
		__atomic_store_n(&use_hw, v, __ATOMIC_RELAXED);
	}
	return v;
}

bool sha256_use_hw(bool wanted)
{
	bool is_used = wanted && cpu_has_sha();
	__atomic_store_n(&use_hw, is_used, __ATOMIC_RELAXED);
	return is_used;
}

static void compress_blocks(uint32_t state[8], const uint8_t *data, size_t blocks)
{
	if (hw_selected()) {
		compress_hw(state, data, blocks);
		return;
	}
	for (; blocks; blocks--, data += 64)
		compress(state, data);
}

void sha256_init(struct sha256 *ctx)
{
	static const uint32_t initial[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(ctx->state, initial, sizeof(initial));
	ctx->total_bytes = 0;
	ctx->block_len = 0;
}

void sha256_update(struct sha256 *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;
	ctx->total_bytes += len;
	if (ctx->block_len > 0) {
		size_t take = 64 - ctx->block_len;
		if (take > len)
			take = len;
		memcpy(ctx->block + ctx->block_len, p, take);
		ctx->block_len += take;
		p += take;
		len -= take;
		if (ctx->block_len < 64)
			return;
		compress_blocks(ctx->state, ctx->block, 1);
		ctx->block_len = 0;
	}
	compress_blocks(ctx->state, p, len / 64);
	p += len / 64 * 64;
	len %= 64;
	if (len > 0) {
		memcpy(ctx->block, p, len);
		ctx->block_len = len;
	}
}

void sha256_final(struct sha256 *ctx, uint8_t digest[SHA256_DIGEST_LEN])
{
	uint64_t total_bits = ctx->total_bytes * 8;

	/* Padding: 0x80, zeros up to 56 mod 64, then the 64-bit big-endian length. */
	ctx->block[ctx->block_len++] = 0x80;
	if (ctx->block_len > 56) {
		memset(ctx->block + ctx->block_len, 0, 64 - ctx->block_len);
		compress_blocks(ctx->state, ctx->block, 1);
		ctx->block_len = 0;
	}
	memset(ctx->block + ctx->block_len, 0, 56 - ctx->block_len);
	for (int i = 0; i < 8; i++)
		ctx->block[56 + i] = (uint8_t)(total_bits >> (56 - 8 * i));
	compress_blocks(ctx->state, ctx->block, 1);

	for (int i = 0; i < 8; i++) {
		digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
		digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
		digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
		digest[4 * i + 3] = (uint8_t)ctx->state[i];
	}
	memset(ctx, 0, sizeof(*ctx));
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[SHA256_HEX_LEN] = '\0';
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
	struct sha256 ctx;
	uint8_t digest[SHA256_DIGEST_LEN];
	sha256_init(&ctx);
	sha256_update(&ctx, data, len);
	sha256_final(&ctx, digest);
	sha256_to_hex(digest, out);
}
