/* Tests for util/base64, the decoder of kubeconfig "-data" fields: the
 * standard alphabet with and without padding, whitespace and line breaks
 * ignored (as PEM-wrapped data has them), binary output with zero bytes and
 * its exact length, and rejection of other alphabets, stray characters,
 * data after padding and lengths that cannot come from whole bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util/base64.h"

/* Decodes s and compares with want (want_len bytes); false on any mismatch. */
static bool decodes_to(const char *s, const char *want, size_t want_len)
{
	char *out = NULL;
	size_t len = 12345;
	bool ok;

	if (base64_decode(s, &out, &len) != 0) {
		fprintf(stderr, "    \"%s\" did not decode\n", s);
		return false;
	}
	ok = len == want_len && !memcmp(out, want, want_len) && out[len] == '\0';
	if (!ok)
		fprintf(stderr, "    \"%s\" decoded to %zu bytes\n", s, len);
	free(out);
	return ok;
}

static bool rejected(const char *s)
{
	char *out = (char *)0x1;
	size_t len = 12345;

	return base64_decode(s, &out, &len) == -EINVAL && out == (char *)0x1 && len == 12345;
}

TEST(standard_vectors)
{
	/* RFC 4648 section 10. */
	CHECK(decodes_to("", "", 0));
	CHECK(decodes_to("Zg==", "f", 1));
	CHECK(decodes_to("Zm8=", "fo", 2));
	CHECK(decodes_to("Zm9v", "foo", 3));
	CHECK(decodes_to("Zm9vYg==", "foob", 4));
	CHECK(decodes_to("Zm9vYmE=", "fooba", 5));
	CHECK(decodes_to("Zm9vYmFy", "foobar", 6));
}

TEST(padding_optional)
{
	CHECK(decodes_to("Zg", "f", 1));
	CHECK(decodes_to("Zm8", "fo", 2));
	CHECK(decodes_to("Zm9vYg", "foob", 4));
}

TEST(whitespace_ignored)
{
	CHECK(decodes_to("Zm9v\nYmFy\n", "foobar", 6));
	CHECK(decodes_to(" Zm 9v\r\n\tYmFy ", "foobar", 6));
	CHECK(decodes_to("Zg=\n=", "f", 1));
}

TEST(binary_output)
{
	static const char want[] = {0x00, (char)0xff, 0x00, (char)0xfb, (char)0xef};

	CHECK(decodes_to("AP8A++8=", want, sizeof(want)));
	CHECK(decodes_to("AAAA", "\0\0\0", 3));
	CHECK(decodes_to("//8=", "\xff\xff", 2));
}

TEST(rejects)
{
	CHECK(rejected("Z"));
	CHECK(rejected("Zm9vY"));
	CHECK(rejected("Zg==Zg=="));
	CHECK(rejected("Zg=a"));
	CHECK(rejected("Zg==="));
	CHECK(rejected("Zm9v*"));
	CHECK(rejected("Zm9v!YmFy"));
	/* The URL-safe alphabet is a different encoding. */
	CHECK(rejected("-_-_"));
	CHECK(rejected("Zm9v\x01"));
	CHECK(rejected("Zm9v\xc3\xa9"));
}

UNIT_MAIN(T(standard_vectors), T(padding_optional), T(whitespace_ignored), T(binary_output),
	  T(rejects))
