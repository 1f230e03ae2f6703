/* Tests for util/addr: strict parsing of IPv4 and IPv6 literals (no zones, no
 * surrounding text, no leading zeros that other parsers read as octal),
 * prefixes with and without host bits, formatting and its round trip through
 * the parser, prefix membership across byte boundaries and families, and the
 * total order that the model uses to sort endpoints (family first, then the
 * address bytes as numbers). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util/addr.h"

static struct ipaddr ip(const char *s)
{
	struct ipaddr a;

	memset(&a, 0, sizeof(a));
	if (ipaddr_parse(s, &a) < 0)
		fprintf(stderr, "    helper: \"%s\" did not parse\n", s);
	return a;
}

static struct cidr net(const char *s)
{
	struct cidr c;

	memset(&c, 0, sizeof(c));
	if (cidr_parse(s, false, &c) < 0)
		fprintf(stderr, "    helper: \"%s\" did not parse\n", s);
	return c;
}

/* True when ipaddr_parse rejects s with -EINVAL and leaves the output alone. */
static bool rejects(const char *s)
{
	struct ipaddr a;

	memset(&a, 0xa5, sizeof(a));
	if (ipaddr_parse(s, &a) != -EINVAL)
		return false;
	for (size_t i = 0; i < sizeof(a.bytes); i++) {
		if (a.bytes[i] != 0xa5)
			return false;
	}
	return a.family == 0xa5;
}

static bool cidr_rejects(const char *s, bool allow_host_bits)
{
	struct cidr c;

	memset(&c, 0x5a, sizeof(c));
	if (cidr_parse(s, allow_host_bits, &c) != -EINVAL)
		return false;
	return c.prefix_len == 0x5a && c.addr.family == 0x5a;
}

TEST(parse_ipv4)
{
	static const uint8_t want[16] = {10, 1, 2, 3};
	struct ipaddr a;

	memset(&a, 0xff, sizeof(a));
	REQUIRE(ipaddr_parse("10.1.2.3", &a) == 0);
	CHECK_EQ_INT(a.family, AF_INET);
	/* The unused 12 bytes are zero so that memcmp over the struct works. */
	CHECK(memcmp(a.bytes, want, sizeof(want)) == 0);
	CHECK_EQ_INT(ipaddr_len(&a), 4);

	REQUIRE(ipaddr_parse("255.255.255.255", &a) == 0);
	CHECK_EQ_INT(a.bytes[0], 255);
	CHECK_EQ_INT(a.bytes[3], 255);
	CHECK_EQ_INT(a.bytes[4], 0);
	REQUIRE(ipaddr_parse("0.0.0.0", &a) == 0);
	CHECK_EQ_INT(a.family, AF_INET);
	CHECK(ipaddr_is_zero(&a));
	/* Zeros that are whole octets, or trailing digits, are not leading zeros. */
	REQUIRE(ipaddr_parse("100.0.10.0", &a) == 0);
	CHECK_EQ_INT(a.bytes[0], 100);
	CHECK_EQ_INT(a.bytes[1], 0);
	CHECK_EQ_INT(a.bytes[2], 10);
	CHECK_EQ_INT(a.bytes[3], 0);
}

TEST(parse_ipv6)
{
	static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
	struct ipaddr a;

	REQUIRE(ipaddr_parse("2001:db8::1", &a) == 0);
	CHECK_EQ_INT(a.family, AF_INET6);
	CHECK(memcmp(a.bytes, doc, 16) == 0);
	CHECK_EQ_INT(ipaddr_len(&a), 16);

	REQUIRE(ipaddr_parse("2001:DB8:0:0:0:0:0:1", &a) == 0);
	CHECK(memcmp(a.bytes, doc, 16) == 0);

	/* An IPv4-mapped address is an IPv6 address, not an IPv4 one. */
	REQUIRE(ipaddr_parse("::ffff:1.2.3.4", &a) == 0);
	CHECK_EQ_INT(a.family, AF_INET6);
	CHECK(memcmp(a.bytes, mapped, 16) == 0);

	REQUIRE(ipaddr_parse("::", &a) == 0);
	CHECK_EQ_INT(a.family, AF_INET6);
	CHECK(ipaddr_is_zero(&a));
	REQUIRE(ipaddr_parse("::1", &a) == 0);
	CHECK(!ipaddr_is_zero(&a));
	CHECK_EQ_INT(a.bytes[15], 1);

	REQUIRE(ipaddr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a) == 0);
	for (int i = 0; i < 16; i++)
		CHECK_EQ_INT(a.bytes[i], 0xff);
}

