/* IP addresses and prefixes of either family, as the model and both
 * dataplanes use them: parsed strictly from API strings, compared and printed
 * without a trip through the resolver. */
#ifndef KPROXY_UTIL_ADDR_H
#define KPROXY_UTIL_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An address; for AF_INET only the first 4 bytes of bytes[] are used and the
 * rest are zero, so that memcmp() over the whole struct is a valid compare. */
struct ipaddr {
	uint8_t family; /* AF_INET or AF_INET6; 0 for none */
	uint8_t bytes[16];
};

struct cidr {
	struct ipaddr addr; /* host bits cleared */
	uint8_t prefix_len;
};

/* INET6_ADDRSTRLEN plus room for a "/128" suffix. */
#define IPADDR_STRLEN 52

/* Parses a literal IPv4 or IPv6 address with no surrounding text, no zone
 * and no leading zeros in IPv4 octets (which some parsers read as octal).
 * Returns 0 or -EINVAL. */
int ipaddr_parse(const char *s, struct ipaddr *ret_addr);
/* Parses "addr/len"; host bits set after the prefix are an error unless
 * allow_host_bits, in which case they are cleared. Returns 0 or -EINVAL. */
int cidr_parse(const char *s, bool allow_host_bits, struct cidr *ret_cidr);

/* Formats into buf (at least IPADDR_STRLEN bytes); returns buf. */
const char *ipaddr_format(const struct ipaddr *addr, char *buf);
const char *cidr_format(const struct cidr *cidr, char *buf);

static inline size_t ipaddr_len(const struct ipaddr *addr)
{
	return addr->family == AF_INET ? 4 : 16;
}

int ipaddr_cmp(const struct ipaddr *a, const struct ipaddr *b);
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);
bool ipaddr_is_zero(const struct ipaddr *addr);
bool cidr_contains(const struct cidr *cidr, const struct ipaddr *addr);

#endif
