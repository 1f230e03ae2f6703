/* Base64 decoding; see base64.h. */
#include "util/base64.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int value_of(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int base64_decode(const char *s, char **ret_buf, size_t *ret_len)
{
	size_t len = strlen(s), n = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	char *out = malloc(len / 4 * 3 + 4);

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		int v;

		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		v = value_of(ch);
		if (v < 0 || pad) {
			free(out);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* Six leftover bits cannot come from whole bytes. */
	if (bits >= 6 || pad > 2) {
		free(out);
		return -EINVAL;
	}
	out[n] = '\0';
	*ret_buf = out;
	*ret_len = n;
	return 0;
}