TEST(parse_rejects)
{
	char longs[200];

	CHECK(rejects(""));
	CHECK(rejects(NULL));
	CHECK(rejects("1.2.3"));
	CHECK(rejects("1.2.3.4.5"));
	CHECK(rejects("256.1.1.1"));
	CHECK(rejects("1.2.3.-1"));
	CHECK(rejects("01.2.3.4"));
	CHECK(rejects("1.2.3.04"));
	CHECK(rejects("1.02.3.4"));
	CHECK(rejects("1.2.3.00"));
	CHECK(rejects("0x7f.0.0.1"));
	CHECK(rejects("1.2.3.4 "));
	CHECK(rejects(" 1.2.3.4"));
	CHECK(rejects("1.2.3.4\n"));
	CHECK(rejects("1.2.3.4/32"));
	CHECK(rejects("1.2.3.4:80"));
	CHECK(rejects("banana"));
	CHECK(rejects("fe80::1%eth0"));
	CHECK(rejects("fe80::1%1"));
	CHECK(rejects("[::1]"));
	CHECK(rejects("2001:db8::g"));
	CHECK(rejects("2001:db8:::1"));
	CHECK(rejects("1:2:3:4:5:6:7:8:9"));
	CHECK(rejects(":"));
	CHECK(rejects("::1 "));
	memset(longs, '1', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	CHECK(rejects(longs));
}

TEST(cidr_parse_valid)
{
	struct cidr c;

	REQUIRE(cidr_parse("10.0.0.0/8", false, &c) == 0);
	CHECK_EQ_INT(c.addr.family, AF_INET);
	CHECK_EQ_INT(c.prefix_len, 8);
	CHECK_EQ_INT(c.addr.bytes[0], 10);

	REQUIRE(cidr_parse("0.0.0.0/0", false, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 0);
	REQUIRE(cidr_parse("1.2.3.4/32", false, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 32);
	CHECK_EQ_INT(c.addr.bytes[3], 4);

	REQUIRE(cidr_parse("::/0", false, &c) == 0);
	CHECK_EQ_INT(c.addr.family, AF_INET6);
	CHECK_EQ_INT(c.prefix_len, 0);
	REQUIRE(cidr_parse("2001:db8::/32", false, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 32);
	REQUIRE(cidr_parse("2001:db8::1/128", false, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 128);
	CHECK_EQ_INT(c.addr.bytes[15], 1);
}

TEST(cidr_host_bits)
{
	struct cidr c;

	/* Host bits set: an error unless asked to clear them. */
	CHECK(cidr_rejects("10.1.0.0/8", false));
	REQUIRE(cidr_parse("10.1.2.3/8", true, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 8);
	CHECK_EQ_INT(c.addr.bytes[0], 10);
	CHECK_EQ_INT(c.addr.bytes[1], 0);
	CHECK_EQ_INT(c.addr.bytes[2], 0);
	CHECK_EQ_INT(c.addr.bytes[3], 0);

	/* Within a byte: /20 keeps the high nibble of the third octet. */
	CHECK(cidr_rejects("10.0.31.0/20", false));
	REQUIRE(cidr_parse("10.0.31.255/20", true, &c) == 0);
	CHECK_EQ_INT(c.addr.bytes[2], 16);
	CHECK_EQ_INT(c.addr.bytes[3], 0);
	REQUIRE(cidr_parse("10.0.16.0/20", false, &c) == 0);
	CHECK_EQ_INT(c.addr.bytes[2], 16);

	CHECK(cidr_rejects("2001:db8::1/64", false));
	REQUIRE(cidr_parse("2001:db8:1:2:3:4:5:6/64", true, &c) == 0);
	CHECK_EQ_INT(c.prefix_len, 64);
	CHECK_EQ_INT(c.addr.bytes[7], 2);
	for (int i = 8; i < 16; i++)
		CHECK_EQ_INT(c.addr.bytes[i], 0);
	REQUIRE(cidr_parse("ffff::/1", true, &c) == 0);
	CHECK_EQ_INT(c.addr.bytes[0], 0x80);
	CHECK_EQ_INT(c.addr.bytes[1], 0);
}

TEST(cidr_rejects_malformed)
{
	CHECK(cidr_rejects(NULL, true));
	CHECK(cidr_rejects("", true));
	CHECK(cidr_rejects("/", true));
	CHECK(cidr_rejects("/24", true));
	CHECK(cidr_rejects("1.2.3.0", true));
	CHECK(cidr_rejects("1.2.3.0/", true));
	CHECK(cidr_rejects("1.2.3.0/-1", true));
	CHECK(cidr_rejects("1.2.3.0/+24", true));
	CHECK(cidr_rejects("1.2.3.0/33", true));
	CHECK(cidr_rejects("1.2.3.0/24x", true));
	CHECK(cidr_rejects("1.2.3.0/24/8", true));
	CHECK(cidr_rejects("1.2.3.0/24 ", true));
	CHECK(cidr_rejects("1.2.3.0/99999999999999999999", true));
	CHECK(cidr_rejects("::/129", true));
	CHECK(cidr_rejects("01.2.3.0/24", true));
	CHECK(cidr_rejects("1.2.3/24", true));
	CHECK(cidr_rejects("fe80::%eth0/64", true));
	CHECK(cidr_rejects("banana/8", true));
	CHECK(cidr_rejects("1.2.3.0 /24", true));
}

/* The prefix length is digits only: whitespace after the slash is as wrong
 * as a sign. */
TEST(cidr_rejects_space_in_prefix)
{
	CHECK(cidr_rejects("10.0.0.0/ 8", true));
	CHECK(cidr_rejects("10.0.0.0/\t8", true));
	CHECK(cidr_rejects("10.0.0.0/ 8", false));
}

TEST(format_roundtrip)
{
	static const char *const addrs[] = {
		"10.1.2.3",	   "0.0.0.0",	"255.255.255.255",
		"2001:db8::1",	   "::",	"::1",
		"::ffff:1.2.3.4",  "fe80::1:2", "2001:db8:0:1:2:3:4:5",
		"1:2:3:4:5:6:7:8",
	};
	static const char *const nets[] = {"10.0.0.0/8",    "0.0.0.0/0", "1.2.3.4/32",
					   "2001:db8::/32", "::/0",	 "2001:db8::1/128",
					   "10.0.16.0/20"};
	char buf[IPADDR_STRLEN];

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct ipaddr a = ip(addrs[i]), b;

		CHECK_EQ_STR(ipaddr_format(&a, buf), addrs[i]);
		REQUIRE(ipaddr_parse(buf, &b) == 0);
		CHECK(ipaddr_equal(&a, &b));
	}
	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		struct cidr c = net(nets[i]), d;

		CHECK_EQ_STR(cidr_format(&c, buf), nets[i]);
		REQUIRE(cidr_parse(buf, false, &d) == 0);
		CHECK(ipaddr_equal(&c.addr, &d.addr));
		CHECK_EQ_INT(c.prefix_len, d.prefix_len);
	}
}

TEST(format_canonical)
{
	char buf[IPADDR_STRLEN];
	struct ipaddr a = ip("2001:0DB8:0000:0000:0000:0000:0000:0001"), none;
	struct cidr c;

	/* Formatting gives the canonical (RFC 5952) form, whatever the input. */
	CHECK_EQ_STR(ipaddr_format(&a, buf), "2001:db8::1");
	REQUIRE(cidr_parse("2001:db8:1:2:3:4:5:6/48", true, &c) == 0);
	CHECK_EQ_STR(cidr_format(&c, buf), "2001:db8:1::/48");
	REQUIRE(cidr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", false, &c) == 0);
	CHECK_EQ_STR(cidr_format(&c, buf), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	REQUIRE(cidr_parse("192.168.100.200/31", true, &c) == 0);
	CHECK_EQ_STR(cidr_format(&c, buf), "192.168.100.200/31");
	memset(&none, 0, sizeof(none));
	CHECK_EQ_STR(ipaddr_format(&none, buf), "<none>");
}

TEST(contains)
{
	struct cidr c8 = net("10.0.0.0/8"), c20 = net("10.0.16.0/20"), all4 = net("0.0.0.0/0");
	struct cidr host = net("192.168.1.1/32"), c64 = net("2001:db8:1:2::/64");
	struct cidr all6 = net("::/0"), c1 = net("128.0.0.0/1");
	struct ipaddr a;

	CHECK(cidr_contains(&c8, (a = ip("10.0.0.0"), &a)));
	CHECK(cidr_contains(&c8, (a = ip("10.255.1.1"), &a)));
	CHECK(!cidr_contains(&c8, (a = ip("11.0.0.0"), &a)));
	CHECK(!cidr_contains(&c8, (a = ip("9.255.255.255"), &a)));

	CHECK(cidr_contains(&c20, (a = ip("10.0.16.0"), &a)));
	CHECK(cidr_contains(&c20, (a = ip("10.0.31.255"), &a)));
	CHECK(!cidr_contains(&c20, (a = ip("10.0.32.0"), &a)));
	CHECK(!cidr_contains(&c20, (a = ip("10.0.15.255"), &a)));

	CHECK(cidr_contains(&c1, (a = ip("200.1.1.1"), &a)));
	CHECK(!cidr_contains(&c1, (a = ip("127.255.255.255"), &a)));

	CHECK(cidr_contains(&all4, (a = ip("1.2.3.4"), &a)));
	CHECK(cidr_contains(&host, (a = ip("192.168.1.1"), &a)));
	CHECK(!cidr_contains(&host, (a = ip("192.168.1.2"), &a)));

	CHECK(cidr_contains(&c64, (a = ip("2001:db8:1:2:ffff::1"), &a)));
	CHECK(!cidr_contains(&c64, (a = ip("2001:db8:1:3::1"), &a)));
	CHECK(cidr_contains(&all6, (a = ip("::1"), &a)));

	/* Families never mix, not even through /0 or IPv4-mapped addresses. */
	CHECK(!cidr_contains(&all4, (a = ip("::1"), &a)));
	CHECK(!cidr_contains(&all6, (a = ip("1.2.3.4"), &a)));
	CHECK(!cidr_contains(&c8, (a = ip("::ffff:10.0.0.1"), &a)));
}

static int cmp_qsort(const void *x, const void *y)
{
	return ipaddr_cmp(x, y);
}

TEST(compare_order)
{
	static const char *const sorted[] = {"9.255.255.255", "10.0.0.2",    "10.0.0.10",
					     "10.0.1.0",      "192.0.2.1",   "::",
					     "::1",	      "2001:db8::2", "2001:db8::10"};
	const size_t n = sizeof(sorted) / sizeof(sorted[0]);
	struct ipaddr v[sizeof(sorted) / sizeof(sorted[0])];
	struct ipaddr a = ip("10.0.0.1"), b = ip("10.0.0.1"), c = ip("::ffff:10.0.0.1");
	char buf[IPADDR_STRLEN];

	CHECK_EQ_INT(ipaddr_cmp(&a, &b), 0);
	CHECK(ipaddr_equal(&a, &b));
	/* The mapped form is a different address (and sorts after all IPv4). */
	CHECK(!ipaddr_equal(&a, &c));
	CHECK(ipaddr_cmp(&a, &c) < 0);
	CHECK(ipaddr_cmp(&c, &a) > 0);

	/* Reverse the list, sort it, expect the original order back. */
	for (size_t i = 0; i < n; i++)
		v[i] = ip(sorted[n - 1 - i]);
	qsort(v, n, sizeof(v[0]), cmp_qsort);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_STR(ipaddr_format(&v[i], buf), sorted[i]);
	for (size_t i = 0; i + 1 < n; i++) {
		CHECK(ipaddr_cmp(&v[i], &v[i + 1]) < 0);
		CHECK(ipaddr_cmp(&v[i + 1], &v[i]) > 0);
	}
}

UNIT_MAIN(T(parse_ipv4), T(parse_ipv6), T(parse_rejects), T(cidr_parse_valid), T(cidr_host_bits),
	  T(cidr_rejects_malformed), T(cidr_rejects_space_in_prefix), T(format_roundtrip),
	  T(format_canonical), T(contains), T(compare_order))
