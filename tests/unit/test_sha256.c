/* sha256 against FIPS 180-4 / NIST vectors and block-boundary lengths, one
 * shot and streamed in every split; every vector twice: with the CPU's SHA
 * instructions where it has them (case "vectors"), and with the portable
 * code (case "portable"). */
#include "testmain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static const struct {
	const char *input;
	const char *hex;
} text_vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	{ "The quick brown fox jumps over the lazy dog",
	  "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592" },
};

/* Bytes i % 251 for i in 0..len-1: lengths around the 55/56 padding edge and
 * the 64-byte block edge (digests from Python's hashlib). */
static const struct {
	size_t len;
	const char *hex;
} pattern_vectors[] = {
	{ 55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59" },
	{ 56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562" },
	{ 63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488" },
	{ 64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108" },
	{ 65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781" },
	{ 119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6" },
	{ 120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c" },
	{ 128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5" },
};

static void fill_pattern(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i % 251);
}

START_TEST(known_text)
{
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(text_vectors[_i].input, strlen(text_vectors[_i].input), hex);
	ck_assert_str_eq(hex, text_vectors[_i].hex);
}
END_TEST

START_TEST(known_pattern)
{
	uint8_t buf[128];
	char hex[SHA256_HEX_LEN + 1];
	fill_pattern(buf, pattern_vectors[_i].len);
	sha256_hex(buf, pattern_vectors[_i].len, hex);
	ck_assert_str_eq(hex, pattern_vectors[_i].hex);
}
END_TEST

/* Every two-way split of every pattern vector gives the one-shot digest. */
START_TEST(streamed_splits)
{
	uint8_t buf[128];
	size_t len = pattern_vectors[_i].len;
	fill_pattern(buf, len);
	for (size_t split = 0; split <= len; split++) {
		struct sha256 ctx;
		uint8_t digest[SHA256_DIGEST_LEN];
		char hex[SHA256_HEX_LEN + 1];
		sha256_init(&ctx);
		sha256_update(&ctx, buf, split);
		sha256_update(&ctx, buf + split, len - split);
		sha256_final(&ctx, digest);
		sha256_to_hex(digest, hex);
		ck_assert_msg(strcmp(hex, pattern_vectors[_i].hex) == 0, "len %zu split %zu: %s",
			      len, split, hex);
	}
}
END_TEST

/* One byte at a time, across many blocks. */
START_TEST(byte_by_byte)
{
	static const char *text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	struct sha256 ctx;
	uint8_t digest[SHA256_DIGEST_LEN];
	char hex[SHA256_HEX_LEN + 1];
	sha256_init(&ctx);
	for (const char *p = text; *p; p++)
		sha256_update(&ctx, p, 1);
	sha256_final(&ctx, digest);
	sha256_to_hex(digest, hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

/* NIST: one million 'a', fed in uneven chunks. */
START_TEST(million_a)
{
	enum { TOTAL = 1000000 };
	char *buf = malloc(TOTAL);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 'a', TOTAL);
	struct sha256 ctx;
	uint8_t digest[SHA256_DIGEST_LEN];
	char hex[SHA256_HEX_LEN + 1];
	sha256_init(&ctx);
	size_t done = 0, chunk = 1;
	while (done < TOTAL) {
		size_t take = chunk < TOTAL - done ? chunk : TOTAL - done;
		sha256_update(&ctx, buf + done, take);
		done += take;
		chunk = chunk * 3 + 7;
		if (chunk > 100000)
			chunk = 13;
	}
	sha256_final(&ctx, digest);
	sha256_to_hex(digest, hex);
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	sha256_hex(buf, TOTAL, hex);
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(buf);
}
END_TEST

static void use_portable(void)
{
	ck_assert(!sha256_use_hw(false));
}

static void use_default(void)
{
	(void)sha256_use_hw(true);
}

Suite *test_suite(void)
{
	Suite *s = suite_create("sha256");
	for (int is_portable = 0; is_portable < 2; is_portable++) {
		TCase *tc = tcase_create(is_portable ? "portable" : "vectors");
		if (is_portable)
			tcase_add_checked_fixture(tc, use_portable, use_default);
		tcase_add_loop_test(tc, known_text, 0,
				    (int)(sizeof(text_vectors) / sizeof(text_vectors[0])));
		tcase_add_loop_test(tc, known_pattern, 0,
				    (int)(sizeof(pattern_vectors) / sizeof(pattern_vectors[0])));
		tcase_add_loop_test(tc, streamed_splits, 0,
				    (int)(sizeof(pattern_vectors) / sizeof(pattern_vectors[0])));
		tcase_add_test(tc, byte_by_byte);
		tcase_add_test(tc, million_a);
		suite_add_tcase(s, tc);
	}
	return s;
}
