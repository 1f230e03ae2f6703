/* Strict parsing and formatting of IP addresses and prefixes; see addr.h. */
#include "util/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ipv4_octets_canonical(const char *s)
{
	/* inet_pton() already rejects octal and hex forms on glibc, but also
	 * reject "01.2.3.4", which other resolvers read as octal, so that an
	 * address means the same here as in every other component. */
	for (const char *p = s; *p; p++) {
		if (*p == '0' && (p == s || p[-1] == '.') && p[1] >= '0' && p[1] <= '9')
			return false;
	}
	return true;
}

int ipaddr_parse(const char *s, struct ipaddr *ret_addr)
{
	struct ipaddr a;

	if (!s || !*s || strlen(s) >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	if (strchr(s, ':')) {
		if (inet_pton(AF_INET6, s, a.bytes) != 1)
			return -EINVAL;
		a.family = AF_INET6;
	} else {
		if (!ipv4_octets_canonical(s) || inet_pton(AF_INET, s, a.bytes) != 1)
			return -EINVAL;
		a.family = AF_INET;
	}
	*ret_addr = a;
	return 0;
}

int cidr_parse(const char *s, bool allow_host_bits, struct cidr *ret_cidr)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	struct cidr c;
	char *end;
	long len;
	size_t alen;

	if (!s)
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash || slash == s)
		return -EINVAL;
	alen = (size_t)(slash - s);
	if (alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(&c, 0, sizeof(c));
	if (ipaddr_parse(buf, &c.addr) < 0)
		return -EINVAL;
	for (const char *d = slash + 1;; d++) {
		if (!*d)
			break;
		if (*d < '0' || *d > '9')
			return -EINVAL;
	}
	if (!slash[1])
		return -EINVAL;
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	if (errno || *end || len < 0 || len > (long)(ipaddr_len(&c.addr) * 8))
		return -EINVAL;
	c.prefix_len = (uint8_t)len;
	for (size_t bit = (size_t)len; bit < ipaddr_len(&c.addr) * 8; bit++) {
		uint8_t mask = (uint8_t)(0x80u >> (bit % 8));

		if (c.addr.bytes[bit / 8] & mask) {
			if (!allow_host_bits)
				return -EINVAL;
			c.addr.bytes[bit / 8] &= (uint8_t)~mask;
		}
	}
	*ret_cidr = c;
	return 0;
}

const char *ipaddr_format(const struct ipaddr *addr, char *buf)
{
	if (!addr->family || !inet_ntop(addr->family, addr->bytes, buf, IPADDR_STRLEN))
		strcpy(buf, "<none>");
	return buf;
}

const char *cidr_format(const struct cidr *cidr, char *buf)
{
	size_t n;

	ipaddr_format(&cidr->addr, buf);
	n = strlen(buf);
	snprintf(buf + n, IPADDR_STRLEN - n, "/%u", cidr->prefix_len);
	return buf;
}

int ipaddr_cmp(const struct ipaddr *a, const struct ipaddr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return ipaddr_cmp(a, b) == 0;
}

bool ipaddr_is_zero(const struct ipaddr *addr)
{
	static const uint8_t zero[16];

	return memcmp(addr->bytes, zero, sizeof(zero)) == 0;
}

bool cidr_contains(const struct cidr *cidr, const struct ipaddr *addr)
{
	size_t full = cidr->prefix_len / 8, rem = cidr->prefix_len % 8;

	if (cidr->addr.family != addr->family)
		return false;
	if (memcmp(cidr->addr.bytes, addr->bytes, full) != 0)
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rem));

		if ((cidr->addr.bytes[full] & mask) != (addr->bytes[full] & mask))
			return false;
	}
	return true;
}
