/* utf8: strict UTF-8 validation and decoding (RFC 3629).
 * Owns the definition of "valid" every module shares: no overlong forms, no
 * UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no bytes
 * 0xC0, 0xC1 or 0xF5..0xFF. 4-byte sequences (characters outside the Basic
 * Multilingual Plane, e.g. emoji) are valid. NUL bytes are valid UTF-8; the
 * callers that care (JSON escaping) handle them. */
#ifndef EV_UTF8_H
#define EV_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFDu      /* U+FFFD REPLACEMENT CHARACTER */
#define UTF8_REPLACEMENT_TEXT "\xEF\xBF\xBD"
#define UTF8_INVALID 0xFFFFFFFFu

/* True when all len bytes of s are well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

/* Decode one character at s (len > 0). Returns the bytes consumed (1-4) and
 * stores the code point in *cp, or UTF8_INVALID for an ill-formed sequence;
 * then the count is that of its "maximal subpart" (Unicode 15, section 3.9,
 * U+FFFD substitution): the longest prefix that could have begun a valid
 * sequence, at least 1. Replacing each such run by one U+FFFD is the W3C /
 * WHATWG practice, and keeps a truncated character at the end of a buffer
 * to a single U+FFFD. */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Length of the longest prefix of s (at most len) that does not split a
 * character: for truncating valid UTF-8 text at a byte limit. */
size_t utf8_cut(const char *s, size_t len);

#endif
