#include "utf8.h"

#include <string.h>

size_t utf8_decode(const char *text, size_t len, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)text;
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
	uint32_t v;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0; /* overlong below U+0800 */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates U+D800..U+DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		*cp = UTF8_INVALID; /* 80..C1, F5..FF never start a character */
		return 1;
	}
	size_t i = 1;
	for (; i < need; i++) {
		if (i >= len)
			goto invalid;
		unsigned char b = s[i];
		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
			goto invalid;
		v = (v << 6) | (b & 0x3F);
	}
	*cp = v;
	return need;
invalid:
	*cp = UTF8_INVALID;
	return i;
}

bool utf8_valid(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* ASCII runs dominate (keys, numbers, ids): 8 bytes per test */
		while (len - i >= 8) {
			uint64_t word;
			memcpy(&word, s + i, 8);
			if (word & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		i += utf8_decode(s + i, len - i, &cp);
		if (cp == UTF8_INVALID)
			return false;
	}
	return true;
}

size_t utf8_cut(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	/* find the start of the last character: at most 3 continuation bytes back */
	size_t start = len;
	for (size_t back = 0; back < 4 && start > 0; back++) {
		start--;
		if ((s[start] & 0xC0) != 0x80)
			break;
	}
	if (start == len)
		return len;
	unsigned char c = s[start];
	size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
	return len - start >= need ? len : start;
}
